"""Names a ported PyTorch script touches that are not ops: ``Size``, ``dtype``, the legacy
``FloatTensor``-style constructors, ``inference_mode``, ``finfo``/``iinfo``, the switches that
are no-ops on a deterministic CPU library (``use_deterministic_algorithms``, ``compile``, ...).
(``out=`` is part of each op's declaration: see ``ops/surface.py``.)"""
from __future__ import annotations


import math

import numpy as np

from . import _dtype
from .ops import creation
from ._tape import grad_mode
from ._tape.grad_mode import _GradModeContext  # noqa: F401
from .autograd.grad_mode import inference_mode, is_inference_mode_enabled  # noqa: F401  (PyTorch's top-level names)
from .nn.modules.module import Module
from .tensor import Size, Tensor  # noqa: F401  (Size: tapegrad.Size)
from .ops import format as _format

dtype = _dtype.DType  # isinstance(x.dtype, tapegrad.dtype) holds


class _LegacyMeta(type):
    def __instancecheck__(cls, obj):
        return isinstance(obj, Tensor) and obj._data.dtype == cls._dtype


class _LegacyTensor(metaclass=_LegacyMeta):
    """``FloatTensor(2, 3)`` (uninitialised sizes) or ``FloatTensor([1, 2])`` (data), as PyTorch's."""

    _dtype = _dtype.float32

    def __new__(cls, *args):
        if len(args) == 1 and (isinstance(args[0], bool) or not isinstance(args[0], (int, np.integer, Size))):
            data = args[0]
            if isinstance(data, (bool, float, complex)):  # a number is neither data nor a size
                raise TypeError(f"new(): data must be a sequence (got {type(data).__name__})")
            if isinstance(data, Tensor):  # PyTorch's: the same memory, in this class's dtype only
                if data.dtype != cls._dtype:
                    raise TypeError(f"{cls.__name__}(): expected a {_dtype.name(cls._dtype)} tensor "
                                    f"(got {_dtype.name(data.dtype)})")
                return data.detach()
            return creation.tensor(data, dtype=cls._dtype)
        sizes = tuple(args[0]) if len(args) == 1 and isinstance(args[0], Size) else args or (0,)
        return creation.zeros(*sizes, dtype=cls._dtype)


class FloatTensor(_LegacyTensor):
    _dtype = _dtype.float32


class DoubleTensor(_LegacyTensor):
    _dtype = _dtype.float64


class LongTensor(_LegacyTensor):
    _dtype = _dtype.int64


class IntTensor(_LegacyTensor):
    _dtype = _dtype.int32


class BoolTensor(_LegacyTensor):
    _dtype = _dtype.bool_


class ByteTensor(_LegacyTensor):
    _dtype = _dtype.uint8


class CharTensor(_LegacyTensor):
    _dtype = _dtype.int8


class ShortTensor(_LegacyTensor):
    _dtype = _dtype.int16


class HalfTensor(_LegacyTensor):
    _dtype = _dtype.float16


class BFloat16Tensor(_LegacyTensor):
    """bfloat16 comes from ml_dtypes (a dependency of tapegrad); where it is missing this
    constructor says what to install, and no tensor is an instance of it."""

    _dtype = _dtype.bfloat16

    def __new__(cls, *args):
        if cls._dtype is None:
            raise RuntimeError("BFloat16Tensor: " + _dtype.BFLOAT16_MISSING)
        return super().__new__(cls, *args)


class finfo:
    """Machine limits of a floating dtype (the default one when none is given): ``eps``, ``max``,
    ``min``, ``tiny``/``smallest_normal``, ``resolution``, ``bits``, as Python floats."""

    def __init__(self, type=None):
        d = _dtype.to_dtype(type) if type is not None else _dtype.default_float()
        if _dtype.kind_of(d) != "f":
            raise TypeError(f"finfo: expected a floating point dtype, got {_dtype.name(d)}")
        info = np.finfo(d)
        self.dtype = _dtype.name(d).removeprefix("tapegrad.")
        self.bits = info.bits
        self.eps = float(info.eps)
        self.max = float(info.max)
        self.min = float(info.min)
        self.tiny = self.smallest_normal = float(info.smallest_normal)
        # PyTorch's: 10 ** -digits10 (C++'s decimal digits of the mantissa), as a double; numpy's
        # precision says 1 for the float8 dtypes where digits10 is 0
        self.resolution = 10.0 ** -math.floor(info.nmant * math.log10(2))

    def __repr__(self):
        return (f"finfo(resolution={self.resolution}, min={self.min:g}, max={self.max:g}, eps={self.eps:g}, "
                f"smallest_normal={self.smallest_normal:g}, tiny={self.tiny:g}, dtype={self.dtype})")


class iinfo:
    """Limits of an integer dtype: ``min``, ``max``, ``bits``."""

    def __init__(self, type):
        d = _dtype.to_dtype(type)
        if d.kind not in "iub":
            raise TypeError(f"iinfo: expected an integer dtype, got {_dtype.name(d)}")
        info = np.iinfo(np.uint8 if d.kind == "b" else d)
        self.dtype = _dtype.name(d).removeprefix("tapegrad.")
        self.bits, self.min, self.max = info.bits, int(info.min), int(info.max)

    def __repr__(self):
        return f"iinfo(min={self.min}, max={self.max}, dtype={self.dtype})"


def is_floating_point(input) -> bool:
    """Whether ``input``'s dtype is a floating type."""
    return _dtype.kind_of(input.dtype) == "f"


