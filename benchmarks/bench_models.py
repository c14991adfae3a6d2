"""Training steps of small models, tapegrad against PyTorch CPU, side by side in one process.

Run: python benchmarks/bench_models.py WORKLOAD [--threads 1 2] [--rounds 7] [--steps 5]
     python benchmarks/bench_models.py WORKLOAD --memory [--threads 1] [--memory-steps 3]

Workloads (one training step each: forward, loss, backward, SGD update):
  lstm      Embedding 1000x128, LSTM 128->256, seq 35, batch 20, Linear to 1000, cross_entropy
  gru       the same with a GRU
  gpt       2 pre-LN transformer blocks, d 128, 4 heads, seq 64, batch 16, vocabulary 1000, causal
            attention written out (softmax of masked q k^T)
  gpt_sdpa  the same through F.scaled_dot_product_attention(is_causal=True)
  resnet20  CIFAR ResNet-20 (BatchNorm2d, residual adds), batch 32, 3x32x32, 10 classes
  chain10k  forward+backward of 10k ``y = y * 1.0001 + 0.0001`` on one element
  chain100k the same, 100k long

Larger ones, beyond issue #12's table (the shapes real programs use, to catch a route that only
the small shapes above exercise):
  lstm_big  Embedding 10000x256, 2-layer LSTM 256->512, seq 50, batch 32, Linear to 10000
  gpt_big   4 blocks, d 256, 8 heads, seq 128, batch 8, vocabulary 1000, through SDPA
  vit       nn.TransformerEncoder (4 pre-LN layers of nn.TransformerEncoderLayer: d 192, 3 heads,
            MLP 768, GELU, batch_first) over 64 patches of 4x4 from a Conv2d stem, 32x32 images,
            batch 32, class token, 10 classes
  resnet18  ResNet-18 (7x7 stem, max-pool, 4 stages of 2 basic blocks, 64-512 channels),
            3x64x64, batch 16, 10 classes
  cells     the lstm workload written as a loop of nn.LSTMCell over the 35 steps (the unrolled
            form of seq2seq decoders and hand-written RNNs), and a GRUCell beside it
  unet      a small U-Net for segmentation: 3x3 conv + BatchNorm + ReLU blocks of 32/64/128
            channels, max-pool down, ConvTranspose2d 2x2 up, skip connections by cat, 1x1 head
            to 5 classes, per-pixel cross_entropy; 3x64x64, batch 8

Both frameworks get the same weights and data. For each thread count (set in both), the sides
run in alternating blocks of --steps steps, --rounds times, each round starting with the side that
went second in the last; the median step time of each side is reported, and the ratio
tapegrad / torch (below 1: tapegrad is faster). Between blocks the process sleeps a little:
OpenBLAS's and OpenMP's workers spin after a parallel region and would steal the other side's
cores. Without PyTorch only tapegrad's times are printed.

``--memory`` measures peak memory instead of time: for each workload and side, a fresh Python
process imports only that side's library (tapegrad's import tunes glibc's malloc, which must not
touch PyTorch's process, and each library's import is its own), builds the model, data and
optimizer, records its resident set (VmRSS) as the baseline, resets the kernel's high-water mark
(``/proc/self/clear_refs``), runs --memory-steps training steps and reads the new high-water
mark (VmHWM). Reported: the peak growth over the baseline, i.e. the most memory training held at
once beyond the model and data: the gradients (the same size on both sides), activations saved
for backward, temporaries, scratch buffers, and whatever an allocator keeps cached instead of
returning it to the OS (tapegrad keeps freed memory for reuse, PyTorch's CPU allocator gives
large blocks back: RSS counts what the machine sees, whichever allocator holds the pages).
Without /proc/self/clear_refs (not Linux) only the process's lifetime high-water mark is
available, import included, and the table says so.
"""
from __future__ import annotations

import argparse
import json
import math
import resource
import subprocess
import sys
import time

import numpy as np

# A --memory worker process imports only the library it measures.
_MEMORY_SIDE = sys.argv[sys.argv.index("--memory-worker") + 1] if "--memory-worker" in sys.argv[:-1] else None
torch = tapegrad = None
if _MEMORY_SIDE != "tapegrad":
    try:
        import torch
    except ImportError:  # PyTorch is optional: tapegrad's times alone
        torch = None
if _MEMORY_SIDE != "torch":
    import tapegrad

PAUSE_S = 0.05
VOCAB = 1000


