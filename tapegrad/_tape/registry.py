"""The op table: one declaration per op, forward and every input's VJP side by side.

An op's forward works on numpy arrays. Each VJP is written in tapegrad ops with the
signature ``vjp(g, out, *inputs, **attrs)``, so that with ``create_graph=True`` the
gradients are themselves recorded and differentiable (with ``create_graph=False`` the
engine runs them with recording off and they cost no tape). Gradients come back in the
shape the op produced them; the engine reduces broadcast dimensions once, for every op.

Adding an op is adding one ``defop`` call.
"""
from __future__ import annotations

import dis
import functools
import inspect
import itertools
import math
import types
from typing import Callable, Sequence

import numpy as np

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
    ``exact16``: the forward handles float16/bfloat16 arrays itself (it moves or casts data);
    every other forward sees them as float32 (see ``_in_float32``). ``half``: the float32 kernel
    the forward calls, which then runs fused on 16-bit inputs (see ``_map16``).
    The fields are C++'s (``_C.Op``), read-only once set.
    """

    __slots__ = ()

    def __init__(self, name, forward, vjps, saves, saves_output, view, aux, variadic=False, exact16=False,
                 half=None, reads=None):
        forward16 = None if view or exact16 else _in_float32(forward, aux, half)
        saves = frozenset(() if variadic and saves is None else range(len(vjps)) if saves is None else saves)
        super().__init__(
            name, forward, _EachInput(vjps[0]) if variadic else tuple(vjps), saves,
            node_type(name),  # the Node subclass it records (MulBackward0 for mul)
            saves_output=saves_output, view=view, aux=aux,
            differentiable=any(v is not None for v in vjps),
            all_differentiable=all(v is not None for v in vjps),
            # some input is not kept: the engine passes its VJPs a shape-and-dtype stand-in
            partial_saves=variadic or len(saves) < len(vjps),
            forward16=forward16,  # apply calls it instead when an input has 2-byte elements
            reads=None if variadic else _reads(vjps) if reads is None else
            tuple(sum(1 << i for i in r) for r in reads))

    def __repr__(self):
        return f"<op {self.name}>"


def _reads(vjps):
    """Per input, the bit mask of the inputs its VJP reads (``vjp(g, out, *inputs, **attrs)``): a
    parameter its code never loads is not read. The node then keeps only what a VJP that will
    run needs (csrc/tape.h, OpObject::reads). None when too many inputs for the masks."""
    n = len(vjps)
    if n > 8:
        return None
    return tuple(0 if v is None else _read_mask(v, n) for v in vjps)


_LOADS = ("LOAD_FAST", "LOAD_DEREF", "LOAD_CLOSURE")  # prefixes: LOAD_FAST_CHECK, LOAD_FAST_LOAD_FAST, ...


def _read_mask(vjp, n) -> int:
    """The inputs ``vjp`` may read; all of them whenever that cannot be told from its code (not a
    plain function, ``*args``, ``locals()``, an input captured by an inner function)."""
    code = vjp.__code__ if isinstance(vjp, types.FunctionType) else None
    if (code is None or code.co_flags & inspect.CO_VARARGS or code.co_argcount < 2 + n
            or {"locals", "vars", "eval", "exec"} & set(code.co_names)):
        return (1 << n) - 1
    names = code.co_varnames[2:2 + n]
    used = set(code.co_cellvars) & set(names)  # captured by a closure: read there
    for ins in dis.get_instructions(code):
        if ins.opname.startswith(_LOADS):
            v = ins.argval
            used.update(v if isinstance(v, tuple) else (v,))
    return sum(1 << i for i, name in enumerate(names) if name in used)


class _EachInput:
    """The VJPs of a variadic op: ``vjps[i]`` is its one VJP with ``index=i`` bound."""

    __slots__ = ("vjp",)

    def __init__(self, vjp):
        self.vjp = vjp

    def __getitem__(self, i):
        return functools.partial(self.vjp, index=i)

    def __iter__(self):
        return (self[i] for i in itertools.count())


def _is16(d) -> bool:
    # float16, or ml_dtypes' bfloat16 (kind 'V'), without importing ml_dtypes into the tape; its scalar
    # type's name, as dtype.name is a Python property (1 us a call)
    return d.itemsize == 2 and (d.kind == "f" or (d.kind == "V" and d.type.__name__ == "bfloat16"))


def _in_float32(forward, aux, half=None):
    """float16 and bfloat16 are storage dtypes, as in PyTorch's CPU kernels: the forward computes
    on float32 copies (so reductions, GEMM and conv accumulate in float32 and every kernel has
    one float32 path) and each float32 result is rounded once to the 16-bit dtype. That dtype is
    input 0's when input 0 is 16-bit (``layer_norm(bf16, weight=f32)`` is bf16, as PyTorch's
    mixed-dtype kernels), else the one 16-bit dtype of the inputs unless a wider float input has
    dimensions (``where(mask, a, b)`` and ``1.7 - x`` round; ``index_put(f32, i, bf16)`` does not).
    A 0-d float32 beside a 16-bit tensor is a scalar kept in float32 (``ops._util.pair``).
    ``half``: the forward's float32 kernel (``_map16``), run fused where it takes the inputs; a numpy
    ufunc of one operand is its own."""
    if half is None and isinstance(forward, np.ufunc) and forward.nin == 1 and forward.nout == 1:
        half = forward

    def forward32(*arrays, **attrs):
        for a in arrays:
            if a.dtype.itemsize == 2 and _is16(a.dtype):
                break
        else:  # no 16-bit input: the forward as declared, at the cost of this loop
            return forward(*arrays, **attrs)
        first = arrays[0].dtype
        if _is16(first):
            target = first
        else:
            halves = {a.dtype for a in arrays if _is16(a.dtype)}
            wide = any(a.ndim and a.dtype.kind == "f" and not _is16(a.dtype) for a in arrays)
            target = halves.pop() if len(halves) == 1 and not wide else None
        code = _FUSED16.get(forward)
        if code is not None and target is not None and not attrs:
            out = _binary16(code, arrays, target)
            if out is not None:
                return out
        if half is not None and target is not None and not aux:
            spec = half(**attrs) if isinstance(half, types.FunctionType) else None if attrs else half
            if spec is not None:
                name, *params = spec if isinstance(spec, tuple) else (spec,)
                out = _map16(name, arrays, target, params)
                if out is not None:
                    return out
        out = forward(*[_widen(a) if _is16(a.dtype) else a for a in arrays], **attrs)
        if target is None:
            return out
        if aux:
            return _round16(out[0], target), out[1]
        return _round16(out, target)
    forward32.__name__ = getattr(forward, "__name__", "forward")
    forward32.__wrapped__ = forward
    return forward32


# From this size a conversion runs natively (csrc/kernels/convert.h: F16C for float16, on the
# kernel threads), with the bits of numpy's and ml_dtypes' casts: float32 -> float16 1.8 ms ->
# 0.22 ms for 1e6 elements on one thread (numpy's is a scalar loop), -> bfloat16 0.86 -> 0.25 ms.
# Below it the call's fixed cost (an empty array, a view) is more than the cast's.
_NATIVE16 = 1 << 10


def _widen(a):
    """float32 copy of a 16-bit array (exact). bfloat16 is float32's top half: a shift."""
    if a.size >= _NATIVE16 and a.flags.c_contiguous and type(a) is np.ndarray:
        out = np.empty(a.shape, np.float32)
        _C._convert_half(a.view(np.uint16), out, a.dtype.kind != "f")
        return out
    if a.dtype.kind == "f":
        return a.astype(np.float32)
    return (a.view(np.uint16).astype(np.uint32) << 16).view(np.float32)


