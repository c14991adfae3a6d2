"""``torch.utils._foreach_utils``: the grouping that optimizers written against PyTorch's
``foreach`` internals import (pytorch-optimizer, copies of ``torch/optim/*.py``). tapegrad has one
device, so the groups are by dtype; ``foreach`` support is answered for the CPU, where tapegrad's
``torch._foreach_*`` functions run."""
from __future__ import annotations

from ..autograd.grad_mode import no_grad
from ..tensor import Tensor

__all__ = ["_group_tensors_by_device_and_dtype", "_has_foreach_support", "_device_has_foreach_support",
           "_get_foreach_kernels_supported_devices", "_get_fused_kernels_supported_devices"]

_foreach_supported_types = [Tensor]


def _get_foreach_kernels_supported_devices() -> list:
    """The devices with foreach kernels besides the CPU (PyTorch's list; none of them here)."""
    return ["cuda", "xpu", "mtia", "privateuseone"]


def _get_fused_kernels_supported_devices() -> list:
    """The devices whose optimizers take ``fused=True``: tapegrad's CPU optimizers do."""
    return ["mps", "cuda", "xpu", "hpu", "cpu", "mtia", "privateuseone"]


@no_grad()
def _group_tensors_by_device_and_dtype(tensorlistlist, with_indices: bool = False) -> dict:
    """``{(device, dtype): (the lists' tensors at the indices of that group, those indices)}``,
    grouped by the first list's tensors (the other lists' entries, None included, follow them);
    the indices are listed only ``with_indices``, as PyTorch's."""
    groups: dict = {}
    first = tensorlistlist[0] if tensorlistlist else []
    for i, t in enumerate(first):
        if t is None:
            raise RuntimeError("_group_tensors_by_device_and_dtype: the tensors of the first list cannot be None "
                               f"(index {i})")
        key = (t.device, t.dtype)
        entry = groups.get(key)
        if entry is None:
            entry = groups[key] = ([[] for _ in tensorlistlist], [])
        for lst, out in zip(tensorlistlist, entry[0]):
            out.append(lst[i])
        if with_indices:
            entry[1].append(i)
    return groups


def _device_has_foreach_support(device) -> bool:
    return getattr(device, "type", device) in _get_foreach_kernels_supported_devices() + ["cpu"]


def _has_foreach_support(tensors, device) -> bool:
    return _device_has_foreach_support(device) and all(t is None or type(t) in _foreach_supported_types
                                                       for t in tensors)
