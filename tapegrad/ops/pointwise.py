"""Pointwise math: arithmetic, powers, exp/log in every base, trigonometric and hyperbolic
functions, rounding, clamping, and the special functions (``erf``, ``lgamma``, ``digamma``,
``polygamma``, ``logit``, ...), with PyTorch's names, type promotion and gradients.

Integer inputs of the floating functions become the default float dtype, as in PyTorch.
"""
from __future__ import annotations

import builtins
import collections
import inspect
import math
import numbers
import warnings

import numpy as np
import scipy.special as _sp

from .. import _C, _dtype
from .._tape import grad_mode
from .._tape.registry import apply, defop
from ._autocast import round_once
from ._util import as_tensor, blend, const, copy_into, integer_division_checked, pair, scalar_dtype, scalar_tensor
from . import _kernels
from .inplace import WRITE_WATCHERS, before_write, inplace
from .comparison import ge, isfinite, isnan, le, logical_not, logical_or
from .complex import complex as _complex_fn, conj_if_complex as _cj, refuse_complex
from . import surface
from .surface import public

Tensor = None  # the Tensor class, bound by tensor.py (ops.bind_tensor): the ops sit below it


# ---------------------------------------------------------------- binary arithmetic
_add = defop("add", np.add, lambda g, out, x, y: g, lambda g, out, x, y: g, saves=())
_sub = defop("sub", np.subtract, lambda g, out, x, y: g, lambda g, out, x, y: -g, saves=())


def _times_conj(g, t):
    """``g * conj(t)``, the VJP product of mul and exp: one apply when both are the same real dtype
    (no promotion, nothing to conjugate), skipping mul()'s checks and the conjugation test's call
    (about 0.2 us of each backward node of the tiny graph)."""
    d = t._data.dtype
    if d is g._data.dtype and d.kind != "c":
        return apply(_mul, g, t)
    return mul(g, _cj(t))


_mul = defop("mul", np.multiply, lambda g, out, x, y: _times_conj(g, y), lambda g, out, x, y: _times_conj(g, x))
_div = defop("div", np.true_divide, lambda g, out, x, y: g / _cj(y), lambda g, out, x, y: -g * _cj(x / (y * y)))
_pow = defop("pow", np.power,
             lambda g, out, x, y: where(y == 0, const(0.0, g.dtype), g * _cj(y * x ** (y - 1))),  # PyTorch: 0 at y == 0
             lambda g, out, x, y: _pow_exponent_grad(g, out, x, y),
             saves_output=True)
_maximum = defop("maximum", np.maximum,
                 lambda g, out, x, y: g * _tie_mask(x, y),
                 lambda g, out, x, y: g * _tie_mask(y, x))
_minimum = defop("minimum", np.minimum,
                 lambda g, out, x, y: g * _tie_mask(y, x),
                 lambda g, out, x, y: g * _tie_mask(x, y))


def _tie_mask(x, y):
    """1 where x wins, 0.5 on ties (PyTorch splits the gradient evenly), 0 elsewhere."""
    return (x > y).to(x.dtype) + (x == y).to(x.dtype) * 0.5


def _pow_exponent_grad(g, out, x, y):
    # d(x**y)/dy = x**y * log(x); PyTorch takes it as 0 where x == 0 and y >= 0 (where x == 0 and
    # y < 0 it is inf * -inf = -inf). log's argument is made safe there, so double backward has no 0/0.
    # A complex y counts as >= 0 when it is real and non-negative, as in PyTorch.
    nonneg = (y.real >= 0) & (y.imag == 0) if y._data.dtype.kind == "c" else y >= 0
    zero = (x == 0) & nonneg
    return where(zero, const(0.0, out.dtype), g * _cj(out * log(where(zero, const(1.0, x.dtype), x))))


def _number_first(name, key, number, legacy, explicit, n=1):
    """PyTorch's deprecated overload ``name(input, Number key, Tensor...)`` (``x.add_(-lr, g)``,
    ``v.addcmul_(1 - b2, g, g)``: optimizer code of 2017-2020 is written so, and PyTorch still runs
    it, with this warning). ``number`` came where the first tensor goes, ``legacy`` holds the last
    tensor: returns that tensor."""
    if len(legacy) != 1 or not isinstance(number, numbers.Number) or isinstance(number, bool) \
            or not isinstance(legacy[0], Tensor):
        raise TypeError(f"{name}() takes {n + 1} positional arguments but {n + 1 + len(legacy)} were given")
    if explicit:
        raise TypeError(f"{name}(): got multiple values for argument '{key}'")
    tensors = "Tensor other" if n == 1 else "Tensor tensor1, Tensor tensor2"
    warnings.warn(f"This overload of {name} is deprecated:\n\t{name}(Number {key}, {tensors})\nConsider using one of "
                  f"the following signatures instead:\n\t{name}({tensors}, *, Number {key} = 1)", UserWarning,
                  stacklevel=3)
    return legacy[0]


@public(method=True, inplace=True, out=True)
def add(input, other, *legacy, alpha=1):
    """``input + alpha * other`` with broadcasting (``add(input, Number alpha, other)``, PyTorch's
    deprecated order, is taken with its warning)."""
    if legacy:
        other, alpha = _number_first("add", "alpha", other, legacy, alpha != 1), other
    if alpha != 1:
        fused = _axpy(input, other, alpha, False)
        if fused is not None:
            return fused
        other = mul(other, alpha) if isinstance(other, Tensor) else other * alpha  # a number: scaled as one
    elif isinstance(input, Tensor) and isinstance(other, Tensor) and input._data.dtype is other._data.dtype:
        return apply(_add, input, other)  # nothing for pair() to promote
    return apply(_add, *pair(input, other, "add"))


@public(method=True, inplace=True, out=True)
def sub(input, other, *legacy, alpha=1):
    """``input - alpha * other``, broadcast and type-promoted as in PyTorch (and the deprecated
    ``sub(input, Number alpha, other)``)."""
    if legacy:
        other, alpha = _number_first("sub", "alpha", other, legacy, alpha != 1), other
    if _is_bool(input) or _is_bool(other):
        raise RuntimeError("Subtraction, the `-` operator, with a bool tensor is not supported. If you are "
                           "trying to invert a mask, use the `~` or `logical_not()` operator instead.")
    if alpha != 1:
        fused = _axpy(input, other, alpha, True)
        if fused is not None:
            return fused
        other = mul(other, alpha) if isinstance(other, Tensor) else other * alpha  # a number: scaled as one
    return apply(_sub, *pair(input, other, "sub"))


def _is_bool(x):
    return isinstance(x, (bool, np.bool_)) or (isinstance(x, Tensor) and x._data.dtype == np.bool_)


@public(method=True, inplace=True, out=True)
def mul(input, other):
    """``input * other``, broadcast and type-promoted as in PyTorch."""
    if isinstance(input, Tensor) and isinstance(other, Tensor) and input._data.dtype is other._data.dtype:
        return apply(_mul, input, other)  # nothing for pair() to promote
    return apply(_mul, *pair(input, other, "mul", opmath=True))


@public(method=True, inplace=True, out=True)
def div(input, other, *, rounding_mode=None):
    """True division (integers give floats, as in PyTorch); ``rounding_mode`` 'trunc' or 'floor'."""
    if rounding_mode is None and isinstance(input, Tensor) != isinstance(other, Tensor):
        t = input if isinstance(input, Tensor) else other  # an integer tensor and a number: the tensor
        if _dtype.kind_of(t._data.dtype) in "biu":         # in floats first (so uint8 / -1 is -x, as PyTorch)
            f = t.to(_dtype.default_float())
            input, other = (f, other) if t is input else (input, f)
    a, b = pair(input, other, "div", opmath=True)
    if rounding_mode is None:
        if _dtype.kind_of(a._data.dtype) not in "fc":
            a, b = a.to(_dtype.default_float()), b.to(_dtype.default_float())
        return apply(_div, a, b)
    if rounding_mode not in ("floor", "trunc"):
        raise RuntimeError(f"div expected rounding_mode to be one of None, 'trunc', or 'floor' but found "
                           f"{rounding_mode!r}")
    if _dtype.kind_of(a._data.dtype) != "f":
        if a._data.dtype == np.bool_:
            raise RuntimeError(f"div(rounding_mode={rounding_mode!r}): not implemented for 'Bool' tensors")
        integer_division_checked(a, b, f"div(rounding_mode={rounding_mode!r})")
    if rounding_mode == "floor":
        return apply(_floor_divide, a, b)
    if rounding_mode == "trunc":
        return apply(_trunc_divide, a, b)
    raise ValueError(f"div: rounding_mode must be None, 'trunc' or 'floor', got {rounding_mode!r}")


# ---------------------------------------------------------------- add_, sub_, mul_, div_ that record nothing
# The generic in-place path computes the result out of place and copies it in: x.add_(y) on 1e6
# float32 took 2.7x PyTorch's time, x.mul_(0.999) 4.1x, and 3.2 us against 0.7 on 100 elements
# (an optimizer written by hand, an EMA, `out += identity` at inference). With nothing to record
# and one float dtype, the update runs straight into self's memory: one pass on the kernel
# threads, or numpy's ufunc with out=, under the ops' quiet floating-point state (_C._binary_into).
_NUMBERS = (float, int)


def _into(self, other, op, alpha=1):
    """``self op= alpha * other`` in place when that applies (True), else False."""
    if WRITE_WATCHERS:
        before_write(self)
    if op < 2 and alpha != 1 and _axpy(self, other, alpha, op == 1, inplace=True) is not None:
        self._bump_version()  # add_ / sub_: the product and the sum in one pass
        return True
    if grad_mode.state.enabled and (self._requires_grad or (isinstance(other, Tensor) and other._requires_grad)):
        return False
    a = self._data
    if type(a) is not np.ndarray or a.dtype.char not in "fd" or not a.flags.writeable or type(alpha) not in _NUMBERS:
        return False
    if isinstance(other, Tensor):
        b = other._data
        if type(b) is not np.ndarray or b.dtype != a.dtype:
            return False
        if b.shape != a.shape and not _broadcasts_onto(b.shape, a.shape):
            return False  # the generic path's error
        if alpha != 1:  # mul(other, alpha): the number as the dtype (on the threads when large)
            alpha = _number_array(alpha, a.dtype)
            if alpha is None:
                return False
            b = _kernels.ufunc(np.multiply, b, alpha)
    elif type(other) in _NUMBERS:
        b = _number_array(other * alpha if alpha != 1 else other, a.dtype)
        if b is None:
            return False
    else:
        return False
    _C._binary_into(op, a, b)
    self._bump_version()
    return True


_FLOAT_MAX = {"f": float(np.finfo(np.float32).max), "d": float(np.finfo(np.float64).max)}

# add / sub with alpha as one pass (_C.axpy: `y * alpha` rounded, then the sum, numpy's bits) from
# this many elements; below it the two ufunc calls cost no more than the one binding call.
# x.add_(y, alpha=a) on 1e6 float32 took 0.61 ms (2.0x PyTorch's time) as a multiply and an add.
_AXPY_MIN = 1 << 12