# numpy's add / subtract / multiply / divide (the forwards of add, sub, mul, div): on 16-bit
# tensors one native pass (csrc/kernels/convert.h's binary_half) with the bits of the float32
# detour, where that detour made three passes and two temporaries: float16 h + h over 1e6
# elements 1.2 -> 0.3 ms (PyTorch 0.22).
_FUSED16 = {np.add: 0, np.subtract: 1, np.multiply: 2, np.true_divide: 3}


def _binary16(code, arrays, target):
    """``arrays[0] op arrays[1]`` rounded to ``target`` in one pass, or None where the kernel does not
    take them: each a C-contiguous ``target`` array of the result's shape, or a 0-d number (a
    float32 scalar, or one of ``target``)."""
    if len(arrays) != 2:
        return None
    shape, args = None, []
    for a in arrays:
        if a.ndim == 0 and (a.dtype == np.float32 or a.dtype == target):
            args.append(float(a))
        elif a.dtype == target and a.flags.c_contiguous and type(a) is np.ndarray and (shape is None or a.shape == shape):
            shape = a.shape
            args.append(a)
        else:
            return None
    if shape is None or math.prod(shape) < _NATIVE16:
        return None
    out = np.empty(shape, target)
    args = [a.view(np.uint16) if isinstance(a, np.ndarray) else a for a in args]
    _C._binary_half(code, args[0], args[1], out.view(np.uint16), target.kind != "f")
    return out


