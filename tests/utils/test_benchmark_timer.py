"""tapegrad.utils.benchmark.Timer / Measurement (torch.utils.benchmark): statistics are per run
over blocks with numpy's quantiles, the thread count is set for the measurement and put back,
the repr reads as PyTorch's, and bad arguments raise. No timed assertions: only relations that
hold on any machine."""
import numpy as np
import pytest

import tapegrad as tg
from tapegrad.utils.benchmark import Measurement, TaskSpec, Timer


def test_timeit_and_blocked_autorange():
    x = tg.randn(16, 16)
    t = Timer("x @ x", globals={"x": x}, label="matmul", sub_label="16", description="f32")
    m = t.timeit(50)
    assert m.number_per_run == 50 and len(m.times) == 1 and m.times[0] == m.raw_times[0] / 50
    b = t.blocked_autorange(min_run_time=0.02)
    assert sum(b.raw_times) >= 0.02 and b.median > 0 and b.mean > 0 and b.iqr >= 0
    text = repr(b)
    assert text.splitlines()[1] == "matmul: 16" and text.splitlines()[2] == "f32"
    assert f"{b.number_per_run} runs" in text and "1 thread" in text


def test_statistics_are_numpys_over_blocks():
    spec = TaskSpec("pass", "pass", num_threads=2)
    m = Measurement(10, [1.0, 2.0, 3.0, 4.0, 10.0], spec)
    per_run = np.array([0.1, 0.2, 0.3, 0.4, 1.0])
    assert m.median == pytest.approx(np.median(per_run)) and m.mean == pytest.approx(per_run.mean())
    assert m.iqr == pytest.approx(np.quantile(per_run, 0.75) - np.quantile(per_run, 0.25))
    assert m.has_warnings and "WARNING: Interquartile range" in repr(m) and "2 threads" in repr(m)
    assert m.num_threads == 2 and m.title == "pass"
    with pytest.raises(ValueError, match="no times"):
        Measurement(1, [], spec)


def test_setup_globals_and_threads(restore_threads):
    tg.set_num_threads(1)
    seen = []
    t = Timer("seen.append(tg.get_num_threads())", setup="y = 3", global_setup="import math",
              globals={"seen": seen, "tg": tg}, num_threads=2)
    t.timeit(3)
    assert set(seen) == {2} and tg.get_num_threads() == 1
    assert "setup: y = 3" in repr(t.timeit(1))
    m = Timer("pass").adaptive_autorange(threshold=0.5, min_run_time=0.001, max_run_time=0.5)
    assert len(m.times) >= 1


def test_bad_arguments():
    with pytest.raises(ValueError, match="only Python"):
        Timer("x", language="c++")
    with pytest.raises(ValueError, match="num_threads"):
        Timer("pass", num_threads=0)
    with pytest.raises(NameError):
        Timer("undefined_name").timeit(1)


def test_repr_matches_pytorch_layout():
    torch = pytest.importorskip("torch")
    from torch.utils import benchmark as tb
    ours = Measurement(100, [2e-6 * 100], TaskSpec("x+1", "x=2", label="L", sub_label="S", description="D"))
    theirs = tb.Measurement(100, [2e-6 * 100], tb.TaskSpec("x+1", "x=2", label="L", sub_label="S", description="D"))
    assert repr(ours).splitlines()[1:] == repr(theirs).splitlines()[1:]
