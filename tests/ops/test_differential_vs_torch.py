"""Differential testing against PyTorch: hypothesis draws an op, its arguments (dims, scalars,
indices) and its inputs (bool, int32, int64, float32, float64; 0-d, size-0 and size-1 dims,
broadcasting; Python int/float/bool scalars), runs it in both libraries and compares values,
dtypes, shapes, float64 gradients and whether (and roughly how) each raises. The pointwise ops
come from the op table (``op_table.py``, entries with a ``family``); the other families draw
arguments no table entry describes (dims out of range, dtype= arguments, index forms).

CI runs a fixed, derandomized sample (``TAPEGRAD_DIFF_EXAMPLES`` sets its size; hunting for
divergences used 5-10k). Skipped without torch.
"""
import math
import os
import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from hypothesis import HealthCheck, given, settings, strategies as st  # noqa: E402

import tapegrad as tg  # noqa: E402
from torch_oracle import as_numpy, same_failure, values  # noqa: E402
from op_table import OP_INFOS  # noqa: E402

pytestmark = pytest.mark.torch

EXAMPLES = int(os.environ.get("TAPEGRAD_DIFF_EXAMPLES", "150"))
DTYPES = ["bool", "int64", "int32", "float32", "float64"]
FLOATS = ["float32", "float64"]
NUMERIC = ["int64", "int32", "float32", "float64"]


# ---------------------------------------------------------------- drawing inputs
def _shape(draw, min_ndim=0, max_ndim=3, min_side=0, max_side=3):
    return tuple(draw(st.lists(st.integers(min_side, max_side), min_size=min_ndim, max_size=max_ndim)))


def _array(draw, dtype, shape, lo=-4, hi=4):
    """Values on a coarse grid (halves), so ties, zeros and exact integers are common."""
    n = int(np.prod(shape, dtype=np.int64))
    if dtype == "bool":
        vals = draw(st.lists(st.booleans(), min_size=n, max_size=n))
    elif dtype.startswith("int"):
        vals = draw(st.lists(st.integers(lo, hi), min_size=n, max_size=n))
    else:
        vals = draw(st.lists(st.integers(2 * lo, 2 * hi), min_size=n, max_size=n))
        vals = [v / 2 for v in vals]
    return np.array(vals, dtype=dtype).reshape(shape)


def _broadcast_partner(draw, shape):
    """A shape that broadcasts with ``shape``: some dims dropped from the front or set to 1."""
    drop = draw(st.integers(0, len(shape)))
    out = [1 if draw(st.booleans()) else s for s in shape[drop:]]
    if draw(st.integers(0, 5)) == 0:
        out = [draw(st.integers(1, 2))] + out  # sometimes more dims than the other operand
    return tuple(out)


def _scalar(draw, kinds=("int", "float", "bool")):
    kind = draw(st.sampled_from(kinds))
    if kind == "int":
        return draw(st.integers(-3, 3))
    if kind == "bool":
        return draw(st.booleans())
    return draw(st.sampled_from([-2.5, -1.0, -0.5, 0.0, 0.5, 1.0, 1.5, 2.0, 3.0]))


def _dim(draw, ndim, allow_none=False):
    n = max(ndim, 1)
    choices = list(range(-n, n))
    if draw(st.integers(0, 14)) == 0:
        choices.append(n)  # out of range sometimes: both must raise
    if allow_none:
        choices.append(None)
    return draw(st.sampled_from(choices))


def _dims(draw, ndim):
    """None, an int, or a tuple (possibly empty, possibly repeated) of dims."""
    kind = draw(st.integers(0, 3))
    if kind == 0:
        return None
    if kind == 1:
        return _dim(draw, ndim)
    n = max(ndim, 1)
    return tuple(draw(st.lists(st.integers(-n, n - 1), max_size=min(3, n), unique_by=lambda d: d % n)))


# ---------------------------------------------------------------- the cases
# the pointwise pools come from the op table: an entry with family "unary"/"binary" is drawn here
UNARY = sorted(n for n, e in OP_INFOS.items() if e.family == "unary")
BINARY = sorted(n for n, e in OP_INFOS.items() if e.family == "binary")
OPERATORS = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b, "/": lambda a, b: a / b,
             "//": lambda a, b: a // b, "%": lambda a, b: a % b, "**": lambda a, b: a ** b,
             "&": lambda a, b: a & b, "|": lambda a, b: a | b, "^": lambda a, b: a ^ b,
             "==": lambda a, b: a == b, "<": lambda a, b: a < b, ">=": lambda a, b: a >= b}


def case_unary(draw):
    name = draw(st.sampled_from(UNARY))
    x = _array(draw, draw(st.sampled_from(DTYPES)), _shape(draw))
    return name, (lambda M, x: getattr(M, name)(x)), [x]


# torch's argument parser takes only a Tensor as ``other`` here; tapegrad also takes a Python scalar
TENSOR_OTHER_ONLY = {"maximum", "minimum", "atan2", "fmax", "fmin", "hypot", "logaddexp", "logical_and",
                     "logical_or", "logical_xor", "heaviside", "copysign", "xlogy", "float_power"}


