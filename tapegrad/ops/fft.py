"""Discrete Fourier transforms (what ``tapegrad.fft`` exposes), computed by ``scipy.fft``.

As in PyTorch, every transform is one of three primitives on an input already cut or
zero-padded to the signal size (``n=``/``s=``, a separate differentiable op):

* ``c2c``: complex to complex, forward or inverse;
* ``r2c``: real to complex, the full spectrum or only its non-negative half (``onesided``);
* ``c2r``: a one-sided Hermitian spectrum back to a real signal.

``hfft``/``ihfft`` are ``c2r``/``r2c`` of the conjugate. Each primitive's VJP is another
primitive with the same scale factor (PyTorch's ``fft_*_backward``): the adjoint of a forward DFT
is the unscaled inverse one, so ``norm`` names swap ("backward" <-> "forward"; "ortho" stays).
float32 gives complex64, float64 complex128; integer inputs become the default float dtype first.
"""
from __future__ import annotations

import numpy as np
import scipy.fft as _sfft

from .. import _dtype
from .._tape.registry import apply, defop
from ._util import norm_dim
from .complex import conj_if_complex as _conj
from .shape import roll

Tensor = None  # the Tensor class, bound by tensor.py (ops.bind_tensor): the ops sit below it

_NORMS = ("backward", "ortho", "forward")
_ADJOINT_NORM = {"backward": "forward", "ortho": "ortho", "forward": "backward"}


# ---------------------------------------------------------------- the primitives
def _c2c_fwd(x, dims, norm, forward):
    return (_sfft.fftn if forward else _sfft.ifftn)(x, axes=dims, norm=norm)


_c2c = defop("fft_c2c", _c2c_fwd,
             lambda g, out, x, dims, norm, forward: apply(_c2c, g, dims=dims, norm=_ADJOINT_NORM[norm],
                                                           forward=not forward), saves=())


def _r2c_fwd(x, dims, norm, onesided):
    if onesided:
        return _sfft.rfftn(x, axes=dims, norm=norm)
    return _sfft.fftn(x, axes=dims, norm=norm)


def _r2c_vjp(g, out, x, dims, norm, onesided):
    # the one-sided spectrum is the full one's first half: pad g with zeros back to the full length,
    # then the adjoint of the full transform (the engine keeps its real part for the real input)
    if onesided:
        g = apply(_resize, g, dim=dims[-1], n=x.shape[dims[-1]])
    return apply(_c2c, g, dims=dims, norm=_ADJOINT_NORM[norm], forward=False)


_r2c = defop("fft_r2c", _r2c_fwd, _r2c_vjp, saves=())


def _c2r_fwd(x, dims, norm, last_dim_size):
    s = [x.shape[d] for d in dims[:-1]] + [last_dim_size]
    return _sfft.irfftn(x, s=s, axes=dims, norm=norm)


def _c2r_vjp(g, out, x, dims, norm, last_dim_size):
    # PyTorch's fft_c2r_backward: the one-sided forward transform of g, with the bins that stand for
    # two (every one but the zero and, for an even length, the Nyquist bin) counted twice
    gx = apply(_r2c, g, dims=dims, norm=_ADJOINT_NORM[norm], onesided=True)
    half = gx.shape[dims[-1]]
    doubled = last_dim_size - half
    if doubled <= 0:
        return gx
    w = np.ones(half, dtype=_dtype.real_of(gx.dtype))
    w[1:1 + doubled] = 2
    shape = [1] * gx.ndim
    shape[dims[-1]] = half
    return gx * Tensor._wrap(w.reshape(shape))


_c2r = defop("fft_c2r", _c2r_fwd, _c2r_vjp, saves=())


def _resize_fwd(x, dim, n):
    size = x.shape[dim]
    if n <= size:
        return x[(slice(None),) * dim + (slice(0, n),)]
    widths = [(0, 0)] * x.ndim
    widths[dim] = (0, n - size)
    return np.pad(x, widths)


# cut to the first n entries, or zero-padded at the end to n: linear, and its VJP is the opposite resize
_resize = defop("fft_resize", _resize_fwd,
                lambda g, out, x, dim, n: apply(_resize, g, dim=dim, n=x.shape[dim]), saves=())


