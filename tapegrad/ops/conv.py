"""Convolution and pooling over 2 (NCHW) or 3 (NCDHW) spatial dims, on the native kernels in
``tapegrad._C``.

The primitives are closed under differentiation, so gradients of any order are recorded ops
(shown for 2-D; each 3-D op is its namesake's twin on ``_C``'s 3-D kernels):

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
from .._tape.registry import apply, apply_aux, defop
from .matmul import matmul
from .surface import public
from ._autocast import LOWER, cast_inputs

Tensor = None  # the Tensor class, bound by tensor.py (ops.bind_tensor): the ops sit below it


_c = np.ascontiguousarray


# ---------------------------------------------------------------- the primitives
def _crop(y, like):
    """``y`` cropped to the spatial size of ``like``: a convolution of a transposed convolution's
    output is larger than its input when output_padding >= stride added rows no output reads."""
    size = like.shape[2:]
    return y if y.shape[2:] == size else y[(slice(None), slice(None)) + tuple(slice(0, n) for n in size)]


class _ConvOps:
    """The convolution primitives of one spatial rank ``nd``: ``conv{nd}d``, ``conv_transpose{nd}d``
    and ``conv{nd}d_weight``, each one's VJPs the other two (see the module docstring)."""

    def __init__(self, nd):
        conv, input_grad, weight_grad, bias_grad = (getattr(_C, f"conv{nd}d{s}") for s in
                                                    ("", "_input_grad", "_weight_grad", "_bias_grad"))

        def conv_fwd(x, w, b=None, *, stride, padding, dilation, groups):
            return conv(_c(x), _c(w), None if b is None else _c(b), stride, padding, dilation, groups)

        def conv_t_fwd(gy, w, *, input_size, stride, padding, dilation, groups):
            return input_grad(_c(gy), _c(w), input_size, stride, padding, dilation, groups)

        def conv_w_fwd(x, gy, *, kernel_size, stride, padding, dilation, groups):
            return weight_grad(_c(x), _c(gy), kernel_size, stride, padding, dilation, groups)

        self.conv = defop(
            f"conv{nd}d", conv_fwd,
            lambda g, out, x, w, *b, **geo: self.conv_t(g, w, x.shape[2:], **geo),
            lambda g, out, x, w, *b, **geo: self.conv_w(x, g, w.shape[2:], **geo),
            lambda g, out, x, w, b, **geo: apply(self.bias, g),
            saves=(0, 1))
        # the bias gradient, gy summed over the batch and positions in one native pass (numpy's
        # sum over axes (0, 2, 3) took 0.23 ms of a LeNet step); its VJP broadcasts back
        self.bias = defop(
            f"conv{nd}d_bias_grad", lambda gy: bias_grad(_c(gy)),
            lambda g, out, gy: g.reshape((1, -1) + (1,) * nd).expand(*gy.shape),
            saves=())
        self.transpose = defop(
            f"conv_transpose{nd}d", conv_t_fwd,
            lambda g, out, gy, w, input_size, **geo: _crop(self(g, w, **geo), gy),
            lambda g, out, gy, w, input_size, **geo: self.conv_w(g, gy, w.shape[2:], **geo),
            saves=(0, 1))
        self.weight = defop(
            f"conv{nd}d_weight", conv_w_fwd,
            lambda g, out, x, gy, kernel_size, **geo: self.conv_t(gy, g, x.shape[2:], **geo),
            lambda g, out, x, gy, kernel_size, **geo: _crop(self(x, g, **geo), gy),
            saves=(0, 1))

    def __call__(self, x, w, **geo):
        return apply(self.conv, x, w, **geo)

    def conv_t(self, gy, w, input_size, **geo):
        return apply(self.transpose, gy, w, input_size=tuple(input_size), **geo)

    def conv_w(self, x, gy, kernel_size, **geo):
        return apply(self.weight, x, gy, kernel_size=tuple(kernel_size), **geo)


_CONV = {nd: _ConvOps(nd) for nd in (2, 3)}


