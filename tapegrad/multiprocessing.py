"""``torch.multiprocessing``'s names: Python's ``multiprocessing`` (every public name re-exported),
the sharing-strategy switches, and ``spawn`` / ``start_processes`` with their errors.

Sharing tensors, as PyTorch: ``Tensor.share_memory_()`` and ``Module.share_memory()`` move
tensors into shared memory (``tapegrad/_shared.py``), and processes given them, forked or
spawned, or sent them through a Queue or a Pipe, read and write that same memory: Hogwild-style
training (PyTorch's mnist_hogwild) works. A shared tensor travels as a duplicate of its memory
file's descriptor (PyTorch's default ``file_descriptor`` strategy; the sender must stay alive
until the receiver has taken it). What differs: a tensor that is not shared crosses as a copy of
its values (PyTorch moves it into shared memory on the way, so that a receiver's writes reach the
sender: call ``share_memory_()`` first for that), and the memory is an anonymous file, never a
name in ``/dev/shm``, so a killed process leaves nothing behind and both strategies behave alike.
Plain ``pickle`` refuses tensors (checkpoints go through ``tapegrad.save``); multiprocessing's own
pickler carries them.
"""
from __future__ import annotations

import multiprocessing as _mp
import multiprocessing.connection as _connection
import signal as _signal
import sys as _sys
import traceback as _traceback
from multiprocessing import *  # noqa: F401,F403  (as torch.multiprocessing re-exports it)

__all__ = [*_mp.__all__, "spawn", "start_processes", "ProcessContext", "ProcessRaisedException",
           "ProcessExitedException", "get_sharing_strategy", "set_sharing_strategy",
           "get_all_sharing_strategies"]

_STRATEGIES = frozenset({"file_descriptor", "file_system"})
_strategy = ["file_descriptor"]  # PyTorch's default on Linux


def get_all_sharing_strategies() -> set:
    """The strategies ``set_sharing_strategy`` accepts: ``{'file_descriptor', 'file_system'}``."""
    return set(_STRATEGIES)


def get_sharing_strategy() -> str:
    """The strategy last set (``'file_descriptor'`` at start)."""
    return _strategy[0]


def set_sharing_strategy(new_strategy: str) -> None:
    """Record ``new_strategy``. PyTorch asserts it is known (an ``assert``, gone under ``python -O``);
    tapegrad raises ValueError. Nothing else changes: shared tensors always travel as descriptors of
    anonymous memory files, which need no names to clean up (the module's docstring)."""
    if new_strategy not in _STRATEGIES:
        raise ValueError(f"set_sharing_strategy: unknown strategy {new_strategy!r}; "
                         f"one of {sorted(_STRATEGIES)}")
    _strategy[0] = new_strategy


class ProcessException(Exception):
    """A process started by ``spawn`` failed: ``error_index`` is its index, ``pid`` its process id."""

    def __init__(self, msg: str, error_index: int, pid: int):
        super().__init__(msg)
        self.msg, self.error_index, self.pid = msg, error_index, pid

    def __reduce__(self):
        return type(self), (self.msg, self.error_index, self.pid)


class ProcessRaisedException(ProcessException):
    """The process raised: the message holds its traceback."""


class ProcessExitedException(ProcessException):
    """The process exited with a non-zero code or was killed by a signal, without a Python traceback."""

    def __init__(self, msg: str, error_index: int, error_pid: int, exit_code: int, signal_name: str | None = None):
        super().__init__(msg, error_index, error_pid)
        self.exit_code, self.signal_name = exit_code, signal_name

    def __reduce__(self):
        return type(self), (self.msg, self.error_index, self.pid, self.exit_code, self.signal_name)


def _wrap(fn, i, args, error_queue):
    try:
        fn(i, *args)
    except KeyboardInterrupt:
        pass  # the parent's SIGINT reached the group: the parent reports it
    except Exception:  # noqa: BLE001  (every failure goes to the parent, with its traceback)
        error_queue.put(_traceback.format_exc())
        _sys.exit(1)


class ProcessContext:
    """The processes ``start_processes`` started: ``join()`` until all have ended."""

    def __init__(self, processes, error_queues):
        self.processes, self.error_queues = processes, error_queues
        self.sentinels = {p.sentinel: i for i, p in enumerate(processes)}

    def pids(self) -> list[int]:
        return [int(p.pid) for p in self.processes]

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the processes, ``timeout`` seconds at most. True once every one has ended well;
        False while some still run. When one fails, the others are terminated and its error is
        raised here: ``ProcessRaisedException`` with its traceback, or ``ProcessExitedException``
        with its exit code (and the signal's name when a signal ended it)."""
        if not self.sentinels:
            return True
        ready = _connection.wait(list(self.sentinels), timeout=timeout)
        failed = None
        for sentinel in ready:
            i = self.sentinels.pop(sentinel)
            self.processes[i].join()
            if self.processes[i].exitcode != 0 and failed is None:
                failed = i
        if failed is None:
            return not self.sentinels
        for p in self.processes:  # one failed: end the rest, as PyTorch does
            if p.is_alive():
                p.terminate()
            p.join()
        pid, code = self.processes[failed].pid, self.processes[failed].exitcode
        q = self.error_queues[failed]
        if not q.empty():
            raise ProcessRaisedException(f"\n\n-- Process {failed} terminated with the following error:\n{q.get()}",
                                         failed, pid)
        if code < 0:
            name = _signal.Signals(-code).name
            raise ProcessExitedException(f"process {failed} terminated with signal {name}", failed, pid, code, name)
        raise ProcessExitedException(f"process {failed} terminated with exit code {code}", failed, pid, code)


def start_processes(fn, args=(), nprocs: int = 1, join: bool = True, daemon: bool = False,
                    start_method: str = "spawn"):
    """Run ``fn(i, *args)`` in ``nprocs`` new processes (``i`` = 0 .. nprocs - 1) started with
    ``start_method``. ``join``: wait for them (errors raised as ``ProcessContext.join`` says) and
    return None; else return the ``ProcessContext``. Under 'spawn' (the default, as PyTorch's)
    ``fn`` must be importable (a module-level function) and ``args`` picklable (tensors go as copies)."""
    if not isinstance(nprocs, int) or isinstance(nprocs, bool) or nprocs < 1:
        raise ValueError(f"start_processes: nprocs must be a positive int, got {nprocs!r}")
    ctx = _mp.get_context(start_method)
    processes, queues = [], []
    for i in range(nprocs):
        q = ctx.SimpleQueue()
        p = ctx.Process(target=_wrap, args=(fn, i, tuple(args), q), daemon=daemon)
        p.start()
        processes.append(p)
        queues.append(q)
    context = ProcessContext(processes, queues)
    if not join:
        return context
    while not context.join():
        pass
    return None


def spawn(fn, args=(), nprocs: int = 1, join: bool = True, daemon: bool = False, start_method: str = "spawn"):
    """``start_processes`` under PyTorch's name for it (the 'spawn' start method by default)."""
    return start_processes(fn, args, nprocs, join, daemon, start_method)
