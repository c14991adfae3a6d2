"""Products: ``matmul``/``mm``/``bmm`` on the native GEMM, ``dot``/``mv``/``outer``, the fused
``addmm``-family, ``einsum``, ``tensordot``, ``kron``.
"""
from __future__ import annotations

import builtins
import functools
import math
import string

import numpy as np

from .. import _C, _dtype
from .._tape.registry import apply, defop
from ._util import norm_dim, pair
from .comparison import logical_and, logical_or
from .complex import conj_if_complex as _cj
from .pointwise import add, mul
from .shape import _reshape, diagonal, permute, reshape
from . import sparse
from .surface import public
from ._autocast import LOWER, cast_inputs, round_once

Tensor = None  # the Tensor class, bound by tensor.py (ops.bind_tensor): the ops sit below it


def _mm_fwd(a, b):
    """a (..., M, K) @ b (..., K, N), batch dims broadcast; a 1-D operand is the (1, K) row or
    (K, 1) column, its dim dropped from the result, as numpy's matmul."""
    if b.ndim == 1 and a.ndim == 2 and a.dtype.kind == "f" and a.dtype.itemsize != 2:  # mv, without the recursion
        out = np.empty((a.shape[0], 1), dtype=a.dtype)
        _C.matmul(a, b[:, None], out)
        return out[:, 0]
    if a.ndim == 1 or b.ndim == 1:
        r = _mm_fwd(a[None, :] if a.ndim == 1 else a, b[:, None] if b.ndim == 1 else b)
        if b.ndim == 1:
            r = r[..., 0]
        return r if a.ndim > 1 else r[..., 0] if b.ndim == 1 else r[..., 0, :]
    if a.dtype.kind != "f" or a.dtype == np.float16:
        return np.matmul(a, b)
    if a.ndim == 2 and b.ndim == 2:  # the common case, without the broadcasting machinery
        out = np.empty((a.shape[0], b.shape[1]), dtype=a.dtype)
        _C.matmul(a, b, out)
        return out
    if b.ndim == 2 and a.flags.c_contiguous:
        # a batch of matrices times one matrix: one GEMM of all their rows, as PyTorch folds it
        # (256 x 32 x 32 @ 32 x 32 as 256 products took 1.27x its time)
        out = np.empty(a.shape[:-1] + (b.shape[1],), dtype=a.dtype)
        rows = math.prod(a.shape[:-1])  # not -1: it cannot stand for the rows when K or N is 0
        _C.matmul(a.reshape(rows, a.shape[-1]), b, out.reshape(rows, b.shape[1]))
        return out
    ba, bb = a.shape[:-2], b.shape[:-2]
    batch = ba if ba == bb else np.broadcast_shapes(ba, bb)
    out = np.empty(batch + (a.shape[-2], b.shape[-1]), dtype=a.dtype)
    # numpy's broadcast_to is a Python function of several us: only where the batch dims differ
    _C.matmul(a if ba == batch else np.broadcast_to(a, batch + a.shape[-2:]),
              b if bb == batch else np.broadcast_to(b, batch + b.shape[-2:]), out)
    return out


def _transposed(t) -> bool:
    """A 2-D operand that is the transpose of a contiguous matrix (``w.T`` in ``x @ w.T``)."""
    d = t._data
    return d.ndim == 2 and not d.flags.c_contiguous and d.T.flags.c_contiguous


def _mm(a, b):
    """The product node itself: a gradient's operands are at least 2-D, of one dtype and of
    shapes that multiply, so matmul()'s checks (and autocast's casts) have nothing to do."""
    return apply(_matmul, a, b)


def _mm_grad_a(g, a, b):
    # Like PyTorch's mm backward, give the gradient its operand's layout: for a transposed
    # operand compute the transposed product, so the leaf's gradient arrives contiguous
    # and is not copied again.
    # complex operands: g @ b^H, a^H @ g (PyTorch's convention for complex gradients)
    b = _cj(b)
    return _mm(b, g.mT).mT if g._data.ndim == 2 and _transposed(a) else _mm(g, b.mT)


