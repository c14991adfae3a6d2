"""``torch.cpu``: the one device tapegrad has, and ``cpu.amp.autocast``."""
from __future__ import annotations

from . import amp  # noqa: F401


def is_available() -> bool:
    return True


def device_count() -> int:
    return 1


def current_device() -> str:
    return "cpu"


def synchronize(device=None) -> None:
    return None
