"""``torch.accelerator`` as PyTorch answers it on a machine with no accelerator: tapegrad runs on
the CPU only, so ``is_available()`` is False, ``current_accelerator()`` None and ``device_count()``
0, and every call that needs a device raises PyTorch's ``RuntimeError``. Scripts that pick their
device with it therefore fall back to the CPU unchanged.

>>> device = tapegrad.accelerator.current_accelerator() if tapegrad.accelerator.is_available() else "cpu"
"""
from __future__ import annotations

import sys
import types
import warnings

__all__ = ["Graph", "current_accelerator", "current_device_idx", "current_device_index", "current_stream",
           "device_count", "device_index", "empty_cache", "empty_host_cache", "get_device_capability",
           "get_memory_info", "is_available", "max_memory_allocated", "max_memory_reserved", "memory",
           "memory_allocated", "memory_reserved", "memory_stats", "reset_accumulated_memory_stats",
           "reset_peak_memory_stats", "set_device_idx", "set_device_index", "set_stream", "synchronize"]

_NO_DEVICE = "Cannot access accelerator device when none is available."


def is_available() -> bool:
    """False: tapegrad has no accelerator backend."""
    return False


def current_accelerator(check_available: bool = False):
    """The accelerator's device type, or None when there is none (always, in tapegrad)."""
    return None


def device_count() -> int:
    return 0


def current_device_index() -> int:
    raise RuntimeError(_NO_DEVICE)


def current_device_idx() -> int:
    warnings.warn("Use `current_device_index` instead.", FutureWarning, stacklevel=2)
    return current_device_index()


def set_device_index(device, /) -> None:
    raise RuntimeError(_NO_DEVICE)


def set_device_idx(device, /) -> None:
    warnings.warn("Use `set_device_index` instead.", FutureWarning, stacklevel=2)
    set_device_index(device)


def current_stream(device=None, /):
    raise RuntimeError(_NO_DEVICE)


def set_stream(stream) -> None:
    # PyTorch rejects anything that is not a torch.Stream with TypeError, and tapegrad has no streams
    raise TypeError(f"set_stream(): expected a Stream, got {type(stream).__name__}; tapegrad has no accelerator "
                    "streams")


def synchronize(device=None, /) -> None:
    raise RuntimeError(_NO_DEVICE)


class device_index:  # noqa: N801  (PyTorch's name)
    """``with device_index(i):`` switches the current accelerator; ``None`` is a no-op, as in PyTorch,
    and any index raises on entry, since there is no device."""

    def __init__(self, device, /):
        self.idx = device

    def __enter__(self):
        if self.idx is not None:
            raise RuntimeError(_NO_DEVICE)
        return self

    def __exit__(self, *exc):
        return False


class Graph:
    """Accelerator graph capture: needs a device, so constructing one raises, as PyTorch's on the CPU."""

    def __init__(self, keep_graph: bool = False, *, pool=None, capture_error_mode: str = "default"):
        raise RuntimeError(_NO_DEVICE)


def get_device_capability(device=None, /):
    raise RuntimeError(_NO_DEVICE)


def empty_cache() -> None:
    raise RuntimeError(_NO_DEVICE)


def empty_host_cache() -> None:
    raise RuntimeError(_NO_DEVICE)


def get_memory_info(device_index=None, /):
    raise RuntimeError(_NO_DEVICE)


def memory_allocated(device_index=None, /) -> int:
    raise RuntimeError(_NO_DEVICE)


def max_memory_allocated(device_index=None, /) -> int:
    raise RuntimeError(_NO_DEVICE)


def memory_reserved(device_index=None, /) -> int:
    raise RuntimeError(_NO_DEVICE)


def max_memory_reserved(device_index=None, /) -> int:
    raise RuntimeError(_NO_DEVICE)


def memory_stats(device_index=None, /):
    raise RuntimeError(_NO_DEVICE)


def reset_accumulated_memory_stats(device_index=None, /) -> None:
    raise RuntimeError(_NO_DEVICE)


def reset_peak_memory_stats(device_index=None, /) -> None:
    raise RuntimeError(_NO_DEVICE)


# torch.accelerator.memory holds the memory functions again (``torch.accelerator.memory.memory_allocated``)
memory = types.ModuleType(__name__ + ".memory", "Accelerator memory statistics (none: no accelerator).")
for _name in ("empty_cache", "empty_host_cache", "get_memory_info", "max_memory_allocated", "max_memory_reserved",
              "memory_allocated", "memory_reserved", "memory_stats", "reset_accumulated_memory_stats",
              "reset_peak_memory_stats"):
    setattr(memory, _name, globals()[_name])
sys.modules[memory.__name__] = memory
del _name
