"""The Poisson distribution, ``Poisson(rate)``."""
from __future__ import annotations

from numbers import Number

import numpy as np

from .._compat import Size
from .._tape import grad_mode
from ..tensor import Tensor
from . import constraints
from .distribution import Distribution, broadcast_all
from .. import ops
from ..random import rng


class Poisson(Distribution):
    """``Poisson(rate)`` over ``0, 1, 2, ...``; samples are floats of the rate's dtype, as PyTorch's.

    >>> Poisson(ops.tensor([4.0])).log_prob(ops.tensor([2.0]))
    """

    arg_constraints = {"rate": constraints.nonnegative}
    support = constraints.nonnegative_integer

    def __init__(self, rate, validate_args=None):
        (self.rate,) = broadcast_all(rate)
        super().__init__(Size() if isinstance(rate, Number) else Size(self.rate.shape), validate_args=validate_args)

    @property
    def mean(self):
        return self.rate

    @property
    def mode(self):
        return self.rate.floor()

    @property
    def variance(self):
        return self.rate

    def sample(self, sample_shape=()):
        shape = tuple(self._extended_shape(sample_shape))
        with grad_mode.no_grad():
            rate = np.broadcast_to(self.rate._data, shape)
            return Tensor._wrap(rng().poisson(rate).astype(rate.dtype))

    def log_prob(self, value):
        if self._validate_args:
            self._validate_sample(value)
        rate, value = broadcast_all(self.rate, value)
        return value.xlogy(rate) - rate - (value + 1).lgamma()
