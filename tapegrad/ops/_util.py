"""Small helpers shared by the op families: argument coercion, dims, constants."""
from __future__ import annotations

import functools
import numbers
import operator
import reprlib

import numpy as np

from .. import _C, _dtype
Tensor = None  # the Tensor class, bound by tensor.py (ops.bind_tensor): the ops sit below it


_BITS = {2: np.int16, 4: np.int32, 8: np.int64}


def blend(mask, a, b=None):
    """``np.where(mask, a, b)`` (``b`` None: 0), bit for bit (NaN, inf and -0.0 included), as a
    select without branches: numpy's where branches per element and takes 13 ns an element on a
    mask as unpredictable as a ReLU's (7 ms for a ResNet activation). One native threaded pass
    (``_C.select``) where ``mask`` is a C-contiguous bool array broadcast only over leading dims
    (a causal mask over a batch of heads) and ``a``, ``b`` are of one plain dtype, each a single
    element or C-contiguous of the result's shape; a numpy bitwise blend for other float arrays
    of the mask's shape; np.where for the rest."""
    if b is None:
        b = _ZEROS.get(a.dtype)
        if b is None:
            b = _zero(a.dtype)
    # (each attribute read below costs 20-100 ns, about a PyTorch where in all: each read once)
    if type(mask) is np.ndarray and type(a) is np.ndarray and type(b) is np.ndarray:
        da = a.dtype
        if mask.dtype.kind == "b" and (da is b.dtype or da == b.dtype) and da.kind in "fiubc" and mask.flags.c_contiguous:
            na, nb = a.size, b.size
            shape = a.shape if na != 1 else b.shape if nb != 1 else mask.shape
            n = len(shape)
        else:
            n = -1
        if (n >= 0 and mask.ndim <= n and a.ndim <= n and b.ndim <= n and (na == 1 or a.flags.c_contiguous)
                and (nb == 1 or b.flags.c_contiguous)):
            try:
                return _C.select(mask, a, b, shape)
            except ValueError:  # operands broadcast otherwise: numpy's turn
                pass
    t = _BITS.get(a.dtype.itemsize) if isinstance(a, np.ndarray) and a.dtype.kind == "f" else None
    if (t is None or not isinstance(mask, np.ndarray) or mask.dtype != np.bool_ or a.shape != mask.shape
            or not isinstance(b, np.ndarray) or b.dtype != a.dtype or b.shape != a.shape):
        return np.where(mask, a, b)
    m = mask.view(np.uint8).astype(t)  # 0 / 1
    np.negative(m, out=m)  # 0 / all bits set
    rest = np.bitwise_and(np.invert(m), b.view(t))
    np.bitwise_and(m, a.view(t), out=m)
    np.bitwise_or(m, rest, out=m)
    return m.view(a.dtype)


_ZEROS: dict = {}  # dtype -> a read-only 0-d zero: blend's default b


def _zero(dtype):
    z = np.zeros((), dtype)
    z.flags.writeable = False
    _ZEROS[dtype] = z
    return z


# ---------------------------------------------------------------- failed allocations
_ARGS = reprlib.Repr()
_ARGS.maxlevel, _ARGS.maxtuple, _ARGS.maxlist, _ARGS.maxother, _ARGS.maxstring = 2, 8, 8, 40, 40


def too_big(e: ValueError) -> bool:
    """Whether ``e`` is numpy's refusal of a size past its index range (no allocation was tried)."""
    msg = str(e)
    return "array is too big" in msg or "Maximum allowed" in msg


