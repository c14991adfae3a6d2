"""The op table's gradient tests: every differentiable op in ``tapegrad.ops.OPS`` has an entry here.

``OP_INFOS`` maps a name to an ``OpInfo`` whose ``sample(draw)`` builds one call from
hypothesis-drawn inputs: a ``Sample`` holding the tapegrad function, its float64 inputs and a
numpy/scipy reference of the same call. From each entry the tests check the forward against the
reference (one helper for all ops), the gradient against finite differences (``gradcheck``)
and, for ops whose VJP is not linear in the inputs, second derivatives (``gradgradcheck``).
Names in ``OP_INFOS`` that are not in ``OPS`` cover composite functions (std, stack, ...).

A new op fails ``test_every_op_has_an_entry`` until it gets an entry: add one with
``OP_INFOS["name"] = OpInfo(sample)``. Inputs are kept away from non-differentiable points
(kinks, ties, integer boundaries) by the value kinds of ``arr``.
"""
from __future__ import annotations

import dataclasses
from typing import Callable

import numpy as np
import pytest
import scipy.special as sp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import tapegrad as tg
from tapegrad import autograd
from tapegrad.ops import OPS
from tapegrad.testing import gradcheck, gradgradcheck

GRAD = settings(max_examples=6, deadline=None, suppress_health_check=list(HealthCheck))
GRADGRAD = settings(max_examples=3, deadline=None, suppress_health_check=list(HealthCheck))
PROPS = settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))


# ---------------------------------------------------------------- the table
@dataclasses.dataclass
class Sample:
    fn: Callable                # tapegrad tensors -> tensor (or tuple of tensors)
    args: list                  # numpy float64 arrays, the differentiable inputs
    ref: Callable | None        # numpy arrays -> expected forward value(s)
    tol: dict = dataclasses.field(default_factory=dict)  # gradcheck eps/atol/rtol overrides


@dataclasses.dataclass
class OpInfo:
    sample: Callable            # draw -> Sample
    gradgrad: bool = False      # the VJP is non-linear in the inputs: also check second derivatives


OP_INFOS: dict[str, OpInfo] = {}


def entry(*names, gradgrad=False):
    """Register the decorated sample builder under ``names``."""
    def deco(sample):
        for n in names:
            OP_INFOS[n] = OpInfo(sample, gradgrad)
        return sample
    return deco


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


def leaf(a, dtype=np.float64):
    return tg.Tensor._wrap(np.array(a, dtype=dtype, order="C")).requires_grad_()


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


# ---------------------------------------------------------------- elementwise
def _binary(name, fn, ref, ka="any", kb="any", gradgrad=False):
    @entry(name, gradgrad=gradgrad)
    def sample(draw):
        sa, sb = binary_shapes(draw)
        return Sample(fn, [arr(draw, sa, ka), arr(draw, sb, kb)], ref)


_binary("add", lambda a, b: tg.add(a, b, alpha=2), lambda a, b: a + 2 * b)
_binary("sub", lambda a, b: a - b, np.subtract)
_binary("mul", lambda a, b: a * b, np.multiply, gradgrad=True)
_binary("div", lambda a, b: a / b, np.divide, kb="nonzero", gradgrad=True)
_binary("pow", lambda a, b: a ** b, np.power, ka="pos", gradgrad=True)
_binary("maximum", tg.maximum, np.maximum, "grid0", "grid1")
_binary("minimum", tg.minimum, np.minimum, "grid0", "grid1")
_binary("atan2", tg.atan2, np.arctan2, "nonzero", "nonzero", gradgrad=True)


@entry("floor_divide", "trunc_divide")
def _rounding_div(draw):
    shape = draw(SHAPES)
    b = arr(draw, shape, "pos") * np.sign(arr(draw, shape, "nonzero"))
    a = b * arr(draw, shape, "frac")  # the quotient stays away from integers
    mode = draw(st.sampled_from(["floor", "trunc"]))
    ref = (lambda x, y: np.floor(x / y)) if mode == "floor" else (lambda x, y: np.trunc(x / y))
    return Sample(lambda x, y: tg.div(x, y, rounding_mode=mode), [a, b], ref)


@entry("pow_scalar", gradgrad=True)
def _pow_scalar(draw):
    e = draw(st.sampled_from([0, 1, 2, 3, -1, 0.5, -2.5, 3.5]))
    return Sample(lambda x: x ** e, [arr(draw, draw(SHAPES), "pos")], lambda x: x ** e)


UNARY = {  # name: (tapegrad fn, reference, value kind, non-linear VJP)
    "neg": (tg.neg, np.negative, "any", False),
    "exp": (tg.exp, np.exp, "any", True),
    "log": (tg.log, np.log, "pos", True),
    "log1p": (tg.log1p, np.log1p, "pos", True),
    "expm1": (tg.expm1, np.expm1, "any", True),
    "sqrt": (tg.sqrt, np.sqrt, "pos", True),
    "rsqrt": (tg.rsqrt, lambda x: 1 / np.sqrt(x), "pos", True),
    "sin": (tg.sin, np.sin, "any", True),
    "cos": (tg.cos, np.cos, "any", True),
    "tanh": (tg.tanh, np.tanh, "any", True),
    "sigmoid": (tg.sigmoid, sp.expit, "any", True),
    "abs": (tg.abs, np.abs, "nonzero", False),
    "erf": (tg.erf, sp.erf, "any", True),
    "relu": (tg.relu, lambda x: np.maximum(x, 0), "nonzero", True),  # gradgrad: relu_backward's VJP
    "sign": (tg.sign, np.sign, "nonzero", False),
    "square": (tg.square, np.square, "any", True),
    "reciprocal": (tg.reciprocal, np.reciprocal, "nonzero", True),
    "floor": (tg.floor, np.floor, "frac", False),
    "ceil": (tg.ceil, np.ceil, "frac", False),
    "trunc": (tg.trunc, np.trunc, "frac", False),
    "round": (tg.round, np.round, "frac", False),
    "silu": (tg.silu, lambda x: x * sp.expit(x), "any", True),
    "logsigmoid": (tg.logsigmoid, lambda x: -np.logaddexp(0, -x), "any", True),
    "leaky_relu": (lambda x: tg.leaky_relu(x, 0.2), lambda x: np.where(x > 0, x, 0.2 * x), "nonzero", False),
    "elu": (lambda x: tg.elu(x, 1.5), lambda x: np.where(x > 0, x, 1.5 * np.expm1(x)), "nonzero", True),
    "hardtanh": (lambda x: tg.hardtanh(x, -0.82, 0.93), lambda x: np.clip(x, -0.82, 0.93), "grid0", False),
    "relu6": (tg.relu6, lambda x: np.clip(x, 0, 6), "nonzero", False),
}
for _name, (_fn, _ref, _kind, _gg) in UNARY.items():
    def _make(fn=_fn, ref=_ref, kind=_kind):
        return lambda draw: Sample(fn, [arr(draw, draw(SHAPES), kind)], ref)
    OP_INFOS[_name] = OpInfo(_make(), _gg)
