"""sort's native kernel (csrc/kernels/sort.h), topk along a middle dim (topk.h) and nonzero's two
passes (select.h): numpy's stable sort and argwhere for every dtype they take (NaN above every
number, -0 equal to +0, ties in index order), both sort paths (std::sort below 128 entries, radix
above), along any dim, for non-contiguous and empty inputs, bit-identical at 1, 2 and 3 threads,
and PyTorch's results where it is installed."""
import numpy as np
import pytest

import tapegrad as tg
from tapegrad import _C
from tapegrad.ops.sorting import _argsort_np

RNG = np.random.default_rng(22)
DTYPES = [np.float32, np.float64, np.int32, np.int64]


def _draw(shape, dtype):
    """Values with ties, or spread; for floats NaN, +-inf and +-0 sprinkled in."""
    a = (RNG.integers(-3, 4, shape) if RNG.random() < 0.4 else RNG.standard_normal(shape) * 1e3).astype(dtype)
    if np.dtype(dtype).kind == "i" and RNG.random() < 0.3:  # the whole range: every radix byte moves
        info = np.iinfo(dtype)
        a = RNG.integers(info.min, info.max, shape, dtype=dtype, endpoint=True)
    if np.dtype(dtype).kind == "f" and RNG.random() < 0.6:
        flat = a.reshape(-1)
        for v, p in ((np.nan, RNG.choice([0.02, 0.3])), (np.inf, 0.05), (-np.inf, 0.05), (-0.0, 0.05), (0.0, 0.05)):
            flat[RNG.random(a.size) < p] = v
    return a


def _check_sort(a, d, descending):
    values, idx = tg.sort(tg.tensor(a), d, descending=descending)
    want = _argsort_np(a, d, descending)
    assert idx.dtype == tg.int64
    assert idx.numpy().tobytes() == want.astype(np.int64).tobytes(), (a.shape, a.dtype, d, descending)
    assert np.take_along_axis(a, want, d).tobytes() == values.numpy().tobytes()  # -0.0 and NaN bits kept


@pytest.mark.parametrize("dtype", DTYPES)
def test_sort_is_numpys_stable_sort(dtype):
    for _ in range(120):
        shape = tuple(int(s) for s in RNG.integers(1, 6, RNG.integers(1, 4)))
        d = int(RNG.integers(0, len(shape)))
        if RNG.random() < 0.5:  # long slices: the radix path; odd sizes
            shape = shape[:d] + (int(RNG.integers(100, 700)),) + shape[d + 1:]
        _check_sort(_draw(shape, dtype), d, bool(RNG.random() < 0.5))


@pytest.mark.parametrize("dtype", DTYPES)
def test_sort_one_long_row_and_wide_tiles(dtype):
    _check_sort(_draw((70001,), dtype), 0, False)
    _check_sort(_draw((70001,), dtype), 0, True)
    a = _draw((3, 301, 37), dtype)  # 37 columns: tiles of 8 / 16 and a partial one
    for d in (0, 1, 2):
        _check_sort(a, d, d == 1)


def test_sort_non_contiguous_empty_and_stable_flag():
    a = RNG.standard_normal((40, 300)).astype(np.float32)
    a[:, ::3] = 1.5  # ties
    t = tg.tensor(a)
    for view, tv in ((a.T, t.T), (a[::2, ::3], t[::2, ::3]), (a[:, 1:-1], t[:, 1:-1])):
        for d in (0, 1):
            for desc in (False, True):
                v, i = tv.sort(d, desc, stable=True)
                want = _argsort_np(view, d, desc)
                assert np.array_equal(i.numpy(), want) and np.array_equal(v.numpy(), np.take_along_axis(view, want, d))
    for shape, d in (((0, 5), 0), ((0, 5), 1), ((3, 0), 1), ((3, 0, 2), 0)):
        v, i = tg.sort(tg.zeros(*shape), d)
        assert v.shape == i.shape == shape and i.dtype == tg.int64
    assert tg.argsort(tg.tensor([2.0, float("nan"), -1.0, 2.0]), descending=True).tolist() == [1, 0, 3, 2]


