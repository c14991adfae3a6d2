"""What runs in a DataLoader worker process, and how its batches travel back.

A batch crosses the process boundary in two parts. Its structure (tuples, dicts, strings, numbers:
whatever the collate function produced) is pickled, with every tensor and numpy array replaced by
a reference (``persistent_id``). The arrays' bytes go separately, as raw buffers: into one of the
worker's shared-memory segments, which the main process maps once and whose arrays it hands out
as views (no copy on the receiving side; the segment is reused for a later batch once they are
all collected, see ``SegmentPool``), or, for batches under ``SHM_MIN_BYTES``, through the worker's
pipe, received straight into fresh arrays. benchmarks/bench_dataloader.py measures both against
pickling through a ``multiprocessing.Queue``.

Segments are named ``tapegrad-dl-<main pid>-<token>-<worker>-<n>`` and unlinked by the main
process as soon as it maps them; at shutdown it unlinks any name a worker made but never sent.
"""
from __future__ import annotations

import collections
import errno
import io
import mmap
import os
import pickle
import queue
import random
import signal
import sys
import traceback
import warnings
import weakref

import numpy as np

from ... import _C
from ...random import manual_seed
from ...tensor import Tensor

try:
    from _posixshmem import shm_open, shm_unlink
except ImportError:  # not POSIX: batches go through the pipe
    shm_open = shm_unlink = None

SHM_DIR = "/dev/shm"
# Batches whose arrays hold fewer bytes than this go through the pipe: measured in
# benchmarks/bench_dataloader.py, the two cost the same at 64 KiB, the pipe wins below (no
# segment bookkeeping) and the segment above (4 MiB: 0.5 ms against 6 ms; 32 MiB: 8 against 56).
SHM_MIN_BYTES = 1 << 16
_ALIGN = 64
_STATUS_INTERVAL = 1.0  # how often an idle worker checks that the main process is still alive


class WorkerInfo:
    """What ``get_worker_info()`` returns inside a worker: ``id``, ``num_workers``, ``seed`` and
    ``dataset`` (this process's copy). Read-only, as in PyTorch."""

    __initialized = False

    def __init__(self, **kwargs):
        for k, v in kwargs.items():
            setattr(self, k, v)
        self.__keys = tuple(kwargs)
        self.__initialized = True

    def __setattr__(self, key, val):
        if self.__initialized:
            raise RuntimeError(f"Cannot assign attributes to {self.__class__.__name__} objects")
        return super().__setattr__(key, val)

    def __repr__(self):
        return f"{self.__class__.__name__}({', '.join(f'{k}={getattr(self, k)}' for k in self.__keys)})"


_worker_info = None


def get_worker_info():
    """In a DataLoader worker process: its ``WorkerInfo`` (``id``, ``num_workers``, ``seed``,
    ``dataset``); in the main process: None. An ``IterableDataset`` uses it to split its stream
    between workers:

    >>> def __iter__(self):
    ...     info = get_worker_info()
    ...     start, step = (0, 1) if info is None else (info.id, info.num_workers)
    ...     return iter(self.items[start::step])
    """
    return _worker_info


class ExceptionWrapper:
    """An exception raised in a worker, carried to the main process with its traceback text."""

    def __init__(self, exc_info=None, where="in background"):
        exc_info = exc_info or sys.exc_info()
        self.exc_type = exc_info[0]
        self.type_name = self.exc_type.__name__
        self.exc_msg = "".join(traceback.format_exception(*exc_info))
        self.where = where

    def __reduce__(self):
        # A type that does not pickle (defined in a function, say) travels as RuntimeError, with
        # the original name still in the message.
        try:
            pickle.dumps(self.exc_type)
            exc_type = self.exc_type
        except Exception:
            exc_type = RuntimeError
        return _rebuild_exception_wrapper, (exc_type, self.type_name, self.exc_msg, self.where)

    def reraise(self):
        msg = f"Caught {self.type_name} {self.where}.\nOriginal {self.exc_msg}"
        if self.exc_type is KeyError:  # KeyError repr()s its argument: the traceback would be one line
            msg = _KeyErrorMessage(msg)
        try:
            exception = self.exc_type(msg)
        except Exception:  # an exception type that wants other arguments
            raise RuntimeError(msg) from None
        raise exception


