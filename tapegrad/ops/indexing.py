"""Indexing and scatter: ``getitem``/``setitem``, ``gather``, ``scatter``/``scatter_add``/
``scatter_reduce``, ``index_select``/``index_add``/``index_copy``/``index_fill``, the masked ops,
``take``, ``nonzero`` and ``where``.
"""
from __future__ import annotations

import builtins
import functools
import itertools
import warnings

import numpy as np

from .. import _C, _dtype
from .._tape import grad_mode
from .._tape.registry import SliceGrad, ZeroedGrad, apply, defop
from ._util import const, copy_into, norm_dim
from . import inplace as _inplace_module
from . import shape as _shape
from .complex import view_as_complex as _view_as_complex, view_as_real as _view_as_real
from .inplace import _check_leaf, _inplace_of, _tensors, _write, inplace
from .pointwise import add, mul, where
from .shape import _reshape_inplace, broadcast_shapes, clone, expand, movedim, pad, reshape
from . import surface as _surface
from .surface import public

Tensor = None  # the Tensor class, bound by tensor.py (ops.bind_tensor): the ops sit below it


class _TwoStep(tuple):
    """PyTorch's indexing as two numpy indices, ``(basic, advanced)``: ``a[basic][advanced]``.

    numpy counts an integer as an advanced index, PyTorch as a basic one (a ``select``): in
    ``zeros(2, 3, 4)[1, :, tensor([0, 2])]`` numpy sees two advanced indices separated by a slice
    and puts their dim first, (2, 3); PyTorch selects first and indexes what is left, (3, 2). So
    the ints, slices, None and Ellipsis go first (a bool scalar adds a dim, as None), and the
    tensors, lists and masks then index the remaining dims, where numpy's rule (adjacent: in
    place; separated: first) is PyTorch's."""

    __slots__ = ()


def _take(a, index):
    return a[index[0]][index[1]] if isinstance(index, _TwoStep) else a[index]


def _region_of(a, index):
    """The array that ``index``'s last step writes into (a view of ``a``), and that step's index."""
    return (a[index[0]], index[1]) if isinstance(index, _TwoStep) else (a, index)


_BASIC = frozenset((int, slice, type(None), type(Ellipsis)))


def _list_is_tuple(index: list) -> bool:
    """PyTorch's (and old numpy's) reading of a list index: one holding a sequence, a slice, None,
    Ellipsis or a tensor is a tuple of indices (``x[[[0, 1], [1, 2]]]`` is ``x[[0, 1], [1, 2]]``),
    any other list (of ints) one index array; from 32 items on, always one index array.
    (numpy since 1.23 takes every list as one array.)"""
    return len(index) < 32 and builtins.any(
        i is None or i is Ellipsis or isinstance(i, (slice, list, tuple, np.ndarray, Tensor)) for i in index)


def _norm_index(index, ndim):
    """A numpy index (or a ``_TwoStep``) that picks what PyTorch's ``x[index]`` picks."""
    if type(index) is list and _list_is_tuple(index):
        warnings.warn("Using a non-tuple sequence for multidimensional indexing is deprecated (as in PyTorch); use "
                      "x[tuple(seq)] instead of x[seq]: numpy, and PyTorch in a later release, read the list as "
                      "one index array", UserWarning, stacklevel=4)
        index = tuple(index)
    if not isinstance(index, tuple):
        index = (index,)
    if builtins.all(type(i) in _BASIC for i in index):  # the common case, kept cheap
        return index
    items, advanced, one_step = [], False, True
    for i in index:
        i = _index_item(i)
        items.append(i)
        if type(i) is np.ndarray:
            advanced = True
        elif type(i) is bool:
            advanced, one_step = True, False
        elif i is not None and type(i) is not slice:  # an int or Ellipsis
            one_step = False
    if not advanced or one_step:  # no int, bool scalar or Ellipsis beside a tensor: numpy's rule is PyTorch's
        return tuple(items)
    # the basic step: each tensor index kept as full slices, each bool scalar a new dim
    used = builtins.sum(i.ndim if isinstance(i, np.ndarray) and i.dtype == np.bool_ else 1 for i in items
                        if i is not None and i is not Ellipsis and not isinstance(i, bool))
    basic, adv = [], []
    for i in items:
        if isinstance(i, bool):
            basic.append(None)
            adv.append(np.zeros(1 if i else 0, np.int64))
        elif isinstance(i, np.ndarray):
            basic.extend([slice(None)] * i.ndim if i.dtype == np.bool_ else [slice(None)])
            adv.append(i)
        elif i is Ellipsis:
            basic.append(i)
            adv.extend([slice(None)] * builtins.max(ndim - used, 0))
        elif i is None or isinstance(i, slice):
            basic.append(i)
            adv.append(slice(None))
        else:  # an int selects: its dim is gone before the tensors apply
            basic.append(i)
    return _TwoStep((tuple(basic), tuple(adv)))


def _index_item(i):
    """One index as numpy takes it: tensors, lists and ranges become arrays (a 0-d integer tensor an int,
    a 0-d bool one a bool, a uint8 tensor a mask, as in PyTorch)."""
    if isinstance(i, Tensor):
        i = i._data
        kind = i.dtype.kind
        if kind == "f":
            raise IndexError("tensors used as indices must be long, int, byte or bool tensors")
        if kind == "u" and i.dtype.itemsize == 1:  # PyTorch's legacy byte masks
            i, kind = i.astype(bool), "b"
        if not i.ndim:
            return bool(i) if kind == "b" else int(i)
        return i
    if isinstance(i, (list, range)):  # PyTorch reads a range as the list of its ints
        i = np.asarray(i, dtype=np.int64) if isinstance(i, range) else np.asarray(i)
        if i.size == 0 and _dtype.kind_of(i.dtype) == "f":  # ``x[[]]``: an empty int index, as PyTorch reads it
            i = i.astype(np.int64)
        if _dtype.kind_of(i.dtype) == "f":
            raise IndexError("lists used as indices must hold ints or bools")
        return i
    if isinstance(i, (bool, np.bool_)):
        return bool(i)
    if isinstance(i, np.ndarray) and i.ndim == 0 and i.dtype.kind in "iu":
        return int(i)
    return i


def _is_basic(index) -> bool:
    return not isinstance(index, _TwoStep) and all(
        i is None or i is Ellipsis or isinstance(i, (int, np.integer, slice)) and not isinstance(i, bool)
        for i in index)


def _getitem_fwd(x, index, basic):
    if basic:  # a trailing Ellipsis keeps an all-int index a 0-d view (numpy gives a scalar copy), as PyTorch's x[i]
        return x[index if Ellipsis in index else index + (Ellipsis,)]
    return _take(x, index)


def _index_put_add_fwd(g, shape, index, basic):
    """Zeros of ``shape`` with ``g`` added at ``index`` (np.add.at accumulates repeats)."""
    z = np.zeros(shape, dtype=g.dtype)
    if basic:
        z[index] = g
    else:
        np.add.at(*_region_of(z, index), g)
    return z


def _getitem_vjp(g, out, x, index, basic):
    """Zeros of x's shape with g at index; outside create_graph a basic index's is left to the
    engine (SliceGrad), which puts the pieces of one tensor into one array."""
    if basic and type(g._data) is np.ndarray and g._data.dtype == x.dtype and not _C.is_grad_enabled():
        return SliceGrad(index, g)
    return index_put_add(g, x.shape, index, basic)


_getitem = defop("getitem", _getitem_fwd, _getitem_vjp, saves=(), view=True)
_index_put_add = defop("index_put_add", _index_put_add_fwd,
                       lambda g, out, v, shape, index, basic: apply(_getitem, g, index=index, basic=basic),
                       saves=())


@public
def index_put_add(g, shape, index, basic):
    """A zero tensor of ``shape`` with ``g`` added at ``index``: the VJP of indexing."""
    return apply(_index_put_add, g, shape=tuple(shape), index=index, basic=basic)


