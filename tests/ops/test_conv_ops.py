"""Convolution and pooling ops: forward against direct numpy references,
gradients and second derivatives against finite differences in float64, and argument errors.

Every op of the family is reached: conv2d, conv_transpose2d and conv2d_weight (the three partials
of one trilinear form, checked to third order through gradgradcheck), max_pool2d with its
scatter/gather pair, avg_pool2d with its adjoint.
"""
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tapegrad
from tapegrad.ops import OPS
from tapegrad.testing import gradcheck, gradgradcheck

FAST = settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SLOW = settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.too_slow])

CONV_OPS = ["conv2d", "conv_transpose2d", "conv2d_weight"]
POOL_OPS = ["max_pool2d", "max_pool2d_backward", "max_pool2d_gather", "avg_pool2d", "avg_pool2d_backward"]


def leaf(a):
    return tapegrad.tensor(np.ascontiguousarray(a), requires_grad=True)


# ---------------------------------------------------------------- numpy references
def conv_ref(x, w, b, s, p, d, groups):
    """y[n, o, i, j] = sum over the group's channels and taps of xpad[n, c, i s + a d, j s + b d] w[o, c, a, b]."""
    N, C_, H, W = x.shape
    O, Cg, kh, kw = w.shape
    Ho, Wo = ((H + 2 * p[0] - d[0] * (kh - 1) - 1) // s[0] + 1, (W + 2 * p[1] - d[1] * (kw - 1) - 1) // s[1] + 1)
    xp = np.pad(x, ((0, 0), (0, 0), (p[0], p[0]), (p[1], p[1])))
    y = np.zeros((N, O, Ho, Wo))
    Og = O // groups
    for o in range(O):
        g = o // Og
        for i in range(Ho):
            for j in range(Wo):
                win = xp[:, g * Cg:(g + 1) * Cg, i * s[0]: i * s[0] + d[0] * (kh - 1) + 1: d[0],
                         j * s[1]: j * s[1] + d[1] * (kw - 1) + 1: d[1]]
                y[:, o, i, j] = np.einsum("nchw,chw->n", win, w[o])
    return y if b is None else y + b[None, :, None, None]


def conv_weight_ref(x, gy, wshape, s, p, d, groups):
    """dW[o, c, a, b] = sum over n, i, j of xpad[n, group's c, i s + a d, j s + b d] gy[n, o, i, j]."""
    O, Cg, kh, kw = wshape
    Ho, Wo = gy.shape[2:]
    xp = np.pad(x, ((0, 0), (0, 0), (p[0], p[0]), (p[1], p[1])))
    dw = np.zeros(wshape)
    Og = O // groups
    for a in range(kh):
        for b in range(kw):
            win = xp[:, :, a * d[0]: a * d[0] + s[0] * (Ho - 1) + 1: s[0], b * d[1]: b * d[1] + s[1] * (Wo - 1) + 1: s[1]]
            for g in range(groups):
                dw[g * Og:(g + 1) * Og, :, a, b] = np.einsum("nchw,nohw->oc", win[:, g * Cg:(g + 1) * Cg],
                                                            gy[:, g * Og:(g + 1) * Og])
    return dw


def conv_transpose_ref(x, w, b, s, p, op, groups, d):
    """Every input pixel scatters its kernel-weighted copy into the output, then the border is cropped."""
    N, Cin, H, W = x.shape
    _, Og, kh, kw = w.shape
    Ho = (H - 1) * s[0] - 2 * p[0] + d[0] * (kh - 1) + op[0] + 1
    Wo = (W - 1) * s[1] - 2 * p[1] + d[1] * (kw - 1) + op[1] + 1
    full = np.zeros((N, Og * groups, Ho + 2 * p[0] + kh * d[0] + s[0], Wo + 2 * p[1] + kw * d[1] + s[1]))
    Cg = Cin // groups
    for c in range(Cin):
        g = c // Cg
        for a in range(kh):
            for bb in range(kw):
                full[:, g * Og:(g + 1) * Og, a * d[0]: a * d[0] + s[0] * (H - 1) + 1: s[0],
                     bb * d[1]: bb * d[1] + s[1] * (W - 1) + 1: s[1]] += \
                    x[:, c, None] * w[c, :, a, bb][None, :, None, None]
    y = full[:, :, p[0]:p[0] + Ho, p[1]:p[1] + Wo]
    return y if b is None else y + b[None, :, None, None]


def pool_out(n, k, s, p, d, ceil):
    o = (n + 2 * p - d * (k - 1) - 1 + (s - 1 if ceil else 0)) // s + 1
    return o - 1 if ceil and (o - 1) * s >= n + p else o


def max_pool_ref(x, k, s, p, d, ceil):
    N, C_, H, W = x.shape
    Ho, Wo = pool_out(H, k[0], s[0], p[0], d[0], ceil), pool_out(W, k[1], s[1], p[1], d[1], ceil)
    y = np.full((N, C_, Ho, Wo), -np.inf)
    for i in range(Ho):
        for j in range(Wo):
            for a in range(k[0]):
                for b in range(k[1]):
                    h, w = i * s[0] - p[0] + a * d[0], j * s[1] - p[1] + b * d[1]
                    if 0 <= h < H and 0 <= w < W:
                        y[:, :, i, j] = np.maximum(y[:, :, i, j], x[:, :, h, w])
    return y


def avg_pool_ref(x, k, s, p, ceil, count_include_pad, divisor):
    N, C_, H, W = x.shape
    Ho, Wo = pool_out(H, k[0], s[0], p[0], 1, ceil), pool_out(W, k[1], s[1], p[1], 1, ceil)
    y = np.zeros((N, C_, Ho, Wo))
    for i in range(Ho):
        for j in range(Wo):
            h0, w0 = i * s[0] - p[0], j * s[1] - p[1]
            h1, w1 = min(h0 + k[0], H + p[0]), min(w0 + k[1], W + p[1])  # padded window, clipped at the pad
            pad_count = (h1 - h0) * (w1 - w0)
            h0, w0, h1, w1 = max(h0, 0), max(w0, 0), min(h1, H), min(w1, W)
            total = x[:, :, h0:h1, w0:w1].sum((2, 3))
            n = divisor or (pad_count if count_include_pad else (h1 - h0) * (w1 - w0))
            y[:, :, i, j] = total / n
    return y


# ---------------------------------------------------------------- geometries
@st.composite
def conv_geometries(draw, transpose=False):
    groups = draw(st.integers(1, 2))
    cin = groups * draw(st.integers(1, 4 // groups))
    cout = groups * draw(st.integers(1, 4 // groups))
    g = dict(N=draw(st.integers(1, 2)), cin=cin, cout=cout, groups=groups,
             hw=(draw(st.integers(3, 8)), draw(st.integers(3, 8))),
             k=(draw(st.integers(1, 3)), draw(st.integers(1, 3))),
             s=(draw(st.integers(1, 2)), draw(st.integers(1, 2))),
             p=(draw(st.integers(0, 1)), draw(st.integers(0, 1))),
             d=(draw(st.integers(1, 2)), draw(st.integers(1, 2))),
             bias=draw(st.booleans()), seed=draw(st.integers(0, 2**31)))
    if transpose:  # output_padding must stay below stride or dilation
        g["op"] = tuple(draw(st.integers(0, max(s, d) - 1)) for s, d in zip(g["s"], g["d"]))
        g["hw"] = (draw(st.integers(2, 5)), draw(st.integers(2, 5)))
        g["p"] = tuple(min(p, ((n - 1) * s + d * (k - 1) + o) // 2)  # a non-empty output
                       for n, k, s, p, d, o in zip(g["hw"], g["k"], g["s"], g["p"], g["d"], g["op"]))
    else:  # the dilated kernel must fit the padded input
        g["hw"] = tuple(max(n, d * (k - 1) + 1 - 2 * p) for n, k, p, d in zip(g["hw"], g["k"], g["p"], g["d"]))
    return g


def conv_inputs(g, transpose=False):
    rng = np.random.default_rng(g["seed"])
    if transpose:
        x = rng.standard_normal((g["N"], g["cin"], *g["hw"]))
        w = rng.standard_normal((g["cin"], g["cout"] // g["groups"], *g["k"]))
    else:
        x = rng.standard_normal((g["N"], g["cin"], *g["hw"]))
        w = rng.standard_normal((g["cout"], g["cin"] // g["groups"], *g["k"]))
    b = rng.standard_normal(g["cout"]) if g["bias"] else None
    return x, w, b


def conv_fn(g):
    return lambda x, w, *b: tapegrad.conv2d(x, w, *b, stride=g["s"], padding=g["p"], dilation=g["d"],
                                            groups=g["groups"])


def conv_t_fn(g):
    return lambda x, w, *b: tapegrad.conv_transpose2d(x, w, *b, stride=g["s"], padding=g["p"],
                                                      output_padding=g["op"], groups=g["groups"], dilation=g["d"])


def shrink(g):
    """A smaller copy for second-order checks (each perturbation there runs a backward pass)."""
    return {**g, "N": 1, "hw": tuple(min(n, 5) for n in g["hw"])}


# ---------------------------------------------------------------- convolution
@FAST
@given(g=conv_geometries())
def test_conv2d_forward_and_grad(g):
    x, w, b = conv_inputs(g)
    args = (leaf(x), leaf(w)) + ((leaf(b),) if b is not None else ())
    y = conv_fn(g)(*args)
    np.testing.assert_allclose(y.detach().numpy(), conv_ref(x, w, b, g["s"], g["p"], g["d"], g["groups"]),
                               rtol=1e-10, atol=1e-10)
    assert gradcheck(conv_fn(g), args)


@SLOW
@given(g=conv_geometries())
def test_conv2d_gradgrad(g):
    g = shrink(g)
    x, w, b = conv_inputs(g)
    args = (leaf(x), leaf(w)) + ((leaf(b),) if b is not None else ())
    assert gradgradcheck(conv_fn(g), args)


@FAST
@given(g=conv_geometries(transpose=True))
def test_conv_transpose2d_forward_and_grad(g):
    x, w, b = conv_inputs(g, transpose=True)
    args = (leaf(x), leaf(w)) + ((leaf(b),) if b is not None else ())
    y = conv_t_fn(g)(*args)
    np.testing.assert_allclose(y.detach().numpy(), conv_transpose_ref(x, w, b, g["s"], g["p"], g["op"], g["groups"], g["d"]),
                               rtol=1e-10, atol=1e-10)
    assert gradcheck(conv_t_fn(g), args)


@SLOW
@given(g=conv_geometries(transpose=True))
def test_conv_transpose2d_gradgrad(g):
    x, w, b = conv_inputs(g, transpose=True)
    args = (leaf(x), leaf(w)) + ((leaf(b),) if b is not None else ())
    assert gradgradcheck(conv_t_fn(g), args)


@SLOW
@given(g=conv_geometries())
def test_conv2d_weight_third_order(g):
    """conv2d_weight(x, gy) is conv2d's weight gradient; its own gradients (conv_transpose2d and
    a cropped conv2d) and their gradients are checked here, i.e. conv2d to third order."""
    g = shrink(g)
    x, w, _ = conv_inputs(g)
    Ho, Wo = conv_fn(g)(leaf(x), leaf(w)).shape[2:]
    gy = np.random.default_rng(g["seed"] + 1).standard_normal((g["N"], g["cout"], Ho, Wo))
    geo = dict(stride=g["s"], padding=g["p"], dilation=g["d"], groups=g["groups"])

    def fn(x, gy):  # conv2d's weight gradient as a function of the input and the upstream gradient
        wt = leaf(w)
        with tapegrad.enable_grad():  # gradcheck's finite differences run under no_grad
            return tapegrad.autograd.grad(tapegrad.conv2d(x, wt, **geo), [wt], gy, create_graph=True)[0]
    out = fn(leaf(x), leaf(gy))
    assert type(out.grad_fn).__name__ == "Conv2dWeightBackward0"
    np.testing.assert_allclose(out.detach().numpy(), conv_weight_ref(x, gy, w.shape, g["s"], g["p"], g["d"], g["groups"]),
                               atol=1e-12)
    assert gradcheck(fn, (leaf(x), leaf(gy)))
    assert gradgradcheck(fn, (leaf(x), leaf(gy)))


def test_conv_transpose2d_output_padding_beyond_stride():
    """output_padding >= stride (allowed when < dilation): conv2d of the output is larger than the
    input, so the VJP w.r.t. the input crops it."""
    rng = np.random.default_rng(0)
    x, w = leaf(rng.standard_normal((1, 2, 3, 3))), leaf(rng.standard_normal((2, 1, 2, 2)))
    fn = lambda x, w: tapegrad.conv_transpose2d(x, w, stride=1, output_padding=1, dilation=2)  # noqa: E731
    np.testing.assert_allclose(fn(x, w).detach().numpy(),
                               conv_transpose_ref(x.detach().numpy(), w.detach().numpy(), None, (1, 1), (0, 0), (1, 1), 1, (2, 2)))
    assert gradcheck(fn, (x, w)) and gradgradcheck(fn, (x, w))


@pytest.mark.parametrize("k, d", [((3, 3), (1, 1)), ((2, 3), (1, 2)), ((1, 2), (3, 1))])
def test_conv2d_same_valid_and_unbatched(k, d):
    rng = np.random.default_rng(1)
    x, w = leaf(rng.standard_normal((2, 5, 6))), leaf(rng.standard_normal((3, 2, *k)))
    y = tapegrad.conv2d(x, w, padding="same", dilation=d)
    assert y.shape == (3, 5, 6)
    # PyTorch's 'same': total padding d (k - 1), the odd one at the bottom/right
    tot = [di * (ki - 1) for ki, di in zip(k, d)]
    xp = np.pad(x.detach().numpy()[None], ((0, 0), (0, 0), (tot[0] // 2, tot[0] - tot[0] // 2),
                                  (tot[1] // 2, tot[1] - tot[1] // 2)))
    np.testing.assert_allclose(y.detach().numpy(), conv_ref(xp, w.detach().numpy(), None, (1, 1), (0, 0), d, 1)[0], atol=1e-12)
    fn = lambda x, w: tapegrad.conv2d(x, w, padding="same", dilation=d)  # noqa: E731
    assert gradcheck(fn, (x, w)) and gradgradcheck(fn, (x, w))
    v = tapegrad.conv2d(x, w, padding="valid", dilation=d)
    np.testing.assert_allclose(v.detach().numpy(), conv_ref(x.detach().numpy()[None], w.detach().numpy(), None, (1, 1), (0, 0), d, 1)[0])


def test_conv_float32_and_non_contiguous_inputs():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 3, 6, 5)).astype(np.float32)
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    xt = tapegrad.tensor(np.ascontiguousarray(x.transpose(0, 1, 3, 2))).transpose(2, 3)  # a strided view
    y = tapegrad.conv2d(xt, tapegrad.tensor(w), padding=1)
    assert y.dtype == np.float32
    np.testing.assert_allclose(y.detach().numpy(), conv_ref(x.astype(float), w.astype(float), None, (1, 1), (1, 1), (1, 1), 1),
                               rtol=1e-4, atol=1e-4)


# ---------------------------------------------------------------- pooling
@st.composite
def pool_geometries(draw):
    k = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    return dict(N=draw(st.integers(1, 2)), C=draw(st.integers(1, 3)),
                hw=(draw(st.integers(3, 8)), draw(st.integers(3, 8))), k=k,
                s=(draw(st.integers(1, 2)), draw(st.integers(1, 2))),
                p=tuple(draw(st.integers(0, ki // 2)) for ki in k),
                d=(draw(st.integers(1, 2)), draw(st.integers(1, 2))),
                ceil=draw(st.booleans()), include_pad=draw(st.booleans()),
                divisor=draw(st.sampled_from([None, None, 3])), seed=draw(st.integers(0, 2**31)))


def fit(g, dilated):
    """``g`` with the input grown to hold one (dilated) window."""
    d = g["d"] if dilated else (1, 1)
    return {**g, "hw": tuple(max(n, di * (k - 1) + 1) for n, k, di in zip(g["hw"], g["k"], d))}


def pool_input(g):
    # distinct values, so max pooling's argmax is stable under finite-difference perturbations
    rng = np.random.default_rng(g["seed"])
    n = g["N"] * g["C"] * g["hw"][0] * g["hw"][1]
    return rng.permutation(n).reshape(g["N"], g["C"], *g["hw"]) * 0.1 + rng.uniform(-0.01, 0.01)


@FAST
@given(g=pool_geometries())
def test_max_pool2d(g):
    g = fit(g, dilated=True)
    x = leaf(pool_input(g))
    fn = lambda x: tapegrad.max_pool2d(x, g["k"], g["s"], g["p"], g["d"], ceil_mode=g["ceil"])  # noqa: E731
    np.testing.assert_array_equal(fn(x).detach().numpy(), max_pool_ref(x.detach().numpy(), g["k"], g["s"], g["p"], g["d"], g["ceil"]))
    assert gradcheck(fn, (x,))
    assert gradgradcheck(fn, (leaf(x.detach().numpy()[:1, :1]),))


@FAST
@given(g=pool_geometries())
def test_avg_pool2d(g):
    g = fit(g, dilated=False)
    x = leaf(pool_input(g))
    fn = lambda x: tapegrad.avg_pool2d(x, g["k"], g["s"], g["p"], g["ceil"], g["include_pad"], g["divisor"])  # noqa
    np.testing.assert_allclose(fn(x).detach().numpy(),
                               avg_pool_ref(x.detach().numpy(), g["k"], g["s"], g["p"], g["ceil"], g["include_pad"],
                                            g["divisor"]), rtol=1e-12, atol=1e-12)
    assert gradcheck(fn, (x,))
    assert gradgradcheck(fn, (leaf(x.detach().numpy()[:1, :1]),))


def test_max_pool2d_scatter_gather_pair_to_third_order():
    """max_pool2d's VJP (a scatter by the indices) and its VJP (a gather) are recorded ops."""
    x = leaf(pool_input(dict(N=1, C=2, hw=(5, 6), seed=3)))
    y, idx = tapegrad.max_pool2d(x, 3, 2, 1, return_indices=True)
    gy = leaf(np.random.default_rng(4).standard_normal(y.shape))
    def scatter(gy):  # max_pool2d's VJP as a function of the upstream gradient
        with tapegrad.enable_grad():  # gradcheck's finite differences run under no_grad
            return tapegrad.autograd.grad(y, [x], gy, create_graph=True, retain_graph=True)[0]
    gx = scatter(gy)
    assert type(gx.grad_fn).__name__ == "MaxPool2dBackwardBackward0"
    ref = np.zeros((1, 2, 5 * 6))
    np.add.at(ref, (0, np.arange(2)[:, None], idx.numpy().reshape(2, -1)), gy.detach().numpy().reshape(2, -1))
    np.testing.assert_allclose(gx.detach().numpy(), ref.reshape(1, 2, 5, 6))
    assert gradcheck(scatter, (gy,)) and gradgradcheck(scatter, (gy,))
    (gg,) = tapegrad.autograd.grad(gx, [gy], leaf(np.ones(gx.shape)), create_graph=True)
    assert type(gg.grad_fn).__name__ == "MaxPool2dGatherBackward0"


def test_max_pool2d_return_indices_and_unpool():
    x = leaf(pool_input(dict(N=2, C=2, hw=(4, 6), seed=5)))
    for grad in (True, False):
        with tapegrad.set_grad_enabled(grad):
            y, idx = tapegrad.max_pool2d(x, 2, return_indices=True)
        assert idx.dtype == np.int64 and idx.shape == y.shape
        flat = x.detach().numpy().reshape(2, 2, -1)
        np.testing.assert_array_equal(np.take_along_axis(flat, idx.detach().numpy().reshape(2, 2, -1), 2).reshape(y.shape),
                                      y.detach().numpy())
    u = tapegrad.max_unpool2d(y, idx, 2)
    assert u.shape == x.shape
    expect = np.where(x.detach().numpy() == np.repeat(np.repeat(y.detach().numpy(), 2, 2), 2, 3), x.detach().numpy(), 0)
    np.testing.assert_array_equal(u.detach().numpy(), expect)
    yl = leaf(y.detach().numpy())
    assert gradcheck(lambda y: tapegrad.max_unpool2d(y, idx, 2, output_size=(5, 7)), (yl,))
    yu, iu = tapegrad.max_pool2d(x[0], 2, return_indices=True)  # unbatched
    assert yu.shape == (2, 2, 3) and iu.shape == (2, 2, 3)


@pytest.mark.parametrize("size", [(3, 2), (2, None), 4, (7, 5), 1, (5, 3)])
def test_adaptive_avg_pool2d(size):
    x = leaf(np.random.default_rng(6).standard_normal((2, 2, 7, 6)))
    y = tapegrad.adaptive_avg_pool2d(x, size)
    sh, sw = (size, size) if isinstance(size, int) else (size[0], 6 if size[1] is None else size[1])
    ref = np.zeros((2, 2, sh, sw))
    for i in range(sh):
        for j in range(sw):
            ref[:, :, i, j] = x.detach().numpy()[:, :, (i * 7) // sh: -((-(i + 1) * 7) // sh),
                                        (j * 6) // sw: -((-(j + 1) * 6) // sw)].mean((2, 3))
    np.testing.assert_allclose(y.detach().numpy(), ref, atol=1e-12)
    fn = lambda x: tapegrad.adaptive_avg_pool2d(x, size)  # noqa: E731
    assert gradcheck(fn, (x,)) and gradgradcheck(fn, (x,))


def test_every_family_op_is_registered_and_reached():
    for name in CONV_OPS + POOL_OPS:
        assert name in OPS


# ---------------------------------------------------------------- argument errors
def T(*shape, dtype=np.float64):
    return tapegrad.tensor(np.zeros(shape, dtype))


@pytest.mark.parametrize("call, match", [
    (lambda: tapegrad.conv2d(T(4, 6), T(2, 4, 3, 3)), r"expected input with 3 dims \(C, H, W\) or 4 dims "
                                                       r"\(N, C, H, W\), got shape \(4, 6\)"),
    (lambda: tapegrad.conv2d(T(1, 4, 6, 6), T(2, 4, 3)), r"expected weight with 4 dims"),
    (lambda: tapegrad.conv2d(T(1, 3, 6, 6), T(2, 4, 3, 3)), r"expected input \(1, 3, 6, 6\) to have 4 channels, "
                                                           r"but got 3 channels"),
    (lambda: tapegrad.conv2d(T(1, 4, 6, 6), T(3, 2, 3, 3), groups=2), r"out_channels \(3.*divisible by groups \(2\)"),
    (lambda: tapegrad.conv2d(T(1, 4, 6, 6), T(4, 4, 3, 3), groups=0), r"groups must be a positive integer"),
    (lambda: tapegrad.conv2d(T(1, 4, 2, 2), T(2, 4, 3, 3)), r"Kernel size can't be greater than actual input size"),
    (lambda: tapegrad.conv2d(T(1, 4, 6, 6), T(2, 4, 3, 3), T(3)), r"expected bias of shape \(2,\)"),
    (lambda: tapegrad.conv2d(T(1, 4, 6, 6), T(2, 4, 3, 3, dtype=np.float32)), r"input type \(tapegrad.float64\) and "
                                                                              r"weight type \(tapegrad.float32\)"),
    (lambda: tapegrad.conv2d(T(1, 4, 6, 6, dtype=np.int64), T(2, 4, 3, 3)), r"only float32, float64, float16 and bfloat16"),
    (lambda: tapegrad.conv2d(T(1, 4, 6, 6), T(2, 4, 3, 3), stride=0), r"stride must be positive"),
    (lambda: tapegrad.conv2d(T(1, 4, 6, 6), T(2, 4, 3, 3), padding=-1), r"padding must be non-negative"),
    (lambda: tapegrad.conv2d(T(1, 4, 6, 6), T(2, 4, 3, 3), stride=(1, 2, 3)), r"list of 2 values"),
    (lambda: tapegrad.conv2d(T(1, 4, 6, 6), T(2, 4, 3, 3), padding="same", stride=2), r"strided convolutions"),
    (lambda: tapegrad.conv2d(T(1, 4, 6, 6), T(2, 4, 3, 3), padding="full"), r"invalid padding string"),
    (lambda: tapegrad.conv_transpose2d(T(1, 3, 4, 4), T(4, 2, 3, 3)), r"to have 4 channels, but got 3"),
    (lambda: tapegrad.conv_transpose2d(T(1, 4, 4, 4), T(4, 2, 3, 3), output_padding=1),
     r"output padding must be smaller than either stride or dilation"),
    (lambda: tapegrad.conv_transpose2d(T(1, 4, 1, 1), T(4, 2, 1, 1), padding=1), r"output size \(-1 x -1\) is too small"),
    (lambda: tapegrad.conv_transpose2d(T(1, 3, 4, 4), T(3, 2, 3, 3), groups=2), r"in_channels \(3\) must be divisible"),
    (lambda: tapegrad.conv_transpose2d(T(1, 4, 4, 4), T(4, 2, 3, 3), T(3)), r"expected bias of shape \(2,\)"),
    (lambda: tapegrad.max_pool2d(T(5, 5), 2), r"max_pool2d: expected input with 3 dims"),
    (lambda: tapegrad.max_pool2d(T(1, 1, 5, 5), 3, padding=2), r"pad should be smaller than or equal to half"),
    (lambda: tapegrad.max_pool2d(T(1, 1, 2, 2), 3), r"Output size is too small"),
    (lambda: tapegrad.max_pool2d(T(1, 1, 4, 4), 0), r"kernel_size must be positive"),
    (lambda: tapegrad.avg_pool2d(T(1, 1, 4, 4), 2, divisor_override=0), r"divisor must be a positive integer"),
    (lambda: tapegrad.avg_pool2d(T(1, 1, 4, 4), 2, stride=-1), r"stride must be positive"),
    (lambda: tapegrad.adaptive_avg_pool2d(T(1, 1, 4, 4), 0), r"output_size must be positive"),
    (lambda: tapegrad.max_unpool2d(T(1, 1, 2, 2), tapegrad.tensor(np.full((1, 1, 2, 2), 16)), 2),
     r"invalid max index 16"),
])
def test_errors(call, match):
    with pytest.raises(RuntimeError, match=match):
        call()


def test_bad_types_raise_type_error():
    with pytest.raises(TypeError, match="conv2d: expected input to be a Tensor"):
        tapegrad.conv2d(np.zeros((1, 1, 3, 3)), T(1, 1, 1, 1))
    with pytest.raises(TypeError, match="stride must be an int"):
        tapegrad.conv2d(T(1, 1, 3, 3), T(1, 1, 1, 1), stride=1.5)
