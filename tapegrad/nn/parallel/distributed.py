"""``DistributedDataParallel``: one model replica per process, gradients averaged over MPI.

How a step runs (as PyTorch's reducer):

* construction: every rank checks that the others hold the same parameters (count, shapes,
  dtypes), then takes rank 0's values and buffers. Gradients get flat buckets (reverse
  registration order: the last layers' gradients are ready first; the first bucket is capped at
  1 MB so communication starts early, the others at ``bucket_cap_mb``).
* forward: resets the bookkeeping; with ``find_unused_parameters`` it walks the recorded graph
  from the outputs and marks the parameters it does not reach as ready (their slot holds their
  current ``.grad`` or zeros).
* backward: a hook on every parameter receives its gradient before the engine accumulates it
  into ``.grad``, copies ``.grad + grad`` into the bucket, and when a bucket is full starts a
  non-blocking ``Iallreduce`` on it. Buckets start strictly in index order, so every rank issues
  the same sequence of collectives even if its hooks fire in another order. Each hook also tests
  the allreduces in flight, which lets MPI progress them while backward computes.
* the hook of the last parameter waits for every bucket, divides by the world size and writes
  the averages into ``.grad`` (the last parameter's through the value its hook returns, which the
  engine then accumulates into its zeroed ``.grad``). A parameter no rank used keeps its ``.grad``.
"""
from __future__ import annotations

import contextlib
import time
import zlib

import numpy as np

from ... import autograd
from ...distributed import _collectives, _group
from ..modules.module import Module
from ...tensor import Tensor

_FIRST_BUCKET_BYTES = 1 << 20


