"""``swap_in_optimizer_params_and_state``: run an optimizer on other parameters and state for a while."""
from __future__ import annotations

import contextlib
from collections import defaultdict

from ..tensor import Tensor

_NAME = "swap_in_optimizer_params_and_state"


def _checked_groups(optimizer, swapin_parameters, swapin_optim_state):
    """PyTorch's checks of the swap-in values; returns (state by packed id, [(live group, swap-in group,
    its parameters)])."""
    if not optimizer.state:
        raise RuntimeError(f"{_NAME} requires initialized optimizer state.")
    if not isinstance(swapin_optim_state, dict):
        raise RuntimeError(f"{_NAME} requires a DCP-style optimizer state_dict.")
    state, groups = swapin_optim_state.get("state"), swapin_optim_state.get("param_groups")
    if not isinstance(state, dict):
        raise RuntimeError(f"{_NAME} requires swapin_optim_state['state'] to be a dict mapping packed parameter ids "
                           f"to per-param state dicts, got {type(state).__name__}.")
    if any(isinstance(k, Tensor) for k in state):
        raise RuntimeError(f"{_NAME} requires optimizer.state_dict()-style state keyed by packed parameter ids.")
    if any(isinstance(k, int) and not isinstance(v, dict) for k, v in state.items()):
        raise RuntimeError(f"{_NAME} requires per-parameter optimizer state entries to be dictionaries.")
    if not isinstance(groups, list):
        raise RuntimeError(f"{_NAME} requires swapin_optim_state['param_groups'] to be a list of param-group dicts, "
                           f"got {type(groups).__name__}.")
    if len(groups) != len(optimizer.param_groups):
        raise RuntimeError("swapin_optim_state has a different number of parameter groups than the live optimizer.")
    flat = list(swapin_parameters.values())
    offset, seen, plan = 0, set(), []
    for i, (live, swap) in enumerate(zip(optimizer.param_groups, groups)):
        if not isinstance(swap, dict):
            raise RuntimeError(f"{_NAME} requires each optimizer param group to be a dictionary.")
        ids = swap.get("params")
        if not isinstance(ids, list) or not all(isinstance(pid, int) for pid in ids):
            raise RuntimeError(f"{_NAME} requires optimizer.state_dict()-style param_groups[*]['params'] entries "
                               f"keyed by packed parameter ids.")
        if len(ids) != len(live["params"]):
            raise RuntimeError(f"swapin_optim_state param group {i} has a different number of params than the live "
                               f"optimizer param group.")
        swap_only, live_only = [k for k in swap if k not in live], [k for k in live if k not in swap]
        if swap_only or live_only:
            raise RuntimeError(f"{_NAME} requires optimizer.state_dict()-style param group keys to exactly match the "
                               f"live optimizer group keys for group {i}. Keys only in swap-in: {swap_only}. Keys "
                               f"only in live: {live_only}.")
        if offset + len(ids) > len(flat):
            raise RuntimeError(f"{_NAME} requires the explicit parameter state to match optimizer.param_groups "
                               f"ordering.")
        seen.update(ids)
        plan.append((live, swap, flat[offset:offset + len(ids)]))
        offset += len(ids)
    extra = [k for k in state if k not in seen]
    if extra:
        raise RuntimeError(f"{_NAME} requires swapin_optim_state['state'] to be keyed only by packed parameter ids "
                           f"from param_groups[*]['params']; got extra keys {extra!r}.")
    return state, plan


@contextlib.contextmanager
def swap_in_optimizer_params_and_state(optimizer, swapin_parameters: dict, swapin_optim_state: dict):
    """Inside the ``with`` block ``optimizer`` works on ``swapin_parameters`` (a dict of tensors in the
    order of the optimizer's parameters, e.g. ``model.named_parameters()``'s) with the hyper-parameters
    and state of ``swapin_optim_state`` (an ``optimizer.state_dict()``-shaped dict); on exit its own
    parameters, groups and state come back. In-place updates of the state's tensors reach
    ``swapin_optim_state``; new entries do not (PyTorch's semantics). The optimizer's state must
    already exist (one step taken).

    >>> with tapegrad.optim.swap_in_optimizer_params_and_state(opt, dict(shadow.named_parameters()), saved):
    ...     opt.step()   # moves shadow's parameters and saved's moments, not the live model's
    """
    state, plan = _checked_groups(optimizer, swapin_parameters, swapin_optim_state)
    live_state, live_scratch = optimizer.state, optimizer._scratch
    snapshots = [dict(g) for g in optimizer.param_groups]
    try:
        swapped = defaultdict(dict)
        for live, swap, params in plan:
            live.update({k: v for k, v in swap.items() if k != "params"})
            live["params"] = params
            for p, pid in zip(params, swap["params"]):
                swapped[p] = dict(state.get(pid, {}))  # a new dict: entries added inside stay inside
        optimizer.state, optimizer._scratch = swapped, {}
        yield
    finally:
        for group, snapshot in zip(optimizer.param_groups, snapshots):
            group.clear()
            group.update(snapshot)
        optimizer.state, optimizer._scratch = live_state, live_scratch
