"""Adadelta (PyTorch's rule)."""
from __future__ import annotations

import numpy as np

from .optimizer import Optimizer


class Adadelta(Optimizer):
    """PyTorch's Adadelta.

    Each step, per parameter::

        g = (-grad if maximize else grad) + weight_decay * p
        v = rho * v + (1 - rho) * g * g
        delta = sqrt(u + eps) / sqrt(v + eps) * g
        u = rho * u + (1 - rho) * delta * delta
        p -= lr * delta
    """

    _n_scratch = 3

    def __init__(self, params, lr=1.0, rho: float = 0.9, eps: float = 1e-6, weight_decay: float = 0,
                 foreach=None, *, capturable: bool = False, maximize: bool = False, differentiable: bool = False):
        if not 0.0 <= lr:
            raise ValueError(f"Invalid learning rate: {lr}")
        if not 0.0 <= rho <= 1.0:
            raise ValueError(f"Invalid rho value: {rho}")
        if not 0.0 <= eps:
            raise ValueError(f"Invalid epsilon value: {eps}")
        if not 0.0 <= weight_decay:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        super().__init__(params, dict(lr=lr, rho=rho, eps=eps, weight_decay=weight_decay, maximize=maximize,
                                      capturable=capturable, foreach=foreach, differentiable=differentiable))

    def _init_state(self, group, p, state):
        state["step"] = self._step_state()
        state["square_avg"] = self._zeros_state(p)
        state["acc_delta"] = self._zeros_state(p)

    def _update(self, group, p, g, state, scratch):
        buf, std, delta = scratch
        rho, eps = group["rho"], group["eps"]
        state["step"]._data += 1
        g = self._effective_grad(g, p, group["weight_decay"], group["maximize"], buf)
        v, u = state["square_avg"]._data, state["acc_delta"]._data
        v *= rho                              # v.mul_(rho).addcmul_(g, g, value=1 - rho)
        np.multiply(g, 1 - rho, out=std)
        std *= g
        v += std
        np.add(v, eps, out=std)               # std = sqrt(v + eps)
        np.sqrt(std, out=std)
        np.add(u, eps, out=delta)             # delta = sqrt(u + eps) / std * g
        np.sqrt(delta, out=delta)
        delta /= std
        delta *= g
        u *= rho                              # u.mul_(rho).addcmul_(delta, delta, value=1 - rho)
        np.multiply(delta, 1 - rho, out=std)
        std *= delta
        u += std
        delta *= -group["lr"]                 # p.add_(delta, alpha=-lr)
        p += delta
