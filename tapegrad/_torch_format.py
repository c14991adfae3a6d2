"""PyTorch checkpoints (``torch.save``'s files) read without torch and without running code.

A ``torch.save`` file (torch >= 1.6) is a zip archive, all of it under one folder::

    <name>/data.pkl        the object, pickled (protocol 2); tensors refer to storages by key
    <name>/data/<key>      each storage's raw bytes, uncompressed
    <name>/byteorder       "little" or "big" (absent in old files: little)
    <name>/version, ...    format records, not needed here

``pickle.load`` would call whatever the file names; ``_Unpickler`` is its own interpreter of
the opcodes a checkpoint uses, in which a GLOBAL can only name an entry of ``_GLOBALS`` (the
tensor rebuild functions, storage types, dtypes, ``torch.Size``, ``OrderedDict``: PyTorch's
``weights_only=True`` allow-list, minus what tapegrad cannot represent), each a function
written here that checks its arguments. Nothing from the file is ever imported or called.
Every storage is checked against the archive (present, stored uncompressed, exactly
``numel * itemsize`` bytes) and every tensor against its storage (offset and strides in
bounds) before numpy reads a byte of it; every tensor is then copied out of its storage, so a
loaded tensor owns its memory (PyTorch keeps views that share a storage; tapegrad does not,
which only matters for tensors saved as views of each other).

``save`` writes the same format (``tapegrad.save(obj, f, format="pt")``), naming only globals
that ``torch.load(f, weights_only=True)`` allows, with storages aligned as torch aligns them.
"""
from __future__ import annotations

import io
import os
import re
import reprlib
import struct
import zipfile
from collections import Counter, OrderedDict

import numpy as np

from . import _dtype
from ._dtype import bool_, float16, float32, float64, int8, int16, int32, int64, uint8, uint16, uint32, uint64
from . import serialization as _serialization  # serialization imports this module: read at call time
from .tensor import Size, Tensor
from .nn.parameter import Parameter
from .device import device

# The legacy format (torch < 1.6, or _use_new_zipfile_serialization=False) starts with this
# number, pickled; it interleaves pickles with raw storage data.
_LEGACY_MAGIC = (0x1950A86A20F9469CFC6C).to_bytes(10, "little")
MAX_DEPTH = 100            # nesting of containers in the loaded object
MAX_PICKLE_BYTES = 1 << 30
MAX_DIMS = 64
MAX_EXPANDED_BYTES = 1 << 30  # a stride-0 view materialised beyond its storage's size
# Every loaded tensor is a copy out of its storage, so views that overlap (stride 0, or many
# tensors on one storage) make more bytes than the file holds: a 2 kB file of eight 1 GiB
# stride-0 views asked for 8 GiB. A load materialises at most the archive's size (each stored
# byte may be copied out twice: weights tied by sharing a storage) plus MAX_EXPANDED_BYTES.

_SUPPORTED = {"float32": float32, "float64": float64, "float16": float16, "int64": int64, "int32": int32,
              "int16": int16, "int8": int8, "uint8": uint8, "bool": bool_, "uint16": uint16, "uint32": uint32,
              "uint64": uint64}
if _dtype.bfloat16 is not None:  # ml_dtypes' (numpy has none); without it bfloat16 files say what to install
    _SUPPORTED["bfloat16"] = _dtype.bfloat16
_ALIASES = {"float": "float32", "double": "float64", "half": "float16", "long": "int64", "int": "int32",
            "short": "int16"}
_UNSUPPORTED = ("bfloat16", "complex32", "complex64", "complex128", "cfloat", "cdouble", "chalf", "uint16", "uint32",
                "uint64", "float8_e4m3fn", "float8_e5m2", "float8_e4m3fnuz", "float8_e5m2fnuz", "float8_e8m0fnu",
                "float4_e2m1fn_x2", "qint8", "quint8", "qint32", "quint4x2", "quint2x4", "bits8", "bits16",
                "bits1x8", "bits2x4", "bits4x2", "int1", "int2", "int3", "int4", "int5", "int6", "int7", "uint1",
                "uint2", "uint3", "uint4", "uint5", "uint6", "uint7")
# complex tensors (kept apart from the lists above, which other dtypes' work edits)
_SUPPORTED.update(complex64=np.dtype(np.complex64), complex128=np.dtype(np.complex128))
_ALIASES.update(cfloat="complex64", cdouble="complex128")
_UNSUPPORTED = tuple(n for n in _UNSUPPORTED if n not in _SUPPORTED and n not in _ALIASES)
_STORAGES = {"FloatStorage": "float32", "DoubleStorage": "float64", "HalfStorage": "float16",
             "LongStorage": "int64", "IntStorage": "int32", "ShortStorage": "int16", "CharStorage": "int8",
             "ByteStorage": "uint8", "BoolStorage": "bool", "BFloat16Storage": "bfloat16",
             "ComplexFloatStorage": "complex64", "ComplexDoubleStorage": "complex128", "QInt8Storage": "qint8",
             "QUInt8Storage": "quint8", "QInt32Storage": "qint32", "QUInt4x2Storage": "quint4x2",
             "QUInt2x4Storage": "quint2x4"}
_REFUSED = {  # names PyTorch allows that tapegrad cannot represent: say why
    "torch._utils._rebuild_qtensor": "quantized tensors are not supported by tapegrad",
    "torch._utils._rebuild_sparse_tensor": "sparse tensors are not supported by tapegrad",
    "torch.serialization._get_layout": "sparse tensors are not supported by tapegrad",
    "torch._utils._rebuild_nested_tensor": "nested tensors are not supported by tapegrad",
    "torch._utils._rebuild_meta_tensor_no_storage": "meta tensors (no data) are not supported by tapegrad",
    "torch._utils._rebuild_wrapper_subclass": "tensor subclasses are not supported by tapegrad",
    "torch._utils._rebuild_device_tensor_from_numpy": "it needs numpy's pickled arrays, which tapegrad "
                                                      "does not unpickle",
}


def _error(label, msg):
    return _serialization.CheckpointError(f"tapegrad.load: {label!r}: {msg}")


