"""Hypothesis strategies for tensors: shapes, broadcastable shapes, tensors, and element
values kept away from an op's non-differentiable points (finite differences straddling a
kink or a tie give meaningless "gradients").

>>> from hypothesis import given
>>> from tapegrad.testing import gradcheck, strategies as tst
>>> @given(tst.tensors(shape=tst.shapes(max_dims=3), elements=tst.elements(avoid=(0.0,)),
...                    requires_grad=True))
... def test_abs(x):
...     assert gradcheck(tapegrad.abs, (x,))
"""
from __future__ import annotations

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from .. import _dtype
from ..tensor import Tensor

__all__ = ["shapes", "broadcastable_shapes", "mutually_broadcastable_shapes", "elements", "positive",
           "away_from_ties", "tensors", "arrays"]


def shapes(min_dims: int = 0, max_dims: int = 4, min_side: int = 1, max_side: int = 5):
    """Tensor shapes (tuples of ints).

    >>> shapes(max_dims=2).example()   # e.g. (3, 1)
    """
    return hnp.array_shapes(min_dims=min_dims, max_dims=max_dims, min_side=min_side, max_side=max_side)


def broadcastable_shapes(shape, min_dims: int = 0, max_dims: int | None = None, min_side: int = 1,
                         max_side: int = 5):
    """Shapes that broadcast with ``shape`` (a tuple, or a strategy drawing one).

    >>> broadcastable_shapes((3, 4)).example()   # e.g. (1, 4) or (4,) or (2, 3, 1)
    """
    max_dims = 4 if max_dims is None else max_dims
    if isinstance(shape, st.SearchStrategy):
        return shape.flatmap(lambda s: broadcastable_shapes(s, min_dims, max_dims, min_side, max_side))
    return hnp.broadcastable_shapes(tuple(shape), min_dims=min_dims, max_dims=max(max_dims, min_dims),
                                    min_side=min_side, max_side=max_side)


def mutually_broadcastable_shapes(num_shapes: int = 2, min_dims: int = 0, max_dims: int = 4,
                                  min_side: int = 1, max_side: int = 5):
    """Tuples of ``num_shapes`` shapes that broadcast together.

    >>> a_shape, b_shape = mutually_broadcastable_shapes().example()
    """
    return hnp.mutually_broadcastable_shapes(num_shapes=num_shapes, min_dims=min_dims, max_dims=max_dims,
                                             min_side=min_side, max_side=max_side).map(lambda r: r.input_shapes)


def elements(min_value: float = -3.0, max_value: float = 3.0, *, avoid=(), margin: float = 1e-2):
    """Finite floats in ``[min_value, max_value]`` at least ``margin`` away from every point in
    ``avoid`` (the kinks of relu/abs, the poles of log...).

    >>> elements(avoid=(0.0,), margin=0.05).example()   # never in (-0.05, 0.05)
    """
    base = st.floats(min_value, max_value, allow_nan=False, allow_infinity=False)
    avoid = tuple(float(a) for a in avoid)
    if not avoid:
        return base

    def far(v):
        return all(abs(v - a) >= margin for a in avoid)

    # push values that land too close to a point off it, rather than filtering them away
    return base.map(lambda v: v if far(v) else _push(v, avoid, margin, min_value, max_value)).filter(far)


def _push(v, avoid, margin, lo, hi):
    for a in avoid:
        if abs(v - a) < margin:
            up = a + 2 * margin
            return up if up <= hi else a - 2 * margin
    return v


def positive(min_value: float = 0.1, max_value: float = 3.0):
    """Floats in ``[min_value, max_value]``, for log, sqrt, pow's base, division's denominator.

    >>> positive().example()   # e.g. 0.5
    """
    return st.floats(min_value, max_value, allow_nan=False, allow_infinity=False)


def away_from_ties(array: np.ndarray, margin: float = 1e-2) -> np.ndarray:
    """``array`` with values nudged so that any two differ by at least ``margin`` (for max,
    min, sort, median, maxpool: a tie makes the gradient depend on which element wins).

    >>> away_from_ties(np.array([1.0, 1.0, 1.001]))   # array([1.  , 1.01, 1.02]) in some order
    """
    flat = np.asarray(array, dtype=np.float64).reshape(-1).copy()
    order = np.argsort(flat, kind="stable")
    for j in range(1, order.size):
        prev, cur = flat[order[j - 1]], flat[order[j]]
        if cur - prev < margin:
            flat[order[j]] = prev + margin
    return flat.reshape(np.shape(array)).astype(np.asarray(array).dtype)


def arrays(dtype=np.float64, shape=None, elements=None, unique_spacing: float | None = None):
    """numpy arrays of ``dtype`` and ``shape`` (a tuple or a strategy; default ``shapes()``).
    ``unique_spacing``: apply ``away_from_ties`` with that margin."""
    dtype = _dtype.to_dtype(dtype)
    shape = shapes() if shape is None else shape
    if elements is None:
        elements = (st.floats(-3.0, 3.0, allow_nan=False, allow_infinity=False, width=8 * dtype.itemsize)
                    if _dtype.kind_of(dtype) == "f" else
                    st.booleans() if dtype.kind == "b" else st.integers(-10, 10) if dtype.kind == "i" else
                    st.integers(0, 10))
    strat = hnp.arrays(dtype, shape, elements=elements)
    if unique_spacing is not None:
        strat = strat.map(lambda a: away_from_ties(a, unique_spacing))
    return strat


def tensors(dtype=np.float64, shape=None, elements=None, requires_grad: bool = False,
            unique_spacing: float | None = None):
    """tapegrad tensors (float64 by default, for gradient checks).

    >>> tensors(shape=(2, 3), elements=positive(), requires_grad=True).example()
    """
    return arrays(dtype, shape, elements, unique_spacing).map(
        lambda a: _leaf(a, requires_grad))


def _leaf(a, requires_grad):
    t = Tensor._wrap(np.ascontiguousarray(a))
    if requires_grad:
        t.requires_grad_(True)
    return t
