"""fork() next to backward passes: a process forked while another thread accumulates into a
.grad must not inherit that tensor's lock held (its first backward into it would wait forever),
so a fork waits for the other threads' backward passes (csrc/tape.cpp, PassGate)."""
import multiprocessing
import sys
import threading
import time

import numpy as np
import pytest

import tapegrad as tg
from tapegrad import _C

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="the fork start method")


def _backward_in_child(conn, w):
    seen = None if w.grad is None else w.grad.tolist()
    w.grad = None
    with tg.enable_grad():  # a child forked from inside a backward hook inherits its mode: off
        (w * 3).sum().backward()
    conn.send((seen, w.grad.tolist()))


def _wait_for(predicate, what):
    deadline = time.monotonic() + 60
    while not predicate():
        assert time.monotonic() < deadline, what
        time.sleep(0.001)


def test_a_fork_waits_for_another_threads_backward_and_the_child_can_run_backward():
    w = tg.ones(3, requires_grad=True)
    in_hook, go = threading.Event(), threading.Event()

    def hook(g):  # runs inside the pass, before the accumulation into w.grad
        in_hook.set()
        go.wait(60)

    handle = w.register_hook(hook)
    trainer = threading.Thread(target=lambda: (w * 2).sum().backward())
    trainer.start()
    assert in_hook.wait(60)
    handle.remove()

    ctx = multiprocessing.get_context("fork")
    parent_end, child_end = ctx.Pipe()
    child = ctx.Process(target=_backward_in_child, args=(child_end, w))
    forker = threading.Thread(target=child.start)
    forker.start()
    try:
        _wait_for(lambda: _C._backward_passes()[1], "the fork did not wait for the running backward pass")
        assert child.pid is None  # not forked yet: the pass is still running
    finally:
        go.set()
    forker.join(60)
    trainer.join(60)
    got = parent_end.recv() if parent_end.poll(60) else None
    child.join(10)
    if child.is_alive():  # pragma: no cover
        child.kill()
    assert got is not None, "the child's backward hangs"
    seen, child_grad = got
    assert seen == [2.0, 2.0, 2.0]  # the fork came after the other thread's accumulation
    assert child_grad == [3.0, 3.0, 3.0]
    np.testing.assert_array_equal(w.grad.numpy(), [2.0, 2.0, 2.0])  # the parent is untouched


def test_a_fork_from_inside_this_threads_own_backward_does_not_wait_for_itself():
    w = tg.ones(2, requires_grad=True)
    results = []
    ctx = multiprocessing.get_context("fork")

    def hook(g):
        parent_end, child_end = ctx.Pipe()
        p = ctx.Process(target=_backward_in_child, args=(child_end, tg.ones(2, requires_grad=True)))
        p.start()
        results.append(parent_end.recv() if parent_end.poll(60) else None)
        p.join(10)

    w.register_hook(hook)
    (w * 2).sum().backward()
    assert results == [(None, [3.0, 3.0])]
    # and the next backward passes, here and in other threads, still run
    (w * 2).sum().backward()
    t = threading.Thread(target=lambda: (w * 2).sum().backward())
    t.start()
    t.join(60)
    assert _C._backward_passes() == (0, 0)
