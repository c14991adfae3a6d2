"""Utilities under PyTorch's names: ``tapegrad.utils.data`` (Dataset, DataLoader, ...)."""
from . import data  # noqa: F401
