"""Operator schemas: ATen's grammar (aten/src/ATen/native/README.md), parsed into ``FunctionSchema``.

>>> s = parse_schema("mylib::foo(Tensor(a!) x, float a=1.0, *, int[] dims=[]) -> (Tensor, Tensor)")
>>> s.arguments[0].is_write, s.arguments[2].kwarg_only, len(s.returns)
(True, True, 2)

A schema also binds a call's arguments (``bind``): positional ones, keywords by name and the
defaults, with PyTorch's messages for a missing, surplus or mistyped argument. ``infer_schema``
writes the schema of a type-annotated Python function, as ``torch.library.infer_schema``.
"""
from __future__ import annotations

import collections.abc
import inspect
import numbers
import re
import typing
from dataclasses import dataclass, field

import numpy as np

from ..device import device as _device
from ..tensor import Tensor

__all__ = ["Argument", "FunctionSchema", "parse_schema", "infer_schema"]

# the base types of ATen's grammar; anything else is "unknown type specifier"
_BASE_TYPES = {"Tensor", "int", "SymInt", "float", "bool", "str", "Scalar", "ScalarType", "Layout", "Device",
               "MemoryFormat", "Generator", "Dimname", "Storage", "Stream", "Any", "complex", "QScheme",
               "Dimname", "DeviceIndex", "t", "SymBool"}
# enum names that appear as defaults in ATen's schemas (at::Reduction, memory formats)
_ENUM_DEFAULTS = {"Mean": 1, "Sum": 2, "contiguous_format": "contiguous_format", "long": "long"}
_TOKEN = re.compile(r"\s*(->|[A-Za-z_][A-Za-z0-9_.:]*|-?[0-9][0-9.eE+\-]*|\"[^\"]*\"|'[^']*'|.)")
_UNKNOWN_TYPE = ("\nunknown type specifier. Common valid schema types include Tensor, SymInt, int, float, bool, "
                 "Scalar; for a full list, please see "
                 "https://github.com/pytorch/pytorch/blob/main/aten/src/ATen/native/README.md#func :\n")


@dataclass
class Argument:
    """One argument (or return) of a schema: ``Tensor(a!) x=None`` is type ``Tensor``, alias
    ``a`` written to, name ``x``, default None."""
    name: str
    type: str  # as written, without the alias annotation: "Tensor?", "int[2]", "Tensor[]"
    default: object = inspect.Parameter.empty
    kwarg_only: bool = False
    annotation: str | None = None  # the alias annotation as written: "a!", "a -> *"

    @property
    def alias(self) -> str | None:
        """The alias set's name (``a`` of ``Tensor(a!)``)."""
        return self.annotation.split()[0].rstrip("!") if self.annotation else None

    @property
    def is_write(self) -> bool:
        """Whether the op writes to this argument (``Tensor(a!)``)."""
        return bool(self.annotation) and "!" in self.annotation

    @property
    def has_default(self) -> bool:
        return self.default is not inspect.Parameter.empty

    def __str__(self):
        base, suffix = _split_type(self.type)
        note = f"({self.annotation})" if self.annotation else ""
        text = base + note + suffix + (" " + self.name if self.name else "")
        return text + ("=" + _default_text(self.default) if self.has_default else "")


