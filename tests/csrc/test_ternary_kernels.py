"""lerp, addcmul / addcdiv and lerp's gradients in one pass (csrc/kernels/ternary.h, through
_C.lerp, _C.addc and _C.lerp_backward) against the numpy operations the ops ran before, bit for
bit: scalar and tensor weights on both sides of 0.5, the special values (+-0, +-inf, NaN,
denormals), sizes around the vector widths, the blocks and the threading threshold, in place,
1, 2 and 3 threads, and the errors."""
import numpy as np
import pytest

import tapegrad as tg
from tapegrad import _C

RNG = np.random.default_rng(12)
SIZES = [1, 7, 17, 4097, 70001]


def _specials(dtype, n):
    """n values: normal ones, with the special values first (cycled where n is larger)."""
    tiny = np.finfo(dtype).smallest_subnormal
    s = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, tiny, -tiny, 1.0, -1.0, 1e30, 3.5], dtype)
    x = RNG.standard_normal(n).astype(dtype)
    x[:min(n, s.size)] = s[:n]
    return x


def _bits(v):
    """The bits, every NaN as one: a NaN's sign where two NaNs meet follows the operand order the
    compiler picked (numpy's own loops as well)."""
    v = np.asarray(v)
    return np.where(np.isnan(v), v.dtype.type(np.nan), v).tobytes()


def _lerp_numpy(a, b, w):
    """The numpy operations of tapegrad's lerp before the kernel: the branch |w| < 0.5 picks."""
    with np.errstate(all="ignore"):
        d = b - a
        return np.where(np.abs(w) < 0.5, a + w * d, b - d * (1 - w)).astype(a.dtype)


def _weights(dtype):
    half = dtype(0.5)
    return [dtype(v) for v in (0.3, 0.7, 1.0, 0.0, -0.0, -0.2, -0.7, 0.5, -0.5, np.nextafter(half, dtype(0)),
                                np.nextafter(half, dtype(1)), np.nan, np.inf, 2.5)]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n", SIZES)
def test_lerp_is_the_numpy_formula_bit_for_bit(dtype, n):
    a, b = _specials(dtype, n), _specials(dtype, n)[::-1].copy()
    for w in _weights(dtype):
        w0 = np.asarray(w, dtype)
        want = _lerp_numpy(a, b, w0)
        assert _bits(_C.lerp(a, b, w0, np.empty_like(a))) == _bits(want), w
        s = a.copy()
        assert _C.lerp(s, b, w0, s) is s and _bits(s) == _bits(want)  # in place
    w = (RNG.random(n) * 3 - 1.5).astype(dtype)
    w[:14] = _weights(dtype)[:n]
    want = _lerp_numpy(a, b, w)
    assert _bits(_C.lerp(a, b, w, np.empty_like(a))) == _bits(want)
    s = a.copy()
    _C.lerp(s, b, w, s)
    assert _bits(s) == _bits(want)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n", SIZES)
def test_addcmul_addcdiv_are_the_composites_roundings(dtype, n):
    x, t1 = _specials(dtype, n), _specials(dtype, n)[::-1].copy()
    t2 = np.roll(_specials(dtype, n), 3)
    with np.errstate(all="ignore"):
        for value in (1, 0.5, -0.1, 3, 1e-3):
            v = np.asarray(value, dtype)
            for divide, f in ((False, np.multiply), (True, np.true_divide)):
                want = x + f(t1, t2) * v
                assert _bits(_C.addc(x, t1, t2, float(v), divide, np.empty_like(x))) == _bits(want), (value, divide)
                s = x.copy()
                assert _C.addc(s, t1, t2, float(v), divide, s) is s and _bits(s) == _bits(want)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n", [7, 4097, 70001])
def test_lerp_backward_is_the_composite_vjps_bit_for_bit(dtype, n):
    g, a, b = _specials(dtype, n), RNG.standard_normal(n).astype(dtype), np.roll(_specials(dtype, n), 5)
    w = (RNG.random(n) * 3 - 1.5).astype(dtype)
    w[:3] = [np.nan, 0.5, np.inf]
    with np.errstate(all="ignore"):
        for weight in (w, np.asarray(0.3, dtype), np.asarray(0.8, dtype)):
            want = (g * (1 - weight), g * weight, g * (b - a))
            for mask in range(1, 8 if weight.ndim else 4):
                flags = [bool(mask & 1), bool(mask & 2), bool(mask & 4)]
                got = _C.lerp_backward(g, a, b, weight, *flags)
                for k in range(3):
                    if flags[k]:
                        assert got[k].dtype == dtype and _bits(got[k]) == _bits(want[k].astype(dtype)), (mask, k)
                    else:
                        assert got[k] is None


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_one_two_three_threads_bit_identical(dtype):
    n = 3 * 16384 + 77  # above the threading threshold, blocks and tasks with a tail
    a, b, g = (RNG.standard_normal(n).astype(dtype) for _ in range(3))
    w = (RNG.random(n) * 2 - 0.5).astype(dtype)
    before = tg.get_num_threads()
    out = []
    try:
        for k in (1, 2, 3):
            tg.set_num_threads(k)
            out.append([_C.lerp(a, b, w, np.empty_like(a)), _C.lerp(a, b, np.asarray(0.3, dtype), np.empty_like(a)),
                        _C.addc(a, b, w, 0.5, False, np.empty_like(a)), _C.addc(a, b, w, 0.5, True, np.empty_like(a)),
                        *_C.lerp_backward(g, a, b, w, True, True, True)])
    finally:
        tg.set_num_threads(before)
    for r in out[1:]:
        for x, y in zip(out[0], r):
            assert x.tobytes() == y.tobytes()


