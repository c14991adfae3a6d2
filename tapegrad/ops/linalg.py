"""Linear algebra (what ``tapegrad.linalg`` exposes): decompositions (Cholesky, QR, SVD, eigh) with
their VJPs, ``solve``, ``inverse``/``det``/``slogdet``, ``pinv``, ``lstsq``, ``matrix_rank``,
vector and matrix norms, ``matrix_power``, ``multi_dot``, ``cross`` and the distances
(``cdist``, ``pdist``, ``dist``).

Functions whose ``torch.linalg`` signature differs from the top-level one carry a ``linalg_``
prefix here (``linalg_norm`` is ``tapegrad.linalg.norm``; ``norm`` is ``tapegrad.norm``).
"""
from __future__ import annotations

import builtins
import collections
import math

import numpy as np
import scipy.linalg as _sla

from .. import _C, _dtype
from .._tape.registry import apply, defop
from ._util import const, norm_dim, pair
from .comparison import ne
from .complex import conj_if_complex as _cj
from .pointwise import abs, log, where
from .shape import cat, diag_embed, diagonal, movedim, reshape, stack, tril, triu, unbind, unsqueeze
from .indexing import getitem
from .matmul import _vecdot, matmul, vecdot_takes
from .reduction import amax, amin, pnorm, sum
from .surface import public
from ._autocast import FP32, cast_inputs

Tensor = None  # the Tensor class, bound by tensor.py (ops.bind_tensor): the ops sit below it


class LinAlgError(RuntimeError):
    """A numerical failure (singular matrix, not positive-definite), as ``torch.linalg.LinAlgError``."""


def _check_matrix(x, opname, square=False, complex_ok=False):
    if not isinstance(x, Tensor):
        raise TypeError(f"{opname}: expected a Tensor, got {type(x).__name__}")
    if x.ndim < 2:
        raise RuntimeError(f"{opname}: The input tensor A must have at least 2 dimensions (got shape "
                           f"{tuple(x.shape)})")
    if square and x.shape[-1] != x.shape[-2]:
        raise RuntimeError(f"{opname}: A must be batches of square matrices, but they are {x.shape[-2]} by "
                           f"{x.shape[-1]} matrices (shape {tuple(x.shape)})")
    if complex_ok and x._data.dtype.kind == "c":
        return
    if x._data.dtype.kind != "f" or x._data.dtype == np.float16:
        # (complex matrices: only the ops whose gradients conjugate take them, complex_ok)
        raise RuntimeError(f"{opname}: Expected a floating point tensor as input (float32 or float64), got "
                           f"{x._data.dtype}")


def _cast(fn):
    """numpy.linalg computes float32 in float32 but returns float64 for some routines: keep the dtype."""
    def fwd(x, *rest, **kw):
        outs = fn(x, *rest, **kw)
        if isinstance(outs, tuple):
            return tuple(np.asarray(o, dtype=x.dtype) for o in outs)
        return np.asarray(outs, dtype=x.dtype)
    return fwd


# ---------------------------------------------------------------- packing several outputs
def _pack_fwd(fn):
    def fwd(x, shapes, **kw):
        outs = fn(x, **kw)
        batch = x.shape[:-2]
        # (each piece's size spelled out: -1 is ambiguous in an empty batch)
        return np.concatenate([np.broadcast_to(o, batch + s).reshape(batch + (int(np.prod(s)),)).astype(x.dtype,
                                                                                                  copy=False)
                               for o, s in zip(outs, shapes)], axis=-1)
    return fwd


def _unpack(t, shapes):
    """The packed tensor's pieces, each reshaped to ``batch + shape`` (differentiable slices)."""
    batch = tuple(t.shape[:-1])
    pieces, start = [], 0
    for s in shapes:
        n = int(np.prod(s))
        pieces.append(t[..., start:start + n].reshape(batch + tuple(s)))
        start += n
    return tuple(pieces)


def _packed(name, fwd, vjp, saves=()):
    """Declare a one-input op whose forward returns several arrays; ``vjp(gs, outs, x, **attrs)``."""
    return defop(name, _pack_fwd(fwd),
                 lambda g, out, x, shapes, **kw: vjp(_unpack(g, shapes), _unpack(out, shapes), x, **kw),
                 saves_output=True, saves=saves)


def _eye_like(n, t):
    return Tensor._wrap(np.eye(n, dtype=t._data.dtype))


# ---------------------------------------------------------------- solve
def _solve_fwd(a, b):
    try:
        return np.linalg.solve(a, b)
    except np.linalg.LinAlgError:
        raise LinAlgError(f"linalg.solve: The solver failed because the input matrix A (shape {a.shape}) is "
                          f"singular.") from None


# X = A^-1 B:  gB = A^-H g,  gA = -gB X^H
_solve = defop("linalg_solve", _cast(_solve_fwd),
               lambda g, out, a, b: -matmul(solve(a.mH, g), out.mH),
               lambda g, out, a, b: solve(a.mH, g), saves_output=True, saves=(0,))


@cast_inputs(FP32)
def solve(A, B, *, left=True):
    """The solution X of ``A @ X = B`` (``left=False``: ``X @ A = B``), batched; B may be a (batch of) vector(s).

    >>> tapegrad.linalg.solve(A, b)         # A (n, n), b (n,) -> (n,)
    """
    _check_matrix(A, "linalg.solve", square=True, complex_ok=True)
    if not isinstance(B, Tensor):
        raise TypeError(f"linalg.solve: expected B to be a Tensor, got {type(B).__name__}")
    if B._data.dtype != A._data.dtype:
        raise RuntimeError(f"linalg.solve: Expected A and B to have the same dtype, but found A of type "
                           f"{A._data.dtype} and B of type {B._data.dtype} instead")
    if not left:
        return solve(A.mT, B.mT).mT
    n = A.shape[-1]
    vector = B.ndim == 1 or (B.ndim == A.ndim - 1 and tuple(B.shape) == tuple(A.shape[:-1]))
    Bm = B.unsqueeze(-1) if vector else B
    if Bm.ndim < 2 or Bm.shape[-2] != n:
        raise RuntimeError(f"linalg.solve: Incompatible shapes of A and B for the equation AX = B "
                           f"({tuple(A.shape)} and {tuple(B.shape)})")
    try:
        np.broadcast_shapes(tuple(A.shape[:-2]), tuple(Bm.shape[:-2]))
    except ValueError:
        raise RuntimeError(f"linalg.solve: batch dimensions of A {tuple(A.shape)} and B {tuple(B.shape)} "
                           f"do not broadcast") from None
    X = apply(_solve, A, Bm)
    return X.squeeze(-1) if vector else X


# ---------------------------------------------------------------- slogdet
def _slogdet_fwd(x):
    sign, logabs = np.linalg.slogdet(x)
    return np.asarray(logabs, dtype=x.dtype)


# d log|det A| / dA = A^-T
_slogdet = defop("slogdet", _slogdet_fwd, lambda g, out, x: g[..., None, None] * inverse(x).mT)


@public(method=True)
def slogdet(A):
    """``(sign, logabsdet)`` of each square matrix: ``det(A) = sign * exp(logabsdet)``."""
    _check_matrix(A, "linalg.slogdet", square=True)
    logabs = apply(_slogdet, A)
    sign = _in_graph(const(np.linalg.slogdet(A._data)[0], A.dtype), logabs)  # requires grad, as PyTorch's
    return _SlogdetResult(sign, logabs)


