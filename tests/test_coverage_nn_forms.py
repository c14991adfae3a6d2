"""tapegrad/_nn_forms.py: ``torch.conv1d``, ``torch.dropout``, ``torch.layer_norm``, ... with
ATen's signatures, against PyTorch's top-level forms (values and gradients, float64)."""
import numpy as np
import pytest

import tapegrad as tg

rng = np.random.default_rng(0)
X3 = rng.standard_normal((2, 3, 6))
X4 = rng.standard_normal((2, 4, 3, 3))
W1 = rng.standard_normal((5, 3, 2))
V = rng.standard_normal((4, 5))
P = rng.random((4, 5)) + 0.1
T = np.sign(rng.standard_normal(4))
POS = np.abs(rng.standard_normal((4, 5)))

# name -> (float64 inputs, call(M, *tensors)), PyTorch's top-level spelling used by both
CASES = {
    "conv1d": ([X3, W1], lambda M, x, w: M.conv1d(x, w, None, 1, 1)),
    "conv_transpose1d": ([X3, W1.transpose(1, 0, 2).copy()], lambda M, x, w: M.conv_transpose1d(x, w, None, 2)),
    "convolution": ([X3, W1], lambda M, x, w: M.convolution(x, w, None, [1], [0], [1], False, [0], 1)),
    "convolution_transposed": ([X4, rng.standard_normal((4, 2, 2, 2))],
                               lambda M, x, w: M.convolution(x, w, None, [1, 1], [0, 0], [1, 1], True, [0, 0], 1)),
    "bilinear": ([V, V, rng.standard_normal((2, 5, 5))], lambda M, a, b, w: M.bilinear(a, b, w)),
    "cosine_similarity": ([V, P], lambda M, a, b: M.cosine_similarity(a, b)),
    "pairwise_distance": ([V, P], lambda M, a, b: M.pairwise_distance(a, b)),
    "pixel_shuffle": ([X4], lambda M, x: M.pixel_shuffle(x, 2)),
    "pixel_unshuffle": ([rng.standard_normal((1, 2, 4, 4))], lambda M, x: M.pixel_unshuffle(x, 2)),
    "channel_shuffle": ([X4], lambda M, x: M.channel_shuffle(x, 2)),
    "adaptive_avg_pool1d": ([X3], lambda M, x: M.adaptive_avg_pool1d(x, 4)),
    "avg_pool1d": ([X3], lambda M, x: M.avg_pool1d(x, 2)),
    "max_pool1d": ([X3], lambda M, x: M.max_pool1d(x, 2)),
    "max_pool1d_with_indices": ([X3], lambda M, x: M.max_pool1d_with_indices(x, 3, 2)),
    "adaptive_max_pool1d": ([X3], lambda M, x: M.adaptive_max_pool1d(x, 3)),
    "hardshrink": ([V], lambda M, x: M.hardshrink(x, 0.7)),
    "prelu": ([X4, np.array([0.1, 0.2, 0.3, 0.4])], lambda M, x, w: M.prelu(x, w)),
    "constant_pad_nd": ([X3], lambda M, x: M.constant_pad_nd(x, [1, 2], 3.5)),
    "rms_norm": ([X3, rng.standard_normal(6)], lambda M, x, w: M.rms_norm(x, [6], w, 1e-6)),
    "celu": ([V], lambda M, x: M.celu(x, 0.5)),
    "selu": ([V], lambda M, x: M.selu(x)),
    "rrelu": ([V], lambda M, x: M.rrelu(x)),
    "threshold": ([V], lambda M, x: M.threshold(x, 0.1, -2.0)),
    "celu_": ([V], lambda M, x: M.celu_(x * 1, 0.5)),
    "selu_": ([V], lambda M, x: M.selu_(x * 1)),
    "rrelu_": ([V], lambda M, x: M.rrelu_(x * 1)),
    "threshold_": ([V], lambda M, x: M.threshold_(x * 1, 0.1, -2.0)),
    "dropout_eval": ([V], lambda M, x: M.dropout(x, 0.5, False)),
    "feature_dropout_eval": ([X4], lambda M, x: M.feature_dropout(x, 0.5, False)),
    "batch_norm": ([X4, np.ones(4) * 1.5, np.zeros(4) + 0.2],
                   lambda M, x, w, b: M.batch_norm(x, w, b, None, None, True, 0.1, 1e-5, False)),
    "instance_norm": ([X4, np.ones(4) * 1.5, np.zeros(4) + 0.2],
                      lambda M, x, w, b: M.instance_norm(x, w, b, None, None, True, 0.1, 1e-5, False)),
    "layer_norm": ([X3, rng.standard_normal(6), rng.standard_normal(6)],
                   lambda M, x, w, b: M.layer_norm(x, [6], w, b, 1e-5, True)),
    "group_norm": ([X4, rng.standard_normal(4), rng.standard_normal(4)],
                   lambda M, x, w, b: M.group_norm(x, 2, w, b, 1e-5, True)),
    "embedding": ([V], lambda M, w: M.embedding(w, M.tensor([[0, 2], [3, 3]]))),
    "embedding_padding": ([V], lambda M, w: M.embedding(w, M.tensor([0, 2, 3]), 2)),
    "bce_with_logits": ([V, P / P.max()], lambda M, x, y: M.binary_cross_entropy_with_logits(x, y, None, None, 2)),
    "kl_div": ([V, P], lambda M, x, y: M.kl_div(x, y, 1)),
    "kl_div_log_target": ([V, V], lambda M, x, y: M.kl_div(x, y, 0, log_target=True)),
    "hinge_embedding_loss": ([V], lambda M, x: M.hinge_embedding_loss(x, M.ones(4, 5) - 2 * (x > 0.5), 1.0, 1)),
    "margin_ranking_loss": ([V[:, 0], P[:, 0]], lambda M, a, b: M.margin_ranking_loss(a, b, M.tensor(T), 0.1, 2)),
    "cosine_embedding_loss": ([V, P], lambda M, a, b: M.cosine_embedding_loss(a, b, M.tensor(T), 0.0, 1)),
    "triplet_margin_loss": ([V, P, POS], lambda M, a, p, n: M.triplet_margin_loss(a, p, n, 1.0, 2, 1e-6, False, 0)),
    "poisson_nll_loss": ([V, POS], lambda M, x, y: M.poisson_nll_loss(x, y, True, False, 1e-8, 1)),
}