# ---------------------------------------------------------------- argument handling
def _check_norm(norm, opname):
    if norm is None:
        return "backward"
    if norm not in _NORMS:
        raise ValueError(f'{opname}: Invalid normalization mode: "{norm}" (expected "forward", "backward" or '
                         f'"ortho")')
    return norm


def _floating(input, opname, want):
    """``input`` as a tensor of the kind the transform takes ("real", "complex" or "any")."""
    if not isinstance(input, Tensor):
        raise TypeError(f"{opname}: expected a Tensor, got {type(input).__name__}")
    kind = input._data.dtype.kind
    if kind == "c":
        if want == "real":
            raise RuntimeError(f"{opname} expects a real input tensor, but got {_dtype.name(input._data.dtype)}")
        return input
    if kind != "f":
        input = input.to(_dtype.default_float())
    elif input._data.dtype == np.float16:
        raise RuntimeError(f"{opname}: float16 is not supported on the CPU (PyTorch supports it on CUDA only): "
                           f"convert to float32 first")
    return input.to(_dtype.complex_of(input._data.dtype)) if want == "complex" else input


def _dims_and_sizes(input, s, dim, opname, default_all=True):
    """The transformed dims and each one's signal size (``s`` or the input's size), PyTorch's rules."""
    nd = input.ndim
    if dim is not None and not isinstance(dim, (tuple, list)):
        dim = (dim,)
    if s is not None and not isinstance(s, (tuple, list)):
        s = (s,)
    if dim is not None:
        dims = tuple(norm_dim(d, nd, opname) for d in dim)
        if len(set(dims)) != len(dims):
            raise RuntimeError(f"{opname}: FFT dims must be unique, got dim={tuple(dim)}")
        if s is not None and len(s) != len(dims):
            raise RuntimeError(f"{opname}: When given, dim and shape arguments must have the same length "
                               f"(s={tuple(s)}, dim={tuple(dim)})")
    elif s is not None:
        if len(s) > nd:
            raise RuntimeError(f"{opname}: Got shape with {len(s)} values but input tensor only has {nd} "
                               f"dimensions.")
        dims = tuple(range(nd - len(s), nd))
    else:
        dims = tuple(range(nd)) if default_all else ()
    if not dims and nd == 0:
        raise RuntimeError(f"{opname}: expects a tensor with at least one dimension (got a 0-d tensor)")
    sizes = []
    for k, d in enumerate(dims):
        n = input.shape[d] if s is None or s[k] == -1 else s[k]
        if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 1:
            raise RuntimeError(f"{opname}: Invalid number of data points ({n}) specified")
        sizes.append(int(n))
    return dims, sizes


def _resized(x, dims, sizes):
    for d, n in zip(dims, sizes):
        if x.shape[d] != n:
            x = apply(_resize, x, dim=d, n=n)
    return x


def _n_to_s(n):
    return None if n is None else (n,)


# ---------------------------------------------------------------- complex to complex
def _fftn(input, s, dim, norm, forward, opname):
    norm = _check_norm(norm, opname)
    x = _floating(input, opname, "any")
    dims, sizes = _dims_and_sizes(x, s, dim, opname)
    x = _resized(x, dims, sizes)
    if x._data.dtype.kind == "c":
        return apply(_c2c, x, dims=dims, norm=norm, forward=forward)
    out = apply(_r2c, x, dims=dims, norm=norm, onesided=False)
    # a real input's inverse transform is the conjugate of the forward one with the inverse's scale
    return out if forward else _conj(apply(_r2c, x, dims=dims, norm=_ADJOINT_NORM[norm], onesided=False))


def fft(input, n=None, dim=-1, norm=None):
    """The one-dimensional discrete Fourier transform of ``input`` along ``dim`` (``n``: cut or
    zero-pad the signal to that length first). ``norm``: "backward" (no scaling, the default),
    "ortho" (1/sqrt(n)) or "forward" (1/n).

    >>> tapegrad.fft.fft(tapegrad.tensor([1.0, 2.0, 3.0, 4.0]))
    tensor([10.+0.j, -2.+2.j, -2.+0.j, -2.-2.j])
    """
    return _fftn(input, _n_to_s(n), (dim,), norm, True, "fft.fft")


