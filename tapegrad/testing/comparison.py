"""``assert_close``: PyTorch's ``torch.testing.assert_close``, its default tolerances per dtype and
its messages (``Tensor-likes are not close!``, the mismatch count, the greatest absolute and
relative differences with their indices)."""
from __future__ import annotations

from collections import abc

import numpy as np

from .. import _dtype
from ..tensor import Tensor

__all__ = ["assert_close"]

# (rtol, atol) by dtype, as PyTorch's; integers and bools compare exactly
_DTYPE_PRECISIONS = {np.dtype(np.float16): (0.001, 1e-5), np.dtype(np.float32): (1.3e-6, 1e-5),
                     np.dtype(np.float64): (1e-7, 1e-7)}


class _Fail(Exception):
    def __init__(self, type_, msg, id_=()):
        self.type, self.msg, self.id = type_, msg, id_


def _mismatch_msg(default_identifier, extra, abs_diff, abs_idx, atol, rel_diff, rel_idx, rtol):
    equality = rtol == 0 and atol == 0

    def line(kind, diff, idx, tol):
        msg = f"{kind.title()} difference: {diff}" if idx is None else f"Greatest {kind} difference: {diff} at index {idx}"
        return msg + ("" if equality else f" (up to {tol} allowed)") + "\n"

    msg = f"{default_identifier} are not {'equal' if equality else 'close'}!\n\n"
    if extra:
        msg += f"{extra.strip()}\n"
    msg += line("absolute", abs_diff, abs_idx, atol) + line("relative", rel_diff, rel_idx, rtol)
    return msg.strip()


def _tolerances(dtype, rtol, atol):
    if (rtol is None) ^ (atol is None):
        raise ValueError(f"Both 'rtol' and 'atol' must be either specified or omitted, "
                         f"but got no {'rtol' if rtol is None else 'atol'}.")
    if rtol is not None:
        return rtol, atol
    return _DTYPE_PRECISIONS.get(np.dtype(dtype), (0.0, 0.0))


def _is_number(x):
    return isinstance(x, (bool, int, float, np.number, np.bool_)) and not isinstance(x, np.ndarray)


def _compare_scalars(actual, expected, rtol, atol, equal_nan, check_dtype):
    if check_dtype and type(actual) is not type(expected) and not (
            isinstance(actual, float) and isinstance(expected, float)):
        raise _Fail(AssertionError, f"The values for attribute 'type' do not match: {type(actual)} != "
                                    f"{type(expected)}.")
    dt = np.float64 if isinstance(actual, float) or isinstance(expected, float) else np.int64
    rtol, atol = _tolerances(dt, rtol, atol)
    if np.isclose(actual, expected, rtol=rtol, atol=atol, equal_nan=equal_nan):
        return
    abs_diff = abs(actual - expected)
    rel_diff = float("inf") if expected == 0 else abs_diff / abs(expected)
    raise _Fail(AssertionError, _mismatch_msg("Scalars", f"Expected {expected} but got {actual}.", abs_diff, None,
                                              atol, rel_diff, None, rtol))


def _compare_tensors(actual, expected, rtol, atol, equal_nan, check_dtype):
    a, e = actual._data, expected._data
    if a.shape != e.shape:
        raise _Fail(AssertionError, f"The values for attribute 'shape' do not match: tapegrad.Size({list(a.shape)}) "
                                    f"!= tapegrad.Size({list(e.shape)}).")
    if a.dtype != e.dtype:
        if check_dtype:
            raise _Fail(AssertionError, f"The values for attribute 'dtype' do not match: {_dtype.name(a.dtype)} != "
                                        f"{_dtype.name(e.dtype)}.")
        common = np.promote_types(a.dtype, e.dtype)
        a, e = a.astype(common), e.astype(common)
    rtol, atol = _tolerances(a.dtype, rtol, atol)
    if _dtype.kind_of(a.dtype) == "f":
        matches = np.isclose(a, e, rtol=rtol, atol=atol, equal_nan=equal_nan)
    else:
        matches = a == e if rtol == 0 and atol == 0 else np.isclose(a, e, rtol=rtol, atol=atol)
    if matches.all():
        return
    if a.ndim == 0:
        raise _Fail(AssertionError, _mismatch_msg(
            "Scalars", f"Expected {e.item()} but got {a.item()}.", abs(a.item() - e.item()), None, atol,
            float("inf") if e.item() == 0 else abs(a.item() - e.item()) / abs(e.item()), None, rtol))
    n = matches.size
    mism = n - int(matches.sum())
    extra = f"Mismatched elements: {mism} / {n} ({mism / n:.1%})"
    af, ef, mf = a.ravel(), e.ravel(), matches.ravel()
    with np.errstate(all="ignore"):
        if _dtype.kind_of(a.dtype) != "f":
            af, ef = af.astype(np.int64), ef.astype(np.int64)
            abs_diff = np.abs(af - ef)
            rel_diff = abs_diff.astype(np.float32) / np.abs(ef).astype(np.float32)
        else:
            abs_diff = np.abs(af - ef)
            rel_diff = abs_diff / np.abs(ef)
    abs_diff[mf] = 0
    rel_diff[mf] = 0

    def greatest(d):  # as torch.max: a NaN wins
        nan = np.flatnonzero(np.isnan(d)) if _dtype.kind_of(d.dtype) == "f" else ()
        i = int(nan[0]) if len(nan) else int(np.argmax(d))
        return d[i].item(), tuple(int(k) for k in np.unravel_index(i, a.shape))

    (ad, ai), (rd, ri) = greatest(abs_diff), greatest(rel_diff)
    raise _Fail(AssertionError, _mismatch_msg("Tensor-likes", extra, ad, ai, atol, rd, ri, rtol))


