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

import numbers
import warnings

import numpy as np

from .. import _dtype
from .. import random as _random
from ..tensor import Tensor
from ..ops import plain as _ops  # the ops without their out= wrappers
from ..ops.activation import (elu, gelu, hardtanh, leaky_relu, log_softmax, logsigmoid, one_hot,  # noqa: F401
                              relu6, silu, softmax, softplus)
from ..ops.activation import binary_cross_entropy_pointwise as _bce_pointwise
from ..ops.linalg import pdist  # noqa: F401
from ..ops.matmul import cpp_name as _cpp_name, scalar_name as _scalar_name
from ..ops.conv import (adaptive_avg_pool2d, avg_pool2d, conv2d, conv_transpose2d, max_pool2d,  # noqa: F401
                        max_unpool2d)
from ..ops import apply as _apply
from ..ops.activation import _cross_entropy, _layer_norm
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


def hardswish(input):
    """``x * relu6(x + 3) / 6``."""
    return input * relu6(input + 3) / 6


def mish(input):
    """``x * tanh(softplus(x))``."""
    return input * tanh(softplus(input))


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
    return _inplace_result(input, relu6(input + 3) / 6, inplace)


def hardshrink(input, lambd: float = 0.5):
    """``x`` where ``|x| > lambd``, else 0."""
    return _ops.where(_ops.abs(input) > lambd, input, input * 0)


def softshrink(input, lambd: float = 0.5):
    """``x - lambd`` above ``lambd``, ``x + lambd`` below ``-lambd``, else 0."""
    return _ops.where(input > lambd, input - lambd, _ops.where(input < -lambd, input + lambd, input * 0))


def tanhshrink(input):
    """``x - tanh(x)``."""
    return input - tanh(input)


def threshold(input, threshold: float, value: float, inplace: bool = False):
    """``input`` where ``input > threshold``, else ``value``."""
    out = _ops.where(input > threshold, input, _const(value, input.dtype))
    return _inplace_result(input, out, inplace)


def threshold_(input, threshold: float, value: float):
    """``threshold`` written into ``input`` (in place); returns ``input``."""
    return input.copy_(globals()["threshold"](input, threshold, value))


_SELU_ALPHA = 1.6732632423543772848170429916717


_SELU_SCALE = 1.0507009873554804934193349852946


def selu(input, inplace: bool = False):
    """``scale * elu(x, alpha)`` with the self-normalising constants (alpha 1.6733, scale 1.0507)."""
    return _inplace_result(input, elu(input, _SELU_ALPHA) * _SELU_SCALE, inplace)


def celu(input, alpha: float = 1.0, inplace: bool = False):
    """``max(0, x) + min(0, alpha (exp(x / alpha) - 1))``."""
    return _inplace_result(input, elu(input / alpha, 1.0) * alpha, inplace)


@cast_inputs(LOWER)
def prelu(input, weight):
    """``x`` where positive, ``weight * x`` elsewhere; ``weight`` has 1 or C (dim 1) entries."""
    w = weight
    if weight.numel() > 1:
        if input.ndim < 2 or input.shape[1] != weight.numel():
            raise RuntimeError(f"prelu: weight of {weight.numel()} parameters does not match the {input.shape[1] if input.ndim > 1 else 1} "
                               f"channels of input {_shape(input)}")
        w = weight.reshape((-1,) + (1,) * (input.ndim - 2))
    elif input.ndim:
        w = weight.reshape(())
    return _ops.where(input > 0, input, input * w)


def rrelu(input, lower: float = 1.0 / 8, upper: float = 1.0 / 3, training: bool = False, inplace: bool = False):
    """Leaky ReLU with a random slope in [lower, upper] per element when training, their mean otherwise."""
    if training:
        slope = _const(_random.rng().uniform(lower, upper, input.shape).astype(input.dtype))
        out = _ops.where(input >= 0, input, input * slope)
    else:
        out = leaky_relu(input, (lower + upper) / 2)
    return _inplace_result(input, out, inplace)


