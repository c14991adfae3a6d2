"""Tensor creation with PyTorch's names and dtype defaults (floats float32, ints int64), and
random sampling: the new tensors (``rand``, ``randn``, ...) and the in-place fills (``uniform_``,
``normal_``, ...).
"""
from __future__ import annotations

import builtins
import math
import numbers

import numpy as np

from .. import _C, _dtype, random as _random
from .._tape import grad_mode
from .._tape.registry import _round16
from ..device import check_cpu as _check_cpu, check_layout, check_memory_format
from ._util import int_arg, names_allocations, sizes_or_keyword
from .inplace import WRITE_WATCHERS, before_write, inplace
from .pointwise import _replace, mul
from .shape import stack
from .surface import _write_out, public

Tensor = None  # the Tensor class, bound by tensor.py (ops.bind_tensor): the ops sit below it


def _check_device(device):
    if device is not None:
        _check_cpu(device)


def _size(size, opname="tensor"):
    if len(size) == 1 and isinstance(size[0], (tuple, list)):
        size = tuple(size[0])
    for s in size:  # plain ints, the common case, first (numbers.Integral is an ABC check per item)
        if s.__class__ is not int:
            break
    else:
        size = tuple(size)
        if size and (builtins.min(size) < 0 or builtins.max(size) > _HUGE_DIM):
            _check_sizes(size, opname)
        return size
    for s in size:  # int(2.5) would silently make 2 elements, int(nan) raise numpy's message
        if not isinstance(s, numbers.Integral) and not (isinstance(s, Tensor) and s.ndim == 0 and
                                                        _dtype.kind_of(s.dtype) in "iu"):
            raise TypeError(f"{opname}(): argument 'size' must be a tuple of ints, but found element of type "
                            f"{type(s).__name__} ({s!r}) in {size!r}")
    size = tuple(int(s) for s in size)
    _check_sizes(size, opname)
    return size


_HUGE_DIM = 2 ** 31 - 1  # a dimension past this may make a number of elements no index can count


def _check_sizes(size, opname):
    """PyTorch's refusals of a shape: a negative dimension, and a number of elements past int64
    (numpy's own words would name neither the op nor the shape)."""
    if any(s < 0 for s in size):
        raise RuntimeError(f"{opname}: Trying to create tensor with negative dimension: {list(size)}")
    if math.prod(size) > 2 ** 63 - 1:
        raise RuntimeError(f"{opname}: Storage size calculation overflowed with sizes={list(size)}")


def _alloc(make, shape, dtype, opname):
    """``make(shape, dtype)`` (np.zeros, np.empty, ...), with a failed allocation naming the op:
    numpy says MemoryError for a size it tried, ValueError for one past its index range."""
    try:
        return make(shape, dtype)
    except MemoryError:
        nbytes = math.prod(shape) * np.dtype(dtype).itemsize
        raise MemoryError(f"{opname}: can't allocate {nbytes} bytes ({nbytes / 2 ** 30:.3g} GiB) for a tensor of "
                          f"shape {tuple(shape)} and dtype {_dtype.name(np.dtype(dtype))}") from None
    except ValueError as e:
        if "too big" not in str(e) and "Maximum allowed" not in str(e):
            raise
        raise RuntimeError(f"{opname}: a tensor of shape {tuple(shape)} and dtype {_dtype.name(np.dtype(dtype))} "
                           f"is too large to allocate ({e})") from None


def _threaded(make, value):
    """``make`` (np.zeros, np.ones) with a large float array filled on the kernel threads where
    that helps (csrc/elementwise.h's parallel_full: 138 -> about 70 us for 1000x1000 float32 on two)."""
    def fill(shape, dtype):
        out = _C._full(shape, dtype, value)
        return make(shape, dtype) if out is None else out
    return fill


_zeros, _ones = _threaded(np.zeros, 0.0), _threaded(np.ones, 1.0)


def _finish(arr, requires_grad):
    t = Tensor._wrap(arr)
    if requires_grad:
        t.requires_grad_(True)
    return t


# PyTorch's factories (zeros, ones, empty, full, rand, randn, eye, arange, linspace, ...) also take
# the keywords size= (for the *size ones), out=, layout= and pin_memory=; these helpers read them.
def _sized(size, size_kw, opname):
    """The shape from ``*size`` or the keyword ``size=`` (not both, as in PyTorch)."""
    if size_kw is not None:
        if size:
            raise TypeError(f"{opname}() got multiple values for argument 'size': {size} and size={size_kw!r}")
        size = (size_kw,)
    return _size(size, opname)


def _made(arr, requires_grad, out, opname, layout=None, pin_memory=False):
    """``arr`` as the factory's result, or written into ``out`` (resized, as PyTorch does)."""
    check_layout(layout, opname)
    _check_pin(pin_memory, opname)
    if out is None:
        return _finish(arr, requires_grad)
    if requires_grad:
        raise RuntimeError(f"{opname}(): functions with out=... arguments don't support automatic differentiation")
    return _write_out(out, Tensor._wrap(arr), opname)


def _check_pin(pin_memory, opname):
    if pin_memory:
        raise RuntimeError(f"{opname}: pin_memory=True needs an accelerator, and tapegrad runs on the CPU only")


def _out_dt(dtype, out, default=None):
    """The dtype a factory makes: ``dtype``, else ``out``'s, else ``default`` (the default float)."""
    return _dt(dtype, _dtype.to_dtype(out.dtype) if out is not None else default)


