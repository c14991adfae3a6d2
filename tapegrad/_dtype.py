"""dtypes: numpy's, under PyTorch's names, and PyTorch's promotion rules.

A tensor holds a numpy array, and this module's own names (``_dtype.float32``) are numpy dtypes,
which tapegrad's code hands to numpy. Users see ``DType`` objects (``tapegrad.float32``, ``x.dtype``:
``torch.dtype``'s attributes and repr), each holding its numpy dtype and comparing equal to it, so
``x.dtype == tapegrad.float32`` and ``x.dtype == np.float32`` both hold. Floating tensors default
to float32, integers to int64.
Python scalars are "weak": ``float32_tensor * 2.0`` stays float32, as in PyTorch.

bfloat16 is ``ml_dtypes``'s (numpy has none); without that package ``tapegrad`` still imports and
asking for bfloat16 says what to install. Its numpy ``kind`` is ``'V'``, so code that asks "is this
floating?" asks ``is_floating`` (or ``kind_of``), never ``dtype.kind == 'f'``.
"""
from __future__ import annotations

import builtins as _b

import numpy as np

try:
    import ml_dtypes
except ImportError:  # optional at import time: only bfloat16 needs it
    ml_dtypes = None

float32 = np.dtype(np.float32)
float64 = np.dtype(np.float64)
float16 = np.dtype(np.float16)
int64 = np.dtype(np.int64)
int32 = np.dtype(np.int32)
int16 = np.dtype(np.int16)
int8 = np.dtype(np.int8)
uint8 = np.dtype(np.uint8)
uint16 = np.dtype(np.uint16)  # PyTorch's "limited support" unsigned dtypes (2.3+): storage, casts, comparisons
uint32 = np.dtype(np.uint32)
uint64 = np.dtype(np.uint64)
bool_ = np.dtype(np.bool_)
complex64 = np.dtype(np.complex64)
complex128 = np.dtype(np.complex128)
bfloat16 = np.dtype(ml_dtypes.bfloat16) if ml_dtypes is not None else None
# PyTorch's float8 dtypes, also ml_dtypes': storage and casts (quantized weights and caches), as
# PyTorch's limited support; where PyTorch has no kernel, tapegrad computes with ml_dtypes' numpy
float8_e4m3fn = np.dtype(ml_dtypes.float8_e4m3fn) if ml_dtypes is not None else None
float8_e5m2 = np.dtype(ml_dtypes.float8_e5m2) if ml_dtypes is not None else None
BFLOAT16_MISSING = ("tapegrad.bfloat16 needs the ml_dtypes package (numpy has no bfloat16): "
                    "pip install ml_dtypes")

float = float32  # noqa: A001  (PyTorch's aliases)
double = float64
half = float16
long = int64
short = int16
int = int32  # noqa: A001
cfloat = complex64
cdouble = complex128

_NAMES = {float32: "float32", float64: "float64", float16: "float16", int64: "int64", int32: "int32",
          int16: "int16", int8: "int8", uint8: "uint8", uint16: "uint16", uint32: "uint32", uint64: "uint64",
          bool_: "bool",
          **({bfloat16: "bfloat16", float8_e4m3fn: "float8_e4m3fn", float8_e5m2: "float8_e5m2"}
             if bfloat16 is not None else {})}
_NAMES.update({complex64: "complex64", complex128: "complex128"})

_default_float = [float32]


