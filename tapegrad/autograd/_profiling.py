"""The profiler behind ``tapegrad.profiler`` (``torch.profiler``; its docstring says what it
records and how to read it) and ``tapegrad.autograd.profiler`` (the older names). It lives in the
autograd layer so that both can import it.

Times are the host's (CPU) wall time of each op; there is no device activity. Tensor creation
from Python data and work outside ops (numpy in user code) is not an op and shows up only in the
ranges around it. ``profile_memory``, ``with_stack``, ``with_flops`` and ``with_modules`` are
accepted and record nothing more. One profiler records at a time in a process.
"""
from __future__ import annotations

import enum
import functools
import gzip
import json
import os
import shutil
import socket
import tempfile
import threading
import time
from collections import defaultdict

from .. import _C

__all__ = ["profile", "record_function", "schedule", "ProfilerAction", "ProfilerActivity", "tensorboard_trace_handler",
           "EventList", "FunctionEvent", "FunctionEventAvg", "supported_activities", "kineto_available"]


class ProfilerActivity(enum.Enum):
    """What to record: CPU (every op here runs on it); the others are accepted and record nothing."""
    CPU = 0
    CUDA = 1
    XPU = 2
    MTIA = 3
    PrivateUse1 = 4


class ProfilerAction(enum.Enum):
    """What a ``schedule`` asks of a step."""
    NONE = 0
    WARMUP = 1
    RECORD = 2
    RECORD_AND_SAVE = 3


def supported_activities() -> set:
    """What this build records: the CPU."""
    return {ProfilerActivity.CPU}


def kineto_available() -> bool:
    """False: the tape's own hook records, not PyTorch's Kineto library."""
    return False


def schedule(*, wait: int, warmup: int, active: int, repeat: int = 0, skip_first: int = 0,
             skip_first_wait: int = 0):
    """PyTorch's step schedule: skip ``skip_first`` steps, then cycles of ``wait`` idle steps,
    ``warmup`` steps and ``active`` recorded ones (``on_trace_ready`` after each cycle's last),
    ``repeat`` cycles (0: until the profiler stops)."""
    for name, v in (("wait", wait), ("warmup", warmup), ("active", active), ("repeat", repeat),
                    ("skip_first", skip_first)):
        if not isinstance(v, int) or v < 0:
            raise ValueError(f"schedule: {name} must be a non-negative int, got {v!r}")
    if active < 1:
        raise ValueError("schedule: active must be at least 1")

    def schedule_fn(step: int) -> ProfilerAction:
        if step < 0:
            raise ValueError(f"schedule: step must be non-negative, got {step}")
        if step < skip_first:
            return ProfilerAction.NONE
        step -= skip_first
        if skip_first_wait:
            step += wait
        num_steps = wait + warmup + active
        if repeat > 0 and step // num_steps >= repeat:
            return ProfilerAction.NONE
        mod = step % num_steps
        if mod < wait:
            return ProfilerAction.NONE
        if mod < wait + warmup:
            return ProfilerAction.WARMUP
        return ProfilerAction.RECORD if mod < num_steps - 1 else ProfilerAction.RECORD_AND_SAVE
    return schedule_fn


class FunctionEvent:
    """One recorded op, backward node or ``record_function`` range. Times in microseconds."""

    __slots__ = ("name", "start_us", "end_us", "thread", "input_shapes", "cpu_children", "cpu_parent", "id")

    def __init__(self, name, start_us, end_us, thread, input_shapes=None, id=0):
        self.name, self.start_us, self.end_us, self.thread = name, start_us, end_us, thread
        self.input_shapes = input_shapes if input_shapes is not None else []
        self.cpu_children, self.cpu_parent, self.id = [], None, id

    key = property(lambda self: self.name)
    count = property(lambda self: 1)
    cpu_time_total = property(lambda self: self.end_us - self.start_us)
    self_cpu_time_total = property(lambda self: self.cpu_time_total - sum(c.cpu_time_total for c in self.cpu_children))
    cpu_time = cpu_time_total
    device_time_total = self_device_time_total = cuda_time_total = self_cuda_time_total = property(lambda self: 0.0)
    cpu_memory_usage = self_cpu_memory_usage = property(lambda self: 0)

    def __repr__(self):
        return (f"<FunctionEvent name={self.name!r} cpu_time_total={self.cpu_time_total:.3f}us "
                f"thread={self.thread} input_shapes={self.input_shapes}>")


