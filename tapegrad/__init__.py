"""tapegrad: eager tensors, a reverse-mode tape and C++ kernels, with PyTorch's names.

>>> import tapegrad
>>> x = tapegrad.tensor([1.0, 2.0, 3.0], requires_grad=True)
>>> y = (x * x.exp()).sum()
>>> y.backward()
>>> x.grad          # (1 + x) * exp(x)
"""
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
# The tape's hot paths (recording an op, the backward loop) run in C++ (csrc/tape.cpp);
# TAPEGRAD_PURE_PYTHON=1 runs their Python reference (ops/registry.py, autograd/engine.py).
_native_tape = _os.environ.get("TAPEGRAD_PURE_PYTHON", "0") in ("", "0")

from ._dtype import (bool_ as bool, double, float, float16, float32, float64, get_default_dtype, half,  # noqa: A004
                     int, int8, int16, int32, int64, long, set_default_dtype, uint8)
from .tensor import Tensor
from .device import device
from .creation import *  # noqa: F401,F403
from .random import Generator, manual_seed, seed, initial_seed, get_rng_state, set_rng_state  # noqa: F401
from .ops import *  # noqa: F401,F403
from .ops import OPS  # noqa: F401
from .autograd import enable_grad, is_grad_enabled, no_grad, set_grad_enabled  # noqa: F401
from . import autograd  # noqa: F401
from . import nn, optim  # noqa: F401,E402
import importlib as _importlib
# torch.linalg's namespace; an attribute import, because ``from .ops import *`` bound the name
# to ops/linalg.py (matmul), whose names tapegrad.linalg keeps
linalg = _importlib.import_module(".linalg", __name__)
special = _importlib.import_module(".special", __name__)  # torch.special's names (same reason)
from . import utils, data  # noqa: F401,E402  (tapegrad.utils.data, as torch.utils.data; short alias)
from .utils.dlpack import from_dlpack  # noqa: F401,E402
from .serialization import load, save  # noqa: F401
from . import accelerator, amp, backends, cpu, cuda, distributions, jit  # noqa: F401,E402
from .amp import autocast, get_autocast_dtype, is_autocast_enabled, set_autocast_dtype, set_autocast_enabled  # noqa: F401
from ._compat import *  # noqa: F401,F403  (Size, dtype, FloatTensor, inference_mode)

__version__ = "0.1.0"


def set_num_threads(n: int) -> None:
    """Threads used by the native kernels (OpenMP); results are bit-identical for any count."""
    _C.set_num_threads(n)


def get_num_threads() -> int:
    return _C.get_num_threads()


import builtins as _builtins  # noqa: E402  (``int`` and ``bool`` here are tapegrad dtypes)
import threading as _threading  # noqa: E402

_interop = {"threads": None}  # tapegrad has no inter-op pool: the value is only kept, for scripts that read it
_interop_lock = _threading.Lock()


def set_num_interop_threads(n: int) -> None:
    """PyTorch's inter-op thread count. tapegrad runs ops one after another (its only parallelism is
    the kernels' OpenMP, ``set_num_threads``), so the value is stored, not used. As in PyTorch it
    may be set once: a second call raises ``RuntimeError``.

    >>> tapegrad.set_num_interop_threads(4)   # before the training loop, as in a PyTorch script
    """
    if not isinstance(n, _builtins.int) or isinstance(n, _builtins.bool):
        raise RuntimeError(f"set_num_interop_threads expects an int, but got {type(n).__name__}")
    if n <= 0:
        raise RuntimeError("set_num_interop_threads expects a positive integer")
    with _interop_lock:
        if _interop["threads"] is not None:
            raise RuntimeError("Error: cannot set number of interop threads after parallel work has started or "
                               "set_num_interop_threads called")
        _interop["threads"] = n


def get_num_interop_threads() -> int:
    """The value given to ``set_num_interop_threads``, else PyTorch's default, the CPU count."""
    return _interop["threads"] or _os.cpu_count() or 1


def is_tensor(obj) -> bool:
    return isinstance(obj, Tensor)


def numel(t) -> int:
    return t.numel()


def __getattr__(name):
    # tapegrad.testing on first use (as torch.testing after ``import torch``): its hypothesis
    # strategies would add ~0.1 s to every import
    if name == "testing":
        return _importlib.import_module(".testing", __name__)
    raise AttributeError(f"module 'tapegrad' has no attribute {name!r}")
