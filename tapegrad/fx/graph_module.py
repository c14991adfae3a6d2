"""``torch.fx.graph_module``: :class:`GraphModule`, a module whose ``forward`` is generated from a
:class:`~tapegrad.fx.Graph`.

It copies from ``root`` exactly what the graph reads (``get_attr`` / ``call_module`` targets), so
it stands alone. ``forward`` is compiled from ``graph.python_code`` and put on a class of the
instance's own (as PyTorch does), so two GraphModules never share one. Pickling stores the
attributes and the graph's nodes, functions by their qualified names; ``deepcopy`` copies both."""
from __future__ import annotations

import builtins
import copy
import importlib
import linecache
import os
from pathlib import Path
from typing import Any, Dict, List, Union

import tapegrad
from tapegrad.nn import Module, Parameter
from tapegrad.tensor import Tensor

from .graph import Graph, PythonCode, _get_qualified_name
from .node import Node, map_arg

__all__ = ["GraphModule"]

_next_id = [0]


def _exec_with_source(src: str, globals_: Dict[str, Any]) -> None:
    """Run ``src`` under a fake filename linecache knows, so tracebacks show the generated lines."""
    _next_id[0] += 1
    key = f"<eval_with_key>.{_next_id[0]}"
    linecache.cache[key] = (len(src), None, src.splitlines(True), key)
    exec(compile(src, key, "exec"), globals_)


def _forward_from_src(src: str, globals_: Dict[str, Any]):
    globals_copy = dict(globals_)
    _exec_with_source(src, globals_copy)
    return globals_copy["forward"]


def _copy_attr(from_module: Module, to_module: Module, target: str) -> None:
    """``to_module.<target> = from_module.<target>``, making the empty parent modules on the way; a
    plain tensor becomes a buffer."""
    *prefix, field = target.split(".")
    for item in prefix:
        f = getattr(from_module, item)
        t = getattr(to_module, item, None)
        if f is t:
            return  # a parent already copied whole
        if t is None:
            t = Module()
            setattr(to_module, item, t)
        from_module, to_module = f, t
    orig = getattr(from_module, field)
    if isinstance(orig, Tensor) and not isinstance(orig, Parameter):
        to_module.register_buffer(field, orig)
    else:
        setattr(to_module, field, orig)


def _assign_attr(from_obj: Any, to_module: Module, target: str) -> None:
    *prefix, field = target.split(".")
    for item in prefix:
        t = getattr(to_module, item, None)
        if t is None:
            t = Module()
            setattr(to_module, item, t)
        to_module = t
    if isinstance(from_obj, Tensor) and not isinstance(from_obj, Parameter):
        to_module.register_buffer(field, from_obj)
    else:
        setattr(to_module, field, from_obj)


