"""The tape's per-op overhead, side by side with PyTorch CPU (when ``import torch`` works).

Run: python benchmarks/bench_overhead.py [--repeats 7] [--rounds 3] [--threads 2]

(a) tiny graph: ``(a*b + a).exp().sum().backward()`` on 1-element float64 tensors that
    require grad, forward + backward per iteration. Almost all of it is Python overhead:
    recording nodes, building tensors, walking the tape.
(b) MLP step: 784-100-10 in float64, batch 64. Linear layers are ``x @ W.T + b``, then
    relu, a numerically stable cross-entropy, backward, and Adam written by hand on the
    numpy arrays (the same arithmetic for both frameworks, so the step times the tape).
(c) an RNN loop that stores each step's state with ``out[t] = h`` (recorded in-place writes).

Each figure is the best of ``--repeats`` medians (a median over >= 0.2 s of iterations), and
the best over ``--rounds`` rounds in which the two sides alternate (a burst of other load then
hits one round of one side, not the comparison). Each side runs in its own process, so the two
OpenMP runtimes' spinning worker threads never compete for the cores. ratio = tapegrad /
PyTorch (below 1: tapegrad is faster).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
import tapegrad as tg  # noqa: E402

try:
    import torch
except ImportError:  # the table then shows tapegrad alone
    torch = None


CLOCK = time.perf_counter  # --clock cpu: time.process_time (the process's CPU time, all threads)


def median_seconds(fn, min_time=0.2, min_runs=20):
    fn()  # warm up
    clock = CLOCK
    times, start = [], time.perf_counter()
    while len(times) < min_runs or time.perf_counter() - start < min_time:
        t0 = clock()
        fn()
        times.append(clock() - t0)
    return float(np.median(times))


def best_of(fn, repeats):
    return min(median_seconds(fn) for _ in range(repeats))


# ------------------------------------------------------------------ (a) tiny graph
def tiny_step(lib):
    a = lib.tensor([1.5], dtype=lib.float64, requires_grad=True)
    b = lib.tensor([0.5], dtype=lib.float64, requires_grad=True)

    def step():
        (a * b + a).exp().sum().backward()

    return step


# ------------------------------------------------------------------ (b) MLP step
def _mlp_params(seed=0):
    rng = np.random.default_rng(seed)
    shapes = [(100, 784), (100,), (10, 100), (10,)]
    return [rng.standard_normal(s) * (0.05 if len(s) == 2 else 0.0) for s in shapes]


def _batch(seed=1):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((64, 784)), rng.integers(0, 10, 64)


def _adam(arrays, grads, state, lr=1e-3, b1=0.9, b2=0.999, eps=1e-8):
    """Adam on numpy arrays, in place (identical for both frameworks)."""
    state["t"] += 1
    t = state["t"]
    for p, g, m, v in zip(arrays, grads, state["m"], state["v"]):
        m *= b1
        m += (1 - b1) * g
        v *= b2
        v += (1 - b2) * g * g
        p -= lr * (m / (1 - b1 ** t)) / (np.sqrt(v / (1 - b2 ** t)) + eps)


def _cross_entropy(lib, logits, onehot):
    """mean over the batch of -log_softmax(logits)[target], stable (shifted by the row max)."""
    if hasattr(lib, "log_softmax"):
        logp = lib.log_softmax(logits, dim=1)
    else:  # logsumexp by hand; the shift is a constant, so its gradient is not needed
        m = lib.tensor(logits.detach().numpy().max(axis=1, keepdims=True))
        z = logits - m
        logp = z - z.exp().sum(dim=1, keepdim=True).log()
    return -(logp * onehot).sum() / logits.shape[0]


def mlp_step(lib, optimizer=True):
    params = [lib.tensor(p, dtype=lib.float64, requires_grad=True) for p in _mlp_params()]
    arrays = [p.detach().numpy() for p in params]  # shared memory: Adam updates in place
    x_np, y_np = _batch()
    x = lib.tensor(x_np, dtype=lib.float64)
    onehot = lib.tensor(np.eye(10)[y_np], dtype=lib.float64)
    state = {"t": 0, "m": [np.zeros_like(a) for a in arrays], "v": [np.zeros_like(a) for a in arrays]}
    w1, b1, w2, b2 = params

    def step():
        for p in params:
            p.grad = None
        h = (x @ w1.T + b1).relu()
        loss = _cross_entropy(lib, h @ w2.T + b2, onehot)
        loss.backward()
        if optimizer:
            _adam(arrays, [p.grad.numpy() for p in params], state)

    return step


def mlp_forward_backward(lib):
    """The MLP step without the (identical, numpy) Adam update: the frameworks' own share."""
    return mlp_step(lib, optimizer=False)


