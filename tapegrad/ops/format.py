"""``repr`` of a tensor, in PyTorch's style."""
from __future__ import annotations

import numpy as np

from .. import _dtype

_DEFAULT = {np.dtype(np.int64), np.dtype(np.bool_)}
_PROFILES = {"default": dict(precision=4, threshold=1000, edgeitems=3, linewidth=80),
             "short": dict(precision=2, threshold=1000, edgeitems=2, linewidth=80),
             "full": dict(precision=4, threshold=np.inf, edgeitems=3, linewidth=80)}
_options = dict(_PROFILES["default"], sci_mode=None)


def set_printoptions(precision=None, threshold=None, edgeitems=None, linewidth=None, profile=None, sci_mode=None):
    """``tapegrad.set_printoptions``: PyTorch's arguments (``profile`` 'default', 'short' or 'full')."""
    if profile is not None:
        if profile not in _PROFILES:
            raise ValueError(f"set_printoptions: profile must be one of {list(_PROFILES)}, got {profile!r}")
        _options.update(_PROFILES[profile])
    for k, v in (("precision", precision), ("threshold", threshold), ("edgeitems", edgeitems),
                 ("linewidth", linewidth)):
        if v is not None:
            _options[k] = v
    _options["sci_mode"] = sci_mode


def _floatmode(a) -> str:
    finite = a[np.isfinite(a)]
    # PyTorch: whole numbers print as "1.", anything else with 4 decimals ("2.5000")
    return "maxprec_equal" if np.all(finite == np.round(finite)) else "fixed"


def _float_formatter(opts):
    p = opts["precision"]
    return {"float_kind": (lambda v: f"{v:.{p}e}") if opts["sci_mode"] else (lambda v: f"{v:.{p}f}")}


def _part_strings(part, opts, sign):
    """Each element of a float array as PyTorch prints it among the others (one style for all)."""
    flat = part.ravel()
    if flat.size == 0:
        return []
    body = np.array2string(flat, separator="|", precision=opts["precision"], threshold=flat.size + 1,
                           max_line_width=1 << 30, floatmode=_floatmode(flat), sign=sign,
                           formatter=_float_formatter(opts) if opts["sci_mode"] is not None else None)
    cells = [s.strip() for s in body[1:-1].split("|")]
    if sign == "+":  # a custom formatter (sci_mode) ignores numpy's sign option
        cells = [s if s.startswith(("+", "-")) else "+" + s for s in cells]
    return cells


def _complex_strings(a, opts):
    """PyTorch prints a complex number as its real and imaginary parts, each styled among its
    own kind (``1.0000+2.j``); the real parts are padded to one width, the imaginary ones not."""
    re = _part_strings(a.real, opts, "-")
    im = _part_strings(a.imag, opts, "+")
    width = max(map(len, re), default=0)
    return np.array([r.rjust(width) + i + "j" for r, i in zip(re, im)], dtype=object).reshape(a.shape)


def format_values(t, indent: int) -> str:
    """The values part of ``repr(t)``, its continuation lines indented by ``indent`` (PyTorch's
    ``torch._tensor_str._tensor_str(t, indent)``)."""
    a = t._data
    floatmode = "maxprec"
    if _dtype.kind_of(a.dtype) == "f":
        floatmode = _floatmode(a)
    opts = _options
    formatter = None
    if opts["sci_mode"] is not None and _dtype.kind_of(a.dtype) == "f":
        formatter = _float_formatter(opts)
    if a.dtype.kind == "c":
        a, formatter = _complex_strings(a, opts), {"object": str}
    # numpy formats bfloat16 (kind 'V') element by element: show its (exact) float32 values
    shown = a.astype(np.float32) if a.dtype.kind == "V" and _dtype.is_floating(a.dtype) else a
    body = np.array2string(shown, separator=", ", prefix=" " * indent, precision=opts["precision"],
                           threshold=opts["threshold"], edgeitems=opts["edgeitems"],
                           max_line_width=opts["linewidth"], floatmode=floatmode, formatter=formatter)
    return body


def format_tensor(t) -> str:
    prefix = "tensor("
    body = format_values(t, len(prefix))
    a = t._data
    extras = []
    if a.size == 0 and a.ndim != 1:
        extras.append(f"size={tuple(a.shape)}")
    dt = t._data.dtype
    if (dt not in _DEFAULT and dt != _dtype.complex_of(_dtype.default_float()) or a.size == 0) \
            and dt != _dtype.default_float():  # an empty tensor shows any dtype but the default, as PyTorch
        extras.append(f"dtype={_dtype.name(dt)}")
    if t.grad_fn is not None:
        extras.append(f"grad_fn={t.grad_fn!r}")
    elif t._requires_grad:
        extras.append("requires_grad=True")
    return prefix + body + "".join(", " + e for e in extras) + ")"
