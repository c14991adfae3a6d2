"""``tapegrad.nn.utils.parametrizations``: ``weight_norm``, ``spectral_norm`` and ``orthogonal`` as
parametrizations (``module.parametrizations.weight.original0`` / ``original1`` ...), as PyTorch's."""
from __future__ import annotations

import numpy as np

from ...ops import plain as _ops  # the ops without their out= wrappers
from ...ops import creation
from ... import _dtype, linalg
from ..._tape import grad_mode
from ...tensor import Tensor
from ..modules.module import Module
from .. import functional as F
from . import parametrize
from ..modules.conv import ConvTranspose1d, ConvTranspose2d


def _norm_except_dim(v, dim):
    """The 2-norm of ``v`` over every dim but ``dim`` (kept, size 1 elsewhere); ``dim=-1``: all of it."""
    if dim == -1:
        return _ops.norm(v)
    return _ops.norm(v, 2, tuple(d for d in range(v.ndim) if d != dim), keepdim=True)


def _weight_norm(v, g, dim):
    return v * (g / _norm_except_dim(v, dim))


class _WeightNorm(Module):
    def __init__(self, dim=0):
        super().__init__()
        self.dim = -1 if dim is None else dim

    def forward(self, weight_g, weight_v):
        return _weight_norm(weight_v, weight_g, self.dim)

    def right_inverse(self, weight):
        return _norm_except_dim(weight, self.dim), weight


def weight_norm(module: Module, name: str = "weight", dim: int | None = 0) -> Module:
    """``weight = g * v / ||v||`` (the norm over every dim but ``dim``), with ``g`` and ``v`` the
    parameters ``parametrizations.weight.original0`` and ``original1``.

    >>> m = weight_norm(tapegrad.nn.Linear(20, 40))
    >>> m.parametrizations.weight.original0.shape
    (40, 1)
    """
    parametrize.register_parametrization(module, name, _WeightNorm(dim), unsafe=True)

    def _weight_norm_compat_hook(state_dict, prefix, *rest):
        # a checkpoint saved under the hook-based nn.utils.weight_norm names g and v weight_g and
        # weight_v: PyTorch loads them into original0 / original1, and so does tapegrad
        g_key, v_key = f"{prefix}{name}_g", f"{prefix}{name}_v"
        if g_key in state_dict and v_key in state_dict:
            state_dict[f"{prefix}parametrizations.{name}.original0"] = state_dict.pop(g_key)
            state_dict[f"{prefix}parametrizations.{name}.original1"] = state_dict.pop(v_key)

    module._register_load_state_dict_pre_hook(_weight_norm_compat_hook)
    return module


class _SpectralNorm(Module):
    def __init__(self, weight, n_power_iterations: int = 1, dim: int = 0, eps: float = 1e-12):
        super().__init__()
        ndim = weight.ndim
        if dim >= ndim or dim < -ndim:
            raise IndexError(f"Dimension out of range (expected to be in range of [-{ndim}, {ndim - 1}] but got "
                             f"{dim})")
        if n_power_iterations <= 0:
            raise ValueError(f"Expected n_power_iterations to be positive, but got n_power_iterations="
                             f"{n_power_iterations}")
        self.dim = dim if dim >= 0 else dim + ndim
        self.eps = eps
        if ndim > 1:
            self.n_power_iterations = n_power_iterations
            with grad_mode.no_grad():
                weight_mat = self._reshape_weight_to_matrix(weight)
                h, w = weight_mat.shape
                u = creation.empty(h, dtype=weight.dtype).normal_(0, 1)
                v = creation.empty(w, dtype=weight.dtype).normal_(0, 1)
                self.register_buffer("_u", F.normalize(u, dim=0, eps=self.eps))
                self.register_buffer("_v", F.normalize(v, dim=0, eps=self.eps))
                self._power_method(weight_mat, 15)

    def _reshape_weight_to_matrix(self, weight):
        if self.dim != 0:
            weight = weight.permute(self.dim, *(d for d in range(weight.ndim) if d != self.dim))
        return weight.flatten(1)

    def _power_method(self, weight_mat, n_power_iterations):
        with grad_mode.no_grad():
            for _ in range(n_power_iterations):
                self._u.copy_(F.normalize(_ops.mv(weight_mat, self._v), dim=0, eps=self.eps))
                self._v.copy_(F.normalize(_ops.mv(weight_mat.mT, self._u), dim=0, eps=self.eps))

    def forward(self, weight):
        if weight.ndim == 1:
            return F.normalize(weight, dim=0, eps=self.eps)
        weight_mat = self._reshape_weight_to_matrix(weight)
        if self.training:
            self._power_method(weight_mat.detach(), self.n_power_iterations)
        u, v = self._u.clone(), self._v.clone()
        sigma = (u * _ops.mv(weight_mat, v)).sum()
        return weight / sigma

    def right_inverse(self, value):
        return value


