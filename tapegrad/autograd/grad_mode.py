"""``torch.autograd.grad_mode``'s public names (the implementation is the tape's, ``tapegrad/_tape``),
with ``inference_mode`` and the engine switches PyTorch keeps there."""
from __future__ import annotations

import functools
import inspect
import threading

from .._tape.grad_mode import (_GradModeContext, enable_grad, is_grad_enabled, no_grad,  # noqa: F401
                               set_grad_enabled, state)


class inference_mode(_GradModeContext):  # noqa: N801  (PyTorch's name)
    """``no_grad`` under PyTorch's other name (context manager or decorator), which
    :func:`is_inference_mode_enabled` reports; ``inference_mode(False)`` leaves grad mode as it
    is and turns inference mode off inside, as in PyTorch."""

    def __init__(self, mode: bool = True):
        self.mode = False if mode else None
        self.inference = bool(mode)

    def __enter__(self):
        _inference_stack().append(self.inference)
        return super().__enter__()

    def __exit__(self, *exc):
        _inference_stack().pop()
        return super().__exit__(*exc)

    def __call__(self, fn):
        inner = super().__call__(fn)
        if inspect.isgeneratorfunction(fn):  # grad mode switched around each step; the flag is not
            return inner
        flag = self.inference

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            stack = _inference_stack()
            stack.append(flag)
            try:
                return inner(*args, **kwargs)
            finally:
                stack.pop()
        return wrapper


def is_inference_mode_enabled() -> bool:
    """Whether the innermost ``inference_mode`` on this thread is on (``no_grad`` alone is not
    inference mode, as in PyTorch)."""
    stack = _inference_stack()
    return bool(stack) and stack[-1]


def _inference_stack() -> list:
    stack = getattr(_switches, "inference", None)
    if stack is None:
        stack = _switches.inference = []
    return stack


_switches = threading.local()


class set_multithreading_enabled:  # noqa: N801  (PyTorch's name)
    """PyTorch's switch for its backward worker threads (context manager, or a plain call). tapegrad
    runs each backward on the calling thread, so results do not depend on it; the flag is kept
    (per thread) so that :func:`is_multithreading_enabled` reports it."""

    def __init__(self, mode: bool):
        self.prev = is_multithreading_enabled()
        _switches.multithreading = bool(mode)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        _switches.multithreading = self.prev
        return False


def is_multithreading_enabled() -> bool:
    """The flag of :class:`set_multithreading_enabled` (True by default, as in PyTorch)."""
    return getattr(_switches, "multithreading", True)


class _view_replay_enabled:  # noqa: N801
    """PyTorch's ``_force_original_view_tracking``: tapegrad's views always record their base op,
    so there is no replay to switch; the flag is kept for :func:`is_view_replay_enabled`."""

    def __init__(self, mode: bool):
        self.prev = is_view_replay_enabled()
        _switches.view_replay = bool(mode)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        _switches.view_replay = self.prev
        return False


def is_view_replay_enabled() -> bool:
    """Whether view replay is switched on (False unless ``_view_replay_enabled(True)``)."""
    return getattr(_switches, "view_replay", False)
