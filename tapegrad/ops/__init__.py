"""tapegrad's ops, one file per domain. The table itself is ``registry.OPS``.

Each op declares its public surface where it is written (``surface.public``): the top-level
function, the ``Tensor`` method, the in-place form and ``out=``. This package's namespace is
that table (``__all__``), generated variants included.

Layers: the ops import only the tape (``tapegrad._tape``), numpy/scipy, ``_C``, ``_dtype`` and each
other; ``tensor.py`` imports them and hands its class down (``bind_tensor``).
"""
import sys as _sys
import types as _types

from .._tape import registry as _registry
from .._tape.registry import OPS, Op, apply, defop  # noqa: F401
from . import (activation, attention, comparison, complex, conv, creation, fft, indexing, linalg, linalg_legacy,  # noqa: F401
               matmul, normalization, pointwise, recurrent, reduction, shape, sorting, sparse, spectral)
from . import special as _special  # noqa: F401  (tapegrad.special's ops)
from .conversion import to  # noqa: F401
from .format import format_tensor  # noqa: F401
from .surface import FUNCTIONS as _FUNCTIONS, PLAIN as _PLAIN, install_methods as _install_methods

globals().update(_FUNCTIONS)
__all__ = sorted(_FUNCTIONS)
# the ops without their out= wrappers, for tensor.py's operators and methods (one frame less)
plain = _types.SimpleNamespace(**_PLAIN)


def bind_tensor(cls) -> None:
    """Hand the ``Tensor`` class down to the ops and the tape, and give it the declared methods:
    called once by tensor.py, which imports the ops (they sit below ``Tensor`` and cannot import
    it, yet create and recognise tensors). Each op module names the class ``Tensor``."""
    _install_methods(cls)
    _registry.bind_tensor(cls)
    for name, mod in list(_sys.modules.items()):
        if name.startswith(__name__ + ".") and "Tensor" in vars(mod):
            mod.Tensor = cls
