"""Small batched products and their neighbours (issue 12): bmm and batched ``@`` (broadcast,
non-contiguous and empty batches), einsum's contractions as batched GEMMs (batch labels kept as
dims, no-op permutes and reshapes skipped) and the fused cosine_similarity. Values against numpy
(and PyTorch where it is installed), gradients by finite differences in float64, and results
bit-identical for 1, 2 and 3 threads."""
import numpy as np
import pytest

import tapegrad as tg
from tapegrad.autograd import gradcheck, gradgradcheck

F = tg.nn.functional
RNG = np.random.default_rng(12)


def _rand(shape, dtype=np.float64):
    return RNG.standard_normal(shape).astype(dtype)


def _tol(dtype):
    return dict(rtol=2e-5, atol=2e-5) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-12)


# ---------------------------------------------------------------- bmm and batched @
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("b, m, k, n", [(256, 32, 32, 32), (7, 13, 5, 11), (1024, 8, 8, 8), (64, 64, 8, 64),
                                        (33, 8, 64, 8), (3, 1, 17, 1), (0, 4, 5, 6), (5, 0, 3, 2), (5, 3, 0, 2)])
def test_bmm_matches_numpy(dtype, b, m, k, n):
    x, y = _rand((b, m, k), dtype), _rand((b, k, n), dtype)
    got = tg.bmm(tg.tensor(x), tg.tensor(y)).numpy()
    assert got.shape == (b, m, n) and got.dtype == dtype
    np.testing.assert_allclose(got, np.matmul(x.astype(np.float64), y), **_tol(dtype))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("layout", ["a.mT", "b.mT", "both.mT", "batch step 2", "batch expanded"])
def test_bmm_non_contiguous_operands(dtype, layout):
    x, y = _rand((40, 12, 9), dtype), _rand((40, 9, 10), dtype)
    a, b = tg.tensor(x), tg.tensor(y)
    if layout in ("a.mT", "both.mT"):
        a = tg.tensor(np.ascontiguousarray(x.swapaxes(1, 2))).mT
    if layout in ("b.mT", "both.mT"):
        b = tg.tensor(np.ascontiguousarray(y.swapaxes(1, 2))).mT
    if layout == "batch step 2":
        x2, y2 = _rand((80, 12, 9), dtype), _rand((80, 9, 10), dtype)
        a, b, x, y = tg.tensor(x2)[::2], tg.tensor(y2)[1::2], x2[::2], y2[1::2]
    if layout == "batch expanded":
        a, x = tg.tensor(x[:1]).expand(40, 12, 9), np.broadcast_to(x[:1], (40, 12, 9))
    np.testing.assert_allclose(tg.bmm(a, b).numpy(), np.matmul(x.astype(np.float64), y), **_tol(dtype))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("sa, sb", [((256, 32, 32), (32, 32)), ((8, 1, 32, 32), (1, 16, 32, 32)),
                                    ((5, 7, 3), (1, 3, 4)), ((2, 3, 4, 5), (5, 6)), ((0, 3, 4), (4, 2)),
                                    ((3, 2, 1, 4), (2, 4, 0))])
def test_batched_at_broadcasts(dtype, sa, sb):
    x, y = _rand(sa, dtype), _rand(sb, dtype)
    got = (tg.tensor(x) @ tg.tensor(y)).numpy()
    want = np.matmul(x.astype(np.float64), y)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, **_tol(dtype))


@pytest.mark.parametrize("sa, sb", [((4, 5, 3), (4, 3, 6)), ((3, 1, 4, 2), (1, 2, 2, 5)), ((6, 4, 3), (3, 2)),
                                    ((2, 3), (5, 3, 4))])
def test_batched_products_gradcheck(sa, sb):
    a = tg.tensor(_rand(sa), requires_grad=True)
    b = tg.tensor(_rand(sb), requires_grad=True)
    assert gradcheck(lambda a, b: a @ b, (a, b))
    assert gradgradcheck(lambda a, b: a @ b, (a, b))


def test_bmm_empty_batch_backward():
    a = tg.zeros(0, 3, 4, requires_grad=True)
    b = tg.zeros(0, 4, 5, requires_grad=True)
    tg.bmm(a, b).sum().backward()
    assert a.grad.shape == (0, 3, 4) and b.grad.shape == (0, 4, 5)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("m, k", [(8, 8), (13, 64), (1, 5), (30, 300)])
