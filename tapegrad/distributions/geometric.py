"""The geometric distribution: failures before the first success (``Geometric(probs | logits)``)."""
from __future__ import annotations

import numpy as np

from .._tape import grad_mode
from . import constraints
from .distribution import _ProbsOrLogits, _uniform, broadcast_all
from .. import ops
from ..nn.functional import binary_cross_entropy_with_logits


class Geometric(_ProbsOrLogits):
    """``Geometric(probs=p)`` or ``Geometric(logits=l)``: the number of failures before the first
    success, ``P(k) = (1 - p)^k p``.

    >>> Geometric(probs=ops.tensor([0.3])).mean
    """

    arg_constraints = {"probs": constraints.unit_interval, "logits": constraints.real}
    support = constraints.nonnegative_integer

    def __init__(self, probs=None, logits=None, validate_args=None):
        self._set_probs_or_logits(probs, logits)
        super().__init__(self.param_shape, validate_args=validate_args)
        if self._validate_args and probs is not None and not bool((self.probs > 0).all()):
            # p = 0 never succeeds, so it has no distribution (PyTorch's extra check)
            raise ValueError(f"Expected parameter probs ({type(self.probs).__name__} of shape "
                             f"{tuple(self.probs.shape)}) of distribution {self!r} to be positive but found "
                             f"invalid values:\n{self.probs}")

    @property
    def mean(self):
        return 1.0 / self.probs - 1.0

    @property
    def mode(self):
        return ops.zeros_like(self.probs)

    @property
    def variance(self):
        return (1.0 / self.probs - 1.0) / self.probs

    def sample(self, sample_shape=()):
        with grad_mode.no_grad():
            tiny = float(np.finfo(self.probs.dtype).tiny)
            u = _uniform(self._extended_shape(sample_shape), self.probs.dtype).clamp(min=tiny)
            return (u.log() / (-self.probs).log1p()).floor()

    def log_prob(self, value):
        if self._validate_args:
            self._validate_sample(value)
        value, probs = broadcast_all(value, self.probs)
        probs = ops.where((probs == 1) & (value == 0), 0.0, probs)  # 0 * log(0) is 0 at p = 1
        return value * (-probs).log1p() + self.probs.log()

    def entropy(self):
        return binary_cross_entropy_with_logits(self.logits, self.probs, reduction="none") / self.probs