def case_binary(draw):
    name = draw(st.sampled_from(BINARY))
    shape = _shape(draw)
    x = _array(draw, draw(st.sampled_from(DTYPES if name not in ("hypot", "logaddexp") else FLOATS)), shape)
    how = draw(st.integers(0, 2))
    if how == 0:  # tensor op tensor (torch has no integer hypot/logaddexp kernels)
        y = _array(draw, draw(st.sampled_from(DTYPES if name not in ("hypot", "logaddexp") else FLOATS)),
                   _broadcast_partner(draw, shape))
        return name, (lambda M, x, y: getattr(M, name)(x, y)), [x, y]
    s = _scalar(draw)
    if name in TENSOR_OTHER_ONLY:
        return "skip", None, []
    if how == 1:
        return f"{name}(t, {s!r})", (lambda M, x: getattr(M, name)(x, s)), [x]
    if name in ("add", "sub", "mul", "div", "pow", "remainder", "maximum", "minimum", "eq", "lt"):
        return f"{name} reflected {s!r}", (lambda M, x: getattr(x, f"__r{_REFLECT.get(name, name)}__")(s)
                                           if name in _REFLECT else getattr(M, name)(x, s)), [x]
    return f"{name}(t, {s!r})", (lambda M, x: getattr(M, name)(x, s)), [x]


_REFLECT = {"add": "add", "sub": "sub", "mul": "mul", "div": "truediv", "pow": "pow", "remainder": "mod"}


def case_operator(draw):
    sym = draw(st.sampled_from(sorted(OPERATORS)))
    op = OPERATORS[sym]
    shape = _shape(draw)
    x = _array(draw, draw(st.sampled_from(DTYPES)), shape)
    how = draw(st.integers(0, 2))
    if how == 0:
        y = _array(draw, draw(st.sampled_from(DTYPES if sym != "%" else NUMERIC)), _broadcast_partner(draw, shape))
        return f"x {sym} y", (lambda M, x, y: op(x, y)), [x, y]
    s = _scalar(draw)
    if how == 1:
        return f"x {sym} {s!r}", (lambda M, x: op(x, s)), [x]
    return f"{s!r} {sym} x", (lambda M, x: op(s, x)), [x]


def case_div_family(draw):
    """floor_divide / remainder / fmod / div(rounding_mode) with negatives and zeros."""
    name = draw(st.sampled_from(["floor_divide", "remainder", "fmod", "div_floor", "div_trunc"]))
    shape = _shape(draw, max_ndim=2)
    dt = draw(st.sampled_from(["int64", "float64", "float32", "int32"]))
    x = _array(draw, dt, shape, -7, 7)
    if draw(st.booleans()):
        y = _array(draw, draw(st.sampled_from(["int64", "float64", dt])), _broadcast_partner(draw, shape), -3, 3)
        if y.dtype.kind == "i":
            y[y == 0] = draw(st.sampled_from([1, -2]))  # integer division by zero: torch raises, numpy gives 0
        other = None
    else:
        y, other = None, draw(st.sampled_from([2, -2, 3, -3, 1.5, -1.5, 0.5, -0.5]))

    def fn(M, x, *ys):
        b = ys[0] if ys else other
        if name == "div_floor":
            return M.div(x, b, rounding_mode="floor")
        if name == "div_trunc":
            return M.div(x, b, rounding_mode="trunc")
        return getattr(M, name)(x, b)
    return f"{name} other={other}", fn, [x] if y is None else [x, y]


def case_pow(draw):
    dt = draw(st.sampled_from(["int64", "int32", "float64", "float32"]))
    x = _array(draw, dt, _shape(draw, max_ndim=2), -3, 3)
    kind = draw(st.integers(0, 3))
    if kind == 0:
        e = draw(st.sampled_from([0, 1, 2, 3, 0.5, 2.0, -1.0, -2.0, 1.5]))
        if dt.startswith("int") and isinstance(e, float) is False:
            pass
        return f"pow(x, {e})", (lambda M, x: M.pow(x, e)), [x]
    if kind == 1:
        e = draw(st.sampled_from([2, 3, 0.5, 2.0, -1.0, 0]))
        return f"pow({e}, x)", (lambda M, x: M.pow(e, x)), [x]
    if kind == 2:  # integer ** negative integer: torch raises
        e = draw(st.sampled_from([-1, -2]))
        return f"pow(int, {e})", (lambda M, x: M.pow(x, e)), [x]
    y = _array(draw, draw(st.sampled_from(["int64", "float64"])), x.shape, 0, 3)
    return "pow(x, y)", (lambda M, x, y: M.pow(x, y)), [x, y]


REDUCTIONS = ["sum", "mean", "prod", "amax", "amin", "logsumexp", "all", "any", "nansum", "count_nonzero",
              "std", "var", "norm"]


def case_reduction(draw):
    name = draw(st.sampled_from(REDUCTIONS))
    shape = _shape(draw)
    x = _array(draw, draw(st.sampled_from(DTYPES)), shape)
    dim = _dims(draw, len(shape))
    keepdim = draw(st.booleans())
    if name == "count_nonzero":
        return f"count_nonzero dim={dim}", (lambda M, x: M.count_nonzero(x, dim)), [x]
    if name in ("std", "var"):
        corr = draw(st.sampled_from([None, 0, 1, 2]))
        kw = {} if corr is None else {"correction": corr}
        return f"{name} dim={dim} keepdim={keepdim} {kw}", (
            lambda M, x: getattr(M, name)(x, dim, keepdim=keepdim, **kw)), [x]
    if name == "prod" and not isinstance(dim, int):
        dim, keepdim = None, False
    if name in ("amax", "amin") and dim is None:
        dim = ()
    if name in ("all", "any") and isinstance(dim, tuple) and len(dim) == 0:
        dim = None
    dtype_kw = draw(st.sampled_from([None, "float64"] + ([] if x.dtype.kind == "f" else ["int64"]))) \
        if name in ("sum", "prod", "mean") else None
    if name == "logsumexp" and dim == ():
        dim = None  # torch.logsumexp(int_tensor, ()) fails inside torch itself

    def fn(M, x):
        kw = {} if dtype_kw is None else {"dtype": getattr(M, dtype_kw)}
        if name == "norm":
            return M.norm(x, dim=dim, keepdim=keepdim)
        if name == "logsumexp" and dim is None:
            return M.logsumexp(x, tuple(range(x.ndim)), keepdim)
        return getattr(M, name)(x, dim, keepdim, **kw) if dim is not None else (
            getattr(M, name)(x, **kw) if not keepdim else getattr(M, name)(x, tuple(range(x.ndim)), True, **kw))
    return f"{name} dim={dim} keepdim={keepdim} dtype={dtype_kw}", fn, [x]


