"""Layers: values against numpy references, gradients, PyTorch's default initialisation,
train/eval behaviour, and the init and utils helpers."""
import math

import numpy as np
import pytest

import tapegrad
import tapegrad.nn as nn
import tapegrad.nn.functional as F
from tapegrad.testing import gradcheck

R = np.random.default_rng(1)


def arr(t):
    return t.detach().numpy()


def t64(a, grad=False):
    return tapegrad.tensor(np.asarray(a, dtype=np.float64), requires_grad=grad)


def test_linear_value_grad_and_default_init():
    tapegrad.manual_seed(0)
    lin = nn.Linear(400, 50)
    bound = 1 / math.sqrt(400)  # kaiming_uniform_(a=sqrt(5)) gives U(-1/sqrt(fan_in), 1/sqrt(fan_in))
    w = arr(lin.weight)
    assert w.shape == (50, 400) and np.abs(w).max() <= bound and np.abs(w).max() > 0.95 * bound
    assert abs(w.std() - bound / math.sqrt(3)) < 0.02 * bound
    assert np.abs(arr(lin.bias)).max() <= bound
    x = R.standard_normal((3, 400)).astype(np.float32)
    np.testing.assert_allclose(arr(lin(tapegrad.tensor(x))), x @ w.T + arr(lin.bias), rtol=1e-4, atol=1e-5)
    small = nn.Linear(3, 2).double()
    xi = t64(R.standard_normal((4, 3)), True)
    gradcheck(lambda a, w_, b_: F.linear(a, w_, b_), (xi, small.weight, small.bias))
    assert nn.Linear(3, 2, bias=False).bias is None
    tapegrad.manual_seed(0)
    again = nn.Linear(400, 50)
    assert np.array_equal(arr(again.weight), w)  # reproducible with manual_seed


def _conv_ref(x, w, b, stride=1, pad=0):
    n, c, h, wd = x.shape
    o, _, kh, kw = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    ho, wo = (h + 2 * pad - kh) // stride + 1, (wd + 2 * pad - kw) // stride + 1
    out = np.zeros((n, o, ho, wo))
    for i in range(ho):
        for j in range(wo):
            patch = xp[:, :, i * stride:i * stride + kh, j * stride:j * stride + kw]
            out[:, :, i, j] = np.tensordot(patch, w, axes=([1, 2, 3], [1, 2, 3]))
    return out + b[None, :, None, None]


def test_conv2d_layer():
    tapegrad.manual_seed(0)
    conv = nn.Conv2d(3, 4, 3, stride=2, padding=1).double()
    bound = 1 / math.sqrt(3 * 9)
    assert conv.weight.shape == (4, 3, 3, 3) and np.abs(arr(conv.weight)).max() <= bound
    x = R.standard_normal((2, 3, 7, 7))
    np.testing.assert_allclose(arr(conv(t64(x))), _conv_ref(x, arr(conv.weight), arr(conv.bias), 2, 1), rtol=1e-10)
    same = nn.Conv2d(2, 2, 3, padding="same")
    assert same(tapegrad.randn(1, 2, 5, 5)).shape == (1, 2, 5, 5)
    grouped = nn.Conv2d(4, 6, 1, groups=2, bias=False)
    assert grouped.weight.shape == (6, 2, 1, 1) and grouped.bias is None
    with pytest.raises(ValueError, match="divisible by groups"):
        nn.Conv2d(3, 4, 3, groups=2)


def test_conv_transpose2d_is_adjoint_of_conv2d():
    tapegrad.manual_seed(0)
    ct = nn.ConvTranspose2d(4, 3, 3, stride=2, padding=1, output_padding=1, bias=False).double()
    assert ct.weight.shape == (4, 3, 3, 3)
    y = t64(R.standard_normal((2, 4, 4, 4)))
    out = ct(y)
    assert out.shape == (2, 3, 8, 8)
    # <conv_transpose(y), x> == <y, conv(x)> with the same weight
    x = R.standard_normal((2, 3, 8, 8))
    lhs = (arr(out) * x).sum()
    rhs = (arr(y) * _conv_ref(x, arr(ct.weight), np.zeros(4), 2, 1)).sum()
    np.testing.assert_allclose(lhs, rhs, rtol=1e-10)
    assert ct(y, output_size=(8, 8)).shape == (2, 3, 8, 8)


