"""tapegrad.autograd.Function: custom ops written as PyTorch users write them."""
import gc
import weakref

import numpy as np
import pytest

import tapegrad as tg
from tapegrad.autograd import Function
from tapegrad.testing import gradcheck, gradgradcheck


class Exp(Function):
    @staticmethod
    def forward(ctx, x):
        y = x.exp()
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, grad):
        (y,) = ctx.saved_tensors
        return grad * y


class ScaledMul(Function):
    """x * y * scale, with a non-tensor argument."""

    @staticmethod
    def forward(ctx, x, y, scale):
        ctx.save_for_backward(x, y)
        ctx.scale = scale
        return x * y * scale

    @staticmethod
    def backward(ctx, grad):
        x, y = ctx.saved_tensors
        gx = grad * y * ctx.scale if ctx.needs_input_grad[0] else None
        gy = grad * x * ctx.scale if ctx.needs_input_grad[1] else None
        return gx, gy, None


class SplitSquares(Function):
    """Two outputs: x^2 and x^3."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * x, x * x * x

    @staticmethod
    def backward(ctx, g2, g3):
        (x,) = ctx.saved_tensors
        return g2 * 2 * x + g3 * 3 * x * x


def f64(*shape):
    return tg.randn(*shape, dtype=tg.float64, requires_grad=True)


def test_exp_forward_backward_and_recorded_on_the_tape():
    x = f64(4)
    y = Exp.apply(x)
    assert y.grad_fn is not None and y.grad_fn.name() == "ExpBackward0"
    (y * 2).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), 2 * np.exp(x.detach().numpy()))
    assert gradcheck(Exp.apply, (f64(3),))


def test_double_backward_through_saved_output():
    assert gradgradcheck(Exp.apply, (f64(3),))


def test_non_tensor_args_and_needs_input_grad():
    x, y = f64(3), tg.randn(3, dtype=tg.float64)
    out = ScaledMul.apply(x, y, 2.5)
    out.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), 2.5 * y.numpy())
    assert gradcheck(lambda a, b: ScaledMul.apply(a, b, 0.5), (f64(2, 3), f64(2, 3)))


def test_broadcast_gradients_fit_input_shapes():
    x, y = f64(3, 1), f64(4)
    ScaledMul.apply(x, y, 1.0).sum().backward()
    assert x.grad.shape == (3, 1) and y.grad.shape == (4,)


def test_multiple_outputs():
    x = f64(3)
    a, b = SplitSquares.apply(x)
    (a.sum() + 2 * b.sum()).backward()
    xn = x.detach().numpy()
    np.testing.assert_allclose(x.grad.numpy(), 2 * xn + 6 * xn ** 2)


def test_no_node_without_grad():
    x = tg.randn(3, dtype=tg.float64)
    assert Exp.apply(x).grad_fn is None
    with tg.no_grad():
        assert Exp.apply(f64(3)).grad_fn is None


def test_freed_graph_and_in_place_checks():
    x = f64(3)
    y = Exp.apply(x).sum()
    y.backward()
    with pytest.raises(RuntimeError, match="retain_graph"):
        y.backward()
    x2 = f64(3)
    h = x2 * 1.0
    out = ScaledMul.apply(h, h, 1.0).sum()
    with tg.no_grad():
        h.add_(1.0)
    with pytest.raises(RuntimeError, match="in-place"):
        out.backward()


def test_wrong_number_of_gradients():
    class Bad(Function):
        @staticmethod
        def forward(ctx, x, k):
            return x * k

        @staticmethod
        def backward(ctx, g):
            return g

    with pytest.raises(RuntimeError, match="incorrect number of gradients"):
        Bad.apply(f64(2), 3.0).sum().backward()


def test_forward_returning_its_input_does_not_touch_it():
    class Identity(Function):
        @staticmethod
        def forward(ctx, x):
            return x

        @staticmethod
        def backward(ctx, g):
            return g * 3

    x = f64(2)
    y = Identity.apply(x)
    assert x.is_leaf and y is not x
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [3.0, 3.0])


def test_no_reference_cycles():
    gc.collect()
    gc.disable()
    try:
        x = f64(3)
        y = Exp.apply(x)
        r = weakref.ref(y.grad_fn)
        y.sum().backward()
        del y
        assert r() is None
    finally:
        gc.enable()


class _Cube(Function):
    """The "Extending PyTorch" example: forward without ctx, setup_context saving an output."""

    @staticmethod
    def forward(x):
        return x ** 3, 3 * x ** 2

    @staticmethod
    def setup_context(ctx, inputs, output):
        (x,), (_, dx) = inputs, output
        ctx.save_for_backward(x, dx)

    @staticmethod
    def backward(ctx, grad_output, grad_dx):
        x, dx = ctx.saved_tensors
        return grad_output * dx + grad_dx * 6 * x


def test_setup_context_form_and_double_backward_through_another_saved_output():
    x = tg.tensor([0.5, -1.0, 2.0], dtype=tg.float64, requires_grad=True)
    y, dx = _Cube.apply(x)
    assert y.tolist() == [0.125, -1.0, 8.0] and dx.requires_grad
    cube = lambda t: _Cube.apply(t)[0]  # noqa: E731  (dx dropped: its node lives on through ctx)
    g, = tg.autograd.grad(cube(x).sum(), x, create_graph=True)
    np.testing.assert_allclose(g.detach().numpy(), 3 * x.detach().numpy() ** 2)
    g2, = tg.autograd.grad(g.sum(), x)
    np.testing.assert_allclose(g2.numpy(), 6 * x.detach().numpy())  # was 0: saved dx had no graph
    assert gradgradcheck(cube, (x,))


def test_once_differentiable_backward_runs_without_recording():
    from tapegrad.autograd.function import once_differentiable
    seen = []

    class Double(Function):
        @staticmethod
        def forward(ctx, x):
            return x * 2

        @staticmethod
        @once_differentiable
        def backward(ctx, g):
            seen.append(tg.is_grad_enabled())
            return g * 2

    x = tg.ones(2, requires_grad=True)
    g, = tg.autograd.grad(Double.apply(x).sum(), x, create_graph=True)
    assert g.tolist() == [2.0, 2.0] and seen == [False] and not g.requires_grad
    assert Double.backward.__name__ == "backward"
