"""The kernels under threads, fork and exhausted resources (csrc/kernels/parallel.h).

Tests marked `threads` also run under ThreadSanitizer (scripts/tsan.sh). What could crash or hang
the interpreter runs in a subprocess or a forked child with a timeout.
"""
import multiprocessing
import os
import subprocess
import sys
import textwrap
import threading

import numpy as np
import pytest

from tapegrad import _C

# The ThreadSanitizer build has the racy debug kernel, and runs its teams on std::threads
# (joined after each call) instead of an OpenMP pool.
TSAN_BUILD = hasattr(_C, "_tsan_racy_count")
# AddressSanitizer's operator new reports a failed allocation and aborts (it never throws), so
# out-of-memory behaviour cannot be tested under scripts/sanitize.sh.
ASAN = "libasan" in os.environ.get("LD_PRELOAD", "")


def run_script(script, timeout=120, env=None):
    """Runs `script` in a fresh interpreter; a hang fails the test at `timeout` seconds."""
    return subprocess.run([sys.executable, "-c", textwrap.dedent(script)], capture_output=True, text=True,
                          timeout=timeout, env=dict(os.environ, **(env or {})))


def task_ids():
    return set(os.listdir("/proc/self/task"))


@pytest.mark.threads
def test_set_num_threads_is_process_wide(restore_threads):
    """A count set in one thread is what every other thread reads (OpenMP's own is per thread)."""
    seen = []
    setter = threading.Thread(target=_C.set_num_threads, args=(3,))
    setter.start()
    setter.join()
    readers = [threading.Thread(target=lambda: seen.append(_C.get_num_threads())) for _ in range(4)]
    for t in readers:
        t.start()
    for t in readers:
        t.join()
    assert seen == [3] * 4
    assert _C.get_num_threads() == 3