OP_INFOS["relu_backward"] = OP_INFOS["relu"]  # relu's VJP: checked by relu's gradgradcheck


@entry("gelu", gradgrad=True)
def _gelu(draw):
    approx = draw(st.sampled_from(["none", "tanh"]))
    k = np.sqrt(2 / np.pi)
    ref = ((lambda x: 0.5 * x * (1 + np.tanh(k * (x + 0.044715 * x ** 3)))) if approx == "tanh"
           else (lambda x: x * sp.ndtr(x)))
    return Sample(lambda x: tg.gelu(x, approximate=approx), [arr(draw, draw(SHAPES))], ref)


@entry("softplus", gradgrad=True)
def _softplus(draw):
    beta, threshold = draw(st.sampled_from([(1.0, 20.0), (2.0, 1.0), (0.5, 0.4)]))
    x = arr(draw, draw(SHAPES), "grid0")  # beta * x stays off the threshold
    ref = lambda a: np.where(beta * a > threshold, a, np.log1p(np.exp(beta * a)) / beta)  # noqa: E731
    return Sample(lambda a: tg.softplus(a, beta, threshold), [x], ref)


@entry("where")
def _where(draw):
    sa, sb = binary_shapes(draw)
    shape = np.broadcast_shapes(sa, sb)
    cond = arr(draw, shape) > 0
    c = tg.tensor(cond)
    return Sample(lambda a, b: tg.where(c, a, b), [arr(draw, sa), arr(draw, sb)], lambda a, b: np.where(cond, a, b))


@entry("clamp")
def _clamp(draw):
    variant = draw(st.sampled_from(["scalars", "min_only", "max_only", "tensors"]))
    x = arr(draw, draw(SHAPES), "grid0")
    if variant == "tensors":  # bounds are differentiable too; lo > hi happens and gives hi
        sx, sl, sh = draw(hnp.mutually_broadcastable_shapes(num_shapes=3, min_dims=0, max_dims=3, max_side=3)).input_shapes
        x = arr(draw, sx, "grid0")
        return Sample(lambda a, lo, hi: tg.clamp(a, lo, hi), [x, arr(draw, sl, "grid1"), arr(draw, sh, "grid2")],
                      lambda a, lo, hi: np.minimum(np.maximum(a, lo), hi))
    lo = None if variant == "max_only" else -0.55 + 0.18
    hi = None if variant == "min_only" else 0.74 + 0.18
    return Sample(lambda a: tg.clamp(a, min=lo, max=hi), [x], lambda a: np.clip(a, lo, hi))


@entry("clamp_")
def _clamp_inplace(draw):
    x = arr(draw, draw(SHAPES), "grid0")

    def fn(a):
        y = a * 1.0
        y.clamp_(-0.37, 0.55)
        return y
    return Sample(fn, [x], lambda a: np.clip(a, -0.37, 0.55))


# ---------------------------------------------------------------- reductions
def _reduction(name, fn, ref, kind="any", gradgrad=False):
    @entry(name, gradgrad=gradgrad)
    def sample(draw):
        x = arr(draw, draw(SHAPES), kind)
        dim, keep = dims_and_keepdim(draw, x.ndim)
        return Sample(lambda t: fn(t, dim, keep), [x],
                      lambda a: ref(a, axis=np_dims(dim, a.ndim), keepdims=keep))


_reduction("sum", lambda t, d, k: t.sum(d, k), np.sum)
_reduction("mean", lambda t, d, k: t.mean(d, k), np.mean)
_reduction("amax", lambda t, d, k: tg.amax(t, () if d is None else d, k), np.amax, "distinct")
_reduction("amin", lambda t, d, k: t.amin(() if d is None else d, k), np.amin, "distinct")
_reduction("logsumexp", lambda t, d, k: t.logsumexp(d, k),
           lambda a, axis, keepdims: sp.logsumexp(a, axis=axis, keepdims=keepdims) if a.ndim else a, gradgrad=True)
_reduction("norm2", lambda t, d, k: t.norm(dim=d, keepdim=k), lambda a, axis, keepdims: np.sqrt(
    np.sum(a * a, axis=axis, keepdims=keepdims)), "nonzero", gradgrad=True)
_reduction("norm_p1", lambda t, d, k: t.norm(1, d, k), lambda a, axis, keepdims: np.sum(
    np.abs(a), axis=axis, keepdims=keepdims), "nonzero")
_reduction("norm_p3", lambda t, d, k: t.norm(3, d, k), lambda a, axis, keepdims: np.sum(
    np.abs(a) ** 3, axis=axis, keepdims=keepdims) ** (1 / 3), "nonzero", gradgrad=True)
_reduction("norm_inf", lambda t, d, k: tg.norm(t.abs() + 0.1, float("inf"), d, k), lambda a, axis, keepdims: np.amax(
    np.abs(a) + 0.1, axis=axis, keepdims=keepdims), "distinct")


@entry("prod")
def _prod(draw):
    """Exact zeros included: the gradient is the product of the others (a polynomial, so exact)."""
    x = arr(draw, draw(SHAPES))
    if draw(st.booleans()):
        x = np.where(arr(draw, x.shape) > 0.5, 0.0, x)
    dim, keep = dims_and_keepdim(draw, x.ndim)
    return Sample(lambda t: t.prod(dim, keep), [x], lambda a: np.prod(a, axis=np_dims(dim, a.ndim), keepdims=keep))


@entry("prod_nonzero", gradgrad=True)
def _prod_nonzero(draw):
    x = arr(draw, draw(SHAPES), "nonzero")
    dim, keep = dims_and_keepdim(draw, x.ndim)
    return Sample(lambda t: tg.prod(t, dim, keep), [x], lambda a: np.prod(a, axis=np_dims(dim, a.ndim), keepdims=keep))


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
    return Sample(lambda t: getattr(t, which)(dim, keepdim=keep, **kw), [x],
                  lambda a: npfn(a, axis=np_dims(dim, a.ndim), keepdims=keep, ddof=ddof))


@entry("max_dim", "min_dim", "max_full")
def _max_dim(draw):
    x = arr(draw, draw(SHAPES), "distinct")
    which = draw(st.sampled_from(["max", "min"]))
    npfn = np.max if which == "max" else np.min
    if draw(st.booleans()):
        return Sample(lambda t: getattr(tg, which)(t), [x], lambda a: npfn(a))
    d, keep = one_dim(draw, x.ndim), draw(st.booleans())
    ref = (lambda a: npfn(a, axis=d, keepdims=keep)) if x.ndim else (lambda a: a)
    return Sample(lambda t: getattr(t, which)(d, keep).values, [x], ref)


