"""Checkpoints: rank 0 saves while the others wait; any number of ranks loads and resumes.

    checkpoint.py save PATH     train 3 DDP steps, save on rank 0
    checkpoint.py resume PATH   load, 2 more DDP steps; compare with one process doing the same
"""
import sys

import numpy as np

import tapegrad
import tapegrad.distributed as dist
import tapegrad.nn as nn
import tapegrad.nn.functional as F
from tapegrad.nn.parallel import DistributedDataParallel as DDP
from common import check

dist.init_process_group("mpi")
rank, n = dist.get_rank(), dist.get_world_size()
mode, path = sys.argv[1], sys.argv[2]
tapegrad.set_default_dtype(tapegrad.float64)
rng = np.random.default_rng(0)
X, Y = rng.standard_normal((5, 6, 4)), rng.standard_normal((5, 6, 2))  # 5 steps of a batch of 6


def net():
    tapegrad.manual_seed(rank)
    return nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 2))


def step(model, opt, s, lo, hi):
    loss = F.mse_loss(model(tapegrad.tensor(X[s][lo:hi])), tapegrad.tensor(Y[s][lo:hi]))
    opt.zero_grad()
    loss.backward()
    opt.step()


per = 6 // n
lo, hi = rank * per, (rank + 1) * per
model = net()
opt = tapegrad.optim.Adam(model.parameters(), lr=0.01)
if mode == "save":
    ddp = DDP(model)
    for s in range(3):
        step(ddp, opt, s, lo, hi)
    if rank == 0:
        tapegrad.save({"model": ddp.module.state_dict(), "optimizer": opt.state_dict(), "step": 3}, path)
    dist.barrier()  # nobody reads the file before rank 0 has written it
else:
    ckpt = tapegrad.load(path)
    model.load_state_dict(ckpt["model"])
    opt.load_state_dict(ckpt["optimizer"])
    ddp = DDP(model)
    for s in range(int(ckpt["step"]), 5):
        step(ddp, opt, s, lo, hi)
    ref = net()
    ref.load_state_dict(tapegrad.load(path)["model"])
    ropt = tapegrad.optim.Adam(ref.parameters(), lr=0.01)
    ropt.load_state_dict(tapegrad.load(path)["optimizer"])
    for s in range(3, 5):
        step(ref, ropt, s, 0, 6)
    for (k, v), (_, w) in zip(model.state_dict().items(), ref.state_dict().items()):
        check(np.allclose(v.numpy(), w.numpy(), rtol=0, atol=1e-12), f"{n} ranks after resume: {k} differs")
print(f"rank {rank}: ok")
