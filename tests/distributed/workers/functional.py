"""torch.distributed.nn.functional's differentiable collectives: each rank backpropagates its own
loss, and the gradients that reach every rank's input are checked against the closed forms."""
import numpy as np

import tapegrad
import tapegrad.distributed as dist
from tapegrad.distributed import nn as dist_nn
from common import check

dist.init_process_group("mpi")
rank, n = dist.get_rank(), dist.get_world_size()
F = dist_nn.functional
S = sum(r + 1 for r in range(n))  # sum over ranks of c_r = r + 1
c = float(rank + 1)


def leaf():
    return tapegrad.tensor([rank + 1.0, 2.0 * (rank + 1)], dtype=tapegrad.float64, requires_grad=True)


def expect(x, want, what):
    got = x.grad.numpy()
    check(np.allclose(got, want), f"rank {rank}: {what}: grad {got}, want {want}")


# all_reduce: y = sum_q w_q x_q on every rank, loss_r = c_r * sum(y): dx_r = w_r * S
x = leaf()
y = F.all_reduce(x * (rank + 2.0))
check(np.allclose(y.detach().numpy(), sum((q + 2.0) * np.array([q + 1.0, 2.0 * (q + 1)]) for q in range(n))),
      f"rank {rank}: all_reduce values {y}")
(c * y).sum().backward()
expect(x, np.full(2, (rank + 2.0) * S), "all_reduce")

x = leaf()
y = F.all_reduce(x, op=dist.ReduceOp.AVG)
(c * y).sum().backward()
expect(x, np.full(2, S / n), "all_reduce AVG")

# all_gather: loss_r = sum_q (r+1)(q+2) sum(out[q]): dx_q = (q+2) S; a slot left unused gives 0
x = leaf()
outs = F.all_gather(x)
check(len(outs) == n and np.allclose(outs[n - 1].detach().numpy(), [n, 2.0 * n]), f"rank {rank}: all_gather {outs}")
sum(c * (q + 2.0) * outs[q].sum() for q in range(n)).backward()
expect(x, np.full(2, (rank + 2.0) * S), "all_gather")
x = leaf()
(c * F.all_gather(x)[0].sum()).backward()
expect(x, np.full(2, S if rank == 0 else 0.0), "all_gather, one slot used")

# broadcast from 0: dx_0 = w_0 * S, the others 0
x = leaf()
y = F.broadcast(x * (rank + 2.0), src=0)
check(np.allclose(y.detach().numpy(), [2.0, 4.0]), f"rank {rank}: broadcast values {y}")
(c * y).sum().backward()
expect(x, np.full(2, 2.0 * S if rank == 0 else 0.0), "broadcast")

# reduce to the last rank: dx_r = w_r * c_dst
x = leaf()
dst = n - 1
y = F.reduce(x * (rank + 2.0), dst=dst)
(c * y).sum().backward()
expect(x, np.full(2, (rank + 2.0) * (dst + 1.0)), "reduce")

# reduce_scatter: out_r = sum_q (q+1)(r+1) x_q, loss_r = c_r sum(out_r): dx_q = (q+1) sum_r (r+1)^2
x = leaf()
inputs = [x * ((rank + 1.0) * (k + 1.0)) for k in range(n)]
output = tapegrad.empty(2, dtype=tapegrad.float64)
out = F.reduce_scatter(output, inputs)
check(np.array_equal(output.numpy(), out.detach().numpy()), f"rank {rank}: reduce_scatter output")
(c * out).sum().backward()
expect(x, np.full(2, (rank + 1.0) * sum((r + 1.0) ** 2 for r in range(n))), "reduce_scatter")

# MAX has no gradient here: every rank raises the same clear error
x = leaf()
try:
    F.all_reduce(x, op=dist.ReduceOp.MAX).sum().backward()
    check(False, "all_reduce MAX backward did not raise")
except RuntimeError as e:
    check("only ReduceOp.SUM and ReduceOp.AVG" in str(e), f"rank {rank}: {e}")
dist.barrier()
print(f"rank {rank}: ok")
