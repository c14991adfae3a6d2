"""Elementwise arithmetic and unary functions (numpy does the work).

Each ``defop`` names the forward and, next to it, one VJP per input. Broadcasting is
numpy's; the engine reduces broadcast gradients back to each input's shape.
"""
from __future__ import annotations

import numpy as np
import scipy.special as _sp

from ..tensor import Tensor
from .registry import apply, defop
from ._util import const, pair, require_float, as_tensor

# ---------------------------------------------------------------- binary arithmetic
_add = defop("add", np.add, lambda g, out, x, y: g, lambda g, out, x, y: g, saves=())
_sub = defop("sub", np.subtract, lambda g, out, x, y: g, lambda g, out, x, y: -g, saves=())
_mul = defop("mul", np.multiply, lambda g, out, x, y: g * y, lambda g, out, x, y: g * x)
_div = defop("div", np.true_divide, lambda g, out, x, y: g / y, lambda g, out, x, y: -g * x / (y * y))
_pow = defop("pow", np.power,
             lambda g, out, x, y: g * y * x ** (y - 1),
             lambda g, out, x, y: g * out * _safe_log_base(x),
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


def _safe_log_base(x):
    # d(x**y)/dy = x**y * log(x); PyTorch takes it as 0 where x == 0 (and y >= 0)
    return where(x == 0, const(0.0, x.dtype), log(where(x == 0, const(1.0, x.dtype), x)))


def add(input, other, *, alpha=1):
    """``input + alpha * other`` with broadcasting."""
    if alpha != 1:
        other = mul(other, alpha)
    return apply(_add, *pair(input, other, "add"))


def sub(input, other, *, alpha=1):
    if alpha != 1:
        other = mul(other, alpha)
    return apply(_sub, *pair(input, other, "sub"))


def mul(input, other):
    return apply(_mul, *pair(input, other, "mul"))


def div(input, other, *, rounding_mode=None):
    """True division (integers give floats, as in PyTorch); ``rounding_mode`` 'trunc' or 'floor'."""
    a, b = pair(input, other, "div")
    if rounding_mode is None:
        if a._data.dtype.kind != "f":
            from .. import _dtype
            a, b = a.to(_dtype.get_default_dtype()), b.to(_dtype.get_default_dtype())
        return apply(_div, a, b)
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
        if input._data.dtype.kind != "f" and isinstance(exponent, float):
            from .. import _dtype
            input = input.to(_dtype.get_default_dtype())
        return apply(_pow_scalar, input, exponent=exponent)
    return apply(_pow, *pair(input, exponent, "pow"))


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
def _unary(name, fwd, vjp, saves_output=False, saves=None):
    op = defop(name, fwd, vjp, saves_output=saves_output, saves=saves)

    def fn(input):
        return apply(op, input)

    fn.__name__ = name
    return op, fn


_neg, neg = _unary("neg", np.negative, lambda g, out, x: -g, saves=())
_exp, exp = _unary("exp", np.exp, lambda g, out, x: g * out, saves_output=True, saves=())
_log, log = _unary("log", np.log, lambda g, out, x: g / x)
_log1p, log1p = _unary("log1p", np.log1p, lambda g, out, x: g / (x + 1))
_expm1, expm1 = _unary("expm1", np.expm1, lambda g, out, x: g * (out + 1), saves_output=True, saves=())
_sqrt, sqrt = _unary("sqrt", np.sqrt, lambda g, out, x: g / (out * 2), saves_output=True, saves=())
_rsqrt, rsqrt = _unary("rsqrt", lambda x: 1 / np.sqrt(x), lambda g, out, x: g * out ** 3 * -0.5,
                       saves_output=True, saves=())
_sin, sin = _unary("sin", np.sin, lambda g, out, x: g * cos(x))
_cos, cos = _unary("cos", np.cos, lambda g, out, x: -g * sin(x))
_tanh, tanh = _unary("tanh", np.tanh, lambda g, out, x: g * (1 - out * out), saves_output=True, saves=())
_sigmoid, sigmoid = _unary("sigmoid", lambda x: _sp.expit(x).astype(x.dtype, copy=False),
                           lambda g, out, x: g * out * (1 - out), saves_output=True, saves=())
_abs, abs = _unary("abs", np.abs, lambda g, out, x: g * sign(x))
_erf, erf = _unary("erf", lambda x: _sp.erf(x).astype(x.dtype, copy=False),
                   lambda g, out, x: g * exp(-x * x) * (2 / np.sqrt(np.pi)))
_relu, relu = _unary("relu", lambda x: np.maximum(x, 0).astype(x.dtype, copy=False),
                     lambda g, out, x: g * (out > 0).to(g.dtype), saves_output=True, saves=())

# sign has a zero gradient everywhere (as in PyTorch), which keeps it usable inside VJPs.
_sign = defop("sign", np.sign, _zero_vjp, saves=())


def sign(input):
    return apply(_sign, input)


def where(condition, input, other):
    """Elementwise ``input if condition else other``; ``condition`` is a bool tensor."""
    x, y = pair(input, other, "where")
    cond = as_tensor(condition, "where")
    if cond._data.dtype != np.bool_:
        raise TypeError(f"where: condition must be a bool tensor, got {cond._data.dtype}")
    return apply(_where, cond, x, y)


_where = defop("where", np.where, None,
               lambda g, out, c, x, y: g * c.to(g.dtype),
               lambda g, out, c, x, y: g * (~c).to(g.dtype), saves=(0,))

__all__ = ["add", "sub", "mul", "div", "pow", "maximum", "minimum", "neg", "exp", "log", "log1p",
           "expm1", "sqrt", "rsqrt", "sin", "cos", "tanh", "sigmoid", "abs", "erf", "relu", "sign",
           "where"]
