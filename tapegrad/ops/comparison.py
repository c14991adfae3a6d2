"""Comparisons, logical and bitwise ops, and the predicates (``isnan``, ``isin``, ``allclose``, ...).
None of them is differentiable: their results are bool tensors.
"""
from __future__ import annotations

import numpy as np

from .. import _dtype
from .._tape.registry import apply, defop
from ._util import pair
from .complex import refuse_complex
from .inplace import _inplace_of
from .surface import public

Tensor = None  # the Tensor class, bound by tensor.py (ops.bind_tensor): the ops sit below it


_EXACT = frozenset({"eq", "ne", "lt", "le", "gt", "ge"})


def _out_of_range(input, other):
    """An integer tensor against a Python int outside its dtype's range: the two arrays numpy
    compares exactly (NEP 50: ``uint8 < -1`` is False everywhere). PyTorch wraps the number into
    the dtype first, so that ``uint8_tensor < -1`` is True everywhere and ``int8_tensor == 257``
    matches 1; tapegrad answers as the numbers compare. None for every other case."""
    t, n = (input, other) if isinstance(input, Tensor) else (other, input)
    if type(n) is not int or not isinstance(t, Tensor) or t._data.dtype.kind not in "iu":
        return None
    info = np.iinfo(t._data.dtype)
    if info.min <= n <= info.max:
        return None
    return (t._data, n) if t is input else (n, t._data)


def _cmp(npfn, name):
    ordered = name in ("lt", "le", "gt", "ge")  # complex numbers have no order

    def fn(input, other):
        exact = _out_of_range(input, other) if name in _EXACT else None
        if exact is not None:
            return Tensor._wrap(npfn(*exact))
        a, b = pair(input, other, name)
        if ordered:
            refuse_complex(a, f"{name}_cpu")
        try:
            return Tensor._wrap(npfn(a._data, b._data))
        except ValueError as e:  # shapes that don't broadcast: PyTorch's RuntimeError
            raise RuntimeError(f"{name}: {e}") from None

    fn.__name__ = name
    return fn


eq = _cmp(np.equal, "eq")
public(eq, method=True, out=True,
       doc="``input == other`` elementwise (broadcast), as a bool tensor.")
ne = _cmp(np.not_equal, "ne")
public(ne, method=True, out=True,
       doc="``input != other`` elementwise (broadcast), as a bool tensor.")
lt = _cmp(np.less, "lt")
public(lt, method=True, out=True,
       doc="``input < other`` elementwise (broadcast), as a bool tensor.")
le = _cmp(np.less_equal, "le")
public(le, method=True, out=True,
       doc="``input <= other`` elementwise (broadcast), as a bool tensor.")
gt = _cmp(np.greater, "gt")
public(gt, method=True, out=True,
       doc="``input > other`` elementwise (broadcast), as a bool tensor.")
ge = _cmp(np.greater_equal, "ge")
public(ge, method=True, out=True,
       doc="``input >= other`` elementwise (broadcast), as a bool tensor.")
logical_and = _cmp(np.logical_and, "logical_and")
public(logical_and, method=True, out=True,
       doc="Elementwise logical AND of the truth values of ``input`` and ``other``.")
logical_or = _cmp(np.logical_or, "logical_or")
public(logical_or, method=True, out=True,
       doc="Elementwise logical OR of the truth values of ``input`` and ``other``.")
logical_xor = _cmp(np.logical_xor, "logical_xor")
public(logical_xor, method=True, out=True,
       doc="Elementwise logical XOR of the truth values of ``input`` and ``other``.")
greater, less, greater_equal, less_equal, not_equal = gt, lt, ge, le, ne
public(greater, name="greater", method=True, out=True)
public(less, name="less", method=True, out=True)
public(greater_equal, name="greater_equal", method=True, out=True)
public(less_equal, name="less_equal", method=True, out=True)
public(not_equal, name="not_equal", method=True, out=True)


def _bitwise(npfn, name, kinds="biu"):
    def fn(input, other):
        a, b = pair(input, other, name)
        if a._data.dtype.kind not in kinds:  # PyTorch's error here is NotImplementedError (a RuntimeError)
            raise NotImplementedError(f"{name}: not implemented for {_dtype.name(a._data.dtype)} tensors "
                                      f"(integer{' or bool' if 'b' in kinds else ''} only)")
        try:
            return Tensor._wrap(npfn(a._data, b._data))
        except ValueError as e:
            raise RuntimeError(f"{name}: {e}") from None

    fn.__name__ = name
    return fn


