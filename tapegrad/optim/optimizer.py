"""``Optimizer``: parameter groups, per-parameter state and PyTorch's ``state_dict`` format.

Subclasses implement ``_update(group, p, grad, state, scratch)`` on numpy arrays: the update
runs in place on ``p._data`` with ``out=`` arguments into per-parameter scratch buffers that
are allocated once, so a step allocates no parameter-sized temporaries and records no tape.
A subclass may also implement ``_fused_update(group, params)``: one C++ call over every
parameter of the group (``foreach``/``fused`` in PyTorch's terms), bit-identical to the
per-parameter path, which runs where it declines.
"""
from __future__ import annotations

import functools
import warnings
from collections import OrderedDict, defaultdict
from typing import Callable

import numpy as np

from .. import _C, _dtype
from .._tape import grad_mode
from ..nn.parameter import zero_grads
from ..autograd import RemovableHandle
from ..tensor import Tensor

_global_optimizer_pre_hooks: OrderedDict = OrderedDict()
_global_optimizer_post_hooks: OrderedDict = OrderedDict()


def register_optimizer_step_pre_hook(hook: Callable) -> RemovableHandle:
    """``hook(optimizer, args, kwargs)`` runs before every optimizer's ``step``; it may return
    ``(new_args, new_kwargs)``.

    >>> h = tapegrad.optim.optimizer.register_optimizer_step_pre_hook(lambda opt, args, kwargs: None)
    """
    h = RemovableHandle(_global_optimizer_pre_hooks)
    _global_optimizer_pre_hooks[h.id] = hook
    return h


def register_optimizer_step_post_hook(hook: Callable) -> RemovableHandle:
    """``hook(optimizer, args, kwargs)`` runs after every optimizer's ``step``.

    >>> h = tapegrad.optim.optimizer.register_optimizer_step_post_hook(lambda opt, args, kwargs: None)
    """
    h = RemovableHandle(_global_optimizer_post_hooks)
    _global_optimizer_post_hooks[h.id] = hook
    return h


def _hooked_step(step):
    """``step`` with the step pre and post hooks around it (once, when a subclass's step calls its
    base's); a step already wrapped is returned as it is."""
    if getattr(step, "_hooked", False):
        return step

    @functools.wraps(step)
    def wrapper(self, *args, **kwargs):
        d = self.__dict__
        pre, post = d.get("_optimizer_step_pre_hooks"), d.get("_optimizer_step_post_hooks")
        if d.get("_in_hooked_step") or not (pre or post or _global_optimizer_pre_hooks
                                            or _global_optimizer_post_hooks):
            return step(self, *args, **kwargs)
        d["_in_hooked_step"] = True
        args = (self,) + args  # as PyTorch's, the hooks see (and may replace) the optimizer among the args
        try:
            for hook in list(_global_optimizer_pre_hooks.values()) + list((pre or {}).values()):
                res = hook(self, args, kwargs)
                if res is not None:
                    if not (isinstance(res, tuple) and len(res) == 2):
                        raise RuntimeError(f"{type(self).__name__}.step: a step pre hook must return None or a "
                                           f"tuple of (new_args, new_kwargs), but got {res!r}.")
                    args, kwargs = res
            out = step(*args, **kwargs)
            for hook in list((post or {}).values()) + list(_global_optimizer_post_hooks.values()):
                hook(self, args, kwargs)
            return out
        finally:
            d["_in_hooked_step"] = False
    wrapper._hooked = True
    return wrapper


class _RequiredParameter:
    def __repr__(self):
        return "<required parameter>"


required = _RequiredParameter()


