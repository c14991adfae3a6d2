"""The exponential distribution, ``Exponential(rate)``."""
from __future__ import annotations

from numbers import Number

from .._compat import Size
from . import constraints
from .distribution import Distribution, _uniform, broadcast_all
from .. import ops


class Exponential(Distribution):
    """``Exponential(rate)`` on ``[0, inf)``; ``rsample`` is ``-log1p(-u) / rate``, differentiable in the rate.

    >>> Exponential(ops.tensor([0.5, 2.0])).log_prob(ops.tensor([1.0, 1.0]))
    """

    arg_constraints = {"rate": constraints.positive}
    support = constraints.nonnegative
    has_rsample = True

    def __init__(self, rate, validate_args=None):
        (self.rate,) = broadcast_all(rate)
        super().__init__(Size() if isinstance(rate, Number) else Size(self.rate.shape), validate_args=validate_args)

    @property
    def mean(self):
        return self.rate.reciprocal()

    @property
    def mode(self):
        return ops.zeros_like(self.rate)

    @property
    def stddev(self):
        return self.rate.reciprocal()

    @property
    def variance(self):
        return self.rate.pow(-2)

    def rsample(self, sample_shape=()):
        u = _uniform(self._extended_shape(sample_shape), self.rate.dtype)
        return -(-u).log1p() / self.rate  # u < 1, so the draw is finite

    def log_prob(self, value):
        if self._validate_args:
            self._validate_sample(value)
        return self.rate.log() - self.rate * value

    def cdf(self, value):
        if self._validate_args:
            self._validate_sample(value)
        return 1 - (-self.rate * value).exp()

    def icdf(self, value):
        return -(-value).log1p() / self.rate

    def entropy(self):
        return 1.0 - self.rate.log()
