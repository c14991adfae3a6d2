"""PyTorch functions a ported script reaches for that are compositions of the primitive ops
(so each gets its gradient, and double backward, from the ops it is built of), plus the
integer-valued helpers that have no gradient (``bincount``, ``histc``, ``tril_indices``, ...).
"""
from __future__ import annotations

import builtins
import collections
import math

import numpy as np

from .. import _dtype
Tensor = None  # the Tensor class, bound by tensor.py (ops.bind_tensor): the ops sit below it
from . import elementwise as E
from . import compare as C
from . import reduction as R
from . import shape as S
from . import matrix as M
from . import sorting as SO
from .indexing import getitem
from .linalg import matmul
from ._util import const, norm_dim, pair


# ---------------------------------------------------------------- aliases PyTorch keeps
def true_divide(input, other):
    return E.div(input, other)


def divide(input, other, *, rounding_mode=None):
    return E.div(input, other, rounding_mode=rounding_mode)


def multiply(input, other):
    return E.mul(input, other)


def subtract(input, other, *, alpha=1):
    return E.sub(input, other, alpha=alpha)


def negative(input):
    return E.neg(input)


def positive(input):
    return input


def absolute(input):
    return E.abs(input)


def clamp_min(input, min):
    return E.clamp(input, min=min)


def clamp_max(input, max):
    return E.clamp(input, max=max)


def ravel(input):
    return S.reshape(input, -1)


def select(input, dim, index):
    """``input[..., index, ...]`` with ``index`` at ``dim`` (that dim removed)."""
    d = norm_dim(dim, input.ndim, "select")
    n = input.shape[d]
    if not -n <= index < n:
        raise IndexError(f"select(): index {index} out of range for tensor of size {tuple(input.shape)} at "
                         f"dimension {dim}")
    return getitem(input, (slice(None),) * d + (int(index),))


# ---------------------------------------------------------------- elementwise
def tan(input):
    return E.sin(input) / E.cos(input)


def deg2rad(input):
    x = _float(input)
    return x * (math.pi / 180.0)


def rad2deg(input):
    x = _float(input)
    return x * (180.0 / math.pi)


def _float(x):
    return x if x.dtype.kind == "f" else x.to(_dtype.get_default_dtype())


def sinc(input):
    """``sin(pi x) / (pi x)``, 1 at 0."""
    x = _float(input)
    zero = x == 0
    safe = E.where(zero, const(1.0, x.dtype), x) * math.pi
    return E.where(zero, const(1.0, x.dtype), E.sin(safe) / safe)


def signbit(input):
    return Tensor._wrap(np.signbit(input._data))


def copysign(input, other):
    """``|input|`` with the sign of ``other`` (floats, as in PyTorch)."""
    x, y = pair(input, other, "copysign")
    x = _float(x)
    sign = E.where(Tensor._wrap(np.signbit(y._data)), const(-1.0, x.dtype), const(1.0, x.dtype))
    return E.abs(x) * sign


def float_power(input, exponent):
    """``input ** exponent`` in float64."""
    x = input.to(_dtype.float64) if isinstance(input, Tensor) else input
    e = exponent.to(_dtype.float64) if isinstance(exponent, Tensor) else builtins.float(exponent)
    if not isinstance(x, Tensor):
        x = const(x, _dtype.float64)
    return E.pow(x, e)


def heaviside(input, values):
    """0 where ``input < 0``, ``values`` where ``input == 0``, 1 where ``input > 0``."""
    x, v = pair(input, values, "heaviside")
    return Tensor._wrap(np.heaviside(x._data, v._data).astype(x.dtype))


def xlogy(input, other):
    """``input * log(other)``, 0 where ``input == 0`` (unless ``other`` is NaN)."""
    x, y = pair(input, other, "xlogy")
    x, y = _float(x), _float(y)
    # log(other) is replaced only where input == 0 and other <= 0, so d/dinput stays log(other)
    fix = (x == 0) & ~C.isnan(y) & (y <= 0)
    return x * E.log(E.where(fix, const(1.0, y.dtype), y))


def logaddexp2(input, other):
    from .special import logaddexp
    ln2 = math.log(2.0)
    return logaddexp(input * ln2, other * ln2) / ln2


def fmax(input, other):
    """Elementwise maximum that ignores NaN (NaN only where both are NaN)."""
    x, y = pair(input, other, "fmax")
    xn, yn = C.isnan(x), C.isnan(y)
    return E.where(yn, x, E.where(xn, y, E.maximum(x, y)))


