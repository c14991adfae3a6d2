"""Testing helpers: ``assert_close``, the gradient checks (``tapegrad.autograd.gradcheck``,
re-exported as PyTorch users find them in tests) and hypothesis strategies.

>>> from tapegrad.testing import gradcheck
>>> x = tapegrad.randn(3, dtype=tapegrad.float64, requires_grad=True)
>>> gradcheck(lambda t: (t * t.exp()).sum(), (x,))
True
"""
from .comparison import assert_close  # noqa: F401
from ._creation import assert_allclose, make_tensor  # noqa: F401
from ..autograd.gradcheck import GradcheckError, gradcheck, gradgradcheck  # noqa: F401

__all__ = ["assert_close", "assert_allclose", "make_tensor", "gradcheck", "gradgradcheck", "GradcheckError"]

try:  # the strategies need hypothesis (a test dependency, not a runtime one)
    from . import strategies  # noqa: F401
    from .strategies import (away_from_ties, broadcastable_shapes, elements, mutually_broadcastable_shapes,  # noqa: F401
                             positive, shapes, tensors)
    __all__ += ["strategies", "shapes", "broadcastable_shapes", "mutually_broadcastable_shapes", "tensors",
                "elements", "positive", "away_from_ties"]
except ImportError:
    pass
