"""tapegrad's ops, one file per domain. The table itself is ``registry.OPS``.

Layers: the ops import only the tape (``tapegrad._tape``), numpy/scipy, ``_C``, ``_dtype`` and each
other; ``tensor.py`` imports them and hands its class down (``bind_tensor``).
"""
import sys as _sys

from .._tape import registry as _registry
from .._tape.registry import OPS, Op, apply, defop  # noqa: F401
from .creation import *  # noqa: F401,F403
from .pointwise import *  # noqa: F401,F403
from .comparison import *  # noqa: F401,F403
from .reduction import *  # noqa: F401,F403
from .shape import *  # noqa: F401,F403
from .indexing import *  # noqa: F401,F403
from .sorting import *  # noqa: F401,F403
from .matmul import *  # noqa: F401,F403
from .linalg import *  # noqa: F401,F403
from .activation import *  # noqa: F401,F403
from .conv import *  # noqa: F401,F403
from .format import format_tensor  # noqa: F401
from .conversion import to  # noqa: F401


def bind_tensor(cls) -> None:
    """Hand the ``Tensor`` class down to the ops and the tape: called once by tensor.py, which
    imports the ops (they sit below ``Tensor`` and cannot import it, yet create and recognise
    tensors). Each op module names the class ``Tensor``."""
    _registry.bind_tensor(cls)
    for name, mod in list(_sys.modules.items()):
        if name.startswith(__name__ + ".") and "Tensor" in vars(mod):
            mod.Tensor = cls
