"""The activation and row kernels of tapegrad._C (csrc/kernels/rows.cpp) against float64 numpy
references: GELU, SiLU, dropout, softmax / log_softmax, layer_norm, cross_entropy and embedding's
backward, forward and backward."""
import os
import subprocess
import sys

import numpy as np
import pytest
import scipy.special as sp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tapegrad import _C

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
K = np.sqrt(2 / np.pi)
# float32 tolerances: the kernels' exp is within 2 ulp; erf (as PyTorch's) within 1.5e-7 absolute
TOL = {np.float32: dict(rtol=2e-6, atol=1e-6), np.float64: dict(rtol=1e-13, atol=1e-14)}


def rows(draw, max_rows=7, max_cols=40):
    """(R, D) odd sizes, a seed and a dtype."""
    return (draw(st.integers(1, max_rows)), draw(st.integers(1, max_cols)), draw(st.integers(0, 2**32 - 1)),
            draw(st.sampled_from([np.float32, np.float64])))


def gelu_ref(x, tanh):
    if tanh:
        return 0.5 * x * (1 + np.tanh(K * (x + 0.044715 * x**3)))
    return x * sp.ndtr(x)


def gelu_grad_ref(x, tanh):
    if tanh:
        t = np.tanh(K * (x + 0.044715 * x**3))
        return 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * K * (1 + 3 * 0.044715 * x * x)
    return sp.ndtr(x) + x * np.exp(-0.5 * x * x) / np.sqrt(2 * np.pi)


@pytest.mark.parametrize("tanh", [False, True])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gelu_against_float64(dtype, tanh):
    x = np.concatenate([np.linspace(-12, 12, 10001), np.random.default_rng(0).standard_normal(999) * 3])
    xs = x.astype(dtype)
    x64 = xs.astype(np.float64)
    g = np.random.default_rng(1).standard_normal(x.size).astype(dtype)
    y = _C.gelu(xs, tanh)
    gx = _C.gelu_backward(g, xs, tanh)
    assert y.dtype == dtype and gx.dtype == dtype
    if dtype == np.float32 and not tanh:  # erf's absolute error enters scaled by |x|
        tol = dict(rtol=2e-6, atol=2e-7 * np.abs(x64).max())
    else:
        tol = TOL[dtype] if dtype == np.float64 else dict(rtol=4e-6, atol=1e-6)
    np.testing.assert_allclose(y, gelu_ref(x64, tanh), **tol)
    np.testing.assert_allclose(gx, g * gelu_grad_ref(x64, tanh), **tol)


def test_gelu_float64_left_tail_keeps_its_relative_accuracy():
    """Phi through erfc, not 1 - Phi(-x): relative error near the argument's own rounding (x / sqrt 2
    rounded moves erfc by about x^2 eps relatively), out to where Phi underflows; and a chunk that
    holds such a tail (fdlibm's erfc beyond 6 there) leaves its other elements' bits as they were."""
    rng = np.random.default_rng(3)
    x = -np.concatenate([rng.uniform(0, 37, 50_000), np.linspace(0, 37.5, 5001)])
    y = _C.gelu(x, False)
    want = x * sp.ndtr(x)
    ok = want != 0
    rel = np.abs(y[ok] - want[ok]) / np.abs(want[ok])
    assert (rel <= (8 + 2 * x[ok] ** 2) * np.finfo(np.float64).eps).all(), x[ok][np.argmax(rel / (8 + x[ok] ** 2))]
    small = rng.standard_normal(1000)
    mixed = small.copy()
    mixed[[5, 400, 777]] = [-9.0, -30.0, -np.inf]
    keep = np.ones(1000, bool)
    keep[[5, 400, 777]] = False
    g = rng.standard_normal(1000)
    np.testing.assert_array_equal(_C.gelu(mixed, False)[keep], _C.gelu(small, False)[keep])
    np.testing.assert_array_equal(_C.gelu_backward(g, mixed, False)[keep], _C.gelu_backward(g, small, False)[keep])


