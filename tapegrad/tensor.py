"""``Tensor``: a numpy array plus what the tape needs. Thin by design.

This file dispatches and holds no math and walks no graph. The methods that are ops (``x.exp()``,
``x.add_(y)``) are the ops' own functions, installed from their declarations (``ops/surface.py``);
written out here are the operators, the metadata, conversion and autograd methods, and the
methods whose signature differs from their op's (``x.flip(0, 1)``, ``x.max(dim)``).
"""
from __future__ import annotations

import copy
import operator
import threading
import warnings
import weakref

import numpy as np

from multiprocessing.reduction import ForkingPickler as _ForkingPickler

from . import _C, _dtype, _shared
from . import ops as _ops
from . import storage as _storage
from ._tape import engine as _engine
from .device import check_memory_format as _check_memory_format, cpu as _cpu

_plain = _ops.plain  # the ops without their out= wrappers


class Size(_C.SizeBase):
    """A shape, as ``torch.Size``: what ``x.shape`` and ``x.size()`` return. A tuple (equal and
    hashing alike to the plain one, accepted wherever numpy or h5py take a shape) whose slices,
    sums and repeats stay ``Size``, as PyTorch's do.

    ``Size(sizes)`` checks that every item is an integer (``__index__``: ints, numpy integers,
    one-element integer tensors), as PyTorch's does. ``x.shape`` runs everywhere, so the C type
    builds it from the array's head without those checks, and indexing (``x.shape[-1]``, slices
    that stay ``Size``) is ``_C.SizeBase``'s, in C."""

    __slots__ = ()

    def __new__(cls, sizes=()):
        items = []
        for i, n in enumerate(sizes):
            if isinstance(n, int) or hasattr(type(n), "__index__") and not isinstance(n, (float, np.floating)):
                try:
                    items.append(operator.index(n))
                    continue
                except TypeError:
                    pass
            raise TypeError(f"tapegrad.Size() takes an iterable of 'int' (item {i} is '{type(n).__name__}')")
        return tuple.__new__(cls, items)

    def numel(self) -> int:
        return int(np.prod(self, dtype=np.int64))

    def __add__(self, other):
        if not isinstance(other, tuple):
            raise TypeError(f"can only concatenate tuple (not {type(other).__name__}) to tapegrad.Size")
        return tuple.__new__(Size, tuple.__add__(self, other))

    def __radd__(self, other):
        if not isinstance(other, tuple):
            return NotImplemented
        return tuple.__new__(Size, tuple.__add__(other, self))

    def __mul__(self, n):
        return tuple.__new__(Size, tuple.__mul__(self, n))

    __rmul__ = __mul__

    def __repr__(self):
        return f"tapegrad.Size({list(self)})"

    def __reduce__(self):
        return Size, (tuple(self),)


_C._set_size_class(Size)  # x.shape (a C getter) returns a Size
_C._set_dtype_map(_dtype._PUBLIC, _dtype.public)  # x.dtype (a C getter) returns a tapegrad.dtype

# Attributes a program sets on a tensor (``x.name = ...``, a library's ``param.unconstrained``):
# tapegrad.Tensor has no __dict__ (a dict would put every tensor in the cycle collector: see
# csrc/tape_gc.cpp), so the C type's attribute lookup and assignment fall back to this side
# table, keyed by the tensor's id, only for names its fields refuse (csrc/tape_types.cpp,
# tensor_getattro); a weak reference's callback drops a tensor's entry when it dies. Subclasses
# with a __dict__ (nn.Parameter, user subclasses) keep their own. An attribute that refers back
# to its own tensor keeps both alive.
_EXTRA: dict = {}  # id(tensor) -> (weak reference to it, {name: value})
_EXTRA_LOCK = threading.Lock()


def _forget(ref, key):
    entry = _EXTRA.get(key)
    if entry is not None and entry[0] is ref:
        del _EXTRA[key]


def _extra(t, create=False):
    """``t``'s attribute dict in the side table (None without one, unless ``create``)."""
    entry = _EXTRA.get(id(t))
    if entry is not None and entry[0]() is t:
        return entry[1]
    if not create:
        return None
    with _EXTRA_LOCK:  # two threads giving one tensor its first attributes make one dict
        entry = _EXTRA.get(id(t))
        if entry is not None and entry[0]() is t:
            return entry[1]
        attrs: dict = {}
        key = id(t)
        _EXTRA[key] = (weakref.ref(t, lambda r, k=key: _forget(r, k)), attrs)
        return attrs