def fmin(input, other):
    x, y = pair(input, other, "fmin")
    xn, yn = C.isnan(x), C.isnan(y)
    return E.where(yn, x, E.where(xn, y, E.minimum(x, y)))


def isneginf(input):
    return Tensor._wrap(np.isneginf(input._data))


def isposinf(input):
    return Tensor._wrap(np.isposinf(input._data))


def isreal(input):
    return Tensor._wrap(np.ones(input.shape, dtype=bool))


def isin(elements, test_elements, *, assume_unique=False, invert=False):
    e = elements._data if isinstance(elements, Tensor) else np.asarray(elements)
    t = test_elements._data if isinstance(test_elements, Tensor) else np.asarray(test_elements)
    return Tensor._wrap(np.isin(e, t, assume_unique=assume_unique, invert=invert))


# ---------------------------------------------------------------- reductions
def count_nonzero(input, dim=None):
    return R.sum(C.ne(input, 0), dim)


_minmax = collections.namedtuple("aminmax", ["min", "max"])


def aminmax(input, *, dim=None, keepdim=False):
    """``(min, max)`` over ``dim`` (all elements when None), as a namedtuple."""
    d = () if dim is None else dim
    return _minmax(R.amin(input, d, keepdim), R.amax(input, d, keepdim))


def _var_args(unbiased, correction, dim):
    # var_mean(x, dim, unbiased) or var_mean(x, True): a bool in dim's place is ``unbiased``
    if isinstance(dim, bool):
        unbiased, dim = dim, None
    return unbiased, correction, dim


def var_mean(input, dim=None, unbiased=None, keepdim=False, *, correction=None):
    unbiased, correction, dim = _var_args(unbiased, correction, dim)
    return (R.var(input, dim, unbiased, keepdim, correction=correction), R.mean(input, dim, keepdim))


def std_mean(input, dim=None, unbiased=None, keepdim=False, *, correction=None):
    unbiased, correction, dim = _var_args(unbiased, correction, dim)
    return (R.std(input, dim, unbiased, keepdim, correction=correction), R.mean(input, dim, keepdim))


def logcumsumexp(input, dim):
    """``log(cumsum(exp(input)))`` along ``dim``, shifted by the maximum for stability."""
    d = norm_dim(dim, input.ndim, "logcumsumexp")
    if input.dtype.kind != "f":
        raise RuntimeError(f"logcumsumexp: not implemented for {input.dtype} tensors")
    if input.numel() == 0:
        return input * 1
    m = R.amax(input.detach(), d, True) if input.ndim else input.detach()
    m = E.where(C.isfinite(m), m, const(0.0, input.dtype))
    return E.log(R.cumsum(E.exp(input - m), d)) + m


def diff(input, n=1, dim=-1, prepend=None, append=None):
    """The ``n``-th forward difference along ``dim`` (``prepend``/``append`` joined first)."""
    if input.ndim == 0:
        raise RuntimeError("diff expects input to be at least one-dimensional")
    d = norm_dim(dim, input.ndim, "diff")
    parts = [p for p in (prepend, input, append) if p is not None]
    x = S.cat(parts, d) if len(parts) > 1 else input
    for _ in range(n):
        length = x.shape[d]
        if length == 0:
            break
        hi = S.narrow(x, d, 1, length - 1)
        lo = S.narrow(x, d, 0, length - 1)
        x = C.ne(hi, lo) if x.dtype == np.bool_ else hi - lo
    return x


def bincount(input, weights=None, minlength=0):
    """Counts of each value in a 1-D tensor of non-negative ints (sums of ``weights`` if given)."""
    a = input._data
    if a.ndim != 1 or a.dtype.kind not in "iu":
        raise RuntimeError(f"bincount only supports 1-d non-negative integral inputs, got shape "
                           f"{tuple(a.shape)} and dtype {_dtype.name(a.dtype)}")
    if a.size and a.min() < 0:
        raise RuntimeError(f"bincount only supports 1-d non-negative integral inputs (got {int(a.min())})")
    if weights is None:
        return Tensor._wrap(np.bincount(a, minlength=minlength).astype(np.int64))
    w = weights._data
    out_dtype = w.dtype if w.dtype.kind == "f" else np.float64
    return Tensor._wrap(np.bincount(a, weights=w, minlength=minlength).astype(out_dtype))


