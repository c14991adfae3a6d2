"""Thread counts, as PyTorch's top-level functions: ``set_num_threads`` (the C++ kernels' OpenMP
threads, process-wide) and the inter-op count that PyTorch scripts set and read."""
from __future__ import annotations

import os
import threading

from . import _C

__all__ = ["set_num_threads", "get_num_threads", "set_num_interop_threads", "get_num_interop_threads"]


def set_num_threads(n: int) -> None:
    """Threads used by the native kernels (OpenMP); results are bit-identical for any count.

    Process-wide, as in PyTorch: the count set in one thread is the one every thread's kernels use.
    A child forked (multiprocessing's default on Linux) from a thread that had run parallel kernels
    runs its kernels on one thread, as GNU OpenMP cannot start threads there (PyTorch's child hangs);
    ``set_num_threads(n > 1)`` in such a child raises RuntimeError. Use the 'spawn' or 'forkserver'
    start method for multi-threaded kernels in worker processes.

    >>> tapegrad.set_num_threads(2)
    """
    _C.set_num_threads(n)


def get_num_threads() -> int:
    """The kernels' process-wide thread count (see :func:`set_num_threads`)."""
    return _C.get_num_threads()



_interop = {"threads": None}  # tapegrad has no inter-op pool: the value is only kept, for scripts that read it
_interop_lock = threading.Lock()


def set_num_interop_threads(n: int) -> None:
    """PyTorch's inter-op thread count. tapegrad runs ops one after another (its only parallelism is
    the kernels' OpenMP, ``set_num_threads``), so the value is stored, not used. As in PyTorch it
    may be set once: a second call raises ``RuntimeError``.

    >>> tapegrad.set_num_interop_threads(4)   # before the training loop, as in a PyTorch script
    """
    if not isinstance(n, int) or isinstance(n, bool):
        raise RuntimeError(f"set_num_interop_threads expects an int, but got {type(n).__name__}")
    if n <= 0:
        raise RuntimeError("set_num_interop_threads expects a positive integer")
    with _interop_lock:
        if _interop["threads"] is not None:
            raise RuntimeError("Error: cannot set number of interop threads after parallel work has started or "
                               "set_num_interop_threads called")
        _interop["threads"] = n


def get_num_interop_threads() -> int:
    """The value given to ``set_num_interop_threads``, else PyTorch's default, the CPU count."""
    return _interop["threads"] or os.cpu_count() or 1