def test_float64_activations_against_torch():
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    x = np.random.default_rng(4).standard_normal((300, 500)) * 4
    t = torch.from_numpy(x)
    # PyTorch's x (1 + erf(x / sqrt 2)) / 2 and x (1 + tanh u) / 2: only absolutely accurate in the left tail
    np.testing.assert_allclose(_C.gelu(x, False), F.gelu(t).numpy(), rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(_C.gelu(x, True), F.gelu(t, approximate="tanh").numpy(), rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(_C.silu(x), F.silu(t).numpy(), rtol=1e-14, atol=1e-300)
    np.testing.assert_allclose(_C.softmax(x, False), F.softmax(t, -1).numpy(), rtol=1e-14, atol=1e-300)
    np.testing.assert_allclose(_C.softmax(x, True), F.log_softmax(t, -1).numpy(), rtol=1e-14, atol=1e-14)


@pytest.mark.parametrize("tanh", [False, True])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gelu_special_values(dtype, tanh):
    """inf, -inf, NaN and deep tails: gelu(inf) = inf and gelu(-inf) = -0 (PyTorch's erf form
    gives NaN for both), gradients 1 and 0 there (PyTorch: NaN); NaN stays NaN."""
    x = np.array([np.inf, -np.inf, np.nan, 0.0, -60.0, 60.0, -1e30, 1e30], dtype)
    y = _C.gelu(x, tanh)
    gx = _C.gelu_backward(np.ones_like(x), x, tanh)
    np.testing.assert_array_equal(y, np.array([np.inf, -0.0, np.nan, 0.0, -0.0, 60.0, -0.0, 1e30], dtype))
    assert np.signbit(y[1]) and np.signbit(y[4])
    np.testing.assert_array_equal(gx, np.array([1, 0, np.nan, 0.5, 0, 1, 0, 1], dtype))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_exp_over_the_whole_float_range(dtype):
    """softmax([0, x])[1] = exp(x) / (1 + exp(x)): the vectorised exp from its underflow (denormal
    results) to its overflow threshold, against float64."""
    x = np.concatenate([np.linspace(-110, 0, 20001), [-103.9, -87.5, -87.3, -0.5]]).astype(dtype)
    pairs = np.stack([np.zeros_like(x), x], 1)
    y = _C.softmax(pairs, False)[:, 1]
    x64 = x.astype(np.float64)
    ref = np.exp(x64) / (1 + np.exp(x64))
    tiny = np.finfo(dtype).tiny
    np.testing.assert_allclose(y, ref, rtol=4 * np.finfo(dtype).eps, atol=tiny * 2 * np.finfo(dtype).eps)
    big = np.array([[88.0, 88.7, 0.0]], dtype)  # exp(88.7) is near float32's maximum
    np.testing.assert_allclose(_C.softmax(big, True), sp.log_softmax(big.astype(np.float64), 1),
                               rtol=4 * np.finfo(dtype).eps)


def softmax_refs(x):
    return sp.softmax(x, -1), sp.log_softmax(x, -1)


@SETTINGS
@given(data=st.data())
def test_softmax_forward_and_backward(data):
    R, D, seed, dtype = rows(data.draw)
    rng = np.random.default_rng(seed)
    scale = data.draw(st.sampled_from([1.0, 30.0]))
    x = (rng.standard_normal((R, D)) * scale).astype(dtype)
    g = rng.standard_normal((R, D)).astype(dtype)
    x64, g64 = x.astype(np.float64), g.astype(np.float64)
    s, ls = softmax_refs(x64)
    np.testing.assert_allclose(_C.softmax(x, False), s, **TOL[dtype])
    np.testing.assert_allclose(_C.softmax(x, True), ls, rtol=TOL[dtype]["rtol"], atol=TOL[dtype]["atol"] * scale)
    # backward from the (float64-exact) outputs cast to dtype, so only the backward's error shows
    ys, yl = s.astype(dtype), ls.astype(dtype)
    ys64, yl64 = ys.astype(np.float64), yl.astype(np.float64)
    np.testing.assert_allclose(_C.softmax_backward(g, ys, False),
                               ys64 * (g64 - (g64 * ys64).sum(-1, keepdims=True)), **TOL[dtype])
    np.testing.assert_allclose(_C.softmax_backward(g, yl, True),
                               g64 - np.exp(yl64) * g64.sum(-1, keepdims=True), rtol=TOL[dtype]["rtol"] * 4,
                               atol=TOL[dtype]["atol"] * 4)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_softmax_rows_with_inf_and_nan_follow_pytorch(dtype):
    """A row whose maximum is +inf, -inf (all -inf) or that holds a NaN is NaN; -inf entries of a
    finite row are exact zeros (masked attention)."""
    inf = np.inf
    x = np.array([[inf, 0.0], [-inf, -inf], [np.nan, 1.0], [-inf, 1.0]], dtype)
    nan = np.nan
    np.testing.assert_array_equal(_C.softmax(x, False), np.array([[nan, nan], [nan, nan], [nan, nan], [0, 1]], dtype))
    np.testing.assert_array_equal(_C.softmax(x, True),
                                  np.array([[nan, nan], [nan, nan], [nan, nan], [-inf, 0]], dtype))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gradients_of_nan_rows_are_nan(dtype):
    """log_softmax's and cross_entropy's gradients of a row holding a NaN or +inf are NaN (as in
    PyTorch); float32's exp took a NaN argument for 0 and gave the row the gradient of a finite one."""
    x = np.array([[1.0, np.nan, 2.0], [1.0, np.inf, 2.0], [1.0, 3.0, 2.0]], dtype)
    g = np.array([[1.0, 2.0, 3.0]] * 3, dtype)
    gx = _C.softmax_backward(g, _C.softmax(x, True), True)
    assert np.isnan(gx[:2]).all() and np.isfinite(gx[2]).all(), gx
    t, w = np.array([0, 0, 1]), np.ones(3, dtype)
    loss, rmax, logsum = _C.cross_entropy(x, t, w)
    assert np.isnan(loss[:2]).all() and np.isfinite(loss[2]), loss
    gx = _C.cross_entropy_backward(np.ones(3, dtype), x, t, w, rmax, logsum)
    assert np.isnan(gx[:2]).all() and np.isfinite(gx[2]).all(), gx


def layer_norm_ref(x, w, b, eps):
    mu = x.mean(-1, keepdims=True)
    r = 1 / np.sqrt(x.var(-1, keepdims=True) + eps)
    xhat = (x - mu) * r
    return xhat * (1 if w is None else w) + (0 if b is None else b), mu[:, 0], r[:, 0], xhat


@SETTINGS
@given(data=st.data(), params=st.sampled_from(["none", "w", "b", "wb"]))
def test_layer_norm_forward_and_backward(data, params):
    R, D, seed, dtype = rows(data.draw)
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal((R, D)) * 3 + rng.standard_normal((R, 1)) * 5).astype(dtype)
    w = rng.standard_normal(D).astype(dtype) if "w" in params else None
    b = rng.standard_normal(D).astype(dtype) if "b" in params else None
    g = rng.standard_normal((R, D)).astype(dtype)
    eps = 1e-5
    x64, g64 = x.astype(np.float64), g.astype(np.float64)
    w64 = None if w is None else w.astype(np.float64)
    y_ref, mu, r, xhat = layer_norm_ref(x64, w64, None if b is None else b.astype(np.float64), eps)
    y, mean, rstd = _C.layer_norm(x, D, w, b, eps)
    # the mean is rounded to dtype, so x - mean is off by up to eps |mean|, times rstd: large where a
    # row's spread is small next to its mean (x = [10.6565, 10.6207] in float32: 2.6e-5; PyTorch 3.9e-5)
    cond = (np.finfo(dtype).eps * np.abs(mu) * r)[:, None] * (1 if w64 is None else np.abs(w64))
    err = np.abs(y - y_ref)
    assert (err <= TOL[dtype]["atol"] * 4 + TOL[dtype]["rtol"] * 4 * np.abs(y_ref) + cond).all(), (err, cond)
    np.testing.assert_allclose(mean, mu, **TOL[dtype])
    np.testing.assert_allclose(rstd, r, rtol=TOL[dtype]["rtol"] * 4)
    gh = g64 * (1 if w64 is None else w64)
    gx_ref = r[:, None] * (gh - gh.mean(-1, keepdims=True) - xhat * (gh * xhat).mean(-1, keepdims=True))
    gx, gw, gb = _C.layer_norm_backward(g, x, mean, rstd, D, w, True, True, True)
    # gx = rstd (g w - mean(g w) - ...) cancels: its rounding error is ~eps * rstd * |g w|, large
    # next to gx where rstd is (D = 1: rstd = 1 / sqrt(eps) and gx = 0 up to that error)
    scale = np.abs(gx_ref).max() + 1 + (r[:, None] * np.abs(gh)).max()
    np.testing.assert_allclose(gx, gx_ref, rtol=TOL[dtype]["rtol"] * 50, atol=TOL[dtype]["atol"] * 50 * scale)
    np.testing.assert_allclose(gw, (g64 * xhat).sum(0), rtol=TOL[dtype]["rtol"] * 50, atol=TOL[dtype]["atol"] * 50 * R)
    np.testing.assert_allclose(gb, g64.sum(0), rtol=TOL[dtype]["rtol"] * 10, atol=TOL[dtype]["atol"] * 10 * R)
    # any subset in one call gives the same arrays, bit for bit
    for want in [(True, False, False), (False, True, False), (False, False, True), (False, True, True)]:
        got = _C.layer_norm_backward(g, x, mean, rstd, D, w, *want)
        for a, ref, wanted in zip(got, (gx, gw, gb), want):
            assert (a is None) == (not wanted)
            if wanted:
                np.testing.assert_array_equal(a, ref)


def test_layer_norm_of_a_constant_row_and_of_inf():
    x = np.array([[2.0, 2.0, 2.0], [np.inf, 0.0, 1.0], [np.nan, 0.0, 1.0]])
    y, mean, rstd = _C.layer_norm(x, 3, None, None, 1e-5)
    np.testing.assert_array_equal(y[0], [0, 0, 0])
    assert np.isnan(y[1:]).all()  # as PyTorch


def ce_ref(x, t, w):
    logp = sp.log_softmax(x, 1)
    keep = t >= 0
    safe = np.where(keep, t, 0)
    loss = np.where(keep, -w * logp[np.arange(len(t)), safe], 0.0)
    gx = (np.exp(logp) - np.eye(x.shape[1])[safe]) * (w * keep)[:, None]
    return loss, gx


@SETTINGS
@given(data=st.data())
def test_cross_entropy_forward_and_backward(data):
    R, C, seed, dtype = rows(data.draw, max_cols=300)
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal((R, C)) * data.draw(st.sampled_from([1.0, 20.0]))).astype(dtype)
    t = rng.integers(-1, C, R)  # -1: ignored
    w = rng.uniform(0.5, 2.0, R).astype(dtype)
    g = rng.standard_normal(R).astype(dtype)
    x64 = x.astype(np.float64)
    loss_ref, gx_ref = ce_ref(x64, t, w.astype(np.float64))
    loss, rmax, logsum = _C.cross_entropy(x, t, w)
    np.testing.assert_allclose(loss, loss_ref, rtol=TOL[dtype]["rtol"] * 4, atol=TOL[dtype]["atol"] * 20)
    np.testing.assert_array_equal(rmax, x.max(1))
    np.testing.assert_allclose(rmax + logsum.astype(np.float64), sp.logsumexp(x64, 1), rtol=TOL[dtype]["rtol"] * 4)
    gx = _C.cross_entropy_backward(g, x, t, w, rmax, logsum)
    np.testing.assert_allclose(gx, gx_ref * g.astype(np.float64)[:, None], **TOL[dtype])