class DType:
    """A tensor's element type, as ``torch.dtype``: ``x.dtype is tapegrad.float32``.

    One object per dtype (``tapegrad.float`` is ``tapegrad.float32``), with PyTorch's attributes
    ``is_floating_point``, ``is_complex``, ``is_signed``, ``itemsize``, ``abbr`` and ``to_real()`` /
    ``to_complex()``. Each holds its numpy dtype in ``.dtype``, the attribute numpy's converter
    reads, so ``np.zeros(3, x.dtype)`` and ``arr.astype(x.dtype)`` work, and ``x.dtype ==
    np.float32`` holds (equality and hashing are the numpy dtype's). numpy's read-only dtype
    attributes (``kind``, ``char``, ``name``, ``type``, ...) answer too, where ``torch.dtype``
    raises: code written against numpy's dtypes keeps working.

    >>> x = tapegrad.ones(2)
    >>> x.dtype, x.dtype.is_floating_point, x.dtype.itemsize
    (tapegrad.float32, True, 4)
    """

    __slots__ = {  # read-only: set once when the object is made
        "dtype": "The numpy dtype (what numpy's converter reads: ``np.zeros(3, x.dtype)``).",
        "kind": "numpy's kind code ('f', 'i', 'u', 'b', 'c'; 'V' for bfloat16 and float8_e4m3fn).",
        "char": "numpy's type character ('f' for float32).",
        "type": "numpy's scalar type (``np.float32``).",
        "name": "numpy's name ('float32').",
        "itemsize": "Bytes per element.",
        "is_floating_point": "Whether it is a floating type (the 16- and 8-bit floats included).",
        "is_complex": "Whether it is a complex type.",
        "is_signed": "Whether it holds negative values (floats, complex and signed integers; not bool or uint).",
        "abbr": "PyTorch's short name ('f32', 'bf16', 'b8').",
        "_hash": None, "__weakref__": None}

    def __new__(cls, *args, **kwargs):
        raise TypeError("cannot create 'tapegrad.dtype' instances (use tapegrad.float32 and its kin)")

    def __repr__(self) -> str:
        return "tapegrad." + _NAMES[self.dtype]

    __str__ = __repr__

    def __eq__(self, other):
        if other is self:
            return True
        if other is None or other.__class__ is DType:  # numpy reads None as float64
            return False
        try:
            return self.dtype == other
        except TypeError:  # a tensor, say: numpy hands the comparison to it, which refuses a dtype
            return False

    def __ne__(self, other):
        return not self.__eq__(other)

    def __hash__(self) -> int:
        return self._hash

    def __reduce__(self) -> str:  # pickled by name: tapegrad.float32 loads as the same object
        return _NAMES[self.dtype]

    def __setattr__(self, attr, value):
        raise AttributeError(f"tapegrad.dtype attribute {attr!r} is read-only")

    def __delattr__(self, attr):
        raise AttributeError(f"tapegrad.dtype attribute {attr!r} is read-only")

    def __copy__(self):
        return self

    def __deepcopy__(self, memo):
        return self

    def __getattr__(self, attr):  # numpy's other dtype attributes (byteorder, fields, ...)
        if attr.startswith("_"):
            raise AttributeError(f"'tapegrad.dtype' object has no attribute {attr!r}")
        return getattr(self.dtype, attr)

    def to_real(self) -> "DType":
        """The real dtype of a complex one's parts (``complex64.to_real()`` is ``float32``); others unchanged."""
        return public(real_of(self.dtype))

    def to_complex(self) -> "DType":
        """The complex dtype with this floating dtype's parts (``float64.to_complex()`` is ``complex128``)."""
        if self.is_complex:
            return self
        if not self.is_floating_point or self.itemsize == 1:  # ints, bool, float8: PyTorch's error
            raise RuntimeError(f"Unknown Complex ScalarType for {_NAMES[self.dtype]}")
        if self.dtype == float16:
            return complex32
        return public(complex_of(float32 if self.itemsize < 4 else self.dtype))


DType.__name__ = DType.__qualname__ = "dtype"
DType.__module__ = "tapegrad"