@public
def getitem(x: Tensor, index):
    """``x[index]``: basic indexing gives a view, advanced indexing a copy."""
    idx = _ints_and_slices(index)
    if idx is not None:  # x[0], x[1:3], x[:, 1]: what _norm_index and _is_basic make of them, at once
        basic = True
    elif index.__class__ is Tensor and index._data.__class__ is np.ndarray and index._data.dtype.kind == "i" and (
            index._data.ndim):  # x[i], i a signed integer tensor: what _norm_index and _is_basic make of it
        idx, basic = (index._data,), False
    else:
        idx = _norm_index(index, x.ndim)
        basic = _is_basic(idx)
    try:
        if basic:  # validate cheaply before recording
            x._data[idx]
    except IndexError as e:
        raise IndexError(f"index {index!r} is out of range for a tensor of shape {tuple(x.shape)}: {e}") from None
    try:
        out = apply(_getitem, x, index=idx, basic=basic)
    except IndexError as e:
        raise IndexError(f"index {_describe(index)} is invalid for a tensor of shape {tuple(x.shape)}: {e}") from None


    if not basic:  # advanced indexing copies: the result is not a view
        out._version_box, out._base = [0], None
    return out


def _ints_and_slices(index):
    """``index`` as a tuple when it is a plain int, a slice or a tuple of them (the common basic
    indices), else None."""
    c = index.__class__
    if c is int or c is slice:
        return (index,)
    if c is tuple:
        for i in index:
            if i.__class__ is not int and i.__class__ is not slice:
                return None
        return index
    return None


def _describe(index):
    if isinstance(index, Tensor):
        return f"tensor of shape {tuple(index.shape)}"
    return repr(index)


def _setitem_fwd(x, v, index, into=False):
    """``x`` with ``v`` at ``index``: a copy, or with ``into`` ``x`` itself, written in place (how
    ``x[index] = v`` records: its VJPs read neither ``x`` nor the result, so the tape needs no
    snapshot of ``x``, and a write costs the size of the region, not of ``x``)."""
    out = x if into else x.copy()
    region, last = _region_of(out, index)
    region[last] = v
    return out


def _zero_at(index, g):
    return apply(_setitem, g, Tensor._wrap(np.zeros((), g.dtype)), index=index)


def _zero_in_place(index, a):
    region, last = _region_of(a, index)
    region[last] = 0


def _setitem_x_vjp(g, out, x, v, index, into=False):
    """``g`` with zeros where ``v`` was written; outside create_graph the engine zeroes ``g``
    itself when it may (ZeroedGrad)."""
    if type(g._data) is np.ndarray and not _C.is_grad_enabled():
        return ZeroedGrad(g, functools.partial(_zero_in_place, index), functools.partial(_zero_at, index))
    return _zero_at(index, g)


def _setitem_v_vjp(g, out, x, v, index, into=False):
    piece = apply(_getitem, g, index=index, basic=_is_basic(index))
    if not _C.is_grad_enabled() and np.shares_memory(piece._data, g._data):
        piece = Tensor._wrap(piece._data.copy())  # g may be zeroed in place after (ZeroedGrad)
    return piece


_setitem = defop("setitem", _setitem_fwd, _setitem_x_vjp, _setitem_v_vjp, saves=())
_inplace_module._setitem = _setitem  # writes through a view record on the base with it
_inplace_module._getitem = _getitem  # and views of a base written in place take their graph with it


@public
def setitem(x: Tensor, index, value):
    """``x[index] = value``: in place, recorded when ``x`` or ``value`` is in the graph."""
    idx = _norm_index(index, x.ndim)
    if type(value) in _NUMBERS and type(idx) is tuple and not (grad_mode.state.enabled and x._requires_grad) \
            and builtins.all(type(i) in _BASIC for i in idx):
        _write_unrecorded(x, idx, index, value)  # x[i] = 0.0, x[:, 2] = 1: nothing to broadcast or record
        return
    try:
        v = value if isinstance(value, Tensor) else Tensor._wrap(np.asarray(value, dtype=x.dtype))
    except OverflowError:
        raise RuntimeError(f"setitem: value {value!r} cannot be converted to type {_dtype.name(x.dtype)} without "
                           f"overflow") from None
    try:
        target = _take(x._data, idx).shape
    except IndexError as e:
        raise IndexError(f"index {_describe(index)} is invalid for a tensor of shape {tuple(x.shape)}: {e}") from None
    lead = 0  # PyTorch drops a value's leading size-1 dims beyond the target's rank (x[0] = t of shape (1, n))
    while v.ndim - lead > len(target) and v.shape[lead] == 1:
        lead += 1
    if lead:
        v = v.reshape(tuple(v.shape)[lead:])
    try:
        np.broadcast_to(v._data, target)
    except ValueError:
        raise RuntimeError(f"setitem: shape mismatch: value of shape {tuple(v.shape)} cannot be broadcast to "
                           f"indexing result of shape {target}") from None
    if not (grad_mode.state.enabled and (x._requires_grad or v._requires_grad)):
        _write_unrecorded(x, idx, index, v._data)
        return
    inplace(x, lambda s, val: apply(_setitem, s, val.to(s.dtype), index=idx, into=True), "setitem", v,
            snapshot=False)


_NUMBERS = frozenset((int, float, bool))


def _write_unrecorded(x: Tensor, idx, index, value) -> None:
    """setitem with nothing to record: numpy's assignment straight into x's memory. A Python
    number at a basic index comes here directly (2.4 us a call less than building a tensor of it
    and checking a broadcast first); the errors are for that case."""
    if x._data.flags.writeable is False:
        raise RuntimeError("setitem: the tensor is a read-only (expanded) view; clone() it first")
    region, last = _region_of(x._data, idx)
    if _inplace_module.WRITE_WATCHERS:
        _inplace_module.before_write(x)
    try:
        region[last] = value
    except IndexError as e:
        raise IndexError(f"index {_describe(index)} is invalid for a tensor of shape {tuple(x.shape)}: {e}") from None
    except (OverflowError, ValueError):  # 300 into int8, NaN into an integer tensor
        raise RuntimeError(f"setitem: value {value!r} cannot be converted to type {_dtype.name(x.dtype)} without "
                           f"overflow") from None
    x._bump_version()


# ---------------------------------------------------------------- gather / scatter along a dim
def _along(index, dim):
    """The full numpy index that picks ``x[..., index[i, j, ...], ...]`` with ``index`` at ``dim``."""
    idx = list(np.indices(index.shape, sparse=True))
    idx[dim] = index
    return tuple(idx)


def _region(shape):
    return tuple(slice(0, s) for s in shape)


# An index outside its dim in gather / scatter / index_add: an IndexError, and PyTorch's
# RuntimeError as well. The native kernels raise it too.
IndexOutOfBounds = _C.IndexOutOfBounds


def _check_index(input, dim, index, opname, src=None, bounds=True):
    """PyTorch's checks for gather/scatter: int64-like index, same ndim, sizes, and the bounds
    unless ``bounds`` is False (the forward checks them then: the kernels do on the way)."""
    if not isinstance(index, Tensor) or index._data.dtype.kind not in "iu":
        got = _dtype_name(index)
        raise RuntimeError(f"{opname}(): Expected dtype int64 for index, got {got}")
    ishape, xshape = index._data.shape, input._data.shape  # (numpy's tuples: Size's indexing is Python code)
    nd = len(xshape)
    d = norm_dim(dim, nd, opname)
    if len(ishape) != nd and not (nd == 0 and len(ishape) <= 1):
        raise RuntimeError(f"{opname}(): Index tensor must have the same number of dimensions as input tensor "
                           f"(index shape {tuple(index.shape)}, input shape {tuple(input.shape)})")
    sshape = src._data.shape if src is not None else None
    for k in range(len(ishape)):
        if nd and k != d and ishape[k] > xshape[k]:
            raise RuntimeError(f"{opname}(): Size does not match at dimension {k} expected index "
                               f"{tuple(index.shape)} to be smaller than self {tuple(input.shape)} apart from "
                               f"dimension {d}")
        if sshape and ishape[k] > sshape[k]:
            raise RuntimeError(f"{opname}(): Expected index {tuple(index.shape)} to be smaller than src "
                               f"{tuple(src.shape)} in every dimension")
    a = index._data
    if bounds:
        _check_bounds(a, xshape if nd else (1,), d, opname)
    return d, a.astype(np.int64, copy=False)


