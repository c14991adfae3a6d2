"""Activation functions (``relu``, ``gelu``, ``silu``, ``softmax``, ...) and ``one_hot``."""
from __future__ import annotations

import math

import numpy as np
import scipy.special as _sp

from .. import _C, _dtype
from . import _kernels
from . import inplace as _inplace_module
from .._tape import grad_mode
from .._tape.registry import apply, defop
from ._util import blend, const, names_allocations, norm_dim
from .pointwise import _masked, _no_bool, _unary, abs, erf, exp, log, log1p, rsqrt, sigmoid, tanh, where
from ._autocast import LOWER, cast_inputs
from . import surface
from .surface import public

Tensor = None  # the Tensor class, bound by tensor.py (ops.bind_tensor): the ops sit below it


def _float_input(input, opname):
    d = input._data.dtype
    if d.kind != "f" and _dtype.kind_of(d) != "f":
        raise RuntimeError(f"{opname}: not implemented for integer or bool tensors "
                           f"(got {_dtype.name(input._data.dtype)}); convert with .float() first")
    return input


def _native(*arrays):
    """Whether the C++ row kernels take these arrays: one dtype, float32 or float64, non-empty
    (any layout: the callers pass C-contiguous copies)."""
    a0 = arrays[0]
    dt = a0.dtype
    if not (dt is _F32 or dt is _F64 or dt in (np.float32, np.float64)) or a0.size == 0:  # (identity first: 10 ns,
        return False                                                                   # the tuple's compare 200)
    return len(arrays) == 1 or all(a.dtype == dt for a in arrays)


_F32, _F64 = np.dtype(np.float32), np.dtype(np.float64)


def _first_order():
    """True inside a backward pass without create_graph (recording off): a VJP may then call a
    fused kernel on arrays; with create_graph it must stay in tapegrad ops to be differentiable."""
    return not grad_mode.is_grad_enabled()


def _same(fn):
    """A numpy forward whose result keeps the input's float dtype (scipy computes in float64)."""
    return lambda x, **kw: np.asarray(fn(x, **kw), dtype=x.dtype)


# ---------------------------------------------------------------- pointwise activations
# Each is one op: forward and first-order backward one pass of a C++ kernel (_kernels) for float32
# and float64, a numpy forward and a composite VJP otherwise (other dtypes, create_graph).
def _leaky_relu_fwd(x, negative_slope):
    y = _kernels.forward("leaky_relu", x, negative_slope)
    return blend(x > 0, x, x * negative_slope) if y is None else y


def _leaky_relu_vjp(g, out, x, negative_slope):
    gx = _kernels.backward("leaky_relu", g, x, negative_slope)
    return where(x > 0, g, g * negative_slope) if gx is None else gx


_leaky_relu = defop("leaky_relu", _same(_leaky_relu_fwd), _leaky_relu_vjp,
                    half=lambda negative_slope: ("leaky_relu", negative_slope))


@public
def leaky_relu(input, negative_slope=0.01, inplace=False):
    """``x`` where ``x > 0``, else ``negative_slope * x``."""
    return apply(_leaky_relu, _float_input(input, "leaky_relu"), negative_slope=float(negative_slope))


def _elu_fwd(x, alpha, scale, input_scale):
    y = _kernels.forward("elu", x, alpha, scale, input_scale) if input_scale > 0 else None
    if y is None:  # expm1 of the non-positive side only (no overflow warnings from the other)
        y = np.where(x > 0, x * scale, (alpha * scale) * np.expm1(np.where(x > 0, 0, x) * input_scale))
    return y


def _elu_vjp(g, out, x, alpha, scale, input_scale):
    gx = _kernels.backward("elu", g, x, alpha, scale, input_scale) if input_scale > 0 else None
    if gx is None:
        gx = where(x > 0, g * scale, g * exp(x * input_scale) * (alpha * scale * input_scale))
    return gx


# PyTorch's elu kernel with its scale and input_scale: elu, selu and celu are this one op
_elu = defop("elu", _same(_elu_fwd), _elu_vjp, half=lambda alpha, scale, input_scale: (
    ("elu", alpha, scale, input_scale) if input_scale > 0 else None))


def elu_op(input, alpha, scale=1.0, input_scale=1.0, opname="elu"):
    """``scale x`` for ``x > 0``, else ``alpha scale (exp(input_scale x) - 1)``: PyTorch's elu kernel,
    which ``selu`` and ``celu`` call with their constants."""
    return apply(_elu, _float_input(input, opname), alpha=float(alpha), scale=float(scale),
                 input_scale=float(input_scale))


@public
def elu(input, alpha=1.0, inplace=False):
    """``x`` where ``x > 0``, else ``alpha * (exp(x) - 1)``."""
    return elu_op(input, alpha)


def _hardswish_fwd(x):
    y = _kernels.forward("hardswish", x)
    return x * np.clip(x + 3, 0, 6) / 6 if y is None else y