def _mm_grad_b(g, a, b):
    a = _cj(a)
    return _mm(g.mT, a).mT if g._data.ndim == 2 and _transposed(b) else _mm(a.mT, g)


# PyTorch's products never promote: float32 @ float64 (or float @ int) raises where elementwise
# ops would promote. Its messages name dtypes two ways: the C++ type ("float != double") in the
# GEMM check, the ScalarType ("Float") elsewhere.
_CPP_NAME = {"float32": "float", "float64": "double", "float16": "c10::Half", "int64": "long int", "int32": "int",
             "int16": "short int", "int8": "signed char", "uint8": "unsigned char", "bool": "bool",
             "complex64": "c10::complex<float>", "complex128": "c10::complex<double>"}
_SCALAR_NAME = {"float32": "Float", "float64": "Double", "float16": "Half", "int64": "Long", "int32": "Int",
                "int16": "Short", "int8": "Char", "uint8": "Byte", "bool": "Bool", "complex64": "ComplexFloat",
                "complex128": "ComplexDouble"}


def cpp_name(t):
    return _CPP_NAME.get(t.dtype.name, t.dtype.name)


def scalar_name(t):
    return _SCALAR_NAME.get(t.dtype.name, t.dtype.name)


def _check_same_dtype(a, b):
    """matmul's operands, with the message PyTorch gives for the kernel it would pick."""
    if a.dtype == b.dtype:
        return
    if a.ndim == 1 and b.ndim == 1:
        raise RuntimeError(f"dot : expected both vectors to have same dtype, but found {scalar_name(a)} and "
                           f"{scalar_name(b)}")
    if b.ndim == 1 and a.ndim == 2:
        raise RuntimeError(f"addmv input tensors must have the same dtype, but got {scalar_name(b)}, "
                           f"{scalar_name(a)}, and {scalar_name(b)}")
    if b.ndim > 2:
        raise RuntimeError(f"expected scalar type {scalar_name(a)} but found {scalar_name(b)}")
    raise RuntimeError(f"expected m1 and m2 to have the same dtype, but got: {cpp_name(a)} != {cpp_name(b)}")


def _check_self_dtype(input, mat2):
    """The ``input`` of addmm and its family against the product's second operand, as PyTorch checks first."""
    if isinstance(input, Tensor) and isinstance(mat2, Tensor) and input.dtype != mat2.dtype:
        raise RuntimeError(f"self and mat2 must have the same dtype, but got {scalar_name(input)} and "
                           f"{scalar_name(mat2)}")


def _as_matrices(g, a, b):
    """The gradient and 1-D operands of a product as the matrices ``_mm_fwd`` made of them.
    The operands themselves are what the node keeps (not reshaped views), so a vector whose
    ``.data`` is swapped before backward gives its new values, as PyTorch's mv/dot do."""
    if b.ndim == 1:
        g, b = reshape(g, tuple(g.shape) + (1,)), reshape(b, (-1, 1))
    if a.ndim == 1:
        g, a = reshape(g, tuple(g.shape[:-1]) + (1, g.shape[-1])), reshape(a, (1, -1))
    return g, a, b


def _matmul_grad_a(g, a, b):
    if a.ndim > 1 and b.ndim > 1:
        return _mm_grad_a(g, a, b)
    ga = _mm_grad_a(*_as_matrices(g, a, b))
    return reshape(ga, tuple(ga.shape[:-2]) + (ga.shape[-1],)) if a.ndim == 1 else ga