def test_cross_entropy_bad_targets_raise():
    x = np.zeros((2, 3))
    w = np.ones(2)
    for t in ([0, 3], [-2, 0]):
        with pytest.raises(ValueError, match="cross_entropy: target .* out of bounds"):
            _C.cross_entropy(x, np.array(t, np.int64), w)
    with pytest.raises(ValueError, match="target must be int64"):
        _C.cross_entropy(x, np.array([0, 1], np.int32), w)
    with pytest.raises(ValueError, match="logits of shape"):
        _C.cross_entropy(np.zeros(3), np.array([0], np.int64), np.ones(1))


def test_bad_input_raises_naming_the_op():
    x = np.zeros((4, 5), np.float32)
    with pytest.raises(ValueError, match="gelu: only float32 and float64"):
        _C.gelu(np.zeros(3, np.int64), False)
    with pytest.raises(ValueError, match="softmax: x must be C-contiguous"):
        _C.softmax(np.zeros((5, 4), np.float32).T, False)
    with pytest.raises(ValueError, match="softmax: expected an input of rank >= 1 with a non-empty last dim"):
        _C.softmax(np.zeros((3, 0), np.float32), False)
    with pytest.raises(ValueError, match="gelu_backward: dtypes differ"):
        _C.gelu_backward(x, x.astype(np.float64), False)
    with pytest.raises(ValueError, match="softmax_backward: grad_output .* must have one shape"):
        _C.softmax_backward(x, np.zeros((4, 6), np.float32), False)
    with pytest.raises(ValueError, match="layer_norm: input .* does not end in 3 normalized elements"):
        _C.layer_norm(x, 3, None, None, 1e-5)
    with pytest.raises(ValueError, match="layer_norm: weight .* must hold 5 elements"):
        _C.layer_norm(x, 5, np.ones(4, np.float32), None, 1e-5)
    with pytest.raises(ValueError, match="layer_norm_backward: mean .* must hold 4 elements"):
        _C.layer_norm_backward(x, x, np.zeros(3, np.float32), np.zeros(4, np.float32), 5, None)
    with pytest.raises(ValueError, match="silu_backward: grad_output .* must have one shape"):
        _C.silu_backward(x, np.zeros((4, 6), np.float32))
    with pytest.raises(ValueError, match=r"dropout: p must be in \[0, 1\), got 1"):
        _C.dropout(x, 1.0, 0)
    with pytest.raises(ValueError, match="dropout_backward: mask must be uint8"):
        _C.dropout_backward(x, x, 0.5)
    with pytest.raises(ValueError, match="embedding_backward: index 7 is out of range for 5 rows"):
        _C.embedding_backward(x, np.array([0, 1, 7, 2]), 5, -1, False)
    with pytest.raises(ValueError, match=r"embedding_backward: grad_output \(4, 5\) must be indices \(3,\)"):
        _C.embedding_backward(x, np.array([0, 1, 2]), 5, -1, False)
    with pytest.raises(ValueError, match="embedding_backward: indices must be int64"):
        _C.embedding_backward(x, np.array([0, 1, 2, 3], np.int32), 5, -1, False)


