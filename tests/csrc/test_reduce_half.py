"""sum and mean of float16 / bfloat16 tensors (csrc/kernels/reduce.h's reduce_middle_half: the
float32 kernel's sums, each run widened in L1, rounded once to the 16-bit dtype) and neg / abs /
relu on the sign bit (convert.h's bits_half). The sums must have the bits of the float32 detour
(widen, the float32 reduction, round) at 1, 2 and 3 threads, for every dim and block of dims, odd
sizes, long rows (chunks), wide rows (strips), other layouts and empty inputs; and lie within
an ulp of numpy's float32 sums and PyTorch's (which accumulate in float32 too). The bit ops: numpy's
and ml_dtypes' neg and abs, and PyTorch's relu, on every 16-bit value.
tests/csrc/test_isa_paths.py runs this file again on the AVX2 and generic builds."""
import itertools

import numpy as np
import pytest

import tapegrad as tg
from tapegrad import _C

ml_dtypes = pytest.importorskip("ml_dtypes")
DTYPES = [np.dtype(np.float16), np.dtype(ml_dtypes.bfloat16)]
IDS = ["float16", "bfloat16"]
# rows short and long (past the lanes' 256 floats, a run of 1024, a chunk of 32768), columns past a
# block of 16 rows, a widening strip of 256 and a strip of 1024 columns, middle blocks, size-1 dims
SHAPES = [(7,), (1000,), (70001,), (37, 259), (3, 33000), (1029, 3), (17, 1100), (2, 40, 300), (5, 1, 7, 9),
          (1, 1030, 1), (300, 2000)]


def _subsets(ndim):
    return [c for k in range(1, ndim + 1) for c in itertools.combinations(range(ndim), k)]


def _data(shape, dtype, seed=0):
    return (np.random.default_rng(seed).standard_normal(shape) * 3).astype(np.float32).astype(dtype)


def _detour(op, a, dims, keepdim):
    """The float32 route: the widened array's reduction (float32 kernel), rounded to a's dtype."""
    with np.errstate(all="ignore"):
        return getattr(tg.tensor(a.astype(np.float32)), op)(dims, keepdim).numpy().astype(a.dtype)


def _bits(a):
    return np.ascontiguousarray(a).view(np.uint16)


@pytest.fixture
def count_native(monkeypatch):
    """The results of _C.reduce_half's calls (None: it declined, the detour ran)."""
    calls = []
    real = _C.reduce_half

    def call(*args, **kw):
        out = real(*args, **kw)
        calls.append(out is not None)
        return out
    monkeypatch.setattr(_C, "reduce_half", call)
    return calls


@pytest.mark.threads
@pytest.mark.parametrize("dtype", DTYPES, ids=IDS)
@pytest.mark.parametrize("op", ["sum", "mean"])
def test_sums_have_the_float32_detours_bits_at_any_thread_count(dtype, op, count_native, restore_threads):
    for shape in SHAPES:
        a = _data(shape, dtype)
        x = tg.tensor(a)
        for dims in _subsets(len(shape)):
            for keepdim in (False, True):
                _C.set_num_threads(1)
                ref = _detour(op, a, dims, keepdim)
                # the float32 kernel's layouts (reduced dims adjacent once dims of size 1 are dropped)
                native = _C.reduce(a.astype(np.float32), dims, keepdim, op) is not None
                for threads in (1, 2, 3):
                    _C.set_num_threads(threads)
                    del count_native[:]
                    got = getattr(x, op)(dims, keepdim).numpy()
                    assert got.dtype == dtype and got.shape == ref.shape, (shape, dims)
                    assert count_native == [native], (shape, dims)
                    np.testing.assert_array_equal(_bits(got), _bits(ref),
                                                  err_msg=f"{op}{dims} of {shape} at {threads} threads")


@pytest.mark.parametrize("dtype", DTYPES, ids=IDS)
@pytest.mark.parametrize("op", ["sum", "mean"])
def test_sums_lie_within_an_ulp_of_numpys_float32_sums(dtype, op):
    """numpy's pairwise float32 sum (another order of adds), rounded to the 16-bit dtype: at most
    one ulp of the 16-bit result apart."""
    for shape in SHAPES:
        a = _data(shape, dtype, seed=1)
        for dims in (None, 0, len(shape) - 1):
            got = getattr(tg.tensor(a), op)(dims).numpy().astype(np.float64)
            ref32 = getattr(np, op)(a.astype(np.float32), axis=dims)
            ref = np.asarray(ref32).astype(dtype).astype(np.float64)
            ulp = np.abs(np.asarray(ref32).astype(dtype).astype(np.float64)) * float(ml_dtypes.finfo(dtype).eps)
            assert np.all(np.abs(got - ref) <= ulp + 1e-30), (op, shape, dims)


