"""Storages: the memory under tensors, as PyTorch's ``torch.UntypedStorage`` and ``TypedStorage``.

A tapegrad tensor is a numpy array (``x._data``), and numpy says which array owns a view's memory
through ``.base``. A tensor's storage is the memory of that owner: ``x.untyped_storage()`` walks
``x._data.base`` to the first array that is not a view of another ndarray (through the small
wrapper objects ``numpy.lib.stride_tricks.as_strided`` puts between, too) and covers its bytes,
from its lowest address to its highest. So every view of one tensor (slices, transposes,
``view``/``reshape`` without a copy, ``expand``, ``view(dtype)``, ``detach``, ``.real``) reports
one storage: the same ``data_ptr()`` and ``nbytes()``, which is how libraries such as safetensors
and accelerate find tensors that share memory; ``x.storage_offset()`` is ``x``'s first element's
place in it, in elements (``x.data_ptr() == x.untyped_storage().data_ptr() + x.storage_offset() *
x.element_size()``). A tensor made from a numpy array (``from_numpy``) has that array's owner as
its storage, as the two share memory.

A storage object wraps the same memory as a one-dimensional numpy array of bytes (``uint8``), made
without a copy: writes through a storage are seen by every tensor on it, and the other way round.
Storages are made afresh on each call (compare ``data_ptr()``, not the objects), and cannot
grow: tapegrad never moves a tensor's memory behind its back (``resize_`` to another size raises,
and so does ``Tensor.set_`` asking for more memory than a storage has, where PyTorch grows it).
``Tensor.set_(storage, offset, size, stride)`` makes a tensor a numpy view of a storage's bytes,
so its storage is that storage's owner again.
The memory of a read-only array (an ``expand`` of a tensor that owns no writable memory) gives a
read-only storage. A tensor moved into shared memory (``share_memory_()``) has a shared storage
(``is_shared()``); ``Module.share_memory()`` packs a module's tensors into one segment, yet each
is a storage of its own, as in PyTorch.
"""
from __future__ import annotations

import builtins
import numbers
import warnings

import numpy as np

from . import _dtype, _shared
from .device import check_cpu as _check_cpu, device as _device

__all__ = ["UntypedStorage", "TypedStorage", "is_storage"]

_TYPED_DEPRECATED = ("TypedStorage is deprecated. It will be removed in the future and UntypedStorage will be the only "
                     "storage class. This should only matter to you if you are using storages directly.  To access "
                     "UntypedStorage directly, use tensor.untyped_storage() instead of tensor.storage()")
_NOT_SHARED = ("share_memory_(): a storage's memory can't be moved into shared memory under the tensors on it "
               "(tapegrad never moves a tensor's memory behind its back); call share_memory_() on the tensor (or "
               "Module.share_memory()) and take its storage after")


def _owner(a: np.ndarray) -> np.ndarray:
    """The array that owns ``a``'s memory: ``a.base`` followed through views (and through the
    objects with an ndarray ``base`` that ``as_strided`` and ``__array_interface__`` make)."""
    while True:
        b = a.base
        if isinstance(b, np.ndarray):
            a = b
        elif b is not None and isinstance(getattr(b, "base", None), np.ndarray):
            a = b.base
        else:
            return a


def _extent(a: np.ndarray) -> tuple[int, int]:
    """(lowest address, bytes up to one past the highest) of the elements of ``a``."""
    ptr = a.__array_interface__["data"][0]
    if a.size == 0:
        return ptr, 0
    lo = hi = 0
    for n, s in zip(a.shape, a.strides):
        if s < 0:
            lo += (n - 1) * s
        else:
            hi += (n - 1) * s
    return ptr + lo, hi - lo + a.itemsize


class _Bytes:
    """An ``__array_interface__`` over raw memory for ``numpy.asarray``; it keeps ``keep`` (the
    array owning the memory) alive as the new array's base."""

    __slots__ = ("__array_interface__", "base")

    def __init__(self, ptr, nbytes, readonly, keep):
        self.__array_interface__ = {"shape": (nbytes,), "typestr": "|u1", "data": (ptr, readonly), "version": 3}
        self.base = keep


