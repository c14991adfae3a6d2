"""``tapegrad.nn.functional`` (import as ``F``): layers as functions, and the losses.

The math of activations, softmax, convolution and pooling lives in ``tapegrad.ops`` (one
declaration per op) and is re-exported here under PyTorch's names. The losses are written
in those ops, so their gradients (and gradients of gradients) come from the op table; each
is stable for logits of magnitude 1e4 and checks its arguments with errors that name the
loss and the offending shapes or values.

>>> import tapegrad.nn.functional as F
>>> logits = tapegrad.tensor([[2.0, 0.5, -1.0]], requires_grad=True)
>>> F.cross_entropy(logits, tapegrad.tensor([0]))
tensor(0.2413, grad_fn=...)
"""
from __future__ import annotations

import builtins
import math
import numbers
import warnings

import numpy as np

from .. import _dtype
from .. import random as _random
from . import grad  # noqa: F401  (F.grad: PyTorch's torch.nn.functional.grad is torch.nn.grad)
from ..tensor import Tensor
from ..ops import plain as _ops  # the ops without their out= wrappers
from ..ops.activation import (elu, gelu, hardshrink, hardtanh, leaky_relu, log_softmax, logsigmoid,  # noqa: F401
                              one_hot, prelu, relu6, silu, softmax, softplus)
from ..ops.activation import binary_cross_entropy_pointwise as _bce_pointwise
from ..ops.activation import binary_cross_entropy_with_logits_pointwise as _bce_logits_pointwise
from ..ops import activation as _act
from ..ops.linalg import pdist, vector_norm as _vector_norm  # noqa: F401
from ..ops.linalg import cosine_similarity_fused as _cosine_similarity_fused
from ..ops._util import norm_dim as _norm_dim
from ..ops.reduction import mse_loss_fused as _mse_loss_fused, huber_loss_fused as _huber_loss_fused
from ..ops.matmul import _linear, cpp_name as _cpp_name, scalar_name as _scalar_name
from ..ops.conv import adaptive_max_pool2d_native as _adaptive_max_pool2d_native, resample2d as _resample2d
from ..ops.conv import (adaptive_avg_pool2d, adaptive_avg_pool3d, avg_pool2d, avg_pool3d, conv2d,  # noqa: F401
                        conv3d, conv_transpose2d, conv_transpose3d, max_pool2d, max_pool3d, max_unpool2d,
                        max_unpool3d)
from ..ops import apply as _apply
from ..ops import attention as _attention
from ..ops.activation import _cross_entropy, _dropout, _embedding, _layer_norm
from ..ops import normalization as _norm
from ..ops.activation import relu as _relu_op
from ..ops.pointwise import sigmoid, tanh  # noqa: F401
from ..ops._autocast import FP32, LOWER, cast_inputs, round_once


def _const(arr, dtype=None) -> Tensor:
    return Tensor._wrap(np.asarray(arr, dtype=dtype))


def _shape(t) -> tuple:
    return t._data.shape if isinstance(t, Tensor) else tuple(t.shape)  # a plain tuple, without building a Size


# ---------------------------------------------------------------- activations
def relu(input, inplace: bool = False):
    """``max(x, 0)``. ``inplace=True`` is accepted and computed out of place (``relu_`` writes in place)."""
    return _relu_op(input)


def logsoftmax(input, dim=None):
    """``log_softmax`` under its old name."""
    return log_softmax(input, dim)


def softmin(input, dim=None, dtype=None):
    """``softmax(-input, dim)``."""
    return softmax(-input, dim, dtype=dtype)


def hardswish(input, inplace: bool = False):
    """``x * relu6(x + 3) / 6``."""
    return _inplace_result(input, _act.hardswish(input), inplace)


def mish(input, inplace: bool = False):
    """``x * tanh(softplus(x))``."""
    return _inplace_result(input, _act.mish(input), inplace)


def softsign(input):
    """``x / (1 + |x|)``."""
    return input / (_ops.abs(input) + 1)


def _inplace_result(input, out, inplace):
    """``inplace=True`` is accepted and computed out of place, as ``F.relu`` does (README: the
    deliberate differences); the ``*_`` functions below are the ones that write in place."""
    return out


def relu_(input):
    """``relu`` written into ``input`` (in place); returns ``input``."""
    return input.copy_(_relu_op(input))


def elu_(input, alpha: float = 1.0):
    """``elu`` written into ``input`` (in place); returns ``input``."""
    return input.copy_(elu(input, alpha))


def leaky_relu_(input, negative_slope: float = 0.01):
    """``leaky_relu`` written into ``input`` (in place); returns ``input``."""
    return input.copy_(leaky_relu(input, negative_slope))


def hardtanh_(input, min_val: float = -1.0, max_val: float = 1.0):
    """``hardtanh`` written into ``input`` (in place); returns ``input``."""
    return input.copy_(hardtanh(input, min_val, max_val))


def hardsigmoid(input, inplace: bool = False):
    """``relu6(x + 3) / 6``."""
    return _inplace_result(input, _act.hardsigmoid(input), inplace)


def softshrink(input, lambd: float = 0.5):
    """``x - lambd`` above ``lambd``, ``x + lambd`` below ``-lambd``, else 0."""
    if lambd < 0:
        raise RuntimeError(f"softshrink: lambda must be in range [0, max] for input dtype {_dtype.name(input.dtype)}, "
                           f"but found {lambd}")
    return _act.softshrink(input, lambd)


def tanhshrink(input):
    """``x - tanh(x)``."""
    return input - tanh(input)


def threshold(input, threshold: float, value: float, inplace: bool = False):
    """``input`` where ``input > threshold``, else ``value``."""
    # PyTorch's test is ``x <= threshold``: a NaN threshold (or NaN input) keeps the input
    out = _act.threshold(input, threshold, value)
    return _inplace_result(input, out, inplace)


def threshold_(input, threshold: float, value: float):
    """``threshold`` written into ``input`` (in place); returns ``input``."""
    return input.copy_(globals()["threshold"](input, threshold, value))


_SELU_ALPHA = 1.6732632423543772848170429916717


_SELU_SCALE = 1.0507009873554804934193349852946


def selu(input, inplace: bool = False):
    """``scale * elu(x, alpha)`` with the self-normalising constants (alpha 1.6733, scale 1.0507)."""
    return _inplace_result(input, _act.elu_op(input, _SELU_ALPHA, _SELU_SCALE, opname="selu"), inplace)


def celu(input, alpha: float = 1.0, inplace: bool = False):
    """``max(0, x) + min(0, alpha (exp(x / alpha) - 1))``."""
    if alpha == 0:
        raise RuntimeError("celu: ZeroDivisionError: alpha cannot be 0 for CELU")
    return _inplace_result(input, _act.elu_op(input, alpha, 1.0, 1.0 / alpha, opname="celu"), inplace)


def rrelu(input, lower: float = 1.0 / 8, upper: float = 1.0 / 3, training: bool = False, inplace: bool = False):
    """Leaky ReLU with a random slope in [lower, upper] per element when training, their mean otherwise."""
    if training:
        if lower > upper:
            raise RuntimeError(f"rrelu: lower bound should be less than or equal to the upper bound, got "
                               f"lower={lower}, upper={upper}")
        slope = _const(_random.rng().uniform(lower, upper, input.shape).astype(input.dtype))
        out = _ops.where(input >= 0, input, input * slope)
    else:
        out = leaky_relu(input, (lower + upper) / 2)
    return _inplace_result(input, out, inplace)


def glu(input, dim: int = -1):
    """``a * sigmoid(b)`` with ``a, b`` the two halves of ``input`` along ``dim``."""
    if input.ndim == 0:
        raise RuntimeError("glu does not support scalars because halving size must be even")
    if input.shape[dim] % 2:
        raise RuntimeError(f"glu: Halving dimension must be even, but dimension {dim} is size {input.shape[dim]}")
    a, b = _ops.chunk(input, 2, dim)
    return a * sigmoid(b)


def gumbel_softmax(logits, tau: float = 1.0, hard: bool = False, eps: float = 1e-10, dim: int = -1):
    """A sample from the Gumbel-softmax distribution; ``hard`` gives one-hot values with the soft
    sample's gradient (straight-through)."""
    u = _random.rng().random(logits.shape)
    gumbels = _const(-np.log(-np.log(u + eps) + eps) if eps else -np.log(-np.log(u)), logits.dtype)
    y = softmax((logits + gumbels) / tau, dim)
    if not hard:
        return y
    idx = y._data.argmax(dim)
    onehot = np.zeros(y.shape, y.dtype)
    np.put_along_axis(onehot, np.expand_dims(idx, dim), 1.0, dim)
    return _const(onehot) - y.detach() + y


# ---------------------------------------------------------------- linear and attention
_GEMM_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


@cast_inputs(LOWER)
def linear(input, weight, bias=None):
    """``input @ weight.T + bias``; weight has shape (out_features, in_features)."""
    x, w = input._data, weight._data
    if (x.__class__ is np.ndarray and w.__class__ is np.ndarray and w.ndim == 2 and x.ndim
            and x.shape[-1] == w.shape[1] and x.size and w.size and x.dtype is w.dtype and x.dtype in _GEMM_DTYPES
            and (bias is None or isinstance(bias, Tensor) and bias._data.dtype is x.dtype
                 and bias._data.shape == w.shape[:1])):
        return _apply(_linear, input, weight) if bias is None else _apply(_linear, input, weight, bias)  # one node
    return _linear_composite(input, weight, bias)


@round_once
def _linear_composite(input, weight, bias=None):
    """linear's other cases (16-bit, empty, batched weights) and its errors, in tapegrad ops."""
    if input._data.ndim == 0 or weight._data.ndim == 0:
        raise RuntimeError(f"linear: both arguments need at least 1 dimension, got input of shape {_shape(input)} "
                           f"and weight of shape {_shape(weight)}")
    if input._data.shape[-1] != weight._data.shape[-1]:
        raise RuntimeError(f"linear: input has {input.shape[-1]} features in its last dim (shape "
                           f"{_shape(input)}) but weight expects {weight.shape[-1]} (weight shape {_shape(weight)})")
    if bias is not None and input.dtype != weight.dtype:  # without a bias, matmul's own check words it
        raise RuntimeError(f"mat1 and mat2 must have the same dtype, but got {_scalar_name(input)} and "
                           f"{_scalar_name(weight)}")
    if bias is not None and isinstance(bias, Tensor) and bias.dtype != weight.dtype:
        raise RuntimeError(f"self and mat2 must have the same dtype, but got {_scalar_name(bias)} and "
                           f"{_scalar_name(weight)}")
    if input.ndim > 2 and weight.ndim == 2:
        # The leading dims fold into the rows of one GEMM, as PyTorch does: a batched product
        # would pack the weight once per leading index, and its weight gradient would be a
        # stack of (in, out) products summed afterwards (35 MB for an LSTM decoder's step).
        lead = tuple(input.shape[:-1])
        rows = int(np.prod(lead))  # not -1: no features (in_features 0) leaves -1 undetermined
        out = (input.reshape(rows, input.shape[-1]) @ weight.t()).reshape(*lead, weight.shape[0])
    else:
        out = input @ weight.t()
    return out if bias is None else out + bias


def bilinear(input1, input2, weight, bias=None):
    """``y_k = x1^T W_k x2 + b_k`` with weight (out, in1, in2)."""
    if not input1.dtype == input2.dtype == weight.dtype:
        raise RuntimeError(f"All tensors must have the same dtype, got input1: {_cpp_name(input1)}, input2: "
                           f"{_cpp_name(input2)}, weight: {_cpp_name(weight)}")
    y = _ops.einsum("...i,kij,...j->...k", input1, weight, input2)
    return y if bias is None else y + bias


@cast_inputs(LOWER)
def scaled_dot_product_attention(query, key, value, attn_mask=None, dropout_p: float = 0.0, is_causal: bool = False,
                                 scale=None, enable_gqa: bool = False):
    """``softmax(q k^T * scale + mask) v`` over the last two dims; a bool ``attn_mask`` marks the
    positions that may be attended to, a float one is added to the scores.

    float32/float64 without dropout run a blocked kernel (``ops/attention.py``) that never holds
    the whole (L, S) score matrix, forward or backward; a query row that may attend to no key
    gives zeros (and no gradient), as PyTorch's safe softmax does.

    >>> q = k = v = tapegrad.randn(2, 4, 16, 8)
    >>> F.scaled_dot_product_attention(q, k, v, is_causal=True).shape
    (2, 4, 16, 8)
    """
    L, S_ = query.shape[-2], key.shape[-2]
    scale = 1.0 / float(np.sqrt(query.shape[-1])) if scale is None else scale
    if enable_gqa and key.ndim >= 3 and key.shape[-3] != query.shape[-3]:
        rep = query.shape[-3] // key.shape[-3]
        key = _ops.repeat_interleave(key, rep, -3)
        value = _ops.repeat_interleave(value, rep, -3)
    if is_causal and attn_mask is not None:
        raise RuntimeError("scaled_dot_product_attention: is_causal and attn_mask cannot both be given")
    if dropout_p == 0.0 and _attention.fused(query, key, value, attn_mask):
        return _attention.sdpa(query, key, value, attn_mask, is_causal, scale)
    scores = (query @ key.transpose(-2, -1)) * scale
    if is_causal:
        causal = np.tril(np.ones((L, S_), dtype=bool))
        scores = scores.masked_fill(_const(~causal), float("-inf"))
    if attn_mask is not None:
        if attn_mask.dtype == np.bool_:
            scores = scores.masked_fill(~attn_mask, float("-inf"))
        else:
            scores = scores + attn_mask
    attn = _attention.safe_softmax(scores)
    if dropout_p > 0.0:
        attn = dropout(attn, dropout_p, True)
    return attn @ value


# ---------------------------------------------------------------- dropout
def dropout(input, p: float = 0.5, training: bool = True, inplace: bool = False):
    """Zero each element with probability ``p`` and scale the rest by ``1/(1-p)``; the identity
    when not training. Draws from tapegrad's global generator (``tapegrad.manual_seed``)."""
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
    if not training or p == 0.0:
        return input
    if p == 1.0:
        return input * _const(np.zeros((), input.dtype))
    if input._data.dtype in (np.float32, np.float64) and input._data.size:
        # one C++ pass (output and mask) from a counter-based generator keyed by one draw of ours
        seed = int(_random.rng().integers(0, 2**63))
        return _apply(_dropout, input, p=float(p), seed=seed)
    keep = _random.rng().random(input.shape, dtype=np.float32) >= p
    return input * _const(keep.astype(input.dtype) * np.asarray(1.0 / (1.0 - p), input.dtype))


def _feature_dropout(input, p, training):
    """PyTorch's ``feature_dropout``: one draw per (N, C) pair, broadcast over the remaining dims
    (a 2-D input thus drops single elements)."""
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
    if not training or p == 0.0 or input._data.size == 0:
        return input
    if p == 1.0:  # PyTorch checks no dims on this path
        return input * _const(np.zeros((), input.dtype))
    if input.ndim < 2:
        raise RuntimeError(f"Feature dropout requires at least 2 dimensions in the input (got shape {_shape(input)})")
    mask_shape = input.shape[:2] + (1,) * (input.ndim - 2)
    keep = _random.rng().random(mask_shape, dtype=np.float32) >= p
    return input * _const(keep.astype(input.dtype) * np.asarray(1.0 / (1.0 - p), input.dtype))


def _unbatched_feature_dropout(input, p, training):
    return _feature_dropout(input.unsqueeze(0), p, training).squeeze(0)


def _warn_feature_dims(input, n, opname):
    if input.ndim not in (n + 1, n + 2):
        warnings.warn(f"{opname}: Received a {input.ndim}-D input to {opname}, which is deprecated and will result in "
                      f"an error in a future release. To retain the behavior and silence this warning, please use "
                      f"dropout instead. Note that {opname} exists to provide channel-wise dropout on inputs with {n} "
                      f"spatial dimensions, a channel dimension, and an optional batch dimension (i.e. {n + 1}D or "
                      f"{n + 2}D inputs).", stacklevel=3)


def dropout1d(input, p: float = 0.5, training: bool = True, inplace: bool = False):
    """Zero whole channels of (N, C, L), or of an unbatched (C, L), with probability ``p``."""
    if input.ndim not in (2, 3):
        raise RuntimeError(f"dropout1d: Expected 2D or 3D input, but received a {input.ndim}D input. Note that "
                           f"dropout1d exists to provide channel-wise dropout on inputs with 1 spatial dimension, a "
                           f"channel dimension, and an optional batch dimension (i.e. 2D or 3D inputs).")
    if input.ndim == 2:
        return _unbatched_feature_dropout(input, p, training)
    return _feature_dropout(input, p, training)