@pytest.mark.parametrize("dtype", DTYPES, ids=IDS)
def test_other_layouts_empty_and_special_values(dtype, count_native):
    """A transposed or strided input takes the detour (the same bits); empty sums are 0 and empty
    means NaN; NaN and inf propagate; 0-d and A * B = 0 results."""
    a = _data((300, 70), dtype)
    for x, arr in ((tg.tensor(np.ascontiguousarray(a.T)).T, a), (tg.tensor(a)[::2, 1::3], a[::2, 1::3])):
        for op in ("sum", "mean"):
            for dims in (0, 1, (0, 1)):
                np.testing.assert_array_equal(_bits(getattr(x, op)(dims).numpy()),
                                              _bits(_detour(op, np.ascontiguousarray(arr), dims, False)))
    e = tg.tensor(np.zeros((0, 5), dtype))
    assert (e.sum(0).numpy().astype(np.float32) == 0).all() and e.sum(0).dtype == dtype
    assert np.isnan(e.mean(0).numpy().astype(np.float32)).all() and e.mean(0).dtype == dtype
    assert e.sum(1).shape == (0,) and e.mean(1).shape == (0,)
    assert float(e.sum()) == 0 and np.isnan(float(e.mean()))
    b = _data((4, 3000), dtype)
    b[1, 7], b[2, 2999], b[3, 0], b[3, 1] = np.nan, np.inf, np.inf, -np.inf
    got = tg.tensor(b).sum(1).numpy().astype(np.float32)
    assert np.isnan(got[1]) and got[2] == np.inf and np.isnan(got[3]) and np.isfinite(got[0])
    got = tg.tensor(b).sum(0).numpy().astype(np.float32)
    assert got[0] == np.inf and got[1] == -np.inf and np.isnan(got[7]) and got[2999] == np.inf
    # a sum past the 16-bit range overflows when it is rounded, not before
    big = np.full(5000, 60000 if dtype == np.float16 else 3e38, np.float32).astype(dtype)
    assert float(tg.tensor(big).sum()) == np.inf
    if dtype == np.float16:  # (a bfloat16 sum of 5000 x 3e38 overflows float32 too, as PyTorch's)
        assert float(tg.tensor(big).mean()) == float(big[0].astype(np.float32))
    assert float(tg.tensor(np.full((), 2.5, dtype)).sum()) == 2.5


@pytest.mark.parametrize("dtype", DTYPES, ids=IDS)
def test_sum_backward_and_dtype_argument(dtype):
    x = tg.tensor(_data((40, 50), dtype), requires_grad=True)
    x.mean(1).sum().backward()
    assert x.grad.dtype == dtype
    np.testing.assert_array_equal(x.grad.numpy().astype(np.float32), np.full((40, 50), np.float32(dtype.type(1 / 50))))
    assert x.sum(dtype=tg.float32).dtype == tg.float32


@pytest.mark.parametrize("dtype", DTYPES, ids=IDS)
def test_sums_match_torch_within_an_ulp(dtype):
    torch = pytest.importorskip("torch")
    tdt = torch.float16 if dtype == np.float16 else torch.bfloat16
    for shape, dims in (((1000, 1000), None), ((1000, 1000), 0), ((1000, 1000), 1), ((3, 70001), 1),
                        ((17, 1100), 0), ((2, 40, 300), (0, 2))):
        a32 = (np.random.default_rng(4).standard_normal(shape) * 3).astype(np.float32)
        x = tg.tensor(a32).to(tg.float16 if dtype == np.float16 else tg.bfloat16)
        t = torch.from_numpy(a32).to(tdt)
        for op in ("sum", "mean"):
            ours = (getattr(x, op)() if dims is None else getattr(x, op)(dims)).float().numpy()
            theirs = (getattr(t, op)() if dims is None else getattr(t, op)(dims)).float().numpy()
            eps = float(torch.finfo(tdt).eps)
            np.testing.assert_allclose(ours, theirs, rtol=eps, atol=1e-6, err_msg=f"{op}{dims} of {shape}")


def test_reduce_half_bad_arguments_name_the_op():
    with pytest.raises(ValueError, match="sum: x must be the uint16 view of a float16 or bfloat16 array"):
        _C.reduce_half(np.zeros(4, np.float32), [0], False, "sum", False)
    with pytest.raises(ValueError, match="reduce_half: unknown reduction 'amax'"):
        _C.reduce_half(np.zeros(4, np.uint16), [0], False, "amax", False)
    with pytest.raises(ValueError, match="dim 3 is out of range"):
        _C.reduce_half(np.zeros((4, 2), np.uint16), [3], False, "mean", True)
    assert _C.reduce_half(np.zeros((4, 2), np.uint16)[:, :1], [0], False, "sum", False) is None  # not C-contiguous


def _every_value(dtype):
    return np.arange(1 << 16, dtype=np.uint32).astype(np.uint16).view(dtype)


