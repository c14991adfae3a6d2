"""Custom operators, as ``torch.library``: define an op with a schema, give it kernels, a fake
(shape) implementation and an autograd formula, and call it as ``tapegrad.ops.<ns>.<name>``.

>>> @tapegrad.library.custom_op("mylib::mysin", mutates_args=())
... def mysin(x: Tensor) -> Tensor:
...     return tapegrad.from_numpy(np.sin(x.numpy()))
>>> mysin.register_autograd(lambda ctx, g: g * ctx.x.cos(),
...                        setup_context=lambda ctx, inputs, output: setattr(ctx, "x", inputs[0]))
>>> tapegrad.ops.mylib.mysin(x).sum().backward()

How a call runs (PyTorch's dispatcher, reduced to what a CPU-only eager library has):
a ``CompositeImplicitAutograd`` kernel runs as is (its ops record their own gradients);
otherwise the CPU (or ``CompositeExplicitAutograd``) kernel runs with recording off, and when
an input requires grad the registered autograd formula is recorded as one op on the tape (an
``autograd.Function``). A ``custom_op`` without a formula records an op whose backward raises
naming the op; a ``Library`` kernel without one keeps what its own ops recorded and warns at
backward, as PyTorch's autograd fallback does. Mutated arguments (``Tensor(a!)``) get their
version bumped, so the tape's saved-tensor checks see the change.
"""
from __future__ import annotations

import contextlib
import threading
import warnings
import weakref

import numpy as np

from . import _ops
from ._library.schema import FunctionSchema, infer_schema, parse_schema
from ._tape import grad_mode
from .autograd.function import Function
from .autograd.gradcheck import gradcheck
from .tensor import Tensor

__all__ = ["Library", "custom_op", "CustomOpDef", "define", "impl", "register_kernel", "register_fake",
           "impl_abstract", "register_autograd", "get_ctx", "opcheck", "infer_schema", "OpCheckError"]

_DEVICE_KEYS = {"cpu": "CPU", "cuda": "CUDA", "meta": "Meta", "xpu": "XPU", "mps": "MPS"}
_KEYS = {"CPU", "CUDA", "XPU", "MPS", "Meta", "CompositeImplicitAutograd", "CompositeExplicitAutograd"}
_defs: dict = {}  # "ns::name.overload" -> _OpDef
_def_libraries: set = set()  # the namespaces a "DEF" Library holds
_keep_alive: list = []  # the libraries torch.library.define/impl make for themselves
_fake_ctx = threading.local()


class _OpDef:
    """An operator's registrations: its kernels by dispatch key, its fake, its autograd formula."""

    def __init__(self, schema: FunctionSchema, from_custom_op: bool):
        self.schema = schema
        self.kernels: dict = {}
        self.fake = None
        self.backward = self.setup_context = None
        self.from_custom_op = from_custom_op
        self.mutated = [k for k, a in enumerate(schema.arguments) if a.is_write]
        self.overload = _ops.register(schema, self)
        self.function = _autograd_function(self)

    @property
    def qualname(self) -> str:
        return self.overload.name()

    def __call__(self, *args, **kwargs):
        implicit = self.kernels.get("CompositeImplicitAutograd")
        if implicit is not None:
            return implicit(*args, **kwargs)
        kernel = self.kernel()
        tensors = [t for t in _flat(args) + _flat(list(kwargs.values())) if isinstance(t, Tensor)]
        needs_grad = grad_mode.is_grad_enabled() and any(t.requires_grad for t in tensors)
        if needs_grad and (self.backward is not None or self.from_custom_op):
            out = self.function.apply(*args, **kwargs)  # backward raises where no formula is registered
        elif self.from_custom_op:
            with grad_mode.no_grad():
                out = kernel(*args, **kwargs)
        else:
            out = kernel(*args, **kwargs)
            if needs_grad:
                self._warn_at_backward(out)
        if self.from_custom_op:
            _check_no_alias(self, tensors, out)
        for k in self.mutated:
            for t in _flat([(list(args) + list(kwargs.values()))[k]]):
                if isinstance(t, Tensor):
                    t._bump_version()
        return out

    def kernel(self):
        for key in ("CPU", "CompositeExplicitAutograd"):
            if key in self.kernels:
                return self.kernels[key]
        have = sorted(self.kernels) + (["Meta"] if self.fake is not None else [])
        raise NotImplementedError(
            f"Could not run '{self.qualname}' with arguments from the 'CPU' backend. This could be because the "
            f"operator doesn't exist for this backend. '{self.qualname}' is only available for these backends: "
            f"[{', '.join(have)}].")

    def _warn_at_backward(self, out):
        def warn(grad):
            warnings.warn(f"{self.qualname}: an autograd kernel was not registered to the Autograd key(s) but we are "
                          "trying to backprop through it. This may lead to silently incorrect behavior. Please "
                          "register an autograd formula with torch.library.register_autograd.", stacklevel=2)
        for t in _flat([out]):
            if isinstance(t, Tensor) and t.requires_grad:
                t.register_hook(warn)


