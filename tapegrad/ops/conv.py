"""Convolution and pooling (NCHW), on the native kernels in ``tapegrad._C``.

The primitives are closed under differentiation, so gradients of any order are recorded ops:

* ``conv2d(x, w)``, ``conv_transpose2d(gy, w)`` and ``conv2d_weight(x, gy)`` are the three
  partial derivatives of one trilinear form ``B(x, w, gy) = <conv2d(x, w), gy>`` (with the
  convolution's output cropped to ``gy``'s size, which is how output_padding enters). So each
  one's VJPs are the other two: e.g. ``d<conv_transpose2d(gy, w), g>/dgy = conv2d(g, w)``.
* ``max_pool2d`` records the argmax indices; its VJP scatters by them (``max_pool2d_backward``),
  whose VJP gathers by them (``max_pool2d_gather``), whose VJP scatters again.
* ``avg_pool2d`` is linear: its VJP is its adjoint ``avg_pool2d_backward``, and back again.

The public functions validate their arguments with PyTorch's rules and messages; the
bindings check again, so a bad call raises and never reaches a kernel.
"""
from __future__ import annotations

import numbers

import numpy as np

from .. import _C, _dtype
from .._tape import grad_mode
from .._tape.registry import apply, defop
from .matmul import matmul
from .surface import public
from ._autocast import LOWER, cast_inputs

Tensor = None  # the Tensor class, bound by tensor.py (ops.bind_tensor): the ops sit below it


_c = np.ascontiguousarray


# ---------------------------------------------------------------- the primitives
def _conv2d_fwd(x, w, b=None, *, stride, padding, dilation, groups):
    return _C.conv2d(_c(x), _c(w), None if b is None else _c(b), stride, padding, dilation, groups)


def _conv_transpose2d_fwd(gy, w, *, input_hw, stride, padding, dilation, groups):
    return _C.conv2d_input_grad(_c(gy), _c(w), input_hw, stride, padding, dilation, groups)


def _conv2d_weight_fwd(x, gy, *, kernel_hw, stride, padding, dilation, groups):
    return _C.conv2d_weight_grad(_c(x), _c(gy), kernel_hw, stride, padding, dilation, groups)


def _crop(y, like):
    """``y`` cropped to the spatial size of ``like``: conv2d of a transposed convolution's output
    is larger than its input when output_padding >= stride added rows no output reads."""
    h, w = like.shape[2:]
    return y if y.shape[2:] == (h, w) else y[:, :, :h, :w]


def _conv(x, w, **geo):
    return apply(_conv2d, x, w, **geo)


def _conv_t(gy, w, input_hw, **geo):
    return apply(_conv_transpose2d, gy, w, input_hw=tuple(input_hw), **geo)


def _conv_w(x, gy, kernel_hw, **geo):
    return apply(_conv2d_weight, x, gy, kernel_hw=tuple(kernel_hw), **geo)


_conv2d = defop(
    "conv2d", _conv2d_fwd,
    lambda g, out, x, w, *b, **geo: _conv_t(g, w, x.shape[2:], **geo),
    lambda g, out, x, w, *b, **geo: _conv_w(x, g, w.shape[2:], **geo),
    lambda g, out, x, w, b, **geo: g.sum((0, 2, 3)),
    saves=(0, 1))
_conv_transpose2d = defop(
    "conv_transpose2d", _conv_transpose2d_fwd,
    lambda g, out, gy, w, input_hw, **geo: _crop(_conv(g, w, **geo), gy),
    lambda g, out, gy, w, input_hw, **geo: _conv_w(g, gy, w.shape[2:], **geo),
    saves=(0, 1))
_conv2d_weight = defop(
    "conv2d_weight", _conv2d_weight_fwd,
    lambda g, out, x, gy, kernel_hw, **geo: _conv_t(gy, g, x.shape[2:], **geo),
    lambda g, out, x, gy, kernel_hw, **geo: _crop(_conv(x, g, **geo), gy),
    saves=(0, 1))


def _max_pool2d_fwd(x, *, kernel_size, stride, padding, dilation, ceil_mode):
    return _C.max_pool2d(_c(x), kernel_size, stride, padding, dilation, ceil_mode)