@dataclass
class FunctionSchema:
    """``ns::name.overload(arguments) -> returns``, as ``torch._C.FunctionSchema``."""
    name: str  # "ns::name" (or just "name" before a namespace is given)
    overload_name: str
    arguments: list = field(default_factory=list)
    returns: list = field(default_factory=list)

    def __str__(self):
        args, star = [], False
        for a in self.arguments:
            if a.kwarg_only and not star:
                args.append("*")
                star = True
            args.append(str(a))
        rets = [str(r) for r in self.returns]
        out = rets[0] if len(rets) == 1 and not self.returns[0].name else "(" + ", ".join(rets) + ")"
        name = self.name + ("." + self.overload_name if self.overload_name else "")
        return f"{name}({', '.join(args)}) -> {out}"

    def bind(self, args, kwargs):
        """The call's values in schema order, split into positional and keyword-only, with the
        defaults filled in; raises RuntimeError as PyTorch's dispatcher does."""
        positional = [a for a in self.arguments if not a.kwarg_only]
        if len(args) > len(positional):
            raise RuntimeError(f"{self.name}() expected at most {len(positional)} argument(s) but received "
                               f"{len(args)} argument(s). Declaration: {self}")
        known = {a.name for a in self.arguments}
        for k in kwargs:
            if k not in known:
                raise RuntimeError(f"Unknown keyword argument '{k}' for operator '{self.name}'. Schema: {self}")
        values = []
        for i, a in enumerate(self.arguments):
            if i < len(args) and not a.kwarg_only:
                v = args[i]
                if a.name in kwargs:
                    raise RuntimeError(f"{self.name}() got multiple values for argument '{a.name}'. "
                                       f"Declaration: {self}")
            elif a.name in kwargs:
                v = kwargs[a.name]
            elif a.has_default:
                v = a.default
            elif a.type.endswith("?"):
                v = None  # an optional without a default takes None (ATen's sort.stable's `stable`)
            else:
                raise RuntimeError(f"{self.name}() is missing value for argument '{a.name}'. Declaration: {self}")
            _check_type(self, i, a, v)
            sized = re.fullmatch(r"(?:int|SymInt)\[(\d+)\]\??", a.type)
            if sized and isinstance(v, int) and not isinstance(v, bool):  # int[2] stride=1 means [1, 1]
                v = [v] * int(sized.group(1))
            values.append(v)
        n = len(positional)
        return values[:n], {a.name: v for a, v in zip(self.arguments[n:], values[n:])}


# ---------------------------------------------------------------- parsing
class _Tokens:
    def __init__(self, text):
        self.text, self.items = text, []
        pos = 0
        while pos < len(text):
            m = _TOKEN.match(text, pos)
            if not m.group(1):
                break
            self.items.append((m.group(1), m.start(1)))
            pos = m.end()
        self.i = 0

    def peek(self):
        return self.items[self.i][0] if self.i < len(self.items) else ""

    def next(self):
        tok = self.peek()
        self.i += 1
        return tok

    def error(self, message, tok_index=None, width=None):
        """RuntimeError with the schema and a ``~~~ <--- HERE`` under the token, as PyTorch's."""
        k = self.i if tok_index is None else tok_index
        start = self.items[k][1] if k < len(self.items) else len(self.text)
        width = width or max(len(self.items[k][0]) if k < len(self.items) else 1, 1)
        return RuntimeError(f"{message}\n{self.text}\n{' ' * start}{'~' * width} <--- HERE\n")

    def expect(self, want):
        if self.peek() != want:
            found = self.peek() or "end of source"
            raise self.error(f"expected {want} but found '{'arrow' if found == '->' else found}' here:")
        self.next()


def parse_schema(text: str) -> FunctionSchema:
    """Parse ``name[.overload](args) -> returns``; a name without ``::`` is kept as written (the
    ``Library`` that defines it adds its namespace). Errors name the position, as PyTorch's."""
    toks = _Tokens(text)
    name = toks.next()
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*(::[A-Za-z_][A-Za-z0-9_]*)?(\.[A-Za-z0-9_]+)?", name):
        raise toks.error("expected an operator name here:", 0)
    name, _, overload = name.partition(".")
    toks.expect("(")
    arguments = _parse_list(toks, ")", is_return=False)
    toks.expect("->")
    if toks.peek() == "(":
        toks.next()
        returns = _parse_list(toks, ")", is_return=True)
    else:
        returns = [_parse_argument(toks, is_return=True, kwarg_only=False)]
    if toks.peek():
        raise toks.error(f"expected end of source but found '{toks.peek()}' here:")
    return FunctionSchema(name, overload, arguments, returns)


def _parse_list(toks, close, is_return):
    out, kwarg_only = [], False
    while toks.peek() != close:
        if toks.peek() == "*" and not is_return:
            toks.next()
            kwarg_only = True
        else:
            out.append(_parse_argument(toks, is_return, kwarg_only))
        if toks.peek() == ",":
            toks.next()
        elif toks.peek() != close:
            found = toks.peek() or "end of source"
            raise toks.error(f"expected {close} but found '{'arrow' if found == '->' else found}' here:")
    toks.next()
    if not is_return:
        names = [a.name for a in out]
        for k, n in enumerate(names):
            if n in names[:k]:
                raise RuntimeError(f"duplicate argument name '{n}' in schema:\n{toks.text}")
    return out


