"""Reductions and scans: ``sum``/``mean``/``prod``/``var``/``std``, ``max``/``min`` and their
arg-forms, ``logsumexp``, norms, ``all``/``any``, the cumulative ops (``cumsum``, ``cumprod``,
``cummax``, ``logcumsumexp``, ``diff``) and the counting and statistics helpers (``bincount``,
``histc``, ``cov``, ``trapezoid``).
"""
from __future__ import annotations

import builtins
import collections
import math

import numpy as np

from .. import _C, _dtype
from .._tape.registry import _is16, _round16, _widen, apply, apply_aux, defop
from ._util import ALL_DIMS, const, names_allocations, norm_dim, norm_dims, sizes_or_keyword
from .comparison import ne
from .complex import conj_if_complex as _cj, refuse_complex
from .pointwise import abs, clamp, exp, log, maximum, minimum, pow, sign, sqrt, where
from .shape import _expand, _expand_fwd, _reshape, cat, clone, diagonal, flip, movedim, narrow, reshape, unsqueeze
from .indexing import gather
from .matmul import matmul
from .surface import public
from ._autocast import FP32, cast_inputs

Tensor = None  # the Tensor class, bound by tensor.py (ops.bind_tensor): the ops sit below it


def _keep_shape(shape, dims):
    keep = list(shape)  # a loop over dims, not a generator over shape: it runs in every sum/mean backward
    for d in dims:
        keep[d] = 1
    return tuple(keep)


def _unreduce(g, x, dims, keepdim):
    """Broadcast a reduced gradient back over the reduced dims of ``x``."""
    # the shapes are right by construction: apply the view ops directly, skipping the
    # argument checks of reshape()/expand() (this runs in every sum/mean backward)
    shape = x.shape
    gd = g._data
    if gd.shape == shape:
        return g
    same_size = gd.size == math.prod(shape)
    if gd.ndim == 0 and not _C.is_grad_enabled():
        # a full reduction's gradient in a first-order backward (nothing to record): the arrays the
        # view ops below give, without their ops (0.3 us of the tiny graph's 12)
        return Tensor._wrap(gd.reshape(shape) if same_size else _expand_fwd(gd, tuple(shape)))
    if same_size:  # only dims of size 1 were reduced: a reshape puts them back
        return apply(_reshape, g, shape=tuple(shape))
    if not keepdim and gd.ndim:  # a 0-d gradient (a full reduction's) broadcasts as it is
        keep = _keep_shape(shape, dims)
        if gd.shape != keep:
            g = apply(_reshape, g, shape=keep)
    return apply(_expand, g, shape=tuple(shape))


def _native(x, dims, keepdim, op):
    """``op`` over ``dims`` by the native kernel (float32/float64, C-contiguous, the reduced dims one
    block once dims of size 1 are dropped: rows, columns, all, a middle block), else None."""
    # an exact ndarray only: a sparse tensor's storage (or a subclass) keeps numpy's path and its errors
    return _C.reduce(x, dims, keepdim, op) if type(x) is np.ndarray and x.dtype.char in "fd" else None


def _native16(x, dims, keepdim, op):
    """sum or mean of a float16 / bfloat16 ``x`` by the native kernel (csrc/kernels/reduce.h's
    reduce_middle_half: float32 sums, each widened run in L1, rounded once; the bits of the float32
    detour), else the detour itself: a float32 copy, its reduction, rounded once."""
    if type(x) is np.ndarray:
        out = _C.reduce_half(x.view(np.uint16), dims, keepdim, op, x.dtype.kind != "f")
        if out is not None:
            return out.view(x.dtype)
    return _round16((_sum_fwd if op == "sum" else _mean_fwd)(_widen(x), dims, keepdim), x.dtype)


def _native_vjp(g, out, x, dims, op):
    """The first-order gradient of ``op`` ('norm2', 'logsumexp', 'prod') over ``dims`` in one native
    pass (csrc/kernels/reduce.h's expand_middle, PyTorch's formula and rounding), or None where it
    does not apply: recording (create_graph), other dtypes or layouts, an empty input."""
    xd, gd, od = x._data, g._data, out._data
    if (_C.is_grad_enabled() or type(xd) is not np.ndarray or xd.dtype.char not in "fd" or not xd.size
            or gd.dtype != xd.dtype or od.dtype != xd.dtype):
        return None
    r = _C.reduce_backward(xd, dims, np.ascontiguousarray(gd), np.ascontiguousarray(od), op)
    return None if r is None else Tensor._wrap(r)


def _sum_fwd(x, dims, keepdim):
    out = _native(x, dims, keepdim, "sum")
    if out is not None:
        return out
    if x.dtype.itemsize == 2 and _is16(x.dtype):
        return _native16(x, dims, keepdim, "sum")
    if x.dtype.kind in "fc" or _dtype.kind_of(x.dtype) == "f":
        return np.add.reduce(x, axis=dims, keepdims=keepdim)  # np.sum minus its Python wrapper
    return np.asarray(np.sum(x, axis=dims, keepdims=keepdim), dtype=np.int64)


_sum = defop("sum", _sum_fwd, lambda g, out, x, dims, keepdim: _unreduce(g, x, dims, keepdim), saves=(), exact16=True)


def _mean_fwd(x, dims, keepdim):
    out = _native(x, dims, keepdim, "mean")
    if out is not None:
        return out
    if x.dtype.itemsize == 2 and _is16(x.dtype):
        return _native16(x, dims, keepdim, "mean")
    if x.size == 0:  # nan over empty slices, without numpy's "Mean of empty slice" warning (PyTorch gives none)
        s = np.add.reduce(x, axis=dims, keepdims=keepdim)
        return np.asarray(s / math.prod([x.shape[d] for d in dims]), dtype=x.dtype)
    return np.asarray(np.mean(x, axis=dims, keepdims=keepdim), dtype=x.dtype)


def _mean_vjp(g, out, x, dims, keepdim):
    n = math.prod([x.shape[d] for d in dims])
    if not _C.is_grad_enabled():
        # first order: g / n on the reduced gradient, then broadcast (the same bits: each element is
        # its g / n), a view that .grad's accumulation fills on the threads (csrc/elementwise.h's
        # parallel_copy). Dividing the broadcast took numpy one pass of its own on one thread: mean(1)
        # over 1000 x 1000 float64 ran forward + backward in 1029 us where PyTorch takes 564.
        return _unreduce(g / n, x, dims, keepdim)
    return _unreduce(g, x, dims, keepdim) / n


_mean = defop("mean", _mean_fwd, _mean_vjp, saves=(), exact16=True)


@public(method=True, out=True)
def sum(input, dim=None, keepdim=False, *, dtype=None):
    """Sum over ``dim`` (all dims by default). Integer and bool tensors sum to int64."""
    if dtype is not None:
        input = input.to(dtype)
    dims = ALL_DIMS[input._data.ndim] if dim is None else norm_dims(dim, input._data.ndim, "sum")
    return _as_asked(apply(_sum, input, dims=dims, keepdim=keepdim), dtype)


def _as_asked(out, dtype):
    """An integer reduction accumulates in int64; an explicit ``dtype=`` (int32, bool, ...) is what
    PyTorch returns (wrapping around as its narrower accumulator would)."""
    return out if dtype is None or out._data.dtype == _dtype.to_dtype(dtype) else out.to(dtype)


@public(method=True, out=True)
def mean(input, dim=None, keepdim=False, *, dtype=None):
    """The mean over ``dim`` (all elements by default)."""
    if dtype is not None:
        input = input.to(dtype)
    if _dtype.kind_of(input._data.dtype) not in "fc":
        raise RuntimeError(f"mean(): could not infer output dtype. Input dtype must be floating point, "
                           f"got {_dtype.name(input._data.dtype)}")
    return apply(_mean, input, dims=norm_dims(dim, input._data.ndim, "mean"), keepdim=keepdim)


