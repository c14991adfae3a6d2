"""The global random state: ``tapegrad.manual_seed(n)`` makes rand*, randperm, dropout and
init reproducible. One numpy ``Generator`` (PCG64) drives them all."""
from __future__ import annotations

import contextlib
import os
import weakref

import numpy as np

_state = {"gen": np.random.default_rng(), "seed": None}
_generators = weakref.WeakSet()  # every tapegrad.Generator, for the forked child below


def manual_seed(seed: int):
    """Seed every random draw tapegrad makes. Returns ``default_generator``, as PyTorch does."""
    seed = int(seed)
    _state["gen"] = np.random.default_rng(seed)
    _state["seed"] = seed
    return default_generator


seed = manual_seed


def initial_seed():
    """The seed the global generator was last seeded with."""
    return _state["seed"]


def rng(generator=None) -> np.random.Generator:
    """The numpy generator to draw from: the caller's ``Generator`` or the global one."""
    if generator is None:
        return _state["gen"]
    if isinstance(generator, Generator):
        return generator._rng
    raise TypeError(f"expected a tapegrad.Generator, got {type(generator).__name__}")


class Generator:
    """A private random stream: ``g = tapegrad.Generator().manual_seed(0)`` (for DataLoader shuffling)."""

    def __init__(self, device="cpu"):
        self._rng = np.random.default_rng()
        self._seed = None
        _generators.add(self)

    def manual_seed(self, seed: int) -> "Generator":
        """Reseed this generator; returns it."""
        self._seed = int(seed)
        self._rng = np.random.default_rng(self._seed)
        return self

    def initial_seed(self):
        """The seed this generator was last seeded with."""
        return self._seed

    def get_state(self):
        """The generator's state (numpy's bit-generator state dict), for ``set_state``."""
        return self._rng.bit_generator.state

    def set_state(self, state):
        """Restore a state ``get_state`` returned; returns the generator."""
        self._rng.bit_generator.state = state
        return self


class _DefaultGenerator(Generator):
    """``tapegrad.default_generator``: the global stream as a ``Generator`` (PyTorch's
    ``torch.default_generator``). Seeding it, its state and drawing with ``generator=`` it are the
    global generator's: ``default_generator.manual_seed(0)`` is ``tapegrad.manual_seed(0)``."""

    def __init__(self):  # no stream of its own, and none for the fork handler to remake
        pass

    _rng = property(lambda self: _state["gen"], lambda self, r: _state.__setitem__("gen", r))
    _seed = property(lambda self: _state["seed"], lambda self, s: _state.__setitem__("seed", s))

    def __repr__(self):
        return "<tapegrad.default_generator>"

    def __reduce__(self):  # pickles (a DataLoader's generator=) as the one global generator
        return "default_generator"


default_generator = _DefaultGenerator()


def get_rng_state():
    """The global generator's state (numpy's bit-generator state dict), for ``set_rng_state``."""
    return _state["gen"].bit_generator.state


def set_rng_state(state):
    """Restore the global generator's state that ``get_rng_state`` returned."""
    _state["gen"].bit_generator.state = state


@contextlib.contextmanager
def fork_rng(devices=None, enabled: bool = True, _caller: str = "fork_rng", _devices_kw: str = "devices",
             device_type: str = "cuda"):
    """``with fork_rng():`` the block draws from the global generator as usual, and afterwards its
    state is what it was before the block (PyTorch's; there are no device generators here)."""
    if not enabled:
        yield
        return
    state, seed = get_rng_state(), _state["seed"]
    try:
        yield
    finally:
        set_rng_state(state)
        _state["seed"] = seed


# A numpy generator draws under its bit generator's lock. A process forked while another of its
# threads was drawing (rand, dropout, a DataLoader's shuffle) would inherit that lock held by a
# thread that does not exist in the child, and the child's first draw would wait forever. So the
# child gets fresh generators, each with the state the parent's had and a lock of its own
# (reading ``bit_generator.state`` takes no lock); generators that were one object stay one.
def _fresh(rng: np.random.Generator) -> np.random.Generator:
    new = np.random.Generator(type(rng.bit_generator)())
    new.bit_generator.state = rng.bit_generator.state
    return new


def _after_fork_in_child():
    made = {}

    def remake(r):
        if id(r) not in made:
            made[id(r)] = (r, _fresh(r))  # r kept alive while ids are compared
        return made[id(r)][1]

    _state["gen"] = remake(_state["gen"])
    for g in list(_generators):
        g._rng = remake(g._rng)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