def _in_graph(value, like):
    """The constant ``value`` recorded as a function of ``like`` (of its shape) with a zero gradient:
    PyTorch's piecewise-constant results (slogdet's sign, ``matrix_power(A, 0)``) require grad."""
    return where(const(np.ones(like.shape, bool), bool), value, like)


@public(method=True)
def logdet(input):
    """``log(det(A))``: nan for a negative determinant, -inf for a singular matrix (as PyTorch)."""
    sign, logabs = slogdet(input)
    return log(sign) + logabs


# ---------------------------------------------------------------- cholesky
def _cholesky_fwd(x, upper):
    try:
        L = np.linalg.cholesky(x)
    except np.linalg.LinAlgError:
        raise LinAlgError(f"linalg.cholesky: The factorization could not be completed because the input "
                          f"(shape {x.shape}) is not positive-definite.") from None
    return np.swapaxes(L, -1, -2).copy() if upper else L


def _cholesky_vjp(g, L, upper):
    """gA = L^-T phi(L^T gL) L^-1, with phi taking the lower triangle (half diagonal), symmetrised."""
    if upper:
        L, g = L.mT, g.mT
    P = tril(matmul(L.mT, g))
    P = 0.5 * (P + tril(P, -1).mT)
    Linv = inverse(L)
    return matmul(matmul(Linv.mT, P), Linv)


_cholesky = defop("cholesky", _cast(_cholesky_fwd), lambda g, out, x, upper: _cholesky_vjp(g, out, upper),
                  saves_output=True, saves=())


@cast_inputs(FP32)
def cholesky(A, *, upper=False):
    """The Cholesky factor L (``A = L @ L.mT``) of symmetric positive-definite matrices (reads A's
    lower triangle); ``upper=True`` gives ``L.mT``."""
    _check_matrix(A, "linalg.cholesky", square=True)
    return apply(_cholesky, A, upper=bool(upper))


# ---------------------------------------------------------------- qr
def _copyltu(M):
    return tril(M) + tril(M, -1).mT


def _qr_square_vjp(gQ, gR, Q, R):
    """A = QR with R square (m >= n): gA = (gQ + Q copyltu(R gR^T - gQ^T Q)) R^-T."""
    M = matmul(R, gR.mT) - matmul(gQ.mT, Q)
    b = gQ + matmul(Q, _copyltu(M))
    return solve(R, b.mT).mT


def _qr_vjp(gs, outs, x, mode):
    (gQ, gR), (Q, R) = gs, outs
    m, n = x.shape[-2], x.shape[-1]
    if mode == "complete" and m > n:  # as PyTorch
        raise RuntimeError(f"The QR decomposition is not differentiable when mode='complete' and nrows > ncols "
                           f"(input of shape {tuple(x.shape)}): the extra columns of Q are not determined by A")
    if m >= n:
        return _qr_square_vjp(gQ, gR, Q, R)
    # wide: A = [X | Y] with X = Q U square, Y = Q V
    U, gU, gV = R[..., :m], gR[..., :m], gR[..., m:]
    Y = x[..., m:]
    gX = _qr_square_vjp(gQ + matmul(Y, gV.mT), gU, Q, U)
    return cat([gX, matmul(Q, gV)], -1)


_qr = _packed("qr", lambda x, mode: np.linalg.qr(x, mode=mode), _qr_vjp, saves=(0,))  # wide A: its extra columns


@cast_inputs(FP32)
def qr(A, mode="reduced"):
    """``(Q, R)`` with ``A = Q @ R``, Q orthonormal columns, R upper triangular; mode 'reduced'
    (k = min(m, n) columns), 'complete' (Q square) or 'r' (Q empty)."""
    _check_matrix(A, "linalg.qr")
    if mode not in ("reduced", "complete", "r"):
        raise RuntimeError(f"qr received unrecognized mode '{mode}' but expected one of 'reduced' (default), "
                           f"'r', or 'complete'")
    m, n = A.shape[-2], A.shape[-1]
    if mode == "r":  # R from the reduced factorisation, so that (unlike PyTorch) it has a gradient
        return _QRResult(Tensor._wrap(np.empty((0,), A._data.dtype)), qr(A).R)
    k = m if mode == "complete" else min(m, n)
    shapes = ((m, k), (k, n))
    return _QRResult(*_unpack(apply(_qr, A, shapes=shapes, mode=mode), shapes))


# ---------------------------------------------------------------- svd
def _svd_fwd(x, full_matrices):
    try:
        return np.linalg.svd(x, full_matrices=full_matrices)
    except np.linalg.LinAlgError:
        raise LinAlgError(f"linalg.svd: The algorithm failed to converge (input of shape {x.shape})") from None


def _skew(X):
    return X - X.mT


def _svd_vjp(gs, outs, x, full_matrices):
    """PyTorch's svd_backward for real matrices (the extra columns of full U/Vh get no gradient)."""
    (gU, gS, gVh), (U, S, Vh) = gs, outs
    m, n = x.shape[-2], x.shape[-1]
    k = min(m, n)
    if full_matrices:
        gU, U, gVh, Vh = gU[..., :k], U[..., :k], gVh[..., :k, :], Vh[..., :k, :]
    V, gV = Vh.mT, gVh.mT
    S2 = S * S
    E = S2.unsqueeze(-2) - S2.unsqueeze(-1) + _eye_like(k, S)  # E[j, i] = S_i^2 - S_j^2, 1 on the diagonal
    gA = (_skew(matmul(U.mT, gU)) * S.unsqueeze(-2) + S.unsqueeze(-1) * _skew(matmul(Vh, gV))) / E + diag_embed(gS)
    if m > n:
        gA = matmul(U, gA)
        gUSinv = gU / S.unsqueeze(-2)
        gA = gA + gUSinv - matmul(U, matmul(U.mT, gUSinv))
        return matmul(gA, Vh)
    if m < n:
        gA = matmul(gA, Vh)
        gVSinv = gV / S.unsqueeze(-2)
        gA = gA + gVSinv.mT - matmul(matmul(gVSinv.mT, V), Vh)
        return matmul(U, gA)
    return matmul(matmul(U, gA), Vh)


_svd = _packed("svd", _svd_fwd, _svd_vjp)


@cast_inputs(FP32)
def svd(A, full_matrices=True, *, driver=None):
    """``(U, S, Vh)`` with ``A = U @ diag(S) @ Vh``, S descending. Gradients need distinct singular
    values (and nonzero ones for the non-square parts), as in PyTorch."""
    _check_matrix(A, "linalg.svd")
    m, n = A.shape[-2], A.shape[-1]
    k = min(m, n)
    shapes = ((m, m), (k,), (n, n)) if full_matrices else ((m, k), (k,), (k, n))
    return _SVDResult(*_unpack(apply(_svd, A, shapes=shapes, full_matrices=bool(full_matrices)), shapes))


@cast_inputs(FP32)
def svdvals(A, *, driver=None):
    """The singular values of A, descending (the gradient is ``U @ diag(g) @ Vh``)."""
    return svd(A, full_matrices=False).S


