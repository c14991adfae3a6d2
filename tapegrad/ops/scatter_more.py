"""``scatter_reduce`` (sum, prod, mean, amax, amin; ``include_self``) and ``masked_scatter``,
with PyTorch's forwards and gradients (``FunctionsManual.cpp``: ``scatter_reduce_backward``)."""
from __future__ import annotations

import numpy as np

Tensor = None  # the Tensor class, bound by tensor.py (ops.bind_tensor): the ops sit below it
from .._tape.registry import apply, defop
from .indexing import _along, _gather, _region, _scatter_add, _scatter_args, _src_grad
from .elementwise import where
from ._util import const

_UFUNC = {"sum": np.add, "mean": np.add, "prod": np.multiply, "amax": np.maximum, "amin": np.minimum}


def _identity(reduce, dtype):
    if reduce in ("sum", "mean"):
        return 0
    if reduce == "prod":
        return 1
    big = np.inf if dtype.kind == "f" else np.iinfo(dtype).max
    return -big if reduce == "amax" else big


def _hit(shape, dim, index):
    """Where the scatter writes (bool, ``shape``)."""
    hit = np.zeros(shape, dtype=bool)
    hit[_along(index, dim)] = True
    return hit


def _counts(shape, dim, index, include_self):
    """The number of values reduced into each position (1 where nothing lands, as PyTorch divides)."""
    count = np.full(shape, 1 if include_self else 0, dtype=np.int64)
    np.add.at(count, _along(index, dim), 1)
    count[count == 0] = 1
    return count


def _scatter_reduce_fwd(x, src, dim, index, reduce, include_self):
    out = x.copy()
    where_ = _along(index, dim)
    if not include_self:
        out[where_] = _identity(reduce, x.dtype)
    _UFUNC[reduce].at(out, where_, src[_region(index.shape)])
    if reduce == "mean":
        count = _counts(x.shape, dim, index, include_self)
        out = out / count if out.dtype.kind == "f" else out // count
    return out.astype(x.dtype, copy=False)


def _not_hit(g, dim, index, include_self):
    """The self gradient is zero where ``include_self=False`` replaced self."""
    return g if include_self else where(Tensor._wrap(_hit(g.shape, dim, index)), const(0, g.dtype), g)


def _self_vjp(g, out, x, src, dim, index, reduce, include_self):
    if reduce == "sum":
        gs = g
    elif reduce == "mean":
        gs = g / const(_counts(x.shape, dim, index, include_self), g.dtype)
    elif reduce == "prod":  # the product of the others, exact where self is 0
        masked = where(x == 0, const(1, x.dtype), x)
        gs = g * scatter_reduce(masked, dim, Tensor._wrap(index), src, "prod", include_self=include_self) / masked
    else:
        gs = _extremum_grads(g, out, x, src, dim, index)[0]
    return _not_hit(gs, dim, index, include_self)


def _src_vjp(g, out, x, src, dim, index, reduce, include_self):
    if reduce == "sum":
        return _src_grad(g, src, dim, index)
    if reduce == "mean":
        return _src_grad(g / const(_counts(x.shape, dim, index, include_self), g.dtype), src, dim, index)
    if reduce == "prod":
        return _prod_src_grad(g, out, x, src, dim, index, include_self)
    return _pad_src(_extremum_grads(g, out, x, src, dim, index)[1], src, index)


def _pad_src(got, src, index):
    from .shape import pad
    if tuple(src.shape) == index.shape:
        return got
    return pad(got, tuple(w for n, k in reversed(list(zip(src.shape, index.shape))) for w in (0, n - k)))


def _extremum_grads(g, out, x, src, dim, index):
    """amax/amin: the gradient is shared evenly among self and src entries equal to the result."""
    s = src[_region(index.shape)] if tuple(src.shape) != index.shape else src
    value = apply(_gather, out, dim=dim, index=index)
    self_is = (x == out).to(g.dtype)
    src_is = (s == value).to(g.dtype)
    n = apply(_scatter_add, self_is, src_is, dim=dim, index=index)
    share = g / n
    return self_is * share, src_is * apply(_gather, share, dim=dim, index=index)


def _prod_src_grad(g, out, x, src, dim, index, include_self):
    """PyTorch's: ``g * result / src`` gathered, with a lone zero in a group handled exactly."""
    s = src[_region(index.shape)] if tuple(src.shape) != index.shape else src
    zero = s == 0
    zeros_here = np.zeros(x.shape, np.int64)
    np.add.at(zeros_here, _along(index, dim), zero._data)
    single = Tensor._wrap(zero._data & (zeros_here[_along(index, dim)] == 1))
    masked_src = where(single, const(1, s.dtype), s)
    masked_result = scatter_reduce(x, dim, Tensor._wrap(index), masked_src, "prod", include_self=include_self)
    got = where(single, apply(_gather, g * masked_result, dim=dim, index=index),
                apply(_gather, g * out, dim=dim, index=index) / where(zero, const(1, s.dtype), s))
    return _pad_src(got, src, index)


