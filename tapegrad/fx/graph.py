"""``torch.fx.graph``: the :class:`Graph` (a doubly linked list of :class:`~tapegrad.fx.Node`) and its
Python code generator.

The list is circular around a ``root`` sentinel, so inserting and erasing are O(1) and iteration
survives erasing the current node. ``python_code`` writes ``forward`` as straight-line Python, one
line per node, naming each value after its node and setting it to ``None`` after its last use
(as PyTorch does, so intermediates are freed as early as in eager code)."""
from __future__ import annotations

import builtins
import copy
import inspect
import keyword
import math
import operator
import re
from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterator, List, Optional

import numpy as np

import tapegrad

from .node import Argument, Node, Target, _get_qualified_name, _type_repr, map_arg

__all__ = ["Graph", "PythonCode", "CodeGen"]

# operator's functions the code writes as Python operators (PyTorch's magic_methods)
magic_methods = dict({
    "eq": "{} == {}", "ne": "{} != {}", "lt": "{} < {}", "gt": "{} > {}", "le": "{} <= {}", "ge": "{} >= {}",
    "pos": "+{}", "neg": "-{}", "invert": "~{}"},
    **{name: "{} " + sym + " {}" for name, sym in {
        "add": "+", "sub": "-", "mul": "*", "floordiv": "//", "truediv": "/", "mod": "%",
        "pow": "**", "lshift": "<<", "rshift": ">>", "and_": "&", "or_": "|", "xor": "^", "getitem": "[]",
        "matmul": "@"}.items()})
magic_methods["getitem"] = "{}[{}]"
# those with a reflected form (__radd__, ...) a Proxy must answer when it stands on the right
reflectable_magic_methods = {k: v for k, v in magic_methods.items() if k in (
    "add", "sub", "mul", "floordiv", "truediv", "mod", "pow", "lshift", "rshift", "and_", "or_", "xor",
    "matmul")}
inplace_methods = {"iadd": "{} += {}", "iand": "{} &= {}", "ifloordiv": "{} //= {}", "ilshift": "{} <<= {}",
                   "imod": "{} %= {}", "imul": "{} *= {}", "imatmul": "{} @= {}", "ior": "{} |= {}",
                   "ipow": "{} **= {}", "irshift": "{} >>= {}", "isub": "{} -= {}", "itruediv": "{} /= {}",
                   "ixor": "{} ^= {}", "setitem": "{}[{}] = {}"}

# names the generated code may use without importing them
_BUILTINS = {"inf": math.inf, "nan": math.nan, "NoneType": type(None), "tapegrad": tapegrad}


def _is_magic(x: str) -> bool:
    return x.startswith("__") and x.endswith("__")


def _snake_case(s: str) -> str:
    """``MyModule`` -> ``my_module``, for node names made from targets."""
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", s).lower()


_illegal_char = re.compile("[^0-9a-zA-Z_]+")
_name_suffix = re.compile(r"(.*)_(\d+)$")


class _Namespace:
    """Unique Python identifiers for the generated code: ``relu``, ``relu_1``, ...; the same object
    asks again gets the same name."""

    def __init__(self):
        self._obj_to_name: Dict[int, str] = {}
        self._used: set = set()
        self._base_count: Dict[str, int] = {}

    def create_name(self, candidate: str, obj: Optional[Any]) -> str:
        if obj is not None and id(obj) in self._obj_to_name:
            return self._obj_to_name[id(obj)]
        candidate = _illegal_char.sub("_", candidate) or "_unnamed"
        if candidate[0].isdigit():
            candidate = f"_{candidate}"
        match = _name_suffix.match(candidate)
        base, num = (match.group(1), int(match.group(2))) if match else (candidate, None)
        while candidate in self._used or self._is_illegal(candidate):
            num = self._base_count.get(base, 0) + 1 if num is None else num + 1
            candidate = f"{base}_{num}"
        self._base_count[base] = max(num or 0, self._base_count.get(base, 0))
        self._used.add(candidate)
        if obj is not None:
            self._obj_to_name[id(obj)] = candidate
        return candidate

    def associate_name_with_obj(self, name: str, obj: Any) -> None:
        self._obj_to_name[id(obj)] = name

    def _is_illegal(self, name: str) -> bool:
        return keyword.iskeyword(name) or name in builtins.__dict__ or name in _BUILTINS


