"""``torch.fx.proxy``: :class:`Proxy`, the value a trace passes through user code in place of a tensor.

Every operation on a proxy appends a node to its tracer's graph and returns a new proxy: Python
operators (``x + 1``, ``2 * x``, ``x[0]``) become ``call_function`` nodes on :mod:`operator`,
attribute reads ``getattr`` nodes, method calls ``call_method`` nodes. tapegrad's functions
(``tapegrad.relu(x)``, ``F.linear(x, w)``, ``tapegrad.cat([x, y])``) are caught by the function
swap (:mod:`tapegrad.fx._function_swap`), which any live tracer keeps installed. What a graph cannot
hold raises :class:`TraceError`: a proxy used as a bool (``if x:``), iterated, or measured with
``len``."""
from __future__ import annotations

import dis
import inspect
import operator
import weakref
from typing import Any, Callable, Dict, Optional, Tuple

import tapegrad
from tapegrad.tensor import Tensor

from . import _function_swap
from .graph import Graph, magic_methods, reflectable_magic_methods
from .node import Argument, Node, Target

__all__ = ["TracerBase", "GraphAppendingTracer", "TraceError", "Proxy", "Attribute", "ParameterProxy",
           "Scope"]

_base_types = (str, int, float, bool, complex, type(None), type(Ellipsis), slice, range)


class TraceError(ValueError):
    pass


class Scope:
    """The module a node was recorded in (its path and type), as PyTorch's ``node_name_to_scope``."""

    def __init__(self, module_path: str, module_type: Any):
        self.module_path = module_path
        self.module_type = module_type


class TracerBase:
    """What a :class:`Proxy` asks of its tracer: make nodes, turn arguments into graph values, and
    say what a proxy cannot do."""
    graph: Graph
    record_stack_traces: bool = False
    check_mutable_operations: bool = False
    trace_asserts: bool = False
    proxy_buffer_attributes: bool = False
    traced_func_name: str = "forward"

    def create_node(self, kind: str, target: Target, args: Tuple[Argument, ...], kwargs: Dict[str, Argument],
                    name: Optional[str] = None, type_expr: Optional[Any] = None) -> Node:
        return self.graph.create_node(kind, target, args, kwargs, name, type_expr)

    def proxy(self, node: Node) -> "Proxy":
        return Proxy(node, self)

    def create_proxy(self, kind: str, target: Target, args: Tuple[Any, ...], kwargs: Dict[str, Any],
                     name: Optional[str] = None, type_expr: Optional[Any] = None,
                     proxy_factory_fn: Optional[Callable[[Node], "Proxy"]] = None) -> "Proxy":
        """A node for ``target(*args, **kwargs)`` (its arguments through ``create_arg``), as a proxy."""
        args_ = self.create_arg(args)
        kwargs_ = self.create_arg(kwargs)
        assert isinstance(args_, tuple) and isinstance(kwargs_, dict)
        node = self.create_node(kind, target, args_, kwargs_, name, type_expr)
        return self.proxy(node) if proxy_factory_fn is None else proxy_factory_fn(node)

    def create_arg(self, a: Any) -> Argument:
        """A value as a graph argument: proxies become their nodes, containers are walked; a tensor
        here has no name in the graph, so the base tracer refuses it (``Tracer`` stores it as a
        constant)."""
        if isinstance(a, Proxy):
            return a.node
        if hasattr(type(a), "__fx_create_arg__"):
            return a.__fx_create_arg__(self)
        if isinstance(a, tuple) and hasattr(a, "_fields"):
            return type(a)(*(self.create_arg(elem) for elem in a))
        if isinstance(a, (tuple, list)):
            return type(a)(self.create_arg(elem) for elem in a)
        if isinstance(a, dict):
            out = {}
            for k, v in a.items():
                k = self.create_arg(k)
                if isinstance(k, Node):
                    raise RuntimeError(f"Keys for dictionaries used as an argument cannot contain a Node. Got key: {k}")
                out[k] = self.create_arg(v)
            return out
        if isinstance(a, slice):
            return slice(self.create_arg(a.start), self.create_arg(a.stop), self.create_arg(a.step))
        if isinstance(a, Node) or isinstance(a, _base_types):
            return a
        if _is_constant(a):  # dtype, device, memory format, ...
            return a
        raise NotImplementedError(f"argument of type: {type(a)}")

    def to_bool(self, obj: "Proxy") -> bool:
        raise TraceError("symbolically traced variables cannot be used as inputs to control flow")

    def iter(self, obj: "Proxy"):
        raise TraceError("Proxy object cannot be iterated. This can be attempted when the Proxy is used in a loop "
                         "or as a *args or **kwargs function argument. See the torch.fx docs on pytorch.org for a "
                         "more detailed explanation of what types of control flow can be traced, and check out "
                         "the Proxy docstring for help troubleshooting Proxy iteration errors")

    def keys(self, obj: "Proxy") -> Any:
        return Attribute(obj, "keys")()


def _is_constant(a) -> bool:
    return isinstance(a, (tapegrad.dtype, tapegrad.device, tapegrad.memory_format, tapegrad.layout))


