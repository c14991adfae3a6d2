"""``torch.distributions.utils``: the helpers third-party distributions import (``broadcast_all``,
``probs_to_logits`` / ``logits_to_probs``, ``clamp_probs``, ``lazy_property``,
``tril_matrix_to_vec`` / ``vec_to_tril_matrix``), and the private ones libraries built on
``torch.distributions`` reach for (``_standard_normal``, ``_sum_rightmost``: gpytorch, pyro)."""
from __future__ import annotations

from .. import ops
from ..overrides import is_tensor_like  # noqa: F401  (no __torch_function__ tensor-likes: tensors only)
from .distribution import _sum_rightmost, broadcast_all, clamp_probs, lazy_property, logits_to_probs, probs_to_logits  # noqa: F401
from .transforms import tril_matrix_to_vec, vec_to_tril_matrix  # noqa: F401

__all__ = ["broadcast_all", "clamp_probs", "lazy_property", "logits_to_probs", "probs_to_logits",
           "tril_matrix_to_vec", "vec_to_tril_matrix", "euler_constant", "is_tensor_like"]

euler_constant = 0.57721566490153286060  # Euler-Mascheroni, as PyTorch's module has it


def _standard_normal(shape, dtype=None, device=None):
    """Standard normal samples of ``shape`` (from the default generator), outside the graph."""
    return ops.randn(tuple(shape), dtype=dtype, device=device)
