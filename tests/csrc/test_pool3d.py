"""max_pool3d / avg_pool3d kernels in tapegrad._C against direct numpy references (the kernels are
the 2-D ones with a depth dim: test_pool.py), bit-identical for 1 and 2 threads."""
import itertools

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tapegrad import _C

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def pool_out(n, k, s, p, d, ceil_mode):
    """PyTorch's pooling output size."""
    span = n + 2 * p - d * (k - 1) - 1
    out = (span + (s - 1 if ceil_mode else 0)) // s + 1
    if ceil_mode and (out - 1) * s >= n + p:  # the last window must start inside input or left padding
        out -= 1
    return out


triple = lambda lo, hi: st.tuples(*[st.integers(lo, hi)] * 3)  # noqa: E731


@st.composite
def geometries(draw, dilation=True):
    return dict(shape=(draw(st.integers(1, 2)), draw(st.integers(1, 3))) + draw(triple(1, 6)),
                k=draw(triple(1, 3)), s=draw(triple(1, 3)), p=draw(triple(0, 1)),
                d=draw(triple(1, 2)) if dilation else (1, 1, 1), ceil_mode=draw(st.booleans()),
                seed=draw(st.integers(0, 2**32 - 1)), ties=draw(st.booleans()))


def make_x(g, dtype):
    rng = np.random.default_rng(g["seed"])
    x = rng.standard_normal(g["shape"])
    return rng, (np.round(x) if g["ties"] else x).astype(dtype)  # rounded: many ties


def out_size(g):
    return tuple(pool_out(n, k, s, p, d, g["ceil_mode"])
                 for n, k, s, p, d in zip(g["shape"][2:], g["k"], g["s"], g["p"], g["d"]))


