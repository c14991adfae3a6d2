"""Numerical differences the library sweep of session 29 found (timm's MobileNetV3, diffusers'
DDPM schedule), each pinned against PyTorch."""
import numpy as np
import pytest

import tapegrad as tg


@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16", "float64"])
@pytest.mark.parametrize("dim", [0, 1])
def test_cumprod_accumulates_as_pytorch(dtype, dim):
    """PyTorch's CPU cumprod runs in acc_type (float32 in double, 16-bit floats in float32), each
    output rounded once: the same bits, where a float32 running product drifted by ulps (diffusers'
    ``alphas_cumprod = torch.cumprod(1 - betas, 0)``)."""
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(0).random((6, 300)) + 0.5
    want = torch.cumprod(torch.tensor(x).to(getattr(torch, dtype)), dim).double().numpy()
    got = tg.cumprod(tg.tensor(x).to(getattr(tg, dtype)), dim)
    assert str(got.dtype).split(".")[-1] == dtype
    np.testing.assert_array_equal(got.double().numpy(), want)


def test_cumprod_of_a_ddpm_schedule_matches_bit_for_bit():
    torch = pytest.importorskip("torch")
    betas = np.linspace(1e-4, 0.02, 1000).astype(np.float32)  # the same float32 betas on both sides
    want = torch.cumprod(1.0 - torch.from_numpy(betas), dim=0).numpy()
    np.testing.assert_array_equal(tg.cumprod(1.0 - tg.tensor(betas), dim=0).numpy(), want)


def test_cumprod_float32_gradient_still_matches():
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(1).random(50).astype(np.float32) + 0.5
    a, b = torch.tensor(x, requires_grad=True), tg.tensor(x, requires_grad=True)
    torch.cumprod(a, 0).sum().backward()
    tg.cumprod(b, 0).sum().backward()
    np.testing.assert_allclose(b.grad.numpy(), a.grad.numpy(), rtol=2e-6)


def test_hardsigmoid_float64_gradient_is_exactly_one_sixth():
    """PyTorch's float64 hardsigmoid backward multiplies by a float32 1/6 (0.16666667163...), a
    relative error of 5e-8 that showed up in timm's MobileNetV3 gradients; tapegrad's is 1/6 in
    the input's precision."""
    torch = pytest.importorskip("torch")
    x = np.array([-2.5, -0.3, 0.5029208843735732, 2.9])
    b = tg.tensor(x, requires_grad=True)
    tg.nn.functional.hardsigmoid(b).backward(tg.full((4,), 1.7, dtype=tg.float64))
    assert b.grad.tolist() == [1.7 / 6] * 4
    a = torch.tensor(x, requires_grad=True)
    torch.nn.functional.hardsigmoid(a).backward(torch.full((4,), 1.7, dtype=torch.float64))
    assert a.grad.tolist() == [1.7 * float(np.float32(1 / 6))] * 4  # PyTorch's trap, as found
    assert tg.autograd.gradcheck(tg.nn.functional.hardsigmoid, (tg.tensor(x, requires_grad=True),))
