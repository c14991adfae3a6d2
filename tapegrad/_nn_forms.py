"""``torch.conv1d``, ``torch.dropout``, ``torch.layer_norm``, ...: the top-level forms that
PyTorch exposes of its neural-network functions, with *their* signatures, which are ATen's and
not always ``torch.nn.functional``'s: ``torch.dropout(input, p, train)`` takes every argument
positionally, ``torch.embedding(weight, indices)`` takes the weight first, the losses take
``reduction`` as ATen's integer (0 none, 1 mean, 2 sum), ``torch.batch_norm`` orders its
arguments differently, ``torch.adaptive_max_pool1d`` always returns the indices. Each calls
``tapegrad.nn.functional``, which holds the math.
"""
from __future__ import annotations

import numpy as np

from . import random as _random
from .nn import functional as F
from .ops.inplace import inplace as _inplace_rule
from .tensor import Tensor

_REDUCTIONS = {0: "none", 1: "mean", 2: "sum"}


def _reduction(r, opname):
    if isinstance(r, str) and r in _REDUCTIONS.values():
        return r
    if r not in _REDUCTIONS or isinstance(r, bool):
        raise RuntimeError(f"{opname}: reduction must be 0 (none), 1 (mean) or 2 (sum), got {r!r}")
    return _REDUCTIONS[r]


# ---------------------------------------------------------------- same signature as F's
def conv1d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """``nn.functional.conv1d``."""
    return F.conv1d(input, weight, bias, stride, padding, dilation, groups)


def conv_transpose1d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
    """``nn.functional.conv_transpose1d``."""
    return F.conv_transpose1d(input, weight, bias, stride, padding, output_padding, groups, dilation)


def convolution(input, weight, bias, stride, padding, dilation, transposed, output_padding, groups):
    """ATen's generic convolution: ``conv1d``/``conv2d`` (or their transposes when
    ``transposed``), chosen by the input's rank."""
    n = input.ndim - 2
    if n not in (1, 2):
        raise RuntimeError(f"convolution: expected a 3-D or 4-D input (1-D or 2-D convolution), got "
                           f"{input.ndim}-D of shape {tuple(input.shape)}")
    if transposed:
        f = F.conv_transpose1d if n == 1 else F.conv_transpose2d
        return f(input, weight, bias, stride, padding, output_padding, groups, dilation)
    return (F.conv1d if n == 1 else F.conv2d)(input, weight, bias, stride, padding, dilation, groups)


def bilinear(input1, input2, weight, bias=None):
    """``nn.functional.bilinear``."""
    return F.bilinear(input1, input2, weight, bias)


def cosine_similarity(x1, x2, dim=1, eps=1e-8):
    """``nn.functional.cosine_similarity``."""
    return F.cosine_similarity(x1, x2, dim, eps)


def pairwise_distance(x1, x2, p=2.0, eps=1e-6, keepdim=False):
    """``nn.functional.pairwise_distance``."""
    return F.pairwise_distance(x1, x2, p, eps, keepdim)


def pixel_shuffle(input, upscale_factor):
    """``nn.functional.pixel_shuffle``."""
    return F.pixel_shuffle(input, upscale_factor)


def pixel_unshuffle(input, downscale_factor):
    """``nn.functional.pixel_unshuffle``."""
    return F.pixel_unshuffle(input, downscale_factor)


def channel_shuffle(input, groups):
    """``nn.functional.channel_shuffle``."""
    return F.channel_shuffle(input, groups)


def adaptive_avg_pool1d(input, output_size):
    """``nn.functional.adaptive_avg_pool1d``."""
    return F.adaptive_avg_pool1d(input, output_size)


def avg_pool1d(input, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True):
    """``nn.functional.avg_pool1d``."""
    return F.avg_pool1d(input, kernel_size, stride, padding, ceil_mode, count_include_pad)


def max_pool1d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False):
    """``nn.functional.max_pool1d`` (the values only)."""
    return F.max_pool1d(input, kernel_size, stride, padding, dilation, ceil_mode)


def max_pool1d_with_indices(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False):
    """``nn.functional.max_pool1d`` with ``return_indices=True``: ``(values, indices)``."""
    return F.max_pool1d(input, kernel_size, stride, padding, dilation, ceil_mode, return_indices=True)


def adaptive_max_pool1d(input, output_size):
    """``(values, indices)``: unlike ``nn.functional.adaptive_max_pool1d``, this form always
    returns the indices, as PyTorch's."""
    return F.adaptive_max_pool1d(input, output_size, return_indices=True)


def constant_pad_nd(input, pad, value=0):
    """``nn.functional.pad(input, pad, "constant", value)``."""
    return F.pad(input, pad, "constant", value)


def rms_norm(input, normalized_shape, weight=None, eps=None):
    """``nn.functional.rms_norm``."""
    return F.rms_norm(input, normalized_shape, weight, eps)


