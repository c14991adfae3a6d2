"""``Module``: the base class of every layer, with PyTorch's registration, traversal,
mode switching, hooks and ``state_dict`` behaviour."""
from __future__ import annotations

import warnings
from collections import OrderedDict, namedtuple
from typing import Callable, Iterator

import numpy as np

from ... import _dtype, _shared
from ..._tape.node import module_scope
from ...autograd import RemovableHandle
from ...tensor import Tensor
from ..parameter import Buffer, Parameter, zero_grads
from . import _hooks
from ...device import check_memory_format as _check_memory_format, check_cpu as _check_cpu, device as _device


class _IncompatibleKeys(namedtuple("IncompatibleKeys", ["missing_keys", "unexpected_keys"])):
    __slots__ = ()

    def __repr__(self):
        if not self.missing_keys and not self.unexpected_keys:
            return "<All keys matched successfully>"
        return super().__repr__()

    __str__ = __repr__


_EXTRA_STATE_KEY_SUFFIX = "_extra_state"


def _addindent(s: str, n: int) -> str:
    lines = s.split("\n")
    if len(lines) == 1:
        return s
    return lines[0] + "\n" + "\n".join(" " * n + line for line in lines[1:])


class Module:
    """Base class for layers and models: subclass it, assign layers and ``Parameter``s as
    attributes in ``__init__``, and write ``forward``.

    >>> class Net(tapegrad.nn.Module):
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.fc = tapegrad.nn.Linear(4, 2)
    ...     def forward(self, x):
    ...         return self.fc(x).relu()
    >>> Net()(tapegrad.randn(3, 4)).shape
    (3, 2)
    """

    training: bool
    _version = 1

    def __init__(self, *args, **kwargs):
        if args or kwargs:
            raise TypeError(f"{type(self).__name__}.__init__() got unexpected arguments (Module.__init__ "
                            f"takes none)")
        d = self.__dict__
        d["training"] = True
        d["_parameters"] = OrderedDict()
        d["_buffers"] = OrderedDict()
        d["_non_persistent_buffers_set"] = set()
        d["_modules"] = OrderedDict()
        d["_forward_hooks"] = OrderedDict()
        d["_forward_hooks_with_kwargs"] = set()
        d["_forward_pre_hooks"] = OrderedDict()
        d["_forward_pre_hooks_with_kwargs"] = set()
        d["_forward_hooks_always_called"] = {}
        d["_backward_hooks"] = OrderedDict()
        d["_backward_pre_hooks"] = OrderedDict()
        d["_is_full_backward_hook"] = None
        d["_state_dict_hooks"] = OrderedDict()
        d["_state_dict_pre_hooks"] = OrderedDict()
        d["_load_state_dict_pre_hooks"] = OrderedDict()
        d["_load_state_dict_post_hooks"] = OrderedDict()

    def __setstate__(self, state):
        # modules pickled before the backward and state_dict hooks existed lack their dicts
        self.__dict__.update(state)
        for name in ("_forward_hooks_always_called",):
            self.__dict__.setdefault(name, {})
        for name in ("_backward_hooks", "_backward_pre_hooks", "_state_dict_hooks", "_state_dict_pre_hooks",
                     "_load_state_dict_pre_hooks", "_load_state_dict_post_hooks"):
            self.__dict__.setdefault(name, OrderedDict())
        self.__dict__.setdefault("_is_full_backward_hook", None)

    def forward(self, *args, **kwargs):
        """The computation of the module, defined by every subclass: call the module (``model(x)``), not
        ``forward``, so that hooks run."""
        raise NotImplementedError(f'Module [{type(self).__name__}] is missing the required "forward" function')

    # ------------------------------------------------------------ calling and hooks
    def __call__(self, *args, **kwargs):
        # the nodes recorded inside know this module (autograd.dump / to_dot name it)
        prev = module_scope(self)
        try:
            if not self._forward_pre_hooks and not self._forward_hooks:
                return self.forward(*args, **kwargs)
            return self._call_with_hooks(args, kwargs)
        finally:
            module_scope(prev)

    def _call_with_hooks(self, args, kwargs):
        return _hooks.call_with_hooks(self, args, kwargs)

    def register_forward_pre_hook(self, hook: Callable, *, prepend: bool = False, with_kwargs: bool = False):
        """``hook(module, args)`` runs before ``forward``; it may return replacement args."""
        h = RemovableHandle(self._forward_pre_hooks)
        self._forward_pre_hooks[h.id] = hook
        if with_kwargs:
            self._forward_pre_hooks_with_kwargs.add(h.id)
        if prepend:
            self._forward_pre_hooks.move_to_end(h.id, last=False)
        return h

    def register_forward_hook(self, hook: Callable, *, prepend: bool = False, with_kwargs: bool = False,
                              always_call: bool = False):
        """``hook(module, args, output)`` runs after ``forward``; it may return a replacement output."""
        h = RemovableHandle(self._forward_hooks)
        self._forward_hooks[h.id] = hook
        if with_kwargs:
            self._forward_hooks_with_kwargs.add(h.id)
        if always_call:
            self._forward_hooks_always_called[h.id] = True
        if prepend:
            self._forward_hooks.move_to_end(h.id, last=False)
        return h

    def register_full_backward_pre_hook(self, hook: Callable, prepend: bool = False):
        """``hook(module, grad_output)`` runs when the gradients of the module's outputs are known,
        before they flow into it; it may return a replacement ``grad_output`` (a tuple, one entry
        per output, None where one got no gradient).

        >>> h = model.register_full_backward_pre_hook(lambda m, go: (go[0] * 2,))
        """
        h = _hooks.BackwardHandle(self, self._backward_pre_hooks)
        self._backward_pre_hooks[h.id] = hook
        if prepend:
            self._backward_pre_hooks.move_to_end(h.id, last=False)
        _hooks.sync_backward_marker(self)
        return h

    def register_full_backward_hook(self, hook: Callable, prepend: bool = False):
        """``hook(module, grad_input, grad_output)`` runs once the gradients of the module's
        positional inputs are computed (None for inputs that do not require grad); it may return a
        replacement ``grad_input``. As PyTorch's, the module's tensor inputs and outputs pass
        through identity nodes, so the gradients are those of the module as a whole.

        >>> grads = {}
        >>> h = model.register_full_backward_hook(lambda m, gi, go: grads.update(out=go[0]))
        """
        if self._is_full_backward_hook is False:
            raise RuntimeError("Cannot use both regular backward hooks and full backward hooks on a single "
                               "Module. Please use only one of them.")
        self._is_full_backward_hook = True
        h = _hooks.BackwardHandle(self, self._backward_hooks)
        self._backward_hooks[h.id] = hook
        if prepend:
            self._backward_hooks.move_to_end(h.id, last=False)
        _hooks.sync_backward_marker(self)
        return h

    def register_backward_hook(self, hook: Callable):
        """Deprecated form of :meth:`register_full_backward_hook`: ``hook(module, grad_input,
        grad_output)``. Here it gets the full hook's arguments, which are PyTorch's when the module
        is a single op (PyTorch's differ for modules of several ops).

        >>> h = model.register_backward_hook(lambda m, gi, go: None)
        """
        if self._is_full_backward_hook is True:
            raise RuntimeError("Cannot use both regular backward hooks and full backward hooks on a single "
                               "Module. Please use only one of them.")
        self._is_full_backward_hook = False
        h = _hooks.BackwardHandle(self, self._backward_hooks)
        self._backward_hooks[h.id] = hook
        _hooks.sync_backward_marker(self)
        return h

    # ------------------------------------------------------------ registration
    def __setattr__(self, name: str, value) -> None:
        d = self.__dict__
        params = d.get("_parameters")
        if isinstance(value, Parameter):
            if params is None:
                raise AttributeError("cannot assign parameters before Module.__init__() call")
            self._remove_from(name, d, exclude="_parameters")
            self.register_parameter(name, value)
            return
        if params is not None and name in params:
            if value is not None:
                raise TypeError(f"cannot assign '{type(value).__name__}' as parameter '{name}' "
                                f"(tapegrad.nn.Parameter or None expected)")
            self.register_parameter(name, value)
            return
        modules = d.get("_modules")
        if isinstance(value, Module):
            if modules is None:
                raise AttributeError("cannot assign module before Module.__init__() call")
            self._remove_from(name, d, exclude="_modules")
            modules[name] = _run_registration_hooks(_hooks.global_module_registration_hooks, self, name, value)
            return
        if modules is not None and name in modules:
            if value is not None:
                raise TypeError(f"cannot assign '{type(value).__name__}' as child module '{name}' "
                                f"(tapegrad.nn.Module or None expected)")
            modules[name] = _run_registration_hooks(_hooks.global_module_registration_hooks, self, name, value)
            return
        buffers = d.get("_buffers")
        if isinstance(value, Buffer) or (buffers is not None and name in buffers):
            if value is not None and not isinstance(value, Tensor):
                raise TypeError(f"cannot assign '{type(value).__name__}' as buffer '{name}' "
                                f"(tapegrad.Tensor or None expected)")
            if isinstance(value, Buffer):
                persistent = value.persistent
                value = Tensor._wrap(value._data)
            else:
                persistent = name not in self._non_persistent_buffers_set
            self.register_buffer(name, value, persistent)
            return
        object.__setattr__(self, name, value)

    def _remove_from(self, name, d, exclude):
        for store in ("_parameters", "_buffers", "_modules"):
            if store != exclude and name in d.get(store, ()):
                del d[store][name]
        d.pop(name, None)
        self._non_persistent_buffers_set.discard(name)

    def __getattr__(self, name: str):
        d = self.__dict__
        for store in ("_parameters", "_buffers", "_modules"):
            s = d.get(store)
            if s is not None and name in s:
                return s[name]
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")

    def __delattr__(self, name: str) -> None:
        for store in ("_parameters", "_buffers", "_modules"):
            if name in self.__dict__.get(store, ()):
                del self.__dict__[store][name]
                self._non_persistent_buffers_set.discard(name)
                return
        object.__delattr__(self, name)

    def __dir__(self):
        return sorted(set(super().__dir__()) | set(self._parameters) | set(self._buffers) | set(self._modules))

    def _check_name(self, name, kind):
        if not isinstance(name, str):
            raise TypeError(f"{kind} name should be a string, got {type(name).__name__}")
        if name == "" or "." in name:
            raise KeyError(f"{kind} name can't be empty or contain \".\", got: {name!r}")
        if hasattr(self, name) and not any(name in self.__dict__[s] for s in ("_parameters", "_buffers",
                                                                               "_modules")):
            raise KeyError(f"attribute '{name}' already exists")

    def register_parameter(self, name: str, param: Parameter | None) -> None:
        """Add a parameter (a :class:`~tapegrad.nn.Parameter` or None) under ``name``; as ``self.name = param``."""
        if "_parameters" not in self.__dict__:
            raise AttributeError("cannot assign parameter before Module.__init__() call")
        self._check_name(name, "parameter")
        if param is not None and not isinstance(param, Parameter):
            raise TypeError(f"cannot assign '{type(param).__name__}' object to parameter '{name}' "
                            f"(tapegrad.nn.Parameter or None required)")
        if param is not None and param.grad_fn is not None:
            raise ValueError(f"cannot assign non-leaf Tensor to parameter '{name}': parameters must be created "
                             f"explicitly (wrap the tensor's data: Parameter(t.detach()))")
        self._parameters[name] = _run_registration_hooks(_hooks.global_parameter_registration_hooks, self, name,
                                                         param)

    def register_buffer(self, name: str, tensor: Tensor | None, persistent: bool = True) -> None:
        """A tensor that is part of the module's state (saved in ``state_dict`` when persistent)
        but not a parameter, e.g. BatchNorm's running mean."""
        if "_buffers" not in self.__dict__:
            raise AttributeError("cannot assign buffer before Module.__init__() call")
        self._check_name(name, "buffer")
        if tensor is not None and not isinstance(tensor, Tensor):
            raise TypeError(f"cannot assign '{type(tensor).__name__}' object to buffer '{name}' "
                            f"(tapegrad.Tensor or None required)")
        self._buffers[name] = _run_registration_hooks(_hooks.global_buffer_registration_hooks, self, name, tensor)
        if persistent:
            self._non_persistent_buffers_set.discard(name)
        else:
            self._non_persistent_buffers_set.add(name)

    def add_module(self, name: str, module: "Module | None") -> None:
        """Add a child module under ``name`` (as ``self.name = module``); ``register_module`` is the same."""
        if module is not None and not isinstance(module, Module):
            raise TypeError(f"{type(module).__name__} is not a Module subclass")
        self._check_name(name, "module")
        self._modules[name] = _run_registration_hooks(_hooks.global_module_registration_hooks, self, name, module)

    register_module = add_module

    def get_submodule(self, target: str) -> "Module":
        """The submodule at the dotted path ``target`` (``"features.0"``); ``""`` is the module itself."""
        mod = self
        for item in target.split(".") if target else []:
            if item not in mod._modules:
                raise AttributeError(f"{mod._get_name()} has no attribute `{item}` (looking up {target!r})")
            mod = mod._modules[item]
        return mod

    def set_submodule(self, target: str, module: "Module", strict: bool = False) -> None:
        """Put ``module`` at the dotted path ``target`` (``"features.0"``); the parent must exist, and
        with ``strict=True`` so must a submodule at ``target``.

        >>> model.set_submodule("fc", nn.Linear(4, 3))
        """
        if target == "":
            raise ValueError("set_submodule: Cannot set the submodule without a target name!")
        if not isinstance(module, Module):
            raise ValueError(f"set_submodule: `module` is not an nn.Module, found {type(module)}")
        parent_path, _, name = target.rpartition(".")
        mod = self
        for item in parent_path.split(".") if parent_path else []:
            if not hasattr(mod, item):
                raise AttributeError(f"set_submodule: {mod._get_name()} has no attribute `{item}` (target {target!r})")
            mod = getattr(mod, item)
            if not isinstance(mod, Module):
                raise AttributeError(f"set_submodule: `{item}` is not an nn.Module (target {target!r})")
        if strict and not hasattr(mod, name):
            raise AttributeError(f"set_submodule: {mod._get_name()} has no attribute `{name}` (target {target!r}, "
                                 f"strict=True)")
        if hasattr(mod, name) and not isinstance(getattr(mod, name), Module) and (strict or name not in mod._modules):
            if strict or getattr(mod, name) is not None:
                raise AttributeError(f"set_submodule: `{name}` is not an nn.Module (target {target!r})")
        setattr(mod, name, module)

    def get_parameter(self, target: str) -> Parameter:
        """The parameter at the dotted path ``target`` (``"fc1.weight"``)."""
        mod_path, _, name = target.rpartition(".")
        mod = self.get_submodule(mod_path)
        if name not in mod._parameters:
            raise AttributeError(f"{mod._get_name()} has no parameter `{name}`")
        return mod._parameters[name]

    def get_buffer(self, target: str) -> Tensor:
        """The buffer at the dotted path ``target`` (``"bn.running_mean"``)."""
        mod_path, _, name = target.rpartition(".")
        mod = self.get_submodule(mod_path)
        if name not in mod._buffers:
            raise AttributeError(f"{mod._get_name()} has no buffer `{name}`")
        return mod._buffers[name]

    # ------------------------------------------------------------ traversal
    def named_modules(self, memo=None, prefix: str = "", remove_duplicate: bool = True):
        """Yield ``(dotted name, module)`` for this module (name ``prefix``) and every submodule, each once.

        >>> [name for name, _ in nn.Sequential(nn.Linear(2, 2), nn.ReLU()).named_modules()]
        ['', '0', '1']
        """
        if memo is None:
            memo = set()
        if remove_duplicate:
            if id(self) in memo:
                return
            memo.add(id(self))
        yield prefix, self
        for name, m in self._modules.items():
            if m is None:
                continue
            yield from m.named_modules(memo, prefix + ("." if prefix else "") + name, remove_duplicate)

    def modules(self) -> Iterator["Module"]:
        """Yield this module and every submodule, each once."""
        for _, m in self.named_modules():
            yield m

    def named_children(self):
        """Yield ``(name, module)`` for the direct children."""
        seen = set()
        for name, m in self._modules.items():
            if m is not None and id(m) not in seen:
                seen.add(id(m))
                yield name, m

    def children(self) -> Iterator["Module"]:
        """Yield the direct children."""
        for _, m in self.named_children():
            yield m

    def _named_members(self, store, prefix, recurse, remove_duplicate=True):
        seen = set()
        mods = self.named_modules(prefix=prefix, remove_duplicate=remove_duplicate) if recurse else [(prefix, self)]
        for mod_prefix, m in mods:
            for name, v in m.__dict__[store].items():
                if v is None or (remove_duplicate and id(v) in seen):
                    continue
                seen.add(id(v))
                yield mod_prefix + ("." if mod_prefix else "") + name, v

    def named_parameters(self, prefix: str = "", recurse: bool = True, remove_duplicate: bool = True):
        """Yield ``(dotted name, parameter)`` for the parameters of this module and (``recurse``) of its
        submodules, a shared parameter once.

        >>> [name for name, _ in nn.Linear(3, 2).named_parameters()]
        ['weight', 'bias']
        """
        yield from self._named_members("_parameters", prefix, recurse, remove_duplicate)

    def parameters(self, recurse: bool = True) -> Iterator[Parameter]:
        """Yield the parameters (of the submodules too, unless ``recurse=False``): what an optimizer takes.

        >>> opt = tapegrad.optim.SGD(model.parameters(), lr=0.1)
        """
        for _, p in self.named_parameters(recurse=recurse):
            yield p

    def named_buffers(self, prefix: str = "", recurse: bool = True, remove_duplicate: bool = True):
        """Yield ``(dotted name, buffer)`` for the buffers of this module and its submodules."""
        yield from self._named_members("_buffers", prefix, recurse, remove_duplicate)

    def buffers(self, recurse: bool = True) -> Iterator[Tensor]:
        """Yield the buffers (of the submodules too, unless ``recurse=False``)."""
        for _, b in self.named_buffers(recurse=recurse):
            yield b

    # ------------------------------------------------------------ modes and conversions
    def train(self, mode: bool = True) -> "Module":
        """Set training mode (``mode=True``) or evaluation mode on this module and every submodule;
        returns ``self``. Dropout and batch normalisation behave differently in the two."""
        if not isinstance(mode, bool):
            raise ValueError("training mode is expected to be boolean")
        self.training = mode
        for m in self.children():
            m.train(mode)
        return self

    def eval(self) -> "Module":
        """Set evaluation mode (``train(False)``); returns ``self``."""
        return self.train(False)

    def requires_grad_(self, requires_grad: bool = True) -> "Module":
        """Set ``requires_grad`` on every parameter (False freezes the module); returns ``self``."""
        for p in self.parameters():
            p.requires_grad_(requires_grad)
        return self

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Reset the gradients of every parameter: to None (``set_to_none=True``, the default) or to zeros."""
        zero_grads(self.parameters(), set_to_none)

    def apply(self, fn: Callable[["Module"], None]) -> "Module":
        """Call ``fn`` on every submodule (children first) and then on ``self``; e.g. custom init."""
        for m in self.children():
            m.apply(fn)
        fn(self)
        return self

    def _apply(self, fn: Callable[[np.ndarray], np.ndarray], floating_only: bool = True) -> "Module":
        """Replace every parameter's and buffer's array by ``fn(array)`` (in place on the objects,
        so optimizers holding the parameters keep seeing them)."""
        for m in self.modules():
            for store in ("_parameters", "_buffers"):
                for t in m.__dict__[store].values():
                    if t is None or (floating_only and _dtype.kind_of(t._data.dtype) != "f"):
                        continue
                    new = fn(t._data)
                    if new is not t._data:
                        t._data = new
                        t._bump_version()
                    if t.grad is not None:
                        t.grad._data = fn(t.grad._data)
        return self

    def to(self, *args, **kwargs) -> "Module":
        """``to(dtype)``, ``to(device)``, ``to(device, dtype)`` or ``to(tensor)``: floating parameters
        and buffers are cast; CPU is the only device.

        ``to("meta")`` is accepted for the one use PyTorch programs make of it on a whole module:
        turning a model into a data-free skeleton for :func:`tapegrad.func.functional_call` (the
        model-ensembling recipe). tapegrad has no meta tensors, so every parameter and buffer keeps
        its shape and dtype but its storage is released: it becomes a read-only zero-strided view
        of one zero (no memory), so is its gradient's, and it still reports the CPU as device.
        Computing with it gives zeros where PyTorch would give meta tensors; writing to it raises."""
        dtype = kwargs.pop("dtype", None)
        dev = kwargs.pop("device", None)
        kwargs.pop("non_blocking", None)
        mf = kwargs.pop("memory_format", None)
        if mf is not None:  # the layout of 4-D tensors; tapegrad's modules keep C order
            _check_memory_format(mf, "Module.to")
        if kwargs:
            raise TypeError(f"to() got unexpected keyword arguments {sorted(kwargs)}")
        for a in args:
            if isinstance(a, Tensor):
                dtype = a.dtype
            elif isinstance(a, (str, _device)) and not _is_dtype_name(a):
                dev = a
            elif a is not None:
                dtype = a
        if dev is not None and str(dev) == "meta":
            return self._to_meta(dtype)
        if dev is not None:
            _check_cpu(dev)
        if dtype is None:
            return self
        dtype = _dtype.to_dtype(dtype)
        if _dtype.kind_of(dtype) != "f":
            raise TypeError(f"nn.Module.to only accepts floating point dtypes, but got desired dtype="
                            f"{_dtype.name(dtype)}")
        return self._apply(lambda a: a if a.dtype == dtype else a.astype(dtype))

    def _to_meta(self, dtype=None) -> "Module":
        dtype = None if dtype is None else _dtype.to_dtype(dtype)
        for m in self.modules():
            for store in ("_parameters", "_buffers"):
                for t in m.__dict__[store].values():
                    if t is None:
                        continue
                    dt = dtype if dtype is not None and _dtype.kind_of(t._data.dtype) == "f" else t._data.dtype
                    t._data = np.broadcast_to(np.zeros((), dt), t._data.shape)
                    t._bump_version()
                    if t.grad is not None:
                        t.grad._data = np.broadcast_to(np.zeros((), dt), t.grad._data.shape)
        return self

    def to_empty(self, *, device=None, recurse: bool = True) -> "Module":
        """Give every parameter and buffer new uninitialised storage of the same shape and dtype on
        ``device`` (the CPU); returns ``self``. PyTorch uses it to materialise meta-device modules."""
        if device is not None:
            _check_cpu(device)
        mods = self.modules() if recurse else [self]
        for m in mods:
            for store in ("_parameters", "_buffers"):
                for t in m.__dict__[store].values():
                    if t is not None:
                        t._data = np.empty_like(t._data)
                        t._bump_version()
        return self

    def compile(self, *args, **kwargs) -> None:
        """A no-op, as :func:`tapegrad.compile`: PyTorch's compiles ``forward`` in place; tapegrad
        runs it as it is."""
        return None

    def cpu(self) -> "Module":
        """Returns ``self``: the CPU is the only device."""
        return self

    def cuda(self, device=None) -> "Module":
        """Raises: tapegrad runs on the CPU only."""
        raise RuntimeError("tapegrad runs on the CPU only: CUDA is not available")

    def float(self) -> "Module":
        """Cast floating parameters and buffers to float32; returns ``self``."""
        return self.to(_dtype.float32)

    def double(self) -> "Module":
        """Cast floating parameters and buffers to float64; returns ``self``."""
        return self.to(_dtype.float64)

    def half(self) -> "Module":
        """Cast floating parameters and buffers to float16; returns ``self``."""
        return self.to(_dtype.float16)

    def bfloat16(self) -> "Module":
        """Cast floating parameters and buffers to bfloat16 (needs ml_dtypes); returns ``self``."""
        return self.to("bfloat16")

    def type(self, dst_type) -> "Module":
        """Cast every parameter and buffer (integer ones too) to ``dst_type``; returns ``self``."""
        return self._apply(lambda a: a.astype(_dtype.to_dtype(dst_type)), floating_only=False)

    def share_memory(self) -> "Module":
        """Move every parameter, buffer and existing gradient into shared memory (``share_memory_()``,
        all in one segment) and return ``self``: processes given this module, forked or spawned,
        then read and update the same tensors (Hogwild training)."""
        tensors = [t for _, t in self.named_parameters(remove_duplicate=True)]
        tensors += [p.grad for p in tensors if p.grad is not None]
        tensors += [b for _, b in self.named_buffers(remove_duplicate=True) if b is not None]
        _shared.share(tensors)
        return self

    # ------------------------------------------------------------ state_dict
    def _save_to_state_dict(self, destination, prefix, keep_vars):
        for name, p in self._parameters.items():
            if p is not None:
                destination[prefix + name] = p if keep_vars else p.detach()
        for name, b in self._buffers.items():
            if b is not None and name not in self._non_persistent_buffers_set:
                destination[prefix + name] = b if keep_vars else b.detach()
        if type(self).get_extra_state is not Module.get_extra_state:
            destination[prefix + _EXTRA_STATE_KEY_SUFFIX] = self.get_extra_state()

    def get_extra_state(self):
        """The module's extra state (any picklable object), saved in ``state_dict`` under
        ``"_extra_state"``; override it together with :meth:`set_extra_state`.

        >>> class Counter(nn.Module):
        ...     def get_extra_state(self):
        ...         return {"calls": self.calls}
        ...     def set_extra_state(self, state):
        ...         self.calls = state["calls"]
        """
        raise RuntimeError("Reached a code path in Module.get_extra_state() that should never be called. Please "
                           "override get_extra_state() to return the module's extra state.")

    def set_extra_state(self, state) -> None:
        """Restore what :meth:`get_extra_state` returned (``load_state_dict`` calls it with the
        ``"_extra_state"`` entry); override it together with ``get_extra_state``."""
        raise RuntimeError("Reached a code path in Module.set_extra_state() that should never be called. Please "
                           "override set_extra_state() to restore the module's extra state.")

    def register_state_dict_pre_hook(self, hook: Callable):
        """``hook(module, prefix, keep_vars)`` runs before ``state_dict`` saves this module.

        >>> h = model.register_state_dict_pre_hook(lambda m, prefix, keep_vars: None)
        """
        h = RemovableHandle(self._state_dict_pre_hooks)
        self._state_dict_pre_hooks[h.id] = hook
        return h

    def register_state_dict_post_hook(self, hook: Callable):
        """``hook(module, state_dict, prefix, local_metadata)`` runs after ``state_dict`` saved this
        module (and its submodules); it may edit ``state_dict`` in place and must return None.

        >>> h = model.register_state_dict_post_hook(lambda m, sd, prefix, meta: None)
        """
        h = RemovableHandle(self._state_dict_hooks)
        self._state_dict_hooks[h.id] = hook
        hook_public = getattr(hook, "__func__", hook)
        try:
            hook_public._from_public_api = True
        except AttributeError:
            pass
        return h

    def _register_state_dict_hook(self, hook: Callable):
        """PyTorch's private form: as ``register_state_dict_post_hook``, but the hook may return a
        replacement state dict."""
        h = RemovableHandle(self._state_dict_hooks)
        self._state_dict_hooks[h.id] = hook
        return h

    def register_load_state_dict_pre_hook(self, hook: Callable):
        """``hook(module, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
        error_msgs)`` runs before ``load_state_dict`` loads this module; it may edit ``state_dict``
        (a copy of the caller's), e.g. rename old keys.

        >>> h = model.register_load_state_dict_pre_hook(lambda m, sd, prefix, *rest: None)
        """
        h = RemovableHandle(self._load_state_dict_pre_hooks)
        self._load_state_dict_pre_hooks[h.id] = hook
        return h

    def _register_load_state_dict_pre_hook(self, hook: Callable, with_module: bool = False):
        """PyTorch's private form, still common in libraries: ``hook(state_dict, prefix,
        local_metadata, strict, missing_keys, unexpected_keys, error_msgs)``, given the module
        first only ``with_module``."""
        return self.register_load_state_dict_pre_hook(hook if with_module else lambda module, *args: hook(*args))

    def register_load_state_dict_post_hook(self, hook: Callable):
        """``hook(module, incompatible_keys)`` runs after ``load_state_dict``; it may edit
        ``incompatible_keys.missing_keys`` / ``unexpected_keys`` in place (before the strict check)
        and must return None.

        >>> h = model.register_load_state_dict_post_hook(lambda m, keys: keys.missing_keys.clear())
        """
        h = RemovableHandle(self._load_state_dict_post_hooks)
        self._load_state_dict_post_hooks[h.id] = hook
        return h

    def state_dict(self, *args, destination=None, prefix: str = "", keep_vars: bool = False):
        """An ordered dict from dotted names to the parameters and persistent buffers (detached,
        sharing memory with the module)."""
        if args:  # PyTorch's deprecated positional form (destination, prefix, keep_vars)
            destination = args[0]
            prefix = args[1] if len(args) > 1 else prefix
            keep_vars = args[2] if len(args) > 2 else keep_vars
        if destination is None:
            destination = OrderedDict()
            destination._metadata = OrderedDict()  # each module's version, as PyTorch's
        local_metadata = {"version": self._version}
        if hasattr(destination, "_metadata"):
            destination._metadata[prefix[:-1]] = local_metadata
        for hook in self._state_dict_pre_hooks.values():
            hook(self, prefix, keep_vars)
        self._save_to_state_dict(destination, prefix, keep_vars)
        for name, m in self._modules.items():
            if m is not None:
                m.state_dict(destination=destination, prefix=prefix + name + ".", keep_vars=keep_vars)
        for hook in self._state_dict_hooks.values():
            res = hook(self, destination, prefix, local_metadata)
            if res is not None:
                if getattr(hook, "_from_public_api", False):
                    raise RuntimeError(f"state_dict post-hook must return None, {hook!r} returned a "
                                       f"{type(res).__name__}")
                destination = res
        return destination

    def _local_state(self):
        state = {n: p for n, p in self._parameters.items() if p is not None}
        state.update({n: b for n, b in self._buffers.items()
                      if b is not None and n not in self._non_persistent_buffers_set})
        return state

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                              error_msgs):
        """Load this module's own parameters and buffers (not its submodules') from ``state_dict``,
        as PyTorch's: subclasses override it to rename or fill in keys of older checkpoints
        (``local_metadata["version"]`` is the saving module's ``_version``) before calling it."""
        for hook in self._load_state_dict_pre_hooks.values():
            hook(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs)
        assign = local_metadata.get("assign_to_params_buffers", False)
        local_state = self._local_state()
        for name, t in local_state.items():
            key = prefix + name
            if key not in state_dict:
                if strict:
                    missing_keys.append(key)
                continue
            value = state_dict[key]
            arr = value._data if isinstance(value, Tensor) else np.asarray(value)
            if hasattr(t, "materialize"):  # a lazy module's parameter takes the checkpoint's shape
                t.materialize(arr.shape)
            if tuple(arr.shape) != tuple(t.shape):
                error_msgs.append(f"size mismatch for {key}: copying a param with shape {tuple(arr.shape)} from "
                                  f"checkpoint, the shape in current model is {tuple(t.shape)}.")
                continue
            if assign:
                t._data = np.array(arr, dtype=t.dtype if arr.dtype.kind == t.dtype.kind else arr.dtype)
            else:
                try:
                    np.copyto(t._data, arr, casting="same_kind" if arr.dtype.kind == t.dtype.kind else "unsafe")
                except (TypeError, ValueError) as e:
                    error_msgs.append(f'While copying the parameter named "{key}", whose dimensions in the model '
                                      f'are {tuple(t.shape)} and whose dimensions in the checkpoint are '
                                      f'{tuple(arr.shape)}, an exception occurred : {e}.')
                    continue
            t._bump_version()
        extra_key = prefix + _EXTRA_STATE_KEY_SUFFIX
        if type(self).set_extra_state is not Module.set_extra_state:
            if extra_key in state_dict:
                self.set_extra_state(state_dict[extra_key])
            elif strict:
                missing_keys.append(extra_key)
        elif strict and extra_key in state_dict:
            unexpected_keys.append(extra_key)
        if strict:  # a key under this prefix that names neither a local tensor nor a submodule
            for key in state_dict:
                if key.startswith(prefix) and key != extra_key:
                    head = key[len(prefix):].split(".", 1)
                    if (head[0] not in self._modules) if len(head) > 1 else (head[0] not in local_state):
                        unexpected_keys.append(key)

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        """Copy parameters and buffers from ``state_dict`` into this module (in place).

        Returns ``(missing_keys, unexpected_keys)``. With ``strict=True`` any missing or
        unexpected key raises; a shape mismatch always raises. Errors name every key. Each
        module loads its part through ``_load_from_state_dict`` (which subclasses may override),
        given its entry of ``state_dict._metadata`` (the versions ``state_dict()`` records).
        """
        if not isinstance(state_dict, dict):
            raise TypeError(f"Expected state_dict to be dict-like, got {type(state_dict).__name__}.")
        missing, unexpected, errors = [], [], []
        metadata = getattr(state_dict, "_metadata", None)
        state_dict = OrderedDict(state_dict)  # overrides and hooks may edit it; the caller's stays as it is
        if metadata is not None:
            state_dict._metadata = metadata

        def load(module, local_state_dict, prefix=""):
            local_metadata = {} if metadata is None else dict(metadata.get(prefix[:-1], {}))
            if assign:
                local_metadata["assign_to_params_buffers"] = assign
            module._load_from_state_dict(local_state_dict, prefix, local_metadata, True, missing, unexpected, errors)
            for name, child in module._modules.items():
                if child is not None:
                    child_prefix = prefix + name + "."
                    load(child, {k: v for k, v in local_state_dict.items() if k.startswith(child_prefix)},
                         child_prefix)
            keys = _IncompatibleKeys(missing, unexpected)  # the hooks may edit the lists in place
            for hook in module._load_state_dict_post_hooks.values():
                if hook(module, keys) is not None:
                    raise RuntimeError(f"load_state_dict post hook {hook!r} should return None (it may edit "
                                       f"incompatible_keys in place)")

        load(self, state_dict)
        if strict:
            if unexpected:
                errors.insert(0, "Unexpected key(s) in state_dict: " + ", ".join(f'"{k}"' for k in unexpected)
                              + ". ")
            if missing:
                errors.insert(0, "Missing key(s) in state_dict: " + ", ".join(f'"{k}"' for k in missing) + ". ")
        if errors:
            raise RuntimeError(f"Error(s) in loading state_dict for {self._get_name()}:\n\t" + "\n\t".join(errors))
        return _IncompatibleKeys(missing, unexpected)

    # ------------------------------------------------------------ repr
    def _get_name(self) -> str:
        return type(self).__name__

    def extra_repr(self) -> str:
        """The text inside the parentheses of the module's ``repr`` (its settings); subclasses override it."""
        return ""

    def __repr__(self) -> str:
        extra = self.extra_repr()
        lines = extra.split("\n") if extra else []
        for name, m in self._modules.items():
            lines.append("(" + name + "): " + _addindent(repr(m), 2))
        body = self._get_name() + "("
        if lines:
            if len(lines) == 1 and not self._modules:
                body += lines[0]
            else:
                body += "\n  " + "\n  ".join(lines) + "\n"
        return body + ")"


def _is_dtype_name(a) -> bool:
    if not isinstance(a, str):
        return False
    try:
        _dtype.to_dtype(a)
        return a != "cpu" and not a.startswith(("cuda", "mps"))
    except TypeError:
        return False


def _run_registration_hooks(hooks, module, name, value):
    for hook in hooks.values():
        out = hook(module, name, value)
        if out is not None:
            value = out
    return value


def _call_global(self, *args, **kwargs):
    # Module.__call__ while a global hook is registered: the no-hook path stays free of the check
    prev = module_scope(self)
    try:
        return _hooks.call_with_hooks(self, args, kwargs)
    finally:
        module_scope(prev)


_plain_call = [None]  # Module.__call__ while no global call hook is registered


class _GlobalHandle(RemovableHandle):
    """A global call hook's handle: removing the last one restores the plain ``Module.__call__``."""

    def remove(self):
        """Remove the hook (again: nothing happens)."""
        super().remove()
        _hooks.global_forward_hooks_always_called.pop(self.id, None)
        _sync_call()


def _sync_call():
    if _hooks.any_global_call_hooks():
        if Module.__dict__["__call__"] is not _call_global:
            _plain_call[0] = Module.__dict__["__call__"]
            Module.__call__ = _call_global
    elif _plain_call[0] is not None:
        Module.__call__ = _plain_call[0]
        _plain_call[0] = None


def _add_global(store, hook, prepend=False):
    if not callable(hook):
        raise TypeError(f"hook must be callable, got {type(hook).__name__}")
    h = _GlobalHandle(store)
    store[h.id] = hook
    if prepend:
        store.move_to_end(h.id, last=False)
    _sync_call()
    return h


def register_module_forward_pre_hook(hook: Callable) -> RemovableHandle:
    """A forward pre hook ``hook(module, args)`` for every module (runs before the modules' own).

    >>> h = tapegrad.nn.modules.module.register_module_forward_pre_hook(lambda m, args: None)
    """
    return _add_global(_hooks.global_forward_pre_hooks, hook)


def register_module_forward_hook(hook: Callable, *, with_kwargs: bool = False,
                                 always_call: bool = False) -> RemovableHandle:
    """A forward hook ``hook(module, args, output)`` for every module (runs before the modules' own).

    >>> h = tapegrad.nn.modules.module.register_module_forward_hook(lambda m, args, out: None)
    """
    h = _add_global(_hooks.global_forward_hooks, hook)
    if with_kwargs:
        _hooks.global_forward_hooks_with_kwargs.add(h.id)
    if always_call:
        _hooks.global_forward_hooks_always_called[h.id] = True
    return h


def register_module_full_backward_pre_hook(hook: Callable) -> RemovableHandle:
    """A backward pre hook ``hook(module, grad_output)`` for every module (runs before the modules' own).

    >>> h = tapegrad.nn.modules.module.register_module_full_backward_pre_hook(lambda m, go: None)
    """
    return _add_global(_hooks.global_backward_pre_hooks, hook)


def _add_global_backward(hook, full):
    """Registers a global backward hook, full or regular: one kind for all of them, as PyTorch's."""
    if _hooks.global_is_full_backward_hook[0] is (not full):
        raise RuntimeError("Cannot use both regular backward hooks and full backward hooks as a global Module "
                           "hook. Please use only one of them.")
    _hooks.global_is_full_backward_hook[0] = full
    return _add_global(_hooks.global_backward_hooks, hook)


def register_module_full_backward_hook(hook: Callable) -> RemovableHandle:
    """A full backward hook ``hook(module, grad_input, grad_output)`` for every module.

    >>> h = tapegrad.nn.modules.module.register_module_full_backward_hook(lambda m, gi, go: None)
    """
    return _add_global_backward(hook, full=True)


def register_module_backward_hook(hook: Callable) -> RemovableHandle:
    """Deprecated global form of :meth:`Module.register_backward_hook` (here: a full backward hook).

    >>> h = tapegrad.nn.modules.module.register_module_backward_hook(lambda m, gi, go: None)
    """
    return _add_global_backward(hook, full=False)


def register_module_buffer_registration_hook(hook: Callable) -> RemovableHandle:
    """``hook(module, name, buffer)`` runs in every ``register_buffer``; it may return a replacement.

    >>> h = tapegrad.nn.modules.module.register_module_buffer_registration_hook(lambda m, n, b: None)
    """
    return _add_global(_hooks.global_buffer_registration_hooks, hook)


def register_module_module_registration_hook(hook: Callable) -> RemovableHandle:
    """``hook(module, name, submodule)`` runs whenever a submodule is registered; it may return a replacement.

    >>> h = tapegrad.nn.modules.module.register_module_module_registration_hook(lambda m, n, s: None)
    """
    return _add_global(_hooks.global_module_registration_hooks, hook)


def register_module_parameter_registration_hook(hook: Callable) -> RemovableHandle:
    """``hook(module, name, param)`` runs in every ``register_parameter``; it may return a replacement.

    >>> h = tapegrad.nn.modules.module.register_module_parameter_registration_hook(lambda m, n, p: None)
    """
    return _add_global(_hooks.global_parameter_registration_hooks, hook)
