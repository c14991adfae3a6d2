"""``torch.compiler``'s names for code written against it. tapegrad runs eagerly and
``tapegrad.compile`` returns the model unchanged, so each name here answers as PyTorch's does
outside a compiled region: the decorators return the function as it is, the predicates are False,
and ``reset`` has no cache to clear."""
from __future__ import annotations

from ._compat import compile  # noqa: F401,A004  (torch.compiler.compile is torch.compile)

__all__ = ["compile", "disable", "allow_in_graph", "assume_constant_result", "is_compiling", "is_dynamo_compiling",
           "is_exporting", "reset", "cudagraph_mark_step_begin", "list_backends"]


def disable(fn=None, recursive: bool = True, *, reason: str | None = None):
    """``@disable`` or ``@disable(recursive=False)``: ``fn`` itself (nothing is compiled here)."""
    return fn if fn is not None else (lambda f: f)


def allow_in_graph(fn):
    """``fn`` itself."""
    return fn


def assume_constant_result(fn):
    """``fn`` itself."""
    return fn


def is_compiling() -> bool:
    """False: tapegrad code never runs under a compiler's tracing."""
    return False


def is_dynamo_compiling() -> bool:
    """False, as ``is_compiling``."""
    return False


def is_exporting() -> bool:
    """False: there is no export."""
    return False


def reset() -> None:
    """Nothing to clear: no compiled code is cached."""


def cudagraph_mark_step_begin() -> None:
    """Nothing to mark: no CUDA graphs."""


def list_backends(exclude_tags=("debug", "experimental")) -> list:
    """No compiler backends: an empty list."""
    return []
