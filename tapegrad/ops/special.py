"""More elementwise math: logs and exps in other bases, hyperbolic and inverse trig functions,
``logit``/``erfinv``/``erfc``, two-argument ``hypot``/``logaddexp``/``remainder``/``fmod`` and the
fused ``lerp``/``addcmul``/``addcdiv``, with PyTorch's names and gradients.

Integer inputs become the default float dtype, as in PyTorch.
"""
from __future__ import annotations

import math

import numpy as np
import scipy.special as _sp

Tensor = None  # the Tensor class, bound by tensor.py (ops.bind_tensor): the ops sit below it
from .._tape.registry import apply, defop
from ._util import const, pair, as_tensor, integer_division_checked
from .compare import isfinite
from .elementwise import _to_float, add, clamp, div, exp, floor, mul, rsqrt, sign, trunc

_LN2, _LN10 = math.log(2.0), math.log(10.0)
_2_SQRTPI = 2 / math.sqrt(math.pi)


def _same(fn):
    """A forward that keeps the input's float dtype (numpy/scipy may compute in float64)."""
    return lambda *xs, **kw: np.asarray(fn(*xs, **kw), dtype=xs[0].dtype)


def _unary(name, fwd, vjp, saves_output=False, saves=None, doc=None):
    op = defop(name, _same(fwd), vjp, saves_output=saves_output, saves=saves)

    def fn(input):
        return apply(op, _to_float(as_tensor(input, name)))

    fn.__name__ = name
    fn.__doc__ = doc
    return op, fn


_exp2, exp2 = _unary("exp2", np.exp2, lambda g, out, x: g * out * _LN2, saves_output=True, saves=())
_log2, log2 = _unary("log2", np.log2, lambda g, out, x: g / (x * _LN2))
_log10, log10 = _unary("log10", np.log10, lambda g, out, x: g / (x * _LN10))
_sinh, sinh = _unary("sinh", np.sinh, lambda g, out, x: g * cosh(x))
_cosh, cosh = _unary("cosh", np.cosh, lambda g, out, x: g * sinh(x))
_asin, asin = _unary("asin", np.arcsin, lambda g, out, x: g * rsqrt(1 - x * x))
_acos, acos = _unary("acos", np.arccos, lambda g, out, x: -g * rsqrt(1 - x * x))
_atan, atan = _unary("atan", np.arctan, lambda g, out, x: g / (x * x + 1))
_asinh, asinh = _unary("asinh", np.arcsinh, lambda g, out, x: g * rsqrt(x * x + 1))
_acosh, acosh = _unary("acosh", np.arccosh, lambda g, out, x: g * rsqrt(x * x - 1))
_atanh, atanh = _unary("atanh", np.arctanh, lambda g, out, x: g / (1 - x * x))
_erfc, erfc = _unary("erfc", _sp.erfc, lambda g, out, x: -g * exp(-x * x) * _2_SQRTPI)
_erfinv, erfinv = _unary("erfinv", _sp.erfinv, lambda g, out, x: g * exp(out * out) * (math.sqrt(math.pi) / 2),
                         saves_output=True, saves=())
_lgamma, lgamma = _unary("lgamma", _sp.gammaln, lambda g, out, x: g * digamma(x),
                         doc="``log|Gamma(x)|``; its derivative is ``digamma``.")
_digamma, digamma = _unary("digamma", _sp.digamma, lambda g, out, x: g * polygamma(1, x),
                           doc="``d/dx log Gamma(x)``; its derivative is ``polygamma(1, x)``.")
_polygamma = defop("polygamma", _same(lambda x, n: _sp.polygamma(n, x)),
                   lambda g, out, x, n: g * apply(_polygamma, x, n=n + 1))


def polygamma(n, input):
    """The ``n``-th derivative of ``digamma`` (``n = 0``: digamma itself).

    >>> tapegrad.polygamma(1, tapegrad.tensor([1.0]))   # pi^2 / 6
    tensor([1.6449])
    """
    if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 0:
        raise RuntimeError(f"polygamma(n, x) does not support negative or non-integer n, got n = {n!r}")
    return apply(_polygamma, _to_float(as_tensor(input, "polygamma")), n=int(n))


_frac, _frac_fn = _unary("frac", lambda x: x - np.trunc(x), lambda g, out, x: g, saves=())


def frac(input):
    """``input - trunc(input)``; floats only, as in PyTorch."""
    if input._data.dtype.kind != "f":
        raise RuntimeError(f"frac: not implemented for {input._data.dtype} tensors")
    return apply(_frac, input)
arcsin, arccos, arctan, arcsinh, arccosh, arctanh = asin, acos, atan, asinh, acosh, atanh
special_erfinv = erfinv

_logit = defop("logit", _same(lambda x: np.log(x / (1 - x))), lambda g, out, x: g / (x * (1 - x)))


def logit(input, eps=None):
    """``log(p / (1 - p))``; with ``eps``, ``p`` is first clamped to ``[eps, 1 - eps]``.

    >>> tapegrad.logit(tapegrad.tensor([0.5, 0.75]))
    tensor([0.0000, 1.0986])
    """
    x = _to_float(as_tensor(input, "logit"))
    if eps is not None:
        x = clamp(x, eps, 1 - eps)
    return apply(_logit, x)


def _float_pair(a, b, opname):
    a, b = pair(a, b, opname)
    return _to_float(a), _to_float(b)


_hypot = defop("hypot", np.hypot, lambda g, out, a, b: g * a / out, lambda g, out, a, b: g * b / out,
               saves_output=True)
