"""``convert_conv2d_weight_memory_format`` / ``convert_conv3d_weight_memory_format``.

tapegrad tensors have one memory layout (C-contiguous, NCHW), and its convolution kernels pack
their operands themselves, so there is no channels-last storage to convert to: these functions
check their arguments as PyTorch does and return the module unchanged, so code that calls them
runs with the same results."""
from __future__ import annotations

from ..modules.module import Module

_FORMATS = ("torch.contiguous_format", "torch.channels_last", "torch.channels_last_3d", "torch.preserve_format")


def _check(module, memory_format, name):
    if not isinstance(module, Module):
        raise TypeError(f"{name}: expected an nn.Module, got {type(module).__name__}")
    if memory_format is not None and not isinstance(memory_format, str) and str(memory_format) not in _FORMATS:
        raise TypeError(f"{name}: unknown memory_format {memory_format!r}")
    return module


def convert_conv2d_weight_memory_format(module, memory_format):
    """Return ``module``: its Conv2d weights already have the only layout tapegrad uses."""
    return _check(module, memory_format, "convert_conv2d_weight_memory_format")


def convert_conv3d_weight_memory_format(module, memory_format):
    """Return ``module``: its Conv3d weights already have the only layout tapegrad uses."""
    return _check(module, memory_format, "convert_conv3d_weight_memory_format")
