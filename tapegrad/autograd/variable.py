"""``torch.autograd.variable``: the module old scripts import ``Variable`` from
(``from torch.autograd.variable import Variable``); a Variable is a plain tensor here."""
from .compat import Variable  # noqa: F401

__all__ = ["Variable"]
