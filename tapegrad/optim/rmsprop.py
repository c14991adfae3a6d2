"""RMSprop (PyTorch's rule, with momentum and the centered variant)."""
from __future__ import annotations

import numpy as np

from .optimizer import Optimizer


class RMSprop(Optimizer):
    """PyTorch's RMSprop.

    Each step, per parameter::

        g = (-grad if maximize else grad) + weight_decay * p
        v = alpha * v + (1 - alpha) * g * g
        centered: a = lerp(a, g, 1 - alpha);  avg = sqrt(v - a * a) + eps   else avg = sqrt(v) + eps
        momentum > 0: b = momentum * b + g / avg;  p -= lr * b     else p -= lr * g / avg
    """

    _n_scratch = 2

    def __init__(self, params, lr=1e-2, alpha: float = 0.99, eps: float = 1e-8, weight_decay: float = 0,
                 momentum: float = 0, centered: bool = False, capturable: bool = False, foreach=None,
                 maximize: bool = False, differentiable: bool = False):
        for name, v in (("learning rate", lr), ("epsilon", eps), ("momentum", momentum),
                        ("weight_decay", weight_decay), ("alpha", alpha)):
            if not 0.0 <= v:
                raise ValueError(f"Invalid {name} value: {v}")
        super().__init__(params, dict(lr=lr, momentum=momentum, alpha=alpha, eps=eps, centered=centered,
                                      weight_decay=weight_decay, capturable=capturable, foreach=foreach,
                                      maximize=maximize, differentiable=differentiable))

    def _init_state(self, group, p, state):
        state["step"] = self._step_state()
        state["square_avg"] = self._zeros_state(p)
        if group["momentum"] > 0:
            state["momentum_buffer"] = self._zeros_state(p)
        if group["centered"]:
            state["grad_avg"] = self._zeros_state(p)

    def _update(self, group, p, g, state, scratch):
        buf, tmp = scratch
        alpha, eps, lr, momentum = group["alpha"], group["eps"], group["lr"], group["momentum"]
        state["step"]._data += 1
        g = self._effective_grad(g, p, group["weight_decay"], group["maximize"], buf)
        v = state["square_avg"]._data
        v *= alpha                            # v.mul_(alpha).addcmul_(g, g, value=1 - alpha)
        np.multiply(g, 1 - alpha, out=tmp)
        tmp *= g
        v += tmp
        if group["centered"]:
            a = state["grad_avg"]._data
            np.subtract(g, a, out=tmp)        # a.lerp_(g, 1 - alpha)
            tmp *= 1 - alpha
            a += tmp
            np.multiply(a, -1, out=tmp)       # avg = v.addcmul(a, a, value=-1).sqrt_()
            tmp *= a
            tmp += v
            np.sqrt(tmp, out=tmp)
        else:
            np.sqrt(v, out=tmp)
        tmp += eps
        np.divide(g, tmp, out=tmp)
        if momentum > 0:
            b = state["momentum_buffer"]._data
            b *= momentum                     # b.mul_(momentum).addcdiv_(g, avg)
            b += tmp
            np.multiply(b, -lr, out=tmp)
        else:
            tmp *= -lr                        # p.addcdiv_(g, avg, value=-lr)
        p += tmp
