"""tapegrad.nn.grad (torch.nn.grad): convNd_input/convNd_weight equal the gradients autograd gives
through convNd, are differentiable again (gradcheck, gradgradcheck), check their arguments with
PyTorch's exception classes, and match torch.nn.grad where torch is installed."""
from __future__ import annotations

import numpy as np
import pytest

import tapegrad as tg
import tapegrad.nn.functional as F
from tapegrad.autograd import gradcheck, gradgradcheck
from tapegrad.nn import grad as G

CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
INPUT = {1: G.conv1d_input, 2: G.conv2d_input, 3: G.conv3d_input}
WEIGHT = {1: G.conv1d_weight, 2: G.conv2d_weight, 3: G.conv3d_weight}

# (nd, input shape, weight shape, geometry)
CASES = [
    (1, (2, 4, 9), (6, 2, 3), dict(stride=2, padding=1, dilation=1, groups=2)),
    (1, (1, 3, 7), (2, 3, 2), dict(stride=1, padding=0, dilation=2, groups=1)),
    (2, (2, 4, 7, 6), (6, 2, 3, 3), dict(stride=2, padding=1, dilation=1, groups=2)),
    (2, (1, 3, 5, 8), (2, 3, 2, 3), dict(stride=(1, 3), padding=(0, 2), dilation=(2, 1), groups=1)),
    (3, (1, 2, 4, 5, 5), (4, 2, 2, 3, 3), dict(stride=(1, 2, 2), padding=1, dilation=1, groups=1)),
]


def _data(nd, xs, ws, geo, dtype=np.float64, seed=0):
    rng = np.random.default_rng(seed)
    x = tg.tensor(rng.standard_normal(xs).astype(dtype), requires_grad=True)
    w = tg.tensor(rng.standard_normal(ws).astype(dtype), requires_grad=True)
    y = CONV[nd](x, w, **geo)
    gy = tg.tensor(rng.standard_normal(tuple(y.shape)).astype(dtype), requires_grad=True)
    return x, w, y, gy


