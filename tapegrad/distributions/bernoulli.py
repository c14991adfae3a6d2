"""``Bernoulli``: 0/1 draws with probability ``probs`` (or ``sigmoid(logits)``)."""
from __future__ import annotations

import numpy as np

from .._tape import grad_mode
from ..tensor import Tensor
from . import constraints
from .distribution import _ProbsOrLogits, broadcast_all
from ..random import rng
from ..nn.functional import binary_cross_entropy_with_logits
from ..ops.creation import arange


class Bernoulli(_ProbsOrLogits):
    """``Bernoulli(probs=p)`` or ``Bernoulli(logits=l)``: 1 with probability ``p``; samples are
    floats of the parameter's dtype, as PyTorch's."""

    arg_constraints = {"probs": constraints.unit_interval, "logits": constraints.real}
    support = constraints.boolean
    has_enumerate_support = True

    def __init__(self, probs=None, logits=None, validate_args=None):
        self._set_probs_or_logits(probs, logits)
        super().__init__(self.param_shape, validate_args=validate_args)

    @property
    def mean(self):
        return self.probs

    @property
    def mode(self):
        p = self.probs._data
        return Tensor._wrap(np.where(p == 0.5, np.nan, (p >= 0.5).astype(p.dtype)).astype(p.dtype))

    @property
    def variance(self):
        return self.probs * (1 - self.probs)

    def sample(self, sample_shape=()):
        shape = self._extended_shape(sample_shape)
        with grad_mode.no_grad():
            p = np.broadcast_to(self.probs._data, shape)
            return Tensor._wrap((rng().random(shape) < p).astype(p.dtype))

    def log_prob(self, value):
        if self._validate_args:
            self._validate_sample(value)
        logits, value = broadcast_all(self.logits, value)
        return -binary_cross_entropy_with_logits(logits, value, reduction="none")

    def entropy(self):
        return binary_cross_entropy_with_logits(self.logits, self.probs, reduction="none")

    def enumerate_support(self, expand=True):
        """The values 0 and 1, as a tensor of shape ``(2,) + batch_shape`` (``(2, 1, ...)`` unless ``expand``)."""
        values = arange(2, dtype=self._param.dtype).reshape((-1,) + (1,) * len(self._batch_shape))
        return values.expand((-1,) + tuple(self._batch_shape)) if expand else values