def test_sort_topk_nonzero_bit_identical_across_threads(restore_threads):
    a = RNG.standard_normal((300, 700)).astype(np.float32)
    a[::7, ::5] = np.nan
    a[::3, ::11] = 0.0
    b = RNG.integers(-5, 5, (200, 3, 301)).astype(np.int64)
    got = []
    for n in (1, 2, 3):
        tg.set_num_threads(n)
        r = [_C.sort(a, d, desc) for d in (0, 1) for desc in (False, True)]
        r += [_C.sort(b, d) for d in (0, 1, 2)]
        r += [_C.topk_indices(a, k, lg, 0) for k in (3, 200) for lg in (True, False)]
        r += [_C.topk_indices(b, 2, True, d) for d in (0, 1, 2)]
        r += [_C.nonzero(x, t) for x in (a, b, a > 0.5) for t in (False, True)]
        r += [_C.masked_select(x, x > 0.5) for x in (a, b)]
        r += [_C.unique(b.reshape(-1), True, True)]
        got.append([x.tobytes() for pair in r for x in (pair if isinstance(pair, tuple) else (pair,))])
    assert got[0] == got[1] == got[2]


def test_sort_kernel_errors():
    with pytest.raises(ValueError, match=r"sort: dim 1 out of range for shape \(3,\)"):
        _C.sort(np.zeros(3, np.float32), 1)
    with pytest.raises(ValueError, match=r"sort: only float32, float64, int32 and int64 are supported, got int16"):
        _C.sort(np.zeros(3, np.int16))
    with pytest.raises(ValueError, match=r"sort: x must be C-contiguous"):
        _C.sort(np.zeros((3, 4), np.float32).T)
    with pytest.raises(IndexError):
        tg.sort(tg.zeros(3), 1)


def test_sort_other_dtypes_and_gradient():
    for dt in (np.int8, np.int16, np.uint8, np.bool_, np.float16):  # numpy's sort, the same order
        a = RNG.integers(0, 4, (5, 33)).astype(dt)
        for desc in (False, True):
            v, i = tg.sort(tg.tensor(a), 1, desc)
            assert np.array_equal(i.numpy(), _argsort_np(a, 1, desc))
    x = tg.tensor(RNG.standard_normal((5, 140)), requires_grad=True)  # the radix path
    assert tg.autograd.gradcheck(lambda t: tg.sort(t, 1)[0], (x,))
    assert tg.autograd.gradcheck(lambda t: tg.sort(t, 0, descending=True)[0], (x,))
    assert tg.autograd.gradcheck(lambda t: tg.topk(t, 3, 0)[0], (x,))


@pytest.mark.parametrize("dtype", DTYPES)
def test_sort_matches_pytorch(dtype):
    torch = pytest.importorskip("torch")
    for shape, d in (((64, 500), 1), ((500, 64), 0), ((7, 9, 130), 1), ((100000,), 0)):
        a = _draw(shape, dtype)
        for desc in (False, True):
            tv, ti = torch.sort(torch.from_numpy(a.copy()), dim=d, descending=desc, stable=True)
            v, i = tg.sort(tg.tensor(a), d, descending=desc, stable=True)
            assert np.array_equal(ti.numpy(), i.numpy())
            assert np.array_equal(tv.numpy(), v.numpy(), equal_nan=np.dtype(dtype).kind == "f")


def test_topk_along_middle_dims_is_the_stable_sorts_first_k():
    for dtype in DTYPES:
        for shape, d in (((300, 37), 0), ((4, 200, 19), 1), ((3, 50, 2), 1), ((1, 40, 1), 1)):
            a = _draw(shape, dtype)
            for k in (0, 1, 5, shape[d]):
                for largest in (True, False):
                    v, i = tg.topk(tg.tensor(a), k, d, largest)
                    want = np.take(_argsort_np(a, d, largest), np.arange(k), axis=d)
                    assert np.array_equal(i.numpy(), want), (dtype, shape, d, k, largest)
                    assert np.array_equal(v.numpy(), np.take_along_axis(a, want, d), equal_nan=True)


NONZERO_DTYPES = [np.bool_, np.int8, np.uint8, np.int16, np.uint16, np.int32, np.int64, np.uint64, np.float16,
                  np.float32, np.float64, np.complex64]


