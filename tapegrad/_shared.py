"""Tensor memory shared between processes: ``share_memory_()``, ``Module.share_memory()`` and how
tensors cross process boundaries (``tapegrad.multiprocessing``).

A shared array lives in a ``Segment``: an anonymous memory file (``memfd_create`` on Linux, an
unlinked temporary file elsewhere) mapped ``MAP_SHARED``. The segment keeps the file's descriptor
open for as long as any array uses it, and that descriptor is what travels: multiprocessing's
pickler carries a shared tensor as a duplicate of it (``multiprocessing.reduction.DupFd``, what
PyTorch's default ``file_descriptor`` strategy does), and the receiver maps the same pages. A child
made by fork inherits the mapping itself. No name is ever created in ``/dev/shm``, so nothing is
left behind when a process is killed: the memory goes when the last process holding it exits.

``Module.share_memory()`` puts all of a module's tensors into one segment (one descriptor, where
PyTorch spends one per tensor and can run out of them).
"""
from __future__ import annotations

import mmap
import os
import sys
import tempfile
import warnings
import weakref
from multiprocessing import context as _mp_context, reduction as _reduction

import numpy as np

_ALIGN = 64  # bytes: each array of a packed segment starts on a cache line


class Segment(mmap.mmap):
    """A shared mapping of the whole of an anonymous file; ``fd`` stays open while it lives."""

    def __new__(cls, fd: int, size: int):
        self = super().__new__(cls, fd, size, flags=mmap.MAP_SHARED, prot=mmap.PROT_READ | mmap.PROT_WRITE)
        self.fd, self.size = fd, size
        weakref.finalize(self, os.close, fd)
        return self


def _anonymous_file(size: int) -> int:
    if hasattr(os, "memfd_create"):
        fd = os.memfd_create("tapegrad-shared", getattr(os, "MFD_CLOEXEC", 0))
    else:  # not Linux: a temporary file, unlinked at once
        with tempfile.TemporaryFile() as f:
            fd = os.dup(f.fileno())
    try:
        if hasattr(os, "posix_fallocate"):  # the pages reserved now: no SIGBUS on a later write when memory is short
            os.posix_fallocate(fd, 0, size)
        else:
            os.ftruncate(fd, size)
    except OSError as e:
        os.close(fd)
        raise MemoryError(f"share_memory_: cannot allocate {size} bytes of shared memory ({e.strerror})") from None
    return fd


def new_segment(size: int) -> Segment:
    """A zero-filled shared segment of at least ``size`` bytes (one page for an empty request)."""
    size = max(int(size), 1)
    fd = _anonymous_file(size)
    try:
        return Segment(fd, size)
    except BaseException:
        os.close(fd)
        raise


def segment_of(a: np.ndarray):
    """The ``Segment`` holding ``a``'s memory, or None."""
    base = a
    while isinstance(base, np.ndarray):
        base = base.base
    if isinstance(base, memoryview):
        base = base.obj
    return base if isinstance(base, Segment) else None