def _hardswish_vjp(g, out, x):
    gx = _kernels.backward("hardswish", g, x)
    if gx is None:  # PyTorch's hardswish_backward: 0 below -3, g (x / 3 + 1/2) up to 3, g above
        gx = where(x < -3, g * 0, where(x <= 3, g * (x / 3 + 0.5), g))
    return gx


_hardswish = defop("hardswish", _same(_hardswish_fwd), _hardswish_vjp, half="hardswish")


def hardswish(input):
    """``x * relu6(x + 3) / 6``."""
    return apply(_hardswish, _float_input(input, "hardswish"))


def _hardsigmoid_fwd(x):
    y = _kernels.forward("hardsigmoid", x)
    return np.clip(x + 3, 0, 6) / 6 if y is None else y


def _hardsigmoid_vjp(g, out, x):
    gx = _kernels.backward("hardsigmoid", g, x)
    return _masked(g / 6, (x > -3) & (x < 3)) if gx is None else gx


_hardsigmoid = defop("hardsigmoid", _same(_hardsigmoid_fwd), _hardsigmoid_vjp, half="hardsigmoid")


def hardsigmoid(input):
    """``relu6(x + 3) / 6``."""
    return apply(_hardsigmoid, _float_input(input, "hardsigmoid"))


def _mish_fwd(x):
    y = _kernels.forward("mish", x)
    return x * np.tanh(np.logaddexp(0, x)) if y is None else y


def _mish_vjp(g, out, x):
    gx = _kernels.backward("mish", g, x)
    if gx is None:
        t = tanh(softplus(x))
        gx = g * (t + x * sigmoid(x) * (1 - t * t))
    return gx


_mish = defop("mish", _same(_mish_fwd), _mish_vjp, half="mish")


def mish(input):
    """``x * tanh(softplus(x))``."""
    return apply(_mish, _float_input(input, "mish"))


_SQRT1_2 = 1 / math.sqrt(2)
_INV_SQRT_2PI = 1 / math.sqrt(2 * math.pi)
_K_TANH = math.sqrt(2 / math.pi)
_GELU_KERNEL = {"none": "gelu", "tanh": "gelu_tanh"}  # the kernels' names (16-bit tensors: _kernels.backward)


def _gelu_fwd(x, approximate):
    if _native(x):
        return _C.gelu(np.ascontiguousarray(x), approximate == "tanh").reshape(x.shape)  # 0-d stays 0-d
    if approximate == "tanh":
        return 0.5 * x * (1 + np.tanh(_K_TANH * (x + 0.044715 * x ** 3)))
    return 0.5 * x * (1 + _sp.erf(x * _SQRT1_2))


def _gelu_vjp(g, out, x, approximate):
    if _first_order() and _native(x._data, g._data):
        c = np.ascontiguousarray
        return Tensor._wrap(_C.gelu_backward(c(g._data), c(x._data), approximate == "tanh").reshape(x.shape))
    gx = _kernels.backward16(_GELU_KERNEL[approximate], g, x)
    if gx is not None:
        return gx
    if approximate == "tanh":
        t = tanh((x + x * x * x * 0.044715) * _K_TANH)
        return g * ((t + 1) * 0.5 + x * (1 - t * t) * (x * x * (3 * 0.044715) + 1) * (0.5 * _K_TANH))
    cdf = (erf(x * _SQRT1_2) + 1) * 0.5
    pdf = exp(x * x * -0.5) * _INV_SQRT_2PI
    return g * (cdf + x * pdf)


_gelu = defop("gelu", _same(_gelu_fwd), _gelu_vjp, half=lambda approximate: _GELU_KERNEL[approximate])


@public
def gelu(input, approximate="none"):
    """``x * Phi(x)`` (``approximate='tanh'``: the tanh approximation)."""
    if approximate not in ("none", "tanh"):
        raise RuntimeError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")
    return apply(_gelu, _float_input(input, "gelu"), approximate=approximate)


def _softplus_fwd(x, beta, threshold):
    y = _kernels.forward("softplus", x, beta, threshold, 1 / beta) if beta != 0 else None
    if y is None:
        z = x * beta
        y = np.where(z > threshold, x, np.logaddexp(0, z) / beta)
    return y


def _softplus_vjp(g, out, x, beta, threshold):
    gx = _kernels.backward("softplus", g, x, beta, threshold, 1 / beta) if beta != 0 else None
    return where(x * beta > threshold, g, g * sigmoid(x * beta)) if gx is None else gx


_softplus = defop("softplus", _same(_softplus_fwd), _softplus_vjp, half=lambda beta, threshold: (
    ("softplus", beta, threshold, 1 / beta) if beta != 0 else None))


@public
def softplus(input, beta=1.0, threshold=20.0):
    """``log(1 + exp(beta * x)) / beta``, linear where ``beta * x > threshold``."""
    return apply(_softplus, _float_input(input, "softplus"), beta=float(beta), threshold=float(threshold))