def _get_attribute(t, name):
    attrs = _extra(t)
    if attrs is not None and name in attrs:
        return attrs[name]
    raise AttributeError(f"'{type(t).__name__}' object has no attribute '{name}'")


def _set_attribute(t, name, value):
    _extra(t, create=True)[name] = value


def _del_attribute(t, name):
    attrs = _extra(t)
    if attrs is None or name not in attrs:
        raise AttributeError(f"'{type(t).__name__}' object has no attribute '{name}'")
    del attrs[name]


_C._set_attribute_store((_get_attribute, _set_attribute, _del_attribute))


def extra_attributes(t) -> dict:
    """The attributes set on ``t`` beyond its fields (a copy), for pickling and deep copies."""
    attrs = _extra(t)
    return dict(attrs) if attrs else {}

def _one_sequence(dims, kw, opname):
    """``x.flip(0, 1)``, ``x.flip((0, 1))`` or ``x.flip(dims=(0, 1))``: the dims as one sequence."""
    unknown = set(kw) - {"dims"}
    if unknown:
        raise TypeError(f"{opname}() got an unexpected keyword argument {sorted(unknown)[0]!r}")
    dims = _ops._util.sizes_or_keyword(dims, kw.get("dims"), "dims", opname)
    return dims[0] if len(dims) == 1 and not isinstance(dims[0], int) else dims


def _dims_or_all(dims, kw, opname):
    """``x.squeeze()``, ``x.squeeze(0)``, ``x.squeeze(0, 1)``, ``x.squeeze((0, 1))`` or
    ``x.squeeze(dim=0)``: None (every dim), one dim or a tuple of them."""
    unknown = set(kw) - {"dim"}
    if unknown:
        raise TypeError(f"{opname}() got an unexpected keyword argument {sorted(unknown)[0]!r}")
    if "dim" in kw:
        if dims:
            raise TypeError(f"{opname}() got multiple values for argument 'dim'")
        return kw["dim"]
    return None if not dims else dims[0] if len(dims) == 1 else dims