def glu(input, dim: int = -1):
    """``a * sigmoid(b)`` with ``a, b`` the two halves of ``input`` along ``dim``."""
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
@cast_inputs(LOWER)
@round_once
def linear(input, weight, bias=None):
    """``input @ weight.T + bias``; weight has shape (out_features, in_features)."""
    if input._data.shape[-1] != weight._data.shape[-1]:
        raise RuntimeError(f"linear: input has {input.shape[-1]} features in its last dim (shape "
                           f"{_shape(input)}) but weight expects {weight.shape[-1]} (weight shape {_shape(weight)})")
    if bias is not None and input.dtype != weight.dtype:  # without a bias, matmul's own check words it
        raise RuntimeError(f"mat1 and mat2 must have the same dtype, but got {_scalar_name(input)} and "
                           f"{_scalar_name(weight)}")
    if bias is not None and isinstance(bias, Tensor) and bias.dtype != weight.dtype:
        raise RuntimeError(f"self and mat2 must have the same dtype, but got {_scalar_name(bias)} and "
                           f"{_scalar_name(weight)}")
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
    positions that may be attended to, a float one is added to the scores."""
    L, S_ = query.shape[-2], key.shape[-2]
    scale = 1.0 / float(np.sqrt(query.shape[-1])) if scale is None else scale
    if enable_gqa and key.ndim >= 3 and key.shape[-3] != query.shape[-3]:
        rep = query.shape[-3] // key.shape[-3]
        key = _ops.repeat_interleave(key, rep, -3)
        value = _ops.repeat_interleave(value, rep, -3)
    scores = (query @ key.transpose(-2, -1)) * scale
    if is_causal:
        if attn_mask is not None:
            raise RuntimeError("scaled_dot_product_attention: is_causal and attn_mask cannot both be given")
        causal = np.tril(np.ones((L, S_), dtype=bool))
        scores = scores.masked_fill(_const(~causal), float("-inf"))
    if attn_mask is not None:
        if attn_mask.dtype == np.bool_:
            scores = scores.masked_fill(~attn_mask, float("-inf"))
        else:
            scores = scores + attn_mask
    attn = softmax(scores, -1)
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
    gets no gradient."""
    idx = input._data if isinstance(input, Tensor) else np.asarray(input)
    if idx.dtype.kind not in "iu":
        raise RuntimeError(f"embedding: indices must be an integer tensor, got {idx.dtype}")
    n = weight.shape[0]
    if idx.size and (idx.min() < 0 or idx.max() >= n):
        bad = idx[(idx < 0) | (idx >= n)].flat[0]
        raise IndexError(f"embedding: index {int(bad)} is out of range for an embedding of {n} rows")
    if max_norm is not None:
        _embedding_renorm_(weight, idx, max_norm, norm_type)
    out = weight[_const(idx)]
    if padding_idx is not None:
        pad = padding_idx + n if padding_idx < 0 else padding_idx
        mask = (idx != pad)[..., None]
        if not mask.all():
            out = _ops.where(_const(mask), out, out.detach())
    return out


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
    weight._version[0] += 1


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
    y = conv2d(input.unsqueeze(-2), weight.unsqueeze(-2), bias, (1, stride), (0, one(padding)), (1, dilation),
               groups)
    return y.squeeze(-2)


