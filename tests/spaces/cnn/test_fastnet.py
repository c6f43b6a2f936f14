"""The fast supernet equals the reference: outputs, gradients, running statistics, bilevel."""
import pytest
import torch
import torch.nn.functional as F

from dartsviz.bilevel import arch_gradient
from dartsviz.spaces.cnn.fastnet import FastSearchNetwork
from dartsviz.spaces.cnn.supernet import SearchNetwork

ATOL = 1e-10
RTOL = 1e-9


def _pair(C=4, layers=3, in_channels=1, nodes=4, seed=0):
    torch.manual_seed(seed)
    ref = SearchNetwork(C, 10, layers, in_channels, nodes, alpha_init_std=1.0).double()
    fast = FastSearchNetwork(C, 10, layers, in_channels, nodes, alpha_init_std=1.0).double()
    fast.load_state_dict(ref.state_dict())
    return ref, fast


def _randomise_running_stats(ref, fast, seed=1):
    """Different running statistics on every BatchNorm, so eval mode is a real test."""
    g = torch.Generator().manual_seed(seed)
    for n, b in ref.named_buffers():
        if n.endswith("running_mean"):
            b.copy_(torch.randn(b.shape, generator=g, dtype=b.dtype))
        elif n.endswith("running_var"):
            b.copy_(0.5 + torch.rand(b.shape, generator=g, dtype=b.dtype))
    fast.load_state_dict(ref.state_dict())


@pytest.fixture(params=["cpu", "generic"])
def kernels(request, monkeypatch):
    """cpu: the CPU formulations; generic: the plain conv2d/pooling ones CUDA takes, run on CPU."""
    import dartsviz.spaces.cnn.fast_kernels as fast_kernels
    monkeypatch.setattr(fast_kernels, "CPU_KERNELS", request.param == "cpu")
    return request.param


def _close(a, b, what):
    assert a.shape == b.shape, what
    assert torch.allclose(a, b, atol=ATOL, rtol=RTOL), f"{what}: max diff {(a - b).abs().max():.3e}"


def _assert_fast(fast, calls=None):
    """Every forward pass of `fast` took the edge-batched path; none fell back to the reference."""
    assert fast.fallback_reason is None, fast.fallback_reason
    assert fast.reference_fallbacks == 0
    assert fast.last_path == "fast"
    assert fast.fast_path_calls >= 1 if calls is None else fast.fast_path_calls == calls


def _batch(B=6, C=1, H=8, seed=3):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(B, C, H, H, generator=g, dtype=torch.float64),
            torch.randint(0, 10, (B,), generator=g))


def test_same_state_dict_keys_and_parameters():
    ref, fast = _pair()
    assert list(ref.state_dict()) == list(fast.state_dict())
    assert fast.fallback_reason is None and fast.last_path is None and fast.fast_path_calls == 0
    assert [tuple(t.shape) for t in ref.state_dict().values()] == [tuple(t.shape) for t in fast.state_dict().values()]
    assert [n for n, _ in ref.named_weight_parameters()] == [n for n, _ in fast.named_weight_parameters()]
    assert len(fast.arch_parameters()) == 2
    assert fast.genotype() == ref.genotype()
    for k in ("normal", "reduce"):
        assert torch.equal(fast.probs()[k], ref.probs()[k])


@pytest.mark.parametrize("mode", ["train", "eval"])
@pytest.mark.parametrize("size", [8, 7])
def test_outputs_and_gradients_equal(mode, size, kernels):
    ref, fast = _pair()
    if mode == "eval":
        _randomise_running_stats(ref, fast)
        ref.eval(), fast.eval()
    x, y = _batch(H=size)
    outs = []
    for net in (ref, fast):
        logits = net(x)
        loss = F.cross_entropy(logits, y) + 0.1 * (logits ** 2).mean()
        grads = torch.autograd.grad(loss, list(net.parameters()))
        outs.append((logits, grads))
    _close(outs[0][0], outs[1][0], "logits")
    _assert_fast(fast, calls=1)
    names = [n for n, _ in ref.named_parameters()]
    for n, ga, gb in zip(names, outs[0][1], outs[1][1]):
        _close(ga, gb, f"grad {n}")
    assert {"alpha_normal", "alpha_reduce"} <= set(names)


