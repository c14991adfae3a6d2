"""Collectives on tensors, in place, over MPI: PyTorch's ``torch.distributed`` functions.

Every call works on the tensor's own numpy buffer with mpi4py's buffer-based calls
(``Allreduce(IN_PLACE, ...)``, ``Iallreduce``, ...): no pickling, no copy of the data where
MPI can write in place. Before the data moves, the ranks exchange a 128-byte description of the
call (which collective, dtype, shape, root, reduce op; see ``_meta``). MPI itself would not
notice a rank passing a float32 tensor of 3 elements while another passes float64 of 4: it
would hang, truncate or reduce garbage. With the description every rank sees the same
mismatch and raises the same error, naming the rank at fault. It costs one small allgather
per call (measured in benchmarks/bench_ddp.py against raw ``Allreduce``).

``async_op=True`` returns a ``Work`` on MPI's non-blocking call; the description is still
exchanged at the call, so a mismatch raises there, never later in ``wait()``.

``TAPEGRAD_DISTRIBUTED_CHECK=0`` in the environment skips the exchange for the tensor
collectives (each rank still checks its own arguments): for a program known to be consistent,
at the price of MPI's behaviour (a hang or garbage) if it is not. The object collectives always
exchange, as they need each rank's byte count.
"""
from __future__ import annotations

import json
import os
import time
import zlib

import numpy as np

from . import _group
from ._group import resolve
from ..futures import Future
from ..tensor import Tensor


class ReduceOp:
    """How ``all_reduce`` and friends combine values (``ReduceOp.SUM``, ...), PyTorch's names."""

    class RedOpType:
        """One reduction (``ReduceOp.SUM``, ...): its name and its code."""
        def __init__(self, name, code):
            self.name, self.code = name, code

        def __repr__(self):
            return f"<RedOpType.{self.name}: {self.code}>"

    SUM = RedOpType("SUM", 0)
    PRODUCT = RedOpType("PRODUCT", 1)
    MIN = RedOpType("MIN", 2)
    MAX = RedOpType("MAX", 3)
    BAND = RedOpType("BAND", 4)
    BOR = RedOpType("BOR", 5)
    BXOR = RedOpType("BXOR", 6)
    AVG = RedOpType("AVG", 7)


_REDUCE_OPS = (ReduceOp.SUM, ReduceOp.PRODUCT, ReduceOp.MIN, ReduceOp.MAX, ReduceOp.BAND, ReduceOp.BOR,
               ReduceOp.BXOR, ReduceOp.AVG)
_DTYPES = tuple(np.dtype(d) for d in ("float32", "float64", "float16", "int8", "int16", "int32", "int64", "uint8",
                                      "bool"))
_OPS = ("barrier", "all_reduce", "broadcast", "reduce", "all_gather", "all_gather_into_tensor",
        "reduce_scatter_tensor", "gather", "scatter", "all_gather_object", "broadcast_object_list", "new_group",
        "ddp_init", "reduce_scatter")
_META_LEN = 16  # [op, 11 slots every rank must agree on, 4 slots of the rank's own]
_SAME, _OWN = slice(1, 12), slice(12, 16)
_MAXDIM = 7
_CHECK = os.environ.get("TAPEGRAD_DISTRIBUTED_CHECK", "1") not in ("0", "")


_TYPES: dict = {}  # numpy dtype -> MPI datatype, filled on first use (MPI is loaded by then)


def _mpi_type(dtype):
    if not _TYPES:
        MPI = _group._MPI
        _TYPES.update({np.dtype(k): v for k, v in (
            ("float32", MPI.FLOAT), ("float64", MPI.DOUBLE), ("float16", MPI.FLOAT16_T), ("int8", MPI.INT8_T),
            ("int16", MPI.INT16_T), ("int32", MPI.INT32_T), ("int64", MPI.INT64_T), ("uint8", MPI.UINT8_T),
            ("bool", MPI.C_BOOL))})
    return _TYPES[dtype]


_OPS_CACHE: dict = {}


def _mpi_op(op, dtype, opname):
    try:
        m = _OPS_CACHE.get((op, dtype))
    except TypeError:  # an unhashable op: let _mpi_op_for say what is wrong with it
        m = None
    if m is None:
        m = _OPS_CACHE[(op, dtype)] = _mpi_op_for(op, dtype, opname)
    return m


