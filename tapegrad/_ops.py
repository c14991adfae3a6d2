"""``torch.ops``'s objects: operator namespaces (``tapegrad.ops.aten``, ``tapegrad.ops.mylib``),
their overload packets (``aten.add``) and overloads (``aten.add.Tensor``), as ``torch._ops``.

An ``OpOverload`` is one schema and the function that runs it; calling it binds the arguments
by the schema (positional, keyword, defaults; PyTorch's errors) and calls that function.
``aten`` builds its overloads on first use from ``_library.aten``'s table; ``torch.library``
registers the custom ones (``register``), under one lock.

>>> tapegrad.ops.aten.sum.dim_IntList(x, [1], True)
>>> tapegrad.ops.aten.add.Tensor.name()
'aten::add.Tensor'
"""
from __future__ import annotations

import threading
import types

from . import _functions, _nn_forms, ops
from ._library import aten
from ._library.schema import FunctionSchema, parse_schema
from .tensor import Tensor

__all__ = ["OpOverload", "OpOverloadPacket", "namespace", "register", "deregister", "install", "load_library"]

lock = threading.RLock()  # guards the namespaces' tables and every registration
_namespaces: dict = {}


class OpOverload:
    """One overload of an operator: its ``_schema`` and the function ``_op`` that runs it."""

    def __init__(self, packet, schema: FunctionSchema, op):
        self._schema = schema
        self._op = op
        self.overloadpacket = packet
        self._overloadname = schema.overload_name or "default"
        self._name = schema.name + ("." + schema.overload_name if schema.overload_name else "")
        self.namespace = packet._namespace
        self.__name__ = f"{packet.__name__}.{self._overloadname}"
        self.__qualname__ = self._name
        self.__module__ = f"tapegrad._ops.{self.namespace}"
        self._positional = sum(not a.kwarg_only for a in schema.arguments)

    def name(self) -> str:
        """``ns::op.overload`` (``ns::op`` for the default overload)."""
        return self._name

    @property
    def op(self):
        return self._op

    def __call__(self, *args, **kwargs):
        positional, keywords = self._schema.bind(args, kwargs)
        return self._op(*positional, **keywords)

    def __repr__(self):
        return f"<OpOverload(op='{self.namespace}.{self.overloadpacket.__name__}', overload='{self._overloadname}')>"

    def __str__(self):
        return f"{self.namespace}.{self.overloadpacket.__name__}.{self._overloadname}"


class OpOverloadPacket:
    """An operator's overloads by name (``.default``, ``.Tensor``, ...); calling it runs the
    first overload whose schema takes the arguments."""

    def __init__(self, namespace: str, name: str):
        self._namespace = namespace
        self.__name__ = self.__qualname__ = name
        self._qualified_op_name = f"{namespace}::{name}"
        self.__module__ = f"tapegrad._ops.{namespace}"
        self._overloads: dict = {}  # overload name ("" for the default) -> OpOverload

    def overloads(self) -> list:
        """The overloads' names, ``"default"`` for the one without a name."""
        return [n or "default" for n in self._overloads]

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        key = "" if name == "default" else name
        if key in self._overloads:
            return self._overloads[key]
        raise AttributeError(f"The underlying op of '{self._namespace}.{self.__name__}' has no overload name '{name}'")

    def __call__(self, *args, **kwargs):
        errors = []
        for overload in self._overloads.values():
            try:
                positional, keywords = overload._schema.bind(args, kwargs)
            except RuntimeError as e:
                errors.append(e)
                continue
            return overload._op(*positional, **keywords)
        if len(errors) == 1:
            raise errors[0]
        raise RuntimeError(f"{self._qualified_op_name}() takes none of its overloads' arguments:\n" +
                           "\n".join(map(str, errors)))

    def __repr__(self):
        return f"<OpOverloadPacket(op='{self._namespace}.{self.__name__}')>"

    def __str__(self):
        return f"{self._namespace}.{self.__name__}"

    def __dir__(self):
        return sorted(set(super().__dir__()) | set(self.overloads()))


class _OpNamespace(types.ModuleType):
    """``torch.ops.<ns>``: its attributes are the namespace's operators (``OpOverloadPacket``)."""

    def __init__(self, name: str):
        super().__init__("tapegrad.ops." + name)
        self.name = name
        self._packets: dict = {}

    def __getattr__(self, op_name):
        if op_name.startswith("__"):
            raise AttributeError(op_name)
        with lock:
            if op_name in self._packets:
                return self._packets[op_name]
            if self.name == "aten" and op_name in _ATEN:
                return self._packet(op_name)
        raise AttributeError(f"'_OpNamespace' '{self.name}' object has no attribute '{op_name}'")

    def _packet(self, op_name) -> OpOverloadPacket:
        if op_name not in self._packets:
            packet = self._packets[op_name] = OpOverloadPacket(self.name, op_name)
            if self.name == "aten":
                for overload, text in _ATEN.get(op_name, {}).items():
                    schema = parse_schema("aten::" + text)
                    packet._overloads[overload] = OpOverload(packet, schema, _aten_function(schema))
        return self._packets[op_name]

    def __dir__(self):
        return sorted(set(super().__dir__()) | set(self._packets) | (set(_ATEN) if self.name == "aten" else set()))


