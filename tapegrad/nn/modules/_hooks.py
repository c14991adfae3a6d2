"""Module backward hooks and the global module hooks, as ``torch/utils/hooks.py``'s ``BackwardHook``.

A module with full backward (pre) hooks sees its tensor inputs and outputs pass through identity
nodes. The tape records one node per output tensor, while a hook wants every gradient of the
module's outputs (or inputs) at once, so each side is a *join* and a set of *splits*:

    outs -> Join -> d (a scalar) -> Split_j(d) -> out_j'   (out_j' shares out_j's data)

``Split_j``'s backward stashes the gradient of ``out_j'`` and sends zero to ``d``; ``Join`` runs
after every split that got a gradient (``d`` feeds them all), so its backward sees the complete
tuple (None where an output got none), calls the hooks, and returns the gradients (perhaps
replaced) to the real outputs. The input side is the same with the full hooks. Everything is
written in tapegrad ops, so ``create_graph=True`` records through it.
"""
from __future__ import annotations

import warnings
import weakref
from collections import OrderedDict

import numpy as np

from ... import _dtype
from ..._tape import grad_mode
from ...autograd import RemovableHandle
from ...autograd.function import Function
from ...tensor import Tensor

# the global hooks of torch.nn.modules.module (register_module_*): every module's call runs them
global_forward_pre_hooks: OrderedDict = OrderedDict()
global_forward_hooks: OrderedDict = OrderedDict()
global_forward_hooks_always_called: dict = {}
global_forward_hooks_with_kwargs: set = set()
global_backward_pre_hooks: OrderedDict = OrderedDict()
global_backward_hooks: OrderedDict = OrderedDict()
global_is_full_backward_hook: list = [None]  # None: no global backward hook; else whether they are full ones
global_buffer_registration_hooks: OrderedDict = OrderedDict()
global_module_registration_hooks: OrderedDict = OrderedDict()
global_parameter_registration_hooks: OrderedDict = OrderedDict()


class _BackwardMarker:
    """An entry of ``module._forward_pre_hooks`` while the module has backward hooks: ``__call__``'s
    no-hook path checks the two forward hook dicts only, so this sends the call to the hooked path;
    ``call_with_hooks`` skips it."""

    __slots__ = ()

    def __call__(self, module, args):
        return None

    def __repr__(self):
        return "<backward hooks of this module>"


_MARKER = _BackwardMarker()
MARKER_KEY = "backward_hooks"


def sync_backward_marker(module) -> None:
    pre = module._forward_pre_hooks
    if module._backward_hooks or module._backward_pre_hooks:
        pre.setdefault(MARKER_KEY, _MARKER)
    else:
        pre.pop(MARKER_KEY, None)


class BackwardHandle(RemovableHandle):
    """A backward hook's handle: removing the module's last one removes the marker too."""

    def __init__(self, module, store):
        super().__init__(store)
        self._module = weakref.ref(module)

    def remove(self):
        """Remove the hook (again: nothing happens)."""
        super().remove()
        module = self._module()
        if module is not None:
            sync_backward_marker(module)


def any_global_call_hooks() -> bool:
    return bool(global_forward_pre_hooks or global_forward_hooks or global_backward_pre_hooks
                or global_backward_hooks)


class _State:
    """One module call's side (inputs or outputs): where the splits stash their gradients."""

    __slots__ = ("tensors", "grads")

    def __init__(self, tensors):
        self.tensors = tensors
        self.grads = [None] * len(tensors)


class _Join(Function):
    @staticmethod
    def forward(ctx, state, on_grads, *tensors):
        ctx.state, ctx.on_grads = state, on_grads
        dt = next((t.dtype for t in tensors if _dtype.kind_of(t._data.dtype) == "f"), np.float32)
        return Tensor._wrap(np.zeros((), dtype=dt))

    @staticmethod
    def backward(ctx, grad):
        state = ctx.state
        grads, state.grads = tuple(state.grads), [None] * len(state.grads)
        return (None, None) + tuple(ctx.on_grads(grads))


class _Split(Function):
    @staticmethod
    def forward(ctx, d, state, j):
        ctx.state, ctx.j = state, j
        return state.tensors[j]  # apply wraps it: a new tensor sharing data and version

    @staticmethod
    def backward(ctx, grad):
        ctx.state.grads[ctx.j] = grad
        return grad.sum() * 0, None, None  # d's gradient (zero, but recorded under create_graph)


def _through_identity(values, on_grads):
    """Route the tensors among ``values`` that require grad through a join and splits; ``on_grads``
    gets their gradients (a tuple, None where none came) and returns what flows on. Returns the
    new values and the positions of those tensors (None when none requires grad)."""
    idx = [i for i, v in enumerate(values) if isinstance(v, Tensor) and v._requires_grad]
    if not idx or not grad_mode.is_grad_enabled():
        return values, None
    state = _State([values[i] for i in idx])
    d = _Join.apply(state, on_grads, *state.tensors)
    out = list(values)
    for k, i in enumerate(idx):
        out[i] = _Split.apply(d, state, k)
    return out, idx