# ``&``, ``|``, ``^``: bitwise on integers (logical on bools), as in PyTorch
bitwise_and = _bitwise(np.bitwise_and, "bitwise_and")
public(bitwise_and, method=True, inplace=True, out=True,
       doc="Elementwise bitwise AND of integer or bool tensors (``&``).")
bitwise_or = _bitwise(np.bitwise_or, "bitwise_or")
public(bitwise_or, method=True, inplace=True, out=True,
       doc="Elementwise bitwise OR of integer or bool tensors (``|``).")
bitwise_xor = _bitwise(np.bitwise_xor, "bitwise_xor")
public(bitwise_xor, method=True, inplace=True, out=True,
       doc="Elementwise bitwise XOR of integer or bool tensors (``^``).")
# ``<<``, ``>>``: integers only (bool too is refused, as in PyTorch). numpy's shifts already agree
# with PyTorch's where C leaves them undefined: a count that is negative or at least the bit width
# shifts everything out (0 for ``<<``; the sign, 0 or -1, for ``>>``).
bitwise_left_shift = _bitwise(np.left_shift, "bitwise_left_shift", kinds="iu")
public(bitwise_left_shift, method=True, inplace=True, out=True,
       doc="``input << other`` elementwise, on integer tensors: ``input * 2**other`` wrapped to the dtype.")
bitwise_right_shift = _bitwise(np.right_shift, "bitwise_right_shift", kinds="iu")
public(bitwise_right_shift, method=True, inplace=True, out=True,
       doc="``input >> other`` elementwise, on integer tensors: an arithmetic shift (floor division by "
           "``2**other``) for signed dtypes.")


@public(method=True, out=True)
def logical_not(input):
    """Elementwise logical NOT: True where ``input`` is zero (or False)."""
    return Tensor._wrap(np.logical_not(input._data))


@public(method=True, inplace=True, out=True)
def bitwise_not(input):
    """``~input``: the bitwise NOT of an integer tensor, the logical NOT of a bool one.

    >>> tapegrad.bitwise_not(tapegrad.tensor([0, 5, -3]))
    tensor([-1, -6,  2])
    """
    if input._data.dtype.kind not in "biu":  # PyTorch's error for floats is NotImplementedError
        raise NotImplementedError(f"bitwise_not: not implemented for {_dtype.name(input._data.dtype)} tensors "
                                  f"(integer or bool only; logical_not works on any dtype)")
    return Tensor._wrap(np.invert(input._data))


@public(method=True, out=True)
def isnan(input):
    """True where ``input`` is NaN."""
    return Tensor._wrap(np.isnan(input._data))


@public(method=True, out=True)
def isinf(input):
    """True where ``input`` is +inf or -inf."""
    return Tensor._wrap(np.isinf(input._data))


@public(method=True, out=True)
def isfinite(input):
    """True where ``input`` is neither NaN nor infinite."""
    return Tensor._wrap(np.isfinite(input._data))


@public(method=True)
def equal(input, other) -> bool:
    """True when both tensors have the same shape and elements."""
    return input.shape == other.shape and bool(np.array_equal(input._data, other._data))


@public(method=True)
def allclose(input, other, rtol=1e-5, atol=1e-8, equal_nan=False) -> bool:
    """Whether ``|input - other| <= atol + rtol * |other|`` holds everywhere (a Python bool)."""
    return bool(isclose(input, other, rtol, atol, equal_nan)._data.all())


