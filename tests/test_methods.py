"""The method seam: every hook a variant overrides reaches the search where DARTS says."""
import pytest
import torch
import torch.nn.functional as F

from dartsviz import Method, Search, SearchConfig, get_method, method_names, register_method
from dartsviz.bilevel import arch_gradient


def _search(tiny_overrides, variant, **kw):
    return Search(SearchConfig.preset("tiny", **{**tiny_overrides, "variant": variant, **kw}))


def test_darts_is_the_default_and_unknown_variants_are_refused():
    assert SearchConfig().variant == "darts" and get_method("darts").name in method_names()
    with pytest.raises(ValueError, match="unknown variant 'pc_dartz'; known variants: darts"):
        SearchConfig.preset("tiny", variant="pc_dartz")


def test_arch_penalty_gradient_is_added_to_the_bilevel_gradient(tiny_overrides):
    class L2(Method):
        name = "l2-test"

        def arch_penalty(self, alphas, progress):
            return 0.5 * sum((a ** 2).sum() for a in alphas)    # gradient: alpha itself
    register_method(L2())
    search = _search(tiny_overrides, "l2-test")
    twin = _search(tiny_overrides, "darts")
    seen = {}
    search.a_opt.step = lambda: seen.update(g=[a.grad.clone() for a in search.model.arch_parameters()])
    alphas = [a.detach().clone() for a in search.model.arch_parameters()]
    search.step()
    model = twin.model
    x_t, x_v = next(twin.train_stream), next(twin.val_stream)
    plain, _, _ = arch_gradient(model, x_t, x_v, order=1)
    for g, p, a in zip(seen["g"], plain, alphas):
        torch.testing.assert_close(g, p + a)


def test_weight_loss_hook_drives_the_weight_step(tiny_overrides):
    class Frozen(Method):
        name = "no-weight-step-test"

        def weight_loss(self, loss, model, progress):
            return loss * 0.0
    register_method(Frozen())
    search = _search(tiny_overrides, "no-weight-step-test", weight_decay=0.0)
    before = [p.detach().clone() for p in search.model.weight_parameters()]
    rec = search.step()
    assert rec.variant == "no-weight-step-test" and rec.losses["train"] > 0
    assert all(torch.equal(a, b) for a, b in zip(before, search.model.weight_parameters()))


def test_edge_weights_hook_mixes_the_ops_in_both_phases(tiny_overrides):
    phases = []

    class Silent(Method):
        name = "silent-test"

        def edge_weights(self, alpha, phase="arch", progress=0.0):
            phases.append(phase)
            return F.softmax(alpha, -1) * 0.0               # every op weighted 0: cells output 0
    register_method(Silent())
    search = _search(tiny_overrides, "silent-test")
    search.step()
    assert {"arch", "weight"} <= set(phases)
    x, _ = next(search.train_stream)
    search.model.eval()
    logits = search.model(x)                               # (B, classes): the classifier's bias only
    torch.testing.assert_close(logits, search.model.classifier.bias.expand_as(logits))


def test_monitors_epoch_hooks_and_arch_freeze_reach_the_records(tiny_overrides):
    calls = []

    class Watch(Method):
        name = "watch-test"

        def monitors(self, search):
            return {"alpha_norm": torch.linalg.vector_norm(search.model.alpha_normal.detach())}

        def arch_frozen(self, epoch, config):
            return epoch == 0

        def on_epoch_start(self, search, epoch):
            calls.append(("start", epoch, search.step_count))

        def on_epoch_end(self, search, epoch):
            calls.append(("end", epoch, search.step_count))
    register_method(Watch())
    search = _search(tiny_overrides, "watch-test")
    search.run()
    steps = [r for r in search.history if r.kind == "step"]
    assert [r.arch_updated for r in steps] == [False] * 3 + [True] * 3
    assert calls == [("start", 0, 0), ("end", 0, 3), ("start", 1, 3), ("end", 1, 6)]
    assert steps[-1].monitors["alpha_norm"] == pytest.approx(
        float(torch.linalg.vector_norm(search.model.alpha_normal.detach())), rel=1e-6)
    assert steps[-1]["alpha_norm"] == steps[-1].monitors["alpha_norm"]
