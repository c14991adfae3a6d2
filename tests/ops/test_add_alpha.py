"""add / sub with ``alpha`` (and add_ / sub_), which run as one pass (_C.axpy) on large float
tensors when nothing is recorded: the same bits as numpy's multiply then add, which the ops ran
before, for every route (in place, out of place, the generic fallbacks), and PyTorch's values."""
import numpy as np
import pytest

import tapegrad as tg
from tapegrad.ops import pointwise

N = pointwise._AXPY_MIN  # the fused path's threshold
RNG = np.random.default_rng(5)


def _two_pass(x, y, alpha, subtract):
    v = np.asarray(alpha, x.dtype)
    return x - y * v if subtract else x + y * v


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n", [N - 1, N, 3 * 16384 + 5])
@pytest.mark.parametrize("alpha", [0.3, -2, 1e-4])
def test_add_sub_with_alpha_are_the_two_pass_bits(dtype, n, alpha):
    x, y = (RNG.standard_normal(n).astype(dtype) for _ in range(2))
    for subtract, name in ((False, "add"), (True, "sub")):
        want = _two_pass(x, y, alpha, subtract)
        X, Y = tg.tensor(x), tg.tensor(y)
        assert getattr(tg, name)(X, Y, alpha=alpha).numpy().tobytes() == want.tobytes()
        v0 = X._version
        assert getattr(X, name + "_")(Y, alpha=alpha) is X
        assert X.numpy().tobytes() == want.tobytes() and X._version == v0 + 1
        with tg.no_grad():  # a leaf that requires grad, updated with recording off (an optimizer step)
            P = tg.tensor(x, requires_grad=True)
            getattr(P, name + "_")(Y, alpha=alpha)
        assert P.detach().numpy().tobytes() == want.tobytes() and P.requires_grad and P.grad_fn is None


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_fallbacks_give_the_same_values(dtype):
    x = RNG.standard_normal((64, 128)).astype(dtype)
    y = RNG.standard_normal((64, 128)).astype(dtype)
    X = tg.tensor(x)
    X.add_(X, alpha=2)  # aliasing: x + 2 x
    np.testing.assert_array_equal(X.numpy(), x + x * dtype(2))
    X = tg.tensor(x)
    X.add_(tg.tensor(y[0]), alpha=0.5)  # a broadcast row
    np.testing.assert_array_equal(X.numpy(), x + y[0] * dtype(0.5))
    X = tg.tensor(x.T.copy()).t()  # non-contiguous self
    X.sub_(tg.tensor(y), alpha=0.25)
    np.testing.assert_array_equal(X.numpy(), x - y * dtype(0.25))
    X = tg.tensor(x)
    X.add_(tg.tensor(y.T.copy()).t(), alpha=3)  # non-contiguous other
    np.testing.assert_array_equal(X.numpy(), x + y * dtype(3))
    # mixed dtypes promote as before
    out = tg.add(tg.tensor(x), tg.tensor(y.astype(np.float32 if dtype == np.float64 else np.float64)), alpha=2)
    assert out.dtype == tg.float64


def test_alpha_beyond_float32_takes_the_generic_path():
    x = tg.ones(N, dtype=tg.float32)
    with np.errstate(over="ignore"):
        r = tg.add(x, x, alpha=1e39)  # the product overflows in the generic path's float32 or float64
    assert np.isinf(r.numpy()).all()


def test_recorded_add_with_alpha_keeps_its_gradients():
    x = tg.randn(N, dtype=tg.float64, requires_grad=True)
    y = tg.randn(N, dtype=tg.float64, requires_grad=True)
    (tg.add(x, y, alpha=0.5) * 2).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), np.full(N, 2.0))
    np.testing.assert_array_equal(y.grad.numpy(), np.full(N, 1.0))
    x.grad = y.grad = None
    tg.sub(x, y, alpha=3).sum().backward()
    np.testing.assert_array_equal(y.grad.numpy(), np.full(N, -3.0))


def test_inplace_on_a_recorded_tensor_still_records():
    a = tg.randn(N, requires_grad=True)
    b = a * 1.0
    b.add_(tg.ones(N), alpha=2)
    assert b.grad_fn is not None
    b.sum().backward()
    np.testing.assert_array_equal(a.grad.numpy(), np.ones(N, np.float32))


def test_against_pytorch():
    torch = pytest.importorskip("torch")
    x, y = RNG.standard_normal(70001).astype(np.float32), RNG.standard_normal(70001).astype(np.float32)
    for alpha in (0.3, -1e-3):
        # PyTorch's vectorised add contracts y * alpha + x into one FMA: within an ulp of the sum
        want = torch.add(torch.from_numpy(x), torch.from_numpy(y), alpha=alpha).numpy()
        np.testing.assert_allclose(tg.add(tg.tensor(x), tg.tensor(y), alpha=alpha).numpy(), want, rtol=2e-6, atol=1e-7)
        X = tg.tensor(x)
        X.sub_(tg.tensor(y), alpha=alpha)
        tx = torch.from_numpy(x.copy())
        tx.sub_(torch.from_numpy(y), alpha=alpha)
        np.testing.assert_allclose(X.numpy(), tx.numpy(), rtol=2e-6, atol=1e-7)
