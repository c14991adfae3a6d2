"""An op's public surface, declared once where the op is written.

    @public(method=True, inplace=True, out=True)
    def exp(input):
        ...

gives ``tapegrad.exp`` (and ``tapegrad.ops.exp``) with PyTorch's ``out=``, the method
``Tensor.exp``, and the in-place form ``exp_`` (``tapegrad.exp_`` and ``Tensor.exp_``), as PyTorch
generates its variants from ``native_functions.yaml``. Ops made by a factory declare the same
way with a call: ``public(exp, method=True, inplace=True, out=True)``.

The rules, in one place:

* **method**: ``Tensor.exp`` *is* the op's function (its first parameter is the tensor), so a
  method call costs one Python frame, and ``help(Tensor.exp)`` shows the op's signature and
  docstring. The function in its domain module is the same object.
* **in-place** (``exp_``): the op computed out of place and written into ``self`` by
  ``inplace.inplace``, which bumps the version counter and, while recording, records the op and
  moves ``self`` onto its node. Generated with the op's exact signature.
* **axis=** / **keepdims=**: numpy's names, which PyTorch's native functions accept for ``dim`` /
  ``keepdim`` (``torch.sum(x, axis=0)``); every declared op with such a parameter takes them,
  through a generated wrapper (one frame) on its public surface only; the ops call each other
  without it.
* **out=** (``tapegrad.exp(x, out=y)``): the top-level function gains a keyword ``out``; the result
  is cast (PyTorch's same-kind rule) and written into ``out``, resized if its shape differs.
  Refused when autograd would need the result. Methods never take ``out=``, so they skip it.

Python's operators (``__add__``, ...) stay written out in ``tensor.py``.
"""
from __future__ import annotations

import builtins
import inspect
import linecache
import os

import numpy as np

from .. import _dtype
from .._tape import grad_mode
from .inplace import WRITE_WATCHERS, before_write, inplace as _inplace

Tensor = None  # the Tensor class, bound by tensor.py (ops.bind_tensor): the ops sit below it

FUNCTIONS: dict = {}  # public name -> top-level function (with out= where declared)
PLAIN: dict = {}  # public name -> the op itself (no out= wrapper): what tensor.py's operators call
METHODS: dict = {}  # method name -> function, installed on Tensor by ops.bind_tensor


def public(*fns, method: bool = False, inplace: bool = False, out: bool = False, name: str | None = None,
           doc: str | None = None):
    """Declare the public surface of the op(s) ``fns`` (a decorator when called without them).

    ``name``: the public name when it is not the function's (an alias, such as ``arcsin``).
    ``doc``: the docstring of an op made by a factory (a ``def`` has its own).
    Returns the function itself: the module keeps the plain op, which the others call.
    """
    if not fns:
        return lambda fn: public(fn, method=method, inplace=inplace, out=out, name=name, doc=doc)
    for op in fns:
        if doc is not None:
            op.__doc__ = doc
        n = name or op.__name__
        if n in FUNCTIONS:
            raise ValueError(f"public: {n!r} is declared twice")
        fn = _with_aliases(op, n)
        FUNCTIONS[n] = _with_out(fn, n) if out else fn
        PLAIN[n] = fn
        if method:
            METHODS[n] = fn
        if inplace:
            fn_ = _inplace_form(fn, n + "_")
            FUNCTIONS[n + "_"] = PLAIN[n + "_"] = fn_
            if method:
                METHODS[n + "_"] = fn_
    return fns[0]


def replace(name: str, fn):
    """Make ``fn`` the declared ``name`` (function, plain op and method alike): a hand-written form
    in front of a generated one, which ``fn`` falls back to. Returns ``fn``."""
    for table in (FUNCTIONS, PLAIN, METHODS):
        if name in table:
            table[name] = fn
    return fn


def install_methods(cls) -> None:
    """Give ``cls`` (``Tensor``) the declared methods; a name it already defines is an error."""
    clash = sorted(n for n in METHODS if n in vars(cls))
    if clash:
        raise TypeError(f"Tensor.{clash[0]} is written out in tensor.py and declared public(method=True) by "
                        f"{METHODS[clash[0]].__module__}: keep one (all clashes: {clash})")
    for name, fn in METHODS.items():
        setattr(cls, name, fn)


