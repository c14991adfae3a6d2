"""dtypes: numpy's, under PyTorch's names, and PyTorch's promotion rules.

tapegrad's dtypes are ``numpy.dtype`` objects, so ``x.dtype == tapegrad.float32`` and
``x.dtype == np.float32`` both hold. Floating tensors default to float32, integers to int64.
Python scalars are "weak": ``float32_tensor * 2.0`` stays float32, as in PyTorch.
"""
from __future__ import annotations

import numpy as np

float32 = np.dtype(np.float32)
float64 = np.dtype(np.float64)
float16 = np.dtype(np.float16)
int64 = np.dtype(np.int64)
int32 = np.dtype(np.int32)
int16 = np.dtype(np.int16)
int8 = np.dtype(np.int8)
uint8 = np.dtype(np.uint8)
bool_ = np.dtype(np.bool_)

float = float32  # noqa: A001  (PyTorch's aliases)
double = float64
half = float16
long = int64
int = int32  # noqa: A001

_NAMES = {float32: "float32", float64: "float64", float16: "float16", int64: "int64", int32: "int32",
          int16: "int16", int8: "int8", uint8: "uint8", bool_: "bool"}

_default_float = [float32]


def get_default_dtype() -> np.dtype:
    return _default_float[0]


def set_default_dtype(d) -> None:
    d = np.dtype(d)
    if d not in (float32, float64):
        raise TypeError(f"set_default_dtype: only float32 and float64 are supported, got {d}")
    _default_float[0] = d


def name(d) -> str:
    return "tapegrad." + _NAMES.get(np.dtype(d), str(d))


def is_floating(d) -> bool:
    return np.dtype(d).kind == "f"


def to_dtype(d) -> np.dtype:
    """Accept a tapegrad/numpy dtype, a numpy scalar type or a name like 'float32'."""
    if d is None:
        return None
    if isinstance(d, str):
        d = d.removeprefix("tapegrad.").removeprefix("torch.")
    if d is bool or d == "bool":
        return bool_
    try:
        return np.dtype(d)
    except TypeError:
        raise TypeError(f"not a dtype: {d!r}") from None


def result_type(a, b) -> np.dtype:
    """PyTorch's promotion of two operands, each an ndarray or a Python scalar."""
    a_arr, b_arr = isinstance(a, np.ndarray), isinstance(b, np.ndarray)
    if a_arr and b_arr:
        da, db = a.dtype, b.dtype
        if da == db:
            return da
        # a 0-d tensor does not promote a higher category of dimensioned tensor: torch's rule
        if a.ndim == 0 and b.ndim > 0 and _category(da) <= _category(db):
            return db
        if b.ndim == 0 and a.ndim > 0 and _category(db) <= _category(da):
            return da
        if _category(da) != _category(db):  # int64 + float32 is float32 in PyTorch (numpy says float64)
            return da if _category(da) > _category(db) else db
        return np.promote_types(da, db)
    arr, scalar = (a, b) if a_arr else (b, a)
    d = arr.dtype
    cat = _category(d)
    if isinstance(scalar, (bool, np.bool_)):
        return d
    if isinstance(scalar, (builtins_int, np.integer)):
        return d if cat >= 1 else int64
    if isinstance(scalar, (builtins_float, np.floating)):
        return d if cat >= 2 else _default_float[0]
    if isinstance(scalar, complex):
        raise TypeError("complex numbers are not supported by tapegrad")
    raise TypeError(f"unsupported operand type {type(scalar).__name__}")


def _category(d) -> int:
    return {"b": 0, "u": 1, "i": 1, "f": 2}.get(d.kind, 3)


import builtins as _b  # noqa: E402

builtins_int = _b.int
builtins_float = _b.float
