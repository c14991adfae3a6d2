"""How a trace sees ``tapegrad.relu(proxy)``: tapegrad has no ``__torch_function__`` (every eager
call would pay for the check), so while a tracer lives, the public functions of tapegrad's
namespaces (``node.NAMESPACES``) are swapped for thin wrappers. A wrapper records a
``call_function`` node (the original function as its target) when one of its arguments, at any
depth, is a :class:`~tapegrad.fx.Proxy`, and otherwise calls the original. ``Tensor``'s binary
operators get the same treatment, so ``tensor + proxy`` defers to ``Proxy.__radd__``.

The swap is counted: the first ``acquire`` installs it, the last ``release`` restores the
originals, under a lock. Eager code in other threads meanwhile goes through the wrappers and
gets the original's result; with no tracer alive nothing is swapped and eager calls cost what
they always did."""
from __future__ import annotations

import functools
import threading
from typing import Any, Callable, Dict, Optional

from tapegrad.tensor import Tensor

from .node import NAMESPACES, PUBLIC_FUNCTIONS, QUALIFIED

_lock = threading.RLock()
_users = 0
_wrappers: Dict[int, Callable] = {}  # id(original) -> its wrapper, made once

# functions PyTorch answers without __torch_function__ (a proxy is not a tensor)
_NOT_RECORDED = frozenset({"is_tensor", "is_storage", "typename"})
# Tensor's binary operators whose reflected form a proxy on the right must get to answer
_TENSOR_BINARY = ("__add__", "__radd__", "__sub__", "__rsub__", "__mul__", "__rmul__", "__truediv__",
                  "__rtruediv__", "__floordiv__", "__rfloordiv__", "__pow__", "__rpow__", "__matmul__",
                  "__rmatmul__", "__mod__", "__rmod__", "__and__", "__or__", "__xor__", "__rand__", "__ror__",
                  "__rxor__", "__lshift__", "__rshift__", "__eq__", "__ne__", "__lt__", "__le__", "__gt__", "__ge__")
_tensor_originals: Dict[str, Callable] = {}


def _einsum_operands(equation, *operands):
    # torch.einsum(eq, [a, b]) unpacks its list before dispatching, so the node reads einsum(eq, a, b)
    if len(operands) == 1 and isinstance(operands[0], (list, tuple)):
        operands = tuple(operands[0])
    return (equation,) + tuple(operands)


# arguments PyTorch rewrites before __torch_function__ sees them (so graphs hold the same nodes)
_NORMALIZE = {"tapegrad.einsum": _einsum_operands, "tapegrad.functional.einsum": _einsum_operands}


def find_proxy(args, kwargs) -> Optional[Any]:
    """The first proxy in ``args`` / ``kwargs``, looking into tuples, lists, dicts and slices."""
    stack = list(args) + list(kwargs.values())
    while stack:
        a = stack.pop()
        if isinstance(a, _proxy_type):
            return a
        if isinstance(a, (tuple, list)):
            stack.extend(a)
        elif isinstance(a, dict):
            stack.extend(a.values())
        elif isinstance(a, slice):
            stack.extend((a.start, a.stop, a.step))
    return None


_proxy_type: type = type("_NoProxyYet", (), {})


def bind_proxy(cls: type) -> None:
    """proxy.py hands its class down once (it imports this module, not the other way round)."""
    global _proxy_type
    _proxy_type = cls


class _Recording:
    """``orig_fn`` as a callable that records itself when given a proxy. It compares and hashes as
    the original, so ``node.target == tapegrad.relu`` holds while the swap is in place (``is``
    cannot: compare targets with ``==`` inside a Transformer, as PyTorch's examples do)."""

    def __init__(self, orig_fn: Callable):
        functools.update_wrapper(self, orig_fn)
        self.__fx_original__ = orig_fn

    def __call__(self, *args, **kwargs):
        proxy = find_proxy(args, kwargs)
        if proxy is not None:
            normalize = _NORMALIZE.get(QUALIFIED.get(id(self.__fx_original__)))
            if normalize is not None:
                args = normalize(*args)
            out = proxy.tracer.create_proxy("call_function", self.__fx_original__, args, kwargs)
            if id(self.__fx_original__) not in QUALIFIED:  # fx.wrap / autowrap, not a tapegrad function
                out.node.meta["is_wrapped"] = True
            return out
        return self.__fx_original__(*args, **kwargs)

    def __eq__(self, other):
        return self.__fx_original__ == (other.__fx_original__ if isinstance(other, _Recording) else other)

    def __hash__(self):
        return hash(self.__fx_original__)

    def __repr__(self):
        return repr(self.__fx_original__)

    def __get__(self, obj, objtype=None):  # stays a plain function when set on a class
        return self if obj is None else functools.partial(self, obj)


def recording_wrapper(orig_fn: Callable) -> Callable:
    """``orig_fn``'s recording wrapper, made once (``fx.wrap`` and autowrap use it too)."""
    wrapper = _wrappers.get(id(orig_fn))
    if wrapper is None:
        wrapper = _wrappers[id(orig_fn)] = _Recording(orig_fn)
    return wrapper


def original(fn: Callable) -> Callable:
    """The function a wrapper stands for (``fn`` itself if it is none)."""
    return getattr(fn, "__fx_original__", fn) if callable(fn) else fn


def _defer_to_proxy(name: str, orig: Callable) -> Callable:
    def op(self, other):
        if isinstance(other, _proxy_type):
            return NotImplemented
        return orig(self, other)

    op.__name__ = op.__qualname__ = name
    op.__fx_original__ = orig
    return op


def acquire() -> None:
    """One more tracer needs the swap (installed by the first)."""
    global _users
    with _lock:
        if _users == 0:
            _install()
        _users += 1


def release() -> None:
    """A tracer is done (the last one restores the originals)."""
    global _users
    with _lock:
        _users -= 1
        if _users == 0:
            _restore()


def _install() -> None:
    for ns, funcs in PUBLIC_FUNCTIONS.items():
        module = NAMESPACES[ns]
        for name, fn in funcs.items():
            if name not in _NOT_RECORDED and vars(module).get(name) is fn:
                setattr(module, name, recording_wrapper(fn))
    for name in _TENSOR_BINARY:
        orig = Tensor.__dict__.get(name)
        if orig is not None:
            _tensor_originals[name] = orig
            setattr(Tensor, name, _defer_to_proxy(name, orig))


def _restore() -> None:
    for ns, funcs in PUBLIC_FUNCTIONS.items():
        module = NAMESPACES[ns]
        for name, fn in funcs.items():
            if getattr(vars(module).get(name), "__fx_original__", None) is fn:
                setattr(module, name, fn)
    for name, orig in _tensor_originals.items():
        if getattr(Tensor.__dict__.get(name), "__fx_original__", None) is orig:
            setattr(Tensor, name, orig)
    _tensor_originals.clear()


def swappable_ids() -> Dict[int, Callable]:
    """id(original) -> original, for every function the swap covers (a traced function's globals that
    name one get the wrapper too)."""
    return {id(fn): fn for funcs in PUBLIC_FUNCTIONS.values() for name, fn in funcs.items() if name not in _NOT_RECORDED}
