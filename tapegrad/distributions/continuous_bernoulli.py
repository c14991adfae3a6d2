"""The continuous Bernoulli distribution on [0, 1] (``ContinuousBernoulli``, Loaiza-Ganem and Cunningham, 2019)."""
from __future__ import annotations

import math
from .._tape import grad_mode
from . import constraints
from .distribution import (_ProbsOrLogits, _uniform, broadcast_all, clamp_probs, lazy_property,
                           logits_to_probs)
from .. import ops
from ..nn.functional import binary_cross_entropy_with_logits


class ContinuousBernoulli(_ProbsOrLogits):
    """``ContinuousBernoulli(probs=None, logits=None, lims=(0.499, 0.501))`` on [0, 1] (Loaiza-Ganem &
    Cunningham, 2019). Near ``probs = 1/2`` the closed forms divide 0 by 0, so inside ``lims`` they are
    replaced by Taylor expansions, as PyTorch's; ``rsample`` inverts the CDF.

    >>> ContinuousBernoulli(probs=ops.tensor([0.2])).mean
    """

    arg_constraints = {"probs": constraints.unit_interval, "logits": constraints.real}
    support = constraints.unit_interval
    has_rsample = True

    def __init__(self, probs=None, logits=None, lims=(0.499, 0.501), validate_args=None):
        self._check_probs = validate_args is not None
        self._set_probs_or_logits(probs, logits)
        self._lims = lims
        super().__init__(self.param_shape, validate_args=validate_args)

    def _prepare_param(self, name, param):
        if name == "probs":
            if self._check_probs and not bool(self.arg_constraints["probs"].check(param).all()):
                raise ValueError("The parameter probs has invalid values")
            param = clamp_probs(param)
        return param

    @lazy_property
    def probs(self):
        """Probabilities, from ``logits`` unless given, kept off 0 and 1 (the log normaliser's poles)."""
        return clamp_probs(logits_to_probs(self.logits, is_binary=True))

    def _outside_unstable_region(self):
        return (self.probs <= self._lims[0]) | (self.probs > self._lims[1])

    def _cut_probs(self):
        return ops.where(self._outside_unstable_region(), self.probs, self._lims[0])

    def _cont_bern_log_norm(self):
        """The log normalising constant, in terms of ``probs``."""
        cut = self._cut_probs()
        below = ops.where(cut <= 0.5, cut, 0.0)
        above = ops.where(cut >= 0.5, cut, 1.0)
        log_norm = ((-cut).log1p() - cut.log()).abs().log() - ops.where(
            cut <= 0.5, (-2.0 * below).log1p(), (2.0 * above - 1.0).log())
        x = (self.probs - 0.5).pow(2)
        taylor = math.log(2.0) + (4.0 / 3.0 + 104.0 / 45.0 * x) * x
        return ops.where(self._outside_unstable_region(), log_norm, taylor)

    @property
    def mean(self):
        cut = self._cut_probs()
        mus = cut / (2.0 * cut - 1.0) + 1.0 / ((-cut).log1p() - cut.log())
        x = self.probs - 0.5
        taylor = 0.5 + (1.0 / 3.0 + 16.0 / 45.0 * x.pow(2)) * x
        return ops.where(self._outside_unstable_region(), mus, taylor)

    @property
    def stddev(self):
        return self.variance.sqrt()

    @property
    def variance(self):
        cut = self._cut_probs()
        var = cut * (cut - 1.0) / (1.0 - 2.0 * cut).pow(2) + 1.0 / ((-cut).log1p() - cut.log()).pow(2)
        x = (self.probs - 0.5).pow(2)
        taylor = 1.0 / 12.0 - (1.0 / 15.0 - 128.0 / 945.0 * x) * x
        return ops.where(self._outside_unstable_region(), var, taylor)

    def sample(self, sample_shape=()):
        with grad_mode.no_grad():
            return self.rsample(sample_shape)

    def rsample(self, sample_shape=()):
        return self.icdf(_uniform(self._extended_shape(sample_shape), self.probs.dtype))

    def log_prob(self, value):
        if self._validate_args:
            self._validate_sample(value)
        logits, value = broadcast_all(self.logits, value)
        return -binary_cross_entropy_with_logits(logits, value, reduction="none") + self._cont_bern_log_norm()

    def cdf(self, value):
        if self._validate_args:
            self._validate_sample(value)
        cut = self._cut_probs()
        cdfs = (cut.pow(value) * (1.0 - cut).pow(1.0 - value) + cut - 1.0) / (2.0 * cut - 1.0)
        unbounded = ops.where(self._outside_unstable_region(), cdfs, value)
        return ops.where(value <= 0.0, 0.0, ops.where(value >= 1.0, 1.0, unbounded))

    def icdf(self, value):
        cut = self._cut_probs()
        inverted = ((-cut + value * (2.0 * cut - 1.0)).log1p() - (-cut).log1p()) / (cut.log() - (-cut).log1p())
        return ops.where(self._outside_unstable_region(), inverted, value)

    def entropy(self):
        log_probs0, log_probs1 = (-self.probs).log1p(), self.probs.log()
        return self.mean * (log_probs0 - log_probs1) - self._cont_bern_log_norm() - log_probs0
