"""tapegrad.accelerator answers as torch.accelerator on a machine without one, and
set/get_num_interop_threads follow torch's rules (set once, positive int)."""
import subprocess
import sys
import textwrap

import pytest

import tapegrad as tg

NEEDS_DEVICE = ["current_device_index", "current_stream", "synchronize", "empty_cache", "empty_host_cache",
                "get_device_capability", "get_memory_info", "memory_allocated", "max_memory_allocated",
                "memory_reserved", "max_memory_reserved", "memory_stats", "reset_accumulated_memory_stats",
                "reset_peak_memory_stats", "Graph"]


def test_no_accelerator():
    A = tg.accelerator
    assert A.is_available() is False and A.current_accelerator() is None and A.device_count() == 0
    assert A.current_accelerator(check_available=True) is None
    device = A.current_accelerator() if A.is_available() else tg.device("cpu")  # the idiom of PyTorch's examples
    assert tg.zeros(2, device=device).device == tg.device("cpu")
    for name in NEEDS_DEVICE:
        with pytest.raises(RuntimeError, match="Cannot access accelerator device when none is available"):
            getattr(A, name)()
    for name in ("set_device_index",):
        with pytest.raises(RuntimeError, match="none is available"):
            getattr(A, name)(0)
    with pytest.warns(FutureWarning), pytest.raises(RuntimeError):
        A.current_device_idx()
    with pytest.warns(FutureWarning), pytest.raises(RuntimeError):
        A.set_device_idx(0)
    with A.device_index(None):
        pass
    with pytest.raises(RuntimeError):
        with A.device_index(0):
            pass
    with pytest.raises(TypeError):
        A.set_stream(None)
    with pytest.raises(RuntimeError):
        A.memory.memory_allocated()


def test_same_names_and_answers_as_torch():
    torch = pytest.importorskip("torch")
    public = {n for n in dir(torch.accelerator) if not n.startswith("_")} - {"Any", "torch", "deprecated", "graphs", "cache"}  # imported helpers
    assert public <= set(dir(tg.accelerator)), sorted(public - set(dir(tg.accelerator)))
    for n in ("is_available", "current_accelerator", "device_count"):
        assert getattr(tg.accelerator, n)() == getattr(torch.accelerator, n)()
    for n in NEEDS_DEVICE:
        with pytest.raises(RuntimeError) as want:
            getattr(torch.accelerator, n)()
        with pytest.raises(RuntimeError) as got:
            getattr(tg.accelerator, n)()
        assert str(got.value) == str(want.value)


def _run(code):
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=120)


def test_interop_threads_set_once_as_torch():
    code = """
        import os, threading, {m} as M
        assert M.get_num_interop_threads() >= 1
        for bad, err in ((0, "positive integer"), (-2, "positive integer"), (2.5, "expects an int"), (True, "expects an int")):
            try:
                M.set_num_interop_threads(bad)
                raise SystemExit("accepted " + repr(bad))
            except RuntimeError as e:
                assert err in str(e), e
        results = []
        def go(n):
            try:
                M.set_num_interop_threads(n)
                results.append(n)
            except RuntimeError as e:
                assert "set_num_interop_threads called" in str(e), e
        ts = [threading.Thread(target=go, args=(i + 1,)) for i in range(8)]
        [t.start() for t in ts]; [t.join() for t in ts]
        assert len(results) == 1 and M.get_num_interop_threads() == results[0], results
        print("ok")
    """
    r = _run(code.format(m="tapegrad"))
    assert r.stdout.strip() == "ok", r.stderr
    pytest.importorskip("torch")
    r = _run(code.format(m="torch"))  # the same script passes against PyTorch: same rules
    assert r.stdout.strip() == "ok", r.stderr