def _adaptive_index(n, m):
    """(m, k) input indices of PyTorch's adaptive windows, short windows padded by repeating their end."""
    starts = [(i * n) // m for i in range(m)]
    ends = [-((-(i + 1) * n) // m) for i in range(m)]
    k = max(e - s for s, e in zip(starts, ends))
    return np.array([[min(s + j, e - 1) for j in range(k)] for s, e in zip(starts, ends)], dtype=np.int64)


def adaptive_max_pool2d(input, output_size, return_indices: bool = False):
    """Max pooling to a fixed ``output_size`` over PyTorch's adaptive windows (int or pair, None keeps a dim)."""
    x = input
    if x.ndim not in (3, 4):
        raise RuntimeError(f"adaptive_max_pool2d: expected 3-D or 4-D input, got shape {_shape(x)}")
    unbatched = x.ndim == 3
    if unbatched:
        x = x.unsqueeze(0)
    H, W = x.shape[2:]
    size = tuple(output_size) if isinstance(output_size, (tuple, list)) else (output_size,) * 2
    size = tuple(d if s is None else int(s) for s, d in zip(size, (H, W)))
    if min(size) < 1:
        raise RuntimeError(f"adaptive_max_pool2d: output_size must be positive, got {size}")
    ih, iw = _adaptive_index(H, size[0]), _adaptive_index(W, size[1])
    win = x[:, :, _const(ih)][..., _const(iw)]  # (N, C, oh, kh, ow, kw); repeats only re-read a window's end
    y = _ops.amax(win, (3, 5))
    if return_indices:
        a = win._data.transpose(0, 1, 2, 4, 3, 5).reshape(win.shape[:3] + (win.shape[4], -1))
        best = a.argmax(-1)
        kw = iw.shape[1]
        r = ih[np.arange(size[0])[:, None], best // kw]  # the window row and column of each max
        c = iw[np.arange(size[1]), best % kw]
        idx = _const(r * W + c, np.int64)
        return (y.squeeze(0), idx.squeeze(0)) if unbatched else (y, idx)
    return y.squeeze(0) if unbatched else y


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
    return adaptive_avg_pool2d(_as_2d(input, "adaptive_avg_pool1d"), (1, _one(output_size, "adaptive_avg_pool1d"))
                               ).squeeze(-2)


def adaptive_max_pool1d(input, output_size, return_indices: bool = False):
    """Max pooling of ``(N, C, L)`` to length ``output_size`` (with the indices if ``return_indices``)."""
    out = adaptive_max_pool2d(_as_2d(input, "adaptive_max_pool1d"), (1, _one(output_size, "adaptive_max_pool1d")),
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


def batch_norm(input, running_mean, running_var, weight=None, bias=None, training: bool = False,
               momentum: float = 0.1, eps: float = 1e-5):
    """Normalise over every dim but the channel dim 1, with batch statistics when training
    (updating the running ones in place) and the running statistics otherwise."""
    if input.ndim < 2:
        raise ValueError(f"batch_norm: expected at least 2D input (N, C, ...), got shape {_shape(input)}")
    c = input.shape[1]
    dims = (0,) + tuple(range(2, input.ndim))
    bshape = (1, c) + (1,) * (input.ndim - 2)
    if training:
        n = input._data.size // c
        if n <= 1:
            raise ValueError(f"Expected more than 1 value per channel when training, got input size "
                             f"{list(input.shape)}")
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
            running_mean._version[0] += 1
            running_var._version[0] += 1
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


def layer_norm(input, normalized_shape, weight=None, bias=None, eps: float = 1e-5):
    """Normalise over the trailing ``normalized_shape`` dims."""
    ns = (normalized_shape,) if isinstance(normalized_shape, numbers.Integral) else tuple(normalized_shape)
    if _shape(input)[input.ndim - len(ns):] != ns or len(ns) > input.ndim:
        raise RuntimeError(f"layer_norm: given normalized_shape={list(ns)}, expected input with shape "
                           f"[*, {', '.join(map(str, ns))}], but got input of size {list(input.shape)}")
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
    n, c = input.shape[:2]
    if c % num_groups:
        raise RuntimeError(f"group_norm: num_channels {c} must be divisible by num_groups {num_groups}")
    x = input.reshape(n, num_groups, -1)
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
    """``x / sqrt(mean(x^2) + eps)`` over the trailing dims (eps: the dtype's machine epsilon by default)."""
    ns = (normalized_shape,) if isinstance(normalized_shape, numbers.Integral) else tuple(normalized_shape)
    if _shape(input)[input.ndim - len(ns):] != ns or len(ns) > input.ndim:
        raise RuntimeError(f"rms_norm: given normalized_shape={list(ns)}, expected input with shape "
                           f"[*, {', '.join(map(str, ns))}], but got input of size {list(input.shape)}")
    dims = tuple(range(input.ndim - len(ns), input.ndim))
    e = float(np.finfo(input.dtype).eps) if eps is None else eps
    out = input * _ops.rsqrt((input * input).mean(dims, keepdim=True) + e)
    return out if weight is None else out * weight


def instance_norm(input, running_mean=None, running_var=None, weight=None, bias=None, use_input_stats: bool = True,
                  momentum: float = 0.1, eps: float = 1e-5):
    """Normalise each (sample, channel) over its spatial dims."""
    if input.ndim < 3:
        raise ValueError(f"instance_norm: expected input of at least 3 dims (N, C, ...), got {_shape(input)}")
    dims = tuple(range(2, input.ndim))
    cshape = (1, -1) + (1,) * (input.ndim - 2)
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
            running_mean._version[0] += 1
            running_var._version[0] += 1
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
    d = dim % input.ndim
    shape = _shape(input)
    return input.reshape(shape[:d] + tuple(sizes) + shape[d + 1:])


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


def interpolate(input, size=None, scale_factor=None, mode: str = "nearest", align_corners=None,
                recompute_scale_factor=None, antialias: bool = False):
    """Resize the spatial dims of ``(N, C, *spatial)``: 'nearest', 'nearest-exact', or the separable
    'linear'/'bilinear'/'trilinear' (``align_corners`` as in PyTorch).

    >>> F.interpolate(tapegrad.ones(1, 1, 2, 2), scale_factor=2).shape
    (1, 1, 4, 4)
    """
    nsp = input.ndim - 2
    if nsp < 1:
        raise ValueError(f"interpolate: expected an input of shape (N, C, *spatial), got {_shape(input)}")
    linear = {"linear": 1, "bilinear": 2, "trilinear": 3}
    if mode not in ("nearest", "nearest-exact") and mode not in linear:
        raise NotImplementedError(f"interpolate: mode {mode!r} is not supported (nearest, nearest-exact, linear, "
                                  f"bilinear, trilinear)")
    if mode in linear and linear[mode] != nsp:
        raise NotImplementedError(f"interpolate: got {input.ndim}D input, but {mode} mode needs "
                                  f"{linear[mode] + 2}D input")
    if mode not in linear and align_corners is not None:
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
        out = tuple(int(np.floor(n * s)) for n, s in zip(spatial, scales))
        if recompute_scale_factor:
            scales = (None,) * nsp
    if len(out) != nsp:
        raise ValueError(f"interpolate: size {out} does not match the {nsp} spatial dims of input {_shape(input)}")
    if mode in linear and input.dtype.kind in "biu":
        if input.dtype != np.uint8 or mode != "bilinear":  # as PyTorch's CPU kernels
            raise NotImplementedError(f"interpolate: mode {mode!r} is not implemented for {_dtype.name(input.dtype)} "
                                      f"tensors (integers: bilinear on uint8 only)")
        return _bilinear_uint8(input, out, scales, bool(align_corners))
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


def pixel_shuffle(input, upscale_factor: int):
    """(*, C r^2, H, W) -> (*, C, H r, W r)."""
    r = upscale_factor
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
    r = downscale_factor
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
        raise RuntimeError(f"{name}: expected a floating-point {what}, got {_dtype.name(x.dtype)}")


def _check_pointwise(input, target, name, strict=False):
    """Target matches input's shape (PyTorch broadcasts with a warning; non-broadcastable is an error)."""
    _check_float(input, name)
    if not isinstance(target, Tensor):
        raise TypeError(f"{name}: target must be a tapegrad.Tensor, got {type(target).__name__}")
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
    return target if target.dtype == input.dtype else target.to(input.dtype)


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
    return flat.reshape(-1, c), target._data.reshape(-1), _shape(target)


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
    return losses.sum() / _const(w.sum(dtype=flat.dtype))


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
        smooth = smooth.sum() / _const(denom)
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
    return losses.sum() / _const(w.sum(dtype=flat.dtype))


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
    sp = -logsigmoid(input)  # softplus(-x), stable for |x| = 1e4
    if pos_weight is not None:
        sp = sp * ((pos_weight - 1) * y + 1)
    loss = (1 - y) * input + sp
    if weight is not None:
        loss = loss * weight
    return _reduce(loss, reduction)


@cast_inputs(FP32)
def kl_div(input, target, size_average=None, reduce=None, reduction: str = "mean", log_target: bool = False):
    """KL(target || exp(input)) pointwise: ``target * (log(target) - input)`` (0 where target is 0).
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
    else:
        pos = t > 0
        safe_t = _ops.where(pos, t, _const(1.0, t.dtype))
        loss = _ops.where(pos, t * (_ops.log(safe_t) - input), t * 0 - input * 0)
    if reduction == "batchmean":
        return loss.sum() / (input.shape[0] if input.ndim else 1)
    return _reduce(loss, red)


# ---------------------------------------------------------------- regression losses
@cast_inputs(FP32)
def mse_loss(input, target, size_average=None, reduce=None, reduction: str = "mean", weight=None):
    """The mean (``reduction``) squared error ``(input - target)**2``, optionally weighted."""
    reduction = _reduction(reduction, size_average, reduce)
    _check_pointwise(input, target, "mse_loss")
    d = input - _as_float_target(target, input)
    loss = d * d
    return _reduce(loss if weight is None else loss * weight, reduction)


@cast_inputs(FP32)
def l1_loss(input, target, size_average=None, reduce=None, reduction: str = "mean"):
    """The mean (``reduction``) absolute error ``|input - target|``."""
    reduction = _reduction(reduction, size_average, reduce)
    _check_pointwise(input, target, "l1_loss")
    return _reduce(_ops.abs(input - _as_float_target(target, input)), reduction)


@cast_inputs(FP32)
def smooth_l1_loss(input, target, size_average=None, reduce=None, reduction: str = "mean", beta: float = 1.0):
    """``0.5 d^2 / beta`` where ``|d| < beta``, else ``|d| - 0.5 beta`` (L1 when beta is 0)."""
    reduction = _reduction(reduction, size_average, reduce)
    if beta < 0:
        raise RuntimeError(f"smooth_l1_loss: beta must be non-negative, got {beta}")
    _check_pointwise(input, target, "smooth_l1_loss")
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
    d = input - _as_float_target(target, input)
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
        t = target._data
        stirling = np.where(t > 1, t * np.log(np.where(t > 1, t, 1)) - t + 0.5 * np.log(2 * np.pi * np.where(
            t > 1, t, 1)), 0).astype(input.dtype)
        loss = loss + _const(stirling)
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
    """``(x1 * x2).sum(dim) / max(||x1|| ||x2||, eps)``: the cosine of the angle along ``dim``."""
    dot = (x1 * x2).sum(dim)
    n1 = _ops.sqrt((x1 * x1).sum(dim))
    n2 = _ops.sqrt((x2 * x2).sum(dim))
    return dot / _ops.clamp(n1 * n2, min=eps)


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
    return _reduce(-logsigmoid(target * input), reduction)


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
    _check_float(input, "multi_margin_loss")
    x = input.reshape(1, -1) if input.ndim == 1 else input
    if x.ndim != 2:
        raise RuntimeError(f"multi_margin_loss: expected 1-D or 2-D input, got shape {_shape(input)}")
    n, c = x.shape
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
    if input.ndim == 1:
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
    dtype = x.dtype if _dtype.kind_of(x.dtype) == "f" else _dtype.get_default_dtype()
    return _const(np.asarray(hit.mean() if hit.size else np.nan, dtype=dtype))