def histc(input, bins=100, min=0, max=0):
    """A histogram of ``bins`` equal bins over [min, max] (the data's range when both are 0)."""
    a = input._data
    lo, hi = builtins.float(min), builtins.float(max)
    if lo == hi and a.size:
        lo, hi = builtins.float(a.min()), builtins.float(a.max())
    if lo == hi:
        lo, hi = lo - 1, hi + 1
    if lo > hi:
        raise RuntimeError(f"histc: max must be larger than min (got min={min}, max={max})")
    counts, _ = np.histogram(a[(a >= lo) & (a <= hi)], bins=bins, range=(lo, hi))
    return Tensor._wrap(counts.astype(a.dtype))


def quantile(input, q, dim=None, keepdim=False, *, interpolation="linear"):
    """The ``q``-th quantiles along ``dim`` (all elements when None), PyTorch's interpolation modes."""
    if interpolation not in ("linear", "lower", "higher", "midpoint", "nearest"):
        raise ValueError(f"quantile() interpolation must be one of linear, lower, higher, midpoint or nearest. "
                         f"Got {interpolation}")
    qs = q._data if isinstance(q, Tensor) else np.asarray(q, dtype=np.float64)
    if qs.ndim > 1:
        raise RuntimeError(f"quantile() q must be a scalar or 1D tensor, got {qs.ndim}D")
    if ((qs < 0) | (qs > 1)).any():
        raise RuntimeError("quantile() q values must be in the range [0, 1]")
    x = S.reshape(input, -1) if dim is None else input
    d = 0 if dim is None else norm_dim(dim, input.ndim, "quantile")
    srt = SO.sort(x, d).values
    n = srt.shape[d]
    outs = []
    for qv in np.atleast_1d(qs):
        pos = builtins.float(qv) * (n - 1)
        lo_i, hi_i = math.floor(pos), math.ceil(pos)
        if interpolation == "lower":
            hi_i = lo_i
        elif interpolation == "higher":
            lo_i = hi_i
        elif interpolation == "nearest":
            lo_i = hi_i = builtins.int(np.round(pos))  # round half to even, as PyTorch
        lo = S.narrow(srt, d, lo_i, 1)
        hi = S.narrow(srt, d, hi_i, 1)
        frac = 0.5 if interpolation == "midpoint" else pos - lo_i
        v = lo if lo_i == hi_i else lo + (hi - lo) * frac
        if dim is None:
            v = S.reshape(v, (1,) * input.ndim if keepdim else ())
        elif not keepdim:
            v = S.squeeze(v, d)
        outs.append(v)
    return outs[0] if np.ndim(qs) == 0 else S.stack(outs, 0)


# ---------------------------------------------------------------- splitting
def tensor_split(input, indices_or_sections, dim=0):
    """Split into ``n`` nearly equal parts (the first ones one larger) or at the given indices."""
    if input.ndim == 0:
        raise RuntimeError("tensor_split expected at least a 1-dimensional tensor, but got a tensor with 0 dims")
    d = norm_dim(dim, input.ndim, "tensor_split")
    size = input.shape[d]
    if isinstance(indices_or_sections, Tensor):
        indices_or_sections = indices_or_sections.tolist()
    if isinstance(indices_or_sections, (builtins.int, np.integer)):
        n = builtins.int(indices_or_sections)
        if n <= 0:
            raise RuntimeError(f"tensor_split: number of sections must be larger than 0, got {n}")
        q, r = divmod(size, n)
        bounds = np.cumsum([0] + [q + 1] * r + [q] * (n - r))
    else:
        idx = [builtins.min(builtins.max(builtins.int(i), 0), size) for i in indices_or_sections]
        bounds = [0] + idx + [size]
    return tuple(S.narrow(input, d, builtins.int(a), builtins.max(builtins.int(b) - builtins.int(a), 0))
                 for a, b in zip(bounds[:-1], bounds[1:]))


def hsplit(input, indices_or_sections):
    return _nsplit(input, indices_or_sections, 1 if input.ndim > 1 else 0, "hsplit")


def vsplit(input, indices_or_sections):
    return _nsplit(input, indices_or_sections, 0, "vsplit")


def dsplit(input, indices_or_sections):
    return _nsplit(input, indices_or_sections, 2, "dsplit")


def _nsplit(input, sections, dim, name):
    if isinstance(sections, (builtins.int, np.integer)) and input.shape[dim] % sections:
        raise RuntimeError(f"torch.{name} attempted to split along dimension {dim}, but the size of the dimension "
                           f"{input.shape[dim]} is not divisible by the split_size {sections}!")
    return tensor_split(input, sections, dim)


