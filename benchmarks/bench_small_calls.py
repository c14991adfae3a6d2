"""Small calls outside autograd (indexing, views, joins, reductions, conversions on an 8 x 16
float32 tensor), tapegrad against PyTorch CPU in one process: the Python around each op, which
dominates at these sizes. Prints the calls with the largest ratio tapegrad / PyTorch first.

Run: python benchmarks/bench_small_calls.py [--top 20] [--clock cpu] [--repeat 5] [--calls 'x.expand' ...]

Each figure is the best of ``--repeat`` timings of 3000 calls, the two sides' timings alternating.
Both sides run in one process and one thread (the calls are far below the kernels' threading
thresholds); PyTorch is required. ``--clock cpu`` times the process's CPU time instead of the
wall clock: on a machine shared with other work a timing is then not stretched by the time the
process waited for a core (caches and memory are still shared).
"""
from __future__ import annotations

import argparse
import time
import timeit

import torch

import tapegrad as tg

parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
parser.add_argument("--top", type=int, default=20)
parser.add_argument("--clock", choices=("wall", "cpu"), default="wall")
parser.add_argument("--repeat", type=int, default=5)
parser.add_argument("--calls", nargs="*", help="only these calls (the names in the table)")
args = parser.parse_args()
torch.set_num_threads(1)
tg.set_num_threads(1)

def mk(L):
    return dict(x=L.ones(8, 16), v=L.ones(16), i=L.tensor([1, 3]), b=L.ones(8, 16) > 0)
E = {L: mk(L) for L in (tg, torch)}
cases = {
 "x[0]": lambda L, e: e["x"][0], "x[:, 1]": lambda L, e: e["x"][:, 1], "x[i]": lambda L, e: e["x"][e["i"]], "x[b]": lambda L, e: e["x"][e["b"]],
 "x.view(-1)": lambda L, e: e["x"].view(-1), "x.reshape(16,8)": lambda L, e: e["x"].reshape(16, 8), "x.t()": lambda L, e: e["x"].t(),
 "x.permute": lambda L, e: e["x"].permute(1, 0), "x.unsqueeze(0)": lambda L, e: e["x"].unsqueeze(0), "x.sum()": lambda L, e: e["x"].sum(),
 "x.sum(1)": lambda L, e: e["x"].sum(1), "x.mean()": lambda L, e: e["x"].mean(), "x.max()": lambda L, e: e["x"].max(), "x.argmax(1)": lambda L, e: e["x"].argmax(1),
 "cat": lambda L, e: L.cat([e["x"], e["x"]]), "stack": lambda L, e: L.stack([e["v"], e["v"]]), "x.item": lambda L, e: e["v"][0].item(),
 "x.size(0)": lambda L, e: e["x"].size(0), "x.shape[0]": lambda L, e: e["x"].shape[0], "x.numel": lambda L, e: e["x"].numel(), "x.dim": lambda L, e: e["x"].dim(),
 "x + 1": lambda L, e: e["x"] + 1, "x * x": lambda L, e: e["x"] * e["x"], "x @ v": lambda L, e: e["x"] @ e["v"], "x > 0": lambda L, e: e["x"] > 0,
 "x.float()": lambda L, e: e["x"].float(), "x.to(f64)": lambda L, e: e["x"].to(L.float64), "x.clone()": lambda L, e: e["x"].clone(), "x.detach()": lambda L, e: e["x"].detach(),
 "x.contiguous()": lambda L, e: e["x"].contiguous(), "tensor([1,2,3])": lambda L, e: L.tensor([1.0, 2.0, 3.0]), "zeros(8,16)": lambda L, e: L.zeros(8, 16),
 "arange(10)": lambda L, e: L.arange(10), "x.exp()": lambda L, e: e["x"].exp(), "F.relu": lambda L, e: L.nn.functional.relu(e["x"]), "softmax": lambda L, e: e["x"].softmax(-1),
 "where": lambda L, e: L.where(e["b"], e["x"], 0.0), "x.masked_fill": lambda L, e: e["x"].masked_fill(e["b"], 0.0), "x.chunk(2)": lambda L, e: e["x"].chunk(2),
 "x.split(4)": lambda L, e: e["x"].split(4), "x.flatten()": lambda L, e: e["x"].flatten(), "x.expand": lambda L, e: e["v"].expand(8, 16), "x.repeat": lambda L, e: e["v"].repeat(2),
 "x.tolist": lambda L, e: e["v"].tolist(), "x.numpy": lambda L, e: e["x"].numpy(), "len(x)": lambda L, e: len(e["x"]), "x.norm()": lambda L, e: e["x"].norm(),
 "x.abs()": lambda L, e: e["x"].abs(), "x.clamp(0,1)": lambda L, e: e["x"].clamp(0, 1), "x.gather": lambda L, e: e["x"].gather(1, e["i"].expand(8, 2)),
 "x.index_select": lambda L, e: e["x"].index_select(1, e["i"]), "x.topk(2)": lambda L, e: e["v"].topk(2), "x.sort()": lambda L, e: e["v"].sort(),
 "x.bool().any()": lambda L, e: e["b"].any(), "x.all()": lambda L, e: e["b"].all(), "x.type_as": lambda L, e: e["x"].type_as(e["v"]), "x.new_zeros": lambda L, e: e["x"].new_zeros(3),
 "zeros_like": lambda L, e: L.zeros_like(e["x"]), "x.fill_(0)": lambda L, e: e["x"].fill_(1.0), "x.zero_()": lambda L, e: e["v"].zero_(), "x.copy_": lambda L, e: e["x"].copy_(e["x"]),
 "x.add_(x)": lambda L, e: e["x"].add_(e["x"]), "x.eq(x).sum().item()": lambda L, e: e["x"].eq(e["x"]).sum().item(), "x.argmax().item()": lambda L, e: e["x"].argmax().item(),
}
clock = time.process_time if args.clock == "cpu" else time.perf_counter
res = []
for name, f in cases.items():
    if args.calls and name not in args.calls:
        continue
    ts = {tg: [], torch: []}
    for L in (tg, torch):
        f(L, E[L])
    for _ in range(args.repeat):  # the sides alternate: a burst of other load hits both
        for L in (tg, torch):
            e = E[L]
            ts[L].append(timeit.Timer(lambda: f(L, e), timer=clock).timeit(3000) / 3000 * 1e6)
    ts = {L: min(v) for L, v in ts.items()}
    res.append((ts[tg] / ts[torch], name, ts[tg], ts[torch]))
print("| call | tapegrad us | PyTorch us | ratio |\n|---|---:|---:|---:|")
for r in sorted(res, reverse=True)[:args.top]:
    print("| `%s` | %.2f | %.2f | %.2f |" % (r[1], r[2], r[3], r[0]))
