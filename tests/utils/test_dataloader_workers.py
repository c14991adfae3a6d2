"""DataLoader with worker processes: order, seeding, get_worker_info, iterable sharding, errors,
dead workers, timeouts, persistence and clean shutdown (no live process, no /dev/shm segment left).

Every wait is bounded (``timeout=`` on the loader, or on the subprocess), so a hang fails the test.
"""
import collections
import gc
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

import tapegrad
from tapegrad.utils.data import (DataLoader, Dataset, IterableDataset, TensorDataset, WorkerInfo,
                                 get_worker_info)
from tapegrad.utils.data import _worker

T = 20  # seconds: no test here should come near it; a hang becomes a timeout error


class Squares(Dataset):
    """Map-style, no fast path: each item a dict of an array, an int, a float and a string."""

    def __init__(self, n=23, width=3, sleep=0.0, fail_at=None, kill_at=None, exc=ValueError):
        self.n, self.width, self.sleep, self.fail_at, self.kill_at, self.exc = n, width, sleep, fail_at, kill_at, exc

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        if self.sleep:
            time.sleep(self.sleep)
        if i == self.fail_at:
            raise self.exc(f"bad item {i}")
        if i == self.kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
        return {"x": np.full(self.width, i, np.float32), "y": i * i, "f": i / 2, "name": f"s{i}"}


class WhoAmI(Dataset):
    def __len__(self):
        return 12

    def __getitem__(self, i):
        info = get_worker_info()
        return np.array([i, info.id, info.num_workers, info.seed % 1000003, np.random.randint(1 << 30),
                         int(tapegrad.randint(0, 1 << 30, (1,)).item()), len(info.dataset)])


class Stream(IterableDataset):
    """Split between workers with get_worker_info, as PyTorch's documentation shows."""

    def __init__(self, n=11, split=True):
        self.n, self.split = n, split

    def __iter__(self):
        info = get_worker_info()
        if info is None or not self.split:
            return iter(range(self.n))
        return iter(range(info.id, self.n, info.num_workers))


Pair = collections.namedtuple("Pair", "a b")  # module level: a batch's types must pickle by name


def _segments():
    return sorted(n for n in os.listdir(_worker.SHM_DIR) if n.startswith(f"tapegrad-dl-{os.getpid()}-"))


def _gone(pids, within=5.0):
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        alive = [p for p in pids if os.path.exists(f"/proc/{p}") and _state(p) != "Z"]
        if not alive:
            return True
        time.sleep(0.02)
    return False