def test_narrow_products_are_the_columns_of_a_wide_one(dtype, m, k):
    # a product of n < NR columns (read and stored under a mask with AVX-512) gives the bits its
    # columns have in a wider product (full panels); C's neighbours past column n are untouched
    a, b = _rand((3, m, k), dtype), _rand((3, k, 48), dtype)
    wide = np.empty((3, m, 48), dtype)
    tg._C.matmul(a, b, wide)
    for n in (1, 5, 8, 15, 17, 31, 33):
        out = np.full((3, m, 48), 7.0, dtype)
        tg._C.matmul(a, b[..., :n], out[..., :n])
        np.testing.assert_array_equal(out[..., :n], wide[..., :n])
        assert (out[..., n:] == 7).all()
        if n > 1:  # one contiguous column is a matrix-vector product: dot products in lanes (gemm.h)
            sliced = np.empty((3, m, n), dtype)
            tg._C.matmul(a, np.ascontiguousarray(b[..., :n]), sliced)
            np.testing.assert_array_equal(sliced, wide[..., :n])


# ---------------------------------------------------------------- einsum
EINSUMS = [("bij,bjk->bik", [(6, 4, 5), (6, 5, 3)]),
           ("bhqd,bhkd->bhqk", [(2, 3, 5, 4), (2, 3, 6, 4)]),
           ("bhqk,bhkd->bhqd", [(2, 3, 5, 6), (2, 3, 6, 4)]),
           ("ij,jk->ik", [(5, 4), (4, 3)]),
           ("ij,kj->ik", [(5, 4), (3, 4)]),
           ("bi,bi->b", [(7, 5), (7, 5)]),
           ("i,i->", [(5,), (5,)]),
           ("bij,jk->bik", [(3, 4, 5), (5, 2)]),
           ("bij,bjk->bik", [(1, 4, 5), (3, 5, 2)]),  # a batch label of size 1 broadcasts
           ("ij,ij->ij", [(3, 4), (3, 4)]),
           ("bij,bkj->bki", [(2, 3, 4), (2, 5, 4)]),
           ("...ij,...jk", [(2, 3, 4), (2, 4, 5)]),
           ("bxy,byz,bzw->bxw", [(2, 3, 4), (2, 4, 5), (2, 5, 3)]),
           ("abc,cd->dba", [(2, 3, 4), (4, 5)]),
           ("bij,bjk->bik", [(0, 4, 5), (0, 5, 3)])]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("eq, shapes", EINSUMS)
def test_einsum_matches_numpy(dtype, eq, shapes):
    xs = [_rand(s, dtype) for s in shapes]
    got = tg.einsum(eq, *[tg.tensor(x) for x in xs]).numpy()
    want = np.einsum(eq, *[x.astype(np.float64) for x in xs])
    assert got.shape == want.shape and got.dtype == dtype
    np.testing.assert_allclose(got, want, **_tol(dtype))


@pytest.mark.parametrize("eq, shapes", [e for e in EINSUMS if 0 not in e[1][0]])
def test_einsum_gradcheck(eq, shapes):
    xs = [tg.tensor(_rand(s), requires_grad=True) for s in shapes]
    assert gradcheck(lambda *t: tg.einsum(eq, *t), tuple(xs))
    assert gradgradcheck(lambda *t: tg.einsum(eq, *t), tuple(xs))


def test_einsum_non_contiguous_operands():
    q = _rand((2, 5, 3, 4)).swapaxes(1, 2)  # (b, h, q, d) as a transposed view, as attention's heads
    k = _rand((2, 6, 3, 4)).swapaxes(1, 2)
    got = tg.einsum("bhqd,bhkd->bhqk", tg.tensor(q), tg.tensor(k)).numpy()
    np.testing.assert_allclose(got, np.einsum("bhqd,bhkd->bhqk", q, k), rtol=1e-12, atol=1e-12)


def test_einsum_batched_product_is_bmm():
    a, b = tg.tensor(_rand((9, 4, 5), np.float32)), tg.tensor(_rand((9, 5, 3), np.float32))
    np.testing.assert_array_equal(tg.einsum("bij,bjk->bik", a, b).numpy(), tg.bmm(a, b).numpy())


# ---------------------------------------------------------------- cosine_similarity
def _cosine_reference(x1, x2, dim, eps=1e-8):
    x1, x2 = np.broadcast_arrays(np.asarray(x1, np.float64), np.asarray(x2, np.float64))
    n1 = np.maximum(np.sqrt((x1 * x1).sum(dim, keepdims=True)), eps)
    n2 = np.maximum(np.sqrt((x2 * x2).sum(dim, keepdims=True)), eps)
    return ((x1 / n1) * (x2 / n2)).sum(dim)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("s1, s2, dim", [((1000, 100), (1000, 100), 1), ((30, 40), (30, 40), 0),
                                         ((4, 5, 6), (4, 5, 6), -1), ((4, 5, 6), (5, 6), 1), ((7, 3), (3,), 1),
                                         ((0, 5), (0, 5), 1), ((3, 0), (3, 0), 1), ((5,), (5,), 0)])
