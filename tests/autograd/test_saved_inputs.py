"""What a node keeps of its inputs: only what the VJP of an input that requires grad reads
(PyTorch's rule). ``y = x * 2.0`` keeps nothing of ``x`` (the constant's gradient, which would
read it, never runs), so writing ``x`` in place afterwards is not an error and ``x`` is not kept
alive; ``y = x * c`` keeps ``x`` once ``c`` requires grad, and then the write is refused. The
read sets come from each VJP's code (tapegrad/_tape/registry.py, ``_reads``; csrc/tape.h,
``OpObject::reads``). The view/in-place fuzzer found the difference; the last test checks
these cases, with the others it found, in PyTorch when it is installed.
"""
import gc
import weakref

import numpy as np
import pytest

import tapegrad as tg
from tapegrad._tape import registry

F64 = tg.float64


def test_input_saved_only_for_a_constant_can_be_written():
    a = tg.tensor([1.0, 2.0], dtype=F64, requires_grad=True)
    x = a * 1
    y = x * 2.0
    x.add_(1.0)
    y.sum().backward()
    np.testing.assert_allclose(a.grad.numpy(), [2.0, 2.0])


def test_input_read_by_a_gradient_that_runs_is_kept_and_checked():
    a = tg.tensor([1.0, 2.0], dtype=F64, requires_grad=True)
    c = tg.tensor([3.0, 4.0], dtype=F64)
    x = a * 1
    y = x * c  # c needs no gradient: x is not kept
    assert y.grad_fn.saved[0] is None and y.grad_fn.saved[1] is c
    x.add_(1.0)
    y.sum().backward()
    np.testing.assert_allclose(a.grad.numpy(), [3.0, 4.0])
    c.requires_grad_()
    x = a * 1
    y = x * c  # now c's gradient reads x
    assert y.grad_fn.saved[0] is x
    x.add_(1.0)
    with pytest.raises(RuntimeError, match="has been modified by an in-place operation"):
        y.sum().backward()


def test_an_input_not_kept_is_freed():
    a = tg.tensor([1.0, 2.0], dtype=F64, requires_grad=True)
    x = a * 1
    arr = weakref.ref(x._data)
    y = (x * 2.0).exp()
    del x
    gc.collect()
    assert arr() is None
    y.sum().backward()
    np.testing.assert_allclose(a.grad.numpy(), 2 * np.exp([2.0, 4.0]))


@pytest.mark.parametrize("shape", [(3, 4), (2, 3, 4), (1, 4)])
def test_linear_with_a_constant_weight_keeps_only_the_weight(shape):
    """F.linear(x, W) with W frozen: x's gradient reads W, nothing reads x, so x is not kept
    (PyTorch's rule); its shape still shapes the gradient."""
    rng = np.random.default_rng(0)
    a = tg.tensor(rng.standard_normal(shape), dtype=F64, requires_grad=True)
    W = tg.tensor(rng.standard_normal((5, 4)), dtype=F64)
    x = a * 1
    y = tg.nn.functional.linear(x, W)
    x.add_(1.0)  # not read by the backward
    g = rng.standard_normal(tuple(y.shape))
    y.backward(tg.tensor(g))
    np.testing.assert_allclose(a.grad.numpy(), g @ W.numpy(), atol=1e-12)


def test_matmul_keeps_both_operands_for_their_layouts():
    """x @ W.T's gradients arrive in each operand's layout (W's contiguous), so each reads its own
    operand too: both are kept, and a write to x after the product is refused."""
    a = tg.ones(3, 4, dtype=F64, requires_grad=True)
    W = tg.ones(2, 4, dtype=F64)
    x = a * 1
    y = x @ W.T
    assert y.grad_fn.saved[0] is x
    x.add_(1.0)
    with pytest.raises(RuntimeError, match="gradient of matmul .* modified by an in-place operation"):
        y.sum().backward()
    w = tg.ones(2, 4, dtype=F64, requires_grad=True)
    (tg.ones(3, 4, dtype=F64) @ w.T).sum().backward()
    assert w.grad.is_contiguous()


def test_linear_with_a_frozen_weight_lets_its_input_be_written():
    rng = np.random.default_rng(1)
    a = tg.tensor(rng.standard_normal((2, 3, 4)), dtype=F64, requires_grad=True)
    lin = tg.nn.Linear(4, 5, dtype=F64)
    lin.requires_grad_(False)
    x = a * 1
    y = lin(x)
    x.mul_(3.0)
    y.sum().backward()
    np.testing.assert_allclose(a.grad.numpy(), np.broadcast_to(lin.weight.numpy().sum(0), (2, 3, 4)), atol=1e-12)
    lin.weight.requires_grad_(True)  # now the weight's gradient reads x: the write is refused
    x = a * 1
    y = lin(x)
    x.mul_(3.0)
    with pytest.raises(RuntimeError, match="gradient of linear .* modified by an in-place operation"):
        y.sum().backward()


def test_read_sets_come_from_the_vjps_code():
    def reads_y(g, out, x, y):
        return g * y

    def reads_x_through_a_closure(g, out, x, y):
        return (lambda: g * x)()

    def any_args(g, out, *inputs):
        return g

    assert registry._reads((reads_y, None)) == (0b10, 0)
    assert registry._reads((reads_x_through_a_closure, reads_y)) == (0b01, 0b10)
    assert registry._reads((any_args, any_args)) == (0b11, 0b11)  # cannot tell: everything
    assert registry._reads((len, reads_y)) == (0b11, 0b10)  # not a Python function: everything
    assert registry._reads((reads_y,) * 9) is None  # more inputs than the masks hold: saves as declared


def test_the_cases_are_pytorch_behaviour():
    torch = pytest.importorskip("torch")
    buf = torch.zeros(3, dtype=torch.float64)
    v = buf[1:]
    buf[0] = 1.0
    buf.requires_grad_()
    ((v * 2).sum() + buf.sum()).backward()
    np.testing.assert_allclose(buf.grad.numpy(), [1.0, 3.0, 3.0])
    a = torch.tensor([0.5, -1.0, 2.0, 1.5], dtype=torch.float64, requires_grad=True)
    first = a[:1]
    scalar = first.squeeze(0)
    with torch.no_grad():
        a[0] = 0.64
    g_first, g_scalar = torch.autograd.grad((first * 3.0).sum() + scalar * 5.0, [first, scalar])
    np.testing.assert_allclose(g_first.numpy(), [3.0])
    a = torch.tensor([1.0, 2.0], dtype=torch.float64, requires_grad=True)
    y = a * 3
    a.detach_()
    y.sum().backward()
    assert a.grad is None
    a = torch.tensor([1.0, 2.0], dtype=torch.float64, requires_grad=True)
    x = a * 1
    y = x * 2.0
    x.add_(1.0)
    y.sum().backward()
    np.testing.assert_allclose(a.grad.numpy(), [2.0, 2.0])
    a = torch.tensor([1.0, 2.0], dtype=torch.float64, requires_grad=True)
    b = torch.tensor([3.0], dtype=torch.float64, requires_grad=True)
    x = a * 2
    x.retain_grad()
    calls = []
    x.register_hook(lambda g: calls.append(g))
    torch.autograd.grad((x * x).sum() + (b * b).sum(), [b])
    assert x.grad is None and calls == []