def spectral_norm(module: Module, name: str = "weight", n_power_iterations: int = 1, eps: float = 1e-12,
                  dim: int | None = None) -> Module:
    """``weight / sigma``, sigma the largest singular value estimated by power iteration (one step
    per training-mode access; the vectors are the buffers ``parametrizations.weight.0._u``/``_v``)."""
    weight = getattr(module, name, None)
    if weight is None:
        raise ValueError(f"Module '{type(module).__name__}' has no parameter or buffer with name '{name}'")
    if dim is None:
        dim = 1 if isinstance(module, (ConvTranspose1d, ConvTranspose2d)) else 0
    parametrize.register_parametrization(module, name, _SpectralNorm(weight, n_power_iterations, dim, eps))
    return module


def _geqrf(a: np.ndarray):
    """LAPACK's geqrf (Householder vectors below the diagonal, R on and above it, and tau) of
    every matrix of ``a``, as ``torch.geqrf``."""
    flat = a.reshape((-1,) + a.shape[-2:])
    out, taus = np.empty_like(flat), []
    for i, m in enumerate(flat):
        h, tau = np.linalg.qr(m, mode="raw")
        out[i] = h.T
        taus.append(tau)
    return out.reshape(a.shape), np.stack(taus).reshape(a.shape[:-2] + (-1,))


def _is_orthogonal(q: np.ndarray) -> bool:
    n, k = q.shape[-2:]
    eps = 10.0 * n * np.finfo(q.dtype).eps
    return np.allclose(np.swapaxes(q, -1, -2).conj() @ q, np.eye(k, dtype=q.dtype), rtol=1e-5, atol=eps)


def _make_orthogonal(a: np.ndarray) -> np.ndarray:
    """The Q of ``a``'s QR decomposition with diag(R) >= 0 (PyTorch's geqrf + householder_product)."""
    q, r = np.linalg.qr(a)
    return q * np.sign(np.diagonal(r, axis1=-2, axis2=-1))[..., None, :]