# ---------------------------------------------------------------- eigh
def _eigh_vjp(gs, outs, x, UPLO):
    (gL, gV), (L, V) = gs, outs
    n = x.shape[-1]
    VhgV = matmul(V.mT, gV)
    VhgV = 0.5 * (VhgV - VhgV.mT)  # only the skew part moves V along its tangent space
    E = L.unsqueeze(-2) - L.unsqueeze(-1) + _eye_like(n, L)  # E[i, j] = L_j - L_i, 1 on the diagonal
    return matmul(matmul(V, VhgV / E + diag_embed(gL)), V.mT)


_eigh = _packed("eigh", lambda x, UPLO: np.linalg.eigh(x, UPLO=UPLO), _eigh_vjp)


@cast_inputs(FP32)
def eigh(A, UPLO="L"):
    """``(eigenvalues, eigenvectors)`` of symmetric matrices (reading the ``UPLO`` triangle),
    eigenvalues ascending. Gradients need distinct eigenvalues, as in PyTorch."""
    _check_matrix(A, "linalg.eigh", square=True)
    if UPLO not in ("L", "U"):
        raise RuntimeError(f"linalg.eigh: Expected UPLO argument to be 'L' or 'U', but got {UPLO}")
    n = A.shape[-1]
    shapes = ((n,), (n, n))
    return _EighResult(*_unpack(apply(_eigh, A, shapes=shapes, UPLO=UPLO), shapes))


@cast_inputs(FP32)
def eigvalsh(A, UPLO="L"):
    """The eigenvalues of symmetric matrices, ascending (the gradient is ``V @ diag(g) @ V.mT``)."""
    return eigh(A, UPLO).eigenvalues


# ---------------------------------------------------------------- eig (general matrices: complex results)
def _eig_fwd(x, shapes):
    try:
        L, V = np.linalg.eig(x)
    except np.linalg.LinAlgError as e:
        raise LinAlgError(f"linalg.eig: the algorithm failed to converge ({e}); input shape {x.shape}") from None
    cd = _dtype.complex_of(x.dtype)
    batch = x.shape[:-2]
    return np.concatenate([L.astype(cd, copy=False).reshape(batch + (L.shape[-1],)),
                           V.astype(cd, copy=False).reshape(batch + (V.shape[-1] * V.shape[-2],))], axis=-1)


def _eig_vjp(g, out, x, shapes):
    """PyTorch's linalg_eig_backward: with E[i, j] = conj(L_j - L_i),
    gA = V^-H (diag(gL) + offdiag((V^H gV - V^H V diag(Re diag(V^H gV))) / E)) V^H;
    a real A takes the real part (the engine)."""
    (gL, gV), (L, V) = _unpack(g, shapes), _unpack(out, shapes)
    Vh = V.mH
    VhgV = matmul(Vh, gV)
    diag = diagonal(VhgV, 0, -2, -1)
    if (abs(diag.imag)._data > 1e-2 * (1 + abs(diag)._data)).any():
        raise RuntimeError("linalg_eig_backward: The eigenvectors in the complex case are specified up to "
                           "multiplication by e^{i phi}. The specified loss function depends on this quantity, so "
                           "it is ill-defined.")
    VhgV = VhgV - matmul(Vh, V * diag.real.unsqueeze(-2))
    Lc = L.conj()
    n = L.shape[-1]
    E = Lc.unsqueeze(-2) - Lc.unsqueeze(-1) + _eye_like(n, Lc)
    gA = VhgV / E
    gA = gA - diag_embed(diagonal(gA, 0, -2, -1)) + diag_embed(gL)
    return solve(Vh, matmul(gA, Vh))


_eig = defop("linalg_eig", _eig_fwd, _eig_vjp, saves_output=True, saves=())
_EigResult = collections.namedtuple("eig", ["eigenvalues", "eigenvectors"])


def eig(A):
    """``(eigenvalues, eigenvectors)`` of general square matrices, both complex (complex64 for
    float32), eigenvectors of unit norm as LAPACK's geev gives them. Differentiable where the
    eigenvalues are distinct, for losses that do not depend on each eigenvector's phase (else
    RuntimeError, as PyTorch).

    >>> L, V = tapegrad.linalg.eig(tapegrad.tensor([[0.0, -1.0], [1.0, 0.0]]))   # L: [0+1j, 0-1j]
    """
    _check_matrix(A, "linalg.eig", square=True, complex_ok=True)
    n = A.shape[-1]
    shapes = ((n,), (n, n))
    return _EigResult(*_unpack(apply(_eig, A, shapes=shapes), shapes))


def eigvals(A):
    """The eigenvalues of general square matrices, complex (the gradient needs them distinct)."""
    return eig(A).eigenvalues


# ---------------------------------------------------------------- pinv
def _pinv_fwd(x, atol, rtol, hermitian):
    """V diag(1/S) U^T over the singular values above max(atol, rtol * S_max) (eigenvalues' |.|
    for ``hermitian``), as PyTorch."""
    if hermitian:
        L, V = np.linalg.eigh(x)
        S = np.abs(L)
        U, Vh = V * np.sign(np.where(L == 0, 1, L))[..., None, :], np.swapaxes(V, -1, -2)
    else:
        U, S, Vh = np.linalg.svd(x, full_matrices=False)
    smax = S.max(axis=-1, keepdims=True) if S.shape[-1] else np.zeros(S.shape[:-1] + (1,), S.dtype)
    tol = np.maximum(np.asarray(atol)[..., None], np.asarray(rtol)[..., None] * smax)
    keep = S > tol
    Sinv = np.where(keep, 1 / np.where(keep, S, 1), 0)
    return np.swapaxes(Vh, -1, -2) * Sinv[..., None, :] @ np.swapaxes(U, -1, -2)


def _pinv_vjp(g, P, A):
    """PyTorch's pinv_backward (the derivative of the pseudo-inverse at constant rank)."""
    m, n = A.shape[-2], A.shape[-1]
    Ph, gh = P.mT, g.mT
    if m <= n:
        K = matmul(gh, P)
        KPh = matmul(K, Ph)
        return -matmul(P, K).mT + KPh - matmul(matmul(A, P), KPh) + matmul(matmul(Ph, P), gh - matmul(K, A))
    K = matmul(P, gh)
    PhK = matmul(Ph, K)
    return -matmul(K, P).mT + matmul(matmul(gh - matmul(A, K), P), Ph) + PhK - matmul(matmul(PhK, P), A)


_pinv = defop("pinv", _cast(_pinv_fwd), lambda g, out, x, atol, rtol, hermitian: _pinv_vjp(g, out, x),
              saves_output=True)


def pinv(A, *, atol=None, rtol=None, hermitian=False):
    """The Moore-Penrose pseudo-inverse: singular values at or below ``max(atol, rtol * largest)``
    count as zero; ``rtol`` defaults to ``eps * max(m, n)`` unless ``atol`` > 0 is given."""
    _check_matrix(A, "linalg.pinv")
    atol = 0.0 if atol is None else (atol._data if isinstance(atol, Tensor) else np.asarray(atol))
    if rtol is None:
        rtol = 0.0 if np.any(np.asarray(atol) > 0) else np.finfo(A._data.dtype).eps * max(A.shape[-2], A.shape[-1])
    rtol = rtol._data if isinstance(rtol, Tensor) else np.asarray(rtol)
    return apply(_pinv, A, atol=atol, rtol=rtol, hermitian=bool(hermitian))


