"""What runs in a DataLoader worker process, and how its batches travel back.

A batch crosses the process boundary in two parts. Its structure (tuples, dicts, strings, numbers:
whatever the collate function produced) is pickled, with every tensor and numpy array replaced by
a reference (``persistent_id``). The arrays' bytes go separately, as raw buffers: in one POSIX
shared-memory segment per batch, which the main process maps and unlinks at once (the arrays it
hands out are views of that mapping: no copy on the receiving side), or, for small batches where
a segment's syscalls cost more than the copy, through the worker's pipe, received straight into
freshly allocated arrays. benchmarks/bench_dataloader.py measures both against pickling.

Segments are named ``tapegrad-dl-<main pid>-<token>-<worker>-<n>`` so the main process can find and
unlink any a worker left behind when it died between creating one and sending its name.
"""
from __future__ import annotations

import io
import mmap
import os
import pickle
import queue
import random
import signal
import sys
import traceback

from multiprocessing.reduction import ForkingPickler

import numpy as np

from ...tensor import Tensor

try:
    from _posixshmem import shm_open, shm_unlink
except ImportError:  # not POSIX: batches go through the pipe
    shm_open = shm_unlink = None

SHM_DIR = "/dev/shm"
# Batches whose arrays hold fewer bytes than this go through the pipe (measured in
# benchmarks/bench_dataloader.py: below ~64 KiB the segment's open/fallocate/mmap/unlink cost more
# than copying the bytes through the pipe).
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


def _rebuild_tensor(cls, arr, requires_grad):
    t = cls._wrap(arr)
    return t.requires_grad_(True) if requires_grad else t


def _reduce_tensor(t):
    return _rebuild_tensor, (type(t), t._data, t.requires_grad)


# Tensors refuse plain pickling (checkpoints go through tapegrad.save), but multiprocessing must
# carry them: a dataset holding tensors is sent to each worker under the spawn start method, as
# torch.multiprocessing lets torch tensors through. This reducer is multiprocessing's only.
ForkingPickler.register(Tensor, _reduce_tensor)


class ShmFull(OSError):
    """No room left in /dev/shm for a batch."""


def _layout(arrays):
    metas, offset = [], 0
    for _, a in arrays:
        metas.append((a.dtype, a.shape, offset))
        offset += -(-a.nbytes // _ALIGN) * _ALIGN
    return metas, offset


def _write_segment(name, arrays, metas, size):
    fd = shm_open("/" + name, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o600)
    try:
        try:
            # fallocate, not ftruncate: a full /dev/shm (Docker's default is 64 MiB) is then an
            # ENOSPC here, not a SIGBUS on the first write to a page that has no memory behind it.
            os.posix_fallocate(fd, 0, size)
        except OSError as e:
            if getattr(e, "errno", None) in (28,):  # ENOSPC
                shm_unlink("/" + name)
                raise ShmFull(e.errno, f"no room in {SHM_DIR} for a {size}-byte batch") from None
            os.ftruncate(fd, size)  # a file system without fallocate
        mm = mmap.mmap(fd, size)
    except BaseException:
        os.close(fd)
        raise
    os.close(fd)
    try:
        for (_, a), (dtype, shape, offset) in zip(arrays, metas):
            np.ndarray(shape, dtype, buffer=mm, offset=offset)[...] = a
    finally:
        mm.close()


def send_batch(conn, idx, data, shm_name=None):
    """Send batch ``data`` of task ``idx``. ``shm_name``: the segment to use when the arrays are big
    enough (None: always the pipe). Returns True when a segment was used."""
    buf = io.BytesIO()
    packer = _Packer(buf)
    packer.dump(data)
    arrays = packer.arrays
    metas, size = _layout(arrays)
    use_shm = shm_name is not None and shm_open is not None and size >= SHM_MIN_BYTES
    if use_shm:
        try:
            _write_segment(shm_name, arrays, metas, size)
        except ShmFull:
            use_shm = False
    if use_shm:
        try:
            conn.send_bytes(pickle.dumps(("data", idx, buf.getvalue(), metas, shm_name, size)))
        except BaseException:
            shm_unlink("/" + shm_name)
            raise
        return True
    conn.send_bytes(pickle.dumps(("data", idx, buf.getvalue(), metas, None, size)))
    for _, a in arrays:
        if a.nbytes:
            conn.send_bytes(a.reshape(-1).view(np.uint8))
    return False


def send_control(conn, *msg):
    conn.send_bytes(pickle.dumps(msg))


def recv(conn, keep=True):
    """The next message on ``conn``: ``("data", idx, batch)`` or a control tuple. ``keep=False``
    drops a batch without mapping it (a stale batch after a reset, or at shutdown), unlinking its
    segment all the same."""
    msg = pickle.loads(conn.recv_bytes())
    if msg[0] != "data":
        return msg
    _, idx, skeleton, metas, shm_name, size = msg
    if shm_name is not None:
        if not keep:
            _unlink_quietly(shm_name)
            return ("data", idx, None)
        fd = shm_open("/" + shm_name, os.O_RDWR, 0)
        try:
            mm = mmap.mmap(fd, size)
        finally:
            os.close(fd)
            # Unlinked as soon as mapped: the memory lives exactly as long as the arrays viewing it.
            _unlink_quietly(shm_name)
        arrays = [np.ndarray(shape, dtype, buffer=mm, offset=off) for dtype, shape, off in metas]
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
    import tapegrad
    tapegrad.set_num_threads(1)  # as PyTorch: num_workers processes, not num_workers x cores threads
    seed = base_seed + worker_id
    random.seed(seed)
    tapegrad.manual_seed(seed)
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
    iteration_end, n_sent = False, 0
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
            if r == "resume":  # persistent workers, next epoch: a fresh iterator over the dataset
                send_control(conn, "resumed", worker_id)
                iteration_end = False
                if init_error is None:
                    fetcher = new_fetcher()
                continue
            if iteration_end:  # this worker's stream ended; the main process no longer waits on it
                continue
            idx, index = r
            if init_error is not None:
                send_control(conn, "error", idx, init_error)
                init_error = None
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
                send_batch(conn, idx, data, f"{shm_prefix}{worker_id}-{n_sent}")
                n_sent += 1
            except (BrokenPipeError, ConnectionResetError):
                return
            except Exception:  # the batch did not pickle
                send_control(conn, "error", idx, ExceptionWrapper(where=where))
            del data
    except (BrokenPipeError, ConnectionResetError, EOFError):
        return  # the main process closed its end: it is shutting down
    finally:
        conn.close()
