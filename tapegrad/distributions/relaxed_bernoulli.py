"""The relaxed (Concrete) Bernoulli distributions: ``RelaxedBernoulli`` on (0, 1) and ``LogitRelaxedBernoulli`` on its logits."""
from __future__ import annotations

from . import constraints
from .distribution import _ProbsOrLogits, _uniform, broadcast_all, clamp_probs
from .transformed_distribution import TransformedDistribution
from .transforms import SigmoidTransform
from .. import ops


class LogitRelaxedBernoulli(_ProbsOrLogits):
    """The logit of a ``RelaxedBernoulli`` draw: ``(logit(u) + logits) / temperature``, differentiable
    in ``logits`` / ``probs`` (the Concrete / Gumbel-sigmoid relaxation)."""

    arg_constraints = {"probs": constraints.unit_interval, "logits": constraints.real}
    support = constraints.real
    has_rsample = True

    def __init__(self, temperature, probs=None, logits=None, validate_args=None):
        self.temperature = temperature
        self._set_probs_or_logits(probs, logits)
        super().__init__(self.param_shape, validate_args=validate_args)

    def rsample(self, sample_shape=()):
        u = clamp_probs(_uniform(self._extended_shape(sample_shape), self._param.dtype))
        return (u.log() - (-u).log1p() + self.logits) / self.temperature

    def log_prob(self, value):
        if self._validate_args:
            self._validate_sample(value)
        logits, value = broadcast_all(self.logits, value)
        diff = logits - value * self.temperature
        return self.temperature.log() + diff - 2 * diff.exp().log1p()


class _RelaxedParams(TransformedDistribution):
    """The parameters of a relaxed distribution, read from the base distribution it transforms."""

    @property
    def temperature(self):
        """Relaxation temperature: the lower, the closer samples are to the discrete draws."""
        return self.base_dist.temperature

    @property
    def logits(self):
        """Log-odds (Bernoulli) or normalised log-probabilities (categorical) of the distribution relaxed."""
        return self.base_dist.logits

    @property
    def probs(self):
        """Probabilities of the distribution relaxed."""
        return self.base_dist.probs


class RelaxedBernoulli(_RelaxedParams):
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
