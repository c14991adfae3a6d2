"""Composite shape and indexing functions: h/v/dstack, meshgrid, broadcast_tensors,
repeat_interleave, rot90, unfold, masked_select, take, index_add, index_fill, logspace.

Each is built from recorded ops (cat, expand, flip, index_select, getitem, index_put_add, where),
so their gradients come from those ops' VJPs.
"""
from __future__ import annotations


import numpy as np

from .. import _dtype
Tensor = None  # the Tensor class, bound by tensor.py (ops.bind_tensor): the ops sit below it
from .._tape.registry import apply
from ._util import norm_dim
from .elementwise import add, mul, where
from .indexing import _index_put_add, getitem, index_select
from . import shape as _shape
from . import creation as C


def _tensors(tensors, opname):
    if len(tensors) == 1 and isinstance(tensors[0], (list, tuple)):
        tensors = tuple(tensors[0])
    for i, t in enumerate(tensors):
        if not isinstance(t, Tensor):
            raise TypeError(f"{opname}(): expected Tensors, got {type(t).__name__} at position {i}")
    return tensors


def atleast_1d(*tensors):
    ts = _tensors(tensors, "atleast_1d")
    out = tuple(t.reshape(1) if t.ndim == 0 else t for t in ts)
    return out[0] if len(out) == 1 else out


def atleast_2d(*tensors):
    ts = _tensors(tensors, "atleast_2d")
    out = tuple(t.reshape((1,) * (2 - t.ndim) + tuple(t.shape)) if t.ndim < 2 else t for t in ts)
    return out[0] if len(out) == 1 else out


def atleast_3d(*tensors):
    """0-d -> (1, 1, 1), 1-d (n,) -> (1, n, 1), 2-d (m, n) -> (m, n, 1), as numpy."""
    def up(t):
        if t.ndim == 0:
            return t.reshape(1, 1, 1)
        if t.ndim == 1:
            return t.reshape(1, -1, 1)
        if t.ndim == 2:
            return t.unsqueeze(-1)
        return t
    out = tuple(up(t) for t in _tensors(tensors, "atleast_3d"))
    return out[0] if len(out) == 1 else out


def hstack(tensors):
    """Concatenate along dim 1 (dim 0 for 1-D tensors)."""
    ts = [atleast_1d(t) for t in _tensors((tensors,), "hstack")]
    return _shape.cat(ts, 0 if ts[0].ndim == 1 else 1)


def vstack(tensors):
    """Concatenate along dim 0, after making every tensor at least 2-D."""
    return _shape.cat([atleast_2d(t) for t in _tensors((tensors,), "vstack")], 0)


row_stack = vstack


def dstack(tensors):
    """Concatenate along dim 2, after making every tensor at least 3-D."""
    return _shape.cat([atleast_3d(t) for t in _tensors((tensors,), "dstack")], 2)


def column_stack(tensors):
    ts = _tensors((tensors,), "column_stack")
    return hstack([t.reshape(-1, 1) if t.ndim < 2 else t for t in ts])


def broadcast_shapes(*shapes):
    """The shape all ``shapes`` broadcast to (ints count as 1-D shapes)."""
    shapes = [(s,) if isinstance(s, (int, np.integer)) else tuple(s) for s in shapes]
    try:
        return tuple(int(s) for s in np.broadcast_shapes(*shapes))
    except ValueError:
        raise RuntimeError(f"broadcast_shapes: shapes {shapes} cannot be broadcast together") from None


def broadcast_tensors(*tensors):
    """Every tensor expanded (a view) to their common broadcast shape."""
    ts = _tensors(tensors, "broadcast_tensors")
    shape = broadcast_shapes(*[t.shape for t in ts])
    return tuple(t.expand(shape) for t in ts)


def meshgrid(*tensors, indexing="ij"):
    """Coordinate grids from 1-D tensors; ``indexing='xy'`` swaps the first two dims (numpy's default)."""
    ts = _tensors(tensors, "meshgrid")
    if indexing not in ("ij", "xy"):
        raise RuntimeError(f"meshgrid: indexing must be one of 'xy' or 'ij', but received: {indexing}")
    for t in ts:
        if t.ndim > 1:
            raise RuntimeError(f"meshgrid: Expected 0D or 1D tensor in the tensor list but got a tensor of "
                               f"shape {tuple(t.shape)}")
    ts = [t.reshape(-1) for t in ts]
    shape = tuple(t.shape[0] for t in ts)
    out = [t.reshape(tuple(-1 if k == i else 1 for k in range(len(ts)))).expand(shape) for i, t in enumerate(ts)]
    if indexing == "xy" and len(ts) >= 2:  # numpy's convention: the first two dims swapped
        out = [o.transpose(0, 1) for o in out]
    return tuple(out)