def _mpi_op_for(op, dtype, opname):
    MPI = _group._MPI
    if op not in _REDUCE_OPS:
        raise TypeError(f"{opname}: op must be a tapegrad.distributed.ReduceOp (SUM, AVG, PRODUCT, MIN, MAX, BAND, "
                        f"BOR, BXOR), got {op!r}")
    kind = dtype.kind
    if op is ReduceOp.AVG and kind != "f":
        raise TypeError(f"{opname}: ReduceOp.AVG of a {dtype.name} tensor is not a {dtype.name}; use SUM and divide")
    if op in (ReduceOp.BAND, ReduceOp.BOR, ReduceOp.BXOR) and kind == "f":
        raise TypeError(f"{opname}: ReduceOp.{op.name} needs an integer or bool tensor, got {dtype.name}")
    if kind == "b":  # C_BOOL takes only logical ops: SUM/MAX/BOR are "any", PRODUCT/MIN/BAND "all"
        if op in (ReduceOp.SUM, ReduceOp.MAX, ReduceOp.BOR):
            return MPI.LOR
        if op in (ReduceOp.PRODUCT, ReduceOp.MIN, ReduceOp.BAND):
            return MPI.LAND
        return MPI.LXOR
    return {0: MPI.SUM, 1: MPI.PROD, 2: MPI.MIN, 3: MPI.MAX, 4: MPI.BAND, 5: MPI.BOR, 6: MPI.BXOR,
            7: MPI.SUM}[op.code]


def _array(t, opname, what="tensor"):
    """The tensor's own buffer, which MPI reads and writes: contiguous and writeable, or refused."""
    if not isinstance(t, Tensor):
        raise TypeError(f"{opname}: {what} must be a tapegrad.Tensor, got {type(t).__name__}")
    a = t._data
    if a.dtype not in _DTYPES:
        raise TypeError(f"{opname}: {what} has dtype {a.dtype.name}; collectives take "
                        f"{', '.join(d.name for d in _DTYPES)}")
    flags = a.flags
    if not flags.c_contiguous:
        raise ValueError(f"{opname}: {what} of shape {tuple(a.shape)} is not contiguous (strides {a.strides}); "
                         f"call .contiguous() first, as PyTorch requires")
    if not flags.writeable:
        raise ValueError(f"{opname}: {what} of shape {tuple(a.shape)} is a read-only view (from expand or "
                         f"broadcasting); pass a tensor that owns its memory (.clone())")
    return a


def _bump(*tensors):
    for t in tensors:
        t._bump_version()


def _describe(a) -> list:
    """9 ints that every rank must agree on for a tensor: dtype, ndim, 7 dims (a hash past 7)."""
    dims = list(a.shape) if a.ndim <= _MAXDIM else [zlib.crc32(repr(a.shape).encode())]
    dims += [-1] * (_MAXDIM - len(dims))
    return [_DTYPES.index(a.dtype), a.ndim, *dims]


def _show(row) -> str:
    dtype, ndim = _DTYPES[int(row[1])].name, int(row[2])
    if ndim > _MAXDIM:
        return f"a {dtype} tensor of {ndim} dims"
    return f"a {dtype} tensor of shape {tuple(int(d) for d in row[3:3 + ndim])}"


def _exchange(pg, opname, same, own=(), show=_show, needed=False):
    """Allgather every rank's description of this call; raise the same error on every rank
    if they disagree. Returns the (world, 16) table for checks of per-rank fields (None when
    checks are off and the caller does not need the table)."""
    if not (_CHECK or needed):
        return None
    return _exchange_row(pg, opname, _row(opname, same, own), show)


def _row(opname, same, own=()):
    row = [_OPS.index(opname), *same]
    row += [0] * (12 - len(row))
    row += own
    row += [0] * (_META_LEN - len(row))
    return np.array(row, np.int64)


_ROWS: dict = {}  # (op, shape, dtype, op/root) -> its row: the hot collectives skip rebuilding it


def _cached_row(opname, a, extra):
    key = (opname, a.shape, a.dtype, extra)
    mine = _ROWS.get(key)
    if mine is None:
        if len(_ROWS) > 4096:
            _ROWS.clear()
        mine = _ROWS[key] = _row(opname, _describe(a) + [extra])
    return mine


def _exchange_row(pg, opname, mine, show=_show):
    table = np.empty((pg.size(), _META_LEN), np.int64)
    pg.comm.Allgather(mine, table)
    if table.tobytes() == mine.tobytes() * len(table):
        return table  # the common case, in one comparison of bytes: every rank sent the same row
    if not ((table[:, 0] != mine[0]).any() or (table[:, _SAME] != mine[_SAME]).any()):
        return table  # rows differ in their per-rank fields only
    for r in range(table.shape[0]):
        if table[r, 0] != mine[0]:
            raise RuntimeError(f"{opname}: ranks called different collectives at the same point: rank "
                               f"{pg.ranks[r]} called {_OPS[int(table[r, 0])]}, rank {pg.ranks[pg.rank()]} "
                               f"called {opname}")
    for r in range(1, table.shape[0]):
        if not np.array_equal(table[r, _SAME], table[0, _SAME]):
            raise RuntimeError(f"{opname}: rank {pg.ranks[0]} passed {show(table[0])} but rank {pg.ranks[r]} "
                               f"passed {show(table[r])}; every rank must pass the same")
    return table


