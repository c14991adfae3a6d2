"""Indexing: ``x[index]`` with ints, slices (with steps), None, Ellipsis, integer arrays or
tensors and boolean masks, and ``x[index] = value``. Gradients scatter-add, so repeated
indices accumulate."""
from __future__ import annotations

import builtins

import numpy as np

from .._tape import grad_mode
Tensor = None  # the Tensor class, bound by tensor.py (ops.bind_tensor): the ops sit below it
from .._tape.registry import apply, defop
from ._util import norm_dim
from .elementwise import where


def _norm_index(index):
    """A numpy index from a user's: tensors become arrays; lists of ints become int arrays."""
    if not isinstance(index, tuple):
        index = (index,)
    out = []
    for i in index:
        if isinstance(i, Tensor):
            i = i._data
            if i.dtype.kind == "f":
                raise IndexError("tensors used as indices must be long, int, byte or bool tensors")
        elif isinstance(i, list):
            i = np.asarray(i)
            if i.size == 0 and i.dtype.kind == "f":  # ``x[[]]``: an empty int index, as PyTorch reads it
                i = i.astype(np.int64)
            if i.dtype.kind == "f":
                raise IndexError("lists used as indices must hold ints or bools")
        out.append(i)
    return tuple(out)


def _is_basic(index) -> bool:
    return all(i is None or i is Ellipsis or isinstance(i, (int, np.integer, slice)) and not isinstance(i, bool)
               for i in index)


def _getitem_fwd(x, index, basic):
    return x[index]


def _index_put_add_fwd(g, shape, index, basic):
    """Zeros of ``shape`` with ``g`` added at ``index`` (np.add.at accumulates repeats)."""
    z = np.zeros(shape, dtype=g.dtype)
    if basic:
        z[index] = g
    else:
        np.add.at(z, index, g)
    return z


_getitem = defop("getitem", _getitem_fwd,
                 lambda g, out, x, index, basic: index_put_add(g, x.shape, index, basic), saves=(), view=True)
_index_put_add = defop("index_put_add", _index_put_add_fwd,
                       lambda g, out, v, shape, index, basic: apply(_getitem, g, index=index, basic=basic),
                       saves=())


def index_put_add(g, shape, index, basic):
    return apply(_index_put_add, g, shape=tuple(shape), index=index, basic=basic)


def getitem(x: Tensor, index):
    idx = _norm_index(index)
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
        out._version, out._base = [0], None
    return out


def _describe(index):
    if isinstance(index, Tensor):
        return f"tensor of shape {tuple(index.shape)}"
    return repr(index)


def _setitem_fwd(x, v, index):
    out = x.copy()
    out[index] = v
    return out


def _zero_at(g, index):
    return apply(_setitem, g, Tensor._wrap(np.zeros((), g.dtype)), index=index)


_setitem = defop("setitem", _setitem_fwd,
                 lambda g, out, x, v, index: _zero_at(g, index),
                 lambda g, out, x, v, index: g[index], saves=())


def setitem(x: Tensor, index, value):
    """``x[index] = value``: in place, recorded when ``x`` or ``value`` is in the graph."""
    from .inplace import inplace
    idx = _norm_index(index)
    v = value if isinstance(value, Tensor) else Tensor._wrap(np.asarray(value, dtype=x.dtype))
    try:
        np.broadcast_to(v._data, x._data[idx].shape)
    except IndexError as e:
        raise IndexError(f"index {_describe(index)} is invalid for a tensor of shape {tuple(x.shape)}: {e}") from None
    except ValueError:
        raise RuntimeError(f"setitem: shape mismatch: value of shape {tuple(v.shape)} cannot be broadcast to "
                           f"indexing result of shape {x._data[idx].shape}") from None
    if not (grad_mode.state.enabled and (x._requires_grad or v._requires_grad)):
        if x._data.flags.writeable is False:
            raise RuntimeError("setitem: the tensor is a read-only (expanded) view; clone() it first")
        x._data[idx] = v._data
        x._version[0] += 1
        return
    inplace(x, lambda s, val: apply(_setitem, s, val.to(s.dtype), index=idx), "setitem", v)




