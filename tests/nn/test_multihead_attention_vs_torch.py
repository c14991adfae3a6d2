"""nn.MultiheadAttention against PyTorch: every way of calling it (self-attention with one packed
projection, attention over a memory with k and v packed, separate k and v, kdim/vdim, batch_first
or not, unbatched), masks, weights, and the gradients of every input and parameter, in float64."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")

import tapegrad as tg  # noqa: E402

E, H = 8, 2


def _pair(batch_first, kdim=None, bias=True):
    tm = torch.nn.MultiheadAttention(E, H, batch_first=batch_first, kdim=kdim, vdim=kdim, bias=bias).double()
    gm = tg.nn.MultiheadAttention(E, H, batch_first=batch_first, kdim=kdim, vdim=kdim, bias=bias, dtype=tg.float64)
    assert sorted(gm.state_dict()) == sorted(tm.state_dict())
    gm.load_state_dict({k: tg.tensor(v.detach().numpy().copy()) for k, v in tm.state_dict().items()})
    return tm, gm


def _check(tm, gm, arrays, form, **kw):
    """Runs both modules on ``arrays`` (query, then key and value as ``form`` says), compares the
    output, the weights and every gradient."""
    outs, grads = [], []
    for M, m in ((torch, tm), (tg, gm)):
        xs = [M.tensor(a, requires_grad=True) for a in arrays]
        q = xs[0]
        k, v = (q, q) if form == "self" else (xs[1], xs[1]) if form == "memory" else (xs[1], xs[2])
        kwm = {name: (M.tensor(val) if isinstance(val, np.ndarray) else val) for name, val in kw.items()}
        out, w = m(q, k, v, **kwm)
        loss = (out * out).sum() + (0 if w is None else (w * w).sum())
        loss.backward()
        outs.append((out, w))
        grads.append([x.grad for x in xs] + [p.grad for p in m.parameters()])
    (to, tw), (go, gw) = outs
    np.testing.assert_allclose(go.detach().numpy(), to.detach().numpy(), rtol=1e-10, atol=1e-12)
    assert (tw is None) == (gw is None)
    if tw is not None:
        np.testing.assert_allclose(gw.detach().numpy(), tw.detach().numpy(), rtol=1e-10, atol=1e-12)
    for a, b in zip(*grads):
        assert (a is None) == (b is None)
        if a is not None:
            np.testing.assert_allclose(b.numpy(), a.numpy(), rtol=1e-9, atol=1e-11)


@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("form", ["self", "memory", "separate"])
@pytest.mark.parametrize("need_weights", [False, True])
def test_forms_match_torch(batch_first, form, need_weights):
    rng = np.random.default_rng(0)
    tm, gm = _pair(batch_first)
    L, S, N = 5, 5 if form == "self" else 7, 3
    shape = (lambda T: (N, T, E)) if batch_first else (lambda T: (T, N, E))
    arrays = [rng.standard_normal(shape(L))] + [rng.standard_normal(shape(S)) for _ in range({"self": 0, "memory": 1,
                                                                                              "separate": 2}[form])]
    kpm = np.zeros((N, S), bool)
    kpm[0, -2:] = True
    _check(tm, gm, arrays, form, need_weights=need_weights, key_padding_mask=kpm)


@pytest.mark.parametrize("mask_kind", ["bool", "float", "per_head", "causal"])
def test_masks_match_torch(mask_kind):
    rng = np.random.default_rng(1)
    tm, gm = _pair(True)
    N, L = 2, 6
    kw = {"need_weights": False}
    if mask_kind == "bool":
        kw["attn_mask"] = np.triu(np.ones((L, L), bool), 1)
    elif mask_kind == "float":
        kw["attn_mask"] = rng.standard_normal((L, L))
    elif mask_kind == "per_head":
        kw["attn_mask"] = rng.standard_normal((N * H, L, L))
    else:
        kw.update(attn_mask=np.triu(np.ones((L, L), bool), 1), is_causal=True)
    _check(tm, gm, [rng.standard_normal((N, L, E))], "self", **kw)


@pytest.mark.parametrize("batch_first", [False, True])
def test_unbatched_self_attention_and_kdim_match_torch(batch_first):
    rng = np.random.default_rng(2)
    tm, gm = _pair(batch_first)
    _check(tm, gm, [rng.standard_normal((5, E))], "self", average_attn_weights=False)
    tm, gm = _pair(batch_first, kdim=5)
    shape = (2, 4, 5) if batch_first else (4, 2, 5)
    q = rng.standard_normal((2, 3, E) if batch_first else (3, 2, E))
    _check(tm, gm, [q, rng.standard_normal(shape)], "memory")
    _check(tm, gm, [q, rng.standard_normal(shape), rng.standard_normal(shape)], "separate")


def test_without_bias_and_in_encoder_layer_match_torch():
    rng = np.random.default_rng(3)
    tm, gm = _pair(True, bias=False)
    _check(tm, gm, [rng.standard_normal((2, 5, E))], "self")
    tl = torch.nn.TransformerEncoderLayer(E, H, 16, dropout=0.0, batch_first=True, norm_first=True).double()
    gl = tg.nn.TransformerEncoderLayer(E, H, 16, dropout=0.0, batch_first=True, norm_first=True, dtype=tg.float64)
    gl.load_state_dict({k: tg.tensor(v.detach().numpy().copy()) for k, v in tl.state_dict().items()})
    x = rng.standard_normal((3, 6, E))
    tx, gx = torch.tensor(x, requires_grad=True), tg.tensor(x, requires_grad=True)
    ty, gy = tl(tx), gl(gx)
    (ty * ty).sum().backward()
    (gy * gy).sum().backward()
    np.testing.assert_allclose(gy.detach().numpy(), ty.detach().numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(gx.grad.numpy(), tx.grad.numpy(), rtol=1e-9, atol=1e-11)
    for (n, a), b in zip(tl.named_parameters(), gl.parameters()):
        np.testing.assert_allclose(b.grad.numpy(), a.grad.numpy(), rtol=1e-9, atol=1e-11, err_msg=n)


def test_self_attention_records_one_input_projection():
    """q is k is v: one product with the packed in_proj_weight (one linear node), not three."""
    gm = tg.nn.MultiheadAttention(E, H, batch_first=True, dtype=tg.float64)
    x = tg.randn(2, 5, E, dtype=tg.float64, requires_grad=True)
    seen = []
    orig = tg.nn.functional.linear

    def spy(inp, w, b=None):
        seen.append(tuple(w.shape))
        return orig(inp, w, b)
    tg.nn.functional.linear = spy
    try:
        gm(x, x, x, need_weights=False)
    finally:
        tg.nn.functional.linear = orig
    assert seen[0] == (3 * E, E) and len(seen) == 2  # the packed projection, then out_proj


def test_dropout_in_training_uses_sdpa_and_is_off_in_eval():
    gm = tg.nn.MultiheadAttention(E, H, dropout=0.5, batch_first=True, dtype=tg.float64)
    x = tg.randn(2, 5, E, dtype=tg.float64)
    tg.manual_seed(0)
    a = gm(x, x, x, need_weights=False)[0]
    tg.manual_seed(1)
    b = gm(x, x, x, need_weights=False)[0]
    assert not np.allclose(a.detach().numpy(), b.detach().numpy())
    gm.eval()
    np.testing.assert_allclose(gm(x, x, x, need_weights=False)[0].detach().numpy(),
                               gm(x, x, x)[0].detach().numpy(), rtol=1e-12)