def test_errors_name_the_op_and_operands():
    a = np.ones((3, 4), np.float32)
    w0 = np.asarray(0.5, np.float32)
    with pytest.raises(ValueError, match="lerp: dtypes differ"):
        _C.lerp(a, a.astype(np.float64), w0, np.empty_like(a))
    with pytest.raises(ValueError, match=r"lerp: input \(3, 4\) and end \(4, 3\) must have one shape"):
        _C.lerp(a, np.ones((4, 3), np.float32), w0, np.empty_like(a))
    with pytest.raises(ValueError, match=r"lerp: input \(3, 4\) and weight \(4,\) must have one shape"):
        _C.lerp(a, a, np.ones(4, np.float32), np.empty_like(a))
    with pytest.raises(ValueError, match="lerp: end must be C-contiguous"):
        _C.lerp(a, np.ones((4, 3), np.float32).T, w0, np.empty_like(a))
    with pytest.raises(ValueError, match="only float32 and float64"):
        _C.lerp(a.astype(np.int32), a.astype(np.int32), w0.astype(np.int32), np.empty((3, 4), np.int32))
    ro = np.empty_like(a)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="lerp: out is read-only"):
        _C.lerp(a, a, w0, ro)
    b = np.ones((3, 4), np.float32)
    with pytest.raises(ValueError, match="lerp: out overlaps end"):
        _C.lerp(a, b, w0, b)  # only the first operand may be out
    big = np.ones(13, np.float32)
    with pytest.raises(ValueError, match="addcmul: out overlaps input"):
        _C.addc(big[1:], big[:-1], big[:-1], 1.0, False, big[:-1])  # shifted by one element: not in place
    with pytest.raises(ValueError, match="addcdiv: dtypes differ"):
        _C.addc(a, a, a.astype(np.float64), 1.0, True, np.empty_like(a))
    with pytest.raises(ValueError, match="lerp_backward: a 0-d weight has no gradient"):
        _C.lerp_backward(a, a, a, w0, True, True, True)


# ---------------------------------------------------------------- axpy: add / sub with alpha
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n", SIZES)
def test_axpy_is_numpys_multiply_then_add_bit_for_bit(dtype, n):
    x, y = _specials(dtype, n), _specials(dtype, n)[::-1].copy()
    with np.errstate(all="ignore"):
        for alpha in (0.3, -2.0, 1e-4, 3.0, -0.0, 1e30, np.inf, np.nan, np.finfo(dtype).smallest_subnormal):
            v = np.asarray(alpha, dtype)
            for subtract in (False, True):
                want = x - y * v if subtract else x + y * v
                assert _bits(_C.axpy(x, y, float(v), subtract, np.empty_like(x))) == _bits(want), (alpha, subtract)
                s = x.copy()
                assert _C.axpy(s, y, float(v), subtract, s) is s and _bits(s) == _bits(want)  # in place


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_axpy_one_two_three_threads_bit_identical(dtype, restore_threads):
    n = 3 * 16384 + 77
    x, y = (RNG.standard_normal(n).astype(dtype) for _ in range(2))
    out = []
    for k in (1, 2, 3):
        tg.set_num_threads(k)
        out.append([_C.axpy(x, y, 0.37, False, np.empty_like(x)).tobytes(),
                    _C.axpy(x, y, 0.37, True, np.empty_like(x)).tobytes()])
    assert out[0] == out[1] == out[2]


def test_axpy_errors_name_the_op_and_operands():
    a = np.ones((3, 4), np.float32)
    with pytest.raises(ValueError, match="add: dtypes differ"):
        _C.axpy(a, a.astype(np.float64), 2.0, False, np.empty_like(a))
    with pytest.raises(ValueError, match=r"sub: input \(3, 4\) and other \(4, 3\) must have one shape"):
        _C.axpy(a, np.ones((4, 3), np.float32), 2.0, True, np.empty_like(a))
    with pytest.raises(ValueError, match="add: other must be C-contiguous"):
        _C.axpy(a, np.ones((4, 3), np.float32).T, 2.0, False, np.empty_like(a))
    b = np.ones((3, 4), np.float32)
    with pytest.raises(ValueError, match="add: out overlaps other"):
        _C.axpy(a, b, 2.0, False, b)
