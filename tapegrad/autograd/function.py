"""Custom differentiable functions, written as PyTorch users write them.

>>> class Exp(tapegrad.autograd.Function):
...     @staticmethod
...     def forward(ctx, x):
...         y = x.exp()
...         ctx.save_for_backward(y)
...         return y
...
...     @staticmethod
...     def backward(ctx, grad):
...         (y,) = ctx.saved_tensors
...         return grad * y
>>> x = tapegrad.tensor([0.0, 1.0], requires_grad=True)
>>> Exp.apply(x).sum().backward()

``apply`` runs ``forward`` with recording off and records one node on the same tape as the
built-in ops. Its op has one VJP per tensor argument; they share one call of the user's
``backward`` per incoming gradient. The context rides on the node as its ``aux``, so the
engine frees it (and what it saved) with the rest of the graph unless ``retain_graph``.
With ``create_graph=True`` the user's ``backward`` is itself recorded, if it is written in
tapegrad ops.
"""
from __future__ import annotations

import functools

import numpy as np

from .. import _dtype
from .._tape import grad_mode
from ..tensor import Tensor
from .._tape.registry import Op

__all__ = ["Function", "FunctionCtx", "once_differentiable"]


class FunctionCtx:
    """The ``ctx`` given to ``forward`` and ``backward``."""

    def __init__(self, needs_input_grad):
        self.needs_input_grad = needs_input_grad
        self._saved = ()
        self._versions = ()
        self._non_differentiable = set()
        self.materialize_grads = True
        self._cache = None  # (grad outputs, grads of the inputs) of the running backward
        self._out_slots = {}  # saved position -> output index, for saved outputs
        self._override = None  # saved position -> the recorded output (double backward)
        self._out_nodes = ()  # each output's node (None for one that got none)

    def save_for_backward(self, *tensors):
        """Keep tensors (inputs or outputs) for ``backward``; they are checked for in-place changes."""
        self._saved = tensors
        self._versions = tuple(None if t is None else t._version for t in tensors)

    @property
    def saved_tensors(self):
        """The tensors ``save_for_backward`` kept; raises if one was modified in place since."""
        for t, v in zip(self._saved, self._versions):
            if t is not None and t._version != v:
                raise RuntimeError(
                    f"one of the tensors saved by {self._name}.forward has been modified by an in-place "
                    f"operation: it is at version {t._version}, expected version {v}.")
        if self._override:
            return tuple(self._override.get(k, t) for k, t in enumerate(self._saved))
        return self._saved

    def mark_non_differentiable(self, *tensors):
        """Mark outputs that get no gradient (e.g. indices): they do not require grad."""
        self._non_differentiable.update(id(t) for t in tensors)

    def set_materialize_grads(self, value: bool):
        """With False, ``backward`` receives None (not zeros) for outputs that got no gradient."""
        self.materialize_grads = bool(value)


class Function:
    """Subclass with ``@staticmethod forward(ctx, *args)`` and ``backward(ctx, *grads)``,
    then call ``MyFunction.apply(*args)``. ``backward`` returns one gradient per argument
    of ``forward`` (None for non-tensors or inputs that need none)."""

    @staticmethod
    def forward(ctx, *args, **kwargs):
        """The computation: ``forward(ctx, *args)`` runs with recording off and returns the output(s)."""
        raise NotImplementedError("a Function subclass must define forward(ctx, *args)")

    @staticmethod
    def backward(ctx, *grads):
        """``backward(ctx, *grads)``: one gradient per output in, one per ``forward`` argument out
        (None where there is none)."""
        raise NotImplementedError("a Function subclass must define backward(ctx, *grads)")

    @staticmethod
    def setup_context(ctx, inputs, output):
        """PyTorch 2's split form: a subclass that defines ``setup_context(ctx, inputs, output)``
        writes ``forward(*args)`` without ``ctx``; ``apply`` calls ``setup_context`` right after
        it with the arguments (a tuple) and what ``forward`` returned."""
        raise NotImplementedError("setup_context is not implemented.")

    @classmethod
    def apply(cls, *args, **kwargs):
        """Run the function on ``args`` and record one node for backward: how a ``Function`` is called.

        >>> y = Exp.apply(x)
        """
        positions = [i for i, a in enumerate(args) if isinstance(a, Tensor)]
        tensors = tuple(args[i] for i in positions)
        needs = tuple(isinstance(a, Tensor) and a._requires_grad for a in args)
        ctx = FunctionCtx(needs)
        ctx._name = cls.__name__
        with grad_mode.no_grad():
            if cls.setup_context is not Function.setup_context:
                raw = cls.forward(*args, **kwargs)
                cls.setup_context(ctx, args, raw)
            else:
                raw = cls.forward(ctx, *args, **kwargs)
        single = not isinstance(raw, (tuple, list))
        outs = (raw,) if single else tuple(raw)
        record = grad_mode.is_grad_enabled() and any(needs)
        ctx._out_slots = {k: j for k, t in enumerate(ctx._saved) for j, o in enumerate(outs) if t is o}
        results = []
        nodes = [None] * len(outs)
        for j, o in enumerate(outs):
            if not isinstance(o, Tensor):
                results.append(o)
                continue
            r = Tensor._wrap(o._data)  # a new tensor: forward may return an input as is
            r._version_box = o._version_box
            if record and _dtype.kind_of(o._data.dtype) == "f" and id(o) not in ctx._non_differentiable:
                op = _function_op(cls, positions, len(outs), j)
                r._requires_grad = True
                # where: the user's frame
                r.grad_fn = nodes[j] = op.node_type(op, tensors, {}, o._data, r._version_box, ctx)
            results.append(r)
        if any(m != j for j in range(len(outs)) for m in ctx._out_slots.values()):
            # another output's node for a saved output (double backward): a cycle through ctx, the
            # nodes' aux, which the engine breaks when it frees the graph (the gc otherwise)
            ctx._out_nodes = nodes
        ctx._outputs = tuple((o._data.shape, o._data.dtype) if isinstance(o, Tensor) else None for o in outs)
        return results[0] if single else tuple(results)


