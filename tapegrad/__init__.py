"""tapegrad: eager tensors, a reverse-mode tape and C++ kernels, with PyTorch's names.

>>> import tapegrad
>>> x = tapegrad.tensor([1.0, 2.0, 3.0], requires_grad=True)
>>> y = (x * x.exp()).sum()
>>> y.backward()
>>> x.grad          # (1 + x) * exp(x)
"""
import importlib as _importlib
import os as _os
from sys import modules as _sys_modules

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
    try:
        from . import _C
    except ImportError as _e:  # a source checkout that was never built: say how, not "circular import"
        if "_C" not in str(_e) or _e.name is None:  # name None: raised by _C's own init (a bad TAPEGRAD_CPU)
            raise
        raise ImportError(
            "tapegrad's C++ extension (tapegrad._C) is not built. From the repository root run "
            "`bash scripts/test.sh` (or `pip install -e .`), then use that environment: "
            "`.venv/bin/python`, or `source .venv/bin/activate`.") from _e
if _os.environ.get("TAPEGRAD_MALLOC_TUNING", "1") != "0":
    # Keep freed memory for reuse instead of page-faulting large temporaries in every training
    # step (see csrc/bindings.cpp); TAPEGRAD_MALLOC_TUNING=0 leaves glibc's defaults alone.
    _C.keep_freed_memory(32 << 20, 256 << 20)
    # and 512 MiB of heap on transparent huge pages where THP is in madvise mode (csrc/bindings.cpp,
    # reserve_huge_heap): address space, not memory, until arrays live there
    _C.reserve_huge_heap(512 << 20)

from ._dtype_names import (bool_ as bool, double, float, float16, float32, float64, half,  # noqa: A004
                           int, int8, int16, int32, int64, long, short, uint8, uint16, uint32, uint64)
from ._dtype_names import cdouble, cfloat, chalf, complex32, complex64, complex128  # noqa: F401
from ._dtype import get_default_dtype, set_default_dtype  # noqa: F401
from . import _dtype as _dtypes
if _dtypes.bfloat16 is not None:  # else __getattr__ below says what to install
    from ._dtype_names import bfloat16, float8_e4m3fn, float8_e5m2  # noqa: F401
from .tensor import Tensor
from .device import (channels_last, channels_last_3d, contiguous_format, device, layout, memory_format,  # noqa: F401
                     preserve_format, strided)
from .random import (Generator, default_generator, get_rng_state, initial_seed, manual_seed, seed,  # noqa: F401
                     set_rng_state)
from .storage import TypedStorage, UntypedStorage, is_storage  # noqa: F401  (x.untyped_storage(): the memory under x)
from math import e, inf, nan, pi  # noqa: F401,E402  (torch.pi, torch.inf, ...: Python floats, as PyTorch's)
newaxis = None  # torch.newaxis, numpy's: x[:, tapegrad.newaxis]
from .ops import *  # noqa: F401,F403
from .ops import OPS  # noqa: F401
from .autograd import enable_grad, is_grad_enabled, no_grad, set_grad_enabled  # noqa: F401
from . import autograd  # noqa: F401
from . import nn, optim  # noqa: F401,E402
from . import fft, linalg, special  # noqa: F401  (torch.fft's, torch.linalg's and torch.special's namespaces)
from . import signal  # noqa: F401,E402  (torch.signal's namespace: signal.windows)
from . import sparse  # noqa: F401,E402  (torch.sparse's namespace; defines the sparse tensor's class)
from .device import _mkldnn, jagged, sparse_bsc, sparse_bsr, sparse_coo, sparse_csc, sparse_csr  # noqa: F401,E402
from ._streams import Event, Stream  # noqa: F401,E402  (torch.Stream / torch.Event: the CPU stream)
from . import utils, data  # noqa: F401,E402  (tapegrad.utils.data, as torch.utils.data; short alias)
from .utils.dlpack import from_dlpack  # noqa: F401,E402
from .serialization import load, save  # noqa: F401
from . import accelerator, amp, backends, compiler, cpu, cuda, distributions, futures, jit  # noqa: F401,E402
from .futures import Future  # noqa: F401,E402  (torch.Future: isinstance checks on what async work returns)
from . import multiprocessing  # noqa: F401,E402  (torch.multiprocessing: Python's, plus spawn)
from . import overrides  # noqa: F401,E402  (torch.overrides: tapegrad has no __torch_function__ dispatch)
from . import profiler  # noqa: F401,E402  (torch.profiler: the ops' times, from the tape's hook)
from . import types, version, xpu  # noqa: F401,E402  (type aliases, versions, no XPU)
from .amp import autocast, get_autocast_dtype, is_autocast_enabled, set_autocast_dtype, set_autocast_enabled  # noqa: F401
from ._compat import *  # noqa: F401,F403  (Size, dtype, FloatTensor, inference_mode)
from ._functions import *  # noqa: F401,F403  (switches, predicates, legacy constructors)
from . import func  # noqa: F401,E402  (torch.func: grad, vjp, jvp, jacrev, jacfwd, hessian, vmap, functional_call)
from .func import vmap  # noqa: F401,E402
from ._nn_forms import *  # noqa: F401,F403  (torch.conv1d, torch.dropout, ...: ATen's signatures)
from ._parallel import get_num_interop_threads, get_num_threads, set_num_interop_threads, set_num_threads  # noqa: F401
from . import _tensor_docs  # noqa: F401,E402  (docstrings of tensor.py's one-line methods)
from ._foreach import *  # noqa: F401,F403,E402  (torch._foreach_add_, ...: the multi-tensor ops optimizers call)
from . import _einops as _einops_hook  # noqa: E402
_einops_hook.install()  # einops's rearrange/reduce/... take tapegrad tensors (without importing einops)
from . import _torch_c as _torch_c_hook  # noqa: E402
_torch_c_hook.install()  # torch._C's functions that libraries call (_log_api_usage_once, ...)
from . import __config__  # noqa: F401,E402  (torch.__config__.show(), parallel_info())
from . import _ops  # noqa: E402
_ops.install()  # torch.ops.aten.<op>.<overload> and the custom operators' namespaces

from .version import __version__  # noqa: F401,E402


def is_tensor(obj) -> bool:
    """Whether ``obj`` is a :class:`tapegrad.Tensor` (a Parameter too)."""
    return isinstance(obj, Tensor)


def numel(t) -> int:
    """The number of elements of the tensor ``t``."""
    return t.numel()


def __getattr__(name):
    # tapegrad.testing on first use (as torch.testing after ``import torch``): its hypothesis
    # strategies would add ~0.1 s to every import
    # library: torch.library (custom operators), ~5 ms; fx: its tables of tapegrad's functions are built on
    # import; functional: torch.functional's names
    if name in ("testing", "quasirandom", "hub", "_dynamo", "onnx", "library", "fx", "functional"):  # quasirandom: scipy.stats adds ~0.3 s; hub: urllib ~9 ms
        return _importlib.import_module("." + name, __name__)
    if name == "torch":  # torch.torch is torch (kornia annotates with torch.torch.Tensor)
        return _sys_modules[__name__]
    if name in ("bfloat16", "float8_e4m3fn", "float8_e5m2"):
        raise AttributeError(_dtypes.BFLOAT16_MISSING.replace("bfloat16", name))
    raise AttributeError(f"module 'tapegrad' has no attribute {name!r}")