def case_select_reduction(draw):
    """max/min(dim), argmax/argmin, median/mode/kthvalue: ties must pick PyTorch's index."""
    name = draw(st.sampled_from(["max", "min", "argmax", "argmin", "max_all", "argmax_all", "median",
                                 "aminmax", "cummax", "cummin"]))
    shape = _shape(draw)
    x = _array(draw, draw(st.sampled_from(["int64", "float64", "float32", "bool", "int32"])), shape, -1, 1)
    dim = _dim(draw, len(shape))
    keepdim = draw(st.booleans())
    if name == "max_all":
        return "max()", (lambda M, x: x.max()), [x]
    if name == "argmax_all":
        return f"argmax() keepdim={keepdim}", (lambda M, x: M.argmax(x, keepdim=keepdim)), [x]
    if name in ("cummax", "cummin"):
        return f"{name} dim={dim}", (lambda M, x: getattr(M, name)(x, dim)), [x]
    if name == "aminmax":
        return f"aminmax dim={dim}", (lambda M, x: M.aminmax(x, dim=dim, keepdim=keepdim)), [x]
    if name == "median":
        if x.dtype == bool or x.ndim == 0:
            return "skip", None, []
        return f"median dim={dim}", (lambda M, x: M.median(x, dim, keepdim).values), [x]
    return f"{name} dim={dim} keepdim={keepdim}", (lambda M, x: getattr(M, name)(x, dim, keepdim)), [x]


def case_sorting(draw):
    name = draw(st.sampled_from(["sort", "argsort", "topk", "kthvalue", "msort"]))
    shape = _shape(draw, max_side=4)
    x = _array(draw, draw(st.sampled_from(["int64", "float64", "float32", "int32"])), shape, -2, 2)
    dim = _dim(draw, len(shape))
    desc = draw(st.booleans())
    if name == "sort":
        return f"sort dim={dim} desc={desc}", (lambda M, x: M.sort(x, dim=dim, descending=desc, stable=True)), [x]
    if name == "argsort":
        return f"argsort dim={dim} desc={desc}", (lambda M, x: M.argsort(x, dim=dim, descending=desc, stable=True)), [x]
    if name == "msort":
        return "msort", (lambda M, x: M.msort(x)), [x]
    size = x.shape[dim] if x.ndim and -x.ndim <= dim < x.ndim else 1
    k = draw(st.integers(0, size + 1))
    if name == "kthvalue":  # the index among ties is PyTorch's quickselect's: values only
        if x.ndim == 0 or not 1 <= k <= size:
            return "skip", None, []
        return f"kthvalue k={k} dim={dim}", (lambda M, x: M.kthvalue(x, k, dim).values), [x]
    # only the values are compared for topk with ties (the index order among ties is unspecified)
    return f"topk k={k} dim={dim} largest={desc}", (lambda M, x: M.topk(x, k, dim, largest=desc).values), [x]


def case_cumulative(draw):
    name = draw(st.sampled_from(["cumsum", "cumprod", "logcumsumexp", "diff"]))
    shape = _shape(draw)
    x = _array(draw, draw(st.sampled_from(DTYPES)), shape, -2, 2)
    dim = _dim(draw, len(shape))
    if name == "diff":
        return f"diff dim={dim}", (lambda M, x: M.diff(x, dim=dim)), [x]
    dt = draw(st.sampled_from([None, "float64"] + ([] if x.dtype.kind == "f" else ["int64"]))) \
        if name != "logcumsumexp" else None
    return f"{name} dim={dim} dtype={dt}", (
        lambda M, x: getattr(M, name)(x, dim, **({} if dt is None else {"dtype": getattr(M, dt)}))), [x]


def case_softmax(draw):
    name = draw(st.sampled_from(["softmax", "log_softmax"]))
    shape = _shape(draw)
    x = _array(draw, draw(st.sampled_from(FLOATS + ["int64"])), shape)
    dim = _dim(draw, len(shape))
    dt = draw(st.sampled_from([None, "float64"])) if x.dtype.kind == "f" else "float64"
    return f"{name} dim={dim} dtype={dt}", (
        lambda M, x: getattr(M, name)(x, dim, **({} if dt is None else {"dtype": getattr(M, dt)}))), [x]