def check_same(pg, opname, values, show):
    """Every rank of ``pg`` passed the same ``values`` (up to 11 ints), else the same error everywhere."""
    _exchange(pg, opname, values, show=show, needed=True)


def _own_flags(table, pg, opname, problem, what):
    """Raise on every rank if some rank flagged a local problem (``what``) in its first own slot."""
    if table is None:  # checks off: only this rank knows
        if problem is not None:
            raise RuntimeError(f"{opname}: rank {pg.ranks[pg.rank()]}: {problem}")
        return
    for r in range(table.shape[0]):
        if table[r, 12]:
            detail = problem if r == pg.rank() else f"its {what} does not fit (the error on that rank says why)"
            raise RuntimeError(f"{opname}: rank {pg.ranks[r]}: {detail}")


class Work:
    """A collective in flight (``async_op=True``): ``wait()`` blocks until it has finished and
    its result is in the tensors; ``is_completed()`` asks without blocking."""

    def __init__(self, opname, requests, finish=None, outputs=()):
        self._opname, self._requests, self._finish = opname, requests, finish
        self._outputs = list(outputs)
        self._done = False
        self._error = None

    def _complete(self):
        self._done = True
        if self._finish is not None:
            finish, self._finish = self._finish, None
            try:
                finish()
            except Exception as e:
                self._error = e
                raise

    def wait(self, timeout=None) -> bool:
        """Block until done (``timeout``: seconds or a timedelta, then RuntimeError)."""
        if not self._done and timeout is not None:
            seconds = timeout.total_seconds() if hasattr(timeout, "total_seconds") else float(timeout)
            deadline = time.monotonic() + seconds
            while not self.is_completed():
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{self._opname}: not completed within {seconds:g} s (is a rank missing "
                                       f"from this collective?)")
                time.sleep(1e-4)
        if not self._done:
            try:
                _group._MPI.Request.Waitall(self._requests)
            except _group._MPI.Exception as e:
                self._done, self._error = True, RuntimeError(f"{self._opname}: MPI failed: {e}")
                raise self._error from e
            self._complete()
        if self._error is not None:
            raise self._error
        return True

    def is_completed(self) -> bool:
        """Whether the collective has finished, without blocking."""
        if not self._done and _group._MPI.Request.Testall(self._requests):
            self._complete()
        return self._done

    def is_success(self) -> bool:
        """Whether the collective finished without an error."""
        return self._done and self._error is None

    def exception(self):
        """The error the collective raised, or None."""
        return self._error

    def result(self):
        """An empty list (PyTorch's answer for the collectives implemented here)."""
        return []

    def get_future(self) -> Future:
        """A :class:`tapegrad.futures.Future` completed with the collective's output tensors
        (``[tensor]`` for ``all_reduce``, ``broadcast`` and ``reduce``; ``[tensor_list]`` for
        ``all_gather``; ``[output]`` for the ``*_tensor`` forms and ``reduce_scatter``), as
        PyTorch's ``Work.get_future()``: ``fut.then(callback)`` chains work on the result. MPI
        advances in calls, so the future completes in its ``wait()`` or ``done()``.

        >>> fut = dist.all_reduce(t, async_op=True).get_future().then(lambda f: f.value()[0] / 2)
        >>> halved = fut.wait()
        """
        return Future._of(lambda: (self.wait(), self._outputs)[1], self.is_completed)


def _run(opname, async_op, start, finish=None, outputs=()):
    """Start (non-blocking) or run (blocking) the MPI call; ``finish`` runs once the data is there;
    ``outputs`` are what the work's future gives."""
    if async_op:
        req = start(True)
        return Work(opname, [req] if not isinstance(req, list) else req, finish, outputs)
    try:
        start(False)
    except _group._MPI.Exception as e:
        raise RuntimeError(f"{opname}: MPI failed: {e}") from e
    if finish is not None:
        finish()
    return None


def _avg(a, n):
    def finish():
        np.divide(a, n, out=a)  # in place on the tensor's buffer
    return finish


# ------------------------------------------------------------------ collectives

def barrier(group=None, async_op=False, device_ids=None):
    """Wait until every rank of the group has reached this call."""
    pg = resolve(group, "barrier")
    with pg.lock:
        if _CHECK:
            _exchange(pg, "barrier", [])  # the allgather is the barrier, and checks nobody is elsewhere
        else:
            pg.comm.Barrier()
    return Work("barrier", []) if async_op else None


