"""The harness shared by the tests that compare tapegrad with PyTorch (imported after
``pytest.importorskip("torch")``). A case is written once against a module ``M``, ``tapegrad``
or ``torch``, whose APIs agree, and run on both."""
import numpy as np
import pytest
import torch

import tapegrad as tg


def inputs(M, arrays):
    """Each array as a float64 leaf that requires grad, in ``M``."""
    return [M.tensor(a, requires_grad=True) for a in arrays]


def as_numpy(t):
    return t.detach().numpy() if hasattr(t, "detach") else np.asarray(t)


def values(out):
    """A case's result as a flat list of tensors ((values, indices) pairs and tuples opened)."""
    if hasattr(out, "values") and hasattr(out, "indices") and not callable(out.values):
        return [out.values, out.indices]
    if not isinstance(out, (tuple, list)):
        return [out]
    return [r for o in out for r in (values(o) if isinstance(o, tuple) else [o])]


def _grad(M):
    return torch.autograd.grad if M is torch else tg.autograd.grad


def check_forward_and_gradients(fn, arrays, grad_rtol=1e-10):
    """Values, dtypes and the gradients of every float64 output (a fixed random cotangent) agree."""
    outs = {}
    for M in (torch, tg):
        xs = inputs(M, arrays)
        res = values(fn(M, *xs))
        diff = [o for o in res if o.dtype in (torch.float64, tg.float64) and o.requires_grad]
        grads = []
        if diff:
            cot = [np.random.default_rng(1).standard_normal(tuple(o.shape)) for o in diff]
            gs = _grad(M)(diff, xs, [M.tensor(c) for c in cot], allow_unused=True)
            grads = [None if g is None else as_numpy(g) for g in gs]
        outs[M] = ([as_numpy(o) for o in res], [str(o.dtype).split(".")[-1] for o in res], grads)
    (tv, td, tgr), (gv, gd, ggr) = outs[torch], outs[tg]
    assert gd == td, f"dtypes {gd} vs torch {td}"
    for a, b in zip(gv, tv):
        assert a.shape == b.shape
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-10)
    for a, b in zip(ggr, tgr):
        if b is None or a is None:  # unused on one side: the other's gradient must be all zeros
            assert a is None or not np.any(a)
            assert b is None or not np.any(b), "tapegrad's gradient is None where PyTorch's is nonzero"
        else:
            np.testing.assert_allclose(a, b, rtol=grad_rtol, atol=1e-10)


def check_double_backward(fn, arrays, name, reduce):
    """d/dx |d reduce(fn(x)) / dx|^2 agrees: second derivatives through create_graph=True."""
    res = {}
    for M in (torch, tg):
        (x, *rest) = inputs(M, arrays)
        out = reduce(values(fn(M, x, *rest)))
        (g,) = _grad(M)(out, x, create_graph=True)
        (gg,) = _grad(M)((g * g).sum(), x)
        res[M] = as_numpy(gg)
    np.testing.assert_allclose(res[tg], res[torch], rtol=1e-8, atol=1e-8, err_msg=name)


def check_same_exception_type(call):
    """``call(M)`` raises in both, and tapegrad's exception is (a sibling of) PyTorch's type."""
    with pytest.raises(Exception) as want:
        call(torch)
    with pytest.raises(Exception) as got:
        call(tg)
    assert isinstance(got.value, type(want.value)) or issubclass(type(want.value), type(got.value)), (
        f"torch raises {type(want.value).__name__}, tapegrad {type(got.value).__name__}: {got.value}")
