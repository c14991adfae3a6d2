"""Shape ops: views (sharing memory and the version counter with their input) and copies."""
from __future__ import annotations

import numpy as np

from .. import _dtype
from ..tensor import Tensor
from .registry import apply, defop
from ._util import norm_dim


def _shape_arg(shape):
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    return tuple(int(s) for s in shape)


def _infer_shape(shape, numel, opname, src_shape):
    if shape.count(-1) > 1:
        raise RuntimeError(f"{opname}: only one dimension can be inferred, got shape {shape}")
    known = 1
    for s in shape:
        if s != -1:
            if s < 0:
                raise RuntimeError(f"{opname}: invalid shape dimension {s} in {shape}")
            known *= s
    if -1 in shape:
        if known == 0 or numel % known:
            raise RuntimeError(f"{opname}: shape {list(shape)} is invalid for input of size {numel}")
        shape = tuple(numel // known if s == -1 else s for s in shape)
    elif known != numel:
        raise RuntimeError(f"{opname}: shape {list(shape)} is invalid for input of size {numel} "
                           f"(input shape {tuple(src_shape)})")
    return shape


_reshape = defop("reshape", lambda x, shape: x.reshape(shape), lambda g, out, x, shape: g.reshape(x.shape),
                 saves=(), view=True)


def reshape(input, *shape):
    """Same data, new shape (a view when the layout allows, a copy otherwise); one dim may be -1."""
    shape = _infer_shape(_shape_arg(shape), input._data.size, "reshape", input.shape)
    if shape == input._data.shape:
        return input
    return apply(_reshape, input, shape=shape)


def view(input, *shape):
    """Like ``reshape``, but refuses (as PyTorch does) when the result cannot share memory."""
    shape = _infer_shape(_shape_arg(shape), input._data.size, "view", input.shape)
    try:
        np.ndarray.view(input._data).shape = shape  # raises when a copy would be needed
    except AttributeError:
        raise RuntimeError(f"view: size {list(shape)} is not compatible with input tensor's size and stride "
                           f"(shape {tuple(input.shape)}): at least one dimension spans across two "
                           f"contiguous subspaces. Use .reshape(...) instead.") from None
    return reshape(input, shape)


def _expand_fwd(x, shape):
    return np.broadcast_to(x, shape)


_expand = defop("expand", _expand_fwd, lambda g, out, x, shape: g.sum_to_size(x.shape), saves=(), view=True)


def expand(input, *sizes):
    """Broadcast to ``sizes`` without copying; -1 keeps a dim."""
    sizes = _shape_arg(sizes)
    nd = input.ndim
    if len(sizes) < nd:
        raise RuntimeError(f"expand: the number of sizes provided ({len(sizes)}) must be greater or equal "
                           f"to the number of dimensions in the tensor ({nd})")
    lead = len(sizes) - nd
    shape = tuple(input.shape[i - lead] if s == -1 and i >= lead else s for i, s in enumerate(sizes))
    for i in range(nd):
        s, t = input.shape[i], shape[lead + i]
        if s != t and s != 1:
            raise RuntimeError(f"expand: the expanded size of the tensor ({t}) must match the existing size "
                               f"({s}) at non-singleton dimension {lead + i}. Target sizes: {list(sizes)}. "
                               f"Tensor sizes: {list(input.shape)}")
    if shape == tuple(input.shape):
        return input
    return apply(_expand, input, shape=shape)


def broadcast_to(input, shape):
    return expand(input, shape)


_permute = defop("permute", lambda x, dims: x.transpose(dims),
                 lambda g, out, x, dims: g.permute(tuple(np.argsort(dims))), saves=(), view=True)


def permute(input, *dims):
    dims = _shape_arg(dims)
    nd = input.ndim
    if len(dims) != nd:
        raise RuntimeError(f"permute: number of dims don't match: got {len(dims)} dims for a tensor of "
                           f"{nd} dimensions")
    dims = tuple(norm_dim(d, nd, "permute") for d in dims)
    if len(set(dims)) != nd:
        raise RuntimeError(f"permute: repeated dim in {dims}")
    if dims == tuple(range(nd)):
        return input
    return apply(_permute, input, dims=dims)


def transpose(input, dim0, dim1):
    nd = input.ndim
    if nd == 0:
        return input
    d0, d1 = norm_dim(dim0, nd, "transpose"), norm_dim(dim1, nd, "transpose")
    dims = list(range(nd))
    dims[d0], dims[d1] = dims[d1], dims[d0]
    return permute(input, dims)


def t(input):
    """Transpose a tensor of at most 2 dims."""
    if input.ndim > 2:
        raise RuntimeError(f"t() expects a tensor with <= 2 dimensions, but self is {input.ndim}D")
    return transpose(input, 0, 1) if input.ndim == 2 else input


_cast = defop("to", lambda x, dtype: x.astype(dtype), lambda g, out, x, dtype: g.to(x.dtype), saves=())


def cast(input, dtype):
    dtype = _dtype.to_dtype(dtype)
    if input._data.dtype == dtype:
        return input
    return apply(_cast, input, dtype=dtype)


_clone = defop("clone", lambda x: np.array(x, copy=True), lambda g, out, x: g, saves=())


def clone(input):
    """A copy that stays in the graph."""
    return apply(_clone, input)


def contiguous(input):
    if input._data.flags.c_contiguous:
        return input
    return apply(_contiguous, input)


_contiguous = defop("contiguous", np.ascontiguousarray, lambda g, out, x: g, saves=())

__all__ = ["reshape", "view", "expand", "broadcast_to", "permute", "transpose", "t", "cast", "clone",
           "contiguous"]
