"""Linear algebra beyond matmul: dot/mv/outer, addmm/baddbmm, einsum, triangles and diagonals,
cross, det and inverse. Most compose matmul and the shape ops; the primitives here are the
triangle masks, the diagonal and its adjoint (``diag_embed``), det and inverse."""
from __future__ import annotations

import builtins
import string

import numpy as np

Tensor = None  # the Tensor class, bound by tensor.py (ops.bind_tensor): the ops sit below it
from .._tape.registry import apply, defop
from ._util import norm_dim, pair
from .elementwise import add, mul
from .linalg import matmul
from . import shape as _shape


def _check_nd(t, nd, opname, what="input"):
    if not isinstance(t, Tensor):
        raise TypeError(f"{opname}: expected a Tensor for {what}, got {type(t).__name__}")
    if t.ndim != nd:
        raise RuntimeError(f"{opname}: {what} must be {nd}-D, got shape {tuple(t.shape)}")


def dot(input, other):
    """The inner product of two 1-D tensors of the same length."""
    _check_nd(input, 1, "dot")
    _check_nd(other, 1, "dot", "other")
    if input.shape != other.shape:
        raise RuntimeError(f"dot: inconsistent tensor size, expected tensors of equal length, got "
                           f"{tuple(input.shape)} and {tuple(other.shape)}")
    if input.dtype != other.dtype:
        raise RuntimeError(f"dot: expected both vectors to have same dtype, but found {input.dtype} and "
                           f"{other.dtype}")
    return matmul(input, other)



def mv(input, vec):
    """Matrix (n, m) times vector (m,)."""
    _check_nd(input, 2, "mv")
    _check_nd(vec, 1, "mv", "vec")
    return matmul(input, vec)


def outer(input, vec2):
    """``out[i, j] = input[i] * vec2[j]`` for 1-D tensors."""
    _check_nd(input, 1, "outer")
    _check_nd(vec2, 1, "outer", "vec2")
    return mul(input.reshape(-1, 1), vec2.reshape(1, -1))


ger = outer


def _scaled_sum(input, prod, beta, alpha):
    if alpha != 1:
        prod = mul(prod, alpha)
    if beta == 0:  # PyTorch ignores input (NaNs included) when beta is 0
        return add(prod, mul(input, 0).detach())
    return add(mul(input, beta) if beta != 1 else input, prod)


def addmm(input, mat1, mat2, *, beta=1, alpha=1):
    """``beta * input + alpha * (mat1 @ mat2)`` (``input`` broadcasts to the product's shape)."""
    _check_nd(mat1, 2, "addmm", "mat1")
    _check_nd(mat2, 2, "addmm", "mat2")
    prod = matmul(mat1, mat2)
    _check_broadcast(input, prod, "addmm")
    return _scaled_sum(input, prod, beta, alpha)


def addmv(input, mat, vec, *, beta=1, alpha=1):
    prod = mv(mat, vec)
    _check_broadcast(input, prod, "addmv")
    return _scaled_sum(input, prod, beta, alpha)


def baddbmm(input, batch1, batch2, *, beta=1, alpha=1):
    """``beta * input + alpha * (batch1 @ batch2)`` for 3-D batches."""
    _check_nd(batch1, 3, "baddbmm", "batch1")
    _check_nd(batch2, 3, "baddbmm", "batch2")
    prod = _linalg_bmm(batch1, batch2)
    _check_broadcast(input, prod, "baddbmm")
    return _scaled_sum(input, prod, beta, alpha)


def addbmm(input, batch1, batch2, *, beta=1, alpha=1):
    _check_nd(batch1, 3, "addbmm", "batch1")
    prod = _linalg_bmm(batch1, batch2).sum(0)
    _check_broadcast(input, prod, "addbmm")
    return _scaled_sum(input, prod, beta, alpha)


def _linalg_bmm(a, b):
    from .linalg import bmm
    return bmm(a, b)


def _check_broadcast(input, prod, opname):
    try:
        ok = np.broadcast_shapes(tuple(input.shape), tuple(prod.shape)) == tuple(prod.shape)
    except ValueError:
        ok = False
    if not ok:
        raise RuntimeError(f"{opname}: input of shape {tuple(input.shape)} can't be broadcast to the product's "
                           f"shape {tuple(prod.shape)}")


