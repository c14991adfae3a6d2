"""max_pool2d / avg_pool2d kernels in tapegrad._C against direct numpy references."""
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tapegrad import _C

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def pool_out(n, k, s, p, d, ceil_mode):
    """PyTorch's pooling output size."""
    span = n + 2 * p - d * (k - 1) - 1
    out = (span + (s - 1 if ceil_mode else 0)) // s + 1
    if ceil_mode and (out - 1) * s >= n + p:  # the last window must start inside input or left padding
        out -= 1
    return out


@st.composite
def geometries(draw, dilation=True):
    k = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    return dict(
        shape=(draw(st.integers(1, 3)), draw(st.integers(1, 4)), draw(st.integers(1, 9)), draw(st.integers(1, 9))),
        k=k, s=(draw(st.integers(1, 3)), draw(st.integers(1, 3))),
        p=(draw(st.integers(0, 2)), draw(st.integers(0, 2))),
        d=(draw(st.integers(1, 2)), draw(st.integers(1, 2))) if dilation else (1, 1),
        ceil_mode=draw(st.booleans()), seed=draw(st.integers(0, 2**32 - 1)),
        # few distinct values, so windows often hold ties
        ties=draw(st.booleans()),
    )


def make_x(g, dtype):
    rng = np.random.default_rng(g["seed"])
    x = rng.standard_normal(g["shape"])
    return rng, (np.round(x) if g["ties"] else x).astype(dtype)


def out_hw(g):
    return tuple(pool_out(n, k, s, p, d, g["ceil_mode"])
                 for n, k, s, p, d in zip(g["shape"][2:], g["k"], g["s"], g["p"], g["d"]))


