"""The harness shared by the tests that compare tapegrad with PyTorch (imported after
``pytest.importorskip("torch")``). A call is written once against a module ``M``, ``tapegrad``
or ``torch``, whose APIs agree, and run on both."""
import numpy as np
import pytest
import torch

import tapegrad as tg


def inputs(M, arrays):
    """Each array as a leaf that requires grad (float arrays keep their dtype), in ``M``."""
    return [M.tensor(a, requires_grad=True) for a in arrays]


def as_numpy(t):
    return t.detach().numpy() if hasattr(t, "detach") else np.asarray(t)


def values(out):
    """A result as a flat list of tensors ((values, indices) pairs and tuples opened)."""
    if hasattr(out, "values") and hasattr(out, "indices") and not callable(out.values):
        return [out.values, out.indices]
    if not isinstance(out, (tuple, list)):
        return [out]
    return [r for o in out for r in (values(o) if isinstance(o, tuple) else [o])]


def _grad(M):
    return torch.autograd.grad if M is torch else tg.autograd.grad


def _is_float(t):
    return str(t.dtype).split(".")[-1] in ("float32", "float64")


def _differentiable(res):
    return [o for o in res if hasattr(o, "requires_grad") and _is_float(o) and o.requires_grad]


def _cotangents(M, outs, requires_grad=False):
    rng = np.random.default_rng(1)
    return [M.tensor(rng.standard_normal(tuple(o.shape)), dtype=o.dtype, requires_grad=requires_grad) for o in outs]


def _assert_grads_agree(got, want, rtol, atol, what):
    for i, (a, b) in enumerate(zip(got, want)):
        if b is None or a is None:  # unused on one side: the other's gradient must be all zeros
            assert a is None or not np.any(a), f"{what} {i}: PyTorch has none, tapegrad's is nonzero"
            assert b is None or not np.any(b), f"{what} {i}: tapegrad's is None where PyTorch's is nonzero"
        else:
            np.testing.assert_allclose(a, b, rtol=rtol, atol=atol, err_msg=f"{what} {i}")


def check_forward_and_gradients(fn, arrays, grad_rtol=1e-10, rtol=1e-10, atol=1e-10, torch_fn=None):
    """Values, dtypes and the gradients of every float output (a fixed random cotangent) agree.

    ``fn(M, *leaves)`` runs in both; ``torch_fn`` replaces it on PyTorch's side where the
    spellings differ. A float output requires grad in both or in neither (PyTorch records
    ``matrix_power(a, 0)`` and ``vector_norm(v, 0)``, whose gradients are zero)."""
    xs, res = {}, {}
    for M in (torch, tg):
        xs[M] = inputs(M, arrays)
        res[M] = values((torch_fn or fn)(M, *xs[M]) if M is torch else fn(M, *xs[M]))
    (tv, gv) = ([as_numpy(o) for o in res[M]] for M in (torch, tg))
    td, gd = ([str(o.dtype).split(".")[-1] if hasattr(o, "dtype") else type(o).__name__ for o in res[M]]
              for M in (torch, tg))
    assert gd == td, f"dtypes {gd} vs torch {td}"
    for i, (a, b) in enumerate(zip(gv, tv)):
        assert a.shape == b.shape, f"output {i}: shape {a.shape} vs torch {b.shape}"
        np.testing.assert_allclose(a, b, rtol=rtol, atol=atol, err_msg=f"output {i}")
    needs = [[bool(_differentiable([o])) for o in res[M]] for M in (tg, torch)]
    assert needs[0] == needs[1], f"requires_grad of the float outputs {needs[0]} vs torch {needs[1]}"
    tracked = [i for i, n in enumerate(needs[0]) if n]
    if not tracked or not arrays:
        return
    rng = np.random.default_rng(1)
    cots = {i: rng.standard_normal(tv[i].shape) for i in tracked}
    grads = {}
    for M in (torch, tg):
        outs = [i for i in tracked if _differentiable([res[M][i]])]
        gs = _grad(M)([res[M][i] for i in outs], xs[M], [M.tensor(cots[i], dtype=res[M][i].dtype) for i in outs],
                      allow_unused=True) if outs else [None] * len(arrays)
        grads[M] = [None if g is None else as_numpy(g) for g in gs]
    _assert_grads_agree(grads[tg], grads[torch], grad_rtol, atol, "gradient of input")


def check_second_derivatives(fn, arrays, rtol=1e-8, atol=1e-8):
    """Second derivatives agree: of s = sum_i <g_i, v_i>, where g = vjp(fn, cotangent) is taken with
    create_graph=True, with respect to the inputs and the cotangent."""
    res = {}
    for M in (torch, tg):
        xs = inputs(M, arrays)
        outs = _differentiable(values(fn(M, *xs)))
        cots = _cotangents(M, outs, requires_grad=True)
        gs = _grad(M)(outs, xs, cots, create_graph=True, allow_unused=True)
        rng = np.random.default_rng(2)
        terms = [(g * M.tensor(rng.standard_normal(tuple(g.shape)), dtype=g.dtype)).sum()
                 for g in gs if g is not None and g.requires_grad]
        if not terms:  # every gradient is constant: second derivatives are all zero
            res[M] = [None] * (len(xs) + len(cots))
            continue
        second = _grad(M)(sum(terms), xs + cots, allow_unused=True)
        res[M] = [None if g is None else as_numpy(g) for g in second]
    _assert_grads_agree(res[tg], res[torch], rtol, atol, "second derivative w.r.t. input/cotangent")


def same_failure(want, got):
    """tapegrad's exception counts as PyTorch's: the same type or a sibling, or each library's own
    ``linalg.LinAlgError``."""
    if isinstance(want, torch.linalg.LinAlgError):
        return isinstance(got, tg.linalg.LinAlgError)
    return isinstance(got, type(want)) or issubclass(type(want), type(got))


def check_same_exception_type(call):
    """``call(M)`` raises in both, and tapegrad's exception is (a sibling of) PyTorch's type."""
    with pytest.raises(Exception) as want:
        call(torch)
    with pytest.raises(Exception) as got:
        call(tg)
    assert same_failure(want.value, got.value), (
        f"torch raises {type(want.value).__name__}, tapegrad {type(got.value).__name__}: {got.value}")
