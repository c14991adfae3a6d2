"""einops on tapegrad tensors: ``rearrange``, ``reduce``, ``repeat``, ``einsum``, ``pack`` /
``unpack`` and ``parse_shape`` take tapegrad tensors as they take PyTorch's, autograd included, and
``einops.layers.tapegrad`` holds ``Rearrange``, ``Reduce`` and ``EinMix`` as ``tapegrad.nn``
modules (where a PyTorch script imports ``einops.layers.torch``).

einops finds a tensor's framework among the subclasses of its ``AbstractBackend`` whose
``framework_name`` is an imported module, and ships one for ``torch`` but none for tapegrad. So
``TapegradBackend`` is defined as soon as einops's ``_backends`` module exists: at ``import tapegrad``
if einops was imported first, otherwise by an import hook (a finder on ``sys.meta_path`` that runs
the module's own loader, then adds the class; it also makes ``einops.layers.tapegrad``). tapegrad
does not need einops: none of this imports it.
"""
from __future__ import annotations

import importlib.abc
import importlib.util
import sys
import threading

_BACKENDS = "einops._backends"
_LAYERS = "einops.layers.tapegrad"
_lock = threading.Lock()
_defined = False


def _define_backend(backends) -> None:
    """Subclass einops's AbstractBackend (in ``backends``, the ``einops._backends`` module) once."""
    global _defined
    with _lock:
        if _defined:
            return
        _defined = True

    class TapegradBackend(backends.AbstractBackend):
        framework_name = "tapegrad"

        def __init__(self):
            self.tg = sys.modules[__package__]  # the whole of tapegrad: einops asks after its import

        def is_appropriate_type(self, tensor):
            return isinstance(tensor, self.tg.Tensor)

        def from_numpy(self, x):
            t = self.tg.from_numpy(x)
            if self.is_float_type(t):
                t.requires_grad = True  # as einops's torch backend does
            return t

        def to_numpy(self, x):
            return x.detach().numpy()

        def arange(self, start, stop):
            return self.tg.arange(start, stop, dtype=self.tg.int64)

        def reduce(self, x, operation, reduced_axes):
            if operation in ("min", "max"):
                return getattr(x, "a" + operation)(dim=reduced_axes)
            if operation in ("sum", "mean"):
                return getattr(x, operation)(dim=reduced_axes)
            if operation in ("any", "all", "prod"):  # one dim at a time, as PyTorch's take them
                for i in sorted(reduced_axes)[::-1]:
                    x = getattr(x, operation)(dim=i)
                return x
            raise NotImplementedError("Unknown reduction ", operation)

        def transpose(self, x, axes):
            return x.permute(axes)

        def stack_on_zeroth_dimension(self, tensors: list):
            return self.tg.stack(tensors)

        def add_axes(self, x, n_axes, pos2len):
            repeats = [-1] * n_axes
            for axis_position, axis_length in pos2len.items():
                x = self.add_axis(x, axis_position)
                repeats[axis_position] = axis_length
            return x.expand(repeats)

        def tile(self, x, repeats):
            return x.repeat(repeats)

        def concat(self, tensors, axis: int):
            return self.tg.cat(tensors, dim=axis)

        def add_axis(self, x, new_position):
            return self.tg.unsqueeze(x, new_position)

        def is_float_type(self, x):
            return x.dtype in (self.tg.float16, self.tg.float32, self.tg.float64, self.tg.bfloat16)

        def layers(self):
            return importlib.import_module(_LAYERS)

        def einsum(self, pattern, *x):
            return self.tg.einsum(pattern, *x)

    TapegradBackend.__module__ = __name__
    globals()["TapegradBackend"] = TapegradBackend


def _fill_layers(module) -> None:
    """``einops.layers.tapegrad``: einops's layer mixins on ``tapegrad.nn.Module``, as
    ``einops.layers.torch`` puts them on PyTorch's."""
    from einops.layers import RearrangeMixin, ReduceMixin
    from einops.layers._einmix import _EinmixMixin

    tapegrad = sys.modules[__package__]

    class Rearrange(RearrangeMixin, tapegrad.nn.Module):
        def forward(self, input):
            return self._apply_recipe(input)

    class Reduce(ReduceMixin, tapegrad.nn.Module):
        def forward(self, input):
            return self._apply_recipe(input)

    class EinMix(_EinmixMixin, tapegrad.nn.Module):
        def _create_parameters(self, weight_shape, weight_bound, bias_shape, bias_bound):
            self.weight = tapegrad.nn.Parameter(tapegrad.zeros(weight_shape).uniform_(-weight_bound, weight_bound))
            self.bias = None if bias_shape is None else tapegrad.nn.Parameter(
                tapegrad.zeros(bias_shape).uniform_(-bias_bound, bias_bound))

        def _create_rearrange_layers(self, pre_reshape_pattern, pre_reshape_lengths, post_reshape_pattern,
                                     post_reshape_lengths):
            self.pre_rearrange = None if pre_reshape_pattern is None else Rearrange(pre_reshape_pattern,
                                                                                    **pre_reshape_lengths)
            self.post_rearrange = None if post_reshape_pattern is None else Rearrange(post_reshape_pattern,
                                                                                      **post_reshape_lengths)

        def forward(self, input):
            if self.pre_rearrange is not None:
                input = self.pre_rearrange(input)
            result = tapegrad.einsum(self.einsum_pattern, input, self.weight)
            if self.bias is not None:
                result = result + self.bias
            if self.post_rearrange is not None:
                result = self.post_rearrange(result)
            return result

    for cls in (Rearrange, Reduce, EinMix):  # importable and picklable by name, as einops.layers.torch's
        cls.__module__, cls.__qualname__ = _LAYERS, cls.__name__
        setattr(module, cls.__name__, cls)
    module.__all__ = ["Rearrange", "Reduce", "EinMix"]


class _DefiningLoader(importlib.abc.Loader):
    """einops._backends's own loader, then the backend's definition."""

    def __init__(self, loader):
        self.loader = loader

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module):
        self.loader.exec_module(module)
        _define_backend(module)

    def __getattr__(self, name):  # get_source, get_filename, ... as the file's loader answers them
        return getattr(self.loader, name)


class _LayersLoader(importlib.abc.Loader):
    def create_module(self, spec):
        return None

    def exec_module(self, module):
        module.__doc__ = "einops's layers (Rearrange, Reduce, EinMix) as tapegrad.nn modules."
        _fill_layers(module)


class _Finder(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == _LAYERS:
            return importlib.util.spec_from_loader(name, _LayersLoader())
        if name != _BACKENDS or _defined:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(name, path, target)
            if spec is not None:
                if spec.loader is not None:
                    spec.loader = _DefiningLoader(spec.loader)
                return spec
        return None


def install() -> None:
    """Make einops know tapegrad's tensors, now or when einops is imported (called once, by
    ``import tapegrad``)."""
    backends = sys.modules.get(_BACKENDS)
    if backends is not None and hasattr(backends, "AbstractBackend"):
        _define_backend(backends)
    if not any(isinstance(f, _Finder) for f in sys.meta_path):
        sys.meta_path.insert(0, _Finder())