def _infer(data, dtype=None):
    """The array for ``data``, with PyTorch's defaults: Python floats -> float32, ints -> int64.

    With ``dtype`` given, Python numbers convert to it directly (no float32 rounding on the way).
    """
    if isinstance(data, Tensor):
        return data._data.copy()
    if isinstance(data, np.ndarray):
        # a big-endian array (from a file written elsewhere) becomes the same values in this
        # machine's byte order: the kernels compute in native order only
        return data.astype(data.dtype.newbyteorder("=")) if not data.dtype.isnative else data.copy()
    typed_float = None  # the widest float dtype carried by the data's own items (numpy scalars, tensors)
    if isinstance(data, (list, tuple)):
        types = _leaf_types(data)
        has_tensor = builtins.any(issubclass(t, Tensor) for t in types)
        if has_tensor or np.ndarray in types:  # (rare) arrays and tensors among the items: their dtypes
            typed = [x._data.dtype if isinstance(x, Tensor) else x.dtype for x in _flat(data)
                     if isinstance(x, (Tensor, np.ndarray))]
        else:
            typed = []
        typed += [np.dtype(t) for t in types if issubclass(t, np.floating)]
        typed = [d for d in typed if _dtype.kind_of(d) == "f"]
        if typed:
            typed_float = builtins.max(typed, key=lambda d: d.itemsize)
            if float in types and typed_float.itemsize < _dtype.default_float().itemsize:
                typed_float = _dtype.default_float()  # a Python float counts as the default dtype (PyTorch's)
        if has_tensor:
            data = _to_nested(data)
    try:
        arr = np.array(data)
    except ValueError as e:  # ragged nesting
        raise ValueError(f"tensor: can't build a tensor from this data: {e}") from None
    if dtype is not None and _dtype.kind_of(arr.dtype) in "biufc":
        d = _dtype.to_dtype(dtype)
        if d == _dtype.uint64 and arr.dtype.kind == "f" and not isinstance(data, np.ndarray):
            try:  # Python ints past int64's range: numpy read them as floats, uint64 holds them exactly
                return np.array(data, dtype=d)
            except (OverflowError, TypeError, ValueError):
                pass
        if d.kind in "iu" and arr.dtype.kind in "iuf" and arr.size:
            _check_integer_range(arr, d)
        return arr.astype(d)
    if _dtype.kind_of(arr.dtype) == "f":
        if not isinstance(data, np.generic):  # [np.float64(1), 2] is float64, as in PyTorch; [1.5, 2] the default
            arr = arr.astype(typed_float if typed_float is not None else _dtype.default_float())
    elif arr.dtype.kind in "iu" and not isinstance(data, np.generic):
        if arr.dtype == np.uint64 and arr.size and (arr > np.iinfo(np.int64).max).any():  # Python ints >= 2**63
            raise RuntimeError(f"tensor: value {arr.max()} cannot be converted to type tapegrad.int64 without "
                               f"overflow")
        arr = arr.astype(np.int64)
    elif arr.dtype.kind == "c":
        if not isinstance(data, np.generic):  # Python complex numbers: the default dtype's complex (complex64)
            arr = arr.astype(_dtype.complex_of(_dtype.default_float()))
    elif _dtype.kind_of(arr.dtype) not in "biuf":
        raise TypeError(f"tensor: can't convert data of type {arr.dtype} (from {type(data).__name__})")
    return arr


def _check_integer_range(arr, d):
    """Numbers written as Python data into an integer dtype must fit it, as PyTorch checks ("value
    cannot be converted to type int8 without overflow"); numpy's astype wraps (300 -> 44) and
    makes NaN the smallest integer. PyTorch lets an unsigned dtype take a negative int down to
    -max (two's complement: -1 is 255 in uint8), and so does this; a float must lie in the range."""
    info = np.iinfo(d)
    lo = -int(info.max) if d.kind == "u" else int(info.min)
    if arr.dtype.kind == "f":  # floats must lie in the dtype's own range (none negative for unsigned), as PyTorch's
        bad = ~np.isfinite(arr) | (arr < (0 if d.kind == "u" else lo)) | (arr > float(info.max))
    else:
        bad = (arr < lo) | (arr > info.max) if arr.dtype.kind == "i" or lo >= 0 else arr > info.max
    if bad.any():
        raise RuntimeError(f"tensor: value {arr[bad].flat[0]} cannot be converted to type {_dtype.name(d)} "
                           f"without overflow")


def _leaf_types(data) -> set:
    """The types of the non-sequence items of nested lists / tuples, a row at a time in C
    (``set(map(type, row))``): a Python walk over 1e5 floats took 18 ms, this 2."""
    types, stack = set(), [data]
    while stack:
        row = stack.pop()
        ts = set(map(type, row))
        if list in ts or tuple in ts:
            stack.extend(x for x in row if type(x) is list or type(x) is tuple)
            ts.discard(list)
            ts.discard(tuple)
        types |= ts
    return types


def _flat(data):
    stack = [data]
    while stack:
        d = stack.pop()
        if isinstance(d, (list, tuple)):
            stack.extend(d)
        else:
            yield d


def _to_nested(data):
    if isinstance(data, Tensor):
        return data._data
    if isinstance(data, (list, tuple)):
        return [_to_nested(d) for d in data]
    return data


@public
@names_allocations("tensor")
def tensor(data, dtype=None, device=None, requires_grad=False, pin_memory=False) -> Tensor:
    """A new tensor holding a copy of ``data`` (nested lists, numbers, numpy arrays, tensors)."""
    _check_device(device)
    _check_pin(pin_memory, "tensor")
    arr = _infer(data, dtype)
    if dtype is not None:
        arr = arr.astype(_dtype.to_dtype(dtype))
    return _finish(arr, requires_grad)


@public
def as_tensor(data, dtype=None, device=None) -> Tensor:
    """Like ``tensor``, but shares memory with a numpy array of the right dtype."""
    _check_device(device)
    if isinstance(data, Tensor):
        return data if dtype is None else data.to(dtype)
    if isinstance(data, np.ndarray) and data.dtype.isnative and (dtype is None or data.dtype == _dtype.to_dtype(dtype)):
        return Tensor._wrap(data)
    return tensor(data, dtype=dtype)


