"""``torch._tensor_str``, the names of it that libraries import: ``PRINT_OPTS`` (the print
options ``set_printoptions`` sets) and ``_tensor_str(t, indent)`` (the values part of a repr;
torch_geometric writes OFF files with it).

>>> _tensor_str(tapegrad.tensor([[1.0, 2.0], [3.0, 4.0]]), indent=0)
'[[1., 2.],\\n [3., 4.]]'
"""
from __future__ import annotations

from .ops.format import _options, format_values, set_printoptions

__all__ = ["PRINT_OPTS", "set_printoptions"]


class _PrinterOptions:
    """The current print options, read live: ``precision``, ``threshold``, ``edgeitems``,
    ``linewidth``, ``sci_mode``."""

    def __getattr__(self, name):
        try:
            return _options[name]
        except KeyError:
            raise AttributeError(f"PRINT_OPTS has no option {name!r}") from None

    def __setattr__(self, name, value):
        if name not in _options:
            raise AttributeError(f"PRINT_OPTS has no option {name!r}")
        _options[name] = value


PRINT_OPTS = _PrinterOptions()


def _tensor_str(self, indent: int) -> str:
    """The values of ``self`` as its repr shows them, continuation lines indented by ``indent``."""
    return format_values(self, indent)
