"""``torch.fx.node``: one operation of a :class:`~tapegrad.fx.Graph`.

A node is one of six ops, as in PyTorch: ``placeholder`` (an input), ``get_attr`` (a parameter,
buffer or constant of the owning module), ``call_function``, ``call_method``, ``call_module`` and
``output``. Its ``args`` / ``kwargs`` may hold other nodes (nested in tuples, lists, dicts and
slices); each node keeps its ``users`` in step, so passes can rewrite uses in O(users)."""
from __future__ import annotations

import builtins
import inspect
import operator
import types
from typing import Any, Callable, Dict, List, Optional, Tuple, Union

import tapegrad
from tapegrad import fft as _fft, functional as _torch_functional, linalg as _linalg, special as _special
from tapegrad.nn import functional as _functional

from .immutable_collections import immutable_dict, immutable_list

__all__ = ["Node", "map_arg", "map_aggregate", "Argument", "Target", "BaseArgumentTypes"]

BaseArgumentTypes = Union[str, int, float, bool, complex, None, slice, type(Ellipsis)]
Target = Union[Callable[..., Any], str]
Argument = Optional[Union[Tuple[Any, ...], List[Any], Dict[str, Any], slice, range, "Node", BaseArgumentTypes]]

# The namespaces whose functions a trace records by name (tapegrad has no __torch_function__, so the
# tracer swaps these namespaces' functions while it runs: see _symbolic_trace._FunctionSwap).
NAMESPACES = {"tapegrad": tapegrad, "tapegrad.nn.functional": _functional, "tapegrad.special": _special,
              "tapegrad.linalg": _linalg, "tapegrad.fft": _fft, "tapegrad.functional": _torch_functional}


_TRACEABLE_PRIVATE = ("_assert",)  # torch._assert dispatches on a proxy condition too


def _public_functions(module) -> Dict[str, Callable]:
    """The callables of a namespace a Proxy may be passed to (classes and modules excepted)."""
    out = {}
    for name, obj in vars(module).items():
        if (name.startswith("_") and name not in _TRACEABLE_PRIVATE) or isinstance(obj, type) or inspect.ismodule(obj) or not callable(obj):
            continue
        out[name] = obj
    return out


PUBLIC_FUNCTIONS = {ns: _public_functions(mod) for ns, mod in NAMESPACES.items()}
QUALIFIED = {}
for _ns, _funcs in reversed(list(PUBLIC_FUNCTIONS.items())):  # tapegrad.x wins over tapegrad.special.x
    QUALIFIED.update({id(f): f"{_ns}.{name}" for name, f in _funcs.items()})

def _get_qualified_name(func: Callable) -> str:
    """``tapegrad.relu`` for tapegrad's functions, ``operator.add``, ``getattr``, else ``module.qualname``."""
    if getattr(builtins, getattr(func, "__name__", ""), None) is func:
        return func.__name__
    if id(func) in QUALIFIED:
        return QUALIFIED[id(func)]
    name = getattr(func, "__name__", None) or type(func).__name__
    if getattr(operator, name, None) is func:
        return f"operator.{name}"
    module = (getattr(func, "__module__", None) or "").replace("torch._ops", "torch.ops")
    return f"{module}.{getattr(func, '__qualname__', name)}"


_OPS = ("placeholder", "call_method", "call_module", "call_function", "get_attr", "output", "root")
_side_effectful_functions = {builtins.print}  # calls dead-code elimination keeps although unused


def map_aggregate(a: Argument, fn: Callable[[Argument], Argument]) -> Argument:
    """Apply ``fn`` to every leaf of ``a`` (tuples, lists, dicts and slices are walked); lists and dicts
    come back immutable, as node arguments are."""
    if isinstance(a, tuple):
        t = tuple(map_aggregate(elem, fn) for elem in a)
        return t if not hasattr(a, "_fields") else type(a)(*t)  # a namedtuple keeps its type
    if isinstance(a, list):
        return immutable_list(map_aggregate(elem, fn) for elem in a)
    if isinstance(a, dict):
        return immutable_dict((k, map_aggregate(v, fn)) for k, v in a.items())
    if isinstance(a, slice):
        return slice(map_aggregate(a.start, fn), map_aggregate(a.stop, fn), map_aggregate(a.step, fn))
    return fn(a)