class GraphAppendingTracer(TracerBase):
    """A tracer that only appends to ``graph``: for building graphs by hand from proxies (``Proxy(node)``
    makes one). While it lives, ``tapegrad.einsum(proxy, ...)`` and the other namespace functions
    record nodes."""

    def __init__(self, graph: Graph):
        super().__init__()
        self.graph = graph
        self.scope = Scope("", None)
        self.module_stack: Dict[str, Any] = {}
        self.node_name_to_scope: Dict[str, Tuple[str, type]] = {}
        _function_swap.acquire()
        weakref.finalize(self, _function_swap.release)


class Proxy:
    """A value in a trace; each use records a node in ``tracer.graph``.

    >>> g = Graph()
    >>> x = Proxy(g.placeholder("x"))
    >>> y = (x + 1).relu()          # operator.add, then call_method relu
    >>> g.output(y.node)
    """

    def __init__(self, node: Node, tracer: Optional[TracerBase] = None):
        if tracer is None:
            tracer = GraphAppendingTracer(node.graph)
        self.tracer = tracer
        self.node = node

    def __repr__(self) -> str:
        return f"Proxy({self.node.name})"

    def __getattr__(self, k: str) -> "Attribute":
        # a node only if the attribute is used as a value (``x.shape``); a call (``x.size(1)``) makes
        # one call_method node instead
        return Attribute(self, k)

    def __getstate__(self) -> Dict:
        return self.__dict__

    def __setstate__(self, d: Dict) -> None:
        self.__dict__ = d

    def __deepcopy__(self, memo) -> "Proxy":
        return Proxy(self.node, self.tracer)

    def __call__(self, *args, **kwargs) -> "Proxy":
        return self.tracer.create_proxy("call_method", "__call__", (self,) + args, kwargs)

    def __iter__(self):
        # ``a, b = proxy`` unpacks by index when the caller's bytecode says how many values it wants
        frame = inspect.currentframe()
        calling_frame = frame.f_back if frame is not None else None
        if calling_frame is not None:
            for inst in dis.get_instructions(calling_frame.f_code):
                if inst.offset == calling_frame.f_lasti and inst.opname == "UNPACK_SEQUENCE":
                    return (self[i] for i in range(inst.argval))
            del calling_frame
        return self.tracer.iter(self)

    def __bool__(self) -> bool:
        return self.tracer.to_bool(self)

    def keys(self):
        return self.tracer.keys(self)

    def __len__(self):
        raise RuntimeError("'len' is not supported in symbolic tracing by default. If you want this call to be "
                           "recorded, please call tapegrad.fx.wrap('len') at module scope")

    def __setitem__(self, index, value) -> None:
        self.tracer.create_proxy("call_function", operator.setitem, (self, index, value), {})

    __hash__ = object.__hash__  # __eq__ below records a node; proxies still go in sets and dicts


class Attribute(Proxy):
    """``proxy.name``: a ``call_method`` node when called, else (on first use as a value) a
    ``getattr`` node."""

    def __init__(self, root: Proxy, attr: str):
        self.root = root
        self.attr = attr
        self.tracer = root.tracer
        self._node: Optional[Node] = None

    @property
    def node(self) -> Node:
        if self._node is None:
            self._node = self.tracer.create_proxy("call_function", getattr, (self.root, self.attr), {}).node
        return self._node

    def __call__(self, *args, **kwargs) -> Proxy:
        return self.tracer.create_proxy("call_method", self.attr, (self.root,) + args, kwargs)


class ParameterProxy(Proxy):
    """A parameter's proxy (``Tracer(param_shapes_constant=True)``): its shape, size and dim are read
    from the parameter itself, so they stay constants in the graph."""

    def __init__(self, tracer: TracerBase, node: Node, name: str, param):
        super().__init__(node, tracer)
        assert isinstance(param, Tensor)
        self.param = param
        self.name = name

    def __repr__(self) -> str:
        return f"ParameterProxy({self.name})"

    @property
    def shape(self):
        return self.param.shape

    def size(self, dim=None):
        return self.param.size() if dim is None else self.param.size(dim)

    def dim(self):
        return self.param.dim()

    @property
    def ndim(self):
        return self.param.ndim

    def numel(self):
        return self.param.numel()

    def nelement(self):
        return self.param.nelement()


def _define_magic(method: str) -> None:
    target = getattr(operator, method)

    def impl(*args, **kwargs):
        return args[0].tracer.create_proxy("call_function", target, args, kwargs)

    impl.__name__ = impl.__qualname__ = f"__{method.strip('_')}__"
    setattr(Proxy, impl.__name__, impl)


def _define_reflectable(orig_method_name: str) -> None:
    target = getattr(operator, orig_method_name)
    method_name = f"__r{orig_method_name.strip('_')}__"

    def impl(self, rhs):
        return self.tracer.create_proxy("call_function", target, (rhs, self), {})

    impl.__name__ = impl.__qualname__ = method_name
    setattr(Proxy, method_name, impl)


for _method in magic_methods:
    _define_magic(_method)
for _method in reflectable_magic_methods:
    _define_reflectable(_method)
_define_magic("abs")  # abs(x)
_function_swap.bind_proxy(Proxy)
