"""Utilities under PyTorch's names: ``tapegrad.utils.data`` (Dataset, DataLoader, ...),
``tapegrad.utils.checkpoint`` (activation checkpointing), ``tapegrad.utils.hooks`` (RemovableHandle)
and, on import, ``tapegrad.utils.tensorboard`` (SummaryWriter, the tensorboard extra)."""
from . import checkpoint, data, hooks  # noqa: F401
