"""``DataParallel``: PyTorch's single-process multi-GPU wrapper, as it behaves without GPUs."""
from __future__ import annotations

from ..modules.module import Module


class DataParallel(Module):
    """Wraps ``module`` as PyTorch's ``DataParallel`` does on a machine without accelerators: the
    forward runs ``module`` itself (the whole batch, on the CPU) and the state_dict keys carry the
    ``module.`` prefix, so scripts and checkpoints written for it work unchanged. For parallelism
    over processes use :class:`DistributedDataParallel`.

    >>> model = tapegrad.nn.DataParallel(tapegrad.nn.Linear(3, 2))
    >>> list(model.state_dict())
    ['module.weight', 'module.bias']
    """

    def __init__(self, module, device_ids=None, output_device=None, dim: int = 0):
        super().__init__()
        if not isinstance(module, Module):
            raise TypeError(f"DataParallel: module must be a tapegrad.nn.Module, got {type(module).__name__}")
        if device_ids not in (None, [], ["cpu"]):
            raise ValueError(f"DataParallel: tapegrad runs on the CPU; device_ids must be None, got {device_ids!r}")
        self.module = module
        self.device_ids = []
        self.output_device = None
        self.dim = dim

    def forward(self, *inputs, **kwargs):
        return self.module(*inputs, **kwargs)


def data_parallel(module, inputs, device_ids=None, output_device=None, dim: int = 0, module_kwargs=None):
    """The functional form of :class:`DataParallel`: ``module(*inputs, **module_kwargs)`` on the CPU."""
    if not isinstance(inputs, tuple):
        inputs = (inputs,) if inputs is not None else ()
    return DataParallel(module, device_ids, output_device, dim)(*inputs, **(module_kwargs or {}))
