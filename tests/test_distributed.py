"""Data-parallel search and training (dartsviz.distributed) on the CPU: gloo, 2 processes
started by torchrun (`python -m torch.distributed.run --standalone`).

Three launches serve every test: a run whose rank 1 raises at step 3 and a worker that
checks the rest in-process and through the CLI (and resumes the failed run), both in a
module fixture, and a one-process torchrun. Where a comparison with one process needs
BatchNorm not to depend on how the batch is split, BatchNorm uses frozen running statistics
(float64): the supernet is held in eval mode (`hold_eval`: nothing else in it depends on the
mode), the evaluation network's BatchNorm modules alone (`freeze_bn`: drop-path and the
auxiliary head stay on).
"""
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from dartsviz import distributed
from dartsviz.cli import main
from dartsviz.runs import load_checkpoint
from dartsviz.search import Search, SearchConfig
from dartsviz.train import Train, TrainConfig

SEARCH = dict(dataset="synthetic", layers=3, channels=4, batch_size=8, steps_per_epoch=20, epochs=2,
              warmup_epochs=0, device="cpu")
TRAIN = dict(dataset="synthetic", layers=3, channels=4, batch_size=8, steps_per_epoch=2, epochs=2,
             aux_widths=(8, 16), cutout_length=2, device="cpu")
# the CLI runs: the paper preset moves alpha from the first step (tiny warms the weights up first)
CLI_SEARCH = ["search", "--preset", "paper", "--dataset", "synthetic", "--layers", "3", "--channels", "4",
              "--batch-size", "8", "--epochs", "1", "--order", "2", "--device", "cpu", "--quiet", "--no-plots"]
CLI_TRAIN = ["train", "--preset", "tiny", "--dataset", "synthetic", "--genotype", "DARTS_V2", "--layers", "3",
             "--channels", "4", "--batch-size", "8", "--steps", "1", "--device", "cpu", "--quiet", "--no-plots"]

HELPERS = '''
import torch

def freeze_bn(model):
    """BatchNorm modules in eval mode for good (frozen running statistics): then nothing
    depends on how a batch is split."""
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.eval()
            m.train = lambda mode=True, m=m: m
    return model

def hold_eval(model):
    """A supernet in eval mode for good: its BatchNorms (the fast path's too) use frozen running
    statistics; nothing else in it differs between the modes."""
    torch.nn.Module.train(model, False)
    model.train = lambda mode=True: model
    return model
'''
exec(HELPERS)

# Rank 1 raises at step FAIL_AT_STEP; otherwise `dartsviz` as usual.
FAIL = '''
import os, sys
from dartsviz import distributed
from dartsviz.search import Search
from dartsviz.cli import main
step = Search.step
def failing(self):
    if distributed.rank() == 1 and self.step_count + 1 == int(os.environ["FAIL_AT_STEP"]):
        raise RuntimeError("injected failure")
    return step(self)
Search.step = failing
sys.exit(main(sys.argv[1:]))
'''

