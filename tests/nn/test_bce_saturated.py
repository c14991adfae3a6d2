"""binary_cross_entropy at saturated probabilities: PyTorch's clamped logs and 1e-12 denominators
(the plain formula gives nan and 1e30 gradients, and training diverges from PyTorch's)."""
import numpy as np

import tapegrad
import tapegrad.nn.functional as F


def test_saturated_loss_and_gradient_are_pytorchs():
    x = tapegrad.tensor([0.0, 1.0, 1e-30, 0.5], dtype=tapegrad.float64, requires_grad=True)
    y = tapegrad.tensor([1.0, 0.0, 1.0, 1.0], dtype=tapegrad.float64)
    loss = F.binary_cross_entropy(x, y, reduction="none")
    np.testing.assert_allclose(loss.detach().numpy(), [100, 100, 69.07755278982137, np.log(2)], rtol=1e-12)
    (g,) = tapegrad.autograd.grad(loss.sum(), x, create_graph=True)
    np.testing.assert_allclose(g.detach().numpy(), [-1e12, 1e12, -1e12, -2], rtol=1e-8)
    (gg,) = tapegrad.autograd.grad(g.sum(), x)
    np.testing.assert_allclose(gg.numpy(), [1e24, 1e24, 1e24, 4], rtol=1e-8)


def test_module_float32_gradient_is_finite():
    x = tapegrad.tensor([0.0, 1.0, 1e-7], requires_grad=True)
    tapegrad.nn.BCELoss()(x, tapegrad.tensor([1.0, 0.0, 0.0])).backward()
    assert np.isfinite(x.grad.numpy()).all()