@pytest.mark.parametrize("dtype", NONZERO_DTYPES)
def test_nonzero_is_numpys_argwhere(dtype):
    for shape in ((70001,), (3, 70001), (1, 1), (5, 0, 3), (0,), (131073, 1), (2, 3, 5, 7), (257, 511)):
        a = RNG.integers(-1, 2, shape) * (RNG.random(shape) < 0.3)
        a = a.astype(dtype)
        if np.dtype(dtype).kind == "f" and a.size:
            a.reshape(-1)[::7] = -0.0  # zero
            a.reshape(-1)[::11] = np.nan  # not zero
        want = np.argwhere(a)
        got = tg.nonzero(tg.tensor(a))
        assert got.dtype == tg.int64 and got.shape == want.shape and np.array_equal(got.numpy(), want), shape
        cols = tg.nonzero(tg.tensor(a), as_tuple=True)
        assert len(cols) == a.ndim and all(np.array_equal(c.numpy(), w) for c, w in zip(cols, np.nonzero(a)))
        assert np.array_equal(tg.argwhere(tg.tensor(a)).numpy(), want)


def test_nonzero_non_contiguous_zero_dim_and_masked_select():
    a = RNG.standard_normal((300, 400)).astype(np.float32) * (RNG.random((300, 400)) < 0.5)
    t = tg.tensor(a)
    assert np.array_equal(t.T.nonzero().numpy(), np.argwhere(a.T))
    assert np.array_equal(t[::3, 1::2].nonzero().numpy(), np.argwhere(a[::3, 1::2]))
    assert tg.nonzero(tg.tensor(2.0)).shape == (1, 0) and tg.nonzero(tg.tensor(0.0)).shape == (0, 0)
    assert [c.tolist() for c in tg.nonzero(tg.tensor(2.0), as_tuple=True)] == [[0]]
    m = a > 0.2
    assert np.array_equal(tg.masked_select(t, tg.tensor(m)).numpy(), a[m])
    for dt in (np.bool_, np.int8, np.float16, np.int32, np.float64, np.complex64, np.complex128):
        x = (a * 3).astype(dt)
        got = tg.masked_select(tg.tensor(x), tg.tensor(m))
        assert got.dtype == tg.tensor(x).dtype and got.numpy().tobytes() == x[m].tobytes()
    xg = tg.tensor(a.astype(np.float64), requires_grad=True)  # recorded: the gradient lands where m holds
    tg.masked_select(xg, tg.tensor(m)).sum().backward()
    assert np.array_equal(xg.grad.numpy(), m.astype(np.float64))
    assert tg.masked_select(tg.zeros(0, 3), tg.zeros(0, 3, dtype=tg.bool)).shape == (0,)
    row = m[0]  # a broadcast mask
    assert np.array_equal(tg.masked_select(t, tg.tensor(row)).numpy(), a[np.broadcast_to(row, a.shape)])


