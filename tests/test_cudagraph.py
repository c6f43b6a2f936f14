"""CUDA graphs for the first-order step (dartsviz.cudagraph), and the classroom preset.

Without a GPU the capture machinery runs with `ReplayGraphs`, a stand-in that records the
captured function without running it and runs it again on each replay: the static inputs,
the lr tensor, the capturable optimisers, the static outputs, the phases and checkpoints are
checked against the eager `Search.step()` in float64. The test marked `cuda` compares a real
captured search with an uncaptured one on a GPU (skipped without one).
"""
import dataclasses

import pytest
import torch
import torch.optim.adam as adam_module

from dartsviz import cudagraph
from dartsviz.runs import load_checkpoint
from dartsviz.search import PRESETS, Search, SearchConfig
from dartsviz.spaces.cnn import fast_kernels

BASE = dict(dataset="synthetic:3x8x8", layers=3, channels=4, batch_size=16, steps_per_epoch=3, epochs=3,
            warmup_epochs=1, dtype="float64", device="cpu", seed=0, arch_lr=0.05)
PC = dict(variant="pc_darts", variant_options=dict(partial_channels=2, edge_norm=True), channels=8)


@pytest.fixture
def capturable_on_cpu(monkeypatch):
    """Adam(capturable=True) refuses CPU tensors by a device check only (its math is device
    agnostic): let it run here, so that the CPU tests run the very optimiser code a capture does."""
    supported = adam_module._get_capturable_supported_devices
    monkeypatch.setattr(adam_module, "_get_capturable_supported_devices",
                        lambda supports_xla=True: supported(supports_xla) + ["cpu"])


def _pair(backend=None, warmup_steps=1, **overrides):
    """An eager search and the same search stepping through `backend` (ReplayGraphs)."""
    kw = {**BASE, **overrides}
    eager = Search(SearchConfig.preset("tiny", **kw))
    graphed = Search(SearchConfig.preset("tiny", **kw))
    backend = backend if backend is not None else cudagraph.ReplayGraphs()
    cudagraph.attach(graphed, backend=backend, warmup_steps=warmup_steps)
    return eager, graphed, backend


def _assert_same(eager, graphed, rtol=1e-12, atol=1e-13):
    for (n, a), (_, b) in zip(eager.model.named_parameters(), graphed.model.named_parameters()):
        torch.testing.assert_close(b, a, rtol=rtol, atol=atol, msg=lambda m: f"{n}: {m}")
    for (n, a), (_, b) in zip(eager.model.named_buffers(), graphed.model.named_buffers()):
        torch.testing.assert_close(b, a, rtol=rtol, atol=atol, msg=lambda m: f"{n}: {m}")


def _assert_same_record(re, rg):
    assert (re is None) == (rg is None)
    if re is None:
        return
    assert (rg.step, rg.epoch, rg.lr, rg.arch_updated, rg.order, rg.hvp) == \
           (re.step, re.epoch, re.lr, re.arch_updated, re.order, re.hvp)
    assert rg.losses == pytest.approx(re.losses, rel=1e-6)      # float32 numbers in both records
    assert rg.metrics == pytest.approx(re.metrics, rel=1e-6)
    assert rg.monitors == pytest.approx(re.monitors, rel=1e-6)
    assert set(rg.probs) == set(re.probs)
    for k in re.probs:
        assert rg.probs[k] == pytest.approx(re.probs[k], rel=1e-6)
    assert rg.genotype == re.genotype


@pytest.mark.parametrize("overrides", [
    {},                                              # DARTS, the CPU formulations of the fast supernet
    {"impl": "reference"},
    PC,                                              # partial channels, edge normalisation, a monitor
], ids=["darts-fast", "darts-reference", "pc_darts"])
def test_the_captured_step_takes_the_eager_steps_over_warmup_and_epochs(capturable_on_cpu, overrides):
    """9 steps: epoch 0 alpha frozen (warm-up, capture, replay), epochs 1-2 alpha moves (a
    second capture), lr changing at each epoch boundary: the same alphas, weights, BatchNorm
    statistics and records as the eager step, in float64."""
    eager, graphed, backend = _pair(**overrides)
    phases = []
    for _ in range(9):
        re, rg = eager.step(), graphed.step()
        _assert_same_record(re, rg)
        _assert_same(eager, graphed)
        phases.append(graphed._graphs.graph_key[0] if graphed._graphs.graph is not None else None)
    assert backend.captures == 2 and backend.warmups == 2 and backend.replays == 7
    assert phases == [None, "frozen", "frozen", None] + ["arch"] * 5
    assert [r.lr for r in graphed.history if r["kind"] == "step"] == \
           [r.lr for r in eager.history if r["kind"] == "step"]
    assert len({r.lr for r in graphed.history if r["kind"] == "step"}) == 3   # one per epoch
    assert [r["kind"] for r in graphed.history] == [r["kind"] for r in eager.history]
    # the optimisers really are the capturable kinds
    assert all(g["capturable"] for g in graphed.a_opt.param_groups)
    assert all(g["fused"] and torch.is_tensor(g["lr"]) for g in graphed.w_opt.param_groups)