def case_shape(draw):
    name = draw(st.sampled_from(["reshape", "squeeze", "unsqueeze", "transpose", "flatten", "expand", "repeat",
                                 "flip", "roll", "narrow", "split", "chunk", "tensor_split", "movedim", "permute",
                                 "t", "tile", "unflatten", "swapaxes", "view_as_flat"]))
    shape = _shape(draw, max_side=4)
    x = _array(draw, draw(st.sampled_from(DTYPES)), shape)
    nd = len(shape)
    n = max(nd, 1)
    d0, d1 = _dim(draw, nd), _dim(draw, nd)
    if name == "reshape":
        size = int(np.prod(shape))
        cands = [(-1,), (size,), (1, -1), (-1, 1), (size, 1, 1), (), (-1, -1), (0, -1), (2, -1), (-1, 3)]
        new = draw(st.sampled_from(cands))
        return f"reshape {new}", (lambda M, x: x.reshape(new)), [x]
    if name == "view_as_flat":
        return "view(-1)", (lambda M, x: x.view(-1)), [x]
    if name == "squeeze":
        which = draw(st.sampled_from(["none", "int", "tuple"]))
        if which == "none":
            return "squeeze()", (lambda M, x: x.squeeze()), [x]
        if which == "int":
            return f"squeeze({d0})", (lambda M, x: x.squeeze(d0)), [x]
        return f"squeeze(({d0}, {d1}))", (lambda M, x: x.squeeze((d0, d1))), [x]
    if name == "unsqueeze":
        d = draw(st.integers(-nd - 2, nd + 1))
        return f"unsqueeze({d})", (lambda M, x: x.unsqueeze(d)), [x]
    if name in ("transpose", "swapaxes"):
        return f"{name}({d0}, {d1})", (lambda M, x: getattr(x, name)(d0, d1)), [x]
    if name in ("movedim", "unflatten", "roll") and nd == 0:
        return "skip", None, []
    if name == "movedim":
        return f"movedim({d0}, {d1})", (lambda M, x: M.movedim(x, d0, d1)), [x]
    if name == "t":
        return "t()", (lambda M, x: x.t()), [x]
    if name == "permute":
        if nd == 0:
            return "skip", None, []
        perm = tuple(draw(st.permutations(list(range(nd)))))
        if nd and draw(st.booleans()):
            perm = tuple(p - nd for p in perm)
        return f"permute{perm}", (lambda M, x: x.permute(*perm)), [x]
    if name == "flatten":
        return f"flatten({d0}, {d1})", (lambda M, x: x.flatten(d0, d1)), [x]
    if name == "unflatten":
        size = shape[d0] if nd and -nd <= d0 < nd else 1
        sizes = draw(st.sampled_from([(size,), (-1, 1), (1, size), (size, -1)]))
        return f"unflatten({d0}, {sizes})", (lambda M, x: x.unflatten(d0, sizes)), [x]
    if name == "expand":
        sizes = [(-1 if draw(st.booleans()) else (s if s != 1 else draw(st.integers(1, 3)))) for s in shape]
        sizes = [draw(st.integers(1, 2)) for _ in range(draw(st.integers(0, 1)))] + sizes
        if not sizes:
            return "skip", None, []
        return f"expand{tuple(sizes)}", (lambda M, x: x.expand(*sizes)), [x]
    if name == "repeat":
        reps = tuple(draw(st.lists(st.integers(0, 2), min_size=nd, max_size=nd + 1)))
        return f"repeat{reps}", (lambda M, x: x.repeat(*reps) if reps else x.repeat(())), [x]
    if name == "tile":
        reps = tuple(draw(st.lists(st.integers(0, 2), min_size=0, max_size=nd + 1)))
        return f"tile{reps}", (lambda M, x: M.tile(x, reps)), [x]
    if name == "flip":
        dims = tuple(draw(st.lists(st.integers(-n, n - 1), max_size=n, unique=True)))
        return f"flip{dims}", (lambda M, x: M.flip(x, dims)), [x]
    if name == "roll":
        sh = draw(st.integers(-5, 5))
        if draw(st.booleans()):
            return f"roll({sh})", (lambda M, x: M.roll(x, sh)), [x]
        return f"roll({sh}, {d0})", (lambda M, x: M.roll(x, sh, d0)), [x]
    if name == "narrow":
        size = shape[d0] if nd and -nd <= d0 < nd else 1
        start = draw(st.integers(-size - 1, size))
        length = draw(st.integers(0, size + 1))
        return f"narrow({d0}, {start}, {length})", (lambda M, x: x.narrow(d0, start, length)), [x]
    if name in ("split", "chunk", "tensor_split"):
        size = shape[d0] if nd and -nd <= d0 < nd else 1
        if name == "split" and draw(st.booleans()):
            parts = draw(st.lists(st.integers(0, 3), min_size=1, max_size=3))
            if draw(st.integers(0, 3)):  # mostly valid section lists
                parts = parts[:-1] + [size - sum(parts[:-1])]
            return f"split({parts}, {d0})", (lambda M, x: x.split(parts, d0)), [x]
        k = draw(st.integers(0 if name == "split" else 1, 4))
        return f"{name}({k}, {d0})", (lambda M, x: getattr(x, name)(k, d0)), [x]
    raise AssertionError(name)


def _index_part(draw, size):
    kind = draw(st.sampled_from(["int", "slice", "none", "ellipsis", "list", "tensor", "bool"]))
    if kind == "int":
        return draw(st.integers(-size - 1, size)) if size else draw(st.integers(-1, 0))
    if kind == "slice":
        start = draw(st.one_of(st.none(), st.integers(-size - 2, size + 2)))
        stop = draw(st.one_of(st.none(), st.integers(-size - 2, size + 2)))
        step = draw(st.sampled_from([None, 1, 2, 3]))
        return slice(start, stop, step)
    if kind == "none":
        return None
    if kind == "ellipsis":
        return Ellipsis
    if kind == "list":
        return draw(st.lists(st.integers(-size, max(size - 1, 0)), min_size=0, max_size=3)) if size else [0]
    if kind == "tensor":
        idx = np.array(draw(st.lists(st.integers(-size, max(size - 1, 0)), min_size=1, max_size=3)), dtype=np.int64)
        return ("tensor", idx.reshape(draw(st.sampled_from([(-1,), (1, -1), (-1, 1)]))))
    return ("bool", np.array(draw(st.lists(st.booleans(), min_size=size, max_size=size)), dtype=bool))


