"""Gradient clipping, in place on ``p.grad`` (never recorded on the tape)."""
from __future__ import annotations

import math
import warnings

import numpy as np

from ...tensor import Tensor


def _grads(parameters):
    if isinstance(parameters, Tensor):
        parameters = [parameters]
    return [p.grad for p in parameters if p.grad is not None]


def clip_grad_norm_(parameters, max_norm: float, norm_type: float = 2.0, error_if_nonfinite: bool = False,
                    foreach=None) -> Tensor:
    """Scale all gradients together so that their joint ``norm_type`` norm is at most
    ``max_norm``; returns the norm before clipping (a 0-d tensor), as PyTorch does.

    >>> loss.backward()
    >>> tapegrad.nn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0)
    """
    grads = _grads(parameters)
    norm_type = float(norm_type)
    if not grads:
        return Tensor._wrap(np.zeros((), dtype=np.float32))
    dtype = grads[0].dtype
    if norm_type == math.inf:
        per = [np.max(np.abs(g._data)) if g._data.size else 0.0 for g in grads]
        total = np.asarray(max(per), dtype=dtype)
    else:
        per = np.array([np.linalg.norm(g._data.reshape(-1).astype(np.float64, copy=False), ord=norm_type)
                        for g in grads])
        total = np.asarray(np.linalg.norm(per, ord=norm_type), dtype=dtype)
    if error_if_nonfinite and not np.isfinite(total):
        raise RuntimeError(f"The total norm of order {norm_type} for gradients from `parameters` is non-finite, so "
                           f"it cannot be clipped. To disable this error and scale the gradients by the non-finite "
                           f"norm anyway, set `error_if_nonfinite=False`")
    coef = np.minimum(np.asarray(max_norm, dtype) / (total + np.asarray(1e-6, dtype)), np.asarray(1.0, dtype))
    for g in grads:
        np.multiply(g._data, coef.astype(g._data.dtype), out=g._data)
        g._version[0] += 1
    return Tensor._wrap(total)


def clip_grad_value_(parameters, clip_value: float, foreach=None) -> None:
    """Clamp every gradient element into ``[-clip_value, clip_value]``."""
    clip_value = float(clip_value)
    for g in _grads(parameters):
        np.clip(g._data, -clip_value, clip_value, out=g._data)
        g._version[0] += 1


def get_total_norm(tensors, norm_type: float = 2.0, error_if_nonfinite: bool = False, foreach=None) -> Tensor:
    """The ``norm_type`` norm of the norms of ``tensors`` (as if they were one flat vector), a 0-d
    tensor; with ``error_if_nonfinite`` a nan or inf total raises.

    >>> tapegrad.nn.utils.get_total_norm([tapegrad.tensor([3.0]), tapegrad.tensor([4.0])])
    tensor(5.)
    """
    ts = [tensors] if isinstance(tensors, Tensor) else [t for t in tensors if t is not None]
    if not ts:
        return Tensor._wrap(np.zeros((), np.float32))
    norm_type = float(norm_type)
    if norm_type == math.inf:
        total = max(float(np.max(np.abs(t._data))) if t._data.size else 0.0 for t in ts)
    else:
        total = float(np.linalg.norm([np.linalg.norm(t._data.reshape(-1).astype(np.float64, copy=False),
                                                     ord=norm_type) for t in ts], ord=norm_type))
    if error_if_nonfinite and not math.isfinite(total):
        raise RuntimeError(f"get_total_norm: the total norm of order {norm_type} is non-finite ({total}); set "
                           f"error_if_nonfinite=False to return it anyway")
    return Tensor._wrap(np.asarray(total, ts[0].dtype))


def clip_grads_with_norm_(parameters, max_norm: float, total_norm, foreach=None) -> None:
    """Scale every gradient by ``min(1, max_norm / (total_norm + 1e-6))``, in place, with a
    ``total_norm`` computed beforehand (e.g. by :func:`get_total_norm`, possibly reduced across
    processes): the second half of :func:`clip_grad_norm_`.

    >>> norm = tapegrad.nn.utils.get_total_norm([p.grad for p in model.parameters()])
    >>> tapegrad.nn.utils.clip_grads_with_norm_(model.parameters(), 1.0, norm)
    """
    grads = _grads(parameters)
    if not grads:
        return
    total = total_norm._data if isinstance(total_norm, Tensor) else np.asarray(total_norm)
    dtype = grads[0].dtype
    coef = np.minimum(np.asarray(max_norm, dtype) / (total.astype(dtype) + np.asarray(1e-6, dtype)),
                      np.asarray(1.0, dtype))
    for g in grads:
        np.multiply(g._data, coef.astype(g._data.dtype), out=g._data)
        g._version[0] += 1


def clip_grad_norm(parameters, max_norm: float, norm_type: float = 2.0, error_if_nonfinite: bool = False,
                   foreach=None) -> Tensor:
    """Deprecated alias of :func:`clip_grad_norm_` (warns with a FutureWarning, as PyTorch does)."""
    warnings.warn("`torch.nn.utils.clip_grad_norm` is now deprecated in favor of `torch.nn.utils.clip_grad_norm_`.",
                  FutureWarning, stacklevel=2)
    return clip_grad_norm_(parameters, max_norm, norm_type, error_if_nonfinite, foreach)