class DistributedDataParallel(Module):
    """Wrap ``module`` so that ``backward()`` averages its gradients over the process group.

    >>> dist.init_process_group("mpi")
    >>> model = DistributedDataParallel(LeNet())
    >>> loss = F.cross_entropy(model(x_local), y_local)    # each rank its own part of the batch
    >>> loss.backward()                                     # .grad: the average over all ranks
    >>> opt.step()

    ``no_sync()`` accumulates gradients locally (the next synchronised backward averages the
    sum); ``find_unused_parameters=True`` for models whose forward leaves some parameters out.
    ``device_ids``, ``output_device``, ``dim``, ``gradient_as_bucket_view`` and ``static_graph``
    are accepted for PyTorch code's sake: on CPU they change nothing about the numbers.
    """

    def __init__(self, module, device_ids=None, output_device=None, dim=0, broadcast_buffers=True,
                 process_group=None, bucket_cap_mb=None, find_unused_parameters=False, check_reduction=False,
                 gradient_as_bucket_view=False, static_graph=False):
        super().__init__()
        if not isinstance(module, Module):
            raise TypeError(f"DistributedDataParallel: module must be a tapegrad.nn.Module, got {type(module).__name__}")
        if device_ids not in (None, [], ["cpu"]):
            raise ValueError(f"DistributedDataParallel: tapegrad runs on the CPU; device_ids must be None, "
                             f"got {device_ids!r}")
        pg = _group.resolve(process_group, "DistributedDataParallel")
        self.module = module
        d = self.__dict__  # plain attributes (not submodules or parameters)
        d["process_group"] = pg
        d["broadcast_buffers"] = broadcast_buffers
        d["find_unused_parameters"] = find_unused_parameters
        d["require_backward_grad_sync"] = True
        d["_named"] = [(n, p) for n, p in module.named_parameters() if p.requires_grad]
        d["_params"] = [p for _, p in self._named]
        d["_world"] = pg.size()
        self._check_same_model(pg)
        d["_comm"] = pg.comm.Dup()  # the buckets' messages never match a user's collective
        self._sync_module_states()
        cap = 25 * (1 << 20) if bucket_cap_mb is None else int(bucket_cap_mb * (1 << 20))
        d["_cap"] = cap
        self._build_buckets(cap)
        d["_hooks"] = [p.register_hook(self._make_hook(i)) for i, p in enumerate(self._params)]
        d["_expect_hooks"] = False  # set by a forward whose backward must synchronise
        d["_fired"] = 0
        d["_times"] = None  # this iteration's [forward start, forward end, first bucket out]
        d["_timing_sums"] = np.zeros(4)  # sums over iterations: forward, backward compute, comm, overlap
        d["_timed"] = 0

    # ------------------------------------------------------------ construction
    def _check_same_model(self, pg):
        shapes = [(n, tuple(p.shape), p._data.dtype.name)
                  for n, p in self._named]
        shapes += [(n, tuple(b.shape)) for n, b in self.module.named_buffers() if b is not None]
        digest = zlib.crc32(repr(shapes).encode())
        with pg.lock:
            _collectives.check_same(pg, "ddp_init", [len(self._params), digest],
                                    lambda row: f"a module with {int(row[1])} trainable parameters (digest "
                                                f"{int(row[2])} of names, shapes, dtypes, buffers)")

    def _sync_module_states(self):
        """Every rank starts from rank 0's parameters and buffers."""
        if self._world == 1:
            return
        root = 0
        tensors = list(self.module.parameters()) + [b for b in self.module.buffers() if b is not None]
        for t in tensors:
            a = t._data
            if not a.flags.c_contiguous:
                raise ValueError(f"DistributedDataParallel: a parameter or buffer of shape {tuple(a.shape)} is "
                                 f"not contiguous")
            self._comm.Bcast([a, _collectives._mpi_type(a.dtype)], root)
            t._bump_version()

    def _build_buckets(self, cap):
        order = list(range(len(self._params)))[::-1]
        buckets, current, size, dtype = [], [], 0, None
        limit = min(_FIRST_BUCKET_BYTES, cap)
        for i in order:
            a = self._params[i]._data
            if current and (a.dtype != dtype):
                buckets.append(current)
                current, size = [], 0
                limit = cap
            current.append(i)
            size += a.nbytes
            dtype = a.dtype
            if size >= limit:
                buckets.append(current)
                current, size = [], 0
                limit = cap
        if current:
            buckets.append(current)
        d = self.__dict__
        d["_bucket_params"] = buckets
        d["_buffers_flat"], d["_views"] = [], [None] * len(self._params)
        d["_bucket_of"] = [0] * len(self._params)
        for b, idx in enumerate(buckets):
            dt = self._params[idx[0]]._data.dtype
            flat = np.zeros(sum(self._params[i]._data.size for i in idx), dt)
            off = 0
            for i in idx:
                a = self._params[i]._data
                self._views[i] = flat[off:off + a.size].reshape(a.shape)
                self._bucket_of[i] = b
                off += a.size
            self._buffers_flat.append((flat, _collectives._mpi_type(dt)))
        d["_requests"] = [None] * len(buckets)

    # ------------------------------------------------------------ forward
    def forward(self, *inputs, **kwargs):
        if self._expect_hooks and self._fired:
            missing = [n for (n, _), r in zip(self._named, self._ready) if not r]
            raise RuntimeError(
                "DistributedDataParallel: the previous backward did not finish its gradient reduction: "
                f"parameters {missing} received no gradient. If the model's forward does not use every "
                "parameter, construct DistributedDataParallel(..., find_unused_parameters=True); make sure "
                "every output that depends on parameters is part of the loss.")
        d = self.__dict__
        d["_expect_hooks"] = autograd.is_grad_enabled() and self.require_backward_grad_sync
        if self._expect_hooks:
            self._prepare()
        if self.broadcast_buffers and self._world > 1:
            for b in self.module.buffers():
                if b is not None:
                    self._comm.Bcast([b._data, _collectives._mpi_type(b._data.dtype)], 0)
        t0 = time.perf_counter()
        out = self.module(*inputs, **kwargs)
        if self._expect_hooks:
            d["_times"] = [t0, time.perf_counter(), None]
            if self.find_unused_parameters:
                self._mark_unused(out)
        return out

    def _prepare(self):
        d = self.__dict__
        d["_ready"] = [False] * len(self._params)
        d["_used"] = np.zeros(len(self._params), np.int32)
        d["_pending"] = [len(idx) for idx in self._bucket_params]
        d["_next"] = 0
        d["_left"] = len(self._params)
        d["_fired"] = 0

    def _mark_unused(self, out):
        """Parameters that the graph from ``out`` does not reach are ready now."""
        stack, seen, reached = [], set(), set()

        def collect(o):
            if isinstance(o, Tensor):
                if o.grad_fn is not None:
                    stack.append(o.grad_fn)
                elif o.requires_grad:
                    reached.add(id(o))
            elif isinstance(o, (list, tuple)):
                for x in o:
                    collect(x)
            elif isinstance(o, dict):
                for x in o.values():
                    collect(x)
        collect(out)
        while stack:
            node = stack.pop()
            if id(node) in seen:
                continue
            seen.add(id(node))
            for nxt, _ in node.next_functions:
                if nxt is None:
                    continue
                var = getattr(nxt, "variable", None)
                if var is not None:
                    reached.add(id(var))
                else:
                    stack.append(nxt)
        for i, p in enumerate(self._params):
            if id(p) not in reached:
                view = self._views[i]
                if p.grad is None:
                    view[...] = 0
                else:
                    np.copyto(view, p.grad._data)
                self._mark_ready(i)
        if self._left == 0:  # nothing here needs a gradient: no hook will finish the reduction
            self._finalize(None)

    # ------------------------------------------------------------ backward
    def _make_hook(self, i):
        def hook(grad):
            return self._on_grad(i, grad)
        return hook

    def _on_grad(self, i, grad):
        if not self._expect_hooks:
            return None  # no_sync, or a forward without grad: accumulate locally as usual
        if self._ready[i]:
            raise RuntimeError(
                f"DistributedDataParallel: parameter {self._named[i][0]} received a gradient twice in one "
                f"backward (is it used in two backward passes of one forward, or by an engine that calls "
                f"leaf hooks once per use?)")
        self.__dict__["_fired"] = self._fired + 1
        self._used[i] = 1
        p, view = self._params[i], self._views[i]
        if p.grad is None:
            np.copyto(view, grad._data)
        else:
            np.add(p.grad._data, grad._data, out=view)
        self._mark_ready(i)
        if self._left == 0:
            return self._finalize(i)
        return None

    def _mark_ready(self, i):
        b = self._bucket_of[i]
        self._ready[i] = True
        self._pending[b] -= 1
        self.__dict__["_left"] = self._left - 1
        MPI = _group._MPI
        if self._pending[b] == 0:
            if self._next == 0 and self._times is not None:
                self._times[2] = time.perf_counter()
            while self._next < len(self._pending) and self._pending[self._next] == 0:
                flat, typ = self._buffers_flat[self._next]
                self._requests[self._next] = self._comm.Iallreduce(MPI.IN_PLACE, [flat, typ], MPI.SUM)
                self.__dict__["_next"] = self._next + 1
        # let MPI move the buckets in flight along while backward computes
        live = [r for r in self._requests[:self._next] if r is not None]
        if live:
            MPI.Request.Testall(live)

    def _finalize(self, last):
        """Every bucket is reduced: average and write into ``.grad``; returns the last parameter's."""
        MPI = _group._MPI
        compute_end = time.perf_counter()
        MPI.Request.Waitall([r for r in self._requests if r is not None])
        self.__dict__["_requests"] = [None] * len(self._requests)
        used = self._used
        if self.find_unused_parameters and self._world > 1:
            self._comm.Allreduce(MPI.IN_PLACE, used, MPI.MAX)
        if self._world > 1:
            for flat, _ in self._buffers_flat:
                np.divide(flat, self._world, out=flat)
        for i, p in enumerate(self._params):
            if i == last or (self.find_unused_parameters and not used[i]):
                continue
            if p.grad is None:
                p.grad = Tensor._wrap(self._views[i].copy())
            else:
                np.copyto(p.grad._data, self._views[i])
                p.grad._bump_version()
        self.__dict__["_expect_hooks"] = False
        self._record_times(compute_end)
        if last is None:
            return None
        p = self._params[last]
        if p.grad is not None:  # the engine adds our value to it next: 0 + average is exact
            p.grad._data[...] = 0
        return Tensor._wrap(self._views[last].copy())

    def _record_times(self, compute_end):
        t = self._times
        if t is None or t[2] is None:
            return
        fwd_start, fwd_end, comm_start = t[0], t[1], t[2]
        comm_end = time.perf_counter()
        self._timing_sums[:] += (fwd_end - fwd_start, compute_end - fwd_end, comm_end - comm_start,
                                 max(compute_end - comm_start, 0.0))
        self.__dict__["_timed"] = self._timed + 1
        self.__dict__["_times"] = None

    def _get_ddp_logging_data(self) -> dict:
        """Average times per synchronised iteration in ns, under PyTorch's keys: forward, backward
        compute (forward's end to the last gradient), communication (first bucket out to all
        reduced) and their overlap (first bucket out to the last gradient)."""
        n = max(self._timed, 1)
        fwd, compute, comm, overlap = (int(v / n * 1e9) for v in self._timing_sums)
        return {"avg_forward_compute_time": fwd, "avg_backward_compute_time": compute,
                "avg_backward_comm_time": comm, "avg_backward_compute_comm_overlap_time": overlap,
                "world_size": self._world, "bucket_cap_bytes": self._cap, "num_buckets": len(self._bucket_params),
                "iterations_timed": self._timed}

    # ------------------------------------------------------------ user-facing
    @contextlib.contextmanager
    def no_sync(self):
        """Inside, forward/backward accumulate gradients locally; the first synchronised
        backward after it averages the accumulated sum over the ranks."""
        old = self.require_backward_grad_sync
        self.__dict__["require_backward_grad_sync"] = False
        try:
            yield
        finally:
            self.__dict__["require_backward_grad_sync"] = old

    def __getstate__(self):
        raise TypeError("DistributedDataParallel cannot be pickled; save model.module.state_dict() instead")
