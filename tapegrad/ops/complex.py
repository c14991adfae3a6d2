"""Complex tensors' own ops: ``real``, ``imag``, ``conj``, ``complex``, ``view_as_real``,
``view_as_complex``, and the one check every real-only op makes (``refuse_complex``).

Gradients follow PyTorch's convention: for a real loss L of z = x + iy, ``z.grad`` is
dL/dx + i dL/dy (twice the conjugate Wirtinger derivative dL/d(conj z)), so gradient descent
reads as for real numbers. A holomorphic f then has the VJP ``g * conj(f'(z))``; where a complex
gradient reaches a real input, the engine keeps its real part (csrc/tape.cpp).

These ops sit below the pointwise family (whose VJPs conjugate), so they use no pointwise op.
"""
from __future__ import annotations

import numpy as np

from .. import _dtype
from .._tape.registry import apply, defop
from . import inplace as _inplace_module
from .surface import public

Tensor = None  # the Tensor class, bound by tensor.py (ops.bind_tensor): the ops sit below it

_TORCH_NAMES = {np.dtype(np.complex64): "ComplexFloat", np.dtype(np.complex128): "ComplexDouble"}


def refuse_complex(input, opname: str) -> None:
    """PyTorch's error for an op with no complex kernel (``max``, ``<``, ``erf``, ...): NotImplementedError,
    a RuntimeError."""
    if input._data.dtype.kind == "c":
        raise NotImplementedError(f'"{opname}" not implemented for {_TORCH_NAMES.get(input._data.dtype, "Complex")!r}')


def conj_if_complex(t):
    """``conj(t)`` for a complex tensor, ``t`` itself otherwise: the VJPs' cheap conjugation."""
    return apply(_conj, t) if t._data.dtype.kind == "c" else t


# ------------------------------------------------------------------ the parts of a complex number
# real and imag are views of the complex storage (numpy's .real/.imag), as PyTorch's are. real's
# gradient is g itself: the engine casts it to the input's complex dtype (imaginary part 0).
_real = defop("real", lambda x: x.real, lambda g, out, x: g, saves=(), view=True)
_imag = defop("imag", lambda x: x.imag, lambda g, out, x: apply(_complex, Tensor._wrap(np.zeros_like(g._data)), g), saves=(), view=True)
_conj = defop("conj", np.conjugate, lambda g, out, x: apply(_conj, g), saves=())
_complex = defop("complex", lambda re, im: _make_complex(re, im),
                 lambda g, out, re, im: apply(_real, g), lambda g, out, re, im: apply(_imag, g), saves=())


def _make_complex(re, im):
    out = np.empty(np.broadcast_shapes(re.shape, im.shape), _dtype.complex_of(re.dtype))
    out.real, out.imag = re, im
    return out


@public
def real(input):
    """The real part of a complex tensor, as a view (``input`` itself when it is real).

    >>> tapegrad.real(tapegrad.tensor([1 + 2j]))
    tensor([1.])
    """
    return apply(_real, input) if input._data.dtype.kind == "c" else input


@public
def imag(input):
    """The imaginary part of a complex tensor, as a view; real tensors have none (RuntimeError, as PyTorch)."""
    if input._data.dtype.kind != "c":
        raise RuntimeError("imag is not implemented for tensors with non-complex dtypes.")
    return apply(_imag, input)


@public(method=True)
def conj(input):
    """The complex conjugate (``input`` itself when it is real). A copy, where PyTorch returns a
    lazily conjugated view: writing into the result does not change ``input``.

    >>> tapegrad.conj(tapegrad.tensor([1 + 2j]))
    tensor([1.-2.j])
    """
    return conj_if_complex(input)


@public(method=True, inplace=True, out=True)
def conj_physical(input):
    """The complex conjugate, materialised (what ``conj`` already does here)."""
    return conj_if_complex(input)


@public(method=True)
def resolve_conj(input):
    """``input``: tapegrad's ``conj`` is never lazy, so there is no conjugate bit to resolve."""
    return input


@public(method=True)
def resolve_neg(input):
    """``input``: tapegrad has no lazily negated views, so there is no negative bit to resolve."""
    return input


