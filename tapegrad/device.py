"""Devices: tapegrad computes on the CPU, and says so clearly when asked for anything else.

PyTorch scripts always mention a device (``device = "cuda" if torch.cuda.is_available() else
"cpu"``); these objects, with ``tapegrad.cuda`` and ``tapegrad.backends`` (never available),
let such scripts run unchanged on the CPU.
"""
from __future__ import annotations


# PyTorch's device types (c10/core/DeviceType.h's names): ``torch.device`` accepts each of them
DEVICE_TYPES = ("cpu", "cuda", "ipu", "xpu", "mkldnn", "opengl", "opencl", "ideep", "hip", "ve", "fpga", "maia",
                "xla", "lazy", "vulkan", "mps", "meta", "hpu", "mtia", "privateuseone")


class device:
    """``tapegrad.device("cpu")``, where tapegrad computes. PyTorch's other device types
    (``"cuda"``, ``"meta"``, ``"mps"``, ...) are values too, as in PyTorch, where
    ``torch.device("cuda")`` is made on any machine (code compares with it, and libraries use it
    as a default argument: timm's ``device: torch.device = torch.device('cuda')``); nothing can be
    made on them (``check_cpu`` raises where a tensor or module would go there). A name that is no
    device type raises, as in PyTorch."""

    __slots__ = {"type": "The device type: ``'cpu'``, or another of PyTorch's, which hold nothing here.",
                 "index": "The device index given (``cpu:0``), or None."}

    def __init__(self, type="cpu", index=None):
        if isinstance(type, device):
            type, index = type.type, type.index
        spec = str(type)
        if ":" in spec:
            spec, idx = spec.split(":", 1)
            index = int(idx)
        if spec not in DEVICE_TYPES:
            raise RuntimeError(f"Expected one of {', '.join(DEVICE_TYPES)} device type at start of device string: "
                               f"{str(type)}")
        self.type = spec
        self.index = index

    def __eq__(self, other):
        try:
            other = device(other)
        except (RuntimeError, TypeError, ValueError):
            return False
        return other.type == self.type and other.index == self.index  # PyTorch's: cuda != cuda:0

    def __hash__(self):
        return hash(self.type)

    def __repr__(self):
        return f"device(type={self.type!r})" if self.index is None else f"device(type={self.type!r}, index={self.index})"

    def __str__(self):
        return self.type if self.index is None else f"{self.type}:{self.index}"

    def __enter__(self):
        """``with tapegrad.device("cpu"):`` makes the CPU the default device, as it always is; the
        meta device cannot be (tapegrad has no tensors without data)."""
        check_cpu(self)
        return self

    def __exit__(self, *exc):
        return False


def check_cpu(d) -> device:
    """``device(d)``, raising ``RuntimeError`` unless it is the CPU, the only device tapegrad makes
    tensors on (the meta device's data-less tensors included)."""
    d = d if isinstance(d, device) else device(d)
    if d.type != "cpu":
        why = "tapegrad has no meta tensors: every tensor holds its data" if d.type == "meta" else \
            "tapegrad computes on the CPU and nothing else"
        raise RuntimeError(f"tapegrad runs on the CPU only; device {str(d)!r} is not available ({why})")
    return d


cpu = device("cpu")


class memory_format:  # noqa: N801  (PyTorch's name)
    """A memory layout request, as ``torch.memory_format``: ``tapegrad.contiguous_format``,
    ``preserve_format``, ``channels_last``, ``channels_last_3d``. Accepted wherever PyTorch takes
    one (``x.to(memory_format=...)``, ``x.contiguous(memory_format=...)``, the ``*_like``
    functions). tapegrad's results are C-contiguous whatever is asked: the values and shapes are
    PyTorch's, only ``stride()`` differs for ``channels_last``."""

    __slots__ = {"name": "The format's name (``'channels_last'``).",
                 "ndim": "The rank the format requires (4 for ``channels_last``), or None for any."}

    def __init__(self, name, ndim=None):
        self.name = name
        self.ndim = ndim  # the rank the format requires (channels_last: 4), or None

    def __repr__(self):
        return f"tapegrad.{self.name}"

    def __reduce__(self):
        return self.name  # pickles as the module attribute of that name


contiguous_format = memory_format("contiguous_format")
preserve_format = memory_format("preserve_format")
channels_last = memory_format("channels_last", 4)
channels_last_3d = memory_format("channels_last_3d", 5)


class layout:  # noqa: N801  (PyTorch's name)
    """How a tensor's elements are stored, as ``torch.layout``: ``tapegrad.strided`` (dense) or
    ``tapegrad.sparse_coo`` (tapegrad.sparse's COO tensors)."""

    __slots__ = {"name": "The layout's name (``'strided'`` or ``'sparse_coo'``)."}

    def __init__(self, name):
        self.name = name

    def __repr__(self):
        return f"tapegrad.{self.name}"

    def __reduce__(self):
        return self.name


strided = layout("strided")
sparse_coo = layout("sparse_coo")
# PyTorch's other layouts, so that code comparing a tensor's layout with them runs; no tapegrad
# tensor has them (making one is refused where the layout is checked)
sparse_csr, sparse_csc, sparse_bsr, sparse_bsc = (layout(n) for n in ("sparse_csr", "sparse_csc", "sparse_bsr",
                                                                      "sparse_bsc"))
_mkldnn, jagged = layout("_mkldnn"), layout("jagged")


def check_memory_format(value, opname: str, ndim=None) -> None:
    """Refuse what is not a ``memory_format`` (None means the op's default), and a format whose
    rank ``ndim`` does not have, as PyTorch does (``channels_last`` wants a 4-D tensor)."""
    if value is None:
        return
    if not isinstance(value, memory_format):
        raise TypeError(f"{opname}: memory_format must be a tapegrad.memory_format (tapegrad.contiguous_format, "
                        f"preserve_format, channels_last, channels_last_3d), got {type(value).__name__}")
    if ndim is not None and value.ndim is not None and ndim != value.ndim:
        raise RuntimeError(f"{opname}: required rank {value.ndim} tensor to use {value.name} format, "
                           f"got a {ndim}-D tensor")


def check_layout(value, opname: str) -> None:
    """Refuse a layout other than ``strided`` (None means strided)."""
    if value is not None and value is not strided:
        raise TypeError(f"{opname}: layout must be tapegrad.strided, got {value!r}")
