"""tapegrad: eager tensors, a reverse-mode tape and C++ kernels, with PyTorch's names.

>>> import tapegrad
>>> x = tapegrad.tensor([1.0, 2.0, 3.0], requires_grad=True)
>>> y = (x * x.exp()).sum()
>>> y.backward()
>>> x.grad          # (1 + x) * exp(x)
"""
import importlib as _importlib
import os as _os

if _os.environ.get("TAPEGRAD_C_PATH"):
    # Load another build of the kernels (scripts/sanitize.sh runs the tests against an
    # AddressSanitizer + UBSan build this way, beside the normal one).
    import importlib.util as _ilu
    import sys as _sys

    _spec = _ilu.spec_from_file_location("tapegrad._C", _os.environ["TAPEGRAD_C_PATH"])
    _C = _ilu.module_from_spec(_spec)
    _sys.modules["tapegrad._C"] = _C
    _spec.loader.exec_module(_C)
else:
    from . import _C
if _os.environ.get("TAPEGRAD_MALLOC_TUNING", "1") != "0":
    # Keep freed memory for reuse instead of page-faulting large temporaries in every training
    # step (see csrc/bindings.cpp); TAPEGRAD_MALLOC_TUNING=0 leaves glibc's defaults alone.
    _C.keep_freed_memory(32 << 20, 256 << 20)

from ._dtype import (bool_ as bool, double, float, float16, float32, float64, get_default_dtype, half,  # noqa: A004
                     int, int8, int16, int32, int64, long, set_default_dtype, uint8)
from .tensor import Tensor
from .device import device
from .random import Generator, manual_seed, seed, initial_seed, get_rng_state, set_rng_state  # noqa: F401
from .ops import *  # noqa: F401,F403
from .ops import OPS  # noqa: F401
from .autograd import enable_grad, is_grad_enabled, no_grad, set_grad_enabled  # noqa: F401
from . import autograd  # noqa: F401
from . import nn, optim  # noqa: F401,E402
from . import linalg, special  # noqa: F401  (torch.linalg's and torch.special's namespaces)
from . import utils, data  # noqa: F401,E402  (tapegrad.utils.data, as torch.utils.data; short alias)
from .utils.dlpack import from_dlpack  # noqa: F401,E402
from .serialization import load, save  # noqa: F401
from . import amp, backends, cpu, cuda, distributions, jit  # noqa: F401,E402
from .amp import autocast, get_autocast_dtype, is_autocast_enabled, set_autocast_dtype, set_autocast_enabled  # noqa: F401
from ._compat import *  # noqa: F401,F403  (Size, dtype, FloatTensor, inference_mode)
from . import _tensor_docs  # noqa: F401,E402  (docstrings of tensor.py's one-line methods)

__version__ = "0.1.0"


def set_num_threads(n: int) -> None:
    """Threads used by the native kernels (OpenMP); results are bit-identical for any count.

    Process-wide, as in PyTorch: the count set in one thread is the one every thread's kernels use.
    A child forked (multiprocessing's default on Linux) from a thread that had run parallel kernels
    runs its kernels on one thread, as GNU OpenMP cannot start threads there (PyTorch's child hangs);
    ``set_num_threads(n > 1)`` in such a child raises RuntimeError. Use the 'spawn' or 'forkserver'
    start method for multi-threaded kernels in worker processes.

    >>> tapegrad.set_num_threads(2)
    """
    _C.set_num_threads(n)


def get_num_threads() -> int:
    """The kernels' process-wide thread count (see :func:`set_num_threads`)."""
    return _C.get_num_threads()


def is_tensor(obj) -> bool:
    """Whether ``obj`` is a :class:`tapegrad.Tensor` (a Parameter too)."""
    return isinstance(obj, Tensor)


def numel(t) -> int:
    """The number of elements of the tensor ``t``."""
    return t.numel()


def __getattr__(name):
    # tapegrad.testing on first use (as torch.testing after ``import torch``): its hypothesis
    # strategies would add ~0.1 s to every import
    if name == "testing":
        return _importlib.import_module(".testing", __name__)
    raise AttributeError(f"module 'tapegrad' has no attribute {name!r}")
