"""Zero-copy exchange through DLPack, under PyTorch's names (``torch.utils.dlpack``).

A tapegrad tensor is a numpy array underneath, so the protocol is numpy's: ``Tensor.__dlpack__``
and ``Tensor.__dlpack_device__`` hand the array's memory to any consumer (``np.from_dlpack``,
``torch.from_dlpack``, ``jax.numpy.from_dlpack``), and ``from_dlpack`` wraps any producer's CPU
memory without a copy. Writes through either side are seen by the other.

>>> import torch
>>> t = tapegrad.arange(3.0)
>>> u = torch.from_dlpack(t)      # shares t's memory
>>> u[0] = 7.0
>>> t
tensor([7., 1., 2.])
"""
from __future__ import annotations

import numpy as np

from ..tensor import Tensor
from ..device import check_cpu as _check_cpu

# DLDeviceType codes, for messages (the DLPack header's enum)
_DEVICE_NAMES = {1: "CPU", 2: "CUDA", 3: "CUDA host memory", 4: "OpenCL", 7: "Vulkan", 8: "Metal", 9: "VPI",
                 10: "ROCm", 11: "ROCm host memory", 12: "ExtDev", 13: "CUDA managed memory", 14: "oneAPI",
                 15: "WebGPU", 16: "Hexagon", 17: "MAIA"}


def export(tensor: Tensor, stream=None, max_version=None, dl_device=None, copy=None):
    """``Tensor.__dlpack__`` (the checks live there: tensor.py sits below utils)."""
    return tensor.__dlpack__(stream=stream, max_version=max_version, dl_device=dl_device, copy=copy)


def to_dlpack(tensor: Tensor):
    """A DLPack capsule of ``tensor``'s memory (legacy API: prefer passing the tensor itself to the
    consumer's ``from_dlpack``). The capsule can be consumed once."""
    if not isinstance(tensor, Tensor):
        raise TypeError(f"to_dlpack: expected a tapegrad Tensor, got {type(tensor).__name__}")
    return export(tensor)


class _Capsule:
    """Presents a bare capsule (``to_dlpack``'s output) as a producer, which is all np.from_dlpack takes."""

    def __init__(self, capsule):
        self.capsule = capsule

    def __dlpack__(self, *, stream=None, max_version=None, dl_device=None, copy=None):
        return self.capsule  # numpy reads the device and dtype from the capsule itself

    def __dlpack_device__(self):
        return (1, 0)


def from_dlpack(ext_tensor, *, device=None, copy=None) -> Tensor:
    """A tensor sharing memory with ``ext_tensor``: any object with ``__dlpack__`` (a numpy array, a
    PyTorch or JAX CPU tensor) or a DLPack capsule.

    ``copy=True`` copies, ``copy=False`` refuses to copy, None (default) copies only when the
    producer must. ``device`` may only name the CPU. A bare capsule (the legacy API) comes in
    read-only: the old protocol cannot say whether the producer allows writes, and numpy, which
    imports it, assumes not; pass the producer itself to share writable memory.

    >>> x = np.arange(3.0)
    >>> t = tapegrad.from_dlpack(x)
    >>> t[0] = 5.0
    >>> x
    array([5., 1., 2.])
    """
    if device is not None:
        _check_cpu(device)  # raises for anything but the CPU
    if type(ext_tensor).__name__ == "PyCapsule":
        producer = _Capsule(ext_tensor)
    elif hasattr(ext_tensor, "__dlpack__"):
        producer = ext_tensor
    else:
        raise TypeError(f"from_dlpack: expected an object with __dlpack__ or a DLPack capsule, got "
                        f"{type(ext_tensor).__name__}")
    if hasattr(producer, "__dlpack_device__"):
        kind, index = (int(v) for v in producer.__dlpack_device__())
        if kind not in (1, 3, 11, 13):  # memory the CPU can address
            where = f"{_DEVICE_NAMES.get(kind, f'device type {kind}')}:{index}"
            raise RuntimeError(f"from_dlpack: the tensor is on {where}; tapegrad runs on the CPU only: move it "
                               f"there first (for PyTorch: x.cpu())")
    try:
        arr = np.from_dlpack(producer, copy=copy)
    except (BufferError, RuntimeError, TypeError, ValueError) as e:
        if producer is not ext_tensor:
            what = "the capsule (each DLPack capsule can be consumed once)"
        else:
            dtype = getattr(ext_tensor, "dtype", None)
            what = type(ext_tensor).__name__ + (f" of dtype {dtype}" if dtype is not None else "")
        raise type(e)(f"from_dlpack: {what} could not be shared: {e}") from None
    if arr.dtype.kind not in "biufc":
        raise TypeError(f"from_dlpack: tapegrad has no {arr.dtype} dtype")
    return Tensor._wrap(arr)


__all__ = ["from_dlpack", "to_dlpack"]
