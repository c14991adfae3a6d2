"""``autograd.grad``'s whole PyTorch signature: only_inputs, allow_unused, materialize_grads,
is_grads_batched (with create_graph), checked against PyTorch when it is installed."""
import warnings

import numpy as np
import pytest

import tapegrad
from tapegrad.autograd import grad


def test_only_inputs_is_accepted_and_false_warns():
    x = tapegrad.tensor([1.0, 2.0], requires_grad=True)
    y = (x ** 2).sum()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        (g,) = grad(y, x, retain_graph=True, only_inputs=True)
    np.testing.assert_allclose(g.numpy(), [2, 4])
    with pytest.warns(FutureWarning, match="only_inputs argument is deprecated"):
        (g,) = grad(y, x, only_inputs=False)
    np.testing.assert_allclose(g.numpy(), [2, 4])


def test_materialize_grads_implies_allow_unused():
    x = tapegrad.tensor([1.0, 2.0], requires_grad=True)
    u = tapegrad.ones(3, requires_grad=True)
    z = x * 2
    gx, gu = grad(z, [x, u], tapegrad.ones(2), retain_graph=True, materialize_grads=True)
    np.testing.assert_allclose(gu.numpy(), np.zeros(3))
    with pytest.raises(ValueError, match="allow_unused to be True or not passed"):
        grad(z, [x, u], tapegrad.ones(2), retain_graph=True, materialize_grads=True, allow_unused=False)
    with pytest.raises(RuntimeError, match="index 1 appears to not have been used"):
        grad(z, [x, u], tapegrad.ones(2), retain_graph=True)
    assert grad(z, [x, u], tapegrad.ones(2), allow_unused=True)[1] is None


def test_is_grads_batched_is_a_batch_of_vjps():
    x = tapegrad.tensor([1.0, 2.0, 3.0], requires_grad=True)
    u = tapegrad.ones(2, requires_grad=True)
    y = x ** 3
    v = tapegrad.tensor(np.random.default_rng(0).standard_normal((4, 3)))
    (jac_rows, unused) = grad(y, [x, u], v, retain_graph=True, is_grads_batched=True, allow_unused=True)
    np.testing.assert_allclose(jac_rows.numpy(), v.numpy() * 3 * x.detach().numpy() ** 2)
    assert unused is None
    (_, zeros) = grad(y, [x, u], v, retain_graph=True, is_grads_batched=True, materialize_grads=True)
    assert zeros.shape == (4, 2)
    with pytest.raises(RuntimeError, match=r"grad_output\[0\] has a shape of \[2\] and output\[0\] has a shape of \[3\]"):
        grad(y, x, tapegrad.ones(4, 2), retain_graph=True, is_grads_batched=True)
    with pytest.raises(RuntimeError, match="needs grad_outputs"):
        grad(y.sum(), x, is_grads_batched=True)


def test_is_grads_batched_with_create_graph_differentiates_the_batch():
    x = tapegrad.tensor([1.0, 2.0], requires_grad=True)
    (h,) = grad(x ** 3, x, tapegrad.eye(2), create_graph=True, is_grads_batched=True)  # diag(3 x^2)
    np.testing.assert_allclose(h.detach().numpy(), np.diag([3.0, 12.0]))
    (g2,) = grad(h.sum(), x)
    np.testing.assert_allclose(g2.numpy(), [6.0, 12.0])


def test_matches_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    a, v = rng.standard_normal((3,)), rng.standard_normal((5, 3))
    res = {}
    for M in (tapegrad, torch):
        x = M.tensor(a, requires_grad=True)
        y = M.sin(x) * x
        (g,) = M.autograd.grad(y, x, M.tensor(v), create_graph=True, is_grads_batched=True)
        (gg,) = M.autograd.grad((g ** 2).sum(), x)
        res[M] = (g.detach().numpy(), gg.numpy())
    for ours, theirs in zip(res[tapegrad], res[torch]):
        np.testing.assert_allclose(ours, theirs, rtol=1e-12)
