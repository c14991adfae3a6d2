"""The binomial distribution: the number of successes in ``total_count`` Bernoulli trials (``Binomial``)."""
from __future__ import annotations

import numpy as np

from .._tape import grad_mode
from ..tensor import Tensor
from . import constraints
from .distribution import _ProbsOrLogits
from .. import ops
from ..random import rng


def _clamp_by_zero(x):
    # max(x, 0) with gradient 1/2 at 0, as PyTorch's (so log_prob's gradient at logits = 0 agrees)
    return (x.clamp(min=0) + x - x.clamp(max=0)) / 2


class Binomial(_ProbsOrLogits):
    """``Binomial(total_count=1, probs=None, logits=None)``: successes in ``total_count`` trials;
    samples are floats of the parameter's dtype, as PyTorch's.

    >>> Binomial(10, probs=ops.tensor([0.3])).log_prob(ops.tensor([4.0]))
    """

    arg_constraints = {"total_count": constraints.nonnegative_integer, "probs": constraints.unit_interval,
                       "logits": constraints.real}
    has_enumerate_support = True

    def __init__(self, total_count=1, probs=None, logits=None, validate_args=None):
        (self.total_count,) = self._set_probs_or_logits(probs, logits, total_count)
        super().__init__(self.param_shape, validate_args=validate_args)

    def _expand_names(self):
        return ["total_count"] + super()._expand_names()

    @constraints.dependent_property(is_discrete=True, event_dim=0)
    def support(self):
        """The constraint that the distribution's values satisfy."""
        return constraints.integer_interval(0, self.total_count)

    @property
    def mean(self):
        return self.total_count * self.probs

    @property
    def mode(self):
        return ((self.total_count + 1) * self.probs).floor().clamp(max=self.total_count)

    @property
    def variance(self):
        return self.total_count * self.probs * (1 - self.probs)

    def sample(self, sample_shape=()):
        shape = tuple(self._extended_shape(sample_shape))
        with grad_mode.no_grad():
            n = np.broadcast_to(self.total_count._data, shape).astype(np.int64)
            p = np.broadcast_to(self.probs._data, shape)
            return Tensor._wrap(rng().binomial(n, p).astype(p.dtype))

    def log_prob(self, value):
        if self._validate_args:
            self._validate_sample(value)
        n, logits = self.total_count, self.logits
        normalize_term = n * _clamp_by_zero(logits) + n * (-logits.abs()).exp().log1p() - (n + 1).lgamma()
        return value * logits - (value + 1).lgamma() - (n - value + 1).lgamma() - normalize_term

    def _homogeneous_count(self, what):
        total_count = int(self.total_count.max())
        if not float(self.total_count.min()) == total_count:
            raise NotImplementedError(f"Inhomogeneous total count not supported by `{what}`.")
        return total_count

    def entropy(self):
        self._homogeneous_count("entropy")
        log_prob = self.log_prob(self.enumerate_support(False))
        return -(log_prob.exp() * log_prob).sum(0)

    def enumerate_support(self, expand=True):
        """Every value of the support along a new leading dimension, expanded over the batch shape unless ``expand=False``."""
        total_count = self._homogeneous_count("enumerate_support")
        values = ops.arange(1 + total_count, dtype=self._param.dtype).reshape((-1,) + (1,) * len(self._batch_shape))
        return values.expand((-1,) + tuple(self._batch_shape)) if expand else values