@dataclass
class PythonCode:
    """The generated source of ``forward`` and the globals it runs in."""
    src: str
    globals: Dict[str, Any]


def _format_target(base: str, target: str) -> str:
    """``self.layer1.0`` -> ``getattr(self.layer1, "0")``: attribute paths that are not identifiers."""
    out = base
    for elem in target.split("."):
        out = f"{out}.{elem}" if elem.isidentifier() else f'getattr({out}, "{elem}")'
    return out


_LITERALS = (int, float, bool, str, bytes, complex, type(None), type(Ellipsis))


class CodeGen:
    """Writes a graph as the Python source of ``forward`` (``Graph.python_code``)."""

    def gen_fn_def(self, free_vars: List[str], maybe_return_annotation: str) -> str:
        return f"def forward({', '.join(['self'] + free_vars)}){maybe_return_annotation}:"

    def generate_output(self, output_args: Argument, repr_fn) -> str:
        return f"return {repr_fn(output_args)}"

    def _gen_python_code(self, nodes, root_module: str, namespace: _Namespace, *, verbose: bool = False) -> PythonCode:
        free_vars: List[str] = []
        body: List[str] = []
        globals_: Dict[str, Any] = dict(_BUILTINS)
        maybe_return_annotation = [""]

        def add_global(name_hint: str, obj: Any) -> str:
            """The name the code uses for ``obj``: a dotted path under a builtin name when it is one,
            else a fresh global."""
            head, _, rest = name_hint.partition(".")
            if head in _BUILTINS and rest and _resolve(_BUILTINS[head], rest) is obj:
                return name_hint
            if name_hint in builtins.__dict__ and builtins.__dict__[name_hint] is obj:
                return name_hint
            name = namespace.create_name(name_hint, obj)
            globals_[name] = obj
            return name

        def type_repr(o: Any) -> str:
            if o in (None, inspect.Signature.empty):
                return ""
            if isinstance(o, type):
                return add_global(_type_repr(o), o)
            return _type_repr(o)

        def get_repr(arg: Any) -> str:
            if isinstance(arg, Node):
                return arg.name
            if isinstance(arg, tuple):
                inner = ", ".join(get_repr(a) for a in arg)
                if hasattr(arg, "_fields"):  # namedtuple
                    return f"{add_global(_type_repr(type(arg)), type(arg))}({inner})"
                return f"({inner},)" if len(arg) == 1 else f"({inner})"
            if isinstance(arg, list):
                return "[" + ", ".join(get_repr(a) for a in arg) + "]"
            if isinstance(arg, dict):
                return "{" + ", ".join(f"{get_repr(k)}: {get_repr(v)}" for k, v in arg.items()) + "}"
            if isinstance(arg, slice):
                return f"slice({get_repr(arg.start)}, {get_repr(arg.stop)}, {get_repr(arg.step)})"
            if isinstance(arg, float) and not math.isfinite(arg):
                return repr(arg)  # inf, nan: builtins of the code
            if isinstance(arg, _LITERALS):
                return repr(arg)
            if isinstance(arg, type) or callable(arg):
                return add_global(_get_qualified_name(arg).replace(".", "_"), arg)
            if isinstance(arg, tapegrad.dtype):
                return repr(arg)  # tapegrad.float32
            if isinstance(arg, np.dtype) and getattr(tapegrad, str(arg), None) == arg:
                return f"tapegrad.{arg}"  # a numpy dtype under a tapegrad name
            # a device, range, enum, ...: the object itself, by a global name
            return add_global(_snake_case(type(arg).__name__), arg)

        def format_args(args, kwargs) -> str:
            parts = [get_repr(a) for a in args] + [f"{k} = {get_repr(v)}" for k, v in kwargs.items()]
            return ", ".join(parts)

        # free each value after its last use
        node_to_last_use: Dict[Node, Node] = {}
        user_to_last_uses: Dict[Node, List[Node]] = {}
        for node in reversed(nodes):
            for n in node.all_input_nodes:
                if n not in node_to_last_use:
                    node_to_last_use[n] = node
                    user_to_last_uses.setdefault(node, []).append(n)

        def delete_unused_values(user: Node) -> None:
            if user.op == "placeholder":
                return
            if user.op == "output":
                body.append("\n")
                return
            to_delete = list(user_to_last_uses.get(user, []))
            if not user.users:
                to_delete.append(user)  # an unused value (kept as impure) is freed at once
            if to_delete:
                body.append(";  " + "".join(f"{n.name} = " for n in to_delete) + "None\n")
            else:
                body.append("\n")

        wrapped_fns: Dict[str, None] = {}
        for node in nodes:
            if node.op == "call_function" and node.meta.get("is_wrapped"):
                wrapped_fns.setdefault(add_global(_get_qualified_name(node.target), node.target))
            if verbose and node.op not in ("placeholder", "output"):
                body.append(f"    # {node.format_node()}\n")
            self._emit_node(node, root_module, body, free_vars, maybe_return_annotation, add_global, get_repr,
                            format_args, type_repr)
            delete_unused_values(node)

        if not body or all(line.strip() == "" for line in body):
            body.append("pass\n")
        code = "".join(body).lstrip("\n")
        code = "\n".join("    " + line for line in code.split("\n"))
        # functions recorded through fx.wrap / autowrap stay wrapped when the code is traced again
        wrap_stmts = "\n".join(f'tapegrad.fx._symbolic_trace.wrap("{name}")' for name in wrapped_fns)
        fn_code = f"\n{wrap_stmts}\n\n{self.gen_fn_def(free_vars, maybe_return_annotation[0])}\n{code}"
        return PythonCode(fn_code, globals_)

    def _emit_node(self, node, root_module, body, free_vars, maybe_return_annotation, add_global, get_repr,
                   format_args, type_repr) -> None:
        annotation = f" : {type_repr(node.type)}" if node.type not in (None, inspect.Signature.empty) and \
            node.op != "output" and type_repr(node.type) else ""
        if node.op == "placeholder":
            assert isinstance(node.target, str)
            default = f" = {get_repr(node.args[0])}" if node.args else ""
            free_vars.append(f"{node.target}{annotation}{default}")
            raw_name = node.target.replace("*", "")
            if raw_name != node.name:
                body.append(f"{node.name} = {raw_name}\n")
            return
        if node.op == "call_method":
            assert isinstance(node.target, str)
            body.append(f"{node.name}{annotation} = {_format_target(get_repr(node.args[0]), node.target)}"
                        f"({format_args(node.args[1:], node.kwargs)})")
            return
        if node.op == "call_function":
            assert callable(node.target)
            name = getattr(node.target, "__name__", "")
            if getattr(operator, name, None) is node.target and name in magic_methods and not node.kwargs \
                    and len(node.args) == magic_methods[name].count("{}"):
                body.append(f"{node.name}{annotation} = " + magic_methods[name].format(*(get_repr(a) for a in node.args)))
                return
            if getattr(operator, name, None) is node.target and name in inplace_methods and not node.kwargs:
                body.append(inplace_methods[name].format(*(get_repr(a) for a in node.args)) + ";  " +
                            f"{node.name}{annotation} = {get_repr(node.args[0])}")
                return
            if node.target is builtins.getattr and len(node.args) == 2 and isinstance(node.args[1], str) \
                    and node.args[1].isidentifier() and not node.kwargs:
                body.append(f"{node.name}{annotation} = {_format_target(get_repr(node.args[0]), node.args[1])}")
                return
            global_name = add_global(_get_qualified_name(node.target), node.target)
            body.append(f"{node.name}{annotation} = {global_name}({format_args(node.args, node.kwargs)})")
            return
        if node.op == "call_module":
            assert isinstance(node.target, str)
            body.append(f"{node.name}{annotation} = {_format_target(root_module, node.target)}"
                        f"({format_args(node.args, node.kwargs)})")
            return
        if node.op == "get_attr":
            assert isinstance(node.target, str)
            body.append(f"{node.name}{annotation} = {_format_target(root_module, node.target)}")
            return
        if node.op == "output":
            if node.type is not None:
                maybe_return_annotation[0] = f" -> {type_repr(node.type)}"
            body.append(self.generate_output(node.args[0], get_repr))
            return
        raise NotImplementedError(f"node: {node.op} {node.target}")


