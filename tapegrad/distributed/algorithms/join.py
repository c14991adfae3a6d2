"""``torch.distributed.algorithms.join``, PyTorch's generic join context manager: ranks that run
out of inputs early keep shadowing the collective communications of the ranks still training, so
that uneven inputs neither hang nor desynchronise the collectives.

Every iteration inside the context, each ``Joinable`` calls ``Join.notify_join_context(self)``,
which all-reduces a 1 (this rank has not joined). A rank that leaves the loop enters ``__exit__``
and repeatedly all-reduces a 0 to count the ranks still training, running its join hooks'
``main_hook`` (which shadows one iteration's collectives) until every rank has joined; then each
hook's ``post_hook(is_last_joiner)`` runs. Ported from PyTorch (the same algorithm and checks) on
tapegrad's MPI collectives; with ``throw_on_early_termination=True`` the first rank to run out
makes every rank raise instead.

>>> with Join([model]):            # model: a Joinable (its join_hook shadows its all_reduce)
...     for batch in my_uneven_share:
...         model(batch)           # calls Join.notify_join_context(model)
"""
from __future__ import annotations

import warnings
from abc import ABC, abstractmethod
from typing import Any, NamedTuple

from ...ops.creation import ones, zeros
from .. import _collectives as _coll, _group

__all__ = ["JoinHook", "Joinable", "Join"]


class JoinHook:
    """What a joined rank does for one ``Joinable``: ``main_hook`` shadows one iteration of the
    collectives the non-joined ranks run; ``post_hook(is_last_joiner)`` runs once all have joined."""

    def main_hook(self) -> None:
        """Shadow one training iteration's collective communications (default: nothing)."""

    def post_hook(self, is_last_joiner: bool) -> None:
        """Run after every rank has joined (default: nothing); ``is_last_joiner`` says whether
        this rank was one of the last to join."""


class Joinable(ABC):
    """A class that takes part in ``Join``: it gives a ``join_hook``, the device and process
    group its collectives use, and calls ``Join.notify_join_context(self)`` every iteration."""

    @abstractmethod
    def __init__(self):
        super().__init__()
        self._join_config = _JoinConfig.construct_disabled_join_config()

    @abstractmethod
    def join_hook(self, **kwargs) -> JoinHook:
        """The JoinHook for this Joinable (``kwargs``: the ones given to ``Join``)."""
        ...

    @property
    @abstractmethod
    def join_device(self):
        """The device the join context's collectives run on (the CPU here)."""
        ...

    @property
    @abstractmethod
    def join_process_group(self) -> Any:
        """The process group the join context's collectives use (None: the default group)."""
        ...


class _JoinConfig(NamedTuple):
    enable: bool
    throw_on_early_termination: bool
    is_first_joinable: bool

    @staticmethod
    def construct_disabled_join_config():
        return _JoinConfig(enable=False, throw_on_early_termination=False, is_first_joinable=False)


class Join:
    """Context manager for uneven inputs: ``Join(joinables, enable=True,
    throw_on_early_termination=False, **kwargs)``; ``kwargs`` go to every ``join_hook``.
    The joinables must share one process group and device, and each must call
    ``Join.notify_join_context(self)`` once per iteration before its own collectives."""

    def __init__(self, joinables: list, enable: bool = True, throw_on_early_termination: bool = False,
                 **kwargs):
        if len(joinables) == 0:
            raise ValueError("The join context manager requires at least one joinable")
        self._joinables = joinables
        self._join_hooks = [joinable.join_hook(**kwargs) for joinable in self._joinables]
        self._enable = enable
        self._throw_on_early_termination = throw_on_early_termination
        self._set_joinable_configs()
        self._extract_dist_info()

    def _set_joinable_configs(self) -> None:
        assert len(self._joinables) > 0
        is_first_joinable = True
        for joinable in self._joinables:
            joinable._join_config = _JoinConfig(enable=self._enable,
                                                throw_on_early_termination=self._throw_on_early_termination,
                                                is_first_joinable=is_first_joinable)
            is_first_joinable = False

    def _extract_dist_info(self) -> None:
        process_group = None
        device = None
        for joinable in self._joinables:
            if process_group is None:
                process_group = joinable.join_process_group
            elif process_group != joinable.join_process_group:
                raise ValueError("Using join context manager with multiple process groups")
            if device is None:
                device = joinable.join_device
        self._process_group = process_group
        self._rank = _group.get_rank(self._process_group)
        self._device = device

    def __enter__(self):
        ...

    def __exit__(self, type, value, traceback):
        if not self._enable or type:
            return  # an exception inside the context propagates: no shadowing
        all_procs_joined = False
        is_last_joiner = True
        i = 0
        warn_freq = 1000
        warnings.simplefilter("once")
        while not all_procs_joined:
            if i > warn_freq:
                warnings.warn(f"Detected uneven input skew of greater than {warn_freq}. This means that rank "
                              f"{self._rank} has at least {warn_freq} fewer inputs than other currently-active "
                              "ranks. This level of skew could lead to performance degradation during training.",
                              stacklevel=2)
            num_nonjoined_procs = self._get_num_nonjoined_procs()
            if num_nonjoined_procs == 0:
                all_procs_joined = True
            else:
                if self._throw_on_early_termination:
                    self._notify_procs_to_terminate()
                for join_hook in self._join_hooks:
                    join_hook.main_hook()
                is_last_joiner = False
                i += 1
        for join_hook in self._join_hooks:
            join_hook.post_hook(is_last_joiner)

    def _get_num_nonjoined_procs(self):
        num_nonjoined_procs = zeros(1, device=self._device)
        _coll.all_reduce(num_nonjoined_procs, group=self._process_group)
        return num_nonjoined_procs.item()

    def _notify_procs_to_terminate(self):
        t = ones(1, device=self._device)
        _coll.all_reduce(t, group=self._process_group)
        raise RuntimeError(f"Rank {self._rank} exhausted all inputs.")

    @staticmethod
    def notify_join_context(joinable: Joinable):
        """Tell the join context that ``joinable`` runs another iteration (all-reduces a 1 when it
        is the context's first joinable). Returns None: the all-reduce has finished (PyTorch
        returns its async work handle, which callers may ignore).
        With ``throw_on_early_termination``, raises once some rank has run out of inputs."""
        assert hasattr(joinable, "_join_config"), f"Check that the {type(joinable)} constructor calls the " \
                                                  "``Joinable`` constructor"
        join_config = joinable._join_config
        if not join_config.is_first_joinable or not join_config.enable:
            return None
        device = joinable.join_device
        process_group = joinable.join_process_group
        ones_t = ones(1, device=device)
        # blocking, where PyTorch's is async_op=True: in MPI a non-blocking collective never
        # matches a blocking one, and the joined ranks' all-reduce in __exit__ is blocking
        work = _coll.all_reduce(ones_t, group=process_group)
        if join_config.throw_on_early_termination:
            zeros_t = zeros(1, device=device)
            _coll.all_reduce(zeros_t, group=process_group)
            should_throw = zeros_t.item()
            if should_throw:
                raise RuntimeError("Detected at least one rank that exhausted inputs. Throwing across all ranks.")
        return work
