"""The transformer workloads' GEMM products (bench_models.py's gpt, vit and gpt_big, float32) and
products of a few rows and of one (an RNN step, a small batch, a Linear at batch 1), tapegrad's
_C.matmul against torch.mm at 1 and 2 threads, and how each scales from 1 thread to 2.

Run: python benchmarks/bench_gemm_threads.py [--rounds 3]

Kinds: "nt" is a Linear's forward x @ W^T (B a transposed view), "nn" its input gradient dY @ W,
"tn" its weight gradient dY^T @ X (A a transposed view). Each case: median of 40 calls, best of
--rounds rounds that alternate the sides and thread counts, with a pause between sides (a
library's worker threads spin for a while after a call). Needs PyTorch (the comparison side).
"""
import argparse
import time

import numpy as np
import torch

import tapegrad
from tapegrad import _C

SHAPES = [  # M, K, N, kind
    (1024, 128, 384, "nt"), (1024, 384, 128, "nn"), (128, 1024, 384, "tn"),    # gpt: qkv
    (1024, 128, 512, "nt"), (1024, 512, 128, "nn"), (512, 1024, 128, "tn"),    # gpt: MLP
    (2080, 192, 576, "nt"), (2080, 576, 192, "nn"), (192, 2080, 576, "tn"),    # vit: qkv
    (2080, 192, 768, "nt"), (2080, 768, 192, "nt"),                            # vit: MLP
    (1024, 256, 768, "nt"), (1024, 768, 256, "nn"), (768, 1024, 256, "tn"),    # gpt_big: qkv
    (1024, 256, 1024, "nt"), (1024, 1024, 256, "nn"), (256, 1024, 1024, "tn"),  # gpt_big: MLP
    (20, 256, 1024, "nn"), (8, 512, 512, "nn"), (32, 2048, 512, "nn"),          # few rows: B read in place
    (1, 512, 512, "nt"), (1, 1024, 4096, "nt"), (1, 784, 100, "nt"),            # batch 1: dot products
]


def operands(rng, m, k, n, kind):
    if kind == "nt":
        return rng.standard_normal((m, k), dtype=np.float32), rng.standard_normal((n, k), dtype=np.float32).T
    if kind == "tn":
        return rng.standard_normal((k, m), dtype=np.float32).T, rng.standard_normal((k, n), dtype=np.float32)
    return rng.standard_normal((m, k), dtype=np.float32), rng.standard_normal((k, n), dtype=np.float32)


def median_ms(f, n=40):
    f()
    f()
    ts = []
    for _ in range(n):
        t = time.perf_counter()
        f()
        ts.append(time.perf_counter() - t)
    return float(np.median(ts)) * 1e3


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    print("| product | kind | tapegrad / torch, 1 thread | 2 threads | 1 -> 2 threads, tapegrad | torch |")
    print("|---|---|---:|---:|---:|---:|")
    for m, k, n, kind in SHAPES:
        a, b = operands(rng, m, k, n, kind)
        out = np.empty((m, n), np.float32)
        ta, tb, tout = torch.from_numpy(a), torch.from_numpy(b), torch.empty(m, n)
        best = {}
        for _ in range(args.rounds):
            for nt in (1, 2):
                tapegrad.set_num_threads(nt)
                torch.set_num_threads(nt)
                for side, f in (("tg", lambda: _C.matmul(a, b, out)), ("th", lambda: torch.mm(ta, tb, out=tout))):
                    time.sleep(0.05)
                    best[side, nt] = min(best.get((side, nt), np.inf), median_ms(f))
        print(f"| {m}x{k} @ {k}x{n} | {kind} | {best['tg', 1] / best['th', 1]:.2f} | {best['tg', 2] / best['th', 2]:.2f} "
              f"| {best['tg', 1] / best['tg', 2]:.2f}x | {best['th', 1] / best['th', 2]:.2f}x |", flush=True)


if __name__ == "__main__":
    main()
