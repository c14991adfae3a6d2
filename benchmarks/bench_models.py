"""Training steps of small models, tapegrad against PyTorch CPU, side by side in one process.

Run: python benchmarks/bench_models.py WORKLOAD [--threads 1 2] [--rounds 7] [--steps 5]

Workloads (one training step each: forward, loss, backward, SGD update):
  lstm      Embedding 1000x128, LSTM 128->256, seq 35, batch 20, Linear to 1000, cross_entropy
  gru       the same with a GRU
  gpt       2 pre-LN transformer blocks, d 128, 4 heads, seq 64, batch 16, vocabulary 1000, causal
            attention written out (softmax of masked q k^T)
  gpt_sdpa  the same through F.scaled_dot_product_attention(is_causal=True)
  resnet20  CIFAR ResNet-20 (BatchNorm2d, residual adds), batch 32, 3x32x32, 10 classes
  chain10k  forward+backward of 10k ``y = y * 1.0001 + 0.0001`` on one element
  chain100k the same, 100k long

Both frameworks get the same weights and data. For each thread count (set in both), the sides
run in alternating blocks of --steps steps, --rounds times, each round starting with the side that
went second in the last; the median step time of each side is reported, and the ratio
tapegrad / torch (below 1: tapegrad is faster). Between blocks the process sleeps a little:
OpenBLAS's and OpenMP's workers spin after a parallel region and would steal the other side's
cores. Without PyTorch only tapegrad's times are printed.
"""
from __future__ import annotations

import argparse
import math
import time

import numpy as np

try:
    import torch
except ImportError:  # PyTorch is optional: tapegrad's times alone
    torch = None

import tapegrad

PAUSE_S = 0.05
VOCAB = 1000


# ---------------------------------------------------------------- the models, written once for either library
def _lm(lib, cell):
    nn = lib.nn

    class LM(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = nn.Embedding(VOCAB, 128)
            self.rnn = (nn.LSTM if cell == "lstm" else nn.GRU)(128, 256)
            self.out = nn.Linear(256, VOCAB)

        def forward(self, x):
            h, _ = self.rnn(self.emb(x))
            return self.out(h)

    return LM()


def _gpt(lib, sdpa, d=128, heads=4, layers=2, seq=64):
    nn, F = lib.nn, lib.nn.functional

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
            self.qkv, self.proj = nn.Linear(d, 3 * d), nn.Linear(d, d)
            self.fc1, self.fc2 = nn.Linear(d, 4 * d), nn.Linear(4 * d, d)

        def forward(self, x, mask):
            B, T, _ = x.shape
            q, k, v = self.qkv(self.ln1(x)).reshape(B, T, 3, heads, d // heads).permute(2, 0, 3, 1, 4)
            if sdpa:
                a = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            else:
                s = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(d // heads))
                a = F.softmax(s.masked_fill(mask, float("-inf")), dim=-1) @ v
            x = x + self.proj(a.transpose(1, 2).reshape(B, T, d))
            return x + self.fc2(F.gelu(self.fc1(self.ln2(x))))

    class GPT(nn.Module):
        def __init__(self):
            super().__init__()
            self.tok, self.pos = nn.Embedding(VOCAB, d), nn.Embedding(seq, d)
            self.blocks = nn.ModuleList([Block() for _ in range(layers)])
            self.ln, self.head = nn.LayerNorm(d), nn.Linear(d, VOCAB)
            self.register_buffer("mask", lib.triu(lib.ones(seq, seq, dtype=lib.bool), diagonal=1))
            self.register_buffer("positions", lib.arange(seq))

        def forward(self, x):
            h = self.tok(x) + self.pos(self.positions)
            for b in self.blocks:
                h = b(h, self.mask)
            return self.head(self.ln(h))

    return GPT()


def _resnet20(lib):
    nn, F = lib.nn, lib.nn.functional

    class BasicBlock(nn.Module):
        def __init__(self, cin, cout, stride):
            super().__init__()
            self.c1, self.b1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout)
            self.c2, self.b2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout)
            self.short = (nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
                          if stride != 1 or cin != cout else nn.Identity())

        def forward(self, x):
            y = F.relu(self.b1(self.c1(x)))
            return F.relu(self.b2(self.c2(y)) + self.short(x))

    layers, cin = [nn.Conv2d(3, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU()], 16
    for cout, stride in ((16, 1), (32, 2), (64, 2)):
        for k in range(3):
            layers.append(BasicBlock(cin, cout, stride if k == 0 else 1))
            cin = cout
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 10)]
    return nn.Sequential(*layers)


