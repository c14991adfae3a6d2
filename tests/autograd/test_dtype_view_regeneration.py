"""A view of another dtype (``view_as_real`` of a complex tensor, ``.real``/``.imag``,
``view_as_complex`` of a real one) whose base is written in place afterwards takes its graph from
the base's new one, as the same-dtype views do: it kept its old graph (no element positions
relate a float64 view to a complex128 base), so its values were the new ones but its gradient
the old one's: ``view_as_real(x)`` after ``x.mul_(a)`` gave half and a quarter of the gradient.
Checked against central finite differences of each case's own forward, and against PyTorch.
"""
import numpy as np
import pytest

import tapegrad as tg

A = [1.0, 2.0]
W = [[1.0, 10.0], [100.0, 1000.0]]


def as_real_then_base_scaled(lib, a):
    x = lib.complex(a, a * 2) * 1
    xr = lib.view_as_real(x)
    x.mul_(a)
    return (xr * lib.tensor(W, dtype=a.dtype)).sum()


def imag_then_base_scaled(lib, a):
    y = lib.complex(a * 3, a * a) * 1
    yi = y.imag
    y.mul_(lib.complex(a, a))
    return (yi * lib.tensor(W[1], dtype=a.dtype)).sum()


def as_complex_then_base_added(lib, a):
    r = lib.stack([a, a * a], dim=-1) * 1  # (2, 2): rows (a_k, a_k^2)
    z = lib.view_as_complex(r)
    r.add_(lib.stack([a * a, a], dim=-1))
    return (z.abs() ** 2).sum()


CASES = {f.__name__: f for f in (as_real_then_base_scaled, imag_then_base_scaled, as_complex_then_base_added)}


def grad(lib, case):
    a = lib.tensor(A, dtype=lib.float64, requires_grad=True)
    case(lib, a).backward()
    return a.grad.numpy()


def finite_difference(case, eps=1e-6):
    out = []
    for k in range(len(A)):
        vals = []
        for s in (1, -1):
            p = list(A)
            p[k] += s * eps
            with tg.no_grad():
                vals.append(float(case(tg, tg.tensor(p, dtype=tg.float64)).item()))
        out.append((vals[0] - vals[1]) / (2 * eps))
    return np.array(out)


@pytest.mark.parametrize("name", sorted(CASES))
def test_dtype_view_gradient_follows_base_write(name):
    np.testing.assert_allclose(grad(tg, CASES[name]), finite_difference(CASES[name]), rtol=1e-6)


@pytest.mark.parametrize("name", sorted(CASES))
def test_matches_pytorch(name):
    torch = pytest.importorskip("torch")
    np.testing.assert_allclose(grad(tg, CASES[name]), grad(torch, CASES[name]))
