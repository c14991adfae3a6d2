"""Elementwise ops on float16 / bfloat16 tensors in one fused pass (csrc/kernels/convert.h's
map_half, registry.py's _map16): each block widened to float32, the op's float32 kernel, rounded
once. The bits must be the float32 detour's (widen the tensor, the float32 op, round) for every
16-bit value, at any thread count and for any layout; the VJPs that run fused, the float32
backward kernel's on the widened gradient and saved tensor, rounded once.
tests/csrc/test_isa_paths.py runs this file again on the AVX2 and generic builds."""
import numpy as np
import pytest

import tapegrad as tg
from tapegrad import _C
from tapegrad._tape import registry

ml_dtypes = pytest.importorskip("ml_dtypes")
F = tg.nn.functional
DTYPES = [np.dtype(np.float16), np.dtype(ml_dtypes.bfloat16)]
IDS = ["float16", "bfloat16"]

# (name, op on a tensor, whether the 16-bit op must take the fused path)
OPS = [
    ("exp", lambda x: x.exp()), ("log", lambda x: x.log()), ("sqrt", lambda x: x.sqrt()),
    ("rsqrt", lambda x: x.rsqrt()), ("tanh", lambda x: x.tanh()), ("sigmoid", lambda x: x.sigmoid()),
    ("relu", F.relu), ("gelu", F.gelu), ("gelu_tanh", lambda x: F.gelu(x, approximate="tanh")),
    ("silu", F.silu), ("neg", lambda x: -x), ("abs", lambda x: x.abs()), ("erf", lambda x: x.erf()),
    ("sin", lambda x: x.sin()), ("cos", lambda x: x.cos()), ("tan", lambda x: x.tan()),
    ("log1p", lambda x: x.log1p()), ("expm1", lambda x: x.expm1()), ("square", lambda x: x.square()),
    ("reciprocal", lambda x: x.reciprocal()), ("floor", lambda x: x.floor()),
    ("softplus", lambda x: F.softplus(x, beta=2.0, threshold=5.0)), ("logsigmoid", F.logsigmoid),
    ("elu", lambda x: F.elu(x, alpha=0.7)), ("selu", F.selu), ("leaky_relu", lambda x: F.leaky_relu(x, 0.1)),
    ("hardswish", F.hardswish), ("hardsigmoid", F.hardsigmoid), ("mish", F.mish),
    ("hardtanh", lambda x: F.hardtanh(x, -0.5, 2.0)), ("relu6", F.relu6),
    ("hardshrink", lambda x: F.hardshrink(x, 0.3)), ("softshrink", lambda x: F.softshrink(x, 0.3)),
    ("threshold", lambda x: F.threshold(x, 0.2, -1.0)),
]


def every_value(dtype):
    """Every 16-bit pattern (NaNs, infinities, subnormals, both zeros), as an array of ``dtype``."""
    return np.arange(1 << 16, dtype=np.uint32).astype(np.uint16).view(dtype)


def detour(op, a):
    """The float32 detour: ``op`` on the widened array, the result rounded to the 16-bit dtype."""
    with np.errstate(all="ignore"):
        return op(tg.tensor(a.astype(np.float32))).numpy().astype(a.dtype)


def bits(a):
    return np.ascontiguousarray(a).view(np.uint16)


@pytest.fixture
def count_fused(monkeypatch):
    """How often the fused kernels ran (a bit-equal detour would pass the bit tests just as well)."""
    calls = []

    def counted(name):
        real = getattr(_C, name)

        def call(*args, **kw):
            out = real(*args, **kw)
            calls.append(out is not False)
            return out
        monkeypatch.setattr(_C, name, call)

    counted("_unary_half")
    counted("_unary_half_backward")
    return calls


@pytest.mark.threads
@pytest.mark.parametrize("dtype", DTYPES, ids=IDS)
def test_fused_unary_ops_have_the_float32_detours_bits_for_every_value(dtype, count_fused, restore_threads):
    """Each op on all 65536 values, at 1, 2 and 3 threads (65536 elements: the threads take blocks),
    against the detour at one thread: the same bits, NaN payloads and signed zeros included."""
    a = every_value(dtype)
    _C.set_num_threads(1)
    refs = {name: detour(op, a) for name, op in OPS}
    for threads in (1, 2, 3):
        _C.set_num_threads(threads)
        for name, op in OPS:
            del count_fused[:]
            with np.errstate(all="ignore"):
                got = op(tg.tensor(a)).numpy()
            assert got.dtype == dtype, name
            assert count_fused == [True], name  # the fused path, not the detour
            np.testing.assert_array_equal(bits(got), bits(refs[name]), err_msg=f"{name} at {threads} threads")


