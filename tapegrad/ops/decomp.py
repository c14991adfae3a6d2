"""Matrix decompositions and solvers for ``tapegrad.linalg``: solve, slogdet, cholesky, qr, svd and
eigh as primitives (numpy.linalg forwards, VJPs in tapegrad ops, batched over leading dims).

An op with several differentiable outputs (Q and R, U/S/Vh, eigenvalues and eigenvectors) is
one primitive whose outputs travel packed in one array, flattened along the last dim; the
wrapper slices them apart with differentiable ops, so an output nobody uses just gets a zero
gradient, and its VJP receives the pieces back as a tuple (``_packed``). The formulas are
PyTorch's (``FunctionsManual.cpp``), real case.
"""
from __future__ import annotations

import numpy as np

Tensor = None  # the Tensor class, bound by tensor.py (ops.bind_tensor): the ops sit below it
from .._tape.registry import apply, defop
from .matrix import diag_embed, inverse, tril
from .linalg import matmul


class LinAlgError(RuntimeError):
    """A numerical failure (singular matrix, not positive-definite), as ``torch.linalg.LinAlgError``."""


def _check_matrix(x, opname, square=False):
    if not isinstance(x, Tensor):
        raise TypeError(f"{opname}: expected a Tensor, got {type(x).__name__}")
    if x.ndim < 2:
        raise RuntimeError(f"{opname}: The input tensor A must have at least 2 dimensions (got shape "
                           f"{tuple(x.shape)})")
    if square and x.shape[-1] != x.shape[-2]:
        raise RuntimeError(f"{opname}: A must be batches of square matrices, but they are {x.shape[-2]} by "
                           f"{x.shape[-1]} matrices (shape {tuple(x.shape)})")
    if x._data.dtype.kind != "f" or x._data.dtype == np.float16:
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
        return np.concatenate([np.broadcast_to(o, batch + s).reshape(batch + (-1,)).astype(x.dtype, copy=False)
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


# X = A^-1 B:  gB = A^-T g,  gA = -gB X^T
_solve = defop("linalg_solve", _cast(_solve_fwd),
               lambda g, out, a, b: -matmul(solve(a.mT, g), out.mT),
               lambda g, out, a, b: solve(a.mT, g), saves_output=True, saves=(0,))


def solve(A, B, *, left=True):
    """The solution X of ``A @ X = B`` (``left=False``: ``X @ A = B``), batched; B may be a (batch of) vector(s).

    >>> tapegrad.linalg.solve(A, b)         # A (n, n), b (n,) -> (n,)
    """
    _check_matrix(A, "linalg.solve", square=True)
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


def slogdet(A):
    """``(sign, logabsdet)`` of each square matrix: ``det(A) = sign * exp(logabsdet)``."""
    from .reduction import return_types  # noqa: F401  (namedtuples live with the reductions)
    _check_matrix(A, "linalg.slogdet", square=True)
    sign = Tensor._wrap(np.asarray(np.linalg.slogdet(A._data)[0], dtype=A._data.dtype))
    return _SlogdetResult(sign, apply(_slogdet, A))


def logdet(input):
    """``log(det(A))``: nan for a negative determinant, -inf for a singular matrix (as PyTorch)."""
    sign, logabs = slogdet(input)
    from .elementwise import log
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
    from .shape import cat
    U, gU, gV = R[..., :m], gR[..., :m], gR[..., m:]
    Y = x[..., m:]
    gX = _qr_square_vjp(gQ + matmul(Y, gV.mT), gU, Q, U)
    return cat([gX, matmul(Q, gV)], -1)


_qr = _packed("qr", lambda x, mode: np.linalg.qr(x, mode=mode), _qr_vjp, saves=(0,))  # wide A: its extra columns


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


def svd(A, full_matrices=True, *, driver=None):
    """``(U, S, Vh)`` with ``A = U @ diag(S) @ Vh``, S descending. Gradients need distinct singular
    values (and nonzero ones for the non-square parts), as in PyTorch."""
    _check_matrix(A, "linalg.svd")
    m, n = A.shape[-2], A.shape[-1]
    k = min(m, n)
    shapes = ((m, m), (k,), (n, n)) if full_matrices else ((m, k), (k,), (k, n))
    return _SVDResult(*_unpack(apply(_svd, A, shapes=shapes, full_matrices=bool(full_matrices)), shapes))


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


def eigh(A, UPLO="L"):
    """``(eigenvalues, eigenvectors)`` of symmetric matrices (reading the ``UPLO`` triangle),
    eigenvalues ascending. Gradients need distinct eigenvalues, as in PyTorch."""
    _check_matrix(A, "linalg.eigh", square=True)
    if UPLO not in ("L", "U"):
        raise RuntimeError(f"linalg.eigh: Expected UPLO argument to be 'L' or 'U', but got {UPLO}")
    n = A.shape[-1]
    shapes = ((n,), (n, n))
    return _EighResult(*_unpack(apply(_eigh, A, shapes=shapes, UPLO=UPLO), shapes))


def eigvalsh(A, UPLO="L"):
    """The eigenvalues of symmetric matrices, ascending (the gradient is ``V @ diag(g) @ V.mT``)."""
    return eigh(A, UPLO).eigenvalues


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


def pinverse(input, rcond=1e-15):
    """``torch.pinverse``: ``linalg.pinv`` with a relative cutoff ``rcond``."""
    return pinv(input, rtol=rcond)


import collections  # noqa: E402

_SlogdetResult = collections.namedtuple("slogdet", ["sign", "logabsdet"])
_QRResult = collections.namedtuple("qr", ["Q", "R"])
_SVDResult = collections.namedtuple("svd", ["U", "S", "Vh"])
_EighResult = collections.namedtuple("eigh", ["eigenvalues", "eigenvectors"])

__all__ = ["slogdet", "logdet", "pinverse"]
