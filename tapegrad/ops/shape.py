"""Shape ops: views (sharing memory and the version counter with their input) and copies."""
from __future__ import annotations

import builtins

import numpy as np

from .. import _dtype
Tensor = None  # the Tensor class, bound by tensor.py (ops.bind_tensor): the ops sit below it
from .._tape.registry import apply, defop
from ._util import norm_dim, norm_dims


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


def _inverse(dims):
    inv = [0] * len(dims)
    for i, d in enumerate(dims):
        inv[d] = i
    return tuple(inv)


_permute = defop("permute", lambda x, dims: x.transpose(dims),
                 lambda g, out, x, dims: apply(_permute, g, dims=_inverse(dims)), saves=(), view=True)


def permute(input, *dims):
    if len(dims) == 1 and isinstance(dims[0], (tuple, list)):
        dims = dims[0]
    nd = input._data.ndim
    norm = tuple(d + nd if d < 0 else d for d in dims)
    if sorted(norm) != list(range(nd)):  # not a permutation: find out why, for the message
        _check_permutation(dims, nd)
    if norm == tuple(range(nd)):
        return input
    return apply(_permute, input, dims=norm)


def _check_permutation(dims, nd):
    if len(dims) != nd:
        raise RuntimeError(f"permute: number of dims don't match: got {len(dims)} dims for a tensor of "
                           f"{nd} dimensions")
    norm = tuple(norm_dim(d, nd, "permute") for d in dims)
    raise RuntimeError(f"permute: repeated dim in {norm}")


def transpose(input, dim0, dim1):
    nd = input._data.ndim
    if nd == 0:
        return input
    d0, d1 = norm_dim(dim0, nd, "transpose"), norm_dim(dim1, nd, "transpose")
    if d0 == d1:
        return input
    dims = list(range(nd))
    dims[d0], dims[d1] = d1, d0
    return apply(_permute, input, dims=tuple(dims))


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



# ---------------------------------------------------------------- reshapes (all through reshape)
def flatten(input, start_dim=0, end_dim=-1):
    """Merge dims ``start_dim..end_dim`` into one (a 0-d tensor becomes 1-d)."""
    nd = input.ndim
    s, e = norm_dim(start_dim, nd, "flatten"), norm_dim(end_dim, nd, "flatten")
    if nd == 0:
        return reshape(input, (1,))
    if s > e:
        raise RuntimeError(f"flatten() has invalid args: start_dim ({start_dim}) cannot come after end_dim ({end_dim})")
    shape = input.shape
    return reshape(input, shape[:s] + (int(np.prod(shape[s:e + 1])),) + shape[e + 1:])


def unflatten(input, dim, sizes):
    """Split dim ``dim`` into ``sizes`` (one of which may be -1)."""
    d = norm_dim(dim, input.ndim, "unflatten")
    sizes = tuple(int(s) for s in sizes)
    n = input.shape[d] if input.ndim else 1
    try:
        sizes = _infer_shape(sizes, n, "unflatten", input.shape)
    except RuntimeError:
        raise RuntimeError(f"unflatten: Provided sizes {list(sizes)} don't multiply up to the size of dim {dim} "
                           f"({n}) in the input tensor of shape {tuple(input.shape)}") from None
    return reshape(input, input.shape[:d] + sizes + input.shape[d + 1:])


def squeeze(input, dim=None):
    """Drop size-1 dims (only those in ``dim``, an int or tuple, when given)."""
    dims = range(input.ndim) if dim is None else norm_dims(dim, input.ndim, "squeeze")
    shape = tuple(s for i, s in enumerate(input.shape) if not (i in dims and s == 1))
    return reshape(input, shape)


def unsqueeze(input, dim):
    """Insert a size-1 dim at ``dim`` (in ``[-ndim-1, ndim]``)."""
    d = norm_dim(dim, input.ndim + 1, "unsqueeze")
    return reshape(input, input.shape[:d] + (1,) + input.shape[d:])


def movedim(input, source, destination):
    """Move dims ``source`` to positions ``destination`` (ints or tuples), keeping the others' order."""
    nd = input.ndim
    src = (source,) if isinstance(source, int) else tuple(source)
    dst = (destination,) if isinstance(destination, int) else tuple(destination)
    if len(src) != len(dst):
        raise RuntimeError(f"movedim: Invalid source or destination dims: source ({list(src)} dims) should contain "
                           f"the same number of dims as destination ({list(dst)} dims)")
    src = [norm_dim(d, nd, "movedim") for d in src]
    dst = [norm_dim(d, nd, "movedim") for d in dst]
    if len(set(src)) != len(src) or len(set(dst)) != len(dst):
        raise RuntimeError(f"movedim: repeated dim in source {src} or destination {dst}")
    order = [i for i in range(nd) if i not in src]
    for d, s in sorted(zip(dst, src)):
        order.insert(d, s)
    return permute(input, order)