def _gather_fwd(x, *, indices, input_size):
    """x (N, C, *spatial) read at ``indices`` (N, C, *pooled) into each flattened volume; -1 reads zero."""
    n, c = indices.shape[:2]
    flat = _c(x).reshape(n, c, -1)
    out = np.take_along_axis(flat, np.maximum(indices, 0).reshape(n, c, -1), axis=2).reshape(indices.shape)
    out[indices < 0] = 0
    return out


def _unpool_fwd(x, *, indices, output_size):
    """x (N, C, *pooled) written at ``indices`` into each zero volume of ``output_size``."""
    n, c = x.shape[:2]
    out = np.zeros((n, c, int(np.prod(output_size))), dtype=x.dtype)
    np.put_along_axis(out, indices.reshape(n, c, -1), _c(x).reshape(n, c, -1), axis=2)
    return out.reshape((n, c) + tuple(output_size))


class _PoolOps:
    """The pooling primitives of one spatial rank ``nd``: ``max_pool{nd}d`` with its scatter
    (``max_pool{nd}d_backward``) and gather (``max_pool{nd}d_gather``), ``avg_pool{nd}d`` with its
    adjoint (``avg_pool{nd}d_backward``)."""

    def __init__(self, nd):
        c_max, c_scatter, c_avg, c_avg_t = (getattr(_C, f"{k}_pool{nd}d{s}") for k, s in (
            ("max", ""), ("max", "_backward"), ("avg", ""), ("avg", "_backward")))

        def max_fwd(x, *, kernel_size, stride, padding, dilation, ceil_mode):
            return c_max(_c(x), kernel_size, stride, padding, dilation, ceil_mode)

        def scatter_fwd(g, *, indices, input_size):
            return c_scatter(_c(g), indices, input_size)

        def avg_fwd(x, *, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override):
            return c_avg(_c(x), kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override)

        def avg_t_fwd(gy, *, input_size, kernel_size, stride, padding, ceil_mode, count_include_pad,
                      divisor_override):
            return c_avg_t(_c(gy), input_size, kernel_size, stride, padding, ceil_mode, count_include_pad,
                           divisor_override)

        self.max = defop(f"max_pool{nd}d", max_fwd,
                         lambda g, out, x, aux, **pool: self.scatter(g, aux, x.shape[2:]), saves=(), aux=True)
        self.max_backward = defop(
            f"max_pool{nd}d_backward", scatter_fwd,
            lambda g, out, gy, indices, input_size: apply(self.gather, g, indices=indices, input_size=input_size),
            saves=())
        self.gather = defop(f"max_pool{nd}d_gather", _gather_fwd,
                            lambda g, out, x, indices, input_size: self.scatter(g, indices, input_size), saves=())
        # max_unpool places each value at its index; indices a max_pool shares (overlapping windows)
        # hold the same value, so it is written once, not summed. Its VJP reads the gradient back there.
        self.unpool = defop(f"max_unpool{nd}d", _unpool_fwd,
                            lambda g, out, x, indices, output_size: apply(self.gather, g, indices=indices,
                                                                          input_size=output_size), saves=())
        self.avg = defop(f"avg_pool{nd}d", avg_fwd,
                         lambda g, out, x, **pool: apply(self.avg_backward, g, input_size=tuple(x.shape[2:]), **pool),
                         saves=())
        self.avg_backward = defop(f"avg_pool{nd}d_backward", avg_t_fwd,
                                  lambda g, out, gy, input_size, **pool: apply(self.avg, g, **pool), saves=())

    def scatter(self, g, indices, input_size):
        return apply(self.max_backward, g, indices=indices, input_size=tuple(input_size))


_POOL = {nd: _PoolOps(nd) for nd in (2, 3)}


# 2-D resampling of (N, C, H, W) on _C.resample2d: F.interpolate's bilinear / nearest /
# nearest-exact and adaptive_avg_pool2d ("adaptive_avg"). Each is linear in x, so its VJP is its
# adjoint (resample2d_backward), whose VJP is the forward again. ``scales``: the scale_factor of
# each dim (PyTorch's source positions depend on it), -1.0 for none.
def _resample_fwd(x, *, mode, output_size, align_corners, scales):
    return _C.resample2d(_c(x), mode, output_size, align_corners, *scales)