# ---------------------------------------------------------------- detection
def sniff(f) -> str | None:
    """``"zip"``, ``"legacy"`` (an old PyTorch pickle) or None, from the first bytes of ``f``."""
    if isinstance(f, (str, os.PathLike)):
        try:
            with open(f, "rb") as fh:
                head = fh.read(64)
        except OSError:
            return None
    else:
        try:
            pos = f.tell()
            head = f.read(64)
            f.seek(pos)
        except (AttributeError, OSError, io.UnsupportedOperation):
            return None
    if not isinstance(head, bytes):
        return None
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return "zip"
    if head[:1] == b"\x80" and _LEGACY_MAGIC in head[:32]:
        return "legacy"
    return None


# ---------------------------------------------------------------- the archive
class _Storage:
    __slots__ = ("key", "dtype", "numel", "buffer")

    def __init__(self, key, dtype, numel, buffer):
        self.key, self.dtype, self.numel, self.buffer = key, dtype, numel, buffer


class _Archive:
    """The zip's records, each read at most once and only after its size is checked."""

    def __init__(self, zf: zipfile.ZipFile, label: str, archive_size: int):
        self.zf, self.label, self.size = zf, label, archive_size
        names = zf.namelist()
        pkls = [n for n in names if n.count("/") == 1 and n.endswith("/data.pkl")]
        if any(n.count("/") == 1 and n.endswith("/constants.pkl") for n in names):
            raise _error(label, "this is a TorchScript archive (torch.jit.save), which holds code; tapegrad reads "
                                "torch.save checkpoints: save the weights with torch.save(model.state_dict(), f)")
        if len(pkls) != 1:
            what = "no" if not pkls else f"{len(pkls)}"
            raise _error(label, f"this is a zip archive but not a PyTorch checkpoint ({what} '<name>/data.pkl' "
                                f"records)")
        self.prefix = pkls[0][:-len("data.pkl")]
        self.storages: dict[str, _Storage] = {}
        order = self.record("byteorder", 16, required=False)
        order = b"little" if order is None else order.strip()
        if order not in (b"little", b"big"):
            raise _error(label, f"byteorder record says {order[:16]!r}; expected 'little' or 'big'")
        self.byteorder = "<" if order == b"little" else ">"

    def record(self, name, size, required=True, exact=False):
        """The bytes of ``<prefix>/<name>``: at most ``size`` bytes, or exactly ``size`` if ``exact``."""
        full = self.prefix + name
        try:
            info = self.zf.getinfo(full)
        except KeyError:
            if required:
                raise _error(self.label, f"record {full!r} is missing from the archive") from None
            return None
        if info.compress_type != zipfile.ZIP_STORED:
            # torch.save never compresses; inflating an attacker's stream is how zip bombs work
            raise _error(self.label, f"record {full!r} is compressed (zip method {info.compress_type}); PyTorch "
                                     f"writes records uncompressed, so this file was altered; refusing to inflate it")
        if info.file_size > self.size or info.compress_size != info.file_size:
            raise _error(self.label, f"record {full!r} declares {info.file_size} bytes in an archive of "
                                     f"{self.size} bytes (corrupt or crafted)")
        if (info.file_size != size) if exact else (info.file_size > size):
            want = f"exactly {size}" if exact else f"at most {size}"
            raise _error(self.label, f"record {full!r} has {info.file_size} bytes; expected {want}")
        try:
            with self.zf.open(info) as fh:
                data = fh.read(info.file_size + 1)
        except (zipfile.BadZipFile, OSError, EOFError, ValueError) as e:
            raise _error(self.label, f"record {full!r} is unreadable (truncated or corrupt): {e}") from None
        if len(data) != info.file_size:
            raise _error(self.label, f"record {full!r} holds {len(data)} bytes, its header says {info.file_size}")
        return data

    def storage(self, pid) -> _Storage:
        """``BINPERSID``: ``('storage', storage_type, key, location, numel)``, checked, read once."""
        if (type(pid) is not tuple or len(pid) != 5 or type(pid[0]) not in (str, bytes)
                or pid[0] not in ("storage", b"storage")):
            raise _error(self.label, f"persistent id {_short(pid)} is not a storage reference "
                                     f"('storage', type, key, location, numel)")
        _, stype, key, location, numel = pid
        if not isinstance(stype, _StorageType):
            raise _error(self.label, f"storage {_short(key)} names type {_short(stype)}, not a torch storage type")
        if type(key) is not str or not re.fullmatch(r"[0-9A-Za-z_.-]{1,64}", key):
            raise _error(self.label, f"storage key {_short(key)} is not a valid record name")
        if type(numel) is not int or numel < 0:
            raise _error(self.label, f"storage {key!r} declares {_short(numel)} elements")
        if not isinstance(location, str):
            raise _error(self.label, f"storage {key!r} has location {_short(location)}, not a device string")
        dtype = _tensor_dtype(stype.dtype_name, self.label, f"storage {key!r}")
        cached = self.storages.get(key)
        if cached is not None:
            if cached.dtype != dtype or cached.numel != numel:
                raise _error(self.label, f"storage {key!r} is referenced twice with different types or sizes "
                                         f"({cached.dtype}[{cached.numel}] and {dtype}[{numel}])")
            return cached
        nbytes = numel * dtype.itemsize
        data = self.record("data/" + key, nbytes, exact=True)
        st = _Storage(key, dtype, numel, data)
        self.storages[key] = st
        return st


class _MissingDtype:
    """A torch dtype tapegrad lacks (bfloat16, complex64, ...), named by the file."""
    __slots__ = ("name",)

    def __init__(self, name):
        self.name = name


class _StorageType:
    """What a GLOBAL ``torch.FloatStorage`` (etc.) or ``torch.storage.UntypedStorage`` stands for."""
    __slots__ = ("name", "dtype_name")

    def __init__(self, name, dtype_name):
        self.name, self.dtype_name = name, dtype_name

    def __repr__(self):
        return self.name


_REPR = reprlib.Repr()
_REPR.maxlevel, _REPR.maxstring, _REPR.maxother = 3, 60, 60


