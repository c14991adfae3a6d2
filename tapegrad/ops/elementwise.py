"""Elementwise arithmetic and unary functions (numpy does the work).

Each ``defop`` names the forward and, next to it, one VJP per input. Broadcasting is
numpy's; the engine reduces broadcast gradients back to each input's shape.
"""
from __future__ import annotations

import numpy as np
import scipy.special as _sp

from .. import _dtype
Tensor = None  # the Tensor class, bound by tensor.py (ops.bind_tensor): the ops sit below it
from .._tape.registry import apply, defop
from ._util import const, pair, as_tensor, integer_division_checked

# ---------------------------------------------------------------- binary arithmetic
_add = defop("add", np.add, lambda g, out, x, y: g, lambda g, out, x, y: g, saves=())
_sub = defop("sub", np.subtract, lambda g, out, x, y: g, lambda g, out, x, y: -g, saves=())
_mul = defop("mul", np.multiply, lambda g, out, x, y: g * y, lambda g, out, x, y: g * x)
_div = defop("div", np.true_divide, lambda g, out, x, y: g / y, lambda g, out, x, y: -g * x / (y * y))
_pow = defop("pow", np.power,
             lambda g, out, x, y: where(y == 0, const(0.0, g.dtype), g * y * x ** (y - 1)),  # PyTorch: 0 at y == 0
             lambda g, out, x, y: _pow_exponent_grad(g, out, x, y),
             saves_output=True)
_maximum = defop("maximum", np.maximum,
                 lambda g, out, x, y: g * _tie_mask(x, y),
                 lambda g, out, x, y: g * _tie_mask(y, x))
_minimum = defop("minimum", np.minimum,
                 lambda g, out, x, y: g * _tie_mask(y, x),
                 lambda g, out, x, y: g * _tie_mask(x, y))


def _tie_mask(x, y):
    """1 where x wins, 0.5 on ties (PyTorch splits the gradient evenly), 0 elsewhere."""
    return (x > y).to(x.dtype) + (x == y).to(x.dtype) * 0.5


def _pow_exponent_grad(g, out, x, y):
    # d(x**y)/dy = x**y * log(x); PyTorch takes it as 0 where x == 0 and y >= 0 (where x == 0 and
    # y < 0 it is inf * -inf = -inf). log's argument is made safe there, so double backward has no 0/0.
    zero = (x == 0) & (y >= 0)
    return where(zero, const(0.0, out.dtype), g * out * log(where(zero, const(1.0, x.dtype), x)))


def add(input, other, *, alpha=1):
    """``input + alpha * other`` with broadcasting."""
    if alpha != 1:
        other = mul(other, alpha)
    return apply(_add, *pair(input, other, "add"))


def sub(input, other, *, alpha=1):
    if _is_bool(input) or _is_bool(other):
        raise RuntimeError("Subtraction, the `-` operator, with a bool tensor is not supported. If you are "
                           "trying to invert a mask, use the `~` or `logical_not()` operator instead.")
    if alpha != 1:
        other = mul(other, alpha)
    return apply(_sub, *pair(input, other, "sub"))


def _is_bool(x):
    return isinstance(x, (bool, np.bool_)) or (isinstance(x, Tensor) and x._data.dtype == np.bool_)


def mul(input, other):
    return apply(_mul, *pair(input, other, "mul"))


def div(input, other, *, rounding_mode=None):
    """True division (integers give floats, as in PyTorch); ``rounding_mode`` 'trunc' or 'floor'."""
    a, b = pair(input, other, "div")
    if rounding_mode is None:
        if a._data.dtype.kind != "f":
            a, b = a.to(_dtype.get_default_dtype()), b.to(_dtype.get_default_dtype())
        return apply(_div, a, b)
    if rounding_mode not in ("floor", "trunc"):
        raise ValueError(f"div: rounding_mode must be None, 'trunc' or 'floor', got {rounding_mode!r}")
    if a._data.dtype.kind != "f":
        if a._data.dtype == np.bool_:
            raise RuntimeError(f"div(rounding_mode={rounding_mode!r}): not implemented for 'Bool' tensors")
        integer_division_checked(a, b, f"div(rounding_mode={rounding_mode!r})")
    if rounding_mode == "floor":
        return apply(_floor_divide, a, b)
    if rounding_mode == "trunc":
        return apply(_trunc_divide, a, b)
    raise ValueError(f"div: rounding_mode must be None, 'trunc' or 'floor', got {rounding_mode!r}")


