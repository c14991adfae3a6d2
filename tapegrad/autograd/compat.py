"""Names from ``torch.autograd`` that ported scripts import: ``Variable`` (a plain tensor since
PyTorch 0.4), anomaly detection (NaN gradients raise, naming the op and where it was recorded)
(``gradcheck.py`` has ``gradcheck``/``gradgradcheck``, ``functional.py`` ``jacobian``/``hessian``/``vjp``/``jvp``)."""
from __future__ import annotations

from .. import _C
from .._tape import grad_mode

_state = grad_mode.state  # thread-local: .anomaly, .check_nan


def Variable(data, requires_grad: bool = False, volatile: bool = False):  # noqa: N802  (PyTorch's name)
    """The pre-0.4 wrapper: returns ``data`` itself, with ``requires_grad`` set when asked."""
    if requires_grad:
        data.requires_grad_(True)
    return data


class _ExecutionEngine:
    """``Variable._execution_engine``: PyTorch's handle on its autograd engine, which libraries
    (FSDP-style wrappers, DeepSpeed) reach for to run code once a backward pass is done."""

    @staticmethod
    def queue_callback(callback) -> None:
        """Run ``callback()`` when the backward pass running in this thread has run its whole graph
        (before ``backward`` returns); only from inside a pass (a hook), else RuntimeError."""
        _C._queue_callback(callback)


Variable._execution_engine = _ExecutionEngine()


class detect_anomaly:  # noqa: N801
    """``with detect_anomaly():`` backward raises as soon as an op's gradient formula returns NaN,
    naming the op and the file:line of your code that recorded it (as PyTorch's, which also
    needs this mode to report where the op was recorded; tapegrad always records that).
    The mode is per thread, as PyTorch's."""

    def __init__(self, check_nan: bool = True):
        self.check_nan = bool(check_nan)

    def __enter__(self):
        self._prev = _state.anomaly, _state.check_nan
        _state.anomaly = True
        _state.check_nan = self.check_nan
        return self

    def __exit__(self, *exc):
        _state.anomaly, _state.check_nan = self._prev
        return False


class set_detect_anomaly(detect_anomaly):  # noqa: N801
    """``set_detect_anomaly(mode)`` switches it at once; as a context manager it restores on exit."""

    def __init__(self, mode: bool, check_nan: bool = True):
        super().__init__(check_nan)
        self._prev = _state.anomaly, _state.check_nan
        _state.anomaly = bool(mode)
        _state.check_nan = bool(mode) and self.check_nan

    def __enter__(self):
        return self


def is_anomaly_enabled() -> bool:
    """Whether anomaly detection (``detect_anomaly``) is on in this thread."""
    return _state.anomaly


__all__ = ["Variable", "detect_anomaly", "set_detect_anomaly", "is_anomaly_enabled"]
