"""tapegrad._C.matmul (the packed, blocked GEMM) against numpy.

Float64 is checked tightly and float32 with a tolerance that grows with K; transposes arrive
as `.T` views and slices as strided views, so the packing routines see every layout.
"""
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from tapegrad import _C

SIZES = [1, 2, 3, 7, 13, 17, 31, 67, 129]
DTYPES = [np.float64, np.float32]


@pytest.fixture(params=[1, 2], ids=["1thread", "2threads"])
def threads(request):
    old = _C.get_num_threads()
    _C.set_num_threads(request.param)
    yield request.param
    _C.set_num_threads(old)


def operand(rng, shape, dtype, transposed=False):
    """A random array of `shape`; with `transposed`, a `.T` view of a contiguous array."""
    if transposed:
        return np.ascontiguousarray(rng.uniform(-1, 1, shape[::-1]).astype(dtype)).T
    return rng.uniform(-1, 1, shape).astype(dtype)


def check(a, b, out=None, alpha=1.0, beta=0.0):
    """Run _C.matmul and compare with numpy in float64; returns the result."""
    shape = np.broadcast_shapes(a.shape[:-2], b.shape[:-2]) + (a.shape[-2], b.shape[-1])
    if out is None:
        out = np.full(shape, np.nan, dtype=a.dtype)
    ref_c = np.zeros(shape) if beta == 0 else beta * out.astype(np.float64)
    expected = alpha * np.matmul(a.astype(np.float64), b.astype(np.float64)) + ref_c
    _C.matmul(a, b, out, alpha, beta)
    k = a.shape[-1]
    eps = np.finfo(a.dtype).eps
    scale = max(1.0, abs(alpha)) * (k + 2) + abs(beta)
    np.testing.assert_allclose(out, expected, rtol=0, atol=4 * eps * scale)
    return out


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("ta", [False, True], ids=["A", "At"])
@pytest.mark.parametrize("tb", [False, True], ids=["B", "Bt"])
def test_transposes_odd_sizes(threads, dtype, ta, tb):
    rng = np.random.default_rng(0)
    # the last two: wide enough that a row-major A is packed (pack_rows), depths with a tail
    for m, n, k in [(1, 1, 1), (7, 13, 17), (31, 67, 3), (129, 17, 67), (67, 129, 31), (2, 129, 300),
                    (50, 300, 29), (25, 277, 70)]:
        check(operand(rng, (m, k), dtype, ta), operand(rng, (k, n), dtype, tb))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(m=st.sampled_from(SIZES), n=st.sampled_from(SIZES), k=st.sampled_from(SIZES),
       ta=st.booleans(), tb=st.booleans(), tc=st.booleans(), dtype=st.sampled_from(DTYPES),
       nthreads=st.sampled_from([1, 2]))
def test_drawn_shapes(m, n, k, ta, tb, tc, dtype, nthreads):
    rng = np.random.default_rng(m * 10007 + n * 101 + k)
    old = _C.get_num_threads()
    _C.set_num_threads(nthreads)
    try:
        out = np.full((n, m), np.nan, dtype).T if tc else None  # column-major out
        check(operand(rng, (m, k), dtype, ta), operand(rng, (k, n), dtype, tb), out=out)
    finally:
        _C.set_num_threads(old)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("m,n,k", [(0, 3, 4), (3, 0, 4), (0, 0, 0), (3, 4, 0), (1, 5, 0)])
def test_zero_dims(dtype, m, n, k):
    rng = np.random.default_rng(1)
    a, b = operand(rng, (m, k), dtype), operand(rng, (k, n), dtype)
    out = rng.uniform(-1, 1, (m, n)).astype(dtype)
    check(a, b, out=out.copy(), alpha=2.0, beta=0.5)
    res = check(a, b)  # beta == 0 on a NaN-filled out: K == 0 gives exact zeros
    assert not np.isnan(res).any()


@pytest.mark.parametrize("dtype", DTYPES)
def test_unit_dims(threads, dtype):
    rng = np.random.default_rng(2)
    for m, n, k in [(1, 300, 200), (300, 1, 200), (200, 300, 1), (1, 1, 500)]:
        check(operand(rng, (m, k), dtype), operand(rng, (k, n), dtype))