def _resample_t_fwd(gy, *, mode, input_size, align_corners, scales):
    return _C.resample2d_backward(_c(gy), mode, input_size, align_corners, *scales)


_RESAMPLE = defop("resample2d", _resample_fwd,
                  lambda g, out, x, output_size, **geo: apply(_RESAMPLE_T, g, input_size=tuple(x.shape[2:]), **geo),
                  saves=())
_RESAMPLE_T = defop("resample2d_backward", _resample_t_fwd,
                    lambda g, out, gy, input_size, **geo: apply(_RESAMPLE, g, output_size=tuple(gy.shape[2:]), **geo),
                    saves=())


# adaptive_max_pool2d's windows in one native pass; the indices (aux) route the gradient as
# max_pool2d's do (the same scatter, whose VJP is the gather).
_ADAPTIVE_MAX = defop("adaptive_max_pool2d", lambda x, *, output_size: _C.adaptive_max_pool2d(_c(x), output_size),
                      lambda g, out, x, aux, **kw: _POOL[2].scatter(g, aux, x.shape[2:]), saves=(), aux=True)


def adaptive_max_pool2d_native(x, output_size, return_indices):
    """(values, indices or None) of adaptive_max_pool2d on a 4-D float32/float64 ``x``."""
    y, idx = apply_aux(_ADAPTIVE_MAX, x, {"output_size": tuple(int(n) for n in output_size)}, return_indices)
    return y, (Tensor._wrap(idx) if return_indices else None)


def resample2d(x, mode, output_size, align_corners=False, scales=(None, None)):
    """``x`` (N, C, H, W) float32/float64 resampled natively to ``output_size`` (see _RESAMPLE)."""
    return apply(_RESAMPLE, x, mode=mode, output_size=tuple(int(n) for n in output_size),
                 align_corners=bool(align_corners), scales=tuple(-1.0 if s is None else float(s) for s in scales))


# ---------------------------------------------------------------- argument checking
_SPATIAL = {2: "H, W", 3: "D, H, W"}
_KERNEL = {2: "kH, kW", 3: "kD, kH, kW"}


def _int(v, what, opname, nd=2):
    if type(v) is int:  # the usual case, without the Integral ABC's instance check
        return v
    if isinstance(v, bool) or not isinstance(v, (numbers.Integral,)):
        raise TypeError(f"{opname}: {what} must be an int or a {'pair' if nd == 2 else 'triple'} of ints, got {v!r}")
    return int(v)


def _pair(v, what, opname, nd=2) -> tuple[int, ...]:
    """An int or a 1- or nd-sequence of ints as an nd-tuple, as PyTorch's _pair/_triple and
    expand_param_if_needed."""
    if isinstance(v, (tuple, list)):
        if len(v) == 1:
            v = tuple(v) * nd
        if len(v) != nd:
            raise RuntimeError(f"{opname}: expected {what} to be a single integer value or a list of {nd} values "
                               f"to match the convolution dimensions, but got {what}={list(v)}")
        return tuple(_int(e, what, opname, nd) for e in v)
    return (_int(v, what, opname, nd),) * nd


def _check_positive(p, what, opname):
    if min(p) <= 0:
        raise RuntimeError(f"{opname}: {what} must be positive, got {p}")


def _check_nonnegative(p, what, opname):
    if min(p) < 0:
        raise RuntimeError(f"{opname}: {what} must be non-negative, got {p}")


def _float_input(x, opname, layout=None, nd=2):
    """``x`` as an (nd + 2)-D float tensor, and whether it was unbatched (C, *spatial)."""
    if not isinstance(x, Tensor):
        raise TypeError(f"{opname}: expected input to be a Tensor, got {type(x).__name__}")
    if x.ndim not in (nd + 1, nd + 2):
        layout = layout or f"(N, C, {_SPATIAL[nd]})"
        raise RuntimeError(f"{opname}: expected input with {nd + 1} dims (C, {_SPATIAL[nd]}) or {nd + 2} dims "
                           f"{layout}, got shape {tuple(x.shape)}")
    if x.dtype not in (np.float32, np.float64) and not _dtype.is_16bit_float(x.dtype):  # 16-bit: via float32
        raise RuntimeError(f"{opname}: only float32, float64, float16 and bfloat16 inputs are supported, got "
                           f"{_dtype.name(x.dtype)}")
    if x.ndim == nd + 1:
        return x.reshape((1,) + tuple(x.shape)), True
    return x, False


