"""Names from ``torch.autograd`` that ported scripts import: ``Variable`` (a plain tensor since
PyTorch 0.4), anomaly detection (NaN gradients raise, naming the op and where it was recorded),
``gradcheck``/``gradgradcheck`` and ``functional.jacobian``/``hessian``/``vjp``/``jvp``."""
from __future__ import annotations

import numpy as np

from . import grad_mode


def Variable(data, requires_grad: bool = False, volatile: bool = False):  # noqa: N802  (PyTorch's name)
    """The pre-0.4 wrapper: returns ``data`` itself, with ``requires_grad`` set when asked."""
    if requires_grad:
        data.requires_grad_(True)
    return data


_anomaly = [False]


class detect_anomaly:  # noqa: N801
    """``with detect_anomaly():`` backward raises as soon as an op's gradient formula returns NaN,
    naming the op and the file:line of your code that recorded it (as PyTorch's, which also
    needs this mode to report where the op was recorded; tapegrad always records that)."""

    def __init__(self, check_nan: bool = True):
        self.check_nan = bool(check_nan)

    def __enter__(self):
        self._prev = _anomaly[0], grad_mode.state.check_nan
        _anomaly[0] = True
        grad_mode.state.check_nan = self.check_nan
        return self

    def __exit__(self, *exc):
        _anomaly[0], grad_mode.state.check_nan = self._prev
        return False


class set_detect_anomaly(detect_anomaly):  # noqa: N801
    """``set_detect_anomaly(mode)`` switches it at once; as a context manager it restores on exit."""

    def __init__(self, mode: bool, check_nan: bool = True):
        super().__init__(check_nan)
        self._prev = _anomaly[0], grad_mode.state.check_nan
        _anomaly[0] = bool(mode)
        grad_mode.state.check_nan = bool(mode) and self.check_nan

    def __enter__(self):
        return self


def is_anomaly_enabled() -> bool:
    return _anomaly[0]


def gradcheck(func, inputs, *, eps=1e-6, atol=1e-5, rtol=1e-3, raise_exception=True, **kwargs) -> bool:
    """``torch.autograd.gradcheck``: tapegrad.testing.gradcheck (extra PyTorch options ignored)."""
    from ..testing import gradcheck as _gc
    return _gc(func, inputs, eps=eps, atol=atol, rtol=rtol, raise_exception=raise_exception)


def gradgradcheck(func, inputs, grad_outputs=None, *, eps=1e-6, atol=1e-5, rtol=1e-3, raise_exception=True,
                  **kwargs) -> bool:
    from ..testing import gradgradcheck as _ggc
    return _ggc(func, inputs, grad_outputs, eps=eps, atol=atol, rtol=rtol, raise_exception=raise_exception)


class functional:  # noqa: N801  (a namespace, as torch.autograd.functional)
    """``jacobian``, ``hessian``, ``vjp``, ``jvp``, ``vhp``, ``hvp`` by repeated reverse passes."""

    @staticmethod
    def vjp(func, inputs, v=None, create_graph=False, strict=False):
        from . import grad as _grad
        single = not isinstance(inputs, (tuple, list))
        xs = _prep(inputs, create_graph)
        with grad_mode.enable_grad():
            out = func(*xs)
            g = _grad(out, xs, v, create_graph=create_graph, allow_unused=True)
        g = tuple(_zeros_if_none(gi, x) for gi, x in zip(g, xs))
        out = out if create_graph else out.detach()
        return out, (g[0] if single else g)

    @staticmethod
    def jacobian(func, inputs, create_graph=False, strict=False, vectorize=False, strategy="reverse-mode"):
        from . import grad as _grad
        from ..tensor import Tensor
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
                    g = _grad(o, xs, Tensor._wrap(e), retain_graph=True, create_graph=create_graph,
                              allow_unused=True)
                    for i, (gi, x) in enumerate(zip(g, xs)):
                        rows[i].append(_zeros_if_none(gi, x))
                per_input = []
                for i, x in enumerate(xs):
                    from .. import ops
                    if rows[i]:
                        j = ops.stack(rows[i], 0).reshape(tuple(o.shape) + tuple(x.shape))
                    else:
                        j = Tensor._wrap(np.zeros(tuple(o.shape) + tuple(x.shape), x.dtype))
                    per_input.append(j if create_graph else j.detach())
                jac.append(per_input[0] if single_in else tuple(per_input))
        return jac[0] if single_out else tuple(jac)

    @staticmethod
    def hessian(func, inputs, create_graph=False, strict=False, vectorize=False, outer_jacobian_strategy="reverse-mode"):
        from . import grad as _grad
        single_in = not isinstance(inputs, (tuple, list))

        def gradient(*xs):
            out = func(*xs)
            g = _grad(out, xs, create_graph=True, allow_unused=True)
            g = tuple(_zeros_if_none(gi, x) for gi, x in zip(g, xs))
            return g[0] if single_in else g
        return functional.jacobian(gradient, inputs, create_graph=create_graph)

    @staticmethod
    def jvp(func, inputs, v=None, create_graph=False, strict=False):
        """``J v`` by the double-vjp trick (two reverse passes)."""
        from . import grad as _grad
        from ..tensor import Tensor
        single = not isinstance(inputs, (tuple, list))
        xs = _prep(inputs, True)
        vs = (v,) if single else tuple(v)
        with grad_mode.enable_grad():
            out = func(*xs)
            u = Tensor._wrap(np.zeros(out.shape, out.dtype)).requires_grad_(True)
            g = _grad(out, xs, u, create_graph=True, allow_unused=True)
            pairs = [(gi, vi) for gi, vi in zip(g, vs) if gi is not None]
            jv = _grad([p[0] for p in pairs], u, [p[1] for p in pairs], create_graph=create_graph)[0]
        return (out if create_graph else out.detach()), (jv if create_graph else jv.detach())

    @staticmethod
    def hvp(func, inputs, v=None, create_graph=False, strict=False):
        from . import grad as _grad
        single = not isinstance(inputs, (tuple, list))
        xs = _prep(inputs, True)
        vs = (v,) if single else tuple(v)
        with grad_mode.enable_grad():
            out = func(*xs)
            g = _grad(out, xs, create_graph=True)
            hv = _grad(g, xs, vs, create_graph=create_graph, allow_unused=True)
        hv = tuple(_zeros_if_none(h, x) for h, x in zip(hv, xs))
        return (out if create_graph else out.detach()), (hv[0] if single else hv)

    vhp = hvp  # the Hessian is symmetric


def _prep(inputs, create_graph):
    xs = (inputs,) if not isinstance(inputs, (tuple, list)) else tuple(inputs)
    return tuple(x if create_graph and x.requires_grad else x.detach().requires_grad_(True) for x in xs)


def _zeros_if_none(g, x):
    from ..tensor import Tensor
    return Tensor._wrap(np.zeros(x.shape, x.dtype)) if g is None else g


__all__ = ["Variable", "detect_anomaly", "set_detect_anomaly", "is_anomaly_enabled", "gradcheck", "gradgradcheck",
           "functional"]
