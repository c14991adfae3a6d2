"""The Pareto (type I) distribution, ``Pareto(scale, alpha)``."""
from __future__ import annotations

import numpy as np

from . import constraints
from .distribution import broadcast_all
from .exponential import Exponential
from .transformed_distribution import TransformedDistribution
from .transforms import AffineTransform, ExpTransform


class Pareto(TransformedDistribution):
    """``Pareto(scale, alpha)`` on ``[scale, inf)``: ``scale * exp(E)`` with ``E ~ Exponential(alpha)``.

    >>> Pareto(1.0, 3.0).mean   # 3 / 2
    """

    arg_constraints = {"alpha": constraints.positive, "scale": constraints.positive}

    def __init__(self, scale, alpha, validate_args=None):
        self.scale, self.alpha = broadcast_all(scale, alpha)
        base = Exponential(self.alpha, validate_args=validate_args)
        super().__init__(base, [ExpTransform(), AffineTransform(loc=0, scale=self.scale)], validate_args=validate_args)

    def expand(self, batch_shape, _instance=None):
        new = self._get_checked_instance(Pareto, _instance)
        new.scale = self.scale.expand(tuple(batch_shape))
        new.alpha = self.alpha.expand(tuple(batch_shape))
        return super().expand(batch_shape, _instance=new)

    @property
    def mean(self):
        a = self.alpha.clamp(min=1)
        with np.errstate(divide="ignore"):
            return a * self.scale / (a - 1)  # inf for alpha <= 1, as PyTorch's

    @property
    def mode(self):
        return self.scale

    @property
    def variance(self):
        a = self.alpha.clamp(min=2)
        with np.errstate(divide="ignore"):
            return self.scale.pow(2) * a / ((a - 1).pow(2) * (a - 2))  # inf for alpha <= 2

    @constraints.dependent_property(is_discrete=False, event_dim=0)
    def support(self):
        """The constraint that the distribution's values satisfy."""
        return constraints.greater_than_eq(self.scale)

    def entropy(self):
        return (self.scale / self.alpha).log() + (1 + self.alpha.reciprocal())