def repeat_interleave(input, repeats=None, dim=None, *, output_size=None):
    """Repeat each element ``repeats`` times (an int or a 1-D tensor of counts) along ``dim``.

    ``repeat_interleave(counts)`` alone gives ``arange(len(counts))`` repeated by ``counts``.
    """
    if repeats is None:
        counts = input._data
        return Tensor._wrap(np.repeat(np.arange(counts.size, dtype=np.int64), counts))
    if dim is None:
        input, d = input.reshape(-1), 0
    else:
        d = norm_dim(dim, input.ndim, "repeat_interleave")
    n = input.shape[d] if input.ndim else 1
    r = repeats._data if isinstance(repeats, Tensor) else np.asarray(repeats)
    if r.ndim > 1 or (r.ndim == 1 and r.size not in (1, n)):
        raise RuntimeError(f"repeat_interleave: repeats must have the same size as input along dim {d} "
                           f"(got {r.size} repeats for size {n})")
    if (r < 0).any():
        raise RuntimeError("repeat_interleave: repeats can not be negative")
    if input.ndim == 0:
        input = input.reshape(1)
    idx = np.repeat(np.arange(n, dtype=np.int64), r.reshape(-1) if r.ndim else int(r))
    return index_select(input, d, Tensor._wrap(idx))


def rot90(input, k=1, dims=(0, 1)):
    """Rotate by 90 degrees ``k`` times in the plane ``dims`` (from the first towards the second)."""
    if len(dims) != 2:
        raise RuntimeError(f"rot90: expected total rotation dims == 2, but got dims = {len(dims)}")
    if input.ndim < 2:
        raise RuntimeError(f"rot90: expected total dims >= 2, but got total dims = {input.ndim}")
    d0, d1 = (norm_dim(d, input.ndim, "rot90") for d in dims)
    if d0 == d1:
        raise RuntimeError(f"rot90: expected rotation dims to be different, but got dim0 = {d0} and dim1 = {d1}")
    k %= 4
    if k == 1:
        return _shape.transpose(_shape.flip(input, (d1,)), d0, d1)
    if k == 2:
        return _shape.flip(input, (d0, d1))
    if k == 3:
        return _shape.transpose(_shape.flip(input, (d0,)), d0, d1)
    return _shape.clone(input)


def unfold(input, dimension, size, step):
    """All windows of ``size`` along ``dimension``, ``step`` apart, as a new last dim.

    >>> tapegrad.arange(5.0).unfold(0, 2, 2)
    tensor([[0., 1.],
            [2., 3.]])
    """
    x = input.reshape(1) if input.ndim == 0 else input
    d = norm_dim(dimension, x.ndim, "unfold")
    n = x.shape[d]
    if size > n or size < 0:
        raise RuntimeError(f"unfold: maximum size for tensor at dimension {d} is {n} but size is {size}")
    if step <= 0:
        raise RuntimeError(f"unfold: step is {step} but must be > 0")
    count = (n - size) // step + 1
    idx = (np.arange(count)[:, None] * step + np.arange(size)[None, :]).reshape(-1)
    picked = index_select(x, d, Tensor._wrap(idx.astype(np.int64)))
    picked = picked.reshape(tuple(x.shape[:d]) + (count, size) + tuple(x.shape[d + 1:]))
    out = _shape.movedim(picked, d + 1, -1)
    return out.reshape(size) if input.ndim == 0 else out


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
    return getitem(input.expand(shape), Tensor._wrap(np.broadcast_to(mask._data, shape)))


def take(input, index):
    """``input`` as 1-D, indexed by ``index`` (the result has ``index``'s shape); negative indices wrap."""
    n = input._data.size
    a = index._data
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
    placed = apply(_index_put_add, src, shape=tuple(input.shape), index=(slice(None),) * d + (a,), basic=False)
    return add(input, placed)


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


def logspace(start, end, steps, base=10.0, dtype=None, device=None, requires_grad=False):
    """``steps`` points ``base ** linspace(start, end)``."""
    d = _dtype.to_dtype(dtype) if dtype is not None else _dtype.get_default_dtype()
    t = Tensor._wrap(np.power(float(base), np.linspace(float(start), float(end), int(steps))).astype(d))
    return t.requires_grad_() if requires_grad else t


__all__ = ["atleast_1d", "atleast_2d", "atleast_3d", "hstack", "vstack", "row_stack", "dstack", "column_stack",
           "broadcast_shapes", "broadcast_tensors", "meshgrid", "repeat_interleave", "rot90", "unfold",
           "masked_select", "take", "index_add", "index_fill", "logspace"]


def new_like(self, kind, arg, dtype, requires_grad, fill_value=None):
    """``Tensor.new_zeros/new_ones/new_empty/new_full/new_tensor``: ``self``'s dtype unless ``dtype`` is given."""
    d = self.dtype if dtype is None else _dtype.to_dtype(dtype)
    if kind == "tensor":
        return C.tensor(arg, dtype=d, requires_grad=requires_grad)
    if kind == "full":
        return C.full(arg, fill_value, dtype=d, requires_grad=requires_grad)
    return getattr(C, kind)(*arg, dtype=d, requires_grad=requires_grad)
