"""Tensor creation with PyTorch's names and dtype defaults (floats float32, ints int64), and
random sampling: the new tensors (``rand``, ``randn``, ...) and the in-place fills (``uniform_``,
``normal_``, ...).
"""
from __future__ import annotations

import numbers

import numpy as np

from .. import _dtype, random as _random
from .._tape import grad_mode
from ..device import device as _device
from .inplace import inplace
from .pointwise import _replace, mul
from .shape import stack
from .surface import public

Tensor = None  # the Tensor class, bound by tensor.py (ops.bind_tensor): the ops sit below it


def _check_device(device):
    if device is not None:
        _device(device)


def _size(size):
    if len(size) == 1 and isinstance(size[0], (tuple, list)):
        size = tuple(size[0])
    size = tuple(int(s) for s in size)
    if any(s < 0 for s in size):
        raise RuntimeError(f"Trying to create tensor with negative dimension: {list(size)}")
    return size


def _finish(arr, requires_grad):
    t = Tensor._wrap(arr)
    if requires_grad:
        t.requires_grad_(True)
    return t


def _infer(data, dtype=None):
    """The array for ``data``, with PyTorch's defaults: Python floats -> float32, ints -> int64.

    With ``dtype`` given, Python numbers convert to it directly (no float32 rounding on the way).
    """
    if isinstance(data, Tensor):
        return data._data.copy()
    if isinstance(data, np.ndarray):
        return data.copy()
    if isinstance(data, (list, tuple)) and any(isinstance(x, Tensor) for x in _flat(data)):
        data = _to_nested(data)
    try:
        arr = np.array(data)
    except ValueError as e:  # ragged nesting
        raise ValueError(f"tensor: can't build a tensor from this data: {e}") from None
    if dtype is not None and _dtype.kind_of(arr.dtype) in "biuf":
        return arr.astype(_dtype.to_dtype(dtype))
    if _dtype.kind_of(arr.dtype) == "f":
        if not isinstance(data, np.generic):
            arr = arr.astype(_dtype.get_default_dtype())
    elif arr.dtype.kind in "iu" and not isinstance(data, np.generic):
        arr = arr.astype(np.int64)
    elif _dtype.kind_of(arr.dtype) not in "biuf":
        raise TypeError(f"tensor: can't convert data of type {arr.dtype} (from {type(data).__name__})")
    return arr


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
def tensor(data, dtype=None, device=None, requires_grad=False) -> Tensor:
    """A new tensor holding a copy of ``data`` (nested lists, numbers, numpy arrays, tensors)."""
    _check_device(device)
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
    if isinstance(data, np.ndarray) and (dtype is None or data.dtype == _dtype.to_dtype(dtype)):
        return Tensor._wrap(data)
    return tensor(data, dtype=dtype)


@public
def from_numpy(array: np.ndarray) -> Tensor:
    """A tensor sharing memory with ``array``."""
    if not isinstance(array, np.ndarray):
        raise TypeError(f"from_numpy: expected np.ndarray (got {type(array).__name__})")
    if _dtype.kind_of(array.dtype) not in "biuf":
        raise TypeError(f"from_numpy: can't convert np.ndarray of type {array.dtype}")
    return Tensor._wrap(array)


def _dt(dtype, default=None):
    return _dtype.to_dtype(dtype) if dtype is not None else (default or _dtype.get_default_dtype())


@public
def zeros(*size, dtype=None, device=None, requires_grad=False) -> Tensor:
    """A tensor of zeros of the given size."""
    _check_device(device)
    return _finish(np.zeros(_size(size), _dt(dtype)), requires_grad)


@public
def ones(*size, dtype=None, device=None, requires_grad=False) -> Tensor:
    """A tensor of ones of the given size."""
    _check_device(device)
    return _finish(np.ones(_size(size), _dt(dtype)), requires_grad)


@public
def empty(*size, dtype=None, device=None, requires_grad=False) -> Tensor:
    """A tensor of the given size (zero-filled: tapegrad never hands out uninitialised memory)."""
    _check_device(device)
    return _finish(np.empty(_size(size), _dt(dtype)), requires_grad)


