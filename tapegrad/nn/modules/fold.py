"""``torch.nn.modules.fold``'s names; the layers live in ``pixelshuffle.py``."""
from .pixelshuffle import Fold, Unfold  # noqa: F401

__all__ = ["Fold", "Unfold"]
