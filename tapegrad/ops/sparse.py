"""Sparse COO tensors, with PyTorch's API: ``sparse_coo_tensor``, ``to_sparse``/``to_dense``,
``coalesce``, ``sparse.mm``/``addmm``/``sum``/``softmax``; scipy.sparse does the products.

A sparse tensor is a ``Tensor`` (of the subclass ``tapegrad.sparse.SparseTensor``, bound below)
whose ``_data`` is a ``COOStorage``: the indices (an int64 array, ``sparse_dim x nnz``), the values
(a dense ``Tensor`` of shape ``(nnz, *dense_shape)``), the size and the coalesced flag. The values
carry the tape: every op on a sparse tensor is an op on its values (``sparse_mm`` and
``segment_sum`` below, plus ordinary dense ops), so the gradients of the values, and of the
sparse leaf (its values' gradient on its own pattern, as ``torch.sparse.mm`` gives), come from the
engine as for any tensor, to any order.

Dense-only ops refuse a sparse tensor: its storage is not an array, and what reads it as one (numpy,
``x._data.reshape``, ...) raises ``NotImplementedError`` naming the op and the layout, instead of
computing on garbage.
"""
from __future__ import annotations

import numbers
import os
import sys

import numpy as np
import scipy.sparse as _sps

from .. import _dtype
from .._tape.registry import Op as _Op, apply, defop
from .creation import _check_device
from .indexing import index_select
from .shape import cat
from .surface import public
from ..device import sparse_coo, strided  # noqa: F401  (re-exported: tapegrad.sparse reads them here)

Tensor = None  # the Tensor class, bound by tensor.py (ops.bind_tensor): the ops sit below it
# tapegrad.sparse.SparseTensor, bound by tapegrad/sparse.py, which defines it (it subclasses Tensor,
# so it lives above tensor.py; the ops below create it through this name)
SparseTensor = None


# the layouts are device.py's (one object per layout, whichever module a user reaches them by)

_PKG = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep


def _calling_op() -> str:
    """The tapegrad function the user called (the outermost tapegrad frame): only for error messages."""
    f, outer = sys._getframe(2), None
    while f is not None:
        if f.f_code.co_filename.startswith(_PKG):
            outer = f
        elif outer is not None:
            break
        f = f.f_back
    if outer is None:
        return "this op"
    name = outer.f_code.co_name
    if not name.isidentifier() or name in ("fn", "wrapper"):  # an op made by a factory: its Op knows its name
        name = next((v.name for v in outer.f_locals.values() if isinstance(v, _Op)), name)
    return name.strip("_")


def _dense_only(shape):
    raise NotImplementedError(
        f"{_calling_op()}: not supported for sparse tensors (layout tapegrad.sparse_coo, size {tuple(shape)}); it "
        f"works on strided (dense) tensors: call .to_dense() first, or use tapegrad.sparse's ops")


class COOStorage:
    """The ``_data`` of a sparse COO tensor. It answers ``shape``/``dtype``/``ndim``/``size`` (so the
    tensor's metadata works) and refuses being read as an array."""

    __slots__ = ("indices", "values", "shape", "coalesced")

    def __init__(self, indices: np.ndarray, values, shape: tuple, coalesced: bool):
        self.indices, self.values, self.shape, self.coalesced = indices, values, shape, coalesced

    @property
    def dtype(self):
        return self.values.dtype

    @property
    def ndim(self):
        return len(self.shape)

    @property
    def size(self):
        return int(np.prod(self.shape, dtype=np.int64))

    @property
    def itemsize(self):
        return self.values._data.itemsize

    def __array__(self, dtype=None, copy=None):
        _dense_only(self.shape)

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        _dense_only(self.shape)

    def __array_function__(self, func, types, args, kwargs):
        _dense_only(self.shape)

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        _dense_only(self.shape)

    def _refuse(self, *args, **kwargs):
        _dense_only(self.shape)


