"""The convolution kernels' per-shape methods (csrc/kernels/conv.cpp): on an AVX-512 CPU the direct
products (stride 1 on the padded grid, by shifted taps where the output keeps the input's size
and the grid does not pay, vol2col otherwise, pointwise in place, dots or kernel rows for the
weight gradient), the single-pixel GEMMs, and the vol2col + gemm path (TAPEGRAD_CONV_KERNEL=gemm, and on
other CPUs). Each shape below is chosen to land on one of them; every pass is checked against
PyTorch and as an adjoint of the others, in float32 and float64, and for 1 and 2 threads."""
import os
import subprocess
import sys

import numpy as np
import pytest

import tapegrad
from tapegrad import _C

try:
    import torch
except ImportError:  # the adjoint checks still run
    torch = None

# name: batch, in channels, spatial size, out channels, kernel, stride, padding, dilation, groups
SHAPES = {
    "stride 1, padded grid (16x16)": (3, 5, (16, 17), 7, (3, 3), 1, 1, 1, 1),
    "stride 1, groups": (2, 6, (15, 16), 10, (3, 3), 1, 1, 1, 2),
    "stride 1, small image (shifted taps)": (3, 8, (8, 8), 9, (3, 3), 1, 1, 1, 1),
    "stride 1, shifted taps, dilated, odd sizes": (2, 8, (9, 7), 5, (3, 3), 1, 2, 2, 1),
    "stride 1, unpadded 5x5": (2, 3, (20, 19), 4, (5, 5), 1, 0, 1, 1),
    "stride 1, dilated, uneven padding": (2, 3, (15, 14), 5, (3, 5), 1, (2, 1), (2, 1), 1),
    "stride 1, padding past the kernel's reach": (2, 4, (16, 16), 3, (3, 3), 1, 3, 1, 1),
    "stride 2": (2, 4, (17, 19), 6, (3, 3), 2, 1, 1, 1),
    "1x1 stride 2": (2, 5, (12, 13), 4, (1, 1), 2, 0, 1, 1),
    "pointwise": (2, 5, (12, 13), 4, (1, 1), 1, 0, 1, 1),
    "ResNet 64->64 8x8": (4, 64, (8, 8), 64, (3, 3), 1, 1, 1, 1),
    # below 32 output positions per image the forward pass and input gradient go by vol2col + gemm
    # over several images (ResNet-18's 4x4 stages), from 32 by direct products
    "4x4 output, gemm over images, odd channels": (5, 19, (4, 4), 23, (3, 3), 1, 1, 1, 1),
    "4x4 output of stride 2, odd channels": (3, 13, (8, 7), 17, (3, 3), 2, 1, 1, 1),
    # one chunk of small images: the kernel-rows weight gradient splits its products over
    # output channels (tiles of 32) for the threads
    "kernel rows, one chunk, 45 output channels": (3, 13, (4, 5), 45, (3, 3), 1, 1, 1, 1),
    "6x6 output (direct), odd channels": (3, 11, (6, 6), 9, (3, 3), 1, 1, 1, 1),
    "kernel rows, stride 2, odd sizes": (3, 16, (11, 21), 12, (3, 3), 2, 1, 1, 1),
    "kernel rows, channels not a multiple of 8, groups": (2, 24, (9, 10), 20, (3, 3), 1, 1, (2, 1), 2),
    "kernel rows, output channels in two blocks, groups": (3, 24, (5, 6), 262, (3, 3), 1, 1, 1, 2),
    "kernel rows, output channels in blocks, stride 2": (5, 16, (4, 5), 139, (3, 3), 2, 1, 1, 1),
    # small outputs (at most 32 positions) go through vol2col / col2vol by a table of tap offsets,
    # across all the images of a GEMM; with more weights than outputs, the non-finite check scans
    # the output (forward) or x and gy (weight gradient) instead of the weights
    "2x2 output, weights outnumber outputs": (2, 40, (2, 2), 48, (3, 3), 1, 1, 1, 1),
    "3x3 output of stride 2, dilated": (3, 9, (5, 6), 7, (3, 3), 2, 2, 2, 1),
    "3-D small output, weights outnumber outputs": (2, 6, (2, 3, 2), 5, (3, 3, 3), 1, 1, 1, 1),
    "single pixel": (5, 24, (1, 1), 20, (3, 3), 1, 1, 1, 1),
    "single pixel, no tap on it": (5, 8, (1, 1), 6, (3, 2), 1, (2, 1), 2, 2),
    "3-D stride 1": (2, 3, (6, 7, 8), 4, (3, 3, 3), 1, 1, 1, 1),
    "3-D stride 2": (2, 3, (6, 7, 9), 4, (3, 2, 3), 2, 1, 1, 1),
}


