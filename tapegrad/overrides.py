"""``torch.overrides``, as far as it holds in tapegrad: **tapegrad has no ``__torch_function__``
dispatch.** Its functions and ``Tensor`` methods never look at an argument's
``__torch_function__``: a Tensor subclass that defines one gets the plain ops (its results are
tapegrad Tensors), and an object that is not a Tensor is refused as it would be anyway. There are
no working ``TorchFunctionMode``\\ s either: the class exists, so that libraries which subclass it
at import (diffusers' layer-skip hook) load, but entering a mode raises, since it would intercept
nothing.

So ``has_torch_function``, ``has_torch_function_unary`` and ``has_torch_function_variadic``
answer False for every argument, which is the truth for tapegrad's own functions: a library that
guards its Python code the PyTorch way

>>> def my_op(x):
...     if tapegrad.overrides.has_torch_function_unary(x):
...         return tapegrad.overrides.handle_torch_function(my_op, (x,), x)
...     return x + 1

runs its own implementation, as tapegrad's ops would. ``handle_torch_function``, called directly,
performs PyTorch's protocol by hand (each distinct argument type's ``__torch_function__``,
subclasses first, until one does not return ``NotImplemented``), so code that relies on it
explicitly still reaches its overrides. ``is_tensor_like`` is ``autograd.is_tensor_like``.
``get_overridable_functions``, ``get_ignored_functions`` and ``get_testing_overrides`` are left
out: with no dispatch, no function is overridable.
"""
from __future__ import annotations

from .autograd import is_tensor_like  # noqa: F401

__all__ = ["has_torch_function", "has_torch_function_unary", "has_torch_function_variadic",
           "handle_torch_function", "is_tensor_like", "TorchFunctionMode"]


class TorchFunctionMode:
    """PyTorch's base class of function modes (``with MyMode(): ...`` routes every torch call
    through ``MyMode.__torch_function__``). tapegrad has no such dispatch, so a mode would see no
    call: subclassing works, entering one raises ``RuntimeError`` rather than silently doing
    nothing."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        raise NotImplementedError

    def __enter__(self):
        raise RuntimeError(f"{type(self).__name__}: tapegrad has no __torch_function__ dispatch, so a "
                           f"TorchFunctionMode would intercept no call")

    def __exit__(self, *exc):
        return False

    @classmethod
    def push(cls, *args, **kwargs):
        """Raises as entering a mode does."""
        return cls(*args, **kwargs).__enter__()


def has_torch_function(relevant_args) -> bool:
    """False: tapegrad's functions never dispatch to ``__torch_function__`` (see the module
    docstring), whatever ``relevant_args`` hold.

    >>> tapegrad.overrides.has_torch_function((tapegrad.zeros(1),))
    False
    """
    iter(relevant_args)  # PyTorch's argument check: an iterable
    return False


def has_torch_function_unary(arg) -> bool:
    """``has_torch_function((arg,))``: False (tapegrad does not dispatch on ``__torch_function__``).

    >>> tapegrad.overrides.has_torch_function_unary(tapegrad.zeros(1))
    False
    """
    return False


def has_torch_function_variadic(*args) -> bool:
    """``has_torch_function(args)``: False (tapegrad does not dispatch on ``__torch_function__``).

    >>> tapegrad.overrides.has_torch_function_variadic(tapegrad.zeros(1), 2.0)
    False
    """
    return False


def _overloaded_args(relevant_args) -> list:
    """The arguments whose ``__torch_function__`` to call, one per distinct type, a subclass
    before its base classes, else left to right (NEP 18's order, as PyTorch's)."""
    types: set = set()
    out: list = []
    for arg in relevant_args:
        t = type(arg)
        if t in types or not hasattr(t, "__torch_function__"):
            continue
        types.add(t)
        index = len(out)
        for i, old in enumerate(out):
            if issubclass(t, type(old)):
                index = i
                break
        out.insert(index, arg)
    return out


def handle_torch_function(public_api, relevant_args, *args, **kwargs):
    """Call ``__torch_function__(public_api, types, args, kwargs)`` of the arguments in
    ``relevant_args`` that define it (one per type, subclasses first) and return the first
    result that is not ``NotImplemented``; TypeError when none handles the call. tapegrad itself
    never calls this (see the module docstring); it is PyTorch's protocol for code that does.

    >>> class Seven:
    ...     @classmethod
    ...     def __torch_function__(cls, func, types, args=(), kwargs=None):
    ...         return 7
    >>> tapegrad.overrides.handle_torch_function(tapegrad.add, (Seven(),), Seven(), 1)
    7
    """
    overloaded = _overloaded_args(relevant_args)
    types = tuple(type(a) for a in overloaded)
    for arg in overloaded:
        result = arg.__torch_function__(public_api, types, args, kwargs)
        if result is not NotImplemented:
            return result
    name = f"{getattr(public_api, '__module__', None)}.{getattr(public_api, '__name__', public_api)}"
    raise TypeError(f"no implementation found for '{name}' on types that implement __torch_function__: "
                    f"{[type(a) for a in overloaded]}")

