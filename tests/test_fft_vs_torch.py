"""``tapegrad.fft`` against scipy (values) and PyTorch (values, dtypes and gradients of real losses
of the complex outputs), for every transform, norm mode and signal size; gradients against
complex finite differences."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.fft as sfft

import tapegrad as tg
from tapegrad.testing import gradcheck

RNG = np.random.default_rng(3)
NORMS = [None, "backward", "ortho", "forward"]
# (name, keyword arguments, complex input)
CALLS = [(n, kw, c) for n, kws, cs in [
    ("fft", [{}, {"n": 4}, {"n": 9, "dim": 0}], (True, False)),
    ("ifft", [{}, {"n": 3}, {"dim": 0}], (True, False)),
    ("rfft", [{}, {"n": 5}, {"n": 8, "dim": 0}], (False,)),
    ("irfft", [{}, {"n": 9}, {"n": 4, "dim": 0}], (True, False)),
    ("hfft", [{}, {"n": 7}], (True,)),
    ("ihfft", [{}, {"n": 9}, {"dim": 0}], (False,)),
    ("fft2", [{}, {"s": (3, 8)}], (True, False)),
    ("ifft2", [{}, {"s": (5, 2)}], (True,)),
    ("rfft2", [{}, {"s": (2, 7)}], (False,)),
    ("irfft2", [{}, {"s": (3, 5)}], (True,)),
    ("hfft2", [{}, {"s": (4, 7)}], (True,)),
    ("ihfft2", [{}], (False,)),
    ("fftn", [{}, {"s": (5,), "dim": (0,)}, {"dim": (1, 0)}], (True, False)),
    ("ifftn", [{}, {"s": (3, 3)}], (True,)),
    ("rfftn", [{}, {"s": (3, 7)}], (False,)),
    ("irfftn", [{}, {"s": (3, 5)}], (True,)),
    ("hfftn", [{}, {"s": (2, 6)}], (True,)),
    ("ihfftn", [{}, {"dim": (0,)}], (False,)),
] for kw in kws for c in cs]
IDS = [f"{n}-{kw}-{'complex' if c else 'real'}" for n, kw, c in CALLS]


def _input(complex_in, shape=(4, 6)):
    a = RNG.standard_normal(shape)
    return a + 1j * RNG.standard_normal(shape) if complex_in else a


@pytest.mark.parametrize("norm", [None, "ortho"])
@pytest.mark.parametrize("name, kw, complex_in", CALLS, ids=IDS)
def test_values_match_scipy(name, kw, complex_in, norm):
    a = _input(complex_in)
    got = getattr(tg.fft, name)(tg.tensor(a), norm=norm, **kw)
    skw = {{"dim": "axes" if name.endswith(("2", "n")) else "axis"}.get(k, k): v for k, v in kw.items()}
    want = getattr(sfft, name)(a, norm=norm or "backward", **skw)
    assert got.dtype == (tg.complex128 if np.iscomplexobj(want) else tg.float64)
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("norm", NORMS)
@pytest.mark.parametrize("name, kw, complex_in", CALLS, ids=IDS)
def test_values_and_gradients_match_torch(name, kw, complex_in, norm):
    torch = pytest.importorskip("torch")
    a = _input(complex_in)
    w = RNG.standard_normal(64)
    for loss in ("energy", "weighted_real"):
        x, t = tg.tensor(a, requires_grad=True), torch.tensor(a, requires_grad=True)
        o1, o2 = getattr(tg.fft, name)(x, norm=norm, **kw), getattr(torch.fft, name)(t, norm=norm, **kw)
        assert str(o1.dtype) == str(o2.dtype).replace("torch.", "tapegrad.")
        np.testing.assert_allclose(o1.detach().numpy(), o2.detach().resolve_conj().numpy(), rtol=1e-10, atol=1e-12)
        if loss == "energy":  # (fft(x).abs() ** 2).sum()
            (o1.abs() ** 2).sum().backward()
            (o2.abs() ** 2).sum().backward()
        else:  # a weighted sum of the real parts
            n = o1.numel()
            o1.real.mul(tg.tensor(w[:n].reshape(o1.shape))).sum().backward()
            o2.real.mul(torch.tensor(w[:n].reshape(tuple(o2.shape)))).sum().backward()
        np.testing.assert_allclose(x.grad.numpy(), t.grad.resolve_conj().numpy(), rtol=1e-9, atol=1e-11)


@pytest.mark.parametrize("name, kw, complex_in", CALLS[::2], ids=IDS[::2])
def test_gradients_match_finite_differences(name, kw, complex_in):
    a = _input(complex_in, (3, 4))
    x = tg.tensor(a, requires_grad=True)
    for norm in ("backward", "ortho"):
        assert gradcheck(lambda t: getattr(tg.fft, name)(t, norm=norm, **kw), (x,))


def test_float32_gives_complex64_and_integers_the_default_dtype():
    assert tg.fft.fft(tg.ones(4)).dtype == tg.complex64
    assert tg.fft.rfft(tg.arange(4)).dtype == tg.complex64
    assert tg.fft.irfft(tg.ones(3, dtype=tg.complex64)).dtype == tg.float32
    assert tg.fft.hfft(tg.ones(3, dtype=tg.complex128), n=5).shape == (5,)


def test_frequencies_and_shifts_match_torch():
    torch = pytest.importorskip("torch")
    for n in (1, 4, 7):
        for d in (1.0, 0.1):
            np.testing.assert_allclose(tg.fft.fftfreq(n, d).numpy(), torch.fft.fftfreq(n, d).numpy(), rtol=1e-7)
            np.testing.assert_allclose(tg.fft.rfftfreq(n, d).numpy(), torch.fft.rfftfreq(n, d).numpy(), rtol=1e-7)
    assert tg.fft.fftfreq(4, dtype=tg.float64).dtype == tg.float64
    a = RNG.standard_normal((3, 4, 5))
    for dim in (None, 0, (1, 2), -1):
        for fn in ("fftshift", "ifftshift"):
            np.testing.assert_array_equal(getattr(tg.fft, fn)(tg.tensor(a), dim=dim).numpy(),
                                          getattr(torch.fft, fn)(torch.tensor(a), dim=dim).numpy())
    x = tg.tensor(a, requires_grad=True)
    assert gradcheck(lambda t: tg.fft.fftshift(t, dim=(0, 2)) * tg.tensor(a), (x,))


@pytest.mark.parametrize("call, match", [
    (lambda: tg.fft.rfft(tg.zeros(4, dtype=tg.complex64)), "real input"),
    (lambda: tg.fft.fft(tg.zeros(4), n=0), "Invalid number of data points"),
    (lambda: tg.fft.irfft(tg.zeros(1, dtype=tg.complex64)), "Invalid number of data points"),
    (lambda: tg.fft.fft2(tg.zeros(4, 4), s=(2,), dim=(0, 1)), "same length"),
    (lambda: tg.fft.fftn(tg.zeros(4), s=(2, 2)), "only has 1 dimensions"),
    (lambda: tg.fft.fft(tg.zeros(4), dim=1), "out of range"),
    (lambda: tg.fft.fftn(tg.zeros(4, 4), dim=(0, 0)), "unique"),
    (lambda: tg.fft.fft(tg.zeros(4), norm="bogus"), "Invalid normalization mode"),
    (lambda: tg.fft.fft(tg.zeros(4, dtype=tg.float16)), "float16"),
    (lambda: tg.fft.fftfreq(-1), "non-negative"),
])
def test_bad_arguments_raise_clear_errors(call, match):
    with pytest.raises((RuntimeError, ValueError, IndexError), match=match):
        call()


def test_eig_matches_torch():
    torch = pytest.importorskip("torch")
    a = np.array([[0.0, -2.0, 0.3], [1.0, 0.5, 0.0], [0.2, 0.0, 3.0]])  # a complex pair and a real eigenvalue
    b = RNG.standard_normal((2, 3, 3)) + 1j * RNG.standard_normal((2, 3, 3))
    for m in (a, b):
        x, t = tg.tensor(m, requires_grad=True), torch.tensor(m, requires_grad=True)
        (L1, V1), (L2, V2) = tg.linalg.eig(x), torch.linalg.eig(t)
        assert str(L1.dtype) == str(L2.dtype).replace("torch.", "tapegrad.")
        np.testing.assert_allclose(L1.detach().numpy(), L2.detach().numpy(), rtol=1e-10)
        np.testing.assert_allclose(V1.detach().abs().numpy(), V2.detach().abs().numpy(), rtol=1e-9)
        ((L1 * L1).real.sum() + (V1.abs() ** 2 * tg.tensor(np.arange(9.0).reshape(3, 3))).sum()).backward()
        ((L2 * L2).real.sum() + (V2.abs() ** 2 * torch.tensor(np.arange(9.0).reshape(3, 3))).sum()).backward()
        np.testing.assert_allclose(x.grad.numpy(), t.grad.numpy(), rtol=1e-8, atol=1e-10)
        np.testing.assert_allclose(tg.linalg.eigvals(x).detach().numpy(), L2.detach().numpy(), rtol=1e-10)


def test_eig_gradients_match_finite_differences_and_refuse_phase_dependent_losses():
    m = RNG.standard_normal((3, 3)) + 1j * RNG.standard_normal((3, 3))
    z = tg.tensor(m, requires_grad=True)
    assert gradcheck(lambda a: tg.linalg.eigvals(a), (z,))
    assert gradcheck(lambda a: tg.linalg.eig(a).eigenvectors.abs(), (z,))
    L, V = tg.linalg.eig(z)
    with pytest.raises(RuntimeError, match="e\\^\\{i phi\\}"):
        V.real.sum().backward()  # depends on each eigenvector's arbitrary phase
