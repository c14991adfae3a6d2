"""Stochastic weight averaging and exponential moving averages of a model, as ``torch.optim.swa_utils``.

>>> swa_model = AveragedModel(model)
>>> swa_scheduler = SWALR(opt, swa_lr=0.05)
>>> for epoch in range(epochs):
...     train_one_epoch(model, opt)
...     swa_model.update_parameters(model)
...     swa_scheduler.step()
>>> update_bn(loader, swa_model)
"""
from __future__ import annotations

import copy
import itertools
import math

import numpy as np

from .. import _dtype
from .._tape import grad_mode
from ..nn.modules.module import Module
from ..nn.modules.normalization import _BatchNorm
from ..tensor import Tensor
from .lr_scheduler import LRScheduler, _format_param

__all__ = ["AveragedModel", "update_bn", "SWALR", "get_ema_multi_avg_fn", "get_swa_multi_avg_fn",
           "get_ema_avg_fn", "get_swa_avg_fn"]


def get_ema_multi_avg_fn(decay: float = 0.999):
    """``multi_avg_fn`` of an exponential moving average: ``ema = decay * ema + (1 - decay) * param``,
    in place over lists of tensors.

    >>> ema_model = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(0.999))
    """
    def ema_update(ema_param_list, current_param_list, _):
        with grad_mode.no_grad():
            for p_ema, p_model in zip(ema_param_list, current_param_list):
                if _dtype.kind_of(p_ema._data.dtype) in "fc":
                    p_ema.lerp_(p_model, 1 - decay)
                else:
                    p_ema.copy_(p_ema * decay + p_model * (1 - decay))
    return ema_update


def get_swa_multi_avg_fn():
    """``multi_avg_fn`` of the equal-weight running average ``avg += (param - avg) / (n + 1)``, in
    place over lists of tensors.

    >>> swa_model = AveragedModel(model, multi_avg_fn=get_swa_multi_avg_fn())
    """
    def swa_update(averaged_param_list, current_param_list, num_averaged):
        n = float(num_averaged.item()) if isinstance(num_averaged, Tensor) else float(num_averaged)
        with grad_mode.no_grad():
            for p_avg, p_model in zip(averaged_param_list, current_param_list):
                if _dtype.kind_of(p_avg._data.dtype) in "fc":
                    p_avg.lerp_(p_model, 1 / (n + 1))
                else:
                    p_avg.copy_(p_avg + (p_model - p_avg) / (n + 1))
    return swa_update


def get_ema_avg_fn(decay: float = 0.999):
    """``avg_fn`` of an exponential moving average: returns ``decay * ema + (1 - decay) * param``.

    >>> ema_model = AveragedModel(model, avg_fn=get_ema_avg_fn(0.99))
    """
    def ema_update(ema_param, current_param, num_averaged):
        with grad_mode.no_grad():
            return decay * ema_param + (1 - decay) * current_param
    return ema_update


def get_swa_avg_fn():
    """``avg_fn`` of the equal-weight running average: returns ``avg + (param - avg) / (n + 1)``.

    >>> swa_model = AveragedModel(model, avg_fn=get_swa_avg_fn())
    """
    def swa_update(averaged_param, current_param, num_averaged):
        with grad_mode.no_grad():
            return averaged_param + (current_param - averaged_param) / (num_averaged + 1)
    return swa_update


