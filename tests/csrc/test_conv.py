"""conv2d kernels in tapegrad._C against a direct numpy reference, and as adjoints of each other."""
import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from tapegrad import _C

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def out_size(n, k, s, p, d):
    return (n + 2 * p - d * (k - 1) - 1) // s + 1


def taps(xp, i, j, Ho, Wo, s, d):
    """The (N, C, Ho, Wo) slice of padded xp that kernel tap (i, j) multiplies."""
    return xp[:, :, i * d[0]: i * d[0] + s[0] * (Ho - 1) + 1: s[0], j * d[1]: j * d[1] + s[1] * (Wo - 1) + 1: s[1]]


def conv_ref(x, w, b, s, p, d, groups):
    N, C, H, W = x.shape
    O, Cg, kh, kw = w.shape
    Ho, Wo = out_size(H, kh, s[0], p[0], d[0]), out_size(W, kw, s[1], p[1], d[1])
    xp = np.pad(x, ((0, 0), (0, 0), (p[0], p[0]), (p[1], p[1])))
    y = np.zeros((N, O, Ho, Wo), x.dtype)
    Og = O // groups
    for g in range(groups):
        for i in range(kh):
            for j in range(kw):
                patch = taps(xp[:, g * Cg:(g + 1) * Cg], i, j, Ho, Wo, s, d)
                y[:, g * Og:(g + 1) * Og] += np.einsum("nchw,oc->nohw", patch, w[g * Og:(g + 1) * Og, :, i, j])
    return y if b is None else y + b[None, :, None, None]


def input_grad_ref(gy, w, hw, s, p, d, groups):
    """Adjoint of conv_ref in x; gy may be smaller than the convolution's output (conv_transpose2d)."""
    N, O, Ho, Wo = gy.shape
    _, Cg, kh, kw = w.shape
    H, W = hw
    # room for every tap of every output position, then crop to the input
    gxp = np.zeros((N, Cg * groups, max(H + 2 * p[0], (Ho - 1) * s[0] + d[0] * (kh - 1) + 1),
                    max(W + 2 * p[1], (Wo - 1) * s[1] + d[1] * (kw - 1) + 1)), gy.dtype)
    Og = O // groups
    for g in range(groups):
        for i in range(kh):
            for j in range(kw):
                taps(gxp[:, g * Cg:(g + 1) * Cg], i, j, Ho, Wo, s, d)[...] += np.einsum(
                    "nohw,oc->nchw", gy[:, g * Og:(g + 1) * Og], w[g * Og:(g + 1) * Og, :, i, j])
    return gxp[:, :, p[0]:p[0] + H, p[1]:p[1] + W]


def weight_grad_ref(x, gy, k, s, p, d, groups):
    N, C, H, W = x.shape
    _, O, Ho, Wo = gy.shape
    Cg, Og = C // groups, O // groups
    xp = np.pad(x, ((0, 0), (0, 0), (p[0], p[0] + s[0] * Ho + d[0] * k[0]), (p[1], p[1] + s[1] * Wo + d[1] * k[1])))
    # zero-extended on the right so taps beyond the input (conv_transpose2d's output_padding) read zeros
    gw = np.zeros((O, Cg, k[0], k[1]), x.dtype)
    for g in range(groups):
        for i in range(k[0]):
            for j in range(k[1]):
                patch = taps(xp[:, g * Cg:(g + 1) * Cg], i, j, Ho, Wo, s, d)
                gw[g * Og:(g + 1) * Og, :, i, j] = np.einsum("nohw,nchw->oc", gy[:, g * Og:(g + 1) * Og], patch)
    return gw