def test_pooling_layers():
    x = R.standard_normal((2, 3, 6, 6))
    mp = nn.MaxPool2d(2)(t64(x))
    np.testing.assert_array_equal(arr(mp), x.reshape(2, 3, 3, 2, 3, 2).max((3, 5)))
    ap = nn.AvgPool2d(3)(t64(x))
    np.testing.assert_allclose(arr(ap), x.reshape(2, 3, 2, 3, 2, 3).mean((3, 5)))
    ad = nn.AdaptiveAvgPool2d((1, 2))(t64(x))
    np.testing.assert_allclose(arr(ad), x.reshape(2, 3, 1, 6, 2, 3).mean((3, 5)))
    assert nn.AdaptiveAvgPool2d(1)(t64(x)).shape == (2, 3, 1, 1)


def test_flatten_unflatten_identity():
    x = tapegrad.randn(2, 3, 4, 5)
    assert nn.Flatten()(x).shape == (2, 60)
    assert nn.Flatten(0, 1)(x).shape == (6, 4, 5)
    assert nn.Unflatten(1, (3, 20))(nn.Flatten()(x)).shape == (2, 3, 20)
    assert nn.Identity(54, unused="x")(x) is x


def test_dropout():
    x = tapegrad.ones(200, 100)
    d = nn.Dropout(0.25)
    tapegrad.manual_seed(3)
    y = arr(d(x))
    assert set(np.unique(y)) <= {0.0, np.float32(1 / 0.75)}
    assert abs((y == 0).mean() - 0.25) < 0.02
    tapegrad.manual_seed(3)
    assert np.array_equal(arr(d(x)), y)  # reproducible from the global seed
    d.eval()
    assert d(x) is x
    assert F.dropout(x, 0.5, training=False) is x
    assert np.all(arr(F.dropout(x, 1.0)) == 0)
    xg = tapegrad.ones(4, 5, requires_grad=True)
    out = F.dropout(xg, 0.5)
    out.sum().backward()
    np.testing.assert_array_equal(arr(xg.grad), arr(out))  # gradient is the same mask * scale
    d2 = nn.Dropout2d(0.5)(tapegrad.ones(8, 16, 3, 3))
    per_channel = arr(d2).reshape(8, 16, 9)
    assert np.all(per_channel.min(2) == per_channel.max(2))  # whole channels kept or dropped
    with pytest.raises(ValueError, match="between 0 and 1"):
        nn.Dropout(1.5)


def test_batchnorm2d_train_eval_and_running_stats():
    bn = nn.BatchNorm2d(3, momentum=0.1).double()
    x = R.standard_normal((4, 3, 5, 5)) * 2 + 1
    y = arr(bn(t64(x)))
    mean = x.mean((0, 2, 3), keepdims=True)
    var = x.var((0, 2, 3), keepdims=True)
    np.testing.assert_allclose(y, (x - mean) / np.sqrt(var + 1e-5), rtol=1e-10, atol=1e-12)
    n = 4 * 25
    np.testing.assert_allclose(arr(bn.running_mean), 0.1 * mean.ravel(), rtol=1e-12)
    np.testing.assert_allclose(arr(bn.running_var), 0.9 + 0.1 * var.ravel() * n / (n - 1), rtol=1e-12)
    assert bn.num_batches_tracked.item() == 1
    bn.eval()
    ye = arr(bn(t64(x)))
    np.testing.assert_allclose(ye, (x - arr(bn.running_mean)[None, :, None, None]) /
                               np.sqrt(arr(bn.running_var)[None, :, None, None] + 1e-5), rtol=1e-10)
    assert bn.num_batches_tracked.item() == 1
    # momentum=None: cumulative average
    cma = nn.BatchNorm1d(2, momentum=None).double()
    a, b = R.standard_normal((6, 2)), R.standard_normal((6, 2))
    cma(t64(a))
    cma(t64(b))
    np.testing.assert_allclose(arr(cma.running_mean), (a.mean(0) + b.mean(0)) / 2, rtol=1e-12)
    # no running stats: always batch statistics
    free = nn.BatchNorm1d(2, track_running_stats=False, affine=False).eval()
    assert free.running_mean is None and len(list(free.parameters())) == 0
    np.testing.assert_allclose(arr(free(tapegrad.tensor(a))).mean(0), 0, atol=1e-6)
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        nn.BatchNorm1d(2)(tapegrad.randn(1, 2))
    with pytest.raises(ValueError, match="expected 4D input"):
        nn.BatchNorm2d(2)(tapegrad.randn(3, 2))
    bn3 = nn.BatchNorm1d(3).double()
    xi = t64(R.standard_normal((5, 3, 2)), True)
    gradcheck(lambda u, w, b: F.batch_norm(u, None, None, w, b, training=True), (xi, bn3.weight, bn3.bias))


