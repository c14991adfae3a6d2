"""More in-place ops (``relu_``, ``exp_``, ``scatter_``, ``index_add_``, ``addcmul_``, ...), the random
fills (``uniform_``, ``normal_``, ``bernoulli_``) and the in-place shape changes (``unsqueeze_``,
``t_``, ...). All go through ``inplace.inplace``: they bump the version counter and are refused
on leaves that require grad while recording."""
from __future__ import annotations

import numpy as np

from .. import random as _random
from .._tape import grad_mode
Tensor = None  # the Tensor class, bound by tensor.py (ops.bind_tensor): the ops sit below it
from . import elementwise as E
from . import activation as A
from . import indexing as I
from . import layout as L
from . import matrix as M
from . import shape as S
from . import special as X
from .inplace import _check_leaf, _replace, inplace


def _unary_(fn, name):
    def method(self):
        return inplace(self, fn, name)
    method.__name__ = name
    return method


relu_ = _unary_(E.relu, "relu_")
exp_ = _unary_(E.exp, "exp_")
log_ = _unary_(E.log, "log_")
sqrt_ = _unary_(E.sqrt, "sqrt_")
abs_ = _unary_(E.abs, "abs_")
neg_ = _unary_(E.neg, "neg_")
sigmoid_ = _unary_(E.sigmoid, "sigmoid_")
tanh_ = _unary_(E.tanh, "tanh_")
sin_ = _unary_(E.sin, "sin_")
cos_ = _unary_(E.cos, "cos_")
floor_ = _unary_(E.floor, "floor_")
round_ = _unary_(E.round, "round_")
reciprocal_ = _unary_(E.reciprocal, "reciprocal_")
square_ = _unary_(E.square, "square_")
sign_ = _unary_(E.sign, "sign_")
log1p_ = _unary_(E.log1p, "log1p_")
expm1_ = _unary_(E.expm1, "expm1_")
rsqrt_ = _unary_(E.rsqrt, "rsqrt_")
silu_ = _unary_(A.silu, "silu_")
frac_ = _unary_(X.frac, "frac_")


def _tensors(*xs):
    return [x for x in xs if isinstance(x, Tensor)]


def pow_(self, exponent):
    return inplace(self, lambda s, *_: E.pow(s, exponent), "pow_", *_tensors(exponent))


def masked_fill_(self, mask, value):
    if mask.ndim > self.ndim or np.broadcast_shapes(mask.shape, self.shape) != tuple(self.shape):
        raise RuntimeError(f"masked_fill_: the mask of shape {tuple(mask.shape)} is not broadcastable to the "
                           f"tensor of shape {tuple(self.shape)}")
    return inplace(self, lambda s, *_: I.masked_fill(s, mask, value), "masked_fill_", *_tensors(value))


def scatter_(self, dim, index, src=None, *, value=None, reduce=None):
    return inplace(self, lambda s, *_: I.scatter(s, dim, index, src, value=value, reduce=reduce), "scatter_",
                   *_tensors(src))


def scatter_add_(self, dim, index, src):
    return inplace(self, lambda s, o: I.scatter_add(s, dim, index, o), "scatter_add_", src)


def index_add_(self, dim, index, source, *, alpha=1):
    return inplace(self, lambda s, o: L.index_add(s, dim, index, o, alpha=alpha), "index_add_", source)


def index_fill_(self, dim, index, value):
    return inplace(self, lambda s, *_: L.index_fill(s, dim, index, value), "index_fill_", *_tensors(value))


def addcmul_(self, tensor1, tensor2, *, value=1):
    return inplace(self, lambda s, a, b: X.addcmul(s, a, b, value=value), "addcmul_", tensor1, tensor2)


def addcdiv_(self, tensor1, tensor2, *, value=1):
    return inplace(self, lambda s, a, b: X.addcdiv(s, a, b, value=value), "addcdiv_", tensor1, tensor2)


def lerp_(self, end, weight):
    return inplace(self, lambda s, e, *_: X.lerp(s, e, weight), "lerp_", end, *_tensors(weight))


def addmm_(self, mat1, mat2, *, beta=1, alpha=1):
    return inplace(self, lambda s, a, b: M.addmm(s, a, b, beta=beta, alpha=alpha), "addmm_", mat1, mat2)


def baddbmm_(self, batch1, batch2, *, beta=1, alpha=1):
    return inplace(self, lambda s, a, b: M.baddbmm(s, a, b, beta=beta, alpha=alpha), "baddbmm_", batch1, batch2)


