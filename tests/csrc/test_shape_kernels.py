"""tril / triu, pad and clamp through their one-pass kernels (csrc/kernels/shape.cpp and
pointwise.cpp's clamp): values against numpy bit for bit, every dtype width, odd sizes,
non-contiguous and empty inputs, gradients in float64, and the same bits at 1, 2 and 3 threads."""
import numpy as np
import pytest

import tapegrad as tg
from tapegrad import _C
from tapegrad.autograd import gradcheck, gradgradcheck

F = tg.nn.functional
DTYPES = [np.float32, np.float64, np.float16, np.int8, np.int32, np.int64, np.uint8, np.bool_, np.complex64,
          np.complex128]


def _arr(rng, shape, dtype):
    a = rng.standard_normal(shape) * 4
    if np.dtype(dtype).kind == "c":
        return (a + 1j * rng.standard_normal(shape)).astype(dtype)
    return (a > 0 if dtype == np.bool_ else a).astype(dtype)


def _bits_equal(a, b):
    a, b = np.asarray(a), np.asarray(b)
    return a.shape == b.shape and a.dtype == b.dtype and np.ascontiguousarray(a).tobytes() == np.ascontiguousarray(b).tobytes()


# ---------------------------------------------------------------- tril / triu
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(1, 1), (3, 5), (7, 2), (2, 3, 4), (2, 1, 3, 6), (0, 3), (3, 0), (2, 0, 4)])
def test_triangles_match_numpy(dtype, shape):
    rng = np.random.default_rng(0)
    a = _arr(rng, shape, dtype)
    for k in (-8, -2, -1, 0, 1, 3, 9):
        assert _bits_equal(tg.tril(tg.tensor(a), k).numpy(), np.tril(a, k))
        assert _bits_equal(tg.triu(tg.tensor(a), k).numpy(), np.triu(a, k))


def test_triangles_of_non_contiguous_input_and_in_place():
    rng = np.random.default_rng(1)
    a = rng.standard_normal((4, 9, 6)).astype(np.float32)
    t = tg.tensor(a).transpose(1, 2)
    assert _bits_equal(t.tril(1).numpy(), np.tril(a.transpose(0, 2, 1), 1))
    assert _bits_equal(t[:, ::2].triu(-1).numpy(), np.triu(a.transpose(0, 2, 1)[:, ::2], -1))
    s = tg.tensor(a)
    v = s._version
    assert s.triu_(2) is s and _bits_equal(s.numpy(), np.triu(a, 2)) and s._version == v + 1


def test_triangles_keep_signed_zeros_and_nans():
    a = np.array([[np.nan, -0.0, np.inf], [-np.inf, np.nan, -0.0]], np.float32)
    assert _bits_equal(tg.tril(tg.tensor(a)).numpy(), np.tril(a))
    assert _bits_equal(tg.triu(tg.tensor(a), 1).numpy(), np.triu(a, 1))


@pytest.mark.parametrize("op", ["tril", "triu"])
def test_triangle_gradients(op):
    rng = np.random.default_rng(2)
    x = tg.tensor(rng.standard_normal((2, 4, 5)), requires_grad=True)
    assert gradcheck(lambda t: getattr(t, op)(1), (x,))
    y = getattr(x, op)(-1)
    g = rng.standard_normal((2, 4, 5))
    y.backward(tg.tensor(g))
    assert _bits_equal(x.grad.numpy(), getattr(np, op)(g, -1))


def test_triangles_same_bits_at_1_2_3_threads(restore_threads, monkeypatch):
    monkeypatch.setenv("TAPEGRAD_THREADS_IGNORE_LOAD", "1")
    a = np.random.default_rng(3).standard_normal((3, 301, 257)).astype(np.float32)
    outs = []
    for n in (1, 2, 3):
        _C.set_num_threads(n)
        outs.append((tg.tril(tg.tensor(a), 5).numpy(), tg.triu(tg.tensor(a), -7).numpy()))
    for lo, up in outs:
        assert _bits_equal(lo, np.tril(a, 5)) and _bits_equal(up, np.triu(a, -7))


