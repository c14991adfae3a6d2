"""Top-level names of ``torch`` that are not ops: process-wide switches (warnings, determinism
debug mode, default device and tensor type, anomaly mode, the legacy CPU autocast functions),
predicates and helpers over tensors (``typename``, ``is_same_size``, ``detach``, ...), legacy
constructors (``range``, ``scalar_tensor``, ``asarray``, ``frombuffer``, ``empty_strided``) and
``vmap``. Each behaves as PyTorch's on a CPU-only machine; where a switch has nothing to act on
here (every kernel is deterministic, numpy cannot flush denormals) its docstring says so.
"""
from __future__ import annotations

import builtins
import collections
import threading
import warnings

import numpy as np
import scipy.linalg as _sla

from . import _dtype, amp
from . import linalg as _linalg
from .autograd import compat as _anomaly
from .autograd.function import Function as _Function
from .amp import autocast_mode as _autocast_mode
from .device import check_layout, check_cpu as _check_cpu, device as _device
from .ops import creation as _creation
from .ops import shape as _shape
from .ops.pointwise import where as _where
from .tensor import Tensor
from .utils.dlpack import to_dlpack  # noqa: F401  (torch.to_dlpack)
from .amp import GradScaler  # noqa: F401  (torch.GradScaler, torch.amp.GradScaler's alias)

_lock = threading.Lock()
_settings = {"warn_always": False, "debug_mode": 0}


# ---------------------------------------------------------------- switches
def set_warn_always(b: bool) -> None:
    """Make warnings that PyTorch shows once per process show every time (``warnings``'
    ``"always"`` filter for tapegrad's UserWarnings while on)."""
    with _lock:
        _settings["warn_always"] = bool(b)
        warnings.filterwarnings("always" if b else "default", category=UserWarning, module=r"tapegrad\b")


def is_warn_always_enabled() -> bool:
    """What ``set_warn_always`` last set."""
    return _settings["warn_always"]


_DEBUG_MODES = {"default": 0, "warn": 1, "error": 2}


def set_deterministic_debug_mode(debug_mode) -> None:
    """``0``/``"default"``, ``1``/``"warn"`` or ``2``/``"error"``: what a nondeterministic op
    should do. Recorded and reported; tapegrad has no nondeterministic op to warn about."""
    mode = _DEBUG_MODES.get(debug_mode, debug_mode) if isinstance(debug_mode, str) else debug_mode
    if isinstance(debug_mode, str) and debug_mode not in _DEBUG_MODES:
        raise RuntimeError(f"invalid value of debug_mode, expected one of `default`, `warn`, `error`, "
                           f"but got {debug_mode}")
    if mode not in (0, 1, 2) or isinstance(mode, bool):
        raise RuntimeError(f"invalid value of debug_mode, expected 0, 1, or 2, but got {debug_mode!r}")
    with _lock:
        _settings["debug_mode"] = int(mode)


def get_deterministic_debug_mode() -> int:
    """What ``set_deterministic_debug_mode`` last set, as 0, 1 or 2."""
    return _settings["debug_mode"]


def set_flush_denormal(mode: bool) -> bool:
    """Returns False: flushing denormals to zero is not supported (numpy computes with them), so
    the mode is unchanged, as PyTorch reports on a CPU without the SSE3 switch."""
    return False


def set_default_device(device) -> None:
    """Accepts the CPU (or None) and raises for any other device, as ``tapegrad.device`` does:
    every tensor is created on the CPU."""
    if device is not None:
        _check_cpu(device)


def get_default_device():
    """``device(type='cpu')``: where every tapegrad tensor lives."""
    return _device("cpu")


_TENSOR_TYPES = {"torch.FloatTensor": _dtype.float32, "torch.DoubleTensor": _dtype.float64,
                 "tapegrad.FloatTensor": _dtype.float32, "tapegrad.DoubleTensor": _dtype.float64}


def set_default_tensor_type(t) -> None:
    """The deprecated form of ``set_default_dtype``: ``FloatTensor``/``DoubleTensor`` (the classes
    or their ``"torch.FloatTensor"`` names) set the default float dtype."""
    name = t if isinstance(t, str) else f"tapegrad.{getattr(t, '__name__', type(t).__name__)}"
    if name not in _TENSOR_TYPES:
        raise TypeError(f"set_default_tensor_type: only FloatTensor and DoubleTensor (CPU) are supported, got {t!r}")
    _dtype.set_default_dtype(_TENSOR_TYPES[name])