@public
def full(size, fill_value, dtype=None, device=None, requires_grad=False) -> Tensor:
    """A tensor of ``size`` filled with ``fill_value``."""
    _check_device(device)
    if dtype is None:
        dtype = (_dtype.bool_ if isinstance(fill_value, bool) else
                 _dtype.int64 if isinstance(fill_value, numbers.Integral) else _dtype.get_default_dtype())
    return _finish(np.full(_size((size,)), fill_value, _dtype.to_dtype(dtype)), requires_grad)


# The *_like functions take PyTorch's keywords: dtype, device, requires_grad, and layout /
# memory_format, which change nothing here (every tapegrad tensor is strided and contiguous).
@public
def zeros_like(input, dtype=None, device=None, requires_grad=False, *, layout=None, memory_format=None) -> Tensor:
    """Zeros with ``input``'s shape (and dtype unless given)."""
    _check_device(device)
    return _finish(np.zeros(input.shape, _dt(dtype, input.dtype)), requires_grad)


@public
def ones_like(input, dtype=None, device=None, requires_grad=False, *, layout=None, memory_format=None) -> Tensor:
    """Ones with ``input``'s shape (and dtype unless given)."""
    _check_device(device)
    return _finish(np.ones(input.shape, _dt(dtype, input.dtype)), requires_grad)


@public
def empty_like(input, dtype=None, device=None, requires_grad=False, *, layout=None, memory_format=None) -> Tensor:
    """A tensor with ``input``'s shape (and dtype unless given), zero-filled."""
    _check_device(device)
    return _finish(np.empty(input.shape, _dt(dtype, input.dtype)), requires_grad)


@public
def full_like(input, fill_value, dtype=None, device=None, requires_grad=False, *, layout=None,
              memory_format=None) -> Tensor:
    """``fill_value`` with ``input``'s shape (and dtype unless given)."""
    _check_device(device)
    return _finish(np.full(input.shape, fill_value, _dt(dtype, input.dtype)), requires_grad)


@public
def arange(start, end=None, step=1, dtype=None, device=None, requires_grad=False) -> Tensor:
    """Like PyTorch: integer arguments give int64, any float argument gives the default float dtype."""
    _check_device(device)
    if end is None:
        start, end = 0, start
    if step == 0:
        raise RuntimeError("arange: step must be nonzero")
    args = (start, end, step)
    if dtype is None:
        dtype = (_dtype.get_default_dtype() if any(isinstance(a, float) or isinstance(a, Tensor) and
                 _dtype.kind_of(a.dtype) == "f" for a in args) else _dtype.int64)
    args = tuple(a.item() if isinstance(a, Tensor) else a for a in args)
    return _finish(np.arange(*args).astype(_dtype.to_dtype(dtype)), requires_grad)


@public
def linspace(start, end, steps, dtype=None, device=None, requires_grad=False) -> Tensor:
    """``steps`` evenly spaced values from ``start`` to ``end`` inclusive."""
    _check_device(device)
    return _finish(np.linspace(start, end, int(steps)).astype(_spaced_dt(dtype, "linspace")), requires_grad)


def _spaced_dt(dtype, opname):
    d = _dt(dtype)
    if d == np.bool_:  # PyTorch: '"linspace_cpu" not implemented for 'Bool''
        raise NotImplementedError(f"{opname}: not implemented for dtype tapegrad.bool")
    return d


@public
def eye(n, m=None, dtype=None, device=None, requires_grad=False) -> Tensor:
    """The ``n`` x ``m`` identity matrix (square by default)."""
    _check_device(device)
    return _finish(np.eye(n, m, dtype=_dt(dtype)), requires_grad)


def _float_dt(dtype, opname):
    d = _dt(dtype)
    if _dtype.kind_of(d) != "f":  # PyTorch: '"check_uniform_bounds" not implemented for 'Long''
        raise RuntimeError(f"{opname}: samples need a floating dtype, got {_dtype.name(d)}")
    return d


@public
def rand(*size, generator=None, dtype=None, device=None, requires_grad=False) -> Tensor:
    """Uniform samples from [0, 1) of the given size."""
    _check_device(device)
    d = _float_dt(dtype, "rand")
    return _finish(_random.rng(generator).random(_size(size), dtype=np.float64).astype(d), requires_grad)


@public
def randn(*size, generator=None, dtype=None, device=None, requires_grad=False) -> Tensor:
    """Standard normal samples of the given size."""
    _check_device(device)
    d = _float_dt(dtype, "randn")
    return _finish(_random.rng(generator).standard_normal(_size(size)).astype(d), requires_grad)