def _index(i, n, what):
    if isinstance(i, bool) or not isinstance(i, numbers.Integral):
        raise TypeError(f"can't index a {what} with {type(i).__name__}")
    i = int(i)
    if not -n <= i < n:
        raise IndexError(f"index {i} out of range for storage of size {n}")
    return i + n if i < 0 else i


def _writable(arr, what):
    if not arr.flags.writeable:
        raise RuntimeError(f"{what}: the storage is read-only (the memory of an expanded or read-only tensor)")


class _HostMemory:
    """What both storages answer alike: their memory is the CPU's, and never moves."""

    @property
    def device(self):
        """The storage's device: always the CPU."""
        return _device("cpu")

    @property
    def is_cuda(self) -> bool:
        """False: tapegrad's memory is host memory."""
        return False

    def get_device(self) -> int:
        """-1, PyTorch's answer for CPU memory."""
        return -1

    def cpu(self):
        """The storage itself: its memory is host memory."""
        return self

    def to(self, *, device=None, non_blocking=False):
        """The storage itself on the CPU (any other device raises)."""
        if device is not None:
            _check_cpu(device)
        return self

    def is_pinned(self, device="cuda") -> bool:
        """False: there is no device to pin host memory for."""
        return False

    def pin_memory(self, device="cuda"):
        """The storage itself: host memory needs no pinning without a device."""
        return self

    def resizable(self) -> bool:
        """False: a tensor's memory never moves (see the module docstring)."""
        return False

    def __copy__(self):
        return self.clone()