def _map16(name, arrays, target, params=()):
    """An elementwise op on 16-bit arrays in one fused pass (csrc/kernels/convert.h's map_half: each
    block widened to float32, the float32 kernel, rounded once), with the float32 detour's bits; or
    None where it does not take them. One array: the forward ``name(x)``, ``name`` a kernel of
    ``_C._unary_half`` (pointwise.h's, relu, gelu, gelu_tanh, silu) or a numpy ufunc (negative,
    absolute, sqrt, or one whose float32 loop the threads run: tanh, sin, log1p, ...); two: the
    backward ``g * name'(s)`` (``_C._unary_half_backward``). ``params``: the kernel's p0..p2, as the
    float32 forward passes them. The arrays: exact ndarrays of ``target`` and one shape, at least
    ``_NATIVE16`` elements; the result keeps a C or F order, anything else is read in C order
    (a copy of 2-byte elements, still less than the detour's float32 passes).

    The threads' blocks run the float32 kernel as its own call does, so where the op's float32 forward
    (or VJP) calls that kernel the bits are the detour's. 1e6 elements on one thread, float16:
    exp 0.80 -> 0.42 ms (PyTorch 0.44), relu 0.79 -> 0.27 (0.21), gelu forward + backward 6.3 ->
    1.4 (1.5)."""
    a0 = arrays[0]
    if a0.size < _NATIVE16 or len(arrays) > 2:
        return None
    for a in arrays:
        if type(a) is not np.ndarray or a.dtype != target or a.shape != a0.shape:
            return None
    if all(a.flags.c_contiguous for a in arrays):
        flip = False
    elif all(a.flags.f_contiguous for a in arrays):
        flip, arrays = True, [a.T for a in arrays]
    else:
        flip, arrays = False, [np.ascontiguousarray(a) for a in arrays]
    out = np.empty(arrays[0].shape, target)
    u = [a.view(np.uint16) for a in arrays]
    bf16 = target.kind != "f"
    if len(u) == 1:
        if not _C._unary_half(name, u[0], out.view(np.uint16), bf16, *params):
            return None
    else:
        _C._unary_half_backward(name, u[0], u[1], out.view(np.uint16), bf16, *params)
    return out.T if flip else out


def _round16(out, target):
    """A float32 result rounded to the 16-bit ``target`` (nearest even); other dtypes as they are."""
    out = np.asarray(out)
    if out.dtype != np.float32:
        return out
    if out.size >= _NATIVE16 and out.flags.c_contiguous and type(out) is np.ndarray:
        r = np.empty(out.shape, target)
        _C._convert_half(out, r.view(np.uint16), target.kind != "f")
        return r
    return out.astype(target)


def defop(name: str, forward: Callable, *vjps: Callable | None, saves: Sequence[int] | None = None,
          saves_output: bool = False, view: bool = False, aux: bool = False, variadic: bool = False,
          exact16: bool = False, half=None, reads: Sequence[Sequence[int]] | None = None) -> Op:
    """Declare an op. Returns the ``Op``; call it with ``apply(op, *tensors, **attrs)``.

    ``reads``: per VJP, the inputs whose values it reads, where its code reads more than that (a
    VJP of ``x @ w`` looks at ``x``'s shape and layout only): a node keeps an input only for the
    VJPs that will run and read it, and passes the others a shape-and-dtype stand-in. Without it
    the read sets come from the VJPs' code (``_reads``).

    ``half``: the float32 kernel that ``forward`` calls on float32 arrays, so that 16-bit tensors
    run it fused (``_map16``) with the same bits: a kernel name, a numpy ufunc, a tuple
    ``(name, p0, p1, p2)`` of a kernel and its parameters, or a function of the op's attributes
    returning one of those or None (the detour). A one-operand ufunc forward is its own."""
    if name in OPS:
        raise ValueError(f"op {name!r} is declared twice")
    if variadic and len(vjps) != 1:
        raise ValueError(f"variadic op {name!r} takes exactly one VJP")
    if reads is not None and (variadic or len(reads) != len(vjps)):
        raise ValueError(f"op {name!r}: reads names the inputs each of its {len(vjps)} VJPs reads")
    op = Op(name, forward, vjps, saves, saves_output, view, aux, variadic, exact16, half, reads)
    OPS[name] = op
    return op


class SliceGrad(tuple):
    """``(index, grad)``: what a VJP may return, outside create_graph, for an input whose gradient
    is ``grad`` at a basic ``index`` and zero elsewhere. The engine writes it into the input's
    pending gradient (csrc/tape.cpp, add_slice_into): pieces of one tensor (split, unbind,
    ``q, k, v = qkv``) fill one array instead of each making a full-size zero array to be summed."""
    __slots__ = ()

    def __new__(cls, index, grad):
        return tuple.__new__(cls, (index, grad))


