"""``Categorical``: one of K classes with probabilities ``probs`` (or ``softmax(logits)``)."""
from __future__ import annotations

import numpy as np

from .._compat import Size
from .._tape import grad_mode
from ..tensor import Tensor
from . import constraints
from .distribution import _ProbsOrLogits
from ..random import rng
from ..ops import broadcast_tensors
from ..ops.creation import arange
from .. import ops


class Categorical(_ProbsOrLogits):
    """``Categorical(probs=p)`` or ``Categorical(logits=l)`` over the classes ``range(K)`` (the last dimension);
    ``probs`` are normalised to sum to 1, ``logits`` to log-sum-exp 0. Samples are int64."""

    arg_constraints = {"probs": constraints.simplex, "logits": constraints.independent(constraints.real, 1)}
    has_enumerate_support = True
    _binary = False

    def __init__(self, probs=None, logits=None, validate_args=None):
        self._set_probs_or_logits(probs, logits)
        self._num_events = self._param.shape[-1]
        batch_shape = Size(self._param.shape[:-1]) if self._param.ndim > 1 else Size()
        super().__init__(batch_shape, validate_args=validate_args)

    @constraints.dependent_property(is_discrete=True, event_dim=0)
    def support(self):
        """The integers ``range(K)``."""
        return constraints.integer_interval(0, self._num_events - 1)

    def _prepare_param(self, name, param):
        if param.ndim < 1:
            raise ValueError(f"`{name}` parameter must be at least one-dimensional.")
        return param / param.sum(-1, keepdim=True) if name == "probs" else param - param.logsumexp(-1, keepdim=True)

    @property
    def mean(self):
        return Tensor._wrap(np.full(self._extended_shape(), np.nan, self.probs.dtype))

    @property
    def mode(self):
        return self.probs.argmax(-1)

    @property
    def variance(self):
        return Tensor._wrap(np.full(self._extended_shape(), np.nan, self.probs.dtype))

    def sample(self, sample_shape=()):
        """Inverse-CDF draws from the global generator (``tapegrad.manual_seed``)."""
        sample_shape = Size(sample_shape)
        with grad_mode.no_grad():
            p = self.probs._data.reshape(-1, self._num_events).astype(np.float64)
            cdf = np.cumsum(p, -1)
            u = rng().random((sample_shape.numel(), p.shape[0])) * cdf[:, -1]
            idx = (cdf[None, :, :] <= u[:, :, None]).sum(-1)
            idx = np.minimum(idx, self._num_events - 1).astype(np.int64)
            return Tensor._wrap(idx.reshape(self._extended_shape(sample_shape)))

    def log_prob(self, value):
        if self._validate_args:
            self._validate_sample(value)
        value = value.long().unsqueeze(-1)
        value, log_pmf = ops.broadcast_tensors(value, self.logits)
        value = value[..., :1]
        return log_pmf.gather(-1, value).squeeze(-1)

    def entropy(self):
        min_real = float(np.finfo(self.logits.dtype).min)
        logits = self.logits.clamp(min=min_real)
        return -(logits * self.probs).sum(-1)

    def enumerate_support(self, expand=True):
        """The classes ``range(K)``, as a tensor of shape ``(K,) + batch_shape`` (``(K, 1, ...)`` unless
        ``expand``)."""
        values = arange(self._num_events).reshape((-1,) + (1,) * len(self._batch_shape))
        return values.expand((-1,) + tuple(self._batch_shape)) if expand else values
