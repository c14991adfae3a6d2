"""``torch.distributed.fsdp.fully_sharded_data_parallel``, the module PyTorch defines FSDP in
(accelerate's ``unwrap_model`` imports ``FullyShardedDataParallel`` from here to test
``isinstance``): the same class as ``tapegrad.distributed.fsdp``'s, which refuses to shard, and
PyTorch's ``StateDictType`` values."""
from __future__ import annotations

import enum

from . import FullyShardedDataParallel

__all__ = ["FullyShardedDataParallel", "StateDictType"]


class StateDictType(enum.Enum):
    """Which state dict an FSDP model gives: PyTorch's three kinds."""
    FULL_STATE_DICT = enum.auto()
    LOCAL_STATE_DICT = enum.auto()
    SHARDED_STATE_DICT = enum.auto()
