"""The 3-D pools added for API coverage (fractional_max_pool3d, lp_pool3d and their modules) against
PyTorch: values, indices and gradients in float64, odd sizes, non-contiguous input."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")

import tapegrad as tg  # noqa: E402

R = np.random.default_rng(3)


def _both(fn, x, *extra):
    """``fn(M, x, *extra)`` in both libraries; returns [(outputs..., x.grad)] for torch and tapegrad."""
    res = []
    for M in (torch, tg):
        t = M.tensor(x.copy(), requires_grad=True)
        out = fn(M, t, *[M.tensor(e.copy()) for e in extra])
        outs = out if isinstance(out, tuple) else (out,)
        (outs[0] * outs[0]).sum().backward()
        res.append([o.detach().numpy() for o in outs] + [t.grad.numpy()])
    return res


@pytest.mark.parametrize("kernel,out", [(2, (3, 4, 5)), ((2, 3, 2), (4, 3, 6)), (3, (4, 5, 6))])
def test_fractional_max_pool3d_matches_torch(kernel, out):
    x = R.standard_normal((2, 3, 7, 8, 9))
    s = R.random((2, 3, 3))
    want, got = _both(lambda M, a, smp: M.nn.functional.fractional_max_pool3d(
        a, kernel, output_size=out, return_indices=True, _random_samples=smp), x, s)
    for w, g in zip(want, got):
        np.testing.assert_array_equal(g, w)
    # unbatched input through the module, with output_ratio
    want, got = _both(lambda M, a, smp: M.nn.FractionalMaxPool3d(kernel, output_ratio=0.5, _random_samples=smp)(a),
                      x[0], s[:1])
    for w, g in zip(want, got):
        np.testing.assert_array_equal(g, w)


def test_fractional_max_pool3d_checks_and_the_window_that_ends_at_the_edge():
    x = tg.randn(1, 2, 7, 7, 7)
    with pytest.raises(ValueError, match="output_size or an output_ratio"):
        tg.nn.functional.fractional_max_pool3d(x, 2)
    with pytest.raises(RuntimeError, match="too large"):
        tg.nn.functional.fractional_max_pool3d(x, 3, output_size=(6, 4, 4))
    with pytest.raises(RuntimeError, match="_random_samples of shape"):
        tg.nn.functional.fractional_max_pool3d(x, 2, output_size=3, _random_samples=tg.rand(1, 2, 2))
    with pytest.raises(ValueError, match="output_ratio"):
        tg.nn.FractionalMaxPool3d(2, output_ratio=(0.5, 1.5, 0.5))
    # out + k - 1 == size fits (PyTorch's 3-D check refuses it): the last window is the input's end
    y, idx = tg.nn.functional.fractional_max_pool3d(x, 3, output_size=5, return_indices=True)
    assert y.shape == (1, 2, 5, 5, 5)
    flat = x.numpy().reshape(1, 2, -1)
    np.testing.assert_array_equal(np.take_along_axis(flat, idx.numpy().reshape(1, 2, -1), 2).reshape(y.shape),
                                  y.numpy())


@pytest.mark.parametrize("norm_type,kernel,stride,ceil_mode", [(2, (3, 2, 2), 2, False), (1.5, 2, None, True),
                                                                (3, (2, 3, 2), (1, 2, 3), False)])
def test_lp_pool3d_matches_torch(norm_type, kernel, stride, ceil_mode):
    x = np.abs(R.standard_normal((2, 3, 9, 7, 8))) + 0.1
    x = x.transpose(0, 1, 3, 2, 4)  # non-contiguous
    want, got = _both(lambda M, a: M.nn.functional.lp_pool3d(a, norm_type, kernel, stride, ceil_mode), x)
    for w, g in zip(want, got):
        np.testing.assert_allclose(g, w, rtol=1e-10, atol=1e-12)
    want, got = _both(lambda M, a: M.nn.LPPool3d(norm_type, kernel, stride, ceil_mode)(a), x[0])
    for w, g in zip(want, got):
        np.testing.assert_allclose(g, w, rtol=1e-10, atol=1e-12)


def test_lp_pool3d_float32_matches_torch():
    x = (np.abs(R.standard_normal((1, 2, 5, 6, 7))) + 0.1).astype(np.float32)
    want = torch.nn.functional.lp_pool3d(torch.tensor(x), 2, 2).numpy()
    got = tg.nn.functional.lp_pool3d(tg.tensor(x), 2, 2).numpy()
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, want, rtol=1e-5)
