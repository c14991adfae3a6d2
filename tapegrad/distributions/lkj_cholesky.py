"""The LKJ distribution over Cholesky factors of correlation matrices, ``LKJCholesky(dim, concentration)``."""
from __future__ import annotations

import math

import numpy as np

from .._compat import Size
from .. import ops
from .. import special
from . import constraints
from .beta import Beta
from .distribution import Distribution, _standard_normal, broadcast_all


class LKJCholesky(Distribution):
    """``LKJCholesky(dim, concentration)``: Cholesky factors ``L`` of ``dim x dim`` correlation
    matrices with density proportional to ``det(L L^T) ** (concentration - 1)``; sampled by the
    onion method (Lewandowski, Kurowicka and Joe, 2009), as PyTorch does.

    >>> LKJCholesky(3, 0.5).sample().shape
    (3, 3)
    """

    arg_constraints = {"concentration": constraints.positive}
    support = constraints.corr_cholesky

    def __init__(self, dim, concentration=1.0, validate_args=None):
        if dim < 2:
            raise ValueError(f"Expected dim to be an integer greater than or equal to 2. Found dim={dim}.")
        self.dim = dim
        (self.concentration,) = broadcast_all(concentration)
        dt = self.concentration._data.dtype
        marginal = self.concentration + 0.5 * (dim - 2)
        offset = np.concatenate([[0.0], np.arange(dim - 1)]).astype(dt)
        self._beta = Beta(ops.tensor(offset + 0.5), marginal.unsqueeze(-1) - ops.tensor(0.5 * offset))
        super().__init__(Size(self.concentration.shape), Size((dim, dim)), validate_args=validate_args)

    def expand(self, batch_shape, _instance=None):
        new = self._get_checked_instance(LKJCholesky, _instance)
        shape = tuple(batch_shape)
        new.dim = self.dim
        new.concentration = self.concentration.expand(shape)
        new._beta = self._beta.expand(shape + (self.dim,))
        Distribution.__init__(new, Size(shape), Size((self.dim, self.dim)), validate_args=False)
        new._validate_args = self._validate_args
        return new

    def sample(self, sample_shape=()):
        y = self._beta.sample(sample_shape).unsqueeze(-1)
        u = _standard_normal(self._extended_shape(sample_shape), y.dtype).tril(-1)
        with np.errstate(invalid="ignore"):
            u = u / ops.linalg.linalg_norm(u, dim=-1, keepdim=True)
        mask = np.ones(tuple(u.shape), u._data.dtype)
        mask[..., 0, :] = 0  # the first row is all zeros: 0/0 above
        u = ops.where(ops.tensor(mask.astype(bool)), u, ops.zeros_like(u))
        w = y.sqrt() * u
        tiny = float(np.finfo(w._data.dtype).tiny)
        diag = (1 - (w * w).sum(-1)).clamp(min=tiny).sqrt()
        return w + ops.diag_embed(diag)

    def log_prob(self, value):
        if self._validate_args:
            self._validate_sample(value)
        diag = value.diagonal(dim1=-1, dim2=-2)[..., 1:]
        order = ops.tensor(np.arange(2, self.dim + 1, dtype=value._data.dtype))
        order = 2 * (self.concentration - 1).unsqueeze(-1) + self.dim - order
        unnormalized = (order * diag.log()).sum(-1)
        dm1 = self.dim - 1
        alpha = self.concentration + 0.5 * dm1
        denominator = ops.lgamma(alpha) * dm1
        numerator = special.multigammaln(alpha - 0.5, dm1)
        pi_constant = 0.5 * dm1 * math.log(math.pi)
        return unnormalized - (pi_constant + numerator - denominator)
