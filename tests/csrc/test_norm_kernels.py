"""The batch_norm and group_norm kernels of tapegrad._C (csrc/kernels/norm.cpp) against float64
numpy references: statistics, running-statistic updates, forward and backward, every layout
(N, C) to (N, C, D, H, W), odd sizes, both dtypes, and one result for any thread count."""
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tapegrad import _C

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
TOL = {np.float32: dict(rtol=2e-5, atol=2e-6), np.float64: dict(rtol=1e-12, atol=1e-13)}


def draw_case(draw, groups=False):
    """x of shape (N, C, *spatial) with odd sizes, a dtype, a seed, and a group count dividing C."""
    n, c = draw(st.integers(1, 5)), draw(st.integers(1, 6))
    spatial = tuple(draw(st.lists(st.integers(1, 7), max_size=3)))
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    g = draw(st.sampled_from([d for d in range(1, c + 1) if c % d == 0]))
    return (n, c) + spatial, dtype, draw(st.integers(0, 2**32 - 1)), g


def axes(x):
    return (0,) + tuple(range(2, x.ndim))


def cshape(x):
    return (1, -1) + (1,) * (x.ndim - 2)


@SETTINGS
@given(data=st.data())
def test_batch_norm_forward_backward_and_running_stats(data):
    shape, dtype, seed, _ = draw_case(data.draw)
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal(shape) * 3 + rng.uniform(-50, 50)).astype(dtype)
    c = shape[1]
    m = x.size // c
    w, b = rng.standard_normal(c).astype(dtype), rng.standard_normal(c).astype(dtype)
    x64, w64, b64 = (a.astype(np.float64) for a in (x, w, b))
    mu, var = x64.mean(axes(x)), x64.var(axes(x))
    training = m > 1 and data.draw(st.booleans())
    rm0, rv0 = rng.standard_normal(c).astype(dtype), rng.uniform(0.5, 2, c).astype(dtype)
    rm, rv = rm0.copy(), rv0.copy()
    y, mean, rstd = _C.batch_norm(x, w, b, rm, rv, training, 0.3, 1e-5)
    if training:
        np.testing.assert_allclose(rm, 0.7 * rm0 + 0.3 * mu, **TOL[dtype])
        np.testing.assert_allclose(rv, 0.7 * rv0 + 0.3 * var * m / (m - 1), **TOL[dtype])
    else:
        mu, var = rm0.astype(np.float64), rv0.astype(np.float64)
        np.testing.assert_array_equal(rm, rm0)
    r = 1 / np.sqrt(var + 1e-5)
    xhat = (x64 - mu.reshape(cshape(x))) * r.reshape(cshape(x))
    np.testing.assert_allclose(mean, mu, **TOL[dtype])
    np.testing.assert_allclose(rstd, r, **TOL[dtype])
    # float32: |x| up to ~60 against a spread of 3, so the output's error scales with |x| / std
    tol = TOL[dtype] if dtype == np.float64 else dict(rtol=2e-5, atol=2e-5 * (1 + np.abs(x64).max() * r.max()))
    np.testing.assert_allclose(y, xhat * w64.reshape(cshape(x)) + b64.reshape(cshape(x)), **tol)

    g = rng.standard_normal(shape).astype(dtype)
    g64 = g.astype(np.float64)
    gx, gw, gb = _C.batch_norm_backward(g, x, mean, rstd, w, training, True, True, True)
    gh = g64 * w64.reshape(cshape(x))
    if training:
        ref = (gh - gh.mean(axes(x), keepdims=True) - xhat * (gh * xhat).mean(axes(x), keepdims=True)) * r.reshape(cshape(x))
    else:
        ref = gh * r.reshape(cshape(x))
    scale = np.abs(g64).max() * r.max() * max(1, np.abs(w64).max())
    np.testing.assert_allclose(gx, ref, rtol=TOL[dtype]["rtol"], atol=TOL[dtype]["rtol"] * scale * 10)
    # float32: the saved mean is rounded to float32, off by up to eps * |x|, which xhat magnifies by
    # rstd (two near-equal values ~37 apart from 0: |x| * rstd ~ 10^4)
    spread = 1 if dtype == np.float64 else max(1, np.abs(x64).max() * r.max())
    np.testing.assert_allclose(gw, (g64 * xhat).sum(axes(x)), rtol=TOL[dtype]["rtol"],
                               atol=TOL[dtype]["rtol"] * np.abs(g64 * xhat).sum(axes(x)).max() * 10 * spread)
    np.testing.assert_allclose(gb, g64.sum(axes(x)), rtol=TOL[dtype]["rtol"],
                               atol=TOL[dtype]["rtol"] * np.abs(g64).sum(axes(x)).max() * 10)
    only = _C.batch_norm_backward(g, x, mean, rstd, None, training, True, False, False)
    assert only[1] is None and only[2] is None
    np.testing.assert_allclose(only[0] * w.reshape(cshape(x)), gx, rtol=1e-4 if dtype == np.float32 else 1e-10,
                               atol=TOL[dtype]["rtol"] * scale * 10)


