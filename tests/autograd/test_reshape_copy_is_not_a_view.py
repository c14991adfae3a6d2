"""``reshape`` that has to copy (of a transposed or expanded tensor) gives a tensor of its own, as
PyTorch's: it was marked a view of its input (sharing its version box), so an in-place op on it
was refused ("a view of a leaf ... in-place", "can't be recorded") and a write into it bumped the
input's version. The gradients after such a write are checked by hand and against PyTorch.
"""
import numpy as np
import pytest

import tapegrad as tg

A = np.arange(6.0).reshape(2, 3) / 4 - 0.5


def transposed_then_clamped(lib):
    a = lib.tensor(A.tolist(), dtype=lib.float64, requires_grad=True)
    y = (a.t() * 2).reshape(-1)  # (3, 2) transposed layout: numpy copies
    y.clamp_(min=-0.6, max=0.6)
    (y * lib.arange(6, dtype=lib.float64)).sum().backward()
    return y._base is None, a.grad.numpy()


def expanded_then_exp(lib):
    b = lib.tensor([[0.5, -1.0]], dtype=lib.float64, requires_grad=True)
    z = b.expand(3, 2).reshape(-1)
    z.exp_()
    z.sum().backward()
    return z._base is None, b.grad.numpy()


def expected(name):
    if name == "transposed_then_clamped":
        t = 2 * A.T  # y = flat(2 a^T), clamped: d/da = 2 * w where |y| < 0.6, laid back out as a
        w = np.arange(6.0).reshape(3, 2) * (np.abs(t) < 0.6)
        return 2 * w.T
    return 3 * np.exp([[0.5, -1.0]])


CASES = {f.__name__: f for f in (transposed_then_clamped, expanded_then_exp)}


@pytest.mark.parametrize("name", sorted(CASES))
def test_reshape_copy_is_its_own_tensor(name):
    not_a_view, grad = CASES[name](tg)
    assert not_a_view
    np.testing.assert_allclose(grad, expected(name))


@pytest.mark.parametrize("name", sorted(CASES))
def test_matches_pytorch(name):
    torch = pytest.importorskip("torch")
    got, want = CASES[name](tg), CASES[name](torch)
    assert got[0] == want[0]
    np.testing.assert_allclose(got[1], want[1])


def test_reshape_that_can_view_still_is_a_view():
    a = tg.tensor(A.tolist(), dtype=tg.float64, requires_grad=True)
    x = a * 1
    v = x.reshape(-1)
    assert v._base is x and np.shares_memory(v.detach().numpy(), x.detach().numpy())