# what a dense op may do with ``x._data`` besides calling numpy: index it, compute with it
for _name in ("getitem", "setitem", "iter", "len", "neg", "pos", "abs", "invert", "add", "sub", "mul", "truediv",
              "floordiv", "mod", "pow", "matmul", "and", "or", "xor", "lshift", "rshift", "lt", "le", "gt", "ge",
              "float", "int", "index"):
    setattr(COOStorage, f"__{_name}__", COOStorage._refuse)
    if _name in ("add", "sub", "mul", "truediv", "floordiv", "mod", "pow", "matmul", "and", "or", "xor"):
        setattr(COOStorage, f"__r{_name}__", COOStorage._refuse)


def is_sparse(t) -> bool:
    return isinstance(t, Tensor) and t._data.__class__ is COOStorage


def make(indices: np.ndarray, values, shape, coalesced: bool):
    """A sparse tensor around its parts (no checks: the callers made them consistent)."""
    t = SparseTensor.__new__(SparseTensor)
    t._data = COOStorage(indices, values, tuple(int(n) for n in shape), bool(coalesced))
    t._init_meta()
    return t


def _index(a: np.ndarray):
    return Tensor._wrap(np.ascontiguousarray(a, dtype=np.int64))


# ---------------------------------------------------------------- the two ops on values
def _segment_sum_fwd(v, index, n):
    out = np.zeros((n,) + v.shape[1:], dtype=v.dtype)
    np.add.at(out, index, v)
    return out


# out[index[e]] += values[e]: to_dense, coalesce and the sums; its VJP gathers
_segment_sum = defop("segment_sum", _segment_sum_fwd,
                     lambda g, out, v, index, n: index_select(g, 0, _index(index)), saves=())


def segment_sum(values, index: np.ndarray, n: int):
    return apply(_segment_sum, values, index=index, n=int(n))


def _sparse_mm_fwd(v, x, indices, shape):
    a = _sps.csr_matrix((v, (indices[0], indices[1])), shape=shape)  # sums duplicate entries
    return np.asarray(a @ x, dtype=np.result_type(v, x))


def _transposed(indices):
    return np.ascontiguousarray(indices[::-1])


# (sparse A with values v) @ dense x, for 2-D A and x. d/dv is (g @ x.T) at A's entries only
# (sampled_mm, O(nnz * k)), d/dx is A.T @ g.
_sparse_mm = defop("sparse_mm", _sparse_mm_fwd,
                   lambda g, out, v, x, indices, shape: sampled_mm(g, x, indices, (shape[0], shape[1])),
                   lambda g, out, v, x, indices, shape: sparse_mm_values(v, g, _transposed(indices),
                                                                         (shape[1], shape[0])))


def sparse_mm_values(values, dense, indices, shape):
    return apply(_sparse_mm, values, dense, indices=indices, shape=tuple(shape))


def _sampled_mm_fwd(a, b, indices, shape):
    return np.einsum("ij,ij->i", a[indices[0]], b[indices[1]])


# out[e] = a[i_e] . b[j_e]: the product a @ b.T at the entries (i, j) of a sparse pattern of size
# shape, never the whole product (the SDDMM of graph networks); its VJPs are sparse products
_sampled_mm = defop("sampled_mm", _sampled_mm_fwd,
                    lambda g, out, a, b, indices, shape: sparse_mm_values(g, b, indices, shape),
                    lambda g, out, a, b, indices, shape: sparse_mm_values(g, a, _transposed(indices),
                                                                          (shape[1], shape[0])))


def sampled_mm(a, b, indices, shape):
    return apply(_sampled_mm, a, b, indices=indices, shape=tuple(shape))


# ---------------------------------------------------------------- construction
def _linear(indices, sparse_shape):
    if not sparse_shape:
        return np.zeros(indices.shape[1], dtype=np.int64)
    return np.ravel_multi_index(tuple(indices), sparse_shape)


