"""``torch.types``: the aliases type hints in PyTorch code import (``from torch.types import Number``)."""
from __future__ import annotations

import os
from typing import IO, Union

from .device import device as _device
from .tensor import Size, Tensor  # noqa: F401

Number = Union[int, float, bool]
Device = Union[_device, str, int, None]
FileLike = Union[str, os.PathLike, IO[bytes]]
IntLikeType = int
FloatLikeType = float
BoolLikeType = bool

__all__ = ["Number", "Device", "FileLike", "IntLikeType", "FloatLikeType", "BoolLikeType", "Size", "Tensor"]