@pytest.mark.parametrize("dtype", DTYPES, ids=IDS)
@pytest.mark.parametrize("layout", ["c", "f", "strided", "odd", "small", "empty"])
def test_fused_unary_ops_any_layout(dtype, layout, count_fused):
    """F-order input keeps its order (the transposed C kernel), other strides are read in C order;
    odd sizes end in a partial block; below registry._NATIVE16 elements (and empty) the detour."""
    rng = np.random.default_rng(1)
    base = (rng.standard_normal((300, 70)) * 4).astype(np.float32).astype(dtype)
    a = {"c": base, "f": np.asfortranarray(base), "strided": base[::2, 1::3], "odd": base.ravel()[:12_347],
         "small": base[:10, :10], "empty": base[:0]}[layout]
    x = {"f": lambda: tg.tensor(np.ascontiguousarray(base.T)).T,  # a transposed view: F-contiguous
         "strided": lambda: tg.tensor(base)[::2, 1::3]}.get(layout, lambda: tg.tensor(a))()
    for name, op in OPS:
        del count_fused[:]
        with np.errstate(all="ignore"):
            got = op(x).numpy()
        ref = detour(op, np.ascontiguousarray(a))
        assert got.shape == a.shape and got.dtype == dtype
        np.testing.assert_array_equal(bits(got), bits(ref), err_msg=name)
        assert count_fused == ([] if layout in ("small", "empty") else [True]), name
        if layout == "f":
            assert got.flags.f_contiguous, name


def _widen(a):
    return np.ascontiguousarray(a).astype(np.float32)


# (name, op, the float32 backward kernel from (g, saved input, output) widened)
BACKWARD = [
    ("relu", F.relu, lambda g, x, y: _C.relu_backward(g, y)),
    ("gelu", F.gelu, lambda g, x, y: _C.gelu_backward(g, x, False)),
    ("gelu_tanh", lambda x: F.gelu(x, approximate="tanh"), lambda g, x, y: _C.gelu_backward(g, x, True)),
    ("silu", F.silu, lambda g, x, y: _C.silu_backward(g, x)),
    ("sigmoid", lambda x: x.sigmoid(), lambda g, x, y: _C.pointwise_backward("sigmoid", g, y)),
    ("tanh", lambda x: x.tanh(), lambda g, x, y: _C.pointwise_backward("tanh", g, y)),
    ("rsqrt", lambda x: x.rsqrt(), lambda g, x, y: _C.pointwise_backward("rsqrt", g, y)),
    ("erf", lambda x: x.erf(), lambda g, x, y: _C.pointwise_backward("erf", g, x)),
    ("softplus", lambda x: F.softplus(x, 2.0, 5.0),
     lambda g, x, y: _C.pointwise_backward("softplus", g, x, 2.0, 5.0, 0.5)),
    ("leaky_relu", lambda x: F.leaky_relu(x, 0.1), lambda g, x, y: _C.pointwise_backward("leaky_relu", g, x, 0.1)),
    ("hardswish", F.hardswish, lambda g, x, y: _C.pointwise_backward("hardswish", g, x)),
    ("mish", F.mish, lambda g, x, y: _C.pointwise_backward("mish", g, x)),
]


@pytest.mark.threads
@pytest.mark.parametrize("dtype", DTYPES, ids=IDS)
@pytest.mark.parametrize("threads", [1, 2, 3])
def test_fused_backward_rounds_the_float32_kernels_gradient_once(dtype, threads, count_fused, restore_threads):
    """The VJPs that run fused on 16-bit tensors: the float32 backward kernel on the widened upstream
    gradient and saved tensor (the 16-bit output, for the ops that save it), rounded once; every
    16-bit value as input, a gradient of random values, and a transposed one."""
    _C.set_num_threads(threads)
    a = every_value(dtype).reshape(256, 256)
    g = (np.random.default_rng(2).standard_normal((256, 256)) * 3).astype(np.float32).astype(dtype)
    for transposed in (False, True):
        gt = g.T if transposed else g
        for name, op, kernel in BACKWARD:
            x = tg.tensor(a, requires_grad=True)
            with np.errstate(all="ignore"):
                y = op(x)
                del count_fused[:]
                y.backward(tg.tensor(gt))
                ref = kernel(_widen(gt), _widen(a), _widen(y.detach().numpy())).astype(dtype)
            assert x.grad.dtype == dtype
            assert count_fused == [True], name
            np.testing.assert_array_equal(bits(x.grad.numpy()), bits(ref), err_msg=f"{name} transposed={transposed}")


