"""CUDA graphs for the first-order search step: `SearchConfig(cuda_graphs=True)`,
`dartsviz search --cuda-graphs`.

At fixed shapes a search step on a GPU is launch-bound: hundreds of small kernels (the
supernet's convolutions, BatchNorms and mixing, twice forward and backward, two
optimisers) whose launch costs more than their work. A CUDA graph records the step's
kernels once and replays them with one launch. What is captured, per step:

- the architecture half: the validation forward and backward for dL_val/dalpha (BatchNorm
  statistics frozen, as `bilevel.arch_gradient` does), then Adam on alpha (and beta);
- the weight half: the training forward and backward, gradient-norm clipping, SGD with
  momentum and weight decay;
- the step's numbers: both losses, the metrics, softmax(alpha) (and softmax(beta)), the
  method's monitors, packed into one static output tensor.

Everything else stays in Python around the replay, as in `Search.step`: drawing the next
batches (copied into static input tensors), the cosine learning rate (written into a 0-dim
device tensor that the captured SGD reads), the record (read from a clone of the static
output, so records have the very form of the eager step's and `sync_every` works alike),
lambda_max (`monitor_every`, `early_stop`: run eagerly after the replay), the epoch's test
evaluation and checkpoints.

The optimisers are the search's own, made capturable in place: Adam with
`capturable=True` (its step count a device tensor), SGD with `fused=True` and a tensor
learning rate (torch's fused SGD kernel reads lr from device memory; its foreach kernel
would read a tensor lr to the host). Their `state_dict()` is written in the eager form
(lr a float, capturable off, CPU step counts), so checkpoints are the same either way and
a graph search resumes eagerly or the other way round; after `load_state_dict` the
optimisers are made capturable again and the graphs are captured anew.

A graph per phase: "arch" (alpha moves) and "frozen" (warm-up epochs: the weight half and
a validation forward only). Each is captured after `warmup_steps` steps that run the same
function eagerly on a side stream (the torch recipe: lazy initialisations, cuDNN's
autotuning and the optimisers' state happen before the capture). The step that captures
also replays, so every step is taken exactly once. A change of phase, of an optimiser's
settings (`Search.set(arch_lr=...)`), of the model or optimisers, or a loaded checkpoint,
captures again (after its own warm-up steps); only one graph is kept at a time.

What is refused (`check_config`, `check_search`; one-line ValueError): devices other than
CUDA; second order (the virtual step's learning rate and finite-difference terms are
host-side scalars there); fp16 (its gradient scalers read the scale to the host to skip
steps); torchrun with more than one process and SyncBatchNorm (collectives); a method or a
space that says it cannot be captured (`Method.capture_refusal`, `SearchSpace.capture_refusal`:
the variants whose schedules depend on the search's progress, a Python number a graph would
freeze; the rnn space, whose batches carry hidden state and vary in length).

Testing without a GPU: the graph is an injectable backend. `CudaGraphs` uses
`torch.cuda.CUDAGraph`, `torch.cuda.graph` and a side stream; `ReplayGraphs` (tests) stores
the captured function without running it and runs it again on every replay. `attach(search,
backend=ReplayGraphs())` on a CPU search then checks the plumbing (static inputs, lr tensor,
capturable optimisers, static outputs, phases, checkpoints) against the eager step.
"""
from __future__ import annotations

import contextlib
import warnings
from typing import Callable, Dict, List, Optional

import torch

from . import distributed

WARMUP_STEPS = 3                      # eager steps on a side stream before each capture (torch's recipe)
_EAGER_FLAGS = ("foreach", "fused", "capturable")