def all_reduce(tensor, op=ReduceOp.SUM, group=None, async_op=False):
    """Combine ``tensor`` across ranks, in place, on every rank.

    >>> t = tapegrad.tensor([float(dist.get_rank())])
    >>> dist.all_reduce(t)        # every rank now holds 0 + 1 + ... + (world - 1)
    """
    pg = _group._WORLD if group is None and _group._WORLD is not None else resolve(group, "all_reduce")
    a = _array(tensor, "all_reduce")
    mop, typ = _mpi_op(op, a.dtype, "all_reduce"), _mpi_type(a.dtype)
    MPI = _group._MPI
    with pg.lock:
        if _CHECK:
            _exchange_row(pg, "all_reduce", _cached_row("all_reduce", a, op.code), _show_op)
        tensor._bump_version()
        if async_op:
            return Work("all_reduce", [pg.comm.Iallreduce(MPI.IN_PLACE, [a, typ], mop)],
                        _avg(a, pg.size()) if op is ReduceOp.AVG else None, [tensor])
        try:
            pg.comm.Allreduce(MPI.IN_PLACE, [a, typ], mop)
        except MPI.Exception as e:
            raise RuntimeError(f"all_reduce: MPI failed: {e}") from e
    if op is ReduceOp.AVG:
        np.divide(a, pg.size(), out=a)


def _show_op(row):
    return f"{_show(row)} with ReduceOp.{_REDUCE_OPS[int(row[10])].name}"


def _show_root(word):
    def show(row):
        return f"{_show(row)} with {word}={int(row[10])}"
    return show


def broadcast(tensor, src=None, group=None, async_op=False, group_src=None):
    """Copy rank ``src``'s tensor into every rank's ``tensor``."""
    pg = resolve(group, "broadcast")
    root = _root(pg, src, group_src, "src", "broadcast")
    a = _array(tensor, "broadcast")
    typ = _mpi_type(a.dtype)
    with pg.lock:
        if _CHECK:
            _exchange_row(pg, "broadcast", _cached_row("broadcast", a, pg.ranks[root]), _show_root("src"))
        _bump(tensor)
        return _run("broadcast", async_op, lambda nb: (pg.comm.Ibcast if nb else pg.comm.Bcast)([a, typ], root),
                    outputs=[tensor])


def _root(pg, rank, group_rank, word, opname):
    if group_rank is not None:
        if not 0 <= group_rank < pg.size():
            raise ValueError(f"{opname}: group_{word}={group_rank} is out of range for a group of {pg.size()}")
        return group_rank
    if rank is None:
        if word in ("src", "dst") and opname not in ("broadcast",):
            rank = pg.ranks[0]
        else:
            raise TypeError(f"{opname}: missing {word} (the root's rank)")
    return pg.group_rank(int(rank), word, opname)


def reduce(tensor, dst=None, op=ReduceOp.SUM, group=None, async_op=False, group_dst=None):
    """Combine ``tensor`` across ranks into rank ``dst``'s tensor (the others' stay as they were)."""
    pg = resolve(group, "reduce")
    root = _root(pg, dst, group_dst, "dst", "reduce")
    a = _array(tensor, "reduce")
    mop, typ = _mpi_op(op, a.dtype, "reduce"), _mpi_type(a.dtype)
    MPI = _group._MPI
    at_root = pg.rank() == root
    with pg.lock:
        _exchange(pg, "reduce", _describe(a) + [op.code, pg.ranks[root]],
                  show=lambda row: f"{_show(row)} with ReduceOp.{_REDUCE_OPS[int(row[10])].name}, dst={int(row[11])}")
        if at_root:
            _bump(tensor)
        send, recv = (MPI.IN_PLACE, [a, typ]) if at_root else ([a, typ], None)
        return _run("reduce", async_op,
                    lambda nb: (pg.comm.Ireduce if nb else pg.comm.Reduce)(send, recv, mop, root),
                    _avg(a, pg.size()) if op is ReduceOp.AVG and at_root else None, [tensor])


def _list_problem(tensors, a, n, what, rank=None):
    """Why a list with one tensor per rank does not fit (None if it does): its length, and each entry a
    writeable tensor of ``a``'s dtype and shape. With ``rank`` (uneven gathers and scatters, whose
    entries may differ in shape) only that rank's entry must have ``a``'s shape."""
    if tensors is None or len(tensors) != n or not all(isinstance(t, Tensor) for t in tensors):
        got = "None" if tensors is None else f"{len(tensors)} entries" if len(tensors) != n else \
            "a list with non-tensors"
        return f"{what} must be a list of {n} tensors (one per rank), got {got}"
    for i, t in enumerate(tensors):
        if t._data.dtype != a.dtype:
            return f"{what}[{i}] is {t._data.dtype.name} but the tensor is {a.dtype.name}"
        if not t._data.flags.writeable:
            return f"{what}[{i}] is a read-only view"
        if (rank is None or i == rank) and t._data.shape != a.shape:
            whose = " (this rank's entry)" if rank is not None else ""
            return (f"{what}[{i}]{whose} has shape {tuple(t._data.shape)} but this rank's tensor has shape "
                    f"{tuple(a.shape)}")
    return None