def _as_values(values, dtype):
    if isinstance(values, Tensor):
        if is_sparse(values):
            raise TypeError("sparse_coo_tensor(): values must be a dense tensor, got a sparse one")
        return values if dtype is None or values.dtype == _dtype.to_dtype(dtype) else values.to(dtype)
    arr = np.asarray(values)
    if dtype is not None:
        arr = arr.astype(_dtype.to_dtype(dtype))
    elif arr.dtype.kind == "f" or arr.size == 0:
        arr = arr.astype(_dtype.default_float())
    return Tensor._wrap(np.array(arr))


@public
def sparse_coo_tensor(indices, values, size=None, *, dtype=None, device=None, pin_memory=False,
                      requires_grad=False, check_invariants=None, is_coalesced=None):
    """A sparse COO tensor with ``values[k]`` at ``indices[:, k]`` (duplicates add up), as
    ``torch.sparse_coo_tensor``. ``indices``: int, ``sparse_dim x nnz``; ``values``:
    ``(nnz, *dense_shape)``; ``size`` defaults to the smallest that holds the indices.

    Unlike PyTorch, indices are always checked against ``size`` (PyTorch checks them only with
    ``check_invariants=True``, and otherwise reads out of bounds later).

    >>> i = tapegrad.tensor([[0, 1, 1], [2, 0, 2]])
    >>> A = tapegrad.sparse_coo_tensor(i, tapegrad.tensor([3., 4., 5.]), (2, 3))
    >>> A.to_dense()
    tensor([[0., 0., 3.],
            [4., 0., 5.]])
    """
    _check_device(device)
    idx = np.asarray(indices._data if isinstance(indices, Tensor) and not is_sparse(indices) else indices)
    if idx.dtype.kind not in "iu" and not (idx.size == 0 and idx.dtype.kind == "f"):
        raise RuntimeError(f"sparse_coo_tensor(): indices must be an int64 tensor, got {idx.dtype}")
    if idx.ndim != 2:
        raise RuntimeError(f"sparse_coo_tensor(): indices must be sparse_dim x nnz, but got: {list(idx.shape)}")
    idx = idx.astype(np.int64)
    v = _as_values(values, dtype)
    if v.ndim == 0:
        raise RuntimeError("sparse_coo_tensor(): values must have at least one dimension (nnz), got a 0-d tensor")
    sparse_dim, nnz = idx.shape
    if v.shape[0] != nnz:
        raise RuntimeError(f"sparse_coo_tensor(): indices and values must have same nnz, but got nnz from "
                           f"indices: {nnz}, nnz from values: {v.shape[0]}")
    dense_shape = tuple(v.shape[1:])
    if nnz and idx.min() < 0:
        d, k = np.argwhere(idx < 0)[0]
        raise RuntimeError(f"sparse_coo_tensor(): found negative index {idx[d, k]} for dim {d}")
    if size is None:
        size = tuple(int(n) for n in (idx.max(1) + 1 if nnz else np.zeros(sparse_dim, np.int64))) + dense_shape
    else:
        size = tuple(int(n) for n in (size if not isinstance(size, numbers.Integral) else (size,)))
        if len(size) != sparse_dim + len(dense_shape):
            raise RuntimeError(f"sparse_coo_tensor(): 'len(size) == sparse_dim + dense_dim' is not satisfied: "
                               f"len(size) = {len(size)}, sparse_dim = {sparse_dim}, dense_dim = {len(dense_shape)}")
        if size[sparse_dim:] != dense_shape:
            raise RuntimeError(f"sparse_coo_tensor(): the dense dims of size {size} must be those of values "
                               f"{tuple(v.shape)}: expected {dense_shape}")
        if nnz:
            top = idx.max(1)
            for d in range(sparse_dim):
                if top[d] >= size[d]:
                    raise RuntimeError(f"sparse_coo_tensor(): size is inconsistent with indices: for dim {d}, "
                                       f"size is {size[d]} but found index {top[d]}")
    if requires_grad:
        v = v.detach().requires_grad_(True)  # a leaf: its gradient is the sparse tensor's .grad
    coalesced = nnz <= 1 if is_coalesced is None else bool(is_coalesced)
    if coalesced and nnz > 1 and not np.all(np.diff(_linear(idx, size[:sparse_dim])) > 0):
        # a wrong claim would make values() and the sums silently wrong later: checked always
        raise RuntimeError("sparse_coo_tensor(): is_coalesced=True, but the indices are not sorted and unique")
    return make(idx, v, size, coalesced)


