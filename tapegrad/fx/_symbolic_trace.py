"""``torch.fx._symbolic_trace``: :class:`Tracer` and :func:`symbolic_trace`, which run a module's
``forward`` on proxies and record what it does as a :class:`~tapegrad.fx.Graph`.

While ``Tracer.trace`` runs (one trace at a time, under a lock), ``nn.Module.__call__`` and
``nn.Module.__getattr__`` are patched, as in PyTorch: calling a leaf module (tapegrad.nn's own, as
torch.nn's) records ``call_module``, other modules are traced through; reading a parameter
records ``get_attr``. Functions named in ``wrap`` / ``autowrap_modules`` / ``autowrap_functions``
and tapegrad's namespace functions record ``call_function``. Every patch is undone when the
trace ends, however it ends; other threads see the original behaviour throughout."""
from __future__ import annotations

import builtins
import functools
import inspect
import math
import threading
from itertools import chain
from types import FunctionType, ModuleType
from typing import Any, Callable, Dict, List, Optional, Set, Tuple, Union

import tapegrad
from tapegrad.nn import Module, Parameter, Sequential
from tapegrad.tensor import Tensor

from . import _function_swap
from .graph import Graph
from .graph_module import GraphModule
from .node import Argument, Node
from .proxy import ParameterProxy, Proxy, Scope, TracerBase

__all__ = ["Tracer", "symbolic_trace", "wrap", "PH", "PHBase"]

_trace_lock = threading.RLock()  # two traces never patch Module at once
_wrapped_fns_to_patch: List[Tuple[dict, str]] = []  # (globals, name) registered by wrap()
_is_fx_tracing_flag = False


def is_fx_tracing() -> bool:
    return _is_fx_tracing_flag


class PHBase:
    """A placeholder marker inside ``concrete_args`` (``{"x": {"a": PH, "b": PH}}``)."""

    def __repr__(self):
        return "PH"


PH = PHBase()


class _Patcher:
    """Patches made during one trace, undone in reverse order on exit."""

    def __init__(self):
        self._undo: List[Callable[[], None]] = []
        self._visited: Set[Tuple[int, str]] = set()

    def patch(self, frame_dict: Dict[str, Any], name: str, new_fn: Callable) -> None:
        if name in frame_dict:
            orig = frame_dict[name]
            self._undo.append(lambda: frame_dict.__setitem__(name, orig))
        else:
            self._undo.append(lambda: frame_dict.pop(name, None))
        frame_dict[name] = new_fn

    def patch_method(self, cls: type, name: str, new_fn: Callable) -> None:
        orig = getattr(cls, name)
        self._undo.append(lambda: setattr(cls, name, orig))
        setattr(cls, name, new_fn)

    def visit_once(self, thing: Any, name: str = "") -> bool:
        key = (id(thing), name)
        if key in self._visited:
            return False
        self._visited.add(key)
        return True

    def __enter__(self) -> "_Patcher":
        return self

    def __exit__(self, *exc) -> None:
        while self._undo:
            self._undo.pop()()


def _autowrap_check(patcher: _Patcher, frame_dict: Dict[str, Any], function_ids: Dict[int, Callable]) -> None:
    """Point the names in ``frame_dict`` (a module's globals) that hold a wrapped function at its
    recording wrapper (``from tapegrad import relu``, ``math.sqrt`` imported as ``sqrt``)."""
    if not patcher.visit_once(frame_dict):
        return
    for name, value in list(frame_dict.items()):
        if not name.startswith("_") and callable(value) and id(value) in function_ids:
            patcher.patch(frame_dict, name, _function_swap.recording_wrapper(value))


def _patch_wrapped_functions(patcher: _Patcher) -> None:
    for frame_dict, name in _wrapped_fns_to_patch:
        if name not in frame_dict and hasattr(builtins, name):
            orig_fn = getattr(builtins, name)
        else:
            orig_fn = frame_dict[name]
        patcher.patch(frame_dict, name, _function_swap.recording_wrapper(orig_fn))


def wrap(fn_or_name: Union[str, Callable]):
    """Record calls to a module-level function as one ``call_function`` node instead of tracing
    through it (call at module scope, as PyTorch's; ``wrap("len")`` records ``len``).

    >>> def my_norm(x): return x / len(x)
    >>> tapegrad.fx.wrap("my_norm")
    """
    if not callable(fn_or_name) and not isinstance(fn_or_name, str):
        raise RuntimeError("Unsupported type for global function! Must be either a callable or string name")
    if callable(fn_or_name):
        assert not isinstance(fn_or_name, str)
        fn_name = fn_or_name.__name__
    else:
        fn_name = fn_or_name
    frame = inspect.currentframe()
    f = frame.f_back if frame is not None else None
    if f is None or f.f_code.co_name != "<module>":
        raise NotImplementedError("wrap must be called at the top level of a module")
    _wrapped_fns_to_patch.append((f.f_globals, fn_name))
    return fn_or_name


