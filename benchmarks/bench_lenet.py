"""LeNet training steps, tapegrad against PyTorch CPU: same model, batch, dtype and threads.

Run: python benchmarks/bench_lenet.py [--threads 2] [--batch 64] [--steps 100] [--dtype float32 float64]
Prints a markdown table: ms per training step (forward, cross-entropy, backward, SGD-momentum
update, batch fetched from a shuffled in-memory dataset), images/s, peak RSS of the process,
and ratio = tapegrad / torch (below 1 is faster). Each side runs --rounds times, alternating,
and its fastest round counts. Each framework runs in its own subprocess,
so the peak RSS is its own and the two OpenMP runtimes don't fight over the cores.

On a machine busy with other jobs the wall-clock times of both sides swing by tens of percent
(PyTorch's more than tapegrad's); ``--clock cpu`` times each step by the CPU time of the whole
process instead (``time.process_time``: every thread of the process, spinning or working), which
a loaded machine disturbs far less. With one thread it measures the same work as the wall
clock on a quiet machine; with more it adds the threads' times up, so it says nothing about
their overlap: use the wall clock there.
"""
import argparse
import json
import resource
import subprocess
import sys
import time

import numpy as np

N_IMAGES = 60_000 // 10  # a tenth of MNIST's training set is enough to shuffle from


def _data(dtype):
    rng = np.random.default_rng(0)
    return rng.random((N_IMAGES, 1, 28, 28)).astype(dtype), rng.integers(0, 10, N_IMAGES).astype(np.int64)


def worker_tapegrad(args):
    import tapegrad
    import tapegrad.nn.functional as F
    import tapegrad.optim
    from tapegrad.utils.data import DataLoader, TensorDataset
    sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parent.parent / "examples"))
    from lenet import LeNet

    tapegrad.set_num_threads(args.threads)
    tapegrad.manual_seed(0)
    x, y = _data(args.dtype)
    loader = DataLoader(TensorDataset(tapegrad.from_numpy(x), tapegrad.from_numpy(y)), batch_size=args.batch,
                        shuffle=True, drop_last=True, generator=tapegrad.Generator().manual_seed(0))
    model = LeNet().to(tapegrad.float32 if args.dtype == "float32" else tapegrad.float64)
    opt = tapegrad.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)

    def step(xb, yb):
        loss = F.cross_entropy(model(xb), yb)
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss.item()

    return _timed(step, loader, args)


def worker_torch(args):
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    x, y = _data(args.dtype)
    x, y = torch.from_numpy(x), torch.from_numpy(y)
    # batched fetch, as tapegrad's fast path does (torch's default per-sample collate would be slower)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=None,
                                         sampler=torch.utils.data.BatchSampler(
                                             torch.utils.data.RandomSampler(x), args.batch, drop_last=True))
    model = nn.Sequential(nn.Conv2d(1, 20, 5), nn.MaxPool2d(2), nn.Conv2d(20, 50, 5), nn.MaxPool2d(2),
                          nn.Flatten(), nn.Linear(800, 500), nn.ReLU(), nn.Linear(500, 10)).to(x.dtype)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)

    def step(xb, yb):
        loss = F.cross_entropy(model(xb), yb)
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss.item()

    return _timed(step, loader, args)


def _timed(step, loader, args):
    def batches():
        while True:
            yield from loader

    it = batches()
    for _ in range(args.warmup):
        step(*next(it))
    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    times = []
    for _ in range(args.steps):
        t0 = clock()
        step(*next(it))  # fetching the batch is part of the step
        times.append(clock() - t0)
    ms = 1e3 * float(np.median(times))
    return {"ms": ms, "mean_ms": 1e3 * float(np.mean(times)), "images_s": args.batch * 1e3 / ms,
            "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--rounds", type=int, default=3, help="runs per framework, alternating; the best counts")
    p.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                   help="time steps by the wall clock or by the process's CPU time (steadier on a busy machine)")
    p.add_argument("--dtype", nargs="+", default=["float32", "float64"], choices=["float32", "float64"])
    p.add_argument("--worker", choices=["tapegrad", "torch"], help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        args.dtype = args.dtype[0]
        fn = worker_tapegrad if args.worker == "tapegrad" else worker_torch
        print(json.dumps(fn(args)))
        return

    print(f"LeNet training step, batch {args.batch}, {args.threads} threads, median of {args.steps} steps, "
          f"best of {args.rounds} rounds{', CPU time' if args.clock == 'cpu' else ''}\n")
    print("| dtype | framework | ms/step | images/s | peak RSS (MB) | ratio tapegrad/torch |")
    print("|---|---|---:|---:|---:|---:|")
    for dtype in args.dtype:
        res, failed = {}, set()
        for _ in range(args.rounds):  # alternate, keep each side's best round: fairer on a busy machine
            for fw in ("torch", "tapegrad"):
                if fw in failed:
                    continue
                cmd = [sys.executable, __file__, "--worker", fw, "--dtype", dtype, "--threads", str(args.threads),
                       "--batch", str(args.batch), "--steps", str(args.steps), "--warmup", str(args.warmup),
                       "--clock", args.clock]
                r = subprocess.run(cmd, capture_output=True, text=True)
                if r.returncode != 0:
                    last = (r.stderr.strip().splitlines() or ["?"])[-1]
                    print(f"| {dtype} | {fw} | unavailable: {last} | | | |")
                    failed.add(fw)
                    continue
                m = json.loads(r.stdout.strip().splitlines()[-1])
                if fw not in res or m["ms"] < res[fw]["ms"]:
                    res[fw] = m
        for fw, m in res.items():
            ratio = (f"{res['tapegrad']['ms'] / res['torch']['ms']:.2f} (RSS {res['tapegrad']['rss_mb'] / res['torch']['rss_mb']:.2f})"
                     if fw == "tapegrad" and "torch" in res else "")
            print(f"| {dtype} | {fw} | {m['ms']:.1f} | {m['images_s']:.0f} | {m['rss_mb']:.0f} | {ratio} |")


if __name__ == "__main__":
    main()
