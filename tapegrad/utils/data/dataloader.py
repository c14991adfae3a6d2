"""``DataLoader``: batches of a dataset, shuffled or not, collated into tensors."""
from __future__ import annotations

import collections.abc
import numbers

import numpy as np

from ... import random as _random
from ...tensor import Tensor
from .dataset import IterableDataset


def default_collate(batch):
    """Stack a list of samples into a batch, keeping the samples' structure.

    Tensors and numpy arrays are stacked on a new first dimension; Python floats become a
    float64 tensor and ints an int64 tensor (as in PyTorch); tuples, lists and dicts are
    collated field by field; strings stay a list.

    >>> default_collate([(tapegrad.zeros(2), 0), (tapegrad.ones(2), 1)])
    (tensor([[0., 0.], [1., 1.]]), tensor([0, 1]))
    """
    elem = batch[0]
    if isinstance(elem, Tensor):
        return Tensor._wrap(np.stack([b._data for b in batch]))
    if isinstance(elem, np.ndarray):
        return Tensor._wrap(np.stack(batch))
    if isinstance(elem, np.generic):
        return Tensor._wrap(np.array(batch))
    if isinstance(elem, bool):
        return Tensor._wrap(np.array(batch, dtype=np.bool_))
    if isinstance(elem, numbers.Integral):
        return Tensor._wrap(np.array(batch, dtype=np.int64))
    if isinstance(elem, numbers.Real):
        return Tensor._wrap(np.array(batch, dtype=np.float64))
    if isinstance(elem, (str, bytes)):
        return list(batch)
    if isinstance(elem, collections.abc.Mapping):
        out = {k: default_collate([b[k] for b in batch]) for k in elem}
        try:
            return type(elem)(out)
        except TypeError:  # a mapping type that can't be built from a dict
            return out
    if isinstance(elem, tuple) and hasattr(elem, "_fields"):  # namedtuple
        return type(elem)(*(default_collate(list(f)) for f in zip(*batch)))
    if isinstance(elem, collections.abc.Sequence):
        if any(len(b) != len(elem) for b in batch):
            raise RuntimeError("default_collate: each element in list of batch should be of equal size")
        fields = [default_collate(list(f)) for f in zip(*batch)]
        return tuple(fields) if isinstance(elem, tuple) else fields
    raise TypeError(f"default_collate: batch must contain tensors, numpy arrays, numbers, dicts or lists; "
                    f"found {type(elem).__name__}")


class DataLoader:
    """Iterate over ``dataset`` in batches.

    >>> loader = DataLoader(TensorDataset(x, y), batch_size=64, shuffle=True,
    ...                     generator=tapegrad.Generator().manual_seed(0))
    >>> for xb, yb in loader: ...

    Shuffling draws a fresh permutation each epoch from ``generator`` (or from the global
    random state, which ``tapegrad.manual_seed`` seeds). With the default collate, a dataset
    offering ``_batch(indices)`` (``TensorDataset``, ``HDF5Dataset``, a ``Subset`` of either)
    is indexed one whole batch at a time. ``num_workers`` is accepted for compatibility and
    ignored: batches are produced in the calling thread.
    """

    def __init__(self, dataset, batch_size=1, shuffle=False, sampler=None, batch_sampler=None, num_workers=0,
                 collate_fn=None, pin_memory=False, drop_last=False, timeout=0, worker_init_fn=None,
                 generator=None, prefetch_factor=None, persistent_workers=False):
        if batch_size is not None and batch_size <= 0:
            raise ValueError(f"batch_size should be a positive integer, got {batch_size}")
        if sampler is not None and shuffle:
            raise ValueError("sampler option is mutually exclusive with shuffle")
        if batch_sampler is not None and (batch_size != 1 or shuffle or sampler is not None or drop_last):
            raise ValueError("batch_sampler option is mutually exclusive with batch_size, shuffle, sampler, "
                             "and drop_last")
        if isinstance(dataset, IterableDataset) and (shuffle or sampler is not None or batch_sampler is not None):
            raise ValueError(f"DataLoader with IterableDataset: expected unspecified shuffle, sampler and "
                             f"batch_sampler options, got shuffle={shuffle}, sampler={sampler}, "
                             f"batch_sampler={batch_sampler}")
        self.dataset = dataset
        self.pin_memory = pin_memory
        self.batch_size = None if batch_sampler is not None else batch_size
        self.shuffle = shuffle
        self.sampler = sampler
        self.batch_sampler = batch_sampler
        self.drop_last = drop_last
        self.generator = generator
        self.num_workers = num_workers
        self.collate_fn = collate_fn if collate_fn is not None else default_collate

    def _index_batches(self):
        if self.batch_sampler is not None:
            for b in self.batch_sampler:
                yield np.asarray(b, dtype=np.int64)
            return
        if self.batch_size is None:  # automatic batching off: the sampler's items, uncollated
            yield from (self.sampler if self.sampler is not None else self._order().tolist())
            return
        order = np.fromiter(iter(self.sampler), dtype=np.int64) if self.sampler is not None else self._order()
        n = len(order)
        stop = n - n % self.batch_size if self.drop_last else n
        for start in range(0, stop, self.batch_size):
            yield order[start:start + self.batch_size]

    def _order(self):
        n = len(self.dataset)
        return _random.rng(self.generator).permutation(n) if self.shuffle else np.arange(n)

    def _iter_stream(self):
        """An IterableDataset: its samples in order, in batches of ``batch_size``."""
        if self.batch_size is None:
            yield from self.dataset
            return
        batch = []
        for sample in self.dataset:
            batch.append(sample)
            if len(batch) == self.batch_size:
                yield self.collate_fn(batch)
                batch = []
        if batch and not self.drop_last:
            yield self.collate_fn(batch)

    def __iter__(self):
        if isinstance(self.dataset, IterableDataset):
            yield from self._iter_stream()
            return
        fast = self.collate_fn is default_collate and hasattr(self.dataset, "_batch")
        for idx in self._index_batches():
            if self.batch_size is None and self.batch_sampler is None:
                yield self.dataset[idx]
            elif fast:
                yield self.dataset._batch(idx)
            else:
                yield self.collate_fn([self.dataset[int(i)] for i in idx])

    def __len__(self):
        if isinstance(self.dataset, IterableDataset):
            n = len(self.dataset)  # a TypeError when the stream has no length, as in PyTorch
            if self.batch_size is None:
                return n
            return n // self.batch_size if self.drop_last else -(-n // self.batch_size)
        if self.batch_sampler is not None:
            return len(self.batch_sampler)
        n = len(self.sampler) if self.sampler is not None else len(self.dataset)
        if self.batch_size is None:
            return n
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)


def default_convert(data):
    """numpy arrays (and containers of them) to tensors, leaving everything else as it is."""
    if isinstance(data, np.ndarray) and data.dtype.kind in "biuf":
        return Tensor._wrap(data)
    if isinstance(data, collections.abc.Mapping):
        return {k: default_convert(v) for k, v in data.items()}
    if isinstance(data, tuple) and hasattr(data, "_fields"):
        return type(data)(*(default_convert(d) for d in data))
    if isinstance(data, (list, tuple)):
        return type(data)(default_convert(d) for d in data)
    return data


def get_worker_info():
    """None: tapegrad's DataLoader loads in the calling process (no worker processes)."""
    return None
