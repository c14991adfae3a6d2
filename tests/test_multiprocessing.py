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
def test_unshared_tensors_cross_as_copies():
    x = tg.arange(3.0)
    q = mp.get_context("fork").SimpleQueue()
    mp.spawn(_add_one_and_send, args=(x, q), nprocs=1, start_method="fork")
    assert q.get().tolist() == [1.0, 2.0, 3.0] and x.tolist() == [0.0, 1.0, 2.0]  # the parent's unchanged
    assert not x.is_shared()


def _hogwild_train(rank, model, steps):
    opt = tg.optim.SGD(model.parameters(), lr=0.05)
    x = tg.linspace(-1, 1, 16).reshape(8, 2)
    for _ in range(steps):
        opt.zero_grad()
        ((model(x) - x.sum(1, keepdim=True)) ** 2).mean().backward()
        opt.step()


def _echo_shared(rank, q_in, q_out, done):
    t = q_in.get()
    t.mul_(2)  # in the memory the parent reads
    q_out.put(t)
    done.wait()  # the sender stays alive until the receiver has the tensor (descriptor passing)


@pytest.mark.parametrize("method", [m for m in ("fork", "spawn") if m in multiprocessing.get_all_start_methods()])
def test_hogwild_updates_reach_the_parent(method):
    """Module.share_memory(), then processes training the one model (PyTorch's mnist_hogwild): every
    child's SGD steps and BatchNorm statistics land in the parent's tensors, forked or spawned (the
    spawned children receive the model through multiprocessing's pickler as descriptors)."""
    tg.manual_seed(0)
    model = tg.nn.Sequential(tg.nn.Linear(2, 8), tg.nn.BatchNorm1d(8), tg.nn.Linear(8, 1))
    assert model.share_memory() is model
    assert all(t.is_shared() for t in [*model.parameters(), *model.buffers()])
    w0 = model[0].weight.detach().clone()
    mp.spawn(_hogwild_train, args=(model, 20), nprocs=2, start_method=method)
    # an int64 buffer updated by both: Hogwild's unlocked `+= 1` can lose an increment when the two
    # processes write at once, so "more than one process alone", not exactly 40
    n = int(model[1].num_batches_tracked)
    assert 20 < n <= 40
    mp.spawn(_hogwild_train, args=(model, 5), nprocs=1, start_method=method)  # alone: exactly its 5 more
    assert int(model[1].num_batches_tracked) == n + 5
    assert not np.array_equal(model[0].weight.detach().numpy(), w0.numpy())
    assert float(model[1].running_var.mean()) != 1.0


@pytest.mark.parametrize("method", [m for m in ("fork", "spawn") if m in multiprocessing.get_all_start_methods()])
def test_shared_tensor_through_queues_is_the_same_memory(method):
    ctx = mp.get_context(method)
    q_in, q_out, done = ctx.Queue(), ctx.Queue(), ctx.Event()
    base = tg.arange(6.0).share_memory_()
    view = base[1::2]  # a view of shared memory crosses as a view: offset and strides kept
    p = ctx.Process(target=_echo_shared, args=(0, q_in, q_out, done))
    p.start()
    try:
        q_in.put(view)
        back = q_out.get(timeout=60)
    finally:
        done.set()
        p.join(60)
    assert base.tolist() == [0.0, 2.0, 2.0, 6.0, 4.0, 10.0]
    assert back.tolist() == [2.0, 6.0, 10.0] and back.is_shared()
    back.add_(100)  # and back again: the received tensor maps the same pages
    assert base.tolist() == [0.0, 102.0, 2.0, 106.0, 4.0, 110.0]


def test_share_memory_in_place_semantics():
    x = tg.arange(5.0, requires_grad=True)
    assert not x.is_shared()
    assert x.share_memory_() is x and x.is_shared() and x.requires_grad
    assert x.tolist() == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert x.share_memory_() is x  # already shared: nothing moves
    (x * 2).sum().backward()
    assert x.grad.tolist() == [2.0] * 5
    assert tg.zeros(0).share_memory_().is_shared() and tg.tensor(3).share_memory_().item() == 3
    with pytest.raises(RuntimeError, match=r"share_memory_\(\): cannot move a view \(shape \(2,\)\)"):
        tg.arange(4.0)[::2].share_memory_()
    y = tg.ones(4)
    alias = y[1:]  # a view made before: it keeps the old memory, and share_memory_ says so
    with pytest.warns(UserWarning, match="1 of the tensors moved into shared memory had views"):
        y.share_memory_()
    y.zero_()
    assert alias.tolist() == [1.0, 1.0, 1.0]
    assert y[1:].is_shared()  # a view taken after is of the shared memory


def test_module_share_memory_packs_one_segment():
    from tapegrad import _shared
    m = tg.nn.Sequential(tg.nn.Linear(3, 4), tg.nn.BatchNorm1d(4), tg.nn.Linear(4, 2))
    m(tg.randn(5, 3)).sum().backward()  # gradients exist: they move too
    m.share_memory()
    tensors = [*m.parameters(), *m.buffers(), *(p.grad for p in m.parameters())]
    segs = {id(_shared.segment_of(t._data)) for t in tensors}
    assert len(segs) == 1 and all(t.is_shared() for t in tensors)
    assert all(t._data.ctypes.data % 64 == 0 for t in tensors)


class _Tagged(tg.Tensor):
    pass


def test_graph_tensors_do_not_cross():
    import pickle
    from multiprocessing.reduction import ForkingPickler
    with pytest.raises(RuntimeError, match="Cowardly refusing to serialize non-leaf tensor"):
        ForkingPickler.dumps(tg.ones(2, requires_grad=True) * 2)
    # subclasses cross with their attributes (a Buffer's persistent flag, a user subclass's dict)
    t = _Tagged._wrap(np.arange(3.0))
    t.tag = "hello"
    for obj in (tg.nn.Parameter(tg.ones(2)), tg.nn.Buffer(tg.ones(2), persistent=False), t):
        back = pickle.loads(ForkingPickler.dumps(obj))
        assert type(back) is type(obj) and back.tolist() == obj.tolist()
        assert back.requires_grad == obj.requires_grad
    assert pickle.loads(ForkingPickler.dumps(tg.nn.Buffer(tg.ones(2), persistent=False))).persistent is False
    assert pickle.loads(ForkingPickler.dumps(t)).tag == "hello"


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


def test_dynamo_switches_and_decorators_as_around_torch_compile():
    """``torch._dynamo.config.suppress_errors = True`` and friends, set before torch.compile."""
    import tapegrad._dynamo as dynamo
    assert tg._dynamo is dynamo

    def f(x):
        return x + 1
    for deco in (dynamo.optimize("inductor"), dynamo.disable, dynamo.allow_in_graph, dynamo.run,
                 dynamo.disallow_in_graph):
        assert deco(f) is f
    x = tg.ones(3)
    assert dynamo.mark_dynamic(x, 0) is None and dynamo.mark_static(x) is None and dynamo.reset() is None
    assert not dynamo.is_compiling()
    torch = pytest.importorskip("torch")
    for name in ("suppress_errors", "verbose", "cache_size_limit", "capture_scalar_outputs"):
        assert getattr(dynamo.config, name) == getattr(torch._dynamo.config, name), name
    before = dynamo.config.cache_size_limit
    dynamo.config.cache_size_limit = 64
    assert dynamo.config.cache_size_limit == 64
    dynamo.config.cache_size_limit = before


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