# ---------------------------------------------------------------- activations: ATen has no inplace= flag
def celu(input, alpha=1.0):
    """``nn.functional.celu``."""
    return F.celu(input, alpha)


def celu_(input, alpha=1.0):
    """``celu``, written into ``input``."""
    return _inplace(input, F.celu, alpha)


def selu(input):
    """``nn.functional.selu``."""
    return F.selu(input)


def selu_(input):
    """``selu``, written into ``input``."""
    return _inplace(input, F.selu)


def rrelu(input, lower=1.0 / 8, upper=1.0 / 3, training=False, generator=None):
    """``nn.functional.rrelu``."""
    return F.rrelu(input, lower, upper, training)


def rrelu_(input, lower=1.0 / 8, upper=1.0 / 3, training=False, generator=None):
    """``rrelu``, written into ``input``."""
    return _inplace(input, F.rrelu, lower, upper, training)


def threshold(input, threshold, value):
    """``nn.functional.threshold``: ``input`` where it is above ``threshold``, else ``value``."""
    return F.threshold(input, threshold, value)


def threshold_(input, threshold, value):
    """``threshold``, written into ``input``."""
    return _inplace(input, F.threshold, threshold, value)


def _inplace(input, fn, *args):
    # the in-place rule of every op's ``_`` form: version bump, leaf check, recorded while grad is on
    return _inplace_rule(input, lambda s: fn(s, *args), fn.__name__ + "_")


# ---------------------------------------------------------------- dropout: (input, p, train), all required
def _check_p(p, opname):
    if not 0.0 <= p <= 1.0:
        raise RuntimeError(f"{opname}: dropout probability has to be between 0 and 1, but got {p}")


def dropout(input, p, train):
    """``nn.functional.dropout(input, p, training=train)``."""
    _check_p(p, "dropout")
    return F.dropout(input, p, train)


def dropout_(input, p, train):
    """``dropout``, written into ``input``."""
    _check_p(p, "dropout_")
    return _inplace(input, F.dropout, p, train) if train else input


def feature_dropout(input, p, train):
    """Zero whole feature maps (dim 1 of an input of at least 2 dims) with probability ``p`` and
    scale the rest by ``1/(1-p)``; the identity when not training."""
    _check_p(p, "feature_dropout")
    if not train or p == 0:
        return input
    if input.ndim < 2:
        raise RuntimeError(f"feature_dropout: expected an input of at least 2 dims (N, C, ...), got shape "
                           f"{tuple(input.shape)}")
    if p == 1:
        return input * 0
    shape = input.shape[:2] + (1,) * (input.ndim - 2)
    keep = (_random.rng().random(shape) >= p).astype(input.dtype) / (1 - p)
    return input * Tensor._wrap(np.asarray(keep, dtype=input.dtype))


def feature_dropout_(input, p, train):
    """``feature_dropout``, written into ``input``."""
    return _inplace(input, feature_dropout, p, train) if train else input


_SELU_NEG = -1.7580993408473766  # -scale * alpha of SELU: where a dropped unit sits


def _alpha_dropout(input, p, train, feature, opname):
    """Dropout that keeps SELU's zero mean and unit variance: dropped units become SELU's
    negative saturation value, then ``a * x + b`` restores the moments (Klambauer et al. 2017),
    with PyTorch's ``a = ((1 - p) (1 + p alpha'^2))^-1/2`` and ``b = -a alpha' p``."""
    _check_p(p, opname)
    if not train or p == 0:
        return input
    if feature and input.ndim < 2:
        raise RuntimeError(f"{opname}: expected an input of at least 2 dims (N, C, ...), got shape {tuple(input.shape)}")
    if p == 1:
        return input * 0
    shape = input.shape[:2] + (1,) * (input.ndim - 2) if feature else input.shape
    keep = (_random.rng().random(shape) >= p).astype(input.dtype)
    a = ((1 - p) * (1 + p * _SELU_NEG ** 2)) ** -0.5
    b = -a * _SELU_NEG * p
    k = Tensor._wrap(keep)
    return input * (k * a) + Tensor._wrap((1 - keep) * (a * _SELU_NEG) + b)


def alpha_dropout(input, p, train):
    """``nn.functional.alpha_dropout(input, p, training=train)``: dropout for SELU networks."""
    return _alpha_dropout(input, p, train, False, "alpha_dropout")


def alpha_dropout_(input, p, train):
    """``alpha_dropout``, written into ``input``."""
    return _inplace(input, alpha_dropout, p, train) if train else input


def feature_alpha_dropout(input, p, train):
    """``alpha_dropout`` of whole feature maps (dim 1), as ``feature_dropout`` is of ``dropout``."""
    return _alpha_dropout(input, p, train, True, "feature_alpha_dropout")


def feature_alpha_dropout_(input, p, train):
    """``feature_alpha_dropout``, written into ``input``."""
    return _inplace(input, feature_alpha_dropout, p, train) if train else input


