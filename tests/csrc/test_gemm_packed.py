"""gemm.h's PackedB (a B packed once, multiplied by many A's: an RNN's recurrent weight) against
numpy, through tapegrad._C._gemm_packed.

Shapes straddle the micro-tiles' edges (NR 32 / 16 / 8 columns, MR 12 / 6 rows), K over one
block (KC = 256, so the packing is cut in K blocks) and N over one panel (NC = 4064); B arrives
row-major, as a `.T` view and as a strided slice. The header promises bit-for-bit what gemm with
the unpacked B gives (but for gemm's dot products of a single row against K-contiguous columns),
so that is checked exactly as well. test_isa_paths.py reruns this file
with TAPEGRAD_CPU=avx2 and =generic, which pack for the other micro-kernels.
"""
import numpy as np
import pytest

from tapegrad import _C

DTYPES = [np.float32, np.float64]
# (K, N): B's shapes
SHAPES = [(1, 1), (7, 13), (17, 33), (31, 67), (257, 9), (300, 129), (5, 4097)]
# rows of the A's multiplied by one packing
ROWS = [1, 5, 13, 150]


def b_operand(rng, K, N, dtype, layout):
    if layout == "row":
        return rng.uniform(-1, 1, (K, N)).astype(dtype)
    if layout == "col":
        return np.ascontiguousarray(rng.uniform(-1, 1, (N, K)).astype(dtype)).T
    return rng.uniform(-1, 1, (2 * K, 3 * N)).astype(dtype)[::2, ::3]  # strided both ways


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("K,N", SHAPES)
@pytest.mark.parametrize("layout", ["row", "col", "strided"])
def test_pack_once_multiply_many(dtype, K, N, layout):
    rng = np.random.default_rng(K * 1000 + N)
    b = b_operand(rng, K, N, dtype, layout)
    # the A's: row-major, a .T view, and one with beta on a non-zero C
    As = [rng.uniform(-1, 1, (M, K)).astype(dtype) for M in ROWS]
    As.append(np.ascontiguousarray(rng.uniform(-1, 1, (K, 3)).astype(dtype)).T)
    c0 = [rng.uniform(-1, 1, (a.shape[0], N)).astype(dtype) for a in As]
    outs = [c.copy() for c in c0]
    _C._gemm_packed(b, As, outs, 1.5, 0.5)
    eps = np.finfo(dtype).eps
    for a, c, out in zip(As, c0, outs):
        ref = 1.5 * (a.astype(np.float64) @ b.astype(np.float64)) + 0.5 * c
        np.testing.assert_allclose(out, ref, rtol=0, atol=4 * eps * (K + 2))
        unpacked = c.copy()
        _C.matmul(a, b, unpacked, 1.5, 0.5)
        if a.shape[0] == 1 and a.strides[1] == a.itemsize and (b.strides[0] == b.itemsize or K == 1):
            continue  # one row against B's K-contiguous columns: gemm's dot products, other bits
        assert out.tobytes() == unpacked.tobytes(), "PackedB differs from gemm on the same B"


@pytest.mark.parametrize("dtype", DTYPES)
def test_same_result_for_1_and_2_threads(dtype):
    rng = np.random.default_rng(1)
    b = rng.uniform(-1, 1, (300, 1030)).astype(dtype)
    a = rng.uniform(-1, 1, (200, 300)).astype(dtype)
    old = _C.get_num_threads()
    results = []
    try:
        for t in (1, 2):
            _C.set_num_threads(t)
            out = np.empty((200, 1030), dtype)
            _C._gemm_packed(b, [a], [out])
            results.append(out)
    finally:
        _C.set_num_threads(old)
    assert results[0].tobytes() == results[1].tobytes()


@pytest.mark.parametrize("dtype", DTYPES)
def test_empty_dimensions(dtype):
    rng = np.random.default_rng(2)
    # K = 0: C = beta * C, A and B unread
    c = rng.uniform(-1, 1, (4, 5)).astype(dtype)
    out = c.copy()
    _C._gemm_packed(np.zeros((0, 5), dtype), [np.zeros((4, 0), dtype)], [out], 1.0, 0.5)
    np.testing.assert_array_equal(out, dtype(0.5) * c)
    # M = 0 and N = 0: nothing to write
    _C._gemm_packed(rng.uniform(-1, 1, (3, 5)).astype(dtype), [np.zeros((0, 3), dtype)], [np.zeros((0, 5), dtype)])
    _C._gemm_packed(np.zeros((3, 0), dtype), [np.ones((2, 3), dtype)], [np.zeros((2, 0), dtype)])


def test_bad_operands_raise():
    b = np.ones((3, 4))
    with pytest.raises(ValueError, match=r"_gemm_packed: shapes do not chain: \(2, 5\) @ \(3, 4\)"):
        _C._gemm_packed(b, [np.ones((2, 5))], [np.zeros((2, 4))])
    with pytest.raises(ValueError, match="_gemm_packed: dtypes differ"):
        _C._gemm_packed(b, [np.ones((2, 3), np.float32)], [np.zeros((2, 4))])
    with pytest.raises(ValueError, match="_gemm_packed: only float32 and float64"):
        _C._gemm_packed(np.ones((3, 4), np.int64), [], [])
    with pytest.raises(ValueError, match="_gemm_packed: as and outs differ in length"):
        _C._gemm_packed(b, [np.ones((2, 3))], [])
    with pytest.raises(ValueError, match="_gemm_packed: out overlaps a"):
        a = np.ones((4, 4))
        _C._gemm_packed(np.ones((4, 4)), [a], [a])