def test_triangle_kernel_refuses_bad_input():
    with pytest.raises(ValueError, match="tril.*3-d"):
        _C.triangle(np.zeros((2, 3)), 0, True)
    with pytest.raises(ValueError, match="triu.*contiguous"):
        _C.triangle(np.zeros((2, 3, 4))[:, :, ::2], 0, False)
    with pytest.raises(RuntimeError, match="at least 2 dimensions"):
        tg.tril(tg.zeros(3))


# ---------------------------------------------------------------- pad
def _np_pad(a, pad, mode, value):
    """The reference: PyTorch's semantics written with np.pad (negative pads crop; circular crops first,
    reflect and replicate pad first and then crop)."""
    widths = [(0, 0)] * (a.ndim - len(pad) // 2) + [(pad[2 * i], pad[2 * i + 1]) for i in reversed(range(len(pad) // 2))]
    crop = tuple(slice(max(-lo, 0), n - max(-hi, 0)) for (lo, hi), n in zip(widths, a.shape))
    pos = [(max(lo, 0), max(hi, 0)) for lo, hi in widths]
    npmode = {"constant": "constant", "reflect": "reflect", "replicate": "edge", "circular": "wrap"}[mode]
    kw = {"constant_values": value} if mode == "constant" else {}
    if mode in ("constant", "circular"):
        return np.pad(a[crop], pos, mode=npmode, **kw)
    padded = np.pad(a, pos, mode=npmode)
    return padded[tuple(slice(max(-lo, 0), n - max(-hi, 0)) for (lo, hi), n in zip(widths, padded.shape))]


PADS = [
    ("constant", (32, 6, 5, 7), (1, 1, 1, 1)),
    ("constant", (3, 4, 5), (2, 0, 0, 3, 1, 1)),
    ("constant", (3, 4, 5), (-1, 2, 1, -2)),
    ("constant", (2, 3, 4, 5), (0, 0, 1, 2)),
    ("constant", (5,), (3, 2)),
    ("constant", (2, 1, 3, 4, 5), (1, 1, 0, 0, 2, 0)),
    ("reflect", (2, 3, 6, 5), (2, 1, 3, 4)),
    ("reflect", (2, 3, 7), (-2, 3)),
    ("reflect", (1, 2, 4, 5, 6), (1, 2, 3, 1, 2, 2)),
    ("replicate", (2, 3, 6, 5), (2, 1, 3, 4)),
    ("replicate", (2, 3, 6, 5), (-1, 3, 2, -3)),
    ("replicate", (2, 4, 5), (7, 9)),
    ("circular", (2, 3, 6, 5), (2, 1, 3, 4)),
    ("circular", (1, 3, 6), (-2, 3)),
    ("circular", (1, 2, 6, 5), (1, -2, -1, 2)),
]


@pytest.mark.parametrize("mode,shape,pad", PADS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int32, np.int8, np.bool_, np.float16, np.complex128])
def test_pad_matches_numpy(mode, shape, pad, dtype):
    a = _arr(np.random.default_rng(4), shape, dtype)
    value = {"constant": 2.5 if np.dtype(dtype).kind in "fc" else 3}.get(mode, 0)
    kw = {"value": value} if mode == "constant" else {}
    got = F.pad(tg.tensor(a), pad, mode=mode, **kw).numpy()
    assert _bits_equal(got, _np_pad(a, pad, mode, np.asarray(value).astype(dtype)))


@pytest.mark.parametrize("mode", ["constant", "reflect", "replicate", "circular"])
def test_pad_of_non_contiguous_and_empty_inputs(mode):
    a = np.random.default_rng(5).standard_normal((3, 4, 6, 5))
    t = tg.tensor(a).permute(0, 1, 3, 2)[:, ::2]
    assert _bits_equal(F.pad(t, (1, 2, 2, 1), mode=mode).numpy(), _np_pad(a.transpose(0, 1, 3, 2)[:, ::2], (1, 2, 2, 1), mode, 0.0))
    e = np.zeros((0, 3, 4))
    assert F.pad(tg.tensor(e), (1, 1), mode=mode).shape == (0, 3, 6)
    assert F.pad(tg.zeros(2, 0, 3), (1, 1)).shape == (2, 0, 5)


def test_pad_keeps_nan_payloads_and_signed_zeros():
    a = np.array([[np.nan, -0.0, 1.0], [np.inf, -np.inf, -0.0]], np.float32)
    for mode in ("constant", "reflect", "replicate", "circular"):
        assert _bits_equal(F.pad(tg.tensor(a[None]), (2, 2), mode=mode).numpy(), _np_pad(a[None], (2, 2), mode, np.float32(0)))
    got = F.pad(tg.tensor(a), (1, 1), value=-0.0).numpy()
    assert np.signbit(got[0, 0]) and np.signbit(got[1, -1])


