"""The Winograd route of 3x3 stride-1 convolutions (csrc/kernels/winograd.cpp): forward and input
gradient against PyTorch and a float64 direct convolution, odd sizes (images not a multiple of the
tile, 1x1 and 2x2 images with padding), both dtypes, padding 0 and 1, bias, 1 against 2 threads bit
for bit, gradcheck through F.conv2d, the fallback on non-finite inputs, and the ISA builds.

The route is chosen once per process: TAPEGRAD_CONV_KERNEL=winograd takes it wherever it applies.
The tests here run in this process (where only the shapes the routing rule sends to Winograd take
it) and again, through test_forced_route_subprocess, in a fresh process with the route forced, at
each instruction-set level this CPU has.
"""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import tapegrad
import tapegrad.nn.functional as F  # noqa: N812
from tapegrad import _C
from tapegrad.autograd import gradcheck

try:
    import torch
except ImportError:  # the float64 reference checks still run
    torch = None

ROOT = Path(__file__).resolve().parents[2]
FORCED = os.environ.get("TAPEGRAD_CONV_KERNEL") == "winograd"
ONE = (1, 1)

# batch, in channels, out channels, (H, W), padding
SHAPES = [
    (2, 5, 7, (9, 11), 1),     # odd sizes, neither a multiple of the tile
    (3, 8, 6, (8, 8), 1),
    (2, 4, 3, (1, 1), 1),      # a single pixel, all but the centre tap in the padding
    (2, 3, 5, (2, 2), 1),
    (2, 6, 4, (7, 6), 0),      # unpadded: the input gradient is a padding-2 convolution
    (1, 3, 2, (3, 3), 0),      # unpadded to a single output
    (2, 33, 40, (13, 10), 1),  # channels past a vector of them
]
IDS = [f"{n}x{c}->{o} {h}x{w} pad {p}" for n, c, o, (h, w), p in SHAPES]


def direct64(x, w, pad):
    """float64 direct convolution, the reference; a tap in the padding adds no term (as in PyTorch's
    float32 kernels), so an inf weight meets no padding zero."""
    N, C, H, W = x.shape
    O = w.shape[0]
    Ho, Wo = H + 2 * pad - 2, W + 2 * pad - 2
    y = np.zeros((N, O, Ho, Wo))
    for i in range(3):
        for j in range(3):
            oh0, oh1 = max(0, pad - i), min(Ho, H + pad - i)
            ow0, ow1 = max(0, pad - j), min(Wo, W + pad - j)
            if oh0 >= oh1 or ow0 >= ow1:
                continue
            xs = x[:, :, oh0 + i - pad:oh1 + i - pad, ow0 + j - pad:ow1 + j - pad].astype(np.float64)
            y[:, :, oh0:oh1, ow0:ow1] += np.einsum("nchw,oc->nohw", xs, w[:, :, i, j].astype(np.float64))
    return y


def direct64_input_grad(gy, w, pad, size):
    """float64 adjoint of direct64 with respect to x."""
    N, O, Ho, Wo = gy.shape
    C = w.shape[1]
    gx = np.zeros((N, C, size[0] + 2 * pad, size[1] + 2 * pad))
    for i in range(3):
        for j in range(3):
            gx[:, :, i:i + Ho, j:j + Wo] += np.einsum("nohw,oc->nchw", gy.astype(np.float64), w[:, :, i, j].astype(np.float64))
    return gx[:, :, pad:pad + size[0], pad:pad + size[1]]


def operands(shape, dtype, seed=0):
    N, C, O, size, pad = shape
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((N, C) + size).astype(dtype)
    w = (rng.standard_normal((O, C, 3, 3)) / np.sqrt(9 * C)).astype(dtype)
    b = rng.standard_normal(O).astype(dtype)
    Ho, Wo = size[0] + 2 * pad - 2, size[1] + 2 * pad - 2
    gy = rng.standard_normal((N, O, Ho, Wo)).astype(dtype)
    return x, w, b, gy


def tolerance(dtype):
    # relative to the output's scale: F(4x4)'s float32 error measured ~1e-5 of it
    return 1e-4 if dtype == np.float32 else 1e-11


def close(a, ref, dtype):
    scale = max(np.abs(ref).max(), 1.0)
    np.testing.assert_allclose(a, ref, rtol=0, atol=tolerance(dtype) * scale)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", SHAPES, ids=IDS)
def test_forward_and_input_grad_match_float64_direct(shape, dtype):
    x, w, b, gy = operands(shape, dtype)
    pad = shape[4]
    y = _C.conv2d(x, w, b, ONE, (pad, pad), ONE, 1)
    close(y, direct64(x, w, pad) + b.astype(np.float64)[:, None, None], dtype)
    gx = _C.conv2d_input_grad(gy, w, shape[3], ONE, (pad, pad), ONE, 1)
    close(gx, direct64_input_grad(gy, w, pad, shape[3]), dtype)


