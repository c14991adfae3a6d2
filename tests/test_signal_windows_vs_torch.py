"""``tapegrad.signal.windows`` against ``torch.signal.windows`` (op_db's signal.windows.* OpInfos
had no counterpart): every window, symmetric and periodic, float32 and float64, and the errors."""
import numpy as np
import pytest

import tapegrad as tg

torch = pytest.importorskip("torch")

WINDOWS = ["bartlett", "blackman", "cosine", "exponential", "gaussian", "general_cosine", "general_hamming",
           "hamming", "hann", "kaiser", "nuttall"]
EXTRA = {"general_cosine": dict(a=[0.46, 0.23, 0.31]), "exponential": dict(tau=2.5), "gaussian": dict(std=0.7),
         "kaiser": dict(beta=4.0), "general_hamming": dict(alpha=0.6)}


@pytest.mark.parametrize("name", WINDOWS)
@pytest.mark.parametrize("sym", [True, False])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_window_matches_torch(name, sym, dtype):
    for M in (0, 1, 2, 5, 10):
        want = getattr(torch.signal.windows, name)(M, sym=sym, dtype=getattr(torch, dtype), **EXTRA.get(name, {}))
        got = getattr(tg.signal.windows, name)(M, sym=sym, dtype=getattr(tg, dtype), **EXTRA.get(name, {}))
        assert tuple(got.shape) == tuple(want.shape) and got.dtype is getattr(tg, dtype) and str(got.dtype) == "tapegrad." + dtype
        np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-6, atol=1e-7)


def test_periodic_exponential_center_default_dtype_and_requires_grad():
    kw = dict(center=1.0, sym=False)
    np.testing.assert_allclose(tg.signal.windows.exponential(5, **kw).numpy(),
                               torch.signal.windows.exponential(5, **kw).numpy(), rtol=1e-6)
    w = tg.signal.windows.hann(4, requires_grad=True)
    assert w.dtype == tg.float32 and w.requires_grad and w.is_leaf


@pytest.mark.parametrize("call", [lambda M: M.signal.windows.hann(-1), lambda M: M.signal.windows.hann(3, dtype=M.int64),
                                  lambda M: M.signal.windows.exponential(3, center=1.0),
                                  lambda M: M.signal.windows.gaussian(3, std=0),
                                  lambda M: M.signal.windows.kaiser(3, beta=-1),
                                  lambda M: M.signal.windows.general_cosine(3, a=[]),
                                  lambda M: M.signal.windows.general_cosine(3, a=1.0),
                                  lambda M: M.signal.windows.hann(3, layout=M.sparse_coo)])
def test_window_errors_match_torch(call):
    with pytest.raises(Exception) as want:
        call(torch)
    with pytest.raises(type(want.value)):
        call(tg)