@pytest.mark.parametrize("dtype", DTYPES)
def test_strided_views(threads, dtype):
    rng = np.random.default_rng(3)
    a = rng.uniform(-1, 1, (80, 90)).astype(dtype)[3::2, ::3]           # (39, 30), both strides odd
    b = rng.uniform(-1, 1, (100, 70)).astype(dtype)[::-3, 1::2][:30]     # (30, 35), negative row stride
    out = np.full((90, 80), np.nan, dtype)[::2, 5::2]                    # (45, 38) -> slice to (39, 35)
    check(a, b, out=out[:39, :35])
    check(a.T[:, :13], a[:13, :])                                        # strided, transposed


@pytest.mark.parametrize("dtype", DTYPES)
def test_batched_broadcast(threads, dtype):
    rng = np.random.default_rng(4)
    a = np.broadcast_to(operand(rng, (17, 31), dtype), (5, 17, 31))      # stride-0 batch
    b = operand(rng, (5, 31, 13), dtype)
    check(a, b)
    a4 = operand(rng, (3, 1, 20, 9), dtype)
    b4 = np.broadcast_to(operand(rng, (4, 9, 7), dtype, transposed=False), (3, 4, 9, 7))
    check(np.broadcast_to(a4, (3, 4, 20, 9)), b4)
    big = np.broadcast_to(operand(rng, (70, 80), dtype), (3, 70, 80))   # per-matrix parallel path
    check(big, operand(rng, (3, 90, 80), dtype).transpose(0, 2, 1))     # transposed batch of B


@pytest.mark.parametrize("dtype", DTYPES)
def test_alpha_beta(threads, dtype):
    rng = np.random.default_rng(5)
    for m, n, k in [(13, 17, 300), (130, 70, 600)]:                     # K spans several KC blocks
        a, b = operand(rng, (m, k), dtype), operand(rng, (k, n), dtype, transposed=True)
        check(a, b, out=rng.uniform(-1, 1, (m, n)).astype(dtype), alpha=-1.5, beta=0.25)
        check(a, b, out=rng.uniform(-1, 1, (m, n)).astype(dtype), alpha=0.5, beta=1.0)
        res = check(a, b, out=np.full((m, n), np.nan, dtype), alpha=2.0, beta=0.0)
        assert not np.isnan(res).any()
        out = rng.uniform(-1, 1, (m, n)).astype(dtype)
        check(a, b, out=out.copy(), alpha=0.0, beta=3.0)


def _run(a, b, nthreads):
    old = _C.get_num_threads()
    _C.set_num_threads(nthreads)
    try:
        out = np.empty(np.broadcast_shapes(a.shape[:-2], b.shape[:-2]) + (a.shape[-2], b.shape[-1]), a.dtype)
        _C.matmul(a, b, out)
        return out
    finally:
        _C.set_num_threads(old)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("m,n,k,tb", [(300, 500, 700, False), (500, 20, 300, True), (64, 4200, 260, False),
                                      (64, 100, 784, True), (8, 64, 500, True)],
                         ids=["square", "tall", "wide", "skinny", "batch"])
def test_deterministic_across_threads(dtype, m, n, k, tb):
    """Bit-identical for 1 and 2 threads and across repeated runs (K is never split)."""
    rng = np.random.default_rng(6)
    a, b = operand(rng, (m, k), dtype), operand(rng, (k, n), dtype, tb)
    if m == 8:  # many small products: the binding parallelises over the batch
        a, b = np.broadcast_to(a, (16, m, k)), operand(rng, (16, k, n), dtype)
    one = _run(a, b, 1)
    two = _run(a, b, 2)
    assert one.tobytes() == two.tobytes()
    assert _run(a, b, 2).tobytes() == two.tobytes()
    check(a, b)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("layout", ["rows", "strided", "transposed"])
