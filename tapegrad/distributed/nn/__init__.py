"""``torch.distributed.nn``: the collectives as differentiable functions (``functional``), for
losses that combine ranks' tensors (a contrastive loss over every rank's batch, a codebook usage
averaged over ranks) and must send gradients back to the ranks the values came from."""
from .functional import all_gather, all_reduce, broadcast, reduce, reduce_scatter  # noqa: F401
from . import functional  # noqa: F401

__all__ = ["functional", "all_gather", "all_reduce", "broadcast", "reduce", "reduce_scatter"]
