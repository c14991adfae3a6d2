"""A few core semantics compared with PyTorch itself (skipped when torch is not installed)."""
import numpy as np
import pytest

import tapegrad as tg

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.torch


def both(values, dtype="float64", requires_grad=True):
    return (tg.tensor(values, dtype=getattr(tg, dtype), requires_grad=requires_grad),
            torch.tensor(values, dtype=getattr(torch, dtype), requires_grad=requires_grad))


def test_chain_and_broadcast_gradients_match():
    a, ta = both([[0.5, -1.0, 2.0]])
    b, tb = both([[1.0], [2.0]])
    for lib, x, y in ((tg, a, b), (torch, ta, tb)):
        ((x * y).exp() / (y + 3) - x.relu()).sum().backward()
    np.testing.assert_allclose(a.grad.numpy(), ta.grad.numpy(), rtol=1e-12)
    np.testing.assert_allclose(b.grad.numpy(), tb.grad.numpy(), rtol=1e-12)


def test_hessian_vector_product_matches():
    x, tx = both([1.0, -2.0, 0.5])
    v = [0.3, 0.2, 0.1]
    (g,) = tg.autograd.grad((x.sin() * x).sum(), x, create_graph=True)
    (hv,) = tg.autograd.grad((g * tg.tensor(v, dtype=tg.float64)).sum(), x)
    (tgr,) = torch.autograd.grad((tx.sin() * tx).sum(), tx, create_graph=True)
    (thv,) = torch.autograd.grad((tgr * torch.tensor(v, dtype=torch.float64)).sum(), tx)
    np.testing.assert_allclose(hv.numpy(), thv.numpy(), rtol=1e-12)


def test_promotion_matches():
    cases = [("float32", "float64"), ("int64", "float32"), ("int32", "int64"), ("bool", "int32"),
             ("float16", "float32")]
    for da, db in cases:
        r = (tg.ones(2, dtype=getattr(tg, da)) + tg.ones(2, dtype=getattr(tg, db))).dtype
        t = (torch.ones(2, dtype=getattr(torch, da)) + torch.ones(2, dtype=getattr(torch, db))).dtype
        assert str(t).split(".")[1] == tg._dtype.name(r).split(".")[1], (da, db)
    for scalar in (2, 2.5, True):
        for d in ("float32", "int64", "int32"):
            r = (tg.ones(2, dtype=getattr(tg, d)) * scalar).dtype
            t = (torch.ones(2, dtype=getattr(torch, d)) * scalar).dtype
            assert str(t).split(".")[1] == tg._dtype.name(r).split(".")[1], (d, scalar)


def test_max_tie_gradient_matches():
    a, ta = both([1.0, 3.0])
    b, tb = both([2.0, 3.0])
    tg.maximum(a, b).sum().backward()
    torch.maximum(ta, tb).sum().backward()
    np.testing.assert_allclose(a.grad.numpy(), ta.grad.numpy())


def test_repr_matches():
    for v in ([1.0, 2.5], [1.0, 2.0], [0.1234567, 100.0], 2.5, [[1.5, 2.0], [3.0, 4.25]]):
        assert repr(tg.tensor(v)) == repr(torch.tensor(v))
    assert repr(tg.tensor([1, 2])) == repr(torch.tensor([1, 2]))


def test_accumulation_and_retain_grad_match():
    x, tx = both([1.0, 2.0])
    for lib, t in ((tg, x), (torch, tx)):
        h = t * 3
        h.retain_grad()
        (h * h).sum().backward()
        (t * t).sum().backward()
        assert h.grad is not None
    np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy())
