"""nn.init's deprecated aliases, nn.utils' clip_grad_norm / get_total_norm / clip_grads_with_norm_,
BatchNorm fusion, the hook-based spectral_norm, skip_init and nn.utils.prune, against PyTorch."""
import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")
import torch.nn.utils.prune  # noqa: E402  (not imported by torch.nn.utils)

import tapegrad as tg  # noqa: E402
from tapegrad.nn.utils import prune  # noqa: E402

R = np.random.default_rng(0)


def _np(t):
    return t.detach().numpy() if hasattr(t, "detach") else np.asarray(t)


def _load(gm, tm):
    gm.load_state_dict({k: tg.tensor(v.detach().numpy().copy()) for k, v in tm.state_dict().items()})


@pytest.mark.parametrize("name", ["uniform", "normal", "xavier_uniform", "xavier_normal", "kaiming_uniform",
                                  "kaiming_normal", "orthogonal", "eye"])
def test_init_deprecated_alias_warns_and_fills(name):
    w = tg.zeros(6, 4)
    with pytest.warns(FutureWarning, match=f"nn.init.{name}_"):
        out = getattr(tg.nn.init, name)(w)
    assert out is w and np.abs(_np(w)).sum() > 0
    with pytest.warns(FutureWarning):
        tg.nn.init.constant(w, 3.0)
    assert (_np(w) == 3).all()


def test_clip_grad_helpers_match_torch():
    gs = [R.standard_normal((3, 4)), R.standard_normal(5)]
    res = {}
    for M in (torch, tg):
        ps = [M.nn.Parameter(M.zeros(*g.shape, dtype=M.float64)) for g in gs]
        for p, g in zip(ps, gs):
            p.grad = M.tensor(g.copy())
        total = M.nn.utils.get_total_norm([p.grad for p in ps], norm_type=3.0)
        M.nn.utils.clip_grads_with_norm_(ps, 1.5, total)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            again = M.nn.utils.clip_grad_norm(ps, 0.5)
        res[M] = [float(total), float(again)] + [_np(p.grad) for p in ps]
    for a, b in zip(res[torch], res[tg]):
        np.testing.assert_allclose(a, b, rtol=1e-12)
    with pytest.raises(RuntimeError, match="non-finite"):
        tg.nn.utils.get_total_norm([tg.tensor([np.inf])], error_if_nonfinite=True)


def test_clip_grad_norm_float32_fast_path_matches_float64():
    # float32 gradients' 2-norms are summed by float32 BLAS dots, not float64 copies; out of float32's
    # range (huge, tiny, inf, NaN) they fall back to float64 as before; a coefficient of 1 scales nothing
    for scale, bad in ((1.0, None), (1e19, None), (1e-22, None), (1.0, np.inf), (1.0, np.nan)):
        gs = [(R.standard_normal(s) * scale).astype(np.float32) for s in ((300, 70), (70,), (5000,))]
        if bad is not None:
            gs[1][3] = bad
        ref = np.linalg.norm([np.linalg.norm(g.astype(np.float64)) for g in gs])
        ps = [tg.nn.Parameter(tg.zeros(*g.shape)) for g in gs]
        for p, g in zip(ps, gs):
            p.grad = tg.tensor(g.copy())
        np.testing.assert_allclose(tg.nn.utils.get_total_norm([p.grad for p in ps]).item(), np.float32(ref),
                                   rtol=2e-7)
        if not np.isfinite(ref):  # the coefficient is 0 or NaN: a non-finite total is returned as it is
            np.testing.assert_equal(tg.nn.utils.clip_grad_norm_(ps, 1.0).item(), np.float32(ref))
            continue
        total = tg.nn.utils.clip_grad_norm_(ps, 1e30).item()
        np.testing.assert_allclose(total, np.float32(ref), rtol=2e-7)
        for p, g in zip(ps, gs):
            assert p.grad.numpy().tobytes() == g.tobytes()
        if scale == 1.0 and bad is None:
            tg.nn.utils.clip_grad_norm_(ps, 0.5 * ref)
            for p, g in zip(ps, gs):
                np.testing.assert_allclose(p.grad.numpy(), g * (0.5 * ref / (ref + 1e-6)), rtol=1e-6)