@public
def from_numpy(array: np.ndarray) -> Tensor:
    """A tensor sharing memory with ``array``."""
    if not isinstance(array, np.ndarray):
        raise TypeError(f"from_numpy: expected np.ndarray (got {type(array).__name__})")
    if _dtype.kind_of(array.dtype) not in "biufc":
        raise TypeError(f"from_numpy: can't convert np.ndarray of type {array.dtype}")
    if not array.dtype.isnative:
        raise ValueError(f"from_numpy: the array's byte order ({array.dtype.str}) is not this machine's, and the "
                         f"kernels compute in native order only; tapegrad.tensor(array) copies it into native order "
                         f"(as does array.astype(array.dtype.newbyteorder('=')))")
    return Tensor._wrap(array)


def _dt(dtype, default=None):
    """The numpy dtype to make: ``dtype``, else ``default`` (a tensor's dtype, say), else the default
    float. Always numpy's: numpy takes a tapegrad.dtype too, but converting one costs it ~0.9 us."""
    if dtype is not None:
        return _dtype.to_dtype(dtype)
    return _dtype.to_dtype(default) if default is not None else _dtype.default_float()


@public
def zeros(*shape, size=None, dtype=None, device=None, requires_grad=False, out=None, layout=None,
          pin_memory=False) -> Tensor:
    """A tensor of zeros of the given size."""
    _check_device(device)
    return _made(_alloc(_zeros, _sized(shape, size, "zeros"), _out_dt(dtype, out), "zeros"), requires_grad, out,
                 "zeros", layout, pin_memory)


@public
def ones(*shape, size=None, dtype=None, device=None, requires_grad=False, out=None, layout=None,
          pin_memory=False) -> Tensor:
    """A tensor of ones of the given size."""
    _check_device(device)
    return _made(_alloc(_ones, _sized(shape, size, "ones"), _out_dt(dtype, out), "ones"), requires_grad, out,
                 "ones", layout, pin_memory)


@public
def empty(*shape, size=None, dtype=None, device=None, requires_grad=False, out=None, layout=None, pin_memory=False,
          memory_format=None) -> Tensor:
    """A tensor of the given size (zero-filled: tapegrad never hands out uninitialised memory)."""
    _check_device(device)
    shape = _sized(shape, size, "empty")
    check_memory_format(memory_format, "empty", len(shape))
    return _made(_alloc(np.empty, shape, _out_dt(dtype, out), "empty"), requires_grad, out, "empty", layout,
                 pin_memory)


@public
def full(size, fill_value, *, dtype=None, device=None, requires_grad=False, out=None, layout=None,
         pin_memory=False) -> Tensor:
    """A tensor of ``size`` filled with ``fill_value``."""
    _check_device(device)
    if dtype is None and out is not None:
        dtype = out.dtype
    if dtype is None:
        dtype = (_dtype.bool_ if isinstance(fill_value, bool) else
                 _dtype.int64 if isinstance(fill_value, numbers.Integral) else
                 _dtype.complex_of(_dtype.default_float()) if isinstance(fill_value, numbers.Complex)
                 and not isinstance(fill_value, numbers.Real) else _dtype.default_float())
    return _made(_filled(_size((size,), "full"), fill_value, _dtype.to_dtype(dtype), "full"), requires_grad, out,
                 "full", layout, pin_memory)


def _filled(shape, value, d, opname):
    """``np.full`` with PyTorch's integer range check: an unsigned dtype takes negatives down to -max,
    wrapping (``full(2, -1, dtype=uint8)`` is 255), and anything beyond the range (or inf, NaN) raises."""
    if d.kind in "iu" and isinstance(value, numbers.Real) and not math.isfinite(value):
        raise RuntimeError(f"{opname}: value cannot be converted to type {_dtype.name(d)} without overflow: {value}")
    if d.kind in "iu" and isinstance(value, numbers.Integral) and not isinstance(value, bool):
        info = np.iinfo(d)
        lo = -builtins.int(info.max) if d.kind == "u" else builtins.int(info.min)
        if not lo <= value <= info.max:
            raise RuntimeError(f"{opname}: value cannot be converted to type {_dtype.name(d)} without overflow: {value}")
        value = np.array(value).astype(d)
    out = _alloc(np.empty, shape, d, opname)
    try:
        out.fill(value)
    except OverflowError:
        raise RuntimeError(f"{opname}: value cannot be converted to type {_dtype.name(d)} without overflow: "
                           f"{value}") from None
    return out


# The *_like functions take PyTorch's keywords: dtype, device, requires_grad, and layout /
# memory_format, which change nothing here (every tapegrad tensor is strided and contiguous).
@public
@names_allocations("zeros_like")
def zeros_like(input, dtype=None, device=None, requires_grad=False, *, layout=None, memory_format=None) -> Tensor:
    """Zeros with ``input``'s shape (and dtype unless given)."""
    _check_like(layout, memory_format, "zeros_like", input)
    _check_device(device)
    return _finish(_zeros(input.shape, _dt(dtype, input.dtype)), requires_grad)


@public
@names_allocations("ones_like")
def ones_like(input, dtype=None, device=None, requires_grad=False, *, layout=None, memory_format=None) -> Tensor:
    """Ones with ``input``'s shape (and dtype unless given)."""
    _check_like(layout, memory_format, "ones_like", input)
    _check_device(device)
    return _finish(_ones(input.shape, _dt(dtype, input.dtype)), requires_grad)


@public
@names_allocations("empty_like")
def empty_like(input, dtype=None, device=None, requires_grad=False, *, layout=None, memory_format=None) -> Tensor:
    """A tensor with ``input``'s shape (and dtype unless given), zero-filled."""
    _check_like(layout, memory_format, "empty_like", input)
    _check_device(device)
    return _finish(np.empty(input.shape, _dt(dtype, input.dtype)), requires_grad)


@public
@names_allocations("full_like")
def full_like(input, fill_value, dtype=None, device=None, requires_grad=False, *, layout=None,
              memory_format=None) -> Tensor:
    """``fill_value`` with ``input``'s shape (and dtype unless given)."""
    _check_like(layout, memory_format, "full_like", input)
    _check_device(device)
    return _finish(_filled(input.shape, fill_value, _dt(dtype, input.dtype), "full_like"), requires_grad)