# ---------------------------------------------------------------- products and distances
def tensordot(a, b, dims=2):
    """Contract ``a``'s last ``dims`` dims with ``b``'s first (or the listed dim pairs)."""
    if isinstance(dims, Tensor):
        dims = dims.tolist()
    if isinstance(dims, (builtins.int, np.integer)):
        da = list(range(a.ndim - dims, a.ndim))
        db = list(range(dims))
    else:
        da, db = ([dims[0]] if isinstance(dims[0], builtins.int) else list(dims[0]),
                  [dims[1]] if isinstance(dims[1], builtins.int) else list(dims[1]))
        da = [norm_dim(x, a.ndim, "tensordot") for x in da]
        db = [norm_dim(x, b.ndim, "tensordot") for x in db]
    if [a.shape[i] for i in da] != [b.shape[i] for i in db]:
        raise RuntimeError(f"tensordot: contracted dimensions of shapes {tuple(a.shape)} (dims {da}) and "
                           f"{tuple(b.shape)} (dims {db}) do not match")
    free_a = [i for i in range(a.ndim) if i not in da]
    free_b = [i for i in range(b.ndim) if i not in db]
    k = builtins.int(np.prod([a.shape[i] for i in da], dtype=np.int64))
    am = S.reshape(S.permute(a, free_a + da), (-1, k))
    bm = S.reshape(S.permute(b, db + free_b), (k, -1))
    return S.reshape(matmul(am, bm), tuple(a.shape[i] for i in free_a) + tuple(b.shape[i] for i in free_b))


def inner(input, other):
    if input.ndim == 0 or other.ndim == 0:
        return E.mul(input, other)
    return tensordot(input, other, ([-1], [-1]))


def vdot(input, other):
    return M.dot(input, other)


def kron(input, other):
    """The Kronecker product."""
    nd = builtins.max(input.ndim, other.ndim)
    a = S.reshape(input, (1,) * (nd - input.ndim) + tuple(input.shape))
    b = S.reshape(other, (1,) * (nd - other.ndim) + tuple(other.shape))
    a_ex = S.reshape(a, tuple(x for s in a.shape for x in (s, 1)))
    b_ex = S.reshape(b, tuple(x for s in b.shape for x in (1, s)))
    return S.reshape(a_ex * b_ex, tuple(p * q for p, q in zip(a.shape, b.shape)))


def addr(input, vec1, vec2, *, beta=1, alpha=1):
    out = M.outer(vec1, vec2)
    if alpha != 1:
        out = out * alpha
    return out if beta == 0 else (input if beta == 1 else input * beta) + out


def matrix_power(input, n):
    """``input`` multiplied by itself ``n`` times (the inverse's power for negative ``n``)."""
    if input.ndim < 2 or input.shape[-1] != input.shape[-2]:
        raise RuntimeError(f"matrix_power: expected a square matrix or batch of them, got shape "
                           f"{tuple(input.shape)}")
    if n == 0:
        eye = np.broadcast_to(np.eye(input.shape[-1], dtype=input.dtype), input.shape).copy()
        return Tensor._wrap(eye)
    base = M.inverse(input) if n < 0 else input
    result = None
    p = builtins.abs(builtins.int(n))
    while p:  # square-and-multiply
        if p & 1:
            result = base if result is None else matmul(result, base)
        p >>= 1
        if p:
            base = matmul(base, base)
    return result


def chain_matmul(*matrices):
    return multi_dot(matrices)


def multi_dot(tensors):
    out = tensors[0]
    for t in tensors[1:]:
        out = matmul(out, t)
    return out


def cdist(x1, x2, p=2.0, compute_mode=None):
    """Pairwise p-norm distances between the rows of ``x1`` (..., P, M) and ``x2`` (..., R, M)."""
    if x1.ndim < 2 or x2.ndim < 2 or x1.shape[-1] != x2.shape[-1]:
        raise RuntimeError(f"cdist: X1 and X2 must have the same number of columns, got shapes "
                           f"{tuple(x1.shape)} and {tuple(x2.shape)}")
    diff = S.unsqueeze(x1, -2) - S.unsqueeze(x2, -3)
    return _pnorm_last(diff, p)


def _pnorm_last(diff, p):
    ad = E.abs(diff)
    if p == 0:
        return R.sum(C.ne(diff, 0).to(diff.dtype), -1)
    if p == builtins.float("inf"):
        return R.amax(ad, -1)
    if p == 1:
        return R.sum(ad, -1)
    s = R.sum(ad ** p, -1)
    zero = s == 0  # the gradient of a zero distance is 0, as in PyTorch
    safe = E.where(zero, const(1.0, s.dtype), s)
    return E.where(zero, const(0.0, s.dtype), safe ** (1.0 / p))