def _matmul_grad_b(g, a, b):
    if b.ndim == 2 and a.ndim > 2 and a._data.flags.c_contiguous:  # the folded product's: one GEMM
        return _mm_grad_b(_rows(g, b._data.shape[1]), _rows(a, b._data.shape[0]), b)
    if a.ndim > 1 and b.ndim > 1:
        return _mm_grad_b(g, a, b)
    gb = _mm_grad_b(*_as_matrices(g, a, b))
    return reshape(gb, tuple(gb.shape[:-1])) if b.ndim == 1 else gb


_matmul = defop("matmul", _mm_fwd,
                lambda g, out, a, b: _matmul_grad_a(g, a, b),
                lambda g, out, a, b: _matmul_grad_b(g, a, b))
# (no ``reads``: each gradient reads its own operand's layout too, to arrive in it: x @ W.T gives
# W a contiguous gradient. nn.Linear's op, below, keeps only what its gradients read.)


def _linear_fwd(x, w, b=None):
    """x (..., K) @ w (N, K).T (+ b (N,)): the leading dims of x fold into the rows of one GEMM,
    as PyTorch's linear does (a batched product would pack the weight once per leading index)."""
    x2 = x.reshape(-1, x.shape[-1])
    out = np.empty((x2.shape[0], w.shape[0]), dtype=x.dtype)
    if b is not None and b.dtype == out.dtype and b.ndim == 1 and b.flags.c_contiguous:
        _C.matmul(x2, w.T, out, bias=b)  # added to each tile of out while it is in cache: out += b, no second pass
        return out.reshape(x.shape[:-1] + (w.shape[0],))
    _C.matmul(x2, w.T, out)
    if b is not None:
        out += b
    return out.reshape(x.shape[:-1] + (w.shape[0],))


def _rows(t, n):
    """t (..., n) as the matrix (rows, n)."""
    d = t._data
    return t if d.ndim == 2 else apply(_reshape, t, shape=(math.prod(d.shape[:-1]), n))


def _linear_grad_x(g, x, w):  # x may be its stand-in (shape and dtype): only w is read
    gx = _mm(_rows(g, w._data.shape[0]), w)
    return gx if x.ndim == 2 else apply(_reshape, gx, shape=tuple(x.shape))


def _linear_grad_w(g, x, w):  # w may be its stand-in: only x is read
    return _mm(_rows(g, w.shape[0]).mT, _rows(x, w.shape[1]))  # (N, K), the weight's layout


# nn.functional.linear on float32/float64 operands of one dtype, non-empty: one node instead of
# reshape, transpose, product, reshape and bias add (and their five backward steps). The bias's
# gradient is g itself: the engine sums it down to (N,), as for any broadcast input.
_linear = defop("linear", _linear_fwd,
                lambda g, out, x, w, b=None: _linear_grad_x(g, x, w),
                lambda g, out, x, w, b=None: _linear_grad_w(g, x, w),
                lambda g, out, x, w, b: g,
                saves=(0, 1), reads=((1,), (0,), ()))


