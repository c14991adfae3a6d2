"""The tape under threads (issue 10 §1): grad mode and anomaly mode are per thread, backward
switches the mode for its own thread only, and accumulation into a shared leaf's .grad loses
no update. Bounded: a few seconds in all (this file also runs under ThreadSanitizer)."""
import threading

import numpy as np
import pytest

import tapegrad as tg
from tapegrad import autograd

pytestmark = pytest.mark.threads  # scripts/tsan.sh runs these against a ThreadSanitizer build


def run_threads(target, n):
    errors = []

    def guarded(k):
        try:
            target(k)
        except BaseException as e:  # noqa: BLE001  (reported by the main thread)
            errors.append(e)

    threads = [threading.Thread(target=guarded, args=(k,)) for k in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in threads), "a thread hung"
    if errors:
        raise errors[0]


def test_a_thread_records_while_another_runs_backward():
    """The issue's repro: t2 recorded during thread B's backward must be on the tape (7, not 4)."""
    w = tg.tensor(2.0, dtype=tg.float64, requires_grad=True)
    v = tg.tensor(1.0, dtype=tg.float64, requires_grad=True)
    inside, release = threading.Event(), threading.Event()

    def hold(g):  # runs inside B's backward, with B's grad mode off
        inside.set()
        release.wait(10)
        return g

    v.register_hook(hold)
    b = threading.Thread(target=lambda: (v * 5).sum().backward())
    t1 = (w * w).sum()
    b.start()
    assert inside.wait(10)
    assert tg.is_grad_enabled()  # B's backward switched its own thread's mode only
    t2 = (w * 3).sum()
    release.set()
    b.join(10)
    (t1 + t2).backward()
    assert w.grad.item() == 7.0 and v.grad.item() == 5.0
    assert tg.is_grad_enabled()


def test_modes_are_per_thread_and_new_threads_start_with_grad_enabled():
    seen = {}

    def probe(k):
        seen[k] = (tg.is_grad_enabled(), autograd.is_anomaly_enabled())
        with tg.no_grad():
            seen[k, "inside"] = tg.is_grad_enabled()

    with tg.no_grad(), autograd.detect_anomaly():
        run_threads(probe, 2)
        assert not tg.is_grad_enabled() and autograd.is_anomaly_enabled()
    assert seen[0] == seen[1] == (True, False)
    assert seen[0, "inside"] is False
    assert tg.is_grad_enabled() and not autograd.is_anomaly_enabled()


def test_overlapping_backward_passes_leave_every_thread_in_grad_mode():
    def work(k):
        x = tg.tensor(np.arange(4.0) + k, requires_grad=True)
        for _ in range(50):
            y = (x * x).sum()
            assert tg.is_grad_enabled()
            y.backward()
            assert tg.is_grad_enabled()
        np.testing.assert_array_equal(x.grad.numpy(), 100 * (np.arange(4.0) + k))

    run_threads(work, 4)
    assert tg.is_grad_enabled()


def test_accumulation_into_a_shared_large_leaf_loses_no_update():
    """numpy releases the GIL inside `grad += g`: without the leaf's lock, updates are lost."""
    n, reps, threads = 1 << 20, 3, 4
    w = tg.zeros(n, dtype=tg.float64, requires_grad=True)

    def work(k):
        c = tg.full((n,), float(k + 1), dtype=tg.float64)
        for _ in range(reps):
            (w * c).sum().backward()

    run_threads(work, threads)
    expected = reps * sum(range(1, threads + 1))
    assert np.array_equal(w.grad.numpy(), np.full(n, float(expected)))


def _own_graph(x, shared, k):
    h = (x @ shared).tanh()
    return (h * h).sum() + (shared * (k + 1)).sum() + (x.exp() * h.sum()).mean()


@pytest.mark.parametrize("threads", [4])
def test_stress_threads_with_own_graphs_and_a_shared_leaf(threads):
    """Each thread backpropagates its own graphs into its own leaf and one shared leaf: every
    gradient is bit-identical to the single-threaded run."""
    rng = np.random.default_rng(0)
    xs = [rng.standard_normal((3, 4)) for _ in range(threads)]
    s0 = rng.standard_normal((4, 5))
    reps = 20

    def expected_grads(k):
        x = tg.tensor(xs[k], requires_grad=True)
        s = tg.tensor(s0, requires_grad=True)
        _own_graph(x, s, k).backward()
        return x.grad.numpy().copy(), s.grad.numpy().copy()

    expected = [expected_grads(k) for k in range(threads)]
    shared = tg.tensor(s0, requires_grad=True)
    shared_expected = sum(expected[k][1] * reps for k in range(threads))
    got = {}

    def work(k):
        x = tg.tensor(xs[k], requires_grad=True)
        for _ in range(reps):
            x.grad = None
            probe = tg.tensor(s0, requires_grad=True)  # a private copy: exact per-pass gradient
            _own_graph(x, probe, k).backward()
            assert np.array_equal(x.grad.numpy(), expected[k][0])
            assert np.array_equal(probe.grad.numpy(), expected[k][1])
            _own_graph(x.detach(), shared, k).backward()
        got[k] = True

    run_threads(work, threads)
    assert len(got) == threads
    # the shared leaf got threads x reps contributions, in some order: equal up to rounding
    np.testing.assert_allclose(shared.grad.numpy(), shared_expected, rtol=1e-12, atol=1e-12)
