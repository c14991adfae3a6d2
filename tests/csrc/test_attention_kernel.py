"""The blocked attention kernel of tapegrad._C (csrc/kernels/attention.cpp) against float64 numpy,
through F.scaled_dot_product_attention against PyTorch, gradients (and double backward through the
composite path) by finite differences, and bit-identical results for 1 and 2 threads."""
import numpy as np
import pytest

import tapegrad as tg
import tapegrad.nn.functional as F
from tapegrad import _C
from tapegrad.autograd import gradcheck, gradgradcheck

TOL = {np.float32: dict(rtol=2e-5, atol=2e-6), np.float64: dict(rtol=1e-12, atol=1e-13)}


def attention_ref(q, k, v, mask, causal, scale):
    """(out, the softmax) in float64."""
    s = q @ np.swapaxes(k, -1, -2) * scale
    if mask is not None:
        s = s + mask
    if causal:
        s = np.where(np.tri(q.shape[-2], k.shape[-2], dtype=bool), s, -np.inf)
    p = np.exp(s - s.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    return p @ v, p


def grads_ref(q, k, v, mask, causal, scale, g):
    out, p = attention_ref(q, k, v, mask, causal, scale)
    dv = np.swapaxes(p, -1, -2) @ g
    dp = g @ np.swapaxes(v, -1, -2)
    ds = p * (dp - (dp * p).sum(-1, keepdims=True))
    return ds @ k * scale, np.swapaxes(ds, -1, -2) @ q * scale, dv


# BH, L, S, D, Dv: head dims that take each width of the products' register blocks (4, 2, 1
# vectors of 16 floats / 8 doubles on AVX-512, 2 and 1 on AVX2) and the scalar tail
SHAPES = [(1, 1, 1, 1, 1), (2, 5, 7, 3, 4), (3, 70, 130, 9, 5), (1, 129, 65, 16, 16), (2, 67, 66, 32, 40),
          (1, 9, 70, 48, 33), (1, 6, 5, 64, 72)]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("kind", ["none", "causal", "shared", "per_head"])
def test_attention_kernel_against_numpy(dtype, shape, kind):
    BH, L, S, D, Dv = shape
    rng = np.random.default_rng(sum(shape))
    q, k = rng.standard_normal((BH, L, D)), rng.standard_normal((BH, S, D))
    v, g = rng.standard_normal((BH, S, Dv)), rng.standard_normal((BH, L, Dv))
    mask = None
    if kind in ("shared", "per_head"):
        mask = rng.standard_normal((1 if kind == "shared" else BH, L, S))
        mask[..., 0] = 0.0
        mask[rng.random(mask.shape) < 0.3] = -np.inf  # some keys hidden; column 0 stays visible
        mask[..., 0] = 0.0
    causal, scale = kind == "causal", 0.7
    cast = [a.astype(dtype) for a in (q, k, v)]
    cmask = None if mask is None else mask.astype(dtype)
    out, lse = _C.attention(*cast, cmask, causal, scale)
    want, _ = attention_ref(q, k, v, mask, causal, scale)
    np.testing.assert_allclose(out, want, **TOL[dtype])
    dq, dk, dv = _C.attention_backward(g.astype(dtype), *cast, cmask, causal, scale, out, lse)
    for got, exp in zip((dq, dk, dv), grads_ref(q, k, v, mask, causal, scale, g)):
        np.testing.assert_allclose(got, exp, **{k_: 10 * t for k_, t in TOL[dtype].items()})


def test_attention_row_that_sees_no_key_is_zero_with_zero_gradient():
    # PyTorch's safe softmax (2.5+): a fully masked query row (a left-padded position) gives zeros
    q = k = v = np.ones((1, 2, 3))
    mask = np.zeros((1, 2, 2))
    mask[0, 1] = -np.inf
    out, lse = _C.attention(q, k, v, mask, False, 1.0)
    assert np.isfinite(out[0, 0]).all() and (out[0, 1] == 0).all()
    dq, dk, dv = _C.attention_backward(np.ones((1, 2, 3)), q, k, v, mask, False, 1.0, out, lse)
    assert np.isfinite(dq).all() and (dq[0, 1] == 0).all()


def test_attention_identical_for_1_and_2_threads():
    rng = np.random.default_rng(0)
    q, k, v = (rng.standard_normal((8, 100, 32)).astype(np.float32) for _ in range(3))
    before, res = tg.get_num_threads(), []
    try:
        for n in (1, 2):
            tg.set_num_threads(n)
            out, lse = _C.attention(q, k, v, None, True, 0.2)
            res.append([out, lse, *_C.attention_backward(np.ones_like(out), q, k, v, None, True, 0.2, out, lse)])
    finally:
        tg.set_num_threads(before)
    for a, b in zip(*res):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("kind", ["none", "causal", "bool", "float"])
def test_sdpa_gradients_and_double_backward(kind):
    rng = np.random.default_rng(1)
    q, k, v = (tg.tensor(rng.standard_normal(s), requires_grad=True) for s in ((2, 3, 4), (2, 5, 4), (2, 5, 3)))
    if kind == "causal":
        q = tg.tensor(rng.standard_normal((2, 5, 4)), requires_grad=True)
    mask = {"bool": tg.tensor(rng.random((3, 5)) < 0.7) | tg.tensor(np.eye(3, 5, dtype=bool)),
            "float": tg.tensor(rng.standard_normal((2, 3, 5)))}.get(kind)

    def fn(q, k, v):
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=kind == "causal", scale=0.8)
    assert gradcheck(fn, [q, k, v], eps=1e-6, atol=1e-6)
    assert gradgradcheck(fn, [q, k, v], eps=1e-6, atol=1e-5)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("kind", ["none", "causal", "bool", "float", "scale"])
