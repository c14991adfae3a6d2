"""The multinomial distribution: category counts of ``total_count`` draws (``Multinomial``)."""
from __future__ import annotations

import math

import numpy as np

from .._tape import grad_mode
from ..tensor import Tensor
from . import constraints
from .binomial import Binomial
from .categorical import Categorical
from .distribution import _WrapsCategorical, broadcast_all
from .. import ops
from ..random import rng


class Multinomial(_WrapsCategorical):
    """``Multinomial(total_count=1, probs=None, logits=None)``: counts of ``total_count`` categorical
    draws (an int, as PyTorch's); samples are floats of the parameter's dtype.

    >>> Multinomial(10, probs=ops.tensor([0.2, 0.3, 0.5])).sample()
    """

    arg_constraints = {"probs": constraints.simplex, "logits": constraints.real_vector}

    def __init__(self, total_count=1, probs=None, logits=None, validate_args=None):
        if not isinstance(total_count, int):
            raise NotImplementedError("inhomogeneous total_count is not supported")
        self.total_count = total_count
        self._categorical = Categorical(probs=probs, logits=logits)
        self._binomial = Binomial(total_count=total_count, probs=self.probs)
        super().__init__(self._categorical.batch_shape, self._categorical.param_shape[-1:],
                         validate_args=validate_args)

    def expand(self, batch_shape, _instance=None):
        new = self._expand_categorical(Multinomial, batch_shape, _instance)
        new.total_count = self.total_count
        new._binomial = Binomial(total_count=self.total_count, probs=new._categorical.probs)
        return new

    @constraints.dependent_property(is_discrete=True, event_dim=1)
    def support(self):
        """The constraint that the distribution's values satisfy."""
        return constraints.multinomial(self.total_count)

    @property
    def mean(self):
        return self.probs * self.total_count

    @property
    def variance(self):
        return self.total_count * self.probs * (1 - self.probs)

    def sample(self, sample_shape=()):
        with grad_mode.no_grad():
            p = self.probs._data.astype(np.float64)
            p = p / p.sum(-1, keepdims=True)
            shape = tuple(self._extended_shape(sample_shape))
            counts = rng().multinomial(self.total_count, np.broadcast_to(p, shape))
            return Tensor._wrap(counts.astype(self.probs._data.dtype))

    def entropy(self):
        n = self.total_count
        term1 = n * self._categorical.entropy() - math.lgamma(n + 1)
        support = self._binomial.enumerate_support(expand=False)[1:]
        binomial_probs = self._binomial.log_prob(support).exp()
        return term1 + (binomial_probs * (support + 1).lgamma()).sum((0, -1))

    def log_prob(self, value):
        if self._validate_args:
            self._validate_sample(value)
        logits, value = broadcast_all(self.logits, value)
        logits = ops.where((value == 0) & (logits == -math.inf), 0.0, logits)  # 0 * log 0 is 0
        return (value.sum(-1) + 1).lgamma() - (value + 1).lgamma().sum(-1) + (logits * value).sum(-1)