@pytest.mark.parametrize("nd, xs, ws, geo", CASES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_equals_autograd_through_the_convolution(nd, xs, ws, geo, dtype):
    x, w, y, gy = _data(nd, xs, ws, geo, dtype)
    gx_ref, gw_ref = tg.autograd.grad(y, (x, w), gy.detach())
    gx = INPUT[nd](x.shape, w.detach(), gy.detach(), **geo)
    gw = WEIGHT[nd](x.detach(), w.shape, gy.detach(), **geo)
    assert gx.shape == x.shape and gw.shape == w.shape and gx.dtype == dtype
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(gx.numpy(), gx_ref.numpy(), rtol=tol, atol=tol)
    np.testing.assert_allclose(gw.numpy(), gw_ref.numpy(), rtol=tol, atol=tol)


def test_input_size_beyond_the_reach_of_a_strided_convolution():
    # stride 2 over 8 columns reads 7 of them: the 8th gets zero gradient
    x, w, y, gy = _data(2, (1, 2, 8, 8), (3, 2, 3, 3), dict(stride=2))
    gx = G.conv2d_input([1, 2, 8, 8], w.detach(), gy.detach(), stride=2)
    ref = tg.autograd.grad(y, x, gy.detach())[0]
    np.testing.assert_allclose(gx.numpy(), ref.numpy(), atol=1e-12)
    assert not gx.numpy()[..., -1, :].any() and not gx.numpy()[..., :, -1].any()


@pytest.mark.parametrize("nd, xs, ws, geo", [c for c in CASES if c[0] < 3])
def test_gradcheck_and_gradgradcheck(nd, xs, ws, geo):
    x, w, _, gy = _data(nd, xs, ws, geo)
    assert gradcheck(lambda w_, gy_: INPUT[nd](xs, w_, gy_, **geo), (w, gy))
    assert gradcheck(lambda x_, gy_: WEIGHT[nd](x_, ws, gy_, **geo), (x, gy))
    assert gradgradcheck(lambda x_, gy_: WEIGHT[nd](x_, ws, gy_, **geo) ** 2, (x, gy))
    # double backward of a convolution reaches nn.grad's primitives with create_graph
    (gw,) = tg.autograd.grad(INPUT[nd](xs, w, gy, **geo).sum(), w, create_graph=True)
    assert gw.requires_grad


def test_grad_of_conv3d_by_gradcheck():
    nd, xs, ws, geo = CASES[-1]
    x, w, _, gy = _data(nd, (1, 2, 3, 4, 4), (2, 2, 2, 2, 2), dict(stride=1, padding=1))
    assert gradcheck(lambda w_, gy_: INPUT[3]((1, 2, 3, 4, 4), w_, gy_, padding=1), (w, gy))


def test_no_graph_without_requires_grad():
    x, w, _, gy = _data(2, (1, 2, 5, 5), (2, 2, 3, 3), {})
    gx = G.conv2d_input(x.shape, w.detach(), gy.detach())
    assert not gx.requires_grad and gx.grad_fn is None


def test_bad_arguments():
    x, w, y, gy = _data(2, (2, 4, 7, 7), (6, 2, 3, 3), dict(stride=2, padding=1, groups=2))
    w, gy, x = w.detach(), gy.detach(), x.detach()
    geo = dict(stride=2, padding=1, groups=2)
    with pytest.raises(RuntimeError, match=r"conv2d_input: expected grad_output of shape \[2, 6, 5, 5\]"):
        G.conv2d_input((2, 4, 9, 9), w, gy, **geo)
    with pytest.raises(RuntimeError, match=r"conv2d_input: given groups=2, weight of size \[6, 2, 3, 3\], expected "
                                           r"input \[2, 5, 7, 7\] to have 4 channels"):
        G.conv2d_input((2, 5, 7, 7), w, gy, **geo)
    with pytest.raises(RuntimeError, match=r"conv2d_input: expected input_size of 4 dims"):
        G.conv2d_input((4, 7, 7), w, gy[0], **geo)
    with pytest.raises(RuntimeError, match="conv2d_input: expected grad_output and weight of one dtype, got "
                                           "tapegrad.float64 and tapegrad.float32"):
        G.conv2d_input(x.shape, w.float(), gy, **geo)
    with pytest.raises(RuntimeError, match=r"conv2d_input: expected grad_output of shape \[3, 6, 4, 4\]"):
        G.conv2d_input((3, 4, 7, 7), w, gy, **geo)       # PyTorch returns garbage of batch 3 here
    with pytest.raises(RuntimeError, match=r"conv2d_weight: given groups=2, expected weight to be divisible by 2 at "
                                           r"dimension 0, but got weight of size \[5, 2, 3, 3\]"):
        G.conv2d_weight(x, (5, 2, 3, 3), gy, **geo)
    with pytest.raises(RuntimeError, match="conv2d_weight: stride must be positive, got"):
        G.conv2d_weight(x, w.shape, gy, stride=0, padding=1, groups=2)
    with pytest.raises(RuntimeError, match="conv2d_weight: expected input with 4 dims"):
        G.conv2d_weight(x[0], w.shape, gy, **geo)
    with pytest.raises(TypeError, match="conv2d_weight: weight_size must be a sequence of 4 ints"):
        G.conv2d_weight(x, w, gy, **geo)
    with pytest.raises(TypeError, match="conv1d_input: expected weight to be a Tensor, got ndarray"):
        G.conv1d_input((1, 2, 5), np.ones((1, 2, 3)), tg.ones(1, 1, 3))
    with pytest.raises(RuntimeError, match="conv3d_weight: only float32, float64, float16 and bfloat16"):
        G.conv3d_weight(tg.ones(1, 1, 3, 3, 3, dtype=tg.int64), (1, 1, 1, 1, 1), tg.ones(1, 1, 3, 3, 3, dtype=tg.int64))


def test_functional_grad_is_the_module():
    assert F.grad is G


@pytest.mark.parametrize("nd, xs, ws, geo", CASES)
def test_against_torch(nd, xs, ws, geo):
    torch = pytest.importorskip("torch")
    import torch.nn.grad as TG
    x, w, _, gy = _data(nd, xs, ws, geo)
    tx, tw, tgy = (torch.tensor(t.detach().numpy()) for t in (x, w, gy))
    np.testing.assert_allclose(INPUT[nd](xs, w.detach(), gy.detach(), **geo).numpy(),
                               getattr(TG, f"conv{nd}d_input")(xs, tw, tgy, **geo).numpy(), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(WEIGHT[nd](x.detach(), ws, gy.detach(), **geo).numpy(),
                               getattr(TG, f"conv{nd}d_weight")(tx, ws, tgy, **geo).numpy(), rtol=1e-10, atol=1e-10)
    # the same error class for a shape mismatch
    bad = (xs[0], xs[1] + 1) + xs[2:]
    with pytest.raises(RuntimeError):
        getattr(TG, f"conv{nd}d_input")(bad, tw, tgy, **geo)
    with pytest.raises(RuntimeError):
        INPUT[nd](bad, w.detach(), gy.detach(), **geo)
