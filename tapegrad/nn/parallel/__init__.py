"""Data parallelism over processes: ``DistributedDataParallel`` (``torch.nn.parallel``'s name), and
``DataParallel`` as PyTorch runs it without GPUs."""
from .data_parallel import DataParallel, data_parallel
from .distributed import DistributedDataParallel

__all__ = ["DataParallel", "DistributedDataParallel", "data_parallel"]
