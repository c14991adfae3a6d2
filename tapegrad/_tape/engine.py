"""The backward pass's Python face: argument checks, error wording and hook handles.

The pass itself is C++ (``_C.run_backward``, csrc/tape.cpp, which opens with a description of
the algorithm): it walks the tape in reverse topological order without recursion, calls each
node's VJPs, reduces broadcast dimensions once for every op, runs each tensor's hooks once on
its summed gradient, and accumulates into ``.grad`` under the tensor's lock. The public names
(``backward``, ``grad``, ...) are re-exported by ``tapegrad.autograd``.
"""
from __future__ import annotations

import os as _os
import warnings
import weakref
from collections.abc import Mapping

import numpy as np

from .. import _C
from .node import GradientEdge, RemovableHandle, edge_target  # noqa: F401  (RemovableHandle: autograd's)
from .registry import OPS

_wrap = _C._wrap  # a tapegrad.Tensor leaf around an array


# fork() waits for the backward passes other threads are running, and passes that start meanwhile
# wait for the fork: a child must not inherit a .grad lock held by a thread it does not have
# (csrc/tape.cpp, PassGate). The hooks are C functions, so a pass costs no Python code.
if hasattr(_os, "register_at_fork"):
    _os.register_at_fork(before=_C._fork_prepare, after_in_parent=_C._fork_parent, after_in_child=_C._fork_child)
_run_backward = _C.run_backward


def _as_seq(x):
    return tuple(x) if isinstance(x, (tuple, list)) and not isinstance(x, GradientEdge) else (x,)


def _targets(xs, opname):
    """Tensors or GradientEdges (one, or a sequence) as what run_backward takes: each edge as its
    node, or as its leaf for an AccumulateGrad; and which of them were edges."""
    xs = _as_seq(xs)
    return (tuple(edge_target(x, opname) if isinstance(x, GradientEdge) else x for x in xs),
            tuple(isinstance(x, GradientEdge) for x in xs))


def _shape_of(t):
    return tuple(t.out_meta[0]) if isinstance(t, _C.Node) else tuple(t._data.shape)


