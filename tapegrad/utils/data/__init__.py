"""Datasets and loaders with ``torch.utils.data``'s names (also importable as ``tapegrad.data``).

>>> from tapegrad.utils.data import DataLoader, TensorDataset
>>> loader = DataLoader(TensorDataset(x, y), batch_size=64, shuffle=True)
"""
from .dataset import ConcatDataset, Dataset, Subset, TensorDataset, random_split
from .dataloader import DataLoader, default_collate
from .hdf5 import HDF5Dataset
from .sampler import BatchSampler, RandomSampler, Sampler, SequentialSampler, SubsetRandomSampler
from . import mnist  # noqa: F401

__all__ = ["Dataset", "TensorDataset", "Subset", "ConcatDataset", "random_split", "DataLoader", "default_collate",
           "HDF5Dataset", "mnist", "Sampler", "SequentialSampler", "RandomSampler",
           "SubsetRandomSampler", "BatchSampler"]