def is_anomaly_enabled() -> bool:
    """Whether anomaly detection is on in this thread (``autograd.detect_anomaly``)."""
    return _anomaly.is_anomaly_enabled()


def is_anomaly_check_nan_enabled() -> bool:
    """Whether anomaly mode, when on, also raises on NaN gradients (its ``check_nan``)."""
    return bool(_anomaly._state.anomaly and _anomaly._state.check_nan)


def set_anomaly_enabled(enabled: bool, check_nan: bool = True) -> None:
    """Switch anomaly detection on or off in this thread (``autograd.set_detect_anomaly``)."""
    _anomaly.set_detect_anomaly(enabled, check_nan)


# the legacy per-device autocast functions, over amp's device_type forms
def is_autocast_cpu_enabled() -> bool:
    """``amp.is_autocast_enabled("cpu")``."""
    return amp.is_autocast_enabled("cpu")


def set_autocast_cpu_enabled(enabled: bool) -> None:
    """``amp.set_autocast_enabled("cpu", enabled)``."""
    amp.set_autocast_enabled("cpu", enabled)


def get_autocast_cpu_dtype():
    """``amp.get_autocast_dtype("cpu")``."""
    return amp.get_autocast_dtype("cpu")


def set_autocast_cpu_dtype(dtype) -> None:
    """``amp.set_autocast_dtype("cpu", dtype)``."""
    amp.set_autocast_dtype("cpu", dtype)


def is_autocast_cache_enabled() -> bool:
    """Whether autocast would cache the casts of weights (nothing is cast and cached here)."""
    return _autocast_mode.is_autocast_cache_enabled()


def set_autocast_cache_enabled(enabled: bool) -> None:
    """Recorded for ``is_autocast_cache_enabled``; tapegrad keeps no cast cache."""
    _autocast_mode.set_autocast_cache_enabled(enabled)


def clear_autocast_cache() -> None:
    """Nothing to clear: tapegrad's autocast keeps no cache of cast weights."""


# ---------------------------------------------------------------- predicates and helpers
_LEGACY_NAMES = _dtype.LEGACY_NAMES


def _assert(condition, message):
    """``torch._assert``: ``assert condition, message`` as a function (torchvision's models call it;
    a one-element tensor condition is read by its truth value)."""
    if not condition:
        raise AssertionError(message)


def _assert_async(input, assert_msg=None) -> None:
    """``torch._assert_async``: raise ``RuntimeError`` unless the one-element tensor ``input`` is
    nonzero (PyTorch's check that a device runs without a host sync; on the CPU, at once).
    kornia's losses check their class labels with it.

    >>> tapegrad._assert_async(tapegrad.tensor(True), "never raised")
    """
    if not isinstance(input, Tensor):
        raise TypeError(f"_assert_async(): argument 'input' (position 1) must be Tensor, not {type(input).__name__}")
    if assert_msg is not None and not isinstance(assert_msg, str):
        raise TypeError(f"_assert_async(): argument 'assert_msg' (position 2) must be str, not "
                        f"{type(assert_msg).__name__}")
    if input.numel() != 1:
        raise RuntimeError(f"Boolean value of Tensor with {'no values' if input.numel() == 0 else 'more than one value'} "
                           f"is ambiguous")
    if not bool(input._data.reshape(-1)[0]):
        raise RuntimeError(assert_msg if assert_msg is not None
                           else "Expected Tensor with single nonzero value, but got zero")


def typename(obj) -> str:
    """PyTorch's legacy type name of a tensor's dtype under tapegrad's name
    (``'tapegrad.FloatTensor'``), the qualified class name of anything else (``'int'``)."""
    if isinstance(obj, Tensor):
        return "tapegrad." + _LEGACY_NAMES.get(obj.dtype.name, obj.dtype.name)
    cls = obj if isinstance(obj, type) else type(obj)
    module = cls.__module__
    return cls.__qualname__ if module in (None, "builtins") else f"{module}.{cls.__qualname__}"