@public
def randint(low, high=None, size=None, generator=None, dtype=None, device=None, requires_grad=False) -> Tensor:
    """``randint(high, size)`` or ``randint(low, high, size)``: ints in [low, high)."""
    _check_device(device)
    if size is None:
        if high is None or not isinstance(high, (tuple, list)):
            raise TypeError("randint: a size tuple is required, e.g. randint(0, 10, (3,))")
        low, high, size = 0, low, high
    if high <= low:
        raise RuntimeError(f"randint: expected low < high, got low={low}, high={high}")
    arr = _random.rng(generator).integers(low, high, size=_size((size,)))
    return _finish(arr.astype(_dt(dtype, _dtype.int64)), requires_grad)


@public
def randperm(n, generator=None, dtype=None, device=None, requires_grad=False) -> Tensor:
    """A random permutation of ``range(n)`` (int64)."""
    _check_device(device)
    return _finish(_random.rng(generator).permutation(int(n)).astype(_dt(dtype, _dtype.int64)), requires_grad)


@public
def rand_like(input, dtype=None, requires_grad=False, *, generator=None, device=None, layout=None,
              memory_format=None) -> Tensor:
    """Uniform samples from [0, 1) with ``input``'s shape (and dtype unless given)."""
    return rand(*input.shape, generator=generator, dtype=dtype or input.dtype, device=device,
                requires_grad=requires_grad)


@public
def randn_like(input, dtype=None, requires_grad=False, *, generator=None, device=None, layout=None,
               memory_format=None) -> Tensor:
    """Standard normal samples with ``input``'s shape (and dtype unless given)."""
    return randn(*input.shape, generator=generator, dtype=dtype or input.dtype, device=device,
                 requires_grad=requires_grad)


@public
def randint_like(input, low=0, high=None, dtype=None, *, generator=None, device=None, requires_grad=False,
                 layout=None, memory_format=None) -> Tensor:
    """Random integers in [low, high) with ``input``'s shape (and dtype unless given):
    ``randint_like(t, high)``, ``randint_like(t, high=h)`` or ``randint_like(t, low, high)``."""
    if high is None:
        if low == 0:
            raise TypeError("randint_like() missing required argument 'high'")
        low, high = 0, low
    return randint(low, high, tuple(input.shape), generator=generator, dtype=dtype or input.dtype, device=device,
                   requires_grad=requires_grad)


@public
def bernoulli(input, generator=None) -> Tensor:
    """1 with probability ``input`` (elementwise), else 0."""
    p = input._data
    return Tensor._wrap((_random.rng(generator).random(p.shape) < p).astype(p.dtype))


@public
def multinomial(input, num_samples, replacement=False, generator=None) -> Tensor:
    """``num_samples`` indices drawn per row with probabilities proportional to ``input``."""
    p = np.asarray(input._data, dtype=np.float64)
    rows = p.reshape(-1, p.shape[-1])
    g = _random.rng(generator)
    out = np.stack([g.choice(len(r), size=num_samples, replace=replacement, p=r / r.sum()) for r in rows])
    return Tensor._wrap(out.reshape(p.shape[:-1] + (num_samples,)).astype(np.int64))


@public
def normal(mean=0.0, std=1.0, size=None, generator=None, dtype=None) -> Tensor:
    """Normal samples with the given ``mean`` and ``std`` (numbers or tensors, broadcast)."""
    m = mean._data if isinstance(mean, Tensor) else mean
    s = std._data if isinstance(std, Tensor) else std
    shape = size if size is not None else np.broadcast_shapes(np.shape(m), np.shape(s))
    d = _dt(dtype, mean.dtype if isinstance(mean, Tensor) else None)
    return Tensor._wrap((_random.rng(generator).standard_normal(shape) * s + m).astype(d))


@public
def logspace(start, end, steps, base=10.0, dtype=None, device=None, requires_grad=False):
    """``steps`` points ``base ** linspace(start, end)``."""
    d = _spaced_dt(dtype, "logspace")
    t = Tensor._wrap(np.power(float(base), np.linspace(float(start), float(end), int(steps))).astype(d))
    return t.requires_grad_() if requires_grad else t


