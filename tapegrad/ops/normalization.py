"""Fused normalisation primitives: batch_norm and group_norm (instance_norm is group_norm with
one channel a group), each one op whose forward and backward are C++ passes (csrc/kernels/norm.cpp).

``nn.functional.batch_norm`` / ``group_norm`` / ``instance_norm`` check their arguments and choose
these for float32/float64 operands of one dtype; anything else (16-bit inputs, mixed dtypes,
parameters of other shapes) keeps the composite formula there. A first-order backward calls
the fused backward kernels; under create_graph the VJPs are the composite formulas written in
tapegrad ops, so second derivatives keep working.
"""
from __future__ import annotations

import numpy as np

from .. import _C
from .._tape import grad_mode
from .._tape.registry import defop
from .pointwise import rsqrt

Tensor = None  # the Tensor class, bound by tensor.py (ops.bind_tensor): the ops sit below it


def _c(a):
    return None if a is None else np.ascontiguousarray(a)


def _fused(x, g):
    """A VJP may call a fused kernel: a first-order backward (recording off) on arrays of x's float dtype."""
    return not grad_mode.is_grad_enabled() and g._data.dtype == x._data.dtype


def _params(wb, affine):
    """(weight, bias) from the op's optional trailing inputs; ``affine`` says which were given."""
    it = iter(wb)
    return (next(it) if affine[0] else None), (next(it) if affine[1] else None)


def _channel_shape(x):
    return (1, x.shape[1]) + (1,) * (x.ndim - 2)


def _channel_dims(x):
    return (0,) + tuple(range(2, x.ndim))


def _wants(t):
    return t is not None and t.requires_grad


def _stashed(stash, g, which):
    """The gradient ``which`` ('weight' or 'bias') that another VJP of this node computed for this
    same upstream g, taken out of the stash (emptied once both are taken, so it holds no g); None
    when there is none."""
    if stash.get("g") is not g or stash.get(which) is None:
        return None
    grad = stash.pop(which)
    if stash.get("weight") is None and stash.get("bias") is None:
        stash.clear()
    return Tensor._wrap(grad)


# ---------------------------------------------------------------- batch_norm
def _batch_norm_fwd(x, *wb, training, momentum, eps, running_mean, running_var, affine):
    """Per-channel normalisation of x (N, C, *); with ``training`` the batch statistics (the running
    ones, when given, updated in place as PyTorch's), else the running ones. aux: (mean, rstd, the
    stash where the input's VJP leaves the parameter gradients it computed in the same pass)."""
    w, b = _params(wb, affine)
    y, mean, rstd = _C.batch_norm(_c(x), _c(w), _c(b), running_mean, running_var, training, momentum, eps)
    return y, (mean, rstd, {})


def _batch_norm_xhat(x, eps):
    """(x - mean) * rstd and rstd over every dim but 1, recorded (the create_graph path)."""
    dims = _channel_dims(x)
    xc = x - x.mean(dims, keepdim=True)
    r = rsqrt((xc * xc).mean(dims, keepdim=True) + eps)
    return xc * r, r


def _batch_norm_vjp_x(g, out, x, *wb, training, eps, affine, aux, **_):
    w, b = _params(wb, affine)
    mean, rstd, stash = aux
    if _fused(x, g):
        ww, wb_ = _wants(w), _wants(b)
        gx, gw, gb = _C.batch_norm_backward(_c(g._data), _c(x._data), mean, rstd, None if w is None else _c(w._data),
                                            training, True, ww, wb_)
        if ww or wb_:  # for the parameters' VJPs, which come next with this same g
            stash.update(g=g, weight=gw, bias=gb)
        return Tensor._wrap(gx)
    bshape = _channel_shape(x)
    if not training:  # the statistics are constants: an affine map per channel
        a = Tensor._wrap(rstd.reshape(bshape))
        return g * (a if w is None else a * w.reshape(bshape))
    dims = _channel_dims(x)
    xhat, r = _batch_norm_xhat(x, eps)
    gh = g if w is None else g * w.reshape(bshape)
    return (gh - gh.mean(dims, keepdim=True) - xhat * (gh * xhat).mean(dims, keepdim=True)) * r


def _batch_norm_vjp_param(g, x, training, eps, aux, which):
    """grad_weight (``which`` 'weight': sum of g xhat) or grad_bias (sum of g) over every dim but 1."""
    mean, rstd, stash = aux
    if _fused(x, g):
        grad = _stashed(stash, g, which)
        if grad is not None:
            return grad
        _, gw, gb = _C.batch_norm_backward(_c(g._data), _c(x._data), mean, rstd, None, training, False,
                                           which == "weight", which == "bias")
        return Tensor._wrap(gw if which == "weight" else gb)
    dims = _channel_dims(x)
    if which == "bias":
        return g.sum(dims)
    if training:
        xhat = _batch_norm_xhat(x, eps)[0]
    else:
        bshape = _channel_shape(x)
        xhat = (x - Tensor._wrap(mean.reshape(bshape))) * Tensor._wrap(rstd.reshape(bshape))
    return (g * xhat).sum(dims)