class FunctionEventAvg:
    """The events of one key (name, and input shapes when grouped by them), summed."""

    def __init__(self, key, input_shapes=None):
        self.key, self.input_shapes = key, input_shapes
        self.count, self.cpu_time_total, self.self_cpu_time_total = 0, 0.0, 0.0

    def add(self, e) -> "FunctionEventAvg":
        self.count += e.count
        self.cpu_time_total += e.cpu_time_total
        self.self_cpu_time_total += e.self_cpu_time_total
        return self

    cpu_time = property(lambda self: self.cpu_time_total / self.count if self.count else 0.0)
    self_cpu_time = property(lambda self: self.self_cpu_time_total / self.count if self.count else 0.0)
    device_time_total = self_device_time_total = cuda_time_total = self_cuda_time_total = property(lambda self: 0.0)
    cpu_memory_usage = self_cpu_memory_usage = property(lambda self: 0)

    def __repr__(self):
        return (f"<FunctionEventAvg key={self.key!r} count={self.count} cpu_time_total={self.cpu_time_total:.3f}us "
                f"self_cpu_time_total={self.self_cpu_time_total:.3f}us>")


def _fmt_us(us: float) -> str:
    if us >= 1e6:
        return f"{us / 1e6:.3f}s"
    if us >= 1e3:
        return f"{us / 1e3:.3f}ms"
    return f"{us:.3f}us"


class EventList(list):
    """Recorded events (``FunctionEvent``) or their averages (``FunctionEventAvg``)."""

    def key_averages(self, group_by_input_shapes: bool = False) -> "EventList":
        groups = {}
        for e in self:
            shapes = str(e.input_shapes) if group_by_input_shapes else None
            k = (e.key, shapes)
            if k not in groups:
                groups[k] = FunctionEventAvg(e.key, e.input_shapes if group_by_input_shapes else None)
            groups[k].add(e)
        return EventList(groups.values())

    @property
    def self_cpu_time_total(self) -> float:
        return sum(e.self_cpu_time_total for e in self)

    def total_average(self) -> FunctionEventAvg:
        total = FunctionEventAvg("Total")
        for e in self:
            total.add(e)
        return total

    def table(self, sort_by: str | None = None, row_limit: int = 100, max_name_column_width: int = 55,
              header: str | None = None, top_level_events_only: bool = False, **_ignored) -> str:
        """PyTorch's table: name, self and total CPU time (and their shares), average, calls;
        rows sorted by ``sort_by`` (an attribute such as 'cpu_time_total', 'self_cpu_time_total',
        'count'; descending) and cut at ``row_limit``."""
        rows = [e for e in self if not (top_level_events_only and getattr(e, "cpu_parent", None) is not None)]
        if sort_by is not None:
            if rows and not hasattr(rows[0], sort_by):
                raise AttributeError(f"table: cannot sort by {sort_by!r}: events have no such attribute")
            rows.sort(key=lambda e: getattr(e, sort_by), reverse=True)
        if row_limit is not None and row_limit >= 0:
            rows = rows[:row_limit]
        self_total = self.self_cpu_time_total or 1.0
        shapes = any(getattr(e, "input_shapes", None) for e in rows)
        name_w = min(max_name_column_width, max([len(str(e.key)) for e in rows] + [4])) + 2
        cols = ["Self CPU %", "Self CPU", "CPU total %", "CPU total", "CPU time avg", "# of Calls"]
        widths = [name_w] + [14] * len(cols) + ([40] if shapes else [])
        heads = ["Name", *cols] + (["Input Shapes"] if shapes else [])
        line = "  ".join("-" * w for w in widths)
        out = [header] if header else []
        out += [line, "  ".join(h.rjust(w) for h, w in zip(heads, widths)), line]
        for e in rows:
            name = str(e.key)
            if len(name) > max_name_column_width:
                name = name[:max_name_column_width - 3] + "..."
            cells = [name.rjust(name_w), f"{100 * e.self_cpu_time_total / self_total:.2f}%".rjust(14),
                     _fmt_us(e.self_cpu_time_total).rjust(14), f"{100 * e.cpu_time_total / self_total:.2f}%".rjust(14),
                     _fmt_us(e.cpu_time_total).rjust(14), _fmt_us(e.cpu_time_total / max(e.count, 1)).rjust(14),
                     str(e.count).rjust(14)]
            if shapes:
                cells.append(str(e.input_shapes or "")[:40].rjust(40))
            out.append("  ".join(cells))
        out += [line, f"Self CPU time total: {_fmt_us(self.self_cpu_time_total)}", ""]
        return "\n".join(out)

    def export_chrome_trace(self, path: str) -> None:
        _write_trace(path, [e for e in self if isinstance(e, FunctionEvent)])