def test_tiles_side_by_side(dtype, layout):
    """Products that 2 threads cut along N (a weight gradient's X^T @ dY: small M, wide N, long K)
    compute each tile in a per-thread buffer and copy it into C: beta reads C first, beta 0 does
    not (a NaN in C is gone), every layout of C is written back, only the tile's elements are
    touched, and the result is bit-identical for 1 and 2 threads."""
    rng = np.random.default_rng(8)
    m, k, n = 40, 700, 600
    a, b = operand(rng, (m, k), dtype, transposed=True), operand(rng, (k, n), dtype)

    def out_of(c):
        if layout == "rows":
            return c.copy()
        if layout == "strided":  # rows further apart than their length, a border left untouched
            big = np.full((m + 2, n + 37), 7.0, dtype)
            big[1:-1, 5:5 + n] = c
            return big[1:-1, 5:5 + n]
        return np.ascontiguousarray(c.T).T  # column-major: C's columns are contiguous

    c0 = rng.uniform(-1, 1, (m, n)).astype(dtype)
    for alpha, beta, init in [(1.0, 0.0, np.full((m, n), np.nan, dtype)), (-1.5, 0.25, c0), (0.5, 1.0, c0)]:
        results = []
        for nthreads in (1, 2):
            old = _C.get_num_threads()
            _C.set_num_threads(nthreads)
            try:
                out = out_of(init)
                results.append(check(a, b, out=out, alpha=alpha, beta=beta).copy())
                if layout == "strided":
                    assert (out.base[0] == 7).all() and (out.base[:, :5] == 7).all() and (out.base[:, 5 + n:] == 7).all()
            finally:
                _C.set_num_threads(old)
        assert results[0].tobytes() == results[1].tobytes()


@pytest.mark.parametrize("dtype", DTYPES)
def test_bias_is_the_product_then_added(threads, dtype):
    """matmul(..., bias=b) adds b to every row of the result while each tile is in cache: bit for
    bit what the product followed by out += b gives, for every layout of out, edge tiles, several
    K blocks, tiles side by side (2 threads), K == 0 and alpha == 0, and a batch."""
    rng = np.random.default_rng(9)
    for m, k, n, ta in [(7, 5, 3, False), (40, 700, 600, True), (130, 300, 77, False), (1, 1, 1, False),
                        (5, 0, 9, False), (300, 64, 33, True)]:
        a, b = operand(rng, (m, k), dtype, ta), operand(rng, (k, n), dtype)
        bias = rng.uniform(-1, 1, n).astype(dtype)
        for layout in ("rows", "columns", "strided"):
            for alpha, beta in [(1.0, 0.0), (-0.5, 0.75), (0.0, 2.0)]:
                c0 = rng.uniform(-1, 1, (m, n)).astype(dtype)
                if layout == "rows":
                    out, ref = c0.copy(), c0.copy()
                elif layout == "columns":
                    out, ref = np.ascontiguousarray(c0.T).T, c0.copy()
                else:
                    out, ref = np.zeros((m, 2 * n), dtype)[:, ::2], c0.copy()
                    out[:] = c0
                _C.matmul(a, b, ref, alpha, beta)
                ref += bias
                _C.matmul(a, b, out, alpha, beta, bias=bias)
                assert np.array_equal(out, ref), (m, k, n, layout, alpha, beta)
    a, b = operand(rng, (3, 20, 30), dtype), operand(rng, (3, 30, 10), dtype)
    bias = rng.uniform(-1, 1, 10).astype(dtype)
    out, ref = np.empty((3, 20, 10), dtype), np.empty((3, 20, 10), dtype)
    _C.matmul(a, b, ref)
    ref += bias
    _C.matmul(a, b, out, bias=bias)
    assert np.array_equal(out, ref)


@pytest.mark.parametrize("bias,msg", [(np.zeros(4, np.float32), "bias must be a vector of the 5 columns"),
                                      (np.zeros((1, 5), np.float32), "bias must be a vector"),
                                      (np.zeros(5, np.float64), "bias dtype float64 differs"),
                                      (np.zeros(10, np.float32)[::2], "bias must be contiguous")])
def test_bad_bias(bias, msg):
    a, b, out = np.ones((3, 4), np.float32), np.ones((4, 5), np.float32), np.empty((3, 5), np.float32)
    with pytest.raises(ValueError, match=f"matmul: {msg}"):
        _C.matmul(a, b, out, bias=bias)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("offset", [0, 8, 16, 40, 56])
def test_misaligned_rows(dtype, offset):
    """A row-major B starting `offset` bytes past a cache line (its panel grid is shifted to
    align the panels): right, and bit-identical for 1 and 2 threads."""
    rng = np.random.default_rng(7)
    m, k, n = 20, 25, 1000
    size = np.dtype(dtype).itemsize
    buf = np.zeros(k * n * size + 128, np.uint8)
    start = (-buf.ctypes.data) % 64 + offset
    b = buf[start:start + k * n * size].view(dtype).reshape(k, n)
    b[:] = rng.uniform(-1, 1, (k, n))
    a = operand(rng, (m, k), dtype)
    one, two = _run(a, b, 1), _run(a, b, 2)
    assert one.tobytes() == two.tobytes()
    check(a, b)


