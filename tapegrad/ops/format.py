"""``repr`` of a tensor, in PyTorch's style."""
from __future__ import annotations

import numpy as np

from .. import _dtype

_DEFAULT = {np.dtype(np.int64), np.dtype(np.bool_)}


def format_tensor(t) -> str:
    a = t._data
    prefix = "tensor("
    floatmode = "maxprec"
    if a.dtype.kind == "f":
        finite = a[np.isfinite(a)]
        # PyTorch: whole numbers print as "1.", anything else with 4 decimals ("2.5000")
        floatmode = "maxprec_equal" if np.all(finite == np.round(finite)) else "fixed"
    body = np.array2string(a, separator=", ", prefix=prefix, precision=4, threshold=1000, edgeitems=3,
                           floatmode=floatmode)
    extras = []
    if a.size == 0 and a.ndim != 1:
        extras.append(f"size={tuple(a.shape)}")
    if a.dtype not in _DEFAULT and a.dtype != _dtype.get_default_dtype():
        extras.append(f"dtype={_dtype.name(a.dtype)}")
    if t.grad_fn is not None:
        extras.append(f"grad_fn={t.grad_fn!r}")
    elif t._requires_grad:
        extras.append("requires_grad=True")
    return prefix + body + "".join(", " + e for e in extras) + ")"
