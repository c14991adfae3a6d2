"""matmul and linear with a dimension of size 0 (K, M, N or a batch dim): zeros or empty results
and gradients, as PyTorch's. A batch of matrices with K = 0 raised (a reshape with -1 cannot
stand for the rows when the row length is 0), found by PyTorch's OpInfo samples."""
import numpy as np
import pytest

import tapegrad as tg

SHAPES = [((5, 5, 0), (0, 5)), ((5, 0), (0, 5)), ((2, 5, 0), (2, 0, 3)), ((0,), (0,)), ((3, 0), (0,)),
          ((0,), (0, 4)), ((5, 5, 0), (0,)), ((5, 5, 3), (3, 0)), ((0, 5, 3), (3, 2)), ((4, 0, 3), (3,)),
          ((2, 3), (3, 0)), ((3,), (2, 3, 0)), ((2, 0, 3), (3, 4))]


def _run(M, a, b):
    x = M.ones(*a, dtype=M.float64, requires_grad=True)
    y = M.full(b, 2.0, dtype=M.float64, requires_grad=True)
    r = M.matmul(x, y)
    (r * 3.0).sum().backward()
    return tuple(r.shape), r.detach().numpy(), x.grad.numpy(), y.grad.numpy()


@pytest.mark.parametrize("a, b", SHAPES)
def test_matmul_with_an_empty_dim(a, b):
    shape, out, ga, gb = _run(tg, a, b)
    assert ga.shape == a and gb.shape == b
    assert not out.any() if 0 in a[-1:] else True  # K = 0: the empty sum is 0
    torch = pytest.importorskip("torch")
    want = _run(torch, a, b)
    assert shape == want[0]
    for g, w in zip((out, ga, gb), want[1:]):
        np.testing.assert_array_equal(g, w)


@pytest.mark.parametrize("xs, ws", [((5, 5, 0), (4, 0)), ((5, 0), (4, 0)), ((2, 3, 4), (0, 4)), ((0, 3, 4), (2, 4))])
def test_linear_with_an_empty_dim(xs, ws):
    x = tg.ones(*xs, dtype=tg.float64, requires_grad=True)
    w = tg.ones(*ws, dtype=tg.float64, requires_grad=True)
    b = tg.ones(ws[0], dtype=tg.float64, requires_grad=True)
    y = tg.nn.functional.linear(x, w, b)
    y.sum().backward()
    assert tuple(y.shape) == xs[:-1] + ws[:1]
    np.testing.assert_array_equal(y.detach().numpy(), np.ones(y.shape))  # bias only: the product is empty
    assert x.grad.shape == xs and w.grad.shape == ws and b.grad.tolist() == [float(np.prod(xs[:-1]))] * ws[0]
