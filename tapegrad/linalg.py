"""``tapegrad.linalg``: PyTorch's ``torch.linalg`` namespace.

The primitives (solve, slogdet, cholesky, qr, svd, eigh; inv and det) live in ``tapegrad.ops``
with their VJPs; this module adds PyTorch's signatures and the compositions (norms, pinv,
matrix_rank, lstsq, ...). Everything is batched over leading dims and differentiable.

>>> A = tapegrad.randn(3, 3, dtype=tapegrad.float64)
>>> x = tapegrad.linalg.solve(A @ A.mT + tapegrad.eye(3, dtype=tapegrad.float64), tapegrad.ones(3, dtype=tapegrad.float64))
>>> tapegrad.linalg.norm(x), tapegrad.linalg.matrix_norm(A, "nuc")
"""
from __future__ import annotations

import collections
import math

import numpy as np

from .tensor import Tensor
from .ops import decomp as _d
from .ops import elementwise as _e
from .ops import matrix as _m
from .ops import reduction as _r
from .ops import shape as _s
from .ops.decomp import LinAlgError, cholesky, eigh, eigvalsh, pinv, qr, slogdet, solve, svd, svdvals  # noqa: F401
from .ops.linalg import bmm, matmul, mm  # noqa: F401  (what tapegrad.linalg held before)

__all__ = ["LinAlgError", "cholesky", "cholesky_ex", "cross", "det", "diagonal", "eigh", "eigvalsh", "inv",
           "inv_ex", "lstsq", "matmul", "matrix_norm", "matrix_power", "matrix_rank", "multi_dot", "norm", "pinv",
           "qr", "slogdet", "solve", "solve_ex", "svd", "svdvals", "vecdot", "vector_norm"]


def inv(A):
    """The inverse of each square matrix; a singular one raises ``LinAlgError`` (a RuntimeError)."""
    _d._check_matrix(A, "linalg.inv", square=True)
    try:
        return _m.inverse(A)
    except RuntimeError:
        raise LinAlgError(f"linalg.inv: The input matrix (shape {tuple(A.shape)}) is singular, it is not "
                          f"invertible.") from None


def det(A):
    """The determinant of each square matrix (the gradient needs it invertible)."""
    _d._check_matrix(A, "linalg.det", square=True)
    return _m.det(A)


_Ex = collections.namedtuple("inv_ex", ["inverse", "info"])
_CholEx = collections.namedtuple("cholesky_ex", ["L", "info"])
_SolveEx = collections.namedtuple("solve_ex", ["result", "info"])


def _info(A, ok):
    return Tensor._wrap(np.zeros(A.shape[:-2], np.int32) if ok else np.ones(A.shape[:-2], np.int32))


def inv_ex(A, *, check_errors=False):
    try:
        return _Ex(inv(A), _info(A, True))
    except LinAlgError:
        if check_errors:
            raise
        return _Ex(Tensor._wrap(np.full(A.shape, np.nan, A._data.dtype)), _info(A, False))


def cholesky_ex(A, *, upper=False, check_errors=False):
    try:
        return _CholEx(cholesky(A, upper=upper), _info(A, True))
    except LinAlgError:
        if check_errors:
            raise
        return _CholEx(Tensor._wrap(np.full(A.shape, np.nan, A._data.dtype)), _info(A, False))


def solve_ex(A, B, *, left=True, check_errors=False):
    try:
        return _SolveEx(solve(A, B, left=left), _info(A, True))
    except LinAlgError:
        if check_errors:
            raise
        return _SolveEx(Tensor._wrap(np.full(B.shape, np.nan, B._data.dtype)), _info(A, False))


