"""``torch.nn.modules.upsampling``'s names; the layers live in ``pooling.py``."""
from .pooling import Upsample, UpsamplingBilinear2d, UpsamplingNearest2d  # noqa: F401

__all__ = ["Upsample", "UpsamplingNearest2d", "UpsamplingBilinear2d"]