@pytest.mark.threads
def test_concurrent_set_num_threads_leaves_one_of_the_values(restore_threads):
    barrier = threading.Barrier(4)

    def setter(n):
        barrier.wait()
        for _ in range(200):
            _C.set_num_threads(n)

    threads = [threading.Thread(target=setter, args=(n,)) for n in (1, 2, 3, 4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert _C.get_num_threads() in (1, 2, 3, 4)


@pytest.mark.skipif(TSAN_BUILD, reason="the ThreadSanitizer build starts threads per call")
def test_kernels_in_another_thread_use_the_process_wide_count(restore_threads):
    """set_num_threads(3) here, then a large GEMM in a new thread: the shared pool grows to 3 - 1
    workers, and a second thread's kernels reuse them (no pool per calling thread)."""
    _C.set_num_threads(3)
    a = np.ones((512, 512))
    t = threading.Thread(target=_C.matmul, args=(a, a, np.empty_like(a)))
    t.start()
    t.join()
    assert _C._kernel_pool_workers() >= 2
    workers = _C._kernel_pool_workers()
    t = threading.Thread(target=_C.matmul, args=(a, a, np.empty_like(a)))
    t.start()
    t.join()
    assert _C._kernel_pool_workers() == workers


@pytest.mark.threads
@pytest.mark.parametrize("ntiles", [2, 3, 64, 1001])
def test_parallel_tiles_runs_every_tile_once(restore_threads, ntiles):
    """Each share takes its own range of tiles, then what is left of the others' (parallel.h):
    every tile runs exactly once, with a prompt worker and with one that sleeps before each of
    its tiles. A slow worker's range is taken by the caller, which does not wait for it."""
    _C.set_num_threads(2)
    for delay_us in (0, 0, 2000):
        counts, caller, _ = _C._parallel_tiles_takers(ntiles, delay_us)
        assert counts == [1] * ntiles, (delay_us, counts)
    if ntiles >= 64:  # the worker sleeps 2 ms a tile: the caller, not waiting for it, takes most of them
        assert sum(caller) >= ntiles // 2, sum(caller)


@pytest.mark.skipif(TSAN_BUILD or sys.platform != "linux", reason="pool threads; a busy core")
def test_regions_on_an_oversubscribed_machine_give_the_same_results():
    """With a process spinning on every core the kernels' regions run on the caller alone (the
    load check this suite otherwise turns off, tests/conftest.py): the results are still those of
    1 and of 2 threads, bit for bit, and the pool's worker is started all the same."""
    busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(os.cpu_count() or 2)]
    try:
        res = run_script("""
        import numpy as np
        from tapegrad import _C
        rng = np.random.default_rng(0)
        a, b = rng.standard_normal((300, 200)), rng.standard_normal((200, 250)).astype(np.float32)
        x, w = rng.standard_normal((4, 3, 20, 20)), rng.standard_normal((6, 3, 3, 3))
        r = rng.standard_normal((256, 512)).astype(np.float32)

        def run():
            out = np.empty((300, 250), np.float32)
            _C.matmul(a.astype(np.float32), b, out)
            return out, _C.conv2d(x, w, None, (1, 1), (1, 1), (1, 1), 1), _C.softmax(r, False)

        results = {}
        for n in (1, 2, 1, 2):
            _C.set_num_threads(n)
            got = run()
            results.setdefault(n, got)
            assert all(np.array_equal(g, e) for g, e in zip(got, results[n])), n
        assert all(np.array_equal(g, e) for g, e in zip(results[1], results[2]))
        print("same", _C._kernel_pool_workers())
        """, env={"TAPEGRAD_THREADS_IGNORE_LOAD": "0"})
    finally:
        for p in busy:
            p.kill()
            p.wait()
    assert res.returncode == 0, res.stdout + res.stderr[-3000:]
    assert "same 1" in res.stdout


def _reference_ops(rng, dtype):
    x = rng.standard_normal((4, 3, 20, 20)).astype(dtype)
    w = rng.standard_normal((6, 3, 3, 3)).astype(dtype)
    a = rng.standard_normal((150, 130)).astype(dtype)
    b = rng.standard_normal((130, 170)).astype(dtype)
    v = rng.standard_normal((2, 3, 5, 8, 7)).astype(dtype)
    wv = rng.standard_normal((4, 3, 3, 2, 3)).astype(dtype)
    r = rng.standard_normal((70, 600)).astype(dtype)  # row kernels above their parallel threshold
    emb_idx = rng.integers(0, 50, 70)
    lw = rng.standard_normal(600).astype(dtype)

    def rows():
        ln, mean, rstd = _C.layer_norm(r, 600, lw, lw, 1e-5)
        return [_C.silu(r), _C.silu_backward(r, r), *_C.dropout(r, 0.4, 11), ln,
                *_C.layer_norm_backward(r, r, mean, rstd, 600, lw, True, True, True),
                _C.embedding_backward(r, emb_idx, 50, 3, True)]

    def run():
        out = np.empty((150, 170), dtype)
        _C.matmul(a, b, out)
        y = _C.conv2d(x, w, None, (1, 1), (1, 1), (1, 1), 1)
        gx = _C.conv2d_input_grad(y, w, (20, 20), (1, 1), (1, 1), (1, 1), 1)
        gw = _C.conv2d_weight_grad(x, y, (3, 3), (1, 1), (1, 1), (1, 1), 1)
        p, idx = _C.max_pool2d(y, (2, 2), (2, 2), (0, 0), (1, 1), False)
        gp = _C.max_pool2d_backward(p, idx, (20, 20))
        q = _C.avg_pool2d(y, (3, 3), (2, 2), (1, 1), True, False, 0)
        geo3 = ((1, 2, 1), (1, 0, 1), (1, 1, 1), 1)
        y3 = _C.conv3d(v, wv, None, *geo3)
        gx3 = _C.conv3d_input_grad(y3, wv, (5, 8, 7), *geo3)
        gw3 = _C.conv3d_weight_grad(v, y3, (3, 2, 3), *geo3)
        p3, idx3 = _C.max_pool3d(v, (2, 3, 2), (1, 2, 2), (1, 1, 0), (1, 1, 1), True)
        q3 = _C.avg_pool3d(v, (3, 3, 3), (2, 2, 2), (1, 1, 1), True, False, 0)
        return [out, y, gx, gw, p, idx, gp, q, y3, gx3, gw3, p3, idx3, q3, *rows()]

    return run


@pytest.mark.threads
@pytest.mark.parametrize("nthreads", [1, 2])
def test_concurrent_calls_match_serial(restore_threads, nthreads):
    """Several Python threads call every kernel at once (each call's own team): every result is
    bit-identical to the same call made alone."""
    _C.set_num_threads(nthreads)
    jobs = [_reference_ops(np.random.default_rng(i), dt) for i, dt in enumerate([np.float32, np.float64] * 2)]
    expected = [job() for job in jobs]
    got, errors = [None] * len(jobs), []

    def worker(i):
        try:
            for _ in range(3):
                got[i] = jobs[i]()
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(len(jobs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for want, have in zip(expected, got):
        for w, h in zip(want, have):
            assert w.tobytes() == h.tobytes()


@pytest.mark.threads
def test_set_num_threads_while_kernels_run(restore_threads):
    """Changing the count while other threads are in kernels changes no result."""
    job = _reference_ops(np.random.default_rng(9), np.float32)
    expected = job()
    stop, errors, mismatches = threading.Event(), [], []

    def flip():
        n = 0
        while not stop.is_set():
            _C.set_num_threads(1 + n % 2)
            n += 1

    def worker():
        try:
            for _ in range(4):
                if any(w.tobytes() != h.tobytes() for w, h in zip(expected, job())):
                    mismatches.append(1)
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    flipper = threading.Thread(target=flip)
    workers = [threading.Thread(target=worker) for _ in range(2)]
    flipper.start()
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    stop.set()
    flipper.join()
    assert not errors and not mismatches


@pytest.mark.threads
@pytest.mark.skipif(not TSAN_BUILD, reason="the ThreadSanitizer build only (scripts/tsan.sh)")
def test_tsan_detects_a_race():
    """The build's sanity check: ThreadSanitizer, preloaded into the uninstrumented interpreter,
    does report the deliberate race of _C._tsan_racy_count (so silence elsewhere means something).
    Each share is long enough that the team's second thread starts before the caller has taken
    both shares, even on a loaded machine (the first report halts the run)."""
    res = run_script("from tapegrad import _C; _C._tsan_racy_count(5_000_000)",
                     env={"TSAN_OPTIONS": "halt_on_error=1:exitcode=66"})
    assert res.returncode == 66, res.stderr[-3000:]
    assert "WARNING: ThreadSanitizer: data race" in res.stderr
    assert "_tsan_racy_count" in res.stderr or "bindings.cpp" in res.stderr


# ------------------------------------------------------------------ exceptions in parallel regions

MEMORY_LIMIT = """
    import resource
    def limit_memory(extra_bytes):
        with open("/proc/self/statm") as f:
            vm = int(f.read().split()[0]) * resource.getpagesize()
        resource.setrlimit(resource.RLIMIT_AS, (vm + extra_bytes, resource.RLIM_INFINITY))
"""


@pytest.mark.skipif(ASAN or sys.platform != "linux", reason="RLIMIT_AS, /proc/self/statm; ASan aborts on OOM")
def test_bad_alloc_in_a_parallel_region_raises_memory_error():
    """The issue's case: each of two threads' im2col buffer (10^4 x 1901^2 floats) fails to
    allocate inside the parallel region. That used to abort the process (std::terminate).
    The im2col route is forced: on AVX-512 machines the direct route needs no such buffer."""
    res = run_script(MEMORY_LIMIT + """
    import tapegrad as tg
    import tapegrad.nn.functional as F
    tg.set_num_threads(2)
    F.conv2d(tg.ones(2, 1, 64, 64), tg.ones(1, 1, 5, 5))  # start the thread pool before the limit
    x, w = tg.zeros(2, 1, 2000, 2000), tg.zeros(1, 1, 100, 100)
    limit_memory(1 << 30)
    for batch in (2, 1):
        try:
            F.conv2d(x[:batch], w)
        except MemoryError as e:
            print("MemoryError", batch, e)
    y = F.conv2d(tg.ones(2, 1, 64, 64), tg.ones(1, 1, 5, 5))  # the process still works
    print("alive", float(y.sum().item()))
    """, env={"TAPEGRAD_CONV_KERNEL": "gemm"})
    assert res.returncode == 0, res.stderr[-3000:]
    assert "MemoryError 2" in res.stdout and "MemoryError 1" in res.stdout
    # the op, its input shapes and the bytes asked for, not a bare "std::bad_alloc"
    for line in res.stdout.splitlines():
        if line.startswith("MemoryError"):
            assert line.split(" ", 2)[2].startswith("conv2d: "), line
            assert "(input shapes (" in line and ("bytes" in line or "Unable to allocate" in line), line
    assert f"alive {2 * 60 * 60 * 25.0}" in res.stdout


@pytest.mark.skipif(TSAN_BUILD or sys.platform != "linux", reason="the pool's threads; RLIMIT_AS")
def test_failed_thread_start_raises_instead_of_exiting():
    """A pool whose threads cannot be created (no address space for their stacks) is a
    RuntimeError; GNU libgomp's own pool would print "Thread creation failed" and exit(1)."""
    res = run_script(MEMORY_LIMIT + """
    import numpy as np
    from tapegrad import _C
    a = np.ones((256, 256))
    out = np.empty_like(a)
    _C.set_num_threads(1)
    _C.matmul(a, a, out)  # the calling thread's pack buffers exist before the limit
    limit_memory(2 << 20)  # less than one thread stack
    _C.set_num_threads(2)
    try:
        _C.matmul(a, a, out)
    except RuntimeError as e:
        print("RuntimeError", e)
    _C.set_num_threads(1)
    _C.matmul(a, a, out)
    print("alive", out[0, 0])
    """)
    assert res.returncode == 0, res.stdout + res.stderr[-3000:]
    assert "RuntimeError could not start 1 more kernel thread(s)" in res.stdout
    assert "alive 256.0" in res.stdout


# ------------------------------------------------------------------ fork

def _child_kernels(conn):
    """Runs in the forked child: a large GEMM and convolution, checked against numpy."""
    try:
        rng = np.random.default_rng(0)
        a, b = rng.standard_normal((600, 500)), rng.standard_normal((500, 400))
        out = np.empty((600, 400))
        _C.matmul(a, b, out)
        np.testing.assert_allclose(out, a @ b, rtol=1e-12, atol=1e-10)
        x, w = rng.standard_normal((8, 3, 64, 64)), rng.standard_normal((16, 3, 5, 5))
        y = _C.conv2d(x, w, None, (1, 1), (2, 2), (1, 1), 1)
        assert y.shape == (8, 16, 64, 64)
        try:
            _C.set_num_threads(2)
            refused = ""
        except RuntimeError as e:
            refused = str(e)
        conn.send(("ok", _C.get_num_threads(), refused))
    except BaseException as e:  # pragma: no cover - reported in the parent
        conn.send(("error", repr(e), ""))


@pytest.mark.skipif(TSAN_BUILD or sys.platform != "linux", reason="the pool's threads; the fork start method")
def test_fork_child_after_pool_started_keeps_its_threads(restore_threads):
    """The parent's pool has started; the forked child has none of its threads, starts its own,
    and its kernels finish (GNU libgomp's pool would wait forever for the parent's threads)."""
    _C.set_num_threads(2)
    a = np.ones((300, 300))
    _C.matmul(a, a, np.empty_like(a))  # the pool now has a worker
    ctx = multiprocessing.get_context("fork")
    parent_end, child_end = ctx.Pipe()
    child = ctx.Process(target=_child_kernels, args=(child_end,))
    child.start()
    try:
        assert parent_end.poll(120), "the forked child's kernels hang"
        status, threads, refused = parent_end.recv()
    finally:
        child.join(10)
        if child.is_alive():
            child.kill()
    assert status == "ok", threads
    assert threads == 2 and refused == ""
    assert _C.get_num_threads() == 2  # the parent is unchanged


@pytest.mark.skipif(TSAN_BUILD or sys.platform != "linux", reason="the pool's threads; the fork start method")
def test_fork_from_a_thread_without_pool_keeps_threads():
    """Forking from a thread that never ran a kernel (the pool's work came from another thread):
    the child keeps its threads and may set them."""
    res = run_script("""
    import multiprocessing, threading
    import numpy as np
    from tapegrad import _C
    _C.set_num_threads(2)
    a = np.ones((400, 400))
    t = threading.Thread(target=_C.matmul, args=(a, a, np.empty_like(a)))  # a pool, in that thread
    t.start(); t.join()

    def child(conn):
        n = _C.get_num_threads()
        _C.set_num_threads(2)
        out = np.empty_like(a)
        _C.matmul(a, a, out)
        conn.send((n, float(out[0, 0])))

    ctx = multiprocessing.get_context("fork")
    parent_end, child_end = ctx.Pipe()
    p = ctx.Process(target=child, args=(child_end,))
    p.start()
    print("child", parent_end.recv() if parent_end.poll(60) else "hangs")
    p.join(10)
    """, timeout=120)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "child (2, 400.0)" in res.stdout


@pytest.mark.skipif(sys.platform != "linux", reason="/proc/self/task")
def test_kernel_workers_block_signals_so_ctrl_c_reaches_python():
    """The pool's workers start with every signal blocked, so a signal sent to the process goes to a
    Python thread (see parallel.cpp's SignalsBlocked), and Ctrl-C during kernels interrupts."""
    code = textwrap.dedent("""
        import os, signal, threading, time
        signal.signal(signal.SIGINT, signal.default_int_handler)  # (a background job starts with it ignored)
        import numpy as np
        import tapegrad as tg
        before = set(os.listdir("/proc/self/task"))  # the main thread, numpy's BLAS threads
        tg.set_num_threads(2)
        a = tg.tensor(np.ones(1 << 20, np.float32))
        for _ in range(3):
            (a * 2).sum()
        main = threading.get_native_id()
        masks = {}
        for tid in os.listdir("/proc/self/task"):
            with open(f"/proc/self/task/{tid}/status") as f:
                masks[tid] = int([l for l in f if l.startswith("SigBlk")][0].split()[1], 16)
        workers = [m for t, m in masks.items() if t not in before]  # the kernel pool's
        print(len(workers), all(m & (1 << (signal.SIGINT - 1)) for m in workers),
              not masks[str(main)] & (1 << (signal.SIGINT - 1)))
        threading.Timer(0.1, os.kill, (os.getpid(), signal.SIGINT)).start()
        t0 = time.monotonic()
        try:
            for _ in range(200):  # kernels running while the signal comes
                (a * 2).sum()
                time.sleep(0.01)
            print("NOT INTERRUPTED")
        except KeyboardInterrupt:
            print("INTERRUPTED", time.monotonic() - t0 < 1.5)
    """)
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env=dict(os.environ, TAPEGRAD_THREADS_IGNORE_LOAD="1"))
    assert res.returncode == 0, res.stderr[-2000:]
    lines = res.stdout.split("\n")
    n, workers_block, main_open = lines[0].split()
    assert int(n) >= 1 and workers_block == "True" and main_open == "True", res.stdout
    assert lines[1] == "INTERRUPTED True", res.stdout