@pytest.mark.parametrize("dtype", DTYPES, ids=IDS)
def test_fused_backward_matches_torch_within_an_ulp(dtype):
    """PyTorch's 16-bit activation backward kernels also compute in float32 and round once (its sigmoid and
    tanh backward on float16 are 2 ulp off in a few elements: other float32 formulas)."""
    torch = pytest.importorskip("torch")
    tdt = torch.float16 if dtype == np.float16 else torch.bfloat16
    rng = np.random.default_rng(3)
    a32 = (rng.standard_normal(5000) * 3).astype(np.float32)
    g32 = rng.standard_normal(5000).astype(np.float32)
    for name, fn, tfn in (("relu", F.relu, torch.nn.functional.relu), ("gelu", F.gelu, torch.nn.functional.gelu),
                          ("silu", F.silu, torch.nn.functional.silu), ("sigmoid", tg.sigmoid, torch.sigmoid),
                          ("tanh", tg.tanh, torch.tanh)):
        x = tg.tensor(a32).to(tg.bfloat16 if dtype != np.float16 else tg.float16).detach().requires_grad_()
        fn(x).backward(tg.tensor(g32).to(x.dtype))
        tx = torch.from_numpy(a32).to(tdt).requires_grad_()
        tfn(tx).backward(torch.from_numpy(g32).to(tdt))
        ours, theirs = x.grad.float().numpy(), tx.grad.float().numpy()
        eps = float(torch.finfo(tdt).eps)
        np.testing.assert_allclose(ours, theirs, rtol=2 * eps, atol=eps * 1e-3, err_msg=name)


def test_fused_create_graph_keeps_the_composite():
    """Under create_graph the VJPs stay tapegrad ops (differentiable again), not the fused kernel."""
    x = tg.tensor(np.linspace(-3, 3, 2000, dtype=np.float32)).half().detach().requires_grad_()
    (g,) = tg.autograd.grad(F.silu(x).sum(), x, create_graph=True)
    (gg,) = tg.autograd.grad(g.sum(), x)
    assert g.dtype == gg.dtype == tg.float16


def test_unary_half_bad_arguments_name_the_op():
    out = np.empty(4, np.uint16)
    with pytest.raises(ValueError, match="unary_half: x must be a C-contiguous uint16 array of 4 elements"):
        _C._unary_half("exp", np.empty(3, np.uint16), out, False)
    with pytest.raises(ValueError, match="unary_half: out must be a writable C-contiguous uint16 array"):
        _C._unary_half("exp", out, np.empty(4, np.float32), False)
    with pytest.raises(ValueError, match="pointwise: unknown function 'nope'"):
        _C._unary_half("nope", out, out, False)
    with pytest.raises(ValueError, match="sign has no backward kernel"):
        _C._unary_half_backward("sign", out, out, out, False)
    with pytest.raises(ValueError, match="saved must be a C-contiguous uint16 array"):
        _C._unary_half_backward("relu", out, np.empty(5, np.uint16), out, False)
    assert _C._unary_half(np.arctan2, out, out, False) is False  # a ufunc it does not take: the detour's


@pytest.mark.parametrize("dtype", DTYPES, ids=IDS)
def test_rsqrt_of_every_16_bit_value_lies_far_from_a_rounding_midpoint(dtype):
    """convert.h's rsqrt_half (AVX-512) rounds vrsqrt14ps and one Newton step, within 2^-22.3 of
    1 / sqrt(x) for any vrsqrt14ps within its specified 2^-14, and the detour's float32 1 / sqrt(x)
    is within 2^-23: both round to the same 16-bit number as long as no 1 / sqrt(x) lies within
    2^-22.3 of a midpoint between two 16-bit numbers, which holds for every positive finite x with a
    margin (the bit test above checks this CPU's vrsqrt14ps; this, any other's)."""
    x = every_value(dtype).astype(np.float64)
    x = x[np.isfinite(x) & (x > 0)]
    r = 1 / np.sqrt(x)  # to 2^-53
    mant = np.finfo(dtype).nmant
    ulp = 2.0 ** (np.floor(np.log2(r)) - mant)  # (no result is a subnormal 16-bit number)
    frac = r / ulp - np.floor(r / ulp)
    nearest = np.min(np.abs(frac - 0.5) * ulp / r)
    assert nearest > 2.0 ** -21.9, np.log2(nearest)
