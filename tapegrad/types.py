"""``torch.types``: the aliases type hints in PyTorch code import (``from torch.types import Number``)."""
from __future__ import annotations

import os
from typing import IO, Sequence, Union

from ._compat import SymBool, SymFloat, SymInt, dtype as _dtype  # noqa: F401
from .device import device as _device, layout as _layout  # noqa: F401
from .storage import UntypedStorage as Storage  # noqa: F401
from .tensor import Size, Tensor  # noqa: F401

# PyTorch's private aliases, which libraries import for annotations (diffusers:
# ``from torch.types import _dtype``)
_int, _float, _bool, _complex, _str, _bytes = int, float, bool, complex, str, bytes
_size = Union[Size, list[int], tuple[int, ...]]
_TensorOrTensors = Union[Tensor, Sequence[Tensor]]
py_sym_types = (SymInt, SymFloat, SymBool)
PySymType = Union[SymInt, SymFloat, SymBool]

Number = Union[int, float, bool]
Device = Union[_device, str, int, None]
FileLike = Union[str, os.PathLike, IO[bytes]]
IntLikeType = int
FloatLikeType = float
BoolLikeType = bool

__all__ = ["Number", "Device", "FileLike", "IntLikeType", "FloatLikeType", "BoolLikeType", "Size", "Tensor", "Storage",
           "SymInt", "SymFloat", "SymBool", "PySymType", "py_sym_types"]