def is_same_size(input, other) -> bool:
    """Whether the two tensors have the same shape."""
    return input.shape == other.shape


def is_signed(input) -> bool:
    """Whether ``input``'s dtype is signed (floats and signed integers; not bool or uint8)."""
    return input.dtype.kind in "fic"


def is_inference(input) -> bool:
    """False: tapegrad has no inference tensors (``inference_mode`` is ``no_grad``)."""
    return False


def is_distributed(input) -> bool:
    """False, as PyTorch's for every ordinary tensor."""
    return False


def get_device(input) -> int:
    """-1: the device index of a CPU tensor."""
    return -1


def detach(input):
    """``input.detach()``: the same storage, cut from the graph."""
    return input.detach()


def detach_(input):
    """``input.detach_()``: cut ``input`` itself from the graph."""
    return input.detach_()


def fill(input, value):
    """A new tensor of ``input``'s shape and dtype filled with ``value`` (``fill_`` out of place;
    its gradient reaches ``value`` when that is a 0-d tensor, and is zero for ``input``)."""
    if isinstance(value, Tensor):
        if value.ndim:
            raise RuntimeError(f"fill only supports 0-dimension value tensor but got tensor with {value.ndim} "
                               f"dimensions (shape {tuple(value.shape)})")
        filled = value.to(input.dtype).expand(tuple(input.shape))
    else:
        filled = _creation.full_like(input, value)
    # selected everywhere, so input's NaN and inf stay out (input * 0 + value made them NaN), and the
    # result is in input's graph with a zero gradient, as PyTorch's
    return _where(_creation.ones_like(input, dtype=_dtype.bool_), filled, input)


# ---------------------------------------------------------------- constructors
def scalar_tensor(s, *, dtype=None, device=None, requires_grad=False):
    """A 0-d tensor holding ``s``, of the default float dtype unless ``dtype`` says otherwise."""
    return _creation.tensor(s, dtype=dtype or _dtype.default_float(), device=device,
                            requires_grad=requires_grad)


def range(start, end, step=1, *, dtype=None, device=None, requires_grad=False):  # noqa: A001
    """The deprecated ``torch.range``: ``start`` to ``end`` *inclusive*, of the default float dtype
    (``arange`` excludes ``end``)."""
    if step == 0:
        raise RuntimeError("range: step must be nonzero")
    if (end - start) * step < 0:
        raise RuntimeError(f"range: upper bound and larger bound inconsistent with step sign "
                           f"(start={start}, end={end}, step={step})")
    n = int(np.floor((end - start) / step)) + 1
    dt = _dtype.to_dtype(dtype) if dtype is not None else _dtype.default_float()
    return _creation.tensor(start + step * np.arange(n, dtype=np.float64), dtype=dt, device=device,
                            requires_grad=requires_grad)


def asarray(obj, *, dtype=None, device=None, copy=None, requires_grad=False):
    """``obj`` as a tensor, sharing memory when it can (a tensor, a numpy array or a DLPack/buffer
    producer of a matching dtype) unless ``copy=True``; ``copy=False`` raises when a copy would be
    needed. Python numbers and lists are copied (a float list gets the default dtype)."""
    dt = _dtype.to_dtype(dtype) if dtype is not None else None
    if isinstance(obj, Tensor):
        out = obj if dt is None or obj.dtype == dt else obj.to(dt)
        if copy and out is obj:
            out = obj.clone()
    elif isinstance(obj, np.ndarray) or hasattr(obj, "__array_interface__") or hasattr(obj, "__dlpack__"):
        arr = np.from_dlpack(obj) if not isinstance(obj, np.ndarray) and hasattr(obj, "__dlpack__") else np.asarray(obj)
        if copy is False and dt is not None and arr.dtype != dt:
            raise ValueError(f"asarray: copy=False, but converting {arr.dtype} to {dt} needs a copy")
        arr = np.array(arr, dtype=dt, copy=True) if copy else np.asarray(arr, dtype=dt)
        out = Tensor._wrap(arr)
    else:
        if copy is False:
            raise ValueError(f"asarray: copy=False, but a {type(obj).__name__} has to be copied")
        out = _creation.tensor(obj, dtype=dt)
    if device is not None:
        _check_cpu(device)
    if requires_grad:
        out.requires_grad_(True)
    return out


