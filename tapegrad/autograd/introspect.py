"""Tape introspection (the heritage's ``net.dump()``): the recorded graph behind a tensor,
as text or as Graphviz DOT."""
from __future__ import annotations

import os

from .._tape.node import Node


def _graph(roots):
    """The nodes reachable from ``roots`` (iterative walk), each once."""
    seen, stack = {}, list(roots)
    while stack:
        for e in stack.pop().edges:
            if isinstance(e, Node) and e not in seen:
                seen[e] = True
                stack.append(e)
    return seen


def _nodes(t):
    """Nodes behind ``t`` in execution (recording) order."""
    if t.grad_fn is None:
        return []
    root = t.grad_fn
    return sorted({root: True, **_graph([root])}, key=lambda n: n.seq)


def _saved_bytes(n: Node) -> int:
    total = 0 if n.out_data is None else n.out_data.nbytes
    for s in n.saved or ():
        if s is not None:
            total += s._data.nbytes
    return total


def _fmt_meta(shape, dtype):
    return f"{dtype}{list(shape)}"


def dump(t, file=None) -> str:
    """Print (and return) one line per recorded node behind ``t``, in execution order:
    op, input and output shapes/dtypes, bytes saved for backward, and where it was created."""
    nodes = _nodes(t)
    ids = {n: i for i, n in enumerate(nodes)}
    lines = []
    for n in nodes:
        ins = []
        for (shape, dtype), e in zip(n.meta, n.edges):
            src = f"#{ids[e]}" if isinstance(e, Node) and e in ids else ("leaf" if e is not None else "const")
            ins.append(f"{_fmt_meta(shape, dtype)}<-{src}")
        fname, line = n.where
        state = " (freed)" if n.released else ""
        lines.append(f"#{ids[n]:<3} {n.op.name:<14} ({', '.join(ins)}) -> {_fmt_meta(*n.out_meta)} "
                     f"saved={_saved_bytes(n)}B{state} "
                     f"at {os.path.basename(fname)}:{line}")
    text = "\n".join(lines) if lines else "(no recorded graph: the tensor is a leaf)"
    print(text, file=file)
    return text


def to_dot(t) -> str:
    """The graph behind ``t`` as Graphviz DOT text (render with ``dot -Tpng``)."""
    nodes = _nodes(t)
    ids = {n: i for i, n in enumerate(nodes)}
    out = ["digraph tape {", "  rankdir=BT;", "  node [shape=box, fontname=monospace];"]
    leaves = {}
    for n in nodes:
        out.append(f'  n{ids[n]} [label="{n.op.name}\\n{_saved_bytes(n)} B saved"];')
        for (shape, dtype), e in zip(n.meta, n.edges):
            if isinstance(e, Node) and e in ids:
                out.append(f'  n{ids[e]} -> n{ids[n]} [label="{_fmt_meta(shape, dtype)}"];')
            elif e is not None:
                lid = leaves.setdefault(id(e), f"leaf{len(leaves)}")
                out.append(f'  {lid} [shape=ellipse, label="leaf {_fmt_meta(shape, dtype)}"];')
                out.append(f"  {lid} -> n{ids[n]};")
    out.append("}")
    return "\n".join(out)