@st.composite
def geometries(draw):
    groups = draw(st.integers(1, 4))
    Cg = draw(st.integers(1, 4 // groups))
    Og = draw(st.integers(1, 4 // groups))
    return dict(
        N=draw(st.integers(1, 3)), C=Cg * groups, O=Og * groups, groups=groups,
        hw=(draw(st.integers(1, 9)), draw(st.integers(1, 9))),
        k=(draw(st.integers(1, 4)), draw(st.integers(1, 4))),
        s=(draw(st.integers(1, 3)), draw(st.integers(1, 3))),
        p=(draw(st.integers(0, 2)), draw(st.integers(0, 2))),
        d=(draw(st.integers(1, 2)), draw(st.integers(1, 2))),
        bias=draw(st.booleans()), seed=draw(st.integers(0, 2**32 - 1)),
    )


def make(g, dtype):
    rng = np.random.default_rng(g["seed"])
    x = rng.standard_normal((g["N"], g["C"], *g["hw"])).astype(dtype)
    w = rng.standard_normal((g["O"], g["C"] // g["groups"], *g["k"])).astype(dtype)
    b = rng.standard_normal(g["O"]).astype(dtype) if g["bias"] else None
    return rng, x, w, b


def args(g):
    return g["s"], g["p"], g["d"], g["groups"]


def output_hw(g):
    return tuple(out_size(n, k, s, p, d) for n, k, s, p, d in zip(g["hw"], g["k"], g["s"], g["p"], g["d"]))


@pytest.mark.parametrize("dtype, tol", [(np.float64, 1e-10), (np.float32, 1e-4)])
@SETTINGS
@given(g=geometries())
def test_conv2d_matches_reference(dtype, tol, g):
    rng, x, w, b = make(g, dtype)
    Ho, Wo = output_hw(g)
    if Ho < 1 or Wo < 1:
        with pytest.raises(ValueError, match="conv2d"):
            _C.conv2d(x, w, b, *args(g))
        return
    y = _C.conv2d(x, w, b, *args(g))
    assert y.dtype == dtype and y.shape == (g["N"], g["O"], Ho, Wo)
    np.testing.assert_allclose(y, conv_ref(x.astype(np.float64), w.astype(np.float64),
                                           None if b is None else b.astype(np.float64), *args(g)),
                               rtol=tol, atol=tol)

    gy = rng.standard_normal(y.shape).astype(dtype)
    gx = _C.conv2d_input_grad(gy, w, g["hw"], *args(g))
    gw = _C.conv2d_weight_grad(x, gy, g["k"], *args(g))
    gb = _C.conv2d_bias_grad(gy)
    assert gx.shape == x.shape and gw.shape == w.shape and gb.shape == (g["O"],)
    assert gx.dtype == gw.dtype == gb.dtype == dtype
    f64 = [a.astype(np.float64) for a in (x, w, gy)]
    np.testing.assert_allclose(gx, input_grad_ref(f64[2], f64[1], g["hw"], *args(g)), rtol=tol, atol=tol)
    np.testing.assert_allclose(gw, weight_grad_ref(f64[0], f64[2], g["k"], *args(g)), rtol=tol, atol=tol * 10)
    np.testing.assert_allclose(gb, f64[2].sum((0, 2, 3)), rtol=tol, atol=tol * 10)


@SETTINGS
@given(g=geometries())
def test_conv2d_grads_are_adjoints(g):
    """<conv(x, w), gy> == <x, input_grad(gy, w)> == <w, weight_grad(x, gy)>."""
    rng, x, w, _ = make(g, np.float64)
    Ho, Wo = output_hw(g)
    assume(Ho >= 1 and Wo >= 1)
    gy = rng.standard_normal((g["N"], g["O"], Ho, Wo))
    lhs = np.vdot(_C.conv2d(x, w, None, *args(g)), gy)
    scale = 1e-10 * (1 + np.abs(lhs))
    assert abs(lhs - np.vdot(x, _C.conv2d_input_grad(gy, w, g["hw"], *args(g)))) < scale
    assert abs(lhs - np.vdot(w, _C.conv2d_weight_grad(x, gy, g["k"], *args(g)))) < scale


@SETTINGS
@given(g=geometries(), op=st.tuples(st.integers(0, 2), st.integers(0, 2)))
def test_conv_transpose2d_output_padding(g, op):
    """conv_transpose2d = conv2d_input_grad with H = (Hin-1)s - 2p + d(k-1) + output_padding + 1."""
    op = tuple(min(o, max(s, d) - 1) for o, s, d in zip(op, g["s"], g["d"]))
    hw = tuple((n - 1) * s - 2 * p + d * (k - 1) + o + 1
               for n, k, s, p, d, o in zip(g["hw"], g["k"], g["s"], g["p"], g["d"], op))
    assume(min(hw) >= 1)
    rng, x, w, _ = make(g, np.float64)  # x plays conv_transpose2d's input: (N, O=C here, Hin, Win)
    w = rng.standard_normal((g["C"], g["O"] // g["groups"], *g["k"]))
    y = _C.conv2d_input_grad(x, w, hw, *args(g))
    assert y.shape == (g["N"], g["O"], *hw)
    np.testing.assert_allclose(y, input_grad_ref(x, w, hw, *args(g)), rtol=1e-10, atol=1e-10)
    # its weight gradient is conv2d_weight_grad with the roles of input and output swapped
    gy = rng.standard_normal(y.shape)
    gw = _C.conv2d_weight_grad(gy, x, g["k"], *args(g))
    np.testing.assert_allclose(gw, weight_grad_ref(gy, x, g["k"], *args(g)), rtol=1e-10, atol=1e-9)
    assert abs(np.vdot(y, gy) - np.vdot(w, gw)) < 1e-10 * (1 + abs(np.vdot(y, gy)))


LENET = [  # (x shape, w shape): LeNet's two convolutions at batch 64, plus a grouped, strided one
    ((64, 1, 28, 28), (20, 1, 5, 5), (1, 1), (0, 0), 1),
    ((64, 20, 12, 12), (50, 20, 5, 5), (1, 1), (0, 0), 1),
    ((5, 6, 13, 11), (4, 3, 3, 2), (2, 1), (1, 2), 2),
    ((3, 8, 7, 7), (16, 8, 1, 1), (1, 1), (0, 0), 1),
    ((40, 3, 10, 10), (4, 3, 3, 3), (1, 1), (1, 1), 1),  # 2 images per GEMM, chunks of 2 and 3
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("k, p, d, s, groups", [
    ((3, 3), (1, 1), (1, 1), (1, 1), 1),   # Conv2d(C, O, 3, padding=1) on 1x1: the centre tap
    ((3, 5), (1, 2), (1, 1), (2, 1), 1),
    ((3, 2), (2, 1), (2, 2), (1, 1), 2),   # in w no tap lands on the pixel: all zero
    ((1, 3), (0, 1), (1, 1), (1, 3), 4),
])
def test_weight_grad_of_a_single_pixel(dtype, k, p, d, s, groups):
    """1x1 input and output (the single-pixel GEMM path) against the reference, and bit-identical
    for 1 and 2 threads."""
    rng = np.random.default_rng(7)
    x = rng.standard_normal((33, 8, 1, 1)).astype(dtype)
    gy = rng.standard_normal((33, 12, 1, 1)).astype(dtype)
    assert out_size(1, k[0], s[0], p[0], d[0]) == out_size(1, k[1], s[1], p[1], d[1]) == 1
    ref = weight_grad_ref(x.astype(np.float64), gy.astype(np.float64), k, s, p, d, groups)
    before = _C.get_num_threads()
    try:
        got = []
        for threads in (1, 2):
            _C.set_num_threads(threads)
            got.append(_C.conv2d_weight_grad(x, gy, k, s, p, d, groups))
    finally:
        _C.set_num_threads(before)
    np.testing.assert_allclose(got[0], ref, rtol=1e-5 if dtype == np.float32 else 1e-12, atol=1e-5)
    np.testing.assert_array_equal(got[0], got[1])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("xs, ws, stride, padding, groups", LENET)
def test_bit_identical_across_thread_counts(dtype, xs, ws, stride, padding, groups):
    rng = np.random.default_rng(0)
    x, w, b = (rng.standard_normal(s).astype(dtype) for s in (xs, ws, ws[:1]))
    geo = (stride, padding, (1, 1), groups)

    def run():
        y = _C.conv2d(x, w, b, *geo)
        gy = np.cos(y)
        return [y, _C.conv2d_input_grad(gy, w, xs[2:], *geo), _C.conv2d_weight_grad(x, gy, ws[2:], *geo),
                _C.conv2d_bias_grad(gy)]

    before = _C.get_num_threads()
    try:
        _C.set_num_threads(1)
        one = run()
        _C.set_num_threads(2)
        two, again = run(), run()
    finally:
        _C.set_num_threads(before)
    for a, b_, c in zip(one, two, again):
        assert np.array_equal(a, b_) and np.array_equal(b_, c)
    x64, w64, gy64 = x.astype(float), w.astype(float), np.cos(one[0]).astype(float)
    refs = [conv_ref(x64, w64, b.astype(float), *geo), input_grad_ref(gy64, w64, xs[2:], *geo),
            weight_grad_ref(x64, gy64, ws[2:], *geo), gy64.sum((0, 2, 3))]
    for got, ref in zip(one, refs):
        scale = np.abs(ref).max()
        np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-5 * scale)


def test_bad_input_raises_value_error_naming_the_op():
    x = np.zeros((2, 4, 6, 6))
    w = np.zeros((6, 2, 3, 3))
    geo = ((1, 1), (0, 0), (1, 1), 2)
    bad = [
        lambda: _C.conv2d(x.astype(np.float32), w, None, *geo),                     # dtypes differ
        lambda: _C.conv2d(x.astype(np.int64), w.astype(np.int64), None, *geo),       # not float
        lambda: _C.conv2d(x[..., ::2], w, None, *geo),                               # not contiguous
        lambda: _C.conv2d(x[0], w, None, *geo),                                      # rank
        lambda: _C.conv2d(x, w, None, (1, 1), (0, 0), (1, 1), 3),                    # groups
        lambda: _C.conv2d(x, w, None, (1, 1), (0, 0), (1, 1), 1),                    # channels
        lambda: _C.conv2d(x, w, None, (0, 1), (0, 0), (1, 1), 2),                    # stride
        lambda: _C.conv2d(x, w, None, (1, 1), (-1, 0), (1, 1), 2),                   # padding
        lambda: _C.conv2d(x, w, None, (1, 1), (0, 0), (0, 1), 2),                    # dilation
        lambda: _C.conv2d(x, w, None, (1, 1), (0, 0), (4, 1), 2),                    # empty output
        lambda: _C.conv2d(x, w, np.zeros(5), *geo),                                  # bias shape
        lambda: _C.conv2d(x, np.zeros((6, 2, 0, 3)), None, *geo),                    # empty kernel
    ]
    for f in bad:
        with pytest.raises(ValueError, match="^conv2d: "):
            f()
    gy = np.zeros((2, 6, 4, 4))
    with pytest.raises(ValueError, match="conv2d_input_grad"):
        _C.conv2d_input_grad(gy, w, (3, 3), *geo)                                    # gy too big for input
    with pytest.raises(ValueError, match="conv2d_input_grad"):
        _C.conv2d_input_grad(gy[:, :5], w, (6, 6), *geo)                             # channels
    with pytest.raises(ValueError, match="conv2d_weight_grad"):
        _C.conv2d_weight_grad(x, gy[:1], (3, 3), *geo)                               # batch
    with pytest.raises(ValueError, match="conv2d_weight_grad"):
        _C.conv2d_weight_grad(x, gy.astype(np.float32), (3, 3), *geo)
    with pytest.raises(ValueError, match="conv2d_bias_grad"):
        _C.conv2d_bias_grad(gy[0])


def test_empty_batch():
    x, w = np.zeros((0, 2, 5, 5)), np.ones((3, 2, 2, 2))
    geo = ((1, 1), (0, 0), (1, 1), 1)
    assert _C.conv2d(x, w, None, *geo).shape == (0, 3, 4, 4)
    assert np.array_equal(_C.conv2d_weight_grad(x, np.zeros((0, 3, 4, 4)), (2, 2), *geo), np.zeros_like(w))


@pytest.mark.torch
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(g=geometries(), op=st.tuples(st.integers(0, 2), st.integers(0, 2)))
def test_matches_torch(g, op):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    rng, x, w, b = make(g, np.float64)
    if min(output_hw(g)) >= 1:
        t = [torch.from_numpy(a) for a in (x, w)]
        tb = None if b is None else torch.from_numpy(b)
        np.testing.assert_allclose(_C.conv2d(x, w, b, *args(g)),
                                   F.conv2d(t[0], t[1], tb, *args(g)).numpy(), rtol=1e-10, atol=1e-10)
    op = tuple(min(o, max(s, d) - 1) for o, s, d in zip(op, g["s"], g["d"]))
    hw = tuple((n - 1) * s - 2 * p + d * (k - 1) + o + 1
               for n, k, s, p, d, o in zip(g["hw"], g["k"], g["s"], g["p"], g["d"], op))
    if min(hw) >= 1:
        wt = rng.standard_normal((g["C"], g["O"] // g["groups"], *g["k"]))
        ref = F.conv_transpose2d(torch.from_numpy(x), torch.from_numpy(wt), None, g["s"], g["p"], op,
                                 g["groups"], g["d"]).numpy()
        np.testing.assert_allclose(_C.conv2d_input_grad(x, wt, hw, *args(g)), ref, rtol=1e-10, atol=1e-10)


def test_huge_geometry_is_exact_or_refused():
    """Sizes from huge strides, paddings and dilations are computed without int64 overflow:
    exact when the output is small, else a ValueError naming the op and the values (the
    unchecked arithmetic returned an output of the input's size for a dilation of 2**62)."""
    x, w = np.ones((1, 1, 5, 13)), np.ones((1, 1, 5, 5))
    for stride in (2**62, 2**63 - 1):
        y = _C.conv2d(x, w[..., :1, :1], None, (stride, stride), (0, 0), (1, 1), 1)
        assert y.shape == (1, 1, 1, 1) and y[0, 0, 0, 0] == 1
    with pytest.raises(ValueError, match=r"^conv2d: output size overflows int64: .*dilation \(4611686018427387904,"):
        _C.conv2d(x, w, None, (1, 1), (0, 0), (2**62, 1), 1)
    with pytest.raises(ValueError, match=r"^conv2d: output size overflows int64: .*padding \(4611686018427387904,"):
        _C.conv2d(x, w, None, (1, 1), (2**62, 0), (1, 1), 1)
    with pytest.raises(ValueError, match=r"^conv2d: the output \(N, O, Ho, Wo\) = \(1, 1, 2199023255553, .* int64"):
        _C.conv2d(x, w, None, (1, 1), (2**40, 2**40), (1, 1), 1)
    gy = np.ones((1, 1, 1, 9))
    with pytest.raises(ValueError, match=r"^conv2d_input_grad: the input gradient .* int64"):
        _C.conv2d_input_grad(gy, w, (2**40, 2**40), (2**41, 1), (0, 0), (1, 1), 1)
    with pytest.raises(ValueError, match=r"^conv2d_weight_grad: output size overflows int64"):
        _C.conv2d_weight_grad(x, gy, (5, 5), (1, 1), (2**62, 0), (1, 1), 1)