def test_layernorm():
    ln = nn.LayerNorm((3, 4)).double()
    x = R.standard_normal((2, 3, 4))
    mean = x.mean((1, 2), keepdims=True)
    var = x.var((1, 2), keepdims=True)
    np.testing.assert_allclose(arr(ln(t64(x))), (x - mean) / np.sqrt(var + 1e-5), rtol=1e-10)
    xi = t64(x, True)
    w = t64(R.standard_normal((3, 4)), True)
    gradcheck(lambda u, ww: F.layer_norm(u, (3, 4), ww, None), (xi, w))
    with pytest.raises(RuntimeError, match="normalized_shape"):
        ln(tapegrad.randn(2, 4, 3))


def test_embedding_padding_idx():
    tapegrad.manual_seed(0)
    emb = nn.Embedding(5, 3, padding_idx=0)
    assert np.all(arr(emb.weight)[0] == 0)
    idx = tapegrad.tensor([[0, 2, 2], [4, 0, 1]])
    out = emb(idx)
    np.testing.assert_array_equal(arr(out), arr(emb.weight)[idx.numpy()])
    out.sum().backward()
    g = arr(emb.weight.grad)
    np.testing.assert_array_equal(g[:, 0], [0, 1, 2, 0, 1])  # counts, nothing for padding row 0
    with pytest.raises(IndexError, match="out of range"):
        emb(tapegrad.tensor([5]))
    pre = nn.Embedding.from_pretrained(tapegrad.eye(3))
    assert not pre.weight.requires_grad and arr(pre(tapegrad.tensor([1])))[0, 1] == 1


def test_activation_layers():
    x = np.array([-2.0, -0.5, 0.0, 0.5, 3.0])
    t = t64(x)
    np.testing.assert_allclose(arr(nn.ReLU()(t)), np.maximum(x, 0))
    np.testing.assert_allclose(arr(nn.LeakyReLU(0.1)(t)), np.where(x > 0, x, 0.1 * x))
    np.testing.assert_allclose(arr(nn.ELU()(t)), np.where(x > 0, x, np.expm1(x)))
    from scipy.special import erf
    np.testing.assert_allclose(arr(nn.GELU()(t)), 0.5 * x * (1 + erf(x / math.sqrt(2))), rtol=1e-12)
    np.testing.assert_allclose(arr(nn.Tanh()(t)), np.tanh(x))
    np.testing.assert_allclose(arr(nn.Sigmoid()(t)), 1 / (1 + np.exp(-x)))
    m = t64(R.standard_normal((2, 3)))
    e = np.exp(arr(m))
    np.testing.assert_allclose(arr(nn.Softmax(dim=1)(m)), e / e.sum(1, keepdims=True))
    np.testing.assert_allclose(arr(nn.LogSoftmax(dim=0)(m)), np.log(e / e.sum(0, keepdims=True)))
    assert repr(nn.LeakyReLU(0.2)) == "LeakyReLU(negative_slope=0.2)"


