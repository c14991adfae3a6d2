"""Adafactor (PyTorch's ``torch.optim.Adafactor``, Shazeer and Stern 2018)."""
from __future__ import annotations

import numpy as np

from ..tensor import Tensor
from .optimizer import Optimizer


class Adafactor(Optimizer):
    """PyTorch's Adafactor: the second moment of a matrix is kept factored (one row and one column
    vector instead of a full matrix), the step is relative to the parameter's RMS, and the update
    is clipped to RMS ``d``.

    Each step, per parameter::

        t += 1;  beta2_t = 1 - t ** beta2_decay;  rho = min(lr, 1 / sqrt(t))
        alpha = max(eps2, RMS(p)) * rho;  p *= 1 - lr * weight_decay
        matrices: row_var, col_var <- lerp towards the row/column means of g**2;
                  v = row_var @ col_var / max(mean(row_var), eps1)
        otherwise: v <- lerp towards g**2
        u = g / sqrt(max(v, eps1**2));  p -= alpha / max(1, RMS(u) / d) * u

    >>> opt = tapegrad.optim.Adafactor(model.parameters(), lr=1e-2)
    """

    def __init__(self, params, lr=1e-2, beta2_decay: float = -0.8, eps=(None, 1e-3), d: float = 1.0,
                 weight_decay: float = 0.0, *, foreach=None, maximize: bool = False):
        if not 0.0 <= lr:
            raise ValueError(f"Learning rate should be >= 0 but is: {lr}")
        if not 0.0 >= beta2_decay:
            raise ValueError(f"beta2_decay should be <= 0 but is: {beta2_decay}")
        if eps[0] is not None and not 0.0 <= eps[0]:
            raise ValueError(f"epsilon1 should be >= 0 but is: {eps[0]}")
        if not 0.0 <= eps[1]:
            raise ValueError(f"epsilon2 should be >= 0 but is: {eps[1]}")
        if not 1.0 <= d:
            raise ValueError(f"Clipping threshold d should be >= 1 but is: {d}")
        if not 0.0 <= weight_decay:
            raise ValueError(f"weight_decay should be >= 0 but is: {weight_decay}")
        super().__init__(params, dict(lr=lr, beta2_decay=beta2_decay, eps=eps, d=d, weight_decay=weight_decay,
                                      foreach=foreach, maximize=maximize))

    def _init_state(self, group, p, state):
        state["step"] = self._step_state()
        if p.ndim > 1:
            state["row_var"] = Tensor._wrap(np.zeros(tuple(p.shape[:-1]) + (1,), p._data.dtype))
            state["col_var"] = Tensor._wrap(np.zeros(tuple(p.shape[:-2]) + (1, p.shape[-1]), p._data.dtype))
        else:
            state["variance"] = Tensor._wrap(np.zeros_like(p._data))

    def _update(self, group, p, g, state, scratch):
        if group["maximize"]:
            g = -g
        eps1, eps2 = group["eps"]
        if eps1 is None:
            eps1 = float(np.finfo(p.dtype).eps)
        step_t = state["step"]._data
        step_t += 1
        step = float(step_t)
        lr = group["lr"]
        beta2_t = step ** group["beta2_decay"]
        rho = min(lr, 1 / step ** 0.5)
        alpha = max(eps2, float(np.linalg.norm(p.reshape(-1))) / p.size ** 0.5) * rho
        if group["weight_decay"] != 0:
            p *= 1 - lr * group["weight_decay"]
        if g.ndim > 1:
            row_var, col_var = state["row_var"]._data, state["col_var"]._data
            sq = g * g
            row_var += beta2_t * (sq.mean(-1, keepdims=True) - row_var)  # lerp_(row_mean, beta2_t)
            col_var += beta2_t * (sq.mean(-2, keepdims=True) - col_var)
            var = row_var @ col_var
            var /= np.maximum(row_var.mean(-2, keepdims=True), eps1)
        else:
            variance = state["variance"]._data
            variance += beta2_t * (g * g - variance)
            var = variance.copy()
        update = g / np.sqrt(np.maximum(var, eps1 * eps1))
        denom = max(1.0, float(np.linalg.norm(update.reshape(-1))) / (update.size ** 0.5 * group["d"]))
        p -= (alpha / denom) * update