def _check_bounds(index, shape, dim, opname):
    n = shape[dim]
    if index.size and (index.min() < 0 or index.max() >= n):
        bad = int(index.min()) if index.min() < 0 else int(index.max())
        raise IndexOutOfBounds(f"{opname}(): index {bad} is out of bounds for dimension {dim} with size {n} "
                               f"(input shape {shape})")


# The native kernels (csrc/kernels/gather.cpp): gathers and overwrites copy elements of 1, 2, 4 or
# 8 bytes, the sums take these dtypes; anything else (float16, complex128, ...) goes through numpy.
_SUMMABLE = frozenset(np.dtype(t) for t in (np.float32, np.float64, np.int32, np.int64))


def _copyable(dtype):
    return dtype.itemsize in (1, 2, 4, 8) and dtype.kind in "biufcm"


def _fresh_copy(x):
    """A C-contiguous copy of ``x`` for the scatters to write: on the kernel threads where it is large
    (copy_'s tiles), where numpy's one-thread copy was half the scatter's time at 2 threads."""
    out = np.empty(x.shape, x.dtype)
    copy_into(out, x)
    return out


def _scatter_into(out, dim, index, src, accumulate, opname):
    """``out`` (a C-contiguous array of ours) with ``src[region of index]`` put or added at ``index``
    along ``dim``; repeats add in order along ``dim`` (np.add.at's sums), or the last one stays."""
    if src.ndim == 0:
        src = np.broadcast_to(src, index.shape)
    if src.dtype == out.dtype and src.ndim == out.ndim and (out.dtype in _SUMMABLE if accumulate else
                                                             _copyable(out.dtype)):
        _C.scatter_(out, dim, index, src, accumulate, opname)
        return out
    _check_bounds(index, out.shape, dim, opname)
    if accumulate:
        np.add.at(out, _along(index, dim), src[_region(index.shape)])
    else:
        out[_along(index, dim)] = src[_region(index.shape)]
    return out


def _dtype_name(t):
    return _dtype.name(t._data.dtype) if isinstance(t, Tensor) else type(t).__name__


def _gather_fwd(x, dim, index):
    if _copyable(x.dtype):
        return _C.gather(x, dim, index, "gather")
    _check_bounds(index, x.shape, dim, "gather")
    return x[_along(index, dim)]


def _gather_vjp(g, out, x, dim, index):
    if not grad_mode.state.enabled:  # no graph to build: the sums straight into zeros, one pass
        return Tensor._wrap(_scatter_into(np.zeros(x.shape, g._data.dtype), dim, index, g._data, True, "gather"))
    return apply(_scatter_add, Tensor._wrap(np.zeros(x.shape, g.dtype)), g, dim=dim, index=index)


_gather = defop("gather", _gather_fwd, _gather_vjp, saves=())


@public(method=True, out=True)
def gather(input, dim, index, *, sparse_grad=False):
    """``out[i][j] = input[index[i][j]][j]`` (for dim 0): pick along ``dim`` by ``index``.

    >>> tapegrad.gather(tapegrad.tensor([[1, 2], [3, 4]]), 1, tapegrad.tensor([[0, 0], [1, 0]]))
    tensor([[1, 1],
            [4, 3]])
    """
    nd = input._data.ndim
    if nd == 0:
        return gather(input.reshape(1), 0, index.reshape(-1)).reshape(index.shape)
    ind = index._data.ndim if isinstance(index, Tensor) else None
    if ind == 0 and nd == 1:  # PyTorch reads a 0-d index as 1-d
        return gather(input, dim, index.reshape(1)).reshape(())
    if ind is not None and ind != nd and index._data.size == 0:
        norm_dim(dim, input.ndim, "gather")
        return Tensor._wrap(np.zeros(index.shape, input.dtype))  # nothing gathered: PyTorch skips the shape checks
    d, idx = _check_index(input, dim, index, "gather", bounds=False)
    return apply(_gather, input, dim=d, index=idx)


def _scatter_add_fwd(x, src, dim, index):
    return _scatter_into(_fresh_copy(x), dim, index, src, True, "scatter_add")


def _src_grad(g, src, dim, index):
    """d/d src of a scatter: the gathered gradient, zero where ``src`` was not read."""
    got = apply(_gather, g, dim=dim, index=index)
    if tuple(src.shape) == index.shape:
        return got
    return pad(got, tuple(w for n, k in reversed(list(zip(src.shape, index.shape))) for w in (0, n - k)))


_scatter_add = defop("scatter_add", _scatter_add_fwd,
                     lambda g, out, x, src, dim, index: g,
                     lambda g, out, x, src, dim, index: _src_grad(g, src, dim, index), saves=())


def _scatter_args(input, dim, index, src, opname, bounds=True):
    if not isinstance(src, Tensor):
        src = Tensor._wrap(np.asarray(src, dtype=input.dtype))
    elif src._data.dtype != input._data.dtype:
        raise RuntimeError(f"{opname}(): Expected self.dtype to be equal to src.dtype "
                           f"({_dtype_name(input)} vs {_dtype_name(src)})")
    if input.ndim == 0:
        raise RuntimeError(f"{opname}(): 0-d input is not supported; reshape it to 1-d")
    if isinstance(index, Tensor) and index.ndim == 0 and input.ndim == 1:  # a 0-d index (and src) read as 1-d
        index, src = index.reshape(1), src.reshape(1) if src.ndim == 0 else src
    d, idx = _check_index(input, dim, index, opname, src, bounds)
    return src, d, idx


def _zero_d_as_1d(fn):
    """Run a scatter-like ``fn(input, dim, index, src, ...)`` on a 0-d input as on its 1-element
    1-d view (0-d index and src too), the result 0-d again: PyTorch's scatters accept 0-d tensors."""
    @functools.wraps(fn)
    def wrapper(input, dim, index, *args, **kwargs):
        if not (isinstance(input, Tensor) and input.ndim == 0):
            return fn(input, dim, index, *args, **kwargs)
        norm_dim(dim, 0, fn.__name__)  # 0 or -1 only
        one = (lambda t: t.reshape(1) if isinstance(t, Tensor) and t.ndim == 0 else t)
        out = fn(input.reshape(1), 0, one(index), *(one(a) for a in args), **kwargs)
        return out.reshape(())
    return wrapper


@public(method=True, inplace=True)
@_zero_d_as_1d
def scatter_add(input, dim, index, src):
    """``out = input.clone(); out[index[i][j]][j] += src[i][j]`` (for dim 0); repeats accumulate."""
    src, d, idx = _scatter_args(input, dim, index, src, "scatter_add", bounds=False)
    return apply(_scatter_add, input, src, dim=d, index=idx)


def _scatter_add_direct(generic):
    """scatter_add_ with nothing to record: the kernel's sums straight into the tensor (C-contiguous,
    writeable, src of its dtype), where the generic form's out-of-place result and copy back took
    1.5x PyTorch's time on issue 12's zeros(1000, 1000).scatter_add_(1, idx, src). As PyTorch's, an
    index out of bounds raises with the values before it (in each task) already added."""
    def scatter_add_(input, dim, index, src):
        a = input._data if isinstance(input, Tensor) else None
        if (type(a) is np.ndarray and a.ndim and a.dtype in _SUMMABLE and a.flags.c_contiguous and a.flags.writeable
                and isinstance(src, Tensor) and src._data.dtype == a.dtype
                and not (grad_mode.state.enabled and (input._requires_grad or src._requires_grad))):
            s, d, idx = _scatter_args(input, dim, index, src, "scatter_add", bounds=False)
            if not (np.may_share_memory(a, s._data) or np.may_share_memory(a, idx)):  # src read as it was
                if _inplace_module.WRITE_WATCHERS:
                    _inplace_module.before_write(input)
                input._bump_version()
                _scatter_into(a, d, idx, s._data, True, "scatter_add")
                return input
        return generic(input, dim, index, src)
    scatter_add_.__doc__ = generic.__doc__
    return _surface.replace("scatter_add_", _surface._with_aliases(scatter_add_, "scatter_add_"))  # axis= too