def dist(input, other, p=2):
    x, y = pair(input, other, "dist")
    return _pnorm_last(S.reshape(x - y, -1), p)


def pdist(input, p=2):
    """The upper-triangle (i < j) of ``cdist(input, input)``, flattened."""
    n = input.shape[0]
    i, j = np.triu_indices(n, 1)
    diff = getitem(input, Tensor._wrap(i)) - getitem(input, Tensor._wrap(j))
    return _pnorm_last(diff, p)


def cartesian_prod(*tensors):
    from .layout import meshgrid
    if len(tensors) == 1:
        return tensors[0]
    grids = meshgrid(*tensors, indexing="ij")
    return S.stack([S.reshape(g, -1) for g in grids], 1)


def block_diag(*tensors):
    """A block-diagonal matrix of the (0-, 1- or 2-D) tensors."""
    mats = [S.reshape(t, (1, -1)) if t.ndim < 2 else t for t in tensors]
    if not mats:
        return Tensor._wrap(np.zeros((1, 0), dtype=_dtype.get_default_dtype()))
    dtype = mats[0].dtype
    for m in mats[1:]:
        dtype = _dtype.result_type(np.empty(0, dtype), np.empty(0, m.dtype))
    cols = builtins.sum(m.shape[1] for m in mats)
    rows, start = [], 0
    for m in mats:
        m = m.to(dtype)
        w = m.shape[1]
        rows.append(S.pad(m, (start, cols - start - w)))
        start += w
    return S.cat(rows, 0)


def tril_indices(row, col, offset=0, *, dtype=None, device=None):
    return Tensor._wrap(np.stack(np.tril_indices(row, offset, col)).astype(_dtype.to_dtype(dtype or "int64")))


def triu_indices(row, col, offset=0, *, dtype=None, device=None):
    return Tensor._wrap(np.stack(np.triu_indices(row, offset, col)).astype(_dtype.to_dtype(dtype or "int64")))


def diagflat(input, offset=0):
    return M.diag(S.reshape(input, -1), offset)


def vander(x, N=None, increasing=False):
    n = x.shape[0] if N is None else N
    powers = [x ** k if k else E.mul(x, 0) + 1 for k in range(n)]
    cols = powers if increasing else powers[::-1]
    return S.stack(cols, 1) if cols else Tensor._wrap(np.zeros((x.shape[0], 0), x.dtype))


def trapezoid(y, x=None, *, dx=None, dim=-1):
    d = norm_dim(dim, y.ndim, "trapezoid")
    n = y.shape[d]
    if n == 0:
        return R.sum(y, d)
    avg = (S.narrow(y, d, 1, n - 1) + S.narrow(y, d, 0, n - 1)) * 0.5
    if x is not None:
        spacing = diff(x, dim=-1 if x.ndim == 1 else d)
        if x.ndim == 1:
            shape = [1] * y.ndim
            shape[d] = n - 1
            spacing = S.reshape(spacing, shape)
        return R.sum(avg * spacing, d)
    return R.sum(avg, d) * (1.0 if dx is None else dx)


trapz = trapezoid


def cov(input, *, correction=1, fweights=None, aweights=None):
    """The covariance of the rows (variables) of ``input`` over its columns (observations)."""
    if fweights is not None or aweights is not None:
        raise NotImplementedError("cov: fweights/aweights are not supported by tapegrad")
    x = S.reshape(input, (1, -1)) if input.ndim < 2 else input
    n = x.shape[1]
    xc = x - R.mean(x, 1, True)
    c = matmul(xc, xc.mT) / builtins.max(n - correction, 0)
    return S.reshape(c, ()) if input.ndim < 2 else c


def corrcoef(input):
    c = cov(input)
    if c.ndim == 0:
        return c / c
    d = E.sqrt(M.diagonal(c))
    return E.clamp(c / S.unsqueeze(d, 1) / S.unsqueeze(d, 0), -1, 1)


def index_copy(input, dim, index, source):
    """``input`` with the slices at ``index`` along ``dim`` replaced by ``source``'s."""
    from .layout import index_add, index_fill
    return index_add(index_fill(input, dim, index, 0), dim, index, source)