def _autograd_function(opdef):
    """The ``autograd.Function`` that records ``opdef``'s formula as one op on the tape."""

    def forward(*args, **kwargs):
        return opdef.kernel()(*args, **kwargs)

    def setup_context(ctx, inputs, output):
        if opdef.setup_context is not None:
            opdef.setup_context(ctx, inputs, output)

    def backward(ctx, *grads):
        if opdef.backward is None:
            raise RuntimeError(f"Trying to backward through {opdef.overload} but no autograd formula was "
                               "registered. Please use register_autograd to add one.")
        grads = opdef.backward(ctx, *grads)
        return grads if isinstance(grads, tuple) else (grads,)

    ns, _, name = opdef.schema.name.partition("::")
    methods = {"forward": staticmethod(forward), "setup_context": staticmethod(setup_context),
               "backward": staticmethod(backward)}
    return type(f"GeneratedBackwardFor_{ns}_{name}_{opdef.overload._overloadname}", (Function,), methods)


def _flat(values):
    out = []
    for v in values:
        out.extend(_flat(v) if isinstance(v, (list, tuple)) else [v])
    return out


def _check_no_alias(opdef, inputs, out):
    """PyTorch's rule for custom ops: an output is never an input nor a view of one."""
    for o in _flat([out]):
        if isinstance(o, Tensor) and any(o is t or np.may_share_memory(o._data, t._data) for t in inputs):
            raise RuntimeError(
                f"{opdef.qualname}: The output of this custom operator (1) must not also be an input to this custom "
                "operator and (2) may not alias any inputs to this custom operator or other returns. Please instead "
                "return a clone of the offending output tensor(s) (e.g. return x.clone()).")


def _lookup(op) -> _OpDef:
    """The registrations of ``op``: a ``"ns::name[.overload]"`` string, an overload or a CustomOpDef."""
    if isinstance(op, CustomOpDef):
        return op._opdef
    if isinstance(op, _ops.OpOverload):
        name = op.name()
    elif isinstance(op, _ops.OpOverloadPacket):
        name = op._qualified_op_name
    else:
        name = str(op)
    with _ops.lock:
        opdef = _defs.get(name)
    if opdef is None:
        raise RuntimeError(f"Operator {name} does not exist (or is not a custom operator: tapegrad maps ATen's "
                           "operators onto its own functions and takes no kernels for them)")
    return opdef


def _dispatch_key(key: str) -> str:
    key = _DEVICE_KEYS.get(key, key)
    if key not in _KEYS:
        raise NotImplementedError(f"tapegrad.library: dispatch key {key!r} is not supported (tapegrad supports "
                                  f"{sorted(_KEYS)}; for gradients use register_autograd)")
    return key