@pytest.mark.parametrize("D", [63, 64, 65, 1024, 2500])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_long_rows_against_float64(dtype, D):
    """Rows past the row sums' lanes (64 floats, 32 doubles) and chunks (1024 elements), odd tails."""
    rng = np.random.default_rng(D)
    x = (rng.standard_normal((3, D)) * 4 + 2).astype(dtype)
    g = rng.standard_normal((3, D)).astype(dtype)
    w, b = rng.standard_normal(D).astype(dtype), rng.standard_normal(D).astype(dtype)
    x64, g64, w64 = x.astype(np.float64), g.astype(np.float64), w.astype(np.float64)
    tol = dict(rtol=TOL[dtype]["rtol"] * 4, atol=TOL[dtype]["atol"] * 4)
    s, ls = softmax_refs(x64)
    np.testing.assert_allclose(_C.softmax(x, False), s, **tol)
    np.testing.assert_allclose(_C.softmax(x, True), ls, rtol=tol["rtol"], atol=tol["atol"] * 10)
    ys, yl = s.astype(dtype), ls.astype(dtype)
    ys64, yl64 = ys.astype(np.float64), yl.astype(np.float64)
    np.testing.assert_allclose(_C.softmax_backward(g, ys, False), ys64 * (g64 - (g64 * ys64).sum(-1, keepdims=True)),
                               **tol)
    np.testing.assert_allclose(_C.softmax_backward(g, yl, True), g64 - np.exp(yl64) * g64.sum(-1, keepdims=True),
                               rtol=tol["rtol"] * 4, atol=tol["atol"] * 4 * np.abs(g64).sum(-1).max())
    y_ref, mu, r, xhat = layer_norm_ref(x64, w64, b.astype(np.float64), 1e-5)
    y, mean, rstd = _C.layer_norm(x, D, w, b, 1e-5)
    np.testing.assert_allclose(y, y_ref, rtol=tol["rtol"] * 10, atol=tol["atol"] * 10)
    np.testing.assert_allclose(mean, mu, **tol)
    np.testing.assert_allclose(rstd, r, **tol)
    gh = g64 * w64
    gx_ref = r[:, None] * (gh - gh.mean(-1, keepdims=True) - xhat * (gh * xhat).mean(-1, keepdims=True))
    gx, gw, gb = _C.layer_norm_backward(g, x, mean, rstd, D, w, True, True, True)
    np.testing.assert_allclose(gx, gx_ref, rtol=tol["rtol"] * 10, atol=tol["atol"] * 10)
    np.testing.assert_allclose(gw, (g64 * xhat).sum(0), rtol=tol["rtol"] * 10, atol=tol["atol"] * 10)
    np.testing.assert_allclose(gb, g64.sum(0), rtol=tol["rtol"] * 10, atol=tol["atol"] * 10)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("D", [1, 7, 37, 100])