def _silu_fwd(x):
    if _native(x):
        return _C.silu(np.ascontiguousarray(x)).reshape(x.shape)
    return x * _sp.expit(x)


def _silu_vjp(g, out, x):
    """One C++ pass first-order; the composite ``g s (1 + x (1 - s))`` under create_graph."""
    if _first_order() and _native(x._data, g._data):
        c = np.ascontiguousarray
        return Tensor._wrap(_C.silu_backward(c(g._data), c(x._data)).reshape(x.shape))
    gx = _kernels.backward16("silu", g, x)
    if gx is not None:
        return gx
    s = sigmoid(x)
    return g * s * (x * (1 - s) + 1)


_silu = defop("silu", _same(_silu_fwd), _silu_vjp, half="silu")


@public(inplace=True)
def silu(input, inplace=False):
    """``x * sigmoid(x)`` (a.k.a. swish)."""
    return apply(_silu, _float_input(input, "silu"))


def _logsigmoid_fwd(x):
    y = _kernels.forward("logsigmoid", x)
    return -np.logaddexp(0, -x) if y is None else y


def _logsigmoid_vjp(g, out, x):
    gx = _kernels.backward("logsigmoid", g, x)
    return g * sigmoid(-x) if gx is None else gx


_logsigmoid = defop("logsigmoid", _same(_logsigmoid_fwd), _logsigmoid_vjp, half="logsigmoid")


@public
def logsigmoid(input):
    """``log(sigmoid(x))``, computed without overflow for large ``|x|``."""
    return apply(_logsigmoid, _float_input(input, "logsigmoid"))


# PyTorch's hardtanh_backward passes the gradient only strictly inside (min_val, max_val)
def _hardtanh_fwd(x, min_val, max_val):
    y = _kernels.forward("hardtanh", x, min_val, max_val)
    return np.clip(x, min_val, max_val).astype(x.dtype, copy=False) if y is None else y


def _hardtanh_vjp(g, out, x, min_val, max_val):
    gx = _kernels.backward("hardtanh", g, x, min_val, max_val)
    return _masked(g, (x > min_val) & (x < max_val)) if gx is None else gx


_hardtanh = defop("hardtanh", _hardtanh_fwd, _hardtanh_vjp,
                  half=lambda min_val, max_val: ("hardtanh", min_val, max_val))


@public
def hardtanh(input, min_val=-1.0, max_val=1.0, inplace=False):
    """``input`` clamped to ``[min_val, max_val]``."""
    if min_val > max_val:
        raise ValueError(f"hardtanh: min_val ({min_val}) cannot be greater than max_val ({max_val})")
    kind = _dtype.kind_of(input._data.dtype)
    if kind in "iu":  # PyTorch clamps integers to the bounds cast to the dtype (toward zero)
        if kind == "u" and min_val < 0:
            raise RuntimeError(f"hardtanh: cannot do hardtanh on an unsigned type ({_dtype.name(input.dtype)}) "
                               f"with negative limits (min_val {min_val})")
        a = np.clip(input._data, int(min_val), int(max_val)).astype(input._data.dtype, copy=False)
        return Tensor._wrap(a)
    if kind == "b":
        raise RuntimeError("hardtanh: Bool inputs not supported for hardtanh")
    return apply(_hardtanh, _float_input(input, "hardtanh"), min_val=float(min_val), max_val=float(max_val))


@public
def relu6(input, inplace=False):
    """``min(max(input, 0), 6)``."""
    return hardtanh(input, 0.0, 6.0)


# ---------------------------------------------------------------- softmax family
# hardshrink, softshrink, threshold: PyTorch's formulas (pointwise.h), one kernel pass each way for
# float32/float64 (the where-composites took 4-8x PyTorch's forward time); the gradient is g outside
# the dead zone, a NaN input's included, as PyTorch's
def _inside(x, lambd):
    return (x >= -lambd) & (x <= lambd)


def _hardshrink_fwd(x, lambd):
    y = _kernels.forward("hardshrink", x, lambd)
    return np.where(_inside(x, x.dtype.type(lambd)), x.dtype.type(0), x) if y is None else y


def _softshrink_fwd(x, lambd):
    y = _kernels.forward("softshrink", x, lambd)
    if y is None:
        lam = x.dtype.type(lambd)
        y = np.where(x > lam, x - lam, np.where(x < -lam, x + lam, x * x.dtype.type(0)))
    return y


def _shrink_vjp(name):
    def vjp(g, out, x, lambd):
        gx = _kernels.backward(name, g, x, lambd)
        return where(_inside(x, lambd), const(0, g.dtype), g) if gx is None else gx
    return vjp


_hardshrink = defop("hardshrink", _hardshrink_fwd, _shrink_vjp("hardshrink"), half=lambda lambd: ("hardshrink", lambd))
_softshrink = defop("softshrink", _softshrink_fwd, _shrink_vjp("softshrink"), half=lambda lambd: ("softshrink", lambd))