@public(method=True, out=True)
@cast_inputs(LOWER)
def matmul(input, other):
    """Matrix product with numpy's ``matmul`` rules (1-D, 2-D, batched, broadcast batch dims);
    both operands of one dtype, as in PyTorch."""
    if isinstance(input, Tensor) and isinstance(other, Tensor):
        da, db = input._data, other._data
        if (da.__class__ is np.ndarray and db.__class__ is np.ndarray and da.dtype is db.dtype
                and (da.ndim == 2 or da.ndim == 1 == db.ndim) and 0 < db.ndim < 3 and da.shape[-1] == db.shape[0]):
            # mm, mv and dot of dense operands of one dtype: every check below holds (2.4 us of them
            # for an 8x16 @ 16 float32, where PyTorch's whole call takes 1.3)
            return apply(_matmul, input, other)
        if da.__class__ is sparse.COOStorage or db.__class__ is sparse.COOStorage:
            return sparse.matmul(input, other)
        _check_same_dtype(input, other)
    a, b = pair(input, other, "matmul")
    if a.ndim == 0 or b.ndim == 0:
        raise RuntimeError(f"matmul: both arguments need at least 1 dimension, got {a.ndim}D and {b.ndim}D")
    sa, sb = a._data.shape, b._data.shape  # plain tuples: the hot path skips building Size
    ka, kb = sa[-1], (sb[0] if b.ndim == 1 else sb[-2])
    if ka != kb:
        raise RuntimeError(f"matmul: shapes {tuple(a.shape)} and {tuple(b.shape)} cannot be multiplied "
                           f"({ka} != {kb})")
    if a.ndim > 2 and b.ndim > 2 and sa[:-2] != sb[:-2]:  # numpy's broadcast_shapes costs microseconds
        try:
            np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
        except ValueError:
            raise RuntimeError(f"matmul: batch dimensions of {tuple(a.shape)} and {tuple(b.shape)} do not "
                               f"broadcast") from None
    # Which tensors the node keeps follows PyTorch's decomposition, as it shows when an operand's
    # .data is swapped before backward: dot and mv keep the operands themselves; a vector on
    # the left is a (1, K) view, batch dims before a vector on the right fold into rows.
    if a.ndim == 1 and b.ndim > 1:
        r = apply(_matmul, a.reshape(1, -1), b)
        return r.reshape(r.shape[:-2] + r.shape[-1:])
    if b.ndim == 1 and a.ndim > 2:
        return apply(_matmul, a.reshape(math.prod(sa[:-1]), ka), b).reshape(a.shape[:-1])
    return apply(_matmul, a, b)  # mm, mv and dot (0-d, as in PyTorch and numpy)


@public(method=True, out=True)
@cast_inputs(LOWER)
def mm(input, mat2):
    """The matrix product of two 2-D tensors."""
    if input.ndim != 2 or mat2.ndim != 2:
        raise RuntimeError(f"mm: expected 2-D tensors, got {tuple(input.shape)} and {tuple(mat2.shape)}")
    return matmul(input, mat2)


@public(method=True, out=True)
@cast_inputs(LOWER)
def bmm(input, mat2):
    """Batched matrix product of two 3-D tensors."""
    if input.ndim != 3 or mat2.ndim != 3 or input.shape[0] != mat2.shape[0]:
        raise RuntimeError(f"bmm: expected 3-D tensors with equal batch, got {tuple(input.shape)} and "
                           f"{tuple(mat2.shape)}")
    if (input._data.__class__ is np.ndarray and mat2._data.__class__ is np.ndarray and input.dtype == mat2.dtype
            and input._data.shape[2] == mat2._data.shape[1]):
        return apply(_matmul, input, mat2)  # matmul()'s checks all hold: its ~2 us per call saved
    return matmul(input, mat2)


def _check_nd(t, nd, opname, what="input"):
    if not isinstance(t, Tensor):
        raise TypeError(f"{opname}: expected a Tensor for {what}, got {type(t).__name__}")
    if t.ndim != nd:
        raise RuntimeError(f"{opname}: {what} must be {nd}-D, got shape {tuple(t.shape)}")


@public(method=True, out=True)
def dot(input, other):
    """The inner product of two 1-D tensors of the same length."""
    _check_nd(input, 1, "dot")
    _check_nd(other, 1, "dot", "other")
    if input.shape != other.shape:
        raise RuntimeError(f"dot: inconsistent tensor size, expected tensors of equal length, got "
                           f"{tuple(input.shape)} and {tuple(other.shape)}")
    if input.dtype != other.dtype:
        raise RuntimeError(f"dot : expected both vectors to have same dtype, but found {scalar_name(input)} and "
                           f"{scalar_name(other)}")
    return matmul(input, other)


@public(method=True, out=True)
def mv(input, vec):
    """Matrix (n, m) times vector (m,)."""
    _check_nd(input, 2, "mv")
    _check_nd(vec, 1, "mv", "vec")
    return matmul(input, vec)


