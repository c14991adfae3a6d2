"""The base class and helpers shared by the distributions (``torch.distributions.Distribution``)."""
from __future__ import annotations

import math
from numbers import Number

import numpy as np

from .. import _dtype
from .._compat import Size
from .._tape import grad_mode
from ..tensor import Tensor
from . import constraints
from .. import ops
from ..ops.creation import normal_samples, tensor
from ..random import rng

__all__ = ["Distribution"]


class lazy_property:  # noqa: N801
    """Computed on first access, then kept on the instance (``probs`` from ``logits`` and back)."""

    def __init__(self, wrapped):
        self.wrapped = wrapped
        self.__doc__ = wrapped.__doc__

    def __get__(self, instance, obj_type=None):
        if instance is None:
            return self
        with grad_mode.enable_grad():
            value = self.wrapped(instance)
        instance.__dict__[self.wrapped.__name__] = value
        return value


def broadcast_all(*values):
    """Tensors broadcast to one shape; numbers become tensors of the first tensor's dtype (or the
    default dtype)."""
    if not all(isinstance(v, (Tensor, Number)) for v in values):
        raise ValueError("Input arguments must all be instances of numbers.Number or tapegrad.Tensor.")
    dtype = next((v.dtype for v in values if isinstance(v, Tensor)), _dtype.default_float())
    ts = [v if isinstance(v, Tensor) else tensor(v, dtype=dtype) for v in values]
    return tuple(ops.broadcast_tensors(*ts))


def _sum_rightmost(value, dim: int):
    return value if dim == 0 else value.reshape(value.shape[:value.ndim - dim] + (-1,)).sum(-1)


def _standard_normal(shape, dtype):
    return Tensor._wrap(normal_samples(rng(), tuple(shape), _dtype.to_dtype(dtype)))


def _uniform(shape, dtype):
    return Tensor._wrap(rng().random(tuple(shape)).astype(dtype, copy=False))


def clamp_probs(probs):
    eps = float(np.finfo(probs.dtype).eps)
    return probs.clamp(min=eps, max=1 - eps)


def probs_to_logits(probs, is_binary=False):
    ps = clamp_probs(probs)
    return ps.log() - ps.neg().log1p() if is_binary else ps.log()


def logits_to_probs(logits, is_binary=False):
    return logits.sigmoid() if is_binary else logits.softmax(-1)


LOG_SQRT_2PI = math.log(math.sqrt(2 * math.pi))


