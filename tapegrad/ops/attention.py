"""``scaled_dot_product_attention`` as one op of the table (``sdpa``), run by a blocked C++ kernel
(csrc/kernels/attention.cpp): keys in tiles with a running max and sum per query row, so the
(L, S) score matrix is never held whole, and a backward that recomputes the scores tile by tile
from the saved log-sum-exp.

The mask reaches the op as an additive float array (0 where a key may be attended to, -inf where
not; a float ``attn_mask`` as given), shared by every (batch, head) or one per. With
``create_graph`` the VJPs differentiate the composite formula (``softmax(q k^T * scale + mask) v``
in tapegrad ops), so double backward works.

A query row that may attend to no key (every score -inf: a left-padded position) gives zeros and
no gradient, as PyTorch's (2.5+) safe softmax does, never NaN.
"""
from __future__ import annotations

import numpy as np

from .. import _C
from .._tape import engine, grad_mode
from .._tape.registry import apply, defop
from .activation import softmax
from .matmul import matmul

Tensor = None  # the Tensor class, bound by tensor.py (ops.bind_tensor): the ops sit below it


class _Saved:
    """The forward's output and log-sum-exp, and the last backward's (g, (dq, dk, dv)): the
    kernel computes the three gradients in one pass, the engine asks for them one at a time."""

    __slots__ = ("out", "lse", "last")

    def __init__(self, out, lse):
        self.out, self.lse, self.last = out, lse, None


def _heads(a):
    """(..., L, D) as the kernel takes it: any strides (the (B, H, L, D) view of a (B, L, H, D)
    projection is read in place) but adjacent elements along the last dim."""
    if (a.strides[-1] == a.itemsize or a.shape[-1] == 1) and all(st % a.itemsize == 0 for st in a.strides):
        return a
    return np.ascontiguousarray(a)


def _sdpa_fwd(q, k, v, *, mask, causal, scale):
    out, lse = _C.attention(_heads(q), _heads(k), _heads(v), mask, causal, scale)
    return out.reshape(q.shape[:-1] + (v.shape[-1],)), _Saved(out, lse)


def safe_softmax(scores):
    """``softmax(scores, -1)``, with 0 on rows where every score is -inf (PyTorch's
    ``_safe_softmax``). Those rows are set to 0 before the softmax too, so that its VJP sees
    finite probabilities and no NaN reaches the scores' gradient."""
    dead = np.all(scores._data == -np.inf, axis=-1, keepdims=True)
    if not dead.any():
        return softmax(scores, -1)
    dead = Tensor._wrap(dead)
    return softmax(scores.masked_fill(dead, 0.0), -1).masked_fill(dead, 0.0)


def _composite(q, k, v, mask, causal, scale):
    """softmax(q k^T * scale + mask) v in tapegrad ops (the create_graph path)."""
    scores = matmul(q, k.transpose(-2, -1)) * scale
    if mask is not None:
        scores = scores + Tensor._wrap(mask.reshape(q.shape[:-2] + mask.shape[-2:]) if mask.shape[0] > 1
                                       else mask[0])
    if causal:
        L, S = q.shape[-2], k.shape[-2]
        scores = scores + Tensor._wrap(np.where(np.tri(L, S, dtype=bool), 0.0, -np.inf).astype(q._data.dtype))
    return matmul(safe_softmax(scores), v)


def _sdpa_vjp(i):
    """The VJP for input i of sdpa (query, key, value)."""
    def vjp(g, out, q, k, v, *, mask, causal, scale, aux):
        last = aux.last
        if last is not None and last[0] is g:
            return last[1][i]
        if grad_mode.is_grad_enabled():
            inputs = (q, k, v)
            wanted = [t for t in inputs if t.requires_grad]
            got = engine.grad([_composite(q, k, v, mask, causal, scale)], wanted, [g], create_graph=True,
                              allow_unused=True)
            by_id = {id(t): d for t, d in zip(wanted, got)}
            grads = tuple(by_id.get(id(t)) for t in inputs)
        else:
            dq, dk, dv = _C.attention_backward(_heads(g._data), _heads(q._data), _heads(k._data), _heads(v._data),
                                               mask, causal, scale, aux.out, aux.lse)
            grads = tuple(Tensor._wrap(d.reshape(t.shape)) for d, t in zip((dq, dk, dv), (q, k, v)))
        aux.last = (g, grads)
        return grads[i]
    return vjp


_sdpa = defop("sdpa", _sdpa_fwd, _sdpa_vjp(0), _sdpa_vjp(1), _sdpa_vjp(2), aux=True)


def fused(query, key, value, attn_mask) -> bool:
    """Whether the blocked kernel runs this call: float32/float64 operands of one dtype with equal
    batch dims, and a mask (if any) that needs no gradient."""
    dt = query._data.dtype
    if dt not in (np.float32, np.float64) or key._data.dtype != dt or value._data.dtype != dt:
        return False
    if query.ndim < 2 or not (query.shape[:-2] == key.shape[:-2] == value.shape[:-2]):
        return False
    if query.shape[-1] != key.shape[-1] or key.shape[-2] != value.shape[-2] or 0 in query._data.shape + key._data.shape:
        return False
    if attn_mask is None:
        return True
    return (attn_mask._data.dtype == np.bool_ or attn_mask._data.dtype == dt) and not attn_mask.requires_grad


def sdpa(query, key, value, attn_mask, is_causal, scale):
    """The blocked attention (``fused`` said yes): ``attn_mask`` bool (True: may attend) or
    float (added), broadcastable to (..., L, S)."""
    mask = None
    if attn_mask is not None:
        m = attn_mask._data
        if m.dtype == np.bool_:
            m = np.where(m, 0.0, -np.inf).astype(query._data.dtype)
        L, S = query.shape[-2], key.shape[-2]
        batch = tuple(query.shape[:-2])
        try:
            full = np.broadcast_to(m, batch + (L, S))
        except ValueError:
            raise RuntimeError(f"scaled_dot_product_attention: attn_mask of shape {tuple(m.shape)} does not "
                               f"broadcast to the scores' shape {batch + (L, S)}") from None
        shared = all(st == 0 for st in full.strides[:-2])  # one mask for every (batch, head)
        mask = np.ascontiguousarray(full[(0,) * len(batch)][None] if shared else full.reshape(-1, L, S))
    return apply(_sdpa, query, key, value, mask=mask, causal=bool(is_causal), scale=float(scale))
