"""Finite-difference checks of the tape's gradients, in float64 (``torch.autograd.gradcheck``).

``gradcheck`` compares the analytical vector-Jacobian product of every output with a
central-difference estimate, element by element; ``gradgradcheck`` does the same for the
gradients themselves (through ``create_graph=True``). A failure names the input, the
element and both values.

Complex inputs (complex128) and outputs are checked under PyTorch's convention: with the real
loss L = sum Re(conj(v) * out) over the outputs (v the cotangents), an input z = x + iy has
the gradient dL/dx + i dL/dy, each part estimated by its own central difference.
"""
from __future__ import annotations

import numpy as np

from .. import autograd  # the package being initialised: autograd.grad is read at call time
from .. import _dtype
from .._tape import grad_mode
from ..tensor import Tensor

# PyTorch's options that tapegrad's check has no use for (it is always exact and single-mode);
# accepted so ported calls run, while a misspelt option still raises TypeError
_TORCH_OPTIONS = frozenset({"nondet_tol", "check_undefined_grad", "check_grad_dtypes", "check_batched_grad",
                            "check_batched_forward_grad", "check_forward_ad", "check_backward_ad", "fast_mode",
                            "masked"})


def _check_options(name, options):
    unknown = set(options) - _TORCH_OPTIONS
    if unknown:
        raise TypeError(f"{name}() got unexpected keyword argument(s) {sorted(unknown)}")


class GradcheckError(AssertionError):
    """Raised when an analytical gradient disagrees with finite differences."""


def _outputs(fn, inputs):
    out = fn(*inputs)
    outs = out if isinstance(out, (tuple, list)) else (out,)
    return [o for o in outs if isinstance(o, Tensor) and _dtype.kind_of(o.dtype) in "fc"]


def _diff_inputs(inputs):
    return [(i, t) for i, t in enumerate(inputs) if isinstance(t, Tensor) and t._requires_grad]


def _numerical(fn, inputs, i, t, cotangents, eps):
    """dL/dt by central differences, L = sum Re(conj(cotangent) * output) (dL/dx + i dL/dy for complex t)."""
    flat = t._data.reshape(-1)  # a view: t must be contiguous (checked by the caller)
    steps = (eps, 1j * eps) if flat.dtype.kind == "c" else (eps,)
    grad = np.zeros(flat.size, dtype=flat.dtype)
    with grad_mode.no_grad():
        for k in range(flat.size):
            orig = flat[k]
            for unit, step in zip((1, 1j), steps):
                flat[k] = orig + step
                plus = _loss(_outputs(fn, inputs), cotangents)
                flat[k] = orig - step
                minus = _loss(_outputs(fn, inputs), cotangents)
                flat[k] = orig
                grad[k] += unit * (plus - minus) / (2 * eps)
    return grad.reshape(t.shape)


def _loss(outs, cotangents):
    return sum(np.sum((np.conj(c) * o._data).real) for o, c in zip(outs, cotangents))


def _cotangent(rng, o):
    c = rng.standard_normal(o.shape)
    return c + 1j * rng.standard_normal(o.shape) if o.dtype.kind == "c" else c


def gradcheck(fn, inputs, *, eps=1e-6, atol=1e-5, rtol=1e-3, raise_exception=True, seed=0, **torch_options) -> bool:
    """Check the gradients of ``fn(*inputs)`` w.r.t. every input that requires grad.

    Inputs should be float64 (or complex128) for a meaningful check. Each output is contracted with a fixed
    random cotangent, so one backward pass checks every output at once.

    >>> x = tapegrad.randn(3, dtype=tapegrad.float64, requires_grad=True)
    >>> tapegrad.autograd.gradcheck(lambda t: (t * t.exp()).sum(), (x,))
    True
    """
    _check_options("gradcheck", torch_options)
    inputs = tuple(inputs) if isinstance(inputs, (tuple, list)) else (inputs,)
    for i, t in _diff_inputs(inputs):
        if t.dtype not in (np.float64, np.complex128):
            raise GradcheckError(f"gradcheck: input {i} is {t.dtype}; finite differences need float64 or "
                                 f"complex128 inputs")
        if not t._data.flags.c_contiguous or not t._data.flags.writeable:
            raise GradcheckError(f"gradcheck: input {i} must be a contiguous, writable tensor")
    rng = np.random.default_rng(seed)
    outs = _outputs(fn, inputs)
    if not outs:
        raise GradcheckError("gradcheck: fn returned no floating-point or complex tensor")
    cotangents = [_cotangent(rng, o) for o in outs]
    diff = _diff_inputs(inputs)
    needs = [o for o in outs if o._requires_grad]
    if needs:
        analytical = autograd.grad(
            needs, [t for _, t in diff],
            [Tensor._wrap(c.astype(o.dtype)) for o, c in zip(outs, cotangents) if o._requires_grad],
            allow_unused=True)
    else:
        analytical = [None] * len(diff)
    for (i, t), a in zip(diff, analytical):
        a = np.zeros(t.shape, t.dtype) if a is None else a._data.astype(t.dtype)
        if a.shape != t.shape:
            raise GradcheckError(f"gradcheck: gradient for input {i} has shape {a.shape}, expected {t.shape}")
        n = _numerical(fn, inputs, i, t, cotangents, eps)
        bad = ~np.isclose(a, n, rtol=rtol, atol=atol, equal_nan=False)
        if bad.any():
            k = np.unravel_index(np.argmax(np.abs(a - n) * bad), a.shape)
            msg = (f"gradcheck: gradient of input {i} (shape {tuple(t.shape)}) is wrong at element {tuple(map(int, k))}: "
                   f"analytical {a[k]!r} vs numerical {n[k]!r} ({int(bad.sum())} of {a.size} elements differ)")
            if raise_exception:
                raise GradcheckError(msg)
            return False
    return True


def gradgradcheck(fn, inputs, grad_outputs=None, *, eps=1e-6, atol=1e-5, rtol=1e-3, raise_exception=True,
                  seed=0, **torch_options) -> bool:
    """Check second derivatives: gradcheck of ``(inputs, v) -> d<fn(inputs), v>/d inputs``."""
    _check_options("gradgradcheck", torch_options)
    inputs = tuple(inputs) if isinstance(inputs, (tuple, list)) else (inputs,)
    rng = np.random.default_rng(seed + 1)
    outs = _outputs(fn, inputs)
    if grad_outputs is None:
        grad_outputs = [Tensor._wrap(_cotangent(rng, o)).requires_grad_() for o in outs]
    grad_outputs = list(grad_outputs)
    n_in = len(inputs)
    diff_idx = [i for i, _ in _diff_inputs(inputs)]

    def first_grads(*args):
        ins, vs = args[:n_in], args[n_in:]
        with grad_mode.enable_grad():  # also while gradcheck perturbs inputs under no_grad
            pairs = [(o, v) for o, v in zip(_outputs(fn, ins), vs) if o._requires_grad]
            gs = autograd.grad([o for o, _ in pairs], [ins[i] for i in diff_idx], [v for _, v in pairs],
                               create_graph=True, allow_unused=True)
        return tuple(g for g in gs if g is not None)

    return gradcheck(first_grads, (*inputs, *grad_outputs), eps=eps, atol=atol, rtol=rtol,
                     raise_exception=raise_exception, seed=seed)
