"""The chi-squared distribution with ``df`` degrees of freedom (``Chi2``, a Gamma)."""
from __future__ import annotations

from . import constraints
from .gamma import Gamma
from .. import ops
from .distribution import broadcast_all


class Chi2(Gamma):
    """``Chi2(df)``: ``Gamma(df / 2, 1 / 2)``, so its ``rsample`` is differentiable in ``df``.

    >>> Chi2(ops.tensor([3.0])).mean
    """

    arg_constraints = {"df": constraints.positive}

    def __init__(self, df, validate_args=None):
        (df,) = broadcast_all(df)
        super().__init__(0.5 * df, 0.5, validate_args=validate_args)

    def expand(self, batch_shape, _instance=None):
        new = self._get_checked_instance(Chi2, _instance)
        return super().expand(batch_shape, new)

    def _expand_names(self):
        return ["concentration", "rate"]

    @property
    def df(self):
        """Degrees of freedom: the Chi2 is ``Gamma(df / 2, 1 / 2)``."""
        return self.concentration * 2