def _axpy(input, other, alpha, subtract, inplace=False):
    """``input + alpha * other`` (``-``) in one pass, as a new tensor or into ``input`` (returned),
    or None where the op must go the generic way (recording, broadcasting, mixed dtypes, small,
    operands sharing memory, a number alpha can't cast)."""
    if not (isinstance(input, Tensor) and isinstance(other, Tensor) and type(alpha) in _NUMBERS):
        return None
    if grad_mode.state.enabled and (input._requires_grad or other._requires_grad):
        return None
    a, b = input._data, other._data
    # one shape, C-contiguous exact ndarrays sharing no memory (where they do, the two-pass path
    # computes b's product first, as numpy)
    if (type(a) is not np.ndarray or type(b) is not np.ndarray or a.dtype.char not in "fd" or b.dtype != a.dtype
            or a.size < _AXPY_MIN or b.shape != a.shape or not (a.flags.c_contiguous and b.flags.c_contiguous)
            or (inplace and not a.flags.writeable) or np.may_share_memory(a, b)):
        return None
    v = _number_array(alpha, a.dtype)
    if v is None:
        return None
    out = a if inplace else np.empty_like(a)
    _C.axpy(a, b, float(v), subtract, out)
    return input if inplace else Tensor._wrap(out)


def _number_array(v, dtype):
    """``v`` as the shared read-only 0-d array of ``dtype`` (scalar_tensor's cache), or None where
    the cast would overflow or ``v`` is NaN (the generic path converts those)."""
    return scalar_tensor(v, dtype)._data if builtins.abs(v) <= _FLOAT_MAX[dtype.char] else None


def _direct_inplace(name, op, with_alpha, fn):
    """``name`` (add_, sub_, ...): _into where it applies, else the generic in-place form; add_ and
    sub_ recorded without the snapshot of self that the generic form takes (their VJPs read no
    input: PyTorch's add_ keeps no copy either)."""
    generic = surface.PLAIN[name]

    def method(self, *args, **kwargs):
        # two float tensors of one dtype and nothing to record: checked and done in one C call
        # (_into's Python took x.add_(x) on an 8x16 float32 to 2x PyTorch's time)
        if len(args) == 1 and not kwargs and not WRITE_WATCHERS and _C._inplace_arith(op, self, args[0]):
            return self
        if len(args) == 1 and (not kwargs or (with_alpha and kwargs.keys() == {"alpha"})):
            other, alpha = args[0], kwargs.get("alpha", 1)
            if _into(self, other, op, alpha):
                return self
            if with_alpha and isinstance(self, Tensor):
                return inplace(self, lambda s, *_: fn(s, other, alpha=alpha), name, other, snapshot=False)
        return generic(self, *args, **kwargs)
    method.__name__ = name
    method.__doc__ = generic.__doc__
    method.__signature__ = inspect.signature(generic)
    return surface.replace(name, method)


add_ = _direct_inplace("add_", 0, True, add)
sub_ = _direct_inplace("sub_", 1, True, sub)
mul_ = _direct_inplace("mul_", 2, False, mul)
div_ = _direct_inplace("div_", 3, False, div)


def _zero_vjp(g, out, *args, **kw):
    return g * 0.0


_floor_divide = defop("floor_divide", np.floor_divide, _zero_vjp, _zero_vjp, saves=())
_trunc_divide = defop("trunc_divide", lambda a, b: np.trunc(np.true_divide(a, b)).astype(
    np.result_type(a, b)), _zero_vjp, _zero_vjp, saves=())


@public(method=True, inplace=True, out=True)
def pow(input, exponent):
    """``input ** exponent``; either may be a scalar (a complex one gives a complex result)."""
    if isinstance(input, Tensor) and not isinstance(exponent, Tensor):
        if input._data.dtype == np.bool_ and isinstance(exponent, (bool, np.bool_)):  # bool ** bool stays bool
            return Tensor._wrap(input._data | (not exponent))
        if input._data.dtype.kind in "iu" and isinstance(exponent, (int, np.integer)) and exponent < 0:
            raise RuntimeError("Integers to negative integer powers are not allowed.")
        if _dtype.kind_of(input._data.dtype) not in "fc" and isinstance(exponent, (float, builtins.complex)):
            input = input.to(_dtype.default_float())
        return apply(_pow_scalar, input, exponent=exponent)
    a, b = pair(input, exponent, "pow")
    if a._data.dtype == np.bool_:
        raise RuntimeError("pow: not implemented for 'Bool' tensors")
    if a._data.dtype.kind in "iu":  # numpy refuses negative integer powers; PyTorch truncates them
        if not isinstance(exponent, Tensor) and exponent < 0:
            raise RuntimeError("Integers to negative integer powers are not allowed.")
        return Tensor._wrap(_int_pow(a._data, b._data))
    return apply(_pow, a, b)


def _int_pow(x, e):
    """C-style integer power: a negative exponent gives 1 for 1, +-1 for -1 and 0 otherwise."""
    pos = np.power(x, np.maximum(e, 0))
    neg = np.where(x == 1, 1, np.where(x == -1, np.where(e % 2 == 0, 1, -1), 0))
    return np.where(e < 0, neg, pos).astype(pos.dtype)


def _reciprocal_of(out):
    return np.true_divide(np.ones((), out.dtype), out, out=out)


# pow(x, e) for the exponents PyTorch's CPU kernel computes without pow(), in its way
_POW_FORMS = {
    0.5: lambda x: _kernels.ufunc(np.sqrt, x),  # on the threads as sqrt (apply threads only a bare ufunc)
    -0.5: lambda x: _reciprocal_of(np.sqrt(x)),
    2: lambda x: _kernels.ufunc(np.multiply, x, x),
    3: lambda x: _kernels.forward("cube", x) if _kernels.takes(x) else np.multiply(np.multiply(x, x), x),
    -1: lambda x: np.true_divide(np.ones((), x.dtype), x),
    -2: lambda x: _reciprocal_of(np.multiply(x, x)),
}


def _pow_scalar_fwd(x, exponent):
    if type(exponent) in (int, float) and exponent in _POW_FORMS and x.dtype.char in "fd" and x.ndim:
        # PyTorch's pow kernel for these exponents, bit for bit, special values included (x ** -0.5
        # is 1 / sqrt(x): -inf at -0 and NaN at -inf, where powf gives inf and 0); np.power's powf
        # is 2.5-150x slower, and a rounding away from PyTorch's. x ** -2 is also x ** -1's gradient.
        return _POW_FORMS[exponent](x)
    out = np.power(x, exponent)
    # numpy may widen (float16 ** 2.5): keep the input's dtype, unless a complex exponent made it complex
    return out.astype(x.dtype, copy=False) if _dtype.kind_of(x.dtype) in "fc" and _dtype.kind_of(out.dtype) == _dtype.kind_of(x.dtype) else out


def _pow_scalar_vjp(g, out, x, exponent):
    if exponent == 0:
        return g * 0.0
    if exponent == 3:  # g * ((x * x) * 3) in one pass, the composite's bits
        gx = _kernels.backward("cube", g, x)
        if gx is not None:
            return gx
    return g * _cj(x ** (exponent - 1) * exponent)


_pow_scalar = defop("pow_scalar", _pow_scalar_fwd, _pow_scalar_vjp)


@public(method=True, out=True)
def maximum(input, other):
    """Elementwise maximum of ``input`` and ``other`` (NaN propagates)."""
    _refuse_either(input, other, "maximum")
    return apply(_maximum, *pair(input, other, "maximum"))


@public(method=True, out=True)
def minimum(input, other):
    """Elementwise minimum of ``input`` and ``other`` (NaN propagates)."""
    _refuse_either(input, other, "minimum")
    return apply(_minimum, *pair(input, other, "minimum"))


def _refuse_either(input, other, opname):
    for t in (input, other):
        if isinstance(t, Tensor):
            refuse_complex(t, opname)
        elif isinstance(t, builtins.complex):
            raise RuntimeError(f"{opname}: not implemented for complex numbers (got {t!r})")


# ---------------------------------------------------------------- unary
# the floating unary functions with a complex kernel here (as in PyTorch); the others refuse complex input
_COMPLEX_OK = frozenset({"exp", "log", "log1p", "expm1", "sqrt", "rsqrt", "sin", "cos", "tan", "tanh", "sigmoid"})


def _sigmoid_fwd(x):
    y = _kernels.forward("sigmoid", x)
    if y is not None:
        return y
    if x.dtype.kind == "c":  # scipy's expit has no complex loop
        return 1 / (1 + np.exp(-x))
    return _sp.expit(x).astype(x.dtype, copy=False)


def _log_fwd(x):
    # 1e6 elements on one thread, float32 / float64: the kernel 0.28 / 0.76 ms (float64 on AVX-512:
    # vmath::log_table), numpy 0.41 / 0.89 (PyTorch 0.31 / 0.77; float32's floor, a copy, 0.27);
    # numpy's float32 log is also up to 4 ulp off, the kernel's within 0.78 of the exact value
    y = _kernels.forward("log", x) if type(x) is np.ndarray else None  # exact ndarrays only reach the kernels
    return _kernels.ufunc(np.log, x) if y is None else y


def _rsqrt_fwd(x):
    y = _kernels.forward("rsqrt", x)
    return 1 / np.sqrt(x) if y is None else y


def _erf_fwd(x):
    y = _kernels.forward("erf", x)
    return _sp.erf(x).astype(x.dtype, copy=False) if y is None else y


def _from_output(name, composite):
    """A VJP ``(g, out, x)`` from the saved output: the kernel's one pass, else ``composite``."""
    def vjp(g, out, x):
        gx = _kernels.backward(name, g, out)
        return composite(g, out, x) if gx is None else gx
    return vjp


def _from_input(name, composite):
    """A VJP ``(g, out, x)`` from the saved input: the kernel's one pass, else ``composite``."""
    def vjp(g, out, x):
        gx = _kernels.backward(name, g, x)
        return composite(g, out, x) if gx is None else gx
    return vjp


def _unary(name, fwd, vjp, saves_output=False, saves=None, floating=False, half=None):
    """``floating``: a float-valued function, so integer and bool inputs become the default float
    dtype first (PyTorch's rule: ``exp(int_tensor)`` is float32, never numpy's float64/float16).
    ``half``: defop's (the float32 kernel ``fwd`` calls, for 16-bit tensors)."""
    op = defop(name, fwd, vjp, saves_output=saves_output, saves=saves, half=half)

    if floating and name not in _COMPLEX_OK:
        def fn(input):
            refuse_complex(input, name)
            return apply(op, _to_float(input))
    elif floating:
        def fn(input):
            if input._data.dtype.kind == "f":  # the common case, with nothing to convert
                return apply(op, input)
            return apply(op, _to_float(input))
    else:
        def fn(input):
            return apply(op, input)

    fn.__name__ = name
    return op, fn


_neg, _neg_fn = _unary("neg", np.negative, lambda g, out, x: -g, saves=())


@public(method=True, inplace=True, out=True)
def neg(input):
    """``-input``."""
    _no_bool(input, "neg")
    return apply(_neg, input)


def _no_bool(input, opname, hint=""):
    if input._data.dtype.kind == "b":
        raise RuntimeError(f"{opname}: not implemented for 'Bool' tensors{hint}")


def _exp_fwd(x):
    # float32 only: the kernel is 1.6x numpy's speed there (0.28 against 0.46 ms for 1e6 on one
    # thread, PyTorch 0.29); numpy's float64 exp is faster than the kernel's on one thread, and
    # switching by thread count would make the bits depend on it
    y = _kernels.forward("exp", x) if x.dtype == np.float32 else None
    return _kernels.ufunc(np.exp, x) if y is None else y


_exp, exp = _unary("exp", _exp_fwd, lambda g, out, x: _times_conj(g, out), saves_output=True, saves=(), floating=True,
                   half="exp")
public(exp, method=True, inplace=True, out=True,
       doc="``e ** input``, elementwise.")
_log, log = _unary("log", _log_fwd, lambda g, out, x: g / _cj(x), floating=True, half="log")
public(log, method=True, inplace=True, out=True,
       doc="The natural logarithm, elementwise.")
_log1p, log1p = _unary("log1p", np.log1p, lambda g, out, x: g / _cj(x + 1), floating=True)
public(log1p, method=True, inplace=True, out=True,
       doc="``log(1 + input)``, accurate for small ``input``.")