@pytest.mark.parametrize("mode,shape,pad", PADS)
def test_pad_gradients(mode, shape, pad):
    shape = tuple(min(s, 3) if i == 0 else s for i, s in enumerate(shape))
    x = tg.tensor(np.random.default_rng(6).standard_normal(shape), requires_grad=True)
    assert gradcheck(lambda t: F.pad(t, pad, mode=mode), (x,))
    assert gradgradcheck(lambda t: F.pad(t, pad, mode=mode) ** 2, (x,))


@pytest.mark.parametrize("mode", ["constant", "reflect", "replicate", "circular"])
def test_pad_same_bits_at_1_2_3_threads(restore_threads, monkeypatch, mode):
    monkeypatch.setenv("TAPEGRAD_THREADS_IGNORE_LOAD", "1")
    rng = np.random.default_rng(7)
    a = rng.standard_normal((5, 13, 33, 31)).astype(np.float32)
    pad = (3, 2, 1, 4)
    g = rng.standard_normal(_np_pad(a, pad, mode, 0.0).shape).astype(np.float32)
    res = []
    for n in (1, 2, 3):
        _C.set_num_threads(n)
        x = tg.tensor(a, requires_grad=True)
        y = F.pad(x, pad, mode=mode)
        y.backward(tg.tensor(g))
        res.append((y.detach().numpy(), x.grad.numpy()))
    assert _bits_equal(res[0][0], _np_pad(a, pad, mode, np.float32(0)))
    for y, gx in res[1:]:
        assert _bits_equal(y, res[0][0]) and _bits_equal(gx, res[0][1])


def test_pad_kernel_refuses_bad_maps():
    m = np.arange(3, dtype=np.int64)
    one = np.zeros(1, np.int64)
    with pytest.raises(ValueError, match="pad: map 2 holds 3"):
        _C.pad(np.zeros((1, 1, 1, 3)), [one, one, m + 1], (0, 0, 0), np.zeros(()))
    with pytest.raises(ValueError, match="pad: interior"):
        _C.pad(np.zeros((1, 1, 1, 3)), [one, one, m], (0, 3, 1), np.zeros(()))
    with pytest.raises(ValueError, match="value"):
        _C.pad(np.zeros((1, 1, 1, 3)), [one, one, m], (0, 3, 0), np.zeros((), np.float32))
    with pytest.raises(RuntimeError, match="too large for mode 'reflect'"):
        F.pad(tg.ones(1, 1, 3), (3, 0), mode="reflect")


# ---------------------------------------------------------------- clamp
def test_clamp_nan_signed_zero_and_crossed_bounds():
    """PyTorch's bits: x kept on a tie (clamp(-0.0, min=0.0) is -0.0), NaN kept, max where min > max."""
    a = np.array([np.nan, -0.0, 0.0, -1.0, 2.0, np.inf, -np.inf, 0.5], np.float32)
    for lo, hi in ((0.0, None), (None, 0.0), (-0.0, None), (-0.5, 0.5), (1.0, -1.0), (0.0, 0.0), (-np.inf, np.inf)):
        want = a
        if lo is not None:
            want = np.where(want < np.float32(lo), np.float32(lo), want)
        if hi is not None:
            want = np.where(want > np.float32(hi), np.float32(hi), want)
        for t in (tg.tensor(a), tg.tensor(np.stack([a, a], 1))[:, 0]):  # contiguous, strided
            assert _bits_equal(t.clamp(lo, hi).numpy(), want), (lo, hi)
            s = t.clone() if t.is_contiguous() else tg.tensor(np.stack([a, a], 1))[:, 1]
            assert _bits_equal(s.clamp_(lo, hi).numpy(), want), (lo, hi)
    assert np.isnan(tg.tensor(a).clamp(0, 1).numpy()[0])
    assert np.isnan(tg.tensor(a).clamp(float("nan"), 1).numpy()).all()  # a NaN bound: NaN everywhere, as numpy


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int32, np.int64, np.int8, np.uint8])
def test_clamp_dtypes_layouts_and_empty(dtype):
    rng = np.random.default_rng(8)
    a = (rng.standard_normal((37, 29)) * 50).astype(dtype)
    for t, ref in ((tg.tensor(a), a), (tg.tensor(a).t(), a.T), (tg.tensor(a)[:, ::3], a[:, ::3]),
                   (tg.tensor(np.asfortranarray(a)), a)):
        assert _bits_equal(t.clamp(min=3).numpy(), np.maximum(ref, dtype(3)))
        assert _bits_equal(t.clamp(2, 40).numpy(), np.minimum(np.maximum(ref, dtype(2)), dtype(40)))
    assert tg.tensor(np.zeros((0, 4), dtype)).clamp(0, 1).shape == (0, 4)


