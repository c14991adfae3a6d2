"""``torch.nn.utils.prune``: masking parameters to zero, PyTorch's way.

Pruning ``module.<name>`` moves the parameter to ``<name>_orig``, stores a ``<name>_mask``
buffer, and recomputes ``<name> = <name>_mask * <name>_orig`` before every forward (a forward
pre-hook), so gradients reach ``<name>_orig`` only where the mask is 1. Pruning the same
parameter again combines the masks (a :class:`PruningContainer`); :func:`remove` makes the
pruning permanent.

>>> from tapegrad.nn.utils import prune
>>> m = prune.l1_unstructured(tapegrad.nn.Linear(4, 3), "weight", amount=0.5)
>>> int((m.weight == 0).sum())
6
"""
from __future__ import annotations

import numbers
from abc import ABC, abstractmethod
from collections.abc import Iterable

import numpy as np

from ...tensor import Tensor
from ..._tape import grad_mode
from ... import random as _random
from .convert_parameters import parameters_to_vector


def _wrap(a) -> Tensor:
    return Tensor._wrap(np.ascontiguousarray(a))


class BasePruningMethod(ABC):
    """A way of computing masks: subclasses set ``PRUNING_TYPE`` ("unstructured", "structured"
    with a ``dim`` attribute, or "global") and define ``compute_mask(t, default_mask)``; the
    class method ``apply(module, name, ...)`` prunes a module with it."""

    _tensor_name: str

    def __call__(self, module, inputs):
        setattr(module, self._tensor_name, self.apply_mask(module))

    @abstractmethod
    def compute_mask(self, t, default_mask):
        """The new mask (same shape as ``t``) given the importance scores ``t`` and the mask
        already in force, ``default_mask``."""

    def apply_mask(self, module):
        """``<name>_mask * <name>_orig``, recorded on the tape (the gradient reaches ``_orig``)."""
        if getattr(self, "_tensor_name", None) is None:
            raise AssertionError(f"Module {module} has to be pruned")
        orig = getattr(module, self._tensor_name + "_orig")
        mask = getattr(module, self._tensor_name + "_mask")
        return mask.to(orig.dtype) * orig

    @classmethod
    def apply(cls, module, name, *args, importance_scores=None, **kwargs):
        """Prune ``module.<name>`` with a new ``cls(*args, **kwargs)``, combined with any pruning
        already on that parameter; returns the method (or the container holding it)."""
        old = [(k, h) for k, h in module._forward_pre_hooks.items()
               if isinstance(h, BasePruningMethod) and h._tensor_name == name]
        if len(old) > 1:
            raise AssertionError(f"Avoid adding multiple pruning hooks to the same tensor {name} of module {module}. "
                                 f"Use a PruningContainer.")
        old_method = None
        if old:
            k, old_method = old[0]
            del module._forward_pre_hooks[k]
        method = cls(*args, **kwargs)
        method._tensor_name = name
        if old_method is not None:
            container = old_method if isinstance(old_method, PruningContainer) else PruningContainer(old_method)
            container.add_pruning_method(method)
            method = container
        orig = getattr(module, name)
        if importance_scores is not None and tuple(importance_scores.shape) != tuple(orig.shape):
            raise AssertionError(f"importance_scores should have the same shape as parameter {name} of {module}: "
                                 f"{tuple(importance_scores.shape)} vs {tuple(orig.shape)}")
        scores = importance_scores if importance_scores is not None else orig
        if old_method is None:
            module.register_parameter(name + "_orig", orig)
            del module._parameters[name]
            default_mask = _wrap(np.ones(orig.shape, orig._data.dtype))
        else:
            default_mask = _wrap(getattr(module, name + "_mask")._data.copy())
        try:
            with grad_mode.no_grad():
                mask = method.compute_mask(scores.detach(), default_mask=default_mask)
            module.register_buffer(name + "_mask", mask)
            setattr(module, name, method.apply_mask(module))
            module.register_forward_pre_hook(method)
        except Exception:
            if old_method is None:  # leave the module as it was
                orig = getattr(module, name + "_orig")
                del module._parameters[name + "_orig"]
                module.register_parameter(name, orig)
            raise
        return method

    def prune(self, t, default_mask=None, importance_scores=None):
        """``t`` times the mask computed from ``importance_scores`` (``t`` itself by default)."""
        scores = importance_scores if importance_scores is not None else t
        if default_mask is None:
            default_mask = _wrap(np.ones(t.shape, t._data.dtype))
        return t * self.compute_mask(scores, default_mask=default_mask)

    def remove(self, module):
        """Make the pruning permanent: ``<name>`` becomes a plain parameter holding the masked
        values; ``<name>_orig`` and ``<name>_mask`` go away."""
        if getattr(self, "_tensor_name", None) is None:
            raise AssertionError(f"Module {module} has to be pruned before pruning can be removed")
        with grad_mode.no_grad():
            weight = self.apply_mask(module)
        if self._tensor_name in module.__dict__:
            delattr(module, self._tensor_name)
        orig = module._parameters.pop(self._tensor_name + "_orig")
        orig._data[...] = weight._data  # the same Parameter object, so optimizers holding it keep working
        orig._bump_version()
        del module._buffers[self._tensor_name + "_mask"]
        setattr(module, self._tensor_name, orig)