def once_differentiable(backward):
    """Decorate a ``Function``'s ``backward`` that is not written in differentiable ops (numpy, a
    kernel): it runs with recording off, so ``create_graph=True`` gives gradients that don't
    require grad, and differentiating them again raises instead of silently giving zero.

    >>> @staticmethod
    ... @once_differentiable
    ... def backward(ctx, grad):
    ...     return grad * 2
    """
    @functools.wraps(backward)
    def wrapper(ctx, *grads):
        with grad_mode.no_grad():
            return backward(ctx, *grads)
    return wrapper


def _function_op(cls, positions, n_outputs, j):
    """The op of output ``j`` of ``cls``: one VJP per tensor argument, sharing one backward call."""
    n = len(positions)

    def make_vjp(k):
        def vjp(g, out, *inputs, aux):
            return _run_backward(cls, aux, positions, n_outputs, j, g, out)[k]
        return vjp

    name = cls.__name__ if n_outputs == 1 else f"{cls.__name__}[{j}]"
    return Op(name, None, [make_vjp(k) for k in range(n)], saves=(),
              saves_output=True, view=False, aux=True)


def _recorded(ctx, k, m):
    """Saved tensor ``k``, output ``m`` of the function, as recorded (on output ``m``'s node), so
    that a double backward differentiates through it (MyCube's saved ``dx``)."""
    saved, node = ctx._saved[k], ctx._out_nodes[m] if ctx._out_nodes else None
    if node is None:
        return saved
    t = Tensor._wrap(saved._data)
    t.grad_fn, t._requires_grad = node, True
    return t


def _run_backward(cls, ctx, positions, n_outputs, j, g, out):
    """The user's backward for gradient ``g`` of output ``j`` (once per ``g``: cached on ctx)."""
    if ctx._cache is not None and ctx._cache[0] is g:
        return ctx._cache[1]
    if grad_mode.is_grad_enabled():  # create_graph: a saved output is its recorded output
        ctx._override = {k: out if m == j else _recorded(ctx, k, m) for k, m in ctx._out_slots.items()}
    grads_out = []
    for m in range(n_outputs):
        if m == j:
            grads_out.append(g)
        elif ctx.materialize_grads and ctx._outputs[m] is not None:
            shape, dtype = ctx._outputs[m]
            grads_out.append(Tensor._wrap(np.zeros(shape, dtype)))
        else:
            grads_out.append(None)
    try:
        res = cls.backward(ctx, *grads_out)
    finally:
        ctx._override = None
    res = res if isinstance(res, (tuple, list)) else (res,)
    n_args = len(ctx.needs_input_grad)
    if len(res) != n_args:
        raise RuntimeError(f"function {cls.__name__}.backward returned an incorrect number of gradients "
                           f"(expected {n_args}, got {len(res)})")
    grads = []
    for i in positions:
        gi = res[i]
        if gi is not None and not isinstance(gi, Tensor):
            gi = Tensor._wrap(np.asarray(gi))
        grads.append(gi if ctx.needs_input_grad[i] else None)
    ctx._cache = (g, grads)  # released with the node (ctx is its aux) after this backward
    return grads