def test_clamp_gradient_passes_inside_and_on_the_bounds_and_not_for_nan():
    x = tg.tensor(np.array([-1.0, -0.5, 0.0, 0.5, 1.0, np.nan], np.float32), requires_grad=True)
    x.clamp(-0.5, 0.5).backward(tg.ones(6))
    assert x.grad.tolist()[:5] == [0.0, 1.0, 1.0, 1.0, 0.0] and x.grad.tolist()[5] == 0.0
    y = tg.tensor(np.array([1.0, 2.0, 3.0]), requires_grad=True)
    y.clamp(2.5, 1.5).backward(tg.ones(3))  # min > max: the result is max everywhere, no gradient to x
    assert y.grad.tolist() == [0.0, 0.0, 0.0]


def test_clamp_gradcheck_scalar_and_tensor_bounds():
    rng = np.random.default_rng(9)
    x = tg.tensor(rng.standard_normal((4, 5)), requires_grad=True)
    lo = tg.tensor(rng.standard_normal(5) - 0.5, requires_grad=True)
    hi = tg.tensor(rng.standard_normal((4, 1)) + 0.5, requires_grad=True)
    assert gradcheck(lambda t: t.clamp(-0.3, 0.4), (x,))
    assert gradcheck(lambda t: t.clamp(min=0.1), (x,))
    assert gradcheck(lambda t, a, b: t.clamp(a, b), (x, lo, hi))
    assert gradgradcheck(lambda t: t.clamp(-0.3, 0.4) ** 2, (x,))


def test_clamp_same_bits_at_1_2_3_threads(restore_threads, monkeypatch):
    monkeypatch.setenv("TAPEGRAD_THREADS_IGNORE_LOAD", "1")
    rng = np.random.default_rng(10)
    a = rng.standard_normal((513, 601)).astype(np.float32)
    a[::7, ::5] = np.nan
    g = rng.standard_normal(a.shape).astype(np.float32)
    res = []
    for n in (1, 2, 3):
        _C.set_num_threads(n)
        x = tg.tensor(a, requires_grad=True)
        y = x.clamp(-0.5, 0.7)
        y.backward(tg.tensor(g))
        s = tg.tensor(a)
        s.clamp_(min=0)
        res.append((y.detach().numpy(), x.grad.numpy(), s.numpy()))
    assert np.array_equal(res[0][0], np.minimum(np.maximum(a, np.float32(-0.5)), np.float32(0.7)), equal_nan=True)
    assert _bits_equal(res[0][1], np.where((a >= np.float32(-0.5)) & (a <= np.float32(0.7)), g, np.float32(0)))
    assert np.array_equal(res[0][2], np.maximum(a, np.float32(0)), equal_nan=True)
    for r in res[1:]:
        assert all(_bits_equal(u, v) for u, v in zip(r, res[0]))


def test_clamp_against_pytorch():
    torch = pytest.importorskip("torch")
    a = np.array([np.nan, -0.0, 0.0, -1.0, 2.0, np.inf, -np.inf, 0.5], np.float32)
    for lo, hi in ((0.0, None), (-0.5, 0.5), (1.0, -1.0)):
        want = torch.tensor(a).clamp(lo, hi).numpy()
        assert _bits_equal(tg.tensor(a).clamp(lo, hi).numpy(), want)
        x, xt = tg.tensor(a, requires_grad=True), torch.tensor(a, requires_grad=True)
        x.clamp(lo, hi).sum().backward()
        xt.clamp(lo, hi).sum().backward()
        assert np.array_equal(x.grad.numpy(), xt.grad.numpy())
