"""``Tensor``: a numpy array plus what the tape needs. Thin by design.

This file dispatches: every method is a one-liner into ``tapegrad.ops`` (the math and its
gradients) or ``tapegrad.autograd`` (the tape). It holds no math and walks no graph.
"""
from __future__ import annotations

import numpy as np

from . import _dtype


class Tensor:
    """An n-dimensional array that can record the ops applied to it.

    >>> x = tapegrad.tensor([1.0, 2.0], requires_grad=True)
    >>> (x * x).sum().backward()
    >>> x.grad
    tensor([2., 4.])
    """

    __slots__ = ("_data", "_requires_grad", "grad", "grad_fn", "_version", "_base", "_retains_grad",
                 "_hooks", "__weakref__")
    __array_priority__ = 1000  # numpy defers to our operators: ndarray * Tensor -> Tensor

    def __init__(self, data=None, *, requires_grad=False):
        arr = np.asarray([] if data is None else data)
        if arr.dtype.kind in "fiu" and not isinstance(data, np.ndarray):
            arr = arr.astype(_dtype.get_default_dtype())
        self._data = arr
        self._init_meta()
        if requires_grad:
            self.requires_grad_(True)

    def _init_meta(self):
        self._requires_grad = False
        self.grad = None
        self.grad_fn = None
        self._version = [0]
        self._base = None
        self._retains_grad = False
        self._hooks = None

    @classmethod
    def _wrap(cls, arr: np.ndarray) -> "Tensor":
        """A new leaf around ``arr`` (no copy)."""
        t = cls.__new__(cls)
        t._data = arr  # _init_meta's fields, written out: this runs for every intermediate
        t._requires_grad = False
        t.grad = t.grad_fn = t._base = t._hooks = None
        t._version = [0]
        t._retains_grad = False
        return t

    # ------------------------------------------------------------ metadata
    @property
    def shape(self) -> tuple:
        return self._data.shape

    @property
    def dtype(self) -> np.dtype:
        return self._data.dtype

    @property
    def ndim(self) -> int:
        return self._data.ndim

    @property
    def device(self):
        from .device import cpu
        return cpu

    @property
    def is_cuda(self) -> bool:
        return False

    @property
    def is_leaf(self) -> bool:
        return self.grad_fn is None

    @property
    def is_floating_point(self):
        return lambda: self._data.dtype.kind == "f"

    @property
    def requires_grad(self) -> bool:
        return self._requires_grad

    @requires_grad.setter
    def requires_grad(self, flag: bool):
        self.requires_grad_(flag)

    @property
    def data(self) -> "Tensor":
        """The same storage, detached from the tape."""
        return self.detach()

    @data.setter
    def data(self, value: "Tensor"):
        self._data = value._data if isinstance(value, Tensor) else np.asarray(value)

    @property
    def T(self) -> "Tensor":
        return _ops.permute(self, tuple(reversed(range(self.ndim))))

    @property
    def mT(self) -> "Tensor":
        return _ops.transpose(self, -2, -1)

    @property
    def itemsize(self) -> int:
        return self._data.itemsize

    @property
    def nbytes(self) -> int:
        return self._data.nbytes

    def size(self, dim=None):
        return self._data.shape if dim is None else self._data.shape[dim]

    def dim(self) -> int:
        return self._data.ndim

    def numel(self) -> int:
        return self._data.size

    def nelement(self) -> int:
        return self._data.size

    def element_size(self) -> int:
        return self._data.itemsize

    def stride(self, dim=None):
        s = tuple(b // self._data.itemsize for b in self._data.strides)
        return s if dim is None else s[dim]

    def is_contiguous(self) -> bool:
        return self._data.flags.c_contiguous

    def __len__(self) -> int:
        if self._data.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self._data.shape[0]

    def __repr__(self) -> str:
        return _ops.format_tensor(self)

    # ------------------------------------------------------------ conversion
    def numpy(self, *, force=False) -> np.ndarray:
        """The underlying array (shared memory). Refused on a tensor that requires grad, as in PyTorch."""
        if self._requires_grad and not force:
            raise RuntimeError("Can't call numpy() on Tensor that requires grad. Use tensor.detach().numpy() "
                               "instead.")
        return self._data

    def __array__(self, dtype=None, copy=None):
        return self._data if dtype is None else self._data.astype(dtype, copy=False)

    def item(self):
        if self._data.size != 1:
            raise RuntimeError(f"a Tensor with {self._data.size} elements cannot be converted to Scalar")
        return self._data.reshape(()).item()

    def tolist(self):
        return self._data.tolist()

    def __float__(self):
        return float(self.item())

    def __int__(self):
        return int(self.item())

    def __index__(self):
        if self._data.dtype.kind not in "iub" or self._data.size != 1:
            raise TypeError("only integer tensors of a single element can be converted to an index")
        return int(self.item())

    def __bool__(self):
        if self._data.size != 1:
            raise RuntimeError(f"Boolean value of Tensor with {self._data.size} elements is ambiguous")
        return bool(self._data.reshape(()).item())

    def __iter__(self):
        if self._data.ndim == 0:
            raise TypeError("iteration over a 0-d tensor")
        return (self[i] for i in range(self._data.shape[0]))

    def __hash__(self):
        return id(self)

    def __reduce_ex__(self, protocol):
        raise TypeError("tapegrad tensors are not pickled; save them with tapegrad.save (HDF5/safetensors)")

    def to(self, *args, **kwargs) -> "Tensor":
        """``to(dtype)``, ``to(device)``, ``to(device, dtype)`` or ``to(other_tensor)``."""
        return _ops.to(self, *args, **kwargs)

    def cpu(self) -> "Tensor":
        return self

    def cuda(self, *args, **kwargs):
        raise RuntimeError("tapegrad runs on the CPU only: CUDA is not available")

    def float(self):
        return _ops.cast(self, _dtype.float32)

    def double(self):
        return _ops.cast(self, _dtype.float64)

    def half(self):
        return _ops.cast(self, _dtype.float16)

    def long(self):
        return _ops.cast(self, _dtype.int64)

    def int(self):
        return _ops.cast(self, _dtype.int32)

    def bool(self):
        return _ops.cast(self, _dtype.bool_)

    def type(self, dtype=None):
        return _dtype.name(self._data.dtype) if dtype is None else _ops.cast(self, dtype)

    def type_as(self, other):
        return _ops.cast(self, other._data.dtype)

    def view_as(self, other):
        return _ops.view(self, other.shape)

    def reshape_as(self, other):
        return _ops.reshape(self, other.shape)

    def expand_as(self, other):
        return _ops.expand(self, other.shape)

    # ------------------------------------------------------------ autograd
    def backward(self, gradient=None, retain_graph=None, create_graph=False, inputs=None):
        """Accumulate d(self)/d(leaf) into every leaf's ``.grad``."""
        _autograd.backward(self, gradient, retain_graph=retain_graph, create_graph=create_graph, inputs=inputs)

    def requires_grad_(self, requires_grad: bool = True) -> "Tensor":
        if requires_grad and self._data.dtype.kind != "f":
            raise RuntimeError(f"only Tensors of floating point dtype can require gradients, got "
                               f"{_dtype.name(self._data.dtype)}")
        if not requires_grad and self.grad_fn is not None:
            raise RuntimeError("you can only change requires_grad flags of leaf variables. If you want to use "
                               "a computed variable in a subgraph that doesn't require differentiation use "
                               "var_no_grad = var.detach().")
        self._requires_grad = bool(requires_grad)
        return self

    def detach(self) -> "Tensor":
        """The same data (shared memory and version counter), outside the tape."""
        t = Tensor._wrap(self._data)
        t._version = self._version
        return t

    def detach_(self) -> "Tensor":
        self.grad_fn = None
        self._requires_grad = False
        return self

    def retain_grad(self) -> None:
        """Keep ``.grad`` on a non-leaf tensor after backward."""
        from .autograd import retain_grad
        retain_grad(self)

    @property
    def retains_grad(self) -> bool:
        return self._retains_grad

    def register_hook(self, hook):
        """Call ``hook(grad)`` when this tensor's gradient is computed; it may return a replacement."""
        from .autograd import register_hook
        return register_hook(self, hook)

    # ------------------------------------------------------------ operators
    def __add__(self, other): return _ops.add(self, other)
    def __radd__(self, other): return _ops.add(other, self)
    def __sub__(self, other): return _ops.sub(self, other)
    def __rsub__(self, other): return _ops.sub(other, self)
    def __mul__(self, other): return _ops.mul(self, other)
    def __rmul__(self, other): return _ops.mul(other, self)
    def __truediv__(self, other): return _ops.div(self, other)
    def __rtruediv__(self, other): return _ops.div(other, self)
    def __floordiv__(self, other): return _ops.div(self, other, rounding_mode="floor")
    def __rfloordiv__(self, other): return _ops.div(other, self, rounding_mode="floor")
    def __pow__(self, other): return _ops.pow(self, other)
    def __rpow__(self, other): return _ops.pow(other, self)
    def __matmul__(self, other): return _ops.matmul(self, other)
    def __rmatmul__(self, other): return _ops.matmul(other, self)
    def __neg__(self): return _ops.neg(self)
    def __pos__(self): return self
    def __abs__(self): return _ops.abs(self)
    def __invert__(self): return _ops.bitwise_not(self) if self._data.dtype != np.bool_ else _ops.logical_not(self)
    def __and__(self, other): return _ops.logical_and(self, other)
    def __or__(self, other): return _ops.logical_or(self, other)
    def __xor__(self, other): return _ops.logical_xor(self, other)
    def __eq__(self, other): return _ops.eq(self, other)
    def __ne__(self, other): return _ops.ne(self, other)
    def __lt__(self, other): return _ops.lt(self, other)
    def __le__(self, other): return _ops.le(self, other)
    def __gt__(self, other): return _ops.gt(self, other)
    def __ge__(self, other): return _ops.ge(self, other)
    def __getitem__(self, index): return _ops.getitem(self, index)
    def __setitem__(self, index, value): _ops.setitem(self, index, value)

    def __iadd__(self, other): return _ops.add_(self, other)
    def __isub__(self, other): return _ops.sub_(self, other)
    def __imul__(self, other): return _ops.mul_(self, other)
    def __itruediv__(self, other): return _ops.div_(self, other)

    # ------------------------------------------------------------ methods (see tapegrad.ops)
    def add(self, other, *, alpha=1): return _ops.add(self, other, alpha=alpha)
    def sub(self, other, *, alpha=1): return _ops.sub(self, other, alpha=alpha)
    def mul(self, other): return _ops.mul(self, other)
    def div(self, other, *, rounding_mode=None): return _ops.div(self, other, rounding_mode=rounding_mode)
    def pow(self, exponent): return _ops.pow(self, exponent)
    def matmul(self, other): return _ops.matmul(self, other)
    def mm(self, other): return _ops.mm(self, other)
    def bmm(self, other): return _ops.bmm(self, other)
    def neg(self): return _ops.neg(self)
    def abs(self): return _ops.abs(self)
    def exp(self): return _ops.exp(self)
    def log(self): return _ops.log(self)
    def log1p(self): return _ops.log1p(self)
    def expm1(self): return _ops.expm1(self)
    def sqrt(self): return _ops.sqrt(self)
    def rsqrt(self): return _ops.rsqrt(self)
    def sin(self): return _ops.sin(self)
    def cos(self): return _ops.cos(self)
    def tanh(self): return _ops.tanh(self)
    def sigmoid(self): return _ops.sigmoid(self)
    def relu(self): return _ops.relu(self)
    def erf(self): return _ops.erf(self)
    def sign(self): return _ops.sign(self)
    def maximum(self, other): return _ops.maximum(self, other)
    def minimum(self, other): return _ops.minimum(self, other)
    def sum(self, dim=None, keepdim=False, *, dtype=None): return _ops.sum(self, dim, keepdim, dtype=dtype)
    def mean(self, dim=None, keepdim=False, *, dtype=None): return _ops.mean(self, dim, keepdim, dtype=dtype)
    def sum_to_size(self, *size): return _ops.sum_to_size(self, *size)
    def reshape(self, *shape): return _ops.reshape(self, *shape)
    def view(self, *shape): return _ops.view(self, *shape)
    def expand(self, *sizes): return _ops.expand(self, *sizes)
    def broadcast_to(self, shape): return _ops.expand(self, shape)
    def permute(self, *dims): return _ops.permute(self, *dims)
    def transpose(self, dim0, dim1): return _ops.transpose(self, dim0, dim1)
    def t(self): return _ops.t(self)
    def clone(self): return _ops.clone(self)
    def contiguous(self): return _ops.contiguous(self)
    def eq(self, other): return _ops.eq(self, other)
    def ne(self, other): return _ops.ne(self, other)
    def lt(self, other): return _ops.lt(self, other)
    def le(self, other): return _ops.le(self, other)
    def gt(self, other): return _ops.gt(self, other)
    def ge(self, other): return _ops.ge(self, other)
    def logical_not(self): return _ops.logical_not(self)
    def logical_and(self, other): return _ops.logical_and(self, other)
    def logical_or(self, other): return _ops.logical_or(self, other)
    def isnan(self): return _ops.isnan(self)
    def isfinite(self): return _ops.isfinite(self)
    def where(self, condition, other): return _ops.where(condition, self, other)

    def square(self): return _ops.square(self)
    def reciprocal(self): return _ops.reciprocal(self)
    def floor(self): return _ops.floor(self)
    def ceil(self): return _ops.ceil(self)
    def round(self, *, decimals=0): return _ops.round(self, decimals=decimals)
    def trunc(self): return _ops.trunc(self)
    def atan2(self, other): return _ops.atan2(self, other)
    def clamp(self, min=None, max=None): return _ops.clamp(self, min, max)
    def clip(self, min=None, max=None): return _ops.clamp(self, min, max)
    def silu(self): return _ops.silu(self)
    def softmax(self, dim, dtype=None): return _ops.softmax(self, dim, dtype=dtype)
    def log_softmax(self, dim, dtype=None): return _ops.log_softmax(self, dim, dtype=dtype)
    def prod(self, dim=None, keepdim=False, *, dtype=None): return _ops.prod(self, dim, keepdim, dtype=dtype)
    def var(self, dim=None, unbiased=None, keepdim=False, *, correction=None):
        return _ops.var(self, dim, unbiased, keepdim, correction=correction)
    def std(self, dim=None, unbiased=None, keepdim=False, *, correction=None):
        return _ops.std(self, dim, unbiased, keepdim, correction=correction)
    def max(self, dim=None, keepdim=False): return _ops.max(self, dim, keepdim)
    def min(self, dim=None, keepdim=False): return _ops.min(self, dim, keepdim)
    def amax(self, dim=(), keepdim=False): return _ops.amax(self, dim, keepdim)
    def amin(self, dim=(), keepdim=False): return _ops.amin(self, dim, keepdim)
    def argmax(self, dim=None, keepdim=False): return _ops.argmax(self, dim, keepdim)
    def argmin(self, dim=None, keepdim=False): return _ops.argmin(self, dim, keepdim)
    def logsumexp(self, dim=None, keepdim=False): return _ops.logsumexp(self, dim, keepdim)
    def norm(self, p="fro", dim=None, keepdim=False, dtype=None): return _ops.norm(self, p, dim, keepdim, dtype)
    def cumsum(self, dim, *, dtype=None): return _ops.cumsum(self, dim, dtype=dtype)
    def all(self, dim=None, keepdim=False): return _ops.all(self, dim, keepdim)
    def any(self, dim=None, keepdim=False): return _ops.any(self, dim, keepdim)
    def flatten(self, start_dim=0, end_dim=-1): return _ops.flatten(self, start_dim, end_dim)
    def unflatten(self, dim, sizes): return _ops.unflatten(self, dim, sizes)
    def squeeze(self, dim=None): return _ops.squeeze(self, dim)
    def unsqueeze(self, dim): return _ops.unsqueeze(self, dim)
    def split(self, split_size, dim=0): return _ops.split(self, split_size, dim)
    def chunk(self, chunks, dim=0): return _ops.chunk(self, chunks, dim)
    def unbind(self, dim=0): return _ops.unbind(self, dim)
    def flip(self, *dims): return _ops.flip(self, dims[0] if len(dims) == 1 and not isinstance(dims[0], int) else dims)
    def repeat(self, *sizes): return _ops.repeat(self, *sizes)
    def tile(self, *dims): return _ops.tile(self, dims[0] if len(dims) == 1 and not isinstance(dims[0], int) else dims)
    def roll(self, shifts, dims=None): return _ops.roll(self, shifts, dims)
    def narrow(self, dim, start, length): return _ops.narrow(self, dim, start, length)
    def movedim(self, source, destination): return _ops.movedim(self, source, destination)
    def moveaxis(self, source, destination): return _ops.movedim(self, source, destination)
    def swapaxes(self, axis0, axis1): return _ops.transpose(self, axis0, axis1)
    def swapdims(self, dim0, dim1): return _ops.transpose(self, dim0, dim1)
    def gather(self, dim, index): return _ops.gather(self, dim, index)
    def scatter(self, dim, index, src=None, *, value=None, reduce=None):
        return _ops.scatter(self, dim, index, src, value=value, reduce=reduce)
    def scatter_add(self, dim, index, src): return _ops.scatter_add(self, dim, index, src)
    def index_select(self, dim, index): return _ops.index_select(self, dim, index)
    def take_along_dim(self, indices, dim=None): return _ops.take_along_dim(self, indices, dim)
    def masked_fill(self, mask, value): return _ops.masked_fill(self, mask, value)
    def nonzero(self, *, as_tuple=False): return _ops.nonzero(self, as_tuple=as_tuple)

    # in place (bump the version counter; refused on leaves that require grad while recording)
    def clamp_(self, min=None, max=None): return _ops.clamp_(self, min, max)
    def clip_(self, min=None, max=None): return _ops.clamp_(self, min, max)
    def add_(self, other, *, alpha=1): return _ops.add_(self, other, alpha=alpha)
    def sub_(self, other, *, alpha=1): return _ops.sub_(self, other, alpha=alpha)
    def mul_(self, other): return _ops.mul_(self, other)
    def div_(self, other): return _ops.div_(self, other)
    def zero_(self): return _ops.zero_(self)
    def fill_(self, value): return _ops.fill_(self, value)
    def copy_(self, src): return _ops.copy_(self, src)


from . import ops as _ops  # noqa: E402
from . import autograd as _autograd  # noqa: E402