def _same_dtype(x, other, what, opname):
    if other.dtype != x.dtype:
        raise RuntimeError(f"{opname}: input type ({_dtype.name(x.dtype)}) and {what} type "
                           f"({_dtype.name(other.dtype)}) should be the same")


def _check_weight(x, weight, opname, layout):
    if not isinstance(weight, Tensor):
        raise TypeError(f"{opname}: expected weight to be a Tensor, got {type(weight).__name__}")
    if weight.ndim != x.ndim:
        raise RuntimeError(f"{opname}: expected weight with {x.ndim} dims {layout}, got shape "
                           f"{tuple(weight.shape)} for input of shape {tuple(x.shape)}")
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
def _convolve(nd, input, weight, bias, stride, padding, dilation, groups):
    """conv{nd}d's checks and call (see conv2d)."""
    op = f"conv{nd}d"
    x, unbatched = _float_input(input, op, nd=nd)
    groups = _check_groups(groups, op)
    _check_weight(x, weight, op, f"(out_channels, in_channels/groups, {_KERNEL[nd]})")
    _check_bias(x, bias, weight.shape[0], op)
    stride, dilation = _pair(stride, "stride", op, nd), _pair(dilation, "dilation", op, nd)
    _check_positive(stride, "stride", op)
    _check_positive(dilation, "dilation", op)
    C, size = x.shape[1], tuple(x.shape[2:])
    O, Cg, kernel = weight.shape[0], weight.shape[1], tuple(weight.shape[2:])
    if O % groups:
        raise RuntimeError(f"{op}: out_channels ({O}, weight.shape[0]) must be divisible by groups ({groups})")
    if Cg * groups != C:
        raise RuntimeError(f"{op}: given groups={groups}, weight of size {tuple(weight.shape)}, expected input "
                           f"{tuple(input.shape)} to have {Cg * groups} channels, but got {C} channels instead")
    if min(kernel) < 1:
        raise RuntimeError(f"{op}: kernel size must be positive, got weight of shape {tuple(weight.shape)}")
    crop = (0,) * nd  # leading elements to drop per dim: asymmetric 'same' padding
    if isinstance(padding, str):
        if padding == "valid":
            padding = (0,) * nd
        elif padding == "same":
            if any(s_ != 1 for s_ in stride):
                raise RuntimeError(f"{op}: padding='same' is not supported for strided convolutions")
            total = tuple(d * (k - 1) for d, k in zip(dilation, kernel))
            # symmetric padding of the larger half, then drop the extra leading element
            padding = tuple((t + 1) // 2 for t in total)
            crop = tuple(t % 2 for t in total)
        else:
            raise RuntimeError(f"{op}: invalid padding string {padding!r}, should be one of 'valid', 'same'")
    else:
        padding = _pair(padding, "padding", op, nd)
        _check_nonnegative(padding, "padding", op)
    out = [_conv_out(n, k, s_, p, d) for n, k, s_, p, d in zip(size, kernel, stride, padding, dilation)]
    if min(out) < 1:
        padded = " x ".join(str(n + 2 * p) for n, p in zip(size, padding))
        reach = " x ".join(str(d * (k - 1) + 1) for d, k in zip(dilation, kernel))
        raise RuntimeError(f"{op}: calculated padded input size per channel: ({padded}). Kernel size: ({reach}) "
                           f"(dilated). Kernel size can't be greater than actual input size")
    geo = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    conv = _CONV[nd].conv
    y = apply(conv, x, weight, **geo) if bias is None else apply(conv, x, weight, bias, **geo)
    if any(crop):
        y = y[(slice(None), slice(None)) + tuple(slice(c, None) for c in crop)]
    return y.reshape(tuple(y.shape[1:])) if unbatched else y


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
    return _convolve(2, input, weight, bias, stride, padding, dilation, groups)


@public
def conv3d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """3-D cross-correlation of ``input`` (N, C, D, H, W) or (C, D, H, W) with ``weight``
    (out_channels, C/groups, kD, kH, kW), plus ``bias`` (out_channels,); PyTorch's semantics.

    ``padding`` is an int, a triple, ``'valid'`` (none) or ``'same'`` (output size = input size,
    stride 1 only; odd total padding puts the extra element at the end of its dim).

    >>> x = tapegrad.randn(1, 3, 4, 8, 8, requires_grad=True)
    >>> w = tapegrad.randn(4, 3, 3, 3, 3, requires_grad=True)
    >>> conv3d(x, w, padding=1).shape
    (1, 4, 4, 8, 8)
    """
    return _convolve(3, input, weight, bias, stride, padding, dilation, groups)


def _convolve_transpose(nd, input, weight, bias, stride, padding, output_padding, groups, dilation):
    """conv_transpose{nd}d's checks and call (see conv_transpose2d)."""
    op = f"conv_transpose{nd}d"
    x, unbatched = _float_input(input, op, nd=nd)
    groups = _check_groups(groups, op)
    if isinstance(padding, str):
        raise RuntimeError(f"{op}: padding must be an int or a tuple of ints, got {padding!r}")
    _check_weight(x, weight, op, f"(in_channels, out_channels/groups, {_KERNEL[nd]})")
    stride, padding = _pair(stride, "stride", op, nd), _pair(padding, "padding", op, nd)
    output_padding, dilation = _pair(output_padding, "output_padding", op, nd), _pair(dilation, "dilation", op, nd)
    _check_positive(stride, "stride", op)
    _check_positive(dilation, "dilation", op)
    _check_nonnegative(padding, "padding", op)
    _check_nonnegative(output_padding, "output_padding", op)
    C, size = x.shape[1], tuple(x.shape[2:])
    Cin, Og, kernel = weight.shape[0], weight.shape[1], tuple(weight.shape[2:])
    if Cin != C:
        raise RuntimeError(f"{op}: given transposed=1, weight of size {tuple(weight.shape)}, expected input "
                           f"{tuple(input.shape)} to have {Cin} channels, but got {C} channels instead")
    if C % groups:
        raise RuntimeError(f"{op}: in_channels ({C}) must be divisible by groups ({groups})")
    if min(kernel + (Og,)) < 1:
        raise RuntimeError(f"{op}: weight of shape {tuple(weight.shape)} is empty")
    for i in range(nd):
        if output_padding[i] >= stride[i] and output_padding[i] >= dilation[i]:
            raise RuntimeError(f"{op}: output padding must be smaller than either stride or dilation, but got "
                               f"output_padding={output_padding}, stride={stride}, dilation={dilation}")
    out_size = tuple((n - 1) * s_ - 2 * p + d * (k - 1) + op_ + 1
                     for n, k, s_, p, d, op_ in zip(size, kernel, stride, padding, dilation, output_padding))
    if min(out_size) < 1:
        raise RuntimeError(f"{op}: given input size ({' x '.join(map(str, size))}), calculated output size "
                           f"({' x '.join(map(str, out_size))}) is too small")
    _check_bias(x, bias, Og * groups, op)
    y = _CONV[nd].conv_t(x, weight, out_size, stride=stride, padding=padding, dilation=dilation, groups=groups)
    if bias is not None:
        y = y + bias.reshape((1, -1) + (1,) * nd)
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
    return _convolve_transpose(2, input, weight, bias, stride, padding, output_padding, groups, dilation)


@public
def conv_transpose3d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
    """3-D transposed convolution (the adjoint of ``conv3d`` in its input), PyTorch's semantics:
    ``weight`` is (in_channels, out_channels/groups, kD, kH, kW) and each output size is
    ``(n - 1) * stride - 2 * padding + dilation * (k - 1) + output_padding + 1``.

    >>> x = tapegrad.randn(1, 4, 3, 5, 5)
    >>> w = tapegrad.randn(4, 2, 3, 3, 3)
    >>> conv_transpose3d(x, w, stride=2, padding=1, output_padding=1).shape
    (1, 2, 6, 10, 10)
    """
    return _convolve_transpose(3, input, weight, bias, stride, padding, output_padding, groups, dilation)


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


def _pool_args(x, kernel_size, stride, padding, dilation, ceil_mode, op, nd=2):
    kernel = _pair(kernel_size, "kernel_size", op, nd)
    stride = kernel if stride is None or (isinstance(stride, (tuple, list)) and len(stride) == 0) \
        else _pair(stride, "stride", op, nd)
    padding, dilation = _pair(padding, "padding", op, nd), _pair(dilation, "dilation", op, nd)
    _check_positive(kernel, "kernel_size", op)
    _check_positive(stride, "stride", op)
    _check_positive(dilation, "dilation", op)
    _check_nonnegative(padding, "padding", op)
    if any(p > k // 2 for p, k in zip(padding, kernel)):
        raise RuntimeError(f"{op}: pad should be smaller than or equal to half of kernel size, but got "
                           f"padding={padding}, kernel_size={kernel}")
    out = _pool_out_size(x.shape[2:], kernel, stride, padding, dilation, ceil_mode)
    if min(out) < 1:
        C = x.shape[1]
        raise RuntimeError(f"{op}: given input size: ({'x'.join(map(str, x.shape[1:]))}). Calculated output size: "
                           f"({'x'.join(map(str, (C, *out)))}). Output size is too small")
    return kernel, stride, padding, dilation


def _max_pool(nd, input, kernel_size, stride, padding, dilation, ceil_mode, return_indices):
    """max_pool{nd}d of a float input (see max_pool2d)."""
    op = f"max_pool{nd}d"
    x, unbatched = _float_input(input, op, nd=nd)
    kernel, stride, padding, dilation = _pool_args(x, kernel_size, stride, padding, dilation, ceil_mode, op, nd)
    attrs = dict(kernel_size=kernel, stride=stride, padding=padding, dilation=dilation, ceil_mode=bool(ceil_mode))
    prim = _POOL[nd].max
    y, idx = apply_aux(prim, x, attrs, return_indices)
    idx = Tensor._wrap(idx) if return_indices else None
    if unbatched:
        y = y.reshape(tuple(y.shape[1:]))
        idx = idx.reshape(tuple(idx.shape[1:])) if idx is not None else None
    return (y, idx) if return_indices else y


@public
def max_pool2d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False):
    """2-D max pooling over (N, C, H, W) or (C, H, W); PyTorch's semantics (padding counts as
    -inf, the first maximum wins ties). With ``return_indices`` also returns the int64 flat
    index of each maximum in its H*W plane (what ``max_unpool2d`` takes).

    >>> x = tapegrad.randn(1, 1, 4, 4, requires_grad=True)
    >>> max_pool2d(x, 2).shape
    (1, 1, 2, 2)
    """
    if isinstance(input, Tensor) and input.dtype.kind in "iu":  # integers: forward only, as PyTorch
        return _max_pool2d_int(input, kernel_size, stride, padding, dilation, ceil_mode, return_indices)
    return _max_pool(2, input, kernel_size, stride, padding, dilation, ceil_mode, return_indices)


@public
def max_pool3d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False):
    """3-D max pooling over (N, C, D, H, W) or (C, D, H, W); PyTorch's semantics (padding counts
    as -inf, the first maximum in (depth, row, column) order wins ties). With ``return_indices``
    also returns the int64 flat index of each maximum in its D*H*W volume (what ``max_unpool3d``
    takes).

    >>> x = tapegrad.randn(1, 1, 4, 4, 4, requires_grad=True)
    >>> max_pool3d(x, 2).shape
    (1, 1, 2, 2, 2)
    """
    return _max_pool(3, input, kernel_size, stride, padding, dilation, ceil_mode, return_indices)


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


