"""``tapegrad.sparse``: PyTorch's ``torch.sparse`` namespace, and the sparse COO tensor's class.

A sparse COO tensor holds ``indices`` (``sparse_dim x nnz``, int64) and ``values``
(``(nnz, *dense_shape)``); duplicates add up until ``coalesce()`` sums them. Gradients flow to
the dense operands and to the values: a sparse leaf's ``.grad`` is a sparse tensor on its own
pattern, as ``torch.sparse.mm`` gives. Ops written for dense tensors refuse sparse ones with a
``NotImplementedError`` naming the op; ``to_dense()`` converts.

>>> i = tapegrad.tensor([[0, 1, 1], [2, 0, 2]])
>>> A = tapegrad.sparse_coo_tensor(i, tapegrad.tensor([3., 4., 5.]), (2, 3), requires_grad=True)
>>> X = tapegrad.randn(3, 2, requires_grad=True)
>>> tapegrad.sparse.mm(A, X).sum().backward()
>>> A.grad          # sparse, on A's pattern
>>> X.grad.shape
tapegrad.Size([3, 2])
"""
from __future__ import annotations

from .ops import sparse as _sp
from .ops.format import format_tensor as _format
from .ops.sparse import addmm, log_softmax, mm, softmax, sparse_coo, spmm  # noqa: F401
from .ops.sparse import sparse_sum as sum  # noqa: A001  (torch.sparse.sum)
from .tensor import Tensor

__all__ = ["DoubleTensor", "FloatTensor", "LongTensor", "SparseTensor", "addmm", "check_sparse_tensor_invariants",
           "log_softmax", "mm", "softmax", "spmm", "sum"]


