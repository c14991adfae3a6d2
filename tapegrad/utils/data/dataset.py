"""Datasets: anything with ``__getitem__`` and ``__len__``, as in ``torch.utils.data``.

A dataset may also offer ``_batch(indices)``: the whole collated batch for an int64 index
array, in one numpy fancy-indexing call. ``DataLoader`` uses it when its collate is the default
one, so a training loop over a ``TensorDataset`` costs a few array copies per batch, not a
Python loop over samples.
"""
from __future__ import annotations

import math
import warnings

from typing import Generic, Iterable, TypeVar

import numpy as np

from ... import random as _random
from ...tensor import Tensor

# PyTorch's datasets are generic in their sample type (``Dataset[int]``, and torchvision's
# ``class VisionDataset(data.Dataset[T_co])`` subscripts it at import time)
T_co = TypeVar("T_co", covariant=True)


class Dataset(Generic[T_co]):
    """Subclass and define ``__getitem__(i)`` (and ``__len__``)."""

    def __getitem__(self, index):
        raise NotImplementedError("Dataset subclasses must define __getitem__")

    def __add__(self, other):
        return ConcatDataset([self, other])


class TensorDataset(Dataset[tuple]):
    """Samples are the i-th rows of the given tensors (same first dimension).

    >>> ds = TensorDataset(tapegrad.randn(100, 3), tapegrad.arange(100))
    >>> x, y = ds[0]
    """

    def __init__(self, *tensors):
        if not tensors:
            raise ValueError("TensorDataset needs at least one tensor")
        n = tensors[0].shape[0]
        if any(t.shape[0] != n for t in tensors):
            raise ValueError("Size mismatch between tensors: " + ", ".join(str(tuple(t.shape)) for t in tensors))
        self.tensors = tuple(tensors)

    def __getitem__(self, index):
        return tuple(t[index] for t in self.tensors)

    def __len__(self):
        return self.tensors[0].shape[0]

    def _batch(self, indices: np.ndarray):
        return tuple(Tensor._wrap(t._data[indices]) for t in self.tensors)


class Subset(Dataset[T_co]):
    """The samples of ``dataset`` at ``indices``, in that order."""

    def __init__(self, dataset, indices):
        self.dataset = dataset
        self.indices = indices

    def __getitem__(self, idx):
        if isinstance(idx, list):
            return self.dataset[[self.indices[i] for i in idx]]
        return self.dataset[self.indices[idx]]

    def __len__(self):
        return len(self.indices)

    def __getattr__(self, name):
        # Only the fast path is forwarded, and only when the wrapped dataset has one.
        if name == "_batch" and hasattr(self.dataset, "_batch"):
            idx = np.asarray(self.indices, dtype=np.int64)
            return lambda indices: self.dataset._batch(idx[indices])
        raise AttributeError(name)


class ConcatDataset(Dataset[T_co]):
    """Several datasets one after another."""

    def __init__(self, datasets):
        self.datasets = list(datasets)
        self.cumulative_sizes = np.cumsum([len(d) for d in self.datasets]).tolist()

    def __len__(self):
        return self.cumulative_sizes[-1] if self.cumulative_sizes else 0

    def __getitem__(self, idx):
        if idx < 0:
            idx += len(self)
        if not 0 <= idx < len(self):
            raise IndexError(f"index {idx} out of range for ConcatDataset of length {len(self)}")
        d = int(np.searchsorted(self.cumulative_sizes, idx, side="right"))
        return self.datasets[d][idx - (self.cumulative_sizes[d - 1] if d else 0)]


def random_split(dataset, lengths, generator=None):
    """Split into non-overlapping subsets (``Subset``) of the given lengths, or of fractions summing to 1
    (the remainder goes round-robin to the first splits, as PyTorch does).

    >>> train, val = random_split(ds, [0.8, 0.2], generator=tapegrad.Generator().manual_seed(0))
    """
    n = len(dataset)
    lengths = list(lengths)
    if lengths and all(0 <= f <= 1 for f in lengths) and math.isclose(sum(lengths), 1) and sum(lengths) <= 1 \
            and not all(isinstance(f, int) for f in lengths):
        counts = [int(math.floor(n * f)) for f in lengths]
        for i in range(n - sum(counts)):
            counts[i % len(counts)] += 1
        for i, c in enumerate(counts):
            if c == 0:
                warnings.warn(f"random_split: length of split at index {i} is 0", stacklevel=2)
        lengths = counts
    if sum(lengths) != n:
        raise ValueError(f"random_split: sum of input lengths ({sum(lengths)}) does not equal the length of "
                         f"the dataset ({n})")
    perm = _random.rng(generator).permutation(n)
    out, start = [], 0
    for length in lengths:
        out.append(Subset(dataset, perm[start:start + length].tolist()))
        start += length
    return out


class IterableDataset(Dataset[T_co], Iterable[T_co]):
    """A stream of samples: subclass and define ``__iter__``. ``DataLoader`` batches it in order
    (no sampler, no shuffle)."""

    def __iter__(self):
        raise NotImplementedError("IterableDataset subclasses must define __iter__")

    def __add__(self, other):
        return ChainDataset([self, other])


class ChainDataset(IterableDataset):
    """Several iterable datasets, one after the other."""

    def __init__(self, datasets):
        self.datasets = list(datasets)

    def __iter__(self):
        for d in self.datasets:
            yield from d

    def __len__(self):
        return sum(len(d) for d in self.datasets)


class StackDataset(Dataset[T_co]):
    """Samples are tuples (positional datasets) or dicts (keyword datasets) of the datasets' i-th
    samples."""

    def __init__(self, *args, **kwargs):
        if args and kwargs:
            raise ValueError("Supported either ``tuple``- (via ``args``) or``dict``- (via ``kwargs``) like input/"
                             "output, but both types are given.")
        self.datasets = args if args else kwargs
        lengths = {len(d) for d in (args or kwargs.values())}
        if len(lengths) != 1:
            raise ValueError("Size mismatch between datasets")
        self._length = lengths.pop()

    def __getitem__(self, index):
        if isinstance(self.datasets, dict):
            return {k: d[index] for k, d in self.datasets.items()}
        return tuple(d[index] for d in self.datasets)

    def __len__(self):
        return self._length
