"""``torch.distributed._composable.fsdp``: the old home of FSDP2's names (see ``tapegrad.distributed.fsdp``)."""
from ...fsdp import CPUOffloadPolicy, MixedPrecisionPolicy, OffloadPolicy, fully_shard  # noqa: F401
