"""Adam and AdamW (PyTorch's rules, including amsgrad and maximize)."""
from __future__ import annotations

import numpy as np

from .. import _C
from .optimizer import Optimizer


def _fits(state, param):
    """Whether a state array can go to the fused kernel with its parameter's array."""
    return state.dtype == param.dtype and state.shape == param.shape and state.flags.c_contiguous


def check_adam_args(lr, betas, eps, weight_decay):
    """The Adam family's argument checks, in PyTorch's words."""
    if not 0.0 <= lr:
        raise ValueError(f"Invalid learning rate: {lr}")
    if not 0.0 <= eps:
        raise ValueError(f"Invalid epsilon value: {eps}")
    if not 0.0 <= betas[0] < 1.0:
        raise ValueError(f"Invalid beta parameter at index 0: {betas[0]}")
    if not 0.0 <= betas[1] < 1.0:
        raise ValueError(f"Invalid beta parameter at index 1: {betas[1]}")
    if not 0.0 <= weight_decay:
        raise ValueError(f"Invalid weight_decay value: {weight_decay}")


class Adam(Optimizer):
    """PyTorch's Adam::

        t += 1;  g = -grad if maximize else grad
        p *= 1 - lr * weight_decay               (AdamW: decoupled)   or   g += weight_decay * p   (Adam)
        m = lerp(m, g, 1 - beta1);  v = beta2 * v + (1 - beta2) * g * g
        v_hat = max(v_hat, v) if amsgrad else v
        p -= lr / (1 - beta1^t) * m / (sqrt(v_hat) / sqrt(1 - beta2^t) + eps)

    >>> opt = tapegrad.optim.Adam(model.parameters(), lr=1e-3)
    """

    _n_scratch = 2
    _decoupled = False

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps: float = 1e-8, weight_decay: float = 0,
                 amsgrad: bool = False, *, foreach=None, maximize: bool = False, capturable: bool = False,
                 differentiable: bool = False, fused=None, decoupled_weight_decay: bool = False):
        check_adam_args(lr, betas, eps, weight_decay)
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay, amsgrad=amsgrad,
                                      maximize=maximize, foreach=foreach, capturable=capturable,
                                      differentiable=differentiable, fused=fused,
                                      decoupled_weight_decay=decoupled_weight_decay or self._decoupled))

    def _init_state(self, group, p, state):
        state["step"] = self._step_state()
        state["exp_avg"] = self._zeros_state(p)
        state["exp_avg_sq"] = self._zeros_state(p)
        if group["amsgrad"]:
            state["max_exp_avg_sq"] = self._zeros_state(p)

    def _fused_update(self, group, params):
        arrays = self._fused_arrays(group, params)
        if arrays is None:
            return False
        ps, gs = arrays
        states = []
        keys = ("exp_avg", "exp_avg_sq") + (("max_exp_avg_sq",) if group["amsgrad"] else ())
        for p, a in zip(params, ps):
            state = self.state[p]
            if not state:
                self._init_state(group, p, state)
            if not all(k in state and _fits(state[k]._data, a) for k in keys):
                return False  # e.g. state loaded in another dtype: the numpy path casts it
            states.append(state)
        for state in states:
            state["step"]._data += 1
        by_step = {}  # parameters added to the group later have their own step count
        for i, state in enumerate(states):
            by_step.setdefault(float(state["step"]._data), []).append(i)
        (beta1, beta2), amsgrad = group["betas"], group["amsgrad"]
        for step, idx in by_step.items():
            _C.adam_step([ps[i] for i in idx], [gs[i] for i in idx], [states[i]["exp_avg"]._data for i in idx],
                         [states[i]["exp_avg_sq"]._data for i in idx],
                         [states[i]["max_exp_avg_sq"]._data for i in idx] if amsgrad else None,
                         group["lr"], beta1, beta2, group["eps"], group["weight_decay"], step, group["maximize"],
                         group["decoupled_weight_decay"])
        for p in params:
            p._bump_version()
        return True

    def _update(self, group, p, g, state, scratch):
        buf, tmp = scratch
        lr, (beta1, beta2), eps, wd = group["lr"], group["betas"], group["eps"], group["weight_decay"]
        step_t = state["step"]._data
        step_t += 1
        step = float(step_t)
        if wd != 0 and group["decoupled_weight_decay"]:
            p *= 1 - lr * wd
            g = self._effective_grad(g, p, 0, group["maximize"], buf)
        else:
            g = self._effective_grad(g, p, wd, group["maximize"], buf)
        m, v = state["exp_avg"]._data, state["exp_avg_sq"]._data
        np.subtract(g, m, out=tmp)           # m.lerp_(g, 1 - beta1) = m + (1 - beta1) * (g - m)
        tmp *= 1 - beta1
        m += tmp
        v *= beta2                           # v.mul_(beta2).addcmul_(g, g, value=1 - beta2)
        np.multiply(g, 1 - beta2, out=tmp)
        tmp *= g
        v += tmp
        bias_correction1 = 1 - beta1 ** step
        bias_correction2 = 1 - beta2 ** step
        step_size = lr / bias_correction1
        bias_correction2_sqrt = bias_correction2 ** 0.5
        if group["amsgrad"]:
            vmax = state["max_exp_avg_sq"]._data
            np.maximum(vmax, v, out=vmax)
            v = vmax
        np.sqrt(v, out=tmp)                  # denom = sqrt(v) / sqrt(bc2) + eps
        tmp /= bias_correction2_sqrt
        tmp += eps
        np.divide(m, tmp, out=tmp)           # p.addcdiv_(m, denom, value=-step_size)
        tmp *= -step_size
        p += tmp


class AdamW(Adam):
    """Adam with decoupled weight decay (``p *= 1 - lr * weight_decay`` before the Adam step);
    weight_decay defaults to 1e-2 as in PyTorch."""

    _decoupled = True

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps: float = 1e-8, weight_decay: float = 1e-2,
                 amsgrad: bool = False, *, maximize: bool = False, foreach=None, capturable: bool = False,
                 differentiable: bool = False, fused=None):
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, foreach=foreach, maximize=maximize,
                         capturable=capturable, differentiable=differentiable, fused=fused,
                         decoupled_weight_decay=True)
