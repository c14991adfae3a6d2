"""The half-Cauchy distribution: ``|x|`` for ``x ~ Cauchy(0, scale)`` (``HalfCauchy``)."""
from __future__ import annotations

import math

from .cauchy import Cauchy
from .transformed_distribution import _FoldedAtZero
from .transforms import AbsTransform
from .. import ops


class HalfCauchy(_FoldedAtZero):
    """``HalfCauchy(scale)``: ``|X|`` for ``X ~ Cauchy(0, scale)`` (a common prior on scales).

    >>> HalfCauchy(ops.tensor([1.0])).log_prob(ops.tensor([2.0]))
    """

    def __init__(self, scale, validate_args=None):
        super().__init__(Cauchy(0, scale, validate_args=False), AbsTransform(), validate_args=validate_args)

    def expand(self, batch_shape, _instance=None):
        return super().expand(batch_shape, self._get_checked_instance(HalfCauchy, _instance))

    @property
    def mean(self):
        return ops.full(tuple(self._extended_shape()), math.inf, dtype=self.scale.dtype)

    @property
    def variance(self):
        return self.base_dist.variance