@public(method=True, out=True)
def outer(input, vec2):
    """``out[i, j] = input[i] * vec2[j]`` for 1-D tensors."""
    _check_nd(input, 1, "outer")
    _check_nd(vec2, 1, "outer", "vec2")
    return mul(input.reshape(-1, 1), vec2.reshape(1, -1))


ger = outer
public(ger, name="ger", method=True, out=True)


def _scaled_sum(input, prod, beta, alpha):
    if prod._data.dtype.kind in "iu":  # PyTorch casts the scalars to the integer dtype: 0.6 counts as 0
        beta, alpha = int(beta), int(alpha)
    if alpha != 1:
        prod = mul(prod, alpha)
    if beta == 0:  # PyTorch ignores input (NaNs included) when beta is 0
        return add(prod, mul(input, 0).detach())
    return add(mul(input, beta) if beta != 1 else input, prod)


@public(method=True, inplace=True, out=True)
@cast_inputs(LOWER)
@round_once
def addmm(input, mat1, mat2, *, beta=1, alpha=1):
    """``beta * input + alpha * (mat1 @ mat2)`` (``input`` broadcasts to the product's shape)."""
    _check_nd(mat1, 2, "addmm", "mat1")
    _check_nd(mat2, 2, "addmm", "mat2")
    _check_self_dtype(input, mat2)
    prod = matmul(mat1, mat2)
    _check_broadcast(input, prod, "addmm")
    return _scaled_sum(input, prod, beta, alpha)


@public(method=True, inplace=True, out=True)
def addmv(input, mat, vec, *, beta=1, alpha=1):
    """``beta * input + alpha * (mat @ vec)``."""
    if isinstance(input, Tensor) and not input.dtype == mat.dtype == vec.dtype:
        raise RuntimeError(f"addmv input tensors must have the same dtype, but got {scalar_name(input)}, "
                           f"{scalar_name(mat)}, and {scalar_name(vec)}")
    prod = mv(mat, vec)
    _check_broadcast(input, prod, "addmv")
    return _scaled_sum(input, prod, beta, alpha)


@public(method=True, inplace=True, out=True)
@cast_inputs(LOWER)
@round_once
def baddbmm(input, batch1, batch2, *, beta=1, alpha=1):
    """``beta * input + alpha * (batch1 @ batch2)`` for 3-D batches."""
    _check_nd(batch1, 3, "baddbmm", "batch1")
    _check_nd(batch2, 3, "baddbmm", "batch2")
    prod = _linalg_bmm(batch1, batch2)  # PyTorch checks the batches first
    _check_self_dtype(input, batch2)
    _check_broadcast(input, prod, "baddbmm")
    return _scaled_sum(input, prod, beta, alpha)


@public(method=True, inplace=True, out=True)
@cast_inputs(LOWER)
@round_once
def addbmm(input, batch1, batch2, *, beta=1, alpha=1):
    """``beta * input + alpha * sum_b(batch1[b] @ batch2[b])``."""
    _check_nd(batch1, 3, "addbmm", "batch1")
    _check_self_dtype(input, batch2)
    prod = _linalg_bmm(batch1, batch2).sum(0)
    _check_broadcast(input, prod, "addbmm")
    return _scaled_sum(input, prod, beta, alpha)


