"""``torch.testing.make_tensor`` (random test inputs of any dtype and layout) and the deprecated
``assert_allclose``."""
from __future__ import annotations

import math
import warnings

import numpy as np

from .. import _dtype
from ..ops import creation as _creation
from ..random import rng as _rng
from ..tensor import Size, Tensor
from .comparison import assert_close

__all__ = ["make_tensor", "assert_allclose"]


def _bounds(dtype, low, high):
    """[low, high) of the values, PyTorch's defaults by dtype kind, clamped to the dtype's range."""
    kind = _dtype.kind_of(dtype)
    if kind in "iu":
        info = np.iinfo(dtype)
        lo_default, hi_default = (0, 10) if kind == "u" else (-9, 10)
        lo, hi = (lo_default if low is None else low), (hi_default if high is None else high)
        return max(math.ceil(lo), int(info.min)), min(math.ceil(hi), int(info.max) + 1)
    lo, hi = (-9.0 if low is None else low), (9.0 if high is None else high)
    return lo, hi


def make_tensor(*shape, dtype, device=None, low=None, high=None, requires_grad=False, noncontiguous=False,
                exclude_zero=False, memory_format=None) -> Tensor:
    """A tensor of ``shape`` with random values drawn uniformly from ``[low, high)`` (floats
    default to [-9, 9], signed integers to [-9, 10), unsigned to [0, 10), bools either; complex
    numbers draw both parts), from the global generator. ``noncontiguous`` gives a view with
    every other element of a larger tensor; ``exclude_zero`` replaces zeros by the dtype's tiny
    (floats) or 1 (integers)."""
    if len(shape) == 1 and isinstance(shape[0], (list, tuple, Size)):
        shape = tuple(shape[0])
    shape = tuple(int(n) for n in shape)
    for name, v in (("low", low), ("high", high)):
        if v is not None and isinstance(v, float) and math.isnan(v):
            raise ValueError(f"`{name}` cannot be NaN, but got {name}=nan")
    if low is not None and high is not None and low >= high:
        raise ValueError(f"`low` must be less than `high`, but got {low} >= {high}")
    dtype = np.dtype(dtype)
    kind = _dtype.kind_of(dtype)
    if requires_grad and kind not in "fc":
        raise ValueError("make_tensor: requires_grad=True is not supported for integer and bool dtypes")
    g = _rng()
    if dtype == np.bool_:
        values = g.integers(0, 2, shape).astype(np.bool_)
    elif kind in "iu":
        lo, hi = _bounds(dtype, low, high)
        values = g.integers(lo, hi, shape, dtype=np.int64).astype(dtype)
    else:
        lo, hi = _bounds(dtype, low, high)
        part = np.float32 if dtype in (np.complex64, np.float16) or _dtype.name(dtype).endswith("bfloat16") else np.float64
        draw = lambda: g.uniform(lo, hi, shape).astype(part)  # noqa: E731
        values = (draw() + 1j * draw()) if kind == "c" else draw()
        values = np.asarray(values).astype(dtype)
    if exclude_zero:
        tiny = 1 if kind in "iub" else np.finfo(np.float32 if kind == "c" or dtype == np.float32 else np.float64).tiny
        values = np.where(values == 0, np.asarray(tiny).astype(dtype), values)
    if noncontiguous and values.size > 1:
        wide = np.repeat(values, 2, axis=-1)  # every other element of the last dim: a strided view
        t = Tensor._wrap(wide)[..., ::2]
    else:
        t = Tensor._wrap(np.array(values, order="C"))  # (np.ascontiguousarray makes a 0-d array 1-d)
        if memory_format is not None:
            t = t.contiguous(memory_format=memory_format)
    if requires_grad:
        t.requires_grad_(True)
    return t


def assert_allclose(actual, expected, rtol=None, atol=None, equal_nan=True, msg="") -> None:
    """Deprecated in PyTorch for ``assert_close``: the same check without dtype matching
    (``expected`` is converted to ``actual``'s dtype), NaNs equal by default."""
    warnings.warn("`torch.testing.assert_allclose()` is deprecated since 1.12 and will be removed in a future "
                  "release. Please use `torch.testing.assert_close()` instead.", FutureWarning, stacklevel=2)
    if not isinstance(actual, Tensor):
        actual = _creation.tensor(actual)
    if not isinstance(expected, Tensor):
        expected = _creation.tensor(expected, dtype=actual.dtype)
    if rtol is None and atol is None:
        rtol, atol = (1e-3, 1e-3) if actual.dtype == np.float16 else (1.3e-6, 1e-5) if actual.dtype == np.float32 \
            else (1e-7, 1e-7)
    assert_close(actual, expected.to(actual.dtype), rtol=rtol, atol=atol, equal_nan=equal_nan, msg=msg or None,
                 check_dtype=False)