def _resolve(obj, dotted: str):
    for part in dotted.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            return None
    return obj


class _NodeList:
    """A view of a graph's nodes in order (``reversed`` walks back); erasing while iterating is safe."""

    def __init__(self, graph: "Graph", direction: str = "_next"):
        self._graph = graph
        self._direction = direction

    def __len__(self) -> int:
        return self._graph._len

    def __iter__(self) -> Iterator[Node]:
        root = self._graph._root
        cur = getattr(root, self._direction)
        while cur is not root:
            nxt = getattr(cur, self._direction)
            if not cur._erased:
                yield cur
            cur = nxt

    def __reversed__(self) -> Iterator[Node]:
        return iter(_NodeList(self._graph, "_prev" if self._direction == "_next" else "_next"))

    def __repr__(self) -> str:
        return repr(list(self))


class _InsertPoint:
    def __init__(self, graph: "Graph", new_insert: Callable[[Node], None]):
        self.graph = graph
        self.orig_insert, graph._insert = graph._insert, new_insert

    def __enter__(self):
        pass

    def __exit__(self, *exc):
        self.graph._insert = self.orig_insert


class Graph:
    """A program as a list of :class:`Node`: what ``symbolic_trace`` records and ``GraphModule``
    runs.

    >>> g = Graph()
    >>> x = g.placeholder("x")
    >>> y = g.call_function(tapegrad.relu, (x,))
    >>> g.output(y)
    >>> print(g.python_code("self").src)   # def forward(self, x): relu = tapegrad.relu(x) ...
    """

    def __init__(self, owning_module=None, tracer_cls: Optional[type] = None,
                 tracer_extras: Optional[Dict[str, Any]] = None):
        self._root: Node = Node(self, "", "root", "", (), {})
        self._used_names: Dict[str, int] = {}
        self._insert = self._root.prepend
        self._len = 0
        self._graph_namespace = _Namespace()
        self._owning_module = owning_module
        self._tracer_cls = tracer_cls
        self._tracer_extras = tracer_extras
        self._codegen = CodeGen()

    @property
    def owning_module(self):
        return self._owning_module

    @owning_module.setter
    def owning_module(self, mod) -> None:
        self._owning_module = mod

    @property
    def nodes(self) -> _NodeList:
        """The nodes in order: a view, so it sees insertions."""
        return _NodeList(self)

    def find_nodes(self, *, op: str, target: Optional[Target] = None) -> List[Node]:
        return [n for n in self.nodes if n.op == op and (target is None or n.target == target)]

    # ------------------------------------------------------------ copying
    def graph_copy(self, g: "Graph", val_map: Dict[Node, Node], return_output_node: bool = False):
        """Append copies of ``g``'s nodes (``val_map`` maps old nodes to new, and is filled); returns
        the value of ``g``'s output (the output node itself with ``return_output_node``)."""
        for node in g.nodes:
            if node in val_map:
                continue
            if node.op == "output":
                rv = map_arg(node.args[0], lambda n: val_map[n])
                return rv if not return_output_node else (rv, node)
            val_map[node] = self.node_copy(node, lambda n: val_map[n])
        return None

    def __deepcopy__(self, memo=None) -> "Graph":
        memo = memo if memo is not None else {}
        g = Graph(tracer_cls=self._tracer_cls)
        output_vals = g.graph_copy(self, val_map=memo, return_output_node=True)
        g._codegen = copy.deepcopy(self._codegen)
        if output_vals is not None:
            output_val, old_output_node = output_vals
            new_output = g.output(output_val, type_expr=getattr(old_output_node, "type", None))
            new_output.meta = copy.copy(old_output_node.meta)
        return g

    # ------------------------------------------------------------ making and erasing nodes
    def create_node(self, op: str, target: Target, args: Optional[tuple] = None, kwargs: Optional[dict] = None,
                    name: Optional[str] = None, type_expr: Optional[Any] = None) -> Node:
        """Insert a node at the insert point (the end, unless inside ``inserting_before/after``)."""
        assert op in ("call_function", "call_method", "get_attr", "call_module", "placeholder", "output"), op
        args = () if args is None else args
        kwargs = {} if kwargs is None else kwargs
        if op == "call_function":  # a function the trace swapped in stands for its original
            target = getattr(target, "__fx_original__", target)
        assert isinstance(args, tuple), "args must be a tuple"
        assert isinstance(kwargs, dict), "kwargs must be a dict"
        candidate = name if name is not None else self._target_to_str(target)
        name = self._graph_namespace.create_name(candidate, None)
        n = Node(self, name, op, target, args, kwargs, type_expr)
        self._graph_namespace.associate_name_with_obj(name, n)
        self._insert(n)
        self._len += 1
        return n

    def erase_node(self, to_erase: Node) -> None:
        """Remove a node nothing reads any more."""
        if len(to_erase.users) > 0:
            raise RuntimeError(f"Tried to erase Node {to_erase} but it still had {len(to_erase.users)} "
                               f"users in the graph: {to_erase.users}!")
        if to_erase.graph is not self:
            raise RuntimeError(f"Attempting to remove {to_erase} from wrong graph!")
        if to_erase._erased:
            return
        to_erase._remove_from_list()
        to_erase._erased = True
        self._len -= 1
        to_erase._update_args_kwargs((), {})  # drop it from its inputs' users

    def inserting_before(self, n: Optional[Node] = None):
        """``with g.inserting_before(n):`` new nodes go just before ``n`` (the start of the graph for None)."""
        if n is None:
            return self.inserting_after(self._root)
        assert n.graph is self, "Node to insert before is not in graph."
        return _InsertPoint(self, n.prepend)

    def inserting_after(self, n: Optional[Node] = None):
        """``with g.inserting_after(n):`` new nodes go just after ``n``, each after the one before it
        (the end of the graph for None)."""
        if n is None:
            return self.inserting_before(self._root)
        assert n.graph is self, "Node to insert after is not in graph."
        return _InsertPoint(self, n.append)

    def placeholder(self, name: str, type_expr: Optional[Any] = None,
                    default_value: Any = inspect.Signature.empty) -> Node:
        args = () if default_value is inspect.Signature.empty else (default_value,)
        return self.create_node("placeholder", name, args=args, type_expr=type_expr)

    def get_attr(self, qualified_name: str, type_expr: Optional[Any] = None) -> Node:
        """A node reading ``root.<qualified_name>`` (a parameter, buffer, submodule or constant)."""
        return self.create_node("get_attr", qualified_name, type_expr=type_expr)

    def call_module(self, module_name: str, args=None, kwargs=None, type_expr=None) -> Node:
        return self.create_node("call_module", module_name, args, kwargs, type_expr=type_expr)

    def call_method(self, method_name: str, args=None, kwargs=None, type_expr=None) -> Node:
        return self.create_node("call_method", method_name, args, kwargs, type_expr=type_expr)

    def call_function(self, the_function: Callable, args=None, kwargs=None, type_expr=None) -> Node:
        return self.create_node("call_function", the_function, args, kwargs, type_expr=type_expr)

    def node_copy(self, node: Node, arg_transform: Callable[[Node], Argument] = lambda x: x) -> Node:
        """A copy of ``node`` (from any graph) here, its node arguments passed through ``arg_transform``."""
        args = map_arg(node.args, arg_transform)
        kwargs = map_arg(node.kwargs, arg_transform)
        result = self.create_node(node.op, node.target, args, kwargs, node.name, node.type)
        result.meta = copy.copy(node.meta)
        return result

    def output(self, result: Argument, type_expr: Optional[Any] = None) -> Node:
        return self.create_node("output", "output", (result,), type_expr=type_expr)

    def _target_to_str(self, target: Target) -> str:
        if callable(target):
            op = getattr(target, "__name__", None) or type(target).__name__
        else:
            assert isinstance(target, str)
            op = target
            if _is_magic(op):
                op = op[2:-2]
        return _snake_case(op)

    # ------------------------------------------------------------ code, printing, checks
    def python_code(self, root_module: str, *, verbose: bool = False) -> PythonCode:
        """The source of ``forward`` for this graph and the globals it needs; names come from a fresh
        namespace so globals never shadow values."""
        namespace = _Namespace()
        for node in self.nodes:  # node names are taken first
            namespace.create_name(node.name, node)
        return self._codegen._gen_python_code(list(self.nodes), root_module, namespace, verbose=verbose)

    def __str__(self) -> str:
        placeholder_names: List[str] = []
        maybe_return_typename = [""]
        node_strs = [n.format_node(placeholder_names) for n in self.nodes]
        s = f"graph({', '.join(placeholder_names)}){maybe_return_typename[0]}:"
        for node_str in node_strs:
            if node_str:
                s += "\n    " + node_str
        return s

    def print_tabular(self) -> None:
        """The nodes as a table (opcode, name, target, args, kwargs); needs ``tabulate``, as PyTorch's."""
        try:
            from tabulate import tabulate
        except ImportError:
            print("`print_tabular` relies on the library `tabulate`, which could not be found on this machine. "
                  "Run `pip install tabulate` to install the library.")
            raise
        rows = [[n.op, n.name, n.target, n.args, n.kwargs] for n in self.nodes]
        print(tabulate(rows, headers=["opcode", "name", "target", "args", "kwargs"]))

    def lint(self) -> None:
        """Check the graph is well formed: each node belongs here, reads only nodes before it, names are
        unique, targets are of the right kind and (with an owning module) get_attr/call_module targets
        exist."""
        seen_names: set = set()
        seen_values: set = set()
        for node in self.nodes:
            if node.op not in ("placeholder", "call_method", "call_module", "call_function", "get_attr", "output"):
                raise RuntimeError(f"Node {node} had unknown opcode {node.op}!")
            if node.graph is not self:
                raise RuntimeError(f"Node '{node}' does not belong to this Graph!")
            for arg in node._input_nodes:
                if arg.graph is not self:
                    raise RuntimeError(f"Argument '{arg}' of Node '{node}' does not belong to this Graph, "
                                       f"but was used as an argument! If you are copying nodes from another "
                                       f"graph, make sure to use ``arg_transform`` on node_copy() to remap "
                                       f"values\n{self}")
                if arg not in seen_values:
                    raise RuntimeError(f"Argument '{arg}' of Node '{node}' was used before it has been defined! "
                                       f"Please check that Nodes in the graph are topologically ordered\n{self}")
            if node.name in seen_names:
                raise RuntimeError(f"Node redefined name {node.name}!")
            seen_names.add(node.name)
            seen_values.add(node)
        if self.owning_module is not None:
            for node in self.nodes:
                if node.op not in ("get_attr", "call_module"):
                    continue
                m_itr = self.owning_module
                for i, atom in enumerate(node.target.split(".")):
                    if not hasattr(m_itr, atom):
                        seen_qualname = ".".join(node.target.split(".")[:i])
                        raise RuntimeError(f"Node {node} target {node.target} references nonexistent attribute "
                                           f"{atom} of {seen_qualname}")
                    m_itr = getattr(m_itr, atom)
                if node.op == "call_module" and not isinstance(m_itr, tapegrad.nn.Module):
                    raise RuntimeError(f"Node {node} target {node.target} {atom} of {seen_qualname} does not "
                                       f"reference an nn.Module")

    def eliminate_dead_code(self, is_impure_node: Optional[Callable[[Node], bool]] = None) -> bool:
        """Erase the nodes nothing reads (impure ones, e.g. placeholders, kept); True if any went."""
        self.lint()
        changed = False
        for node in reversed(self.nodes):
            impure = is_impure_node(node) if is_impure_node is not None else node.is_impure()
            if not impure and len(node.users) == 0:
                self.erase_node(node)
                changed = True
        return changed

    def set_codegen(self, codegen: CodeGen) -> None:
        self._codegen = codegen
