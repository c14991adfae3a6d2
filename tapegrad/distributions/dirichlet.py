"""The Dirichlet distribution over the probability simplex (``Dirichlet(concentration)``)."""
from __future__ import annotations

import numpy as np

from .._compat import Size
from . import constraints
from .distribution import Distribution
from .gamma import _standard_gamma
from .. import ops
from ..nn import functional as F


class Dirichlet(Distribution):
    """``Dirichlet(concentration)`` on the simplex over the last dimension; ``rsample`` normalises
    Gamma draws, differentiable in the concentration through their implicit reparameterisation
    (the same expected gradient as PyTorch's ``_dirichlet_grad``).

    >>> Dirichlet(ops.tensor([0.5, 0.5])).sample()
    """

    arg_constraints = {"concentration": constraints.independent(constraints.positive, 1)}
    support = constraints.simplex
    has_rsample = True

    def __init__(self, concentration, validate_args=None):
        if concentration.ndim < 1:
            raise ValueError("`concentration` parameter must be at least one-dimensional.")
        self.concentration = concentration
        super().__init__(Size(concentration.shape[:-1]), Size(concentration.shape[-1:]), validate_args=validate_args)

    def rsample(self, sample_shape=()):
        g = _standard_gamma(self.concentration.expand(tuple(self._extended_shape(sample_shape))))
        return g / g.sum(-1, keepdim=True)

    def log_prob(self, value):
        if self._validate_args:
            self._validate_sample(value)
        c = self.concentration
        return (c - 1.0).xlogy(value).sum(-1) + c.sum(-1).lgamma() - c.lgamma().sum(-1)

    @property
    def mean(self):
        return self.concentration / self.concentration.sum(-1, keepdim=True)

    @property
    def mode(self):
        cm1 = (self.concentration - 1).clamp(min=0.0)
        with np.errstate(invalid="ignore"):  # 0/0 where no concentration exceeds 1: nan, as PyTorch's
            mode = cm1 / cm1.sum(-1, keepdim=True)
        # all concentrations below 1: the density peaks at a vertex; PyTorch picks the argmax of the
        # (nan) row, the first vertex
        vertex = F.one_hot(mode.argmax(-1), cm1.shape[-1]).to(mode.dtype)
        return ops.where((self.concentration < 1).all(-1, keepdim=True), vertex, mode)

    @property
    def variance(self):
        c0 = self.concentration.sum(-1, keepdim=True)
        return self.concentration * (c0 - self.concentration) / (c0.pow(2) * (c0 + 1))

    def entropy(self):
        c = self.concentration
        k, a0 = c.shape[-1], c.sum(-1)
        return c.lgamma().sum(-1) - a0.lgamma() - (k - a0) * a0.digamma() - ((c - 1.0) * c.digamma()).sum(-1)
