"""``tapegrad.signal.windows``: PyTorch's ``torch.signal.windows``, the window functions of
filter design (``sym=True``, symmetric) and spectral analysis (``sym=False``, periodic: the
symmetric window one longer, its last point dropped). Each is PyTorch's formula on numbers
spaced as its ``linspace``; float32 or float64, constant (a leaf when ``requires_grad``).

>>> tapegrad.signal.windows.hann(5)
tensor([0.0000, 0.5000, 1.0000, 0.5000, 0.0000])
"""
from collections.abc import Iterable

import numpy as np
import scipy.special as _sp

from .. import _dtype
from ..device import check_cpu as _check_cpu, strided
from ..ops import tensor as _tensor

__all__ = ["bartlett", "blackman", "cosine", "exponential", "gaussian", "general_cosine", "general_hamming",
           "hamming", "hann", "kaiser", "nuttall"]


def _checked(name, M, dtype, layout, device):
    """The numpy dtype of the window, after PyTorch's checks (ValueError, as its Python code raises)."""
    if device is not None:
        _check_cpu(device)
    if layout is not None and layout is not strided:
        raise ValueError(f"{name} is implemented for strided tensors only, got: {layout}")
    if M < 0:
        raise ValueError(f"{name} requires non-negative window length, got M={M}")
    d = np.dtype(_dtype.default_float() if dtype is None else _dtype.to_dtype(dtype))
    if d not in (np.float32, np.float64):
        raise ValueError(f"{name} expects float32 or float64 dtypes, got: {_dtype.name(d)}")
    return d


def _made(values, d, requires_grad):
    return _tensor(np.asarray(values, dtype=np.float64).astype(d), requires_grad=requires_grad)


def _points(M, start, step):
    """PyTorch's ``linspace(start, start + (M - 1) * step, M)``."""
    return np.linspace(start, start + (M - 1) * step, M)


def exponential(M, *, center=None, tau=1.0, sym=True, dtype=None, layout=None, device=None, requires_grad=False):
    """``exp(-|n - center| / tau)``; ``center`` (periodic windows only) defaults to the middle."""
    d = _checked("exponential", M, dtype, layout, device)
    if tau <= 0:
        raise ValueError(f"Tau must be positive, got: {tau} instead.")
    if sym and center is not None:
        raise ValueError("Center must be None for symmetric windows")
    if M == 0:
        return _made(np.empty(0), d, requires_grad)
    if center is None:
        center = (M if not sym and M > 1 else M - 1) / 2.0
    return _made(np.exp(-np.abs(_points(M, -center / tau, 1 / tau))), d, requires_grad)


def cosine(M, *, sym=True, dtype=None, layout=None, device=None, requires_grad=False):
    """The sine window ``sin(pi (n + 0.5) / M)``."""
    d = _checked("cosine", M, dtype, layout, device)
    if M == 0:
        return _made(np.empty(0), d, requires_grad)
    step = np.pi / (M + 1 if not sym and M > 1 else M)
    return _made(np.sin(_points(M, 0.5 * step, step)), d, requires_grad)


def gaussian(M, *, std=1.0, sym=True, dtype=None, layout=None, device=None, requires_grad=False):
    """``exp(-(n - (M - 1) / 2)^2 / (2 std^2))``."""
    d = _checked("gaussian", M, dtype, layout, device)
    if std <= 0:
        raise ValueError(f"Standard deviation must be positive, got: {std} instead.")
    if M == 0:
        return _made(np.empty(0), d, requires_grad)
    c = 1 / (std * np.sqrt(2))
    start = -(M if not sym and M > 1 else M - 1) / 2.0
    return _made(np.exp(-_points(M, start * c, c) ** 2), d, requires_grad)


def kaiser(M, *, beta=12.0, sym=True, dtype=None, layout=None, device=None, requires_grad=False):
    """``i0(beta sqrt(1 - (2n / N - 1)^2)) / i0(beta)``, N = M - 1 (M when periodic)."""
    d = _checked("kaiser", M, dtype, layout, device)
    if beta < 0:
        raise ValueError(f"beta must be non-negative, got: {beta} instead.")
    if M <= 1:
        return _made(np.ones(M), d, requires_grad)
    step = 2.0 * beta / (M if not sym else M - 1)
    k = np.linspace(-beta, min(beta, -beta + (M - 1) * step), M)
    return _made(_sp.i0(np.sqrt(np.maximum(beta * beta - k * k, 0))) / _sp.i0(beta), d, requires_grad)


def bartlett(M, *, sym=True, dtype=None, layout=None, device=None, requires_grad=False):
    """The triangular window ``1 - |2n / N - 1|``, N = M - 1 (M when periodic)."""
    d = _checked("bartlett", M, dtype, layout, device)
    if M <= 1:
        return _made(np.ones(M), d, requires_grad)
    return _made(1 - np.abs(_points(M, -1, 2 / (M if not sym else M - 1))), d, requires_grad)


def general_cosine(M, *, a, sym=True, dtype=None, layout=None, device=None, requires_grad=False):
    """``sum_i (-1)^i a[i] cos(2 pi i n / N)``, N = M - 1 (M when periodic)."""
    d = _checked("general_cosine", M, dtype, layout, device)
    if M <= 1:
        return _made(np.ones(M), d, requires_grad)
    if not isinstance(a, Iterable):
        raise TypeError("Coefficients must be a list/tuple")
    a = list(a)
    if not a:
        raise ValueError("Coefficients cannot be empty")
    k = _points(M, 0, 2 * np.pi / (M if not sym else M - 1))
    return _made(sum((-1) ** i * w * np.cos(i * k) for i, w in enumerate(a)), d, requires_grad)


def general_hamming(M, *, alpha=0.54, sym=True, dtype=None, layout=None, device=None, requires_grad=False):
    """``alpha - (1 - alpha) cos(2 pi n / N)``."""
    return general_cosine(M, a=[alpha, 1.0 - alpha], sym=sym, dtype=dtype, layout=layout, device=device,
                          requires_grad=requires_grad)


def hamming(M, *, sym=True, dtype=None, layout=None, device=None, requires_grad=False):
    """The Hamming window, ``general_hamming`` with alpha 0.54."""
    return general_hamming(M, sym=sym, dtype=dtype, layout=layout, device=device, requires_grad=requires_grad)


def hann(M, *, sym=True, dtype=None, layout=None, device=None, requires_grad=False):
    """The Hann window, ``general_hamming`` with alpha 0.5."""
    return general_hamming(M, alpha=0.5, sym=sym, dtype=dtype, layout=layout, device=device,
                           requires_grad=requires_grad)


def blackman(M, *, sym=True, dtype=None, layout=None, device=None, requires_grad=False):
    """The Blackman window, ``general_cosine`` with a = [0.42, 0.5, 0.08]."""
    _checked("blackman", M, dtype, layout, device)
    return general_cosine(M, a=[0.42, 0.5, 0.08], sym=sym, dtype=dtype, layout=layout, device=device,
                          requires_grad=requires_grad)


def nuttall(M, *, sym=True, dtype=None, layout=None, device=None, requires_grad=False):
    """The minimum 4-term Blackman-Harris window of Nuttall."""
    return general_cosine(M, a=[0.3635819, 0.4891775, 0.1365995, 0.0106411], sym=sym, dtype=dtype, layout=layout,
                          device=device, requires_grad=requires_grad)
