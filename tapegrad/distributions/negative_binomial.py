"""The negative binomial distribution: successes before ``total_count`` failures (``NegativeBinomial``)."""
from __future__ import annotations

from .._tape import grad_mode
from ..tensor import Tensor
from . import constraints
from .distribution import _ProbsOrLogits
from .. import ops
from ..nn import functional as F
from ..random import rng
from .gamma import Gamma


class NegativeBinomial(_ProbsOrLogits):
    """``NegativeBinomial(total_count, probs=None, logits=None)``: successes (probability ``probs``)
    before ``total_count`` failures; samples are Poisson draws at Gamma-distributed rates, as PyTorch's.

    >>> NegativeBinomial(3.0, probs=ops.tensor([0.4])).mean
    """

    arg_constraints = {"total_count": constraints.greater_than_eq(0), "probs": constraints.half_open_interval(0.0, 1.0),
                       "logits": constraints.real}
    support = constraints.nonnegative_integer

    def __init__(self, total_count, probs=None, logits=None, validate_args=None):
        (self.total_count,) = self._set_probs_or_logits(probs, logits, total_count)
        super().__init__(self.param_shape, validate_args=validate_args)

    def _expand_names(self):
        return ["total_count"] + super()._expand_names()

    @property
    def mean(self):
        return self.total_count * self.logits.exp()

    @property
    def mode(self):
        return ((self.total_count - 1) * self.logits.exp()).floor().clamp(min=0.0)

    @property
    def variance(self):
        return self.mean / (-self.logits).sigmoid()

    def sample(self, sample_shape=()):
        with grad_mode.no_grad():
            rate = Gamma(self.total_count, (-self.logits).exp(), validate_args=False).sample(sample_shape)._data
            return Tensor._wrap(rng().poisson(rate).astype(rate.dtype))

    def log_prob(self, value):
        if self._validate_args:
            self._validate_sample(value)
        logsigmoid = F.logsigmoid
        n = self.total_count
        log_unnormalized_prob = n * logsigmoid(-self.logits) + value * logsigmoid(self.logits)
        log_normalization = -(n + value).lgamma() + (1.0 + value).lgamma() + n.lgamma()
        log_normalization = ops.where(n + value == 0.0, 0.0, log_normalization)  # P(0) = 1 when n = 0
        return log_unnormalized_prob - log_normalization
