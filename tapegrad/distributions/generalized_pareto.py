"""The generalised Pareto distribution, ``GeneralizedPareto(loc, scale, concentration)``."""
from __future__ import annotations

import math

import numpy as np

from .._compat import Size
from .. import ops
from . import constraints
from .distribution import Distribution, _uniform, broadcast_all


class GeneralizedPareto(Distribution):
    """``GeneralizedPareto(loc, scale, concentration)``: the tail model of extreme-value theory
    (exponential for concentration 0, bounded above for negative concentration); ``rsample`` is
    the inverse CDF of a uniform draw, differentiable in all three parameters.

    >>> GeneralizedPareto(0.0, 1.0, 0.5).mean   # 1 / (1 - 0.5)
    """

    arg_constraints = {"loc": constraints.real, "scale": constraints.positive, "concentration": constraints.real}
    has_rsample = True

    def __init__(self, loc, scale, concentration, validate_args=None):
        self.loc, self.scale, self.concentration = broadcast_all(loc, scale, concentration)
        super().__init__(Size(self.loc.shape), validate_args=validate_args)

    def expand(self, batch_shape, _instance=None):
        new = self._get_checked_instance(GeneralizedPareto, _instance)
        shape = tuple(batch_shape)
        new.loc, new.scale = self.loc.expand(shape), self.scale.expand(shape)
        new.concentration = self.concentration.expand(shape)
        Distribution.__init__(new, Size(shape), validate_args=False)
        new._validate_args = self._validate_args
        return new

    def _safe(self):
        """``(concentration == 0, concentration with its zeros replaced by 1)``, as PyTorch."""
        c = self.concentration
        zero = ops.isclose(c, ops.zeros_like(c))
        return zero, ops.where(zero, ops.ones_like(c), c)

    def rsample(self, sample_shape=()):
        return self.icdf(_uniform(self._extended_shape(sample_shape), self.loc.dtype))

    def _z(self, x):
        return (x - self.loc) / self.scale

    def log_prob(self, value):
        if self._validate_args:
            self._validate_sample(value)
        z = self._z(value)
        zero, c = self._safe()
        y = 1 / c + ops.ones_like(z)
        nonzero = ops.where(y == 0, y, y * ops.log1p(c * z))
        return -self.scale.log() - ops.where(zero, z, nonzero)

    def log_survival_function(self, value):
        """``log P(X > value)``."""
        z = self._z(value)
        zero, c = self._safe()
        return ops.where(zero, -z, -ops.log1p(c * z) / c)

    def log_cdf(self, value):
        """``log P(X <= value)``."""
        return ops.log1p(-ops.exp(self.log_survival_function(value)))

    def cdf(self, value):
        return ops.exp(self.log_cdf(value))

    def icdf(self, value):
        zero, c = self._safe()
        logu = ops.log1p(-value)
        return ops.where(zero, self.loc - self.scale * logu, self.loc + self.scale / c * ops.expm1(-c * logu))

    @property
    def mean(self):
        c = self.concentration
        valid = c < 1
        safe = ops.where(valid, c, ops.full_like(c, 0.5))
        return ops.where(valid, self.loc + self.scale / (1 - safe), ops.full_like(c, math.nan))

    @property
    def variance(self):
        c = self.concentration
        valid = c < 0.5
        safe = ops.where(valid, c, ops.full_like(c, 0.25))
        return ops.where(valid, self.scale ** 2 / ((1 - safe) ** 2 * (1 - 2 * safe)), ops.full_like(c, math.nan))

    def entropy(self):
        return (self.scale.log() + self.concentration + 1).expand(tuple(self._batch_shape))

    @property
    def mode(self):
        return self.loc

    @constraints.dependent_property(is_discrete=False, event_dim=0)
    def support(self):
        """``[loc, inf)``, or ``[loc, loc - scale / concentration]`` for negative concentration."""
        lower = self.loc
        with np.errstate(divide="ignore"):
            upper = ops.where(self.concentration < 0, lower - self.scale / self.concentration,
                              ops.full_like(lower, math.inf))
        return constraints.interval(lower, upper)
