"""``torch.utils.benchmark``'s ``Timer`` and ``Measurement``: timing a Python statement with
tapegrad's thread count fixed for the measurement (``num_threads``, 1 by default, as PyTorch's).

>>> from tapegrad.utils.benchmark import Timer
>>> t = Timer("x @ x", globals={"x": tapegrad.randn(64, 64)})
>>> m = t.blocked_autorange(min_run_time=0.2)
>>> m.median          # seconds per run

``timeit(number)`` times one block of ``number`` runs; ``blocked_autorange`` picks a block long
enough that reading the clock costs under 0.01% of it and times blocks for ``min_run_time``
seconds; ``adaptive_autorange`` goes on until the spread of the blocks (IQR / median) is under
``threshold``. Statistics are over blocks, per run, with numpy's (linear) quantiles, as PyTorch's.
Only Python statements are timed (no C++ ``language``, no Callgrind counts).
"""
from __future__ import annotations

import contextlib
import textwrap
import timeit

import numpy as np

from .._parallel import get_num_threads, set_num_threads

__all__ = ["Timer", "Measurement", "TaskSpec"]


@contextlib.contextmanager
def _threads(n: int):
    before = get_num_threads()
    set_num_threads(n)
    try:
        yield
    finally:
        set_num_threads(before)