def _max_unpool(nd, input, indices, kernel_size, stride, padding, output_size):
    """max_unpool{nd}d (see max_unpool2d)."""
    op = f"max_unpool{nd}d"
    x, unbatched = _float_input(input, op, nd=nd)
    if not isinstance(indices, Tensor) or indices.dtype != np.int64:
        raise RuntimeError(f"{op}: expected indices to be an int64 tensor")
    if tuple(indices.shape) != tuple(input.shape):
        raise RuntimeError(f"{op}: expected indices of the input's shape {tuple(input.shape)}, "
                           f"got {tuple(indices.shape)}")
    kernel = _pair(kernel_size, "kernel_size", op, nd)
    stride = kernel if stride is None else _pair(stride, "stride", op, nd)
    padding = _pair(padding, "padding", op, nd)
    default = tuple((n - 1) * s - 2 * p + k for n, s, p, k in zip(x.shape[2:], stride, padding, kernel))
    if output_size is None:
        out_size = default
    else:
        out_size = tuple(int(s) for s in tuple(output_size)[-nd:])
        for i, (n, d, s) in enumerate(zip(out_size, default, stride)):
            if not d - s < n < d + s:  # ValueError, as PyTorch's
                raise ValueError(f"{op}: invalid output_size {out_size} (dim {i} must be between {d - s} and "
                                 f"{d + s}, exclusive)")
    if min(out_size) < 1:
        raise RuntimeError(f"{op}: calculated output size {out_size} is too small")
    volume = int(np.prod(out_size))
    idx = np.ascontiguousarray(indices._data).reshape(x.shape)
    if idx.size and (idx.min() < 0 or idx.max() >= volume):
        bad = idx.min() if idx.min() < 0 else idx.max()
        raise RuntimeError(f"{op}: found an invalid max index {int(bad)} (output volumes are of size "
                           f"{'x'.join(map(str, out_size))})")
    y = apply(_POOL[nd].unpool, x, indices=idx, output_size=out_size)
    return y.reshape(tuple(y.shape[1:])) if unbatched else y


