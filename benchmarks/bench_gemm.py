"""tapegrad's GEMM (_C.matmul) against numpy's OpenBLAS, side by side, in GFLOP/s.

Run: env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/bench_gemm.py [--threads 2] [--repeat 3]

OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE, when set in the environment, pin OpenBLAS to another
core's kernels and block sizes and slow numpy down; unset them (as above) for a fair table.
The script prints which kernel OpenBLAS uses (threadpoolctl, if installed).

Shapes: square n = 256, 1024, 2048, and LeNet's products at batch 64 (fully connected layers
and the im2col convolutions), forward and the two backward products. `.T` marks a transposed
view, as autograd passes it. GFLOP/s from the fastest of repeated calls. Each side runs in its own process, so libgomp's and OpenBLAS's
spinning worker threads never compete for the cores. ratio = tapegrad / numpy (above 1 is faster).
"""
import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

# name, M, K, N, A transposed, B transposed
CASES = [
    ("square 256", 256, 256, 256, False, False),
    ("square 1024", 1024, 1024, 1024, False, False),
    ("square 2048", 2048, 2048, 2048, False, False),
    ("fc1 x @ W", 64, 800, 500, False, False),
    ("fc1 dY @ W.T", 64, 500, 800, False, True),
    ("fc1 X.T @ dY", 800, 64, 500, True, False),
    ("fc2 x @ W", 64, 500, 10, False, False),
    ("fc2 dY @ W.T", 64, 10, 500, False, True),
    ("fc2 X.T @ dY", 500, 64, 10, True, False),
    ("conv1 W @ cols", 20, 25, 64 * 576, False, False),
    ("conv1 dY @ cols.T", 20, 64 * 576, 25, False, True),
    ("conv1 W.T @ dY", 25, 20, 64 * 576, True, False),
    ("conv2 W @ cols", 50, 500, 64 * 64, False, False),
    ("conv2 dY @ cols.T", 50, 64 * 64, 500, False, True),
    ("conv2 W.T @ dY", 500, 50, 64 * 64, True, False),
]
DTYPES = ["float32", "float64"]


def operands(m, k, n, ta, tb, dtype):
    rng = np.random.default_rng(0)
    a = rng.standard_normal((k, m) if ta else (m, k)).astype(dtype)
    b = rng.standard_normal((n, k) if tb else (k, n)).astype(dtype)
    return (a.T if ta else a), (b.T if tb else b), np.empty((m, n), dtype)


def best_seconds(fn, min_time=0.4, min_runs=5):
    """Fastest of repeated calls (as timeit advises): the least disturbed by other load."""
    fn()  # warm up: buffers, thread pool
    times, start = [], time.perf_counter()
    while len(times) < min_runs or time.perf_counter() - start < min_time:
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def worker(side, threads):
    """Time every case on one side; print {case|dtype: GFLOP/s} as JSON."""
    if side == "tapegrad":
        from tapegrad import _C
        _C.set_num_threads(threads)
        run = lambda a, b, c: _C.matmul(a, b, c)  # noqa: E731
    else:
        try:
            from threadpoolctl import threadpool_limits
            threadpool_limits(threads, user_api="blas")
        except ImportError:
            pass  # OpenBLAS then uses OPENBLAS_NUM_THREADS, set by the parent
        run = lambda a, b, c: np.matmul(a, b, out=c)  # noqa: E731
    res = {}
    for name, m, k, n, ta, tb in CASES:
        for dtype in DTYPES:
            a, b, c = operands(m, k, n, ta, tb, dtype)
            res[f"{name}|{dtype}"] = 2 * m * n * k / best_seconds(lambda: run(a, b, c)) / 1e9
    print(json.dumps(res))


def blas_info():
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return "threadpoolctl not installed: OpenBLAS kernel unknown"
    blas = [i for i in threadpool_info() if i.get("user_api") == "blas" and "numpy" in i.get("filepath", "")]
    return ", ".join(f"{i['internal_api']} {i['version']} kernel {i.get('architecture')}" for i in blas) or "no BLAS found"


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeat", type=int, default=1, help="rounds per side, alternating; best round per case")
    p.add_argument("--worker", choices=["tapegrad", "numpy"], help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        return worker(args.worker, args.threads)

    for var in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"):
        if var in os.environ:
            print(f"warning: {var}={os.environ[var]} is set and may slow numpy; for a fair comparison run\n"
                  f"  env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python {sys.argv[0]}", file=sys.stderr)
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), OPENBLAS_NUM_THREADS=str(args.threads))
    results = {"tapegrad": {}, "numpy": {}}
    for _ in range(args.repeat):  # sides alternate; each case keeps its best round
        for side, best in results.items():
            out = subprocess.run([sys.executable, __file__, "--worker", side, "--threads", str(args.threads)],
                                 env=env, check=True, capture_output=True, text=True).stdout
            for key, gflops in json.loads(out.strip().splitlines()[-1]).items():
                best[key] = max(best.get(key, 0.0), gflops)

    from tapegrad import _C
    print(f"GEMM, {args.threads} threads, best of {args.repeat} round(s); tapegrad kernel: {_C.gemm_kernel()}; numpy: {blas_info()}\n")
    print("| case | M x K @ K x N | dtype | tapegrad GFLOP/s | numpy GFLOP/s | ratio |")
    print("|---|---|---|---:|---:|---:|")
    for name, m, k, n, _, _ in CASES:
        for dtype in DTYPES:
            key = f"{name}|{dtype}"
            t, r = results["tapegrad"][key], results["numpy"][key]
            print(f"| {name} | {m}x{k} @ {k}x{n} | {dtype} | {t:.1f} | {r:.1f} | {t / r:.2f} |")


if __name__ == "__main__":
    main()