def _scatter_fwd(g, *, indices, input_hw):
    return _C.max_pool2d_backward(_c(g), indices, input_hw)


def _gather_fwd(x, *, indices, input_hw):
    """x (N, C, H, W) read at ``indices`` (N, C, Ho, Wo) into each H*W plane; -1 reads zero."""
    n, c = indices.shape[:2]
    flat = _c(x).reshape(n, c, -1)
    out = np.take_along_axis(flat, np.maximum(indices, 0).reshape(n, c, -1), axis=2).reshape(indices.shape)
    out[indices < 0] = 0
    return out


def _scatter(g, indices, input_hw):
    return apply(_max_pool2d_backward, g, indices=indices, input_hw=tuple(input_hw))


_max_pool2d = defop("max_pool2d", _max_pool2d_fwd,
                    lambda g, out, x, aux, **pool: _scatter(g, aux, x.shape[2:]), saves=(), aux=True)
_max_pool2d_backward = defop(
    "max_pool2d_backward", _scatter_fwd,
    lambda g, out, gy, indices, input_hw: apply(_max_pool2d_gather, g, indices=indices, input_hw=input_hw),
    saves=())
_max_pool2d_gather = defop("max_pool2d_gather", _gather_fwd,
                           lambda g, out, x, indices, input_hw: _scatter(g, indices, input_hw), saves=())


def _avg_pool2d_fwd(x, *, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override):
    return _C.avg_pool2d(_c(x), kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override)


def _avg_pool2d_backward_fwd(gy, *, input_hw, kernel_size, stride, padding, ceil_mode, count_include_pad,
                             divisor_override):
    return _C.avg_pool2d_backward(_c(gy), input_hw, kernel_size, stride, padding, ceil_mode, count_include_pad,
                                  divisor_override)


_avg_pool2d = defop("avg_pool2d", _avg_pool2d_fwd,
                    lambda g, out, x, **pool: apply(_avg_pool2d_backward, g, input_hw=tuple(x.shape[2:]), **pool),
                    saves=())
_avg_pool2d_backward = defop("avg_pool2d_backward", _avg_pool2d_backward_fwd,
                             lambda g, out, gy, input_hw, **pool: apply(_avg_pool2d, g, **pool), saves=())


# ---------------------------------------------------------------- argument checking
def _int(v, what, opname):
    if isinstance(v, bool) or not isinstance(v, (numbers.Integral,)):
        raise TypeError(f"{opname}: {what} must be an int or a pair of ints, got {v!r}")
    return int(v)


def _pair(v, what, opname) -> tuple[int, int]:
    """An int or a 1- or 2-sequence of ints as a pair, as PyTorch's _pair and expand_param_if_needed."""
    if isinstance(v, (tuple, list)):
        if len(v) == 1:
            v = (v[0], v[0])
        if len(v) != 2:
            raise RuntimeError(f"{opname}: expected {what} to be a single integer value or a list of 2 values "
                               f"to match the convolution dimensions, but got {what}={list(v)}")
        return _int(v[0], what, opname), _int(v[1], what, opname)
    v = _int(v, what, opname)
    return v, v


def _check_positive(p, what, opname):
    if p[0] <= 0 or p[1] <= 0:
        raise RuntimeError(f"{opname}: {what} must be positive, got {p}")


def _check_nonnegative(p, what, opname):
    if p[0] < 0 or p[1] < 0:
        raise RuntimeError(f"{opname}: {what} must be non-negative, got {p}")


def _float_input(x, opname, layout="(N, C, H, W)"):
    """``x`` as a 4-D float tensor, and whether it was unbatched (C, H, W)."""
    if not isinstance(x, Tensor):
        raise TypeError(f"{opname}: expected input to be a Tensor, got {type(x).__name__}")
    if x.ndim not in (3, 4):
        raise RuntimeError(f"{opname}: expected input with 3 dims (C, H, W) or 4 dims {layout}, "
                           f"got shape {tuple(x.shape)}")
    if x.dtype not in (np.float32, np.float64) and not _dtype.is_16bit_float(x.dtype):  # 16-bit: via float32
        raise RuntimeError(f"{opname}: only float32, float64, float16 and bfloat16 inputs are supported, got "
                           f"{_dtype.name(x.dtype)}")
    if x.ndim == 3:
        return x.reshape((1,) + tuple(x.shape)), True
    return x, False