def _sum_to_size_fwd(x, shape):
    lead = x.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(lead + i for i, s in enumerate(shape) if s == 1 and x.shape[lead + i] != 1)
    k = len(axes)
    if (k and axes[-1] == k - 1 and x.dtype.char in "fd" and x.size and x.flags.c_contiguous):
        # leading dims only (a bias's gradient): a native threaded sum over rows, numpy's reduce on one thread
        return _C.sum_rows(x.reshape(-1, x.size // math.prod(x.shape[:k]))).reshape(shape)
    out = np.add.reduce(x, axis=axes, keepdims=True) if axes else x  # np.sum minus its wrapper
    return np.asarray(out.reshape(shape), dtype=x.dtype)


_sum_to_size = defop("sum_to_size", _sum_to_size_fwd, lambda g, out, x, shape: g.expand(x.shape), saves=())


@public(out=True)
def sum_to_size(input, *args, size=None):
    """Sum ``input`` down to ``size`` (the reverse of broadcasting ``size`` up to ``input.shape``)."""
    size = sizes_or_keyword(args, size, "size", "sum_to_size")
    shape = tuple(size[0]) if len(size) == 1 and isinstance(size[0], (tuple, list)) else tuple(size)
    have = input._data.shape
    if have == shape and shape:
        return input
    # expandable: no more dims than the input, each trailing size equal to the input's or 1
    if len(shape) > len(have) or builtins.any(s != h and s != 1 for s, h in zip(reversed(shape), reversed(have))):
        raise RuntimeError(f"sum_to_size: size {shape} is not expandable to tensor size {tuple(input.shape)}")
    if _dtype.kind_of(input._data.dtype) in "biu":  # a sum, as PyTorch's: integers and bools add up in int64
        input = input.to(_dtype.int64)              # (a size of () always sums, even a 0-d input: ATen's sum_to)
    return apply(_sum_to_size, input, shape=shape)


def _count(shape, dims):
    return int(np.prod([shape[d] for d in dims]))


def _full_result(name):
    """torch.return_types-style ``(values, indices)`` namedtuple."""
    return collections.namedtuple(name, ["values", "indices"])


return_types = type("return_types", (), {n: _full_result(n) for n in ("max", "min", "mode", "median", "kthvalue")})
return_types.__doc__ = """The ``(values, indices)`` named tuples that ``max(x, dim)``, ``min``, ``mode``, ``median`` and
``kthvalue`` return (``torch.return_types``): ``tapegrad.return_types.max(values, indices)``."""
public(return_types)


# ---------------------------------------------------------------- prod
def _prod_fwd(x, dims, keepdim):
    out = _native(x, dims, keepdim, "prod")  # in lanes, 12x faster than numpy's sequential multiply.reduce
    if out is not None:
        return out
    return np.asarray(np.prod(x, axis=dims, keepdims=keepdim), dtype=x.dtype if _dtype.kind_of(x.dtype) in "fc" else np.int64)


def _prod_vjp(g, out, x, dims, keepdim):
    """d prod / d x_i = prod of the others: ``out / x_i`` when no zeros, else the exclusive products."""
    od = out._data
    # no product 0 or NaN: no x is 0, known without a pass over x
    if (od.dtype.kind == "f" and od.all() and not np.isnan(od).any()) or not (x._data == 0).any():
        r = _native_vjp(g, out, x, dims, "prod")  # g * (out / x), one native pass when first order
        if r is not None:
            return r
        return _unreduce(g, x, dims, keepdim) * _cj(_unreduce(out, x, dims, keepdim) / x)
    return _unreduce(g, x, dims, keepdim) * _cj(_prod_of_others(x, dims))


def _prod_of_others(x, dims):
    """``prod_{j != i} x_j`` over each slice of ``dims``, exact at zeros: the running products from
    the left and from the right, each excluding x_i (PyTorch's prod_safe_zeros_backward). Written
    with cumprod, it differentiates again, so second derivatives at zeros are right too (masking
    the zeros out would make them constants)."""
    if x.ndim == 0:
        return const(1, x.dtype)
    rest = [d for d in range(x.ndim) if d not in dims]
    order = rest + list(dims)
    moved = x.permute(*order)
    flat = moved.reshape(*moved.shape[:len(rest)], -1)
    n = flat.shape[-1]
    one = const(np.ones(flat.shape[:-1] + (1,)), x.dtype)
    left = cumprod(cat([one, narrow(flat, -1, 0, n - 1)], -1), -1)
    right = flip(cumprod(cat([one, flip(narrow(flat, -1, 1, n - 1), (-1,))], -1), -1), (-1,))
    others = (left * right).reshape(moved.shape)
    return others.permute(*np.argsort(order).tolist())


_prod = defop("prod", _prod_fwd, _prod_vjp, saves_output=True)


def prod_dims(input, dims, keepdim=False):
    return apply(_prod, input, dims=dims, keepdim=keepdim)


@public(method=True, out=True)
@cast_inputs(FP32)
def prod(input, dim=None, keepdim=False, *, dtype=None):
    """Product over ``dim`` (all by default); the gradient is exact when entries are zero."""
    if dtype is not None:
        input = input.to(dtype)
    return _as_asked(apply(_prod, input, dims=norm_dims(dim, input._data.ndim, "prod"), keepdim=keepdim), dtype)


# ---------------------------------------------------------------- var / std
def _var_fwd(x, dims, keepdim, correction):
    n = builtins.max(0.0, _count(x.shape, dims) - correction)  # as PyTorch: no samples left gives inf/nan
    with np.errstate(divide="ignore", invalid="ignore"):
        m = np.mean(x, axis=dims, keepdims=True) if x.size else np.zeros(_keep_shape(x.shape, dims), x.dtype)
        return np.asarray(np.sum(np.square(x - m), axis=dims, keepdims=keepdim) / n, dtype=x.dtype)


def _var_vjp(g, out, x, dims, keepdim, correction):
    n = _count(x.shape, dims) - correction
    xd, gd = x._data, g._data
    if (not _C.is_grad_enabled() and type(xd) is np.ndarray and xd.dtype.char in "fd" and xd.size
            and gd.dtype == xd.dtype):
        # first order: PyTorch's ((2 / dof) * g) * (x - mean) in one native pass after the mean's,
        # where the composite took three over x
        m = _C.reduce(xd, dims, False, "mean")
        if m is not None:
            c = np.asarray(gd * xd.dtype.type(2.0 / n if n > 0 else np.nan), xd.dtype)
            return Tensor._wrap(_C.reduce_backward(xd, dims, np.ascontiguousarray(c), m, "var"))
    return _unreduce(g, x, dims, keepdim) * (x - x.mean(dims, keepdim=True)) * (2.0 / n if n > 0 else np.nan)


_var = defop("var", _var_fwd, _var_vjp)


def _var_args(input, dim, unbiased, keepdim, correction, opname):
    if isinstance(dim, bool):  # var(x, True): the legacy ``unbiased`` positional
        dim, unbiased = None, dim
    if unbiased is not None and correction is not None:
        raise RuntimeError(f"{opname}: pass either unbiased or correction, not both")
    if correction is None:
        correction = 1 if unbiased is None or unbiased else 0
    if _dtype.kind_of(input._data.dtype) != "f":
        raise RuntimeError(f"{opname}: input dtype should be floating point, got {_dtype.name(input.dtype)}")
    return dict(dims=norm_dims(dim, input._data.ndim, opname), keepdim=bool(keepdim), correction=float(correction))


@public(method=True, out=True)
def var(input, dim=None, unbiased=None, keepdim=False, *, correction=None):
    """Variance over ``dim`` with Bessel's correction by default (``correction=1``, ``unbiased=True``);
    of a complex tensor, the mean of ``|z - mean|^2`` (the real and imaginary parts' variances summed)."""
    if input._data.dtype.kind == "c":
        return var(input.real, dim, unbiased, keepdim, correction=correction) + \
            var(input.imag, dim, unbiased, keepdim, correction=correction)
    return apply(_var, input, **_var_args(input, dim, unbiased, keepdim, correction, "var"))


@public(method=True, out=True)
def std(input, dim=None, unbiased=None, keepdim=False, *, correction=None):
    """Standard deviation: ``sqrt(var(...))`` (real for a complex tensor)."""
    if input._data.dtype.kind == "c":
        v = var(input, dim, unbiased, keepdim, correction=correction)
    else:
        v = apply(_var, input, **_var_args(input, dim, unbiased, keepdim, correction, "std"))
    # PyTorch's std_backward is 0 where std is 0 (not inf * 0 = nan): sqrt only sees nonzero variances
    zero = v == 0
    return where(zero, const(0.0, v.dtype), sqrt(where(zero, const(1.0, v.dtype), v)))


# ---------------------------------------------------------------- max / min
def _amax_vjp(g, out, x, dims, keepdim):
    """Split evenly among ties, as PyTorch does for amax/amin and the full max/min."""
    xd, gd = x._data, g._data
    if not _C.is_grad_enabled() and xd.dtype.char in "fd" and gd.dtype == xd.dtype and xd.size:
        # first order: PyTorch's (g / count) * (x == out) in three numpy passes, where the
        # composite below made a float64 share and cast it; g / count rounds as PyTorch's, a
        # NaN's row (no x equals it: count 0) is NaN and a negative g gives -0 elsewhere, as there
        hit = xd == _unreduce_np(out._data, xd.shape, dims, keepdim)
        count = np.add.reduce(hit, axis=dims, keepdims=True, dtype=np.int32)
        per = np.true_divide(gd if keepdim else gd.reshape(_keep_shape(xd.shape, dims)), count, dtype=gd.dtype)
        return Tensor._wrap(np.multiply(per, hit, dtype=gd.dtype))
    hit = x._data == _unreduce_np(out._data, x.shape, dims, keepdim)
    share = hit / hit.sum(axis=dims, keepdims=True)
    return _unreduce(g, x, dims, keepdim) * const(share, g.dtype)


def _unreduce_np(a, shape, dims, keepdim):
    return np.broadcast_to(a if keepdim else a.reshape(_keep_shape(shape, dims)), shape)


def _amax_fwd(x, dims, keepdim):
    out = _native(x, dims, keepdim, "amax")
    return np.amax(x, axis=dims, keepdims=keepdim) if out is None else out


def _amin_fwd(x, dims, keepdim):
    out = _native(x, dims, keepdim, "amin")
    return np.amin(x, axis=dims, keepdims=keepdim) if out is None else out


_amax = defop("amax", _amax_fwd, _amax_vjp, saves_output=True)
_amin = defop("amin", _amin_fwd, _amax_vjp, saves_output=True)


def _check_nonempty(input, dim, dims, opname):
    if input._data.size and input.ndim:
        return
    if dim is None or dim == ():
        if input._data.size == 0:
            raise RuntimeError(f"{opname}(): Expected reduction dim to be specified for input.numel() == 0. "
                               f"Specify the reduction dim with the 'dim' argument.")
        return
    if builtins.any(input.shape[d] == 0 for d in dims):
        raise IndexError(f"{opname}: Expected reduction dim to have non-zero size (input shape "
                         f"{tuple(input.shape)})")


@public(method=True, out=True)
def amax(input, dim=(), keepdim=False):
    """Max over ``dim`` (all by default); the gradient is shared evenly among ties."""
    refuse_complex(input, "max_all" if dim in ((), None) else "amax")
    dims = norm_dims(dim, input._data.ndim, "amax")
    _check_nonempty(input, dim, dims, "amax")
    return apply(_amax, input, dims=dims, keepdim=keepdim)


@public(method=True, out=True)
def amin(input, dim=(), keepdim=False):
    """The smallest value over ``dim`` (all elements by default); the gradient is shared between ties."""
    refuse_complex(input, "min_all" if dim in ((), None) else "amin")
    dims = norm_dims(dim, input._data.ndim, "amin")
    _check_nonempty(input, dim, dims, "amin")
    return apply(_amin, input, dims=dims, keepdim=keepdim)


def _select_fwd(x, *, dim, keepdim, name):
    """``(values, int64 indices)`` of max / min along ``dim``: the native kernel's one threaded pass
    (PyTorch's choice among NaN and ties: csrc/kernels/reduce.h's select_middle), else numpy's
    argmax / argmin (which, like PyTorch, take the first NaN and the first of ties)."""
    native = _native_select(x, dim, keepdim, name)
    if native is not None:
        return native
    if not x.ndim:
        return x.copy(), np.zeros((), np.int64)
    idx = (np.argmax if name == "max" else np.argmin)(x, axis=dim, keepdims=True)
    values = np.take_along_axis(x, idx, axis=dim)
    idx = idx.astype(np.int64)
    return (values, idx) if keepdim else (values.squeeze(dim), idx.squeeze(dim))


def _select_vjp(g, out, x, dim, keepdim, name, aux):
    """The whole gradient goes to the selected index (PyTorch's choice for max/min along a dim)."""
    if not x.ndim:
        return g
    indices = aux if keepdim else np.expand_dims(aux, dim)
    gd = g._data
    if not _C.is_grad_enabled() and type(gd) is np.ndarray and gd.dtype.char in "fd":
        # first order: zeros and the scatter in one native pass, where the composite took four
        # (a bool mask, its scatter, the broadcast g, the product)
        r = _C.select_backward(np.ascontiguousarray(gd), np.ascontiguousarray(indices), x.shape, dim)
        if r is not None:
            return Tensor._wrap(r)
    mask = np.zeros(x.shape, dtype=bool)
    np.put_along_axis(mask, indices, True, axis=dim)
    return _unreduce(g, x, (dim,), keepdim) * const(mask, g.dtype)


_max_dim = defop("max_dim", _select_fwd, _select_vjp, saves=(), aux=True)
_min_dim = defop("min_dim", _select_fwd, _select_vjp, saves=(), aux=True)


def _native_select(a, dim, keepdim, name):
    """``(values, int64 indices)`` of max / min along ``dim`` by the native kernel, or None where
    it does not apply (other dtypes, layouts or array types)."""
    if type(a) is not np.ndarray or a.dtype.char not in _SELECT_CHARS or not a.ndim:
        return None
    return _C.select_dim(a, dim, keepdim, name)


_SELECT_CHARS = "".join(np.dtype(t).char for t in (np.float32, np.float64, np.int64, np.int32, np.int16, np.int8,
                                                    np.uint8))


def _reduce_select(input, dim, keepdim, op, name):
    refuse_complex(input, name)
    d = norm_dim(dim, input.ndim, name)
    if input.ndim and input.shape[d] == 0:
        raise IndexError(f"{name}(): Expected reduction dim {d} to have non-zero size (input shape "
                         f"{tuple(input.shape)})")
    values, idx = apply_aux(op, input, {"dim": d, "keepdim": keepdim, "name": name})
    return getattr(return_types, name)(values, Tensor._wrap(idx))


@public(method=True, out=True)
def max(input, dim=None, keepdim=False, *, other=None):
    """``max(x)``: the largest value; ``max(x, dim)``: ``(values, indices)``; ``max(x, y)``: maximum."""
    if dim is None and other is None:
        a = input._data
        if a.__class__ is np.ndarray and a.size and a.dtype.kind != "c":  # x.max(): amax's checks hold
            return apply(_amax, input, dims=ALL_DIMS[a.ndim], keepdim=False)
        return amax(input)
    if isinstance(dim, Tensor) or other is not None:
        return maximum(input, dim if other is None else other)
    return _reduce_select(input, dim, keepdim, _max_dim, "max")


@public(method=True, out=True)
def min(input, dim=None, keepdim=False, *, other=None):
    """``min(x)``: the smallest value; ``min(x, dim)``: ``(values, indices)``; ``min(x, y)``: minimum."""
    if dim is None and other is None:
        a = input._data
        if a.__class__ is np.ndarray and a.size and a.dtype.kind != "c":  # x.min(): amin's checks hold
            return apply(_amin, input, dims=ALL_DIMS[a.ndim], keepdim=False)
        return amin(input)
    if isinstance(dim, Tensor) or other is not None:
        return minimum(input, dim if other is None else other)
    return _reduce_select(input, dim, keepdim, _min_dim, "min")


def _nan_argmax(a, axis=None, keepdims=False):
    return np.argmax(a, axis=axis, keepdims=keepdims)  # numpy, like PyTorch, propagates the first NaN


def _nan_argmin(a, axis=None, keepdims=False):
    return np.argmin(a, axis=axis, keepdims=keepdims)


def _arg(input, dim, keepdim, fn, name):
    a = input._data
    if a.dtype == np.bool_:
        raise RuntimeError(f"{name}(): does not support bool input")
    refuse_complex(input, name)
    if dim is None:
        if a.size == 0:  # PyTorch raises an IndexError here
            raise IndexError(f"{name}(): Expected reduction dim to be specified for input.numel() == 0.")
        flat = a.reshape(-1)
        native = _native_select(flat, 0, False, _ARG_OP[name])
        r = np.asarray(fn(flat), dtype=np.int64) if native is None else native[1]
        return Tensor._wrap(r.reshape((1,) * a.ndim) if keepdim else r)
    d = norm_dim(dim, a.ndim, name)
    if a.ndim == 0:
        return Tensor._wrap(np.zeros((), np.int64))
    if a.shape[d] == 0:
        raise IndexError(f"{name}(): Expected reduction dim {d} to have non-zero size.")
    native = _native_select(a, d, keepdim, _ARG_OP[name])
    if native is not None:
        return Tensor._wrap(native[1])
    return Tensor._wrap(np.asarray(fn(a, axis=d, keepdims=keepdim), dtype=np.int64))


_ARG_OP = {"argmax": "max", "argmin": "min"}


@public(method=True, out=True)
def argmax(input, dim=None, keepdim=False):
    """Index of the first maximal value (over the flattened tensor when ``dim`` is None)."""
    return _arg(input, dim, keepdim, _nan_argmax, "argmax")


@public(method=True, out=True)
def argmin(input, dim=None, keepdim=False):
    """The index of the smallest value (over ``dim``, or of the flattened tensor)."""
    return _arg(input, dim, keepdim, _nan_argmin, "argmin")


# ---------------------------------------------------------------- logsumexp, norm
def _logsumexp_fwd(x, dims, keepdim):
    out = _native(x, dims, keepdim, "logsumexp")  # one pass: each row's max, then its exp sum from cache
    if out is not None:
        return out
    if x.size == 0:
        return np.log(np.sum(np.exp(x), axis=dims, keepdims=keepdim))
    m = np.amax(x, axis=dims, keepdims=True)
    m = np.where(np.isfinite(m), m, 0)
    out = np.log(np.sum(np.exp(x - m), axis=dims, keepdims=True)) + m
    return out if keepdim else out.reshape([s for i, s in enumerate(x.shape) if i not in dims])


def _logsumexp_vjp(g, out, x, dims, keepdim):
    """``g * exp(x - out)`` (PyTorch's logsumexp_backward): one native pass when first order."""
    r = _native_vjp(g, out, x, dims, "logsumexp")
    if r is not None:
        return r
    return _unreduce(g, x, dims, keepdim) * (x - _unreduce(out, x, dims, keepdim)).exp()


_logsumexp = defop("logsumexp", _logsumexp_fwd, _logsumexp_vjp, saves_output=True)


@public(method=True, out=True)
def logsumexp(input, dim=None, keepdim=False):
    """``log(sum(exp(x), dim))`` without overflow."""
    if _dtype.kind_of(input._data.dtype) != "f":
        input = input.to(_dtype.default_float())
    return apply(_logsumexp, input, dims=norm_dims(dim, input._data.ndim, "logsumexp"), keepdim=keepdim)


_DOT_ROW = 4096  # elements per BLAS dot in sumsq_flat: float32 accumulation error stays at pairwise summation's
_DOT_MIN = 1 << 14  # below this many elements np.sum(np.square(x)) is as fast (and keeps its bits)


def sumsq_flat(f):
    """``sum(f * f)`` of a 1-D float32/float64 array, in the array's dtype: one BLAS dot per row of
    4096 elements and numpy's pairwise sum of the row results. One pass over memory, no temporary
    (np.sum(np.square(x)) writes and reads a full-size one: 3.5x slower at 1e6 float32), and as
    accurate as numpy's pairwise sum: one long float32 dot would lose up to ~1e-6 relative at 1e6
    elements (PyTorch's float32 vector_norm loses ~1e-5). Overflow and NaN as the square's sum: a
    square or partial sum past the dtype's range is inf."""
    n = f.shape[0]
    m = n // _DOT_ROW
    if m == 0:
        return np.dot(f, f)
    head = f[:m * _DOT_ROW].reshape(m, _DOT_ROW)
    s = np.add.reduce(np.vecdot(head, head))
    if n > m * _DOT_ROW:
        tail = f[m * _DOT_ROW:]
        s = s + np.dot(tail, tail)
    return s


def _norm2_fwd(x, dims, keepdim):
    out = _native(x, dims, keepdim, "norm2")  # the sum of squares in lanes, threaded; no temporary
    if out is not None:
        return out
    if (x.size >= _DOT_MIN and len(dims) == x.ndim and x.dtype.char in "fd" and x.flags.c_contiguous):
        out = np.asarray(np.sqrt(sumsq_flat(x.reshape(-1))))  # a sum of squares: >= 0 or NaN, no warning
        return out.reshape((1,) * x.ndim) if keepdim else out
    return np.asarray(np.sqrt(np.sum(np.square(x), axis=dims, keepdims=keepdim)), dtype=x.dtype)


def _norm2_vjp(g, out, x, dims, keepdim):
    """``x / ||x||``, and 0 where the norm is 0 (PyTorch's subgradient)."""
    r = _native_vjp(g, out, x, dims, "norm2")  # one pass: g * (x / n), 0 where n is 0
    if r is not None:
        return r
    xd, gd, nd = x._data, g._data, out._data
    if (not _C.is_grad_enabled() and xd.dtype.char in "fd" and gd.dtype == xd.dtype and nd.dtype == xd.dtype
            and xd.size):
        # first order (nothing recorded): the composite below on arrays, bit for bit, in two passes
        # over x instead of five (x / n, the two wheres, g * that)
        keep = nd.shape if keepdim else _keep_shape(xd.shape, dims)
        nk, gk = nd.reshape(keep), gd.reshape(keep)
        zero = nk == 0
        any_zero = zero.any()
        r = np.asarray(np.divide(xd, np.where(zero, np.ones((), xd.dtype), nk) if any_zero else nk))
        if any_zero:
            np.copyto(r, 0, where=np.broadcast_to(zero, r.shape))
        np.multiply(gk, r, out=r)
        return Tensor._wrap(r)
    n = _unreduce(out, x, dims, keepdim)
    zero = n == 0
    return _unreduce(g, x, dims, keepdim) * where(zero, const(0, x.dtype), x / where(zero, const(1, x.dtype), n))


_norm2 = defop("norm2", _norm2_fwd, _norm2_vjp, saves_output=True)


def _norm1_fwd(x, dims, keepdim):
    out = _native(x, dims, keepdim, "norm1")  # one pass, where abs then sum took two and a temporary
    return np.asarray(np.sum(np.abs(x), axis=dims, keepdims=keepdim), dtype=x.dtype) if out is None else out


# PyTorch's norm_backward for p = 1: sgn(x) * g
_norm1 = defop("norm_p1", _norm1_fwd, lambda g, out, x, dims, keepdim: _unreduce(g, x, dims, keepdim) * sign(x))


# the count of nonzeros, in the graph with a zero gradient: PyTorch's result requires grad too
_norm0 = defop("norm0", lambda x, dims, keepdim: np.count_nonzero(x, axis=dims, keepdims=keepdim).astype(x.dtype),
               lambda g, out, x, dims, keepdim: const(np.zeros(x.shape), g.dtype), saves=())


def _normp_fwd(x, dims, keepdim, p):
    with np.errstate(divide="ignore", over="ignore"):  # |0| ** -p is inf, and the norm 0, as PyTorch's
        return np.asarray(np.sum(np.abs(x) ** p, axis=dims, keepdims=keepdim) ** (1.0 / p), dtype=x.dtype)


def _normp_vjp(g, out, x, dims, keepdim, p):
    """PyTorch's norm_backward for a general p: zero where x is 0 (p < 1) or where the norm is 0,
    where the plain formula would give 0 * inf = NaN."""
    n = _unreduce(out, x, dims, keepdim)
    g = _unreduce(g, x, dims, keepdim)
    zero = const(0, x.dtype)
    if p < 1:
        xzero = x == 0
        scaled = sign(x) * where(xzero, zero, pow(where(xzero, const(1, x.dtype), abs(x)), p - 1))
        return scaled * g * pow(n, 1 - p)
    scaled = sign(x) * pow(abs(x), p - 1) if p < 2 else x * pow(abs(x), p - 2)
    nzero = n == 0
    return scaled * where(nzero, zero, g / pow(where(nzero, const(1, x.dtype), n), p - 1))


_normp = defop("normp", _normp_fwd, _normp_vjp, saves_output=True)


def pnorm(input, p="fro", dim=None, keepdim=False, dtype=None):
    """Vector p-norm over ``dim`` (all by default): p = 2 / 'fro', 1, inf, -inf, 0 or any number
    (``tapegrad.norm`` in ops/linalg.py adds 'nuc')."""
    if dtype is not None:
        input = input.to(dtype)
    if input._data.dtype.kind == "c":  # every p-norm of z is that of |z|
        input = abs(input)
    if _dtype.kind_of(input._data.dtype) != "f":
        raise RuntimeError(f"norm(): input dtype should be floating point, got {_dtype.name(input.dtype)}")
    if isinstance(dim, int) and not isinstance(dim, bool):
        dim = (dim,)
    dims = norm_dims(dim, input._data.ndim, "norm")
    if p in ("fro", 2, 2.0, None):
        return apply(_norm2, input, dims=dims, keepdim=keepdim)
    if isinstance(p, str):
        raise RuntimeError(f"norm: p={p!r} is not supported (use 'fro', 'nuc' or a number)")
    if p == 1:
        return apply(_norm1, input, dims=dims, keepdim=keepdim)
    if p == np.inf:
        return amax(abs(input), dims, keepdim)
    if p == -np.inf:
        return amin(abs(input), dims, keepdim)
    if p == 0:
        return apply(_norm0, input, dims=dims, keepdim=keepdim)
    return apply(_normp, input, dims=dims, keepdim=keepdim, p=builtins.float(p))


# ---------------------------------------------------------------- mse_loss, fused
_CHUNK = 1 << 16  # elements per block of mse_loss's gradient on one thread: its buffer stays in L2


def _mse_fwd(x, y, reduction):
    dims = ALL_DIMS[x.ndim]
    if (reduction != "none" and x.size >= _DOT_MIN and type(x) is np.ndarray and type(y) is np.ndarray
            and x.flags.c_contiguous and y.flags.c_contiguous):
        # one threaded pass (csrc/kernels/reduce.h's sumsq_diff), where numpy's differences went through a
        # buffer into BLAS dots on one thread, 16 blocks of Python calls: over 1000 x 1000 at 2 threads
        # 381 us float32 and 825 float64 (PyTorch 322 and 657)
        s = _C.mse_sum(x, y)[()]
        # np.mean's division: the float sum by the count as np.intp (float64 for float32), then back
        return np.asarray(s.dtype.type(s / np.intp(x.size)) if reduction == "mean" else s)
    d = np.asarray(np.subtract(x, y))  # 0-d: an array, not a numpy scalar, to write into
    np.multiply(d, d, out=d)  # the square, in the difference's memory
    if reduction == "none":
        return d
    return _mean_fwd(d, dims, False) if reduction == "mean" else _sum_fwd(d, dims, False)


def _mse_vjp(g, out, x, y, reduction, sign):
    """The gradient of ``(x - y)**2`` reduced, for x (``sign`` 1) or y (-1), as the composite
    ``mean(d * d)``, ``d = x - y`` gives it bit for bit: ``t + t`` with ``t = (g / n) * d`` (the mean's
    ``g / n``; ``g`` for a sum, ``g`` elementwise unreduced), negated for y."""
    xd, gd = x._data, g._data
    if not _C.is_grad_enabled() and xd.dtype.char in "fd" and gd.dtype == xd.dtype and xd.size:
        if reduction == "mean":
            gd = np.true_divide(gd, np.asarray(xd.size, xd.dtype))
        yd = y._data
        if (xd.size >= _CHUNK and gd.dtype == yd.dtype and xd.shape == yd.shape
                and (gd.size == 1 or gd.shape == xd.shape)
                and xd.flags.c_contiguous and yd.flags.c_contiguous and (gd.size == 1 or gd.flags.c_contiguous)):
            # one C++ pass, on the kernel threads: (g d) 2 with the same bits as the loop below
            return Tensor._wrap(_C.mse_backward(gd.reshape(-1)[:1] if gd.size == 1 else gd, xd, yd, sign < 0))
        if reduction != "none" and xd.size > _CHUNK and xd.flags.c_contiguous and yd.flags.c_contiguous:
            # block by block, each block's four passes in cache: one pass over memory for x, y and r
            r = np.empty(xd.shape, xd.dtype)
            xf, yf, rf = xd.reshape(-1), yd.reshape(-1), r.reshape(-1)
            for i in range(0, xf.shape[0], _CHUNK):
                b = rf[i:i + _CHUNK]
                np.subtract(xf[i:i + _CHUNK], yf[i:i + _CHUNK], out=b)
                np.multiply(gd, b, out=b)
                np.add(b, b, out=b)
                if sign < 0:
                    np.negative(b, out=b)
            return Tensor._wrap(r)
        r = np.asarray(np.subtract(xd, yd))
        np.multiply(gd, r, out=r)
        np.add(r, r, out=r)
        if sign < 0:
            np.negative(r, out=r)
        return Tensor._wrap(r)
    d = x - y
    if reduction != "none":
        g = _unreduce(g, x, ALL_DIMS[x.ndim], False)
        if reduction == "mean":
            g = g / math.prod(x.shape)
    t = g * d
    t = t + t
    return t if sign > 0 else -t


_mse_loss = defop("mse_loss", _mse_fwd, lambda g, out, x, y, reduction: _mse_vjp(g, out, x, y, reduction, 1),
                  lambda g, out, x, y, reduction: _mse_vjp(g, out, x, y, reduction, -1))


def mse_loss_fused(input, target, reduction):
    """``mse_loss`` of two float32 or float64 tensors of one shape and dtype, as one op (one pass
    over the inputs for 'mean'/'sum'); None where that does not apply (the composite's turn)."""
    xd, yd = input._data, target._data
    if xd.dtype is not yd.dtype or xd.dtype.char not in "fd" or xd.shape != yd.shape:
        return None
    return apply(_mse_loss, input, target, reduction=reduction)


# ---------------------------------------------------------------- smooth_l1_loss / huber_loss, fused
def _huber_consts(dt, beta, huber):
    """The numbers of the composite's arithmetic as the tensors' casts of them: the square's factor,
    the linear part's offset, beta (delta) itself."""
    return (dt.type(0.5 if huber else 0.5 / beta), dt.type(0.5 * beta), dt.type(beta))


def _huber_fwd(x, y, reduction, beta, huber):
    c, h, b = _huber_consts(x.dtype, beta, huber)
    if x.size and (x.flags.c_contiguous and y.flags.c_contiguous or x.flags.f_contiguous and y.flags.f_contiguous):
        # the composite's elementwise arithmetic in one pass of csrc's kernel (pointwise.h), bit for bit
        loss = _C.huber(x, y, float(c), float(h), float(b), huber)
    else:
        with np.errstate(all="ignore"):  # (the unpicked branch may overflow)
            d = np.subtract(x, y)  # the composite's arithmetic, array by array
            ad = np.abs(d)
            loss = np.asarray(np.where(ad < b, d * d * c, (ad - h) * b if huber else ad - h), x.dtype)
    if reduction == "none":
        return loss
    dims = ALL_DIMS[x.ndim]  # reduced as the composite's loss.mean() / loss.sum()
    return _mean_fwd(loss, dims, False) if reduction == "mean" else _sum_fwd(loss, dims, False)


def _huber_vjp(g, out, x, y, reduction, beta, huber, sgn):
    """The gradient of the loss for x (``sgn`` 1) or y (-1), as the composite (``where(|d| < beta,
    d * d * c, |d| - h)`` reduced) gives it, bit for bit (pointwise.h's huber_backward)."""
    xd, gd, yd = x._data, g._data, y._data
    c, h, b = _huber_consts(xd.dtype, beta, huber)
    if not _C.is_grad_enabled() and gd.dtype == xd.dtype and xd.size:
        if reduction == "mean":  # the composite's g / n, n as the dtype
            gd = np.true_divide(gd, np.asarray(xd.size, xd.dtype))
        if not (xd.flags.c_contiguous and yd.flags.c_contiguous and (gd.size == 1 or gd.flags.c_contiguous)):
            xd, yd = np.ascontiguousarray(xd), np.ascontiguousarray(yd)
            gd = gd if gd.size == 1 else np.ascontiguousarray(gd)
        return Tensor._wrap(_C.huber_backward(np.asarray(gd), xd, yd, float(c), float(b), huber, sgn < 0))
    d = x - y
    if reduction != "none":
        g = _unreduce(g, x, ALL_DIMS[x.ndim], False)
        if reduction == "mean":
            g = g / math.prod(x.shape)
    m = abs(d) < beta
    z = g * 0
    t = (where(m, g, z) * c.item()) * d
    g2 = where(m, z, g)
    r = (t + t) + (g2 * b.item() if huber else g2) * sign(d)
    return r if sgn > 0 else -r


_huber_loss = defop("huber_loss", _huber_fwd,
                    lambda g, out, x, y, reduction, beta, huber: _huber_vjp(g, out, x, y, reduction, beta, huber, 1),
                    lambda g, out, x, y, reduction, beta, huber: _huber_vjp(g, out, x, y, reduction, beta, huber, -1))
_smooth_l1_loss = defop("smooth_l1_loss", _huber_fwd,
                        lambda g, out, x, y, reduction, beta, huber: _huber_vjp(g, out, x, y, reduction, beta, huber, 1),
                        lambda g, out, x, y, reduction, beta, huber: _huber_vjp(g, out, x, y, reduction, beta, huber, -1))


def huber_loss_fused(input, target, reduction, beta, huber):
    """smooth_l1_loss (``huber`` False, beta > 0) or huber_loss (delta ``beta``) of two float32/float64
    tensors of one shape and dtype as one op; None where that does not apply (the composite's turn)."""
    xd, yd = input._data, target._data
    if (xd.dtype is not yd.dtype or xd.dtype.char not in "fd" or xd.shape != yd.shape
            or not 0 < np.asarray(beta, xd.dtype) < np.inf):
        return None
    return apply(_huber_loss if huber else _smooth_l1_loss, input, target, reduction=reduction,
                 beta=builtins.float(beta), huber=huber)


# ---------------------------------------------------------------- cumsum, all / any
_SCAN_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def _cumsum_fwd(x, dim):
    if type(x) is np.ndarray and x.ndim and x.size and x.dtype in _SCAN_DTYPES:  # not a sparse storage
        # the C++ scan (csrc/kernels/scan.h), in double as PyTorch's: bit for bit torch.cumsum
        return _C.cumsum(x, dim)
    return np.cumsum(x, axis=dim, dtype=x.dtype if _dtype.kind_of(x.dtype) in "fc" else np.int64) if x.ndim else x.copy()


def _reverse_cumsum(g, dim):
    """Running sums of ``g`` along ``dim`` from its end: one kernel pass when first order, else
    flip / cumsum / flip, which create_graph differentiates again."""
    if g.ndim == 0:
        return g
    gd = g._data
    if not _C.is_grad_enabled() and gd.size and gd.dtype in _SCAN_DTYPES:
        return Tensor._wrap(_C.cumsum(gd, dim, True))
    return flip(cumsum(flip(g, (dim,)), dim), (dim,))


_cumsum = defop("cumsum", _cumsum_fwd, lambda g, out, x, dim: _reverse_cumsum(g, dim), saves=())


@public(method=True, inplace=True, out=True)
def cumsum(input, dim, *, dtype=None):
    """Running sums along ``dim``; the gradient is the reversed running sum of the upstream gradient."""
    if dtype is not None:
        input = input.to(dtype)
    elif input._data.dtype.kind in "biu":  # PyTorch: integer and bool inputs accumulate in int64
        input = input.to(np.int64)
    return _as_asked(apply(_cumsum, input, dim=norm_dim(dim, input.ndim, "cumsum")), dtype)


def _logical_reduce(fn, name):
    # np.all / np.any on an exact ndarray are this ufunc's bool reduce, behind ~1 us of Python
    ufunc = np.logical_and if fn is np.all else np.logical_or

    def reduce(input, dim=None, keepdim=False):
        x = input._data
        if isinstance(dim, (tuple, list)) and len(dim) == 0:  # PyTorch: no dims, no reduction (sum's () is all)
            out = x != 0
        else:
            axis = norm_dims(dim, x.ndim, name)
            out = np.asarray(ufunc.reduce(x, axis, bool, None, keepdims=keepdim) if type(x) is np.ndarray
                             else fn(x, axis=axis, keepdims=keepdim))
        return Tensor._wrap(out.astype(np.uint8) if x.dtype.char == "B" else out)  # uint8 stays uint8, as PyTorch
    reduce.__name__ = name
    return reduce


all = _logical_reduce(np.all, "all")
public(all, method=True, out=True,
       doc="Whether every element is true (over ``dim``, or of the whole tensor).")
any = _logical_reduce(np.any, "any")
public(any, method=True, out=True,
       doc="Whether some element is true (over ``dim``, or of the whole tensor).")


def _named(name, fields=("values", "indices")):
    return collections.namedtuple(name, fields)


# ---------------------------------------------------------------- cumprod
# PyTorch's CPU scans run in at::acc_type: a float32 running product in double, the 16-bit floats'
# in float32, each output rounded once (diffusers' alphas_cumprod is such a float32 product)
_CUMPROD_ACC = {"float32": np.float64, "float16": np.float32, "bfloat16": np.float32, "complex64": np.complex128}


def _cumprod_fwd(x, dim):
    if not x.ndim:
        return x.copy()
    kind = _dtype.kind_of(x.dtype)
    if kind in "fc":
        acc = _CUMPROD_ACC.get(x.dtype.name)
        return np.cumprod(x, axis=dim) if acc is None else np.cumprod(x.astype(acc), axis=dim).astype(x.dtype)
    return np.cumprod(x, axis=dim, dtype=np.int64)


def _cumprod_vjp(g, out, x, dim):
    """``sum_{j >= i} g_j * out_j / x_i``; with zeros, the exact products of the others."""
    if x.ndim == 0:
        return g
    if not (x._data == 0).any():
        return _reverse_cumsum(g * out, dim) / x
    return _cumprod_vjp_zeros(g, x, dim)


def _cumprod_vjp_zeros(g, x, dim):
    # P[..., i, j] = prod_{k <= j, k != i} x_k (the cumprod of x with entry i set to 1), then
    # grad_i = sum_{j >= i} g_j P[i, j]. Quadratic in the dim's length, used only with zeros.
    n = x.shape[dim]
    xl = movedim(x, dim, -1)
    gl = movedim(g, dim, -1)
    eye = Tensor._wrap(np.eye(n, dtype=bool))
    rows = where(eye, const(1, x.dtype), unsqueeze(xl, -2))  # (..., i, j)
    p = cumprod(rows, -1)
    upper = const(np.triu(np.ones((n, n))), x.dtype)
    grad = (p * upper * unsqueeze(gl, -2)).sum(-1)
    return movedim(grad, -1, dim)


_cumprod = defop("cumprod", _cumprod_fwd, _cumprod_vjp, saves_output=True)


@public(method=True, inplace=True, out=True)
def cumprod(input, dim, *, dtype=None):
    """Running products along ``dim``; the gradient is exact when entries are zero."""
    if dtype is not None:
        input = input.to(dtype)
    elif input._data.dtype.kind in "biu":  # PyTorch: integer and bool inputs accumulate in int64
        input = input.to(np.int64)
    refuse_complex(input, "cumprod")  # (PyTorch has one; its gradient here would need conjugating)
    return _as_asked(apply(_cumprod, input, dim=norm_dim(dim, input.ndim, "cumprod")), dtype)


def _cum_extreme(input, dim, npfn, name):
    d = norm_dim(dim, input.ndim, name)
    a = input._data
    if a.ndim == 0:
        return _named(name)(clone(input), Tensor._wrap(np.zeros((), np.int64)))
    vals = npfn.accumulate(a, axis=d)
    n = a.shape[d]
    pos = np.arange(n).reshape((-1,) + (1,) * (a.ndim - d - 1))
    same = a == vals
    if a.dtype.kind in "fc":  # NaN propagates, its index the latest NaN's (PyTorch's rule)
        same |= np.isnan(a)
    hit = np.where(same, pos, -1)
    idx = Tensor._wrap(np.maximum.accumulate(hit, axis=d).astype(np.int64))
    return _named(name)(gather(input, d, idx), idx)


@public(method=True, out=True)
def cummax(input, dim):
    """Running maxima along ``dim`` and where each was found."""
    return _cum_extreme(input, dim, np.maximum, "cummax")


@public(method=True, out=True)
def cummin(input, dim):
    """The running minimum along ``dim`` and where it was found: ``(values, indices)``."""
    return _cum_extreme(input, dim, np.minimum, "cummin")


# ---------------------------------------------------------------- NaN-skipping reductions
@public(method=True, out=True)
def nansum(input, dim=None, keepdim=False, *, dtype=None):
    """``sum`` treating NaN as zero (NaN entries get a zero gradient)."""
    if _dtype.kind_of(input._data.dtype) == "f":
        input = where(_isnan(input), const(0, input.dtype), input)
    return sum(input, dim, keepdim, dtype=dtype)


@public(method=True, out=True)
def nanmean(input, dim=None, keepdim=False, *, dtype=None):
    """``mean`` over the non-NaN entries."""
    if dtype is not None:
        input = input.to(dtype)
    if _dtype.kind_of(input._data.dtype) != "f":
        raise RuntimeError(f"nanmean(): expected input to have floating point dtype but got "
                           f"{_dtype.name(input._data.dtype)}")
    count = sum((~_isnan(input)).to(input.dtype), dim, keepdim)
    return nansum(input, dim, keepdim) / count


def _isnan(t):
    return Tensor._wrap(np.isnan(t._data))


# ---------------------------------------------------------------- counting and statistics
@public(out=True)
def count_nonzero(input, dim=None):
    """The number of non-zero elements over ``dim`` (all by default)."""
    return sum(ne(input, 0), dim)


_minmax = collections.namedtuple("aminmax", ["min", "max"])


@public(method=True, out=True)
def aminmax(input, *, dim=None, keepdim=False):
    """``(min, max)`` over ``dim`` (all elements when None), as a namedtuple."""
    d = () if dim is None else dim
    return _minmax(amin(input, d, keepdim), amax(input, d, keepdim))


def _var_mean_args(unbiased, correction, dim):
    # var_mean(x, dim, unbiased) or var_mean(x, True): a bool in dim's place is ``unbiased``
    if isinstance(dim, bool):
        unbiased, dim = dim, None
    return unbiased, correction, dim


@public
def var_mean(input, dim=None, unbiased=None, keepdim=False, *, correction=None):
    """``(var, mean)`` over ``dim``, as ``torch.var_mean``."""
    unbiased, correction, dim = _var_mean_args(unbiased, correction, dim)
    return (var(input, dim, unbiased, keepdim, correction=correction), mean(input, dim, keepdim))


@public
def std_mean(input, dim=None, unbiased=None, keepdim=False, *, correction=None):
    """``(std, mean)`` over ``dim``, as ``torch.std_mean``."""
    unbiased, correction, dim = _var_mean_args(unbiased, correction, dim)
    return (std(input, dim, unbiased, keepdim, correction=correction), mean(input, dim, keepdim))


def _logcumsumexp_fwd(x, dim):
    # a running log-add-exp: each prefix is shifted by its own running maximum, so a large later
    # element cannot swamp the earlier prefixes (logcumsumexp([0, 100]) is [0, 100])
    return np.logaddexp.accumulate(x, axis=dim) if x.ndim else x.copy()


def _reverse_logcumsumexp(x, dim):
    return flip(logcumsumexp(flip(x, (dim,)), dim), (dim,))


def _logcumsumexp_vjp(g, out, x, dim):
    """``sum_{j >= i} g_j exp(x_i - out_j)``, in log space split by the sign of ``g`` (PyTorch's
    logcumsumexp_backward), written with logcumsumexp itself so that it differentiates again."""
    if x.ndim == 0:
        return g
    lowest = const(np.finfo(g._data.dtype).min, g.dtype)
    log_abs = log(abs(g))
    pos = exp(_reverse_logcumsumexp(where(g > 0, log_abs, lowest) - out, dim) + x)
    neg = exp(_reverse_logcumsumexp(where(g < 0, log_abs, lowest) - out, dim) + x)
    return pos - neg


_logcumsumexp = defop("logcumsumexp", _logcumsumexp_fwd, _logcumsumexp_vjp, saves_output=True)


@public(method=True, out=True)
def logcumsumexp(input, dim):
    """``log(cumsum(exp(input)))`` along ``dim``, stable for every prefix.

    >>> tapegrad.logcumsumexp(tapegrad.tensor([0.0, 100.0]), 0)
    tensor([  0., 100.])
    """
    d = norm_dim(dim, input.ndim, "logcumsumexp")
    if _dtype.kind_of(input.dtype) != "f":
        raise RuntimeError(f"logcumsumexp: not implemented for {input.dtype} tensors")
    return apply(_logcumsumexp, input, dim=d)


@public(method=True, out=True)
def diff(input, n=1, dim=-1, prepend=None, append=None):
    """The ``n``-th forward difference along ``dim`` (``prepend``/``append`` joined first)."""
    if input.ndim == 0:
        raise RuntimeError("diff expects input to be at least one-dimensional")
    if not isinstance(n, (builtins.int, np.integer)) or n < 0:
        raise RuntimeError(f"diff: order must be a non-negative integer but got {n!r}")
    d = norm_dim(dim, input.ndim, "diff")
    if n == 0:  # PyTorch returns the input, prepend and append left out
        return input
    parts = [p for p in (prepend, input, append) if p is not None]
    x = cat(parts, d) if len(parts) > 1 else input
    for _ in range(n):
        length = x.shape[d]
        if length == 0:
            break
        hi = narrow(x, d, 1, length - 1)
        lo = narrow(x, d, 0, length - 1)
        x = ne(hi, lo) if x.dtype == np.bool_ else hi - lo
    return x


@public(method=True, out=True)
@names_allocations("bincount")
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
    out_dtype = w.dtype if _dtype.kind_of(w.dtype) == "f" else np.float64
    return Tensor._wrap(np.bincount(a, weights=w, minlength=minlength).astype(out_dtype))


@public(method=True, out=True)
@names_allocations("histc")
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


def _no_bool_y(y, opname):
    if y._data.dtype == np.bool_:
        raise RuntimeError(f"{opname}: received a bool input for `y`, but bool is not supported")


@public(out=True)
def trapezoid(y, x=None, *, dx=None, dim=-1):
    """The trapezoidal-rule integral of ``y`` along ``dim`` (spacing ``x`` or ``dx``)."""
    d = norm_dim(dim, y.ndim, "trapezoid")
    _no_bool_y(y, "trapezoid")
    n = y.shape[d]
    if n == 0:  # PyTorch's: zeros of y's own dtype (no integer promotion, as sum would)
        return Tensor._wrap(np.zeros(y.shape[:d] + y.shape[d + 1:], y._data.dtype))
    avg = (narrow(y, d, 1, n - 1) + narrow(y, d, 0, n - 1)) * 0.5
    if x is not None:
        spacing = diff(x, dim=-1 if x.ndim == 1 else d)
        if x.ndim == 1:
            shape = [1] * y.ndim
            shape[d] = n - 1
            spacing = reshape(spacing, shape)
        return sum(avg * spacing, d)
    return sum(avg, d) * (1.0 if dx is None else dx)


trapz = trapezoid
public(trapz, name="trapz", out=True)


@public(method=True, out=True)
def cov(input, *, correction=1, fweights=None, aweights=None):
    """The covariance of the rows (variables) of ``input`` over its columns (observations),
    each column counted ``fweights`` times (ints) and weighted by ``aweights`` (floats), as
    ``numpy.cov``; integer input gives the default float dtype."""
    if input.ndim > 2:
        raise RuntimeError(f"cov(): expected input to have two or fewer dimensions but got an input with "
                           f"{input.ndim} dimensions (shape {tuple(input.shape)})")
    x = reshape(input, (1, -1)) if input.ndim < 2 else input
    if _dtype.kind_of(x.dtype) not in "fc":
        x = x.to(_dtype.default_float())
    n = x.shape[1]
    w = None
    for name, wt, kinds in (("fweights", fweights, "iu"), ("aweights", aweights, "f")):
        if wt is None:
            continue
        if wt.ndim > 1 or wt.numel() != n or _dtype.kind_of(wt.dtype) not in kinds:
            raise RuntimeError(f"cov(): expected {name} to be {'an integral' if kinds == 'iu' else 'a floating point'} "
                               f"scalar or 1-D tensor of {n} elements (the observations), got "
                               f"{_dtype.name(wt.dtype)} of shape {tuple(wt.shape)}")
        if (wt._data < 0).any():
            raise RuntimeError(f"cov(): {name} cannot be negative (got {wt._data.min()})")
        wt = reshape(wt, (n,))
        w = wt if w is None else w * wt
    if w is None:
        xc = x - mean(x, 1, True)
        c = matmul(xc, xc.mT) / builtins.max(n - correction, 0)
    else:
        w_sum = sum(w)
        xc = x - sum(x * w, 1, True) / w_sum
        if aweights is None or correction == 0:
            norm = w_sum - correction
        else:
            norm = w_sum - correction * sum(w * reshape(aweights, (n,))) / w_sum
        c = matmul(xc * w, xc.mT) / clamp(norm, min=0)
    return reshape(c, ()) if tuple(c.shape) == (1, 1) else c  # one variable: 0-d, as PyTorch's squeeze


@public(method=True, out=True)
def corrcoef(input):
    """The Pearson correlation coefficients of the rows of ``input``."""
    c = cov(input)
    if c.ndim == 0:
        return c / c
    d = sqrt(diagonal(c))
    return clamp(c / unsqueeze(d, 1) / unsqueeze(d, 0), -1, 1)


@public
def cumulative_trapezoid(y, x=None, *, dx=None, dim=-1):
    """The running trapezoidal-rule integral of ``y`` along ``dim`` (one element shorter than
    ``y`` there), with spacing ``x`` or ``dx``; ``trapezoid``'s partial sums."""
    d = norm_dim(dim, y.ndim, "cumulative_trapezoid")
    _no_bool_y(y, "cumulative_trapezoid")
    n = y.shape[d]
    if n == 0:  # empty, in the dtype the averages would have had (integers: the default float)
        return y.to(_dtype.default_float()) if _dtype.kind_of(y.dtype) in "iu" else y
    avg = (narrow(y, d, 1, n - 1) + narrow(y, d, 0, n - 1)) * 0.5
    if x is not None:
        spacing = diff(x, dim=-1 if x.ndim == 1 else d)
        if x.ndim == 1:
            shape = [1] * y.ndim
            shape[d] = n - 1
            spacing = reshape(spacing, shape)
        avg = avg * spacing
    elif dx is not None:
        avg = avg * dx
    return cumsum(avg, d)


def _gradient_1d(f, d, h, edge_order):
    """numpy.gradient's second-order central differences along ``d`` of ``f``, spacing ``h``
    (a number or the 1-D coordinates), written in ops so the result is differentiable."""
    n = f.shape[d]
    if n < edge_order + 1:
        raise RuntimeError(f"torch.gradient expected each dimension size to be at least edge_order+1, "
                           f"got size {n} at dim {d} with edge_order {edge_order}")
    part = lambda s, length: narrow(f, d, s, length)  # noqa: E731
    if not isinstance(h, Tensor):
        h = builtins.float(h)
        inner = (part(2, n - 2) - part(0, n - 2)) / (2 * h)
        if edge_order == 1:
            first, last = (part(1, 1) - part(0, 1)) / h, (part(n - 1, 1) - part(n - 2, 1)) / h
        else:
            first = (-1.5 * part(0, 1) + 2 * part(1, 1) - 0.5 * part(2, 1)) / h
            last = (0.5 * part(n - 3, 1) - 2 * part(n - 2, 1) + 1.5 * part(n - 1, 1)) / h
        return cat([first, inner, last], d)
    c = h._data.astype(np.float64)
    dxs = np.diff(c)
    shape = [1] * f.ndim

    def col(v):  # coefficients along d, broadcast over the other dims
        shape[d] = len(v)
        return const(np.asarray(v).reshape(shape), f.dtype)

    h1, h2 = dxs[:-1], dxs[1:]
    inner = (col(-h2 / (h1 * (h1 + h2))) * part(0, n - 2) + col((h2 - h1) / (h1 * h2)) * part(1, n - 2)
             + col(h1 / (h2 * (h1 + h2))) * part(2, n - 2))
    if edge_order == 1:
        first = (part(1, 1) - part(0, 1)) / builtins.float(dxs[0])
        last = (part(n - 1, 1) - part(n - 2, 1)) / builtins.float(dxs[-1])
    else:
        a, b = dxs[0], dxs[1]
        first = (part(0, 1) * (-(2 * a + b) / (a * (a + b))) + part(1, 1) * ((a + b) / (a * b))
                 + part(2, 1) * (-a / (b * (a + b))))
        a, b = dxs[-2], dxs[-1]
        last = (part(n - 3, 1) * (b / (a * (a + b))) + part(n - 2, 1) * (-(a + b) / (a * b))
                + part(n - 1, 1) * ((2 * b + a) / (b * (a + b))))
    return cat([first, inner, last], d)


@public
def gradient(input, *, spacing=1, dim=None, edge_order=1):
    """The derivative of ``input`` estimated by central differences, one tensor per dim in
    ``dim`` (all dims by default), as ``numpy.gradient``: ``spacing`` is a number, a list of
    numbers (one per dim) or a list of coordinate tensors; ``edge_order`` 1 or 2 at the ends."""
    spacing = 1 if spacing is None else spacing  # PyTorch's defaults may be passed explicitly
    if edge_order not in (1, 2):
        raise RuntimeError(f"torch.gradient only supports edge_order=1 and edge_order=2, got {edge_order}")
    dims = list(range(input.ndim)) if dim is None else [dim] if isinstance(dim, int) else list(dim)
    dims = [norm_dim(d, input.ndim, "gradient") for d in dims]
    if len(set(dims)) != len(dims):
        raise RuntimeError(f"gradient: dim {next(d for d in dims if dims.count(d) > 1)} appears multiple times in the "
                           f"list of dims {tuple(dim)}")
    if isinstance(spacing, (list, tuple)):
        if len(spacing) != len(dims):
            raise RuntimeError(f"torch.gradient expected spacing to be unspecified, a scalar or a list of length "
                               f"{len(dims)} (one per dim), got a list of length {len(spacing)}")
        hs = list(spacing)
    else:
        hs = [spacing] * len(dims)
    f = input if input.dtype.kind == "f" else input.to(_dtype.default_float())
    return tuple(_gradient_1d(f, d, h, edge_order) for d, h in zip(dims, hs))


_Histogram = collections.namedtuple("histogram", ["hist", "bin_edges"])


@public(method=True, out=True)
def histogram(input, bins=100, *, range=None, weight=None, density=False):
    """``(hist, bin_edges)``: ``bins`` equal bins over ``range`` (the data's min..max by default)
    or the given increasing edges; ``weight`` per element, ``density`` to normalise to a
    probability density (not differentiable)."""
    a = input._data
    if a.dtype.kind != "f":
        raise RuntimeError(f"histogram: input tensor and bins tensors should have the same dtype (a float), "
                           f"got {_dtype.name(a.dtype)}")
    b = bins._data if isinstance(bins, Tensor) else int(bins)
    w = weight._data if weight is not None else None
    if isinstance(b, int) and range is None and a.size and a.min() == a.max():
        range = (builtins.float(a.min()), builtins.float(a.max()))  # numpy widens by 0.5 each side, as PyTorch
    hist, edges = np.histogram(a, bins=b, range=range, weights=w, density=density)
    return _Histogram(Tensor._wrap(hist.astype(a.dtype)), Tensor._wrap(edges.astype(a.dtype)))


@public(method=True, inplace=True, out=True)
def renorm(input, p, dim, maxnorm):
    """Each slice of ``input`` along ``dim`` whose ``p``-norm exceeds ``maxnorm`` scaled down to
    norm ``maxnorm`` (PyTorch's ``maxnorm / (norm + 1e-7)``); the other slices unchanged."""
    if input._data.dtype.kind != "f":
        raise RuntimeError(f"renorm: expected a floating point tensor, got {_dtype.name(input.dtype)}")
    if input.ndim < 2:
        raise RuntimeError(f"renorm: input needs at least 2 dimensions, got {input.ndim} dimensions")
    if p <= 0:
        raise RuntimeError(f"renorm: non-positive norm not supported, got p={p}")
    if maxnorm < 0:
        raise RuntimeError(f"renorm: expected maxnorm to be >= 0 but got {maxnorm}")
    d = norm_dim(dim, input.ndim, "renorm")
    others = tuple(k for k in range(input.ndim) if k != d)
    norms = pnorm(input, p, others, keepdim=True) if others else abs(input)
    factor = where(norms > maxnorm, maxnorm / (norms + 1e-7), const(1.0, input.dtype))
    return input * factor


@public(method=True)
def hash_tensor(input, dim=None, *, keepdim=False, mode=0):
    """A uint64 hash of the elements (over ``dim``, all by default): each element widened to
    float64 or int64, its bits read as uint64, and all XOR-ed (``mode=0``, the only mode, as in
    PyTorch). Equal tensors hash equal; not differentiable."""
    if mode != 0:
        raise RuntimeError(f"hash_tensor: only mode=0 (xor reduction) is supported, got {mode}")
    a = input._data
    wide = a.astype(np.float64 if a.dtype.kind == "f" else np.int64).view(np.uint64)
    axes = norm_dims(dim, a.ndim, "hash_tensor")
    out = np.bitwise_xor.reduce(wide, axis=axes, keepdims=keepdim) if axes else wide.copy()
    return Tensor._wrap(np.asarray(out, dtype=np.uint64))


@public
def histogramdd(input, bins=10, *, range=None, weight=None, density=False):
    """``(hist, bin_edges)``: the histogram of the rows of ``input`` (N points of D coordinates,
    the last dim) over ``bins`` per coordinate (an int, one int per coordinate, or edge
    tensors); ``range`` is ``[lo0, hi0, lo1, hi1, ...]``. Not differentiable."""
    a = input._data
    if a.dtype.kind != "f":
        raise RuntimeError(f"histogramdd: expected a floating point input, got {_dtype.name(a.dtype)}")
    pts = a.reshape(-1, a.shape[-1]) if a.ndim else a.reshape(1, 1)
    b = [t._data for t in bins] if isinstance(bins, (list, tuple)) and bins and isinstance(bins[0], Tensor) else bins
    r = None if range is None else [(range[2 * k], range[2 * k + 1]) for k in builtins.range(len(range) // 2)]
    w = None if weight is None else weight._data.reshape(-1)
    hist, edges = np.histogramdd(pts, bins=b, range=r, weights=w, density=density)
    return _Histogram(Tensor._wrap(hist.astype(a.dtype)), tuple(Tensor._wrap(e.astype(a.dtype)) for e in edges))
