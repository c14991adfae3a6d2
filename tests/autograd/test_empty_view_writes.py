"""An in-place write through a view with no element (``x[:, 3:]`` of a 3-column ``x``, a
``narrow`` of length 0) is a no-op that PyTorch records: it raised in tapegrad ("can't be
recorded"), since numpy says an empty view shares no memory with its base, so no positions were
found for it.
"""
import numpy as np
import pytest

import tapegrad as tg

A = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])


def run(lib):
    a = lib.tensor(A.tolist(), dtype=lib.float64, requires_grad=True)
    x = a * 2
    x[:, 3:].mul_(a.sum())
    x[:0].fill_(1.0)
    x.narrow(1, 1, 0).copy_(a[:, :0])
    b = lib.zeros(4, 3, dtype=lib.float64)
    b[:, :0].add_(a.sum())
    ((x * x).sum() + b.sum()).backward()
    return a.grad.numpy(), b.requires_grad, x.detach().numpy()


def test_empty_view_writes_are_no_ops():
    grad, b_requires_grad, x = run(tg)
    np.testing.assert_allclose(x, 2 * A)
    np.testing.assert_allclose(grad, 8 * A)  # d/da sum((2a)^2)
    assert b_requires_grad  # a recorded write of a value that requires grad, as PyTorch's CopySlices


def test_empty_view_writes_match_pytorch():
    torch = pytest.importorskip("torch")
    for got, want in zip(run(tg), run(torch)):
        np.testing.assert_allclose(got, want)
