"""The Cauchy (Lorentz) distribution, ``Cauchy(loc, scale)``."""
from __future__ import annotations

import math
from numbers import Number

from .._compat import Size
from . import constraints
from .distribution import Distribution, _uniform, broadcast_all
from .. import ops


class Cauchy(Distribution):
    """``Cauchy(loc, scale)``: no mean or variance (``nan`` and ``inf``, as PyTorch's); ``rsample`` is
    ``loc + scale * tan(pi * (u - 1/2))``.

    >>> Cauchy(0.0, 1.0).icdf(ops.tensor(0.75))
    """

    arg_constraints = {"loc": constraints.real, "scale": constraints.positive}
    support = constraints.real
    has_rsample = True

    def __init__(self, loc, scale, validate_args=None):
        self.loc, self.scale = broadcast_all(loc, scale)
        scalar = isinstance(loc, Number) and isinstance(scale, Number)
        super().__init__(Size() if scalar else Size(self.loc.shape), validate_args=validate_args)

    @property
    def mean(self):
        return ops.full(tuple(self._extended_shape()), math.nan, dtype=self.loc.dtype)

    @property
    def mode(self):
        return self.loc

    @property
    def variance(self):
        return ops.full(tuple(self._extended_shape()), math.inf, dtype=self.loc.dtype)

    def rsample(self, sample_shape=()):
        u = _uniform(self._extended_shape(sample_shape), self.loc.dtype)
        return self.loc + (math.pi * (u - 0.5)).tan() * self.scale

    def log_prob(self, value):
        if self._validate_args:
            self._validate_sample(value)
        return -math.log(math.pi) - self.scale.log() - ((value - self.loc) / self.scale).pow(2).log1p()

    def cdf(self, value):
        if self._validate_args:
            self._validate_sample(value)
        return ((value - self.loc) / self.scale).atan() / math.pi + 0.5

    def icdf(self, value):
        return (math.pi * (value - 0.5)).tan() * self.scale + self.loc

    def entropy(self):
        return math.log(4 * math.pi) + self.scale.log()