@pytest.mark.threads
@pytest.mark.parametrize("dtype", DTYPES, ids=IDS)
def test_neg_and_abs_are_numpys_on_the_sign_bit(dtype, restore_threads):
    """numpy's float16 and ml_dtypes' bfloat16 ufuncs flip / clear the sign bit; so do these, on every
    value at 1, 2 and 3 threads, but for a bfloat16 NaN: the quiet NaN of its sign, as every
    bfloat16 result of the float32 route (test_fused_half checks those bits)."""
    a = _every_value(dtype)
    nan = np.isnan(a.astype(np.float32))
    for threads in (1, 2, 3):
        _C.set_num_threads(threads)
        for ours, theirs in ((-tg.tensor(a), np.negative(a)), (tg.tensor(a).abs(), np.abs(a))):
            got, ref = _bits(ours.numpy()), _bits(theirs)
            if dtype == np.float16:
                np.testing.assert_array_equal(got, ref)
            else:
                np.testing.assert_array_equal(got[~nan], ref[~nan])
                np.testing.assert_array_equal(got[nan], (ref[nan] & 0x8000) | 0x7fc0)


@pytest.mark.parametrize("dtype", DTYPES, ids=IDS)
def test_relu_on_every_value_matches_torch(dtype):
    """relu(x): x where x > 0, +0 for -0 and the negatives (-inf included), NaN for NaN (PyTorch's)."""
    a = _every_value(dtype)
    got = tg.nn.functional.relu(tg.tensor(a)).numpy().astype(np.float32)
    a32 = a.astype(np.float32)
    with np.errstate(invalid="ignore"):
        ref = np.where(np.isnan(a32) | (a32 > 0), a32, np.float32(0))
    np.testing.assert_array_equal(got, ref)  # NaN where NaN
    assert not np.signbit(got[~np.isnan(got)][got[~np.isnan(got)] == 0]).any()  # +0, never -0
    torch = pytest.importorskip("torch")
    tdt = torch.float16 if dtype == np.float16 else torch.bfloat16
    t = torch.relu(torch.from_numpy(a.view(np.int16).copy()).view(tdt)).float().numpy()
    np.testing.assert_array_equal(got, t)


@pytest.mark.threads
@pytest.mark.parametrize("dtype", DTYPES, ids=IDS)
def test_column_sums_of_every_value_match_the_detour(dtype, restore_threads):
    """Column sums (widened in registers, reduce.cpp's sum_cols_fused) over every 16-bit value,
    subnormals, infinities and NaN payloads among them, in shapes whose widths take the 16- and
    8-column vectors and the one-column tail, and blocks of rows short of 16: the detour's bits at
    1, 2 and 3 threads (a NaN as a NaN: which payload an add keeps is the compiler's choice)."""
    perm = np.random.default_rng(5).permutation(1 << 16)
    a = _every_value(dtype)[perm]
    for shape in ((256, 256), (37, 1771), (1771, 37), (4095, 16), (16, 4096), (7, 9362)):
        x = a[: shape[0] * shape[1]].reshape(shape)
        ref = _detour("sum", x, (0,), False)
        for threads in (1, 2, 3):
            _C.set_num_threads(threads)
            got = tg.tensor(x).sum(0).numpy()
            g32, r32 = got.astype(np.float32), ref.astype(np.float32)
            np.testing.assert_array_equal(np.isnan(g32), np.isnan(r32), err_msg=f"{shape} at {threads} threads")
            ok = ~np.isnan(r32)
            np.testing.assert_array_equal(_bits(got)[ok], _bits(ref)[ok], err_msg=f"{shape} at {threads} threads")


@pytest.mark.threads
@pytest.mark.parametrize("dtype", DTYPES, ids=IDS)
def test_sqrt_of_every_value_is_the_float32_roots_rounding(dtype, restore_threads):
    """sqrt in registers (convert.h's sqrt_half): on every 16-bit value the float32 root rounded
    once, numpy's (float16) and ml_dtypes' (bfloat16, a NaN the quiet NaN of its sign) rounding bit
    for bit, at 1, 2 and 3 threads; odd sizes (the vector loop's tail), a strided input, small and
    empty ones; PyTorch's values where it is importable."""
    a = _every_value(dtype)
    with np.errstate(invalid="ignore"):
        ref = np.sqrt(a.astype(np.float32)).astype(dtype)
    for threads in (1, 2, 3):
        _C.set_num_threads(threads)
        np.testing.assert_array_equal(_bits(tg.tensor(a).sqrt().numpy()), _bits(ref))
        for part in (a[:40007], a[3:], a[1::3]):
            with np.errstate(invalid="ignore"):
                want = np.sqrt(part.astype(np.float32)).astype(dtype)
            np.testing.assert_array_equal(_bits(tg.tensor(part).sqrt().numpy()), _bits(want))
    assert tg.tensor(a[:0]).sqrt().shape == (0,) and tg.tensor(a[:5]).sqrt().dtype == dtype
    torch = pytest.importorskip("torch")
    tdt = torch.float16 if dtype == np.float16 else torch.bfloat16
    t = torch.sqrt(torch.from_numpy(a.view(np.int16).copy()).view(tdt)).float().numpy()
    np.testing.assert_array_equal(tg.tensor(a).sqrt().numpy().astype(np.float32), t)  # NaN where NaN
