"""matmul with numpy's rules: 1-D operands are promoted and squeezed, batch dims broadcast.
The 2-D and batched products run in the native GEMM (``tapegrad._C.matmul``)."""
from __future__ import annotations

import numpy as np

from .. import _C
from .._tape.registry import apply, defop
from ._util import pair


def _mm_fwd(a, b):
    """a (..., M, K) @ b (..., K, N), both at least 2-D, batch dims broadcast."""
    if a.dtype.kind != "f" or a.dtype == np.float16:
        return np.matmul(a, b)
    if a.ndim == 2 and b.ndim == 2:  # the common case, without the broadcasting machinery
        out = np.empty((a.shape[0], b.shape[1]), dtype=a.dtype)
        _C.matmul(a, b, out)
        return out
    batch = np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    out = np.empty(batch + (a.shape[-2], b.shape[-1]), dtype=a.dtype)
    _C.matmul(np.broadcast_to(a, batch + a.shape[-2:]), np.broadcast_to(b, batch + b.shape[-2:]), out)
    return out


def _transposed(t) -> bool:
    """A 2-D operand that is the transpose of a contiguous matrix (``w.T`` in ``x @ w.T``)."""
    d = t._data
    return d.ndim == 2 and not d.flags.c_contiguous and d.T.flags.c_contiguous


def _mm_grad_a(g, a, b):
    # Like PyTorch's mm backward, give the gradient its operand's layout: for a transposed
    # operand compute the transposed product, so the leaf's gradient arrives contiguous
    # and is not copied again.
    return (b @ g.mT).mT if g.ndim == 2 and _transposed(a) else g @ b.mT


def _mm_grad_b(g, a, b):
    return (g.mT @ a).mT if g.ndim == 2 and _transposed(b) else a.mT @ g


_matmul = defop("matmul", _mm_fwd,
                lambda g, out, a, b: _mm_grad_a(g, a, b),
                lambda g, out, a, b: _mm_grad_b(g, a, b))


def matmul(input, other):
    """Matrix product with numpy's ``matmul`` rules (1-D, 2-D, batched, broadcast batch dims)."""
    a, b = pair(input, other, "matmul")
    if a.ndim == 0 or b.ndim == 0:
        raise RuntimeError(f"matmul: both arguments need at least 1 dimension, got {a.ndim}D and {b.ndim}D")
    ka, kb = a.shape[-1], (b.shape[0] if b.ndim == 1 else b.shape[-2])
    if ka != kb:
        raise RuntimeError(f"matmul: shapes {tuple(a.shape)} and {tuple(b.shape)} cannot be multiplied "
                           f"({ka} != {kb})")
    if a.ndim > 2 and b.ndim > 2:
        try:
            np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
        except ValueError:
            raise RuntimeError(f"matmul: batch dimensions of {tuple(a.shape)} and {tuple(b.shape)} do not "
                               f"broadcast") from None
    if a.ndim == 1 and b.ndim == 1:  # a dot product: 0-d, as in PyTorch and numpy
        return matmul(a.reshape(1, -1), b.reshape(-1, 1)).reshape(())
    if a.ndim == 1:
        r = matmul(a.reshape(1, -1), b)
        return r.reshape(r.shape[:-2] + r.shape[-1:])
    if b.ndim == 1:
        return matmul(a, b.reshape(-1, 1)).reshape(*a.shape[:-1])
    return apply(_matmul, a, b)


def mm(input, mat2):
    if input.ndim != 2 or mat2.ndim != 2:
        raise RuntimeError(f"mm: expected 2-D tensors, got {tuple(input.shape)} and {tuple(mat2.shape)}")
    return matmul(input, mat2)


def bmm(input, mat2):
    if input.ndim != 3 or mat2.ndim != 3 or input.shape[0] != mat2.shape[0]:
        raise RuntimeError(f"bmm: expected 3-D tensors with equal batch, got {tuple(input.shape)} and "
                           f"{tuple(mat2.shape)}")
    return matmul(input, mat2)


__all__ = ["matmul", "mm", "bmm"]
