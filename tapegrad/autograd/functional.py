"""``torch.autograd.functional``: ``jacobian``, ``hessian``, ``vjp``, ``jvp``, ``hvp``, ``vhp``,
by repeated reverse passes."""
from __future__ import annotations

import numpy as np

from .. import autograd  # the package being initialised: autograd.grad is read at call time
from .. import ops
from .._tape import grad_mode
from ..tensor import Tensor


def vjp(func, inputs, v=None, create_graph=False, strict=False):
    """``(func(inputs), v^T J)``: the output and the vector-Jacobian product at ``inputs``.

    ``v`` may be omitted for a one-element output."""
    single = not isinstance(inputs, (tuple, list))
    xs = _prep(inputs, create_graph)
    with grad_mode.enable_grad():
        out = func(*xs)
        g = autograd.grad(out, xs, v, create_graph=create_graph, allow_unused=True)
    g = tuple(_zeros_if_none(gi, x) for gi, x in zip(g, xs))
    out = out if create_graph else out.detach()
    return out, (g[0] if single else g)


def jacobian(func, inputs, create_graph=False, strict=False, vectorize=False, strategy="reverse-mode"):
    """The Jacobian of ``func`` at ``inputs``, of shape ``output.shape + input.shape`` (a tuple of
    tuples for several inputs or outputs), one reverse pass per output element.

    >>> tapegrad.autograd.functional.jacobian(lambda x: x ** 2, tapegrad.tensor([1.0, 2.0]))
    tensor([[2., 0.],
            [0., 4.]])
    """
    single_in = not isinstance(inputs, (tuple, list))
    xs = _prep(inputs, create_graph)
    with grad_mode.enable_grad():
        outs = func(*xs)
        single_out = not isinstance(outs, (tuple, list))
        outs = (outs,) if single_out else tuple(outs)
        jac = []
        for o in outs:
            rows = [[] for _ in xs]
            for k in range(o.numel()):
                e = np.zeros(o.shape, o.dtype)
                e.reshape(-1)[k] = 1
                g = autograd.grad(o, xs, Tensor._wrap(e), retain_graph=True, create_graph=create_graph,
                          allow_unused=True)
                for i, (gi, x) in enumerate(zip(g, xs)):
                    rows[i].append(_zeros_if_none(gi, x))
            per_input = []
            for i, x in enumerate(xs):
                if rows[i]:
                    j = ops.stack(rows[i], 0).reshape(tuple(o.shape) + tuple(x.shape))
                else:
                    j = Tensor._wrap(np.zeros(tuple(o.shape) + tuple(x.shape), x.dtype))
                per_input.append(j if create_graph else j.detach())
            jac.append(per_input[0] if single_in else tuple(per_input))
    return jac[0] if single_out else tuple(jac)


def hessian(func, inputs, create_graph=False, strict=False, vectorize=False, outer_jacobian_strategy="reverse-mode"):
    """The Hessian of the scalar function ``func`` at ``inputs`` (the Jacobian of its gradient)."""
    single_in = not isinstance(inputs, (tuple, list))

    def gradient(*xs):
        out = func(*xs)
        g = autograd.grad(out, xs, create_graph=True, allow_unused=True)
        g = tuple(_zeros_if_none(gi, x) for gi, x in zip(g, xs))
        return g[0] if single_in else g
    return jacobian(gradient, inputs, create_graph=create_graph)


def jvp(func, inputs, v=None, create_graph=False, strict=False):
    """``J v`` by the double-vjp trick (two reverse passes)."""
    single = not isinstance(inputs, (tuple, list))
    xs = _prep(inputs, True)
    vs = (v,) if single else tuple(v)
    with grad_mode.enable_grad():
        out = func(*xs)
        u = Tensor._wrap(np.zeros(out.shape, out.dtype)).requires_grad_(True)
        g = autograd.grad(out, xs, u, create_graph=True, allow_unused=True)
        pairs = [(gi, vi) for gi, vi in zip(g, vs) if gi is not None]
        jv = autograd.grad([p[0] for p in pairs], u, [p[1] for p in pairs], create_graph=create_graph)[0]
    return (out if create_graph else out.detach()), (jv if create_graph else jv.detach())


def hvp(func, inputs, v=None, create_graph=False, strict=False):
    """``(func(inputs), H v)``: the output and the Hessian-vector product at ``inputs``, without
    forming the Hessian (two reverse passes)."""
    single = not isinstance(inputs, (tuple, list))
    xs = _prep(inputs, True)
    vs = (v,) if single else tuple(v)
    with grad_mode.enable_grad():
        out = func(*xs)
        g = autograd.grad(out, xs, create_graph=True)
        hv = autograd.grad(g, xs, vs, create_graph=create_graph, allow_unused=True)
    hv = tuple(_zeros_if_none(h, x) for h, x in zip(hv, xs))
    return (out if create_graph else out.detach()), (hv[0] if single else hv)


vhp = hvp  # the Hessian is symmetric


def _prep(inputs, create_graph):
    xs = (inputs,) if not isinstance(inputs, (tuple, list)) else tuple(inputs)
    return tuple(x if create_graph and x.requires_grad else x.detach().requires_grad_(True) for x in xs)


def _zeros_if_none(g, x):
    return Tensor._wrap(np.zeros(x.shape, x.dtype)) if g is None else g


__all__ = ["jacobian", "hessian", "vjp", "jvp", "hvp", "vhp"]
