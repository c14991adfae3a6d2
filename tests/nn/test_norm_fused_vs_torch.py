"""The fused batch_norm / group_norm / instance_norm ops (tapegrad/ops/normalization.py) through
the modules, against PyTorch: several training steps with the running statistics, evaluation,
momentum=None, every layout, gradients for any subset of (input, weight, bias), a retained graph
run twice, and the paths that keep the composite formula (16-bit, mixed dtypes)."""
import numpy as np
import pytest

import tapegrad as tg

torch = pytest.importorskip("torch")

TOL = {"float32": dict(rtol=2e-5, atol=2e-5), "float64": dict(rtol=1e-10, atol=1e-11)}


def pair(tg_mod, torch_mod, dtype):
    """The same module in both, float dtype ``dtype``, with drawn weight and bias."""
    rng = np.random.default_rng(3)
    tdt = getattr(torch, dtype)
    torch_mod.to(tdt)
    with torch.no_grad():
        for name in ("weight", "bias"):
            p = getattr(torch_mod, name, None)
            if p is not None:
                p.copy_(torch.tensor(rng.standard_normal(tuple(p.shape))))
    tg_mod.to(getattr(tg, dtype))
    tg_mod.load_state_dict({k: tg.tensor(v.detach().numpy()) for k, v in torch_mod.state_dict().items()})
    return tg_mod, torch_mod


def check_steps(tg_mod, torch_mod, shape, dtype, steps=3, eval_too=True):
    rng = np.random.default_rng(4)
    for step in range(steps + eval_too):
        if step == steps:
            tg_mod.eval()
            torch_mod.eval()
        x = rng.standard_normal(shape) * 2 + step
        g = rng.standard_normal(shape)
        X = tg.tensor(x, dtype=getattr(tg, dtype), requires_grad=True)
        tX = torch.tensor(x, dtype=getattr(torch, dtype), requires_grad=True)
        y, ty = tg_mod(X), torch_mod(tX)
        y.backward(tg.tensor(g, dtype=y.dtype))
        ty.backward(torch.tensor(g, dtype=ty.dtype))
        np.testing.assert_allclose(y.detach().numpy(), ty.detach().numpy(), **TOL[dtype])
        np.testing.assert_allclose(X.grad.numpy(), tX.grad.numpy(), **TOL[dtype])
        for name, b in torch_mod.named_buffers():
            np.testing.assert_allclose(getattr(tg_mod, name).numpy(), b.numpy(), **TOL[dtype], err_msg=name)
    for name, p in torch_mod.named_parameters():  # accumulated over every step
        np.testing.assert_allclose(getattr(tg_mod, name).grad.numpy(), p.grad.numpy(),
                                   rtol=TOL[dtype]["rtol"] * 10, atol=TOL[dtype]["atol"] * 10, err_msg=name)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("kind, shape, kw", [
    ("BatchNorm1d", (7, 5), {}), ("BatchNorm1d", (4, 3, 9), {"momentum": None}),
    ("BatchNorm2d", (5, 3, 7, 6), {}), ("BatchNorm2d", (2, 4, 3, 3), {"affine": False}),
    ("BatchNorm3d", (2, 3, 3, 4, 5), {"momentum": 0.5})])
def test_batch_norm_modules_match_torch(kind, shape, kw, dtype):
    m = pair(getattr(tg.nn, kind)(shape[1], **kw), getattr(torch.nn, kind)(shape[1], **kw), dtype)
    check_steps(*m, shape, dtype)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("groups, shape", [(2, (3, 4, 5, 6)), (1, (4, 6, 7)), (6, (2, 6, 3, 2, 2)), (2, (5, 8))])
def test_group_norm_module_matches_torch(groups, shape, dtype):
    m = pair(tg.nn.GroupNorm(groups, shape[1]), torch.nn.GroupNorm(groups, shape[1]), dtype)
    check_steps(*m, shape, dtype, eval_too=False)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("kw", [{}, {"affine": True}, {"track_running_stats": True, "momentum": 0.3},
                                {"affine": True, "track_running_stats": True}])
def test_instance_norm_modules_match_torch(kw, dtype):
    m = pair(tg.nn.InstanceNorm2d(3, **kw), torch.nn.InstanceNorm2d(3, **kw), dtype)
    check_steps(*m, (4, 3, 5, 6), dtype)


@pytest.mark.parametrize("fn", ["batch_norm", "group_norm"])
@pytest.mark.parametrize("wants", [(True, False, False), (False, True, False), (False, False, True),
                                   (False, True, True), (True, True, True)])
def test_gradients_of_any_subset_of_the_inputs(fn, wants):
    """The fused VJPs share one reduction through a stash; each subset of (input, weight, bias)
    must still get its own gradients, and a graph run twice (retain_graph) with another
    upstream gradient must not reuse the first run's."""
    rng = np.random.default_rng(5)
    x, w, b = rng.standard_normal((4, 6, 5)), rng.standard_normal(6), rng.standard_normal(6)

    def run(M):
        ts = [M.tensor(a, requires_grad=r) for a, r in zip((x, w, b), wants)]
        if fn == "batch_norm":
            y = M.nn.functional.batch_norm(ts[0], None, None, ts[1], ts[2], True)
        else:
            y = M.nn.functional.group_norm(ts[0], 3, ts[1], ts[2])
        grads = []
        for seed in (6, 7):
            g = M.tensor(np.random.default_rng(seed).standard_normal(x.shape))
            grads.append(M.autograd.grad(y, [t for t in ts if t.requires_grad], g, retain_graph=True))
        return [gi.detach().numpy() for gs in grads for gi in gs]

    for a, b_ in zip(run(tg), run(torch)):
        np.testing.assert_allclose(a, b_, rtol=1e-10, atol=1e-12)


