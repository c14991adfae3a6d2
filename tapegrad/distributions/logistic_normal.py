"""The logistic-normal distribution: a Normal mapped onto the simplex by stick-breaking (``LogisticNormal``)."""
from __future__ import annotations

from . import constraints
from .normal import Normal
from .transformed_distribution import TransformedDistribution
from .transforms import StickBreakingTransform
from .. import ops


class LogisticNormal(TransformedDistribution):
    """``LogisticNormal(loc, scale)``: a Normal vector of length K-1 mapped onto the K-simplex by
    stick breaking.

    >>> LogisticNormal(ops.zeros(3), ops.ones(3)).rsample().sum()   # 1
    """

    arg_constraints = {"loc": constraints.real, "scale": constraints.positive}
    support = constraints.simplex
    has_rsample = True

    def __init__(self, loc, scale, validate_args=None):
        base = Normal(loc, scale, validate_args=validate_args)
        if not base.batch_shape:
            base = base.expand([1])
        super().__init__(base, StickBreakingTransform(), validate_args=validate_args)

    def expand(self, batch_shape, _instance=None):
        return super().expand(batch_shape, self._get_checked_instance(LogisticNormal, _instance))

    @property
    def loc(self):
        """Mean of the underlying Normal (of the logits before the stick-breaking)."""
        return self.base_dist.base_dist.loc

    @property
    def scale(self):
        """Standard deviation of the underlying Normal."""
        return self.base_dist.base_dist.scale