@public(method=True)
def is_neg(input) -> bool:
    """False: tapegrad's ``neg`` materialises, so no tensor carries PyTorch's negative bit."""
    return False


@public(method=True)
def is_conj(input) -> bool:
    """False: tapegrad's ``conj`` materialises, so no tensor carries PyTorch's conjugate bit."""
    return False


@public(method=True)
def is_complex(input) -> bool:
    """Whether ``input`` has a complex dtype (complex64 or complex128)."""
    return input._data.dtype.kind == "c"


@public(out=True)
def complex(real, imag):
    """``real + 1j * imag`` from two floating tensors of one dtype (float32 -> complex64).

    >>> tapegrad.complex(tapegrad.tensor([1.0]), tapegrad.tensor([2.0]))
    tensor([1.+2.j])
    """
    for name, t in (("real", real), ("imag", imag)):
        if not isinstance(t, Tensor):
            raise TypeError(f"complex(): argument '{name}' must be Tensor, not {type(t).__name__}")
        if t._data.dtype.kind != "f" or t._data.dtype == np.float16:
            raise RuntimeError(f"complex(): expected both inputs to be float or double tensors, but got "
                               f"{_dtype.name(t._data.dtype)} for '{name}'")
    if real._data.dtype != imag._data.dtype:
        raise RuntimeError(f"complex(): expected object of scalar type {_dtype.name(real._data.dtype)} but got "
                           f"{_dtype.name(imag._data.dtype)} for 'imag' (both parts need one dtype)")
    try:
        np.broadcast_shapes(real._data.shape, imag._data.shape)
    except ValueError:
        raise RuntimeError(f"complex(): the shapes of real {tuple(real.shape)} and imag {tuple(imag.shape)} do not "
                           f"broadcast") from None
    return apply(_complex, real, imag)


# ------------------------------------------------------------------ complex <-> (..., 2) real views
def _as_real(z):
    return z[..., None].view(_dtype.real_of(z.dtype))  # (..., 1) complex -> (..., 2) real, sharing memory


def _as_complex(x):
    return x.view(_dtype.complex_of(x.dtype))[..., 0]


_view_as_real = defop("view_as_real", _as_real, lambda g, out, z: apply(_view_as_complex, _contiguous_last(g)),
                      saves=(), view=True)
_view_as_complex = defop("view_as_complex", _as_complex, lambda g, out, x: apply(_view_as_real, g),
                         saves=(), view=True)


_inplace_module._view_as_real = _view_as_real  # a real view of a complex base written in place
_inplace_module._view_as_complex = _view_as_complex  # (and back) takes its graph through them


def _contiguous_last(g):
    """A gradient whose last dim (of 2) is not unit-strided, copied so that it can be viewed as complex."""
    return g if g._data.strides[-1] == g._data.itemsize else g.contiguous()


@public
def view_as_real(input):
    """A complex tensor seen as real, with a last dimension of 2 (real, imaginary), sharing memory.

    >>> tapegrad.view_as_real(tapegrad.tensor([1 + 2j]))
    tensor([[1., 2.]])
    """
    if input._data.dtype.kind != "c":
        raise RuntimeError("view_as_real is only supported for complex tensors")
    return apply(_view_as_real, input)


@public
def view_as_complex(input):
    """A float/double tensor whose last dimension is 2 (real, imaginary) seen as complex, sharing memory."""
    a = input._data
    if a.dtype not in (_dtype.float32, _dtype.float64):
        raise RuntimeError(f"view_as_complex is only supported for float and double tensors, but got a tensor of "
                           f"scalar type: {_dtype.name(a.dtype)}")
    if a.ndim == 0 or a.shape[-1] != 2:
        raise RuntimeError(f"Tensor must have a last dimension of size 2 (got shape {tuple(a.shape)})")
    if a.strides[-1] != a.itemsize:
        raise RuntimeError(f"Tensor must have a last dimension with stride 1 (got stride "
                           f"{a.strides[-1] // a.itemsize})")
    if any(s % (2 * a.itemsize) for s in a.strides[:-1]):
        raise RuntimeError(f"Tensor must have a stride divisible by 2 for all but last dimension (got strides "
                           f"{tuple(s // a.itemsize for s in a.strides)})")
    return apply(_view_as_complex, input)
