"""Activation checkpointing (``torch.utils.checkpoint``): run a block without keeping its
intermediate activations, and run it again during backward to get its gradients.

``checkpoint(fn, *args)`` runs ``fn`` with recording off and records one node (an
``autograd.Function``) whose inputs are the tensor arguments and, when ``fn`` is a module or a
module's method, the module's parameters. Its backward restores the random state the forward
saw (so dropout draws the same mask), reruns ``fn`` with recording on from detached copies of
the inputs, and differentiates that graph: the gradients are the ones without checkpointing.
Tensors that ``fn`` reaches some other way (a closure over a leaf) get their gradient
accumulated into ``.grad`` during that backward, as PyTorch's reentrant variant does.

>>> h = checkpoint(self.block, x, use_reentrant=False)
"""
from __future__ import annotations

import contextlib
import enum
import warnings

from .. import _dtype
from .._tape import grad_mode
from ..autograd.function import Function
from ..tensor import Tensor
from ..nn import Module
from .._tape.node import Node
from ..nn import Sequential
from .. import autograd
from .._tape.node import next_seq
from ..random import get_rng_state, set_rng_state

__all__ = ["checkpoint", "checkpoint_sequential", "CheckpointError", "CheckpointFunction", "check_backward_validity",
           "detach_variable", "get_device_states", "set_device_states", "noop_context_fn", "set_checkpoint_early_stop",
           "DefaultDeviceType", "set_checkpoint_debug_enabled", "CheckpointPolicy", "SelectiveCheckpointContext",
           "create_selective_checkpoint_contexts"]


def _module_parameters(owner):
    """The parameters of ``owner``: a module, a module's bound method, or a list of modules."""
    owner = getattr(owner, "__self__", owner)
    mods = owner if isinstance(owner, (list, tuple)) else [owner]
    params, seen = [], set()
    for m in mods:
        if isinstance(m, Module):
            for p in m.parameters():
                if p.requires_grad and id(p) not in seen:
                    seen.add(id(p))
                    params.append(p)
    return params


def _leaves(outputs, start_seq):
    """The leaf tensors that require grad under the nodes recorded since ``start_seq``."""
    seen, leaves, stack = set(), {}, [o.grad_fn for o in outputs if o.grad_fn is not None]
    while stack:
        node = stack.pop()
        if id(node) in seen or node.seq < start_seq:
            continue
        seen.add(id(node))
        for e in node.edges:
            if isinstance(e, Node):
                stack.append(e)
            elif e is not None:
                leaves[id(e)] = e
    return list(leaves.values())


class _Checkpoint(Function):
    @staticmethod
    def forward(ctx, run, preserve_rng_state, n_args, *tensors):
        ctx.run, ctx.n_args = run, n_args
        ctx.rng_state = get_rng_state() if preserve_rng_state else None
        ctx.save_for_backward(*tensors)
        forward_context, ctx.recompute_context = _contexts(run)
        with forward_context:
            return run(*tensors[:n_args])

    @staticmethod
    def backward(ctx, *grads):
        saved = ctx.saved_tensors
        inputs = [t.detach().requires_grad_(t.requires_grad) if _dtype.kind_of(t.dtype) == "f" else t.detach()
                  for t in saved[:ctx.n_args]]
        params = list(saved[ctx.n_args:])
        outer_rng = get_rng_state()
        if ctx.rng_state is not None:
            set_rng_state(ctx.rng_state)
        try:
            start = next_seq()
            with grad_mode.enable_grad(), ctx.recompute_context:
                outputs = ctx.run(*inputs)
        finally:
            set_rng_state(outer_rng)
        outputs = outputs if isinstance(outputs, tuple) else (outputs,)
        pairs = [(o, g) for o, g in zip(outputs, grads) if isinstance(o, Tensor) and o.requires_grad and g is not None]
        wanted = [t for t in inputs if t.requires_grad] + params
        known = {id(t) for t in wanted}
        others = [t for t in _leaves([o for o, _ in pairs], start) if id(t) not in known]
        result = [None] * len(saved)
        if pairs:
            gs = autograd.grad([o for o, _ in pairs], wanted + others, [g for _, g in pairs], allow_unused=True)
            by_id = {id(t): g for t, g in zip(wanted, gs)}
            result = [by_id.get(id(t)) for t in inputs] + list(gs[len(wanted) - len(params):len(wanted)])
            for t, g in zip(others, gs[len(wanted):]):  # reached by closure: accumulate, as reentrant backward
                if g is not None:
                    t.grad = g if t.grad is None else t.grad + g
        return (None, None, None, *result)


