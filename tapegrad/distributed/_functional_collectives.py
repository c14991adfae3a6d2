"""``torch.distributed._functional_collectives``: PyTorch's collectives that return their result
instead of writing in place, and may return before it is ready (``wait_tensor`` then waits).

tapegrad's collectives finish before they return (``async_op=True`` excepted, which hands back a
``Work``, never a pending tensor), so every tensor is already complete here.
"""
from ..tensor import Tensor

__all__ = ["all_to_all_single_autograd", "wait_tensor"]


def wait_tensor(tensor: Tensor) -> Tensor:
    """Wait until ``tensor``, the result of a functional collective, is ready, and return it.
    tapegrad's collectives are complete when they return, so this returns ``tensor`` itself."""
    if not isinstance(tensor, Tensor):
        raise TypeError(f"wait_tensor: expected a Tensor, got {type(tensor).__name__}")
    return tensor


def all_to_all_single_autograd(self, output_split_sizes, input_split_sizes, group, tag=""):
    """PyTorch's differentiable all-to-all (expert parallelism); tapegrad.distributed has no
    all-to-all collective: raises ``NotImplementedError``."""
    raise NotImplementedError("all_to_all_single_autograd: tapegrad.distributed has no all-to-all collective "
                              "(all_to_all, all_to_all_single)")