def _per_rank_list(tensors, a, n, rank, what):
    """``_list_problem`` for an uneven list, and the ints every rank must agree on: the dtype, the
    length and a digest of the list's shapes. Returns (problem or None, those ints)."""
    problem = _list_problem(tensors, a, n, what, rank)
    if tensors is None or len(tensors) != n or not all(isinstance(t, Tensor) for t in tensors):
        return problem, [_DTYPES.index(a.dtype), -1]
    shapes = [tuple(t._data.shape) for t in tensors]
    return problem, [_DTYPES.index(a.dtype), len(tensors), zlib.crc32(repr(shapes).encode())]


def _show_list(what):
    def show(row):
        return f"a {what} of {int(row[2])} {_DTYPES[int(row[1])].name} tensors (shapes digest {int(row[3])})"
    return show


def _flat_counts(tensors):
    counts = [int(t._data.size) for t in tensors]
    displs = [0] * len(counts)
    for i in range(1, len(counts)):
        displs[i] = displs[i - 1] + counts[i - 1]
    return counts, displs


def all_gather(tensor_list, tensor, group=None, async_op=False):
    """``tensor_list[i]`` receives rank i's ``tensor``.

    The ranks' tensors may differ in shape (an uneven gather, as PyTorch allows): then
    ``tensor_list[i]`` has rank i's shape, and every rank passes a list of the same shapes; a
    rank whose list does not fit raises the same error on every rank.
    """
    pg = resolve(group, "all_gather")
    a = _array(tensor, "all_gather")
    n, me = pg.size(), pg.rank()
    problem, same = _per_rank_list(tensor_list, a, n, me, "tensor_list")
    typ = _mpi_type(a.dtype)
    with pg.lock:
        table = _exchange(pg, "all_gather", same, own=[problem is not None],
                          show=_show_list("tensor_list"))
        _own_flags(table, pg, "all_gather", problem, "tensor_list")
        _bump(*tensor_list)
        even = all(t._data.shape == a.shape for t in tensor_list)
        if even:  # one block per rank
            flat = np.empty((n,) + a.shape, a.dtype)
            recv = [flat, typ]
            start = lambda nb: (pg.comm.Iallgather if nb else pg.comm.Allgather)([a, typ], recv)  # noqa: E731
        else:
            counts, displs = _flat_counts(tensor_list)
            flat = np.empty(sum(counts), a.dtype)
            recv = [flat, (counts, displs), typ]
            start = lambda nb: (pg.comm.Iallgatherv if nb else pg.comm.Allgatherv)([a, typ], recv)  # noqa: E731

        def finish():
            if even:
                for t, part in zip(tensor_list, flat):
                    t._data[...] = part
            else:
                for t, c, d in zip(tensor_list, counts, displs):
                    t._data[...] = flat[d:d + c].reshape(t._data.shape)
        return _run("all_gather", async_op, start, finish, [tensor_list])


def all_gather_into_tensor(output_tensor, input_tensor, group=None, async_op=False):
    """Rank i's ``input_tensor`` lands in the i-th block of ``output_tensor``'s first dim (or of
    its flat storage): ``output`` holds world_size times ``input``'s elements."""
    pg = resolve(group, "all_gather_into_tensor")
    a = _array(input_tensor, "all_gather_into_tensor", "input_tensor")
    out = _array(output_tensor, "all_gather_into_tensor", "output_tensor")
    problem = _fits(out, a, pg.size(), "output_tensor", "input_tensor")
    typ = _mpi_type(a.dtype)
    with pg.lock:
        table = _exchange(pg, "all_gather_into_tensor", _describe(a), own=[problem is not None])
        _own_flags(table, pg, "all_gather_into_tensor", problem, "output_tensor")
        _bump(output_tensor)
        return _run("all_gather_into_tensor", async_op,
                    lambda nb: (pg.comm.Iallgather if nb else pg.comm.Allgather)([a, typ], [out, typ]),
                    outputs=[output_tensor])


def _fits(big, small, n, big_name, small_name):
    if big.dtype != small.dtype:
        return f"{big_name} is {big.dtype.name} but {small_name} is {small.dtype.name}"
    if big.size != n * small.size:
        return (f"{big_name} of shape {tuple(big.shape)} must hold world_size ({n}) x {small_name}'s "
                f"{small.size} elements ({n * small.size}), got {big.size}")
    return None