def test_the_cuda_formulation_of_the_fast_supernet_is_captured_alike(capturable_on_cpu, monkeypatch):
    """fast_kernels.CPU_KERNELS = False: CPU tensors take the plain conv2d path a CUDA capture records."""
    monkeypatch.setattr(fast_kernels, "CPU_KERNELS", False)
    eager, graphed, _ = _pair()
    for _ in range(6):
        _assert_same_record(eager.step(), graphed.step())
    _assert_same(eager, graphed)


def test_the_replayed_step_reads_nothing_to_the_host(capturable_on_cpu, host_reads):
    """A host read (.item(), bool(tensor), nonzero) inside the captured function would break a
    CUDA capture; the stand-in's replays run under a spy. A non-capturable Adam (its step
    count read to the host) shows the spy sees them."""
    spy = host_reads()
    for overrides in ({}, PC):
        _, graphed, backend = _pair(cudagraph.ReplayGraphs(around_replay=lambda: spy), **overrides)
        graphed.run(steps=6)
        assert backend.replays == 4 and spy.hits == [], spy.hits
    for g in graphed.a_opt.param_groups:
        g["capturable"] = False                      # a change of settings: captured again
    graphed.run(steps=2)
    assert any("_local_scalar_dense" in h for h in spy.hits)


def test_checkpoints_are_written_in_the_eager_form_and_resume_captures_again(capturable_on_cpu, tmp_path):
    eager, graphed, _ = _pair()
    eager.run(steps=5)
    graphed.run(steps=5)
    se, sg = eager.state_dict(), graphed.state_dict()
    for name in ("w_opt", "a_opt"):
        assert sg[name]["param_groups"] == se[name]["param_groups"]          # lr a float, eager flags
        assert set(sg[name]["state"]) == set(se[name]["state"])
        for i, st in se[name]["state"].items():
            assert set(sg[name]["state"][i]) == set(st)
            for k, v in st.items():
                assert sg[name]["state"][i][k].device.type == "cpu"
                torch.testing.assert_close(sg[name]["state"][i][k], v, rtol=1e-12, atol=1e-13, check_dtype=False)
    # the live optimisers are still the capturable ones
    assert torch.is_tensor(graphed.w_opt.param_groups[0]["lr"]) and graphed.a_opt.param_groups[0]["capturable"]
    # resume: a fresh search, attached, then loaded (as Search.resume does with cuda_graphs)
    graphed.save(tmp_path / "run")
    resumed = Search(SearchConfig.preset("tiny", **BASE))
    backend = cudagraph.ReplayGraphs()
    cudagraph.attach(resumed, backend=backend, warmup_steps=1)
    resumed.load_state_dict(load_checkpoint(tmp_path / "run", map_location="cpu", kind="search"))
    assert torch.is_tensor(resumed.w_opt.param_groups[0]["lr"]) and resumed.a_opt.param_groups[0]["capturable"]
    steps = [resumed.a_opt.state[p]["step"] for p in resumed.model.arch_parameters()]
    assert all(s.dtype == torch.float64 and float(s) == 2 for s in steps)     # 2 arch steps in epoch 1
    for _ in range(4):
        _assert_same_record(eager.step(), resumed.step())
        _assert_same(eager, resumed)
    assert backend.captures == 1
    # and an eager search resumes a graph search's checkpoint
    plain = Search(SearchConfig.preset("tiny", **BASE))
    plain.load_state_dict(sg)
    assert plain.step_count == 5 and not plain.a_opt.param_groups[0]["capturable"]
    assert plain.step() is not None


def test_lambda_max_is_measured_eagerly_beside_the_graph(capturable_on_cpu):
    eager, graphed, _ = _pair(monitor_every=2, monitor_iters=5)
    for _ in range(6):
        re, rg = eager.step(), graphed.step()
        _assert_same_record(re, rg)
        assert (rg.lambda_max is None) == (re.lambda_max is None)
        if re.lambda_max is not None:
            assert rg.lambda_max == pytest.approx(re.lambda_max, rel=1e-9)
    assert sum(r.lambda_max is not None for r in graphed.history if r["kind"] == "step") == 3


def test_a_changed_setting_is_captured_again_and_sync_every_defers_alike(capturable_on_cpu):
    eager, graphed, backend = _pair(sync_every=2)
    for _ in range(5):
        _assert_same_record(eager.step(), graphed.step())
    assert backend.captures == 2
    for s in (eager, graphed):
        s.set(arch_lr=0.01)
    for _ in range(4):
        _assert_same_record(eager.step(), graphed.step())
    _assert_same(eager, graphed)
    assert backend.captures == 3                     # Adam's lr is baked into the capture
    assert len(graphed.history) == len(eager.history)


def test_warmup_steps_must_be_positive():
    search = Search(SearchConfig.preset("tiny", **BASE))
    with pytest.raises(ValueError, match="warmup_steps"):
        cudagraph.attach(search, backend=cudagraph.ReplayGraphs(), warmup_steps=0)


