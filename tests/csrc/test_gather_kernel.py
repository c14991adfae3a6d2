"""gather / scatter / scatter_add / index_add on their native kernels (csrc/kernels/gather.h):
numpy's take_along_axis / np.add.at bit for bit along every dim, an index smaller than the input
outside its dim, strided and broadcast operands, repeated indices summed in order, the same bits on
1, 2 and 3 threads, bounds errors that name the op, the dim and the index, PyTorch's values and
float64 gradients."""
import numpy as np
import pytest

import tapegrad as tg
from tapegrad import _C
from tapegrad.autograd import gradcheck

try:
    import torch
except ImportError:
    torch = None

RNG = np.random.default_rng(12)
DTYPES = [np.float32, np.float64, np.int32, np.int64]


def _along(index, dim):
    idx = list(np.indices(index.shape, sparse=True))
    idx[dim] = index
    return tuple(idx)


def _case(shape, dim, dtype, smaller=False, n_index=None):
    """x of shape, an index along dim (n_index entries there; smaller elsewhere when asked) with repeats."""
    x = (RNG.standard_normal(shape) * 4).astype(dtype)
    ishape = list(shape)
    if smaller:
        ishape = [int(RNG.integers(1, s + 1)) for s in shape]
    ishape[dim] = shape[dim] if n_index is None else n_index
    index = RNG.integers(0, shape[dim], ishape).astype(np.int64)
    src = (RNG.standard_normal(ishape) * 4).astype(dtype)
    return x, index, src


def _ref_scatter_add(x, dim, index, src):
    out = x.copy()
    np.add.at(out, _along(index, dim % x.ndim), src[tuple(slice(0, s) for s in index.shape)])
    return out