def is_nonzero(input) -> bool:
    """The truth of a one-element tensor; raises RuntimeError for any other size, as PyTorch."""
    if input.numel() != 1:
        raise RuntimeError(f"Boolean value of Tensor with {'no values' if input.numel() == 0 else 'more than one value'} "
                           f"is ambiguous")
    return bool(input.item())


def result_type(tensor1, tensor2) -> dtype:
    """The dtype PyTorch's promotion gives ``tensor1 op tensor2`` (tensors or Python numbers)."""
    a = tensor1._data if isinstance(tensor1, Tensor) else tensor1
    b = tensor2._data if isinstance(tensor2, Tensor) else tensor2
    if not isinstance(a, np.ndarray) and not isinstance(b, np.ndarray):
        a = np.asarray(a, dtype=_dtype.default_float() if isinstance(a, float) else None)
        if a.dtype.kind == "i":
            a = a.astype(np.int64)
    return _dtype.public(_dtype.result_type(a, b))


def promote_types(type1, type2) -> dtype:
    """The dtype that an op on ``type1`` and ``type2`` returns (PyTorch's promotion rules).

    >>> tapegrad.promote_types(tapegrad.int64, tapegrad.float32)
    tapegrad.float32
    """
    return _dtype.public(_dtype.result_type(np.empty(1, _dtype.to_dtype(type1)), np.empty(1, _dtype.to_dtype(type2))))


def can_cast(from_, to) -> bool:
    """Whether PyTorch's rule allows casting ``from_`` to ``to``: never down a category (bool <
    integer < floating < complex), any width or signedness within one."""
    return _dtype.can_cast(_dtype.to_dtype(from_), _dtype.to_dtype(to))


def set_printoptions(precision=None, threshold=None, edgeitems=None, linewidth=None, profile=None, sci_mode=None):
    """How tensors print (``precision`` digits, ``threshold`` elements before summarising, ...)."""
    _format.set_printoptions(precision, threshold, edgeitems, linewidth, profile, sci_mode)


_deterministic = [False, False]  # mode, warn_only


def use_deterministic_algorithms(mode: bool, *, warn_only: bool = False) -> None:
    """Accepted for compatibility: tapegrad's kernels are always deterministic."""
    _deterministic[:] = [bool(mode), bool(warn_only)]


def is_deterministic_algorithms_warn_only_enabled() -> bool:
    """The ``warn_only`` that ``use_deterministic_algorithms`` last set."""
    return _deterministic[1]


def are_deterministic_algorithms_enabled() -> bool:
    """What ``use_deterministic_algorithms`` last set; the kernels are deterministic either way."""
    return _deterministic[0]


def set_float32_matmul_precision(precision: str) -> None:
    """Accepted for compatibility (``'highest'``, ``'high'`` or ``'medium'``): float32 products
    always run in full float32 precision."""
    if precision not in ("highest", "high", "medium"):
        raise RuntimeError(f"set_float32_matmul_precision: expected 'highest', 'high' or 'medium', got {precision!r}")


def get_float32_matmul_precision() -> str:
    """``'highest'``: float32 products always run in full float32 precision."""
    return "highest"


def compile(model=None, **kwargs):  # noqa: A001  (PyTorch's name)
    """``torch.compile``: tapegrad runs eagerly, so the model (or function) comes back unchanged;
    usable as ``compile(model)``, ``@compile`` and ``@compile(mode=...)``.

    A module gets an ``_orig_mod`` attribute that is the module itself, so code written for
    PyTorch's wrapper (``model._orig_mod.state_dict()``) runs; unlike PyTorch's wrapper, the
    module's own ``state_dict()`` keys carry no ``_orig_mod.`` prefix, so a checkpoint saved from a
    "compiled" model loads into a plain one (and code that strips the prefix finds none)."""
    if model is None:
        return compile
    if isinstance(model, Module):
        object.__setattr__(model, "_orig_mod", model)  # not a submodule: no second copy in state_dict
    return model


class _Symbolic:
    """Base of ``SymInt``, ``SymFloat``, ``SymBool``: PyTorch's symbolic sizes, which only its
    compiler's tracing (dynamic shapes) makes. tapegrad runs eagerly, so sizes are always plain
    ints and nothing is an instance of these; they exist for the checks libraries write, such as
    ``isinstance(n, (int, torch.SymInt))`` (kornia). Making one raises ``RuntimeError``."""

    __slots__ = ()

    def __init__(self, node=None):
        raise RuntimeError(f"tapegrad has no symbolic shapes: a {type(self).__name__} needs a symbolic node from "
                           f"torch.compile's tracing (tapegrad runs eagerly; sizes are ints)")


class SymInt(_Symbolic):
    """A symbolic int (see :class:`_Symbolic`); ``isinstance(3, tapegrad.SymInt)`` is False."""

    __slots__ = ()


class SymFloat(_Symbolic):
    """A symbolic float (see :class:`_Symbolic`)."""

    __slots__ = ()


class SymBool(_Symbolic):
    """A symbolic bool (see :class:`_Symbolic`)."""

    __slots__ = ()


__all__ = ["dtype", "Size", "FloatTensor", "DoubleTensor", "LongTensor", "IntTensor", "BoolTensor", "ByteTensor",
           "CharTensor", "ShortTensor", "HalfTensor", "BFloat16Tensor", "inference_mode", "is_inference_mode_enabled", "finfo", "iinfo",
           "is_floating_point",
           "is_nonzero", "result_type", "promote_types", "can_cast", "set_printoptions",
           "use_deterministic_algorithms", "are_deterministic_algorithms_enabled",
           "is_deterministic_algorithms_warn_only_enabled", "set_float32_matmul_precision",
           "get_float32_matmul_precision", "compile", "SymInt", "SymFloat", "SymBool"]
