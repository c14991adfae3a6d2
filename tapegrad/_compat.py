"""Names a ported PyTorch script touches that are types, not ops: ``Size``, ``dtype``, the legacy
``FloatTensor``-style constructors and ``inference_mode``."""
from __future__ import annotations

import numpy as np

from . import _dtype
from .autograd.grad_mode import _GradModeContext
from .tensor import Tensor

dtype = np.dtype  # tapegrad's dtypes are numpy dtypes: isinstance(x.dtype, tapegrad.dtype) holds


class Size(tuple):
    """A shape: a tuple of ints (``x.shape`` is a plain tuple, which compares equal to it)."""

    def numel(self) -> int:
        return int(np.prod(self, dtype=np.int64))

    def __repr__(self):
        return f"tapegrad.Size({list(self)})"


class _LegacyMeta(type):
    def __instancecheck__(cls, obj):
        return isinstance(obj, Tensor) and obj._data.dtype == cls._dtype


class _LegacyTensor(metaclass=_LegacyMeta):
    """``FloatTensor(2, 3)`` (uninitialised sizes) or ``FloatTensor([1, 2])`` (data), as PyTorch's."""

    _dtype = _dtype.float32

    def __new__(cls, *args):
        from . import creation
        if len(args) == 1 and not isinstance(args[0], (int, np.integer)):
            return creation.tensor(args[0], dtype=cls._dtype)
        return creation.zeros(*args, dtype=cls._dtype)


class FloatTensor(_LegacyTensor):
    _dtype = _dtype.float32


class DoubleTensor(_LegacyTensor):
    _dtype = _dtype.float64


class LongTensor(_LegacyTensor):
    _dtype = _dtype.int64


class IntTensor(_LegacyTensor):
    _dtype = _dtype.int32


class BoolTensor(_LegacyTensor):
    _dtype = _dtype.bool_


class ByteTensor(_LegacyTensor):
    _dtype = _dtype.uint8


class inference_mode(_GradModeContext):  # noqa: N801  (PyTorch's name)
    """``no_grad`` under PyTorch's other name (context manager or decorator);
    ``inference_mode(False)`` leaves grad mode as it is, as in PyTorch."""

    def __init__(self, mode: bool = True):
        self.mode = False if mode else None


__all__ = ["dtype", "Size", "FloatTensor", "DoubleTensor", "LongTensor", "IntTensor", "BoolTensor", "ByteTensor",
           "inference_mode"]
