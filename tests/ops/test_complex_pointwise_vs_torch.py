"""The op table's pointwise pools (the differential test's unary and binary ops) on complex64 and
complex128 input, against PyTorch: an op either raises in both or agrees on dtype, values and
gradients. Skipped without torch."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

import tapegrad as tg
from op_table import OP_INFOS

pytestmark = pytest.mark.torch


# ---------------------------------------------------------------- every pointwise op of the op table, on complex input
# Where tapegrad knowingly differs from PyTorch on complex input (each a clear error, never a wrong value):
KNOWN_DIVERGENCES = {
    "logaddexp": "no complex kernel here (NotImplementedError); PyTorch has one",
    "nan_to_num": "PyTorch refuses complex outputs only when they require grad; tapegrad computes them",
}


def _pointwise_families():
    return sorted((n, e.family) for n, e in OP_INFOS.items() if e.family in ("unary", "binary"))


def _run(M, name, family, arrays, dtype):
    xs = [M.tensor(a, dtype=getattr(M, dtype), requires_grad=dtype == "complex128") for a in arrays]
    try:
        out = getattr(M, name)(*xs) if family == "binary" else getattr(M, name)(xs[0])
    except (RuntimeError, TypeError, ValueError) as e:
        return "raises", type(e), None
    grads = None
    if dtype == "complex128" and out.requires_grad:
        loss = (out.abs() ** 2).sum() if out.is_complex() else (out * out).sum()
        grads = [None if g is None else g.detach().resolve_conj().numpy()
                 for g in M.autograd.grad(loss, xs, allow_unused=True)]
    return str(out.dtype).split(".")[-1], out.detach().resolve_conj().numpy(), grads


@pytest.mark.parametrize("dtype", ["complex64", "complex128"])
def test_every_pointwise_op_agrees_with_torch_on_complex_input(dtype):
    """Each op of the table's unary/binary pools, on complex input: both raise, or both give the
    same dtype, values and (complex128) gradients of a real loss."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(5)
    a = rng.standard_normal((2, 3)) + 1j * rng.standard_normal((2, 3))
    a[0, 0] = 0.5  # one real value
    b = rng.standard_normal((2, 3)) + 1j * rng.standard_normal((2, 3))
    bad = []
    for name, family in _pointwise_families():
        if name in KNOWN_DIVERGENCES:
            continue
        arrays = [a, b] if family == "binary" else [a]
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            got = _run(tg, name, family, arrays, dtype)
            want = _run(torch, name, family, arrays, dtype)
        if (got[0] == "raises") != (want[0] == "raises"):
            bad.append(f"{name}: tapegrad {got[0]}, torch {want[0]}")
        elif got[0] != "raises":
            if got[0] != want[0]:
                bad.append(f"{name}: dtype {got[0]} vs {want[0]}")
            elif not np.allclose(got[1], want[1], rtol=1e-4, atol=1e-5, equal_nan=True):
                bad.append(f"{name}: values differ")
            elif (got[2] is None) != (want[2] is None) or got[2] is not None and not all(
                    (x is None) == (y is None) and (x is None or np.allclose(x, y, rtol=1e-7, atol=1e-9, equal_nan=True))
                    for x, y in zip(got[2], want[2])):
                bad.append(f"{name}: gradients differ")
    assert not bad, bad