# ---------------------------------------------------------------- Library
class Library:
    """A set of registrations in namespace ``ns`` (``torch.library.Library``): ``kind`` "DEF"
    defines the namespace's operators, "FRAGMENT" adds some to it, "IMPL" only gives kernels.
    The registrations end with the object (or ``_destroy()``).

    >>> lib = Library("mylib", "FRAGMENT")
    >>> lib.define("scale(Tensor x, float a) -> Tensor")
    >>> lib.impl("scale", lambda x, a: x * a, "CompositeImplicitAutograd")
    """

    def __init__(self, ns: str, kind: str, dispatch_key: str = ""):
        if kind not in ("DEF", "IMPL", "FRAGMENT"):
            raise ValueError("Unsupported kind: ", kind)
        if ns in ("aten", "prim", "prims") and kind != "IMPL":
            raise ValueError(f"{ns} is a reserved namespace. Please try creating a library with another name.")
        with _ops.lock:
            if kind == "DEF":
                if ns in _def_libraries:
                    raise RuntimeError(f"Only a single TORCH_LIBRARY can be used to register the namespace {ns}; "
                                       "please put all of your definitions in a single TORCH_LIBRARY block. "
                                       "(use Library(ns, 'FRAGMENT') to add to it)")
                _def_libraries.add(ns)
        self.ns, self.kind, self.dispatch_key = ns, kind, dispatch_key
        self._defs: list = []  # the _OpDefs this library defined
        self._impls: list = []  # (opdef, key) for the kernels it gave
        self._finalizer = weakref.finalize(self, _destroy, ns, kind, self._defs, self._impls)

    def __repr__(self):
        return f"Library(kind={self.kind}, ns={self.ns}, dispatch_key={self.dispatch_key})>"

    def define(self, schema: str, alias_analysis: str = "", *, tags=()) -> str:
        """Define an operator from its schema (``"foo(Tensor x, float a) -> Tensor"``); returns its
        name. RuntimeError for a bad schema (naming the position) or an operator defined twice."""
        if self.kind == "IMPL":
            raise RuntimeError(f"Cannot define an operator inside of a IMPL library (namespace {self.ns}); "
                               "use a DEF or FRAGMENT library")
        parsed = parse_schema(schema)
        if "::" in parsed.name and parsed.name.partition("::")[0] != self.ns:
            raise RuntimeError(f"Explicitly provided namespace ({parsed.name.partition('::')[0]}) in schema string "
                               f"does not match namespace of enclosing library ({self.ns})")
        parsed.name = self.ns + "::" + parsed.name.rpartition("::")[2]
        with _ops.lock:
            opdef = _OpDef(parsed, from_custom_op=False)
            opdef.overload.tags = tuple(tags)
            _defs[opdef.qualname] = opdef
            self._defs.append(opdef)
        return parsed.name.partition("::")[2] + ("." + parsed.overload_name if parsed.overload_name else "")

    def impl(self, op_name, fn, dispatch_key: str = "", *, with_keyset: bool = False):
        """Give operator ``op_name`` (``"foo"``, ``"foo.overload"`` or its overload object) the kernel
        ``fn`` for ``dispatch_key``: ``"CPU"``, ``"CompositeExplicitAutograd"`` (recording off;
        gradients from ``register_autograd``), ``"CompositeImplicitAutograd"`` (the default: ``fn``'s
        own ops record their gradients) or ``"Meta"`` (the fake)."""
        if with_keyset:
            raise NotImplementedError("tapegrad.library: with_keyset=True (a DispatchKeySet argument) is not supported")
        if isinstance(op_name, str) and "::" not in op_name:
            op_name = f"{self.ns}::{op_name}"
        opdef = _lookup(op_name)
        key = _dispatch_key(dispatch_key or self.dispatch_key or "CompositeImplicitAutograd")
        with _ops.lock:
            if (opdef, key) in self._impls:
                raise RuntimeError(f"This is not allowed since there's already a kernel registered from python "
                                   f"overriding {opdef.qualname}'s behavior for {key} dispatch key and {self.ns} "
                                   "namespace.")
            if key == "Meta":
                opdef.fake = fn
            else:
                opdef.kernels[key] = fn
            self._impls.append((opdef, key))

    def _register_fake(self, op_name, fn, _stacklevel=1, *, allow_override=False):
        self.impl(op_name, fn, "Meta")

    def _destroy(self):
        self._finalizer()


def _destroy(ns, kind, defs, impls):
    with _ops.lock:
        for opdef, key in impls:
            if key == "Meta":
                opdef.fake = None
            else:
                opdef.kernels.pop(key, None)
        for opdef in defs:
            _ops.deregister(opdef.overload)
            if _defs.get(opdef.qualname) is opdef:
                del _defs[opdef.qualname]
        if kind == "DEF":
            _def_libraries.discard(ns)
    impls.clear()
    defs.clear()


def _decorator(register, *args, **kwargs):
    """The decorator form of ``register(*args, func, **kwargs)``: registers and returns ``func``."""
    def decorate(func):
        register(*args, func, **kwargs)
        return func
    return decorate