def ifft(input, n=None, dim=-1, norm=None):
    """The inverse of ``fft`` along ``dim`` (``norm="backward"`` scales by 1/n)."""
    return _fftn(input, _n_to_s(n), (dim,), norm, False, "fft.ifft")


def fft2(input, s=None, dim=(-2, -1), norm=None):
    """``fftn`` over the last two dims (or ``dim``)."""
    return _fftn(input, s, dim, norm, True, "fft.fft2")


def ifft2(input, s=None, dim=(-2, -1), norm=None):
    """``ifftn`` over the last two dims (or ``dim``)."""
    return _fftn(input, s, dim, norm, False, "fft.ifft2")


def fftn(input, s=None, dim=None, norm=None):
    """The n-dimensional discrete Fourier transform over ``dim`` (all dims, or the last ``len(s)``),
    with each signal cut or zero-padded to ``s``."""
    return _fftn(input, s, dim, norm, True, "fft.fftn")


def ifftn(input, s=None, dim=None, norm=None):
    """The inverse of ``fftn``."""
    return _fftn(input, s, dim, norm, False, "fft.ifftn")


# ---------------------------------------------------------------- real to one-sided complex
def _rfftn(input, s, dim, norm, opname, conjugate=False):
    norm = _check_norm(norm, opname)
    x = _floating(input, opname, "real")
    dims, sizes = _dims_and_sizes(x, s, dim, opname)
    x = _resized(x, dims, sizes)
    if conjugate:  # ihfft: the conjugate of rfft with the inverse's scale
        return _conj(apply(_r2c, x, dims=dims, norm=_ADJOINT_NORM[norm], onesided=True))
    return apply(_r2c, x, dims=dims, norm=norm, onesided=True)


def rfft(input, n=None, dim=-1, norm=None):
    """The Fourier transform of a real signal: its ``n // 2 + 1`` non-negative frequencies.

    >>> tapegrad.fft.rfft(tapegrad.tensor([1.0, 2.0, 3.0, 4.0]))
    tensor([10.+0.j, -2.+2.j, -2.+0.j])
    """
    return _rfftn(input, _n_to_s(n), (dim,), norm, "fft.rfft")


def rfft2(input, s=None, dim=(-2, -1), norm=None):
    """``rfftn`` over the last two dims (or ``dim``)."""
    return _rfftn(input, s, dim, norm, "fft.rfft2")


def rfftn(input, s=None, dim=None, norm=None):
    """The n-dimensional Fourier transform of a real signal, one-sided in the last of ``dim``."""
    return _rfftn(input, s, dim, norm, "fft.rfftn")


def ihfft(input, n=None, dim=-1, norm=None):
    """The inverse of ``hfft``: the one-sided spectrum of a real signal, conjugated and scaled as ``ifft``."""
    return _rfftn(input, _n_to_s(n), (dim,), norm, "fft.ihfft", conjugate=True)


def ihfft2(input, s=None, dim=(-2, -1), norm=None):
    """``ihfftn`` over the last two dims (or ``dim``)."""
    return _rfftn(input, s, dim, norm, "fft.ihfft2", conjugate=True)


def ihfftn(input, s=None, dim=None, norm=None):
    """The n-dimensional inverse of ``hfftn``."""
    return _rfftn(input, s, dim, norm, "fft.ihfftn", conjugate=True)


