"""``torch.backends``'s switches, as CPU PyTorch has them: ``cudnn`` and ``mps`` are never
available, ``cudnn.benchmark = True`` and the TF32 flags are accepted and kept (a ported script
sets them unconditionally) but change nothing, because tapegrad has no cuDNN and no TF32 GEMM;
``openmp`` says whether the C++ kernels use OpenMP; ``mkldnn`` is not used (False)."""
from __future__ import annotations

import contextlib
import sys
import types


class _Flags(types.ModuleType):
    """A namespace module whose attributes a script sets (``cudnn.benchmark = True``)."""


def _module(name, doc, **attrs):
    m = _Flags(f"{__name__}.{name}", doc)
    m.__dict__.update(attrs)
    sys.modules[m.__name__] = m  # so ``import tapegrad.backends.cudnn as cudnn`` works too
    return m


def _never():
    return False


@contextlib.contextmanager
def _cudnn_flags(enabled=False, benchmark=False, benchmark_limit=10, deterministic=False, allow_tf32=True):
    """``with tapegrad.backends.cudnn.flags(enabled=False):``: sets the flags for the block."""
    old = {k: getattr(cudnn, k) for k in ("enabled", "benchmark", "deterministic", "allow_tf32")}
    cudnn.enabled, cudnn.benchmark, cudnn.deterministic, cudnn.allow_tf32 = enabled, benchmark, deterministic, allow_tf32
    try:
        yield
    finally:
        for k, v in old.items():
            setattr(cudnn, k, v)


cudnn = _module("cudnn", "cuDNN: never available; the flags are kept as set (PyTorch's defaults).",
                enabled=True, benchmark=False, benchmark_limit=10, deterministic=False, allow_tf32=True,
                is_available=_never, version=lambda: None, flags=_cudnn_flags)

_matmul = types.SimpleNamespace(allow_tf32=False, allow_fp16_reduced_precision_reduction=True,
                                allow_bf16_reduced_precision_reduction=True)
cuda = _module("cuda", "CUDA: never built or available; ``cuda.matmul.allow_tf32`` is kept as set.",
               matmul=_matmul, is_built=_never, is_available=_never,
               preferred_linalg_library=lambda backend=None: "default")
mps = _module("mps", "Apple MPS: never built or available.", is_available=_never, is_built=_never)
mkldnn = _module("mkldnn", "oneDNN: tapegrad's kernels don't use it.", is_available=_never, enabled=True)


openmp = _module("openmp", "OpenMP: the C++ kernels' threads (always built with it).", is_available=lambda: True)

__all__ = ["cudnn", "cuda", "mps", "mkldnn", "openmp"]