def test_rows_written_at_any_offset_in_a_cache_line_are_bit_identical(dtype, D):
    """The output passes of layer_norm, softmax and log_softmax start at the row's first 64-byte
    boundary (lanes::line_head): one row repeated, so that its copies start at every offset in a
    line, gives the same bits in each copy."""
    rng = np.random.default_rng(5)
    row = rng.standard_normal(D).astype(dtype) * 3 + 1
    x = np.tile(row, (16, 1))
    w, b = rng.standard_normal(D).astype(dtype), rng.standard_normal(D).astype(dtype)
    outs = [_C.layer_norm(x, D, w, b, 1e-5)[0], _C.layer_norm(x, D, None, None, 1e-5)[0],
            _C.layer_norm(x, D, w, None, 1e-5)[0], _C.softmax(x, False), _C.softmax(x, True)]
    for y in outs:
        np.testing.assert_array_equal(y, np.broadcast_to(y[:1], y.shape))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_one_and_two_threads_are_bit_identical(dtype):
    """Sizes above the parallel threshold, rows that do not split evenly over the threads."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((301, 257)).astype(dtype)
    g = rng.standard_normal((301, 257)).astype(dtype)
    w, b = rng.standard_normal(257).astype(dtype), rng.standard_normal(257).astype(dtype)
    t = rng.integers(-1, 257, 301)
    cw = np.ones(301, dtype)
    drop_mask = (rng.random(x.shape) < 0.5).astype(np.uint8)
    idx = rng.integers(0, 40, 301)

    def run():
        y, mean, rstd = _C.layer_norm(x, 257, w, b, 1e-5)
        loss, rmax, logsum = _C.cross_entropy(x, t, cw)
        return [_C.gelu(x, False), _C.gelu(x, True), _C.gelu_backward(g, x, False), _C.gelu_backward(g, x, True),
                _C.softmax(x, False), _C.softmax(x, True), _C.softmax_backward(g, x, False),
                _C.softmax_backward(g, x, True), y, mean, rstd, *_C.layer_norm_backward(g, x, mean, rstd, 257, w, True, True, True),
                loss, rmax, logsum, _C.cross_entropy_backward(cw, x, t, cw, rmax, logsum), _C.silu(x),
                _C.silu_backward(g, x), *_C.dropout(x, 0.3, 12345), _C.dropout_backward(g, drop_mask, 0.3),
                _C.embedding_backward(g, idx, 40, 3, False), _C.embedding_backward(g, idx, 40, -1, True)]

    before = _C.get_num_threads()
    try:
        _C.set_num_threads(1)
        one = run()
        _C.set_num_threads(2)
        two = run()
    finally:
        _C.set_num_threads(before)
    for a, b_ in zip(one, two):
        np.testing.assert_array_equal(a, b_)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_silu_against_float64(dtype):
    x = np.concatenate([np.linspace(-100, 100, 20001), np.random.default_rng(0).standard_normal(999) * 3,
                        [0.0, -0.0, np.inf, -np.inf, np.nan, -1e30, 1e30]]).astype(dtype)
    x64 = x.astype(np.float64)
    g = np.random.default_rng(1).standard_normal(x.size).astype(dtype)
    with np.errstate(all="ignore"):
        s = sp.expit(x64)
        y_ref = x64 / (1 + np.exp(-x64))  # PyTorch's form: silu(-inf) = NaN, as x * sigmoid(x)
        gx_ref = g * s * (1 + x64 * (1 - s))
    y, gx = _C.silu(x), _C.silu_backward(g, x)
    assert y.dtype == dtype and gx.dtype == dtype
    tol = TOL[dtype] if dtype == np.float64 else dict(rtol=4e-6, atol=1e-30)
    np.testing.assert_allclose(y, y_ref, **tol)
    # silu' = s (1 + x (1 - s)) cancels near x = -1.28 (where it is 0): error ~ eps |g| there
    tol = TOL[dtype] if dtype == np.float64 else dict(rtol=4e-6, atol=1e-6)
    np.testing.assert_allclose(gx, gx_ref, **tol)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("p", [0.1, 0.5, 0.9])
def test_dropout_mask_statistics_and_output(dtype, p):
    """The keep rate is 1 - p within 5 sigma; kept elements are x / (1 - p), dropped ones x * 0
    (NaN for inf, as PyTorch); the draw depends on (seed, index) only."""
    n = 200_003
    x = np.random.default_rng(2).standard_normal(n).astype(dtype)
    y, mask = _C.dropout(x, p, 99)
    assert mask.dtype == np.uint8 and set(np.unique(mask)) <= {0, 1}
    keep = mask.mean()
    assert abs(keep - (1 - p)) < 5 * np.sqrt(p * (1 - p) / n)
    scale = dtype(1 / (1 - p))
    np.testing.assert_array_equal(y, np.where(mask == 1, x * scale, dtype(0)))
    y2, mask2 = _C.dropout(x, p, 99)
    np.testing.assert_array_equal(mask, mask2)
    assert (_C.dropout(x, p, 100)[1] != mask).mean() > 0.1  # another seed, another mask
    # a prefix gets the same draws: blocking and thread count do not enter
    np.testing.assert_array_equal(_C.dropout(x[:5000], p, 99)[1], mask[:5000])
    # neighbouring draws are not correlated (lag-1 agreement of the masks as for independent ones)
    agree = (mask[1:] == mask[:-1]).mean()
    assert abs(agree - (p * p + (1 - p) ** 2)) < 0.01
    g = np.random.default_rng(3).standard_normal(n).astype(dtype)
    np.testing.assert_array_equal(_C.dropout_backward(g, mask, p), g * (mask * scale))
    special = np.array([np.inf, np.nan, 1.0] * 50, dtype)
    ys, ms = _C.dropout(special, 0.5, 1)
    assert np.isnan(ys[(ms == 0) & np.isinf(special)]).all()
    assert (_C.dropout(x, 0.0, 5)[1] == 1).all()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("pad", [-1, 2])
@pytest.mark.parametrize("freq", [False, True])
def test_embedding_backward_is_an_index_add(dtype, pad, freq):
    rng = np.random.default_rng(4)
    num, D = 11, 70  # D not a multiple of the column block
    idx = rng.integers(0, num, (6, 9))
    idx[0, :3] = 2
    g = rng.standard_normal((6, 9, D)).astype(dtype)
    count = np.bincount(idx.ravel(), minlength=num)
    ref = np.zeros((num, D))
    for i, k in enumerate(idx.ravel()):
        if k != pad:
            ref[k] += g.reshape(-1, D)[i] / (count[k] if freq else 1)
    gw = _C.embedding_backward(g, idx, num, pad, freq)
    assert gw.dtype == dtype and gw.shape == (num, D)
    np.testing.assert_allclose(gw, ref, **TOL[dtype])
    assert _C.embedding_backward(g[:0], idx[:0], num, pad, freq).tolist() == np.zeros((num, D)).tolist()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("pad", [-1, 5])
@pytest.mark.parametrize("freq", [False, True])
@pytest.mark.parametrize("cut", ["rows", "columns"])
def test_embedding_backward_threads_and_cuts(dtype, pad, freq, cut):
    """A table of 8 MiB and more is cut by weight rows (each thread faults in its own pages), a
    smaller one with a million gradient elements or more by column blocks that start on cache
    lines: every row still gets its additions in index order, so the result is np.add.at's and
    the same for any thread count; repeated and padding indices at both ends of the table."""
    rng = np.random.default_rng(5)
    if cut == "rows":  # about 8.4 MiB; D past a column block
        num, D, n = (17000 if dtype == np.float32 else 8500), 130, 3000
    else:  # 0.3 / 0.6 MiB; rows of whole cache lines, 1.2 M gradient elements
        num, D, n = 300, 256, 4500
    idx = rng.integers(0, num, n)
    idx[:40] = 5
    idx[40:60] = num - 1
    idx[60:70] = 0
    g = rng.standard_normal((n, D)).astype(dtype)
    count = np.bincount(idx, minlength=num)
    results, before = [], _C.get_num_threads()
    try:
        for n in (1, 2, 3):
            _C.set_num_threads(n)
            results.append(_C.embedding_backward(g, idx, num, pad, freq))
    finally:
        _C.set_num_threads(before)
    for other in results[1:]:
        np.testing.assert_array_equal(other, results[0])
    keep = idx != pad
    ref = np.zeros((num, D), dtype)
    if freq:
        np.add.at(ref, idx[keep], g[keep] * (1 / count[idx[keep]]).astype(dtype)[:, None])
        np.testing.assert_allclose(results[0], ref, **TOL[dtype])
    else:
        np.add.at(ref, idx[keep], g[keep])  # the same additions in the same order
        np.testing.assert_array_equal(results[0], ref)


DROPOUT_SCRIPT = """
import sys
import numpy as np
from tapegrad import _C
x = np.random.default_rng(0).standard_normal(70_001).astype(np.float32)
np.save(sys.argv[1], _C.dropout(x, 0.3, 2024)[1])
"""


@pytest.mark.parametrize("kernel", ["avx2", "generic"])
def test_dropout_mask_is_the_same_on_every_isa(kernel, tmp_path):
    """The dropout mask is integer arithmetic: bit for bit the same with the kernels capped at
    AVX2 or the baseline (TAPEGRAD_CPU), as on a machine without AVX-512. (The rest of this file
    runs at each cap in tests/csrc/test_isa_paths.py.)"""
    env = dict(os.environ, TAPEGRAD_CPU=kernel)
    masks = []
    for e in (os.environ, env):
        path = tmp_path / f"{len(masks)}.npy"
        subprocess.run([sys.executable, "-c", DROPOUT_SCRIPT, str(path)], env=dict(e), check=True, timeout=120)
        masks.append(np.load(path))
    np.testing.assert_array_equal(masks[0], masks[1])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_relu_is_numpys_maximum_and_its_backward_a_select(dtype):
    rng = np.random.default_rng(3)
    x = rng.standard_normal(70001).astype(dtype)  # odd, over several blocks and both threads
    x[:6] = [np.nan, -np.inf, np.inf, -0.0, 0.0, -1e-30]
    g = rng.standard_normal(x.shape).astype(dtype)
    g[6:10] = [np.inf, np.nan, -np.inf, np.nan]
    x[6:10] = [-1.0, 0.0, 2.0, np.nan]
    before = _C.get_num_threads()
    try:
        runs = []
        for n in (1, 2):
            _C.set_num_threads(n)
            y = _C.relu(x)
            runs.append((y, _C.relu_backward(g, y)))
    finally:
        _C.set_num_threads(before)
    ref = np.maximum(x, 0)
    np.testing.assert_array_equal(runs[0][0].view(np.uint8), ref.view(np.uint8))  # bits: NaN kept, -0.0 to 0
    np.testing.assert_array_equal(runs[0][1].view(np.uint8), np.where(ref > 0, g, dtype(0)).view(np.uint8))
    for a, b in zip(runs[0], runs[1]):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="relu_backward: grad_output .* must have one shape"):
        _C.relu_backward(g[:5], x[:6])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("D", [1024, 1000, 2048])
@pytest.mark.parametrize("with_w", [True, False])
def test_layer_norm_backward_param_sums_of_page_sized_rows(dtype, D, with_w):
    """Rows of 4 KiB and more (the parameter sums' buffers are placed off gx's 4 KiB phase):
    gw, gb against float64 sums, the same bits with or without gx asked for and for 1 or 2
    threads, over several chunks of rows (R = 100 is not a multiple of the chunk size)."""
    rng = np.random.default_rng(D)
    R = 100
    x = rng.standard_normal((R, D)).astype(dtype)
    g = rng.standard_normal((R, D)).astype(dtype)
    w = rng.standard_normal(D).astype(dtype) if with_w else None
    y, mean, rstd = _C.layer_norm(x, D, w, None, 1e-5)
    x64 = x.astype(np.float64)
    xhat = (x64 - x64.mean(-1, keepdims=True)) / np.sqrt(x64.var(-1, keepdims=True) + 1e-5)
    before = _C.get_num_threads()
    try:
        runs = []
        for threads in (1, 2):
            _C.set_num_threads(threads)
            runs.append([_C.layer_norm_backward(g, x, mean, rstd, D, w, gx, True, True) for gx in (True, False)])
    finally:
        _C.set_num_threads(before)
    gw, gb = runs[0][0][1], runs[0][0][2]
    tol = TOL[dtype]
    np.testing.assert_allclose(gw, (g.astype(np.float64) * xhat).sum(0), rtol=tol["rtol"] * 50, atol=tol["atol"] * 50 * R)
    np.testing.assert_allclose(gb, g.astype(np.float64).sum(0), rtol=tol["rtol"] * 10, atol=tol["atol"] * 10 * R)
    for per_threads in runs:
        for got in per_threads:
            np.testing.assert_array_equal(got[1], gw)
            np.testing.assert_array_equal(got[2], gb)
    np.testing.assert_array_equal(runs[1][0][0], runs[0][0][0])
