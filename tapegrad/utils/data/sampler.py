"""Samplers: the order in which ``DataLoader`` visits a dataset, with PyTorch's names.

Every sampler here is lazy: it draws its indices a chunk at a time, so
``RandomSampler(ds, replacement=True, num_samples=10**10)`` costs a few hundred bytes, not 75 GiB.
Each one yields its indices both as Python ints (``__iter__``, what user code sees) and as int64
arrays (``_chunks``, what ``DataLoader`` batches without a Python loop per index); both come from
the same draws, so a seeded generator gives the same order either way.
"""
from __future__ import annotations

import itertools

from typing import Generic, TypeVar

import numpy as np

from ... import random as _random

T_co = TypeVar("T_co", covariant=True)  # samplers are generic in their index type, as PyTorch's
_CHUNK = 32  # draws with replacement come in chunks of 32, as PyTorch's RandomSampler draws them
_SEQ_CHUNK = 1 << 16


def _is_int(x):
    return isinstance(x, (int, np.integer)) and not isinstance(x, (bool, np.bool_))


def _private_rng(generator):
    """The generator a pass draws from. Without one, PyTorch's rule: a fresh stream seeded by one
    draw from the global state, so that the order of a pass does not depend on what the training
    loop draws (dropout, init) while the pass is under way."""
    if generator is not None:
        return _random.rng(generator)
    return np.random.default_rng(int(_random.rng(None).integers(0, 2 ** 63)))


class Sampler(Generic[T_co]):
    """Iterates over dataset indices (subclass and define ``__iter__``, and ``__len__`` if known)."""

    def __init__(self, data_source=None):
        pass

    def __iter__(self):
        raise NotImplementedError

    def _chunks(self):
        """The indices as int64 arrays, for samplers that know their indices are ints."""
        raise NotImplementedError


class SequentialSampler(Sampler[int]):
    """0, 1, ..., len(data_source) - 1."""

    def __init__(self, data_source):
        self.data_source = data_source

    def __iter__(self):
        return iter(range(len(self.data_source)))

    def _chunks(self):
        n = len(self.data_source)
        for start in range(0, n, _SEQ_CHUNK):
            yield np.arange(start, min(start + _SEQ_CHUNK, n), dtype=np.int64)

    def __len__(self):
        return len(self.data_source)


