"""Which parts of a bench_models.py training step do not speed up with threads.

Run: python benchmarks/profile_threads.py gpt [gpt_sdpa vit ...] [--threads 1 2] [--steps 10] [--top 25]
For each workload, runs tapegrad's training step under cProfile at each thread count and prints a
markdown table of self time (ms per step) per function, native kernels (tapegrad._C.*) included,
with the speedup from the first to the last thread count. Rows are sorted by the time the last
thread count would save if the function scaled perfectly (t_last - t_first * first / last), so
the rows on top are what keeps the step from scaling. cProfile adds per-call overhead to Python
functions (not to time inside a native call); compare the columns, not absolute step times
against bench_models.py. On a loaded machine run it several times.
"""
import argparse
import cProfile
import os
import pstats
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_models  # noqa: E402

import tapegrad  # noqa: E402


def _label(key):
    path, line, name = key
    return name if path == "~" else f"{os.path.basename(path)}:{line} {name}"


def profile(workload, threads, steps, warmup=3):
    """(ms per step, {function: self ms per step}) at ``threads`` threads."""
    tapegrad.set_num_threads(threads)
    _, step = bench_models._step(workload, tapegrad)
    for _ in range(warmup):
        step()
    prof = cProfile.Profile()
    t0 = time.perf_counter()
    prof.enable()
    for _ in range(steps):
        step()
    prof.disable()
    total = (time.perf_counter() - t0) * 1e3 / steps
    stats = pstats.Stats(prof).stats
    return total, {_label(k): v[2] * 1e3 / steps for k, v in stats.items()}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("workloads", nargs="+")
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--top", type=int, default=25)
    args = ap.parse_args()
    lo, hi = args.threads[0], args.threads[-1]
    for wl in args.workloads:
        runs = {t: profile(wl, t, args.steps) for t in args.threads}
        print(f"\n## {wl}: step " + ", ".join(f"{runs[t][0]:.1f} ms at {t}t" for t in args.threads))
        print(f"| function | " + " | ".join(f"ms {t}t" for t in args.threads) + f" | speedup {lo}t->{hi}t | lost at {hi}t |")
        print("|---|" + "---|" * (len(args.threads) + 2))
        a, b = runs[lo][1], runs[hi][1]
        lost = {k: b.get(k, 0.0) - a[k] * lo / hi for k in a}
        for k in sorted(lost, key=lost.get, reverse=True)[: args.top]:
            cols = " | ".join(f"{runs[t][1].get(k, 0.0):.3f}" for t in args.threads)
            sp = a[k] / b[k] if b.get(k) else float("inf")
            print(f"| {k} | {cols} | {sp:.2f}x | {lost[k]:.3f} |")


if __name__ == "__main__":
    main()