def test_cosine_similarity_matches_numpy(dtype, s1, s2, dim):
    x1, x2 = _rand(s1, dtype), _rand(s2, dtype)
    got = F.cosine_similarity(tg.tensor(x1), tg.tensor(x2), dim).numpy()
    want = _cosine_reference(x1, x2, dim)
    assert got.shape == want.shape and got.dtype == dtype
    np.testing.assert_allclose(got, want, **_tol(dtype))


def test_cosine_similarity_zero_rows_large_values_and_bounds():
    x = np.array([[0.0, 0.0, 0.0], [1e-9, 0.0, 0.0], [1e30, 2e30, -1e30], [3.0, 4.0, 5.0]], np.float32)
    y = np.array([[1.0, 2.0, 3.0], [1.0, 0.0, 0.0], [1e30, 2e30, -1e30], [3.0, 4.0, 5.0]], np.float32)
    got = F.cosine_similarity(tg.tensor(x), tg.tensor(y)).numpy()
    want = _cosine_reference(x, y, 1)
    want[2] = 0  # float32 norms overflow to inf there, and PyTorch's x / inf is 0
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)
    assert np.abs(got).max() <= 1  # the cosine of a row with itself stays within [-1, 1]
    z = np.repeat(_rand((1, 33), np.float32), 50, 0) * np.arange(1, 51, dtype=np.float32)[:, None]
    assert np.abs(F.cosine_similarity(tg.tensor(z), tg.tensor(z)).numpy()).max() <= 1


@pytest.mark.parametrize("s1, s2, dim", [((4, 5), (4, 5), 1), ((4, 5), (4, 5), 0), ((3, 4, 2), (4, 2), -2),
                                         ((3, 4), (1, 4), 1)])
def test_cosine_similarity_gradcheck(s1, s2, dim):
    x1 = tg.tensor(_rand(s1), requires_grad=True)
    x2 = tg.tensor(_rand(s2), requires_grad=True)
    assert gradcheck(lambda a, b: F.cosine_similarity(a, b, dim), (x1, x2))
    assert gradgradcheck(lambda a, b: F.cosine_similarity(a, b, dim), (x1, x2))


def test_cosine_similarity_gradient_of_a_zero_row():
    # the clamp's value, the unclamped norm's gradient (PyTorch's): a zero row gets y / (eps |y|)
    x = tg.tensor(np.zeros((1, 3)), requires_grad=True)
    y = tg.tensor(np.array([[1.0, 2.0, 2.0]]), requires_grad=True)
    F.cosine_similarity(x, y).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), y.detach().numpy() / 3 / 1e-8)
    np.testing.assert_array_equal(y.grad.numpy(), np.zeros((1, 3)))


def test_cosine_similarity_errors():
    with pytest.raises(IndexError):
        F.cosine_similarity(tg.ones(3, 4), tg.ones(3, 4), dim=2)
    with pytest.raises(RuntimeError):
        F.cosine_similarity(tg.ones(3, 4), tg.ones(3, 5))


# ---------------------------------------------------------------- threads
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_results_bit_identical_for_thread_counts(dtype, restore_threads):
    x, y = _rand((300, 32, 32), dtype), _rand((300, 32, 32), dtype)
    q, k = _rand((4, 8, 64, 32), dtype), _rand((4, 8, 64, 32), dtype)
    c1, c2 = _rand((1000, 300), dtype), _rand((1000, 300), dtype)

    def run():
        a, b = tg.tensor(x, requires_grad=True), tg.tensor(y, requires_grad=True)
        tg.bmm(a, b).sum().backward()
        e = tg.einsum("bhqd,bhkd->bhqk", tg.tensor(q), tg.tensor(k))
        u, v = tg.tensor(c1, requires_grad=True), tg.tensor(c2, requires_grad=True)
        cs = F.cosine_similarity(u, v)
        cs.sum().backward()
        return [t.detach().numpy().copy() for t in (tg.bmm(a, b), a.grad, b.grad, e, cs, u.grad, v.grad)]

    results = []
    for n in (1, 2, 3):
        tg.set_num_threads(n)
        results.append(run())
    for other in results[1:]:
        for r0, r in zip(results[0], other):
            np.testing.assert_array_equal(r, r0)


@pytest.mark.parametrize("shape", [(16, 128, 128, 128), (12, 96, 200, 64), (3, 128, 128, 128)])
def test_mid_sized_batches_match_each_product_alone(shape, restore_threads):
    """Products up to 256^3 run one per thread when there are at least four per thread, and each
    gemm alone otherwise: every product's bits are those of the product computed by itself, at
    any thread count."""
    B, M, K, N = shape
    x, y = _rand((B, M, K), np.float32), _rand((B, K, N), np.float32)
    alone = [tg.tensor(x[i]) @ tg.tensor(y[i]) for i in range(B)]
    for n in (1, 2, 3):
        tg.set_num_threads(n)
        got = tg.bmm(tg.tensor(x), tg.tensor(y)).numpy()
        for i in range(B):
            np.testing.assert_array_equal(got[i], alone[i].numpy())


