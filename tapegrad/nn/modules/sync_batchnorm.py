"""``SyncBatchNorm``: batch normalisation whose statistics cover the batch of every rank.

Forward: each rank computes its per-channel count, mean and centred sum of squares; one
allgather gives every rank all of them, combined in rank order (Chan's parallel variance, no
cancellation as with sum and sum of squares), so every rank normalises with the same,
bit-identical statistics. Backward: one allreduce of the per-channel sums of ``dy`` and
``dy * xhat`` gives each rank the input gradient of the loss summed over all ranks; weight and
bias gradients stay local, as DistributedDataParallel averages them (PyTorch's split too).
"""
from __future__ import annotations

import numpy as np

from ... import distributed as dist
from ...autograd import Function
from ...distributed import _collectives
from ...tensor import Tensor
from .normalization import _BatchNorm


class _SyncBatchNormFn(Function):
    @staticmethod
    def forward(ctx, x, weight, bias, running_mean, running_var, eps, momentum, pg):
        a = x._data
        c = a.shape[1]
        axes = (0,) + tuple(range(2, a.ndim))
        n = a.size // c
        if n == 0:
            raise ValueError(f"SyncBatchNorm: empty input of shape {tuple(a.shape)} on rank {pg.rank()}")
        a64 = a.astype(np.float64, copy=False)
        mean = a64.mean(axis=axes)
        shape = (1, c) + (1,) * (a.ndim - 2)
        m2 = ((a64 - mean.reshape(shape)) ** 2).sum(axis=axes)
        mine = Tensor._wrap(np.concatenate([[float(n)], mean, m2]))
        table = Tensor._wrap(np.empty(pg.size() * (2 * c + 1)))
        _collectives.all_gather_into_tensor(table, mine, group=pg)
        table = table._data.reshape(pg.size(), 2 * c + 1)
        counts, means, m2s = table[:, :1], table[:, 1:c + 1], table[:, c + 1:]
        total = float(counts.sum())
        gmean = (counts * means).sum(0) / total
        gm2 = (m2s + counts * (means - gmean) ** 2).sum(0)
        var = gm2 / total
        invstd = 1.0 / np.sqrt(var + eps)
        xhat = (a64 - gmean.reshape(shape)) * invstd.reshape(shape)
        y = xhat
        if weight is not None:
            y = y * weight._data.reshape(shape)
        if bias is not None:
            y = y + bias._data.reshape(shape)
        if running_mean is not None:
            unbiased = gm2 / max(total - 1.0, 1.0)
            rm, rv = running_mean._data, running_var._data
            rm[...] = (1 - momentum) * rm + momentum * gmean
            rv[...] = (1 - momentum) * rv + momentum * unbiased
            running_mean._bump_version()
            running_var._bump_version()
        ctx.pg, ctx.total, ctx.shape, ctx.axes = pg, total, shape, axes
        ctx.xhat, ctx.invstd, ctx.dtype = xhat, invstd, a.dtype
        ctx.weight = None if weight is None else weight._data
        return Tensor._wrap(y.astype(a.dtype, copy=False))

    @staticmethod
    def backward(ctx, grad):
        dy = grad._data.astype(np.float64, copy=False)
        xhat, shape, axes = ctx.xhat, ctx.shape, ctx.axes
        sum_dy = dy.sum(axis=axes)
        sum_dy_xhat = (dy * xhat).sum(axis=axes)
        gw = None if ctx.weight is None else Tensor._wrap(sum_dy_xhat.astype(ctx.weight.dtype))
        gb = Tensor._wrap(sum_dy.astype(ctx.dtype))
        gx = None
        if ctx.needs_input_grad[0]:
            sums = Tensor._wrap(np.concatenate([sum_dy, sum_dy_xhat]))
            _collectives.all_reduce(sums, group=ctx.pg)
            c = sum_dy.size
            g_dy, g_dy_xhat = sums._data[:c] / ctx.total, sums._data[c:] / ctx.total
            scale = ctx.invstd if ctx.weight is None else ctx.invstd * ctx.weight
            gx = (dy - g_dy.reshape(shape) - xhat * g_dy_xhat.reshape(shape)) * scale.reshape(shape)
            gx = Tensor._wrap(gx.astype(ctx.dtype, copy=False))
        return gx, gw, gb, None, None, None, None, None


class SyncBatchNorm(_BatchNorm):
    """Batch normalisation over the union of every rank's batch ``(N, C, *)`` in training.

    >>> model = tapegrad.nn.SyncBatchNorm.convert_sync_batchnorm(model)   # BatchNorm*d -> SyncBatchNorm
    >>> model = DistributedDataParallel(model)

    Without an initialised process group, or in eval mode, it is an ordinary batch norm.
    """

    _expected_dims = tuple(range(2, 9))

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1, affine: bool = True,
                 track_running_stats: bool = True, process_group=None, device=None, dtype=None):
        super().__init__(num_features, eps, momentum, affine, track_running_stats, device, dtype)
        self.process_group = process_group

    def forward(self, input):
        self._check_input_dim(input)
        if not (self.training and dist.is_initialized()):
            return super().forward(input)
        pg = dist._group.resolve(self.process_group, "SyncBatchNorm")
        if pg.size() == 1:
            return super().forward(input)
        factor = 0.0 if self.momentum is None else self.momentum
        tracking = self.track_running_stats and self.running_mean is not None
        if tracking:
            self.num_batches_tracked._data += 1
            self.num_batches_tracked._bump_version()
            if self.momentum is None:
                factor = 1.0 / float(self.num_batches_tracked._data)
        return _SyncBatchNormFn.apply(input, self.weight, self.bias, self.running_mean if tracking else None,
                                      self.running_var if tracking else None, self.eps, factor, pg)

    @classmethod
    def convert_sync_batchnorm(cls, module, process_group=None):
        """``module`` with every ``BatchNorm*d`` replaced by a ``SyncBatchNorm`` that shares its
        parameters and buffers (the module itself if it is one)."""
        out = module
        if isinstance(module, _BatchNorm) and not isinstance(module, SyncBatchNorm):
            out = cls(module.num_features, module.eps, module.momentum, module.affine, module.track_running_stats,
                      process_group)
            if module.affine:
                out.weight, out.bias = module.weight, module.bias
            out.running_mean, out.running_var = module.running_mean, module.running_var
            out.num_batches_tracked = module.num_batches_tracked
            out.train(module.training)
        for name, child in module.named_children():
            out.add_module(name, cls.convert_sync_batchnorm(child, process_group))
        return out
