"""``tapegrad.special``: PyTorch's ``torch.special`` names, over the special functions in
``tapegrad.ops.pointwise`` (and ``logsumexp``/``softmax`` from their domains).

>>> tapegrad.special.gammaln(tapegrad.tensor([4.0]))   # log(3!)
tensor([1.7918])
"""
from .ops.activation import log_softmax, softmax  # noqa: F401
from .ops.pointwise import (acos, acosh, addcdiv, addcmul, arccos, arccosh, arcsin, arcsinh, arctan,  # noqa: F401
                            arctanh, asin, asinh, atan, atanh, cosh, digamma, erf, erfc, erfinv, exp2, expm1,
                            floor_divide, fmod, frac, hypot, lerp, lgamma, log10, log1p, log2, log_ndtr, logaddexp,
                            logit, multigammaln, nan_to_num, ndtr, ndtri, polygamma, remainder, round, sgn, sinc, sinh,
                            xlog1py, xlogy)
from .ops.pointwise import sigmoid as expit  # noqa: F401
from .ops.reduction import logsumexp  # noqa: F401

gammaln = lgamma
psi = digamma
