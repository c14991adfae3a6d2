"""``torch.nn.grad``: the gradients of a convolution with respect to its input and its weight,
computed directly from the gradient of its output (PyTorch's signatures).

``convNd_input(input_size, weight, grad_output, ...)`` is what ``autograd.grad(convNd(x, weight,
...), x, grad_output)`` gives for any ``x`` of ``input_size``, and ``convNd_weight(input,
weight_size, grad_output, ...)`` the same for the weight, without running the convolution or
recording it. They are the very primitives a convolution's backward pass records
(``tapegrad/ops/conv.py``: the transposed convolution and the weight correlation), so they are
differentiable again in ``weight``/``input`` and ``grad_output`` (a second derivative of a
convolution goes through them). 1-D convolutions run as 2-D ones of height 1, as ``conv1d`` does.

``input_size`` may be larger than the convolution's reach (``stride > 1`` leaves trailing rows no
output reads): those rows get zero gradient, as in PyTorch.

>>> x = tapegrad.randn(1, 1, 3, requires_grad=True)
>>> w = tapegrad.randn(1, 1, 1, requires_grad=True)
>>> y = tapegrad.nn.functional.conv1d(x, w)
>>> gy = tapegrad.randn(*y.shape)
>>> tapegrad.nn.grad.conv1d_input(x.shape, w, gy)     # == autograd.grad(y, x, gy)[0]
"""
from __future__ import annotations

import numbers

import numpy as np

from .. import _dtype
from ..ops.conv import _CONV, _check_groups, _check_nonnegative, _check_positive, _conv_out, _pair
from ..tensor import Tensor

__all__ = ["conv1d_input", "conv1d_weight", "conv2d_input", "conv2d_weight", "conv3d_input", "conv3d_weight"]

_SPATIAL = {1: "L", 2: "H, W", 3: "D, H, W"}


def _size(v, what, opname, nd):
    """``input_size``/``weight_size`` (a tuple, list or Size of nd + 2 ints) as a tuple."""
    if isinstance(v, Tensor) or not isinstance(v, (tuple, list)):
        raise TypeError(f"{opname}: {what} must be a sequence of {nd + 2} ints (a shape), got {type(v).__name__}")
    if not all(isinstance(n, numbers.Integral) and not isinstance(n, bool) for n in v):
        raise TypeError(f"{opname}: {what} must be a sequence of ints, got {tuple(v)!r}")
    v = tuple(int(n) for n in v)
    if len(v) != nd + 2:
        raise RuntimeError(f"{opname}: expected {what} of {nd + 2} dims (N, C, {_SPATIAL[nd]}), got {v}")
    if min(v) < 1:
        raise RuntimeError(f"{opname}: {what} must be positive, got {v}")
    return v


def _tensor(t, what, opname, nd):
    if not isinstance(t, Tensor):
        raise TypeError(f"{opname}: expected {what} to be a Tensor, got {type(t).__name__}")
    if t.ndim != nd + 2:
        raise RuntimeError(f"{opname}: expected {what} with {nd + 2} dims (N, C, {_SPATIAL[nd]}) for a {nd}-D "
                           f"convolution, got shape {tuple(t.shape)}")
    if t.dtype not in (np.float32, np.float64) and not _dtype.is_16bit_float(t.dtype):
        raise RuntimeError(f"{opname}: only float32, float64, float16 and bfloat16 tensors are supported, got "
                           f"{what} of {_dtype.name(t.dtype)}")
    return t


def _check(nd, opname, x_size, w_size, gy, stride, padding, dilation, groups):
    """PyTorch's checks of a convolution's geometry, its arguments normalised: ((stride, padding,
    dilation) as nd-tuples, groups)."""
    groups = _check_groups(groups, opname)
    stride, padding, dilation = (_pair(v, what, opname, nd) for v, what in
                                 ((stride, "stride"), (padding, "padding"), (dilation, "dilation")))
    _check_positive(stride, "stride", opname)
    _check_positive(dilation, "dilation", opname)
    _check_nonnegative(padding, "padding", opname)
    O, Cg = w_size[0], w_size[1]
    if O % groups:
        raise RuntimeError(f"{opname}: given groups={groups}, expected weight to be divisible by {groups} at "
                           f"dimension 0, but got weight of size {list(w_size)} instead")
    if x_size[1] != Cg * groups:
        raise RuntimeError(f"{opname}: given groups={groups}, weight of size {list(w_size)}, expected input "
                           f"{list(x_size)} to have {Cg * groups} channels, but got {x_size[1]} channels instead")
    out = tuple(_conv_out(n, k, s, p, d) for n, k, s, p, d in zip(x_size[2:], w_size[2:], stride, padding, dilation))
    if min(out) < 1:
        raise RuntimeError(f"{opname}: input of size {list(x_size)} is too small for a kernel of size "
                           f"{list(w_size[2:])} (padding {list(padding)}, dilation {list(dilation)})")
    expected = (x_size[0], O) + out
    if tuple(gy.shape) != expected:
        raise RuntimeError(f"{opname}: expected grad_output of shape {list(expected)} (the convolution's output for "
                           f"input {list(x_size)} and weight {list(w_size)}), got {list(gy.shape)}")
    return dict(stride=stride, padding=padding, dilation=dilation), groups


def _same_dtype(a, b, what_a, what_b, opname):
    if a.dtype != b.dtype:
        raise RuntimeError(f"{opname}: expected {what_a} and {what_b} of one dtype, got {_dtype.name(a.dtype)} and "
                           f"{_dtype.name(b.dtype)}")