class AveragedModel(Module):
    """A copy of ``model`` whose parameters (and buffers, with ``use_buffers=True``) are the running
    average of ``model``'s, updated by :meth:`update_parameters`; by default the equal-weight (SWA)
    average, or ``avg_fn(averaged, current, n_averaged)`` per tensor, or ``multi_avg_fn`` over
    lists. ``n_averaged`` is a buffer, saved in ``state_dict`` as PyTorch's.

    >>> ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(0.999))
    >>> ema.update_parameters(model)
    """

    def __init__(self, model: Module, device=None, avg_fn=None, multi_avg_fn=None, use_buffers: bool = False):
        super().__init__()
        if avg_fn is not None and multi_avg_fn is not None:
            raise ValueError("AveragedModel: only one of avg_fn and multi_avg_fn should be provided")
        if not isinstance(model, Module):
            raise TypeError(f"AveragedModel: model must be a tapegrad.nn.Module, got {type(model).__name__}")
        self.module = copy.deepcopy(model)
        if device is not None:
            self.module = self.module.to(device)
        self.register_buffer("n_averaged", Tensor._wrap(np.array(0, dtype=np.int64)))
        self.avg_fn = avg_fn
        self.multi_avg_fn = multi_avg_fn
        self.use_buffers = use_buffers

    def forward(self, *args, **kwargs):
        """Call the averaged copy of the model."""
        return self.module(*args, **kwargs)

    def update_parameters(self, model: Module) -> None:
        """Fold ``model``'s current parameters (and buffers with ``use_buffers``) into the average;
        the first call copies them."""
        if self.use_buffers:
            self_param = list(itertools.chain(self.module.parameters(), self.module.buffers()))
            model_param = list(itertools.chain(model.parameters(), model.buffers()))
        else:
            self_param = list(self.parameters())
            model_param = list(model.parameters())
        if len(self_param) != len(model_param):
            raise ValueError(f"AveragedModel.update_parameters: model has {len(model_param)} tensors to average, "
                             f"the averaged model {len(self_param)}")
        averaged = [p.detach() for p in self_param]
        current = [p.detach() for p in model_param]
        n = int(self.n_averaged._data)
        with grad_mode.no_grad():
            if n == 0:
                for a, c in zip(averaged, current):
                    a.copy_(c)
            elif self.avg_fn is not None:
                for a, c in zip(averaged, current):
                    a.copy_(self.avg_fn(a, c, self.n_averaged))
            else:
                fn = self.multi_avg_fn or get_swa_multi_avg_fn()
                groups: dict = {}  # as PyTorch's, one call per dtype
                for a, c in zip(averaged, current):
                    ga, gc = groups.setdefault(a._data.dtype, ([], []))
                    ga.append(a)
                    gc.append(c)
                for ga, gc in groups.values():
                    fn(ga, gc, self.n_averaged)
            if not self.use_buffers:  # the buffers follow the model's
                for b_swa, b_model in zip(self.module.buffers(), model.buffers()):
                    b_swa.copy_(b_model.detach())
        self.n_averaged._data += 1
        self.n_averaged._bump_version()


def update_bn(loader, model: Module, device=None) -> None:
    """Recompute the running statistics of ``model``'s batch-norm layers with one pass over
    ``loader`` (batches, or tuples whose first item is the input), as a cumulative average.

    >>> update_bn(train_loader, swa_model)
    """
    momenta = {}
    for module in model.modules():
        if isinstance(module, _BatchNorm):
            module.reset_running_stats()
            momenta[module] = module.momentum
    if not momenta:
        return
    was_training = model.training
    model.train()
    for module in momenta:
        module.momentum = None
    with grad_mode.no_grad():
        for inp in loader:
            if isinstance(inp, (list, tuple)):
                inp = inp[0]
            if device is not None:
                inp = inp.to(device)
            model(inp)
    for module, momentum in momenta.items():
        module.momentum = momentum
    model.train(was_training)


class SWALR(LRScheduler):
    """Anneal each group's learning rate to ``swa_lr`` over ``anneal_epochs`` steps (``"cos"`` or
    ``"linear"``), then hold it, as PyTorch's.

    >>> swa_scheduler = SWALR(opt, swa_lr=0.05, anneal_epochs=5, anneal_strategy="linear")
    """

    def __init__(self, optimizer, swa_lr, anneal_epochs: int = 10, anneal_strategy: str = "cos",
                 last_epoch: int = -1):
        swa_lrs = _format_param("swa_lr", optimizer, swa_lr)
        for lr, group in zip(swa_lrs, optimizer.param_groups):
            group["swa_lr"] = lr
        if anneal_strategy not in ("cos", "linear"):
            raise ValueError(f"SWALR: anneal_strategy must by one of 'cos' or 'linear', instead got "
                             f"{anneal_strategy!r}")
        self._anneal_strategy = anneal_strategy
        if not isinstance(anneal_epochs, int) or anneal_epochs < 0:
            raise ValueError(f"SWALR: anneal_epochs must be equal or greater than 0, got {anneal_epochs!r}")
        self.anneal_epochs = anneal_epochs
        super().__init__(optimizer, last_epoch)

    def anneal_func(self, t: float) -> float:
        """The fraction of the way to ``swa_lr`` at progress ``t`` in [0, 1]."""
        if self._anneal_strategy == "linear":
            return t
        return (1 - math.cos(math.pi * t)) / 2

    @staticmethod
    def _get_initial_lr(lr, swa_lr, alpha):
        if alpha == 1:
            return swa_lr
        return (lr - alpha * swa_lr) / (1 - alpha)

    def get_lr(self):
        """The learning rates of this step (chainable: computed from the groups' current ``lr``)."""
        step = self._step_count - 1
        if self.anneal_epochs == 0:
            step = max(1, step)
        prev_t = max(0, min(1, (step - 1) / max(1, self.anneal_epochs)))
        prev_alpha = self.anneal_func(prev_t)
        prev_lrs = [self._get_initial_lr(group["lr"], group["swa_lr"], prev_alpha)
                    for group in self.optimizer.param_groups]
        t = max(0, min(1, step / max(1, self.anneal_epochs)))
        alpha = self.anneal_func(t)
        return [group["swa_lr"] * alpha + lr * (1 - alpha) for group, lr in zip(self.optimizer.param_groups, prev_lrs)]
