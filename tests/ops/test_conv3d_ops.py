"""3-D convolution and pooling ops and layers: values and gradients against PyTorch (float32 and
float64, odd sizes, groups, dilation, stride, strided inputs), gradients and second derivatives
against finite differences in float64, argument errors, and PyTorch's layer init and state_dict.

The kernels are checked in tests/csrc/test_conv3d.py and test_pool3d.py; here the ops around them.
"""
import numpy as np
import pytest

import tapegrad
import tapegrad.nn as nn
import tapegrad.nn.functional as F
from tapegrad.testing import gradcheck, gradgradcheck

RNG = np.random.default_rng(11)


def leaf(a):
    return tapegrad.tensor(np.ascontiguousarray(a), requires_grad=True)


def distinct(*shape):
    """Values at least 0.1 apart: max pooling's argmax survives finite differences."""
    return RNG.permutation(int(np.prod(shape))).reshape(shape) * 0.1 + 0.003


# ---------------------------------------------------------------- against PyTorch
CONV = [  # x shape, w shape, keyword arguments
    ((2, 4, 5, 6, 7), (6, 2, 3, 2, 3), dict(stride=(2, 1, 2), padding=(1, 0, 2), dilation=(1, 2, 1), groups=2)),
    ((1, 3, 7, 5, 4), (2, 3, 2, 3, 3), dict(padding="same", dilation=(1, 1, 2))),
    ((3, 2, 4, 4, 5), (4, 2, 1, 1, 1), dict(stride=2)),
    ((3, 4, 5, 3), (2, 3, 3, 2, 2), dict(padding="valid")),  # unbatched
    ((2, 3, 3, 9, 8), (3, 1, 3, 3, 3), dict(padding=1, groups=3)),  # depthwise
]


def run_both(fn_tg, fn_torch, arrays, dtype):
    """Values and gradients of sum(f(*arrays) * cos(...)) in tapegrad and PyTorch."""
    torch = pytest.importorskip("torch")
    tg_in = [tapegrad.tensor(a.astype(dtype), requires_grad=True) for a in arrays]
    th_in = [torch.tensor(a.astype(dtype), requires_grad=True) for a in arrays]
    y, ty = fn_tg(*tg_in), fn_torch(*th_in)
    w = np.cos(np.arange(ty.numel()).reshape(tuple(ty.shape))).astype(dtype)
    (y * tapegrad.tensor(w)).sum().backward()
    (ty * torch.tensor(w)).sum().backward()
    return (y.detach().numpy(), ty.detach().numpy(), [t.grad.numpy() for t in tg_in],
            [t.grad.numpy() for t in th_in])


@pytest.mark.parametrize("dtype, tol", [(np.float64, 1e-10), (np.float32, 2e-4)])
@pytest.mark.parametrize("xs, ws, kw", CONV)
def test_conv3d_matches_torch(dtype, tol, xs, ws, kw):
    torch = pytest.importorskip("torch")
    arrays = [RNG.standard_normal(xs), RNG.standard_normal(ws), RNG.standard_normal(ws[0])]
    y, ty, g, tg_ = run_both(lambda x, w, b: F.conv3d(x, w, b, **kw),
                             lambda x, w, b: torch.nn.functional.conv3d(x, w, b, **kw), arrays, dtype)
    assert y.dtype == dtype and y.shape == ty.shape
    np.testing.assert_allclose(y, ty, rtol=tol, atol=tol)
    for a, b in zip(g, tg_):
        np.testing.assert_allclose(a, b, rtol=tol, atol=tol * 10)


@pytest.mark.parametrize("dtype, tol", [(np.float64, 1e-10), (np.float32, 2e-4)])
@pytest.mark.parametrize("xs, ws, kw", [
    ((2, 4, 3, 4, 3), (4, 3, 3, 2, 3), dict(stride=(2, 1, 3), padding=(1, 0, 1), output_padding=(1, 0, 2), groups=2,
                                           dilation=(1, 2, 1))),
    ((1, 2, 2, 3, 2), (2, 2, 2, 2, 2), dict(output_padding=1, dilation=2)),  # output_padding >= stride
    ((3, 2, 3, 3), (3, 2, 2, 2, 2), dict(stride=2)),  # unbatched
])
def test_conv_transpose3d_matches_torch(dtype, tol, xs, ws, kw):
    torch = pytest.importorskip("torch")
    arrays = [RNG.standard_normal(xs), RNG.standard_normal(ws), RNG.standard_normal(ws[1] * kw.get("groups", 1))]
    y, ty, g, tg_ = run_both(lambda x, w, b: F.conv_transpose3d(x, w, b, **kw),
                             lambda x, w, b: torch.nn.functional.conv_transpose3d(x, w, b, **kw), arrays, dtype)
    np.testing.assert_allclose(y, ty, rtol=tol, atol=tol)
    for a, b in zip(g, tg_):
        np.testing.assert_allclose(a, b, rtol=tol, atol=tol * 10)