@entry("cumsum")
def _cumsum(draw):
    x = arr(draw, draw(SHAPES))
    d = one_dim(draw, x.ndim)
    return Sample(lambda t: t.cumsum(d), [x], lambda a: np.cumsum(a, axis=d) if a.ndim else a)


@entry("sum_to_size")
def _sum_to_size(draw):
    target, big = binary_shapes(draw)
    shape = np.broadcast_shapes(target, big)
    if len(target) < len(shape):
        target = tuple(target)
    return Sample(lambda t: t.sum_to_size(target), [arr(draw, shape)],
                  lambda a: np.sum(a, axis=tuple(range(a.ndim - len(target))) + tuple(
                      a.ndim - len(target) + i for i, s in enumerate(target) if s == 1 and a.shape[a.ndim - len(target) + i] != 1),
                      keepdims=True).reshape(target))


# ---------------------------------------------------------------- nn-flavoured
@entry("softmax", "log_softmax", gradgrad=True)
def _softmax(draw):
    x = arr(draw, draw(SHAPES)) * draw(st.sampled_from([1.0, 5.0]))
    d = one_dim(draw, x.ndim)
    which = draw(st.sampled_from(["softmax", "log_softmax"]))
    ax = d if x.ndim else None
    ref = sp.softmax if which == "softmax" else sp.log_softmax
    return Sample(lambda t: getattr(t, which)(d), [x], lambda a: ref(a, axis=ax))


# ---------------------------------------------------------------- shape
@entry("reshape", "flatten", "unflatten")
def _reshape(draw):
    x = arr(draw, draw(SHAPES))
    how = draw(st.sampled_from(["reshape", "flatten", "unflatten"]))
    if how == "reshape":
        return Sample(lambda t: t.reshape(-1, 1), [x], lambda a: a.reshape(-1, 1))
    if how == "flatten" or x.ndim == 0:
        s = draw(st.integers(0, max(x.ndim - 1, 0)))
        ref = (lambda a: a.reshape(a.shape[:s] + (-1,))) if x.ndim else (lambda a: a.reshape(1))
        return Sample(lambda t: t.flatten(s), [x], ref)
    d = draw(st.integers(0, x.ndim - 1))
    return Sample(lambda t: t.unflatten(d, (1, -1)), [x], lambda a: a.reshape(a.shape[:d] + (1, -1) + a.shape[d + 1:]))


@entry("squeeze", "unsqueeze")
def _squeeze(draw):
    x = arr(draw, draw(SHAPES))
    d = draw(st.integers(-x.ndim - 1, x.ndim))
    if draw(st.booleans()) or x.ndim == 0:
        return Sample(lambda t: t.unsqueeze(d), [x], lambda a: np.expand_dims(a, d))
    dims = draw(st.sampled_from([None, 0, (0, -1)] if x.ndim > 1 else [None, 0]))
    ref = (lambda a: np.squeeze(a, tuple(i % a.ndim for i in ((dims,) if isinstance(dims, int) else dims or range(a.ndim))
                                         if a.shape[i] == 1)))
    return Sample(lambda t: t.squeeze(dims), [x], ref)


@entry("expand")
def _expand(draw):
    small, big = binary_shapes(draw)
    shape = np.broadcast_shapes(small, big)
    return Sample(lambda t: t.expand(shape), [arr(draw, small)], lambda a: np.broadcast_to(a, shape))


@entry("permute", "movedim", "swapaxes")
def _permute(draw):
    x = arr(draw, draw(SHAPES))
    perm = draw(st.permutations(range(x.ndim)))
    how = draw(st.sampled_from(["permute", "movedim", "swapaxes"]))
    if how == "permute" or x.ndim < 2:
        return Sample(lambda t: t.permute(*perm), [x], lambda a: a.transpose(perm))
    if how == "movedim":
        return Sample(lambda t: t.movedim(0, -1), [x], lambda a: np.moveaxis(a, 0, -1))
    return Sample(lambda t: t.swapaxes(0, -1), [x], lambda a: np.swapaxes(a, 0, -1))


@entry("to")
def _to(draw):  # float32 round trip: coarser finite differences
    return Sample(lambda t: t.float() * 3, [arr(draw, draw(SHAPES))], lambda a: a.astype(np.float32) * 3,
                  tol=dict(eps=1e-2, atol=1e-3, rtol=1e-2))


@entry("clone", "contiguous")
def _clone(draw):
    x = arr(draw, draw(SHAPES))
    return Sample(lambda t: t.clone().T.contiguous(), [x], lambda a: a.T.copy())


@entry("cat", "stack")
def _cat(draw):
    base = list(draw(NONEMPTY_SHAPES))
    d = draw(st.integers(0, len(base) - 1))
    n = draw(st.integers(1, 3))
    if draw(st.booleans()):
        xs = [arr(draw, tuple(base)) for _ in range(n)]
        return Sample(lambda *ts: tg.stack(ts, d - len(base) - 1), xs, lambda *a: np.stack(a, d - len(base) - 1))
    xs = []
    for _ in range(n):
        base[d] = draw(st.integers(1, 3))
        xs.append(arr(draw, tuple(base)))
    return Sample(lambda *ts: tg.cat(ts, d), xs, lambda *a: np.concatenate(a, d))


