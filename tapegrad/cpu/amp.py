"""``torch.cpu.amp.autocast``: ``tapegrad.amp.autocast("cpu", ...)`` under its old name."""
from __future__ import annotations

from .. import amp as _amp


class autocast(_amp.autocast):  # noqa: N801  (PyTorch's name)
    def __init__(self, enabled: bool = True, dtype=None, cache_enabled: bool = True):
        super().__init__("cpu", dtype=dtype, enabled=enabled, cache_enabled=cache_enabled)


__all__ = ["autocast"]