_INT_FAST = 1 << 53  # arange's plain-int path: bounds whose arithmetic no dtype could round


@public
@names_allocations("arange")
def arange(start, end=None, step=1, *, dtype=None, device=None, requires_grad=False, out=None, layout=None,
           pin_memory=False) -> Tensor:
    """Like PyTorch: integer arguments give int64, any float argument gives the default float dtype."""
    _check_device(device)
    if end is None:
        start, end = 0, start
    if step == 0:
        raise RuntimeError("arange: step must be nonzero")
    if (dtype is None and out is None and start.__class__ is int and end.__class__ is int and step.__class__ is int
            and -_INT_FAST < start < _INT_FAST and -_INT_FAST < end < _INT_FAST and -_INT_FAST < step < _INT_FAST):
        # plain ints, the common case (arange(n)): int64 at once, without the dtype inference and the
        # float range's checks below (3.9 -> 1.0 us for arange(10), PyTorch 1.3)
        if (end - start) * step < 0:
            raise RuntimeError(f"arange: upper bound and lower bound inconsistent with step sign (start={start}, "
                               f"end={end}, step={step})")
        return _made(np.arange(start, end, step, dtype=np.int64), requires_grad, None, "arange", layout, pin_memory)
    args = (start, end, step)
    if dtype is None and out is not None:
        dtype = out.dtype
    if dtype is None:
        dtype = (_dtype.default_float() if any(isinstance(a, float) or isinstance(a, Tensor) and
                 _dtype.kind_of(a.dtype) == "f" for a in args) else _dtype.int64)
    args = tuple(a.item() if isinstance(a, Tensor) else a for a in args)
    if _dtype.to_dtype(dtype) == np.bool_:
        raise NotImplementedError("arange: not implemented for dtype tapegrad.bool")
    if not builtins.all(math.isfinite(a) for a in args):
        raise RuntimeError(f"arange: unsupported range: {args[0]} -> {args[1]} (step {args[2]})")
    if (args[1] - args[0]) * args[2] < 0:
        raise RuntimeError(f"arange: upper bound and lower bound inconsistent with step sign (start={args[0]}, "
                           f"end={args[1]}, step={args[2]})")
    if _dtype.kind_of(_dtype.to_dtype(dtype)) in "iu":
        # PyTorch steps from int(start) by int(step): arange(-1.7, 3.2, 1.9) is arange(-1, 3, 1), four
        # values, not the three of the float range cast afterwards. Its length is int64's integer
        # range's, or for the other integer dtypes ceil((end - start) / step) of the given numbers.
        ints = tuple(builtins.int(a) for a in args)
        if ints[2] == 0:
            raise ValueError(f"arange: step must be nonzero (step {step} is 0 in {_dtype.name(dtype)})")
        if _dtype.to_dtype(dtype) == np.int64:
            args = ints
        else:
            n = builtins.max(math.ceil((args[1] - args[0]) / args[2]), 0)
            out_dt = _dtype.to_dtype(dtype)
            return _made((ints[0] + np.arange(n, dtype=np.int64) * ints[2]).astype(out_dt), requires_grad, out,
                         "arange", layout, pin_memory)
    return _made(np.arange(*args).astype(_dtype.to_dtype(dtype)), requires_grad, out, "arange", layout, pin_memory)


@public
@names_allocations("linspace")
def linspace(start, end, steps, *, dtype=None, device=None, requires_grad=False, out=None, layout=None,
             pin_memory=False) -> Tensor:
    """``steps`` evenly spaced values from ``start`` to ``end`` inclusive (numbers or 0-d tensors)."""
    _check_device(device)
    start, end = _scalar_end(start, "linspace", "start"), _scalar_end(end, "linspace", "end")
    d = _spaced_dt(_out_dt(dtype, out), "linspace", steps)
    return _made(np.linspace(start, end, int(steps)).astype(d), requires_grad, out, "linspace", layout, pin_memory)


def _scalar_end(v, opname, which):
    """A linspace/logspace end as a Python number: a 0-d tensor's value, other tensors refused."""
    if isinstance(v, Tensor):
        if v.ndim:
            raise RuntimeError(f"{opname} only supports 0-dimensional start and end tensors, but got {which} of "
                               f"shape {tuple(v.shape)}")
        return v.item()
    return v


def _spaced_dt(dtype, opname, steps):
    if int(steps) < 0:
        raise RuntimeError(f"{opname}: number of steps must be non-negative, got {steps}")
    d = _dt(dtype)
    if d == np.bool_:  # PyTorch: '"linspace_cpu" not implemented for 'Bool''
        raise NotImplementedError(f"{opname}: not implemented for dtype tapegrad.bool")
    return d


@public
@names_allocations("eye")
def eye(n, m=None, *, dtype=None, device=None, requires_grad=False, out=None, layout=None, pin_memory=False) -> Tensor:
    """The ``n`` x ``m`` identity matrix (square by default)."""
    _check_device(device)
    for name, v in (("n", n), ("m", m)):
        if v is not None and v < 0:
            raise RuntimeError(f"eye: {name} must be greater or equal to 0, got {v}")
    return _made(np.eye(n, m, dtype=_out_dt(dtype, out)), requires_grad, out, "eye", layout, pin_memory)


def _float_dt(dtype, opname):
    d = _dt(dtype)
    if _dtype.kind_of(d) not in "fc":  # PyTorch: '"check_uniform_bounds" not implemented for 'Long''
        raise RuntimeError(f"{opname}: samples need a floating dtype, got {_dtype.name(d)}")
    return d


@public
@names_allocations("rand")
def rand(*shape, size=None, generator=None, dtype=None, device=None, requires_grad=False, out=None, layout=None,
          pin_memory=False) -> Tensor:
    """Uniform samples from [0, 1) of the given size."""
    _check_device(device)
    d = _float_dt(_out_dt(dtype, out), "rand")
    shape = _sized(shape, size, "rand")
    if d.kind == "c":  # PyTorch: each part uniform on [0, 1)
        parts = _random.rng(generator).random((2,) + shape, dtype=np.float64)
        return _made((parts[0] + 1j * parts[1]).astype(d), requires_grad, out, "rand", layout, pin_memory)
    return _made(_random.rng(generator).random(shape, dtype=np.float64).astype(d), requires_grad, out, "rand", layout,
                 pin_memory)


