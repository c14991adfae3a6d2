"""tapegrad.futures.Future: PyTorch's torch.futures semantics (set_result, then, callbacks,
errors, waiting from several threads), and futures of pending work completing when waited on."""
import threading

import pytest

import tapegrad

from tapegrad.futures import Future, collect_all, wait_all


def test_set_result_then_and_callbacks():
    f = Future()
    seen = []
    f.add_done_callback(lambda fut: seen.append(fut.value()))
    g = f.then(lambda fut: fut.value() + 1)
    assert not f.done() and not g.done()
    with pytest.raises(RuntimeError, match="not completed"):
        f.value()
    f.set_result(41)
    assert f.done() and g.done() and g.wait() == 42 and seen == [41]
    late = []
    f.add_done_callback(lambda fut: late.append(fut.value()))  # already complete: runs at once
    assert late == [41]
    assert f.then(lambda fut: fut.value() * 2).wait() == 82
    with pytest.raises(RuntimeError, match="already complete"):
        f.set_result(0)


def test_errors_travel_down_the_chain():
    f = Future()
    g = f.then(lambda fut: fut.value() + 1)
    f.set_exception(ValueError("bad"))
    with pytest.raises(ValueError, match="bad"):
        f.wait()
    with pytest.raises(ValueError, match="bad"):
        g.wait()
    h = Future()
    k = h.then(lambda fut: 1 / 0)
    h.set_result(1)
    with pytest.raises(ZeroDivisionError):
        k.wait()
    with pytest.raises(TypeError, match="expected an exception"):
        Future().set_exception("not an exception")


def test_wait_blocks_until_another_thread_sets_the_result():
    f = Future()
    got = []
    threads = [threading.Thread(target=lambda: got.append(f.wait())) for _ in range(4)]
    for t in threads:
        t.start()
    f.set_result("x")
    for t in threads:
        t.join(10)
    assert got == ["x"] * 4


def test_pending_work_completes_once_when_waited_or_polled():
    calls, ready = [], [False]
    f = Future._of(lambda: calls.append(1) or "done", lambda: ready[0])
    chained = f.then(lambda fut: fut.value().upper())
    assert not f.done() and not chained.done() and calls == []
    ready[0] = True
    assert chained.done() and chained.wait() == "DONE" and f.wait() == "done" and calls == [1]
    failing = Future._of(lambda: 1 / 0, lambda: False)
    with pytest.raises(ZeroDivisionError):
        failing.wait()
    assert failing.done()


def test_collect_all_and_wait_all():
    a, b = Future(), Future()
    both = collect_all([a, b])
    a.set_result(1)
    b.set_exception(KeyError("k"))
    assert both.wait() == [a, b]
    with pytest.raises(KeyError):
        wait_all([a, b])
    assert wait_all([a]) == [1]
    with pytest.raises(TypeError):
        collect_all([1])


def test_future_is_generic_and_top_level_as_pytorch():
    from typing import get_args

    assert tapegrad.Future is tapegrad.futures.Future
    alias = tapegrad.futures.Future[tapegrad.Tensor]  # annotations such as Future[Tensor] (captum's)
    assert get_args(alias) == (tapegrad.Tensor,)
    assert isinstance(tapegrad.futures.Future(), tapegrad.Future)
