"""The negative binomial distribution: successes before ``total_count`` failures (``NegativeBinomial``)."""
from __future__ import annotations

from .._compat import Size
from .._tape import grad_mode
from ..tensor import Tensor
from . import constraints
from .distribution import Distribution, broadcast_all, lazy_property, logits_to_probs, probs_to_logits
from .. import ops
from ..nn import functional as F
from ..random import rng
from .gamma import Gamma


class NegativeBinomial(Distribution):
    """``NegativeBinomial(total_count, probs=None, logits=None)``: successes (probability ``probs``)
    before ``total_count`` failures; samples are Poisson draws at Gamma-distributed rates, as PyTorch's.

    >>> NegativeBinomial(3.0, probs=ops.tensor([0.4])).mean
    """

    arg_constraints = {"total_count": constraints.greater_than_eq(0), "probs": constraints.half_open_interval(0.0, 1.0),
                       "logits": constraints.real}
    support = constraints.nonnegative_integer

    def __init__(self, total_count, probs=None, logits=None, validate_args=None):
        if (probs is None) == (logits is None):
            raise ValueError("Either `probs` or `logits` must be specified, but not both.")
        if probs is not None:
            self.total_count, self.probs = broadcast_all(total_count, probs)
            self.total_count = self.total_count.to(self.probs.dtype)
        else:
            self.total_count, self.logits = broadcast_all(total_count, logits)
            self.total_count = self.total_count.to(self.logits.dtype)
        self._param = self.probs if probs is not None else self.logits
        super().__init__(Size(self._param.shape), validate_args=validate_args)

    def _expand_names(self):
        return ["total_count"] + super()._expand_names()

    @lazy_property
    def logits(self):
        return probs_to_logits(self.probs, is_binary=True)

    @lazy_property
    def probs(self):
        return logits_to_probs(self.logits, is_binary=True)

    @property
    def param_shape(self):
        """The shape of the parameter tensor (``probs`` or ``logits``)."""
        return Size(self._param.shape)

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
