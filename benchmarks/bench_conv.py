"""LeNet's convolution and pooling layers, and a C3D-like 3-D block (Conv3d(16, 32, 3, padding=1)
on 8x16x16x32x32, then MaxPool3d(2)): tapegrad._C against PyTorch CPU, side by side.

Run: python benchmarks/bench_conv.py [--threads 2] [--batch 64] [--rounds 3] [--match C3D]
Prints a markdown table of milliseconds, best of many runs (on a shared machine the minimum is
the least noisy estimate); ratio = tapegrad / torch (below 1 is faster).

With --resnet20 the table is instead every convolution shape of CIFAR ResNet-20 (batch 32 unless
--batch is given) and the issue's Conv2d(512, 512, 3, padding=1) on 32x512x1x1, each pass on its
own: forward, input gradient, weight gradient; then the network's total per pass (each shape
weighted by how many layers have it). PyTorch's passes are aten.convolution_backward with one
output selected, so neither side computes a gradient the other does not.
Each side runs in its own process: torch ships its own OpenMP runtime, and two runtimes'
spinning worker threads in one process steal the cores from each other. With --rounds the two
sides' processes alternate and each case keeps its best round, so a burst of load elsewhere on
a shared machine hits both sides alike.
"""
import argparse
import json
import subprocess
import sys
import time

import numpy as np

from tapegrad import _C

try:
    import torch
    import torch.nn.functional as F
except ImportError:  # the table then has tapegrad's column only
    torch = None

LAYERS = [  # name, batch (None: --batch), input (C, *spatial), weight (O, C, *kernel), padding
    ("conv1 1->20 28x28 5x5", None, (1, 28, 28), (20, 1, 5, 5), 0),
    ("conv2 20->50 12x12 5x5", None, (20, 12, 12), (50, 20, 5, 5), 0),
    ("C3D 16->32 16x32x32 3x3x3 pad 1, batch 8", 8, (16, 16, 32, 32), (32, 16, 3, 3, 3), 1),
]


def geo(nd, padding):  # stride, padding, dilation, groups
    return (1,) * nd, (padding,) * nd, (1,) * nd, 1


def pool_geo(nd):  # kernel, stride, padding, dilation, ceil_mode
    return (2,) * nd, (2,) * nd, (0,) * nd, (1,) * nd, False


def bench(fn, min_time=0.5, min_runs=10):
    fn()  # warm up (allocations, thread pool)
    times = []
    start = time.perf_counter()
    while len(times) < min_runs or time.perf_counter() - start < min_time:
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1e3 * min(times)


def tapegrad_cases(x, w, b, padding):
    size, k, nd = x.shape[2:], w.shape[2:], x.ndim - 2
    conv, conv_input_grad, conv_weight_grad, conv_bias_grad, max_pool, max_pool_backward = (
        getattr(_C, f"{name}{nd}d{suffix}") for name, suffix in (
            ("conv", ""), ("conv", "_input_grad"), ("conv", "_weight_grad"), ("conv", "_bias_grad"),
            ("max_pool", ""), ("max_pool", "_backward")))
    conv_geo, pool_args = geo(nd, padding), pool_geo(nd)

    def fwd():
        return conv(x, w, b, *conv_geo)

    y = fwd()
    gy = np.ones_like(y)

    def fwd_bwd():
        fwd()
        conv_input_grad(gy, w, size, *conv_geo)
        conv_weight_grad(x, gy, k, *conv_geo)
        conv_bias_grad(gy)

    def pool():
        return max_pool(y, *pool_args)

    py, idx = pool()
    gpy = np.ones_like(py)

    def pool_bwd():
        pool()
        max_pool_backward(gpy, idx, y.shape[2:])

    return [fwd, fwd_bwd, pool, pool_bwd]


def torch_cases(x, w, b, padding):
    nd = x.ndim - 2
    conv, max_pool = getattr(F, f"conv{nd}d"), getattr(F, f"max_pool{nd}d")
    tx, tw, tb = (torch.from_numpy(a).requires_grad_() for a in (x, w, b))
    with torch.no_grad():
        y = conv(tx, tw, tb, padding=padding)
    gy = torch.ones_like(y)
    ty = y.clone().requires_grad_()
    gpy = torch.ones_like(max_pool(y, 2, 2))

    def fwd():
        with torch.no_grad():
            return conv(tx, tw, tb, padding=padding)

    def fwd_bwd():
        conv(tx, tw, tb, padding=padding).backward(gy)

    def pool():
        with torch.no_grad():
            return max_pool(y, 2, 2, return_indices=True)

    def pool_bwd():
        max_pool(ty, 2, 2).backward(gpy)

    return [fwd, fwd_bwd, pool, pool_bwd]


