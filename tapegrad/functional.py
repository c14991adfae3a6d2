"""``torch.functional``: the module PyTorch defines ``einsum``, ``broadcast_tensors``, ``split``,
``meshgrid``, ... in; here the same function objects as ``tapegrad.<name>`` (so
``tapegrad.functional.einsum is tapegrad.einsum``, as in PyTorch)."""
import tapegrad as _tapegrad

_NAMES = ("atleast_1d", "atleast_2d", "atleast_3d", "align_tensors", "broadcast_shapes", "broadcast_tensors",
          "cartesian_prod", "block_diag", "cdist", "chain_matmul", "einsum", "istft", "lu", "norm", "meshgrid",
          "pca_lowrank", "split", "stft", "svd_lowrank", "tensordot", "unique", "unique_consecutive", "unravel_index")
__all__ = [name for name in _NAMES if hasattr(_tapegrad, name)]
globals().update({name: getattr(_tapegrad, name) for name in __all__})