SHAPES = [(7,), (5, 9), (300, 17), (3, 200, 70), (4, 5, 6), (2, 3, 1, 41)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
def test_gather_and_scatter_add_match_numpy(shape, dtype):
    for dim in range(-len(shape), len(shape)):
        for smaller in (False, True):
            x, index, src = _case(shape, dim, dtype, smaller, n_index=int(RNG.integers(1, 2 * shape[dim] + 2)))
            got = tg.tensor(x).gather(dim, tg.tensor(index)).numpy()
            assert got.tobytes() == np.asarray(x[_along(index, dim % len(shape))]).tobytes(), (shape, dim, smaller)
            if smaller:  # src may be larger than index
                src = np.pad(src, [(0, 2)] * len(shape))
            got = tg.tensor(x).scatter_add(dim, tg.tensor(index), tg.tensor(src)).numpy()
            assert got.tobytes() == _ref_scatter_add(x, dim, index, src).tobytes(), (shape, dim, smaller)


def test_scatter_overwrite_and_index_add_match_numpy():
    for shape in SHAPES:
        for dim in range(len(shape)):
            x, index, src = _case(shape, dim, np.float32)
            # distinct indices along dim: the overwrite is defined
            perm = np.argsort(RNG.random(x.shape), axis=dim).astype(np.int64)
            want = x.copy()
            want[_along(perm, dim)] = src
            assert tg.tensor(x).scatter(dim, tg.tensor(perm), tg.tensor(src)).numpy().tobytes() == want.tobytes()
            want = x.copy()
            want[_along(perm, dim)] = 2.5
            assert tg.tensor(x).scatter(dim, tg.tensor(perm), value=2.5).numpy().tobytes() == want.tobytes()
            vec = RNG.integers(-shape[dim], shape[dim], 2 * shape[dim] + 1)
            sshape = list(shape)
            sshape[dim] = vec.size
            source = RNG.standard_normal(sshape).astype(np.float32)
            want = x.copy()
            np.add.at(want, (slice(None),) * dim + (vec,), source)
            got = tg.tensor(x).index_add(dim, tg.tensor(vec), tg.tensor(source)).numpy()
            assert got.tobytes() == want.tobytes(), (shape, dim)


def test_strided_and_broadcast_operands():
    x = RNG.standard_normal((40, 60)).astype(np.float64)
    index = RNG.integers(0, 30, (60, 40))
    for xv, iv in ((x.T, index), (x[::2, ::-2], index[:20, :30]), (x, np.broadcast_to(index[:1, :], (40, 40)))):
        for d in (0, 1):
            ii = np.ascontiguousarray(iv[: xv.shape[0], : xv.shape[1]]) % xv.shape[d] if d == 0 else \
                iv[: xv.shape[0], : xv.shape[1]] % xv.shape[d]
            assert _C.gather(xv, d, ii).tobytes() == np.asarray(xv[_along(ii, d)]).tobytes()
            out = np.zeros(xv.shape)
            _C.scatter_(out, d, ii, xv, True)
            assert out.tobytes() == _ref_scatter_add(np.zeros(xv.shape), d, ii, xv).tobytes()


def test_other_dtypes_gather_natively_and_sum_through_numpy():
    for dtype in (np.bool_, np.int8, np.float16, np.complex64, np.uint8, np.int16):
        x = (RNG.standard_normal((6, 7)) * 3).astype(dtype)
        index = RNG.integers(0, 6, (9, 7))
        assert np.array_equal(tg.tensor(x).gather(0, tg.tensor(index)).numpy(), x[_along(index, 0)])
        if dtype is not np.bool_:  # (float16 sums may round once, through float32)
            src = (RNG.standard_normal((9, 7)) * 3).astype(dtype)
            got = tg.tensor(x).scatter_add(0, tg.tensor(index), tg.tensor(src)).numpy()
            assert got.dtype == dtype
            np.testing.assert_allclose(got, _ref_scatter_add(x, 0, index, src), rtol=2e-3, atol=1e-2)


def test_bit_identical_on_1_2_3_threads(restore_threads, monkeypatch):
    monkeypatch.setenv("TAPEGRAD_THREADS_IGNORE_LOAD", "1")
    x = RNG.standard_normal((3, 400, 300)).astype(np.float32)
    index = RNG.integers(0, 20, (3, 400, 300))  # many repeats: the order of the sums shows
    got = []
    for n in (1, 2, 3):
        tg.set_num_threads(n)
        got.append([tg.tensor(x).scatter_add(d, tg.tensor(index % x.shape[d]), tg.tensor(x)).numpy().tobytes()
                    for d in (0, 1, 2)]
                   + [tg.tensor(x).gather(d, tg.tensor(index % x.shape[d])).numpy().tobytes() for d in (0, 1, 2)]
                   + [tg.tensor(x).index_add(1, tg.tensor(index[0, :, 0] % 7), tg.tensor(x)).numpy().tobytes()])
    assert got[0] == got[1] == got[2]
    assert got[0][0] == _ref_scatter_add(x, 0, index % 3, x).tobytes()


def test_empty():
    x = np.zeros((0, 4), np.float32)
    assert tg.tensor(x).gather(1, tg.tensor(np.zeros((0, 2), np.int64))).shape == (0, 2)
    assert tg.tensor(np.ones((3, 4))).gather(1, tg.tensor(np.zeros((3, 0), np.int64))).shape == (3, 0)
    got = tg.tensor(np.ones((3, 4))).scatter_add(0, tg.tensor(np.zeros((0, 4), np.int64)), tg.ones(0, 4, dtype=tg.float64))
    assert np.array_equal(got.numpy(), np.ones((3, 4)))


@pytest.mark.parametrize("op", ["gather", "scatter_add", "scatter", "index_add"])
def test_bounds_errors_name_the_op_dim_and_index(op):
    x = tg.zeros(4, 5)
    for bad in (5, -1, 99):
        index = np.zeros((4, 5), np.int64)
        index[2, 3] = bad
        calls = {"gather": lambda: x.gather(1, tg.tensor(index)),
                 "scatter_add": lambda: x.scatter_add(1, tg.tensor(index), tg.ones(4, 5)),
                 "scatter": lambda: x.scatter(1, tg.tensor(index), tg.ones(4, 5)),
                 "index_add": lambda: x.index_add(1, tg.tensor(index[2]), tg.ones(4, 5))}
        if op == "index_add" and bad == -1:  # index_add counts a negative index from the end
            continue
        with pytest.raises(IndexError, match=rf"{op}\(\): index .*{bad} .*dimension 1 .*size 5"):
            calls[op]()
        if op != "index_add":  # PyTorch's RuntimeError too (its index_add raises IndexError alone)
            with pytest.raises(RuntimeError):
                calls[op]()
    with pytest.raises(ValueError, match="gather: index must be int64"):
        _C.gather(np.zeros(3), 0, np.zeros(3, np.int32))
    with pytest.raises(ValueError, match="scatter: out must be C-contiguous"):
        _C.scatter_(np.zeros((3, 3)).T, 0, np.zeros((3, 3), np.int64), np.zeros((3, 3)), True)
    with pytest.raises(ValueError, match="is larger than input"):
        _C.gather(np.zeros((3, 3)), 0, np.zeros((3, 4), np.int64))


@pytest.mark.skipif(torch is None, reason="needs torch")
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_against_torch(dtype):
    for shape in ((5, 9, 4), (30, 1, 7)):
        for dim in (0, 1, -1):
            x, index, src = _case(shape, dim, dtype, smaller=True, n_index=2 * shape[dim] + 1)
            t = torch.from_numpy
            assert np.array_equal(tg.tensor(x).gather(dim, tg.tensor(index)).numpy(),
                                  t(x).gather(dim, t(index)).numpy())
            got = tg.tensor(x).scatter_add(dim, tg.tensor(index), tg.tensor(src)).numpy()
            np.testing.assert_allclose(got, t(x).scatter_add(dim, t(index), t(src)).numpy(), rtol=1e-6, atol=1e-5)
            vec = RNG.integers(0, shape[dim], 6)
            sshape = list(shape)
            sshape[dim] = 6
            source = RNG.standard_normal(sshape).astype(dtype)
            got = tg.tensor(x).index_add(dim, tg.tensor(vec), tg.tensor(source), alpha=2).numpy()
            want = t(x).index_add(dim, t(vec), t(source), alpha=2).numpy()
            np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-5)