class PruningContainer(BasePruningMethod):
    """The history of the pruning methods applied to one parameter; its mask is the last method's,
    computed on what the previous masks left."""

    def __init__(self, *args):
        self._pruning_methods: tuple = ()
        if len(args) == 1 and not isinstance(args[0], Iterable):
            self._tensor_name = args[0]._tensor_name
            self.add_pruning_method(args[0])
        else:
            if len(args) == 1:
                args = tuple(args[0])
            for m in args:
                if getattr(self, "_tensor_name", None) is None:
                    self._tensor_name = m._tensor_name
                self.add_pruning_method(m)

    def add_pruning_method(self, method):
        """Append ``method`` (for the same parameter) to the history."""
        if method is not None and not isinstance(method, BasePruningMethod):
            raise TypeError(f"{type(method)} is not a BasePruningMethod subclass")
        if method is not None and getattr(self, "_tensor_name", None) != method._tensor_name:
            raise ValueError(f"Can only add pruning methods acting on the parameter named '{self._tensor_name}' to "
                             f"PruningContainer. Found '{method._tensor_name}'")
        self._pruning_methods += (method,)

    def __len__(self):
        return len(self._pruning_methods)

    def __iter__(self):
        return iter(self._pruning_methods)

    def __getitem__(self, idx):
        return self._pruning_methods[idx]

    def compute_mask(self, t, default_mask):
        """The last method's mask, computed only on the entries (unstructured) or channels
        (structured) that ``default_mask`` still keeps, and written into a copy of it."""
        method = self._pruning_methods[-1]
        new_mask = _wrap(default_mask._data.astype(t._data.dtype))
        kind = method.PRUNING_TYPE
        if kind == "unstructured":
            slc = default_mask == 1
        elif kind == "structured":
            if not hasattr(method, "dim"):
                raise AttributeError("Pruning methods of PRUNING_TYPE 'structured' need to have the attribute `dim` "
                                     "defined.")
            dim = method.dim + t.ndim if method.dim < 0 else method.dim
            if dim < 0:
                raise IndexError(f"Index is out of bounds for tensor of size {tuple(t.shape)}")
            keep = default_mask._data.sum(axis=tuple(d for d in range(t.ndim) if d != dim)) != 0
            slc = tuple(_wrap(keep) if d == dim else slice(None) for d in range(t.ndim))
        elif kind == "global":
            slc = (slice(None),) * t.ndim
        else:
            raise ValueError(f"Unrecognized PRUNING_TYPE {kind}")
        partial = method.compute_mask(t[slc], default_mask=default_mask[slc])
        new_mask[slc] = partial.to(new_mask.dtype)
        return new_mask


class Identity(BasePruningMethod):
    """Prunes nothing: the mask is all ones (for code that expects every parameter pruned)."""

    PRUNING_TYPE = "unstructured"

    def compute_mask(self, t, default_mask):
        """``default_mask`` unchanged."""
        return default_mask

    @classmethod
    def apply(cls, module, name):
        """Install the identity pruning on ``module.<name>``."""
        return super().apply(module, name)


def _validate_amount_init(amount):
    if not isinstance(amount, numbers.Real) or isinstance(amount, bool):
        raise TypeError(f"Invalid type for amount: {amount}. Must be int or float.")
    if (isinstance(amount, numbers.Integral) and amount < 0) or (
            not isinstance(amount, numbers.Integral) and not 0.0 <= float(amount) <= 1.0):
        raise ValueError(f"amount={amount} should either be a float in the range [0, 1] or a non-negative integer")


def _nparams_toprune(amount, size):
    if isinstance(amount, numbers.Integral):
        if amount > size:
            raise ValueError(f"amount={amount} should be smaller than the number of parameters to prune={size}")
        return int(amount)
    return round(amount * size)


def _structured_dim(t, dim):
    if t.ndim <= 1:
        raise ValueError(f"Structured pruning can only be applied to multidimensional tensors. Found tensor of shape "
                         f"{tuple(t.shape)} with {t.ndim} dims")
    if dim >= t.ndim or dim < -t.ndim:
        raise IndexError(f"Invalid index {dim} for tensor of size {tuple(t.shape)}")
    return dim % t.ndim