def test_running_statistics_update_like_reference(kernels):
    ref, fast = _pair()
    for seed in range(3):
        x, _ = _batch(seed=seed)
        ref(x), fast(x)
    rs, fs = ref.state_dict(), fast.state_dict()
    for n in rs:
        if rs[n].is_floating_point():
            _close(rs[n], fs[n], n)
        else:
            assert torch.equal(rs[n], fs[n]), n
    # and then eval mode with those statistics
    ref.eval(), fast.eval()
    x, _ = _batch(seed=9)
    _close(ref(x), fast(x), "eval logits after training")
    _assert_fast(fast, calls=4)


def test_reduction_every_cell_and_other_shapes():
    # layers=2: cells 0 and 1 are both reductions; 3 input channels, 5 nodes, odd size
    ref, fast = _pair(C=6, layers=2, in_channels=3, nodes=5, seed=4)
    x, y = _batch(B=5, C=3, H=9)
    la, lb = ref(x), fast(x)
    _close(la, lb, "logits")
    _assert_fast(fast, calls=1)
    assert all(c.reduction for c in fast.cells)
    ga = torch.autograd.grad(F.cross_entropy(la, y), [ref.alpha_reduce] + ref.weight_parameters())
    gb = torch.autograd.grad(F.cross_entropy(lb, y), [fast.alpha_reduce] + fast.weight_parameters())
    for a, b in zip(ga, gb):
        _close(a, b, "grad")


def test_arch_passes_leave_buffers_untouched():
    from dartsviz.bilevel import forward_with
    _, fast = _pair()
    before = {n: b.clone() for n, b in fast.named_buffers()}
    x, _ = _batch()
    forward_with(fast, None, x)
    _assert_fast(fast, calls=1)
    for n, b in fast.named_buffers():
        assert torch.equal(before[n], b), n


@pytest.mark.parametrize("order,hvp", [(1, "finite"), (2, "finite"), (2, "exact")])
def test_arch_gradient_equal(order, hvp, kernels):
    ref, fast = _pair(C=2)
    train, val = _batch(B=4, seed=5), _batch(B=4, seed=6)
    # non-trivial momentum buffers for the virtual step
    g = torch.Generator().manual_seed(7)
    bufs = {n: 0.01 * torch.randn(p.shape, generator=g, dtype=p.dtype) for n, p in ref.named_weight_parameters()}
    out = []
    for net in (ref, fast):
        grads, loss, logits = arch_gradient(net, train, val, order=order, hvp=hvp, xi=0.05,
                                            momentum=0.9, weight_decay=3e-4, momentum_buffers=bufs)
        out.append((grads, loss, logits))
    _assert_fast(fast)
    _close(out[0][1], out[1][1], "val loss")
    _close(out[0][2], out[1][2], "val logits")
    for a, b in zip(out[0][0], out[1][0]):
        _close(a, b, f"arch gradient order {order} {hvp}")


def test_search_steps_equal_between_impls():
    from dartsviz.data import load_data
    from dartsviz.search import Search, SearchConfig
    data = load_data("synthetic:1x8x8", device=torch.device("cpu"))
    recs = {}
    for impl in ("reference", "fast"):
        cfg = SearchConfig.preset("tiny", dataset="synthetic:1x8x8", impl=impl, dtype="float64",
                                  device="cpu", channels=2, batch_size=8, warmup_epochs=0, order=2, steps_per_epoch=2, epochs=2)
        s = Search(cfg, data=data)
        recs[impl] = [s.step() for _ in range(2)]
        recs[impl + "_state"] = s.model.state_dict()
        if impl == "fast":
            assert isinstance(s.model, FastSearchNetwork)
            _assert_fast(s.model)
    for a, b in zip(recs["reference"], recs["fast"]):
        assert abs(a["train_loss"] - b["train_loss"]) < 1e-9
        assert abs(a["val_loss"] - b["val_loss"]) < 1e-9
        assert a["genotype"] == b["genotype"]
    for n, t in recs["reference_state"].items():
        u = recs["fast_state"][n]
        if t.is_floating_point():
            assert torch.allclose(t, u, atol=1e-9, rtol=1e-8), n
        else:
            assert torch.equal(t, u), n


