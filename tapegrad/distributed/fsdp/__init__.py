"""``torch.distributed.fsdp``: the names, so that code which imports them loads. Sharding a model
(``fully_shard``, ``FullyShardedDataParallel``) needs DTensor and device meshes, which tapegrad
does not have, and raises; the policies are PyTorch's plain value types.

For data-parallel training use ``tapegrad.nn.parallel.DistributedDataParallel``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...nn.modules.module import Module
from .._unsupported import refuse

__all__ = ["CPUOffloadPolicy", "FullyShardedDataParallel", "MixedPrecisionPolicy", "OffloadPolicy", "fully_shard"]


@dataclass(frozen=True)
class MixedPrecisionPolicy:
    """FSDP2's dtypes for parameters in forward/backward, for gradient reduction and for outputs."""
    param_dtype: np.dtype | None = None
    reduce_dtype: np.dtype | None = None
    output_dtype: np.dtype | None = None
    cast_forward_inputs: bool = True


@dataclass
class OffloadPolicy:
    """FSDP2's base offload policy: no offloading."""


@dataclass
class CPUOffloadPolicy(OffloadPolicy):
    """FSDP2's policy of keeping sharded parameters on the CPU."""
    pin_memory: bool = True


def fully_shard(module, *, mesh=None, reshard_after_forward=None, shard_placement_fn=None, mp_policy=None,
                offload_policy=None, ignored_params=None):
    """Raises ``NotImplementedError``: FSDP2 shards parameters as DTensors, which tapegrad does not have."""
    refuse("fully_shard (FSDP2)")


class FullyShardedDataParallel(Module):
    """PyTorch's FSDP wrapper; constructing one raises ``NotImplementedError`` (no sharded parameters
    in tapegrad). ``isinstance(m, FullyShardedDataParallel)`` is False for every tapegrad module."""

    def __init__(self, *args, **kwargs):
        refuse("FullyShardedDataParallel")