def _plain_index(parts):
    """One Ellipsis at most, and no None or Ellipsis before a bool mask (where the mask's dims shift)."""
    bools = [i for i, p in enumerate(parts) if isinstance(p, tuple) and p[0] == "bool"]
    before = parts[:bools[-1]] if bools else []
    return sum(p is Ellipsis for p in parts) <= 1 and not any(p is None or p is Ellipsis for p in before)


def _materialize(M, part):
    if isinstance(part, tuple) and len(part) == 2 and part[0] in ("tensor", "bool"):
        return M.tensor(part[1])
    return part


def case_getitem(draw):
    shape = _shape(draw, min_ndim=0, max_ndim=3, max_side=4)
    x = _array(draw, draw(st.sampled_from(["float64", "int64", "bool"])), shape)
    nparts = draw(st.integers(1, 3))
    parts, dims = [], list(shape)
    for _ in range(nparts):
        parts.append(_index_part(draw, dims.pop(0) if dims else 1))
    if not _plain_index(parts):
        return "skip", None, []
    single = nparts == 1 and draw(st.booleans())
    if draw(st.integers(0, 6)) == 0:  # a whole-tensor bool mask
        return "x[mask]", (lambda M, x: x[x > 0] if x.dtype not in (M.bool,) else x[x]), [x]

    def fn(M, x):
        idx = [_materialize(M, p) for p in parts]
        return x[idx[0]] if single else x[tuple(idx)]
    return f"x[{parts!r}]", fn, [x]


def case_setitem(draw):
    shape = _shape(draw, min_ndim=1, max_ndim=3, max_side=4)
    x = _array(draw, "float64", shape)
    parts = [_index_part(draw, s) for s in shape[:draw(st.integers(1, len(shape)))]]
    if not _plain_index(parts):
        return "skip", None, []
    val = _scalar(draw, ("int", "float"))

    def fn(M, x):
        y = x * 1
        y[tuple(_materialize(M, p) for p in parts)] = val
        return y
    return f"x[{parts!r}] = {val}", fn, [x]


def case_gather_scatter(draw):
    name = draw(st.sampled_from(["gather", "scatter", "scatter_add", "index_select", "take_along_dim", "take",
                                 "masked_fill", "scatter_value", "index_add", "masked_select"]))
    shape = _shape(draw, min_ndim=1, max_ndim=3, min_side=0, max_side=3)
    x = _array(draw, draw(st.sampled_from(["float64", "int64", "float32"])), shape)
    nd = len(shape)
    dim = _dim(draw, nd)
    size = shape[dim] if nd and -nd <= dim < nd else 1
    if name in ("gather", "take_along_dim", "scatter", "scatter_add", "scatter_value"):
        ishape = tuple(min(s, draw(st.integers(0, 3))) if i != (dim % max(nd, 1)) else draw(st.integers(0, 3))
                       for i, s in enumerate(shape))
        idx = np.array(draw(st.lists(st.integers(0, max(size - 1, 0)), min_size=int(np.prod(ishape)),
                                     max_size=int(np.prod(ishape)))), dtype=np.int64).reshape(ishape)
        if idx.size == 0:
            return "skip", None, []
        if name in ("gather", "take_along_dim"):
            return f"{name} dim={dim} idx={idx.tolist()}", (
                lambda M, x: M.gather(x, dim, M.tensor(idx)) if name == "gather" else M.take_along_dim(
                    x, M.tensor(idx), dim)), [x]
        if name == "scatter_value":
            return f"scatter value dim={dim}", (lambda M, x: x.scatter(dim, M.tensor(idx), 2.0)), [x]
        src = _array(draw, x.dtype.name, ishape)
        if name == "scatter" and nd:  # duplicate targets make scatter's winner unspecified: only unique ones
            targets = np.indices(ishape).reshape(nd, -1)
            targets[dim % nd] = idx.reshape(-1)
            if len(set(map(tuple, targets.T))) != idx.size:
                return "skip", None, []
        return f"{name} dim={dim}", (lambda M, x, s: getattr(M, name)(x, dim, M.tensor(idx), s)), [x, src]
    if name == "index_select":
        if x.size == 0:  # torch's error for an index into an empty dim is a RuntimeError, not IndexError
            return "skip", None, []
        idx = np.array(draw(st.lists(st.integers(-size if draw(st.integers(0, 9)) == 0 else 0, max(size - 1, 0)),
                                     max_size=4)), dtype=np.int64)
        if draw(st.booleans()):
            idx = idx[:1].reshape(()) if idx.size else idx
        return f"index_select dim={dim} {idx.tolist()}", (lambda M, x: M.index_select(x, dim, M.tensor(idx))), [x]
    if name == "index_add":
        idx = np.array(draw(st.lists(st.integers(0, max(size - 1, 0)), max_size=3)), dtype=np.int64)
        src_shape = list(shape) if nd else []
        if nd and -nd <= dim < nd:
            src_shape[dim] = len(idx)
        src = _array(draw, x.dtype.name, tuple(src_shape))
        return f"index_add dim={dim}", (lambda M, x, s: M.index_add(x, dim, M.tensor(idx), s)), [x, src]
    if name == "take":
        n = max(int(np.prod(shape)), 1)
        idx = np.array(draw(st.lists(st.integers(-n, n - 1), max_size=4)), dtype=np.int64)
        return "take", (lambda M, x: M.take(x, M.tensor(idx))), [x]
    mask = _array(draw, "bool", _broadcast_partner(draw, shape))
    if name == "masked_select":
        return "masked_select", (lambda M, x, m: M.masked_select(x, m)), [x, mask]
    v = _scalar(draw, ("int", "float"))
    return f"masked_fill {v}", (lambda M, x, m: M.masked_fill(x, m, v)), [x, mask]