_expm1, expm1 = _unary("expm1", np.expm1, lambda g, out, x: g * _cj(out + 1), saves_output=True, saves=(), floating=True)
public(expm1, method=True, inplace=True, out=True,
       doc="``exp(input) - 1``, accurate for small ``input``.")
_sqrt, sqrt = _unary("sqrt", np.sqrt, lambda g, out, x: g / _cj(out * 2), saves_output=True, saves=(), floating=True)
public(sqrt, method=True, inplace=True, out=True,
       doc="The square root, elementwise.")
_rsqrt, rsqrt = _unary("rsqrt", _rsqrt_fwd, _from_output("rsqrt", lambda g, out, x: g * _cj(out ** 3 * -0.5)),
                       saves_output=True, saves=(), floating=True, half="rsqrt")
public(rsqrt, method=True, inplace=True, out=True,
       doc="``1 / sqrt(input)``, elementwise.")
def _kernel_fwd(name, ufunc):
    """The forward of sin, cos, tan or tanh: the kernel (vmath.h's polynomials, within 3 ulp of
    numpy's), else numpy's loop, on the threads from 2. 1e6 elements on one thread: sin / cos /
    tan / tanh 0.79 / 0.81 / 0.94 / 1.03 ms where numpy took 7.9 / 8.0 / 1.3 / 1.25 (PyTorch 0.79 /
    0.75 / 0.94 / 1.17). float32 sin and cos take vmath::sin_cos_float (float arithmetic up to
    |x| = 200, within 0.85 ulp; the double kernel, correctly rounded nearly everywhere, beyond):
    0.38 ms where PyTorch took 0.35 and numpy 0.55. (The DDPM port's float32 trajectory against
    PyTorch moves with any one-ulp change in its sinusoidal embedding, PyTorch's own bits included:
    its comparison holds at 1e-4, tests/ports/ddpm.py.) float32 tan and tanh stay numpy's: the
    kernel's float32 tan is up to 4 ulp off, and numpy's float32 tanh is faster (0.28 against 0.54)."""
    def fwd(x):
        if type(x) is not np.ndarray:  # exact ndarrays only reach the kernels
            return ufunc(x)
        kernel = x.dtype == np.float64 or (name in ("sin", "cos") and x.dtype == np.float32)
        if kernel and x.size and not (x.flags.c_contiguous or x.flags.f_contiguous):
            x = np.ascontiguousarray(x)  # a strided input: the kernel's bits too, not numpy's
        y = _kernels.forward(name, x) if kernel else None
        if y is None:
            y = _C._parallel_unary(ufunc, x)
        return ufunc(x) if y is None else y
    fwd.__name__ = f"_{name}_fwd"
    return fwd


_sin, sin = _unary("sin", _kernel_fwd("sin", np.sin), lambda g, out, x: g * _cj(cos(x)), floating=True, half="sin")
public(sin, method=True, inplace=True, out=True,
       doc="The sine, elementwise (radians).")
_cos, cos = _unary("cos", _kernel_fwd("cos", np.cos), lambda g, out, x: -g * _cj(sin(x)), floating=True, half="cos")
public(cos, method=True, inplace=True, out=True,
       doc="The cosine, elementwise (radians).")
# PyTorch's tan_backward: g (1 + tan^2), from the output
_tan, tan = _unary("tan", _kernel_fwd("tan", np.tan), lambda g, out, x: g * _cj(1 + out * out), saves_output=True,
                   saves=(), floating=True, half=np.tan)
public(tan, method=True, inplace=True, out=True,
       doc="The tangent, elementwise (radians).")
_tanh, tanh = _unary("tanh", _kernel_fwd("tanh", np.tanh),
                     _from_output("tanh", lambda g, out, x: g * _cj(1 - out * out)),
                     saves_output=True, saves=(), floating=True, half=np.tanh)
public(tanh, method=True, inplace=True, out=True,
       doc="The hyperbolic tangent, elementwise.")
_sigmoid, sigmoid = _unary("sigmoid", _sigmoid_fwd, _from_output("sigmoid", lambda g, out, x: g * _cj(1 - out) * _cj(out)),
                           saves_output=True, saves=(), floating=True, half="sigmoid")
public(sigmoid, method=True, inplace=True, out=True,
       doc="The logistic function ``1 / (1 + exp(-input))``, elementwise.")
_abs, _abs_fn = _unary("abs", np.abs, _from_input("abs", lambda g, out, x: g * sign(x) if x.dtype.kind != "c" else g * sgn(x)))


@public(method=True, inplace=True, out=True)
def abs(input):
    """``|input|``."""
    _no_bool(input, "abs")
    return apply(_abs, input)


def _real_sign(x):
    """-1, 0 or 1; 0 for NaN, as PyTorch's (x > 0) - (x < 0) (numpy's sign gives NaN)."""
    if x.dtype.kind in "iu":
        return np.sign(x)
    y = _kernels.forward("sign", x)
    if y is not None:
        return y
    return (x > 0).astype(x.dtype) - (x < 0).astype(x.dtype)


def _sgn_fwd(x):
    if x.dtype.kind != "c":
        return _real_sign(x)
    r = np.abs(x)
    return np.where(r == 0, 0, x / np.where(r == 0, 1, r)).astype(x.dtype, copy=False)


def _sgn_vjp(g, out, x):
    # PyTorch's sgn_backward: (g - Re(g * conj(sgn)) * sgn) / |z|, and 0 at z == 0
    if x.dtype.kind != "c":
        return g * 0.0
    r = abs(x)
    zero = r == 0
    sg = where(zero, const(0, x.dtype), x / where(zero, const(1, r.dtype), r))
    return where(zero, const(0, x.dtype), (g - (g * _cj(sg)).real * sg) / where(zero, const(1, r.dtype), r))


_sgn = defop("sgn", _sgn_fwd, _sgn_vjp)


@public(method=True, inplace=True, out=True)
def sgn(input):
    """``z / |z|`` for complex ``z`` (0 at 0); ``sign`` for real tensors.

    >>> tapegrad.sgn(tapegrad.tensor([3 + 4j, 0j]))
    tensor([0.6000+0.8000j, 0.0000+0.0000j])
    """
    if input._data.dtype == np.bool_:
        return Tensor._wrap(input._data.copy())
    return apply(_sgn, input)


def _angle_vjp(g, out, x):
    if x.dtype.kind != "c":
        return g * 0.0  # piecewise constant on the reals (0 or pi), as PyTorch
    # d angle = (x dy - y dx) / |z|^2, packed as PyTorch's gradient: g * i z / |z|^2 (0 at z == 0)
    r2 = (x * _cj(x)).real
    zero = r2 == 0
    return where(zero, const(0, x.dtype), g * x * 1j / where(zero, const(1, r2.dtype), r2))


_angle = defop("angle", lambda x: np.angle(x).astype(_dtype.real_of(x.dtype) if x.dtype.kind in "fc" else
                                                    _dtype.default_float(), copy=False), _angle_vjp)


@public(method=True, out=True)
def angle(input):
    """The argument of each complex element, in radians (-pi, pi]; 0 or pi for real ones.

    >>> tapegrad.angle(tapegrad.tensor([1j, -1.0 + 0j]))
    tensor([1.5708, 3.1416])
    """
    return apply(_angle, input)


@public(out=True)
def polar(abs, angle):
    """The complex tensor ``abs * (cos(angle) + 1j * sin(angle))`` (float32 parts give complex64).

    >>> tapegrad.polar(tapegrad.tensor([2.0]), tapegrad.tensor([0.0]))
    tensor([2.+0.j])
    """
    for name, t in (("abs", abs), ("angle", angle)):
        if not isinstance(t, Tensor):
            raise TypeError(f"polar(): argument '{name}' must be Tensor, not {type(t).__name__}")
    if abs._data.dtype.kind != "f" or angle._data.dtype.kind != "f" or abs._data.dtype == np.float16:
        raise RuntimeError(f"polar: expected both inputs to be Float or Double tensors but got "
                           f"{_dtype.name(abs._data.dtype)} and {_dtype.name(angle._data.dtype)}")
    if abs._data.dtype != angle._data.dtype:  # PyTorch does not promote here
        raise RuntimeError(f"polar: expected object of scalar type {_dtype.name(abs._data.dtype)} but got scalar "
                           f"type {_dtype.name(angle._data.dtype)} for second argument 'angle'")
    return _complex_fn(abs * cos(angle), abs * sin(angle))


_erf, erf = _unary("erf", _erf_fwd, _from_input("erf", lambda g, out, x: g * exp(-x * x) * (2 / np.sqrt(np.pi))),
                   floating=True, half="erf")
public(erf, method=True, inplace=True, out=True,
       doc="The error function, elementwise.")


# sign has a zero gradient everywhere (as in PyTorch), which keeps it usable inside VJPs.
_sign = defop("sign", _real_sign, _zero_vjp, saves=())


@public(method=True, inplace=True, out=True)
def sign(input):
    """-1, 0 or 1 by the sign of each element (its gradient is zero)."""
    if input._data.dtype.kind == "c":
        raise NotImplementedError("Unlike NumPy, torch.sign is not intended to support complex numbers. Please use "
                                  "torch.sgn instead.")
    if input._data.dtype == np.bool_:  # numpy has no bool sign; PyTorch's is the identity
        return Tensor._wrap(input._data.copy())
    return apply(_sign, input)


@public(out=True)
def where(condition, input=None, other=None):
    """Elementwise ``input if condition else other``; ``condition`` is a bool tensor.
    ``where(condition)`` alone is ``nonzero(condition, as_tuple=True)``."""
    if input is None and other is None:
        return as_tensor(condition, "where").nonzero(as_tuple=True)  # a method: indexing sits above pointwise
    if input is None or other is None:
        raise TypeError("where: expected where(condition, input, other) or where(condition)")
    if not isinstance(input, Tensor) and not isinstance(other, Tensor):  # two scalars, as PyTorch allows
        input, other = as_tensor(input, "where"), as_tensor(other, "where")
    x, y = pair(input, other, "where")
    cond = as_tensor(condition, "where")
    if cond._data.dtype.kind != "b":
        raise RuntimeError(f"where expected condition to be a boolean tensor, but got a tensor with dtype "
                           f"{cond._data.dtype}")
    return apply(_where, cond, x, y)


# The VJPs select, as PyTorch's (where(c, g, 0)): an inf or NaN upstream gradient on the side
# not taken gives 0 there, where a product with the mask would give NaN. The second input's is
# where(c, 0, g), not where(!c, g, 0): no negated copy of the mask.
_where = defop("where", blend, None,
               lambda g, out, c, x, y: _masked(g, c),
               lambda g, out, c, x, y: where(c, const(0, g.dtype), g), saves=(0,), exact16=True)


def _masked(g, cond):
    """``g`` where ``cond`` holds, else 0 (a where, not a product: an inf upstream stays out)."""
    return where(cond, g, const(0, g.dtype))


def _to_float(input):
    """Integer and bool tensors become the default float dtype (PyTorch's rule for float-valued ops)."""
    d = input._data.dtype
    return input if d.kind in "fc" or _dtype.kind_of(d) in "fc" else input.to(_dtype.default_float())


# ---------------------------------------------------------------- clamp and friends
def _clamp_into(out, x, lo, hi):
    """``minimum(maximum(x, lo), hi)`` into ``out``: numpy's clip (one pass) where it is that bit for bit,
    for float bounds of x's dtype with no zero among them (np.clip orders -0.0 and 0.0 otherwise)."""
    if (lo.ndim == 0 and hi.ndim == 0 and lo.dtype is x.dtype and hi.dtype is x.dtype and x.dtype.char in "fd"
            and lo != 0 and hi != 0):
        return np.clip(x, lo, hi, out=out)
    np.maximum(x, lo, out=out)
    return np.minimum(out, hi, out=out)