scatter_add_ = _scatter_add_direct(_surface.PLAIN["scatter_add_"])


def _scatter_fwd(x, src, dim, index):
    return _scatter_into(_fresh_copy(x), dim, index, src, False, "scatter")


def _scatter_self_grad(g, dim, index):
    return where(Tensor._wrap(_hit(g.shape, dim, index)), Tensor._wrap(np.zeros((), g.dtype)), g)


_scatter = defop("scatter", _scatter_fwd,
                 lambda g, out, x, src, dim, index: _scatter_self_grad(g, dim, index),
                 lambda g, out, x, src, dim, index: _src_grad(g, src, dim, index), saves=())


@public(method=True, inplace=True)
@_zero_d_as_1d
def scatter(input, dim, index, src=None, *, value=None, reduce=None):
    """``out = input.clone(); out[index[i][j]][j] = src[i][j]`` (for dim 0); ``src`` may be a scalar.

    With repeated indices the element written is unspecified (as in PyTorch). PyTorch's deprecated
    ``reduce='add'``/``'multiply'`` accumulate repeats, as ``scatter_reduce`` with 'sum'/'prod' and
    ``include_self=True``; their gradients (which PyTorch does not implement) are scatter_reduce's.
    """
    if src is None:
        src = value
    if src is None:
        raise TypeError("scatter(): expected src (a tensor) or value (a number)")
    if reduce is not None:
        if reduce not in ("add", "multiply"):
            raise RuntimeError(f"scatter(): reduce argument must be either add or multiply, got {reduce!r}")
        if not isinstance(src, Tensor):
            src = Tensor._wrap(np.full(tuple(index.shape), src, dtype=input._data.dtype))
        return scatter_reduce(input, dim, index, src, "sum" if reduce == "add" else "prod")
    src, d, idx = _scatter_args(input, dim, index, src, "scatter", bounds=False)
    return apply(_scatter, input, src, dim=d, index=idx)


@public(method=True, out=True)
def take_along_dim(input, indices, dim=None):
    """``gather`` with the non-``dim`` dims of ``input`` and ``indices`` broadcast together."""
    if dim is None:
        return gather(input.reshape(-1), 0, indices.reshape(-1))
    d = norm_dim(dim, input.ndim, "take_along_dim")
    if indices.ndim != input.ndim:
        raise RuntimeError(f"take_along_dim(): input and indices should have the same number of dimensions, "
                           f"but got {input.ndim} dimensions for input, and {indices.ndim} dimensions for indices")
    a = list(input.shape)
    b = list(indices.shape)
    a[d] = b[d] = 1
    try:
        shape = list(np.broadcast_shapes(tuple(a), tuple(b)))
    except ValueError:
        raise RuntimeError(f"take_along_dim(): shapes {tuple(input.shape)} and {tuple(indices.shape)} do not "
                           f"broadcast outside dim {d}") from None
    xs, ids = list(shape), list(shape)
    xs[d], ids[d] = input.shape[d], indices.shape[d]
    i = indices._data
    if i.size and i.min() < 0:  # along a dim, PyTorch counts negative indices from the end (once)
        n = input.shape[d]
        if i.min() < -n:
            raise RuntimeError(f"take_along_dim(): index {int(i.min())} is out of bounds for dimension {d} with "
                               f"size {n} (input shape {tuple(input.shape)})")
        indices = Tensor._wrap(np.where(i < 0, i + n, i))
    return gather(input.expand(xs), d, indices.expand(ids))


@public(method=True, out=True)
def index_select(input, dim, index):
    """The slices ``index`` (1-D, int) of ``input`` along ``dim``."""
    if not isinstance(index, Tensor) or index._data.dtype.kind not in "iu" or index._data.ndim > 1:
        raise IndexError(f"index_select(): Expected a 1-D int64 index tensor, got "
                           f"{_dtype_name(index)}{'' if not isinstance(index, Tensor) else tuple(index.shape)}")
    if input._data.ndim == 0:
        return index_select(input.reshape(1), 0, index).reshape(())  # 0-d in, 0-d out (as PyTorch)
    d = norm_dim(dim, input._data.ndim, "index_select")
    a = index._data.reshape(-1)
    n = input._data.shape[d]
    if a.size:
        lo, hi = (builtins.min(v := a.tolist()), builtins.max(v)) if a.size <= 64 else (a.min(), a.max())
        if lo < 0 or hi >= n:  # (PyTorch refuses negative indices here, where numpy would wrap them)
            raise IndexError(f"index_select(): index {int(hi if hi >= n else lo)} is out of range "
                             f"for dimension {d} of size {n} (input shape {tuple(input.shape)})")
    if not (grad_mode.state.enabled and input._requires_grad):  # nothing to record: numpy's take
        x = input._data
        return Tensor._wrap(x.take(a, axis=d) if type(x) is np.ndarray else np.take(x, a, axis=d))  # (the method: np.take's wrapper skipped)
    return getitem(input, (slice(None),) * d + (a.astype(np.int64, copy=False),))


@public(method=True)
def masked_fill(input, mask, value):
    """``value`` where ``mask`` (bool, broadcastable with ``input``) is True, ``input`` elsewhere."""
    if not isinstance(mask, Tensor) or mask._data.dtype.kind != "b":
        raise RuntimeError(f"masked_fill_ only supports boolean masks, but got mask with dtype {_dtype_name(mask)}")
    try:  # out of place, PyTorch broadcasts input and mask together (numpy's check: 2 us, skipped when equal)
        if mask._data.shape != input._data.shape:
            np.broadcast_shapes(mask.shape, input.shape)
    except ValueError:
        raise RuntimeError(f"masked_fill: the mask of shape {tuple(mask.shape)} is not broadcastable with the "
                           f"input of shape {tuple(input.shape)}") from None
    if isinstance(value, Tensor):
        if value.ndim != 0:
            raise RuntimeError(f"masked_fill_ only supports a 0-dimensional value tensor, but got tensor with "
                               f"{value.ndim} dimension(s)")
        value = value.to(input.dtype)
    else:
        value = Tensor._wrap(np.asarray(value, dtype=input._data.dtype))
    return where(mask, value, input)


@public(method=True, out=True)
def nonzero(input, *, as_tuple=False):
    """Indices of the non-zero elements: an int64 ``(n, ndim)`` tensor, or a tuple of 1-D tensors."""
    a = input._data
    if a.ndim and type(a) is np.ndarray:  # csrc's two passes (select.h): counts per chunk, then the indices
        if a.dtype.kind not in "biuf" or a.itemsize > 8:
            a = a != 0
        idx = _C.nonzero(np.ascontiguousarray(a), as_tuple)
        return tuple(Tensor._wrap(row) for row in idx) if as_tuple else Tensor._wrap(idx)
    idx = np.argwhere(a).astype(np.int64)
    if as_tuple:
        if input.ndim == 0:  # PyTorch: a 0-d tensor as a 1-element vector, (tensor([0]),) or (tensor([]),)
            idx = np.argwhere(input._data.reshape(1)).astype(np.int64)
        return tuple(Tensor._wrap(np.ascontiguousarray(idx[:, k])) for k in range(builtins.max(input.ndim, 1)))
    return Tensor._wrap(idx)


@public(method=True)
def argwhere(input):
    """The indices of the non-zero elements, one row each (``nonzero``)."""
    return nonzero(input)


_UFUNC = {"sum": np.add, "mean": np.add, "prod": np.multiply, "amax": np.maximum, "amin": np.minimum}


def _identity(reduce, dtype):
    if reduce in ("sum", "mean"):
        return 0
    if reduce == "prod":
        return 1
    kind = _dtype.kind_of(dtype)
    if kind == "f":
        return -np.inf if reduce == "amax" else np.inf
    if kind == "b":
        return reduce == "amin"
    info = np.iinfo(dtype)  # (-max would wrap around for unsigned dtypes: min is the amax identity)
    return info.min if reduce == "amax" else info.max