moveaxis = movedim


def swapaxes(input, axis0, axis1):
    return transpose(input, axis0, axis1)


swapdims = swapaxes


def narrow(input, dim, start, length):
    """The slice ``start:start+length`` of dim ``dim`` (a view)."""
    _has_dims(input, "narrow")
    d = norm_dim(dim, input.ndim, "narrow")
    n = input.shape[d]
    start = int(start)
    if not -n <= start <= n:
        raise IndexError(f"narrow: start ({start}) out of range for dimension {d} of size {n}")
    if start < 0:
        start += n
    if length < 0 or start + length > n:
        raise RuntimeError(f"narrow: start ({start}) + length ({length}) exceeds dimension size ({n})")
    return input[(slice(None),) * d + (slice(start, start + int(length)),)]


# ---------------------------------------------------------------- joining and splitting
def _cat_vjp(g, out, *xs, dim, starts, index):
    # starts: where each input begins along dim, computed once by cat() (summing the sizes
    # here, per input, made the backward of a cat of n pieces O(n^2))
    return narrow(g, dim, starts[index], starts[index + 1] - starts[index])


_cat = defop("cat", lambda *xs, dim, starts: np.concatenate(xs, axis=dim), _cat_vjp, saves=(), variadic=True)


def cat(tensors, dim=0):
    """Join tensors along ``dim``; dtypes promote as in PyTorch; 1-D empty tensors are skipped.

    >>> tapegrad.cat([tapegrad.zeros(2, 3), tapegrad.ones(1, 3)]).shape
    (3, 3)
    """
    tensors = list(tensors)
    if not tensors:
        raise RuntimeError("cat(): expected a non-empty list of Tensors")
    for i, t in enumerate(tensors):
        if not isinstance(t, Tensor):
            raise TypeError(f"cat(): expected a list of Tensors, got {type(t).__name__} at position {i}")
        if t.ndim == 0:
            raise RuntimeError(f"cat(): zero-dimensional tensor (at position {i}) cannot be concatenated")
    d = tensors[0]._data.dtype
    for t in tensors[1:]:
        d = _dtype.result_type(np.empty((0,), d), t._data)
    kept = [t for t in tensors if t.shape != (0,)] or tensors[:1]
    ref = kept[0]
    dim = norm_dim(dim, ref.ndim, "cat")
    for i, t in enumerate(kept):
        if t.ndim != ref.ndim:
            raise RuntimeError(f"cat(): Tensors must have same number of dimensions: got {ref.ndim} and {t.ndim} "
                               f"(shapes {tuple(ref.shape)} and {tuple(t.shape)})")
        for k in range(ref.ndim):
            if k != dim and t.shape[k] != ref.shape[k]:
                raise RuntimeError(f"cat(): Sizes of tensors must match except in dimension {dim}. Expected size "
                                   f"{ref.shape[k]} but got size {t.shape[k]} for tensor number {i} in the list "
                                   f"(shapes {tuple(ref.shape)} and {tuple(t.shape)})")
    starts = [0]
    for t in kept:
        starts.append(starts[-1] + t._data.shape[dim])
    return apply(_cat, *[cast(t, d) for t in kept], dim=dim, starts=tuple(starts))


concat = concatenate = cat


def stack(tensors, dim=0):
    """Join equal-shaped tensors along a new dim ``dim``."""
    tensors = list(tensors)
    if not tensors:
        raise RuntimeError("stack(): expected a non-empty list of Tensors")
    for i, t in enumerate(tensors):
        if t.shape != tensors[0].shape:
            raise RuntimeError(f"stack(): stack expects each tensor to be equal size, but got {tuple(tensors[0].shape)} "
                               f"at entry 0 and {tuple(t.shape)} at entry {i}")
    d = norm_dim(dim, tensors[0].ndim + 1, "stack")
    return cat([unsqueeze(t, d) for t in tensors], d)


