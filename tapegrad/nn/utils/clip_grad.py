"""Gradient clipping, in place on ``p.grad`` (never recorded on the tape)."""
from __future__ import annotations

import math
import warnings

import numpy as np

from ...ops.reduction import sumsq_flat
from ...tensor import Tensor


def _grads(parameters):
    if isinstance(parameters, Tensor):
        parameters = [parameters]
    return [p.grad for p in parameters if p.grad is not None]


def _norm2(a) -> float:
    """``np.linalg.norm`` of ``a`` in float64. float32 without the float64 copy: BLAS dots in
    float32 (sumsq_flat, as accurate as a pairwise float32 sum), 4x faster than the cast and dot;
    where a square or the sum leaves float32's range (the sum is inf, NaN, or below 1e-20 so that
    underflowed squares could matter) it is computed in float64 as before."""
    if a.dtype == np.float32 and a.size:
        s = float(sumsq_flat(a.reshape(-1)))
        if 1e-20 <= s <= 1e38:
            return math.sqrt(s)
    return np.linalg.norm(a.reshape(-1).astype(np.float64, copy=False), ord=2)


def _total2(arrays) -> float:
    """The 2-norm of all of ``arrays`` together, in float64."""
    with np.errstate(over="ignore"):  # a float32 overflow is retried in float64: no warning for it
        return float(np.linalg.norm(np.array([_norm2(a) for a in arrays]), ord=2))


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
    elif norm_type == 2.0:
        total = np.asarray(_total2([g._data for g in grads]), dtype=dtype)
    else:
        per = np.array([np.linalg.norm(g._data.reshape(-1).astype(np.float64, copy=False), ord=norm_type)
                        for g in grads])
        total = np.asarray(np.linalg.norm(per, ord=norm_type), dtype=dtype)
    if error_if_nonfinite and not np.isfinite(total):
        raise RuntimeError(f"The total norm of order {norm_type} for gradients from `parameters` is non-finite, so "
                           f"it cannot be clipped. To disable this error and scale the gradients by the non-finite "
                           f"norm anyway, set `error_if_nonfinite=False`")
    coef = np.minimum(np.asarray(max_norm, dtype) / (total + np.asarray(1e-6, dtype)), np.asarray(1.0, dtype))
    _scale(grads, coef)
    return Tensor._wrap(total)


def _scale(grads, coef):
    """Each gradient times ``coef``, in place; a coefficient of 1 (the norm is within bounds) leaves
    every value as it is (x * 1 is x for every float, -0.0, inf and NaN included), so it is not
    multiplied: one pass over every gradient saved. The versions are bumped either way."""
    one = coef == 1
    for g in grads:
        if not one:
            np.multiply(g._data, coef.astype(g._data.dtype), out=g._data)
        g._bump_version()


def clip_grad_value_(parameters, clip_value: float, foreach=None) -> None:
    """Clamp every gradient element into ``[-clip_value, clip_value]``."""
    clip_value = float(clip_value)
    for g in _grads(parameters):
        np.clip(g._data, -clip_value, clip_value, out=g._data)
        g._bump_version()


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
    elif norm_type == 2.0:
        total = _total2([t._data for t in ts])
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
    _scale(grads, coef)


def clip_grad_norm(parameters, max_norm: float, norm_type: float = 2.0, error_if_nonfinite: bool = False,
                   foreach=None) -> Tensor:
    """Deprecated alias of :func:`clip_grad_norm_` (warns with a FutureWarning, as PyTorch does)."""
    warnings.warn("`torch.nn.utils.clip_grad_norm` is now deprecated in favor of `torch.nn.utils.clip_grad_norm_`.",
                  FutureWarning, stacklevel=2)
    return clip_grad_norm_(parameters, max_norm, norm_type, error_if_nonfinite, foreach)
