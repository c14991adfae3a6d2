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


# ---------------------------------------------------------------- cycles the user makes
# The tape keeps tensors and nodes out of the cycle collector while no cycle can pass through
# them (csrc/tape_gc.cpp). Each case below closes a cycle through the tape in one of the ways a
# program can; the cycle must survive reference counting alone (it is a real cycle) and die in
# gc.collect() (the collector sees all of it).
def _dies_only_in_collect(make):
    gc.collect()
    gc.disable()
    try:
        refs = [weakref.ref(t) for t in make()]
        assert any(r() is not None for r in refs), "no cycle was made"
    finally:
        gc.enable()
    gc.collect()
    assert all(r() is None for r in refs)


def _hook_on_non_leaf_refers_to_its_tensor():
    x = tg.randn(3, requires_grad=True)
    y = x * 2
    y.register_hook(lambda g: g * y.detach())
    (y * y).sum().backward()
    return y, x


def _hook_refers_to_a_later_tensor():
    x = tg.randn(3, requires_grad=True)
    y = x.exp()
    z = y * 3
    y.register_hook(lambda g: g + 0 * z.detach())
    return y, z


def _leaf_hook_refers_to_its_tensor():
    x = tg.randn(3, requires_grad=True)
    (x * 2).sum().backward()  # x is in a graph already: its hook makes every tape object tracked
    x.register_hook(lambda g: g + 0 * x.detach())
    (x * 3).sum().backward()
    return (x,)


def _post_accumulate_hook():
    x = tg.randn(3, requires_grad=True)
    x.register_post_accumulate_grad_hook(lambda t: None if x is t else None)
    (x * x).sum().backward()
    return (x,)


def _grad_assigned_from_its_own_graph():
    x = tg.randn(3, requires_grad=True)
    y = x * 2  # y.grad_fn refers to x
    x.grad = y
    return x, y


def _create_graph_grad_refers_to_its_leaf():
    x = tg.randn(3, dtype=tg.float64, requires_grad=True)
    (x ** 3).sum().backward(create_graph=True)  # x.grad = 3 x^2, recorded from x
    return (x,)


def _retained_grad_refers_to_its_tensor():
    x = tg.randn(3, dtype=tg.float64, requires_grad=True)
    y = x * 2
    y.retain_grad()
    (y * y).sum().backward(create_graph=True)  # y.grad = 2 y, recorded from y
    return y, x


def _in_place_op_saves_its_own_tensor():
    x = tg.randn(3, requires_grad=True)
    w = tg.randn(3, requires_grad=True)
    y = x * 1
    y.mul_(y * w)  # the new node of y saves (y * w), whose node saves y (w's gradient reads it)
    return (y,)


def _custom_function_keeps_its_output():
    class Square(tg.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return x * x

        @staticmethod
        def backward(ctx, g):
            (x,) = ctx.saved_tensors
            return 2 * x * g

    x = tg.randn(3, requires_grad=True)
    y = Square.apply(x)
    y.grad_fn.aux.keep = y  # the ctx, which the node holds, now holds the output
    return (y,)


class _Tagged(tg.Tensor):  # a subclass with a __dict__: attributes the tape does not see
    pass


def _subclass_attribute_refers_to_its_graph():
    x = _Tagged(tg.randn(3)._data, requires_grad=True)
    y = x * 2
    x.note = y  # x -> y -> y.grad_fn -> x
    return x, y


def _plain_tensor_in_a_list_on_a_subclass():
    x = _Tagged(tg.randn(3)._data, requires_grad=True)
    x.log = []
    y = x.exp()
    z = y.sum()
    x.log.append(z)  # after recording: the list mutates beyond the tape's setters
    return x, y, z


@pytest.mark.parametrize("make", [
    _hook_on_non_leaf_refers_to_its_tensor, _hook_refers_to_a_later_tensor, _leaf_hook_refers_to_its_tensor,
    _post_accumulate_hook, _grad_assigned_from_its_own_graph, _create_graph_grad_refers_to_its_leaf,
    _retained_grad_refers_to_its_tensor, _in_place_op_saves_its_own_tensor, _custom_function_keeps_its_output,
    _subclass_attribute_refers_to_its_graph, _plain_tensor_in_a_list_on_a_subclass])
def test_cycles_through_the_tape_are_collected(make):
    _dies_only_in_collect(make)


def test_cycles_collected_after_many_untracked_graphs():
    # graphs built before and after the cycle, some still alive when it is made
    keep = [(tg.randn(2, requires_grad=True) * 2).exp() for _ in range(50)]
    _dies_only_in_collect(_hook_refers_to_a_later_tensor)
    _dies_only_in_collect(_grad_assigned_from_its_own_graph)
    keep += [(k * 3).sum() for k in keep]
    for k in keep[50:]:
        k.backward()
    _dies_only_in_collect(_retained_grad_refers_to_its_tensor)


def test_recording_plain_tensors_tracks_nothing(no_gc):
    x = tg.tensor([1.0], requires_grad=True)
    y = x * 1.0
    before = len(gc.get_objects())
    for _ in range(500):
        y = y * 1.0001 + 0.0001
    assert len(gc.get_objects()) - before < 10  # was 2 per recorded op
    y.backward()
    assert x.grad is not None


def test_training_loop_with_hooks_stays_flat():
    model = tg.nn.Sequential(tg.nn.Linear(8, 16), tg.nn.ReLU(), tg.nn.Linear(16, 1))
    opt = tg.optim.SGD(model.parameters(), lr=0.01)
    seen = []
    model[0].weight.register_hook(lambda g: seen.append(1) or g)
    x, y = tg.randn(4, 8), tg.randn(4, 1)

    def step():
        opt.zero_grad()
        out = model(x)
        out.register_hook(lambda g: g)
        ((out - y) ** 2).mean().backward()
        opt.step()

    for _ in range(100):
        step()
    gc.collect()
    objects = len(gc.get_objects())
    for _ in range(100):
        step()
    gc.collect()
    assert len(gc.get_objects()) <= objects
    assert len(seen) == 200


def test_graphs_after_a_hook_are_untracked_again(no_gc):
    w = tg.randn(3, requires_grad=True)
    y = w * 2
    flushes = tg._C._gc_stats()[1]
    y.register_hook(lambda g: g)  # a hook on a tensor in a graph: every tape object is tracked
    assert tg._C._gc_stats()[1] == flushes + 1
    y.sum().backward()
    before = len(gc.get_objects())
    z = w * 1.0
    for _ in range(300):
        z = z * 1.0001 + 0.0001  # w (a parameter of an older epoch) is found tame again
    assert len(gc.get_objects()) - before < 20
    z.sum().backward()


def test_a_gradient_that_is_a_view_of_a_temporary_is_taken_over_not_copied():
    # reshape's VJP returns a view of the product's gradient; nothing else holds that product,
    # so .grad takes the array over (a view a VJP makes keeps no reference to its base tensor)
    w = tg.randn(4, 3, requires_grad=True)
    (w.reshape(12) * tg.arange(12.0)).sum().backward()
    assert w.grad._data.base is not None
    np.testing.assert_array_equal(w.grad.numpy(), np.arange(12.0).reshape(4, 3))