@public(method=True)
@cast_inputs(FP32)
def pinverse(input, rcond=1e-15):
    """``torch.pinverse``: ``linalg.pinv`` with a relative cutoff ``rcond``."""
    return pinv(input, rtol=rcond)


_SlogdetResult = collections.namedtuple("slogdet", ["sign", "logabsdet"])
_QRResult = collections.namedtuple("qr", ["Q", "R"])
_SVDResult = collections.namedtuple("svd", ["U", "S", "Vh"])
_EighResult = collections.namedtuple("eigh", ["eigenvalues", "eigenvectors"])


@cast_inputs(FP32)
def inv(A):
    """The inverse of each square matrix; a singular one raises ``LinAlgError`` (a RuntimeError)."""
    _check_matrix(A, "linalg.inv", square=True, complex_ok=True)
    try:
        return inverse(A)
    except RuntimeError:
        raise LinAlgError(f"linalg.inv: The input matrix (shape {tuple(A.shape)}) is singular, it is not "
                          f"invertible.") from None


def linalg_det(A):
    """The determinant of each square matrix (the gradient needs it invertible)."""
    _check_matrix(A, "linalg.det", square=True, complex_ok=True)
    return det(A)


_Ex = collections.namedtuple("inv_ex", ["inverse", "info"])
_CholEx = collections.namedtuple("cholesky_ex", ["L", "info"])
_SolveEx = collections.namedtuple("solve_ex", ["result", "info"])


def _info(A, ok):
    return Tensor._wrap(np.zeros(A.shape[:-2], np.int32) if ok else np.ones(A.shape[:-2], np.int32))


@cast_inputs(FP32)
def inv_ex(A, *, check_errors=False):
    """``(inverse, info)``: the inverse and, per matrix, 0 or (singular) 1 with a NaN result, instead of
    raising (unless ``check_errors``)."""
    try:
        return _Ex(inv(A), _info(A, True))
    except LinAlgError:
        if check_errors:
            raise
        return _Ex(Tensor._wrap(np.full(A.shape, np.nan, A._data.dtype)), _info(A, False))


@cast_inputs(FP32)
def cholesky_ex(A, *, upper=False, check_errors=False):
    """``(L, info)``: the Cholesky factor and, per matrix, 0 or (not positive-definite) 1 with a NaN
    result, instead of raising (unless ``check_errors``)."""
    try:
        return _CholEx(cholesky(A, upper=upper), _info(A, True))
    except LinAlgError:
        if check_errors:
            raise
        return _CholEx(Tensor._wrap(np.full(A.shape, np.nan, A._data.dtype)), _info(A, False))


def solve_ex(A, B, *, left=True, check_errors=False):
    """``(result, info)``: ``solve(A, B)`` and, per matrix, 0 or (singular) 1 with a NaN result,
    instead of raising (unless ``check_errors``)."""
    try:
        return _SolveEx(solve(A, B, left=left), _info(A, True))
    except LinAlgError:
        if check_errors:
            raise
        return _SolveEx(Tensor._wrap(np.full(B.shape, np.nan, B._data.dtype)), _info(A, False))


# ---------------------------------------------------------------- LU and the matrix exponential
def _batched(fn, x, *rest):
    """``fn`` on each matrix of the batch ``x`` (scipy's LAPACK wrappers take one matrix)."""
    batch = x.shape[:-2]
    if batch and 0 in batch:  # an empty batch: the outputs' shapes from one zero matrix, no values
        one = fn(np.zeros(x.shape[-2:], x.dtype), *(np.zeros(r.shape[len(batch):], r.dtype) for r in rest))
        return (tuple(np.empty(batch + np.shape(o), np.asarray(o).dtype) for o in one) if isinstance(one, tuple)
                else np.empty(batch + np.shape(one), np.asarray(one).dtype))
    outs = [fn(x[i], *(r[i] for r in rest)) for i in np.ndindex(*batch)] if batch else [fn(x, *rest)]
    if isinstance(outs[0], tuple):
        return tuple(np.stack([o[k] for o in outs]).reshape(batch + outs[0][k].shape) for k in range(len(outs[0])))
    return np.stack(outs).reshape(batch + outs[0].shape)


def _lu_one(a):
    """LAPACK getrf on one (m, n) matrix: packed LU, 1-based pivots (PyTorch's), info."""
    lu, piv, info = _sla.lapack.get_lapack_funcs("getrf", (a,))(a)
    return lu, (piv + 1).astype(np.int32), np.asarray(info, np.int32)


def _lu_perm(piv, m):
    """The permutation matrix P (A = P L U) of 1-based LAPACK row swaps ``piv``."""
    perm = np.arange(m)
    for i, p in enumerate(piv - 1):
        perm[[i, p]] = perm[[p, i]]
    P = np.zeros((m, m))
    P[perm, np.arange(m)] = 1
    return P


def _lu_fwd(x):
    lu, piv, _ = _batched(_lu_one, np.ascontiguousarray(x))
    m = x.shape[-2]
    P = np.zeros(x.shape[:-2] + (m, m))
    for i in np.ndindex(*x.shape[:-2]):
        P[i] = _lu_perm(piv[i], m)
    return lu, P


def _lu_vjp(gs, outs, x):
    """PyTorch's linalg_lu_backward for the packed factor of A = P L U, L (m, k) unit lower,
    U (k, n) upper, k = min(m, n). Square: gA = P L^-T (tril(L^T gL, -1) + triu(gU U^T)) U^-T;
    wide and tall A in their own helpers."""
    (gLU, _), (LU, P) = gs, outs
    m, n = x.shape[-2], x.shape[-1]
    if m < n:
        return matmul(P, _lu_vjp_wide(gLU, LU, m))
    if m > n:
        return matmul(P, _lu_vjp_tall(gLU, LU, n))
    eye = _eye_like(n, LU)
    L, U = tril(LU, -1) + eye, triu(LU)
    phi = tril(matmul(L.mT, tril(gLU, -1)), -1) + triu(matmul(triu(gLU), U.mT))
    X = solve(L.mT, phi)
    return matmul(P, solve(U, X.mT).mT)


def _lu_vjp_wide(gLU, LU, k):
    """P^T gA of a wide A (k = m < n), U = [U1 U2]:
    L^-T [X + triu(gU1), gU2] with X = tril(L^T gL - gU U^T, -1) U1^-T."""
    L = tril(LU[..., :, :k], -1) + _eye_like(k, LU)
    U, gL, gU = triu(LU), tril(gLU[..., :, :k], -1), triu(gLU)
    U1 = U[..., :, :k]
    X = solve(U1, tril(matmul(L.mT, gL) - matmul(gU, U.mT), -1).mT).mT
    return solve(L.mT, cat([X + gU[..., :, :k], gU[..., :, k:]], -1))