@public
@names_allocations("randn")
def randn(*shape, size=None, generator=None, dtype=None, device=None, requires_grad=False, out=None, layout=None,
          pin_memory=False) -> Tensor:
    """Standard normal samples of the given size."""
    _check_device(device)
    d = _float_dt(_out_dt(dtype, out), "randn")
    shape = _sized(shape, size, "randn")
    if d.kind == "c":  # PyTorch: E|z|^2 = 1, each part normal with variance 1/2
        parts = _random.rng(generator).standard_normal((2,) + shape) * np.sqrt(0.5)
        return _made((parts[0] + 1j * parts[1]).astype(d), requires_grad, out, "randn", layout, pin_memory)
    return _made(normal_samples(_random.rng(generator), shape, d), requires_grad, out, "randn", layout, pin_memory)


def normal_samples(rng, shape, dtype, mean=0.0, std=1.0):
    """An array of N(mean, std^2) samples of ``shape`` and float ``dtype`` from the numpy generator
    ``rng``: float32 / float64 (16-bit through float32) by Box-Muller on the kernel threads from
    the generator's raw words (csrc/kernels/random.h: 1e6 float32 samples 0.3x numpy's
    standard_normal's time, which was 3.4x PyTorch's); other dtypes numpy's."""
    d = np.dtype(dtype)
    work = np.dtype(np.float32) if _dtype.is_16bit_float(d) else d
    if work.char not in "fd" or type(mean) not in (int, float) or type(std) not in (int, float):
        return (rng.standard_normal(shape) * std + mean).astype(d)
    y = np.empty(shape, work)
    pairs = (y.size + 1) // 2
    raw = rng.bit_generator.random_raw(pairs if work.char == "f" else 2 * pairs)
    _C.normal_from_bits(raw, y, float(mean), float(std))
    return _round16(y, d) if work is not d else y


@public
@names_allocations("randint")
def randint(low, high=None, size=None, generator=None, dtype=None, device=None, requires_grad=False, *, out=None,
            layout=None, pin_memory=False) -> Tensor:
    """``randint(high, size)`` or ``randint(low, high, size)``: ints in [low, high)."""
    _check_device(device)
    if size is None:
        if high is None or not isinstance(high, (tuple, list)):
            raise TypeError("randint: a size tuple is required, e.g. randint(0, 10, (3,))")
        low, high, size = 0, low, high
    if high <= low:
        raise RuntimeError(f"randint: expected low < high, got low={low}, high={high}")
    arr = _random.rng(generator).integers(low, high, size=_size((size,), "randint"))
    return _made(arr.astype(_out_dt(dtype, out, _dtype.int64)), requires_grad, out, "randint", layout, pin_memory)


@public
@names_allocations("randperm")
def randperm(n, generator=None, dtype=None, device=None, requires_grad=False, *, out=None, layout=None,
             pin_memory=False) -> Tensor:
    """A random permutation of ``range(n)`` (int64)."""
    _check_device(device)
    if not isinstance(n, numbers.Integral) or n < 0:
        raise RuntimeError(f"randperm: n must be a non-negative integer, got {n!r}")
    return _made(_random.rng(generator).permutation(int(n)).astype(_out_dt(dtype, out, _dtype.int64)), requires_grad,
                 out, "randperm", layout, pin_memory)


@public
@names_allocations("rand_like")
def rand_like(input, dtype=None, requires_grad=False, *, generator=None, device=None, layout=None,
              memory_format=None) -> Tensor:
    """Uniform samples from [0, 1) with ``input``'s shape (and dtype unless given)."""
    _check_like(layout, memory_format, "rand_like", input)
    return rand(*input.shape, generator=generator, dtype=dtype or input.dtype, device=device,
                requires_grad=requires_grad)


@public
@names_allocations("randn_like")
def randn_like(input, dtype=None, requires_grad=False, *, generator=None, device=None, layout=None,
               memory_format=None) -> Tensor:
    """Standard normal samples with ``input``'s shape (and dtype unless given)."""
    _check_like(layout, memory_format, "randn_like", input)
    return randn(*input.shape, generator=generator, dtype=dtype or input.dtype, device=device,
                 requires_grad=requires_grad)


@public
@names_allocations("randint_like")
def randint_like(input, *args, low=None, high=None, dtype=None, generator=None, device=None, requires_grad=False,
                 layout=None, memory_format=None) -> Tensor:
    """Random integers in [low, high) with ``input``'s shape (and dtype unless given), in
    PyTorch's forms: ``randint_like(t, high)``, ``randint_like(t, low, high)``,
    ``randint_like(t, high=h)``, ``randint_like(t, low=l, high=h)``. ``low`` alone is refused
    (TypeError), as in PyTorch: it would read as an upper bound."""
    if len(args) > 2 or (len(args) == 2 and (low is not None or high is not None)) or (
            len(args) == 1 and low is not None):
        raise TypeError(f"randint_like() received an invalid combination of arguments: {len(args)} positional "
                        f"bound(s), low={low!r}, high={high!r}; expected (input, high), (input, low, high) or "
                        f"keywords low=/high=")
    if len(args) == 2:
        low, high = args
    elif len(args) == 1:
        low, high = (args[0], high) if high is not None else (0, args[0])
    elif high is None:
        raise TypeError("randint_like() missing required argument 'high'" +
                        (f" (low={low!r} was given alone)" if low is not None else ""))
    _check_like(layout, memory_format, "randint_like", input)
    return randint(0 if low is None else low, high, tuple(input.shape), generator=generator,
                   dtype=dtype or input.dtype, device=device, requires_grad=requires_grad)


def _check_like(layout, memory_format, opname, input):
    check_layout(layout, opname)
    check_memory_format(memory_format, opname, input.ndim)