def _parse_argument(toks, is_return, kwarg_only):
    start = toks.i
    base = toks.next()
    if base not in _BASE_TYPES:
        raise toks.error(_UNKNOWN_TYPE.rstrip("\n"), start)
    annotation = None
    if toks.peek() == "(":  # alias annotation: (a), (a!), (a -> *)
        toks.next()
        parts = []
        while toks.peek() not in (")", ""):
            parts.append(toks.next())
        toks.expect(")")
        annotation = " ".join(parts).replace(" !", "!")
    suffix = ""
    while toks.peek() in ("?", "["):
        if toks.next() == "?":
            suffix += "?"
        else:
            size = toks.next() if toks.peek() != "]" else ""
            if size and not size.isdigit():
                raise toks.error(f"expected a list size but found '{size}' here:", toks.i - 1)
            toks.expect("]")
            suffix += f"[{size}]"
    name = ""
    if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", toks.peek()):
        name = toks.next()
    elif not is_return:
        raise toks.error(f"expected an argument name but found '{toks.peek() or 'end of source'}' here:")
    default = inspect.Parameter.empty
    if toks.peek() == "=" and not is_return:
        toks.next()
        default = _parse_default(toks, base + suffix)
    return Argument(name, base + suffix, default, kwarg_only, annotation)


def _parse_default(toks, type_):
    if toks.peek() == "[":
        toks.next()
        items = []
        while toks.peek() != "]":
            items.append(_literal(toks, toks.next()))
            if toks.peek() == ",":
                toks.next()
        toks.next()
        return items
    return _literal(toks, toks.next())


def _literal(toks, tok):
    if tok in ("None", "True", "False"):
        return {"None": None, "True": True, "False": False}[tok]
    if tok[:1] in "\"'":
        return tok[1:-1]
    if tok in _ENUM_DEFAULTS:
        return _ENUM_DEFAULTS[tok]
    try:
        return int(tok)
    except ValueError:
        try:
            return float(tok)
        except ValueError:
            raise toks.error(f"expected a default value but found '{tok}' here:", toks.i - 1) from None


def _split_type(type_):
    m = re.match(r"[A-Za-z]+", type_)
    return type_[:m.end()], type_[m.end():]


def _default_text(value):
    if isinstance(value, str) and value not in ("contiguous_format", "long"):
        return f'"{value}"'
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(map(_default_text, value)) + "]"
    return str(value)


# ---------------------------------------------------------------- checking a call's values
def _type_ok(type_, v, is_tensor):
    if type_.endswith("?"):
        return v is None or _type_ok(type_[:-1], v, is_tensor)
    if type_.endswith("]"):
        return isinstance(v, (list, tuple)) and all(_type_ok(type_[:type_.index("[")], e, is_tensor) for e in v) \
            or (type_.startswith(("int", "SymInt")) and isinstance(v, int) and not isinstance(v, bool))
    if type_ == "Tensor":
        return is_tensor(v)
    if type_ in ("int", "SymInt"):
        return isinstance(v, int) and not isinstance(v, bool) or _integral_scalar(v, is_tensor)
    if type_ == "float":
        return isinstance(v, (int, float)) and not isinstance(v, bool) or _integral_scalar(v, is_tensor, float)
    if type_ == "bool":
        return isinstance(v, bool)
    if type_ == "str":
        return isinstance(v, str)
    if type_ == "Scalar":
        return isinstance(v, (int, float, complex, bool)) or _integral_scalar(v, is_tensor, complex)
    return True  # ScalarType, Device, Layout, ...: not checked


def _integral_scalar(v, is_tensor, kind=int):
    # PyTorch accepts a one-element tensor for a number argument
    if is_tensor(v):
        return v.numel() == 1
    return isinstance(v, numbers.Number) and not isinstance(v, bool) and (kind is not int or float(v).is_integer())


def _check_type(schema, position, arg, value):
    if not _type_ok(arg.type, value, lambda v: isinstance(v, Tensor)):
        raise RuntimeError(
            f"{schema.name}() Expected a value of type '{arg.type}' for argument '{arg.name}' but instead found "
            f"type '{type(value).__name__}'.\nPosition: {position}\nValue: {value!r}\nDeclaration: {schema}")