WORKER = HELPERS + '''
import json, os, sys, time
import torch.distributed as dist
from dartsviz import distributed
from dartsviz.bilevel import arch_gradient
from dartsviz.cli import main
from dartsviz.search import Search, SearchConfig
from dartsviz.train import Train, TrainConfig

out, failed_run = sys.argv[1], sys.argv[2]
SEARCH, TRAIN, CLI_SEARCH, CLI_TRAIN = (json.loads(a) for a in sys.argv[3:7])
TRAIN["aux_widths"] = tuple(TRAIN["aux_widths"])
distributed.init("cpu")
r, W = distributed.rank(), distributed.world_size()
res = {"world": W}

def flat(ts):
    return torch.cat([t.detach().reshape(-1).double() for t in ts])

def same_on_every_rank(t):
    got = [torch.empty_like(t) for _ in range(W)]
    dist.all_gather(got, t)
    return all(torch.equal(got[0], g) for g in got[1:])

def rel(a, b):
    a, b = flat(a), flat(b)
    return float((a - b).abs().max() / b.abs().max())

# 1. several steps, batch-statistics BatchNorm, fast supernet, float32: the same on every rank
for order, hvp in ((1, "finite"), (2, "finite")):
    s = Search(SearchConfig.preset("tiny", order=order, hvp=hvp, **SEARCH))
    a0 = flat(s.model.arch_parameters())
    for _ in range(3):
        s.step()
    a, w = flat(s.model.arch_parameters()), flat(s.model.weight_parameters())
    res[f"same/{order}{hvp}"] = [same_on_every_rank(a), same_on_every_rank(w), float((a - a0).abs().max())]

# 2. one architecture gradient: rank shards + averaging vs the whole batch on this process
s = Search(SearchConfig.preset("tiny", dtype="float64", **SEARCH))
hold_eval(s.model)
tb, vb = next(s.train_stream), next(s.val_stream)
kw = dict(xi=0.05, momentum=0.9, weight_decay=3e-4, eps_scale=0.01)
for order, hvp in ((1, "finite"), (2, "finite"), (2, "exact")):
    whole, _, _ = arch_gradient(s.model, tb, vb, order=order, hvp=hvp, **kw)
    mine, _, _ = arch_gradient(s.model, distributed.shard(tb), distributed.shard(vb), order=order, hvp=hvp, **kw)
    averaged, _, _ = arch_gradient(s.model, distributed.shard(tb), distributed.shard(vb), order=order, hvp=hvp,
                                   reduce=distributed.all_reduce_mean, **kw)
    res[f"grad/{order}{hvp}"] = [rel(averaged, whole), rel(mine, whole)]
weights = s.model.weight_parameters()
whole = torch.autograd.grad(s.model.loss(tb)[0], weights)
loss, _ = s.model.loss(distributed.shard(tb))
averaged = distributed.all_reduce_mean(torch.autograd.grad(loss, weights))
res["grad/weights"] = rel(averaged, whole)

# 3. steps with frozen BatchNorm, float64, saved by rank 0 only (relative run directories)
os.makedirs(f"{out}/rank{r}", exist_ok=True)
os.chdir(f"{out}/rank{r}")
for order in (1, 2):
    s = Search(SearchConfig.preset("tiny", dtype="float64", order=order, **SEARCH), out=f"frozen{order}")
    hold_eval(s.model)
    seen = set()
    s.model.register_forward_pre_hook(lambda m, a: seen.add(a[0].shape[0]))
    s.run(steps=2)
    res[f"rows/{order}"] = sorted(seen)
    res[f"frozen/{order}"] = flat(s.model.parameters()).tolist()
    res[f"history/{order}"] = [len(s.history), s.run_dir is None]
t = Train("DARTS_V2", TrainConfig.preset("tiny", drop_path_prob=0.0, dtype="float64", **TRAIN))
freeze_bn(t.model)
seen = set()
t.model.register_forward_pre_hook(lambda m, a: seen.add(a[0].shape[0]) if m.training else None)
for _ in range(3):
    t.step()
res["rows/train"] = sorted(seen)
res["train/frozen"] = flat(t.model.parameters()).tolist()
res["train/loss"] = [rec["train_loss"] for rec in t.history if rec["kind"] == "step"]

# 4. training with batch-statistics BatchNorm and drop-path drawn per rank (epoch 1): the same on every rank
t = Train("DARTS_V2", TrainConfig.preset("tiny", drop_path_prob=0.5, **TRAIN))
for _ in range(4):
    t.step()
p = flat(t.model.parameters())
res["train/same"] = same_on_every_rank(p)
res["train/drop_path"] = t.model.drop_path_prob
try:
    Search(SearchConfig.preset("tiny", **{**SEARCH, "batch_size": 7}))
except ValueError as e:
    res["odd batch"] = str(e)
with distributed.main_first():                  # rank 0's block ends before rank 1's begins
    if r == 0:
        time.sleep(0.5)
        open(f"{out}/rank0 was first", "w").close()
    res["main_first"] = os.path.exists(f"{out}/rank0 was first")

# 5. the CLI: a search (default run directory), a training, and the failed run resumed
res["rc/search"] = main(CLI_SEARCH + ["--steps", "4"])
res["rc/train"] = main(CLI_TRAIN + ["--out", "train"])
res["rc/resume"] = main(["search", "--resume", failed_run, "--steps", "2", "--quiet", "--no-plots"])
with open(f"{out}/rank{r}.json", "w") as f:
    json.dump(res, f)
distributed.shutdown()
'''


def _torchrun(args, cwd, nproc=2, env=None, timeout=150):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg", **(env or {})}
    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(k, None)
    return subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                           f"--nproc_per_node={nproc}", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)


