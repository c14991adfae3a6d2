"""``tapegrad.data`` is ``tapegrad.utils.data`` (PyTorch's name) under a shorter name."""
from ..utils.data import *  # noqa: F401,F403
from ..utils.data import __all__  # noqa: F401