def _short(x):
    """A bounded repr: the file's values can be huge or deeply nested."""
    return _REPR.repr(x)


def _tensor_dtype(name, label, what) -> np.dtype:
    name = _ALIASES.get(name, name)
    if name in _SUPPORTED:
        return _SUPPORTED[name]
    hint = " (convert it in PyTorch first, e.g. {k: v.float() for k, v in state_dict.items()})"
    if name == "bfloat16":
        hint = f": {_dtype.BFLOAT16_MISSING}"
    raise _error(label, f"{what} has dtype torch.{name}, which tapegrad does not have{hint}")


# ---------------------------------------------------------------- the allowed globals
class _Global:
    """A GLOBAL the file may name: ``fn`` checks its arguments and builds the value (REDUCE)."""
    __slots__ = ("name", "fn", "newobj")

    def __init__(self, name, fn=None, newobj=False):
        self.name, self.fn, self.newobj = name, fn, newobj

    def __repr__(self):
        return self.name


class _Loader:
    """The allowed globals' implementations; they see the archive for storage checks."""

    def __init__(self, archive: _Archive):
        self.archive = archive
        self.label = archive.label
        self.materialised = 0  # bytes of tensors built so far: see MAX_EXPANDED_BYTES

    def fail(self, msg):
        return _error(self.label, msg)

    # tensors ------------------------------------------------------------
    def tensor(self, storage, offset, size, stride, requires_grad=False, hooks=None, metadata=None, dtype=None):
        if not isinstance(storage, _Storage):
            raise self.fail(f"a tensor's storage is {_short(storage)}, not a storage reference")
        if type(requires_grad) is not bool:
            raise self.fail(f"tensor requires_grad is {_short(requires_grad)}, not a bool")
        if hooks is not None and (not isinstance(hooks, dict) or hooks):
            raise self.fail("a tensor carries backward hooks (code); tapegrad loads data only")
        if metadata is not None and (not isinstance(metadata, dict)
                                     or any(type(v) is not bool or v for v in metadata.values())):
            raise self.fail(f"a tensor carries metadata {_short(metadata)} (conj/neg bits), not supported")
        if dtype is None:
            dtype, buf_numel = storage.dtype, storage.numel
        else:
            if isinstance(dtype, _MissingDtype):
                _tensor_dtype(dtype.name, self.label, f"a tensor on storage {storage.key!r}")
            if not isinstance(dtype, _dtype.DType):
                raise self.fail(f"tensor dtype is {_short(dtype)}, not a torch dtype")
            dtype = dtype.dtype
            if storage.dtype != uint8:
                raise self.fail(f"_rebuild_tensor_v3 needs an untyped storage, got one of {storage.dtype}")
            buf_numel = storage.numel // dtype.itemsize
        where = f"tensor on storage {storage.key!r}"
        for name, seq in (("size", size), ("stride", stride)):
            if not isinstance(seq, tuple) or len(seq) > MAX_DIMS or any(type(v) is not int for v in seq):
                raise self.fail(f"{where}: {name} {_short(seq)} is not a tuple of at most {MAX_DIMS} ints")
        if len(size) != len(stride):
            raise self.fail(f"{where}: size {size} and stride {stride} differ in length")
        if type(offset) is not int or offset < 0 or offset > buf_numel:
            raise self.fail(f"{where}: storage offset {_short(offset)} is outside the storage of {buf_numel} elements")
        if any(s < 0 for s in size) or any(s < 0 for s in stride):
            raise self.fail(f"{where}: negative size or stride (size {size}, stride {stride})")
        numel = 1
        for s in size:
            numel *= s
        if numel:
            last = offset + sum((n - 1) * s for n, s in zip(size, stride))
            if last >= buf_numel:
                raise self.fail(f"{where}: size {size}, stride {stride} and offset {offset} reach element {last}, "
                                f"past the storage's {buf_numel} elements")
        nbytes = numel * dtype.itemsize
        if nbytes > max(MAX_EXPANDED_BYTES, len(storage.buffer)):
            raise self.fail(f"{where}: size {size} with stride {stride} would expand {len(storage.buffer)} stored "
                            f"bytes into {nbytes}; refusing")
        self.materialised += nbytes
        budget = self.archive.size + MAX_EXPANDED_BYTES
        if self.materialised > budget:
            raise self.fail(f"{where}: size {size} with stride {stride} brings the tensors built from this "
                            f"{self.archive.size}-byte file to {self.materialised} bytes, more than {budget} (views "
                            f"that overlap their storage, each copied out); refusing")
        # bfloat16 has no byte-swapped numpy form: its bits travel as uint16
        native = np.dtype(np.uint16) if _dtype.is_bfloat16(dtype) else dtype
        stored = native.newbyteorder(self.archive.byteorder) if dtype.itemsize > 1 else native
        view = np.ndarray(size, dtype=stored, buffer=storage.buffer, offset=offset * dtype.itemsize,
                          strides=tuple(s * dtype.itemsize for s in stride)) if numel else np.empty(size, native)
        try:
            arr = np.array(view, dtype=native, order="C")
        except MemoryError as e:
            raise MemoryError(f"tapegrad.load: {self.label!r}: {where} of size {size}: {e}") from None
        if native is not dtype:
            arr = arr.view(dtype)
        if dtype == bool_:  # any byte but 0 and 1 would be an invalid numpy bool
            arr = arr.view(np.uint8) != 0
        t = Tensor._wrap(arr)
        if requires_grad:
            if _dtype.kind_of(dtype) != "f":
                raise self.fail(f"{where}: a {dtype} tensor cannot require grad")
            t.requires_grad_(True)
        return t

    def rebuild_tensor(self, storage, offset, size, stride):
        return self.tensor(storage, offset, size, stride)

    def rebuild_tensor_v2(self, storage, offset, size, stride, requires_grad, hooks, metadata=None):
        return self.tensor(storage, offset, size, stride, requires_grad, hooks, metadata)

    def rebuild_tensor_v3(self, storage, offset, size, stride, requires_grad, hooks, dtype, metadata=None):
        return self.tensor(storage, offset, size, stride, requires_grad, hooks, metadata, dtype=dtype)

    def rebuild_parameter(self, data, requires_grad, hooks, state=None):
        if not isinstance(data, Tensor) or type(requires_grad) is not bool:
            raise self.fail(f"_rebuild_parameter got {_short(data)}, {_short(requires_grad)}; expected a tensor "
                            f"and a bool")
        if hooks is not None and (not isinstance(hooks, dict) or hooks):
            raise self.fail("a parameter carries backward hooks (code); tapegrad loads data only")
        # ``state``: Python attributes of a Parameter subclass; a tapegrad Parameter has no room for them
        return Parameter(data.detach(), requires_grad=requires_grad)

    def rebuild_parameter_with_state(self, data, requires_grad, hooks, state):
        return self.rebuild_parameter(data, requires_grad, hooks, state)

    def rebuild_from_type_v2(self, func, new_type, args, state):
        # a tensor with Python attributes, or a subclass: rebuilt as the plain tensor (attributes dropped)
        if not (isinstance(func, _Global) and func.name in _TENSOR_REBUILDERS):
            raise self.fail(f"_rebuild_from_type_v2 with function {_short(func)}; only tensor rebuild functions "
                            f"are allowed")
        if not (isinstance(new_type, _Global) and new_type.name in ("torch.Tensor", "torch.nn.parameter.Parameter")):
            raise self.fail(f"_rebuild_from_type_v2 to type {_short(new_type)}: tensor subclasses are not supported")
        if not isinstance(args, tuple):
            raise self.fail(f"_rebuild_from_type_v2 arguments {_short(args)} are not a tuple")
        return self.call(func, args)

    def rebuild_device_tensor_from_cpu_tensor(self, data, dtype, device, requires_grad):
        if not isinstance(data, Tensor) or type(requires_grad) is not bool:
            raise self.fail("_rebuild_device_tensor_from_cpu_tensor expects a tensor and a bool")
        if requires_grad:
            data.requires_grad_(True)
        return data

    # other values -------------------------------------------------------
    def size(self, dims=()):
        if not isinstance(dims, tuple) or any(type(d) is not int for d in dims):
            raise self.fail(f"torch.Size({_short(dims)}): expected a tuple of ints")
        return Size(dims)

    def device(self, kind, index=None):
        if not isinstance(kind, str) or not (index is None or type(index) is int):
            raise self.fail(f"torch.device({_short(kind)}, {_short(index)}): expected a string and an int")
        spec = kind if index is None else f"{kind}:{index}"
        # tapegrad has only the CPU: other devices come back as their name ('cuda:0')
        return device("cpu") if spec.split(":")[0] == "cpu" else spec

    def ordered_dict(self, items=()):
        if isinstance(items, (dict, list, tuple)):
            return OrderedDict(items)
        raise self.fail(f"OrderedDict({_short(items)}): expected a dict or pairs")

    def counter(self, items=()):
        if isinstance(items, dict):
            return Counter(items)
        raise self.fail(f"Counter({_short(items)}): expected a dict")

    def encode(self, text, encoding="utf-8"):  # how protocol 2 pickles bytes under Python 3
        if not isinstance(text, str) or type(encoding) is not str or encoding not in ("latin1", "latin-1"):
            raise self.fail(f"_codecs.encode({_short(text)}, {_short(encoding)}): only (str, 'latin1') is allowed")
        return text.encode("latin1")

    def bytearray_(self, data=b""):
        if not isinstance(data, (bytes, bytearray)):  # bytearray(10**12) would allocate a terabyte
            raise self.fail(f"bytearray({_short(data)}): only bytes are allowed")
        return bytearray(data)

    def set_(self, items=()):
        if not isinstance(items, (list, tuple, set, frozenset)):
            raise self.fail(f"set({_short(items)}): expected a list")
        return set(items)

    def complex_(self, real=0.0, imag=0.0):
        if type(real) not in (int, float) or type(imag) not in (int, float):
            raise self.fail(f"complex({_short(real)}, {_short(imag)}): expected numbers")
        return complex(real, imag)

    def call(self, g: _Global, args):
        try:
            return g.fn(self, *args)
        except TypeError as e:  # wrong number of arguments
            raise self.fail(f"{g.name} called with {len(args)} arguments {_short(args)}: {e}") from None


