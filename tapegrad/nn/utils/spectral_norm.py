"""``torch.nn.utils.spectral_norm`` (the hook-based form, still the one most GAN code calls):
parameter ``weight_orig``, buffers ``weight_u``/``weight_v``, and ``weight = weight_orig / sigma``
recomputed before every forward, with one power-iteration step per training-mode call."""
from __future__ import annotations

from ...ops import plain as _ops  # the ops without their out= wrappers
from ...ops import creation
from ..._tape import grad_mode
from ..modules.conv import ConvTranspose1d, ConvTranspose2d
from ..modules.module import Module
from ..parameter import Parameter
from .. import functional as F


class SpectralNorm:
    """The forward pre-hook ``spectral_norm`` installs (one per normalised parameter)."""

    def __init__(self, name: str = "weight", n_power_iterations: int = 1, dim: int = 0, eps: float = 1e-12):
        if n_power_iterations <= 0:
            raise ValueError(f"Expected n_power_iterations to be positive, but got n_power_iterations="
                             f"{n_power_iterations}")
        self.name = name
        self.dim = dim
        self.n_power_iterations = n_power_iterations
        self.eps = eps

    def reshape_weight_to_matrix(self, weight):
        """``weight`` with ``dim`` first, flattened to (size of dim, rest)."""
        if self.dim != 0:
            weight = weight.permute(self.dim, *(d for d in range(weight.ndim) if d != self.dim))
        return weight.reshape(weight.shape[0], -1)

    def compute_weight(self, module, do_power_iteration: bool):
        """``weight_orig / sigma``; the power iteration updates ``weight_u``/``weight_v`` in place
        (never recorded), so sigma's gradient flows through the matrix only, as in PyTorch."""
        weight = getattr(module, self.name + "_orig")
        u = getattr(module, self.name + "_u")
        v = getattr(module, self.name + "_v")
        weight_mat = self.reshape_weight_to_matrix(weight)
        if do_power_iteration:
            with grad_mode.no_grad():
                for _ in range(self.n_power_iterations):
                    v.copy_(F.normalize(_ops.mv(weight_mat.mT, u), dim=0, eps=self.eps))
                    u.copy_(F.normalize(_ops.mv(weight_mat, v), dim=0, eps=self.eps))
        u, v = u.clone(), v.clone()  # later in-place updates must not change what backward sees
        sigma = _ops.dot(u, _ops.mv(weight_mat, v))
        return weight / sigma

    def remove(self, module):
        with grad_mode.no_grad():
            weight = self.compute_weight(module, do_power_iteration=False)
        for suffix in ("", "_u", "_v", "_orig"):
            delattr(module, self.name + suffix)
        module.register_parameter(self.name, Parameter(weight.detach()))

    def __call__(self, module, inputs):
        setattr(module, self.name, self.compute_weight(module, do_power_iteration=module.training))


def spectral_norm(module: Module, name: str = "weight", n_power_iterations: int = 1, eps: float = 1e-12,
                  dim: int | None = None) -> Module:
    """Divide ``module.<name>`` by its largest singular value, estimated by power iteration
    (``dim`` defaults to 1 for transposed convolutions, 0 otherwise).

    >>> d = tapegrad.nn.utils.spectral_norm(tapegrad.nn.Linear(20, 40))
    >>> sorted(n for n, _ in d.named_buffers())
    ['weight_u', 'weight_v']
    """
    for hook in module._forward_pre_hooks.values():
        if isinstance(hook, SpectralNorm) and hook.name == name:
            raise RuntimeError(f"Cannot register two spectral_norm hooks on the same parameter {name}")
    weight = module._parameters.get(name)
    if weight is None:
        raise ValueError(f"spectral_norm: module '{type(module).__name__}' has no parameter named '{name}'")
    if dim is None:
        dim = 1 if isinstance(module, (ConvTranspose1d, ConvTranspose2d)) else 0
    if not -weight.ndim <= dim < max(weight.ndim, 1):
        raise IndexError(f"spectral_norm: dim {dim} is out of range for the {weight.ndim}-D parameter '{name}'")
    fn = SpectralNorm(name, n_power_iterations, dim % max(weight.ndim, 1), eps)
    with grad_mode.no_grad():
        h, w = fn.reshape_weight_to_matrix(weight).shape
        u = F.normalize(creation.empty(h, dtype=weight.dtype).normal_(0, 1), dim=0, eps=eps)
        v = F.normalize(creation.empty(w, dtype=weight.dtype).normal_(0, 1), dim=0, eps=eps)
    del module._parameters[name]
    module.register_parameter(name + "_orig", weight)
    setattr(module, name, weight.detach())
    module.register_buffer(name + "_u", u)
    module.register_buffer(name + "_v", v)
    module.register_forward_pre_hook(fn)
    return module


def remove_spectral_norm(module: Module, name: str = "weight") -> Module:
    """Undo :func:`spectral_norm`: ``module.<name>`` becomes a plain parameter again, holding the
    normalised weight (computed without a further power-iteration step)."""
    for k, hook in list(module._forward_pre_hooks.items()):
        if isinstance(hook, SpectralNorm) and hook.name == name:
            hook.remove(module)
            del module._forward_pre_hooks[k]
            return module
    raise ValueError(f"spectral_norm of '{name}' not found in {module}")