# ResNet-20's convolutions: name, layers with this shape, input (C, H, W), weight (O, C, k, k),
# stride, padding. The stem's input gradient is never needed in training (its input is data).
RESNET20 = [
    ("stem 3->16 32x32", 1, (3, 32, 32), (16, 3, 3, 3), 1, 1),
    ("16->16 32x32", 6, (16, 32, 32), (16, 16, 3, 3), 1, 1),
    ("16->32 32x32 s2", 1, (16, 32, 32), (32, 16, 3, 3), 2, 1),
    ("1x1 16->32 32x32 s2", 1, (16, 32, 32), (32, 16, 1, 1), 2, 0),
    ("32->32 16x16", 5, (32, 16, 16), (32, 32, 3, 3), 1, 1),
    ("32->64 16x16 s2", 1, (32, 16, 16), (64, 32, 3, 3), 2, 1),
    ("1x1 32->64 16x16 s2", 1, (32, 16, 16), (64, 32, 1, 1), 2, 0),
    ("64->64 8x8", 5, (64, 8, 8), (64, 64, 3, 3), 1, 1),
    ("issue: 512->512 1x1", 0, (512, 1, 1), (512, 512, 3, 3), 1, 1),
]
# torchvision ResNet-18 on 3x64x64 (bench_models.py's resnet18 workload, batch 16).
RESNET18 = [
    ("stem 3->64 64x64 7x7 s2", 1, (3, 64, 64), (64, 3, 7, 7), 2, 3),
    ("64->64 16x16", 4, (64, 16, 16), (64, 64, 3, 3), 1, 1),
    ("64->128 16x16 s2", 1, (64, 16, 16), (128, 64, 3, 3), 2, 1),
    ("1x1 64->128 16x16 s2", 1, (64, 16, 16), (128, 64, 1, 1), 2, 0),
    ("128->128 8x8", 3, (128, 8, 8), (128, 128, 3, 3), 1, 1),
    ("128->256 8x8 s2", 1, (128, 8, 8), (256, 128, 3, 3), 2, 1),
    ("1x1 128->256 8x8 s2", 1, (128, 8, 8), (256, 128, 1, 1), 2, 0),
    ("256->256 4x4", 3, (256, 4, 4), (256, 256, 3, 3), 1, 1),
    ("256->512 4x4 s2", 1, (256, 4, 4), (512, 256, 3, 3), 2, 1),
    ("1x1 256->512 4x4 s2", 1, (256, 4, 4), (512, 256, 1, 1), 2, 0),
    ("512->512 2x2", 3, (512, 2, 2), (512, 512, 3, 3), 1, 1),
]
SHAPES = RESNET20  # the table --resnet20 measures; --resnet18 swaps in RESNET18
PASSES = ["forward", "input grad", "weight grad"]


def resnet20_tapegrad(x, w, stride, padding):
    geo = ((stride,) * 2, (padding,) * 2, (1, 1), 1)
    gy = np.random.default_rng(1).standard_normal(_C.conv2d(x, w, None, *geo).shape).astype(x.dtype)
    return [lambda: _C.conv2d(x, w, None, *geo),
            lambda: _C.conv2d_input_grad(gy, w, x.shape[2:], *geo),
            lambda: _C.conv2d_weight_grad(x, gy, w.shape[2:], *geo)]


def resnet20_torch(x, w, stride, padding):
    tx, tw = torch.from_numpy(x), torch.from_numpy(w)
    with torch.no_grad():
        gy = torch.from_numpy(np.random.default_rng(1).standard_normal(
            F.conv2d(tx, tw, None, stride, padding).shape).astype(x.dtype))
    back = torch.ops.aten.convolution_backward

    def grad(mask):
        with torch.no_grad():
            return back(gy, tx, tw, None, [stride] * 2, [padding] * 2, [1, 1], False, [0, 0], 1, mask)

    def fwd():
        with torch.no_grad():
            return F.conv2d(tx, tw, None, stride, padding)

    return [fwd, lambda: grad([True, False, False]), lambda: grad([False, True, False])]


def measure_resnet20(impl, batch, min_time, match):
    """{shape/dtype: [ms per pass]} for one implementation, in this process."""
    cases = resnet20_torch if impl == "torch" else resnet20_tapegrad
    out = {}
    for name, _, xs, ws, stride, padding in SHAPES:
        if match not in name:
            continue
        for dtype in (np.float32, np.float64):
            rng = np.random.default_rng(0)
            x = rng.standard_normal((batch, *xs)).astype(dtype)
            w = rng.standard_normal(ws).astype(dtype)
            out[f"{name}|{np.dtype(dtype).name}"] = [bench(f, min_time, 5) for f in cases(x, w, stride, padding)]
    return out