# ---------------------------------------------------------------- against PyTorch
def test_against_torch():
    torch = pytest.importorskip("torch")
    x1, x2 = _rand((50, 40), np.float32), _rand((50, 40), np.float32)
    a = tg.tensor(x1, requires_grad=True)
    b = tg.tensor(x2, requires_grad=True)
    ta = torch.tensor(x1, requires_grad=True)
    tb = torch.tensor(x2, requires_grad=True)
    g = _rand((50,), np.float32)
    F.cosine_similarity(a, b).backward(tg.tensor(g))
    torch.nn.functional.cosine_similarity(ta, tb).backward(torch.tensor(g))
    np.testing.assert_allclose(F.cosine_similarity(a, b).detach().numpy(),
                               torch.nn.functional.cosine_similarity(ta, tb).detach().numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(a.grad.numpy(), ta.grad.numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(b.grad.numpy(), tb.grad.numpy(), rtol=1e-4, atol=1e-5)
    for eq, shapes in EINSUMS:
        xs = [_rand(s, np.float32) for s in shapes]
        got = tg.einsum(eq, *[tg.tensor(x) for x in xs]).numpy()
        want = torch.einsum(eq, *[torch.tensor(x) for x in xs]).numpy()
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    y1, y2 = _rand((8, 1, 6, 5), np.float32), _rand((1, 3, 5, 4), np.float32)
    np.testing.assert_allclose((tg.tensor(y1) @ tg.tensor(y2)).numpy(),
                               (torch.tensor(y1) @ torch.tensor(y2)).numpy(), rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------- rows' dot products
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape, dim", [((1024, 256), -1), ((7, 13), 0), ((3, 4, 5), 1), ((1,), 0), ((0, 3), 1),
                                        ((4, 0), 1)])
def test_vecdot_and_einsum_row_dots_match_numpy(dtype, shape, dim):
    """linalg.vecdot and einsum's 'bi,bi->b' are one node (numpy's vecdot forward); values as the
    product and sum in float64, gradients y and x times the upstream gradient."""
    x, y = _rand(shape, dtype), _rand(shape, dtype)
    want = (x.astype(np.float64) * y).sum(dim)
    tx, ty = tg.tensor(x, requires_grad=True), tg.tensor(y, requires_grad=True)
    got = tg.linalg.vecdot(tx, ty, dim=dim)
    assert got.dtype == tx.dtype and got.grad_fn.name() == "VecdotBackward0"
    np.testing.assert_allclose(got.detach().numpy(), want, **_tol(dtype) if dtype == np.float64 else dict(rtol=1e-4, atol=1e-4))
    g = _rand(want.shape, dtype)
    got.backward(tg.tensor(g))
    np.testing.assert_allclose(tx.grad.numpy(), np.expand_dims(g, dim) * y, **_tol(dtype))
    np.testing.assert_allclose(ty.grad.numpy(), np.expand_dims(g, dim) * x, **_tol(dtype))
    if dim in (-1, len(shape) - 1):
        e = tg.einsum("...i,...i->...", tg.tensor(x), tg.tensor(y))
        assert e.numpy().tobytes() == tg.linalg.vecdot(tg.tensor(x), tg.tensor(y)).numpy().tobytes()


def test_vecdot_conjugates_its_first_operand_and_broadcasts():
    """PyTorch's linalg.vecdot is sum(conj(x) * y): complex x is conjugated; shapes that differ
    broadcast (the composite route)."""
    x, y = np.array([1 + 2j, 3 - 1j]), np.array([2 - 1j, 1 + 1j])
    assert complex(tg.linalg.vecdot(tg.tensor(x), tg.tensor(y)).item()) == complex(np.vdot(x, y))
    a, b = _rand((3, 4)), _rand((4,))
    np.testing.assert_allclose(tg.linalg.vecdot(tg.tensor(a), tg.tensor(b)).numpy(), a @ b, rtol=1e-12)


def test_vecdot_gradients_by_finite_differences():
    x = tg.tensor(_rand((3, 5)), requires_grad=True)
    y = tg.tensor(_rand((3, 5)), requires_grad=True)
    for f in (lambda a, b: tg.linalg.vecdot(a, b, dim=0), lambda a, b: tg.einsum("bi,bi->b", a, b)):
        assert gradcheck(f, (x, y)) and gradgradcheck(f, (x, y))
