"""SyncBatchNorm on N ranks == BatchNorm on the concatenated batch in one process: output,
running statistics, input gradient (of the sum of every rank's loss) and the weight/bias
gradients (summed over ranks, as DDP's average of the per-rank mean losses implies)."""
import numpy as np

import tapegrad
import tapegrad.distributed as dist
import tapegrad.nn as nn
from common import check

dist.init_process_group("mpi")
rank, n = dist.get_rank(), dist.get_world_size()
rng = np.random.default_rng(5)
C = 3
for shape in [(2, C, 4, 5), (3, C), (2, C, 7)]:
    xs = [rng.standard_normal(shape) * 3 + 1 for _ in range(n)]
    ws = [rng.standard_normal(shape) for _ in range(n)]  # each rank's loss: sum(y * w_rank)
    bn = nn.BatchNorm2d(C) if len(shape) == 4 else nn.BatchNorm1d(C)
    bn = bn.to(tapegrad.float64)
    bn.weight.data = tapegrad.tensor(rng.standard_normal(C))
    bn.bias.data = tapegrad.tensor(rng.standard_normal(C))
    sync = nn.SyncBatchNorm.convert_sync_batchnorm(nn.Sequential(bn))[0]
    check(isinstance(sync, nn.SyncBatchNorm), "convert_sync_batchnorm did not convert")
    ref = nn.BatchNorm2d(C) if len(shape) == 4 else nn.BatchNorm1d(C)
    ref = ref.to(tapegrad.float64)
    ref.weight.data, ref.bias.data = bn.weight.detach().clone(), bn.bias.detach().clone()

    x = tapegrad.tensor(xs[rank], requires_grad=True)
    y = sync(x)
    (y * tapegrad.tensor(ws[rank])).sum().backward()
    X = tapegrad.tensor(np.concatenate(xs), requires_grad=True)
    Y = ref(X)
    (Y * tapegrad.tensor(np.concatenate(ws))).sum().backward()
    b = shape[0]
    rows = slice(rank * b, (rank + 1) * b)
    check(np.allclose(y.detach().numpy(), Y.detach().numpy()[rows], atol=1e-12), f"{shape}: forward differs")
    check(np.allclose(x.grad.numpy(), X.grad.numpy()[rows], atol=1e-11), f"{shape}: input gradient differs")
    for name in ("weight", "bias"):
        g = getattr(sync, name).grad.clone()
        dist.all_reduce(g)
        check(np.allclose(g.numpy(), getattr(ref, name).grad.numpy(), atol=1e-11), f"{shape}: {name} grad differs")
    for name in ("running_mean", "running_var"):
        check(np.allclose(getattr(sync, name).numpy(), getattr(ref, name).numpy(), atol=1e-12),
              f"{shape}: {name} differs")
    sync.eval()
    check(np.allclose(sync(x).detach().numpy(), ref.eval()(X).detach().numpy()[rows], atol=1e-12), f"{shape}: eval differs")
print(f"rank {rank}: ok")
