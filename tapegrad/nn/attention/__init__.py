"""``tapegrad.nn.attention``: PyTorch's attention namespace. ``sdpa_kernel`` selects
``scaled_dot_product_attention`` backends; on tapegrad's CPU there is one implementation (the
blocked kernel, or the composite for dropout and other dtypes), so the selection is checked and
recorded but changes no result. ``flex_attention`` lives in :mod:`tapegrad.nn.attention.flex_attention`.

>>> with sdpa_kernel(SDPBackend.MATH):
...     out = F.scaled_dot_product_attention(q, k, v)
"""
from __future__ import annotations

import contextlib
import enum
import threading
from typing import Iterable

__all__ = ["SDPBackend", "sdpa_kernel", "WARN_FOR_UNFUSED_KERNELS"]

WARN_FOR_UNFUSED_KERNELS = False


class SDPBackend(enum.IntEnum):
    """The backends of ``scaled_dot_product_attention``, with PyTorch's names and values."""

    ERROR = -1
    MATH = 0
    FLASH_ATTENTION = 1
    EFFICIENT_ATTENTION = 2
    CUDNN_ATTENTION = 3
    OVERRIDEABLE = 4


_ALL = [SDPBackend.MATH, SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.CUDNN_ATTENTION,
        SDPBackend.OVERRIDEABLE]
_state = threading.local()


def _cur_sdpa_kernel_backends() -> list:
    """The backends the innermost ``sdpa_kernel`` block allows (all of them outside any)."""
    return list(getattr(_state, "backends", _ALL))


@contextlib.contextmanager
def sdpa_kernel(backends: "SDPBackend | Iterable[SDPBackend]", set_priority: bool = False):
    """A ``with`` block in which ``scaled_dot_product_attention`` may use only ``backends`` (one
    :class:`SDPBackend` or a list; with ``set_priority`` their order is a preference). tapegrad's
    CPU implementation serves them all, so this checks the argument and records it.

    >>> with sdpa_kernel([SDPBackend.FLASH_ATTENTION, SDPBackend.MATH]):
    ...     out = F.scaled_dot_product_attention(q, k, v)
    """
    if isinstance(backends, SDPBackend):
        backends = [backends]
    elif isinstance(backends, (list, tuple, set)):
        backends = list(backends)
    else:
        raise TypeError(f"sdpa_kernel: backends must be an SDPBackend or a list of them, got "
                        f"{type(backends).__name__}")
    for b in backends:
        if not isinstance(b, SDPBackend):
            raise TypeError(f"sdpa_kernel: backends must be instances of SDPBackend, got {b!r}")
        if b is SDPBackend.ERROR:
            raise ValueError("sdpa_kernel: SDPBackend.ERROR is not a backend that can be enabled")
    if not isinstance(set_priority, bool):
        raise TypeError(f"sdpa_kernel: set_priority must be a bool, got {type(set_priority).__name__}")
    prev = getattr(_state, "backends", None)
    _state.backends = list(dict.fromkeys(backends))
    try:
        yield {}
    finally:
        if prev is None:
            del _state.backends
        else:
            _state.backends = prev