def _channel_mask(t, default_mask, dim, keep):
    """A mask of ones on the channels ``keep`` (indices or booleans along ``dim``), zeros elsewhere,
    times ``default_mask``."""
    m = np.zeros(t.shape, t._data.dtype)
    idx = [slice(None)] * t.ndim
    idx[dim] = keep
    m[tuple(idx)] = 1
    return _wrap(m * default_mask._data.astype(m.dtype))


class RandomUnstructured(BasePruningMethod):
    """Zero ``amount`` entries (a fraction in [0, 1] or a count) chosen uniformly at random."""

    PRUNING_TYPE = "unstructured"

    def __init__(self, amount):
        _validate_amount_init(amount)
        self.amount = amount

    def compute_mask(self, t, default_mask):
        """``default_mask`` with ``amount`` more random entries of ``t`` set to 0."""
        k = _nparams_toprune(self.amount, t.numel())
        mask = default_mask._data.copy()
        if k:
            prob = _random.rng().random(t.numel())
            mask.reshape(-1)[np.argsort(-prob, kind="stable")[:k]] = 0
        return _wrap(mask)

    @classmethod
    def apply(cls, module, name, amount):
        """Prune ``module.<name>`` at random."""
        return super().apply(module, name, amount=amount)


class L1Unstructured(BasePruningMethod):
    """Zero the ``amount`` entries of smallest magnitude (a fraction in [0, 1] or a count)."""

    PRUNING_TYPE = "unstructured"

    def __init__(self, amount):
        _validate_amount_init(amount)
        self.amount = amount

    def compute_mask(self, t, default_mask):
        """``default_mask`` with the ``amount`` smallest ``|t|`` entries set to 0."""
        k = _nparams_toprune(self.amount, t.numel())
        mask = default_mask._data.copy()
        if k:
            mask.reshape(-1)[np.argsort(np.abs(t._data).reshape(-1), kind="stable")[:k]] = 0
        return _wrap(mask)

    @classmethod
    def apply(cls, module, name, amount, importance_scores=None):
        """Prune ``module.<name>`` by magnitude (of ``importance_scores`` if given)."""
        return super().apply(module, name, amount=amount, importance_scores=importance_scores)


class RandomStructured(BasePruningMethod):
    """Zero ``amount`` whole channels along ``dim``, chosen uniformly at random."""

    PRUNING_TYPE = "structured"

    def __init__(self, amount, dim=-1):
        _validate_amount_init(amount)
        self.amount = amount
        self.dim = dim

    def compute_mask(self, t, default_mask):
        """``default_mask`` times a mask with ``amount`` random channels of ``dim`` zeroed."""
        dim = _structured_dim(t, self.dim)
        n = t.shape[dim]
        k = _nparams_toprune(self.amount, n)
        if k == 0:
            return default_mask
        keep = np.ones(n, bool)
        keep[_random.rng().permutation(n)[:k]] = False
        return _channel_mask(t, default_mask, dim, keep)

    @classmethod
    def apply(cls, module, name, amount, dim=-1):
        """Prune random channels of ``module.<name>``."""
        return super().apply(module, name, amount=amount, dim=dim)


class LnStructured(BasePruningMethod):
    """Zero the ``amount`` channels along ``dim`` of smallest L``n`` norm."""

    PRUNING_TYPE = "structured"

    def __init__(self, amount, n, dim=-1):
        _validate_amount_init(amount)
        self.amount = amount
        self.n = n
        self.dim = dim

    def compute_mask(self, t, default_mask):
        """``default_mask`` times a mask keeping the channels of largest norm."""
        dim = _structured_dim(t, self.dim)
        size = t.shape[dim]
        k = _nparams_toprune(self.amount, size)
        if k == 0:
            return default_mask
        a = np.moveaxis(t._data, dim, 0).reshape(size, -1).astype(np.float64)
        ord_ = self.n
        if ord_ in ("fro", None):
            ord_ = 2
        elif ord_ == "nuc":
            raise ValueError("LnStructured: the nuclear norm has no per-channel meaning; use n=1, 2, inf, ...")
        norms = np.linalg.norm(a, ord=float(ord_), axis=1) if a.shape[1] else np.zeros(size)
        keep = np.argsort(-norms, kind="stable")[:size - k]
        return _channel_mask(t, default_mask, dim, keep)

    @classmethod
    def apply(cls, module, name, amount, n, dim, importance_scores=None):
        """Prune the channels of ``module.<name>`` with the smallest norms."""
        return super().apply(module, name, amount=amount, n=n, dim=dim, importance_scores=importance_scores)