_TENSOR_REBUILDERS = ("torch._utils._rebuild_tensor", "torch._utils._rebuild_tensor_v2",
                      "torch._utils._rebuild_tensor_v3", "torch._utils._rebuild_parameter",
                      "torch._utils._rebuild_parameter_with_state",
                      "torch._utils._rebuild_device_tensor_from_cpu_tensor")


def _make_globals():
    L = _Loader
    table = {
        "torch._utils._rebuild_tensor": _Global("torch._utils._rebuild_tensor", L.rebuild_tensor),
        "torch._utils._rebuild_tensor_v2": _Global("torch._utils._rebuild_tensor_v2", L.rebuild_tensor_v2),
        "torch._utils._rebuild_tensor_v3": _Global("torch._utils._rebuild_tensor_v3", L.rebuild_tensor_v3),
        "torch._utils._rebuild_parameter": _Global("torch._utils._rebuild_parameter", L.rebuild_parameter),
        "torch._utils._rebuild_parameter_with_state": _Global("torch._utils._rebuild_parameter_with_state",
                                                              L.rebuild_parameter_with_state),
        "torch._utils._rebuild_device_tensor_from_cpu_tensor": _Global(
            "torch._utils._rebuild_device_tensor_from_cpu_tensor", L.rebuild_device_tensor_from_cpu_tensor),
        "torch._tensor._rebuild_from_type_v2": _Global("torch._tensor._rebuild_from_type_v2",
                                                       L.rebuild_from_type_v2),
        "torch.Size": _Global("torch.Size", L.size),
        "torch.device": _Global("torch.device", L.device),
        "torch.Tensor": _Global("torch.Tensor"),
        "torch.nn.parameter.Parameter": _Global("torch.nn.parameter.Parameter"),
        "collections.OrderedDict": _Global("collections.OrderedDict", L.ordered_dict, newobj=True),
        "collections.Counter": _Global("collections.Counter", L.counter, newobj=True),
        "_codecs.encode": _Global("_codecs.encode", L.encode),
        "builtins.bytearray": _Global("builtins.bytearray", L.bytearray_),
        "builtins.set": _Global("builtins.set", L.set_, newobj=True),
        "builtins.complex": _Global("builtins.complex", L.complex_),
    }
    for cls, name in _STORAGES.items():
        table["torch." + cls] = _StorageType("torch." + cls, name)
    table["torch.storage.UntypedStorage"] = _StorageType("torch.storage.UntypedStorage", "uint8")
    return table