class SparseTensor(Tensor):
    """A sparse COO tensor (``layout == tapegrad.sparse_coo``), made by
    :func:`tapegrad.sparse_coo_tensor` or ``Tensor.to_sparse()``. Its autograd state (``requires_grad``,
    ``grad_fn``, ``grad``) is that of its values; ``.grad`` is sparse, on this tensor's pattern."""

    __slots__ = ()

    # ------------------------------------------------------------ layout and parts
    @property
    def is_sparse(self) -> bool:
        return True

    @property
    def layout(self):
        return sparse_coo

    def sparse_dim(self) -> int:
        """The number of sparse dims (the rows of ``indices``)."""
        return len(self._data.indices)

    def dense_dim(self) -> int:
        """The number of dense dims (of each value)."""
        return self._data.values.ndim - 1

    def _nnz(self) -> int:
        """The number of stored entries (duplicates counted)."""
        return int(self._data.indices.shape[1])

    nnz = _nnz

    def is_coalesced(self) -> bool:
        """Whether the indices are sorted and unique."""
        return self._data.coalesced

    def coalesce(self) -> "SparseTensor":
        """Duplicates summed and indices sorted; ``self`` when already coalesced (differentiable)."""
        return _sp.coalesce(self)

    def _indices(self) -> Tensor:
        """The indices as stored (``sparse_dim x nnz``), coalesced or not."""
        return Tensor._wrap(self._data.indices)

    def _values(self) -> Tensor:
        """The values as stored (``(nnz, *dense_shape)``), coalesced or not; on the tape."""
        return self._data.values

    def indices(self) -> Tensor:
        """The indices of a coalesced tensor (an uncoalesced one raises, as in PyTorch)."""
        if not self._data.coalesced:
            raise RuntimeError("Cannot get indices on an uncoalesced tensor, please call .coalesce() first")
        return self._indices()

    def values(self) -> Tensor:
        """The values of a coalesced tensor (an uncoalesced one raises, as in PyTorch)."""
        if not self._data.coalesced:
            raise RuntimeError("Cannot get values on an uncoalesced tensor, please call .coalesce() first")
        return self._data.values

    def to_dense(self, dtype=None, *, masked_grad=None) -> Tensor:
        """The dense tensor (duplicates summed); differentiable."""
        return _sp.to_dense(self, dtype)

    def to_sparse(self, sparse_dim=None, *, layout=None, blocksize=None, dense_dim=None) -> "SparseTensor":
        """``self`` (already sparse COO)."""
        return _sp.to_sparse(self, sparse_dim, layout=layout)

    def t(self) -> "SparseTensor":
        """The transpose of a sparse matrix (not coalesced, as in PyTorch)."""
        if self.ndim != 2 or self.sparse_dim() != 2:
            raise RuntimeError(f"t(): expects a sparse matrix (2 sparse dims), got size {tuple(self.shape)} with "
                               f"sparse_dim {self.sparse_dim()}")
        return _sp.transpose(self, 0, 1)

    def transpose(self, dim0, dim1) -> "SparseTensor":
        """Two sparse dims swapped."""
        return _sp.transpose(self, dim0, dim1)

    def numpy(self, *, force=False):
        """Refused, as in PyTorch: a sparse tensor is not an array (``to_dense().numpy()`` is)."""
        raise TypeError("can't convert Sparse layout tensor to numpy. Use Tensor.to_dense() first.")

    __array__ = numpy

    # ------------------------------------------------------------ autograd: that of the values
    @property
    def requires_grad(self) -> bool:
        return self._data.values.requires_grad

    @requires_grad.setter
    def requires_grad(self, flag: bool):
        self.requires_grad_(flag)

    def requires_grad_(self, requires_grad: bool = True) -> "SparseTensor":
        self._data.values.requires_grad_(requires_grad)
        return self

    @property
    def grad_fn(self):
        return self._data.values.grad_fn

    @property
    def grad(self):
        """The gradient of a sparse leaf: sparse, on its (coalesced) pattern; None before backward."""
        g = self._data.values.grad
        return None if g is None else _sp.first_of_each(self, g)

    @grad.setter
    def grad(self, value):
        if value is None:
            self._data.values.grad = None
            return
        grad = _sp.per_entry(self, value)
        if grad is None:
            raise RuntimeError(f"assigned grad of a sparse tensor of size {tuple(self.shape)} must be a sparse tensor "
                               f"with the same (coalesced) indices")
        self._data.values.grad = grad

    def detach(self) -> "SparseTensor":
        """The same indices and values, outside the tape."""
        st = self._data
        return _sp.make(st.indices, st.values.detach(), st.shape, st.coalesced)

    def __deepcopy__(self, memo):
        """``copy.deepcopy``: new indices and values (a leaf's values stay a leaf)."""
        st = self._data
        return _sp.make(st.indices.copy(), st.values.__deepcopy__(memo), st.shape, st.coalesced)

    def __reduce_ex__(self, protocol):
        """``pickle``: the indices, the values (a tensor, pickled as one) and the size."""
        st = self._data
        return _sp.make, (st.indices, st.values.detach(), st.shape, st.coalesced)

    def clone(self, *, memory_format=None) -> "SparseTensor":
        """A copy (differentiable, as ``values.clone()``)."""
        st = self._data
        return _sp.make(st.indices.copy(), st.values.clone(), st.shape, st.coalesced)

    def to(self, *args, **kwargs) -> "SparseTensor":
        """``to(dtype)`` (and the no-op ``to('cpu')``): the values cast, differentiably."""
        st = self._data
        return _sp.make(st.indices, st.values.to(*args, **kwargs), st.shape, st.coalesced)

    def float(self):
        return self.to(_sp._dtype.float32)

    def double(self):
        return self.to(_sp._dtype.float64)

    # ------------------------------------------------------------ arithmetic
    def __matmul__(self, other): return _sp.matmul(self, other)
    def __rmatmul__(self, other): return _sp.matmul(other, self)
    def mm(self, mat2): return _sp.matmul(self, mat2)
    def matmul(self, other): return _sp.matmul(self, other)
    def __mul__(self, other): return _sp.mul(self, other)
    def __rmul__(self, other): return _sp.mul(self, other)
    def mul(self, other): return _sp.mul(self, other)
    def __truediv__(self, other): return _sp.mul(self, 1 / other)
    def __neg__(self): return _sp.mul(self, -1)
    def neg(self): return _sp.mul(self, -1)
    def __add__(self, other): return _sp.add(self, other)
    def __radd__(self, other): return _sp.add(other, self)
    def add(self, other, *, alpha=1): return _sp.add(self, other, alpha)
    def __sub__(self, other): return _sp.add(self, other, -1)
    def __rsub__(self, other): return _sp.add(-self, other)
    def sub(self, other, *, alpha=1): return _sp.add(self, other, -alpha)

    def sum(self, dim=None, keepdim=False, dtype=None):
        """As :func:`tapegrad.sparse.sum` (a dense 0-d tensor, or sparse while sparse dims are left)."""
        if keepdim:
            raise NotImplementedError("sum: keepdim=True is not supported for sparse tensors")
        return _sp.sparse_sum(self, dim, dtype)

    def pow(self, exponent):
        """Each stored value to a positive scalar power (zero stays zero)."""
        if not isinstance(exponent, (int, float)) or exponent <= 0:
            raise NotImplementedError(f"pow: a sparse tensor to the power {exponent!r} (only positive scalars "
                                      f"keep it sparse)")
        return _valuewise(self, lambda v: v.pow(exponent))

    __pow__ = pow

    def __repr__(self) -> str:
        return _repr(self)


