"""tapegrad.linalg against torch.linalg: values, float64 gradients (a random cotangent), double
backward and the errors. Decompositions are compared through quantities that do not depend on
the sign (gauge) each library picks for a singular vector or eigenvector."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch_oracle import check_double_backward, check_forward_and_gradients, check_same_exception_type  # noqa: E402

import tapegrad as tg  # noqa: E402

R = np.random.default_rng(0)
SQ = R.standard_normal((2, 4, 4)) + 3 * np.eye(4)   # well-conditioned batch
TALL = R.standard_normal((2, 5, 3))
WIDE = R.standard_normal((3, 5))
VEC = R.standard_normal((2, 4))


def spd(M, a):
    return a @ a.mT + M.eye(a.shape[-1], dtype=a.dtype)


def sym(a):
    return a + a.mT


CASES = {
    "inv_det": (lambda M, a: (M.linalg.inv(a), M.linalg.det(a), M.det(a[0]), M.inverse(a)), [SQ]),
    "slogdet_logdet": (lambda M, a: (M.linalg.slogdet(a).logabsdet, M.linalg.slogdet(a)[0], M.logdet(spd(M, a))),
                       [SQ]),
    "solve": (lambda M, a, b: (M.linalg.solve(a, b), M.linalg.solve(a, b[..., None]), M.linalg.solve(a[0], b[0]),
                               M.linalg.solve(a, a[..., :2], left=False).sum() if False else
                               M.linalg.solve(a, a.mT[..., :2, :], left=False)), [SQ, VEC]),
    "cholesky": (lambda M, a: (M.linalg.cholesky(spd(M, a)), M.linalg.cholesky(spd(M, a), upper=True)), [SQ]),
    "qr": (lambda M, a, b, c: (*M.linalg.qr(a), *M.linalg.qr(b), *M.linalg.qr(c), *M.linalg.qr(b[0, :3], mode="complete")),
           [SQ, TALL, WIDE]),
    "svd": (lambda M, a, b, c: tuple(f(x) for x in (a, b, c) for f in (
        lambda x: M.linalg.svd(x, full_matrices=False).U ** 2, lambda x: M.linalg.svd(x).S,
        lambda x: M.linalg.svd(x, full_matrices=False).Vh ** 2, M.linalg.svdvals,
        lambda x: (lambda u, s, vh: u[..., :, :1] * vh[..., :1, :])(*M.linalg.svd(x)))), [SQ, TALL, WIDE]),
    "eigh": (lambda M, a: (M.linalg.eigh(sym(a)).eigenvalues, M.linalg.eigh(sym(a)).eigenvectors ** 2,
                           M.linalg.eigvalsh(a, UPLO="U"), M.linalg.eigh(a)[1].abs()), [SQ]),
    "norms": (lambda M, a, v: (M.linalg.norm(a), M.linalg.norm(v, dim=1), M.linalg.norm(a[0], ord=1),
                               M.linalg.norm(a, ord="nuc", dim=(1, 2)), M.linalg.vector_norm(a, 3, dim=(0, 2)),
                               M.linalg.vector_norm(v, float("inf"), keepdim=True), M.linalg.vector_norm(v, 0),
                               *(M.linalg.matrix_norm(a, o) for o in ("fro", "nuc", 1, -1, 2, -2, float("inf"),
                                                                      -float("inf"))),
                               M.linalg.matrix_norm(a, 1, dim=(2, 0), keepdim=True),
                               M.linalg.matrix_norm(a, "nuc", dim=(0, 2), keepdim=True),
                               M.linalg.norm(a[0], 2)), [SQ, VEC]),
    "pinv_lstsq": (lambda M, a, b, c, v: (M.linalg.pinv(a), M.linalg.pinv(b), M.linalg.pinv(c),
                                          M.linalg.pinv(sym(a), hermitian=True), M.linalg.lstsq(b, v[..., :5]).solution,
                                          M.linalg.lstsq(a, v[..., :4]).solution, M.linalg.pinv(b, atol=1.5),
                                          M.linalg.lstsq(b, b[..., :2]).solution),
                   [SQ, TALL, WIDE, R.standard_normal((2, 5))]),
    "small": (lambda M, a, v: (M.linalg.matrix_power(a, 3), M.linalg.matrix_power(a, -2), M.linalg.matrix_power(a, 0),
                               M.linalg.multi_dot([v[0], a[0], a[1], v[1]]), M.linalg.vecdot(a, v[:, None]),
                               M.linalg.matmul(a, v[..., None]), M.linalg.diagonal(a, offset=1)), [SQ, VEC]),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_linalg_matches_torch(name):
    fn, arrays = CASES[name]
    check_forward_and_gradients(fn, arrays, grad_rtol=1e-7)


@pytest.mark.parametrize("name,fn", [
    ("solve", lambda M, a: M.linalg.solve(a, a.sum(-1)).sum()),
    ("cholesky", lambda M, a: M.linalg.cholesky(spd(M, a)).sum()),
    ("svdvals", lambda M, a: M.linalg.svdvals(a).pow(3).sum()),
    ("eigh", lambda M, a: (M.linalg.eigh(sym(a)).eigenvectors ** 2 * M.arange(4.0, dtype=a.dtype)).sum()),
    ("qr", lambda M, a: (M.linalg.qr(a).R ** 2).sum()),
    ("slogdet", lambda M, a: M.linalg.slogdet(a).logabsdet.sum()),
])
def test_linalg_double_backward_matches_torch(name, fn):
    check_double_backward(lambda M, a: fn(M, a), [SQ], name, lambda outs: outs[0])


def test_linalg_results_and_rank_match_torch():
    a = np.diag([3.0, 2.0, 1e-20, 0.0])
    for kw in ({}, {"hermitian": True}, {"atol": 2.5}, {"rtol": 0.5}):
        want = torch.linalg.matrix_rank(torch.tensor(a), **kw)
        got = tg.linalg.matrix_rank(tg.tensor(a), **kw)
        assert got.item() == want.item() and str(got.dtype) == "int64", kw
    r = tg.linalg.lstsq(tg.tensor(TALL), tg.tensor(TALL[..., :1]))
    rt = torch.linalg.lstsq(torch.tensor(TALL), torch.tensor(TALL[..., :1]))
    assert tuple(r.residuals.shape) == tuple(rt.residuals.shape) and tuple(r.singular_values.shape) == tuple(
        rt.singular_values.shape)
    np.testing.assert_array_equal(r.rank.numpy(), rt.rank.numpy())
    assert tg.linalg.svd(tg.tensor(TALL))._fields == ("U", "S", "Vh")
    assert tg.linalg.eigh(tg.tensor(SQ))._fields == ("eigenvalues", "eigenvectors")


def test_qr_modes_match_torch():
    for a in (TALL, WIDE):
        np.testing.assert_allclose(tg.linalg.qr(tg.tensor(a), mode="r").R.numpy(),
                                   torch.linalg.qr(torch.tensor(a), mode="r").R.numpy(), atol=1e-12)
    a = tg.tensor(TALL, requires_grad=True)
    Q, R = tg.linalg.qr(a, mode="complete")
    assert tuple(Q.shape) == (2, 5, 5) and tuple(R.shape) == (2, 5, 3)
    with pytest.raises(RuntimeError, match="not differentiable when mode='complete'"):
        Q.sum().backward()


def test_linalg_errors_match_torch():
    sing = np.ones((3, 3))
    for call in (lambda M: M.linalg.inv(M.tensor(sing)),
                 lambda M: M.linalg.solve(M.tensor(sing), M.ones(3, dtype=M.float64)),
                 lambda M: M.linalg.cholesky(-M.eye(3))):
        for M in (torch, tg):  # both raise their LinAlgError, a RuntimeError
            with pytest.raises(M.linalg.LinAlgError):
                call(M)
    check_same_exception_type(lambda M: M.linalg.det(M.ones(2, 3)))
    check_same_exception_type(lambda M: M.linalg.solve(M.eye(3), M.ones(4)))
    check_same_exception_type(lambda M: M.linalg.qr(M.ones(3)))
    check_same_exception_type(lambda M: M.linalg.norm(M.ones(2, 2, 2), ord=2))
    assert issubclass(tg.linalg.LinAlgError, RuntimeError)
    with pytest.raises(tg.linalg.LinAlgError, match=r"linalg.solve.*\(3, 3\).*singular"):
        tg.linalg.solve(tg.tensor(sing), tg.ones(3, dtype=tg.float64))
    with pytest.raises(tg.linalg.LinAlgError, match="cholesky.*positive-definite"):
        tg.linalg.cholesky(-tg.eye(3))
    ex = tg.linalg.inv_ex(tg.tensor(sing))
    assert ex.info.item() != 0 and torch.linalg.inv_ex(torch.tensor(sing)).info.item() != 0
