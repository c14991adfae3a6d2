"""Utilities under PyTorch's names: ``tapegrad.utils.data`` (Dataset, DataLoader, ...),
``tapegrad.utils.checkpoint`` (activation checkpointing), ``tapegrad.utils.hooks`` (RemovableHandle), ``tapegrad.utils.model_zoo`` (load_url)
and, on import, ``tapegrad.utils.tensorboard`` (SummaryWriter, the tensorboard extra)."""
from . import checkpoint, data, hooks, model_zoo  # noqa: F401
