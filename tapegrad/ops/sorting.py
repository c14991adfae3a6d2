"""Sorting and order statistics: ``sort``/``argsort``/``topk``, ``kthvalue``/``median``/``mode``/
``quantile``, ``unique`` and ``searchsorted``/``bucketize``.
"""
from __future__ import annotations

import builtins

import numpy as np

from .. import _C, _dtype
from .._tape import grad_mode
from .._tape.registry import apply, apply_aux, defop
from ._util import const, names_allocations, norm_dim
from .shape import clone, narrow, reshape, squeeze, stack
from .indexing import _gather, _gather_vjp, gather, getitem
from .complex import refuse_complex
from .pointwise import where
from .reduction import _named
from .surface import public

Tensor = None  # the Tensor class, bound by tensor.py (ops.bind_tensor): the ops sit below it


_sort_t, _topk_t, _kth_t, _median_t, _mode_t = (_named(n) for n in ("sort", "topk", "kthvalue", "median", "mode"))


_NATIVE_CHARS = tuple(np.dtype(t).char for t in (np.float32, np.float64, np.int32, np.int64))


def _native_order(a):
    """Whether csrc's sort and topk (sort.h, topk.h) take ``a``: a plain numpy array of their dtypes."""
    return type(a) is np.ndarray and a.dtype.char in _NATIVE_CHARS and a.size > 0


def _argsort_np(a, axis, descending, stable=True):
    """Indices sorting ``a`` along ``axis``; NaN counts as the largest value, as in PyTorch (numpy's
    sort: the reference the native kernels are tested against)."""
    if a.dtype == np.bool_:
        a = a.astype(np.int8)
    if not descending:
        return np.argsort(a, axis=axis, kind="stable")
    if _dtype.kind_of(a.dtype) == "f":  # NaNs first, then descending; lexsort is stable
        return np.lexsort((-a, ~np.isnan(a)), axis=axis)
    if a.dtype.kind == "u":
        a = a.astype(np.int64)
    return np.argsort(-a, axis=axis, kind="stable")


def _argsort(a, axis, descending):
    """``_argsort_np``'s int64 indices, from csrc's sort (sort.h) where it takes ``a``."""
    if _native_order(a) and a.ndim:
        return _C.sort(np.ascontiguousarray(a), axis, descending)[1]
    return _argsort_np(a, axis, descending).astype(np.int64)


def _sort_fwd(x, *, dim, descending):
    """``(values, int64 indices)`` along ``dim``: csrc's radix sort (sort.h) where it takes ``x``, else
    numpy's stable argsort and a take. Any dtype: sorting moves values, so 16-bit ones stay exact."""
    if _native_order(x):
        return _C.sort(np.ascontiguousarray(x), dim, descending)
    idx = _argsort_np(x, dim, descending).astype(np.int64)
    return np.take_along_axis(x, idx, axis=dim), idx


# The indices are the node's aux: the VJP sends each g back to where its value came from (gather's
# VJP, since values = gather(x, dim, indices)).
_sort = defop("sort", _sort_fwd, lambda g, out, x, dim, descending, aux: _gather_vjp(g, out, x, dim, aux),
              saves=(), aux=True, exact16=True)


@public(method=True, out=True)
def sort(input, dim=-1, descending=False, stable=False):
    """``(values, indices)`` sorted along ``dim``; ties keep their order (always stable here).

    >>> tapegrad.sort(tapegrad.tensor([3.0, 1.0, 2.0]))
    sort(values=tensor([1., 2., 3.]), indices=tensor([1, 2, 0]))
    """
    refuse_complex(input, "sort")
    d = norm_dim(dim, input.ndim, "sort")
    if input.ndim == 0:
        return _sort_t(clone(input), Tensor._wrap(np.zeros((), np.int64)))
    values, idx = apply_aux(_sort, input, {"dim": d, "descending": bool(descending)})
    return _sort_t(values, Tensor._wrap(idx))


@public(method=True, out=True)
def argsort(input, dim=-1, descending=False, stable=False):
    """The indices that sort ``input`` along ``dim``."""
    return sort(input, dim, descending, stable).indices


@public(method=True, out=True)
def msort(input):
    """``input`` sorted along dimension 0."""
    return sort(input, 0).values


