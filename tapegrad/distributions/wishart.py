"""The Wishart distribution over positive-definite matrices, ``Wishart(df, covariance_matrix=...)``."""
from __future__ import annotations

import math
import warnings
from numbers import Number

import numpy as np

from .._compat import Size
from .. import linalg, ops, special
from . import constraints
from .chi2 import Chi2
from .distribution import _standard_normal, lazy_property
from .exp_family import ExponentialFamily

_LOG_2 = math.log(2)


def _mvdigamma(x, p):
    return ops.digamma(x.unsqueeze(-1) - ops.tensor(np.arange(p, dtype=x._data.dtype) / 2)).sum(-1)


def _cholesky_solve(b, L):
    """``(L L^T)^-1 b``, by two triangular solves (differentiable in both)."""
    return linalg.solve_triangular(L.mT, linalg.solve_triangular(L, b, upper=False), upper=True)


class Wishart(ExponentialFamily):
    """``Wishart(df, covariance_matrix=...)`` (or ``precision_matrix=`` / ``scale_tril=``): the
    distribution of ``sum_i x_i x_i^T`` for ``df`` Gaussian vectors of that covariance.
    ``rsample`` is the Bartlett decomposition, differentiable in the scale and (through the
    chi-squared draws) in ``df``.

    >>> Wishart(tapegrad.tensor(5.0), covariance_matrix=tapegrad.eye(2)).mean   # 5 I
    """

    arg_constraints = {"covariance_matrix": constraints.positive_definite,
                       "precision_matrix": constraints.positive_definite,
                       "scale_tril": constraints.lower_cholesky, "df": constraints.greater_than(0)}
    support = constraints.positive_definite
    has_rsample = True
    _mean_carrier_measure = 0

    def __init__(self, df, covariance_matrix=None, precision_matrix=None, scale_tril=None, validate_args=None):
        if (covariance_matrix is not None) + (scale_tril is not None) + (precision_matrix is not None) != 1:
            raise ValueError("Exactly one of covariance_matrix or precision_matrix or scale_tril may be specified.")
        param = next(p for p in (covariance_matrix, precision_matrix, scale_tril) if p is not None)
        if param.ndim < 2:
            raise ValueError("scale_tril must be at least two-dimensional, with optional leading batch dimensions")
        if isinstance(df, Number):
            batch_shape = tuple(param.shape[:-2])
            self.df = ops.tensor(df, dtype=param.dtype)
        else:
            batch_shape = tuple(np.broadcast_shapes(tuple(param.shape[:-2]), tuple(df.shape)))
            self.df = df.expand(batch_shape)
        event_shape = tuple(param.shape[-2:])
        p = event_shape[-1]
        if bool((self.df <= p - 1).any()):
            raise ValueError(f"Value of df={df} expected to be greater than ndim - 1 = {p - 1}.")
        full = batch_shape + event_shape
        if scale_tril is not None:
            self.scale_tril = param.expand(full)
        elif covariance_matrix is not None:
            self.covariance_matrix = param.expand(full)
        else:
            self.precision_matrix = param.expand(full)
        self.arg_constraints = dict(self.arg_constraints, df=constraints.greater_than(p - 1))
        if bool((self.df < p).any()):
            warnings.warn("Low df values detected. Singular samples are highly likely to occur for ndim - 1 < df < "
                          "ndim.", stacklevel=2)
        super().__init__(Size(batch_shape), Size(event_shape), validate_args=validate_args)
        if scale_tril is not None:
            self._unbroadcasted_scale_tril = scale_tril
        elif covariance_matrix is not None:
            self._unbroadcasted_scale_tril = linalg.cholesky(covariance_matrix)
        else:
            self._unbroadcasted_scale_tril = linalg.cholesky(linalg.inv(precision_matrix))
        offsets = ops.tensor(np.arange(p, dtype=param._data.dtype))
        self._dist_chi2 = Chi2(self.df.unsqueeze(-1) - offsets.expand(batch_shape + (p,)))

    @lazy_property
    def scale_tril(self):
        """The lower Cholesky factor of the scale (covariance) matrix."""
        return self._unbroadcasted_scale_tril.expand(tuple(self._batch_shape) + tuple(self._event_shape))

    @lazy_property
    def covariance_matrix(self):
        """The scale matrix ``L L^T``."""
        L = self._unbroadcasted_scale_tril
        return (L @ L.mT).expand(tuple(self._batch_shape) + tuple(self._event_shape))

    @lazy_property
    def precision_matrix(self):
        """The inverse of the scale matrix."""
        eye = ops.tensor(np.eye(self._event_shape[-1], dtype=self._unbroadcasted_scale_tril._data.dtype))
        return _cholesky_solve(eye, self._unbroadcasted_scale_tril).expand(
            tuple(self._batch_shape) + tuple(self._event_shape))

    def _df_matrix(self):
        return self.df.reshape(tuple(self._batch_shape) + (1, 1))

    @property
    def mean(self):
        return self._df_matrix() * self.covariance_matrix

    @property
    def mode(self):
        factor = self.df - self.covariance_matrix.shape[-1] - 1
        factor = ops.where(factor <= 0, ops.full_like(factor, math.nan), factor)
        return factor.reshape(tuple(self._batch_shape) + (1, 1)) * self.covariance_matrix

    @property
    def variance(self):
        V = self.covariance_matrix
        d = V.diagonal(dim1=-2, dim2=-1)
        return self._df_matrix() * (V.pow(2) + d.unsqueeze(-1) * d.unsqueeze(-2))

    def rsample(self, sample_shape=()):
        """One Bartlett draw: ``(L A)(L A)^T`` with A lower triangular, sqrt(chi2(df - i)) on the
        diagonal and standard normals below."""
        p = self._event_shape[-1]
        sample_shape = tuple(sample_shape)
        tiny = float(np.finfo(self.df._data.dtype).eps)
        diag = self._dist_chi2.rsample(sample_shape).sqrt().clamp(min=tiny)
        normals = _standard_normal(sample_shape + tuple(self._batch_shape) + (p, p), diag.dtype).tril(-1)
        A = normals + ops.diag_embed(diag)
        chol = self._unbroadcasted_scale_tril @ A
        return chol @ chol.mT

    def log_prob(self, value):
        if self._validate_args:
            self._validate_sample(value)
        nu = self.df
        p = self._event_shape[-1]
        L = self._unbroadcasted_scale_tril
        return (-nu * (p * _LOG_2 / 2 + L.diagonal(dim1=-2, dim2=-1).log().sum(-1))
                - special.multigammaln(nu / 2, p)
                + (nu - p - 1) / 2 * linalg.slogdet(value).logabsdet
                - _cholesky_solve(value, L).diagonal(dim1=-2, dim2=-1).sum(-1) / 2)

    def entropy(self):
        nu = self.df
        p = self._event_shape[-1]
        L = self._unbroadcasted_scale_tril
        return ((p + 1) * (p * _LOG_2 / 2 + L.diagonal(dim1=-2, dim2=-1).log().sum(-1))
                + special.multigammaln(nu / 2, p)
                - (nu - p - 1) / 2 * _mvdigamma(nu / 2, p)
                + nu * p / 2)

    @property
    def _natural_params(self):
        eye = ops.tensor(np.eye(self._event_shape[-1], dtype=self._unbroadcasted_scale_tril._data.dtype))
        return -0.5 * _cholesky_solve(eye, self._unbroadcasted_scale_tril), 0.5 * self.df

    def _log_normalizer(self, x, y):
        p = self._event_shape[-1]
        return y * (-linalg.slogdet(-2 * x).logabsdet + _LOG_2 * p) + special.multigammaln(y, p)
