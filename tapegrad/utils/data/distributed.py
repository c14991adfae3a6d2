"""``DistributedSampler``: each rank of a data-parallel job reads its own share of a dataset."""
from __future__ import annotations

import math

from ... import distributed as dist
from ... import random as _random
from .sampler import Sampler


class DistributedSampler(Sampler[int]):
    """Rank ``rank`` of ``num_replicas`` visits indices ``rank, rank + num_replicas, ...`` of one
    permutation shared by all ranks (reshuffled by ``set_epoch``), as PyTorch's.

    >>> sampler = DistributedSampler(train_set, shuffle=True, seed=0)
    >>> loader = DataLoader(train_set, batch_size=32, sampler=sampler)
    >>> for epoch in range(epochs):
    ...     sampler.set_epoch(epoch)        # else every epoch repeats the same order
    ...     for x, y in loader: ...

    Every rank gets the same number of samples, so the ranks run the same number of steps: the
    permutation is padded with its own first indices up to a multiple of ``num_replicas`` (a few
    samples count twice), or with ``drop_last`` cut down to one (the tail is left out).
    ``num_replicas`` and ``rank`` default to the initialised process group's.
    """

    def __init__(self, dataset, num_replicas: int | None = None, rank: int | None = None, shuffle: bool = True,
                 seed: int = 0, drop_last: bool = False):
        if num_replicas is None or rank is None:
            if not dist.is_initialized():
                raise RuntimeError("DistributedSampler: pass num_replicas and rank, or call "
                                   "tapegrad.distributed.init_process_group() first")
            num_replicas = dist.get_world_size() if num_replicas is None else num_replicas
            rank = dist.get_rank() if rank is None else rank
        if num_replicas < 1:
            raise ValueError(f"DistributedSampler: num_replicas must be at least 1, got {num_replicas}")
        if not 0 <= rank < num_replicas:
            raise ValueError(f"DistributedSampler: invalid rank {rank}, rank should be in the interval "
                             f"[0, {num_replicas - 1}]")
        self.dataset, self.num_replicas, self.rank = dataset, num_replicas, rank
        self.shuffle, self.seed, self.drop_last = shuffle, seed, drop_last
        self.epoch = 0
        n = len(dataset)
        if drop_last and n % num_replicas:
            self.num_samples = math.ceil((n - num_replicas) / num_replicas)
        else:
            self.num_samples = math.ceil(n / num_replicas)
        self.total_size = self.num_samples * num_replicas

    def __iter__(self):
        n = len(self.dataset)
        if self.shuffle:  # the same permutation on every rank: seeded by seed + epoch only
            g = _random.Generator().manual_seed(self.seed + self.epoch)
            indices = _random.rng(g).permutation(n).tolist()
        else:
            indices = list(range(n))
        if not self.drop_last:
            pad = self.total_size - len(indices)
            if pad <= len(indices):
                indices += indices[:pad]
            else:
                indices += (indices * math.ceil(pad / len(indices)))[:pad]
        else:
            indices = indices[:self.total_size]
        return iter(indices[self.rank:self.total_size:self.num_replicas])

    def __len__(self) -> int:
        return self.num_samples

    def set_epoch(self, epoch: int) -> None:
        """Reshuffle for ``epoch``: call it at the start of every epoch, with the same value on all ranks."""
        self.epoch = epoch