class _NamedOnly(DType):
    """A dtype tapegrad knows by name but stores no tensor of: ``complex32`` (PyTorch's experimental
    ComplexHalf; numpy has no such type). Code may compare with it (``x.dtype == torch.complex32``)
    and read its attributes; asking for a tensor of it raises, naming it."""

    __slots__ = ()

    @property
    def dtype(self):
        raise TypeError(f"{self!r} is not supported: tapegrad stores no {self.name} tensors "
                        f"(numpy has no such type); use tapegrad.complex64")

    def __repr__(self) -> str:
        return "tapegrad." + self.name

    __str__ = __repr__

    def __eq__(self, other):
        return other is self

    def __ne__(self, other):
        return other is not self

    def __hash__(self) -> int:
        return self._hash

    def __reduce__(self) -> str:
        return self.name

    def to_real(self) -> DType:
        return _PUBLIC[float16]

    def to_complex(self) -> DType:
        return self

    def __getattr__(self, attr):
        raise AttributeError(f"'tapegrad.dtype' object has no attribute {attr!r}")


def _named_only(name_: str, kind: str, itemsize: int, abbr: str, **flags) -> _NamedOnly:
    obj = object.__new__(_NamedOnly)
    for attr, value in dict(kind=kind, char=None, type=None, name=name_, itemsize=itemsize, abbr=abbr,
                            _hash=hash(("tapegrad.dtype", name_)), **flags).items():
        object.__setattr__(obj, attr, value)
    return obj

_ABBR = {"float32": "f32", "float64": "f64", "float16": "f16", "bfloat16": "bf16", "int64": "i64", "int32": "i32",
         "int16": "i16", "int8": "i8", "uint8": "u8", "uint16": "u16", "uint32": "u32", "uint64": "u64", "bool": "b8",
         "complex64": "c64", "complex128": "c128", "float8_e4m3fn": "f8e4m3fn", "float8_e5m2": "f8e5m2"}
_PUBLIC = {}  # numpy dtype -> its DType


def _make(d: np.dtype, name_: str) -> DType:
    obj = object.__new__(DType)
    set_ = object.__setattr__
    for attr in ("kind", "char", "type", "name", "itemsize"):
        set_(obj, attr, getattr(d, attr))
    set_(obj, "dtype", d)
    floating = d.kind == "f" or (d.kind == "V" and d.type.__name__ in _ML_FLOATS)
    set_(obj, "is_floating_point", floating)
    set_(obj, "is_complex", d.kind == "c")
    set_(obj, "is_signed", d.kind in "ifc" or floating)
    set_(obj, "abbr", _ABBR[name_])
    set_(obj, "_hash", hash(d))
    return obj


def public(d):
    """The ``tapegrad.dtype`` object of a numpy dtype (what ``x.dtype`` and ``get_default_dtype()``
    give users); None stays None, and a dtype tapegrad has no name for stays numpy's."""
    if d is None or d.__class__ is DType:
        return d
    obj = _PUBLIC.get(d)
    return obj if obj is not None else d



def get_default_dtype() -> DType:
    """The floating dtype that factories such as ``tensor([1.0])`` and ``zeros`` use (float32 at start)."""
    return _PUBLIC[_default_float[0]]


def default_float() -> np.dtype:
    """get_default_dtype()'s numpy dtype, for tapegrad's own numpy calls."""
    return _default_float[0]


def set_default_dtype(d) -> None:
    """Set the default floating dtype: float32 or float64.

    >>> tapegrad.set_default_dtype(tapegrad.float64)
    """
    d = to_dtype(d)
    if d not in (float32, float64):
        raise TypeError(f"set_default_dtype: only float32 and float64 are supported, got {name(d)}")
    _default_float[0] = d


def name(d) -> str:
    return "tapegrad." + _NAMES.get(np.dtype(d), str(d))


_ML_FLOATS = ("bfloat16", "float8_e4m3fn")  # ml_dtypes' floats whose numpy kind is 'V' (float8_e5m2's is 'f')


def is_floating(d) -> bool:
    """Whether ``d`` is a floating dtype (bfloat16 and float8_e4m3fn included, whose numpy kind is 'V')."""
    d = np.dtype(d)
    return d.kind == "f" or (d.kind == "V" and d.type.__name__ in _ML_FLOATS)


def kind_of(d) -> str:
    """numpy's ``dtype.kind``, except ``'f'`` for bfloat16 and float8_e4m3fn."""
    k = d.kind  # every op asks: those (kind 'V') are looked for only among 'V'
    return "f" if k == "V" and d.type.__name__ in _ML_FLOATS else k


