"""``tapegrad.special``: PyTorch's ``torch.special`` names for tapegrad's special functions.

>>> tapegrad.special.gammaln(tapegrad.tensor([4.0]))   # log(3!)
tensor([1.7918])
"""
from __future__ import annotations

import math

from .ops import activation as _a
from .ops import elementwise as _e
from .ops import reduction as _r
from .ops.special import *  # noqa: F401,F403  (what tapegrad.special held before: ops/special.py's names)
from .ops.special import digamma, erfc, erfinv, exp2, lgamma, logit, polygamma  # noqa: F401
from .ops import composite as _c

erf = _e.erf
expit = _e.sigmoid
expm1 = _e.expm1
log1p = _e.log1p
round = _e.round  # noqa: A001
gammaln = lgamma
psi = digamma
logsumexp = _r.logsumexp
xlogy = _c.xlogy
sinc = _c.sinc


def ndtr(input):
    """The standard normal CDF, ``(1 + erf(x / sqrt(2))) / 2``."""
    return 0.5 * erfc(-input * (1 / math.sqrt(2)))


def ndtri(input):
    """The inverse of ``ndtr``: ``sqrt(2) * erfinv(2p - 1)``."""
    return math.sqrt(2) * erfinv(2 * input - 1)


def log_ndtr(input):
    return _e.log(ndtr(input))


def xlog1py(input, other):
    """``input * log1p(other)``, 0 where ``input`` is 0."""
    return _e.where(input == 0, 0.0 * input, input * _e.log1p(other))


def multigammaln(input, p):
    """The multivariate log-gamma ``sum_i lgamma(x - i/2) + p(p-1)/4 log(pi)``."""
    out = sum(lgamma(input - j / 2) for j in range(p))
    return out + p * (p - 1) / 4 * math.log(math.pi)


def softmax(input, dim, *, dtype=None):
    return _a.softmax(input, dim, dtype=dtype)


def log_softmax(input, dim, *, dtype=None):
    return _a.log_softmax(input, dim, dtype=dtype)