@public(method=True)
def to_sparse(input, sparse_dim=None, *, layout=None, blocksize=None, dense_dim=None):
    """The sparse COO form of a dense tensor (its nonzero entries, coalesced); with
    ``sparse_dim``, the leading ``sparse_dim`` dims are sparse and the rest dense (hybrid)."""
    if layout not in (None, sparse_coo):
        raise NotImplementedError(f"to_sparse: layout {layout!r} is not supported (only tapegrad.sparse_coo)")
    if is_sparse(input):
        if sparse_dim not in (None, input.sparse_dim()):
            raise RuntimeError(f"to_sparse: sparse_dim {sparse_dim} of a sparse tensor with sparse_dim "
                               f"{input.sparse_dim()} (change of sparse_dim is not supported)")
        return input
    sd = input.ndim if sparse_dim is None else int(sparse_dim)
    if not 0 <= sd <= input.ndim:
        raise RuntimeError(f"to_sparse: sparse_dim {sd} out of range for a {input.ndim}-D tensor")
    a = input._data
    mask = a != 0
    if a.ndim > sd:
        mask = mask.any(axis=tuple(range(sd, a.ndim)))
    if sd == 0:
        idx = np.zeros((0, 1), np.int64)
        values = input.unsqueeze(0)
    else:
        nz = np.nonzero(mask)
        idx = np.stack(nz).astype(np.int64) if nz else np.zeros((0, 0), np.int64)
        values = input[tuple(_index(n) for n in nz)]
    return make(idx, values, a.shape, True)


@public(method=True)
def to_dense(input, dtype=None, *, masked_grad=None):
    """The dense (strided) form; a dense tensor is returned as it is. Differentiable."""
    if not is_sparse(input):
        return input if dtype is None else input.to(dtype)
    st = input._data
    sd = len(st.indices)
    out = segment_sum(st.values, _linear(st.indices, st.shape[:sd]), int(np.prod(st.shape[:sd], dtype=np.int64)))
    out = out.reshape(st.shape)
    return out if dtype is None else out.to(dtype)


@public(method=True)
def sparse_mask(input, mask):
    """The entries of the dense ``input`` at the (coalesced) pattern of the sparse ``mask``, as a
    sparse tensor (differentiable in ``input``), as ``Tensor.sparse_mask``."""
    _check_sparse(mask, "sparse_mask", "mask")
    if is_sparse(input) or tuple(input.shape) != tuple(mask.shape):
        raise RuntimeError(f"sparse_mask: expected a dense input of the mask's size {tuple(mask.shape)}, got "
                           f"{'a sparse tensor' if is_sparse(input) else tuple(input.shape)}")
    st = coalesce(mask)._data
    values = input[tuple(_index(i) for i in st.indices)] if len(st.indices) else input.unsqueeze(0)
    return make(st.indices, values, st.shape, True)


def coalesce(t):
    """Duplicates summed, indices sorted (lexicographically), as ``Tensor.coalesce``."""
    st = t._data
    if st.coalesced:
        return t
    sd = len(st.indices)
    lin = _linear(st.indices, st.shape[:sd])
    uniq, inverse = np.unique(lin, return_inverse=True)
    idx = np.stack(np.unravel_index(uniq, st.shape[:sd])).astype(np.int64) if sd else np.zeros((0, len(uniq)), np.int64)
    return make(idx.reshape(sd, len(uniq)), segment_sum(st.values, inverse.reshape(-1), len(uniq)), st.shape, True)


