"""``tapegrad.linalg``: PyTorch's ``torch.linalg`` namespace, over ``tapegrad.ops.linalg``.

Everything is batched over leading dims and differentiable.

>>> A = tapegrad.randn(3, 3, dtype=tapegrad.float64)
>>> x = tapegrad.linalg.solve(A @ A.mT + tapegrad.eye(3, dtype=tapegrad.float64), tapegrad.ones(3, dtype=tapegrad.float64))
>>> tapegrad.linalg.norm(x), tapegrad.linalg.matrix_norm(A, "nuc")
"""
import collections
import functools

import numpy as np
import scipy.linalg as _sla

from .ops.linalg import (LinAlgError, cholesky, cholesky_ex, eig, eigh, eigvals, eigvalsh, inv, inv_ex, lstsq,  # noqa: F401
                         matrix_exp, matrix_norm, matrix_power, matrix_rank, multi_dot, pinv, qr, slogdet, solve,
                         solve_ex, svd, svdvals, vecdot, vector_norm)
from .ops.linalg import _batched, _check_matrix, _lu_perm
from .ops.linalg import lu_factor_packed as _lu_factor_packed, lu_pivots as _lu_pivots
from .ops.shape import cat as _cat, tril as _tril, triu as _triu
from .ops.surface import _write_out
from .tensor import Tensor as _Tensor
# torch.linalg's forms of names that mean something else at the top level (tapegrad.norm, .det, ...)
from .ops.linalg import linalg_cross as cross, linalg_det as det, linalg_diagonal as diagonal  # noqa: F401
from .ops.linalg import linalg_norm as norm  # noqa: F401
from .ops.matmul import bmm, matmul, mm  # noqa: F401  (what tapegrad.linalg held before)

__all__ = ["LinAlgError", "cholesky", "cholesky_ex", "cond", "cross", "det", "diagonal", "eig", "eigh", "eigvals", "eigvalsh",
           "householder_product", "inv", "inv_ex", "ldl_factor", "ldl_factor_ex", "ldl_solve", "lstsq", "lu",
           "lu_factor", "lu_factor_ex", "lu_solve", "matmul", "matrix_exp", "matrix_norm", "matrix_power",
           "matrix_rank", "multi_dot", "norm", "pinv", "qr", "slogdet", "solve", "solve_ex", "solve_triangular", "svd",
           "svdvals", "tensorinv", "tensorsolve", "vander", "vecdot", "vector_norm"]


# ---------------------------------------------------------------- LU, triangular and tensor solves
_LUFactor = collections.namedtuple("linalg_lu_factor", ["LU", "pivots"])
_LUFactorEx = collections.namedtuple("linalg_lu_factor_ex", ["LU", "pivots", "info"])
_LU = collections.namedtuple("linalg_lu", ["P", "L", "U"])
_LDLFactor = collections.namedtuple("linalg_ldl_factor", ["LD", "pivots"])
_LDLFactorEx = collections.namedtuple("linalg_ldl_factor_ex", ["LD", "pivots", "info"])


def _wrap(a):
    a = np.asarray(a)  # (np.ascontiguousarray would make a 0-d array 1-d)
    return _Tensor._wrap(a if a.flags.c_contiguous else np.ascontiguousarray(a))


def _no_pivot(pivot, name):
    if not pivot:
        raise RuntimeError(f"{name}: LU without pivoting is not implemented on the CPU")


def lu_factor_ex(A, *, pivot=True, check_errors=False):
    """``(LU, pivots, info)``: the packed LU factorisation ``A = P L U`` (L unit lower, U upper, in
    one matrix), LAPACK's 1-based int32 row swaps, and per matrix 0 or the 1-based index of the
    first zero on U's diagonal. Differentiable in ``LU`` for square ``A``."""
    _check_matrix(A, "linalg.lu_factor_ex")
    _no_pivot(pivot, "linalg.lu_factor_ex")
    LU, _ = _lu_factor_packed(A)
    pivots, info = _lu_pivots(A)
    if check_errors and (info._data > 0).any():
        raise LinAlgError(f"linalg.lu_factor_ex: U[{int(info._data.max())},{int(info._data.max())}] is zero")
    return _LUFactorEx(LU, pivots, info)


