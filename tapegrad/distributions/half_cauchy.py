"""The half-Cauchy distribution: ``|x|`` for ``x ~ Cauchy(0, scale)`` (``HalfCauchy``)."""
from __future__ import annotations

import math

from . import constraints
from .cauchy import Cauchy
from .transformed_distribution import TransformedDistribution
from .transforms import AbsTransform
from .. import ops


class HalfCauchy(TransformedDistribution):
    """``HalfCauchy(scale)``: ``|X|`` for ``X ~ Cauchy(0, scale)`` (a common prior on scales).

    >>> HalfCauchy(ops.tensor([1.0])).log_prob(ops.tensor([2.0]))
    """

    arg_constraints = {"scale": constraints.positive}
    support = constraints.nonnegative
    has_rsample = True

    def __init__(self, scale, validate_args=None):
        super().__init__(Cauchy(0, scale, validate_args=False), AbsTransform(), validate_args=validate_args)

    def expand(self, batch_shape, _instance=None):
        return super().expand(batch_shape, self._get_checked_instance(HalfCauchy, _instance))

    @property
    def scale(self):
        """Scale of the Cauchy whose absolute value this is."""
        return self.base_dist.scale

    @property
    def mean(self):
        return ops.full(tuple(self._extended_shape()), math.inf, dtype=self.scale.dtype)

    @property
    def mode(self):
        return ops.zeros_like(self.scale)

    @property
    def variance(self):
        return self.base_dist.variance

    def log_prob(self, value):
        if self._validate_args:
            self._validate_sample(value)
        return ops.where(value >= 0, self.base_dist.log_prob(value) + math.log(2), -math.inf)

    def cdf(self, value):
        if self._validate_args:
            self._validate_sample(value)
        return 2 * self.base_dist.cdf(value) - 1

    def icdf(self, prob):
        return self.base_dist.icdf((prob + 1) / 2)

    def entropy(self):
        return self.base_dist.entropy() - math.log(2)