class Distribution:
    """``batch_shape`` (independent, not identically distributed draws) and ``event_shape`` (one
    draw), ``sample`` / ``rsample`` (differentiable, where ``has_rsample``), ``log_prob``,
    ``entropy``, ``mean``, ``variance``, ``stddev``. With ``validate_args`` (on by default, as
    PyTorch's under ``__debug__``) parameters and ``log_prob``'s values are checked against
    ``arg_constraints`` and ``support``, raising ``ValueError`` with PyTorch's messages."""

    has_rsample = False
    has_enumerate_support = False
    _validate_args = __debug__
    arg_constraints: dict = {}
    support = None

    @staticmethod
    def set_default_validate_args(value: bool) -> None:
        """Turn argument validation on or off for distributions made from now on (on by default)."""
        if value not in (True, False):
            raise ValueError
        Distribution._validate_args = value

    def __init__(self, batch_shape=(), event_shape=(), validate_args=None):
        self._batch_shape = Size(batch_shape)
        self._event_shape = Size(event_shape)
        if validate_args is not None:
            self._validate_args = validate_args
        if self._validate_args:
            for param, constraint in self.arg_constraints.items():
                if constraints.is_dependent(constraint):
                    continue
                if param not in self.__dict__ and isinstance(getattr(type(self), param, None), lazy_property):
                    continue  # skip the parameter that was not given (probs vs logits)
                value = getattr(self, param)
                if not bool(constraint.check(value).all()):
                    raise ValueError(f"Expected parameter {param} ({type(value).__name__} of shape "
                                     f"{tuple(value.shape)}) of distribution {self!r} to satisfy the constraint "
                                     f"{constraint!r}, but found invalid values:\n{value}")

    @property
    def batch_shape(self) -> Size:
        """The shape of the batch of independent distributions (from the parameters' shapes)."""
        return self._batch_shape

    @property
    def event_shape(self) -> Size:
        """The shape of one draw of one distribution (``()`` for a scalar distribution)."""
        return self._event_shape

    @property
    def mean(self):
        """The mean, of shape ``batch_shape + event_shape``."""
        raise NotImplementedError

    @property
    def mode(self):
        """The mode (the most likely value), of shape ``batch_shape + event_shape``."""
        raise NotImplementedError(f"{self.__class__} does not implement mode")

    @property
    def variance(self):
        """The variance, of shape ``batch_shape + event_shape``."""
        raise NotImplementedError

    @property
    def stddev(self):
        """The standard deviation (``variance.sqrt()``)."""
        return self.variance.sqrt()

    def expand(self, batch_shape, _instance=None):
        """The same distribution with its batch broadcast to ``batch_shape`` (no copy: the
        parameters are expanded views), as PyTorch's ``Distribution.expand``."""
        new = self._get_checked_instance(type(self), _instance)
        batch_shape = Size(batch_shape)
        new.__dict__.update(self.__dict__)
        for name in self._expand_names():
            value = self.__dict__[name]
            event = tuple(value.shape[len(self._batch_shape):])  # a parameter's own event dims (loc of an MVN)
            new.__dict__[name] = value.expand(tuple(batch_shape) + event)
        if "_param" in self.__dict__:
            new._param = new.__dict__["probs" if self.__dict__.get("probs") is self._param else "logits"]
        Distribution.__init__(new, batch_shape, self._event_shape, validate_args=False)
        new._validate_args = self._validate_args
        return new

    def _expand_names(self):
        """The tensors expand broadcasts: the parameters this instance holds (``probs`` or ``logits``, or
        both once one was derived)."""
        return [k for k in self.arg_constraints if isinstance(self.__dict__.get(k), Tensor)]

    def _get_checked_instance(self, cls, _instance=None):
        if _instance is None and type(self).__init__ != cls.__init__:
            raise NotImplementedError(f"Subclass {self.__class__.__name__} of {cls.__name__} that defines a custom "
                                      "__init__() method must also define a custom .expand() method.")
        return self.__new__(type(self)) if _instance is None else _instance

    def sample(self, sample_shape=()):
        """A draw of shape ``sample_shape + batch_shape + event_shape``, without gradient."""
        with grad_mode.no_grad():
            return self.rsample(sample_shape)

    def rsample(self, sample_shape=()):
        """A reparameterised draw of shape ``sample_shape + batch_shape + event_shape``: gradients
        flow to the parameters.

        >>> mu = tapegrad.tensor(0.0, requires_grad=True)
        >>> Normal(mu, 1.0).rsample((100,)).mean().backward()
        """
        raise NotImplementedError

    def sample_n(self, n: int):
        """``n`` draws (``sample((n,))``)."""
        return self.sample(Size((n,)))

    def log_prob(self, value):
        """The log of the probability (density or mass) of ``value``, differentiable in the parameters."""
        raise NotImplementedError

    def cdf(self, value):
        """The cumulative distribution function at ``value``."""
        raise NotImplementedError

    def icdf(self, value):
        """The inverse cumulative distribution function (quantile) at ``value`` in [0, 1]."""
        raise NotImplementedError

    def entropy(self):
        """The entropy (in nats), of shape ``batch_shape``."""
        raise NotImplementedError

    def perplexity(self):
        """``exp(entropy)``."""
        return self.entropy().exp()

    def _extended_shape(self, sample_shape=()) -> Size:
        if not isinstance(sample_shape, tuple):
            sample_shape = tuple(sample_shape)
        return Size(sample_shape + self._batch_shape + self._event_shape)

    def _validate_sample(self, value) -> None:
        if not isinstance(value, Tensor):
            raise ValueError("The value argument to log_prob must be a Tensor")
        event_dim_start = value.ndim - len(self._event_shape)
        if Size(value.shape[event_dim_start:]) != self._event_shape:
            raise ValueError(f"The right-most size of value must match event_shape: {Size(value.shape)} vs "
                             f"{self._event_shape}.")
        actual_shape, expected_shape = Size(value.shape), self._batch_shape + self._event_shape
        for i, j in zip(reversed(actual_shape), reversed(expected_shape)):
            if i != 1 and j != 1 and i != j:
                raise ValueError(f"Value is not broadcastable with batch_shape+event_shape: {actual_shape} vs "
                                 f"{Size(expected_shape)}.")
        support = self.support
        if support is None:
            return
        if not bool(support.check(value).all()):
            raise ValueError(f"Expected value argument ({type(value).__name__} of shape {tuple(value.shape)}) to be "
                             f"within the support ({support!r}) of the distribution {self!r}, but found invalid "
                             f"values:\n{value}")

    def __repr__(self):
        names = [k for k in self.arg_constraints if k in self.__dict__]
        args = ", ".join(f"{p}: {self.__dict__[p] if self.__dict__[p].numel() == 1 else Size(self.__dict__[p].shape)}"
                         for p in names)
        return f"{self.__class__.__name__}({args})"