def first_of_each(t, values):
    """``values`` (one per entry of ``t``) on ``t``'s coalesced pattern, keeping the first of each
    duplicate: the gradient of a sparse leaf, which is the same at every copy of an entry."""
    st = t._data
    if st.coalesced:
        return make(st.indices, values, st.shape, True)
    sd = len(st.indices)
    uniq, first = np.unique(_linear(st.indices, st.shape[:sd]), return_index=True)
    idx = np.stack(np.unravel_index(uniq, st.shape[:sd])).astype(np.int64) if sd else np.zeros((0, len(uniq)), np.int64)
    return make(idx.reshape(sd, len(uniq)), index_select(values, 0, _index(first)), st.shape, True)


def per_entry(t, g):
    """The values of ``g`` (sparse, on ``t``'s coalesced pattern) for each stored entry of ``t``
    (the inverse of ``first_of_each``); None when ``g`` has another pattern."""
    st = t._data
    if not is_sparse(g) or tuple(g.shape) != st.shape:
        return None
    g = coalesce(g)
    sd = len(st.indices)
    uniq, inverse = np.unique(_linear(st.indices, st.shape[:sd]), return_inverse=True)
    if not np.array_equal(_linear(g._data.indices, st.shape[:sd]), uniq):
        return None
    return index_select(g._data.values, 0, _index(inverse.reshape(-1)))


# ---------------------------------------------------------------- arithmetic
def _check_sparse(t, opname, what="input"):
    if not is_sparse(t):
        raise RuntimeError(f"{opname}: expected a sparse COO tensor for {what}, got a "
                           f"{'dense tensor' if isinstance(t, Tensor) else type(t).__name__}")


def _check_mm(a, b, opname):
    if a.ndim != 2 or b.ndim != 2:
        raise RuntimeError(f"{opname}: expected 2-D matrices, got {tuple(a.shape)} and {tuple(b.shape)}")
    if a.shape[1] != b.shape[0]:
        raise RuntimeError(f"{opname}: mat1 and mat2 shapes cannot be multiplied ({a.shape[0]}x{a.shape[1]} and "
                           f"{b.shape[0]}x{b.shape[1]})")
    if a.dtype != b.dtype:
        raise RuntimeError(f"{opname}: expected mat1 and mat2 to have the same dtype, but got: "
                           f"{_dtype.name(a.dtype)} != {_dtype.name(b.dtype)}")


def mm(mat1, mat2):
    """``torch.sparse.mm``: sparse (2-D) @ dense -> dense, or sparse @ sparse -> sparse. Gradients
    flow to the dense operand and to the sparse operand's values (on its pattern only)."""
    _check_sparse(mat1, "sparse.mm", "mat1")
    _check_mm(mat1, mat2, "sparse.mm")
    if mat1._data.values.ndim != 1:
        raise RuntimeError(f"sparse.mm: mat1 must have 2 sparse dims and no dense dims, got "
                           f"{mat1.sparse_dim()} and {mat1.dense_dim()}")
    if is_sparse(mat2):
        return _sparse_sparse_mm(mat1, mat2)
    st = mat1._data
    return sparse_mm_values(st.values, mat2, st.indices, st.shape)


def _sparse_sparse_mm(a, b):
    if a.requires_grad or b.requires_grad:
        raise NotImplementedError("sparse.mm: the product of two sparse tensors is not differentiable in "
                                  "tapegrad (densify one operand with .to_dense())")
    sa, sb = a._data, b._data
    prod = (_sps.csr_matrix((sa.values._data, tuple(sa.indices)), shape=sa.shape)
            @ _sps.csr_matrix((sb.values._data, tuple(sb.indices)), shape=sb.shape)).tocoo()
    prod.sum_duplicates()  # sorts row-major: coalesced
    idx = np.stack([prod.row, prod.col]).astype(np.int64)
    return make(idx, Tensor._wrap(np.asarray(prod.data, dtype=sa.dtype)), (sa.shape[0], sb.shape[1]), True)


def matmul(input, other):
    """``@`` / ``torch.mm`` / ``torch.matmul`` with a sparse operand (2-D sparse, 1-D or 2-D dense)."""
    if is_sparse(input):
        if other.ndim == 1 and not is_sparse(other):
            return mm(input, other.reshape(-1, 1)).reshape(-1)
        return mm(input, other)
    if input.ndim == 1:
        return mm(transpose(other), input.reshape(-1, 1)).reshape(-1)
    _check_mm(input, other, "mm")
    return mm(transpose(other), input.mT).mT  # dense @ sparse = (sparse.T @ dense.T).T


