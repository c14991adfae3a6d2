"""``torch.distributed.algorithms``: ``Join`` for training on uneven inputs across ranks."""
from .join import Join, Joinable, JoinHook

__all__ = ["Join", "Joinable", "JoinHook"]