def test_threads_setting():
    old = _C.get_num_threads()
    _C.set_num_threads(1)
    assert _C.get_num_threads() == 1
    _C.set_num_threads(old)
    with pytest.raises(ValueError, match="set_num_threads"):
        _C.set_num_threads(0)


GENERIC_SCRIPT = textwrap.dedent("""
    import numpy as np
    from tapegrad import _C
    assert _C.gemm_kernel() == "generic", _C.gemm_kernel()
    rng = np.random.default_rng(0)
    for dtype in (np.float64, np.float32):
        eps = np.finfo(dtype).eps
        for (m, n, k) in [(1, 1, 1), (7, 13, 17), (67, 129, 31), (130, 300, 270)]:
            for ta in (False, True):
                for tb in (False, True):
                    a = rng.uniform(-1, 1, (k, m) if ta else (m, k)).astype(dtype)
                    b = rng.uniform(-1, 1, (n, k) if tb else (k, n)).astype(dtype)
                    a, b = (a.T if ta else a), (b.T if tb else b)
                    c0 = rng.uniform(-1, 1, (m, n)).astype(dtype)
                    outs = []
                    for t in (1, 2):
                        _C.set_num_threads(t)
                        out = c0.copy()
                        _C.matmul(a, b, out, 1.5, 0.5)
                        outs.append(out)
                    ref = 1.5 * (a.astype(np.float64) @ b.astype(np.float64)) + 0.5 * c0
                    np.testing.assert_allclose(outs[0], ref, rtol=0, atol=8 * eps * (k + 2))
                    assert outs[0].tobytes() == outs[1].tobytes()
    print("generic ok")
""")