# ---------------------------------------------------------------- einsum
def einsum(equation, *operands):
    """Einstein summation: ``einsum('ij,jk->ik', a, b)``; '...' and implicit outputs are supported.

    Composed of diagonal, sum, permute, reshape and matmul, so it is differentiable to any order.

    >>> tapegrad.einsum('bij,bjk->bik', a, b)   # batched matmul
    >>> tapegrad.einsum('ii', m)                # trace
    """
    if len(operands) == 1 and isinstance(operands[0], (list, tuple)):
        operands = tuple(operands[0])
    eq = equation.replace(" ", "")
    lhs, arrow, out = eq.partition("->")
    terms = lhs.split(",")
    if len(terms) != len(operands):
        raise ValueError(f"einsum(): {len(terms)} operand subscripts in {equation!r} but {len(operands)} "
                         f"operands were given")
    operands = _promote(operands)
    # '...' becomes private labels (upper-case-free letters are the user's), right-aligned
    free = [c for c in string.ascii_uppercase + string.ascii_lowercase if c not in eq]
    ell = builtins.max([t.ndim - len(s.replace("...", "")) for s, t in zip(terms, operands) if "..." in s],
                       default=0)
    ell_labels = "".join(free[:ell])
    labelled = []
    for s, t in zip(terms, operands):
        if "..." in s:
            k = t.ndim - len(s.replace("...", ""))
            s = s.replace("...", ell_labels[ell - k:] if k else "")
        if len(s) != t.ndim or not all(c.isalpha() for c in s):
            raise RuntimeError(f"einsum(): the subscripts {s!r} don't match an operand of shape {tuple(t.shape)} "
                               f"in {equation!r}")
        labelled.append(_take_diagonals(t, s))
    if arrow:
        if "..." in out:
            out = out.replace("...", ell_labels)
    else:
        counts = {}
        for s, _ in labelled:
            for c in s:
                counts[c] = counts.get(c, 0) + 1
        out = ell_labels + "".join(sorted(c for c in counts if counts[c] == 1 and c not in ell_labels))
    for c in out:
        if not builtins.any(c in s for s, _ in labelled):
            raise RuntimeError(f"einsum(): output subscript {c!r} does not appear in the inputs of {equation!r}")
    sizes = {}
    for s, t in labelled:
        for c, n in zip(s, t.shape):
            if sizes.get(c, 1) not in (1, n) and n != 1:
                raise RuntimeError(f"einsum(): subscript {c!r} has size {n} for an operand of shape "
                                   f"{tuple(t.shape)}, which does not broadcast with size {sizes[c]}")
            sizes[c] = builtins.max(sizes.get(c, 1), n)
    s, t = labelled[0]
    for k, (s2, t2) in enumerate(labelled[1:], 1):
        later = set(out).union(*[set(x) for x, _ in labelled[k + 1:]])
        s, t = _contract(s, t, s2, t2, later, sizes)
    s, t = _sum_out(s, t, set(out))
    return _shape.permute(t, [s.index(c) for c in out]) if s != out else t


def _promote(operands):
    operands = list(operands)
    for i, t in enumerate(operands):
        if not isinstance(t, Tensor):
            raise TypeError(f"einsum(): operand {i} is a {type(t).__name__}, not a Tensor")
    d = operands[0].dtype
    for t in operands[1:]:
        d = pair(Tensor._wrap(np.empty((0,), d)), t, "einsum")[0].dtype
    return [t.to(d) for t in operands]


def _take_diagonals(t, s):
    """Repeated labels within one operand ('ii') select their diagonal."""
    while len(set(s)) < len(s):
        c = next(c for c in s if s.count(c) > 1)
        i = s.index(c)
        j = s.index(c, i + 1)
        t = diagonal(t, 0, i, j)  # the diagonal becomes the last dim
        s = s[:i] + s[i + 1:j] + s[j + 1:] + c
    return s, t


def _sum_out(s, t, keep):
    dims = [i for i, c in enumerate(s) if c not in keep]
    if dims:
        t = t.sum(dims)
        s = "".join(c for c in s if c in keep)
    return s, t