@entry("split", "chunk", "narrow", "unbind")
def _split(draw):
    x = arr(draw, draw(NONEMPTY_SHAPES))
    d = draw(st.integers(0, x.ndim - 1))
    n = x.shape[d]
    how = draw(st.sampled_from(["split", "chunk", "narrow", "unbind"]))
    w = np.arange(1.0, x.size + 1).reshape(x.shape)  # weights make every piece's gradient distinct
    wt = tg.tensor(w, dtype=tg.float64)
    if how == "split":
        k = draw(st.integers(1, n))
        return Sample(lambda t: tg.split(t * wt, k, d)[-1], [x], lambda a: np.split(a * w, range(k, n, k), d)[-1])
    if how == "chunk":
        k = draw(st.integers(1, 3))
        return Sample(lambda t: tuple(t.chunk(k, d)), [x], lambda a: np.split(a, range(-(-n // k), n, -(-n // k)), d))
    if how == "unbind":
        return Sample(lambda t: tg.unbind(t, d), [x], lambda a: tuple(np.moveaxis(a, d, 0)))
    s = draw(st.integers(0, n - 1))
    return Sample(lambda t: t.narrow(d, s, n - s), [x], lambda a: np.take(a, range(s, n), d))


@entry("constant_pad", "pad_modes")
def _pad(draw):
    x = arr(draw, draw(NONEMPTY_SHAPES))
    k = draw(st.integers(1, x.ndim))
    mode = draw(st.sampled_from(["constant", "reflect", "replicate", "circular"]))
    lo_pad = {"constant": -1, "reflect": 0, "replicate": 0, "circular": 0}[mode]
    pads = []
    for i in range(k):
        n = x.shape[x.ndim - 1 - i]
        hi = {"constant": 2, "reflect": n - 1, "replicate": 2, "circular": n}[mode]
        pads += [draw(st.integers(max(lo_pad, 1 - n) if mode == "constant" else 0, hi)) for _ in range(2)]
    widths = [(0, 0)] * (x.ndim - k) + [(pads[2 * i], pads[2 * i + 1]) for i in reversed(range(k))]

    def ref(a):
        crop = tuple(slice(max(-lo, 0), a.shape[j] - max(-hi, 0)) for j, (lo, hi) in enumerate(widths))
        pos = [(max(lo, 0), max(hi, 0)) for lo, hi in widths]
        npmode = {"constant": "constant", "reflect": "reflect", "replicate": "edge", "circular": "wrap"}[mode]
        return np.pad(a[crop], pos, mode=npmode, **({"constant_values": 0.5} if mode == "constant" else {}))
    kw = {"value": 0.5} if mode == "constant" else {}
    return Sample(lambda t: tg.pad(t, tuple(pads), mode=mode, **kw), [x], ref)


@entry("flip")
def _flip(draw):
    x = arr(draw, draw(NONEMPTY_SHAPES))
    dims = tuple(draw(st.lists(st.integers(0, x.ndim - 1), min_size=1, unique=True)))
    return Sample(lambda t: t.flip(dims), [x], lambda a: np.flip(a, dims))


@entry("repeat", "tile")
def _repeat(draw):
    x = arr(draw, draw(SHAPES))
    reps = tuple(draw(st.lists(st.integers(1, 3), min_size=x.ndim, max_size=x.ndim + 1)))
    if draw(st.booleans()):
        return Sample(lambda t: t.repeat(*reps), [x], lambda a: np.tile(a, reps))
    short = reps[: max(len(reps) - 1, 0)]
    return Sample(lambda t: tg.tile(t, short), [x], lambda a: np.tile(a, short))


@entry("roll")
def _roll(draw):
    x = arr(draw, draw(NONEMPTY_SHAPES))
    if draw(st.booleans()):
        s = draw(st.integers(-5, 5))
        return Sample(lambda t: t.roll(s), [x], lambda a: np.roll(a, s))
    d = draw(st.integers(0, x.ndim - 1))
    s = draw(st.integers(-5, 5))
    return Sample(lambda t: tg.roll(t, (s,), (d,)), [x], lambda a: np.roll(a, s, d))


# ---------------------------------------------------------------- indexing
@entry("getitem")
def _getitem(draw):
    x = arr(draw, draw(NONEMPTY_SHAPES))
    how = draw(st.sampled_from(["basic", "ints", "mask"]))
    if how == "basic":
        idx = (slice(None, None, -1) if x.shape[0] > 1 else 0, None, Ellipsis)
    elif how == "ints":
        idx = np.array(draw(st.lists(st.integers(-x.shape[0], x.shape[0] - 1), min_size=1, max_size=5)))
    else:
        idx = arr(draw, x.shape) > 0
    key = tg.tensor(idx) if isinstance(idx, np.ndarray) else idx
    return Sample(lambda t: t[key], [x], lambda a: a[idx])


@entry("index_put_add")
def _index_put_add(draw):
    n = draw(st.integers(1, 4))
    idx = (np.array(draw(st.lists(st.integers(0, n - 1), min_size=1, max_size=5))),)
    g = arr(draw, (len(idx[0]), 2))

    def ref(a):
        z = np.zeros((n, 2))
        np.add.at(z, idx, a)
        return z
    return Sample(lambda t: tg.index_put_add(t, (n, 2), idx, False), [g], ref)


@entry("setitem")
def _setitem(draw):
    x = arr(draw, draw(NONEMPTY_SHAPES))
    i = draw(st.integers(0, x.shape[0] - 1))
    v = arr(draw, x.shape[1:])

    def fn(t, u):
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
        return Sample(lambda t: tg.take_along_dim(t, tg.tensor(idx2), d), [x],
                      lambda a: np.take_along_axis(a, idx2, d))
    return Sample(lambda t: t.gather(d, tg.tensor(idx)), [x], lambda a: a[ref_idx])


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
    index = tg.tensor(idx)
    return Sample(lambda t, s: getattr(t, which)(d, index, s), [x, src], ref)


@entry("index_select", "masked_fill")
def _index_select(draw):
    x = arr(draw, draw(NONEMPTY_SHAPES))
    d = draw(st.integers(0, x.ndim - 1))
    if draw(st.booleans()):
        idx = np.array(draw(st.lists(st.integers(0, x.shape[d] - 1), min_size=1, max_size=4)))
        return Sample(lambda t: t.index_select(d, tg.tensor(idx)), [x], lambda a: np.take(a, idx, d))
    mask = arr(draw, x.shape[d:]) > 0
    m = tg.tensor(mask)
    return Sample(lambda t, v: t.masked_fill(m, v), [x, arr(draw, ())], lambda a, v: np.where(mask, v, a))


# ---------------------------------------------------------------- linalg
@entry("matmul", gradgrad=True)
def _matmul(draw):
    m, k, n = draw(st.integers(1, 3)), draw(st.integers(1, 3)), draw(st.integers(1, 3))
    form = draw(st.sampled_from(["mm", "mv", "vm", "vv", "batched"]))
    ba, bb = binary_shapes(draw) if form == "batched" else ((), ())
    ba, bb = ba[-2:], bb[-2:]
    shapes = {"mm": ((m, k), (k, n)), "mv": ((m, k), (k,)), "vm": ((k,), (k, n)), "vv": ((k,), (k,)),
              "batched": (tuple(ba) + (m, k), tuple(bb) + (k, n))}[form]
    return Sample(tg.matmul, [arr(draw, s) for s in shapes], np.matmul)


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
        return Sample(lambda a, b: tg.conv2d(a, b, stride=s, padding=p), [x, w], lambda a, b: _conv_ref(a, b, s, p))
    # conv_transpose2d is the adjoint of conv2d in its input: <conv_t(y, w), x> = <y, conv(x, w)>
    y = arr(draw, _conv_ref(x, w, s, 0).shape)
    op = (h - k) % s
    xt = tg.tensor(x, dtype=tg.float64)
    return Sample(lambda a, b: (tg.conv_transpose2d(a, b, stride=s, output_padding=op) * xt).sum(), [y, w],
                  lambda a, b: np.sum(a * _conv_ref(x, b, s, 0)))


@entry("max_pool2d", "max_pool2d_backward", "max_pool2d_gather", "avg_pool2d", "avg_pool2d_backward")
def _pool(draw):
    h = draw(st.integers(2, 4))
    x = arr(draw, (1, draw(st.integers(1, 2)), h, h), "distinct")
    k = draw(st.integers(1, 2))
    win = np.lib.stride_tricks.sliding_window_view(x, (k, k), axis=(2, 3))[:, :, ::k, ::k]
    if draw(st.booleans()):
        return Sample(lambda a: tg.max_pool2d(a, k), [x], lambda a: np.lib.stride_tricks.sliding_window_view(
            a, (k, k), axis=(2, 3))[:, :, ::k, ::k].max(axis=(-1, -2)))
    assert win is not None
    return Sample(lambda a: tg.avg_pool2d(a, k), [x], lambda a: np.lib.stride_tricks.sliding_window_view(
        a, (k, k), axis=(2, 3))[:, :, ::k, ::k].mean(axis=(-1, -2)))


# ---------------------------------------------------------------- more math, linalg, sorting, layout
MORE_UNARY = {  # name: (tapegrad fn, reference, value kind)
    "exp2": (tg.exp2, np.exp2, "any"),
    "log2": (tg.log2, np.log2, "pos"),
    "log10": (tg.log10, np.log10, "pos"),
    "sinh": (tg.sinh, np.sinh, "any"),
    "cosh": (tg.cosh, np.cosh, "any"),
    "asin": (lambda x: tg.asin(x * 0.4), lambda x: np.arcsin(x * 0.4), "any"),
    "acos": (lambda x: tg.acos(x * 0.4), lambda x: np.arccos(x * 0.4), "any"),
    "atan": (tg.atan, np.arctan, "any"),
    "asinh": (tg.asinh, np.arcsinh, "any"),
    "acosh": (lambda x: tg.acosh(x + 1), lambda x: np.arccosh(x + 1), "pos"),
    "atanh": (lambda x: tg.atanh(x * 0.4), lambda x: np.arctanh(x * 0.4), "any"),
    "erfc": (tg.erfc, sp.erfc, "any"),
    "erfinv": (lambda x: tg.erfinv(x * 0.4), lambda x: sp.erfinv(x * 0.4), "any"),
    "frac": (tg.frac, lambda x: x - np.trunc(x), "frac"),
    "logit": (lambda x: tg.logit(x * 0.4), lambda x: sp.logit(x * 0.4), "pos"),
    "nan_to_num": (tg.nan_to_num, np.nan_to_num, "any"),
    "median_all": (tg.median, lambda x: np.sort(x.reshape(-1))[(x.size - 1) // 2], "distinct"),
}
for _name, (_fn, _ref, _kind) in MORE_UNARY.items():
    def _make(fn=_fn, ref=_ref, kind=_kind):
        return lambda draw: Sample(fn, [arr(draw, draw(SHAPES), kind)], ref)
    OP_INFOS[_name] = OpInfo(_make(), _name not in ("frac", "nan_to_num", "median_all"))

_binary("hypot", tg.hypot, np.hypot, "nonzero", "nonzero", gradgrad=True)
_binary("logaddexp", tg.logaddexp, np.logaddexp, gradgrad=True)
_binary("addcmul", lambda a, b: tg.addcmul(a, b, a, value=0.5), lambda a, b: a + 0.5 * b * a, gradgrad=True)
_binary("addcdiv", lambda a, b: a.addcdiv(a, b, value=-2), lambda a, b: a - 2 * a / b, kb="nonzero", gradgrad=True)


@entry("remainder", "fmod")
def _remainder(draw):
    shape = draw(SHAPES)
    b = arr(draw, shape, "pos") * np.sign(arr(draw, shape, "nonzero"))
    a = b * arr(draw, shape, "frac")  # the quotient stays away from integers
    if draw(st.booleans()):
        return Sample(tg.remainder, [a, b], np.remainder)
    return Sample(tg.fmod, [a, b], np.fmod)


@entry("lerp", gradgrad=True)
def _lerp(draw):
    sa, sb = binary_shapes(draw)
    if draw(st.booleans()):
        w = draw(st.sampled_from([0.25, 0.75, -0.5, 1.5]))
        return Sample(lambda a, b: tg.lerp(a, b, w), [arr(draw, sa), arr(draw, sb)], lambda a, b: a + w * (b - a))
    sw = np.broadcast_shapes(sa, sb)[-1:]
    return Sample(tg.lerp, [arr(draw, sa), arr(draw, sb), arr(draw, sw)], lambda a, b, w: a + w * (b - a))


@entry("tril", "triu")
def _tri(draw):
    x = arr(draw, draw(SHAPES).__add__((draw(st.integers(1, 3)), draw(st.integers(1, 3)))))
    k = draw(st.integers(-2, 2))
    which = draw(st.sampled_from(["tril", "triu"]))
    return Sample(lambda t: getattr(tg, which)(t, k), [x], lambda a: getattr(np, which)(a, k))


@entry("diagonal", "diag_embed", "diag", "trace")
def _diagonal(draw):
    how = draw(st.sampled_from(["diagonal", "diag_embed", "diag1", "diag2", "trace"]))
    k = draw(st.integers(-2, 2))
    if how == "diagonal":
        x = arr(draw, draw(NONEMPTY_SHAPES).__add__((draw(st.integers(1, 3)),)))
        d1, d2 = draw(st.permutations(range(x.ndim)))[:2]
        return Sample(lambda t: t.diagonal(k, d1, d2), [x], lambda a: np.diagonal(a, k, d1, d2))
    if how == "diag_embed":
        x = arr(draw, draw(NONEMPTY_SHAPES))
        return Sample(lambda t: tg.diag_embed(t, k), [x], lambda a: np.stack(
            [np.diag(r, k) for r in a.reshape(-1, a.shape[-1])]).reshape(a.shape[:-1] + (a.shape[-1] + abs(k),) * 2))
    if how == "diag1":
        return Sample(lambda t: tg.diag(t, k), [arr(draw, (draw(st.integers(1, 3)),))], lambda a: np.diag(a, k))
    x = arr(draw, (draw(st.integers(1, 3)), draw(st.integers(1, 3))))
    if how == "trace":
        return Sample(tg.trace, [x], np.trace)
    return Sample(lambda t: t.diag(k), [x], lambda a: np.diag(a, k))


def _well_conditioned(draw, batch):
    n = draw(st.integers(1, 3))
    return arr(draw, batch + (n, n)) * 0.3 + np.eye(n) * 2


@entry("inverse", "det", gradgrad=True)
def _inverse(draw):
    x = _well_conditioned(draw, draw(st.sampled_from([(), (2,)])))
    if draw(st.booleans()):
        return Sample(tg.inverse, [x], np.linalg.inv)
    return Sample(tg.det, [x], np.linalg.det)


def _distinct_sv(draw, batch, m, n):
    """A (batch, m, n) matrix whose singular values (about 3, 2, 1) stay well apart and away from 0."""
    base = np.zeros((m, n))
    k = min(m, n)
    base[range(k), range(k)] = [3.0, 2.0, 1.0][:k]
    return base + arr(draw, batch + (m, n)) * 0.1


@entry("linalg_solve", "slogdet", "cholesky", "pinv", gradgrad=True)
def _solve(draw):
    batch = draw(st.sampled_from([(), (2,)]))
    x = _well_conditioned(draw, batch)
    n = x.shape[-1]
    how = draw(st.sampled_from(["solve", "solve_vec", "slogdet", "logdet", "cholesky", "cholesky_upper", "pinv",
                                "pinv_herm"]))
    if how == "solve":
        b = arr(draw, batch + (n, draw(st.integers(1, 3))))  # batched: numpy and torch read it alike
        return Sample(tg.linalg.solve, [x, b], np.linalg.solve)
    if how == "solve_vec":
        return Sample(tg.linalg.solve, [x, arr(draw, batch + (n,))], lambda a, b: np.linalg.solve(a, b[..., None])[..., 0])
    if how == "slogdet":
        return Sample(lambda a: tg.linalg.slogdet(a).logabsdet, [x], lambda a: np.linalg.slogdet(a)[1])
    if how == "logdet":
        return Sample(lambda a: tg.logdet(a @ a.mT), [x], lambda a: np.linalg.slogdet(a @ np.swapaxes(a, -1, -2))[1])
    if how.startswith("cholesky"):
        up = how == "cholesky_upper"
        ref = (lambda a: np.linalg.cholesky(a @ np.swapaxes(a, -1, -2)))
        return Sample(lambda a: tg.linalg.cholesky(a @ a.mT, upper=up), [x],
                      (lambda a: np.swapaxes(ref(a), -1, -2)) if up else ref)
    if how == "pinv_herm":  # eigenvalues about 2 +- 0.6: nonzero, and the gradient is symmetric-agnostic
        return Sample(lambda a: tg.linalg.pinv(a + a.mT, hermitian=True), [x],
                      lambda a: np.linalg.pinv(a + np.swapaxes(a, -1, -2)))
    m, n = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    return Sample(tg.linalg.pinv, [_distinct_sv(draw, batch, m, n)], np.linalg.pinv)


@entry("qr", "svd", "eigh", gradgrad=True)
def _decompositions(draw):
    """Outputs whose sign (gauge) convention is LAPACK's in both numpy and tapegrad, or squared away."""
    batch = draw(st.sampled_from([(), (2,)]))
    m, n = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    x = _distinct_sv(draw, batch, m, n)
    how = draw(st.sampled_from(["qr", "qr_complete", "svd", "svd_full", "eigh"]))
    if how.startswith("qr"):
        mode = "complete" if how == "qr_complete" and m <= n else "reduced"
        return Sample(lambda a: tuple(tg.linalg.qr(a, mode)), [x], lambda a: tuple(np.linalg.qr(a, mode)))
    k = min(m, n)
    if how.startswith("svd"):
        full = how == "svd_full"

        def fn(a):
            U, S, Vh = tg.linalg.svd(a, full_matrices=full)
            return U[..., :k] ** 2, S, Vh[..., :k, :] ** 2
        ref = (lambda a: (lambda U, S, Vh: (U ** 2, S, Vh ** 2))(*np.linalg.svd(a, full_matrices=False)))
        return Sample(fn, [x], ref)
    x = x[..., :k, :k]
    return Sample(lambda a: (lambda L, V: (L, V ** 2))(*tg.linalg.eigh(a + a.mT)), [x],
                  lambda a: (lambda L, V: (L, V ** 2))(*np.linalg.eigh(a + np.swapaxes(a, -1, -2))))


@entry("lgamma", "digamma", "polygamma", gradgrad=True)
def _gamma_family(draw):
    x = arr(draw, draw(SHAPES), "pos") + 0.2  # away from the poles at 0, -1, ...
    how = draw(st.sampled_from(["lgamma", "digamma", "polygamma"]))
    if how == "polygamma":
        n = draw(st.integers(0, 3))
        return Sample(lambda t: t.polygamma(n), [x], lambda a: sp.polygamma(n, a))
    return Sample(getattr(tg, how), [x], {"lgamma": sp.gammaln, "digamma": sp.digamma}[how])


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
        return Sample(lambda t, u: t.masked_scatter(tg.tensor(mask), u), [x, src], ref)
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
    return Sample(lambda t, u: t.scatter_reduce(d, tg.tensor(idx), u, how, include_self=inc), [x, src], ref)


@entry("einsum", "dot", "mv", "outer", "addmm", "baddbmm", "cross", gradgrad=True)
def _einsum(draw):
    i, j, k, b = (draw(st.integers(1, 3)) for _ in range(4))
    cases = {
        "ij,jk->ik": [(i, j), (j, k)], "bij,bjk->bik": [(b, i, j), (b, j, k)], "ii->i": [(i, i)], "ij->": [(i, j)],
        "...ij,...j": [(b, i, j), (j,)], "i,i": [(i,), (i,)], "ij,kj": [(i, j), (k, j)], "bi,bi->b": [(b, i), (b, i)],
        "i,j,ij->": [(i,), (j,), (i, j)], "iij->ji": [(i, i, j)], "ji": [(j, i)],
    }
    how = draw(st.sampled_from(sorted(cases) + ["dot", "mv", "outer", "addmm", "baddbmm", "cross"]))
    if how in cases:
        return Sample(lambda *ts: tg.einsum(how, *ts), [arr(draw, s) for s in cases[how]],
                      lambda *a: np.einsum(how, *a))
    if how == "dot":
        return Sample(tg.dot, [arr(draw, (i,)), arr(draw, (i,))], np.dot)
    if how == "mv":
        return Sample(tg.mv, [arr(draw, (i, j)), arr(draw, (j,))], np.matmul)
    if how == "outer":
        return Sample(tg.outer, [arr(draw, (i,)), arr(draw, (j,))], np.outer)
    if how == "addmm":
        return Sample(lambda c, a, m: tg.addmm(c, a, m, beta=0.5, alpha=2), [arr(draw, (k,)), arr(draw, (i, j)),
                      arr(draw, (j, k))], lambda c, a, m: 0.5 * c + 2 * a @ m)
    if how == "baddbmm":
        return Sample(lambda c, a, m: tg.baddbmm(c, a, m, alpha=-1), [arr(draw, (b, i, k)), arr(draw, (b, i, j)),
                      arr(draw, (b, j, k))], lambda c, a, m: c - a @ m)
    return Sample(lambda a, c: tg.cross(a, c, dim=-1), [arr(draw, (b, 3)), arr(draw, (b, 3))],
                  lambda a, c: np.cross(a, c))


@entry("sort", "topk", "kthvalue", "median", "argsort", "msort")
def _sort(draw):
    x = arr(draw, draw(NONEMPTY_SHAPES), "distinct")
    d = draw(st.integers(-x.ndim, x.ndim - 1))
    n = x.shape[d]
    how = draw(st.sampled_from(["sort", "sort_desc", "topk", "topk_small", "kthvalue", "median"]))
    if how == "sort":
        return Sample(lambda t: t.sort(d).values, [x], lambda a: np.sort(a, d))
    if how == "sort_desc":
        return Sample(lambda t: tg.sort(t, d, descending=True)[0], [x], lambda a: -np.sort(-a, d))
    k = draw(st.integers(1, n))
    if how == "topk":
        return Sample(lambda t: t.topk(k, d).values, [x], lambda a: np.take(-np.sort(-a, d), range(k), d))
    if how == "topk_small":
        return Sample(lambda t: tg.topk(t, k, d, largest=False)[0], [x], lambda a: np.take(np.sort(a, d), range(k), d))
    if how == "kthvalue":
        return Sample(lambda t: t.kthvalue(k, d).values, [x], lambda a: np.take(np.sort(a, d), k - 1, d))
    keep = draw(st.booleans())
    return Sample(lambda t: tg.median(t, d, keep).values, [x],
                  lambda a: np.take(np.sort(a, d), [(n - 1) // 2], d) if keep else np.take(np.sort(a, d), (n - 1) // 2, d))


@entry("cumprod", gradgrad=True)
def _cumprod(draw):
    x = arr(draw, draw(SHAPES), "nonzero")
    d = one_dim(draw, x.ndim)
    return Sample(lambda t: t.cumprod(d), [x], lambda a: np.cumprod(a, axis=d) if a.ndim else a)


@entry("cumprod_zeros")
def _cumprod_zeros(draw):
    """Exact zeros: the gradient is a polynomial in the inputs, so finite differences are exact."""
    x = arr(draw, draw(NONEMPTY_SHAPES))
    x = np.where(arr(draw, x.shape) > 0.3, 0.0, x)
    d = one_dim(draw, x.ndim)
    return Sample(lambda t: tg.cumprod(t, d), [x], lambda a: np.cumprod(a, axis=d))


@entry("nansum", "nanmean")
def _nansum(draw):
    x = arr(draw, draw(NONEMPTY_SHAPES))
    dim, keep = dims_and_keepdim(draw, x.ndim)
    nan = tg.tensor(np.where(arr(draw, x.shape) > 1.0, np.nan, 0.0))
    which = draw(st.sampled_from(["nansum", "nanmean"]))
    npfn = np.nansum if which == "nansum" else np.nanmean
    mask = np.isnan(nan.numpy())
    if which == "nanmean":  # keep a non-NaN entry in every slice
        mask.reshape(-1)[0] = False
        mask = np.where(np.all(mask, axis=np_dims(dim, x.ndim), keepdims=True), False, mask)
    nan = tg.tensor(np.where(mask, np.nan, 0.0))
    return Sample(lambda t: getattr(tg, which)(t + nan, dim, keep), [x],
                  lambda a: npfn(a + nan.numpy(), axis=np_dims(dim, a.ndim), keepdims=keep))


@entry("hstack", "vstack", "dstack", "meshgrid", "broadcast_tensors", "rot90", "unfold", "repeat_interleave")
def _layout(draw):
    how = draw(st.sampled_from(["hstack", "vstack", "dstack", "meshgrid", "broadcast_tensors", "rot90", "unfold",
                                "repeat_interleave"]))
    x = arr(draw, draw(NONEMPTY_SHAPES))
    if how in ("hstack", "vstack", "dstack"):
        return Sample(lambda a, b: getattr(tg, how)([a, b]), [x, x * 2 + 0.1], lambda a, b: getattr(np, how)([a, b]))
    if how == "meshgrid":
        ind = draw(st.sampled_from(["ij", "xy"]))
        ys = [arr(draw, (draw(st.integers(1, 3)),)) for _ in range(draw(st.integers(1, 3)))]
        return Sample(lambda *ts: tg.meshgrid(*ts, indexing=ind), ys, lambda *a: tuple(np.meshgrid(*a, indexing=ind)))
    if how == "broadcast_tensors":
        sa, sb = binary_shapes(draw)
        return Sample(tg.broadcast_tensors, [arr(draw, sa), arr(draw, sb)], np.broadcast_arrays)
    if how == "rot90":
        x = arr(draw, draw(NONEMPTY_SHAPES).__add__((2,)))
        k = draw(st.integers(-1, 4))
        return Sample(lambda t: t.rot90(k, (0, -1)), [x], lambda a: np.rot90(a, k, (0, -1)))
    d = draw(st.integers(0, x.ndim - 1))
    if how == "unfold":
        size = draw(st.integers(1, x.shape[d]))
        step = draw(st.integers(1, 2))
        return Sample(lambda t: t.unfold(d, size, step), [x], lambda a: np.moveaxis(
            np.lib.stride_tricks.sliding_window_view(a, size, axis=d).take(range(0, a.shape[d] - size + 1, step), d),
            -1, -1))
    reps = np.array(draw(st.lists(st.integers(0, 2), min_size=x.shape[d], max_size=x.shape[d])))
    return Sample(lambda t: t.repeat_interleave(tg.tensor(reps), d), [x], lambda a: np.repeat(a, reps, d))


@entry("masked_select", "take", "index_add", "index_fill")
def _select_more(draw):
    x = arr(draw, draw(NONEMPTY_SHAPES))
    how = draw(st.sampled_from(["masked_select", "take", "index_add", "index_fill"]))
    if how == "masked_select":
        mask = arr(draw, x.shape[1:]) > 0
        return Sample(lambda t: t.masked_select(tg.tensor(mask)), [x], lambda a: a[np.broadcast_to(mask, a.shape)])
    if how == "take":
        idx = np.array(draw(st.lists(st.integers(-x.size, x.size - 1), min_size=1, max_size=4))).reshape(-1, 1)
        return Sample(lambda t: tg.take(t, tg.tensor(idx)), [x], lambda a: np.take(a, idx))
    d = draw(st.integers(0, x.ndim - 1))
    idx = np.array(draw(st.lists(st.integers(0, x.shape[d] - 1), min_size=1, max_size=4)))
    if how == "index_fill":
        return Sample(lambda t: t.index_fill(d, tg.tensor(idx), -0.5), [x],
                      lambda a: np.where(np.isin(np.arange(a.shape[d]), idx).reshape((-1,) + (1,) * (a.ndim - d - 1)),
                                         -0.5, a))
    src = arr(draw, x.shape[:d] + (len(idx),) + x.shape[d + 1:])

    def ref(a, s):
        a = a.copy()
        np.add.at(a, (slice(None),) * d + (idx,), 2 * s)
        return a
    return Sample(lambda t, s: tg.index_add(t, d, tg.tensor(idx), s, alpha=2), [x, src], ref)


@entry("inplace_ext")
def _inplace_ext(draw):
    """The in-place variants record their out-of-place op on a non-leaf."""
    how = draw(st.sampled_from(["exp_", "tanh_", "sigmoid_", "pow_", "addcmul_", "lerp_", "unsqueeze_", "t_"]))
    x = arr(draw, (2, 3))

    def fn(t, u):
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


# ---------------------------------------------------------------- the tests
def assert_forward(sample, inputs, out):
    """The one forward check: tapegrad's result against the numpy/scipy reference, in value and shape."""
    expected = sample.ref(*[np.array(a) for a in sample.args])
    outs = out if isinstance(out, (tuple, list)) else (out,)
    exps = expected if isinstance(expected, (tuple, list)) else (expected,)
    assert len(outs) == len(exps)
    for o, e in zip(outs, exps):
        e = np.asarray(e)
        assert tuple(o.shape) == e.shape, f"shape {tuple(o.shape)} != reference {e.shape}"
        np.testing.assert_allclose(o.detach().numpy().astype(np.float64), e, rtol=1e-6, atol=1e-9)


def test_every_op_has_an_entry():
    missing = sorted(n for n, op in OPS.items() if op.differentiable and n not in OP_INFOS)
    assert not missing, f"ops without a gradient-table entry in {__file__}: {missing}"


@pytest.mark.parametrize("name", sorted(OP_INFOS))
@GRAD
@given(data=st.data())
def test_forward_and_gradcheck(name, data):
    s = OP_INFOS[name].sample(data.draw)
    inputs = [leaf(a) for a in s.args]
    out = s.fn(*inputs)
    if s.ref is not None:
        assert_forward(s, inputs, out)
    assert gradcheck(s.fn, inputs, **s.tol)


@pytest.mark.parametrize("name", sorted(n for n, info in OP_INFOS.items() if info.gradgrad))
@GRADGRAD
@given(data=st.data())
def test_gradgradcheck(name, data):
    s = OP_INFOS[name].sample(data.draw)
    assert gradgradcheck(s.fn, [leaf(a) for a in s.args], **s.tol)


def _grads(fn, inputs, cotangent, **kw):
    out = fn(*inputs)
    outs = out if isinstance(out, (tuple, list)) else (out,)
    gs = autograd.grad(list(outs), inputs, [tg.Tensor._wrap(np.asarray(c(o), dtype=o.dtype)) for o, c in zip(outs, cotangent)],
                       allow_unused=True, **kw)
    return [np.zeros(t.shape) if g is None else g.numpy().astype(np.float64) for g, t in zip(gs, inputs)]


def _draw_op(data):
    name = data.draw(st.sampled_from(sorted(OP_INFOS)), label="op")
    s = OP_INFOS[name].sample(data.draw)
    return name, s


@PROPS
@given(data=st.data())
def test_backward_is_linear_in_the_upstream_gradient(data):
    name, s = _draw_op(data)
    rng = np.random.default_rng(data.draw(st.integers(0, 2 ** 32 - 1)))
    probe = s.fn(*[leaf(a) for a in s.args])
    n_out = len(probe) if isinstance(probe, (tuple, list)) else 1
    u = [lambda o, r=rng.standard_normal(1000): r[: o.numel()].reshape(o.shape).astype(o.dtype)] * n_out
    v = [lambda o, r=rng.standard_normal(1000): r[: o.numel()].reshape(o.shape).astype(o.dtype)] * n_out
    a, b = 1.5, -0.75
    uv = [lambda o: a * u[0](o) + b * v[0](o)] * n_out
    gu = _grads(s.fn, [leaf(x) for x in s.args], u)
    gv = _grads(s.fn, [leaf(x) for x in s.args], v)
    guv = _grads(s.fn, [leaf(x) for x in s.args], uv)
    for x, y, z in zip(gu, gv, guv):
        np.testing.assert_allclose(z, a * x + b * y, rtol=1e-5, atol=1e-6, err_msg=name)  # 'to' is float32


@PROPS
@given(data=st.data())
def test_gradients_through_shared_subexpressions_accumulate(data):
    name, s = _draw_op(data)
    ones = lambda o: np.ones(o.shape, o.dtype)  # noqa: E731
    probe = s.fn(*[leaf(a) for a in s.args])
    n_out = len(probe) if isinstance(probe, (tuple, list)) else 1
    single = _grads(s.fn, [leaf(a) for a in s.args], [ones] * n_out)

    def twice(*ts):  # the inputs feed two uses, and the output one doubled use
        outs1, outs2 = s.fn(*ts), s.fn(*ts)
        if not isinstance(outs1, (tuple, list)):
            outs1, outs2 = (outs1,), (outs2,)
        return tuple(o1 + o2 + o1 for o1, o2 in zip(outs1, outs2))
    triple = _grads(twice, [leaf(a) for a in s.args], [ones] * n_out)
    for g1, g3 in zip(single, triple):
        np.testing.assert_allclose(g3, 3 * g1, rtol=1e-9, atol=1e-9, err_msg=name)


@PROPS
@given(data=st.data())
def test_float32_gradients_agree_with_float64(data):
    name, s = _draw_op(data)
    probe = s.fn(*[leaf(a) for a in s.args])
    n_out = len(probe) if isinstance(probe, (tuple, list)) else 1
    rng = np.random.default_rng(0)
    r = rng.standard_normal(1000)
    cot = [lambda o: r[: o.numel()].reshape(o.shape).astype(o.dtype)] * n_out
    g64 = _grads(s.fn, [leaf(a) for a in s.args], cot)
    g32 = _grads(s.fn, [leaf(a, np.float32) for a in s.args], cot)
    for a, b in zip(g64, g32):
        scale = max(1.0, float(np.abs(a).max(initial=0)))
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-4 * scale, err_msg=name)