class GraphModule(Module):
    """A module running ``graph``; ``root`` (a module, or a dict of path -> object) supplies what the
    graph's ``get_attr`` and ``call_module`` nodes name.

    >>> gm = GraphModule(model, graph)
    >>> gm.graph.erase_node(...); gm.recompile()
    >>> print(gm.code)
    """

    def __new__(cls, *args, **kwargs):
        # each instance its own class, so recompile() sets forward for this module alone
        for t in cls.__mro__:
            if t.__qualname__.split(".")[-1] != "GraphModuleImpl":
                cls = t
                break

        class GraphModuleImpl(cls):  # type: ignore[valid-type, misc]
            pass

        return super().__new__(GraphModuleImpl)

    def __init__(self, root: Union[Module, Dict[str, Any]], graph: Graph, class_name: str = "GraphModule"):
        super().__init__()
        self.__class__.__name__ = class_name
        if isinstance(root, Module):
            if "training" in root.__dict__:
                self.training = root.training
            for node in graph.nodes:
                if node.op in ("get_attr", "call_module"):
                    assert isinstance(node.target, str)
                    _copy_attr(root, self, node.target)
        elif isinstance(root, dict):
            targets_to_copy = []
            for node in graph.nodes:
                if node.op in ("get_attr", "call_module"):
                    if node.target not in root:
                        raise RuntimeError(f"Node {node} referenced target {node.target} but that target was not "
                                           "provided in ``root``!")
                    targets_to_copy.append(node.target)
            targets_to_copy.sort(key=lambda t: t.count("."))  # parents first
            for target_to_copy in targets_to_copy:
                _assign_attr(root[target_to_copy], self, target_to_copy)
        else:
            raise RuntimeError(f"Unsupported type {root} passed for root!")
        self.graph = graph
        self._tracer_cls = graph._tracer_cls if graph._tracer_cls and "<locals>" not in \
            graph._tracer_cls.__qualname__ else None
        self.meta: Dict[str, Any] = {}

    # ------------------------------------------------------------ the graph and its code
    @property
    def graph(self) -> Graph:
        return self._graph

    @graph.setter
    def graph(self, g: Graph) -> None:
        """Setting the graph makes this module its owner and regenerates ``forward``."""
        assert isinstance(g, Graph), f"Expected a Graph instance, but got {type(g)}"
        self._graph = g
        g.owning_module = self
        self.recompile()

    @property
    def code(self) -> str:
        """The Python source of ``forward``."""
        if not hasattr(self, "_code"):
            raise RuntimeError("Code has not been generated! Please report a bug to PyTorch")
        return self._code

    def recompile(self) -> PythonCode:
        """Regenerate ``forward`` from ``self.graph``: call it after editing the graph."""
        python_code = self._graph.python_code(root_module="self")
        self._code = python_code.src
        self._lineno_map = None
        cls = type(self)
        cls.forward = _forward_from_src(self._code, python_code.globals)
        return python_code

    def print_readable(self, print_output: bool = True, include_stride: bool = False, include_device: bool = False,
                       colored: bool = False) -> str:
        """The generated code as a class, with every submodule that is itself a GraphModule inline."""
        out = self._readable(type(self).__name__)
        if print_output:
            print(out)
        return out

    def _readable(self, name: str, indent: str = "") -> str:
        lines = [f"class {name}(tapegrad.nn.Module):"]
        lines += ["    " + line for line in self.code.strip("\n").split("\n")]
        for sub_name, sub in self.named_children():
            if isinstance(sub, GraphModule):
                lines += ["    " + line for line in sub._readable(sub_name).split("\n")]
        return "\n".join(indent + line for line in lines) + "\n"

    def __str__(self) -> str:
        return "\n".join([super().__str__(), self._code])

    def add_submodule(self, target: str, m: Module) -> bool:
        """Install ``m`` at ``target`` (``"a.b.c"``), making empty parents; False if a non-module
        attribute is in the way."""
        *prefix, field = target.split(".")
        mod: Module = self
        for item in prefix:
            submod = getattr(mod, item, None)
            if submod is None:
                submod = Module()
                setattr(mod, item, submod)
            if not isinstance(submod, Module):
                return False
            mod = submod
        mod.add_module(field, m)
        return True

    def delete_submodule(self, target: str) -> bool:
        *path, name = target.split(".")
        mod: Any = self
        for item in path:
            if not hasattr(mod, item):
                return False
            mod = getattr(mod, item)
            if not isinstance(mod, Module):
                return False
        if not hasattr(mod, name) or not isinstance(getattr(mod, name), Module):
            return False
        delattr(mod, name)
        return True

    def delete_all_unused_submodules(self) -> None:
        """Drop the submodules no ``call_module`` / ``get_attr`` node reaches."""
        used: List[str] = []
        for node in self.graph.nodes:
            if node.op in ("call_module", "get_attr"):
                fullpath = node.target.split(".")
                used.extend(".".join(fullpath[:i]) for i in range(1, len(fullpath) + 1))
        to_delete = [name for name, _ in self.named_modules() if name and name not in used]
        for name in to_delete:
            self.delete_submodule(name)

    def to_folder(self, folder: Union[str, os.PathLike], module_name: str = "FxModule") -> None:
        """Write this module as a package: ``module.py`` with the class and ``state_dict.pt`` with the
        parameters and buffers (``tapegrad.save``)."""
        folder = Path(folder)
        folder.mkdir(exist_ok=True)
        tapegrad.save(self.state_dict(), folder / "state_dict.pt")
        for name, sub in self.named_children():
            if not (sub.__module__.startswith("tapegrad.nn") and not isinstance(sub, GraphModule)):
                raise NotImplementedError(f"to_folder: submodule {name!r} ({type(sub).__name__}) is not one of "
                                          "tapegrad.nn's modules and cannot be written as source")
        tab = " " * 4
        model_str = f"import tapegrad\nfrom tapegrad.nn import *\n\nclass {module_name}(tapegrad.nn.Module):\n" \
                    f"{tab}def __init__(self):\n{tab * 2}super().__init__()\n"
        for name, sub in self.named_children():
            model_str += f"{tab * 2}self.add_module({name!r}, {sub!r})\n"
        for name, buf in self._buffers.items():
            model_str += f"{tab * 2}self.register_buffer('{name}', tapegrad.empty({list(buf.shape)}, " \
                         f"dtype=tapegrad.{str(buf.dtype).split('.')[-1]}))\n"
        for name, p in self._parameters.items():
            model_str += f"{tab * 2}self.{name} = tapegrad.nn.Parameter(tapegrad.empty({list(p.shape)}, " \
                         f"dtype=tapegrad.{str(p.dtype).split('.')[-1]}))\n"
        model_str += f"{tab * 2}self.load_state_dict(tapegrad.load(r'{folder / 'state_dict.pt'}'))\n"
        model_str += "\n".join(tab + line for line in self.code.split("\n")) + "\n"
        (folder / "module.py").write_text(model_str)
        (folder / "__init__.py").write_text("from .module import *\n")

    # ------------------------------------------------------------ copying and pickling
    def __reduce__(self):
        body = dict(self.__dict__)
        body.pop("_graph", None)
        body.pop("_code", None)
        return (_reduce_graph_module, (type(self).__name__, body, _graph_state(self._graph)))

    def __deepcopy__(self, memo):
        body = copy.deepcopy({k: v for k, v in self.__dict__.items() if k not in ("_graph", "_code")}, memo)
        fake_mod = Module()
        fake_mod.__dict__.update(body)
        res = GraphModule(fake_mod, copy.deepcopy(self._graph, {}), type(self).__name__)
        for k, v in body.items():
            if k not in res.__dict__ or k == "meta":
                res.__dict__[k] = v
        return res

    def __copy__(self):
        res = GraphModule(self, self.graph, type(self).__name__)
        res.meta = getattr(self, "meta", {})
        return res