def _contract(sa, a, sb, b, later, sizes):
    """One pairwise contraction as a batched matmul: (batch, left, k) @ (batch, k, right)."""
    sa, a = _sum_out(sa, a, later | set(sb))
    sb, b = _sum_out(sb, b, later | set(sa))
    batch = [c for c in sa if c in sb and c in later]
    inner = [c for c in sa if c in sb and c not in later]
    left = [c for c in sa if c not in sb]
    right = [c for c in sb if c not in sa]

    def arrange(s, t, order):
        t = _shape.permute(t, [s.index(c) for c in order]) if order else t
        return t.expand(tuple(sizes[c] for c in order)) if tuple(t.shape) != tuple(sizes[c] for c in order) else t

    n = lambda cs: int(np.prod([sizes[c] for c in cs]))  # noqa: E731
    a = arrange(sa, a, batch + left + inner).reshape(n(batch), n(left), n(inner))
    b = arrange(sb, b, batch + inner + right).reshape(n(batch), n(inner), n(right))
    r = matmul(a, b).reshape(tuple(sizes[c] for c in batch + left + right))
    return "".join(batch + left + right), r


# ---------------------------------------------------------------- triangles, diagonals, trace
_tril = defop("tril", lambda x, diagonal: np.tril(x, diagonal),
              lambda g, out, x, diagonal: apply(_tril, g, diagonal=diagonal), saves=())
_triu = defop("triu", lambda x, diagonal: np.triu(x, diagonal),
              lambda g, out, x, diagonal: apply(_triu, g, diagonal=diagonal), saves=())


def _tri(op, input, diagonal, opname):
    if input.ndim < 2:
        raise RuntimeError(f"{opname}: input tensor must have at least 2 dimensions, got shape {tuple(input.shape)}")
    return apply(op, input, diagonal=int(diagonal))


def tril(input, diagonal=0):
    """The lower triangle (on and below ``diagonal``) of the last two dims; zeros above."""
    return _tri(_tril, input, diagonal, "tril")


def triu(input, diagonal=0):
    """The upper triangle (on and above ``diagonal``) of the last two dims; zeros below."""
    return _tri(_triu, input, diagonal, "triu")


def _diag_index(n1, n2, offset):
    k = builtins.max(0, builtins.min(n1 + builtins.min(offset, 0), n2 - builtins.max(offset, 0)))
    i = np.arange(k)
    return i + builtins.max(-offset, 0), i + builtins.max(offset, 0)


def _diag_embed_fwd(g, shape, offset, dim1, dim2):
    """Zeros of ``shape`` with ``g``'s last dim written on the ``offset`` diagonal of (dim1, dim2)."""
    z = np.zeros(shape, dtype=g.dtype)
    zm = np.moveaxis(z, (dim1, dim2), (-2, -1))
    rows, cols = _diag_index(shape[dim1], shape[dim2], offset)
    zm[..., rows, cols] = g
    return z


_diagonal = defop("diagonal", lambda x, offset, dim1, dim2: np.diagonal(x, offset, dim1, dim2).copy(),
                  lambda g, out, x, offset, dim1, dim2: apply(_diag_embed, g, shape=tuple(x.shape), offset=offset,
                                                             dim1=dim1, dim2=dim2), saves=())
_diag_embed = defop("diag_embed", _diag_embed_fwd,
                    lambda g, out, v, shape, offset, dim1, dim2: apply(_diagonal, g, offset=offset, dim1=dim1,
                                                                      dim2=dim2), saves=())


def diagonal(input, offset=0, dim1=0, dim2=1):
    """The ``offset`` diagonal of dims (dim1, dim2), as a new last dim (a copy in tapegrad)."""
    d1, d2 = norm_dim(dim1, input.ndim, "diagonal"), norm_dim(dim2, input.ndim, "diagonal")
    if d1 == d2:
        raise RuntimeError(f"diagonal: dim1 and dim2 cannot be identical, but got dim1 = dim2 = {dim1}")
    return apply(_diagonal, input, offset=int(offset), dim1=d1, dim2=d2)


