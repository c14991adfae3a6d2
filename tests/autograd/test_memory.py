"""The tape makes no reference cycles: tensors and nodes die by reference counting alone,
so memory stays flat over a training loop without the cycle collector."""
import gc
import tracemalloc
import weakref

import numpy as np
import pytest

import tapegrad as tg


@pytest.fixture
def no_gc():
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def _step(w, b, x, y):
    out = (x @ w.T + b).relu()
    loss = ((out - y) ** 2).mean()
    loss.backward()
    with tg.no_grad():
        w.sub_(w.grad * 0.01)
        b.sub_(b.grad * 0.01)
    w.grad = None
    b.grad = None
    return loss.item()


def test_graph_freed_by_refcount_alone(no_gc):
    x = tg.randn(4, 3, requires_grad=True)
    h = x * 2
    y = (h.exp() * h).sum()
    refs = [weakref.ref(t) for t in (h, y)] + [weakref.ref(y.grad_fn), weakref.ref(h.grad_fn)]
    y.backward()
    del h, y
    assert all(r() is None for r in refs)  # with the collector off: no cycle kept them


def test_graph_freed_without_backward(no_gc):
    x = tg.randn(3, requires_grad=True)
    y = (x.sin() * x).sum()
    y.retain_grad()
    y.register_hook(lambda g: g)
    r_node, r_y = weakref.ref(y.grad_fn), weakref.ref(y)
    del y
    assert r_node() is None and r_y() is None


def test_training_loop_leaves_nothing_for_the_collector(no_gc):
    tg.manual_seed(0)
    w = tg.randn(5, 3, requires_grad=True)
    b = tg.zeros(5, requires_grad=True)
    x, y = tg.randn(8, 3), tg.randn(8, 5)
    for _ in range(20):
        _step(w, b, x, y)
    assert gc.collect() == 0


def test_create_graph_leaves_no_cycles(no_gc):
    x = tg.randn(3, dtype=tg.float64, requires_grad=True)
    (g,) = tg.autograd.grad((x ** 3).sum(), x, create_graph=True)
    g.sum().backward()
    r = weakref.ref(g.grad_fn)
    del g
    x.grad = None
    assert r() is None
    assert gc.collect() == 0


def test_memory_stays_flat():
    tg.manual_seed(0)
    w = tg.randn(64, 32, requires_grad=True)
    b = tg.zeros(64, requires_grad=True)
    x, y = tg.randn(16, 32), tg.randn(16, 64)
    tracemalloc.start()
    try:
        for _ in range(600):  # CPython's small-object free lists fill up first, then it is flat
            _step(w, b, x, y)
        base, objects = tracemalloc.get_traced_memory()[0], len(gc.get_objects())
        for _ in range(200):
            _step(w, b, x, y)
        now = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert now - base < 16 * 1024, f"memory grew by {now - base} bytes over 200 steps"
    assert len(gc.get_objects()) <= objects


def test_released_graph_drops_saved_arrays(no_gc):
    x = tg.randn(1000, requires_grad=True)
    h = x * 2
    sq = h * h
    y = sq.sum()
    node = sq.grad_fn
    r_h, r_node = weakref.ref(h), weakref.ref(node)
    y.backward()
    assert node.saved is None and node.released  # the tape no longer holds h
    del h
    assert r_h() is None
    del node, sq, y
    assert r_node() is None
    np.testing.assert_allclose(x.grad.numpy(), 8 * x.detach().numpy(), rtol=1e-5)
