"""``torch.utils.hooks``' public names for libraries that manage hooks of their own:
``RemovableHandle`` (what every ``register_*_hook`` returns) and ``unserializable_hook``."""
from .._tape.engine import RemovableHandle

__all__ = ["RemovableHandle", "unserializable_hook"]


def unserializable_hook(f):
    """Mark the hook ``f`` as one that is not saved with its tensor (``f.__torch_unserializable__``),
    as PyTorch's decorator does; returns ``f``. tapegrad never serializes hooks."""
    f.__torch_unserializable__ = True
    return f
