"""Lazy modules (``LazyLinear``, ``LazyConv2d``, ``LazyBatchNorm2d``, ...): the input size is read
from the first input. Until then the parameters are :class:`UninitializedParameter`; the first
call allocates and initialises them and turns the module into its ordinary class (``Linear``,
...), as PyTorch does. Loading a ``state_dict`` before the first call allocates them too."""
from __future__ import annotations

from ..._tape import grad_mode
from ..parameter import UninitializedBuffer, UninitializedParameter
from .conv import Conv1d, Conv2d, Conv3d, ConvTranspose1d, ConvTranspose2d, ConvTranspose3d
from .linear import Linear
from .normalization import BatchNorm1d, BatchNorm2d, BatchNorm3d, InstanceNorm1d, InstanceNorm2d, InstanceNorm3d


class LazyModuleMixin:
    """Mixed into a module class before its ordinary base: installs the pre-hook that infers the
    shapes from the first input (``initialize_parameters``), then becomes ``cls_to_become``."""

    cls_to_become = None

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._initialize_hook = self.register_forward_pre_hook(self._infer_parameters, with_kwargs=True)

    def has_uninitialized_params(self) -> bool:
        """Whether a parameter or buffer still waits for its shape."""
        return any(isinstance(t, (UninitializedParameter, UninitializedBuffer))
                   for t in list(self._parameters.values()) + list(self._buffers.values()))

    def initialize_parameters(self, *args, **kwargs):
        """Allocate and initialise the parameters from the first input (each lazy class defines it)."""
        raise NotImplementedError(f"initialize_parameters is not implemented for {type(self).__name__}")

    @staticmethod
    def _infer_parameters(module, args, kwargs=None):
        module.initialize_parameters(*args, **(kwargs or {}))
        if module.has_uninitialized_params():
            raise RuntimeError(f"module {module._get_name()} has not been fully initialized")
        module._initialize_hook.remove()
        del module._initialize_hook
        if module.cls_to_become is not None:
            module.__class__ = module.cls_to_become


class LazyLinear(LazyModuleMixin, Linear):
    """``Linear`` whose ``in_features`` is the last dim of the first input.

    >>> m = tapegrad.nn.LazyLinear(10)
    >>> m(tapegrad.randn(2, 7)).shape, type(m).__name__
    ((2, 10), 'Linear')
    """

    cls_to_become = Linear

    def __init__(self, out_features: int, bias: bool = True, device=None, dtype=None):
        super().__init__(0, 0, False)
        self.out_features = out_features
        self.weight = UninitializedParameter(dtype=dtype)
        if bias:
            self.bias = UninitializedParameter(dtype=dtype)

    def reset_parameters(self) -> None:
        """Initialise as ``Linear`` once the shapes are known (nothing to do before)."""
        if not self.has_uninitialized_params() and self.in_features != 0:
            super().reset_parameters()

    def initialize_parameters(self, input, *args, **kwargs) -> None:
        """Allocate ``weight`` (out, in) from ``input.shape[-1]`` and initialise it."""
        if self.has_uninitialized_params():
            with grad_mode.no_grad():
                self.in_features = input.shape[-1]
                self.weight.materialize((self.out_features, self.in_features))
                if self.bias is not None:
                    self.bias.materialize((self.out_features,))
                self.reset_parameters()


