"""``torch.nn.modules.distance``'s names; the layers live in ``loss.py``."""
from .loss import CosineSimilarity, PairwiseDistance  # noqa: F401

__all__ = ["PairwiseDistance", "CosineSimilarity"]
