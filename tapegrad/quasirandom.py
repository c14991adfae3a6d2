"""``torch.quasirandom``: ``SobolEngine``, low-discrepancy Sobol sequences, drawn by scipy's
``scipy.stats.qmc.Sobol`` (Joe and Kuo's direction numbers, 30 bits, up to 21201 dimensions: the
same as PyTorch's, so the unscrambled sequence is PyTorch's point for point).

Scrambled sequences (``scramble=True``) are scipy's linear matrix scrambling with a digital shift,
the method PyTorch uses too, but drawn from another random stream: the points have the same
properties and are not PyTorch's numbers. ``seed=None`` takes the seed from tapegrad's global
generator, so ``tapegrad.manual_seed`` makes them reproducible.

Imported on first use (``tapegrad.quasirandom``), as scipy.stats adds a third of a second."""
from __future__ import annotations

import warnings

import numpy as np

from scipy.stats import qmc

from . import _dtype
from . import random as _random
from .tensor import Tensor

__all__ = ["SobolEngine"]


class SobolEngine:
    """Draws points of a ``dimension``-dimensional Sobol sequence in [0, 1), one call after another
    continuing the sequence.

    >>> engine = tapegrad.quasirandom.SobolEngine(2)
    >>> engine.draw(4)
    tensor([[0.0000, 0.0000],
            [0.5000, 0.5000],
            [0.7500, 0.2500],
            [0.2500, 0.7500]])
    """

    MAXBIT = 30
    MAXDIM = 21201

    def __init__(self, dimension: int, scramble: bool = False, seed: int | None = None):
        if not isinstance(dimension, int) or isinstance(dimension, bool) or not 1 <= dimension <= self.MAXDIM:
            raise ValueError(f"Supported range of dimensionality for SobolEngine is [1, {self.MAXDIM}], "
                             f"got {dimension!r}")
        self.dimension, self.scramble, self.seed = dimension, bool(scramble), seed
        if self.scramble:
            rng = np.random.default_rng(seed if seed is not None else _random.rng().integers(2 ** 63))
        else:
            rng = None
        self._engine = qmc.Sobol(dimension, scramble=self.scramble, bits=self.MAXBIT, seed=rng)
        self.num_generated = 0

    def _points(self, n: int) -> np.ndarray:
        with warnings.catch_warnings():  # scipy's note on powers of 2: PyTorch draws any n silently
            warnings.simplefilter("ignore", UserWarning)
            return self._engine.random(n)

    def draw(self, n: int = 1, out: Tensor | None = None, dtype=None) -> Tensor:
        """The next ``n`` points, a ``(n, dimension)`` tensor of ``dtype`` (the default dtype
        unless given); written into ``out`` (resized) when given."""
        if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 0:
            raise ValueError(f"SobolEngine.draw: n must be a non-negative int, got {n!r}")
        dtype = _dtype.default_float() if dtype is None else _dtype.to_dtype(dtype)
        if not _dtype.is_floating(dtype):
            raise TypeError(f"SobolEngine.draw: dtype must be floating, got {_dtype.name(dtype)}")
        points = self._points(int(n)).astype(dtype)
        self.num_generated += int(n)
        result = Tensor._wrap(points)
        if out is not None:
            out.resize_as_(result).copy_(result)
            return out
        return result

    def draw_base2(self, m: int, out: Tensor | None = None, dtype=None) -> Tensor:
        """The next ``2 ** m`` points; the total drawn must stay a power of 2 (Sobol points' balance)."""
        n = 2 ** m
        total = self.num_generated + n
        if total & (total - 1):
            raise ValueError(f"The balance properties of Sobol' points require n to be a power of 2. "
                             f"{self.num_generated} points have been previously generated, then: "
                             f"n={self.num_generated}+2**{m}={total}. If you still want to do this, please use "
                             f"'SobolEngine.draw()' instead.")
        return self.draw(n, out=out, dtype=dtype)

    def reset(self) -> "SobolEngine":
        """Back to the first point (a scrambled sequence keeps its scrambling); returns self."""
        self._engine.reset()
        self.num_generated = 0
        return self

    def fast_forward(self, n: int) -> "SobolEngine":
        """Skip the next ``n`` points; returns self."""
        if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 0:
            raise ValueError(f"SobolEngine.fast_forward: n must be a non-negative int, got {n!r}")
        self._engine.fast_forward(int(n))
        self.num_generated += int(n)
        return self

    def __repr__(self):
        fields = [f"dimension={self.dimension}"]
        if self.scramble:
            fields.append("scramble=True")
        if self.seed is not None:
            fields.append(f"seed={self.seed}")
        return f"SobolEngine({', '.join(fields)})"
