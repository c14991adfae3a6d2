"""LeNet's convolution and pooling layers: tapegrad._C against PyTorch CPU, side by side.

Run: python benchmarks/bench_conv.py [--threads 2] [--batch 64]
Prints a markdown table of milliseconds, best of many runs (on a shared machine the minimum is
the least noisy estimate); ratio = tapegrad / torch (below 1 is faster).
Each side runs in its own process: torch ships its own OpenMP runtime, and two runtimes'
spinning worker threads in one process steal the cores from each other.
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

LAYERS = [  # name, input (C, H, W), weight (O, C, kh, kw)
    ("conv1 1->20 28x28 5x5", (1, 28, 28), (20, 1, 5, 5)),
    ("conv2 20->50 12x12 5x5", (20, 12, 12), (50, 20, 5, 5)),
]
GEO = ((1, 1), (0, 0), (1, 1), 1)  # stride, padding, dilation, groups
POOL = ((2, 2), (2, 2), (0, 0), (1, 1), False)  # kernel, stride, padding, dilation, ceil_mode


def bench(fn, min_time=0.5, min_runs=10):
    fn()  # warm up (allocations, thread pool)
    times = []
    start = time.perf_counter()
    while len(times) < min_runs or time.perf_counter() - start < min_time:
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1e3 * min(times)


def tapegrad_cases(x, w, b):
    hw, k = x.shape[2:], w.shape[2:]

    def fwd():
        return _C.conv2d(x, w, b, *GEO)

    y = fwd()
    gy = np.ones_like(y)

    def fwd_bwd():
        fwd()
        _C.conv2d_input_grad(gy, w, hw, *GEO)
        _C.conv2d_weight_grad(x, gy, k, *GEO)
        _C.conv2d_bias_grad(gy)

    def pool():
        return _C.max_pool2d(y, *POOL)

    py, idx = pool()
    gpy = np.ones_like(py)

    def pool_bwd():
        pool()
        _C.max_pool2d_backward(gpy, idx, y.shape[2:])

    return [fwd, fwd_bwd, pool, pool_bwd]


def torch_cases(x, w, b):
    tx, tw, tb = (torch.from_numpy(a).requires_grad_() for a in (x, w, b))
    with torch.no_grad():
        y = F.conv2d(tx, tw, tb)
    gy = torch.ones_like(y)
    ty = y.clone().requires_grad_()
    gpy = torch.ones_like(F.max_pool2d(y, 2, 2))

    def fwd():
        with torch.no_grad():
            return F.conv2d(tx, tw, tb)

    def fwd_bwd():
        F.conv2d(tx, tw, tb).backward(gy)

    def pool():
        with torch.no_grad():
            return F.max_pool2d(y, 2, 2, return_indices=True)

    def pool_bwd():
        F.max_pool2d(ty, 2, 2).backward(gpy)

    return [fwd, fwd_bwd, pool, pool_bwd]


NAMES = ["conv fwd", "conv fwd+bwd (x, w, b grads)", "max_pool2d 2x2 fwd", "max_pool2d 2x2 fwd+bwd"]


def measure(impl, threads, batch, min_time):
    """{layer/dtype: [ms per case]} for one implementation, in this process."""
    if impl == "torch":
        torch.set_num_threads(threads)
        cases = torch_cases
    else:
        _C.set_num_threads(threads)
        cases = tapegrad_cases
    out = {}
    for layer, xs, ws in LAYERS:
        for dtype in (np.float32, np.float64):
            rng = np.random.default_rng(0)
            x = rng.standard_normal((batch, *xs)).astype(dtype)
            w = rng.standard_normal(ws).astype(dtype)
            b = rng.standard_normal(ws[0]).astype(dtype)
            out[f"{layer}|{np.dtype(dtype).name}"] = [bench(f, min_time) for f in cases(x, w, b)]
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--min-time", type=float, default=0.5, help="seconds of runs per case (more: less noise)")
    ap.add_argument("--impl", choices=["tapegrad", "torch"], help="measure one side and print JSON")
    a = ap.parse_args()
    if a.impl:
        print(json.dumps(measure(a.impl, a.threads, a.batch, a.min_time)))
        return
    run = [sys.executable, __file__, "--threads", str(a.threads), "--batch", str(a.batch), "--min-time",
           str(a.min_time), "--impl"]
    ours = json.loads(subprocess.run(run + ["tapegrad"], check=True, capture_output=True, text=True).stdout)
    theirs = (json.loads(subprocess.run(run + ["torch"], check=True, capture_output=True, text=True).stdout)
              if torch is not None else {})
    print(f"batch {a.batch}, {a.threads} threads" + (f", torch {torch.__version__}" if torch else ", no torch"))
    print()
    print("| layer | dtype | op | tapegrad ms | torch ms | ratio |")
    print("|---|---|---|---:|---:|---:|")
    for key, times in ours.items():
        layer, dtype = key.split("|")
        for name, t, r in zip(NAMES, times, theirs.get(key, [float("nan")] * 4)):
            print(f"| {layer} | {dtype} | {name} | {t:.3f} | {r:.3f} | {t / r:.2f} |")


if __name__ == "__main__":
    main()