def _same_dtype(x, other, what, opname):
    if other.dtype != x.dtype:
        raise RuntimeError(f"{opname}: input type ({_dtype.name(x.dtype)}) and {what} type "
                           f"({_dtype.name(other.dtype)}) should be the same")


def _check_weight(x, weight, opname, layout):
    if not isinstance(weight, Tensor):
        raise TypeError(f"{opname}: expected weight to be a Tensor, got {type(weight).__name__}")
    if weight.ndim != 4:
        raise RuntimeError(f"{opname}: expected weight with 4 dims {layout}, got shape {tuple(weight.shape)}")
    _same_dtype(x, weight, "weight", opname)


def _check_bias(x, bias, out_channels, opname):
    if bias is not None:
        if not isinstance(bias, Tensor):
            raise TypeError(f"{opname}: expected bias to be a Tensor or None, got {type(bias).__name__}")
        _same_dtype(x, bias, "bias", opname)
        if bias.shape != (out_channels,):
            raise RuntimeError(f"{opname}: expected bias of shape ({out_channels},) (one per output channel), "
                               f"got {tuple(bias.shape)}")


def _check_groups(groups, opname):
    if isinstance(groups, bool) or not isinstance(groups, numbers.Integral) or groups < 1:
        raise RuntimeError(f"{opname}: groups must be a positive integer, got {groups!r}")
    return int(groups)


def _conv_out(n, k, s, p, d):
    return (n + 2 * p - d * (k - 1) - 1) // s + 1


