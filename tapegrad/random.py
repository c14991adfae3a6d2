"""The global random state: ``tapegrad.manual_seed(n)`` makes rand*, randperm, dropout and
init reproducible. One numpy ``Generator`` (PCG64) drives them all."""
from __future__ import annotations

import numpy as np

_state = {"gen": np.random.default_rng(), "seed": None}


def manual_seed(seed: int):
    """Seed every random draw tapegrad makes. Returns the generator, as PyTorch does."""
    seed = int(seed)
    _state["gen"] = np.random.default_rng(seed)
    _state["seed"] = seed
    return Generator._from_rng(_state["gen"], seed)


seed = manual_seed


def initial_seed():
    """The seed the global generator was last seeded with."""
    return _state["seed"]


def default_generator() -> np.random.Generator:
    return _state["gen"]


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

    @classmethod
    def _from_rng(cls, r, seed):
        g = cls()
        g._rng, g._seed = r, seed
        return g

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


def get_rng_state():
    """The global generator's state (numpy's bit-generator state dict), for ``set_rng_state``."""
    return _state["gen"].bit_generator.state


def set_rng_state(state):
    """Restore the global generator's state that ``get_rng_state`` returned."""
    _state["gen"].bit_generator.state = state