class UntypedStorage(_HostMemory):
    """Bytes of memory, as ``torch.UntypedStorage``: ``x.untyped_storage()`` is the memory under the
    tensor ``x`` (see the module docstring for which memory that is), and ``UntypedStorage(n)``
    (``n`` zero bytes) or ``UntypedStorage([1, 2, 3])`` (those bytes) makes new memory.

    >>> x = tapegrad.arange(6.0).reshape(2, 3)
    >>> x[:, 1:].untyped_storage().data_ptr() == x.untyped_storage().data_ptr()
    True
    >>> x.untyped_storage().nbytes()
    48
    """

    def __init__(self, *args, device=None):
        if device is not None:
            _check_cpu(device)
        if not args:
            data = np.zeros(0, np.uint8)
        elif len(args) == 1 and isinstance(args[0], numbers.Integral) and not isinstance(args[0], bool):
            if args[0] < 0:
                raise RuntimeError(f"UntypedStorage: size must be non-negative, got {args[0]}")
            try:
                data = np.zeros(int(args[0]), np.uint8)
            except (MemoryError, ValueError) as e:  # numpy's words name neither the op nor (ValueError) the size
                if isinstance(e, ValueError) and "too big" not in str(e) and "Maximum allowed" not in str(e):
                    raise
                raise MemoryError(f"UntypedStorage: can't allocate {int(args[0])} bytes ({e})") from None
        elif len(args) == 1 and isinstance(args[0], (list, tuple, range)):
            values = list(args[0])
            if not all(isinstance(v, numbers.Integral) and not isinstance(v, bool) and 0 <= v < 256 for v in values):
                raise TypeError("UntypedStorage: a sequence of ints in [0, 255] (bytes) was expected")
            data = np.array(values, np.uint8)
        else:
            raise TypeError(f"UntypedStorage(): expected no argument, a size or a sequence of bytes, got "
                            f"{tuple(type(a).__name__ for a in args)}")
        self._set(data)

    def _set(self, data):
        self._bytes = data  # the 1-D uint8 array on the memory; None until asked for (see _array)
        self._root = None
        self._ptr = data.__array_interface__["data"][0]
        self._nbytes = data.size

    @classmethod
    def _on(cls, data: np.ndarray) -> "UntypedStorage":
        """The storage of the 1-D uint8 array ``data`` (no copy)."""
        s = cls.__new__(cls)
        s._set(data)
        return s

    @classmethod
    def _of_owner(cls, root: np.ndarray) -> "UntypedStorage":
        """The storage of the memory ``root`` owns: its address and size now, its bytes as an
        array when first needed (``data_ptr()`` of many tensors, as safetensors asks, makes none)."""
        s = cls.__new__(cls)
        s._bytes, s._root = None, root
        s._ptr, s._nbytes = _extent(root)
        return s

    @property
    def _array(self) -> np.ndarray:
        if self._bytes is None:
            root = self._root
            self._bytes = np.asarray(_Bytes(self._ptr, self._nbytes, not root.flags.writeable, root))
        return self._bytes

    @property
    def is_sparse(self) -> bool:
        """False: a storage is dense memory."""
        return False

    def data_ptr(self) -> int:
        """The address of the storage's first byte."""
        return self._ptr

    def nbytes(self) -> int:
        """The storage's size in bytes."""
        return self._nbytes

    def size(self) -> int:
        """The storage's size in bytes (as ``nbytes()``)."""
        return self._nbytes

    def __len__(self):
        return self._nbytes

    def element_size(self) -> int:
        """1: an untyped storage counts bytes."""
        return 1

    def tolist(self) -> list:
        """The bytes as a list of ints."""
        return self._array.tolist()

    def __iter__(self):
        return iter(self._array.tolist())

    def __getitem__(self, idx):
        if isinstance(idx, slice):
            start, stop, step = idx.indices(self._array.size)
            if step != 1:
                raise RuntimeError(f"UntypedStorage: only slices of step 1 are supported, got step {step}")
            return UntypedStorage._on(self._array[start:builtins.max(start, stop)])
        return int(self._array[_index(idx, self._array.size, "tapegrad.UntypedStorage")])

    def __setitem__(self, idx, value):
        _writable(self._array, "UntypedStorage.__setitem__")
        if not isinstance(idx, slice):
            idx = _index(idx, self._array.size, "tapegrad.UntypedStorage")
        self._array[idx] = np.asarray(value).astype(np.int64) & 0xFF  # PyTorch keeps the low byte

    def fill_(self, value) -> "UntypedStorage":
        """Set every byte to ``value`` (its low byte), in place."""
        self[:] = value
        return self

    def copy_(self, source, non_blocking=None) -> "UntypedStorage":
        """Copy the bytes of ``source`` (a storage of the same size) into this one."""
        src = source._array if isinstance(source, UntypedStorage) else source.untyped()._array
        if src.size != self._array.size:
            raise RuntimeError(f"copy_: the storages' sizes differ ({src.size} and {self._array.size} bytes)")
        _writable(self._array, "UntypedStorage.copy_")
        self._array[...] = src
        return self

    def clone(self) -> "UntypedStorage":
        """A copy of the storage, in new memory."""
        return UntypedStorage._on(self._array.copy())

    def untyped(self) -> "UntypedStorage":
        """The storage itself (it is untyped already)."""
        return self

    def type(self, dtype=None, non_blocking=False):
        """The storage's type name (with no argument)."""
        if dtype is not None:
            raise RuntimeError("UntypedStorage.type(dtype): tapegrad has no typed storage classes to convert to; "
                               "use TypedStorage(wrap_storage=..., dtype=...)")
        return "tapegrad.UntypedStorage"

    def is_shared(self) -> bool:
        """Whether the memory is shared between processes (a tensor's after ``share_memory_()``)."""
        return _shared.segment_of(self._root if self._bytes is None else self._bytes) is not None

    def share_memory_(self) -> "UntypedStorage":
        """The storage itself when its memory is shared already (``is_shared()``); else
        RuntimeError: move the tensor with ``Tensor.share_memory_()`` instead, as tapegrad cannot
        move the memory under the tensors that use it."""
        if not self.is_shared():
            raise RuntimeError(_NOT_SHARED)
        return self

    def resize_(self, size) -> "UntypedStorage":
        """Only to the size it has: tapegrad's storages cannot grow or shrink."""
        if int(size) != self._array.size:
            raise RuntimeError(f"Trying to resize storage that is not resizable (from {self._array.size} to {int(size)} "
                               "bytes)")
        return self

    def new(self) -> "UntypedStorage":
        """A new, empty storage."""
        return UntypedStorage()

    def __repr__(self):
        body = "\n".join(f" {v}" for v in self._array.tolist())
        head = f"[tapegrad.storage.UntypedStorage(device=cpu) of size {self._array.size}]"
        return f"{body}\n{head}" if body else head



