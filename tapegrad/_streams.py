"""``torch.Stream`` and ``torch.Event``, the device-generic stream and event types, as PyTorch
has them on the CPU: a stream whose work is always finished (tapegrad's kernels return when
done), and events that the CPU backend does not support (``record`` raises, as in PyTorch).
Libraries name them in annotations (diffusers: ``stream: torch.cuda.Stream | torch.Stream``).
"""
from __future__ import annotations

from .device import check_cpu, device as _device

__all__ = ["Stream", "Event"]

_NO_EVENTS = "cpu backend doesn't support events."


class Stream:
    """``tapegrad.Stream(device=None, *, priority=0)``: the CPU's one stream (stream_id 0); another
    device raises.

    >>> s = Stream()
    >>> s.query(), s.device_type
    (True, 'cpu')
    """

    def __init__(self, device=None, *, priority: int = 0):
        if device is not None:
            d = _device(device)
            if d.type != "cpu":
                raise RuntimeError(f"tapegrad is not linked with support for {d.type} devices")
            check_cpu(d)

    device_type, device_index, stream_id = 0, -1, 0  # device_type: c10::DeviceType::CPU, an int as in PyTorch

    @property
    def device(self):
        """``device(type='cpu')``."""
        return _device("cpu")

    def query(self) -> bool:
        """True: all work on the CPU has finished when an op returns."""
        return True

    def synchronize(self) -> None:
        """Nothing to wait for."""

    def is_capturing(self) -> bool:
        """False: no graph capture on the CPU."""
        return False

    def wait_event(self, event) -> None:
        """Nothing to wait for (the event was never recorded on a device)."""

    def wait_stream(self, stream) -> None:
        """Raises, as PyTorch's CPU stream: waiting on a stream needs an event."""
        raise RuntimeError(_NO_EVENTS)

    def record_event(self, event=None):
        """Raises, as PyTorch's CPU stream: the CPU backend has no events."""
        raise RuntimeError(_NO_EVENTS)

    @property
    def native_handle(self):
        """Raises: the CPU stream has no native handle."""
        raise RuntimeError("Backend doesn't support getting stream native handle.")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def __eq__(self, other):
        return isinstance(other, Stream)

    def __hash__(self):
        return hash(("cpu", -1, 0))

    def __repr__(self):
        return f"tapegrad.Stream device_type=cpu, device_index={self.device_index}, " \
               f"stream_id={self.stream_id}"


class Event:
    """``tapegrad.Event(device=None, *, enable_timing=False, blocking=False, interprocess=False)``:
    made as in PyTorch, but the CPU backend supports no events: ``record`` raises; ``query`` is
    True and ``synchronize`` / ``wait`` return at once (nothing was recorded)."""

    def __init__(self, device=None, *, enable_timing: bool = False, blocking: bool = False,
                 interprocess: bool = False):
        if device is not None:
            d = _device(device)
            if d.type != "cpu":
                raise RuntimeError(f"tapegrad is not linked with support for {d.type} devices")
        self._flag = int(bool(enable_timing))

    event_id = 0

    @property
    def device(self):
        """``device(type='cpu')``."""
        return _device("cpu")

    def record(self, stream=None) -> None:
        """Raises: the CPU backend has no events."""
        raise RuntimeError(_NO_EVENTS)

    def query(self) -> bool:
        """True: nothing is pending."""
        return True

    def synchronize(self) -> None:
        """Nothing to wait for."""

    def wait(self, stream=None) -> None:
        """Nothing to wait for."""

    def elapsed_time(self, end_event) -> float:
        """Raises: timing needs both events made with ``enable_timing=True``, and then recorded,
        which the CPU backend cannot do."""
        if not (self._flag and getattr(end_event, "_flag", 0)):
            raise ValueError("Both events must be created with argument 'enable_timing=True'.")
        raise RuntimeError(_NO_EVENTS)

    def ipc_handle(self):
        """Not supported, as in PyTorch."""
        raise NotImplementedError("tapegrad.Event ipc is not supported")

    @classmethod
    def from_ipc_handle(cls, device, ipc_handle):
        """Not supported, as in PyTorch."""
        raise NotImplementedError("tapegrad.Event ipc is not supported")

    def __repr__(self):
        return f"tapegrad.Event device_type=cpu, device_index=-1, event_flag={self._flag}, event_id=0"
