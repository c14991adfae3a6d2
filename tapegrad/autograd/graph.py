"""``torch.autograd.graph``: hooks on what the tape saves for the backward pass.

``saved_tensors_hooks(pack_hook, unpack_hook)``: inside the block, every tensor an op saves for its
gradient (an input, or the output for ops such as ``exp``) goes through ``pack_hook(tensor)``, and
the node keeps whatever that returns; the backward pass calls ``unpack_hook(packed)`` for each
and must get a tensor back (the same values). Activation offloading and compression are written
this way. As in PyTorch, the hooks belong to the thread that entered the block, nest, are off while
a pack hook runs, and replace the in-place-modification check for the values they pack (a packed
value may be a copy).

>>> def pack(t):
...     return t.numpy().astype(np.float16)          # keep activations in half precision
>>> def unpack(a):
...     return tapegrad.from_numpy(a.astype(np.float32))
>>> with tapegrad.autograd.graph.saved_tensors_hooks(pack, unpack):
...     y = (x * x).sum()
>>> y.backward()

``allow_mutation_on_saved_tensors()`` is written on them: inside it, writing in place into a tensor
the tape saved first copies what was saved, so the backward pass reads the values of record time.

``register_multi_grad_hook(tensors, fn)`` calls ``fn`` once per backward pass, when the gradients
of all of ``tensors`` that the pass computes are ready (``mode="any"``: at the first of them), and
``get_gradient_edge(t)`` names the place in the graph where ``t``'s gradient is computed, which
``autograd.grad`` takes in place of ``t``.
"""
from __future__ import annotations

import functools
import threading
import weakref

from .. import _C
from .._tape import grad_mode as _grad_mode
from .._tape.engine import RemovableHandle  # noqa: F401
from .._tape.node import AccumulateGrad, GradientEdge  # noqa: F401
from .._tape.node import Node  # noqa: F401  (every grad_fn is one: isinstance(y.grad_fn, Node))
from .compat import Variable  # noqa: F401  (PyTorch's graph module has it in its namespace too)
from ..ops import inplace as _inplace

__all__ = ["Node", "RemovableHandle", "saved_tensors_hooks", "save_on_cpu", "disable_saved_tensors_hooks", "increment_version",
           "GradientEdge", "get_gradient_edge", "register_multi_grad_hook", "allow_mutation_on_saved_tensors"]

_disabled = threading.local()  # .message: disable_saved_tensors_hooks' error, per thread


class saved_tensors_hooks:
    """Pack and unpack what ops save for the backward pass in this thread, inside the block."""

    def __init__(self, pack_hook, unpack_hook):
        if not callable(pack_hook) or not callable(unpack_hook):
            raise TypeError("saved_tensors_hooks: pack_hook and unpack_hook must be callables")
        self.pack_hook, self.unpack_hook = pack_hook, unpack_hook
        self._previous = []

    def __enter__(self):
        message = getattr(_disabled, "message", None)
        if message is not None:
            raise RuntimeError(message)
        self._previous.append(_C._saved_tensors_hooks((self.pack_hook, self.unpack_hook)))
        return self

    def __exit__(self, *exc):
        _C._saved_tensors_hooks(self._previous.pop())
        return False


class save_on_cpu(saved_tensors_hooks):
    """PyTorch's hooks that move saved GPU tensors to host memory. Every tapegrad tensor is in
    host memory already, so each saved tensor is kept as it is (PyTorch's ``tensor.cpu()`` of a
    CPU tensor is the tensor itself); ``pin_memory`` changes nothing."""

    def __init__(self, pin_memory: bool = False, device_type: str = "cuda"):
        super().__init__(lambda t: t, lambda t: t)


class disable_saved_tensors_hooks:
    """Inside the block, entering ``saved_tensors_hooks`` in this thread raises
    ``RuntimeError(error_message)`` (for code that must not have its saved tensors intercepted)."""

    def __init__(self, error_message: str):
        self.error_message = str(error_message)

    def __enter__(self):
        self._previous = getattr(_disabled, "message", None)
        _disabled.message = self.error_message
        return self

    def __exit__(self, *exc):
        _disabled.message = self._previous
        return False


def increment_version(tensor) -> None:
    """Bump the version counter of ``tensor`` (or of each tensor of an iterable), as an in-place
    write would: a node that saved it then refuses to run its backward."""
    for t in (tensor,) if hasattr(tensor, "_bump_version") else tensor:
        t._bump_version()


# ---------------------------------------------------------------- gradient edges
def _grad_fn_or_acc(t, opname):
    """The node where ``t``'s gradient is computed: its grad_fn, or an AccumulateGrad for a leaf
    that requires grad (PyTorch's ``_get_grad_fn_or_grad_acc``, whose AssertionError this keeps)."""
    if isinstance(t, GradientEdge):
        return t.node
    if t._requires_grad and t.grad_fn is None:
        return AccumulateGrad(t)
    if t.grad_fn is None:
        raise AssertionError(f"{opname}: expected gradient function to be set: a tensor of shape {tuple(t.shape)} "
                             "does not require grad, so it has no place in the graph")
    return t.grad_fn