def lu_factor(A, *, pivot=True):
    """``(LU, pivots)`` of :func:`lu_factor_ex`, raising for a singular matrix as PyTorch does.

    >>> LU, pivots = tapegrad.linalg.lu_factor(A)
    >>> x = tapegrad.linalg.lu_solve(LU, pivots, b)
    """
    _check_matrix(A, "linalg.lu_factor")
    _no_pivot(pivot, "linalg.lu_factor")
    LU, pivots, info = lu_factor_ex(A)
    bad = info._data[info._data > 0]
    if bad.size:
        raise RuntimeError(f"torch.linalg.lu_factor: U[{bad.flat[0]},{bad.flat[0]}] is zero and using it on lu_solve "
                           f"would result in a division by zero. If you still want to perform the factorization, "
                           f"consider calling linalg.lu(A, pivot) or linalg.lu_factor_ex(A, pivot)")
    return _LUFactor(LU, pivots)


def _split_lu(LU):
    m, n = LU.shape[-2], LU.shape[-1]
    k = min(m, n)
    L = _tril(LU, -1)[..., :, :k] + _wrap(np.eye(m, k, dtype=LU._data.dtype))
    U = _triu(LU)[..., :k, :]
    return L, U


def lu(A, *, pivot=True):
    """``(P, L, U)`` with ``A = P @ L @ U``: P a permutation, L unit lower triangular (m, k), U
    upper triangular (k, n), k = min(m, n); differentiable for square A."""
    _check_matrix(A, "linalg.lu")
    _no_pivot(pivot, "linalg.lu")
    LU, P = _lu_factor_packed(A)
    L, U = _split_lu(LU)
    return _LU(P.detach(), L, U)


def _perm_from_pivots(pivots, m, dtype):
    piv = pivots._data
    P = np.zeros(piv.shape[:-1] + (m, m), dtype)
    for i in np.ndindex(*piv.shape[:-1]):
        P[i] = _lu_perm(piv[i], m)
    return _wrap(P)


def lu_solve(LU, pivots, B, *, left=True, adjoint=False):
    """The solution X of ``A X = B`` (``adjoint``: ``A^T X = B``; ``left=False``: ``X A = B``) from
    A's :func:`lu_factor`; differentiable in ``LU`` and ``B``."""
    _check_matrix(LU, "linalg.lu_solve", square=True)
    if not left:
        return lu_solve(LU, pivots, B.mT, adjoint=not adjoint).mT
    n = LU.shape[-1]
    if B.ndim < 2 or B.shape[-2] != n:
        raise RuntimeError(f"linalg.lu_solve: Incompatible shapes of A and B for the equation AX = B "
                           f"({tuple(LU.shape)} and {tuple(B.shape)})")
    P = _perm_from_pivots(pivots, n, LU._data.dtype)
    L, U = _split_lu(LU)
    if adjoint:
        return matmul(P, solve(L.mT, solve(U.mT, B)))
    return solve(U, solve(L, matmul(P.mT, B)))


def solve_triangular(A, B, *, upper, left=True, unitriangular=False):
    """The solution X of ``A X = B`` (``left=False``: ``X A = B``) reading only the ``upper`` or
    lower triangle of A (its diagonal taken as ones if ``unitriangular``), batched; the gradient
    reaches that triangle only, as in PyTorch."""
    _check_matrix(A, "linalg.solve_triangular", square=True)
    if B.ndim < 2:
        raise RuntimeError(f"linalg.solve_triangular: The input tensor B must have at least 2 dimensions (got "
                           f"shape {tuple(B.shape)})")
    if not left:
        return solve_triangular(A.mT, B.mT, upper=not upper, unitriangular=unitriangular).mT
    T = _triu(A, 1 if unitriangular else 0) if upper else _tril(A, -1 if unitriangular else 0)
    if unitriangular:
        T = T + _wrap(np.eye(A.shape[-1], dtype=A._data.dtype))
    if B.shape[-2] != A.shape[-1]:
        raise RuntimeError(f"linalg.solve_triangular: Incompatible shapes of A and B for the equation AX = B "
                           f"({tuple(A.shape)} and {tuple(B.shape)})")
    return solve(T, B)


