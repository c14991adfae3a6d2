"""Adagrad (PyTorch's rule)."""
from __future__ import annotations

import numpy as np

from ..tensor import Tensor
from .optimizer import Optimizer


class Adagrad(Optimizer):
    """PyTorch's Adagrad.

    Each step, per parameter::

        t += 1;  g = (-grad if maximize else grad) + weight_decay * p
        clr = lr / (1 + (t - 1) * lr_decay)
        sum += g * g;  p -= clr * g / (sqrt(sum) + eps)
    """

    _n_scratch = 2

    def __init__(self, params, lr=1e-2, lr_decay: float = 0, weight_decay: float = 0,
                 initial_accumulator_value: float = 0, eps: float = 1e-10, foreach=None, *, maximize: bool = False,
                 differentiable: bool = False, fused=None):
        for name, v in (("learning rate", lr), ("lr_decay", lr_decay), ("weight_decay", weight_decay),
                        ("initial_accumulator_value", initial_accumulator_value), ("epsilon", eps)):
            if not 0.0 <= v:
                raise ValueError(f"Invalid {name} value: {v}")
        super().__init__(params, dict(lr=lr, lr_decay=lr_decay, eps=eps, weight_decay=weight_decay,
                                      initial_accumulator_value=initial_accumulator_value, foreach=foreach,
                                      maximize=maximize, differentiable=differentiable, fused=fused))
        for group in self.param_groups:  # PyTorch creates Adagrad's state eagerly
            for p in group["params"]:
                self._init_state(group, p, self.state[p])

    def _init_state(self, group, p, state):
        state["step"] = self._step_state()
        state["sum"] = Tensor._wrap(np.full_like(p._data, group["initial_accumulator_value"]))

    def _update(self, group, p, g, state, scratch):
        buf, tmp = scratch
        step_t = state["step"]._data
        step_t += 1
        step = float(step_t)
        g = self._effective_grad(g, p, group["weight_decay"], group["maximize"], buf)
        clr = group["lr"] / (1 + (step - 1) * group["lr_decay"])
        s = state["sum"]._data
        np.multiply(g, g, out=tmp)           # sum.addcmul_(g, g, value=1)
        s += tmp
        np.sqrt(s, out=tmp)                  # std = sqrt(sum) + eps
        tmp += group["eps"]
        np.divide(g, tmp, out=tmp)           # p.addcdiv_(g, std, value=-clr)
        tmp *= -clr
        p += tmp
