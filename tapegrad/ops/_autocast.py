"""Autocast's per-thread state and the casting rule of the ops it covers (PyTorch's CPU lists).

The state (``tapegrad.amp`` reads and sets it) is per thread, as PyTorch's: a thread started
inside ``with autocast("cpu"):`` runs without autocast. An op declared with
``@cast_inputs(LOWER)`` (PyTorch's ``lower_precision_fp`` list on the CPU: linear, matmul, mm,
bmm, addmm, baddbmm, addbmm, the convolutions, prelu, scaled_dot_product_attention) casts its
floating tensor arguments, float64 excepted, to the autocast dtype; one with
``@cast_inputs(FP32)`` (losses, ``prod``, ``cdist``, ``trace``, linear algebra) casts them to
float32. Inside the op autocast is off, so the ops it is made of cast nothing more (PyTorch
excludes its autocast dispatch key the same way). The 16-bit ops compute in float32 and round
their results once (``_tape.registry``): GEMM and convolution accumulate in float32.
"""
from __future__ import annotations

import functools
import threading

from .. import _dtype

Tensor = None  # the Tensor class, bound by tensor.py (ops.bind_tensor): the ops sit below it

LOWER, FP32 = "lower_precision_fp", "fp32"
GPU_TYPES = ("cuda", "mps", "xpu", "hpu", "mtia", "maia", "xla")  # known to PyTorch, never available here


def _defaults():
    # CPU autocast defaults to bfloat16, as PyTorch's; its name stands in when ml_dtypes is missing
    # (entering autocast then says what to install)
    cpu = _dtype.bfloat16 if _dtype.bfloat16 is not None else "bfloat16"
    return {"cpu": [False, cpu], **{d: [False, _dtype.float16] for d in GPU_TYPES}}


class _State(threading.local):
    def __init__(self):
        self.devices = _defaults()
        self.cache_enabled = True


state = _State()


def cast_inputs(policy):
    """Decorate an op's public function with its autocast policy (``LOWER`` or ``FP32``)."""
    def decorate(fn):
        @functools.wraps(fn)
        def op(*args, **kwargs):
            cpu = state.devices["cpu"]
            if not cpu[0]:
                return fn(*args, **kwargs)
            to = cpu[1] if policy == LOWER else _dtype.float32
            args = [_cast(a, to) for a in args]
            kwargs = {k: _cast(v, to) for k, v in kwargs.items()}
            cpu[0] = False
            try:
                return fn(*args, **kwargs)
            finally:
                cpu[0] = True
        return op
    return decorate


def _cast(value, to):
    if isinstance(value, Tensor):
        d = value._data.dtype
        if d != to and d != _dtype.float64 and _dtype.is_floating(d):
            return value.to(to)
        return value
    if isinstance(value, (list, tuple)) and any(isinstance(v, Tensor) for v in value):
        return type(value)(_cast(v, to) for v in value)
    return value


def round_once(fn):
    """A composite op (``linear``'s product plus bias, ``addmm``) on 16-bit tensors computes in
    float32 and rounds once at the end, as PyTorch's fused CPU kernels do; gradients come back
    in each input's dtype through the casts."""
    @functools.wraps(fn)
    def op(*args, **kwargs):
        half = {a._data.dtype for a in args if isinstance(a, Tensor) and _dtype.is_16bit_float(a._data.dtype)}
        if len(half) != 1:
            return fn(*args, **kwargs)
        d = half.pop()
        if _dtype.result_type(*[a._data for a in args if isinstance(a, Tensor)]) != d:
            return fn(*args, **kwargs)  # a float32/64 operand makes the result wider: nothing to round to 16 bits
        args = [a.to(_dtype.float32) if isinstance(a, Tensor) and a._data.dtype == d else a for a in args]
        kwargs = {k: v.to(_dtype.float32) if isinstance(v, Tensor) and v._data.dtype == d else v
                  for k, v in kwargs.items()}
        out = fn(*args, **kwargs)
        return out.to(d) if isinstance(out, Tensor) and out._data.dtype == _dtype.float32 else out
    return op