def namespace(name: str) -> _OpNamespace:
    """The namespace ``torch.ops.<name>`` (made on first use, as PyTorch's)."""
    with lock:
        if name not in _namespaces:
            _namespaces[name] = _OpNamespace(name)
        return _namespaces[name]


def register(schema: FunctionSchema, op) -> OpOverload:
    """Add the overload ``schema`` (named ``ns::name``) running ``op``; RuntimeError if it exists."""
    ns, _, name = schema.name.partition("::")
    with lock:
        packet = namespace(ns)._packet(name)
        if schema.overload_name in packet._overloads:
            raise RuntimeError(
                f"Tried to register an operator ({schema}) with the same name and overload name multiple times. "
                "Each overload's schema should only be registered with a single call to def().")
        overload = packet._overloads[schema.overload_name] = OpOverload(packet, schema, op)
        return overload


def deregister(overload: OpOverload) -> None:
    """Remove an overload (a ``Library``'s ``_destroy``, a redefined ``custom_op``)."""
    with lock:
        packet = overload.overloadpacket
        packet._overloads.pop(overload._schema.overload_name, None)
        if not packet._overloads:
            namespace(packet._namespace)._packets.pop(packet.__name__, None)


# ---------------------------------------------------------------- aten, from the table
def _aten_table() -> dict:
    """op name -> {overload name ("" for the default) -> schema text}."""
    table: dict = {}
    for text in aten.SCHEMAS:
        name, _, overload = text[:text.index("(")].partition(".")
        table.setdefault(name, {})[overload] = text
    return table


_ATEN = _aten_table()


def _aten_function(schema):
    full = schema.name.partition("::")[2] + "." + (schema.overload_name or "default")
    impl = aten.ADAPTERS.get(full, schema.name.partition("::")[2])
    if isinstance(impl, str):
        impl = _resolve(impl)
    defaults = {a.name: a.default for a in schema.arguments if a.kwarg_only and a.has_default}
    positional = [a.default if a.has_default else _REQUIRED for a in schema.arguments if not a.kwarg_only]

    def run(*args, **kwargs):
        # arguments left at their default are not passed (trailing positional ones, keyword-only
        # ones): tapegrad's functions need not know ATen's layout/device/pin_memory/memory_format
        n = len(args)
        while n and _same(args[n - 1], positional[n - 1]):
            n -= 1
        return impl(*args[:n], **{k: v for k, v in kwargs.items() if k not in defaults or not _same(v, defaults[k])})
    run.__name__ = full
    return run


_REQUIRED = object()


def _same(value, default) -> bool:
    return value is default or type(value) is type(default) and not hasattr(value, "shape") and value == default \
        or isinstance(value, (list, tuple)) and isinstance(default, (list, tuple)) and list(value) == list(default)


def _resolve(name):
    """tapegrad's function ``name`` (``torch.<name>``), else the ``Tensor`` method."""
    if not name.startswith("Tensor."):
        for module in (ops.__dict__, vars(_functions), vars(_nn_forms)):
            if name in module:
                return module[name]
    return getattr(Tensor, name.removeprefix("Tensor."))


def install() -> None:
    """Give ``tapegrad.ops`` (``torch.ops``) its namespaces: ``aten``, any other name on first use."""
    ops.aten = namespace("aten")
    ops.load_library = load_library
    ops.__getattr__ = _ops_getattr


def _ops_getattr(name):
    if name.startswith("_") or not name.isidentifier():
        raise AttributeError(f"module 'tapegrad.ops' has no attribute {name!r}")
    return namespace(name)


def load_library(path) -> None:
    """``torch.ops.load_library``: tapegrad cannot load a compiled libtorch extension (its
    operators are C++ against PyTorch's dispatcher); define them with :mod:`tapegrad.library`."""
    raise OSError(f"Could not load this library: {path}. tapegrad cannot load libtorch extension libraries "
                  "(their operators are C++ compiled against PyTorch's dispatcher); define the operators in "
                  "Python with tapegrad.library (custom_op, or Library.define and Library.impl) instead.")
