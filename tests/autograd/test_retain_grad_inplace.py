"""``retain_grad()`` follows the tensor through in-place writes, as PyTorch moves its
retains_grad hook to the new ``grad_fn``: ``.grad`` is the gradient of the tensor's latest value.
It stayed on the node of the value before the write, so ``x.mul_(3)`` gave ``x.grad`` three
times the gradient, and a write through a view of ``x`` (or into the base of a retaining view)
left ``.grad`` wrong or unset. In-place *view* ops (``t_``, ``squeeze_``) keep it where it was,
as PyTorch does.
"""
import numpy as np
import pytest

import tapegrad as tg

A = np.array([[0.5, -1.0, 2.0], [1.5, 0.25, -0.75], [-2.0, 1.0, 0.5]])
W = np.array([[1.0, -2.0, 0.5], [0.25, 3.0, -1.0], [2.0, -0.5, 1.5]])
W2 = np.array([[0.5, 1.0, -1.0], [2.0, -3.0, 0.25]])


def c_inplace_on_tensor(lib, a, w, w2):
    x = a * 2
    x.retain_grad()
    x.mul_(3.0)
    (x * w).sum().backward()
    return x.grad


def c_inplace_through_view(lib, a, w, w2):
    x = a * 2
    x.retain_grad()
    x[2:, :].mul_(3.0)
    (x * w).sum().backward()
    return x.grad


def c_setitem_into_retaining_tensor(lib, a, w, w2):
    x = a * 2
    x.retain_grad()
    x[0] = a[1] * a[2]
    (x * w).sum().backward()
    return x.grad


def c_view_retains_base_written(lib, a, w, w2):
    x = a * 2
    v = x[1:]
    v.retain_grad()
    x.mul_(2.0)
    ((v * w2).sum() + (x * w).sum()).backward()
    return v.grad


def c_inplace_view_op_keeps_it(lib, a, w, w2):
    x = a * 2
    x.retain_grad()
    x.t_()
    (x * w).sum().backward()
    return x.grad


EXPECTED = {  # .grad of the latest value: the weight it is multiplied by in the loss
    "c_inplace_on_tensor": W,
    "c_inplace_through_view": W,
    "c_setitem_into_retaining_tensor": W,
    "c_view_retains_base_written": W2,
    "c_inplace_view_op_keeps_it": W.T,  # PyTorch: the gradient as laid out before t_()
}
CASES = {name: globals()[name] for name in EXPECTED}


def run(lib, name):
    a = lib.tensor(A.tolist(), dtype=lib.float64, requires_grad=True)
    w = lib.tensor(W.tolist(), dtype=lib.float64)
    w2 = lib.tensor(W2.tolist(), dtype=lib.float64)
    g = CASES[name](lib, a, w, w2)
    return None if g is None else g.numpy()


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_retained_grad_is_the_latest_values(name):
    got = run(tg, name)
    assert got is not None
    np.testing.assert_allclose(got, EXPECTED[name])


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_retained_grad_matches_pytorch(name):
    torch = pytest.importorskip("torch")
    want = run(torch, name)
    np.testing.assert_allclose(run(tg, name), want)
