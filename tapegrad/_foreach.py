"""``torch._foreach_*``: one op applied to each tensor of a list (PyTorch's multi-tensor kernels,
which its optimizers and optimizer libraries written against them call: ``_foreach_mul_``,
``_foreach_addcmul_``, ``_foreach_lerp_``, ``_foreach_norm``, ...).

Here each is the per-tensor op in a loop: the same values, autograd through the out-of-place
forms (each element is an ordinary recorded op), version counters through the in-place ones. The
second operand may be, as in PyTorch, a number, a list of numbers (one per tensor), a list of
tensors (paired), or a single tensor (a scalar tensor used for every element). Out-of-place forms
return a tuple; in-place forms update the tensors and return the list.
"""
from __future__ import annotations

import numbers

from . import ops as _ops
from .linalg import vector_norm as _vector_norm
from .tensor import Tensor

__all__: list = []  # filled below: every name is torch._foreach_<op>[_]


def _check(name, self, *others):
    if not isinstance(self, (list, tuple)) or not self:
        raise RuntimeError(f"{name}: Tensor list must have at least one tensor.")
    for o in others:
        if isinstance(o, (list, tuple)) and len(o) != len(self):
            kind = "tensors" if o and isinstance(o[0], Tensor) else "scalar"
            if kind == "tensors":
                raise RuntimeError(f"{name}: Tensor lists must have the same number of tensors, got {len(self)} and "
                                   f"{len(o)}")
            raise RuntimeError(f"{name}: Tensor list must have same number of elements as scalar list.")


def _each(other, n):
    """The second operand for each of n tensors: a list as it is, anything else repeated."""
    return other if isinstance(other, (list, tuple)) else [other] * n


def _binary(name, fn, fn_, with_alpha=False):
    """_foreach_<name> and _foreach_<name>_ from the per-tensor op ``fn`` and its in-place ``fn_``."""
    def out_of_place(self, other, **kw):
        _check(f"_foreach_{name}", self, other)
        alpha = kw.get("alpha", 1)
        if with_alpha and alpha != 1:
            return tuple(fn(t, o, alpha=alpha) for t, o in zip(self, _each(other, len(self))))
        return tuple(fn(t, o) for t, o in zip(self, _each(other, len(self))))

    def in_place(self, other, **kw):
        _check(f"_foreach_{name}_", self, other)
        alpha = kw.get("alpha", 1)
        for t, o in zip(self, _each(other, len(self))):
            if with_alpha and alpha != 1:
                fn_(t, o, alpha=alpha)
            else:
                fn_(t, o)
        return self
    return out_of_place, in_place


def _unary(name, fn, fn_):
    def out_of_place(self):
        _check(f"_foreach_{name}", self)
        return tuple(fn(t) for t in self)

    def in_place(self):
        _check(f"_foreach_{name}_", self)
        for t in self:
            fn_(t)
        return self
    return out_of_place, in_place


def _ternary(name, fn, fn_):
    """addcmul / addcdiv: ``value`` a number, a list of numbers or a 1-D tensor of them."""
    def values(self, value):
        if isinstance(value, Tensor):
            if value.dim() != 1 or value.numel() != len(self):
                raise RuntimeError(f"_foreach_{name}: the scalars tensor must be 1-D with one value per tensor, got "
                                   f"shape {tuple(value.shape)} for {len(self)} tensors")
            return value.tolist()
        return _each(value, len(self))

    def out_of_place(self, tensor1, tensor2, value=1):
        _check(f"_foreach_{name}", self, tensor1, tensor2, value)
        return tuple(fn(t, a, b, value=v) for t, a, b, v in zip(self, tensor1, tensor2, values(self, value)))

    def in_place(self, tensor1, tensor2, value=1):
        _check(f"_foreach_{name}_", self, tensor1, tensor2, value)
        for t, a, b, v in zip(self, tensor1, tensor2, values(self, value)):
            fn_(t, a, b, value=v)
        return self
    return out_of_place, in_place


def _define(name, pair):
    globals()[f"_foreach_{name}"], globals()[f"_foreach_{name}_"] = pair
    pair[0].__name__, pair[1].__name__ = f"_foreach_{name}", f"_foreach_{name}_"
    pair[0].__doc__ = f"``{name}`` of each tensor (a tuple of new tensors)."
    pair[1].__doc__ = f"``{name}_`` on each tensor, in place."
    __all__.extend([f"_foreach_{name}", f"_foreach_{name}_"])