@public
@names_allocations("bernoulli")
def bernoulli(input, generator=None) -> Tensor:
    """1 with probability ``input`` (elementwise), else 0."""
    p = input._data
    _check_probability(p, "bernoulli")
    return Tensor._wrap((_random.rng(generator).random(p.shape) < p).astype(p.dtype))


def _check_probability(p, opname):
    """PyTorch refuses a probability outside [0, 1] (NaN included): ``x < p`` would silently
    read p > 1 as 1 and NaN as 0."""
    p = np.asarray(p)
    if _dtype.kind_of(p.dtype) not in "biuf":
        raise RuntimeError(f"{opname}: expected a real probability, got dtype {_dtype.name(p.dtype)}")
    if p.size and not ((p >= 0) & (p <= 1)).all():
        bad = p[~((p >= 0) & (p <= 1))].reshape(-1)[0]
        raise RuntimeError(f"{opname}: expected every probability p to be in [0, 1], but got p={bad}"
                           + (f" (probability shape {p.shape})" if p.ndim else ""))


@public
@names_allocations("multinomial")
def multinomial(input, num_samples, replacement=False, generator=None) -> Tensor:
    """``num_samples`` indices drawn per row with probabilities proportional to ``input``."""
    if input.ndim not in (1, 2):
        raise RuntimeError(f"multinomial: prob_dist must be 1 or 2 dim, got shape {tuple(input.shape)}")
    if not isinstance(num_samples, numbers.Integral) or num_samples <= 0:
        raise RuntimeError(f"multinomial: cannot sample num_samples={num_samples!r} samples (must be a positive int)")
    p = np.asarray(input._data, dtype=np.float64)
    rows = p.reshape(-1, p.shape[-1])
    if not replacement and num_samples > p.shape[-1]:
        raise RuntimeError(f"multinomial: cannot sample n_sample={num_samples} > prob_dist.size(-1)={p.shape[-1]} "
                           f"samples without replacement")
    if not (np.isfinite(p) & (p >= 0)).all():
        raise RuntimeError(f"multinomial: probability tensor of shape {tuple(input.shape)} contains either `inf`, "
                           f"`nan` or element < 0")
    if (rows.sum(axis=1) <= 0).any():
        raise RuntimeError(f"multinomial: invalid multinomial distribution (sum of probabilities <= 0) in a row of "
                           f"the probability tensor of shape {tuple(input.shape)}")
    if not replacement and (np.count_nonzero(rows, axis=1) < num_samples).any():
        raise RuntimeError(f"multinomial: a row of the probability tensor of shape {tuple(input.shape)} has fewer "
                           f"than num_samples={num_samples} non-zero probabilities, so it can't be sampled without "
                           f"replacement")
    g = _random.rng(generator)
    out = np.stack([g.choice(len(r), size=num_samples, replace=replacement, p=r / r.sum()) for r in rows])
    return Tensor._wrap(out.reshape(p.shape[:-1] + (num_samples,)).astype(np.int64))


@public
@names_allocations("normal")
def normal(mean=0.0, std=1.0, size=None, generator=None, dtype=None, *, out=None, layout=None, device=None,
           pin_memory=False, requires_grad=False) -> Tensor:
    """Normal samples with the given ``mean`` and ``std`` (numbers or tensors, broadcast); d2l's
    ``torch.normal(0, 0.01, size=(n, m), requires_grad=True)`` makes a leaf parameter."""
    _check_device(device)
    m = mean._data if isinstance(mean, Tensor) else mean
    s = std._data if isinstance(std, Tensor) else std
    if np.any(np.asarray(s) < 0) or np.any(np.isnan(np.asarray(s, dtype=np.float64))):
        raise RuntimeError(f"normal expects std >= 0.0, but found std {np.asarray(s).min()}")
    shape = _size((size,), "normal") if size is not None else np.broadcast_shapes(np.shape(m), np.shape(s))
    like = mean if isinstance(mean, Tensor) else std if isinstance(std, Tensor) else out
    d = _dt(dtype, _dtype.to_dtype(like.dtype) if like is not None else None)
    return _made(normal_samples(_random.rng(generator), shape, d, m, s), requires_grad, out, "normal", layout,
                 pin_memory)


@public
@names_allocations("logspace")
def logspace(start, end, steps, base=10.0, dtype=None, device=None, requires_grad=False, *, out=None, layout=None,
             pin_memory=False):
    """``steps`` points ``base ** linspace(start, end)``."""
    _check_device(device)
    start, end = _scalar_end(start, "logspace", "start"), _scalar_end(end, "logspace", "end")
    d = _spaced_dt(_out_dt(dtype, out), "logspace", steps)
    return _made(np.power(float(base), np.linspace(float(start), float(end), int(steps))).astype(d), requires_grad,
                 out, "logspace", layout, pin_memory)


def new_like(self, kind, arg, dtype, requires_grad, fill_value=None, device=None, layout=None, pin_memory=False):
    """``Tensor.new_zeros/new_ones/new_empty/new_full/new_tensor``: ``self``'s dtype unless ``dtype``
    is given; ``device``, ``layout`` and ``pin_memory`` checked as the factories check them."""
    _check_device(device)
    if layout is not None or pin_memory:
        check_layout(layout, f"new_{kind}")
        _check_pin(pin_memory, f"new_{kind}")
    d = self.dtype if dtype is None else _dtype.to_dtype(dtype)
    make = _NEW_MAKERS.get(kind)
    if make is not None:  # zeros/ones/empty's own steps, without their keyword checks (done here)
        return _finish(_alloc(make, _size(arg, kind), d, kind), requires_grad)
    if kind == "tensor":
        return tensor(arg, dtype=d, requires_grad=requires_grad)
    if kind == "full":
        return full(arg, fill_value, dtype=d, requires_grad=requires_grad)
    return globals()[kind](*arg, dtype=d, requires_grad=requires_grad)


_NEW_MAKERS = {"zeros": _zeros, "ones": _ones, "empty": np.empty}