POOLS = [
    ("max_pool3d", dict(kernel_size=3, stride=2, padding=1, ceil_mode=True)),
    ("max_pool3d", dict(kernel_size=(2, 3, 2), stride=(1, 2, 2), dilation=(2, 1, 1))),
    ("max_pool3d", dict(kernel_size=2)),
    ("avg_pool3d", dict(kernel_size=3, stride=2, padding=1, ceil_mode=True, count_include_pad=False)),
    ("avg_pool3d", dict(kernel_size=(2, 3, 1), stride=(2, 1, 1), padding=(1, 1, 0))),
    ("avg_pool3d", dict(kernel_size=3, padding=1, divisor_override=5, ceil_mode=True)),
    ("adaptive_avg_pool3d", dict(output_size=(3, 2, 4))),
    ("adaptive_avg_pool3d", dict(output_size=(None, 1, 2))),
    ("adaptive_max_pool3d", dict(output_size=(3, 2, 4))),
    ("adaptive_max_pool3d", dict(output_size=1)),
]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name, kw", POOLS)
@pytest.mark.parametrize("shape", [(2, 3, 5, 7, 6), (3, 5, 4, 7)])
def test_pool3d_matches_torch(dtype, name, kw, shape):
    torch = pytest.importorskip("torch")
    y, ty, g, tg_ = run_both(lambda x: getattr(F, name)(x, **kw),
                             lambda x: getattr(torch.nn.functional, name)(x, **kw), [distinct(*shape)], dtype)
    tol = 1e-12 if dtype == np.float64 else 1e-5
    np.testing.assert_allclose(y, ty, rtol=tol, atol=tol)
    np.testing.assert_allclose(g[0], tg_[0], rtol=tol, atol=tol)


@pytest.mark.parametrize("name", ["max_pool3d", "adaptive_max_pool3d"])
def test_max_pool3d_indices_and_unpool_match_torch(name):
    torch = pytest.importorskip("torch")
    x = distinct(2, 3, 5, 7, 6)
    arg = (2, 2, 1) if name == "max_pool3d" else ((3, 2, 4),)  # windows that do not overlap: unique indices
    y, i = getattr(F, name)(tapegrad.tensor(x), *arg, return_indices=True)
    ty, ti = getattr(torch.nn.functional, name)(torch.tensor(x), *arg, return_indices=True)
    assert i.dtype == np.int64
    np.testing.assert_array_equal(i.numpy(), ti.numpy())
    if name == "max_pool3d":
        u = F.max_unpool3d(y, i, 2, 2, 1, output_size=x.shape[2:])
        tu = torch.nn.functional.max_unpool3d(ty, ti, 2, 2, 1, output_size=x.shape[2:])
        np.testing.assert_array_equal(u.numpy(), tu.numpy())


def test_strided_inputs():
    """Non-contiguous views go through the ops as their contiguous copies would."""
    x = RNG.standard_normal((2, 3, 6, 5, 4))
    w = RNG.standard_normal((4, 3, 2, 3, 2))
    xt = tapegrad.tensor(np.ascontiguousarray(x.transpose(0, 1, 4, 3, 2))).permute(0, 1, 4, 3, 2)
    wt = tapegrad.tensor(np.ascontiguousarray(w.transpose(1, 0, 2, 3, 4))).transpose(0, 1)
    want = F.conv3d(tapegrad.tensor(x), tapegrad.tensor(w), padding=1).numpy()
    np.testing.assert_array_equal(F.conv3d(xt, wt, padding=1).numpy(), want)
    np.testing.assert_array_equal(F.max_pool3d(xt, 2).numpy(), F.max_pool3d(tapegrad.tensor(x), 2).numpy())
    np.testing.assert_array_equal(F.avg_pool3d(xt[:, :, ::2], 2, ceil_mode=True).numpy(),
                                  F.avg_pool3d(tapegrad.tensor(np.ascontiguousarray(x[:, :, ::2])), 2,
                                               ceil_mode=True).numpy())