class _ProbsOrLogits(Distribution):
    """The base of the distributions given by exactly one of ``probs`` and ``logits`` (Bernoulli,
    Binomial, Categorical, ...): the one given is kept, the other derived on first use (``sigmoid`` /
    ``logit`` when ``_binary``, else ``softmax`` / ``log`` over the last dim), as PyTorch's."""

    _binary = True

    def _set_probs_or_logits(self, probs, logits, *others):
        """Keep the parameter given (broadcast with ``others``, which come back in its dtype) as
        ``self.probs`` or ``self.logits`` and ``self._param``; PyTorch's error unless exactly one is given."""
        if (probs is None) == (logits is None):
            raise ValueError("Either `probs` or `logits` must be specified, but not both.")
        name = "probs" if probs is not None else "logits"
        *others, param = broadcast_all(*others, probs if probs is not None else logits)
        param = self._prepare_param(name, param)
        self.__dict__[name] = self._param = param
        return [o.to(param.dtype) for o in others]

    def _prepare_param(self, name, param):
        """The given parameter as it is kept (Categorical normalises it)."""
        return param

    @lazy_property
    def logits(self):
        """Log-odds (``_binary``) or normalised log-probabilities, from ``probs`` unless given."""
        return probs_to_logits(self.probs, is_binary=self._binary)

    @lazy_property
    def probs(self):
        """Probabilities, from ``logits`` unless given."""
        return logits_to_probs(self.logits, is_binary=self._binary)

    @property
    def param_shape(self):
        """The shape of the parameter tensor (``probs`` or ``logits``)."""
        return Size(self._param.shape)


class _WrapsCategorical(Distribution):
    """The base of the distributions built on a ``Categorical`` kept as ``self._categorical``
    (OneHotCategorical, ExpRelaxedCategorical, Multinomial): its parameters read through."""

    @property
    def _param(self):
        return self._categorical._param

    @property
    def probs(self):
        """Probabilities of the categories (summing to 1 on the last dim)."""
        return self._categorical.probs

    @property
    def logits(self):
        """Normalised log-probabilities of the categories (``logsumexp`` 0 on the last dim)."""
        return self._categorical.logits

    @property
    def param_shape(self):
        """The shape of the parameter tensor (``probs`` or ``logits``)."""
        return self._categorical.param_shape

    def _expand_categorical(self, cls, batch_shape, _instance):
        """A new ``cls`` on ``self._categorical.expand(batch_shape)``; the caller copies its other attributes."""
        new = self._get_checked_instance(cls, _instance)
        new._categorical = self._categorical.expand(batch_shape)
        Distribution.__init__(new, Size(batch_shape), self._event_shape, validate_args=False)
        new._validate_args = self._validate_args
        return new
