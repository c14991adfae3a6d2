"""Shape and movement: views (``view``/``reshape``/``permute``/``transpose``/``expand``), joining and
splitting (``cat``/``stack``/``split``/``chunk``), ``flip``/``roll``/``repeat``, padding, the
triangles and diagonals (``tril``, ``diagonal``, ``diag_embed``, ``trace``) and the in-place
shape changes (``unsqueeze_``, ``t_``, ...).
"""
from __future__ import annotations

import builtins
import dataclasses
import math
import operator
import warnings

import numpy as np

from .. import _C, _dtype, storage as _storage
from .._tape import grad_mode
from .._tape.registry import _is16, _round16, _widen, apply, defop
from ..device import check_memory_format
from ._util import allocation_error, broadcast_view, names_allocations, norm_dim, norm_dims, sizes_or_keyword, too_big
from . import inplace as _inplace_module
from .inplace import WRITE_WATCHERS, _check_leaf, before_write
from .surface import public
from ._autocast import FP32, cast_inputs

Tensor = None  # the Tensor class, bound by tensor.py (ops.bind_tensor): the ops sit below it
Size = tuple  # tapegrad.Size, bound by tensor.py likewise (broadcast_shapes returns one, as PyTorch's)


def _shape_arg(shape, opname):
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    if shape.__class__ is tuple:
        for s in shape:
            if s.__class__ is not int:
                break
        else:  # plain ints already (the common case): no copy
            return shape
    try:  # integers only (numpy's, a one-element integer tensor): int() made view(2.5, 4) a view(2, 4)
        return tuple(map(operator.index, shape))
    except TypeError:
        bad = next(s for s in shape if not hasattr(type(s), "__index__") or isinstance(s, float))
        raise TypeError(f"{opname}(): argument 'size' must be tuple of ints, but found element of type "
                        f"{type(bad).__name__} ({bad!r}) in {tuple(shape)!r}") from None


def _infer_shape(shape, numel, opname, src_shape):
    if len(shape) == 1 and shape[0] == -1:  # view(-1), reshape(-1): every element in one dim
        return (numel,)
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


def _reshape_to(g, shape):
    """g reshaped to its input's ``shape`` (valid by construction: reshape()'s checks are done)."""
    return g if g._data.shape == shape else apply(_reshape, g, shape=tuple(shape))


_reshape = defop("reshape", lambda x, shape: x.reshape(shape), lambda g, out, x, shape: _reshape_to(g, x.shape),
                 saves=(), view=True)


@public(method=True)
def reshape(input, *args, shape=None):
    """Same data, new shape (a view when the layout allows, a copy otherwise); one dim may be -1."""
    # ints or one sequence of them that input's elements fill: the shape resolved in C (the
    # helpers below took 0.4 us of x.reshape(16, 8), 1.7x PyTorch's time in all); else they say why
    new = _C._view_shape(args, input._data) if shape is None else None
    if new is None:
        shape = sizes_or_keyword(args, shape, "shape", "reshape")
        new = _infer_shape(_shape_arg(shape, "reshape"), input._data.size, "reshape", input._data.shape)
    # the same shape still gives a new view, as PyTorch's: not ``input`` itself, whose gradient,
    # hooks and leaf status are its own
    out = apply(_reshape, input, shape=new)
    # (a C-contiguous array always reshapes to a view: numpy's overlap test, 0.2 us, only for others;
    # an empty one shares no memory, so it counts as a copy, as before)
    a = input._data
    if out._base is not None and not (a.__class__ is np.ndarray and a.size and a.flags.c_contiguous) and not (
            np.may_share_memory(out._data, a)):
        # numpy had to copy (a transposed or expanded input): not a view, as PyTorch's reshape
        # then isn't; sharing the version box made writes into it refused or bump the input's
        out._version_box, out._base = [0], None
    return out


@public(method=True)
def view(input, *shape, dtype=None, size=None):
    """Like ``reshape``, but refuses (as PyTorch does) when the result cannot share memory.

    ``view(dtype)`` (or ``view(dtype=...)``) reinterprets the bits instead (see ``view_dtype``)."""
    if dtype is None and size is None:  # sizes that a C-contiguous input's elements fill: a view for certain
        new = _C._view_shape(shape, input._data)
        if new is not None and input._data.flags.c_contiguous:
            return apply(_reshape, input, shape=new)
    shape = sizes_or_keyword(shape, size, "size", "view")
    if dtype is not None:
        if shape:
            raise TypeError(f"view: takes a shape or dtype=, not both (got shape {shape} and dtype {dtype})")
        return view_dtype(input, dtype)
    if len(shape) == 1 and shape[0].__class__ is not int and (
            isinstance(shape[0], (np.dtype, _dtype.DType)) or isinstance(shape[0], type) and issubclass(shape[0], np.generic)):
        return view_dtype(input, shape[0])
    shape = _infer_shape(_shape_arg(shape, "view"), input._data.size, "view", input._data.shape)
    try:
        np.ndarray.view(input._data).shape = shape  # raises when a copy would be needed
    except AttributeError:
        raise RuntimeError(f"view: size {list(shape)} is not compatible with input tensor's size and stride "
                           f"(shape {tuple(input.shape)}): at least one dimension spans across two "
                           f"contiguous subspaces. Use .reshape(...) instead.") from None
    return apply(_reshape, input, shape=shape)  # a view for certain (just checked): reshape's checks skipped