# ---------------------------------------------------------------- more in-place variants
def _inplace_of(fn, name):
    from .inplace import inplace

    def method(self, *args, **kwargs):
        tensors = [a for a in args if isinstance(a, Tensor)]
        rest = [a for a in args if not isinstance(a, Tensor)]
        if rest or kwargs:  # non-tensor arguments bound in a closure, tensor ones passed to be recorded
            pos = [(i, a) for i, a in enumerate(args)]

            def call(s, *ts):
                it = iter(ts)
                return fn(s, *[next(it) if isinstance(a, Tensor) else a for _, a in pos], **kwargs)
            return inplace(self, call, name, *tensors)
        return inplace(self, lambda s, *ts: fn(s, *ts), name, *tensors)
    method.__name__ = name
    return method


def _cmp(fn):
    return lambda s, o: fn(s, o).to(s.dtype)


ceil_ = _inplace_of(E.ceil, "ceil_")
trunc_ = _inplace_of(E.trunc, "trunc_")
fix_ = _inplace_of(E.trunc, "fix_")
erf_ = _inplace_of(E.erf, "erf_")
tan_ = _inplace_of(tan, "tan_")
clamp_min_ = _inplace_of(clamp_min, "clamp_min_")
clamp_max_ = _inplace_of(clamp_max, "clamp_max_")
cumsum_ = _inplace_of(R.cumsum, "cumsum_")
xlogy_ = _inplace_of(xlogy, "xlogy_")
copysign_ = _inplace_of(copysign, "copysign_")
deg2rad_ = _inplace_of(deg2rad, "deg2rad_")
rad2deg_ = _inplace_of(rad2deg, "rad2deg_")
index_copy_ = _inplace_of(index_copy, "index_copy_")
eq_ = _inplace_of(_cmp(C.eq), "eq_")
ne_ = _inplace_of(_cmp(C.ne), "ne_")
lt_ = _inplace_of(_cmp(C.lt), "lt_")
le_ = _inplace_of(_cmp(C.le), "le_")
gt_ = _inplace_of(_cmp(C.gt), "gt_")
ge_ = _inplace_of(_cmp(C.ge), "ge_")
logical_not_ = _inplace_of(lambda s: C.logical_not(s).to(s.dtype), "logical_not_")


def remainder_(self, other):
    from .special import remainder
    return _inplace_of(remainder, "remainder_")(self, other)


def fmod_(self, other):
    from .special import fmod
    return _inplace_of(fmod, "fmod_")(self, other)


def fill_diagonal_(self, fill_value, wrap=False):
    """Write ``fill_value`` on the main diagonal (all dims equal, or a tall matrix with ``wrap``)."""
    from .inplace import _check_leaf, _write
    from .._tape import grad_mode
    if self.ndim < 2 or (self.ndim > 2 and len(set(self.shape)) != 1):
        raise RuntimeError(f"fill_diagonal_: dimensions must all be equal for tensors of more than 2 dims, got "
                           f"{tuple(self.shape)}")
    if grad_mode.state.enabled and self._requires_grad:
        _check_leaf(self, "fill_diagonal_")
    a = self._data.copy()
    if self.ndim == 2:
        np.fill_diagonal(a, fill_value, wrap=wrap)
    else:
        np.fill_diagonal(a, fill_value)
    _write(self, a, "fill_diagonal_")
    return self


__all__ = ["true_divide", "divide", "multiply", "subtract", "negative", "positive", "absolute", "clamp_min",
           "clamp_max", "ravel", "select", "tan", "deg2rad", "rad2deg", "sinc", "signbit", "copysign", "float_power",
           "heaviside", "xlogy", "logaddexp2", "fmax", "fmin", "isneginf", "isposinf", "isreal", "isin",
           "count_nonzero", "aminmax", "var_mean", "std_mean", "logcumsumexp", "diff", "bincount", "histc",
           "quantile", "tensor_split", "hsplit", "vsplit", "dsplit", "tensordot", "inner", "vdot", "kron", "addr",
           "matrix_power", "chain_matmul", "cdist", "dist", "pdist", "cartesian_prod", "block_diag", "tril_indices",
           "triu_indices", "diagflat", "vander", "trapezoid", "trapz", "cov", "corrcoef", "index_copy", "ceil_", "trunc_",
           "fix_", "erf_", "tan_", "clamp_min_", "clamp_max_", "cumsum_", "xlogy_", "copysign_", "deg2rad_",
           "rad2deg_", "index_copy_", "eq_", "ne_", "lt_", "le_", "gt_", "ge_", "logical_not_", "remainder_", "fmod_",
           "fill_diagonal_"]