class _LazyConvXdMixin(LazyModuleMixin):
    def reset_parameters(self) -> None:
        """Initialise as the convolution once the shapes are known (nothing to do before)."""
        if not self.has_uninitialized_params() and self.in_channels != 0:
            super().reset_parameters()

    def initialize_parameters(self, input, *args, **kwargs) -> None:
        """Allocate the weight from the channels of the first input (dim 1, or 0 if unbatched)."""
        if not self.has_uninitialized_params():
            return
        dims = self._dims
        if input.ndim not in (dims + 1, dims + 2):
            raise RuntimeError(f"Expected {dims + 1}D (unbatched) or {dims + 2}D (batched) input to "
                               f"{type(self).__name__}, but got input of size: {tuple(input.shape)}")
        self.in_channels = input.shape[1] if input.ndim == dims + 2 else input.shape[0]
        if self.in_channels % self.groups:
            raise ValueError("in_channels must be divisible by groups")
        g = self.groups
        shape = ((self.in_channels, self.out_channels // g) if self._transposed else
                 (self.out_channels, self.in_channels // g)) + tuple(self.kernel_size)
        with grad_mode.no_grad():
            self.weight.materialize(shape)
            if self.bias is not None:
                self.bias.materialize((self.out_channels,))
            self.reset_parameters()


def _lazy_conv_init(self, out_channels, kernel_size, kwargs, dtype):
    bias = kwargs.pop("bias", True)
    type(self).cls_to_become.__init__(self, 0, 0, kernel_size, bias=False, **kwargs)
    self.out_channels = out_channels
    self.weight = UninitializedParameter(dtype=dtype)
    if bias:
        self.bias = UninitializedParameter(dtype=dtype)
    self._initialize_hook = self.register_forward_pre_hook(self._infer_parameters, with_kwargs=True)


class _LazyConvPlain(_LazyConvXdMixin):
    def __init__(self, out_channels: int, kernel_size, stride=1, padding=0, dilation=1, groups: int = 1,
                 bias: bool = True, padding_mode: str = "zeros", device=None, dtype=None):
        _lazy_conv_init(self, out_channels, kernel_size, dict(stride=stride, padding=padding, dilation=dilation,
                                                              groups=groups, bias=bias, padding_mode=padding_mode),
                        dtype)


class _LazyConvTranspose(_LazyConvXdMixin):
    def __init__(self, out_channels: int, kernel_size, stride=1, padding=0, output_padding=0, groups: int = 1,
                 bias: bool = True, dilation=1, padding_mode: str = "zeros", device=None, dtype=None):
        _lazy_conv_init(self, out_channels, kernel_size, dict(stride=stride, padding=padding,
                                                              output_padding=output_padding, groups=groups, bias=bias,
                                                              dilation=dilation, padding_mode=padding_mode), dtype)


class LazyConv1d(_LazyConvPlain, Conv1d):
    """``Conv1d`` whose ``in_channels`` is read from the first input."""

    cls_to_become = Conv1d


class LazyConv2d(_LazyConvPlain, Conv2d):
    """``Conv2d`` whose ``in_channels`` is read from the first input."""

    cls_to_become = Conv2d


class LazyConvTranspose1d(_LazyConvTranspose, ConvTranspose1d):
    """``ConvTranspose1d`` whose ``in_channels`` is read from the first input."""

    cls_to_become = ConvTranspose1d


class LazyConvTranspose2d(_LazyConvTranspose, ConvTranspose2d):
    """``ConvTranspose2d`` whose ``in_channels`` is read from the first input."""

    cls_to_become = ConvTranspose2d


class LazyConv3d(_LazyConvPlain, Conv3d):
    """``Conv3d`` whose ``in_channels`` is read from the first input."""

    cls_to_become = Conv3d


class LazyConvTranspose3d(_LazyConvTranspose, ConvTranspose3d):
    """``ConvTranspose3d`` whose ``in_channels`` is read from the first input."""

    cls_to_become = ConvTranspose3d


class _LazyNormMixin(LazyModuleMixin):
    def _lazy_init(self, eps, momentum, affine, track_running_stats, dtype, bias):
        type(self).cls_to_become.__init__(self, 0, eps, momentum, affine, track_running_stats, dtype=dtype, bias=bias)
        if self.affine:
            self.weight = UninitializedParameter(dtype=dtype)
            if self.bias is not None:
                self.bias = UninitializedParameter(dtype=dtype)
        if self.track_running_stats:
            self.register_buffer("running_mean", UninitializedBuffer(dtype=dtype))
            self.register_buffer("running_var", UninitializedBuffer(dtype=dtype))
        self._initialize_hook = self.register_forward_pre_hook(self._infer_parameters, with_kwargs=True)

    def reset_parameters(self) -> None:
        """Reset as the norm once the shapes are known (nothing to do before)."""
        if not self.has_uninitialized_params() and self.num_features != 0:
            super().reset_parameters()

    def initialize_parameters(self, input, *args, **kwargs) -> None:
        """Allocate the affine parameters and running statistics for ``input.shape[1]`` features."""
        if not self.has_uninitialized_params():
            return
        self.num_features = input.shape[1]
        with grad_mode.no_grad():
            for t in list(self._parameters.values()) + [self.running_mean, self.running_var]:
                if isinstance(t, (UninitializedParameter, UninitializedBuffer)):
                    t.materialize((self.num_features,))
            self.reset_parameters()


class _LazyNorm(_LazyNormMixin):
    def __init__(self, eps: float = 1e-5, momentum=0.1, affine: bool = True, track_running_stats: bool = True,
                 device=None, dtype=None, *, bias: bool = True):
        self._lazy_init(eps, momentum, affine, track_running_stats, dtype, bias)


class LazyBatchNorm1d(_LazyNorm, BatchNorm1d):
    """``BatchNorm1d`` whose ``num_features`` is read from the first input."""

    cls_to_become = BatchNorm1d


class LazyBatchNorm2d(_LazyNorm, BatchNorm2d):
    """``BatchNorm2d`` whose ``num_features`` is read from the first input."""

    cls_to_become = BatchNorm2d


class LazyBatchNorm3d(_LazyNorm, BatchNorm3d):
    """``BatchNorm3d`` whose ``num_features`` is read from the first input."""

    cls_to_become = BatchNorm3d


class LazyInstanceNorm1d(_LazyNorm, InstanceNorm1d):
    """``InstanceNorm1d`` whose ``num_features`` is read from the first input."""

    cls_to_become = InstanceNorm1d


class LazyInstanceNorm2d(_LazyNorm, InstanceNorm2d):
    """``InstanceNorm2d`` whose ``num_features`` is read from the first input."""

    cls_to_become = InstanceNorm2d


class LazyInstanceNorm3d(_LazyNorm, InstanceNorm3d):
    """``InstanceNorm3d`` whose ``num_features`` is read from the first input."""

    cls_to_become = InstanceNorm3d


__all__ = ["LazyModuleMixin", "LazyLinear", "LazyConv1d", "LazyConv2d", "LazyConv3d", "LazyConvTranspose1d",
           "LazyConvTranspose2d", "LazyConvTranspose3d", "LazyBatchNorm1d", "LazyBatchNorm2d", "LazyBatchNorm3d",
           "LazyInstanceNorm1d", "LazyInstanceNorm2d", "LazyInstanceNorm3d"]
