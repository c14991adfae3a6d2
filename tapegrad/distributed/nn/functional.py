"""``torch.distributed.nn.functional``: collectives that record onto the tape. Each returns new
tensors (the input is not written, unlike ``tapegrad.distributed``'s in-place collectives) and its
backward runs the adjoint collective, on every rank, in the same order as PyTorch's:

- ``all_reduce`` (SUM or AVG): the gradient all-reduced the same way;
- ``all_gather``: rank r's gradient is the sum over ranks of their gradients for slot r (a
  reduce-scatter);
- ``reduce_scatter``: the gradient all-gathered;
- ``broadcast`` from ``src``: the gradients summed onto ``src`` (zero on the other ranks);
- ``reduce`` to ``dst``: ``dst``'s gradient broadcast to every rank.

Every rank must run the backward (as the forward): a collective in it waits for all ranks.
"""
from __future__ import annotations

from ... import ops as _ops
from ...autograd.function import Function
from ...autograd.grad_mode import no_grad
from .. import _collectives as _c
from .. import _group

ReduceOp = _c.ReduceOp

__all__ = ["all_gather", "all_reduce", "broadcast", "reduce", "reduce_scatter"]


def _rank(group):
    return _group.get_rank(group) if group is not None else _group.get_rank()


def _world(group):
    return _group.get_world_size(group) if group is not None else _group.get_world_size()


class _AllReduce(Function):
    @staticmethod
    def forward(ctx, op, group, tensor):
        ctx.op, ctx.group = op, group
        out = tensor.clone()
        _c.all_reduce(out, op=op, group=group)
        return out

    @staticmethod
    def backward(ctx, grad):
        if ctx.op not in (ReduceOp.SUM, ReduceOp.AVG):
            raise RuntimeError(f"all_reduce backward: only ReduceOp.SUM and ReduceOp.AVG have a gradient here, "
                               f"the forward used ReduceOp.{ctx.op.name}")
        return None, None, _AllReduce.apply(ctx.op, ctx.group, grad)


class _AllGather(Function):
    @staticmethod
    def forward(ctx, group, tensor):
        ctx.group = group
        out = [_ops.empty_like(tensor) for _ in range(_world(group))]
        _c.all_gather(out, tensor.contiguous(), group=group)
        return tuple(out)

    @staticmethod
    def backward(ctx, *grads):
        grads = [_ops.zeros_like(g) if g is None else g for g in grads]  # a slot the loss did not use
        return None, _ReduceScatter.apply(ReduceOp.SUM, ctx.group, *grads)


class _ReduceScatter(Function):
    @staticmethod
    def forward(ctx, op, group, *tensors):
        ctx.op, ctx.group = op, group
        out = _ops.empty_like(tensors[_rank(group)])
        _c.reduce_scatter(out, [t.contiguous() for t in tensors], op=op, group=group)
        return out

    @staticmethod
    def backward(ctx, grad):
        if ctx.op is not ReduceOp.SUM:
            raise RuntimeError(f"reduce_scatter backward: only ReduceOp.SUM has a gradient here, the forward used "
                               f"ReduceOp.{ctx.op.name}")
        return (None, None) + tuple(_AllGather.apply(ctx.group, grad))


class _Broadcast(Function):
    @staticmethod
    def forward(ctx, src, group, tensor):
        ctx.src, ctx.group = src, group
        out = tensor.clone()
        _c.broadcast(out, src=src, group=group)
        return out

    @staticmethod
    def backward(ctx, grad):
        gx = _Reduce.apply(ctx.src, ReduceOp.SUM, ctx.group, grad)
        if _rank(ctx.group) != ctx.src:
            gx = _ops.zeros_like(gx)
        return None, None, gx


class _Reduce(Function):
    @staticmethod
    def forward(ctx, dst, op, group, tensor):
        ctx.dst, ctx.group = dst, group
        out = tensor.clone()
        _c.reduce(out, dst=dst, op=op, group=group)
        return out

    @staticmethod
    def backward(ctx, grad):
        return None, None, None, _Broadcast.apply(ctx.dst, ctx.group, grad)


def all_reduce(tensor, op=ReduceOp.SUM, group=None):
    """``tensor`` combined across ranks (a new tensor on every rank), differentiably."""
    return _AllReduce.apply(op, group, tensor)


def all_gather(tensor, group=None):
    """Every rank's ``tensor``, as a tuple indexed by rank, differentiably."""
    return _AllGather.apply(group, tensor)


def reduce_scatter(output, input_list, op=ReduceOp.SUM, group=None):
    """Rank r gets the reduction over ranks of their ``input_list[r]``; written into ``output``
    (PyTorch's signature) and returned, differentiably."""
    out = _ReduceScatter.apply(op, group, *input_list)
    with no_grad():
        output.copy_(out)
    return out


def broadcast(tensor, src, group=None):
    """``src``'s ``tensor`` on every rank (a new tensor), differentiably."""
    return _Broadcast.apply(src, group, tensor)


def reduce(tensor, dst, op=ReduceOp.SUM, group=None):
    """The reduction over ranks on ``dst`` (a new tensor; the other ranks get their input's
    values back, as PyTorch's), differentiably."""
    return _Reduce.apply(dst, op, group, tensor)

