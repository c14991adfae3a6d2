"""The relaxed (Concrete) Bernoulli distributions: ``RelaxedBernoulli`` on (0, 1) and ``LogitRelaxedBernoulli`` on its logits."""
from __future__ import annotations

from numbers import Number

from .._compat import Size
from . import constraints
from .distribution import (Distribution, _uniform, broadcast_all, clamp_probs, lazy_property, logits_to_probs,
                           probs_to_logits)
from .transformed_distribution import TransformedDistribution
from .transforms import SigmoidTransform
from .. import ops


class LogitRelaxedBernoulli(Distribution):
    """The logit of a ``RelaxedBernoulli`` draw: ``(logit(u) + logits) / temperature``, differentiable
    in ``logits`` / ``probs`` (the Concrete / Gumbel-sigmoid relaxation)."""

    arg_constraints = {"probs": constraints.unit_interval, "logits": constraints.real}
    support = constraints.real
    has_rsample = True

    def __init__(self, temperature, probs=None, logits=None, validate_args=None):
        self.temperature = temperature
        if (probs is None) == (logits is None):
            raise ValueError("Either `probs` or `logits` must be specified, but not both.")
        if probs is not None:
            is_scalar = isinstance(probs, Number)
            (self.probs,) = broadcast_all(probs)
        else:
            is_scalar = isinstance(logits, Number)
            (self.logits,) = broadcast_all(logits)
        self._param = self.probs if probs is not None else self.logits
        super().__init__(Size() if is_scalar else Size(self._param.shape), validate_args=validate_args)

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

    def rsample(self, sample_shape=()):
        u = clamp_probs(_uniform(self._extended_shape(sample_shape), self._param.dtype))
        return (u.log() - (-u).log1p() + self.logits) / self.temperature

    def log_prob(self, value):
        if self._validate_args:
            self._validate_sample(value)
        logits, value = broadcast_all(self.logits, value)
        diff = logits - value * self.temperature
        return self.temperature.log() + diff - 2 * diff.exp().log1p()


class RelaxedBernoulli(TransformedDistribution):
    """``RelaxedBernoulli(temperature, probs=None, logits=None)``: a differentiable stand-in for a
    Bernoulli draw on (0, 1), the sigmoid of a ``LogitRelaxedBernoulli``; low temperatures push the
    draws towards 0 and 1.

    >>> RelaxedBernoulli(ops.tensor([0.5]), probs=ops.tensor([0.3])).rsample()
    """

    arg_constraints = {"probs": constraints.unit_interval, "logits": constraints.real}
    support = constraints.unit_interval
    has_rsample = True

    def __init__(self, temperature, probs=None, logits=None, validate_args=None):
        base = LogitRelaxedBernoulli(temperature, probs, logits)
        super().__init__(base, SigmoidTransform(), validate_args=validate_args)

    def expand(self, batch_shape, _instance=None):
        return super().expand(batch_shape, self._get_checked_instance(RelaxedBernoulli, _instance))

    @property
    def temperature(self):
        """Relaxation temperature: the lower, the closer samples are to 0 or 1."""
        return self.base_dist.temperature

    @property
    def logits(self):
        """Log-odds of the Bernoulli that this relaxes."""
        return self.base_dist.logits

    @property
    def probs(self):
        """Probability of 1 of the Bernoulli that this relaxes."""
        return self.base_dist.probs