def allocation_error(opname: str, e: BaseException, args=None, kwargs=None):
    """The exception for numpy's failed allocation ``e`` inside ``opname``, or None if ``e`` is not
    one. A MemoryError stays one, prefixed with the op (numpy's words already say the bytes, shape
    and dtype); a size past numpy's index range (a ValueError that names neither the op nor the
    size) becomes a RuntimeError naming the op and the arguments it was called with. An error
    some inner op already named (``zeros: can't allocate ...``) is not one of numpy's: None."""
    if isinstance(e, MemoryError):
        msg = str(e)
        if msg and not msg.startswith("Unable to allocate"):
            return None
        return MemoryError(f"{opname}: {msg}" if msg else f"{opname}: out of memory")
    if isinstance(e, ValueError) and too_big(e) and not str(e).startswith(f"{opname}:"):
        call = ""
        if args is not None:
            parts = [_ARGS.repr(a) for a in args] + [f"{k}={_ARGS.repr(v)}" for k, v in (kwargs or {}).items()]
            call = f" ({opname}({', '.join(parts)}))"
        return RuntimeError(f"{opname}: the tensor asked for is too large to allocate{call}: numpy says: {e}")
    return None


def names_allocations(opname: str):
    """Decorator for a factory that allocates through numpy: a failed allocation names the op
    (``allocation_error``) instead of surfacing numpy's bare MemoryError or ValueError.

    >>> @names_allocations("randn")
    ... def randn(*size): ...
    """
    def decorate(fn):
        @functools.wraps(fn)
        def named(*args, **kwargs):
            try:
                return fn(*args, **kwargs)
            except (MemoryError, ValueError) as e:
                err = allocation_error(opname, e, args, kwargs)
                if err is None:
                    raise
                raise err from None
        return named
    return decorate


def copy_into(dst: np.ndarray, src: np.ndarray) -> None:
    """``dst[...] = src`` (src broadcast onto dst, same dtype): on the kernel threads in tiles where
    it is large and plain (csrc's _copy_into), else numpy's one-thread copy, overlap handled."""
    if not _C._copy_into(dst, src):
        np.copyto(dst, src)


def const(value, dtype) -> Tensor:
    """A constant tensor (never requires grad)."""
    return Tensor._wrap(np.asarray(value, dtype=dtype))


# Python scalars that never change a float tensor's dtype (bool is not one: type() is exact).
_WEAK_NUMBERS = (float, int)


_SCALARS: dict = {}  # (number, dtype) -> read-only 0-d constant tensor
_MAX_SCALARS = 256


def scalar_tensor(value, dtype) -> Tensor:
    """``value`` (a Python float or int) as a 0-d constant of ``dtype``: one shared tensor per
    value and dtype, so ``y * 1.0001`` in a loop does not build a tensor and an array each time.
    The array is read-only (an in-place op on it raises) and the tensor never requires grad.
    Zeros (0.0 and -0.0 are equal keys of different bits) and NaN (never equal to itself) are
    built fresh; the cache is emptied when full."""
    key = (value, dtype)
    t = _SCALARS.get(key)
    if t is not None:
        return t
    arr = np.array(value, dtype)
    if not value or value != value:
        return Tensor._wrap(arr)
    arr.flags.writeable = False
    if len(_SCALARS) >= _MAX_SCALARS:
        _SCALARS.clear()
    t = _SCALARS[key] = Tensor._wrap(arr)
    return t