def _zero_vjp(g, out, *args, **kw):
    return g * 0.0


_floor_divide = defop("floor_divide", np.floor_divide, _zero_vjp, _zero_vjp, saves=())
_trunc_divide = defop("trunc_divide", lambda a, b: np.trunc(np.true_divide(a, b)).astype(
    np.result_type(a, b)), _zero_vjp, _zero_vjp, saves=())


def pow(input, exponent):
    """``input ** exponent``; either may be a scalar."""
    if isinstance(input, Tensor) and not isinstance(exponent, Tensor):
        if input._data.dtype.kind in "iu" and isinstance(exponent, (int, np.integer)) and exponent < 0:
            raise RuntimeError("Integers to negative integer powers are not allowed.")
        if input._data.dtype.kind != "f" and isinstance(exponent, float):
            input = input.to(_dtype.get_default_dtype())
        return apply(_pow_scalar, input, exponent=exponent)
    a, b = pair(input, exponent, "pow")
    if a._data.dtype == np.bool_:
        raise RuntimeError("pow: not implemented for 'Bool' tensors")
    if a._data.dtype.kind in "iu":  # numpy refuses negative integer powers; PyTorch truncates them
        if not isinstance(exponent, Tensor) and exponent < 0:
            raise RuntimeError("Integers to negative integer powers are not allowed.")
        return Tensor._wrap(_int_pow(a._data, b._data))
    return apply(_pow, a, b)


def _int_pow(x, e):
    """C-style integer power: a negative exponent gives 1 for 1, +-1 for -1 and 0 otherwise."""
    pos = np.power(x, np.maximum(e, 0))
    neg = np.where(x == 1, 1, np.where(x == -1, np.where(e % 2 == 0, 1, -1), 0))
    return np.where(e < 0, neg, pos).astype(pos.dtype)


def _pow_scalar_fwd(x, exponent):
    out = np.power(x, exponent)
    return out.astype(x.dtype, copy=False) if x.dtype.kind == "f" else out


_pow_scalar = defop("pow_scalar", _pow_scalar_fwd,
                    lambda g, out, x, exponent: g * 0.0 if exponent == 0 else g * exponent * x ** (exponent - 1))


def maximum(input, other):
    return apply(_maximum, *pair(input, other, "maximum"))


def minimum(input, other):
    return apply(_minimum, *pair(input, other, "minimum"))


# ---------------------------------------------------------------- unary
def _unary(name, fwd, vjp, saves_output=False, saves=None, floating=False):
    """``floating``: a float-valued function, so integer and bool inputs become the default float
    dtype first (PyTorch's rule: ``exp(int_tensor)`` is float32, never numpy's float64/float16)."""
    op = defop(name, fwd, vjp, saves_output=saves_output, saves=saves)

    if floating:
        def fn(input):
            return apply(op, _to_float(input))
    else:
        def fn(input):
            return apply(op, input)

    fn.__name__ = name
    return op, fn


_neg, _neg_fn = _unary("neg", np.negative, lambda g, out, x: -g, saves=())


def neg(input):
    _no_bool(input, "neg")
    return apply(_neg, input)


def _no_bool(input, opname, hint=""):
    if input._data.dtype == np.bool_:
        raise RuntimeError(f"{opname}: not implemented for 'Bool' tensors{hint}")
_exp, exp = _unary("exp", np.exp, lambda g, out, x: g * out, saves_output=True, saves=(), floating=True)
_log, log = _unary("log", np.log, lambda g, out, x: g / x, floating=True)
_log1p, log1p = _unary("log1p", np.log1p, lambda g, out, x: g / (x + 1), floating=True)
_expm1, expm1 = _unary("expm1", np.expm1, lambda g, out, x: g * (out + 1), saves_output=True, saves=(), floating=True)
_sqrt, sqrt = _unary("sqrt", np.sqrt, lambda g, out, x: g / (out * 2), saves_output=True, saves=(), floating=True)
_rsqrt, rsqrt = _unary("rsqrt", lambda x: 1 / np.sqrt(x), lambda g, out, x: g * out ** 3 * -0.5,
                       saves_output=True, saves=(), floating=True)
