"""cdist's routes: the matrix-product route for p = 2 (P or R above 25, or compute_mode
'use_mm_for_euclid_dist'), with rows centred and close pairs recomputed from their differences;
the direct route in row chunks for every other p. Values against a float64 reference of the
differences, gradients (first and second order) by finite differences and against PyTorch, the
non-finite rows, batch broadcasting, the modes and errors, and thread counts."""
import numpy as np
import pytest

import tapegrad as tg
from tapegrad.autograd import gradcheck, gradgradcheck
from tapegrad.ops import linalg

RNG = np.random.default_rng(21)


def _reference(a, b):
    """Distances by differences in float64 (broadcast batch dims)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return np.sqrt(((a[..., :, None, :] - b[..., None, :, :]) ** 2).sum(-1))


@pytest.mark.parametrize("dtype, rtol", [(np.float32, 2e-6), (np.float64, 1e-14)])
@pytest.mark.parametrize("shapes", [((30, 5), (40, 5)), ((64, 33), (7, 33)), ((2, 1, 30, 4), (3, 20, 4)),
                                    ((1, 26), (26, 26))])
def test_product_route_matches_the_differences(dtype, rtol, shapes):
    a = RNG.standard_normal(shapes[0]).astype(dtype)
    b = RNG.standard_normal(shapes[1]).astype(dtype)
    got = tg.cdist(tg.tensor(a), tg.tensor(b)).numpy()
    want = _reference(a, b)
    assert got.shape == want.shape and got.dtype == dtype
    np.testing.assert_allclose(got, want, rtol=rtol * 50, atol=0)


def test_far_from_the_origin_and_close_pairs_keep_their_digits():
    # PyTorch's product route: up to 2.0 on this diagonal, and close pairs lose every digit
    x = (RNG.standard_normal((1000, 3)) * 1000).astype(np.float32)
    d = tg.cdist(tg.tensor(x), tg.tensor(x)).numpy()
    assert (np.diagonal(d) == 0).all()
    # the product formula's rounding is at most 1/512 of every d^2 it keeps: 1e-3 of d
    np.testing.assert_allclose(d, _reference(x, x), rtol=1e-3, atol=0)
    base = (RNG.standard_normal((40, 16)) + 500).astype(np.float32)  # a cluster far from the origin
    near = base + np.float32(1e-3) * RNG.standard_normal((40, 16)).astype(np.float32)
    got = tg.cdist(tg.tensor(base), tg.tensor(near)).numpy()
    np.testing.assert_allclose(got, _reference(base, near), rtol=1e-3, atol=0)


@pytest.mark.parametrize("p", [0, 1, 1.5, 2, 3, float("inf")])
def test_direct_route_in_chunks_is_the_unchunked_result(p, monkeypatch):
    a = tg.tensor(RNG.standard_normal((37, 6)), requires_grad=True)
    b = tg.tensor(RNG.standard_normal((11, 6)), requires_grad=True)
    whole = tg.cdist(a, b, p=p, compute_mode="donot_use_mm_for_euclid_dist")
    whole.sum().backward()
    ga, gb = a.grad.numpy().copy(), b.grad.numpy().copy()
    a.grad = b.grad = None
    monkeypatch.setattr(linalg, "_CDIST_CHUNK_ELEMS", 6 * 11 * 4)  # 4 rows of a at a time
    chunked = tg.cdist(a, b, p=p, compute_mode="donot_use_mm_for_euclid_dist")
    chunked.sum().backward()
    np.testing.assert_array_equal(chunked.detach().numpy(), whole.detach().numpy())
    np.testing.assert_allclose(a.grad.numpy(), ga, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(b.grad.numpy(), gb, rtol=1e-12, atol=1e-12)


def test_product_route_gradients_by_finite_differences():
    a = tg.tensor(RNG.standard_normal((27, 4)), requires_grad=True)
    b = tg.tensor(RNG.standard_normal((5, 4)), requires_grad=True)
    assert gradcheck(lambda x, y: tg.cdist(x, y), (a, b))
    assert gradgradcheck(lambda x, y: tg.cdist(x, y), (a, b))
    a3 = tg.tensor(RNG.standard_normal((2, 27, 3)), requires_grad=True)
    b3 = tg.tensor(RNG.standard_normal((1, 4, 3)), requires_grad=True)
    assert gradcheck(lambda x, y: tg.cdist(x, y), (a3, b3))


def test_coincident_rows_get_a_zero_subgradient():
    x = tg.tensor(RNG.standard_normal((30, 4)), requires_grad=True)
    tg.cdist(x, x).sum().backward()
    g = x.grad.numpy()
    assert np.isfinite(g).all()
    # d/dx_i of sum_jk |x_j - x_k| = 2 sum_k (x_i - x_k) / |x_i - x_k| over k != i
    xs = x.detach().numpy()
    diff = xs[:, None, :] - xs[None, :, :]
    n = np.linalg.norm(diff, axis=-1)
    np.fill_diagonal(n, np.inf)
    np.testing.assert_allclose(g, 2 * (diff / n[..., None]).sum(1), rtol=1e-10, atol=1e-12)


def test_against_pytorch_values_and_gradients():
    torch = pytest.importorskip("torch")
    a, b = RNG.standard_normal((2, 40, 8)), RNG.standard_normal((2, 30, 8))
    for mode in ("use_mm_for_euclid_dist_if_necessary", "use_mm_for_euclid_dist", "donot_use_mm_for_euclid_dist"):
        ta, tb = (torch.tensor(v, requires_grad=True) for v in (a, b))
        xa, xb = (tg.tensor(v, requires_grad=True) for v in (a, b))
        w = RNG.standard_normal((2, 40, 30))
        (torch.cdist(ta, tb, compute_mode=mode) * torch.tensor(w)).sum().backward()
        (tg.cdist(xa, xb, compute_mode=mode) * tg.tensor(w)).sum().backward()
        np.testing.assert_allclose(xa.grad.numpy(), ta.grad.numpy(), rtol=1e-9, atol=1e-10)
        np.testing.assert_allclose(xb.grad.numpy(), tb.grad.numpy(), rtol=1e-9, atol=1e-10)


def test_non_finite_rows_spoil_only_their_own_pairs():
    a = RNG.standard_normal((30, 3))
    b = RNG.standard_normal((28, 3))
    a[3, 1] = np.nan
    a[5, 0] = np.inf
    b[7, 2] = -np.inf
    got = tg.cdist(tg.tensor(a), tg.tensor(b)).numpy()
    with np.errstate(invalid="ignore"):
        want = _reference(a, b)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    fin = np.isfinite(want)
    np.testing.assert_array_equal(np.isinf(got), np.isinf(want))
    np.testing.assert_allclose(got[fin], want[fin], rtol=1e-12)


def test_empty_and_zero_width():
    assert tg.cdist(tg.randn(2, 0, 3), tg.randn(40, 3)).shape == (2, 0, 40)
    np.testing.assert_array_equal(tg.cdist(tg.randn(30, 0), tg.randn(40, 0)).numpy(), np.zeros((30, 40), np.float32))


def test_modes_and_errors():
    x = tg.randn(30, 4)
    with pytest.raises(ValueError, match="bad is not a valid value for compute_mode"):
        tg.cdist(x, x, compute_mode="bad")
    with pytest.raises(RuntimeError, match="cdist only supports floating-point dtypes, X1 got"):
        tg.cdist(tg.ones(3, 2, dtype=tg.long), tg.ones(3, 2))
    with pytest.raises(RuntimeError, match="cdist only supports floating-point dtypes, X2 got"):
        tg.cdist(tg.ones(3, 2), tg.ones(3, 2, dtype=tg.long))
    with pytest.raises(RuntimeError, match="must have one dtype"):
        tg.cdist(tg.ones(3, 2), tg.ones(3, 2, dtype=tg.float64))
    with pytest.raises(RuntimeError, match="same number of columns"):
        tg.cdist(tg.ones(3, 2), tg.ones(3, 3))
    with pytest.raises(RuntimeError, match="do not broadcast"):
        tg.cdist(tg.ones(2, 3, 2), tg.ones(3, 3, 2))
    small = tg.randn(5, 3, dtype=tg.float64)
    np.testing.assert_allclose(tg.cdist(small, small, compute_mode="use_mm_for_euclid_dist").numpy(),
                               _reference(small.numpy(), small.numpy()), rtol=1e-12, atol=1e-15)


def test_kernel_errors_name_the_op():
    out = np.zeros((3, 4), np.float32)
    n2 = np.zeros((1, 4), np.float32)
    with pytest.raises(ValueError, match=r"cdist: expected out \(P, R\)"):
        tg._C.cdist_finish(out, np.zeros(2, np.float32), n2, np.zeros(3, np.float32))
    with pytest.raises(ValueError, match=r"B dividing P"):
        tg._C.cdist_finish(out, np.zeros(3, np.float32), np.zeros((2, 4), np.float32), np.zeros(3, np.float32))
    with pytest.raises(ValueError, match="cdist: dtypes differ"):
        tg._C.cdist_finish(out, np.zeros(3, np.float64), n2, np.zeros(3, np.float32))


def test_one_two_three_threads_bit_identical(restore_threads):
    a = RNG.standard_normal((300, 64)).astype(np.float32)
    b = RNG.standard_normal((500, 64)).astype(np.float32)
    b[:40] = a[:40]  # coincident pairs: the recompute list
    got = []
    for k in (1, 2, 3):
        tg.set_num_threads(k)
        got.append(tg.cdist(tg.tensor(a), tg.tensor(b)).numpy().tobytes())
    assert got[0] == got[1] == got[2]
