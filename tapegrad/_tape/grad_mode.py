"""Grad mode: whether ops record onto the tape, per thread (as PyTorch's).

The flags live in C++ (``_C.grad_state``), thread-local: a new thread starts with grad
enabled and anomaly detection off, and ``backward`` switches the mode for its own thread
only, so a thread recording while another runs backward still records. ``no_grad``,
``enable_grad`` and ``set_grad_enabled`` work as context managers and as decorators.
Read the mode with ``is_grad_enabled()`` (``state.enabled`` is the same flag).
"""
from __future__ import annotations

import functools

from .. import _C

state = _C.grad_state  # .enabled, .check_nan (anomaly mode refuses NaN gradients), .anomaly
is_grad_enabled = _C.is_grad_enabled  # True when ops record onto the tape (in this thread)


class _GradModeContext:
    """Base for the grad-mode context managers; also usable as a decorator."""

    mode: bool | None  # None: leave the mode as it is

    def __enter__(self):
        self._prev = state.enabled
        if self.mode is not None:
            state.enabled = self.mode

    def __exit__(self, *exc):
        state.enabled = self._prev
        return False

    def __call__(self, fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            prev = state.enabled
            if self.mode is not None:
                state.enabled = self.mode
            try:
                return fn(*args, **kwargs)
            finally:
                state.enabled = prev

        return wrapper


class no_grad(_GradModeContext):
    """Turn recording off: ``with tapegrad.no_grad(): y = model(x)``."""

    mode = False


class enable_grad(_GradModeContext):
    """Turn recording back on inside a ``no_grad`` block."""

    mode = True


class set_grad_enabled(_GradModeContext):
    """``set_grad_enabled(False)`` turns recording off at once (as PyTorch does), and
    restores the previous mode on exit when used as a context manager."""

    def __init__(self, mode: bool):
        self._prev = state.enabled
        self.mode = bool(mode)
        state.enabled = self.mode

    def __enter__(self):
        pass

    def __call__(self, fn):
        state.enabled = self._prev  # as a decorator it must not leak the mode
        return super().__call__(fn)