def case_cat_stack(draw):
    name = draw(st.sampled_from(["cat", "stack", "hstack", "vstack"]))
    shape = _shape(draw, max_ndim=2)
    n = draw(st.integers(1, 3))
    arrays = []
    dim = _dim(draw, len(shape) + (name == "stack"))
    for _ in range(n):
        s = list(shape)
        if name == "cat" and s and -len(s) <= dim < len(s) and draw(st.booleans()):
            s[dim] = draw(st.integers(0, 3))

        arrays.append(_array(draw, draw(st.sampled_from(DTYPES)), tuple(s)))
    if name in ("hstack", "vstack"):
        return name, (lambda M, *xs: getattr(M, name)(list(xs))), arrays
    return f"{name} dim={dim}", (lambda M, *xs: getattr(M, name)(list(xs), dim)), arrays


def case_where_clamp(draw):
    name = draw(st.sampled_from(["where", "where_scalars", "clamp", "clamp_tensor", "lerp", "addcmul"]))
    shape = _shape(draw)
    x = _array(draw, draw(st.sampled_from(DTYPES if not name.startswith("clamp") else NUMERIC)), shape)
    if name == "where":
        c = _array(draw, "bool", _broadcast_partner(draw, shape))
        if draw(st.booleans()):
            y = _array(draw, draw(st.sampled_from(DTYPES)), _broadcast_partner(draw, shape))
            return "where(c, x, y)", (lambda M, c, x, y: M.where(c, x, y)), [c, x, y]
        s = _scalar(draw)
        return f"where(c, x, {s})", (lambda M, c, x: M.where(c, x, s)), [c, x]
    if name == "where_scalars":
        c = _array(draw, "bool", shape)
        a, b = _scalar(draw), _scalar(draw)
        return f"where(c, {a}, {b})", (lambda M, c: M.where(c, a, b)), [c]
    if name == "lerp":
        y = _array(draw, x.dtype.name if x.dtype.kind == "f" else "float32", _broadcast_partner(draw, shape))
        w = draw(st.sampled_from([0.0, 0.25, 0.5, 1.0]))
        return f"lerp w={w}", (lambda M, x, y: M.lerp(x, y, w)), [x, y]
    if name == "addcmul":
        y = _array(draw, draw(st.sampled_from(DTYPES)), _broadcast_partner(draw, shape))
        v = _scalar(draw, ("int", "float"))
        return f"addcmul value={v}", (lambda M, x, y: M.addcmul(x, y, y, value=v)), [x, y]
    if name == "clamp":
        lo = draw(st.one_of(st.none(), st.sampled_from([-1, 0, 1, -1.5, 0.5, 2.5])))
        hi = draw(st.one_of(st.none(), st.sampled_from([-1, 0, 1, -1.5, 0.5, 2.5])))
        return f"clamp({lo}, {hi})", (lambda M, x: M.clamp(x, lo, hi)), [x]
    lo = _array(draw, draw(st.sampled_from(NUMERIC)), _broadcast_partner(draw, shape))
    hi = _array(draw, draw(st.sampled_from(NUMERIC)), _broadcast_partner(draw, shape))
    if len({a.ndim == 0 for a in (x, lo, hi)}) > 1:  # mixed 0-d/dimensioned bounds: see the report
        return "skip", None, []
    return "clamp(x, lo, hi)", (lambda M, x, lo, hi: M.clamp(x, lo, hi)), [x, lo, hi]


def case_matmul(draw):
    shapes = draw(st.sampled_from([((3,), (3,)), ((2, 3), (3,)), ((3,), (3, 2)), ((2, 3), (3, 4)),
                                   ((2, 2, 3), (3, 1)), ((1, 2, 3), (4, 3, 2)), ((0, 3), (3, 2)), ((2, 0), (0, 3)),
                                   ((3,), (2,)), ((), (3,))]))
    dt = draw(st.sampled_from(["float64", "int64", "float32"]))
    x, y = (_array(draw, dt, s) for s in shapes)
    name = draw(st.sampled_from(["matmul", "@", "outer", "dot"]))
    if name == "@":
        return "x @ y", (lambda M, x, y: x @ y), [x, y]
    return name, (lambda M, x, y: getattr(M, name)(x, y)), [x, y]


def case_creation(draw):
    name = draw(st.sampled_from(["tensor", "arange", "full", "zeros_like", "linspace", "eye", "tril"]))
    if name == "tensor":
        data = draw(st.sampled_from([[1, 2], [1.0, 2], [True, 2], [True, False], 3, 2.5, True, [[1], [2]], [],
                                     [[], []], [1, 2.5, True]]))
        return f"tensor({data})", (lambda M: M.tensor(data)), []
    if name == "arange":
        args = draw(st.sampled_from([(5,), (1, 4), (0, 5, 2), (0.0, 1.0, 0.25), (5, 0, -1), (1, 2.5), (3.0,),
                                     (0, 1, 0.3), (2, 2)]))
        return f"arange{args}", (lambda M: M.arange(*args)), []
    if name == "full":
        v = _scalar(draw)
        return f"full({v})", (lambda M: M.full((2,), v)), []
    if name == "linspace":
        args = draw(st.sampled_from([(0, 1, 5), (0, 10, 1), (-1, 1, 0), (1, 1, 3)]))
        return f"linspace{args}", (lambda M: M.linspace(*args)), []
    if name == "eye":
        args = draw(st.sampled_from([(3,), (2, 3), (0,), (3, 1)]))
        return f"eye{args}", (lambda M: M.eye(*args)), []
    x = _array(draw, draw(st.sampled_from(DTYPES)), _shape(draw, min_ndim=1))
    if name == "tril":
        k = draw(st.integers(-2, 2))
        return f"tril({k})", (lambda M, x: [M.tril(x, k), M.triu(x, k)]), [x]
    return "zeros_like/ones_like/full_like", (lambda M, x: [M.zeros_like(x), M.ones_like(x),
                                                            M.full_like(x, 2.5)]), [x]


