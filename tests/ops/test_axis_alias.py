"""``axis=`` / ``keepdims=``: numpy's names for ``dim`` / ``keepdim``, which PyTorch's native
functions accept (``torch.sum(x, axis=0)``). Declared once, in ``ops/surface.py``."""
import inspect

import numpy as np
import pytest

import tapegrad
from tapegrad.ops import surface

X = np.arange(24.0).reshape(2, 3, 4) % 7 - 3

CALLS = {  # name -> (call with dim, the same with axis)
    n: (lambda M, x, n=n: getattr(M, n)(x, dim=1), lambda M, x, n=n: getattr(M, n)(x, axis=1))
    for n in ("sum", "mean", "std", "var", "prod", "amax", "amin", "argmax", "argmin", "logsumexp", "cumsum",
              "cumprod", "std_mean", "var_mean", "softmax", "squeeze", "unsqueeze", "max", "min")
}
CALLS["keepdims"] = (lambda M, x: M.sum(x, 1, keepdim=True), lambda M, x: M.sum(x, axis=1, keepdims=True))
CALLS["any"] = (lambda M, x: M.any(x > 0, dim=2), lambda M, x: M.any(x > 0, axis=2))
CALLS["all"] = (lambda M, x: M.all(x > 0, dim=2), lambda M, x: M.all(x > 0, axis=2))
CALLS["cat"] = (lambda M, x: M.cat([x, x], dim=2), lambda M, x: M.cat([x, x], axis=2))
CALLS["method_max"] = (lambda M, x: x.max(dim=2, keepdim=True)[0], lambda M, x: x.max(axis=2, keepdims=True)[0])
CALLS["method_mean"] = (lambda M, x: x.mean(dim=(0, 2)), lambda M, x: x.mean(axis=(0, 2)))
CALLS["gather"] = (lambda M, x: M.gather(x, dim=1, index=M.zeros(2, 1, 4, dtype=M.int64)),
                   lambda M, x: M.gather(x, axis=1, index=M.zeros(2, 1, 4, dtype=M.int64)))


def _np(out):
    out = out if isinstance(out, tuple) else (out,)
    return [np.asarray(o.detach()) for o in out]


@pytest.mark.parametrize("name", sorted(CALLS))
def test_axis_is_dim(name):
    with_dim, with_axis = CALLS[name]
    x = tapegrad.tensor(X)
    for a, b in zip(_np(with_dim(tapegrad, x)), _np(with_axis(tapegrad, x))):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("name", sorted(CALLS))
def test_matches_torch(name):
    torch = pytest.importorskip("torch")
    ours = _np(CALLS[name][1](tapegrad, tapegrad.tensor(X)))
    theirs = [o.numpy() for o in (lambda r: r if isinstance(r, tuple) else (r,))(CALLS[name][1](torch, torch.tensor(X)))]
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a, b, rtol=1e-12)


def test_every_public_op_with_a_dim_takes_axis():
    missing = sorted(n for n, f in surface.FUNCTIONS.items()
                     if "dim" in inspect.signature(f).parameters and "axis" not in inspect.signature(f).parameters)
    assert not missing


def test_both_or_neither_is_a_type_error():
    x = tapegrad.tensor(X)
    with pytest.raises(TypeError, match="both 'dim' and its alias 'axis'"):
        tapegrad.sum(x, 0, axis=1)
    with pytest.raises(TypeError, match="missing required argument 'dim'"):
        tapegrad.cumsum(x)