_sin, sin = _unary("sin", np.sin, lambda g, out, x: g * cos(x), floating=True)
_cos, cos = _unary("cos", np.cos, lambda g, out, x: -g * sin(x), floating=True)
_tanh, tanh = _unary("tanh", np.tanh, lambda g, out, x: g * (1 - out * out), saves_output=True, saves=(), floating=True)
_sigmoid, sigmoid = _unary("sigmoid", lambda x: _sp.expit(x).astype(x.dtype, copy=False),
                           lambda g, out, x: g * out * (1 - out), saves_output=True, saves=(), floating=True)
_abs, _abs_fn = _unary("abs", np.abs, lambda g, out, x: g * sign(x))


def abs(input):
    _no_bool(input, "abs")
    return apply(_abs, input)
_erf, erf = _unary("erf", lambda x: _sp.erf(x).astype(x.dtype, copy=False),
                   lambda g, out, x: g * exp(-x * x) * (2 / np.sqrt(np.pi)), floating=True)
_relu, _relu_fn = _unary("relu", lambda x: np.maximum(x, 0).astype(x.dtype, copy=False),
                     lambda g, out, x: apply(_relu_backward, g, out), saves_output=True, saves=())
def relu(input):
    _no_bool(input, "relu")
    return apply(_relu, input)


# relu's VJP as one op (PyTorch's threshold_backward), not three (gt, to, mul): ``g`` where
# ``out > 0``. Linear in ``g``, so its own VJP is itself; piecewise constant in ``out``.
# A select, not a product, as PyTorch's: an inf or NaN upstream gradient where out <= 0 gives 0.
_relu_backward = defop("relu_backward", lambda g, out: np.where(out > 0, g, g.dtype.type(0)),
                       lambda gg, res, g, out: apply(_relu_backward, gg, out), None, saves=(1,))

# sign has a zero gradient everywhere (as in PyTorch), which keeps it usable inside VJPs.
_sign = defop("sign", np.sign, _zero_vjp, saves=())


def sign(input):
    if input._data.dtype == np.bool_:  # numpy has no bool sign; PyTorch's is the identity
        return Tensor._wrap(input._data.copy())
    return apply(_sign, input)


def where(condition, input=None, other=None):
    """Elementwise ``input if condition else other``; ``condition`` is a bool tensor.
    ``where(condition)`` alone is ``nonzero(condition, as_tuple=True)``."""
    if input is None and other is None:
        from .indexing import nonzero
        return nonzero(as_tensor(condition, "where"), as_tuple=True)
    if input is None or other is None:
        raise TypeError("where: expected where(condition, input, other) or where(condition)")
    if not isinstance(input, Tensor) and not isinstance(other, Tensor):  # two scalars, as PyTorch allows
        input, other = as_tensor(input, "where"), as_tensor(other, "where")
    x, y = pair(input, other, "where")
    cond = as_tensor(condition, "where")
    if cond._data.dtype != np.bool_:
        raise RuntimeError(f"where expected condition to be a boolean tensor, but got a tensor with dtype "
                           f"{cond._data.dtype}")
    return apply(_where, cond, x, y)


_where = defop("where", np.where, None,
               lambda g, out, c, x, y: g * c.to(g.dtype),
               lambda g, out, c, x, y: g * (~c).to(g.dtype), saves=(0,))


def _masked(g, cond):
    """``g`` where ``cond`` holds, else 0 (a where, not a product: an inf upstream stays out)."""
    return where(cond, g, const(0, g.dtype))


def _to_float(input):
    """Integer and bool tensors become the default float dtype (PyTorch's rule for float-valued ops)."""
    return input if input._data.dtype.kind == "f" else input.to(_dtype.get_default_dtype())


# ---------------------------------------------------------------- clamp and friends
def _clamp_fwd(x, lo, hi):
    return np.minimum(np.maximum(x, lo), hi)  # min > max gives max everywhere, as in PyTorch


# PyTorch's clamp_backward_min_max: the gradient passes where min <= x <= max
_clamp = defop("clamp", _clamp_fwd,
               lambda g, out, x, lo, hi: _masked(g, (x >= lo) & (x <= hi)),
               lambda g, out, x, lo, hi: _masked(g, (x < lo) & (lo < hi)),
               lambda g, out, x, lo, hi: _masked(g, (x > hi) | (hi < lo)))