def frombuffer(buffer, *, dtype, count=-1, offset=0, requires_grad=False):
    """A 1-D tensor over the memory of an object with the buffer protocol (``bytearray``,
    ``array.array``, ``mmap``): no copy, writes go through, as in PyTorch."""
    arr = np.frombuffer(buffer, dtype=_dtype.to_dtype(dtype), count=count, offset=offset)
    if arr.size == 0:
        raise ValueError(f"frombuffer: both buffer length ({len(memoryview(buffer).cast('B'))}) and count "
                         f"({count}) must not be 0")
    t = Tensor._wrap(arr)
    if requires_grad:
        t.requires_grad_(True)
    return t


def empty_strided(size, stride, *, dtype=None, layout=None, device=None, requires_grad=False, pin_memory=False):
    """A zero-filled tensor of shape ``size``. ``stride`` is checked (one per dimension, none
    negative) but the result is C-contiguous: tapegrad tensors are numpy arrays, and PyTorch's
    strides only change where the elements lie, not any value."""
    size, stride = tuple(size), tuple(stride)
    if len(size) != len(stride):
        raise RuntimeError(f"empty_strided: mismatch in length of strides and shape ({len(stride)} and {len(size)})")
    if any(s < 0 for s in stride):
        raise RuntimeError(f"empty_strided: negative strides are not supported, got {stride}")
    check_layout(layout, "empty_strided")
    return _creation.zeros(*size, dtype=dtype, device=device, requires_grad=requires_grad)


def empty_permuted(size, physical_layout, *, dtype=None, layout=None, device=None, requires_grad=False,
                   pin_memory=False):
    """A zero-filled tensor of shape ``size`` (``physical_layout`` is checked to be a permutation;
    the result is C-contiguous, as ``empty_strided``'s)."""
    size = tuple(size)
    if sorted(physical_layout) != list(builtins.range(len(size))):
        raise RuntimeError(f"empty_permuted: physical_layout {tuple(physical_layout)} is not a permutation of "
                           f"the {len(size)} dims")
    check_layout(layout, "empty_permuted")
    return _creation.zeros(*size, dtype=dtype, device=device, requires_grad=requires_grad)


# ---------------------------------------------------------------- the LU factorisation's old names
_LUUnpack = collections.namedtuple("lu_unpack", ["P", "L", "U"])


def lu(A, pivot=True, get_infos=False):
    """``(LU, pivots)`` (and ``infos`` with ``get_infos``): ``linalg.lu_factor_ex``'s factorisation
    under its pre-``torch.linalg`` name; a singular matrix raises unless ``get_infos`` asks for its
    ``infos``, as PyTorch's."""
    LU, pivots, info = _linalg.lu_factor_ex(A, pivot=pivot, check_errors=not get_infos)
    return (LU, pivots, info) if get_infos else (LU, pivots)


def lu_solve(b, LU_data, LU_pivots):
    """The solution of ``A X = b`` from ``lu(A)``: ``linalg.lu_solve`` with the old argument order."""
    return _linalg.lu_solve(LU_data, LU_pivots, b)


def lu_unpack(LU_data, LU_pivots, unpack_data=True, unpack_pivots=True):
    """``(P, L, U)`` with ``A = P @ L @ U`` from ``lu(A)``'s packed result; what is not unpacked
    comes back as an empty tensor, as PyTorch's.

    >>> P, L, U = tapegrad.lu_unpack(*tapegrad.lu(A))
    """
    m = LU_data.shape[-2]
    empty = _creation.empty(0, dtype=LU_data.dtype)
    L, U = _linalg._split_lu(LU_data) if unpack_data else (empty, empty)
    P = _linalg._perm_from_pivots(LU_pivots, m, LU_data._data.dtype) if unpack_pivots else empty
    return _LUUnpack(P, L, U)


# ---------------------------------------------------------------- LAPACK's Householder QR, by its old names
_Geqrf = collections.namedtuple("geqrf", ["a", "tau"])