def _hit(shape, dim, index):
    """Where the scatter writes (bool, ``shape``)."""
    return _scatter_into(np.zeros(shape, dtype=bool), dim, index, np.True_, False, "scatter")


def _counts(shape, dim, index, include_self):
    """The number of values reduced into each position (1 where nothing lands, as PyTorch divides)."""
    count = np.full(shape, 1 if include_self else 0, dtype=np.int64)
    np.add.at(count, _along(index, dim), 1)
    count[count == 0] = 1
    return count


def _scatter_reduce_fwd(x, src, dim, index, reduce, include_self):
    out = x.copy()
    where_ = _along(index, dim)
    if not include_self:
        out[where_] = _identity(reduce, x.dtype)
    _UFUNC[reduce].at(out, where_, src[_region(index.shape)])
    if reduce == "mean":
        count = _counts(x.shape, dim, index, include_self)
        out = out / count if _dtype.kind_of(out.dtype) == "f" else out // count
    return out.astype(x.dtype, copy=False)


def _not_hit(g, dim, index, include_self):
    """The self gradient is zero where ``include_self=False`` replaced self."""
    return g if include_self else where(Tensor._wrap(_hit(g.shape, dim, index)), const(0, g.dtype), g)


def _self_vjp(g, out, x, src, dim, index, reduce, include_self):
    if reduce == "sum":
        gs = g
    elif reduce == "mean":
        gs = g / const(_counts(x.shape, dim, index, include_self), g.dtype)
    elif reduce == "prod":  # the product of the others, exact where self is 0
        masked = where(x == 0, const(1, x.dtype), x)
        gs = g * scatter_reduce(masked, dim, Tensor._wrap(index), src, "prod", include_self=include_self) / masked
    else:
        gs = _extremum_grads(g, out, x, src, dim, index)[0]
    return _not_hit(gs, dim, index, include_self)


def _src_vjp(g, out, x, src, dim, index, reduce, include_self):
    if reduce == "sum":
        return _src_grad(g, src, dim, index)
    if reduce == "mean":
        return _src_grad(g / const(_counts(x.shape, dim, index, include_self), g.dtype), src, dim, index)
    if reduce == "prod":
        return _prod_src_grad(g, out, x, src, dim, index, include_self)
    return _pad_src(_extremum_grads(g, out, x, src, dim, index)[1], src, index)


def _pad_src(got, src, index):
    if tuple(src.shape) == index.shape:
        return got
    return pad(got, tuple(w for n, k in reversed(list(zip(src.shape, index.shape))) for w in (0, n - k)))


def _extremum_grads(g, out, x, src, dim, index):
    """amax/amin: the gradient is shared evenly among self and src entries equal to the result."""
    s = src[_region(index.shape)] if tuple(src.shape) != index.shape else src
    value = apply(_gather, out, dim=dim, index=index)
    self_is = (x == out).to(g.dtype)
    src_is = (s == value).to(g.dtype)
    n = apply(_scatter_add, self_is, src_is, dim=dim, index=index)
    share = g / n
    return self_is * share, src_is * apply(_gather, share, dim=dim, index=index)


def _prod_src_grad(g, out, x, src, dim, index, include_self):
    """PyTorch's: ``g * result / src`` gathered, with a lone zero in a group handled exactly."""
    s = src[_region(index.shape)] if tuple(src.shape) != index.shape else src
    zero = s == 0
    zeros_here = np.zeros(x.shape, np.int64)
    np.add.at(zeros_here, _along(index, dim), zero._data)
    single = Tensor._wrap(zero._data & (zeros_here[_along(index, dim)] == 1))
    masked_src = where(single, const(1, s.dtype), s)
    masked_result = scatter_reduce(x, dim, Tensor._wrap(index), masked_src, "prod", include_self=include_self)
    got = where(single, apply(_gather, g * masked_result, dim=dim, index=index),
                apply(_gather, g * out, dim=dim, index=index) / where(zero, const(1, s.dtype), s))
    return _pad_src(got, src, index)


_scatter_reduce = defop("scatter_reduce", _scatter_reduce_fwd, _self_vjp, _src_vjp, saves_output=True)


@public(method=True)
@_zero_d_as_1d
def scatter_reduce(input, dim, index, src, reduce, *, include_self=True):
    """Reduce ``src`` into ``input`` at ``index`` along ``dim`` with 'sum', 'prod', 'mean', 'amax'
    or 'amin'; ``include_self=False`` leaves ``input``'s value out where something is scattered.

    >>> tapegrad.tensor([1., 2., 3.]).scatter_reduce(0, tapegrad.tensor([0, 0, 2]), tapegrad.tensor([5., 7., 1.]), "amax")
    tensor([7., 2., 3.])
    """
    reduce = {"max": "amax", "min": "amin"}.get(reduce, reduce)  # PyTorch accepts these spellings too
    if reduce not in _UFUNC:
        raise RuntimeError(f"scatter_reduce(): reduce argument must be either sum, prod, mean, amax or amin, got "
                           f"{reduce!r}")
    if not isinstance(src, Tensor):
        raise TypeError(f"scatter_reduce(): src must be a Tensor, got {type(src).__name__}")
    src, d, idx = _scatter_args(input, dim, index, src, "scatter_reduce")
    return apply(_scatter_reduce, input, src, dim=d, index=idx, reduce=reduce, include_self=bool(include_self))


# ---------------------------------------------------------------- masked_scatter
def _masked_scatter_fwd(x, source, mask):
    out = x.copy()
    m = np.broadcast_to(mask, x.shape)
    out[m] = source.reshape(-1)[:int(m.sum())]
    return out


def _masked_scatter_source_vjp(g, source, mask):
    got = masked_select(g, Tensor._wrap(np.broadcast_to(mask, g.shape)))
    return pad(got, (0, int(np.prod(source.shape)) - got.numel())).reshape(tuple(source.shape))


_masked_scatter = defop("masked_scatter", _masked_scatter_fwd,
                        lambda g, out, x, source, mask: where(Tensor._wrap(mask), const(0, g.dtype), g),
                        lambda g, out, x, source, mask: _masked_scatter_source_vjp(g, source, mask), saves=())


@public(method=True)
def masked_scatter(input, mask, source):
    """``input`` with the positions where ``mask`` holds filled, in order, from ``source``'s elements.

    >>> tapegrad.zeros(4).masked_scatter(tapegrad.tensor([True, False, True, False]), tapegrad.tensor([1., 2.]))
    tensor([1., 0., 2., 0.])
    """
    if not isinstance(mask, Tensor) or mask._data.dtype != np.bool_:
        raise RuntimeError(f"masked_scatter_: expected BoolTensor for mask, got "
                           f"{mask.dtype if isinstance(mask, Tensor) else type(mask).__name__}")
    try:  # out of place, input and mask broadcast together (PyTorch's expand_outplace)
        shape = np.broadcast_shapes(tuple(input.shape), tuple(mask.shape))
    except ValueError:
        raise RuntimeError(f"masked_scatter: the mask of shape {tuple(mask.shape)} is not broadcastable with the "
                           f"input of shape {tuple(input.shape)}") from None
    if shape != tuple(input.shape):
        input = expand(input, shape)
    m = np.broadcast_to(mask._data, shape)
    if source._data.dtype != input._data.dtype:
        raise RuntimeError(f"masked_scatter_: expected self and source to have same dtypes but got "
                           f"{input.dtype} and {source.dtype}")
    if int(m.sum()) > source.numel():
        raise RuntimeError(f"masked_scatter: Number of elements of source < number of ones in mask "
                           f"({source.numel()} < {int(m.sum())})")
    return apply(_masked_scatter, input, source, mask=np.ascontiguousarray(m))


def _inplace(fn, name):
    return _inplace_of(fn, name)


@public(method=True)
def scatter_reduce_(self, dim, index, src, reduce, *, include_self=True):
    """``scatter_reduce``, in place."""
    return _inplace(lambda s, t: scatter_reduce(s, dim, index, t, reduce, include_self=include_self),
                    "scatter_reduce_")(self, src)