def addmm(input, mat1, mat2, *, beta=1.0, alpha=1.0):
    """``beta * input + alpha * (mat1 @ mat2)`` with a sparse ``mat1`` (``torch.sparse.addmm``)."""
    prod = mm(mat1, mat2)
    if alpha != 1:
        prod = prod * alpha
    if beta == 0:
        return prod + (input * 0).detach()
    return (input * beta if beta != 1 else input) + prod


def transpose(t, dim0=0, dim1=1):
    """Two sparse dims swapped (``t.t()`` for a matrix); the result is not coalesced, as in PyTorch."""
    st = t._data
    sd = len(st.indices)
    d0, d1 = (d + t.ndim if d < 0 else d for d in (dim0, dim1))
    if not (0 <= d0 < sd and 0 <= d1 < sd):
        raise NotImplementedError(f"transpose: only sparse dims of a sparse tensor can be swapped (dims {dim0}, "
                                  f"{dim1} of size {tuple(t.shape)} with sparse_dim {sd})")
    perm = list(range(sd))
    perm[d0], perm[d1] = perm[d1], perm[d0]
    shape = list(st.shape)
    shape[d0], shape[d1] = shape[d1], shape[d0]
    return make(st.indices[perm], st.values, shape, st.coalesced and d0 == d1)


def add(a, b, alpha=1):
    """sparse + sparse (same size) -> sparse; sparse + dense -> dense, as PyTorch."""
    if not is_sparse(a):
        a, b = b, a
        scale_a, scale_b = alpha, 1
    else:
        scale_a, scale_b = 1, alpha
    if not isinstance(b, Tensor):
        raise TypeError(f"add: a sparse tensor and a {type(b).__name__} (add a tensor of the same size)")
    if tuple(a.shape) != tuple(b.shape):
        raise RuntimeError(f"add: sizes {tuple(a.shape)} and {tuple(b.shape)} of the operands must match")
    if not is_sparse(b):
        da = to_dense(a)
        return (da * scale_a if scale_a != 1 else da) + (b * scale_b if scale_b != 1 else b)
    sa, sb = a._data, b._data
    if len(sa.indices) != len(sb.indices):
        raise RuntimeError(f"add: sparse tensors with different sparse_dim ({len(sa.indices)} and "
                           f"{len(sb.indices)})")
    vb = sb.values if scale_b == 1 else sb.values * scale_b
    values = cat([sa.values, vb.to(sa.dtype) if vb.dtype != sa.dtype else vb])
    return make(np.concatenate([sa.indices, sb.indices], axis=1), values, sa.shape, False)


def mul(a, b):
    """sparse * scalar -> sparse; sparse * dense (same size) -> sparse on the sparse pattern;
    sparse * sparse -> sparse on the common entries."""
    if not is_sparse(a):
        a, b = b, a
    st = a._data
    if isinstance(b, (numbers.Number, np.generic)) or (isinstance(b, Tensor) and not is_sparse(b) and b.ndim == 0):
        return make(st.indices, st.values * b, st.shape, st.coalesced)
    if is_sparse(b):
        return _mul_sparse(a, b)
    if not isinstance(b, Tensor):
        raise TypeError(f"mul: a sparse tensor times a {type(b).__name__}")
    if tuple(b.shape) != tuple(a.shape):
        raise RuntimeError(f"mul: a sparse tensor of size {tuple(a.shape)} times a dense one of size {tuple(b.shape)}"
                           f" (they must match)")
    sd = len(st.indices)
    at = b[tuple(_index(i) for i in st.indices)] if sd else b.unsqueeze(0).expand(st.values.shape)
    return make(st.indices, st.values * at, st.shape, st.coalesced)