def _clamp_args(input, min, max, opname):
    if min is None and max is None:
        raise RuntimeError(f"{opname}: At least one of 'min' or 'max' must not be None")
    x = as_tensor(input, opname)
    if x._data.dtype == np.bool_:
        raise RuntimeError(f"{opname}: not implemented for 'Bool' tensors")
    d = _dtype.result_type(x._data, *[b._data if isinstance(b, Tensor) else b for b in (min, max) if b is not None])
    info = np.finfo(d) if d.kind == "f" else np.iinfo(d)
    lo_default, hi_default = (-np.inf, np.inf) if d.kind == "f" else (info.min, info.max)
    lo = const(lo_default, d) if min is None else (min.to(d) if isinstance(min, Tensor) else const(min, d))
    hi = const(hi_default, d) if max is None else (max.to(d) if isinstance(max, Tensor) else const(max, d))
    return x.to(d), lo, hi


def clamp(input, min=None, max=None):
    """Limit ``input`` to ``[min, max]`` (scalars or broadcastable tensors; either may be None).

    >>> tapegrad.clamp(tapegrad.tensor([-2.0, 0.5, 3.0]), min=0, max=1)
    tensor([0.0000, 0.5000, 1.0000])
    """
    return apply(_clamp, *_clamp_args(input, min, max, "clamp"))


clip = clamp

_square = defop("square", np.square, lambda g, out, x: g * x * 2)
_reciprocal = defop("reciprocal", np.reciprocal, lambda g, out, x: -g * out * out, saves_output=True, saves=())


def square(input):
    if input._data.dtype == np.bool_:  # PyTorch: bool squares to int64 (numpy would say int8)
        input = input.to(np.int64)
    return apply(_square, input)


def reciprocal(input):
    """``1 / input``; integer tensors give floats."""
    return apply(_reciprocal, _to_float(input))


# rounding: piecewise constant, so the gradient is zero (as in PyTorch)
_floor = defop("floor", np.floor, _zero_vjp, saves=())
_ceil = defop("ceil", np.ceil, _zero_vjp, saves=())
_trunc = defop("trunc", np.trunc, _zero_vjp, saves=())
_round = defop("round", lambda x, decimals: np.round(x, decimals), _zero_vjp, saves=())  # half to even


def _rounding(op):
    def fn(input):
        _no_bool(input, op.name)
        if input._data.dtype.kind != "f":  # integers are already whole: a copy, as PyTorch
            return Tensor._wrap(input._data.copy())
        return apply(op, input)
    fn.__name__ = op.name
    return fn


floor, ceil, trunc = _rounding(_floor), _rounding(_ceil), _rounding(_trunc)
fix = trunc


def round(input, *, decimals=0):
    """Round half to even (as PyTorch and numpy), to ``decimals`` places."""
    _no_bool(input, "round")
    if input._data.dtype.kind != "f" and decimals >= 0:
        return Tensor._wrap(input._data.copy())
    return apply(_round, _to_float(input), decimals=int(decimals))


def _atan2_denominator(y, x):
    # at the origin PyTorch's gradient is 0, not 0/0: divide by 1 there (the numerator is 0)
    d = x * x + y * y
    return where(d == 0, const(1.0, d.dtype), d)


_atan2 = defop("atan2", np.arctan2,
               lambda g, out, y, x: g * x / _atan2_denominator(y, x),
               lambda g, out, y, x: -g * y / _atan2_denominator(y, x))


def atan2(input, other):
    """The angle of the point ``(other, input)``: ``atan(input / other)`` in the right quadrant."""
    y, x = pair(input, other, "atan2")
    return apply(_atan2, _to_float(y), _to_float(x))


arctan2 = atan2

__all__ = ["add", "sub", "mul", "div", "pow", "maximum", "minimum", "neg", "exp", "log", "log1p",
           "expm1", "sqrt", "rsqrt", "sin", "cos", "tanh", "sigmoid", "abs", "erf", "relu", "sign",
           "where", "clamp", "clip", "square", "reciprocal", "floor", "ceil", "trunc", "fix", "round",
           "atan2", "arctan2"]