def pair(a, b, opname: str, opmath: bool = False):
    """Two operands as tensors of one dtype, promoted as PyTorch promotes (scalars are weak).

    ``opmath``: keep a Python scalar beside a float16/bfloat16 tensor in float32, as PyTorch's
    ``mul``/``div`` kernels do (``bf16 * 1.7`` multiplies by 1.7f, not by 1.7 rounded to bfloat16;
    its ``add``/``sub`` round the scalar to the tensor's dtype first, and so do these)."""
    if isinstance(a, Tensor):
        if isinstance(b, Tensor):
            da, db = a._data.dtype, b._data.dtype
            if da != db:
                d = _dtype.result_type(a._data, b._data)
                a = a if da == d else a.to(d)
                b = b if db == d else b.to(d)
            return a, b
        d = a._data.dtype
        if d.kind == "f" and d.itemsize >= 4 and type(b) in _WEAK_NUMBERS:  # `y * 1.0001`: no promotion
            return a, scalar_tensor(b, d)
        d = _coerce_scalar(a, b, opname)
        return (a if a._data.dtype == d else a.to(d)), _scalar_operand(b, scalar_dtype(d, opmath), opname)
    if isinstance(b, Tensor):
        d = b._data.dtype
        if d.kind == "f" and d.itemsize >= 4 and type(a) in _WEAK_NUMBERS:
            return scalar_tensor(a, d), b
        d = _coerce_scalar(b, a, opname)
        return _scalar_operand(a, scalar_dtype(d, opmath), opname), (b if b._data.dtype == d else b.to(d))
    if isinstance(a, numbers.Number) and isinstance(b, numbers.Number):  # torch.add(1.0, 2.0): the first as a 0-d tensor
        return pair(Tensor._wrap(np.asarray(a, _dtype._scalar_dtype(a))), b, opname, opmath)
    raise TypeError(f"{opname}: expected at least one tensor operand, got {type(a).__name__} and {type(b).__name__}")


def _scalar_operand(value, dtype, opname: str) -> Tensor:
    """A number beside a tensor, in the tensor's (promoted) dtype. A Python int out of an integer
    dtype's range raises: PyTorch wraps it silently (``uint8_tensor + (-1)`` adds 255, and
    ``int8_tensor == 257`` matches 1); the comparisons answer exactly instead (comparison.py)."""
    try:
        return const(value, dtype)
    except OverflowError:
        info = np.iinfo(dtype)
        raise RuntimeError(f"{opname}: the number {value} is out of the range of the tensor's dtype "
                           f"{_dtype.name(dtype)} ([{info.min}, {info.max}]); PyTorch would wrap it around "
                           f"silently. Convert the tensor to a wider dtype first (e.g. .long())") from None


def scalar_dtype(d, opmath: bool = True):
    """The dtype of a number beside a ``d`` tensor: float32 for 16-bit ``d`` with ``opmath``."""
    return _dtype.float32 if opmath and _dtype.is_16bit_float(d) else d


def integer_division_checked(a: Tensor, b: Tensor, opname: str):
    """Integer division refuses a zero divisor (numpy gives 0 and a warning) where the
    result has elements, and shapes that don't broadcast, in PyTorch's words."""
    try:
        shape = np.broadcast_shapes(a._data.shape, b._data.shape)
    except ValueError:
        raise RuntimeError(f"{opname}: the size of tensor a {tuple(a.shape)} must match the size of tensor b "
                           f"{tuple(b.shape)} at a non-singleton dimension") from None
    if (b._data == 0).any() and np.prod(shape, dtype=np.int64):
        raise RuntimeError(f"{opname}: ZeroDivisionError (integer division by zero, divisor shape {tuple(b.shape)})")


def _coerce_scalar(t: Tensor, s, opname):
    if isinstance(s, np.ndarray):
        raise TypeError(f"{opname}: wrap numpy arrays with tapegrad.tensor() or tapegrad.from_numpy() first")
    if not isinstance(s, (numbers.Number, np.generic)):
        raise TypeError(f"{opname}: unsupported operand of type {type(s).__name__}")
    return _dtype.result_type(t._data, s)


def as_tensor(x, opname: str) -> Tensor:
    if isinstance(x, Tensor):
        return x
    if isinstance(x, (numbers.Number, np.generic)):
        d = _dtype.default_float() if isinstance(x, float) else None
        return Tensor._wrap(np.asarray(x, dtype=d) if d is not None else _default_array(x))
    raise TypeError(f"{opname}: expected a Tensor, got {type(x).__name__}")


def _default_array(x):
    a = np.asarray(x)
    if a.dtype.kind == "i":
        return a.astype(np.int64)
    if _dtype.kind_of(a.dtype) == "f":
        return a.astype(_dtype.default_float())
    return a