def dropout2d(input, p: float = 0.5, training: bool = True, inplace: bool = False):
    """Zero whole channels of (N, C, H, W) with probability ``p``.

    A 3-D input is read as (N, C, L), as PyTorch still does (it warns that this will change to
    an unbatched (C, H, W)); other dims warn and get PyTorch's per-(dim 0, dim 1) draw.
    """
    _warn_feature_dims(input, 2, "dropout2d")
    if input.ndim == 3:
        warnings.warn("dropout2d: Received a 3D input to dropout2d and assuming that channel-wise 1D dropout "
                      "behavior is desired - input is interpreted as shape (N, C, L), where C is the channel dim. "
                      "This behavior will change in a future release to interpret the input as one without a "
                      "batch dimension, i.e. shape (C, H, W). To maintain the 1D channel-wise dropout behavior, "
                      "please switch to using dropout1d instead.", stacklevel=2)
    return _feature_dropout(input, p, training)


def dropout3d(input, p: float = 0.5, training: bool = True, inplace: bool = False):
    """Zero whole channels of (N, C, D, H, W), or of an unbatched (C, D, H, W), with probability ``p``."""
    _warn_feature_dims(input, 3, "dropout3d")
    if input.ndim == 5:
        return _feature_dropout(input, p, training)
    return _unbatched_feature_dropout(input, p, training)


# ---------------------------------------------------------------- embeddings
def embedding(input, weight, padding_idx=None, max_norm=None, norm_type: float = 2.0, scale_grad_by_freq=False,
              sparse=False):
    """Rows of ``weight`` picked by the integer tensor ``input``; the row at ``padding_idx``
    gets no gradient, and with ``scale_grad_by_freq`` each row's gradient is divided by how often
    its index occurs in ``input``. The backward is one index-add kernel.

    >>> F.embedding(tapegrad.tensor([[0, 2]]), tapegrad.randn(3, 4)).shape
    (1, 2, 4)
    """
    idx = input._data if isinstance(input, Tensor) else np.asarray(input)
    if idx.dtype.kind not in "iu":
        raise RuntimeError(f"embedding: indices must be an integer tensor, got {idx.dtype}")
    if weight.ndim != 2:
        raise RuntimeError(f"embedding: 'weight' must be 2-D, got shape {_shape(weight)}")
    n = weight.shape[0]
    if idx.size and (idx.min() < 0 or idx.max() >= n):
        bad = idx[(idx < 0) | (idx >= n)].flat[0]
        raise IndexError(f"embedding: index {int(bad)} is out of range for an embedding of {n} rows")
    if max_norm is not None:
        _embedding_renorm_(weight, idx, max_norm, norm_type)
    pad = None if padding_idx is None else padding_idx + n if padding_idx < 0 else padding_idx
    return _apply(_embedding, weight, idx=np.asarray(idx, dtype=np.int64, order="C"), padding_idx=pad,
                  scale_grad_by_freq=bool(scale_grad_by_freq))


def embedding_bag(input, weight, offsets=None, max_norm=None, norm_type: float = 2, scale_grad_by_freq=False,
                  mode: str = "mean", sparse=False, per_sample_weights=None, include_last_offset=False,
                  padding_idx=None):
    """Sums, means or maxima of bags of embedding rows, without building the (bags, size, dim)
    intermediate: a 2-D ``input`` is one bag per row; a 1-D ``input`` is cut into bags at
    ``offsets``. Entries equal to ``padding_idx`` are left out; an empty bag gives zeros.

    >>> F.embedding_bag(tapegrad.tensor([1, 2, 4, 5, 4, 3]), w, tapegrad.tensor([0, 3]), mode="sum")  # 2 bags
    """
    if mode not in ("sum", "mean", "max"):
        raise ValueError(f"embedding_bag: mode has to be one of sum, mean or max, got {mode!r}")
    if per_sample_weights is not None and mode != "sum":
        raise NotImplementedError(f"embedding_bag: per_sample_weights was not None. per_sample_weights is only "
                                  f"supported for mode='sum' (got mode='{mode}'). Please open a feature request on "
                                  f"GitHub.")
    idx = input._data if isinstance(input, Tensor) else np.asarray(input)
    if input.ndim == 2:
        if offsets is not None:
            raise ValueError(f"embedding_bag: if input is 2D, then offsets has to be None, as input is treated is a "
                             f"mini-batch of fixed length sequences. However, found offsets of type "
                             f"{type(offsets).__name__}")
        bags, size = idx.shape
        bag_of = np.repeat(np.arange(bags), size)
        idx = idx.reshape(-1)
        if per_sample_weights is not None:
            per_sample_weights = per_sample_weights.reshape(-1)
    elif input.ndim == 1:
        if offsets is None:
            raise ValueError("embedding_bag: offsets has to be a 1D Tensor but got None")
        off = (offsets._data if isinstance(offsets, Tensor) else np.asarray(offsets)).astype(np.int64)
        if off.ndim != 1:
            raise ValueError(f"embedding_bag: offsets has to be a 1D Tensor, got shape {off.shape}")
        if off.size and (off[0] != 0 or np.any(np.diff(off) < 0) or off[-1] > idx.size):
            raise RuntimeError(f"embedding_bag: offsets must start at 0, be non-decreasing and not exceed the "
                               f"input's length {idx.size}, got {off.tolist()}")
        bounds = np.append(off, idx.size) if not include_last_offset else off
        bags = len(bounds) - 1
        bag_of = np.repeat(np.arange(bags), np.diff(bounds))
        idx = idx[:bounds[-1]]
    else:
        raise ValueError(f"embedding_bag: input has to be 1D or 2D Tensor, but got Tensor of dimension {input.ndim}")
    keep = np.ones(idx.shape, bool)
    if padding_idx is not None:
        n = weight.shape[0]
        keep = idx != (padding_idx + n if padding_idx < 0 else padding_idx)
    rows = embedding(Tensor._wrap(idx[keep]), weight, None, max_norm, norm_type)
    if per_sample_weights is not None:
        rows = rows * per_sample_weights[_const(np.nonzero(keep)[0])].unsqueeze(-1)
    bag_ix = _const(bag_of[:idx.size][keep].astype(np.int64))
    zeros = Tensor._wrap(np.zeros((bags, weight.shape[1]), dtype=weight._data.dtype))
    if mode == "max":
        index = _const(np.broadcast_to(bag_ix._data[:, None], tuple(rows.shape)).copy())
        return zeros.scatter_reduce(0, index, rows, "amax", include_self=False)
    out = _ops.index_add(zeros, 0, bag_ix, rows)
    if mode == "mean":
        count = np.bincount(bag_ix._data, minlength=bags).astype(weight._data.dtype)
        out = out / _const(np.maximum(count, 1)[:, None])
    return out


def _embedding_renorm_(weight, idx, max_norm, norm_type):
    rows = np.unique(idx)
    w = weight._data
    norms = np.linalg.norm(w[rows], ord=norm_type, axis=1)
    scale = np.where(norms > max_norm, max_norm / (norms + 1e-7), 1.0).astype(w.dtype)
    w[rows] *= scale[:, None]
    weight._bump_version()


