"""Comparisons, logical and bitwise ops, and the predicates (``isnan``, ``isin``, ``allclose``, ...).
None of them is differentiable: their results are bool tensors.
"""
from __future__ import annotations

import numpy as np

from ._util import pair
from .inplace import _inplace_of

Tensor = None  # the Tensor class, bound by tensor.py (ops.bind_tensor): the ops sit below it


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


def isneginf(input):
    return Tensor._wrap(np.isneginf(input._data))


def isposinf(input):
    return Tensor._wrap(np.isposinf(input._data))


def isreal(input):
    return Tensor._wrap(np.ones(input.shape, dtype=bool))


def isin(elements, test_elements, *, assume_unique=False, invert=False):
    e = elements._data if isinstance(elements, Tensor) else np.asarray(elements)
    t = test_elements._data if isinstance(test_elements, Tensor) else np.asarray(test_elements)
    return Tensor._wrap(np.isin(e, t, assume_unique=assume_unique, invert=invert))


def _cmp_inplace(fn):
    return lambda s, o: fn(s, o).to(s.dtype)


eq_ = _inplace_of(_cmp_inplace(eq), "eq_")
ne_ = _inplace_of(_cmp_inplace(ne), "ne_")
lt_ = _inplace_of(_cmp_inplace(lt), "lt_")
le_ = _inplace_of(_cmp_inplace(le), "le_")
gt_ = _inplace_of(_cmp_inplace(gt), "gt_")
ge_ = _inplace_of(_cmp_inplace(ge), "ge_")
logical_not_ = _inplace_of(lambda s: logical_not(s).to(s.dtype), "logical_not_")


__all__ = ["eq", "ne", "lt", "le", "gt", "ge", "logical_and", "logical_or", "logical_xor", "greater", "less",
           "greater_equal", "less_equal", "not_equal", "bitwise_and", "bitwise_or", "bitwise_xor", "logical_not",
           "bitwise_not", "isnan", "isinf", "isfinite", "equal", "allclose", "isclose", "isneginf", "isposinf",
           "isreal", "isin", "eq_", "ne_", "lt_", "le_", "gt_", "ge_", "logical_not_"]