def _run(M, inputs, fn):
    leaves = [M.tensor(a, requires_grad=True) for a in inputs]
    out = fn(M, *leaves)
    outs = out if isinstance(out, tuple) else (out,)
    total = sum((o * (o.detach() + 1)).sum() for o in outs if o.dtype.is_floating_point
                if hasattr(o.dtype, "is_floating_point")) if M.__name__ == "torch" else sum(
        (o * (o.detach() + 1)).sum() for o in outs if o.dtype.kind == "f")
    total.backward()
    return [np.asarray(o.detach().numpy()) for o in outs], [np.asarray(v.grad.numpy()) if v.grad is not None
                                                          else None for v in leaves]


@pytest.mark.parametrize("name", sorted(CASES))
def test_top_level_nn_form_matches_torch(name):
    torch = pytest.importorskip("torch")
    inputs, fn = CASES[name]
    got_vals, got_grads = _run(tg, inputs, fn)
    want_vals, want_grads = _run(torch, inputs, fn)
    assert len(got_vals) == len(want_vals)
    for g, w in zip(got_vals, want_vals):
        assert g.shape == w.shape
        np.testing.assert_allclose(g, w, rtol=1e-9, atol=1e-12)
    for g, w in zip(got_grads, want_grads):
        assert (g is None) == (w is None) or (w is not None and not w.any()) or (g is not None and not g.any())
        if g is not None and w is not None:
            np.testing.assert_allclose(g, w, rtol=1e-9, atol=1e-12)


def test_dropout_forms_when_training():
    tg.manual_seed(0)
    x = tg.ones(200, 8, 3)
    y = tg.dropout(x, 0.25, True)
    kept = (y != 0).float().mean().item()
    assert 0.65 < kept < 0.85 and set(np.unique(y.numpy())) <= {0.0, np.float32(1 / 0.75)}
    f = tg.feature_dropout(x, 0.5, True)
    per_channel = f.numpy().reshape(200, 8, 3)
    assert (per_channel == per_channel[:, :, :1]).all()  # whole feature maps kept or dropped
    assert 0.35 < (per_channel[:, :, 0] != 0).mean() < 0.65
    z = tg.ones(50, 4)
    assert tg.dropout_(z, 0.5, True) is z and (z.numpy() == 0).any()
    w = tg.ones(6, 4, 2)
    assert tg.feature_dropout_(w, 1.0, True) is w and not w.numpy().any()
    for bad in (lambda: tg.dropout(x, 1.5, True), lambda: tg.feature_dropout(tg.ones(3), 0.5, True)):
        with pytest.raises(RuntimeError):
            bad()
    with pytest.raises(TypeError):
        tg.dropout(x, 0.5)  # train is required, as in PyTorch


def test_reduction_integers_are_checked():
    x = tg.randn(3, 4)
    assert tg.kl_div(x, x.exp(), 0).shape == (3, 4) and tg.kl_div(x, x.exp(), 2).ndim == 0
    with pytest.raises(RuntimeError, match="reduction"):
        tg.kl_div(x, x, 3)
    with pytest.raises(RuntimeError, match="convolution"):
        tg.convolution(tg.ones(2, 3), tg.ones(2, 3), None, [1], [0], [1], False, [0], 1)


def test_alpha_dropout_forms_match_pytorchs_values():
    torch = pytest.importorskip("torch")
    for name, shape in (("alpha_dropout", (1000,)), ("feature_alpha_dropout", (300, 3, 2))):
        for fill in (0.0, 1.0):
            got = getattr(tg, name)(tg.full(shape, fill, dtype=tg.float64), 0.3, True)
            want = getattr(torch, name)(torch.full(shape, fill, dtype=torch.float64), 0.3, True)
            np.testing.assert_allclose(np.unique(got.numpy()), np.unique(want.numpy()), rtol=1e-12)
        assert getattr(tg, name)(tg.ones(*shape), 0.3, False).tolist() == tg.ones(*shape).tolist()
    tg.manual_seed(1)
    y = tg.alpha_dropout(tg.randn(100000, dtype=tg.float64), 0.2, True)  # SELU's moments are kept
    assert abs(y.mean().item()) < 0.02 and abs(y.std().item() - 1) < 0.02
    f = tg.feature_alpha_dropout(tg.ones(50, 4, 3), 0.5, True).numpy()
    assert (f == f[:, :, :1]).all()
    z = tg.ones(100)
    assert tg.alpha_dropout_(z, 0.5, True) is z and len(np.unique(z.numpy())) == 2
    w = tg.ones(10, 2, 2)
    assert tg.feature_alpha_dropout_(w, 0.5, True) is w
    with pytest.raises(RuntimeError):
        tg.feature_alpha_dropout(tg.ones(3), 0.5, True)
    a = tg.ones(20, dtype=tg.float64, requires_grad=True)
    tg.alpha_dropout(a, 0.5, True).sum().backward()
    assert set(np.round(a.grad.numpy(), 9)) <= {0.0, round(((0.5) * (1 + 0.5 * 1.7580993408473766 ** 2)) ** -0.5, 9)}