def test_init_functions():
    tapegrad.manual_seed(0)
    w = tapegrad.empty(300, 200)
    nn.init.xavier_uniform_(w)
    a = math.sqrt(6 / 500)
    assert np.abs(arr(w)).max() <= a and abs(arr(w).std() - a / math.sqrt(3)) < 0.02 * a
    nn.init.xavier_normal_(w, gain=2.0)
    assert abs(arr(w).std() - 2 * math.sqrt(2 / 500)) < 0.03
    nn.init.kaiming_normal_(w, mode="fan_out", nonlinearity="relu")
    assert abs(arr(w).std() - math.sqrt(2 / 300)) < 0.003
    nn.init.kaiming_uniform_(w, nonlinearity="relu")
    assert np.abs(arr(w)).max() <= math.sqrt(6 / 200)
    nn.init.constant_(w, 0.5)
    assert np.all(arr(w) == 0.5)
    nn.init.ones_(w)
    nn.init.zeros_(w)
    assert np.all(arr(w) == 0)
    nn.init.normal_(w, 1.0, 0.1)
    assert abs(arr(w).mean() - 1) < 0.01
    nn.init.uniform_(w, -3, -2)
    assert arr(w).min() >= -3 and arr(w).max() <= -2
    assert nn.init.calculate_gain("tanh") == 5 / 3
    assert nn.init.calculate_gain("leaky_relu", math.sqrt(5)) == math.sqrt(2 / 6)
    p = nn.Parameter(tapegrad.zeros(3, 3))
    nn.init.normal_(p)  # in place on a leaf that requires grad, without complaint and without tape
    assert p.grad_fn is None and p.requires_grad


def test_clip_grad_and_vectors():
    a = nn.Parameter(tapegrad.zeros(3))
    b = nn.Parameter(tapegrad.zeros(2))
    a.grad = tapegrad.tensor([3.0, 0.0, 0.0])
    b.grad = tapegrad.tensor([0.0, 4.0])
    total = nn.utils.clip_grad_norm_([a, b], max_norm=1.0)
    assert math.isclose(total.item(), 5.0, rel_tol=1e-6)
    np.testing.assert_allclose(arr(a.grad), [3 / (5 + 1e-6), 0, 0], rtol=1e-6)
    total = nn.utils.clip_grad_norm_([a, b], max_norm=10.0, norm_type="inf")
    assert math.isclose(total.item(), 0.8, rel_tol=1e-5)
    b.grad = tapegrad.tensor([float("nan"), 1.0])
    with pytest.raises(RuntimeError, match="non-finite"):
        nn.utils.clip_grad_norm_([a, b], 1.0, error_if_nonfinite=True)
    b.grad = tapegrad.tensor([-5.0, 0.1])
    nn.utils.clip_grad_value_([a, b], 0.5)
    np.testing.assert_allclose(arr(b.grad), [-0.5, 0.1], rtol=1e-6)
    lin = nn.Linear(3, 2)
    vec = nn.utils.parameters_to_vector(lin.parameters())
    assert vec.shape == (8,)
    np.testing.assert_array_equal(arr(vec)[:6], arr(lin.weight).ravel())
    nn.utils.vector_to_parameters(tapegrad.arange(8.0), lin.parameters())
    np.testing.assert_array_equal(arr(lin.bias), [6.0, 7.0])


def test_layer_norm_weight_and_bias_gradients_from_one_pass_over_repeated_backwards():
    """The weight's VJP computes the bias's gradient in the same pass and hands it over; with
    retain_graph, a second backward (another upstream gradient), or a bias alone requiring grad,
    every gradient is still its own pass's, as the composite formulas give."""
    rng = np.random.default_rng(5)
    x = tapegrad.tensor(rng.standard_normal((6, 5)), requires_grad=True)
    w = tapegrad.tensor(rng.standard_normal(5), requires_grad=True)
    b = tapegrad.tensor(rng.standard_normal(5), requires_grad=True)
    y = F.layer_norm(x, (5,), w, b)
    xhat = (x._data - x._data.mean(1, keepdims=True)) / np.sqrt(x._data.var(1, keepdims=True) + 1e-5)
    for seed in (1, 2):
        g = rng.standard_normal((6, 5))
        w.grad = b.grad = None
        y.backward(tapegrad.tensor(g), retain_graph=True)
        np.testing.assert_allclose(w.grad._data, (g * xhat).sum(0), rtol=1e-12)
        np.testing.assert_allclose(b.grad._data, g.sum(0), rtol=1e-12)
    w.requires_grad_(False)
    b.grad = None
    g = rng.standard_normal((6, 5))
    F.layer_norm(x, (5,), w, b).backward(tapegrad.tensor(g))
    np.testing.assert_allclose(b.grad._data, g.sum(0), rtol=1e-12)


