"""``add``/``sub`` (and their in-place forms) with a number as ``other`` and an ``alpha``:
``x.sub_(1.5, alpha=0.5)`` raised TypeError ("mul: expected at least one tensor operand") because
``alpha * other`` was computed with the tensor op on two numbers. The result and its gradient
(the identity for ``input``) are checked by hand and against PyTorch.
"""
import numpy as np
import pytest

import tapegrad as tg

X = [0.5, -1.0, 2.0]


def run(lib):
    a = lib.tensor(X, dtype=lib.float64, requires_grad=True)
    x = a * 1
    x.sub_(1.5, alpha=0.5)
    x.add_(2, alpha=3)
    y = lib.add(x, 4.0, alpha=-0.25) + lib.sub(x, 1.0, alpha=2.0)
    (y * lib.tensor([1.0, 2.0, 3.0], dtype=lib.float64)).sum().backward()
    return y.detach().numpy(), a.grad.numpy()


def test_number_other_with_alpha():
    y, g = run(tg)
    x = np.array(X) - 0.75 + 6
    np.testing.assert_allclose(y, (x - 1.0) + (x - 2.0))
    np.testing.assert_allclose(g, [2.0, 4.0, 6.0])


def test_number_other_with_alpha_matches_pytorch():
    torch = pytest.importorskip("torch")
    for got, want in zip(run(tg), run(torch)):
        np.testing.assert_allclose(got, want)


CALLS = [("add", (1.0, 2.0), {}), ("mul", (2, 3), {}), ("sub", (1.0, 2), {}), ("add", (1, 2.5), {}),
         ("add", (True, 2), {}), ("add", (1.0, 2.0), {"alpha": 3})]


@pytest.mark.parametrize("fn,args,kw", CALLS)
def test_two_numbers(fn, args, kw):
    """``torch.add(1.0, 2.0)`` (and out= into a view with two numbers, as the fuzzer wrote it)
    works in PyTorch: the first number becomes a 0-d tensor. It raised TypeError here."""
    got = getattr(tg, fn)(*args, **kw)
    want = {"add": lambda a, b: a + kw.get("alpha", 1) * b, "mul": lambda a, b: a * b,
            "sub": lambda a, b: a - b}[fn](*args)
    assert got.shape == () and got.item() == want
    torch = pytest.importorskip("torch")
    t = getattr(torch, fn)(*args, **kw)
    assert str(got.dtype).split(".")[-1] == str(t.dtype).split(".")[-1]


def test_two_numbers_out_into_a_view():
    buf = tg.zeros(2, 3, dtype=tg.float64)
    tg.add(-1.5, 2.0, out=buf[1, 1:2])
    np.testing.assert_array_equal(buf.numpy(), [[0, 0, 0], [0, 0.5, 0]])
