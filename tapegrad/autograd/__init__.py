"""Reverse-mode automatic differentiation: the tape's public face.

``Tensor.backward`` and ``autograd.grad`` run the engine (``tapegrad/_tape/engine.py``, the
pass itself in csrc/tape.cpp); nodes are recorded by the op table (``tapegrad/_tape/registry.py``)
as ops run in grad mode.
"""
from __future__ import annotations

from . import grad_mode
from .grad_mode import enable_grad, is_grad_enabled, no_grad, set_grad_enabled
from .._tape.engine import (RemovableHandle, backward, grad, register_hook,  # noqa: F401
                            register_post_accumulate_grad_hook, retain_grad)
from .._tape.node import Node

from .introspect import dump, to_dot  # noqa: E402,F401
from .function import Function, FunctionCtx  # noqa: E402,F401
from ..tensor import Tensor  # noqa: E402
from .compat import (Variable, detect_anomaly, gradcheck, gradgradcheck, is_anomaly_enabled,  # noqa: E402,F401
                     set_detect_anomaly)
from . import functional  # noqa: E402,F401

__all__ = ["backward", "grad", "Function", "FunctionCtx", "no_grad", "enable_grad", "set_grad_enabled", "is_grad_enabled", "Node", "dump",
           "to_dot", "grad_mode"]
