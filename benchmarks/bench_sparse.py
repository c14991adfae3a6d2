"""sparse.mm(A, X) forward and backward (the sparse half of a graph convolution), gradients for X
and for A's values: tapegrad (scipy.sparse) against PyTorch CPU's torch.sparse.mm, and against
tapegrad on the dense adjacency, interleaved.

Run: python benchmarks/bench_sparse.py [--nodes 20000] [--edges 200000] [--features 64]
Prints milliseconds (best of several runs: on a shared machine the minimum is the least noisy
estimate) and the ratios. scipy's sparse product is single-threaded, so PyTorch runs on one
thread too.
"""
import argparse
import time

import numpy as np

import tapegrad as tg

try:
    import torch
except ImportError:
    torch = None


def step(M, A, X, G):
    X.grad = None
    if A.requires_grad:
        A.grad = None
    (M.sparse.mm(A, X) if A.is_sparse else A @ X).backward(G)


def best(fn, runs):
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times) * 1e3


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--nodes", type=int, default=20000)
    p.add_argument("--edges", type=int, default=200000)
    p.add_argument("--features", type=int, default=64)
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--constant-a", action="store_true", help="A does not require grad (only X's gradient)")
    a = p.parse_args()
    rng = np.random.default_rng(0)
    idx = rng.integers(0, a.nodes, (2, a.edges))
    val = rng.random(a.edges).astype(np.float32)
    X = rng.standard_normal((a.nodes, a.features)).astype(np.float32)
    G = rng.standard_normal((a.nodes, a.features)).astype(np.float32)
    sides = {"tapegrad sparse": (tg, tg.sparse_coo_tensor(idx, val, (a.nodes, a.nodes), requires_grad=not a.constant_a)),
             "tapegrad dense": (tg, tg.sparse_coo_tensor(idx, val, (a.nodes, a.nodes)).to_dense().requires_grad_(not a.constant_a))
             if a.nodes <= 20000 else None}
    if torch is not None:
        torch.set_num_threads(1)
        sides["torch sparse"] = (torch, torch.sparse_coo_tensor(torch.tensor(idx), torch.tensor(val),
                                                                (a.nodes, a.nodes)).coalesce().requires_grad_(not a.constant_a))
    times = {k: [] for k, v in sides.items() if v is not None}
    for _ in range(2):  # interleaved rounds
        for name in times:
            M, A = sides[name]
            x, g = M.tensor(X, requires_grad=True), M.tensor(G)
            times[name].append(best(lambda: step(M, A, x, g), a.runs))
    print(f"sparse.mm(A, X) forward+backward{', A constant' if a.constant_a else ''}, {a.nodes} nodes, {a.edges} edges, {a.features} features (ms, best):")
    base = min(times["tapegrad sparse"])
    for name, ts in times.items():
        print(f"  {name:16s} {min(ts):9.2f}   ratio to tapegrad sparse {min(ts) / base:6.2f}")


if __name__ == "__main__":
    main()
