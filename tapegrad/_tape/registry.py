"""The op table: one declaration per op, forward and every input's VJP side by side.

An op's forward works on numpy arrays. Each VJP is written in tapegrad ops with the
signature ``vjp(g, out, *inputs, **attrs)``, so that with ``create_graph=True`` the
gradients are themselves recorded and differentiable (with ``create_graph=False`` the
engine runs them with recording off and they cost no tape). Gradients come back in the
shape the op produced them; the engine reduces broadcast dimensions once, for every op.

Adding an op is adding one ``defop`` call.
"""
from __future__ import annotations

import functools
import itertools
import sys

import numpy as np
from typing import Callable, Sequence

from . import grad_mode
from .node import Node, node_type

OPS: dict[str, "Op"] = {}
_grad_state = grad_mode.state


class Op:
    """A primitive: a numpy forward and one VJP per tensor input (None: not differentiable there).

    ``saves``: indices of inputs the VJPs read (others are passed as None, so the tape does
    not keep them alive); ``saves_output``: whether the VJPs read ``out``. ``view``: the
    output may share memory with input 0 (it then shares its version counter). ``aux``: the
    forward returns ``(out, aux)``; ``aux`` (e.g. argmax indices) is passed to the VJPs as the
    keyword ``aux`` and not differentiated. ``variadic``: the op takes any number of tensors
    (``cat``); its one VJP serves every input and is told which by the keyword ``index``.
    """

    __slots__ = ("name", "forward", "vjps", "saves", "saves_output", "view", "aux", "differentiable",
                 "all_differentiable", "partial_saves", "node_type")

    def __init__(self, name, forward, vjps, saves, saves_output, view, aux, variadic=False):
        self.name = name
        self.forward = forward
        self.vjps = _EachInput(vjps[0]) if variadic else tuple(vjps)
        self.saves = frozenset(() if variadic and saves is None else range(len(vjps)) if saves is None else saves)
        self.saves_output = saves_output
        self.view = view
        self.aux = aux
        self.differentiable = any(v is not None for v in vjps)
        self.all_differentiable = all(v is not None for v in vjps)
        # some input is not kept: the engine passes its VJPs a shape-and-dtype stand-in
        self.partial_saves = variadic or len(self.saves) < len(vjps)
        self.node_type = node_type(name)  # the Node subclass it records (MulBackward0 for mul)

    def __repr__(self):
        return f"<op {self.name}>"


class _EachInput:
    """The VJPs of a variadic op: ``vjps[i]`` is its one VJP with ``index=i`` bound."""

    __slots__ = ("vjp",)

    def __init__(self, vjp):
        self.vjp = vjp

    def __getitem__(self, i):
        return functools.partial(self.vjp, index=i)

    def __iter__(self):
        return (self[i] for i in itertools.count())


def defop(name: str, forward: Callable, *vjps: Callable | None, saves: Sequence[int] | None = None,
          saves_output: bool = False, view: bool = False, aux: bool = False, variadic: bool = False) -> Op:
    """Declare an op. Returns the ``Op``; call it with ``apply(op, *tensors, **attrs)``."""
    if name in OPS:
        raise ValueError(f"op {name!r} is declared twice")
    if variadic and len(vjps) != 1:
        raise ValueError(f"variadic op {name!r} takes exactly one VJP")
    op = Op(name, forward, vjps, saves, saves_output, view, aux, variadic)
    OPS[name] = op
    return op


_PKG_DIR = __file__.rsplit("/_tape/", 1)[0]


_INSIDE: dict[str, bool] = {}  # co_filename -> whether it is tapegrad's own code


def _user_frame() -> tuple[str, int]:
    """(filename, line) of the first caller outside tapegrad: where the user created a node."""
    f = sys._getframe(2)
    inside = _INSIDE
    while f is not None:
        name = f.f_code.co_filename
        own = inside.get(name)
        if own is None:
            own = inside[name] = name.startswith(_PKG_DIR)
        if not own:
            return name, f.f_lineno
        f = f.f_back
    return "?", 0


def _forward_failed(op: Op, inputs, e: ValueError):
    """numpy's words (e.g. broadcasting), said with the op and the shapes."""
    shapes = ", ".join(str(tuple(t._data.shape)) for t in inputs)
    raise RuntimeError(f"{op.name}: {e} (input shapes {shapes})") from None


def apply(op: Op, *inputs, **attrs):
    """Run ``op`` on tensors; record a node when grad mode is on and an input requires grad."""
    n = len(inputs)  # unpacked by hand for the usual arities: this runs for every op
    try:
        if n == 2:
            out = op.forward(inputs[0]._data, inputs[1]._data, **attrs)
        elif n == 1:
            out = op.forward(inputs[0]._data, **attrs)
        else:
            out = op.forward(*[t._data for t in inputs], **attrs)
    except ValueError as e:
        _forward_failed(op, inputs, e)
    aux = None
    if op.aux:
        out, aux = out
    if type(out) is not np.ndarray:  # numpy returns scalars from 0-d computations
        out = np.asarray(out)
    result = Tensor.__new__(Tensor)
    result._data = out
    result.grad = None
    result._retains_grad = False
    result._hooks = None
    if op.view:
        result._version = inputs[0]._version
        base = inputs[0]
        # only a view of a tensor that requires grad needs its base (to refuse in-place writes)
        result._base = (base if base._base is None else base._base) if base._requires_grad else None
    else:
        result._version = [0]
        result._base = None
    if _grad_state.enabled and op.differentiable:
        for t in inputs:
            if t._requires_grad:
                result._requires_grad = True
                result.grad_fn = op.node_type(op, inputs, attrs, out, result._version,
                                      aux, _user_frame())
                return result
    result._requires_grad = False
    result.grad_fn = None
    return result


Tensor = None  # the class ``apply`` creates; tensor.py hands it down (bind_tensor): the tape sits below it


def bind_tensor(cls) -> None:
    """Called once, by tensor.py through ``ops.bind_tensor``, when ``Tensor`` is defined."""
    global Tensor
    Tensor = cls
    if _native_tape:
        _C.tape_register("Tensor", cls)


from .. import _C, _native_tape  # noqa: E402
from . import node as _node  # noqa: E402

if _native_tape:  # the same function in C++ (csrc/tape.cpp): no interpreter cost per op
    for _name, _obj in (("Node", Node), ("Op", Op), ("grad_state", _grad_state),
                        ("ndarray", np.ndarray), ("asarray", np.asarray), ("seq", _node._seq),
                        ("pkg_dir", _PKG_DIR), ("inside", _INSIDE), ("forward_failed", _forward_failed)):
        _C.tape_register(_name, _obj)
    apply = _C.apply  # noqa: F811