CASES = [case_unary, case_binary, case_operator, case_div_family, case_pow, case_reduction, case_select_reduction,
         case_sorting, case_cumulative, case_softmax, case_shape, case_getitem, case_setitem, case_gather_scatter,
         case_cat_stack, case_where_clamp, case_matmul, case_creation]


# ---------------------------------------------------------------- running and comparing
# the exception types PyTorch raises, and which of tapegrad's count as the same failure
_FAMILIES = (IndexError, TypeError, ValueError, RuntimeError, NotImplementedError)


def _dtype_name(t):
    return str(t.dtype).split(".")[-1]


def _run(M, fn, arrays):
    xs = []
    for a in arrays:
        t = M.tensor(a)
        if a.dtype == np.float64:
            t.requires_grad_(True)
        xs.append(t)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = fn(M, *xs)
    except _FAMILIES as e:
        return xs, e
    return xs, res


def compare(name, fn, arrays):
    """Run ``fn`` in both libraries; assert that they agree (or both raise)."""
    txs, tres = _run(torch, fn, arrays)
    gxs, gres = _run(tg, fn, arrays)
    ctx = f"{name} on {[(a.dtype.name, a.shape) for a in arrays]} {[a.tolist() for a in arrays]}"
    if isinstance(tres, Exception):
        assert isinstance(gres, Exception), f"{ctx}: torch raises {type(tres).__name__}: {tres}, tapegrad doesn't"
        assert same_failure(tres, gres), (f"{ctx}: torch raises {type(tres).__name__}, tapegrad "
                                          f"{type(gres).__name__}: {gres}")
        return
    if isinstance(gres, Exception):
        raise AssertionError(f"{ctx}: tapegrad raises {type(gres).__name__}: {gres}; torch doesn't") from gres
    tout, gout = values(tres), values(gres)
    assert len(tout) == len(gout), f"{ctx}: {len(gout)} results, torch {len(tout)}"
    diff_t, diff_g = [], []
    for i, (a, b) in enumerate(zip(gout, tout)):
        if isinstance(b, torch.Tensor):
            assert isinstance(a, tg.Tensor), f"{ctx}: result {i} is {type(a).__name__}, torch's a Tensor"
            assert _dtype_name(a) == _dtype_name(b), f"{ctx}: result {i} dtype {a.dtype}, torch {b.dtype}"
            av, bv = as_numpy(a), as_numpy(b)
            assert av.shape == bv.shape, f"{ctx}: result {i} shape {av.shape}, torch {bv.shape}"
            tol = 1e-5 if bv.dtype == np.float32 else 1e-12
            np.testing.assert_allclose(av, bv, rtol=tol, atol=tol, equal_nan=True, err_msg=f"{ctx}: result {i}")
            if b.dtype == torch.float64 and b.requires_grad and bv.size:
                assert a.requires_grad, f"{ctx}: result {i} doesn't require grad, torch's does"
                diff_t.append(b)
                diff_g.append(a)
            elif a.requires_grad and bv.size:
                assert b.requires_grad, f"{ctx}: result {i} requires grad, torch's doesn't"
        else:  # a Python number or a list of tensors returned as is
            assert not isinstance(a, tg.Tensor) or a.ndim == 0 or b is None, f"{ctx}: result {i} {a!r} vs {b!r}"
            if isinstance(b, (int, float, bool)):
                assert type(a) is type(b) and (a == b or (math.isnan(a) and math.isnan(b))), f"{ctx}: {a!r} vs {b!r}"
    if not diff_t:
        return
    rng = np.random.default_rng(0)
    cots = [rng.standard_normal(tuple(b.shape)) for b in diff_t]
    leaves = [i for i, a in enumerate(arrays) if a.dtype == np.float64]
    try:
        tg_ = torch.autograd.grad(diff_t, [txs[i] for i in leaves], [torch.tensor(c) for c in cots],
                                  allow_unused=True)
    except RuntimeError:  # no derivative in torch (floor_divide), or torch's own backward fails
        return
    gg_ = tg.autograd.grad(diff_g, [gxs[i] for i in leaves], [tg.tensor(c) for c in cots], allow_unused=True)
    for i, a, b in zip(leaves, gg_, tg_):
        a = np.zeros(arrays[i].shape) if a is None else as_numpy(a)
        b = np.zeros(arrays[i].shape) if b is None or b._is_zerotensor() else as_numpy(b)
        assert a.shape == b.shape, f"{ctx}: gradient {i} shape {a.shape}, torch {b.shape}"
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-9, equal_nan=True, err_msg=f"{ctx}: gradient of input {i}")


