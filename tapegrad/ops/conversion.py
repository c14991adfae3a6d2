"""``Tensor.to``: PyTorch's overloads for dtype and device."""
from __future__ import annotations

import numpy as np

from .. import _dtype
from ..device import check_cpu as _check_cpu, check_memory_format, device as _device
Tensor = None  # the Tensor class, bound by tensor.py (ops.bind_tensor): the ops sit below it
from .shape import cast, clone


def _is_dtype_like(x) -> bool:
    if isinstance(x, (np.dtype, _dtype.DType)) or (isinstance(x, type) and issubclass(x, (np.generic, bool, float, int))):
        return True
    if isinstance(x, str):
        try:
            _dtype.to_dtype(x)
            return x not in ("cpu",) and not x.startswith(("cuda", "mps"))
        except TypeError:
            return False
    return False


def to(t: Tensor, *args, dtype=None, device=None, copy=False, non_blocking=False, memory_format=None):
    """``to(dtype)``, ``to(device)``, ``to(device, dtype)``, ``to(other)``, each optionally followed by
    ``non_blocking`` and ``copy`` (positional, as PyTorch's); CPU devices only."""
    flags = [a for a in args if isinstance(a, bool)]
    if flags:
        if len(flags) > 2 or args[len(args) - len(flags):] != tuple(flags):
            raise TypeError(f"to() received an invalid combination of arguments: {args!r} (non_blocking and copy "
                            f"follow the dtype, device or tensor)")
        args = args[:len(args) - len(flags)]
        non_blocking = flags[0]
        copy = flags[1] if len(flags) > 1 else copy
    for a in args:
        if isinstance(a, Tensor):
            dtype = a.dtype
        elif _is_dtype_like(a):
            dtype = a
        elif isinstance(a, (str, _device)):
            device = a
        elif a is None:
            continue
        else:
            raise TypeError(f"to() received an invalid argument of type {type(a).__name__}")
    if device is not None:
        _check_cpu(device)  # raises for anything but the CPU
    check_memory_format(memory_format, "to", t.ndim)
    out = t if dtype is None else cast(t, dtype)
    if copy and out is t:
        out = clone(t)
    return out
