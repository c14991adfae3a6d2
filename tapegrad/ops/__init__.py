"""tapegrad's ops, by family. The table itself is ``registry.OPS``."""
import sys as _sys

from .._tape import registry as _registry
from .._tape.registry import OPS, Op, apply, defop  # noqa: F401
from .elementwise import *  # noqa: F401,F403
from .compare import *  # noqa: F401,F403
from .reduction import *  # noqa: F401,F403
from .shape import *  # noqa: F401,F403
from .linalg import *  # noqa: F401,F403
from .indexing import *  # noqa: F401,F403
from .inplace import *  # noqa: F401,F403
from .activation import *  # noqa: F401,F403
from .conv import *  # noqa: F401,F403
from .special import *  # noqa: F401,F403
from .matrix import *  # noqa: F401,F403
from .decomp import *  # noqa: F401,F403
from .scatter_more import *  # noqa: F401,F403
from .sorting import *  # noqa: F401,F403
from .layout import *  # noqa: F401,F403
from .inplace_ext import *  # noqa: F401,F403
from .composite import *  # noqa: F401,F403
from .format import format_tensor  # noqa: F401
from .conversion import to  # noqa: F401
from .creation import *  # noqa: F401,F403


def bind_tensor(cls) -> None:
    """Hand the ``Tensor`` class down to the ops and the tape: called once by tensor.py, which
    imports the ops (they sit below ``Tensor`` and cannot import it, yet create and recognise
    tensors). Each op module names the class ``Tensor``."""
    _registry.bind_tensor(cls)
    for name, mod in list(_sys.modules.items()):
        if name.startswith(__name__ + ".") and "Tensor" in vars(mod):
            mod.Tensor = cls
