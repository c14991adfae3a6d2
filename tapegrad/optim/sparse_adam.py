"""SparseAdam (PyTorch's rule): Adam for sparse gradients, updating only the rows they touch."""
from __future__ import annotations

import math

import numpy as np

from .._tape import grad_mode
from ..tensor import Tensor
from .optimizer import Optimizer


class SparseAdam(Optimizer):
    """PyTorch's SparseAdam: a "lazy" Adam for sparse gradients (``tapegrad.sparse``'s COO
    tensors, e.g. a sparse leaf's gradient through ``tapegrad.sparse.mm``). Only the entries
    present in a step's gradient move, and only their moments decay::

        t += 1;  at each index i of the coalesced gradient g (negated if maximize):
        m[i] += (1 - beta1) * (g_i - m[i]);  v[i] += (1 - beta2) * (g_i**2 - v[i])
        p[i] -= lr * sqrt(1 - beta2**t) / (1 - beta1**t) * m[i] / (sqrt(v[i]) + eps)

    A dense gradient raises, as PyTorch's does (use Adam for those).
    """

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, maximize: bool = False):
        if not 0.0 < lr:
            raise ValueError(f"Invalid learning rate: {lr}")
        if not 0.0 < eps:
            raise ValueError(f"Invalid epsilon value: {eps}")
        if not 0.0 <= betas[0] < 1.0:
            raise ValueError(f"Invalid beta parameter at index 0: {betas[0]}")
        if not 0.0 <= betas[1] < 1.0:
            raise ValueError(f"Invalid beta parameter at index 1: {betas[1]}")
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, maximize=maximize))
        sparse = [i for group in self.param_groups for i, p in enumerate(group["params"]) if p.is_sparse]
        if sparse:
            raise ValueError(f"Sparse params at indices {sparse}: SparseAdam requires dense parameter tensors")

    def step(self, closure=None):
        """One update of every parameter that has a (sparse) gradient; ``closure`` re-evaluates the loss."""
        loss = None
        if closure is not None:
            with grad_mode.enable_grad():
                loss = closure()
        with grad_mode.no_grad():
            for group in self.param_groups:
                beta1, beta2 = group["betas"]
                for p in group["params"]:
                    if p.grad is None:
                        continue
                    if not p.grad.is_sparse:
                        raise RuntimeError("SparseAdam does not support dense gradients, please consider Adam instead "
                                           "(tapegrad's nn.Embedding(sparse=True) and embedding_bag(sparse=True) "
                                           "give dense gradients: its backward pass has no sparse accumulation)")
                    grad = p.grad.coalesce()
                    if tuple(grad.shape) != tuple(p.shape):
                        raise RuntimeError(f"SparseAdam: gradient of shape {tuple(grad.shape)} does not match its "
                                           f"parameter of shape {tuple(p.shape)}")
                    state = self.state[p]
                    if not state:
                        state["step"] = 0
                        state["exp_avg"] = Tensor._wrap(np.zeros_like(p._data))
                        state["exp_avg_sq"] = Tensor._wrap(np.zeros_like(p._data))
                    state["step"] += 1
                    values = grad.values()._data.astype(p._data.dtype, copy=False)
                    if values.size == 0:
                        continue
                    if group["maximize"]:
                        values = -values
                    idx = tuple(grad.indices()._data)  # coalesced: each index once
                    m, v, w = state["exp_avg"]._data, state["exp_avg_sq"]._data, p._data
                    old_m, old_v = m[idx], v[idx]
                    new_m = old_m + (values - old_m) * (1 - beta1)
                    new_v = old_v + (values * values - old_v) * (1 - beta2)
                    m[idx], v[idx] = new_m, new_v
                    t = state["step"]
                    step_size = group["lr"] * math.sqrt(1 - beta2 ** t) / (1 - beta1 ** t)
                    w[idx] = w[idx] - step_size * new_m / (np.sqrt(new_v) + group["eps"])
                    p._bump_version()
        return loss