class _GeqrfFn(_Function):
    """LAPACK's geqrf; its backward raises, as PyTorch's (the compact form has no derivative)."""

    @staticmethod
    def forward(ctx, A):
        a = np.ascontiguousarray(A._data)
        fn = _sla.lapack.get_lapack_funcs("geqrf", (a.reshape(-1, *a.shape[-2:])[0] if a.size else a,))
        qr = np.empty_like(a)
        tau = np.empty(a.shape[:-2] + (builtins.min(a.shape[-2:]),), a.dtype)
        for idx in np.ndindex(*a.shape[:-2]):
            q, t, _, info = fn(a[idx])
            qr[idx], tau[idx] = q, t
        return Tensor._wrap(qr), Tensor._wrap(tau)

    @staticmethod
    def backward(ctx, *grads):
        raise RuntimeError("the derivative for 'geqrf' is not implemented.")


def geqrf(input):
    """``(a, tau)``: LAPACK's Householder QR in its compact form (R on and above the diagonal of
    ``a``, the reflectors below it with their scales ``tau``), batched; ``orgqr`` / ``ormqr`` use it.
    Not differentiable (its backward raises, as PyTorch's)."""
    if input.ndim < 2:
        raise RuntimeError(f"geqrf: input must have at least 2 dimensions, got shape {tuple(input.shape)}")
    if input.dtype.kind not in "fc":
        raise RuntimeError(f"geqrf: expected a floating-point or complex input, got {input.dtype}")
    return _Geqrf(*_GeqrfFn.apply(input))


def orgqr(input, tau):
    """The first ``n`` columns of Q from ``geqrf``'s ``(a, tau)``: ``linalg.householder_product``."""
    return _linalg.householder_product(input, tau)


def ormqr(input, tau, other, left=True, transpose=False):
    """``Q @ other`` (``left``) or ``other @ Q``, with Q (m x m) the product of ``geqrf``'s reflectors
    ``(input, tau)`` and its conjugate transpose with ``transpose``; differentiable in all three."""
    for name, t in (("input", input), ("other", other)):
        if t.ndim < 2:
            raise RuntimeError(f"ormqr: {name} must have at least 2 dimensions, got shape {tuple(t.shape)}")
    m, n = input.shape[-2], input.shape[-1]
    side = other.shape[-2] if left else other.shape[-1]
    if side != m:
        raise RuntimeError(f"ormqr: other's {'rows' if left else 'columns'} ({side}) must match input's rows ({m}): "
                           f"input {tuple(input.shape)}, other {tuple(other.shape)}")
    if tau.shape[-1] > builtins.min(m, n):
        raise RuntimeError(f"ormqr: tau has {tau.shape[-1]} reflectors but input {tuple(input.shape)} holds at most "
                           f"{builtins.min(m, n)}")
    full = input if n >= m else _shape.cat([input, _creation.zeros(*input.shape[:-2], m, m - n, dtype=input.dtype)], -1)
    Q = _linalg.householder_product(full[..., :, :m], tau)
    if transpose:
        Q = Q.mT.conj() if Q.dtype.kind == "c" else Q.mT
    return Q @ other if left else other @ Q


# their Tensor methods, as PyTorch's (each function takes the tensor first: ``A.lu()``, ``b.lu_solve(LU, piv)``)
for _fn in (lu, lu_solve, geqrf, orgqr, ormqr):
    setattr(Tensor, _fn.__name__, _fn)


__all__ = ["set_warn_always", "is_warn_always_enabled", "set_deterministic_debug_mode",
           "get_deterministic_debug_mode", "set_flush_denormal", "set_default_device", "get_default_device",
           "set_default_tensor_type", "is_anomaly_enabled", "is_anomaly_check_nan_enabled", "set_anomaly_enabled",
           "is_autocast_cpu_enabled", "set_autocast_cpu_enabled", "get_autocast_cpu_dtype", "set_autocast_cpu_dtype",
           "is_autocast_cache_enabled", "set_autocast_cache_enabled", "clear_autocast_cache", "typename",
           "is_same_size", "is_signed", "is_inference", "is_distributed", "get_device", "detach", "detach_", "fill",
           "scalar_tensor", "range", "asarray", "frombuffer", "empty_strided", "empty_permuted",
           "to_dlpack", "GradScaler", "lu", "lu_solve", "lu_unpack", "geqrf", "orgqr", "ormqr", "_assert", "_assert_async"]