def nan_to_num_(self, nan=0.0, posinf=None, neginf=None):
    return inplace(self, lambda s: X.nan_to_num(s, nan, posinf, neginf), "nan_to_num_")


def tril_(self, diagonal=0):
    return inplace(self, lambda s: M.tril(s, diagonal), "tril_")


def triu_(self, diagonal=0):
    return inplace(self, lambda s: M.triu(s, diagonal), "triu_")


# ---------------------------------------------------------------- random fills
def _fill_random(self, values: np.ndarray, opname):
    """Overwrite ``self`` with fresh values; while recording, ``self`` gets a zero gradient."""
    if grad_mode.state.enabled and self._requires_grad:
        return inplace(self, lambda s: _replace(s, Tensor._wrap(values)), opname)
    if not self._data.flags.writeable:
        raise RuntimeError(f"{opname}: the tensor is a read-only (expanded) view; clone() it first")
    self._data[...] = values
    self._version[0] += 1
    return self


def _float_self(self, opname):
    if self._data.dtype.kind != "f":
        raise RuntimeError(f"{opname}: expected a floating-point tensor, got {self._data.dtype}")


def uniform_(self, a=0.0, b=1.0, *, generator=None):
    """Fill with draws from U(a, b), from tapegrad's global generator (or ``generator``)."""
    _float_self(self, "uniform_")
    v = _random.rng(generator).uniform(a, b, self.shape).astype(self.dtype)
    return _fill_random(self, v, "uniform_")


def normal_(self, mean=0.0, std=1.0, *, generator=None):
    """Fill with draws from N(mean, std**2)."""
    _float_self(self, "normal_")
    if std < 0:
        raise RuntimeError(f"normal_ expects std >= 0.0, but found std {std}")
    v = (_random.rng(generator).standard_normal(self.shape) * std + mean).astype(self.dtype)
    return _fill_random(self, v, "normal_")


def bernoulli_(self, p=0.5, *, generator=None):
    """Fill with 1 with probability ``p`` (a number or a tensor), else 0."""
    prob = p._data if isinstance(p, Tensor) else p
    v = (_random.rng(generator).random(self.shape) < prob).astype(self.dtype)
    return _fill_random(self, v, "bernoulli_")


def exponential_(self, lambd=1.0, *, generator=None):
    _float_self(self, "exponential_")
    return _fill_random(self, _random.rng(generator).exponential(1 / lambd, self.shape).astype(self.dtype),
                        "exponential_")


def random_(self, from_=0, to=None, *, generator=None):
    lo, hi = (0, from_) if to is None else (from_, to)
    return _fill_random(self, _random.rng(generator).integers(lo, hi, self.shape).astype(self.dtype), "random_")


# ---------------------------------------------------------------- in-place shape changes
def _reshape_inplace(self, fn, opname):
    """Make ``self`` the result of the view op ``fn`` (its data and, while recording, its node)."""
    if not (grad_mode.state.enabled and self._requires_grad):
        self._data = fn(self.detach())._data
        return self
    _check_leaf(self, opname)
    before = Tensor._wrap(self._data)
    before._version, before.grad_fn, before._requires_grad = self._version, self.grad_fn, True
    res = fn(before)
    self._data, self.grad_fn = res._data, res.grad_fn
    return self


def unsqueeze_(self, dim):
    return _reshape_inplace(self, lambda s: S.unsqueeze(s, dim), "unsqueeze_")


def squeeze_(self, dim=None):
    return _reshape_inplace(self, lambda s: S.squeeze(s, dim), "squeeze_")


def t_(self):
    return _reshape_inplace(self, S.t, "t_")


def transpose_(self, dim0, dim1):
    return _reshape_inplace(self, lambda s: S.transpose(s, dim0, dim1), "transpose_")


__all__ = ["relu_", "exp_", "log_", "sqrt_", "abs_", "neg_", "sigmoid_", "tanh_", "sin_", "cos_", "floor_",
           "round_", "reciprocal_", "square_", "sign_", "log1p_", "expm1_", "rsqrt_", "silu_", "frac_", "pow_",
           "masked_fill_", "scatter_", "scatter_add_", "index_add_", "index_fill_", "addcmul_", "addcdiv_",
           "lerp_", "addmm_", "baddbmm_", "nan_to_num_", "tril_", "triu_", "uniform_", "normal_", "bernoulli_",
           "exponential_", "random_", "unsqueeze_", "squeeze_", "t_", "transpose_"]