class RandomSampler(Sampler[int]):
    """A fresh random permutation each pass, or ``num_samples`` draws with ``replacement``.

    Without replacement, ``num_samples`` may exceed ``len(data_source)``: whole permutations follow
    one another, as in PyTorch. Draws with replacement come 32 at a time, so any ``num_samples``
    costs constant memory.

    >>> list(RandomSampler(range(4), generator=tapegrad.Generator().manual_seed(0)))
    [3, 1, 0, 2]
    """

    def __init__(self, data_source, replacement=False, num_samples=None, generator=None):
        self.data_source, self.replacement, self.generator = data_source, replacement, generator
        self._num_samples = num_samples
        if not isinstance(replacement, bool):
            raise TypeError(f"replacement should be a boolean value, but got replacement={replacement}")
        if not _is_int(self.num_samples) or self.num_samples <= 0:
            raise ValueError(f"num_samples should be a positive integer value, but got "
                             f"num_samples={self.num_samples}")

    @property
    def num_samples(self):
        """The number of indices an epoch draws (the dataset's length unless given)."""
        return len(self.data_source) if self._num_samples is None else self._num_samples

    def _chunks(self):
        n, total = len(self.data_source), int(self.num_samples)
        g = _private_rng(self.generator)
        if self.replacement:
            for _ in range(total // _CHUNK):
                yield g.integers(0, n, _CHUNK, dtype=np.int64)
            if total % _CHUNK:
                yield g.integers(0, n, total % _CHUNK, dtype=np.int64)
        else:
            for _ in range(total // n):
                yield g.permutation(n)
            if total % n:
                yield g.permutation(n)[:total % n]

    def __iter__(self):
        for chunk in self._chunks():
            yield from chunk.tolist()

    def __len__(self):
        return self.num_samples


class SubsetRandomSampler(Sampler[int]):
    """The given indices, in a fresh random order each pass."""

    def __init__(self, indices, generator=None):
        self.indices, self.generator = indices, generator

    def _order(self):
        return _random.rng(self.generator).permutation(len(self.indices))

    def __iter__(self):
        for i in self._order().tolist():
            yield self.indices[i]

    def _chunks(self):
        idx = np.asarray(self.indices)
        if idx.dtype.kind not in "iu":  # not int indices (keys of a dict-backed dataset): Python path
            raise NotImplementedError
        yield idx.astype(np.int64, copy=False)[self._order()]

    def __len__(self):
        return len(self.indices)


class WeightedRandomSampler(Sampler[int]):
    """``num_samples`` indices drawn with probability proportional to ``weights`` (for imbalanced
    classes: ``WeightedRandomSampler(1 / class_count[labels], len(labels))``).

    With replacement the draws are lazy (32 at a time, by inverting the cumulative weights), where
    PyTorch draws all ``num_samples`` at once. Without replacement, each pass is a sequential draw
    without replacement (the exponential-race form, as PyTorch's ``multinomial``). Bad weights
    are refused here, at construction, rather than at the first pass.
    """

    def __init__(self, weights, num_samples, replacement=True, generator=None):
        if not _is_int(num_samples) or num_samples <= 0:
            raise ValueError(f"num_samples should be a positive integer value, but got num_samples={num_samples}")
        if not isinstance(replacement, bool):
            raise ValueError(f"replacement should be a boolean value, but got replacement={replacement}")
        w = np.asarray(weights.tolist() if hasattr(weights, "tolist") else weights, dtype=np.float64)
        if w.ndim != 1:
            raise ValueError(f"weights should be a 1d sequence but given weights have shape {tuple(w.shape)}")
        if not np.isfinite(w).all() or (w < 0).any():
            raise RuntimeError("WeightedRandomSampler: probability tensor contains either `inf`, `nan` or "
                               "element < 0")
        if w.sum() <= 0:
            raise RuntimeError("WeightedRandomSampler: invalid multinomial distribution (sum of probabilities "
                               "<= 0)")
        if not replacement and num_samples > len(w):
            raise RuntimeError(f"WeightedRandomSampler: cannot sample n_sample > prob_dist.size(-1) samples without "
                               f"replacement (num_samples={num_samples}, {len(w)} weights)")
        self.weights, self.num_samples, self.replacement, self.generator = w, int(num_samples), replacement, generator
        cdf = np.cumsum(w)
        self._cdf = cdf / cdf[-1]

    def _chunks(self):
        g = _random.rng(self.generator)
        if self.replacement:
            last = len(self._cdf) - 1
            for start in range(0, self.num_samples, _CHUNK):
                u = g.random(min(_CHUNK, self.num_samples - start))
                # side="right" never lands on a zero-weight index; the clip guards u rounding to 1.0
                yield np.minimum(np.searchsorted(self._cdf, u, side="right"), last).astype(np.int64)
        else:
            # Sequential drawing without replacement in one go: the k smallest of E_i / w_i (E_i
            # exponential) come out in the order, and with the probabilities, of drawing one at a time.
            positive = np.flatnonzero(self.weights > 0)
            keys = g.exponential(size=len(positive)) / self.weights[positive]
            k = min(self.num_samples, len(positive))
            first = np.argpartition(keys, k - 1)[:k] if k < len(keys) else np.arange(len(keys))
            order = positive[first[np.argsort(keys[first], kind="stable")]]
            if self.num_samples > len(positive):
                # Zero weights are drawn only once all others are: in random order here (PyTorch:
                # in descending index order, an artefact of its top-k).
                zeros = np.flatnonzero(self.weights == 0)
                order = np.concatenate([order, g.permutation(zeros)[:self.num_samples - len(positive)]])
            yield order.astype(np.int64)

    def __iter__(self):
        for chunk in self._chunks():
            yield from chunk.tolist()

    def __len__(self):
        return self.num_samples


class BatchSampler(Sampler[list]):
    """Groups another sampler's indices into lists of ``batch_size``.

    >>> list(BatchSampler(SequentialSampler(range(10)), batch_size=3, drop_last=False))
    [[0, 1, 2], [3, 4, 5], [6, 7, 8], [9]]
    """

    def __init__(self, sampler, batch_size, drop_last):
        if not _is_int(batch_size) or batch_size <= 0:
            raise ValueError(f"batch_size should be a positive integer value, but got batch_size={batch_size}")
        if not isinstance(drop_last, bool):
            raise ValueError(f"drop_last should be a boolean value, but got drop_last={drop_last}")
        self.sampler, self.batch_size, self.drop_last = sampler, int(batch_size), drop_last

    def __iter__(self):
        it = iter(self.sampler)
        while True:
            batch = list(itertools.islice(it, self.batch_size))
            if not batch or (self.drop_last and len(batch) < self.batch_size):
                return
            yield batch

    def _array_batches(self):
        """The batches, drawn lazily (one batch's indices in memory at a time): int64 arrays when
        the sampler is one of ours, else lists of whatever the sampler yields."""
        chunks = _chunks_of(self.sampler)
        if chunks is None:
            yield from self
            return
        pending, have = [], 0
        for chunk in chunks:
            pending.append(chunk)
            have += len(chunk)
            if have < self.batch_size:
                continue
            flat = np.concatenate(pending) if len(pending) > 1 else pending[0]
            stop = len(flat) - len(flat) % self.batch_size
            for start in range(0, stop, self.batch_size):
                yield flat[start:start + self.batch_size]
            pending, have = ([flat[stop:]], len(flat) - stop) if stop < len(flat) else ([], 0)
        if have and not self.drop_last:
            yield np.concatenate(pending)

    def __len__(self):
        n = len(self.sampler)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)


def _chunks_of(sampler):
    """``sampler._chunks()`` when it is ours and its ``__iter__`` is not overridden (a subclass that
    changes ``__iter__`` must be iterated as it says), else None."""
    cls = type(sampler)
    for base in (SequentialSampler, RandomSampler, SubsetRandomSampler, WeightedRandomSampler):
        if isinstance(sampler, base) and cls.__iter__ is base.__iter__ and cls._chunks is base._chunks:
            if base is SubsetRandomSampler and np.asarray(sampler.indices).dtype.kind not in "iu":
                return None
            return sampler._chunks()
    return None


class _InfiniteConstantSampler(Sampler):
    """None forever: the index stream of an IterableDataset, whose items come in its own order."""

    def __iter__(self):
        return itertools.repeat(None)