def _threshold_fwd(x, threshold, value):
    y = _kernels.forward("threshold", x, threshold, value)
    return np.where(x <= x.dtype.type(threshold), x.dtype.type(value), x) if y is None else y


def _threshold_vjp(g, out, x, threshold, value):
    gx = _kernels.backward("threshold", g, x, threshold, value)
    return where(x <= threshold, const(0, g.dtype), g) if gx is None else gx


_threshold = defop("threshold", _threshold_fwd, _threshold_vjp,
                   half=lambda threshold, value: ("threshold", threshold, value))


def _shrink_float(input):
    return _dtype.kind_of(input._data.dtype) == "f"


@public(method=True)
def hardshrink(input, lambd=0.5):
    """``input`` where ``|input| > lambd``, else 0 (``nn.functional.hardshrink``, ``Tensor.hardshrink``)."""
    if _shrink_float(input):
        return apply(_hardshrink, input, lambd=float(lambd))
    return where(abs(input) > lambd, input, input * 0)


def softshrink(input, lambd=0.5):
    """``x - lambd`` above ``lambd``, ``x + lambd`` below ``-lambd``, else 0 (``nn.functional.softshrink``)."""
    if _shrink_float(input):
        return apply(_softshrink, input, lambd=float(lambd))
    return where(input > lambd, input - lambd, where(input < -lambd, input + lambd, input * 0))


def threshold(input, threshold, value):
    """``value`` where ``input <= threshold``, else ``input`` (a NaN input or threshold keeps the input)."""
    if _shrink_float(input):
        return apply(_threshold, input, threshold=float(threshold), value=float(value))
    return where(input <= threshold, const(value, input.dtype), input)


@public(method=True)
@cast_inputs(LOWER)
def prelu(input, weight):
    """``input`` where positive, ``weight * input`` elsewhere; ``weight`` has 1 entry or one per
    channel (dim 1) (``nn.functional.prelu``, ``Tensor.prelu``)."""
    if weight.ndim > 1:
        raise RuntimeError(f"prelu: Expected `weight` to be a scalar or 1D tensor, but got: ndim = {weight.ndim} "
                           f"(shape {tuple(weight.shape)})")
    w = weight
    if weight.numel() > 1:
        if input.ndim < 2 or input.shape[1] != weight.numel():
            raise RuntimeError(f"prelu: weight of {weight.numel()} parameters does not match the "
                               f"{input.shape[1] if input.ndim > 1 else 1} channels of input {tuple(input.shape)}")
        w = weight.reshape((-1,) + (1,) * (input.ndim - 2))
    else:  # one parameter: the input's shape, a 0-d input included
        w = weight.reshape(())
    if input._data.dtype.char in "fd" and w._data.dtype == input._data.dtype:
        return apply(_prelu, input, w)
    return where(input > 0, input, input * w)


# prelu as one op (PyTorch's _prelu_kernel): x where x > 0, else w x. One weight: the leaky_relu
# kernel's pass with the weight as the slope (the same products), each way; the where-composite
# took 3.3x PyTorch's forward time for 1e6 float32. The weight's gradient is g x where x <= 0,
# summed onto its shape by the engine.
def _prelu_fwd(x, w):
    y = _kernels.forward("leaky_relu", x, float(w)) if w.size == 1 else None
    return blend(x > 0, x, x * w) if y is None else y


def _prelu_x_vjp(g, out, x, w):
    gx = _kernels.backward("leaky_relu", g, x, float(w._data)) if w._data.size == 1 else None
    return where(x > 0, g, g * w) if gx is None else gx


_prelu = defop("prelu_kernel", _prelu_fwd, _prelu_x_vjp,
               lambda g, out, x, w: where(x > 0, const(0, g.dtype), g * x))


def _shifted(x, dim):
    """``x - max(x, dim)``, with rows that are entirely -inf (or +inf) shifted by 0."""
    m = np.maximum.reduce(x, axis=dim, keepdims=True)  # np.max minus its Python wrapper
    return x - (m if np.isfinite(m).all() else np.where(np.isfinite(m), m, 0))


def _last_dim(x, dim):
    """Whether softmax over ``dim`` can run on the C++ row kernel (the last dim of a float array)."""
    return dim is not None and dim == x.ndim - 1 and _native(x)


def _softmax_fwd(x, dim):
    if _last_dim(x, dim):
        return _C.softmax(np.ascontiguousarray(x), False)
    if x.size == 0:
        return x.copy()
    e = np.exp(_shifted(x, dim))
    return e / np.sum(e, axis=dim, keepdims=True)


