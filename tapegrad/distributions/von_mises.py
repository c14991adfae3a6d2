"""The von Mises distribution on the circle, ``VonMises(loc, concentration)``."""
from __future__ import annotations

import math

import numpy as np

from .._compat import Size
from .. import ops
from .. import random as _random
from .. import special
from . import constraints
from .distribution import Distribution, broadcast_all


def _rejection_sample(loc, kappa, proposal_r, shape):
    """Best and Fisher's (1979) rejection sampler, vectorised as PyTorch's, in float64."""
    rng = _random.rng()
    x = np.zeros(shape)
    done = np.zeros(shape, bool)
    while not done.all():
        u1, u2, u3 = rng.random((3,) + shape)
        z = np.cos(math.pi * u1)
        f = (1 + proposal_r * z) / (proposal_r + z)
        c = kappa * (proposal_r - f)
        with np.errstate(divide="ignore", invalid="ignore"):
            accept = ((c * (2 - c) - u2) > 0) | (np.log(c / u2) + 1 - c >= 0)
        accept &= ~done
        x = np.where(accept, np.sign(u3 - 0.5) * np.arccos(np.clip(f, -1, 1)), x)
        done |= accept
    return np.mod(x + math.pi + loc, 2 * math.pi) - math.pi


class VonMises(Distribution):
    """``VonMises(loc, concentration)``: the circular normal on ``[-pi, pi)``, density
    ``exp(k cos(x - loc)) / (2 pi I0(k))``. Sampled by rejection (no ``rsample``, as PyTorch).

    >>> VonMises(0.0, 4.0).log_prob(tapegrad.tensor(0.1))
    """

    arg_constraints = {"loc": constraints.real, "concentration": constraints.positive}
    support = constraints.real
    has_rsample = False

    def __init__(self, loc, concentration, validate_args=None):
        self.loc, self.concentration = broadcast_all(loc, concentration)
        super().__init__(Size(self.loc.shape), validate_args=validate_args)

    def expand(self, batch_shape, _instance=None):
        new = self._get_checked_instance(VonMises, _instance)
        shape = tuple(batch_shape)
        new.loc, new.concentration = self.loc.expand(shape), self.concentration.expand(shape)
        Distribution.__init__(new, Size(shape), validate_args=False)
        new._validate_args = self._validate_args
        return new

    def log_prob(self, value):
        if self._validate_args:
            self._validate_sample(value)
        k = self.concentration
        # log I0(k) = log i0e(k) + k: finite for any k
        return k * ops.cos(value - self.loc) - math.log(2 * math.pi) - (special.i0e(k).log() + k)

    @property
    def _proposal_r(self):
        k = self.concentration._data.astype(np.float64)
        tau = 1 + np.sqrt(1 + 4 * k ** 2)
        with np.errstate(divide="ignore", invalid="ignore"):
            rho = (tau - np.sqrt(2 * tau)) / (2 * k)
            r = (1 + rho ** 2) / (2 * rho)
            return np.where(k < 1e-5, 1 / k + k, r)  # second-order Taylor expansion for small k

    def sample(self, sample_shape=()):
        """Draws by rejection in float64 (as PyTorch), returned in the parameters' dtype."""
        shape = tuple(self._extended_shape(sample_shape))
        loc = np.broadcast_to(self.loc._data.astype(np.float64), shape)
        kappa = np.broadcast_to(self.concentration._data.astype(np.float64), shape)
        r = np.broadcast_to(self._proposal_r, shape)
        return ops.tensor(_rejection_sample(loc, kappa, r, shape).astype(self.loc._data.dtype))

    @property
    def mean(self):
        """The circular mean, ``loc``."""
        return self.loc

    @property
    def mode(self):
        return self.loc

    @property
    def variance(self):
        """The circular variance ``1 - I1(k) / I0(k)``."""
        k = self.concentration
        return 1 - special.i1e(k) / special.i0e(k)
