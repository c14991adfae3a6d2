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
from typing import Callable, Sequence

from .. import _C
from .node import node_type

OPS: dict[str, "Op"] = {}


class Op(_C.Op):
    """A primitive: a numpy forward and one VJP per tensor input (None: not differentiable there).

    ``saves``: indices of inputs the VJPs read (others are passed as None, so the tape does
    not keep them alive); ``saves_output``: whether the VJPs read ``out``. ``view``: the
    output may share memory with input 0 (it then shares its version counter). ``aux``: the
    forward returns ``(out, aux)``; ``aux`` (e.g. argmax indices) is passed to the VJPs as the
    keyword ``aux`` and not differentiated. ``variadic``: the op takes any number of tensors
    (``cat``); its one VJP serves every input and is told which by the keyword ``index``.
    The fields are C++'s (``_C.Op``), read-only once set.
    """

    __slots__ = ()

    def __init__(self, name, forward, vjps, saves, saves_output, view, aux, variadic=False):
        saves = frozenset(() if variadic and saves is None else range(len(vjps)) if saves is None else saves)
        super().__init__(
            name, forward, _EachInput(vjps[0]) if variadic else tuple(vjps), saves,
            node_type(name),  # the Node subclass it records (MulBackward0 for mul)
            saves_output=saves_output, view=view, aux=aux,
            differentiable=any(v is not None for v in vjps),
            all_differentiable=all(v is not None for v in vjps),
            # some input is not kept: the engine passes its VJPs a shape-and-dtype stand-in
            partial_saves=variadic or len(saves) < len(vjps))

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


# apply(op, *tensors, **attrs): run ``op`` on tensors; record a node when grad mode is on (in
# this thread) and an input requires grad. In C++ (csrc/tape.cpp): it runs for every op.
apply = _C.apply


def bind_tensor(cls) -> None:
    """Called once, by tensor.py through ``ops.bind_tensor``: the class the tape creates (apply's
    results, gradients), handed down so that the tape never imports tensor.py."""
    _C._set_tensor_class(cls)