def _typed_array(untyped: UntypedStorage, dtype) -> np.ndarray:
    """The storage's bytes read as ``dtype`` (a trailing part smaller than an element left out)."""
    a = untyped._array
    return a[:a.size - a.size % dtype.itemsize].view(dtype)


class TypedStorage(_HostMemory):
    """Memory read as elements of one dtype, as ``torch.TypedStorage`` (deprecated in PyTorch, as
    here: making one warns). ``x.storage()`` is the memory under the tensor ``x`` read as its
    dtype; ``TypedStorage(n, dtype=...)`` (``n`` zeros), ``TypedStorage([1.0, 2.0], dtype=...)``
    and ``TypedStorage(wrap_storage=untyped, dtype=...)`` make or wrap memory.

    >>> s = tapegrad.tensor([1.0, 2.0]).storage()
    >>> s[0], s.size(), s.dtype
    (1.0, 2, tapegrad.float32)
    """

    is_sparse = False

    def __init__(self, *args, dtype=None, device=None, wrap_storage=None, _internal=False):
        if not _internal:
            warnings.warn(_TYPED_DEPRECATED, UserWarning, stacklevel=2)
        if device is not None:
            _check_cpu(device)
        dtype = _dtype.float32 if dtype is None else _dtype.to_dtype(dtype)
        if wrap_storage is not None:
            if args:
                raise RuntimeError("TypedStorage(): no positional argument is taken with wrap_storage")
            if not isinstance(wrap_storage, UntypedStorage):
                raise TypeError(f"TypedStorage(): wrap_storage must be an UntypedStorage, got "
                                f"{type(wrap_storage).__name__}")
            untyped = wrap_storage
        elif not args:
            untyped = UntypedStorage()
        elif len(args) == 1 and isinstance(args[0], numbers.Integral) and not isinstance(args[0], bool):
            if args[0] < 0:
                raise RuntimeError(f"TypedStorage: size must be non-negative, got {args[0]}")
            untyped = UntypedStorage._on(np.zeros(int(args[0]), dtype).view(np.uint8))
        elif len(args) == 1 and isinstance(args[0], (list, tuple, range)):
            untyped = UntypedStorage._on(np.array(list(args[0]), dtype).reshape(-1).view(np.uint8))
        else:
            raise TypeError(f"TypedStorage(): expected no argument, a size or a sequence, got "
                            f"{tuple(type(a).__name__ for a in args)}")
        self._untyped_storage = untyped
        self.dtype = _dtype.public(dtype)

    def _elements(self) -> np.ndarray:
        return _typed_array(self._untyped_storage, self.dtype)

    def untyped(self) -> UntypedStorage:
        """The bytes under this storage (the same memory)."""
        return self._untyped_storage

    def data_ptr(self) -> int:
        """The address of the storage's first byte."""
        return self._untyped_storage.data_ptr()

    def nbytes(self) -> int:
        """The storage's size in bytes."""
        return self._untyped_storage.nbytes()

    def size(self) -> int:
        """The number of elements of ``dtype`` the storage holds."""
        return self._untyped_storage.nbytes() // self.dtype.itemsize

    def __len__(self):
        return self.size()

    def element_size(self) -> int:
        """The size of one element in bytes."""
        return self.dtype.itemsize

    def tolist(self) -> list:
        """The elements as a list of Python numbers."""
        return self._elements().tolist()

    def __iter__(self):
        return iter(self.tolist())

    def __getitem__(self, idx):
        if isinstance(idx, slice):
            raise RuntimeError("slices are only supported in UntypedStorage.__getitem__")
        return self._elements()[_index(idx, self.size(), "tapegrad.TypedStorage")].item()

    def __setitem__(self, idx, value):
        a = self._elements()
        _writable(a, "TypedStorage.__setitem__")
        if not isinstance(idx, slice):
            idx = _index(idx, a.size, "tapegrad.TypedStorage")
        a[idx] = np.asarray(getattr(value, "_data", value))

    def fill_(self, value) -> "TypedStorage":
        """Set every element to ``value``, in place."""
        self[:] = value
        return self

    def copy_(self, source, non_blocking=None) -> "TypedStorage":
        """Copy the elements of ``source`` (a storage of as many elements) into this one, cast to ``dtype``."""
        a = self._elements()
        src = source._elements() if isinstance(source, TypedStorage) else source._array
        if src.size != a.size:
            raise RuntimeError(f"copy_: the storages' sizes differ ({src.size} and {a.size} elements)")
        _writable(a, "TypedStorage.copy_")
        a[...] = src
        return self

    def clone(self) -> "TypedStorage":
        """A copy of the storage, in new memory."""
        return TypedStorage(wrap_storage=self._untyped_storage.clone(), dtype=self.dtype, _internal=True)

    def _to(self, dtype) -> "TypedStorage":
        values = self._elements().astype(dtype)
        return TypedStorage(wrap_storage=UntypedStorage._on(values.reshape(-1).view(np.uint8)), dtype=dtype,
                            _internal=True)

    def type(self, dtype=None, non_blocking=False):
        """The storage's type name (with no argument)."""
        if dtype is not None:
            raise RuntimeError("TypedStorage.type(dtype): tapegrad has no typed storage classes; use .to a dtype with "
                               "the conversions (float(), double(), ...)")
        return f"tapegrad.TypedStorage(dtype={_dtype.name(self.dtype)})"

    def is_shared(self) -> bool:
        """Whether the memory is shared between processes (a tensor's after ``share_memory_()``)."""
        return self._untyped_storage.is_shared()

    def share_memory_(self) -> "TypedStorage":
        """As ``UntypedStorage.share_memory_``: itself when shared already, else RuntimeError."""
        self._untyped_storage.share_memory_()
        return self

    def resize_(self, size) -> "TypedStorage":
        """Only to the size it has: tapegrad's storages cannot grow or shrink."""
        self._untyped_storage.resize_(int(size) * self.dtype.itemsize)
        return self

    def __repr__(self):
        body = "\n".join(f" {v}" for v in self.tolist())
        head = f"[tapegrad.storage.TypedStorage(dtype={_dtype.name(self.dtype)}, device=cpu) of size {self.size()}]"
        return f"{body}\n{head}" if body else head