_GLOBALS = _make_globals()
# Python 2 names that protocol 2 pickles may carry (pickle's own _compat_pickle mapping, the part used here)
_RENAMED = {"__builtin__": "builtins", "copy_reg": "copyreg"}
# what ``serialization.add_safe_globals`` was given: kept and given back as PyTorch keeps them, and
# named in the refusal when a file uses one (the reader builds no objects beyond its own list)
SAFE_GLOBALS: list = []


def _global_name(g) -> str:
    if isinstance(g, tuple):  # (obj, "module.name"), PyTorch's form for a renamed global
        return g[1]
    return f"{getattr(g, '__module__', '')}.{getattr(g, '__qualname__', getattr(g, '__name__', ''))}"


def _resolve_global(module: str, name: str, label: str):
    module = _RENAMED.get(module, module)
    full = f"{module}.{name}"
    if full in _GLOBALS:
        return _GLOBALS[full]
    if module == "torch":
        dname = _ALIASES.get(name, name)
        if dname in _SUPPORTED:
            return _dtype.public(_SUPPORTED[dname])  # a tensor's dtype below, or a value the caller gets
        if dname in _UNSUPPORTED:
            return _MissingDtype(dname)  # an error once used (a tensor's dtype, or left in the result)
    if full in _REFUSED:
        raise _error(label, f"GLOBAL {full} refused: {_REFUSED[full]}")
    if any(_global_name(g) == full for g in SAFE_GLOBALS):
        raise _error(label, f"GLOBAL {full} refused: it was allowed with tapegrad.serialization.add_safe_globals, "
                            f"but tapegrad's reader builds only tensors, storages, dtypes, torch.Size, OrderedDict "
                            f"and plain Python data, never other objects")
    hint = ""
    if name[:1].isupper():  # a class: most likely torch.save(model) rather than of its state_dict
        hint = ("; if the file holds a whole pickled model, save its weights in PyTorch with "
                "torch.save(model.state_dict(), f) and load them with model.load_state_dict(tapegrad.load(f))")
    raise _error(label, f"GLOBAL {full} refused: only tensors, storages, dtypes, torch.Size, OrderedDict and plain "
                        f"Python data are loaded (PyTorch's weights_only=True rules); loading never runs code "
                        f"from a file{hint}")