def _scalar_bounds(x, lo, hi):
    """Whether csrc's clamp kernel takes x (float32 / float64, not empty) with these bounds: 0-d, not
    NaN, of x's dtype. It keeps x on a tie (clamp(-0.0, min=0.0) is -0.0), as PyTorch's clamp, where
    np.maximum gives the bound."""
    if not (lo.ndim == 0 and hi.ndim == 0 and lo.dtype is x.dtype and hi.dtype is x.dtype
            and x.dtype in _kernels._DTYPES and x.size):
        return False
    lo, hi = lo.item(), hi.item()  # Python floats: NaN tests without numpy's 0-d comparisons (0.3 us each)
    return lo == lo and hi == hi


def _tensor_bounds(x, lo, hi):
    """Whether csrc's clamp_tensor kernel (csrc/kernels/clamp.h) takes x, lo and hi: exact ndarrays,
    float32 / float64 of one dtype (_clamp_args promoted them), any shapes that broadcast and any
    strides, NaN bounds too. Other dtypes keep numpy's two passes."""
    return (x.dtype in _kernels._DTYPES and lo.dtype == x.dtype and hi.dtype == x.dtype
            and type(x) is np.ndarray and type(lo) is np.ndarray and type(hi) is np.ndarray)


def _clamp_fwd(x, lo, hi):
    if _scalar_bounds(x, lo, hi):  # one pass on the threads (np.maximum: 1.59x PyTorch's time at 1 thread)
        if _kernels.takes(x):
            out = _C.pointwise("clamp", x, lo.item(), hi.item(), 0.0)  # (_kernels.forward's call, takes() known)
        elif not _tensor_bounds(x, lo, hi):
            out = _kernels.forward("clamp", np.ascontiguousarray(x), float(lo), float(hi))
        else:  # strided: clamp.h's pass reads x in place (the same rule and bits), no contiguous copy first
            out = _C.clamp_tensor(x, lo, hi)
    elif lo.ndim == 0 and hi.ndim == 0 and lo.dtype is x.dtype and hi.dtype is x.dtype and x.ndim:
        if x.dtype.char in "fd" and lo != 0 and hi != 0:  # _clamp_into's np.clip, on the threads
            out = _kernels.ufunc(_CLIP, x, lo, hi)
        else:
            out = _clamp_into(np.empty(x.shape, x.dtype), x, lo, hi)
    elif _tensor_bounds(x, lo, hi):  # tensor bounds: clamp.h's one pass, on the threads
        out = _C.clamp_tensor(x, lo, hi)
    else:
        # numpy's two passes (other dtypes). min > max gives max everywhere, as in PyTorch. A bound
        # left out is an extreme of the dtype, against which np.maximum / np.minimum return the
        # other operand: its pass is skipped.
        least, most = _extremes(x.dtype)
        no_lo, no_hi = lo.ndim == 0 and lo == least, hi.ndim == 0 and hi == most
        y = x if no_lo and not no_hi else _kernels.ufunc(np.maximum, x, lo)
        out = y if no_hi else _kernels.ufunc(np.minimum, y, hi)
    return out, {}  # aux: the gradients one kernel pass made for VJPs still to come (_clamp_grads)


_CLIP = np._core.umath.clip  # np.clip's ufunc (np.clip is a Python wrapper of it)


def _extremes(d):
    """The bounds that clamp nothing for dtype ``d`` (a bound left out): against them np.maximum and
    np.minimum return the other operand, so their pass can be skipped. (None, None) for bool."""
    if d.kind in "iu":
        info = np.iinfo(d)
        return info.min, info.max
    return (-np.inf, np.inf) if d.kind == "f" else (None, None)


def _clamp_grads(g, x, lo, hi, stash, i):
    """The first-order gradient of clamp's input ``i`` (0 input, 1 min, 2 max) from one C++ pass
    (csrc/kernels/clamp.h) that makes those of the later inputs requiring grad as well: the engine
    calls the VJPs in input order, so the later ones find theirs in ``stash`` with this ``g``. None
    where the kernel does not take the arrays (the composite VJP's case)."""
    got = stash.pop(i, None)
    if got is not None and got[0] is g:
        return got[1]
    gd, xd, ld, hd = g._data, x._data, lo._data, hi._data
    if not (_tensor_bounds(xd, ld, hd) and gd.dtype == xd.dtype and type(gd) is np.ndarray):
        return None
    want = [k == i or (k > i and t._requires_grad) for k, t in enumerate((x, lo, hi))]
    grads = _C.clamp_tensor_backward(gd, xd, ld, hd, *want)
    for k in range(i + 1, 3):
        if grads[k] is not None:
            stash[k] = (g, Tensor._wrap(grads[k]))
    return Tensor._wrap(grads[i])


# PyTorch's clamp_backward_min_max: the gradient passes where min <= x <= max
def _clamp_vjp(i, composite):
    """The VJP for clamp's input ``i``: for number bounds (0-d, not NaN) the pointwise kernel's one
    pass, else clamp.h's one pass first-order (_clamp_grads); ``composite`` (tapegrad ops,
    differentiable again) under create_graph or where neither takes the arrays. The same bits
    either way: selects of g or 0."""
    def vjp(g, out, x, lo, hi, *, aux):
        if grad_mode.is_grad_enabled():
            return composite(g, x, lo, hi)
        if i == 0 and _scalar_bounds(x._data, lo._data, hi._data):
            gx = _kernels.backward("clamp", g, x, float(lo._data), float(hi._data))
            if gx is not None:
                return gx
        r = _clamp_grads(g, x, lo, hi, aux, i)
        return composite(g, x, lo, hi) if r is None else r
    return vjp


_clamp = defop("clamp", _clamp_fwd,
               _clamp_vjp(0, lambda g, x, lo, hi: _masked(g, (x >= lo) & (x <= hi))),
               _clamp_vjp(1, lambda g, x, lo, hi: _masked(g, (x < lo) & (lo < hi))),
               _clamp_vjp(2, lambda g, x, lo, hi: _masked(g, (x > hi) | (hi < lo))), aux=True)


def _clamp_args(input, min, max, opname):
    if min is None and max is None:
        raise RuntimeError(f"{opname}: At least one of 'min' or 'max' must not be None")
    x = as_tensor(input, opname)
    if x._data.dtype.kind == "c":
        raise NotImplementedError(f"{opname} is not supported for complex types")
    d = _dtype.result_type(x._data, *[b._data if isinstance(b, Tensor) else b for b in (min, max) if b is not None])
    if d == np.bool_:  # a bool tensor clamps as the promoted dtype (int64 for int bounds); bool only with tensor bounds
        if not all(isinstance(b, Tensor) for b in (min, max) if b is not None):
            raise NotImplementedError(f"{opname}: not implemented for 'Bool' tensors with scalar bounds")
        lo_default, hi_default = False, True
    else:
        info = np.finfo(d) if _dtype.kind_of(d) == "f" else np.iinfo(d)
        lo_default, hi_default = (-np.inf, np.inf) if _dtype.kind_of(d) == "f" else (info.min, info.max)
    lo = const(lo_default, d) if min is None else (min.to(d) if isinstance(min, Tensor) else const(min, d))
    hi = const(hi_default, d) if max is None else (max.to(d) if isinstance(max, Tensor) else const(max, d))
    return x.to(d), lo, hi


def clamp_(input, min=None, max=None):
    """In-place form of ``clamp``: writes the result into ``input`` and returns it."""
    if (isinstance(input, Tensor) and type(min) in (float, int, type(None)) and type(max) in (float, int, type(None))
            and (min is not None or max is not None) and _unrecorded(input) and _plain_float(input)
            and input._data.flags.writeable):
        a = input._data
        if WRITE_WATCHERS:
            before_write(input)
        lo_f, hi_f = -math.inf if min is None else float(min), math.inf if max is None else float(max)
        if lo_f == lo_f and hi_f == hi_f and a.size and (a.flags.c_contiguous or a.flags.f_contiguous):
            # one pass on the threads (numpy's made two); the kernel rounds the bounds to a's dtype
            _C.pointwise("clamp", a, lo_f, hi_f, 0.0, a)
            input._bump_version()
            return input
        lo = np.asarray(-np.inf if min is None else min, a.dtype)
        hi = np.asarray(np.inf if max is None else max, a.dtype)
        if lo_f == lo_f and hi_f == hi_f:
            _C.clamp_tensor(a, lo, hi, a)  # strided: clamp.h's pass reads and writes the view in place
        else:  # a NaN bound: clamp's own forward, written back
            copy_into(a, _clamp_fwd(a, lo, hi)[0])
        input._bump_version()
        return input
    return inplace(input, lambda s, *_: clamp(s, min, max), "clamp_", *[b for b in (min, max) if isinstance(b, Tensor)])


@public(method=True, out=True)
def clamp(input, min=None, max=None):
    """Limit ``input`` to ``[min, max]`` (scalars or broadcastable tensors; either may be None).

    >>> tapegrad.clamp(tapegrad.tensor([-2.0, 0.5, 3.0]), min=0, max=1)
    tensor([0.0000, 0.5000, 1.0000])
    """
    if (type(min) in _BOUNDS and type(max) in _BOUNDS and (min is not None or max is not None)
            and isinstance(input, Tensor) and input._data.dtype.char in "fd"):
        a = input._data
        if (type(a) is np.ndarray and a.size and (a.flags.c_contiguous or a.flags.f_contiguous)
                and _exact_bound(min) and _exact_bound(max) and not (input._requires_grad and grad_mode.state.enabled)):
            # nothing to record: the forward's kernel pass alone (the bounds' 0-d arrays, apply and the
            # forward's tests took x.clamp(0, 1) on an 8x16 float32 to 2.6x PyTorch's time). The kernel
            # rounds each bound to a's dtype, as the 0-d arrays did
            lo, hi = -math.inf if min is None else float(min), math.inf if max is None else float(max)
            if lo == lo and hi == hi:  # (a NaN bound: the forward's other route)
                return Tensor._wrap(_C.pointwise("clamp", a, lo, hi, 0.0))
        # a float tensor and number bounds: its dtype, no promotion to work out (_clamp_args took
        # 13 us of the 21 a call spent outside its pass)
        d = a.dtype
        return apply(_clamp, input, scalar_tensor(-math.inf if min is None else min, d),
                     scalar_tensor(math.inf if max is None else max, d))
    if (isinstance(input, Tensor) and input._data.dtype.char in "fd" and (min is not None or max is not None)
            and all(b is None or (isinstance(b, Tensor) and b._data.dtype == input._data.dtype) for b in (min, max))):
        # tensor bounds of a float tensor's dtype: nothing to promote (_clamp_args' three casts took
        # 19 us a call, 6% of a 1e6-element clamp on two threads)
        d = input._data.dtype
        return apply(_clamp, input, scalar_tensor(-math.inf, d) if min is None else min,
                     scalar_tensor(math.inf, d) if max is None else max)
    return apply(_clamp, *_clamp_args(input, min, max, "clamp"))


_BOUNDS = (float, int, type(None))  # exact types: a bool bound takes _clamp_args' promotion


def _exact_bound(b):
    """Whether float(b) is b exactly (None, a float, an int of at most 53 bits): rounding that to
    float32 in the kernel is then the one rounding numpy's cast of b makes."""
    return b.__class__ is not int or -(1 << 53) <= b <= 1 << 53


clip = clamp
public(clip, name="clip", method=True, inplace=True, out=True)
public(clamp_, method=True)