def test_fallback_to_reference_is_recorded_and_warned(monkeypatch):
    # an op the fast path does not know (sep_conv_3x3 built as a DilConv): the reference runs
    from dartsviz.spaces.cnn import ops
    monkeypatch.setitem(ops.OPS, "sep_conv_3x3", lambda C, stride, affine: ops.DilConv(C, C, 3, stride, 1, 1, affine))
    ref, fast = _pair()
    assert "sep_conv_3x3 is a DilConv" in fast.fallback_reason
    x, _ = _batch()
    with pytest.warns(RuntimeWarning, match="reference forward"):
        lb = fast(x)
    _close(ref(x), lb, "logits")
    fast(x)
    assert (fast.last_path, fast.fast_path_calls, fast.reference_fallbacks) == ("reference", 0, 2)
    with pytest.raises(AssertionError):
        _assert_fast(fast)


def test_ops_name_their_submodules():
    from dartsviz.spaces.cnn.ops import make_op
    sep, dil = make_op("sep_conv_3x3", 4, 2, False), make_op("dil_conv_5x5", 4, 1, False)
    assert (sep.block1, sep.block2) == (sep.op[0], sep.op[1])
    assert (sep.block1.dw, sep.block1.pw, sep.block1.bn) == (sep.op[0].op[1], sep.op[0].op[2], sep.op[0].op[3])
    assert (dil.dw, dil.pw, dil.bn) == (dil.op[1], dil.op[2], dil.op[3])
    pool = make_op("avg_pool_3x3", 4, 1, False)
    assert (pool.pool, pool.bn) == (pool[0], pool[1])
    assert list(sep.state_dict())[:3] == ["op.0.op.1.weight", "op.0.op.2.weight", "op.0.op.3.running_mean"]
    assert list(pool.state_dict())[0] == "1.running_mean"


def test_fast_is_default_impl():
    from dartsviz import SearchConfig
    from dartsviz.spaces.cnn import IMPLS
    assert SearchConfig().impl == "fast"
    assert SearchConfig.preset("tiny").impl == "fast"
    assert "reference" in IMPLS


@pytest.mark.parametrize("H", [2, 3, 4, 8, 16])
@pytest.mark.parametrize("k,dil", [(3, 1), (5, 1), (3, 2), (5, 2)])
@pytest.mark.parametrize("stride", [1, 2])
def test_dwconv_formulations_equal_conv2d(H, k, dil, stride):
    from dartsviz.spaces.cnn.fast_kernels import dwconv
    g = torch.Generator().manual_seed(H * 100 + k * 10 + dil + stride)
    pad = dil * (k - 1) // 2
    x = torch.randn(3, 5, H, H, generator=g, dtype=torch.float64, requires_grad=True)
    w = torch.randn(5, 1, k, k, generator=g, dtype=torch.float64, requires_grad=True)
    a = F.conv2d(x, w, None, stride, pad, dil, 5)
    b = dwconv(x, w, stride, pad, dil)
    _close(a, b, "dwconv")
    ga = torch.autograd.grad((a ** 2).sum(), (x, w))
    gb = torch.autograd.grad((b ** 2).sum(), (x, w))
    for u, v in zip(ga, gb):
        _close(u, v, "dwconv grad")


