"""DDP's other paths on N ranks: find_unused_parameters (a branch used by some ranks only, one
used by none), the error when a backward leaves parameters out, different models across ranks,
SyncBatchNorm inside DDP, buffers broadcast, an async all_reduce overlapping a user's compute."""
import numpy as np

import tapegrad
import tapegrad.distributed as dist
import tapegrad.nn as nn
import tapegrad.nn.functional as F
from tapegrad.nn.parallel import DistributedDataParallel as DDP
from common import check

dist.init_process_group("mpi")
rank, n = dist.get_rank(), dist.get_world_size()
tapegrad.set_default_dtype(tapegrad.float64)


class Branchy(nn.Module):
    def __init__(self):
        super().__init__()
        self.trunk = nn.Linear(4, 3)
        self.odd = nn.Linear(4, 3)      # used on odd ranks only
        self.never = nn.Linear(4, 3)    # used by nobody

    def forward(self, x, use_odd):
        y = self.trunk(x)
        return y + self.odd(x) if use_odd else y


def local_grads(model, x, use_odd):
    model.zero_grad()
    (model(x, use_odd) ** 2).mean().backward()
    return {k: (None if p.grad is None else p.grad.numpy().copy()) for k, p in model.named_parameters()}


rng = np.random.default_rng(rank)
x = tapegrad.tensor(rng.standard_normal((5, 4)))
use_odd = rank % 2 == 1
tapegrad.manual_seed(0)
plain = Branchy()
ddp = DDP(Branchy(), find_unused_parameters=True)
ddp.module.load_state_dict(plain.state_dict())
want = local_grads(plain, x, use_odd)
for step in range(2):  # twice: the second step starts from the first's bookkeeping
    ddp.zero_grad()
    (ddp(x, use_odd) ** 2).mean().backward()
    for k, p in ddp.module.named_parameters():
        if k.startswith("never"):
            check(p.grad is None, f"{k}: a parameter no rank used got a gradient")
            continue
        g = tapegrad.tensor(want[k] if want[k] is not None else np.zeros(p.shape))
        dist.all_reduce(g)
        if k.startswith("odd") and n == 1:
            check(p.grad is None, f"{k}: unused on the only rank, yet a gradient")
            continue
        check(p.grad is not None and np.allclose(p.grad.numpy(), g.numpy() / n, atol=1e-14),
              f"step {step}: {k}: DDP's gradient is not the average of the ranks' gradients")

# a rank whose forward uses no parameter at all still takes part in the reduction
class Gate(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(4, 3)

    def forward(self, x, use):
        return self.lin(x) if use else x[:, :3] * 2.0


if n > 1:
    tiny = DDP(Gate(), find_unused_parameters=True)
    tiny.zero_grad()
    tiny(tapegrad.tensor(x.numpy(), requires_grad=True), rank == 0).sum().backward()
    g = tapegrad.tensor(np.full(3, 5.0) if rank == 0 else np.zeros(3))
    dist.all_reduce(g)
    check(np.allclose(tiny.module.lin.bias.grad.numpy(), g.numpy() / n), f"bias grad with idle ranks: "
          f"{tiny.module.lin.bias.grad}")

# without find_unused_parameters, a backward that leaves parameters out is named at the next forward
strict = DDP(Branchy())
(strict(x, True) ** 2).mean().backward()
try:
    strict(x, True)
except RuntimeError as e:
    check("never.weight" in str(e) and "find_unused_parameters=True" in str(e), f"unclear error: {e}")
else:
    raise AssertionError("a forward after an incomplete reduction did not raise")

# different models on different ranks: a clear error on every rank at construction
if n > 1:
    try:
        DDP(nn.Linear(3, 2 + (rank == 1)))
    except RuntimeError as e:
        check("ddp_init" in str(e) and "rank 1" in str(e), f"unclear error: {e}")
    else:
        raise AssertionError("DDP accepted different models")

# SyncBatchNorm inside DDP: running statistics agree on every rank, buffers broadcast from rank 0
tapegrad.manual_seed(rank)
net = nn.Sequential(nn.Conv2d(2, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 4 * 4, 3))
net = DDP(nn.SyncBatchNorm.convert_sync_batchnorm(net))
opt = tapegrad.optim.SGD(net.parameters(), lr=0.1)
for _ in range(3):
    xb = tapegrad.tensor(np.random.default_rng(10 + rank).standard_normal((4, 2, 6, 6)))
    loss = F.cross_entropy(net(xb), tapegrad.tensor(np.arange(4) % 3))
    opt.zero_grad()
    loss.backward()
    opt.step()
log = net._get_ddp_logging_data()
check(log["iterations_timed"] == 3 and log["num_buckets"] >= 1, f"logging data: {log}")
check(0 <= log["avg_backward_compute_comm_overlap_time"] <= log["avg_backward_compute_time"], f"overlap: {log}")
state = np.concatenate([v.numpy().ravel().astype(np.float64) for v in net.module.state_dict().values()])
every = [None] * n
dist.all_gather_object(every, [float(state.sum()), float((state * np.arange(state.size)).sum())])
check(all(e == every[0] for e in every), f"ranks disagree after SyncBatchNorm + DDP: {every}")

# async all_reduce: work on something else, then wait
t = tapegrad.full((1000,), float(rank))
work = dist.all_reduce(t, async_op=True)
busy = sum(range(1000))
work.wait(timeout=60)
check(work.is_completed() and busy and np.all(t.numpy() == n * (n - 1) / 2), "async all_reduce")
# a wait with a timeout on a receive nobody sends: a clear error, not a hang
try:
    dist.irecv(tapegrad.zeros(1), src=0, tag=7).wait(timeout=0.05)
except RuntimeError as e:
    check("not completed within" in str(e), f"unclear error: {e}")
else:
    raise AssertionError("wait(timeout) returned for a message never sent")
print(f"rank {rank}: ok")
