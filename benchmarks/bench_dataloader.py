"""DataLoader worker processes: speed-up on a slow dataset, and what moving a batch costs.

Run: python benchmarks/bench_dataloader.py [--repeats 5] [--items 64]

(a) speed-up: a dataset whose items each take 10 ms (``time.sleep``: the waiting of a file read
    or a decode, which worker processes overlap), one epoch of ``--items`` items, worker start-up
    included, for 0, 1 and 2 workers and a few batch sizes; then the second epoch with
    ``persistent_workers=True`` (no start-up). PyTorch's DataLoader on the same dataset beside it
    when ``import torch`` works. speed-up = time with 0 workers / time with n.
(b) transport: one worker hands back batches of one float32 array of the given size (no work
    per item), so the time per batch is the loader's own cost (asking for the batch, moving it):
    with the array in a shared-memory segment, or through the worker's pipe as raw buffers (the
    loader picks by size; both forced here), and PyTorch's DataLoader on the same dataset. For
    reference, the same arrays streamed one way, pickled, through a ``multiprocessing.Queue``
    (no requests, no loader: what pickling the bytes alone costs).

Each figure is the best of ``--repeats`` runs (other load on the machine only slows a run down).
"""
from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
import tapegrad  # noqa: E402,F401
from tapegrad.utils.data import DataLoader, Dataset  # noqa: E402
from tapegrad.utils.data import _worker  # noqa: E402

try:
    import torch
except ImportError:
    torch = None


class SlowItems(Dataset):
    def __init__(self, n, seconds=0.01):
        self.n, self.seconds = n, seconds

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        time.sleep(self.seconds)
        return np.full(16, i, np.float32), i


class FixedBatch(Dataset):
    """Item i is a ready-made array of ``nbytes``: loading costs nothing, moving it is all."""

    def __init__(self, n, nbytes):
        self.n, self.arr = n, np.ones(nbytes // 4, np.float32)

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        return self.arr


def best(fn, repeats):
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def epoch(make_loader):
    return lambda: sum(1 for _ in make_loader())


def speedup_table(items, repeats):
    print(f"(a) one epoch of {items} items of 10 ms each, worker start-up included (best of {repeats})")
    print(f"{'batch':>5} {'workers':>7} {'tapegrad s':>10} {'speed-up':>8} {'PyTorch s':>9} {'speed-up':>8}")
    results = {}
    for bs in (1, 4, 16):
        base = {}
        for nw in (0, 1, 2):
            ours = best(epoch(lambda: DataLoader(SlowItems(items), batch_size=bs, num_workers=nw)), repeats)
            theirs = None
            if torch is not None:
                theirs = best(epoch(lambda: torch.utils.data.DataLoader(SlowItems(items), batch_size=bs,
                                                                        num_workers=nw)), repeats)
            if nw == 0:
                base = {"ours": ours, "theirs": theirs}
            results[(bs, nw)] = base["ours"] / ours
            t_col = f"{theirs:9.3f} {base['theirs'] / theirs:8.2f}" if theirs else f"{'-':>9} {'-':>8}"
            print(f"{bs:5d} {nw:7d} {ours:10.3f} {base['ours'] / ours:8.2f} {t_col}")
    loader = DataLoader(SlowItems(items), batch_size=4, num_workers=2, persistent_workers=True)
    sum(1 for _ in loader)  # first epoch starts the workers
    second = best(epoch(lambda: loader), repeats)
    single = best(epoch(lambda: DataLoader(SlowItems(items), batch_size=4)), repeats)
    print(f"persistent_workers, batch 4, 2 workers, a later epoch: {second:.3f} s, speed-up {single / second:.2f}")
    return results


def _queue_child(q, nbytes, n):
    arr = np.ones(nbytes // 4, np.float32)
    for _ in range(n):
        q.put(arr)


WARM = 10  # batches left out of the timing: start-up, and a worker's first segments being made


def pickled_queue_seconds(nbytes, n):
    q = multiprocessing.Queue()
    p = multiprocessing.Process(target=_queue_child, args=(q, nbytes, n + WARM))
    p.start()
    for _ in range(WARM):
        q.get()
    t = time.perf_counter()
    for _ in range(n):
        q.get()
    dt = (time.perf_counter() - t) / n
    p.join()
    return dt


def loader_seconds(nbytes, n, shm_min):
    saved = _worker.SHM_MIN_BYTES
    _worker.SHM_MIN_BYTES = shm_min  # read by the workers, forked after this
    try:
        it = iter(DataLoader(FixedBatch(n + WARM, nbytes), batch_size=None, num_workers=1))
        for _ in range(WARM):
            next(it)
        t = time.perf_counter()
        count = sum(1 for _ in it)
        return (time.perf_counter() - t) / count
    finally:
        _worker.SHM_MIN_BYTES = saved


def torch_seconds(nbytes, n):
    it = iter(torch.utils.data.DataLoader(FixedBatch(n + WARM, nbytes), batch_size=None, num_workers=1))
    for _ in range(WARM):
        next(it)
    t = time.perf_counter()
    count = sum(1 for _ in it)
    return (time.perf_counter() - t) / count


def transport_table(repeats):
    print(f"\n(b) one worker, batches of one float32 array, time per batch in ms (best of {repeats})")
    print(f"{'size':>9} {'shared memory':>13} {'pipe':>8} {'PyTorch':>8} {'bare pickled Queue':>18}")
    for nbytes in (16 << 10, 64 << 10, 256 << 10, 1 << 20, 4 << 20, 32 << 20):
        n = 200 if nbytes <= 1 << 20 else 50
        shm = min(loader_seconds(nbytes, n, 0) for _ in range(repeats))
        pipe = min(loader_seconds(nbytes, n, 1 << 62) for _ in range(repeats))
        pick = min(pickled_queue_seconds(nbytes, n) for _ in range(repeats))
        theirs = f"{min(torch_seconds(nbytes, n) for _ in range(repeats)) * 1e3:8.3f}" if torch else f"{'-':>8}"
        size = f"{nbytes >> 10} KiB" if nbytes < 1 << 20 else f"{nbytes >> 20} MiB"
        print(f"{size:>9} {shm * 1e3:13.3f} {pipe * 1e3:8.3f} {theirs} {pick * 1e3:18.3f}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--items", type=int, default=64)
    args = ap.parse_args()
    speedup_table(args.items, args.repeats)
    transport_table(args.repeats)


if __name__ == "__main__":
    main()
