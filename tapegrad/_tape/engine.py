"""The backward pass: reverse topological order over the tape, no recursion.

1. Walk the graph from the roots iteratively and count, for every node, how many edges
   point at it (its consumers still to report).
2. Start from the roots with their upstream gradients; a node runs once all its
   consumers have reported (Kahn's algorithm). It calls one VJP per input that needs a
   gradient, reduces broadcast dimensions, and passes the result along the edge: to the
   producing node (summed with other consumers' contributions) or to a leaf.
3. Saved tensors are dropped as each node finishes unless ``retain_graph``.
"""
from __future__ import annotations

import sys
from sys import getrefcount

import numpy as np

from . import grad_mode
from .node import Meta, Node

_FREED_MSG = (
    "Trying to backward through the graph a second time (or to use saved tensors after they were "
    "freed). Saved intermediate values are freed when you call .backward() or autograd.grad(); "
    "specify retain_graph=True on the first call if you need to backward through the graph again."
)


def _check_versions(node: Node):
    """Refuse to use saved inputs that were modified in place after they were recorded."""
    for t, v in zip(node.saved, node.versions):
        if t is not None and t._version[0] != v:
            raise RuntimeError(
                f"one of the tensors needed for the gradient of {node.op.name} (shape {tuple(t.shape)}) "
                f"has been modified by an in-place operation: it is at version {t._version[0]}, "
                f"expected version {v}. Don't modify it in place, or clone() it first.")


def _saved_output_changed(node: Node):
    box, v = node.out_version
    raise RuntimeError(
        f"the output of {node.op.name} (needed for its gradient) has been modified by an "
        f"in-place operation: it is at version {box[0]}, expected version {v}. "
        f"Use an out-of-place op, or clone() the output first.")


def _saved_output(node: Node, create_graph: bool):
    box, v = node.out_version
    if box[0] != v:
        _saved_output_changed(node)
    out = Tensor._wrap(node.out_data)
    if create_graph:  # the output is a function of the inputs through this very node
        out._requires_grad = True
        out.grad_fn = node
    return out


_META: dict = {}  # (shape, dtype) -> Meta: stand-ins are immutable, so they are shared


def _new_meta(m):
    if len(_META) > 4096:
        _META.clear()
    s = _META[m] = Meta(*m)
    return s


def _graph(roots):
    """Consumer counts of every node reachable from ``roots`` (iterative DFS).

    A node is pushed the first time an edge reaches it (its count appears), so the counts
    double as the visited set; roots are pushed up front and never again.
    """
    deps: dict[Node, int] = {}
    stack = list(roots)
    roots = set(roots) if len(stack) > 1 else ()  # one root: no edge can reach it
    get = deps.get
    while stack:
        for e in stack.pop().edges:
            if isinstance(e, Node):
                n = get(e)
                if n is None:
                    deps[e] = 1
                    if e not in roots:
                        stack.append(e)
                else:
                    deps[e] = n + 1
    return deps


def _nan_gradient(node: Node, i: int, g):
    """Anomaly mode: refuse a gradient with NaNs, naming the op and where it was recorded."""
    d = g._data
    if d.dtype.kind in "fc" and np.isnan(d).any():
        fname, line = node.where
        raise RuntimeError(f"Function '{node.name()}' returned nan values in its {i}th output "
                           f"(the {node.op.name} was recorded at {fname}:{line}).")


def _accumulate(store: dict, key, g):
    prev = store.get(key)
    store[key] = g if prev is None else prev + g


def _arrive(node: Node, g, nonleaf_wanted, captured):
    """A non-leaf tensor's gradient is complete: run its hooks, retain or capture it."""
    if node.pre_hooks:
        for hook in tuple(node.pre_hooks.values()):
            r = hook(g)
            if r is not None:
                g = r
    if node.retained is not None:
        t = node.retained()
        if t is not None:
            t.grad = g if t.grad is None else t.grad + g
    if nonleaf_wanted and node in nonleaf_wanted:
        for t in nonleaf_wanted[node]:
            captured[id(t)] = g
    return g