def _linalg_bmm(a, b):
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
@public(out=True)
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
        raise RuntimeError(f"einsum(): {'fewer' if len(operands) < len(terms) else 'more'} operands were provided "
                           f"than specified in the equation ({len(terms)} operand subscripts in {equation!r}, "
                           f"{len(operands)} operands given)")
    operands = _promote(operands)
    terms, out, bad = _labels(equation, tuple(terms), arrow, out, tuple(t.ndim for t in operands))
    if bad is not None:
        raise RuntimeError(f"einsum(): the subscripts {terms[bad]!r} don't match an operand of shape "
                           f"{tuple(operands[bad].shape)} in {equation!r}")
    labelled = [(s, t) if len(set(s)) == len(s) else _take_diagonals(t, s) for s, t in zip(terms, operands)]
    for c in out:
        if not builtins.any(c in s for s, _ in labelled):
            raise RuntimeError(f"einsum(): output subscript {c!r} does not appear in the inputs of {equation!r}")
    sizes = {}
    for s, t in labelled:
        for c, n in zip(s, t._data.shape):
            if sizes.get(c, 1) not in (1, n) and n != 1:
                raise RuntimeError(f"einsum(): subscript {c!r} has size {n} for an operand of shape "
                                   f"{tuple(t.shape)}, which does not broadcast with size {sizes[c]}")
            if sizes.get(c, 1) == 1:  # a size 1 broadcasts to the other, 0 included (max would keep the 1)
                sizes[c] = n
    s, t = labelled[0]
    for k, (s2, t2) in enumerate(labelled[1:], 1):
        later = set(out).union(*[set(x) for x, _ in labelled[k + 1:]])
        s, t = _contract(s, t, s2, t2, later, sizes)
    s, t = _sum_out(s, t, set(out))
    return permute(t, [s.index(c) for c in out]) if s != out else t


@functools.lru_cache(maxsize=256)
def _labels(equation, terms, arrow, out, ndims):
    """Each operand's labels with '...' spelled out and the output's labels (and None), or, for
    an operand whose subscripts don't match its rank, the labels up to it and its index: a
    function of the equation and the operands' ranks alone, so parsed once for each (the parse
    cost more than the product of small operands)."""
    eq = equation.replace(" ", "")
    # '...' becomes private labels (upper-case-free letters are the user's), right-aligned
    free = [c for c in string.ascii_uppercase + string.ascii_lowercase if c not in eq]
    ell = builtins.max([nd - len(s.replace("...", "")) for s, nd in zip(terms, ndims) if "..." in s], default=0)
    ell_labels = "".join(free[:ell])
    labelled, counts = [], {}
    for s, nd in zip(terms, ndims):
        if "..." in s:
            k = nd - len(s.replace("...", ""))
            s = s.replace("...", ell_labels[ell - k:] if k else "")
        if len(s) != nd or not all(c.isalpha() for c in s):
            return tuple(labelled) + (s,), out, len(labelled)  # einsum() raises, naming the operand's shape
        for c in s:  # counted before diagonals merge repeats: 'ii' alone is a trace, not a diagonal
            counts[c] = counts.get(c, 0) + 1
        labelled.append(s)
    if arrow:
        if "..." in out:
            out = out.replace("...", ell_labels)
    else:
        out = ell_labels + "".join(sorted(c for c in counts if counts[c] == 1 and c not in ell_labels))
    return tuple(labelled), out, None


def _promote(operands):
    operands = list(operands)
    for i, t in enumerate(operands):
        if not isinstance(t, Tensor):
            raise TypeError(f"einsum(): operand {i} is a {type(t).__name__}, not a Tensor")
    for t in operands[1:]:  # PyTorch's einsum never promotes
        if t.dtype != operands[0].dtype:
            raise RuntimeError(f"expected scalar type {scalar_name(operands[0])} but found {scalar_name(t)}")
    return operands


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
    """One pairwise contraction as a batched matmul: (batch..., left, k) @ (batch..., k, right).
    The batch labels stay dims of their own, which matmul broadcasts and runs as one batched
    GEMM (folding them into one would copy an operand whose batch dims are not contiguous), and
    each step that would not change the operand (an identity permute, a reshape or expand to its
    own shape) is skipped: each is a node, forward and backward, costing more than the GEMM of
    small products (einsum('bij,bjk->bik') on 256 products of 32 x 32 took 1.6x bmm's time)."""
    sa, a = _sum_out(sa, a, later | set(sb))
    sb, b = _sum_out(sb, b, later | set(sa))
    batch = [c for c in sa if c in sb and c in later]
    inner = [c for c in sa if c in sb and c not in later]
    left = [c for c in sa if c not in sb]
    right = [c for c in sb if c not in sa]
    if not inner or not (left or right):
        return _contract_elementwise(sa, a, sb, b, batch, left, inner, right)
    n = lambda cs: math.prod([sizes[c] for c in cs])  # noqa: E731
    a = _arrange(sa, a, batch, left + inner, sizes, (n(left), n(inner)))
    b = _arrange(sb, b, batch, inner + right, sizes, (n(inner), n(right)))
    r = matmul(a, b)
    shape = tuple(sizes[c] for c in batch + left + right)
    return "".join(batch + left + right), (r if r._data.shape == shape else r.reshape(shape))


