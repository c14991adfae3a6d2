"""``torch.onnx``, as far as it holds in tapegrad: there is no ONNX exporter (tapegrad runs eagerly
and records no graph to export), so ``is_in_onnx_export()`` is always False and ``export``
raises :class:`OnnxExporterError` saying so. Model code that branches on
``torch.onnx.is_in_onnx_export()`` (kornia's Normalize, torchvision-style detection heads) runs
its eager branch.

>>> tapegrad.onnx.is_in_onnx_export()
False
"""
from __future__ import annotations

__all__ = ["export", "is_in_onnx_export", "OnnxExporterError"]


class OnnxExporterError(RuntimeError):
    """Raised by :func:`export` (a ``RuntimeError``, as PyTorch's)."""


def is_in_onnx_export() -> bool:
    """False: no ONNX export ever runs in tapegrad."""
    return False


def export(model, args=(), f=None, *a, **kw):
    """Not supported: tapegrad has no ONNX exporter. Raises :class:`OnnxExporterError`."""
    raise OnnxExporterError("tapegrad.onnx.export is not supported: tapegrad has no ONNX exporter (it runs eagerly "
                            "and records no graph); export the model from PyTorch after loading its weights "
                            "(safetensors round-trip with tapegrad.save)")