def _batch_norm_vjp_second(g, out, x, *wb, training, eps, affine, aux, **_):
    return _batch_norm_vjp_param(g, x, training, eps, aux, "weight" if affine[0] else "bias")


def _batch_norm_vjp_third(g, out, x, *wb, training, eps, affine, aux, **_):
    return _batch_norm_vjp_param(g, x, training, eps, aux, "bias")


# batch_norm(x, [weight], [bias]): which of the two are present is the attribute ``affine``
batch_norm = defop("batch_norm", _batch_norm_fwd, _batch_norm_vjp_x, _batch_norm_vjp_second,
                   _batch_norm_vjp_third, aux=True)


# ---------------------------------------------------------------- group_norm
def _group_norm_fwd(x, *wb, num_groups, eps, affine, running_mean=None, running_var=None, momentum=None):
    """Normalisation of x (N, C, *) over each (sample, group of C / num_groups channels). With
    running statistics (instance_norm, one channel a group) they are updated in place as
    PyTorch's: the batch's per-instance means and unbiased variances averaged over the samples."""
    w, b = _params(wb, affine)
    track = running_mean is not None
    y, mean, rstd, var = _C.group_norm(_c(x), num_groups, _c(w), _c(b), eps, track)
    if track:
        n, c = x.shape[:2]
        s = x.size // (n * c)
        bm = mean.astype(np.float64).reshape(n, c).mean(0)
        bv = var.reshape(n, c).mean(0) * (s / max(s - 1, 1))
        running_mean[...] = (1 - momentum) * running_mean + momentum * bm
        running_var[...] = (1 - momentum) * running_var + momentum * bv
    return y, (mean, rstd, {})


def _group_norm_xhat(x, num_groups, eps):
    """(x - mean) * rstd over each (sample, group), recorded, in x's shape (the create_graph path)."""
    xr = x.reshape(x.shape[0], num_groups, -1)
    xc = xr - xr.mean(2, keepdim=True)
    r = rsqrt((xc * xc).mean(2, keepdim=True) + eps)
    return xc * r, r


def _group_norm_vjp_x(g, out, x, *wb, num_groups, eps, affine, aux, **_):
    w, b = _params(wb, affine)
    mean, rstd, stash = aux
    if _fused(x, g):
        ww, wb_ = _wants(w), _wants(b)
        gx, gw, gb = _C.group_norm_backward(_c(g._data), _c(x._data), mean, rstd, num_groups,
                                            None if w is None else _c(w._data), True, ww, wb_)
        if ww or wb_:  # for the parameters' VJPs, which come next with this same g
            stash.update(g=g, weight=gw, bias=gb)
        return Tensor._wrap(gx)
    xhat, r = _group_norm_xhat(x, num_groups, eps)
    gh = (g if w is None else g * w.reshape(_channel_shape(x))).reshape(xhat.shape)
    gx = (gh - gh.mean(2, keepdim=True) - xhat * (gh * xhat).mean(2, keepdim=True)) * r
    return gx.reshape(x.shape)


def _group_norm_vjp_param(g, x, num_groups, eps, aux, which, both=False):
    """grad_weight (``which`` 'weight': sum of g xhat) or grad_bias (sum of g) over every dim but 1;
    the weight's, when the bias wants one too and the input's VJP has not run, computes both in
    one pass and leaves the bias's in the stash."""
    mean, rstd, stash = aux
    if _fused(x, g):
        grad = _stashed(stash, g, which)
        if grad is not None:
            return grad
        _, gw, gb = _C.group_norm_backward(_c(g._data), _c(x._data), mean, rstd, num_groups, None, False,
                                           which == "weight", which == "bias" or both)
        if which == "weight" and both:
            stash.update(g=g, bias=gb)
        return Tensor._wrap(gw if which == "weight" else gb)
    dims = _channel_dims(x)
    if which == "bias":
        return g.sum(dims)
    return (g * _group_norm_xhat(x, num_groups, eps)[0].reshape(x.shape)).sum(dims)


def _group_norm_vjp_second(g, out, x, *wb, num_groups, eps, affine, aux, **_):
    if affine[0]:
        return _group_norm_vjp_param(g, x, num_groups, eps, aux, "weight", affine[1] and _wants(wb[1]))
    return _group_norm_vjp_param(g, x, num_groups, eps, aux, "bias")


def _group_norm_vjp_third(g, out, x, *wb, num_groups, eps, affine, aux, **_):
    return _group_norm_vjp_param(g, x, num_groups, eps, aux, "bias")


# group_norm(x, [weight], [bias]): which of the two are present is the attribute ``affine``
group_norm = defop("group_norm", _group_norm_fwd, _group_norm_vjp_x, _group_norm_vjp_second,
                   _group_norm_vjp_third, aux=True)