def _vecdot_fwd(x, y, *, dim):
    return np.vecdot(x, y, axis=dim)


# sum(x * y, dim) for real x and y of one shape: numpy's vecdot, a dot product per vector (BLAS's),
# where the product and the sum took two passes and a temporary of the operands' size
# ('bi,bi->b' on 1024 x 256 float32: 255 us, PyTorch 203, numpy's vecdot 61).
_vecdot = defop("vecdot", _vecdot_fwd,
                lambda g, out, x, y, dim: mul(g.unsqueeze(dim), y),
                lambda g, out, x, y, dim: mul(g.unsqueeze(dim), x))


def vecdot_takes(x, y):
    """Whether ``_vecdot`` takes x and y: float32 / float64 numpy arrays of one shape, at least 1-D."""
    a, b = x._data, y._data
    return (a.__class__ is np.ndarray and b.__class__ is np.ndarray and a.dtype == b.dtype and
            a.dtype.char in "fd" and a.shape == b.shape and a.ndim > 0)


def _contract_elementwise(sa, a, sb, b, batch, left, inner, right):
    """A contraction that is no matrix product (as a batched GEMM, 'bi,bi->b' took 2.7x PyTorch's
    time forward and backward: one row and one column per batch entry; 'ij,ij->ij' GEMMs of depth
    one): rows' dot products over one inner label of operands of one shape as a vecdot node, the
    rest as a broadcast product summed over the inner labels."""
    def lay(s, t, order, ones_at, ones):
        if s != "".join(order):
            t = permute(t, [s.index(c) for c in order])
        return t.reshape(t._data.shape[:ones_at] + (1,) * ones + t._data.shape[ones_at:]) if ones else t
    nb = len(batch)
    x = lay(sa, a, batch + left + inner, nb + len(left), len(right))
    y = lay(sb, b, batch + right + inner, nb, len(left))
    if len(inner) == 1 and not left and not right and vecdot_takes(x, y):
        return "".join(batch), apply(_vecdot, x, y, dim=-1)
    r = mul(x, y)
    if inner:
        r = r.sum(tuple(range(r.ndim - len(inner), r.ndim)))
    return "".join(batch + left + right), r


def _arrange(s, t, batch, rest, sizes, matrix):
    """t (labels s) as batch... + ``matrix``: its dims in the order batch + rest, the ``rest``
    expanded to their full sizes (a size-1 label broadcast against the other operand's) and
    folded into the two matrix dims; the batch dims keep their sizes (matmul broadcasts them)."""
    order = batch + rest
    if s != "".join(order):
        t = permute(t, [s.index(c) for c in order])
    full = t._data.shape[:len(batch)] + tuple(sizes[c] for c in rest)
    if t._data.shape != full:
        t = t.expand(full)
    shape = full[:len(batch)] + matrix
    return t if t._data.shape == shape else t.reshape(shape)


