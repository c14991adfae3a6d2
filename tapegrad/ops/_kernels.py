"""The one-pass C++ elementwise functions (``csrc/kernels/pointwise.h``) as the ops call them.

``forward`` is an op's forward on arrays: the kernel's result when it takes the array (a non-empty
float32/float64 array in C or F order, whose order the result keeps), else None and the op
computes its numpy form. ``backward`` is a VJP's one pass ``g * f'(...)`` from the saved input or
output: only first-order (recording off, so the result needs no graph) and when both arrays are
kernel dtypes of one shape; else None and the VJP builds its composite of tapegrad ops, which
create_graph can differentiate again.
"""
from __future__ import annotations

import numpy as np

from .. import _C
from .._tape import grad_mode
from .._tape.registry import _is16, _map16

Tensor = None  # the Tensor class, bound by tensor.py (ops.bind_tensor)

_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def takes(a):
    """Whether the kernels take the array ``a`` (``forward`` returns None otherwise)."""
    return a.dtype in _DTYPES and a.size > 0 and (a.flags.c_contiguous or a.flags.f_contiguous)


def forward(name, x, p0=0.0, p1=0.0, p2=0.0):
    """``name(x)`` through the kernel, or None when it does not take ``x``."""
    if takes(x):
        return _C.pointwise(name, x, p0, p1, p2)
    return None


def backward(name, g, saved, p0=0.0, p1=0.0, p2=0.0):
    """The Tensor ``g * name'(...)`` from ``saved`` (a Tensor), or None (recording on, or arrays the
    kernel does not take)."""
    if grad_mode.is_grad_enabled():
        return None
    gd, sd = g._data, saved._data
    if _is16(sd.dtype):
        return backward16(name, g, saved, p0, p1, p2)
    if sd.dtype not in _DTYPES or gd.dtype != sd.dtype or gd.shape != sd.shape or sd.size == 0:
        return None
    c = sd.flags.c_contiguous
    if not ((c and gd.flags.c_contiguous) or (sd.flags.f_contiguous and gd.flags.f_contiguous)):
        # a broadcast gradient (a sum's), or one of the two transposed: one C-order copy each
        gd, sd = np.ascontiguousarray(gd), np.ascontiguousarray(sd)
    return Tensor._wrap(_C.pointwise_backward(name, gd, sd, p0, p1, p2))


def backward16(name, g, saved, p0=0.0, p1=0.0, p2=0.0):
    """``backward`` for float16 / bfloat16 ``g`` and ``saved`` of one dtype and shape: the float32
    kernel's ``g * name'(...)`` on widened blocks, rounded once (registry's ``_map16``), where the
    composite VJP would round after each of its ops and make a pass for each; ``name`` also relu,
    gelu, gelu_tanh or silu. None otherwise (recording on, small or mixed arrays)."""
    if grad_mode.is_grad_enabled():
        return None
    gd, sd = g._data, saved._data
    if not _is16(sd.dtype) or gd.dtype != sd.dtype or gd.shape != sd.shape:
        return None
    gx = _map16(name, (gd, sd), sd.dtype, (p0, p1, p2))
    return None if gx is None else Tensor._wrap(gx)


def ufunc(f, *xs):
    """``f(*xs)`` for a numpy ufunc ``f``, with numpy's bits: its own inner loop split over the kernel
    threads where csrc/elementwise.h takes the case (large float arrays, 2+ threads), else numpy's
    call. For forwards that are more than the bare ufunc (apply threads only those)."""
    if xs[0].size < _THREADED and xs[-1].size < _THREADED:  # (0.3 us less for a small array)
        return f(*xs)
    y = _C._parallel_ufunc(f, *xs)
    return f(*xs) if y is None else y


_THREADED = 1 << 16  # csrc/elementwise.cpp's kMinElems: the result's size from which the threads take a case
