"""``torch.fx.interpreter``: :class:`Interpreter` runs a graph node by node (override ``call_function``
and the others to observe or change what happens); :class:`Transformer` runs it on proxies to
write a new graph."""
from __future__ import annotations

import inspect
from typing import Any, Dict, Iterator, List, Optional, Tuple

from . import _function_swap
from ._symbolic_trace import Tracer
from .graph import Graph
from .graph_module import GraphModule
from .node import Argument, Node, Target, map_aggregate, map_arg
from .proxy import Proxy

__all__ = ["Interpreter", "Transformer"]


class Interpreter:
    """Run ``module.graph`` (or ``graph``) one node at a time, each through the method named after
    its op; values are dropped after their last use.

    >>> class NegSigmoid(Interpreter):
    ...     def call_function(self, target, args, kwargs):
    ...         return -super().call_function(target, args, kwargs) if target is tapegrad.sigmoid else \\
    ...             super().call_function(target, args, kwargs)
    >>> NegSigmoid(gm).run(x)
    """

    def __init__(self, module, garbage_collect_values: bool = True, graph: Optional[Graph] = None):
        self.module = module
        self.submodules = dict(self.module.named_modules())
        self.graph = graph if graph is not None else self.module.graph
        self.env: Dict[Node, Any] = {}
        self.name = "Interpreter"
        self.garbage_collect_values = garbage_collect_values
        self.extra_traceback = True
        self.user_to_last_uses: Dict[Node, List[Node]] = {}
        if garbage_collect_values:
            seen: set = set()
            for node in reversed(self.graph.nodes):
                for n in node.all_input_nodes:
                    if n not in seen:
                        seen.add(n)
                        self.user_to_last_uses.setdefault(node, []).append(n)

    def run(self, *args, initial_env: Optional[Dict[Node, Any]] = None, enable_io_processing: bool = True) -> Any:
        """The graph's output for positional ``args``."""
        self.env = initial_env if initial_env is not None else {}
        self.args_iter: Iterator[Any] = iter(args)
        for node in self.graph.nodes:
            if node in self.env:
                continue
            try:
                self.env[node] = self.run_node(node)
            except Exception as e:
                if self.extra_traceback:
                    msg = f"While executing {node.format_node()}"
                    msg = f"{e.args[0]}\n\n{msg}" if e.args else msg
                    e.args = (msg,) + e.args[1:]
                    if isinstance(e, KeyError):
                        raise RuntimeError(*e.args) from e
                raise
            if self.garbage_collect_values:
                for to_delete in self.user_to_last_uses.get(node, []):
                    del self.env[to_delete]
            if node.op == "output":
                return self.env[node]
        return None

    def run_node(self, n: Node) -> Any:
        args, kwargs = self.fetch_args_kwargs_from_env(n)
        assert isinstance(args, tuple) and isinstance(kwargs, dict)
        return getattr(self, n.op)(n.target, args, kwargs)

    # ------------------------------------------------------------ one method per op
    def placeholder(self, target: str, args: Tuple[Argument, ...], kwargs: Dict[str, Any]) -> Any:
        if target.startswith("**"):
            return {}
        if target.startswith("*"):
            return list(self.args_iter)
        try:
            return next(self.args_iter)
        except StopIteration as si:
            if len(args) > 0:
                return args[0]
            raise RuntimeError(f"Expected positional argument for parameter {target}, but one was not passed in!") from si

    def get_attr(self, target: str, args, kwargs) -> Any:
        return self.fetch_attr(target)

    def call_function(self, target: Target, args, kwargs) -> Any:
        return target(*args, **kwargs)

    def call_method(self, target: str, args, kwargs) -> Any:
        self_obj, *args_tail = args
        return getattr(self_obj, target)(*args_tail, **kwargs)

    def call_module(self, target: str, args, kwargs) -> Any:
        return self.fetch_attr(target)(*args, **kwargs)

    def output(self, target: str, args, kwargs) -> Any:
        return args[0]

    # ------------------------------------------------------------ helpers
    def fetch_attr(self, target: str) -> Any:
        attr_itr = self.module
        atoms = target.split(".")
        for i, atom in enumerate(atoms):
            if not hasattr(attr_itr, atom):
                raise RuntimeError(f"Node referenced nonexistent target {'.'.join(atoms[:i + 1])}")
            attr_itr = getattr(attr_itr, atom)
        return attr_itr

    def fetch_args_kwargs_from_env(self, n: Node) -> Tuple[Tuple, Dict]:
        return self.map_nodes_to_values(n.args, n), self.map_nodes_to_values(n.kwargs, n)

    def map_nodes_to_values(self, args: Argument, n: Node) -> Argument:
        def load_arg(n_arg: Node) -> Any:
            if n_arg not in self.env:
                raise RuntimeError(f"Node {n} referenced nonexistent value {n_arg}! Run Graph.lint() to diagnose "
                                   "such issues")
            return self.env[n_arg]
        return map_arg(args, load_arg)


class _TransformerTracer(Tracer):
    def __init__(self, graph: Graph):
        super().__init__()
        self.graph = graph
        self.tensor_attrs = {}

    def is_leaf_module(self, _, __) -> bool:
        return True


class Transformer(Interpreter):
    """Run a GraphModule on proxies, so each overridden op method writes the new graph;
    ``transform()`` returns the new GraphModule.

    >>> class ReluToGelu(Transformer):
    ...     def call_function(self, target, args, kwargs):
    ...         target = tapegrad.nn.functional.gelu if target is tapegrad.relu else target
    ...         return super().call_function(target, args, kwargs)
    >>> new_gm = ReluToGelu(gm).transform()
    """

    def __init__(self, module: GraphModule):
        super().__init__(module)
        self.new_graph = Graph()
        self.new_graph.set_codegen(module.graph._codegen)
        self.tracer = _TransformerTracer(self.new_graph)
        self.tracer.root = module

    def placeholder(self, target: str, args, kwargs) -> Proxy:
        default_value = next(iter(args)) if args else inspect.Signature.empty
        return Proxy(self.new_graph.placeholder(target, default_value=default_value), self.tracer)

    def get_attr(self, target: str, args, kwargs) -> Proxy:
        return self.tracer.create_proxy("get_attr", target, args, kwargs)

    def call_module(self, target: str, args, kwargs) -> Any:
        submod = self.fetch_attr(target)
        return self.tracer.call_module(submod, submod.forward, args, kwargs)

    def call_function(self, target: Target, args, kwargs) -> Any:
        return self.tracer.create_proxy("call_function", target, args, kwargs)

    def transform(self) -> GraphModule:
        """The new GraphModule (the module's attributes, the graph written by this run)."""
        _function_swap.acquire()  # overrides may call tapegrad's functions on proxies
        try:
            result = super().run(enable_io_processing=False)
        finally:
            _function_swap.release()
        if result is not None:
            self.new_graph.output(map_aggregate(result, lambda a: a.node if isinstance(a, Proxy) else a))
        return GraphModule(self.module, self.new_graph)
