"""Stochastic gradient descent with momentum, dampening, Nesterov and weight decay (PyTorch's rule)."""
from __future__ import annotations

import numpy as np

from .. import _C
from ..tensor import Tensor
from .optimizer import Optimizer, required


class SGD(Optimizer):
    """PyTorch's SGD.

    Each step, per parameter::

        g = -grad if maximize else grad;  g += weight_decay * p
        b = g (first step) or momentum * b + (1 - dampening) * g
        g = g + momentum * b if nesterov else b
        p -= lr * g
    """

    _n_scratch = 2

    def __init__(self, params, lr=1e-3, momentum: float = 0, dampening: float = 0, weight_decay: float = 0,
                 nesterov: bool = False, *, maximize: bool = False, foreach=None, differentiable: bool = False,
                 fused=None):
        if lr is not required and lr < 0.0:
            raise ValueError(f"Invalid learning rate: {lr}")
        if momentum < 0.0:
            raise ValueError(f"Invalid momentum value: {momentum}")
        if weight_decay < 0.0:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("Nesterov momentum requires a momentum and zero dampening")
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay,
                                      nesterov=nesterov, maximize=maximize, foreach=foreach,
                                      differentiable=differentiable, fused=fused))

    def _fused_update(self, group, params):
        arrays = self._fused_arrays(group, params)
        if arrays is None:
            return False
        ps, gs = arrays
        momentum, bufs, first = group["momentum"], None, []
        if momentum != 0:
            bufs = []
            for p, a in zip(params, ps):
                b = self.state[p].get("momentum_buffer")
                if b is not None and not (b._data.dtype == a.dtype and b._data.shape == a.shape
                                          and b._data.flags.c_contiguous):
                    return False  # e.g. a buffer loaded in another dtype: the numpy path casts it
            for p, a in zip(params, ps):
                state = self.state[p]
                if state.get("momentum_buffer") is None:  # the kernel fills it with the first gradient
                    state["momentum_buffer"] = Tensor._wrap(np.empty_like(a))
                    first.append(True)
                else:
                    first.append(False)
                bufs.append(state["momentum_buffer"]._data)
        else:
            for p in params:
                self.state[p]  # noqa: B018 - an (empty) state entry per stepped parameter, as the per-parameter path
        _C.sgd_step(ps, gs, bufs, first, group["lr"], momentum, group["dampening"], group["weight_decay"],
                    group["nesterov"], group["maximize"])
        for p in params:
            p._bump_version()
        return True

    def _update(self, group, p, g, state, scratch):
        buf, tmp = scratch
        g = self._effective_grad(g, p, group["weight_decay"], group["maximize"], buf)
        momentum = group["momentum"]
        if momentum != 0:
            mb = state.get("momentum_buffer")
            if mb is None:
                state["momentum_buffer"] = Tensor._wrap(np.array(g))
                m = state["momentum_buffer"]._data
            else:
                m = mb._data
                m *= momentum
                np.multiply(g, 1 - group["dampening"], out=tmp)
                m += tmp
            if group["nesterov"]:
                np.multiply(m, momentum, out=tmp)
                np.add(g, tmp, out=tmp)
                g = tmp
            else:
                g = m
        np.multiply(g, -group["lr"], out=tmp)
        p += tmp