def _lu_vjp_tall(gLU, LU, k):
    """P^T gA of a tall A (k = n < m), L = [L1; L2]:
    [Y + tril(gL1, -1); gL2] U^-T with Y = L1^-T triu(gU U^T - L^T gL)."""
    L = tril(LU, -1) + Tensor._wrap(np.eye(LU.shape[-2], k, dtype=LU._data.dtype))
    U, gL, gU = triu(LU[..., :k, :]), tril(gLU, -1), triu(gLU[..., :k, :])
    L1 = L[..., :k, :]
    Y = solve(L1.mT, triu(matmul(gU, U.mT) - matmul(L.mT, gL)))
    return solve(U, cat([Y + gL[..., :k, :], gL[..., k:, :]], -2).mT).mT


_lu = _packed("lu_factor", _lu_fwd, _lu_vjp)


def lu_factor_packed(A):
    """``(LU, P)``: the packed LU factor (differentiable) and the permutation matrix."""
    m, n = A.shape[-2], A.shape[-1]
    shapes = ((m, n), (m, m))
    return _unpack(apply(_lu, A, shapes=shapes), shapes)


def lu_pivots(A):
    """``(pivots, info)`` of LAPACK's getrf on ``A`` (1-based int32 pivots, as PyTorch), unrecorded."""
    _, piv, info = _batched(_lu_one, np.ascontiguousarray(A._data))
    return Tensor._wrap(piv), Tensor._wrap(info)


def _expm_fwd(x):
    return _sla.expm(x) if x.size else x.copy()


# d exp(A) = the top-right block of exp([[A, dA], [0, A]]); so gA = that block with A^T and g
_matrix_exp = defop("matrix_exp", _cast(_expm_fwd), lambda g, out, x: _matrix_exp_vjp(g, x), saves=(0,))


def _matrix_exp_vjp(g, x):
    n = x.shape[-1]
    zeros = x.mT * 0
    big = cat([cat([x.mT, g], -1), cat([zeros, x.mT], -1)], -2)
    return matrix_exp(big)[..., :n, n:]


@public(method=True, out=True)
def norm(input, p="fro", dim=None, keepdim=False, dtype=None):
    """Vector p-norm over ``dim`` (all by default): p = 2 / 'fro', 1, inf, -inf, 0 or any number;
    'nuc', the nuclear norm of the matrices in ``dim`` (two dims; the last two by default)."""
    if p == "nuc":
        dims = (-2, -1) if dim is None else tuple(dim) if isinstance(dim, (tuple, list)) else (dim,)
        if len(dims) != 2:
            raise RuntimeError(f"norm: p='nuc' takes two dims (a matrix norm), got dim={dim!r}")
        return matrix_norm(input, "nuc", dims, keepdim, dtype=dtype)
    return pnorm(input, p, dim, keepdim, dtype)


@public(method=True)
def matrix_exp(A):
    """The matrix exponential ``sum_k A^k / k!`` of (batches of) square matrices (scipy's Pade
    approximation), differentiable to any order.

    >>> tapegrad.linalg.matrix_exp(tapegrad.zeros(2, 2))
    tensor([[1., 0.],
            [0., 1.]])
    """
    _check_matrix(A, "linalg.matrix_exp", square=True)
    return apply(_matrix_exp, A)


# ---------------------------------------------------------------- norms
def vector_norm(x, ord=2, dim=None, keepdim=False, *, dtype=None):
    """``sum(|x|^ord)^(1/ord)`` over ``dim`` (all elements by default); ord may be inf, -inf or 0."""
    if isinstance(ord, str):
        raise RuntimeError(f"linalg.vector_norm: ord must be a number, got {ord!r}")
    return pnorm(x, float(ord), dim, keepdim, dtype)



# cosine_similarity on float32/float64 operands of one shape, as one node: the row dot products
# <x1, x2>, <x1, x1>, <x2, x2> in three reading passes (the batched GEMM's dot products where
# ``dim`` runs contiguous), where the composition (two norms, their clamps, two divisions, a
# product and a sum) made seven passes and three full-size temporaries, and as many again
# backward (1000 x 1000 float32, forward and backward: 1.38x PyTorch's time).
def _row_dots(a, b):
    """sum(a * b) over the last axis, for arrays of one shape (leading dims any)."""
    if a.shape[-1] and a.strides[-1] == a.itemsize and b.strides[-1] == b.itemsize and a.dtype.kind == "f" \
            and a.dtype.itemsize >= 4:
        out = np.empty(a.shape[:-1] + (1, 1), a.dtype)
        _C.matmul(a[..., None, :], b[..., :, None], out)
        return out[..., 0, 0]
    return np.einsum("...i,...i->...", a, b)


def _cosine_fwd(x1, x2, dim, eps):
    a, b = np.moveaxis(x1, dim, -1), np.moveaxis(x2, dim, -1)
    with np.errstate(all="ignore"):
        n1 = np.maximum(np.sqrt(_row_dots(a, a)), eps)
        n2 = np.maximum(np.sqrt(_row_dots(b, b)), eps)
        r = _row_dots(a, b) / n1 / n2
        if not np.isfinite(r).all():  # <x1, x2> overflowed: PyTorch normalises before the product
            r = _row_dots(a / n1[..., None], b / n2[..., None])
    return np.asarray(np.clip(r, -1, 1), x1.dtype)  # rounding can leave the cosine an ulp outside [-1, 1]


def _cosine_grad(g, out, x, y, dim, eps):
    """d cos / dx = (y / (|x|' |y|') - cos * x / (|x| |x|')) * g, |x|' the norm clamped to eps
    (the clamp's value with the unclamped norm's gradient, as PyTorch's cosine_similarity); the
    second term is zero where x is."""
    nx, ny = pnorm(x, 2.0, dim, True), pnorm(y, 2.0, dim, True)
    cx, cy = _clamped(nx, eps), _clamped(ny, eps)
    ge = g.unsqueeze(dim)
    c = ge / (cx * cy)
    d = ge * out.unsqueeze(dim) / (cx * where(nx == 0, 1, nx))
    return y * c - x * d


def _clamped(n, eps):
    nd = n.detach()
    return n + (nd.clamp(min=eps) - nd)


_cosine_similarity = defop("cosine_similarity", _cosine_fwd,
                           lambda g, out, x1, x2, dim, eps: _cosine_grad(g, out, x1, x2, dim, eps),
                           lambda g, out, x1, x2, dim, eps: _cosine_grad(g, out, x2, x1, dim, eps),
                           saves_output=True)


def cosine_similarity_fused(x1, x2, dim, eps):
    """cosine_similarity of two float32/float64 tensors of one shape along ``dim`` (normalised)."""
    return apply(_cosine_similarity, x1, x2, dim=dim, eps=float(eps))

def _matrix_dims(A, dim, opname):
    if not isinstance(dim, (tuple, list)) or len(dim) != 2:
        raise RuntimeError(f"{opname}: dim must be a 2-tuple, got {dim!r}")
    d0, d1 = (d % A.ndim if -A.ndim <= d < A.ndim else None for d in dim)
    if d0 is None or d1 is None:
        raise IndexError(f"{opname}: dim {dim} out of range for a tensor of shape {tuple(A.shape)}")
    if d0 == d1:
        raise RuntimeError(f"{opname}: dims must be different, got {dim}")
    return d0, d1