def print_resnet20(ours, theirs):
    print("| shape | layers | dtype | pass | tapegrad ms | torch ms | ratio |")
    print("|---|---:|---|---|---:|---:|---:|")
    total = {}  # (dtype, pass) -> [tapegrad, torch], summed over the network's layers
    for key, times in ours.items():
        name, dtype = key.split("|")
        count = next(c for n, c, *_ in SHAPES if n == name)
        for i, (p, t, r) in enumerate(zip(PASSES, times, theirs.get(key, [float("nan")] * 3))):
            print(f"| {name} | {count} | {dtype} | {p} | {t:.3f} | {r:.3f} | {t / r:.2f} |")
            if name.startswith("stem") and i == 1:
                continue  # not part of a training step
            acc = total.setdefault((dtype, p), [0.0, 0.0])
            acc[0] += count * t
            acc[1] += count * r
    print()
    print(f"| {'ResNet-18' if SHAPES is RESNET18 else 'ResNet-20'} total (layers x shape) | dtype | tapegrad ms | torch ms | ratio |")
    print("|---|---|---:|---:|---:|")
    for (dtype, p), (t, r) in total.items():
        print(f"| {p} | {dtype} | {t:.2f} | {r:.2f} | {t / r:.2f} |")
    for dtype in dict.fromkeys(d for d, _ in total):
        t = sum(v[0] for (d, _), v in total.items() if d == dtype)
        r = sum(v[1] for (d, _), v in total.items() if d == dtype)
        print(f"| all passes | {dtype} | {t:.2f} | {r:.2f} | {t / r:.2f} |")


NAMES = ["conv fwd", "conv fwd+bwd (x, w, b grads)", "max_pool 2 fwd", "max_pool 2 fwd+bwd"]


def measure(impl, threads, batch, min_time, match, resnet20=False):
    """{layer/dtype: [ms per case]} for one implementation, in this process."""
    if impl == "torch":
        torch.set_num_threads(threads)
        cases = torch_cases
    else:
        _C.set_num_threads(threads)
        cases = tapegrad_cases
    if resnet20:
        return measure_resnet20(impl, batch, min_time, match)
    out = {}
    for layer, n, xs, ws, padding in LAYERS:
        if match not in layer:
            continue
        for dtype in (np.float32, np.float64):
            rng = np.random.default_rng(0)
            x = rng.standard_normal((n or batch, *xs)).astype(dtype)
            w = rng.standard_normal(ws).astype(dtype)
            b = rng.standard_normal(ws[0]).astype(dtype)
            runs = 10 if len(xs) == 3 else 3  # the 3-D block takes about a second a pass
            out[f"{layer}|{np.dtype(dtype).name}"] = [bench(f, min_time, runs) for f in cases(x, w, b, padding)]
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, help="default: 64, or 32 with --resnet20")
    ap.add_argument("--min-time", type=float, default=0.5, help="seconds of runs per case (more: less noise)")
    ap.add_argument("--rounds", type=int, default=1, help="alternating processes per side; best round kept")
    ap.add_argument("--match", default="", help="only the layers whose name contains this")
    ap.add_argument("--resnet20", action="store_true", help="ResNet-20's conv shapes, each pass on its own")
    ap.add_argument("--resnet18", action="store_true", help="the same for ResNet-18's shapes (batch 16, 3x64x64)")
    ap.add_argument("--impl", choices=["tapegrad", "torch"], help="measure one side and print JSON")
    a = ap.parse_args()
    global SHAPES
    if a.resnet18:
        SHAPES, a.resnet20 = RESNET18, True
        a.batch = a.batch or 16
    if a.batch is None:
        a.batch = 32 if a.resnet20 else 64
    if a.impl:
        print(json.dumps(measure(a.impl, a.threads, a.batch, a.min_time, a.match, a.resnet20)))
        return
    run = [sys.executable, __file__, "--threads", str(a.threads), "--batch", str(a.batch), "--min-time",
           str(a.min_time), "--match", a.match] + (["--resnet18"] if SHAPES is RESNET18 else ["--resnet20"] * a.resnet20) + ["--impl"]
    best = {"tapegrad": {}, "torch": {}}
    for _ in range(a.rounds):
        for impl in ("tapegrad", "torch") if torch is not None else ("tapegrad",):
            got = json.loads(subprocess.run(run + [impl], check=True, capture_output=True, text=True).stdout)
            for key, times in got.items():
                best[impl][key] = [min(t, b) for t, b in zip(times, best[impl].get(key, times))]
    ours, theirs = best["tapegrad"], best["torch"]
    print(f"batch {a.batch}, {a.threads} threads, best of {a.rounds} alternating rounds"
          + (f", torch {torch.__version__}" if torch else ", no torch"))
    print()
    if a.resnet20:
        print_resnet20(ours, theirs)
        return
    print("| layer | dtype | op | tapegrad ms | torch ms | ratio |")
    print("|---|---|---|---:|---:|---:|")
    for key, times in ours.items():
        layer, dtype = key.split("|")
        for name, t, r in zip(NAMES, times, theirs.get(key, [float("nan")] * 4)):
            print(f"| {layer} | {dtype} | {name} | {t:.3f} | {r:.3f} | {t / r:.2f} |")


if __name__ == "__main__":
    main()
