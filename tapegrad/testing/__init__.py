"""Gradient checking for users and for tapegrad's own tests.

>>> from tapegrad.testing import gradcheck
>>> x = tapegrad.randn(3, dtype=tapegrad.float64, requires_grad=True)
>>> gradcheck(lambda t: (t * t.exp()).sum(), (x,))
True
"""
from .gradcheck import GradcheckError, gradcheck, gradgradcheck  # noqa: F401

__all__ = ["gradcheck", "gradgradcheck", "GradcheckError"]
