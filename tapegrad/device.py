"""Devices: tapegrad computes on the CPU, and says so clearly when asked for anything else.

PyTorch scripts always mention a device (``device = "cuda" if torch.cuda.is_available() else
"cpu"``); these objects, with ``tapegrad.cuda`` and ``tapegrad.backends`` (never available),
let such scripts run unchanged on the CPU.
"""
from __future__ import annotations


class device:
    """``tapegrad.device("cpu")``; any other device type raises a clear error."""

    __slots__ = {"type": "The device type: always ``'cpu'``.", "index": "The device index given (``cpu:0``), or None."}

    def __init__(self, type="cpu", index=None):
        if isinstance(type, device):
            type, index = type.type, type.index
        spec = str(type)
        if ":" in spec:
            spec, idx = spec.split(":", 1)
            index = int(idx)
        if spec != "cpu":
            raise RuntimeError(f"tapegrad runs on the CPU only; device {str(type)!r} is not available")
        self.type = "cpu"
        self.index = index

    def __eq__(self, other):
        try:
            return device(other).type == self.type
        except (RuntimeError, TypeError, ValueError):
            return False

    def __hash__(self):
        return hash(self.type)

    def __repr__(self):
        return "device(type='cpu')"

    def __str__(self):
        return "cpu"


cpu = device("cpu")