def test_sdpa_against_torch(dtype, kind):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(2)
    arrays = [rng.standard_normal(s).astype(dtype) for s in ((2, 3, 9, 8), (2, 3, 11, 8), (2, 3, 11, 5))]
    if kind == "causal":
        arrays[0] = rng.standard_normal((2, 3, 11, 8)).astype(dtype)
    m = {"bool": rng.random((9, 11)) < 0.6, "float": rng.standard_normal((3, 1, 11)).astype(dtype)}.get(kind)
    if kind == "bool":
        m[:, 0] = True
    kw = dict(is_causal=kind == "causal", scale=0.3 if kind == "scale" else None)
    ts = [torch.tensor(a, requires_grad=True) for a in arrays]
    gs = [tg.tensor(a, requires_grad=True) for a in arrays]
    out = torch.nn.functional.scaled_dot_product_attention(*ts, attn_mask=None if m is None else torch.tensor(m), **kw)
    out_g = F.scaled_dot_product_attention(*gs, attn_mask=None if m is None else tg.tensor(m), **kw)
    w = rng.standard_normal(out.shape).astype(dtype)
    (out * torch.tensor(w)).sum().backward()
    (out_g * tg.tensor(w)).sum().backward()
    tol = dict(rtol=1e-4, atol=1e-5) if dtype == "float32" else dict(rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(out_g.detach().numpy(), out.detach().numpy(), **tol)
    for a, b in zip(gs, ts):
        np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), **tol)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_attention_reads_strided_heads_in_place(dtype):
    """Views as models make them: (B, L, H, D) projections transposed to (B, H, L, D), a reversed
    sequence, a head dim sliced out of a wider buffer, a key broadcast over the heads: the same
    result as C-contiguous copies, and the gradient of a transposed grad_output too."""
    rng = np.random.default_rng(3)
    B, H, L, S, D = 2, 3, 37, 41, 24
    q = rng.standard_normal((B, L, H, D)).astype(dtype).transpose(0, 2, 1, 3)
    k = rng.standard_normal((B, H, S, 2 * D)).astype(dtype)[:, :, ::-1, 5:5 + D]
    v = np.broadcast_to(rng.standard_normal((B, 1, S, 20)).astype(dtype), (B, H, S, 20))
    g = rng.standard_normal((B, L, H, 20)).astype(dtype).transpose(0, 2, 1, 3)
    assert not any(a.flags.c_contiguous for a in (q, k, v, g))
    dense = [np.ascontiguousarray(a).reshape(B * H, -1, a.shape[-1]) for a in (q, k, v, g)]
    for causal in (False, True):
        out, lse = _C.attention(q, k, v, None, causal, 0.3)
        want, want_lse = _C.attention(*dense[:3], None, causal, 0.3)
        # (B, H, L, Dv) laid out as (B, L, H, Dv): merging the heads back is a view
        assert out.shape == (B, H, L, 20) and out.transpose(0, 2, 1, 3).flags.c_contiguous
        assert want.flags.c_contiguous  # no head dim: C-contiguous
        np.testing.assert_array_equal(out.reshape(want.shape), want)
        np.testing.assert_array_equal(lse, want_lse)
        got = _C.attention_backward(g, q, k, v, None, causal, 0.3, out, lse)
        for a, b in zip(got, _C.attention_backward(dense[3], *dense[:3], None, causal, 0.3, want, lse)):
            np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="adjacent elements along its last dim"):
        _C.attention(q[..., ::2], k[..., ::2], v, None, False, 1.0)
    with pytest.raises(ValueError, match="grad_output must have shape"):
        _C.attention_backward(dense[3], q, k, v, None, False, 1.0, out, lse)
    with pytest.raises(ValueError, match="output must have shape"):
        _C.attention_backward(g, q, k, v, None, False, 1.0, want, lse)