def rnn_into_buffer(lib, steps=100, batch=32, hidden=256):
    """A hand-written RNN writing each step's state into a preallocated buffer (``out[t] = h``),
    then backward: a recorded write into a row must cost the row, not the buffer."""
    rng = np.random.default_rng(0)
    w = lib.tensor(rng.standard_normal((hidden, hidden)).astype(np.float32) * 0.05, requires_grad=True)
    x = lib.tensor(rng.standard_normal((batch, hidden)).astype(np.float32))

    def step():
        w.grad = None
        h = lib.zeros(batch, hidden)
        out = lib.zeros(steps, batch, hidden)
        for t in range(steps):
            h = lib.tanh(x + h @ w)
            out[t] = h
        out.sum().backward()

    return step


CASES = [("tiny graph (a*b+a).exp().sum().backward()", tiny_step),
         ("MLP 784-100-10 f64 step, batch 64", mlp_step),
         ("MLP forward+backward only (no Adam)", mlp_forward_backward),
         ("RNN 100 steps into a buffer (out[t] = h), f32 32x256", rnn_into_buffer)]


def run_side(side, repeats, threads):
    """Seconds per case for one framework, in this process."""
    if side == "torch":
        lib = torch
        torch.set_num_threads(threads)
    else:
        lib = tg
        tg.set_num_threads(threads)
    return [best_of(make(lib), repeats) for _, make in CASES]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--rounds", type=int, default=3, help="alternating process rounds per side; best per case")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                    help="cpu: the process's CPU time, steadier than wall time on a loaded machine "
                         "(use with --threads 1: spinning OpenMP workers count too)")
    ap.add_argument("--side", choices=["tapegrad", "torch"], help="time one framework here and print JSON")
    args = ap.parse_args(argv)
    global CLOCK
    CLOCK = time.process_time if args.clock == "cpu" else time.perf_counter
    if args.side:
        print(json.dumps(run_side(args.side, args.repeats, args.threads)))
        return

    def side(name):
        cmd = [sys.executable, __file__, "--side", name, "--repeats", str(args.repeats),
               "--threads", str(args.threads), "--clock", args.clock]
        return json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)

    ours, theirs = [float("inf")] * len(CASES), [None] * len(CASES)
    for _ in range(args.rounds):
        ours = [min(a, b) for a, b in zip(ours, side("tapegrad"))]
        if torch is not None:
            theirs = [min(a, b) if a else b for a, b in zip(theirs, side("torch"))]
    pt_name = f"PyTorch {torch.__version__}" if torch is not None else "PyTorch (not installed)"
    print(f"| benchmark | tapegrad | {pt_name} | ratio |")
    print("|---|---:|---:|---:|")
    for (name, _), a, b in zip(CASES, ours, theirs):
        ratio = f"{a / b:.2f}" if b else "-"
        pt = f"{b * 1e6:.1f} µs" if b else "-"
        print(f"| {name} | {a * 1e6:.1f} µs | {pt} | {ratio} |")


if __name__ == "__main__":
    main()