def run_backward(outputs, grad_outputs, retain_graph: bool, create_graph: bool,
                 inputs=None, allow_unused: bool = False):
    """Backpropagate ``grad_outputs`` from ``outputs``.

    With ``inputs=None`` gradients accumulate into the ``.grad`` of leaves (``Tensor.backward``);
    otherwise the gradients w.r.t. ``inputs`` are returned and no ``.grad`` is touched
    (``autograd.grad``).
    """
    found = _backward_pass(outputs, grad_outputs, retain_graph, create_graph, inputs)
    if inputs is None:
        return None
    leaf_grads, captured = found
    result = []
    for t in inputs:
        g = leaf_grads.get(id(t)) if t.grad_fn is None else captured.get(id(t))
        if g is None and not allow_unused:
            raise RuntimeError(
                "One of the differentiated tensors appears to not have been used in the graph "
                f"(shape {tuple(t.shape)}). Set allow_unused=True if this is the desired behavior.")
        result.append(g)
    return tuple(result)


def _backward_pass(outputs, grad_outputs, retain_graph, create_graph, inputs):
    """The pass itself: None, or with ``inputs`` the gradients found, as
    ``({id(leaf): grad}, {id(non-leaf input): grad})``. Runs in C++ unless TAPEGRAD_PURE_PYTHON=1
    (csrc/tape.cpp translates this function line for line)."""
    pending: dict = {}  # Node -> summed upstream gradient
    leaf_grads: dict = {}  # id(leaf) -> gradient (autograd.grad only)
    wanted = captured = None
    if inputs is not None:
        wanted = {id(t): t for t in inputs}
        captured = {}  # id(non-leaf input) -> its gradient
    roots = []
    for out, g in zip(outputs, grad_outputs):
        if out.grad_fn is None:
            if inputs is not None and id(out) in wanted:
                _accumulate(leaf_grads, id(out), g)
            elif out._requires_grad and inputs is None:
                _to_leaf(out, g, create_graph)
            continue
        if out.grad_fn not in pending:
            roots.append(out.grad_fn)
        _accumulate(pending, out.grad_fn, g)
    nonleaf_wanted = None
    if wanted is not None:
        nonleaf_wanted = {}
        for t in inputs:
            if t.grad_fn is not None:
                nonleaf_wanted.setdefault(t.grad_fn, []).append(t)

    deps = _graph(roots)
    ready = [n for n in roots if n not in deps]
    leaves_get_grad = inputs is None
    check_nan = grad_mode.state.check_nan
    meta_get = _META.get
    prev_mode = grad_mode.state.enabled
    grad_mode.state.enabled = create_graph
    try:
        while ready:
            node = ready.pop()
            g = pending.pop(node)
            if node.pre_hooks is not None or node.retained is not None or nonleaf_wanted:
                g = _arrive(node, g, nonleaf_wanted, captured)
            op = node.op
            if node.released:
                raise RuntimeError(f"{op.name}: {_FREED_MSG}")
            saved = node.saved
            if op.saves:
                for t, v in zip(saved, node.versions):
                    if t is not None and t._version[0] != v:
                        _check_versions(node)  # raises
            if op.partial_saves:  # shape-and-dtype stand-ins for the inputs the op did not keep
                saved = [t if t is not None else (meta_get(m) or _new_meta(m)) for t, m in zip(saved, node.meta)]
            out = None if node.out_version is None else _saved_output(node, create_graph)
            attrs = node.attrs if node.aux is None else {**node.attrs, "aux": node.aux}
            vjps = op.vjps
            metas = node.meta
            to_leaves = None
            for i, e in enumerate(node.edges):
                if e is None:
                    continue
                gi = vjps[i](g, out, *saved, **attrs) if attrs else vjps[i](g, out, *saved)
                if gi is None:
                    continue
                if check_nan:
                    _nan_gradient(node, i, gi)
                shape, dtype = metas[i]
                d = gi._data
                if d.shape != shape:  # reduce broadcast dims, once for every op
                    gi = gi.sum_to_size(shape)
                if d.dtype is not dtype and d.dtype != dtype:
                    gi = gi.to(dtype)
                if isinstance(e, Node):
                    prev = pending.get(e)
                    pending[e] = gi if prev is None else prev + gi
                    left = deps[e] - 1
                    deps[e] = left
                    if not left:
                        ready.append(e)
                elif leaves_get_grad:
                    if to_leaves is None:
                        to_leaves = []
                    to_leaves.append((e, gi))
                elif id(e) in wanted:
                    if e._hooks:
                        gi = _run_hooks(e, gi)
                    _accumulate(leaf_grads, id(e), gi)
            if not retain_graph and (op.saves or op.saves_output or node.aux is not None):
                node.released = True  # a node that saved nothing can be run again
                node.saved = node.versions = node.out_data = node.aux = None
            if to_leaves is not None:
                # Drop this node's references first: a leaf may then take over a gradient
                # buffer that nothing else holds (see _unshared) instead of copying it.
                g = gi = d = out = saved = None
                while to_leaves:
                    e, gi = to_leaves.pop()
                    _to_leaf(e, gi, create_graph)
                gi = None
    finally:
        grad_mode.state.enabled = prev_mode

    return None if inputs is None else (leaf_grads, captured)