class CustomFromMask(BasePruningMethod):
    """Prune with a mask given by the caller (combined with the mask already in force)."""

    PRUNING_TYPE = "global"

    def __init__(self, mask):
        self.mask = mask

    def compute_mask(self, t, default_mask):
        """``default_mask * mask``."""
        if tuple(default_mask.shape) != tuple(self.mask.shape):
            raise AssertionError(f"custom_from_mask: the mask's shape {tuple(self.mask.shape)} differs from the "
                                 f"parameter's {tuple(default_mask.shape)}")
        m = self.mask._data if isinstance(self.mask, Tensor) else np.asarray(self.mask)
        return _wrap(default_mask._data * m.astype(default_mask._data.dtype))

    @classmethod
    def apply(cls, module, name, mask):
        """Prune ``module.<name>`` with ``mask``."""
        return super().apply(module, name, mask=mask)


def identity(module, name):
    """Install :class:`Identity` pruning on ``module.<name>`` (mask of ones); returns ``module``."""
    Identity.apply(module, name)
    return module


def random_unstructured(module, name, amount):
    """Zero ``amount`` random entries of ``module.<name>``; returns ``module``."""
    RandomUnstructured.apply(module, name, amount)
    return module


def l1_unstructured(module, name, amount, importance_scores=None):
    """Zero the ``amount`` entries of ``module.<name>`` of smallest magnitude; returns ``module``."""
    L1Unstructured.apply(module, name, amount=amount, importance_scores=importance_scores)
    return module


def random_structured(module, name, amount, dim):
    """Zero ``amount`` random channels along ``dim`` of ``module.<name>``; returns ``module``."""
    RandomStructured.apply(module, name, amount, dim)
    return module


def ln_structured(module, name, amount, n, dim, importance_scores=None):
    """Zero the ``amount`` channels along ``dim`` of smallest L``n`` norm; returns ``module``."""
    LnStructured.apply(module, name, amount, n, dim, importance_scores=importance_scores)
    return module


def global_unstructured(parameters, pruning_method, importance_scores=None, **kwargs):
    """Prune the ``(module, name)`` pairs of ``parameters`` together, as one flat vector (e.g. the
    20% smallest weights of the whole network with ``pruning_method=L1Unstructured, amount=0.2``).

    >>> prune.global_unstructured([(m1, "weight"), (m2, "weight")], prune.L1Unstructured, amount=0.2)
    """
    if not isinstance(parameters, Iterable):
        raise TypeError("global_unstructured(): parameters is not an Iterable")
    parameters = list(parameters)
    importance_scores = importance_scores if importance_scores is not None else {}
    if not isinstance(importance_scores, dict):
        raise TypeError("global_unstructured(): importance_scores must be of type dict")
    with grad_mode.no_grad():
        scores = parameters_to_vector([importance_scores.get((m, n), getattr(m, n)) for m, n in parameters])
        default_mask = parameters_to_vector([getattr(m, n + "_mask", None) if hasattr(m, n + "_mask")
                                             else _wrap(np.ones(getattr(m, n).shape, getattr(m, n)._data.dtype))
                                             for m, n in parameters])
    method = pruning_method(**kwargs)
    method._tensor_name = "temp"
    if method.PRUNING_TYPE != "unstructured":
        raise TypeError(f'Only "unstructured" PRUNING_TYPE supported for the `pruning_method`. Found method '
                        f'{pruning_method} of type {method.PRUNING_TYPE}')
    container = PruningContainer(method)
    final = container.compute_mask(scores, default_mask)._data
    start = 0
    for m, n in parameters:
        p = getattr(m, n)
        custom_from_mask(m, n, mask=_wrap(final[start:start + p.numel()].reshape(p.shape)))
        start += p.numel()


def custom_from_mask(module, name, mask):
    """Prune ``module.<name>`` with the caller's ``mask``; returns ``module``."""
    CustomFromMask.apply(module, name, mask)
    return module


def remove(module, name):
    """Make the pruning of ``module.<name>`` permanent (see :meth:`BasePruningMethod.remove`)."""
    for k, hook in list(module._forward_pre_hooks.items()):
        if isinstance(hook, BasePruningMethod) and hook._tensor_name == name:
            hook.remove(module)
            del module._forward_pre_hooks[k]
            return module
    raise ValueError(f"Parameter '{name}' of module {module} has to be pruned before pruning can be removed")


def is_pruned(module) -> bool:
    """Whether ``module`` or any submodule carries a pruning hook."""
    return any(isinstance(h, BasePruningMethod) for m in module.modules() for h in m._forward_pre_hooks.values())


__all__ = ["BasePruningMethod", "PruningContainer", "Identity", "RandomUnstructured", "L1Unstructured",
           "RandomStructured", "LnStructured", "CustomFromMask", "identity", "random_unstructured", "l1_unstructured",
           "random_structured", "ln_structured", "global_unstructured", "custom_from_mask", "remove", "is_pruned"]