def _compare(actual, expected, rtol, atol, equal_nan, check_dtype, id_=()):
    if isinstance(actual, Tensor) or isinstance(expected, Tensor):
        if not (isinstance(actual, Tensor) and isinstance(expected, Tensor)):
            if isinstance(actual, Tensor) and _is_number(expected) or isinstance(expected, Tensor) and _is_number(actual):
                raise _Fail(AssertionError, f"Except for scalars, type equality is required, but got "
                                            f"{type(actual)} and {type(expected)} instead.", id_)
            raise _Fail(TypeError, f"No comparison pair was able to handle inputs of type {type(actual)} and "
                                   f"{type(expected)}.", id_)
        try:
            return _compare_tensors(actual, expected, rtol, atol, equal_nan, check_dtype)
        except _Fail as f:
            raise _Fail(f.type, f.msg, id_) from None
    if _is_number(actual) and _is_number(expected):
        try:
            return _compare_scalars(actual, expected, rtol, atol, equal_nan, check_dtype)
        except _Fail as f:
            raise _Fail(f.type, f.msg, id_) from None
    if isinstance(actual, abc.Mapping) and isinstance(expected, abc.Mapping):
        if set(actual) != set(expected):
            raise _Fail(AssertionError, f"The keys of the mappings do not match:\nMissing keys in the actual mapping: "
                                        f"{sorted(set(expected) - set(actual), key=repr)}\nExtra keys in the actual "
                                        f"mapping: {sorted(set(actual) - set(expected), key=repr)}", id_)
        for k in expected:
            _compare(actual[k], expected[k], rtol, atol, equal_nan, check_dtype, (*id_, k))
        return
    if (isinstance(actual, abc.Sequence) and isinstance(expected, abc.Sequence)
            and not isinstance(actual, str) and not isinstance(expected, str)):
        if len(actual) != len(expected):
            raise _Fail(AssertionError, f"The length of the sequences mismatch: {len(actual)} != {len(expected)}", id_)
        for i, (x, y) in enumerate(zip(actual, expected)):
            _compare(x, y, rtol, atol, equal_nan, check_dtype, (*id_, i))
        return
    if actual is None and expected is None:
        return
    raise _Fail(TypeError, f"No comparison pair was able to handle inputs of type {type(actual)} and "
                           f"{type(expected)}.", id_)


def assert_close(actual, expected, *, allow_subclasses=True, rtol=None, atol=None, equal_nan=False,
                 check_device=True, check_dtype=True, check_layout=True, check_stride=False, msg=None):
    """Raises ``AssertionError`` unless ``actual`` and ``expected`` (tensors, Python numbers, or
    sequences/mappings of them) are close: ``|actual - expected| <= atol + rtol * |expected|``,
    with PyTorch's defaults by dtype (float32: rtol 1.3e-6, atol 1e-5; float64: 1e-7, 1e-7;
    float16: 1e-3, 1e-5; integers and bools: equal). ``msg`` (a string, or a callable given the
    generated message) replaces the message.

    >>> tapegrad.testing.assert_close(tapegrad.tensor([1.0, 2.0]), tapegrad.tensor([1.0, 2.0000001]))
    """
    try:
        _compare(actual, expected, rtol, atol, equal_nan, check_dtype)
    except _Fail as f:
        text = f.msg
        if f.id:
            text += f"\n\nThe failure occurred for item {''.join(f'[{k!r}]' for k in f.id)}"
        if msg is not None:
            text = msg(text) if callable(msg) else msg
        raise f.type(text) from None
