"""``tapegrad.nn.utils.parametrize``: a tensor of a module computed from other tensors on every
access, as ``torch.nn.utils.parametrize``.

``register_parametrization(module, "weight", P())`` moves the parameter to
``module.parametrizations.weight.original`` (or ``original0``, ``original1``, ... when
``P.right_inverse`` returns several tensors) and makes ``module.weight`` a property returning
``P()(original...)``. The module's class is swapped for a subclass that holds the property, so
other instances of the class are untouched; ``state_dict`` keys follow PyTorch's.
"""
from __future__ import annotations

import contextlib

from ...tensor import Tensor
from ..modules.container import ModuleDict, ModuleList
from ..modules.module import Module
from ..parameter import Parameter
from ..._tape import grad_mode

_cache_enabled = 0
_cache: dict = {}


@contextlib.contextmanager
def cached():
    """Compute each parametrized tensor once inside the block (e.g. a weight used at every step of
    a recurrent loop)."""
    global _cache_enabled
    _cache_enabled += 1
    try:
        yield
    finally:
        _cache_enabled -= 1
        if not _cache_enabled:
            _cache.clear()


class ParametrizationList(ModuleList):
    """The parametrizations of one tensor, applied in order, and its original tensor(s)."""

    def __init__(self, modules, original, unsafe: bool = False):
        super().__init__(modules)
        self.unsafe = unsafe
        new = original
        with grad_mode.no_grad():
            for m in reversed(list(self)):
                if hasattr(m, "right_inverse"):
                    try:
                        new = m.right_inverse(new)
                    except NotImplementedError:  # as PyTorch's: the identity, e.g. orthogonal's matrix_exp
                        pass
        self.is_tensor = isinstance(new, Tensor)
        self.ntensors = 1 if self.is_tensor else len(new)
        if self.is_tensor:  # the same Parameter object stays (an optimizer may hold it)
            original._data = new._data.astype(original._data.dtype, copy=True)
            original._bump_version()
            self._register(original, "original", original)
        else:
            for i, t in enumerate(new):
                self._register(Parameter(t.detach(), requires_grad=original.requires_grad) if isinstance(
                    original, Parameter) else t.detach(), f"original{i}", original)

    def _register(self, t, name, like):
        if isinstance(like, Parameter):
            self.register_parameter(name, t if isinstance(t, Parameter) else Parameter(t))
        else:
            self.register_buffer(name, t)

    def right_inverse(self, value):
        """``module.weight = value``: store the originals that map to ``value``."""
        with grad_mode.no_grad():
            for m in reversed(list(self)):
                if hasattr(m, "right_inverse"):
                    value = m.right_inverse(value)
                elif not self.unsafe:
                    raise RuntimeError(f"parametrization {type(m).__name__} does not implement right_inverse")
            if self.is_tensor:
                self.original.copy_(value)
            else:
                for i, t in enumerate(value):
                    getattr(self, f"original{i}").copy_(t)

    def forward(self):
        x = self[0](self.original) if self.is_tensor else self[0](*(getattr(self, f"original{i}")
                                                                   for i in range(self.ntensors)))
        for m in list(self)[1:]:
            x = m(x)
        return x


def _property(name):
    def get(self):
        plist = self.parametrizations[name]
        if _cache_enabled:
            key = (id(self), name)
            if key not in _cache:
                _cache[key] = plist()
            return _cache[key]
        return plist()

    def set_(self, value):
        self.parametrizations[name].right_inverse(value)
    return property(get, set_)