_logaddexp = defop("logaddexp", np.logaddexp, lambda g, out, a, b: g * exp(a - out),
                   lambda g, out, a, b: g * exp(b - out), saves_output=True)


def hypot(input, other):
    """``sqrt(input**2 + other**2)`` without overflow."""
    return apply(_hypot, *_float_pair(input, other, "hypot"))


def logaddexp(input, other):
    """``log(exp(input) + exp(other))`` without overflow."""
    return apply(_logaddexp, *_float_pair(input, other, "logaddexp"))


# PyTorch: d remainder(a, b) / db = -floor(a / b), d fmod(a, b) / db = -trunc(a / b)
_remainder = defop("remainder", np.remainder, lambda g, out, a, b: g, lambda g, out, a, b: -g * floor(a / b))
_fmod = defop("fmod", np.fmod, lambda g, out, a, b: g, lambda g, out, a, b: -g * trunc(a / b))


def _int_mod(npfn, a, b, opname):
    integer_division_checked(a, b, opname)
    return Tensor._wrap(npfn(a._data, b._data))


def remainder(input, other):
    """Python's ``%``: the result has the sign of the divisor."""
    a, b = pair(input, other, "remainder")
    if a._data.dtype.kind != "f":
        return _int_mod(np.remainder, a, b, "remainder")
    return apply(_remainder, a, b)


def fmod(input, other):
    """C's ``fmod``: the result has the sign of the dividend."""
    a, b = pair(input, other, "fmod")
    if a._data.dtype.kind != "f":
        return _int_mod(np.fmod, a, b, "fmod")
    return apply(_fmod, a, b)


def floor_divide(input, other):
    """``floor(input / other)`` (PyTorch >= 1.13 rounds down, like Python's ``//``)."""
    return div(input, other, rounding_mode="floor")


def _lerp_fwd(a, b, w):
    # PyTorch's two-sided formula: exact at w = 0 and w = 1
    d = b - a
    return np.asarray(np.where(np.abs(w) < 0.5, a + w * d, b - d * (1 - w)), dtype=np.result_type(a, b))


_lerp = defop("lerp", _lerp_fwd, lambda g, out, a, b, w: g * (1 - w), lambda g, out, a, b, w: g * w,
              lambda g, out, a, b, w: g * (b - a))


def lerp(input, end, weight):
    """``input + weight * (end - input)``; ``weight`` a number or a tensor (differentiable).

    >>> tapegrad.lerp(tapegrad.zeros(2), tapegrad.ones(2), 0.25)
    tensor([0.2500, 0.2500])
    """
    if isinstance(end, Tensor) and isinstance(input, Tensor) and end.dtype != input.dtype:
        raise RuntimeError(f"lerp: expected dtype {input.dtype} for `end` but got dtype {end.dtype}")
    a, b = pair(input, end, "lerp")
    if a._data.dtype.kind != "f":
        raise RuntimeError(f"lerp: expected floating-point input and end, got {a._data.dtype}")
    w = weight.to(a.dtype) if isinstance(weight, Tensor) else const(weight, a.dtype)
    return apply(_lerp, a, b, w)


def addcmul(input, tensor1, tensor2, *, value=1):
    """``input + value * tensor1 * tensor2``; the tensors alone set the dtype (PyTorch casts ``value``)."""
    from .. import _dtype
    prod = mul(tensor1, tensor2)
    d = _dtype.result_type(input._data, prod._data)
    if d == np.bool_:
        raise RuntimeError("addcmul: not implemented for 'Bool' tensors")
    prod = prod.to(d)
    if value != 1:
        prod = mul(prod, int(value) if d.kind != "f" else value)
    return add(input.to(d), prod)


def addcdiv(input, tensor1, tensor2, *, value=1):
    """``input + value * tensor1 / tensor2``."""
    if tensor1._data.dtype.kind != "f" and tensor2._data.dtype.kind != "f":
        raise RuntimeError("addcdiv: integer division with addcdiv is no longer supported; use floating-point "
                           f"tensors (got {tensor1._data.dtype} and {tensor2._data.dtype})")
    q = div(tensor1, tensor2)
    return add(input, mul(q, value) if value != 1 else q)


_nan_to_num = defop("nan_to_num", lambda x, nan, posinf, neginf: np.nan_to_num(x, nan=nan, posinf=posinf,
                                                                               neginf=neginf),
                    lambda g, out, x, nan, posinf, neginf: g * isfinite(x).to(g.dtype))


def nan_to_num(input, nan=0.0, posinf=None, neginf=None):
    """NaN to ``nan``, +-inf to ``posinf``/``neginf`` (default: the dtype's largest/smallest finite)."""
    if input._data.dtype.kind != "f":
        return Tensor._wrap(input._data.copy())
    return apply(_nan_to_num, input, nan=float(nan), posinf=posinf, neginf=neginf)


def sgn(input):
    """``sign`` (tapegrad has no complex tensors)."""
    return sign(input)


__all__ = ["exp2", "log2", "log10", "sinh", "cosh", "asin", "acos", "atan", "asinh", "acosh", "atanh",
           "arcsin", "arccos", "arctan", "arcsinh", "arccosh", "arctanh", "erfc", "erfinv", "lgamma", "digamma",
           "polygamma", "frac", "logit",
           "hypot", "logaddexp", "remainder", "fmod", "floor_divide", "lerp", "addcmul", "addcdiv", "nan_to_num",
           "sgn"]