def split(tensor, split_size_or_sections, dim=0):
    """Views of ``tensor`` along ``dim``: chunks of one size (the last may be smaller) or given sizes."""
    _has_dims(tensor, "split")
    d = norm_dim(dim, tensor.ndim, "split")
    n = tensor.shape[d]
    if isinstance(split_size_or_sections, (int, np.integer)):
        size = int(split_size_or_sections)
        if size <= 0 and n:
            raise RuntimeError(f"split: split_size must be positive, got {size}")
        sizes = [builtins.min(size, n - i) for i in range(0, n, size)] if n else [0]
    else:
        sizes = [int(s) for s in split_size_or_sections]
        if builtins.sum(sizes) != n or builtins.any(s < 0 for s in sizes):
            raise RuntimeError(f"split_with_sizes expects split_sizes to sum exactly to {n} (input tensor's size "
                               f"at dimension {d}), but got split_sizes={sizes}")
    out, start = [], 0
    for s in sizes:
        out.append(narrow(tensor, d, start, s))
        start += s
    return tuple(out)


def chunk(input, chunks, dim=0):
    """Split into ``chunks`` pieces of ``ceil(size / chunks)`` (fewer if the size runs out)."""
    if chunks <= 0:
        raise RuntimeError(f"chunk: chunk expects `chunks` to be greater than 0, got: {chunks}")
    _has_dims(input, "chunk")
    d = norm_dim(dim, input.ndim, "chunk")
    n = input.shape[d]
    if n == 0:  # PyTorch: ``chunks`` empty pieces
        return tuple(narrow(input, d, 0, 0) for _ in range(chunks))
    return split(input, -(-n // chunks), dim)


def _has_dims(input, opname):
    """PyTorch's dim-wise slicing ops refuse 0-d tensors (with a RuntimeError)."""
    if input.ndim == 0:
        raise RuntimeError(f"{opname}: dimension specified as 0 but tensor has no dimensions")


def unbind(input, dim=0):
    d = norm_dim(dim, input.ndim, "unbind")
    return tuple(squeeze(p, d) for p in split(input, 1, d))


# ---------------------------------------------------------------- pad, flip, repeat, roll
def _pad_vjp(g, out, x, widths, value):
    return g[tuple(slice(lo, lo + n) for (lo, _), n in zip(widths, x.shape))]


_constant_pad = defop("constant_pad", lambda x, widths, value: np.pad(x, widths, constant_values=value),
                      _pad_vjp, saves=())


def _pad_index(n, lo, hi, mode):
    i = np.arange(-lo, n + hi)
    if mode == "reflect":
        period = 2 * (n - 1)
        i = np.abs(i) % period if period else np.zeros_like(i)
        return np.where(i >= n, period - i, i)
    if mode == "replicate":
        return np.clip(i, 0, n - 1)
    return i % n  # circular


def pad(input, pad, mode="constant", value=None):
    """Pad the last dims: ``pad = (left, right, top, bottom, ...)``, last dim first (negative crops).

    Modes: 'constant' (with ``value``), 'reflect', 'replicate', 'circular'.

    >>> tapegrad.pad(tapegrad.ones(2, 2), (1, 0)).shape
    (2, 3)
    """
    pad = tuple(int(p) for p in pad)
    nd = input.ndim
    if len(pad) % 2 or len(pad) // 2 > nd:
        raise RuntimeError(f"pad: padding length must be even and at most twice the number of dims "
                           f"(got {len(pad)} for a tensor of shape {tuple(input.shape)})")
    widths = [(0, 0)] * nd
    for i in range(len(pad) // 2):
        widths[nd - 1 - i] = (pad[2 * i], pad[2 * i + 1])
    if mode == "constant":
        crop = tuple(slice(-lo if lo < 0 else 0, n + hi if hi < 0 else n) for (lo, hi), n in zip(widths, input.shape))
        if builtins.any(lo < 0 or hi < 0 for lo, hi in widths):
            input = input[crop]
        widths = tuple((builtins.max(lo, 0), builtins.max(hi, 0)) for lo, hi in widths)
        if not builtins.any(lo or hi for lo, hi in widths):
            return input
        return apply(_constant_pad, input, widths=widths, value=0 if value is None else value)
    if mode not in ("reflect", "replicate", "circular"):
        raise NotImplementedError(f"pad: mode {mode!r} is not supported (use constant, reflect, replicate, circular)")
    if value not in (None, 0):
        raise RuntimeError(f"pad: padding mode {mode!r} doesn't take in value argument")
    from .indexing import index_select
    for d, (lo, hi) in enumerate(widths):
        if lo or hi:
            n = input.shape[d]
            limit = n - 1 if mode == "reflect" else n if mode == "circular" else np.inf
            if builtins.max(lo, hi) > limit or (mode == "replicate" and n == 0):
                raise RuntimeError(f"pad: padding ({lo}, {hi}) of dim {d} is too large for mode {mode!r} and an "
                                   f"input of shape {tuple(input.shape)}")
            input = index_select(input, d, Tensor._wrap(_pad_index(n, lo, hi, mode)))
    return input


_flip = defop("flip", lambda x, dims: np.flip(x, dims).copy(), lambda g, out, x, dims: flip(g, dims), saves=())


def flip(input, dims):
    """Reverse the order of elements along ``dims`` (a copy, as in PyTorch)."""
    dims = (dims,) if isinstance(dims, int) else tuple(dims)
    dims = tuple(norm_dim(d, input.ndim, "flip") for d in dims)
    if input.ndim == 0 or not dims:
        return clone(input)
    return apply(_flip, input, dims=dims)


def fliplr(input):
    return flip(input, (1,))


def flipud(input):
    return flip(input, (0,))


def _repeat_fwd(x, sizes):
    return np.tile(x.reshape((1,) * (len(sizes) - x.ndim) + x.shape), sizes)


def _repeat_vjp(g, out, x, sizes):
    """Sum the tiles: view the gradient as (r0, s0, r1, s1, ...) and reduce the r axes."""
    shape = (1,) * (len(sizes) - len(x.shape)) + tuple(x.shape)
    tiled = g.reshape(tuple(v for r, s in zip(sizes, shape) for v in (r, s)))
    return tiled.sum(tuple(range(0, 2 * len(sizes), 2))).reshape(x.shape)


_repeat = defop("repeat", _repeat_fwd, _repeat_vjp, saves=())


def repeat(input, *sizes):
    """Tile the tensor ``sizes[i]`` times along dim i (``sizes`` may add leading dims)."""
    sizes = _shape_arg(sizes)
    if len(sizes) < input.ndim:
        raise RuntimeError(f"repeat: Number of dimensions of repeat dims ({len(sizes)}) can not be smaller than "
                           f"number of dimensions of tensor ({input.ndim})")
    if builtins.any(s < 0 for s in sizes):
        raise RuntimeError(f"repeat: Trying to create tensor with negative dimension: {list(sizes)}")
    return apply(_repeat, input, sizes=sizes)


def tile(input, dims):
    dims = tuple(dims)
    return repeat(input, (1,) * (input.ndim - len(dims)) + dims)


def _neg_shifts(shifts):
    return tuple(-s for s in shifts) if isinstance(shifts, tuple) else -shifts


_roll = defop("roll", lambda x, shifts, dims: np.roll(x, shifts, axis=dims),
              lambda g, out, x, shifts, dims: apply(_roll, g, shifts=_neg_shifts(shifts), dims=dims), saves=())


def roll(input, shifts, dims=None):
    """Shift elements cyclically along ``dims`` (over the flattened tensor when ``dims`` is None)."""
    if isinstance(shifts, (list, tuple)):
        shifts = tuple(int(s) for s in shifts)
    if dims is not None:
        dims = (dims,) if isinstance(dims, int) else tuple(dims)
        dims = tuple(norm_dim(d, input.ndim, "roll") for d in dims)
        n_shifts = len(shifts) if isinstance(shifts, tuple) else 1
        if n_shifts != len(dims):
            raise RuntimeError(f"roll: shifts and dimensions must align. shifts: {n_shifts}, dims: {len(dims)}")
        if not isinstance(shifts, tuple):
            shifts = (int(shifts),)
    elif isinstance(shifts, tuple):
        if len(shifts) != 1:
            raise RuntimeError(f"roll: shifts and dimensions must align. shifts: {len(shifts)}, dims: 0")
        shifts = shifts[0]
    return apply(_roll, input, shifts=shifts, dims=dims)


__all__ = ["reshape", "view", "expand", "broadcast_to", "permute", "transpose", "t", "cast", "clone",
           "contiguous", "flatten", "unflatten", "squeeze", "unsqueeze", "movedim", "moveaxis", "swapaxes",
           "swapdims", "narrow", "cat", "concat", "concatenate", "stack", "split", "chunk", "unbind", "pad",
           "flip", "fliplr", "flipud", "repeat", "tile", "roll"]
