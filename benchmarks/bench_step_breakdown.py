"""Where a forward + backward step of GELU, softmax and layer_norm spends its time, tapegrad against
PyTorch CPU: the whole step (bench_ops.py's), its forward alone (recorded), its backward alone, the
bare kernels (tapegrad's ``_C`` calls, PyTorch's aten ops) forward and backward, the same step on
2 rows (the fixed per-step cost: Python, dispatch, the tape), and minor page faults per step.

Run: python benchmarks/bench_step_breakdown.py [--rows 1024] [--threads 1 2] [--only gelu softmax layer_norm]

Each figure is the median over >= 0.3 s of calls, in microseconds; each side runs in its own process per
thread count, as in bench_ops.py. The PyTorch side imports tapegrad too (as bench_ops.py's does), so
both run with tapegrad's malloc settings (``_C.keep_freed_memory``, ``_C.reserve_huge_heap``): without
them PyTorch page-faults on every fresh output above glibc's mmap threshold.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
import tapegrad as tg  # noqa: E402
from tapegrad import _C  # noqa: E402

try:
    import torch
except ImportError:
    torch = None

COLUMNS = ("step", "forward", "backward", "kernel fwd", "kernel bwd", "step on 2 rows", "faults/step")


def median_us(fn, min_time=0.3, min_runs=20):
    fn()
    times, start = [], time.perf_counter()
    while len(times) < min_runs or time.perf_counter() - start < min_time:
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times)) * 1e6


def setup(lib, name, rows):
    """(x, params, op, raw forward, raw backward) on float32 (rows, 1024) operands."""
    rng = np.random.default_rng(0)
    x = lib.tensor(rng.standard_normal((rows, 1024)).astype(np.float32), requires_grad=True)
    g = lib.tensor(rng.standard_normal((rows, 1024)).astype(np.float32))
    w = lib.tensor(rng.standard_normal(1024).astype(np.float32), requires_grad=True)
    b = lib.tensor(rng.standard_normal(1024).astype(np.float32), requires_grad=True)
    F = lib.nn.functional
    if lib is tg:
        xd, gd, wd, bd = x._data, g._data, w._data, b._data
        y, mean, rstd = _C.layer_norm(xd, 1024, wd, bd, 1e-5)
        s = _C.softmax(xd, False)
        raw = {"gelu": (lambda: _C.gelu(xd, False), lambda: _C.gelu_backward(gd, xd, False)),
               "softmax": (lambda: _C.softmax(xd, False), lambda: _C.softmax_backward(gd, s, False)),
               "layer_norm": (lambda: _C.layer_norm(xd, 1024, wd, bd, 1e-5),
                              lambda: _C.layer_norm_backward(gd, xd, mean, rstd, 1024, wd, True, True, True))}
    else:
        xd, wd, bd = x.detach(), w.detach(), b.detach()
        aten = torch.ops.aten
        y, mean, rstd = aten.native_layer_norm(xd, (1024,), wd, bd, 1e-5)
        s = aten._softmax(xd, -1, False)
        raw = {"gelu": (lambda: aten.gelu(xd), lambda: aten.gelu_backward(g, xd)),
               "softmax": (lambda: aten._softmax(xd, -1, False),
                           lambda: aten._softmax_backward_data(g, s, -1, torch.float32)),
               "layer_norm": (lambda: aten.native_layer_norm(xd, (1024,), wd, bd, 1e-5),
                              lambda: aten.native_layer_norm_backward(g, xd, (1024,), mean, rstd, wd, bd,
                                                                      [True, True, True]))}
    params = (w, b) if name == "layer_norm" else ()
    op = {"gelu": lambda t: F.gelu(t), "softmax": lambda t: F.softmax(t, -1),
          "layer_norm": lambda t: F.layer_norm(t, (1024,), w, b)}[name]
    return x, g, params, op, raw[name]


def measure(lib, name, rows):
    x, g, params, op, (raw_fwd, raw_bwd) = setup(lib, name, rows)

    def clear():
        x.grad = None
        for p in params:
            p.grad = None

    def step():
        clear()
        op(x).backward(g)

    def forward():
        clear()
        op(x)

    backward_times = []
    for _ in range(max(20, int(0.3e6 / max(median_us(step, 0.05, 3), 1)))):
        clear()
        y = op(x)
        t0 = time.perf_counter()
        y.backward(g)
        backward_times.append(time.perf_counter() - t0)
        del y
    f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(20):
        step()
    faults = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0) / 20
    small = setup(lib, name, 2)

    def small_step():
        small[0].grad = None
        for p in small[2]:
            p.grad = None
        small[3](small[0]).backward(small[1])

    return [median_us(step), median_us(forward), float(np.median(backward_times)) * 1e6, median_us(raw_fwd),
            median_us(raw_bwd), median_us(small_step), faults]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1024)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--only", nargs="+", choices=["gelu", "softmax", "layer_norm"],
                    default=["gelu", "softmax", "layer_norm"])
    ap.add_argument("--side", choices=["tapegrad", "torch"])
    args = ap.parse_args(argv)
    if args.side:
        lib = tg if args.side == "tapegrad" else torch
        lib.set_num_threads(args.threads[0])
        print(json.dumps([measure(lib, name, args.rows) for name in args.only]))
        return
    sides = ["tapegrad"] + (["torch"] if torch is not None else [])
    print(f"us per call, float32 ({args.rows}, 1024), weight and bias for layer_norm")
    print("| op | threads | side | " + " | ".join(COLUMNS) + " |")
    print("|---|---:|---|" + "---:|" * len(COLUMNS))
    for threads in args.threads:
        for side in sides:
            cmd = [sys.executable, __file__, "--side", side, "--rows", str(args.rows), "--threads", str(threads),
                   "--only", *args.only]
            rows = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
            for name, vals in zip(args.only, rows):
                cells = [f"{v:.0f}" for v in vals[:-1]] + [f"{vals[-1]:.1f}"]
                print(f"| {name} | {threads} | {side} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