class Tracer(TracerBase):
    """Turns a module or function into a :class:`Graph` by running it on proxies.

    Subclass and override ``is_leaf_module`` to keep more (or fewer) modules opaque, or
    ``create_arg`` / ``create_proxy`` to steer what is recorded.

    >>> graph = Tracer().trace(model)
    >>> gm = GraphModule(model, graph)
    """

    def __init__(self, autowrap_modules: Tuple[ModuleType, ...] = (math,),
                 autowrap_functions: Tuple[Callable, ...] = (), param_shapes_constant: bool = False) -> None:
        super().__init__()
        self._autowrap_function_ids: Dict[int, Callable] = {
            id(value): value for name, value in chain.from_iterable(m.__dict__.items() for m in autowrap_modules)
            if not name.startswith("_") and callable(value)}
        self._autowrap_function_ids.update({id(f): f for f in autowrap_functions})
        self._autowrap_modules = list(autowrap_modules)
        self._autowrap_functions = list(autowrap_functions)
        self.param_shapes_constant = param_shapes_constant
        self.submodule_paths: Optional[Dict[Module, str]] = None
        self.root_module_name = ""
        self.scope = Scope("", None)
        self.module_stack: Dict[str, Any] = {}
        self.node_name_to_scope: Dict[str, Tuple[str, type]] = {}
        self._tracing_thread: Optional[int] = None

    # ------------------------------------------------------------ what becomes a graph value
    def create_arg(self, a: Any) -> Argument:
        """Parameters, buffers and submodules of the root become ``get_attr`` nodes by their path;
        any other tensor is stored on the root as ``_tensor_constant<i>``."""
        if isinstance(a, Parameter):
            for n, p in self.root.named_parameters():
                if a is p:
                    return self.create_node("get_attr", n, (), {})
            raise NameError("parameter is not a member of this module")
        if isinstance(a, Tensor):
            for n_, p_ in self.root.named_buffers():
                if a is p_:
                    return self.create_node("get_attr", n_, (), {})
        elif isinstance(a, Module):
            for n_, p_ in self.root.named_modules():
                if a is p_:
                    return self.create_node("get_attr", n_, (), {})
        if isinstance(a, Tensor):
            qualname = self.tensor_attrs.get(id(a), (None, None))[0]
            if not qualname:
                i = 0
                while hasattr(self.root, f"_tensor_constant{i}"):
                    i += 1
                qualname = f"_tensor_constant{i}"
                self.tensor_attrs[id(a)] = (qualname, a)
                setattr(self.root, qualname, a)
            return self.create_node("get_attr", qualname, (), {})
        return super().create_arg(a)

    def is_leaf_module(self, m: Module, module_qualified_name: str) -> bool:
        """tapegrad.nn's own modules (Linear, Conv2d, ReLU, ...) are leaves, Sequential excepted, as
        torch.nn's are in PyTorch."""
        return m.__module__.startswith("tapegrad.nn") and not isinstance(m, Sequential)

    def path_of_module(self, mod: Module) -> str:
        """``mod``'s qualified name in the root (``layer1.0.conv1``)."""
        if self.submodule_paths:
            path = self.submodule_paths.get(mod)
            if path is None:
                raise NameError("module is not installed as a submodule")
            return path
        for n, p in self.root.named_modules():
            if mod is p:
                return n
        raise NameError("module is not installed as a submodule")

    def call_module(self, m: Module, forward: Callable[..., Any], args: Tuple[Any, ...], kwargs: Dict[str, Any]) -> Any:
        """A leaf records one ``call_module`` node; any other module is traced through."""
        module_qualified_name = self.path_of_module(m)
        prev_scope = self.scope
        self.scope = Scope(module_qualified_name, type(m))
        self.module_stack[module_qualified_name] = (module_qualified_name, type(m))
        try:
            if not self.is_leaf_module(m, module_qualified_name):
                return forward(*args, **kwargs)
            return self.create_proxy("call_module", module_qualified_name, args, kwargs)
        finally:
            self.module_stack.pop(module_qualified_name, None)
            self.scope = prev_scope

    def create_node(self, kind, target, args, kwargs, name=None, type_expr=None) -> Node:
        node = super().create_node(kind, target, args, kwargs, name, type_expr)
        self.node_name_to_scope[node.name] = (self.scope.module_path, self.scope.module_type)
        if self.module_stack:
            node.meta["nn_module_stack"] = dict(self.module_stack)
        return node

    def getattr(self, attr: str, attr_val: Any, parameter_proxy_cache: Dict[str, Any]) -> Any:
        """A parameter of the root read during the trace: its ``get_attr`` proxy (one per parameter)."""
        def maybe_get_proxy_for_attr(attr_val, collection_to_search, parameter_proxy_cache):
            for n, p in collection_to_search:
                if attr_val is p:
                    if n not in parameter_proxy_cache:
                        factory = (lambda node: ParameterProxy(self, node, n, attr_val)) \
                            if self.param_shapes_constant else None
                        parameter_proxy_cache[n] = self.create_proxy("get_attr", n, (), {}, proxy_factory_fn=factory)
                    return parameter_proxy_cache[n]
            return None

        if isinstance(attr_val, Parameter):
            maybe = maybe_get_proxy_for_attr(attr_val, self.root.named_parameters(), parameter_proxy_cache)
            if maybe is not None:
                return maybe
        if self.proxy_buffer_attributes and isinstance(attr_val, Tensor):
            maybe = maybe_get_proxy_for_attr(attr_val, self.root.named_buffers(), parameter_proxy_cache)
            if maybe is not None:
                return maybe
        return attr_val

    # ------------------------------------------------------------ the trace
    def create_args_for_root(self, root_fn: Callable, is_module: bool, concrete_args=None):
        """The arguments ``root_fn`` is traced with: a placeholder proxy per parameter, or the value
        given in ``concrete_args`` (guarded by an assert in the graph, as PyTorch's)."""
        fn_for_analysis = inspect.unwrap(root_fn)
        co = fn_for_analysis.__code__
        total_args = co.co_argcount + co.co_kwonlyargcount
        names_iter = iter(co.co_varnames)
        args: List[Any] = []
        skip_arg_idx = 0
        if is_module:
            if total_args == 0:
                raise RuntimeError("``self`` argument cannot be part of *args expansion!")
            skip_arg_idx = 1
            next(names_iter)  # skip self
            args.append(self.root)
        sig = inspect.signature(fn_for_analysis)
        if concrete_args is not None and not isinstance(concrete_args, dict):
            raise TypeError("tapegrad.fx: concrete_args must be a dict of argument names to values")
        concrete_args = concrete_args or {}

        def proxy_placeholder(name: str):
            if name in concrete_args:
                return self._concrete_placeholder(name, sig, concrete_args[name])
            if name[0] == "*":
                default: tuple = ()
            else:
                param = sig.parameters[name]
                default = () if param.default is inspect.Parameter.empty else (param.default,)
            return self.create_proxy("placeholder", name, default, {},
                                     type_expr=fn_for_analysis.__annotations__.get(name, None))

        arg_names = [next(names_iter) for _ in range(skip_arg_idx, total_args)]
        args.extend(proxy_placeholder(name) for name in arg_names)
        if co.co_kwonlyargcount > 0 or co.co_flags & (inspect.CO_VARARGS | inspect.CO_VARKEYWORDS):
            # the traced function takes every parameter positionally, *args and **kwargs as one each
            if co.co_flags & inspect.CO_VARARGS:
                args.append(proxy_placeholder("*" + next(names_iter)))
            if co.co_flags & inspect.CO_VARKEYWORDS:
                args.append(proxy_placeholder("**" + next(names_iter)))
            root_fn = _patch_function(root_fn, len(args))
        return root_fn, args

    def _concrete_placeholder(self, name: str, sig: inspect.Signature, value: Any) -> Any:
        param = sig.parameters[name]
        default = () if param.default is inspect.Parameter.empty else (param.default,)
        counter = [0]

        def replace_ph(x):
            counter[0] += 1
            out = self.create_proxy("placeholder", f"{name}_{counter[0]}", default, {})
            if isinstance(x, PHBase):
                return out
            if type(x) in (bool, int, float, str):
                self.create_proxy("call_function", tapegrad._assert,
                                  (out == x, f"{name} has been specialized to have value {x} but got another value"),
                                  {})
            elif x is None:
                self.create_proxy("call_function", _assert_is_none,
                                  (out, f"{name} has been specialized to have value None but got another value"), {})
            return x

        if isinstance(value, (list, tuple)):
            return type(value)(replace_ph(v) for v in value)
        if isinstance(value, dict):
            return {k: replace_ph(v) for k, v in value.items()}
        return replace_ph(value)

    def trace(self, root: Union[Module, Callable[..., Any]], concrete_args: Optional[Dict[str, Any]] = None) -> Graph:
        """Run ``root`` (a module's ``forward``, or a function) on proxies; returns the graph recorded."""
        global _is_fx_tracing_flag
        with _trace_lock:
            old_is_fx_tracing_flag = _is_fx_tracing_flag
            _is_fx_tracing_flag = True
            _function_swap.acquire()
            try:
                return self._trace(root, concrete_args)
            finally:
                _function_swap.release()
                _is_fx_tracing_flag = old_is_fx_tracing_flag

    def _trace(self, root, concrete_args) -> Graph:
        if isinstance(root, Module):
            self.root = root
            fn = type(root).forward
            self.submodule_paths = {mod: name for name, mod in root.named_modules()}
        else:
            self.root = Module()
            fn = root
        self.graph = Graph(tracer_cls=getattr(self, "__class__", None))
        if hasattr(fn, "__code__"):
            code = fn.__code__
            self.graph._co_fields = {"co_name": code.co_name, "co_filename": code.co_filename,
                                     "co_firstlineno": code.co_firstlineno}
        # the tensors the root holds (any attribute, registered or not), so they get their own names
        self.tensor_attrs: Dict[int, Tuple[str, Tensor]] = {}

        def collect_tensor_attrs(m: Module, prefix_atoms: List[str]) -> None:
            for k, v in m.__dict__.items():
                if isinstance(v, Tensor):
                    self.tensor_attrs.setdefault(id(v), (".".join(prefix_atoms + [k]), v))
            for store in ("_parameters", "_buffers"):
                for k, v in m.__dict__.get(store, {}).items():
                    if v is not None:
                        self.tensor_attrs.setdefault(id(v), (".".join(prefix_atoms + [k]), v))
            for k, v in m.named_children():
                collect_tensor_attrs(v, prefix_atoms + [k])

        collect_tensor_attrs(self.root, [])
        assert isinstance(fn, FunctionType), f"tapegrad.fx: cannot trace {fn!r}, a function or module is expected"
        fn_globals = fn.__globals__
        fn, args = self.create_args_for_root(fn, isinstance(root, Module), concrete_args)

        parameter_proxy_cache: Dict[str, Proxy] = {}
        tracing_thread = threading.get_ident()
        orig_getattr, orig_call = Module.__getattr__, Module.__call__
        wrapped_ids = dict(self._autowrap_function_ids)
        wrapped_ids.update(_function_swap.swappable_ids())

        @functools.wraps(orig_getattr)
        def module_getattr_wrapper(mod, attr):
            attr_val = orig_getattr(mod, attr)
            if threading.get_ident() != tracing_thread:
                return attr_val
            return self.getattr(attr, attr_val, parameter_proxy_cache)

        @functools.wraps(orig_call)
        def module_call_wrapper(mod, *args, **kwargs):
            if threading.get_ident() != tracing_thread:  # eager code elsewhere runs as usual
                return orig_call(mod, *args, **kwargs)

            def forward(*args, **kwargs):
                return orig_call(mod, *args, **kwargs)

            _autowrap_check(patcher, getattr(getattr(mod, "forward", mod), "__globals__", {}), wrapped_ids)
            return self.call_module(mod, forward, args, kwargs)

        with _Patcher() as patcher:
            patcher.patch_method(Module, "__getattr__", module_getattr_wrapper)
            patcher.patch_method(Module, "__call__", module_call_wrapper)
            _patch_wrapped_functions(patcher)
            _autowrap_check(patcher, fn_globals, wrapped_ids)
            for module in self._autowrap_modules:
                _autowrap_check(patcher, module.__dict__, wrapped_ids)
            self.create_node("output", "output", (self.create_arg(fn(*args)),), {},
                             type_expr=fn.__annotations__.get("return", None))
        self.submodule_paths = None
        return self.graph

    def __deepcopy__(self, memo):
        raise TypeError("a Tracer holds the state of one trace and is not copied")


def _assert_is_none(value, msg):
    assert value is None, msg


def _patch_function(fn: FunctionType, nargs: int) -> FunctionType:
    """``fn(a, *args, k=1, **kw)`` as ``fn(a, k, args, kw)``: the traced function takes each parameter
    positionally, ``*args`` and ``**kwargs`` as one placeholder each."""
    co = fn.__code__
    co_flags = co.co_flags & ~(inspect.CO_VARARGS | inspect.CO_VARKEYWORDS)
    new_code = co.replace(co_argcount=nargs, co_kwonlyargcount=0, co_posonlyargcount=0, co_flags=co_flags)
    return FunctionType(new_code, fn.__globals__, fn.__name__, fn.__defaults__, fn.__closure__)


def symbolic_trace(root: Union[Module, Callable[..., Any]], concrete_args: Optional[Dict[str, Any]] = None) -> GraphModule:
    """Trace ``root`` and return a :class:`GraphModule` that runs the recorded graph.

    >>> gm = tapegrad.fx.symbolic_trace(model)
    >>> print(gm.code)
    """
    tracer = Tracer()
    graph = tracer.trace(root, concrete_args)
    name = root.__class__.__name__ if isinstance(root, Module) else root.__name__
    return GraphModule(tracer.root, graph, name)