_square = defop("square", np.square, lambda g, out, x: g * _cj(x) * 2)
_reciprocal = defop("reciprocal", np.reciprocal, lambda g, out, x: -g * _cj(out * out), saves_output=True, saves=())


@public(method=True, inplace=True, out=True)
def square(input):
    """``input * input``."""
    if input._data.dtype == np.bool_:  # PyTorch: bool squares to int64 (numpy would say int8)
        input = input.to(np.int64)
    return apply(_square, input)


@public(method=True, inplace=True, out=True)
def reciprocal(input):
    """``1 / input``; integer tensors give floats."""
    return apply(_reciprocal, _to_float(input))


# rounding: piecewise constant, so the gradient is zero (as in PyTorch)
_floor = defop("floor", np.floor, _zero_vjp, saves=())
_ceil = defop("ceil", np.ceil, _zero_vjp, saves=())
_trunc = defop("trunc", np.trunc, _zero_vjp, saves=())
# half to even; np.round to 0 places is np.rint (numpy's PyArray_Round), which the threads take
_round = defop("round", lambda x, decimals: _kernels.ufunc(np.rint, x) if decimals == 0 else np.round(x, decimals),
               _zero_vjp, saves=())


def _rounding(op):
    def fn(input):
        _no_bool(input, op.name)
        if input._data.dtype.kind == "c":
            raise NotImplementedError(f"{op.name} is not supported for complex inputs")
        if _dtype.kind_of(input._data.dtype) != "f":  # integers are already whole: a copy, as PyTorch
            return Tensor._wrap(input._data.copy())
        return apply(op, input)
    fn.__name__ = op.name
    return fn


floor, ceil, trunc = _rounding(_floor), _rounding(_ceil), _rounding(_trunc)
public(floor, method=True, inplace=True, out=True,
       doc="The largest integer not above each element (integers are returned as a copy).")
public(ceil, method=True, inplace=True, out=True,
       doc="The smallest integer not below each element (integers are returned as a copy).")
public(trunc, method=True, inplace=True, out=True,
       doc="Each element rounded toward zero (integers are returned as a copy).")
fix = trunc
public(fix, name="fix", method=True, inplace=True, out=True)


@public(method=True, inplace=True, out=True)
def round(input, *, decimals=0):
    """Round half to even (as PyTorch and numpy), to ``decimals`` places."""
    _no_bool(input, "round")
    if input._data.dtype.kind == "c":
        raise NotImplementedError("round is not supported for complex inputs")
    if _dtype.kind_of(input._data.dtype) != "f" and decimals >= 0:
        return Tensor._wrap(input._data.copy())
    return apply(_round, _to_float(input), decimals=int(decimals))


def _atan2_denominator(y, x):
    # at the origin PyTorch's gradient is 0, not 0/0: divide by 1 there (the numerator is 0)
    d = x * x + y * y
    return where(d == 0, const(1.0, d.dtype), d)


_atan2 = defop("atan2", np.arctan2,
               lambda g, out, y, x: g * x / _atan2_denominator(y, x),
               lambda g, out, y, x: -g * y / _atan2_denominator(y, x))


@public(method=True, inplace=True, out=True)
def atan2(input, other):
    """The angle of the point ``(other, input)``: ``atan(input / other)`` in the right quadrant."""
    y, x = pair(input, other, "atan2")
    refuse_complex(y, "atan2_cpu")
    return apply(_atan2, _to_float(y), _to_float(x))


arctan2 = atan2
public(arctan2, name="arctan2", method=True, inplace=True, out=True)


_LN2, _LN10 = math.log(2.0), math.log(10.0)
_2_SQRTPI = 2 / math.sqrt(math.pi)


def _keep_dtype(fn):
    """A forward that keeps the input's float dtype (numpy/scipy may compute in float64)."""
    return lambda *xs, **kw: np.asarray(fn(*xs, **kw), dtype=xs[0].dtype)


def _holomorphic(vjp):
    """The VJP ``g * conj(f'(z))`` of a holomorphic f from one written ``g * f'(x)`` (linear in g):
    ``conj(vjp(conj(g)))``; for real tensors the conjugations are no-ops."""
    return lambda g, out, x: _cj(vjp(_cj(g), out, x))


# the functions of _float_unary that take complex input (their VJPs made holomorphic), as PyTorch's
_COMPLEX_FLOAT_UNARY = frozenset({"exp2", "log2", "log10", "sinh", "cosh", "asin", "acos", "atan", "asinh", "acosh",
                                  "atanh"})


def _float_unary(name, fwd, vjp, saves_output=False, saves=None, doc=None):
    complex_ok = name in _COMPLEX_FLOAT_UNARY
    # a bare numpy ufunc keeps a float dtype already, and apply runs it on the threads (a wrapper it would not)
    op = defop(name, fwd if isinstance(fwd, np.ufunc) else _keep_dtype(fwd), _holomorphic(vjp) if complex_ok else vjp,
               saves_output=saves_output, saves=saves)

    def fn(input):
        input = as_tensor(input, name)
        if not complex_ok:
            refuse_complex(input, name)
        return apply(op, _to_float(input))

    fn.__name__ = name
    fn.__doc__ = doc
    return op, fn


_exp2, exp2 = _float_unary("exp2", np.exp2, lambda g, out, x: g * out * _LN2, saves_output=True, saves=())
public(exp2, method=True, inplace=True, out=True,
       doc="``2 ** input``, elementwise.")
def _log_base_fwd(name, ufunc):
    """The float64 forward of log2 / log10: the kernel (vmath::log_table, within an ulp of the exact
    value; 1e6 elements on one thread 0.8 against numpy's 1.0 ms), numpy's for other dtypes."""
    def fwd(x):
        y = _kernels.forward(name, x) if type(x) is np.ndarray and x.dtype == np.float64 else None
        return _kernels.ufunc(ufunc, x) if y is None else y
    return fwd


_log2, log2 = _float_unary("log2", _log_base_fwd("log2", np.log2), lambda g, out, x: g / (x * _LN2))
public(log2, method=True, inplace=True, out=True,
       doc="The base-2 logarithm, elementwise.")
_log10, log10 = _float_unary("log10", _log_base_fwd("log10", np.log10), lambda g, out, x: g / (x * _LN10))
public(log10, method=True, inplace=True, out=True,
       doc="The base-10 logarithm, elementwise.")
_sinh, sinh = _float_unary("sinh", np.sinh, lambda g, out, x: g * cosh(x))
public(sinh, method=True, inplace=True, out=True,
       doc="The hyperbolic sine, elementwise.")
_cosh, cosh = _float_unary("cosh", np.cosh, lambda g, out, x: g * sinh(x))
public(cosh, method=True, inplace=True, out=True,
       doc="The hyperbolic cosine, elementwise.")
_asin, asin = _float_unary("asin", np.arcsin, lambda g, out, x: g * rsqrt(1 - x * x))
public(asin, method=True, inplace=True, out=True,
       doc="The inverse sine, elementwise (``arcsin``).")
_acos, acos = _float_unary("acos", np.arccos, lambda g, out, x: -g * rsqrt(1 - x * x))
public(acos, method=True, inplace=True, out=True,
       doc="The inverse cosine, elementwise (``arccos``).")
_atan, atan = _float_unary("atan", np.arctan, lambda g, out, x: g / (x * x + 1))
public(atan, method=True, inplace=True, out=True,
       doc="The inverse tangent, elementwise (``arctan``).")
_asinh, asinh = _float_unary("asinh", np.arcsinh, lambda g, out, x: g * rsqrt(x * x + 1))
public(asinh, method=True, inplace=True, out=True,
       doc="The inverse hyperbolic sine, elementwise (``arcsinh``).")
# rsqrt(x + 1) * rsqrt(x - 1), not rsqrt(x * x - 1): the same for real x, and the right branch for complex
def _acosh_vjp(g, out, x):
    # real: PyTorch's 1/sqrt(x^2 - 1), finite below -1 (where the value is NaN); complex: the principal branch
    if x.dtype.kind == "c":
        return g * rsqrt(x + 1) * rsqrt(x - 1)
    return g * rsqrt(x * x - 1)


_acosh, acosh = _float_unary("acosh", np.arccosh, _acosh_vjp)
public(acosh, method=True, inplace=True, out=True,
       doc="The inverse hyperbolic cosine, elementwise (``arccosh``).")
_atanh, atanh = _float_unary("atanh", np.arctanh, lambda g, out, x: g / (1 - x * x))
public(atanh, method=True, inplace=True, out=True,
       doc="The inverse hyperbolic tangent, elementwise (``arctanh``).")


def _erfc_fwd(x):
    y = _kernels.forward("erfc", x)
    return _sp.erfc(x) if y is None else y


_erfc, erfc = _float_unary("erfc", _erfc_fwd, lambda g, out, x: -g * exp(-x * x) * _2_SQRTPI)
public(erfc, method=True, inplace=True, out=True,
       doc="The complementary error function ``1 - erf(input)``, elementwise.")
_erfinv, erfinv = _float_unary("erfinv", _sp.erfinv, lambda g, out, x: g * exp(out * out) * (math.sqrt(math.pi) / 2),
                         saves_output=True, saves=())
public(erfinv, method=True, inplace=True, out=True,
       doc="The inverse error function, elementwise.")
_lgamma, lgamma = _float_unary("lgamma", _sp.gammaln, lambda g, out, x: g * digamma(x),
                         doc="``log|Gamma(x)|``; its derivative is ``digamma``.")
public(lgamma, method=True, inplace=True, out=True)
_digamma, digamma = _float_unary("digamma", _sp.digamma, lambda g, out, x: g * polygamma(1, x),
                           doc="``d/dx log Gamma(x)``; its derivative is ``polygamma(1, x)``.")
public(digamma, method=True, inplace=True, out=True)
_polygamma = defop("polygamma", _keep_dtype(lambda x, n: _sp.polygamma(n, x)),
                   lambda g, out, x, n: g * apply(_polygamma, x, n=n + 1))


@public(out=True)
def polygamma(n, input):
    """The ``n``-th derivative of ``digamma`` (``n = 0``: digamma itself).

    >>> tapegrad.polygamma(1, tapegrad.tensor([1.0]))   # pi^2 / 6
    tensor([1.6449])
    """
    if isinstance(n, Tensor) and n.ndim == 0 and n._data.dtype.kind in "iu":
        n = int(n)  # a 0-d integer tensor, as PyTorch's parser takes it
    if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 0:
        raise RuntimeError(f"polygamma(n, x) does not support negative or non-integer n, got n = {n!r}")
    return apply(_polygamma, _to_float(as_tensor(input, "polygamma")), n=int(n))


def _frac_fwd(x):
    y = _kernels.forward("frac", x)  # one pass (numpy's subtract and trunc: two, and a temporary)
    return x - np.trunc(x) if y is None else y


_frac = defop("frac", _keep_dtype(_frac_fwd), lambda g, out, x: g, saves=())


@public(method=True, inplace=True, out=True)
def frac(input):
    """``input - trunc(input)``; floats only, as in PyTorch."""
    if _dtype.kind_of(input._data.dtype) != "f":
        raise RuntimeError(f"frac: not implemented for {input._data.dtype} tensors")
    return apply(_frac, input)


arcsin, arccos, arctan, arcsinh, arccosh, arctanh = asin, acos, atan, asinh, acosh, atanh
public(arcsin, name="arcsin", method=True, inplace=True, out=True)
public(arccos, name="arccos", method=True, inplace=True, out=True)
public(arctan, name="arctan", method=True, inplace=True, out=True)
public(arcsinh, name="arcsinh", method=True, inplace=True, out=True)
public(arccosh, name="arccosh", method=True, inplace=True, out=True)
public(arctanh, name="arctanh", method=True, inplace=True, out=True)
special_erfinv = erfinv

