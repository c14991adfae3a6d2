"""nn.attention: sdpa_kernel / SDPBackend, and flex_attention (score_mod, block masks, GQA,
log-sum-exp, fully masked rows) against PyTorch's flex_attention forward on CPU; gradients
against PyTorch's scaled_dot_product_attention with the equivalent additive mask (PyTorch's
CPU flex has no backward) and by finite differences."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from torch.nn.attention import flex_attention as tf  # noqa: E402

import tapegrad as tg  # noqa: E402
from tapegrad.nn.attention import SDPBackend, _cur_sdpa_kernel_backends, sdpa_kernel  # noqa: E402
from tapegrad.nn.attention import flex_attention as gf  # noqa: E402

pytestmark = [pytest.mark.filterwarnings("ignore:.*flex_attention called without torch.compile"),
              pytest.mark.filterwarnings("ignore:return_lse is deprecated:FutureWarning")]
R = np.random.default_rng(0)


def causal(b, h, q_idx, kv_idx):
    return q_idx >= kv_idx


def window(b, h, q_idx, kv_idx):
    return (q_idx - kv_idx) <= 4


def per_batch(b, h, q_idx, kv_idx):
    return (kv_idx + b) % 3 != 0


def none_for_row_3(b, h, q_idx, kv_idx):
    return (q_idx >= kv_idx) & (q_idx != 3)


def bias(score, b, h, q_idx, kv_idx):
    return score + (q_idx - kv_idx) * 0.1 + h * 0.5 - b


def softcap(score, b, h, q_idx, kv_idx):
    return 2.0 * (score / 2.0).tanh()


def _qkv(B=2, H=2, Hkv=None, L=20, S=20, E=8):
    Hkv = Hkv or H
    return R.standard_normal((B, H, L, E)), R.standard_normal((B, Hkv, S, E)), R.standard_normal((B, Hkv, S, E))


def _close(a, b, tol=1e-10):
    np.testing.assert_allclose(np.asarray(b.detach().numpy()), np.asarray(a.detach().numpy()), rtol=tol, atol=tol)


@pytest.mark.parametrize("mask_mod", [None, causal, window, per_batch, none_for_row_3, "and", "or"])
@pytest.mark.parametrize("score_mod", [None, bias, softcap])
def test_flex_forward_matches_torch(mask_mod, score_mod):
    bsz = 2 if mask_mod in (per_batch, "or") else None  # a batch-dependent mask: per batch, else broadcast
    q, k, v = _qkv()
    outs = []
    for M, F in ((torch, tf), (tg, gf)):
        mm = {"and": F.and_masks(causal, window), "or": F.or_masks(window, per_batch)}.get(mask_mod, mask_mod)
        bm = None if mm is None else F.create_block_mask(mm, bsz, None, 20, 20, device="cpu", BLOCK_SIZE=8)
        outs.append(F.flex_attention(*(M.tensor(a) for a in (q, k, v)), score_mod=score_mod, block_mask=bm,
                                     return_lse=True))
    _close(outs[0][0], outs[1][0])
    _close(outs[0][1], outs[1][1])


def test_block_mask_structure_matches_torch():
    for mm, L, S, bs in ((causal, 20, 20, 8), (window, 33, 17, (8, 4)), (per_batch, 16, 16, 4)):
        t = tf.create_block_mask(mm, 2, 1, L, S, device="cpu", BLOCK_SIZE=bs)
        g = gf.create_block_mask(mm, 2, 1, L, S, BLOCK_SIZE=bs)
        for name in ("kv_num_blocks", "kv_indices", "full_kv_num_blocks", "full_kv_indices"):
            assert getattr(t, name).tolist() == getattr(g, name).tolist(), name
        assert t.to_dense().tolist() == g.to_dense().tolist()
        assert t.shape == g.shape and t.BLOCK_SIZE == g.BLOCK_SIZE
        assert abs(t.sparsity() - g.sparsity()) < 1e-9


def test_create_mask_and_noop_mask():
    for mod in (causal, bias, softcap, gf.noop_mask):
        t = tf.create_mask(tf.noop_mask if mod is gf.noop_mask else mod, 2, 2, 5, 6, device="cpu")
        g = gf.create_mask(mod, 2, 2, 5, 6)
        assert t.tolist() == np.broadcast_to(g.numpy(), tuple(t.shape)).tolist()


def test_gqa_scale_and_fully_masked_rows():
    q, k, v = _qkv(H=4, Hkv=2)
    outs = []
    for M, F in ((torch, tf), (tg, gf)):
        bm = F.create_block_mask(none_for_row_3, None, None, 20, 20, device="cpu", BLOCK_SIZE=8)
        outs.append(F.flex_attention(*(M.tensor(a) for a in (q, k, v)), score_mod=bias, block_mask=bm, scale=0.3,
                                     enable_gqa=True, return_lse=True))
    _close(outs[0][0], outs[1][0])
    assert np.all(outs[1][0].numpy()[:, :, 3] == 0) and np.all(np.isneginf(outs[1][1].numpy()[:, :, 3]))
    with pytest.raises(ValueError, match="enable_gqa=True"):
        gf.flex_attention(*(tg.tensor(a) for a in (q, k, v)))


def test_return_aux():
    q, k, v = _qkv()
    t = tf.flex_attention(*(torch.tensor(a) for a in (q, k, v)), score_mod=bias, return_aux=tf.AuxRequest(lse=True))
    g = gf.flex_attention(*(tg.tensor(a) for a in (q, k, v)), score_mod=bias,
                          return_aux=gf.AuxRequest(lse=True, max_scores=True))
    _close(t[0], g[0])
    _close(t[1].lse, g[1].lse)  # PyTorch's CPU flex returns no max_scores: checked against the scores
    scores = bias(tg.tensor(q) @ tg.tensor(k).transpose(-2, -1) / np.sqrt(8), *gf._indices(2, 2, 20, 20))
    _close(scores.amax(-1), g[1].max_scores)


@pytest.mark.parametrize("mask_mod", [None, causal, none_for_row_3])
def test_flex_gradients_match_sdpa(mask_mod):
    q, k, v = _qkv(L=12, S=12)
    mask = gf.create_mask(mask_mod or gf.noop_mask, 2, 2, 12, 12).numpy()
    add = np.broadcast_to(np.where(mask, 0.0, -np.inf), (2, 2, 12, 12))
    idx = [torch.arange(n).view(*[n if d == i else 1 for d in range(4)]) for i, n in enumerate((2, 2, 12, 12))]
    bias_arr = bias(torch.zeros(2, 2, 12, 12, dtype=torch.float64), *idx).numpy()  # as score_mod computes it
    tq, tk, tv = (torch.tensor(a, requires_grad=True) for a in (q, k, v))
    attn_mask = torch.tensor(add + bias_arr)
    out = torch.nn.functional.scaled_dot_product_attention(tq, tk, tv, attn_mask=attn_mask)
    out = torch.nan_to_num(out)  # PyTorch's sdpa gives NaN on a row with nothing to attend to; flex gives 0
    gq, gk, gv = (tg.tensor(a, requires_grad=True) for a in (q, k, v))
    bm = None if mask_mod is None else gf.create_block_mask(mask_mod, None, None, 12, 12, BLOCK_SIZE=4)
    go = gf.flex_attention(gq, gk, gv, score_mod=bias, block_mask=bm)
    _close(out, go)
    w = R.standard_normal(out.shape)
    (out * torch.tensor(w)).sum().backward()
    (go * tg.tensor(w)).sum().backward()
    for a, b in ((tq, gq), (tk, gk), (tv, gv)):
        ga = np.nan_to_num(a.grad.numpy())
        np.testing.assert_allclose(b.grad.numpy(), ga, rtol=1e-9, atol=1e-10)


def test_flex_gradcheck_and_double_backward():
    q, k, v = (tg.tensor(R.standard_normal((1, 2, 5, 3)), requires_grad=True) for _ in range(3))
    bm = gf.create_block_mask(causal, None, None, 5, 5, BLOCK_SIZE=2)

    def f(q, k, v):
        return gf.flex_attention(q, k, v, score_mod=softcap, block_mask=bm, return_lse=True)
    assert tg.autograd.gradcheck(f, (q, k, v))
    assert tg.autograd.gradgradcheck(lambda q, k, v: f(q, k, v)[0], (q, k, v))


def test_flex_errors():
    q = tg.randn(1, 2, 4, 3)
    with pytest.raises(ValueError, match="flex_attention: key must be a 4-D tensor"):
        gf.flex_attention(q, tg.randn(2, 4, 3), q)
    with pytest.raises(ValueError, match="block_mask was created for"):
        gf.flex_attention(q, q, q, block_mask=gf.create_block_mask(causal, 1, 1, 8, 8))
    with pytest.raises(TypeError, match="mask_mod must return a bool"):
        gf.create_block_mask(lambda b, h, q, kv: q - kv, 1, 1, 4, 4)


def test_sdpa_kernel():
    q = tg.randn(1, 2, 4, 3)
    ref = tg.nn.functional.scaled_dot_product_attention(q, q, q)
    with sdpa_kernel(SDPBackend.MATH):
        assert _cur_sdpa_kernel_backends() == [SDPBackend.MATH]
        with sdpa_kernel([SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION], set_priority=True):
            assert _cur_sdpa_kernel_backends() == [SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION]
            out = tg.nn.functional.scaled_dot_product_attention(q, q, q)
            np.testing.assert_array_equal(out.numpy(), ref.numpy())
        assert _cur_sdpa_kernel_backends() == [SDPBackend.MATH]
    assert len(_cur_sdpa_kernel_backends()) == 5
    theirs = torch.nn.attention.SDPBackend.__members__.items()
    assert {m.name: m.value for m in SDPBackend} == {n: int(m) for n, m in theirs}
    with pytest.raises(TypeError, match="sdpa_kernel: backends must be instances of SDPBackend"):
        with sdpa_kernel(["math"]):
            pass