# ---------------------------------------------------------------- norms
def vector_norm(x, ord=2, dim=None, keepdim=False, *, dtype=None):
    """``sum(|x|^ord)^(1/ord)`` over ``dim`` (all elements by default); ord may be inf, -inf or 0."""
    if isinstance(ord, str):
        raise RuntimeError(f"linalg.vector_norm: ord must be a number, got {ord!r}")
    return _r.norm(x, float(ord), dim, keepdim, dtype)


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
        return _r.norm(A, 2.0, (d0, d1), keepdim)
    if ord in ("nuc", 2, -2):
        S = svdvals(_s.movedim(A, (d0, d1), (-2, -1)))
        out = S.sum(-1) if ord == "nuc" else _r.amax(S, -1) if ord == 2 else _r.amin(S, -1)
        if keepdim:
            for d in sorted((d0, d1)):
                out = out.unsqueeze(d)
        return out
    if ord in (1, -1, math.inf, -math.inf):
        summed, reduced = (d0, d1) if abs(ord) == 1 else (d1, d0)
        red = _r.amax if ord > 0 else _r.amin
        out = red(_e.abs(A).sum(summed, keepdim=True), reduced, keepdim=True)
        return out if keepdim else out.squeeze(max(d0, d1)).squeeze(min(d0, d1))
    raise RuntimeError(f"linalg.matrix_norm: Order {ord} not supported.")


def norm(A, ord=None, dim=None, keepdim=False, *, dtype=None):
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


# ---------------------------------------------------------------- pinv, rank, lstsq
def _tolerance(S, m, n, atol, rtol):
    """PyTorch's rule: tol = max(atol, rtol * S.max()); rtol defaults to eps * max(m, n) unless atol > 0."""
    if rtol is None:
        rtol = 0.0 if atol is not None and np.any(np.asarray(_data(atol)) > 0) else np.finfo(S.dtype).eps * max(m, n)
    atol = 0.0 if atol is None else atol
    smax = S.max(axis=-1, keepdims=True) if S.shape[-1] else np.zeros(S.shape[:-1] + (1,), S.dtype)
    return np.maximum(np.asarray(_data(atol))[..., None], np.asarray(_data(rtol))[..., None] * smax)


def _data(v):
    return v._data if isinstance(v, Tensor) else v


def matrix_rank(A, *, atol=None, rtol=None, hermitian=False, tol=None):
    """The number of singular values above ``max(atol, rtol * largest)`` (int64, not differentiable)."""
    _d._check_matrix(A, "linalg.matrix_rank")
    if tol is not None:
        atol, rtol = tol, 0.0
    m, n = A.shape[-2], A.shape[-1]
    S = np.abs(np.linalg.eigvalsh(A._data)) if hermitian else np.linalg.svd(A._data, compute_uv=False)
    tolv = _tolerance(S, m, n, atol, rtol)
    return Tensor._wrap(np.asarray((S > tolv).sum(-1), dtype=np.int64))


_Lstsq = collections.namedtuple("lstsq", ["solution", "residuals", "rank", "singular_values"])


def lstsq(A, B, rcond=None, *, driver=None):
    """The least-squares solution of ``A @ X = B`` (``pinv(A) @ B``, differentiable in A and B).

    As PyTorch's default CPU driver 'gelsy': ``residuals`` and ``singular_values`` are empty and
    ``rank`` is the numerical rank; 'gelsd'/'gelss' also fill ``singular_values`` and, for tall
    full-rank A, ``residuals`` (the squared residual norms per column)."""
    _d._check_matrix(A, "linalg.lstsq")
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
    S, res = empty, empty
    if driver in ("gelsd", "gelss"):
        S = Tensor._wrap(np.linalg.svd(A._data, compute_uv=False))
        if m > n and np.all(rank._data == n):
            res = ((matmul(A, X) - Bm) ** 2).sum(-2)
    return _Lstsq(X.squeeze(-1) if vector else X, res, rank, S)


# ---------------------------------------------------------------- small compositions
def matrix_power(A, n):
    """``A`` multiplied by itself ``n`` times (``n < 0``: powers of the inverse; 0: the identity)."""
    _d._check_matrix(A, "linalg.matrix_power", square=True)
    if not isinstance(n, (int, np.integer)):
        raise TypeError(f"linalg.matrix_power: n must be an int, got {type(n).__name__}")
    if n == 0:
        return Tensor._wrap(np.broadcast_to(np.eye(A.shape[-1], dtype=A._data.dtype), A.shape).copy())
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
    """``sum(x * y, dim)`` with broadcasting."""
    return (x * y).sum(dim)


def cross(input, other, *, dim=-1):
    return _m.cross(input, other, dim)


def diagonal(A, *, offset=0, dim1=-2, dim2=-1):
    return _m.diagonal(A, offset, dim1, dim2)
