"""torch.stft / torch.istft: values and gradients against PyTorch (float64), round trips, and
the errors, which name the call and the argument at fault."""
import warnings

import numpy as np
import pytest

import tapegrad as tg
from tapegrad.autograd import gradcheck

torch = pytest.importorskip("torch")

R = np.random.default_rng(0)
X = R.standard_normal((2, 300))
W40 = np.hanning(40)

CASES = [dict(n_fft=64), dict(n_fft=64, hop_length=10, win_length=40, window=W40),
         dict(n_fft=63, center=False, normalized=True), dict(n_fft=64, onesided=False),
         dict(n_fft=32, pad_mode="constant", window=np.hanning(32)), dict(n_fft=16, hop_length=16, window=np.ones(16))]


def args(kw, M):
    return {k: (M.tensor(v) if isinstance(v, np.ndarray) else v) for k, v in kw.items()}


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


@pytest.mark.parametrize("kw", CASES, ids=range(len(CASES)))
@pytest.mark.parametrize("batched", [True, False])
def test_stft_istft_match_pytorch_values_and_gradients(kw, batched):
    x = X if batched else X[0]
    xt, xr = tg.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    s, sr = tg.stft(xt, return_complex=True, **args(kw, tg)), torch.stft(xr, return_complex=True, **args(kw, torch))
    np.testing.assert_allclose(s.detach().numpy(), sr.detach().numpy(), atol=1e-12)
    g = R.standard_normal(tuple(sr.shape)) + 1j * R.standard_normal(tuple(sr.shape))
    s.backward(tg.tensor(g))
    sr.backward(torch.tensor(g))
    np.testing.assert_allclose(xt.grad.numpy(), xr.grad.numpy(), atol=1e-11)
    # The real form, and the method.
    np.testing.assert_allclose(tg.tensor(x).stft(return_complex=False, **args(kw, tg)).numpy(),
                               torch.stft(torch.tensor(x), return_complex=False, **args(kw, torch)).numpy(), atol=1e-12)
    ikw = {k: v for k, v in kw.items() if k != "pad_mode"}
    spec = sr.detach().numpy()
    st, srr = tg.tensor(spec, requires_grad=True), torch.tensor(spec, requires_grad=True)
    y, yr = tg.istft(st, length=300, **args(ikw, tg)), torch.istft(srr, length=300, **args(ikw, torch))
    np.testing.assert_allclose(y.detach().numpy(), yr.detach().numpy(), atol=1e-12)
    if kw.get("center", True) and kw.get("hop_length") != 16:  # frames that cover the signal: lossless
        np.testing.assert_allclose(y.detach().numpy(), x, atol=1e-12)
    gy = R.standard_normal(tuple(yr.shape))
    y.backward(tg.tensor(gy))
    yr.backward(torch.tensor(gy))
    np.testing.assert_allclose(st.grad.numpy(), srr.grad.numpy(), atol=1e-11)


def test_gradcheck_signal_spectrum_and_window():
    x = tg.tensor(R.standard_normal(40), requires_grad=True)
    w = tg.tensor(np.hanning(16) + 0.1, requires_grad=True)
    assert gradcheck(lambda x, w: tg.view_as_real(tg.stft(x, 16, hop_length=4, window=w, return_complex=True)), (x, w))
    spec = tg.stft(x.detach(), 16, hop_length=4, window=w.detach(), return_complex=True).detach().contiguous().requires_grad_(True)
    assert gradcheck(lambda s, w: tg.istft(s, 16, hop_length=4, window=w, length=40), (spec, w))


def test_float32_and_complex_input():
    x = R.standard_normal(200).astype(np.float32)
    s = tg.stft(tg.tensor(x), 32, window=tg.hann_window(32), return_complex=True)
    assert s.dtype == tg.complex64
    np.testing.assert_allclose(s.numpy(), torch.stft(torch.tensor(x), 32, window=torch.hann_window(32),
                                                     return_complex=True).numpy(), atol=1e-4)
    z = R.standard_normal(200) + 1j * R.standard_normal(200)
    np.testing.assert_allclose(tg.stft(tg.tensor(z), 32).numpy(), torch.stft(torch.tensor(z), 32).numpy(), atol=1e-12)
    sz = torch.stft(torch.tensor(z), 32)
    np.testing.assert_allclose(tg.istft(tg.tensor(sz.numpy()), 32, return_complex=True, length=200).numpy(), z,
                               atol=1e-12)


@pytest.mark.parametrize("call, match", [
    (lambda x: tg.stft(x, 16), "return_complex parameter"),
    (lambda x: tg.stft(x, 0, return_complex=True), "n_fft"),
    (lambda x: tg.stft(x, 16, hop_length=0, return_complex=True), "hop_length > 0"),
    (lambda x: tg.stft(x, 16, win_length=20, return_complex=True), "win_length <= n_fft"),
    (lambda x: tg.stft(x, 16, window=tg.ones(5, dtype=tg.float64), return_complex=True), "size equal to win_length=16"),
    (lambda x: tg.stft(x.reshape(2, 5, 10), 4, return_complex=True), "1D or 2D"),
    (lambda x: tg.istft(tg.stft(x, 16, return_complex=True), 32), "n_fft / 2 \\+ 1"),
    (lambda x: tg.istft(x.reshape(10, 10), 16), "complex input"),
    (lambda x: tg.istft(tg.stft(x, 16, hop_length=16, window=tg.hann_window(16, dtype=tg.float64),
                                return_complex=True), 16, hop_length=16, window=tg.hann_window(16, dtype=tg.float64)),
     "window overlap add min"),
])
def test_errors(call, match):
    with pytest.raises(RuntimeError, match=match):
        call(tg.tensor(R.standard_normal(100)))
