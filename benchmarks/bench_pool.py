"""The kernels' thread pool: what a kernel gains from a second thread, as a training step calls it.

Run: python benchmarks/bench_pool.py [--rounds 5] [--calls 100] [--gaps-us 0 50 300 2000 10000] [--busy N]

In a training step Python runs between two kernels (the tape, numpy ops, the optimizer) for tens
of microseconds to milliseconds, and the pool's idle workers spin, then sleep, in that gap; how
soon a worker joins the next kernel decides whether the second thread helps. Each kernel call
here is timed after a gap in which the caller busy-loops in Python, for several gaps (0: back to
back). Per kernel and gap: the median call at 1 and at 2 threads (rounds of each alternate), and
2t/1t: 0.5 is a perfect second thread, 1.0 is none, above 1 is a second thread that costs.

Kernels: a float32 GEMM 128x128x128 (tens of microseconds: mostly fork/join), one 256x256x256,
gelu over 2**16 float32 (just above the elementwise kernels' parallel threshold) and softmax over
256 rows of 4096 float32.
Run it quiet, and with busy processes beside: ``--busy N`` starts N ``while True: pass``
processes for the run (N = the CPU count oversubscribes the machine; the 2-thread column should
then stay at or below the 1-thread one). The pool then keeps kernels on their calling thread;
with TAPEGRAD_THREADS_IGNORE_LOAD=1 it forms teams anyway, and this shows what the caller's
taking of a descheduled worker's shares saves (parallel.h). A speed property on a shared
machine, so it is measured here, not asserted by a test.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import time

import numpy as np

from tapegrad import _C


def kernels():
    rng = np.random.default_rng(0)
    out = {}
    for n in (128, 256):
        a, b = rng.standard_normal((n, n), dtype=np.float32), rng.standard_normal((n, n), dtype=np.float32)
        c = np.empty((n, n), np.float32)
        out[f"gemm {n}^3 f32"] = lambda a=a, b=b, c=c: _C.matmul(a, b, c)
    x = rng.standard_normal(1 << 16, dtype=np.float32)
    out["gelu 2^16 f32"] = lambda: _C.gelu(x, False)
    rows = rng.standard_normal((256, 4096), dtype=np.float32)
    out["softmax 256x4096"] = lambda: _C.softmax(rows, False)
    return out


def timed_calls(fn, gap_s, calls):
    clock = time.perf_counter
    times = []
    for _ in range(calls):
        end = clock() + gap_s
        while clock() < end:
            pass
        t0 = clock()
        fn()
        times.append(clock() - t0)
    return float(np.median(times))


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--calls", type=int, default=100, help="timed calls per kernel, gap and round")
    p.add_argument("--gaps-us", type=float, nargs="+", default=[0, 50, 300, 2000, 10000])
    p.add_argument("--busy", type=int, default=0, help="spinning processes to run beside it")
    args = p.parse_args()
    busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(args.busy)]
    try:
        run(args)
    finally:
        for b in busy:
            b.kill()
            b.wait()


def run(args):
    old = _C.get_num_threads()
    print(f"{'kernel':<16}{'gap us':>8}{'1t us':>9}{'2t us':>9}{'2t/1t':>8}")
    for name, fn in kernels().items():
        for gap in args.gaps_us:
            calls = max(10, min(args.calls, int(0.3 / (gap * 1e-6 + 1e-4))))
            best = {1: [], 2: []}
            for r in range(args.rounds):
                for nt in ((1, 2) if r % 2 == 0 else (2, 1)):
                    _C.set_num_threads(nt)
                    fn()
                    best[nt].append(timed_calls(fn, gap * 1e-6, calls))
            t1, t2 = (1e6 * float(np.median(best[nt])) for nt in (1, 2))
            print(f"{name:<16}{gap:>8.0f}{t1:>9.1f}{t2:>9.1f}{t2 / t1:>8.2f}", flush=True)
    _C.set_num_threads(old)


if __name__ == "__main__":
    main()
