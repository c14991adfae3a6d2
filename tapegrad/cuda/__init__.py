"""``torch.cuda`` on a machine without a GPU: nothing is ever available, the seeding calls that
scripts make unconditionally do nothing (as in CPU PyTorch), and ``cuda.amp`` holds the
deprecated ``autocast`` / ``GradScaler`` spellings, which disable themselves with PyTorch's
warning because CUDA is not available."""
from __future__ import annotations

from . import amp  # noqa: F401


def is_available() -> bool:
    return False


def device_count() -> int:
    return 0


def is_initialized() -> bool:
    return False


def is_bf16_supported(including_emulation: bool = True) -> bool:
    return False


def manual_seed(seed) -> None:
    """Does nothing, as in CPU PyTorch (where scripts call it unconditionally)."""


manual_seed_all = seed = seed_all = manual_seed


def synchronize(device=None) -> None:
    return None


def empty_cache() -> None:
    return None


def memory_allocated(device=None) -> int:
    return 0


max_memory_allocated = memory_reserved = max_memory_reserved = memory_allocated


def _no_gpu(*args, **kwargs):
    raise RuntimeError("tapegrad runs on the CPU only: no CUDA device is available")


current_device = get_device_name = get_device_properties = set_device = _no_gpu


class _NoGPUType:
    """A CUDA object type: the name exists (annotations, ``isinstance``) but making one raises."""

    def __init__(self, *args, **kwargs):
        raise RuntimeError(f"torch.cuda.{type(self).__name__} requires CUDA support: tapegrad runs on the CPU "
                           "only, no CUDA device is available")


class Stream(_NoGPUType):
    """``torch.cuda.Stream``; raises: there is no CUDA device."""


class Event(_NoGPUType):
    """``torch.cuda.Event``; raises: there is no CUDA device."""


class CUDAGraph(_NoGPUType):
    """``torch.cuda.CUDAGraph``; raises: there is no CUDA device."""


class StreamContext(_NoGPUType):
    """``torch.cuda.StreamContext`` (``with torch.cuda.stream(s)``); raises: there is no CUDA device."""


class graph(_NoGPUType):  # noqa: N801  (PyTorch's name: a context manager class)
    """``torch.cuda.graph`` (capturing a CUDA graph); raises: there is no CUDA device."""
