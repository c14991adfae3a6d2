"""LeNet's convolution and pooling layers, and a C3D-like 3-D block (Conv3d(16, 32, 3, padding=1)
on 8x16x16x32x32, then MaxPool3d(2)): tapegrad._C against PyTorch CPU, side by side.

Run: python benchmarks/bench_conv.py [--threads 2] [--batch 64] [--rounds 3] [--match C3D]
Prints a markdown table of milliseconds, best of many runs (on a shared machine the minimum is
the least noisy estimate); ratio = tapegrad / torch (below 1 is faster).
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


NAMES = ["conv fwd", "conv fwd+bwd (x, w, b grads)", "max_pool 2 fwd", "max_pool 2 fwd+bwd"]


def measure(impl, threads, batch, min_time, match):
    """{layer/dtype: [ms per case]} for one implementation, in this process."""
    if impl == "torch":
        torch.set_num_threads(threads)
        cases = torch_cases
    else:
        _C.set_num_threads(threads)
        cases = tapegrad_cases
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
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--min-time", type=float, default=0.5, help="seconds of runs per case (more: less noise)")
    ap.add_argument("--rounds", type=int, default=1, help="alternating processes per side; best round kept")
    ap.add_argument("--match", default="", help="only the layers whose name contains this")
    ap.add_argument("--impl", choices=["tapegrad", "torch"], help="measure one side and print JSON")
    a = ap.parse_args()
    if a.impl:
        print(json.dumps(measure(a.impl, a.threads, a.batch, a.min_time, a.match)))
        return
    run = [sys.executable, __file__, "--threads", str(a.threads), "--batch", str(a.batch), "--min-time",
           str(a.min_time), "--match", a.match, "--impl"]
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
    print("| layer | dtype | op | tapegrad ms | torch ms | ratio |")
    print("|---|---|---|---:|---:|---:|")
    for key, times in ours.items():
        layer, dtype = key.split("|")
        for name, t, r in zip(NAMES, times, theirs.get(key, [float("nan")] * 4)):
            print(f"| {layer} | {dtype} | {name} | {t:.3f} | {r:.3f} | {t / r:.2f} |")


if __name__ == "__main__":
    main()