# -- what cannot be captured ------------------------------------------------------------
def check_config(config) -> None:
    """A one-line ValueError for settings a captured step cannot run (SearchConfig.validate)."""
    dev = str(config.device)
    if dev != "auto" and not dev.startswith("cuda"):
        raise ValueError(f"cuda_graphs needs a CUDA device, got device={dev!r} (drop --cuda-graphs or use --device cuda)")
    if config.order != 1:
        raise ValueError("cuda_graphs captures the first-order step only: use order=1 or drop cuda_graphs")
    if config.precision == "fp16":
        raise ValueError("cuda_graphs cannot capture fp16's gradient scalers (they read the scale to the host): "
                         "use precision fp32 (or bf16 on GPUs with native bf16)")
    if config.sync_bn:
        raise ValueError("cuda_graphs does not capture SyncBatchNorm's collectives: drop sync_bn or cuda_graphs")
    from .spaces import get_space
    refusal = get_space(config.space).capture_refusal
    if refusal is not None:
        raise ValueError(f"cuda_graphs cannot capture the {config.space} space: {refusal}")
    from .methods import get_method
    refusal = get_method(config.variant).capture_refusal
    if refusal is not None:
        raise ValueError(f"cuda_graphs cannot capture the {config.variant} variant: {refusal}")


def check_search(device: torch.device) -> None:
    """A one-line ValueError where a search resolved to run cannot be captured (Search.__init__)."""
    if device.type != "cuda":
        raise ValueError(f"cuda_graphs needs a CUDA device; this search runs on {device.type} "
                         "(drop --cuda-graphs or use --device cuda)")
    if distributed.world_size() > 1:
        raise ValueError("cuda_graphs runs on one process: drop --cuda-graphs under torchrun "
                         "(the gradient all-reduces are not captured)")


# -- graph backends ----------------------------------------------------------------------
class CudaGraphs:
    """torch.cuda.CUDAGraph: warm-up on a side stream, capture with `torch.cuda.graph`."""

    def __init__(self, device: torch.device):
        self.device = device
        self._stream: Optional[torch.cuda.Stream] = None

    @contextlib.contextmanager
    def warmup(self):
        if self._stream is None:
            self._stream = torch.cuda.Stream(self.device)
        current = torch.cuda.current_stream(self.device)
        self._stream.wait_stream(current)
        with torch.cuda.stream(self._stream):
            yield
        current.wait_stream(self._stream)

    def capture(self, fn: Callable[[], None]):
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            fn()
        return graph                                   # .replay()


class ReplayGraphs:
    """A stand-in for CudaGraphs on any device (tests): `capture` records `fn` without running
    it, as a CUDA capture records kernels without executing them; each replay runs `fn` again.
    `around_replay` (a context-manager factory, e.g. a spy on host reads) wraps every replay."""

    def __init__(self, around_replay: Optional[Callable[[], contextlib.AbstractContextManager]] = None):
        self.around_replay = around_replay
        self.captures = 0
        self.replays = 0
        self.warmups = 0

    @contextlib.contextmanager
    def warmup(self):
        self.warmups += 1
        yield

    def capture(self, fn: Callable[[], None]):
        self.captures += 1
        return _Replay(self, fn)


class _Replay:
    def __init__(self, owner: ReplayGraphs, fn: Callable[[], None]):
        self.owner, self.fn = owner, fn

    def replay(self) -> None:
        self.owner.replays += 1
        with (self.owner.around_replay() if self.owner.around_replay else contextlib.nullcontext()):
            self.fn()


# -- the captured step ------------------------------------------------------------------
def attach(search, backend=None, warmup_steps: int = WARMUP_STEPS) -> "GraphStep":
    """Make `search.step()` run as captured graphs (`Search.__init__` does this when
    config.cuda_graphs is set; tests attach a `ReplayGraphs` backend to a CPU search)."""
    runner = GraphStep(search, backend if backend is not None else CudaGraphs(search.device), warmup_steps)
    search._graphs = runner
    return runner


