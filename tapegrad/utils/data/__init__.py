"""Datasets and loaders with ``torch.utils.data``'s names (also importable as ``tapegrad.data``).

>>> from tapegrad.utils.data import DataLoader, TensorDataset
>>> loader = DataLoader(TensorDataset(x, y), batch_size=64, shuffle=True)
"""
from .dataset import (ChainDataset, ConcatDataset, Dataset, IterableDataset, StackDataset, Subset, TensorDataset,
                      random_split)
from .dataloader import DataLoader, default_collate, default_convert
from ._worker import WorkerInfo, get_worker_info
from .hdf5 import HDF5Dataset
from .sampler import (BatchSampler, RandomSampler, Sampler, SequentialSampler, SubsetRandomSampler,
                      WeightedRandomSampler)
from . import mnist  # noqa: F401
from .distributed import DistributedSampler  # noqa: F401

__all__ = ["Dataset", "TensorDataset", "Subset", "ConcatDataset", "random_split", "DataLoader", "default_collate",
           "HDF5Dataset", "mnist", "Sampler", "SequentialSampler", "RandomSampler",
           "SubsetRandomSampler", "BatchSampler", "WeightedRandomSampler", "IterableDataset", "ChainDataset",
           "StackDataset", "default_convert", "get_worker_info", "WorkerInfo", "DistributedSampler"]
