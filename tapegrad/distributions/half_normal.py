"""The half-normal distribution: ``|x|`` for ``x ~ Normal(0, scale)`` (``HalfNormal``)."""
from __future__ import annotations

import math

from .normal import Normal
from .transformed_distribution import _FoldedAtZero
from .transforms import AbsTransform


class HalfNormal(_FoldedAtZero):
    """``HalfNormal(scale)``: ``|X|`` for ``X ~ Normal(0, scale)``.

    >>> HalfNormal(ops.tensor([1.0])).mean   # sqrt(2 / pi)
    """

    def __init__(self, scale, validate_args=None):
        super().__init__(Normal(0, scale, validate_args=False), AbsTransform(), validate_args=validate_args)

    def expand(self, batch_shape, _instance=None):
        return super().expand(batch_shape, self._get_checked_instance(HalfNormal, _instance))

    @property
    def mean(self):
        return self.scale * math.sqrt(2 / math.pi)

    @property
    def variance(self):
        return self.scale.pow(2) * (1 - 2 / math.pi)