def test_generic_kernel_subprocess():
    env = dict(os.environ, TAPEGRAD_GEMM_KERNEL="generic")
    res = subprocess.run([sys.executable, "-c", GENERIC_SCRIPT], env=env, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert "generic ok" in res.stdout


def test_kernel_name():
    assert _C.gemm_kernel() in ("avx512", "avx2", "generic")


# Shapes around the AVX-512 and AVX2 tiles' edges (MR 12 / 6, NR 32 / 16 float, 16 / 8 double),
# the LSTM step (20 x 256 x 1024) and K over one block (KC = 256), as all four transposes and
# with beta, in the layout the caller passes (column-major C included).
KERNEL_SCRIPT = textwrap.dedent("""
    import sys
    import numpy as np
    from tapegrad import _C
    rng = np.random.default_rng(11)
    outs = {}
    for dtype in (np.float64, np.float32):
        for (m, n, k) in [(1, 1, 1), (11, 15, 7), (12, 16, 256), (13, 33, 257), (20, 1024, 256), (20, 256, 1024),
                          (25, 100, 600), (70, 48, 31), (130, 300, 270)]:
            for ta in (False, True):
                for tb in (False, True):
                    a = rng.uniform(-1, 1, (k, m) if ta else (m, k)).astype(dtype)
                    b = rng.uniform(-1, 1, (n, k) if tb else (k, n)).astype(dtype)
                    a, b = (a.T if ta else a), (b.T if tb else b)
                    c = rng.uniform(-1, 1, (m, n)).astype(dtype)
                    for t in (1, 2):
                        _C.set_num_threads(t)
                        out = c.copy()
                        _C.matmul(a, b, out, 1.5, 0.5)
                        outs[f"{dtype.__name__} {m} {n} {k} {ta} {tb} C t{t}"] = out
                        out = np.array(c, order="F")
                        _C.matmul(a, b, out)
                        outs[f"{dtype.__name__} {m} {n} {k} {ta} {tb} F t{t}"] = out
    np.savez(sys.argv[1], kernel=_C.gemm_kernel(), **outs)
""")


@pytest.mark.skipif(_C.gemm_kernel() != "avx512", reason="needs the AVX-512 kernel")
def test_avx512_matches_avx2_bitwise(tmp_path):
    """The AVX-512 and AVX2 kernels sum every element in the same order (one FMA chain over the
    same K blocks), so a result does not depend on which one the CPU runs."""
    runs = {}
    for kernel in ("avx512", "avx2"):
        env = dict(os.environ, TAPEGRAD_GEMM_KERNEL=kernel)
        path = tmp_path / f"{kernel}.npz"
        res = subprocess.run([sys.executable, "-c", KERNEL_SCRIPT, str(path)], env=env, capture_output=True,
                             text=True, timeout=120)
        assert res.returncode == 0, res.stderr
        runs[kernel] = np.load(path)
    assert str(runs["avx512"]["kernel"]) == "avx512" and str(runs["avx2"]["kernel"]) == "avx2"
    keys = [key for key in runs["avx512"].files if key != "kernel"]
    assert len(keys) == 2 * 9 * 4 * 2 * 2
    for key in keys:
        assert runs["avx512"][key].tobytes() == runs["avx2"][key].tobytes(), key
        if key.endswith("t2"):
            assert runs["avx512"][key].tobytes() == runs["avx512"][key[:-1] + "1"].tobytes(), key


@pytest.mark.parametrize("args,msg", [
    ((np.ones((2, 3)), np.ones((4, 5)), np.ones((2, 5))), "do not chain"),
    ((np.ones((2, 3)), np.ones((3, 5)), np.ones((2, 4))), "do not chain"),
    ((np.ones(3), np.ones(3), np.ones(1)), "rank"),
    ((np.ones((2, 3)), np.ones((3, 5), np.float32), np.ones((2, 5))), "dtypes differ"),
    ((np.ones((2, 3), int), np.ones((3, 5), int), np.ones((2, 5), int)), "float32 and float64"),
    ((np.ones((2, 2, 3)), np.ones((3, 3, 5)), np.ones((2, 2, 5))), "batch"),
    ((np.ones((2, 3)), np.ones((3, 5)), np.broadcast_to(np.ones(5), (2, 5))), "read-only"),
])
def test_bad_input(args, msg):
    with pytest.raises(ValueError, match=f"matmul: .*{msg}"):
        _C.matmul(*args)


def test_out_overlapping_an_input_is_refused():
    """out is written while a and b are still read: any overlap (numpy's may_share_memory, i.e.
    of the memory bounds) is refused instead of computing garbage."""
    rng = np.random.default_rng(8)
    a = rng.uniform(-1, 1, (40, 40))
    b = rng.uniform(-1, 1, (40, 40))
    cases = [(a, b, a, "a"), (a, b, b, "b"), (a, b, a.T, "a"), (a, b, a[::-1], "a"),
             (a[:30, :30], b[:30, :30], b[10:, 5:35], "b"), (a[:30, :30], b[:30, :30], a[10:, 10:], "a")]
    for x, y, out, name in cases:
        saved = (a.copy(), b.copy())
        with pytest.raises(ValueError, match=f"matmul: out overlaps {name} in memory"):
            _C.matmul(x, y, out)
        assert np.array_equal(a, saved[0]) and np.array_equal(b, saved[1])  # nothing written
    buf = rng.uniform(-1, 1, (80, 40))  # disjoint rows of one buffer are fine
    check(buf[:40], b, out=buf[40:])


def test_out_whose_elements_alias_is_refused():
    """An out with a stride-0 (or self-overlapping) dimension would be written by several threads
    at once and hold one arbitrary product."""
    a, b = np.ones((4, 8, 8)), np.ones((4, 8, 8))
    base = np.zeros((8, 8))
    for out in (np.lib.stride_tricks.as_strided(base, (4, 8, 8), (0, 64, 8)),   # stride-0 batch
                np.lib.stride_tricks.as_strided(base, (4, 8, 8), (8, 64, 8))):  # batches overlap
        with pytest.raises(ValueError, match="matmul: out .* has elements that share memory"):
            _C.matmul(a, b, out)
    check(a, b, out=np.zeros((8, 4, 8)).transpose(1, 0, 2))  # a permuted out is distinct


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("m", [1, 5, 12, 20, 64, 65])
@pytest.mark.parametrize("n,k", [(32, 7), (100, 300), (1000, 25), (257, 520)])
def test_row_major_b_read_in_place(dtype, m, n, k):
    """With few rows of C (M <= 64) the AVX-512 kernels read a row-major B in place instead of
    packing it (the last partial panel still packed), with the rows a wider array's apart: the
    same bits as the packed route a column-major copy of B takes, for 1 and 2 threads."""
    rng = np.random.default_rng(12)
    a = operand(rng, (m, k), dtype)
    wide = rng.uniform(-1, 1, (k, n + 37)).astype(dtype)
    b = wide[:, 3:3 + n]  # row-major, rows n + 37 apart, starting off a cache line
    packed = np.asfortranarray(b)
    for t in (1, 2):
        if m == 1:  # a single row against a column-major B is a dot product: compare within two rows
            two = np.concatenate([a, a[::-1] * 0.5])
            assert _run(a, b, t).tobytes() == _run(two, packed, t)[:1].tobytes()
        else:
            assert _run(a, b, t).tobytes() == _run(a, packed, t).tobytes()
    c = rng.uniform(-1, 1, (m, n)).astype(dtype)
    check(a, b, out=c.copy(), alpha=1.5, beta=0.5)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("k", [1, 5, 16, 17, 300, 1030])
@pytest.mark.parametrize("n", [1, 3, 4, 9, 700])
def test_one_row_or_one_column_as_dot_products(dtype, k, n):
    """x @ W^T for one x (B's columns contiguous over K) and W @ v: dot products, nothing packed.
    Against float64, with alpha, beta, a bias and strided C; bit-identical for 1 and 2 threads
    (700 x 1030 is split between them)."""
    rng = np.random.default_rng(13)
    x = operand(rng, (1, k), dtype)
    w = rng.uniform(-1, 1, (n, k)).astype(dtype)
    for a, b in ((x, w.T), (w, x.T)):  # one row; one column
        c = rng.uniform(-1, 1, (a.shape[0], b.shape[1])).astype(dtype)
        check(a, b, out=c.copy(), alpha=-0.75, beta=1.25)
        wide = np.zeros((a.shape[0], 2 * b.shape[1]), dtype)
        strided = wide[:, ::2]
        check(a, b, out=strided)
        assert _run(a, b, 1).tobytes() == _run(a, b, 2).tobytes()
        bias = rng.uniform(-1, 1, b.shape[1]).astype(dtype)
        out = np.empty((a.shape[0], b.shape[1]), dtype)
        _C.matmul(a, b, out, 1.0, 0.0, bias)
        expected = a.astype(np.float64) @ b.astype(np.float64) + bias
        np.testing.assert_allclose(out, expected, rtol=0, atol=4 * np.finfo(dtype).eps * (k + 3))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("m", [2, 5, 8, 13, 31, 64])
@pytest.mark.parametrize("n", [2, 8, 15, 16, 17, 32])
@pytest.mark.parametrize("k", [1, 8, 33, 128, 129, 256])
def test_tiny_products_keep_the_blocked_nests_bits(dtype, m, n, k):
    """Products of at most one micro-panel of columns, one K block and at most 64 rows, all of unit
    column stride, skip the blocked nest's set-up (gemm_tiny) and call its micro-kernels directly:
    the same bits as the nest gives the same product reached with a column-major B (packed), alone
    or in a batch, with alpha, beta and a bias."""
    rng = np.random.default_rng(m * 1000 + n * 10 + k)
    a, b = operand(rng, (m, k), dtype), operand(rng, (k, n), dtype)
    tiny = _run(a, b, 1)
    assert tiny.tobytes() == _run(a, np.asfortranarray(b), 1).tobytes()
    batch_a = np.stack([a, a[::-1], a * 2])
    batch_b = np.stack([b, b, b[:, ::-1].copy()])
    for t in (1, 2, 3):
        got = _run(batch_a, batch_b, t)
        for i in range(3):
            assert got[i].tobytes() == _run(batch_a[i], np.asfortranarray(batch_b[i]), 1).tobytes()
    c0, bias = operand(rng, (m, n), dtype), operand(rng, (n,), dtype)
    for alpha, beta, with_bias in [(1.5, 0.5, False), (1.0, 0.0, True), (-2.0, 1.0, True)]:
        outs = []
        for bb in (b, np.asfortranarray(b)):
            out = c0.copy()
            _C.matmul(a, bb, out, alpha, beta, bias if with_bias else None)
            outs.append(out)
        assert outs[0].tobytes() == outs[1].tobytes()
    check(a, b, out=c0.copy(), alpha=1.5, beta=0.5)
