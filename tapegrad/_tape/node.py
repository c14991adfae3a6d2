"""A node of the tape: one recorded op application (its fields are C++'s, ``_C.Node``).

A node keeps what its VJPs need (the inputs named by the op's ``saves``, the output when
``saves_output``), the version of each saved tensor at record time, and its edges: per
input, the producing node (non-leaf), the leaf tensor itself (a leaf that requires grad),
or None (no gradient flows there). Edges are a tuple, fixed when the node is recorded. A
node never references its own output tensor, so there are no reference cycles between
tensors and the tape.
"""
from __future__ import annotations

import itertools
import weakref
from typing import NamedTuple, Optional

from .. import _C

Meta = _C.Meta  # stands in for an input the op did not save: its VJPs may still read shape and dtype
next_seq = _C._next_sequence_nr  # the seq of the next node recorded (and skips it): nodes after it have a larger one
# module_scope(module) -> previous: the nn.Module whose forward runs in this thread; nodes recorded
# meanwhile keep a weak reference to it as the third item of their ``where``
module_scope = _C._module_scope


_handle_ids = itertools.count()  # next() is atomic under the GIL: handles from several threads never collide


class RemovableHandle:
    """What ``register_hook`` returns: ``handle.remove()`` (or a ``with`` block) removes the hook."""

    def __init__(self, store, *, extra_dict=None):
        # extra_dict: dicts (one or a list) that also key something by this handle's id, removed
        # with it (PyTorch's signature; libraries build handles for their own hook dicts)
        self._store = store
        self._extra = () if extra_dict is None else tuple(extra_dict) if isinstance(extra_dict, list) else (extra_dict,)
        self.id = next(_handle_ids)

    def remove(self):
        """Remove the hook (again: nothing happens)."""
        self._store.pop(self.id, None)
        for d in self._extra:
            d.pop(self.id, None)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.remove()


_METADATA = weakref.WeakKeyDictionary()  # node -> its metadata dict, made on first use


def _one_tuple_prehook(fn, owner):
    """A pre-hook ``fn(grad_outputs)`` (a one-tuple in, None or a one-tuple out) as the tensor hook
    ``hook(grad)`` that runs it (Node's and AccumulateGrad's ``register_prehook``)."""
    name = getattr(fn, "__name__", repr(fn))

    def hook(grad):
        out = fn((grad,))
        if out is None:
            return None
        if not isinstance(out, tuple) or len(out) != 1:
            raise RuntimeError(f"hook '{name}' of {owner}.register_prehook returned {type(out).__name__}: "
                               "expected None or a tuple of one gradient (the node has one output)")
        return out[0]

    hook.node_prehook = True  # a node that is only captured (autograd.grad of its output) skips it
    return hook


class Node(_C.Node):
    __slots__ = ()

    def register_prehook(self, fn):
        """Call ``fn(grad_outputs)`` before this node runs its VJPs in a backward pass, with the
        gradient of its output as a one-tuple; it may return a one-tuple to use instead (or None).
        Runs with the hooks of the tensor the node made, in the order they were registered.
        Returns a handle whose ``remove()`` removes it.

        >>> y = x * 2
        >>> h = y.grad_fn.register_prehook(lambda grads: (grads[0] * 10,))
        """
        hook = _one_tuple_prehook(fn, self.name())
        if self.pre_hooks is None:
            self.pre_hooks = {}
        h = RemovableHandle(self.pre_hooks)
        self.pre_hooks[h.id] = hook
        return h

    def register_hook(self, fn):
        """Call ``fn(grad_inputs, grad_outputs)`` after this node computed the gradients of its
        inputs in a backward pass: ``grad_inputs`` has one entry per input of the op (None where
        no gradient flows), ``grad_outputs`` is the one-tuple of the gradient that reached the
        node. ``fn`` may return a tuple of the same length to pass on instead (or None). Hooks run
        in the order they were registered, each seeing the previous one's result. Returns a handle
        whose ``remove()`` removes it.

        >>> y = x * 2
        >>> h = y.grad_fn.register_hook(lambda grad_inputs, grad_outputs: (grad_inputs[0] * 10, None))
        """
        if not callable(fn):
            raise TypeError(f"{self.name()}.register_hook: expected a callable, got {type(fn).__name__}")
        if self.post_hooks is None:
            self.post_hooks = {}
        h = RemovableHandle(self.post_hooks)
        self.post_hooks[h.id] = fn
        return h

    @property
    def metadata(self) -> dict:
        """A dict for the caller's own notes about this node (empty at first), as PyTorch's."""
        return _METADATA.setdefault(self, {})

    @property
    def next_functions(self):
        """As PyTorch's: one ``(node, 0)`` pair per input: the producing node, an
        ``AccumulateGrad`` for a leaf that requires grad, ``None`` where no gradient flows."""
        return tuple((e if e is None or isinstance(e, _C.Node) else AccumulateGrad(e), 0) for e in self.edges)

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
        # setdefault: two threads making the same op's class at once keep one of them
        cls = _NODE_TYPES.setdefault(op_name, type(name, (Node,), {"__slots__": (), "__module__": __name__}))
    return cls


