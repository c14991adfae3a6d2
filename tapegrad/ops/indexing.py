"""Indexing: ``x[index]`` with ints, slices (with steps), None, Ellipsis, integer arrays or
tensors and boolean masks, and ``x[index] = value``. Gradients scatter-add, so repeated
indices accumulate."""
from __future__ import annotations

import numpy as np

from ..autograd import grad_mode
from ..tensor import Tensor
from .registry import apply, defop
from ._util import as_tensor


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


__all__ = ["getitem", "setitem", "index_put_add"]