def test_pwconv_equals_grouped_conv2d():
    from dartsviz.spaces.cnn.fast_kernels import pwconv
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 12, 5, 4, generator=g, dtype=torch.float64)
    w = torch.randn(6, 4, 1, 1, generator=g, dtype=torch.float64)
    _close(F.conv2d(x, w, None, 1, 0, 1, 3), pwconv(x, w, 3), "pwconv")


def _assert_logits_and_grads_equal(ref, fast, x, y):
    """One forward pass of each: the same logits, and the same gradient of every parameter."""
    la, lb = ref(x), fast(x)
    _close(la, lb, "logits")
    _assert_fast(fast, calls=1)
    ga = torch.autograd.grad(F.cross_entropy(la, y), list(ref.parameters()))
    gb = torch.autograd.grad(F.cross_entropy(lb, y), list(fast.parameters()))
    for (n, _), a, b in zip(ref.named_parameters(), ga, gb):
        _close(a, b, f"grad {n}")


def test_larger_images_use_the_conv_formulations(kernels):
    # 16x16: channels_last, pixel_unshuffle and even-pixel paths inside a whole network
    ref, fast = _pair(C=2, layers=3, in_channels=3, seed=8)
    x, y = _batch(B=3, C=3, H=16, seed=8)
    _assert_logits_and_grads_equal(ref, fast, x, y)


@pytest.mark.parametrize("size,stride", [(8, 1), (8, 2), (4, 1), (2, 1), (7, 2), (9, 1), (16, 2), (32, 1), (32, 2)])
def test_pools_equal_torch_pooling(size, stride):
    from dartsviz.spaces.cnn.fast_kernels import pools
    g = torch.Generator().manual_seed(size * 10 + stride)
    x = torch.randn(3, 5, size, size, generator=g, dtype=torch.float64, requires_grad=True)
    want = torch.cat([F.max_pool2d(x, 3, stride, 1), F.avg_pool2d(x, 3, stride, 1, count_include_pad=False)], 1)
    got = pools(x, stride)
    _close(want, got, "pooled")
    gy = torch.randn(want.shape, generator=g, dtype=torch.float64)
    _close(torch.autograd.grad(want, x, gy)[0], torch.autograd.grad(got, x, gy)[0], "grad")


# -- CIFAR shape: the channels_last stage formulation (images larger than 8x8 on CPU) --------

def _cifar_pair(C=2, K=1, edge_norm=False, seed=11):
    """3x32x32 input, 3 cells: a normal cell at 32x32, reductions to 16x16 and 8x8."""
    torch.manual_seed(seed)
    kw = dict(alpha_init_std=1.0, partial_channels=K, edge_norm=edge_norm)
    ref = SearchNetwork(C, 10, 3, 3, **kw).double()
    fast = FastSearchNetwork(C, 10, 3, 3, **kw).double()
    fast.load_state_dict(ref.state_dict())
    return ref, fast


@pytest.fixture(params=[(64, True), (0, True), (64, False), (0, False)],
                ids=["mix-matmul", "mix-broadcast", "mix-matmul-unfolded", "mix-broadcast-unfolded"])
def mixer(request, monkeypatch):
    """Both formulations of the op-weighted sums of `_stage_cl` (matmul up to MIX_MATMUL_MAX),
    with the conv ops' weights folded into their last BatchNorm (FOLD_WEIGHTS) and without."""
    import dartsviz.spaces.cnn.fast_kernels as fast_kernels
    monkeypatch.setattr(fast_kernels, "MIX_MATMUL_MAX", request.param[0])
    monkeypatch.setattr(fast_kernels, "FOLD_WEIGHTS", request.param[1])
    return request.param