@pytest.mark.parametrize("call, message", [
    (lambda: F.pad(tapegrad.ones(3), (-5, 0)), r"pad: the input size 3 of dim 0 .* negative output size"),
    (lambda: F.pad(tapegrad.ones(2, 3), (-2, -2)), r"pad: the input size 3 of dim 1"),
    (lambda: F.interpolate(tapegrad.ones(1, 1, 3), size=0), r"interpolate: input and output sizes should be "),
    (lambda: F.interpolate(tapegrad.ones(1, 1, 3), scale_factor=0.2), r"interpolate: input and output sizes"),
    (lambda: F.interpolate(tapegrad.ones(1, 1, 3), scale_factor=-1.0), r"interpolate: scale_factor -1.0"),
    (lambda: F.interpolate(tapegrad.ones(1, 1, 3), scale_factor=float("nan")), r"interpolate: scale_factor nan"),
    (lambda: F.interpolate(tapegrad.ones(1, 1, 3, 3), scale_factor=float("inf")), r"interpolate: scale_factor inf"),
    (lambda: F.binary_cross_entropy(tapegrad.tensor([0.5]), tapegrad.tensor([2.0])),
     r"binary_cross_entropy: all elements of target should be between 0 and 1 \(got 2"),
    (lambda: F.batch_norm(tapegrad.ones(2, 3), tapegrad.ones(4), tapegrad.ones(4)),
     r"batch_norm: running_mean should contain 3 elements .* not 4"),
    (lambda: F.batch_norm(tapegrad.ones(2, 3), None, None, weight=tapegrad.ones(2), training=True),
     r"batch_norm: weight should contain 3 elements"),
])
def test_bad_arguments_raise_naming_the_op(call, message):
    """Each used to return a silent wrong answer (a crop past the edge gave an empty tensor, a
    negative scale an empty output, an out-of-range BCE target a finite loss) or raise a bare
    ZeroDivisionError / OverflowError / reshape error: PyTorch raises RuntimeError for all."""
    with pytest.raises(RuntimeError, match=message):
        call()


@pytest.mark.parametrize("call, error, message", [
    (lambda: tapegrad.cdist(tapegrad.ones(2, 3), tapegrad.zeros(2, 3), p=-1), RuntimeError, "cdist only supports non-negative p"),
    (lambda: F.celu(tapegrad.ones(3), alpha=0), RuntimeError, "celu: .*alpha cannot be 0"),
    (lambda: F.instance_norm(tapegrad.ones(1, 3, 1)), ValueError, "instance_norm: Expected more than 1 spatial element"),
    (lambda: F.rrelu(tapegrad.ones(3), 0.5, 0.1, training=True), RuntimeError, "rrelu: lower bound"),
    (lambda: F.pixel_shuffle(tapegrad.ones(1, 4, 2, 2), 0), RuntimeError, "pixel_shuffle expects a positive integer"),
    (lambda: nn.PixelShuffle(-2)(tapegrad.ones(1, 4, 2, 2)), RuntimeError, "pixel_shuffle expects a positive integer"),
    (lambda: F.pixel_unshuffle(tapegrad.ones(1, 1, 4, 4), 0), RuntimeError, "pixel_unshuffle expects a positive"),
    (lambda: F.unflatten(tapegrad.zeros(2, 12), 5, (3, 4)), IndexError, "unflatten: dim 5 is out of range"),
    (lambda: nn.Unflatten(1, (2, 2))(tapegrad.ones(2, 3)), RuntimeError, r"unflatten: Provided sizes \[2, 2\]"),
])
def test_degenerate_parameters_raise_instead_of_returning_garbage(call, error, message):
    """cdist(p=-1) returned zeros, celu(alpha=0) NaNs, instance_norm over one element zeros,
    F.unflatten wrapped dim 5 to dim 1; pixel_shuffle(0) raised ZeroDivisionError."""
    with pytest.raises(error, match=message):
        call()


def test_threshold_with_a_nan_threshold_keeps_the_input_as_pytorch():
    """PyTorch replaces where ``x <= threshold``: a NaN threshold replaces nothing."""
    x = tapegrad.tensor([1.0, -2.0, float("nan")])
    assert F.threshold(x, float("nan"), 0.0).tolist()[:2] == [1.0, -2.0]
    assert F.threshold(x, 0.0, 9.0).tolist()[:2] == [1.0, 9.0] and math.isnan(F.threshold(x, 0.0, 9.0)[2].item())
