"""The op table: one entry per op, driving every per-op test in ``test_op_table.py``.

``OP_INFOS`` maps a name (an op of ``tapegrad.ops.OPS``, or a public function) to an ``OpInfo``:

- ``sample(draw)`` builds one call from hypothesis-drawn float64 inputs, a ``Sample``. Its ``fn``
  is written once against ``M``, the library under test (``tapegrad`` or ``torch``, whose APIs
  agree; ``F(M)`` is ``M.nn.functional``), so the same call feeds the numpy reference check, the
  gradient check (``gradcheck``), the second-derivative check (``gradgradcheck``, when the entry
  says ``gradgrad``: its VJP is not linear in the inputs) and the comparison with PyTorch.
- ``cases``: fixed inputs compared with PyTorch (values, dtypes, float gradients; second
  derivatives for a case marked ``double``): the ties, zeros, huge logits and argument forms
  that drawn inputs avoid or rarely hit.
- ``errors``: calls on bad input that must raise the same exception type as PyTorch.
- ``family``: "unary"/"binary" puts the op in the differential test's pools
  (``test_differential_vs_torch.py``), which runs it on every dtype and odd shape.

A new op fails ``test_every_differentiable_op_has_an_entry`` until it gets one. Drawn inputs are
kept away from non-differentiable points (kinks, ties, integer boundaries) by the value kinds of
``arr``. This module imports no torch: the PyTorch side runs only when the tests find it.
"""
from __future__ import annotations

import dataclasses
from typing import Callable

import numpy as np
import scipy.fft as sfft
import scipy.special as sp
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import tapegrad as tg
from tapegrad.ops import recurrent


# ---------------------------------------------------------------- the table
@dataclasses.dataclass
class Sample:
    fn: Callable                # (M, *tensors) -> tensor (or tuple of tensors)
    args: list                  # numpy float64 arrays, the differentiable inputs
    ref: Callable | None        # numpy arrays -> expected forward value(s)
    tol: dict = dataclasses.field(default_factory=dict)  # gradcheck eps/atol/rtol overrides
    torch_fn: Callable | None | bool = None  # PyTorch's spelling when it differs; False: PyTorch has none


@dataclasses.dataclass
class Case:
    """A fixed call compared with PyTorch: ``fn(M, *tensors)`` on float leaves made from ``args``."""
    fn: Callable
    args: list
    double: bool = False        # also compare second derivatives
    rtol: float = 1e-10         # values
    grad_rtol: float = 1e-10
    atol: float = 1e-10
    known_failure: str | None = None  # a divergence found and not yet fixed: its test is a strict xfail


@dataclasses.dataclass
class OpInfo:
    sample: Callable | None = None   # draw -> Sample; None: no gradient (or checked through another entry)
    gradgrad: bool = False           # the VJP is non-linear in the inputs: also check second derivatives
    cases: list = dataclasses.field(default_factory=list)
    errors: list = dataclasses.field(default_factory=list)  # M -> raises (the same type in both)
    op: str | None = None            # the public function checked, when the entry's name is a variant
    family: str | None = None        # "unary" / "binary": drawn by the differential test
    torch_rtol: float = 1e-9         # drawn samples against PyTorch


OP_INFOS: dict[str, OpInfo] = {}


def info(name) -> OpInfo:
    return OP_INFOS.setdefault(name, OpInfo())


def entry(*names, gradgrad=False, **kw):
    """Register the decorated sample builder under ``names``."""
    def deco(sample):
        for n in names:
            e = info(n)
            e.sample, e.gradgrad = sample, gradgrad
            for k, v in kw.items():
                setattr(e, k, v)
        return sample
    return deco


def cases(name, *cs, **defaults):
    """Add fixed PyTorch cases to ``name``'s entry; ``defaults`` (rtol, grad_rtol, ...) apply to each."""
    for c in cs:
        for k, v in defaults.items():
            setattr(c, k, v)
        info(name).cases.append(c)


def errors(name, *calls):
    info(name).errors.extend(calls)


def F(M):
    return M.nn.functional


# ---------------------------------------------------------------- drawing inputs
SHAPES = hnp.array_shapes(min_dims=0, max_dims=3, min_side=1, max_side=3)
NONEMPTY_SHAPES = hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=3)
GRID = 0.37  # values on a jittered grid stay >= 0.13 apart from another grid shifted by 0.18


def arr(draw, shape, kind="any"):
    """A float64 array of ``shape`` whose values avoid the points an op is not differentiable at.

    any: uniform in [-2, 2]; pos: in [0.3, 2]; nonzero: |x| in [0.3, 2]; distinct: no two
    values within 0.3 (no ties); grid0/grid1: two interleaved grids (x from one never meets a
    bound from the other); frac: at least 0.1 from an integer and from a half-integer.
    """
    rng = np.random.default_rng(draw(st.integers(0, 2 ** 32 - 1)))
    n = int(np.prod(shape))
    if kind == "pos":
        a = rng.uniform(0.3, 2.0, n)
    elif kind == "nonzero":
        a = rng.uniform(0.3, 2.0, n) * rng.choice([-1.0, 1.0], n)
    elif kind == "distinct":
        a = (rng.permutation(n) - n // 2) * GRID + rng.uniform(0, 0.05, n)
    elif kind in ("grid0", "grid1", "grid2"):
        off = {"grid0": 0.0, "grid1": 0.18, "grid2": 0.27}[kind]
        a = rng.integers(-5, 5, n) * GRID + off + rng.uniform(0, 0.05, n)
    elif kind == "frac":
        a = rng.integers(-3, 3, n) + rng.choice([0.15, 0.65], n) + rng.uniform(0, 0.2, n)
    else:
        a = rng.uniform(-2.0, 2.0, n)
    return a.reshape(shape)


def leaf(a, dtype=tg.float64):
    return tg.tensor(np.array(a), dtype=dtype, requires_grad=True)


def dims_and_keepdim(draw, ndim):
    """``dim`` as None, an int or a tuple (valid for ``ndim``), and ``keepdim``."""
    keep = draw(st.booleans())
    if ndim == 0:
        return draw(st.sampled_from([None, 0, -1, ()])), keep
    kind = draw(st.sampled_from(["none", "int", "tuple"]))
    if kind == "none":
        return None, keep
    if kind == "int":
        return draw(st.integers(-ndim, ndim - 1)), keep
    ds = draw(st.lists(st.integers(0, ndim - 1), min_size=1, max_size=ndim, unique=True))
    return tuple(d - ndim if draw(st.booleans()) else d for d in ds), keep


def np_dims(dim, ndim):
    if dim is None or dim == ():
        return None
    return tuple(d % ndim for d in dim) if isinstance(dim, tuple) else (dim % ndim,) if ndim else None


def one_dim(draw, ndim):
    return draw(st.integers(-ndim, ndim - 1)) if ndim else draw(st.sampled_from([0, -1]))


def binary_shapes(draw, allow_0d=True):
    sh = draw(hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0 if allow_0d else 1, max_dims=3, max_side=3))
    return sh.input_shapes


def call(name, *args, **kw):
    """``M.name(x, ..., *args, **kw)``: the call written once for both libraries."""
    return lambda M, *xs: getattr(M, name)(*xs, *args, **kw)


def nn_call(name, *args, **kw):
    """``M.nn.functional.name(x, ..., *args, **kw)``."""
    return lambda M, *xs: getattr(F(M), name)(*xs, *args, **kw)


# ---------------------------------------------------------------- fixed inputs of the PyTorch cases
_r = np.random.default_rng(0)
A = _r.standard_normal((3, 4))
B = _r.standard_normal((4,))
P = _r.uniform(0.5, 2.0, (3, 4))
Z = np.array([[1.0, 0.0, 2.0], [0.0, 0.0, 3.0], [1.5, -2.0, 0.5]])        # exact zeros
T = np.array([[1.0, 3.0, 3.0], [2.0, 2.0, -1.0]])                        # ties
IDX = np.array([[0, 2, 1, 0], [3, 3, 0, 1], [1, 1, 1, 2]])

_r = np.random.default_rng(3)
A2 = _r.standard_normal((3, 4))
B2 = _r.standard_normal((4,))
C2 = _r.standard_normal((4, 5))
S2 = _r.uniform(-0.8, 0.8, (3, 4))                                       # inside (-1, 1)
P2 = _r.uniform(0.5, 2.0, (3, 4))
Q2 = _r.uniform(0.1, 0.9, (3, 4))                                        # inside (0, 1)
M3 = _r.standard_normal((2, 3, 3)) * 0.3 + np.eye(3) * 2
V3 = _r.standard_normal((2, 3))
T2 = np.array([[1.0, 3.0, 3.0, 0.5], [2.0, 2.0, -1.0, 2.0], [0.0, 0.0, 0.0, 1.0]])  # ties
Z2 = np.array([[1.5, 0.0, 2.0, -1.0], [0.0, 0.0, 3.0, 2.0], [1.5, -2.0, 0.5, 0.7]])
NANS = np.array([[1.0, np.nan, 2.0], [np.nan, 3.0, -1.0]])


# ---------------------------------------------------------------- pointwise
def _binary(name, fn, ref, ka="any", kb="any", gradgrad=False, family=None):
    @entry(name, gradgrad=gradgrad, family=family)
    def sample(draw):
        sa, sb = binary_shapes(draw)
        return Sample(fn, [arr(draw, sa, ka), arr(draw, sb, kb)], ref)


_binary("add", lambda M, a, b: M.add(a, b, alpha=2), lambda a, b: a + 2 * b, family="binary")
_binary("sub", lambda M, a, b: a - b, np.subtract, family="binary")
_binary("mul", lambda M, a, b: a * b, np.multiply, gradgrad=True, family="binary")
_binary("div", lambda M, a, b: a / b, np.divide, kb="nonzero", gradgrad=True, family="binary")
_binary("pow", lambda M, a, b: a ** b, np.power, ka="pos", gradgrad=True, family="binary")
_binary("maximum", call("maximum"), np.maximum, "grid0", "grid1", family="binary")
_binary("minimum", call("minimum"), np.minimum, "grid0", "grid1", family="binary")
_binary("atan2", call("atan2"), np.arctan2, "nonzero", "nonzero", gradgrad=True, family="binary")
_binary("hypot", call("hypot"), np.hypot, "nonzero", "nonzero", gradgrad=True, family="binary")
_binary("logaddexp", call("logaddexp"), np.logaddexp, gradgrad=True, family="binary")
_binary("addcmul", lambda M, a, b: M.addcmul(a, b, a, value=0.5), lambda a, b: a + 0.5 * b * a, gradgrad=True)
_binary("addcdiv", lambda M, a, b: a.addcdiv(a, b, value=-2), lambda a, b: a - 2 * a / b, kb="nonzero", gradgrad=True)
cases("atan2", Case(lambda M, y, x: M.atan2(y, x), [A, B]))
cases("hypot", Case(lambda M, x, y: M.hypot(x, y) + M.logaddexp(x, y * 10), [A2, B2], double=True), grad_rtol=1e-9)
cases("addcmul", Case(lambda M, x, y, z: M.addcmul(x, y, z, value=0.5) + M.addcdiv(x, y, z, value=-2), [A2, B2, P2]),
      grad_rtol=1e-9)


@entry("floor_divide", "trunc_divide")
def _rounding_div(draw):
    shape = draw(SHAPES)
    b = arr(draw, shape, "pos") * np.sign(arr(draw, shape, "nonzero"))
    a = b * arr(draw, shape, "frac")  # the quotient stays away from integers
    mode = draw(st.sampled_from(["floor", "trunc"]))
    ref = (lambda x, y: np.floor(x / y)) if mode == "floor" else (lambda x, y: np.trunc(x / y))
    return Sample(lambda M, x, y: M.div(x, y, rounding_mode=mode), [a, b], ref)


for _n in ("true_divide", "floor_divide", "remainder", "fmod", "eq", "ne", "lt", "le", "gt", "ge", "logical_and",
           "logical_or", "logical_xor", "fmax", "fmin", "copysign", "xlogy", "float_power", "heaviside"):
    info(_n).family = "binary"


_binary("copysign", call("copysign"), np.copysign, "nonzero", "nonzero")
_binary("nextafter", call("nextafter"), np.nextafter, "grid0", "grid1")  # the identity's gradient for input, zero for other
cases("nextafter", Case(lambda M, x, y: M.nextafter(x, y), [np.array([1.5, -3.0, 0.7, 2.0]), np.array([2.0, -5.0, 0.7, 2.0])]))


@entry("frexp_mantissa", op="frexp")
def _frexp(draw):
    # |mantissa| in (0.55, 0.95), exponents -1..2: away from the powers of 2 where it jumps
    shape = draw(SHAPES)
    m = 0.55 + (arr(draw, shape, "pos") - 0.3) * (0.4 / 1.7)
    x = m * np.sign(arr(draw, shape, "nonzero")) * 2.0 ** np.floor(arr(draw, shape, "pos") * 2 - 1.5)
    return Sample(lambda M, a: M.frexp(a).mantissa, [x], lambda a: np.frexp(a)[0])
cases("copysign", Case(lambda M, x, y: M.copysign(x, y) + M.copysign(x, -0.0),  # the sign's gradient: zeros
                       [np.array([1.0, 0.0, -0.0, -3.0, 2.0]), np.array([-1.0, 2.0, -0.0, 0.0, np.inf])]))


@entry("compare_", op="Tensor.gt_")
def _compare_inplace(draw):
    # an in-place comparison of a tensor in the graph: 0/1 values, a zero gradient through them
    return Sample(lambda M, x: (x * 1).gt_(0) * x, [arr(draw, draw(SHAPES), "nonzero")], lambda x: (x > 0) * x)


@entry("remainder", "fmod")
def _remainder(draw):
    shape = draw(SHAPES)
    b = arr(draw, shape, "pos") * np.sign(arr(draw, shape, "nonzero"))
    a = b * arr(draw, shape, "frac")  # the quotient stays away from integers
    if draw(st.booleans()):
        return Sample(call("remainder"), [a, b], np.remainder)
    return Sample(call("fmod"), [a, b], np.fmod)


cases("remainder", Case(lambda M, x, y: M.remainder(x * 3, y) + M.fmod(x * 3, y) + M.remainder(x, 0.7), [A2, P2[0]]),
      grad_rtol=1e-9)


@entry("pow_scalar", gradgrad=True, op="pow")
def _pow_scalar(draw):
    e = draw(st.sampled_from([0, 1, 2, 3, -1, 0.5, -2.5, 3.5]))
    return Sample(lambda M, x: x ** e, [arr(draw, draw(SHAPES), "pos")], lambda x: x ** e)