# ---------------------------------------------------------------- convolution and pooling (2-d: ops/conv.py)
@cast_inputs(LOWER)
def conv1d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """1-D cross-correlation over (N, C, L): conv2d on a unit-height image. weight (out, in/groups, k)."""
    if input.ndim not in (2, 3) or weight.ndim != 3:
        raise RuntimeError(f"conv1d: expected a 2-D (C, L) or 3-D (N, C, L) input and a 3-D weight, got shapes "
                           f"{_shape(input)} and {_shape(weight)}")
    one = lambda v: int(v[0]) if isinstance(v, (tuple, list)) else v  # noqa: E731
    stride, dilation = one(stride), one(dilation)
    if isinstance(padding, str):
        if padding not in ("same", "valid"):
            raise ValueError(f"conv1d: Invalid padding string {padding!r}, should be one of ['valid', 'same']")
        total = dilation * (weight.shape[-1] - 1) if padding == "same" else 0
        if total % 2:
            input = _ops.pad(input, (total // 2, total - total // 2))
        padding = total // 2 if not total % 2 else 0
    try:
        y = conv2d(input.unsqueeze(-2), weight.unsqueeze(-2), bias, (1, stride), (0, one(padding)), (1, dilation),
                   groups)
    except RuntimeError as e:  # conv2d's checks saw the unit-height image: name conv1d and the real shapes
        raise RuntimeError(f"conv1d (input {_shape(input)}, weight {_shape(weight)}): "
                           f"{str(e).replace('conv2d: ', '', 1)}") from None
    return y.squeeze(-2)


def _adaptive_index(n, m):
    """(m, k) input indices of PyTorch's adaptive windows, short windows padded by repeating their end."""
    starts = [(i * n) // m for i in range(m)]
    ends = [-((-(i + 1) * n) // m) for i in range(m)]
    k = max(e - s for s, e in zip(starts, ends))
    return np.array([[min(s + j, e - 1) for j in range(k)] for s, e in zip(starts, ends)], dtype=np.int64)


def _adaptive_max_pool(nd, input, output_size, return_indices):
    """Max pooling of (N, C, *spatial) or (C, *spatial) to ``output_size`` over PyTorch's adaptive
    windows: each dim indexed by its (out, k) window matrix, then the max over the k axes."""
    op = f"adaptive_max_pool{nd}d"
    x = input
    if x.ndim < nd + 1:  # PyTorch's Python-side check: ValueError
        raise ValueError(f"{op}: Input dimension should be at least {nd + 1}, got shape {_shape(x)}")
    if x.ndim > nd + 2:
        raise RuntimeError(f"{op}: expected {nd + 1}-D or {nd + 2}-D input, got shape {_shape(x)}")
    unbatched = x.ndim == nd + 1
    if unbatched:
        x = x.unsqueeze(0)
    spatial = _shape(x)[2:]
    size = tuple(output_size) if isinstance(output_size, (tuple, list)) else (output_size,) * nd
    if len(size) != nd:
        raise RuntimeError(f"{op}: output_size must be an int or a tuple of {nd}, got {output_size!r}")
    size = tuple(d if s is None else int(s) for s, d in zip(size, spatial))
    if min(size) < 1:
        raise RuntimeError(f"{op}: output_size must be positive, got {size}")
    if nd == 2 and x.dtype in (np.float32, np.float64) and min(spatial) > 0:
        y, ind = _adaptive_max_pool2d_native(x, size, return_indices)  # csrc/kernels/resample.cpp
    else:
        y, ind = _adaptive_max_pool_indexed(x, size, spatial, nd)
    if return_indices:
        return (y.squeeze(0), ind.squeeze(0)) if unbatched else (y, ind)
    return y.squeeze(0) if unbatched else y


def _adaptive_max_pool_indexed(x, size, spatial, nd):
    """(values, indices) of an adaptive max pool through window index matrices and argmax."""
    idx = [_adaptive_index(n, m) for n, m in zip(spatial, size)]
    win = x
    for i, ix in enumerate(idx):  # dim 2 + 2i becomes (out_i, k_i); repeats only re-read a window's end
        win = win[(slice(None),) * (2 + 2 * i) + (_const(ix),)]
    k_axes = tuple(3 + 2 * i for i in range(nd))
    n, c = win.shape[:2]
    order = (0, 1) + tuple(2 + 2 * i for i in range(nd)) + k_axes  # (N, C, *out, *k)
    best = win._data.transpose(order).reshape(n, c, *size, -1).argmax(-1)
    ks = [ix.shape[1] for ix in idx]
    flat = np.zeros(best.shape, np.int64)
    rem = best
    for i in reversed(range(nd)):  # the window tap of each max, last dim fastest
        tap, rem = rem % ks[i], rem // ks[i]
        out_i = np.arange(size[i]).reshape((-1,) + (1,) * (nd - 1 - i))
        flat += idx[i][out_i, tap] * int(np.prod(spatial[i + 1:]))
    ind = _const(flat, np.int64)
    # the value at the first maximum of each window, so that (as in PyTorch) the whole gradient goes
    # to that one element; an amax over the window split it among tied elements (the zeros after a ReLU)
    return _ops.gather(x.flatten(2), 2, ind.flatten(2)).reshape(_shape(ind)), ind


def adaptive_max_pool2d(input, output_size, return_indices: bool = False):
    """Max pooling to a fixed ``output_size`` over PyTorch's adaptive windows (int or pair, None keeps a dim)."""
    return _adaptive_max_pool(2, input, output_size, return_indices)


def adaptive_max_pool3d(input, output_size, return_indices: bool = False):
    """Max pooling of (N, C, D, H, W) to a fixed ``output_size`` over PyTorch's adaptive windows (int or
    triple, None keeps a dim); with ``return_indices`` also the flat index of each max in its D*H*W volume."""
    return _adaptive_max_pool(3, input, output_size, return_indices)


def _one_size(v, name):
    """An adaptive 1-d pool's output_size: an int or a 1-sequence (else RuntimeError, as PyTorch)."""
    if isinstance(v, (tuple, list)) and len(v) != 1:
        raise RuntimeError(f"{name}() argument 'output_size' should contain one int (got {len(v)})")
    return _one(v, name)


def _one(v, name):
    if isinstance(v, (tuple, list)):
        if len(v) != 1:
            raise ValueError(f"{name}: expected a single value, got {v}")
        return int(v[0])
    return v


def _as_2d(input, name):
    if input.ndim not in (2, 3):
        raise RuntimeError(f"{name}: expected a 2-D (C, L) or 3-D (N, C, L) input, got shape {_shape(input)}")
    return input.unsqueeze(-2)


def max_pool1d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode: bool = False,
               return_indices: bool = False):
    """1-D max pooling over (N, C, L): max_pool2d on a unit-height image."""
    k = _one(kernel_size, "max_pool1d")
    s = k if stride is None or (isinstance(stride, (tuple, list)) and not stride) else _one(stride, "max_pool1d")
    out = max_pool2d(_as_2d(input, "max_pool1d"), (1, k), (1, s), (0, _one(padding, "max_pool1d")),
                     (1, _one(dilation, "max_pool1d")), ceil_mode, return_indices)
    if return_indices:
        return out[0].squeeze(-2), out[1].squeeze(-2)
    return out.squeeze(-2)


def avg_pool1d(input, kernel_size, stride=None, padding=0, ceil_mode: bool = False, count_include_pad: bool = True):
    """Average over windows of ``kernel_size`` along the last dim of ``(N, C, L)`` (or ``(C, L)``)."""
    k = _one(kernel_size, "avg_pool1d")
    s = k if stride is None or (isinstance(stride, (tuple, list)) and not stride) else _one(stride, "avg_pool1d")
    return avg_pool2d(_as_2d(input, "avg_pool1d"), (1, k), (1, s), (0, _one(padding, "avg_pool1d")), ceil_mode,
                      count_include_pad).squeeze(-2)


def adaptive_avg_pool1d(input, output_size):
    """Average pooling of ``(N, C, L)`` to length ``output_size``, windows chosen as PyTorch does."""
    return adaptive_avg_pool2d(_as_2d(input, "adaptive_avg_pool1d"), (1, _one_size(output_size, "adaptive_avg_pool1d"))
                               ).squeeze(-2)


def adaptive_max_pool1d(input, output_size, return_indices: bool = False):
    """Max pooling of ``(N, C, L)`` to length ``output_size`` (with the indices if ``return_indices``)."""
    out = adaptive_max_pool2d(_as_2d(input, "adaptive_max_pool1d"), (1, _one_size(output_size, "adaptive_max_pool1d")),
                              return_indices)
    if return_indices:
        return out[0].squeeze(-2), out[1].squeeze(-2)
    return out.squeeze(-2)


@cast_inputs(LOWER)
def conv_transpose1d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
    """1-D transposed convolution: conv_transpose2d on a unit-height image. weight (in, out/groups, k)."""
    if weight.ndim != 3:
        raise RuntimeError(f"conv_transpose1d: expected a 3-D weight, got shape {_shape(weight)}")
    y = conv_transpose2d(_as_2d(input, "conv_transpose1d"), weight.unsqueeze(-2), bias,
                         (1, _one(stride, "conv_transpose1d")), (0, _one(padding, "conv_transpose1d")),
                         (0, _one(output_padding, "conv_transpose1d")), groups, (1, _one(dilation, "conv_transpose1d")))
    return y.squeeze(-2)


def unfold(input, kernel_size, dilation=1, padding=0, stride=1):
    """im2col: (N, C, H, W) -> (N, C kh kw, L), the sliding blocks as columns."""
    pair = lambda v: tuple(v) if isinstance(v, (tuple, list)) else (v, v)  # noqa: E731
    (kh, kw), (dh, dw), (ph, pw), (sh, sw) = pair(kernel_size), pair(dilation), pair(padding), pair(stride)
    if input.ndim not in (3, 4):
        raise RuntimeError(f"unfold: expected 3-D or 4-D input, got shape {_shape(input)}")
    x = input if input.ndim == 4 else input.unsqueeze(0)
    x = _ops.pad(x, (pw, pw, ph, ph))
    n, c, h, w = x.shape
    oh, ow = (h - dh * (kh - 1) - 1) // sh + 1, (w - dw * (kw - 1) - 1) // sw + 1
    if oh <= 0 or ow <= 0:
        raise RuntimeError(f"unfold: the kernel {(kh, kw)} with dilation {(dh, dw)} does not fit the padded input "
                           f"{(h, w)}")
    rows = (np.arange(kh) * dh)[:, None] + (np.arange(oh) * sh)[None, :]  # (kh, oh)
    cols = (np.arange(kw) * dw)[:, None] + (np.arange(ow) * sw)[None, :]  # (kw, ow)
    blocks = x[:, :, _const(rows)][..., _const(cols)]  # (n, c, kh, oh, kw, ow)
    out = blocks.permute(0, 1, 2, 4, 3, 5).reshape(n, c * kh * kw, oh * ow)
    return out if input.ndim == 4 else out.squeeze(0)


def fold(input, output_size, kernel_size, dilation=1, padding=0, stride=1):
    """col2im, the adjoint of ``unfold``: (N, C kh kw, L) -> (N, C, H, W), overlapping blocks summed."""
    pair = lambda v: tuple(v) if isinstance(v, (tuple, list)) else (v, v)  # noqa: E731
    (H, W), (kh, kw), (dh, dw), (ph, pw), (sh, sw) = (pair(output_size), pair(kernel_size), pair(dilation),
                                                      pair(padding), pair(stride))
    x = input if input.ndim == 3 else input.unsqueeze(0)
    n, ckk, L = x.shape
    c = ckk // (kh * kw)
    hp, wp = H + 2 * ph, W + 2 * pw
    oh, ow = (hp - dh * (kh - 1) - 1) // sh + 1, (wp - dw * (kw - 1) - 1) // sw + 1
    if c * kh * kw != ckk or oh * ow != L:
        raise RuntimeError(f"fold: input of shape {_shape(input)} does not match output_size {(H, W)} and kernel "
                           f"{(kh, kw)} ({oh * ow} blocks of {kh * kw} expected)")
    rows = (np.arange(kh) * dh)[:, None, None, None] + (np.arange(oh) * sh)[None, None, :, None]
    cols = (np.arange(kw) * dw)[None, :, None, None] + (np.arange(ow) * sw)[None, None, None, :]
    flat_idx = (rows * wp + cols).reshape(-1)  # (kh, kw, oh, ow) positions in the padded image
    vals = x.reshape(n, c, kh * kw * oh * ow)
    out = _const(np.zeros((n, c, hp * wp), input.dtype)).index_add(2, _const(flat_idx), vals)
    out = out.reshape(n, c, hp, wp)[:, :, ph:ph + H, pw:pw + W]
    return out if input.ndim == 3 else out.squeeze(0)


# ---------------------------------------------------------------- normalization
def normalize(input, p: float = 2.0, dim: int = 1, eps: float = 1e-12):
    """``input / max(||input||_p, eps)`` along ``dim``."""
    n = _ops.norm(input, p, dim, keepdim=True)
    return input / _ops.clamp(n, min=eps)


def _mixed_params(op, input, **params):
    """PyTorch's CPU rule for a normalization's parameters (aten's mixed_type.h): of the input's
    dtype, or float32 with a float16 / bfloat16 input -- "mixed", computed in float32 and returned
    in the input's dtype (True). Any other mix raises, where promotion would hide it."""
    given = [(k, v) for k, v in params.items() if v is not None]
    if all(v.dtype == input.dtype for _, v in given):
        return False
    names = ", ".join(f"{k} {_dtype.name(v.dtype)}" for k, v in given)
    if any(v.dtype != np.float32 for _, v in given):
        raise RuntimeError(f"{op}: mixed dtype (CPU): expect parameter to have scalar type of Float (input "
                           f"{_dtype.name(input.dtype)}, {names})")
    if not _dtype.is_16bit_float(input.dtype):
        raise RuntimeError(f"{op}: mixed dtype (CPU): all inputs must share same datatype (input "
                           f"{_dtype.name(input.dtype)}, {names})")
    return True


def batch_norm(input, running_mean, running_var, weight=None, bias=None, training: bool = False,
               momentum: float = 0.1, eps: float = 1e-5):
    """Normalise over every dim but the channel dim 1, with batch statistics when training
    (updating the running ones in place) and the running statistics otherwise."""
    if input.ndim < 2:
        raise ValueError(f"batch_norm: expected at least 2D input (N, C, ...), got shape {_shape(input)}")
    if _mixed_params("batch_norm", input, weight=weight, bias=bias, running_mean=running_mean,
                     running_var=running_var):
        return batch_norm(input.float(), running_mean, running_var, weight, bias, training, momentum,
                          eps).to(input.dtype)
    c = input.shape[1]
    for what, t in (("running_mean", running_mean), ("running_var", running_var), ("weight", weight), ("bias", bias)):
        if t is not None and t.numel() != c:
            raise RuntimeError(f"batch_norm: {what} should contain {c} elements (the channels of input "
                               f"{_shape(input)}) not {t.numel()}")
    dims = (0,) + tuple(range(2, input.ndim))
    bshape = (1, c) + (1,) * (input.ndim - 2)
    if training and input._data.size // max(c, 1) <= 1:
        raise ValueError(f"Expected more than 1 value per channel when training, got input size "
                         f"{list(input.shape)}")
    stats = (running_mean, running_var) if running_mean is not None and running_var is not None else ()
    if (input._data.size and momentum is not None and (training or stats)
            and _fusable(input, c, weight, bias, *stats)):
        params = [p for p in (weight, bias) if p is not None]
        out = _apply(_norm.batch_norm, input, *params, training=bool(training), momentum=float(momentum),
                     eps=float(eps), running_mean=stats[0]._data if stats else None,
                     running_var=stats[1]._data if stats else None, affine=(weight is not None, bias is not None))
        if training and stats:  # updated in place by the kernel
            running_mean._bump_version()
            running_var._bump_version()
        return out
    if training:
        n = input._data.size // c
        mean = input.mean(dims, keepdim=True)
        xc = input - mean
        var = (xc * xc).mean(dims, keepdim=True)
        if running_mean is not None:
            m = np.asarray(momentum, running_mean.dtype)
            rm, rv = running_mean._data, running_var._data
            rm *= 1 - m
            rm += m * mean._data.reshape(c).astype(rm.dtype)
            rv *= 1 - m
            rv += m * var._data.reshape(c).astype(rv.dtype) * (n / (n - 1))
            running_mean._bump_version()
            running_var._bump_version()
    else:
        if running_mean is None or running_var is None:
            raise ValueError("batch_norm: running_mean and running_var are required when training=False")
        xc = input - running_mean.reshape(bshape).to(input.dtype)
        var = running_var.reshape(bshape).to(input.dtype)
    out = xc * _ops.rsqrt(var + eps)
    if weight is not None:
        out = out * weight.reshape(bshape)
    if bias is not None:
        out = out + bias.reshape(bshape)
    return out


def _fusable(input, c, weight=None, bias=None, *stats):
    """Whether the fused batch_norm / group_norm kernels take these operands: float32/float64 of one
    dtype, the per-channel ones of shape (C,); running statistics (updated in place by the
    kernel) also contiguous and not differentiated (the composite path differentiates them)."""
    vectors = [v for v in (weight, bias, *stats) if v is not None]
    return (input.ndim >= 2 and _same_float(input, *vectors) and all(_shape(v) == (c,) for v in vectors)
            and all(v._data.flags.c_contiguous and not v.requires_grad for v in stats))


def layer_norm(input, normalized_shape, weight=None, bias=None, eps: float = 1e-5):
    """Normalise over the trailing ``normalized_shape`` dims."""
    ns = (normalized_shape,) if isinstance(normalized_shape, numbers.Integral) else tuple(normalized_shape)
    if not ns:
        raise RuntimeError("layer_norm: Expected normalized_shape to be at least 1-dimensional, i.e., containing at "
                           "least one element, but got normalized_shape = []")
    if _shape(input)[input.ndim - len(ns):] != ns or len(ns) > input.ndim:
        raise RuntimeError(f"layer_norm: given normalized_shape={list(ns)}, expected input with shape "
                           f"[*, {', '.join(map(str, ns))}], but got input of size {list(input.shape)}")
    if _mixed_params("layer_norm", input, weight=weight, bias=bias):
        return layer_norm(input.float(), ns, weight, bias, eps).to(input.dtype)
    params = [p for p in (weight, bias) if p is not None]
    if (bias is None or weight is not None) and input._data.size and all(
            _shape(p) == ns for p in params) and _same_float(input, *params):
        return _apply(_layer_norm, input, *params, nd=len(ns), eps=float(eps))  # one fused kernel
    dims = tuple(range(input.ndim - len(ns), input.ndim))
    mean = input.mean(dims, keepdim=True)
    xc = input - mean
    var = (xc * xc).mean(dims, keepdim=True)
    out = xc * _ops.rsqrt(var + eps)
    if weight is not None:
        out = out * weight
    if bias is not None:
        out = out + bias
    return out


def group_norm(input, num_groups: int, weight=None, bias=None, eps: float = 1e-5):
    """Normalise ``(N, C, *)`` over groups of ``C // num_groups`` channels (and the spatial dims),
    then scale by ``weight`` and shift by ``bias`` per channel."""
    if input.ndim < 2:
        raise RuntimeError(f"group_norm: Expected at least 2 dimensions for input tensor but received {input.ndim} "
                           f"(shape {tuple(input.shape)})")
    n, c = input.shape[:2]
    if c % num_groups:
        raise RuntimeError(f"group_norm: num_channels {c} must be divisible by num_groups {num_groups}")
    if _mixed_params("group_norm", input, weight=weight, bias=bias):
        return group_norm(input.float(), num_groups, weight, bias, eps).to(input.dtype)
    if n * c // num_groups * math.prod(input.shape[2:]) == 1:  # PyTorch's _verify_batch_size
        raise ValueError(f"group_norm: Expected more than 1 value per channel when training, got input size "
                         f"{list(input.shape)}")
    if input._data.size and _fusable(input, c, weight, bias):
        params = [p for p in (weight, bias) if p is not None]
        return _apply(_norm.group_norm, input, *params, num_groups=int(num_groups), eps=float(eps),
                      affine=(weight is not None, bias is not None))
    x = input.reshape(n, num_groups, c // num_groups * math.prod(input.shape[2:]))  # (-1 fails when n is 0)
    mean = x.mean(2, keepdim=True)
    xc = x - mean
    out = (xc * _ops.rsqrt((xc * xc).mean(2, keepdim=True) + eps)).reshape(input.shape)
    bshape = (1, c) + (1,) * (input.ndim - 2)
    if weight is not None:
        out = out * weight.reshape(bshape)
    if bias is not None:
        out = out + bias.reshape(bshape)
    return out


def rms_norm(input, normalized_shape, weight=None, eps=None):
    """``x / sqrt(mean(x^2) + eps)`` over the trailing dims (eps: the machine epsilon of the dtype it
    computes in by default, float32 for a 16-bit input)."""
    ns = (normalized_shape,) if isinstance(normalized_shape, numbers.Integral) else tuple(normalized_shape)
    if not ns:
        raise RuntimeError("layer_norm: Expected normalized_shape to be at least 1-dimensional, i.e., containing at "
                           "least one element, but got normalized_shape = []")
    if _shape(input)[input.ndim - len(ns):] != ns or len(ns) > input.ndim:
        raise RuntimeError(f"rms_norm: given normalized_shape={list(ns)}, expected input with shape "
                           f"[*, {', '.join(map(str, ns))}], but got input of size {list(input.shape)}")
    dims = tuple(range(input.ndim - len(ns), input.ndim))
    x = input.float() if _dtype.is_16bit_float(input.dtype) else input  # float32 maths, as PyTorch's
    e = float(np.finfo(x.dtype).eps) if eps is None else eps  # of that float32 for a 16-bit input
    out = x * _ops.rsqrt((x * x).mean(dims, keepdim=True) + e)
    if weight is not None:
        out = out * weight  # PyTorch takes any float weight and answers in the input's dtype
    return out if out.dtype == input.dtype else out.to(input.dtype)


def instance_norm(input, running_mean=None, running_var=None, weight=None, bias=None, use_input_stats: bool = True,
                  momentum: float = 0.1, eps: float = 1e-5):
    """Normalise each (sample, channel) over its spatial dims."""
    if input.ndim < 3:
        raise ValueError(f"instance_norm: expected input of at least 3 dims (N, C, ...), got {_shape(input)}")
    if use_input_stats and int(np.prod(input.shape[2:])) == 1:  # PyTorch's _verify_spatial_size
        raise ValueError(f"instance_norm: Expected more than 1 spatial element when training, got input size "
                         f"{list(input.shape)}")
    if _mixed_params("instance_norm", input, weight=weight, bias=bias, running_mean=running_mean,
                     running_var=running_var):
        return instance_norm(input.float(), running_mean, running_var, weight, bias, use_input_stats, momentum,
                             eps).to(input.dtype)
    dims = tuple(range(2, input.ndim))
    cshape = (1, -1) + (1,) * (input.ndim - 2)
    c = input.shape[1]
    if use_input_stats and int(np.prod(input.shape[2:])) <= 1:  # the variance of one element: all zeros out
        raise ValueError(f"instance_norm: Expected more than 1 spatial element when training, got input size "
                         f"{list(input.shape)}")
    stats = (running_mean, running_var) if running_mean is not None and running_var is not None else ()
    if (use_input_stats and input._data.size and (momentum is not None or not stats)
            and _fusable(input, c, weight, bias, *stats)):
        params = [p for p in (weight, bias) if p is not None]
        out = _apply(_norm.group_norm, input, *params, num_groups=c, eps=float(eps),
                     affine=(weight is not None, bias is not None),
                     running_mean=stats[0]._data if stats else None, running_var=stats[1]._data if stats else None,
                     momentum=None if momentum is None else float(momentum))
        if stats:  # updated in place by the op
            running_mean._bump_version()
            running_var._bump_version()
        return out
    if use_input_stats:
        mean = input.mean(dims, keepdim=True)
        xc = input - mean
        var = (xc * xc).mean(dims, keepdim=True)
        if running_mean is not None:
            n = int(np.prod(input.shape[2:]))
            bm = mean.detach()._data.mean(axis=0).reshape(-1)
            bv = var.detach()._data.mean(axis=0).reshape(-1) * (n / max(n - 1, 1))
            running_mean._data[...] = (1 - momentum) * running_mean._data + momentum * bm
            running_var._data[...] = (1 - momentum) * running_var._data + momentum * bv
            running_mean._bump_version()
            running_var._bump_version()
        out = xc * _ops.rsqrt(var + eps)
    else:
        out = (input - running_mean.reshape(cshape)) * _ops.rsqrt(running_var.reshape(cshape) + eps)
    if weight is not None:
        out = out * weight.reshape(cshape)
    if bias is not None:
        out = out + bias.reshape(cshape)
    return out


def local_response_norm(input, size: int, alpha: float = 1e-4, beta: float = 0.75, k: float = 1.0):
    """Divide by ``(k + alpha / size * sum of squares over ``size`` neighbouring channels) ** beta``."""
    if input.ndim < 3:
        raise ValueError(f"local_response_norm: expected 3D or higher input, got {_shape(input)}")
    sq = (input * input).unsqueeze(1)
    pads = (0, 0) * (input.ndim - 2) + (size // 2, (size - 1) // 2)
    sq = _ops.pad(sq, pads)
    c = input.shape[1]
    div = sum(_ops.narrow(sq, 2, i, c) for i in range(size)).squeeze(1) / size
    return input / (div * alpha + k) ** beta


# ---------------------------------------------------------------- shape and resampling
def flatten(input, start_dim: int = 0, end_dim: int = -1):
    """Merge dims ``start_dim`` to ``end_dim`` into one (``tapegrad.flatten``)."""
    if hasattr(_ops, "flatten"):
        return _ops.flatten(input, start_dim, end_dim)
    nd = max(input.ndim, 1)
    s, e = start_dim % nd, end_dim % nd
    shape = _shape(input)
    return input.reshape(shape[:s] + (-1,) + shape[e + 1:]) if input.ndim else input.reshape(1)


def unflatten(input, dim: int, sizes):
    """Split dim ``dim`` into ``sizes`` (the reverse of ``flatten``).

    >>> F.unflatten(tapegrad.zeros(2, 12), 1, (3, 4)).shape
    (2, 3, 4)
    """
    return _ops.unflatten(input, dim, sizes)  # checks dim (``dim % ndim`` wrapped 5 to 1) and the sizes


def pad(input, pad, mode: str = "constant", value=None):
    """Pad the last ``len(pad) // 2`` dims: ``pad = (left, right, top, bottom, ...)``; modes
    'constant', 'reflect', 'replicate', 'circular'."""
    return _ops.pad(input, pad, mode=mode, value=value)


def _source_index(n_in, n_out, scale, mode, align_corners):
    """Source coordinates of each output position along one dim, PyTorch's conventions."""
    i = np.arange(n_out, dtype=np.float64)
    if n_in == n_out:  # PyTorch leaves a dim whose size does not change alone, whatever scale_factor says
        return i.astype(np.int64) if mode in ("nearest", "nearest-exact") else i
    if mode in ("nearest", "nearest-exact"):
        s = n_in / n_out if scale is None else 1.0 / scale
        src = np.floor((i + 0.5) * s) if mode == "nearest-exact" else np.floor(i * s)
        return np.minimum(src, n_in - 1).astype(np.int64)
    if align_corners:
        return i * ((n_in - 1) / (n_out - 1) if n_out > 1 else 0.0)
    s = n_in / n_out if scale is None else 1.0 / scale
    return np.maximum((i + 0.5) * s - 0.5, 0.0)


def _cubic_coeffs(t, a):
    """Keys' cubic-convolution weights of the 4 taps at offsets -1, 0, 1, 2 for fraction ``t``."""
    def near(x):
        return ((a + 2) * x - (a + 3)) * x * x + 1

    def far(x):
        return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a
    return np.stack([far(t + 1), near(t), near(1 - t), far(2 - t)], -1)


def _resample_matrix(n_in, n_out, scale_factor, align_corners, mode, antialias):
    """The (n_out, n_in) matrix of one dim's bicubic, or antialiased bilinear/bicubic, resampling,
    with PyTorch's source coordinates and (antialiased) its separable filters scaled to the
    downsampling factor."""
    if align_corners:
        scale = (n_in - 1) / (n_out - 1) if n_out > 1 else 0.0
    else:
        scale = 1.0 / scale_factor if scale_factor else n_in / n_out
    m = np.zeros((n_out, n_in))
    i = np.arange(n_out)
    if antialias:
        interp = 2 if mode == "bilinear" else 4
        support = interp * 0.5 * scale if scale >= 1.0 else interp * 0.5
        inv = 1.0 / scale if scale >= 1.0 else 1.0
        for o in range(n_out):
            center = scale * (o + 0.5)
            lo = max(int(center - support + 0.5), 0)
            hi = min(int(center + support + 0.5), n_in)
            x = np.abs((np.arange(lo, hi) - center + 0.5) * inv)
            if mode == "bilinear":
                w = np.maximum(1 - x, 0)
            else:  # PIL's a = -0.5 for the antialiasing filter, as PyTorch
                a = -0.5
                w = np.where(x < 1, ((a + 2) * x - (a + 3)) * x * x + 1,
                             np.where(x < 2, ((a * x - 5 * a) * x + 8 * a) * x - 4 * a, 0.0))
            total = w.sum()
            m[o, lo:hi] = w / total if total != 0 else w
        return m
    src = i * scale if align_corners else (i + 0.5) * scale - 0.5
    lo = np.floor(src)
    taps = np.clip(lo[:, None].astype(np.int64) + np.arange(-1, 3), 0, n_in - 1)
    np.add.at(m, (np.repeat(i, 4), taps.reshape(-1)), _cubic_coeffs(src - lo, -0.75).reshape(-1))
    return m


def _interpolate_separable(input, out, scales, mode, align_corners, antialias):
    """bicubic and antialiased modes (4-D input) as one resampling matrix per spatial dim."""
    if input.ndim != 4:
        raise NotImplementedError(f"interpolate: {mode!r}{' with antialias' if antialias else ''} needs a 4-D "
                                  f"input (N, C, H, W), got {_shape(input)}")
    _check_float(input, "interpolate")
    y = input
    for k, (n_in, n_out, s) in enumerate(zip(input.shape[2:], out, scales)):
        if n_in == n_out and not antialias:
            continue
        w = _const(_resample_matrix(n_in, n_out, s, align_corners, mode, antialias).astype(input.dtype))
        y = _ops.matmul(w, y) if k == 0 else _ops.matmul(y, w.mT)
    return y


def _interpolate_area(input, out):
    if input.ndim == 3:
        return adaptive_avg_pool1d(input, out)
    if input.ndim == 4:
        return adaptive_avg_pool2d(input, out)
    return adaptive_avg_pool3d(input, out)


def interpolate(input, size=None, scale_factor=None, mode: str = "nearest", align_corners=None,
                recompute_scale_factor=None, antialias: bool = False):
    """Resize the spatial dims of ``(N, C, *spatial)``: 'nearest', 'nearest-exact', the separable
    'linear'/'bilinear'/'bicubic'/'trilinear' (``align_corners`` as in PyTorch), or 'area'
    (adaptive average pooling); ``antialias=True`` (bilinear, bicubic) low-pass filters when
    downsampling, with PyTorch's (and PIL's) filters.

    >>> F.interpolate(tapegrad.ones(1, 1, 2, 2), scale_factor=2).shape
    (1, 1, 4, 4)
    """
    nsp = input.ndim - 2
    if nsp < 1:
        raise NotImplementedError(f"interpolate: expected an input of shape (N, C, *spatial) with 1 to 3 spatial "
                                  f"dims, got {_shape(input)}")  # (PyTorch's class)
    linear = {"linear": 1, "bilinear": 2, "trilinear": 3}
    if mode not in ("nearest", "nearest-exact", "bicubic", "area") and mode not in linear:
        raise NotImplementedError(f"interpolate: mode {mode!r} is not supported (nearest, nearest-exact, linear, "
                                  f"bilinear, bicubic, trilinear, area)")
    if antialias and not (mode in ("bilinear", "bicubic") and input.ndim == 4):
        raise ValueError("Anti-alias option is restricted to bilinear and bicubic modes and requires a 4-D tensor "
                         "as input")
    if mode in linear and linear[mode] != nsp:
        raise NotImplementedError(f"interpolate: got {input.ndim}D input, but {mode} mode needs "
                                  f"{linear[mode] + 2}D input")
    if mode not in linear and mode != "bicubic" and align_corners is not None:
        raise ValueError("align_corners option can only be set with the interpolating modes: linear | bilinear | "
                         "bicubic | trilinear")
    if (size is None) == (scale_factor is None):
        raise ValueError("interpolate: only one of size or scale_factor should be defined")
    spatial = tuple(input.shape[2:])
    if size is not None:
        out = tuple(size) if isinstance(size, (tuple, list)) else (size,) * nsp
        scales = (None,) * nsp
    else:
        scales = tuple(scale_factor) if isinstance(scale_factor, (tuple, list)) else (scale_factor,) * nsp
        if len(scales) != nsp or builtins.any(not math.isfinite(s) or s <= 0 for s in scales):
            raise RuntimeError(f"interpolate: scale_factor {scale_factor} must give one finite positive factor per "
                             f"spatial dim of input {_shape(input)}")
        out = tuple(int(np.floor(n * s)) for n, s in zip(spatial, scales))
        if recompute_scale_factor:
            scales = (None,) * nsp
    if len(out) != nsp:
        raise ValueError(f"interpolate: size {out} does not match the {nsp} spatial dims of input {_shape(input)}")
    if builtins.any(not isinstance(o, numbers.Integral) or o <= 0 for o in out) or builtins.any(n <= 0 for n in spatial):
        raise RuntimeError(f"interpolate: input and output sizes should be greater than 0, but got input "
                           f"{_shape(input)} and output size {out}")
    if mode == "area":
        return _interpolate_area(input, out)
    if mode == "bicubic" or antialias:
        return _interpolate_separable(input, out, scales, mode, bool(align_corners), antialias)
    if mode in linear and input.dtype.kind in "biu":
        if input.dtype != np.uint8 or mode != "bilinear":  # as PyTorch's CPU kernels
            raise NotImplementedError(f"interpolate: mode {mode!r} is not implemented for {_dtype.name(input.dtype)} "
                                      f"tensors (integers: bilinear on uint8 only)")
        return _bilinear_uint8(input, out, scales, bool(align_corners))
    if input.ndim == 4 and mode in ("bilinear", "nearest", "nearest-exact") and input.dtype in (np.float32, np.float64):
        return _resample2d(input, mode, out, bool(align_corners), scales)  # native (csrc/kernels/resample.cpp)
    y = input
    for k, (n_in, n_out, s) in enumerate(zip(spatial, out, scales)):
        d = 2 + k
        src = _source_index(n_in, n_out, s, mode, bool(align_corners))
        if mode not in linear:
            y = _ops.index_select(y, d, _const(src))
            continue
        lo = np.floor(src).astype(np.int64)
        hi = np.minimum(lo + 1, n_in - 1)
        w = _const((src - lo).reshape((-1,) + (1,) * (input.ndim - d - 1)), input.dtype)
        y = _ops.index_select(y, d, _const(lo)) * (1 - w) + _ops.index_select(y, d, _const(hi)) * w
    return y


def _int16_weights(n_in, n_out, scale, align_corners):
    """PyTorch's fixed-point bilinear weights for uint8 along one dim: a dense (n_out, n_in) int
    matrix and its precision in bits (aten's _compute_index_ranges_int16_weights, antialias off)."""
    if align_corners:
        s = (n_in - 1) / (n_out - 1) if n_out > 1 else 0.0
    else:
        s = 1.0 / scale if scale is not None and scale > 0 else n_in / n_out
    delta = 0.5 if align_corners else 0.0
    w = np.zeros((n_out, n_in))
    for i in range(n_out):
        center = s * (i + 0.5 - delta)
        lo = max(int(center - 1.0 + 0.5 + delta), 0)  # int(): truncation toward zero, as C's cast
        hi = min(int(center + 1.0 + 0.5 + delta), n_in)
        j = np.arange(lo, max(hi, lo))[:3]
        tri = np.maximum(1.0 - np.abs(j - center + 0.5 - delta), 0.0)
        if tri.sum():
            w[i, j] = tri / tri.sum()
    bits = 0
    while bits < 22 and int(0.5 + w.max() * (1 << (bits + 1))) < (1 << 15):
        bits += 1
    v = w * (1 << bits)
    return np.where(v < 0, np.trunc(v - 0.5), np.trunc(v + 0.5)).astype(np.int64), bits


def _bilinear_uint8(input, out, scales, align_corners):
    """Bilinear resize of uint8 images as PyTorch's CPU kernel computes it: int16 fixed-point
    weights, the width first, each pass rounded (half up) and clamped back to uint8."""
    y = input._data
    for d, n_out, s in ((3, out[1], scales[1]), (2, out[0], scales[0])):
        n_in = y.shape[d]
        if n_in == n_out:  # PyTorch skips a pass whose size does not change
            continue
        w, bits = _int16_weights(n_in, n_out, s, align_corners)
        acc = np.moveaxis(np.moveaxis(y, d, -1).astype(np.int64) @ w.T, -1, d)
        y = np.clip((acc + (1 << (bits - 1))) >> bits, 0, 255).astype(np.uint8)
    return _const(np.ascontiguousarray(y), np.uint8)


def upsample(input, size=None, scale_factor=None, mode: str = "nearest", align_corners=None):
    """``interpolate`` under its deprecated name."""
    return interpolate(input, size, scale_factor, mode, align_corners)


def _positive_factor(r, opname, what, input):
    if not isinstance(r, numbers.Integral) or r <= 0:
        raise RuntimeError(f"{opname} expects a positive integer {what}, but got {r!r}")
    if input.ndim < 3:
        raise RuntimeError(f"{opname} expects input to have at least 3 dimensions, but got input of shape "
                           f"{_shape(input)}")
    return int(r)


def pixel_shuffle(input, upscale_factor: int):
    """(*, C r^2, H, W) -> (*, C, H r, W r)."""
    r = _positive_factor(upscale_factor, "pixel_shuffle", "upscale_factor", input)
    *lead, c, h, w = input.shape
    if c % (r * r):
        raise RuntimeError(f"pixel_shuffle expects its input's 'channel' dimension to be divisible by the square of "
                           f"upscale_factor, but input.size(-3)={c} is not divisible by {r * r}")
    n = len(lead)
    x = input.reshape(*lead, c // (r * r), r, r, h, w)
    x = x.permute(*range(n), n, n + 3, n + 1, n + 4, n + 2)
    return x.reshape(*lead, c // (r * r), h * r, w * r)


def pixel_unshuffle(input, downscale_factor: int):
    """(*, C, H r, W r) -> (*, C r^2, H, W)."""
    r = _positive_factor(downscale_factor, "pixel_unshuffle", "downscale_factor", input)
    *lead, c, h, w = input.shape
    if h % r or w % r:
        raise RuntimeError(f"pixel_unshuffle expects height and width divisible by downscale_factor {r}, got "
                           f"{_shape(input)}")
    n = len(lead)
    x = input.reshape(*lead, c, h // r, r, w // r, r)
    x = x.permute(*range(n), n, n + 2, n + 4, n + 1, n + 3)
    return x.reshape(*lead, c * r * r, h // r, w // r)


def channel_shuffle(input, groups: int):
    """``(N, g*k, *) -> (N, k*g, *)``: channel ``i*k + j`` moves to ``j*g + i`` (ShuffleNet)."""
    if input.ndim <= 2:
        raise RuntimeError(f"channel_shuffle expects input to have at least 3 dimensions, but got input with sizes "
                           f"{list(input.shape)}")
    if groups <= 0:
        raise RuntimeError(f"Number of groups to divide channels in must be positive. Value of groups:{groups}")
    n, c, *rest = input.shape
    if c % groups:
        raise RuntimeError(f"Number of channels must be divisible by groups. Got {c} channels and {groups} groups.")
    return input.reshape(n, groups, c // groups, *rest).transpose(1, 2).reshape(input.shape)


# ---------------------------------------------------------------- losses: helpers
def _reduction(reduction, size_average=None, reduce=None):
    """PyTorch's legacy ``size_average``/``reduce`` arguments mapped onto ``reduction``."""
    if size_average is not None or reduce is not None:
        size_average = True if size_average is None else size_average
        reduce = True if reduce is None else reduce
        reduction = ("mean" if size_average else "sum") if reduce else "none"
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"{reduction} is not a valid value for reduction (expected 'mean', 'sum' or 'none')")
    return reduction


def _reduce(loss, reduction):
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    return loss


def _check_float(x, name, what="input"):
    if not isinstance(x, Tensor):
        raise TypeError(f"{name}: {what} must be a tapegrad.Tensor, got {type(x).__name__}")
    if _dtype.kind_of(x.dtype) != "f":
        # NotImplementedError (a RuntimeError), as PyTorch's kernels answer a dtype they lack
        raise NotImplementedError(f"{name}: expected a floating-point {what}, got {_dtype.name(x.dtype)}")


def _check_pointwise(input, target, name, strict=False, int_input=False):
    """Target matches input's shape (PyTorch broadcasts with a warning; non-broadcastable is an error).
    ``int_input``: an integer or bool input is fine beside a floating target (it promotes)."""
    if not isinstance(target, Tensor):
        raise TypeError(f"{name}: target must be a tapegrad.Tensor, got {type(target).__name__}")
    if not (int_input and _dtype.is_floating(target.dtype)):
        _check_float(input, name)
    if _shape(target) == _shape(input):
        return
    if strict:
        raise ValueError(f"{name}: Using a target size ({_shape(target)}) that is different to the input size "
                         f"({_shape(input)}) is not supported. Please ensure they have the same size.")
    try:
        np.broadcast_shapes(_shape(input), _shape(target))
    except ValueError:
        raise RuntimeError(f"{name}: input of shape {_shape(input)} and target of shape {_shape(target)} do not "
                           f"match and cannot be broadcast together") from None
    warnings.warn(f"{name}: Using a target size ({_shape(target)}) that is different to the input size "
                  f"({_shape(input)}). This will likely lead to incorrect results due to broadcasting. Please "
                  f"ensure they have the same size.", stacklevel=3)


def _as_float_target(target, input):
    """An integer or bool target in the input's dtype; a floating one as it is, so the arithmetic
    promotes (``mse_loss(float32, float64)`` is float64, as PyTorch's)."""
    return target if _dtype.is_floating(target.dtype) else target.to(input.dtype)


# ---------------------------------------------------------------- classification losses
@cast_inputs(FP32)
def nll_loss(input, target, weight=None, size_average=None, ignore_index: int = -100, reduce=None,
             reduction: str = "mean"):
    """Negative log likelihood of class indices, with input (N, C) or (N, C, d1, ...) holding
    log-probabilities. With ``weight`` and ``reduction='mean'`` the sum is divided by the total
    weight of the non-ignored targets (PyTorch's weighted mean)."""
    reduction = _reduction(reduction, size_average, reduce)
    return _nll(input, target, weight, ignore_index, reduction, "nll_loss")


def _class_layout(input, target, name):
    """Input (N, C, d...) and target (N, d...) as (M, C) and (M,) plus the target's shape."""
    _check_float(input, name)
    if not isinstance(target, Tensor):
        raise TypeError(f"{name}: target must be a tapegrad.Tensor, got {type(target).__name__}")
    if input.ndim == 0:
        raise ValueError(f"{name}: input must have at least 1 dim (C,) or (N, C, ...), got a 0-d tensor")
    if input.ndim == 1:  # unbatched (C,) with a 0-d target
        if target.ndim != 0:
            raise ValueError(f"{name}: unbatched input of shape {_shape(input)} expects a 0-d target, got shape "
                             f"{_shape(target)}")
        return input.reshape(1, -1), target._data.reshape(1), ()
    n, c = input.shape[:2]
    expected = (n,) + _shape(input)[2:]
    if _shape(target) != expected:
        if target.ndim and target.shape[0] != n:
            raise ValueError(f"{name}: Expected input batch_size ({n}) to match target batch_size "
                             f"({target.shape[0]}) (input shape {_shape(input)}, target shape {_shape(target)})")
        # RuntimeError, as PyTorch raises for a wrong-shaped class-index target
        if input.ndim == 2:
            raise RuntimeError(f"{name}: 0D or 1D target tensor expected, multi-target not supported (input shape "
                               f"{_shape(input)}, target shape {_shape(target)})")
        raise RuntimeError(f"{name}: Expected target size {list(expected)}, got {list(_shape(target))} (input shape "
                           f"{_shape(input)})")
    flat = input if input.ndim == 2 else _ops.permute(input, (0,) + tuple(range(2, input.ndim)) + (1,))
    return (flat if flat.ndim == 2 else flat.reshape(-1, c)), target._data.reshape(-1), _shape(target)


def _class_weights(t, c, weight, ignore_index, dtype, name):
    """Per-sample weights w[t_i] (0 where t_i == ignore_index) and safe indices, after range checks."""
    if t.dtype.kind not in "iu":
        raise RuntimeError(f"{name}: expected class-index targets of an integer dtype, got {t.dtype} (use "
                           f"float targets of the input's shape for class probabilities)")
    keep = t != ignore_index
    bad = keep & ((t < 0) | (t >= c))
    if bad.any():
        raise IndexError(f"{name}: Target {int(t[bad][0])} is out of bounds: expected class indices in "
                         f"[0, {c - 1}] (or ignore_index={ignore_index})")
    safe = np.where(keep, t, 0)
    if weight is not None:
        if _shape(weight) != (c,):
            raise RuntimeError(f"{name}: weight tensor should be defined either for all {c} classes or no "
                               f"classes but got weight tensor of shape: {_shape(weight)}")
        w = weight._data.astype(dtype)[safe] * keep
    else:
        w = keep.astype(dtype)
    return w, safe, keep


def _nll(input, target, weight, ignore_index, reduction, name):
    flat, t, tshape = _class_layout(input, target, name)
    m, c = flat.shape
    w, safe, _ = _class_weights(t, c, weight, ignore_index, flat.dtype, name)
    # pick -w_i * logp[i, t_i] with a dense one-hot mask: one fused multiply-reduce, no scatter
    mask = np.zeros((m, c), dtype=flat.dtype)
    mask[np.arange(m), safe] = -w
    losses = (flat * _const(mask)).sum(-1)
    if reduction == "none":
        return losses.reshape(tshape)
    if reduction == "sum":
        return losses.sum()
    total = w.sum(dtype=flat.dtype)
    if total == 0:  # every target ignored: NaN as PyTorch's 0/0, with its zero gradient (not NaN)
        return losses.sum() * 0.0 + _const(np.nan, flat.dtype)
    return losses.sum() / _const(total)


@cast_inputs(FP32)
def cross_entropy(input, target, weight=None, size_average=None, ignore_index: int = -100, reduce=None,
                  reduction: str = "mean", label_smoothing: float = 0.0):
    """Cross entropy between logits ``input`` (N, C, ...) and class indices (N, ...) or class
    probabilities (same shape as input), as ``torch.nn.functional.cross_entropy``.

    >>> F.cross_entropy(tapegrad.tensor([[1e4, 0.0]]), tapegrad.tensor([1]))   # finite: 1e4
    tensor(10000.)
    """
    reduction = _reduction(reduction, size_average, reduce)
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"cross_entropy: label_smoothing must be between 0.0 and 1.0, got {label_smoothing}")
    _check_float(input, "cross_entropy")
    class_dim = 0 if input.ndim == 1 else 1
    if isinstance(target, Tensor) and _dtype.kind_of(target.dtype) == "f":
        return _cross_entropy_probs(log_softmax(input, class_dim), target, weight, reduction, label_smoothing,
                                    class_dim)
    if label_smoothing == 0.0 and isinstance(target, Tensor) and _same_float(input) and input._data.size:
        return _fused_cross_entropy(input, target, weight, ignore_index, reduction)
    logp = log_softmax(input, class_dim)
    nll = _nll(logp, target, weight, ignore_index, reduction, "cross_entropy")
    if label_smoothing == 0.0:
        return nll
    # PyTorch: (1 - eps) * nll + eps / C * smooth, smooth = -sum_c w_c logp_c (0 where ignored)
    c = input.shape[class_dim]
    t = target._data
    keep = t != ignore_index
    wshape = [1] * input.ndim
    wshape[class_dim] = c
    weighted = logp if weight is None else logp * weight.reshape(wshape).to(logp.dtype)
    smooth = -weighted.sum(class_dim) * _const(keep.astype(logp.dtype))
    if reduction == "mean":
        if weight is not None:
            denom = weight._data.astype(logp.dtype)[t[keep]].sum(dtype=logp.dtype)
        else:
            denom = np.asarray(keep.sum(), logp.dtype)
        smooth = smooth.sum() * 0.0 + _const(np.nan, logp.dtype) if denom == 0 else smooth.sum() / _const(denom)
    elif reduction == "sum":
        smooth = smooth.sum()
    return nll * (1 - label_smoothing) + smooth * (label_smoothing / c)


def _same_float(*tensors):
    """float32 or float64 tensors of one dtype: what the fused C++ kernels take."""
    dt = tensors[0]._data.dtype
    return dt in (np.float32, np.float64) and all(t._data.dtype == dt for t in tensors)


def _fused_cross_entropy(input, target, weight, ignore_index, reduction):
    """Class-index cross_entropy as one fused log_softmax + nll kernel over (M, C) logits."""
    flat, t, tshape = _class_layout(input, target, "cross_entropy")
    w, safe, keep = _class_weights(t, flat.shape[1], weight, ignore_index, flat.dtype, "cross_entropy")
    rows = np.where(keep, safe, -1).astype(np.int64)
    losses = _apply(_cross_entropy, flat, target=rows, weight=np.ascontiguousarray(w, dtype=flat.dtype))
    if reduction == "none":
        return losses.reshape(tshape)
    if reduction == "sum":
        return losses.sum()
    total = w.sum(dtype=flat.dtype)
    if total == 0:  # every target ignored: NaN as PyTorch's 0/0, with its zero gradient (not NaN)
        return losses.sum() * 0.0 + _const(np.nan, flat.dtype)
    return losses.sum() / _const(total)


def _cross_entropy_probs(logp, target, weight, reduction, label_smoothing, class_dim):
    if _shape(target) != _shape(logp):
        raise RuntimeError(f"cross_entropy: class-probability targets must have the input's shape "
                           f"{_shape(logp)}, got {_shape(target)}")
    c = logp.shape[class_dim]
    target = _as_float_target(target, logp)
    if label_smoothing > 0:
        target = target * (1 - label_smoothing) + label_smoothing / c
    prod = logp * target
    if weight is not None:
        wshape = [1] * logp.ndim
        wshape[class_dim] = c
        prod = prod * weight.reshape(wshape).to(logp.dtype)
    if reduction == "none":
        return -prod.sum(class_dim)
    if reduction == "sum":
        return -prod.sum()
    n = logp._data.size // c if c else 0
    return -prod.sum() / (n if n else float("nan"))


@cast_inputs(FP32)
def binary_cross_entropy(input, target, weight=None, size_average=None, reduce=None, reduction: str = "mean"):
    """``-w (y log x + (1 - y) log(1 - x))`` for probabilities ``x``; each log is clamped at
    -100 and the gradient's denominator ``x (1 - x)`` at 1e-12 as PyTorch does, so ``x = 0`` or
    ``1`` gives a finite loss and gradient."""
    reduction = _reduction(reduction, size_average, reduce)
    _check_pointwise(input, target, "binary_cross_entropy", strict=True)
    x = input._data
    if x.size and (np.nanmin(x) < 0 or np.nanmax(x) > 1 or np.isnan(x).any()):
        raise RuntimeError(f"binary_cross_entropy: all elements of input should be between 0 and 1 (got "
                           f"values in [{np.nanmin(x):g}, {np.nanmax(x):g}]); for logits use "
                           f"binary_cross_entropy_with_logits")
    y = target._data if isinstance(target, Tensor) else np.asarray(target)
    if y.size and not ((y >= 0) & (y <= 1)).all():  # as PyTorch: a target outside [0, 1] is not a probability
        bad = y[~((y >= 0) & (y <= 1))].reshape(-1)[0]
        raise RuntimeError(f"binary_cross_entropy: all elements of target should be between 0 and 1 (got {bad:g} "
                           f"in a target of shape {tuple(y.shape)})")
    loss = _bce_pointwise(input, _as_float_target(target, input))
    if weight is not None:
        loss = loss * weight
    return _reduce(loss, reduction)


@cast_inputs(FP32)
def binary_cross_entropy_with_logits(input, target, weight=None, size_average=None, reduce=None,
                                     reduction: str = "mean", pos_weight=None):
    """Sigmoid + binary cross entropy in one stable expression:
    ``(1 - y) x + (1 + (pos_weight - 1) y) * softplus(-x)``."""
    reduction = _reduction(reduction, size_average, reduce)
    _check_pointwise(input, target, "binary_cross_entropy_with_logits", strict=True)
    y = _as_float_target(target, input)
    if y.dtype != input.dtype:  # PyTorch computes in the target's dtype (its result has that dtype)
        input = input.to(y.dtype)
    if pos_weight is None and input._data.dtype in (np.float32, np.float64):
        loss = _bce_logits_pointwise(input, y)  # one op, one gradient pass
        if weight is not None:
            loss = loss * weight
        return _reduce(loss, reduction)
    sp = -logsigmoid(input)  # softplus(-x), stable for |x| = 1e4
    if pos_weight is not None:
        sp = sp * ((pos_weight - 1) * y + 1)
    loss = (1 - y) * input + sp
    if weight is not None:
        loss = loss * weight
    return _reduce(loss, reduction)


@cast_inputs(FP32)
def kl_div(input, target, size_average=None, reduce=None, reduction: str = "mean", log_target: bool = False):
    """KL(target || exp(input)) pointwise: ``target * (log(target) - input)`` (0 where target is 0, NaN
    where it is negative).
    ``reduction='batchmean'`` divides the sum by the batch size (the true KL divergence)."""
    if reduction == "batchmean":
        red = "sum"
    else:
        red = _reduction(reduction, size_average, reduce)
        if red == "mean" and size_average is None and reduce is None:
            warnings.warn("reduction: 'mean' divides the total loss by both the batch size and the support size."
                          "'batchmean' divides only by the batch size, and aligns with the KL div math "
                          "definition.", stacklevel=2)
    _check_pointwise(input, target, "kl_div")
    t = _as_float_target(target, input)
    if log_target:
        loss = _ops.exp(t) * (t - input)
    else:  # PyTorch's xlogy(t, t) - t * input: 0 where t is 0, NaN where t < 0
        loss = _ops.xlogy(t, t) - t * input
    if reduction == "batchmean":
        return loss.sum() / (input.shape[0] if input.ndim else 1)
    return _reduce(loss, red)


# ---------------------------------------------------------------- regression losses
@cast_inputs(FP32)
def mse_loss(input, target, size_average=None, reduce=None, reduction: str = "mean", weight=None):
    """The mean (``reduction``) squared error ``(input - target)**2``, optionally weighted."""
    reduction = _reduction(reduction, size_average, reduce)
    _check_pointwise(input, target, "mse_loss", int_input=True)
    if weight is None:
        fused = _mse_loss_fused(input, target, reduction)  # one op for two float tensors of one dtype and shape
        if fused is not None:
            return fused
    d = input - _as_float_target(target, input)
    loss = d * d
    return _reduce(loss if weight is None else loss * weight, reduction)


@cast_inputs(FP32)
def l1_loss(input, target, size_average=None, reduce=None, reduction: str = "mean"):
    """The mean (``reduction``) absolute error ``|input - target|``."""
    reduction = _reduction(reduction, size_average, reduce)
    _check_pointwise(input, target, "l1_loss", int_input=True)
    return _reduce(_ops.abs(input - _as_float_target(target, input)), reduction)


@cast_inputs(FP32)
def smooth_l1_loss(input, target, size_average=None, reduce=None, reduction: str = "mean", beta: float = 1.0):
    """``0.5 d^2 / beta`` where ``|d| < beta``, else ``|d| - 0.5 beta`` (L1 when beta is 0)."""
    reduction = _reduction(reduction, size_average, reduce)
    if beta < 0:
        raise RuntimeError(f"smooth_l1_loss: beta must be non-negative, got {beta}")
    _check_pointwise(input, target, "smooth_l1_loss", int_input=True)
    if beta > 0:
        fused = _huber_loss_fused(input, target, reduction, beta, False)  # one op, one pass for float tensors
        if fused is not None:
            return fused
    d = input - _as_float_target(target, input)
    ad = _ops.abs(d)
    if beta == 0:
        return _reduce(ad, reduction)
    loss = _ops.where(ad < beta, d * d * (0.5 / beta), ad - 0.5 * beta)
    return _reduce(loss, reduction)


@cast_inputs(FP32)
def huber_loss(input, target, reduction: str = "mean", delta: float = 1.0, weight=None):
    """``0.5 d^2`` where ``|d| < delta``, else ``delta (|d| - 0.5 delta)``."""
    reduction = _reduction(reduction)
    if delta <= 0:
        raise RuntimeError(f"huber_loss: delta must be positive, got {delta}")
    _check_pointwise(input, target, "huber_loss")
    if weight is None:
        fused = _huber_loss_fused(input, target, reduction, delta, True)  # one op, one pass for float tensors
        if fused is not None:
            return fused
    d = input - target.to(input.dtype)  # PyTorch's huber_loss keeps the input's dtype
    ad = _ops.abs(d)
    loss = _ops.where(ad < delta, d * d * 0.5, (ad - 0.5 * delta) * delta)
    return _reduce(loss if weight is None else loss * weight, reduction)


@cast_inputs(FP32)
def poisson_nll_loss(input, target, log_input: bool = True, full: bool = False, size_average=None,
                     eps: float = 1e-8, reduce=None, reduction: str = "mean"):
    """``exp(x) - y x`` (``log_input``) or ``x - y log(x + eps)``; ``full`` adds Stirling's term."""
    reduction = _reduction(reduction, size_average, reduce)
    if log_input:
        loss = _ops.exp(input) - target * input
    else:
        loss = input - target * _ops.log(input + eps)
    if full:
        # Stirling's approximation of log(target!) where target > 1, differentiable in the target as
        # PyTorch's; 1 stands in elsewhere so that the masked logs stay finite (a zero gradient there)
        big = target > 1
        t = _ops.where(big, target, _ops.ones_like(target))
        stirling = t * _ops.log(t) - t + 0.5 * _ops.log(2 * np.pi * t)
        loss = loss + _ops.where(big, stirling, _ops.zeros_like(stirling))
    return _reduce(loss, reduction)


def gaussian_nll_loss(input, target, var, full: bool = False, eps: float = 1e-6, reduction: str = "mean"):
    """``0.5 (log(max(var, eps)) + (x - y)^2 / max(var, eps))`` (+ ``0.5 log(2 pi)`` with ``full``).
    ``var`` has the input's shape, or it with the last dim 1 or dropped (one variance per sample);
    the clamp at ``eps`` passes the gradient through unchanged, as PyTorch's does."""
    reduction = _reduction(reduction)
    if not isinstance(var, Tensor):
        var = _const(float(var), input.dtype) * _ops.ones_like(input)
    if _shape(var) != _shape(input):
        if _shape(input)[:-1] == _shape(var):
            var = var.unsqueeze(-1)
        elif not (_shape(input)[:-1] == _shape(var)[:-1] and var.shape[-1] == 1):
            raise ValueError(f"gaussian_nll_loss: var of shape {_shape(var)} is incompatible with input of shape "
                             f"{_shape(input)}")
    if (var._data < 0).any():
        raise ValueError("gaussian_nll_loss: var has negative entry/entries")
    var = var + (_ops.clamp(var, min=eps) - var).detach()
    loss = 0.5 * (_ops.log(var) + (input - _as_float_target(target, input)) ** 2 / var)
    if full:
        loss = loss + 0.5 * float(np.log(2 * np.pi))
    return _reduce(loss, reduction)


# ---------------------------------------------------------------- distances
def pairwise_distance(x1, x2, p: float = 2.0, eps: float = 1e-6, keepdim: bool = False):
    """``||x1 - x2 + eps||_p`` over the last dim."""
    d = x1 - x2 + eps
    if p == 2:
        return _ops.sqrt((d * d).sum(-1, keepdim=keepdim))
    if p == 1:
        return _ops.abs(d).sum(-1, keepdim=keepdim)
    if p == float("inf"):
        return _ops.amax(_ops.abs(d), -1, keepdim=keepdim)
    return (_ops.abs(d) ** p).sum(-1, keepdim=keepdim) ** (1.0 / p)


def cosine_similarity(x1, x2, dim: int = 1, eps: float = 1e-8):
    """``<x1 / max(||x1||, eps), x2 / max(||x2||, eps)>`` along ``dim``: the cosine of the angle.

    As PyTorch: the inputs broadcast, each is normalised before the dot product (so the result
    stays in [-1, 1]), and the clamp to ``eps`` leaves the norm's gradient as if unclamped.

    >>> F.cosine_similarity(tapegrad.tensor([[1., 0.]]), tapegrad.tensor([1., 1.]))
    tensor([0.7071])
    """
    common = _dtype.result_type(x1._data, x2._data)
    if common.kind != "f":
        raise RuntimeError(f"cosine_similarity: expected common dtype to be floating point, yet common dtype is "
                           f"{_dtype.name(common)}")
    x1, x2 = _ops.broadcast_tensors(x1.to(common) if x1.dtype.kind != "f" else x1,
                                    x2.to(common) if x2.dtype.kind != "f" else x2)
    if x1.dtype == x2.dtype and x1.dtype in (np.float32, np.float64) and x1.ndim:
        return _cosine_similarity_fused(x1, x2, _norm_dim(dim, x1.ndim, "cosine_similarity"), eps)

    def unit(x):
        n = _vector_norm(x, 2, dim=dim, keepdim=True)
        shift = _ops.clamp(n.detach(), min=eps) - n.detach()  # the clamped value, the unclamped gradient
        return x / (n + shift)
    return (unit(x1) * unit(x2)).sum(dim)


# ---------------------------------------------------------------- margin and embedding losses
@cast_inputs(FP32)
def triplet_margin_loss(anchor, positive, negative, margin: float = 1.0, p: float = 2, eps: float = 1e-6,
                        swap: bool = False, size_average=None, reduce=None, reduction: str = "mean"):
    """``max(d(a, p) - d(a, n) + margin, 0)`` with ``d`` the pairwise p-norm distance."""
    reduction = _reduction(reduction, size_average, reduce)
    for name, t in (("anchor", anchor), ("positive", positive), ("negative", negative)):
        _check_float(t, "triplet_margin_loss", name)
    if not (anchor.ndim == positive.ndim == negative.ndim) or anchor.ndim not in (1, 2):
        raise RuntimeError(f"triplet_margin_loss: anchor, positive and negative must all be 1D or all 2D, got "
                           f"shapes {_shape(anchor)}, {_shape(positive)}, {_shape(negative)}")
    if margin <= 0:
        raise ValueError(f"triplet_margin_loss: margin must be greater than 0, got {margin}")
    d_ap = pairwise_distance(anchor, positive, p, eps)
    d_an = pairwise_distance(anchor, negative, p, eps)
    if swap:
        d_an = _ops.minimum(d_an, pairwise_distance(positive, negative, p, eps))
    return _reduce(_relu_op(d_ap - d_an + margin), reduction)


@cast_inputs(FP32)
def margin_ranking_loss(input1, input2, target, margin: float = 0.0, size_average=None, reduce=None,
                        reduction: str = "mean"):
    """``max(0, -y (x1 - x2) + margin)``."""
    reduction = _reduction(reduction, size_average, reduce)
    return _reduce(_relu_op(-target * (input1 - input2) + margin), reduction)


@cast_inputs(FP32)
def soft_margin_loss(input, target, size_average=None, reduce=None, reduction: str = "mean"):
    """``log(1 + exp(-y x))``."""
    reduction = _reduction(reduction, size_average, reduce)
    return _reduce(-logsigmoid(target.to(input.dtype) * input), reduction)  # in the input's dtype, as PyTorch


@cast_inputs(FP32)
def hinge_embedding_loss(input, target, margin: float = 1.0, size_average=None, reduce=None,
                         reduction: str = "mean"):
    """``x`` where ``y == 1``, ``max(0, margin - x)`` where ``y == -1`` (PyTorch's masks: other
    labels count in neither or both terms)."""
    reduction = _reduction(reduction, size_average, reduce)
    zero = _const(0.0, input.dtype)
    hinge = _ops.where(target != 1, _relu_op(margin - input), zero)
    self_term = _ops.where(target != -1, input, zero)
    return _reduce(hinge + self_term, reduction)


@cast_inputs(FP32)
def cosine_embedding_loss(input1, input2, target, margin: float = 0.0, size_average=None, reduce=None,
                          reduction: str = "mean"):
    """``1 - cos(x1, x2)`` where ``y == 1``, ``max(0, cos(x1, x2) - margin)`` where ``y == -1``."""
    reduction = _reduction(reduction, size_average, reduce)
    if input1.shape != input2.shape:
        raise RuntimeError(f"cosine_embedding_loss: input1 {_shape(input1)} and input2 {_shape(input2)} must have "
                           f"the same shape")
    if input1.ndim not in (1, 2) or target.ndim != input1.ndim - 1:
        raise RuntimeError(f"cosine_embedding_loss: expected 1-D inputs with a 0-D target or 2-D inputs with a 1-D "
                           f"target, got inputs {_shape(input1)} and target {_shape(target)}")
    d = input1.ndim - 1
    eps = 1e-12  # PyTorch's EPSILON inside the magnitudes
    cos = (input1 * input2).sum(d) / _ops.sqrt(((input1 * input1).sum(d) + eps) * ((input2 * input2).sum(d) + eps))
    zero = _const(0.0, cos.dtype)
    pos = _ops.where(target == 1, 1 - cos, zero)
    neg = _ops.where(target == -1, _relu_op(cos - margin), zero)
    return _reduce(pos + neg, reduction)


@cast_inputs(FP32)
def multi_margin_loss(input, target, p: int = 1, margin: float = 1.0, weight=None, size_average=None, reduce=None,
                      reduction: str = "mean"):
    """Multi-class hinge loss: ``sum_{i != y} max(0, margin - x[y] + x[i])^p / C`` per sample,
    times ``weight[y]``."""
    reduction = _reduction(reduction, size_average, reduce)
    if p not in (1, 2):
        raise ValueError(f"multi_margin_loss: only p == 1 and p == 2 supported, got {p}")
    if weight is not None and weight.ndim != 1:  # PyTorch's Python-side checks come first
        raise ValueError(f"multi_margin_loss: weight must be one-dimensional, got shape {_shape(weight)}")
    _check_float(input, "multi_margin_loss")
    x = input.reshape(1, -1) if input.ndim <= 1 else input  # a 0-d input is one sample of one class
    if x.ndim != 2:
        raise RuntimeError(f"multi_margin_loss: expected 1-D or 2-D input, got shape {_shape(input)}")
    n, c = x.shape
    if c == 0:
        raise RuntimeError(f"multi_margin_loss: Expected non-empty vector or matrix with optional 0-dim batch size, "
                           f"but got: {_shape(input)}")
    if _dtype.kind_of(target.dtype) not in "iu":
        raise RuntimeError(f"multi_margin_loss: expected target of scalar type Long but found "
                           f"{_dtype.name(target.dtype)}")
    if weight is not None:
        if weight.numel() != c:
            raise RuntimeError(f"multi_margin_loss: inconsistent weight size, expected {c} but got {_shape(weight)}")
    t = target._data.reshape(-1)
    if t.shape != (n,):
        raise RuntimeError(f"multi_margin_loss: target of shape {_shape(target)} does not match input of shape "
                           f"{_shape(input)}")
    if ((t < 0) | (t >= c)).any():
        raise IndexError(f"multi_margin_loss: target out of range: expected class indices in [0, {c - 1}]")
    x_y = _ops.gather(x, 1, Tensor._wrap(t.reshape(-1, 1).astype(np.int64)))
    z = _relu_op(x - x_y + margin)
    if p == 2:
        z = z * z
    if weight is not None:
        z = z * _const(weight._data.astype(x.dtype)[t].reshape(-1, 1))
    not_target = np.ones((n, c), dtype=x.dtype)
    not_target[np.arange(n), t] = 0
    loss = (z * _const(not_target)).sum(1) / c
    if input.ndim <= 1:
        loss = loss.reshape(())
    return _reduce(loss, reduction)


def multilabel_soft_margin_loss(input, target, weight=None, size_average=None, reduce=None,
                                reduction: str = "mean"):
    """One-vs-all logistic loss averaged over the classes (the last dim)."""
    reduction = _reduction(reduction, size_average, reduce)
    _check_pointwise(input, target, "multilabel_soft_margin_loss", strict=True)
    y = _as_float_target(target, input)
    loss = -(y * logsigmoid(input) + (1 - y) * logsigmoid(-input))
    if weight is not None:
        loss = loss * weight
    loss = loss.sum(-1) / input.shape[-1]
    return _reduce(loss, reduction)


# ---------------------------------------------------------------- metrics
# ---------------------------------------------------------------- more of PyTorch's functional API
def max_pool1d_with_indices(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode: bool = False,
                            return_indices: bool = False):
    """``max_pool1d(..., return_indices=True)``: the pooled values and their indices."""
    return max_pool1d(input, kernel_size, stride, padding, dilation, ceil_mode, True)


def max_pool2d_with_indices(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode: bool = False,
                            return_indices: bool = False):
    """``max_pool2d(..., return_indices=True)``: the pooled values and their indices."""
    return max_pool2d(input, kernel_size, stride, padding, dilation, ceil_mode, True)


def adaptive_max_pool1d_with_indices(input, output_size, return_indices: bool = False):
    """``adaptive_max_pool1d(..., return_indices=True)``."""
    return adaptive_max_pool1d(input, output_size, True)


def adaptive_max_pool2d_with_indices(input, output_size, return_indices: bool = False):
    """``adaptive_max_pool2d(..., return_indices=True)``."""
    return adaptive_max_pool2d(input, output_size, True)


def max_pool3d_with_indices(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode: bool = False,
                            return_indices: bool = False):
    """``max_pool3d(..., return_indices=True)``: the pooled values and their indices."""
    return max_pool3d(input, kernel_size, stride, padding, dilation, ceil_mode, True)


def adaptive_max_pool3d_with_indices(input, output_size, return_indices: bool = False):
    """``adaptive_max_pool3d(..., return_indices=True)``."""
    return adaptive_max_pool3d(input, output_size, True)


def max_unpool1d(input, indices, kernel_size, stride=None, padding=0, output_size=None):
    """The inverse of ``max_pool1d(return_indices=True)`` on ``(N, C, L)`` or ``(C, L)``: each value
    goes to its index in a zero tensor of the unpooled length."""
    k = _one(kernel_size, "max_unpool1d")
    s = k if stride is None else _one(stride, "max_unpool1d")
    size = None
    if output_size is not None:
        size = tuple(output_size)[-1:]
        size = (1, int(size[0]))
    y = max_unpool2d(_as_2d(input, "max_unpool1d"), indices.unsqueeze(-2), (1, k), (1, s),
                     (0, _one(padding, "max_unpool1d")), size)
    return y.squeeze(-2)


def lp_pool1d(input, norm_type, kernel_size, stride=None, ceil_mode: bool = False):
    """Power-average pooling: ``(sum over each window of x**p) ** (1/p)`` along the last dim."""
    k = _one(kernel_size, "lp_pool1d")
    return _lp_from_mean(avg_pool1d(input.pow(norm_type), k, stride, 0, ceil_mode), norm_type, k)


def lp_pool2d(input, norm_type, kernel_size, stride=None, ceil_mode: bool = False):
    """Power-average pooling over 2-D windows: ``(sum of x**p) ** (1/p)`` per window."""
    k = _per_dim(kernel_size, 2)
    return _lp_from_mean(avg_pool2d(input.pow(norm_type), k, stride, 0, ceil_mode), norm_type, k[0] * k[1])


def lp_pool3d(input, norm_type, kernel_size, stride=None, ceil_mode: bool = False):
    """Power-average pooling over 3-D windows of ``(N, C, D, H, W)``: ``(sum of x**p) ** (1/p)`` per window."""
    k = _per_dim(kernel_size, 3)
    return _lp_from_mean(avg_pool3d(input.pow(norm_type), k, stride, 0, ceil_mode), norm_type, k[0] * k[1] * k[2])


def _lp_from_mean(mean, norm_type, window):
    # the window's sum of x**p from its mean; negative means (odd p) clamp to 0 before the root, as PyTorch
    return (_ops.sign(mean) * _relu_op(_ops.abs(mean))).mul(window).pow(1.0 / norm_type)


def celu_(input, alpha: float = 1.0):
    """``celu`` written into ``input`` (in place); returns ``input``."""
    return input.copy_(celu(input, alpha))


def selu_(input):
    """``selu`` written into ``input`` (in place); returns ``input``."""
    return input.copy_(selu(input))


def rrelu_(input, lower: float = 1.0 / 8, upper: float = 1.0 / 3, training: bool = False):
    """``rrelu`` written into ``input`` (in place); returns ``input``."""
    return input.copy_(rrelu(input, lower, upper, training))


_ALPHA_DROPOUT = 1.7580993408473766  # SELU's -scale * alpha: the value a dropped unit takes


def _alpha_dropout(input, p, training, feature, name):
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
    if p == 0 or not training or input.numel() == 0:
        return input
    if p == 1:
        return input * 0
    if feature and input.ndim < 2:
        raise RuntimeError(f"{name}: Feature dropout requires at least 2 dimensions in the input, got shape "
                           f"{_shape(input)}")
    shape = tuple(input.shape[:2]) + (1,) * (input.ndim - 2) if feature else tuple(input.shape)
    keep = _random.rng().random(shape) >= p
    a = 1.0 / np.sqrt((_ALPHA_DROPOUT ** 2 * p + 1) * (1 - p))
    mult = _const(np.where(keep, a, 0.0).astype(input.dtype))
    add = _const(np.where(keep, _ALPHA_DROPOUT * a * p, _ALPHA_DROPOUT * a * (p - 1)).astype(input.dtype))
    return input * mult + add


def alpha_dropout(input, p: float = 0.5, training: bool = False, inplace: bool = False):
    """Dropout for SELU networks: dropped units take SELU's negative saturation value and the result
    is rescaled so that mean and variance are kept (PyTorch's formula)."""
    return _inplace_result(input, _alpha_dropout(input, p, training, False, "alpha_dropout"), inplace)


def feature_alpha_dropout(input, p: float = 0.5, training: bool = False, inplace: bool = False):
    """``alpha_dropout`` of whole channels (dim 1) of ``(N, C, ...)``."""
    return _inplace_result(input, _alpha_dropout(input, p, training, True, "feature_alpha_dropout"), inplace)


def upsample_nearest(input, size=None, scale_factor=None):
    """Deprecated: ``interpolate(input, size, scale_factor, mode='nearest')`` (warns, as PyTorch does)."""
    warnings.warn("`nn.functional.upsample_nearest` is deprecated. Use `nn.functional.interpolate` instead.",
                  stacklevel=2)
    return interpolate(input, size, scale_factor, mode="nearest")


def upsample_bilinear(input, size=None, scale_factor=None):
    """Deprecated: ``interpolate(input, size, scale_factor, mode='bilinear', align_corners=True)``."""
    warnings.warn("`nn.functional.upsample_bilinear` is deprecated. Use `nn.functional.interpolate` instead.",
                  stacklevel=2)
    return interpolate(input, size, scale_factor, mode="bilinear", align_corners=True)


def native_channel_shuffle(input, groups: int):
    """``channel_shuffle`` (PyTorch's name for its kernel without the fallback)."""
    return channel_shuffle(input, groups)


def conv_tbc(input, weight, bias, pad: int = 0):
    """1-D convolution on time-batch-channel input ``(T, N, C_in)`` with weight ``(K, C_in, C_out)``
    and bias ``(C_out,)``, zero-padded by ``pad`` on both ends: returns ``(T', N, C_out)``."""
    if input.ndim != 3 or weight.ndim != 3 or bias is None or bias.ndim != 1:
        raise RuntimeError(f"conv_tbc: expected input (T, N, C_in), weight (K, C_in, C_out) and bias (C_out,), got "
                           f"{_shape(input)}, {_shape(weight)} and {None if bias is None else _shape(bias)}")
    if input.shape[2] != weight.shape[1] or weight.shape[2] != bias.shape[0]:
        raise RuntimeError(f"conv_tbc: input channels {input.shape[2]} / weight {_shape(weight)} / bias "
                           f"{_shape(bias)} do not match")
    y = conv1d(input.permute(1, 2, 0), weight.permute(2, 1, 0), bias, padding=pad)
    return y.permute(2, 0, 1)


def multilabel_margin_loss(input, target, size_average=None, reduce=None, reduction: str = "mean"):
    """Multi-class multi-label hinge loss: for each target class ``j`` (the leading entries of
    ``target`` up to the first -1) and each non-target class ``i``, ``max(0, 1 - (x[j] - x[i]))``,
    summed and divided by the number of classes C. ``input`` and ``target`` are ``(C,)`` or ``(N, C)``."""
    reduction = _reduction(reduction, size_average, reduce)
    _check_float(input, "multilabel_margin_loss")
    if input.ndim not in (0, 1, 2) or _shape(target) != _shape(input):
        raise RuntimeError(f"multilabel_margin_loss: expected input (C) or (N, C) and a target of the same shape, "
                           f"got {_shape(input)} and {_shape(target)}")
    x = input.reshape(1, -1) if input.ndim < 2 else input
    t = np.asarray(target._data if isinstance(target, Tensor) else target).reshape(x.shape)
    n, c = x.shape
    if t.dtype.kind not in "iu":
        raise RuntimeError(f"multilabel_margin_loss: expected an integer target, got {t.dtype}")
    if t.size and ((t < -1).any() or (t >= c).any()):
        raise RuntimeError(f"multilabel_margin_loss: target values must be in [-1, {c - 1}], got "
                           f"[{t.min()}, {t.max()}]")
    valid = np.cumprod(t != -1, axis=1).astype(bool)  # the targets are the entries before the first -1
    is_target = np.zeros((n, c), bool)
    rows, cols = np.nonzero(valid)
    is_target[rows, t[rows, cols]] = True
    xt = _ops.gather(x, 1, _const(np.where(valid, t, 0).astype(np.int64)))
    margins = _relu_op(1 - xt.unsqueeze(2) + x.unsqueeze(1))
    mask = _const((valid[:, :, None] & ~is_target[:, None, :]).astype(x.dtype))
    loss = (margins * mask).sum((1, 2)) / c
    if input.ndim < 2:
        loss = loss.reshape(())
    return _reduce(loss, reduction)


def triplet_margin_with_distance_loss(anchor, positive, negative, *, distance_function=None, margin: float = 1.0,
                                      swap: bool = False, reduction: str = "mean"):
    """``max(0, margin + d(a, p) - d(a, n))`` with any distance ``d`` (``pairwise_distance`` by
    default); ``swap`` uses ``min(d(a, n), d(p, n))`` as the negative distance."""
    if margin <= 0:
        raise ValueError(f"triplet_margin_with_distance_loss: expected margin to be greater than 0, got {margin}")
    if not anchor.ndim == positive.ndim == negative.ndim:
        raise RuntimeError(f"The anchor, positive, and negative tensors are expected to have the same number of "
                           f"dimensions, but got: anchor {anchor.ndim}D, positive {positive.ndim}D, and negative "
                           f"{negative.ndim}D inputs")
    dist = distance_function if distance_function is not None else pairwise_distance
    d_pos, d_neg = dist(anchor, positive), dist(anchor, negative)
    if swap:
        d_neg = _ops.minimum(d_neg, dist(positive, negative))
    return _reduce(_ops.clamp_min(margin + d_pos - d_neg, 0), _reduction(reduction))


def _default_align_corners(align_corners, name):
    if align_corners is None:
        warnings.warn(f"Default {name} behavior has changed to align_corners=False since 1.3.0. Please specify "
                      f"align_corners=True if the old behavior is desired.", stacklevel=3)
        return False
    return bool(align_corners)


def affine_grid(theta, size, align_corners=None):
    """The sampling grid of an affine transform: for ``size`` ``(N, C, H, W)`` and ``theta``
    ``(N, 2, 3)`` a grid ``(N, H, W, 2)`` of normalised ``(x, y)`` source coordinates (``(N, C, D,
    H, W)`` and ``(N, 3, 4)`` give ``(N, D, H, W, 3)``), for :func:`grid_sample`.

    >>> grid = F.affine_grid(tapegrad.tensor([[[1.0, 0, 0], [0, 1, 0]]]), (1, 1, 2, 2), align_corners=False)
    >>> grid.shape
    (1, 2, 2, 2)
    """
    align_corners = _default_align_corners(align_corners, "grid_sample and affine_grid")
    if theta.dtype.kind != "f":
        raise ValueError(f"Expected theta to have floating point type, but got {theta.dtype}")
    size = tuple(int(s) for s in size)
    if len(size) not in (4, 5):
        raise NotImplementedError(f"affine_grid only supports 4D and 5D sizes, for 2D and 3D affine transforms, "
                                  f"respectively. Got size {size}.")
    k = len(size) - 2
    if theta.ndim != 3 or tuple(theta.shape[1:]) != (k, k + 1):
        raise ValueError(f"Expected a batch of {k}D affine matrices of shape Nx{k}x{k + 1} for size {size}. "
                         f"Got {_shape(theta)}.")
    if min(size) <= 0:
        raise ValueError(f"Expected non-zero, positive output size. Got {size}")
    if theta.shape[0] != size[0]:
        raise RuntimeError(f"affine_grid: theta has {theta.shape[0]} matrices but size asks for a batch of {size[0]}")
    spatial = size[2:]
    dt = theta._data.dtype

    def axis(n):
        if n == 1:
            return np.zeros(1, dt)
        lin = np.linspace(-1, 1, n, dtype=dt)
        return lin if align_corners else lin * ((n - 1) / n)

    coords = np.meshgrid(*[axis(n) for n in spatial], indexing="ij")  # (D,) H, W order
    base = np.stack(list(coords[::-1]) + [np.ones(spatial, dt)], -1).reshape(1, -1, k + 1)  # x, y, (z,) 1
    grid = _ops.matmul(_const(base), theta.transpose(1, 2))
    return grid.reshape((size[0],) + spatial + (k,))


def _grid_reflect(x, twice_low, twice_high):
    """PyTorch's reflect_coordinates, in ops so that the gradient flips sign on reflected stretches."""
    if twice_low == twice_high:
        return x * 0
    low = twice_low / 2
    span = (twice_high - twice_low) / 2
    x = _ops.abs(x - low)
    flips = np.floor(x._data / span)
    extra = x - _const(flips * span, x._data.dtype)
    return _ops.where(_const(flips % 2 == 0), extra + low, (span + low) - extra)


def _grid_coordinates(x, size, padding_mode, align_corners):
    """Map unnormalised coordinates into range per ``padding_mode`` (zeros: unchanged)."""
    if padding_mode == "border":
        return _grid_clip(x, size)
    if padding_mode == "reflection":
        x = _grid_reflect(x, 0, 2 * (size - 1)) if align_corners else _grid_reflect(x, -1, 2 * size - 1)
        return _grid_clip(x, size)
    return x


def _grid_clip(x, size):
    """``x`` clamped to [0, size - 1], with PyTorch's grid_sampler gradient: 1 strictly inside, 0 on
    the limits as beyond them (``clamp``'s passes there; a grid point landing exactly on an edge
    pixel, as align_corners=True puts the outer ones, gets 0 from PyTorch)."""
    inside = (x._data > 0) & (x._data < size - 1)
    return _ops.where(_const(inside), x, _const(np.clip(x._data, 0, size - 1), x._data.dtype))


def _grid_unnormalize(g, size, align_corners):
    return (g + 1) * ((size - 1) / 2) if align_corners else ((g + 1) * size - 1) / 2


def _gather_points(flat, idx, valid):
    """``flat`` (N, C, P_in) read at integer positions ``idx`` (N, P_out), 0 where not ``valid``."""
    n, c = flat.shape[:2]
    safe = np.where(valid, idx, 0).astype(np.int64)
    vals = _ops.gather(flat, 2, _const(np.broadcast_to(safe[:, None, :], (n, c, safe.shape[1])).copy()))
    return vals * _const(valid[:, None, :].astype(flat._data.dtype))


def _cubic_weights(t):
    """The 4 cubic-convolution weights (A = -0.75, as PyTorch) at fractional offset ``t``."""
    a = -0.75

    def near(x):
        return ((a + 2) * x - (a + 3)) * x * x + 1

    def far(x):
        return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a
    return far(t + 1), near(t), near(1 - t), far(2 - t)


def grid_sample(input, grid, mode: str = "bilinear", padding_mode: str = "zeros", align_corners=None):
    """Sample ``input`` ``(N, C, H, W)`` at the normalised ``(x, y)`` locations of ``grid``
    ``(N, H_out, W_out, 2)`` (-1 and 1 are the outer pixels' centres with ``align_corners=True``,
    their outer edges otherwise); ``(N, C, D, H, W)`` inputs take grids ``(N, D_o, H_o, W_o, 3)``.
    ``mode`` bilinear (trilinear in 3-D), nearest or bicubic (2-D); ``padding_mode`` zeros, border
    or reflection. Gradients flow to ``input`` and (bilinear, bicubic) to ``grid``; with nearest,
    ``grid`` gets a zero gradient (the result is in its graph, as in PyTorch)."""
    if mode not in ("bilinear", "nearest", "bicubic"):
        raise ValueError(f"nn.functional.grid_sample(): expected mode to be 'bilinear', 'nearest' or 'bicubic', but "
                         f"got: '{mode}'")
    if padding_mode not in ("zeros", "border", "reflection"):
        raise ValueError(f"nn.functional.grid_sample(): expected padding_mode to be 'zeros', 'border', or "
                         f"'reflection', but got: '{padding_mode}'")
    align_corners = _default_align_corners(align_corners, "grid_sample and affine_grid")
    if input.ndim not in (4, 5) or grid.ndim != input.ndim or grid.shape[-1] != input.ndim - 2 \
            or grid.shape[0] != input.shape[0]:
        raise RuntimeError(f"grid_sample: expected input (N, C, H, W) with grid (N, H_out, W_out, 2), or input "
                           f"(N, C, D, H, W) with grid (N, D_out, H_out, W_out, 3), got {_shape(input)} and "
                           f"{_shape(grid)}")
    if mode == "bicubic" and input.ndim != 4:
        raise RuntimeError("grid_sample: bicubic interpolation only supports 4D input")
    _check_float(input, "grid_sample")
    _same_float(input, grid)
    n, c = input.shape[:2]
    spatial = tuple(input.shape[2:])
    out_sp = tuple(grid.shape[1:-1])
    k = len(spatial)
    flat = input.reshape(n, c, -1)
    strides = [int(np.prod(spatial[d + 1:])) for d in range(k)]
    g = grid.reshape(n, -1, k)
    # grid's last dim is (x, y[, z]): x indexes the last spatial dim
    raw = [_grid_unnormalize(g[..., k - 1 - d], spatial[d], align_corners) for d in range(k)]
    if mode == "bicubic":
        out = _bicubic(flat, raw, spatial, padding_mode, align_corners)
    else:
        pos = [_grid_coordinates(r, s, padding_mode, align_corners) for r, s in zip(raw, spatial)]
        if mode == "nearest":
            idx = [np.rint(p._data) for p in pos]  # round half to even, as PyTorch's nearbyint
            valid = np.logical_and.reduce([(i >= 0) & (i < s) for i, s in zip(idx, spatial)])
            flat_idx = sum(np.where(valid, i, 0).astype(np.int64) * st for i, st in zip(idx, strides))
            out = _gather_points(flat, flat_idx, valid)
            if g.requires_grad:  # in grid's graph too, with a zero gradient, as PyTorch's nearest sampling
                out = _ops.where(_const(np.ones((1, 1, 1), bool)), out, g[..., 0].unsqueeze(1))
        else:
            lo = [np.floor(p._data) for p in pos]
            frac = [p - _const(f, p._data.dtype) for p, f in zip(pos, lo)]
            out = None
            for corner in range(2 ** k):
                bits = [(corner >> (k - 1 - d)) & 1 for d in range(k)]
                idx = [f + b for f, b in zip(lo, bits)]
                valid = np.logical_and.reduce([(i >= 0) & (i < s) for i, s in zip(idx, spatial)])
                flat_idx = sum(np.where(valid, i, 0).astype(np.int64) * st for i, st in zip(idx, strides))
                w = None
                for fr, b in zip(frac, bits):
                    wd = fr if b else 1 - fr
                    w = wd if w is None else w * wd
                term = _gather_points(flat, flat_idx, valid) * w.unsqueeze(1)
                out = term if out is None else out + term
    return out.reshape((n, c) + out_sp)


def _bicubic(flat, raw, spatial, padding_mode, align_corners):
    (iy, ix), (h, w) = raw, spatial
    y0, x0 = np.floor(iy._data), np.floor(ix._data)
    wy = _cubic_weights(iy - _const(y0, y0.dtype))
    wx = _cubic_weights(ix - _const(x0, x0.dtype))

    def tap(coord, size):
        # each tap's coordinate is padded on its own (PyTorch's get_value_bounded); no gradient flows
        # through an integer tap position
        c = _grid_coordinates(_const(coord), size, padding_mode, align_corners)._data
        return c.astype(np.int64) if padding_mode != "zeros" else c
    out = None
    for i in range(4):
        yi = tap(y0 - 1 + i, h)
        row = None
        for j in range(4):
            xj = tap(x0 - 1 + j, w)
            valid = (yi >= 0) & (yi < h) & (xj >= 0) & (xj < w)
            v = _gather_points(flat, (np.where(valid, yi, 0) * w + np.where(valid, xj, 0)).astype(np.int64), valid)
            term = v * wx[j].unsqueeze(1)
            row = term if row is None else row + term
        term = row * wy[i].unsqueeze(1)
        out = term if out is None else out + term
    return out


def _fractional_starts(sample, n_in, n_out, k):
    """PyTorch's pseudo-random window starts for fractional max pooling (generate_intervals)."""
    if n_out == 1:
        return np.full(sample.shape + (1,), n_in - k, np.int64)
    dt = sample.dtype
    alpha = dt.type(n_in - k) / dt.type(n_out - 1)
    i = np.arange(n_out - 1, dtype=dt)
    starts = ((i + sample[..., None]) * alpha).astype(np.int64) - (sample[..., None] * alpha).astype(np.int64)
    return np.concatenate([starts, np.full(sample.shape + (1,), n_in - k, np.int64)], -1)


def _per_dim(v, n):
    return (v,) * n if isinstance(v, numbers.Real) else tuple(v)


def _fractional_max_pool(input, kernel_size, output_size, output_ratio, return_indices, _random_samples, name,
                         sample_of_dim):
    """Fractional max pooling over the last ``len(sample_of_dim)`` dims; ``sample_of_dim[i]`` says which
    of a plane's random numbers places the windows along dim i (PyTorch's order, which differs in 2-D)."""
    nd = len(sample_of_dim)
    if output_size is None and output_ratio is None:
        raise ValueError(f"{name} requires specifying either an output_size or an output_ratio")
    if input.ndim not in (nd + 1, nd + 2):
        raise RuntimeError(f"{name}: expected a {nd + 1}-D or {nd + 2}-D input, got shape {_shape(input)}")
    x = input.unsqueeze(0) if input.ndim == nd + 1 else input
    n, c, *size = x.shape
    k = _per_dim(kernel_size, nd)
    if output_size is None:
        ratio = _per_dim(output_ratio, nd)
        if not all(0 < r < 1 for r in ratio):
            raise ValueError(f"{name} requires output_ratio to either be a single Int or tuple of Ints. "
                             f"in (0, 1), got {output_ratio}")
        output_size = tuple(int(s * r) for s, r in zip(size, ratio))
    out = _per_dim(output_size, nd)
    if any(o + kk - 1 > sz for o, kk, sz in zip(out, k, size)):
        raise RuntimeError(f"{name}(): pool size {k} too large relative to input size {tuple(size)} for output "
                           f"size {out}")
    if _random_samples is None:
        samples = _random.rng().random((n, c, nd)).astype(x._data.dtype)
    else:
        samples = np.asarray(_random_samples._data if isinstance(_random_samples, Tensor) else _random_samples)
        if samples.shape != (n, c, nd):
            raise RuntimeError(f"{name}: expected _random_samples of shape {(n, c, nd)}, got {samples.shape}")
    # each window as flat indices into a plane: shape (N, C, *out, *k), one term per dim
    win, stride = 0, 1
    for i in reversed(range(nd)):
        starts = _fractional_starts(samples[..., sample_of_dim[i]], size[i], out[i], k[i])  # (N, C, out[i])
        at = [1] * nd
        at[i] = -1
        win = win + (starts.reshape((n, c) + tuple(at) + (1,) * nd)
                     + np.arange(k[i]).reshape((1, 1) + (1,) * nd + tuple(at))) * stride
        stride *= size[i]
    win = win.reshape((n, c) + out + (-1,))
    vals = np.take_along_axis(x._data.reshape(n, c, -1), win.reshape(n, c, -1), 2).reshape(win.shape)
    best = np.where(np.isnan(vals).any(-1), np.isnan(vals).argmax(-1), vals.argmax(-1))  # NaN wins, as in PyTorch
    idx = np.take_along_axis(win, best[..., None], -1)[..., 0]
    y = _ops.gather(x.reshape(n, c, -1), 2, _const(idx.reshape(n, c, -1))).reshape((n, c) + out)
    ind = _const(idx)
    if input.ndim == nd + 1:
        y, ind = y.squeeze(0), ind.squeeze(0)
    return (y, ind) if return_indices else y


def fractional_max_pool2d(input, kernel_size, output_size=None, output_ratio=None, return_indices: bool = False,
                          _random_samples=None):
    """Max pooling over pseudo-randomly placed ``kernel_size`` windows that shrink ``(N, C, H, W)``
    (or ``(C, H, W)``) to ``output_size`` (or ``output_ratio`` times the input size); Graham's
    fractional max pooling with PyTorch's window placement, one random pair per (batch, channel)."""
    return _fractional_max_pool(input, kernel_size, output_size, output_ratio, return_indices, _random_samples,
                                "fractional_max_pool2d", (1, 0))  # sample 0 places the columns


def fractional_max_pool2d_with_indices(input, kernel_size, output_size=None, output_ratio=None,
                                       return_indices: bool = False, _random_samples=None):
    """``fractional_max_pool2d(..., return_indices=True)``."""
    return fractional_max_pool2d(input, kernel_size, output_size, output_ratio, True, _random_samples)


def fractional_max_pool3d(input, kernel_size, output_size=None, output_ratio=None, return_indices: bool = False,
                          _random_samples=None):
    """``fractional_max_pool2d`` over ``(N, C, T, H, W)`` (or ``(C, T, H, W)``): one random triple per
    (batch, channel) places the windows; indices are flat over ``T * H * W``. PyTorch refuses an
    output whose last window ends exactly at the input's end (``out + k - 1 == size``), which fits;
    tapegrad accepts it, as PyTorch's 2-D version does."""
    return _fractional_max_pool(input, kernel_size, output_size, output_ratio, return_indices, _random_samples,
                                "fractional_max_pool3d", (0, 1, 2))


def fractional_max_pool3d_with_indices(input, kernel_size, output_size=None, output_ratio=None,
                                       return_indices: bool = False, _random_samples=None):
    """``fractional_max_pool3d(..., return_indices=True)``."""
    return fractional_max_pool3d(input, kernel_size, output_size, output_ratio, True, _random_samples)


def ctc_loss(log_probs, targets, input_lengths, target_lengths, blank: int = 0, reduction: str = "mean",
             zero_infinity: bool = False):
    """Connectionist Temporal Classification loss: ``-log`` of the total probability of all
    alignments of ``targets`` to ``log_probs`` ``(T, N, C)`` (or ``(T, C)``), by the forward
    recursion in log space. ``targets`` is ``(N, S)`` padded or the 1-D concatenation of all
    targets; 'mean' divides each loss by its target length, then averages. An impossible alignment
    costs inf (0 with ``zero_infinity``).

    PyTorch's backward returns ``exp(log_probs) - posterior``: the gradient with respect to the
    logits *if* log_probs came from log_softmax, not the gradient of the loss with respect to
    log_probs. tapegrad differentiates the recursion itself, so ``log_probs.grad`` is the true
    derivative (``-posterior``); through ``log_softmax`` both give the same logit gradients."""
    reduction = _reduction(reduction)
    _check_float(log_probs, "ctc_loss", "log_probs")
    unbatched = log_probs.ndim == 2
    lp = log_probs.unsqueeze(1) if unbatched else log_probs
    if lp.ndim != 3:
        raise RuntimeError(f"ctc_loss: expected log_probs (T, N, C) or (T, C), got {_shape(log_probs)}")
    t_max, n, c = lp.shape

    def ints(v, what):
        a = np.asarray(v._data if isinstance(v, Tensor) else v).reshape(-1)
        if a.dtype.kind not in "iu" or a.shape != (n,):
            raise RuntimeError(f"ctc_loss: expected {what} to hold {n} integers, got {a.dtype} of shape {a.shape}")
        return a.astype(np.int64)
    il, tl = ints(input_lengths, "input_lengths"), ints(target_lengths, "target_lengths")
    tg = np.asarray(targets._data if isinstance(targets, Tensor) else targets)
    if tg.dtype.kind not in "iu":
        raise RuntimeError(f"ctc_loss: expected integer targets, got {tg.dtype}")
    if (il < 0).any() or (il > t_max).any():
        raise RuntimeError(f"ctc_loss: input_lengths must be in [0, {t_max}], got {il.tolist()}")
    if (tl < 0).any():
        raise RuntimeError(f"ctc_loss: target_lengths must be non-negative, got {tl.tolist()}")
    if tg.ndim == 2:
        if tg.shape[0] != n or (tl > tg.shape[1]).any():
            raise RuntimeError(f"ctc_loss: targets {tg.shape} do not hold {n} rows of target_lengths {tl.tolist()}")
        padded = tg
    elif tg.ndim == 1:
        if tl.sum() > tg.size:
            raise RuntimeError(f"ctc_loss: the concatenated targets hold {tg.size} labels, target_lengths sum to "
                               f"{tl.sum()}")
        padded = np.zeros((n, max(int(tl.max(initial=0)), 1)), np.int64)
        ends = np.cumsum(tl)
        for b in range(n):
            padded[b, :tl[b]] = tg[ends[b] - tl[b]:ends[b]]
    else:
        raise RuntimeError(f"ctc_loss: expected targets (N, S) or 1-D, got shape {tg.shape}")
    length = int(tl.max(initial=0))
    labels = padded[:, :length].astype(np.int64)
    if labels.size and ((labels < 0).any() or (labels >= c).any()):
        raise RuntimeError(f"ctc_loss: target labels must be in [0, {c - 1}]")
    s = 2 * length + 1
    ext = np.full((n, s), blank, np.int64)
    ext[:, 1::2] = labels
    pos = np.arange(s)
    skip = np.zeros((n, s), bool)
    skip[:, 2:] = (ext[:, 2:] != blank) & (ext[:, 2:] != ext[:, :-2])
    inside = pos[None, :] < (2 * tl[:, None] + 1)
    dt = lp._data.dtype
    neg = np.asarray(-np.finfo(dt).max / 8, dt)  # finite "log 0": keeps every gradient finite
    NEG = _const(neg)
    lpe = _ops.gather(lp, 2, _const(np.broadcast_to(ext, (t_max, n, s)).copy()))  # (T, N, S')
    if t_max:
        start = _ops.where(_const(inside & (pos < 2) & (il[:, None] > 0)), lpe[0], NEG)
    else:
        start = NEG.expand(n, s)
    alpha = _ops.where(_const((pos[None, :] == 0) & (il[:, None] == 0)), _const(np.zeros((), dt)), start)
    keep2 = _const(skip)
    for t in range(1, t_max):
        a1 = _ops.pad(alpha, (1, 0), value=float(neg))[:, :s]
        a2 = _ops.where(keep2, _ops.pad(alpha, (2, 0), value=float(neg))[:, :s], NEG)
        new = _ops.logsumexp(_ops.stack([alpha, a1, a2]), 0) + lpe[t]
        new = _ops.where(_const(inside), new, NEG)
        alpha = _ops.where(_const(np.broadcast_to((t < il)[:, None], (n, s)).copy()), new, alpha)
    end = 2 * tl
    last = _ops.gather(alpha, 1, _const(end[:, None]))
    prev = _ops.where(_const(tl[:, None] > 0), _ops.gather(alpha, 1, _const(np.maximum(end - 1, 0)[:, None])), NEG)
    nll = -_ops.logsumexp(_ops.cat([last, prev], 1), 1)
    impossible = _const(nll._data > -neg / 2)
    nll = _ops.where(impossible, _const(np.asarray(0.0 if zero_infinity else np.inf, dt)), nll)
    if reduction == "mean":
        out = (nll / _const(np.maximum(tl, 1).astype(dt))).mean()
    elif reduction == "sum":
        out = nll.sum()
    else:
        out = nll.squeeze(0) if unbatched else nll
    return out


def _mask_as_float(mask, dtype, name):
    if mask is None:
        return None
    if mask.dtype == np.bool_:
        return _const(np.where(mask._data, -np.inf, 0.0).astype(dtype))
    if mask.dtype.kind != "f":
        raise AssertionError(f"only bool and floating types of {name} are supported, got {mask.dtype}")
    return mask.to(dtype)


def multi_head_attention_forward(query, key, value, embed_dim_to_check: int, num_heads: int, in_proj_weight,
                                 in_proj_bias, bias_k, bias_v, add_zero_attn: bool, dropout_p: float, out_proj_weight,
                                 out_proj_bias, training: bool = True, key_padding_mask=None, need_weights: bool = True,
                                 attn_mask=None, use_separate_proj_weight: bool = False, q_proj_weight=None,
                                 k_proj_weight=None, v_proj_weight=None, static_k=None, static_v=None,
                                 average_attn_weights: bool = True, is_causal: bool = False):
    """``nn.MultiheadAttention``'s computation as a function, with PyTorch's arguments: query
    ``(L, N, E)``, key/value ``(S, N, E_k/E_v)`` (or unbatched ``(L, E)``); packed or separate input
    projections, ``bias_k``/``bias_v`` appended to the keys and values, ``add_zero_attn``, static
    keys/values ``(N * heads, S, E / heads)``; bool masks (True: may not attend) or additive float
    masks. Returns ``(output, weights)``, weights averaged over heads unless told otherwise."""
    unbatched = query.ndim == 2
    if unbatched:
        if key.ndim != 2 or value.ndim != 2:
            raise AssertionError(f"For unbatched (2-D) `query`, expected `key` and `value` to be 2-D but found "
                                 f"{key.ndim}-D and {value.ndim}-D tensors respectively")
        query, key, value = query.unsqueeze(1), key.unsqueeze(1), value.unsqueeze(1)
        if key_padding_mask is not None:
            key_padding_mask = key_padding_mask.unsqueeze(0)
    elif query.ndim != 3 or key.ndim != 3 or value.ndim != 3:
        raise AssertionError(f"query should be unbatched 2D or batched 3D tensor but received {query.ndim}-D query "
                             f"tensor")
    tgt_len, bsz, embed_dim = query.shape
    if embed_dim != embed_dim_to_check:
        raise AssertionError(f"was expecting embedding dimension of {embed_dim_to_check}, but got {embed_dim}")
    if embed_dim % num_heads:
        raise AssertionError(f"embed_dim {embed_dim} not divisible by num_heads {num_heads}")
    if is_causal and attn_mask is None:
        raise RuntimeError("Need attn_mask if specifying the is_causal hint. You may use the Transformer module "
                           "method `generate_square_subsequent_mask` to create this mask.")
    head_dim = embed_dim // num_heads
    dt = query.dtype
    kpm = _mask_as_float(key_padding_mask, dt, "key_padding_mask")
    mask = _mask_as_float(attn_mask, dt, "attn_mask")
    e = embed_dim
    bq, bk, bv = (None, None, None) if in_proj_bias is None else (in_proj_bias[:e], in_proj_bias[e:2 * e],
                                                                 in_proj_bias[2 * e:])
    if use_separate_proj_weight:
        if q_proj_weight is None or k_proj_weight is None or v_proj_weight is None:
            raise AssertionError("use_separate_proj_weight is True but q_proj_weight, k_proj_weight or v_proj_weight "
                                 "is None")
        wq, wk, wv = q_proj_weight, k_proj_weight, v_proj_weight
    else:
        if in_proj_weight is None:
            raise AssertionError("use_separate_proj_weight is False but in_proj_weight is None")
        wq, wk, wv = in_proj_weight[:e], in_proj_weight[e:2 * e], in_proj_weight[2 * e:]
    q, k, v = linear(query, wq, bq), linear(key, wk, bk), linear(value, wv, bv)
    if mask is not None:
        if mask.ndim == 2:
            if tuple(mask.shape) != (tgt_len, key.shape[0]):
                raise RuntimeError(f"The shape of the 2D attn_mask is {_shape(mask)}, but should be "
                                   f"{(tgt_len, key.shape[0])}.")
            mask = mask.unsqueeze(0)
        elif mask.ndim == 3:
            if tuple(mask.shape) != (bsz * num_heads, tgt_len, key.shape[0]):
                raise RuntimeError(f"The shape of the 3D attn_mask is {_shape(mask)}, but should be "
                                   f"{(bsz * num_heads, tgt_len, key.shape[0])}.")
        else:
            raise RuntimeError(f"attn_mask's dimension {mask.ndim} is not supported")
    if bias_k is not None and bias_v is not None:
        if static_k is not None or static_v is not None:
            raise AssertionError("bias cannot be added to static key or value.")
        k = _ops.cat([k, bias_k.reshape(1, 1, -1).expand(1, bsz, e)])
        v = _ops.cat([v, bias_v.reshape(1, 1, -1).expand(1, bsz, e)])
        mask = None if mask is None else _ops.pad(mask, (0, 1))
        kpm = None if kpm is None else _ops.pad(kpm, (0, 1))
    elif (bias_k is None) != (bias_v is None):
        raise AssertionError("bias_k and bias_v must both be given or both be None")
    q = q.reshape(tgt_len, bsz * num_heads, head_dim).transpose(0, 1)
    k = k.reshape(k.shape[0], bsz * num_heads, head_dim).transpose(0, 1) if static_k is None else static_k
    v = v.reshape(v.shape[0], bsz * num_heads, head_dim).transpose(0, 1) if static_v is None else static_v
    for name, st in (("static_k", static_k), ("static_v", static_v)):
        if st is not None and (st.shape[0] != bsz * num_heads or st.shape[2] != head_dim):
            raise AssertionError(f"expecting {name} of shape ({bsz * num_heads}, S, {head_dim}), got {_shape(st)}")
    if add_zero_attn:
        zeros = _const(np.zeros((bsz * num_heads, 1, head_dim), dt))
        k, v = _ops.cat([k, zeros], 1), _ops.cat([v, zeros], 1)
        mask = None if mask is None else _ops.pad(mask, (0, 1))
        kpm = None if kpm is None else _ops.pad(kpm, (0, 1))
    src_len = k.shape[1]
    if kpm is not None:
        if tuple(kpm.shape) != (bsz, src_len):
            raise AssertionError(f"expecting key_padding_mask shape of {(bsz, src_len)}, but got {_shape(kpm)}")
        kpm = kpm.reshape(bsz, 1, 1, src_len).expand(bsz, num_heads, 1, src_len).reshape(bsz * num_heads, 1, src_len)
        mask = kpm if mask is None else mask + kpm
    scores = _ops.bmm(q * (1.0 / float(np.sqrt(head_dim))), k.transpose(1, 2))
    if mask is not None:
        scores = scores + mask
    weights = softmax(scores, -1)
    if training and dropout_p > 0.0:
        weights = dropout(weights, dropout_p)
    out = _ops.bmm(weights, v).transpose(0, 1).reshape(tgt_len * bsz, embed_dim)
    out = linear(out, out_proj_weight, out_proj_bias).reshape(tgt_len, bsz, -1)
    if unbatched:
        out = out.squeeze(1)
    if not need_weights:
        return out, None
    weights = weights.reshape(bsz, num_heads, tgt_len, src_len)
    if average_attn_weights:
        weights = weights.mean(1)
    return out, weights.squeeze(0) if unbatched else weights


def linear_cross_entropy(input, linear_weight, target, *, linear_bias=None, weight=None, reduction: str = "mean",
                         ignore_index=None, label_smoothing: float = 0.0, options=None):
    """``cross_entropy(linear(input, linear_weight, linear_bias), target, ...)``: a classifier head
    and its loss in one call. ``input`` is ``(N, in)`` or ``(in,)``; ``linear_weight`` ``(C, in)``
    or ``(C, d_1, ..., d_K, in)`` for a K-dimensional loss. ``options`` (PyTorch's chunked
    implementation, a memory saving) is accepted and the reference computation used, whose values
    and gradients the chunked one reproduces."""
    if input.ndim < 1 or input.ndim > 2:
        raise RuntimeError(f"expected input with dimensionality 1 or 2, got {input.ndim}")
    if linear_weight.ndim < 2:
        raise RuntimeError(f"expected linear_weight with dimensionality at least 2, got {linear_weight.ndim}")
    batches, in_features = tuple(input.shape[:-1]), input.shape[-1]
    if in_features != linear_weight.shape[-1]:
        raise RuntimeError(f"expected equal input and linear_weight last dimensions (in_features), got "
                           f"{in_features} and {linear_weight.shape[-1]}, respectively")
    classes, out_features = linear_weight.shape[0], tuple(linear_weight.shape[1:-1])
    if linear_bias is not None and tuple(linear_bias.shape) != (classes,) + out_features:
        raise RuntimeError(f"expected linear_bias shape {(classes,) + out_features}, got {_shape(linear_bias)}")
    if out_features and not batches:
        raise RuntimeError(f"K-dimensional loss defined by linear_weight shape {_shape(linear_weight)} requires "
                           f"batched input, (N, {in_features}), got unbatched input with shape {_shape(input)}")
    logits_shape = batches + (classes,) + out_features
    if tuple(target.shape) == logits_shape and ignore_index is not None:
        raise RuntimeError("ignore_index cannot be specified when target contains probabilities")
    rows = int(np.prod((classes,) + out_features))
    w = linear_weight.reshape(rows, in_features)
    b = linear_bias.reshape(rows) if linear_bias is not None else None
    logits = linear(input, w, b).reshape(logits_shape)
    return cross_entropy(logits, target, weight=weight, reduction=reduction,
                         ignore_index=-100 if ignore_index is None else ignore_index, label_smoothing=label_smoothing)


def accuracy(input, target, topk: int = 1):
    """Fraction of rows whose target class is among the ``topk`` highest scores (the
    heritage's ClassAccuracy), as a 0-d float tensor; never recorded on the tape.

    >>> F.accuracy(tapegrad.tensor([[0.1, 2.0], [3.0, 0.0]]), tapegrad.tensor([1, 1]))
    tensor(0.5000)
    """
    x = input._data
    t = target._data if isinstance(target, Tensor) else np.asarray(target)
    if x.ndim != 2 or t.shape != x.shape[:1]:
        raise ValueError(f"accuracy: expected scores (N, C) and class indices (N,), got shapes {x.shape} and "
                         f"{t.shape}")
    if topk == 1:
        hit = x.argmax(1) == t
    else:
        top = np.argpartition(-x, min(topk, x.shape[1]) - 1, axis=1)[:, :topk]
        hit = (top == t[:, None]).any(1)
    dtype = x.dtype if _dtype.kind_of(x.dtype) == "f" else _dtype.default_float()
    return _const(np.asarray(hit.mean() if hit.size else np.nan, dtype=dtype))
