"""The few ``torch._C`` functions that pure-Python libraries call, on tapegrad's ``_C``.

``torch._C`` is PyTorch's compiled core; libraries reach into it for a handful of queries and
hooks: torchmetrics calls ``_log_api_usage_once`` in every metric's constructor, torch_geometric
defines tensor subclasses with ``__torch_function__ = torch._C._disabled_torch_function_impl``,
kornia asks ``_are_functorch_transforms_active()`` before data-dependent checks. :func:`install`
adds them to :mod:`tapegrad._C` (which holds tapegrad's kernels) with the answers that are true
for tapegrad. Names not here raise ``AttributeError`` as before.
"""
from __future__ import annotations

import types

from . import _C, func
from .ops.linalg import LinAlgError

__all__ = ["install"]


def _log_api_usage_once(event: str) -> None:
    """PyTorch's usage logger: it reports to a handler that only its C++ side can set, so a call
    from Python has no effect there either."""
    if not isinstance(event, str):
        raise TypeError(f"_log_api_usage_once(): argument 'event' must be str, not {type(event).__name__}")


def _get_tracing_state():
    """None: tapegrad has no tracer (``tapegrad.jit.trace`` runs the module eagerly)."""
    return None


def _get_default_device() -> str:
    """'cpu', the device new tensors are made on (tapegrad runs on the CPU only)."""
    return "cpu"


def _are_functorch_transforms_active() -> bool:
    """Whether ``tapegrad.func``'s grad/vjp/jvp/jacrev/linearize is running the caller's function.
    ``vmap`` runs the function per sample on ordinary tensors, so data-dependent Python
    (``if (x < 0).any(): raise``) works there and the answer is False."""
    return func._nested()


def _len_torch_dispatch_stack() -> int:
    """0: tapegrad has no ``TorchDispatchMode`` stack."""
    return 0


class _DisabledTorchFunctionImpl:
    """``torch._C._disabled_torch_function_impl``: calls ``func`` itself, as a Tensor subclass's
    ``__torch_function__ = torch._C._disabled_torch_function_impl`` asks. tapegrad never
    dispatches on ``__torch_function__`` (tapegrad.overrides), so in tapegrad it is called only
    directly. A class instance, not a function, so a class attribute holding it is not bound to
    the instance (as PyTorch's builtin is not)."""

    def __call__(self, func, types, args=(), kwargs=None):
        return func(*args, **(kwargs or {}))

    def __repr__(self):
        return "<built-in function _disabled_torch_function_impl>"


class DisableTorchFunctionSubclass:
    """``with torch._C.DisableTorchFunctionSubclass():`` turns off Tensor subclasses'
    ``__torch_function__`` for the block; tapegrad never dispatches on it, so inside and outside
    the block are the same state: entering and leaving change nothing (truthfully)."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


class DisableTorchFunction(DisableTorchFunctionSubclass):
    """``torch._C.DisableTorchFunction``: also turns off modes; the same no-op here."""


def _is_functorch_wrapped_tensor(tensor) -> bool:
    """False: ``tapegrad.func``'s transforms run the function on ordinary tensors, never wrapped ones."""
    return False


_functorch = types.ModuleType("tapegrad._C._functorch", "functorch's queries (torch._C._functorch)")
_functorch.is_functorch_wrapped_tensor = _is_functorch_wrapped_tensor

_NAMES = {
    "_log_api_usage_once": _log_api_usage_once,
    "_get_tracing_state": _get_tracing_state,
    "_get_default_device": _get_default_device,
    "_are_functorch_transforms_active": _are_functorch_transforms_active,
    "_len_torch_dispatch_stack": _len_torch_dispatch_stack,
    "_disabled_torch_function_impl": _DisabledTorchFunctionImpl(),
    "_LinAlgError": LinAlgError,
    "DisableTorchFunctionSubclass": DisableTorchFunctionSubclass,
    "DisableTorchFunction": DisableTorchFunction,
    "_functorch": _functorch,
}


def install() -> None:
    """Add the names above to :mod:`tapegrad._C` (each once; an existing name is kept)."""
    for name, value in _NAMES.items():
        if not hasattr(_C, name):
            setattr(_C, name, value)