@pytest.mark.parametrize("family", CASES, ids=[c.__name__.removeprefix("case_") for c in CASES])
@settings(max_examples=EXAMPLES, derandomize=True, deadline=None, database=None,
          suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_agrees_with_torch(family, data):
    name, fn, arrays = data.draw(st.composite(lambda draw: family(draw))())
    if fn is not None:
        compare(name, fn, arrays)


# ---------------------------------------------------------------- divergences found, pinned
I = np.array([[3, -2, 0], [5, 7, -1]])
I32 = I.astype(np.int32)
BOOLS = np.array([True, False, True])
REGRESSIONS = {
    # float-valued functions of integer/bool tensors are float32 (numpy: float64, float16, or int for expit)
    "float_unary_of_int": (lambda M, x, b: [f(x) for f in (M.exp, M.log1p, M.sin, M.cos, M.tanh, M.sqrt, M.rsqrt,
                                                           M.sigmoid, M.expm1, M.erf)]
                           + [M.exp(b), M.sigmoid(b), M.log(b)], [I32, BOOLS]),
    "bool_sign_square": (lambda M, b: [M.sign(b), M.sgn(b), M.square(b)], [BOOLS]),
    "bool_unary_raises": (lambda M, b: M.abs(b), [BOOLS]),
    "bool_neg_raises": (lambda M, b: -b, [BOOLS]),
    "bool_floor_raises": (lambda M, b: M.floor(b), [BOOLS]),
    "bool_relu_raises": (lambda M, b: M.relu(b), [BOOLS]),
    "int_frac_raises": (lambda M, x: M.frac(x), [I]),
    # & | ^ are bitwise on integers (were logical, giving bool)
    "bitwise_ops": (lambda M, x, y: [x & y, x | 6, 5 ^ x, M.bitwise_and(x, y), x.bitwise_xor(y), True & (x > 0)],
                    [I, I32]),
    "bitwise_on_float_raises": (lambda M, x: M.tensor([1.5]) & x, [I]),
    "bool_xor_int_scalar": (lambda M, b: b ^ 1, [BOOLS]),
    # cumsum/cumprod of int32/bool accumulate in int64, 0-d included
    "cumsum_int64": (lambda M, x, b: [M.cumsum(x, 1), M.cumprod(x, 0), M.cumsum(b, 0), M.cumsum(x[0, 0], 0)],
                     [I32, BOOLS]),
    # subtraction with a bool operand raises (numpy: TypeError, or a silent cast for a bool scalar)
    "sub_bool_scalar_raises": (lambda M, x: x - True, [I.astype(float)]),
    "rsub_bool_tensor_raises": (lambda M, b: 1.5 - b, [BOOLS]),
    # integer floor division by zero raises (numpy: 0 with a warning)
    "int_floor_divide_by_zero": (lambda M, x: x // 0, [I]),
    "int_div_trunc_by_zero": (lambda M, x: M.div(x, M.tensor([1, 0, 2]), rounding_mode="trunc"), [I]),
    "bool_pow_raises": (lambda M, b: b ** b, [BOOLS]),
    "compare_bad_broadcast": (lambda M, x: x == M.zeros(4), [I]),
    "logcumsumexp_int_raises": (lambda M, x: M.logcumsumexp(x, 0), [I]),
    "logcumsumexp_empty": (lambda M, x: M.logcumsumexp(x, 1), [np.zeros((2, 0))]),
    "diff_0d_raises": (lambda M, x: M.diff(x), [np.array(1.0)]),
    "empty_list_index": (lambda M, x: [x[[]], x[[], 0], x[0, []]], [I.astype(float)]),
    "argmax_bool_raises": (lambda M, b: M.argmax(b), [BOOLS]),
    "argmax_empty_indexerror": (lambda M, x: M.argmax(x), [np.zeros((2, 0))]),
}


REGRESSIONS.update({
    # integer ** negative integer: C-style truncation for tensor exponents, an error for a scalar one
    "int_pow_negative": (lambda M, x: [M.pow(x, M.tensor([-1, -2, -1])), M.pow(2, x), M.pow(-1, x)], [I]),
    "int_pow_negative_scalar_raises": (lambda M, x: M.pow(x[:0], -1), [I]),
    # gradients PyTorch defines as 0 (or -inf) where the formula is 0/0 or inf * 0
    "pow_grads_at_zero": (lambda M, x, y: [M.pow(x, y), M.pow(0, y)],
                          [np.array([0.0, 0.0, 2.0]), np.array([0.0, -0.5, 1.0])]),
    "atan2_grad_at_origin": (lambda M, y, x: M.atan2(y, x), [np.zeros(2), np.array([0.0, 1.0])]),
    "std_grad_zero_spread": (lambda M, x: [M.std(x, 1), M.std(x, 0, correction=0)], [np.array([[1.0, 1.0], [2.0, 3.0]])]),
    # addcmul: the tensors set the dtype, value is cast to it
    "addcmul_int_value": (lambda M, x, y: [M.addcmul(x, y, y, value=1.5), M.addcmul(x.double(), y, y, value=-1.0)],
                          [I32, I32]),
    "lerp_mixed_dtypes_raise": (lambda M, x, y: M.lerp(x, y, 0.5), [np.ones(2), np.ones(2, np.float32)]),
    # dim-wise slicing of 0-d tensors raises a RuntimeError; dims of 0-d tensors are range-checked
    "split_0d_raises": (lambda M, x: M.split(x, 1), [np.array(1.0)]),
    "chunk_0d_raises": (lambda M, x: M.chunk(x, 2), [np.array(1.0)]),
    "narrow_0d_raises": (lambda M, x: M.narrow(x, 0, 0, 1), [np.array(1.0)]),
    "tensor_split_0d_raises": (lambda M, x: M.tensor_split(x, 2), [np.array(1.0)]),
    "sort_0d_bad_dim": (lambda M, x: M.sort(x, 1), [np.array(1.0)]),
    "amax_0d_bad_dim": (lambda M, x: M.amax(x, 1), [np.array(1.0)]),
    "flatten_0d_bad_dim": (lambda M, x: M.flatten(x, 1), [np.array(1.0)]),
    "chunk_empty_dim": (lambda M, x: M.chunk(x, 3, 1), [np.zeros((2, 0))]),
    "int_div_by_zero_empty_ok": (lambda M, x: x[:0] // 0, [I]),
})


@pytest.mark.parametrize("name", sorted(REGRESSIONS))
def test_regressions(name):
    fn, arrays = REGRESSIONS[name]
    compare(name, fn, arrays)