def _state(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "gone"


def _ints(batches, key="y"):
    return np.concatenate([b[key].numpy() for b in batches]).tolist()


@pytest.fixture(autouse=True)
def no_leaks():
    yield
    gc.collect()
    import multiprocessing
    assert _gone([p.pid for p in multiprocessing.active_children()]), "worker processes left running"
    assert _segments() == [], "shared-memory segments left behind"


@pytest.mark.parametrize("workers", [1, 2, 3])
@pytest.mark.parametrize("batch_size,drop_last", [(4, False), (4, True), (1, False), (23, False)])
def test_same_batches_as_in_process(workers, batch_size, drop_last):
    ds = Squares(23)
    want = list(DataLoader(ds, batch_size=batch_size, drop_last=drop_last))
    got = list(DataLoader(ds, batch_size=batch_size, drop_last=drop_last, num_workers=workers, timeout=T))
    assert len(got) == len(want) == len(DataLoader(ds, batch_size=batch_size, drop_last=drop_last))
    for g, w in zip(got, want):
        assert g.keys() == w.keys() and g["name"] == w["name"]
        for k in "xyf":
            assert g[k].dtype == w[k].dtype and g[k].shape == w[k].shape
            np.testing.assert_array_equal(g[k].numpy(), w[k].numpy())


def test_shuffled_order_does_not_depend_on_num_workers():
    ds = TensorDataset(tapegrad.arange(200, dtype=tapegrad.float32).reshape(50, 4), tapegrad.arange(50))

    def order(workers):
        loader = DataLoader(ds, batch_size=6, shuffle=True, num_workers=workers, timeout=T,
                            generator=tapegrad.Generator().manual_seed(5))
        return [y.tolist() for _, y in loader] + [y.tolist() for _, y in loader]  # two epochs

    want = order(0)
    assert order(2) == want and sorted(sum(want[:9], [])) == list(range(50))
    # a seeded loader shuffles as it always has (the examples' published figures depend on it):
    # each epoch one permutation drawn from the generator
    rng = np.random.default_rng(5)
    assert sum(want, []) == rng.permutation(50).tolist() + rng.permutation(50).tolist()


def test_collate_structures_match_pytorch():
    torch = pytest.importorskip("torch")

    class Mixed:
        def __len__(self):
            return 6

        def __getitem__(self, i):
            return (np.arange(3, dtype=np.float64) + i, i, 0.5 * i, {"k": [i, np.int32(i)], "s": str(i)},
                    Pair(np.ones((2, 2), np.float32) * i, True))

    ours = list(DataLoader(Mixed(), batch_size=4, num_workers=2, timeout=T))
    theirs = list(torch.utils.data.DataLoader(Mixed(), batch_size=4, num_workers=2))

    def same(a, b):
        if isinstance(b, torch.Tensor):
            assert isinstance(a, tapegrad.Tensor) and a.shape == tuple(b.shape)
            assert str(a.dtype) == str(b.dtype).replace("torch.", "tapegrad.")
            np.testing.assert_array_equal(a.numpy(), b.numpy())
        elif isinstance(b, dict):
            assert type(a) is type(b) and a.keys() == b.keys()
            for k in b:
                same(a[k], b[k])
        elif isinstance(b, (list, tuple)):
            assert type(a) is type(b) and len(a) == len(b)
            for x, y in zip(a, b):
                same(x, y)
        else:
            assert a == b

    assert len(ours) == len(theirs) == 2
    same(ours, theirs)


def test_worker_info_and_seeding():
    torch = pytest.importorskip("torch")
    assert get_worker_info() is None
    rows = [b.numpy() for b in DataLoader(WhoAmI(), batch_size=3, num_workers=2, timeout=T,
                                          generator=tapegrad.Generator().manual_seed(1))]
    again = [b.numpy() for b in DataLoader(WhoAmI(), batch_size=3, num_workers=2, timeout=T,
                                           generator=tapegrad.Generator().manual_seed(1))]
    for a, b in zip(rows, again):  # the same generator seeds the workers the same way
        np.testing.assert_array_equal(a, b)
    rows = np.concatenate(rows)
    assert rows[:, 0].tolist() == list(range(12))
    # batches go round-robin to the workers, as in PyTorch
    their_ids = [int(b[0]) for b in torch.utils.data.DataLoader(
        range(12), batch_size=3, num_workers=2, collate_fn=lambda b: [torch.utils.data.get_worker_info().id])]
    assert rows[::3, 1].tolist() == their_ids == [0, 1, 0, 1]
    assert (rows[:, 2] == 2).all() and (rows[:, 6] == 12).all()
    seeds = {wid: set(rows[rows[:, 1] == wid, 3]) for wid in (0, 1)}
    assert len(seeds[0]) == len(seeds[1]) == 1 and (seeds[1].pop() - seeds[0].pop()) % 1000003 == 1
    # numpy's and tapegrad's global streams differ between workers
    assert len(set(rows[:, 4])) == 12 and len(set(rows[:, 5])) == 12


class InfoKeys(Dataset):
    def __len__(self):
        return 2

    def __getitem__(self, i):
        info = get_worker_info()
        return type(info).__name__ + ":" + ",".join(k for k in ("id", "num_workers", "seed", "dataset")
                                                     if hasattr(info, k))


def test_worker_info_fields_match_pytorch():
    torch = pytest.importorskip("torch")

    class TorchInfoKeys(torch.utils.data.Dataset):
        def __len__(self):
            return 2

        def __getitem__(self, i):
            info = torch.utils.data.get_worker_info()
            return type(info).__name__ + ":" + ",".join(k for k in ("id", "num_workers", "seed", "dataset")
                                                         if hasattr(info, k))

    ours = next(iter(DataLoader(InfoKeys(), batch_size=2, num_workers=1, timeout=T)))
    theirs = next(iter(torch.utils.data.DataLoader(TorchInfoKeys(), batch_size=2, num_workers=1)))
    assert ours == list(theirs) == ["WorkerInfo:id,num_workers,seed,dataset"] * 2


def test_numpy_seed_is_pytorchs_hash():
    worker = pytest.importorskip("torch.utils.data._utils.worker")
    for seed in (0, 1, 12345678901234, 2 ** 63 - 1):
        for wid in (0, 1, 7):
            assert _worker._generate_state(seed, wid) == worker._generate_state(seed, wid)


def _init_worker(worker_id):
    np.random.seed(1000 + worker_id)


class NpDraw(Dataset):
    def __len__(self):
        return 4

    def __getitem__(self, i):
        return np.random.randint(1 << 30)


def test_worker_init_fn():
    got = [b.tolist() for b in DataLoader(NpDraw(), batch_size=2, num_workers=2, worker_init_fn=_init_worker,
                                          timeout=T)]
    want = [np.random.RandomState(1000 + w).randint(1 << 30, size=2).tolist() for w in (0, 1)]
    assert got == want


def test_worker_info_is_read_only():
    info = WorkerInfo(id=0, num_workers=1, seed=3, dataset=None)
    with pytest.raises(RuntimeError, match="Cannot assign attributes"):
        info.id = 2
    assert "id=0" in repr(info)


@pytest.mark.filterwarnings("ignore:This DataLoader will create")  # torch's: 3 workers on 2 cores
@pytest.mark.parametrize("split", [True, False])
@pytest.mark.parametrize("drop_last", [False, True])
def test_iterable_dataset_matches_pytorch(split, drop_last):
    torch = pytest.importorskip("torch")

    class TorchStream(torch.utils.data.IterableDataset):
        def __iter__(self):
            info = torch.utils.data.get_worker_info()
            return iter(range(11) if not split else range(info.id, 11, info.num_workers))

    ours = [b.tolist() for b in DataLoader(Stream(11, split), batch_size=2, num_workers=2, drop_last=drop_last,
                                           timeout=T)]
    theirs = [b.tolist() for b in torch.utils.data.DataLoader(TorchStream(), batch_size=2, num_workers=2,
                                                              drop_last=drop_last)]
    assert ours == theirs
    ours = [int(x) for x in DataLoader(Stream(11, split), batch_size=None, num_workers=3, timeout=T)]
    theirs = [int(x) for x in torch.utils.data.DataLoader(TorchStream(), batch_size=None, num_workers=3)]
    assert ours == theirs


def test_worker_exception_is_raised_with_its_traceback_and_iteration_goes_on():
    it = iter(DataLoader(Squares(12, fail_at=5), batch_size=2, num_workers=2, timeout=T))
    assert _ints([next(it), next(it)]) == [0, 1, 4, 9]
    with pytest.raises(ValueError) as e:
        next(it)
    msg = str(e.value)
    assert msg.startswith("Caught ValueError in DataLoader worker process 0.")
    assert "Traceback" in msg and "__getitem__" in msg and "bad item 5" in msg
    assert _ints(list(it)) == [36, 49, 64, 81, 100, 121]  # the other batches still come, in order


def test_worker_exception_types():
    with pytest.raises(KeyError) as e:
        next(iter(DataLoader(Squares(4, fail_at=0, exc=KeyError), batch_size=2, num_workers=1, timeout=T)))
    assert "\n" in str(e.value)  # readable, not a one-line repr

    class NeedsTwo(Exception):
        def __init__(self, a, b):
            super().__init__(a, b)

    class Raises(Dataset):
        def __len__(self):
            return 2

        def __getitem__(self, i):
            raise NeedsTwo(1, 2)

    with pytest.raises(RuntimeError, match="Caught NeedsTwo in DataLoader worker process 0"):
        next(iter(DataLoader(Raises(), batch_size=2, num_workers=1, timeout=T)))
    it = iter(DataLoader(Squares(4), num_workers=1, timeout=T, worker_init_fn=lambda w: 1 / 0))
    for _ in range(2):  # every batch of that worker reports it, not a confusing error after the first
        with pytest.raises(ZeroDivisionError, match="in DataLoader worker process 0"):
            next(it)


def test_dead_worker_is_an_error_not_a_hang():
    start = time.monotonic()
    it = iter(DataLoader(Squares(40, kill_at=9, width=100_000), batch_size=2, num_workers=2))  # no timeout
    pids = [w.pid for w in it._workers]
    with pytest.raises(RuntimeError, match=r"DataLoader worker 0 \(pid \d+\) exited unexpectedly.*SIGKILL"):
        for _ in it:
            pass
    assert time.monotonic() - start < T
    assert _gone(pids)


def test_timeout():
    start = time.monotonic()
    with pytest.raises(RuntimeError, match="DataLoader timed out after 0.3 seconds"):
        list(DataLoader(Squares(4, sleep=3), batch_size=2, num_workers=1, timeout=0.3))
    assert time.monotonic() - start < 3


@pytest.mark.parametrize("how", ["del", "break", "exhaust"])
def test_shutdown_reaps_workers_and_frees_shared_memory(how):
    # 100,000 floats per item: batches go through shared memory, several in flight at any time
    loader = DataLoader(Squares(40, width=100_000), batch_size=2, num_workers=2, prefetch_factor=3, timeout=T)
    it = iter(loader)
    pids = [w.pid for w in it._workers]
    first = next(it)
    if how == "exhaust":
        rest = list(it)
        assert len(rest) == 19
    elif how == "break":
        for i, _ in enumerate(it):
            if i == 3:
                break
    del it
    gc.collect()
    assert _gone(pids)
    assert _segments() == []
    assert first["x"].numpy()[1, 7] == 1.0  # batches already handed out stay valid


def test_big_batches_are_views_of_shared_memory_small_ones_come_by_pipe():
    import mmap
    big = next(iter(DataLoader(Squares(4, width=100_000), batch_size=2, num_workers=1, timeout=T)))["x"].numpy()
    small = next(iter(DataLoader(Squares(4, width=3), batch_size=2, num_workers=1, timeout=T)))["x"].numpy()

    def root(a):
        while isinstance(a, np.ndarray) and a.base is not None:
            a = a.base
        return a.obj if isinstance(a, memoryview) else a

    assert isinstance(root(big), mmap.mmap) and not isinstance(root(small), mmap.mmap)
    assert big.flags.writeable and small.flags.writeable
    big += 1  # writable; the worker reuses the segment only once this batch is collected
    assert big[1, 0] == 2.0


def test_full_shared_memory_falls_back_to_the_pipe(monkeypatch):
    """PyTorch's trap: a full /dev/shm (Docker's 64 MiB) kills its workers with SIGBUS."""
    def full(name, size):
        raise _worker.ShmFull(28, f"no room in {_worker.SHM_DIR} for a {size}-byte batch")

    monkeypatch.setattr(_worker, "_create_segment", full)  # the forked workers inherit it
    got = list(DataLoader(Squares(6, width=100_000), batch_size=2, num_workers=2, timeout=T))
    assert _ints(got) == [i * i for i in range(6)] and got[2]["x"].numpy()[1, 5] == 5.0


def test_segments_are_recycled_only_once_their_batch_is_collected():
    it = iter(DataLoader(Squares(80, width=30_000), batch_size=2, num_workers=2, timeout=T))
    held, ids = [], set()
    for k, batch in enumerate(it):
        ids.add(batch["y"][0].item())
        if k % 5 == 0:
            held.append(batch)  # kept: its segment must not be written again
        del batch
        gc.collect() if k % 10 == 0 else None
        assert all(len(m) <= 12 for m in it._pool.mappings)  # dropped batches' segments were reused
    for b in held:
        first = int(b["x"][0, 0].item())
        np.testing.assert_array_equal(b["x"].numpy(), np.repeat([[first], [first + 1]], 30_000, axis=1))
        assert b["y"].tolist() == [first * first, (first + 1) ** 2]
    assert len(held) == 8


def test_collecting_a_batch_runs_no_python_code():
    """A batch's segment goes back when its arrays are collected, at any allocation of any thread.
    That notice must run no Python code: a Ctrl-C arriving while Python code runs in such a
    callback (a weakref.finalize's) raises inside it, where Python prints and drops the
    KeyboardInterrupt, and the loop went on as if the key had never been pressed."""
    it = iter(DataLoader(Squares(8, width=30_000), batch_size=2, num_workers=2, timeout=T))
    batch = next(it)
    assert batch["x"].numpy().base is not None  # a view of shared memory, watched for collection
    calls = []
    sys.setprofile(lambda frame, event, arg: calls.append((event, frame.f_code.co_name)) if event == "call" else None)
    try:
        del batch
    finally:
        sys.setprofile(None)
    assert calls == [], calls
    returned = sum(len(r.take()) for r in it._pool.freed)
    assert returned == 1
    assert _ints(list(it)) == [i * i for i in range(2, 8)]


def test_persistent_workers():
    loader = DataLoader(Squares(10), batch_size=3, num_workers=2, persistent_workers=True, timeout=T)
    it = iter(loader)
    pids = [w.pid for w in it._workers]
    assert _ints(list(it)) == [i * i for i in range(10)]
    it2 = iter(loader)
    assert [w.pid for w in it2._workers] == pids and all(w.is_alive() for w in it2._workers)
    next(it2)  # leave the epoch early: the next one starts afresh
    assert _ints(list(iter(loader))) == [i * i for i in range(10)]
    stream = DataLoader(Stream(7), batch_size=2, num_workers=2, persistent_workers=True, timeout=T)
    for _ in range(3):  # each epoch each worker iterates its copy again
        assert sorted(sum((b.tolist() for b in stream), [])) == list(range(7))
    del loader, it, it2, stream
    gc.collect()
    assert _gone(pids)


def test_in_order_false_returns_batches_as_they_come():
    class SlowFirst(Dataset):
        def __len__(self):
            return 8

        def __getitem__(self, i):
            time.sleep(0.5 if i == 0 else 0.0)
            return i

    ordered = [b.tolist() for b in DataLoader(SlowFirst(), batch_size=2, num_workers=2, timeout=T)]
    assert ordered == [[0, 1], [2, 3], [4, 5], [6, 7]]
    loose = [b.tolist() for b in DataLoader(SlowFirst(), batch_size=2, num_workers=2, in_order=False, timeout=T)]
    assert loose[0] != [0, 1] and sorted(loose) == ordered


def test_prefetch_factor_bounds_batches_in_flight():
    it = iter(DataLoader(Squares(40), batch_size=2, num_workers=2, prefetch_factor=3, timeout=T))
    assert len(it._task_info) == 6
    next(it)
    assert len(it._task_info) == 6  # one taken, one more asked for
    del it


def test_argument_checks_match_pytorch():
    torch = pytest.importorskip("torch")
    for kwargs in (dict(num_workers=-1), dict(timeout=-1), dict(prefetch_factor=2),
                   dict(persistent_workers=True), dict(num_workers=1, multiprocessing_context="nope"),
                   dict(multiprocessing_context="fork"), dict(batch_size=None, drop_last=True)):
        with pytest.raises(ValueError) as theirs:
            torch.utils.data.DataLoader(range(4), **kwargs)
        with pytest.raises(ValueError) as ours:
            DataLoader(range(4), **kwargs)
        assert str(ours.value) == str(theirs.value)
    with pytest.raises(ValueError, match="prefetch_factor"):  # PyTorch accepts 0, then fails on iter()
        DataLoader(range(4), num_workers=1, prefetch_factor=0)
    assert DataLoader(range(4), num_workers=2).prefetch_factor == 2


def test_pin_memory_is_accepted():
    got = list(DataLoader(Squares(5), batch_size=2, num_workers=1, pin_memory=True, timeout=T))
    assert _ints(got) == [0, 1, 4, 9, 16]


def test_batch_size_none_with_workers_converts_like_pytorch():
    got = list(DataLoader(Squares(3), batch_size=None, num_workers=2, timeout=T))
    assert isinstance(got[1]["x"], tapegrad.Tensor) and got[1]["y"] == 1 and got[2]["name"] == "s2"


def test_huge_lazy_sampler_with_workers():
    from tapegrad.utils.data import RandomSampler
    s = RandomSampler(range(10), replacement=True, num_samples=10 ** 10)
    it = iter(DataLoader(TensorDataset(tapegrad.arange(10)), batch_size=8, sampler=s, num_workers=2, timeout=T))
    assert next(it)[0].shape == (8,)
    del it


def test_spawn_context():
    ds = TensorDataset(tapegrad.arange(600, dtype=tapegrad.float32).reshape(30, 20), tapegrad.arange(30))
    got = list(DataLoader(ds, batch_size=8, num_workers=2, multiprocessing_context="spawn", timeout=60))
    want = list(DataLoader(ds, batch_size=8))
    assert all((g[0].numpy() == w[0].numpy()).all() and g[1].tolist() == w[1].tolist() for g, w in zip(got, want))
    assert len(got) == 4


def test_two_threads_iterating_their_own_loaders():
    import threading
    results, errors = {}, []

    def run(k):
        try:
            results[k] = _ints(list(DataLoader(Squares(9), batch_size=2, num_workers=2, timeout=T)))
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=run, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(T)
    assert not errors and results == {0: [i * i for i in range(9)], 1: [i * i for i in range(9)]}


_SCRIPT = textwrap.dedent("""
    import os, signal, sys, threading, time
    # Python's own Ctrl-C handler, which it leaves out when it starts with SIGINT ignored: the case
    # under a suite run as a background job (a non-interactive shell's `cmd &` ignores SIGINT)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    sys.path.insert(0, {tests!r})
    import numpy as np
    from tapegrad.utils.data import DataLoader
    from test_dataloader_workers import Squares
    loader = DataLoader(Squares(400, width=100_000, sleep=0.02), batch_size=2, num_workers=2, timeout=20)
    it = iter(loader)
    print("PIDS", *[w.pid for w in it._workers], flush=True)
    next(it)
    mode = sys.argv[1]
    if mode == "interrupt":
        threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGINT)).start()
        try:
            for _ in it:
                pass
        except KeyboardInterrupt:
            print("INTERRUPTED", all(not w.is_alive() for w in it._workers), flush=True)
    elif mode == "exit":
        sys.exit(0)   # mid-epoch, the iterator still referenced: cleanup at exit
    elif mode == "killed":
        time.sleep(60)  # the test kills this process
""")


def _run_script(mode, tmp_path):
    script = tmp_path / "script.py"
    script.write_text(_SCRIPT.format(tests=os.path.dirname(__file__)))
    return subprocess.Popen([sys.executable, str(script), mode], stdout=subprocess.PIPE, text=True)


def _leftover_segments(pid):
    return [n for n in os.listdir(_worker.SHM_DIR) if n.startswith(f"tapegrad-dl-{pid}-")]


@pytest.mark.parametrize("mode", ["interrupt", "exit"])
def test_interrupt_and_exit_shut_workers_down(mode, tmp_path):
    p = _run_script(mode, tmp_path)
    out, _ = p.communicate(timeout=60)
    pids = [int(x) for x in out.split("PIDS")[1].split("\n")[0].split()]
    assert p.returncode == 0, out
    if mode == "interrupt":
        assert "INTERRUPTED True" in out
    assert _gone(pids) and _leftover_segments(p.pid) == []


def test_workers_exit_when_the_main_process_is_killed(tmp_path):
    p = _run_script("killed", tmp_path)
    line = p.stdout.readline()
    pids = [int(x) for x in line.split()[1:]]
    time.sleep(0.5)
    p.kill()
    p.wait(T)
    assert _gone(pids, within=10.0)
    deadline = time.monotonic() + 5
    while _leftover_segments(p.pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _leftover_segments(p.pid) == []