@public
def max_unpool2d(input, indices, kernel_size, stride=None, padding=0, output_size=None):
    """Places each value of ``input`` at its ``indices`` (from ``max_pool2d(return_indices=True)``)
    in a zero tensor of the unpooled size; an index given twice holds its value once, as in PyTorch.

    >>> y, i = max_pool2d(tapegrad.randn(1, 1, 4, 4), 2, return_indices=True)
    >>> max_unpool2d(y, i, 2).shape
    (1, 1, 4, 4)
    """
    return _max_unpool(2, input, indices, kernel_size, stride, padding, output_size)


@public
def max_unpool3d(input, indices, kernel_size, stride=None, padding=0, output_size=None):
    """Places each value of ``input`` at its ``indices`` (from ``max_pool3d(return_indices=True)``)
    in a zero tensor of the unpooled size; an index given twice holds its value once, as in PyTorch.

    >>> y, i = max_pool3d(tapegrad.randn(1, 1, 4, 4, 4), 2, return_indices=True)
    >>> max_unpool3d(y, i, 2).shape
    (1, 1, 4, 4, 4)
    """
    return _max_unpool(3, input, indices, kernel_size, stride, padding, output_size)


def _avg_pool(nd, input, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override):
    """avg_pool{nd}d (see avg_pool2d)."""
    op = f"avg_pool{nd}d"
    x, unbatched = _float_input(input, op, nd=nd)
    kernel, stride, padding, _ = _pool_args(x, kernel_size, stride, padding, 1, ceil_mode, op, nd)
    if divisor_override is None:
        divisor_override = 0
    elif isinstance(divisor_override, bool) or not isinstance(divisor_override, numbers.Integral) \
            or divisor_override <= 0:
        raise RuntimeError(f"{op}: divisor must be a positive integer (or None), got {divisor_override!r}")
    y = apply(_POOL[nd].avg, x, kernel_size=kernel, stride=stride, padding=padding, ceil_mode=bool(ceil_mode),
              count_include_pad=bool(count_include_pad), divisor_override=int(divisor_override))
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
    return _avg_pool(2, input, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override)


