"""scaled_dot_product_attention where a query row may attend to no key (a left-padded position
under a causal-and-padding mask): zeros and no gradient, as PyTorch's safe softmax (2.5+), on the
blocked kernel, on the composite path (a mask that needs a gradient, create_graph) and on the
fallback for other dtypes."""
import numpy as np
import pytest

import tapegrad as tg

R = np.random.default_rng(0)
Q, K, V = (R.standard_normal((2, 3, 5, 4)) for _ in range(3))
G = R.standard_normal((2, 3, 5, 4))
PAD = np.array([[0, 0, 1, 1, 1], [1, 1, 1, 1, 1]], bool)
MASK = np.tril(np.ones((5, 5), bool))[None, None] & PAD[:, None, None, :]  # rows 0, 1 of batch 0 see nothing


def _run(M, dtype, kind):
    q, k, v = (M.tensor(a, dtype=dtype, requires_grad=True) for a in (Q, K, V))
    if kind == "bool":
        mask = M.tensor(MASK)
    else:
        mask = M.zeros(MASK.shape, dtype=dtype).masked_fill(~M.tensor(MASK), float("-inf"))
        mask.requires_grad_(kind == "float_with_grad")
    out = M.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    grads = M.autograd.grad(out, (q, k, v), M.tensor(G, dtype=dtype), create_graph=kind == "float_with_grad")
    res = [out] + list(grads)
    if kind == "float_with_grad":  # double backward through the composite formula
        res.append(M.autograd.grad(grads[0].pow(2).sum(), k)[0])
    return [r.detach().double().numpy() for r in res]


@pytest.mark.parametrize("kind", ["bool", "float", "float_with_grad"])
@pytest.mark.parametrize("dtype", ["float64", "float32", "float16"])
def test_fully_masked_rows_are_zero_and_match_torch(dtype, kind):
    got = _run(tg, getattr(tg, dtype), kind)
    for a in got:
        assert np.isfinite(a).all()
    assert (got[0][0, :, :2] == 0).all() and (got[1][0, :, :2] == 0).all()  # the output and dq of the dead rows
    torch = pytest.importorskip("torch")
    want = _run(torch, getattr(torch, dtype), kind)
    tol = {"float64": 1e-10, "float32": 2e-5, "float16": 1e-2}[dtype]
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=tol, atol=tol)