@pytest.mark.parametrize("mode", ["train", "eval"])
@pytest.mark.parametrize("K,edge_norm", [(1, False), (2, True)])
def test_cifar_shape_outputs_gradients_and_stats_equal(mode, K, edge_norm, mixer):
    ref, fast = _cifar_pair(C=4 if K > 1 else 2, K=K, edge_norm=edge_norm)
    if mode == "eval":
        _randomise_running_stats(ref, fast)
        ref.eval(), fast.eval()
    x, y = _batch(B=3, C=3, H=32, seed=12)
    outs = []
    for net in (ref, fast):
        logits = net(x)
        loss = F.cross_entropy(logits, y) + 0.1 * (logits ** 2).mean()
        outs.append((logits, torch.autograd.grad(loss, list(net.parameters()))))
    names = [n for n, _ in ref.named_parameters()]
    assert {"alpha_normal", "alpha_reduce"} <= set(names)
    _assert_step_equal(ref, fast, outs)


def _assert_step_equal(ref, fast, outs):
    """outs: [(logits, grads)] of ref then fast; logits, every gradient and the running statistics agree."""
    _close(outs[0][0], outs[1][0], "logits")
    _assert_fast(fast, calls=1)
    for (n, _), ga, gb in zip(ref.named_parameters(), outs[0][1], outs[1][1]):
        _close(ga, gb, f"grad {n}")
    rs, fs = ref.state_dict(), fast.state_dict()          # running statistics (train mode updates them)
    for n in rs:
        if rs[n].is_floating_point():
            _close(rs[n], fs[n], n)
        else:
            assert torch.equal(rs[n], fs[n]), n


def test_cifar_shape_exact_hvp_arch_gradient_equal(mixer):
    # second order with the exact Hessian-vector product: double backward through _stage_cl
    _assert_exact_hvp_equal(H=32, seed=13)


def _assert_exact_hvp_equal(H, seed):
    """The second-order arch gradient with the exact HVP (double backward) agrees at H x H inputs."""
    ref, fast = _cifar_pair(C=2, seed=seed)
    train, val = _batch(B=2, C=3, H=H, seed=seed + 1), _batch(B=2, C=3, H=H, seed=seed + 2)
    out = [arch_gradient(net, train, val, order=2, hvp="exact", xi=0.05, momentum=0.9, weight_decay=3e-4)
           for net in (ref, fast)]
    _assert_fast(fast)
    _close(out[0][1], out[1][1], "val loss")
    for a, b in zip(out[0][0], out[1][0]):
        _close(a, b, "arch gradient order 2 exact")


@pytest.mark.parametrize("H", [5, 16, 32])
@pytest.mark.parametrize("k,dil", [(3, 1), (5, 1), (3, 2), (5, 2)])
@pytest.mark.parametrize("stride", [1, 2])
def test_dwconv_cl_equals_conv2d_with_double_backward(H, k, dil, stride):
    from dartsviz.spaces.cnn.fast_kernels import dwconv_cl
    g = torch.Generator().manual_seed(H * 100 + k * 10 + dil + stride)
    pad = dil * (k - 1) // 2
    x = torch.randn(2, 3, H, H, generator=g, dtype=torch.float64).contiguous(memory_format=torch.channels_last)
    x.requires_grad_()
    w = torch.randn(3, 1, k, k, generator=g, dtype=torch.float64, requires_grad=True)
    a = F.conv2d(x, w, None, stride, pad, dil, 3)
    b = dwconv_cl(x, w, stride, pad, dil)
    _close(a, b, "dwconv_cl")
    assert b.is_contiguous(memory_format=torch.channels_last)
    gy = torch.randn(a.shape, generator=g, dtype=torch.float64)
    ga = torch.autograd.grad(a, (x, w), gy, create_graph=True)
    gb = torch.autograd.grad(b, (x, w), gy, create_graph=True)
    for u, v in zip(ga, gb):
        _close(u, v, "dwconv_cl grad")
    # double backward: the gradient of <grad_x, v> w.r.t. w (a Hessian-vector product)
    v = torch.randn(x.shape, generator=g, dtype=torch.float64)
    _close(torch.autograd.grad((ga[0] * v).sum(), w)[0], torch.autograd.grad((gb[0] * v).sum(), w)[0], "hvp")


