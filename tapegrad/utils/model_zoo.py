"""``torch.utils.model_zoo``: its ``load_url`` is ``tapegrad.hub.load_state_dict_from_url``."""
from ..hub import load_state_dict_from_url as load_url  # noqa: F401
from ..hub import tqdm  # noqa: F401  (PyTorch re-exports it here; torchvision imports it)

__all__ = ["load_url"]
