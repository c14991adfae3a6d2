"""F.interpolate (bilinear, nearest, nearest-exact) and adaptive_avg_pool2d on 4-D input: the
native kernels of csrc/kernels/resample.cpp against PyTorch and numpy references, their
gradients, and their independence from the thread count."""
import numpy as np
import pytest

import tapegrad as tg
import tapegrad.nn.functional as F
from tapegrad import _C
from tapegrad.autograd import gradcheck, gradgradcheck

DTYPES = [np.float32, np.float64]


# ---------------------------------------------------------------- numpy references
def _linear_matrix(n_in, n_out, align_corners, scale, dtype):
    """(n_out, n_in) bilinear weights along one dim with PyTorch's source positions, in the op's
    math type (float32 for float32)."""
    T = np.dtype(dtype).type
    m = np.zeros((n_out, n_in))
    if n_in == n_out:
        return np.eye(n_in)
    if align_corners:
        s = T(n_in - 1) / T(n_out - 1) if n_out > 1 else T(0)
    else:
        s = T(1.0 / scale) if scale else T(n_in) / T(n_out)
    for i in range(n_out):
        src = s * T(i) if align_corners else max(s * (T(i) + T(0.5)) - T(0.5), T(0))
        lo = min(int(np.floor(src)), n_in - 1)
        lam = min(max(float(src) - lo, 0.0), 1.0)
        m[i, lo] += 1 - lam
        m[i, min(lo + 1, n_in - 1)] += lam
    return m


def _nearest_matrix(n_in, n_out, scale, exact):
    m = np.zeros((n_out, n_in))
    s = np.float32(1.0 / scale) if scale else np.float32(n_in) / np.float32(n_out)
    for i in range(n_out):
        if not exact and n_in == n_out:
            j = i
        elif not exact and n_out == 2 * n_in:
            j = i // 2
        else:
            j = min(int(np.floor((np.float32(i) + np.float32(0.5)) * s if exact else np.float32(i) * s)), n_in - 1)
        m[i, j] = 1
    return m


def _adaptive_matrix(n_in, n_out):
    m = np.zeros((n_out, n_in))
    for i in range(n_out):
        lo, hi = (i * n_in) // n_out, -((-(i + 1) * n_in) // n_out)
        m[i, lo:hi] = 1.0 / (hi - lo)
    return m


def _apply(mh, x, mw):
    return np.einsum("ph,nchw,qw->ncpq", mh, x.astype(np.float64), mw)


def _x(shape, dtype=np.float64, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


BILINEAR = [  # (input shape, kwargs)
    ((2, 3, 7, 5), dict(scale_factor=2)),
    ((2, 3, 7, 5), dict(scale_factor=2, align_corners=True)),
    ((1, 2, 9, 11), dict(scale_factor=0.5)),
    ((1, 2, 9, 11), dict(scale_factor=0.5, align_corners=True)),
    ((2, 2, 5, 6), dict(size=(13, 4))),
    ((2, 2, 5, 6), dict(size=(13, 4), align_corners=True)),
    ((1, 3, 6, 7), dict(scale_factor=(1.7, 0.6))),
    ((1, 3, 6, 7), dict(scale_factor=(1.7, 0.6), recompute_scale_factor=True)),
    ((1, 1, 1, 4), dict(size=(3, 1), align_corners=True)),
    ((2, 1, 5, 5), dict(size=(5, 9))),  # one dim kept
    ((1, 2, 4, 4), dict(size=(1, 1))),
]
NEAREST = [
    ((2, 3, 7, 5), dict(scale_factor=2)),
    ((1, 2, 9, 11), dict(scale_factor=0.5)),
    ((2, 2, 5, 6), dict(size=(13, 4))),
    ((1, 3, 6, 7), dict(scale_factor=(1.7, 0.6))),
    ((1, 3, 6, 7), dict(scale_factor=(1.7, 0.6), recompute_scale_factor=True)),
    ((1, 2, 3, 10), dict(size=(7, 3))),
    ((2, 1, 5, 5), dict(size=(5, 9))),
]
ADAPTIVE = [((2, 3, 7, 5), (2, 1)), ((2, 3, 14, 14), 7), ((1, 4, 14, 13), 5), ((2, 3, 9, 9), 1),
            ((1, 2, 5, 3), (5, 3)), ((1, 2, 4, 6), (3, 4)), ((1, 1, 3, 2), (7, 5))]


def _scales(shape, kw):
    if "size" in kw or kw.get("recompute_scale_factor"):
        return None, None
    s = kw["scale_factor"]
    return (s, s) if not isinstance(s, tuple) else s


def _out_size(shape, kw):
    if "size" in kw:
        return kw["size"]
    s = _scales(shape, dict(kw, recompute_scale_factor=False))
    return tuple(int(np.floor(n * f)) for n, f in zip(shape[2:], s))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape, kw", BILINEAR)
def test_bilinear_matches_numpy(shape, kw, dtype):
    x = _x(shape, dtype)
    y = F.interpolate(tg.tensor(x), mode="bilinear", **kw).numpy()
    (ho, wo), (sh, sw) = _out_size(shape, kw), _scales(shape, kw)
    ac = kw.get("align_corners", False)
    want = _apply(_linear_matrix(shape[2], ho, ac, sh, dtype), x, _linear_matrix(shape[3], wo, ac, sw, dtype))
    assert y.dtype == dtype and y.shape == want.shape
    np.testing.assert_allclose(y, want, rtol=1e-5 if dtype == np.float32 else 1e-12, atol=1e-5 if dtype == np.float32
                               else 1e-12)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("mode", ["nearest", "nearest-exact"])
@pytest.mark.parametrize("shape, kw", NEAREST)
def test_nearest_matches_numpy(shape, kw, mode, dtype):
    x = _x(shape, dtype)
    y = F.interpolate(tg.tensor(x), mode=mode, **kw).numpy()
    (ho, wo), (sh, sw) = _out_size(shape, kw), _scales(shape, kw)
    ex = mode == "nearest-exact"
    want = _apply(_nearest_matrix(shape[2], ho, sh, ex), x, _nearest_matrix(shape[3], wo, sw, ex)).astype(dtype)
    np.testing.assert_array_equal(y, want)  # a gather: exact


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape, size", ADAPTIVE)
def test_adaptive_avg_pool2d_matches_numpy(shape, size, dtype):
    x = _x(shape, dtype)
    y = F.adaptive_avg_pool2d(tg.tensor(x), size).numpy()
    ho, wo = size if isinstance(size, tuple) else (size, size)
    want = _apply(_adaptive_matrix(shape[2], ho), x, _adaptive_matrix(shape[3], wo))
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(y, want, rtol=tol, atol=tol)


# ---------------------------------------------------------------- against PyTorch, forward and backward
def _torch_pair(fn, x, g):
    torch = pytest.importorskip("torch")
    xt = torch.tensor(x, requires_grad=True)
    yt = fn(torch.nn.functional, xt)
    yt.backward(torch.tensor(g(tuple(yt.shape))))
    xg = tg.tensor(x, requires_grad=True)
    yg = fn(F, xg)
    yg.backward(tg.tensor(g(tuple(yg.shape))))
    return (yg.detach().numpy(), xg.grad.numpy()), (yt.detach().numpy(), xt.grad.numpy())


def _grad_out(dtype):
    return lambda shape: np.random.default_rng(1).standard_normal(shape).astype(dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape, kw", BILINEAR + [((1, 1, 5, 5), dict(scale_factor=1.1)),
                                                  ((1, 1, 4, 8), dict(scale_factor=(1.0, 0.5)))])
