"""Grad mode: whether ops record onto the tape, per thread (as PyTorch's).

The flags live in C++ (``_C.grad_state``), thread-local: a new thread starts with grad
enabled and anomaly detection off, and ``backward`` switches the mode for its own thread
only, so a thread recording while another runs backward still records. ``no_grad``,
``enable_grad`` and ``set_grad_enabled`` work as context managers and as decorators (with or
without parentheses for the first two; a decorated generator runs each step in the mode and
gives the caller its own mode back between steps, as PyTorch's).
Read the mode with ``is_grad_enabled()`` (``state.enabled`` is the same flag).
"""
from __future__ import annotations

import functools
import inspect
from threading import get_ident

from .. import _C

state = _C.grad_state  # .enabled, .check_nan (anomaly mode refuses NaN gradients), .anomaly
is_grad_enabled = _C.is_grad_enabled  # True when ops record onto the tape (in this thread)


def _wrap_generator(gen_fn, mode):
    """Run each step of the generator in ``mode``; between steps the caller's own mode holds."""

    @functools.wraps(gen_fn)
    def wrapper(*args, **kwargs):
        prev = state.enabled
        state.enabled = mode
        try:
            gen = gen_fn(*args, **kwargs)
            response = gen.send(None)
        finally:
            state.enabled = prev
        while True:
            try:
                request = yield response
            except GeneratorExit:
                prev = state.enabled
                state.enabled = mode
                try:
                    gen.close()
                finally:
                    state.enabled = prev
                raise
            except BaseException as exc:
                prev = state.enabled
                state.enabled = mode
                try:
                    response = gen.throw(exc)
                except StopIteration as stop:
                    return stop.value
                finally:
                    state.enabled = prev
            else:
                prev = state.enabled
                state.enabled = mode
                try:
                    response = gen.send(request)
                except StopIteration as stop:
                    return stop.value
                finally:
                    state.enabled = prev

    return wrapper


class _GradModeContext:
    """Base for the grad-mode context managers; also usable as a decorator.

    The mode to restore is kept per thread and per entry, so one instance shared by several
    threads or entered twice (``ng = no_grad()`` at module level, then ``with ng: with ng:``)
    restores each entry's own mode. PyTorch keeps one ``prev`` per instance there and leaves grad
    disabled for the rest of the process after the nested case."""

    mode: bool | None  # None: leave the mode as it is

    def __new__(cls, *args, **kwargs):
        # `@no_grad` without parentheses, as PyTorch 2 accepts: the one argument is the function
        if len(args) == 1 and not kwargs and callable(args[0]) and not isinstance(args[0], bool):
            return cls()(args[0])
        return super().__new__(cls)

    def __enter__(self):
        prevs = self.__dict__.setdefault("_prevs", {})
        prevs.setdefault(get_ident(), []).append(state.enabled)
        if self.mode is not None:
            state.enabled = self.mode

    def __exit__(self, *exc):
        key = get_ident()
        stack = self._prevs[key]
        state.enabled = stack.pop()
        if not stack:
            del self._prevs[key]
        return False

    def __call__(self, fn):
        mode = self.mode
        if mode is None:
            return fn
        if inspect.isgeneratorfunction(fn):
            return _wrap_generator(fn, mode)

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            prev = state.enabled
            state.enabled = mode
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

    def __new__(cls, mode: bool):
        return object.__new__(cls)

    def __init__(self, mode: bool):
        self._prev = state.enabled
        self.mode = bool(mode)
        state.enabled = self.mode

    def __enter__(self):
        pass

    def __exit__(self, *exc):
        state.enabled = self._prev
        return False

    def __call__(self, fn):
        state.enabled = self._prev  # as a decorator it must not leak the mode
        return super().__call__(fn)
