"""A view of a 0-d tensor (``x[None]``, ``x.view(1)``, ``x.reshape(())``) whose base is written in
place afterwards takes its graph from the base's new one. Regenerating it raised ValueError
("multiple indices are not supported for 0d arrays") from the tape, at backward or at the next
use of the view: no index array addresses a 0-d base's element. Checked by hand and against
PyTorch.
"""
import numpy as np
import pytest

import tapegrad as tg

A = [0.5, -1.0, 2.0]


def none_view(lib, a):
    x = a[0] * 1.5
    v = x[None]
    x.sub_(-1.5, alpha=0.5)  # x = 1.5 a0 + 0.75
    return (v * 3.0).sum(), [a, v]


def view_then_mul(lib, a):
    x = (a * a).sum()
    v = x.view(1, 1)
    u = x.reshape(())
    x.mul_(a[1])  # x = a1 * sum(a^2)
    return (v * 2.0).sum() + u * 5.0, [a, v, u]


def expected(name):
    a0, a1, a2 = A
    if name == "none_view":
        return [[4.5, 0.0, 0.0], [3.0]]
    s = a0 * a0 + a1 * a1 + a2 * a2
    ga = np.array([2 * a0 * a1, 2 * a1 * a1 + s, 2 * a2 * a1]) * 7.0
    return [ga, [[2.0]], 5.0]


CASES = {f.__name__: f for f in (none_view, view_then_mul)}


def run(lib, name):
    a = lib.tensor(A, dtype=lib.float64, requires_grad=True)
    loss, inputs = CASES[name](lib, a)
    return [g.numpy() for g in lib.autograd.grad(loss, inputs)]


@pytest.mark.parametrize("name", sorted(CASES))
def test_views_of_a_written_0d_base(name):
    for got, want in zip(run(tg, name), expected(name)):
        np.testing.assert_allclose(got, want)


@pytest.mark.parametrize("name", sorted(CASES))
def test_matches_pytorch(name):
    torch = pytest.importorskip("torch")
    for got, want in zip(run(tg, name), run(torch, name)):
        np.testing.assert_allclose(got, want)