def matrix_norm(A, ord="fro", dim=(-2, -1), keepdim=False, *, dtype=None):
    """Matrix norms over the two ``dim``: 'fro', 'nuc', 1, -1, 2, -2, inf, -inf (PyTorch's meanings)."""
    if dtype is not None:
        A = A.to(dtype)
    if A.ndim < 2:
        raise RuntimeError(f"linalg.matrix_norm: The input tensor A must have at least 2 dimensions (got shape "
                           f"{tuple(A.shape)})")
    d0, d1 = _matrix_dims(A, dim, "linalg.matrix_norm")
    if ord == "fro":
        return pnorm(A, 2.0, (d0, d1), keepdim)
    if ord in ("nuc", 2, -2):
        S = svdvals(movedim(A, (d0, d1), (-2, -1)))
        out = S.sum(-1) if ord == "nuc" else amax(S, -1) if ord == 2 else amin(S, -1)
        if keepdim:
            for d in sorted((d0, d1)):
                out = out.unsqueeze(d)
        return out
    if ord in (1, -1, math.inf, -math.inf):
        summed, reduced = (d0, d1) if builtins.abs(ord) == 1 else (d1, d0)
        red = amax if ord > 0 else amin
        out = red(abs(A).sum(summed, keepdim=True), reduced, keepdim=True)
        return out if keepdim else out.squeeze(max(d0, d1)).squeeze(min(d0, d1))
    raise RuntimeError(f"linalg.matrix_norm: Order {ord} not supported.")


def linalg_norm(A, ord=None, dim=None, keepdim=False, *, dtype=None):
    """A vector norm (``dim`` an int, or ``dim`` None and ``ord`` None: all elements) or a matrix norm
    (``dim`` a 2-tuple, or a 2-D input with ``ord`` given), as ``torch.linalg.norm``."""
    if isinstance(dim, int):
        dim = (dim,)
    if dim is not None and len(dim) == 2:
        return matrix_norm(A, "fro" if ord is None else ord, tuple(dim), keepdim, dtype=dtype)
    if dim is None and ord is not None:
        if A.ndim == 2:
            return matrix_norm(A, ord, (-2, -1), keepdim, dtype=dtype)
        if A.ndim != 1:
            raise RuntimeError(f"linalg.norm: If dim is not specified but ord is, the input must be 1D or 2D. "
                               f"Got {A.ndim}D (shape {tuple(A.shape)}).")
    if dim is not None and len(dim) != 1:
        raise RuntimeError(f"linalg.norm: If dim is specified, it must be of length 1 or 2. Got {list(dim)}")
    return vector_norm(A, 2 if ord is None else ord, dim, keepdim, dtype=dtype)


# ---------------------------------------------------------------- rank, lstsq
def _tolerance(S, m, n, atol, rtol):
    """PyTorch's rule: tol = max(atol, rtol * S.max()); rtol defaults to eps * max(m, n) unless atol > 0."""
    if rtol is None:
        rtol = 0.0 if atol is not None and np.any(np.asarray(_data(atol)) > 0) else np.finfo(S.dtype).eps * max(m, n)
    atol = 0.0 if atol is None else atol
    smax = S.max(axis=-1, keepdims=True) if S.shape[-1] else np.zeros(S.shape[:-1] + (1,), S.dtype)
    return np.maximum(np.asarray(_data(atol))[..., None], np.asarray(_data(rtol))[..., None] * smax)


def _data(v):
    return v._data if isinstance(v, Tensor) else v


@cast_inputs(FP32)
def matrix_rank(A, *, atol=None, rtol=None, hermitian=False, tol=None):
    """The number of singular values above ``max(atol, rtol * largest)`` (int64, not differentiable)."""
    _check_matrix(A, "linalg.matrix_rank")
    if tol is not None:
        atol, rtol = tol, 0.0
    m, n = A.shape[-2], A.shape[-1]
    S = np.abs(np.linalg.eigvalsh(A._data)) if hermitian else np.linalg.svd(A._data, compute_uv=False)
    tolv = _tolerance(S, m, n, atol, rtol)
    return Tensor._wrap(np.asarray((S > tolv).sum(-1), dtype=np.int64))


_Lstsq = collections.namedtuple("lstsq", ["solution", "residuals", "rank", "singular_values"])


@cast_inputs(FP32)
def lstsq(A, B, rcond=None, *, driver=None):
    """The least-squares solution of ``A @ X = B`` (``pinv(A) @ B``, differentiable in A and B).

    As PyTorch's default CPU driver 'gelsy': ``residuals`` and ``singular_values`` are empty and
    ``rank`` is the numerical rank; 'gelsd'/'gelss' also fill ``singular_values`` and, for tall
    full-rank A, ``residuals`` (the squared residual norms per column), which 'gels' gives for
    any tall A (and no rank)."""
    _check_matrix(A, "linalg.lstsq")
    if driver not in (None, "gels", "gelsy", "gelsd", "gelss"):
        raise RuntimeError(f"linalg.lstsq: parameter `driver` should be one of (gels, gelsy, gelsd, gelss), got "
                           f"{driver}")
    vector = B.ndim == A.ndim - 1
    Bm = B.unsqueeze(-1) if vector else B
    if Bm.shape[-2] != A.shape[-2]:
        raise RuntimeError(f"linalg.lstsq: input.size(-2) should match other.size(-2), got A {tuple(A.shape)} and "
                           f"B {tuple(B.shape)}")
    m, n = A.shape[-2], A.shape[-1]
    rtol = rcond if rcond is not None else np.finfo(A._data.dtype).eps * max(m, n)
    X = matmul(pinv(A, rtol=rtol), Bm)
    empty = Tensor._wrap(np.empty((0,), A._data.dtype))
    rank = matrix_rank(A, rtol=rtol) if driver != "gels" else Tensor._wrap(np.empty((0,), np.int64))
    S, res = empty, X.reshape(-1)[:0]  # no residuals: empty, though in the graph as PyTorch's
    if driver in ("gelsd", "gelss"):
        S = Tensor._wrap(np.linalg.svd(A._data, compute_uv=False))
    # 'gels' (QR, which assumes full rank) gives the residuals of any tall A, as PyTorch's does
    if driver in ("gels", "gelsd", "gelss") and m > n and (driver == "gels" or np.all(rank._data == n)):
        res = ((matmul(A, X) - Bm) ** 2).sum(-2)
    return _Lstsq(X.squeeze(-1) if vector else X, res, rank, S)


# ---------------------------------------------------------------- small compositions
@public(method=True, out=True)
def matrix_power(A, n):
    """``A`` multiplied by itself ``n`` times (``n < 0``: powers of the inverse; 0: the identity)."""
    _check_matrix(A, "linalg.matrix_power", square=True)
    if not isinstance(n, (int, np.integer)):
        raise TypeError(f"linalg.matrix_power: n must be an int, got {type(n).__name__}")
    if n == 0:  # PyTorch's A.clone().copy_(eye): in the graph, with a zero gradient
        return _in_graph(const(np.eye(A.shape[-1]), A.dtype), A)
    if n < 0:
        A, n = inv(A), -n
    result, base = None, A
    while n:  # binary powering, as PyTorch
        if n & 1:
            result = base if result is None else matmul(result, base)
        n >>= 1
        if n:
            base = matmul(base, base)
    return result