def _contexts(run):
    """The (forward, recompute) context managers of ``checkpoint(context_fn=...)``."""
    make = getattr(run, "context_fn", None)
    return make() if make is not None else noop_context_fn()


def _apply(function, preserve, args, owner, context_fn=None):
    tensors = list(args)
    if not all(isinstance(a, Tensor) for a in args):
        idx = [i for i, a in enumerate(args) if isinstance(a, Tensor)]
        fixed = list(args)

        def run(*ts):
            call = list(fixed)
            for i, t in zip(idx, ts):
                call[i] = t
            return function(*call)
        tensors = [args[i] for i in idx]
    else:
        def run(*ts):
            return function(*ts)
    run.context_fn = context_fn
    return _Checkpoint.apply(run, preserve, len(tensors), *tensors, *_module_parameters(owner))


def checkpoint(function, *args, use_reentrant=None, context_fn=None, determinism_check="default", debug=False,
               preserve_rng_state=True, **kwargs):
    """``function(*args, **kwargs)`` without keeping its activations; recomputed in backward.

    ``use_reentrant`` should be given, as PyTorch asks (a warning otherwise); both variants take the
    same path here. ``preserve_rng_state`` (default True) replays the forward's random draws."""
    if use_reentrant is None:
        warnings.warn("tapegrad.utils.checkpoint: the use_reentrant parameter should be passed explicitly "
                      "(use_reentrant=False is recommended, as in PyTorch).", stacklevel=2)
        use_reentrant = True
    if kwargs and use_reentrant:
        raise ValueError("Unexpected keyword arguments: " + ",".join(arg for arg in kwargs))
    if context_fn is not None or debug:
        if use_reentrant:
            raise ValueError("Passing `context_fn` or `debug` is only supported when use_reentrant=False.")
        if debug:
            raise NotImplementedError("tapegrad.utils.checkpoint: debug=True (PyTorch's operator trace of a failed "
                                      "determinism check) is not supported")
    if not grad_mode.is_grad_enabled():
        return function(*args, **kwargs)
    return _apply(lambda *a: function(*a, **kwargs), preserve_rng_state, args, function, context_fn)


def checkpoint_sequential(functions, segments, input, use_reentrant=None, **kwargs):
    """Runs ``functions`` (an ``nn.Sequential`` or a list of modules) in ``segments`` chunks,
    checkpointing every chunk but the last."""
    if use_reentrant is None:
        warnings.warn("tapegrad.utils.checkpoint_sequential: the use_reentrant parameter should be passed "
                      "explicitly (use_reentrant=False is recommended, as in PyTorch).", stacklevel=2)
        use_reentrant = True
    preserve = kwargs.pop("preserve_rng_state", True)
    if kwargs:
        raise ValueError("Unexpected keyword arguments: " + ",".join(arg for arg in kwargs))
    if isinstance(functions, Sequential):
        functions = list(functions.children())

    def run_function(start, end):
        def forward(x):
            for j in range(start, end + 1):
                x = functions[j](x)
            return x
        forward.modules = functions[start:end + 1]
        return forward

    segment_size = len(functions) // segments
    end = -1
    for start in range(0, segment_size * (segments - 1), segment_size):
        end = start + segment_size - 1
        run = run_function(start, end)
        input = _apply(run, preserve, (input,), run.modules) if grad_mode.is_grad_enabled() else run(input)
    return run_function(end + 1, len(functions) - 1)(input)


