"""The process group: MPI's communicators behind PyTorch's ``init_process_group`` and ``new_group``.

``mpi4py`` is imported here, on ``init_process_group``, never by ``import tapegrad``: a user
without MPI only pays for what they call.
"""
from __future__ import annotations

import importlib.util
import os
import sys
import threading
import time
import traceback

_MPI = None  # the mpi4py.MPI module once the group is initialised
_WORLD = None  # the default ProcessGroup
_EXCEPTHOOK = None  # sys.excepthook before init_process_group replaced it

INSTALL_HINT = ("install it with `pip install 'tapegrad[distributed]'` (mpi4py and the MPICH wheel) or "
                "`pip install mpi4py` against your cluster's MPI")


class ProcessGroup:
    """A set of ranks that run collectives together: one MPI communicator.

    ``ranks`` are the members' ranks in the world group, in group-rank order. A lock makes
    each collective's metadata check and its start one step, so that two threads of one
    process cannot interleave their messages on the communicator.
    """

    def __init__(self, comm, ranks):
        self.comm = comm
        self.ranks = tuple(ranks)
        self._rank = comm.Get_rank()
        self._size = comm.Get_size()
        self.lock = threading.RLock()

    def rank(self) -> int:
        """This process's rank in the group."""
        return self._rank

    def size(self) -> int:
        """The number of ranks in the group."""
        return self._size

    def group_rank(self, global_rank: int, what: str, op: str) -> int:
        """The group rank of the world rank ``global_rank``; raises naming ``op`` when it is not a member."""
        try:
            return self.ranks.index(global_rank)
        except ValueError:
            raise ValueError(f"{op}: {what} {global_rank} is not a rank of this group (its ranks: "
                             f"{list(self.ranks)})") from None

    def __repr__(self):
        return f"ProcessGroup(ranks={list(self.ranks)})"


class _NonMember:
    """What ``new_group`` returns on a rank outside the group (PyTorch's ``GroupMember.NON_GROUP_MEMBER``)."""

    def __init__(self, ranks):
        self.ranks = tuple(ranks)

    def __repr__(self):
        return f"<not a member of the group {list(self.ranks)}>"


class GroupMember:
    """``GroupMember.WORLD`` (the default group once ``init_process_group`` ran) and
    ``GroupMember.NON_GROUP_MEMBER``, as in PyTorch."""
    WORLD = None  # set to the default group by init_process_group, as in PyTorch
    NON_GROUP_MEMBER = _NonMember(())


def is_available() -> bool:
    """Whether ``mpi4py`` is installed (``init_process_group`` then loads MPI itself)."""
    return importlib.util.find_spec("mpi4py") is not None


def is_initialized() -> bool:
    """Whether ``init_process_group`` has run (and ``destroy_process_group`` has not)."""
    return _WORLD is not None


def is_mpi_available() -> bool:
    """Whether the MPI backend can be used (``mpi4py`` is installed)."""
    return is_available()


def is_gloo_available() -> bool:
    """False: tapegrad's only backend is MPI."""
    return False


def is_nccl_available() -> bool:
    """False: tapegrad's only backend is MPI."""
    return False


