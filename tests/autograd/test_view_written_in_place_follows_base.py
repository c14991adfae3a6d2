"""A view written in place takes its graph from its base's new one (PyTorch regenerates it from
the base's CopySlices): afterwards the view is a function of the base, not the other way round.
tapegrad left the view on the in-place op's node and made the base's write read it, so
``autograd.grad`` of the base or of the view (and their hooks/retained grads) got the other's
share: ``buf[:, 2].index_add_(...)`` then ``grad(loss, [buf, view])`` gave the view the base's
gradient too, and a base that only the view's term used got no gradient at all.
"""
import numpy as np
import pytest

import tapegrad as tg

W1 = np.array([0.5, -1.0, 2.0])
W2 = np.arange(9.0).reshape(3, 3) / 4 - 1


def buffer_index_add(lib):
    src = lib.tensor([1.5, -0.5], dtype=lib.float64, requires_grad=True)
    buf = lib.zeros(3, 3, dtype=lib.float64)
    v = buf.select(1, 2)
    v.index_add_(0, lib.tensor([2, 0]), src)
    loss = (v * lib.tensor(W1.tolist(), dtype=lib.float64)).sum() + (buf * lib.tensor(W2.tolist(), dtype=lib.float64)).sum()
    return lib.autograd.grad(loss, [buf, v, src])


def nonleaf_row_mul(lib):
    a = lib.tensor(np.linspace(-1, 1, 9).reshape(3, 3).tolist(), dtype=lib.float64, requires_grad=True)
    x = a * 1
    v = x[0]
    v.mul_(a[1])
    loss = (v * lib.tensor(W1.tolist(), dtype=lib.float64)).sum() + (x * lib.tensor(W2.tolist(), dtype=lib.float64)).sum()
    return lib.autograd.grad(loss, [x, v])


def view_only_term(lib):
    src = lib.tensor([1.5, -0.5, 2.0], dtype=lib.float64, requires_grad=True)
    buf = lib.zeros(2, 3, dtype=lib.float64)
    v = buf[1]
    v.copy_(src * 2)
    loss = (v * lib.tensor(W1.tolist(), dtype=lib.float64)).sum()  # buf's new graph is used through v only
    return lib.autograd.grad(loss, [buf, v])


def expected(name):
    if name == "buffer_index_add":
        gbuf = W2.copy()
        gbuf[:, 2] += W1
        return [gbuf, W1, np.array([W1[2], W1[0]]) + np.array([W2[2, 2], W2[0, 2]])]
    if name == "nonleaf_row_mul":
        gx = W2.copy()
        gx[0] += W1
        return [gx, W1]
    gbuf = np.zeros((2, 3))
    gbuf[1] = W1
    return [gbuf, W1]


CASES = {f.__name__: f for f in (buffer_index_add, nonleaf_row_mul, view_only_term)}


@pytest.mark.parametrize("name", sorted(CASES))
def test_grad_of_base_and_view_after_a_write_through_the_view(name):
    got = CASES[name](tg)
    for g, want in zip(got, expected(name)):
        assert g is not None
        np.testing.assert_allclose(g.numpy(), want)


@pytest.mark.parametrize("name", sorted(CASES))
def test_matches_pytorch(name):
    torch = pytest.importorskip("torch")
    for g, want in zip(CASES[name](tg), CASES[name](torch)):
        np.testing.assert_allclose(g.numpy(), want.numpy())