# ---------------------------------------------------------------- the models, written once for either library
def _lm(lib, cell, vocab=VOCAB, d=128, hidden=256, layers=1):
    nn = lib.nn

    class LM(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = nn.Embedding(vocab, d)
            self.rnn = (nn.LSTM if cell == "lstm" else nn.GRU)(d, hidden, layers)
            self.out = nn.Linear(hidden, vocab)

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


def _vit(lib, d=192, heads=3, layers=4, patch=4, img=32):
    nn = lib.nn

    class ViT(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = nn.Conv2d(3, d, patch, patch)
            self.cls = nn.Parameter(lib.zeros(1, 1, d))
            self.pos = nn.Parameter(lib.zeros(1, (img // patch) ** 2 + 1, d))
            layer = nn.TransformerEncoderLayer(d, heads, 4 * d, dropout=0.0, activation="gelu", batch_first=True,
                                               norm_first=True)
            self.enc = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
            self.ln, self.head = nn.LayerNorm(d), nn.Linear(d, 10)

        def forward(self, x):
            h = self.stem(x).flatten(2).transpose(1, 2)
            h = lib.cat([self.cls.expand(h.shape[0], -1, -1), h], 1) + self.pos
            return self.head(self.ln(self.enc(h)[:, 0]))

    return ViT()


def _resnet(lib, stem, widths, blocks):
    """A ResNet of basic blocks (two 3x3 convs with BatchNorm, a 1x1 projection where the shape
    changes) after ``stem`` (a list of layers ending at widths[0] channels): one stage per width,
    the first block of each but the first at stride 2, global average pool, Linear to 10."""
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

    layers, cin = list(stem), widths[0]
    for s, cout in enumerate(widths):
        for k in range(blocks):
            layers.append(BasicBlock(cin, cout, 2 if s and not k else 1))
            cin = cout
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(cin, 10)]
    return nn.Sequential(*layers)


def _resnet18(lib):
    """torchvision's ResNet-18 layout: 7x7 stride-2 stem, max-pool, 4 stages of 2 blocks."""
    nn = lib.nn
    stem = [nn.Conv2d(3, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(3, 2, 1)]
    return _resnet(lib, stem, (64, 128, 256, 512), 2)


def _cells(lib):
    nn = lib.nn

    class CellLM(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = nn.Embedding(VOCAB, 128)
            self.lstm, self.gru = nn.LSTMCell(128, 256), nn.GRUCell(128, 256)
            self.out = nn.Linear(256, VOCAB)

        def forward(self, x):
            e = self.emb(x)
            h = c = g = lib.zeros(x.shape[1], 256)
            outs = []
            for t in range(x.shape[0]):
                h, c = self.lstm(e[t], (h, c))
                g = self.gru(e[t], g)
                outs.append(h + g)
            return self.out(lib.stack(outs))

    return CellLM()


def _unet(lib, classes=5):
    nn = lib.nn

    def block(cin, cout):
        return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(),
                             nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU())

    class UNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.enc1, self.enc2, self.enc3 = block(3, 32), block(32, 64), block(64, 128)
            self.pool = nn.MaxPool2d(2)
            self.up2, self.dec2 = nn.ConvTranspose2d(128, 64, 2, 2), block(128, 64)
            self.up1, self.dec1 = nn.ConvTranspose2d(64, 32, 2, 2), block(64, 32)
            self.head = nn.Conv2d(32, classes, 1)

        def forward(self, x):
            e1 = self.enc1(x)
            e2 = self.enc2(self.pool(e1))
            e3 = self.enc3(self.pool(e2))
            d2 = self.dec2(lib.cat([self.up2(e3), e2], 1))
            d1 = self.dec1(lib.cat([self.up1(d2), e1], 1))
            return self.head(d1)

    return UNet()


def _resnet20(lib):
    """The CIFAR ResNet-20: 3x3 stem, 3 stages of 3 blocks."""
    nn = lib.nn
    return _resnet(lib, [nn.Conv2d(3, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU()], (16, 32, 64), 3)


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


def _tokens(model, rng, shape, vocab=VOCAB):
    """A language-model workload: token ids of ``shape`` in, next-token targets, logits flattened."""
    x = rng.integers(0, vocab, shape)
    y = rng.integers(0, vocab, (shape[0] * shape[1],))
    return model, x, y, lambda out: out.reshape(-1, vocab)


def _images(model, rng, shape, classes, target_shape):
    """An image workload: float32 images of ``shape``, integer class targets of ``target_shape``."""
    return model, rng.standard_normal(shape).astype(np.float32), rng.integers(0, classes, target_shape), None


def _model_and_data(workload, lib, rng):
    """(model, input, target, how to flatten the output for cross_entropy or None)."""
    if workload in ("lstm", "gru"):
        return _tokens(_lm(lib, workload), rng, (35, 20))
    if workload in ("gpt", "gpt_sdpa"):
        return _tokens(_gpt(lib, workload == "gpt_sdpa"), rng, (16, 64))
    if workload == "cells":
        return _tokens(_cells(lib), rng, (35, 20))
    if workload == "lstm_big":
        return _tokens(_lm(lib, "lstm", vocab=10_000, d=256, hidden=512, layers=2), rng, (50, 32), 10_000)
    if workload == "gpt_big":
        return _tokens(_gpt(lib, True, d=256, heads=8, layers=4, seq=128), rng, (8, 128))
    if workload == "resnet20":
        return _images(_resnet20(lib), rng, (32, 3, 32, 32), 10, (32,))
    if workload == "vit":
        return _images(_vit(lib), rng, (32, 3, 32, 32), 10, (32,))
    if workload == "resnet18":
        return _images(_resnet18(lib), rng, (16, 3, 64, 64), 10, (16,))
    if workload == "unet":
        return _images(_unet(lib), rng, (8, 3, 64, 64), 5, (8, 64, 64))
    raise ValueError(workload)


def _step(workload, lib):
    """(model or None, a function running one training step of ``workload`` in ``lib``)."""
    if workload.startswith("chain"):
        n = {"chain10k": 10_000, "chain100k": 100_000}[workload]

        def chain():
            x = lib.tensor([1.0], requires_grad=True)
            y = x
            for _ in range(n):
                y = y * 1.0001 + 0.0001
            y.sum().backward()
            return x.grad

        return None, chain
    rng = np.random.default_rng(0)
    lib.manual_seed(0)
    model, x, y, flat = _model_and_data(workload, lib, rng)
    x, y = lib.from_numpy(x), lib.from_numpy(y)
    opt = lib.optim.SGD(model.parameters(), lr=0.01)

    def step():
        out = model(x)
        loss = lib.nn.functional.cross_entropy(out if flat is None else flat(out), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss.item()

    return model, step


def _steps(workload):
    """{library name: a function running one training step}."""
    libs = {"tapegrad": tapegrad}
    if torch is not None:
        libs["torch"] = torch
    out, models = {}, {}
    for name, lib in libs.items():
        models[name], out[name] = _step(workload, lib)
    if models.get("torch") is not None:
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


# ---------------------------------------------------------------- peak memory (--memory)
def _proc_status_kb(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


def _reset_peak_rss():
    """Resets the kernel's resident-set high-water mark (VmHWM); False where that is impossible."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def memory_worker(side, workload, threads, steps):
    """Runs in its own process (see the module docstring): the baseline RSS before the first
    step and the peak RSS over ``steps`` steps, in MiB."""
    lib = tapegrad if side == "tapegrad" else torch
    lib.set_num_threads(threads)
    _, step = _step(workload, lib)
    base_kb = _proc_status_kb("VmRSS") if sys.platform.startswith("linux") else None
    reset = base_kb is not None and _reset_peak_rss()
    for _ in range(steps):
        step()
    peak_kb = _proc_status_kb("VmHWM") if reset else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"base_mib": None if base_kb is None else base_kb / 1024, "peak_mib": peak_kb / 1024,
            "growth_mib": (peak_kb - base_kb) / 1024 if reset else None, "reset": reset}


def memory(workload, threads, steps):
    """{side: memory_worker's result} for each side, each in a fresh process."""
    sides = ["tapegrad"] + (["torch"] if torch is not None else [])
    out = {}
    for side in sides:
        cmd = [sys.executable, __file__, workload, "--memory-worker", side, "--threads", str(threads),
               "--memory-steps", str(steps)]
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError(f"{side} {workload}: " + (r.stderr.strip().splitlines() or ["?"])[-1])
        out[side] = json.loads(r.stdout.strip().splitlines()[-1])
    return out


def _memory_table(workloads, threads, steps):
    print("Peak memory of training: growth of the resident set over the built model's (MiB; "
          f"{steps} steps, a fresh process per side)\n")
    print("| workload | threads | tapegrad peak growth | torch peak growth | tapegrad / torch "
          "| baseline RSS tapegrad / torch |")
    print("|---|---:|---:|---:|---:|---:|")
    for w in workloads:
        for n in threads:
            m = memory(w, n, steps)
            tg, th = m["tapegrad"], m.get("torch")
            if not tg["reset"]:
                other = "-" if th is None else f"{th['peak_mib']:.1f}"
                print(f"| {w} | {n} | peak {tg['peak_mib']:.1f} (lifetime: no /proc/self/clear_refs) | {other} | | |",
                      flush=True)
                continue
            other = "-" if th is None else f"{th['growth_mib']:.1f}"
            ratio = f"{tg['growth_mib'] / th['growth_mib']:.2f}" if th and th["growth_mib"] > 0 else "-"
            base = "-" if th is None else f"{th['base_mib']:.0f}"
            print(f"| {w} | {n} | {tg['growth_mib']:.1f} | {other} | {ratio} | {tg['base_mib']:.0f} / {base} |",
                  flush=True)


WORKLOADS = ("lstm", "gru", "gpt", "gpt_sdpa", "resnet20", "chain10k", "chain100k", "lstm_big", "gpt_big", "vit",
             "resnet18", "unet", "cells")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("workload", nargs="+", choices=WORKLOADS + ("all",))
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--steps", type=int, default=5, help="steps per block")
    p.add_argument("--memory", action="store_true", help="peak memory of a training step instead of time")
    p.add_argument("--memory-steps", type=int, default=3, help="steps over which --memory takes the peak")
    p.add_argument("--memory-worker", choices=["tapegrad", "torch"], help=argparse.SUPPRESS)
    args = p.parse_args()
    workloads = WORKLOADS if "all" in args.workload else args.workload
    if args.memory_worker:
        print(json.dumps(memory_worker(args.memory_worker, workloads[0], args.threads[0], args.memory_steps)))
        return
    if args.memory:
        _memory_table(workloads, args.threads, args.memory_steps)
        return
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
