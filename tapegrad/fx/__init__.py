"""``tapegrad.fx``: PyTorch's ``torch.fx`` for tapegrad: trace a module into a graph, rewrite the
graph, and run it again as Python code.

>>> gm = tapegrad.fx.symbolic_trace(model)      # a GraphModule
>>> for node in gm.graph.nodes: ...              # placeholder, call_module, call_function, ...
>>> gm.recompile(); gm(x)

tapegrad has no ``__torch_function__``; while a tracer lives, tapegrad's namespace functions are
swapped for recording wrappers instead (see ``_function_swap``)."""
from .graph import Graph, CodeGen, PythonCode  # noqa: F401
from .graph_module import GraphModule  # noqa: F401
from .interpreter import Interpreter, Transformer  # noqa: F401
from .node import Node, map_arg, has_side_effect  # noqa: F401
from .proxy import Proxy  # noqa: F401
from . import proxy  # noqa: F401
from ._symbolic_trace import PH, Tracer, symbolic_trace, wrap  # noqa: F401
from .subgraph_rewriter import replace_pattern  # noqa: F401
from . import passes  # noqa: F401

__all__ = ["symbolic_trace", "Tracer", "Graph", "GraphModule", "Interpreter", "Transformer", "Node", "Proxy",
           "replace_pattern", "wrap", "map_arg", "PH", "has_side_effect"]