def reduce_scatter_tensor(output, input, op=ReduceOp.SUM, group=None, async_op=False):
    """Reduce ``input`` (world_size blocks) across ranks; rank i keeps block i in ``output``."""
    pg = resolve(group, "reduce_scatter_tensor")
    a = _array(input, "reduce_scatter_tensor", "input")
    out = _array(output, "reduce_scatter_tensor", "output")
    problem = _fits(a, out, pg.size(), "input", "output")
    mop, typ = _mpi_op(op, a.dtype, "reduce_scatter_tensor"), _mpi_type(a.dtype)
    with pg.lock:
        table = _exchange(pg, "reduce_scatter_tensor", _describe(a) + [op.code], own=[problem is not None],
                          show=_show_op)
        _own_flags(table, pg, "reduce_scatter_tensor", problem, "input/output sizes")
        _bump(output)
        return _run("reduce_scatter_tensor", async_op,
                    lambda nb: (pg.comm.Ireduce_scatter_block if nb else pg.comm.Reduce_scatter_block)(
                        [a, typ], [out, typ], mop),
                    _avg(out, pg.size()) if op is ReduceOp.AVG else None, [output])


def reduce_scatter(output, input_list, op=ReduceOp.SUM, group=None, async_op=False):
    """Reduce ``input_list`` element-wise across ranks; rank i keeps the reduced
    ``input_list[i]`` in ``output``.

    ``input_list[i]`` has rank i's ``output`` shape, and every rank passes a list of the same
    shapes (they may differ between ranks: an uneven scatter).
    """
    pg = resolve(group, "reduce_scatter")
    out = _array(output, "reduce_scatter", "output")
    n, me = pg.size(), pg.rank()
    problem, same = _per_rank_list(input_list, out, n, me, "input_list")
    mop, typ = _mpi_op(op, out.dtype, "reduce_scatter"), _mpi_type(out.dtype)
    with pg.lock:
        table = _exchange(pg, "reduce_scatter", same + [0] * (9 - len(same)) + [op.code], own=[problem is not None],
                          show=_show_list("input_list"))
        _own_flags(table, pg, "reduce_scatter", problem, "input_list")
        counts, _ = _flat_counts(input_list)
        flat = np.concatenate([np.ascontiguousarray(t._data).reshape(-1) for t in input_list])
        _bump(output)
        if len(set(counts)) == 1:
            start = lambda nb: (pg.comm.Ireduce_scatter_block if nb else pg.comm.Reduce_scatter_block)(  # noqa: E731
                [flat, typ], [out, typ], mop)
        else:
            start = lambda nb: (pg.comm.Ireduce_scatter if nb else pg.comm.Reduce_scatter)(  # noqa: E731
                [flat, typ], [out, typ], counts, mop)
        return _run("reduce_scatter", async_op, start, _avg(out, n) if op is ReduceOp.AVG else None, [output])


def _rooted_list_call(pg, opname, tensor, lst, list_name, root_name, root_arg, group_root):
    """The checks gather and scatter share, called under ``pg.lock``: the root, the tensor, the list
    (given on the root only), exchanged with the other ranks so that every rank raises the same
    error. Returns ``(root, array, mpi type, at_root)``."""
    root = _root(pg, root_arg, group_root, root_name, opname)
    a = _array(tensor, opname)
    at_root = pg.rank() == root
    problem = _list_problem(lst, a, pg.size(), list_name) if at_root else None
    if not at_root and lst:
        problem = f"{list_name} must be None or empty on ranks other than {root_name} ({pg.ranks[root]})"
    table = _exchange(pg, opname, _describe(a) + [pg.ranks[root]], own=[problem is not None],
                      show=_show_root(root_name))
    _own_flags(table, pg, opname, problem, list_name)
    return root, a, _mpi_type(a.dtype), at_root


def gather(tensor, gather_list=None, dst=None, group=None, async_op=False, group_dst=None):
    """Rank ``dst``'s ``gather_list[i]`` receives rank i's ``tensor``; other ranks pass no list."""
    pg = resolve(group, "gather")
    with pg.lock:
        root, a, typ, at_root = _rooted_list_call(pg, "gather", tensor, gather_list, "gather_list", "dst", dst,
                                                  group_dst)
        flat = np.empty((pg.size(),) + a.shape, a.dtype) if at_root else None
        if at_root:
            _bump(*gather_list)

        def finish():
            if at_root:
                for t, part in zip(gather_list, flat):
                    t._data[...] = part
        recv = [flat, typ] if at_root else None
        return _run("gather", async_op,
                    lambda nb: (pg.comm.Igather if nb else pg.comm.Gather)([a, typ], recv, root), finish,
                    [gather_list] if at_root else [])


