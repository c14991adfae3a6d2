"""The select and row-sum kernels (csrc/kernels/select.cpp) against numpy."""
import numpy as np
import pytest

import tapegrad as tg
from tapegrad import _C
from tapegrad.ops._util import blend

DTYPES = [np.float32, np.float64, np.float16, np.int64, np.int32, np.int16, np.uint8, np.bool_, np.complex64]


def _same(x, y):
    return x.shape == y.shape and x.dtype == y.dtype and x.tobytes() == y.tobytes()


def _draw(rng, shape, dtype):
    x = np.asarray(rng.standard_normal(shape))
    x = np.asarray(x > 0) if dtype is np.bool_ else x.astype(dtype)
    if np.dtype(dtype).kind == "f" and x.size >= 3:
        x.flat[0], x.flat[1], x.flat[2] = np.nan, -0.0, -np.inf
    return x


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape, mshape", [((4, 3, 8, 8), (8, 8)), ((5, 7), (5, 7)), ((2, 3, 5), (1, 3, 5)),
                                           ((4, 5), (1,)), ((), ()), ((0, 5), (5,)), ((3, 70001), (70001,))])
@pytest.mark.parametrize("sides", ["full-full", "full-one", "one-full", "one-one"])
def test_select_matches_np_where_bit_for_bit(dtype, shape, mshape, sides):
    rng = np.random.default_rng(0)
    a, b = (_draw(rng, shape if s == "full" else (), dtype) for s in sides.split("-"))
    m = np.asarray(rng.random(mshape) > 0.5)
    out_shape = np.broadcast_shapes(m.shape, a.shape, b.shape)
    assert _same(_C.select(m, a, b, out_shape), np.where(m, a, b))
    assert _same(blend(m, a, b), np.where(m, a, b))


def test_select_keeps_nan_payloads():
    a = np.array([np.nan, 1.0], np.float32)
    a.view(np.int32)[0] |= 0x1234
    m = np.array([True, False])
    out = _C.select(m, a, np.zeros((), np.float32), (2,))
    assert out.view(np.int32)[0] == a.view(np.int32)[0] and out[1] == 0


def test_blend_takes_numpy_for_other_layouts():
    rng = np.random.default_rng(1)
    m = (rng.random((6, 5)) > 0.5).T  # not C-contiguous
    a = rng.standard_normal((5, 6))
    assert _same(blend(m, a), np.where(m, a, 0.0))
    m = rng.random((4, 1)) > 0.5  # broadcast over a trailing dim
    assert _same(blend(m, a[:4], np.float64(2.0) * np.ones((4, 6))), np.where(m, a[:4], 2.0))
    assert _same(blend(m, a[:4].T.copy().T, np.zeros((), np.float64)), np.where(m, a[:4], 0.0))


@pytest.mark.parametrize("threads", [1, 2])
def test_select_and_sum_rows_same_for_any_thread_count(threads):
    rng = np.random.default_rng(2)
    m = np.triu(np.ones((64, 64), bool), 1)
    s = rng.standard_normal((16, 4, 64, 64)).astype(np.float32)
    x = rng.standard_normal((1000, 130)).astype(np.float32)
    old = tg.get_num_threads()
    try:
        tg.set_num_threads(1)
        ref = _C.select(m, np.array(-np.inf, np.float32), s, s.shape), _C.sum_rows(x)
        tg.set_num_threads(threads)
        got = _C.select(m, np.array(-np.inf, np.float32), s, s.shape), _C.sum_rows(x)
    finally:
        tg.set_num_threads(old)
    assert all(_same(r, g) for r, g in zip(ref, got))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("R, C", [(1, 5), (63, 7), (64, 3), (65, 9), (1000, 130), (0, 4), (3, 0)])
def test_sum_rows_matches_numpy(dtype, R, C):
    x = np.random.default_rng(3).standard_normal((R, C)).astype(dtype)
    got = _C.sum_rows(x)
    assert got.shape == (C,) and got.dtype == dtype
    np.testing.assert_allclose(got, x.astype(np.float64).sum(0), rtol=1e-5 if dtype == np.float32 else 1e-12,
                               atol=1e-5 if dtype == np.float32 else 1e-12)


def test_bad_input_raises_naming_the_op():
    f = np.zeros((2, 3), np.float32)
    with pytest.raises(ValueError, match="select: cond must be bool"):
        _C.select(f, f, f, (2, 3))
    with pytest.raises(ValueError, match="select: dtypes differ"):
        _C.select(f > 0, f, f.astype(np.float64), (2, 3))
    with pytest.raises(ValueError, match=r"select: cond \(3, 2\) is not a trailing block"):
        _C.select(np.zeros((3, 2), bool), f, f, (2, 3))
    with pytest.raises(ValueError, match="select: a .* is neither one element nor of the shape"):
        _C.select(f > 0, np.zeros((1, 3), np.float32), f, (2, 3))
    with pytest.raises(ValueError, match="select: b must be C-contiguous"):
        _C.select(f > 0, f, np.zeros((3, 2), np.float32).T, (2, 3))
    with pytest.raises(ValueError, match="sum_rows: only float32 and float64"):
        _C.sum_rows(np.zeros((2, 3), np.int64))
    with pytest.raises(ValueError, match="sum_rows: expected x of shape"):
        _C.sum_rows(np.zeros(3, np.float32))
