"""Convolutions over (N, C, L), (N, C, H, W) and (N, C, D, H, W) on the native kernels."""
from __future__ import annotations

from ...ops import creation
from .. import functional as F
from .. import init
from ..parameter import Parameter
from .module import Module


def _pair(v, n=2):
    return tuple(v) if isinstance(v, (tuple, list)) else (v,) * n


class _ConvNd(Module):
    _transposed = False
    _dims = 2

    def __init__(self, in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
                 padding_mode, output_padding=(0, 0), device=None, dtype=None):
        super().__init__()
        if groups <= 0:
            raise ValueError("groups must be a positive integer")
        if in_channels % groups:
            raise ValueError("in_channels must be divisible by groups")
        if out_channels % groups:
            raise ValueError("out_channels must be divisible by groups")
        modes = ("zeros",) if self._transposed else ("zeros", "reflect", "replicate", "circular")
        if padding_mode not in modes:
            raise ValueError(f"{type(self).__name__}: padding_mode must be one of {list(modes)}, "
                             f"got {padding_mode!r}")
        if isinstance(padding, str):
            if padding not in ("same", "valid"):
                raise ValueError(f"Invalid padding string {padding!r}, should be one of ['valid', 'same']")
            if padding == "same" and any(s != 1 for s in _pair(stride, self._dims)):
                raise ValueError("padding='same' is not supported for strided convolutions")
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = _pair(kernel_size, self._dims)
        self.stride = _pair(stride, self._dims)
        self.padding = padding if isinstance(padding, str) else _pair(padding, self._dims)
        self.dilation = _pair(dilation, self._dims)
        self.transposed = self._transposed
        self.output_padding = _pair(output_padding, self._dims)
        self.groups = groups
        self.padding_mode = padding_mode
        shape = ((in_channels, out_channels // groups) if self._transposed else
                 (out_channels, in_channels // groups)) + self.kernel_size
        self.weight = Parameter(creation.empty(*shape, dtype=dtype, device=device))
        if bias:
            self.bias = Parameter(creation.empty(out_channels, dtype=dtype, device=device))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Draw new weights and bias: U(-b, b) with ``b = 1 / sqrt(fan_in)`` (PyTorch's default)."""
        init._default_linear_init_(self.weight, self.bias)

    def _output_padding(self, input, output_size):
        """A transposed conv's output_padding: the layer's own, or what reaches ``output_size``."""
        if output_size is None:
            return self.output_padding
        n = self._dims
        want, have = tuple(output_size)[-n:], tuple(input.shape[-n:])
        extra = []
        for i in range(n):
            base = (have[i] - 1) * self.stride[i] - 2 * self.padding[i] + self.dilation[i] * (self.kernel_size[i] - 1) + 1
            if not 0 <= want[i] - base < max(self.stride[i], self.dilation[i]):
                raise ValueError(f"{type(self).__name__}: requested output size {want} is not reachable from input "
                                 f"size {have}")
            extra.append(want[i] - base)
        return tuple(extra)

    def _conv_forward(self, input, conv):
        if self.padding_mode == "zeros":
            return conv(input, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)
        # as PyTorch: pad explicitly in the requested mode, then convolve without padding
        return conv(F.pad(input, self._explicit_padding(), mode=self.padding_mode), self.weight, self.bias,
                    self.stride, 0, self.dilation, self.groups)

    def _explicit_padding(self):
        """F.pad's (left, right, top, bottom, ...) for this layer's padding, last dim first."""
        if self.padding == "valid":
            return (0, 0) * self._dims
        pads = []
        for i in reversed(range(self._dims)):
            if self.padding == "same":  # any odd extra element goes at the end, as in PyTorch
                total = self.dilation[i] * (self.kernel_size[i] - 1)
                pads += [total // 2, total - total // 2]
            else:
                pads += [self.padding[i], self.padding[i]]
        return tuple(pads)

    def extra_repr(self) -> str:
        s = "{in_channels}, {out_channels}, kernel_size={kernel_size}, stride={stride}"
        if self.padding != (0,) * len(self.kernel_size):
            s += ", padding={padding}"
        if self.dilation != (1,) * len(self.dilation):
            s += ", dilation={dilation}"
        if self.output_padding != (0,) * len(self.output_padding):
            s += ", output_padding={output_padding}"
        if self.groups != 1:
            s += ", groups={groups}"
        if self.bias is None:
            s += ", bias=False"
        if self.padding_mode != "zeros":
            s += ", padding_mode={padding_mode}"
        return s.format(**self.__dict__)


class _ConvPlainNd(_ConvNd):
    """Conv1d/2d/3d: PyTorch's signature; ``_conv`` is the functional form."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0, dilation=1,
                 groups: int = 1, bias: bool = True, padding_mode: str = "zeros", device=None, dtype=None):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
                         padding_mode, output_padding=0, device=device, dtype=dtype)

    def forward(self, input):
        return self._conv_forward(input, self._conv)


class _ConvTransposeNd(_ConvNd):
    """ConvTranspose1d/2d/3d: PyTorch's signature (``output_padding`` before ``groups``, ``dilation``
    after ``bias``); ``_conv`` is the functional form."""

    _transposed = True

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0, output_padding=0,
                 groups: int = 1, bias: bool = True, dilation=1, padding_mode: str = "zeros", device=None,
                 dtype=None):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
                         padding_mode, output_padding=output_padding, device=device, dtype=dtype)

    def forward(self, input, output_size=None):
        return self._conv(input, self.weight, self.bias, self.stride, self.padding,
                          self._output_padding(input, output_size), self.groups, self.dilation)


class Conv2d(_ConvPlainNd):
    """2-D cross-correlation, PyTorch's ``nn.Conv2d``: weight (out, in/groups, kh, kw).

    >>> tapegrad.nn.Conv2d(1, 32, 3, 1)(tapegrad.randn(8, 1, 28, 28)).shape
    (8, 32, 26, 26)
    """

    _conv = staticmethod(F.conv2d)


class ConvTranspose2d(_ConvTransposeNd):
    """The gradient of ``Conv2d`` w.r.t. its input, as a layer: weight (in, out/groups, kh, kw)."""

    _conv = staticmethod(F.conv_transpose2d)


class Conv1d(_ConvPlainNd):
    """1-D cross-correlation over (N, C, L), PyTorch's ``nn.Conv1d``: weight (out, in/groups, k).

    >>> tapegrad.nn.Conv1d(4, 8, 3, padding=1)(tapegrad.randn(2, 4, 10)).shape
    (2, 8, 10)
    """

    _dims = 1
    _conv = staticmethod(F.conv1d)


class ConvTranspose1d(_ConvTransposeNd):
    """The gradient of ``Conv1d`` w.r.t. its input, as a layer: weight (in, out/groups, k)."""

    _dims = 1
    _conv = staticmethod(F.conv_transpose1d)


class Conv3d(_ConvPlainNd):
    """3-D cross-correlation over (N, C, D, H, W) or (C, D, H, W), PyTorch's ``nn.Conv3d``: weight
    (out, in/groups, kd, kh, kw).

    >>> tapegrad.nn.Conv3d(2, 4, 3, padding=1)(tapegrad.randn(1, 2, 4, 6, 6)).shape
    (1, 4, 4, 6, 6)
    """

    _dims = 3
    _conv = staticmethod(F.conv3d)


class ConvTranspose3d(_ConvTransposeNd):
    """The gradient of ``Conv3d`` w.r.t. its input, as a layer: weight (in, out/groups, kd, kh, kw)."""

    _dims = 3
    _conv = staticmethod(F.conv_transpose3d)