def geometry(shape):
    N, C, size, O, k, stride, padding, dilation, groups = shape
    nd = len(size)
    tup = lambda v: tuple(v) if isinstance(v, tuple) else (v,) * nd  # noqa: E731
    return tup(stride), tup(padding), tup(dilation), groups


def operands(shape, dtype, seed=0):
    N, C, size, O, k, *_, groups = shape
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((N, C) + size).astype(dtype)
    w = rng.standard_normal((O, C // groups) + k).astype(dtype)
    b = rng.standard_normal(O).astype(dtype)
    return rng, x, w, b


def passes(shape, dtype):
    """y = conv(x, w, b), and the input, weight and bias gradients at a random gy."""
    nd = len(shape[2])
    conv, input_grad, weight_grad, bias_grad = (getattr(_C, f"conv{nd}d{s}") for s in
                                                ("", "_input_grad", "_weight_grad", "_bias_grad"))
    rng, x, w, b = operands(shape, dtype)
    geo = geometry(shape)
    y = conv(x, w, b, *geo)
    gy = rng.standard_normal(y.shape).astype(dtype)
    return x, w, b, gy, [y, input_grad(gy, w, x.shape[2:], *geo), weight_grad(x, gy, w.shape[2:], *geo),
                         bias_grad(gy)]


def check_shape(name, dtype):
    """Every pass against PyTorch (when installed) and as adjoints, in this process's kernel mode."""
    shape = SHAPES[name]
    x, w, b, gy, got = passes(shape, dtype)
    y, gx, gw, gb = got
    # <conv(x, w), gy> = <x, input_grad(gy, w)> = <w, weight_grad(x, gy)> (bias aside)
    f = lambda a, c: float(np.vdot(a.astype(np.float64), c.astype(np.float64)))  # noqa: E731
    bias_part = f(gy.sum(tuple(i for i in range(gy.ndim) if i != 1)), b)
    forms = [f(y, gy) - bias_part, f(x, gx), f(w, gw)]
    scale = np.abs(y).max() * np.abs(gy).sum() + 1
    tol = 1e-12 if dtype == np.float64 else 1e-5
    assert np.allclose(forms, forms[0], rtol=0, atol=tol * scale), (name, forms)
    if torch is None:
        return
    nd = len(shape[2])
    stride, padding, dilation, groups = geometry(shape)
    tx, tw, tb, tgy = (torch.from_numpy(a.astype(np.float64)) for a in (x, w, b, gy))
    ref_y = getattr(torch.nn.functional, f"conv{nd}d")(tx, tw, tb, stride, padding, dilation, groups)
    ref_gx, ref_gw, _ = torch.ops.aten.convolution_backward(
        tgy, tx, tw, None, list(stride), list(padding), list(dilation), False, [0] * nd, groups, [True, True, False])
    ref_gb = tgy.sum((0,) + tuple(range(2, 2 + nd)))
    for what, a, r in (("y", y, ref_y), ("gx", gx, ref_gx), ("gw", gw, ref_gw), ("gb", gb, ref_gb)):
        r = r.numpy()
        scale = np.abs(r).max() + 1
        assert a.dtype == dtype and a.shape == r.shape
        np.testing.assert_allclose(a, r, rtol=0, atol=tol * 10 * scale, err_msg=f"{name}: {what}")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", list(SHAPES))
def test_each_method_matches_torch_and_is_adjoint(name, dtype):
    check_shape(name, dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", list(SHAPES))
def test_each_method_bit_identical_for_1_and_2_threads(name, dtype):
    before = _C.get_num_threads()
    try:
        _C.set_num_threads(1)
        one = passes(SHAPES[name], dtype)[-1]
        _C.set_num_threads(2)
        two = passes(SHAPES[name], dtype)[-1]
    finally:
        _C.set_num_threads(before)
    for a, b in zip(one, two):
        assert np.array_equal(a, b)


def test_gemm_path_when_forced():
    """TAPEGRAD_CONV_KERNEL=gemm (what a CPU without AVX-512 runs) passes the same checks, non-finite
    values included."""
    here = os.path.dirname(os.path.abspath(__file__))
    code = (f"import sys; sys.path.insert(0, {here!r}); import numpy as np, test_conv_paths as t\n"
            "for name in t.SHAPES:\n"
            "    for dtype in (np.float32, np.float64): t.check_shape(name, dtype)\n"
            "for case in t.NONFINITE:\n"
            "    for dtype in (np.float32, np.float64): t.check_nonfinite(case, dtype)\n")
    env = dict(os.environ, TAPEGRAD_CONV_KERNEL="gemm")
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]


def test_float32_error_against_float64():
    """The direct products sum in a different order than vol2col + gemm, not less accurately:
    ResNet's 32->32 layer in float32 is within a few float32 ulps of the float64 result."""
    shape = (2, 32, (16, 16), 32, (3, 3), 1, 1, 1, 1)
    x, w, b, gy, got32 = passes(shape, np.float32)
    geo = geometry(shape)
    x64, w64, gy64 = x.astype(np.float64), w.astype(np.float64), gy.astype(np.float64)
    ref = [_C.conv2d(x64, w64, b.astype(np.float64), *geo), _C.conv2d_input_grad(gy64, w64, x.shape[2:], *geo),
           _C.conv2d_weight_grad(x64, gy64, w.shape[2:], *geo)]
    for a, r in zip(got32, ref):
        rel = np.abs(a - r).max() / np.abs(r).max()
        assert rel < 2e-6, rel


def test_gradcheck_through_the_padded_grid_with_a_non_contiguous_input():
    """float64 gradcheck (and double backward) of F.conv2d on a 14x14 image, large enough for the
    padded-grid method, with a transposed (non-contiguous) input."""
    F = tapegrad.nn.functional
    rng = np.random.default_rng(3)
    x = tapegrad.tensor(rng.standard_normal((1, 14, 14, 2)), requires_grad=True)
    w = tapegrad.tensor(rng.standard_normal((2, 2, 3, 3)), requires_grad=True)
    fn = lambda x, w: F.conv2d(x.permute(0, 3, 1, 2), w, padding=1)  # noqa: E731
    assert tapegrad.autograd.gradcheck(fn, (x, w))
    assert tapegrad.autograd.gradgradcheck(fn, (x, w))


# name of a SHAPES entry, operand, index, value: one non-finite value placed where a fast path
# would multiply it by a padding or grid-filler zero (or at an ordinary position)
NONFINITE = [
    ("stride 1, padded grid (16x16)", "w", (0, 0, 0, 0), np.inf),
    ("stride 1, padded grid (16x16)", "w", (6, 4, 2, 2), np.nan),
    ("stride 1, padded grid (16x16)", "x", (0, 0, 0, 16), np.inf),
    ("stride 1, padded grid (16x16)", "x", (1, 2, 7, 7), np.nan),
    ("stride 1, padded grid (16x16)", "gy", (0, 0, 0, 0), -np.inf),
    ("stride 1, unpadded 5x5", "w", (0, 0, 0, 0), np.inf),
    ("stride 1, unpadded 5x5", "x", (0, 0, 0, 18), np.inf),
    ("stride 1, small image (shifted taps)", "w", (0, 0, 0, 0), np.inf),
    ("stride 1, small image (shifted taps)", "gy", (0, 0, 0, 0), np.inf),
    ("stride 1, small image (shifted taps)", "x", (0, 0, 0, 7), np.inf),
    ("stride 1, small image (shifted taps)", "x", (2, 7, 7, 0), -np.inf),
    ("stride 1, shifted taps, dilated, odd sizes", "x", (1, 3, 8, 6), np.nan),
    ("stride 2", "w", (0, 0, 0, 0), np.inf),
    ("stride 2", "gy", (1, 5, 0, 9), np.inf),
    ("kernel rows, stride 2, odd sizes", "x", (0, 3, 0, 20), np.inf),
    ("kernel rows, stride 2, odd sizes", "gy", (2, 11, 5, 10), -np.inf),
    ("2x2 output, weights outnumber outputs", "w", (0, 0, 0, 0), np.inf),
    ("2x2 output, weights outnumber outputs", "w", (3, 5, 1, 1), -np.inf),
    ("2x2 output, weights outnumber outputs", "x", (1, 7, 0, 1), np.inf),
    ("2x2 output, weights outnumber outputs", "gy", (0, 9, 1, 0), np.inf),
    ("3-D small output, weights outnumber outputs", "w", (0, 0, 0, 0, 0), np.inf),
    ("3-D stride 1", "w", (0, 0, 0, 0, 0), np.inf),
    ("3-D stride 1", "gy", (0, 0, 0, 0, 0), np.inf),
]  # (no grouped case: PyTorch 2.13's float32 grouped convolution does give NaN at 0 * inf in the padding)


def check_nonfinite(case, dtype):
    """A tap in the padding contributes no term (as PyTorch's float32 kernels and every input
    gradient have it), so 0 * inf never makes a NaN there: the NaN/inf pattern and the finite values
    match PyTorch's float32 run on the same values."""
    name, where, index, value = case
    shape = SHAPES[name]
    nd = len(shape[2])
    conv, input_grad, weight_grad = (getattr(_C, f"conv{nd}d{s}") for s in ("", "_input_grad", "_weight_grad"))
    rng, x, w, _ = operands(shape, dtype)
    geo = geometry(shape)
    gy = rng.standard_normal(conv(x, w, None, *geo).shape).astype(dtype)
    {"x": x, "w": w, "gy": gy}[where][index] = value
    got = [conv(x, w, None, *geo), input_grad(gy, w, x.shape[2:], *geo), weight_grad(x, gy, w.shape[2:], *geo)]
    if torch is None:
        return got
    stride, padding, dilation, groups = geometry(shape)
    tx, tw, tgy = (torch.from_numpy(a.astype(np.float32)) for a in (x, w, gy))
    ref = [getattr(torch.nn.functional, f"conv{nd}d")(tx, tw, None, stride, padding, dilation, groups)]
    ref += torch.ops.aten.convolution_backward(tgy, tx, tw, None, list(stride), list(padding), list(dilation), False,
                                               [0] * nd, groups, [True, True, False])[:2]
    for what, a, r in zip(("y", "gx", "gw"), got, ref):
        r = r.numpy()
        for kind in (np.isnan, np.isposinf, np.isneginf):
            assert np.array_equal(kind(a), kind(r)), (case, what, kind.__name__, kind(a).sum(), kind(r).sum())
        fin = np.isfinite(r)
        np.testing.assert_allclose(a[fin], r[fin], rtol=1e-4, atol=1e-3, err_msg=f"{case}: {what}")
    return got


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", NONFINITE, ids=lambda c: f"{c[0]}-{c[1]}{c[2]}={c[3]}")
def test_nonfinite_values_meet_no_padding_zero(case, dtype):
    before = _C.get_num_threads()
    try:
        _C.set_num_threads(1)
        one = check_nonfinite(case, dtype)
        _C.set_num_threads(2)
        two = check_nonfinite(case, dtype)
    finally:
        _C.set_num_threads(before)
    for a, b in zip(one, two):
        assert np.array_equal(a, b, equal_nan=True)
