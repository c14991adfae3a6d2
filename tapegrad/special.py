"""``tapegrad.special``: PyTorch's ``torch.special`` names, over the special functions in
``tapegrad.ops.pointwise`` (and ``logsumexp``/``softmax`` from their domains).

>>> tapegrad.special.gammaln(tapegrad.tensor([4.0]))   # log(3!)
tensor([1.7918])
"""
from .ops.activation import log_softmax, softmax  # noqa: F401
from .ops.pointwise import (acos, acosh, addcdiv, addcmul, arccos, arccosh, arcsin, arcsinh, arctan,  # noqa: F401
                            arctanh, asin, asinh, atan, atanh, cosh, digamma, erf, erfc, erfinv, exp2, expm1,
                            floor_divide, fmod, frac, hypot, lerp, lgamma, log10, log1p, log2, logaddexp,
                            logit, multigammaln, nan_to_num, ndtr, ndtri, polygamma, remainder, round, sgn, sinc, sinh,
                            xlog1py, xlogy)
from .ops.pointwise import sigmoid as expit  # noqa: F401
from .ops.reduction import logsumexp  # noqa: F401
from .ops.special import entr, erfcx, log_ndtr, gammainc, gammaincc, i0, i0e, i1, i1e, zeta  # noqa: F401
from .ops._util import as_tensor as _as_tensor, pair as _pair
from .ops.pointwise import _to_float
from .tensor import Tensor

import numpy as np
import scipy.special as _sp

gammaln = lgamma
psi = digamma

modified_bessel_i0 = i0
modified_bessel_i1 = i1


def _values(fn, input, name):
    """``fn`` on the float values of ``input``: a new tensor, not recorded (PyTorch has no
    derivative for these functions either)."""
    x = _to_float(_as_tensor(input, name))
    return Tensor._wrap(np.asarray(fn(x._data), dtype=x._data.dtype))


def bessel_j0(input):
    """The Bessel function of the first kind of order 0 (no gradient, as in PyTorch)."""
    return _values(_sp.j0, input, "bessel_j0")


def bessel_j1(input):
    """The Bessel function of the first kind of order 1 (no gradient, as in PyTorch)."""
    return _values(_sp.j1, input, "bessel_j1")


def bessel_y0(input):
    """The Bessel function of the second kind of order 0 (no gradient, as in PyTorch)."""
    return _values(_sp.y0, input, "bessel_y0")


def bessel_y1(input):
    """The Bessel function of the second kind of order 1 (no gradient, as in PyTorch)."""
    return _values(_sp.y1, input, "bessel_y1")


def modified_bessel_k0(input):
    """The modified Bessel function of the second kind of order 0 (no gradient, as in PyTorch)."""
    return _values(_sp.k0, input, "modified_bessel_k0")


def modified_bessel_k1(input):
    """The modified Bessel function of the second kind of order 1 (no gradient, as in PyTorch)."""
    return _values(_sp.k1, input, "modified_bessel_k1")


def scaled_modified_bessel_k0(input):
    """``exp(x) * modified_bessel_k0(x)`` (no gradient, as in PyTorch)."""
    return _values(_sp.k0e, input, "scaled_modified_bessel_k0")


def scaled_modified_bessel_k1(input):
    """``exp(x) * modified_bessel_k1(x)`` (no gradient, as in PyTorch)."""
    return _values(_sp.k1e, input, "scaled_modified_bessel_k1")


def spherical_bessel_j0(input):
    """``sin(x) / x`` (1 at 0), the spherical Bessel function of order 0 (no gradient, as in PyTorch)."""
    return _values(lambda a: _sp.spherical_jn(0, a), input, "spherical_bessel_j0")


def airy_ai(input):
    """The Airy function Ai (no gradient, as in PyTorch)."""
    return _values(lambda a: _sp.airy(a)[0], input, "airy_ai")