def _sections_or_indices(args, kw, opname):
    """``x.hsplit(2)``, ``x.hsplit([1, 3])``, ``x.hsplit(1, 3)`` or by keyword (``sections=``,
    ``indices=``): the sections (an int) or the split indices (a list)."""
    named = [k for k in ("sections", "indices", "indices_or_sections") if k in kw]
    unknown = set(kw) - set(named)
    if unknown:
        raise TypeError(f"{opname}() got an unexpected keyword argument {sorted(unknown)[0]!r}")
    if len(named) + bool(args) != 1:
        raise TypeError(f"{opname}() takes the sections or the indices: one int, a list of ints or ints as "
                        f"arguments (got {len(args)} positional and keywords {named})")
    if named:
        return kw[named[0]]
    return args[0] if len(args) == 1 else list(args)

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
            data = np.zeros(shape, _dtype.default_float())
        arr = np.asarray([] if data is None else data)
        if arr.dtype.kind == "c" and not isinstance(data, Tensor):  # the legacy constructor is real-only
            raise TypeError("Tensor(): must be real number, not complex (use tapegrad.tensor for complex data)")
        if (_dtype.kind_of(arr.dtype) in "biuf" or _dtype.is_floating(arr.dtype)) and not isinstance(data, Tensor):
            # PyTorch's legacy constructor: numbers and arrays become the default dtype (sharing an
            # array already of it); a tensor keeps its own
            arr = arr.astype(_dtype.default_float(), copy=False)
        self._data = arr
        self._init_meta()
        if requires_grad:
            self.requires_grad_(True)

    # ------------------------------------------------------------ metadata
    @property
    def device(self):
        return _cpu

    @property
    def is_cuda(self) -> bool:
        return False

    @property
    def is_cpu(self) -> bool:
        """True: every tapegrad tensor lives in host memory (``x.device`` is ``cpu``)."""
        return True

    # PyTorch's other device and layout predicates: none of those backends or formats exists here
    is_meta = is_mps = is_xpu = is_xla = is_ipu = is_hpu = is_vulkan = is_maia = is_mtia = is_mkldnn = property(
        lambda self: False, doc="False: tapegrad tensors are dense CPU tensors (see ``is_cpu``).")
    is_quantized = is_nested = property(lambda self: False, doc="False: tapegrad has no quantized or nested tensors.")

    @property
    def is_sparse(self) -> bool:
        """Whether the layout is sparse COO (``tapegrad.sparse.SparseTensor`` overrides it)."""
        return False

    @property
    def layout(self):
        """``tapegrad.strided`` (dense), or ``tapegrad.sparse_coo`` for a sparse tensor."""
        return _ops.sparse.strided

    @property
    def is_leaf(self) -> bool:
        return self.grad_fn is None

    def is_floating_point(self) -> bool:
        return _dtype.is_floating(self._data.dtype)

    @property
    def requires_grad(self) -> bool:
        return self._requires_grad

    @requires_grad.setter
    def requires_grad(self, flag: bool):
        self.requires_grad_(flag)

    @property
    def data(self) -> "Tensor":
        """The same storage, detached from the tape, with a version counter of its own: unlike
        ``detach()``, in-place changes made through ``.data`` (old code's ``w.data.clamp_()``,
        ``u.data.copy_()``) escape autograd's check, and backward sees the new values, as PyTorch's."""
        return Tensor._wrap(self._data)

    @data.setter
    def data(self, value: "Tensor"):
        # PyTorch takes a tensor only; a numpy array is taken too (tapegrad's storage), if it is one
        # a tensor could hold: a str or object array, or a list, would fail later in some other op
        if isinstance(value, Tensor):
            self._data = value._data
        elif isinstance(value, np.ndarray) and _dtype.kind_of(value.dtype) in "biufc":
            self._data = value if value.dtype.isnative else value.astype(value.dtype.newbyteorder("="))
        else:
            raise TypeError(f"Tensor.data: data has to be a tensor (or a numeric numpy array), but got "
                            f"{type(value).__name__}" + (f" of dtype {value.dtype}" if isinstance(value, np.ndarray)
                                                         else ""))

    @property
    def T(self) -> "Tensor":
        nd = self._data.ndim
        return _plain.transpose(self, 0, 1) if nd == 2 else _plain.permute(self, tuple(reversed(range(nd))))

    @property
    def mT(self) -> "Tensor":
        return _plain.transpose(self, -2, -1)

    @property
    def itemsize(self) -> int:
        return self._data.itemsize

    @property
    def nbytes(self) -> int:
        return self._data.nbytes

    def size(self, dim=None):
        return self.shape if dim is None else self._data.shape[dim]

    # dim(), ndimension(), numel(), nelement() and ndim are _C.TensorBase's (read from the array's head)

    def element_size(self) -> int:
        return self._data.itemsize

    def stride(self, dim=None):
        s = tuple(b // self._data.itemsize for b in self._data.strides)
        return s if dim is None else s[dim]

    def is_contiguous(self, memory_format=None) -> bool:
        """Whether the elements lie in memory in the order of ``memory_format`` (C order by
        default; ``channels_last``: N, H, W, C)."""
        _check_memory_format(memory_format, "is_contiguous")
        if memory_format is None or memory_format.ndim is None:
            return self._data.flags.c_contiguous
        return self._data.ndim == memory_format.ndim and np.moveaxis(self._data, 1, -1).flags.c_contiguous

    def __len__(self) -> int:
        if self._data.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self._data.shape[0]

    def __repr__(self) -> str:
        return _ops.format_tensor(self)

    def __format__(self, spec: str) -> str:
        """``f"{loss:.4f}"`` formats the number of a 0-d tensor, as PyTorch does; any other tensor
        takes only the empty spec (its repr). Unlike PyTorch, a 0-d ``Parameter`` formats too
        (PyTorch refuses every subclass)."""
        if self._data.ndim == 0:
            return self._data.item().__format__(spec)
        return object.__format__(self, spec)

    # ------------------------------------------------------------ conversion
    def numpy(self, *, force=False) -> np.ndarray:
        """The underlying array (shared memory). Refused on a tensor that requires grad while grad mode
        is on, as in PyTorch (an ``autograd.Function``'s or custom op's forward runs with it off)."""
        if self._requires_grad and not force and _C.is_grad_enabled():
            raise RuntimeError("Can't call numpy() on Tensor that requires grad. Use tensor.detach().numpy() "
                               "instead.")
        return self._data

    def __array__(self, dtype=None, copy=None):
        return self._data if dtype is None else self._data.astype(dtype, copy=False)

    def __dlpack__(self, *, stream=None, max_version=None, dl_device=None, copy=None):
        """numpy's DLPack capsule for the array (zero-copy export to torch/jax/numpy), after PyTorch's checks."""
        if self._requires_grad:
            raise RuntimeError("Can't export tensors that require gradient, use tensor.detach()")
        if stream not in (None, -1):  # -1: "no synchronisation", what PyTorch passes for CPU tensors
            raise BufferError(f"Tensor.__dlpack__: stream={stream!r}, but tapegrad tensors live on the CPU, which "
                              f"has no streams (pass stream=None)")
        return self._data.__dlpack__(stream=None, max_version=max_version, dl_device=dl_device, copy=copy)

    def __dlpack_device__(self): return self._data.__dlpack_device__()

    def item(self):
        if self._data.size != 1:
            raise RuntimeError(f"a Tensor with {self._data.size} elements cannot be converted to Scalar")
        return self._data.reshape(()).item()

    def tolist(self):
        return self._data.tolist()

    def __float__(self):
        return float(self._one_element())

    def __complex__(self):
        return complex(self._one_element())

    def __int__(self):
        return int(self._one_element())

    def _one_element(self):
        """``float(t)``, ``int(t)``: ValueError for several elements, as PyTorch's (``item()`` raises
        RuntimeError there, also as PyTorch's)."""
        if self._data.size != 1:
            raise ValueError(f"only one element tensors can be converted to Python scalars (got {self._data.size} "
                             f"elements, shape {tuple(self._data.shape)})")
        return self._data.reshape(()).item()

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

    def __contains__(self, element):
        """``element in t``: whether any element of ``t`` equals ``element`` (a number or a
        tensor), as PyTorch's; without it Python iterated and asked ``bool`` of each row."""
        if isinstance(element, (Tensor, int, float, complex, bool, np.number, np.bool_)):
            return bool((self == element).any())
        raise RuntimeError(f"Tensor.__contains__ only supports Tensor or scalar, but you passed in a "
                           f"{type(element).__name__}.")

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        _ForkingPickler.register(cls, _reduce_for_processes)  # (its table is by exact type)

    def __reduce_ex__(self, protocol):
        """``pickle``: the values (a copy), ``requires_grad`` and a subclass's attributes, as
        PyTorch pickles a tensor (not its ``.grad`` nor its graph: a non-leaf comes back a leaf).
        Loading a pickle runs what it names, as any pickle does: checkpoints go through
        ``tapegrad.save`` / ``tapegrad.load``, which never unpickle."""
        return _shared._rebuild_tensor, (type(self), self._data, self._requires_grad,
                                         _shared._slot_state(self) + list(extra_attributes(self).items()))

    def __deepcopy__(self, memo):
        """``copy.deepcopy`` of a leaf (a Parameter stays a Parameter, without ``.grad``; a plain
        tensor's ``.grad`` is copied too), as in PyTorch: ``best = copy.deepcopy(model.state_dict())``,
        ``ema = copy.deepcopy(model)``."""
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
        for k, v in extra_attributes(self).items():  # attributes come along, as PyTorch's
            setattr(new, k, copy.deepcopy(v, memo))
        return new

    def __copy__(self):
        """``copy.copy``: a new leaf on the same data, as PyTorch's shallow copy."""
        new = type(self).__new__(type(self))
        new._data = self._data
        new._init_meta()
        new._version_box = self._version_box
        new._requires_grad = self._requires_grad
        return new

    def to(self, *args, **kwargs) -> "Tensor":
        """``to(dtype)``, ``to(device)``, ``to(device, dtype)`` or ``to(other_tensor)``."""
        return _ops.to(self, *args, **kwargs)

    def cpu(self) -> "Tensor":
        return self

    def cuda(self, *args, **kwargs):
        raise RuntimeError("tapegrad runs on the CPU only: CUDA is not available")

    def _cast_to(self, dtype, memory_format, name):
        """The dtype-named casts (``float()``, ``long()``, ...): PyTorch's accept a memory_format."""
        _check_memory_format(memory_format, name, self.ndim)
        return _plain.cast(self, dtype)

    def float(self, memory_format=None):
        return self._cast_to(_dtype.float32, memory_format, "float")

    def double(self, memory_format=None):
        return self._cast_to(_dtype.float64, memory_format, "double")

    def half(self, memory_format=None):
        return self._cast_to(_dtype.float16, memory_format, "half")

    def cfloat(self, memory_format=None):
        return self._cast_to(_dtype.complex64, memory_format, "cfloat")

    def cdouble(self, memory_format=None):
        return self._cast_to(_dtype.complex128, memory_format, "cdouble")

    def bfloat16(self, memory_format=None):
        if _dtype.bfloat16 is None:
            raise TypeError(_dtype.BFLOAT16_MISSING)
        return self._cast_to(_dtype.bfloat16, memory_format, "bfloat16")

    def long(self, memory_format=None):
        return self._cast_to(_dtype.int64, memory_format, "long")

    def int(self, memory_format=None):
        return self._cast_to(_dtype.int32, memory_format, "int")

    def bool(self, memory_format=None):
        return self._cast_to(_dtype.bool_, memory_format, "bool")

    def type(self, dtype=None, non_blocking=False, **kwargs):
        """Without ``dtype``, PyTorch's legacy type name (``'tapegrad.FloatTensor'``); else ``self``
        cast to ``dtype`` (a dtype, a name, or a legacy type: ``LongTensor``, ``'torch.LongTensor'``)."""
        if dtype is None:
            name = self._data.dtype.name
            return "tapegrad." + _dtype.LEGACY_NAMES.get(name, name)
        return _plain.cast(self, dtype)

    def type_as(self, other):
        return _plain.cast(self, other._data.dtype)

    def view_as(self, other):
        return _plain.view(self, other.shape)

    def reshape_as(self, other):
        return _plain.reshape(self, other.shape)

    def expand_as(self, other):
        return _plain.expand(self, other.shape)

    # ------------------------------------------------------------ autograd
    def backward(self, gradient=None, retain_graph=None, create_graph=False, inputs=None):
        """Accumulate d(self)/d(leaf) into every leaf's ``.grad``."""
        _engine.backward(self, gradient, retain_graph, create_graph, inputs)

    def requires_grad_(self, requires_grad: bool = True) -> "Tensor":
        if requires_grad and not (_dtype.is_floating(self._data.dtype) or self._data.dtype.kind == "c"):
            raise RuntimeError(f"only Tensors of floating point and complex dtype can require gradients, got "
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
        t._version_box = self._version_box
        return t

    def detach_(self) -> "Tensor":
        self.grad_fn = None
        self._requires_grad = False
        return self

    def retain_grad(self) -> None:
        """Keep ``.grad`` on a non-leaf tensor after backward."""
        _engine.retain_grad(self)

    @property
    def retains_grad(self) -> bool:
        return self._retains_grad

    def register_hook(self, hook):
        """Call ``hook(grad)`` when this tensor's gradient is computed; it may return a replacement."""
        return _engine.register_hook(self, hook)

    def register_post_accumulate_grad_hook(self, hook):
        """Call ``hook(self)`` after backward has accumulated into this leaf's ``.grad``."""
        return _engine.register_post_accumulate_grad_hook(self, hook)

    # ------------------------------------------------------------ operators
    def __add__(self, other): return _plain.add(self, other)
    def __radd__(self, other): return _plain.add(other, self)
    def __sub__(self, other): return _plain.sub(self, other)
    def __rsub__(self, other): return _plain.sub(other, self)
    def __mul__(self, other): return _plain.mul(self, other)
    def __rmul__(self, other): return _plain.mul(other, self)
    def __truediv__(self, other): return _plain.div(self, other)
    def __rtruediv__(self, other): return _plain.div(other, self)
    def __floordiv__(self, other): return _plain.div(self, other, rounding_mode="floor")
    def __rfloordiv__(self, other): return _plain.div(other, self, rounding_mode="floor")
    def __pow__(self, other): return _plain.pow(self, other)
    def __rpow__(self, other): return _plain.pow(other, self)
    def __matmul__(self, other): return _plain.matmul(self, other) if isinstance(other, Tensor) else NotImplemented
    def __rmatmul__(self, other): return _plain.matmul(other, self) if isinstance(other, Tensor) else NotImplemented
    def __neg__(self): return _plain.neg(self)
    def __pos__(self): return _plain.positive(self)
    def __abs__(self): return _plain.abs(self)
    def __invert__(self): return _plain.bitwise_not(self)
    def __and__(self, other): return _plain.bitwise_and(self, other)
    def __or__(self, other): return _plain.bitwise_or(self, other)
    def __xor__(self, other): return _plain.bitwise_xor(self, other)
    def __rand__(self, other): return _plain.bitwise_and(other, self)
    def __ror__(self, other): return _plain.bitwise_or(other, self)
    def __rxor__(self, other): return _plain.bitwise_xor(other, self)
    def __lshift__(self, other): return _plain.bitwise_left_shift(self, other)
    def __rshift__(self, other): return _plain.bitwise_right_shift(self, other)
    def __rlshift__(self, other): return _plain.bitwise_left_shift(other, self)
    def __rrshift__(self, other): return _plain.bitwise_right_shift(other, self)
    def __eq__(self, other): return _plain.eq(self, other)
    def __ne__(self, other): return _plain.ne(self, other)
    def __lt__(self, other): return _plain.lt(self, other)
    def __le__(self, other): return _plain.le(self, other)
    def __gt__(self, other): return _plain.gt(self, other)
    def __ge__(self, other): return _plain.ge(self, other)
    def __getitem__(self, index): return _plain.getitem(self, index)
    def __setitem__(self, index, value): _plain.setitem(self, index, value)

    def __iadd__(self, other): return _plain.add_(self, other)
    def __isub__(self, other): return _plain.sub_(self, other)
    def __imul__(self, other): return _plain.mul_(self, other)
    def __itruediv__(self, other): return _plain.div_(self, other)
    def __ifloordiv__(self, other): return _plain.floor_divide_(self, other)
    def __imod__(self, other): return _plain.remainder_(self, other)
    def __ipow__(self, other): return _plain.pow_(self, other)
    def __iand__(self, other): return _plain.bitwise_and_(self, other)
    def __ior__(self, other): return _plain.bitwise_or_(self, other)
    def __ixor__(self, other): return _plain.bitwise_xor_(self, other)
    def __ilshift__(self, other): return _plain.bitwise_left_shift_(self, other)
    def __irshift__(self, other): return _plain.bitwise_right_shift_(self, other)

    # ------------------------------------------------------------ methods whose signature differs from their op's
    def sum_to_size(self, *size, **kw): return _plain.sum_to_size(self, *size, **kw)
    def broadcast_to(self, shape): return _plain.expand(self, shape)
    def where(self, condition, other): return _plain.where(condition, self, other)

    def silu(self): return _plain.silu(self)
    # (the ops themselves: these methods take no axis=, so the public functions' alias wrapper is skipped)
    def softmax(self, dim, dtype=None): return _ops.activation.softmax(self, dim, dtype=dtype)
    def log_softmax(self, dim, dtype=None): return _ops.activation.log_softmax(self, dim, dtype=dtype)
    def split(self, split_size, dim=0): return _plain.split(self, split_size, dim)
    def flip(self, *dims, **kw): return _plain.flip(self, _one_sequence(dims, kw, "flip"))
    def repeat(self, *sizes, repeats=None): return _plain.repeat(self, *sizes, repeats=repeats)
    def tile(self, *dims, **kw): return _plain.tile(self, _one_sequence(dims, kw, "tile"))
    def swapaxes(self, axis0, axis1): return _plain.transpose(self, axis0, axis1)
    def swapdims(self, dim0, dim1): return _plain.transpose(self, dim0, dim1)
    def squeeze(self, *dim, **kw): return _plain.squeeze(self, _dims_or_all(dim, kw, "squeeze"))
    def squeeze_(self, *dim, **kw): return _plain.squeeze_(self, _dims_or_all(dim, kw, "squeeze_"))
    def count_nonzero(self, *dim, **kw): return _plain.count_nonzero(self, _dims_or_all(dim, kw, "count_nonzero"))

    # ------------------------------------------------------------ PyTorch API for ported scripts
    def new_zeros(self, *args, size=None, dtype=None, device=None, requires_grad=False, layout=None, pin_memory=False): return _ops.creation.new_sized(self, "zeros", args, size, dtype, requires_grad, device, layout, pin_memory)
    def new_ones(self, *args, size=None, dtype=None, device=None, requires_grad=False, layout=None, pin_memory=False): return _ops.creation.new_sized(self, "ones", args, size, dtype, requires_grad, device, layout, pin_memory)
    def new_empty(self, *args, size=None, dtype=None, device=None, requires_grad=False, layout=None, pin_memory=False): return _ops.creation.new_sized(self, "empty", args, size, dtype, requires_grad, device, layout, pin_memory)
    def new_full(self, size, fill_value, *, dtype=None, device=None, requires_grad=False, layout=None, pin_memory=False): return _ops.creation.new_like(self, "full", size, dtype, requires_grad, fill_value, device, layout, pin_memory)
    def new_tensor(self, data, *, dtype=None, device=None, requires_grad=False, layout=None, pin_memory=False): return _ops.creation.new_like(self, "tensor", data, dtype, requires_grad, None, device, layout, pin_memory)
    def byte(self, memory_format=None): return self._cast_to(_dtype.uint8, memory_format, "byte")
    def char(self, memory_format=None): return self._cast_to(_dtype.int8, memory_format, "char")
    def short(self, memory_format=None): return self._cast_to(_dtype.int16, memory_format, "short")
    def data_ptr(self): return self._data.ctypes.data
    def ravel(self): return _plain.reshape(self, -1)
    def __mod__(self, other): return _plain.remainder(self, other)
    def __rmod__(self, other): return _plain.remainder(other, self)
    def repeat_interleave(self, repeats=None, dim=None, *, output_size=None): return _plain.repeat_interleave(self, repeats, dim)

    def hsplit(self, *indices, **kw): return _plain.hsplit(self, _sections_or_indices(indices, kw, "hsplit"))
    def vsplit(self, *indices, **kw): return _plain.vsplit(self, _sections_or_indices(indices, kw, "vsplit"))
    def dsplit(self, *indices, **kw): return _plain.dsplit(self, _sections_or_indices(indices, kw, "dsplit"))
    def bernoulli(self, *, generator=None): return _ops.creation.bernoulli(self, generator=generator)
    def multinomial(self, num_samples, replacement=False, *, generator=None): return _ops.creation.multinomial(self, num_samples, replacement, generator=generator)
    def get_device(self) -> int: return -1
    def pin_memory(self, device=None): return self

    # a dense tensor asked what a sparse one answers (tapegrad.sparse's class has the real ones)
    def dense_dim(self) -> int:
        """The number of dense dimensions: all of a strided tensor's (``sparse_dim() + dense_dim() == ndim``)."""
        return self._data.ndim

    def sparse_dim(self) -> int:
        """The number of sparse dimensions: 0 for a strided tensor."""
        return 0

    def indices(self):
        """A sparse COO tensor's indices; a strided tensor has none (raises, as PyTorch's)."""
        raise RuntimeError("indices expected sparse coordinate tensor layout but got Strided")

    def values(self):
        """A sparse tensor's values; a strided tensor has none (raises, as PyTorch's)."""
        raise RuntimeError("values expected sparse tensor layout but got Strided")

    def coalesce(self):
        """A sparse COO tensor with duplicates summed; a strided tensor raises, as PyTorch's."""
        raise RuntimeError("coalesce expected sparse coordinate tensor layout but got Strided")

    def is_coalesced(self) -> bool:
        """Whether a sparse COO tensor is coalesced; a strided tensor raises, as PyTorch's."""
        raise RuntimeError("is_coalesced expected sparse coordinate tensor layout but got Strided")
    def share_memory_(self):
        _shared.share([self])
        return self
    def is_shared(self) -> bool: return _shared.segment_of(self._data) is not None
    def is_pinned(self, device=None) -> bool: return False
    @property
    def H(self): return _plain.conj(_plain.transpose(self, 0, 1) if self.ndim == 2 else self)
    @property
    def mH(self): return _plain.conj(_plain.transpose(self, -2, -1))
    @property
    def real(self): return _plain.real(self)
    @property
    def imag(self): return _plain.imag(self)
    def polygamma(self, n): return _plain.polygamma(n, self)
    def polygamma_(self, n): return _ops.inplace.inplace(self, lambda s: _plain.polygamma(n, s), "polygamma_")
    def is_signed(self) -> bool: return self._data.dtype.kind in "fic"
    def is_inference(self) -> bool: return False
    def is_distributed(self) -> bool: return False
    def is_same_size(self, other) -> bool: return self._data.shape == other._data.shape
    def is_nonzero(self) -> bool: return _ops.comparison.is_nonzero(self)
    def const_data_ptr(self): return self._data.ctypes.data
    def as_subclass(self, cls): return cls._wrap(self._data)
    def new(self, *args): return _ops.creation.legacy_new(self, args)
    def new_empty_strided(self, size, stride, *, dtype=None, device=None, requires_grad=False, layout=None, pin_memory=False): return _ops.creation.new_empty_strided(self, size, stride, dtype, requires_grad, device, layout, pin_memory)
    def apply_(self, callable): return _ops.inplace.python_fill(self, callable, (), "apply_")
    def map_(self, tensor, callable): return _ops.inplace.python_fill(self, callable, (tensor,), "map_")
    def map2_(self, x, y, callable): return _ops.inplace.python_fill(self, callable, (x, y), "map2_")

    def storage_offset(self) -> int:
        """Where this tensor's first element lies in its storage (``untyped_storage()``), in
        elements (0 for a tensor that starts the memory it is on)."""
        start = _storage._untyped_of(self).data_ptr()
        return (self._data.__array_interface__["data"][0] - start) // max(self._data.itemsize, 1)

    def untyped_storage(self) -> _storage.UntypedStorage:
        """The memory under this tensor as bytes: the memory of the numpy array that owns
        ``self``'s (``tapegrad.storage`` says which), shared by every view of it.

        >>> x = tapegrad.zeros(4)
        >>> x[1:].untyped_storage().data_ptr() == x.untyped_storage().data_ptr()
        True
        """
        return _storage._untyped_of(self)

    def set_(self, source=None, storage_offset=None, size=None, stride=None):
        """Make ``self`` a view of other memory, in place, as PyTorch's: ``set_()`` empties it,
        ``set_(tensor)`` shares ``tensor``'s memory, shape and strides, and ``set_(storage,
        storage_offset, size, stride=None)`` reads ``storage`` (an UntypedStorage, a TypedStorage
        of ``self``'s dtype, or a tensor's) as ``size`` elements at ``storage_offset`` with
        ``stride`` (in elements; C order when None). Writes through either are seen by the other.
        The memory must hold it (tapegrad's storages never grow). Refused on a tensor that
        requires grad while grad mode records; counts as an in-place write.

        >>> x = tapegrad.arange(6.0)
        >>> y = tapegrad.zeros(0).set_(x.untyped_storage(), 1, (2, 2), (2, 1))   # [[1, 2], [3, 4]]
        """
        return _ops.shape.set_memory(self, source, storage_offset, size, stride)

    def is_set_to(self, tensor) -> bool:
        """Whether ``self`` and ``tensor`` are the same memory, offset, shape and strides."""
        return _ops.shape.is_set_to(self, tensor)

    def storage(self) -> _storage.TypedStorage:
        """The memory under this tensor read as its dtype (a ``TypedStorage``; deprecated, as in
        PyTorch, which warns: prefer ``untyped_storage()``)."""
        return _storage._typed_of(self)

    def dim_order(self):
        """The dims from outermost to innermost in memory (``(0, 1, ..., n-1)`` when C-contiguous)."""
        return tuple(sorted(range(self._data.ndim), key=lambda d: -abs(self._data.strides[d])))


def _reduce_for_processes(t):
    """multiprocessing's pickling of a tensor (``_shared.reduce_tensor``) with its set attributes."""
    rebuild, args = _shared.reduce_tensor(t)
    attrs = extra_attributes(t)
    return (rebuild, args[:3] + (args[3] + list(attrs.items()),)) if attrs else (rebuild, args)


_ForkingPickler.register(Tensor, _reduce_for_processes)
_ops.bind_tensor(Tensor)  # the ops and the tape create this class (apply's results, gradients)
_ops.shape.Size = Size  # broadcast_shapes' result type

