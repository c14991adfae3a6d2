"""``torch.autograd.functional``: ``jacobian``, ``hessian``, ``vjp``, ``jvp``, ``hvp``, ``vhp``."""
from .compat import functional as _f

jacobian = _f.jacobian
hessian = _f.hessian
vjp = _f.vjp
jvp = _f.jvp
hvp = _f.hvp
vhp = _f.vhp

__all__ = ["jacobian", "hessian", "vjp", "jvp", "hvp", "vhp"]