_CAST_ORDER = {"b": 0, "u": 1, "i": 1, "f": 2, "c": 3}


def can_cast(from_, to) -> bool:
    """PyTorch's rule for writing a result of dtype ``from_`` into a tensor of dtype ``to`` (in-place
    ops, ``out=``): never down a category (bool < integer < floating < complex), any width and
    signedness within one. (numpy's ``same_kind`` refuses int8 -> uint8; PyTorch allows it.)"""
    return _CAST_ORDER[kind_of(from_)] <= _CAST_ORDER[kind_of(to)]


def is_16bit_float(d) -> bool:
    """float16 or bfloat16: the storage dtypes whose ops compute in float32 and round back."""
    return d.itemsize == 2 and (d.kind == "f" or is_bfloat16(d))


def is_bfloat16(d) -> bool:
    """Whether ``d`` is ml_dtypes' bfloat16."""
    # never ``d == bfloat16`` while it may be None: numpy reads ``dtype == None`` as float64
    return d is bfloat16 or (d.kind == "V" and d.type.__name__ == "bfloat16")


# PyTorch's legacy tensor type names (``x.type()`` gives ``'torch.FloatTensor'``; ``x.type('torch.LongTensor')``
# and ``x.type(torch.LongTensor)`` cast)
LEGACY_NAMES = {"float32": "FloatTensor", "float64": "DoubleTensor", "float16": "HalfTensor",
                "int64": "LongTensor", "int32": "IntTensor", "int16": "ShortTensor", "int8": "CharTensor",
                "uint8": "ByteTensor", "bool": "BoolTensor", "bfloat16": "BFloat16Tensor",
                "complex64": "ComplexFloatTensor", "complex128": "ComplexDoubleTensor", "uint16": "UInt16Tensor",
                "uint32": "UInt32Tensor", "uint64": "UInt64Tensor"}
_LEGACY_DTYPES = {v: k for k, v in LEGACY_NAMES.items()}


_DTYPE_CLASSES = frozenset(type(np.dtype(c)) for c in "?bBhHiIlLqQefdgFDG")  # numpy's numeric dtype classes


def to_dtype(d) -> np.dtype:
    """Accept a tapegrad/numpy dtype, a numpy scalar type, a name like 'float32', or a legacy
    tensor type (``LongTensor``, ``'torch.LongTensor'``)."""
    if d.__class__ is DType:  # most calls
        return d.dtype
    if d.__class__ is _NamedOnly:
        return d.dtype  # raises, naming it
    if d.__class__ in _DTYPE_CLASSES:  # numpy's own
        return d
    if d is None:
        return None
    if isinstance(d, str):
        d = d.removeprefix("tapegrad.").removeprefix("torch.")
        if d.startswith("cuda."):
            raise TypeError(f"not a dtype: {d!r} (a CUDA tensor type; tapegrad runs on the CPU only)")
        d = _LEGACY_DTYPES.get(d, d)
    elif isinstance(d, type) and isinstance(getattr(d, "_dtype", None), np.dtype):  # FloatTensor & co.
        return d._dtype
    if d is bool or d == "bool":
        return bool_
    if isinstance(d, str) and d in ("cfloat", "cdouble"):  # numpy reads "cfloat" as complex128
        return complex64 if d == "cfloat" else complex128
    if isinstance(d, str) and d == "bfloat16" and bfloat16 is None:
        raise TypeError(BFLOAT16_MISSING)
    try:
        dt = np.dtype(d)
    except TypeError:
        raise TypeError(f"not a dtype: {d!r}") from None
    if dt.kind == "O" and d is not object and d != "object" and d != "O":  # np.dtype(any class) is object
        raise TypeError(f"not a dtype: {d!r}")
    return dt


