"""``torch._dynamo``'s names that scripts touch around ``torch.compile``: its ``config`` switches
(``torch._dynamo.config.suppress_errors = True``, ``cache_size_limit``, ``verbose``, ...), ``reset``,
``mark_dynamic`` and the decorators. tapegrad runs eagerly and ``tapegrad.compile`` returns the
model unchanged, so each answers as PyTorch's does outside compiled code (``tapegrad.compiler``):
the switches are kept and read back but change nothing, the decorators return the function."""
from __future__ import annotations

import types

from ..compiler import allow_in_graph, assume_constant_result, disable, is_compiling, reset  # noqa: F401
from . import eval_frame  # noqa: F401  (torch._dynamo.eval_frame.OptimizedModule, as accelerate reads it)
from .eval_frame import OptimizedModule

__all__ = ["config", "reset", "disable", "allow_in_graph", "disallow_in_graph", "forbid_in_graph",
           "assume_constant_result", "is_compiling", "mark_dynamic", "maybe_mark_dynamic", "mark_static",
           "optimize", "run", "OptimizedModule"]

# PyTorch's defaults for the switches scripts most often set; any other attribute can be set too
config = types.SimpleNamespace(suppress_errors=False, verbose=False, cache_size_limit=8,
                               accumulated_cache_size_limit=256, recompile_limit=8, capture_scalar_outputs=False,
                               capture_dynamic_output_shape_ops=False, automatic_dynamic_shapes=True,
                               assume_static_by_default=True, optimize_ddp=True, guard_nn_modules=False,
                               inline_inbuilt_nn_modules=True, log_level=30)


def disallow_in_graph(fn):
    """``fn`` itself."""
    return fn


forbid_in_graph = disallow_in_graph


def mark_dynamic(t, index, *, min=None, max=None) -> None:  # noqa: A002  (PyTorch's keyword names)
    """Nothing to mark: no shapes are specialised."""


def maybe_mark_dynamic(t, index) -> None:
    """Nothing to mark, as ``mark_dynamic``."""


def mark_static(t, index=None) -> None:
    """Nothing to mark, as ``mark_dynamic``."""


def optimize(backend="inductor", *, nopython: bool = False, guard_export_fn=None, guard_fail_fn=None,
             disable: bool = False, dynamic=None):  # noqa: A002
    """``torch._dynamo.optimize(backend)(fn)``: ``fn`` itself."""
    return lambda fn: fn


def run(fn=None):
    """``fn`` itself."""
    return fn if fn is not None else (lambda f: f)
