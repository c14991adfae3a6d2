"""The relaxed (Concrete / Gumbel-softmax) categorical distributions: ``RelaxedOneHotCategorical`` and ``ExpRelaxedCategorical``."""
from __future__ import annotations

from . import constraints
from .categorical import Categorical
from .distribution import _WrapsCategorical, _uniform, clamp_probs
from .relaxed_bernoulli import _RelaxedParams
from .transforms import ExpTransform
from .. import ops


class ExpRelaxedCategorical(_WrapsCategorical):
    """The log of a ``RelaxedOneHotCategorical`` draw: ``log_softmax((logits + gumbel) / temperature)``."""

    arg_constraints = {"probs": constraints.simplex, "logits": constraints.real_vector}
    support = constraints.real_vector
    has_rsample = True

    def __init__(self, temperature, probs=None, logits=None, validate_args=None):
        self._categorical = Categorical(probs, logits)
        self.temperature = temperature
        batch_shape = self._categorical.batch_shape
        event_shape = self._categorical.param_shape[-1:]
        super().__init__(batch_shape, event_shape, validate_args=validate_args)

    def expand(self, batch_shape, _instance=None):
        new = self._expand_categorical(ExpRelaxedCategorical, batch_shape, _instance)
        new.temperature = self.temperature
        return new

    def rsample(self, sample_shape=()):
        u = clamp_probs(_uniform(self._extended_shape(sample_shape), self.logits.dtype))
        gumbels = -((-(u.log())).log())
        scores = (self.logits + gumbels) / self.temperature
        return scores - scores.logsumexp(-1, keepdim=True)

    def log_prob(self, value):
        k = self._categorical._num_events
        if self._validate_args:
            self._validate_sample(value)
        log_scale = ops.full_like(self.temperature, float(k)).lgamma() - self.temperature.log() * -(k - 1)
        score = self.logits - value * self.temperature
        score = (score - score.logsumexp(-1, keepdim=True)).sum(-1)
        return score + log_scale


class RelaxedOneHotCategorical(_RelaxedParams):
    """``RelaxedOneHotCategorical(temperature, probs=None, logits=None)``: the Gumbel-softmax
    (Concrete) relaxation of a one-hot draw, on the simplex, differentiable in the parameters.

    >>> RelaxedOneHotCategorical(ops.tensor(0.5), logits=ops.zeros(4)).rsample()
    """

    arg_constraints = {"probs": constraints.simplex, "logits": constraints.real_vector}
    support = constraints.simplex
    has_rsample = True

    def __init__(self, temperature, probs=None, logits=None, validate_args=None):
        base = ExpRelaxedCategorical(temperature, probs, logits, validate_args=validate_args)
        super().__init__(base, ExpTransform(), validate_args=validate_args)

    def expand(self, batch_shape, _instance=None):
        return super().expand(batch_shape, self._get_checked_instance(RelaxedOneHotCategorical, _instance))
