"""``autocast``: the state PyTorch keeps per device type and per thread, and the context manager /
decorator. On ``"cpu"`` the ops of PyTorch's CPU lists cast their inputs (``ops/_autocast.py``):
linear, matmul, conv, bmm, ... to the autocast dtype (bfloat16 by default), the losses and
linear algebra to float32; GEMM and convolution accumulate in float32 and round their outputs."""
from __future__ import annotations

import functools
import warnings

from .. import _dtype
from ..ops import _autocast
from ..ops._autocast import GPU_TYPES as _GPU_TYPES
from ..tensor import Tensor


def _devices():
    return _autocast.state.devices


def _fast_dtype(dtype):
    if dtype is None:
        return None
    if str(dtype).rsplit(".", 1)[-1] == "bfloat16":
        if _dtype.bfloat16 is None:
            raise TypeError(_dtype.BFLOAT16_MISSING)
        return _dtype.bfloat16
    return _dtype.to_dtype(dtype)


def _name(d):
    return "tapegrad.bfloat16" if isinstance(d, str) else _dtype.name(d)


def is_autocast_available(device_type: str) -> bool:
    """Whether ``device_type`` is one autocast knows (``'cpu'``, ``'cuda'``, ...)."""
    return device_type in _devices()


def _check(device_type):
    devices = _devices()
    if device_type not in devices:
        raise RuntimeError(f"User specified an unsupported autocast device_type '{device_type}'")
    return devices[device_type]


def is_autocast_enabled(device_type: str = "cuda") -> bool:
    """Whether autocast is on for ``device_type`` (in this thread)."""
    return _check(device_type)[0]


def set_autocast_enabled(device_type: str, enabled: bool) -> None:
    """Turn autocast on or off for ``device_type`` (what ``autocast`` does on entry and exit)."""
    _check(device_type)[0] = bool(enabled)


def get_autocast_dtype(device_type: str):
    """The autocast dtype of ``device_type`` (``tapegrad.bfloat16`` for the CPU's default)."""
    return _dtype.public(_check(device_type)[1])


def set_autocast_dtype(device_type: str, dtype) -> None:
    """Set the dtype that autocast casts to on ``device_type``."""
    _check(device_type)[1] = _fast_dtype(dtype)


def is_autocast_cache_enabled() -> bool:
    """Whether autocast may cache casts (accepted; tapegrad casts each time)."""
    return _autocast.state.cache_enabled


def set_autocast_cache_enabled(enabled: bool) -> None:
    """Record whether autocast may cache casts (this thread; tapegrad casts each time)."""
    _autocast.state.cache_enabled = bool(enabled)