def diag_embed(input, offset=0, dim1=-2, dim2=-1):
    """A tensor whose ``offset`` diagonal over (dim1, dim2) holds ``input``'s last dim; zeros elsewhere."""
    nd = input.ndim + 1
    d1, d2 = norm_dim(dim1, nd, "diag_embed"), norm_dim(dim2, nd, "diag_embed")
    if d1 == d2:
        raise RuntimeError(f"diag_embed: dim1 and dim2 cannot be identical, but got {dim1}")
    n = input.shape[-1] + builtins.abs(int(offset))
    rest = list(input.shape[:-1])
    shape = []
    for k in range(nd):
        shape.append(n if k in (d1, d2) else rest.pop(0))
    return apply(_diag_embed, input, shape=tuple(shape), offset=int(offset), dim1=d1, dim2=d2)


def diag(input, diagonal=0):
    """1-D input: a square matrix with it on the ``diagonal``; 2-D input: that diagonal, 1-D."""
    if input.ndim == 1:
        return diag_embed(input, diagonal, 0, 1)
    if input.ndim == 2:
        return globals()["diagonal"](input, diagonal, 0, 1)
    raise RuntimeError(f"diag(): Supports 1D or 2D tensors. Got {input.ndim}D (shape {tuple(input.shape)})")


def trace(input):
    """The sum of the main diagonal of a 2-D tensor."""
    if input.ndim != 2:
        raise RuntimeError(f"trace: expected a matrix, but got tensor with dim {input.ndim}")
    return diagonal(input).sum()


# ---------------------------------------------------------------- cross, det, inverse
def cross(input, other, dim=None):
    """The 3-vector cross product along ``dim`` (default: the first dim of size 3, as PyTorch)."""
    a, b = pair(input, other, "cross")
    shape = np.broadcast_shapes(tuple(a.shape), tuple(b.shape))
    a, b = a.expand(shape), b.expand(shape)
    if dim is None:
        dim = next((i for i, s in enumerate(shape) if s == 3), None)
        if dim is None:
            raise RuntimeError(f"cross: no dimension of size 3 in input of shape {tuple(shape)}")
    d = norm_dim(dim, len(shape), "cross")
    if shape[d] != 3:
        raise RuntimeError(f"cross: inputs dimension {dim} must have length 3, got shapes {tuple(input.shape)} "
                           f"and {tuple(other.shape)}")
    a0, a1, a2 = _shape.unbind(a, d)
    b0, b1, b2 = _shape.unbind(b, d)
    return _shape.stack([a1 * b2 - a2 * b1, a2 * b0 - a0 * b2, a0 * b1 - a1 * b0], d)


def _check_square(x, opname):
    if x.ndim < 2 or x.shape[-1] != x.shape[-2]:
        raise RuntimeError(f"{opname}: A must be batches of square matrices, but they are "
                           f"{x.shape[-2] if x.ndim >= 2 else ''} by {x.shape[-1] if x.ndim else ''} "
                           f"matrices (shape {tuple(x.shape)})")
    if x._data.dtype.kind != "f":
        raise RuntimeError(f"{opname}: expected a floating point tensor, got {x._data.dtype}")


def _inv_fwd(x):
    try:
        return np.linalg.inv(x)
    except np.linalg.LinAlgError:
        raise RuntimeError(f"inverse: the input (shape {x.shape}) is singular, it is not invertible") from None


_inverse = defop("inverse", _inv_fwd, lambda g, out, x: -(out.mT @ g @ out.mT), saves_output=True, saves=())
# d det(A) / dA = det(A) * inv(A)^T (A must be invertible)
_det = defop("det", lambda x: np.linalg.det(x).astype(x.dtype, copy=False),
             lambda g, out, x: (g * out)[..., None, None] * inverse(x).mT, saves_output=True)


def inverse(input):
    """The inverse of each square matrix in the last two dims."""
    _check_square(input, "inverse")
    return apply(_inverse, input)


def det(input):
    """The determinant of each square matrix in the last two dims (the gradient needs it invertible)."""
    _check_square(input, "det")
    return apply(_det, input)


__all__ = ["dot", "mv", "outer", "ger", "addmm", "addmv", "baddbmm", "addbmm", "einsum", "tril", "triu",
           "diagonal", "diag_embed", "diag", "trace", "cross", "inverse", "det"]