# -- `_stage_cl` in parts (CL_PARTS) and the shared even pixels of stride-2 stages (SHARED_EVEN) --

@pytest.fixture(params=[(((0,), (1,), (2,), (3,)), True, True), (((0, 1), (2, 3)), True, True),
                        (((0,), (1, 2), (3,)), False, True), (((0, 1, 2, 3),), False, True),
                        (((0,), (1,), (2,), (3,)), True, False)],
                ids=["each-kind-even", "pairs-even", "mixed-part", "one-part", "each-kind-unfolded"])
def cl_parts(request, monkeypatch):
    """The conv kinds of a channels_last stage in several part layouts, with and without the
    once-sliced even pixels of stride-2 stages, with and without the op weights folded into
    the BatchNorms (FOLD_WEIGHTS)."""
    import dartsviz.spaces.cnn.fast_kernels as fast_kernels
    parts, even, fold = request.param
    monkeypatch.setattr(fast_kernels, "CL_PARTS", parts)
    monkeypatch.setattr(fast_kernels, "SHARED_EVEN", even)
    monkeypatch.setattr(fast_kernels, "FOLD_WEIGHTS", fold)
    return request.param


@pytest.mark.parametrize("H,K,edge_norm,aux", [(32, 1, False, False), (30, 2, True, False), (30, 1, False, True)],
                         ids=["32", "30-pc-edge-norm", "30-aux-skip"])
def test_cl_parts_outputs_gradients_and_stats_equal(H, K, edge_norm, aux, cl_parts):
    # H=30: the reduction from 15x15 takes odd sizes through the shared even-pixel slice
    torch.manual_seed(17)
    kw = dict(alpha_init_std=1.0, partial_channels=K, edge_norm=edge_norm, aux_skip=aux)
    C = 4 if K > 1 else 2
    ref = SearchNetwork(C, 10, 3, 3, **kw).double()
    fast = FastSearchNetwork(C, 10, 3, 3, **kw).double()
    fast.load_state_dict(ref.state_dict())
    x, y = _batch(B=3, C=3, H=H, seed=18)
    outs = []
    for net in (ref, fast):
        logits = net(x)
        loss = F.cross_entropy(logits, y) + 0.1 * (logits ** 2).mean()
        ps = list(net.parameters())                       # (DARTS-' aux weight of an unused row: no gradient)
        gs = torch.autograd.grad(loss, ps, allow_unused=True)
        outs.append((logits, [torch.zeros_like(p) if g is None else g for p, g in zip(ps, gs)]))
    _assert_step_equal(ref, fast, outs)


def test_cl_parts_exact_hvp_arch_gradient_equal(cl_parts):
    # double backward through every part layout, at a size with a stride-2 stage on odd pixels
    _assert_exact_hvp_equal(H=30, seed=19)


@pytest.mark.parametrize("nodes", [1, 2, 3])
def test_fewer_nodes_equal_reference(nodes, kernels):
    ref, fast = _pair(C=4, layers=3, nodes=nodes, seed=5)
    x, y = _batch(H=8)
    _assert_logits_and_grads_equal(ref, fast, x, y)


@pytest.mark.parametrize("K,S", [(1, 2), (2, 1), (2, 2), (4, 2)])
def test_sum_over_kinds_and_sources_equals_sum_with_its_derivatives(K, S):
    # _SumKS (the folded op weights' plain sum) against torch's sum; gradcheck and gradgradcheck
    from dartsviz.spaces.cnn.fast_kernels import _SumKS
    g = torch.Generator().manual_seed(K * 10 + S)
    z = torch.randn(5, K, 3, S, 2, generator=g, dtype=torch.float64, requires_grad=True)   # (P, K, n, S, C)
    _close(_SumKS.apply(z), z.sum((1, 3)), "sum")
    assert torch.autograd.gradcheck(_SumKS.apply, (z,))
    assert torch.autograd.gradgradcheck(_SumKS.apply, (z,))