def multi_dot(tensors):
    """The product of a chain of matrices (the first may be 1-D, as may the last), left to right."""
    ts = list(tensors)
    if len(ts) < 2:
        raise RuntimeError(f"multi_dot(): expected at least 2 tensors but got {len(ts)}")
    for i, t in enumerate(ts):
        if t.ndim not in ((1, 2) if i in (0, len(ts) - 1) else (2,)):
            raise RuntimeError(f"multi_dot(): tensor {i} must be 2D{' or 1D' if i in (0, len(ts) - 1) else ''} "
                               f"but got {t.ndim}D (shape {tuple(t.shape)})")
    out = ts[0]
    for t in ts[1:]:
        out = matmul(out, t)
    return out


def vecdot(x, y, *, dim=-1):
    """``sum(conj(x) * y, dim)`` with broadcasting (x conjugated when complex, as PyTorch's)."""
    if vecdot_takes(x, y):
        return apply(_vecdot, x, y, dim=norm_dim(dim, x.ndim, "linalg.vecdot"))
    return (_cj(x) * y).sum(dim)


def linalg_cross(input, other, *, dim=-1):
    """``torch.linalg.cross``: the cross product of 3-vectors along ``dim`` (default the last)."""
    return cross(input, other, dim)


def linalg_diagonal(A, *, offset=0, dim1=-2, dim2=-1):
    """``torch.linalg.diagonal``: the diagonals of the matrices in the dims ``dim1``, ``dim2``."""
    return diagonal(A, offset, dim1, dim2)


# ---------------------------------------------------------------- cross, det, inverse
@public(method=True, out=True)
def cross(input, other, dim=None):
    """The 3-vector cross product along ``dim`` (default: the first dim of size 3, as PyTorch)."""
    a, b = pair(input, other, "cross")
    if a.ndim != b.ndim:
        raise RuntimeError(f"linalg.cross: inputs must have the same number of dimensions (got shapes "
                           f"{tuple(a.shape)} and {tuple(b.shape)})")
    try:
        shape = np.broadcast_shapes(tuple(a.shape), tuple(b.shape))
    except ValueError:
        raise RuntimeError(f"linalg.cross: the shapes {tuple(a.shape)} and {tuple(b.shape)} don't broadcast") from None
    if dim is None:
        dim = next((i for i, s in enumerate(shape) if s == 3), None)
        if dim is None:
            raise RuntimeError(f"cross: no dimension of size 3 in input of shape {tuple(shape)}")
    d = norm_dim(dim, len(shape), "cross")
    if a.shape[d] != 3 or b.shape[d] != 3:  # each input's own size, before broadcasting
        raise RuntimeError(f"cross: inputs dimension {dim} must have length 3, got shapes {tuple(input.shape)} "
                           f"and {tuple(other.shape)}")
    a0, a1, a2 = unbind(a.expand(shape), d)
    b0, b1, b2 = unbind(b.expand(shape), d)
    return stack([a1 * b2 - a2 * b1, a2 * b0 - a0 * b2, a0 * b1 - a1 * b0], d)


def _check_square(x, opname):
    if x.ndim < 2 or x.shape[-1] != x.shape[-2]:
        raise RuntimeError(f"{opname}: A must be batches of square matrices, but they are "
                           f"{x.shape[-2] if x.ndim >= 2 else ''} by {x.shape[-1] if x.ndim else ''} "
                           f"matrices (shape {tuple(x.shape)})")
    if _dtype.kind_of(x._data.dtype) not in "fc":
        raise RuntimeError(f"{opname}: expected a floating point or complex tensor, got {x._data.dtype}")


def _inv_fwd(x):
    try:
        return np.linalg.inv(x)
    except np.linalg.LinAlgError:
        raise RuntimeError(f"inverse: the input (shape {x.shape}) is singular, it is not invertible") from None


# (the conjugate transposes are plain transposes for real matrices)
_inverse = defop("inverse", _inv_fwd, lambda g, out, x: -(out.mH @ g @ out.mH), saves_output=True, saves=())
# d det(A) / dA = det(A) * inv(A)^T (A must be invertible); complex: g * conj(det) * inv(A)^H
_det = defop("det", lambda x: np.linalg.det(x).astype(x.dtype, copy=False),
             lambda g, out, x: (g * out.conj())[..., None, None] * inverse(x).mH, saves_output=True)


@public(method=True, out=True)
@cast_inputs(FP32)
def inverse(input):
    """The inverse of each square matrix in the last two dims."""
    _check_square(input, "inverse")
    return apply(_inverse, input)


@public(method=True, out=True)
def det(input):
    """The determinant of each square matrix in the last two dims (the gradient needs it invertible)."""
    _check_square(input, "det")
    return apply(_det, input)


@public(out=True)
def chain_matmul(*matrices):
    """The product of the matrices, left to right (``linalg.multi_dot``); one matrix gives a copy."""
    if len(matrices) == 1 and isinstance(matrices[0], Tensor):
        if matrices[0].ndim != 2:
            raise RuntimeError(f"chain_matmul(): expected a matrix, got shape {tuple(matrices[0].shape)}")
        return matrices[0].clone()
    if not matrices:
        raise RuntimeError("chain_matmul(): Expected one or more matrices")
    return multi_dot(matrices)