@pytest.mark.parametrize("kind", ["conv", "convT", "linear"])
def test_fuse_bn_matches_torch(kind):
    def make(M):
        if kind == "conv":
            return M.nn.Conv2d(2, 3, 3), M.nn.BatchNorm2d(3), (2, 2, 5, 5)
        if kind == "convT":
            return M.nn.ConvTranspose2d(2, 3, 3, bias=False), M.nn.BatchNorm2d(3), (2, 2, 4, 4)
        return M.nn.Linear(4, 3), M.nn.BatchNorm1d(3), (5, 4)
    tc, tb, shape = make(torch)
    gc, gb, _ = make(tg)
    tc, tb, gc, gb = tc.double(), tb.double(), gc.double(), gb.double()
    with torch.no_grad():
        tb.running_mean.uniform_(-1, 1)
        tb.running_var.uniform_(0.5, 2)
        tb.weight.uniform_(-1, 1)
        tb.bias.uniform_(-1, 1)
    _load(gc, tc)
    _load(gb, tb)
    x = R.standard_normal(shape)
    outs = []
    for M, c, b in ((torch, tc, tb), (tg, gc, gb)):
        c.eval(), b.eval()
        if kind == "linear":
            fused = M.nn.utils.fuse_linear_bn_eval(c, b)
        else:
            fused = M.nn.utils.fuse_conv_bn_eval(c, b, transpose=kind == "convT")
        assert isinstance(fused.weight, M.nn.Parameter) and fused is not c
        y = fused(M.tensor(x))
        np.testing.assert_allclose(_np(y), _np(b(c(M.tensor(x)))), rtol=1e-10, atol=1e-12)
        outs.append(_np(y))
    np.testing.assert_allclose(outs[0], outs[1], rtol=1e-10, atol=1e-12)
    with pytest.raises(AssertionError, match="eval"):
        tg.nn.utils.fuse_conv_bn_eval(tg.nn.Conv2d(2, 3, 3), tg.nn.BatchNorm2d(3))