def _log_softmax_fwd(x, dim):
    if _last_dim(x, dim):
        return _C.softmax(np.ascontiguousarray(x), True)
    if x.size == 0:
        return x.copy()
    z = _shifted(x, dim)
    z -= np.log(np.add.reduce(np.exp(z), axis=dim, keepdims=True))  # z is a fresh array
    return z


def _softmax_vjp(g, out, dim, log):
    if _first_order() and _last_dim(out._data, dim) and _native(out._data, g._data):
        c = np.ascontiguousarray
        return Tensor._wrap(_C.softmax_backward(c(g._data), c(out._data), log))
    if log:
        return g - exp(out) * g.sum(dim, keepdim=True)
    return out * (g - (g * out).sum(dim, keepdim=True))


_softmax = defop("softmax", _softmax_fwd, lambda g, out, x, dim: _softmax_vjp(g, out, dim, False),
                 saves_output=True, saves=())
_log_softmax = defop("log_softmax", _log_softmax_fwd, lambda g, out, x, dim: _softmax_vjp(g, out, dim, True),
                     saves_output=True, saves=())


def _softmax_args(input, dim, dtype, opname):
    if dtype is not None:
        input = input.to(dtype)
    _float_input(input, opname)
    if dim is None:  # PyTorch's legacy implicit choice
        dim = 0 if input.ndim in (0, 1, 3) else 1
    d = norm_dim(dim, input.ndim, opname)
    return input, (d if input.ndim else None)


@public
def softmax(input, dim=None, _stacklevel=3, dtype=None):
    """``exp(x) / exp(x).sum(dim)``, computed stably.

    >>> tapegrad.softmax(tapegrad.tensor([1.0, 2.0, 3.0]), dim=0)
    tensor([0.0900, 0.2447, 0.6652])
    """
    input, d = _softmax_args(input, dim, dtype, "softmax")
    return apply(_softmax, input, dim=d)


@public
def log_softmax(input, dim=None, _stacklevel=3, dtype=None):
    """``x - logsumexp(x, dim)``: exact and finite even for logits of magnitude 1e4."""
    input, d = _softmax_args(input, dim, dtype, "log_softmax")
    return apply(_log_softmax, input, dim=d)


# ---------------------------------------------------------------- fused row ops
# The primitives behind nn.functional.layer_norm and cross_entropy (which check their arguments
# and choose them only for float32/float64 operands of one dtype): one C++ pass each way
# instead of a chain of recorded ops. A first-order backward calls the fused backward kernel;
# under create_graph the VJPs are the composite formulas in tapegrad ops, so they stay
# differentiable.
def _layer_norm_fwd(x, w=None, b=None, *, nd, eps):
    """layer_norm over the trailing ``nd`` dims of x (w, b: their shape, or None)."""
    c = np.ascontiguousarray
    y, mean, rstd = _C.layer_norm(c(x), math.prod(x.shape[x.ndim - nd:]), None if w is None else c(w), None if b is None else c(b), eps)
    # The third entry holds the gradients that an earlier VJP computed in the same pass (one read
    # of g and x for all), until their own VJPs take them (_layer_norm_grads).
    return y, (mean, rstd, {})


def _layer_norm_xhat(x, dims, eps):
    """(x - mean) * rstd and rstd over ``dims``, recorded (the create_graph path)."""
    xc = x - x.mean(dims, keepdim=True)
    r = rsqrt((xc * xc).mean(dims, keepdim=True) + eps)
    return xc * r, r


def _norm_dims(x, nd):
    return tuple(range(x.ndim - nd, x.ndim))


def _layer_norm_grads(g, x, w, b, nd, aux, start):
    """The first-order gradients of layer_norm's inputs from index ``start`` (0 x, 1 weight,
    2 bias) on, in one C++ pass: the engine calls the VJPs in input order, so the first one called
    computes its own gradient and every later one that will be asked for (a weight or bias that
    requires grad), and leaves those in aux[2] with their upstream gradient ``g``: only this
    backward pass's VJPs take them."""
    cached = aux[2].pop(start, None)
    if cached is not None and cached[0] is g:
        return cached[1]
    want = [start == 0, start == 1 or (start == 0 and w is not None and w.requires_grad),
            start == 2 or (b is not None and b.requires_grad)]
    c = np.ascontiguousarray
    n = math.prod(x.shape[x.ndim - nd:])
    grads = _C.layer_norm_backward(c(g._data), c(x._data), *aux[:2], n, None if w is None else c(w._data), *want)
    for i in range(start + 1, 3):
        if grads[i] is not None:
            aux[2][i] = (g, grads[i].reshape(x.shape[x.ndim - nd:]))
    return grads[start].reshape(x.shape if start == 0 else x.shape[x.ndim - nd:])


def _layer_norm_vjp_x(g, out, x, w=None, b=None, *, nd, eps, aux):
    if _first_order() and _native(x._data, g._data):
        return Tensor._wrap(_layer_norm_grads(g, x, w, b, nd, aux, 0))
    dims = _norm_dims(x, nd)
    xhat, r = _layer_norm_xhat(x, dims, eps)
    gh = g if w is None else g * w
    return (gh - gh.mean(dims, keepdim=True) - xhat * (gh * xhat).mean(dims, keepdim=True)) * r


