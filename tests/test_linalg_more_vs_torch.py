"""The torch.linalg functions added for API coverage (LU family, solve_triangular, matrix_exp,
vander, tensorinv/tensorsolve, cond, householder_product, LDL) against PyTorch: values and
gradients in float64."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")

import tapegrad as tg  # noqa: E402

R = np.random.default_rng(0)


def _np(t):
    return None if t is None else t.detach().numpy()


def _run(fn, arrays, grad=(), tol=1e-9):
    res = {}
    for M in (torch, tg):
        ts = [M.tensor(a.copy(), requires_grad=i in grad) if a.dtype.kind == "f" else M.tensor(a.copy())
              for i, a in enumerate(arrays)]
        out = fn(M, *ts)
        outs = tuple(out) if isinstance(out, tuple) else (out,)
        if grad:
            sum((o * o).sum() for o in outs if o.requires_grad).backward()
        res[M] = [_np(o) for o in outs] + [_np(ts[i].grad) for i in grad]
    for a, b in zip(res[torch], res[tg]):
        np.testing.assert_allclose(b, a, rtol=tol, atol=tol)


def _mat(*shape):
    return R.standard_normal(shape) + 3 * np.eye(shape[-1])


@pytest.mark.parametrize("batch", [(), (2,)])
def test_lu_family_matches_torch(batch):
    A = _mat(*batch, 4, 4)
    B = R.standard_normal(batch + (4, 2))
    _run(lambda M, a: M.linalg.lu_factor(a), [A], (0,))
    _run(lambda M, a: M.linalg.lu_factor_ex(a), [A], (0,))
    _run(lambda M, a: M.linalg.lu(a), [A], (0,))
    for left in (True, False):
        for adjoint in (False, True):
            b = B if left else np.swapaxes(B, -1, -2)
            _run(lambda M, a, c: M.linalg.lu_solve(*M.linalg.lu_factor(a), c, left=left, adjoint=adjoint), [A, b],
                 (0, 1))
    _run(lambda M, a: M.linalg.lu(a)[1:], [R.standard_normal((3, 5))])  # wide: values only
    with pytest.raises(RuntimeError, match="is zero"):
        tg.linalg.lu_factor(tg.tensor([[1.0, 2.0], [2.0, 4.0]]))
    _run(lambda M, a: M.linalg.lu_factor_ex(a), [np.array([[1.0, 2.0], [2.0, 4.0]])])


@pytest.mark.parametrize("upper", [False, True])
@pytest.mark.parametrize("left", [False, True])
@pytest.mark.parametrize("unit", [False, True])
def test_solve_triangular_matches_torch(upper, left, unit):
    A = _mat(2, 3, 3)
    B = R.standard_normal((2, 3, 4) if left else (2, 4, 3))
    _run(lambda M, a, b: M.linalg.solve_triangular(a, b, upper=upper, left=left, unitriangular=unit), [A, B], (0, 1))


def test_matrix_exp_vander_tensor_solves_match_torch():
    _run(lambda M, a: M.linalg.matrix_exp(a), [R.standard_normal((2, 3, 3))], (0,))
    _run(lambda M, a: M.matrix_exp(a), [R.standard_normal((4, 4))], (0,))
    _run(lambda M, x: M.linalg.vander(x), [np.array([0.0, 2.0, -1.5])], (0,))
    _run(lambda M, x: M.linalg.vander(x, N=5), [R.standard_normal((2, 3))], (0,))
    _run(lambda M, a: M.linalg.tensorinv(a, ind=2), [_mat(6, 6).reshape(2, 3, 6)], (0,))
    _run(lambda M, a, b: M.linalg.tensorsolve(a, b), [_mat(6, 6).reshape(2, 3, 6), R.standard_normal((2, 3))], (0, 1))
    _run(lambda M, a, b: M.linalg.tensorsolve(a, b, dims=(0,)),
         [_mat(6, 6).reshape(2, 3, 6).transpose(2, 0, 1).copy(), R.standard_normal((2, 3))], (0, 1))
    # only the products of the shapes must agree (op_db's sample: A's leading dims (3, 2), B (2, 3))
    _run(lambda M, a, b: M.linalg.tensorsolve(a, b, dims=(0, 2)), [_mat(6, 6).reshape(2, 3, 6), R.standard_normal((2, 3))],
         (0, 1))
    with pytest.raises(RuntimeError, match="ind"):
        tg.linalg.tensorinv(tg.zeros(2, 2), ind=0)
    with pytest.raises(RuntimeError, match=r"tensorsolve.*\(2, 3, 5\)"):
        tg.linalg.tensorsolve(tg.ones(2, 3, 5), tg.ones(2, 3))


@pytest.mark.parametrize("p", [None, 2, -2, "fro", "nuc", np.inf, -np.inf, 1, -1])
def test_cond_matches_torch(p):
    # PyTorch cannot differentiate cond through inv (its inv_ex output is modified in place)
    _run(lambda M, a: M.linalg.cond(a, p), [_mat(2, 3, 3)], (0,) if p in (None, 2, -2, "nuc") else ())
    if p not in (None, 2, -2, "nuc"):
        assert tg.autograd.gradcheck(lambda a: tg.linalg.cond(a, p), (tg.tensor(_mat(3, 3), requires_grad=True),))


def test_householder_product_matches_torch():
    A = R.standard_normal((2, 5, 3))
    tau = R.uniform(0.5, 1.5, (2, 2))
    _run(lambda M, a, t: M.linalg.householder_product(a, t), [A, tau], (0, 1))
    q = np.linalg.qr(R.standard_normal((4, 4)), mode="raw")  # numpy's Householder form, transposed
    _run(lambda M, a, t: M.linalg.householder_product(a, t), [q[0].T.copy(), q[1]])


def test_ldl_matches_torch():
    S = R.standard_normal((2, 4, 4))
    S = S + np.swapaxes(S, -1, -2)
    B = R.standard_normal((2, 4, 2))
    _run(lambda M, a: M.linalg.ldl_factor(a), [S])
    _run(lambda M, a: M.linalg.ldl_factor_ex(a), [S])
    _run(lambda M, a, b: M.linalg.ldl_solve(*M.linalg.ldl_factor(a), b), [S, B])
    x = tg.linalg.ldl_solve(*tg.linalg.ldl_factor(tg.tensor(S)), tg.tensor(B))
    np.testing.assert_allclose(S @ x.numpy(), B, atol=1e-10)


_EMPTY_BATCH = {
    "lu_factor": lambda M: M.linalg.lu_factor(M.zeros(0, 3, 5)), "lu_factor_ex": lambda M: M.linalg.lu_factor_ex(M.zeros(0, 3, 5)),
    "lu": lambda M: M.linalg.lu(M.zeros(0, 3, 5)), "qr": lambda M: M.linalg.qr(M.zeros(0, 5, 2)),
    "qr_0": lambda M: M.linalg.qr(M.zeros(0, 5, 0)), "eigh": lambda M: M.linalg.eigh(M.zeros(0, 5, 5)),
    "svd": lambda M: M.linalg.svd(M.zeros(0, 5, 2)), "svdvals": lambda M: (M.linalg.svdvals(M.zeros(0, 5, 0)),),
    "eig": lambda M: M.linalg.eig(M.zeros(0, 5, 5)), "eigvals": lambda M: (M.linalg.eigvals(M.zeros(0, 0, 0)),),
    "ldl_factor": lambda M: M.linalg.ldl_factor(M.zeros(0, 2, 2)),
    "ldl_factor_ex": lambda M: M.linalg.ldl_factor_ex(M.eye(3)),  # its info: 0-d for one matrix
    "ldl_solve_0x0": lambda M: (M.linalg.ldl_solve(M.zeros(0, 0), M.zeros(0, dtype=M.int32), M.zeros(0, 5)),),
    "ldl_solve_batch": lambda M: (M.linalg.ldl_solve(*M.linalg.ldl_factor(M.zeros(0, 2, 2)), M.zeros(0, 2, 3)),),
}


@pytest.mark.parametrize("name", sorted(_EMPTY_BATCH))
def test_decompositions_of_empty_batches_and_their_shapes_match_torch(name):
    # op_db's samples of shape (0, m, n) raised (numpy's reshape to -1 of an empty batch, an
    # IndexError in the batching loop); ldl_solve of a 0x0 system aborted the process in sytrs
    want, got = _EMPTY_BATCH[name](torch), _EMPTY_BATCH[name](tg)
    assert [(tuple(o.shape), str(o.dtype).split(".")[-1]) for o in got] == \
        [(tuple(o.shape), str(o.dtype).split(".")[-1]) for o in want]


def test_linalg_functions_take_out_as_torch():
    """torch.linalg.*(..., out=...) (gpytorch calls cholesky_ex(A, out=out) with out=None too)."""
    names = [n for n in dir(torch.linalg) if not n.startswith("_") and callable(getattr(torch.linalg, n))
             and "out (" in (getattr(torch.linalg, n).__doc__ or "")]
    assert len(names) > 30
    for n in names:
        assert "out" in str(__import__("inspect").signature(getattr(tg.linalg, n), follow_wrapped=False)), n
    A = np.array([[4.0, 1.0], [1.0, 3.0]])
    for M in (tg, torch):
        a = M.tensor(A)
        o = M.empty(2, 2, dtype=M.float64)
        assert M.linalg.cholesky(a, out=o) is o
        Lo, info = M.empty(2, 2, dtype=M.float64), M.empty((), dtype=M.int32)
        res = M.linalg.cholesky_ex(a, out=(Lo, info))
        assert res.L is Lo and res.info is info and info.item() == 0
        assert M.linalg.cholesky_ex(a, out=None).info.item() == 0
        U, S, Vh = (M.empty(2, 2, dtype=M.float64), M.empty(2, dtype=M.float64), M.empty(2, 2, dtype=M.float64))
        M.linalg.svd(a, out=(U, S, Vh))
        np.testing.assert_allclose(S.numpy(), np.linalg.svd(A)[1])
    with pytest.raises(RuntimeError, match="automatic differentiation"):
        tg.linalg.inv(tg.tensor(A, requires_grad=True), out=tg.empty(2, 2, dtype=tg.float64))