_scatter_reduce = defop("scatter_reduce", _scatter_reduce_fwd, _self_vjp, _src_vjp, saves_output=True)


def scatter_reduce(input, dim, index, src, reduce, *, include_self=True):
    """Reduce ``src`` into ``input`` at ``index`` along ``dim`` with 'sum', 'prod', 'mean', 'amax'
    or 'amin'; ``include_self=False`` leaves ``input``'s value out where something is scattered.

    >>> tapegrad.tensor([1., 2., 3.]).scatter_reduce(0, tapegrad.tensor([0, 0, 2]), tapegrad.tensor([5., 7., 1.]), "amax")
    tensor([7., 2., 3.])
    """
    reduce = {"max": "amax", "min": "amin"}.get(reduce, reduce)  # PyTorch accepts these spellings too
    if reduce not in _UFUNC:
        raise RuntimeError(f"scatter_reduce(): reduce argument must be either sum, prod, mean, amax or amin, got "
                           f"{reduce!r}")
    if not isinstance(src, Tensor):
        raise TypeError(f"scatter_reduce(): src must be a Tensor, got {type(src).__name__}")
    src, d, idx = _scatter_args(input, dim, index, src, "scatter_reduce")
    return apply(_scatter_reduce, input, src, dim=d, index=idx, reduce=reduce, include_self=bool(include_self))


# ---------------------------------------------------------------- masked_scatter
def _masked_scatter_fwd(x, source, mask):
    out = x.copy()
    m = np.broadcast_to(mask, x.shape)
    out[m] = source.reshape(-1)[:int(m.sum())]
    return out


def _masked_scatter_source_vjp(g, source, mask):
    from .layout import masked_select
    from .shape import pad
    got = masked_select(g, Tensor._wrap(np.broadcast_to(mask, g.shape)))
    return pad(got, (0, int(np.prod(source.shape)) - got.numel())).reshape(tuple(source.shape))


_masked_scatter = defop("masked_scatter", _masked_scatter_fwd,
                        lambda g, out, x, source, mask: where(Tensor._wrap(mask), const(0, g.dtype), g),
                        lambda g, out, x, source, mask: _masked_scatter_source_vjp(g, source, mask), saves=())


def masked_scatter(input, mask, source):
    """``input`` with the positions where ``mask`` holds filled, in order, from ``source``'s elements.

    >>> tapegrad.zeros(4).masked_scatter(tapegrad.tensor([True, False, True, False]), tapegrad.tensor([1., 2.]))
    tensor([1., 0., 2., 0.])
    """
    if not isinstance(mask, Tensor) or mask._data.dtype != np.bool_:
        raise RuntimeError(f"masked_scatter_: expected BoolTensor for mask, got "
                           f"{mask.dtype if isinstance(mask, Tensor) else type(mask).__name__}")
    try:
        m = np.broadcast_to(mask._data, tuple(input.shape))
    except ValueError:
        raise RuntimeError(f"masked_scatter: the mask of shape {tuple(mask.shape)} is not broadcastable to the input "
                           f"of shape {tuple(input.shape)}") from None
    if source._data.dtype != input._data.dtype:
        raise RuntimeError(f"masked_scatter_: expected self and source to have same dtypes but got "
                           f"{input.dtype} and {source.dtype}")
    if int(m.sum()) > source.numel():
        raise RuntimeError(f"masked_scatter: Number of elements of source < number of ones in mask "
                           f"({source.numel()} < {int(m.sum())})")
    return apply(_masked_scatter, input, source, mask=np.ascontiguousarray(m))


def _inplace(fn, name):
    from .composite import _inplace_of
    return _inplace_of(fn, name)


def scatter_reduce_(self, dim, index, src, reduce, *, include_self=True):
    return _inplace(lambda s, t: scatter_reduce(s, dim, index, t, reduce, include_self=include_self),
                    "scatter_reduce_")(self, src)


def masked_scatter_(self, mask, source):
    return _inplace(lambda s, t: masked_scatter(s, mask, t), "masked_scatter_")(self, source)


__all__ = ["scatter_reduce", "masked_scatter", "scatter_reduce_", "masked_scatter_"]