@public(out=True)
@cast_inputs(FP32)
def cdist(x1, x2, p=2.0, compute_mode=None):
    """Pairwise p-norm distances between the rows of ``x1`` (..., P, M) and ``x2`` (..., R, M).

    p = 2 with P or R above 25 (or ``compute_mode='use_mm_for_euclid_dist'``) takes PyTorch's
    matrix-product route, ``|a|^2 + |b|^2 - 2 a.b``, on the native GEMM. Unlike PyTorch's, it centres
    the rows first and recomputes directly the distances small enough for that formula's rounding
    to matter, so ``cdist(x, x)`` has an exact zero diagonal and close pairs keep their digits
    (PyTorch: up to 2.0 on the diagonal for float32 rows of norm ~1000). Other p, and small inputs,
    take the direct route in chunks of rows (never a (P, R, M) temporary of the whole problem)."""
    if x1.ndim < 2 or x2.ndim < 2 or x1.shape[-1] != x2.shape[-1]:
        raise RuntimeError(f"cdist: X1 and X2 must have the same number of columns, got shapes "
                           f"{tuple(x1.shape)} and {tuple(x2.shape)}")
    for name, t in (("X1", x1), ("X2", x2)):
        if t._data.dtype.kind != "f":
            raise RuntimeError(f"cdist only supports floating-point dtypes, {name} got: "
                               f"{_dtype.name(t._data.dtype)}")
    if x1._data.dtype != x2._data.dtype:
        raise RuntimeError(f"cdist: X1 and X2 must have one dtype, got {_dtype.name(x1._data.dtype)} and "
                           f"{_dtype.name(x2._data.dtype)}")
    if compute_mode is not None and compute_mode not in _CDIST_MODES:
        raise ValueError(f"{compute_mode} is not a valid value for compute_mode")
    if not p >= 0:  # a negative (or NaN) p is no distance: PyTorch refuses it
        raise RuntimeError(f"cdist only supports non-negative p values, got p={p}")
    try:
        batch = np.broadcast_shapes(x1.shape[:-2], x2.shape[:-2])
    except ValueError:
        raise RuntimeError(f"cdist: the batch dims of X1 {tuple(x1.shape)} and X2 {tuple(x2.shape)} do not "
                           f"broadcast") from None
    P, R, M = x1.shape[-2], x2.shape[-2], x1.shape[-1]
    use_mm = p == 2 and (compute_mode == "use_mm_for_euclid_dist" or (
        compute_mode != "donot_use_mm_for_euclid_dist" and (P > 25 or R > 25)))
    if use_mm and x1._data.dtype.char in "fd" and P and R and M:
        if x1.shape[:-2] != batch:
            x1 = x1.expand(*batch, P, M)
        if x2.shape[:-2] != batch:
            x2 = x2.expand(*batch, R, M)
        return apply(_cdist_mm, x1, x2)
    # the direct route: (rows, R, M) differences for a chunk of x1's rows at a time
    rows = builtins.max(1, _CDIST_CHUNK_ELEMS // builtins.max(1, R * M * (math.prod(batch) or 1)))
    if P <= rows:
        return _cdist_direct(x1, x2, p)
    return cat([_cdist_direct(getitem(x1, (Ellipsis, slice(i, i + rows), slice(None))), x2, p)
                for i in range(0, P, rows)], -2)


_CDIST_MODES = ("use_mm_for_euclid_dist_if_necessary", "use_mm_for_euclid_dist", "donot_use_mm_for_euclid_dist")
# The direct route's differences per chunk (elements): 4M, 16 / 32 MB.
_CDIST_CHUNK_ELEMS = 1 << 22
# A distance from the product formula whose square is below this many rounding units of
# M (|a|^2 + |b|^2) (in the centred frame) is recomputed from the differences: the formula's
# error is at most about M eps (|a|^2 + |b|^2), so the others keep a relative error of d^2 below
# about 1 / 512.
_CDIST_RECOMPUTE_ULPS = 512


def _cdist_direct(x1, x2, p):
    diff = unsqueeze(x1, -2) - unsqueeze(x2, -3)
    if p == builtins.float("inf"):  # PyTorch's cdist subgradient: every tied maximum gets the full gradient
        ad = abs(diff)
        top = amax(ad, -1)
        tied = Tensor._wrap(ad._data == np.expand_dims(top._data, -1))
        share = sum(where(tied, ad, const(0.0, ad.dtype)), -1)
        finite = Tensor._wrap(np.isfinite(share._data))  # (inf - inf would make the value NaN)
        return top.detach() + where(finite, share - share.detach(), const(0.0, ad.dtype))
    return _pnorm_last(diff, p)


def _cdist_mm_fwd(a, b):
    """Euclidean distances of a (..., P, M) and b (..., R, M) (one batch shape) by one GEMM: the
    rows centred on b's mean (the distances don't move; the norms, and the formula's rounding,
    shrink), d^2 = |a|^2 + |b|^2 - 2 a.b clamped at 0, and the pairs that formula can't resolve
    recomputed from their differences."""
    mu = b.mean(axis=-2, keepdims=True)
    if not np.isfinite(mu).all():  # an inf or NaN row (or an overflowing mean) spoils only its own pairs
        mu = np.where(np.isfinite(mu), mu, 0).astype(b.dtype)
    ac, bc = a - mu, b - mu
    n1 = np.einsum("...ij,...ij->...i", ac, ac)
    n2 = np.einsum("...ij,...ij->...i", bc, bc)
    out = np.empty(a.shape[:-1] + (b.shape[-2],), a.dtype)
    _C.matmul(ac, np.swapaxes(bc, -1, -2), out, -2.0)
    # out = sqrt(max(out + |b|^2 + |a|^2, 0)) in one pass, listing the pairs whose d^2 is within the
    # formula's rounding (a per-row bound over every j): those are recomputed from differences
    P, R, M = a.shape[-2], b.shape[-2], a.shape[-1]
    n1 = n1.reshape(-1)
    # (an inf or NaN row's own pairs come out NaN and are listed anyway: the others' bound ignores it)
    n2max = np.where(np.isfinite(n2), n2, 0).max(axis=-1)
    bound = (n1 + np.repeat(n2max, P)) * (np.finfo(a.dtype).eps * _CDIST_RECOMPUTE_ULPS * M)
    close = _C.cdist_finish(out.reshape(-1, R), n1, np.ascontiguousarray(n2.reshape(-1, R)), bound.astype(a.dtype))
    if close.size:
        rows, j = np.divmod(close, R)  # rows of the flattened (batch x P) a; j's batch is its row's
        a2, b2 = ac.reshape(-1, M), bc.reshape(-1, M)
        flat = out.reshape(-1)
        step = builtins.max(1, _CDIST_CHUNK_ELEMS // M)
        for k in range(0, close.size, step):
            s = slice(k, k + step)
            d = a2[rows[s]] - b2[rows[s] // P * R + j[s]]
            flat[close[s]] = np.sqrt(np.einsum("ij,ij->i", d, d))
    return out


def _cdist_mm_ratio(g, out):
    """g / d, 0 where d is 0 (PyTorch's subgradient at coincident rows)."""
    zero = out == 0
    return where(zero, const(0.0, out.dtype), g / where(zero, const(1.0, out.dtype), out))


# The gradients are PyTorch's (_euclidean_dist_backward), in differentiable ops for double backward.
_cdist_mm = defop(
    "cdist", _cdist_mm_fwd,
    lambda g, out, a, b: (lambda r: a * sum(r, -1, keepdim=True) - matmul(r, b))(_cdist_mm_ratio(g, out)),
    lambda g, out, a, b: (lambda r: b * unsqueeze(sum(r, -2), -1) - matmul(r.mT, a))(_cdist_mm_ratio(g, out)),
    saves_output=True)


def _pnorm_last(diff, p):
    ad = abs(diff)
    if p == 0:  # the count of nonzeros, in the graph with a zero gradient (PyTorch's requires grad)
        count = sum(ne(diff, 0).to(diff.dtype), -1)
        return where(Tensor._wrap(np.ones(count.shape, bool)), count, sum(ad, -1))
    if p == builtins.float("inf"):
        return amax(ad, -1)
    if p == 1:
        return sum(ad, -1)
    s = sum(ad ** p, -1)
    zero = s == 0  # the gradient of a zero distance is 0, as in PyTorch
    safe = where(zero, const(1.0, s.dtype), s)
    return where(zero, const(0.0, s.dtype), safe ** (1.0 / p))


@public(method=True, out=True)
def dist(input, other, p=2):
    """The ``p``-norm of ``input - other``."""
    x, y = pair(input, other, "dist")
    return _pnorm_last(reshape(x - y, -1), p)


@public(out=True)
def pdist(input, p=2):
    """The upper-triangle (i < j) of ``cdist(input, input)``, flattened."""
    if input.ndim != 2:
        raise RuntimeError(f"pdist only supports 2D tensors, got: {input.ndim}D (shape {tuple(input.shape)})")
    if not p >= 0:
        raise RuntimeError(f"pdist only supports non-negative p values, got p={p}")
    n = input.shape[0]
    i, j = np.triu_indices(n, 1)
    diff = getitem(input, Tensor._wrap(i)) - getitem(input, Tensor._wrap(j))
    return _pnorm_last(diff, p)