def _rebuild_exception_wrapper(exc_type, type_name, exc_msg, where):
    w = ExceptionWrapper.__new__(ExceptionWrapper)
    w.exc_type, w.type_name, w.exc_msg, w.where = exc_type, type_name, exc_msg, where
    return w


class _KeyErrorMessage(str):
    def __repr__(self):
        return self


def _generate_state(base_seed, worker_id):
    """PyTorch's seed for numpy's global state in worker ``worker_id`` (a SeedSequence-style hash of
    the two), so workers' numpy streams differ even though ``base_seed + worker_id`` are neighbours."""
    mask = 0xFFFFFFFF
    mult_a, mult_b, mix_l, mix_r, xshift = 0x931E8875, 0x58F38DED, 0xCA01F9DD, 0x4973F715, 16
    entropy = [worker_id, base_seed & mask, base_seed >> 32, 0]
    const_a = [0x43B0D7E5]

    def hash_(value):
        value = (value ^ const_a[0]) & mask
        const_a[0] = (const_a[0] * mult_a) & mask
        value = (value * const_a[0]) & mask
        return (value ^ (value >> xshift)) & mask

    def mix(x, y):
        r = (((mix_l * x) & mask) - ((mix_r * y) & mask)) & mask
        return (r ^ (r >> xshift)) & mask

    pool = [hash_(e) for e in entropy]
    for i_src in range(4):
        for i_dst in range(4):
            if i_src != i_dst:
                pool[i_dst] = mix(pool[i_dst], hash_(pool[i_src]))
    const_b, state = 0x8B51F9DD, []
    for v in pool:
        v = (v ^ const_b) & mask
        const_b = (const_b * mult_b) & mask
        v = (v * const_b) & mask
        state.append((v ^ (v >> xshift)) & mask)
    return state


# ------------------------------------------------------------------ fetching (shared with the main process)
class MapFetcher:
    """One batch of a map-style dataset from its indices."""

    def __init__(self, dataset, auto_collation, collate_fn, fast):
        self.dataset, self.auto_collation, self.collate_fn, self.fast = dataset, auto_collation, collate_fn, fast

    def fetch(self, index):
        if not self.auto_collation:
            return self.collate_fn(self.dataset[index])
        if self.fast:
            out = self.dataset._batch(np.asarray(index, dtype=np.int64))
            return list(out) if type(out) is tuple else out  # what default_collate makes of tuple samples
        index = index.tolist() if isinstance(index, np.ndarray) else index
        getitems = getattr(self.dataset, "__getitems__", None)
        data = getitems(index) if getitems else [self.dataset[i] for i in index]
        return self.collate_fn(data)


class IterFetcher:
    """The next batch of this process's own iterator over an IterableDataset; StopIteration at
    its end (a short last batch is dropped with ``drop_last``)."""

    def __init__(self, dataset, auto_collation, collate_fn, drop_last):
        self.it, self.ended = iter(dataset), False
        self.auto_collation, self.collate_fn, self.drop_last = auto_collation, collate_fn, drop_last

    def fetch(self, index):
        if self.ended:
            raise StopIteration
        if not self.auto_collation:
            return self.collate_fn(next(self.it))
        data = []
        for _ in range(len(index)):
            try:
                data.append(next(self.it))
            except StopIteration:
                self.ended = True
                break
        if not data or (self.drop_last and len(data) < len(index)):
            raise StopIteration
        return self.collate_fn(data)


# ------------------------------------------------------------------ transport
class _Packer(pickle.Pickler):
    """Pickles a batch's structure; tensors and arrays become references into ``self.arrays``."""

    def __init__(self, file):
        super().__init__(file, protocol=pickle.HIGHEST_PROTOCOL)
        self.arrays, self._seen = [], {}

    def persistent_id(self, obj):
        if isinstance(obj, Tensor):
            arr, kind = obj._data, (type(obj), obj.requires_grad)
        elif type(obj) is np.ndarray or isinstance(obj, np.memmap):
            arr, kind = obj, (None, False)
        else:
            return None
        if arr.dtype.hasobject:
            return None
        key = id(obj)
        if key not in self._seen:
            self._seen[key] = len(self.arrays)
            self.arrays.append((obj, np.ascontiguousarray(arr)))  # obj kept alive: its id stays unique
        return (kind[0], self._seen[key], kind[1])