def _layer_norm_vjp_params(g, x, w, b, nd, eps, aux, weight):
    """The gradient of layer_norm's weight (``weight``) or bias: g (times xhat) summed over the leading dims."""
    if _first_order() and _native(x._data, g._data):
        return Tensor._wrap(_layer_norm_grads(g, x, w, b, nd, aux, 1 if weight else 2))
    lead = tuple(range(x.ndim - nd))
    if not weight:
        return g.sum(lead) if lead else g
    xhat = _layer_norm_xhat(x, _norm_dims(x, nd), eps)[0]
    return (g * xhat).sum(lead) if lead else g * xhat


# The op takes (x), (x, w) or (x, w, b): nn.functional.layer_norm passes a bias only with a weight.
_layer_norm = defop(
    "layer_norm", _layer_norm_fwd, _layer_norm_vjp_x,
    lambda g, out, x, w, *b, nd, eps, aux: _layer_norm_vjp_params(g, x, w, b[0] if b else None, nd, eps, aux, True),
    lambda g, out, x, w, b, nd, eps, aux: _layer_norm_vjp_params(g, x, w, b, nd, eps, aux, False),
    aux=True)


def _dropout_fwd(x, *, p, seed):
    """Output and uint8 keep-mask in one C++ pass; element i's draw depends only on (seed, i)."""
    y, mask = _C.dropout(np.ascontiguousarray(x), p, seed)
    return y.reshape(x.shape), mask.reshape(x.shape)  # 0-d stays 0-d


def _dropout_vjp(g, out, x, *, p, seed, aux):
    """g * mask / (1 - p) from the saved mask (linear in g: the composite is its own double backward)."""
    if _first_order() and _native(g._data):
        return Tensor._wrap(_C.dropout_backward(np.ascontiguousarray(g._data), np.ascontiguousarray(aux), p)
                            .reshape(g.shape))
    return g * Tensor._wrap(aux.astype(g.dtype) * np.asarray(1.0 / (1.0 - p), g.dtype))


# dropout with 0 < p < 1 of a float32/float64 input (nn.functional.dropout handles the rest):
# the forward saves only the mask (aux), not the input.
_dropout = defop("dropout", _dropout_fwd, _dropout_vjp, saves=(), aux=True)


def _embedding_row_scale(idx, num_weights, padding_idx, scale_grad_by_freq, dtype):
    """Each index's factor in embedding's gradient: 0 at padding_idx, else 1 or (with
    scale_grad_by_freq) 1 / how often it occurs in idx, as PyTorch."""
    scale = np.ones(idx.shape, dtype)
    if scale_grad_by_freq:
        scale /= np.bincount(idx.reshape(-1), minlength=num_weights)[idx]
    if padding_idx is not None:
        scale[idx == padding_idx] = 0
    return scale


def _embedding_vjp(g, out, w, *, idx, padding_idx, scale_grad_by_freq):
    return apply(_embedding_backward, g, idx=idx, num_weights=w.shape[0], padding_idx=padding_idx,
                 scale_grad_by_freq=scale_grad_by_freq)


# Rows of the weight (input 0) at int64 indices idx (any shape). The gradient is an index-add,
# itself an op (embedding_backward) whose VJP is this gather again, so double backward works.
_embedding = defop("embedding", lambda w, *, idx, padding_idx, scale_grad_by_freq: np.take(w, idx, axis=0),
                   _embedding_vjp, saves=(), exact16=True)


def _embedding_backward_fwd(g, *, idx, num_weights, padding_idx, scale_grad_by_freq):
    if g.dtype in (np.float32, np.float64):  # one C++ index-add, parallel over columns
        return _C.embedding_backward(np.ascontiguousarray(g), idx, num_weights,
                                     -1 if padding_idx is None else padding_idx, scale_grad_by_freq)
    gw = np.zeros((num_weights,) + g.shape[idx.ndim:], g.dtype)
    rows = g * _embedding_row_scale(idx, num_weights, padding_idx, scale_grad_by_freq, g.dtype)[..., None]
    np.add.at(gw, idx, rows)
    return gw


def _embedding_backward_vjp(gg, out, g, *, idx, num_weights, padding_idx, scale_grad_by_freq):
    rows = apply(_embedding, gg, idx=idx, padding_idx=None, scale_grad_by_freq=False)
    if padding_idx is None and not scale_grad_by_freq:
        return rows
    return rows * Tensor._wrap(_embedding_row_scale(idx, num_weights, padding_idx, scale_grad_by_freq,
                                                    gg.dtype)[..., None])


_embedding_backward = defop("embedding_backward", _embedding_backward_fwd, _embedding_backward_vjp, saves=())