@public(method=True)
def masked_scatter_(self, mask, source):
    """``masked_scatter``, in place."""
    return _inplace(lambda s, t: masked_scatter(s, mask, t), "masked_scatter_")(self, source)


@public(method=True, out=True)
def masked_select(input, mask):
    """The entries of ``input`` where the bool ``mask`` holds (both broadcast), as a 1-D tensor."""
    if not isinstance(mask, Tensor) or mask._data.dtype != np.bool_:
        raise RuntimeError(f"masked_select: expected a bool mask, got "
                           f"{_dtype.name(mask.dtype) if isinstance(mask, Tensor) else type(mask).__name__}")
    try:
        shape = broadcast_shapes(input.shape, mask.shape)
    except RuntimeError:
        raise RuntimeError(f"masked_select: the mask of shape {tuple(mask.shape)} is not broadcastable with the "
                           f"input of shape {tuple(input.shape)}") from None
    a, m = input._data, mask._data
    if not (grad_mode.state.enabled and input._requires_grad) and type(a) is np.ndarray and a.itemsize in (1, 2, 4, 8):
        # nothing to record: csrc's two passes (select.h), counts per chunk of the mask, then the copy,
        # each reading input and mask where they lie (a broadcast or strided one is not copied first)
        return Tensor._wrap(_C.masked_select(a, m))
    return getitem(input.expand(shape), Tensor._wrap(np.broadcast_to(m, shape)))


@public(method=True, out=True)
def take(input, index):
    """``input`` as 1-D, indexed by ``index`` (the result has ``index``'s shape); negative indices wrap."""
    n = input._data.size
    a = index._data
    if _dtype.kind_of(a.dtype) not in "iu":  # a float index would be truncated
        raise RuntimeError(f"take(): Expected a long tensor for index, but got {_dtype.name(a.dtype)}")
    if a.size and (a.min() < -n or a.max() >= n):
        bad = int(a.max()) if a.max() >= n else int(a.min())
        raise IndexError(f"take: out of range: tried to access index {bad} on a tensor of {n} elements")
    return getitem(input.reshape(-1), Tensor._wrap(a.astype(np.int64)))


def _index_1d(index, input, d, opname):
    if not isinstance(index, Tensor) or index._data.dtype.kind not in "iu" or index.ndim > 1:
        raise RuntimeError(f"{opname}(): Index is supposed to be a vector of integers, got "
                           f"{getattr(index, 'shape', type(index).__name__)}")
    a = index._data.reshape(-1).astype(np.int64)
    n = input.shape[d] if input.ndim else 1
    if a.size and (a.min() < -n or a.max() >= n):
        raise IndexError(f"{opname}(): index out of range in self: index {int(a.max() if a.max() >= n else a.min())} "
                         f"for dimension {d} of size {n}")
    return a


@public(method=True, inplace=True)
@_zero_d_as_1d
def index_add(input, dim, index, source, *, alpha=1):
    """``input`` plus ``alpha * source`` added at ``index`` along ``dim`` (repeats accumulate)."""
    d = norm_dim(dim, input.ndim, "index_add")
    a = _index_1d(index, input, d, "index_add")
    if source.ndim != input.ndim or source.shape[d] != a.size:
        expect = tuple(input.shape[:d]) + (a.size,) + tuple(input.shape[d + 1:])
        if tuple(source.shape) != expect:
            raise RuntimeError(f"index_add(): source of shape {tuple(source.shape)} does not match the expected "
                               f"shape {expect} (input {tuple(input.shape)}, index of {a.size} entries)")
    src = mul(source, alpha) if alpha != 1 else source
    src = src.to(input.dtype)
    if src.ndim == input.ndim and src._data.dtype in _SUMMABLE:  # one pass: a scatter_add along d
        return apply(_index_add, input, src, dim=d, index=_index_lines(np.where(a < 0, a + input.shape[d], a), d,
                                                                        tuple(src.shape)))
    placed = apply(_index_put_add, src, shape=tuple(input.shape), index=(slice(None),) * d + (a,), basic=False)
    return add(input, placed)


def _index_lines(index, dim, shape):
    """The 1-D ``index`` as a gather/scatter index of ``shape``: the same entry all along each line
    of ``dim`` (a broadcast view, no copy)."""
    return np.broadcast_to(index.reshape((1,) * dim + (-1,) + (1,) * (len(shape) - dim - 1)), shape)


# index_add as a scatter_add whose index is constant along every dim but ``dim``: its source's
# gradient is the gather of the upstream one.
_index_add = defop("index_add", lambda x, src, dim, index: _scatter_into(_fresh_copy(x), dim, index, src, True,
                                                                        "index_add"),
                   lambda g, out, x, src, dim, index: g,
                   lambda g, out, x, src, dim, index: apply(_gather, g, dim=dim, index=index), saves=())


@public(method=True, inplace=True)
def index_fill(input, dim, index, value):
    """``input`` with the slices ``index`` along ``dim`` set to ``value`` (a number or 0-d tensor)."""
    d = norm_dim(dim, input.ndim, "index_fill")
    a = _index_1d(index, input, d, "index_fill")
    mask = np.zeros(input.shape[d] if input.ndim else 1, bool)
    mask[a] = True
    mask = mask.reshape((-1,) + (1,) * (input.ndim - d - 1)) if input.ndim else mask.reshape(())
    if isinstance(value, Tensor):
        if value.ndim:
            raise RuntimeError(f"index_fill_(): Expected 0-dim value tensor, got shape {tuple(value.shape)}")
        value = value.to(input.dtype)
    else:
        value = Tensor._wrap(np.asarray(value, dtype=input.dtype))
    return where(Tensor._wrap(mask), value, input)


@public(method=True)
def masked_fill_(self, mask, value):
    """``masked_fill``, in place: ``value`` where ``mask`` holds."""
    try:
        ok = mask.ndim <= self.ndim and np.broadcast_shapes(mask.shape, self.shape) == tuple(self.shape)
    except ValueError:  # numpy's word for shapes that don't broadcast: PyTorch's RuntimeError below
        ok = False
    if not ok:
        raise RuntimeError(f"masked_fill_: the mask of shape {tuple(mask.shape)} is not broadcastable to the "
                           f"tensor of shape {tuple(self.shape)}")
    return inplace(self, lambda s, *_: masked_fill(s, mask, value), "masked_fill_", *_tensors(value))


@public(method=True, inplace=True, out=True)
@_zero_d_as_1d
def index_copy(input, dim, index, source):
    """``input`` with the slices at ``index`` along ``dim`` replaced by ``source``'s."""
    return index_add(index_fill(input, dim, index, 0), dim, index, source)


@public(method=True)
def fill_diagonal_(self, fill_value, wrap=False):
    """Write ``fill_value`` on the main diagonal (all dims equal, or a tall matrix with ``wrap``)."""
    if self.ndim < 2 or (self.ndim > 2 and len(set(self.shape)) != 1):
        raise RuntimeError(f"fill_diagonal_: dimensions must all be equal for tensors of more than 2 dims, got "
                           f"{tuple(self.shape)}")
    if grad_mode.state.enabled and self._requires_grad:  # the diagonal's gradient is zero, as PyTorch's
        mask = np.zeros(self.shape, bool)
        np.fill_diagonal(mask, True, wrap=wrap and self.ndim == 2)
        return inplace(self, lambda s: where(Tensor._wrap(mask), const(fill_value, s.dtype), s), "fill_diagonal_")
    a = self._data.copy()
    if self.ndim == 2:
        np.fill_diagonal(a, fill_value, wrap=wrap)
    else:
        np.fill_diagonal(a, fill_value)
    _write(self, a, "fill_diagonal_")
    return self