class _Unpacker(pickle.Unpickler):
    def __init__(self, file, arrays):
        super().__init__(file)
        self.arrays = arrays

    def persistent_load(self, pid):
        cls, i, requires_grad = pid
        arr = self.arrays[i]
        if cls is None:
            return arr
        t = cls._wrap(arr)
        return t.requires_grad_(True) if requires_grad else t


def _canonical(dtype):
    """numpy's own descriptor object for ``dtype`` where it has one (native byte order, no fields)."""
    if dtype.isnative and dtype.fields is None and dtype.subdtype is None:
        try:
            canon = np.dtype(dtype.type)
        except TypeError:
            return dtype
        return canon if canon == dtype else dtype
    return dtype




class ShmFull(OSError):
    """No room left in /dev/shm for a batch."""


def _layout(arrays):
    metas, offset = [], 0
    for _, a in arrays:
        metas.append((a.dtype, a.shape, offset))
        offset += -(-a.nbytes // _ALIGN) * _ALIGN
    return metas, offset


class SegmentPool:
    """A worker's shared-memory segments, recycled.

    Fresh memory costs a page fault per 4 KiB page on first touch, in each process (on this
    project's CI VM, ~9 us each: 9 ms for a 4 MiB batch, more than copying it). So a segment is
    mapped once in each process and reused: the main process hands a segment back (``("free",
    id)`` on the worker's index queue) once the last array of the batch in it is collected, and
    the worker writes a later batch into it. The segment's name is unlinked by the main process
    when it first maps it; from then on only the two mappings keep the memory alive.
    """

    def __init__(self, prefix, keep_free=4):
        self.prefix, self.keep_free = prefix, keep_free
        self.free = {}  # id -> (mmap, size)
        self.busy = {}
        self.retired = []  # ids dropped from the pool, for the main process to drop too
        self.next_id = 0
        self.warned_full = False

    def acquire(self, need):
        fits = [(size, i) for i, (_, size) in self.free.items() if need <= size <= 4 * need]
        if fits:
            _, i = min(fits)
            self.busy[i] = self.free.pop(i)
            return i, None
        while len(self.free) >= self.keep_free:  # bound what sits unused: drop the largest
            i = max(self.free, key=lambda k: self.free[k][1])
            self.free.pop(i)[0].close()
            self.retired.append(i)
        size = -(-need // (1 << 16)) * (1 << 16)  # 64 KiB steps: a shorter last batch fits too
        i, name = self.next_id, f"{self.prefix}{self.next_id}"
        self.next_id += 1
        self.busy[i] = (_create_segment(name, size), size)
        return i, name

    def release(self, i):
        if i in self.busy:
            self.free[i] = self.busy.pop(i)

    def take_retired(self):
        out, self.retired = self.retired, []
        return out


def _create_segment(name, size):
    fd = shm_open("/" + name, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o600)
    try:
        try:
            # fallocate, not ftruncate: a full /dev/shm (Docker's default is 64 MiB) is then an
            # ENOSPC here, not a SIGBUS on the first write to a page that has no memory behind it.
            os.posix_fallocate(fd, 0, size)
        except OSError as e:
            if e.errno != errno.ENOSPC:
                os.ftruncate(fd, size)  # a file system without fallocate
            else:
                shm_unlink("/" + name)
                raise ShmFull(e.errno, f"no room in {SHM_DIR} for a {size}-byte batch") from None
        return mmap.mmap(fd, size)
    finally:
        os.close(fd)


def send_batch(conn, idx, data, segments=None):
    """Send batch ``data`` of task ``idx``: its structure pickled, its arrays in a segment of
    ``segments`` (a ``SegmentPool``) when they are big enough, else through the pipe."""
    buf = io.BytesIO()
    packer = _Packer(buf)
    packer.dump(data)
    arrays = packer.arrays
    metas, size = _layout(arrays)
    seg = None
    if segments is not None and shm_open is not None and size >= SHM_MIN_BYTES:
        try:
            seg_id, name = segments.acquire(size)
        except ShmFull as e:
            if not segments.warned_full:  # once per worker: the batches still come, by the pipe
                segments.warned_full = True
                warnings.warn(f"DataLoader worker: {e.strerror}; batches go through a pipe instead (slower). "
                              f"In a container, a larger /dev/shm helps (docker run --shm-size=...)",
                              RuntimeWarning, stacklevel=2)
        else:
            mm = segments.busy[seg_id][0]
            for (_, a), (dtype, shape, offset) in zip(arrays, metas):
                np.ndarray(shape, dtype, buffer=mm, offset=offset)[...] = a
            seg = (seg_id, name)
    retired = segments.take_retired() if segments is not None else []
    conn.send_bytes(pickle.dumps(("data", idx, buf.getvalue(), metas, size, seg, retired)))
    if seg is None:
        for _, a in arrays:
            if a.nbytes:
                conn.send_bytes(a.reshape(-1).view(np.uint8))


def send_control(conn, *msg):
    conn.send_bytes(pickle.dumps(msg))


class Returns:
    """The segments of one worker that the main process is done with, for the loader to give back.

    A batch's segment is free once its arrays are collected, which may happen in any thread at any
    allocation. Its notice is a weak reference's callback that is a C method (the queue's append):
    no Python code runs there. In a ``weakref.finalize`` callback (Python), a Ctrl-C arriving at
    that moment raised its KeyboardInterrupt inside the callback, where Python reports and drops
    it ("Exception ignored in ..."): the loop went on as if the key had never been pressed."""

    __slots__ = ("_queue", "_segment_of")

    def __init__(self):
        self._queue = collections.deque()  # segment ids, and weak references to collected holders
        self._segment_of = {}  # id of a weak reference -> (that reference, its segment id)

    def watch(self, holder, seg_id):
        """Give ``seg_id`` back once ``holder`` is collected."""
        ref = weakref.ref(holder, self._queue.append)  # held here: a dead reference calls no one
        self._segment_of[id(ref)] = (ref, seg_id)

    def now(self, seg_id):
        self._queue.append(seg_id)

    def __bool__(self):
        return bool(self._queue)

    def take(self):
        """The segment ids given back since the last call."""
        ids = []
        while self._queue:
            item = self._queue.popleft()
            ids.append(item if type(item) is int else self._segment_of.pop(id(item))[1])
        return ids


def recv(conn, mappings, returns, keep=True):
    """The next message on ``conn``: ``("data", idx, batch)`` or a control tuple.

    ``mappings``: this process's maps of the worker's segments, by id; ``returns``: the worker's
    Returns, which the segment goes to once the batch is collected. ``keep=False`` drops a batch
    (a stale one after a reset, or at shutdown) and gives its segment straight back."""
    msg = pickle.loads(conn.recv_bytes())
    if msg[0] != "data":
        return msg
    _, idx, skeleton, metas, size, seg, retired = msg
    # The dtypes came through pickle, which makes a descriptor object of its own for each: a
    # batch built on them would miss every fast path that tests dtype identity (numpy's builtin
    # types and ml_dtypes' have one canonical descriptor each).
    metas = [(_canonical(dtype), shape, off) for dtype, shape, off in metas]
    for i in retired:
        mappings.pop(i, None)
    if seg is not None:
        seg_id, name = seg
        if name is not None:
            fd = shm_open("/" + name, os.O_RDWR, 0)
            try:
                mappings[seg_id] = mmap.mmap(fd, 0)
            finally:
                os.close(fd)
                # Unlinked as soon as mapped: the memory lives exactly as long as the two mappings.
                _unlink_quietly(name)
        if not keep:
            returns.now(seg_id)
            return ("data", idx, None)
        # The batch's arrays are views of ``holder``: when the last of them is collected, so is
        # holder, and the segment goes back to the worker.
        holder = np.frombuffer(mappings[seg_id], np.uint8, count=size)
        returns.watch(holder, seg_id)
        arrays = [holder[off:off + np.dtype(dtype).itemsize * int(np.prod(shape))].view(dtype).reshape(shape)
                  for dtype, shape, off in metas]
    else:
        arrays = []
        for dtype, shape, _ in metas:
            a = np.empty(shape, dtype)
            if a.nbytes:
                conn.recv_bytes_into(a.reshape(-1).view(np.uint8))
            arrays.append(a)
        if not keep:
            return ("data", idx, None)
    return ("data", idx, _Unpacker(io.BytesIO(skeleton), arrays).load())


def _unlink_quietly(name):
    try:
        shm_unlink("/" + name)
    except FileNotFoundError:
        pass


def unlink_leftovers(prefix):
    """Unlink segments named ``prefix*`` (a worker killed between creating one and sending it)."""
    if shm_unlink is None or not os.path.isdir(SHM_DIR):
        return
    for name in os.listdir(SHM_DIR):
        if name.startswith(prefix):
            _unlink_quietly(name)


# ------------------------------------------------------------------ the worker loop
def worker_loop(kind, dataset, index_queue, conn, auto_collation, collate_fn, drop_last, fast, base_seed,
                init_fn, worker_id, num_workers, shm_prefix, parent_pid):
    global _worker_info
    # Ctrl-C reaches the whole process group; the main process handles it and shuts the workers
    # down, so a worker dying of it first would only turn a KeyboardInterrupt into a "worker died".
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _C.set_num_threads(1)  # as PyTorch: num_workers processes, not num_workers x cores threads
    seed = base_seed + worker_id
    random.seed(seed)
    manual_seed(seed)
    np.random.seed(_generate_state(base_seed, worker_id))
    _worker_info = WorkerInfo(id=worker_id, num_workers=num_workers, seed=seed, dataset=dataset)

    def new_fetcher():
        if kind == "iterable":
            return IterFetcher(dataset, auto_collation, collate_fn, drop_last)
        return MapFetcher(dataset, auto_collation, collate_fn, fast)

    where = f"in DataLoader worker process {worker_id}"
    init_error = fetcher = None
    try:
        if init_fn is not None:
            init_fn(worker_id)
        fetcher = new_fetcher()
    except Exception:
        init_error = ExceptionWrapper(where=where)
    iteration_end = False
    segments = SegmentPool(f"{shm_prefix}{worker_id}-")
    try:
        while True:
            try:
                r = index_queue.get(timeout=_STATUS_INTERVAL)
            except queue.Empty:
                if os.getppid() != parent_pid:
                    # The main process is gone: nobody will ask again, nor take the batches sent
                    # (it unlinks a segment as soon as it receives its name: what is left, it never got).
                    unlink_leftovers(f"{shm_prefix}{worker_id}-")
                    return
                continue
            if r is None:
                return
            if r[0] == "free":  # the main process is done with these batches: their segments are free
                for i in r[1]:
                    segments.release(i)
                continue
            if r == "resume":  # persistent workers, next epoch: a fresh iterator over the dataset
                send_control(conn, "resumed", worker_id)
                iteration_end = False
                if init_error is None:
                    fetcher = new_fetcher()
                continue
            if iteration_end:  # this worker's stream ended; the main process no longer waits on it
                continue
            idx, index = r
            if init_error is not None:  # every batch of this worker fails with it: it has no fetcher
                send_control(conn, "error", idx, init_error)
                continue
            try:
                data = fetcher.fetch(index)
            except StopIteration:
                if kind != "iterable":
                    send_control(conn, "error", idx, ExceptionWrapper(where=where))
                    continue
                iteration_end = True
                send_control(conn, "stop", idx, worker_id)
                continue
            except Exception:
                send_control(conn, "error", idx, ExceptionWrapper(where=where))
                continue
            try:
                send_batch(conn, idx, data, segments)
            except (BrokenPipeError, ConnectionResetError):
                return
            except Exception:  # the batch did not pickle
                send_control(conn, "error", idx, ExceptionWrapper(where=where))
            del data
    except (BrokenPipeError, ConnectionResetError, EOFError):
        return  # the main process closed its end: it is shutting down
    finally:
        conn.close()