def view_dtype(input, dtype):
    """The same memory read as ``dtype`` (PyTorch's ``Tensor.view(dtype)``): outside autograd, as
    in PyTorch, sharing ``input``'s version counter. With a different element size the last dim
    must be contiguous and is rescaled; a larger element also needs the last size, the storage
    offset and the other strides divisible by the ratio (PyTorch's rules, in elements).

    >>> tapegrad.tensor([1.0]).view(tapegrad.int32)
    tensor([1065353216], dtype=tapegrad.int32)
    """
    a, d = input._data, _dtype.to_dtype(dtype)
    old, new = a.dtype.itemsize, d.itemsize
    if old != new:
        what = f"to view {_dtype.name(a.dtype)} as {_dtype.name(d)} (different element sizes)"
        if a.ndim == 0:
            raise RuntimeError(f"view: self.dim() cannot be 0 {what}")
        if a.strides[-1] != old:
            raise RuntimeError(f"view: self.stride(-1) must be 1 {what}, but got {a.strides[-1] // old}")
        if new > old:
            ratio = new // old
            if a.shape[-1] % ratio:
                raise RuntimeError(f"view: self.size(-1) must be divisible by {ratio} {what}, but got {a.shape[-1]}")
            offset = (a.__array_interface__["data"][0] - _owner(a).__array_interface__["data"][0]) // old
            if offset % ratio:
                raise RuntimeError(f"view: self.storage_offset() must be divisible by {ratio} {what}, but got "
                                   f"{offset}")
            for i, st in enumerate(a.strides[:-1]):
                if (st // old) % ratio:
                    raise RuntimeError(f"view: self.stride({i}) must be divisible by {ratio} {what}, but got "
                                       f"{st // old}")
    out = Tensor._wrap(a.view(d))
    out._version_box = input._version_box
    out._base = input if input._base is None else input._base  # after _version: the view's graph is current
    return out


def _owner(a):
    """The array that owns ``a``'s memory (its storage, in PyTorch's terms)."""
    while isinstance(a.base, np.ndarray):
        a = a.base
    return a


def _expand_fwd(x, shape):
    v = _C._expand_view(x, shape, True)  # the view made in C (numpy's broadcast_to took 2 us of Python)
    if v is not None:
        return v
    if x.shape == shape:
        return x.view()  # a writable alias
    if x.size and math.prod(shape) == x.size:  # only dims of size 1 added: no element repeats, and PyTorch's
        return x.reshape(shape)                 # view is writable (transformers' position_ids buffers)
    return broadcast_view(x, shape)


_expand = defop("expand", _expand_fwd, lambda g, out, x, shape: g.sum_to_size(x.shape), saves=(), view=True)


@public(method=True)
def expand(input, *sizes, size=None):
    """Broadcast to ``sizes`` without copying; -1 keeps a dim."""
    given = _C._sizes(sizes) if size is None else None  # ints, or one sequence of them: as they are
    sizes = given if given is not None else _shape_arg(sizes_or_keyword(sizes, size, "size", "expand"), "expand")
    ishape = input._data.shape  # (numpy's tuple: Size's indexing is Python code)
    nd = len(ishape)
    if len(sizes) < nd:
        raise RuntimeError(f"expand: the number of sizes provided ({len(sizes)}) must be greater or equal "
                           f"to the number of dimensions in the tensor ({nd})")
    lead = len(sizes) - nd
    if sizes[lead:] == ishape:  # the dims kept as they are, new ones in front: nothing to resolve or check
        return apply(_expand, input, shape=sizes)
    shape = tuple(ishape[i - lead] if s == -1 and i >= lead else s for i, s in enumerate(sizes))
    for i in range(nd):
        s, t = ishape[i], shape[lead + i]
        if s != t and s != 1:
            raise RuntimeError(f"expand: the expanded size of the tensor ({t}) must match the existing size "
                               f"({s}) at non-singleton dimension {lead + i}. Target sizes: {list(sizes)}. "
                               f"Tensor sizes: {list(input.shape)}")
    return apply(_expand, input, shape=shape)  # a new view even for the same shape, as PyTorch's


@public
def broadcast_to(input, shape):
    """A view of ``input`` expanded to ``shape`` (broadcasting rules)."""
    return expand(input, shape)


def _inverse(dims):
    inv = [0] * len(dims)
    for i, d in enumerate(dims):
        inv[d] = i
    return tuple(inv)


_permute = defop("permute", lambda x, dims: x.transpose(dims),
                 lambda g, out, x, dims: apply(_permute, g, dims=_inverse(dims)), saves=(), view=True)


@public(method=True)
def permute(input, *args, dims=None):
    """A view with the dimensions reordered by ``dims``."""
    given = _C._sizes(args) if dims is None else None  # ints or one sequence of them: a tuple of ints
    nd = input._data.ndim
    if given is not None:  # a permutation checked before for this rank: its normal form, looked up
        norm = _PERMUTATIONS.get((given, nd))
        if norm is not None:
            return apply(_permute, input, dims=norm)
    dims = given if given is not None else sizes_or_keyword(args, dims, "dims", "permute")
    if len(dims) == 1 and isinstance(dims[0], (tuple, list)):
        dims = dims[0]
    norm = tuple(d + nd if d < 0 else d for d in dims)
    if sorted(norm) != list(range(nd)):  # not a permutation: find out why, for the message
        _check_permutation(dims, nd)
    if given is not None:
        if len(_PERMUTATIONS) >= 1024:
            _PERMUTATIONS.clear()
        _PERMUTATIONS[(given, nd)] = norm
    return apply(_permute, input, dims=norm)  # the identity too: a new view, as PyTorch's


# (dims as given, ndim) -> the dims made non-negative, for those that were a permutation: a model's
# few permutes recur every step, and checking one took x.permute(1, 0) to 1.5x PyTorch's time
_PERMUTATIONS: dict = {}


def _check_permutation(dims, nd):
    if len(dims) != nd:
        raise RuntimeError(f"permute: number of dims don't match: got {len(dims)} dims for a tensor of "
                           f"{nd} dimensions")
    norm = tuple(norm_dim(d, nd, "permute") for d in dims)
    raise RuntimeError(f"permute: repeated dim in {norm}")


_SWAPS_2D = frozenset((a, b) for a in (0, 1, -1, -2) for b in (0, 1, -1, -2) if a % 2 != b % 2)


@public(method=True)
def transpose(input, dim0, dim1):
    """A view with dimensions ``dim0`` and ``dim1`` swapped."""
    nd = input._data.ndim
    if nd == 2 and (dim0, dim1) in _SWAPS_2D:  # x.T, x.mT, w.t() of a matrix: no checks to make
        return apply(_permute, input, dims=(1, 0))
    if nd == 0:  # dims 0 and -1 name a 0-d tensor's only "dim": a new view all the same, as PyTorch's
        return apply(_permute, input, dims=())
    d0, d1 = norm_dim(dim0, nd, "transpose"), norm_dim(dim1, nd, "transpose")
    dims = list(range(nd))
    dims[d0], dims[d1] = d1, d0
    return apply(_permute, input, dims=tuple(dims))


@public(method=True)
def t(input):
    """Transpose a tensor of at most 2 dims."""
    if input.ndim > 2:
        raise RuntimeError(f"t() expects a tensor with <= 2 dimensions, but self is {input.ndim}D")
    return transpose(input, 0, 1) if input.ndim == 2 else apply(_permute, input, dims=tuple(range(input.ndim)))


def _cast_fwd(x, dtype):
    if x.dtype.kind == "c" and dtype.kind != "c":  # the real part (cast() has warned), without numpy's warning
        x = x.real
    if dtype.type.__name__ == "float8_e4m3fn" and x.dtype.kind != "b":
        x = np.clip(x, -448, 448)  # PyTorch saturates (infinities too) where ml_dtypes gives NaN; NaN stays
    if _is16(dtype) and x.dtype == np.float32:  # half(), bfloat16(): the native rounding, numpy's bits
        return _round16(x, dtype)
    if _is16(x.dtype) and dtype.kind == "f" and dtype.itemsize > 2:  # exact: through float32 natively
        y = _widen(x)
        return y if dtype == np.float32 else y.astype(dtype)
    return x.astype(dtype)


def _cast_vjp(g, out, x, dtype):
    # complex -> real as a gradient: the real part, without the user-facing warning
    return g if g._data.dtype == x.dtype else apply(_cast, g, dtype=x.dtype)


_cast = defop("to", _cast_fwd, _cast_vjp, saves=(), exact16=True)


@public
def cast(input, dtype):
    """``input`` converted to ``dtype`` (differentiable between float dtypes)."""
    dtype = _dtype.to_dtype(dtype)
    if input._data.dtype == dtype:
        return input
    if input._data.dtype.kind == "c" and dtype.kind != "c":
        warnings.warn("Casting complex values to real discards the imaginary part", UserWarning, stacklevel=3)
    if not (_dtype.is_floating(dtype) or _dtype.is_complex(dtype)):  # integer results carry no gradient
        return Tensor._wrap(_cast_fwd(input._data, dtype))
    return apply(_cast, input, dtype=dtype)


def _clone_fwd(x):
    y = _C._copy(x)  # a large float array copied on the kernel threads (csrc/elementwise.h)
    return np.array(x, copy=True) if y is None else y


_clone = defop("clone", _clone_fwd, lambda g, out, x: g, saves=(), exact16=True)


@public(method=True)
def clone(input, *, memory_format=None):
    """A copy that stays in the graph. ``memory_format`` is accepted as in PyTorch
    (``preserve_format``, the default, is what every copy here does: C order)."""
    check_memory_format(memory_format, "clone", input.ndim)
    return apply(_clone, input)


@public(method=True)
def contiguous(input, memory_format=None):
    """``input`` if it is C-contiguous, else a contiguous copy. ``memory_format`` is accepted as
    in PyTorch (``channels_last`` on a 4-D tensor only) and the result is C-contiguous whichever
    is asked: the same values, other strides."""
    if memory_format is not None:
        check_memory_format(memory_format, "contiguous", input.ndim)
    if input._data.flags.c_contiguous:
        return input
    return apply(_contiguous, input)


_contiguous = defop("contiguous", np.ascontiguousarray, lambda g, out, x: g, saves=(), exact16=True)


# ---------------------------------------------------------------- reshapes (all through reshape)
@public(method=True)
def flatten(input, start_dim=0, end_dim=-1):
    """Merge dims ``start_dim..end_dim`` into one (a 0-d tensor becomes 1-d)."""
    a = input._data
    if (start_dim == 0 and end_dim == -1 and type(start_dim) is int and type(end_dim) is int
            and a.__class__ is np.ndarray and a.ndim > 1 and a.size and a.flags.c_contiguous):
        return apply(_reshape, input, shape=(a.size,))  # x.flatten() of a contiguous tensor: a view, no checks
    nd = input.ndim
    s, e = norm_dim(start_dim, nd, "flatten"), norm_dim(end_dim, nd, "flatten")
    if nd == 0:
        return reshape(input, (1,))
    if s > e:
        raise RuntimeError(f"flatten() has invalid args: start_dim ({start_dim}) cannot come after end_dim ({end_dim})")
    if s == e:  # nothing merged: PyTorch returns the input itself
        return input
    a = input._data
    shape = a.shape  # (math.prod: np.prod of a tuple takes 4.6 us)
    new = shape[:s] + (math.prod(shape[s:e + 1]),) + shape[e + 1:]
    if a.__class__ is np.ndarray and a.flags.c_contiguous and a.size:
        # a view for certain: reshape's checks skipped (2.7 -> 1.1 us for an 8x16). (An empty one
        # takes reshape's path, which counts it a copy: no memory to share.)
        return apply(_reshape, input, shape=new)
    return reshape(input, new)


@public(method=True)
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


@public
def squeeze(input, dim=None):
    """Drop size-1 dims (only those in ``dim``, an int or tuple, when given)."""
    if isinstance(dim, (tuple, list)) and len(dim) == 0:
        return reshape(input, input.shape)  # no dims named, none dropped (norm_dims reads () as all)
    dims = range(input.ndim) if dim is None else norm_dims(dim, input.ndim, "squeeze")
    shape = tuple(s for i, s in enumerate(input._data.shape) if not (i in dims and s == 1))
    return apply(_reshape, input, shape=shape)  # dropping size-1 dims is always a view


@public(method=True)
def unsqueeze(input, dim):
    """Insert a size-1 dim at ``dim`` (in ``[-ndim-1, ndim]``)."""
    shape = input._data.shape
    d = norm_dim(dim, len(shape) + 1, "unsqueeze")
    return apply(_reshape, input, shape=shape[:d] + (1,) + shape[d:])  # always a view: reshape's checks skipped


@public(method=True)
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
    if nd == 0:  # dims 0 and -1 name a 0-d tensor's only "dim": nothing moves
        return permute(input, ())
    order = [i for i in range(nd) if i not in src]
    for d, s in sorted(zip(dst, src)):
        order.insert(d, s)
    return permute(input, order)


moveaxis = movedim
public(moveaxis, name="moveaxis", method=True)


@public
def swapaxes(input, axis0, axis1):
    """``transpose`` under NumPy's name."""
    return transpose(input, axis0, axis1)


swapdims = swapaxes
public(swapdims, name="swapdims")


@public(method=True, out=True)
def narrow(input, dim, start, length):
    """The slice ``start:start+length`` of dim ``dim`` (a view)."""
    _has_dims(input, "narrow")
    d = norm_dim(dim, input.ndim, "narrow")
    n = input.shape[d]
    if isinstance(start, Tensor) and (start.ndim or start._data.dtype.kind not in "iu"):
        raise RuntimeError(f"narrow: start must be an 0-dim integral Tensor, got {_dtype.name(start.dtype)} of "
                           f"shape {tuple(start.shape)}")
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


_cat = defop("cat", lambda *xs, dim, starts: np.concatenate(xs, axis=dim), _cat_vjp, saves=(), variadic=True,
              exact16=True)


@public(out=True)
def cat(tensors, dim=0):
    """Join tensors along ``dim``; dtypes promote as in PyTorch; 1-D empty tensors are skipped.

    >>> tapegrad.cat([tapegrad.zeros(2, 3), tapegrad.ones(1, 3)]).shape
    (3, 3)
    """
    arrays = _C._join_arrays(tensors, False)  # plain tensors of one dtype and rank, nothing to record
    if arrays is not None and type(dim) is int:
        nd = arrays[0].ndim
        if nd and -nd <= dim < nd:
            try:
                return Tensor._wrap(np.concatenate(arrays, axis=dim))  # (numpy's shape check is PyTorch's here)
            except ValueError as e:  # shapes that do not join: cat's checks below say how
                if too_big(e):
                    raise allocation_error("cat", e) from None
            except MemoryError as e:
                raise allocation_error("cat", e) from None
    tensors = list(tensors)
    if not tensors:
        raise ValueError("cat(): expected a non-empty list of Tensors")  # (PyTorch's class)
    out = _cat_unrecorded(tensors, dim)
    if out is not None:
        return out
    for i, t in enumerate(tensors):
        if not isinstance(t, Tensor):
            raise TypeError(f"cat(): expected a list of Tensors, got {type(t).__name__} at position {i}")
        if not t._data.ndim:
            raise RuntimeError(f"cat(): zero-dimensional tensor (at position {i}) cannot be concatenated")
    d = tensors[0]._data.dtype
    for t in tensors[1:]:
        if t._data.dtype is not d:
            d = _dtype.result_type(np.empty((0,), d), t._data)
    kept = [t for t in tensors if t._data.shape != (0,)] or tensors[:1]
    ref = kept[0]
    dim = norm_dim(dim, ref.ndim, "cat")
    rs = ref._data.shape
    for i, t in enumerate(kept):
        ts = t._data.shape
        if len(ts) != len(rs):
            raise RuntimeError(f"cat(): Tensors must have same number of dimensions: got {ref.ndim} and {t.ndim} "
                               f"(shapes {tuple(ref.shape)} and {tuple(t.shape)})")
        for k in range(len(rs)):
            if k != dim and ts[k] != rs[k]:
                raise RuntimeError(f"cat(): Sizes of tensors must match except in dimension {dim}. Expected size "
                                   f"{ref.shape[k]} but got size {t.shape[k]} for tensor number {i} in the list "
                                   f"(shapes {tuple(ref.shape)} and {tuple(t.shape)})")
    if not (grad_mode.state.enabled and builtins.any(t._requires_grad for t in kept)):  # nothing to record
        try:
            return Tensor._wrap(np.concatenate([t._data if t._data.dtype is d else t._data.astype(d) for t in kept],
                                               axis=dim))
        except (MemoryError, ValueError) as e:
            err = allocation_error("cat", e)
            if err is None:
                raise
            raise err from None
    starts = [0]
    for t in kept:
        starts.append(starts[-1] + t._data.shape[dim])
    return apply(_cat, *[cast(t, d) for t in kept], dim=dim, starts=tuple(starts))


def _cat_unrecorded(tensors, dim):
    """cat's common case, or None: plain tensors of one dtype and rank, ``dim`` an int in range,
    nothing to record, joined by numpy, whose shape check is PyTorch's there (a mismatch, or any
    other case, takes cat's checks, for their messages). 4.5 -> 2.4 us for two 8x16 float32
    (PyTorch 1.15)."""
    arrays = []
    rg = False
    for t in tensors:
        if type(t) is not Tensor:
            return None
        arrays.append(t._data)
        rg = rg or t._requires_grad
    if rg and grad_mode.state.enabled:
        return None
    a0 = arrays[0]
    d, nd = a0.dtype, a0.ndim
    if type(dim) is not int or not (nd and -nd <= dim < nd):
        return None
    for a in arrays:
        if a.dtype is not d or a.ndim != nd or type(a) is not np.ndarray:
            return None
    try:
        return Tensor._wrap(np.concatenate(arrays, axis=dim))
    except ValueError as e:  # shapes that do not join (or a size numpy cannot index)
        if too_big(e):
            raise allocation_error("cat", e) from None
        return None
    except MemoryError as e:
        raise allocation_error("cat", e) from None


concat = concatenate = cat
public(concat, name="concat", out=True)
public(concatenate, name="concatenate", out=True)


@public(out=True)
def stack(tensors, dim=0):
    """Join equal-shaped tensors along a new dim ``dim``."""
    if dim.__class__ is int:
        arrays = _C._join_arrays(tensors, True)  # plain tensors of one dtype and shape, nothing to record
        if arrays is not None:
            n = arrays[0].ndim + 1
            if dim == 0:  # numpy's array of equal-shaped arrays of one dtype: their stack (0.4 us against
                return Tensor._wrap(np.array(arrays))  # 0.75 for a concatenate and a reshape)
            if -n <= dim < n:
                d = dim % n
                new = arrays[0].shape[:d] + (1,) + arrays[0].shape[d:]
                return Tensor._wrap(np.concatenate([a.reshape(new) for a in arrays], axis=d))
    tensors = list(tensors)
    if not tensors:
        raise RuntimeError("stack(): expected a non-empty list of Tensors")
    arrays, rg = [], False
    for i, t in enumerate(tensors):
        if not isinstance(t, Tensor):
            raise TypeError(f"stack(): expected a list of Tensors, got {type(t).__name__} at position {i}")
        arrays.append(t._data)
        rg = rg or t._requires_grad
    shape = arrays[0].shape
    for i, a in enumerate(arrays):
        if a.shape != shape:
            raise RuntimeError(f"stack(): stack expects each tensor to be equal size, but got {shape} "
                               f"at entry 0 and {a.shape} at entry {i}")
    n = len(shape) + 1
    d = dim % n if type(dim) is int and -n <= dim < n else norm_dim(dim, n, "stack")
    new = shape[:d] + (1,) + shape[d:]
    if not (rg and grad_mode.state.enabled):
        # nothing to record: one numpy join, where views joined by cat took 5x PyTorch's time (7.3 us
        # for two 16-element float32 tensors, PyTorch 1.4); mixed dtypes take cat's promotion
        first = arrays[0].dtype
        for a in arrays:
            if a.dtype is not first or type(a) is not np.ndarray:
                break
        else:
            if d == 0:  # numpy's array of equal-shaped arrays of one dtype: their stack (0.4 us against
                return Tensor._wrap(np.array(arrays))  # 0.75 for a concatenate and a reshape)
            return Tensor._wrap(np.concatenate([a.reshape(new) for a in arrays], axis=d))
    return cat([apply(_reshape, t, shape=new) for t in tensors], d)


@public
def split(tensor, split_size_or_sections, dim=0):
    """Views of ``tensor`` along ``dim``: chunks of one size (the last may be smaller) or given sizes."""
    _has_dims(tensor, "split")
    d = norm_dim(dim, tensor.ndim, "split")
    n = tensor._data.shape[d]
    if isinstance(split_size_or_sections, Tensor) and split_size_or_sections.numel() == 1:
        split_size_or_sections = int(split_size_or_sections)  # PyTorch's: a one-element tensor is a size
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
    return _pieces(tensor, d, sizes)


def _pieces(tensor, d, sizes):
    """The views of ``tensor`` along dim ``d`` (in range) of ``sizes`` (checked: they sum to its size)."""
    out, start, lead = [], 0, (slice(None),) * d
    op = _inplace_module._getitem  # (indexing's, set there)
    for s in sizes:  # each piece a basic slice (narrow's and getitem's checks skipped)
        out.append(apply(op, tensor, index=lead + (slice(start, start + s),), basic=True))
        start += s
    return tuple(out)


@public(method=True)
def chunk(input, chunks, dim=0):
    """Split into ``chunks`` pieces of ``ceil(size / chunks)`` (fewer if the size runs out)."""
    if chunks <= 0:
        raise RuntimeError(f"chunk: chunk expects `chunks` to be greater than 0, got: {chunks}")
    _has_dims(input, "chunk")
    d = norm_dim(dim, input.ndim, "chunk")
    n = input._data.shape[d]
    if n == 0:  # PyTorch: ``chunks`` empty pieces
        return tuple(narrow(input, d, 0, 0) for _ in range(chunks))
    if chunks.__class__ is not int:
        return split(input, -(-n // chunks), dim)
    size = -(-n // chunks)  # split's sizes for this size, without its argument checks (they hold)
    return _pieces(input, d, [builtins.min(size, n - i) for i in range(0, n, size)])


def _has_dims(input, opname):
    """PyTorch's dim-wise slicing ops refuse 0-d tensors (with a RuntimeError)."""
    if input.ndim == 0:
        raise RuntimeError(f"{opname}: dimension specified as 0 but tensor has no dimensions")


@public(method=True)
def unbind(input, dim=0):
    """The slices of ``input`` along ``dim``, as a tuple (that dimension removed)."""
    if input.ndim == 0:
        raise IndexError("unbind: dimension specified as 0 but tensor has no dimensions")
    d = norm_dim(dim, input.ndim, "unbind")
    if input.shape[d] == 0:  # no slices (split would give one empty piece)
        return ()
    return tuple(squeeze(p, d) for p in split(input, 1, d))


# ---------------------------------------------------------------- pad, flip, repeat, roll
def _pad_vjp(g, out, x, widths, value):
    return g[tuple(slice(lo, lo + n) for (lo, _), n in zip(widths, x.shape))]


_constant_pad = defop("constant_pad", lambda x, widths, value: np.pad(x, widths, constant_values=value),
                      _pad_vjp, saves=())


# The kernel route (csrc/kernels/shape.cpp): the padded dims, at most 3 of them, as (outer, n0, n1, n2)
# and, for each, the map from an output position to its source (-1: the constant). One pass that
# writes each output element once, for every mode (np.pad filled the border dim by dim: 1.19x
# PyTorch's time for a 32x64x32x32 float32 constant pad). A constant pad's VJP is the pad by the
# negated widths (a crop: each input element has one source in g); the other modes' adds g back
# through the maps (pad_backward), whose VJP is the pad itself: both linear, so double backward works.
@dataclasses.dataclass(slots=True, eq=False)
class _PadPlan:
    """The kernels' arguments: x as ``shape4``, the result's ``out_shape``, the three ``maps`` and the
    last dim's ``interior`` (a2, b2, off2); ``inverse``: the plan of the VJP's gather, or None (a
    constant pad's plan and its inverse point at each other, so the field is set after both exist)."""
    shape4: tuple
    out_shape: tuple
    maps: list
    interior: tuple
    inverse: "_PadPlan | None" = None


def _pad_maps(n, lo, hi, mode):
    """One dim's map (int64, an output position's source or -1) and its interior (a, b, off): the
    positions [a, b) whose source is position + off."""
    if mode == "constant":
        i = np.arange(-lo, n + hi)
        m = np.where((i >= 0) & (i < n), i, -1)
        a, b, off = builtins.max(lo, 0), builtins.min(len(i), n + lo), -lo
    elif mode == "circular":  # the core left by the negative pads, wrapped (see pad)
        c0, core, lo_ = builtins.max(-lo, 0), n - builtins.max(-lo, 0) - builtins.max(-hi, 0), builtins.max(lo, 0)
        m = c0 + _pad_index(core, lo_, builtins.max(hi, 0), mode)
        a, b, off = lo_, lo_ + core, c0 - lo_
    else:
        m = _pad_index(n, lo, hi, mode)
        a, b, off = builtins.max(lo, 0), builtins.min(len(m), n + lo), -lo
    return np.ascontiguousarray(m, np.int64), (a, builtins.max(a, b), off)


def _pad_kernel_fwd(x, plan, value):
    return _C.pad(np.ascontiguousarray(x).reshape(plan.shape4), plan.maps, plan.interior, value).reshape(plan.out_shape)


def _pad_vjp_kernel(g, x, plan):
    if plan.inverse is not None:
        return apply(_pad_gather, g, plan=plan.inverse, value=np.zeros((), g._data.dtype))
    return apply(_pad_scatter, g, plan=plan, in_shape=tuple(x.shape))


_pad_gather = defop("pad", _pad_kernel_fwd, lambda g, out, x, plan, value: _pad_vjp_kernel(g, x, plan), saves=())
_pad_scatter = defop("pad_backward",
                     lambda g, plan, in_shape: _C.pad_backward(
                         np.ascontiguousarray(g).reshape((plan.shape4[0],) + tuple(len(m) for m in plan.maps)),
                         plan.maps, plan.interior, plan.shape4).reshape(in_shape),
                     lambda g, out, gy, plan, in_shape: apply(_pad_gather, g, plan=plan,
                                                              value=np.zeros((), g._data.dtype)), saves=())


def _pad_kernel_dtype(d):
    return d == np.float32 or d == np.float64 or d.kind in "iub"


def _pad_by_kernel(input, widths, mode, value, key):
    """``pad`` through the kernels, or None where they do not take the case (more than 3 padded dims,
    float16 / bfloat16 / complex, empty input or output). The plan is kept under ``key``: building
    it (the maps) took 0.1 ms of Python, an eighth of a 32x64x32x32 pad's time."""
    d = input._data.dtype
    if not _pad_kernel_dtype(d) or input._data.size == 0:
        return None
    first = next((i for i, w in enumerate(widths) if w != (0, 0)), len(widths))
    if len(widths) - first > 3 or first == len(widths):
        return None
    shape = tuple(input.shape)  # the dims before the first padded one make the kernels' outer dim
    dims = [(1, (0, 0))] * (3 - (len(shape) - first)) + list(zip(shape[first:], widths[first:]))
    maps, interiors = zip(*[_pad_maps(n, lo, hi, mode) for n, (lo, hi) in dims])
    sizes = tuple(len(m) for m in maps)
    if 0 in sizes:
        return None
    outer = int(np.prod(shape[:first], dtype=np.int64))
    out_shape = shape[:first] + sizes[3 - (len(shape) - first):]
    inverse = None
    if mode == "constant":  # the VJP: the crop back, a constant pad of the output by the negated widths
        inv_maps, inv_interiors = zip(*[_pad_maps(p, -lo, -hi, mode) for p, (_, (lo, hi)) in zip(sizes, dims)])
        inverse = _PadPlan((outer,) + sizes, shape, list(inv_maps), inv_interiors[2])
    plan = _PadPlan((outer,) + tuple(n for n, _ in dims), out_shape, list(maps), interiors[2], inverse)
    if inverse is not None:
        inverse.inverse = plan
    for m in list(maps) + (list(inverse.maps) if inverse is not None else []):
        m.flags.writeable = False
    if len(_PAD_PLANS) >= 256:
        _PAD_PLANS.clear()
    _PAD_PLANS[key] = plan
    return _pad_apply(input, plan, mode, value)


_PAD_PLANS: dict = {}  # (input shape, pad, mode) -> _PadPlan, for inputs that passed pad's checks


def _pad_apply(input, plan, mode, value):
    d = input._data.dtype
    v = np.asarray(0 if value is None else value).astype(d) if mode == "constant" else np.zeros((), d)
    return apply(_pad_gather, input, plan=plan, value=v.reshape(()))


def _pad_index(n, lo, hi, mode):
    i = np.arange(-lo, n + hi)
    if mode == "reflect":
        period = 2 * (n - 1)
        i = np.abs(i) % period if period else np.zeros_like(i)
        return np.where(i >= n, period - i, i)
    if mode == "replicate":
        return np.clip(i, 0, n - 1)
    return i % n  # circular


@public
@names_allocations("pad")
def pad(input, pad, mode="constant", value=None):
    """Pad the last dims: ``pad = (left, right, top, bottom, ...)``, last dim first (negative crops).

    Modes: 'constant' (with ``value``), 'reflect', 'replicate', 'circular'.

    >>> tapegrad.pad(tapegrad.ones(2, 2), (1, 0)).shape
    (2, 3)
    """
    pad = tuple(int(p) for p in pad)
    key = (input._data.shape, pad, mode)
    plan = _PAD_PLANS.get(key)
    if plan is not None and _pad_kernel_dtype(input._data.dtype) and (mode == "constant" or value in (None, 0)):
        return _pad_apply(input, plan, mode, value)
    nd = input.ndim
    if len(pad) % 2 or len(pad) // 2 > nd:
        raise RuntimeError(f"pad: padding length must be even and at most twice the number of dims "
                           f"(got {len(pad)} for a tensor of shape {tuple(input.shape)})")
    widths = [(0, 0)] * nd
    for i in range(len(pad) // 2):
        widths[nd - 1 - i] = (pad[2 * i], pad[2 * i + 1])
    for d, (lo, hi) in enumerate(widths):  # a crop past the edge would silently slice to nothing
        if input.shape[d] + lo + hi < 0:
            raise RuntimeError(f"pad: the input size {input.shape[d]} of dim {d} (input shape {tuple(input.shape)}), "
                               f"plus negative padding {lo} and {hi}, gives a negative output size")
    if mode == "constant":
        if builtins.any(lo or hi for lo, hi in widths):
            out = _pad_by_kernel(input, widths, mode, value, key)
            if out is not None:
                return out
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
    for d, (lo, hi) in enumerate(widths):
        if (lo or hi) and input.shape[d] + lo + hi < (0 if mode == "circular" else 1):
            raise RuntimeError(f"pad: padding ({lo}, {hi}) of dim {d} leaves no element of the input of shape "
                               f"{tuple(input.shape)} (mode {mode!r})")
    cropped_widths, circular_crop = list(widths), ()
    if mode == "circular" and builtins.any(lo < 0 or hi < 0 for lo, hi in widths):
        # PyTorch crops first and wraps what is left (its padding copies from the cropped core)
        circular_crop = tuple(slice(builtins.max(-lo, 0), n - builtins.max(-hi, 0))
                              for (lo, hi), n in zip(widths, input.shape))
        widths = [(builtins.max(lo, 0), builtins.max(hi, 0)) for lo, hi in widths]
    for d, (lo, hi) in enumerate(widths):
        if lo or hi:
            n = input.shape[d] if not circular_crop else len(range(*circular_crop[d].indices(input.shape[d])))
            limit = n - 1 if mode == "reflect" else n if mode == "circular" else np.inf
            if builtins.max(lo, hi) > limit or (mode == "replicate" and n == 0):
                raise RuntimeError(f"pad: padding ({lo}, {hi}) of dim {d} is too large for mode {mode!r} and an "
                                   f"input of shape {tuple(input.shape)}")
    out = _pad_by_kernel(input, cropped_widths, mode, value, key)
    if out is not None:
        return out
    if circular_crop:
        input = input[circular_crop]
    for d, (lo, hi) in enumerate(widths):
        if lo or hi:
            input = input.index_select(d, Tensor._wrap(_pad_index(input.shape[d], lo, hi, mode)))
    return input


_flip = defop("flip", lambda x, dims: np.flip(x, dims).copy(), lambda g, out, x, dims: flip(g, dims), saves=())


@public(out=True)
def flip(input, dims):
    """Reverse the order of elements along ``dims`` (a copy, as in PyTorch)."""
    dims = (dims,) if isinstance(dims, int) else tuple(dims)
    dims = tuple(norm_dim(d, input.ndim, "flip") for d in dims)
    if input.ndim == 0 or not dims:
        return clone(input)
    return apply(_flip, input, dims=dims)


@public(method=True)
def fliplr(input):
    """``input`` reversed along dimension 1."""
    if input.ndim < 2:
        raise RuntimeError(f"fliplr: Input must be >= 2-d (got {input.ndim}-d)")
    return flip(input, (1,))


@public(method=True)
def flipud(input):
    """``input`` reversed along dimension 0."""
    if input.ndim < 1:
        raise RuntimeError("flipud: Input must be >= 1-d (got 0-d)")
    return flip(input, (0,))


def _repeat_fwd(x, sizes):
    return np.tile(x.reshape((1,) * (len(sizes) - x.ndim) + x.shape), sizes)


def _repeat_vjp(g, out, x, sizes):
    """Sum the tiles: view the gradient as (r0, s0, r1, s1, ...) and reduce the r axes."""
    shape = (1,) * (len(sizes) - len(x.shape)) + tuple(x.shape)
    tiled = g.reshape(tuple(v for r, s in zip(sizes, shape) for v in (r, s)))
    return tiled.sum(tuple(range(0, 2 * len(sizes), 2))).reshape(x.shape)


_repeat = defop("repeat", _repeat_fwd, _repeat_vjp, saves=())


@public
def repeat(input, *sizes, repeats=None):
    """Tile the tensor ``sizes[i]`` times along dim i (``sizes`` may add leading dims)."""
    sizes = _shape_arg(sizes_or_keyword(sizes, repeats, "repeats", "repeat"), "repeat")
    if len(sizes) < input.ndim:
        raise RuntimeError(f"repeat: Number of dimensions of repeat dims ({len(sizes)}) can not be smaller than "
                           f"number of dimensions of tensor ({input.ndim})")
    if builtins.any(s < 0 for s in sizes):
        raise RuntimeError(f"repeat: Trying to create tensor with negative dimension: {list(sizes)}")
    return apply(_repeat, input, sizes=sizes)


@public
def tile(input, dims):
    """``input`` repeated ``dims`` times along each dimension (NumPy's ``tile``)."""
    dims = tuple(dims)
    return repeat(input, (1,) * (input.ndim - len(dims)) + dims)


def _neg_shifts(shifts):
    return tuple(-s for s in shifts) if isinstance(shifts, tuple) else -shifts


_roll = defop("roll", lambda x, shifts, dims: np.roll(x, shifts, axis=dims),
              lambda g, out, x, shifts, dims: apply(_roll, g, shifts=_neg_shifts(shifts), dims=dims), saves=())


@public(method=True)
def roll(input, shifts, dims=None):
    """Shift elements cyclically along ``dims`` (over the flattened tensor when ``dims`` is None)."""
    if isinstance(shifts, (list, tuple)):
        shifts = tuple(int(s) for s in shifts)
    if dims is not None:
        dims = (dims,) if isinstance(dims, int) else tuple(dims)
        if input.ndim == 0 and dims:  # PyTorch: IndexError, as for any dim out of range
            raise IndexError(f"roll: dimension specified as {dims[0]} but the tensor has no dimensions")
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


def _tensors(tensors, opname):
    if len(tensors) == 1 and isinstance(tensors[0], (list, tuple)):
        tensors = tuple(tensors[0])
    for i, t in enumerate(tensors):
        if not isinstance(t, Tensor):
            raise TypeError(f"{opname}(): expected Tensors, got {type(t).__name__} at position {i}")
    return tensors


@public
def atleast_1d(*tensors):
    """Each tensor viewed with at least 1 dimension."""
    ts = _tensors(tensors, "atleast_1d")
    out = tuple(t.reshape(1) if t.ndim == 0 else t for t in ts)
    return out[0] if len(out) == 1 else out


@public
def atleast_2d(*tensors):
    """Each tensor viewed with at least 2 dimensions."""
    ts = _tensors(tensors, "atleast_2d")
    out = tuple(t.reshape((1,) * (2 - t.ndim) + tuple(t.shape)) if t.ndim < 2 else t for t in ts)
    return out[0] if len(out) == 1 else out


@public
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


@public(out=True)
def hstack(tensors):
    """Concatenate along dim 1 (dim 0 for 1-D tensors)."""
    ts = [atleast_1d(t) for t in _tensors((tensors,), "hstack")]
    if not ts:
        raise RuntimeError("hstack expects a non-empty TensorList")
    return cat(ts, 0 if ts[0].ndim == 1 else 1)


@public(out=True)
def vstack(tensors):
    """Concatenate along dim 0, after making every tensor at least 2-D."""
    return cat([atleast_2d(t) for t in _tensors((tensors,), "vstack")], 0)


row_stack = vstack
public(row_stack, name="row_stack")


@public(out=True)
def dstack(tensors):
    """Concatenate along dim 2, after making every tensor at least 3-D."""
    return cat([atleast_3d(t) for t in _tensors((tensors,), "dstack")], 2)


@public(out=True)
def column_stack(tensors):
    """1-D and 2-D tensors stacked as the columns of one matrix."""
    ts = _tensors((tensors,), "column_stack")
    return hstack([t.reshape(-1, 1) if t.ndim < 2 else t for t in ts])


@public
def broadcast_shapes(*shapes):
    """The shape all ``shapes`` broadcast to (ints count as 1-D shapes)."""
    shapes = [(s,) if isinstance(s, (int, np.integer)) else tuple(s) for s in shapes]
    try:
        return tuple.__new__(Size, [int(s) for s in np.broadcast_shapes(*shapes)])
    except ValueError:
        raise RuntimeError(f"broadcast_shapes: shapes {shapes} cannot be broadcast together") from None


@public
def broadcast_tensors(*tensors):
    """Every tensor expanded (a view) to their common broadcast shape."""
    ts = _tensors(tensors, "broadcast_tensors")
    shape = broadcast_shapes(*[t.shape for t in ts])
    return tuple(t.expand(shape) for t in ts)


@public
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


@public
def repeat_interleave(input, repeats=None, dim=None, *, output_size=None):
    """Repeat each element ``repeats`` times (an int or a 1-D tensor of counts) along ``dim``.

    ``repeat_interleave(counts)`` alone gives ``arange(len(counts))`` repeated by ``counts``.
    """
    if repeats is None:
        counts = input._data
        return Tensor._wrap(np.repeat(np.arange(counts.size, dtype=counts.dtype), counts))  # counts' dtype
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
    return input.index_select(d, Tensor._wrap(idx))


@public(method=True)
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
        return transpose(flip(input, (d1,)), d0, d1)
    if k == 2:
        return flip(input, (d0, d1))
    if k == 3:
        return transpose(flip(input, (d0,)), d0, d1)
    return clone(input)


@public(method=True)
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
    picked = x.index_select(d, Tensor._wrap(idx.astype(np.int64)))
    picked = picked.reshape(tuple(x.shape[:d]) + (count, size) + tuple(x.shape[d + 1:]))
    out = movedim(picked, d + 1, -1)
    return out.reshape(size) if input.ndim == 0 else out


# ---------------------------------------------------------------- triangles, diagonals, trace
def _triangle(x, diagonal, lower):
    """np.tril / np.triu through csrc/kernels/shape.cpp's one pass (numpy's builds a mask and a where:
    1000 x 1000 float32 at 1 thread took 1.18x PyTorch's time); numpy's for 16-byte elements."""
    if x.size and x.dtype.itemsize in (1, 2, 4, 8):
        a = np.ascontiguousarray(x)
        y = _C.triangle(a.reshape((-1,) + x.shape[-2:]), diagonal, lower, a is not x)  # a copy: zeroed in place
        return y.reshape(x.shape)
    return np.tril(x, diagonal) if lower else np.triu(x, diagonal)


_tril = defop("tril", lambda x, diagonal: _triangle(x, diagonal, True),
              lambda g, out, x, diagonal: apply(_tril, g, diagonal=diagonal), saves=())
_triu = defop("triu", lambda x, diagonal: _triangle(x, diagonal, False),
              lambda g, out, x, diagonal: apply(_triu, g, diagonal=diagonal), saves=())


def _tri(op, input, diagonal, opname):
    if input.ndim < 2:
        raise RuntimeError(f"{opname}: input tensor must have at least 2 dimensions, got shape {tuple(input.shape)}")
    return apply(op, input, diagonal=int(diagonal))


@public(method=True, inplace=True, out=True)
def tril(input, diagonal=0):
    """The lower triangle (on and below ``diagonal``) of the last two dims; zeros above."""
    return _tri(_tril, input, diagonal, "tril")


@public(method=True, inplace=True, out=True)
def triu(input, diagonal=0):
    """The upper triangle (on and above ``diagonal``) of the last two dims; zeros below."""
    return _tri(_triu, input, diagonal, "triu")


def _diag_index(n1, n2, offset):
    k = builtins.max(0, builtins.min(n1 + builtins.min(offset, 0), n2 - builtins.max(offset, 0)))
    i = np.arange(k)
    return i + builtins.max(-offset, 0), i + builtins.max(offset, 0)


def _diag_embed_fwd(g, shape, offset, dim1, dim2):
    """Zeros of ``shape`` with ``g``'s last dim written on the ``offset`` diagonal of (dim1, dim2)."""
    z = np.zeros(shape, dtype=g.dtype)
    zm = np.moveaxis(z, (dim1, dim2), (-2, -1))
    rows, cols = _diag_index(shape[dim1], shape[dim2], offset)
    zm[..., rows, cols] = g
    return z


def _diagonal_fwd(x, offset, dim1, dim2):
    # a view, as PyTorch's: ``A.diagonal().add_(eps)`` writes into A. numpy's diagonal view is
    # read-only only by convention; one of a read-only (expanded) array stays read-only
    d = np.diagonal(x, offset, dim1, dim2)
    if x.flags.writeable:
        d.flags.writeable = True
    return d


_diagonal = defop("diagonal", _diagonal_fwd,
                  lambda g, out, x, offset, dim1, dim2: apply(_diag_embed, g, shape=tuple(x.shape), offset=offset,
                                                             dim1=dim1, dim2=dim2), saves=(), view=True)
_diag_embed = defop("diag_embed", _diag_embed_fwd,
                    lambda g, out, v, shape, offset, dim1, dim2: apply(_diagonal, g, offset=offset, dim1=dim1,
                                                                      dim2=dim2), saves=())


@public(method=True, out=True)
def diagonal(input, offset=0, dim1=0, dim2=1):
    """The ``offset`` diagonal of dims (dim1, dim2), as a new last dim: a view of ``input``."""
    d1, d2 = norm_dim(dim1, input.ndim, "diagonal"), norm_dim(dim2, input.ndim, "diagonal")
    if d1 == d2:
        raise RuntimeError(f"diagonal: dim1 and dim2 cannot be identical, but got dim1 = dim2 = {dim1}")
    return apply(_diagonal, input, offset=int(offset), dim1=d1, dim2=d2)


@public(method=True, out=True)
def diag_embed(input, offset=0, dim1=-2, dim2=-1):
    """A tensor whose ``offset`` diagonal over (dim1, dim2) holds ``input``'s last dim; zeros elsewhere."""
    nd = input.ndim + 1
    d1, d2 = norm_dim(dim1, nd, "diag_embed"), norm_dim(dim2, nd, "diag_embed")
    if d1 == d2:
        raise RuntimeError(f"diag_embed: dim1 and dim2 cannot be identical, but got {dim1}")
    n = input.shape[-1] + builtins.abs(int(offset))
    rest = list(input.shape[:-1])
    shape = []
    for k in range(nd):
        shape.append(n if k in (d1, d2) else rest.pop(0))
    return apply(_diag_embed, input, shape=tuple(shape), offset=int(offset), dim1=d1, dim2=d2)


@public(method=True, out=True)
def diag(input, diagonal=0):
    """1-D input: a square matrix with it on the ``diagonal``; 2-D input: that diagonal, 1-D."""
    if input.ndim == 1:
        return diag_embed(input, diagonal, 0, 1)
    if input.ndim == 2:
        return globals()["diagonal"](input, diagonal, 0, 1)
    raise RuntimeError(f"diag(): Supports 1D or 2D tensors. Got {input.ndim}D (shape {tuple(input.shape)})")


@public(method=True, out=True)
@cast_inputs(FP32)
def trace(input):
    """The sum of the main diagonal of a 2-D tensor."""
    if input.ndim != 2:
        raise RuntimeError(f"trace: expected a matrix, but got tensor with dim {input.ndim}")
    return diagonal(input).sum()


# ---------------------------------------------------------------- in-place shape changes
def _reshape_inplace(self, fn, opname):
    """Make ``self`` the result of the view op ``fn`` (its data and, while recording, its node)."""
    if WRITE_WATCHERS:  # the tape may have saved self: allow_mutation_on_saved_tensors keeps its shape
        before_write(self)
    if not (grad_mode.state.enabled and self._requires_grad):
        self._data = fn(self.detach())._data
        return self
    _check_leaf(self, opname)
    before = Tensor._wrap(self._data)
    before._version_box, before.grad_fn, before._requires_grad = self._version_box, self.grad_fn, True
    res = fn(before)
    self._data, self.grad_fn = res._data, res.grad_fn
    return self


@public(method=True)
def unsqueeze_(self, dim):
    """``unsqueeze``, in place: ``self`` gains a dimension of size 1 at ``dim``."""
    return _reshape_inplace(self, lambda s: unsqueeze(s, dim), "unsqueeze_")


@public
def squeeze_(self, dim=None):
    """``squeeze``, in place: ``self`` loses its dimensions of size 1 (or ``dim``)."""
    return _reshape_inplace(self, lambda s: squeeze(s, dim), "squeeze_")


@public(method=True)
def t_(self):
    """``t``, in place: ``self`` becomes its transpose (at most 2-D)."""
    return _reshape_inplace(self, t, "t_")


@public(method=True)
def transpose_(self, dim0, dim1):
    """``transpose``, in place: ``self`` has ``dim0`` and ``dim1`` swapped."""
    return _reshape_inplace(self, lambda s: transpose(s, dim0, dim1), "transpose_")


@public(method=True)
def swapaxes_(self, axis0, axis1):
    """``transpose_`` under NumPy's name: ``self`` has ``axis0`` and ``axis1`` swapped."""
    return _reshape_inplace(self, lambda s: transpose(s, axis0, axis1), "swapaxes_")


@public(method=True)
def swapdims_(self, dim0, dim1):
    """``transpose_`` under NumPy's name: ``self`` has ``dim0`` and ``dim1`` swapped."""
    return _reshape_inplace(self, lambda s: transpose(s, dim0, dim1), "swapdims_")


@public(out=True)
def ravel(input):
    """``input`` flattened to 1-D (a view when possible)."""
    return reshape(input, -1)


@public(method=True)
def select(input, dim, index):
    """``input[..., index, ...]`` with ``index`` at ``dim`` (that dim removed)."""
    d = norm_dim(dim, input.ndim, "select")
    n = input.shape[d]
    if not -n <= index < n:
        raise IndexError(f"select(): index {index} out of range for tensor of size {tuple(input.shape)} at "
                         f"dimension {dim}")
    return input[(slice(None),) * d + (int(index),)]  # the operator: indexing sits above shape


# ---------------------------------------------------------------- splitting by sections (NumPy's names)
@public(method=True)
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
    else:  # each piece is input[i_k:i_k+1] along d, with Python's slicing (negative indices count from the end)
        idx = [builtins.int(i) for i in indices_or_sections]
        pieces = [slice(a, b).indices(size)[:2] for a, b in zip([0] + idx, idx + [None])]
        return tuple(narrow(input, d, a, builtins.max(b - a, 0)) for a, b in pieces)
    return tuple(narrow(input, d, builtins.int(a), builtins.max(builtins.int(b) - builtins.int(a), 0))
                 for a, b in zip(bounds[:-1], bounds[1:]))


@public
def hsplit(input, indices_or_sections):
    """``input`` split along dimension 1 (0 for 1-D) into sections or at indices."""
    return _nsplit(input, indices_or_sections, 1 if input.ndim > 1 else 0, "hsplit")


@public
def vsplit(input, indices_or_sections):
    """``input`` split along dimension 0 into sections or at indices."""
    return _nsplit(input, indices_or_sections, 0, "vsplit")


@public
def dsplit(input, indices_or_sections):
    """``input`` split along dimension 2 into sections or at indices."""
    return _nsplit(input, indices_or_sections, 2, "dsplit")


def _nsplit(input, sections, dim, name):
    need = {"hsplit": 1, "vsplit": 2, "dsplit": 3}[name]
    if input.ndim < need:
        raise RuntimeError(f"torch.{name} requires a tensor with at least {need} dimension, but got a tensor with "
                           f"{input.ndim} dimensions!")
    if isinstance(sections, str) or not isinstance(sections, (builtins.int, np.integer, list, tuple, Tensor)):
        raise TypeError(f"{name}(): indices_or_sections must be an int or a list of ints, got "
                        f"{type(sections).__name__}")
    if isinstance(sections, (builtins.int, np.integer)) and (sections <= 0 or input.shape[dim] % sections):
        raise RuntimeError(f"torch.{name} attempted to split along dimension {dim}, but the size of the dimension "
                           f"{input.shape[dim]} is not divisible by the split_size {sections}!")
    return tensor_split(input, sections, dim)


@public(out=True)
def cartesian_prod(*tensors):
    """The cartesian product of 1-D tensors, one row per combination."""
    if len(tensors) == 1:
        return tensors[0]
    grids = meshgrid(*tensors, indexing="ij")
    return stack([reshape(g, -1) for g in grids], 1)


@public(out=True)
def block_diag(*tensors):
    """A block-diagonal matrix of the (0-, 1- or 2-D) tensors."""
    mats = [reshape(t, (1, -1)) if t.ndim < 2 else t for t in tensors]
    if not mats:
        return Tensor._wrap(np.zeros((1, 0), dtype=_dtype.default_float()))
    dtype = mats[0].dtype
    for m in mats[1:]:
        dtype = _dtype.result_type(np.empty(0, dtype), np.empty(0, m.dtype))
    cols = builtins.sum(m.shape[1] for m in mats)
    rows, start = [], 0
    for m in mats:
        m = m.to(dtype)
        w = m.shape[1]
        rows.append(pad(m, (start, cols - start - w)))
        start += w
    return cat(rows, 0)


@public(method=True, out=True)
def diagflat(input, offset=0):
    """A 2-D tensor with the flattened ``input`` on its ``offset``-th diagonal."""
    return diag(reshape(input, -1), offset)


@public(method=True)
def split_with_sizes(input, split_sizes, dim=0):
    """Views of ``input`` along ``dim`` of the given sizes (``split`` with a list)."""
    return split(input, list(split_sizes), dim)


@public(method=True)
def unsafe_split(input, split_size, dim=0):
    """``split``: PyTorch's form that skips its view bookkeeping; the same views here."""
    return split(input, split_size, dim)


@public(method=True)
def unsafe_split_with_sizes(input, split_sizes, dim=0):
    """``split_with_sizes`` (see ``unsafe_split``)."""
    return split(input, list(split_sizes), dim)


@public(method=True)
def unsafe_chunk(input, chunks, dim=0):
    """``chunk`` (see ``unsafe_split``)."""
    return chunk(input, chunks, dim)


@public(method=True, out=True)
def narrow_copy(input, dim, start, length):
    """``narrow``, as a new tensor rather than a view."""
    return clone(narrow(input, dim, start, length))


@public(method=True)
def adjoint(input):
    """The last two dims swapped (the conjugate transpose of a batch of real matrices), a view."""
    if input.ndim < 2:
        raise RuntimeError(f"adjoint: tensor.adjoint() is only supported on matrices or batches of matrices. Got "
                           f"{input.ndim}-D tensor.")
    return transpose(input, -2, -1)


def _resize_check(self, size, opname):
    if self._requires_grad:
        raise RuntimeError(f"{opname}: cannot resize variables that require grad")
    size = tuple(size[0]) if len(size) == 1 and isinstance(size[0], (tuple, list)) else tuple(size)
    if not builtins.all(isinstance(n, (int, np.integer)) and n >= 0 for n in size):
        raise RuntimeError(f"{opname}: sizes must be non-negative integers, got {size}")
    return size


@public(method=True)
def resize_(self, *size, memory_format=None):
    """Give ``self`` the shape ``size`` in place, keeping its first elements in C order: extra
    elements are zeros (PyTorch leaves them uninitialised), surplus ones are dropped. Refused on
    tensors that require grad, as in PyTorch."""
    size = _resize_check(self, size, "resize_")
    if WRITE_WATCHERS:
        before_write(self)
    n = int(np.prod(size, dtype=np.int64))
    flat = self._data.reshape(-1)
    if n == flat.size:
        self._data = self._data.reshape(size)  # a view of the same memory when it can be
    else:
        new = np.zeros(n, self._data.dtype)
        new[:builtins.min(n, flat.size)] = flat[:n]
        self._data = new.reshape(size)
    self._bump_version()
    return self


def set_memory(self, source=None, storage_offset=None, size=None, stride=None):
    """``Tensor.set_``: ``self`` made a view of other memory, in place (see its docstring)."""
    if grad_mode.state.enabled and self._requires_grad:
        raise RuntimeError("set_: a leaf Variable that requires grad is being used in an in-place operation."
                           if self.grad_fn is None else
                           "set_: a tensor that requires grad can't be given other memory while grad mode records; "
                           "wrap the call in `with tapegrad.no_grad():`")
    if storage_offset is not None and size is None:
        raise TypeError("set_(): storage_offset needs size (set_(source, storage_offset, size, stride=None))")
    dtype = self._data.dtype
    if source is None:
        data = np.empty((0,), dtype)
    elif isinstance(source, Tensor) and size is None:
        if source._data.dtype != dtype:
            raise RuntimeError(f"set_: could not set a tensor of type {_dtype.name(dtype)} to a tensor of type "
                               f"{_dtype.name(source._data.dtype)}")
        data = source._data.view()
    else:
        if isinstance(source, Tensor):
            if source._data.dtype != dtype:
                raise RuntimeError(f"set_: could not set a tensor of type {_dtype.name(dtype)} to a tensor of type "
                                   f"{_dtype.name(source._data.dtype)}")
            source = source.untyped_storage()
        if isinstance(source, _storage.TypedStorage):
            if source.dtype != dtype:
                raise RuntimeError(f"set_: expected a storage of type {_dtype.name(dtype)} or an UntypedStorage, "
                                   f"but got one of type {_dtype.name(source.dtype)}")
            source = source.untyped()
        if not isinstance(source, _storage.UntypedStorage):
            raise TypeError(f"set_(): expected a Tensor, a storage or nothing, got {type(source).__name__}")
        data = _on_storage(source, dtype, storage_offset, size, stride)
    if WRITE_WATCHERS:
        before_write(self)
    self._data = data
    self._base = None  # a view of the storage now, not of the tensor it viewed
    self._bump_version()
    return self


def _on_storage(untyped, dtype, storage_offset, size, stride):
    """The array of ``size`` and ``stride`` (in elements) at ``storage_offset`` of ``untyped``."""
    isz = dtype.itemsize
    offset = 0 if storage_offset is None else int(storage_offset)
    size = (untyped.nbytes() // isz,) if size is None else tuple(int(n) for n in size)
    if offset < 0:
        raise RuntimeError(f"set_: invalid storage offset {offset}")
    if builtins.any(n < 0 for n in size):
        raise RuntimeError(f"set_: sizes must be non-negative, got {list(size)}")
    if stride is None:
        stride, step = [], 1
        for n in reversed(size):
            stride.insert(0, step)
            step *= builtins.max(n, 1)
    stride = tuple(int(s) for s in stride)
    if len(stride) != len(size):
        raise RuntimeError(f"set_: mismatch in length of strides and shape ({len(stride)} and {len(size)})")
    if builtins.any(s < 0 for s in stride):
        raise RuntimeError(f"set_: strides must be non-negative, got {list(stride)}")
    needed = 0 if 0 in size else offset + builtins.sum((n - 1) * s for n, s in zip(size, stride)) + 1
    if needed * isz > untyped.nbytes():
        raise RuntimeError(f"set_: sizes {list(size)}, strides {list(stride)}, storage offset {offset}, and itemsize "
                           f"{isz} requiring a storage size of {needed * isz} are out of bounds for storage of size "
                           f"{untyped.nbytes()} (tapegrad's storages do not grow)")
    return np.ndarray(size, dtype, buffer=untyped._array, offset=offset * isz if needed else 0,
                      strides=tuple(s * isz for s in stride))


def is_set_to(self, other) -> bool:
    """``Tensor.is_set_to``: the same memory, offset, shape and strides."""
    a, b = self._data, other._data
    return (a.__array_interface__["data"][0] == b.__array_interface__["data"][0] and a.shape == b.shape
            and a.strides == b.strides and a.dtype == b.dtype
            and self.untyped_storage().data_ptr() == other.untyped_storage().data_ptr())


@public(method=True)
def resize(input, *sizes):
    """The deprecated out-of-place ``resize``: ``input``'s elements in the shape ``sizes``, which
    must hold as many elements (a differentiable reshape, as PyTorch's)."""
    size = tuple(sizes[0]) if len(sizes) == 1 and isinstance(sizes[0], (tuple, list)) else tuple(sizes)
    if int(np.prod(size, dtype=np.int64)) != input.numel():
        raise RuntimeError(f"resize: requested resize to {size} ({int(np.prod(size, dtype=np.int64))} elements) "
                           f"in a tensor of size {tuple(input.shape)} ({input.numel()} elements)")
    return reshape(input, size)


@public(method=True)
def resize_as_(self, the_template, *, memory_format=None):
    """``resize_`` to ``the_template``'s shape."""
    return resize_(self, tuple(the_template.shape))


@public(method=True)
def resize_as(input, tensor):
    """``resize`` to ``tensor``'s shape (the same number of elements)."""
    return resize(input, tuple(tensor.shape))
