"""torch.__config__'s namespace: ``show()`` and ``parallel_info()``, the build and threading reports.

Libraries read them at import (torch_geometric checks ``'USE_MKL=OFF' in torch.__config__.show()``),
so the text follows PyTorch's layout: ``show()`` lists the build's features and a ``Build settings``
line of ``KEY=VALUE`` pairs, ``parallel_info()`` the thread counts.

>>> print(tapegrad.__config__.show())
"""
from __future__ import annotations

import os
import platform
import sys

from . import _C
from ._parallel import get_num_interop_threads, get_num_threads

__all__ = ["show", "parallel_info"]


def show() -> str:
    """How this tapegrad was built: compiler, the kernels' instruction sets, OpenMP, no MKL or CUDA."""
    isa = _C.cpu_isa()
    kernels = ", ".join(f"{k}: {v}" for k, v in isa.items() if k not in ("cpu", "cap"))
    return ("tapegrad built with:\n"
            f"  - Python {platform.python_version()} ({sys.platform})\n"
            f"  - CPU capability usage: {isa.get('cap', 'default').upper()}\n"
            f"  - C++ kernels: {kernels}\n"
            "  - OpenMP (the kernels' threads)\n"
            "  - Build settings: USE_CUDA=OFF, USE_MKL=OFF, USE_MKLDNN=OFF, USE_OPENMP=ON, USE_MPI=OFF, "
            "USE_ROCM=OFF, USE_XPU=OFF\n")


def parallel_info() -> str:
    """The thread counts the kernels run with (see :func:`tapegrad.set_num_threads`)."""
    env = "\n".join(f"\t{k} : {os.environ.get(k, '[not set]')}" for k in ("OMP_NUM_THREADS", "TAPEGRAD_THREADS_IGNORE_LOAD"))
    return ("tapegrad/Parallel:\n"
            f"\tget_num_threads() : {get_num_threads()}\n"
            f"\tget_num_interop_threads() : {get_num_interop_threads()}\n"
            f"OpenMP\n\tstd::thread::hardware_concurrency() : {os.cpu_count()}\n"
            f"Environment variables:\n{env}\n"
            "tapegrad parallel backend: OpenMP\n")
