"""tapegrad.multiprocessing (torch.multiprocessing's names: Python's multiprocessing, the sharing
strategies, spawn / start_processes and their errors) and tapegrad.compiler (the eager answers)."""
import multiprocessing
import os
import signal
import sys

import numpy as np
import pytest

import tapegrad as tg
import tapegrad.multiprocessing as mp


def _write_rank(i, path, scale):
    # a DDP-style worker: it builds its own tensors from its rank
    x = tg.arange(4, dtype=tg.float64) * scale + i
    np.save(os.path.join(path, f"{i}.npy"), x.numpy())


def _fail_on_one(i):
    if i == 1:
        raise ValueError("worker one failed")


def _exit_three(i):
    sys.exit(3)


def _kill_self(i):
    os.kill(os.getpid(), signal.SIGKILL)


def test_stdlib_names_are_reexported():
    for name in multiprocessing.__all__:
        assert hasattr(mp, name), name
    assert tg.multiprocessing is mp


def test_sharing_strategies():
    assert mp.get_all_sharing_strategies() == {"file_descriptor", "file_system"}
    before = mp.get_sharing_strategy()
    try:
        mp.set_sharing_strategy("file_system")
        assert mp.get_sharing_strategy() == "file_system"
        with pytest.raises(ValueError, match="unknown strategy 'shm'"):
            mp.set_sharing_strategy("shm")
    finally:
        mp.set_sharing_strategy(before)


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_spawn_runs_each_rank(tmp_path, method):
    if method not in multiprocessing.get_all_start_methods():
        pytest.skip(f"no {method} start method here")
    assert mp.spawn(_write_rank, args=(str(tmp_path), 10.0), nprocs=2, start_method=method) is None
    for i in range(2):
        np.testing.assert_array_equal(np.load(tmp_path / f"{i}.npy"), np.arange(4) * 10.0 + i)


@pytest.mark.skipif("fork" not in multiprocessing.get_all_start_methods(), reason="the fork start method")
def test_spawn_reports_the_failed_process():
    with pytest.raises(mp.ProcessRaisedException, match="worker one failed") as err:
        mp.spawn(_fail_on_one, nprocs=3, start_method="fork")
    assert err.value.error_index == 1 and "Process 1 terminated" in str(err.value)
    with pytest.raises(mp.ProcessExitedException, match="exit code 3") as err:
        mp.spawn(_exit_three, nprocs=1, start_method="fork")
    assert err.value.exit_code == 3
    with pytest.raises(mp.ProcessExitedException, match="signal SIGKILL") as err:
        mp.spawn(_kill_self, nprocs=1, start_method="fork")
    assert err.value.signal_name == "SIGKILL"


@pytest.mark.skipif("fork" not in multiprocessing.get_all_start_methods(), reason="the fork start method")
def test_start_processes_without_join(tmp_path):
    ctx = mp.start_processes(_write_rank, args=(str(tmp_path), 1.0), nprocs=2, join=False, start_method="fork")
    assert isinstance(ctx, mp.ProcessContext) and len(ctx.pids()) == 2
    while not ctx.join(timeout=30):
        pass
    assert sorted(os.listdir(tmp_path)) == ["0.npy", "1.npy"]


def _add_one_and_send(i, x, q):
    x += 1  # the child's copy
    q.put(x)


@pytest.mark.skipif("fork" not in multiprocessing.get_all_start_methods(), reason="the fork start method")
def test_tensors_cross_as_copies():
    x = tg.arange(3.0)
    q = mp.get_context("fork").SimpleQueue()
    mp.spawn(_add_one_and_send, args=(x, q), nprocs=1, start_method="fork")
    assert q.get().tolist() == [1.0, 2.0, 3.0] and x.tolist() == [0.0, 1.0, 2.0]  # the parent's unchanged
    with pytest.warns(UserWarning, match="never shared between processes"):
        assert not x.share_memory_().is_shared()
    with pytest.warns(UserWarning, match="Module.share_memory"):
        tg.nn.Linear(2, 2).share_memory()


def test_bad_nprocs():
    with pytest.raises(ValueError, match="nprocs must be a positive int"):
        mp.spawn(_write_rank, nprocs=0)


def test_compiler_answers_as_outside_compilation():
    def f(x):
        return x + 1
    assert tg.compiler.disable(f) is f and tg.compiler.disable(recursive=False)(f) is f
    assert tg.compiler.allow_in_graph(f) is f and tg.compiler.assume_constant_result(f) is f
    assert not (tg.compiler.is_compiling() or tg.compiler.is_dynamo_compiling() or tg.compiler.is_exporting())
    assert tg.compiler.reset() is None and tg.compiler.list_backends() == []
    assert tg.compiler.compile is tg.compile


def test_utils_hooks_removable_handle_with_extra_dicts():
    from tapegrad.utils.hooks import RemovableHandle, unserializable_hook
    hooks, extra = {}, {}
    handle = RemovableHandle(hooks, extra_dict=extra)
    hooks[handle.id], extra[handle.id] = "hook", "state"
    with handle:
        assert hooks and extra
    assert not hooks and not extra
    handle.remove()  # again: nothing happens
    f = unserializable_hook(lambda g: g)
    assert f.__torch_unserializable__