def new_sized(self, kind, args, size, dtype, requires_grad, device, layout, pin_memory):
    """``Tensor.new_zeros/new_ones/new_empty(*args, size=...)``: ``new_like`` after the size is
    read; sizes given as ints (or one sequence of them) and nothing else go straight to the
    allocation (new_like's checks, each a no-op then, took ``x.new_zeros(3)`` to 1.5x PyTorch's time)."""
    if (size is None and dtype is None and device is None and layout is None and not pin_memory
            and not requires_grad and type(self._data) is np.ndarray):
        shape = _C._sizes(args)
        if shape is not None and (not shape or (builtins.min(shape) >= 0 and builtins.max(shape) <= _HUGE_DIM)):
            return Tensor._wrap(_alloc(_NEW_MAKERS[kind], shape, self._data.dtype, kind))
    return new_like(self, kind, sizes_or_keyword(args, size, "size", f"new_{kind}"), dtype, requires_grad, None,
                    device, layout, pin_memory)


def legacy_new(self, args):
    """``Tensor.new``: ``x.new(2, 3)`` (sizes), ``x.new([1, 2])`` (data) or ``x.new()`` (empty),
    in ``x``'s dtype; uninitialised memory in PyTorch, zeros here."""
    if len(args) == 1 and not isinstance(args[0], (int, np.integer)):
        return tensor(args[0].detach() if isinstance(args[0], Tensor) else args[0], dtype=self.dtype)
    return zeros(*args, dtype=self.dtype) if args else zeros(0, dtype=self.dtype)


def new_empty_strided(self, size, stride, dtype, requires_grad, device=None, layout=None, pin_memory=False):
    """``Tensor.new_empty_strided``: zeros of ``size`` in ``self``'s dtype (C-contiguous whatever
    ``stride`` says: tapegrad tensors are numpy arrays, the values are the same)."""
    if len(tuple(size)) != len(tuple(stride)):
        raise RuntimeError(f"new_empty_strided: mismatch in length of strides and shape ({len(stride)} and {len(size)})")
    _check_device(device)
    check_layout(layout, "new_empty_strided")
    _check_pin(pin_memory, "new_empty_strided")
    return zeros(*tuple(size), dtype=_dt(dtype, self.dtype), requires_grad=requires_grad)


# ---------------------------------------------------------------- random fills
def _fill_random(self, values: np.ndarray, opname):
    """Overwrite ``self`` with fresh values; while recording, ``self`` gets a zero gradient."""
    if grad_mode.state.enabled and self._requires_grad:
        return inplace(self, lambda s: _replace(s, Tensor._wrap(values)), opname)
    if not self._data.flags.writeable:
        raise RuntimeError(f"{opname}: the tensor is a read-only (expanded) view; clone() it first")
    if WRITE_WATCHERS:
        before_write(self)
    self._data[...] = values
    self._bump_version()
    return self


def _float_self(self, opname):
    if _dtype.kind_of(self._data.dtype) != "f":
        raise RuntimeError(f"{opname}: expected a floating-point tensor, got {self._data.dtype}")


@public(method=True)
def uniform_(self, a=0.0, b=1.0, *, generator=None):
    """Fill with draws from U(a, b), from tapegrad's global generator (or ``generator``)."""
    _float_self(self, "uniform_")
    if not a <= b:
        raise RuntimeError(f"uniform_ expects to return a [from, to) range, but found from={a} > to={b}")
    v = _random.rng(generator).uniform(a, b, self.shape).astype(self.dtype)
    return _fill_random(self, v, "uniform_")


@public(method=True)
def normal_(self, mean=0.0, std=1.0, *, generator=None):
    """Fill with draws from N(mean, std**2)."""
    _float_self(self, "normal_")
    if std < 0:
        raise RuntimeError(f"normal_ expects std >= 0.0, but found std {std}")
    v = normal_samples(_random.rng(generator), self.shape, self.dtype, mean, std)
    return _fill_random(self, v, "normal_")


@public(method=True)
def bernoulli_(self, p=0.5, *, generator=None):
    """Fill with 1 with probability ``p`` (a number or a tensor), else 0."""
    prob = p._data if isinstance(p, Tensor) else p
    _check_probability(prob, "bernoulli_")
    v = (_random.rng(generator).random(self.shape) < prob).astype(self.dtype)
    return _fill_random(self, v, "bernoulli_")


@public(method=True)
def exponential_(self, lambd=1.0, *, generator=None):
    """Fill ``self`` with samples from the exponential distribution of rate ``lambd``."""
    _float_self(self, "exponential_")
    if not lambd > 0:
        raise RuntimeError(f"exponential_ expects lambda > 0.0, but found lambda={lambd}")
    return _fill_random(self, _random.rng(generator).exponential(1 / lambd, self.shape).astype(self.dtype),
                        "exponential_")


@public(method=True)
def random_(self, from_=0, to=None, *, generator=None):
    """Fill ``self`` with random integers in ``[from_, to)`` (``[0, from_)`` with one bound)."""
    lo, hi = (0, from_) if to is None else (from_, to)
    if not lo < hi:
        raise RuntimeError(f"random_ expects 'from' to be less than 'to', but got from={lo} >= to={hi}")
    return _fill_random(self, _random.rng(generator).integers(lo, hi, self.shape).astype(self.dtype), "random_")


@public
@names_allocations("tril_indices")
def tril_indices(row, col, offset=0, *, dtype=None, device=None):
    """The (row, column) indices of the lower triangle of a ``row`` x ``col`` matrix, as 2 x N."""
    return Tensor._wrap(np.stack(np.tril_indices(row, offset, col)).astype(_dtype.to_dtype(dtype or "int64")))


@public
@names_allocations("triu_indices")
def triu_indices(row, col, offset=0, *, dtype=None, device=None):
    """The (row, column) indices of the upper triangle of a ``row`` x ``col`` matrix, as 2 x N."""
    return Tensor._wrap(np.stack(np.triu_indices(row, offset, col)).astype(_dtype.to_dtype(dtype or "int64")))