def vander(x, *, N=None):
    """The Vandermonde matrix ``[1, x, x**2, ..., x**(N-1)]`` along a new last dim (N = len(x) by
    default), built by cumulative products so that its gradient is finite at x = 0."""
    if x.ndim < 1:  # PyTorch reads a 0-d x as one value
        x = x.reshape(1)
    n = x.shape[-1] if N is None else int(N)
    if n < 0:
        raise RuntimeError(f"linalg.vander: N must be non-negative, got {n}")
    ones = x.unsqueeze(-1) * 0 + 1
    if n <= 1:
        return ones[..., :n]
    powers = x.unsqueeze(-1).expand(*x.shape, n - 1).cumprod(-1)
    return _cat([ones, powers], -1)


def tensorinv(A, ind=2):
    """The tensor T with ``tensordot(T, A, ind)`` the identity: A reshaped to a square matrix
    (the first ``ind`` dims against the rest), inverted and reshaped back."""
    if ind <= 0:
        raise RuntimeError(f"linalg.tensorinv: Expected a strictly positive integer for 'ind', but got {ind}")
    rows = int(np.prod(A.shape[:ind]))
    cols = int(np.prod(A.shape[ind:]))
    if rows != cols:
        raise RuntimeError(f"linalg.tensorinv: Expected self to satisfy the requirement prod(self.shape[ind:]) == "
                           f"prod(self.shape[:ind]), but got {cols} != {rows}")
    return inv(A.reshape(rows, cols)).reshape(tuple(A.shape[ind:]) + tuple(A.shape[:ind]))


def tensorsolve(A, B, dims=None):
    """The tensor X with ``tensordot(A, X, X.ndim) == B``; ``dims`` moves those dims of A to the end first."""
    if dims is not None:
        dims = [d % A.ndim for d in dims]
        A = A.permute(*[d for d in range(A.ndim) if d not in dims], *dims)
    rows = int(np.prod(B.shape))
    x_shape = tuple(A.shape[B.ndim:])
    cols = int(np.prod(x_shape))
    if int(np.prod(A.shape[:B.ndim])) != rows or rows != cols:  # PyTorch compares the products only
        raise RuntimeError(f"linalg.tensorsolve: Expected self to satisfy the requirement prod(self.shape[other.ndim:]) "
                           f"== prod(self.shape[:other.ndim]) == other.numel(), but got {cols}, "
                           f"{int(np.prod(A.shape[:B.ndim]))} and {rows} (A {tuple(A.shape)}, B {tuple(B.shape)})")
    return solve(A.reshape(rows, cols), B.reshape(rows)).reshape(x_shape)


def cond(A, p=None):
    """The condition number of A in the norm ``p``: ``sigma_max / sigma_min`` for p None/2 (any
    shape; -2 the inverse), ``norm(A, p) * norm(inv(A), p)`` for 'fro', 'nuc', inf, -inf, 1, -1."""
    _check_matrix(A, "linalg.cond")
    if p in (None, 2, -2):
        S = svdvals(A)
        ratio = S[..., 0] / S[..., -1]
        return ratio if p != -2 else 1 / ratio
    if A.shape[-1] != A.shape[-2]:
        raise RuntimeError(f"linalg.cond(ord={p}): A must be batches of square matrices, but they are "
                           f"{A.shape[-2]} by {A.shape[-1]} matrices")
    if p not in ("fro", "nuc", np.inf, -np.inf, 1, -1):
        raise RuntimeError(f"linalg.cond got an invalid norm type: {p}")
    try:
        Ainv = inv(A)
    except LinAlgError:
        return _wrap(np.full(A.shape[:-2], np.inf, A._data.dtype))
    return matrix_norm(A, p) * matrix_norm(Ainv, p)


def householder_product(A, tau):
    """The first n columns of the product of the reflectors ``H_i = I - tau_i v_i v_i^T`` (i = 1 to k), ``v_i`` the
    i-th column of A below the diagonal with a 1 on it (LAPACK's orgqr; QR's Householder form);
    differentiable in both."""
    _check_matrix(A, "linalg.householder_product")
    m, n = A.shape[-2], A.shape[-1]
    k = tau.shape[-1]
    if n > m or k > n:
        raise RuntimeError(f"linalg.householder_product: expected A (m, n) with m >= n >= k, got A "
                           f"{tuple(A.shape)} and tau {tuple(tau.shape)}")
    dt = A._data.dtype
    Q = _wrap(np.broadcast_to(np.eye(m, n, dtype=dt), tuple(A.shape[:-2]) + (m, n)).copy())
    below = _tril(A, -1) + _wrap(np.eye(m, n, dtype=dt))
    for i in reversed(range(k)):  # Q = H_i Q, from the last reflector back
        v = below[..., :, i:i + 1]
        Q = Q - tau[..., i:i + 1].unsqueeze(-1) * matmul(v, matmul(v.mT, Q))
    return Q