def init_process_group(backend: str | None = "mpi", init_method=None, timeout=None, world_size: int = -1,
                       rank: int = -1, store=None, group_name: str = "", pg_options=None, device_id=None) -> None:
    """Join the job's processes: rank and world size come from MPI (start with ``mpiexec -n N``).

    >>> import tapegrad.distributed as dist
    >>> dist.init_process_group("mpi")
    >>> dist.get_rank(), dist.get_world_size()

    ``world_size`` and ``rank``, if given, must agree with what MPI says. From here on an
    uncaught exception on any rank aborts the whole job (``MPI_Abort``) after printing its
    traceback, so the other ranks never wait forever for it.
    """
    global _MPI, _WORLD, _EXCEPTHOOK
    if backend not in (None, "mpi"):
        raise ValueError(f"init_process_group: tapegrad runs on MPI only (backend='mpi'), got backend={backend!r}")
    if _WORLD is not None:
        raise RuntimeError("init_process_group: trying to initialize the default process group twice")
    try:
        from mpi4py import MPI
    except ImportError as e:
        raise RuntimeError(f"init_process_group: mpi4py is not installed or finds no MPI library ({e}); "
                           f"{INSTALL_HINT}") from e
    if not MPI.Is_initialized():
        MPI.Init_thread(MPI.THREAD_MULTIPLE)
    comm = MPI.COMM_WORLD.Dup()  # our own context: a user's mpi4py messages on COMM_WORLD never match ours
    comm.Set_errhandler(MPI.ERRORS_RETURN)
    size, me = comm.Get_size(), comm.Get_rank()
    if world_size not in (-1, None) and world_size != size:
        raise ValueError(f"init_process_group: world_size={world_size} but MPI started {size} processes")
    if rank not in (-1, None) and rank != me:
        raise ValueError(f"init_process_group: rank={rank} but MPI says this process is rank {me}")
    _MPI = MPI
    _WORLD = ProcessGroup(comm, range(size))
    GroupMember.WORLD = _WORLD
    if _EXCEPTHOOK is None:
        _EXCEPTHOOK = sys.excepthook
        sys.excepthook = _abort_on_exception


def _abort_on_exception(exc_type, exc, tb):
    """An uncaught exception ends every rank: print this rank's traceback, then MPI_Abort."""
    rank = _WORLD.rank() if _WORLD is not None else "?"
    sys.stderr.write(f"tapegrad.distributed: uncaught exception on rank {rank}; aborting the job\n")
    sys.stderr.write("".join(traceback.format_exception(exc_type, exc, tb)))
    sys.stderr.flush()
    if _MPI is not None and _WORLD is not None:
        # mpiexec's proxy forwards this rank's output from a pipe; the abort's kill can outrun it
        # and lose the traceback (seen once in CI), so give it a moment first
        time.sleep(0.25)
        _MPI.COMM_WORLD.Abort(1)
        os._exit(1)  # MPI_Abort may return before mpiexec has killed this process
    (_EXCEPTHOOK or sys.__excepthook__)(exc_type, exc, tb)


def destroy_process_group(group=None) -> None:
    """Free a group's communicator; without ``group``, the default one (MPI itself stays up
    until the interpreter exits, as mpi4py finalizes it then)."""
    global _WORLD, _EXCEPTHOOK
    if group is None or group is _WORLD:
        if _WORLD is None:
            return
        _WORLD.comm.Free()
        _WORLD = GroupMember.WORLD = None
        if _EXCEPTHOOK is not None and sys.excepthook is _abort_on_exception:
            sys.excepthook = _EXCEPTHOOK
        _EXCEPTHOOK = None
    elif isinstance(group, ProcessGroup):
        group.comm.Free()


def _default(op: str) -> ProcessGroup:
    if _WORLD is None:
        raise RuntimeError(f"{op}: the default process group has not been initialized; call "
                           f"tapegrad.distributed.init_process_group('mpi') first (and start the script with "
                           f"`mpiexec -n N python script.py`)")
    return _WORLD


def resolve(group, op: str) -> ProcessGroup:
    world = _default(op)
    if group is None:
        return world
    if isinstance(group, _NonMember):
        raise ValueError(f"{op}: this rank ({world.rank()}) is not a member of the group {list(group.ranks)}")
    if not isinstance(group, ProcessGroup):
        raise TypeError(f"{op}: group must be a ProcessGroup from new_group(), got {type(group).__name__}")
    return group


def get_rank(group=None) -> int:
    """This process's rank in ``group`` (the world by default); -1 on a rank outside the group."""
    if isinstance(group, _NonMember):
        return -1
    return resolve(group, "get_rank").rank()


def get_world_size(group=None) -> int:
    """The number of ranks in ``group`` (the world by default); -1 on a rank outside it."""
    if isinstance(group, _NonMember):
        return -1
    return resolve(group, "get_world_size").size()


def get_process_group_ranks(group) -> list[int]:
    """The world ranks of ``group``'s members, in group-rank order."""
    return list(resolve(group, "get_process_group_ranks").ranks)


def get_backend(group=None) -> str:
    """``'mpi'``, the backend of every group."""
    resolve(group, "get_backend")
    return "mpi"