def _mul_sparse(a, b):
    """Elementwise: nonzero only where both have an entry (their coalesced patterns intersected)."""
    if tuple(a.shape) != tuple(b.shape) or a.sparse_dim() != b.sparse_dim():
        raise RuntimeError(f"mul: sparse tensors of sizes {tuple(a.shape)} and {tuple(b.shape)} (sparse_dim "
                           f"{a.sparse_dim()} and {b.sparse_dim()}): they must match")
    sa, sb = coalesce(a)._data, coalesce(b)._data
    sparse_shape = sa.shape[:len(sa.indices)]
    _, ia, ib = np.intersect1d(_linear(sa.indices, sparse_shape), _linear(sb.indices, sparse_shape),
                               assume_unique=True, return_indices=True)
    values = index_select(sa.values, 0, _index(ia)) * index_select(sb.values, 0, _index(ib))
    return make(sa.indices[:, ia], values, sa.shape, True)


def sparse_sum(input, dim=None, dtype=None):
    """``torch.sparse.sum``: the sum of all entries (a dense 0-d tensor) or over ``dim``: sparse while
    some sparse dim is left, dense otherwise."""
    _check_sparse(input, "sparse.sum")
    st = input._data
    values = st.values if dtype is None else st.values.to(dtype)
    if dim is None:
        return values.sum()
    dims = (dim,) if isinstance(dim, numbers.Integral) else tuple(dim)
    nd = input.ndim
    dims = sorted({d + nd if d < 0 else d for d in dims})
    if any(not 0 <= d < nd for d in dims):
        raise IndexError(f"sparse.sum: dim {dim} out of range for a sparse tensor of size {tuple(input.shape)}")
    sd = len(st.indices)
    dense_dims = [d - sd + 1 for d in dims if d >= sd]
    if dense_dims:
        values = values.sum(dense_dims)
    keep = [d for d in range(sd) if d not in dims]
    shape = [st.shape[d] for d in range(nd) if d not in dims]
    if not keep:
        return values.sum(0)
    return coalesce(make(st.indices[keep], values, shape, False))


def _softmax(input, dim, log, opname):
    _check_sparse(input, opname)
    t = coalesce(input)
    st = t._data
    sd, nd = len(st.indices), input.ndim
    d = dim + nd if dim < 0 else dim
    if not 0 <= d < nd:
        raise IndexError(f"{opname}: dim {dim} out of range for a sparse tensor of size {tuple(input.shape)}")
    v = st.values
    if d >= sd:  # along a dense dim: every entry's own softmax
        out = v.log_softmax(d - sd + 1) if log else v.softmax(d - sd + 1)
        return make(st.indices, out, st.shape, True)
    # along a sparse dim: over the specified entries that share the other sparse indices
    # (the unspecified ones count as -inf, as in PyTorch)
    others = [k for k in range(sd) if k != d]
    key = _linear(st.indices[others], tuple(st.shape[k] for k in others))
    _, group = np.unique(key, return_inverse=True)
    group = group.reshape(-1)
    n = int(group.max()) + 1 if group.size else 0
    top = np.full((n,) + tuple(v.shape[1:]), -np.inf, dtype=v.dtype)
    np.maximum.at(top, group, v._data)
    gi = _index(group)
    shifted = v - Tensor._wrap(top[group])
    e = shifted.exp()
    total = index_select(segment_sum(e, group, n), 0, gi)
    out = shifted - total.log() if log else e / total
    return make(st.indices, out, st.shape, True)


def softmax(input, dim, *, dtype=None):
    """``torch.sparse.softmax``: softmax along ``dim`` over the specified entries only."""
    return _softmax(input if dtype is None else input.to(dtype), dim, False, "sparse.softmax")


def log_softmax(input, dim, *, dtype=None):
    """``torch.sparse.log_softmax``: log-softmax along ``dim`` over the specified entries only."""
    return _softmax(input if dtype is None else input.to(dtype), dim, True, "sparse.log_softmax")


@public
def spmm(input, mat2):
    """``torch.spmm``: sparse (2-D) @ dense, as :func:`tapegrad.sparse.mm`."""
    return mm(input, mat2)