_C._set_slice_grad_class(SliceGrad)


class ZeroedGrad(tuple):
    """``(g, zero_in_place, zeroed_copy)``: what a VJP may return, outside create_graph, for an
    input whose gradient is the upstream gradient ``g`` with a region zeroed (setitem's, for the
    tensor written into). After the node's other VJPs ran, the engine calls
    ``zero_in_place(g's array)`` and passes ``g`` on when nothing else holds it or its memory,
    else it passes ``zeroed_copy(g)``: a chain of writes into one buffer then costs the regions
    written, not a copy of the buffer per write."""
    __slots__ = ()

    def __new__(cls, g, zero_in_place, zeroed_copy):
        return tuple.__new__(cls, (g, zero_in_place, zeroed_copy))


_C._set_zeroed_grad_class(ZeroedGrad)


def _plain_grad(raw, shape, dtype):
    """A VJP's result as the input's gradient: a SliceGrad or ZeroedGrad made whole (the engine's
    cheaper forms, csrc/tape.cpp), a broadcast gradient summed to the input's shape."""
    if isinstance(raw, SliceGrad):
        index, piece = raw
        z = np.zeros(shape, dtype)
        z[index] = piece._data
        return piece._wrap(z)
    if isinstance(raw, ZeroedGrad):
        return raw[2](raw[0])
    if tuple(raw.shape) != tuple(shape):
        raw = raw.sum_to_size(shape)
    return raw if raw._data.dtype == dtype else raw.to(dtype)


def run_post_hooks(node, raw, g):
    """The engine's call for a node with ``register_hook`` hooks (csrc/tape.cpp, pass_post_hooked):
    the gradients to pass on, one per input (None where none flows), after every hook ran."""
    meta = node.meta
    grads = tuple(None if r is None else _plain_grad(r, *meta[i]) for i, r in enumerate(raw))
    for fn in list(node.post_hooks.values()):
        out = fn(grads, (g,))
        if out is None:
            continue
        name = getattr(fn, "__name__", repr(fn))
        if not isinstance(out, (tuple, list)) or len(out) != len(grads):
            raise RuntimeError(f"hook '{name}' of {node.name()}.register_hook returned "
                               f"{type(out).__name__}{'' if not isinstance(out, (tuple, list)) else f' of {len(out)}'}: "
                               f"expected None or a tuple of {len(grads)} (one gradient per input of the op)")
        for i, new in enumerate(out):
            if new is None:
                continue
            if not isinstance(new, _C.TensorBase):
                raise TypeError(f"hook '{name}' of {node.name()}.register_hook returned {type(new).__name__} for input "
                                f"{i}: expected a Tensor or None")
            if tuple(new._data.shape) != tuple(meta[i][0]):
                raise RuntimeError(f"hook '{name}' of {node.name()}.register_hook has changed the size of the gradient "
                                   f"of input {i}: expected shape {tuple(meta[i][0])}, got {tuple(new._data.shape)}")
        grads = tuple(out)
    return grads


_C._set_post_hook_runner(run_post_hooks)


# apply(op, *tensors, **attrs): run ``op`` on tensors; record a node when grad mode is on (in
# this thread) and an input requires grad. In C++ (csrc/tape.cpp): it runs for every op.
apply = _C.apply
_Tensor = None  # the Tensor class (bind_tensor)


def apply_aux(op, x, attrs, need_aux=True):
    """``(output tensor, aux or None)`` of an op declared with ``aux=True`` on one tensor ``x``:
    where a node is recorded its VJP keeps aux (handed out as a copy, so a caller's writes cannot
    reach the backward); with nothing to record the forward runs directly, since ``apply`` drops
    aux. ``need_aux`` False: the caller does not use aux (no copy is made)."""
    if _C.grad_state.enabled and x._requires_grad:
        y = apply(op, x, **attrs)
        return y, (y.grad_fn.aux.copy() if need_aux else None)
    forward = op.forward if op.forward16 is None else op.forward16  # it takes any dtype
    try:
        y, aux = forward(x._data, **attrs)
    except (MemoryError, ValueError) as e:  # as apply words them (tape.cpp's forward_failed)
        raise (MemoryError if isinstance(e, MemoryError) else RuntimeError)(
            f"{op.name}: {e} (input shapes {x._data.shape})") from None
    return _Tensor._wrap(y), aux


def bind_tensor(cls) -> None:
    """Called once, by tensor.py through ``ops.bind_tensor``: the class the tape creates (apply's
    results, gradients), handed down so that the tape never imports tensor.py."""
    global _Tensor
    _Tensor = cls
    _C._set_tensor_class(cls)