# ---------------------------------------------------------------- finite differences (float64, small)
def test_conv3d_gradcheck_and_gradgradcheck():
    x, w, b = leaf(RNG.standard_normal((2, 2, 3, 4, 3))), leaf(RNG.standard_normal((4, 1, 2, 2, 2))), \
        leaf(RNG.standard_normal(4))
    fn = lambda x, w, b: F.conv3d(x, w, b, stride=(1, 2, 1), padding=(1, 0, 1), dilation=(2, 1, 1), groups=2)  # noqa: E731
    assert gradcheck(fn, (x, w, b)) and gradgradcheck(fn, (x, w, b))
    same = lambda x, w: F.conv3d(x, w[:2], padding="same")  # noqa: E731
    assert gradcheck(same, (leaf(x.detach().numpy()[:, :1]), w)) and gradgradcheck(same, (leaf(x.detach().numpy()[:1, :1]), w))


def test_conv_transpose3d_gradcheck_and_gradgradcheck():
    x, w = leaf(RNG.standard_normal((1, 2, 2, 3, 2))), leaf(RNG.standard_normal((2, 2, 2, 2, 3)))
    fn = lambda x, w: F.conv_transpose3d(x, w, stride=(2, 1, 2), padding=(0, 1, 1), output_padding=(1, 0, 1))  # noqa: E731
    assert gradcheck(fn, (x, w)) and gradgradcheck(fn, (x, w))


def test_conv3d_weight_third_order():
    """conv3d's weight gradient is itself a recorded op (conv3d_weight), whose gradients
    (conv_transpose3d and a cropped conv3d) are differentiable again: conv3d to third order."""
    x, gy = RNG.standard_normal((1, 2, 3, 3, 4)), RNG.standard_normal((1, 2, 2, 4, 3))
    w = RNG.standard_normal((2, 2, 2, 2, 2))
    geo = dict(stride=(1, 1, 2), padding=(0, 1, 1))

    def fn(x, gy):  # conv3d's weight gradient as a function of the input and the upstream gradient
        wt = leaf(w)
        with tapegrad.enable_grad():  # gradcheck's finite differences run under no_grad
            return tapegrad.autograd.grad(F.conv3d(x, wt, **geo), [wt], gy, create_graph=True)[0]

    assert type(fn(leaf(x), leaf(gy)).grad_fn).__name__ == "Conv3dWeightBackward0"
    assert gradcheck(fn, (leaf(x), leaf(gy))) and gradgradcheck(fn, (leaf(x), leaf(gy)))


@pytest.mark.parametrize("name, kw", [
    ("max_pool3d", dict(kernel_size=2, stride=1, padding=1, ceil_mode=True)),
    ("avg_pool3d", dict(kernel_size=(2, 3, 2), stride=2, padding=1, count_include_pad=False, ceil_mode=True)),
    ("adaptive_avg_pool3d", dict(output_size=(2, 3, 2))),
    ("adaptive_max_pool3d", dict(output_size=(2, 3, 2))),
])
def test_pool3d_gradcheck_and_gradgradcheck(name, kw):
    x = leaf(distinct(1, 2, 3, 4, 3))
    fn = lambda x: getattr(F, name)(x, **kw)  # noqa: E731
    assert gradcheck(fn, (x,)) and gradgradcheck(fn, (x,))


def test_max_unpool3d_gradcheck():
    y, idx = F.max_pool3d(tapegrad.tensor(distinct(1, 2, 4, 4, 5)), 2, return_indices=True)
    assert gradcheck(lambda y: F.max_unpool3d(y, idx, 2, output_size=(4, 4, 5)), (leaf(y.numpy()),))


