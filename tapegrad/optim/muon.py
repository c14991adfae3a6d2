"""Muon (PyTorch's ``torch.optim.Muon``): momentum, then the update orthogonalised by a quintic
Newton-Schulz iteration, for 2-D parameters."""
from __future__ import annotations

import math

import numpy as np

from ..tensor import Tensor
from .optimizer import Optimizer


def _zeropower_via_newtonschulz(g, coefficients, steps, eps):
    """About ``U V^T`` of ``g = U S V^T`` (singular values pushed into ~[0.5, 1.5]), by Newton-Schulz.

    PyTorch runs the iteration in bfloat16; tapegrad runs it in the parameter's dtype, so its
    update is the same iteration without bfloat16's rounding (~0.4% per element)."""
    if steps >= 100:
        raise ValueError("Number of steps must be less than 100 for computational efficiency")
    if len(coefficients) != 3:
        raise ValueError("Coefficients must be a tuple of exactly 3 values")
    a, b, c = coefficients
    x = g.T if g.shape[0] > g.shape[1] else g
    x = x / max(float(np.linalg.norm(x)), eps)
    for _ in range(steps):
        gram = x @ x.T
        x = a * x + (b * gram + c * gram @ gram) @ x
    return x.T if g.shape[0] > g.shape[1] else x


class Muon(Optimizer):
    """PyTorch's Muon, for 2-D parameters (use another optimizer for biases and norms). Per step::

        buf = lerp(buf, g, 1 - momentum);  u = lerp(g, buf, momentum) if nesterov else buf
        u = NewtonSchulz(u);  p *= 1 - lr * weight_decay
        p -= lr * sqrt(max(1, rows / cols)) * u        (adjust_lr_fn None / "original")

    ``adjust_lr_fn="match_rms_adamw"`` scales lr by ``0.2 * sqrt(max(rows, cols))`` instead.

    >>> opt = tapegrad.optim.Muon([layer.weight], lr=0.02)
    """

    def __init__(self, params, lr=1e-3, weight_decay: float = 0.1, momentum: float = 0.95, nesterov: bool = True,
                 ns_coefficients=(3.4445, -4.775, 2.0315), eps: float = 1e-7, ns_steps: int = 5, adjust_lr_fn=None):
        if not 0.0 <= lr:
            raise ValueError(f"Learning rate should be >= 0 but is: {lr}")
        if not 0.0 <= momentum:
            raise ValueError(f"momentum should be >= 0 but is: {momentum}")
        if not 0.0 <= weight_decay:
            raise ValueError(f"weight decay should be >= 0 but is: {weight_decay}")
        if adjust_lr_fn not in (None, "original", "match_rms_adamw"):
            raise ValueError(f"Adjust learning rate function {adjust_lr_fn} is not supported")
        super().__init__(params, dict(lr=lr, weight_decay=weight_decay, momentum=momentum, nesterov=nesterov,
                                      ns_coefficients=tuple(ns_coefficients), eps=eps, ns_steps=ns_steps,
                                      adjust_lr_fn=adjust_lr_fn))
        for group in self.param_groups:
            for p in group["params"]:
                if p.ndim != 2:
                    raise ValueError(f"Muon only supports 2D parameters whereas we found a parameter with size: "
                                     f"{tuple(p.shape)}")

    def _init_state(self, group, p, state):
        state["momentum_buffer"] = Tensor._wrap(np.zeros_like(p._data))

    def _update(self, group, p, g, state, scratch):
        buf = state["momentum_buffer"]._data
        m = group["momentum"]
        buf += (1 - m) * (g - buf)
        update = g + m * (buf - g) if group["nesterov"] else buf
        update = _zeropower_via_newtonschulz(update, group["ns_coefficients"], group["ns_steps"], group["eps"])
        rows, cols = p.shape[:2]
        fn = group["adjust_lr_fn"]
        if fn is None or fn == "original":
            ratio = math.sqrt(max(1, rows / cols))
        else:
            ratio = 0.2 * math.sqrt(max(rows, cols))
        lr = group["lr"]
        p *= 1 - lr * group["weight_decay"]
        p -= (lr * ratio) * update.astype(p.dtype, copy=False)