def _run_hooks(t, g):
    for hook in t._hooks.values():
        r = hook(g)
        if r is not None:
            g = r
    return g


# The reference counts below were verified on CPython 3.11-3.13; newer interpreters may pass
# locals as borrowed references (fewer counts), so there every leaf gradient is copied.
_COUNTS_VERIFIED = sys.implementation.name == "cpython" and sys.version_info < (3, 14)


def _unshared(g) -> bool:
    """Whether ``g`` can become a leaf's ``.grad`` as is: nothing else can see it or its memory.

    Counted as expected when called from the engine through ``_to_leaf``: the tensor is held
    by the engine's local, ``_to_leaf``'s and this function's parameters and ``getrefcount``'s
    argument (4); its array by the tensor's slot, the local ``d`` and the argument (3). A
    reshape or transpose of a temporary that nothing else holds (its base held by the view,
    the local ``base`` and the argument: 3) is owned too. A gradient that is also an upstream
    gradient, a retained ``.grad``, a hook's capture or a view of part of an array is copied
    instead, as PyTorch's AccumulateGrad steals only unshared buffers. Any holder more than
    expected means a copy, so a miscount can only cost speed, never alias a ``.grad``.
    """
    d = g._data
    if (not _COUNTS_VERIFIED or g.grad_fn is not None or not d.flags.writeable or not d.flags.c_contiguous
            or getrefcount(g) > 4 or getrefcount(d) > 3):
        return False
    base = d.base
    return base is None or (type(base) is np.ndarray and base.size == d.size and getrefcount(base) <= 3)


def _to_leaf(t, g, create_graph):
    """Accumulate into a leaf's ``.grad`` (a fresh tensor the first time: never an alias)."""
    if t._hooks:
        g = _run_hooks(t, g)
    if t.grad is None:
        t.grad = g if create_graph or _unshared(g) else Tensor._wrap(g._data.copy())
    elif create_graph:
        t.grad = t.grad + g
    else:  # in place, as PyTorch: references to .grad and its memory stay valid
        d = t.grad._data
        if d.size == 1:  # numpy's in-place ufuncs take a slow path on one element: 0.79 us vs 0.45 us
            d[...] = d + g._data
        else:
            d += g._data
        t.grad._version[0] += 1


from ..tensor import Tensor  # noqa: E402
from .. import _C, _native_tape  # noqa: E402

if _native_tape:  # the same pass in C++ (csrc/tape.cpp)
    for _name, _obj in (("arrive", _arrive), ("check_versions", _check_versions),
                        ("saved_output_changed", _saved_output_changed), ("new_meta", _new_meta),
                        ("meta_cache", _META), ("to_leaf", _to_leaf), ("run_hooks", _run_hooks),
                        ("freed_msg", _FREED_MSG), ("nan_gradient", _nan_gradient)):
        _C.tape_register(_name, _obj)
    _backward_pass = _C.run_backward  # noqa: F811