def select_unit(t: float) -> tuple[str, float]:
    """The unit ('ns', 'us', 'ms' or 's') a time of ``t`` seconds prints in, and its scale."""
    unit = {-3: "ns", -2: "us", -1: "ms"}.get(int(np.log10(t) // 3), "s") if t > 0 else "ns"
    return unit, {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0}[unit]


class TaskSpec:
    """What was timed: the statement, its setup, the labels and the thread count."""

    def __init__(self, stmt, setup, global_setup="", label=None, sub_label=None, description=None, env=None,
                 num_threads=1):
        self.stmt, self.setup, self.global_setup = stmt, setup, global_setup
        self.label, self.sub_label, self.description, self.env = label, sub_label, description, env
        self.num_threads = num_threads

    @property
    def title(self) -> str:
        if self.label is not None:
            return self.label + (f": {self.sub_label}" if self.sub_label else "")
        if "\n" not in self.stmt:
            return self.stmt + (f": {self.sub_label}" if self.sub_label else "")
        return f"stmt:{f' ({self.sub_label})' if self.sub_label else ''}\n{textwrap.indent(self.stmt, '  ')}"

    def setup_str(self) -> str:
        if not self.setup or self.setup == "pass":
            return ""
        return "setup:" + (f"\n{textwrap.indent(self.setup, '  ')}" if "\n" in self.setup else f" {self.setup}")

    def summarize(self) -> str:
        sections = [self.title, self.description or "", self.setup_str()]
        return "\n".join(f"{s}\n" if "\n" in s else s for s in sections if s)


class Measurement:
    """The times of ``raw_times`` blocks of ``number_per_run`` runs each; statistics per run."""

    def __init__(self, number_per_run: int, raw_times: list, task_spec: TaskSpec):
        if not raw_times:
            raise ValueError("Measurement: no times")
        self.number_per_run, self.raw_times, self.task_spec = int(number_per_run), list(raw_times), task_spec
        self._sorted = np.sort(np.asarray(self.times, dtype=np.float64))

    def __getattr__(self, name):  # label, sub_label, description, env, num_threads, stmt, setup, title
        if name in ("label", "sub_label", "description", "env", "num_threads", "stmt", "setup", "title",
                    "global_setup"):
            return getattr(self.task_spec, name)
        raise AttributeError(name)

    @property
    def times(self) -> list:
        """Seconds per run, one value per block."""
        return [t / self.number_per_run for t in self.raw_times]

    median = property(lambda self: float(np.quantile(self._sorted, 0.5)))
    mean = property(lambda self: float(self._sorted.mean()))
    iqr = property(lambda self: float(np.quantile(self._sorted, 0.75) - np.quantile(self._sorted, 0.25)))

    def meets_confidence(self, threshold: float = 0.1) -> bool:
        return self.iqr / self.median < threshold

    @property
    def significant_figures(self) -> int:
        """How many digits of the median the spread supports (1 to 4)."""
        n = len(self._sorted)
        if n < 2:
            return 1
        se = np.std(self._sorted, ddof=1) / np.sqrt(n)
        return int(min(4, max(1, np.floor(np.log10(self.median / (2 * se))) + 1))) if se > 0 else 4

    @property
    def has_warnings(self) -> bool:
        return bool(self._warnings())

    def _warnings(self) -> list:
        if len(self._sorted) >= 4 and self.median > 0 and self.iqr / self.median > 0.1:
            return [f"  WARNING: Interquartile range is {100 * self.iqr / self.median:.1f}% of the median measurement.\n"
                    "           This suggests significant environmental influence."]
        return []

    def __repr__(self):
        n = len(self._sorted)
        unit, scale = select_unit(self.median)
        lines = [f"<{type(self).__module__}.{type(self).__name__} object at {hex(id(self))}>", self.task_spec.summarize(),
                 f"  {'Median: ' if n > 1 else ''}{self.median / scale:.2f} {unit}"]
        if n >= 4:
            p25, p75 = np.quantile(self._sorted, 0.25), np.quantile(self._sorted, 0.75)
            lines.append(f"  IQR:    {self.iqr / scale:.2f} {unit} ({p25 / scale:.2f} to {p75 / scale:.2f})")
        lines.append(f"  {n} measurement{'s' if n > 1 else ''}, {self.number_per_run} runs "
                     f"{'per measurement,' if n > 1 else ','} {self.num_threads} thread{'s' if self.num_threads > 1 else ''}")
        lines += self._warnings()
        return "\n".join(line for line in lines if line)


class Timer:
    """Time ``stmt`` (after ``global_setup`` and ``setup``) with ``globals`` as its namespace and
    tapegrad's thread count set to ``num_threads`` while it runs."""

    def __init__(self, stmt: str = "pass", setup: str = "pass", global_setup: str = "", timer=timeit.default_timer,
                 globals: dict | None = None, label: str | None = None, sub_label: str | None = None,
                 description: str | None = None, env: str | None = None, num_threads: int = 1,
                 language: str = "python"):
        if str(getattr(language, "name", language)).lower() not in ("python", "py"):
            raise ValueError(f"Timer: only Python statements are timed here, got language={language!r}")
        if not isinstance(stmt, str):
            raise ValueError("Timer: stmt must be a string")
        if not isinstance(num_threads, int) or num_threads < 1:
            raise ValueError(f"Timer: num_threads must be a positive int, got {num_threads!r}")
        namespace = dict(globals or {})
        if global_setup:
            exec(global_setup, namespace)  # noqa: S102  (the caller's code, as PyTorch's Timer runs it)
        self._timer = timeit.Timer(stmt=stmt, setup=setup or "pass", timer=timer, globals=namespace)
        self._task_spec = TaskSpec(stmt, setup, global_setup, label, sub_label, description, env, num_threads)

    def _timeit(self, number: int) -> float:
        return self._timer.timeit(number=max(int(number), 1))

    def timeit(self, number: int = 1000000) -> Measurement:
        """One block of ``number`` runs (after one warm-up block of at most 100)."""
        with _threads(self._task_spec.num_threads):
            self._timeit(min(number, 100))
            return Measurement(number, [self._timeit(number)], self._task_spec)

    def _block_size(self, min_run_time: float) -> int:
        overhead = float(np.median([self._timer.timeit(number=0) for _ in range(5)]))
        number = 1
        while True:
            taken = self._timeit(number)
            if (overhead / taken <= 1e-4 and taken >= min_run_time / 1000) or taken > min_run_time:
                return number
            if number * 10 > 2147483647:
                return number
            number *= 10

    def _loop(self, number, stop, min_run_time, max_run_time=None, callback=None) -> list:
        times, total = [], 0.0
        while True:
            spent = self._timeit(number)
            times.append(spent)
            total += spent
            if callback is not None:
                callback(number, spent)
            if total >= min_run_time and stop(times):
                return times
            if max_run_time is not None and total > max_run_time:
                return times

    def blocked_autorange(self, callback=None, min_run_time: float = 0.2) -> Measurement:
        """Blocks long enough that the clock's cost is negligible, timed for ``min_run_time`` seconds."""
        with _threads(self._task_spec.num_threads):
            number = self._block_size(min_run_time)
            times = self._loop(number, lambda t: True, min_run_time, callback=callback)
        return Measurement(number, times, self._task_spec)

    def adaptive_autorange(self, threshold: float = 0.1, *, min_run_time: float = 0.01, max_run_time: float = 10.0,
                           callback=None) -> Measurement:
        """Blocks of about ``min_run_time`` until their IQR / median is below ``threshold`` (at least
        4 blocks) or ``max_run_time`` seconds have passed."""
        with _threads(self._task_spec.num_threads):
            number = self._block_size(min_run_time=0.05)

            def stop(times):
                if len(times) < 4:
                    return False
                return Measurement(number, times, self._task_spec).meets_confidence(threshold)
            times = self._loop(number, stop, min_run_time, max_run_time, callback)
        return Measurement(number, times, self._task_spec)