def _script(folder: Path, name: str, text: str) -> str:
    path = folder / name
    path.write_text(textwrap.dedent(text))
    return str(path)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The failed run (rank 1 raises at step 3), then the worker (which also resumes it)."""
    root = tmp_path_factory.mktemp("dist")
    failed = root / "failed"
    fail = _torchrun([_script(root, "fail.py", FAIL), *CLI_SEARCH, "--steps", "4", "--out", str(failed)],
                     root, env={"FAIL_AT_STEP": "3"})
    failed_ckpt = load_checkpoint(failed)                    # before the worker resumes it
    (root / "failed_at_3").mkdir()
    for f in failed.iterdir():                               # a copy to resume on one process
        (root / "failed_at_3" / f.name).write_bytes(f.read_bytes())
    worker = _torchrun([_script(root, "worker.py", WORKER), str(root / "w"), str(failed),
                        *(json.dumps(d) for d in (SEARCH, TRAIN, CLI_SEARCH, CLI_TRAIN))], root)
    assert worker.returncode == 0, worker.stderr[-3000:]
    res = [json.loads((root / "w" / f"rank{r}.json").read_text()) for r in (0, 1)]
    return dict(root=root, fail=fail, failed_ckpt=failed_ckpt, worker=worker, res=res)


def test_two_ranks_take_the_same_steps_in_both_orders(runs):
    for r in runs["res"]:
        assert r["world"] == 2
        for key in ("same/1finite", "same/2finite"):
            same_alphas, same_weights, moved = r[key]
            assert same_alphas and same_weights, key
            assert moved > 1e-3, key                     # the alphas did move: not a vacuous equality


def test_two_rank_gradient_equals_the_whole_batch_gradient_in_float64(runs):
    """Frozen BatchNorm (eval mode): rank shards + all_reduce_mean == the whole batch on one process,
    for dL_val/dalpha (first order) and the unrolled gradient (finite-difference and exact HVP)."""
    for r in runs["res"]:
        for key in ("grad/1finite", "grad/2finite", "grad/2exact"):
            averaged, shard_alone = r[key]
            assert averaged < 1e-9, key
            assert shard_alone > 1e-4, key               # half a batch alone gives another gradient
        assert r["grad/weights"] < 1e-10


def test_two_rank_steps_equal_one_process_and_resume_on_one_process(runs):
    """A 2-rank search with frozen BatchNorm (float64) takes the one-process steps on the whole
    batch, both orders; its checkpoint resumes on one process (another world size) and ends
    where a one-process run of 3 steps ends."""
    res = runs["res"]
    for order in (1, 2):
        one = Search(SearchConfig.preset("tiny", dtype="float64", order=order, **SEARCH))
        hold_eval(one.model)
        one.run(steps=2)
        ref = torch.cat([p.detach().reshape(-1) for p in one.model.parameters()])
        for r in res:
            assert torch.allclose(torch.tensor(r[f"frozen/{order}"], dtype=torch.float64), ref,
                                  rtol=1e-9, atol=1e-11), order
        assert res[0][f"history/{order}"] == [2, False] and res[1][f"history/{order}"] == [2, True]
        assert res[0][f"rows/{order}"] == res[1][f"rows/{order}"] == [4]    # each rank saw half of 8
        resumed = Search.resume(runs["root"] / "w" / "rank0" / f"frozen{order}")
        hold_eval(resumed.model)
        assert resumed.step_count == 2 and [h.step for h in resumed.history] == [1, 2]
        resumed.run(steps=1)
        one.run(steps=1)
        for p, q in zip(resumed.model.parameters(), one.model.parameters()):
            assert torch.allclose(p, q, rtol=1e-9, atol=1e-11), order


def test_two_rank_training_equals_one_process_and_stays_the_same_on_every_rank(runs):
    res = runs["res"]
    one = Train("DARTS_V2", TrainConfig.preset("tiny", drop_path_prob=0.0, dtype="float64", **TRAIN))
    freeze_bn(one.model)
    for _ in range(3):
        one.step()
    ref = torch.cat([p.detach().reshape(-1) for p in one.model.parameters()])
    losses = [rec["train_loss"] for rec in one.history if rec["kind"] == "step"]
    for r in res:
        assert torch.allclose(torch.tensor(r["train/frozen"], dtype=torch.float64), ref, rtol=1e-9, atol=1e-11)
        assert r["train/loss"] == pytest.approx(losses, rel=1e-9)     # the records: the whole batch's loss
        assert r["train/same"] and r["train/drop_path"] > 0
        assert "batch_size 7 does not split over 2 ranks" in r["odd batch"]
        assert r["main_first"]
        assert r["rows/train"] == [4]


def test_only_rank_0_writes_and_prints(runs):
    root, res = runs["root"] / "w", runs["res"]
    assert all(r["rc/search"] == 0 and r["rc/train"] == 0 and r["rc/resume"] == 0 for r in res)
    assert sorted(p.name for p in (root / "rank1").iterdir()) == []
    mine = root / "rank0"
    assert sorted(p.name for p in mine.iterdir()) == ["frozen1", "frozen2", "runs", "train"]
    (search_dir,) = (mine / "runs").iterdir()
    for d in (search_dir, mine / "train"):
        assert {"config.json", "checkpoint.pt", "history.jsonl", "genotype.json"} <= {p.name for p in d.iterdir()}
    assert load_checkpoint(search_dir)["step"] == 4 and load_checkpoint(mine / "train")["step"] == 1
    # three CLI runs, each reported once (rank 1's stdout goes nowhere)
    assert runs["worker"].stdout.count("run directory:") == 3


def test_a_dead_rank_ends_the_job_with_one_line_and_a_resumable_checkpoint(runs):
    fail = runs["fail"]
    assert fail.returncode != 0
    lines = [ln for ln in fail.stderr.splitlines() if ln.startswith("dartsviz search: error:")]
    assert len(lines) == 1, fail.stderr[-3000:]
    assert "rank 0 of 2" in lines[0] and "checkpoint of step 2" in lines[0]
    assert f"--resume {runs['root'] / 'failed'}" in lines[0]
    assert runs["failed_ckpt"]["step"] == 2
    # resumed on 2 ranks by the worker: the uninterrupted run's state, bit for bit
    (search_dir,) = (runs["root"] / "w" / "rank0" / "runs").iterdir()
    full, resumed = load_checkpoint(search_dir), load_checkpoint(runs["root"] / "failed")
    assert resumed["step"] == full["step"] == 4
    for k, v in full["model"].items():
        assert torch.equal(v, resumed["model"][k]), k
    history = [json.loads(ln) for ln in (runs["root"] / "failed" / "history.jsonl").read_text().splitlines()]
    assert [h["step"] for h in history if h["kind"] == "step"] == [1, 2, 3, 4]
    # and on one process (another world size): it continues from step 2
    assert main(["search", "--resume", str(runs["root"] / "failed_at_3"), "--steps", "2", "--quiet",
                 "--no-plots"]) == 0
    assert load_checkpoint(runs["root"] / "failed_at_3")["step"] == 4


def test_world_size_one_is_the_plain_run_bit_for_bit(tmp_path):
    args = CLI_SEARCH + ["--steps", "2", "--threads", "1"]          # the same kernels in both processes
    one = _torchrun(["-m", "dartsviz", *args, "--out", str(tmp_path / "torchrun")], tmp_path, nproc=1)
    assert one.returncode == 0, one.stderr[-3000:]
    threads = torch.get_num_threads()
    try:
        assert main(args + ["--out", str(tmp_path / "plain")]) == 0
    finally:
        torch.set_num_threads(threads)
    a, b = load_checkpoint(tmp_path / "torchrun"), load_checkpoint(tmp_path / "plain")
    assert a["step"] == b["step"] == 2
    for k, v in b["model"].items():
        assert torch.equal(a["model"][k], v), k
    for x, y in zip(a["w_opt"]["state"].values(), b["w_opt"]["state"].values()):
        assert torch.equal(x["momentum_buffer"], y["momentum_buffer"])
    ha, hb = ((tmp_path / d / "history.jsonl").read_text().splitlines() for d in ("torchrun", "plain"))
    strip = lambda lines: [{k: v for k, v in json.loads(ln).items() if k not in ("seconds", "peak_mem_mb",
                                                                                   "mem_baseline_mb")}
                           for ln in lines]
    assert strip(ha) == strip(hb)


def test_sync_bn_is_refused_on_the_cpu_in_one_line(capsys, tmp_path):
    assert main(["search", "--sync-bn", "--impl", "reference", "--device", "cpu", "--dataset", "synthetic",
                 "--out", str(tmp_path / "r")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["dartsviz search: error: sync_bn needs CUDA (SyncBatchNorm has no CPU kernels); "
                   "drop --sync-bn on the CPU"]
    assert main(["train", "--sync-bn", "--device", "cpu", "--dataset", "synthetic", "--genotype", "DARTS_V2",
                 "--out", str(tmp_path / "t")]) == 1
    assert capsys.readouterr().err.strip().endswith("sync_bn needs CUDA (SyncBatchNorm has no CPU kernels); "
                                                    "drop --sync-bn on the CPU")
    assert not (tmp_path / "r").exists() and not (tmp_path / "t").exists()
    with pytest.raises(ValueError, match="impl='reference'"):
        SearchConfig.preset("tiny", sync_bn=True)


def test_one_process_helpers_are_the_identity():
    assert distributed.world_size() == 1 and distributed.is_main()
    batch = (torch.arange(6.0), torch.arange(6))
    assert distributed.shard(batch) is batch
    ts = [torch.ones(2), torch.zeros(3, dtype=torch.float64)]
    assert all(a is b for a, b in zip(distributed.all_reduce_mean(ts), ts))
