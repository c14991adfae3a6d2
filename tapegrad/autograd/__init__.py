"""Reverse-mode automatic differentiation: the tape's public face.

``Tensor.backward`` and ``autograd.grad`` run the engine (``tapegrad/_tape/engine.py``, the
pass itself in csrc/tape.cpp); nodes are recorded by the op table (``tapegrad/_tape/registry.py``)
as ops run in grad mode.
"""
from __future__ import annotations

from . import grad_mode, variable  # noqa: F401  (variable: torch.autograd.variable)
from .grad_mode import (enable_grad, inference_mode, is_grad_enabled, is_multithreading_enabled,  # noqa: F401
                        is_view_replay_enabled, no_grad, set_grad_enabled, set_multithreading_enabled)
from .._tape.engine import (RemovableHandle, backward, grad, register_hook,  # noqa: F401
                            register_post_accumulate_grad_hook, retain_grad)
from .._tape.node import Node
from ..tensor import Tensor
from . import functional  # noqa: F401
from . import forward_ad  # noqa: F401
from . import profiler  # noqa: F401,E402  (torch.autograd.profiler: tapegrad.profiler under its older names)
from . import graph  # noqa: F401,E402  (torch.autograd.graph: saved_tensors_hooks)
from .compat import Variable, detect_anomaly, is_anomaly_enabled, set_detect_anomaly  # noqa: F401
from .function import Function, FunctionCtx  # noqa: F401
from .gradcheck import GradcheckError, gradcheck, gradgradcheck  # noqa: F401
from .introspect import dump, render, to_dot  # noqa: F401


__all__ = ["backward", "grad", "Function", "FunctionCtx", "no_grad", "enable_grad", "set_grad_enabled", "is_grad_enabled", "Node", "dump", "render",
           "to_dot", "grad_mode", "gradcheck", "gradgradcheck", "inference_mode", "is_multithreading_enabled",
           "set_multithreading_enabled", "is_view_replay_enabled", "is_tensor_like", "kineto_available"]


def is_tensor_like(inp) -> bool:
    """Whether ``inp`` is a tensor, or an object that behaves as one through ``__torch_function__``."""
    return isinstance(inp, Tensor) or hasattr(type(inp), "__torch_function__")


def kineto_available() -> bool:
    """False: tapegrad has no Kineto profiler (PyTorch's answer on builds without it)."""
    return False