# ---------------------------------------------------------------- one-sided complex to real
def _irfftn(input, s, dim, norm, opname, hermitian=False):
    norm = _check_norm(norm, opname)
    x = _floating(input, opname, "complex")
    # the output sizes: s, else the input's, the last dim's being 2 * (m - 1) for m frequencies
    dims, sizes = _dims_and_sizes(x, s, dim, opname)
    if s is None or s[-1] == -1:
        sizes[-1] = 2 * (x.shape[dims[-1]] - 1)
        if sizes[-1] < 1:
            raise RuntimeError(f"{opname}: Invalid number of data points ({sizes[-1]}) specified")
    last = sizes[-1]
    x = _resized(x, dims, sizes[:-1] + [last // 2 + 1])
    if hermitian:  # hfft: the real signal whose one-sided spectrum is conj(x), with the forward scale
        return apply(_c2r, _conj(x), dims=dims, norm=_ADJOINT_NORM[norm], last_dim_size=last)
    return apply(_c2r, x, dims=dims, norm=norm, last_dim_size=last)


def irfft(input, n=None, dim=-1, norm=None):
    """The inverse of ``rfft``: a real signal of length ``n`` (default ``2 * (m - 1)``) from its
    one-sided spectrum of ``m`` frequencies."""
    return _irfftn(input, _n_to_s(n), (dim,), norm, "fft.irfft")


def irfft2(input, s=None, dim=(-2, -1), norm=None):
    """``irfftn`` over the last two dims (or ``dim``)."""
    return _irfftn(input, s, dim, norm, "fft.irfft2")


def irfftn(input, s=None, dim=None, norm=None):
    """The inverse of ``rfftn``."""
    return _irfftn(input, s, dim, norm, "fft.irfftn")


def hfft(input, n=None, dim=-1, norm=None):
    """The Fourier transform of a Hermitian-symmetric signal given by its first half: a real
    output of length ``n`` (default ``2 * (m - 1)``)."""
    return _irfftn(input, _n_to_s(n), (dim,), norm, "fft.hfft", hermitian=True)


def hfft2(input, s=None, dim=(-2, -1), norm=None):
    """``hfftn`` over the last two dims (or ``dim``)."""
    return _irfftn(input, s, dim, norm, "fft.hfft2", hermitian=True)


def hfftn(input, s=None, dim=None, norm=None):
    """The n-dimensional ``hfft``: one-sided (Hermitian) in the last of ``dim``, real output."""
    return _irfftn(input, s, dim, norm, "fft.hfftn", hermitian=True)


# ---------------------------------------------------------------- frequencies and shifts
def _freq_tensor(values, dtype, requires_grad, opname):
    d = _dtype.default_float() if dtype is None else _dtype.to_dtype(dtype)
    if d.kind not in "fc":
        raise RuntimeError(f"{opname}: expected a floating or complex dtype, got {_dtype.name(d)}")
    t = Tensor._wrap(np.asarray(values, dtype=d))
    return t.requires_grad_() if requires_grad else t


def _check_n(n, opname):
    if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 0:
        raise RuntimeError(f"{opname}: n must be a non-negative integer, got {n!r}")


def fftfreq(n, d=1.0, *, dtype=None, layout=None, device=None, requires_grad=False):
    """The frequencies of ``fft``'s outputs for a signal of ``n`` samples spaced ``d`` apart.

    >>> tapegrad.fft.fftfreq(4)
    tensor([ 0.0000,  0.2500, -0.5000, -0.2500])
    """
    _check_n(n, "fft.fftfreq")
    return _freq_tensor(_sfft.fftfreq(int(n), d), dtype, requires_grad, "fft.fftfreq")


def rfftfreq(n, d=1.0, *, dtype=None, layout=None, device=None, requires_grad=False):
    """The frequencies of ``rfft``'s outputs (the ``n // 2 + 1`` non-negative ones)."""
    _check_n(n, "fft.rfftfreq")
    return _freq_tensor(_sfft.rfftfreq(int(n), d), dtype, requires_grad, "fft.rfftfreq")


def _shift(input, dim, sign, opname):
    if dim is None:
        dims = tuple(range(input.ndim))
    else:
        dims = tuple(norm_dim(d, input.ndim, opname) for d in (dim if isinstance(dim, (tuple, list)) else (dim,)))
    if not dims:
        return input
    shifts = tuple(sign * (input.shape[d] // 2) for d in dims)
    return roll(input, shifts, dims)


def fftshift(input, dim=None):
    """Move the zero frequency to the centre of ``dim`` (every dim by default)."""
    return _shift(input, dim, 1, "fft.fftshift")


def ifftshift(input, dim=None):
    """The inverse of ``fftshift``."""
    return _shift(input, dim, -1, "fft.ifftshift")
