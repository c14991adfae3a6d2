"""The kernels' thread pool (csrc/kernels/parallel.cpp) on its own and under mid-size kernels, on a
quiet and on a busy machine: what 2 threads buy over 1.

Run: python benchmarks/bench_parallel.py [--rounds 7] [--busy 0 1] [--only probe gelu]

Cases, each timed at 1 and 2 threads in alternating blocks (medians of each block, then the
median over --rounds rounds):
  fork/join   an empty region: the pool's own cost per region (1 thread: no pool at all).
  probe W/G   W us of busy work cut into as many shares as threads, the caller busy G us
              between regions (the interpreter's work between two kernels: after a short gap
              the worker is still polling, after a long one it sleeps). Ideal: W/2 at 2
              threads. `off`: the fraction of shares a worker ran (ideal 0.5; 0: the caller ran
              both, the worker came too late); `join`: microseconds from the region's start
              until the worker started a share (its wake-up latency).
  gelu, gelu_backward, softmax, layer_norm: 1e6 float32 (1024 x 1024, rows of 1024), the _C
              kernels alone (no autograd); gemm: a 256^3 float32 matmul.
--busy 1 runs everything again next to one process running a numpy loop (another program
taking a core). speedup = time at 1 thread / time at 2 threads (above 1: 2 threads are faster).
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from tapegrad import _C  # noqa: E402

BUSY_LOOP = "import numpy as np\na = np.ones(1 << 14)\nwhile True:\n    a *= 1.0000001\n"


def block_median(fn, calls):
    fn()
    times = []
    for _ in range(calls):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def cases():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1024, 1024)).astype(np.float32)
    g = rng.standard_normal((1024, 1024)).astype(np.float32)
    w, b = np.ones(1024, np.float32), np.zeros(1024, np.float32)
    a = rng.standard_normal((256, 256)).astype(np.float32)
    out = np.empty_like(a)
    # (name, fn, calls per block); probe cases time inside C++ and return seconds per region.
    return [
        ("fork/join", lambda: _C._parallel_probe(_C.get_num_threads(), 2000, 0.0, 0.0), 1),
        ("probe 200/20", lambda: _C._parallel_probe(_C.get_num_threads(), 200, 200.0, 20.0), 1),
        ("probe 200/1000", lambda: _C._parallel_probe(_C.get_num_threads(), 50, 200.0, 1000.0), 1),
        ("gelu", lambda: _C.gelu(x, False), 100),
        ("gelu_backward", lambda: _C.gelu_backward(g, x, False), 100),
        ("softmax", lambda: _C.softmax(x, False), 100),
        ("layer_norm", lambda: _C.layer_norm(x, 1024, w, b, 1e-5), 100),
        ("gemm", lambda: _C.matmul(a, a, out), 200),
    ]


def measure(name, fn, calls):
    """Seconds per call (or region), and for probes (fraction of shares a worker ran, seconds
    until it joined)."""
    if name.startswith("probe") or name == "fork/join":
        fn()
        seconds, off, join = zip(*(fn() for _ in range(3)))
        return statistics.median(seconds), (statistics.median(off), statistics.median(join))
    return block_median(fn, calls), None


def run(rounds, only):
    rows = []
    for name, fn, calls in cases():
        if only and not any(name.startswith(o) for o in only):
            continue
        per = {1: [], 2: []}
        offs = []
        for _ in range(rounds):
            for n in (1, 2):
                _C.set_num_threads(n)
                t, off = measure(name, fn, calls)
                per[n].append(t)
                if n == 2 and off is not None:
                    offs.append(off)
        t1, t2 = statistics.median(per[1]), statistics.median(per[2])
        probe = (statistics.median(o for o, _ in offs), statistics.median(j for _, j in offs)) if offs else None
        rows.append((name, t1, t2, probe))
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--busy", type=int, nargs="+", default=[0, 1], choices=[0, 1])
    ap.add_argument("--only", nargs="*", default=[])
    args = ap.parse_args()
    old = _C.get_num_threads()
    for busy in args.busy:
        hog = subprocess.Popen([sys.executable, "-c", BUSY_LOOP]) if busy else None
        try:
            rows = run(args.rounds, args.only)
        finally:
            if hog:
                hog.kill()
                hog.wait()
        print(f"\n{'busy: one numpy loop in another process' if busy else 'quiet'} "
              f"(load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs)")
        print(f"{'case':<16}{'1 thread':>12}{'2 threads':>12}{'speedup':>9}{'off':>6}{'join':>10}")
        for name, t1, t2, probe in rows:
            extra = "" if probe is None else f"{probe[0]:>6.2f}{probe[1] * 1e6:>8.1f}us"
            print(f"{name:<16}{t1 * 1e6:>10.1f}us{t2 * 1e6:>10.1f}us{t1 / t2:>9.2f}{extra}")
    _C.set_num_threads(old)


if __name__ == "__main__":
    main()