@public
def avg_pool3d(input, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
               divisor_override=None):
    """3-D average pooling over (N, C, D, H, W) or (C, D, H, W); PyTorch's semantics for
    ``ceil_mode``, ``count_include_pad`` and ``divisor_override``.

    >>> avg_pool3d(tapegrad.ones(1, 1, 2, 4, 4), 2).shape
    (1, 1, 1, 2, 2)
    """
    return _avg_pool(3, input, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override)


def _adaptive_matrix(n, m, dtype):
    """(m, n) averaging matrix: row i averages [floor(i n / m), ceil((i + 1) n / m))."""
    a = np.zeros((m, n), dtype=dtype)
    for i in range(m):
        lo, hi = (i * n) // m, -((-(i + 1) * n) // m)
        a[i, lo:hi] = 1.0 / (hi - lo)
    return a


def _adaptive_size(x, output_size, op, nd):
    """output_size as an nd-tuple: an int, or a sequence whose None entries keep the input's size."""
    if isinstance(output_size, (tuple, list)):
        if len(output_size) != nd:
            raise RuntimeError(f"{op}: output_size must be an int or a tuple of {nd}, got {output_size!r}")
        size = tuple(x.shape[2 + i] if s is None else _int(s, "output_size", op, nd) for i, s in enumerate(output_size))
    else:
        size = (_int(output_size, "output_size", op, nd),) * nd
    if min(size) < 1:
        raise RuntimeError(f"{op}: output_size must be positive, got {size}")
    return size


