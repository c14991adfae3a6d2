"""The short-time Fourier transform and its inverse (``torch.stft`` / ``torch.istft``), written
in differentiable ops: padding, framing (``unfold``), the window, the one- or two-sided DFT of
each frame (``tapegrad.fft``), and for the inverse the overlap-add (``index_add``) divided by the
window's squared envelope. Gradients flow to the signal, the spectrum and the window, as in
PyTorch, and the shapes, defaults and errors are PyTorch's."""
from __future__ import annotations

import warnings

import numpy as np

from . import complex as _complex
from . import fft as _fft
from .creation import ones, zeros
from .indexing import index_add
from .reduction import amin
from .shape import pad as _pad
from .surface import public

Tensor = None  # the Tensor class, bound by tensor.py (ops.bind_tensor): the ops sit below it


def _sig(opname, x, n_fft, hop, win, window, normalized, onesided, return_complex):
    w = "None" if window is None else f"{window.dtype}{list(window.shape)}"
    return (f"{opname}({x.dtype}{list(x.shape)}, n_fft={n_fft}, hop_length={hop}, win_length={win}, window={w}, "
            f"normalized={normalized}, onesided={onesided}, return_complex={return_complex})")


def _window(window, n_fft, win, dtype, sig):
    """The window padded with zeros on both sides to ``n_fft`` (PyTorch's centring), or None."""
    if window is None:
        return None if win == n_fft else _pad(ones(win, dtype=dtype), ((n_fft - win) // 2, n_fft - win - (n_fft - win) // 2))
    if window.ndim != 1 or window.shape[0] != win:
        raise RuntimeError(f"{sig}: expected a 1D window tensor of size equal to win_length={win}, but got window "
                           f"with size {list(window.shape)}")
    if win == n_fft:
        return window
    left = (n_fft - win) // 2
    return _pad(window, (left, n_fft - win - left))


def _lengths(n_fft, hop_length, win_length):
    hop = n_fft // 4 if hop_length is None else hop_length
    win = n_fft if win_length is None else win_length
    return hop, win


@public(method=True)
def stft(input, n_fft, hop_length=None, win_length=None, window=None, center=True, pad_mode="reflect",
         normalized=False, onesided=None, return_complex=None, align_to_window=None):
    """The short-time Fourier transform of a signal (``(L,)``) or a batch of them (``(B, L)``):
    frames of ``n_fft`` samples ``hop_length`` apart (``n_fft // 4`` by default), each multiplied
    by ``window`` (rectangular by default; zero-padded to ``n_fft`` when ``win_length`` is shorter)
    and transformed; the result is ``(B?, n_fft // 2 + 1, frames)`` (or ``n_fft`` rows when
    ``onesided=False`` or the input is complex), complex, or with ``return_complex=False`` as
    ``view_as_real``. ``center`` pads ``n_fft // 2`` samples on each side (``pad_mode``).

    >>> tapegrad.stft(tapegrad.randn(1000), 64, window=tapegrad.hann_window(64), return_complex=True).shape
    tapegrad.Size([33, 63])
    """
    x = input
    hop, win = _lengths(n_fft, hop_length, win_length)
    sig = _sig("stft", x, n_fft, hop, win, window, normalized, onesided, return_complex)
    is_complex = x.dtype.kind == "c" or (window is not None and window.dtype.kind == "c")
    if return_complex is None:
        if not is_complex:
            raise RuntimeError("stft requires the return_complex parameter be given for real inputs, and will "
                               "further require that return_complex=True in a future PyTorch release.")
        return_complex = True
    if align_to_window:
        raise NotImplementedError(f"{sig}: align_to_window=True is not supported")
    if x.ndim not in (1, 2):
        raise RuntimeError(f"{sig}: expected a 1D or 2D tensor, got a tensor of shape {list(x.shape)}")
    if x.dtype.kind not in "fc":
        raise RuntimeError(f"{sig}: expected a floating-point or complex input, got {x.dtype}")
    batched = x.ndim == 2
    if not batched:
        x = x.reshape(1, x.shape[0])
    if center:
        x = _pad(x.reshape(x.shape[0], 1, x.shape[1]), (n_fft // 2, n_fft // 2), mode=pad_mode)
        x = x.reshape(x.shape[0], x.shape[2])
    length = x.shape[1]
    if not isinstance(n_fft, (int, np.integer)) or not 0 < n_fft <= length:
        raise RuntimeError(f"{sig}: expected 0 < n_fft <= {length}, but got n_fft={n_fft}")
    if hop <= 0:
        raise RuntimeError(f"{sig}: expected hop_length > 0, but got hop_length={hop}")
    if not 0 < win <= n_fft:
        raise RuntimeError(f"{sig}: expected 0 < win_length <= n_fft, but got win_length={win}")
    if onesided is None:
        onesided = not is_complex
    elif onesided and is_complex:
        raise RuntimeError(f"{sig}: cannot create a onesided result from a complex input or window; set "
                           f"onesided=False")
    if window is None and win == n_fft:
        warnings.warn("stft: a window was not provided; a rectangular window is applied, which is known to cause "
                      "spectral leakage (torch.hann_window or torch.hamming_window reduce it)", UserWarning,
                      stacklevel=2)
    w = _window(window, n_fft, win, x.dtype if x.dtype.kind == "f" else np.dtype(x.dtype.char.lower()), sig)
    frames = x.unfold(-1, n_fft, hop)  # (B, frames, n_fft)
    if w is not None:
        frames = frames * w
    norm = "ortho" if normalized else "backward"
    spec = _fft.rfft(frames, dim=-1, norm=norm) if onesided else _fft.fft(frames, dim=-1, norm=norm)
    spec = spec.transpose(1, 2)  # (B, freq, frames)
    if not batched:
        spec = spec.reshape(spec.shape[1:])
    return spec if return_complex else _complex.view_as_real(spec)


def _overlap_add(frames, hop, total):
    """Frames ``(B, n, n_fft)`` summed into ``(B, total)`` signals, frame ``f`` starting at ``f * hop``."""
    b, n, n_fft = frames.shape
    index = (np.arange(n)[:, None] * hop + np.arange(n_fft)[None, :]).reshape(-1)
    out = zeros(b, total, dtype=frames.dtype)
    return index_add(out, 1, Tensor._wrap(index), frames.reshape(b, n * n_fft))


@public(method=True)
def istft(input, n_fft, hop_length=None, win_length=None, window=None, center=True, normalized=False,
          onesided=None, length=None, return_complex=False):
    """The inverse of :func:`stft`: each frame's inverse DFT times ``window``, overlap-added and
    divided by the window's squared envelope (which must not vanish anywhere: a window that does
    not overlap enough raises). ``input`` is ``(B?, freq, frames)`` complex; ``length`` trims or
    zero-pads the result to that many samples.

    >>> w = tapegrad.hann_window(64)
    >>> x = tapegrad.randn(1000)
    >>> y = tapegrad.istft(tapegrad.stft(x, 64, window=w, return_complex=True), 64, window=w, length=1000)
    """
    hop, win = _lengths(n_fft, hop_length, win_length)
    sig = _sig("istft", input, n_fft, hop, win, window, normalized, onesided, return_complex)
    if input.dtype.kind != "c":
        raise RuntimeError(f"{sig}: expected a complex input (stft(..., return_complex=True)), got {input.dtype}; "
                           f"use view_as_complex on a real (..., 2) tensor")
    if input.ndim not in (2, 3):
        raise RuntimeError(f"{sig}: expected a tensor with 2 or 3 dimensions of complex dtype, got shape "
                           f"{list(input.shape)}")
    if hop <= 0:
        raise RuntimeError(f"{sig}: expected hop_length > 0, but got hop_length={hop}")
    if not 0 < win <= n_fft:
        raise RuntimeError(f"{sig}: expected 0 < win_length <= n_fft, but got win_length={win}")
    batched = input.ndim == 3
    spec = input if batched else input.reshape((1,) + tuple(input.shape))
    fft_size, n_frames = spec.shape[1], spec.shape[2]
    if onesided is None:
        onesided = fft_size != n_fft
    if onesided and n_fft // 2 + 1 != fft_size:
        raise RuntimeError(f"{sig}: expected the frequency dimension (3rd to the last) of the input tensor to match "
                           f"n_fft / 2 + 1 when onesided=True, but got {fft_size}")
    if not onesided and n_fft != fft_size:
        raise RuntimeError(f"{sig}: expected the frequency dimension (3rd to the last) of the input tensor to match "
                           f"n_fft when onesided=False, but got {fft_size}")
    if return_complex and onesided:
        raise RuntimeError(f"{sig}: cannot have onesided output if window or input is complex")
    real_dtype = np.dtype(spec.dtype.char.lower())
    w = _window(window, n_fft, win, window.dtype if window is not None else real_dtype, sig)
    if w is None:
        w = ones(n_fft, dtype=real_dtype)
    norm = "ortho" if normalized else "backward"
    frames = spec.transpose(1, 2)  # (B, frames, freq)
    if return_complex:
        frames = _fft.ifft(frames, dim=-1, norm=norm)
    else:
        # A real result reads the non-negative half of a two-sided spectrum, as PyTorch's does (so
        # the other half gets no gradient).
        frames = _fft.irfft(frames if onesided else frames[..., :n_fft // 2 + 1], n=n_fft, dim=-1, norm=norm)
    total = n_fft + hop * (n_frames - 1)
    y = _overlap_add(frames * w, hop, total)
    envelope = _overlap_add((w * w).reshape(1, 1, n_fft).expand(1, n_frames, n_fft), hop, total)
    start = n_fft // 2 if center else 0
    end = start + length if length is not None else (total - n_fft // 2 if center else total)
    stop = min(end, total)
    y, envelope = y[:, start:stop], envelope[:, start:stop]
    if envelope.numel() and float(amin(envelope.abs()).item()) < 1e-11:
        raise RuntimeError(f"{sig}: window overlap add min: {float(amin(envelope.abs()).item()):.3g}: the window's "
                           f"squared envelope vanishes, so the signal cannot be recovered (NOLA condition)")
    y = y / envelope
    if end > total:
        warnings.warn("istft: the length of signal is shorter than the length parameter. Result is being padded "
                      "with zeros in the tail. Please check your center and hop_length settings", UserWarning,
                      stacklevel=2)
        y = _pad(y, (0, end - total))
    return y if batched else y.reshape(y.shape[1:])