@public(method=True, out=True)
@names_allocations("topk")
def topk(input, k, dim=-1, largest=True, sorted=True):
    """The ``k`` largest (or smallest) entries along ``dim`` and their indices."""
    kind = input._data.dtype.kind
    if kind in "bc":
        refuse_complex(input, "topk")
        raise RuntimeError("topk does not support bool dtypes on CPU")
    shape = input._data.shape
    d = norm_dim(dim, len(shape), "topk")
    n = shape[d] if shape else 1
    if not 0 <= k <= n:
        raise RuntimeError(f"topk: selected index k ({k}) out of range for dimension {d} of size {n} "
                           f"(input shape {tuple(input.shape)})")
    if not shape:
        return _topk_t(clone(input), Tensor._wrap(np.zeros((), np.int64)))
    a = input._data
    if _native_order(a):
        # csrc's selection (topk.h): the first k of the stable sort below without sorting the rest;
        # indices in range by construction, so the gather op without gather()'s checks
        i = _C.topk_indices(np.ascontiguousarray(a), k, largest, d).astype(np.int64, copy=False)
        if input._requires_grad and grad_mode.state.enabled:
            return _topk_t(apply(_gather, input, dim=d, index=i), Tensor._wrap(i))
        # nothing to record: the gather op's forward (its kernel: these dtypes' elements copy) alone
        return _topk_t(Tensor._wrap(_C.gather(a, d, i, "gather")), Tensor._wrap(i))
    else:
        idx = _argsort_np(a, d, largest)
        idx = Tensor._wrap(np.ascontiguousarray(np.take(idx, np.arange(k), axis=d)).astype(np.int64))
    return _topk_t(gather(input, d, idx), idx)


def _select_kth(input, dim, keepdim, pos, opname, result):
    """The entry of sorted rank ``pos(n)`` along ``dim``, with its index."""
    d = norm_dim(dim, input.ndim, opname)
    n = input.shape[d] if input.ndim else 1
    if n == 0:
        raise IndexError(f"{opname}(): Expected reduction dim {d} to have non-zero size (input shape "
                         f"{tuple(input.shape)})")
    p = pos(n)
    if not 0 <= p < n:
        raise (RuntimeError if opname == "kthvalue" else IndexError)(
            f"{opname}(): selected number k out of range for dimension {d} of size {n} "
            f"(input shape {tuple(input.shape)})")
    if input.ndim == 0:
        return result(clone(input), Tensor._wrap(np.zeros((), np.int64)))
    order = _argsort(input._data, d, False)
    # median: a NaN in a slice is that slice's result; kthvalue ranks NaN above everything (both PyTorch's)
    if opname == "median" and _dtype.kind_of(input._data.dtype) == "f":
        nan = np.isnan(input._data)
        first_nan = np.argmax(nan, axis=d, keepdims=True)
        pick = np.where(nan.any(axis=d, keepdims=True), first_nan, np.take(order, [p], axis=d))
    else:
        pick = np.take(order, [p], axis=d)
    idx = Tensor._wrap(pick.astype(np.int64))
    values = gather(input, d, idx)
    if not keepdim:
        values, idx = squeeze(values, d), Tensor._wrap(idx._data.squeeze(d))
    return result(values, idx)


@public(method=True, out=True)
def kthvalue(input, k, dim=-1, keepdim=False):
    """The ``k``-th smallest entry (1-based) along ``dim``, and its index."""
    if input._data.dtype == np.bool_ and input.ndim:
        raise NotImplementedError("kthvalue: not implemented for 'Bool' tensors")
    return _select_kth(input, dim, keepdim, lambda n: k - 1, "kthvalue", _kth_t)


def _median_all_vjp(g, out, x):
    """Shared evenly among entries equal to the median (PyTorch's evenly_distribute_backward)."""
    hit = x._data == out._data
    return g * const(hit / builtins.max(int(hit.sum()), 1), g.dtype)


_median_all = defop("median_all", lambda x: np.asarray(_lower_median(x), dtype=x.dtype), _median_all_vjp,
                    saves_output=True)


