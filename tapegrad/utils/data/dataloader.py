"""``DataLoader``: batches of a dataset, in this process or in worker processes, collated into tensors."""
from __future__ import annotations

import collections.abc
import hashlib
import itertools
import multiprocessing
import multiprocessing.connection as mp_connection
import numbers
import os
import signal
import time
import uuid
import weakref
from typing import Generic

import numpy as np

from ... import random as _random
from ...tensor import Tensor
from . import _worker
from ._worker import get_worker_info  # noqa: F401  (PyTorch's place for it)
from .dataset import IterableDataset, T_co
from .sampler import BatchSampler, RandomSampler, SequentialSampler, _InfiniteConstantSampler


def default_collate(batch):
    """Stack a list of samples into a batch, keeping the samples' structure.

    Tensors and numpy arrays are stacked on a new first dimension; Python floats become a
    float64 tensor and ints an int64 tensor (as in PyTorch); tuples, lists and dicts are
    collated field by field (a tuple's fields come back as a list, as PyTorch's do; a namedtuple
    stays one); strings stay a list.

    >>> default_collate([(tapegrad.zeros(2), 0), (tapegrad.ones(2), 1)])
    [tensor([[0., 0.], [1., 1.]]), tensor([0, 1])]
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
        if isinstance(elem, (tuple, list)):
            return fields
        try:
            return type(elem)(fields)
        except TypeError:  # a sequence type that can't be built from a list
            return fields
    raise TypeError(f"default_collate: batch must contain tensors, numpy arrays, numbers, dicts or lists; "
                    f"found {type(elem).__name__}")


class DataLoader(Generic[T_co]):
    """Iterate over ``dataset`` in batches, in this process or in ``num_workers`` worker processes.

    >>> loader = DataLoader(TensorDataset(x, y), batch_size=64, shuffle=True, num_workers=2,
    ...                     generator=tapegrad.Generator().manual_seed(0))
    >>> for xb, yb in loader: ...

    PyTorch's arguments and semantics. Shuffling draws a fresh permutation each epoch from
    ``generator`` (or from the global random state, which ``tapegrad.manual_seed`` seeds); the
    order does not depend on ``num_workers``. Samplers are iterated lazily: no index list is
    built for the whole epoch. With the default collate, a dataset offering ``_batch(indices)``
    (``TensorDataset``, ``HDF5Dataset``, a ``Subset`` of either) is indexed one whole batch at a time.

    With ``num_workers > 0``, each worker is a process (``fork`` on Linux, or
    ``multiprocessing_context='spawn'``) that loads whole batches; ``prefetch_factor`` batches per
    worker are in flight and they come back in order (``in_order=False``: as they are ready).
    Worker ``i`` seeds Python's, numpy's and tapegrad's random state from the loader's base seed
    plus ``i`` and runs ``worker_init_fn(i)``; ``get_worker_info()`` tells the dataset which worker
    it is in (an ``IterableDataset`` is iterated by every worker: split it with that). Arrays come
    back through shared memory. A worker's exception is raised here with its traceback; a worker
    that dies is reported as such; ``timeout`` bounds the wait for a batch. Workers stop at the end
    of the epoch (``persistent_workers=True``: when the loader is collected), when the iterator is
    deleted, on an exception here (Ctrl-C included), and at exit. ``pin_memory`` is a no-op: there
    is no GPU to pin for.

    Where PyTorch has a trap, this loader differs: ``prefetch_factor=0`` is refused when the loader
    is built (PyTorch accepts it, then fails on ``iter`` with an AssertionError); a full
    ``/dev/shm`` sends batches through a pipe with a warning (PyTorch's workers die of SIGBUS);
    ``timeout`` with ``num_workers=0`` is accepted and has nothing to bound (PyTorch raises
    AssertionError on ``iter``); ``WeightedRandomSampler`` draws lazily and checks its weights
    when built.
    """

    def __init__(self, dataset, batch_size=1, shuffle=None, sampler=None, batch_sampler=None, num_workers=0,
                 collate_fn=None, pin_memory=False, drop_last=False, timeout=0, worker_init_fn=None,
                 multiprocessing_context=None, generator=None, *, prefetch_factor=None, persistent_workers=False,
                 pin_memory_device="", in_order=True):
        if not isinstance(num_workers, int) or num_workers < 0:
            raise ValueError("num_workers option should be non-negative; use num_workers=0 to disable "
                             "multiprocessing.")
        if timeout < 0:
            raise ValueError("timeout option should be non-negative")
        if num_workers == 0 and prefetch_factor is not None:
            raise ValueError("prefetch_factor option could only be specified in multiprocessing.let num_workers > 0 "
                             "to enable multiprocessing, otherwise set prefetch_factor to None.")
        if num_workers > 0 and prefetch_factor is None:
            prefetch_factor = 2
        elif prefetch_factor is not None and prefetch_factor < 1:
            # PyTorch accepts 0 here and fails on iter() with an AssertionError: refused at once.
            raise ValueError(f"prefetch_factor option should be a positive integer (batches loaded in advance by "
                             f"each worker), got {prefetch_factor}")
        if persistent_workers and num_workers == 0:
            raise ValueError("persistent_workers option needs num_workers > 0")
        if batch_size is not None and (not isinstance(batch_size, (int, np.integer)) or isinstance(batch_size, bool)
                                       or batch_size <= 0):
            raise ValueError(f"batch_size should be a positive integer value, but got batch_size={batch_size}")
        self._iterable = isinstance(dataset, IterableDataset)
        if self._iterable:
            if shuffle not in (False, None):
                raise ValueError(f"DataLoader with IterableDataset: expected unspecified shuffle option, but got "
                                 f"shuffle={shuffle}")
            if sampler is not None:
                raise ValueError(f"DataLoader with IterableDataset: expected unspecified sampler option, but got "
                                 f"sampler={sampler}")
            if batch_sampler is not None:
                raise ValueError(f"DataLoader with IterableDataset: expected unspecified batch_sampler option, but "
                                 f"got batch_sampler={batch_sampler}")
        shuffle = bool(shuffle)
        if sampler is not None and shuffle:
            raise ValueError("sampler option is mutually exclusive with shuffle")
        if batch_sampler is not None:
            if batch_size != 1 or shuffle or sampler is not None or drop_last:
                raise ValueError("batch_sampler option is mutually exclusive with batch_size, shuffle, sampler, "
                                 "and drop_last")
            batch_size, drop_last = None, False
        elif batch_size is None and drop_last:
            raise ValueError("batch_size=None option disables auto-batching and is mutually exclusive with "
                             "drop_last")
        if sampler is None:
            if self._iterable:
                sampler = _InfiniteConstantSampler()
            elif shuffle:
                sampler = RandomSampler(dataset, generator=generator)
            else:
                sampler = SequentialSampler(dataset)
        if batch_size is not None and batch_sampler is None:
            batch_sampler = BatchSampler(sampler, int(batch_size), drop_last)

        self.dataset = dataset
        self.num_workers = num_workers
        self.prefetch_factor = prefetch_factor
        self.pin_memory = pin_memory
        self.pin_memory_device = pin_memory_device
        self.timeout = timeout
        self.worker_init_fn = worker_init_fn
        self.multiprocessing_context = multiprocessing_context
        self.in_order = in_order
        self.batch_size = batch_size
        self.drop_last = drop_last
        self.sampler = sampler
        self.batch_sampler = batch_sampler
        self.generator = generator
        self.persistent_workers = persistent_workers
        self.shuffle = shuffle
        if collate_fn is None:
            collate_fn = default_collate if self._auto_collation else default_convert
        self.collate_fn = collate_fn
        self._iterator = None

    @property
    def multiprocessing_context(self):
        """The start method of the workers (None: the platform's default, ``fork`` on Linux), or a
        ``multiprocessing`` context; only with ``num_workers > 0``."""
        return self._mp_context

    @multiprocessing_context.setter
    def multiprocessing_context(self, ctx):
        if ctx is not None:
            if self.num_workers == 0:
                raise ValueError(f"multiprocessing_context can only be used with multi-process loading "
                                 f"(num_workers > 0), but got num_workers={self.num_workers}")
            if isinstance(ctx, str):
                methods = multiprocessing.get_all_start_methods()
                if ctx not in methods:
                    raise ValueError(f"multiprocessing_context option should specify a valid start method in "
                                     f"{methods!r}, but got multiprocessing_context={ctx!r}")
                ctx = multiprocessing.get_context(ctx)
            elif not isinstance(ctx, multiprocessing.context.BaseContext):
                raise TypeError(f"multiprocessing_context option should be a valid context object or a string "
                                f"specifying the start method, but got multiprocessing_context={ctx}")
        self._mp_context = ctx

    @property
    def _auto_collation(self):
        return self.batch_sampler is not None

    @property
    def _index_sampler(self):
        return self.batch_sampler if self._auto_collation else self.sampler

    def _index_iter(self):
        """The epoch's indices, one batch at a time (int64 arrays where the sampler allows)."""
        bs = self.batch_sampler
        if bs is not None and not self._iterable and type(bs).__iter__ is BatchSampler.__iter__:
            return bs._array_batches()
        return iter(self._index_sampler)

    def _fast(self):
        return (not self._iterable and self._auto_collation and self.collate_fn is default_collate
                and hasattr(self.dataset, "_batch"))

    def __iter__(self):
        if self.num_workers == 0:
            return _SingleProcessIter(self)
        if self.persistent_workers:
            if self._iterator is None or self._iterator._closed:
                self._iterator = _MultiProcessIter(self)
            else:
                self._iterator._reset(self)
            return self._iterator
        return _MultiProcessIter(self)

    def __len__(self):
        if self._iterable:
            n = len(self.dataset)  # a TypeError when the stream has no length, as in PyTorch
            if self.batch_size is None:
                return n
            return n // self.batch_size if self.drop_last else -(-n // self.batch_size)
        return len(self._index_sampler)


def _draw_base_seed(generator):
    """The seed workers derive theirs from, taken for every iterator, workers or not, so that the
    order (drawn next, from the same source) does not depend on ``num_workers``.

    Without a generator: one draw from the global state, as PyTorch. With one: a hash of its
    state, without drawing from it, so that a seeded loader seeds its workers reproducibly and
    still shuffles exactly as it did before there were workers (the examples' published figures
    depend on that order)."""
    if generator is None:
        return int(_random.rng(None).integers(0, 2 ** 63))
    digest = hashlib.blake2b(repr(_random.rng(generator).bit_generator.state).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


class _BaseDataLoaderIter:
    """What iterating a ``DataLoader`` gives: in one process or with workers (PyTorch's names for
    the two, ``_SingleProcessDataLoaderIter`` and ``_MultiProcessingDataLoaderIter``, are theirs
    here; libraries check which one they hold)."""


class _SingleProcessIter(_BaseDataLoaderIter):
    def __init__(self, loader):
        self._base_seed = _draw_base_seed(loader.generator)
        self._index = loader._index_iter()
        if loader._iterable:
            self._fetcher = _worker.IterFetcher(loader.dataset, loader._auto_collation, loader.collate_fn,
                                                loader.drop_last)
        else:
            self._fetcher = _worker.MapFetcher(loader.dataset, loader._auto_collation, loader.collate_fn,
                                               loader._fast())

    def __iter__(self):
        return self

    def __next__(self):
        return self._fetcher.fetch(next(self._index))


class _Pool:
    """A loader's worker processes and their channels: all that shutdown needs, and nothing that
    refers back to the iterator (whose collection is what triggers the shutdown)."""

    def __init__(self):
        self.workers, self.index_queues, self.conns = [], [], []
        self.mappings = []  # per worker: segment id -> this process's mmap of it
        # Per worker: the segments whose batch was collected (_worker.Returns). Their notices come
        # at any allocation in any thread (even inside a Queue.put holding its lock), so they only
        # queue there; the iterator passes the ids on (flush_freed) between its own puts.
        self.freed = []
        self.prefix = f"tapegrad-dl-{os.getpid()}-{uuid.uuid4().hex[:8]}-"
        self.closed = False


def _shutdown(pool):
    """Stop the workers (politely, then terminate, then kill), reap them, and unlink every segment
    they made that the main process has not taken. Idempotent."""
    if pool.closed:
        return
    pool.closed = True
    for q in pool.index_queues:
        try:
            q.put(None)
        except Exception:
            pass
    deadline = time.monotonic() + _GRACE
    for i, w in enumerate(pool.workers):
        while w.is_alive() and time.monotonic() < deadline:
            _drain(pool, i)  # a worker blocked on a full pipe must get its batch out to see the None
            w.join(0.01)
    for w in pool.workers:
        if w.is_alive():
            w.terminate()
            w.join(1.0)
        if w.is_alive():
            w.kill()
            w.join()
    for conn in pool.conns:
        # Not drained: a worker killed mid-message leaves a message that would never complete.
        # What the pipes still hold is dropped with them; the names of segments in it are unlinked
        # below with the leftovers.
        conn.close()
    for m in pool.mappings:
        m.clear()  # batches still held keep their own segment's mapping alive
    for q in pool.index_queues:
        q.cancel_join_thread()
        q.close()
    _worker.unlink_leftovers(pool.prefix)


def _drain(pool, i):
    conn = pool.conns[i]
    try:
        while conn.poll(0):
            _worker.recv(conn, pool.mappings[i], pool.freed[i], keep=False)
    except (EOFError, OSError):
        pass


def _flush_freed(pool):
    for q, freed in zip(pool.index_queues, pool.freed):
        if freed:
            q.put(("free", freed.take()))


# How long an idle worker gets to exit on its own before it is terminated. A worker still inside
# __getitem__ (a slow item, a hang) is terminated after this: it holds nothing that needs it to
# finish (a half-written segment is unlinked by name afterwards). PyTorch waits 5 s.
_GRACE = 1.0


class _MultiProcessIter(_BaseDataLoaderIter):
    def __init__(self, loader):
        self._kind = "iterable" if loader._iterable else "map"
        self._num_workers = loader.num_workers
        self._prefetch = loader.prefetch_factor
        self._timeout = loader.timeout
        self._in_order = loader.in_order
        self._persistent = loader.persistent_workers
        self._base_seed = _draw_base_seed(loader.generator)
        ctx = loader.multiprocessing_context or multiprocessing.get_context()
        self._pool = pool = _Pool()
        self._finalizer = weakref.finalize(self, _shutdown, pool)
        try:
            for i in range(self._num_workers):
                q = ctx.Queue()
                reader, writer = ctx.Pipe(duplex=False)
                w = ctx.Process(target=_worker.worker_loop, daemon=True,
                                args=(self._kind, loader.dataset, q, writer, loader._auto_collation,
                                      loader.collate_fn, loader.drop_last, loader._fast(), self._base_seed,
                                      loader.worker_init_fn, i, self._num_workers, pool.prefix, os.getpid()))
                w.start()
                # Closed at once, so that workers forked after this one do not hold this pipe's write
                # end, and the pipe reads EOF when its worker dies.
                writer.close()
                pool.workers.append(w)
                pool.index_queues.append(q)
                pool.conns.append(reader)
                pool.mappings.append({})
                pool.freed.append(_worker.Returns())
        except BaseException:
            self._finalizer()
            raise
        self._reset(loader, first=True)

    @property
    def _closed(self):
        return self._pool.closed

    @property
    def _workers(self):
        return self._pool.workers

    def _reset(self, loader, first=False):
        self._index = loader._index_iter()
        self._send_idx = self._rcvd_idx = 0
        self._task_info = {}  # task -> (worker,) while in flight, (worker, batch) once here out of order
        self._active = [True] * self._num_workers
        self._cycle = itertools.cycle(range(self._num_workers))
        if not first:
            # Persistent workers, new epoch: each worker restarts its iterator and says so; whatever
            # it sent before that (batches of an epoch left early) is dropped.
            for q in self._pool.index_queues:
                q.put("resume")
            waiting = self._num_workers
            while waiting:
                if self._get(keep=False)[0] == "resumed":
                    waiting -= 1
        for _ in range(self._prefetch * self._num_workers):
            self._try_put_index()

    def _try_put_index(self):
        try:
            index = next(self._index)
        except StopIteration:
            return
        _flush_freed(self._pool)
        for _ in range(self._num_workers):
            w = next(self._cycle)
            if self._active[w]:
                break
        else:
            return
        self._pool.index_queues[w].put((self._send_idx, index))
        self._task_info[self._send_idx] = (w,)
        self._send_idx += 1

    def __iter__(self):
        return self

    def __next__(self):
        if self._pool.closed:
            raise StopIteration
        try:
            data = self._next()
        except StopIteration:
            if not self._persistent:
                self._finalizer()
            raise
        except BaseException:
            self._finalizer()  # dead worker, timeout, Ctrl-C: stop the workers, free their memory
            raise
        if isinstance(data, _WorkerError):
            data.wrapper.reraise()  # the dataset's own exception: the iterator goes on, as in PyTorch
        return data

    def _next(self):
        while True:
            while self._rcvd_idx < self._send_idx:
                info = self._task_info.get(self._rcvd_idx)
                if info is not None and (len(info) == 2 or self._active[info[0]]):
                    break
                self._task_info.pop(self._rcvd_idx, None)  # returned out of order, or its worker ran dry
                self._rcvd_idx += 1
            else:
                raise StopIteration
            info = self._task_info[self._rcvd_idx]
            if len(info) == 2:
                del self._task_info[self._rcvd_idx]
                self._rcvd_idx += 1
                return self._process(info[1])
            msg = self._get()
            tag, idx = msg[0], msg[1]
            if tag == "stop":  # an IterableDataset's copy in that worker is exhausted
                self._active[msg[2]] = False
                self._try_put_index()
                continue
            data = msg[2] if tag == "data" else _WorkerError(msg[2])
            if idx != self._rcvd_idx and self._in_order:
                self._task_info[idx] += (data,)
                continue
            del self._task_info[idx]
            if idx == self._rcvd_idx:
                self._rcvd_idx += 1
            return self._process(data)

    def _process(self, data):
        self._try_put_index()
        return data

    def _get(self, keep=True):
        """The next message from any worker; a clear error when one died or ``timeout`` passed."""
        pool = self._pool
        deadline = None if self._timeout == 0 else time.monotonic() + self._timeout
        sentinels = {w.sentinel: i for i, w in enumerate(pool.workers)}
        conns = {c: i for i, c in enumerate(pool.conns)}
        _flush_freed(pool)
        while True:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            ready = mp_connection.wait(list(conns) + list(sentinels), timeout=left)
            if not ready:
                raise RuntimeError(f"DataLoader timed out after {self._timeout} seconds")
            for r in ready:
                if r in conns:
                    i = conns[r]
                    try:
                        return _worker.recv(r, pool.mappings[i], pool.freed[i], keep)
                    except (EOFError, OSError):
                        self._raise_dead(conns[r])
            for r in ready:
                i = sentinels[r]
                if pool.conns[i].poll(0):  # it sent something before it went: take that first
                    break
                self._raise_dead(i)

    def _raise_dead(self, i):
        w = self._pool.workers[i]
        w.join(1.0)
        code = w.exitcode
        if code is not None and code < 0:
            try:
                name = signal.Signals(-code).name
            except ValueError:
                name = f"signal {-code}"
            how = f"killed by signal {-code} ({name})"
            if -code == signal.SIGKILL:
                how += "; if nothing else killed it, the system may have run out of memory"
            elif -code == signal.SIGBUS:
                how += f"; shared memory ({_worker.SHM_DIR}) may be too small"
        else:
            how = f"with exit code {code}"
        raise RuntimeError(f"DataLoader worker {i} (pid {w.pid}) exited unexpectedly {how}")


_SingleProcessDataLoaderIter, _MultiProcessingDataLoaderIter = _SingleProcessIter, _MultiProcessIter


class _WorkerError:
    def __init__(self, wrapper):
        self.wrapper = wrapper

def default_convert(data):
    """numpy arrays and scalars (also inside dicts, lists, tuples) to tensors, everything else as
    it is: what ``DataLoader`` applies to each sample when ``batch_size=None``. As in PyTorch, a
    tuple comes back as a list (a namedtuple stays one), and arrays of strings or objects stay."""
    if isinstance(data, Tensor):
        return data
    if isinstance(data, (np.ndarray, np.generic)):
        return data if data.dtype.kind in "OSUV" else Tensor._wrap(np.asarray(data))
    if isinstance(data, collections.abc.Mapping):
        out = {k: default_convert(v) for k, v in data.items()}
        try:
            return type(data)(out)
        except TypeError:
            return out
    if isinstance(data, tuple) and hasattr(data, "_fields"):
        return type(data)(*(default_convert(d) for d in data))
    if isinstance(data, tuple):
        return [default_convert(d) for d in data]
    if isinstance(data, collections.abc.Sequence) and not isinstance(data, (str, bytes)):
        try:
            return type(data)([default_convert(d) for d in data])
        except TypeError:
            return [default_convert(d) for d in data]
    return data