def test_masked_select_reads_broadcast_and_strided_operands_in_place(restore_threads, monkeypatch):
    """masked_select's kernel takes input's and mask's strides (0 along a broadcast dim), so nothing
    is copied first: numpy's boolean indexing of the broadcast arrays, bit for bit, for every element
    width, over several chunks of the counting pass, at 1, 2 and 3 threads."""
    monkeypatch.setenv("TAPEGRAD_THREADS_IGNORE_LOAD", "1")
    a = RNG.standard_normal((300, 701)).astype(np.float32)  # 210k entries: four chunks, on the threads
    m = RNG.random((300, 701)) < 0.5
    m[7] = True  # whole runs of one value
    m[9] = False
    cases = [(a[0], m), (a[:, :1], m), (a.T, m.T), (a[::2, ::3], m[::2, ::3]), (a, m[5]), (a, m[:, :1]),
             (a[::-1, 1:], m[:, :700]), (np.float32(2.5), m), (a[:5, None, :7], m[None, :6, :7]),
             (np.zeros((0, 3), np.float32), m[0, :3]), (a[0], m[:0, :1])]
    got = []
    for n in (1, 2, 3):
        tg.set_num_threads(n)
        r = []
        for x, mk in cases:
            x = np.asarray(x)
            shape = np.broadcast_shapes(x.shape, mk.shape)
            want = np.broadcast_to(x, shape)[np.broadcast_to(mk, shape)]
            k = _C.masked_select(x, mk)
            assert k.tobytes() == want.tobytes() and k.dtype == x.dtype
            t = tg.masked_select(tg.tensor(x), tg.tensor(mk)).numpy()
            assert t.tobytes() == want.tobytes()
            r.append(k.tobytes())
        for dt in (np.int8, np.float16, np.float64, np.complex64):  # widths 1, 2, 8, 8
            x = (a[0] * 3).astype(dt)
            k = _C.masked_select(x, m)
            assert k.tobytes() == np.broadcast_to(x, m.shape)[m].tobytes()
            r.append(k.tobytes())
        got.append(r)
    assert got[0] == got[1] == got[2]
    with pytest.raises(ValueError, match=r"masked_select: shapes do not broadcast: input \(3,\), mask \(2,\)"):
        _C.masked_select(np.zeros(3, np.float32), np.zeros(2, bool))
    torch = pytest.importorskip("torch")
    assert np.array_equal(tg.masked_select(tg.tensor(a[0]), tg.tensor(m)).numpy(),
                          torch.masked_select(torch.from_numpy(a[0].copy()), torch.from_numpy(m)).numpy())


def test_nonzero_matches_pytorch():
    torch = pytest.importorskip("torch")
    a = (RNG.standard_normal((33, 2049)) * (RNG.random((33, 2049)) < 0.4)).astype(np.float32)
    a[0, :7] = [-0.0, np.nan, 0.0, np.inf, -np.inf, 1e-45, -1e-45]
    assert np.array_equal(tg.nonzero(tg.tensor(a)).numpy(), torch.nonzero(torch.from_numpy(a)).numpy())
    for c, w in zip(tg.nonzero(tg.tensor(a), as_tuple=True), torch.nonzero(torch.from_numpy(a), as_tuple=True)):
        assert np.array_equal(c.numpy(), w.numpy())


@pytest.mark.parametrize("dtype", [np.int64, np.float32, np.float64, np.int32, np.int16, np.bool_])
def test_unique_is_numpys(dtype):
    for shape in ((0,), (1,), (7,), (5, 9), (100003,)):
        a = RNG.integers(0, 50 if len(shape) < 2 else 4, shape).astype(dtype)
        t = tg.tensor(a)
        vals, inv, counts = np.unique(a, return_inverse=True, return_counts=True)
        assert np.array_equal(tg.unique(t).numpy(), vals)
        v, i = tg.unique(t, return_inverse=True)
        assert np.array_equal(v.numpy(), vals) and np.array_equal(i.numpy(), inv.reshape(a.shape))
        assert i.dtype == tg.int64 and i.shape == a.shape
        v, c = tg.unique(t, return_counts=True)
        assert np.array_equal(c.numpy(), counts) and c.dtype == tg.int64
        v, i, c = tg.unique(t, sorted=True, return_inverse=True, return_counts=True)
        assert np.array_equal(v.numpy(), vals) and np.array_equal(i.numpy(), inv.reshape(a.shape))
        assert np.array_equal(c.numpy(), counts)


def test_unique_matches_pytorch():
    torch = pytest.importorskip("torch")
    for a in (RNG.integers(-1000, 1000, 100000), RNG.integers(0, 3, (4, 5)), np.array([3, 1, 3]),
              np.array([2.0, -0.0, 0.0, np.inf, 2.0, -np.inf], np.float32), np.zeros(0, np.int64),
              np.array([np.nan, 1.0, np.nan, 0.0, -0.0])):  # each NaN distinct, as PyTorch's
        want = torch.unique(torch.from_numpy(a), return_inverse=True, return_counts=True)
        got = tg.unique(tg.tensor(a), return_inverse=True, return_counts=True)
        for g, w in zip(got, want):
            assert np.array_equal(g.numpy(), w.numpy(), equal_nan=g.numpy().dtype.kind == "f")
            assert g.numpy().dtype == w.numpy().dtype