def scatter(tensor, scatter_list=None, src=None, group=None, async_op=False, group_src=None):
    """Rank i's ``tensor`` receives rank ``src``'s ``scatter_list[i]``; other ranks pass no list."""
    pg = resolve(group, "scatter")
    with pg.lock:
        root, a, typ, at_root = _rooted_list_call(pg, "scatter", tensor, scatter_list, "scatter_list", "src", src,
                                                  group_src)
        flat = np.stack([t._data for t in scatter_list]) if at_root else None
        _bump(tensor)
        send = [flat, typ] if at_root else None
        return _run("scatter", async_op,
                    lambda nb: (pg.comm.Iscatter if nb else pg.comm.Scatter)(send, [a, typ], root),
                    outputs=[tensor])


# ------------------------------------------------------------------ point to point
# A message is a header (dtype and shape, 11 int64) then the data, so that a receiver whose
# tensor does not match raises a clear error instead of reading garbage. Tags 2k and 2k+1.

def _tags(tag):
    if not 0 <= tag < 2 ** 28:
        raise ValueError(f"tag must be in [0, 2**28), got {tag}")
    return 2 * tag, 2 * tag + 1


def isend(tensor, dst=None, group=None, tag=0, group_dst=None):
    """Send ``tensor`` to rank ``dst`` without blocking; returns a ``Work``."""
    pg = resolve(group, "isend")
    peer = _root(pg, dst, group_dst, "dst", "isend")
    a = _array(tensor, "isend")
    head = np.array(_describe(a), np.int64)
    htag, dtag = _tags(tag)
    reqs = [pg.comm.Isend(head, peer, htag), pg.comm.Isend([a, _mpi_type(a.dtype)], peer, dtag)]
    return Work("isend", reqs, lambda: head)  # the closure keeps the header alive until sent


def send(tensor, dst=None, group=None, tag=0, group_dst=None) -> None:
    """Send ``tensor`` to rank ``dst``; returns once the buffer may be reused."""
    isend(tensor, dst, group, tag, group_dst).wait()


def irecv(tensor, src=None, group=None, tag=0, group_src=None):
    """Receive into ``tensor`` from rank ``src`` (any rank if None) without blocking."""
    return _recv(tensor, src, group, tag, group_src, "irecv", True)


def recv(tensor, src=None, group=None, tag=0, group_src=None) -> int:
    """Receive into ``tensor`` from rank ``src`` (any rank if None); returns the sender's rank."""
    return _recv(tensor, src, group, tag, group_src, "recv", False)


def _recv(tensor, src, group, tag, group_src, opname, async_op):
    MPI = _group._MPI
    pg = resolve(group, opname)
    a = _array(tensor, opname)
    htag, dtag = _tags(tag)
    mine = _describe(a)
    head = np.empty(len(mine), np.int64)
    if src is None and group_src is None:  # any sender: read the header first to learn who
        status = MPI.Status()
        pg.comm.Recv(head, MPI.ANY_SOURCE, htag, status)
        peer = status.Get_source()
        got_head = True
    else:
        peer = _root(pg, src, group_src, "src", opname)
        got_head = False
    _bump(tensor)

    def check():
        if list(head) != mine:
            raise RuntimeError(f"{opname}: rank {pg.ranks[peer]} sent {_show([0, *head])} but this rank "
                               f"({pg.ranks[pg.rank()]}) receives into {_show([0, *mine])}")

    if not async_op:
        if not got_head:
            pg.comm.Recv(head, peer, htag)
        if list(head) != mine:  # take the message anyway, so that it cannot match a later receive
            status = MPI.Status()
            pg.comm.Probe(peer, dtag, status)
            pg.comm.Recv([bytearray(status.Get_count(MPI.BYTE)), MPI.BYTE], peer, dtag)
            check()
        pg.comm.Recv([a, _mpi_type(a.dtype)], peer, dtag)
        return pg.ranks[peer]
    reqs = [] if got_head else [pg.comm.Irecv(head, peer, htag)]
    reqs.append(pg.comm.Irecv([a, _mpi_type(a.dtype)], peer, dtag))
    work = Work(opname, reqs, check)
    work.source = pg.ranks[peer]
    return work


# ------------------------------------------------------------------ objects, as JSON (never pickle)

def _encode(obj, opname):
    try:
        return json.dumps(obj, allow_nan=True, separators=(",", ":")).encode(), None
    except (TypeError, ValueError) as e:
        return b"", (f"{type(obj).__name__} object is not JSON-serializable ({e}); tapegrad sends objects as "
                     f"JSON, never pickle (unpickling a peer's bytes runs arbitrary code): pass dicts, lists, "
                     f"str, int, float, bool or None")


_NOT_JSON = "its object is not JSON-serializable (objects travel as JSON, never pickle; the error on that rank says which)"