# TypedStorage's conversions, each a copy in one dtype: double(), float(), ... as PyTorch's
def _conversion(name: str, dt: str):
    def convert(self):
        return self._to(getattr(_dtype, dt))
    convert.__name__, convert.__qualname__ = name, f"TypedStorage.{name}"
    convert.__doc__ = f"A {dt.rstrip('_')} copy."
    return convert


for _name, _dt in (("double", "float64"), ("float", "float32"), ("half", "float16"), ("long", "int64"),
                   ("int", "int32"), ("short", "int16"), ("char", "int8"), ("byte", "uint8"), ("bool", "bool_")):
    setattr(TypedStorage, _name, _conversion(_name, _dt))
del _name, _dt


def is_storage(obj) -> bool:
    """Whether ``obj`` is a storage (an :class:`UntypedStorage` or a :class:`TypedStorage`).

    >>> tapegrad.is_storage(tapegrad.zeros(2).untyped_storage()), tapegrad.is_storage(tapegrad.zeros(2))
    (True, False)
    """
    return isinstance(obj, (UntypedStorage, TypedStorage))


def _untyped_of(t) -> UntypedStorage:
    """``Tensor.untyped_storage``: the memory of the array that owns ``t``'s memory."""
    if not isinstance(t._data, np.ndarray):
        raise RuntimeError(f"untyped_storage: a {type(t._data).__name__} tensor has no storage (only dense tensors do)")
    return UntypedStorage._of_owner(_owner(t._data))


def _typed_of(t) -> TypedStorage:
    """``Tensor.storage``: the memory of ``t``'s owner read as ``t``'s dtype (PyTorch warns that
    TypedStorage is deprecated; so does this)."""
    warnings.warn(_TYPED_DEPRECATED, UserWarning, stacklevel=3)
    return TypedStorage(wrap_storage=_untyped_of(t), dtype=t._data.dtype, _internal=True)