class autocast:  # noqa: N801  (PyTorch's name)
    """``with tapegrad.autocast("cpu"):`` / ``@tapegrad.autocast("cuda", enabled=False)``.

    On ``"cpu"`` with bfloat16 (the default) or float16, the ops of PyTorch's CPU lists cast their
    inputs as PyTorch's do: ``linear``, ``matmul``, ``conv*``, ``bmm``, ... compute in the 16-bit
    dtype (accumulating in float32), the losses and linear algebra in float32, the rest in their
    inputs' dtype. Any other dtype disables it with PyTorch's warning. GPU device types disable it
    with PyTorch's warning ("CUDA is not available"), so ``autocast(enabled=use_amp)`` runs
    unchanged on the CPU.

    >>> with tapegrad.autocast("cpu"):
    ...     y = model(x)          # y.dtype is tapegrad.bfloat16 after a final Linear
    """

    def __init__(self, device_type: str, dtype=None, enabled: bool = True, cache_enabled=None):
        if not isinstance(device_type, str):
            raise ValueError(f"Expected `device_type` of type `str`, got: `{type(device_type)}`")
        _check(device_type)
        self.device = device_type
        self.fast_dtype = get_autocast_dtype(device_type) if dtype is None else _fast_dtype(dtype)
        if isinstance(self.fast_dtype, str) and enabled:  # the CPU's default, without ml_dtypes
            raise TypeError(f"autocast('cpu') casts to bfloat16 by default: {_dtype.BFLOAT16_MISSING}, or pass "
                            f"dtype=tapegrad.float16")
        self._cache_enabled = is_autocast_cache_enabled() if cache_enabled is None else cache_enabled
        if enabled:
            if device_type in _GPU_TYPES:
                warnings.warn(f"{device_type.upper()} is not available (tapegrad runs on the CPU only). "
                              f"Disabling autocast.", stacklevel=2)
                enabled = False
            elif not (_dtype.is_16bit_float(self.fast_dtype)):
                warnings.warn(f"In CPU autocast, but the target dtype is not supported. Disabling autocast.\n"
                              f"CPU Autocast only supports dtypes of tapegrad.bfloat16, tapegrad.float16 currently."
                              f" (got {_name(self.fast_dtype)})", stacklevel=2)
                enabled = False
        self._enabled = bool(enabled)

    def __enter__(self):
        st, shared = _check(self.device), _autocast.state
        self._prev = (st[0], st[1], shared.cache_enabled)
        st[0], st[1] = self._enabled, self.fast_dtype
        shared.cache_enabled = self._cache_enabled
        return self

    def __exit__(self, *exc):
        st = _check(self.device)
        st[0], st[1], _autocast.state.cache_enabled = self._prev
        return False

    def __call__(self, func):
        if not callable(func):
            raise TypeError(f"autocast()(func) requires a callable, but got {type(func).__name__}. Did you mean to "
                            f"use autocast as a context manager? For example:\n"
                            f"    with tapegrad.autocast(device_type=...):\n        output = model(input)")

        @functools.wraps(func)
        def wrapped(*args, **kwargs):
            with self:
                return func(*args, **kwargs)
        return wrapped


def _cast(value, dtype):
    if isinstance(value, Tensor):
        return value.to(dtype) if _dtype.is_floating(value.dtype) else value
    if isinstance(value, (str, bytes)):
        return value
    if isinstance(value, dict):
        return {k: _cast(v, dtype) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_cast(v, dtype) for v in value)
    return value


def custom_fwd(fwd=None, *, device_type: str, cast_inputs=None):
    """For ``forward`` of an ``autograd.Function``: inside an enabled autocast region, with
    ``cast_inputs`` set, casts floating inputs to it and runs ``forward`` with autocast off."""
    if fwd is None:
        return functools.partial(custom_fwd, device_type=device_type, cast_inputs=cast_inputs)

    @functools.wraps(fwd)
    def decorate_fwd(ctx, *args, **kwargs):
        ctx._dtype = get_autocast_dtype(device_type)
        if cast_inputs is None:
            ctx._fwd_used_autocast = is_autocast_enabled(device_type)
            return fwd(ctx, *args, **kwargs)
        ctx._fwd_used_autocast = False
        if is_autocast_enabled(device_type):
            dtype = _fast_dtype(cast_inputs)
            with autocast(device_type, enabled=False):
                return fwd(ctx, *_cast(args, dtype), **_cast(kwargs, dtype))
        return fwd(ctx, *args, **kwargs)
    return decorate_fwd


def custom_bwd(bwd=None, *, device_type: str):
    """For ``backward`` of an ``autograd.Function``: runs it in the autocast state ``forward`` had."""
    if bwd is None:
        return functools.partial(custom_bwd, device_type=device_type)

    @functools.wraps(bwd)
    def decorate_bwd(ctx, *args, **kwargs):
        state = _check(device_type)
        prev = tuple(state)
        state[0], state[1] = getattr(ctx, "_fwd_used_autocast", False), getattr(ctx, "_dtype", state[1])
        try:
            return bwd(ctx, *args, **kwargs)
        finally:
            state[0], state[1] = prev
    return decorate_bwd