# ---------------------------------------------------------------- scatters into a copy
# Each writes ``src`` into a copy of ``input`` with ``setitem``, which records the write, so the
# gradient reaches ``input`` (zero where written) and ``src`` (the written part).
@public(method=True)
def select_scatter(input, src, dim, index):
    """A copy of ``input`` with ``src`` written at ``index`` along ``dim`` (``input.select(dim, index)``'s place)."""
    d = norm_dim(dim, input.ndim, "select_scatter")
    y = clone(movedim(input, d, 0))
    setitem(y, index, src)
    return movedim(y, 0, d)


@public(method=True)
def slice_scatter(input, src, dim=0, start=None, end=None, step=1):
    """A copy of ``input`` with ``src`` written at ``start:end:step`` along ``dim``."""
    d = norm_dim(dim, input.ndim, "slice_scatter")
    y = clone(movedim(input, d, 0))
    setitem(y, slice(start, end, step), movedim(src, d, 0))
    return movedim(y, 0, d)


@public(method=True)
def diagonal_scatter(input, src, offset=0, dim1=0, dim2=1):
    """A copy of ``input`` with ``src`` written on the diagonal that ``input.diagonal(offset,
    dim1, dim2)`` reads (the diagonal as ``src``'s last dim, as ``diagonal`` returns it)."""
    d1, d2 = norm_dim(dim1, input.ndim, "diagonal_scatter"), norm_dim(dim2, input.ndim, "diagonal_scatter")
    y = clone(movedim(input, (d1, d2), (-2, -1)))
    n1, n2 = y.shape[-2], y.shape[-1]
    k = builtins.max(0, builtins.min(n1 + builtins.min(offset, 0), n2 - builtins.max(offset, 0)))
    i = np.arange(k) + builtins.max(-offset, 0)
    setitem(y, (Ellipsis, Tensor._wrap(i), Tensor._wrap(i + offset)), src)
    return movedim(y, (-2, -1), (d1, d2))


def _index_tensors(indices, opname):
    """``indices`` (a tuple of integer or bool tensors) as integer arrays (bool masks expanded)."""
    out = []
    for t in indices:
        a = t._data if isinstance(t, Tensor) else np.asarray(t)
        if a.dtype == bool:
            out.extend(np.nonzero(a))
        elif a.dtype.kind in "iu":
            out.append(a.astype(np.int64))
        else:
            raise IndexError(f"{opname}: tensors used as indices must be long, int, byte or bool tensors, got {a.dtype}")
    return out


@public(method=True, inplace=True)
def index_put(input, indices, values, accumulate=False):
    """A copy of ``input`` with ``input[indices] = values`` (``indices`` a tuple of tensors);
    ``accumulate=True`` adds instead, repeated positions adding up, as in PyTorch."""
    idx = _index_tensors(indices, "index_put")
    if len(idx) > input.ndim:
        raise IndexError(f"index_put: too many indices ({len(idx)}) for a tensor of shape {tuple(input.shape)}")
    v = values if isinstance(values, Tensor) else const(values, input.dtype)
    if not accumulate:
        out = clone(input)
        setitem(out, tuple(Tensor._wrap(a) for a in idx), v)
        return out
    lead, rest = tuple(input.shape[:len(idx)]), tuple(input.shape[len(idx):])
    try:
        arrays = np.broadcast_arrays(*idx)
        lin = np.ravel_multi_index(tuple(np.where(a < 0, a + n, a) for a, n in zip(arrays, lead)), lead)
    except ValueError as e:
        raise IndexError(f"index_put: {e} (indices for shape {lead})") from None
    n = int(np.prod(lead, dtype=np.int64))
    flat_v = reshape(expand(v, lin.shape + rest), (lin.size,) + rest)
    return reshape(index_add(reshape(input, (n,) + rest), 0, Tensor._wrap(lin.reshape(-1)), flat_v), input.shape)


@public(method=True, inplace=True)
def put(input, index, source, accumulate=False):
    """A copy of ``input`` with ``source`` written at the flat (C-order) positions ``index``;
    ``accumulate=True`` adds instead. Negative positions count from the end."""
    n = input.numel()
    i = index._data.reshape(-1).astype(np.int64)
    if ((i >= n) | (i < -n)).any():
        raise IndexError(f"put: index out of range for a tensor of {n} elements (indices {i.min()}..{i.max()})")
    if source.numel() != i.size:
        raise RuntimeError(f"put: index ({i.size} elements) and source ({source.numel()} elements) must have the "
                           f"same number of elements")
    flat = reshape(input, -1)
    src = reshape(source, -1)
    idx = Tensor._wrap(i % builtins.max(n, 1))
    if accumulate:
        return reshape(index_add(flat, 0, idx, src), input.shape)
    out = clone(flat)
    setitem(out, idx, src)
    return reshape(out, input.shape)


@public(method=True, inplace=True)
@_zero_d_as_1d
def index_reduce(input, dim, index, source, reduce, *, include_self=True):
    """Reduce the slices of ``source`` into ``input`` at ``index`` along ``dim`` with 'prod',
    'mean', 'amax' or 'amin' (``scatter_reduce`` with the index spread over each slice)."""
    if reduce not in ("prod", "mean", "amax", "amin"):
        raise RuntimeError(f"index_reduce: reduce argument must be one of prod, mean, amax, amin, got {reduce!r}")
    d = norm_dim(dim, input.ndim, "index_reduce")
    i = index._data
    if i.ndim > 1 or i.size != source.shape[d]:
        raise IndexError(f"index_reduce: index must be 1-D with source.shape[{d}] = {source.shape[d]} elements, "
                         f"got shape {tuple(index.shape)}")
    full = np.broadcast_to(i.reshape([-1 if k == d else 1 for k in range(source.ndim)]), source.shape)
    return scatter_reduce(input, d, Tensor._wrap(np.ascontiguousarray(full, dtype=np.int64)), source, reduce,
                          include_self=include_self)


@public(method=True)
def nonzero_static(input, *, size, fill_value=-1):
    """``nonzero`` with exactly ``size`` rows: truncated, or padded with ``fill_value``."""
    if size < 0:
        raise RuntimeError(f"nonzero_static: 'size' must be a non-negative integer, got {size}")
    idx = np.argwhere(input._data).astype(np.int64)[:size]
    out = np.full((size, input.ndim), fill_value, dtype=np.int64)
    out[:len(idx)] = idx
    return Tensor._wrap(out)


@public
def unravel_index(indices, shape):
    """The coordinates in an array of ``shape`` of the flat (C-order) ``indices``: a tuple of
    int64 tensors, one per dimension. Negative indices count from the end, as in PyTorch; one
    outside ``[-numel, numel)`` raises, where PyTorch silently wraps it around."""
    a = indices._data if isinstance(indices, Tensor) else np.asarray(indices)
    if a.dtype.kind not in "iu":
        raise TypeError(f"unravel_index: expected 'indices' to be an integer tensor, got {a.dtype}")
    shape = (shape,) if isinstance(shape, (int, np.integer)) else tuple(shape)
    n = int(np.prod(shape, dtype=np.int64))
    if a.size and (a.min() < -n or a.max() >= n):
        raise RuntimeError(f"unravel_index: 'indices' must be in range [{-n}, {n - 1}] for shape {shape}")
    return tuple(Tensor._wrap(np.asarray(c, dtype=np.int64)) for c in np.unravel_index(a % builtins.max(n, 1), shape))


@public
def combinations(input, r=2, with_replacement=False):
    """The length-``r`` combinations of a 1-D tensor's elements, as rows (``itertools.combinations``,
    or ``combinations_with_replacement``); differentiable."""
    if input.ndim != 1:
        raise RuntimeError(f"combinations: expect a 1D vector, but got shape {tuple(input.shape)}")
    if r < 0:
        raise RuntimeError(f"combinations: expect a non-negative number, but got {r}")
    if r == 0:  # PyTorch: an empty 1-D tensor
        return Tensor._wrap(np.empty((0,), dtype=input.dtype))
    make = itertools.combinations_with_replacement if with_replacement else itertools.combinations
    rows = np.array(list(make(range(input.shape[0]), r)), dtype=np.int64).reshape(-1, r)
    return getitem(input, Tensor._wrap(rows))


