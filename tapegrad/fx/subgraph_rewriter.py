"""``torch.fx.subgraph_rewriter``: :func:`replace_pattern` finds every occurrence of one traced
function's graph in a GraphModule and replaces it with another's."""
from __future__ import annotations

from typing import Callable, Dict, List, NamedTuple, Union

from tapegrad.nn import Module

from ._symbolic_trace import symbolic_trace
from .graph import Graph
from .graph_module import GraphModule, _copy_attr
from .node import Node

__all__ = ["Match", "replace_pattern"]


class Match(NamedTuple):
    anchor: Node  # the node the pattern's output matched
    nodes_map: Dict[Node, Node]  # pattern node -> matched node


def _match_arg(pa, ga, nodes_map: Dict[Node, Node]) -> bool:
    if isinstance(pa, Node):
        return isinstance(ga, Node) and _match_node(pa, ga, nodes_map) or \
            (pa.op == "placeholder" and _bind(pa, ga, nodes_map))
    if isinstance(pa, (list, tuple)):
        return isinstance(ga, (list, tuple)) and len(pa) == len(ga) and \
            all(_match_arg(p, g, nodes_map) for p, g in zip(pa, ga))
    if isinstance(pa, dict):
        return isinstance(ga, dict) and pa.keys() == ga.keys() and all(_match_arg(pa[k], ga[k], nodes_map) for k in pa)
    return type(pa) is type(ga) and pa == ga  # literals must be equal


def _bind(pn: Node, gv, nodes_map) -> bool:
    if pn in nodes_map:
        return nodes_map[pn] is gv
    nodes_map[pn] = gv
    return True


def _match_node(pn: Node, gn: Node, nodes_map: Dict[Node, Node]) -> bool:
    if pn in nodes_map:
        return nodes_map[pn] is gn
    if pn.op == "placeholder":
        nodes_map[pn] = gn
        return True
    if pn.op != gn.op or pn.target != gn.target or len(pn.args) != len(gn.args) or pn.kwargs.keys() != gn.kwargs.keys():
        return False
    nodes_map[pn] = gn
    ok = all(_match_arg(p, g, nodes_map) for p, g in zip(pn.args, gn.args)) and \
        all(_match_arg(pn.kwargs[k], gn.kwargs[k], nodes_map) for k in pn.kwargs)
    if not ok:
        del nodes_map[pn]
    return ok


def _find_matches(graph: Graph, pattern: Graph) -> List[Match]:
    (pattern_output,) = [n for n in pattern.nodes if n.op == "output"]
    pattern_anchor = pattern_output.args[0]
    if not isinstance(pattern_anchor, Node):
        raise NotImplementedError("replace_pattern: the pattern must return a single value")
    matches: List[Match] = []
    taken: set = set()
    for gn in graph.nodes:
        nodes_map: Dict[Node, Node] = {}
        if gn in taken or not _match_node(pattern_anchor, gn, nodes_map):
            continue
        internal = [g for p, g in nodes_map.items() if p.op != "placeholder"]
        if any(g in taken for g in internal):
            continue
        # a value computed inside the match must not be read outside it (it is about to go)
        inside = set(internal)
        if any(u not in inside for g in internal if g is not gn for u in g.users):
            continue
        taken.update(internal)
        matches.append(Match(anchor=gn, nodes_map=nodes_map))
    return matches


def replace_pattern(gm: GraphModule, pattern: Union[Callable, Graph],
                    replacement: Union[Callable, Graph]) -> List[Match]:
    """Replace each non-overlapping match of ``pattern`` in ``gm.graph`` with ``replacement`` (both
    traced with ``symbolic_trace``); ``gm`` is recompiled. Returns the matches.

    >>> def pattern(x, w): return tapegrad.relu(tapegrad.matmul(x, w))
    >>> def replacement(x, w): return tapegrad.nn.functional.gelu(tapegrad.matmul(x, w))
    >>> replace_pattern(gm, pattern, replacement)
    """
    pattern_graph = pattern if isinstance(pattern, Graph) else symbolic_trace(pattern).graph
    if isinstance(replacement, Graph):
        replacement_gm = GraphModule(Module(), replacement) if all(
            n.op not in ("get_attr", "call_module") for n in replacement.nodes) else None
        replacement_graph, replacement_root = replacement, replacement_gm
    else:
        replacement_gm = symbolic_trace(replacement)
        replacement_graph, replacement_root = replacement_gm.graph, replacement_gm
    pattern_placeholders = [n for n in pattern_graph.nodes if n.op == "placeholder"]
    replacement_placeholders = [n for n in replacement_graph.nodes if n.op == "placeholder"]
    if len(pattern_placeholders) != len(replacement_placeholders):
        raise ValueError("replace_pattern: the pattern and the replacement must take the same number of inputs")

    matches = _find_matches(gm.graph, pattern_graph)
    replaced: Dict[Node, Node] = {}  # a matched anchor -> the value now standing for it
    for match in matches:
        # the replacement's own attributes come along
        for node in replacement_graph.nodes:
            if node.op in ("get_attr", "call_module") and not hasattr(gm, node.target.split(".")[0]):
                if replacement_root is None:
                    raise RuntimeError(f"replace_pattern: the replacement graph reads {node.target} but has no module")
                _copy_attr(replacement_root, gm, node.target)
        val_map = {rp: replaced.get(match.nodes_map[pp], match.nodes_map[pp])
                   for rp, pp in zip(replacement_placeholders, pattern_placeholders)}
        # as PyTorch: the replacement goes just before the first user of the matched value (else
        # just after it)
        users = match.anchor.users
        insert_point = next((n for n in gm.graph.nodes if n in users), None) or match.anchor.next
        with gm.graph.inserting_before(insert_point):
            copied = gm.graph.graph_copy(replacement_graph, val_map)
        match.anchor.replace_all_uses_with(copied)
        replaced[match.anchor] = copied
        # erase the matched nodes, users before what they read
        for node in reversed(list(gm.graph.nodes)):
            if node in match.nodes_map.values() and node.op != "placeholder" and not node.users and \
                    any(p.op != "placeholder" and g is node for p, g in match.nodes_map.items()):
                gm.graph.erase_node(node)
    gm.recompile()
    return matches