def test_sdpa_of_transposed_projections_matches_torch():
    """The GPT pattern: q, k, v split from one projection and transposed to (B, H, L, D), the
    output transposed back; values and gradients as PyTorch's."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, 13, 3 * 16)).astype(np.float32)
    w = rng.standard_normal((2, 13, 16)).astype(np.float32)
    res = []
    for lib, fn in ((torch, torch.nn.functional), (tg, F)):
        t = lib.tensor(x, requires_grad=True)
        q, k, v = (a.reshape(2, 13, 4, 4).transpose(1, 2) for a in t.split(16, dim=2))
        y = fn.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2).reshape(2, 13, 16)
        (y * lib.tensor(w)).sum().backward()
        res.append((y.detach().numpy(), t.grad.numpy()))
    for a, b in zip(*res):
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-5)


def test_bad_input_raises_naming_the_op():
    z = np.zeros
    with pytest.raises(ValueError, match="scaled_dot_product_attention: query"):
        _C.attention(z((2, 3, 4)), z((2, 5, 3)), z((2, 5, 3)), None, False, 1.0)
    with pytest.raises(ValueError, match="attn_mask must have shape"):
        _C.attention(z((2, 3, 4)), z((2, 5, 4)), z((2, 5, 3)), z((2, 3, 4)), False, 1.0)
    with pytest.raises(RuntimeError, match="does not broadcast"):
        F.scaled_dot_product_attention(tg.zeros(2, 3, 4), tg.zeros(2, 5, 4), tg.zeros(2, 5, 3),
                                       attn_mask=tg.zeros(4, 5))


@pytest.mark.parametrize("causal", [False, True])
def test_multihead_attention_without_weights_takes_the_kernel_and_agrees(causal):
    """need_weights=False goes through the blocked kernel; its output and gradients match the
    path that materialises the weights, with an attention mask and a key padding mask."""
    tg.manual_seed(0)
    mha = tg.nn.MultiheadAttention(8, 2, batch_first=True).double()
    x = tg.randn(3, 5, 8, dtype=tg.float64, requires_grad=True)
    kpm = tg.tensor(np.array([[False] * 5, [False] * 4 + [True], [False] * 3 + [True] * 2]))
    am = None if causal else tg.tensor(np.triu(np.ones((5, 5), dtype=bool), 2))
    res = []
    for need in (False, True):
        out, w = mha(x, x, x, key_padding_mask=kpm, attn_mask=am, need_weights=need, is_causal=causal and am is None)
        assert (w is None) == (not need)
        (g,) = tg.autograd.grad((out * out).sum(), x)
        res.append((out.detach().numpy(), g.numpy()))
    np.testing.assert_allclose(res[0][0], res[1][0], rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(res[0][1], res[1][1], rtol=1e-11, atol=1e-12)