def pack(arrays) -> list:
    """Copies of ``arrays`` (C-contiguous, same dtypes and shapes) in one new segment."""
    offsets, end = [], 0
    for a in arrays:
        offsets.append(end)
        end += -(-a.nbytes // _ALIGN) * _ALIGN
    seg = new_segment(end)
    out = []
    for a, off in zip(arrays, offsets):
        s = np.ndarray(a.shape, a.dtype, buffer=seg, offset=off)
        np.copyto(s, a, casting="no")
        out.append(s)
    return out


def other_references(a: np.ndarray, held: int) -> int:
    """How many references to ``a`` there are beyond ``held`` known ones (views of it, numpy
    handles, other tensors on the same array). CPython's count: exact, and the caller's."""
    return sys.getrefcount(a) - 1 - held  # (getrefcount's own argument)


def reduce_array(a: np.ndarray):
    """``a`` for multiprocessing's pickler: a reference to its segment where it is shared (the
    receiver maps the same memory), else the array itself (a copy of its values)."""
    seg = segment_of(a)
    if seg is None:
        return a
    start = a.__array_interface__["data"][0]
    first = np.frombuffer(seg, np.uint8, count=1).__array_interface__["data"][0]
    return _SharedRef(_descriptor(seg), seg.size, start - first, a.dtype, a.shape, a.strides)


# The descriptor objects made for each process being spawned, one per segment: that process's
# arguments name a segment's descriptor once however many tensors live in it (the spawn call
# refuses a descriptor listed twice), and the receiver maps each segment once (_rebuild_shared).
_spawn_descriptors: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def _descriptor(seg: Segment):
    popen = _mp_context.get_spawning_popen()
    if popen is None:  # a Queue or a Pipe: a duplicate handed over by multiprocessing's resource sharer
        return _reduction.DupFd(seg.fd)
    per_segment = _spawn_descriptors.setdefault(popen, {})
    if seg.fd not in per_segment:
        per_segment[seg.fd] = _reduction.DupFd(seg.fd)
    return per_segment[seg.fd]


class _SharedRef:
    """What a shared array pickles to: a descriptor of its segment and its place there."""

    def __init__(self, fd, size, offset, dtype, shape, strides):
        self.fd, self.size, self.offset, self.dtype, self.shape, self.strides = fd, size, offset, dtype, shape, strides

    def __reduce__(self):
        return _rebuild_shared, (self.fd, self.size, self.offset, self.dtype, self.shape, self.strides)


def _rebuild_shared(handle, size, offset, dtype, shape, strides) -> np.ndarray:
    seg = getattr(handle, "_tapegrad_segment", None)  # one handle per segment and spawn: mapped once
    if seg is None:
        try:
            fd = handle.detach()
        except (EOFError, OSError) as e:
            raise RuntimeError("a shared tensor could not be received: the process that sent it exited (or closed "
                               "its end) before this one took it; keep the sender alive until the receiver has "
                               "it, as with PyTorch's file_descriptor sharing strategy") from e
        try:
            seg = Segment(fd, size)
        except BaseException:
            os.close(fd)
            raise
        handle._tapegrad_segment = seg
    return np.ndarray(shape, dtype, buffer=seg, offset=offset, strides=strides)


def _rebuild_tensor(cls, arr, requires_grad, state):
    t = cls._wrap(arr)
    for name, value in state:
        setattr(t, name, value)
    return t.requires_grad_(True) if requires_grad else t


def _slot_state(t) -> list:
    """The attributes a Tensor subclass keeps (a Buffer's ``persistent``, a user subclass's
    ``__dict__``), for the trip to another process."""
    state = list(getattr(t, "__dict__", {}).items())
    for cls in type(t).__mro__:
        slots = cls.__dict__.get("__slots__", ())
        for name in (slots,) if isinstance(slots, str) else slots:
            if not name.startswith("__") and hasattr(t, name):
                state.append((name, getattr(t, name)))
    return state


def reduce_tensor(t):
    """A tensor for multiprocessing's pickler (a spawned process's arguments, a Queue, a Pipe):
    a shared tensor as a reference to its memory (the receiver writes where the sender reads), any
    other as a copy of its values (as plain pickle always does: ``Tensor.__reduce_ex__``)."""
    if t.grad_fn is not None and t._requires_grad:
        raise RuntimeError("Cowardly refusing to serialize non-leaf tensor which requires_grad, since autograd "
                           "does not support crossing process boundaries. If you just want to transfer the data, "
                           "call detach() on the tensor before serializing (e.g., putting it on the queue).")
    return _rebuild_tensor, (type(t), reduce_array(t._data), t._requires_grad, _slot_state(t))


def share(tensors) -> None:
    """Move the tensors not shared yet into one new shared segment (their values copied; each
    keeps its shape and dtype, C-ordered). A tensor's views and aliases made before keep the old
    memory: warned, since their writes no longer reach it."""
    todo, seen = [], set()
    for t in tensors:
        if id(t) not in seen and segment_of(t._data) is None:
            seen.add(id(t))
            todo.append(t)
    if not todo:
        return
    aliased = 0
    for t in todo:
        if t._base is not None:
            raise RuntimeError(f"share_memory_(): cannot move a view (shape {tuple(t.shape)}) into shared memory "
                               f"apart from the tensor it views; call share_memory_() on that tensor first and "
                               f"take the view after")
        a = t._data
        aliased += other_references(a, held=3) > 0  # (t's slot, the local a, other_references' own)
        del a
    if aliased:
        warnings.warn(f"share_memory_(): {aliased} of the tensors moved into shared memory had views or other "
                      f"tensors on their old memory (made before the call); those keep the old memory and their "
                      f"writes no longer reach the shared tensor", UserWarning, stacklevel=3)
    for t, s in zip(todo, pack([np.ascontiguousarray(t._data) for t in todo])):
        t._data = s