def _grad_outputs(outputs, grad_outputs, opname):
    grads = [None] * len(outputs) if grad_outputs is None else list(_as_seq(grad_outputs))
    if len(grads) != len(outputs):
        raise RuntimeError(f"{opname}: got {len(grads)} gradients for {len(outputs)} outputs")
    out = []
    for t, g in zip(outputs, grads):
        if isinstance(t, _C.Node):  # a GradientEdge's node: the gradient of its output
            shape, dtype = t.out_meta
            if g is None:
                if int(np.prod(shape)) != 1:
                    raise RuntimeError(f"{opname}: grad can be implicitly created only for scalar outputs; the "
                                       f"GradientEdge's output has shape {tuple(shape)}: pass a gradient of that shape")
                g = _wrap(np.ones(shape, dtype=dtype))
            elif not isinstance(g, _C.TensorBase):
                g = _wrap(np.asarray(g, dtype=dtype))
            if tuple(g._data.shape) != tuple(shape):
                raise RuntimeError(f"{opname}: mismatch in shape: grad_output has shape {tuple(g._data.shape)} and "
                                   f"the GradientEdge's output has shape {tuple(shape)}")
            out.append(g)
            continue
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
            if t._data.dtype.kind == "c":
                raise RuntimeError(f"{opname}: grad can be implicitly created only for real scalar outputs but got "
                                   f"{t._data.dtype} (take .real, .abs() or pass a gradient)")
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
    (only into ``inputs``' when given). ``tensors`` may be GradientEdges, and ``inputs`` the
    edges of leaves (``autograd.graph.get_gradient_edge``)."""
    if retain_graph is None:
        retain_graph = create_graph
    if (grad_tensors is None and inputs is None and isinstance(tensors, _C.TensorBase)
            and tensors.grad_fn is not None and tensors._data.size == 1
            and tensors._data.dtype.kind != "c"):  # the usual loss.backward()
        _run_backward((tensors,), (None,), retain_graph, create_graph)  # None: the engine makes the ones
        return
    outputs = _targets(tensors, "backward")[0]
    grads = _grad_outputs(outputs, grad_tensors, "backward")
    if inputs is not None:
        inputs = _targets(inputs, "backward")[0]
        for t in inputs:
            if isinstance(t, _C.Node):
                raise RuntimeError(f"backward: inputs= holds the GradientEdge of a {t.name()} node: backward "
                                   "accumulates into the .grad of tensors, and only a leaf's edge names one; use "
                                   "autograd.grad for the gradient at a node")
    _run_backward(outputs, grads, retain_graph, create_graph, inputs, True)


def grad(outputs, inputs, grad_outputs=None, retain_graph=None, create_graph=False, only_inputs=True,
         allow_unused=None, is_grads_batched=False, materialize_grads=False):
    """The gradients of ``outputs`` w.r.t. ``inputs``, returned as a tuple; no ``.grad`` is touched.

    PyTorch's signature: ``allow_unused`` gives ``None`` for an input the outputs don't depend on
    (``materialize_grads`` zeros instead); ``is_grads_batched`` reads the leading dim of each
    grad_output as a batch and returns gradients with that leading dim (one pass per row here,
    where PyTorch vmaps); ``only_inputs`` is deprecated and ignored, as in PyTorch. ``outputs`` and
    ``inputs`` may hold GradientEdges (``autograd.graph.get_gradient_edge``): the gradient at an
    edge is the gradient of the tensor it was taken from. ``inputs`` may be a dict (say
    ``dict(model.named_parameters())``): the gradients come back as a dict with its keys.

    >>> x = tapegrad.tensor(3.0, requires_grad=True)
    >>> (g,) = tapegrad.autograd.grad(x ** 3, x, create_graph=True)   # 27
    >>> tapegrad.autograd.grad(g, x)                                  # (18,)
    """
    if not only_inputs:
        warnings.warn("only_inputs argument is deprecated and is ignored now (defaults to True). To accumulate "
                      "gradient for other parts of the graph, please use tapegrad.autograd.backward.",
                      FutureWarning, stacklevel=2)
    if allow_unused is None:
        allow_unused = materialize_grads
    elif materialize_grads and not allow_unused:
        raise ValueError("Expected allow_unused to be True or not passed when materialize_grads=True, but got: "
                         "allow_unused=False.")
    keys = None
    if type(inputs) is dict:
        keys, inputs = list(inputs), tuple(inputs.values())
    elif isinstance(inputs, Mapping):
        raise TypeError(f"`inputs` argument to `grad()` must be a dict, not {type(inputs).__name__}. Other Mapping "
                        "types are not supported.")
    outputs, output_edges = _targets(outputs, "grad")
    inputs, input_edges = _targets(inputs, "grad")
    if not inputs:
        raise RuntimeError("`inputs` argument to `grad()` cannot be empty.")
    for t in inputs:
        if isinstance(t, _C.Node):
            continue
        if not isinstance(t, _C.TensorBase) or not t._requires_grad:
            raise RuntimeError("grad: one of the differentiated tensors does not require grad")
    if is_grads_batched and any(output_edges):
        raise RuntimeError("Batched grads are not supported with GradientEdge")
    if retain_graph is None:
        retain_graph = create_graph
    if is_grads_batched:
        res = _batched_grad(outputs, inputs, grad_outputs, retain_graph, create_graph)
    else:
        grads = _grad_outputs(outputs, grad_outputs, "grad")
        res = _run_backward(outputs, grads, retain_graph, create_graph, inputs, False)
    if not allow_unused:
        for i, (t, g) in enumerate(zip(inputs, res)):
            if g is None:
                raise RuntimeError(
                    f"The differentiated tensor at index {i} appears to not have been used in the graph "
                    f"(shape {_shape_of(t)}). Set allow_unused=True if this is the desired behavior.")
    if materialize_grads:
        if any(g is None and edge for g, edge in zip(res, input_edges)):
            raise RuntimeError("materialize_grads cannot be used when the given input is a GradientEdge")
        lead = () if not is_grads_batched else (_batch_size(outputs, grad_outputs),)
        res = tuple(_wrap(np.zeros(lead + t._data.shape, t._data.dtype)) if g is None else g
                    for t, g in zip(inputs, res))
    return res if keys is None else dict(zip(keys, res))


def _batch_size(outputs, grad_outputs):
    return _as_seq(grad_outputs)[0]._data.shape[0]


def _batched_grad(outputs, inputs, grad_outputs, retain_graph, create_graph):
    """``grad`` with ``is_grads_batched``: one backward pass per row of the grad_outputs, the
    gradients stacked through the op table's ``cat`` (the tape sits below the ops), so that
    ``create_graph`` differentiates through the stacking too."""
    if grad_outputs is None:
        raise RuntimeError("grad: is_grads_batched=True needs grad_outputs, each with a leading batch dimension")
    batched = list(_as_seq(grad_outputs))
    if len(batched) != len(outputs):
        raise RuntimeError(f"grad: got {len(batched)} gradients for {len(outputs)} outputs")
    sizes = set()
    for i, (t, g) in enumerate(zip(outputs, batched)):
        if not isinstance(g, _C.TensorBase):
            raise TypeError(f"grad: with is_grads_batched=True, grad_outputs must be tensors, got {type(g).__name__}")
        if g._data.ndim == 0 or g._data.shape[1:] != t._data.shape:
            raise RuntimeError(
                "If `is_grads_batched=True`, we interpret the first dimension of each grad_output as the batch "
                "dimension. The sizes of the remaining dimensions are expected to match the shape of corresponding "
                f"output, but a mismatch was detected: grad_output[{i}] has a shape of {list(g._data.shape[1:])} "
                f"and output[{i}] has a shape of {list(t._data.shape)}. If you only want some tensors in "
                "`grad_output` to be considered batched, consider using vmap.")
        sizes.add(g._data.shape[0])
    if len(sizes) != 1:
        raise RuntimeError(f"grad: the grad_outputs' batch dimensions differ: {sorted(sizes)}")
    n = sizes.pop()
    if n == 0:
        raise RuntimeError("grad: is_grads_batched=True with a batch dimension of size 0")
    rows = []
    for b in range(n):
        grads = _grad_outputs(outputs, [g[b] for g in batched], "grad")
        rows.append(_run_backward(outputs, grads, retain_graph or b < n - 1, create_graph, inputs, False))
    out = []
    for per_input in zip(*rows):
        if per_input[0] is None:  # the graph is the same in every pass: unused in one, unused in all
            out.append(None)
            continue
        starts = tuple(range(n + 1))
        out.append(_C.apply(OPS["cat"], *[g.unsqueeze(0) for g in per_input], dim=0, starts=starts))
    return tuple(out)


def retain_grad(t) -> None:
    """Keep ``.grad`` on a non-leaf tensor after backward (its summed gradient, once per pass)."""
    if not t._requires_grad:
        raise RuntimeError("can't retain_grad on Tensor that has requires_grad=False")
    if t.grad_fn is None or t._retains_grad:
        return
    t._retains_grad = True
    t.grad_fn.retained = weakref.ref(t)


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
