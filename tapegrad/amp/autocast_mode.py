"""``autocast``: the state PyTorch keeps per device type, and the context manager / decorator."""
from __future__ import annotations

import functools
import warnings

import numpy as np

from .. import _dtype
from ..tensor import Tensor

BFLOAT16 = "bfloat16"  # tapegrad has no bfloat16 dtype; this name stands for PyTorch's
_GPU_TYPES = ("cuda", "mps", "xpu", "hpu", "mtia", "maia", "xla")  # never available here
_state = {"cpu": [False, BFLOAT16], **{d: [False, _dtype.float16] for d in _GPU_TYPES}}
_cache_enabled = [True]
_warned = [False]


def _fast_dtype(dtype):
    if dtype is None:
        return None
    if str(dtype).rsplit(".", 1)[-1] == BFLOAT16:
        return BFLOAT16
    return _dtype.to_dtype(dtype)


def _name(d):
    return "tapegrad.bfloat16" if d == BFLOAT16 else _dtype.name(d)


def is_autocast_available(device_type: str) -> bool:
    """Whether ``device_type`` is one autocast knows (``'cpu'``, ``'cuda'``, ...)."""
    return device_type in _state


def _check(device_type):
    if device_type not in _state:
        raise RuntimeError(f"User specified an unsupported autocast device_type '{device_type}'")
    return _state[device_type]


def is_autocast_enabled(device_type: str = "cuda") -> bool:
    """Whether autocast is on for ``device_type``."""
    return _check(device_type)[0]


def set_autocast_enabled(device_type: str, enabled: bool) -> None:
    """Turn autocast on or off for ``device_type`` (what ``autocast`` does on entry and exit)."""
    _check(device_type)[0] = bool(enabled)


def get_autocast_dtype(device_type: str):
    """The autocast dtype of ``device_type`` (the string ``"bfloat16"`` for the CPU's default)."""
    return _check(device_type)[1]


def set_autocast_dtype(device_type: str, dtype) -> None:
    """Set the dtype that autocast casts to on ``device_type``."""
    _check(device_type)[1] = _fast_dtype(dtype)


def is_autocast_cache_enabled() -> bool:
    return _cache_enabled[0]


class autocast:  # noqa: N801  (PyTorch's name)
    """``with tapegrad.autocast("cpu"):`` / ``@tapegrad.autocast("cuda", enabled=False)``.

    On ``"cpu"`` with bfloat16 or float16, the region runs in the ops' own dtypes (tapegrad has no
    16-bit kernels; a warning says so once) while ``is_autocast_enabled("cpu")`` is True; any other
    dtype disables it with PyTorch's warning. GPU device types disable it with PyTorch's warning
    ("CUDA is not available"), so ``autocast(enabled=use_amp)`` runs unchanged on the CPU."""

    def __init__(self, device_type: str, dtype=None, enabled: bool = True, cache_enabled=None):
        if not isinstance(device_type, str):
            raise ValueError(f"Expected `device_type` of type `str`, got: `{type(device_type)}`")
        _check(device_type)
        self.device = device_type
        self.fast_dtype = get_autocast_dtype(device_type) if dtype is None else _fast_dtype(dtype)
        self._cache_enabled = is_autocast_cache_enabled() if cache_enabled is None else cache_enabled
        if enabled:
            if device_type in _GPU_TYPES:
                warnings.warn(f"{device_type.upper()} is not available (tapegrad runs on the CPU only). "
                              f"Disabling autocast.", stacklevel=2)
                enabled = False
            elif self.fast_dtype not in (BFLOAT16, np.dtype(np.float16)):
                warnings.warn(f"In CPU autocast, but the target dtype is not supported. Disabling autocast.\n"
                              f"CPU Autocast only supports dtypes of tapegrad.bfloat16, tapegrad.float16 currently."
                              f" (got {_name(self.fast_dtype)})", stacklevel=2)
                enabled = False
            elif not _warned[0]:
                _warned[0] = True
                warnings.warn("tapegrad has no bfloat16 or float16 kernels: autocast('cpu') runs every op in its "
                              "own dtype (float32 stays float32).", stacklevel=2)
        self._enabled = bool(enabled)

    def __enter__(self):
        st = _state[self.device]
        self._prev = (st[0], st[1], _cache_enabled[0])
        st[0], st[1] = self._enabled, self.fast_dtype
        _cache_enabled[0] = self._cache_enabled
        return self

    def __exit__(self, *exc):
        st = _state[self.device]
        st[0], st[1], _cache_enabled[0] = self._prev
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
        return value.to(dtype) if value.dtype.kind == "f" else value
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
        state = _state[device_type]
        prev = tuple(state)
        state[0], state[1] = getattr(ctx, "_fwd_used_autocast", False), getattr(ctx, "_dtype", state[1])
        try:
            return bwd(ctx, *args, **kwargs)
        finally:
            state[0], state[1] = prev
    return decorate_bwd