def test_gradients_float64():
    x = tg.tensor(RNG.standard_normal((4, 5, 3)), requires_grad=True)
    src = tg.tensor(RNG.standard_normal((4, 6, 3)), requires_grad=True)
    for dim in (0, 1, -1):
        index = tg.tensor(RNG.integers(0, x.shape[dim], (3, 4, 2)))
        assert gradcheck(lambda a: a.gather(dim, index), [x])
        assert gradcheck(lambda a, s: a.scatter_add(dim, index, s), [x, src])
    vec = tg.tensor(np.array([0, 2, 2, 4, 1, 0]))
    assert gradcheck(lambda a, s: a.index_add(1, vec, s, alpha=0.5), [x, src])
    # gather's gradient: the upstream one summed at the indices (repeats add)
    index = tg.tensor(np.array([[0, 0, 2]]))
    a = tg.tensor(np.arange(3.0)[None], requires_grad=True)
    a.gather(1, index).backward(tg.tensor(np.array([[1.0, 2.0, 4.0]])))
    assert np.array_equal(a.grad.numpy(), [[3.0, 0.0, 4.0]])


def test_scatter_add_in_place_writes_the_out_of_place_bits():
    x, index, src = _case((30, 40), 1, np.float32, n_index=70)
    want = tg.tensor(x).scatter_add(1, tg.tensor(index), tg.tensor(src)).numpy()
    t = tg.tensor(x.copy())
    v = t._version
    assert t.scatter_add_(1, tg.tensor(index), tg.tensor(src)) is t
    assert t.numpy().tobytes() == want.tobytes() and t._version > v
    base = tg.tensor(np.zeros((40, 30), np.float32))
    view = base.T  # not C-contiguous: the generic form, which writes through into base
    view.scatter_add_(1, tg.tensor(index), tg.tensor(src))
    assert np.array_equal(base.numpy().T, _ref_scatter_add(np.zeros((30, 40), np.float32), 1, index, src))
    s = tg.tensor(src, requires_grad=True)  # recorded: the generic form, and its gradient
    y = tg.zeros(30, 40).scatter_add_(1, tg.tensor(index), s)
    y.backward(tg.ones(30, 40))
    assert np.array_equal(s.grad.numpy(), np.ones((30, 70), np.float32))


def test_scatter_add_in_place_reads_src_as_it_was():
    x = RNG.standard_normal((20, 30))
    index = RNG.integers(0, 30, (20, 30))
    want = tg.tensor(x).scatter_add(1, tg.tensor(index), tg.tensor(x)).numpy()
    t = tg.tensor(x.copy())
    t.scatter_add_(1, tg.tensor(index), t)  # src is self: summed from its values before the call
    assert t.numpy().tobytes() == want.tobytes()
