"""conv3d kernels in tapegrad._C against a direct numpy reference, as adjoints of each other, and
bit-identical for 1 and 2 threads (the kernels are the 2-D ones with a depth dim: test_conv.py)."""
import itertools

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from tapegrad import _C

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def out_size(n, k, s, p, d):
    return (n + 2 * p - d * (k - 1) - 1) // s + 1


def tap_slice(tap, out, s, d):
    """The spatial slice of a padded array that kernel tap ``tap`` multiplies, per output position."""
    return tuple(slice(t * d_, t * d_ + s_ * (o - 1) + 1, s_) for t, o, s_, d_ in zip(tap, out, s, d))


def conv_ref(x, w, b, s, p, d, groups):
    N, C = x.shape[:2]
    O, Cg = w.shape[:2]
    k = w.shape[2:]
    out = tuple(out_size(n, k_, s_, p_, d_) for n, k_, s_, p_, d_ in zip(x.shape[2:], k, s, p, d))
    xp = np.pad(x, ((0, 0), (0, 0)) + tuple((p_, p_) for p_ in p))
    y = np.zeros((N, O) + out, x.dtype)
    Og = O // groups
    for g in range(groups):
        for tap in itertools.product(*map(range, k)):
            patch = xp[(slice(None), slice(g * Cg, (g + 1) * Cg)) + tap_slice(tap, out, s, d)]
            y[:, g * Og:(g + 1) * Og] += np.einsum("ncdhw,oc->nodhw", patch, w[(slice(g * Og, (g + 1) * Og), slice(None)) + tap])
    return y if b is None else y + b[:, None, None, None]


def input_grad_ref(gy, w, size, s, p, d, groups):
    """Adjoint of conv_ref in x; gy may be smaller than the convolution's output (conv_transpose3d)."""
    N, O = gy.shape[:2]
    out = gy.shape[2:]
    Cg, k = w.shape[1], w.shape[2:]
    room = tuple(max(n + 2 * p_, (o - 1) * s_ + d_ * (k_ - 1) + 1) for n, o, k_, s_, p_, d_ in zip(size, out, k, s, p, d))
    gxp = np.zeros((N, Cg * groups) + room, gy.dtype)
    Og = O // groups
    for g in range(groups):
        for tap in itertools.product(*map(range, k)):
            gxp[(slice(None), slice(g * Cg, (g + 1) * Cg)) + tap_slice(tap, out, s, d)] += np.einsum(
                "nodhw,oc->ncdhw", gy[:, g * Og:(g + 1) * Og], w[(slice(g * Og, (g + 1) * Og), slice(None)) + tap])
    return gxp[(slice(None), slice(None)) + tuple(slice(p_, p_ + n) for p_, n in zip(p, size))]


def weight_grad_ref(x, gy, k, s, p, d, groups):
    C, O = x.shape[1], gy.shape[1]
    out = gy.shape[2:]
    Cg, Og = C // groups, O // groups
    # zero-extended at the end so taps beyond the input (output_padding) read zeros
    xp = np.pad(x, ((0, 0), (0, 0)) + tuple((p_, p_ + s_ * o + d_ * k_) for p_, s_, o, d_, k_ in zip(p, s, out, d, k)))
    gw = np.zeros((O, Cg) + tuple(k), x.dtype)
    for g in range(groups):
        for tap in itertools.product(*map(range, k)):
            patch = xp[(slice(None), slice(g * Cg, (g + 1) * Cg)) + tap_slice(tap, out, s, d)]
            gw[(slice(g * Og, (g + 1) * Og), slice(None)) + tap] = np.einsum(
                "nodhw,ncdhw->oc", gy[:, g * Og:(g + 1) * Og], patch)
    return gw


triple = lambda lo, hi: st.tuples(*[st.integers(lo, hi)] * 3)  # noqa: E731