# ---------------------------------------------------------------- inferring a schema from annotations
def _annotation_type(ann):
    """ATen's type for a Python annotation, or None where there is none."""
    origin, params = typing.get_origin(ann), typing.get_args(ann)
    if origin is typing.Union and len(params) == 2 and type(None) in params:
        inner = _annotation_type(params[0] if params[1] is type(None) else params[1])
        return None if inner is None else inner + "?"
    if origin in (list, tuple, collections.abc.Sequence) and params:
        if origin is tuple and (len(params) != 2 or params[1] is not Ellipsis):
            return None
        inner = _annotation_type(params[0])
        return None if inner is None or inner.endswith("]") else inner + "[]"
    simple = {Tensor: "Tensor", int: "SymInt", float: "float", bool: "bool", str: "str",
              np.dtype: "ScalarType", _device: "Device"}
    if ann in simple:
        return simple[ann]
    if ann is typing.Union[int, float, bool] or ann is typing.Union[int, float, bool, complex]:
        return "Scalar"  # torch.types.Number
    return None


def _return_type(ann):
    if ann is None or ann is type(None):
        return []
    if typing.get_origin(ann) is tuple:
        return [_annotation_type(p) for p in typing.get_args(ann)]
    return [_annotation_type(ann)]


def infer_schema(prototype_function, /, *, mutates_args, op_name: str | None = None) -> str:
    """The schema of ``prototype_function`` from its type annotations (``torch.library.infer_schema``):
    ``int`` is ``SymInt``, ``Optional[Tensor]`` is ``Tensor?``, ``list[Tensor]`` is ``Tensor[]``;
    an argument named in ``mutates_args`` is ``Tensor(a0!)``.

    >>> def f(x: Tensor, n: int, *, scale: float = 1.0) -> Tensor: ...
    >>> infer_schema(f, mutates_args=())
    '(Tensor x, SymInt n, *, float scale=1.0) -> Tensor'
    """
    sig = inspect.signature(prototype_function)
    try:
        hints = typing.get_type_hints(prototype_function)
    except Exception:  # noqa: BLE001  (unresolvable string annotations: use them as written)
        hints = {k: p.annotation for k, p in sig.parameters.items()}
        hints["return"] = sig.return_annotation

    def error(what):
        raise ValueError(f"infer_schema(func): {what} Got func with signature {sig})")

    mutated = set() if mutates_args == "unknown" else {mutates_args} if isinstance(mutates_args, str) \
        else set(mutates_args)
    args, star, alias = [], False, 0
    for name, p in sig.parameters.items():
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            error("We do not support calling custom ops with *args or **kwargs.")
        if p.annotation is p.empty:
            error(f"Parameter {name} must have a type annotation.")
        type_ = _annotation_type(hints.get(name, p.annotation))
        if type_ is None:
            error(f"Parameter {name} has unsupported type {p.annotation}.")
        if p.kind == p.KEYWORD_ONLY and not star:
            args.append("*")
            star = True
        text = type_
        if name in mutated:
            if not type_.startswith("Tensor"):
                error(f"Parameter {name} is in mutable_args but only Tensors or collections of Tensors can be mutated")
            text = f"Tensor(a{alias}!){type_[len('Tensor'):]}"
            alias += 1
        text += " " + name
        if p.default is not p.empty:
            if p.default is not None and not isinstance(p.default, (int, float, bool, str)):
                error(f"Parameter {name} has an unsupported default value type {type(p.default)}. "
                      "Please file an issue on GitHub so we can prioritize this.")
            text += "=" + _default_text(p.default)
        args.append(text)
    unknown = mutated - set(sig.parameters)
    if unknown:
        error(f"{sorted(unknown)} in mutates_args were not found in the custom op's signature. "
              "mutates_args should contain the names of all args that the custom op mutates.")
    if sig.return_annotation is sig.empty:
        error("No return type annotation was provided. Please add one.")
    rets = _return_type(hints.get("return", sig.return_annotation))
    if any(r is None for r in rets):
        error(f"Return has unsupported type {sig.return_annotation}.")
    out = rets[0] if len(rets) == 1 else "(" + ", ".join(rets) + ")"
    return f"{op_name or ''}({', '.join(args)}) -> {out}"