def invalid(g):
    return any(p > k // 2 for p, k in zip(g["p"], g["k"])) or min(out_hw(g)) < 1


def max_pool_ref(x, g):
    """Values and first-maximum (last NaN) flat indices; a window wholly in the padding gives (-inf, -1)."""
    N, C, H, W = x.shape
    Ho, Wo = out_hw(g)
    y = np.full((N, C, Ho, Wo), -np.inf, x.dtype)
    idx = np.full((N, C, Ho, Wo), -1, np.int64)
    for oh in range(Ho):
        for ow in range(Wo):
            cells = [(ih, iw) for ih in range(oh * g["s"][0] - g["p"][0], H)[:g["k"][0] * g["d"][0]:g["d"][0]]
                     for iw in range(ow * g["s"][1] - g["p"][1], W)[:g["k"][1] * g["d"][1]:g["d"][1]]
                     if ih >= 0 and iw >= 0]
            for n in range(N):
                for c in range(C):
                    if not cells:
                        continue
                    vals = np.array([x[n, c, ih, iw] for ih, iw in cells])
                    # PyTorch's scan: a NaN always wins, so the last NaN; else the first maximum
                    nans = np.flatnonzero(np.isnan(vals))
                    first = int(nans[-1]) if len(nans) else int(np.argmax(vals))
                    y[n, c, oh, ow] = vals[first]
                    idx[n, c, oh, ow] = cells[first][0] * W + cells[first][1]
    return y, idx


def avg_pool_ref(x, g, count_include_pad, divisor_override):
    N, C, H, W = x.shape
    (kh, kw), (sh, sw), (ph, pw) = g["k"], g["s"], g["p"]
    Ho, Wo = out_hw(g)
    y = np.zeros((N, C, Ho, Wo), x.dtype)
    for oh in range(Ho):
        for ow in range(Wo):
            # window in padded coordinates, clipped at the padded input's far edge
            rows = [r for r in range(oh * sh, oh * sh + kh) if r < H + 2 * ph]
            cols = [c for c in range(ow * sw, ow * sw + kw) if c < W + 2 * pw]
            inside = [(r - ph, c - pw) for r in rows for c in cols if ph <= r < ph + H and pw <= c < pw + W]
            if not inside:
                continue
            div = divisor_override or (len(rows) * len(cols) if count_include_pad else len(inside))
            y[:, :, oh, ow] = sum(x[:, :, r, c] for r, c in inside) / div
    return y


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@SETTINGS
@given(g=geometries())
def test_max_pool2d_matches_reference(dtype, g):
    rng, x = make_x(g, dtype)
    call = (g["k"], g["s"], g["p"], g["d"], g["ceil_mode"])
    if invalid(g):
        with pytest.raises(ValueError, match="max_pool2d"):
            _C.max_pool2d(x, *call)
        return
    y, idx = _C.max_pool2d(x, *call)
    ry, ridx = max_pool_ref(x, g)
    assert y.dtype == dtype and idx.dtype == np.int64
    np.testing.assert_array_equal(y, ry)
    np.testing.assert_array_equal(idx, ridx)
    H, W = g["shape"][2:]
    valid = idx >= 0
    assert np.all(idx < H * W)
    np.testing.assert_array_equal(np.take_along_axis(x.reshape(*x.shape[:2], -1), np.where(valid, idx, 0)
                                                     .reshape(*x.shape[:2], -1), -1).reshape(idx.shape)[valid],
                                  y[valid])
    gy = rng.standard_normal(y.shape).astype(dtype)
    gx = _C.max_pool2d_backward(gy, idx, (H, W))
    ref = np.zeros((*x.shape[:2], H * W), dtype)  # np.add.at adds in order, as the kernel does
    for n in range(x.shape[0]):
        for c in range(x.shape[1]):
            m = valid[n, c].ravel()
            np.add.at(ref[n, c], idx[n, c].ravel()[m], gy[n, c].ravel()[m])
    np.testing.assert_array_equal(gx, ref.reshape(x.shape))


@pytest.mark.parametrize("dtype, tol", [(np.float64, 1e-12), (np.float32, 1e-5)])
@SETTINGS
@given(g=geometries(dilation=False), count_include_pad=st.booleans(), divisor=st.sampled_from([0, 0, 1, 3]))
def test_avg_pool2d_matches_reference(dtype, tol, g, count_include_pad, divisor):
    rng, x = make_x(g, dtype)
    call = (g["k"], g["s"], g["p"], g["ceil_mode"], count_include_pad, divisor)
    if invalid(g):
        with pytest.raises(ValueError, match="avg_pool2d"):
            _C.avg_pool2d(x, *call)
        return
    y = _C.avg_pool2d(x, *call)
    assert y.dtype == dtype
    np.testing.assert_allclose(y, avg_pool_ref(x.astype(np.float64), g, count_include_pad, divisor),
                               rtol=tol, atol=tol)
    # backward is the adjoint: <avg(x), gy> == <x, avg_backward(gy)>, checked in float64
    x64 = x.astype(np.float64)
    gy = rng.standard_normal(y.shape)
    gx = _C.avg_pool2d_backward(gy.astype(dtype), g["shape"][2:], *call)
    assert gx.shape == x.shape and gx.dtype == dtype
    gx64 = _C.avg_pool2d_backward(gy, g["shape"][2:], *call)
    lhs = np.vdot(_C.avg_pool2d(x64, *call), gy)
    assert abs(lhs - np.vdot(x64, gx64)) < 1e-12 * (1 + abs(lhs))
    np.testing.assert_allclose(gx, gx64, rtol=tol, atol=tol)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@SETTINGS
@given(data=st.data())
def test_max_pool2d_column_stride_2_matches_reference(dtype, data):
    # the vector kernel for column stride 2: rows of 1-20 outputs (8-, 4-lane vectors and the
    # scalar rest), windows up to 4 wide, NaN, -inf and ties, and the last vector of the input,
    # whose extra element read would lie past the input's end, left to the scalar rest
    d = data.draw
    k = (d(st.integers(1, 3)), d(st.integers(1, 4)))
    g = dict(shape=(d(st.integers(1, 2)), d(st.integers(1, 3)), d(st.integers(k[0], 7)), d(st.integers(k[1], 42))),
             k=k, s=(d(st.integers(1, 3)), 2), p=(0, 0), d=(1, 1), ceil_mode=d(st.booleans()),
             seed=d(st.integers(0, 2**32 - 1)), ties=d(st.booleans()))
    rng, x = make_x(g, dtype)
    special = rng.random(x.shape)
    x[special < 0.03] = np.nan
    x[(special >= 0.03) & (special < 0.06)] = -np.inf
    y, idx = _C.max_pool2d(x, g["k"], g["s"], g["p"], g["d"], g["ceil_mode"])
    ry, ridx = max_pool_ref(x, g)
    np.testing.assert_array_equal(y, ry)
    np.testing.assert_array_equal(idx, ridx)


def test_nan_wins_and_ties_take_the_first():
    x = np.array([[[[1.0, 3.0, 3.0, 0.0], [3.0, np.nan, 2.0, 5.0]]]])
    y, idx = _C.max_pool2d(x, (2, 2), (2, 2), (0, 0), (1, 1), False)
    assert np.isnan(y[0, 0, 0, 0]) and idx[0, 0, 0, 0] == 5
    assert y[0, 0, 0, 1] == 5.0 and idx[0, 0, 0, 1] == 7
    y, idx = _C.max_pool2d(np.ascontiguousarray(x[..., :3]), (2, 3), (1, 1), (0, 0), (1, 1), False)
    assert idx.ravel().tolist() == [4]  # the NaN, even though 3.0 came first
    y, idx = _C.max_pool2d(np.array([[[[1.0, 3.0, 3.0, 3.0]]]]), (1, 4), (1, 1), (0, 0), (1, 1), False)
    assert idx.ravel().tolist() == [1]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_bit_identical_across_thread_counts(dtype):
    rng = np.random.default_rng(1)
    xs = [rng.standard_normal(s).astype(dtype) for s in ((64, 20, 24, 24), (64, 50, 8, 8))]

    def run():
        out = []
        for x in xs:
            y, idx = _C.max_pool2d(x, (2, 2), (2, 2), (0, 0), (1, 1), False)
            a = _C.avg_pool2d(x, (3, 3), (2, 2), (1, 1), True, False, 0)
            out += [y, idx, _C.max_pool2d_backward(np.cos(y), idx, x.shape[2:]), a,
                    _C.avg_pool2d_backward(np.cos(a), x.shape[2:], (3, 3), (2, 2), (1, 1), True, False, 0)]
        return out

    before = _C.get_num_threads()
    try:
        _C.set_num_threads(1)
        one = run()
        _C.set_num_threads(2)
        two = run()
    finally:
        _C.set_num_threads(before)
    for a, b in zip(one, two):
        assert np.array_equal(a, b)


def test_bad_input_raises_value_error_naming_the_op():
    x = np.zeros((2, 3, 6, 6))
    mp = [
        lambda: _C.max_pool2d(x.astype(np.int32), (2, 2), (2, 2), (0, 0), (1, 1), False),
        lambda: _C.max_pool2d(x[0], (2, 2), (2, 2), (0, 0), (1, 1), False),
        lambda: _C.max_pool2d(x[..., ::2], (2, 2), (2, 2), (0, 0), (1, 1), False),
        lambda: _C.max_pool2d(x, (0, 2), (2, 2), (0, 0), (1, 1), False),
        lambda: _C.max_pool2d(x, (2, 2), (0, 2), (0, 0), (1, 1), False),
        lambda: _C.max_pool2d(x, (2, 2), (2, 2), (2, 0), (1, 1), False),  # pad > kernel / 2
        lambda: _C.max_pool2d(x, (2, 2), (2, 2), (0, 0), (0, 1), False),
        lambda: _C.max_pool2d(x, (7, 2), (2, 2), (0, 0), (1, 1), False),  # empty output
    ]
    for f in mp:
        with pytest.raises(ValueError, match="^max_pool2d: "):
            f()
    gy = np.zeros((2, 3, 3, 3))
    for bad_idx in (np.full(gy.shape, 36), np.zeros(gy.shape, np.int32), np.zeros((2, 3, 3, 2), np.int64)):
        with pytest.raises(ValueError, match="^max_pool2d_backward: "):
            _C.max_pool2d_backward(gy, bad_idx.astype(bad_idx.dtype), (6, 6))
    with pytest.raises(ValueError, match="^avg_pool2d: "):
        _C.avg_pool2d(x, (2, 2), (2, 2), (0, 0), False, True, -1)
    with pytest.raises(ValueError, match="^avg_pool2d: "):
        _C.avg_pool2d(x, (3, 3), (2, 2), (2, 2), False, True, 0)
    with pytest.raises(ValueError, match="^avg_pool2d_backward: "):
        _C.avg_pool2d_backward(gy, (9, 9), (2, 2), (2, 2), (0, 0), False, True, 0)  # 9x9 pools to 4x4


@pytest.mark.torch
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(g=geometries(), count_include_pad=st.booleans())
def test_matches_torch(g, count_include_pad):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    _, x = make_x(g, np.float64)
    if invalid(g):
        return
    y, idx = _C.max_pool2d(x, g["k"], g["s"], g["p"], g["d"], g["ceil_mode"])
    if np.all(idx >= 0):  # torch's index for a window wholly in the padding is out of range
        ty, tidx = F.max_pool2d(torch.from_numpy(x), g["k"], g["s"], g["p"], g["d"], g["ceil_mode"],
                                return_indices=True)
        np.testing.assert_array_equal(y, ty.numpy())
        np.testing.assert_array_equal(idx, tidx.numpy())
    if g["d"] == (1, 1):
        ta = F.avg_pool2d(torch.from_numpy(x), g["k"], g["s"], g["p"], g["ceil_mode"], count_include_pad)
        np.testing.assert_allclose(_C.avg_pool2d(x, g["k"], g["s"], g["p"], g["ceil_mode"], count_include_pad, 0),
                                   ta.numpy(), rtol=1e-12, atol=1e-12)


def max_pool_torch_rule(x, k, s, ceil_mode):
    """No padding or dilation: PyTorch's scan in row-major window order, keeping a tap if it is
    strictly greater or NaN (so a later NaN replaces an earlier one); -inf for empty windows."""
    N, C, H, W = x.shape
    Ho, Wo = (pool_out(n, kk, ss, 0, 1, ceil_mode) for n, kk, ss in zip((H, W), k, s))
    y = np.empty((N, C, Ho, Wo), x.dtype)
    idx = np.empty((N, C, Ho, Wo), np.int64)
    for n in range(N):
        for c in range(C):
            for oh in range(Ho):
                for ow in range(Wo):
                    best, at = -np.inf, oh * s[0] * W + ow * s[1]
                    for ih in range(oh * s[0], min(oh * s[0] + k[0], H)):
                        for iw in range(ow * s[1], min(ow * s[1] + k[1], W)):
                            v = x[n, c, ih, iw]
                            if v > best or np.isnan(v):
                                best, at = v, ih * W + iw
                    y[n, c, oh, ow], idx[n, c, oh, ow] = best, at
    return y, idx


# The unpadded, undilated fast path (and, with ceil_mode overhanging, the general path beside it):
# ties, NaNs (the last NaN wins, as in PyTorch), all -inf windows, rows wider than one block.
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("k, s", [((2, 2), (2, 2)), ((3, 3), (2, 2)), ((2, 3), (1, 3)), ((1, 1), (1, 1)),
                                  ((3, 2), (3, 1)), ((2, 2), (1, 1))])
@pytest.mark.parametrize("hw", [(7, 9), (8, 8), (5, 150)])
@pytest.mark.parametrize("ceil_mode", [False, True])
def test_max_pool2d_fast_path_semantics(dtype, k, s, hw, ceil_mode):
    rng = np.random.default_rng(hash((k, s, hw, ceil_mode)) % 2**32)
    x = np.round(rng.standard_normal((2, 3, *hw)))  # few values: many ties
    x[rng.random(x.shape) < 0.05] = np.nan
    x[rng.random(x.shape) < 0.1] = -np.inf
    x[1, 2] = -np.inf  # a whole plane of -inf: the first tap's index
    x = x.astype(dtype)
    ry, ridx = max_pool_torch_rule(x, k, s, ceil_mode)
    before = _C.get_num_threads()
    try:
        for threads in (1, 2):
            _C.set_num_threads(threads)
            y, idx = _C.max_pool2d(x, k, s, (0, 0), (1, 1), ceil_mode)
            np.testing.assert_array_equal(y, ry)
            np.testing.assert_array_equal(idx, ridx)
            gy = np.arange(y.size, dtype=dtype).reshape(y.shape)
            gx = _C.max_pool2d_backward(gy, idx, hw)
            ref = np.zeros((*x.shape[:2], hw[0] * hw[1]), dtype)
            for n in range(x.shape[0]):
                for c in range(x.shape[1]):
                    np.add.at(ref[n, c], idx[n, c].ravel(), gy[n, c].ravel())
            np.testing.assert_array_equal(gx, ref.reshape(x.shape))
    finally:
        _C.set_num_threads(before)


def test_huge_geometry_is_exact_or_refused():
    """Output sizes from huge strides and dilations are exact (the Python reference has no
    overflow) or a ValueError naming the op; before, a dilation of 2**62 pooled to (1, 1, 5, 13)."""
    x = np.arange(65.0).reshape(1, 1, 5, 13)
    for stride in (2**62, 2**63 - 1):
        for ceil_mode in (False, True):
            y, idx = _C.max_pool2d(x, (2, 3), (stride, stride), (1, 1), (1, 1), ceil_mode)
            assert y.shape[2:] == (pool_out(5, 2, stride, 1, 1, ceil_mode), pool_out(13, 3, stride, 1, 1, ceil_mode))
            assert y.ravel().tolist() == [1.0] and idx.ravel().tolist() == [1]  # x[0, :2] in the first window
            a = _C.avg_pool2d(x, (2, 3), (stride, stride), (1, 1), ceil_mode, False, 0)
            assert a.ravel().tolist() == [0.5]
    for op in (lambda d: _C.max_pool2d(x, (5, 5), (1, 1), (0, 0), d, False),
               lambda d: _C.max_pool2d(x, (3, 3), (1, 1), (1, 1), d, True)):
        with pytest.raises(ValueError, match=r"^max_pool2d: output size overflows int64: .*dilation \(4611686018427387904"):
            op((2**62, 2**62))
    with pytest.raises(ValueError, match=r"^avg_pool2d: a window of kernel_size \(kh, kw\) = \(4611686018427387904, "):
        _C.avg_pool2d(x, (2**62, 2**62), (1, 1), (2**61, 2**61), False, True, 0)
    with pytest.raises(ValueError, match=r"^max_pool2d_backward: an input plane \(H, W\) = \(4294967296, .* int64"):
        _C.max_pool2d_backward(np.zeros((1, 1, 1, 1)), np.zeros((1, 1, 1, 1), np.int64), (2**32, 2**32))


@pytest.mark.slow
def test_max_pool2d_window_of_more_than_int32_taps():
    """A window of 2**31 + 2**16 taps: the fast path's tap counter is 64-bit for it (it was int32
    for float32 and returned a negative index). The input is zero pages but one element, so it
    costs address space, not memory (about 10 s)."""
    H, W = 2**16, 2**15 + 1
    try:
        x = np.zeros((1, 1, H, W), np.float32)
    except MemoryError:
        pytest.skip("no 8.6 GB of address space for the input")
    x[0, 0, -1, -1] = 1
    y, idx = _C.max_pool2d(x, (H, W), (1, 1), (0, 0), (1, 1), False)
    assert y.ravel().tolist() == [1.0] and idx.ravel().tolist() == [H * W - 1]