def _logit_fwd(x):
    y = _kernels.forward("logit", x)  # one pass, vmath's log (numpy: three passes and two temporaries)
    return np.log(x / (1 - x)) if y is None else y


def _logit_vjp(g, out, x):
    """``g / (x (1 - x))``, NaN outside [0, 1] where the logit is NaN (PyTorch's logit_backward)."""
    gx = _kernels.backward("logit", g, x)
    if gx is not None:
        return gx
    outside = (x < 0) | (x > 1)
    return g / where(outside, const(np.nan, x.dtype), x * (1 - x))


_logit = defop("logit", _keep_dtype(_logit_fwd), _logit_vjp)


@public(method=True, inplace=True, out=True)
def logit(input, eps=None):
    """``log(p / (1 - p))``; with ``eps``, ``p`` is first clamped to ``[eps, 1 - eps]``.

    >>> tapegrad.logit(tapegrad.tensor([0.5, 0.75]))
    tensor([0.0000, 1.0986])
    """
    x = _to_float(as_tensor(input, "logit"))
    refuse_complex(x, "logit_cpu")
    if eps is not None:
        x = clamp(x, eps, 1 - eps)
    return apply(_logit, x)


def _float_pair(a, b, opname):
    a, b = pair(a, b, opname)
    return _to_float(a), _to_float(b)


_hypot = defop("hypot", np.hypot, lambda g, out, a, b: g * a / out, lambda g, out, a, b: g * b / out,
               saves_output=True)
_logaddexp = defop("logaddexp", np.logaddexp, lambda g, out, a, b: g * exp(a - out),
                   lambda g, out, a, b: g * exp(b - out), saves_output=True)


@public(method=True, inplace=True, out=True)
def hypot(input, other):
    """``sqrt(input**2 + other**2)`` without overflow."""
    return apply(_hypot, *_float_pair(input, other, "hypot"))


@public(method=True, out=True)
def logaddexp(input, other):
    """``log(exp(input) + exp(other))`` without overflow (real tensors only here)."""
    a, b = _float_pair(input, other, "logaddexp")
    refuse_complex(a, "logaddexp")
    return apply(_logaddexp, a, b)


# PyTorch: d remainder(a, b) / db = -floor(a / b), d fmod(a, b) / db = -trunc(a / b)
_remainder = defop("remainder", np.remainder, lambda g, out, a, b: g, lambda g, out, a, b: -g * floor(a / b))
_fmod = defop("fmod", np.fmod, lambda g, out, a, b: g, lambda g, out, a, b: -g * trunc(a / b))


def _int_mod(npfn, a, b, opname):
    integer_division_checked(a, b, opname)
    return Tensor._wrap(npfn(a._data, b._data))


@public(method=True, inplace=True, out=True)
def remainder(input, other):
    """Python's ``%``: the result has the sign of the divisor."""
    a, b = pair(input, other, "remainder")
    if _dtype.kind_of(a._data.dtype) != "f":
        return _int_mod(np.remainder, a, b, "remainder")
    return apply(_remainder, a, b)


@public(method=True, inplace=True, out=True)
def fmod(input, other):
    """C's ``fmod``: the result has the sign of the dividend."""
    a, b = pair(input, other, "fmod")
    if _dtype.kind_of(a._data.dtype) != "f":
        return _int_mod(np.fmod, a, b, "fmod")
    return apply(_fmod, a, b)


@public(method=True, inplace=True, out=True)
def floor_divide(input, other):
    """``floor(input / other)`` (PyTorch >= 1.13 rounds down, like Python's ``//``)."""
    return div(input, other, rounding_mode="floor")


def _ternary_takes(first, *others, weight=False):
    """Whether csrc/kernels/ternary.h takes these arrays: exact ndarrays (a sparse tensor's storage
    never reaches pybind11), float32/float64 of one dtype, C-contiguous, ``first`` non-empty with
    dims, each other of its shape (or, with ``weight``, the last one 0-d: lerp's number weight).
    Else the numpy forms below."""
    d = first.dtype
    if type(first) is not np.ndarray or d.char not in "fd" or not first.ndim or not first.size:
        return False
    if not first.flags.c_contiguous:
        return False
    for x in others:
        if type(x) is not np.ndarray or x.dtype != d or not x.flags.c_contiguous:
            return False
        if x.shape != first.shape and not (weight and x.ndim == 0 and x is others[-1]):
            return False
    return True


def _numpy_into(fn, out, *arrays):
    """``fn(out, scratch, *arrays)``: the numpy form of an update into ``out`` for the arrays the
    kernels do not take (strided, 16-bit widened, ...). ``scratch`` is ``out`` unless an array is
    ``out`` (an in-place update)."""
    fn(out, np.empty_like(out) if any(a is out for a in arrays) else out, *arrays)
    return out


def _lerp_scalar_into(out, a, b, w):
    """``lerp(a, b, w)`` for a 0-d ``w``, written into ``out`` (which may be ``a``): the branch of
    PyTorch's two-sided formula that ``w`` picks, with numpy operations whose rounding the kernel's
    (csrc/kernels/ternary.h) is, bit for bit."""
    if _ternary_takes(a, b, w, weight=True) and out.flags.c_contiguous and out.flags.writeable:
        return _C.lerp(a, b, w, out)  # one pass, on the kernel threads (numpy's three: 1.5x PyTorch's time)
    if np.abs(w) < 0.5:
        def fn(o, t, a, b):
            np.subtract(b, a, out=t)
            np.multiply(w, t, out=t)
            np.add(a, t, out=o)
    else:
        omw = 1 - w

        def fn(o, t, a, b):
            np.subtract(b, a, out=t)
            np.multiply(t, omw, out=t)
            np.subtract(b, t, out=o)
    return _numpy_into(fn, out, a, b)


def _lerp_fwd(a, b, w):
    # PyTorch's two-sided formula: exact at w = 0 and w = 1
    if w.ndim == 0 and a.dtype == b.dtype == w.dtype and a.dtype.char in "fd" and a.shape == b.shape and a.ndim:
        out = _lerp_scalar_into(np.empty(a.shape, a.dtype), a, b, w)  # one branch, no temporaries
    elif _ternary_takes(a, b, w, weight=True):  # a tensor weight of the ends' shape: the branch picked per element
        out = _C.lerp(a, b, w, np.empty(a.shape, a.dtype))
    else:
        d = b - a
        out = np.asarray(np.where(np.abs(w) < 0.5, a + w * d, b - d * (1 - w)), dtype=np.result_type(a, b))
    return out, {}  # aux: the gradients one kernel pass made for VJPs still to come (_lerp_grads)


def _lerp_grads(g, a, b, w, stash, i):
    """The first-order gradient of lerp's input ``i`` (0 input, 1 end, 2 weight) from one C++ pass
    that makes those of the later inputs requiring grad as well: the engine calls the VJPs in input
    order, so the later ones find theirs in ``stash`` with this ``g``. None where the kernel does
    not take the arrays (the composite VJP's case)."""
    got = stash.pop(i, None)
    if got is not None and got[0] is g:
        return got[1]
    gd, wd = g._data, w._data
    if not _ternary_takes(gd, a._data, b._data, wd, weight=True):
        return None
    want = [i == 0, i == 1 or (i == 0 and b._requires_grad), wd.ndim > 0 and (i == 2 or w._requires_grad)]
    if i == 2 and not want[2]:  # a 0-d weight's gradient is a sum: the composite's
        return None
    grads = _C.lerp_backward(gd, a._data, b._data, wd, *want)
    for k in range(i + 1, 3):
        if grads[k] is not None:
            stash[k] = (g, Tensor._wrap(grads[k]))
    return Tensor._wrap(grads[i])


def _lerp_vjp(i, composite):
    """The VJP for lerp's input ``i``: one C++ pass first-order (_lerp_grads), ``composite`` (the
    formula in tapegrad ops, differentiable again) under create_graph or where the kernel does not
    take the arrays. The same bits either way: the kernel rounds as the composite's numpy ops."""
    def vjp(g, out, a, b, w, *, aux):
        r = None if grad_mode.is_grad_enabled() else _lerp_grads(g, a, b, w, aux, i)
        return composite(g, a, b, w) if r is None else r
    return vjp


_lerp = defop("lerp", _lerp_fwd, _lerp_vjp(0, lambda g, a, b, w: g * (1 - w)),
              _lerp_vjp(1, lambda g, a, b, w: g * w), _lerp_vjp(2, lambda g, a, b, w: g * (b - a)), aux=True)


def _unrecorded(*xs):
    """Whether nothing here would be recorded: grad mode off, or no tensor among ``xs`` requires grad."""
    return not grad_mode.state.enabled or not any(isinstance(x, Tensor) and x._requires_grad for x in xs)


def _plain_float(t):
    d = t._data.dtype
    return d.char in "fd"


def _writable_alone(self, *others):
    """``self``'s array can take an in-place result directly: writable and sharing no memory with
    ``others`` (else the generic in-place path, which computes the result before writing)."""
    a = self._data
    return a.flags.writeable and not any(np.may_share_memory(a, o._data) for o in others)


def lerp_(self, end, weight):
    """In-place form of ``lerp``: writes the result into ``self`` and returns it."""
    w = None
    if isinstance(end, Tensor) and _unrecorded(self, end, weight) and _plain_float(self):
        d = self._data.dtype
        if type(weight) in (float, int):
            w = np.asarray(weight, d)
        elif isinstance(weight, Tensor) and _ternary_takes(self._data, end._data, weight._data, weight=True):
            w = weight._data  # a weight of self's shape and dtype: the kernel, else the generic path
        if not (w is not None and end._data.dtype == d and end._data.shape == self._data.shape
                and _writable_alone(self, end, *[t for t in (weight,) if isinstance(t, Tensor)])):
            w = None
    if w is not None:
        # an EMA update: PyTorch's arithmetic straight into self's memory
        if WRITE_WATCHERS:
            before_write(self)
        if w.ndim:
            _C.lerp(self._data, end._data, w, self._data)
        else:
            _lerp_scalar_into(self._data, self._data, end._data, w)
        self._bump_version()
        return self
    return inplace(self, lambda s, *_: lerp(s, end, weight), "lerp_", *[t for t in (end, weight) if isinstance(t, Tensor)])


@public(method=True, out=True)
def lerp(input, end, weight):
    """``input + weight * (end - input)``; ``weight`` a number or a tensor (differentiable).

    >>> tapegrad.lerp(tapegrad.zeros(2), tapegrad.ones(2), 0.25)
    tensor([0.2500, 0.2500])
    """
    if isinstance(end, Tensor) and isinstance(input, Tensor) and end.dtype != input.dtype:
        raise RuntimeError(f"lerp: expected dtype {input.dtype} for `end` but got dtype {end.dtype}")
    a, b = pair(input, end, "lerp")
    if isinstance(weight, Tensor):
        if weight.ndim and weight.dtype != a.dtype:
            raise RuntimeError(f"lerp: expected dtype {_dtype.name(a.dtype)} for `weight` but got dtype "
                               f"{_dtype.name(weight.dtype)}")
        d = _dtype.result_type(a._data, b._data, weight._data)  # a 0-d weight promotes (int ends, float weight)
        a, b = a.to(d), b.to(d)
    if _dtype.kind_of(a._data.dtype) != "f":
        raise RuntimeError(f"lerp: expected floating-point input and end, got {_dtype.name(a._data.dtype)}")
    # a number weight stays float32 beside 16-bit tensors (PyTorch's opmath), not rounded to them
    w = weight.to(a.dtype) if isinstance(weight, Tensor) else const(weight, scalar_dtype(a.dtype))
    return apply(_lerp, a, b, w)