class Optimizer:
    """Base class: holds ``param_groups`` (dicts with ``'params'`` and the hyper-parameters),
    ``defaults`` and ``state`` (a dict per parameter).

    >>> opt = tapegrad.optim.SGD([{"params": model.base.parameters()},
    ...                           {"params": model.head.parameters(), "lr": 1e-3}], lr=1e-2, momentum=0.9)
    """

    _n_scratch = 1  # parameter-sized buffers each subclass's update needs

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        step = cls.__dict__.get("step")
        if step is not None:
            cls.step = _hooked_step(step)

    def _patch_step_function(self) -> None:
        """PyTorch's private installer of the step hooks, which optimizer wrappers call after
        swapping in their own ``step``: the class's ``step`` runs the hooks (wrapped once)."""
        type(self).step = _hooked_step(type(self).step)

    def _hook_store(self, name):
        store = self.__dict__.get(name)
        if store is None:
            store = self.__dict__[name] = OrderedDict()
        return store

    def _add_hook(self, name, hook, prepend=False):
        store = self._hook_store(name)
        h = RemovableHandle(store)
        store[h.id] = hook
        if prepend:
            store.move_to_end(h.id, last=False)
        return h

    def register_step_pre_hook(self, hook: Callable) -> RemovableHandle:
        """``hook(optimizer, args, kwargs)`` runs before ``step``; it may return ``(new_args, new_kwargs)``.

        >>> h = opt.register_step_pre_hook(lambda opt, args, kwargs: None)
        """
        return self._add_hook("_optimizer_step_pre_hooks", hook)

    def register_step_post_hook(self, hook: Callable) -> RemovableHandle:
        """``hook(optimizer, args, kwargs)`` runs after ``step``.

        >>> h = opt.register_step_post_hook(lambda opt, args, kwargs: None)
        """
        return self._add_hook("_optimizer_step_post_hooks", hook)

    def register_state_dict_pre_hook(self, hook: Callable, prepend: bool = False) -> RemovableHandle:
        """``hook(optimizer)`` runs before ``state_dict`` builds its result.

        >>> h = opt.register_state_dict_pre_hook(lambda opt: None)
        """
        return self._add_hook("_optimizer_state_dict_pre_hooks", hook, prepend)

    def register_state_dict_post_hook(self, hook: Callable, prepend: bool = False) -> RemovableHandle:
        """``hook(optimizer, state_dict)`` runs on ``state_dict``'s result; it may return a replacement.

        >>> h = opt.register_state_dict_post_hook(lambda opt, sd: None)
        """
        return self._add_hook("_optimizer_state_dict_post_hooks", hook, prepend)

    def register_load_state_dict_pre_hook(self, hook: Callable, prepend: bool = False) -> RemovableHandle:
        """``hook(optimizer, state_dict)`` runs before ``load_state_dict`` (on a copy of the caller's);
        it may return a replacement.

        >>> h = opt.register_load_state_dict_pre_hook(lambda opt, sd: None)
        """
        return self._add_hook("_optimizer_load_state_dict_pre_hooks", hook, prepend)

    def register_load_state_dict_post_hook(self, hook: Callable, prepend: bool = False) -> RemovableHandle:
        """``hook(optimizer)`` runs after ``load_state_dict``.

        >>> h = opt.register_load_state_dict_post_hook(lambda opt: None)
        """
        return self._add_hook("_optimizer_load_state_dict_post_hooks", hook, prepend)

    def __init__(self, params, defaults: dict):
        self.defaults = defaults
        self.state: dict = defaultdict(dict)
        self.param_groups: list[dict] = []
        self._scratch: dict = {}
        if isinstance(params, Tensor):
            raise TypeError(f"params argument given to the optimizer should be an iterable of Tensors or dicts, "
                            f"but got {type(params).__name__}")
        groups = list(params)
        if not groups:
            raise ValueError("optimizer got an empty parameter list")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        for g in groups:
            self.add_param_group(g)

    def __repr__(self) -> str:
        s = type(self).__name__ + " ("
        for i, group in enumerate(self.param_groups):
            s += f"\nParameter Group {i}"
            for key in sorted(group):
                if key != "params":
                    s += f"\n    {key}: {group[key]}"
        return s + "\n)"

    def add_param_group(self, param_group: dict) -> None:
        """Add a group of parameters (e.g. layers unfrozen during fine-tuning) with its own options."""
        if not isinstance(param_group, dict):
            raise TypeError(f"param_group must be a dict, but got {type(param_group).__name__}")
        params = param_group["params"]
        if isinstance(params, Tensor):
            param_group["params"] = [params]
        elif isinstance(params, set):
            raise TypeError("optimizer parameters need to be organized in ordered collections, but the ordering of "
                            "tensors in sets will change between runs. Please use a list instead.")
        else:
            param_group["params"] = list(params)
        for p in param_group["params"]:
            if not isinstance(p, Tensor):
                raise TypeError(f"optimizer can only optimize Tensors, but one of the params is "
                                f"{type(p).__name__}")
            if not p.is_leaf:
                raise ValueError("can't optimize a non-leaf Tensor")
        for name, default in self.defaults.items():
            if default is required and name not in param_group:
                raise ValueError(f"parameter group didn't specify a value of required optimization parameter "
                                 f"{name}")
            param_group.setdefault(name, default)
        existing = {id(p) for g in self.param_groups for p in g["params"]}
        if len({id(p) for p in param_group["params"]}) != len(param_group["params"]):
            # PyTorch warns and keeps both copies, so step() updates that parameter twice (its lr
            # doubled, its Adam moments fed twice); the group keeps each parameter once here
            warnings.warn("optimizer contains a parameter group with duplicate parameters; each is kept once "
                          "(PyTorch keeps the copies and updates such a parameter twice per step)", UserWarning,
                          stacklevel=4)  # (the optimizer's constructor's caller)
            param_group["params"] = list({id(p): p for p in param_group["params"]}.values())
        if existing & {id(p) for p in param_group["params"]}:
            raise ValueError("some parameters appear in more than one parameter group")
        self.param_groups.append(param_group)

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Reset the gradients of every parameter: to None (``set_to_none=True``, the default) or to zeros."""
        zero_grads((p for group in self.param_groups for p in group["params"]), set_to_none)

    # ------------------------------------------------------------ stepping
    def step(self, closure=None):
        """One update of every parameter that has a gradient; ``closure`` re-evaluates the loss."""
        loss = None
        if closure is not None:
            with grad_mode.enable_grad():
                loss = closure()
        with grad_mode.no_grad():
            for group in self.param_groups:
                self._prepare_group(group)
                if self._fused_update(group, [p for p in group["params"] if p.grad is not None]):
                    continue
                for p in group["params"]:
                    if p.grad is None:
                        continue
                    g = p.grad._data
                    if g.shape != p._data.shape:
                        raise RuntimeError(f"{type(self).__name__}: gradient of shape {g.shape} does not match its "
                                           f"parameter of shape {p._data.shape}")
                    state = self.state[p]
                    if not state:
                        self._init_state(group, p, state)
                    self._update(group, p._data, g, state, self._buffers(p))
                    p._bump_version()
        return loss

    def _buffers(self, p):
        bufs = self._scratch.get(p)
        if bufs is None or bufs[0].shape != p._data.shape or bufs[0].dtype != p._data.dtype:
            bufs = [np.empty_like(p._data) for _ in range(self._n_scratch)]
            self._scratch[p] = bufs
        return bufs

    def _prepare_group(self, group) -> None:
        pass

    def _fused_update(self, group, params) -> bool:
        """Updates ``params`` (those of ``group`` with a gradient) in one fused call and returns
        True, or returns False for the per-parameter path."""
        return False

    def _fused_arrays(self, group, params):
        """The parameters' and gradients' arrays if the fused kernels take them (the group asks
        for it, or leaves both ``fused`` and ``foreach`` unset; one float dtype; contiguous;
        gradients of their parameters' shapes), else None. ``fused=True`` on parameters the
        kernels cannot take is an error, as in PyTorch."""
        fused, foreach = group.get("fused"), group.get("foreach")
        if fused and foreach:
            raise RuntimeError(f"{type(self).__name__}: `fused` and `foreach` cannot be `True` together.")
        wanted = bool(fused or foreach) or (fused is None and foreach is None)
        if not wanted or group.get("differentiable") or not params or not isinstance(group.get("lr"), (int, float)):
            return None
        ps, gs = [p._data for p in params], [p.grad._data for p in params]
        dt = ps[0].dtype
        ok = dt in (np.float32, np.float64) and all(
            a.dtype == dt and b.dtype == dt and a.shape == b.shape and a.flags.c_contiguous and a.flags.writeable
            and b.flags.c_contiguous for a, b in zip(ps, gs))
        if not ok and fused:
            raise RuntimeError(f"{type(self).__name__}: `fused=True` requires every parameter with a gradient to be "
                               f"a contiguous float32 or float64 tensor of one dtype, with a gradient of its shape")
        return (ps, gs) if ok else None

    def _init_state(self, group, p, state) -> None:
        pass

    def _update(self, group, p, g, state, scratch) -> None:
        raise NotImplementedError

    @staticmethod
    def _effective_grad(g, p, weight_decay, maximize, buf):
        """``(-g if maximize else g) + weight_decay * p`` (into ``buf`` when it differs from ``g``)."""
        if weight_decay != 0:
            np.multiply(p, weight_decay, out=buf)
            if maximize:
                np.subtract(buf, g, out=buf)
            else:
                np.add(g, buf, out=buf)
            return buf
        if maximize:
            np.negative(g, out=buf)
            return buf
        return g

    @staticmethod
    def _zeros_state(p) -> Tensor:
        return Tensor._wrap(np.zeros_like(p._data))

    @staticmethod
    def _step_state() -> Tensor:
        return Tensor._wrap(np.zeros((), dtype=np.float32))

    # ------------------------------------------------------------ state_dict
    def state_dict(self) -> dict:
        """``{'state': {index: {...}}, 'param_groups': [{..., 'params': [index, ...]}]}``, PyTorch's
        format, with parameters numbered in order across groups. Values are references: save it
        (``tapegrad.save``) or deep-copy it to keep a snapshot."""
        for hook in list(self.__dict__.get("_optimizer_state_dict_pre_hooks", {}).values()):
            hook(self)
        index: dict[int, int] = {}
        groups = []
        for group in self.param_groups:
            packed = {k: v for k, v in group.items() if k != "params"}
            for p in group["params"]:
                if id(p) not in index:
                    index[id(p)] = len(index)
            packed["params"] = [index[id(p)] for p in group["params"]]
            groups.append(packed)
        state = {index[id(p)]: s for p, s in self.state.items() if id(p) in index}
        result = {"state": state, "param_groups": groups}
        for hook in list(self.__dict__.get("_optimizer_state_dict_post_hooks", {}).values()):
            res = hook(self, result)
            if res is not None:
                result = res
        return result

    def load_state_dict(self, state_dict: dict) -> None:
        """Restore hyper-parameters and per-parameter state (copied, cast to each parameter's dtype
        except ``step``) from ``state_dict``; groups must match in number and size."""
        state_dict = _copy_tree(state_dict)
        for hook in list(self.__dict__.get("_optimizer_load_state_dict_pre_hooks", {}).values()):
            res = hook(self, state_dict)
            if res is not None:
                state_dict = res
        saved_groups = state_dict["param_groups"]
        if len(saved_groups) != len(self.param_groups):
            raise ValueError(f"loaded state dict has a different number of parameter groups "
                             f"({len(saved_groups)}) than the optimizer ({len(self.param_groups)})")
        for i, (g, sg) in enumerate(zip(self.param_groups, saved_groups)):
            if len(g["params"]) != len(sg["params"]):
                raise ValueError(f"loaded state dict contains a parameter group that doesn't match the size of "
                                 f"optimizer's group: group {i} has {len(sg['params'])} parameters in the state "
                                 f"dict and {len(g['params'])} in the optimizer")
        id_map = {}
        for g, sg in zip(self.param_groups, saved_groups):
            for saved_id, p in zip(sg["params"], g["params"]):
                id_map[saved_id] = p
        state = defaultdict(dict)
        for k, v in state_dict["state"].items():
            key = int(k) if isinstance(k, str) and k.isdigit() else k
            if key not in id_map:
                continue
            p = id_map[key]
            state[p] = {name: _cast_state(name, val, p) for name, val in v.items()}
        self.state = state
        new_groups = []
        for g, sg in zip(self.param_groups, saved_groups):
            ng = dict(sg)
            ng["params"] = g["params"]
            if "betas" in ng and isinstance(ng["betas"], list):
                ng["betas"] = tuple(ng["betas"])
            new_groups.append(ng)
        self.param_groups = new_groups
        for hook in list(self.__dict__.get("_optimizer_load_state_dict_post_hooks", {}).values()):
            hook(self)


Optimizer.step = _hooked_step(Optimizer.step)


def _copy_tree(obj):
    """A deep copy of nested dicts/lists/tuples in which tensors become fresh leaves with copied data."""
    if isinstance(obj, Tensor):
        return Tensor._wrap(np.array(obj._data))
    if isinstance(obj, np.ndarray):
        return obj.copy()
    if isinstance(obj, dict):
        return {k: _copy_tree(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_copy_tree(v) for v in obj)
    return obj


def _cast_state(name, value, p):
    if isinstance(value, np.ndarray):
        value = Tensor._wrap(value)
    if not isinstance(value, Tensor):
        return value
    if name == "step":
        return Tensor._wrap(np.array(value._data, dtype=np.float32))
    if _dtype.kind_of(value._data.dtype) == "f" and value._data.dtype != p._data.dtype:
        return Tensor._wrap(value._data.astype(p._data.dtype))
    return Tensor._wrap(np.array(value._data))