# ---------------------------------------------------------------- errors
@pytest.mark.parametrize("call, match", [
    (lambda: F.conv3d(tapegrad.zeros(1, 2, 4, 4, 4), tapegrad.zeros(3, 2, 3, 3)),
     r"conv3d: expected weight with 5 dims .* got shape \(3, 2, 3, 3\) for input of shape \(1, 2, 4, 4, 4\)"),
    (lambda: F.conv3d(tapegrad.zeros(1, 2, 2, 4, 4), tapegrad.zeros(3, 2, 3, 3, 3)),
     r"conv3d: calculated padded input size per channel: \(2 x 4 x 4\). Kernel size: \(3 x 3 x 3\)"),
    (lambda: F.conv3d(tapegrad.zeros(3, 4, 4, 4), tapegrad.zeros(3, 2, 3, 3, 3)),
     r"conv3d: given groups=1, weight of size \(3, 2, 3, 3, 3\), expected input \(3, 4, 4, 4\) to have 2 channels"),
    (lambda: F.conv3d(tapegrad.zeros(2, 4, 4), tapegrad.zeros(3, 2, 1, 1, 1)),
     r"conv3d: expected input with 4 dims \(C, D, H, W\) or 5 dims \(N, C, D, H, W\), got shape \(2, 4, 4\)"),
    (lambda: F.conv3d(tapegrad.zeros(1, 2, 4, 4, 4), tapegrad.zeros(3, 2, 1, 1, 1), stride=(1, 2)),
     r"conv3d: expected stride to be a single integer value or a list of 3 values"),
    (lambda: F.conv_transpose3d(tapegrad.zeros(1, 2, 4, 4, 4), tapegrad.zeros(2, 3, 3, 3, 3), output_padding=1),
     "conv_transpose3d: output padding must be smaller than either stride or dilation"),
    (lambda: F.max_pool3d(tapegrad.zeros(1, 1, 2, 5, 5), 3),
     r"max_pool3d: given input size: \(1x2x5x5\). Calculated output size: \(1x0x1x1\)"),
    (lambda: F.avg_pool3d(tapegrad.zeros(1, 1, 5, 5, 5), 3, padding=(1, 2, 1)),
     "avg_pool3d: pad should be smaller than or equal to half of kernel size"),
    (lambda: F.avg_pool3d(tapegrad.zeros(1, 5, 5), 2), r"avg_pool3d: expected input with 4 dims"),
])
def test_errors_name_op_and_shapes(call, match):
    with pytest.raises(RuntimeError, match=match):
        call()


# ---------------------------------------------------------------- layers
@pytest.mark.parametrize("mode", ["zeros", "reflect", "replicate", "circular"])
@pytest.mark.parametrize("padding", [1, "same", (0, 1, 2)])
def test_conv3d_layer_padding_modes_match_torch(mode, padding):
    torch = pytest.importorskip("torch")
    tm = torch.nn.Conv3d(4, 6, (3, 2, 3), padding=padding, padding_mode=mode, groups=2, dilation=(1, 2, 1)).double()
    m = nn.Conv3d(4, 6, (3, 2, 3), padding=padding, padding_mode=mode, groups=2, dilation=(1, 2, 1),
                  dtype=tapegrad.float64)
    assert list(m.state_dict()) == list(tm.state_dict())
    assert [tuple(v.shape) for v in m.state_dict().values()] == [tuple(v.shape) for v in tm.state_dict().values()]
    m.load_state_dict({k: tapegrad.tensor(v.detach().numpy()) for k, v in tm.state_dict().items()})
    x = RNG.standard_normal((2, 4, 5, 6, 7))
    np.testing.assert_allclose(m(tapegrad.tensor(x)).detach().numpy(), tm(torch.tensor(x)).detach().numpy(),
                               rtol=1e-12, atol=1e-12)
    assert m(tapegrad.tensor(x[0])).shape == tuple(tm(torch.tensor(x[0])).shape)  # unbatched


def test_conv3d_layer_init_is_torchs():
    """U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weight and bias, fan_in = in/groups * kd*kh*kw."""
    m = nn.Conv3d(16, 32, (3, 3, 2), groups=2)
    bound = 1 / np.sqrt(8 * 18)
    w, b = m.weight.detach().numpy(), m.bias.detach().numpy()
    assert w.shape == (32, 8, 3, 3, 2) and np.abs(w).max() <= bound and np.abs(b).max() <= bound
    assert abs(w.std() - bound / np.sqrt(3)) < 0.05 * bound  # a uniform's standard deviation
    t = nn.ConvTranspose3d(4, 6, 3, groups=2)
    assert t.weight.shape == (4, 3, 3, 3, 3) and np.abs(t.weight.detach().numpy()).max() <= 1 / np.sqrt(3 * 27)
    assert repr(t) == "ConvTranspose3d(4, 6, kernel_size=(3, 3, 3), stride=(1, 1, 1), groups=2)"


