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
"""
from __future__ import annotations

import threading

from .. import _C
from .._tape.engine import RemovableHandle  # noqa: F401
from .._tape.node import Node  # noqa: F401  (every grad_fn is one: isinstance(y.grad_fn, Node))

__all__ = ["Node", "RemovableHandle", "saved_tensors_hooks", "save_on_cpu", "disable_saved_tensors_hooks", "increment_version"]

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
