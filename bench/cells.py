"""Forward + backward of each cell alone: reference supernet vs fast path, one line per cell.

    python bench/cells.py                       # CIFAR shape: 3x32x32, batch 32, 5 cells, C=8
    python bench/cells.py --size 8 --layers 3   # digits' shape
    python bench/cells.py --no-fold             # fast path without FOLD_WEIGHTS

Both supernets hold the same weights and alphas. Each cell's inputs are captured from one
forward pass of the reference; a cell's time is the CPU time of its forward pass and the
gradient of the sum of its output with respect to its inputs, its weights and the alphas
(median of --repeats after one untimed run). The ratio column is reference / fast.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from dartsviz.spaces.cnn import fast_kernels                 # noqa: E402
from dartsviz.spaces.cnn.fastnet import FastSearchNetwork   # noqa: E402
from dartsviz.spaces.cnn.supernet import SearchNetwork      # noqa: E402


def cell_runners(ref: SearchNetwork, fast: FastSearchNetwork, x: torch.Tensor):
    """(description, reference run, fast run) per cell; each run is one forward + backward."""
    inputs = []
    hooks = [c.register_forward_pre_hook(lambda m, a: inputs.append((a[0].detach(), a[1].detach())))
             for c in ref.cells]
    with torch.no_grad():
        ref(x)
    for h in hooks:
        h.remove()
    perm = fast._perm(x.device)

    def run(net, i, fast_path):
        s0, s1 = (t.clone().requires_grad_() for t in inputs[i])
        cell = net.cells[i]
        alpha = net.alpha_reduce if cell.reduction else net.alpha_normal
        w = net.edge_weights(alpha)                                            # (E, O)
        if fast_path:
            out = net._cell(net._plans[i], s0, s1, w.index_select(0, perm).t(), [], None)
        else:
            out = cell(s0, s1, w)
        torch.autograd.grad(out, [s0, s1, alpha, *cell.parameters()], torch.ones_like(out),
                            allow_unused=True)

    for i, cell in enumerate(ref.cells):
        kind = "reduction" if cell.reduction else "normal"
        yield (f"{i} {kind} {tuple(inputs[i][1].shape)}",
               lambda i=i: run(ref, i, False), lambda i=i: run(fast, i, True))


def cpu_ms(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        t = time.process_time()
        fn()
        times.append(time.process_time() - t)
    return statistics.median(times) * 1000


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=32, help="image height and width")
    p.add_argument("--in-channels", type=int, default=3)
    p.add_argument("--channels", type=int, default=8)
    p.add_argument("--layers", type=int, default=5)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-fold", action="store_true",
                   help="op weights applied after the BatchNorms (fast_kernels.FOLD_WEIGHTS = False)")
    a = p.parse_args(argv)
    fast_kernels.FOLD_WEIGHTS = not a.no_fold
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    ref = SearchNetwork(a.channels, 10, a.layers, a.in_channels)
    fast = FastSearchNetwork(a.channels, 10, a.layers, a.in_channels)
    fast.load_state_dict(ref.state_dict())
    x = torch.randn(a.batch_size, a.in_channels, a.size, a.size)              # (B, in, H, W)
    print(f"# bench/cells.py  {a.layers} cells, C={a.channels}, batch {a.batch_size}, "
          f"{a.in_channels}x{a.size}x{a.size}, {a.threads} torch threads, torch {torch.__version__}"
          f"{', FOLD_WEIGHTS off' if a.no_fold else ''}")
    print(f"{'cell (input)':34s} {'reference ms':>12s} {'fast ms':>8s} {'ratio':>6s}")
    total_r = total_f = 0.0
    for what, run_ref, run_fast in cell_runners(ref, fast, x):
        r, f = cpu_ms(run_ref, a.repeats), cpu_ms(run_fast, a.repeats)
        total_r, total_f = total_r + r, total_f + f
        print(f"{what:34s} {r:12.1f} {f:8.1f} {r / f:5.2f}x")
    print(f"{'all cells':34s} {total_r:12.1f} {total_f:8.1f} {total_r / total_f:5.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
