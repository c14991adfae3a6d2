"""The tape's backward pass written the textbook way, as an oracle for the C++ engine.

It reads the nodes the engine recorded (so it must run before the graph is freed, or on a
graph kept with ``retain_graph=True``) and differentiates them the slow, obvious way: order
the nodes topologically by an iterative depth-first walk, then visit them from the output
back, call one VJP per edge, reduce broadcast dimensions, cast to the input's dtype, and sum
what arrives at each node and each leaf. No hooks, no freeing, no in-place accumulation.
"""
from __future__ import annotations

import numpy as np

import tapegrad as tg
from tapegrad._tape.node import Meta, Node
from tapegrad._tape.registry import SliceGrad


def topological_order(root: Node) -> list:
    """Every node reachable from ``root``, each after all the nodes that consume it."""
    order, seen, stack = [], set(), [(root, False)]
    while stack:
        node, expanded = stack.pop()
        if expanded:  # all its inputs' nodes are finished: post-order
            order.append(node)
            continue
        if node in seen:
            continue
        seen.add(node)
        stack.append((node, True))
        stack.extend((e, False) for e in node.edges if isinstance(e, Node) and e not in seen)
    return order[::-1]  # reverse post-order: consumers first


def _vjp_inputs(node: Node):
    saved = [t if t is not None else Meta(*m) for t, m in zip(node.saved, node.meta)]
    out = tg.Tensor._wrap(node.out_data) if node.out_version is not None else None
    attrs = dict(node.attrs)
    if node.aux is not None:
        attrs["aux"] = node.aux
    return out, saved, attrs


def gradients(output: tg.Tensor, leaves) -> list:
    """d(output)/d(leaf) for each leaf (None where it does not depend on it)."""
    if node_of(output) is None:
        raise ValueError("the output has no recorded graph")
    pending = {output.grad_fn: tg.Tensor._wrap(np.ones(output.shape, output.dtype))}
    found: dict = {}  # id(leaf) -> summed gradient
    with tg.no_grad():
        for node in topological_order(output.grad_fn):
            g = pending.pop(node, None)
            if g is None:
                continue
            assert not node.released, "the reference needs the graph (run it first, or retain_graph=True)"
            out, saved, attrs = _vjp_inputs(node)
            for i, e in enumerate(node.edges):
                if e is None:
                    continue
                gi = node.op.vjps[i](g, out, *saved, **attrs)
                if gi is None:
                    continue
                shape, dtype = node.meta[i]
                if isinstance(gi, SliceGrad):  # (index, piece): the piece at index of zeros
                    index, piece = gi
                    full = np.zeros(shape, dtype)
                    full[index] = piece.numpy()
                    gi = tg.Tensor._wrap(full)
                if gi.shape != shape:
                    gi = gi.sum_to_size(shape)
                if gi.dtype != dtype:
                    gi = gi.to(dtype)
                store, key = (pending, e) if isinstance(e, Node) else (found, id(e))
                store[key] = gi if key not in store else store[key] + gi
    return [found.get(id(t)) for t in leaves]


def node_of(t):
    return t.grad_fn
