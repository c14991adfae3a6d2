"""Grad mode: whether ops record onto the tape.

One process-wide flag (not thread-local: tapegrad has no worker threads that run ops).
``no_grad``, ``enable_grad`` and ``set_grad_enabled`` work as context managers and as
decorators, like PyTorch's.
"""
from __future__ import annotations

import functools


class _State:
    # check_nan: backward refuses a NaN gradient (anomaly detection, see autograd/compat.py)
    __slots__ = ("enabled", "check_nan")

    def __init__(self):
        self.enabled = True
        self.check_nan = False


state = _State()


def is_grad_enabled() -> bool:
    """True when ops record onto the tape."""
    return state.enabled


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