def _ldl_one(a, hermitian):
    fn = _sla.lapack.get_lapack_funcs("sytrf", (a,))
    ld, piv, info = fn(a, lower=1)
    return np.tril(ld), piv.astype(np.int32), np.asarray(info, np.int32)


def ldl_factor_ex(A, *, hermitian=False, check_errors=False):
    """``(LD, pivots, info)``: LAPACK's sytrf (Bunch-Kaufman) factorisation of the symmetric A
    (lower triangle read) in its compact form, as PyTorch returns it; not differentiable (PyTorch
    has no derivative for it either)."""
    _check_matrix(A, "linalg.ldl_factor_ex", square=True)
    ld, piv, info = _batched(lambda a: _ldl_one(a, hermitian), np.ascontiguousarray(A._data))
    if check_errors and (info > 0).any():
        raise LinAlgError(f"linalg.ldl_factor_ex: The factorization could not be completed because the input is "
                          f"not invertible (info {int(info.max())})")
    return _LDLFactorEx(_wrap(ld.astype(A._data.dtype)), _wrap(piv), _wrap(info))


def ldl_factor(A, *, hermitian=False):
    """``(LD, pivots)`` of :func:`ldl_factor_ex`, for :func:`ldl_solve`."""
    LD, pivots, info = ldl_factor_ex(A, hermitian=hermitian)
    return _LDLFactor(LD, pivots)


def ldl_solve(LD, pivots, B, *, hermitian=False):
    """The solution X of ``A X = B`` from A's :func:`ldl_factor` (LAPACK's sytrs); not differentiable."""
    _check_matrix(LD, "linalg.ldl_solve", square=True)
    if B.ndim < 2 or B.shape[-2] != LD.shape[-1]:
        raise RuntimeError(f"linalg.ldl_solve: Incompatible shapes of A and B for the equation AX = B "
                           f"({tuple(LD.shape)} and {tuple(B.shape)})")

    def one(ld, piv, b):
        x, info = _sla.lapack.get_lapack_funcs("sytrs", (ld,))(ld, piv, b, lower=1)
        return x
    batch = np.broadcast_shapes(tuple(LD.shape[:-2]), tuple(B.shape[:-2]))
    ld = np.broadcast_to(LD._data, batch + tuple(LD.shape[-2:]))
    piv = np.broadcast_to(pivots._data, batch + tuple(pivots.shape[-1:]))
    b = np.broadcast_to(B._data.astype(LD._data.dtype), batch + tuple(B.shape[-2:]))
    if b.size == 0:  # nothing to solve (and scipy's sytrs corrupts the heap on a 0x0 matrix)
        return _wrap(np.zeros(b.shape, b.dtype))
    return _wrap(_batched(one, np.ascontiguousarray(ld), np.ascontiguousarray(piv), np.ascontiguousarray(b)))


# ---------------------------------------------------------------- out=, as PyTorch's torch.linalg functions take it
def _with_out(fn, name):
    @functools.wraps(fn)
    def with_out(*args, out=None, **kwargs):
        result = fn(*args, **kwargs)
        return result if out is None else _write_out(out, result, name)
    return with_out


for _name in ("cholesky", "cholesky_ex", "cond", "cross", "det", "eig", "eigh", "eigvals", "eigvalsh",
              "householder_product", "inv", "inv_ex", "ldl_factor", "ldl_factor_ex", "ldl_solve", "lu", "lu_factor",
              "lu_factor_ex", "lu_solve", "matmul", "matrix_norm", "matrix_power", "matrix_rank", "multi_dot", "norm",
              "pinv", "qr", "slogdet", "solve", "solve_ex", "solve_triangular", "svd", "svdvals", "tensorinv",
              "tensorsolve", "vecdot", "vector_norm"):
    globals()[_name] = _with_out(globals()[_name], "linalg." + _name)