def invalid(g):
    return any(p > k // 2 for p, k in zip(g["p"], g["k"])) or min(out_size(g)) < 1


def window(o, i, g):
    """The in-bounds input coordinates of window ``o`` along dim ``i``."""
    n, k, s, p, d = g["shape"][2 + i], g["k"][i], g["s"][i], g["p"][i], g["d"][i]
    return [c for c in range(o * s - p, o * s - p + k * d, d) if 0 <= c < n]


def max_pool_ref(x, g):
    """Values and first-maximum flat indices in (depth, row, column) order."""
    N, C, D, H, W = x.shape
    out = out_size(g)
    y, idx = np.full((N, C) + out, -np.inf, x.dtype), np.full((N, C) + out, -1, np.int64)
    for o in itertools.product(*map(range, out)):
        cells = list(itertools.product(*(window(o[i], i, g) for i in range(3))))
        if not cells:
            continue
        vals = np.stack([x[:, :, a, b, c] for a, b, c in cells], -1)
        first = vals.argmax(-1)  # the first maximum
        y[(slice(None), slice(None)) + o] = np.take_along_axis(vals, first[..., None], -1)[..., 0]
        flat = np.array([(a * H + b) * W + c for a, b, c in cells])
        idx[(slice(None), slice(None)) + o] = flat[first]
    return y, idx


def avg_pool_ref(x, g, count_include_pad, divisor_override):
    out = out_size(g)
    y = np.zeros(x.shape[:2] + out, x.dtype)
    for o in itertools.product(*map(range, out)):
        # window in padded coordinates, clipped at the padded input's far edge
        padded = [[c for c in range(o[i] * g["s"][i], o[i] * g["s"][i] + g["k"][i])
                   if c < g["shape"][2 + i] + 2 * g["p"][i]] for i in range(3)]
        inside = list(itertools.product(*(window(o[i], i, g) for i in range(3))))
        if not inside:
            continue
        div = divisor_override or (np.prod([len(r) for r in padded]) if count_include_pad else len(inside))
        y[(slice(None), slice(None)) + o] = sum(x[:, :, a, b, c] for a, b, c in inside) / div
    return y


def with_threads(n, fn):
    before = _C.get_num_threads()
    try:
        _C.set_num_threads(n)
        return fn()
    finally:
        _C.set_num_threads(before)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@SETTINGS
@given(g=geometries())
def test_max_pool3d_matches_reference(dtype, g):
    rng, x = make_x(g, dtype)
    geo = (g["k"], g["s"], g["p"], g["d"], g["ceil_mode"])
    if invalid(g):
        with pytest.raises(ValueError, match="^max_pool3d: "):
            _C.max_pool3d(x, *geo)
        return
    y, idx = _C.max_pool3d(x, *geo)
    ry, ridx = max_pool_ref(x, g)
    np.testing.assert_array_equal(y, ry)
    np.testing.assert_array_equal(idx, ridx)
    gy = rng.standard_normal(y.shape).astype(dtype)
    gx = _C.max_pool3d_backward(gy, idx, g["shape"][2:])
    ref = np.zeros((np.prod(g["shape"][:2]), np.prod(g["shape"][2:])), dtype)
    for p, (i, v) in enumerate(zip(idx.reshape(ref.shape[0], -1), gy.reshape(ref.shape[0], -1))):
        np.add.at(ref[p], i[i >= 0], v[i >= 0])
    np.testing.assert_allclose(gx, ref.reshape(x.shape), rtol=1e-6)


@pytest.mark.parametrize("count_include_pad", [True, False])
@pytest.mark.parametrize("divisor", [0, 5])
@SETTINGS
@given(g=geometries(dilation=False))
def test_avg_pool3d_matches_reference(count_include_pad, divisor, g):
    rng, x = make_x(g, np.float64)
    geo = (g["k"], g["s"], g["p"], g["ceil_mode"], count_include_pad, divisor)
    if invalid(g):
        with pytest.raises(ValueError, match="^avg_pool3d: "):
            _C.avg_pool3d(x, *geo)
        return
    y = _C.avg_pool3d(x, *geo)
    np.testing.assert_allclose(y, avg_pool_ref(x, g, count_include_pad, divisor), rtol=1e-12, atol=1e-12)
    gy = rng.standard_normal(y.shape)
    gx = _C.avg_pool3d_backward(gy, g["shape"][2:], *geo)
    assert abs(np.vdot(gx, x) - np.vdot(gy, y)) < 1e-10 * (1 + abs(np.vdot(gy, y)))  # the adjoint


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("k, s, p, d, ceil_mode", [
    ((2, 2, 2), (2, 2, 2), (0, 0, 0), (1, 1, 1), False),  # the fast path
    ((3, 2, 3), (1, 2, 1), (0, 0, 0), (1, 1, 1), True),   # fast path, and the overhang beside it
    ((3, 3, 3), (2, 2, 2), (1, 1, 1), (1, 2, 1), True),   # the general path
])
def test_nan_ties_and_threads(dtype, k, s, p, d, ceil_mode):
    """Ties keep the first maximum, a NaN wins (the last one, as PyTorch), all -inf windows keep
    their first tap; 1 and 2 threads give identical bits, and PyTorch agrees."""
    rng = np.random.default_rng(5)
    x = np.round(rng.standard_normal((2, 3, 7, 9, 70)))
    x[rng.random(x.shape) < 0.03] = np.nan
    x[rng.random(x.shape) < 0.1] = -np.inf
    x[1, 2] = -np.inf
    x = x.astype(dtype)
    one, two = (with_threads(n, lambda: _C.max_pool3d(x, k, s, p, d, ceil_mode)) for n in (1, 2))
    np.testing.assert_array_equal(one[0], two[0])
    np.testing.assert_array_equal(one[1], two[1])
    a = with_threads(1, lambda: _C.avg_pool3d(np.nan_to_num(x, neginf=0), k, s, p, ceil_mode, False, 0))
    b = with_threads(2, lambda: _C.avg_pool3d(np.nan_to_num(x, neginf=0), k, s, p, ceil_mode, False, 0))
    np.testing.assert_array_equal(a, b)
    torch = pytest.importorskip("torch")
    ty, ti = torch.nn.functional.max_pool3d(torch.from_numpy(x), k, s, p, d, ceil_mode, return_indices=True)
    np.testing.assert_array_equal(one[0], ty.numpy())
    np.testing.assert_array_equal(one[1], ti.numpy())


def test_bad_input_raises_value_error_naming_the_op():
    x = np.zeros((1, 2, 4, 5, 6))
    cases = [
        (lambda: _C.max_pool3d(x[0], (2, 2, 2), (2, 2, 2), (0, 0, 0), (1, 1, 1), False),
         r"^max_pool3d: expected x of shape \(N, C, D, H, W\)"),
        (lambda: _C.max_pool3d(x, (5, 2, 2), (1, 1, 1), (0, 0, 0), (1, 1, 1), False),
         r"^max_pool3d: output would be empty: input \(4, 5, 6\), kernel_size \(5, 2, 2\)"),
        (lambda: _C.max_pool3d(x, (2, 2, 2), (1, 1, 1), (0, 2, 0), (1, 1, 1), False),
         r"^max_pool3d: padding \(0, 2, 0\) must be at most half of kernel_size \(2, 2, 2\)"),
        (lambda: _C.avg_pool3d(x, (2, 2, 2), (0, 1, 1), (0, 0, 0), False, True, 0), "^avg_pool3d: stride must be positive"),
        (lambda: _C.avg_pool3d_backward(np.zeros((1, 2, 2, 2, 2)), (4, 5, 6), (2, 2, 2), (2, 2, 2), (0, 0, 0), False,
                                        True, 0),
         r"^avg_pool3d_backward: grad_output \(1, 2, 2, 2, 2\) does not match the pooled size \(2, 2, 3\)"),
        (lambda: _C.max_pool3d_backward(np.zeros((1, 2, 2, 2, 2)), np.full((1, 2, 2, 2, 2), 120), (4, 5, 6)),
         r"^max_pool3d_backward: index 120 out of range for input size \(4, 5, 6\)"),
        (lambda: _C.max_pool3d(x, (3, 2, 2), (1, 1, 1), (0, 0, 0), (2**62, 1, 1), False),
         r"^max_pool3d: output size overflows int64: .*dilation \(4611686018427387904, 1, 1\)"),
    ]
    for call, match in cases:
        with pytest.raises(ValueError, match=match):
            call()