# ---------------------------------------------------------------- convolution
@public
@cast_inputs(LOWER)
def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """2-D cross-correlation of ``input`` (N, C, H, W) or (C, H, W) with ``weight``
    (out_channels, C/groups, kH, kW), plus ``bias`` (out_channels,); PyTorch's semantics.

    ``padding`` is an int, a pair, ``'valid'`` (none) or ``'same'`` (output size = input size,
    stride 1 only; odd total padding puts the extra row/column at the bottom/right).

    >>> x = tapegrad.randn(1, 3, 8, 8, requires_grad=True)
    >>> w = tapegrad.randn(4, 3, 3, 3, requires_grad=True)
    >>> conv2d(x, w, padding=1).shape
    (1, 4, 8, 8)
    """
    op = "conv2d"
    x, unbatched = _float_input(input, op)
    groups = _check_groups(groups, op)
    _check_weight(x, weight, op, "(out_channels, in_channels/groups, kH, kW)")
    _check_bias(x, bias, weight.shape[0], op)
    stride, dilation = _pair(stride, "stride", op), _pair(dilation, "dilation", op)
    _check_positive(stride, "stride", op)
    _check_positive(dilation, "dilation", op)
    N, C, H, W = x.shape
    O, Cg, kh, kw = weight.shape
    if O % groups:
        raise RuntimeError(f"{op}: out_channels ({O}, weight.shape[0]) must be divisible by groups ({groups})")
    if Cg * groups != C:
        raise RuntimeError(f"{op}: given groups={groups}, weight of size {tuple(weight.shape)}, expected input "
                           f"{tuple(input.shape)} to have {Cg * groups} channels, but got {C} channels instead")
    if min(kh, kw) < 1:
        raise RuntimeError(f"{op}: kernel size must be positive, got weight of shape {tuple(weight.shape)}")
    crop = (0, 0)  # leading rows/columns to drop: asymmetric 'same' padding
    if isinstance(padding, str):
        if padding == "valid":
            padding = (0, 0)
        elif padding == "same":
            if stride != (1, 1):
                raise RuntimeError(f"{op}: padding='same' is not supported for strided convolutions")
            total = (dilation[0] * (kh - 1), dilation[1] * (kw - 1))
            # symmetric padding of the larger half, then drop the extra leading row/column
            padding = ((total[0] + 1) // 2, (total[1] + 1) // 2)
            crop = (total[0] % 2, total[1] % 2)
        else:
            raise RuntimeError(f"{op}: invalid padding string {padding!r}, should be one of 'valid', 'same'")
    else:
        padding = _pair(padding, "padding", op)
        _check_nonnegative(padding, "padding", op)
    ho, wo = _conv_out(H, kh, stride[0], padding[0], dilation[0]), _conv_out(W, kw, stride[1], padding[1], dilation[1])
    if ho < 1 or wo < 1:
        raise RuntimeError(
            f"{op}: calculated padded input size per channel: ({H + 2 * padding[0]} x {W + 2 * padding[1]}). "
            f"Kernel size: ({dilation[0] * (kh - 1) + 1} x {dilation[1] * (kw - 1) + 1}) (dilated). "
            f"Kernel size can't be greater than actual input size")
    geo = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    y = apply(_conv2d, x, weight, **geo) if bias is None else apply(_conv2d, x, weight, bias, **geo)
    if crop != (0, 0):
        y = y[:, :, crop[0]:, crop[1]:]
    return y.reshape(tuple(y.shape[1:])) if unbatched else y


@public
@cast_inputs(LOWER)
def conv_transpose2d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
    """2-D transposed convolution (the adjoint of ``conv2d`` in its input), PyTorch's semantics:
    ``weight`` is (in_channels, out_channels/groups, kH, kW) and the output size is
    ``(H - 1) * stride - 2 * padding + dilation * (kH - 1) + output_padding + 1``.

    >>> x = tapegrad.randn(1, 4, 5, 5)
    >>> w = tapegrad.randn(4, 2, 3, 3)
    >>> conv_transpose2d(x, w, stride=2, padding=1, output_padding=1).shape
    (1, 2, 10, 10)
    """
    op = "conv_transpose2d"
    x, unbatched = _float_input(input, op)
    groups = _check_groups(groups, op)
    if isinstance(padding, str):
        raise RuntimeError(f"{op}: padding must be an int or a pair of ints, got {padding!r}")
    _check_weight(x, weight, op, "(in_channels, out_channels/groups, kH, kW)")
    stride, padding = _pair(stride, "stride", op), _pair(padding, "padding", op)
    output_padding, dilation = _pair(output_padding, "output_padding", op), _pair(dilation, "dilation", op)
    _check_positive(stride, "stride", op)
    _check_positive(dilation, "dilation", op)
    _check_nonnegative(padding, "padding", op)
    _check_nonnegative(output_padding, "output_padding", op)
    N, C, H, W = x.shape
    Cin, Og, kh, kw = weight.shape
    if Cin != C:
        raise RuntimeError(f"{op}: given transposed=1, weight of size {tuple(weight.shape)}, expected input "
                           f"{tuple(input.shape)} to have {Cin} channels, but got {C} channels instead")
    if C % groups:
        raise RuntimeError(f"{op}: in_channels ({C}) must be divisible by groups ({groups})")
    if min(kh, kw, Og) < 1:
        raise RuntimeError(f"{op}: weight of shape {tuple(weight.shape)} is empty")
    for i in range(2):
        if output_padding[i] >= stride[i] and output_padding[i] >= dilation[i]:
            raise RuntimeError(f"{op}: output padding must be smaller than either stride or dilation, but got "
                               f"output_padding={output_padding}, stride={stride}, dilation={dilation}")
    out_hw = tuple((n - 1) * s - 2 * p + d * (k - 1) + op_ + 1
                   for n, k, s, p, d, op_ in zip((H, W), (kh, kw), stride, padding, dilation, output_padding))
    if min(out_hw) < 1:
        raise RuntimeError(f"{op}: given input size ({H} x {W}), calculated output size "
                           f"({out_hw[0]} x {out_hw[1]}) is too small")
    _check_bias(x, bias, Og * groups, op)
    y = _conv_t(x, weight, out_hw, stride=stride, padding=padding, dilation=dilation, groups=groups)
    if bias is not None:
        y = y + bias.reshape(1, -1, 1, 1)
    return y.reshape(tuple(y.shape[1:])) if unbatched else y


# ---------------------------------------------------------------- pooling
def _pool_out_size(hw, kernel, stride, padding, dilation, ceil_mode):
    out = []
    for n, k, s, p, d in zip(hw, kernel, stride, padding, dilation):
        num = n + 2 * p - d * (k - 1) - 1 + (s - 1 if ceil_mode else 0)
        o = num // s + 1
        if ceil_mode and (o - 1) * s >= n + p:  # the last window must start inside the input
            o -= 1
        out.append(o)
    return out


def _max_pool2d_int_fwd(a, kernel, stride, padding, dilation, ceil_mode):
    """max_pool2d of an integer array (N, C, H, W), exactly (no float round trip): values and flat
    indices, the first maximum among the in-bounds elements of each window, as PyTorch's CPU kernel."""
    N, C, H, W = a.shape
    oh, ow = _pool_out_size((H, W), kernel, stride, padding, dilation, ceil_mode)
    # each window's rows and columns in input coordinates, (o, k); out of range: padding
    rows = np.arange(oh)[:, None] * stride[0] - padding[0] + np.arange(kernel[0]) * dilation[0]
    cols = np.arange(ow)[:, None] * stride[1] - padding[1] + np.arange(kernel[1]) * dilation[1]
    valid = ((rows >= 0) & (rows < H))[:, :, None, None] & ((cols >= 0) & (cols < W))[None, None]  # (oh, kh, ow, kw)
    win = a[:, :, np.clip(rows, 0, H - 1)[:, :, None, None], np.clip(cols, 0, W - 1)[None, None]]
    win = np.where(valid, win, np.iinfo(a.dtype).min)  # (N, C, oh, kh, ow, kw)
    win, valid = win.transpose(0, 1, 2, 4, 3, 5), valid.transpose(0, 2, 1, 3)
    win = win.reshape(N, C, oh, ow, -1)
    valid = valid.reshape(oh, ow, -1)
    top = win.max(-1, keepdims=True)
    best = np.argmax((win == top) & valid, -1)  # the first in-bounds maximum (padding never wins a tie)
    r = rows[np.arange(oh)[:, None], best // kernel[1]]  # the input row and column of each maximum
    c = cols[np.arange(ow), best % kernel[1]]
    # a window that dilation carries over the whole input holds no element: PyTorch reports the
    # lowest value at its first non-negative row and column
    r0, c0 = (np.where(v[:, 0] < 0, v[:, 0] - v[:, 0] // dl * dl, v[:, 0]) for v, dl in ((rows, dilation[0]),
                                                                                       (cols, dilation[1])))
    idx = np.where(valid.any(-1), r * W + c, r0[:, None] * W + c0[None, :])
    return top[..., 0], idx.astype(np.int64)


def _pool_args(x, kernel_size, stride, padding, dilation, ceil_mode, op):
    kernel = _pair(kernel_size, "kernel_size", op)
    stride = kernel if stride is None or (isinstance(stride, (tuple, list)) and len(stride) == 0) \
        else _pair(stride, "stride", op)
    padding, dilation = _pair(padding, "padding", op), _pair(dilation, "dilation", op)
    _check_positive(kernel, "kernel_size", op)
    _check_positive(stride, "stride", op)
    _check_positive(dilation, "dilation", op)
    _check_nonnegative(padding, "padding", op)
    if padding[0] > kernel[0] // 2 or padding[1] > kernel[1] // 2:
        raise RuntimeError(f"{op}: pad should be smaller than or equal to half of kernel size, but got "
                           f"padding={padding}, kernel_size={kernel}")
    out = _pool_out_size(x.shape[2:], kernel, stride, padding, dilation, ceil_mode)
    if min(out) < 1:
        C, H, W = x.shape[1:]
        raise RuntimeError(f"{op}: given input size: ({C}x{H}x{W}). Calculated output size: "
                           f"({C}x{out[0]}x{out[1]}). Output size is too small")
    return kernel, stride, padding, dilation


@public
def max_pool2d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False):
    """2-D max pooling over (N, C, H, W) or (C, H, W); PyTorch's semantics (padding counts as
    -inf, the first maximum wins ties). With ``return_indices`` also returns the int64 flat
    index of each maximum in its H*W plane (what ``max_unpool2d`` takes).

    >>> x = tapegrad.randn(1, 1, 4, 4, requires_grad=True)
    >>> max_pool2d(x, 2).shape
    (1, 1, 2, 2)
    """
    op = "max_pool2d"
    if isinstance(input, Tensor) and input.dtype.kind in "iu":  # integers: forward only, as PyTorch
        return _max_pool2d_int(input, kernel_size, stride, padding, dilation, ceil_mode, return_indices)
    x, unbatched = _float_input(input, op)
    kernel, stride, padding, dilation = _pool_args(x, kernel_size, stride, padding, dilation, ceil_mode, op)
    attrs = dict(kernel_size=kernel, stride=stride, padding=padding, dilation=dilation, ceil_mode=bool(ceil_mode))
    if return_indices and not (grad_mode.state.enabled and x._requires_grad):
        y, idx = _max_pool2d_fwd(x._data, **attrs)  # nothing recorded: the indices are not kept by a node
        y, idx = Tensor._wrap(y), Tensor._wrap(idx)
    else:
        y = apply(_max_pool2d, x, **attrs)
        idx = Tensor._wrap(y.grad_fn.aux.copy()) if return_indices else None
    if unbatched:
        y = y.reshape(tuple(y.shape[1:]))
        idx = idx.reshape(tuple(idx.shape[1:])) if idx is not None else None
    return (y, idx) if return_indices else y


def _max_pool2d_int(input, kernel_size, stride, padding, dilation, ceil_mode, return_indices):
    if input.ndim not in (3, 4):
        raise RuntimeError(f"max_pool2d: expected input with 3 dims (C, H, W) or 4 dims (N, C, H, W), "
                           f"got shape {tuple(input.shape)}")
    x = input.reshape((1,) + tuple(input.shape)) if input.ndim == 3 else input
    kernel, stride, padding, dilation = _pool_args(x, kernel_size, stride, padding, dilation, ceil_mode,
                                                   "max_pool2d")
    y, idx = _max_pool2d_int_fwd(x._data, kernel, stride, padding, dilation, ceil_mode)
    if input.ndim == 3:
        y, idx = y[0], idx[0]
    return (Tensor._wrap(y), Tensor._wrap(idx)) if return_indices else Tensor._wrap(y)


@public
def max_unpool2d(input, indices, kernel_size, stride=None, padding=0, output_size=None):
    """Places each value of ``input`` at its ``indices`` (from ``max_pool2d(return_indices=True)``)
    in a zero tensor of the unpooled size; values sharing an index are summed.

    >>> y, i = max_pool2d(tapegrad.randn(1, 1, 4, 4), 2, return_indices=True)
    >>> max_unpool2d(y, i, 2).shape
    (1, 1, 4, 4)
    """
    op = "max_unpool2d"
    x, unbatched = _float_input(input, op)
    if not isinstance(indices, Tensor) or indices.dtype != np.int64:
        raise RuntimeError(f"{op}: expected indices to be an int64 tensor")
    if tuple(indices.shape) != tuple(input.shape):
        raise RuntimeError(f"{op}: expected indices of the input's shape {tuple(input.shape)}, "
                           f"got {tuple(indices.shape)}")
    kernel = _pair(kernel_size, "kernel_size", op)
    stride = kernel if stride is None else _pair(stride, "stride", op)
    padding = _pair(padding, "padding", op)
    default = tuple((n - 1) * s - 2 * p + k for n, s, p, k in zip(x.shape[2:], stride, padding, kernel))
    if output_size is None:
        out_hw = default
    else:
        out_hw = tuple(int(s) for s in tuple(output_size)[-2:])
        for i, (n, d, s) in enumerate(zip(out_hw, default, stride)):
            if not d - s < n < d + s:  # ValueError, as PyTorch's
                raise ValueError(f"{op}: invalid output_size {out_hw} (dim {i} must be between {d - s} and "
                                 f"{d + s}, exclusive)")
    if min(out_hw) < 1:
        raise RuntimeError(f"{op}: calculated output size {out_hw} is too small")
    hw = out_hw[0] * out_hw[1]
    idx = np.ascontiguousarray(indices._data).reshape(x.shape)
    if idx.size and (idx.min() < 0 or idx.max() >= hw):
        bad = idx.min() if idx.min() < 0 else idx.max()
        raise RuntimeError(f"{op}: found an invalid max index {int(bad)} (output volumes are of size "
                           f"{out_hw[0]}x{out_hw[1]})")
    y = _scatter(x, idx, out_hw)
    return y.reshape(tuple(y.shape[1:])) if unbatched else y


@public
def avg_pool2d(input, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
               divisor_override=None):
    """2-D average pooling over (N, C, H, W) or (C, H, W); PyTorch's semantics for
    ``ceil_mode``, ``count_include_pad`` and ``divisor_override``.

    >>> avg_pool2d(tapegrad.ones(1, 1, 4, 4), 2)
    tensor([[[[1., 1.],
              [1., 1.]]]])
    """
    op = "avg_pool2d"
    x, unbatched = _float_input(input, op)
    kernel, stride, padding, _ = _pool_args(x, kernel_size, stride, padding, 1, ceil_mode, op)
    if divisor_override is None:
        divisor_override = 0
    elif isinstance(divisor_override, bool) or not isinstance(divisor_override, numbers.Integral) \
            or divisor_override <= 0:
        raise RuntimeError(f"{op}: divisor must be a positive integer (or None), got {divisor_override!r}")
    y = apply(_avg_pool2d, x, kernel_size=kernel, stride=stride, padding=padding, ceil_mode=bool(ceil_mode),
              count_include_pad=bool(count_include_pad), divisor_override=int(divisor_override))
    return y.reshape(tuple(y.shape[1:])) if unbatched else y


def _adaptive_matrix(n, m, dtype):
    """(m, n) averaging matrix: row i averages [floor(i n / m), ceil((i + 1) n / m))."""
    a = np.zeros((m, n), dtype=dtype)
    for i in range(m):
        lo, hi = (i * n) // m, -((-(i + 1) * n) // m)
        a[i, lo:hi] = 1.0 / (hi - lo)
    return a


@public
def adaptive_avg_pool2d(input, output_size):
    """Average pooling to a fixed ``output_size`` (int, or pair whose None entries keep the
    input's size), PyTorch's windows. Windows are separable, so the general case is
    ``A_h @ x @ A_w^T`` with constant averaging matrices; the divisible case is avg_pool2d.

    >>> adaptive_avg_pool2d(tapegrad.randn(2, 3, 7, 5), (2, 1)).shape
    (2, 3, 2, 1)
    """
    op = "adaptive_avg_pool2d"
    x, unbatched = _float_input(input, op)
    if isinstance(output_size, (tuple, list)):
        if len(output_size) != 2:
            raise RuntimeError(f"{op}: output_size must be an int or a pair, got {output_size!r}")
        size = tuple(x.shape[2 + i] if s is None else _int(s, "output_size", op) for i, s in enumerate(output_size))
    else:
        size = (_int(output_size, "output_size", op),) * 2
    if min(size) < 1:
        raise RuntimeError(f"{op}: output_size must be positive, got {size}")
    H, W = x.shape[2:]
    if H % size[0] == 0 and W % size[1] == 0:
        k = (H // size[0], W // size[1])
        y = apply(_avg_pool2d, x, kernel_size=k, stride=k, padding=(0, 0), ceil_mode=False,
                  count_include_pad=True, divisor_override=0)
    else:
        ah = Tensor._wrap(_adaptive_matrix(H, size[0], x.dtype))
        awt = Tensor._wrap(np.ascontiguousarray(_adaptive_matrix(W, size[1], x.dtype).T))
        y = matmul(matmul(ah, x), awt)
    return y.reshape(tuple(y.shape[1:])) if unbatched else y
