"""The torch.special functions added for API coverage against PyTorch: values (float32 and
float64, integer inputs promoted) and, where PyTorch has one, the gradient."""
import numpy as np
import pytest
import scipy.special as sp

torch = pytest.importorskip("torch")

import tapegrad as tg  # noqa: E402

R = np.random.default_rng(0)
X = np.concatenate([[0.0, -0.0, 1.0, -1.0, 1e-8, 30.0, -30.0], R.uniform(-5, 5, 20)])
TORCH_ACCURACY = {"bessel_j0": 1e-5, "bessel_j1": 1e-5, "bessel_y0": 1e-5, "bessel_y1": 1e-5, "airy_ai": 1e-4}
POS = np.concatenate([[1e-8, 0.5, 1.0, 2.0, 40.0], R.uniform(0.01, 8, 20)])

UNARY = {  # name: (inputs, differentiable)
    "i0": (X, True), "i0e": (X, True), "i1": (X, True), "i1e": (X, True), "erfcx": (X, True),
    "entr": (POS, True), "bessel_j0": (X, False), "bessel_j1": (X, False), "bessel_y0": (POS, False),
    "bessel_y1": (POS, False), "modified_bessel_i0": (X, False), "modified_bessel_i1": (X, False),
    "modified_bessel_k0": (POS, False), "modified_bessel_k1": (POS, False), "scaled_modified_bessel_k0": (POS, False),
    "scaled_modified_bessel_k1": (POS, False), "spherical_bessel_j0": (X, False), "airy_ai": (X, False),
}


@pytest.mark.parametrize("name", sorted(UNARY))
def test_unary_special_matches_torch(name):
    x, diff = UNARY[name]
    for dt in ("float64", "float32"):
        xt = torch.tensor(x, dtype=getattr(torch, dt), requires_grad=diff)
        xg = tg.tensor(x, dtype=getattr(tg, dt), requires_grad=diff)
        yt, yg = getattr(torch.special, name)(xt), getattr(tg.special, name)(xg)
        assert yg.dtype == getattr(tg, dt)
        rtol = 1e-11 if dt == "float64" else 2e-6
        # PyTorch's own Bessel/Airy approximations are less accurate than scipy's (rel. error up to
        # ~1e-5 near their zeros, ~1e-4 for airy_ai; checked against mpmath); tapegrad keeps scipy's values
        rtol = max(rtol, TORCH_ACCURACY.get(name, 0))
        atol = 1e-6 if name in TORCH_ACCURACY else 1e-300  # near the Bessel functions' zeros
        np.testing.assert_allclose(yg.detach().numpy(), yt.detach().numpy(), rtol=rtol, atol=atol)
        if diff and dt == "float64":
            yt.sum().backward()
            yg.sum().backward()
            np.testing.assert_allclose(xg.grad.numpy(), xt.grad.numpy(), rtol=1e-10, atol=1e-14)
    assert getattr(tg.special, name)(tg.tensor([1, 2])).dtype == tg.float32
    if name in TORCH_ACCURACY:  # scipy's values, to the last bits
        ref = {"bessel_j0": sp.j0, "bessel_j1": sp.j1, "bessel_y0": sp.y0, "bessel_y1": sp.y1,
               "airy_ai": lambda v: sp.airy(v)[0]}[name](x)
        np.testing.assert_allclose(getattr(tg.special, name)(tg.tensor(x)).numpy(), ref, rtol=1e-14)


@pytest.mark.parametrize("name", ["zeta", "gammainc", "gammaincc"])
def test_binary_special_matches_torch(name):
    a = R.uniform(1.1, 6, (4, 1))
    b = R.uniform(0.1, 5, (1, 5))
    res = []
    for M in (torch, tg):
        at, bt = M.tensor(a.copy()), M.tensor(b.copy(), requires_grad=True)
        y = getattr(M.special, name)(at, bt)
        y.sum().backward()
        res.append((y.detach().numpy(), bt.grad.numpy()))
    for u, v in zip(*res):
        np.testing.assert_allclose(v, u, rtol=1e-10)
    np.testing.assert_allclose(tg.special.zeta(tg.tensor([2.0]), 1).numpy(), [np.pi ** 2 / 6], rtol=1e-6)


POLY = ["chebyshev_polynomial_t", "chebyshev_polynomial_u", "chebyshev_polynomial_v", "chebyshev_polynomial_w",
        "shifted_chebyshev_polynomial_t", "shifted_chebyshev_polynomial_u", "shifted_chebyshev_polynomial_v",
        "shifted_chebyshev_polynomial_w", "hermite_polynomial_h", "hermite_polynomial_he", "laguerre_polynomial_l",
        "legendre_polynomial_p"]


@pytest.mark.parametrize("name", POLY)
def test_polynomials_match_torch(name):
    x = np.array([-1.0, -0.3, 0.0, 0.25, 0.7, 1.0, 1.8])
    n = np.array([-2.0, 0.0, 1.0, 2.0, 3.7, 6.0, 11.0])
    for nn in (n, 5, 2.5):
        nt = torch.tensor(nn) if isinstance(nn, np.ndarray) else nn
        ng = tg.tensor(nn) if isinstance(nn, np.ndarray) else nn
        want = getattr(torch.special, name)(torch.tensor(x), nt).numpy()
        got = getattr(tg.special, name)(tg.tensor(x), ng).numpy()
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)
    grid = np.add.outer(x, 0 * n)
    want = getattr(torch.special, name)(torch.tensor(grid), torch.tensor(n)).numpy()
    np.testing.assert_allclose(getattr(tg.special, name)(tg.tensor(grid), tg.tensor(n)).numpy(), want, rtol=1e-10,
                               atol=1e-12)