@st.composite
def geometries(draw):
    groups = draw(st.integers(1, 3))
    return dict(N=draw(st.integers(1, 2)), C=draw(st.integers(1, 2)) * groups, O=draw(st.integers(1, 2)) * groups,
                groups=groups, size=draw(triple(1, 6)), k=draw(triple(1, 3)), s=draw(triple(1, 3)),
                p=draw(triple(0, 2)), d=draw(triple(1, 2)), bias=draw(st.booleans()),
                seed=draw(st.integers(0, 2**32 - 1)))


def make(g, dtype):
    rng = np.random.default_rng(g["seed"])
    x = rng.standard_normal((g["N"], g["C"], *g["size"])).astype(dtype)
    w = rng.standard_normal((g["O"], g["C"] // g["groups"], *g["k"])).astype(dtype)
    b = rng.standard_normal(g["O"]).astype(dtype) if g["bias"] else None
    return rng, x, w, b


def args(g):
    return g["s"], g["p"], g["d"], g["groups"]


def output_size(g):
    return tuple(out_size(n, k, s, p, d) for n, k, s, p, d in zip(g["size"], g["k"], g["s"], g["p"], g["d"]))


@pytest.mark.parametrize("dtype, tol", [(np.float64, 1e-10), (np.float32, 1e-4)])
@SETTINGS
@given(g=geometries())
def test_conv3d_matches_reference(dtype, tol, g):
    rng, x, w, b = make(g, dtype)
    out = output_size(g)
    if min(out) < 1:
        with pytest.raises(ValueError, match="^conv3d: output would be empty"):
            _C.conv3d(x, w, b, *args(g))
        return
    y = _C.conv3d(x, w, b, *args(g))
    assert y.dtype == dtype and y.shape == (g["N"], g["O"], *out)
    f64 = lambda a: None if a is None else a.astype(np.float64)  # noqa: E731
    np.testing.assert_allclose(y, conv_ref(f64(x), f64(w), f64(b), *args(g)), rtol=tol, atol=tol)
    gy = rng.standard_normal(y.shape).astype(dtype)
    gx = _C.conv3d_input_grad(gy, w, g["size"], *args(g))
    gw = _C.conv3d_weight_grad(x, gy, g["k"], *args(g))
    gb = _C.conv3d_bias_grad(gy)
    assert gx.shape == x.shape and gw.shape == w.shape and gb.shape == (g["O"],)
    assert gx.dtype == gw.dtype == gb.dtype == dtype
    np.testing.assert_allclose(gx, input_grad_ref(f64(gy), f64(w), g["size"], *args(g)), rtol=tol, atol=tol)
    np.testing.assert_allclose(gw, weight_grad_ref(f64(x), f64(gy), g["k"], *args(g)), rtol=tol, atol=tol * 10)
    np.testing.assert_allclose(gb, f64(gy).sum((0, 2, 3, 4)), rtol=tol, atol=tol * 10)


@SETTINGS
@given(g=geometries(), op=triple(0, 2))
def test_conv_transpose3d_output_padding(g, op):
    """conv_transpose3d = conv3d_input_grad on an output grown by output_padding; its weight
    gradient is conv3d_weight_grad with input and output swapped, and the two are adjoint."""
    op = tuple(min(o, max(s, d) - 1) for o, s, d in zip(op, g["s"], g["d"]))
    size = tuple((n - 1) * s - 2 * p + d * (k - 1) + o + 1
                 for n, k, s, p, d, o in zip(g["size"], g["k"], g["s"], g["p"], g["d"], op))
    assume(min(size) >= 1)
    rng, x, _, _ = make(g, np.float64)
    w = rng.standard_normal((g["C"], g["O"] // g["groups"], *g["k"]))
    y = _C.conv3d_input_grad(x, w, size, *args(g))
    assert y.shape == (g["N"], g["O"], *size)
    np.testing.assert_allclose(y, input_grad_ref(x, w, size, *args(g)), rtol=1e-10, atol=1e-10)
    gy = rng.standard_normal(y.shape)
    gw = _C.conv3d_weight_grad(gy, x, g["k"], *args(g))
    np.testing.assert_allclose(gw, weight_grad_ref(gy, x, g["k"], *args(g)), rtol=1e-10, atol=1e-9)
    assert abs(np.vdot(y, gy) - np.vdot(w, gw)) < 1e-10 * (1 + abs(np.vdot(y, gy)))


C3D = [  # (x, w, stride, padding, groups): a C3D-like block, a strided grouped one, pointwise, one pixel
    ((4, 3, 6, 10, 12), (8, 3, 3, 3, 3), (1, 1, 1), (1, 1, 1), 1),
    ((5, 6, 7, 5, 9), (4, 3, 2, 3, 2), (2, 1, 2), (1, 0, 1), 2),
    ((3, 8, 3, 4, 5), (16, 8, 1, 1, 1), (1, 1, 1), (0, 0, 0), 1),
    ((33, 4, 1, 1, 1), (6, 4, 3, 3, 3), (1, 1, 1), (1, 1, 1), 1),
    ((40, 2, 3, 3, 3), (3, 2, 2, 2, 2), (1, 1, 1), (0, 0, 0), 1),  # several images per GEMM, 16 chunks
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("xs, ws, stride, padding, groups", C3D)
def test_bit_identical_across_thread_counts(dtype, xs, ws, stride, padding, groups):
    rng = np.random.default_rng(0)
    x, w, b = (rng.standard_normal(s).astype(dtype) for s in (xs, ws, ws[:1]))
    geo = (stride, padding, (1, 1, 1), groups)

    def run():
        y = _C.conv3d(x, w, b, *geo)
        gy = np.cos(y)
        return [y, _C.conv3d_input_grad(gy, w, xs[2:], *geo), _C.conv3d_weight_grad(x, gy, ws[2:], *geo),
                _C.conv3d_bias_grad(gy)]

    before = _C.get_num_threads()
    try:
        _C.set_num_threads(1)
        one = run()
        _C.set_num_threads(2)
        two = run()
    finally:
        _C.set_num_threads(before)
    for a, b_ in zip(one, two):
        assert np.array_equal(a, b_)
    x64, w64, gy64 = x.astype(float), w.astype(float), np.cos(one[0]).astype(float)
    refs = [conv_ref(x64, w64, b.astype(float), *geo), input_grad_ref(gy64, w64, xs[2:], *geo),
            weight_grad_ref(x64, gy64, ws[2:], *geo), gy64.sum((0, 2, 3, 4))]
    for got, ref in zip(one, refs):
        np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-5 * np.abs(ref).max())


def test_conv2d_is_conv3d_of_depth_one():
    """The 2-D entry points are the 3-D kernels at depth 1: identical bits."""
    rng = np.random.default_rng(1)
    x, w = rng.standard_normal((3, 4, 7, 6)), rng.standard_normal((6, 2, 3, 2))
    geo2, geo3 = ((2, 1), (1, 0), (1, 2), 2), ((1, 2, 1), (0, 1, 0), (1, 1, 2), 2)
    y2 = _C.conv2d(x, w, None, *geo2)
    np.testing.assert_array_equal(y2, _C.conv3d(x[:, :, None], w[:, :, None], None, *geo3)[:, :, 0])
    np.testing.assert_array_equal(_C.conv2d_weight_grad(x, y2, (3, 2), *geo2),
                                  _C.conv3d_weight_grad(x[:, :, None], y2[:, :, None], (1, 3, 2), *geo3)[:, :, 0])


def test_bad_input_raises_value_error_naming_the_op():
    x, w = np.zeros((2, 4, 3, 6, 6)), np.zeros((3, 4, 2, 3, 3))
    geo = ((1, 1, 1), (0, 0, 0), (1, 1, 1), 1)
    cases = [
        (lambda: _C.conv3d(x[0], w, None, *geo), r"^conv3d: expected x of shape \(N, C, D, H, W\), got \(4, 3, 6, 6\)"),
        (lambda: _C.conv3d(x, w[0], None, *geo), r"^conv3d: expected weight of shape \(O, C/groups, kd, kh, kw\)"),
        (lambda: _C.conv3d(x, np.zeros((3, 4, 4, 3, 3)), None, *geo), r"^conv3d: output would be empty: input \(3, 6, 6\), kernel \(4, 3, 3\)"),
        (lambda: _C.conv3d(x, w, None, (1, 0, 1), (0, 0, 0), (1, 1, 1), 1), r"^conv3d: stride must be positive, got \(1, 0, 1\)"),
        (lambda: _C.conv3d(x, w, None, (1, 1, 1), (0, -1, 0), (1, 1, 1), 1), "^conv3d: padding must be non-negative"),
        (lambda: _C.conv3d(x, w.astype(np.float32), None, *geo), "^conv3d: dtypes differ"),
        (lambda: _C.conv3d(x, w, np.zeros(2), *geo), r"^conv3d: bias must have shape \(3,\)"),
        (lambda: _C.conv3d(x[..., ::2], w, None, *geo), "^conv3d: x must be C-contiguous"),
        (lambda: _C.conv3d(x, np.zeros((3, 2, 2, 3, 3)), None, (1, 1, 1), (0, 0, 0), (1, 1, 1), 3),
         "^conv3d: groups=3 must divide in_channels=4"),
        (lambda: _C.conv3d_input_grad(np.zeros((2, 3, 9, 4, 4)), w, (3, 6, 6), *geo),
         r"^conv3d_input_grad: grad_output \(2, 3, 9, 4, 4\) does not fit input size \(3, 6, 6\) whose convolution "
         r"output is \(2, 4, 4\)"),
        (lambda: _C.conv3d_weight_grad(x, np.zeros((1, 3, 2, 4, 4)), (2, 3, 3), *geo), "^conv3d_weight_grad: batch sizes differ"),
        (lambda: _C.conv3d(x, w, None, (1, 1, 1), (2**62, 0, 0), (1, 1, 1), 1),
         r"^conv3d: output size overflows int64: .*padding \(4611686018427387904, 0, 0\)"),
        (lambda: _C.conv3d_input_grad(np.ones((1, 3, 1, 1, 1)), w, (2**30, 2**30, 2**30), (2**31,) * 3, (0, 0, 0), (1, 1, 1), 1),
         r"^conv3d_input_grad: the input gradient \(N, C, D, H, W\) = \(1, 4, 1073741824, .* int64"),
    ]
    for call, match in cases:
        with pytest.raises(ValueError, match=match):
            call()


@pytest.mark.parametrize("g", [
    dict(N=2, C=4, O=6, groups=2, size=(5, 4, 6), k=(3, 2, 3), s=(2, 1, 2), p=(1, 0, 1), d=(1, 2, 1), bias=True, seed=3),
    dict(N=1, C=3, O=3, groups=3, size=(4, 5, 5), k=(2, 2, 2), s=(1, 2, 1), p=(1, 1, 1), d=(2, 1, 1), bias=False, seed=4),
])
@pytest.mark.parametrize("op", [(0, 0, 0), (1, 0, 1)])
def test_matches_torch(g, op):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    rng, x, w, b = make(g, np.float64)
    ref = F.conv3d(torch.from_numpy(x), torch.from_numpy(w), None if b is None else torch.from_numpy(b),
                   g["s"], g["p"], g["d"], g["groups"]).numpy()
    np.testing.assert_allclose(_C.conv3d(x, w, b, *args(g)), ref, rtol=1e-10, atol=1e-10)
    op = tuple(min(o, max(s, d) - 1) for o, s, d in zip(op, g["s"], g["d"]))
    wt = rng.standard_normal((g["C"], g["O"] // g["groups"], *g["k"]))
    ref = F.conv_transpose3d(torch.from_numpy(x), torch.from_numpy(wt), None, g["s"], g["p"], op, g["groups"],
                             g["d"]).numpy()
    np.testing.assert_allclose(_C.conv3d_input_grad(x, wt, ref.shape[2:], *args(g)), ref, rtol=1e-10, atol=1e-10)