# ---------------------------------------------------------------- one training step per library
def _copy_weights(src, dst):
    """src's (torch) parameters and buffers into dst (tapegrad), in order."""
    s = list(src.state_dict().values())
    d = list(dst.state_dict().values())
    assert len(s) == len(d), (len(s), len(d))
    with tapegrad.no_grad():
        for a, b in zip(s, d):
            assert tuple(a.shape) == tuple(b.shape), (a.shape, b.shape)
            b.copy_(tapegrad.from_numpy(a.detach().numpy().copy()))


def _model_and_data(workload, lib, rng):
    if workload in ("lstm", "gru"):
        model = _lm(lib, workload)
        x = rng.integers(0, VOCAB, (35, 20))
        y = rng.integers(0, VOCAB, (35 * 20,))
        return model, x, y, lambda out: out.reshape(-1, VOCAB)
    if workload in ("gpt", "gpt_sdpa"):
        model = _gpt(lib, workload == "gpt_sdpa")
        x = rng.integers(0, VOCAB, (16, 64))
        y = rng.integers(0, VOCAB, (16 * 64,))
        return model, x, y, lambda out: out.reshape(-1, VOCAB)
    if workload == "resnet20":
        model = _resnet20(lib)
        return model, rng.standard_normal((32, 3, 32, 32)).astype(np.float32), rng.integers(0, 10, (32,)), None
    raise ValueError(workload)


def _steps(workload):
    """{library name: a function running one training step}."""
    libs = {"tapegrad": tapegrad}
    if torch is not None:
        libs["torch"] = torch
    if workload.startswith("chain"):
        n = {"chain10k": 10_000, "chain100k": 100_000}[workload]

        def chain(lib):
            def step():
                x = lib.tensor([1.0], requires_grad=True)
                y = x
                for _ in range(n):
                    y = y * 1.0001 + 0.0001
                y.sum().backward()
                return x.grad
            return step

        return {name: chain(lib) for name, lib in libs.items()}
    out, models = {}, {}
    for name, lib in libs.items():
        rng = np.random.default_rng(0)
        lib.manual_seed(0)
        model, x, y, flat = _model_and_data(workload, lib, rng)
        models[name] = model
        x, y = lib.from_numpy(x), lib.from_numpy(y)
        opt = lib.optim.SGD(model.parameters(), lr=0.01)

        def step(model=model, x=x, y=y, flat=flat, opt=opt, lib=lib):
            out = model(x)
            loss = lib.nn.functional.cross_entropy(out if flat is None else flat(out), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            return loss.item()

        out[name] = step
    if "torch" in models:
        _copy_weights(models["torch"], models["tapegrad"])
        # same weights, same data: the first losses agree (a check that the two sides run one model)
        a, b = out["torch"](), out["tapegrad"]()
        assert abs(a - b) <= 1e-3 * max(1.0, abs(a)), (workload, a, b)
    return out


def _set_threads(n):
    tapegrad.set_num_threads(n)
    if torch is not None:
        torch.set_num_threads(n)


def measure(workload, threads, rounds, steps, warmup=2):
    """{side: median seconds per step} at ``threads`` threads."""
    _set_threads(threads)
    fns = _steps(workload)
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times = {name: [] for name in fns}
    order = list(fns)
    for _ in range(rounds):
        for name in order:
            time.sleep(PAUSE_S)
            for _ in range(steps):
                t0 = time.perf_counter()
                fns[name]()
                times[name].append(time.perf_counter() - t0)
        order.reverse()
    return {name: float(np.median(t)) for name, t in times.items()}


WORKLOADS = ("lstm", "gru", "gpt", "gpt_sdpa", "resnet20", "chain10k", "chain100k")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("workload", nargs="+", choices=WORKLOADS + ("all",))
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--steps", type=int, default=5, help="steps per block")
    args = p.parse_args()
    workloads = WORKLOADS if "all" in args.workload else args.workload
    print("| workload | threads | tapegrad ms | torch ms | tapegrad / torch |")
    print("|---|---:|---:|---:|---:|")
    for w in workloads:
        steps = 1 if w == "chain100k" else args.steps
        for n in args.threads:
            m = measure(w, n, args.rounds, steps)
            t = m.get("torch")
            ratio = f"{m['tapegrad'] / t:.2f}" if t else "-"
            print(f"| {w} | {n} | {1e3 * m['tapegrad']:.2f} | {'-' if t is None else f'{1e3 * t:.2f}'} | {ratio} |",
                  flush=True)


if __name__ == "__main__":
    main()