def _library(qualname, lib):
    ns = qualname.partition("::")[0]
    if lib is None:
        lib = Library(ns, "FRAGMENT")
        _keep_alive.append(lib)
    return lib


def define(qualname: str, schema: str, *, lib=None, tags=()) -> None:
    """Define the operator ``qualname`` (``"mylib::foo"``) with ``schema`` (``"(Tensor x) -> Tensor"``).

    >>> tapegrad.library.define("mylib::twice", "(Tensor x) -> Tensor")
    """
    ns, sep, name = qualname.partition("::")
    if not sep:
        raise ValueError(f"define(qualname, ...): expected qualname to be 'namespace::name', got {qualname!r}")
    _library(qualname, lib).define(name + schema, tags=tags)


def impl(qualname, types, func=None, *, lib=None):
    """Register ``func`` for ``qualname`` on the device ``types`` ("cpu", ...) or a dispatch key;
    the decorator form when ``func`` is omitted.

    >>> @tapegrad.library.impl("mylib::twice", "cpu")
    ... def twice(x):
    ...     return x * 2
    """
    if func is None:
        return _decorator(impl, qualname, types, lib=lib)
    name = qualname if isinstance(qualname, str) else _lookup(qualname).qualname
    for t in ([types] if isinstance(types, str) else types):
        _library(name, lib).impl(name, func, t)
    return func


def register_kernel(op, device_types, func=None, /, *, lib=None):
    """A kernel for ``op`` on ``device_types`` (None: every device), as ``torch.library.register_kernel``."""
    if func is None:
        return _decorator(register_kernel, op, device_types, lib=lib)
    opdef = _lookup(op)
    if isinstance(op, CustomOpDef) or opdef.from_custom_op:
        return opdef.custom.register_kernel(device_types, func)
    return impl(opdef.qualname, "CompositeExplicitAutograd" if device_types is None else device_types, func, lib=lib)


def register_fake(op, func=None, /, *, lib=None, _stacklevel=1, allow_override=False):
    """The fake (meta) implementation of ``op``: computes the output's shape and dtype only (with
    ``new_empty``/``empty_like``); ``opcheck`` compares it with the real kernel's output."""
    if func is None:
        return _decorator(register_fake, op, lib=lib, allow_override=allow_override)
    opdef = _lookup(op)
    with _ops.lock:
        if opdef.fake is not None and not allow_override:
            raise RuntimeError(f"register_fake(...): the operator {opdef.qualname} already has an fake impl "
                               "registered")
        opdef.fake = func
    return func


impl_abstract = register_fake  # its name before PyTorch 2.4


def register_autograd(op, backward, /, *, setup_context=None, lib=None) -> None:
    """Make ``op`` differentiable: ``setup_context(ctx, inputs, output)`` saves what ``backward``
    needs, ``backward(ctx, *grads)`` returns one gradient per input (None for non-tensors). The
    formula is recorded as one op; written in tapegrad ops, it is differentiable again."""
    opdef = _lookup(op)
    if any(a.is_write for a in opdef.schema.arguments):
        raise RuntimeError(f"register_autograd(...): {opdef.qualname} mutates an input; autograd formulas are "
                           "supported only for functional operators")
    with _ops.lock:
        opdef.backward, opdef.setup_context = backward, setup_context


