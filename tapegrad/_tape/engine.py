"""The backward pass's Python face: argument checks, error wording and hook handles.

The pass itself is C++ (``_C.run_backward``, csrc/tape.cpp, which opens with a description of
the algorithm): it walks the tape in reverse topological order without recursion, calls each
node's VJPs, reduces broadcast dimensions once for every op, runs each tensor's hooks once on
its summed gradient, and accumulates into ``.grad`` under the tensor's lock. The public names
(``backward``, ``grad``, ...) are re-exported by ``tapegrad.autograd``.
"""
from __future__ import annotations

import itertools
import weakref

import numpy as np

from .. import _C

_wrap = _C._wrap  # a tapegrad.Tensor leaf around an array
_run_backward = _C.run_backward


def _as_seq(x):
    return tuple(x) if isinstance(x, (tuple, list)) else (x,)


def _grad_outputs(outputs, grad_outputs, opname):
    grads = [None] * len(outputs) if grad_outputs is None else list(_as_seq(grad_outputs))
    if len(grads) != len(outputs):
        raise RuntimeError(f"{opname}: got {len(grads)} gradients for {len(outputs)} outputs")
    out = []
    for t, g in zip(outputs, grads):
        if not isinstance(t, _C.TensorBase):
            raise TypeError(f"{opname}: outputs must be tensors, got {type(t).__name__}")
        if not t._requires_grad:
            raise RuntimeError(f"{opname}: element of the outputs does not require grad and does not have a "
                               "grad_fn (was it computed under no_grad(), or from tensors that don't require "
                               "grad?)")
        if g is None:
            if t._data.size != 1:
                raise RuntimeError(f"{opname}: grad can be implicitly created only for scalar outputs; the "
                                   f"output has shape {tuple(t._data.shape)}: pass a gradient of that shape")
            g = _wrap(np.ones(t._data.shape, dtype=t._data.dtype))
        elif not isinstance(g, _C.TensorBase):
            g = _wrap(np.asarray(g, dtype=t._data.dtype))
        if g._data.shape != t._data.shape:
            raise RuntimeError(f"{opname}: mismatch in shape: grad_output has shape {tuple(g._data.shape)} and "
                               f"output has shape {tuple(t._data.shape)}")
        out.append(g)
    return out


def backward(tensors, grad_tensors=None, retain_graph=None, create_graph=False, inputs=None):
    """Accumulate gradients of ``tensors`` into the ``.grad`` of the leaves they depend on
    (only into ``inputs``' when given)."""
    if retain_graph is None:
        retain_graph = create_graph
    if (grad_tensors is None and inputs is None and isinstance(tensors, _C.TensorBase)
            and tensors.grad_fn is not None and tensors._data.size == 1):  # the usual loss.backward()
        _run_backward((tensors,), (None,), retain_graph, create_graph)  # None: the engine makes the ones
        return
    outputs = _as_seq(tensors)
    grads = _grad_outputs(outputs, grad_tensors, "backward")
    _run_backward(outputs, grads, retain_graph, create_graph, None if inputs is None else _as_seq(inputs), True)


def grad(outputs, inputs, grad_outputs=None, retain_graph=None, create_graph=False, allow_unused=False,
         materialize_grads=False):
    """The gradients of ``outputs`` w.r.t. ``inputs``, returned as a tuple; no ``.grad`` is touched.

    >>> x = tapegrad.tensor(3.0, requires_grad=True)
    >>> (g,) = tapegrad.autograd.grad(x ** 3, x, create_graph=True)   # 27
    >>> tapegrad.autograd.grad(g, x)                                  # (18,)
    """
    outputs = _as_seq(outputs)
    inputs = _as_seq(inputs)
    for t in inputs:
        if not isinstance(t, _C.TensorBase) or not t._requires_grad:
            raise RuntimeError("grad: one of the differentiated tensors does not require grad")
    grads = _grad_outputs(outputs, grad_outputs, "grad")
    if retain_graph is None:
        retain_graph = create_graph
    res = _run_backward(outputs, grads, retain_graph, create_graph, inputs, False)
    if not (allow_unused or materialize_grads):
        for t, g in zip(inputs, res):
            if g is None:
                raise RuntimeError(
                    "One of the differentiated tensors appears to not have been used in the graph "
                    f"(shape {tuple(t._data.shape)}). Set allow_unused=True if this is the desired behavior.")
    if materialize_grads:
        res = tuple(_wrap(np.zeros(t._data.shape, t._data.dtype)) if g is None else g for t, g in zip(inputs, res))
    return res


def retain_grad(t) -> None:
    """Keep ``.grad`` on a non-leaf tensor after backward (its summed gradient, once per pass)."""
    if not t._requires_grad:
        raise RuntimeError("can't retain_grad on Tensor that has requires_grad=False")
    if t.grad_fn is None or t._retains_grad:
        return
    t._retains_grad = True
    t.grad_fn.retained = weakref.ref(t)


_handle_ids = itertools.count()  # next() is atomic under the GIL: handles from several threads never collide


class RemovableHandle:
    """What ``register_hook`` returns: ``handle.remove()`` (or a ``with`` block) removes the hook."""

    def __init__(self, store):
        self._store = store
        self.id = next(_handle_ids)

    def remove(self):
        self._store.pop(self.id, None)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.remove()


def register_hook(t, hook):
    """Call ``hook(grad)`` once per backward pass with the tensor's complete (summed) gradient;
    it may return a replacement of the same shape and dtype."""
    if not t._requires_grad:
        raise RuntimeError("cannot register a hook on a tensor that doesn't require gradient")
    if t.grad_fn is not None:
        if t.grad_fn.pre_hooks is None:
            t.grad_fn.pre_hooks = {}
        store = t.grad_fn.pre_hooks
    else:
        if t._hooks is None:
            t._hooks = {}
        store = t._hooks
    h = RemovableHandle(store)
    store[h.id] = hook
    return h


def register_post_accumulate_grad_hook(t, hook):
    """Call ``hook(t)`` after a backward pass has accumulated into ``t.grad`` (once per pass, on
    leaves only; ``autograd.grad`` does not call it), as PyTorch 2.1's: an optimizer step can
    run there, as soon as the parameter's gradient is ready."""
    if not t._requires_grad:
        raise RuntimeError("cannot register a hook on a tensor that doesn't require gradient")
    if t.grad_fn is not None:
        raise RuntimeError("post accumulate grad hooks cannot be registered on non-leaf tensors")
    if t._post_accumulate_grad_hooks is None:
        t._post_accumulate_grad_hooks = {}
    store = t._post_accumulate_grad_hooks
    h = RemovableHandle(store)
    store[h.id] = hook
    return h
