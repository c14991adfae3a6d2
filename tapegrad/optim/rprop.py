"""Rprop and ASGD (PyTorch's rules)."""
from __future__ import annotations

import numpy as np

from ..tensor import Tensor
from .optimizer import Optimizer


class Rprop(Optimizer):
    """PyTorch's resilient backpropagation: each weight's step size grows by ``etas[1]`` while its
    gradient keeps its sign and shrinks by ``etas[0]`` when it flips (that step is then skipped);
    ``p -= sign(g) * step_size``, step sizes clamped to ``step_sizes``."""

    _n_scratch = 2

    def __init__(self, params, lr=1e-2, etas=(0.5, 1.2), step_sizes=(1e-6, 50), *, capturable: bool = False,
                 foreach=None, maximize: bool = False, differentiable: bool = False):
        if not 0.0 <= lr:
            raise ValueError(f"Invalid learning rate: {lr}")
        if not 0.0 < etas[0] < 1.0 < etas[1]:
            raise ValueError(f"Invalid eta values: {etas[0]}, {etas[1]}")
        super().__init__(params, dict(lr=lr, etas=tuple(etas), step_sizes=tuple(step_sizes), foreach=foreach,
                                      maximize=maximize, differentiable=differentiable, capturable=capturable))

    def _init_state(self, group, p, state):
        state["step"] = self._step_state()
        state["prev"] = self._zeros_state(p)
        state["step_size"] = Tensor._wrap(np.full_like(p._data, group["lr"]))

    def _update(self, group, p, g, state, scratch):
        buf, factor = scratch
        etaminus, etaplus = group["etas"]
        lo, hi = group["step_sizes"]
        state["step"]._data += 1
        prev, step_size = state["prev"]._data, state["step_size"]._data
        if group["maximize"]:
            g = np.negative(g, out=buf)
        np.multiply(g, prev, out=factor)
        np.sign(factor, out=factor)
        flipped = factor < 0
        factor[factor > 0] = etaplus
        factor[flipped] = etaminus
        factor[factor == 0] = 1
        step_size *= factor
        np.clip(step_size, lo, hi, out=step_size)
        np.copyto(prev, g)                    # the gradient, zeroed where its sign flipped
        prev[factor == etaminus] = 0
        np.sign(prev, out=factor)
        factor *= step_size
        p -= factor


class ASGD(Optimizer):
    """PyTorch's averaged SGD: ``p *= 1 - lambd * eta; p -= eta * g``; ``ax`` averages the iterates
    from step ``t0`` on; ``eta = lr / (1 + lambd * lr * t)^alpha`` (eta and mu are float32, as PyTorch's)."""

    _n_scratch = 1

    def __init__(self, params, lr=1e-2, lambd: float = 1e-4, alpha: float = 0.75, t0: float = 1e6,
                 weight_decay: float = 0, foreach=None, maximize: bool = False, differentiable: bool = False,
                 capturable: bool = False):
        if not 0.0 <= lr:
            raise ValueError(f"Invalid learning rate: {lr}")
        if not 0.0 <= weight_decay:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        super().__init__(params, dict(lr=lr, lambd=lambd, alpha=alpha, t0=t0, weight_decay=weight_decay,
                                      foreach=foreach, maximize=maximize, differentiable=differentiable,
                                      capturable=capturable))

    def _init_state(self, group, p, state):
        state["step"] = self._step_state()
        state["eta"] = Tensor._wrap(np.asarray(group["lr"], dtype=np.float32))
        state["mu"] = Tensor._wrap(np.ones((), dtype=np.float32))
        state["ax"] = self._zeros_state(p)

    def _update(self, group, p, g, state, scratch):
        (buf,) = scratch
        lr, lambd, alpha, t0 = group["lr"], group["lambd"], group["alpha"], group["t0"]
        state["step"]._data += 1
        g = self._effective_grad(g, p, group["weight_decay"], group["maximize"], buf)
        eta = float(state["eta"]._data)
        p *= 1 - lambd * eta
        np.multiply(g, -eta, out=buf)
        p += buf
        ax, mu = state["ax"]._data, state["mu"]._data
        if float(mu) != 1:
            np.subtract(p, ax, out=buf)
            buf *= mu
            ax += buf
        else:
            np.copyto(ax, p)
        step = float(state["step"]._data)
        state["eta"]._data[...] = lr / ((1 + lambd * lr * step) ** alpha)
        state["mu"]._data[...] = 1 / max(1, step - t0)