def register_parametrization(module: Module, tensor_name: str, parametrization: Module, *, unsafe: bool = False):
    """Make ``module.<tensor_name>`` the output of ``parametrization`` (applied after any already
    registered on it)."""
    if is_parametrized(module, tensor_name):
        plist = module.parametrizations[tensor_name]
        plist.append(parametrization)
        return module
    original = module._parameters.get(tensor_name)
    if original is None:
        original = module._buffers.get(tensor_name)
    if original is None:
        raise ValueError(f"Module '{type(module).__name__}' has no parameter or buffer with name '{tensor_name}'")
    if not unsafe:
        with grad_mode.no_grad():
            y = parametrization(original)
        if not isinstance(y, Tensor):
            raise ValueError(f"A parametrization must return a tensor. Got {type(y).__name__}.")
        if tuple(y.shape) != tuple(original.shape) or y.dtype != original.dtype:
            raise ValueError(f"Registering a parametrization may not change the shape or dtype of the tensor: "
                             f"{tuple(original.shape)} {original.dtype} became {tuple(y.shape)} {y.dtype}")
    if tensor_name in module._parameters:
        del module._parameters[tensor_name]
    else:
        del module._buffers[tensor_name]
    if not is_parametrized(module):
        cls = module.__class__
        module.__class__ = type(f"Parametrized{cls.__name__}", (cls,), {"_tg_parametrized_base": cls})
        module.parametrizations = ModuleDict()
    module.parametrizations[tensor_name] = ParametrizationList([parametrization], original, unsafe=unsafe)
    setattr(module.__class__, tensor_name, _property(tensor_name))
    return module


def is_parametrized(module: Module, tensor_name: str | None = None) -> bool:
    plists = module.__dict__.get("_modules", {}).get("parametrizations")
    if plists is None or not isinstance(plists, ModuleDict):
        return False
    return tensor_name is None or tensor_name in plists


def remove_parametrizations(module: Module, tensor_name: str, leave_parametrized: bool = True) -> Module:
    """Undo ``register_parametrization``: the tensor becomes a plain parameter again, holding its
    current parametrized value (``leave_parametrized``) or its original."""
    if not is_parametrized(module, tensor_name):
        raise ValueError(f"Module {type(module).__name__} does not have a parametrization on {tensor_name}")
    plist = module.parametrizations[tensor_name]
    if leave_parametrized:
        with grad_mode.no_grad():
            value = getattr(module, tensor_name)
        if plist.is_tensor:
            original = plist.original
            original._data = value._data.astype(original._data.dtype, copy=True)
            original._bump_version()
        else:
            original = Parameter(value.detach(), requires_grad=plist.original0.requires_grad)
    else:
        if not plist.is_tensor:
            raise ValueError("Cannot leave unparametrized (`leave_parametrized=False`) a tensor that is "
                             "parametrized in terms of a sequence of tensors.")
        original = plist.original
    delattr(module.__class__, tensor_name)
    del module.parametrizations[tensor_name]
    if isinstance(original, Parameter):
        module.register_parameter(tensor_name, original)
    else:
        module.register_buffer(tensor_name, original)
    if not is_parametrized(module) or not len(module.parametrizations):
        del module._modules["parametrizations"]
        module.__class__ = module.__class__._tg_parametrized_base
    return module


def type_before_parametrizations(module: Module) -> type:
    return module.__class__._tg_parametrized_base if is_parametrized(module) else type(module)


def transfer_parametrizations_and_params(from_module: Module, to_module: Module, tensor_name: str | None = None
                                         ) -> Module:
    """Give ``to_module`` the parametrizations of ``from_module`` (all, or those of ``tensor_name``)
    and the same original tensors (shared, as PyTorch does); returns ``to_module``."""
    if not is_parametrized(from_module):
        return to_module
    names = list(from_module.parametrizations) if tensor_name is None else [tensor_name]
    for name in names:
        if not hasattr(to_module, name):
            setattr(to_module, name, Parameter(getattr(from_module, name).detach()))
        src = from_module.parametrizations[name]
        for fn in src:
            register_parametrization(to_module, name, fn)
        dst = to_module.parametrizations[name]
        if "original" in src._parameters or "original" in src._buffers:
            dst.original = src.original
        else:
            i = 0
            while hasattr(src, f"original{i}"):
                setattr(dst, f"original{i}", getattr(src, f"original{i}"))
                i += 1
    return to_module
