"""Data parallelism over processes: ``DistributedDataParallel`` (``torch.nn.parallel``'s name), and
``DataParallel`` as PyTorch runs it without GPUs."""
from .data_parallel import DataParallel, data_parallel
from .distributed import DistributedDataParallel
from .scatter_gather import gather, scatter, scatter_kwargs

__all__ = ["DataParallel", "DistributedDataParallel", "data_parallel", "gather", "scatter", "scatter_kwargs"]
