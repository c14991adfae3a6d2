"""autograd.graph.saved_tensors_hooks: every value the tape saves goes through pack_hook at record
time and unpack_hook in the backward pass; gradients are those of a run without hooks (or of the
values the hooks give back), the hooks are per thread and nest, errors name the op, packed nodes
are collected like any other, and double backward works through them."""
import gc
import threading
import weakref

import numpy as np
import pytest

import tapegrad as tg
from tapegrad.autograd.graph import (Node, disable_saved_tensors_hooks, increment_version, save_on_cpu,
                                     saved_tensors_hooks)


class Counting:
    def __init__(self):
        self.packed, self.unpacked = [], 0

    def pack(self, t):
        self.packed.append(t.shape)
        return ("packed", t.detach().numpy().copy())

    def unpack(self, p):
        self.unpacked += 1
        assert p[0] == "packed"
        return tg.from_numpy(p[1])


def _graph(x, w):
    return ((x * w).exp() * x).sum()


def _grads(hooks=None):
    x = tg.tensor(np.linspace(-1, 1, 6).reshape(2, 3), dtype=tg.float64, requires_grad=True)
    w = tg.tensor(np.linspace(0.5, 2, 6).reshape(2, 3), dtype=tg.float64, requires_grad=True)
    if hooks is None:
        y = _graph(x, w)
    else:
        with saved_tensors_hooks(hooks.pack, hooks.unpack):
            y = _graph(x, w)
    y.backward()
    return x.grad.numpy(), w.grad.numpy()


def test_every_saved_value_is_packed_and_unpacked_once_per_backward():
    plain = _grads()
    hooks = Counting()
    got = _grads(hooks)
    np.testing.assert_array_equal(got[0], plain[0])
    np.testing.assert_array_equal(got[1], plain[1])
    assert len(hooks.packed) >= 3 and hooks.unpacked == len(hooks.packed)  # mul's inputs, exp's output, ...


def test_gradients_follow_what_unpack_returns():
    # half-precision activations: the gradient is computed from the rounded values
    x = tg.tensor([0.1234567, 2.345678, -1.0], dtype=tg.float32, requires_grad=True)
    with saved_tensors_hooks(lambda t: t.detach().numpy().astype(np.float16),
                             lambda a: tg.from_numpy(a.astype(np.float32))):
        y = (x * x).sum()
    y.backward()
    np.testing.assert_array_equal(x.grad.numpy(), 2 * x.detach().numpy().astype(np.float16).astype(np.float32))


def test_hooks_nest_are_off_inside_pack_and_end_with_the_block():
    outer, inner = Counting(), Counting()
    x = tg.ones(3, requires_grad=True)
    with saved_tensors_hooks(outer.pack, outer.unpack):
        a = x * x
        with saved_tensors_hooks(inner.pack, inner.unpack):
            b = x * x
        c = x * x
    d = x * x
    assert len(outer.packed) == 4 and len(inner.packed) == 2
    (a + b + c + d).sum().backward()
    assert outer.unpacked == 4 and inner.unpacked == 2
    np.testing.assert_array_equal(x.grad.numpy(), [8.0, 8.0, 8.0])

    calls = []

    def pack_with_ops(t):  # ops inside a pack hook save plainly: no recursion
        calls.append(1)
        return (t * 1).detach()
    with saved_tensors_hooks(pack_with_ops, lambda t: t):
        (x * x).sum().backward()
    assert len(calls) == 2


def test_hooks_belong_to_their_thread():
    hooks = Counting()
    seen = {}

    def other():
        y = tg.ones(2, requires_grad=True)
        seen["other"] = (y * y).grad_fn is not None
    with saved_tensors_hooks(hooks.pack, hooks.unpack):
        t = threading.Thread(target=other)
        t.start()
        t.join()
    assert seen["other"] and hooks.packed == []


def test_errors_name_the_op_and_leave_the_hooks_consistent():
    x = tg.ones(2, requires_grad=True)
    with saved_tensors_hooks(lambda t: t, lambda p: "not a tensor"):
        y = (x * x).sum()
    with pytest.raises(TypeError, match="mul: saved_tensors_hooks' unpack_hook must return a Tensor, got str"):
        y.backward()

    def bad_pack(t):
        raise ValueError("cannot pack")
    with saved_tensors_hooks(bad_pack, lambda p: p):
        with pytest.raises(ValueError, match="cannot pack"):
            x * x
        with pytest.raises(ValueError, match="cannot pack"):  # still in force after the error
            x * x
    (x * x).sum().backward()  # and gone after the block
    with pytest.raises(TypeError, match="callables"):
        saved_tensors_hooks(1, 2)


def test_no_version_check_on_packed_values_as_in_pytorch():
    x = tg.ones(3, requires_grad=True)
    a = x * 2
    with saved_tensors_hooks(lambda t: t.detach().clone(), lambda t: t):
        y = (a * a).sum()
    with tg.no_grad():
        a.add_(1)  # the packed copies are what the backward uses
    y.backward()
    np.testing.assert_array_equal(x.grad.numpy(), [8.0, 8.0, 8.0])
    b = x * 2
    z = (b * b).sum()
    increment_version(b)
    with pytest.raises(RuntimeError, match="modified by an in-place operation"):
        z.backward()


def test_retain_graph_unpacks_again_and_double_backward_works():
    hooks = Counting()
    x = tg.tensor([0.5, 1.5], dtype=tg.float64, requires_grad=True)
    with saved_tensors_hooks(hooks.pack, hooks.unpack):
        y = x.exp().sum()
    (g,) = tg.autograd.grad(y, x, create_graph=True)
    np.testing.assert_allclose(g.detach().numpy(), np.exp([0.5, 1.5]))
    g.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), np.exp([0.5, 1.5]))
    assert hooks.unpacked == 2  # exp's output, for g and again through g's own graph (PyTorch's count)
    with saved_tensors_hooks(hooks.pack, hooks.unpack):
        z = (x * x).sum()
    z.backward(retain_graph=True)
    z.backward()
    assert hooks.unpacked == 2 + 2 * 2


def test_custom_function_and_modules_run_under_hooks():
    class Square(tg.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return x * x

        @staticmethod
        def backward(ctx, g):
            (x,) = ctx.saved_tensors
            return 2 * x * g
    x = tg.tensor([1.0, -2.0], requires_grad=True)
    model = tg.nn.Sequential(tg.nn.Linear(2, 4), tg.nn.GELU(), tg.nn.Linear(4, 1))
    with save_on_cpu():
        y = model(Square.apply(x)).sum()
    y.backward()
    x2 = x.detach().clone().requires_grad_(True)
    model.zero_grad()
    model(Square.apply(x2)).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), x2.grad.numpy())


def test_packed_nodes_are_collected():
    class Box:
        pass

    def pack(t):
        box = Box()
        box.t = t
        box.self = box  # a cycle through the packed value
        return box
    with saved_tensors_hooks(pack, lambda b: b.t):
        x = tg.ones(4, requires_grad=True)
        y = x * x
    ref = weakref.ref(y.grad_fn)
    assert isinstance(y.grad_fn, Node)
    del y
    gc.collect()
    assert ref() is None


def test_disable_saved_tensors_hooks():
    with disable_saved_tensors_hooks("no hooks in this region"):
        with pytest.raises(RuntimeError, match="no hooks in this region"):
            with saved_tensors_hooks(lambda t: t, lambda t: t):
                pass
    with saved_tensors_hooks(lambda t: t, lambda t: t):  # allowed again
        pass