class GraphStep:
    """Capture and replay of `Search.device_step`, the one step function `Search.step` runs."""

    def __init__(self, search, backend, warmup_steps: int = WARMUP_STEPS):
        if isinstance(warmup_steps, bool) or not isinstance(warmup_steps, int) or warmup_steps < 1:
            # at least one: the first SGD step makes the momentum buffers (fused SGD bakes that in)
            raise ValueError(f"warmup_steps must be a positive integer, got {warmup_steps!r}")
        self.search, self.backend, self.warmup_steps = search, backend, warmup_steps
        self.graph = None                    # the captured graph (one at a time) and its key
        self.graph_key = None
        self.captures = 0                    # captures so far (tests, benchmarks)
        self._warm: Dict[tuple, int] = {}    # key -> eager warm-up steps taken towards its capture
        self._prepared = None                # (model, a_opt, w_opt) made capturable
        self._hooks: list = []
        self._eager_flags: Dict[int, List[dict]] = {}
        self._train: Optional[List[torch.Tensor]] = None     # static input batches
        self._val: Optional[List[torch.Tensor]] = None
        self._out: Optional[torch.Tensor] = None            # static packed output
        self._layout: List[tuple] = []                      # (name, shape, numel) of the packed output
        self._metric_names: List[str] = []
        self._monitor_names: List[str] = []
        w = next(iter(search.model.weight_parameters()))
        # torch's fused SGD reads a float32 lr from CUDA memory; on CPU (tests) the weights' dtype
        lr_dtype = torch.float32 if w.device.type == "cuda" else w.dtype
        self.lr = torch.zeros((), dtype=lr_dtype, device=w.device)
        self._prepare()

    # -- optimisers -------------------------------------------------------------------
    def _prepare(self) -> None:
        """Make the search's optimisers capturable (once per model/optimiser set)."""
        s = self.search
        now = (s.model, s.a_opt, s.w_opt)
        if self._prepared is not None and all(a is b for a, b in zip(now, self._prepared)):
            return
        for h in self._hooks:
            h.remove()
        self._hooks = []
        for opt in (s.a_opt, s.w_opt):
            if id(opt) not in self._eager_flags:
                self._eager_flags[id(opt)] = [{k: g[k] for k in _EAGER_FLAGS if k in g} for g in opt.param_groups]
            self._capturable(opt)
            self._hooks.append(opt.register_state_dict_post_hook(self._eager_state_dict))
            self._hooks.append(opt.register_load_state_dict_post_hook(self._after_load))
        self._prepared = now
        self._invalidate()

    def _capturable(self, opt) -> None:
        """Adam: capturable, step counts on the device in the parameters' dtype (state made
        now, so that float64 tests keep float64 bias corrections); SGD: fused, lr = self.lr."""
        if isinstance(opt, torch.optim.Adam):
            for g in opt.param_groups:
                g["capturable"], g["foreach"], g["fused"] = True, True, None
                for p in g["params"]:
                    st = opt.state[p]
                    if not st:
                        st["step"] = torch.zeros((), dtype=p.dtype, device=p.device)
                        st["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                        st["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    else:
                        st["step"] = torch.as_tensor(st["step"], dtype=p.dtype).to(p.device)
        elif isinstance(opt, torch.optim.SGD):
            for g in opt.param_groups:
                g["lr"], g["foreach"], g["fused"] = self.lr, False, True
        else:
            raise ValueError(f"cuda_graphs cannot capture a {type(opt).__name__} optimiser")

    def _eager_state_dict(self, opt, state_dict: dict) -> dict:
        """state_dict() as the eager search writes it: lr a float, the eager flags, Adam's
        step counts on the CPU (and no entry for state made here but never stepped)."""
        flags = self._eager_flags.get(id(opt), [])
        groups = []
        for i, g in enumerate(state_dict["param_groups"]):
            g = dict(g)
            if torch.is_tensor(g.get("lr")):
                g["lr"] = float(g["lr"])
            for k in _EAGER_FLAGS:
                if k in g:
                    g[k] = flags[i].get(k) if i < len(flags) else None
            groups.append(g)
        state = {}
        for k, st in state_dict["state"].items():
            if torch.is_tensor(st.get("step")):
                step = float(st["step"])
                if step == 0:
                    continue
                scalar = torch.float64 if torch.get_default_dtype() == torch.float64 else torch.float32
                st = {**st, "step": torch.tensor(step, dtype=scalar)}
            state[k] = st
        return {**state_dict, "state": state, "param_groups": groups}

    def _after_load(self, opt) -> None:
        """A loaded optimiser: capturable again, and a fresh capture (its state tensors are new)."""
        self._capturable(opt)
        self._invalidate()

    def _invalidate(self) -> None:
        self.graph = self.graph_key = None
        self._warm.clear()

    # -- one step ---------------------------------------------------------------------
    def _key(self, phase: str) -> tuple:
        """What a capture bakes in: phase, settings of both optimisers (lr excepted for SGD),
        clip norm, precision, the objects themselves."""
        s = self.search

        def settings(opt):
            return repr([{k: v for k, v in g.items() if k != "params" and not torch.is_tensor(v)}
                         for g in opt.param_groups])
        c = s.config
        return (phase, id(s.model), id(s.a_opt), id(s.w_opt), settings(s.a_opt), settings(s.w_opt),
                c.grad_clip, c.precision, c.dtype)

    def _load_inputs(self, train_batch, val_batch) -> None:
        """Copy the batches into the static inputs (allocated at the first step)."""
        if self._train is None:
            self._train = [t.clone() for t in train_batch]
            self._val = [t.clone() for t in val_batch]
            return
        for static, batch in ((self._train, train_batch), (self._val, val_batch)):
            for dst, src in zip(static, batch):
                if dst.shape != src.shape or dst.dtype != src.dtype:
                    raise RuntimeError(f"cuda_graphs needs batches of one shape: got {tuple(src.shape)} "
                                       f"after {tuple(dst.shape)}")
                dst.copy_(src)

    def _run(self, fn, lr: float, arch_updated: bool) -> None:
        """`fn` (Search.device_step) on the static inputs, its numbers packed into the static
        output: what is captured, and what the warm-up steps run eagerly."""
        values, metrics, monitors = fn(tuple(self._train), tuple(self._val), lr, arch_updated)
        with torch.no_grad():
            packed = torch.cat([v.reshape(-1).float() for v in values.values()])
            if self._out is None:                   # the first (eager) run sizes the static output
                self._out = torch.empty_like(packed)
            self._out.copy_(packed)
        self._layout = [(k, v.shape, v.numel()) for k, v in values.items()]
        self._metric_names, self._monitor_names = list(metrics), list(monitors)

    def _device_step(self, phase: str, run: Callable[[], None]) -> None:
        """Replay the phase's graph; or, before its capture, a warm-up step; or capture and replay."""
        key = self._key(phase)
        if self.graph is not None and self.graph_key == key:
            self.graph.replay()
            return
        if self.graph is not None:              # another phase or other settings: capture anew
            self._invalidate()
        if self._warm.get(key, 0) < self.warmup_steps:
            with self.backend.warmup(), warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=".*capturable=True.*")   # eager capturable Adam
                run()
            self._warm[key] = self._warm.get(key, 0) + 1
            return
        for p in self.search.model.parameters():    # gradients are allocated inside the capture
            p.grad = None
        self.graph = self.backend.capture(run)
        self.graph_key = key
        self.captures += 1
        self.graph.replay()

    def run(self, fn, train_batch, val_batch, lr: float, arch_updated: bool):
        """`fn(train_batch, val_batch, lr, arch_updated)` (`Search.device_step`, the one step
        function) with its device work replayed from a graph: the batches copied into static
        inputs, the weights' lr into the tensor the captured SGD reads. Returns what `fn` does."""
        s = self.search
        self._prepare()
        self._load_inputs(train_batch, val_batch)
        self.lr.fill_(lr)
        for g in s.w_opt.param_groups:          # the tensor the captured SGD reads
            g["lr"] = self.lr
        count = s.step_count
        self._device_step("arch" if arch_updated else "frozen", lambda: self._run(fn, lr, arch_updated))
        s.step_count = count + 1                # the step is counted once, replayed or run
        packed = self._out.clone()              # the next replay overwrites the static output
        values = {name: v.view(shape) for (name, shape, _), v in
                  zip(self._layout, packed.split([n for _, _, n in self._layout]))}
        return values, list(self._metric_names), list(self._monitor_names)