@SETTINGS
@given(data=st.data())
def test_group_norm_forward_and_backward(data):
    shape, dtype, seed, groups = draw_case(data.draw)
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal(shape) * 2 + rng.uniform(-20, 20)).astype(dtype)
    n, c = shape[:2]
    w, b = rng.standard_normal(c).astype(dtype), rng.standard_normal(c).astype(dtype)
    x64, w64 = x.astype(np.float64), w.astype(np.float64)
    y, mean, rstd, var = _C.group_norm(x, groups, w, b, 1e-5, True)
    xr = x64.reshape(n, groups, -1)
    mu, v = xr.mean(2), xr.var(2)
    r = 1 / np.sqrt(v + 1e-5)
    xhat = ((xr - mu[..., None]) * r[..., None]).reshape(shape)
    np.testing.assert_allclose(mean, mu.ravel(), **TOL[dtype])
    np.testing.assert_allclose(rstd, r.ravel(), **TOL[dtype])
    np.testing.assert_allclose(var, v.ravel(), rtol=1e-12, atol=1e-12 * (1 + np.abs(x64).max()) ** 2)
    tol = TOL[dtype] if dtype == np.float64 else dict(rtol=2e-5, atol=2e-5 * (1 + np.abs(x64).max() * r.max()))
    np.testing.assert_allclose(y, xhat * w64.reshape(cshape(x)) + b.astype(np.float64).reshape(cshape(x)), **tol)

    g = rng.standard_normal(shape).astype(dtype)
    g64 = g.astype(np.float64)
    gh = (g64 * w64.reshape(cshape(x))).reshape(n, groups, -1)
    xh = xhat.reshape(n, groups, -1)
    ref = ((gh - gh.mean(2, keepdims=True) - xh * (gh * xh).mean(2, keepdims=True)) * r[..., None]).reshape(shape)
    scale = np.abs(g64).max() * r.max() * max(1, np.abs(w64).max())
    gx, gw, gb = _C.group_norm_backward(g, x, mean, rstd, groups, w, True, True, True)
    np.testing.assert_allclose(gx, ref, rtol=TOL[dtype]["rtol"], atol=TOL[dtype]["rtol"] * scale * 10)
    alone = _C.group_norm_backward(g, x, mean, rstd, groups, None, False, True, False)
    assert alone[0] is None and alone[2] is None
    np.testing.assert_array_equal(alone[1], gw)
    # float32: the saved mean is rounded to float32, off by up to eps * |x|, which xhat magnifies by
    # rstd (two near-equal values ~37 apart from 0: |x| * rstd ~ 10^4)
    spread = 1 if dtype == np.float64 else max(1, np.abs(x64).max() * r.max())
    np.testing.assert_allclose(gw, (g64 * xhat).sum(axes(x)), rtol=TOL[dtype]["rtol"],
                               atol=TOL[dtype]["rtol"] * np.abs(g64 * xhat).sum(axes(x)).max() * 10 * spread)
    np.testing.assert_allclose(gb, g64.sum(axes(x)), rtol=TOL[dtype]["rtol"],
                               atol=TOL[dtype]["rtol"] * np.abs(g64).sum(axes(x)).max() * 10)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_statistics_keep_their_accuracy_far_from_zero(dtype):
    """A mean 1e4 times the spread: two passes in double lose nothing a float32 input can hold
    (a one-pass sum of squares in float32 would lose every digit of the variance)."""
    rng = np.random.default_rng(0)
    x = (1e4 + rng.standard_normal((64, 2, 33, 17))).astype(dtype)
    x64 = x.astype(np.float64)
    y, mean, rstd = _C.batch_norm(x, None, None, None, None, True, 0.1, 0.0)
    np.testing.assert_allclose(rstd, 1 / x64.std(axes(x)), rtol=1e-6 if dtype == np.float32 else 1e-12)
    yref = (x64 - x64.mean(axes(x), keepdims=True)) / x64.std(axes(x), keepdims=True)
    np.testing.assert_allclose(y, yref, atol=2e-3 if dtype == np.float32 else 1e-10)


@pytest.mark.parametrize("shape, groups", [((8, 4, 20000), 2), ((2, 4, 20000), 2), ((16, 6, 7), 3),
                                           ((32, 64, 8, 8), 32), ((1000, 12, 5), 6)])