# ---------------------------------------------------------------- custom_op
class CustomOpDef:
    """What ``custom_op`` returns: call it as the op, and give it its fake, autograd formula and
    kernels (``register_fake``, ``register_autograd``, ``register_kernel``)."""

    def __init__(self, namespace: str, name: str, schema: str, fn, device_types=None):
        self._namespace, self._name = namespace, name
        self._qualname = f"{namespace}::{name}"
        self._init_fn = fn
        self._lib = Library(namespace, "FRAGMENT")
        with _ops.lock:
            old = _defs.get(self._qualname)
            if old is not None and old.from_custom_op:  # redefining a custom op replaces it, as PyTorch's
                old.custom._lib._destroy()
            self._lib.define(name + schema)
            self._opdef = _defs[self._qualname]
            self._opdef.from_custom_op = True
            self._opdef.custom = self
        self._opoverload = self._opdef.overload
        self._schema = self._opoverload._schema
        self.register_kernel(device_types, fn)
        self.__name__ = name
        self.__doc__ = fn.__doc__
        self.__wrapped__ = fn

    def register_kernel(self, device_types, fn=None, /):
        """The kernel for ``device_types`` ("cpu", ("cpu", "cuda"); None: every device)."""
        if fn is None:
            return _decorator(self.register_kernel, device_types)
        keys = ["CompositeExplicitAutograd"] if device_types is None else \
            [_dispatch_key(d) for d in ([device_types] if isinstance(device_types, str) else device_types)]
        with _ops.lock:
            for key in keys:
                self._opdef.kernels[key] = fn
        return fn

    def register_fake(self, fn, /):
        """The fake implementation (output shapes and dtypes; see ``tapegrad.library.register_fake``)."""
        return register_fake(self, fn)

    def register_autograd(self, backward, /, *, setup_context=None) -> None:
        """The autograd formula (see ``tapegrad.library.register_autograd``)."""
        register_autograd(self, backward, setup_context=setup_context)

    def __call__(self, *args, **kwargs):
        return self._opoverload(*args, **kwargs)

    def __repr__(self):
        return f"<CustomOpDef({self._qualname})>"


def custom_op(name: str, fn=None, /, *, mutates_args, device_types=None, schema: str | None = None, tags=None):
    """Wrap ``fn`` as the operator ``name`` (``"mylib::foo"``), its schema inferred from the type
    annotations (or given as ``"(Tensor x) -> Tensor"``). ``mutates_args`` names the arguments ``fn``
    writes to (``()`` for none). The op runs as an opaque unit: it is differentiable once
    ``register_autograd`` gives it a formula.

    >>> @tapegrad.library.custom_op("mylib::numpy_sin", mutates_args=())
    ... def numpy_sin(x: Tensor) -> Tensor:
    ...     return tapegrad.from_numpy(np.sin(x.numpy()))
    """
    def wrap(f):
        ns, sep, opname = name.partition("::")
        if not sep or not opname.isidentifier():
            raise ValueError(f"Expected name to be 'namespace::opname', got {name!r}")
        text = schema if schema is not None else infer_schema(f, mutates_args=mutates_args)
        return CustomOpDef(ns, opname, text, f, device_types)
    return wrap if fn is None else wrap(fn)


# ---------------------------------------------------------------- fakes and opcheck
class FakeImplCtx:
    """``get_ctx()`` inside a fake implementation."""

    def new_dynamic_size(self, *, min=0, max=None):  # noqa: A002  (PyTorch's names)
        raise NotImplementedError("tapegrad has no symbolic sizes (FakeTensor): a fake implementation whose output "
                                  "size depends on the input's data (get_ctx().new_dynamic_size) cannot run")

    new_dynamic_size.__doc__ = "A data-dependent size: tapegrad has no symbolic sizes, so this raises."


def get_ctx():
    """The context of the running fake implementation (None outside one, as PyTorch's)."""
    return getattr(_fake_ctx, "ctx", None)


@contextlib.contextmanager
def _in_fake():
    _fake_ctx.ctx = FakeImplCtx()
    try:
        yield
    finally:
        _fake_ctx.ctx = None


class OpCheckError(Exception):
    """What ``opcheck`` raises when a check fails."""


_TESTS = ("test_schema", "test_autograd_registration", "test_faketensor")
_CHECKS: dict = {}  # test name -> its check, filled in below


def opcheck(op, args, kwargs=None, *, test_utils=_TESTS, raise_exception=True, atol=None, rtol=None) -> dict:
    """Check a custom operator on sample arguments, as ``torch.library.opcheck``: ``test_schema``
    (it runs; it mutates exactly the arguments its schema marks ``(a!)``; its outputs alias no
    input), ``test_autograd_registration`` (inputs that require grad have a formula; with one and
    float64 inputs, gradcheck) and ``test_faketensor`` (the fake gives the real outputs' shapes and
    dtypes). Returns ``{test: "SUCCESS"}``; raises OpCheckError naming the failed test.

    >>> opcheck(tapegrad.ops.mylib.mysin.default, (tapegrad.randn(3),))
    """
    kwargs = kwargs or {}
    opdef = _lookup(op)
    tests = (test_utils,) if isinstance(test_utils, str) else tuple(test_utils)
    unknown = [t for t in tests if t not in _TESTS]
    if unknown:
        raise ValueError(f"opcheck: tapegrad has no {unknown} (it runs {list(_TESTS)}; no torch.compile/AOT tests)")
    results = {}
    for test in tests:
        try:
            _CHECKS[test](opdef, args, kwargs, atol, rtol)
            results[test] = "SUCCESS"
        except Exception as e:  # noqa: BLE001  (reported by name, as PyTorch's)
            if raise_exception:
                raise OpCheckError(f"opcheck(op, ...): {test} failed with {e}") from e
            results[test] = e
    return results