# ---------------------------------------------------------------- generated variants
def _params(fn):
    """(parameter list for a def, the matching call's arguments, the names passed) of ``fn``."""
    sig = inspect.signature(fn)
    defaults, params, args, names = {}, [], [], []
    star = False
    for p in sig.parameters.values():
        text = p.name
        if p.default is not p.empty:
            defaults[f"_d_{p.name}"] = p.default
            text += f"=_d_{p.name}"
        if p.kind is p.VAR_POSITIONAL:
            params.append("*" + p.name)
            args.append("*" + p.name)
            star = True
        elif p.kind is p.VAR_KEYWORD:
            params.append("**" + p.name)
            args.append("**" + p.name)
        elif p.kind is p.KEYWORD_ONLY:
            if not star:
                params.append("*")
                star = True
            params.append(text)
            args.append(f"{p.name}={p.name}")
        else:
            if p.kind is p.POSITIONAL_ONLY:
                raise TypeError(f"public: {fn.__name__} has positional-only parameters")
            params.append(text)
            args.append(p.name)
        names.append(p.name)
    return params, args, names, star, defaults


def _generate(fn, name, source, namespace):
    """A real function (exact signature, name, docstring) compiled from ``source``. Its file name
    lies inside the package, so tracebacks show the source (linecache) and the tape's search for
    the user's frame passes over it, as over any tapegrad code."""
    namespace = dict(namespace, _fn=fn)
    filename = os.path.join(os.path.dirname(__file__), f"<generated {fn.__module__}.{name}>")
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    exec(compile(source, filename, "exec"), namespace)
    made = namespace[name]
    made.__module__ = fn.__module__
    made.__qualname__ = name
    return made


_ALIASES = {"dim": "axis", "keepdim": "keepdims"}


class _Missing:
    __slots__ = ()

    def __repr__(self):
        return "<not given>"


_NOT_GIVEN = _Missing()


def _with_aliases(fn, name):
    """``fn`` taking ``axis=`` for ``dim`` and ``keepdims=`` for ``keepdim`` (as keywords), or
    ``fn`` itself when it has neither parameter."""
    sig = inspect.signature(fn)
    ps = list(sig.parameters.values())
    names = [p.name for p in ps]
    aliased = [(p, a) for p, a in _ALIASES.items() if p in names and a not in names]
    if not aliased or any(p.kind in (p.VAR_KEYWORD, p.POSITIONAL_ONLY) for p in ps):
        return fn
    # a required parameter from the first aliased one on becomes optional (``cumsum(x, axis=0)``
    # leaves ``dim`` out), and is checked in the body instead
    first = builtins.min(names.index(p) for p, _ in aliased)
    params, args, defaults, required, star = [], [], {}, [], False
    for i, p in enumerate(ps):
        if p.kind is p.VAR_POSITIONAL:
            params.append("*" + p.name)
            args.append("*" + p.name)
            star = True
            continue
        if p.kind is p.KEYWORD_ONLY and not star:
            params.append("*")
            star = True
        if p.default is not p.empty:
            defaults[f"_d_{p.name}"] = p.default
            params.append(f"{p.name}=_d_{p.name}")
        elif i >= first and p.kind is not p.KEYWORD_ONLY:
            required.append(p.name)
            params.append(f"{p.name}=_NOT_GIVEN")
        else:
            params.append(p.name)
        args.append(f"{p.name}={p.name}" if p.kind is p.KEYWORD_ONLY else p.name)
    if not star:
        params.append("*")
    body = []
    for p, a in aliased:
        params.append(f"{a}=_NOT_GIVEN")
        given = f"{p} is not _NOT_GIVEN" if p in required else f"{p} is not _d_{p}"
        body += [f"    if {a} is not _NOT_GIVEN:",
                 f"        if {given}:",
                 f"            raise TypeError(\"{name}() got values for both '{p}' and its alias '{a}'\")",
                 f"        {p} = {a}"]
    for p in required:
        body += [f"    if {p} is _NOT_GIVEN:",
                 f"        raise TypeError(\"{name}() missing required argument '{p}'\")"]
    source = (f"def {name}({', '.join(params)}):\n" + "\n".join(body) + "\n"
              f"    return _fn({', '.join(args)})\n")
    made = _generate(fn, name, source, dict(defaults, _NOT_GIVEN=_NOT_GIVEN))
    made.__doc__ = fn.__doc__
    return made


