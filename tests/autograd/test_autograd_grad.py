"""tapegrad.autograd.grad: retain_graph, create_graph, allow_unused, grad_outputs, higher order."""
import numpy as np
import pytest

import tapegrad as tg
from tapegrad import autograd


def f64(values, requires_grad=True):
    return tg.tensor(values, dtype=tg.float64, requires_grad=requires_grad)


def test_grad_returns_tuple_and_leaves_dot_grad_alone():
    x = f64([1.0, 2.0])
    (g,) = autograd.grad((x ** 2).sum(), x)
    np.testing.assert_allclose(g.numpy(), [2.0, 4.0])
    assert x.grad is None


def test_grad_of_non_leaf_input():
    x = f64([1.0, 2.0])
    h = x * 3
    (gh,) = autograd.grad((h * h).sum(), h)
    np.testing.assert_allclose(gh.numpy(), 2 * 3 * np.array([1.0, 2.0]))


def test_retain_graph():
    x = f64([1.0, 2.0])
    y = (x.exp()).sum()
    autograd.grad(y, x, retain_graph=True)
    autograd.grad(y, x)
    with pytest.raises(RuntimeError, match="retain_graph"):
        autograd.grad(y, x)


def test_create_graph_second_derivative():
    x = tg.tensor(3.0, dtype=tg.float64, requires_grad=True)
    (g,) = autograd.grad(x ** 3, x, create_graph=True)
    assert g.item() == pytest.approx(27.0) and g.requires_grad
    (gg,) = autograd.grad(g, x)
    assert gg.item() == pytest.approx(18.0)


def test_allow_unused():
    x, z = f64([1.0]), f64([2.0])
    y = (x * 2).sum()
    with pytest.raises(RuntimeError, match="allow_unused"):
        autograd.grad(y, [x, z], retain_graph=True)
    gx, gz = autograd.grad(y, [x, z], allow_unused=True, retain_graph=True)
    assert gz is None and gx.item() == 2.0
    gx, gz = autograd.grad(y, [x, z], materialize_grads=True)
    assert gz.item() == 0.0


def test_grad_outputs_vector_jacobian_product():
    x = f64([1.0, 2.0, 3.0])
    y = x * x
    v = tg.tensor([1.0, 0.5, -1.0], dtype=tg.float64)
    (g,) = autograd.grad(y, x, grad_outputs=v)
    np.testing.assert_allclose(g.numpy(), 2 * x.detach().numpy() * v.numpy())
    with pytest.raises(RuntimeError, match="shape"):
        autograd.grad(x * x, x, grad_outputs=tg.ones(2, dtype=tg.float64))


def test_hessian_vector_product():
    # f(x) = sum(x^3) -> H = diag(6x); Hv = 6 x v
    x = f64([1.0, -2.0, 0.5])
    v = tg.tensor([1.0, 2.0, 3.0], dtype=tg.float64)
    (g,) = autograd.grad((x ** 3).sum(), x, create_graph=True)
    (hv,) = autograd.grad((g * v).sum(), x)
    np.testing.assert_allclose(hv.numpy(), 6 * x.detach().numpy() * v.numpy())


def test_gradient_penalty():
    # WGAN-GP style: penalty = (||d f/d x|| - 1)^2, backpropagated into the weights
    w = f64([0.5, -1.5])
    x = f64([1.0, 2.0])
    out = (w * x * x).sum()
    (gx,) = autograd.grad(out, x, create_graph=True)  # 2 w x
    penalty = ((gx * gx).sum().sqrt() - 1) ** 2
    penalty.backward()
    wn, xn = w.detach().numpy(), x.detach().numpy()
    gxn = 2 * wn * xn
    norm = np.sqrt((gxn ** 2).sum())
    expected_w = 2 * (norm - 1) * (gxn / norm) * 2 * xn
    np.testing.assert_allclose(w.grad.numpy(), expected_w, rtol=1e-10)


def test_grad_requires_inputs_that_require_grad():
    x = f64([1.0])
    with pytest.raises(RuntimeError, match="does not require grad"):
        autograd.grad((x * 2).sum(), tg.tensor([1.0]))


def test_double_backward_through_create_graph_accumulates():
    x = tg.tensor(2.0, dtype=tg.float64, requires_grad=True)
    y = x ** 4
    y.backward(create_graph=True)  # x.grad = 4x^3 = 32, differentiable
    assert x.grad.requires_grad
    g = x.grad
    x.grad = None
    g.backward()  # 12 x^2 = 48
    assert x.grad.item() == pytest.approx(48.0)


@pytest.mark.parametrize("how", ["grad", "backward_inputs"])
def test_only_the_branches_that_reach_an_input_run(how):
    # PyTorch runs only the nodes from which an input is reachable (init_to_execute): the other
    # branch's hooks don't run and its retained .grad stays None
    a = tg.tensor([1.0, 2.0], dtype=tg.float64, requires_grad=True)
    b = tg.tensor([3.0], dtype=tg.float64, requires_grad=True)
    x = a * 2
    x.retain_grad()
    calls = []
    x.register_hook(lambda g: calls.append(g))
    loss = (x * x).sum() + (b * b).sum()
    if how == "grad":
        (gb,) = tg.autograd.grad(loss, [b])
    else:
        loss.backward(inputs=[b])
        gb = b.grad
        assert a.grad is None
    np.testing.assert_allclose(gb.numpy(), [6.0])
    assert x.grad is None and calls == []


def test_a_branch_reaching_an_input_through_a_shared_node_still_runs():
    a = tg.tensor([1.0, 2.0], dtype=tg.float64, requires_grad=True)
    h = a * 3
    left, right = h * 2, h.exp()
    seen = []
    h.register_hook(lambda g: seen.append(g))
    (ga,) = tg.autograd.grad(left.sum() + right.sum(), [a])
    np.testing.assert_allclose(ga.numpy(), 3 * (2 + np.exp(3 * np.array([1.0, 2.0]))))
    assert len(seen) == 1
