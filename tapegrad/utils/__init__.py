"""Utilities under PyTorch's names: ``tapegrad.utils.data`` (Dataset, DataLoader, ...),
``tapegrad.utils.checkpoint`` (activation checkpointing), ``tapegrad.utils.hooks`` (RemovableHandle),
``tapegrad.utils.benchmark`` (Timer), ``tapegrad.utils._pytree`` (tree_flatten, tree_map, ...)
and, once imported, ``tapegrad.utils.model_zoo`` (load_url) and ``tapegrad.utils.tensorboard``
(SummaryWriter, the tensorboard extra)."""
from . import _pytree, benchmark, checkpoint, data, hooks  # noqa: F401
