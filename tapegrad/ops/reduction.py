"""Reductions over dims (``dim`` int or tuple, ``keepdim``), with PyTorch's semantics."""
from __future__ import annotations

import numpy as np

from .. import _dtype
from ..tensor import Tensor
from .registry import apply, defop
from ._util import norm_dims


def _keep_shape(shape, dims):
    return tuple(1 if i in dims else s for i, s in enumerate(shape))


def _unreduce(g, x, dims, keepdim):
    """Broadcast a reduced gradient back over the reduced dims of ``x``."""
    if not keepdim:
        g = g.reshape(_keep_shape(x.shape, dims))
    return g.expand(x.shape)


def _sum_fwd(x, dims, keepdim):
    out = np.sum(x, axis=dims, keepdims=keepdim)
    return np.asarray(out, dtype=x.dtype if x.dtype.kind == "f" else np.int64)


_sum = defop("sum", _sum_fwd, lambda g, out, x, dims, keepdim: _unreduce(g, x, dims, keepdim), saves=())


def _mean_fwd(x, dims, keepdim):
    return np.asarray(np.mean(x, axis=dims, keepdims=keepdim), dtype=x.dtype)


def _mean_vjp(g, out, x, dims, keepdim):
    n = int(np.prod([x.shape[d] for d in dims]))
    return _unreduce(g, x, dims, keepdim) / n


_mean = defop("mean", _mean_fwd, _mean_vjp, saves=())


def sum(input, dim=None, keepdim=False, *, dtype=None):
    """Sum over ``dim`` (all dims by default). Integer and bool tensors sum to int64."""
    if dtype is not None:
        input = input.to(dtype)
    return apply(_sum, input, dims=norm_dims(dim, input.ndim, "sum"), keepdim=keepdim)


def mean(input, dim=None, keepdim=False, *, dtype=None):
    if dtype is not None:
        input = input.to(dtype)
    if input._data.dtype.kind != "f":
        raise RuntimeError(f"mean(): could not infer output dtype. Input dtype must be floating point, "
                           f"got {_dtype.name(input._data.dtype)}")
    return apply(_mean, input, dims=norm_dims(dim, input.ndim, "mean"), keepdim=keepdim)


def _sum_to_size_fwd(x, shape):
    lead = x.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(lead + i for i, s in enumerate(shape) if s == 1 and x.shape[lead + i] != 1)
    out = np.sum(x, axis=axes, keepdims=True) if axes else x
    return np.asarray(out.reshape(shape), dtype=x.dtype)


_sum_to_size = defop("sum_to_size", _sum_to_size_fwd, lambda g, out, x, shape: g.expand(x.shape), saves=())


def sum_to_size(input, *size):
    """Sum ``input`` down to ``size`` (the reverse of broadcasting ``size`` up to ``input.shape``)."""
    shape = tuple(size[0]) if len(size) == 1 and isinstance(size[0], (tuple, list)) else tuple(size)
    if tuple(input.shape) == shape:
        return input
    try:
        np.broadcast_shapes(shape, input.shape)
        ok = len(shape) <= input.ndim and np.broadcast_shapes(shape, input.shape) == tuple(input.shape)
    except ValueError:
        ok = False
    if not ok:
        raise RuntimeError(f"sum_to_size: size {shape} is not expandable to tensor size {tuple(input.shape)}")
    return apply(_sum_to_size, input, shape=shape)


__all__ = ["sum", "mean", "sum_to_size"]