for _name in ("add", "sub"):
    _define(_name, _binary(_name, getattr(_ops, _name), getattr(Tensor, _name + "_"), with_alpha=True))
for _name in ("mul", "div"):
    _define(_name, _binary(_name, getattr(_ops, _name), getattr(Tensor, _name + "_")))
for _name, _fn in (("maximum", _ops.maximum), ("minimum", _ops.minimum)):
    _define(_name, _binary(_name, _fn, lambda t, o, f=_fn: t.copy_(f(t, o))))
_define("clamp_min", _binary("clamp_min", lambda t, o: _ops.clamp(t, min=o), lambda t, o: t.clamp_(min=o)))
_define("clamp_max", _binary("clamp_max", lambda t, o: _ops.clamp(t, max=o), lambda t, o: t.clamp_(max=o)))
_pow_of_tensors, _pow_in_place = _binary("pow", _ops.pow, Tensor.pow_)


def _pow(self, exponent):
    """(also PyTorch's ``_foreach_pow(Number self, TensorList exponent)``: the number to each power)"""
    if isinstance(self, numbers.Number):
        _check("_foreach_pow", exponent)
        return tuple(_ops.pow(self, e) for e in exponent)
    return _pow_of_tensors(self, exponent)


_define("pow", (_pow, _pow_in_place))
_define("addcmul", _ternary("addcmul", _ops.addcmul, Tensor.addcmul_))
_define("addcdiv", _ternary("addcdiv", _ops.addcdiv, Tensor.addcdiv_))
for _name in ("abs", "acos", "asin", "atan", "ceil", "cos", "cosh", "erf", "erfc", "exp", "expm1", "floor", "frac",
              "lgamma", "log", "log10", "log1p", "log2", "neg", "reciprocal", "round", "rsqrt", "sigmoid", "sign",
              "sin", "sinh", "sqrt", "tan", "tanh", "trunc"):
    _define(_name, _unary(_name, getattr(_ops, _name), getattr(Tensor, _name + "_")))


def _foreach_lerp(self, tensors1, weight):
    """``lerp`` of each tensor towards ``tensors1`` by ``weight`` (a number, a list of numbers or a
    list of tensors)."""
    _check("_foreach_lerp", self, tensors1, weight)
    return tuple(_ops.lerp(t, e, w) for t, e, w in zip(self, tensors1, _each(weight, len(self))))


def _foreach_lerp_(self, tensors1, weight):
    """``lerp_`` on each tensor, in place."""
    _check("_foreach_lerp_", self, tensors1, weight)
    for t, e, w in zip(self, tensors1, _each(weight, len(self))):
        t.lerp_(e, w)
    return self


def _foreach_norm(self, ord=2, dtype=None):  # noqa: A002  (PyTorch's name)
    """The vector ``ord``-norm of each tensor (0-d tensors), in ``dtype`` if given."""
    _check("_foreach_norm", self)
    return tuple(_vector_norm(t, ord, dtype=dtype) for t in self)


def _foreach_powsum(self, ord=2, dtype=None):  # noqa: A002
    """The sum of |x|**ord of each tensor (0-d tensors)."""
    _check("_foreach_powsum", self)
    return tuple(_ops.sum(_ops.pow(_ops.abs(t if dtype is None else t.to(dtype)), ord)) for t in self)


def _foreach_max(self):
    """The largest element of each tensor (0-d tensors)."""
    _check("_foreach_max", self)
    return tuple(_ops.max(t) for t in self)


def _foreach_clone(self):
    _check("_foreach_clone", self)
    return tuple(_ops.clone(t) for t in self)


def _foreach_copy_(self, src, non_blocking=False):
    """Each tensor overwritten by its partner in ``src``."""
    _check("_foreach_copy_", self, src)
    for t, s in zip(self, src):
        t.copy_(s)
    return self


def _foreach_zero_(self):
    _check("_foreach_zero_", self)
    for t in self:
        t.zero_()
    return self


def _foreach_mm(self, mat2):
    """``mm`` of each pair."""
    _check("_foreach_mm", self, mat2)
    return tuple(_ops.mm(a, b) for a, b in zip(self, mat2))


__all__ += ["_foreach_lerp", "_foreach_lerp_", "_foreach_norm", "_foreach_powsum", "_foreach_max", "_foreach_clone",
            "_foreach_copy_", "_foreach_zero_", "_foreach_mm"]