def test_bilinear_matches_torch(shape, kw, dtype):
    (y, gx), (yt, gxt) = _torch_pair(lambda F_, x: F_.interpolate(x, mode="bilinear", **kw), _x(shape, dtype),
                                     _grad_out(dtype))
    tol = 2e-6 if dtype == np.float32 else 1e-13
    np.testing.assert_allclose(y, yt, rtol=tol, atol=tol)
    np.testing.assert_allclose(gx, gxt, rtol=10 * tol, atol=10 * tol)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("mode", ["nearest", "nearest-exact"])
@pytest.mark.parametrize("shape, kw", NEAREST + [((1, 1, 5, 5), dict(scale_factor=1.1)),
                                                 ((1, 1, 7, 9), dict(size=(3, 20)))])
def test_nearest_matches_torch(shape, kw, mode, dtype):
    (y, gx), (yt, gxt) = _torch_pair(lambda F_, x: F_.interpolate(x, mode=mode, **kw), _x(shape, dtype),
                                     _grad_out(dtype))
    np.testing.assert_array_equal(y, yt)
    tol = 1e-6 if dtype == np.float32 else 1e-14
    np.testing.assert_allclose(gx, gxt, rtol=tol, atol=tol)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape, size", ADAPTIVE)
def test_adaptive_avg_pool2d_matches_torch(shape, size, dtype):
    (y, gx), (yt, gxt) = _torch_pair(lambda F_, x: F_.adaptive_avg_pool2d(x, size), _x(shape, dtype),
                                     _grad_out(dtype))
    tol = 2e-6 if dtype == np.float32 else 1e-13
    np.testing.assert_allclose(y, yt, rtol=tol, atol=tol)
    np.testing.assert_allclose(gx, gxt, rtol=tol, atol=tol)


# ---------------------------------------------------------------- gradients, layouts, threads
CALLS = [
    lambda x: F.interpolate(x, scale_factor=2, mode="bilinear"),
    lambda x: F.interpolate(x, size=(4, 7), mode="bilinear", align_corners=True),
    lambda x: F.interpolate(x, scale_factor=0.6, mode="bilinear"),
    lambda x: F.interpolate(x, size=(7, 2), mode="nearest"),
    lambda x: F.interpolate(x, scale_factor=1.5, mode="nearest-exact"),
    lambda x: F.adaptive_avg_pool2d(x, (2, 3)),
    lambda x: F.adaptive_avg_pool2d(x, 1),
]