def result_type(*operands) -> np.dtype:
    """PyTorch's type promotion over operands, each an ndarray or a Python scalar.

    Three groups, each promoted within itself: dimensioned tensors, 0-d tensors, Python
    scalars (int -> int64, float -> the default dtype). A lower group only counts when its
    category (bool < integer < floating) is higher: ``int64[3] + 2.5`` is float32, but
    ``float32[3] + float64[]`` stays float32. Taking operands two at a time gets this wrong
    for three (``clamp``'s input and bounds), so all of them go in at once.
    """
    dim = zero = wrapped = None
    for x in operands:
        if isinstance(x, np.ndarray):
            if x.ndim:
                dim = _promote(dim, x.dtype)
            else:
                zero = _promote(zero, x.dtype)
        else:
            wrapped = _promote(wrapped, _scalar_dtype(x))
    return _combine(dim, _combine(zero, wrapped))


def _scalar_dtype(x) -> np.dtype:
    if isinstance(x, (bool, np.bool_)):
        return bool_
    if isinstance(x, (builtins_int, np.integer)):
        return int64
    if isinstance(x, (builtins_float, np.floating)):
        return _default_float[0]
    if isinstance(x, (complex, np.complexfloating)):
        return complex_of(_default_float[0])
    raise TypeError(f"unsupported operand type {type(x).__name__}")


def _promote(a, b) -> np.dtype:
    """torch.promote_types: across categories the higher one's dtype (int64 + float32 is
    float32, where numpy says float64), within one numpy's rule."""
    if a is None or a == b:
        return b
    ca, cb = _category(a), _category(b)
    if ca != cb:
        if ca == 3 and cb == 2 or ca == 2 and cb == 3:  # float64 + complex64 is complex128
            return np.promote_types(a, b)
        return a if ca > cb else b
    if ca == 1 and (a in _WIDE_UNSIGNED or b in _WIDE_UNSIGNED):
        # numpy's answer is not PyTorch's to give: uint64 + int64 would be float64
        raise RuntimeError(f"Promotion for uint16, uint32, uint64 types is not supported, attempted to promote "
                           f"{_NAMES.get(a, a)} and {_NAMES.get(b, b)}")
    return np.promote_types(a, b)  # ml_dtypes: bfloat16 + float16 is float32, as in PyTorch


_WIDE_UNSIGNED = frozenset((uint16, uint32, uint64))


def _combine(higher, lower) -> np.dtype:
    """A higher-priority group's dtype, unless the lower group's category beats it."""
    if higher is None:
        return lower
    if lower is not None and lower.kind == "c" and higher.kind != "c":
        # a complex 0-d tensor or scalar keeps a floating tensor's precision: float32[3] + 1j is complex64
        return complex_of(higher) if kind_of(higher) == "f" else lower
    if lower is None or kind_of(higher) in "fc":
        return higher
    if higher == bool_ or kind_of(lower) == "f":
        return _promote(higher, lower)
    return higher


def _category(d) -> int:
    return {"b": 0, "u": 1, "i": 1, "f": 2}.get(kind_of(d), 3)


# ---------------------------------------------------------------- complex dtypes
def is_complex(d) -> bool:
    return np.dtype(d).kind == "c"


def complex_of(d) -> np.dtype:
    """The complex dtype whose parts are the floating dtype ``d`` (float64 -> complex128)."""
    d = np.dtype(d)
    return d if d.kind == "c" else complex128 if d == float64 else complex64


def real_of(d) -> np.dtype:
    """The floating dtype of a complex dtype's parts (complex64 -> float32); others unchanged."""
    d = np.dtype(d)
    return np.dtype(d.char.lower()) if d.kind == "c" else d


builtins_int = _b.int
builtins_float = _b.float


for _d in (float32, float64, float16, int64, int32, int16, int8, uint8, uint16, uint32, uint64, bool_, complex64,
           complex128, bfloat16, float8_e4m3fn, float8_e5m2):
    if _d is not None:
        _PUBLIC[_d] = _make(_d, _NAMES[_d])
complex32 = _named_only("complex32", "c", 4, "c32", is_floating_point=False, is_complex=True, is_signed=True)