def _cross_entropy_fwd(x, *, target, weight):
    loss, rmax, logsum = _C.cross_entropy(np.ascontiguousarray(x), target, weight)
    return loss, (rmax, logsum)


def _cross_entropy_vjp(g, out, x, *, target, weight, aux):
    """d loss_i / d x_ij = w_i (softmax(x_i)_j - [j == t_i]); ignored rows (t_i = -1) get 0."""
    if _first_order() and _native(x._data, g._data):
        c = np.ascontiguousarray
        return Tensor._wrap(_C.cross_entropy_backward(c(g._data), c(x._data), target, weight, *aux))
    onehot = np.zeros(x.shape, dtype=x.dtype)
    rows = np.flatnonzero(target >= 0)
    onehot[rows, target[rows]] = 1
    gw = (g * Tensor._wrap(weight)).reshape(-1, 1)
    return (softmax(x, -1) - Tensor._wrap(onehot)) * gw


# Per-row losses w_i (logsumexp(x_i) - x_i[t_i]) of (N, C) logits; int64 targets (-1: ignored),
# per-row weights (float, the logits' dtype). nn.functional.cross_entropy reduces them.
_cross_entropy = defop("cross_entropy", _cross_entropy_fwd, _cross_entropy_vjp, aux=True)


@public
@names_allocations("one_hot")
def one_hot(tensor, num_classes=-1):
    """Class indices (int64) to one-hot rows: shape ``tensor.shape + (num_classes,)``, int64."""
    a = tensor._data
    if a.dtype.kind not in "iu":
        raise RuntimeError(f"one_hot is only applicable to index tensor (got {_dtype.name(a.dtype)})")
    if a.size and a.min() < 0:
        raise RuntimeError("one_hot: Class values must be non-negative.")
    if num_classes == -1:
        if a.size == 0:
            raise RuntimeError("one_hot: Can not infer total number of classes from empty tensor.")
        num_classes = int(a.max()) + 1
    elif a.size and a.max() >= num_classes:
        raise RuntimeError(f"one_hot: Class values must be smaller than num_classes ({num_classes}), "
                           f"got {int(a.max())}")
    out = np.zeros(a.shape + (int(num_classes),), dtype=np.int64)
    np.put_along_axis(out, a[..., None].astype(np.int64), 1, axis=-1)
    return Tensor._wrap(out)


def _relu_fwd(x):
    if _native(x):
        return _C.relu(np.ascontiguousarray(x)).reshape(x.shape)
    return np.maximum(x, 0).astype(x.dtype, copy=False)


def _relu_backward_fwd(g, out):
    if _native(g, out) and g.shape == out.shape:
        c = np.ascontiguousarray
        return _C.relu_backward(c(g), c(out)).reshape(out.shape)
    return blend(out > 0, g)


_relu, _relu_fn = _unary("relu", _relu_fwd, lambda g, out, x: apply(_relu_backward, g, out), saves_output=True,
                         saves=(), half="relu")


@public(method=True, inplace=True, out=True)
def relu(input):
    """``max(input, 0)``, elementwise."""
    _no_bool(input, "relu")
    if input._data.dtype.kind == "c":
        raise NotImplementedError("clamp is not supported for complex types")
    return apply(_relu, input)


# relu_ through the kernel from this many elements (below it numpy's call costs less than the binding's).
_RELU_KERNEL_MIN = 1 << 12


def _relu_direct(generic):
    """relu_ with nothing to record on a float array: the relu kernel straight into it (C-contiguous:
    one pass on the kernel threads), else numpy's maximum with out= (the same bits), where the
    generic form's out-of-place result and copy took 4.4x PyTorch's time, and numpy's one-thread
    maximum 1.3x at 1 thread and 3.3x at 2 on 1e6 float32."""
    def relu_(input):
        a = input._data if isinstance(input, Tensor) else None
        if (type(a) is np.ndarray and a.dtype.char in "fd" and a.flags.writeable
                and (not grad_mode.state.enabled or not input._requires_grad)):
            if _inplace_module.WRITE_WATCHERS:
                _inplace_module.before_write(input)
            if a.flags.c_contiguous and a.size >= _RELU_KERNEL_MIN:
                _C.relu(a, a)
            else:
                np.maximum(a, a.dtype.type(0), out=a)
            input._bump_version()
            return input
        return generic(input)
    relu_.__doc__ = generic.__doc__
    return surface.replace("relu_", relu_)


relu_ = _relu_direct(surface.PLAIN["relu_"])


# relu's VJP as one op (PyTorch's threshold_backward), not three (gt, to, mul): ``g`` where
# ``out > 0``. Linear in ``g``, so its own VJP is itself; piecewise constant in ``out``.
# A select, not a product, as PyTorch's: an inf or NaN upstream gradient where out <= 0 gives 0.
_relu_backward = defop("relu_backward", _relu_backward_fwd,
                       lambda gg, res, g, out: apply(_relu_backward, gg, out), None, saves=(1,), half="relu")