def _valuewise(t, fn):
    st = _sp.coalesce(t)._data  # f(a + b) is not f(a) + f(b): duplicates are summed first, as in PyTorch
    return _sp.make(st.indices, fn(st.values), st.shape, st.coalesced)


def _method(name):
    def method(self):
        return _valuewise(self, lambda v: getattr(v, name)())
    method.__name__ = method.__qualname__ = name
    method.__doc__ = f"``{name}`` of each stored value: the ops that map zero to zero keep a tensor sparse."
    return method


# torch's value-wise ops on sparse COO tensors (each maps 0 to 0, so the pattern stays)
for _name in ("abs", "sqrt", "square", "sign", "sgn", "sin", "sinh", "tan", "tanh", "asin", "asinh", "atan",
              "atanh", "expm1", "log1p", "floor", "ceil", "round", "trunc", "frac", "relu", "deg2rad", "rad2deg",
              "signbit", "isnan", "isinf"):
    setattr(SparseTensor, _name, _method(_name))


def _inner(t: Tensor, indent: int) -> str:
    """A dense tensor's repr without its dtype, its continuation lines indented by ``indent``."""
    s = _format(t.detach())
    suffix = f", dtype={_sp._dtype.name(t.dtype)})"
    if s.endswith(suffix):
        s = s[:-len(suffix)] + ")"
    return "\n".join([s.split("\n")[0]] + [" " * indent + line if line else line for line in s.split("\n")[1:]])


def _repr(t: SparseTensor) -> str:
    # PyTorch's layout: tensor(indices=..., values=..., then the suffixes, wrapped at 80 columns
    st = t._data
    body = ("tensor(indices=" + _inner(Tensor._wrap(st.indices), 15) + ",\n       values="
            + _inner(st.values, 14))
    suffixes = [f"size={tuple(st.shape)}", f"nnz={t._nnz()}"]
    if st.dtype != _sp._dtype.default_float() and st.dtype.kind == "f" or st.dtype.kind not in "fi" \
            or st.dtype.kind == "i" and st.dtype.itemsize != 8:
        suffixes.append(f"dtype={_sp._dtype.name(st.dtype)}")
    suffixes.append("layout=tapegrad.sparse_coo")
    if t.grad_fn is not None:
        suffixes.append(f"grad_fn={t.grad_fn!r}")
    elif t.requires_grad:
        suffixes.append("requires_grad=True")
    out, last, newline = [body], 0, True
    for s in suffixes:
        if newline or last + len(s) + 2 > 80:
            out.append(",\n       " + s)
            last, newline = 7 + len(s), False
        else:
            out.append(", " + s)
            last += len(s) + 2
    return "".join(out) + ")"


def FloatTensor(indices, values, size=None):
    """PyTorch's legacy ``torch.sparse.FloatTensor(indices, values, size)``: a float32 sparse tensor."""
    return _sp.sparse_coo_tensor(indices, values, size, dtype=_sp._dtype.float32)


def DoubleTensor(indices, values, size=None):
    """PyTorch's legacy ``torch.sparse.DoubleTensor(indices, values, size)``: a float64 sparse tensor."""
    return _sp.sparse_coo_tensor(indices, values, size, dtype=_sp._dtype.float64)


def LongTensor(indices, values, size=None):
    """PyTorch's legacy ``torch.sparse.LongTensor(indices, values, size)``: an int64 sparse tensor."""
    return _sp.sparse_coo_tensor(indices, values, size, dtype=_sp._dtype.int64)


class check_sparse_tensor_invariants:
    """PyTorch's switch for checking sparse tensors' indices at construction (a context manager and
    a decorator). tapegrad always checks them (out-of-range and negative indices, the index shape,
    a false ``is_coalesced=True``), so the switch changes nothing: ``is_enabled()`` is always True,
    and code that turns the checks on runs unchanged."""

    def __init__(self, enable=True):
        self.enable = enable

    @staticmethod
    def is_enabled() -> bool:
        """Always True: tapegrad checks every sparse tensor it builds."""
        return True

    @staticmethod
    def enable():
        """Nothing to do: the checks are always on."""

    @staticmethod
    def disable():
        """Refused quietly, as a no-op: tapegrad keeps checking (an unchecked index would read out of bounds)."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def __call__(self, fn):
        return fn


_sp.SparseTensor = SparseTensor  # the ops create sparse tensors through this name
