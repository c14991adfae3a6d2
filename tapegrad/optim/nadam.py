"""NAdam, RAdam and Adamax: PyTorch's Adam variants (its single-tensor update order)."""
from __future__ import annotations

import numpy as np

from ..tensor import Tensor
from .adam import check_adam_args as _check_adam_args
from .optimizer import Optimizer


class _AdamFamily(Optimizer):
    _n_scratch = 2

    def _init_state(self, group, p, state):
        state["step"] = self._step_state()
        state["exp_avg"] = self._zeros_state(p)
        state["exp_avg_sq"] = self._zeros_state(p)

    def _grad_and_decay(self, group, p, g, buf):
        """maximize and weight decay: decoupled (``p *= 1 - lr * wd``) or added to the gradient."""
        wd = group["weight_decay"]
        if wd != 0 and group.get("decoupled_weight_decay"):
            p *= 1 - group["lr"] * wd
            wd = 0
        return self._effective_grad(g, p, wd, group["maximize"], buf)

    @staticmethod
    def _moments(m, v, g, beta1, beta2, tmp):
        np.subtract(g, m, out=tmp)            # m.lerp_(g, 1 - beta1)
        tmp *= 1 - beta1
        m += tmp
        v *= beta2                            # v.mul_(beta2).addcmul_(g, g, value=1 - beta2)
        np.multiply(g, 1 - beta2, out=tmp)
        tmp *= g
        v += tmp


class NAdam(_AdamFamily):
    """PyTorch's NAdam (Adam with Nesterov momentum and a momentum-decay schedule).

    Each step, per parameter::

        mu_t = beta1 * (1 - 0.5 * 0.96^(t * momentum_decay));  mu_product *= mu_t
        m, v as Adam;  denom = sqrt(v / (1 - beta2^t)) + eps
        p -= lr * (1 - mu_t) / (1 - mu_product) * g / denom
        p -= lr * mu_{t+1} / (1 - mu_product * mu_{t+1}) * m / denom
    """

    def __init__(self, params, lr=2e-3, betas=(0.9, 0.999), eps: float = 1e-8, weight_decay: float = 0,
                 momentum_decay: float = 4e-3, decoupled_weight_decay: bool = False, *, foreach=None,
                 maximize: bool = False, capturable: bool = False, differentiable: bool = False):
        _check_adam_args(lr, betas, eps, weight_decay)
        if not 0.0 <= momentum_decay:
            raise ValueError(f"Invalid momentum_decay value: {momentum_decay}")
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
                                      momentum_decay=momentum_decay, decoupled_weight_decay=decoupled_weight_decay,
                                      maximize=maximize, foreach=foreach, capturable=capturable,
                                      differentiable=differentiable))

    def _init_state(self, group, p, state):
        super()._init_state(group, p, state)
        state["mu_product"] = Tensor._wrap(np.ones((), dtype=np.float32))  # float32, as PyTorch's

    def _update(self, group, p, g, state, scratch):
        buf, tmp = scratch
        lr, (beta1, beta2), eps, md = group["lr"], group["betas"], group["eps"], group["momentum_decay"]
        state["step"]._data += 1
        step = float(state["step"]._data)
        bias_correction2 = 1 - beta2 ** step
        g = self._grad_and_decay(group, p, g, buf)
        mu = beta1 * (1.0 - 0.5 * (0.96 ** (step * md)))
        mu_next = beta1 * (1.0 - 0.5 * (0.96 ** ((step + 1) * md)))
        mu_product = state["mu_product"]._data
        mu_product *= mu
        m, v = state["exp_avg"]._data, state["exp_avg_sq"]._data
        self._moments(m, v, g, beta1, beta2, tmp)
        np.divide(v, bias_correction2, out=tmp)   # denom = (v / bc2).sqrt() + eps
        np.sqrt(tmp, out=tmp)
        tmp += eps
        mp = float(mu_product)
        np.divide(g, tmp, out=buf)                # buf may hold g: it is read before being overwritten
        buf *= -lr * (1.0 - mu) / (1.0 - mp)
        p += buf
        np.divide(m, tmp, out=tmp)
        tmp *= (-lr * mu_next) / (1.0 - mp * mu_next)
        p += tmp


class RAdam(_AdamFamily):
    """PyTorch's RAdam: Adam whose adaptive step is switched on (and rectified) once the variance
    of the adaptive rate is tractable (rho_t > 5); before that, SGD with momentum."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps: float = 1e-8, weight_decay: float = 0,
                 decoupled_weight_decay: bool = False, *, foreach=None, maximize: bool = False,
                 capturable: bool = False, differentiable: bool = False):
        _check_adam_args(lr, betas, eps, weight_decay)
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
                                      decoupled_weight_decay=decoupled_weight_decay, maximize=maximize,
                                      foreach=foreach, capturable=capturable, differentiable=differentiable))

    def _update(self, group, p, g, state, scratch):
        buf, tmp = scratch
        lr, (beta1, beta2), eps = group["lr"], group["betas"], group["eps"]
        state["step"]._data += 1
        step = float(state["step"]._data)
        g = self._grad_and_decay(group, p, g, buf)
        m, v = state["exp_avg"]._data, state["exp_avg_sq"]._data
        self._moments(m, v, g, beta1, beta2, tmp)
        bias_correction1 = 1 - beta1 ** step
        bias_correction2 = 1 - beta2 ** step
        rho_inf = 2 / (1 - beta2) - 1
        rho_t = rho_inf - 2 * step * (beta2 ** step) / bias_correction2
        np.divide(m, bias_correction1, out=buf)   # m / bc1 * lr [* sqrt(bc2) / (sqrt(v) + eps) * rect]
        buf *= lr
        if rho_t > 5.0:
            rect = ((rho_t - 4) * (rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_t)) ** 0.5
            np.sqrt(v, out=tmp)
            tmp += eps
            np.divide(bias_correction2 ** 0.5, tmp, out=tmp)
            buf *= tmp
            buf *= rect
        p -= buf


class Adamax(_AdamFamily):
    """PyTorch's Adamax: Adam with the infinity norm, ``u = max(beta2 * u, |g| + eps)``,
    ``p -= lr / (1 - beta1^t) * m / u``."""

    def __init__(self, params, lr=2e-3, betas=(0.9, 0.999), eps: float = 1e-8, weight_decay: float = 0,
                 foreach=None, *, maximize: bool = False, differentiable: bool = False, capturable: bool = False):
        _check_adam_args(lr, betas, eps, weight_decay)
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
                                      foreach=foreach, maximize=maximize, differentiable=differentiable,
                                      capturable=capturable))

    def _init_state(self, group, p, state):
        state["step"] = self._step_state()
        state["exp_avg"] = self._zeros_state(p)
        state["exp_inf"] = self._zeros_state(p)

    def _update(self, group, p, g, state, scratch):
        buf, tmp = scratch
        lr, (beta1, beta2), eps = group["lr"], group["betas"], group["eps"]
        state["step"]._data += 1
        step = float(state["step"]._data)
        g = self._effective_grad(g, p, group["weight_decay"], group["maximize"], buf)
        m, u = state["exp_avg"]._data, state["exp_inf"]._data
        np.subtract(g, m, out=tmp)
        tmp *= 1 - beta1
        m += tmp
        u *= beta2
        np.abs(g, out=tmp)
        tmp += eps
        np.maximum(u, tmp, out=u)
        clr = lr / (1 - beta1 ** step)
        np.divide(m, u, out=tmp)
        tmp *= -clr
        p += tmp