def new_like(self, kind, arg, dtype, requires_grad, fill_value=None):
    """``Tensor.new_zeros/new_ones/new_empty/new_full/new_tensor``: ``self``'s dtype unless ``dtype`` is given."""
    d = self.dtype if dtype is None else _dtype.to_dtype(dtype)
    if kind == "tensor":
        return tensor(arg, dtype=d, requires_grad=requires_grad)
    if kind == "full":
        return full(arg, fill_value, dtype=d, requires_grad=requires_grad)
    return globals()[kind](*arg, dtype=d, requires_grad=requires_grad)


# ---------------------------------------------------------------- random fills
def _fill_random(self, values: np.ndarray, opname):
    """Overwrite ``self`` with fresh values; while recording, ``self`` gets a zero gradient."""
    if grad_mode.state.enabled and self._requires_grad:
        return inplace(self, lambda s: _replace(s, Tensor._wrap(values)), opname)
    if not self._data.flags.writeable:
        raise RuntimeError(f"{opname}: the tensor is a read-only (expanded) view; clone() it first")
    self._data[...] = values
    self._version[0] += 1
    return self


def _float_self(self, opname):
    if _dtype.kind_of(self._data.dtype) != "f":
        raise RuntimeError(f"{opname}: expected a floating-point tensor, got {self._data.dtype}")


@public(method=True)
def uniform_(self, a=0.0, b=1.0, *, generator=None):
    """Fill with draws from U(a, b), from tapegrad's global generator (or ``generator``)."""
    _float_self(self, "uniform_")
    v = _random.rng(generator).uniform(a, b, self.shape).astype(self.dtype)
    return _fill_random(self, v, "uniform_")


@public(method=True)
def normal_(self, mean=0.0, std=1.0, *, generator=None):
    """Fill with draws from N(mean, std**2)."""
    _float_self(self, "normal_")
    if std < 0:
        raise RuntimeError(f"normal_ expects std >= 0.0, but found std {std}")
    v = (_random.rng(generator).standard_normal(self.shape) * std + mean).astype(self.dtype)
    return _fill_random(self, v, "normal_")


@public(method=True)
def bernoulli_(self, p=0.5, *, generator=None):
    """Fill with 1 with probability ``p`` (a number or a tensor), else 0."""
    prob = p._data if isinstance(p, Tensor) else p
    v = (_random.rng(generator).random(self.shape) < prob).astype(self.dtype)
    return _fill_random(self, v, "bernoulli_")


@public(method=True)
def exponential_(self, lambd=1.0, *, generator=None):
    """Fill ``self`` with samples from the exponential distribution of rate ``lambd``."""
    _float_self(self, "exponential_")
    return _fill_random(self, _random.rng(generator).exponential(1 / lambd, self.shape).astype(self.dtype),
                        "exponential_")


@public(method=True)
def random_(self, from_=0, to=None, *, generator=None):
    """Fill ``self`` with random integers in ``[from_, to)`` (``[0, from_)`` with one bound)."""
    lo, hi = (0, from_) if to is None else (from_, to)
    return _fill_random(self, _random.rng(generator).integers(lo, hi, self.shape).astype(self.dtype), "random_")


@public
def tril_indices(row, col, offset=0, *, dtype=None, device=None):
    """The (row, column) indices of the lower triangle of a ``row`` x ``col`` matrix, as 2 x N."""
    return Tensor._wrap(np.stack(np.tril_indices(row, offset, col)).astype(_dtype.to_dtype(dtype or "int64")))


@public
def triu_indices(row, col, offset=0, *, dtype=None, device=None):
    """The (row, column) indices of the upper triangle of a ``row`` x ``col`` matrix, as 2 x N."""
    return Tensor._wrap(np.stack(np.triu_indices(row, offset, col)).astype(_dtype.to_dtype(dtype or "int64")))


@public(out=True)
def vander(x, N=None, increasing=False):
    """The Vandermonde matrix of the 1-D ``x`` (decreasing powers unless ``increasing``)."""
    n = x.shape[0] if N is None else N
    powers = [x ** k if k else mul(x, 0) + 1 for k in range(n)]
    cols = powers if increasing else powers[::-1]
    return stack(cols, 1) if cols else Tensor._wrap(np.zeros((x.shape[0], 0), x.dtype))