def _lower_median(x):
    flat = x.reshape(-1)
    if _dtype.kind_of(flat.dtype) == "f" and np.isnan(flat).any():
        return np.nan
    return np.sort(flat, kind="stable")[(flat.size - 1) // 2]


@public(method=True, out=True)
def median(input, dim=None, keepdim=False):
    """No ``dim``: the lower median of all entries; with ``dim``: ``(values, indices)`` along it."""
    if input._data.dtype == np.bool_ and input._data.size:
        raise NotImplementedError("median: not implemented for 'Bool' tensors")
    if dim is None:
        if input._data.size == 0:
            # NaN, or for an integer dtype what PyTorch's NaN converts to: the dtype's lowest value
            kind = _dtype.kind_of(input._data.dtype)
            fill = np.nan if kind in "fc" else True if kind == "b" else np.iinfo(input._data.dtype).min
            return Tensor._wrap(np.asarray(fill, dtype=input.dtype))
        return apply(_median_all, input)
    return _select_kth(input, dim, keepdim, lambda n: (n - 1) // 2, "median", _median_t)


@public(method=True, out=True)
def nanmedian(input, dim=None, keepdim=False):
    """``median`` ignoring NaNs (NaN only where a slice is all NaN)."""
    if _dtype.kind_of(input._data.dtype) != "f" or not np.isnan(input._data).any():
        return median(input, dim, keepdim)
    if dim is None:
        kept = getitem(input.reshape(-1), ~np.isnan(input._data.reshape(-1)))
        return median(kept) if kept.numel() else Tensor._wrap(np.asarray(np.nan, input.dtype))
    d = norm_dim(dim, input.ndim, "nanmedian")
    counts = (~np.isnan(input._data)).sum(axis=d, keepdims=True)
    order = _argsort(input._data, d, False)  # NaNs sort last
    pick = np.take_along_axis(order, np.maximum(counts - 1, 0) // 2, axis=d).astype(np.int64)
    idx = Tensor._wrap(pick)
    values = gather(input, d, idx)
    if not keepdim:
        values, idx = squeeze(values, d), Tensor._wrap(pick.squeeze(d))
    return _median_t(values, idx)


@public(method=True, out=True)
def mode(input, dim=-1, keepdim=False):
    """The most frequent value along ``dim`` (the smallest among equally frequent) and an index of it."""
    if input.ndim == 0:
        return _mode_t(clone(input), Tensor._wrap(np.zeros((), np.int64)))
    d = norm_dim(dim, input.ndim, "mode")
    if input.shape[d] == 0:
        raise IndexError(f"mode(): Expected reduction dim {d} to have non-zero size (input shape {tuple(input.shape)})")
    a = np.moveaxis(input._data, d, -1)
    rows = a.reshape(-1, a.shape[-1])
    pick = np.empty(rows.shape[0], np.int64)
    for r, row in enumerate(rows):
        vals, counts = np.unique(row, return_counts=True)
        v = vals[np.argmax(counts)]
        pick[r] = np.flatnonzero(row == v)[-1]  # PyTorch reports the last occurrence
    pick = np.expand_dims(pick.reshape(a.shape[:-1]), d)
    idx = Tensor._wrap(pick)
    values = gather(input, d, idx)
    if not keepdim:
        values, idx = squeeze(values, d), Tensor._wrap(pick.squeeze(d))
    return _mode_t(values, idx)


@public(method=True)
def unique(input, sorted=True, return_inverse=False, return_counts=False, dim=None):
    """The distinct values (sorted), optionally with the inverse map and the counts. Not differentiable."""
    a = input._data
    if dim is None and type(a) is np.ndarray and a.dtype.char in _NATIVE_CHARS:
        # csrc's sort and one scan over it (sort.h), computing only what is asked for
        vals, inv, counts = _C.unique(np.ascontiguousarray(a).reshape(-1), return_inverse, return_counts)
        if return_inverse:
            inv = inv.reshape(a.shape)
    elif dim is None:
        vals, inv, counts = np.unique(a.reshape(-1), return_inverse=True, return_counts=True)
        inv = inv.reshape(a.shape)
    else:
        d = _check_unique_dim(input, dim, "unique")
        vals, inv, counts = np.unique(a, return_inverse=True, return_counts=True, axis=d)
        inv = inv.reshape(-1)
    out = [Tensor._wrap(vals)]
    if return_inverse:
        out.append(Tensor._wrap(inv.astype(np.int64, copy=False)))
    if return_counts:
        out.append(Tensor._wrap(counts.astype(np.int64, copy=False)))
    return out[0] if len(out) == 1 else tuple(out)


@public(method=True)
def unique_consecutive(input, return_inverse=False, return_counts=False, dim=None):
    """Collapse runs of equal consecutive values (of the flattened tensor), or with ``dim`` of equal
    consecutive slices along it."""
    if dim is not None:
        return _unique_consecutive_dim(input, _check_unique_dim(input, dim, "unique_consecutive"), return_inverse,
                                       return_counts)
    a = input._data.reshape(-1)
    start = np.ones(a.size, bool)
    start[1:] = a[1:] != a[:-1]
    out = [Tensor._wrap(a[start])]
    if return_inverse:
        out.append(Tensor._wrap((np.cumsum(start) - 1).reshape(input.shape).astype(np.int64)))
    if return_counts:
        out.append(Tensor._wrap(np.diff(np.append(np.flatnonzero(start), a.size)).astype(np.int64)))
    return out[0] if len(out) == 1 else tuple(out)


def _check_unique_dim(input, dim, opname):
    if input.ndim == 0:
        raise IndexError(f"{opname}: dimension specified as {dim} but tensor has no dimensions")
    d = norm_dim(dim, input.ndim, opname)
    if any(n == 0 for i, n in enumerate(input.shape) if i != d):
        raise RuntimeError(f"{opname}: There are 0 sized dimensions, and they aren't selected, so unique cannot be "
                           f"applied (input shape {tuple(input.shape)}, dim {dim})")
    return d


def _unique_consecutive_dim(input, d, return_inverse, return_counts):
    a = np.moveaxis(input._data, d, 0)
    if a.shape[0] == 0:
        out = [Tensor._wrap(input._data.copy())] + [Tensor._wrap(np.zeros(0, np.int64))] * (return_inverse + return_counts)
        return out[0] if len(out) == 1 else tuple(out)
    n = a.shape[0]
    rows = a.reshape(n, -1)
    start = np.ones(n, bool)
    start[1:] = (rows[1:] != rows[:-1]).any(axis=1)
    out = [Tensor._wrap(np.ascontiguousarray(np.moveaxis(a[start], 0, d)))]
    if return_inverse:
        out.append(Tensor._wrap((np.cumsum(start) - 1).astype(np.int64)))
    if return_counts:
        out.append(Tensor._wrap(np.diff(np.append(np.flatnonzero(start), n)).astype(np.int64)))
    return out[0] if len(out) == 1 else tuple(out)


# ---------------------------------------------------------------- searches
def _search_dtype(out_int32):
    return np.int32 if out_int32 else np.int64


@public(out=True)
def bucketize(input, boundaries, *, out_int32=False, right=False):
    """The bucket of each value: ``boundaries[i-1] < x <= boundaries[i]`` (``right=True``: ``<= x <``)."""
    if not isinstance(boundaries, Tensor) or boundaries.ndim != 1:
        raise RuntimeError(f"bucketize: boundaries tensor must be 1 dimension, but got "
                           f"{getattr(boundaries, 'shape', type(boundaries).__name__)}")
    x = input._data if isinstance(input, Tensor) else np.asarray(input)
    out = np.searchsorted(boundaries._data, x, side="right" if right else "left")
    return Tensor._wrap(np.asarray(out, dtype=_search_dtype(out_int32)))


@public(out=True)
def searchsorted(sorted_sequence, input, *, out_int32=False, right=False, side=None, sorter=None):
    """Where ``input``'s values would go in ``sorted_sequence``'s innermost dim to keep it sorted."""
    if side is not None:
        if side not in ("left", "right"):
            raise RuntimeError(f"searchsorted: side can only be 'left' or 'right' but got {side!r}")
        if right and side == "left":
            raise RuntimeError("searchsorted: side and right can't be set to opposites, got side of left "
                               "while right was True")
        right = side == "right"
    seq = sorted_sequence._data
    if sorter is not None:
        seq = np.take_along_axis(seq, sorter._data, axis=-1)
    scalar = not isinstance(input, Tensor)
    vals = np.asarray(input) if scalar else input._data
    s = "right" if right else "left"
    if seq.ndim == 1:
        out = np.searchsorted(seq, vals, side=s)
    else:
        if vals.ndim != seq.ndim or vals.shape[:-1] != seq.shape[:-1]:
            raise RuntimeError(f"searchsorted: boundaries tensor should be 1 dimension or the first N-1 dimensions "
                               f"of boundaries tensor and input value tensor must match, but we got boundaries "
                               f"tensor {list(seq.shape)} and input value tensor {list(vals.shape)}")
        rs, rv = seq.reshape(-1, seq.shape[-1]), vals.reshape(-1, vals.shape[-1])
        rows = [np.searchsorted(a, v, side=s) for a, v in zip(rs, rv)]
        out = (np.stack(rows) if rows else np.zeros(0, np.int64)).reshape(vals.shape)  # no rows: nothing to stack
    return Tensor._wrap(np.asarray(out, dtype=_search_dtype(out_int32)))


def _quantile_q(input, q, interpolation):
    """``q`` as an array, after PyTorch's checks of ``input``, ``q`` and ``interpolation``."""
    if input._data.dtype not in (np.float32, np.float64):
        raise RuntimeError(f"quantile() input tensor must be either float or double dtype, got "
                           f"{_dtype.name(input._data.dtype)}")
    if input._data.size == 0:
        raise RuntimeError(f"quantile() input tensor must be non-empty (got shape {tuple(input.shape)})")
    if isinstance(q, Tensor) and q._data.dtype != input._data.dtype:
        raise RuntimeError(f"quantile() q tensor must be same dtype as the input tensor ({_dtype.name(q.dtype)} vs "
                           f"{_dtype.name(input.dtype)})")
    if interpolation not in ("linear", "lower", "higher", "midpoint", "nearest"):
        raise ValueError(f"quantile() interpolation must be one of linear, lower, higher, midpoint or nearest. "
                         f"Got {interpolation}")
    qs = q._data if isinstance(q, Tensor) else np.asarray(q, dtype=np.float64)
    if qs.ndim > 1:
        raise RuntimeError(f"quantile() q must be a scalar or 1D tensor, got {qs.ndim}D")
    if ((qs < 0) | (qs > 1)).any():
        raise RuntimeError("quantile() q values must be in the range [0, 1]")
    return qs


def _quantile_bracket(pos, interpolation):
    """The sorted positions below and above ``pos`` (a float or an array) that ``interpolation`` reads."""
    lo, hi = np.floor(pos), np.ceil(pos)
    if interpolation == "lower":
        hi = lo
    elif interpolation == "higher":
        lo = hi
    elif interpolation == "nearest":
        lo = hi = np.round(pos)  # round half to even, as PyTorch
    return lo, hi


def _quantile_keepdim(v, ndim, dim, d, keepdim):
    if dim is None:
        return reshape(v, (1,) * ndim if keepdim else ())
    return v if keepdim else squeeze(v, d)


@public(method=True, out=True)
def quantile(input, q, dim=None, keepdim=False, *, interpolation="linear"):
    """The ``q``-th quantiles along ``dim`` (all elements when None), PyTorch's interpolation modes."""
    qs = _quantile_q(input, q, interpolation)
    if input.ndim == 0 and dim is not None:  # a 0-d tensor's dim 0 / -1: its one value
        norm_dim(dim, 0, "quantile")
        return quantile(reshape(input, (1,)), q, 0, interpolation=interpolation)
    x = reshape(input, -1) if dim is None else input
    d = 0 if dim is None else norm_dim(dim, input.ndim, "quantile")
    srt = sort(x, d).values
    n = srt.shape[d]
    outs = []
    for qv in np.atleast_1d(qs):
        pos = builtins.float(qv) * (n - 1)
        lo_i, hi_i = (builtins.int(i) for i in _quantile_bracket(pos, interpolation))
        lo = narrow(srt, d, lo_i, 1)
        hi = narrow(srt, d, hi_i, 1)
        frac = 0.5 if interpolation == "midpoint" else pos - lo_i
        v = lo if lo_i == hi_i else lo + (hi - lo) * frac
        outs.append(_quantile_keepdim(v, input.ndim, dim, d, keepdim))
    return outs[0] if np.ndim(qs) == 0 else stack(outs, 0)


@public(method=True, out=True)
def nanquantile(input, q, dim=None, keepdim=False, *, interpolation="linear"):
    """``quantile`` of the non-NaN values of each slice (NaN where a slice has none), as PyTorch's."""
    qs = _quantile_q(input, q, interpolation)
    if input.ndim == 0 and dim is not None:  # a 0-d tensor's dim 0 / -1: its one value
        norm_dim(dim, 0, "nanquantile")
        return nanquantile(reshape(input, (1,)), q, 0, interpolation=interpolation)
    x = reshape(input, -1) if dim is None else input
    d = 0 if dim is None else norm_dim(dim, input.ndim, "nanquantile")
    srt = sort(x, d).values  # NaNs sort last
    count = (~np.isnan(srt._data)).sum(axis=d, keepdims=True)
    outs = []
    for qv in np.atleast_1d(qs):
        pos = builtins.float(qv) * np.maximum(count - 1, 0)
        lo_i, hi_i = _quantile_bracket(pos, interpolation)
        lo = gather(srt, d, Tensor._wrap(lo_i.astype(np.int64)))
        hi = gather(srt, d, Tensor._wrap(hi_i.astype(np.int64)))
        frac = np.full(pos.shape, 0.5) if interpolation == "midpoint" else pos - lo_i
        v = lo + (hi - lo) * const(frac, srt.dtype)
        v = where(Tensor._wrap(count == 0), const(np.nan, srt.dtype), v)
        outs.append(_quantile_keepdim(v, input.ndim, dim, d, keepdim))
    return outs[0] if np.ndim(qs) == 0 else stack(outs, 0)
