"""topk's native selection (csrc/kernels/topk.h): the first k of tapegrad's stable sort for every
dtype it takes (NaN above every number, -0 equal to +0, ties by the lower index), on both of its
paths (a heap for small k, keyed selection for large), along any dim, at any thread count, and
PyTorch's values and indices where there are no ties."""
import numpy as np
import pytest

import tapegrad as tg
from tapegrad import _C
from tapegrad.ops.sorting import _argsort_np

RNG = np.random.default_rng(5)


def _stable_first_k(a, d, k, largest):
    return np.take(_argsort_np(a, d, largest), np.arange(k), axis=d)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int32, np.int64])
def test_topk_is_the_stable_sorts_first_k(dtype):
    for _ in range(150):
        shape = tuple(RNG.integers(1, 7, RNG.integers(1, 4)))
        if RNG.random() < 0.4:  # long rows: the chunked scan and the keyed selection
            shape = shape[:-1] + (int(RNG.integers(40, 900)),)
        a = (RNG.integers(-3, 4, shape) if RNG.random() < 0.5 else RNG.standard_normal(shape) * 3).astype(dtype)
        if np.dtype(dtype).kind == "f" and RNG.random() < 0.6:
            flat = a.reshape(-1)
            for v, p in ((np.nan, RNG.choice([0.02, 0.2, 0.95])), (np.inf, 0.05), (-np.inf, 0.05), (-0.0, 0.05),
                         (0.0, 0.05)):
                flat[RNG.random(a.size) < p] = v
        d = int(RNG.integers(0, len(shape)))
        n = shape[d]
        k = int(RNG.choice([RNG.integers(0, n + 1), min(n, 3), n]))
        largest = bool(RNG.random() < 0.6)
        values, idx = tg.topk(tg.tensor(a), k, d, largest)
        want = _stable_first_k(a, d, k, largest)
        assert idx.numpy().tobytes() == want.astype(np.int64).tobytes(), (shape, d, k, largest)
        assert np.array_equal(values.numpy(), np.take_along_axis(a, want, d), equal_nan=np.dtype(dtype).kind == "f")


def test_topk_kernel_threads_and_errors():
    a = RNG.standard_normal((300, 700)).astype(np.float32)
    a[::7, ::5] = np.nan
    before = tg.get_num_threads()
    try:
        got = []
        for n in (1, 2, 3):
            tg.set_num_threads(n)
            got.append([_C.topk_indices(a, k, lg).tobytes() for k in (0, 4, 300, 700) for lg in (True, False)])
    finally:
        tg.set_num_threads(before)
    assert got[0] == got[1] == got[2]
    with pytest.raises(ValueError, match=r"topk: k \(8\) out of range for a dim of size 7"):
        _C.topk_indices(np.zeros((2, 7), np.float32), 8)
    with pytest.raises(ValueError, match=r"topk: expected an array of rank >= 1, got shape \(\)"):
        _C.topk_indices(np.zeros((), np.float32), 1)
    with pytest.raises(ValueError, match=r"topk: dim 2 out of range for shape \(2, 7\)"):
        _C.topk_indices(np.zeros((2, 7), np.float32), 1, True, 2)
    with pytest.raises(ValueError, match=r"topk: only float32, float64, int32 and int64 are supported, got int16"):
        _C.topk_indices(np.zeros((2, 7), np.int16), 2)
    with pytest.raises(RuntimeError, match=r"topk: selected index k \(9\) out of range for dimension 1 of size 7"):
        tg.topk(tg.zeros(2, 7), 9)


def test_topk_gradient_and_other_dtypes():
    x = tg.tensor(RNG.standard_normal((6, 40)), requires_grad=True)
    assert tg.autograd.gradcheck(lambda t: tg.topk(t, 3, 1)[0], (x,))
    assert tg.autograd.gradcheck(lambda t: tg.topk(t, 2, 0, largest=False)[0], (x,))
    u = np.array([[3, 1, 2, 3]], np.uint8)  # not a kernel dtype: numpy's sort, same order
    assert tg.topk(tg.tensor(u), 2)[1].tolist() == [[0, 3]]


def test_topk_matches_pytorch_without_ties():
    torch = pytest.importorskip("torch")
    a = (RNG.permutation(64000).reshape(64, 1000) / 7 - 4000).astype(np.float32)  # distinct values
    for k, dim, largest in ((5, 1, True), (400, 1, False), (7, 0, True)):
        tv, ti = torch.topk(torch.tensor(a), k, dim, largest)
        v, i = tg.topk(tg.tensor(a), k, dim, largest)
        assert np.array_equal(ti.numpy(), i.numpy()) and np.array_equal(tv.numpy(), v.numpy())