# ---------------------------------------------------------------- normalisation: ATen's argument order
def batch_norm(input, weight, bias, running_mean, running_var, training, momentum, eps, cudnn_enabled):
    """``nn.functional.batch_norm`` with ATen's argument order (weight and bias first)."""
    return F.batch_norm(input, running_mean, running_var, weight, bias, training, momentum, eps)


def instance_norm(input, weight, bias, running_mean, running_var, use_input_stats, momentum, eps, cudnn_enabled):
    """``nn.functional.instance_norm`` with ATen's argument order (weight and bias first)."""
    return F.instance_norm(input, running_mean, running_var, weight, bias, use_input_stats, momentum, eps)


def layer_norm(input, normalized_shape, weight=None, bias=None, eps=1e-5, cudnn_enable=True):
    """``nn.functional.layer_norm``."""
    return F.layer_norm(input, normalized_shape, weight, bias, eps)


def group_norm(input, num_groups, weight=None, bias=None, eps=1e-5, cudnn_enabled=True):
    """``nn.functional.group_norm``."""
    return F.group_norm(input, num_groups, weight, bias, eps)


# ---------------------------------------------------------------- embedding: the weight first
def embedding(weight, indices, padding_idx=-1, scale_grad_by_freq=False, sparse=False):
    """``nn.functional.embedding(indices, weight)``: ATen's order; ``padding_idx=-1`` means none."""
    return F.embedding(indices, weight, None if padding_idx == -1 else padding_idx,
                       scale_grad_by_freq=scale_grad_by_freq, sparse=sparse)


# ---------------------------------------------------------------- losses: reduction as ATen's integer
def binary_cross_entropy_with_logits(input, target, weight=None, pos_weight=None, reduction=1):
    """``nn.functional.binary_cross_entropy_with_logits``; ``reduction`` 0/1/2 (none/mean/sum)."""
    return F.binary_cross_entropy_with_logits(input, target, weight, reduction=_reduction(reduction, "bce"),
                                              pos_weight=pos_weight)


def kl_div(input, target, reduction=1, *, log_target=False):
    """``nn.functional.kl_div``; ``reduction`` 0/1/2 (none/mean/sum: mean over every element,
    as ATen's)."""
    return F.kl_div(input, target, reduction=_reduction(reduction, "kl_div"), log_target=log_target)


def hinge_embedding_loss(input, target, margin=1.0, reduction=1):
    """``nn.functional.hinge_embedding_loss``; ``reduction`` 0/1/2."""
    return F.hinge_embedding_loss(input, target, margin, reduction=_reduction(reduction, "hinge_embedding_loss"))


def margin_ranking_loss(input1, input2, target, margin=0.0, reduction=1):
    """``nn.functional.margin_ranking_loss``; ``reduction`` 0/1/2."""
    return F.margin_ranking_loss(input1, input2, target, margin,
                                 reduction=_reduction(reduction, "margin_ranking_loss"))


def cosine_embedding_loss(input1, input2, target, margin=0.0, reduction=1):
    """``nn.functional.cosine_embedding_loss``; ``reduction`` 0/1/2."""
    return F.cosine_embedding_loss(input1, input2, target, margin,
                                   reduction=_reduction(reduction, "cosine_embedding_loss"))


def triplet_margin_loss(anchor, positive, negative, margin=1.0, p=2, eps=1e-6, swap=False, reduction=1):
    """``nn.functional.triplet_margin_loss``; ``reduction`` 0/1/2."""
    return F.triplet_margin_loss(anchor, positive, negative, margin, p, eps, swap,
                                 reduction=_reduction(reduction, "triplet_margin_loss"))


def poisson_nll_loss(input, target, log_input, full, eps, reduction):
    """``nn.functional.poisson_nll_loss``, every argument required; ``reduction`` 0/1/2."""
    return F.poisson_nll_loss(input, target, log_input, full, eps=eps,
                              reduction=_reduction(reduction, "poisson_nll_loss"))


__all__ = ["conv1d", "conv_transpose1d", "convolution", "bilinear", "cosine_similarity", "pairwise_distance",
           "pixel_shuffle", "pixel_unshuffle", "channel_shuffle", "adaptive_avg_pool1d", "avg_pool1d", "max_pool1d",
           "max_pool1d_with_indices", "adaptive_max_pool1d", "constant_pad_nd", "rms_norm",
           "celu", "celu_", "selu", "selu_", "rrelu", "rrelu_", "threshold", "threshold_", "dropout", "dropout_",
           "feature_dropout", "feature_dropout_", "alpha_dropout", "alpha_dropout_",
           "feature_alpha_dropout", "feature_alpha_dropout_", "batch_norm", "instance_norm", "layer_norm", "group_norm",
           "embedding", "binary_cross_entropy_with_logits", "kl_div", "hinge_embedding_loss",
           "margin_ranking_loss", "cosine_embedding_loss", "triplet_margin_loss", "poisson_nll_loss"]