def test_double_backward_through_the_fused_ops_matches_torch():
    rng = np.random.default_rng(8)
    x, w, b = rng.standard_normal((3, 4, 5)), rng.standard_normal(4), rng.standard_normal(4)

    def second(M):
        X, W, B = (M.tensor(a, requires_grad=True) for a in (x, w, b))
        F = M.nn.functional
        y = F.batch_norm(X, None, None, W, B, True) * F.group_norm(X, 2, W, B).tanh()
        gx, gw = M.autograd.grad(y.sum(), [X, W], create_graph=True)
        return [t.detach().numpy() for t in M.autograd.grad((gx * gx).sum() + gw.sum(), [X, W, B])]

    for a, b_ in zip(second(tg), second(torch)):
        np.testing.assert_allclose(a, b_, rtol=1e-9, atol=1e-11)


def test_bfloat16_and_mixed_dtypes_keep_the_composite_path():
    """16-bit inputs and running statistics of another dtype than the input's are not the fused
    kernels' (they take one float32/float64 dtype); they still normalise and update the stats.
    float32 statistics beside a float64 input are refused, as PyTorch's CPU kernels refuse them;
    beside a 16-bit input they are PyTorch's "mixed" case: float32 maths, the input's dtype out."""
    pytest.importorskip("ml_dtypes")
    rng = np.random.default_rng(9)
    x = rng.standard_normal((4, 3, 5))
    rm, rv = tg.zeros(3), tg.ones(3)  # float32 beside a float64 input
    with pytest.raises(RuntimeError, match=r"batch_norm: mixed dtype \(CPU\): all inputs must share same datatype"):
        tg.nn.functional.batch_norm(tg.tensor(x), rm, rv, training=True)
    xh = tg.tensor(x, dtype=tg.float16)
    y = tg.nn.functional.batch_norm(xh, rm, rv, training=True)
    assert y.dtype == tg.float16 and rm.dtype == tg.float32
    assert y.grad_fn is None or type(y.grad_fn).__name__ != "BatchNormBackward0"
    xr = xh.numpy().astype(np.float64)
    ref = (xr - xr.mean((0, 2), keepdims=True)) / np.sqrt(xr.var((0, 2), keepdims=True) + 1e-5)
    np.testing.assert_allclose(y.numpy().astype(np.float64), ref, rtol=2e-3, atol=2e-3)
    np.testing.assert_allclose(rm.numpy(), 0.1 * xr.mean((0, 2)), rtol=1e-5, atol=1e-7)
    xb = tg.tensor(x, dtype=tg.bfloat16, requires_grad=True)
    yb = tg.nn.functional.group_norm(xb, 3)
    assert yb.dtype == tg.bfloat16
    yb.sum().backward()
    assert xb.grad.dtype == tg.bfloat16


NORMS = {
    "layer_norm": lambda M, x, w, b: M.nn.functional.layer_norm(x, (4,), w, b),
    "batch_norm": lambda M, x, w, b: M.nn.functional.batch_norm(x, None, None, w, b, training=True),
    "group_norm": lambda M, x, w, b: M.nn.functional.group_norm(x, 2, w, b),
    "instance_norm": lambda M, x, w, b: M.nn.functional.instance_norm(x.reshape(3, 4, 1).expand(3, 4, 2) * 1, weight=w,
                                                                      bias=b),
    "rms_norm": lambda M, x, w, b: M.nn.functional.rms_norm(x, (4,), w),
    "LayerNorm_module": lambda M, x, w, b: M.nn.LayerNorm(4).to(w.dtype)(x),
}


@pytest.mark.parametrize("dx,dw", [("float32", "float64"), ("float64", "float32"), ("float16", "float32"),
                                   ("bfloat16", "float32"), ("float16", "float64"), ("float32", "float16")])
@pytest.mark.parametrize("op", sorted(NORMS))
def test_parameters_of_another_dtype_follow_torch(op, dx, dw):
    """PyTorch's CPU normalizations take float32 parameters beside a 16-bit input (and answer in
    the input's dtype) and refuse every other mix; tapegrad promoted silently (float32 input with
    float64 weights gave float64, a float16 input with float32 weights gave float32). rms_norm takes
    any mix and answers in the input's dtype, computing a 16-bit input in float32 with float32's
    eps by default (tapegrad rounded each step to bfloat16 and took bfloat16's eps: 3% off)."""
    if dx == "bfloat16":
        pytest.importorskip("ml_dtypes")
    xv = np.random.default_rng(0).standard_normal((3, 4))
    res = {}
    for M in (torch, tg):
        x = M.tensor(xv, dtype=getattr(M, dx))
        w = M.tensor([0.5, 1.0, 1.5, 2.0], dtype=getattr(M, dw))
        try:
            y = NORMS[op](M, x, w, w - 1)
            res[M] = (str(y.dtype).split(".")[-1], y.detach().to(M.float64).numpy())
        except RuntimeError as e:
            res[M] = ("error", str(e))
    assert res[tg][0] == res[torch][0], (res[tg], res[torch])
    if res[torch][0] == "error":
        assert res[torch][1].rstrip(".") in res[tg][1] and res[tg][1].startswith(op.replace("LayerNorm_module",
                                                                                          "layer_norm"))
    else:
        np.testing.assert_allclose(res[tg][1], res[torch][1], rtol=1e-2 if "16" in dx else 1e-6, atol=1e-2)
