"""``Tensor``: a numpy array plus what the tape needs. Thin by design.

This file dispatches: every method is a one-liner into ``tapegrad.ops`` (the math and its
gradients) or ``tapegrad.autograd`` (the tape). It holds no math and walks no graph.
"""
from __future__ import annotations

import numpy as np

from . import _C, _dtype


class Size(tuple):
    """A shape, as ``torch.Size``: what ``x.size()`` returns (``x.shape`` is the plain tuple,
    which compares equal to it)."""

    def numel(self) -> int:
        return int(np.prod(self, dtype=np.int64))

    def __getitem__(self, index):
        item = tuple.__getitem__(self, index)
        return Size(item) if isinstance(index, slice) else item

    def __repr__(self):
        return f"tapegrad.Size({list(self)})"


class Tensor(_C.TensorBase):
    """An n-dimensional array that can record the ops applied to it.

    >>> x = tapegrad.tensor([1.0, 2.0], requires_grad=True)
    >>> (x * x).sum().backward()
    >>> x.grad
    tensor([2., 4.])
    """

    # The tape's fields (_data, _requires_grad, grad, grad_fn, _version, _base, _retains_grad,
    # _hooks, weak references) and _wrap/_init_meta are C++'s: _C.TensorBase (csrc/tape.h).
    __slots__ = ()
    __array_priority__ = 1000  # numpy defers to our operators: ndarray * Tensor -> Tensor

    def __init__(self, data=None, *sizes, requires_grad=False):
        if sizes or type(data) is int or type(data) is Size:
            # PyTorch's legacy constructor Tensor(2, 3) / Tensor(Size): a float tensor of that shape
            # (old custom layers write nn.Parameter(torch.Tensor(out, in)) and then initialise it).
            # Zeros here, where PyTorch leaves memory uninitialised.
            shape = tuple(data) if not sizes and type(data) is not int else (data, *sizes)
            if not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in shape):
                raise TypeError(f"Tensor(*sizes): sizes must be non-negative ints, got {shape}")
            data = np.zeros(shape, _dtype.get_default_dtype())
        arr = np.asarray([] if data is None else data)
        if arr.dtype.kind in "fiu" and not isinstance(data, np.ndarray):
            arr = arr.astype(_dtype.get_default_dtype())
        self._data = arr
        self._init_meta()
        if requires_grad:
            self.requires_grad_(True)

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
        return Size(self._data.shape) if dim is None else self._data.shape[dim]

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

    def __dlpack__(self, *, stream=None, max_version=None, dl_device=None, copy=None):
        from .utils import dlpack  # zero-copy export to torch/jax/numpy (``from_dlpack``)
        return dlpack.export(self, stream, max_version, dl_device, copy)

    def __dlpack_device__(self): return self._data.__dlpack_device__()

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

    def __deepcopy__(self, memo):
        """``copy.deepcopy`` of a leaf (a Parameter stays a Parameter; ``.grad`` is copied too), as in
        PyTorch: ``best = copy.deepcopy(model.state_dict())``, ``ema = copy.deepcopy(model)``."""
        if self.grad_fn is not None:
            raise RuntimeError("Only Tensors created explicitly by the user (graph leaves) support the deepcopy "
                               "protocol at the moment. If you were attempting to deepcopy a module, this may be "
                               "because of a torch.nn.utils.weight_norm usage, see "
                               "https://github.com/pytorch/pytorch/pull/103001")
        if id(self) in memo:
            return memo[id(self)]
        new = type(self).__new__(type(self))
        new._data = self._data.copy()
        new._init_meta()
        if hasattr(self, "persistent"):  # a Buffer
            new.persistent = self.persistent
        new._requires_grad = self._requires_grad
        memo[id(self)] = new
        if self.grad is not None:
            new.grad = self.grad.__deepcopy__(memo)
        return new

    def __copy__(self):
        """``copy.copy``: a new leaf on the same data, as PyTorch's shallow copy."""
        new = type(self).__new__(type(self))
        new._data = self._data
        new._init_meta()
        new._version = self._version
        new._requires_grad = self._requires_grad
        return new

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

    def register_post_accumulate_grad_hook(self, hook):
        """Call ``hook(self)`` after backward has accumulated into this leaf's ``.grad``."""
        from .autograd import register_post_accumulate_grad_hook
        return register_post_accumulate_grad_hook(self, hook)

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
    def __and__(self, other): return _ops.bitwise_and(self, other)
    def __or__(self, other): return _ops.bitwise_or(self, other)
    def __xor__(self, other): return _ops.bitwise_xor(self, other)
    def __rand__(self, other): return _ops.bitwise_and(other, self)
    def __ror__(self, other): return _ops.bitwise_or(other, self)
    def __rxor__(self, other): return _ops.bitwise_xor(other, self)
    def bitwise_and(self, other): return _ops.bitwise_and(self, other)
    def bitwise_or(self, other): return _ops.bitwise_or(self, other)
    def bitwise_xor(self, other): return _ops.bitwise_xor(self, other)
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

    # ------------------------------------------------------------ PyTorch API for ported scripts
    def new_zeros(self, *size, dtype=None, requires_grad=False): return _ops.layout.new_like(self, "zeros", size, dtype, requires_grad)
    def new_ones(self, *size, dtype=None, requires_grad=False): return _ops.layout.new_like(self, "ones", size, dtype, requires_grad)
    def new_empty(self, *size, dtype=None, requires_grad=False): return _ops.layout.new_like(self, "empty", size, dtype, requires_grad)
    def new_full(self, size, fill_value, dtype=None, requires_grad=False): return _ops.layout.new_like(self, "full", size, dtype, requires_grad, fill_value)
    def new_tensor(self, data, dtype=None, requires_grad=False): return _ops.layout.new_like(self, "tensor", data, dtype, requires_grad)
    def byte(self): return _ops.cast(self, _dtype.uint8)
    def char(self): return _ops.cast(self, _dtype.int8)
    def short(self): return _ops.cast(self, _dtype.int16)
    def is_complex(self): return False
    def data_ptr(self): return self._data.ctypes.data
    def ravel(self): return _ops.reshape(self, -1)
    def isinf(self): return _ops.isinf(self)
    def equal(self, other): return _ops.equal(self, other)
    def allclose(self, other, rtol=1e-5, atol=1e-8, equal_nan=False): return _ops.allclose(self, other, rtol, atol, equal_nan)
    def isclose(self, other, rtol=1e-5, atol=1e-8, equal_nan=False): return _ops.isclose(self, other, rtol, atol, equal_nan)
    def masked_select(self, mask): return _ops.masked_select(self, mask)
    def take(self, index): return _ops.take(self, index)
    def nan_to_num(self, nan=0.0, posinf=None, neginf=None): return _ops.nan_to_num(self, nan, posinf, neginf)
    def sgn(self): return _ops.sgn(self)
    def exp2(self): return _ops.exp2(self)
    def log2(self): return _ops.log2(self)
    def log10(self): return _ops.log10(self)
    def sinh(self): return _ops.sinh(self)
    def cosh(self): return _ops.cosh(self)
    def asin(self): return _ops.asin(self)
    def acos(self): return _ops.acos(self)
    def atan(self): return _ops.atan(self)
    def asinh(self): return _ops.asinh(self)
    def acosh(self): return _ops.acosh(self)
    def atanh(self): return _ops.atanh(self)
    def arcsin(self): return _ops.asin(self)
    def arccos(self): return _ops.acos(self)
    def arctan(self): return _ops.atan(self)
    def logit(self, eps=None): return _ops.logit(self, eps)
    def erfinv(self): return _ops.erfinv(self)
    def erfc(self): return _ops.erfc(self)
    def frac(self): return _ops.frac(self)
    def hypot(self, other): return _ops.hypot(self, other)
    def logaddexp(self, other): return _ops.logaddexp(self, other)
    def remainder(self, other): return _ops.remainder(self, other)
    def fmod(self, other): return _ops.fmod(self, other)
    def floor_divide(self, other): return _ops.floor_divide(self, other)
    def lerp(self, end, weight): return _ops.lerp(self, end, weight)
    def addcmul(self, tensor1, tensor2, *, value=1): return _ops.addcmul(self, tensor1, tensor2, value=value)
    def addcdiv(self, tensor1, tensor2, *, value=1): return _ops.addcdiv(self, tensor1, tensor2, value=value)
    def __mod__(self, other): return _ops.remainder(self, other)
    def __rmod__(self, other): return _ops.remainder(other, self)
    def dot(self, other): return _ops.dot(self, other)
    def mv(self, vec): return _ops.mv(self, vec)
    def outer(self, vec2): return _ops.outer(self, vec2)
    def addmm(self, mat1, mat2, *, beta=1, alpha=1): return _ops.addmm(self, mat1, mat2, beta=beta, alpha=alpha)
    def baddbmm(self, batch1, batch2, *, beta=1, alpha=1): return _ops.baddbmm(self, batch1, batch2, beta=beta, alpha=alpha)
    def tril(self, diagonal=0): return _ops.tril(self, diagonal)
    def triu(self, diagonal=0): return _ops.triu(self, diagonal)
    def diag(self, diagonal=0): return _ops.diag(self, diagonal)
    def diagonal(self, offset=0, dim1=0, dim2=1): return _ops.diagonal(self, offset, dim1, dim2)
    def diag_embed(self, offset=0, dim1=-2, dim2=-1): return _ops.diag_embed(self, offset, dim1, dim2)
    def trace(self): return _ops.trace(self)
    def cross(self, other, dim=None): return _ops.cross(self, other, dim)
    def det(self): return _ops.det(self)
    def inverse(self): return _ops.inverse(self)
    def sort(self, dim=-1, descending=False, stable=False): return _ops.sort(self, dim, descending, stable)
    def argsort(self, dim=-1, descending=False, stable=False): return _ops.argsort(self, dim, descending, stable)
    def topk(self, k, dim=-1, largest=True, sorted=True): return _ops.topk(self, k, dim, largest, sorted)
    def kthvalue(self, k, dim=-1, keepdim=False): return _ops.kthvalue(self, k, dim, keepdim)
    def median(self, dim=None, keepdim=False): return _ops.median(self, dim, keepdim)
    def nanmedian(self, dim=None, keepdim=False): return _ops.nanmedian(self, dim, keepdim)
    def mode(self, dim=-1, keepdim=False): return _ops.mode(self, dim, keepdim)
    def unique(self, sorted=True, return_inverse=False, return_counts=False, dim=None): return _ops.unique(self, sorted, return_inverse, return_counts, dim)
    def cumprod(self, dim, *, dtype=None): return _ops.cumprod(self, dim, dtype=dtype)
    def cummax(self, dim): return _ops.cummax(self, dim)
    def cummin(self, dim): return _ops.cummin(self, dim)
    def nansum(self, dim=None, keepdim=False, *, dtype=None): return _ops.nansum(self, dim, keepdim, dtype=dtype)
    def nanmean(self, dim=None, keepdim=False, *, dtype=None): return _ops.nanmean(self, dim, keepdim, dtype=dtype)
    def repeat_interleave(self, repeats=None, dim=None, *, output_size=None): return _ops.repeat_interleave(self, repeats, dim)
    def rot90(self, k=1, dims=(0, 1)): return _ops.rot90(self, k, dims)
    def unfold(self, dimension, size, step): return _ops.unfold(self, dimension, size, step)
    def index_add(self, dim, index, source, *, alpha=1): return _ops.index_add(self, dim, index, source, alpha=alpha)
    def index_fill(self, dim, index, value): return _ops.index_fill(self, dim, index, value)
    def relu_(self): return _ops.relu_(self)
    def exp_(self): return _ops.exp_(self)
    def log_(self): return _ops.log_(self)
    def sqrt_(self): return _ops.sqrt_(self)
    def abs_(self): return _ops.abs_(self)
    def neg_(self): return _ops.neg_(self)
    def sigmoid_(self): return _ops.sigmoid_(self)
    def tanh_(self): return _ops.tanh_(self)
    def sin_(self): return _ops.sin_(self)
    def cos_(self): return _ops.cos_(self)
    def floor_(self): return _ops.floor_(self)
    def round_(self): return _ops.round_(self)
    def reciprocal_(self): return _ops.reciprocal_(self)
    def square_(self): return _ops.square_(self)
    def sign_(self): return _ops.sign_(self)
    def log1p_(self): return _ops.log1p_(self)
    def expm1_(self): return _ops.expm1_(self)
    def rsqrt_(self): return _ops.rsqrt_(self)
    def frac_(self): return _ops.frac_(self)
    def pow_(self, exponent): return _ops.pow_(self, exponent)
    def masked_fill_(self, mask, value): return _ops.masked_fill_(self, mask, value)
    def scatter_(self, dim, index, src=None, *, value=None, reduce=None): return _ops.scatter_(self, dim, index, src, value=value, reduce=reduce)
    def scatter_add_(self, dim, index, src): return _ops.scatter_add_(self, dim, index, src)
    def index_add_(self, dim, index, source, *, alpha=1): return _ops.index_add_(self, dim, index, source, alpha=alpha)
    def index_fill_(self, dim, index, value): return _ops.index_fill_(self, dim, index, value)
    def addcmul_(self, tensor1, tensor2, *, value=1): return _ops.addcmul_(self, tensor1, tensor2, value=value)
    def addcdiv_(self, tensor1, tensor2, *, value=1): return _ops.addcdiv_(self, tensor1, tensor2, value=value)
    def lerp_(self, end, weight): return _ops.lerp_(self, end, weight)
    def addmm_(self, mat1, mat2, *, beta=1, alpha=1): return _ops.addmm_(self, mat1, mat2, beta=beta, alpha=alpha)
    def baddbmm_(self, batch1, batch2, *, beta=1, alpha=1): return _ops.baddbmm_(self, batch1, batch2, beta=beta, alpha=alpha)
    def nan_to_num_(self, nan=0.0, posinf=None, neginf=None): return _ops.nan_to_num_(self, nan, posinf, neginf)
    def tril_(self, diagonal=0): return _ops.tril_(self, diagonal)
    def triu_(self, diagonal=0): return _ops.triu_(self, diagonal)
    def uniform_(self, a=0.0, b=1.0, *, generator=None): return _ops.uniform_(self, a, b, generator=generator)
    def normal_(self, mean=0.0, std=1.0, *, generator=None): return _ops.normal_(self, mean, std, generator=generator)
    def bernoulli_(self, p=0.5, *, generator=None): return _ops.bernoulli_(self, p, generator=generator)
    def exponential_(self, lambd=1.0, *, generator=None): return _ops.exponential_(self, lambd, generator=generator)
    def random_(self, from_=0, to=None, *, generator=None): return _ops.random_(self, from_, to, generator=generator)
    def unsqueeze_(self, dim): return _ops.unsqueeze_(self, dim)
    def squeeze_(self, dim=None): return _ops.squeeze_(self, dim)
    def t_(self): return _ops.t_(self)
    def transpose_(self, dim0, dim1): return _ops.transpose_(self, dim0, dim1)

    # more of PyTorch's Tensor API (tapegrad.ops.composite)
    def absolute(self): return _ops.abs(self)
    def negative(self): return _ops.neg(self)
    def positive(self): return self
    def multiply(self, other): return _ops.mul(self, other)
    def subtract(self, other, *, alpha=1): return _ops.sub(self, other, alpha=alpha)
    def divide(self, other, *, rounding_mode=None): return _ops.div(self, other, rounding_mode=rounding_mode)
    def true_divide(self, other): return _ops.div(self, other)
    def clamp_min(self, min): return _ops.clamp(self, min=min)
    def clamp_max(self, max): return _ops.clamp(self, max=max)
    def tan(self): return _ops.tan(self)
    def deg2rad(self): return _ops.deg2rad(self)
    def rad2deg(self): return _ops.rad2deg(self)
    def sinc(self): return _ops.sinc(self)
    def signbit(self): return _ops.signbit(self)
    def copysign(self, other): return _ops.copysign(self, other)
    def float_power(self, exponent): return _ops.float_power(self, exponent)
    def heaviside(self, values): return _ops.heaviside(self, values)
    def xlogy(self, other): return _ops.xlogy(self, other)
    def logaddexp2(self, other): return _ops.logaddexp2(self, other)
    def fmax(self, other): return _ops.fmax(self, other)
    def fmin(self, other): return _ops.fmin(self, other)
    def isneginf(self): return _ops.isneginf(self)
    def isposinf(self): return _ops.isposinf(self)
    def logical_xor(self, other): return _ops.logical_xor(self, other)
    def count_nonzero(self, dim=None): return _ops.count_nonzero(self, dim)
    def aminmax(self, *, dim=None, keepdim=False): return _ops.aminmax(self, dim=dim, keepdim=keepdim)
    def logcumsumexp(self, dim): return _ops.logcumsumexp(self, dim)
    def diff(self, n=1, dim=-1, prepend=None, append=None): return _ops.diff(self, n, dim, prepend, append)
    def bincount(self, weights=None, minlength=0): return _ops.bincount(self, weights, minlength)
    def histc(self, bins=100, min=0, max=0): return _ops.histc(self, bins, min, max)
    def quantile(self, q, dim=None, keepdim=False, *, interpolation="linear"): return _ops.quantile(self, q, dim, keepdim, interpolation=interpolation)
    def msort(self): return _ops.msort(self)
    def tensor_split(self, indices_or_sections, dim=0): return _ops.tensor_split(self, indices_or_sections, dim)
    def hsplit(self, sections): return _ops.hsplit(self, sections)
    def vsplit(self, sections): return _ops.vsplit(self, sections)
    def select(self, dim, index): return _ops.select(self, dim, index)
    def inner(self, other): return _ops.inner(self, other)
    def kron(self, other): return _ops.kron(self, other)
    def addr(self, vec1, vec2, *, beta=1, alpha=1): return _ops.addr(self, vec1, vec2, beta=beta, alpha=alpha)
    def ger(self, vec2): return _ops.outer(self, vec2)
    def matrix_power(self, n): return _ops.matrix_power(self, n)
    def dist(self, other, p=2): return _ops.dist(self, other, p)
    def cov(self, *, correction=1, fweights=None, aweights=None): return _ops.cov(self, correction=correction, fweights=fweights, aweights=aweights)
    def corrcoef(self): return _ops.corrcoef(self)
    def index_copy(self, dim, index, source): return _ops.index_copy(self, dim, index, source)
    def unique_consecutive(self, return_inverse=False, return_counts=False, dim=None): return _ops.unique_consecutive(self, return_inverse, return_counts, dim)
    def bernoulli(self, *, generator=None): return _ops_creation().bernoulli(self, generator=generator)
    def multinomial(self, num_samples, replacement=False, *, generator=None): return _ops_creation().multinomial(self, num_samples, replacement, generator=generator)
    def ndimension(self) -> int: return self._data.ndim
    def get_device(self) -> int: return -1
    def pin_memory(self, device=None): return self
    def share_memory_(self): return self
    def is_shared(self) -> bool: return False
    def is_pinned(self, device=None) -> bool: return False
    @property
    def H(self): return _ops.transpose(self, 0, 1) if self.ndim == 2 else self
    @property
    def mH(self): return _ops.transpose(self, -2, -1)
    def ceil_(self): return _ops.ceil_(self)
    def trunc_(self): return _ops.trunc_(self)
    def fix_(self): return _ops.fix_(self)
    def erf_(self): return _ops.erf_(self)
    def tan_(self): return _ops.tan_(self)
    def clamp_min_(self, min): return _ops.clamp_min_(self, min)
    def clamp_max_(self, max): return _ops.clamp_max_(self, max)
    def cumsum_(self, dim): return _ops.cumsum_(self, dim)
    def xlogy_(self, other): return _ops.xlogy_(self, other)
    def copysign_(self, other): return _ops.copysign_(self, other)
    def deg2rad_(self): return _ops.deg2rad_(self)
    def rad2deg_(self): return _ops.rad2deg_(self)
    def index_copy_(self, dim, index, source): return _ops.index_copy_(self, dim, index, source)
    def remainder_(self, other): return _ops.remainder_(self, other)
    def fmod_(self, other): return _ops.fmod_(self, other)
    def eq_(self, other): return _ops.eq_(self, other)
    def ne_(self, other): return _ops.ne_(self, other)
    def lt_(self, other): return _ops.lt_(self, other)
    def le_(self, other): return _ops.le_(self, other)
    def gt_(self, other): return _ops.gt_(self, other)
    def ge_(self, other): return _ops.ge_(self, other)
    def logical_not_(self): return _ops.logical_not_(self)
    def fill_diagonal_(self, fill_value, wrap=False): return _ops.fill_diagonal_(self, fill_value, wrap)
    def lgamma(self): return _ops.lgamma(self)
    def digamma(self): return _ops.digamma(self)
    def polygamma(self, n): return _ops.polygamma(n, self)
    def scatter_reduce(self, dim, index, src, reduce, *, include_self=True): return _ops.scatter_reduce(self, dim, index, src, reduce, include_self=include_self)  # noqa: E501
    def scatter_reduce_(self, dim, index, src, reduce, *, include_self=True): return _ops.scatter_reduce_(self, dim, index, src, reduce, include_self=include_self)  # noqa: E501
    def masked_scatter(self, mask, source): return _ops.masked_scatter(self, mask, source)
    def masked_scatter_(self, mask, source): return _ops.masked_scatter_(self, mask, source)


_C._set_tensor_class(Tensor)  # what the tape creates (apply's results, gradients)

from . import ops as _ops  # noqa: E402


def _ops_creation():
    from . import creation
    return creation


from . import autograd as _autograd  # noqa: E402