def all_gather_object(object_list, obj, group=None) -> None:
    """``object_list[i]`` receives rank i's ``obj``, sent as JSON (so tuples come back as lists
    and dict keys as strings). Objects that JSON cannot hold raise TypeError on every rank."""
    pg = resolve(group, "all_gather_object")
    data, problem = _encode(obj, "all_gather_object")
    if problem is None and (not isinstance(object_list, list) or len(object_list) != pg.size()):
        problem = f"object_list must be a list of world_size ({pg.size()}) entries"
    with pg.lock:
        table = _exchange(pg, "all_gather_object", [], own=[problem is not None, len(data)], needed=True)
        for r in range(pg.size()):
            if table[r, 12]:
                raise TypeError(f"all_gather_object: rank {pg.ranks[r]}: "
                                f"{problem if r == pg.rank() else _NOT_JSON}")
        counts = table[:, 13].astype(np.int64)
        buf = bytearray(int(counts.sum()))
        displ = np.concatenate([[0], np.cumsum(counts)[:-1]])
        pg.comm.Allgatherv([data, _group._MPI.BYTE], [buf, (counts.tolist(), displ.tolist()), _group._MPI.BYTE])
    for r in range(pg.size()):
        object_list[r] = json.loads(bytes(buf[displ[r]:displ[r] + counts[r]]))


def broadcast_object_list(object_list, src=None, group=None, device=None, group_src=None) -> None:
    """Rank ``src``'s ``object_list`` entries replace every rank's (a list of the same length), sent as JSON."""
    pg = resolve(group, "broadcast_object_list")
    root = _root(pg, src if src is not None or group_src is not None else pg.ranks[0], group_src, "src",
                 "broadcast_object_list")
    at_root = pg.rank() == root
    problem = None if isinstance(object_list, list) else "object_list must be a list"
    data = b""
    if at_root and problem is None:
        data, problem = _encode(list(object_list), "broadcast_object_list")
    n = len(object_list) if isinstance(object_list, list) else -1
    with pg.lock:
        table = _exchange(pg, "broadcast_object_list", [n, pg.ranks[root]], own=[problem is not None, len(data)],
                          show=lambda row: f"a list of {int(row[1])} objects with src={int(row[2])}", needed=True)
        for r in range(pg.size()):
            if table[r, 12]:
                raise TypeError(f"broadcast_object_list: rank {pg.ranks[r]}: "
                                f"{problem if r == pg.rank() else _NOT_JSON}")
        buf = bytearray(data) if at_root else bytearray(int(table[root, 13]))
        pg.comm.Bcast([buf, _group._MPI.BYTE], root)
    if not at_root:
        object_list[:] = json.loads(bytes(buf))


def new_group(ranks=None, timeout=None, backend=None, pg_options=None, use_local_synchronization=False):
    """A group of some of the world's ranks. Every rank of the world calls it with the same
    ``ranks`` (as PyTorch requires); a rank outside receives a marker that collectives refuse."""
    world = _group._default("new_group")
    size = world.size()
    ranks = list(range(size)) if ranks is None else [int(r) for r in ranks]
    bad = [r for r in ranks if not 0 <= r < size]
    if bad or len(set(ranks)) != len(ranks):
        raise ValueError(f"new_group: ranks must be distinct ranks of the world (0..{size - 1}), got {ranks}")
    ranks = sorted(ranks)
    with world.lock:
        # every rank must ask for the same group: checked like a collective
        check_same(world, "new_group", [len(ranks), hash(tuple(ranks))],
                                lambda row: f"a list of {int(row[1])} ranks (hash {int(row[2])})")
    mpi_group = world.comm.Get_group().Incl(ranks)
    comm = world.comm.Create(mpi_group)  # collective over the world; COMM_NULL outside the group
    mpi_group.Free()
    if comm == _group._MPI.COMM_NULL:
        return _group._NonMember(ranks)
    comm.Set_errhandler(_group._MPI.ERRORS_RETURN)
    return _group.ProcessGroup(comm, ranks)


def all_to_all_single(output, input, output_split_sizes=None, input_split_sizes=None, group=None, async_op=False):
    """PyTorch's all-to-all exchange of slices (expert parallelism); tapegrad's MPI backend has
    none: raises ``NotImplementedError``."""
    raise NotImplementedError("all_to_all_single: tapegrad.distributed has no all-to-all collective "
                              "(all_to_all, all_to_all_single)")


def all_to_all(output_tensor_list, input_tensor_list, group=None, async_op=False):
    """PyTorch's all-to-all exchange of tensor lists; tapegrad's MPI backend has none: raises
    ``NotImplementedError``."""
    raise NotImplementedError("all_to_all: tapegrad.distributed has no all-to-all collective "
                              "(all_to_all, all_to_all_single)")