def _write_trace(path, events):
    """The Chrome trace-event JSON of ``events``, written whole or not at all (a temporary file
    in the same directory, then renamed over ``path``)."""
    pid = os.getpid()
    trace = {"traceEvents": [{"name": e.name, "ph": "X", "cat": "cpu_op", "ts": e.start_us,
                              "dur": e.end_us - e.start_us, "pid": pid, "tid": e.thread,
                              **({"args": {"Input Dims": e.input_shapes}} if e.input_shapes else {})}
                             for e in events],
             "displayTimeUnit": "ms"}
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".trace-", dir=directory)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(trace, f)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


class _Collector:
    """The hook the tape calls (csrc/tape.cpp, ``_set_profile_hook``) and ``record_function``'s
    ranges, kept as raw tuples until the profile stops."""

    def __init__(self, record_shapes):
        self.record_shapes = record_shapes
        self.raw = []  # (name, start_ns, end_ns, thread, shapes); list.append is atomic under the GIL

    def __call__(self, name, t0, t1, arrays):
        shapes = [list(a.shape) for a in arrays] if self.record_shapes and arrays is not None else None
        self.raw.append((name, t0, t1, threading.get_ident(), shapes))


_active = [None]  # the recording profile's _Collector
_lock = threading.Lock()


def _events(raw, origin_ns) -> EventList:
    """FunctionEvents of raw records, nested per thread by their times (an event's children are the
    events inside it on its thread), in start order."""
    events = EventList(FunctionEvent(name, (t0 - origin_ns) / 1e3, (t1 - origin_ns) / 1e3, tid, shapes, i)
                       for i, (name, t0, t1, tid, shapes) in enumerate(raw))
    events.sort(key=lambda e: (e.start_us, -e.end_us, e.id))
    stacks = defaultdict(list)
    for e in events:
        stack = stacks[e.thread]
        while stack and stack[-1].end_us < e.end_us:
            stack.pop()
        if stack:
            e.cpu_parent = stack[-1]
            stack[-1].cpu_children.append(e)
        stack.append(e)
    return events