class BackwardHook:
    """One call of a module with full backward hooks (``user_hooks``) or backward pre hooks."""

    def __init__(self, module, user_hooks, user_pre_hooks):
        self.module = module
        self.user_hooks = user_hooks
        self.user_pre_hooks = user_pre_hooks
        self.grad_outputs = None
        self.n_inputs = self.n_outputs = -1
        self.input_index = self.output_index = None
        self.input_frozen = ()

    @staticmethod
    def _pack(index, values, size):
        res = [None] * size
        for i, v in zip(index or (), values):
            res[i] = v
        return tuple(res)

    def _on_input_grads(self, grads):
        if self.grad_outputs is None:  # the gradient reached the inputs without the outputs (double backward)
            return grads
        res = list(self._pack(self.input_index, grads, self.n_inputs))
        for i, t in self.input_frozen:  # as PyTorch's, a tensor input that needs no gradient gets zeros
            res[i] = Tensor._wrap(np.zeros_like(t._data))
        res = tuple(res)
        for hook in self.user_hooks:
            out = hook(self.module, res, self.grad_outputs)
            if out is None:
                continue
            out = tuple(out) if isinstance(out, (tuple, list)) else (out,)
            if len(out) != len(res):
                raise RuntimeError(f"Backward hook returned an invalid number of grad_input, got {len(out)}, but "
                                   f"expected {len(res)}")
            res = out
        self.grad_outputs = None
        return tuple(res[i] for i in self.input_index)

    def _on_output_grads(self, grads):
        self.grad_outputs = self._pack(self.output_index, grads, self.n_outputs)
        expected = len(self.grad_outputs)
        for hook in self.user_pre_hooks:
            out = hook(self.module, self.grad_outputs)
            if out is None:
                continue
            out = tuple(out) if isinstance(out, (tuple, list)) else (out,)
            if len(out) != expected:
                raise RuntimeError(f"Backward pre hook returned an invalid number of grad_output, got {len(out)}, "
                                   f"but expected {expected}")
            self.grad_outputs = out
        local = self.grad_outputs
        if self.input_index is None:  # no input requires grad: the full hooks run here, with None inputs
            warnings.warn("Full backward hook is firing when gradients are computed with respect to module outputs "
                          "since no inputs require gradients. See "
                          "https://docs.pytorch.org/docs/main/generated/torch.nn.Module.html"
                          "#torch.nn.Module.register_full_backward_hook for more details.", stacklevel=5)
            grad_inputs = (None,) * self.n_inputs
            for hook in self.user_hooks:
                res = hook(self.module, grad_inputs, self.grad_outputs)
                if res is not None and not (isinstance(res, tuple) and all(r is None for r in res)):
                    raise RuntimeError("Backward hook for Modules where no input requires gradient should always "
                                       "return None or None for all gradients.")
            self.grad_outputs = None
        return tuple(local[i] for i in self.output_index)

    def setup_input_hook(self, args):
        """The module's positional args, tensors routed through the input identity."""
        res, self.input_index = _through_identity(list(args), self._on_input_grads)
        self.n_inputs = len(args)
        if self.input_index is not None:
            self.input_frozen = [(i, a) for i, a in enumerate(args) if isinstance(a, Tensor) and not a._requires_grad]
        return tuple(res)

    def setup_output_hook(self, result):
        """The module's result, tensors routed through the output identity (a tensor or a tuple)."""
        is_tuple = isinstance(result, tuple)
        values = list(result) if is_tuple else [result]
        res, self.output_index = _through_identity(values, self._on_output_grads)
        self.n_outputs = len(values)
        if not is_tuple:
            return res[0]
        return type(result)(*res) if hasattr(result, "_fields") else tuple(res)


def call_with_hooks(module, args, kwargs):
    """``module(*args, **kwargs)`` with its hooks and the global ones, in PyTorch's order."""
    full, pre_bw = [], []
    if module._backward_pre_hooks or global_backward_pre_hooks:
        pre_bw = list(global_backward_pre_hooks.values()) + list(module._backward_pre_hooks.values())
    if module._backward_hooks or global_backward_hooks:
        hooks = list(global_backward_hooks.values())
        hooks += list(module._backward_hooks.values())
        # the deprecated register_backward_hook's hooks get the full hooks' arguments: PyTorch's give
        # the gradients of the module's last op, which are these when the module is one op
        full += hooks

    for hid, hook in list(global_forward_pre_hooks.items()) + list(module._forward_pre_hooks.items()):
        if isinstance(hook, _BackwardMarker):
            continue
        if hid in module._forward_pre_hooks_with_kwargs:
            res = hook(module, args, kwargs)
            if res is not None:
                if not (isinstance(res, tuple) and len(res) == 2):
                    raise RuntimeError(f"forward pre-hook must return None or a tuple of (new_args, new_kwargs), "
                                       f"but got {res}.")
                args, kwargs = res
        else:
            res = hook(module, args)
            if res is not None:
                args = res if isinstance(res, tuple) else (res,)

    bw_hook = None
    if full or pre_bw:
        bw_hook = BackwardHook(module, full, pre_bw)
        args = bw_hook.setup_input_hook(args)

    try:
        out = module.forward(*args, **kwargs)
    except Exception:  # the always_call forward hooks run anyway, then the error goes on
        for hid, hook in list(global_forward_hooks.items()) + list(module._forward_hooks.items()):
            if hid in global_forward_hooks_always_called or hid in module._forward_hooks_always_called:
                try:
                    if hid in module._forward_hooks_with_kwargs or hid in global_forward_hooks_with_kwargs:
                        hook(module, args, kwargs, None)
                    else:
                        hook(module, args, None)
                except Exception as e:
                    warnings.warn(f"forward hook with ``always_call=True`` raised an exception that was silenced "
                                  f"as another error was raised in forward: {e}")
        raise

    for hid, hook in list(global_forward_hooks.items()) + list(module._forward_hooks.items()):
        if hid in module._forward_hooks_with_kwargs or hid in global_forward_hooks_with_kwargs:
            res = hook(module, args, kwargs, out)
        else:
            res = hook(module, args, out)
        if res is not None:
            out = res

    if bw_hook is not None:
        if not isinstance(out, (Tensor, tuple)):
            warnings.warn("For backward hooks to be called, module output should be a Tensor or a tuple of Tensors"
                          f" but received {type(out)}")
        out = bw_hook.setup_output_hook(out)

    return out