def map_arg(a: Argument, fn: Callable[["Node"], Argument]) -> Argument:
    """Apply ``fn`` to every :class:`Node` in ``a``, keeping the rest.

    >>> map_arg((n1, [n2, 3]), lambda n: n.name)   # ('x', ['y', 3])
    """
    assert callable(fn), "map_arg(a, fn): fn must be a callable"
    return map_aggregate(a, lambda x: fn(x) if isinstance(x, Node) else x)


class Node:
    """One operation in a graph; ``str(node)`` is its name, ``node.format_node()`` the whole line."""

    def __init__(self, graph, name: str, op: str, target: Target, args: Tuple[Argument, ...],
                 kwargs: Dict[str, Argument], return_type: Optional[Any] = None) -> None:
        if op not in _OPS:
            raise ValueError(f"Node: op must be one of {_OPS}, got {op!r}")
        if op == "call_function" and not callable(target):
            raise ValueError(f"Node [graph = {graph}, name = '{name}'] target {target} has type "
                             f"{type(target).__name__} but a Callable is expected")
        if op in ("placeholder", "call_method", "call_module", "get_attr") and not isinstance(target, str):
            raise ValueError(f"Node [graph = {graph}, name = '{name}'] target {target} has type "
                             f"{type(target).__name__} but a str is expected")
        self.graph = graph
        self.name = name
        self.op = op
        self.target = target
        self._input_nodes: Dict[Node, None] = {}  # an ordered set
        self.users: Dict[Node, None] = {}
        self.type = return_type
        self._args: Tuple[Argument, ...] = ()
        self._kwargs: Dict[str, Argument] = {}
        self._update_args_kwargs(args, kwargs)
        self._prev = self
        self._next = self
        self._erased = False
        self.meta: Dict[str, Any] = {}

    # ------------------------------------------------------------ the linked list of the graph
    @property
    def next(self) -> "Node":
        return self._next

    @property
    def prev(self) -> "Node":
        return self._prev

    def prepend(self, x: "Node") -> None:
        """Move (or insert) ``x`` just before this node."""
        assert self.graph is x.graph, "Attempting to move a Node into a different Graph"
        if self is x:
            return
        x._remove_from_list()
        p = self._prev
        p._next, x._prev = x, p
        x._next, self._prev = self, x

    def append(self, x: "Node") -> None:
        """Move (or insert) ``x`` just after this node."""
        self._next.prepend(x)

    def _remove_from_list(self) -> None:
        p, n = self._prev, self._next
        p._next, n._prev = n, p
        self._prev = self._next = self

    # ------------------------------------------------------------ arguments and uses
    @property
    def args(self) -> Tuple[Argument, ...]:
        """The positional arguments; assigning them updates every input's ``users``."""
        return self._args

    @args.setter
    def args(self, a: Tuple[Argument, ...]) -> None:
        self._update_args_kwargs(a, self._kwargs)

    @property
    def kwargs(self) -> Dict[str, Argument]:
        return self._kwargs

    @kwargs.setter
    def kwargs(self, k: Dict[str, Argument]) -> None:
        self._update_args_kwargs(self._args, k)

    @property
    def all_input_nodes(self) -> List["Node"]:
        """The nodes this node reads, in order of first appearance in ``args`` then ``kwargs``."""
        return list(self._input_nodes)

    def update_arg(self, idx: int, arg: Argument) -> None:
        args = list(self.args)
        args[idx] = arg
        self.args = tuple(args)

    def update_kwarg(self, key: str, arg: Argument) -> None:
        self.kwargs = {**self.kwargs, key: arg}

    def _update_args_kwargs(self, new_args, new_kwargs) -> None:
        self._args = map_aggregate(tuple(new_args), lambda x: x)
        self._kwargs = map_aggregate(dict(new_kwargs), lambda x: x)
        for old_use in self._input_nodes:
            old_use.users.pop(self)
        self._input_nodes = {}
        map_arg(self._args, self._input_nodes.setdefault)
        map_arg(self._kwargs, self._input_nodes.setdefault)
        for new_use in self._input_nodes:
            new_use.users.setdefault(self)

    def replace_all_uses_with(self, replace_with: "Node", delete_user_cb: Callable[["Node"], bool] = lambda user: True,
                              *, propagate_meta: bool = False) -> List["Node"]:
        """Make every user of this node (for which ``delete_user_cb`` says yes) read ``replace_with``
        instead; returns the users changed."""
        if propagate_meta:
            assert not replace_with.meta, "replace_all_uses_with(propagate_meta=True): the new node already has meta"
            replace_with.meta.update(self.meta)
        to_process = [u for u in self.users if delete_user_cb(u)]
        for user in to_process:
            user._replace_input(self, replace_with)
        return to_process

    def replace_input_with(self, old_input: "Node", new_input: "Node") -> None:
        """Read ``new_input`` wherever this node read ``old_input``."""
        self._replace_input(old_input, new_input)

    def _replace_input(self, old, new) -> None:
        swap = lambda n: new if n is old else n  # noqa: E731
        self._update_args_kwargs(map_arg(self._args, swap), map_arg(self._kwargs, swap))

    def is_impure(self) -> bool:
        """Whether dead-code elimination must keep this node although nothing reads it."""
        if self.op in ("placeholder", "output"):
            return True
        if self.op == "call_function":
            return self.target in _side_effectful_functions
        if self.op == "call_module":
            root = self.graph.owning_module
            return root is not None and getattr(root.get_submodule(self.target), "_is_impure", False)
        return False

    # ------------------------------------------------------------ printing
    @property
    def stack_trace(self) -> Optional[str]:
        return self.meta.get("stack_trace")

    @stack_trace.setter
    def stack_trace(self, trace: Optional[str]) -> None:
        self.meta["stack_trace"] = trace

    def __repr__(self) -> str:
        return self.name

    def _pretty_print_target(self, target) -> str:
        if isinstance(target, str):
            return target
        if hasattr(target, "__module__"):
            name = getattr(target, "__name__", None) or repr(target)
            if target.__module__ == "builtins":
                return f"builtins.{name}"
            if target.__module__ == "_operator":
                return f"operator.{name}"
        return _get_qualified_name(target)

    def format_node(self, placeholder_names: Optional[List[str]] = None,
                    maybe_return_typename: Optional[List[str]] = None) -> Optional[str]:
        """The node as one line: ``%name : [num_users=1] = op[target=...](args = (...), kwargs = {...})``."""
        if self.op == "placeholder":
            assert isinstance(self.target, str)
            arg_str = self.target + (f": {_type_repr(self.type)}" if self.type else "")
            if placeholder_names is not None:
                placeholder_names.append(arg_str)
                return None
            default_val = f"(default={self.args[0]})" if self.args else ""
            return f"%{self.name} : [num_users={len(self.users)}] = {self.op}[target={self.target}]{default_val}"
        if self.op == "get_attr":
            return (f"%{self.name} : [num_users={len(self.users)}] = "
                    f"{self.op}[target={self._pretty_print_target(self.target)}]")
        if self.op == "output":
            if self.type and maybe_return_typename is not None:
                maybe_return_typename[0] = f" -> {_type_repr(self.type)}"
            return f"return {self.args[0]}"
        return (f"%{self.name} : [num_users={len(self.users)}] = {self.op}[target="
                f"{self._pretty_print_target(self.target)}](args = {_format_arg(self.args)}, "
                f"kwargs = {_format_arg(self.kwargs)})")


def _format_arg(arg) -> str:
    if isinstance(arg, (list, tuple)):
        items = ", ".join(_format_arg(a) for a in arg)
        return f"({items},)" if isinstance(arg, tuple) and len(arg) == 1 else \
            (f"({items})" if isinstance(arg, tuple) else f"[{items}]")
    if isinstance(arg, dict):
        return "{" + ", ".join(f"{k}: {_format_arg(v)}" for k, v in arg.items()) + "}"
    if isinstance(arg, Node):
        return "%" + str(arg)
    return str(arg)


def _type_repr(obj) -> str:
    if isinstance(obj, type):
        return obj.__name__ if obj.__module__ == "builtins" else f"{obj.__module__}.{obj.__qualname__}"
    if obj is ...:
        return "..."
    if isinstance(obj, types.FunctionType):
        return obj.__name__
    return repr(obj)


def has_side_effect(fn: Callable) -> Callable:
    """Mark ``fn`` so dead-code elimination keeps its calls although nothing reads their result."""
    _side_effectful_functions.add(fn)
    return fn
