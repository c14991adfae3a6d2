"""A view op that changes nothing (``x.reshape(x.shape)``, ``x.view(-1)`` of a 1-D tensor,
``squeeze()`` without size-1 dims, an identity ``permute``, ``t()`` of a 1-D tensor, ``expand``
to the same shape, ...) returns a new view in PyTorch: its own tensor, not a leaf, with its own
``grad``, hooks and gradient in ``autograd.grad``. Returning ``x`` itself made
``autograd.grad(loss, [x, v])`` give ``v`` the gradient of ``x`` (every use of both), and a hook
or ``retain_grad`` on ``v`` see ``x``'s gradient: silently wrong values.

``flatten`` with ``start_dim == end_dim``, ``contiguous()`` of a contiguous tensor and ``to()``
its own dtype do return the input itself in PyTorch; they still do.
"""
import numpy as np
import pytest

import tapegrad as tg

ALIASES = {
    "reshape_same": lambda x: x.reshape(x.shape),
    "view_same": lambda x: x.view(*x.shape),
    "view_minus1": lambda x: x.view(-1),
    "ravel": lambda x: x.ravel(),
    "view_as": lambda x: x.view_as(x),
    "reshape_as": lambda x: x.reshape_as(x),
    "squeeze_none": lambda x: x.squeeze(),
    "squeeze_dim": lambda x: x.squeeze(0),
    "permute_identity": lambda x: x.permute(0),
    "transpose_00": lambda x: x.transpose(0, 0),
    "t_1d": lambda x: x.t(),
    "T_1d": lambda x: x.T,
    "movedim_same": lambda x: x.movedim(0, 0),
    "swapaxes_same": lambda x: x.swapaxes(0, 0),
    "expand_same": lambda x: x.expand(3),
    "expand_as": lambda x: x.expand_as(x),
    "broadcast_to": lambda x: x.broadcast_to((3,)),
    "unflatten": lambda x: x.unflatten(0, (3,)),
}

X = np.array([0.5, -1.25, 2.0])
W1 = np.array([1.0, 2.0, -3.0])
W2 = np.array([0.25, -0.5, 4.0])


def run(lib, alias):
    x = lib.tensor(X.tolist(), dtype=lib.float64, requires_grad=True)
    v = alias(x)
    seen = []
    v.register_hook(lambda g: seen.append(g.detach().numpy().copy()))
    loss = (x * lib.tensor(W1.tolist(), dtype=lib.float64)).sum() + (v * v * lib.tensor(W2.tolist(), dtype=lib.float64)).sum()
    gx, gv = lib.autograd.grad(loss, [x, v])
    return v, gx.numpy(), gv.numpy(), seen


@pytest.mark.parametrize("name", sorted(ALIASES))
def test_alias_is_its_own_view(name):
    x = tg.tensor(X.tolist(), dtype=tg.float64, requires_grad=True)
    v = ALIASES[name](x)
    assert v is not x and not v.is_leaf and v.requires_grad and v._base is x
    v, gx, gv, seen = run(tg, ALIASES[name])
    # loss = sum(W1 x) + sum(W2 v^2) with v == x: d/dv = 2 W2 v; d/dx = W1 + 2 W2 x (through v)
    np.testing.assert_allclose(gv, 2 * W2 * X)
    np.testing.assert_allclose(gx, W1 + 2 * W2 * X)
    assert len(seen) == 1
    np.testing.assert_allclose(seen[0], 2 * W2 * X)


@pytest.mark.parametrize("name", sorted(ALIASES))
def test_alias_matches_pytorch(name):
    torch = pytest.importorskip("torch")
    vt, gxt, gvt, seent = run(torch, ALIASES[name])
    vg, gxg, gvg, seeng = run(tg, ALIASES[name])
    np.testing.assert_allclose(gxg, gxt.numpy() if hasattr(gxt, "numpy") else gxt)
    np.testing.assert_allclose(gvg, gvt)
    assert [s.tolist() for s in seeng] == [s.tolist() for s in seent]
    assert vg.is_leaf == vt.is_leaf


def test_alias_write_reaches_base_and_its_graph():
    """An in-place write through an alias view of a non-leaf is seen by the base's gradient."""
    a = tg.tensor(X.tolist(), dtype=tg.float64, requires_grad=True)
    x = a * 1
    v = x.view(-1)
    v.mul_(a)  # x == a * a now
    (x * tg.tensor(W1.tolist(), dtype=tg.float64)).sum().backward()
    np.testing.assert_allclose(a.grad.numpy(), 2 * W1 * X)


@pytest.mark.parametrize("fn", [lambda x: x.flatten(), lambda x: x.contiguous(), lambda x: x.to(x.dtype)])
def test_no_op_that_pytorch_returns_as_itself(fn):
    x = tg.tensor(X.tolist(), dtype=tg.float64, requires_grad=True)
    assert fn(x) is x