class _Orthogonal(Module):
    """The parametrization ``orthogonal`` registers (PyTorch's ``_Orthogonal``)."""

    _MAPS = ("matrix_exp", "cayley", "householder")

    def __init__(self, weight, orthogonal_map: str, *, use_trivialization: bool = True):
        super().__init__()
        if _dtype.kind_of(weight._data.dtype) == "c" and orthogonal_map == "householder":
            raise ValueError("orthogonal: the householder parametrization does not support complex tensors.")
        self.shape = tuple(weight.shape)
        self.orthogonal_map = orthogonal_map
        if use_trivialization:
            self.register_buffer("base", None)

    def forward(self, X):
        n, k = X.shape[-2], X.shape[-1]
        transposed = n < k
        if transposed:
            X = X.mT
            n, k = k, n
        if self.orthogonal_map in ("matrix_exp", "cayley"):
            X = X.tril()  # n*k - k(k-1)/2 parameters
            if n != k:  # embed into a square matrix
                zeros = creation.zeros(*X.shape[:-2], n, n - k, dtype=X.dtype)
                X = _ops.cat([X, zeros], dim=-1)
            A = X - X.mH  # skew-symmetric (skew-Hermitian)
            if self.orthogonal_map == "matrix_exp":
                Q = linalg.matrix_exp(A)
            else:  # the Cayley retraction (I + A/2)(I - A/2)^-1
                eye = creation.eye(n, dtype=A.dtype)
                Q = linalg.solve(eye - 0.5 * A, eye + 0.5 * A)
            if n != k:
                Q = Q[..., :k]
        else:
            A = X.tril(diagonal=-1)
            tau = 2.0 / (1.0 + (A * A).sum(dim=-2))
            Q = linalg.householder_product(A, tau)
            # X's diagonal holds +-1: which reflection; not differentiated, as PyTorch's int cast
            signs = np.diagonal(X._data, axis1=-2, axis2=-1).astype(np.int64).astype(Q._data.dtype)
            Q = Q * Tensor._wrap(signs[..., None, :])
        if "base" in self._buffers:  # use_trivialization
            Q = self.base @ Q
        if transposed:
            Q = Q.mT
        return Q

    def right_inverse(self, Q):
        """The originals that give ``Q`` (an orthogonal matrix; one that is not is made orthogonal)."""
        if tuple(Q.shape) != self.shape:
            raise ValueError(f"orthogonal: expected a matrix or batch of matrices of shape {self.shape}. Got a tensor "
                             f"of shape {tuple(Q.shape)}.")
        q = np.array(Q._data)
        q_init = q
        n, k = q.shape[-2:]
        transpose = n < k
        if transpose:
            q = np.swapaxes(q, -1, -2)
            n, k = k, n
        if "base" not in self._buffers:
            if self.orthogonal_map in ("cayley", "matrix_exp"):
                raise NotImplementedError("It is not possible to assign to the matrix exponential or the Cayley "
                                          "parametrizations when use_trivialization=False.")
            a, tau = _geqrf(q)
            d = np.sign(np.diagonal(a, axis1=-2, axis2=-1)).copy()
            d[tau == 0.0] *= -1  # LAPACK's tau is exactly 0 where it skipped the reflection
            idx = np.arange(min(n, k))
            a[..., idx, idx] = d
            return Tensor._wrap(np.ascontiguousarray(np.swapaxes(a, -1, -2)) if transpose else a)
        if n == k:
            q = q.copy() if _is_orthogonal(q) else _make_orthogonal(q)
        else:  # complete Q into a full n x n orthogonal matrix
            fill = creation.randn(*(q.shape[:-2] + (n, n - k)), dtype=Q.dtype)._data
            q = _make_orthogonal(np.concatenate([q, fill], axis=-1))
        self.base = Tensor._wrap(q)
        neg_id = np.zeros_like(q_init)  # householder(zeros) == eye: -1 on the diagonal
        idx = np.arange(min(q_init.shape[-2:]))
        neg_id[..., idx, idx] = -1.0
        return Tensor._wrap(neg_id)


def orthogonal(module: Module, name: str = "weight", orthogonal_map: str | None = None, *,
               use_trivialization: bool = True) -> Module:
    """Make ``module.<name>`` (a matrix, or a batch) orthogonal (unitary), as PyTorch's: by the
    matrix exponential (the default for square or complex weights), the Cayley map or Householder
    reflections (the default otherwise) of an unconstrained original. With ``use_trivialization``
    (the default) the map is applied around a base point ``...parametrizations.weight[0].base``,
    which assigning to the weight sets.

    >>> layer = orthogonal(nn.Linear(4, 4))
    >>> w = layer.weight
    >>> bool((w @ w.T - tapegrad.eye(4)).abs().max() < 1e-5)
    True
    """
    weight = getattr(module, name, None)
    if not isinstance(weight, Tensor):
        raise ValueError(f"orthogonal: module '{type(module).__name__}' has no parameter or buffer with name "
                         f"'{name}'")
    if weight.ndim < 2:
        raise ValueError(f"orthogonal: expected a matrix or batch of matrices. Got a tensor of {weight.ndim} "
                         f"dimensions.")
    if orthogonal_map is None:
        square = weight.shape[-2] == weight.shape[-1]
        orthogonal_map = "matrix_exp" if square or _dtype.kind_of(weight._data.dtype) == "c" else "householder"
    if orthogonal_map not in _Orthogonal._MAPS:
        raise ValueError(f'orthogonal: orthogonal_map has to be one of "matrix_exp", "cayley", "householder". '
                         f'Got: {orthogonal_map}')
    orth = _Orthogonal(weight, orthogonal_map, use_trivialization=use_trivialization)
    parametrize.register_parametrization(module, name, orth, unsafe=True)
    return module


__all__ = ["weight_norm", "spectral_norm", "orthogonal"]