class AccumulateGrad:
    """What ``next_functions`` shows for a leaf: its ``.variable`` receives the gradient."""

    __slots__ = {"variable": "The leaf tensor whose ``.grad`` receives the gradient."}
    next_functions = ()

    def __init__(self, variable):
        self.variable = variable

    def name(self) -> str:
        """PyTorch's name of the node: ``torch::autograd::AccumulateGrad``."""
        return "torch::autograd::AccumulateGrad"

    def register_prehook(self, fn):
        """``fn(grad_outputs)`` before the gradient is accumulated into ``variable.grad``, with it as
        a one-tuple; it may return a one-tuple to accumulate instead. The leaf's own tensor hook."""
        return self.variable.register_hook(_one_tuple_prehook(fn, "AccumulateGrad"))

    def register_hook(self, fn):
        """``fn((), (grad,))`` after the gradient was accumulated, ``grad`` being ``variable.grad``
        (PyTorch passes the incoming gradient, which differs from it when gradients accumulate over
        several backward passes); its result is ignored. This is the hook data-parallel libraries
        put on each parameter (Horovod, Apex): here it lives on the tensor, so it keeps working
        after the ``AccumulateGrad`` object is dropped (PyTorch's goes with the object unless the
        caller keeps it alive)."""
        return self.variable.register_post_accumulate_grad_hook(lambda t: fn((), (t.grad,)))

    def __eq__(self, other):
        return type(other) is AccumulateGrad and other.variable is self.variable

    def __hash__(self):
        return id(self.variable)

    def __repr__(self):
        return "<AccumulateGrad>"


class GradientEdge(NamedTuple):
    """Where a tensor's gradient is computed in the graph: its ``node`` (the tensor's ``grad_fn``,
    or an :class:`AccumulateGrad` for a leaf) and ``output_nr`` (always 0: a tapegrad node has one
    output). ``autograd.grad(loss, get_gradient_edge(x))`` gives what ``autograd.grad(loss, x)``
    gives, and needs only the edge, not the tensor; ``ownership_token`` is PyTorch's (a node that
    keeps a Python-defined graph alive), None here: a tapegrad node keeps its graph alive itself.

    >>> y = x.exp()
    >>> edge = tapegrad.autograd.graph.get_gradient_edge(y)
    >>> tapegrad.autograd.grad(y.sum(), edge)        # the gradient at y: ones
    """

    node: object
    output_nr: int
    ownership_token: Optional[object] = None


GradientEdge.__module__ = "tapegrad.autograd.graph"  # its public home (it sits here, below the engine)


def edge_target(edge, opname: str):
    """What the engine takes for a GradientEdge: the leaf tensor of an AccumulateGrad edge, else the Node."""
    node = edge.node
    if isinstance(node, AccumulateGrad):
        return node.variable
    if not isinstance(node, _C.Node):
        raise TypeError(f"{opname}: a GradientEdge's node must be a Node or an AccumulateGrad, got "
                        f"{type(node).__name__}")
    if edge.output_nr != 0:
        raise RuntimeError(f"{opname}: GradientEdge output_nr {edge.output_nr} is out of range: a tapegrad node "
                           f"has one output (output_nr 0)")
    return node