def _with_out(fn, name):
    params, args, _, star, defaults = _params(fn)
    if not star:
        params.append("*")
    call = f"_fn({', '.join(args)})"
    source = (f"def {name}({', '.join(params + ['out=None'])}):\n"
              f"    if out is None:\n"
              f"        return {call}\n"
              f"    return _write_out(out, {call}, {name!r})\n")
    made = _generate(fn, name, source, dict(defaults, _write_out=_write_out))
    made.__doc__ = fn.__doc__
    return made


def _inplace_form(fn, name):
    params, args, names, _, defaults = _params(fn)
    first, rest = names[0], names[1:]
    source = (f"def {name}({', '.join(params)}):\n"
              f"    return _inplace({first}, lambda {first}, *_: _fn({', '.join(args)}), {name!r}, "
              f"{''.join(r + ', ' for r in rest)})\n")
    made = _generate(fn, name, source, dict(defaults, _inplace=_inplace))
    made.__doc__ = f"In-place form of ``{fn.__name__}``: writes the result into ``{first}`` and returns it."
    return made


def _write_out(out, result, name):
    if isinstance(result, tuple):
        if not isinstance(out, (tuple, list)) or len(out) != len(result):
            raise TypeError(f"{name}(): out= must be a tuple of {len(result)} tensors")
        for o, r in zip(out, result):
            _write_out(o, r, name)
        return type(result)(*out) if hasattr(result, "_fields") else tuple(out)
    if not isinstance(out, Tensor):
        raise TypeError(f"{name}(): argument 'out' must be a Tensor, not {type(out).__name__}")
    if grad_mode.state.enabled and (result.requires_grad or out.requires_grad):
        raise RuntimeError(f"{name}(): functions with out=... arguments don't support automatic differentiation, "
                           f"but one of the arguments requires grad.")
    r = result._data
    if WRITE_WATCHERS:
        before_write(out)
    if not out._data.flags.writeable:
        raise RuntimeError(f"{name}(): unsupported operation: out= is a read-only or expanded view (shape "
                           f"{tuple(out.shape)}, strides {out._data.strides}); pass a fresh tensor or clone() it")
    if not _dtype.can_cast(r.dtype, out._data.dtype):
        raise RuntimeError(f"{name}(): result type {_dtype.name(r.dtype)} can't be cast to the desired output type "
                           f"{_dtype.name(out._data.dtype)}")
    if out._data.shape != r.shape:  # PyTorch resizes the out tensor
        out._data = _resized(out._data, r.shape)
        if isinstance(out._data, tuple):  # grown past its memory: the part that fits is written there too
            old, out._data = out._data
            np.copyto(old, r.reshape(-1)[:old.size], casting="unsafe")  # (checked above)
    np.copyto(out._data, r, casting="unsafe")
    out._bump_version()
    return out


def _resized(a, shape):
    """``a`` resized to ``shape`` as PyTorch's ``resize_``: contiguous from ``a``'s first element in the
    same memory (which a base or other views of it then see), when that memory holds it; else a
    fresh array, returned as (the old memory's elements from ``a`` on, flat; the fresh array)."""
    n = int(np.prod(shape))
    owner = a
    while isinstance(owner.base, np.ndarray):
        owner = owner.base
    if not (owner.flags.c_contiguous and owner.flags.writeable) or a.size == 0:
        return np.empty(shape, a.dtype)
    offset = a.__array_interface__["data"][0] - owner.__array_interface__["data"][0]
    room = (owner.nbytes - offset) // a.itemsize
    if offset < 0 or offset % a.itemsize:
        return np.empty(shape, a.dtype)
    if n <= room:
        return np.ndarray(shape, a.dtype, buffer=owner.reshape(-1).view(np.uint8), offset=offset)
    return np.ndarray((room,), a.dtype, buffer=owner.reshape(-1).view(np.uint8), offset=offset), np.empty(shape, a.dtype)