# ---------------------------------------------------------------- the rest of torch.utils.checkpoint's names
class CheckpointError(RuntimeError):
    """Raised when a recomputation does not match the forward (PyTorch's name)."""


class CheckpointFunction:
    """The reentrant variant's Function, as older code calls it:
    ``CheckpointFunction.apply(function, preserve_rng_state, *args)``."""

    @staticmethod
    def apply(function, preserve_rng_state, *args):
        if not grad_mode.is_grad_enabled():
            return function(*args)
        return _apply(function, preserve_rng_state, args, function)


def noop_context_fn():
    """The default ``context_fn``: two empty contexts (forward, recomputation)."""
    return contextlib.nullcontext(), contextlib.nullcontext()


def detach_variable(inputs):
    """A tuple of the inputs detached, each keeping its ``requires_grad``; non-tensors as they are."""
    if not isinstance(inputs, tuple):
        raise RuntimeError(f"Only tuple of tensors is supported. Got Unsupported input type: {type(inputs).__name__}")
    return tuple(x.detach().requires_grad_(x.requires_grad) if isinstance(x, Tensor) else x for x in inputs)


def check_backward_validity(inputs) -> None:
    """Warns when no tensor input requires grad (the checkpointed block then gets no gradient)."""
    if not any(isinstance(x, Tensor) and x.requires_grad for x in inputs):
        warnings.warn("None of the inputs have requires_grad=True. Gradients will be None", stacklevel=2)


def get_device_states(*args):
    """(devices, their RNG states) of the tensors' accelerators: none here."""
    return [], []


def set_device_states(devices, states, *, device_type=None) -> None:
    """Nothing to restore: tapegrad has only the CPU generator (``preserve_rng_state`` restores it)."""


class DefaultDeviceType:
    """The device type whose RNG state checkpoint preserves besides the CPU's (kept and read back)."""

    _default_device_type = "cuda"

    @staticmethod
    def set_device_type(device: str = "cuda") -> None:
        DefaultDeviceType._default_device_type = device

    @staticmethod
    def get_device_type() -> str:
        return DefaultDeviceType._default_device_type


@contextlib.contextmanager
def set_checkpoint_early_stop(enable: bool):
    """PyTorch's switch for stopping a recomputation once the needed tensors exist; the block
    runs as is (tapegrad always recomputes the whole block: the same gradients)."""
    yield


@contextlib.contextmanager
def set_checkpoint_debug_enabled(enabled):
    """The block runs as is (no operator traces are kept here)."""
    yield


class CheckpointPolicy(enum.Enum):
    """Selective checkpointing's per-op decision."""

    MUST_SAVE = 0
    PREFER_SAVE = 1
    MUST_RECOMPUTE = 2
    PREFER_RECOMPUTE = 3


class SelectiveCheckpointContext:
    """What a selective-checkpoint policy function is given (``ctx.is_recompute``)."""

    def __init__(self, *, is_recompute: bool):
        self.is_recompute = is_recompute


def create_selective_checkpoint_contexts(policy_fn_or_list, allow_cache_entry_mutation: bool = False):
    """``checkpoint(fn, x, use_reentrant=False, context_fn=partial(create_selective_checkpoint_contexts,
    policy))``. The policy is checked but every op is recomputed: the gradients are exactly those
    of saving some (the forward's random state is replayed), only the memory and time trade-off
    differs from PyTorch's."""
    if not (callable(policy_fn_or_list) or isinstance(policy_fn_or_list, (list, tuple))):
        raise TypeError("policy_fn_or_list must be either a function or a list of ops.")
    return contextlib.nullcontext(), contextlib.nullcontext()