# ---------------------------------------------------------------- more products
@public(out=True)
def tensordot(a, b, dims=2):
    """Contract ``a``'s last ``dims`` dims with ``b``'s first (or the listed dim pairs)."""
    if a.dtype != b.dtype:
        raise RuntimeError(f"both inputs should have same dtype (tensordot: got {scalar_name(a)} and "
                           f"{scalar_name(b)})")
    if isinstance(dims, Tensor):
        dims = dims.tolist()
    if isinstance(dims, (builtins.int, np.integer)):
        if dims < 0:
            raise RuntimeError(f"tensordot expects dims >= 0, but got dims={dims}")
        if dims > builtins.min(a.ndim, b.ndim):
            raise RuntimeError(f"tensordot expects dims < ndim_a or ndim_b, but got dims={dims} (shapes "
                               f"{tuple(a.shape)} and {tuple(b.shape)})")
        da = list(range(a.ndim - dims, a.ndim))
        db = list(range(dims))
    else:
        da, db = ([dims[0]] if isinstance(dims[0], builtins.int) else list(dims[0]),
                  [dims[1]] if isinstance(dims[1], builtins.int) else list(dims[1]))
        da = [norm_dim(x, a.ndim, "tensordot") for x in da]
        db = [norm_dim(x, b.ndim, "tensordot") for x in db]
    if [a.shape[i] for i in da] != [b.shape[i] for i in db]:
        raise RuntimeError(f"tensordot: contracted dimensions of shapes {tuple(a.shape)} (dims {da}) and "
                           f"{tuple(b.shape)} (dims {db}) do not match")
    free_a = [i for i in range(a.ndim) if i not in da]
    free_b = [i for i in range(b.ndim) if i not in db]
    k = builtins.int(np.prod([a.shape[i] for i in da], dtype=np.int64))
    # the free sizes, not -1: with k == 0 a -1 can't be inferred
    am = reshape(permute(a, free_a + da), (builtins.int(np.prod([a.shape[i] for i in free_a], dtype=np.int64)), k))
    bm = reshape(permute(b, db + free_b), (k, builtins.int(np.prod([b.shape[i] for i in free_b], dtype=np.int64))))
    return reshape(matmul(am, bm), tuple(a.shape[i] for i in free_a) + tuple(b.shape[i] for i in free_b))


@public(method=True, out=True)
def inner(input, other):
    """The inner product over the last dimension of both tensors."""
    if input.ndim == 0 or other.ndim == 0:
        return mul(input, other)
    return tensordot(input, other, ([-1], [-1]))


@public(method=True, out=True)
def vdot(input, other):
    """The dot product of two 1-D tensors, the first one conjugated (``sum(conj(input) * other)``)."""
    return dot(_cj(input), other)


@public(method=True, out=True)
def kron(input, other):
    """The Kronecker product."""
    nd = builtins.max(input.ndim, other.ndim)
    a = reshape(input, (1,) * (nd - input.ndim) + tuple(input.shape))
    b = reshape(other, (1,) * (nd - other.ndim) + tuple(other.shape))
    a_ex = reshape(a, tuple(x for s in a.shape for x in (s, 1)))
    b_ex = reshape(b, tuple(x for s in b.shape for x in (1, s)))
    return reshape(a_ex * b_ex, tuple(p * q for p, q in zip(a.shape, b.shape)))


@public(method=True, inplace=True, out=True)
def addr(input, vec1, vec2, *, beta=1, alpha=1):
    """``beta * input + alpha * outer(vec1, vec2)``."""
    out = outer(vec1, vec2)
    kind = out._data.dtype.kind
    if kind in "iub" and any(isinstance(s, float) for s in (beta, alpha)):
        raise RuntimeError(f"addr: for integral input tensors ({_dtype.name(out._data.dtype)}), beta ({beta}) and "
                           f"alpha ({alpha}) must not be floating point numbers")
    if kind == "b":  # bool: 'and' for the products, 'or' for the sum
        out = logical_and(out, bool(alpha))
        return out if not beta else logical_or(input, out)
    if alpha != 1:
        out = out * alpha
    return out if beta == 0 else (input if beta == 1 else input * beta) + out
