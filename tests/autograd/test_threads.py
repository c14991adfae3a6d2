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


def test_double_backward_with_create_graph_in_several_threads_is_exact():
    def work(k):
        x = tg.tensor([1.0 + k, 2.0], dtype=tg.float64, requires_grad=True)
        for _ in range(50):
            (g,) = autograd.grad((x ** 3).sum(), x, create_graph=True)
            (gg,) = autograd.grad(g.sum(), x)
            np.testing.assert_array_equal(g.detach().numpy(), 3 * x.detach().numpy() ** 2)
            np.testing.assert_array_equal(gg.numpy(), 6 * x.detach().numpy())

    run_threads(work, 4)


def test_hooks_added_and_removed_while_other_threads_run_backward():
    w = tg.tensor(np.ones(8), requires_grad=True)
    stop = threading.Event()

    def churn(_):
        while not stop.is_set():
            h = w.register_hook(lambda g: None)
            p = w.register_post_accumulate_grad_hook(lambda t: None)
            h.remove()
            p.remove()

    def backprop(_):
        try:
            for _ in range(200):
                (w * 2).sum().backward()
        finally:
            stop.set()

    run_threads(lambda k: churn(k) if k == 0 else backprop(k), 3)
    np.testing.assert_array_equal(w.grad.numpy(), np.full(8, 2.0 * 200 * 2))


def test_retain_grad_and_post_accumulate_hooks_under_threads_count_every_pass():
    shared = tg.tensor(np.zeros(4), requires_grad=True)
    calls = []
    shared.register_post_accumulate_grad_hook(lambda t: calls.append(1))  # list.append is atomic

    def work(k):
        for _ in range(100):
            y = shared * (k + 1)
            y.retain_grad()
            (y * y).sum().backward()
            np.testing.assert_array_equal(y.grad.numpy(), 2 * y.detach().numpy())

    run_threads(work, 4)
    assert len(calls) == 400
    np.testing.assert_array_equal(shared.grad.numpy(), np.zeros(4))  # y = 0: d(y^2) = 0, exactly


def test_a_thread_whose_backward_raises_releases_the_shared_leaf():
    w = tg.tensor(np.ones(3), requires_grad=True)

    def fail(g):
        raise ValueError("hook failed mid-backward")

    def work(k):
        for i in range(100):
            y = w * 1.0
            if k == 0 and i % 2 == 0:
                y.register_hook(fail)
                with pytest.raises(ValueError, match="mid-backward"):
                    y.sum().backward()
            else:
                y.sum().backward()

    run_threads(work, 3)
    np.testing.assert_array_equal(w.grad.numpy(), np.full(3, 250.0))  # 50 + 2 * 100 passes that ran


def test_grad_mode_decorators_in_threads_and_generators_stay_per_thread():
    @tg.no_grad()
    def steps():
        for _ in range(3):
            yield tg.is_grad_enabled()

    def work(k):
        for _ in range(50):
            gen = steps()
            assert next(gen) is False and tg.is_grad_enabled()
            with tg.set_grad_enabled(k % 2 == 0):
                assert next(gen) is False and tg.is_grad_enabled() is (k % 2 == 0)
            assert tg.is_grad_enabled()

    run_threads(work, 4)