# ---------------------------------------------------------------- pickling a graph
class _NodeRef:
    """A node argument in a pickled graph (by name)."""

    def __init__(self, name: str):
        self.name = name


def _target_ref(target):
    """A function target as a string it can be re-imported from, when it can (else itself)."""
    if not callable(target):
        return target
    name = _get_qualified_name(target)
    return ("fn", name) if _import_target(name) is target else ("obj", target)


def _import_target(qualified: str):
    parts = qualified.split(".")
    if len(parts) == 1:
        return getattr(builtins, parts[0], None)
    for i in range(len(parts) - 1, 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        for attr in parts[i:]:
            obj = getattr(obj, attr, None)
            if obj is None:
                return None
        return obj
    return None


def _graph_state(graph: Graph) -> List[tuple]:
    return [(n.op, n.name, _target_ref(n.target) if n.op == "call_function" else n.target,
             map_arg(n.args, lambda a: _NodeRef(a.name)), map_arg(n.kwargs, lambda a: _NodeRef(a.name)), n.type)
            for n in graph.nodes]


def _rebuild_graph(state: List[tuple]) -> Graph:
    graph = Graph()
    env: Dict[str, Node] = {}

    def load(a):
        if isinstance(a, _NodeRef):
            return env[a.name]
        if isinstance(a, (tuple, list)) and not hasattr(a, "_fields"):
            return type(a)(load(x) for x in a) if isinstance(a, tuple) else [load(x) for x in a]
        if isinstance(a, dict):
            return {k: load(v) for k, v in a.items()}
        if isinstance(a, slice):
            return slice(load(a.start), load(a.stop), load(a.step))
        return a

    for op, name, target, args, kwargs, type_expr in state:
        if op == "call_function":
            kind, ref = target
            target = _import_target(ref) if kind == "fn" else ref
        env[name] = graph.create_node(op, target, load(args), load(kwargs), name, type_expr)
    return graph


def _reduce_graph_module(class_name: str, body: Dict[str, Any], graph_state: List[tuple]) -> GraphModule:
    fake_mod = Module()
    fake_mod.__dict__.update(body)
    gm = GraphModule(fake_mod, _rebuild_graph(graph_state), class_name)
    for k, v in body.items():
        if k not in gm.__dict__ or k == "meta":
            gm.__dict__[k] = v
    return gm