def _polynomial(name, first, step, shifted=False):
    """A family ``p_0 = 1, p_1 = first(x), p_{k+1} = step(k, x, p_k, p_{k-1})`` evaluated at the
    integer part of ``n`` (0 for negative n, as PyTorch), elementwise over broadcast x and n."""
    def fn(input, n):
        x, nn = _pair(input, n, name)
        x, nn = _to_float(x), _to_float(nn)
        dt = x._data.dtype
        xa, na = np.broadcast_arrays(x._data, np.trunc(nn._data))
        if shifted:
            xa = 2 * xa - 1
        top = int(np.nanmax(na, initial=0)) if na.size else 0
        out = np.where(na == 0, 1.0, 0.0).astype(dt)
        prev, cur = np.ones_like(xa), first(xa)
        if top >= 1:
            out = np.where(na == 1, cur, out)
        for k in range(1, top):
            prev, cur = cur, step(k, xa, cur, prev)
            out = np.where(na == k + 1, cur, out)
        return Tensor._wrap(np.asarray(out, dtype=dt))
    fn.__name__ = name
    return fn


def _cheb(k, x, p, q):
    return 2 * x * p - q


chebyshev_polynomial_t = _polynomial("chebyshev_polynomial_t", lambda x: x, _cheb)
chebyshev_polynomial_u = _polynomial("chebyshev_polynomial_u", lambda x: 2 * x, _cheb)
chebyshev_polynomial_v = _polynomial("chebyshev_polynomial_v", lambda x: 2 * x - 1, _cheb)
chebyshev_polynomial_w = _polynomial("chebyshev_polynomial_w", lambda x: 2 * x + 1, _cheb)
shifted_chebyshev_polynomial_t = _polynomial("shifted_chebyshev_polynomial_t", lambda x: x, _cheb, True)
shifted_chebyshev_polynomial_u = _polynomial("shifted_chebyshev_polynomial_u", lambda x: 2 * x, _cheb, True)
shifted_chebyshev_polynomial_v = _polynomial("shifted_chebyshev_polynomial_v", lambda x: 2 * x - 1, _cheb, True)
shifted_chebyshev_polynomial_w = _polynomial("shifted_chebyshev_polynomial_w", lambda x: 2 * x + 1, _cheb, True)
hermite_polynomial_h = _polynomial("hermite_polynomial_h", lambda x: 2 * x, lambda k, x, p, q: 2 * x * p - 2 * k * q)
hermite_polynomial_he = _polynomial("hermite_polynomial_he", lambda x: x, lambda k, x, p, q: x * p - k * q)
laguerre_polynomial_l = _polynomial("laguerre_polynomial_l", lambda x: 1 - x,
                                    lambda k, x, p, q: ((2 * k + 1 - x) * p - k * q) / (k + 1))
legendre_polynomial_p = _polynomial("legendre_polynomial_p", lambda x: x,
                                    lambda k, x, p, q: ((2 * k + 1) * x * p - k * q) / (k + 1))

for _f, _kind in ((chebyshev_polynomial_t, "Chebyshev polynomial of the first kind"),
                  (chebyshev_polynomial_u, "Chebyshev polynomial of the second kind"),
                  (chebyshev_polynomial_v, "Chebyshev polynomial of the third kind"),
                  (chebyshev_polynomial_w, "Chebyshev polynomial of the fourth kind"),
                  (shifted_chebyshev_polynomial_t, "shifted Chebyshev polynomial of the first kind"),
                  (shifted_chebyshev_polynomial_u, "shifted Chebyshev polynomial of the second kind"),
                  (shifted_chebyshev_polynomial_v, "shifted Chebyshev polynomial of the third kind"),
                  (shifted_chebyshev_polynomial_w, "shifted Chebyshev polynomial of the fourth kind"),
                  (hermite_polynomial_h, "physicists' Hermite polynomial"),
                  (hermite_polynomial_he, "probabilists' Hermite polynomial"),
                  (laguerre_polynomial_l, "Laguerre polynomial"), (legendre_polynomial_p, "Legendre polynomial")):
    _f.__doc__ = (f"The {_kind} of degree ``n`` (its integer part; 0 for negative n) at ``input``, "
                  f"by its three-term recurrence; no gradient, as in PyTorch.")