# ---------------------------------------------------------------- the interpreter
class _Unpickler:
    """The binary pickle opcodes (protocols 2-5) that build data; nothing else."""

    def __init__(self, data: bytes, loader: _Loader):
        self.data, self.pos, self.loader, self.label = data, 0, loader, loader.label
        self.memo: dict = {}
        # nesting depth of each tuple/frozenset made (with the object, so its id stays its own):
        # hash() of a tuple nested a million deep overflows the C stack, so nesting is bounded
        # as the tuples are built, before any of them is used as a key
        self.depth: dict[int, tuple] = {}

    def read(self, n):
        if n < 0 or self.pos + n > len(self.data):
            raise _error(self.label, f"data.pkl is truncated (wanted {n} bytes at offset {self.pos})")
        b = self.data[self.pos:self.pos + n]
        self.pos += n
        return b

    def line(self):
        end = self.data.find(b"\n", self.pos, self.pos + 512)
        if end < 0:
            raise _error(self.label, f"data.pkl has an unterminated name at offset {self.pos}")
        b = self.data[self.pos:end]
        self.pos = end + 1
        return b.decode("utf-8")

    def load(self):
        stack, marks = [], []
        read, loader, unpack = self.read, self.loader, struct.unpack
        while True:
            at = self.pos
            op = read(1)[0]
            if op == 0x80:                                  # PROTO
                if read(1)[0] > 5:
                    raise _error(self.label, "data.pkl uses a pickle protocol above 5")
            elif op == 0x95:                                # FRAME
                read(8)
            elif op == 0x2E:                                # STOP
                if len(stack) != 1 or marks:
                    raise _error(self.label, f"data.pkl ends with {len(stack)} values on its stack")
                return stack[0]
            elif op == 0x28:                                # MARK
                marks.append(len(stack))
            elif op == 0x4E:                                # NONE
                stack.append(None)
            elif op in (0x88, 0x89):                        # NEWTRUE, NEWFALSE
                stack.append(op == 0x88)
            elif op == 0x4A:                                # BININT
                stack.append(unpack("<i", read(4))[0])
            elif op == 0x4B:                                # BININT1
                stack.append(read(1)[0])
            elif op == 0x4D:                                # BININT2
                stack.append(unpack("<H", read(2))[0])
            elif op == 0x8A:                                # LONG1
                stack.append(int.from_bytes(read(read(1)[0]), "little", signed=True))
            elif op == 0x8B:                                # LONG4
                stack.append(int.from_bytes(read(self.length(4)), "little", signed=True))
            elif op == 0x47:                                # BINFLOAT
                stack.append(unpack(">d", read(8))[0])
            elif op in (0x58, 0x8C, 0x8D):                  # BINUNICODE, SHORT_BINUNICODE, BINUNICODE8
                n = read(1)[0] if op == 0x8C else self.length(4 if op == 0x58 else 8)
                stack.append(str(read(n), "utf-8", "surrogatepass"))
            elif op in (0x42, 0x43, 0x8E):                  # BINBYTES, SHORT_BINBYTES, BINBYTES8
                stack.append(read(read(1)[0] if op == 0x43 else self.length(4 if op == 0x42 else 8)))
            elif op == 0x96:                                # BYTEARRAY8
                stack.append(bytearray(read(self.length(8))))
            elif op == 0x55:                                # SHORT_BINSTRING (Python 2 str)
                stack.append(read(read(1)[0]).decode("latin1"))
            elif op == 0x29:                                # EMPTY_TUPLE
                stack.append(())
            elif op in (0x85, 0x86, 0x87):                  # TUPLE1..3
                n = op - 0x84
                self.need(stack, marks, n, at)
                stack[-n:] = [self.nest(tuple(stack[-n:]), at)]
            elif op == 0x74:                                # TUPLE
                stack.append(self.nest(tuple(self.pop_mark(stack, marks)), at))
            elif op == 0x5D:                                # EMPTY_LIST
                stack.append([])
            elif op == 0x6C:                                # LIST
                stack.append(self.pop_mark(stack, marks))
            elif op == 0x7D:                                # EMPTY_DICT
                stack.append({})
            elif op == 0x64:                                # DICT
                items = self.pop_mark(stack, marks)
                stack.append(self.pairs({}, items, at))
            elif op == 0x8F:                                # EMPTY_SET
                stack.append(set())
            elif op == 0x91:                                # FROZENSET
                items = self.nest(tuple(self.pop_mark(stack, marks)), at)
                stack.append(self.nest(frozenset(self.hashable(items, at)), at))
            elif op == 0x61:                                # APPEND
                self.need(stack, marks, 2, at)
                item = stack.pop()
                self.target(stack[-1], list, "APPEND", at).append(item)
            elif op == 0x65:                                # APPENDS
                items = self.pop_mark(stack, marks)
                self.need(stack, marks, 1, at)
                self.target(stack[-1], list, "APPENDS", at).extend(items)
            elif op == 0x73:                                # SETITEM
                self.need(stack, marks, 3, at)
                v, k = stack.pop(), stack.pop()
                self.pairs(self.target(stack[-1], dict, "SETITEM", at), [k, v], at)
            elif op == 0x75:                                # SETITEMS
                items = self.pop_mark(stack, marks)
                self.need(stack, marks, 1, at)
                self.pairs(self.target(stack[-1], dict, "SETITEMS", at), items, at)
            elif op == 0x90:                                # ADDITEMS
                items = self.pop_mark(stack, marks)
                self.need(stack, marks, 1, at)
                self.target(stack[-1], set, "ADDITEMS", at).update(self.hashable(items, at))
            elif op == 0x30:                                # POP
                if marks and marks[-1] == len(stack):
                    marks.pop()
                else:
                    self.need(stack, marks, 1, at)
                    stack.pop()
            elif op == 0x31:                                # POP_MARK
                self.pop_mark(stack, marks)
            elif op == 0x32:                                # DUP
                self.need(stack, marks, 1, at)
                stack.append(stack[-1])
            elif op in (0x71, 0x72, 0x94):                  # BINPUT, LONG_BINPUT, MEMOIZE
                idx = len(self.memo) if op == 0x94 else (read(1)[0] if op == 0x71 else unpack("<I", read(4))[0])
                self.need(stack, marks, 1, at)
                self.memo[idx] = stack[-1]
            elif op in (0x68, 0x6A):                        # BINGET, LONG_BINGET
                idx = read(1)[0] if op == 0x68 else unpack("<I", read(4))[0]
                if idx not in self.memo:
                    raise _error(self.label, f"data.pkl refers to memo entry {idx}, never stored (offset {at})")
                stack.append(self.memo[idx])
            elif op == 0x63:                                # GLOBAL
                module = self.line()
                stack.append(_resolve_global(module, self.line(), self.label))
            elif op == 0x93:                                # STACK_GLOBAL
                self.need(stack, marks, 2, at)
                name, module = stack.pop(), stack.pop()
                if type(module) is not str or type(name) is not str:
                    raise _error(self.label, f"STACK_GLOBAL with non-string names at offset {at}")
                stack.append(_resolve_global(module, name, self.label))
            elif op == 0x52:                                # REDUCE
                self.need(stack, marks, 2, at)
                args = stack.pop()
                func = stack[-1]
                if not isinstance(func, _Global) or func.fn is None:
                    raise _error(self.label, f"data.pkl calls {_short(func)} (REDUCE at offset {at}); only the "
                                             f"allowed tensor and container constructors can be called")
                if not isinstance(args, tuple):
                    raise _error(self.label, f"REDUCE of {func.name} with arguments {_short(args)}, not a tuple")
                stack[-1] = loader.call(func, args)
            elif op == 0x81:                                # NEWOBJ
                self.need(stack, marks, 2, at)
                args, cls = stack.pop(), stack.pop()
                if not isinstance(cls, _Global) or not cls.newobj or not isinstance(args, tuple):
                    raise _error(self.label, f"data.pkl creates an object of {_short(cls)} (NEWOBJ at offset {at}); "
                                             f"only OrderedDict, Counter and set can be created")
                stack.append(loader.call(cls, args))
            elif op == 0x62:                                # BUILD
                self.need(stack, marks, 2, at)
                state = stack.pop()
                self.build(stack[-1], state, at)
            elif op == 0x51:                                # BINPERSID
                self.need(stack, marks, 1, at)
                stack[-1] = loader.archive.storage(stack[-1])
            else:
                raise _error(self.label, f"data.pkl uses pickle opcode {bytes([op])!r} at offset {at}, which a "
                                         f"checkpoint does not need (refused: it could build other objects)")

    def nest(self, obj, at):
        d = 1 + max((self.depth[id(x)][0] for x in obj if id(x) in self.depth), default=0)
        if d > MAX_DEPTH:
            raise _error(self.label, f"data.pkl nests tuples more than {MAX_DEPTH} deep (offset {at})")
        self.depth[id(obj)] = (d, obj)
        return obj

    def length(self, nbytes):
        n = int.from_bytes(self.read(nbytes), "little")
        if n > len(self.data) - self.pos:
            raise _error(self.label, f"data.pkl declares a {n}-byte value with {len(self.data) - self.pos} bytes left")
        return n

    def need(self, stack, marks, n, at):
        floor = marks[-1] if marks else 0
        if len(stack) - floor < n:
            raise _error(self.label, f"data.pkl is malformed: stack underflow at offset {at}")

    def pop_mark(self, stack, marks):
        if not marks:
            raise _error(self.label, f"data.pkl is malformed: no MARK before offset {self.pos - 1}")
        k = marks.pop()
        items = stack[k:]
        del stack[k:]
        return items

    def target(self, obj, kind, opname, at):
        if not isinstance(obj, kind) or (kind is dict and type(obj) not in (dict, OrderedDict, Counter)):
            raise _error(self.label, f"{opname} on a {type(obj).__name__} at offset {at}; expected a {kind.__name__}")
        return obj

    def pairs(self, d, items, at):
        if len(items) % 2:
            raise _error(self.label, f"data.pkl has an odd number of dict items at offset {at}")
        for i in range(0, len(items), 2):
            d[self.hashable([items[i]], at)[0]] = items[i + 1]
        return d

    def hashable(self, items, at):
        for k in items:
            try:
                hash(k)
            except TypeError:
                raise _error(self.label, f"data.pkl uses an unhashable {type(k).__name__} as a key at offset "
                                         f"{at}") from None
        return items

    def build(self, inst, state, at):
        # PyTorch's state_dict() is an OrderedDict with a ``_metadata`` attribute (module versions);
        # that is the only object state a checkpoint sets
        if type(inst) is OrderedDict and isinstance(state, dict) and set(state) <= {"_metadata"}:
            meta = state.get("_metadata")
            if meta is None or isinstance(meta, dict):
                inst._metadata = meta
                return
        raise _error(self.label, f"data.pkl sets the state of a {type(inst).__name__} to {_short(state)} (BUILD at "
                                 f"offset {at}); only a state_dict's _metadata is allowed")


