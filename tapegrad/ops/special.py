"""The ``torch.special`` functions that have a derivative: modified Bessel functions (i0, i0e, i1,
i1e), ``entr``, ``erfcx``, Hurwitz ``zeta`` and the regularised incomplete gamma functions; scipy
computes the values, the VJPs are written in ops (so they differentiate again). Their ops carry a
``special_`` prefix: ``tapegrad.special`` exposes them under PyTorch's names.

Where PyTorch has no derivative (zeta in its first argument, gammainc/gammaincc in ``a``), the
VJP is None and that input gets no gradient, as in PyTorch."""
from __future__ import annotations

import numpy as np
import scipy.special as _sp

from .._tape.registry import apply, defop
from ._util import as_tensor
from .pointwise import _float_pair, _keep_dtype, _to_float, exp, lgamma, log, log1p, ndtr, sign, where
from .surface import public

_SQRT1_2 = float(np.sqrt(0.5))

Tensor = None  # the Tensor class, bound by tensor.py (ops.bind_tensor)


def _unary(name, fwd, vjp, doc, saves_output=False):
    op = defop("special_" + name, _keep_dtype(fwd), vjp, saves_output=saves_output,
               saves=() if saves_output else None)

    def fn(input):
        return apply(op, _to_float(as_tensor(input, name)))
    fn.__name__ = name
    fn.__doc__ = doc
    return op, fn


def _i1_over_x(x, i1x, half):
    """``i1(x) / x`` (``i1e(x) / x``), its limit 1/2 at x = 0 filled in."""
    zero = x == 0
    return where(zero, half, i1x / where(zero, x * 0 + 1, x))


_i0, i0 = _unary("i0", _sp.i0, lambda g, out, x: g * i1(x),
                 "The modified Bessel function of the first kind of order 0; its derivative is ``i1``.")
_i0e, i0e = _unary("i0e", _sp.i0e, lambda g, out, x: g * (i1e(x) - sign(x) * i0e(x)),
                   "``exp(-|x|) * i0(x)``, the exponentially scaled ``i0`` (finite for large ``|x|``).")
_i1, i1 = _unary("i1", _sp.i1, lambda g, out, x: g * (i0(x) - _i1_over_x(x, i1(x), x * 0 + 0.5)),
                 "The modified Bessel function of the first kind of order 1.")
_i1e, i1e = _unary("i1e", _sp.i1e, lambda g, out, x: g * (i0e(x) - sign(x) * i1e(x)
                                                          - _i1_over_x(x, i1e(x), x * 0 + 0.5)),
                   "``exp(-|x|) * i1(x)``, the exponentially scaled ``i1``.")
_erfcx, erfcx = _unary("erfcx", _sp.erfcx,
                       lambda g, out, x: g * (2 * x * erfcx(x) - 2 / np.sqrt(np.pi)),
                       "The scaled complementary error function ``exp(x**2) * erfc(x)``, without overflow.")


def log_ndtr(input):
    """``log(ndtr(x))``, the log of the standard normal CDF, finite in both tails: below -1 as
    ``log(erfcx(-x / sqrt 2) / 2) - x**2 / 2`` (ndtr itself underflows to 0 near -38), above as
    ``log1p(-ndtr(-x))`` (ndtr rounds to 1). Each branch sees only inputs of its own side, so
    neither leaves an inf or NaN in the other's gradient."""
    x = _to_float(input)
    low = x < -1
    xl = where(low, x, x * 0 - 1)
    xh = where(low, x * 0 - 1, x)
    return where(low, log(erfcx(xl * -_SQRT1_2) * 0.5) - xl * xl * 0.5, log1p(-ndtr(-xh)))


_entr, entr = _unary("entr", _sp.entr, lambda g, out, x: g * -(1 + log(x)),
                     "The entropy term ``-x log x`` (0 at 0, -inf for negative x).")

# d/dx zeta(x, q) has no closed form (PyTorch leaves it out too); d/dq = -x zeta(x + 1, q)
_zeta = defop("special_zeta", _keep_dtype(_sp.zeta), None, lambda g, out, x, q: g * -x * zeta(x + 1, q))


def zeta(input, other):
    """The Hurwitz zeta function ``sum_k (k + other) ** -input``."""
    return apply(_zeta, *_float_pair(input, other, "zeta"))


def _gamma_density(a, x):
    """``x ** (a - 1) exp(-x) / Gamma(a)``: the derivative of gammainc in x."""
    return exp((a - 1) * log(x) - x - lgamma(a))


_gammainc = defop("special_gammainc", _keep_dtype(_sp.gammainc), None,
                  lambda g, out, a, x: g * _gamma_density(a, x))
_gammaincc = defop("special_gammaincc", _keep_dtype(_sp.gammaincc), None,
                   lambda g, out, a, x: -g * _gamma_density(a, x))


def gammainc(input, other):
    """The regularised lower incomplete gamma function ``P(input, other)``."""
    return apply(_gammainc, *_float_pair(input, other, "gammainc"))


def gammaincc(input, other):
    """The regularised upper incomplete gamma function ``Q(input, other) = 1 - P(input, other)``."""
    return apply(_gammaincc, *_float_pair(input, other, "gammaincc"))


# PyTorch's top-level and Tensor-method names for three of them (torch.i0, torch.igamma, torch.igammac)
public(i0, method=True, inplace=True, out=True)
public(gammainc, name="igamma", method=True, inplace=True, out=True)
public(gammaincc, name="igammac", method=True, inplace=True, out=True)