@public(method=True, out=True)
def isclose(input, other, rtol=1e-5, atol=1e-8, equal_nan=False):
    """Elementwise ``|input - other| <= atol + rtol * |other|``, as a bool tensor (both tensors of one dtype)."""
    for name, t in (("input", input), ("other", other)):
        if not isinstance(t, Tensor):
            raise TypeError(f"isclose(): argument '{name}' must be Tensor, not {type(t).__name__}")
    for name, tol in (("rtol", rtol), ("atol", atol)):
        if tol < 0:
            raise RuntimeError(f"isclose(): {name} must be greater than or equal to zero, but got {tol}")
    if input._data.dtype != other._data.dtype:
        raise RuntimeError(f"isclose(): {_dtype.name(input._data.dtype)} did not match {_dtype.name(other._data.dtype)}")
    try:
        np.broadcast_shapes(input._data.shape, other._data.shape)
    except ValueError:
        raise RuntimeError(f"isclose(): the shapes {tuple(input.shape)} and {tuple(other.shape)} don't broadcast") from None
    return Tensor._wrap(np.isclose(input._data, other._data, rtol=rtol, atol=atol, equal_nan=equal_nan))


@public(method=True, out=True)
def isneginf(input):
    """True where ``input`` is -inf."""
    return Tensor._wrap(np.isneginf(input._data))


@public(method=True, out=True)
def isposinf(input):
    """True where ``input`` is +inf."""
    return Tensor._wrap(np.isposinf(input._data))


@public(method=True, out=True)
def isreal(input):
    """True where an element is real: its imaginary part is 0 (everywhere for a real tensor)."""
    if input._data.dtype.kind == "c":
        return Tensor._wrap(input._data.imag == 0)
    return Tensor._wrap(np.ones(input.shape, dtype=bool))


@public
def isin(elements, test_elements, *, assume_unique=False, invert=False):
    """True where an element of ``elements`` occurs in ``test_elements`` (False with ``invert``)."""
    e = elements._data if isinstance(elements, Tensor) else np.asarray(elements)
    t = test_elements._data if isinstance(test_elements, Tensor) else np.asarray(test_elements)
    return Tensor._wrap(np.isin(e, t, assume_unique=assume_unique, invert=invert))


# an in-place comparison overwrites a float tensor with 0/1: in the graph it stays, with a zero
# gradient (as PyTorch's EqBackward), instead of passing the gradient through as if unchanged
_overwritten = defop("compare_", lambda x, value: value, lambda g, out, x, value: g * 0.0, saves=())


def _cmp_inplace(fn):
    def write(s, *o):
        value = fn(s, *o).to(s.dtype)
        return apply(_overwritten, s, value=value._data) if s._requires_grad else value
    return write


eq_ = _inplace_of(_cmp_inplace(eq), "eq_")
public(eq_, method=True)
ne_ = _inplace_of(_cmp_inplace(ne), "ne_")
public(ne_, method=True)
lt_ = _inplace_of(_cmp_inplace(lt), "lt_")
public(lt_, method=True)
le_ = _inplace_of(_cmp_inplace(le), "le_")
public(le_, method=True)
gt_ = _inplace_of(_cmp_inplace(gt), "gt_")
public(gt_, method=True)
ge_ = _inplace_of(_cmp_inplace(ge), "ge_")
public(ge_, method=True)
# the logical ones leave the gradient passing through unchanged, as PyTorch's do
logical_not_ = _inplace_of(lambda s: logical_not(s).to(s.dtype), "logical_not_")
public(logical_not_, method=True)
logical_and_ = _inplace_of(lambda s, o: logical_and(s, o).to(s.dtype), "logical_and_")
public(logical_and_, method=True)
logical_or_ = _inplace_of(lambda s, o: logical_or(s, o).to(s.dtype), "logical_or_")
public(logical_or_, method=True)
logical_xor_ = _inplace_of(lambda s, o: logical_xor(s, o).to(s.dtype), "logical_xor_")
public(logical_xor_, method=True)
greater_, less_, greater_equal_, less_equal_, not_equal_ = gt_, lt_, ge_, le_, ne_
public(greater_, name="greater_", method=True)
public(less_, name="less_", method=True)
public(greater_equal_, name="greater_equal_", method=True)
public(less_equal_, name="less_equal_", method=True)
public(not_equal_, name="not_equal_", method=True)


def is_nonzero(input) -> bool:
    """The truth of a one-element tensor; raises RuntimeError for any other size, as PyTorch."""
    if input.numel() != 1:
        raise RuntimeError(f"Boolean value of Tensor with {'no values' if input.numel() == 0 else 'more than one value'} "
                           f"is ambiguous")
    return bool(input.item())