def test_conv_transpose3d_layer_output_size_matches_torch():
    torch = pytest.importorskip("torch")
    tm = torch.nn.ConvTranspose3d(4, 6, 3, stride=2, padding=1, groups=2).double()
    m = nn.ConvTranspose3d(4, 6, 3, stride=2, padding=1, groups=2, dtype=tapegrad.float64)
    assert list(m.state_dict()) == list(tm.state_dict())
    m.load_state_dict({k: tapegrad.tensor(v.detach().numpy()) for k, v in tm.state_dict().items()})
    x = RNG.standard_normal((1, 4, 3, 4, 5))
    for size in (None, (6, 8, 10), (5, 7, 9)):
        np.testing.assert_allclose(m(tapegrad.tensor(x), output_size=size).detach().numpy(),
                                   tm(torch.tensor(x), output_size=size).detach().numpy(), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("make", [
    lambda M: M.nn.BatchNorm3d(3), lambda M: M.nn.BatchNorm3d(3, affine=False, momentum=None),
    lambda M: M.nn.InstanceNorm3d(3, affine=True, track_running_stats=True), lambda M: M.nn.InstanceNorm3d(3),
])
def test_norm3d_layers_match_torch(make):
    torch = pytest.importorskip("torch")
    m, tm = make(tapegrad), make(torch)
    assert list(m.state_dict()) == list(tm.state_dict())
    x = RNG.standard_normal((2, 3, 4, 5, 3)).astype(np.float32)
    for _ in range(2):  # running statistics move alike
        np.testing.assert_allclose(m(tapegrad.tensor(x)).detach().numpy(), tm(torch.tensor(x)).detach().numpy(),
                                   rtol=1e-5, atol=1e-5)
    for k, v in tm.state_dict().items():
        np.testing.assert_allclose(np.asarray(m.state_dict()[k]), v.numpy(), rtol=1e-5, atol=1e-6)
    m.eval(), tm.eval()
    np.testing.assert_allclose(m(tapegrad.tensor(x)).detach().numpy(), tm(torch.tensor(x)).detach().numpy(),
                               rtol=1e-5, atol=1e-5)


def test_batchnorm3d_rejects_other_ranks():
    with pytest.raises(ValueError, match=r"BatchNorm3d: expected 5D input \(got 4D input"):
        nn.BatchNorm3d(3)(tapegrad.zeros(3, 4, 5, 6))


def test_pool3d_layers_match_torch():
    torch = pytest.importorskip("torch")
    x = distinct(2, 3, 5, 6, 7)
    pairs = [(nn.MaxPool3d(3, 2, 1, ceil_mode=True), torch.nn.MaxPool3d(3, 2, 1, ceil_mode=True)),
             (nn.AvgPool3d(2, 1, 1, count_include_pad=False), torch.nn.AvgPool3d(2, 1, 1, count_include_pad=False)),
             (nn.AdaptiveAvgPool3d((2, None, 3)), torch.nn.AdaptiveAvgPool3d((2, None, 3))),
             (nn.AdaptiveMaxPool3d(2), torch.nn.AdaptiveMaxPool3d(2))]
    for m, tm in pairs:
        np.testing.assert_allclose(m(tapegrad.tensor(x)).numpy(), tm(torch.tensor(x)).numpy(), rtol=1e-12)
        np.testing.assert_allclose(m(tapegrad.tensor(x[0])).numpy(), tm(torch.tensor(x[0])).numpy(), rtol=1e-12)
        assert repr(m) == repr(tm)
    y, i = nn.MaxPool3d(2, return_indices=True)(tapegrad.tensor(x))
    ty, ti = torch.nn.MaxPool3d(2, return_indices=True)(torch.tensor(x))
    np.testing.assert_array_equal(nn.MaxUnpool3d(2)(y, i, output_size=x.shape[2:]).numpy(),
                                  torch.nn.MaxUnpool3d(2)(ty, ti, output_size=x.shape[2:]).numpy())


def test_dropout3d_drops_whole_channels_batched_and_unbatched():
    tapegrad.manual_seed(0)
    for shape in [(8, 6, 2, 3, 2), (6, 2, 3, 2)]:
        y = nn.Dropout3d(0.5)(tapegrad.ones(*shape)).numpy().reshape(-1, 12)
        assert set(np.unique(y)) <= {0.0, 2.0} and all(len(set(r)) == 1 for r in y)  # one draw per channel
        assert 0 < (y[:, 0] == 0).sum() < len(y)
        assert (nn.Dropout3d(0.5).eval()(tapegrad.ones(*shape)).numpy() == 1).all()