@pytest.mark.skipif(torch is None, reason="needs PyTorch")
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", SHAPES, ids=IDS)
def test_forward_and_input_grad_match_torch(shape, dtype):
    x, w, b, gy = operands(shape, dtype, seed=1)
    pad = shape[4]
    tx, tw, tb = (torch.from_numpy(a).requires_grad_() for a in (x, w, b))
    ty = torch.nn.functional.conv2d(tx, tw, tb, padding=pad)
    ty.backward(torch.from_numpy(gy))
    y = _C.conv2d(x, w, b, ONE, (pad, pad), ONE, 1)
    gx = _C.conv2d_input_grad(gy, w, shape[3], ONE, (pad, pad), ONE, 1)
    close(y, ty.detach().numpy(), dtype)
    close(gx, tx.grad.numpy(), dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_one_and_two_threads_bit_identical(dtype):
    x, w, b, gy = operands((5, 24, 20, (15, 13), 1), dtype)
    before = tapegrad.get_num_threads()
    try:
        out = []
        for threads in (1, 2):
            tapegrad.set_num_threads(threads)
            out.append((_C.conv2d(x, w, b, ONE, ONE, ONE, 1), _C.conv2d_input_grad(gy, w, (15, 13), ONE, ONE, ONE, 1)))
    finally:
        tapegrad.set_num_threads(before)
    for a, b_ in zip(*out):
        np.testing.assert_array_equal(a, b_)


@pytest.mark.parametrize("pad", [0, 1])
def test_gradcheck_through_conv2d(pad):
    rng = np.random.default_rng(2)
    x = tapegrad.tensor(rng.standard_normal((2, 3, 5, 6)), requires_grad=True)
    w = tapegrad.tensor(rng.standard_normal((4, 3, 3, 3)), requires_grad=True)
    b = tapegrad.tensor(rng.standard_normal(4), requires_grad=True)
    assert gradcheck(lambda x, w, b: F.conv2d(x, w, b, padding=pad), (x, w, b))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("where", ["x inf", "x nan", "w inf", "gy inf"])
def test_non_finite_values_stay_where_a_direct_convolution_puts_them(where, dtype):
    # Winograd's transforms would spread an inf over its tile (inf - inf = nan); the route declines
    # such calls and the others compute them, so the non-finite outputs are PyTorch's.
    shape = (2, 6, 5, (10, 9), 1)
    x, w, b, gy = operands(shape, dtype)
    bad = np.inf if "inf" in where else np.nan
    if where.startswith("x"):
        x[1, 2, 4, 5] = bad
    elif where.startswith("w"):
        w[3, 1, 0, 2] = bad
    else:
        gy[0, 4, 6, 3] = bad
    y = _C.conv2d(x, w, b, ONE, ONE, ONE, 1)
    gx = _C.conv2d_input_grad(gy, w, (10, 9), ONE, ONE, ONE, 1)
    with np.errstate(invalid="ignore", over="ignore"):
        ref_y = direct64(x, w, 1) + b.astype(np.float64)[:, None, None]
        ref_gx = direct64_input_grad(gy, w, 1, (10, 9))
    for got, ref in ((y, ref_y), (gx, ref_gx)):
        np.testing.assert_array_equal(np.isfinite(got), np.isfinite(ref))
        finite = np.isfinite(ref)
        close(got[finite], ref[finite], dtype)


def test_forced_route_is_not_the_direct_route():
    """Guards against the tests above passing on another route: with the route forced, a result
    differs in its last bits from the other routes' (the transforms round differently)."""
    if not FORCED:
        pytest.skip("runs in the forced subprocess")
    x, w, b, _ = operands((2, 16, 16, (12, 12), 1), np.float32)
    code = ("import numpy as np, sys; from tapegrad import _C; x, w = np.load(sys.argv[1]), np.load(sys.argv[2]); "
            "np.save(sys.argv[3], _C.conv2d(x, w, None, (1, 1), (1, 1), (1, 1), 1))")
    tmp = Path(os.environ.get("TMPDIR", "/tmp")) / f"winograd_{os.getpid()}"
    tmp.mkdir(exist_ok=True)
    np.save(tmp / "x.npy", x)
    np.save(tmp / "w.npy", w)
    env = dict(os.environ, TAPEGRAD_CONV_KERNEL="direct")
    res = subprocess.run([sys.executable, "-c", code, str(tmp / "x.npy"), str(tmp / "w.npy"), str(tmp / "y.npy")],
                         env=env, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    other = np.load(tmp / "y.npy")
    ours = _C.conv2d(x, w, None, ONE, ONE, ONE, 1)
    assert not np.array_equal(ours, other)
    np.testing.assert_allclose(ours, other, rtol=0, atol=1e-4 * np.abs(other).max())


LEVELS = ["generic", "avx2", "avx512"]


@pytest.mark.parametrize("level", LEVELS)
def test_forced_route_subprocess(level):
    """This file again with TAPEGRAD_CONV_KERNEL=winograd, at one instruction-set level."""
    if FORCED:
        pytest.skip("already in the forced subprocess")
    if LEVELS.index(level) > LEVELS.index(_C.cpu_isa()["cpu"]):
        pytest.skip(f"this CPU has no {level}")
    env = {k: v for k, v in os.environ.items() if k not in ("TAPEGRAD_CPU", "TAPEGRAD_GEMM_KERNEL")}
    env.update(TAPEGRAD_CONV_KERNEL="winograd", TAPEGRAD_CPU=level, TAPEGRAD_THREADS_IGNORE_LOAD="1")
    res = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", __file__, "-k", "not subprocess"],
                         env=env, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-2000:]
