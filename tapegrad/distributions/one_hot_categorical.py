"""The categorical distribution with one-hot samples (``OneHotCategorical``, ``OneHotCategoricalStraightThrough``)."""
from __future__ import annotations

from . import constraints
from .categorical import Categorical
from .distribution import _WrapsCategorical
from .. import ops
from ..nn import functional as F


class OneHotCategorical(_WrapsCategorical):
    """``OneHotCategorical(probs=p)`` or ``(logits=l)``: a ``Categorical`` whose draws are one-hot
    vectors of the parameter's dtype (event shape ``(K,)``).

    >>> OneHotCategorical(probs=ops.tensor([0.2, 0.8])).sample()
    """

    arg_constraints = {"probs": constraints.simplex, "logits": constraints.independent(constraints.real, 1)}
    support = constraints.one_hot
    has_enumerate_support = True

    def __init__(self, probs=None, logits=None, validate_args=None):
        self._categorical = Categorical(probs, logits)
        batch_shape = self._categorical.batch_shape
        event_shape = self._categorical.param_shape[-1:]
        super().__init__(batch_shape, event_shape, validate_args=validate_args)

    def expand(self, batch_shape, _instance=None):
        return self._expand_categorical(OneHotCategorical, batch_shape, _instance)

    @property
    def mean(self):
        return self._categorical.probs

    @property
    def mode(self):
        probs = self._categorical.probs
        return F.one_hot(probs.argmax(-1), probs.shape[-1]).to(probs.dtype)

    @property
    def variance(self):
        return self._categorical.probs * (1 - self._categorical.probs)

    def sample(self, sample_shape=()):
        probs = self._categorical.probs
        indices = self._categorical.sample(sample_shape)
        return F.one_hot(indices, probs.shape[-1]).to(probs.dtype)

    def log_prob(self, value):
        if self._validate_args:
            self._validate_sample(value)
        return self._categorical.log_prob(value.argmax(-1))

    def entropy(self):
        return self._categorical.entropy()

    def enumerate_support(self, expand=True):
        """Every value of the support along a new leading dimension, expanded over the batch shape unless ``expand=False``."""
        n = self._event_shape[0]
        values = ops.eye(n, dtype=self._param.dtype).reshape((n,) + (1,) * len(self._batch_shape) + (n,))
        return values.expand((n,) + tuple(self._batch_shape) + (n,)) if expand else values


class OneHotCategoricalStraightThrough(OneHotCategorical):
    """A ``OneHotCategorical`` whose ``rsample`` is the straight-through estimator: the one-hot draw in
    the forward pass, the gradient of ``probs`` in the backward pass (Bengio et al., 2013).

    >>> OneHotCategoricalStraightThrough(logits=logits).rsample()   # one-hot, differentiable in logits
    """

    has_rsample = True

    def rsample(self, sample_shape=()):
        samples = self.sample(sample_shape)
        probs = self._categorical.probs
        return samples + (probs - probs.detach())
