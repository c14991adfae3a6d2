"""Folding an eval-mode BatchNorm into the convolution or linear layer before it (PyTorch's
``nn.utils.fuse_conv_bn_eval`` & co): ``bn(conv(x)) == fused(x)`` for inference, one layer less."""
from __future__ import annotations

import copy

from ...ops import plain as _ops  # the ops without their out= wrappers
from ...ops import creation
from ..._tape import grad_mode
from ..parameter import Parameter


def fuse_conv_bn_eval(conv, bn, transpose: bool = False):
    """A copy of ``conv`` whose weight and bias absorb the eval-mode ``bn`` that follows it
    (``transpose=True`` for a transposed convolution, whose output channels are weight dim 1).

    >>> fused = tapegrad.nn.utils.fuse_conv_bn_eval(conv.eval(), bn.eval())
    """
    if conv.training or bn.training:
        raise AssertionError("fuse_conv_bn_eval: Fusion only for eval! (call .eval() on both modules)")
    if bn.running_mean is None or bn.running_var is None:
        raise AssertionError("fuse_conv_bn_eval: the batch norm has no running statistics (track_running_stats=False)")
    fused = copy.deepcopy(conv)
    fused.weight, fused.bias = fuse_conv_bn_weights(fused.weight, fused.bias, bn.running_mean, bn.running_var,
                                                    bn.eps, bn.weight, bn.bias, transpose)
    return fused


def fuse_conv_bn_weights(conv_w, conv_b, bn_rm, bn_rv, bn_eps, bn_w, bn_b, transpose: bool = False):
    """``(weight, bias)`` Parameters of the convolution that equals ``conv`` followed by an
    eval-mode batch norm with running mean/var ``bn_rm``/``bn_rv`` and affine ``bn_w``/``bn_b``
    (None for an identity affine or no conv bias); dtypes follow the conv's."""
    bias_dtype = conv_b.dtype if conv_b is not None else conv_w.dtype
    with grad_mode.no_grad():
        b = conv_b if conv_b is not None else creation.zeros_like(bn_rm)
        scale = _ops.rsqrt(bn_rv + bn_eps)
        if bn_w is not None:
            scale = scale * bn_w
        shape = ((1, -1) if transpose else (-1, 1)) + (1,) * (conv_w.ndim - 2)
        w = (conv_w * scale.reshape(shape)).to(conv_w.dtype)
        b = (b - bn_rm) * scale
        if bn_b is not None:
            b = b + bn_b
        b = b.to(bias_dtype)
    return (Parameter(w, conv_w.requires_grad),
            Parameter(b, conv_b.requires_grad if conv_b is not None else conv_w.requires_grad))


def fuse_linear_bn_eval(linear, bn):
    """A copy of ``linear`` whose weight and bias absorb the eval-mode ``bn`` (BatchNorm1d) that
    follows it; ``bn`` has ``linear.out_features`` features, or 1 (broadcast)."""
    if linear.training or bn.training:
        raise AssertionError("fuse_linear_bn_eval: Fusion only for eval! (call .eval() on both modules)")
    if not (linear.out_features == bn.num_features or bn.num_features == 1):
        raise AssertionError(f"fuse_linear_bn_eval: to fuse, linear.out_features ({linear.out_features}) must equal "
                             f"bn.num_features ({bn.num_features}) or bn.num_features must be 1")
    if bn.running_mean is None or bn.running_var is None:
        raise AssertionError("fuse_linear_bn_eval: the batch norm has no running statistics")
    fused = copy.deepcopy(linear)
    fused.weight, fused.bias = fuse_linear_bn_weights(fused.weight, fused.bias, bn.running_mean, bn.running_var,
                                                      bn.eps, bn.weight, bn.bias)
    return fused


def fuse_linear_bn_weights(linear_w, linear_b, bn_rm, bn_rv, bn_eps, bn_w, bn_b):
    """``(weight, bias)`` Parameters of the linear layer that equals ``linear`` followed by an
    eval-mode batch norm (running mean/var ``bn_rm``/``bn_rv``, affine ``bn_w``/``bn_b``)."""
    bias_dtype = linear_b.dtype if linear_b is not None else linear_w.dtype
    with grad_mode.no_grad():
        b = linear_b if linear_b is not None else creation.zeros_like(bn_rm)
        scale = _ops.rsqrt(bn_rv + bn_eps)
        if bn_w is not None:
            scale = scale * bn_w
        w = linear_w * scale.unsqueeze(-1).to(linear_w.dtype)
        b = (b - bn_rm) * scale
        if bn_b is not None:
            b = b + bn_b
        b = b.to(bias_dtype)
    return (Parameter(w, linear_w.requires_grad),
            Parameter(b, linear_b.requires_grad if linear_b is not None else linear_w.requires_grad))
