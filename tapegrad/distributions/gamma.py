"""``Gamma``: the Gamma distribution, reparameterised (implicit gradients of the draws)."""
from __future__ import annotations

from numbers import Number

import numpy as np

from .._compat import Size
from ..autograd.function import Function
from ..tensor import Tensor
from . import constraints
from .distribution import Distribution, broadcast_all
from scipy import special
from ..random import rng


def _standard_gamma_grad(alpha, x):
    """d x / d alpha of a Gamma(alpha, 1) draw x, by implicit differentiation of its CDF
    F(x; alpha) = gammainc(alpha, x): -(dF/dalpha) / (dF/dx), dF/dalpha by central differences."""
    alpha, x = np.asarray(alpha, np.float64), np.asarray(x, np.float64)
    h = 1e-5 * np.maximum(alpha, 1.0)
    dF_dalpha = (special.gammainc(alpha + h, x) - special.gammainc(np.maximum(alpha - h, 1e-300), x)) / (2 * h)
    with np.errstate(all="ignore"):
        log_pdf = (alpha - 1) * np.log(x) - x - special.gammaln(alpha)
        grad = -dF_dalpha / np.exp(log_pdf)
    return np.where(np.isfinite(grad), grad, 0.0)


class _StandardGamma(Function):
    """Gamma(alpha, 1) draws, differentiable in ``alpha`` (the implicit reparameterization
    PyTorch's ``_standard_gamma`` uses)."""

    @staticmethod
    def forward(ctx, alpha):
        a = alpha._data
        x = rng().standard_gamma(a.astype(np.float64))
        x = np.maximum(x, np.finfo(a.dtype).tiny).astype(a.dtype)
        ctx.save_for_backward(alpha)
        ctx.x = x
        return Tensor._wrap(x)

    @staticmethod
    def backward(ctx, grad):
        (alpha,) = ctx.saved_tensors
        d = _standard_gamma_grad(alpha._data, ctx.x).astype(alpha._data.dtype)
        return grad * Tensor._wrap(d)


def _standard_gamma(alpha):
    return _StandardGamma.apply(alpha)


class _GammaInc(Function):
    """The regularised lower incomplete gamma function P(a, x) (scipy's ``gammainc``), differentiable
    in ``x`` (its derivative is the Gamma(a, 1) density); in ``a`` it raises, as PyTorch's does."""

    @staticmethod
    def forward(ctx, a, x):
        ctx.save_for_backward(a, x)
        return Tensor._wrap(np.asarray(special.gammainc(a._data, x._data)).astype(x._data.dtype))

    @staticmethod
    def backward(ctx, grad):
        a, x = ctx.saved_tensors
        if ctx.needs_input_grad[0]:
            raise NotImplementedError("the derivative of gammainc (Gamma.cdf) in the concentration is not "
                                      "implemented, as in PyTorch")
        return None, grad * ((a - 1).xlogy(x) - x - a.lgamma()).exp()


class Gamma(Distribution):
    """``Gamma(concentration, rate)``; ``rsample`` is differentiable in both parameters."""

    arg_constraints = {"concentration": constraints.positive, "rate": constraints.positive}
    support = constraints.nonnegative
    has_rsample = True

    def __init__(self, concentration, rate, validate_args=None):
        self.concentration, self.rate = broadcast_all(concentration, rate)
        scalar = isinstance(concentration, Number) and isinstance(rate, Number)
        super().__init__(Size() if scalar else Size(self.concentration.shape), validate_args=validate_args)

    @property
    def mean(self):
        return self.concentration / self.rate

    @property
    def mode(self):
        return ((self.concentration - 1) / self.rate).clamp(min=0)

    @property
    def variance(self):
        return self.concentration / self.rate.pow(2)

    def rsample(self, sample_shape=()):
        shape = tuple(self._extended_shape(sample_shape))
        return _standard_gamma(self.concentration.expand(shape)) / self.rate.expand(shape)

    def log_prob(self, value):
        if self._validate_args:
            self._validate_sample(value)
        c, r = self.concentration, self.rate
        return c.xlogy(r) + (c - 1).xlogy(value) - r * value - c.lgamma()

    def cdf(self, value):
        if self._validate_args:
            self._validate_sample(value)
        c, x = broadcast_all(self.concentration, self.rate * value)
        return _GammaInc.apply(c, x)

    def entropy(self):
        c = self.concentration
        return c - self.rate.log() + c.lgamma() + (1.0 - c) * c.digamma()
