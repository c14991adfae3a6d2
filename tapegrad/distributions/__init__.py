"""Probability distributions under ``torch.distributions``' names: ``Normal``, ``Categorical``,
``Bernoulli``, ``Uniform``, ``MultivariateNormal``, ``Independent``, ``Gamma``, ``Beta``, and
``kl_divergence`` (with ``register_kl``). ``log_prob``, ``entropy`` and ``kl_divergence`` are
tapegrad ops, so they are differentiable in the parameters; ``rsample`` is reparameterised
(differentiable) where PyTorch's is; draws come from the global generator (``tapegrad.manual_seed``),
so they are reproducible but not the same numbers as PyTorch's.

>>> from tapegrad.distributions import Categorical
>>> dist = Categorical(logits=policy(state))
>>> action = dist.sample()
>>> loss = -(dist.log_prob(action) * advantage).mean() - 0.01 * dist.entropy().mean()
"""
from . import constraints  # noqa: F401
from .bernoulli import Bernoulli
from .beta import Beta
from .categorical import Categorical
from .distribution import Distribution
from .gamma import Gamma
from .independent import Independent
from .kl import kl_divergence, register_kl
from .multivariate_normal import MultivariateNormal
from .normal import Normal
from .uniform import Uniform

__all__ = ["Bernoulli", "Beta", "Categorical", "Distribution", "Gamma", "Independent", "MultivariateNormal", "Normal",
           "Uniform", "constraints", "kl_divergence", "register_kl"]
