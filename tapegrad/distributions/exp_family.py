"""``ExponentialFamily``: the base of distributions written as ``exp(<t(x), theta> - F(theta) + k(x))``."""
from __future__ import annotations

from .. import autograd
from .._tape import grad_mode
from .distribution import Distribution


class ExponentialFamily(Distribution):
    """A distribution ``p(x) = exp(<t(x), theta> - F(theta) + k(x))``: subclasses give the natural
    parameters ``_natural_params`` (theta), the log normaliser ``_log_normalizer(*theta)`` (F) and
    ``_mean_carrier_measure`` (E[k(x)]); the entropy then follows from the Bregman divergence of F,
    by differentiating F on the tape (as PyTorch does)."""

    @property
    def _natural_params(self):
        raise NotImplementedError

    def _log_normalizer(self, *natural_params):
        raise NotImplementedError

    @property
    def _mean_carrier_measure(self):
        raise NotImplementedError

    def entropy(self):
        """``F(theta) - <theta, grad F(theta)> - E[k(x)]``. PyTorch detaches theta here, so its
        entropy has no gradient in the parameters; tapegrad keeps theta on the tape when it
        requires grad, so the entropy differentiates (as a regulariser needs)."""
        result = -self._mean_carrier_measure
        with grad_mode.enable_grad():
            params = [p if p.requires_grad else p.detach().requires_grad_() for p in self._natural_params]
            lg = self._log_normalizer(*params)
            grads = autograd.grad(lg.sum(), params, create_graph=True)
        result = result + lg
        for p, g in zip(params, grads):
            result = result - (p * g).reshape(tuple(self._batch_shape) + (-1,)).sum(-1)
        return result