class profile:
    """Record the ops run inside ``with profile(...) as prof:`` (or between ``start()`` and
    ``stop()``); then ``prof.key_averages().table(...)``, ``prof.events()``,
    ``prof.export_chrome_trace(path)``. With ``schedule``, ``step()`` once per training step
    moves through it and ``on_trace_ready(prof)`` runs after each recorded cycle; without one,
    everything is recorded and ``on_trace_ready`` runs at the stop."""

    def __init__(self, *, activities=None, schedule=None, on_trace_ready=None, record_shapes: bool = False,
                 profile_memory: bool = False, with_stack: bool = False, with_flops: bool = False,
                 with_modules: bool = False, experimental_config=None, execution_trace_observer=None,
                 acc_events: bool = False, custom_trace_id_callback=None):
        self.activities = set(activities) if activities is not None else {ProfilerActivity.CPU}
        self.schedule, self.on_trace_ready = schedule, on_trace_ready
        self.record_shapes, self.acc_events = bool(record_shapes), acc_events
        self.step_num = 0
        self._collector, self._events, self._origin = None, EventList(), time.perf_counter_ns()
        self._running = False

    # ---------------------------------------------------------------- recording on and off
    def _on(self):
        with _lock:
            if _active[0] is not None:
                raise RuntimeError("profile: another profiler is already recording in this process")
            self._collector = _Collector(self.record_shapes)
            _active[0] = self._collector
            _C._set_profile_hook(self._collector)

    def _off(self):
        with _lock:
            if _active[0] is self._collector and self._collector is not None:
                _C._set_profile_hook(None)
                _active[0] = None
        raw, self._collector = (self._collector.raw if self._collector else []), None
        new = _events(raw, self._origin)
        self._events = EventList(self._events + new) if self.acc_events else new

    def _action(self):
        return self.schedule(self.step_num) if self.schedule is not None else ProfilerAction.RECORD

    def start(self):
        if self._running:
            raise RuntimeError("profile: start() called twice")
        self._running = True
        if self._action() in (ProfilerAction.RECORD, ProfilerAction.RECORD_AND_SAVE):
            self._on()

    def stop(self):
        if not self._running:
            return
        self._running = False
        if self._collector is not None:
            self._off()
            if self.on_trace_ready is not None:
                self.on_trace_ready(self)

    def step(self):
        """One training step done: the schedule's next action (no-op without a schedule)."""
        if self.schedule is None or not self._running:
            self.step_num += 1
            return
        before = self._action()
        self.step_num += 1
        after = self._action()
        recording = after in (ProfilerAction.RECORD, ProfilerAction.RECORD_AND_SAVE)
        if before == ProfilerAction.RECORD_AND_SAVE or (self._collector is not None and not recording):
            self._off()
            if before == ProfilerAction.RECORD_AND_SAVE and self.on_trace_ready is not None:
                self.on_trace_ready(self)
        if recording and self._collector is None:
            self._on()

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()
        return False

    # ---------------------------------------------------------------- results
    def events(self) -> EventList:
        """The events of the last recorded cycle (every event, with ``acc_events=True``)."""
        return self._events

    def key_averages(self, group_by_input_shape: bool = False, group_by_stack_n: int = 0, **_ignored) -> EventList:
        """The events summed per name (and input shapes, with ``group_by_input_shape``)."""
        return self._events.key_averages(group_by_input_shape)

    def export_chrome_trace(self, path: str) -> None:
        """Write the events as Chrome trace-event JSON (chrome://tracing, Perfetto)."""
        _write_trace(path, self._events)

    def table(self, *args, **kwargs) -> str:
        return self.key_averages().table(*args, **kwargs)

    @property
    def function_events(self) -> EventList:  # torch.autograd.profiler.profile's name
        return self._events

    @property
    def self_cpu_time_total(self) -> float:
        return self._events.self_cpu_time_total


class record_function:
    """A named range in the profile (``with record_function("attention"):`` or as a decorator);
    costs a clock read when no profiler records."""

    def __init__(self, name: str, args: str | None = None):
        self.name, self.args, self._t0, self._collector = str(name), args, None, None

    def __enter__(self):
        self._collector = _active[0]
        self._t0 = time.perf_counter_ns()
        return self

    def __exit__(self, *exc):
        c = self._collector
        if c is not None and _active[0] is c:
            c.raw.append((self.name, self._t0, time.perf_counter_ns(), threading.get_ident(), None))
        return False

    def __call__(self, fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with record_function(self.name, self.args):
                return fn(*args, **kwargs)
        return wrapper


def tensorboard_trace_handler(dir_name: str, worker_name: str | None = None, use_gzip: bool = False):
    """An ``on_trace_ready`` that writes each cycle's trace to
    ``dir_name/<worker>.<ms>.pt.trace.json`` (``.gz`` with ``use_gzip``), as PyTorch's does."""
    def handler(prof):
        os.makedirs(dir_name, exist_ok=True)
        worker = worker_name or f"{socket.gethostname()}_{os.getpid()}"
        path = os.path.join(dir_name, f"{worker}.{time.time_ns() // 1_000_000}.pt.trace.json")
        prof.export_chrome_trace(path)
        if use_gzip:
            with open(path, "rb") as src, gzip.open(path + ".gz", "wb") as dst:
                shutil.copyfileobj(src, dst)
            os.unlink(path)
    return handler