# ---------------------------------------------------------------- binary cross entropy
# PyTorch's pointwise core of binary_cross_entropy, with its saturation rules: each log clamped
# at -100 in the forward, and a gradient (x - y) / max(x (1 - x), 1e-12) that stays finite at
# x = 0 or 1 (the derivative of the clamped logs would be 0 or nan there; the true one is
# infinite). Its VJP is an op of its own (binary_cross_entropy_backward), whose own VJPs are
# PyTorch's double-backward formulas (their denominator is (x + eps)(1 - x + eps), not the
# first backward's max), so second derivatives match PyTorch's too.
_BCE_EPS = 1e-12
_BCE_EPS_F = float(np.float32(1e-12))  # the first backward's eps is a C float in PyTorch's kernel


def _bce_fwd(x, y):
    with np.errstate(divide="ignore"):
        log_x = np.maximum(np.log(x), -100)
        log_1mx = np.maximum(np.log1p(-x), -100)
    return (-(y * log_x + (1 - y) * log_1mx)).astype(x.dtype, copy=False)


def _bce_target_vjp(g, x):
    with np.errstate(divide="ignore"):  # infinite at x = 0 or 1, as PyTorch's
        return g * (log1p(-x) - log(x))


_bce = defop("binary_cross_entropy", _bce_fwd,
             lambda g, out, x, y: apply(_bce_backward, g, x, y),
             lambda g, out, x, y: _bce_target_vjp(g, x))


def _bce_backward_fwd(g, x, y):
    return (g * (x - y) / np.maximum((1 - x) * x, _BCE_EPS_F)).astype(x.dtype, copy=False)


def _bce_backward_x_vjp(gg, g, x, y):
    return gg * g * (x * x - x * y * 2 + y) / ((x + _BCE_EPS) ** 2 * (1 - x + _BCE_EPS) ** 2)


_bce_backward = defop("binary_cross_entropy_backward", _bce_backward_fwd,
                      lambda gg, res, g, x, y: gg * (x - y) / ((x + _BCE_EPS) * (1 - x + _BCE_EPS)),
                      lambda gg, res, g, x, y: _bce_backward_x_vjp(gg, g, x, y),
                      lambda gg, res, g, x, y: -gg * g / ((x + _BCE_EPS) * (1 - x + _BCE_EPS)))


# binary_cross_entropy_with_logits without pos_weight, elementwise: (1 - y) x - logsigmoid(x) (the
# composite's formula), one op whose gradients are PyTorch's: g (sigmoid(x) - y) for the logits and
# -g x for the target. Forward and the first-order logits gradient are one C++ pass each
# (pointwise.h; a mean's or sum's gradient read as one number); the composite VJP (sigmoid is one
# kernel pass, the same bits) is what create_graph records.
def _same_order(*arrays):
    return all(a.flags.c_contiguous for a in arrays) or all(a.flags.f_contiguous for a in arrays)


def _bce_logits_fwd(x, y):
    if _native(x, y) and x.shape == y.shape and _same_order(x, y):
        return _C.bce_with_logits(x, y)
    loss = np.subtract(1, y, dtype=x.dtype)
    np.multiply(loss, x, out=loss)
    ls = _kernels.forward("logsigmoid", x)
    return np.subtract(loss, -np.logaddexp(0, -x) if ls is None else ls, out=loss)


def _bce_logits_x_vjp(g, out, x, y):
    gd, xd, yd = g._data, x._data, y._data
    if _first_order() and _native(xd, yd, gd) and xd.shape == yd.shape == gd.shape and _same_order(xd, yd):
        if gd.size > 1 and not any(gd.strides):  # a reduction's gradient broadcast: one number
            gd = gd.reshape(-1)[:1]
        elif not _same_order(gd, xd):
            gd = np.ascontiguousarray(gd) if xd.flags.c_contiguous else np.asfortranarray(gd)
        return Tensor._wrap(_C.bce_with_logits_backward(gd, xd, yd))
    return g * (sigmoid(x) - y)


_bce_logits = defop("binary_cross_entropy_with_logits", _bce_logits_fwd, _bce_logits_x_vjp,
                    lambda g, out, x, y: -g * x)


def binary_cross_entropy_with_logits_pointwise(input, target):
    """``(1 - y) x + softplus(-x)`` elementwise for logits ``x`` and a target ``y`` of one shape and
    float dtype; ``nn.functional.binary_cross_entropy_with_logits`` adds pos_weight, weight and the
    reduction."""
    return apply(_bce_logits, input, target)


def binary_cross_entropy_pointwise(input, target):
    """``-(y log x + (1 - y) log(1 - x))`` elementwise, as PyTorch's (see above); the checks,
    weight and reduction are ``nn.functional.binary_cross_entropy``'s."""
    return apply(_bce, input, target)