def get_gradient_edge(tensor) -> GradientEdge:
    """The :class:`GradientEdge` where ``tensor``'s gradient is computed:
    ``autograd.grad(loss, get_gradient_edge(x))`` equals ``autograd.grad(loss, x)``.

    >>> x = tapegrad.ones(3, requires_grad=True)
    >>> edge = tapegrad.autograd.graph.get_gradient_edge(x)    # GradientEdge(AccumulateGrad, 0)
    >>> tapegrad.autograd.grad((2 * x).sum(), edge)            # (tensor([2., 2., 2.]),)
    """
    if not getattr(tensor, "_requires_grad", False):
        raise RuntimeError("It is not possible to get the gradient edge for a Tensor that does not require gradients")
    return GradientEdge(_grad_fn_or_acc(tensor, "get_gradient_edge"), 0)


# ---------------------------------------------------------------- hooks on several tensors
class _MultiHandle(RemovableHandle):
    """``register_multi_grad_hook``'s handle: ``remove()`` removes the hook from every tensor."""

    def __init__(self, handles):
        self.handles = tuple(handles)
        self.id = None

    def remove(self):
        """Remove the hook from every tensor (again: nothing happens)."""
        for h in self.handles:
            h.remove()

    def __getstate__(self):
        return self.handles

    def __setstate__(self, state):
        self.handles = state


def _will_run(node) -> bool:
    """Whether the running backward pass computes the gradient at ``node`` (a Node, or an
    AccumulateGrad for a leaf): whether the hooks of its tensor run in this pass."""
    return _C._will_engine_execute_node(node.variable if isinstance(node, AccumulateGrad) else node)


def register_multi_grad_hook(tensors, fn, *, mode: str = "all"):
    """Call ``fn`` once per backward pass, from the gradients of several tensors.

    ``mode="all"``: ``fn(grads)`` runs once the gradients of all of ``tensors`` that the pass
    computes are ready, with one entry per tensor (``None`` for a tensor the pass does not reach,
    or whose gradient ``inputs=`` does not need; a tensor the pass reaches with no gradient, its
    consumers' VJPs having given None, is None too, and ``fn`` then runs as the pass ends).
    ``mode="any"``: ``fn(grad)`` runs with the first of their gradients the pass computes, once. The state is kept per backward pass, so passes in
    several threads, or one run from a hook inside another, each call ``fn`` for themselves.
    ``fn`` should not modify what it is given, and returns None. Returns a handle whose
    ``remove()`` takes the hook off every tensor.

    >>> a = tapegrad.rand(2, 3, requires_grad=True)
    >>> b = tapegrad.rand(2, 3, requires_grad=True)
    >>> c, d = a * b, a * b
    >>> h = tapegrad.autograd.graph.register_multi_grad_hook(
    ...     (a, b, c, d), lambda grads: print([g is not None for g in grads]))
    >>> c.sum().backward(retain_graph=True)
    [True, True, True, False]
    >>> c.sum().backward(inputs=(a,))
    [True, False, True, False]
    """
    supported_modes = ("all", "any")
    if mode not in supported_modes:
        raise ValueError(f"Expects mode to be one of {supported_modes} but got {mode}")
    tensors = list(tensors)
    lock = threading.Lock()
    if mode == "all":
        nodes = [_grad_fn_or_acc(t, "register_multi_grad_hook") for t in tensors]
        # per pass id: [hooks still to run in this pass (counted by the first to run), the grads]
        state: dict = {}

        def finish(task):
            # the pass ran its graph: a tensor it reached without a gradient (a VJP that gave
            # None) ran no hook, where PyTorch calls the hook with None; fn gets None there
            with lock:
                entry = state.pop(task, None)
            if entry is not None:
                fn(entry[1])

        def inner_hook(idx, grad):
            task = _C._current_graph_task_id()
            if task == -1:
                raise RuntimeError("register_multi_grad_hook: expected this hook to be called inside a backward call")
            with lock:
                entry = state.get(task)
                first = entry is None
                if first:
                    entry = state[task] = [sum(map(_will_run, nodes)), [None] * len(tensors)]
                entry[1][idx] = grad
                entry[0] -= 1
                done = entry[0] <= 0
                if done:
                    del state[task]
            if done:
                fn(entry[1])
            elif first:
                _C._queue_callback(functools.partial(finish, task))

        handles = [t.register_hook(functools.partial(inner_hook, i)) for i, t in enumerate(tensors)]
    else:
        ran: set = set()  # the ids of the passes running in which fn ran (each forgotten as its pass ends)

        @functools.wraps(fn)
        def wrapped_fn(grad):
            task = _C._current_graph_task_id()
            if task == -1:
                raise RuntimeError("register_multi_grad_hook: expected this hook to be called inside a backward call")
            with lock:
                prev = task in ran
                ran.add(task)
            if not prev:
                _C._queue_callback(functools.partial(ran.discard, task))
                fn(grad)

        handles = [t.register_hook(wrapped_fn) for t in tensors if t._requires_grad]
    return _MultiHandle(handles)