def test_group_norm_a_group_at_a_time_and_split(shape, groups):
    """Both of group_norm's routes (ranges of groups for >= 8 groups, split planes for fewer),
    with groups longer than a statistics tile (16384 elements), and small groups many to a range
    (the last one short), against float64."""
    rng = np.random.default_rng(2)
    x = (rng.standard_normal(shape) * 3 + 5).astype(np.float32)
    g = rng.standard_normal(shape).astype(np.float32)
    n, c = shape[:2]
    w, b = rng.standard_normal(c).astype(np.float32), rng.standard_normal(c).astype(np.float32)
    x64, g64, w64 = x.astype(np.float64), g.astype(np.float64), w.astype(np.float64).reshape(cshape(x))
    y, mean, rstd, var = _C.group_norm(x, groups, w, b, 1e-5, True)
    xr = x64.reshape(n, groups, -1)
    mu, v = xr.mean(2), xr.var(2)
    r = 1 / np.sqrt(v + 1e-5)
    xhat = ((xr - mu[..., None]) * r[..., None]).reshape(shape)
    np.testing.assert_allclose(var, v.ravel(), rtol=1e-12)
    np.testing.assert_allclose(y, xhat * w64 + b.astype(np.float64).reshape(cshape(x)), rtol=1e-5, atol=1e-5)
    gh = (g64 * w64).reshape(n, groups, -1)
    xh = xhat.reshape(n, groups, -1)
    ref = ((gh - gh.mean(2, keepdims=True) - xh * (gh * xh).mean(2, keepdims=True)) * r[..., None]).reshape(shape)
    gx, gw, gb = _C.group_norm_backward(g, x, mean, rstd, groups, w, True, True, True)
    np.testing.assert_allclose(gx, ref, rtol=1e-4, atol=1e-5 * np.abs(ref).max())
    np.testing.assert_allclose(gw, (g64 * xhat).sum(axes(x)), rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(gb, g64.sum(axes(x)), rtol=1e-4, atol=1e-3)


@pytest.mark.threads
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
# (32, 64, 8, 8), (64, 8, 7, 3): planes summed as short runs in registers (lanes::vsums), whole
# vectors and with a tail
@pytest.mark.parametrize("shape", [(32, 16, 32, 32), (4, 3, 80000), (3000, 40), (2, 8, 5000), (8, 4, 20000),
                                   (600, 12, 5), (32, 64, 8, 8), (64, 8, 7, 3)])
def test_one_result_for_any_thread_count(restore_threads, dtype, shape):
    rng = np.random.default_rng(1)
    x = (rng.standard_normal(shape) + 1).astype(dtype)
    g = rng.standard_normal(shape).astype(dtype)
    c = shape[1]
    w, b = rng.standard_normal(c).astype(dtype), rng.standard_normal(c).astype(dtype)
    groups = 4 if c % 4 == 0 else 1
    results = []
    for nt in (1, 2, 3):
        _C.set_num_threads(nt)
        rm, rv = np.zeros(c, dtype), np.ones(c, dtype)
        y, mean, rstd = _C.batch_norm(x, w, b, rm, rv, True, 0.1, 1e-5)
        bwd = _C.batch_norm_backward(g, x, mean, rstd, w, True, True, True, True)
        gy, gmean, grstd, gvar = _C.group_norm(x, groups, w, b, 1e-5, True)
        gbwd = _C.group_norm_backward(g, x, gmean, grstd, groups, w, True, True, True)
        results.append([y, mean, rstd, rm, rv, *bwd, gy, gmean, grstd, gvar, *gbwd])
    for other in results[1:]:
        for a, b_ in zip(results[0], other):
            np.testing.assert_array_equal(a, b_)


def test_bad_operands_raise_naming_the_op():
    x = np.ones((4, 3, 5), np.float32)
    with pytest.raises(ValueError, match="batch_norm.*dtypes differ"):
        _C.batch_norm(x, np.ones(3), None, None, None, True, 0.1, 1e-5)
    with pytest.raises(ValueError, match="batch_norm.*weight.*3 elements"):
        _C.batch_norm(x, np.ones(4, np.float32), None, None, None, True, 0.1, 1e-5)
    with pytest.raises(ValueError, match="batch_norm.*C-contiguous"):
        _C.batch_norm(np.ones((5, 3, 4), np.float32).transpose(2, 1, 0), None, None, None, None, True, 0.1, 1e-5)
    with pytest.raises(ValueError, match="required when training=False"):
        _C.batch_norm(x, None, None, None, None, False, 0.1, 1e-5)
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        _C.batch_norm(np.ones((1, 3), np.float32), None, None, None, None, True, 0.1, 1e-5)
    with pytest.raises(ValueError, match="shape \\(N, C, \\*\\)"):
        _C.batch_norm(np.ones(3, np.float32), None, None, None, None, True, 0.1, 1e-5)
    with pytest.raises(ValueError, match="only float32 and float64"):
        _C.batch_norm(x.astype(np.int64), None, None, None, None, True, 0.1, 1e-5)
    frozen = np.zeros(3, np.float32)
    frozen.flags.writeable = False
    with pytest.raises(ValueError, match="writeable"):
        _C.batch_norm(x, None, None, frozen, np.ones(3, np.float32), True, 0.1, 1e-5)
    with pytest.raises(ValueError, match="group_norm.*divisible by num_groups 2"):
        _C.group_norm(x, 2, None, None, 1e-5, False)
    with pytest.raises(ValueError, match="group_norm_backward.*one shape"):
        _C.group_norm_backward(np.ones((4, 3, 4), np.float32), x, np.zeros(12, np.float32),
                               np.ones(12, np.float32), 3, None, True, False, False)
    with pytest.raises(ValueError, match="batch_norm_backward.*rstd.*3 elements"):
        _C.batch_norm_backward(x, x, np.zeros(3, np.float32), np.ones(2, np.float32), None, True, True, False, False)