# ---------------------------------------------------------------- as_strided: strides over the tensor's own elements
def _strided_positions(input, size, stride, storage_offset, opname):
    """The flat (C-order) positions of ``input``'s elements that a view of ``size`` and
    ``stride`` starting at ``storage_offset`` reads. PyTorch's strides address the storage under a
    tensor (its offset, by default the input's own, as PyTorch's); tapegrad's tensors are numpy
    arrays, so each storage position read is mapped back to the input element that sits there.
    A position outside the input's own elements (memory only its base holds) is refused rather
    than read: tapegrad can index and differentiate only the input's elements."""
    data = input._data
    root = data
    while isinstance(root.base, np.ndarray):
        root = root.base
    item = data.itemsize
    own_offset = (data.__array_interface__["data"][0] - root.__array_interface__["data"][0]) // item
    size, stride = tuple(int(n) for n in size), tuple(int(s) for s in stride)
    if len(size) != len(stride):
        raise RuntimeError(f"{opname}: mismatch in length of strides and shape ({len(stride)} and {len(size)})")
    if builtins.any(n < 0 for n in size) or builtins.any(s < 0 for s in stride):
        raise RuntimeError(f"{opname}: sizes and strides must be non-negative, got size {size}, stride {stride}")
    offset = own_offset if storage_offset is None else int(storage_offset)
    pos = np.full(size, offset, dtype=np.int64)
    for d, (n, s) in enumerate(zip(size, stride)):
        shape = [1] * len(size)
        shape[d] = n
        pos = pos + (np.arange(n, dtype=np.int64) * s).reshape(shape)
    if own_offset == 0 and data.flags.c_contiguous and data.size == root.size:  # the input is its storage
        if pos.size and (offset < 0 or pos.max() >= input.numel()):
            raise RuntimeError(f"{opname}: size {list(size)}, stride {list(stride)}, storage offset {offset} are out "
                               f"of bounds for a tensor of {input.numel()} elements")
        return Tensor._wrap(pos)
    if not root.flags.c_contiguous or data.strides and builtins.min(data.strides) < 0 or \
            builtins.any(st % item for st in data.strides):
        raise RuntimeError(f"{opname}: the view's storage is not laid out in C order; call .clone() on it first")
    # storage position of each of the input's elements, in C order; then each position read looked up
    where = np.full(data.shape, own_offset, dtype=np.int64)
    for d, (n, st) in enumerate(zip(data.shape, data.strides)):
        shape = [1] * data.ndim
        shape[d] = n
        where = where + (np.arange(n, dtype=np.int64) * (st // item)).reshape(shape)
    where = where.ravel()
    order = np.argsort(where, kind="stable")
    ranked = where[order]
    at = np.searchsorted(ranked, pos.ravel()).clip(0, builtins.max(ranked.size - 1, 0))
    if pos.size and (ranked.size == 0 or not np.array_equal(ranked[at], pos.ravel())):
        raise RuntimeError(f"{opname}: size {list(size)}, stride {list(stride)}, storage offset {offset} read memory "
                           f"outside this view of shape {tuple(data.shape)} (storage offset {own_offset}, stride "
                           f"{tuple(st // item for st in data.strides)}): tapegrad indexes only a tensor's own "
                           f"elements; apply as_strided to the tensor the view was taken from")
    return Tensor._wrap(order[at].reshape(size) if pos.size else np.zeros(size, np.int64))


@public(method=True)
def as_strided(input, size, stride, storage_offset=None):
    """The elements at ``storage_offset + sum(i_k * stride_k)`` in the shape ``size`` (a copy
    here, a view in PyTorch; overlapping positions sum their gradients, as PyTorch's)."""
    return getitem(reshape(input, -1), _strided_positions(input, size, stride, storage_offset, "as_strided"))


@public(method=True)
def as_strided_(self, size, stride, storage_offset=None):
    """``as_strided``, in place: ``self`` becomes that selection of its elements."""
    pos = _strided_positions(self, size, stride, storage_offset, "as_strided_")
    return _reshape_inplace(self, lambda s: getitem(reshape(s, -1), pos), "as_strided_")


@public(method=True)
def as_strided_scatter(input, src, size, stride, storage_offset=None):
    """A copy of ``input`` with ``src`` written at the positions ``as_strided`` would read."""
    pos = _strided_positions(input, size, stride, storage_offset, "as_strided_scatter")
    out = clone(reshape(input, -1))
    setitem(out, pos, src)
    return reshape(out, input.shape)


# ---------------------------------------------------------------- the *_copy forms of the view ops
# PyTorch's functionalised names: each view op's result, copied (its own memory, the same gradient).


def _copied(out):
    return tuple(clone(t) for t in out) if isinstance(out, (tuple, list)) else clone(out)


@public(out=True)
def alias_copy(input):
    """A copy of ``input`` (``torch.alias_copy``)."""
    return clone(input)


@public(out=True)
def detach_copy(input):
    """A copy of ``input`` outside the graph."""
    return clone(input.detach())


@public(out=True)
def as_strided_copy(input, size, stride, storage_offset=None):
    """``as_strided``'s result, copied."""
    return clone(as_strided(input, size, stride, storage_offset))


@public(out=True)
def diagonal_copy(input, offset=0, dim1=0, dim2=1):
    """``diagonal``'s result, copied."""
    return clone(_shape.diagonal(input, offset, dim1, dim2))


@public(out=True)
def expand_copy(input, size, *, implicit=False):
    """``input.expand(size)``, copied (each broadcast element its own)."""
    return clone(expand(input, *size))


@public(out=True)
def permute_copy(input, dims):
    """``permute``'s result, copied."""
    return clone(_shape.permute(input, *dims))


@public(out=True)
def select_copy(input, dim, index):
    """``select``'s result, copied."""
    return clone(_shape.select(input, dim, index))


@public(out=True)
def slice_copy(input, dim=0, start=None, end=None, step=1):
    """``input[..., start:end:step, ...]`` along ``dim``, copied."""
    d = norm_dim(dim, input.ndim, "slice_copy")
    if step <= 0:
        raise RuntimeError(f"slice_copy: slice step must be positive, got {step}")
    return clone(getitem(input, (slice(None),) * d + (slice(start, end, step),)))


@public(out=True)
def split_copy(input, split_size, dim=0):
    """``split``'s pieces, each copied."""
    return _copied(_shape.split(input, split_size, dim))


@public(out=True)
def split_with_sizes_copy(input, split_sizes, dim=0):
    """``split_with_sizes``'s pieces, each copied."""
    return _copied(_shape.split_with_sizes(input, split_sizes, dim))


@public(out=True)
def squeeze_copy(input, dim=None):
    """``squeeze``'s result, copied."""
    return clone(_shape.squeeze(input, dim))


@public(out=True)
def t_copy(input):
    """``t``'s result, copied."""
    return clone(_shape.t(input))


@public(out=True)
def transpose_copy(input, dim0, dim1):
    """``transpose``'s result, copied."""
    return clone(_shape.transpose(input, dim0, dim1))


@public(out=True)
def unbind_copy(input, dim=0):
    """``unbind``'s slices, each copied."""
    return _copied(_shape.unbind(input, dim))


@public(out=True)
def unfold_copy(input, dimension, size, step):
    """``input.unfold(dimension, size, step)``, copied."""
    return clone(_shape.unfold(input, dimension, size, step))


@public(out=True)
def unsqueeze_copy(input, dim):
    """``unsqueeze``'s result, copied."""
    return clone(_shape.unsqueeze(input, dim))


@public(out=True)
def view_copy(input, size):
    """``input.view(size)`` (a shape, or a dtype), copied."""
    if isinstance(size, (builtins.int, np.integer)):
        size = (size,)
    return clone(_shape.view(input, dtype=size) if not isinstance(size, (tuple, list)) else _shape.view(input, *size))


@public(out=True)
def view_as_real_copy(input):
    """``view_as_real``'s result, copied."""
    return clone(_view_as_real(input))


@public(out=True)
def view_as_complex_copy(input):
    """``view_as_complex``'s result, copied."""
    return clone(_view_as_complex(input))
