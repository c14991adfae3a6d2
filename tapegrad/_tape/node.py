"""A node of the tape: one recorded op application.

A node keeps what its VJPs need (the inputs named by the op's ``saves``, the output when
``saves_output``), the version of each saved tensor at record time, and its edges: per
input, the producing node (non-leaf), the leaf tensor itself (a leaf that requires grad),
or None (no gradient flows there). It never references its own output tensor, so there
are no reference cycles between tensors and the tape.
"""
from __future__ import annotations

import itertools

_seq = itertools.count()


class Meta:
    """Stands in for an input the op did not save: its VJPs may still read shape and dtype."""

    __slots__ = ("shape", "dtype")

    def __init__(self, shape, dtype):
        self.shape, self.dtype = shape, dtype

    @property
    def ndim(self) -> int:
        return len(self.shape)


class Node:
    __slots__ = ("op", "attrs", "saved", "versions", "out_data", "out_version", "aux", "edges", "meta", "out_meta", "where",
                 "seq", "released", "pre_hooks", "retained", "__weakref__")

    def __init__(self, op, inputs, attrs, out, out_version, aux, where):
        # One pass over the inputs (this runs for every recorded op: keep it lean).
        if len(inputs) == 1:  # unary ops: no loop, no appends
            t = inputs[0]
            d = t._data
            meta = [(d.shape, d.dtype)]
            versions = [t._version[0]]
            edges = [(t.grad_fn or t) if t._requires_grad else None]
        else:
            edges, meta, versions = [], [], []
            for t in inputs:
                d = t._data
                meta.append((d.shape, d.dtype))
                versions.append(t._version[0])
                edges.append((t.grad_fn or t) if t._requires_grad else None)
        saves = op.saves
        if len(saves) == len(inputs):  # the common cases first: all saved, or none
            saved = inputs
        elif not saves:
            saved = (None,) * len(inputs)
        else:
            saved = tuple(t if i in saves else None for i, t in enumerate(inputs))
        if not op.all_differentiable:
            edges = [e if vjp is not None else None for e, vjp in zip(edges, op.vjps)]
        self.op = op
        self.attrs = attrs
        self.saved = saved
        self.versions = versions
        if op.saves_output:
            self.out_data = out
            # the output's version box and its value now: an in-place change of the output is caught
            self.out_version = (out_version, out_version[0])
        else:
            self.out_data = self.out_version = None
        self.aux = aux
        self.edges = edges
        self.meta = meta
        self.out_meta = (out.shape, out.dtype)
        self.where = where
        self.seq = next(_seq)
        self.released = False
        self.pre_hooks = self.retained = None

    @property
    def next_functions(self):
        """As PyTorch's: one ``(node, 0)`` pair per input: the producing node, an
        ``AccumulateGrad`` for a leaf that requires grad, ``None`` where no gradient flows."""
        return tuple((e if e is None or isinstance(e, Node) else AccumulateGrad(e), 0) for e in self.edges)

    def name(self) -> str:
        """PyTorch-style node name: ``mul`` -> ``MulBackward0`` (also its class's name)."""
        return type(self).__name__

    def __repr__(self):
        return f"<{self.name()}>"


_NODE_TYPES: dict = {}  # op name -> its Node subclass


def node_type(op_name: str) -> type:
    """The Node subclass an op records, named as PyTorch names grad_fn classes, so that
    ``type(y.grad_fn).__name__`` reads ``MulBackward0``; one per op name, made once."""
    cls = _NODE_TYPES.get(op_name)
    if cls is None:
        name = "".join(p[:1].upper() + p[1:] for p in op_name.split("_")) + "Backward0"
        cls = _NODE_TYPES[op_name] = type(name, (Node,), {"__slots__": (), "__module__": __name__})
    return cls


class AccumulateGrad:
    """What ``next_functions`` shows for a leaf: its ``.variable`` receives the gradient."""

    __slots__ = ("variable",)
    next_functions = ()

    def __init__(self, variable):
        self.variable = variable

    def name(self) -> str:
        return "torch::autograd::AccumulateGrad"

    def __eq__(self, other):
        return type(other) is AccumulateGrad and other.variable is self.variable

    def __hash__(self):
        return id(self.variable)

    def __repr__(self):
        return "<AccumulateGrad>"