# ---------------------------------------------------------------- result checks
def _check_depth(root, label):
    """Refuse cycles and nesting deeper than ``MAX_DEPTH`` (later code walks results recursively)."""
    depth: dict[int, int] = {}
    grey: set[int] = set()
    todo = [(root, False)]
    while todo:
        obj, done = todo.pop()
        children = _children(obj)
        if children is None:
            if isinstance(obj, _MissingDtype):
                _tensor_dtype(obj.name, label, "a value in the checkpoint")
            continue
        i = id(obj)
        if done:
            grey.discard(i)
            d = 1 + max((depth.get(id(c), 0) for c in children), default=0)
            if d > MAX_DEPTH:
                raise _error(label, f"the object nests containers more than {MAX_DEPTH} deep")
            depth[i] = d
            continue
        if i in depth:
            continue
        if i in grey:
            raise _error(label, "the object holds a container that contains itself (a cycle); refusing")
        grey.add(i)
        todo.append((obj, True))
        todo.extend((c, False) for c in children if id(c) not in depth)


def _children(obj):
    if isinstance(obj, dict):
        meta = getattr(obj, "_metadata", None) if type(obj) is OrderedDict else None
        return list(obj.keys()) + list(obj.values()) + ([meta] if meta is not None else [])
    if isinstance(obj, (list, tuple, set, frozenset)):
        return list(obj)
    return None


# ---------------------------------------------------------------- writing
_STORAGE_OF = {np.dtype(v): k for k, v in _STORAGES.items() if v in _SUPPORTED}
_DTYPE_NAME = {v: k for k, v in _SUPPORTED.items()}


