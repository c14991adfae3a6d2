"""torch's top-level linear algebra from before ``torch.linalg``, with its old signatures and
results: ``cholesky(upper=)``, ``qr(some=)``, ``svd(some=, compute_uv=)`` (returning ``V``,
not ``Vh``), ``cholesky_solve``, ``cholesky_inverse``, ``triangular_solve`` (solution and the
triangle used), ``frobenius_norm``, ``nuclear_norm``. Each is written over ``ops.linalg``, so it
is batched and differentiable as those are. PyTorch deprecates most of them; scripts still
call them.
"""
from __future__ import annotations

import collections

import numpy as np

from . import linalg as _la
from .shape import tril, triu
from .surface import public

Tensor = None  # the Tensor class, bound by tensor.py (ops.bind_tensor): the ops sit below it

_SVD = collections.namedtuple("svd", ["U", "S", "V"])
_QR = collections.namedtuple("qr", ["Q", "R"])
_TriangularSolve = collections.namedtuple("triangular_solve", ["solution", "cloned_coefficient"])


@public(method=True, out=True)
def cholesky(input, upper=False):
    """The Cholesky factor of a symmetric positive-definite matrix (batch): lower ``L`` with
    ``A = L L^T``, or upper ``U = L^T`` with ``upper=True`` (``linalg.cholesky``'s old form)."""
    return _la.cholesky(input, upper=upper)


@public(method=True, out=True)
def cholesky_solve(B, L, upper=False):
    """``X`` with ``A X = B`` given ``A``'s Cholesky factor ``L`` (upper ``U`` with ``upper=True``)."""
    A = L.mT @ L if upper else L @ L.mT
    return _la.solve(A, B)


@public(method=True, out=True)
def cholesky_inverse(L, upper=False):
    """``A^{-1}`` given ``A``'s Cholesky factor ``L`` (upper ``U`` with ``upper=True``)."""
    return _la.inv(L.mT @ L if upper else L @ L.mT)


@public(method=True)
def qr(input, some=True):
    """``(Q, R)`` with ``input = Q R``: reduced when ``some`` (``linalg.qr``'s mode 'reduced'), complete otherwise."""
    Q, R = _la.qr(input, "reduced" if some else "complete")
    return _QR(Q, R)


@public(method=True, out=True)
def svd(input, some=True, compute_uv=True):
    """``(U, S, V)`` with ``input = U diag(S) V^T``: note ``V``, where ``linalg.svd`` returns
    ``Vh = V^T``; reduced when ``some``. ``compute_uv=False`` returns zero-filled ``U`` and ``V``,
    as PyTorch does."""
    U, S, Vh = _la.svd(input, full_matrices=not some)
    if not compute_uv:
        return _SVD(U.detach() * 0, S, Vh.mT.detach() * 0)
    return _SVD(U, S, Vh.mT)


@public(method=True, out=True)
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


@public
def svd_lowrank(A, q=6, niter=2, M=None):
    """``(U, S, V)`` of rank ``q`` (at most ``min(m, n)``) with ``A - M ~ U diag(S) V^T``.
    PyTorch approximates the leading singular triplets by randomized subspace iteration
    (``niter`` rounds); tapegrad computes them exactly (the truncated SVD, which the randomized
    one converges to), so results are deterministic and differentiable as ``linalg.svd``'s."""
    X = A if M is None else A - M
    _check_rank(q, X, "svd_lowrank", clip=True)
    k = min(6 if q is None else int(q), X.shape[-2], X.shape[-1])
    U, S, Vh = _la.svd(X, full_matrices=False)
    return _SVD(U[..., :k], S[..., :k], Vh[..., :k, :].mT)


@public
def pca_lowrank(A, q=None, center=True, niter=2):
    """The principal components of the rows of ``A`` (observations): ``svd_lowrank`` of ``A``
    with its column means subtracted when ``center``; ``q`` defaults to ``min(6, m, n)``."""
    X = A - A.mean(-2, keepdim=True) if center else A
    _check_rank(q, X, "pca_lowrank", clip=False)
    return svd_lowrank(X, 6 if q is None else q)


def _check_rank(q, X, opname, clip):
    """PyTorch refuses a negative ``q`` (and, in pca_lowrank, one above ``min(m, n)``); slicing
    with it would silently drop singular triplets from the end instead."""
    if q is None:
        return
    top = min(X.shape[-2], X.shape[-1])
    if not isinstance(q, (int, np.integer)) or q < 0 or (not clip and q > top):
        raise ValueError(f"{opname}: q(={q!r}) must be non-negative integer"
                         + ("" if clip else f" and not greater than min(m, n)={top}") + f" (input shape {tuple(X.shape)})")


@public
def lobpcg(A, k=None, B=None, X=None, n=None, iK=None, niter=None, tol=None, largest=None, method=None,
           tracker=None, ortho_iparams=None, ortho_fparams=None, ortho_bparams=None):
    """``(E, X)``: the ``k`` largest (or smallest, ``largest=False``) eigenpairs of the symmetric
    problem ``A x = E B x`` (``B`` symmetric positive definite, identity by default). PyTorch
    iterates LOBPCG from ``X``; tapegrad solves the problem exactly with ``linalg.eigh`` (through
    ``B``'s Cholesky factor), which LOBPCG converges to, so the iteration controls (``niter``,
    ``tol``, ``iK``, ``method``, ...) have nothing to change. ``k`` defaults to ``X``'s columns, or 1."""
    if k is None:
        k = X.shape[-1] if X is not None else 1
    if not 0 < k <= A.shape[-1]:
        raise ValueError(f"lobpcg: k ({k}) must be between 1 and the matrix size ({A.shape[-1]})")
    if 3 * k > A.shape[-1] and X is None:
        # PyTorch's LOBPCG needs the matrix at least three times wider than the eigenpairs sought
        raise ValueError(f"lobpcg: A size ({A.shape[-1]}) must be >= 3 * k ({3 * k}) (as PyTorch's)")
    if B is None:
        E, V = _la.eigh(A)
    else:
        L = _la.cholesky(B)
        Li = _la.inv(L)
        E, W = _la.eigh(Li @ A @ Li.mT)
        V = Li.mT @ W
    if largest is None or largest:
        return E[..., -k:].flip(-1), V[..., -k:].flip(-1)
    return E[..., :k], V[..., :k]