def _clone(values):
    return [_clone(v) if isinstance(v, (list, tuple)) else v.detach().clone() if isinstance(v, Tensor) else v
            for v in values]


def _test_schema(opdef, args, kwargs, atol, rtol):
    pos, kw = opdef.schema.bind(tuple(_clone(args)), dict(zip(kwargs, _clone(list(kwargs.values())))))
    values = pos + list(kw.values())
    before = [[t.numpy().copy() for t in _flat([v]) if isinstance(t, Tensor)] for v in values]
    opdef.overload(*pos, **kw)
    for k, (arg, v, old) in enumerate(zip(opdef.schema.arguments, values, before)):
        now = [t.numpy() for t in _flat([v]) if isinstance(t, Tensor)]
        changed = any(not np.array_equal(a, b, equal_nan=True) for a, b in zip(old, now))
        if changed and not arg.is_write:
            raise RuntimeError(f"{opdef.qualname}: argument '{arg.name}' is mutated but the schema does not declare "
                               f"it (write Tensor(a!) {arg.name}, or mutates_args={{'{arg.name}'}})")


def _test_autograd_registration(opdef, args, kwargs, atol, rtol):
    leaves = [t for t in _flat(list(args) + list(kwargs.values())) if isinstance(t, Tensor) and t.requires_grad]
    if not leaves or "CompositeImplicitAutograd" in opdef.kernels:
        return
    if opdef.backward is None:
        raise RuntimeError(f"{opdef.qualname}: inputs require grad but the operator has no autograd formula; "
                           "use register_autograd (or a CompositeImplicitAutograd kernel)")
    if all(str(t.dtype).endswith("float64") for t in leaves):
        names = [k for k in kwargs]
        positions = [k for k, a in enumerate(args) if isinstance(a, Tensor) and a.requires_grad]

        def f(*xs):
            call = list(args)
            for k, x in zip(positions, xs):
                call[k] = x
            return opdef.overload(*call, **{n: kwargs[n] for n in names})
        gradcheck(f, tuple(args[k] for k in positions), atol=atol or 1e-5, rtol=rtol or 1e-3)


def _test_faketensor(opdef, args, kwargs, atol, rtol):
    outs = [o for o in _flat([opdef.overload(*_clone(args), **kwargs)])]
    if not any(isinstance(o, Tensor) for o in outs):
        return
    if opdef.fake is None:
        raise RuntimeError(f"There was no fake impl registered for {opdef.qualname}. This is necessary for "
                           "torch.compile/export/fx tracing to work. Please use `torch.library.register_fake` to add "
                           "a fake impl.")
    pos, kw = opdef.schema.bind(tuple(_clone(args)), kwargs)
    with _in_fake(), grad_mode.no_grad():
        fakes = _flat([opdef.fake(*pos, **kw)])
    for k, (o, f) in enumerate(zip(outs, fakes)):
        if isinstance(o, Tensor) and (not isinstance(f, Tensor) or o.shape != f.shape or o.dtype != f.dtype):
            got = f"{tuple(f.shape)} {f.dtype}" if isinstance(f, Tensor) else type(f).__name__
            raise RuntimeError(f"{opdef.qualname}: output {k} of the fake is {got} but the real kernel's is "
                               f"{tuple(o.shape)} {o.dtype}")
    if len(fakes) != len(outs):
        raise RuntimeError(f"{opdef.qualname}: the fake returns {len(fakes)} outputs, the kernel {len(outs)}")



_CHECKS.update(test_schema=_test_schema, test_autograd_registration=_test_autograd_registration,
               test_faketensor=_test_faketensor)
