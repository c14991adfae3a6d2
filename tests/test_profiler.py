"""tapegrad.profiler (torch.profiler) and tapegrad.autograd.profiler: the tape reports each op's
forward and each backward node; events nest by time per thread, self times add up to the total,
the table sorts and cuts, traces are valid JSON written whole, schedules follow PyTorch's steps,
and the hook is gone after the profile ends, errors included."""
import json
import os
import threading
import warnings

import pytest

import tapegrad as tg
from tapegrad import _C, nn
from tapegrad.profiler import ProfilerAction, profile, record_function, schedule


def _step(model, x):
    loss = model(x).sum()
    loss.backward()


@pytest.fixture
def model():
    return nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 2))


def _no_hook():
    previous = _C._set_profile_hook(None)
    return previous is None


def test_ops_backward_nodes_and_ranges_nest(model):
    x = tg.randn(4, 8)
    with profile(record_shapes=True) as prof:
        with record_function("forward"):
            loss = model(x).sum()
        loss.backward()
    assert _no_hook()
    events = prof.events()
    names = [e.name for e in events]
    assert names.count("linear") == 2 and "relu" in names and "sum" in names
    assert "LinearBackward0" in names and "ReluBackward0" in names
    fwd = next(e for e in events if e.name == "forward")
    assert {c.name for c in fwd.cpu_children} >= {"linear", "relu", "sum"}
    assert all(c.cpu_parent is fwd for c in fwd.cpu_children)
    lin = next(e for e in events if e.name == "linear")
    assert lin.input_shapes == [[4, 8], [16, 8], [16]]
    back = [e for e in events if e.name == "LinearBackward0"]
    assert all(e.cpu_children for e in back)  # the ops its VJPs ran
    for e in events:
        assert 0 <= e.self_cpu_time_total <= e.cpu_time_total + 1e-9
        assert all(e.start_us <= c.start_us and c.end_us <= e.end_us for c in e.cpu_children)
    top = sum(e.cpu_time_total for e in events if e.cpu_parent is None)
    assert events.self_cpu_time_total == pytest.approx(top)


def test_key_averages_and_table(model):
    with profile(record_shapes=True) as prof:
        for _ in range(3):
            _step(model, tg.randn(4, 8))
    avg = prof.key_averages()
    by = {a.key: a for a in avg}
    assert by["linear"].count == 6 and by["LinearBackward0"].count == 6
    assert by["linear"].cpu_time == pytest.approx(by["linear"].cpu_time_total / 6)
    table = avg.table(sort_by="cpu_time_total", row_limit=3)
    body = [line for line in table.splitlines()[3:] if line and not line.startswith("-") and "total:" not in line]
    assert len(body) == 3 and "Self CPU time total:" in table and "# of Calls" in table
    assert [line.split()[0] for line in body] == [a.key for a in sorted(avg, key=lambda a: -a.cpu_time_total)[:3]]
    grouped = prof.key_averages(group_by_input_shape=True)
    assert len(grouped) > len(avg)  # the two Linear layers' shapes differ
    assert "Input Shapes" in grouped.table()
    with pytest.raises(AttributeError, match="cannot sort by 'nonsense'"):
        avg.table(sort_by="nonsense")
    assert avg.table(sort_by="self_cpu_time_total") and avg.table(sort_by="device_time_total")


def test_chrome_trace_is_written_whole(tmp_path, model):
    with profile() as prof:
        _step(model, tg.randn(2, 8))
    path = tmp_path / "trace.json"
    prof.export_chrome_trace(str(path))
    trace = json.loads(path.read_text())
    assert len(trace["traceEvents"]) == len(prof.events())
    assert all(e["ph"] == "X" and e["dur"] >= 0 for e in trace["traceEvents"])
    assert os.listdir(tmp_path) == ["trace.json"]  # no temporary left behind
    with pytest.raises(OSError):
        prof.export_chrome_trace(str(tmp_path / "missing" / "trace.json"))
    assert os.listdir(tmp_path) == ["trace.json"]


def test_schedule_steps_match_pytorch():
    torch = pytest.importorskip("torch")
    for kw in (dict(wait=1, warmup=1, active=2), dict(wait=0, warmup=0, active=1, repeat=2),
               dict(wait=2, warmup=1, active=3, repeat=1, skip_first=3), dict(wait=1, warmup=0, active=1, skip_first_wait=1)):
        with warnings.catch_warnings():  # PyTorch's note that warmup=0 may skew results
            warnings.simplefilter("ignore", UserWarning)
            ours, theirs = schedule(**kw), torch.profiler.schedule(**kw)
        assert [ours(s).name for s in range(20)] == [theirs(s).name for s in range(20)], kw
    with pytest.raises(ValueError, match="active"):
        schedule(wait=1, warmup=1, active=0)


def test_schedule_records_the_active_steps_and_calls_on_trace_ready(model, tmp_path):
    traces = []
    sched = schedule(wait=1, warmup=1, active=2, repeat=2)
    assert [sched(s) for s in range(4)] == [ProfilerAction.NONE, ProfilerAction.WARMUP, ProfilerAction.RECORD,
                                            ProfilerAction.RECORD_AND_SAVE]
    with profile(schedule=sched, on_trace_ready=lambda p: traces.append(p.key_averages())) as prof:
        for _ in range(10):
            _step(model, tg.randn(2, 8))
            prof.step()
    assert len(traces) == 2
    for t in traces:  # two recorded steps each: 2 x 2 linear forwards
        assert {a.key: a.count for a in t}["linear"] == 4
    handler_dir = tmp_path / "tb"
    with profile(schedule=schedule(wait=0, warmup=0, active=1, repeat=1),
                 on_trace_ready=tg.profiler.tensorboard_trace_handler(str(handler_dir), worker_name="w")) as prof:
        for _ in range(3):
            _step(model, tg.randn(2, 8))
            prof.step()
    files = os.listdir(handler_dir)
    assert len(files) == 1 and files[0].startswith("w.") and files[0].endswith(".pt.trace.json")


def test_threads_are_told_apart_and_one_profiler_at_a_time():
    def work():
        (tg.ones(3) * 2).sum()
    with profile() as prof:
        work()
        t = threading.Thread(target=work)
        t.start()
        t.join()
        with pytest.raises(RuntimeError, match="already recording"):
            profile().start()
    threads = {e.thread for e in prof.events() if e.name == "mul"}
    assert len(threads) == 2


def test_the_hook_goes_away_on_errors_and_legacy_disabled_records_nothing():
    with pytest.raises(ZeroDivisionError):
        with profile():
            tg.ones(2) * 3
            1 / 0
    assert _no_hook()
    with tg.autograd.profiler.profile(enabled=False) as prof:
        tg.ones(2) * 3
    assert len(prof.function_events) == 0 and _no_hook()
    with tg.autograd.profiler.profile(use_cuda=False, record_shapes=True) as prof:
        tg.ones(2) * 3
    assert [e.name for e in prof.function_events] == ["mul"]
    assert "mul" in prof.key_averages().table(sort_by="self_cpu_time_total")

    @record_function("decorated")
    def f(x):
        return x + 1
    with profile() as prof:
        f(tg.ones(1))
    assert [e.name for e in prof.events()] == ["decorated", "add"]


def test_capability_answers():
    assert tg.profiler.supported_activities() == {tg.profiler.ProfilerActivity.CPU}
    assert tg.profiler.kineto_available() is False
