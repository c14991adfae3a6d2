"""3x3 stride-1 'same' convolutions by route: Winograd (TAPEGRAD_CONV_KERNEL=winograd), the
other routes (=direct: the AVX-512 direct products, im2col + gemm below AVX-512) and PyTorch CPU,
forward and input gradient, on ResNet-20's layers (batch 32) and VGG / ResNet-50-like layers
(batch 8).

Run: python benchmarks/bench_winograd.py [--threads 1] [--rounds 3] [--dtype float32] [--match 64ch]
Each implementation runs in its own process (torch ships its own OpenMP runtime, and the route is
chosen once per process); the processes alternate for --rounds rounds and each case keeps its
best time (milliseconds), so a burst of load elsewhere hits every side alike. Prints a markdown
table with the ratios winograd / direct and winograd / torch (below 1: Winograd is faster).
"""
import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

SHAPES = [  # name, batch, channels (in = out), image side
    ("resnet20 16ch 32x32", 32, 16, 32),
    ("resnet20 32ch 16x16", 32, 32, 16),
    ("resnet20 64ch 8x8", 32, 64, 8),
    ("vgg 64ch 56x56", 8, 64, 56),
    ("vgg 128ch 28x28", 8, 128, 28),
    ("vgg 256ch 14x14", 8, 256, 14),
]
PASSES = ["forward", "input grad"]


def best_ms(fn, min_time, clock):
    fn()
    times, start = [], time.perf_counter()
    while len(times) < 5 or time.perf_counter() - start < min_time:
        t0 = clock()
        fn()
        times.append(clock() - t0)
    return 1e3 * min(times)


def cases(impl, x, w, gy):
    if impl == "torch":
        import torch
        import torch.nn.functional as F
        tx, tw, tgy = (torch.from_numpy(a) for a in (x, w, gy))
        back = torch.ops.aten.convolution_backward

        def fwd():
            with torch.no_grad():
                F.conv2d(tx, tw, None, 1, 1)

        def igrad():
            with torch.no_grad():
                back(tgy, tx, tw, None, [1, 1], [1, 1], [1, 1], False, [0, 0], 1, [True, False, False])
        return [fwd, igrad]
    from tapegrad import _C
    geo = ((1, 1), (1, 1), (1, 1), 1)
    return [lambda: _C.conv2d(x, w, None, *geo), lambda: _C.conv2d_input_grad(gy, w, x.shape[2:], *geo)]


def measure(impl, threads, dtype, match, min_time):
    if impl == "torch":
        import torch
        torch.set_num_threads(threads)
    else:
        import tapegrad as tg
        tg.set_num_threads(threads)
    out = {}
    for name, batch, ch, side in SHAPES:
        if match not in name:
            continue
        rng = np.random.default_rng(0)
        x = rng.standard_normal((batch, ch, side, side)).astype(dtype)
        w = (rng.standard_normal((ch, ch, 3, 3)) / np.sqrt(9 * ch)).astype(dtype)
        gy = rng.standard_normal((batch, ch, side, side)).astype(dtype)
        # one thread: CPU time, which other processes on a busy machine barely disturb
        clock = time.thread_time if threads == 1 else time.perf_counter
        out[name] = [best_ms(f, min_time, clock) for f in cases(impl, x, w, gy)]
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--match", default="")
    ap.add_argument("--min-time", type=float, default=0.3)
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(measure(args.child, args.threads, args.dtype, args.match, args.min_time)))
        return
    impls = {"winograd": "winograd", "direct": "direct", "torch": ""}
    best = {}
    for _ in range(args.rounds):
        for impl, route in impls.items():
            env = dict(os.environ, TAPEGRAD_THREADS_IGNORE_LOAD="1", OMP_NUM_THREADS=str(args.threads))
            env.pop("TAPEGRAD_CONV_KERNEL", None)
            if route:
                env["TAPEGRAD_CONV_KERNEL"] = route
            cmd = [sys.executable, __file__, "--child", impl, "--threads", str(args.threads), "--dtype", args.dtype,
                   "--match", args.match, "--min-time", str(args.min_time)]
            res = subprocess.run(cmd, env=env, capture_output=True, text=True)
            if res.returncode:
                if impl == "torch":  # PyTorch is optional
                    continue
                sys.exit(res.stderr)
            for name, times in json.loads(res.stdout).items():
                cur = best.setdefault((impl, name), times)
                best[(impl, name)] = [min(a, b) for a, b in zip(cur, times)]
    print(f"{args.dtype}, {args.threads} thread(s), best of {args.rounds} rounds, ms (1 thread: CPU time)")
    print("| shape | pass | winograd | direct | torch | wino/direct | wino/torch |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for name, *_ in SHAPES:
        if (("winograd", name)) not in best:
            continue
        for i, p in enumerate(PASSES):
            wi, di = best[("winograd", name)][i], best[("direct", name)][i]
            to = best.get(("torch", name), [float("nan")] * 2)[i]
            print(f"| {name} | {p} | {wi:.2f} | {di:.2f} | {to:.2f} | {wi / di:.2f} | {wi / to:.2f} |")


if __name__ == "__main__":
    main()
