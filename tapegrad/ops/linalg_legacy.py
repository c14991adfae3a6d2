"""torch's top-level linear algebra from before ``torch.linalg``, with its old signatures and
results: ``cholesky(upper=)``, ``qr(some=)``, ``svd(some=, compute_uv=)`` (returning ``V``,
not ``Vh``), ``cholesky_solve``, ``cholesky_inverse``, ``triangular_solve`` (solution and the
triangle used), ``frobenius_norm``, ``nuclear_norm``. Each is written over ``ops.linalg``, so it
is batched and differentiable as those are. PyTorch deprecates most of them; scripts still
call them.
"""
from __future__ import annotations

import collections

from . import linalg as _la
from .shape import tril, triu
from .surface import public

Tensor = None  # the Tensor class, bound by tensor.py (ops.bind_tensor): the ops sit below it

_SVD = collections.namedtuple("svd", ["U", "S", "V"])
_QR = collections.namedtuple("qr", ["Q", "R"])
_TriangularSolve = collections.namedtuple("triangular_solve", ["solution", "cloned_coefficient"])


@public(method=True)
def cholesky(input, upper=False):
    """The Cholesky factor of a symmetric positive-definite matrix (batch): lower ``L`` with
    ``A = L L^T``, or upper ``U = L^T`` with ``upper=True`` (``linalg.cholesky``'s old form)."""
    return _la.cholesky(input, upper=upper)


@public(method=True)
def cholesky_solve(B, L, upper=False):
    """``X`` with ``A X = B`` given ``A``'s Cholesky factor ``L`` (upper ``U`` with ``upper=True``)."""
    A = L.mT @ L if upper else L @ L.mT
    return _la.solve(A, B)


@public(method=True)
def cholesky_inverse(L, upper=False):
    """``A^{-1}`` given ``A``'s Cholesky factor ``L`` (upper ``U`` with ``upper=True``)."""
    return _la.inv(L.mT @ L if upper else L @ L.mT)


@public(method=True)
def qr(input, some=True):
    """``(Q, R)`` with ``input = Q R``: reduced when ``some`` (``linalg.qr``'s mode 'reduced'), complete otherwise."""
    Q, R = _la.qr(input, "reduced" if some else "complete")
    return _QR(Q, R)


@public(method=True)
def svd(input, some=True, compute_uv=True):
    """``(U, S, V)`` with ``input = U diag(S) V^T``: note ``V``, where ``linalg.svd`` returns
    ``Vh = V^T``; reduced when ``some``. ``compute_uv=False`` returns zero-filled ``U`` and ``V``,
    as PyTorch does."""
    U, S, Vh = _la.svd(input, full_matrices=not some)
    if not compute_uv:
        return _SVD(U.detach() * 0, S, Vh.mT.detach() * 0)
    return _SVD(U, S, Vh.mT)


@public(method=True)
def triangular_solve(b, A, upper=True, transpose=False, unitriangular=False):
    """``(X, A_copy)`` with ``op(T) X = b``, where ``T`` is ``A``'s upper (or lower) triangle, with
    a unit diagonal when ``unitriangular``, and ``op`` transposes it when ``transpose``; the
    second result is a copy of ``A``, as PyTorch's. (Note the order: ``b`` first, as in
    PyTorch's old API; ``linalg.solve_triangular`` takes ``A`` first.)"""
    T = triu(A) if upper else tril(A)
    if unitriangular:
        T = (triu(A, 1) if upper else tril(A, -1)) + _la._eye_like(A.shape[-1], A)
    return _TriangularSolve(_la.solve(T.mT if transpose else T, b), A.clone())


@public
def frobenius_norm(input, dim, keepdim=False):
    """The Frobenius norm over ``dim`` (one or two dims, required as in PyTorch): the root of the sum of squares."""
    return _la.vector_norm(input, 2, dim, keepdim)


@public
def nuclear_norm(input, dim=None, keepdim=False):
    """The nuclear norm (sum of singular values) of the matrices in ``dim`` (the last two by default)."""
    return _la.matrix_norm(input, "nuc", (-2, -1) if dim is None else dim, keepdim)