# ---------------------------------------------------------------- mutation of saved tensors
class _Saved:
    """What the tape keeps for one saved tensor inside ``allow_mutation_on_saved_tensors``: the
    tensor and its version at record time until something writes into its memory, then a copy
    made just before that write."""

    __slots__ = ("tensor", "version", "clone", "__weakref__")

    def __init__(self, tensor):
        self.tensor, self.version, self.clone = tensor, tensor._version, None


def _copy_of(t):
    """A copy of ``t``'s values that stands where ``t`` stood in the graph: recorded as a clone
    of ``t`` when ``t`` requires grad, so a double backward still reaches what ``t`` depends on."""
    prev = _C._saved_tensors_hooks(None)  # the clone saves nothing, but no hook of ours runs inside it
    try:
        if t._requires_grad:
            with _grad_mode.enable_grad():
                return t.clone()
        return type(t)._wrap(t._data.copy())
    finally:
        _C._saved_tensors_hooks(prev)


class _AllowMutationOnSavedContext:
    """The state of one ``allow_mutation_on_saved_tensors`` block (what the block yields, for
    debugging): ``saved`` maps the id of each version counter the tape saved a tensor under to
    weak references to those records; ``cloned`` counts the copies made."""

    def __init__(self):
        self.saved: dict = {}
        self.cloned = 0
        self.active = True
        self.lock = threading.Lock()
        self._packs = 0

    def pack(self, tensor):
        rec = _Saved(tensor)
        with self.lock:
            self.saved.setdefault(id(tensor._version_box), []).append(weakref.ref(rec))
            self._packs += 1
            if self._packs % 4096 == 0:  # forget the records of graphs that are gone (a training loop in the block)
                live = {k: [r for r in refs if r() is not None] for k, refs in self.saved.items()}
                self.saved = {k: refs for k, refs in live.items() if refs}
        return rec

    def unpack(self, rec):
        if not self.active:
            raise RuntimeError("Trying to backward outside of the 'allow_mutation_on_saved_tensors' context in which "
                               "the graph was originally recorded.")
        if rec.clone is not None:
            return rec.clone
        t = rec.tensor
        if t._version != rec.version:  # written by a path that does not announce its writes
            raise RuntimeError(f"one of the tensors needed for the gradient (shape {tuple(t.shape)}) has been modified "
                               f"by an in-place operation that allow_mutation_on_saved_tensors could not see: it is at "
                               f"version {t._version}, expected version {rec.version}.")
        return t

    def before_write(self, tensor):
        """Copy every saved tensor that shares ``tensor``'s memory (its version counter), once."""
        with self.lock:
            refs = self.saved.pop(id(tensor._version_box), None)
        if not refs:
            return
        for ref in refs:
            rec = ref()
            if rec is not None and rec.clone is None:
                if rec.tensor._version != rec.version:
                    continue  # already overwritten unseen: unpack refuses it
                rec.clone, rec.tensor = _copy_of(rec.tensor), None
                self.cloned += 1

    def clear(self):
        """Forget every record (the block's end): a backward pass of its graph then raises."""
        self.active = False
        with self.lock:
            self.saved.clear()


_mutation_block_open = False  # one block at a time, in the whole process, as PyTorch's


class allow_mutation_on_saved_tensors:
    """Inside the block, an in-place write into a tensor the tape saved for the backward pass is
    allowed: the saved values are copied just before the write (only those written), and the
    backward pass reads the copies, so gradients are those of the values at record time. Outside
    it, such a write makes the backward pass raise (the version-counter check). Run the backward
    pass inside the same block; blocks don't nest. Writes are seen through every view sharing
    the tensor's memory, from any thread; a write the ops do not announce (a numpy write into
    ``.numpy()``) is not seen, and the backward pass refuses that tensor as usual.

    >>> with tapegrad.autograd.graph.allow_mutation_on_saved_tensors():
    ...     a = tapegrad.ones(2, 3, requires_grad=True)
    ...     b = a.clone()
    ...     out = (b ** 2).sum()
    ...     b.sin_()                      # b was saved by pow: it is copied first
    ...     out.backward()                # a.grad == 2
    """

    def __init__(self):
        self._ctx = None
        self._hooks = None

    def __enter__(self):
        global _mutation_block_open
        if _mutation_block_open:
            raise RuntimeError("allow_mutation_on_saved_tensors contexts cannot be nested")
        ctx = self._ctx = _AllowMutationOnSavedContext()
        self._hooks = saved_tensors_hooks(ctx.pack, ctx.unpack)
        self._hooks.__enter__()
        _mutation_block_open = True
        _inplace.WRITE_WATCHERS.append(ctx.before_write)
        return ctx

    def __exit__(self, *exc):
        global _mutation_block_open
        try:
            _inplace.WRITE_WATCHERS.remove(self._ctx.before_write)
            self._ctx.clear()
            _mutation_block_open = False
        finally:
            self._hooks.__exit__(*exc)
        return False