# -- what is refused, in one line ------------------------------------------------------------
@pytest.mark.parametrize("overrides,needle", [
    (dict(device="cpu"), "cuda_graphs needs a CUDA device"),
    (dict(device="cuda", order=2), "first-order step only"),
    (dict(device="cuda", precision="fp16"), "fp16"),
    (dict(device="cuda", sync_bn=True, impl="reference"), "SyncBatchNorm"),
    (dict(device="cuda", variant="beta_darts"), "cannot capture the beta_darts variant: its regulariser"),
    (dict(device="cuda", variant="p_darts", impl="reference"), "cannot capture the p_darts variant: its stages"),
    (dict(device="cuda", space="rnn", dataset="pydoc"), "cannot capture the rnn space: its batches carry hidden"),
    (dict(device="cpu", cuda_graphs="yes"), "cuda_graphs must be True or False"),
])
def test_settings_a_capture_cannot_run_are_refused_in_one_line(overrides, needle):
    """The method and the space say whether they can be captured (no list of names in cudagraph)."""
    with pytest.raises(ValueError) as e:
        SearchConfig(**{"cuda_graphs": True, **overrides})
    assert needle in str(e.value) and "\n" not in str(e.value)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without CUDA")
def test_a_search_that_resolves_to_the_cpu_is_refused():
    config = SearchConfig.preset("tiny", cuda_graphs=True, device="auto", steps_per_epoch=1)
    with pytest.raises(ValueError) as e:
        Search(config)
    assert "cuda_graphs needs a CUDA device" in str(e.value) and "\n" not in str(e.value)


def test_torchrun_with_several_processes_is_refused(monkeypatch):
    monkeypatch.setattr(cudagraph.distributed, "world_size", lambda: 2)
    with pytest.raises(ValueError, match="one process"):
        cudagraph.check_search(torch.device("cuda"))


def test_the_flag_round_trips_through_the_config():
    c = SearchConfig.preset("tiny", cuda_graphs=True, device="cuda")
    assert SearchConfig.from_dict(c.to_dict()).cuda_graphs is True
    assert SearchConfig().cuda_graphs is False


# -- on a GPU ------------------------------------------------------------------------------------
@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("overrides", [{}, PC], ids=["darts", "pc_darts"])
def test_on_a_gpu_a_captured_search_follows_the_uncaptured_one(overrides):
    """10 steps, 5 with alpha frozen then 5 with alpha moving: each phase warms up for 3
    steps, captures and replays; alphas, weights and records within float32 tolerance."""
    kw = dict(BASE, dtype="float32", device="cuda", steps_per_epoch=5, epochs=2, **overrides)
    plain = Search(SearchConfig.preset("tiny", **kw))
    graphed = Search(SearchConfig.preset("tiny", **kw, cuda_graphs=True))
    assert isinstance(graphed._graphs.backend, cudagraph.CudaGraphs)
    for _ in range(10):
        rp, rg = plain.step(), graphed.step()
        assert rg.losses == pytest.approx(rp.losses, rel=1e-3, abs=1e-4)
    assert graphed._graphs.captures == 2
    for a, b in zip(plain.model.arch_parameters(), graphed.model.arch_parameters()):
        torch.testing.assert_close(b, a, rtol=1e-3, atol=1e-4)
    for a, b in zip(plain.model.weight_parameters(), graphed.model.weight_parameters()):
        torch.testing.assert_close(b, a, rtol=1e-3, atol=1e-4)
    # a checkpoint of the captured search resumes eagerly
    state = graphed.state_dict()
    assert not torch.is_tensor(state["w_opt"]["param_groups"][0]["lr"])
    again = Search(SearchConfig.preset("tiny", **kw))
    again.load_state_dict(state)
    assert again.step() is not None


# -- the classroom preset ----------------------------------------------------------------------
def test_the_classroom_preset_validates_and_steps():
    c = SearchConfig.preset("classroom")
    assert c.dataset == "cifar10" and c.order == 1 and c.layers < PRESETS.get("paper", {}).get("layers", 8)
    assert c.epochs < 50 and c.batch_size > 64 and c.arch_lr > 3e-4
    # its supernet (cells, channels, 32x32 input) on synthetic data; a small batch keeps the CPU test short
    search = Search(dataclasses.replace(c, dataset="synthetic:3x32x32", steps_per_epoch=2, epochs=1,
                                        batch_size=8, device="cpu"))
    assert len(search.model.cells) == c.layers and search.model.C == c.channels
    record = search.step()
    assert record.step == 1 and record.arch_updated == (c.warmup_epochs == 0)


def test_the_methods_and_spaces_say_whether_their_step_can_be_captured():
    from dartsviz.methods import get_method, method_names
    from dartsviz.spaces import get_space
    capturable = {n for n in method_names() if get_method(n).capture_refusal is None}
    assert capturable == {"darts", "pc_darts"}                 # no schedule that follows the progress
    assert get_space("cnn").capture_refusal is None and get_space("rnn").capture_refusal