public(lerp_, method=True)


def _addc_plain(input, tensor1, tensor2, value):
    """Whether addcmul/addcdiv can run on the arrays: nothing recorded, three float32/float64 tensors
    of one dtype and shape, a number ``value``."""
    return (isinstance(input, Tensor) and isinstance(tensor1, Tensor) and isinstance(tensor2, Tensor)
            and type(value) in (float, int) and _unrecorded(input, tensor1, tensor2) and _plain_float(input)
            and input._data.dtype is tensor1._data.dtype is tensor2._data.dtype
            and input._data.shape == tensor1._data.shape == tensor2._data.shape)


def _addc_into(out, x, a, b, value, ufunc):
    """``x + (a ufunc b) * value`` into ``out`` (which may be ``x``), as the composite computes it:
    the product or quotient, times ``value`` (as a scalar of the dtype) unless it is 1, plus ``x``."""
    v = np.asarray(value, x.dtype)
    if _ternary_takes(x, a, b) and out.flags.c_contiguous:
        # one pass on the kernel threads, the same roundings (numpy's three passes: 1.3x PyTorch's
        # time at one thread, 2.6x at two); times 1 is exact, so value 1 needs no case there
        return _C.addc(x, a, b, float(v), ufunc is np.true_divide, out)

    def fn(o, t, x, a, b):
        ufunc(a, b, out=t)
        if value != 1:
            np.multiply(t, v, out=t)
        np.add(x, t, out=o)
    return _numpy_into(fn, out, x, a, b)


def _scaled(g, value):
    return g if value == 1 else mul(g, value)


# addcmul and addcdiv recorded as one op each where the kernel takes the three tensors (one forward
# pass, not three and two temporaries), with the VJPs of the composite they replace: the gradient
# (g * value) * tensor2 of mul(mul(t1, t2), value), add's g, div's, so the bits of every gradient and
# double backward stay those of the composite.
_addcmul = defop("addcmul", lambda x, a, b, *, value: _addc_into(np.empty(x.shape, x.dtype), x, a, b, value, np.multiply),
                 lambda g, out, x, a, b, *, value: g,
                 lambda g, out, x, a, b, *, value: _times_conj(_scaled(g, value), b),
                 lambda g, out, x, a, b, *, value: _times_conj(_scaled(g, value), a), saves=(1, 2))
_addcdiv = defop("addcdiv", lambda x, a, b, *, value: _addc_into(np.empty(x.shape, x.dtype), x, a, b, value,
                                                                np.true_divide),
                 lambda g, out, x, a, b, *, value: g,
                 lambda g, out, x, a, b, *, value: _scaled(g, value) / b,
                 lambda g, out, x, a, b, *, value: -_scaled(g, value) * (a / (b * b)), saves=(1, 2))


def _addc_fused(input, tensor1, tensor2, value):
    """Whether addcmul/addcdiv record their one op: three float32/float64 tensors of one dtype and
    shape the kernel takes (C-contiguous, with dims), a number ``value``."""
    return (isinstance(input, Tensor) and isinstance(tensor1, Tensor) and isinstance(tensor2, Tensor)
            and type(value) in (float, int) and _ternary_takes(input._data, tensor1._data, tensor2._data))


def addcmul_(self, tensor1, tensor2, *legacy, value=1):
    """In-place form of ``addcmul``: writes the result into ``self`` and returns it."""
    if legacy:  # PyTorch's deprecated addcmul_(Number value, tensor1, tensor2)
        tensor1, tensor2, value = (tensor2, _number_first("addcmul_", "value", tensor1, legacy, value != 1, 2),
                                   tensor1)
    if _addc_plain(self, tensor1, tensor2, value) and _writable_alone(self, tensor1, tensor2):
        if WRITE_WATCHERS:
            before_write(self)
        _addc_into(self._data, self._data, tensor1._data, tensor2._data, value, np.multiply)
        self._bump_version()
        return self
    return inplace(self, lambda s, *_: addcmul(s, tensor1, tensor2, value=value), "addcmul_", tensor1, tensor2)


def addcdiv_(self, tensor1, tensor2, *legacy, value=1):
    """In-place form of ``addcdiv``: writes the result into ``self`` and returns it."""
    if legacy:  # PyTorch's deprecated addcdiv_(Number value, tensor1, tensor2)
        tensor1, tensor2, value = (tensor2, _number_first("addcdiv_", "value", tensor1, legacy, value != 1, 2),
                                   tensor1)
    if _addc_plain(self, tensor1, tensor2, value) and _writable_alone(self, tensor1, tensor2):
        if WRITE_WATCHERS:
            before_write(self)
        _addc_into(self._data, self._data, tensor1._data, tensor2._data, value, np.true_divide)
        self._bump_version()
        return self
    return inplace(self, lambda s, *_: addcdiv(s, tensor1, tensor2, value=value), "addcdiv_", tensor1, tensor2)


@public(method=True, out=True)
@round_once
def addcmul(input, tensor1, tensor2, *legacy, value=1):
    """``input + value * tensor1 * tensor2``; the tensors alone set the dtype (PyTorch casts ``value``)."""
    if legacy:  # PyTorch's deprecated addcmul(Number value, tensor1, tensor2)
        tensor1, tensor2, value = (tensor2, _number_first("addcmul", "value", tensor1, legacy, value != 1, 2),
                                   tensor1)
    if _addc_plain(input, tensor1, tensor2, value) and input._data.ndim:  # nothing to record: one blocked pass
        x = input._data
        return Tensor._wrap(_addc_into(np.empty(x.shape, x.dtype), x, tensor1._data, tensor2._data, value,
                                       np.multiply))
    if _addc_fused(input, tensor1, tensor2, value):  # recorded: one op (1e6 float32 forward + backward 1.14x
        return apply(_addcmul, input, tensor1, tensor2, value=value)  # PyTorch's time as mul, mul, add)
    d = _dtype.result_type(input._data, tensor1._data, tensor2._data)  # all three at once, as PyTorch
    prod = mul(tensor1, tensor2)
    if d == np.bool_:
        raise RuntimeError("addcmul: not implemented for 'Bool' tensors")
    prod = prod.to(d)
    if value != 1:
        prod = mul(prod, int(value) if _dtype.kind_of(d) != "f" else value)
    return add(input.to(d), prod)


@public(method=True, out=True)
@round_once
def addcdiv(input, tensor1, tensor2, *legacy, value=1):
    """``input + value * tensor1 / tensor2``."""
    if legacy:  # PyTorch's deprecated addcdiv(Number value, tensor1, tensor2)
        tensor1, tensor2, value = (tensor2, _number_first("addcdiv", "value", tensor1, legacy, value != 1, 2),
                                   tensor1)
    if _addc_plain(input, tensor1, tensor2, value) and input._data.ndim:
        x = input._data
        return Tensor._wrap(_addc_into(np.empty(x.shape, x.dtype), x, tensor1._data, tensor2._data, value,
                                       np.true_divide))
    if _addc_fused(input, tensor1, tensor2, value):
        return apply(_addcdiv, input, tensor1, tensor2, value=value)
    if _dtype.kind_of(tensor1._data.dtype) != "f" and _dtype.kind_of(tensor2._data.dtype) != "f":
        raise RuntimeError("addcdiv: integer division with addcdiv is no longer supported; use floating-point "
                           f"tensors (got {tensor1._data.dtype} and {tensor2._data.dtype})")
    d = _dtype.result_type(input._data, tensor1._data, tensor2._data)  # all three at once, as PyTorch
    q = div(tensor1.to(d), tensor2.to(d))
    return add(input.to(d), mul(q, value) if value != 1 else q)


public(addcmul_, addcdiv_, method=True)


def _nan_to_num_fwd(x, nan, posinf, neginf):
    if _kernels.takes(x):  # one pass (numpy's nan_to_num: 5.6x PyTorch's time for 1e6 float32)
        info = np.finfo(x.dtype)
        values = (nan, info.max if posinf is None else posinf, info.min if neginf is None else neginf)
        if all(v != v or builtins.abs(v) <= info.max or builtins.abs(v) == math.inf for v in values):
            return _kernels.forward("nan_to_num", x, *map(float, values))  # (each exact in the dtype's range)
    return np.nan_to_num(x, nan=nan, posinf=posinf, neginf=neginf)


_nan_to_num = defop("nan_to_num", _nan_to_num_fwd,
                    lambda g, out, x, nan, posinf, neginf: g * isfinite(x).to(g.dtype))


@public(method=True, inplace=True, out=True)
def nan_to_num(input, nan=0.0, posinf=None, neginf=None):
    """NaN to ``nan``, +-inf to ``posinf``/``neginf`` (default: the dtype's largest/smallest finite)."""
    if _dtype.kind_of(input._data.dtype) != "f":
        return Tensor._wrap(input._data.copy())
    return apply(_nan_to_num, input, nan=0.0 if nan is None else float(nan), posinf=posinf, neginf=neginf)


def ndtr(input):
    """The standard normal CDF, ``(1 + erf(x / sqrt(2))) / 2`` (integer and bool input as floats)."""
    return 0.5 * erfc(-_float(input, "ndtr") * (1 / math.sqrt(2)))


def ndtri(input):
    """The inverse of ``ndtr``: ``sqrt(2) * erfinv(2p - 1)``."""
    return math.sqrt(2) * erfinv(2 * input - 1)


def xlog1py(input, other):
    """``input * log1p(other)``, 0 where ``input`` is 0 (unless ``other`` is NaN); either may be a number."""
    x, y = pair(input, other, "xlog1py")
    x, y = _float(x, "xlog1py_cpu"), _float(y, "xlog1py_cpu")
    # log1p(other) is replaced only where input == 0 and other <= -1, so d/dinput stays log1p(other)
    fix = (x == 0) & ~isnan(y) & (y <= -1)
    return x * log1p(where(fix, const(0.0, y.dtype), y))


def multigammaln(input, p):
    """The multivariate log-gamma ``sum_i lgamma(x - i/2) + p(p-1)/4 log(pi)``."""
    out = sum(lgamma(input - j / 2) for j in range(p))
    return out + p * (p - 1) / 4 * math.log(math.pi)


@public(method=True)
def zero_(self):
    """Fill ``self`` with zeros, in place."""
    return fill_(self, 0)


@public(method=True)
def fill_(self, value):
    """Fill ``self`` with ``value`` (a number or a 0-d tensor, differentiable), in place."""
    if isinstance(value, Tensor):
        if value.ndim:
            raise RuntimeError(f"fill_ only supports 0-dimension value tensor but got tensor with {value.ndim} "
                               f"dimensions.")
        if grad_mode.state.enabled and value._requires_grad:  # the gradient reaches the value, summed
            return inplace(self, lambda s, v: _replace(s, v.to(s.dtype)), "fill_", value)
        value = value.item()
    if grad_mode.state.enabled and self._requires_grad:
        return inplace(self, lambda s: _replace(s, Tensor._wrap(np.asarray(value, s.dtype))), "fill_")
    if not self._data.flags.writeable:
        raise RuntimeError("fill_: unsupported operation: this tensor is a read-only or expanded view "
                           f"(shape {tuple(self.shape)}, strides {self._data.strides}); clone() it first")
    if WRITE_WATCHERS:
        before_write(self)
    self._data.fill(value)
    self._bump_version()
    return self