# ---------------------------------------------------------------- gather / scatter along a dim
def _along(index, dim):
    """The full numpy index that picks ``x[..., index[i, j, ...], ...]`` with ``index`` at ``dim``."""
    idx = list(np.indices(index.shape, sparse=True))
    idx[dim] = index
    return tuple(idx)


def _region(shape):
    return tuple(slice(0, s) for s in shape)


def _check_index(input, dim, index, opname, src=None):
    """PyTorch's checks for gather/scatter: int64-like index, same ndim, sizes, bounds."""
    if not isinstance(index, Tensor) or index._data.dtype.kind not in "iu":
        got = _dtype_name(index)
        raise RuntimeError(f"{opname}(): Expected dtype int64 for index, got {got}")
    nd = input.ndim
    d = norm_dim(dim, nd, opname)
    if index.ndim != builtins.max(nd, 0) and not (nd == 0 and index.ndim <= 1):
        raise RuntimeError(f"{opname}(): Index tensor must have the same number of dimensions as input tensor "
                           f"(index shape {tuple(index.shape)}, input shape {tuple(input.shape)})")
    for k in range(index.ndim):
        if nd and k != d and index.shape[k] > input.shape[k]:
            raise RuntimeError(f"{opname}(): Size does not match at dimension {k} expected index "
                               f"{tuple(index.shape)} to be smaller than self {tuple(input.shape)} apart from "
                               f"dimension {d}")
        if src is not None and src.ndim and index.shape[k] > src.shape[k]:
            raise RuntimeError(f"{opname}(): Expected index {tuple(index.shape)} to be smaller than src "
                               f"{tuple(src.shape)} in every dimension")
    n = input.shape[d] if nd else 1
    a = index._data
    if a.size and (a.min() < 0 or a.max() >= n):
        bad = int(a.min()) if a.min() < 0 else int(a.max())
        raise RuntimeError(f"{opname}(): index {bad} is out of bounds for dimension {d} with size {n} "
                           f"(input shape {tuple(input.shape)})")
    return d, a.astype(np.int64, copy=False)


def _dtype_name(t):
    from .. import _dtype
    return _dtype.name(t._data.dtype) if isinstance(t, Tensor) else type(t).__name__


def _gather_fwd(x, dim, index):
    return x[_along(index, dim)]


def _gather_vjp(g, out, x, dim, index):
    return apply(_scatter_add, Tensor._wrap(np.zeros(x.shape, g.dtype)), g, dim=dim, index=index)


_gather = defop("gather", _gather_fwd, _gather_vjp, saves=())


def gather(input, dim, index, *, sparse_grad=False):
    """``out[i][j] = input[index[i][j]][j]`` (for dim 0): pick along ``dim`` by ``index``.

    >>> tapegrad.gather(tapegrad.tensor([[1, 2], [3, 4]]), 1, tapegrad.tensor([[0, 0], [1, 0]]))
    tensor([[1, 1],
            [4, 3]])
    """
    if input.ndim == 0:
        return gather(input.reshape(1), 0, index.reshape(-1)).reshape(index.shape)
    d, idx = _check_index(input, dim, index, "gather")
    return apply(_gather, input, dim=d, index=idx)


def _scatter_add_fwd(x, src, dim, index):
    out = x.copy()
    np.add.at(out, _along(index, dim), src[_region(index.shape)])
    return out


def _src_grad(g, src, dim, index):
    """d/d src of a scatter: the gathered gradient, zero where ``src`` was not read."""
    from .shape import pad
    got = apply(_gather, g, dim=dim, index=index)
    if tuple(src.shape) == index.shape:
        return got
    return pad(got, tuple(w for n, k in reversed(list(zip(src.shape, index.shape))) for w in (0, n - k)))


_scatter_add = defop("scatter_add", _scatter_add_fwd,
                     lambda g, out, x, src, dim, index: g,
                     lambda g, out, x, src, dim, index: _src_grad(g, src, dim, index), saves=())


def _scatter_args(input, dim, index, src, opname):
    if not isinstance(src, Tensor):
        src = Tensor._wrap(np.asarray(src, dtype=input.dtype))
    elif src._data.dtype != input._data.dtype:
        raise RuntimeError(f"{opname}(): Expected self.dtype to be equal to src.dtype "
                           f"({_dtype_name(input)} vs {_dtype_name(src)})")
    if input.ndim == 0:
        raise RuntimeError(f"{opname}(): 0-d input is not supported; reshape it to 1-d")
    d, idx = _check_index(input, dim, index, opname, src)
    return src, d, idx


