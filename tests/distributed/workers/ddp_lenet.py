"""DDP on N ranks with batch B/N each == one process with batch B (LeNet, float64): 20 SGD-momentum
and 20 Adam steps; no_sync accumulation == one big step; two runs are bit-identical and every
rank holds the same parameters."""
import numpy as np

import tapegrad
import tapegrad.distributed as dist
import tapegrad.nn.functional as F
from tapegrad.nn.parallel import DistributedDataParallel as DDP
from common import LeNet, batches, check

dist.init_process_group("mpi")
rank, world = dist.get_rank(), dist.get_world_size()
tapegrad.set_default_dtype(tapegrad.float64)
B, STEPS = 8, 20
X, Y = batches(1, 2 * STEPS, B)


def make_opt(kind, params):
    if kind == "sgd":
        return tapegrad.optim.SGD(params, lr=0.05, momentum=0.9, weight_decay=1e-4)
    return tapegrad.optim.Adam(params, lr=1e-3)


def fresh_model():
    tapegrad.manual_seed(rank * 7 + 3)  # different on every rank: DDP must start everyone from rank 0's
    return LeNet()


def train(model, opt, lo, hi, part):
    for s in range(STEPS):
        x, y = X[s], Y[s]
        if part:
            x, y = x[lo:hi], y[lo:hi]
        loss = F.cross_entropy(model(tapegrad.tensor(x)), tapegrad.tensor(y))
        opt.zero_grad()
        loss.backward()
        opt.step()


def state(module):
    return {k: v.numpy().copy() for k, v in module.state_dict().items()}


per = B // world
lo, hi = rank * per, (rank + 1) * per
for kind in ("sgd", "adam"):
    runs = []
    for _ in range(2 if kind == "sgd" else 1):  # bit-identical reruns: checked once
        ddp = DDP(fresh_model(), bucket_cap_mb=0.5)  # several buckets for LeNet's 0.5 MB of float64 grads
        train(ddp, make_opt(kind, ddp.parameters()), lo, hi, True)
        runs.append(state(ddp.module))
    check(all(k.startswith("module.") for k in ddp.state_dict()), "state_dict keys lack the module. prefix")
    # the single-process reference: rank 0's initial weights, the whole batch
    tapegrad.manual_seed(3)
    ref = LeNet()
    train(ref, make_opt(kind, ref.parameters()), 0, B, False)
    for k, v in state(ref).items():
        err = np.abs(runs[0][k] - v).max() / (np.abs(v).max() + 1e-30)
        check(err < 1e-10, f"{kind}, {world} ranks: {k} differs from one process by {err:.3g} (relative)")
        check(np.array_equal(runs[0][k], runs[-1][k]), f"{kind}: two runs of {world} ranks differ in {k}")
    # every rank holds bit-identical parameters
    gathered = [None] * world
    flat = np.concatenate([v.ravel() for v in runs[0].values()])
    digest = [float(flat.sum()), float((flat * np.arange(flat.size)).sum())]
    dist.all_gather_object(gathered, digest)
    check(all(g == gathered[0] for g in gathered), f"{kind}: ranks disagree on the parameters: {gathered}")

# no_sync: two accumulated micro-batches, then a synchronised one == one step on all three
ddp = DDP(fresh_model())
opt = tapegrad.optim.SGD(ddp.parameters(), lr=0.1)
opt.zero_grad()
micro = [(X[s][lo:hi], Y[s][lo:hi]) for s in range(3)]
with ddp.no_sync():
    for x, y in micro[:2]:
        F.cross_entropy(ddp(tapegrad.tensor(x)), tapegrad.tensor(y)).backward()
x, y = micro[2]
F.cross_entropy(ddp(tapegrad.tensor(x)), tapegrad.tensor(y)).backward()
opt.step()
tapegrad.manual_seed(3)
ref = LeNet()
ropt = tapegrad.optim.SGD(ref.parameters(), lr=0.1)
ropt.zero_grad()
for s in range(3):
    F.cross_entropy(ref(tapegrad.tensor(X[s])), tapegrad.tensor(Y[s])).backward()
# DDP averages over ranks (each loss a mean over B/N): the reference's sum of 3 means over B matches
ropt.step()
for k, v in state(ref).items():
    err = np.abs(state(ddp.module)[k] - v).max()
    check(err < 1e-12, f"no_sync, {world} ranks: {k} differs from the big step by {err:.3g}")
print(f"rank {rank}: ok")