class _Pickler:
    """Writes protocol 2 opcodes for the values tapegrad.save takes, naming only the globals that
    torch.load(weights_only=True) allows; tensors go to ``data/<key>`` records, little-endian."""

    def __init__(self):
        self.out = bytearray(b"\x80\x02")
        self.storages: list[np.ndarray] = []
        self.keys: dict[int, tuple] = {}  # id(array) -> (key, array): a tensor saved twice, one storage

    def glob(self, module, name):
        self.out += b"c" + module.encode() + b"\n" + name.encode() + b"\n"

    def save(self, obj, where, depth=0):
        out = self.out
        if depth > MAX_DEPTH:
            raise ValueError(f"tapegrad.save: {where} nests containers more than {MAX_DEPTH} deep")
        if obj is None:
            out += b"N"
        elif obj is True or obj is False:
            out += b"\x88" if obj else b"\x89"
        elif isinstance(obj, (int, np.integer)) and not isinstance(obj, (bool, np.bool_)):
            v = int(obj)
            if -2 ** 31 <= v < 2 ** 31:
                out += b"J" + struct.pack("<i", v)
            else:
                b = v.to_bytes((v.bit_length() + 8) // 8, "little", signed=True)
                out += (b"\x8a" + bytes([len(b)]) if len(b) < 256 else b"\x8b" + struct.pack("<I", len(b))) + b
        elif isinstance(obj, np.bool_):
            out += b"\x88" if obj else b"\x89"
        elif isinstance(obj, (float, np.floating)):
            out += b"G" + struct.pack(">d", float(obj))
        elif isinstance(obj, str):
            b = obj.encode("utf-8", "surrogatepass")
            out += b"X" + struct.pack("<I", len(b)) + b
        elif isinstance(obj, bytes):  # as Python 3 pickles bytes at protocol 2
            self.glob("_codecs", "encode")
            self.save((obj.decode("latin1"), "latin1"), where, depth + 1)
            out += b"R"
        elif isinstance(obj, Size):
            self.glob("torch", "Size")
            self.save((tuple(obj),), where, depth + 1)
            out += b"R"
        elif isinstance(obj, (np.dtype, _dtype.DType)) and obj in _DTYPE_NAME:
            self.glob("torch", _DTYPE_NAME[obj])
        elif isinstance(obj, device):
            self.glob("torch", "device")
            self.save(("cpu",), where, depth + 1)
            out += b"R"
        elif isinstance(obj, Parameter):
            self.glob("torch._utils", "_rebuild_parameter")
            out += b"("
            self.tensor(Tensor._wrap(obj._data), where, False)
            self.save(obj.requires_grad, where)
            self.hooks()
            out += b"tR"
        elif isinstance(obj, Tensor):
            self.tensor(obj, where, obj.requires_grad)
        elif isinstance(obj, dict):
            if isinstance(obj, OrderedDict):
                self.glob("collections", "OrderedDict")
                out += b")R"
            else:
                out += b"}"
            if obj:
                out += b"("
                for k, v in obj.items():
                    if not isinstance(k, (str, int, float, bool, type(None))):
                        raise TypeError(f"tapegrad.save: {where} has a key of type {type(k).__name__}; keys must be "
                                        f"str, int, float, bool or None")
                    self.save(k, where, depth + 1)
                    self.save(v, f"{where}[{k!r}]", depth + 1)
                out += b"u"
        elif isinstance(obj, list):
            out += b"]"
            if obj:
                out += b"("
                for i, v in enumerate(obj):
                    self.save(v, f"{where}[{i}]", depth + 1)
                out += b"e"
        elif isinstance(obj, tuple):
            out += b"("
            for i, v in enumerate(obj):
                self.save(v, f"{where}[{i}]", depth + 1)
            out += b"t"
        else:
            raise TypeError(f"tapegrad.save(format='pt'): {where} is of type {type(obj).__name__}, which a PyTorch "
                            f"checkpoint cannot hold for torch.load(weights_only=True) (supported: tensors, "
                            f"numbers, strings, bytes, None, dtypes, Size, and dicts/lists/tuples of them)")

    def hooks(self):
        self.glob("collections", "OrderedDict")
        self.out += b")R"

    def tensor(self, t, where, requires_grad):
        arr = t._data
        # PyTorch's newer dtypes have no typed storage class: their tensors are rebuilt (v3) from
        # an untyped storage of bytes and the dtype, as torch.save writes them
        untyped = arr.dtype in (uint16, uint32, uint64)
        if arr.dtype not in _STORAGE_OF and not untyped:
            raise TypeError(f"tapegrad.save(format='pt'): {where} has dtype {arr.dtype}, which PyTorch lacks")
        entry = self.keys.get(id(arr))
        if entry is None:
            entry = self.keys[id(arr)] = (str(len(self.storages)), arr)
            self.storages.append(np.ascontiguousarray(arr, arr.dtype.newbyteorder("<")).reshape(-1))
        key = entry[0]
        self.glob("torch._utils", "_rebuild_tensor_v3" if untyped else "_rebuild_tensor_v2")
        self.out += b"(("
        self.save("storage", where)
        if untyped:
            self.glob("torch.storage", "UntypedStorage")
        else:
            self.glob("torch", _STORAGE_OF[arr.dtype])
        self.save(key, where)
        self.save("cpu", where)
        self.save(int(arr.size) * (arr.dtype.itemsize if untyped else 1), where)
        self.out += b"tQ"
        self.save(0, where)
        self.save(tuple(int(n) for n in arr.shape), where)
        stride, step = [], 1
        for n in reversed(arr.shape):  # C order, as the storage was written
            stride.append(step)
            step *= max(int(n), 1)
        self.save(tuple(reversed(stride)), where)
        self.save(bool(requires_grad), where)
        self.hooks()
        if untyped:
            self.glob("torch", arr.dtype.name)
        self.out += b"tR"


def save(obj, f) -> None:
    """Write ``obj`` as ``torch.save`` does (zip of data.pkl + storages), for torch.load(weights_only=True)."""
    p = _Pickler()
    p.save(obj, "obj")
    p.out += b"."
    with zipfile.ZipFile(f, "w", zipfile.ZIP_STORED) as zf:
        def record(name, data, align=False):
            info = zipfile.ZipInfo("archive/" + name, date_time=(1980, 1, 1, 0, 0, 0))
            if align:  # storages start on 64-byte boundaries, as torch writes them (torch.load(mmap=True) needs it)
                start = zf.fp.tell() + 30 + len(info.filename) + 4
                pad = -start % 64
                info.extra = struct.pack("<HH", 0x4246, pad) + b"Z" * pad  # torch's "FB" padding field
            zf.writestr(info, data)

        record("data.pkl", bytes(p.out))
        record(".format_version", b"1")
        record(".storage_alignment", b"64")
        record("byteorder", b"little")
        for i, arr in enumerate(p.storages):
            record(f"data/{i}", arr.tobytes(), align=True)
        record("version", b"3\n")
        record(".data/serialization_id", b"0" * 40)


# ---------------------------------------------------------------- entry point
def load(f, label: str):
    """Read a ``torch.save`` file (path or seekable binary file object) into tapegrad objects."""
    kind = sniff(f)
    if kind == "legacy":
        raise _error(label, "this is a PyTorch checkpoint in the legacy format (torch < 1.6, or saved with "
                            "_use_new_zipfile_serialization=False), which interleaves pickles with data and cannot "
                            "be read safely; re-save it with a recent PyTorch: torch.save(torch.load(f, "
                            "weights_only=True), 'new.pt')")
    try:
        if isinstance(f, (str, os.PathLike)):
            size = os.path.getsize(f)
        else:
            pos = f.tell()
            size = f.seek(0, os.SEEK_END)
            f.seek(pos)
        with zipfile.ZipFile(f) as zf:
            archive = _Archive(zf, label, size)
            pkl = archive.record("data.pkl", MAX_PICKLE_BYTES)
            obj = _Unpickler(pkl, _Loader(archive)).load()
    except zipfile.BadZipFile as e:
        raise _error(label, f"not a readable zip archive (truncated or corrupt): {e}") from None
    except _serialization.CheckpointError:
        raise
    except (UnicodeDecodeError, OverflowError, ValueError, TypeError, RuntimeError, IndexError, KeyError,
            AttributeError, struct.error) as e:
        # only this module's code runs while loading, so whatever else a crafted file trips is reported as such
        raise _error(label, f"data.pkl is corrupt: {type(e).__name__}: {e}") from None
    _check_depth(obj, label)
    return obj
