"""``torch.autograd.forward_ad``: dual tensors and their tangents.

tapegrad's tape is reverse-mode only, so a tangent is computed when it is asked for: ``unpack_dual``
of an output runs the double-vjp trick over the tape recorded since the duals were made (``J t``
as the derivative in ``u`` of ``u^T J``; two reverse passes), which gives PyTorch's values,
differentiable again. The computation between ``make_dual`` and ``unpack_dual`` must therefore run
with grad mode on (the default).

>>> import tapegrad.autograd.forward_ad as fwAD
>>> with fwAD.dual_level():
...     x = fwAD.make_dual(tapegrad.tensor([1.0, 2.0]), tapegrad.tensor([1.0, 0.0]))
...     fwAD.unpack_dual(x ** 3).tangent
tensor([3., 0.])
"""
from __future__ import annotations

import threading
from collections import namedtuple

import numpy as np

from .. import autograd  # the package being initialised: autograd.grad is read at call time
from .._tape import grad_mode
from ..tensor import Tensor

UnpackedDualTensor = namedtuple("UnpackedDualTensor", ["primal", "tangent"])
UnpackedDualTensor.__doc__ = "``(primal, tangent)`` of a dual tensor, as :func:`unpack_dual` returns it."

_state = threading.local()  # PyTorch's dual level is per thread too


def _level():
    return getattr(_state, "level", None)


def enter_dual_level() -> int:
    """Start the (one) dual level of this thread; returns its index, 0. Prefer :class:`dual_level`."""
    if _level() is not None:
        raise RuntimeError("Entering a new forward AD level but the current level is not valid. Make sure you "
                           "did not modified it directly.")
    _state.level = {"index": 0, "duals": []}
    return 0


def exit_dual_level(*, level=None) -> None:
    """End the current dual level: its dual tensors lose their tangents."""
    if _level() is None or (level is not None and level != 0):
        raise RuntimeError("Trying to exit a forward AD level that was not the last one that was created. This is "
                           "not supported.")
    _state.level = None


class dual_level:  # noqa: N801  (PyTorch's name)
    """Context manager for a dual level: ``make_dual`` and ``unpack_dual`` inside ``with dual_level():``."""

    def __enter__(self):
        return enter_dual_level()

    def __exit__(self, *exc):
        exit_dual_level()
        return False


def make_dual(tensor, tangent, *, level=None):
    """A tensor equal to ``tensor`` that carries ``tangent`` (the direction of differentiation)
    through the functions applied to it, inside the current dual level."""
    lv = _level()
    if lv is None:
        raise RuntimeError("To create a dual tensor, you must first enter a dual level using "
                           "`with fwAD.dual_level():`")
    if not isinstance(tensor, Tensor) or not isinstance(tangent, Tensor):
        raise TypeError("make_dual: expected the primal and the tangent to be Tensors")
    if tuple(tensor.shape) != tuple(tangent.shape):
        raise RuntimeError(f"Trying to set a forward gradient that has a different size than that of the original "
                           f"Tensor, this is not supported. Tensor is of size {tuple(tensor.shape)} while the given "
                           f"forward gradient is of size {tuple(tangent.shape)}.")
    if tensor.dtype.kind != "f":
        raise ValueError(f"make_dual: expected a floating point primal, got {tensor.dtype}")
    with grad_mode.enable_grad():
        dual = tensor * 1 if tensor.requires_grad else tensor.detach().requires_grad_(True)
    lv["duals"].append((dual, tangent))
    return dual


def unpack_dual(tensor, *, level=None):
    """``(primal, tangent)`` of ``tensor``: its tangent is the directional derivative along the
    tangents of the level's duals (None when it does not depend on them)."""
    lv = _level()
    if lv is None or not isinstance(tensor, Tensor):
        return UnpackedDualTensor(tensor, None)
    for d, t in lv["duals"]:
        if d is tensor:
            return UnpackedDualTensor(tensor, t)
    if not tensor.requires_grad or tensor.dtype.kind != "f":
        return UnpackedDualTensor(tensor, None)
    duals = [d for d, _ in lv["duals"]]
    with grad_mode.enable_grad():
        u = Tensor._wrap(np.zeros(tensor.shape, tensor.dtype)).requires_grad_(True)
        g = autograd.grad(tensor, duals, u, retain_graph=True, create_graph=True, allow_unused=True)
        pairs = [(gi, t) for gi, (_, t) in zip(g, lv["duals"]) if gi is not None]
        if not pairs:
            return UnpackedDualTensor(tensor, None)
        (jv,) = autograd.grad([p[0] for p in pairs], u, [p[1] for p in pairs], retain_graph=True, allow_unused=True)
    if jv is None:  # linear in no dual: a zero tangent
        jv = Tensor._wrap(np.zeros(tensor.shape, tensor.dtype))
    return UnpackedDualTensor(tensor, jv.detach())


__all__ = ["UnpackedDualTensor", "dual_level", "enter_dual_level", "exit_dual_level", "make_dual", "unpack_dual"]