@pytest.mark.parametrize("k", range(len(CALLS)))
def test_gradcheck_and_gradgradcheck(k):
    x = tg.tensor(_x((2, 2, 3, 5)), requires_grad=True)
    assert gradcheck(CALLS[k], (x,))
    assert gradgradcheck(CALLS[k], (x,))  # the VJP (resample2d_backward) is itself a recorded op


@pytest.mark.parametrize("k", range(len(CALLS)))
def test_non_contiguous_input(k):
    base = _x((2, 5, 3, 6), np.float32)
    x = tg.tensor(base).transpose(1, 3)  # (2, 6, 3, 5), strided
    want = CALLS[k](tg.tensor(np.ascontiguousarray(base.transpose(0, 3, 2, 1)))).numpy()
    np.testing.assert_array_equal(CALLS[k](x).numpy(), want)


@pytest.mark.parametrize("k", range(len(CALLS)))
def test_empty_batch(k):
    x = tg.tensor(np.zeros((0, 3, 4, 5), np.float32), requires_grad=True)
    y = CALLS[k](x)
    assert y.shape[:2] == (0, 3)
    y.sum().backward()
    assert x.grad.shape == (0, 3, 4, 5)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("k", range(len(CALLS)))
def test_bit_identical_for_any_thread_count(k, dtype, restore_threads, monkeypatch):
    monkeypatch.setenv("TAPEGRAD_THREADS_IGNORE_LOAD", "1")
    big = _x((4, 64, 33, 31), dtype, seed=5)  # enough planes and elements to fork
    results = []
    for nt in (1, 2, 3):
        _C.set_num_threads(nt)
        x = tg.tensor(big, requires_grad=True)
        y = CALLS[k](x)
        y.backward(tg.tensor(_x(tuple(y.shape), dtype, seed=6)))
        results.append((y.detach().numpy().copy(), x.grad.numpy().copy()))
    for y, gx in results[1:]:
        np.testing.assert_array_equal(y, results[0][0])
        np.testing.assert_array_equal(gx, results[0][1])


def test_bad_input_names_the_op():
    with pytest.raises(ValueError, match="^resample2d: .*float32 and float64"):
        _C.resample2d(np.zeros((1, 1, 2, 2), np.int32), "bilinear", (3, 3), False, -1.0, -1.0)
    with pytest.raises(ValueError, match="^resample2d: .*unknown mode"):
        _C.resample2d(np.zeros((1, 1, 2, 2), np.float32), "cubic", (3, 3), False, -1.0, -1.0)
    with pytest.raises(ValueError, match=r"^resample2d: expected x of shape \(N, C, H, W\)"):
        _C.resample2d(np.zeros((1, 2, 2), np.float32), "bilinear", (3, 3), False, -1.0, -1.0)
    with pytest.raises(ValueError, match="^resample2d_backward: input size must be positive"):
        _C.resample2d_backward(np.zeros((1, 1, 2, 2), np.float32), "nearest", (0, 3), False, -1.0, -1.0)


# ---------------------------------------------------------------- adaptive_max_pool2d
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape, size", ADAPTIVE[:-1])
def test_adaptive_max_pool2d_matches_torch(shape, size, dtype):
    torch = pytest.importorskip("torch")
    x = _x(shape, dtype)
    x.flat[::7] = 0.0  # ties: the first maximum wins
    x.flat[3] = np.nan  # PyTorch: a NaN wins, the last one of a window
    x.flat[4] = np.nan
    xt = torch.tensor(x, requires_grad=True)
    yt, it = torch.nn.functional.adaptive_max_pool2d(xt, size, return_indices=True)
    xg = tg.tensor(x, requires_grad=True)
    y, i = F.adaptive_max_pool2d(xg, size, return_indices=True)
    np.testing.assert_array_equal(y.detach().numpy(), yt.detach().numpy())
    np.testing.assert_array_equal(i.numpy(), it.numpy())
    g = _x(tuple(y.shape), dtype, seed=3)
    yt.backward(torch.tensor(g))
    y.backward(tg.tensor(g))
    np.testing.assert_array_equal(xg.grad.numpy(), xt.grad.numpy())
    with tg.no_grad():  # the unrecorded path
        y2, i2 = F.adaptive_max_pool2d(tg.tensor(x), size, return_indices=True)
    np.testing.assert_array_equal(i2.numpy(), it.numpy())


def test_adaptive_max_pool2d_gradcheck_and_threads(restore_threads, monkeypatch):
    x = tg.tensor(np.random.default_rng(0).permutation(2 * 2 * 5 * 7).reshape(2, 2, 5, 7) * 0.1,
                  requires_grad=True)
    assert gradcheck(lambda a: F.adaptive_max_pool2d(a, (3, 4)), (x,))
    monkeypatch.setenv("TAPEGRAD_THREADS_IGNORE_LOAD", "1")
    big = _x((4, 64, 33, 31), np.float32, seed=5)
    outs = []
    for nt in (1, 2, 3):
        _C.set_num_threads(nt)
        y, i = F.adaptive_max_pool2d(tg.tensor(big), 7, return_indices=True)
        outs.append((y.numpy().copy(), i.numpy().copy()))
    for y, i in outs[1:]:
        np.testing.assert_array_equal(y, outs[0][0])
        np.testing.assert_array_equal(i, outs[0][1])