def _adaptive_avg_pool(nd, input, output_size):
    """adaptive_avg_pool{nd}d (see adaptive_avg_pool2d)."""
    op = f"adaptive_avg_pool{nd}d"
    if isinstance(input, Tensor) and input.ndim < nd + 1:  # PyTorch's Python-side check: ValueError
        raise ValueError(f"{op}: Input dimension should be at least {nd + 1}, got shape {tuple(input.shape)}")
    x, unbatched = _float_input(input, op, nd=nd)
    size = _adaptive_size(x, output_size, op, nd)
    spatial = tuple(x.shape[2:])
    if nd == 2 and x.dtype in (np.float32, np.float64) and min(spatial) > 0:
        y = resample2d(x, "adaptive_avg", size)
    elif all(n % m == 0 for n, m in zip(spatial, size)):
        k = tuple(n // m for n, m in zip(spatial, size))
        y = apply(_POOL[nd].avg, x, kernel_size=k, stride=k, padding=(0,) * nd, ceil_mode=False,
                  count_include_pad=True, divisor_override=0)
    else:
        # one constant averaging matrix per dim, applied last dim first: (..., n) @ A^T
        y = x
        for i in reversed(range(nd)):
            a = Tensor._wrap(np.ascontiguousarray(_adaptive_matrix(spatial[i], size[i], x.dtype).T))
            y = matmul(y, a) if i == nd - 1 else matmul(y.transpose(2 + i, -1), a).transpose(2 + i, -1)
    return y.reshape(tuple(y.shape[1:])) if unbatched else y


@public
def adaptive_avg_pool2d(input, output_size):
    """Average pooling to a fixed ``output_size`` (int, or pair whose None entries keep the
    input's size), PyTorch's windows, in one native pass over each plane for float32 and float64
    (csrc/kernels/resample.cpp; the global pool, output 1, is a mean over H*W). 16-bit inputs take
    ``A_h @ x @ A_w^T`` with constant averaging matrices, or avg_pool2d when the sizes divide.

    >>> adaptive_avg_pool2d(tapegrad.randn(2, 3, 7, 5), (2, 1)).shape
    (2, 3, 2, 1)
    """
    return _adaptive_avg_pool(2, input, output_size)


@public
def adaptive_avg_pool3d(input, output_size):
    """Average pooling to a fixed ``output_size`` (int, or triple whose None entries keep the
    input's size), PyTorch's windows: one constant averaging matrix per dim, or avg_pool3d when
    every size divides.

    >>> adaptive_avg_pool3d(tapegrad.randn(2, 3, 5, 7, 5), (2, 3, 1)).shape
    (2, 3, 2, 3, 1)
    """
    return _adaptive_avg_pool(3, input, output_size)