def scatter_add(input, dim, index, src):
    """``out = input.clone(); out[index[i][j]][j] += src[i][j]`` (for dim 0); repeats accumulate."""
    src, d, idx = _scatter_args(input, dim, index, src, "scatter_add")
    return apply(_scatter_add, input, src, dim=d, index=idx)


def _scatter_fwd(x, src, dim, index):
    out = x.copy()
    out[_along(index, dim)] = src[_region(index.shape)] if src.ndim else src
    return out


def _scatter_self_grad(g, dim, index):
    hit = np.zeros(g.shape, dtype=bool)
    hit[_along(index, dim)] = True
    return where(Tensor._wrap(hit), Tensor._wrap(np.zeros((), g.dtype)), g)


_scatter = defop("scatter", _scatter_fwd,
                 lambda g, out, x, src, dim, index: _scatter_self_grad(g, dim, index),
                 lambda g, out, x, src, dim, index: _src_grad(g, src, dim, index), saves=())


def scatter(input, dim, index, src=None, *, value=None, reduce=None):
    """``out = input.clone(); out[index[i][j]][j] = src[i][j]`` (for dim 0); ``src`` may be a scalar.

    With repeated indices the element written is unspecified (as in PyTorch).
    """
    if src is None:
        src = value
    if src is None:
        raise TypeError("scatter(): expected src (a tensor) or value (a number)")
    if reduce == "add":
        if not isinstance(src, Tensor):
            src = Tensor._wrap(np.broadcast_to(np.asarray(src, input.dtype), index.shape))
        return scatter_add(input, dim, index, src)
    if reduce is not None:
        raise NotImplementedError(f"scatter(): reduce={reduce!r} is not supported (use None or 'add')")
    src, d, idx = _scatter_args(input, dim, index, src, "scatter")
    return apply(_scatter, input, src, dim=d, index=idx)


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
    return gather(input.expand(xs), d, indices.expand(ids))


def index_select(input, dim, index):
    """The slices ``index`` (1-D, int) of ``input`` along ``dim``."""
    if not isinstance(index, Tensor) or index._data.dtype.kind not in "iu" or index.ndim > 1:
        raise RuntimeError(f"index_select(): Expected a 1-D int64 index tensor, got "
                           f"{_dtype_name(index)}{'' if not isinstance(index, Tensor) else tuple(index.shape)}")
    if input.ndim == 0:
        return index_select(input.reshape(1), 0, index).reshape(index.shape)
    d = norm_dim(dim, input.ndim, "index_select")
    a = index._data.reshape(-1)
    n = input.shape[d]
    if a.size and (a.min() < 0 or a.max() >= n):
        raise IndexError(f"index_select(): index {int(a.max() if a.max() >= n else a.min())} is out of range "
                         f"for dimension {d} of size {n} (input shape {tuple(input.shape)})")
    out = getitem(input, (slice(None),) * d + (a.astype(np.int64, copy=False),))
    return out


def masked_fill(input, mask, value):
    """``value`` where ``mask`` (bool, broadcastable with ``input``) is True, ``input`` elsewhere."""
    if not isinstance(mask, Tensor) or mask._data.dtype != np.bool_:
        raise RuntimeError(f"masked_fill_ only supports boolean masks, but got mask with dtype {_dtype_name(mask)}")
    try:  # out of place, PyTorch broadcasts input and mask together
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
        value = Tensor._wrap(np.asarray(value, dtype=input.dtype))
    return where(mask, value, input)


def nonzero(input, *, as_tuple=False):
    """Indices of the non-zero elements: an int64 ``(n, ndim)`` tensor, or a tuple of 1-D tensors."""
    idx = np.argwhere(input._data).astype(np.int64)
    if as_tuple:
        return tuple(Tensor._wrap(np.ascontiguousarray(idx[:, k])) for k in range(builtins.max(input.ndim, 1)))
    return Tensor._wrap(idx)


def argwhere(input):
    return nonzero(input)


__all__ = ["getitem", "setitem", "index_put_add", "gather", "scatter_add", "scatter", "take_along_dim",
           "index_select", "masked_fill", "nonzero", "argwhere"]