@pytest.mark.parametrize("kind", ["linear", "convT"])
def test_spectral_norm_hooks_match_torch(kind):
    def make(M):
        return M.nn.Linear(4, 3) if kind == "linear" else M.nn.ConvTranspose2d(2, 3, 3)
    shape = (5, 4) if kind == "linear" else (2, 2, 4, 4)
    tm, gm = make(torch).double(), make(tg).double()
    _load(gm, tm)
    tm, gm = torch.nn.utils.spectral_norm(tm, n_power_iterations=2), tg.nn.utils.spectral_norm(gm, n_power_iterations=2)
    assert sorted(n for n, _ in gm.named_parameters()) == sorted(n for n, _ in tm.named_parameters())
    assert sorted(n for n, _ in gm.named_buffers()) == sorted(n for n, _ in tm.named_buffers())
    gm.weight_u.copy_(tg.tensor(tm.weight_u.numpy().copy()))
    gm.weight_v.copy_(tg.tensor(tm.weight_v.numpy().copy()))
    x = R.standard_normal(shape)
    for step in range(3):
        for m in (tm, gm):
            m.train(step < 2)
        yt, yg = tm(torch.tensor(x)), gm(tg.tensor(x))
        np.testing.assert_allclose(_np(yg), _np(yt), rtol=1e-10, atol=1e-12)
        (yt ** 2).sum().backward()
        (yg ** 2).sum().backward()
        np.testing.assert_allclose(_np(gm.weight_orig.grad), _np(tm.weight_orig.grad), rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(_np(gm.weight_u), _np(tm.weight_u), rtol=1e-10, atol=1e-12)
    torch.nn.utils.remove_spectral_norm(tm)
    tg.nn.utils.remove_spectral_norm(gm)
    np.testing.assert_allclose(_np(gm.weight), _np(tm.weight), rtol=1e-10, atol=1e-12)
    assert isinstance(gm.weight, tg.nn.Parameter) and not gm._forward_pre_hooks
    with pytest.raises(ValueError, match="not found"):
        tg.nn.utils.remove_spectral_norm(gm)


def test_skip_init_and_memory_format():
    m = tg.nn.utils.skip_init(tg.nn.Linear, 10, 3, dtype=tg.float64)
    assert m.weight.shape == (3, 10) and m.weight.dtype == tg.float64
    with pytest.raises(RuntimeError, match="device"):
        tg.nn.utils.skip_init(tg.nn.ReLU)
    with pytest.raises(RuntimeError, match="Module"):
        tg.nn.utils.skip_init(int)
    c = tg.nn.Conv2d(2, 3, 3)
    assert tg.nn.utils.convert_conv2d_weight_memory_format(c, "channels_last") is c


def _pruned_pair(fn, *args, **kwargs):
    tm = torch.nn.Conv2d(3, 4, 2).double()
    gm = tg.nn.Conv2d(3, 4, 2).double()
    _load(gm, tm)
    return getattr(torch.nn.utils.prune, fn)(tm, "weight", *args, **kwargs), getattr(prune, fn)(gm, "weight", *args,
                                                                                                **kwargs)


@pytest.mark.parametrize("fn,args", [("l1_unstructured", (0.3,)), ("l1_unstructured", (5,)),
                                     ("ln_structured", (0.5, 2, 0)), ("ln_structured", (1, 1, 1)),
                                     ("ln_structured", (1, float("inf"), -1)), ("identity", ())])
def test_prune_matches_torch_and_stacks(fn, args):
    tm, gm = _pruned_pair(fn, *args)
    assert sorted(n for n, _ in gm.named_parameters()) == sorted(n for n, _ in tm.named_parameters())
    assert sorted(n for n, _ in gm.named_buffers()) == sorted(n for n, _ in tm.named_buffers())
    np.testing.assert_array_equal(_np(gm.weight_mask), _np(tm.weight_mask))
    # a second pruning acts on what the first left (a PruningContainer)
    torch.nn.utils.prune.ln_structured(tm, "weight", 1, 2, 0)
    prune.ln_structured(gm, "weight", 1, 2, 0)
    torch.nn.utils.prune.l1_unstructured(tm, "weight", 0.2)
    prune.l1_unstructured(gm, "weight", 0.2)
    np.testing.assert_array_equal(_np(gm.weight_mask), _np(tm.weight_mask))
    x = R.standard_normal((2, 3, 4, 4))
    yt, yg = tm(torch.tensor(x)), gm(tg.tensor(x))
    np.testing.assert_allclose(_np(yg), _np(yt), rtol=1e-12, atol=1e-12)
    yt.sum().backward()
    yg.sum().backward()
    np.testing.assert_allclose(_np(gm.weight_orig.grad), _np(tm.weight_orig.grad), rtol=1e-12, atol=1e-12)
    assert prune.is_pruned(gm)
    prune.remove(gm, "weight")
    torch.nn.utils.prune.remove(tm, "weight")
    np.testing.assert_allclose(_np(gm.weight), _np(tm.weight), rtol=1e-12)
    assert not prune.is_pruned(gm) and isinstance(gm.weight, tg.nn.Parameter)
    with pytest.raises(ValueError, match="has to be pruned"):
        prune.remove(gm, "weight")


def test_prune_global_custom_random_and_errors():
    nets = []
    for M in (torch, tg):
        a, b = M.nn.Linear(4, 3).double(), M.nn.Linear(3, 2).double()
        nets.append((a, b))
    _load(nets[1][0], nets[0][0])
    _load(nets[1][1], nets[0][1])
    torch.nn.utils.prune.global_unstructured([(m, "weight") for m in nets[0]], torch.nn.utils.prune.L1Unstructured,
                                             amount=7)
    prune.global_unstructured([(m, "weight") for m in nets[1]], prune.L1Unstructured, amount=7)
    for t, g in zip(*nets):
        np.testing.assert_array_equal(_np(g.weight_mask), _np(t.weight_mask))
    m = prune.random_unstructured(tg.nn.Linear(5, 4), "weight", amount=0.5)
    assert int((m.weight_mask == 0).sum()) == 10
    m = prune.random_structured(tg.nn.Linear(5, 4), "weight", amount=2, dim=0)
    assert (_np(m.weight_mask).sum(1) == 0).sum() == 2
    mask = tg.tensor(R.integers(0, 2, (4, 5)).astype(np.float32))
    m = prune.custom_from_mask(tg.nn.Linear(5, 4), "bias", mask=tg.ones(4))
    m = prune.custom_from_mask(m, "weight", mask=mask)
    np.testing.assert_array_equal(_np(m.weight), _np(m.weight_orig) * _np(mask))
    with pytest.raises(ValueError, match="amount"):
        prune.l1_unstructured(tg.nn.Linear(2, 2), "weight", amount=1.5)
    lin = tg.nn.Linear(2, 2)
    with pytest.raises(ValueError, match="smaller than"):
        prune.l1_unstructured(lin, "weight", amount=9)
    assert isinstance(lin.weight, tg.nn.Parameter) and "weight_orig" not in dict(lin.named_parameters())
    with pytest.raises(ValueError, match="multidimensional"):
        prune.ln_structured(tg.nn.Linear(2, 2), "bias", 1, 2, 0)


def test_transfer_parametrizations_and_factory_kwargs():
    class Double(tg.nn.Module):
        def forward(self, x):
            return 2 * x

    src = tg.nn.Linear(3, 2)
    tg.nn.utils.parametrize.register_parametrization(src, "weight", Double())
    dst = tg.nn.utils.parametrize.transfer_parametrizations_and_params(src, tg.nn.Linear(3, 2))
    assert tg.nn.utils.parametrize.is_parametrized(dst, "weight")
    assert dst.parametrizations.weight.original is src.parametrizations.weight.original
    np.testing.assert_array_equal(dst.weight.detach().numpy(), src.weight.detach().numpy())
    for kw in ({"dtype": "float64"}, {"factory_kwargs": {"device": "cpu"}, "dtype": "float32"}, None):
        assert tg.nn.factory_kwargs(kw) == torch.nn.factory_kwargs(kw)
    with pytest.raises(TypeError, match="unexpected"):
        tg.nn.factory_kwargs({"bias": True})
    with pytest.raises(TypeError, match="twice"):
        tg.nn.factory_kwargs({"dtype": 1, "factory_kwargs": {"dtype": 2}})