UNARY = {  # name: (call, reference, value kind, non-linear VJP)
    "neg": (call("neg"), np.negative, "any", False),
    "exp": (call("exp"), np.exp, "any", True),
    "log": (call("log"), np.log, "pos", True),
    "log1p": (call("log1p"), np.log1p, "pos", True),
    "expm1": (call("expm1"), np.expm1, "any", True),
    "sqrt": (call("sqrt"), np.sqrt, "pos", True),
    "rsqrt": (call("rsqrt"), lambda x: 1 / np.sqrt(x), "pos", True),
    "sin": (call("sin"), np.sin, "any", True),
    "cos": (call("cos"), np.cos, "any", True),
    "tan": (lambda M, x: M.tan(x * 0.4), lambda x: np.tan(x * 0.4), "any", True),  # away from the poles
    "tanh": (call("tanh"), np.tanh, "any", True),
    "sigmoid": (call("sigmoid"), sp.expit, "any", True),
    "abs": (call("abs"), np.abs, "nonzero", False),
    "erf": (call("erf"), sp.erf, "any", True),
    "relu": (call("relu"), lambda x: np.maximum(x, 0), "nonzero", True),  # gradgrad: relu_backward's VJP
    "sign": (call("sign"), np.sign, "nonzero", False),
    "square": (call("square"), np.square, "any", True),
    "reciprocal": (call("reciprocal"), np.reciprocal, "nonzero", True),
    "floor": (call("floor"), np.floor, "frac", False),
    "ceil": (call("ceil"), np.ceil, "frac", False),
    "trunc": (call("trunc"), np.trunc, "frac", False),
    "round": (call("round"), np.round, "frac", False),
    "exp2": (call("exp2"), np.exp2, "any", True),
    "log2": (call("log2"), np.log2, "pos", True),
    "log10": (call("log10"), np.log10, "pos", True),
    "sinh": (call("sinh"), np.sinh, "any", True),
    "cosh": (call("cosh"), np.cosh, "any", True),
    "asin": (lambda M, x: M.asin(x * 0.4), lambda x: np.arcsin(x * 0.4), "any", True),
    "acos": (lambda M, x: M.acos(x * 0.4), lambda x: np.arccos(x * 0.4), "any", True),
    "atan": (call("atan"), np.arctan, "any", True),
    "asinh": (call("asinh"), np.arcsinh, "any", True),
    "acosh": (lambda M, x: M.acosh(x + 1), lambda x: np.arccosh(x + 1), "pos", True),
    "atanh": (lambda M, x: M.atanh(x * 0.4), lambda x: np.arctanh(x * 0.4), "any", True),
    "erfc": (call("erfc"), sp.erfc, "any", True),
    "erfinv": (lambda M, x: M.erfinv(x * 0.4), lambda x: sp.erfinv(x * 0.4), "any", True),
    "frac": (call("frac"), lambda x: x - np.trunc(x), "frac", False),
    "logit": (lambda M, x: M.logit(x * 0.4), lambda x: sp.logit(x * 0.4), "pos", True),
    "nan_to_num": (call("nan_to_num"), np.nan_to_num, "any", False),
    "median_all": (call("median"), lambda x: np.sort(x.reshape(-1))[(x.size - 1) // 2], "distinct", False),
    "silu": (nn_call("silu"), lambda x: x * sp.expit(x), "any", True),
    "logsigmoid": (nn_call("logsigmoid"), lambda x: -np.logaddexp(0, -x), "any", True),
    "leaky_relu": (nn_call("leaky_relu", 0.2), lambda x: np.where(x > 0, x, 0.2 * x), "nonzero", False),
    "elu": (nn_call("elu", 1.5), lambda x: np.where(x > 0, x, 1.5 * np.expm1(x)), "nonzero", True),
    "hardtanh": (nn_call("hardtanh", -0.82, 0.93), lambda x: np.clip(x, -0.82, 0.93), "grid0", False),
    "hardshrink": (nn_call("hardshrink", 0.93), lambda x: np.where(np.abs(x) > 0.93, x, 0), "grid0", False),
    "softshrink": (nn_call("softshrink", 0.93), lambda x: np.where(np.abs(x) > 0.93, x - np.sign(x) * 0.93, 0),
                   "grid0", False),
    "threshold": (nn_call("threshold", -0.82, 0.4), lambda x: np.where(x > -0.82, x, 0.4), "grid0", False),
    "relu6": (nn_call("relu6"), lambda x: np.clip(x, 0, 6), "nonzero", False),
    "hardswish": (nn_call("hardswish"), lambda x: x * np.clip(x + 3, 0, 6) / 6, "nonzero", True),
    "hardsigmoid": (nn_call("hardsigmoid"), lambda x: np.clip(x + 3, 0, 6) / 6, "nonzero", False),
    "mish": (nn_call("mish"), lambda x: x * np.tanh(np.logaddexp(0, x)), "any", True),
}
# the pointwise functions of one tensor the differential test runs on every dtype
DIFFERENTIAL_UNARY = {"abs", "neg", "exp", "log", "sqrt", "sin", "cos", "tanh", "sigmoid", "relu", "sign", "floor",
                      "ceil", "round", "trunc", "square", "reciprocal", "exp2", "log2", "expm1", "log1p", "rsqrt",
                      "frac", "erf", "atan", "sinh", "log10", "cosh", "asin", "acos", "asinh", "acosh", "atanh",
                      "erfc", "erfinv", "logit", "nan_to_num"}
for _name, (_fn, _ref, _kind, _gg) in UNARY.items():
    def _make(fn=_fn, ref=_ref, kind=_kind):
        return lambda draw: Sample(fn, [arr(draw, draw(SHAPES), kind)], ref)
    entry(_name, gradgrad=_gg, family="unary" if _name in DIFFERENTIAL_UNARY else None)(_make())
info("median_all").op = "median"
info("hardsigmoid").torch_rtol = 1e-6  # PyTorch's float64 backward multiplies by 1/6 in float32 (below)
for _n in ("logical_not", "isnan", "isfinite", "sgn", "signbit", "deg2rad"):
    info(_n).family = "unary"
info("relu_backward").op = "relu"  # relu's VJP: checked by relu's gradgradcheck
OP_INFOS["relu_backward"].sample, OP_INFOS["relu_backward"].gradgrad = OP_INFOS["relu"].sample, True

cases("leaky_relu", Case(lambda M, x: F(M).leaky_relu(x, 0.1), [A]))
cases("elu", Case(lambda M, x: F(M).elu(x, 0.7), [A]))
cases("silu", Case(lambda M, x: F(M).silu(x), [A], double=True))
cases("logsigmoid", Case(lambda M, x: F(M).logsigmoid(x * 50), [A]))
cases("hardtanh", Case(lambda M, x: F(M).hardtanh(x, -0.5, 0.7), [A]))
cases("hardshrink", Case(lambda M, x: F(M).hardshrink(x, 0.7), [A]))
cases("softshrink", Case(lambda M, x: F(M).softshrink(x, 0.7), [A]))
cases("threshold", Case(lambda M, x: F(M).threshold(x, -0.5, 0.25), [A]))
cases("hardswish", Case(lambda M, x: F(M).hardswish(x * 4), [A], double=True))
# PyTorch's float64 hardsigmoid_backward multiplies by 1/6 rounded to float32 (1.0f / 6.0f), and its
# celu backward takes 1 / alpha in float32 (alpha.toFloat()): gradients 3e-8 off, relative. Ours
# are the exact derivatives in float64, so these cases compare gradients at 1e-6.
cases("hardsigmoid", Case(lambda M, x: F(M).hardsigmoid(x * 4), [A], grad_rtol=1e-6))
cases("mish", Case(lambda M, x: F(M).mish(x * 4), [A], double=True))
cases("elu", Case(lambda M, x: F(M).selu(x * 3), [A], double=True),
      Case(lambda M, x: F(M).celu(x * 2, 0.6), [A], double=True, grad_rtol=1e-6))
cases("square", Case(lambda M, x: M.square(x) + M.reciprocal(x), [P]))
cases("floor", Case(lambda M, x: M.floor(x * 3) + M.ceil(x) + M.round(x * 2.5) + M.trunc(x * 4), [A]))
cases("exp2", Case(lambda M, x: M.exp2(x) + M.log2(x) + M.log10(x), [P2], double=True), grad_rtol=1e-9)
cases("sinh", Case(lambda M, x: M.sinh(x) * M.cosh(x) + M.asinh(x), [A2]), grad_rtol=1e-9)
cases("asin", Case(lambda M, x: M.asin(x) + M.acos(x) * M.atan(x) + M.atanh(x) + M.acosh(x * x + 1.5), [S2],
                   double=True), grad_rtol=1e-9)
cases("logit", Case(lambda M, x: M.logit(x) + M.logit(x, eps=0.2), [Q2], double=True), grad_rtol=1e-9)
cases("erfinv", Case(lambda M, x: M.erfinv(x) + M.special.erfc(x) if M is not tg else M.erfinv(x) + M.erfc(x), [S2],
                     double=True), grad_rtol=1e-9)
cases("frac", Case(lambda M, x: M.frac(x * 3) + M.floor_divide(x.detach() * 5, 2), [A2]), grad_rtol=1e-9)
cases("nan_to_num", Case(lambda M, x: M.nan_to_num(x / M.tensor([0.0, 1.0, 0.0, 2.0], dtype=M.float64), nan=0.5,
                                                   posinf=9.0), [A2]), grad_rtol=1e-9)
cases("sgn", Case(lambda M, x: M.sgn(x) * x, [A2]), grad_rtol=1e-9)
info("median_all").cases += [Case(lambda M, x: M.median(x), [A2], grad_rtol=1e-9),
                             Case(lambda M, x: M.median(x), [T2], grad_rtol=1e-9)]


@entry("gelu", gradgrad=True)
def _gelu(draw):
    approx = draw(st.sampled_from(["none", "tanh"]))
    k = np.sqrt(2 / np.pi)
    ref = ((lambda x: 0.5 * x * (1 + np.tanh(k * (x + 0.044715 * x ** 3)))) if approx == "tanh"
           else (lambda x: x * sp.ndtr(x)))
    return Sample(lambda M, x: F(M).gelu(x, approximate=approx), [arr(draw, draw(SHAPES))], ref)


cases("gelu", Case(lambda M, x: F(M).gelu(x), [A], double=True),
      Case(lambda M, x: F(M).gelu(x, approximate="tanh"), [A]))


@entry("softplus", gradgrad=True)
def _softplus(draw):
    beta, threshold = draw(st.sampled_from([(1.0, 20.0), (2.0, 1.0), (0.5, 0.4)]))
    x = arr(draw, draw(SHAPES), "grid0")  # beta * x stays off the threshold
    ref = lambda a: np.where(beta * a > threshold, a, np.log1p(np.exp(beta * a)) / beta)  # noqa: E731
    return Sample(lambda M, a: F(M).softplus(a, beta, threshold), [x], ref)


cases("softplus", Case(lambda M, x: F(M).softplus(x * 15, beta=2, threshold=10), [A], double=True))


@entry("prelu_kernel")
def _prelu(draw):
    per_channel = draw(st.booleans())
    x = arr(draw, (2, 3, 4), "nonzero")  # away from prelu's kink at 0
    w = arr(draw, (3,) if per_channel else (1,), "any")
    ref = lambda a, b: np.where(a > 0, a, a * (b.reshape(3, 1) if b.size == 3 else b))  # noqa: E731
    return Sample(lambda M, a, b: F(M).prelu(a, b), [x, w], ref)


@entry("where")
def _where(draw):
    sa, sb = binary_shapes(draw)
    shape = np.broadcast_shapes(sa, sb)
    cond = arr(draw, shape) > 0
    return Sample(lambda M, a, b: M.where(M.tensor(cond), a, b), [arr(draw, sa), arr(draw, sb)],
                  lambda a, b: np.where(cond, a, b))


@entry("clamp")
def _clamp(draw):
    variant = draw(st.sampled_from(["scalars", "min_only", "max_only", "tensors"]))
    x = arr(draw, draw(SHAPES), "grid0")
    if variant == "tensors":  # bounds are differentiable too; lo > hi happens and gives hi
        sx, sl, sh = draw(hnp.mutually_broadcastable_shapes(num_shapes=3, min_dims=0, max_dims=3, max_side=3)).input_shapes
        x = arr(draw, sx, "grid0")
        return Sample(lambda M, a, lo, hi: M.clamp(a, lo, hi), [x, arr(draw, sl, "grid1"), arr(draw, sh, "grid2")],
                      lambda a, lo, hi: np.minimum(np.maximum(a, lo), hi))
    lo = None if variant == "max_only" else -0.55 + 0.18
    hi = None if variant == "min_only" else 0.74 + 0.18
    return Sample(lambda M, a: M.clamp(a, min=lo, max=hi), [x], lambda a: np.clip(a, lo, hi))


cases("clamp", Case(lambda M, x: M.clamp(x, -0.5, 0.5), [A]),
      Case(lambda M, x, lo: M.clamp(x, min=lo), [A, B]),
      Case(lambda M, x: M.clamp(x, 0.0, 1.0), [np.array([0.0, 1.0, 0.5, -1.0])]))


@entry("clamp_")
def _clamp_inplace(draw):
    x = arr(draw, draw(SHAPES), "grid0")

    def fn(M, a):
        y = a * 1.0
        y.clamp_(-0.37, 0.55)
        return y
    return Sample(fn, [x], lambda a: np.clip(a, -0.37, 0.55))


@entry("lerp", gradgrad=True)
def _lerp(draw):
    sa, sb = binary_shapes(draw)
    if draw(st.booleans()):
        w = draw(st.sampled_from([0.25, 0.75, -0.5, 1.5]))
        return Sample(lambda M, a, b: M.lerp(a, b, w), [arr(draw, sa), arr(draw, sb)], lambda a, b: a + w * (b - a))
    sw = np.broadcast_shapes(sa, sb)[-1:]
    return Sample(call("lerp"), [arr(draw, sa), arr(draw, sb), arr(draw, sw)], lambda a, b, w: a + w * (b - a))


cases("lerp", Case(lambda M, x, y, w: M.lerp(x, y, w) + M.lerp(x, y, 0.3) + x.lerp(y, 0.8), [A2, B2, Q2]),
      grad_rtol=1e-9)


# ---------------------------------------------------------------- reductions
def _reduction(name, fn, ref, kind="any", gradgrad=False, op=None, torch_fn=None):
    @entry(name, gradgrad=gradgrad, op=op)
    def sample(draw):
        x = arr(draw, draw(SHAPES), kind)
        dim, keep = dims_and_keepdim(draw, x.ndim)
        return Sample(lambda M, t: fn(M, t, dim, keep), [x],
                      lambda a: ref(a, axis=np_dims(dim, a.ndim), keepdims=keep),
                      torch_fn=torch_fn and (lambda M, t: torch_fn(M, t, dim, keep)))


_reduction("sum", lambda M, t, d, k: t.sum(d, k), np.sum)
_reduction("mean", lambda M, t, d, k: t.mean(d, k), np.mean)
_reduction("amax", lambda M, t, d, k: M.amax(t, () if d is None else d, k), np.amax, "distinct")
_reduction("amin", lambda M, t, d, k: t.amin(() if d is None else d, k), np.amin, "distinct")
_reduction("logsumexp", lambda M, t, d, k: t.logsumexp(d, k) if d is not None or M is tg else t.logsumexp(
    tuple(range(t.ndim)), k),  # PyTorch's logsumexp needs its dims
           lambda a, axis, keepdims: sp.logsumexp(a, axis=axis, keepdims=keepdims) if a.ndim else a, gradgrad=True)
_reduction("norm2", lambda M, t, d, k: t.norm(dim=d, keepdim=k), lambda a, axis, keepdims: np.sqrt(
    np.sum(a * a, axis=axis, keepdims=keepdims)), "nonzero", gradgrad=True, op="norm",
    torch_fn=lambda M, t, d, k: M.linalg.vector_norm(t, 2, d, k))  # PyTorch's norm over 3 dims refuses
_reduction("norm_p1", lambda M, t, d, k: t.norm(1, d, k), lambda a, axis, keepdims: np.sum(
    np.abs(a), axis=axis, keepdims=keepdims), "nonzero", gradgrad=True, op="norm")
_reduction("normp", lambda M, t, d, k: t.norm(3, d, k), lambda a, axis, keepdims: np.sum(
    np.abs(a) ** 3, axis=axis, keepdims=keepdims) ** (1 / 3), "nonzero", gradgrad=True, op="norm")
_reduction("norm_inf", lambda M, t, d, k: M.norm(t.abs() + 0.1, float("inf"), d, k), lambda a, axis, keepdims: np.amax(
    np.abs(a) + 0.1, axis=axis, keepdims=keepdims), "distinct", op="norm")
cases("amax", Case(lambda M, x: M.amax(x, 1), [T]))
cases("amin", Case(lambda M, x: M.amin(x, (0, 1), keepdim=True), [T]))
cases("logsumexp", Case(lambda M, x: M.logsumexp(x * 1e3, 1), [A], double=True))
cases("norm2", Case(lambda M, x: x.norm(), [A], double=True),
      Case(lambda M, x: M.norm(x, dim=1), [np.array([[0.0, 0.0], [3.0, 4.0]])]))
cases("norm_p1", Case(lambda M, x: M.norm(x, 1, dim=0), [A]))
cases("norm_inf", Case(lambda M, x: M.norm(x, float("inf")), [A]))
cases("normp", Case(lambda M, x: M.norm(x, 3, dim=1, keepdim=True), [A]),
      # zeros: PyTorch's masked gradient (0 where x is 0 for p < 1, where the norm is 0 for p >= 1), not 0 * inf
      Case(lambda M, x: M.norm(x, 0.5, dim=1) + M.norm(x, -1, dim=1) + M.norm(x, 2.5, dim=1) + M.norm(x, 1.5, dim=1),
           [np.array([[0.5, 0.0], [0.0, 0.0], [-2.0, 0.5]])]))  # (second order at 0: PyTorch's own NaN)
errors("sum", lambda M: M.zeros(2, 3).sum(2))
errors("amax", lambda M: M.zeros(2, 0).amax(1), lambda M: M.zeros(0).amax())


def _torch_prod(dim, keep):
    """PyTorch's prod takes one dim or none: a tuple of dims (and None with keepdim) is tapegrad's extension."""
    if isinstance(dim, int):
        return None
    return (lambda M, t: M.prod(t)) if dim is None and not keep else False


@entry("prod", gradgrad=True)
def _prod(draw):
    """Exact zeros included: the gradient is the product of the others (a polynomial, so exact)."""
    x = arr(draw, draw(SHAPES))
    if draw(st.booleans()):
        x = np.where(arr(draw, x.shape) > 0.5, 0.0, x)
    dim, keep = dims_and_keepdim(draw, x.ndim)
    return Sample(lambda M, t: t.prod(dim, keep), [x], lambda a: np.prod(a, axis=np_dims(dim, a.ndim), keepdims=keep),
                  torch_fn=_torch_prod(dim, keep))


@entry("prod_nonzero", gradgrad=True, op="prod")
def _prod_nonzero(draw):
    x = arr(draw, draw(SHAPES), "nonzero")
    dim, keep = dims_and_keepdim(draw, x.ndim)
    return Sample(lambda M, t: M.prod(t, dim, keep), [x], lambda a: np.prod(a, axis=np_dims(dim, a.ndim), keepdims=keep),
                  torch_fn=_torch_prod(dim, keep))


# rows of Z hold one zero, two zeros and none: the second derivative passes through the zero factors
cases("prod", Case(lambda M, x: M.prod(x, 1), [Z], double=True),
      Case(lambda M, x: M.prod(x, 0, keepdim=True), [Z], double=True),
      Case(lambda M, x: M.prod(x), [np.array([2.0, 0.0, 3.0, 0.5])], double=True),
      Case(lambda M, x: M.prod(x), [np.array([2.0, 0.0, 3.0, 0.0])], double=True),
      Case(lambda M, x: M.prod(x), [np.array([2.0, 0.0, 3.0])]))


@entry("var", "std", gradgrad=True)
def _var(draw):
    x = arr(draw, draw(SHAPES).__add__((2,)), "distinct")
    dim, keep = dims_and_keepdim(draw, x.ndim)
    if dim is not None:  # reduce the last dim too: at least 2 samples per slice
        dim = tuple(sorted({d % x.ndim for d in ((dim,) if isinstance(dim, int) else dim)} | {x.ndim - 1}))
    form = draw(st.sampled_from(["default", "unbiased", "correction"]))
    which = draw(st.sampled_from(["var", "std"]))
    kw, ddof = {"default": ({}, 1), "unbiased": ({"unbiased": False}, 0), "correction": ({"correction": 0.5}, 0.5)}[form]
    npfn = np.var if which == "var" else np.std
    return Sample(lambda M, t: getattr(t, which)(dim, keepdim=keep, **kw), [x],
                  lambda a: npfn(a, axis=np_dims(dim, a.ndim), keepdims=keep, ddof=ddof))


cases("var", Case(lambda M, x: M.var(x, 1, keepdim=True), [A], double=True),
      Case(lambda M, x: M.var(x, dim=(0, 1), correction=0), [A]))
cases("std", Case(lambda M, x: x.std(0), [A]), Case(lambda M, x: M.std(x, 1, unbiased=False), [A]))


@entry("max_dim", "min_dim", "max_full")
def _max_dim(draw):
    x = arr(draw, draw(SHAPES), "distinct")
    which = draw(st.sampled_from(["max", "min"]))
    npfn = np.max if which == "max" else np.min
    if draw(st.booleans()):
        return Sample(lambda M, t: getattr(M, which)(t), [x], lambda a: npfn(a))
    d, keep = one_dim(draw, x.ndim), draw(st.booleans())
    ref = (lambda a: npfn(a, axis=d, keepdims=keep)) if x.ndim else (lambda a: a)
    return Sample(lambda M, t: getattr(t, which)(d, keep).values, [x], ref)


info("max_full").op = "max"
cases("max_full", Case(lambda M, x: x.max(), [T]), Case(lambda M, x: M.min(x), [T]))
cases("max_dim", Case(lambda M, x: M.max(x, 1), [T]))
cases("min_dim", Case(lambda M, x: x.min(dim=0, keepdim=True), [T]))
errors("max_dim", lambda M: M.zeros(2, 3).max(5))
cases("argmax", Case(lambda M, x: [x.argmax(), x.argmax(1, keepdim=True), M.argmin(x, 0)], [T]))
cases("all", Case(lambda M, x: [(x > 0).all(1), M.any(x > 1, 0, keepdim=True)], [A]))


@entry("cumsum")
def _cumsum(draw):
    x = arr(draw, draw(SHAPES))
    d = one_dim(draw, x.ndim)
    return Sample(lambda M, t: t.cumsum(d), [x], lambda a: np.cumsum(a, axis=d) if a.ndim else a)


cases("cumsum", Case(lambda M, x: M.cumsum(x, 1), [A]))


@entry("cumprod", gradgrad=True)
def _cumprod(draw):
    x = arr(draw, draw(SHAPES), "nonzero")
    d = one_dim(draw, x.ndim)
    return Sample(lambda M, t: t.cumprod(d), [x], lambda a: np.cumprod(a, axis=d) if a.ndim else a)


@entry("cumprod_zeros", op="cumprod")
def _cumprod_zeros(draw):
    """Exact zeros: the gradient is a polynomial in the inputs, so finite differences are exact."""
    x = arr(draw, draw(NONEMPTY_SHAPES))
    x = np.where(arr(draw, x.shape) > 0.3, 0.0, x)
    d = one_dim(draw, x.ndim)
    return Sample(lambda M, t: M.cumprod(t, d), [x], lambda a: np.cumprod(a, axis=d))


cases("cumprod", Case(lambda M, x: M.cumprod(x, 1), [A2], double=True), grad_rtol=1e-9)


@entry("logcumsumexp", gradgrad=True)
def _logcumsumexp(draw):
    x = arr(draw, draw(SHAPES)) * 3
    d = one_dim(draw, x.ndim)
    return Sample(lambda M, t: M.logcumsumexp(t, d), [x], lambda a: np.logaddexp.accumulate(a, axis=d) if a.ndim else a)


# each prefix stable on its own: a later large element must not swamp the earlier ones
cases("logcumsumexp", Case(lambda M, x: M.logcumsumexp(x, 0), [np.array([0.0, 100.0, -50.0, 101.0])], double=True),
      Case(lambda M, x: M.logcumsumexp(x * 40, 1), [A2], double=True), grad_rtol=1e-9)
cases("cumprod_zeros", Case(lambda M, x: M.cumprod(x, 1) + M.cumprod(x, 0), [Z2]), grad_rtol=1e-9)


@entry("sum_to_size")
def _sum_to_size(draw):
    target, big = binary_shapes(draw)
    shape = np.broadcast_shapes(target, big)
    return Sample(lambda M, t: t.sum_to_size(target), [arr(draw, shape)],
                  lambda a: np.sum(a, axis=tuple(range(a.ndim - len(target))) + tuple(
                      a.ndim - len(target) + i for i, s in enumerate(target) if s == 1 and a.shape[a.ndim - len(target) + i] != 1),
                      keepdims=True).reshape(target))


@entry("nansum", "nanmean")
def _nansum(draw):
    x = arr(draw, draw(NONEMPTY_SHAPES))
    dim, keep = dims_and_keepdim(draw, x.ndim)
    which = draw(st.sampled_from(["nansum", "nanmean"]))
    npfn = np.nansum if which == "nansum" else np.nanmean
    mask = arr(draw, x.shape) > 1.0
    if which == "nanmean":  # keep a non-NaN entry in every slice
        mask.reshape(-1)[0] = False
        mask = np.where(np.all(mask, axis=np_dims(dim, x.ndim), keepdims=True), False, mask)
    nan = np.where(mask, np.nan, 0.0)
    return Sample(lambda M, t: getattr(M, which)(t + M.tensor(nan), dim, keep), [x],
                  lambda a: npfn(a + nan, axis=np_dims(dim, a.ndim), keepdims=keep))


cases("nansum", Case(lambda M, x: [M.nansum(x), M.nansum(x, 1), M.nanmean(x, 0)], [NANS]), grad_rtol=1e-9)


# ---------------------------------------------------------------- softmax
@entry("softmax", "log_softmax", gradgrad=True)
def _softmax(draw):
    x = arr(draw, draw(SHAPES)) * draw(st.sampled_from([1.0, 5.0]))
    d = one_dim(draw, x.ndim)
    which = draw(st.sampled_from(["softmax", "log_softmax"]))
    ax = d if x.ndim else None
    ref = sp.softmax if which == "softmax" else sp.log_softmax
    return Sample(lambda M, t: getattr(t, which)(d), [x], lambda a: ref(a, axis=ax))


cases("softmax", Case(lambda M, x: M.softmax(x * 1e4, 1), [A], double=True))
cases("log_softmax", Case(lambda M, x: M.log_softmax(x * 1e4, 0), [A], double=True),
      Case(lambda M, x: x.log_softmax(-1), [A]))
errors("softmax", lambda M: M.zeros(2, 3).softmax(-3))


# ---------------------------------------------------------------- fused row ops (C++ kernels)
@entry("layer_norm", gradgrad=True)
def _layer_norm(draw):
    x = arr(draw, draw(NONEMPTY_SHAPES)) * draw(st.sampled_from([1.0, 5.0]))
    nd = draw(st.integers(1, x.ndim))
    ns = x.shape[x.ndim - nd:]
    params = draw(st.sampled_from(["none", "w", "wb"]))
    args = [x] + [arr(draw, ns) for _ in range({"none": 0, "w": 1, "wb": 2}[params])]

    def ref(a, w=None, b=None):
        dims = tuple(range(a.ndim - nd, a.ndim))
        y = (a - a.mean(dims, keepdims=True)) / np.sqrt(a.var(dims, keepdims=True) + 1e-5)
        return y * (1 if w is None else w) + (0 if b is None else b)
    return Sample(lambda M, a, *wb: F(M).layer_norm(a, ns, *wb), args, ref)


NORM_SHAPES = st.sampled_from([(3, 2), (2, 3, 4), (2, 2, 3, 2), (2, 2, 1, 2, 2)])  # (N, C), (N, C, L), ...


def _affine(draw, c):
    """weight and bias of a normalisation: each present or not (None)."""
    which = draw(st.sampled_from(["none", "w", "b", "wb"]))
    return (arr(draw, (c,)) if "w" in which else None), (arr(draw, (c,)) if "b" in which else None)


def _norm_call(fn, w, b):
    """fn(M, x, weight, bias) as a sample's function of the present arrays."""
    def call(M, a, *wb):
        it = iter(wb)
        return fn(M, a, next(it) if w is not None else None, next(it) if b is not None else None)
    return call, [v for v in (w, b) if v is not None]


def _norm_ref(a, axes, w, b, eps=1e-5):
    shape = (1, -1) + (1,) * (a.ndim - 2)
    y = (a - a.mean(axes, keepdims=True)) / np.sqrt(a.var(axes, keepdims=True) + eps)
    return y * (1 if w is None else w.reshape(shape)) + (0 if b is None else b.reshape(shape))


@entry("batch_norm", gradgrad=True)
def _batch_norm(draw):
    x = arr(draw, draw(NORM_SHAPES)) * draw(st.sampled_from([1.0, 5.0]))
    c = x.shape[1]
    w, b = _affine(draw, c)
    training = draw(st.booleans())
    rm, rv = arr(draw, (c,)), arr(draw, (c,), "pos")
    axes = (0,) + tuple(range(2, x.ndim))

    def ref(a, *wb):
        ww, bb = (wb[0] if w is not None else None), (wb[-1] if b is not None else None)
        if training:
            return _norm_ref(a, axes, ww, bb)
        shape = (1, -1) + (1,) * (a.ndim - 2)
        y = (a - rm.reshape(shape)) / np.sqrt(rv.reshape(shape) + 1e-5)
        return y * (1 if ww is None else ww.reshape(shape)) + (0 if bb is None else bb.reshape(shape))
    # the running statistics in the input's dtype (a float64 one beside float32 input is refused)
    fn, params = _norm_call(lambda M, a, ww, bb: F(M).batch_norm(a, M.tensor(rm, dtype=a.dtype), M.tensor(rv, dtype=a.dtype),
                                                                 ww, bb, training), w, b)
    return Sample(fn, [x] + params, lambda a, *wb: ref(a, *wb))


@entry("group_norm", gradgrad=True)
def _group_norm(draw):
    x = arr(draw, draw(NORM_SHAPES)) * draw(st.sampled_from([1.0, 5.0]))
    n, c = x.shape[:2]
    g = draw(st.sampled_from([d for d in (1, 2, 3) if c % d == 0]))
    w, b = _affine(draw, c)
    instance = x.ndim > 2 and draw(st.booleans())  # instance_norm: group_norm with one channel a group

    def ref(a, *wb):
        ww, bb = (wb[0] if w is not None else None), (wb[-1] if b is not None else None)
        if instance:
            return _norm_ref(a, tuple(range(2, a.ndim)), ww, bb)
        shape = (1, -1) + (1,) * (a.ndim - 2)
        xr = a.reshape(n, g, -1)
        y = ((xr - xr.mean(2, keepdims=True)) / np.sqrt(xr.var(2, keepdims=True) + 1e-5)).reshape(a.shape)
        return y * (1 if ww is None else ww.reshape(shape)) + (0 if bb is None else bb.reshape(shape))
    if instance:
        base = lambda M, a, ww, bb: F(M).instance_norm(a, weight=ww, bias=bb)  # noqa: E731
    else:
        base = lambda M, a, ww, bb: F(M).group_norm(a, g, ww, bb)  # noqa: E731
    fn, params = _norm_call(base, w, b)
    torch_fn = None
    if w is None and b is not None:  # PyTorch's backward of a bias without a weight fails ("no device")
        shape = (1, -1) + (1,) * (x.ndim - 2)
        torch_fn = lambda M, a, bb: base(M, a, None, None) + bb.reshape(shape)  # noqa: E731
    return Sample(fn, [x] + params, ref, torch_fn=torch_fn)


_BN = np.random.default_rng(11)
BN_X = _BN.standard_normal((4, 3, 5, 6)) * 3 + 20  # a mean large against the spread
BN_W, BN_B = _BN.standard_normal(3), _BN.standard_normal(3)
BN_RM, BN_RV = _BN.standard_normal(3), _BN.uniform(0.5, 2, 3)


def _bn_with_stats(M, x, w, b, training, momentum=0.1):
    """batch_norm's output and the running statistics it updated."""
    rm, rv = M.tensor(BN_RM, dtype=x.dtype), M.tensor(BN_RV, dtype=x.dtype)
    y = F(M).batch_norm(x, rm, rv, w, b, training, momentum, 1e-3)
    return [y, rm, rv]


def _in_with_stats(M, x, w, b):
    rm, rv = M.tensor(BN_RM, dtype=x.dtype), M.tensor(BN_RV, dtype=x.dtype)
    return [F(M).instance_norm(x, rm, rv, w, b, True, 0.3), rm, rv]


cases("batch_norm",
      Case(lambda M, x, w, b: _bn_with_stats(M, x, w, b, True), [BN_X, BN_W, BN_B], double=True),
      Case(lambda M, x, w, b: _bn_with_stats(M, x, w, b, False), [BN_X, BN_W, BN_B], double=True),
      Case(lambda M, x, w, b: _bn_with_stats(M, x[:, :, 0], w, b, True, 0.5) + _bn_with_stats(M, x[..., 1:4], w, b, True),
           [BN_X, BN_W, BN_B]),  # (N, C, L) and non-contiguous inputs
      Case(lambda M, x, w, b: _bn_with_stats(M, x.permute(0, 3, 1, 2)[:, :, :3].contiguous().permute(0, 2, 3, 1)[:, :3],
                                             w, b, True), [BN_X, BN_W, BN_B]))
cases("batch_norm",  # float32: statistics in double, as accurate as PyTorch's or more
      Case(lambda M, x, w, b: _bn_with_stats(M, x, w, b, True), [BN_X.astype(np.float32), BN_W.astype(np.float32),
                                                                  BN_B.astype(np.float32)]),
      rtol=2e-5, grad_rtol=5e-4, atol=2e-5)
cases("group_norm",
      Case(lambda M, x, w, b: [F(M).group_norm(x, 3, w, b), F(M).group_norm(x[:, :, 1:], 1, w, None)],
           [BN_X, BN_W, BN_B], double=True),
      Case(lambda M, x, w, b: _in_with_stats(M, x, w, b), [BN_X, BN_W, BN_B], double=True))
cases("group_norm", Case(lambda M, x, w, b: [F(M).group_norm(x, 1, w, b), *_in_with_stats(M, x, None, None)],
                         [BN_X.astype(np.float32), BN_W.astype(np.float32), BN_B.astype(np.float32)]),
      rtol=2e-5, grad_rtol=5e-4, atol=2e-5)
errors("batch_norm", lambda M: F(M).batch_norm(M.ones(1, 3), None, None, training=True))
errors("group_norm", lambda M: F(M).group_norm(M.ones(2, 3, 4), 2))


@entry("cross_entropy", gradgrad=True)
def _cross_entropy(draw):
    n, c = draw(st.integers(1, 4)), draw(st.integers(1, 5))
    x = arr(draw, (n, c)) * draw(st.sampled_from([1.0, 5.0]))
    t = np.array([draw(st.integers(0, c - 1)) for _ in range(n)], dtype=np.int64)
    if n > 1 and draw(st.booleans()):
        t[0] = -100  # ignore_index
    weight = arr(draw, (c,), "pos") if draw(st.booleans()) else None
    reduction = draw(st.sampled_from(["mean", "sum", "none"]))

    def ref(a):
        logp = a - np.log(np.exp(a - a.max(1, keepdims=True)).sum(1, keepdims=True)) - a.max(1, keepdims=True)
        keep = t >= 0
        w = (np.ones(c) if weight is None else weight)[np.where(keep, t, 0)] * keep
        losses = -w * logp[np.arange(n), np.where(keep, t, 0)]
        return {"none": losses, "sum": losses.sum(), "mean": losses.sum() / w.sum()}[reduction]

    def fn(M, a):
        w = None if weight is None else M.tensor(weight)
        return F(M).cross_entropy(a, M.tensor(t), w, reduction=reduction)
    return Sample(fn, [x], ref)


@entry("mse_loss", gradgrad=True)
def _mse_loss(draw):
    shape = draw(SHAPES)
    x, y = arr(draw, shape), arr(draw, shape)
    reduction = draw(st.sampled_from(["mean", "sum", "none"]))

    def ref(a, b):
        d = (a - b) ** 2
        return {"none": d, "sum": d.sum(), "mean": d.mean()}[reduction]
    return Sample(lambda M, a, b: F(M).mse_loss(a, b, reduction=reduction), [x, y], ref)


cases("mse_loss", Case(lambda M, x, y: F(M).mse_loss(x, y) + F(M).mse_loss(x, y, reduction="sum")
                       + F(M).mse_loss(x, y, reduction="none").sum(), [A, A2], double=True))


@entry("smooth_l1_loss", gradgrad=True)
def _smooth_l1_loss(draw):
    shape = draw(SHAPES)
    x, y = arr(draw, shape), arr(draw, shape)
    reduction = draw(st.sampled_from(["mean", "sum", "none"]))
    beta = draw(st.sampled_from([0.5, 1.0, 2.0]))

    def ref(a, b):
        d = np.abs(a - b)
        loss = np.where(d < beta, 0.5 * d * d / beta, d - 0.5 * beta)
        return {"none": loss, "sum": loss.sum(), "mean": loss.mean()}[reduction]
    return Sample(lambda M, a, b: F(M).smooth_l1_loss(a, b, reduction=reduction, beta=beta), [x, y], ref)


@entry("huber_loss", gradgrad=True)
def _huber_loss(draw):
    shape = draw(SHAPES)
    x, y = arr(draw, shape), arr(draw, shape)
    reduction = draw(st.sampled_from(["mean", "sum", "none"]))
    delta = draw(st.sampled_from([0.5, 1.0, 2.0]))

    def ref(a, b):
        d = np.abs(a - b)
        loss = np.where(d < delta, 0.5 * d * d, delta * (d - 0.5 * delta))
        return {"none": loss, "sum": loss.sum(), "mean": loss.mean()}[reduction]
    return Sample(lambda M, a, b: F(M).huber_loss(a, b, reduction=reduction, delta=delta), [x, y], ref)


cases("smooth_l1_loss", Case(lambda M, x, y: F(M).smooth_l1_loss(x, y) + F(M).smooth_l1_loss(x, y, reduction="sum", beta=0.5)
                             + F(M).smooth_l1_loss(x, y, reduction="none").sum(), [A, A2], double=True))
cases("huber_loss", Case(lambda M, x, y: F(M).huber_loss(x, y) + F(M).huber_loss(x, y, reduction="sum", delta=0.5)
                         + F(M).huber_loss(x, y, reduction="none").sum(), [A, A2], double=True))


# ---------------------------------------------------------------- fused recurrent layers (C++ kernels)
def _recurrent_ref(mode, sizes, reverse):
    """numpy: the packed recurrence step by step -> (every step's h, the final states)."""
    def ref(gi, h0, *rest):
        sig = sp.expit
        h, c = h0.copy(), (rest[0].copy() if mode == "LSTM" else None)
        w = rest[1] if mode == "LSTM" else rest[0]
        b = rest[1] if mode == "GRU" and len(rest) > 1 else 0
        hs, bounds, out = w.shape[1], np.cumsum([0] + list(sizes)), np.zeros((gi.shape[0], w.shape[1]))
        for t in (range(len(sizes))[::-1] if reverse else range(len(sizes))):
            m, x = sizes[t], gi[bounds[t]:bounds[t + 1]]
            if mode == "LSTM":
                a = x + h[:m] @ w.T
                c[:m] = sig(a[:, hs:2 * hs]) * c[:m] + sig(a[:, :hs]) * np.tanh(a[:, 2 * hs:3 * hs])
                h[:m] = sig(a[:, 3 * hs:]) * np.tanh(c[:m])
            else:
                gh = h[:m] @ w.T + b
                r, z = sig(x[:, :hs] + gh[:, :hs]), sig(x[:, hs:2 * hs] + gh[:, hs:2 * hs])
                n = np.tanh(x[:, 2 * hs:] + r * gh[:, 2 * hs:])
                h[:m] = n + z * (h[:m] - n)
            out[bounds[t]:bounds[t + 1]] = h[:m]
        return (out, h, c) if mode == "LSTM" else (out, h)
    return ref


def _recurrent(mode):
    """One direction of an LSTM / GRU layer over a drawn packed batch (the op behind nn.LSTM/GRU
    and the cells)."""
    def sample(draw):
        sizes = sorted((draw(st.integers(1, 3)) for _ in range(draw(st.integers(1, 3)))), reverse=True)
        h, reverse, g = draw(st.integers(1, 3)), draw(st.booleans()), 4 if mode == "LSTM" else 3
        b = sizes[0]
        args = [arr(draw, (sum(sizes), g * h)), arr(draw, (b, h))] + ([arr(draw, (b, h))] if mode == "LSTM" else [])
        args += [arr(draw, (g * h, h)) * 0.5] + ([arr(draw, (g * h,))] if mode == "GRU" and draw(st.booleans()) else [])

        def fn(M, gi, h0, *rest):
            if mode == "LSTM":
                out, (hn, cn) = recurrent.layer(mode, gi, (h0, rest[0]), rest[1], None, sizes, reverse)
                return out, hn, cn
            out, (hn,) = recurrent.layer(mode, gi, (h0,), rest[0], rest[1] if len(rest) > 1 else None, sizes, reverse)
            return out, hn
        return Sample(fn, args, _recurrent_ref(mode, sizes, reverse), torch_fn=False)
    return sample


entry("lstm", gradgrad=True)(_recurrent("LSTM"))
entry("gru", gradgrad=True)(_recurrent("GRU"))


@entry("sdpa", gradgrad=True)
def _sdpa(draw):
    """F.scaled_dot_product_attention through the blocked kernel: drawn batch dims, lengths and
    head sizes, causal or a bool / float mask, a drawn scale."""
    batch = tuple(draw(st.lists(st.integers(1, 2), max_size=2)))
    L, S, D, Dv = (draw(st.integers(1, 4)) for _ in range(4))
    kind = draw(st.sampled_from(["none", "causal", "bool", "float"]))
    if kind == "causal":
        S = L
    scale = draw(st.sampled_from([None, 0.5]))
    mask = None
    if kind == "bool":
        mask = np.random.default_rng(draw(st.integers(0, 99))).random((L, S)) < 0.6
        mask[:, 0] = True  # every query sees a key (a row that sees none is NaN, as in PyTorch)
    elif kind == "float":
        mask = arr(draw, (L, S))
    args = [arr(draw, batch + (L, D)), arr(draw, batch + (S, D)), arr(draw, batch + (S, Dv))]

    def ref(q, k, v):
        s = q @ np.swapaxes(k, -1, -2) * (1 / np.sqrt(D) if scale is None else scale)
        if kind == "causal":
            s = np.where(np.tri(L, S, dtype=bool), s, -np.inf)
        elif mask is not None:
            s = np.where(mask, s, -np.inf) if mask.dtype == bool else s + mask
        return sp.softmax(s, -1) @ v

    def fn(M, q, k, v):
        m = None if mask is None else M.tensor(mask) if kind == "bool" else M.tensor(mask).to(q.dtype)
        return F(M).scaled_dot_product_attention(q, k, v, attn_mask=m, is_causal=kind == "causal", scale=scale)
    return Sample(fn, args, ref)


# ---------------------------------------------------------------- shape
@entry("reshape", "flatten", "unflatten")
def _reshape(draw):
    x = arr(draw, draw(SHAPES))
    how = draw(st.sampled_from(["reshape", "flatten", "unflatten"]))
    if how == "reshape":
        return Sample(lambda M, t: t.reshape(-1, 1), [x], lambda a: a.reshape(-1, 1))
    if how == "flatten" or x.ndim == 0:
        s = draw(st.integers(0, max(x.ndim - 1, 0)))
        ref = (lambda a: a.reshape(a.shape[:s] + (-1,))) if x.ndim else (lambda a: a.reshape(1))
        return Sample(lambda M, t: t.flatten(s), [x], ref)
    d = draw(st.integers(0, x.ndim - 1))
    return Sample(lambda M, t: t.unflatten(d, (1, -1)), [x], lambda a: a.reshape(a.shape[:d] + (1, -1) + a.shape[d + 1:]))


cases("flatten", Case(lambda M, x: x.reshape(3, 2, 2).flatten(1).unflatten(0, (1, 3)), [A]))
errors("flatten", lambda M: M.zeros(2, 3).flatten(1, 0))


@entry("squeeze", "unsqueeze")
def _squeeze(draw):
    x = arr(draw, draw(SHAPES))
    d = draw(st.integers(-x.ndim - 1, x.ndim))
    if draw(st.booleans()) or x.ndim == 0:
        return Sample(lambda M, t: t.unsqueeze(d), [x], lambda a: np.expand_dims(a, d))
    dims = draw(st.sampled_from([None, 0, (0, -1)] if x.ndim > 1 else [None, 0]))
    ref = (lambda a: np.squeeze(a, tuple(i % a.ndim for i in ((dims,) if isinstance(dims, int) else dims or range(a.ndim))
                                         if a.shape[i] == 1)))
    return Sample(lambda M, t: t.squeeze(dims) if dims is not None else t.squeeze(), [x], ref)


cases("squeeze", Case(lambda M, x: x.unsqueeze(0).unsqueeze(-1).squeeze((0, 2)), [A]))
errors("squeeze", lambda M: M.zeros(2, 3).unsqueeze(4))


@entry("expand")
def _expand(draw):
    small, big = binary_shapes(draw)
    shape = np.broadcast_shapes(small, big)
    return Sample(lambda M, t: t.expand(shape), [arr(draw, small)], lambda a: np.broadcast_to(a, shape))


@entry("permute", "movedim", "swapaxes")
def _permute(draw):
    x = arr(draw, draw(SHAPES))
    perm = draw(st.permutations(range(x.ndim)))
    how = draw(st.sampled_from(["permute", "movedim", "swapaxes"]))
    if how == "permute" or x.ndim < 2:
        return Sample(lambda M, t: t.permute(*perm), [x], lambda a: a.transpose(perm),
                      torch_fn=lambda M, t: t.permute(tuple(perm)))  # PyTorch's 0-d permute needs its ()
    if how == "movedim":
        return Sample(lambda M, t: t.movedim(0, -1), [x], lambda a: np.moveaxis(a, 0, -1))
    return Sample(lambda M, t: t.swapaxes(0, -1), [x], lambda a: np.swapaxes(a, 0, -1))


@entry("to")
def _to(draw):  # float32 round trip: coarser finite differences
    return Sample(lambda M, t: t.float() * 3, [arr(draw, draw(SHAPES))], lambda a: a.astype(np.float32) * 3,
                  tol=dict(eps=1e-2, atol=1e-3, rtol=1e-2))


@entry("clone", "contiguous")
def _clone(draw):
    x = arr(draw, draw(SHAPES))
    return Sample(lambda M, t: t.clone().T.contiguous(), [x], lambda a: a.T.copy())


@entry("cat", "stack")
def _cat(draw):
    base = list(draw(NONEMPTY_SHAPES))
    d = draw(st.integers(0, len(base) - 1))
    n = draw(st.integers(1, 3))
    if draw(st.booleans()):
        xs = [arr(draw, tuple(base)) for _ in range(n)]
        return Sample(lambda M, *ts: M.stack(ts, d - len(base) - 1), xs, lambda *a: np.stack(a, d - len(base) - 1))
    xs = []
    for _ in range(n):
        base[d] = draw(st.integers(1, 3))
        xs.append(arr(draw, tuple(base)))
    return Sample(lambda M, *ts: M.cat(ts, d), xs, lambda *a: np.concatenate(a, d))


cases("cat", Case(lambda M, x, y: M.cat([x, y.reshape(1, 4), x], 0), [A, B]),
      Case(lambda M, x: M.cat([x, M.tensor([[1, 2, 3, 4]])]), [A]))
cases("stack", Case(lambda M, x: M.stack([x, x * 2], 1), [A]))
errors("cat", lambda M: M.cat([M.zeros(2, 3), M.zeros(2, 4)]))
errors("stack", lambda M: M.stack([M.zeros(2), M.zeros(3)]))


@entry("split", "chunk", "narrow", "unbind")
def _split(draw):
    x = arr(draw, draw(NONEMPTY_SHAPES))
    d = draw(st.integers(0, x.ndim - 1))
    n = x.shape[d]
    how = draw(st.sampled_from(["split", "chunk", "narrow", "unbind"]))
    w = np.arange(1.0, x.size + 1).reshape(x.shape)  # weights make every piece's gradient distinct
    if how == "split":
        k = draw(st.integers(1, n))
        return Sample(lambda M, t: M.split(t * M.tensor(w), k, d)[-1], [x], lambda a: np.split(a * w, range(k, n, k), d)[-1])
    if how == "chunk":
        k = draw(st.integers(1, 3))
        return Sample(lambda M, t: tuple(t.chunk(k, d)), [x], lambda a: np.split(a, range(-(-n // k), n, -(-n // k)), d))
    if how == "unbind":
        return Sample(lambda M, t: M.unbind(t, d), [x], lambda a: tuple(np.moveaxis(a, d, 0)))
    s = draw(st.integers(0, n - 1))
    return Sample(lambda M, t: t.narrow(d, s, n - s), [x], lambda a: np.take(a, range(s, n), d))


cases("split", Case(lambda M, x: x.split([1, 3], 1), [A]))
cases("chunk", Case(lambda M, x: M.chunk(x, 3, 1), [A]))
cases("narrow", Case(lambda M, x: M.movedim(x.narrow(1, 1, 2), 0, 1).swapaxes(0, 1), [A]))
errors("split", lambda M: M.zeros(4).split([1, 2]))


@entry("constant_pad", "pad_modes", "pad", "pad_backward")
def _pad(draw):
    """Negative pads crop. PyTorch's circular mode crops first and wraps what is left; reflect and
    replicate pad the whole input and then crop."""
    x = arr(draw, draw(NONEMPTY_SHAPES))
    k = draw(st.integers(1, x.ndim))
    mode = draw(st.sampled_from(["constant", "reflect", "replicate", "circular"]))
    pads = []
    for i in range(k):
        n = x.shape[x.ndim - 1 - i]
        hi = {"constant": 2, "reflect": n - 1, "replicate": 2, "circular": n}[mode]
        lo, hi_ = (draw(st.integers(1 - n if mode == "constant" else -n, hi)) for _ in range(2))
        core = n - max(-lo, 0) - max(-hi_, 0)
        if n + lo + hi_ < 1 or mode == "circular" and max(lo, hi_) > core:
            lo, hi_ = max(lo, 0), max(hi_, 0)  # nothing would be left, or it would wrap twice
        pads += [lo, hi_]
    widths = [(0, 0)] * (x.ndim - k) + [(pads[2 * i], pads[2 * i + 1]) for i in reversed(range(k))]

    def ref(a):
        crop = [slice(max(-lo, 0), a.shape[j] - max(-hi, 0)) for j, (lo, hi) in enumerate(widths)]
        pos = [(max(lo, 0), max(hi, 0)) for lo, hi in widths]
        npmode = {"constant": "constant", "reflect": "reflect", "replicate": "edge", "circular": "wrap"}[mode]
        kw = {"constant_values": 0.5} if mode == "constant" else {}
        if mode in ("constant", "circular"):
            return np.pad(a[tuple(crop)], pos, mode=npmode, **kw)
        padded = np.pad(a, pos, mode=npmode)
        return padded[tuple(slice(max(-lo, 0), n - max(-hi, 0)) for (lo, hi), n in zip(widths, padded.shape))]
    kw = {"value": 0.5} if mode == "constant" else {}
    # PyTorch pads only the last 1-3 dims of a batched input in the non-constant modes: tapegrad any
    portable = mode == "constant" or x.ndim in (k + 1, k + 2)
    return Sample(lambda M, t: F(M).pad(t, tuple(pads), mode=mode, **kw), [x], ref, torch_fn=None if portable else False)


info("constant_pad").op = info("pad_modes").op = info("pad").op = "nn.functional.pad"
info("pad_backward").op = "nn.functional.pad"  # pad's VJP (and pad its VJP): checked by pad's gradient
cases("constant_pad", Case(lambda M, x: F(M).pad(x, (1, -1, 2, 0), value=0.5), [A]))
cases("pad_modes", Case(lambda M, x: F(M).pad(x.reshape(1, 3, 4), (2, 1), mode="reflect"), [A]),
      Case(lambda M, x: F(M).pad(x.reshape(1, 1, 3, 4), (1, 2, 2, 1), mode="replicate"), [A]),
      Case(lambda M, x: F(M).pad(x.reshape(1, 3, 4), (2, 3), mode="circular"), [A]),
      Case(lambda M, x: [F(M).pad(x.reshape(1, 3, 4), p, mode=m) for m in ("circular", "reflect", "replicate")
                         for p in ((-1, 2), (2, -1), (-2, 1), (1, -3), (2, -2))], [A]),
      Case(lambda M, x: [F(M).pad(x.reshape(1, 1, 3, 4), p, mode=m) for m in ("circular", "reflect", "replicate")
                         for p in ((-1, 2, 1, -1), (1, 1, -1, -1), (-2, 1, 0, 2))], [A]))
errors("pad_modes", lambda M: F(M).pad(M.ones(1, 1, 5), (0, -5), mode="reflect"),
       lambda M: F(M).pad(M.ones(1, 1, 5), (-5, 0), mode="replicate"))


@entry("flip")
def _flip(draw):
    x = arr(draw, draw(NONEMPTY_SHAPES))
    dims = tuple(draw(st.lists(st.integers(0, x.ndim - 1), min_size=1, unique=True)))
    return Sample(lambda M, t: t.flip(dims), [x], lambda a: np.flip(a, dims))


cases("flip", Case(lambda M, x: M.flip(x, (0, 1)), [A]))


@entry("repeat", "tile")
def _repeat(draw):
    x = arr(draw, draw(SHAPES))
    reps = tuple(draw(st.lists(st.integers(1, 3), min_size=x.ndim, max_size=x.ndim + 1)))
    if draw(st.booleans()) and reps:
        return Sample(lambda M, t: t.repeat(*reps), [x], lambda a: np.tile(a, reps))
    short = reps[: max(len(reps) - 1, 0)]
    return Sample(lambda M, t: M.tile(t, short), [x], lambda a: np.tile(a, short))


cases("repeat", Case(lambda M, x: x.repeat(2, 1, 3), [A]))
cases("tile", Case(lambda M, x: M.tile(x, (2,)), [A]))


@entry("roll")
def _roll(draw):
    x = arr(draw, draw(NONEMPTY_SHAPES))
    if draw(st.booleans()):
        s = draw(st.integers(-5, 5))
        return Sample(lambda M, t: t.roll(s), [x], lambda a: np.roll(a, s))
    d = draw(st.integers(0, x.ndim - 1))
    s = draw(st.integers(-5, 5))
    return Sample(lambda M, t: M.roll(t, (s,), (d,)), [x], lambda a: np.roll(a, s, d))


cases("roll", Case(lambda M, x: M.roll(x, (1, -2), (0, 1)) + M.roll(x, 5), [A]))


@entry("tril", "triu")
def _tri(draw):
    x = arr(draw, draw(SHAPES).__add__((draw(st.integers(1, 3)), draw(st.integers(1, 3)))))
    k = draw(st.integers(-2, 2))
    which = draw(st.sampled_from(["tril", "triu"]))
    return Sample(lambda M, t: getattr(M, which)(t, k), [x], lambda a: getattr(np, which)(a, k))


cases("tril", Case(lambda M, x: M.tril(x, -1) + M.triu(x, 2) + x.tril(), [A2]), grad_rtol=1e-9)
errors("tril", lambda M: M.tril(M.zeros(3)))


@entry("diagonal", "diag_embed", "diag", "trace")
def _diagonal(draw):
    how = draw(st.sampled_from(["diagonal", "diag_embed", "diag1", "diag2", "trace"]))
    k = draw(st.integers(-2, 2))
    if how == "diagonal":
        x = arr(draw, draw(NONEMPTY_SHAPES).__add__((draw(st.integers(1, 3)),)))
        d1, d2 = draw(st.permutations(range(x.ndim)))[:2]
        return Sample(lambda M, t: t.diagonal(k, d1, d2), [x], lambda a: np.diagonal(a, k, d1, d2))
    if how == "diag_embed":
        x = arr(draw, draw(NONEMPTY_SHAPES))
        return Sample(lambda M, t: M.diag_embed(t, k), [x], lambda a: np.stack(
            [np.diag(r, k) for r in a.reshape(-1, a.shape[-1])]).reshape(a.shape[:-1] + (a.shape[-1] + abs(k),) * 2))
    if how == "diag1":
        return Sample(lambda M, t: M.diag(t, k), [arr(draw, (draw(st.integers(1, 3)),))], lambda a: np.diag(a, k))
    x = arr(draw, (draw(st.integers(1, 3)), draw(st.integers(1, 3))))
    if how == "trace":
        return Sample(call("trace"), [x], np.trace)
    return Sample(lambda M, t: t.diag(k), [x], lambda a: np.diag(a, k))


cases("diagonal", Case(lambda M, x, v: [M.diag(x, 1), M.diag(v, -1), M.diagonal(x, 0, 1, 0), M.trace(x),
                                        M.diag_embed(x, 1)], [A2, B2]), grad_rtol=1e-9)
errors("diagonal", lambda M: M.zeros(2, 3).diagonal(0, 1, 1), lambda M: M.trace(M.zeros(2, 2, 2)))


@entry("hstack", "vstack", "dstack", "meshgrid", "broadcast_tensors", "rot90", "unfold", "repeat_interleave")
def _layout(draw):
    how = draw(st.sampled_from(["hstack", "vstack", "dstack", "meshgrid", "broadcast_tensors", "rot90", "unfold",
                                "repeat_interleave"]))
    x = arr(draw, draw(NONEMPTY_SHAPES))
    if how in ("hstack", "vstack", "dstack"):
        return Sample(lambda M, a, b: getattr(M, how)([a, b]), [x, x * 2 + 0.1], lambda a, b: getattr(np, how)([a, b]))
    if how == "meshgrid":
        ind = draw(st.sampled_from(["ij", "xy"]))
        ys = [arr(draw, (draw(st.integers(1, 3)),)) for _ in range(draw(st.integers(1, 3)))]
        return Sample(lambda M, *ts: M.meshgrid(*ts, indexing=ind), ys, lambda *a: tuple(np.meshgrid(*a, indexing=ind)))
    if how == "broadcast_tensors":
        sa, sb = binary_shapes(draw)
        return Sample(call("broadcast_tensors"), [arr(draw, sa), arr(draw, sb)], np.broadcast_arrays)
    if how == "rot90":
        x = arr(draw, draw(NONEMPTY_SHAPES).__add__((2,)))
        k = draw(st.integers(-1, 4))
        return Sample(lambda M, t: t.rot90(k, (0, -1)), [x], lambda a: np.rot90(a, k, (0, -1)))
    d = draw(st.integers(0, x.ndim - 1))
    if how == "unfold":
        size = draw(st.integers(1, x.shape[d]))
        step = draw(st.integers(1, 2))
        return Sample(lambda M, t: t.unfold(d, size, step), [x], lambda a: np.moveaxis(
            np.lib.stride_tricks.sliding_window_view(a, size, axis=d).take(range(0, a.shape[d] - size + 1, step), d),
            -1, -1))
    reps = np.array(draw(st.lists(st.integers(0, 2), min_size=x.shape[d], max_size=x.shape[d])))
    return Sample(lambda M, t: t.repeat_interleave(M.tensor(reps), d), [x], lambda a: np.repeat(a, reps, d))


cases("hstack", Case(lambda M, x, y: [M.hstack([x, x]), M.vstack([y, y]), M.dstack([x, x]), M.hstack([y, y])],
                     [A2, B2]), grad_rtol=1e-9)
cases("meshgrid", Case(lambda M, x, y: M.meshgrid(x, y, indexing="ij"), [A2[:, 0], B2]),
      Case(lambda M, x, y: M.meshgrid(x, y, indexing="xy"), [A2[:, 0], B2]), grad_rtol=1e-9)
cases("broadcast_tensors", Case(lambda M, x, y: M.broadcast_tensors(x, y[None]), [A2, B2]), grad_rtol=1e-9)
cases("repeat_interleave", Case(lambda M, x: [M.repeat_interleave(x, 2), x.repeat_interleave(M.tensor([1, 0, 2]), dim=0),
                                              M.repeat_interleave(M.tensor([2, 1]))], [A2]), grad_rtol=1e-9)
cases("rot90", Case(lambda M, x: [M.rot90(x), M.rot90(x, 2), M.rot90(x, -1, (1, 0))], [A2]), grad_rtol=1e-9)
cases("unfold", Case(lambda M, x: [x.unfold(1, 2, 1), x.unfold(0, 2, 2), x.unfold(1, 3, 2)], [A2]), grad_rtol=1e-9)
errors("unfold", lambda M: M.zeros(2, 3).unfold(1, 4, 1))
errors("rot90", lambda M: M.rot90(M.zeros(3)))
errors("meshgrid", lambda M: M.meshgrid(M.zeros(2, 2), M.zeros(2), indexing="ij"))
errors("broadcast_tensors", lambda M: M.broadcast_shapes((2,), (3,)))


# ---------------------------------------------------------------- indexing and scatter
@entry("getitem")
def _getitem(draw):
    x = arr(draw, draw(NONEMPTY_SHAPES))
    how = draw(st.sampled_from(["basic", "ints", "mask"]))
    if how == "basic":
        idx = (slice(None, None, -1) if x.shape[0] > 1 else 0, None, Ellipsis)
        # PyTorch takes no negative step: it spells the reversal as a flip
        torch_fn = (lambda M, t: t.flip(0)[:, None, ...]) if x.shape[0] > 1 else None
        return Sample(lambda M, t: t[idx], [x], lambda a: a[idx], torch_fn=torch_fn)
    if how == "ints":
        idx = np.array(draw(st.lists(st.integers(-x.shape[0], x.shape[0] - 1), min_size=1, max_size=5)))
    else:
        idx = arr(draw, x.shape) > 0
    return Sample(lambda M, t: t[M.tensor(idx)], [x], lambda a: a[idx])


@entry("index_put_add")
def _index_put_add(draw):
    n = draw(st.integers(1, 4))
    idx = (np.array(draw(st.lists(st.integers(0, n - 1), min_size=1, max_size=5))),)
    g = arr(draw, (len(idx[0]), 2))

    def ref(a):
        z = np.zeros((n, 2))
        np.add.at(z, idx, a)
        return z
    return Sample(lambda M, t: M.index_put_add(t, (n, 2), idx, False), [g], ref,
                  torch_fn=lambda M, t: M.zeros((n, 2), dtype=t.dtype).index_put((M.tensor(idx[0]),), t, accumulate=True))


@entry("setitem")
def _setitem(draw):
    x = arr(draw, draw(NONEMPTY_SHAPES))
    i = draw(st.integers(0, x.shape[0] - 1))
    v = arr(draw, x.shape[1:])

    def fn(M, t, u):
        y = t * 1.0
        y[i] = u
        return y

    def ref(a, b):
        a = a.copy()
        a[i] = b
        return a
    return Sample(fn, [x, v], ref)


def _index_along(draw, shape, dim, n, unique=False):
    """An int64 index array of ``shape`` with values in [0, n) (unique along ``dim`` if asked)."""
    rng = np.random.default_rng(draw(st.integers(0, 2 ** 32 - 1)))
    if unique:
        perm = np.argsort(rng.random(shape[:dim] + (n,) + shape[dim + 1:]), axis=dim)
        return np.take(perm, range(shape[dim]), axis=dim)
    return rng.integers(0, n, shape)


@entry("gather", "take_along_dim")
def _gather(draw):
    x = arr(draw, draw(NONEMPTY_SHAPES))
    d = draw(st.integers(0, x.ndim - 1))
    shape = tuple(draw(st.integers(1, s)) if k != d else draw(st.integers(1, 4)) for k, s in enumerate(x.shape))
    idx = _index_along(draw, shape, d, x.shape[d])
    ref_idx = tuple(np.indices(shape, sparse=True)[:d]) + (idx,) + tuple(np.indices(shape, sparse=True)[d + 1:])
    if draw(st.booleans()):
        full = tuple(s if k != d else shape[d] for k, s in enumerate(x.shape))
        idx2 = _index_along(draw, full, d, x.shape[d])
        return Sample(lambda M, t: M.take_along_dim(t, M.tensor(idx2), d), [x],
                      lambda a: np.take_along_axis(a, idx2, d))
    return Sample(lambda M, t: t.gather(d, M.tensor(idx)), [x], lambda a: a[ref_idx])


cases("gather", Case(lambda M, x: M.gather(x, 1, M.tensor(IDX)), [A]))
cases("take_along_dim", Case(lambda M, x: M.take_along_dim(x, M.tensor([[0], [3], [1]]), 1), [A]))
errors("gather", lambda M: M.zeros(2, 3).gather(1, M.tensor([[3]])))


@entry("scatter_add", "scatter")
def _scatter(draw):
    x = arr(draw, draw(NONEMPTY_SHAPES))
    d = draw(st.integers(0, x.ndim - 1))
    which = draw(st.sampled_from(["scatter_add", "scatter"]))
    shape = tuple(draw(st.integers(1, s)) for s in x.shape)
    idx = _index_along(draw, shape, d, x.shape[d], unique=which == "scatter")
    src_shape = tuple(s + draw(st.integers(0, 1)) for s in shape)  # src may be larger than index
    src = arr(draw, src_shape)
    full = tuple(np.indices(shape, sparse=True)[:d]) + (idx,) + tuple(np.indices(shape, sparse=True)[d + 1:])
    region = tuple(slice(0, s) for s in shape)

    def ref(a, b):
        a = a.copy()
        if which == "scatter":
            a[full] = b[region]
        else:
            np.add.at(a, full, b[region])
        return a
    # PyTorch's backward of src needs src shaped like index: its call takes the region
    return Sample(lambda M, t, s: getattr(t, which)(d, M.tensor(idx), s), [x, src], ref,
                  torch_fn=lambda M, t, s: getattr(t, which)(d, M.tensor(idx), s[region]))


cases("scatter_add", Case(lambda M, x, s: M.scatter_add(x, 1, M.tensor(IDX), s), [A, P]))
cases("scatter", Case(lambda M, x, s: x.scatter(0, M.tensor([[2, 0, 1, 1]]), s), [A, P[:1]]))


@entry("index_select", "masked_fill")
def _index_select(draw):
    x = arr(draw, draw(NONEMPTY_SHAPES))
    d = draw(st.integers(0, x.ndim - 1))
    if draw(st.booleans()):
        idx = np.array(draw(st.lists(st.integers(0, x.shape[d] - 1), min_size=1, max_size=4)))
        return Sample(lambda M, t: t.index_select(d, M.tensor(idx)), [x], lambda a: np.take(a, idx, d))
    mask = arr(draw, x.shape[d:]) > 0
    return Sample(lambda M, t, v: t.masked_fill(M.tensor(mask), v), [x, arr(draw, ())], lambda a, v: np.where(mask, v, a))


cases("index_select", Case(lambda M, x: M.index_select(x, 1, M.tensor([3, 0, 3])), [A]))
cases("masked_fill", Case(lambda M, x: x.masked_fill(M.tensor([True, False, True, False]), -1.5), [A]),
      Case(lambda M, x: M.masked_fill(x[0], M.tensor([[True], [False]]), -1.5), [A]))
errors("masked_fill", lambda M: M.zeros(3).masked_fill(M.tensor([True] * 2), 1.0))


@entry("masked_select", "take", "index_add", "index_fill")
def _select_more(draw):
    x = arr(draw, draw(NONEMPTY_SHAPES))
    how = draw(st.sampled_from(["masked_select", "take", "index_add", "index_fill"]))
    if how == "masked_select":
        mask = arr(draw, x.shape[1:]) > 0
        return Sample(lambda M, t: t.masked_select(M.tensor(mask)), [x], lambda a: a[np.broadcast_to(mask, a.shape)])
    if how == "take":
        idx = np.array(draw(st.lists(st.integers(-x.size, x.size - 1), min_size=1, max_size=4))).reshape(-1, 1)
        return Sample(lambda M, t: M.take(t, M.tensor(idx)), [x], lambda a: np.take(a, idx))
    d = draw(st.integers(0, x.ndim - 1))
    idx = np.array(draw(st.lists(st.integers(0, x.shape[d] - 1), min_size=1, max_size=4)))
    if how == "index_fill":
        return Sample(lambda M, t: t.index_fill(d, M.tensor(idx), -0.5), [x],
                      lambda a: np.where(np.isin(np.arange(a.shape[d]), idx).reshape((-1,) + (1,) * (a.ndim - d - 1)),
                                         -0.5, a))
    src = arr(draw, x.shape[:d] + (len(idx),) + x.shape[d + 1:])

    def ref(a, s):
        a = a.copy()
        np.add.at(a, (slice(None),) * d + (idx,), 2 * s)
        return a
    return Sample(lambda M, t, s: M.index_add(t, d, M.tensor(idx), s, alpha=2), [x, src], ref)


cases("masked_select", Case(lambda M, x: [M.masked_select(x, x > 0), M.take(x, M.tensor([[0, -1], [5, 2]]))], [A2]),
      grad_rtol=1e-9)
cases("index_add", Case(lambda M, x, s: [x.index_add(1, M.tensor([0, 2, 0]), s, alpha=2),
                                         x.index_fill(0, M.tensor([1]), -1.0)], [A2, A2[:, :3]]), grad_rtol=1e-9)
errors("masked_select", lambda M: M.zeros(3).masked_select(M.tensor([True, False])),
       lambda M: M.take(M.zeros(3), M.tensor([3])))
errors("index_add", lambda M: M.zeros(3).index_fill(0, M.tensor([5]), 1.0),
       lambda M: M.zeros(3).index_add(0, M.tensor([0]), M.zeros(2)))


_SR = np.random.default_rng(0)
SR_X = _SR.standard_normal((4, 3))
SR_SRC = _SR.standard_normal((4, 3))  # PyTorch's backward needs src shaped like index
SR_IDX = np.array([[0, 1, 2], [0, 3, 2], [3, 1, 1], [0, 0, 2]])  # repeats in every column, some rows untouched
SR_ZX = np.where(_SR.random((4, 3)) > 0.7, 0.0, SR_X)            # exact zeros for prod
SR_ZSRC = np.where(_SR.random((4, 3)) > 0.7, 0.0, SR_SRC)
SR_MASK = _SR.random((4, 3)) > 0.5
SR_SRC5 = _SR.standard_normal((5, 3))


@entry("scatter_reduce", "masked_scatter", gradgrad=True)
def _scatter_reduce(draw):
    x = arr(draw, draw(NONEMPTY_SHAPES), "distinct")
    d = draw(st.integers(0, x.ndim - 1))
    how = draw(st.sampled_from(["sum", "prod", "mean", "amax", "amin", "masked_scatter"]))
    if how == "masked_scatter":
        mask = arr(draw, x.shape) > 0
        src = arr(draw, (x.size + 1,))

        def ref(a, s):
            a = a.copy()
            a[mask] = s[:mask.sum()]
            return a
        return Sample(lambda M, t, u: t.masked_scatter(M.tensor(mask), u), [x, src], ref)
    rows = draw(st.integers(1, 3))
    idx = np.random.default_rng(draw(st.integers(0, 99))).integers(0, x.shape[d], x.shape[:d] + (rows,) + x.shape[d + 1:])
    src = arr(draw, idx.shape, "distinct") + 0.05  # off self's grid: no ties for amax/amin
    if how == "prod":
        x, src = arr(draw, x.shape, "nonzero"), arr(draw, idx.shape, "nonzero")
    inc = draw(st.booleans())
    ufunc = {"sum": np.add, "mean": np.add, "prod": np.multiply, "amax": np.maximum, "amin": np.minimum}[how]

    def ref(a, s):
        out = a.copy()
        at = tuple(idx if k == d else np.indices(idx.shape, sparse=True)[k] for k in range(a.ndim))
        if not inc:
            out[at] = {"sum": 0, "mean": 0, "prod": 1, "amax": -np.inf, "amin": np.inf}[how]
        ufunc.at(out, at, s)
        if how == "mean":
            count = np.full(a.shape, int(inc))
            np.add.at(count, at, 1)
            out = out / np.maximum(count, 1)
        return out
    return Sample(lambda M, t, u: t.scatter_reduce(d, M.tensor(idx), u, how, include_self=inc), [x, src], ref)


for _red in ("sum", "prod", "mean", "amax", "amin"):
    for _inc in (True, False):
        cases("scatter_reduce", Case(lambda M, x, s, red=_red, inc=_inc: (
            M.scatter_reduce(x, 0, M.tensor(SR_IDX), s, red, include_self=inc),
            x.T.scatter_reduce(1, M.tensor(SR_IDX.T.copy()), s.T, red, include_self=inc)),
            [SR_ZX, SR_ZSRC] if _red == "prod" else [SR_X, SR_SRC]))
for _red in ("sum", "prod", "mean", "amax"):
    cases("scatter_reduce", Case(lambda M, x, s, red=_red: (x.scatter_reduce(0, M.tensor(SR_IDX), s, red) ** 2).sum(),
                                 [SR_X + 3, SR_SRC + 3], double=True, rtol=1e-8, grad_rtol=1e-8, atol=1e-8))


def _scatter_reduce_inplace_and_ints(M):
    x = M.tensor(SR_X.copy())
    x.scatter_reduce_(0, M.tensor(SR_IDX), M.tensor(SR_SRC), "amin", include_self=False)
    y = M.tensor(SR_X.copy())
    y.masked_scatter_(M.tensor(SR_MASK), M.tensor(SR_SRC))
    z = M.tensor([1, 2, 3, 4]).scatter_reduce(0, M.tensor([0, 0, 1, 1]), M.tensor([5, 6, 7, 9]), "mean")
    w = M.zeros(3).scatter_reduce(0, M.tensor([0, 1]), -M.ones(2), "min")
    return x, y, z, w


cases("scatter_reduce", Case(_scatter_reduce_inplace_and_ints, []))
cases("masked_scatter", Case(lambda M, x, s: (x.masked_scatter(M.tensor(SR_MASK), s),
                                              M.masked_scatter(x, M.tensor(SR_MASK[0]), s),
                                              x.masked_scatter(M.tensor(SR_MASK[:, :1]), s[:3]),
                                              x.masked_scatter(M.tensor(SR_MASK), M.tensor(SR_SRC5) * s[:1])),
                             [SR_X, SR_SRC]))
errors("scatter_reduce", lambda M: M.zeros(3).scatter_reduce(0, M.tensor([0, 5]), M.ones(2), "sum"),
       lambda M: M.zeros(3).scatter_reduce(0, M.tensor([0, 1]), M.ones(2), "foo"))
errors("masked_scatter", lambda M: M.zeros(3).masked_scatter(M.tensor([True, True, False]), M.ones(1)),
       lambda M: M.zeros(3).masked_scatter(M.tensor([1, 1, 0]), M.ones(3)))


@entry("inplace_ext", op="Tensor.exp_")
def _inplace_ext(draw):
    """The in-place variants record their out-of-place op on a non-leaf."""
    how = draw(st.sampled_from(["exp_", "tanh_", "sigmoid_", "pow_", "addcmul_", "lerp_", "unsqueeze_", "t_"]))
    x = arr(draw, (2, 3))

    def fn(M, t, u):
        y = t * 1.0
        if how == "pow_":
            y.pow_(2)
        elif how == "addcmul_":
            y.addcmul_(u, u, value=0.5)
        elif how == "lerp_":
            y.lerp_(u, 0.3)
        elif how in ("unsqueeze_", "t_"):
            y.unsqueeze_(0) if how == "unsqueeze_" else y.t_()
        else:
            getattr(y, how)()
        return y
    refs = {"exp_": lambda a, b: np.exp(a), "tanh_": lambda a, b: np.tanh(a), "sigmoid_": lambda a, b: sp.expit(a),
            "pow_": lambda a, b: a ** 2, "addcmul_": lambda a, b: a + 0.5 * b * b, "lerp_": lambda a, b: a + 0.3 * (b - a),
            "unsqueeze_": lambda a, b: a[None], "t_": lambda a, b: a.T}
    return Sample(fn, [x, arr(draw, (2, 3))], refs[how])


cases("inplace_ext",
      Case(lambda M, x: [(x * 1).exp_(), (x * 1).log_(), (x * 1).sqrt_(), (x - 1).abs_(), (x * 1).neg_(),
                         (x * 1).tanh_(), (x * 1).sigmoid_(), (x - 1).relu_()], [P2]),
      Case(lambda M, x, y: (x * 1).pow_(2).addcmul_(y, y, value=0.5).addcdiv_(x, y).lerp_(y, 0.25), [P2, Q2]),
      Case(lambda M, x, s: (x * 1).masked_fill_(x > 1, 0.0).scatter_(1, M.tensor([[0], [1], [2]]), s[:, :1])
           .scatter_add_(1, M.tensor([[3], [3], [0]]), s[:, :1]).index_add_(0, M.tensor([2]), s[:1])
           .index_fill_(1, M.tensor([1]), 2.0), [P2, Q2]),
      Case(lambda M, x: (x * 1).unsqueeze_(0).squeeze_(0).t_().transpose_(0, 1), [A2]),
      Case(lambda M, c, a, b: (c * 1).addmm_(a, b, beta=2), [A2 @ C2, A2, C2]), grad_rtol=1e-9)
errors("inplace_ext", lambda M: M.ones(3, requires_grad=True).exp_(), lambda M: M.ones(2, requires_grad=True).uniform_())


# ---------------------------------------------------------------- sorting and selection
@entry("sort", "topk", "kthvalue", "median", "argsort", "msort")
def _sort(draw):
    x = arr(draw, draw(NONEMPTY_SHAPES), "distinct")
    d = draw(st.integers(-x.ndim, x.ndim - 1))
    n = x.shape[d]
    how = draw(st.sampled_from(["sort", "sort_desc", "topk", "topk_small", "kthvalue", "median"]))
    if how == "sort":
        return Sample(lambda M, t: t.sort(d).values, [x], lambda a: np.sort(a, d))
    if how == "sort_desc":
        return Sample(lambda M, t: M.sort(t, d, descending=True)[0], [x], lambda a: -np.sort(-a, d))
    k = draw(st.integers(1, n))
    if how == "topk":
        return Sample(lambda M, t: t.topk(k, d).values, [x], lambda a: np.take(-np.sort(-a, d), range(k), d))
    if how == "topk_small":
        return Sample(lambda M, t: M.topk(t, k, d, largest=False)[0], [x], lambda a: np.take(np.sort(a, d), range(k), d))
    if how == "kthvalue":
        return Sample(lambda M, t: t.kthvalue(k, d).values, [x], lambda a: np.take(np.sort(a, d), k - 1, d))
    keep = draw(st.booleans())
    return Sample(lambda M, t: M.median(t, d, keep).values, [x],
                  lambda a: np.take(np.sort(a, d), [(n - 1) // 2], d) if keep else np.take(np.sort(a, d), (n - 1) // 2, d))


cases("sort", Case(lambda M, x: M.sort(x, 1), [A2]),
      Case(lambda M, x: M.sort(x, dim=0, descending=True, stable=True), [T2]),
      Case(lambda M, x: x.sort(dim=1, stable=True), [T2]), grad_rtol=1e-9)
cases("argsort", Case(lambda M, x: M.argsort(x, 1, descending=True), [A2]), grad_rtol=1e-9)
cases("topk", Case(lambda M, x: M.topk(x, 2), [A2]), Case(lambda M, x: x.topk(2, 0, largest=False), [A2]),
      grad_rtol=1e-9)
cases("kthvalue", Case(lambda M, x: M.kthvalue(x, 2, 1, keepdim=True), [A2]), grad_rtol=1e-9)
cases("median", Case(lambda M, x: M.median(x, 1), [A2]), grad_rtol=1e-9)
cases("mode", Case(lambda M, x: M.mode(x, 1), [T2]), grad_rtol=1e-9)
cases("unique", Case(lambda M, x: M.unique(x.detach(), return_inverse=True, return_counts=True), [T2]),
      Case(lambda M, x: M.unique(M.cat([x, x[:1]]).detach(), dim=0), [T2]), grad_rtol=1e-9)
cases("bucketize", Case(lambda M, x: [M.bucketize(x, M.tensor([-1.0, 0.0, 1.0], dtype=M.float64)),
                                      M.bucketize(x, M.tensor([-1.0, 0.0, 1.0], dtype=M.float64), right=True),
                                      M.searchsorted(M.sort(x, 1).values, x[:, :2].detach().contiguous()),
                                      M.searchsorted(M.tensor([0.0, 1.0]), M.tensor([0.5, 1.0]), right=True)], [A2]),
      grad_rtol=1e-9)
errors("topk", lambda M: M.zeros(3).topk(4))
errors("sort", lambda M: M.zeros(3).sort(dim=1))
errors("kthvalue", lambda M: M.zeros(3, 3).kthvalue(4))
errors("bucketize", lambda M: M.bucketize(M.zeros(3), M.zeros(2, 2)))


# ---------------------------------------------------------------- matmul and products
@entry("matmul", gradgrad=True)
def _matmul(draw):
    m, k, n = draw(st.integers(1, 3)), draw(st.integers(1, 3)), draw(st.integers(1, 3))
    form = draw(st.sampled_from(["mm", "mv", "vm", "vv", "batched"]))
    ba, bb = binary_shapes(draw) if form == "batched" else ((), ())
    ba, bb = ba[-2:], bb[-2:]
    shapes = {"mm": ((m, k), (k, n)), "mv": ((m, k), (k,)), "vm": ((k,), (k, n)), "vv": ((k,), (k,)),
              "batched": (tuple(ba) + (m, k), tuple(bb) + (k, n))}[form]
    return Sample(call("matmul"), [arr(draw, s) for s in shapes], np.matmul)


cases("matmul", Case(lambda M, x, y: M.matmul(x, y), [B, B]))


@entry("linear", gradgrad=True)
def _linear(draw):
    """nn.functional.linear's one node: input of 1-3 dims, with and without a bias."""
    k, n = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    lead = draw(st.sampled_from([(), (2,), (2, 3)]))
    args = [arr(draw, lead + (k,)), arr(draw, (n, k))]
    if draw(st.booleans()):
        args.append(arr(draw, (n,)))
    return Sample(lambda M, *ts: M.nn.functional.linear(*ts), args,
                  lambda x, w, b=None: x @ w.T + (0 if b is None else b))


cases("linear", Case(lambda M, x, w, b: M.nn.functional.linear(x, w, b), [P, P, P[:, 0]]),
      Case(lambda M, x, w: M.nn.functional.linear(x, w), [np.stack([P, P]), P]))


@entry("einsum", "dot", "mv", "outer", "addmm", "baddbmm", "cross", gradgrad=True)
def _einsum(draw):
    i, j, k, b = (draw(st.integers(1, 3)) for _ in range(4))
    shapes = {
        "ij,jk->ik": [(i, j), (j, k)], "bij,bjk->bik": [(b, i, j), (b, j, k)], "ii->i": [(i, i)], "ij->": [(i, j)],
        "...ij,...j": [(b, i, j), (j,)], "i,i": [(i,), (i,)], "ij,kj": [(i, j), (k, j)], "bi,bi->b": [(b, i), (b, i)],
        "i,j,ij->": [(i,), (j,), (i, j)], "iij->ji": [(i, i, j)], "ji": [(j, i)],
    }
    how = draw(st.sampled_from(sorted(shapes) + ["dot", "mv", "outer", "addmm", "baddbmm", "cross"]))
    if how in shapes:
        return Sample(lambda M, *ts: M.einsum(how, *ts), [arr(draw, s) for s in shapes[how]],
                      lambda *a: np.einsum(how, *a))
    if how == "dot":
        return Sample(call("dot"), [arr(draw, (i,)), arr(draw, (i,))], np.dot)
    if how == "mv":
        return Sample(call("mv"), [arr(draw, (i, j)), arr(draw, (j,))], np.matmul)
    if how == "outer":
        return Sample(call("outer"), [arr(draw, (i,)), arr(draw, (j,))], np.outer)
    if how == "addmm":
        return Sample(lambda M, c, a, m: M.addmm(c, a, m, beta=0.5, alpha=2), [arr(draw, (k,)), arr(draw, (i, j)),
                      arr(draw, (j, k))], lambda c, a, m: 0.5 * c + 2 * a @ m)
    if how == "baddbmm":
        return Sample(lambda M, c, a, m: M.baddbmm(c, a, m, alpha=-1), [arr(draw, (b, i, k)), arr(draw, (b, i, j)),
                      arr(draw, (b, j, k))], lambda c, a, m: c - a @ m)
    return Sample(lambda M, a, c: M.cross(a, c, dim=-1), [arr(draw, (b, 3)), arr(draw, (b, 3))],
                  lambda a, c: np.cross(a, c))


cases("dot", Case(lambda M, x, y: [M.dot(y, y), M.mv(x, y), M.outer(x[0], y)], [A2, B2]), grad_rtol=1e-9)
cases("addmm", Case(lambda M, c, a, b: M.addmm(c, a, b, beta=0.5, alpha=2), [B2[:1].repeat(5), A2, C2]), grad_rtol=1e-9)
cases("baddbmm", Case(lambda M, c, a: M.baddbmm(c, a, a.transpose(1, 2), alpha=-1), [M3, M3]), grad_rtol=1e-9)
cases("einsum", Case(lambda M, a, b: M.einsum("ij,jk->ik", a, b), [A2, C2]),
      Case(lambda M, a, b: M.einsum("ij,kj", a, b), [A2, A2]),
      Case(lambda M, a, b: M.einsum("...ij,...j->...i", a, b), [M3, V3]),
      Case(lambda M, a: [M.einsum("bii->b", a), M.einsum("bii->bi", a), M.einsum("ij->", a[0])], [M3]),
      Case(lambda M, a, b, c: M.einsum("i,j,ij->", a, b, c), [A2[:, 0], B2, A2]), grad_rtol=1e-9)
cases("cross", Case(lambda M, a, b: M.cross(a, b, dim=1), [V3, V3[::-1].copy()]), grad_rtol=1e-9)
errors("dot", lambda M: M.dot(M.zeros(3), M.zeros(4)), lambda M: M.dot(M.zeros(2, 3), M.zeros(3)),
       lambda M: M.mv(M.zeros(2, 3), M.zeros(4)))
errors("einsum", lambda M: M.einsum("ij,jk", M.zeros(2, 3), M.zeros(4, 5)))
errors("cross", lambda M: M.cross(M.zeros(2, 4), M.zeros(2, 4), dim=1))
errors("addmm", lambda M: M.zeros(2, 3).addmm(M.zeros(2, 4), M.zeros(3, 3)))


# ---------------------------------------------------------------- linear algebra
def _well_conditioned(draw, batch):
    n = draw(st.integers(1, 3))
    return arr(draw, batch + (n, n)) * 0.3 + np.eye(n) * 2


def _distinct_sv(draw, batch, m, n):
    """A (batch, m, n) matrix whose singular values (about 3, 2, 1) stay well apart and away from 0."""
    base = np.zeros((m, n))
    k = min(m, n)
    base[range(k), range(k)] = [3.0, 2.0, 1.0][:k]
    return base + arr(draw, batch + (m, n)) * 0.1


@entry("inverse", "det", gradgrad=True, torch_rtol=1e-7)
def _inverse(draw):
    x = _well_conditioned(draw, draw(st.sampled_from([(), (2,)])))
    if draw(st.booleans()):
        return Sample(call("inverse"), [x], np.linalg.inv)
    return Sample(call("det"), [x], np.linalg.det)


@entry("linalg_solve", "slogdet", "cholesky", "pinv", gradgrad=True, torch_rtol=1e-7)
def _solve(draw):
    batch = draw(st.sampled_from([(), (2,)]))
    x = _well_conditioned(draw, batch)
    n = x.shape[-1]
    how = draw(st.sampled_from(["solve", "solve_vec", "slogdet", "logdet", "cholesky", "cholesky_upper", "pinv",
                                "pinv_herm"]))
    if how == "solve":
        b = arr(draw, batch + (n, draw(st.integers(1, 3))))  # batched: numpy and torch read it alike
        return Sample(lambda M, a, c: M.linalg.solve(a, c), [x, b], np.linalg.solve)
    if how == "solve_vec":
        return Sample(lambda M, a, c: M.linalg.solve(a, c), [x, arr(draw, batch + (n,))],
                      lambda a, b: np.linalg.solve(a, b[..., None])[..., 0])
    if how == "slogdet":
        return Sample(lambda M, a: M.linalg.slogdet(a).logabsdet, [x], lambda a: np.linalg.slogdet(a)[1])
    if how == "logdet":
        return Sample(lambda M, a: M.logdet(a @ a.mT), [x], lambda a: np.linalg.slogdet(a @ np.swapaxes(a, -1, -2))[1])
    if how.startswith("cholesky"):
        up = how == "cholesky_upper"
        ref = (lambda a: np.linalg.cholesky(a @ np.swapaxes(a, -1, -2)))
        return Sample(lambda M, a: M.linalg.cholesky(a @ a.mT, upper=up), [x],
                      (lambda a: np.swapaxes(ref(a), -1, -2)) if up else ref)
    if how == "pinv_herm":  # eigenvalues about 2 +- 0.6: nonzero, and the gradient is symmetric-agnostic
        return Sample(lambda M, a: M.linalg.pinv(a + a.mT, hermitian=True), [x],
                      lambda a: np.linalg.pinv(a + np.swapaxes(a, -1, -2)))
    m, n = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    return Sample(lambda M, a: M.linalg.pinv(a), [_distinct_sv(draw, batch, m, n)], np.linalg.pinv)


@entry("special_i0", "special_i0e", "special_i1", "special_i1e", "special_erfcx", "special_entr", "special_zeta",
       "special_gammainc", "special_gammaincc", gradgrad=True)
def _special_more(draw):
    how = draw(st.sampled_from(["i0", "i0e", "i1", "i1e", "erfcx", "entr", "zeta", "gammainc", "gammaincc"]))
    shape = draw(st.sampled_from([(), (3,), (2, 3)]))
    x = arr(draw, shape)
    refs = {"i0": sp.i0, "i0e": sp.i0e, "i1": sp.i1, "i1e": sp.i1e, "erfcx": sp.erfcx, "entr": sp.entr}
    if how in refs:
        x = np.abs(x) + 0.1 if how == "entr" else x
        return Sample(lambda M, a: getattr(M.special, how)(a), [x], refs[how])
    if how == "zeta":  # differentiable in q only
        return Sample(lambda M, q: M.special.zeta(M.tensor(2.5, dtype=M.float64), q), [np.abs(x) + 0.5],
                      lambda q: sp.zeta(2.5, q))
    ref = sp.gammainc if how == "gammainc" else sp.gammaincc
    return Sample(lambda M, v: getattr(M.special, how)(M.tensor(1.7, dtype=M.float64), v), [np.abs(x) + 0.2],
                  lambda v: ref(1.7, v))


@entry("lu_factor", "matrix_exp", gradgrad=True, torch_rtol=1e-7)
def _lu_expm(draw):
    batch = draw(st.sampled_from([(), (2,)]))
    x = _well_conditioned(draw, batch)
    how = draw(st.sampled_from(["expm", "lu", "lu_rect"]))
    if how == "expm":  # reference: the Taylor series, far from scipy's Pade approximant
        return Sample(lambda M, a: M.linalg.matrix_exp(a), [x * 0.5], _expm_taylor)
    if how == "lu_rect":  # wide and tall A (their gradient was refused)
        m, n = draw(st.sampled_from([(2, 4), (4, 2), (3, 5), (5, 3), (1, 3)]))
        x = arr(draw, batch + (m, n))
    return Sample(lambda M, a: M.linalg.lu_factor(a).LU, [x], _lu_packed_ref)


_LU_R = np.random.default_rng(5)
cases("lu_factor", *(Case(lambda M, a: (M.linalg.lu_factor(a).LU, M.linalg.lu(a).L, M.linalg.lu(a).U),
                          [_LU_R.standard_normal(sh)], double=True) for sh in [(3, 5), (5, 3), (2, 4, 6), (2, 6, 4)]),
      rtol=1e-12, grad_rtol=1e-9)


def _expm_taylor(a, terms=40):
    out = term = np.broadcast_to(np.eye(a.shape[-1]), a.shape).copy()
    for k in range(1, terms):
        term = term @ a / k
        out = out + term
    return out


def _lu_packed_ref(a):
    """Doolittle with partial pivoting written out, the packed LU that LAPACK's getrf returns."""
    def one(m):
        m = m.copy()
        for j in range(min(m.shape)):
            p = j + np.argmax(np.abs(m[j:, j]))
            m[[j, p]] = m[[p, j]]
            m[j + 1:, j] /= m[j, j]
            m[j + 1:, j + 1:] -= np.outer(m[j + 1:, j], m[j, j + 1:])
        return m
    return np.stack([one(m) for m in a.reshape(-1, *a.shape[-2:])]).reshape(a.shape)


@entry("qr", "svd", "eigh", gradgrad=True, torch_rtol=1e-7)
def _decompositions(draw):
    """Outputs whose sign (gauge) convention is LAPACK's in numpy, PyTorch and tapegrad, or squared away."""
    batch = draw(st.sampled_from([(), (2,)]))
    m, n = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    x = _distinct_sv(draw, batch, m, n)
    how = draw(st.sampled_from(["qr", "qr_complete", "svd", "svd_full", "eigh"]))
    if how.startswith("qr"):
        mode = "complete" if how == "qr_complete" and m <= n else "reduced"
        return Sample(lambda M, a: tuple(M.linalg.qr(a, mode)), [x], lambda a: tuple(np.linalg.qr(a, mode)))
    k = min(m, n)
    if how.startswith("svd"):
        full = how == "svd_full"

        def fn(M, a):
            U, S, Vh = M.linalg.svd(a, full_matrices=full)
            return U[..., :k] ** 2, S, Vh[..., :k, :] ** 2
        ref = (lambda a: (lambda U, S, Vh: (U ** 2, S, Vh ** 2))(*np.linalg.svd(a, full_matrices=False)))
        return Sample(fn, [x], ref)
    x = x[..., :k, :k]
    return Sample(lambda M, a: (lambda L, V: (L, V ** 2))(*M.linalg.eigh(a + a.mT)), [x],
                  lambda a: (lambda L, V: (L, V ** 2))(*np.linalg.eigh(a + np.swapaxes(a, -1, -2))))


for _n in ("linalg_solve", "slogdet", "cholesky", "pinv", "qr", "svd", "eigh"):
    info(_n).op = {"linalg_solve": "linalg.solve"}.get(_n, "linalg." + _n)

_r = np.random.default_rng(0)
SQ = _r.standard_normal((2, 4, 4)) + 3 * np.eye(4)   # well-conditioned batch
TALL = _r.standard_normal((2, 5, 3))
WIDE = _r.standard_normal((3, 5))
VEC = _r.standard_normal((2, 4))
SING = np.ones((3, 3))


def spd(M, a):
    return a @ a.mT + M.eye(a.shape[-1], dtype=a.dtype)


def sym(a):
    return a + a.mT


LINALG = dict(grad_rtol=1e-7)
cases("inverse", Case(lambda M, a: (M.linalg.inv(a), M.linalg.det(a), M.det(a[0]), M.inverse(a)), [SQ], **LINALG),
      Case(lambda M, a: M.linalg.inv_ex(a).info != 0, [SING]))
cases("det", Case(lambda M, a: [M.det(a), M.inverse(a)], [M3], double=True, grad_rtol=1e-9))
cases("slogdet", Case(lambda M, a: (M.linalg.slogdet(a).logabsdet, M.linalg.slogdet(a)[0], M.logdet(spd(M, a))), [SQ],
                      **LINALG),
      Case(lambda M, a: M.linalg.slogdet(a).logabsdet.sum(), [SQ], double=True, **LINALG))
cases("linalg_solve", Case(lambda M, a, b: (M.linalg.solve(a, b), M.linalg.solve(a, b[..., None]),
                                            M.linalg.solve(a[0], b[0]), M.linalg.solve(a, a.mT[..., :2, :], left=False)),
                           [SQ, VEC], **LINALG),
      Case(lambda M, a: M.linalg.solve(a, a.sum(-1)).sum(), [SQ], double=True, **LINALG))
cases("cholesky", Case(lambda M, a: (M.linalg.cholesky(spd(M, a)), M.linalg.cholesky(spd(M, a), upper=True)), [SQ],
                       **LINALG),
      Case(lambda M, a: M.linalg.cholesky(spd(M, a)).sum(), [SQ], double=True, **LINALG))
cases("qr", Case(lambda M, a, b, c: (*M.linalg.qr(a), *M.linalg.qr(b), *M.linalg.qr(c),
                                     *M.linalg.qr(b[0, :3], mode="complete")), [SQ, TALL, WIDE], **LINALG),
      Case(lambda M, a: (M.linalg.qr(a).R ** 2).sum(), [SQ], double=True, **LINALG),
      Case(lambda M, a, b: (M.linalg.qr(a, mode="r").R.detach(), M.linalg.qr(b, mode="r").R.detach()), [TALL, WIDE],
           **LINALG))
cases("svd", Case(lambda M, a, b, c: tuple(f(x) for x in (a, b, c) for f in (
    lambda x: M.linalg.svd(x, full_matrices=False).U ** 2, lambda x: M.linalg.svd(x).S,
    lambda x: M.linalg.svd(x, full_matrices=False).Vh ** 2, M.linalg.svdvals,
    lambda x: (lambda u, s, vh: u[..., :, :1] * vh[..., :1, :])(*M.linalg.svd(x)))), [SQ, TALL, WIDE], **LINALG),
      Case(lambda M, a: M.linalg.svdvals(a).pow(3).sum(), [SQ], double=True, **LINALG))
cases("eigh", Case(lambda M, a: (M.linalg.eigh(sym(a)).eigenvalues, M.linalg.eigh(sym(a)).eigenvectors ** 2,
                                 M.linalg.eigvalsh(a, UPLO="U"), M.linalg.eigh(a)[1].abs()), [SQ], **LINALG),
      Case(lambda M, a: (M.linalg.eigh(sym(a)).eigenvectors ** 2 * M.arange(4.0, dtype=a.dtype)).sum(), [SQ],
           double=True, **LINALG))
cases("pinv", Case(lambda M, a, b, c, v: (M.linalg.pinv(a), M.linalg.pinv(b), M.linalg.pinv(c),
                                          M.linalg.pinv(sym(a), hermitian=True), M.linalg.lstsq(b, v[..., :5]).solution,
                                          M.linalg.lstsq(a, v[..., :4]).solution, M.linalg.pinv(b, atol=1.5),
                                          M.linalg.lstsq(b, b[..., :2]).solution),
                   [SQ, TALL, WIDE, _r.standard_normal((2, 5))], **LINALG))
cases("linalg_norm", Case(lambda M, a, v: (M.linalg.norm(a), M.linalg.norm(v, dim=1), M.linalg.norm(a[0], ord=1),
                                           M.linalg.norm(a, ord="nuc", dim=(1, 2)), M.linalg.vector_norm(a, 3, dim=(0, 2)),
                                           M.linalg.vector_norm(v, float("inf"), keepdim=True), M.linalg.vector_norm(v, 0),
                                           *(M.linalg.matrix_norm(a, o) for o in ("fro", "nuc", 1, -1, 2, -2, float("inf"),
                                                                                  -float("inf"))),
                                           M.linalg.matrix_norm(a, 1, dim=(2, 0), keepdim=True),
                                           M.linalg.matrix_norm(a, "nuc", dim=(0, 2), keepdim=True),
                                           M.linalg.norm(a[0], 2)), [SQ, VEC], **LINALG))
cases("matrix_power", Case(lambda M, a, v: (M.linalg.matrix_power(a, 3), M.linalg.matrix_power(a, -2),
                                            M.linalg.matrix_power(a, 0), M.linalg.multi_dot([v[0], a[0], a[1], v[1]]),
                                            M.linalg.vecdot(a, v[:, None]), M.linalg.matmul(a, v[..., None]),
                                            M.linalg.diagonal(a, offset=1)), [SQ, VEC], **LINALG))
cases("matrix_rank", Case(lambda M, a: [M.linalg.matrix_rank(a, **kw) for kw in (
    {}, {"hermitian": True}, {"atol": 2.5}, {"rtol": 0.5})], [np.diag([3.0, 2.0, 1e-20, 0.0])]),
      Case(lambda M, a: (lambda r: (r.rank, tuple(r.residuals.shape), tuple(r.singular_values.shape)))(
          M.linalg.lstsq(a, a[..., :1].detach())), [TALL]))
# each driver's residuals for a tall A ('gels' gave none), and their gradient
cases("matrix_rank", *(Case(lambda M, a, b, d=d: (lambda r: (r.solution, r.residuals, tuple(r.singular_values.shape)))(
    M.linalg.lstsq(a, b, driver=d)), [TALL, TALL[..., :2] + 0.3]) for d in ("gels", "gelsy", "gelsd", "gelss")),
      **LINALG)


@entry("norm0", op="linalg.vector_norm")
def _norm0(draw):
    """ord=0 counts the nonzeros: its gradient is zero (drawn values stay away from 0)."""
    x = arr(draw, draw(SHAPES), "nonzero")
    dim, keep = dims_and_keepdim(draw, x.ndim)
    return Sample(lambda M, t: M.linalg.vector_norm(t, 0, dim, keep), [x],
                  lambda a: np.count_nonzero(a, axis=np_dims(dim, a.ndim), keepdims=keep).astype(a.dtype))


info("linalg_norm").op, info("matrix_power").op, info("matrix_rank").op = "linalg.norm", "linalg.matrix_power", \
    "linalg.matrix_rank"
errors("inverse", lambda M: M.inverse(M.zeros(2, 3)), lambda M: M.linalg.inv(M.tensor(SING)))
errors("linalg_solve", lambda M: M.linalg.solve(M.tensor(SING), M.ones(3, dtype=M.float64)),
       lambda M: M.linalg.solve(M.eye(3), M.ones(4)))
errors("cholesky", lambda M: M.linalg.cholesky(-M.eye(3)))
errors("det", lambda M: M.linalg.det(M.ones(2, 3)))
errors("qr", lambda M: M.linalg.qr(M.ones(3)),
       lambda M: M.linalg.qr(M.tensor(TALL, requires_grad=True), mode="complete").Q.sum().backward())
errors("linalg_norm", lambda M: M.linalg.norm(M.ones(2, 2, 2), ord=2))


# ---------------------------------------------------------------- special functions
@entry("lgamma", "digamma", "polygamma", gradgrad=True, torch_rtol=1e-8)
def _gamma_family(draw):
    x = arr(draw, draw(SHAPES), "pos") + 0.2  # away from the poles at 0, -1, ...
    how = draw(st.sampled_from(["lgamma", "digamma", "polygamma"]))
    if how == "polygamma":
        n = draw(st.integers(0, 3))
        return Sample(lambda M, t: t.polygamma(n), [x], lambda a: sp.polygamma(n, a))
    return Sample(call(how), [x], {"lgamma": sp.gammaln, "digamma": sp.digamma}[how])


_r = np.random.default_rng(0)
POS = _r.uniform(0.2, 4.0, (3, 4))
ANY = _r.uniform(-0.9, 0.9, (3, 4))
NEG = -POS - 0.25  # negative non-integers: lgamma of |Gamma|, digamma's branches
SPECIAL = dict(grad_rtol=1e-8)
cases("lgamma", Case(lambda M, x, n: (M.lgamma(x), M.digamma(x), M.lgamma(n), M.digamma(n), x.lgamma(), x.digamma(),
                                      M.polygamma(0, x)), [POS, NEG], **SPECIAL),
      Case(lambda M: M.lgamma(M.tensor([1, 2, 3])), []),
      Case(lambda M, x: M.lgamma(x).sum(), [POS], double=True, **SPECIAL))
cases("digamma", Case(lambda M, x: M.digamma(x).sum(), [POS], double=True, **SPECIAL))
# PyTorch's polygamma(n >= 1) is good to about 1e-9 relative (scipy's, which tapegrad uses, to the last bits)
cases("polygamma", *(Case(lambda M, x, n=n: x.polygamma(n) if n == 2 else M.polygamma(n, x), [a])
                     for n in range(4) for a in (POS, NEG)), rtol=1e-8, grad_rtol=1e-8)
cases("polygamma", Case(lambda M, x: M.polygamma(1, x).sum(), [POS], double=True, **SPECIAL))
errors("polygamma", lambda M: M.polygamma(-1, M.ones(2)))
# the tapegrad.special namespace, one case through all of it
cases("special_namespace", Case(lambda M, x, p, a: (
    M.special.gammaln(x), M.special.psi(x), M.special.digamma(x), M.special.polygamma(2, x),
    M.special.multigammaln(x + 2, 3), M.special.erf(a), M.special.erfc(a), M.special.erfinv(a), M.special.expit(a),
    M.special.logit(p / 5), M.special.ndtr(a), M.special.ndtri(p / 5), M.special.log_ndtr(a), M.special.xlog1py(a, p),
    M.special.xlogy(p, x), M.special.sinc(a), M.special.exp2(a), M.special.expm1(a), M.special.log1p(p),
    M.special.logsumexp(a, 1), M.special.softmax(a, 0), M.special.log_softmax(a, 1)),
    [POS, _r.uniform(0.2, 4.0, (3, 4)), ANY], **SPECIAL))
info("special_namespace").op = "special.gammaln"
# log_ndtr in its tails: log(ndtr(x)) gave -inf (and a NaN gradient) below about -38, 0 for large x
cases("special_namespace", Case(lambda M, x: M.special.log_ndtr(x) + M.special.ndtr(x),
                                [np.array([-40.0, -10.0, -1.5, -1.0, -0.3, 0.0, 2.0, 9.0, 40.0])], double=True),
      rtol=1e-12, grad_rtol=1e-12)


# ---------------------------------------------------------------- nn functions without an op of their own
cases("one_hot", Case(lambda M, x: F(M).one_hot(M.tensor([0, 3, 1])), [A]))
errors("one_hot", lambda M: F(M).one_hot(M.tensor([3]), 2))
cases("nonzero", Case(lambda M, x: M.nonzero(x > 0.5), [A]))
cases("softsign", Case(lambda M, x, y: [F(M).softsign(x), F(M).normalize(x, dim=0), F(M).cosine_similarity(x, y[None])],
                       [A2, B2]), grad_rtol=1e-9)
cases("conv1d", Case(lambda M, x, w: [F(M).conv1d(x.reshape(1, 3, 4), w.reshape(2, 3, 2), stride=2, padding=1),
                                      F(M).conv1d(x.reshape(1, 3, 4), w.reshape(2, 3, 2), padding="same")],
                     [A2, A2[:, :4].T]), grad_rtol=1e-9)
cases("adaptive_max_pool2d", Case(lambda M, x: F(M).adaptive_max_pool2d(x.reshape(1, 1, 3, 4), (2, 3)), [A2]),
      Case(lambda M, x: F(M).adaptive_max_pool2d(x, (2, 3), return_indices=True),
           [np.random.default_rng(5).standard_normal((1, 2, 5, 7))]), grad_rtol=1e-9)
cases("interpolate", Case(lambda M, x: [F(M).interpolate(x.reshape(1, 1, 3, 4), scale_factor=2),
                                        F(M).interpolate(x.reshape(1, 3, 4), size=7)], [A2]),
      Case(lambda M, x: [F(M).interpolate(x.reshape(1, 1, 3, 4), size=(5, 3), mode="bilinear"),
                         F(M).interpolate(x.reshape(1, 1, 3, 4), scale_factor=1.5, mode="bilinear", align_corners=True)],
           [A2]), grad_rtol=1e-9)
for _n in ("one_hot", "softsign", "conv1d", "adaptive_max_pool2d", "interpolate"):
    info(_n).op = "nn.functional." + _n

_r = np.random.default_rng(0)
EB_W = _r.standard_normal((10, 3))
EB_FLAT = np.array([1, 2, 4, 5, 4, 3, 2, 9, 0, 0])
EB_OFFS = np.array([0, 3, 3, 8])       # bag 1 is empty, the last holds the two padding entries
EB_IDX2 = np.array([[1, 2, 0], [4, 4, 9]])
EB_PSW = _r.standard_normal(10)


def _bags(M, w, psw):
    out = []
    for mode in ("sum", "mean", "max"):
        out += [F(M).embedding_bag(M.tensor(EB_FLAT), w, M.tensor(EB_OFFS), mode=mode),
                F(M).embedding_bag(M.tensor(EB_IDX2), w, mode=mode),
                F(M).embedding_bag(M.tensor(EB_FLAT), w, M.tensor(EB_OFFS), mode=mode, padding_idx=0),
                F(M).embedding_bag(M.tensor(EB_FLAT), w, M.tensor(np.append(EB_OFFS, 10)), mode=mode,
                                   include_last_offset=True)]
    out += [F(M).embedding_bag(M.tensor(EB_FLAT), w, M.tensor(EB_OFFS), mode="sum", per_sample_weights=psw),
            F(M).embedding_bag(M.tensor(EB_IDX2), w, mode="sum", per_sample_weights=psw[:6].reshape(2, 3), padding_idx=4)]
    return tuple(out)


cases("embedding_bag", Case(_bags, [EB_W, EB_PSW]))
info("embedding_bag").op = "nn.functional.embedding_bag"
errors("embedding_bag", lambda M: F(M).embedding_bag(M.tensor(EB_FLAT), M.tensor(EB_W)),
       lambda M: F(M).embedding_bag(M.tensor(EB_IDX2), M.tensor(EB_W), M.tensor([0, 1])),
       lambda M: F(M).embedding_bag(M.tensor(EB_IDX2), M.tensor(EB_W), mode="max",
                                    per_sample_weights=M.ones(2, 3, dtype=M.float64)),
       lambda M: F(M).embedding_bag(M.tensor(EB_IDX2), M.tensor(EB_W), mode="median"))


# ---------------------------------------------------------------- convolution and pooling (tests/ops/test_conv_ops.py
# checks these in depth; here they join the table so that the table-wide properties reach them)
def _conv_ref(x, w, stride, padding):
    xp = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    win = np.lib.stride_tricks.sliding_window_view(xp, w.shape[2:], axis=(2, 3))[:, :, ::stride, ::stride]
    return np.einsum("nchwij,ocij->nohw", win, w)


@entry("conv2d", "conv2d_weight", "conv_transpose2d", gradgrad=True)
def _conv(draw):
    n, c, o = draw(st.integers(1, 2)), draw(st.integers(1, 2)), draw(st.integers(1, 2))
    k, s, p = draw(st.integers(1, 2)), draw(st.integers(1, 2)), draw(st.integers(0, 1))
    h = draw(st.integers(k, 4))
    x, w = arr(draw, (n, c, h, h)), arr(draw, (o, c, k, k))
    if draw(st.booleans()):
        return Sample(lambda M, a, b: F(M).conv2d(a, b, stride=s, padding=p), [x, w], lambda a, b: _conv_ref(a, b, s, p))
    # conv_transpose2d is the adjoint of conv2d in its input: <conv_t(y, w), x> = <y, conv(x, w)>
    y = arr(draw, _conv_ref(x, w, s, 0).shape)
    op = (h - k) % s
    return Sample(lambda M, a, b: (F(M).conv_transpose2d(a, b, stride=s, output_padding=op) * M.tensor(x)).sum(), [y, w],
                  lambda a, b: np.sum(a * _conv_ref(x, b, s, 0)))


info("conv2d_weight").op = "conv2d"


@entry("conv2d_bias_grad", gradgrad=True)  # conv2d's bias VJP, a native sum (its VJP broadcasts back)
def _conv_bias(draw):
    n, c, o, h = draw(st.integers(1, 2)), draw(st.integers(1, 2)), draw(st.integers(1, 3)), draw(st.integers(2, 4))
    x, w, b = arr(draw, (n, c, h, h)), arr(draw, (o, c, 2, 2)), arr(draw, (o,))
    return Sample(lambda M, a, wt, bias: F(M).conv2d(a, wt, bias, padding=1), [x, w, b],
                  lambda a, wt, bias: _conv_ref(a, wt, 1, 1) + bias[:, None, None])


info("conv2d_bias_grad").op = "conv2d"


@entry("max_pool2d", "max_pool2d_backward", "max_pool2d_gather", "avg_pool2d", "avg_pool2d_backward")
def _pool(draw):
    h = draw(st.integers(2, 4))
    x = arr(draw, (1, draw(st.integers(1, 2)), h, h), "distinct")
    k = draw(st.integers(1, 2))
    windows = (lambda a: np.lib.stride_tricks.sliding_window_view(a, (k, k), axis=(2, 3))[:, :, ::k, ::k])
    if draw(st.booleans()):
        return Sample(lambda M, a: F(M).max_pool2d(a, k), [x], lambda a: windows(a).max(axis=(-1, -2)))
    return Sample(lambda M, a: F(M).avg_pool2d(a, k), [x], lambda a: windows(a).mean(axis=(-1, -2)))


def _resample_matrix_ref(n_in, n_out, mode):
    """(n_out, n_in) numpy matrix of one dim's resampling with no scale_factor (PyTorch's formulas)."""
    m = np.zeros((n_out, n_in))
    for i in range(n_out):
        if mode == "adaptive_avg":
            lo, hi = (i * n_in) // n_out, -((-(i + 1) * n_in) // n_out)
            m[i, lo:hi] = 1.0 / (hi - lo)
        elif mode == "nearest":
            m[i, min(int(np.floor(i * np.float32(n_in) / np.float32(n_out))), n_in - 1)] = 1
        elif n_in == n_out:
            m[i, i] = 1
        else:  # bilinear, align_corners=False
            src = max((i + 0.5) * n_in / n_out - 0.5, 0.0)
            lo = min(int(src), n_in - 1)
            m[i, lo] += 1 - (src - lo)
            m[i, min(lo + 1, n_in - 1)] += src - lo
    return m


@entry("resample2d", "resample2d_backward")  # interpolate's bilinear / nearest, adaptive_avg_pool2d
def _resample(draw):
    h, w = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    ho, wo = draw(st.integers(1, 7)), draw(st.integers(1, 7))
    x = arr(draw, (draw(st.integers(1, 2)), draw(st.integers(1, 2)), h, w))
    mode = draw(st.sampled_from(["bilinear", "nearest", "adaptive_avg"]))
    ref = (lambda a: np.einsum("ph,nchw,qw->ncpq", _resample_matrix_ref(h, min(ho, h) if mode == "adaptive_avg" else ho,
                                                                        mode),
                               a, _resample_matrix_ref(w, min(wo, w) if mode == "adaptive_avg" else wo, mode)))
    if mode == "adaptive_avg":
        return Sample(lambda M, a: F(M).adaptive_avg_pool2d(a, (min(ho, h), min(wo, w))), [x], ref)
    return Sample(lambda M, a: F(M).interpolate(a, size=(ho, wo), mode=mode, **({"align_corners": False}
                                                                                 if mode == "bilinear" else {})),
                  [x], ref)


info("resample2d_backward").op = "resample2d"


@entry("adaptive_max_pool2d")
def _adaptive_max(draw):
    h, w = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    ho, wo = draw(st.integers(1, h)), draw(st.integers(1, w))
    x = arr(draw, (1, draw(st.integers(1, 2)), h, w), "distinct")

    def ref(a):
        wins = [[((i * n) // m, -((-(i + 1) * n) // m)) for i in range(m)] for n, m in ((h, ho), (w, wo))]
        return np.array([[[[a[b, c, h0:h1, w0:w1].max() for w0, w1 in wins[1]] for h0, h1 in wins[0]]
                          for c in range(a.shape[1])] for b in range(a.shape[0])])
    return Sample(lambda M, a: F(M).adaptive_max_pool2d(a, (ho, wo)), [x], ref)

for _n in ("max_pool2d_backward", "max_pool2d_gather"):
    info(_n).op = "max_pool2d"
info("avg_pool2d_backward").op = "avg_pool2d"

_r = np.random.default_rng(0)
CONV = dict(double=True)
for _xs, _ws, _kw in [
    ((2, 4, 7, 6), (6, 2, 3, 2), dict(stride=(2, 1), padding=1, dilation=(1, 2), groups=2)),
    ((1, 3, 5, 5), (2, 3, 3, 3), dict(padding="same")),
    ((1, 2, 6, 5), (3, 2, 2, 3), dict(padding="same", dilation=(2, 1))),
    ((2, 2, 5, 6), (2, 2, 1, 1), dict(stride=2)),
    ((3, 5, 4), (2, 3, 2, 2), dict(padding="valid")),  # unbatched
]:
    cases("conv2d", Case(lambda M, x, w, b, kw=_kw: F(M).conv2d(x, w, b, **kw),
                         [_r.standard_normal(_xs), _r.standard_normal(_ws), _r.standard_normal(_ws[0])], **CONV))
for _xs, _ws, _kw in [
    ((2, 4, 3, 4), (4, 3, 3, 2), dict(stride=2, padding=1, output_padding=1, groups=2, dilation=(1, 2))),
    ((1, 2, 3, 3), (2, 2, 2, 2), dict(stride=1, output_padding=1, dilation=2)),  # output_padding >= stride
    ((1, 3, 4, 2), (3, 1, 3, 3), dict(stride=(1, 3), padding=(0, 1), output_padding=(0, 2))),
    ((2, 3, 3), (2, 2, 2, 2), dict(stride=2)),  # unbatched
]:
    cases("conv_transpose2d", Case(lambda M, x, w, b, kw=_kw: F(M).conv_transpose2d(x, w, b, **kw),
                                   [_r.standard_normal(_xs), _r.standard_normal(_ws),
                                    _r.standard_normal(_ws[1] * _kw.get("groups", 1))], **CONV))
POOL_X = np.random.default_rng(3).permutation(2 * 3 * 7 * 6).reshape(2, 3, 7, 6) * 0.1  # distinct: no ties
for _kw in [dict(kernel_size=3, stride=2, padding=1, ceil_mode=True),
            dict(kernel_size=(2, 3), stride=(1, 2), dilation=(2, 1)),
            dict(kernel_size=2, ceil_mode=True),
            dict(kernel_size=3, stride=1, padding=1, dilation=2, ceil_mode=True)]:
    cases("max_pool2d", Case(lambda M, x, kw=_kw: F(M).max_pool2d(x, **kw), [POOL_X], **CONV),
          Case(lambda M, x, kw=_kw: F(M).max_pool2d(x, return_indices=True, **kw)[1], [POOL_X]))
for _kw in [dict(kernel_size=2, ceil_mode=True), dict(kernel_size=(2, 3))]:  # non-overlapping: unique indices
    cases("max_unpool2d", Case(lambda M, x, kw=_kw: F(M).max_unpool2d(
        *F(M).max_pool2d(x, return_indices=True, **kw), kw["kernel_size"], output_size=x.shape[2:]), [POOL_X]))
# overlapping windows: one maximum can win two windows, and its index is given twice (written once)
cases("max_unpool2d", Case(lambda M, x: F(M).max_unpool2d(*F(M).max_pool2d(x, 3, 2, 1, return_indices=True), 3, 2, 1,
                                                           output_size=x.shape[2:]), [POOL_X]),
      Case(lambda M, x: F(M).max_unpool1d(*F(M).max_pool1d(x[0], 3, 2, 1, return_indices=True), 3, 2, 1,
                                          output_size=x.shape[-1:]), [POOL_X]))
info("max_unpool2d").op = "nn.functional.max_unpool2d"
# unpooling knows no dilation: the size is out of range for both
errors("max_unpool2d", lambda M: F(M).max_unpool2d(*F(M).max_pool2d(M.tensor(POOL_X), (2, 3), (1, 2), dilation=(2, 1),
                                                                    return_indices=True), (2, 3), (1, 2),
                                                   output_size=POOL_X.shape[2:]),
       lambda M: F(M).max_unpool2d(*F(M).max_pool2d(M.tensor(POOL_X), 3, 1, 1, dilation=2, ceil_mode=True,
                                                    return_indices=True), 3, 1, 1, output_size=POOL_X.shape[2:]))
for _kw in [dict(kernel_size=3, stride=2, padding=1, ceil_mode=True, count_include_pad=True),
            dict(kernel_size=3, stride=2, padding=1, ceil_mode=True, count_include_pad=False),
            dict(kernel_size=(2, 3), stride=(2, 1), padding=(1, 1), count_include_pad=False),
            dict(kernel_size=2, stride=3, ceil_mode=True),
            dict(kernel_size=3, padding=1, divisor_override=4)]:
    cases("avg_pool2d", Case(lambda M, x, kw=_kw: F(M).avg_pool2d(x, **kw), [_r.standard_normal((2, 3, 7, 6))], **CONV))
for _size in [(3, 2), (2, None), 4, (7, 6), 1, (5, 4)]:
    cases("adaptive_avg_pool2d", Case(lambda M, x, size=_size: F(M).adaptive_avg_pool2d(x, size),
                                      [_r.standard_normal((2, 3, 7, 6))], **CONV))
info("adaptive_avg_pool2d").op = "nn.functional.adaptive_avg_pool2d"
cases("conv2d", Case(lambda M, x, w: F(M).max_pool2d(F(M).conv2d(x, w, padding=1), 2, ceil_mode=True),
                     [_r.standard_normal((2, 3, 9, 8)).astype(np.float32),
                      _r.standard_normal((4, 3, 3, 3)).astype(np.float32)], rtol=1e-4, grad_rtol=1e-4, atol=1e-4))
errors("conv2d", lambda M: F(M).conv2d(M.zeros(1, 3, 6, 6), M.zeros(2, 4, 3, 3)),
       lambda M: F(M).conv2d(M.zeros(1, 4, 2, 2), M.zeros(2, 4, 3, 3)),
       lambda M: F(M).conv2d(M.zeros(1, 4, 6, 6), M.zeros(3, 2, 3, 3), groups=2),
       lambda M: F(M).conv2d(M.zeros(1, 4, 6, 6), M.zeros(2, 4, 3, 3), padding="same", stride=2))
errors("conv_transpose2d", lambda M: F(M).conv_transpose2d(M.zeros(1, 4, 4, 4), M.zeros(4, 2, 3, 3), output_padding=1))
errors("max_pool2d", lambda M: F(M).max_pool2d(M.zeros(1, 1, 5, 5), 3, padding=2),
       lambda M: F(M).max_pool2d(M.zeros(1, 1, 2, 2), 3))



# 3-D convolution and pooling: the 2-D entries' twins (tests/ops/test_conv3d_ops.py checks them in depth)
def _conv3d_ref(x, w, stride, padding):
    xp = np.pad(x, ((0, 0), (0, 0)) + ((padding, padding),) * 3)
    win = np.lib.stride_tricks.sliding_window_view(xp, w.shape[2:], axis=(2, 3, 4))[:, :, ::stride, ::stride, ::stride]
    return np.einsum("ncdhwijk,ocijk->nodhw", win, w)


@entry("conv3d", "conv3d_weight", "conv_transpose3d", gradgrad=True)
def _conv3d(draw):
    n, c, o = draw(st.integers(1, 2)), draw(st.integers(1, 2)), draw(st.integers(1, 2))
    k, s, p = draw(st.integers(1, 2)), draw(st.integers(1, 2)), draw(st.integers(0, 1))
    d, h = draw(st.integers(k, 3)), draw(st.integers(k, 3))
    x, w = arr(draw, (n, c, d, h, h + 1)), arr(draw, (o, c, k, k, k))
    if draw(st.booleans()):
        return Sample(lambda M, a, b: F(M).conv3d(a, b, stride=s, padding=p), [x, w],
                      lambda a, b: _conv3d_ref(a, b, s, p))
    # conv_transpose3d is the adjoint of conv3d in its input: <conv_t(y, w), x> = <y, conv(x, w)>
    y = arr(draw, _conv3d_ref(x, w, s, 0).shape)
    op = tuple((m - k) % s for m in x.shape[2:])
    return Sample(lambda M, a, b: (F(M).conv_transpose3d(a, b, stride=s, output_padding=op) * M.tensor(x)).sum(),
                  [y, w], lambda a, b: np.sum(a * _conv3d_ref(x, b, s, 0)))


info("conv3d_weight").op = "conv3d"


@entry("conv3d_bias_grad", gradgrad=True)  # conv3d's bias VJP, as conv2d_bias_grad
def _conv3d_bias(draw):
    n, c, o, h = draw(st.integers(1, 2)), draw(st.integers(1, 2)), draw(st.integers(1, 3)), draw(st.integers(2, 3))
    x, w, b = arr(draw, (n, c, h, h, h + 1)), arr(draw, (o, c, 2, 2, 2)), arr(draw, (o,))
    return Sample(lambda M, a, wt, bias: F(M).conv3d(a, wt, bias, padding=1), [x, w, b],
                  lambda a, wt, bias: _conv3d_ref(a, wt, 1, 1) + bias[:, None, None, None])


info("conv3d_bias_grad").op = "conv3d"


@entry("max_pool3d", "max_pool3d_backward", "max_pool3d_gather", "avg_pool3d", "avg_pool3d_backward")
def _pool3d(draw):
    h = draw(st.integers(2, 3))
    x = arr(draw, (1, draw(st.integers(1, 2)), h, h + 1, h), "distinct")
    k = draw(st.integers(1, 2))
    windows = (lambda a: np.lib.stride_tricks.sliding_window_view(a, (k, k, k), axis=(2, 3, 4))[:, :, ::k, ::k, ::k])
    if draw(st.booleans()):
        return Sample(lambda M, a: F(M).max_pool3d(a, k), [x], lambda a: windows(a).max(axis=(-1, -2, -3)))
    return Sample(lambda M, a: F(M).avg_pool3d(a, k), [x], lambda a: windows(a).mean(axis=(-1, -2, -3)))


for _n in ("max_pool3d_backward", "max_pool3d_gather"):
    info(_n).op = "max_pool3d"


def _unpool_ref(a, nd):
    """max_unpool(max_pool(a, 2)): each 2x2(x2) block's maximum kept in place, zeros elsewhere."""
    out = np.zeros_like(a)
    for lead in np.ndindex(*a.shape[:2]):
        for corner in np.ndindex(*(s // 2 for s in a.shape[2:])):
            block = a[lead + tuple(slice(2 * c, 2 * c + 2) for c in corner)]
            at = lead + tuple(2 * c + o for c, o in zip(corner, np.unravel_index(block.argmax(), (2,) * nd)))
            out[at] = a[at]
    return out


@entry("max_unpool2d", "max_unpool3d")
def _unpool(draw):
    # non-overlapping windows: unique indices. Where windows overlap, an index given twice is
    # written once but its gradient read twice, PyTorch's pair (the fixed cases compare that).
    nd = draw(st.sampled_from([2, 3]))
    x = arr(draw, (1, draw(st.integers(1, 2))) + tuple(draw(st.sampled_from([2, 4])) for _ in range(nd)), "distinct")
    return Sample(lambda M, a: getattr(F(M), f"max_unpool{nd}d")(*getattr(F(M), f"max_pool{nd}d")(a, 2, return_indices=True),
                                                                 2, output_size=a.shape[2:]), [x], lambda a: _unpool_ref(a, nd))
info("avg_pool3d_backward").op = "avg_pool3d"

for _xs, _ws, _kw in [
    ((2, 4, 5, 4, 6), (6, 2, 3, 2, 2), dict(stride=(2, 1, 2), padding=(1, 0, 1), dilation=(1, 2, 1), groups=2)),
    ((1, 2, 3, 4, 5), (2, 2, 2, 3, 2), dict(padding="same", dilation=(2, 1, 1))),
    ((2, 2, 3, 4, 4), (3, 2, 1, 1, 1), dict(stride=2)),
    ((3, 3, 4, 3), (2, 3, 2, 2, 2), dict(padding="valid")),  # unbatched
]:
    cases("conv3d", Case(lambda M, x, w, b, kw=_kw: F(M).conv3d(x, w, b, **kw),
                         [_r.standard_normal(_xs), _r.standard_normal(_ws), _r.standard_normal(_ws[0])], **CONV))
for _xs, _ws, _kw in [
    ((2, 4, 2, 3, 3), (4, 3, 3, 2, 2), dict(stride=(2, 1, 2), padding=1, output_padding=(1, 0, 1), groups=2,
                                           dilation=(1, 2, 1))),
    ((1, 2, 2, 3, 2), (2, 2, 2, 2, 2), dict(stride=1, output_padding=1, dilation=2)),  # output_padding >= stride
    ((2, 2, 3, 3), (2, 2, 2, 2, 2), dict(stride=2)),  # unbatched
]:
    cases("conv_transpose3d", Case(lambda M, x, w, b, kw=_kw: F(M).conv_transpose3d(x, w, b, **kw),
                                   [_r.standard_normal(_xs), _r.standard_normal(_ws),
                                    _r.standard_normal(_ws[1] * _kw.get("groups", 1))], **CONV))
POOL3_X = np.random.default_rng(4).permutation(2 * 2 * 5 * 6 * 5).reshape(2, 2, 5, 6, 5) * 0.1  # distinct: no ties
for _kw in [dict(kernel_size=3, stride=2, padding=1, ceil_mode=True),
            dict(kernel_size=(2, 3, 2), stride=(1, 2, 2), dilation=(2, 1, 1)),
            dict(kernel_size=2, ceil_mode=True),
            dict(kernel_size=3, stride=1, padding=1, dilation=2, ceil_mode=True)]:
    cases("max_pool3d", Case(lambda M, x, kw=_kw: F(M).max_pool3d(x, **kw), [POOL3_X], **CONV),
          Case(lambda M, x, kw=_kw: F(M).max_pool3d(x, return_indices=True, **kw)[1], [POOL3_X]))
for _kw in [dict(kernel_size=2, ceil_mode=True), dict(kernel_size=(2, 3, 1))]:  # non-overlapping: unique indices
    cases("max_unpool3d", Case(lambda M, x, kw=_kw: F(M).max_unpool3d(
        *F(M).max_pool3d(x, return_indices=True, **kw), kw["kernel_size"], output_size=x.shape[2:]), [POOL3_X]))
cases("max_unpool3d", Case(lambda M, x: F(M).max_unpool3d(*F(M).max_pool3d(x, 3, 2, 1, return_indices=True), 3, 2, 1,
                                                           output_size=x.shape[2:]), [POOL3_X]))
info("max_unpool3d").op = "nn.functional.max_unpool3d"
for _kw in [dict(kernel_size=3, stride=2, padding=1, ceil_mode=True, count_include_pad=True),
            dict(kernel_size=3, stride=2, padding=1, ceil_mode=True, count_include_pad=False),
            dict(kernel_size=(2, 3, 1), stride=(2, 1, 1), padding=(1, 1, 0), count_include_pad=False),
            dict(kernel_size=2, stride=3, ceil_mode=True),
            dict(kernel_size=3, padding=1, divisor_override=5)]:
    cases("avg_pool3d", Case(lambda M, x, kw=_kw: F(M).avg_pool3d(x, **kw), [_r.standard_normal((2, 2, 5, 6, 4))],
                             **CONV))
for _size in [(3, 2, 2), (2, None, 1), 4, (5, 6, 4), 1]:
    cases("adaptive_avg_pool3d", Case(lambda M, x, size=_size: F(M).adaptive_avg_pool3d(x, size),
                                      [_r.standard_normal((2, 2, 5, 6, 4))], **CONV))
info("adaptive_avg_pool3d").op = "nn.functional.adaptive_avg_pool3d"
for _size in [(3, 2, 2), (2, None, 1), 1]:
    cases("adaptive_max_pool3d", Case(lambda M, x, size=_size: F(M).adaptive_max_pool3d(x, size), [POOL3_X], **CONV),
          Case(lambda M, x, size=_size: F(M).adaptive_max_pool3d(x, size, return_indices=True)[1], [POOL3_X]))
info("adaptive_max_pool3d").op = "nn.functional.adaptive_max_pool3d"
cases("conv3d", Case(lambda M, x, w: F(M).max_pool3d(F(M).conv3d(x, w, padding=1), 2, ceil_mode=True),
                     [_r.standard_normal((2, 3, 5, 6, 5)).astype(np.float32),
                      _r.standard_normal((4, 3, 3, 3, 3)).astype(np.float32)], rtol=1e-4, grad_rtol=1e-4, atol=1e-4))
errors("conv3d", lambda M: F(M).conv3d(M.zeros(1, 3, 4, 6, 6), M.zeros(2, 4, 3, 3, 3)),
       lambda M: F(M).conv3d(M.zeros(1, 4, 2, 6, 6), M.zeros(2, 4, 3, 3, 3)),
       lambda M: F(M).conv3d(M.zeros(1, 4, 6, 6, 6), M.zeros(3, 2, 3, 3, 3), groups=2),
       lambda M: F(M).conv3d(M.zeros(1, 4, 6, 6, 6), M.zeros(2, 4, 3, 3, 3), padding="same", stride=2),
       lambda M: F(M).conv3d(M.zeros(1, 4, 6, 6, 6), M.zeros(2, 4, 3, 3)))
errors("conv_transpose3d",
       lambda M: F(M).conv_transpose3d(M.zeros(1, 4, 4, 4, 4), M.zeros(4, 2, 3, 3, 3), output_padding=1))
errors("max_pool3d", lambda M: F(M).max_pool3d(M.zeros(1, 1, 5, 5, 5), 3, padding=2),
       lambda M: F(M).max_pool3d(M.zeros(1, 1, 2, 4, 4), 3))
errors("avg_pool3d", lambda M: F(M).avg_pool3d(M.zeros(1, 1, 4, 4), 3))

# ---------------------------------------------------------------- binary cross entropy (PyTorch's saturation rules)
@entry("binary_cross_entropy", "binary_cross_entropy_backward", gradgrad=True)
def _bce(draw):
    shape = draw(NONEMPTY_SHAPES)
    x = arr(draw, shape, "pos") * 0.4 + 0.02   # inside (0.1, 0.9)
    y = arr(draw, shape, "pos") / 2
    return Sample(lambda M, a, b: F(M).binary_cross_entropy(a, b, reduction="none"), [x, y],
                  lambda a, b: -(b * np.log(a) + (1 - b) * np.log1p(-a)))


info("binary_cross_entropy_backward").op = "binary_cross_entropy"
_SAT_X, _SAT_Y = np.array([0.0, 1.0, 1e-30, 0.5, 1e-7, 1 - 1e-7]), np.array([1.0, 0.0, 1.0, 1.0, 0.0, 1.0])
cases("binary_cross_entropy",
      # saturated probabilities: logs clamped at -100, gradient denominators at 1e-12 (x = 0 gives -1e12, not nan)
      Case(lambda M, x, y: F(M).binary_cross_entropy(x, y.detach(), reduction="none"), [_SAT_X, _SAT_Y], double=True),
      Case(lambda M, x, y, w: F(M).binary_cross_entropy(x, y.detach(), w.detach()), [_SAT_X, _SAT_Y, P2[0, :3].repeat(2)],
           double=True),
      Case(lambda M, x, y: F(M).binary_cross_entropy(M.sigmoid(x), y, reduction="sum"), [A, Q2], double=True))



@entry("binary_cross_entropy_with_logits", gradgrad=True)
def _bce_logits(draw):
    shape = draw(NONEMPTY_SHAPES)
    x = arr(draw, shape, "any") * 3
    y = arr(draw, shape, "pos") / 2
    return Sample(lambda M, a, b: F(M).binary_cross_entropy_with_logits(a, b, reduction="none"), [x, y],
                  lambda a, b: (1 - b) * a + np.logaddexp(0, -a))


cases("binary_cross_entropy_with_logits",
      # logits of 1e4 (stable), a target that requires grad, weight and the reductions
      Case(lambda M, x, y: F(M).binary_cross_entropy_with_logits(x * 1e4, y, reduction="none"), [A, Q2], double=True),
      Case(lambda M, x, y, w: F(M).binary_cross_entropy_with_logits(x, y, w.detach(), reduction="sum"), [A, Q2, P2],
           double=True),
      Case(lambda M, x, y: F(M).binary_cross_entropy_with_logits(x, y.detach(), pos_weight=y[0].detach() + 1), [A, Q2]))

# ---------------------------------------------------------------- complex numbers, FFT, eig
# The table's inputs and outputs are real: a complex input is M.complex(re, im) of two drawn
# arrays and a complex output is read through view_as_real, so gradcheck, the numpy reference and
# PyTorch all see real tensors while every complex VJP in between is exercised (a missing
# conjugation shows up as a wrong gradient for re or im). tests/test_complex.py gradchecks
# complex128 leaves directly.
def _z(M, re, im):
    return M.complex(re, im)


def _zr(M, z):
    return M.view_as_real(z.resolve_conj()) if z.is_complex() else z  # PyTorch's conj is a lazy view


def _npz(re, im):
    return re + 1j * im


def _npzr(z):
    z = np.asarray(z)
    return np.stack([z.real, z.imag], axis=-1) if np.iscomplexobj(z) else z


_COMPLEX_UNARY = {
    "real": (lambda M, z: z.real, np.real),
    "imag": (lambda M, z: z.imag, np.imag),
    "conj": (lambda M, z: z.conj(), np.conj),
    "sgn": (lambda M, z: M.sgn(z), lambda z: z / np.abs(z)),
    "angle": (lambda M, z: M.angle(z), np.angle),
    "abs": (lambda M, z: M.abs(z), np.abs),
    "exp": (lambda M, z: M.exp(z), np.exp),
    "log": (lambda M, z: M.log(z), np.log),
    "sqrt": (lambda M, z: M.sqrt(z), np.sqrt),
    "mul": (lambda M, z: z * z.conj() * (2 - 1j), lambda z: z * np.conj(z) * (2 - 1j)),
    "div": (lambda M, z: (1 + 2j) / z, lambda z: (1 + 2j) / z),
    "pow": (lambda M, z: z ** 2.5, lambda z: z ** 2.5),
    "sin": (lambda M, z: M.sin(z) + M.cos(z), lambda z: np.sin(z) + np.cos(z)),
    "reciprocal": (lambda M, z: M.reciprocal(z), np.reciprocal),
    "mean": (lambda M, z: z.mean(-1) + z.sum(), lambda z: z.mean(-1) + z.sum()),
}


@entry("complex", "view_as_complex", "view_as_real", gradgrad=True)
def _complex_parts(draw):
    """``complex``/``view_as_real``/``view_as_complex`` and a complex function of their result."""
    shape = draw(NONEMPTY_SHAPES)
    name = draw(st.sampled_from(sorted(_COMPLEX_UNARY)))
    fn, ref = _COMPLEX_UNARY[name]
    if draw(st.booleans()):  # through view_as_complex of a (..., 2) real tensor
        return Sample(lambda M, a: _zr(M, fn(M, M.view_as_complex(a))), [arr(draw, shape + (2,), "nonzero")],
                      lambda a: _npzr(ref(a[..., 0] + 1j * a[..., 1])))
    return Sample(lambda M, re, im: _zr(M, fn(M, _z(M, re, im))),
                  [arr(draw, shape, "nonzero"), arr(draw, shape, "nonzero")],
                  lambda re, im: _npzr(ref(_npz(re, im))))


for _n in ("real", "imag", "conj", "sgn", "angle"):
    entry(_n, gradgrad=True)(lambda draw: _complex_parts(draw))
info("angle").family = "unary"
cases("complex", Case(lambda M, re, im: M.view_as_real(M.complex(re, im) @ M.complex(im, re).mH), [A2, B2]),
      Case(lambda M, x: M.view_as_real(M.polar(x.abs(), x)), [A]),
      Case(lambda M, x: M.view_as_real(x * (2 - 3j) + 1j), [A]))
errors("polar", lambda M: M.polar(M.ones(2), M.ones(2, dtype=M.float64)),  # no promotion, as PyTorch
       lambda M: M.polar(M.ones(2, dtype=M.int64), M.ones(2, dtype=M.int64)))
errors("complex", lambda M: M.complex(M.zeros(2), M.zeros(2, dtype=M.float64)),
       lambda M: M.zeros(2, dtype=M.complex64) < 1,
       lambda M: M.zeros(2, dtype=M.complex64).max(),
       lambda M: M.zeros(2, dtype=M.complex64).clamp(0, 1),
       lambda M: M.zeros(2, dtype=M.complex64).sign(),
       lambda M: M.zeros(2, dtype=M.complex64).sum().backward(),
       lambda M: M.zeros(2).imag,
       lambda M: M.view_as_complex(M.zeros(2, 3)),
       lambda M: M.view_as_real(M.zeros(2)))

# the transforms: (name, signal-size keyword, complex input?)
_FFTS = [("fft", "n", True), ("ifft", "n", True), ("fft", "n", False), ("ifft", "n", False), ("rfft", "n", False),
         ("irfft", "n", True), ("hfft", "n", True), ("ihfft", "n", False), ("fft2", "s", True), ("ifft2", "s", False),
         ("fftn", "s", True), ("ifftn", "s", True), ("rfft2", "s", False), ("rfftn", "s", False),
         ("irfft2", "s", True), ("irfftn", "s", True), ("hfftn", "s", True), ("ihfftn", "s", False)]


@entry("fft_c2c", "fft_r2c", "fft_c2r", "fft_resize", gradgrad=False, torch_rtol=1e-8)
def _fft(draw):
    """Every transform, norm mode and signal size (cut, padded, odd, even); linear, so no gradgrad."""
    name, size_kw, complex_in = draw(st.sampled_from(_FFTS))
    nd = draw(st.integers(1, 3)) if size_kw == "s" else draw(st.integers(1, 2))
    shape = tuple(draw(st.integers(1, 4)) for _ in range(nd))
    if size_kw == "s" and nd < 2:
        shape = (2,) + shape
    norm = draw(st.sampled_from([None, "backward", "ortho", "forward"]))
    kw = {"norm": norm}
    if size_kw == "n" and nd == 2 and draw(st.booleans()):
        kw["dim"] = 0
    if draw(st.booleans()):
        sizes = [draw(st.integers(1, 5)) for _ in range(2 if size_kw == "s" else 1)]
        kw[size_kw] = sizes[0] if size_kw == "n" else tuple(sizes)
    elif name.startswith(("irfft", "hfft")) and shape[kw.get("dim", -1)] == 1:
        # the default output length 2 * (m - 1) along the transformed (last, or dim=0) axis would be 0
        kw[size_kw] = 3 if size_kw == "n" else (shape[-2], 3)

    def call(M, *xs):
        x = _z(M, *xs) if complex_in else xs[0]
        return _zr(M, getattr(M.fft, name)(x, **kw))

    def ref(*xs):
        x = _npz(*xs) if complex_in else xs[0]
        k = {{"dim": "axis"}.get(a, a): v for a, v in kw.items()}
        return _npzr(getattr(sfft, name)(x, **dict(k, norm=norm or "backward")))

    args = [arr(draw, shape), arr(draw, shape)] if complex_in else [arr(draw, shape)]
    return Sample(call, args, ref)


for _n in ("fft_c2c", "fft_r2c", "fft_c2r", "fft_resize"):
    info(_n).op = "fft.fft"
cases("fft_c2c", *[Case(lambda M, x, f=f: _zr(M, f(M, x)), [_r.standard_normal((3, 5))], rtol=1e-9, grad_rtol=1e-9)
                   for f in (lambda M, x: M.fft.fft(x * (1 + 1j), n=7, norm="ortho"),
                             lambda M, x: M.fft.ifft2(x.to(M.complex128), s=(2, 8), norm="forward"),
                             lambda M, x: M.fft.rfftn(x, s=(4, 4)),
                             lambda M, x: M.fft.ihfft(x, n=6, dim=0),
                             lambda M, x: M.fft.fftshift(M.fft.fftn(x), dim=(0, 1)),
                             lambda M, x: M.fft.ifftshift(M.fft.fft(x, dim=0)))],
      Case(lambda M, x: M.fft.irfft(M.fft.rfft(x) * (1 - 2j), n=9), [_r.standard_normal((3, 5))], rtol=1e-9),
      Case(lambda M, x: M.fft.hfft(x.to(M.complex128) * 1j, n=8, norm="ortho"), [_r.standard_normal((3, 5))], rtol=1e-9),
      Case(lambda M, x: (M.fft.fft2(x).abs() ** 2).sum() + M.fft.fft(x).real.sum(), [_r.standard_normal((4, 6))],
           rtol=1e-9, grad_rtol=1e-9))
errors("fft_c2c", lambda M: M.fft.rfft(M.zeros(4, dtype=M.complex64)),
       lambda M: M.fft.fft(M.zeros(4), n=0),
       lambda M: M.fft.fft2(M.zeros(4, 4), s=(2,), dim=(0, 1)),
       lambda M: M.fft.fft(M.zeros(4), dim=2))


@entry("linalg_eig", gradgrad=False, torch_rtol=1e-6)
def _eig(draw):
    """Eigenvalues well apart (a similarity transform of 1, 2.5, 4 with a random conditioned basis),
    and eigenvector functions that do not depend on each vector's phase (|V|^2)."""
    batch = draw(st.sampled_from([(), (2,)]))
    n = draw(st.integers(1, 3))
    rng = np.random.default_rng(draw(st.integers(0, 2 ** 32 - 1)))
    P = np.eye(n) + 0.3 * rng.standard_normal(batch + (n, n))
    a = P @ np.diag([1.0, 2.5, 4.0][:n]) @ np.linalg.inv(P)
    if draw(st.booleans()):
        return Sample(lambda M, x: (M.linalg.eigvals(x) ** 2).real, [a], lambda x: (np.linalg.eigvals(x) ** 2).real)
    return Sample(lambda M, x: (lambda L, V: (L.real, V.abs() ** 2))(*M.linalg.eig(x)), [a],
                  lambda x: (lambda L, V: (L.real, np.abs(V) ** 2))(*np.linalg.eig(x)))


info("linalg_eig").op = "linalg.eig"
cases("linalg_eig", Case(lambda M, x: (lambda L, V: M.view_as_real(L))(*M.linalg.eig(x)),
                         [np.array([[0.0, -2.0, 0.3], [1.0, 0.5, 0.0], [0.2, 0.0, 3.0]])], rtol=1e-9, grad_rtol=1e-8),
      Case(lambda M, x: M.linalg.eig(x)[1].abs(), [np.array([[0.0, -2.0, 0.3], [1.0, 0.5, 0.0], [0.2, 0.0, 3.0]])],
           rtol=1e-9, grad_rtol=1e-7))
errors("linalg_eig", lambda M: M.linalg.eig(M.zeros(2, 3)), lambda M: M.linalg.eig(M.zeros(3)))
# ---------------------------------------------------------------- sparse COO (tapegrad/ops/sparse.py)
def _coo_indices(draw, sparse_shape):
    """1 to 6 entries of a sparse tensor of ``sparse_shape``, duplicates allowed (uncoalesced)."""
    rng = np.random.default_rng(draw(st.integers(0, 2 ** 32 - 1)))
    nnz = draw(st.integers(1, 6))
    return np.stack([rng.integers(0, n, nnz) for n in sparse_shape]).reshape(len(sparse_shape), nnz)


def _coo_dense(idx, v, shape):
    out = np.zeros(shape)
    np.add.at(out, tuple(idx), v)
    return out


@entry("sparse_mm", gradgrad=True)
def _sparse_mm(draw):
    m, k, n = draw(st.integers(1, 4)), draw(st.integers(1, 4)), draw(st.integers(1, 3))
    idx = _coo_indices(draw, (m, k))
    return Sample(lambda M, v, x: M.sparse.mm(M.sparse_coo_tensor(M.tensor(idx), v, (m, k)), x),
                  [arr(draw, (idx.shape[1],)), arr(draw, (k, n))], lambda v, x: _coo_dense(idx, v, (m, k)) @ x)


@entry("sampled_mm", gradgrad=True)
def _sampled_mm(draw):
    # reached through sparse_mm's gradient for the values: checked here as a function of its own
    m, k, n = draw(st.integers(1, 4)), draw(st.integers(1, 4)), draw(st.integers(1, 3))
    idx = _coo_indices(draw, (m, n))

    def fn(M, a, b):
        with M.enable_grad():  # the finite differences run under no_grad
            v = M.zeros(idx.shape[1], dtype=a.dtype, requires_grad=True)
            y = M.sparse.mm(M.sparse_coo_tensor(M.tensor(idx), v, (m, n)), b)
            return M.autograd.grad(y, v, a, create_graph=True)[0]
    # PyTorch's gradient of the values does not record (see below): it computes the dense product
    return Sample(fn, [arr(draw, (m, k)), arr(draw, (n, k))], lambda a, b: (a @ b.T)[tuple(idx)],
                  torch_fn=lambda M, a, b: (a @ b.T)[tuple(M.tensor(i) for i in idx)])


@entry("segment_sum")
def _segment_sum(draw):
    shape = draw(st.sampled_from([(4,), (2, 3), (2, 3, 2), (3, 1, 2)]))
    sd = draw(st.integers(1, len(shape)))
    idx = _coo_indices(draw, shape[:sd])
    return Sample(lambda M, v: M.sparse_coo_tensor(M.tensor(idx), v, shape).to_dense(),
                  [arr(draw, (idx.shape[1],) + shape[sd:])], lambda v: _coo_dense(idx, v, shape))


_COO = np.array([[0, 1, 1, 0, 2], [2, 0, 2, 2, 1]])  # (0, 2) twice
_COO_V = np.append(B2, 0.5)
# No second derivatives against PyTorch here: its sparse.mm gradient for the values does not record
# (it comes back with requires_grad=False under create_graph=True, so its second derivatives are 0),
# and sparse softmax has no double backward; tapegrad's are checked against finite differences
# (gradgradcheck of the drawn samples).
cases("sparse_mm", Case(lambda M, v, x: M.sparse.mm(M.sparse_coo_tensor(M.tensor(_COO), v, (3, 3)), x),
                        [_COO_V, C2[:3]]),
      Case(lambda M, v, x: M.sparse.addmm(x, M.sparse_coo_tensor(M.tensor(_COO), v, (3, 3)), x, beta=0.5,
                                          alpha=2.0), [_COO_V, C2[:3]]),
      Case(lambda M, v, x: M.mm(M.sparse_coo_tensor(M.tensor(_COO), v, (3, 3)).t(), x), [_COO_V,
                                                                                         C2[:3]]))
cases("segment_sum", Case(lambda M, v: M.sparse_coo_tensor(M.tensor(_COO), v, (3, 3)).coalesce().values(),
                          [_COO_V]),
      Case(lambda M, v: M.sparse.sum(M.sparse_coo_tensor(M.tensor(_COO), v, (3, 3)), 1).to_dense(),
           [_COO_V]),
      Case(lambda M, v: M.sparse.softmax(M.sparse_coo_tensor(M.tensor(_COO), v, (3, 3)), 1).to_dense(),
           [_COO_V]),
      Case(lambda M, v: M.sparse.log_softmax(M.sparse_coo_tensor(M.tensor(_COO), v, (3, 3)), 0).to_dense(),
           [_COO_V]),
      Case(lambda M, x: (x.to_sparse() * 3.0).to_dense(), [Z2]),
      Case(lambda M, x: x.to_sparse(1).to_dense(), [Z2]))
errors("sparse_mm", lambda M: M.sparse.mm(M.sparse_coo_tensor(M.tensor(_COO), M.ones(5), (3, 3)), M.ones(4, 2)),
       lambda M: M.sparse_coo_tensor(M.tensor([1, 2]), M.ones(2), (3,)),
       lambda M: M.sparse_coo_tensor(M.tensor([[1, 2]]), M.ones(3), (3,)),
       lambda M: M.sparse_coo_tensor(M.tensor([[1, 2]]), M.ones(2), (3, 4)),
       lambda M: M.sparse_coo_tensor(M.tensor(_COO), M.ones(5), (3, 3)).values())
# ---------------------------------------------------------------- composites added for PyTorch API coverage
# non-negative exponents only: PyTorch's gradient is 0 for a negative integer one (its formula
# takes pow(2, other) in integers); tapegrad's is 2 ** other (tests/test_coverage_ops.py)
cases("ldexp", Case(lambda M, x: M.ldexp(x, M.tensor([[1, 2, 0, 3]])), [A2]),
      Case(lambda M, x: M.ldexp(x, M.tensor([[1.0, -2.0, 0.5, 3.0]])), [A2]),
      Case(lambda M, x: M.ldexp(x, M.tensor(2)) * x, [A2], double=True))
cases("rsub", Case(lambda M, x, y: M.rsub(x, y, alpha=3), [A2, B2], double=True),
      Case(lambda M, x: M.rsub(x, 2.5), [A2]))
cases("mvlgamma", Case(lambda M, x: M.mvlgamma(x + 2, 3), [P2], double=True))
cases("mvlgamma", Case(lambda M, x: M.mvlgamma(x * 0.1, 2), [P2]))
errors("mvlgamma", lambda M: M.mvlgamma(M.tensor([3.0]), 0))
cases("select_scatter", Case(lambda M, x, s: M.select_scatter(x * 2, s, 1, -1), [A2, B2[:3]], double=True))
cases("slice_scatter", Case(lambda M, x, s: M.slice_scatter(x, s * s, 1, 1, None, 2), [A2, A2[:, :2]], double=True))
cases("diagonal_scatter", Case(lambda M, x, s: M.diagonal_scatter(x, s, 1), [A2, B2[:3]]),
      Case(lambda M, x, s: M.diagonal_scatter(x, s, -1, 1, 0), [A2, B2[:3]]),
      Case(lambda M, x, s: M.diagonal_scatter(x, s, 0, 0, 2), [M3.reshape(2, 3, 3), V3.T.copy()]))
cases("index_put", Case(lambda M, x, v: M.index_put(x, (M.tensor([0, 2, 0]), M.tensor([1, 1, 1])), v, True),
                        [A2, B2[:3]]),
      Case(lambda M, x, v: M.index_put(x, (M.tensor([2, 0]),), v), [A2, B2]),
      Case(lambda M, x, v: M.index_put(x, (M.tensor(Z2 > 0),), v, True), [A2, B2[:1]]))
errors("index_put", lambda M: M.index_put(M.zeros(2), (M.tensor([0]), M.tensor([0])), M.tensor(1.0)))
cases("put", Case(lambda M, x, s: M.put(x, M.tensor([[0, -1], [5, 0]]), s, True), [A2, A2[:2, :2]]),
      Case(lambda M, x, s: x.put(M.tensor([3, 7]), s), [A2, B2[:2]]))
errors("put", lambda M: M.zeros(3).put(M.tensor([3]), M.tensor([1.0])))
cases("index_reduce", *[Case(lambda M, x, s, r=r: M.index_reduce(x, 0, M.tensor([0, 2, 0, 0]), s, r, include_self=inc),
                             [A2, np.vstack([A2, B2])]) for r in ("prod", "mean", "amax", "amin") for inc in (True, False)])
cases("combinations", Case(lambda M, x: M.combinations(x, 3) ** 2, [B2], double=True),
      Case(lambda M, x: M.combinations(x, with_replacement=True), [B2]))
errors("combinations", lambda M: M.combinations(M.zeros(2, 2)))
cases("cumulative_trapezoid", Case(lambda M, y, x: M.cumulative_trapezoid(y, x), [A2, np.sort(B2)], double=True),
      Case(lambda M, y: M.cumulative_trapezoid(y, dx=0.5, dim=0), [A2]))
cases("gradient", Case(lambda M, y: M.gradient(y, spacing=[0.5, 2.0], edge_order=2), [A2]),
      Case(lambda M, y: M.gradient(y, dim=1), [A2]),
      Case(lambda M, y, x: M.gradient(y, spacing=[x.detach()], dim=1, edge_order=2)[0] * y, [A2, np.sort(B2)],
           double=True))
errors("gradient", lambda M: M.gradient(M.zeros(1, 3), dim=0), lambda M: M.gradient(M.zeros(3), edge_order=3))
cases("nanquantile", Case(lambda M, x: M.nanquantile(x, 0.3, 1), [NANS]),
      Case(lambda M, x: M.nanquantile(x, M.tensor([0.25, 0.5], dtype=x.dtype), 0, True, interpolation="midpoint"),
           [NANS]),
      Case(lambda M, x: M.nanquantile(x, 0.7), [A2]))
_SPD = M3 @ M3.transpose(0, 2, 1)
cases("cholesky", Case(lambda M, a: M.cholesky(a @ a.mT, upper=True), [M3], double=True))
cases("cholesky_solve", Case(lambda M, b, a: M.cholesky_solve(b, M.linalg.cholesky(a @ a.mT)), [V3[..., None], M3]),
      Case(lambda M, b, a: M.cholesky_solve(b, M.linalg.cholesky(a @ a.mT).mT, True), [V3[..., None], M3]))
cases("cholesky_inverse", Case(lambda M, a: M.cholesky_inverse(M.linalg.cholesky(a[0] @ a[0].mT)), [M3]))
cases("qr", Case(lambda M, a: M.qr(a).R.abs(), [M3]), Case(lambda M, a: M.qr(a, False).R.abs(), [A2]))
cases("svd", Case(lambda M, a: M.svd(a).S, [M3]), Case(lambda M, a: (lambda r: r.U @ M.diag_embed(r.S) @ r.V.mT)(M.svd(a)),
                                                      [M3]))
cases("triangular_solve", *[Case(lambda M, b, a, u=u, t=t, n=n: M.triangular_solve(b, a, u, t, n).solution,
                                 [V3[..., None], M3]) for u in (True, False) for t in (True, False) for n in (True, False)])
cases("frobenius_norm", Case(lambda M, a: M.frobenius_norm(a, (1, 2), True), [M3], double=True))
cases("nuclear_norm", Case(lambda M, a: M.nuclear_norm(a), [A2]), Case(lambda M, a: M.nuclear_norm(a, (1, 2)), [M3]))
cases("renorm", Case(lambda M, x: M.renorm(x, 2, 0, 1.0), [A2 * 2], double=True),
      Case(lambda M, x: x.renorm(1, 1, 0.5), [A2]), Case(lambda M, x: M.renorm(x, 3, -1, 0.7), [M3]))
errors("renorm", lambda M: M.renorm(M.ones(2, 2), 0, 0, 1.0), lambda M: M.renorm(M.ones(2, 2), 2, 0, -1.0))


# ---------------------------------------------------------------- embedding and dropout (C++ kernels)
@entry("embedding", "embedding_backward", gradgrad=True)
def _embedding(draw):
    """embedding's VJP is the op embedding_backward (an index-add), whose VJP is embedding again:
    gradgradcheck runs both."""
    n, d = draw(st.integers(1, 4)), draw(st.integers(1, 3))
    idx = draw(hnp.arrays(np.int64, draw(SHAPES), elements=st.integers(0, n - 1)))
    return Sample(lambda M, w: F(M).embedding(M.tensor(idx), w), [arr(draw, (n, d))], lambda w: w[idx])


info("embedding").op = info("embedding_backward").op = "nn.functional.embedding"
EMB_IDX = np.array([[0, 2, 2, 4], [1, 2, 0, 1]])  # repeats, and the padding row 1 twice
cases("embedding",
      Case(lambda M, w: F(M).embedding(M.tensor(EMB_IDX), w, padding_idx=1) * w[EMB_IDX[0]], [EB_W[:5]], double=True),
      # no second derivatives here: PyTorch's embedding double backward drops the 1 / frequency
      # scaling (its comment: "the first backward takes care of it"); tapegrad's is the transpose
      # of the scaled index-add (embedding_backward's VJP), which gradgradcheck confirms
      Case(lambda M, w: F(M).embedding(M.tensor(EMB_IDX), w, scale_grad_by_freq=True) ** 2, [EB_W[:5]]),
      Case(lambda M, w: F(M).embedding(M.tensor(EMB_IDX), w, padding_idx=-4, scale_grad_by_freq=True), [EB_W[:5]]),
      Case(lambda M, w: M.nn.Embedding(5, 3, padding_idx=2, scale_grad_by_freq=True, _weight=w)(M.tensor(EMB_IDX)),
           [EB_W[:5]]))
errors("embedding", lambda M: F(M).embedding(M.tensor([0, 5]), M.zeros(5, 3)))


def _dropout_ref(p):
    """The seed tapegrad's dropout draws after manual_seed(0), and the kernel's mask for it."""
    def ref(a):
        tg.manual_seed(0)
        seed = int(tg.random.rng().integers(0, 2**63))
        keep = tg._C.dropout(np.ascontiguousarray(a), p, seed)[1].reshape(a.shape)
        return np.where(keep == 1, a * (1 / (1 - p)), 0.0)
    return ref


@entry("dropout", gradgrad=True)
def _dropout(draw):
    """The mask is drawn afresh from manual_seed(0) at every call, so finite differences see one mask."""
    p = draw(st.sampled_from([0.2, 0.5, 0.8]))

    def fn(M, a):
        M.manual_seed(0)
        return F(M).dropout(a, p)
    return Sample(fn, [arr(draw, draw(NONEMPTY_SHAPES))], _dropout_ref(p), torch_fn=False)


info("dropout").op = "nn.functional.dropout"


@entry("cosine_similarity", gradgrad=True, op="nn.functional.cosine_similarity")
def _cosine_similarity(draw):
    shape = draw(NONEMPTY_SHAPES)
    dim = draw(st.integers(-len(shape), len(shape) - 1))
    a, b = arr(draw, shape, "grid0"), arr(draw, shape, "grid1")  # other grids: no zero row

    def ref(x, y):
        nx = np.maximum(np.sqrt((x * x).sum(dim, keepdims=True)), 1e-8)
        ny = np.maximum(np.sqrt((y * y).sum(dim, keepdims=True)), 1e-8)
        return ((x / nx) * (y / ny)).sum(dim)
    return Sample(lambda M, x, y: F(M).cosine_similarity(x, y, dim), [a, b], ref)


@entry("vecdot", gradgrad=True, op="linalg.vecdot")  # also einsum's rows' dot products ('bi,bi->b')
def _vecdot(draw):
    shape = draw(NONEMPTY_SHAPES)
    dim = draw(st.integers(-len(shape), len(shape) - 1))
    a, b = arr(draw, shape, "grid0"), arr(draw, shape, "grid1")
    if draw(st.booleans()):
        return Sample(lambda M, x, y: M.linalg.vecdot(x, y, dim=dim), [a, b], lambda x, y: (x * y).sum(dim))
    return Sample(lambda M, x, y: M.einsum("...i,...i->...", x, y), [a, b], lambda x, y: (x * y).sum(-1))


@entry("cdist", gradgrad=True)  # cdist's product route (p = 2); its other routes are composites
def _cdist_mm(draw):
    batch = draw(st.sampled_from([(), (2,)]))
    p, r, m = draw(st.integers(1, 4)), draw(st.integers(1, 4)), draw(st.integers(1, 3))
    a = arr(draw, batch + (p, m), "grid0")
    b = arr(draw, batch + (r, m), "grid1")  # another grid: no pair of rows at distance 0
    return Sample(lambda M, x, y: M.cdist(x, y, compute_mode="use_mm_for_euclid_dist"), [a, b],
                  lambda x, y: np.sqrt(((x[..., :, None, :] - y[..., None, :, :]) ** 2).sum(-1)))