def _as_2d(t):
    """A 1-D convolution's tensor (N, C, L) as a 2-D one's (N, C, 1, L)."""
    return t.reshape(tuple(t.shape[:2]) + (1,) + tuple(t.shape[2:]))


def _input_grad(nd, input_size, weight, grad_output, stride, padding, dilation, groups):
    opname = f"conv{nd}d_input"
    x_size = _size(input_size, "input_size", opname, nd)
    w = _tensor(weight, "weight", opname, nd)
    gy = _tensor(grad_output, "grad_output", opname, nd)
    _same_dtype(gy, w, "grad_output", "weight", opname)
    geo, groups = _check(nd, opname, x_size, tuple(w.shape), gy, stride, padding, dilation, groups)
    if nd == 1:
        geo = {k: (1 if k != "padding" else 0,) + v for k, v in geo.items()}
        gx = _CONV[2].conv_t(_as_2d(gy), _as_2d(w), (1,) + x_size[2:], groups=groups, **geo)
        return gx.reshape(x_size)
    return _CONV[nd].conv_t(gy, w, x_size[2:], groups=groups, **geo)


def _weight_grad(nd, input, weight_size, grad_output, stride, padding, dilation, groups):
    opname = f"conv{nd}d_weight"
    x = _tensor(input, "input", opname, nd)
    w_size = _size(weight_size, "weight_size", opname, nd)
    gy = _tensor(grad_output, "grad_output", opname, nd)
    _same_dtype(x, gy, "input", "grad_output", opname)
    geo, groups = _check(nd, opname, tuple(x.shape), w_size, gy, stride, padding, dilation, groups)
    if nd == 1:
        geo = {k: (1 if k != "padding" else 0,) + v for k, v in geo.items()}
        gw = _CONV[2].conv_w(_as_2d(x), _as_2d(gy), (1,) + w_size[2:], groups=groups, **geo)
        return gw.reshape(w_size)
    return _CONV[nd].conv_w(x, gy, w_size[2:], groups=groups, **geo)


def conv1d_input(input_size, weight, grad_output, stride=1, padding=0, dilation=1, groups=1):
    """The gradient of ``conv1d`` with respect to its input (N, C, L) of ``input_size``, given
    ``weight`` (out_channels, C/groups, kW) and ``grad_output`` (N, out_channels, oW): a 1-D
    transposed convolution whose output size is given.

    >>> tapegrad.nn.grad.conv1d_input((1, 1, 3), w, gy)   # == autograd.grad(conv1d(x, w), x, gy)[0]
    """
    return _input_grad(1, input_size, weight, grad_output, stride, padding, dilation, groups)


def conv1d_weight(input, weight_size, grad_output, stride=1, padding=0, dilation=1, groups=1):
    """The gradient of ``conv1d`` with respect to its weight of ``weight_size`` (out_channels,
    C/groups, kW), given ``input`` (N, C, L) and ``grad_output`` (N, out_channels, oW).

    >>> tapegrad.nn.grad.conv1d_weight(x, (1, 1, 1), gy)  # == autograd.grad(conv1d(x, w), w, gy)[0]
    """
    return _weight_grad(1, input, weight_size, grad_output, stride, padding, dilation, groups)


def conv2d_input(input_size, weight, grad_output, stride=1, padding=0, dilation=1, groups=1):
    """The gradient of ``conv2d`` with respect to its input (N, C, H, W) of ``input_size``, given
    ``weight`` (out_channels, C/groups, kH, kW) and ``grad_output`` (N, out_channels, oH, oW): a
    transposed convolution whose output size is given.

    >>> tapegrad.nn.grad.conv2d_input(x.shape, w, gy, padding=1)  # == autograd.grad(conv2d(x, w, padding=1), x, gy)[0]
    """
    return _input_grad(2, input_size, weight, grad_output, stride, padding, dilation, groups)


def conv2d_weight(input, weight_size, grad_output, stride=1, padding=0, dilation=1, groups=1):
    """The gradient of ``conv2d`` with respect to its weight of ``weight_size`` (out_channels,
    C/groups, kH, kW), given ``input`` (N, C, H, W) and ``grad_output`` (N, out_channels, oH, oW).

    >>> tapegrad.nn.grad.conv2d_weight(x, w.shape, gy, padding=1)  # == autograd.grad(conv2d(x, w, padding=1), w, gy)[0]
    """
    return _weight_grad(2, input, weight_size, grad_output, stride, padding, dilation, groups)


def conv3d_input(input_size, weight, grad_output, stride=1, padding=0, dilation=1, groups=1):
    """The gradient of ``conv3d`` with respect to its input (N, C, D, H, W) of ``input_size``, given
    ``weight`` (out_channels, C/groups, kD, kH, kW) and ``grad_output`` (N, out_channels, oD, oH, oW).

    >>> tapegrad.nn.grad.conv3d_input(x.shape, w, gy)     # == autograd.grad(conv3d(x, w), x, gy)[0]
    """
    return _input_grad(3, input_size, weight, grad_output, stride, padding, dilation, groups)


def conv3d_weight(input, weight_size, grad_output, stride=1, padding=0, dilation=1, groups=1):
    """The gradient of ``conv3d`` with respect to its weight of ``weight_size`` (out_channels,
    C/groups, kD, kH, kW), given ``input`` (N, C, D, H, W) and ``grad_output``.

    >>> tapegrad.nn.grad.conv3d_weight(x, w.shape, gy)    # == autograd.grad(conv3d(x, w), w, gy)[0]
    """
    return _weight_grad(3, input, weight_size, grad_output, stride, padding, dilation, groups)