@public(method=True)
def copy_(self, src):
    """Copy ``src`` (broadcast, cast to ``self``'s dtype) into ``self``; differentiable in ``src``."""
    if not WRITE_WATCHERS and _C._copy_tensor(self, src):  # two tensors of one dtype, nothing to record
        return self
    src = as_tensor(src, "copy_")
    if isinstance(self, Tensor) and (not grad_mode.state.enabled or not (self._requires_grad or src._requires_grad)):
        a, b = self._data, src._data
        if (type(a) is np.ndarray and type(b) is np.ndarray and a.dtype == b.dtype and a.flags.writeable
                and (b.shape == a.shape or _broadcasts_onto(b.shape, a.shape))):
            # nothing to record: one copy (the kernel threads', else numpy's, overlap handled),
            # where the recorded form's select over a broadcast mask took 8x PyTorch's time for 1e6
            # float32. Below the threads' size numpy's assignment, not np.copyto's dispatch (the
            # same copy of one dtype): 1.05 -> 0.6 us for an 8x16 float32 (PyTorch 0.32)
            if WRITE_WATCHERS:
                before_write(self)
            if not _C._copy_into(a, b):
                a[...] = b
            self._bump_version()
            return self
    return inplace(self, lambda s, o: _replace(s, o.to(s.dtype)), "copy_", src)


def _broadcasts_onto(small, full):
    """Whether an array of shape ``small`` broadcasts onto ``full`` (numpy's rule, ``full`` kept)."""
    return small == full or (len(small) <= len(full) and all(
        m == 1 or m == n for m, n in zip(small[::-1], full[::-1])))


def _replace(s: Tensor, value: Tensor) -> Tensor:
    """``value`` broadcast to ``s``'s shape, recorded so that ``s`` gets a zero gradient."""
    return where(Tensor._wrap(np.broadcast_to(np.True_, s.shape)), value, s)


# ---------------------------------------------------------------- aliases PyTorch keeps
@public(method=True, inplace=True, out=True)
def true_divide(input, other):
    """``input / other`` (true division, as ``div``)."""
    return div(input, other)


@public(method=True, inplace=True, out=True)
def divide(input, other, *, rounding_mode=None):
    """``div`` under NumPy's name."""
    return div(input, other, rounding_mode=rounding_mode)


@public(method=True, inplace=True, out=True)
def multiply(input, other):
    """``mul`` under NumPy's name."""
    return mul(input, other)


@public(method=True, inplace=True, out=True)
def subtract(input, other, *, alpha=1):
    """``sub`` under NumPy's name."""
    return sub(input, other, alpha=alpha)


@public(method=True, inplace=True, out=True)
def negative(input):
    """``neg`` under NumPy's name."""
    return neg(input)


@public(method=True)
def positive(input):
    """``input`` itself (the unary plus); refused for bool tensors, as PyTorch."""
    if input._data.dtype == np.bool_:
        raise RuntimeError("positive: the `+` operator, on a bool tensor is not supported")
    return input


@public(method=True, inplace=True, out=True)
def absolute(input):
    """``abs`` under NumPy's name."""
    return abs(input)


@public(method=True, inplace=True, out=True)
def clamp_min(input, min):
    """``clamp(input, min=min)``."""
    return clamp(input, min=min)


@public(method=True, inplace=True, out=True)
def clamp_max(input, max):
    """``clamp(input, max=max)``."""
    return clamp(input, max=max)


# ---------------------------------------------------------------- more pointwise functions
@public(method=True, inplace=True, out=True)
def deg2rad(input):
    """Degrees to radians, elementwise."""
    x = _float(input, "deg2rad")
    return x * (math.pi / 180.0)


@public(method=True, inplace=True, out=True)
def rad2deg(input):
    """Radians to degrees, elementwise."""
    x = _float(input, "rad2deg")
    return x * (180.0 / math.pi)


def _float(x, opname="this function"):
    refuse_complex(x, opname)  # (the composites written with _float are real-valued)
    return x if _dtype.kind_of(x.dtype) == "f" else x.to(_dtype.default_float())


@public(method=True, inplace=True, out=True)
def sinc(input):
    """``sin(pi x) / (pi x)``, 1 at 0."""
    x = _float(input, "sinc")
    zero = x == 0
    safe = where(zero, const(1.0, x.dtype), x) * math.pi
    return where(zero, const(1.0, x.dtype), sin(safe) / safe)


@public(method=True, out=True)
def signbit(input):
    """True where the sign bit is set (negative numbers and -0.0)."""
    return Tensor._wrap(np.signbit(input._data))


def _copysign_ratio(x, y):
    """d copysign(x, y) / dx: +-1 (the sign flip), 0 where x is 0 (PyTorch's copysign backward)."""
    flip = np.where(np.signbit(x._data) != np.signbit(y._data), -1, 1)
    return const(np.where(x._data == 0, 0, flip), x.dtype)


# the sign input's gradient is zero (not None), as PyTorch's: copysign is constant in it almost everywhere
_copysign = defop("copysign", np.copysign, lambda g, out, x, y: g * _copysign_ratio(x, y),
                  lambda g, out, x, y: const(np.zeros(g.shape), g.dtype))


@public(method=True, inplace=True, out=True)
def copysign(input, other):
    """``|input|`` with the sign of ``other`` (floats, as in PyTorch)."""
    return apply(_copysign, *_float_pair(input, other, "copysign"))


@public(method=True, inplace=True, out=True)
def float_power(input, exponent):
    """``input ** exponent`` in float64 (complex128 when either is complex)."""
    cplx = builtins.any(isinstance(v, builtins.complex) or isinstance(v, Tensor) and v._data.dtype.kind == "c"
                        for v in (input, exponent))
    d = _dtype.complex128 if cplx else _dtype.float64
    x = input.to(d) if isinstance(input, Tensor) else input
    e = exponent.to(d) if isinstance(exponent, Tensor) else (builtins.complex if cplx else builtins.float)(exponent)
    if not isinstance(x, Tensor):
        x = const(x, d)
    return pow(x, e)


@public(method=True, inplace=True, out=True)
def heaviside(input, values):
    """0 where ``input < 0``, ``values`` where ``input == 0``, 1 where ``input > 0``.

    Both are tensors of one dtype, as in PyTorch (which refuses to promote here)."""
    if not isinstance(values, Tensor):
        raise TypeError(f"heaviside(): argument 'values' must be Tensor, not {type(values).__name__}")
    if input.dtype != values.dtype:
        raise RuntimeError(f"heaviside is not yet implemented for tensors with different dtypes "
                           f"({_dtype.name(input.dtype)} and {_dtype.name(values.dtype)})")
    x, v = pair(input, values, "heaviside")
    return Tensor._wrap(np.heaviside(x._data, v._data).astype(x.dtype))


@public(method=True, inplace=True, out=True)
def xlogy(input, other):
    """``input * log(other)``, 0 where ``input == 0`` (unless ``other`` is NaN)."""
    x, y = pair(input, other, "xlogy")
    x, y = _float(x, "xlogy_cpu"), _float(y, "xlogy_cpu")
    # log(other) is replaced only where input == 0 and other <= 0, so d/dinput stays log(other)
    fix = (x == 0) & ~isnan(y) & (y <= 0)
    return x * log(where(fix, const(1.0, y.dtype), y))


@public(method=True, out=True)
def logaddexp2(input, other):
    """``log2(2 ** input + 2 ** other)``, without overflow."""
    ln2 = math.log(2.0)
    return logaddexp(input * ln2, other * ln2) / ln2


@public(method=True, out=True)
def fmax(input, other):
    """Elementwise maximum that ignores NaN (NaN only where both are NaN)."""
    x, y = pair(input, other, "fmax")
    # input where it is >= other (ties included: PyTorch gives their whole gradient to input) or
    # other is NaN; other elsewhere
    return where(logical_or(isnan(y), ge(x, y)), x, y)


@public(method=True, out=True)
def fmin(input, other):
    """Elementwise minimum that ignores NaN (NaN only where both are NaN)."""
    x, y = pair(input, other, "fmin")
    return where(logical_or(isnan(y), le(x, y)), x, y)  # as fmax: ties' gradient to input


@public(method=True, inplace=True, out=True)
def mvlgamma(input, p):
    """The multivariate log-gamma function of dimension ``p`` (``special.multigammaln``): the sum
    of ``lgamma(x - i / 2)``, so below ``(p - 1) / 2`` it is the log of the absolute value, as
    PyTorch's (which no longer refuses those elements)."""
    x = _to_float(as_tensor(input, "mvlgamma"))
    if not isinstance(p, (int, np.integer)) or p < 1:
        raise RuntimeError(f"mvlgamma: p has to be greater than or equal to 1, got {p!r}")
    return multigammaln(x, int(p))


@public(method=True, inplace=True, out=True)
def ldexp(input, other):
    """``input * 2 ** other`` (a float result, integer inputs included, as in PyTorch).

    >>> tapegrad.ldexp(tapegrad.tensor([1.0, 3.0]), tapegrad.tensor([2, -1]))
    tensor([4.0000, 1.5000])
    """
    x, e = as_tensor(input, "ldexp"), as_tensor(other, "ldexp")
    return mul(_to_float(x), exp2(_to_float(e)))


@public(out=True)
def rsub(input, other, *, alpha=1):
    """``other - alpha * input``: ``sub`` with its operands swapped."""
    return sub(other, input, alpha=alpha)


def _integer_binary(npfn, name):
    def fn(input, other):
        a, b = pair(input, other, name)
        if a._data.dtype.kind not in "iu":
            raise RuntimeError(f"{name}: not implemented for {_dtype.name(a._data.dtype)} tensors (integers only)")
        try:
            return Tensor._wrap(np.asarray(npfn(a._data, b._data), dtype=a._data.dtype))
        except ValueError as e:
            raise RuntimeError(f"{name}: {e}") from None

    fn.__name__ = name
    return fn


gcd = _integer_binary(np.gcd, "gcd")
public(gcd, method=True, inplace=True, out=True,
       doc="The greatest common divisor of ``input`` and ``other``, elementwise (integers; ``gcd(0, 0) = 0``).")
lcm = _integer_binary(np.lcm, "lcm")
public(lcm, method=True, inplace=True, out=True,
       doc="The least common multiple of ``input`` and ``other``, elementwise (integers; 0 if either is 0).")


# one ulp away from input: PyTorch's gradient is the identity for input (zero where input equals
# other, the result then being other itself) and zero for other
_nextafter = defop("nextafter", np.nextafter,
                   lambda g, out, x, y: where(Tensor._wrap(np.not_equal(x._data, y._data)), g, const(0, g.dtype)),
                   lambda g, out, x, y: const(np.zeros(g.shape), g.dtype))


@public(method=True, inplace=True, out=True)
def nextafter(input, other):
    """The next float after ``input`` towards ``other``, elementwise (gradient: 1 for input where it
    differs from other, 0 for other)."""
    a, b = pair(input, other, "nextafter")
    if a._data.dtype.kind != "f":
        raise RuntimeError(f"nextafter: not implemented for {_dtype.name(a._data.dtype)} tensors (floats only)")
    return apply(_nextafter, a, b)


_Frexp = collections.namedtuple("frexp", ["mantissa", "exponent"])
# mantissa = x / 2**exponent, the exponent piecewise constant: its gradient is g / 2**exponent
_frexp_mantissa = defop("frexp_mantissa", lambda x: np.frexp(x)[0],
                        lambda g, out, x: g * const(np.ldexp(1.0, -np.frexp(x._data)[1]), g.dtype), saves=(0,))


@public(method=True, out=True)
def frexp(input):
    """``(mantissa, exponent)`` with ``input = mantissa * 2 ** exponent``, ``0.5 <= |mantissa| < 1``
    (an int32 exponent); floats only, as in PyTorch."""
    if input._data.dtype.kind != "f":
        raise RuntimeError(f"frexp: only supports floating-point dtypes, got {_dtype.name(input._data.dtype)}")
    e = np.frexp(input._data)[1]
    return _Frexp(apply(_frexp_mantissa, input), Tensor._wrap(e.astype(np.int32)))