def broadcast_view(x: np.ndarray, shape: tuple) -> np.ndarray:
    """``np.broadcast_to(x, shape)``: a read-only view with zero strides on the broadcast dims.
    numpy's takes ~1.9 us in Python argument handling; the ndarray constructor takes ~0.5 (this
    runs in every sum/mean backward and every ``expand``). Non-contiguous or non-buffer inputs and
    shapes that do not broadcast go to numpy's, whose error names the shapes."""
    v = _C._expand_view(x, shape, False)  # in C where it can: ~0.15 us
    if v is not None:
        return v
    n, k = len(shape), x.ndim
    strides = None
    if k == 0:  # a gradient reduced to a scalar, the common case
        strides = (0,) * n
    elif n >= k and x.flags.c_contiguous:
        strides = [0] * (n - k)
        for s, t, st in zip(x.shape, shape[n - k:], x.strides):
            if s == t:
                strides.append(st)
            elif s == 1 and t >= 0:
                strides.append(0)
            else:
                strides = None
                break
    if strides is not None:
        try:
            v = np.ndarray(shape, x.dtype, x, 0, tuple(strides))
        except (TypeError, ValueError, BufferError):  # a negative size, or a dtype buffers cannot carry
            return np.broadcast_to(x, shape)
        v.flags.writeable = False
        return v
    return np.broadcast_to(x, shape)


def int_arg(value, name: str, opname: str) -> int:
    """An int argument as PyTorch's parser takes it: an int, a numpy integer or anything with
    ``__index__`` (a 0-d integer tensor), never a bool or a float."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_)):
        return int(value)
    if not isinstance(value, (bool, np.bool_, float, np.floating)):
        try:
            return operator.index(value)
        except TypeError:
            pass
    raise TypeError(f"{opname}: argument '{name}' must be an int, got {type(value).__name__}")


def norm_dim(dim, ndim: int, opname: str) -> int:
    """A dim in [-ndim, ndim) made non-negative (0-d tensors accept 0 and -1, as in PyTorch)."""
    if dim.__class__ is int and -ndim <= dim < ndim:  # the common case, before the type checks
        return dim % ndim
    n = max(ndim, 1)
    if not isinstance(dim, (int, np.integer)) or isinstance(dim, bool):
        dim = int_arg(dim, "dim", opname)
    if not -n <= dim < n:
        raise IndexError(f"{opname}: dim {dim} is out of range for a tensor of {ndim} dimension(s) "
                         f"(expected to be in range [{-n}, {n - 1}])")
    return int(dim) % n


# (0, ..., n - 1) for every n numpy allows: the dims of a full reduction, looked up, not built
# (every loss.sum() asks for them)
ALL_DIMS = tuple(tuple(range(n)) for n in range(65))


def norm_dims(dim, ndim: int, opname: str) -> tuple[int, ...]:
    """``dim`` as a sorted tuple of non-negative dims; None (or ()) means all dims."""
    if type(dim) is int and -ndim <= dim < ndim:  # one dim in range, the common case (x.sum(-1)) first
        return (dim % ndim,)
    if dim is None or (isinstance(dim, (tuple, list)) and len(dim) == 0):
        return ALL_DIMS[ndim]
    if isinstance(dim, (tuple, list)):
        dims = tuple(norm_dim(d, ndim, opname) for d in dim)
        if len(set(dims)) != len(dims):
            raise RuntimeError(f"{opname}: dim {tuple(dim)} appears multiple times in the list of dims")
        return tuple(sorted(dims)) if ndim else ()
    d = norm_dim(dim, ndim, opname)  # checked on 0-d tensors too (only 0 and -1 are valid there)
    return (d,) if ndim else ()


def sizes_or_keyword(args, value, name, opname):
    """A varargs size or dims argument that PyTorch also takes by keyword (``x.permute(dims=(1, 0))``)."""
    if value is None:
        return args
    if args:
        raise TypeError(f"{opname}() got multiple values for argument '{name}'")
    return (value,)
