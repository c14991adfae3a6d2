"""Comparisons and logical ops: bool results, no gradient, never recorded."""
from __future__ import annotations

import numpy as np

Tensor = None  # the Tensor class, bound by tensor.py (ops.bind_tensor): the ops sit below it
from ._util import pair


def _cmp(npfn, name):
    def fn(input, other):
        a, b = pair(input, other, name)
        try:
            return Tensor._wrap(npfn(a._data, b._data))
        except ValueError as e:  # shapes that don't broadcast: PyTorch's RuntimeError
            raise RuntimeError(f"{name}: {e}") from None

    fn.__name__ = name
    return fn


eq = _cmp(np.equal, "eq")
ne = _cmp(np.not_equal, "ne")
lt = _cmp(np.less, "lt")
le = _cmp(np.less_equal, "le")
gt = _cmp(np.greater, "gt")
ge = _cmp(np.greater_equal, "ge")
logical_and = _cmp(np.logical_and, "logical_and")
logical_or = _cmp(np.logical_or, "logical_or")
logical_xor = _cmp(np.logical_xor, "logical_xor")
greater, less, greater_equal, less_equal, not_equal = gt, lt, ge, le, ne


def _bitwise(npfn, name):
    def fn(input, other):
        a, b = pair(input, other, name)
        if a._data.dtype.kind == "f":
            raise RuntimeError(f"{name}: not implemented for floating-point tensors (got {a._data.dtype})")
        try:
            return Tensor._wrap(npfn(a._data, b._data))
        except ValueError as e:
            raise RuntimeError(f"{name}: {e}") from None

    fn.__name__ = name
    return fn


# ``&``, ``|``, ``^``: bitwise on integers (logical on bools), as in PyTorch
bitwise_and = _bitwise(np.bitwise_and, "bitwise_and")
bitwise_or = _bitwise(np.bitwise_or, "bitwise_or")
bitwise_xor = _bitwise(np.bitwise_xor, "bitwise_xor")


def logical_not(input):
    return Tensor._wrap(np.logical_not(input._data))


def bitwise_not(input):
    if input._data.dtype.kind == "f":
        raise TypeError("bitwise_not: not defined for floating-point tensors (use logical_not)")
    return Tensor._wrap(np.invert(input._data))


def isnan(input):
    return Tensor._wrap(np.isnan(input._data))


def isinf(input):
    return Tensor._wrap(np.isinf(input._data))


def isfinite(input):
    return Tensor._wrap(np.isfinite(input._data))


def equal(input, other) -> bool:
    """True when both tensors have the same shape and elements."""
    return input.shape == other.shape and bool(np.array_equal(input._data, other._data))


def allclose(input, other, rtol=1e-5, atol=1e-8, equal_nan=False) -> bool:
    return bool(np.allclose(input._data, other._data, rtol=rtol, atol=atol, equal_nan=equal_nan))


def isclose(input, other, rtol=1e-5, atol=1e-8, equal_nan=False):
    return Tensor._wrap(np.isclose(input._data, other._data, rtol=rtol, atol=atol, equal_nan=equal_nan))


__all__ = ["eq", "ne", "lt", "le", "gt", "ge", "greater", "less", "greater_equal", "less_equal",
           "not_equal", "logical_and", "logical_or", "logical_xor", "logical_not", "bitwise_not", "bitwise_and",
           "bitwise_or", "bitwise_xor",
           "isnan", "isinf", "isfinite", "equal", "allclose", "isclose"]