@public(out=True)
def vander(x, N=None, increasing=False):
    """The Vandermonde matrix of the 1-D ``x`` (decreasing powers unless ``increasing``)."""
    if x.ndim != 1:
        raise RuntimeError(f"vander: x must be a one-dimensional tensor (got shape {tuple(x.shape)})")
    if N is not None and N < 0:
        raise RuntimeError(f"vander: N must be non-negative (got {N})")
    n = x.shape[0] if N is None else N
    if _dtype.kind_of(x.dtype) in "biu":
        x = x.to(_dtype.int64)  # PyTorch's: every integer (and bool) input gives int64 powers
    powers = [x ** k if k else mul(x, 0) + 1 for k in range(n)]
    cols = powers if increasing else powers[::-1]
    return stack(cols, 1) if cols else Tensor._wrap(np.zeros((x.shape[0], 0), x.dtype))


@public(method=True)
def cauchy_(self, median=0.0, sigma=1.0, *, generator=None):
    """Fill ``self`` with draws from the Cauchy distribution of ``median`` and scale ``sigma``."""
    _float_self(self, "cauchy_")
    v = median + sigma * np.tan(np.pi * (_random.rng(generator).random(self.shape) - 0.5))
    return _fill_random(self, v.astype(self.dtype), "cauchy_")


@public(method=True)
def log_normal_(self, mean=1.0, std=2.0, *, generator=None):
    """Fill ``self`` with ``exp(N(mean, std**2))`` draws (the log-normal distribution)."""
    _float_self(self, "log_normal_")
    if std <= 0:
        raise RuntimeError(f"log_normal_ expects std > 0.0, but found std={std}")
    return _fill_random(self, _random.rng(generator).lognormal(mean, std, self.shape).astype(self.dtype),
                        "log_normal_")


@public(method=True)
def geometric_(self, p, *, generator=None):
    """Fill ``self`` with the number of Bernoulli(``p``) trials up to the first success (1, 2, ...)."""
    if not 0 < p < 1:
        raise RuntimeError(f"geometric_ expects p to be in (0, 1), but got p={p}")
    return _fill_random(self, _random.rng(generator).geometric(p, self.shape).astype(self.dtype), "geometric_")


@public
@names_allocations("poisson")
def poisson(input, generator=None) -> Tensor:
    """A Poisson draw of rate ``input`` per element (``input``'s float dtype; not differentiable)."""
    if input._data.dtype.kind != "f":
        raise RuntimeError(f"poisson: expected a floating-point rate tensor, got {_dtype.name(input._data.dtype)}")
    if (input._data < 0).any():
        raise RuntimeError("poisson: invalid Poisson rate, expected rate to be non-negative")
    return Tensor._wrap(_random.rng(generator).poisson(input._data).astype(input._data.dtype))


@public
@names_allocations("binomial")
def binomial(count, prob, generator=None) -> Tensor:
    """A Binomial(``count``, ``prob``) draw per element (``count``'s float dtype; not differentiable)."""
    n, p = np.broadcast_arrays(count._data, prob._data)
    if ((p < 0) | (p > 1)).any() or (n < 0).any():
        raise RuntimeError("binomial: expected 0 <= prob <= 1 and count >= 0")
    return Tensor._wrap(_random.rng(generator).binomial(n.astype(np.int64), p).astype(count._data.dtype))


def _make_window(name, window_length, periodic, dtype, device, requires_grad, values):
    """A signal window in PyTorch's conventions: ``periodic`` drops the last point of a window
    one longer (for spectral analysis); length 1 gives ``[1.]``."""
    _check_device(device)
    d = _dt(dtype)
    if d.kind != "f":
        raise RuntimeError(f"{name}: expected a floating point dtype, got {_dtype.name(d)}")
    window_length = int_arg(window_length, "window_length", name)
    if window_length < 0:
        raise RuntimeError(f"{name}: requires non-negative window_length, got window_length={window_length}")
    if window_length <= 1:
        return _finish(np.ones(window_length, d), requires_grad)
    n = window_length + 1 if periodic else window_length
    return _finish(np.asarray(values(n)[:window_length], dtype=d), requires_grad)


@public
def hann_window(window_length, periodic=True, *, dtype=None, layout=None, device=None, requires_grad=False):
    """The Hann window ``0.5 - 0.5 cos(2 pi n / (N - 1))`` of ``window_length`` points.

    >>> tapegrad.hann_window(4)
    tensor([0.0000, 0.5000, 1.0000, 0.5000])
    """
    return _make_window("hann_window", window_length, periodic, dtype, device, requires_grad, np.hanning)


@public
def hamming_window(window_length, periodic=True, alpha=0.54, beta=0.46, *, dtype=None, layout=None, device=None,
                   requires_grad=False):
    """The Hamming window ``alpha - beta cos(2 pi n / (N - 1))`` of ``window_length`` points."""
    return _make_window("hamming_window", window_length, periodic, dtype, device, requires_grad,
                        lambda n: alpha - beta * np.cos(2 * np.pi * np.arange(n) / (n - 1)))


@public
def bartlett_window(window_length, periodic=True, *, dtype=None, layout=None, device=None, requires_grad=False):
    """The Bartlett (triangular) window of ``window_length`` points."""
    return _make_window("bartlett_window", window_length, periodic, dtype, device, requires_grad, np.bartlett)


@public
def blackman_window(window_length, periodic=True, *, dtype=None, layout=None, device=None, requires_grad=False):
    """The Blackman window of ``window_length`` points."""
    return _make_window("blackman_window", window_length, periodic, dtype, device, requires_grad, np.blackman)


@public
def kaiser_window(window_length, periodic=True, beta=12.0, *, dtype=None, layout=None, device=None,
                  requires_grad=False):
    """The Kaiser window of shape parameter ``beta`` (12.0 by default, as PyTorch's)."""
    return _make_window("kaiser_window", window_length, periodic, dtype, device, requires_grad,
                        lambda n: np.kaiser(n, beta))
