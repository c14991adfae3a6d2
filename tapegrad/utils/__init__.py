"""Utilities under PyTorch's names: ``tapegrad.utils.data`` (Dataset, DataLoader, ...) and
``tapegrad.utils.checkpoint`` (activation checkpointing)."""
from . import checkpoint, data  # noqa: F401
