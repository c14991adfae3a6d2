"""Losses: hand-computed values (numpy references), gradcheck in float64, stability, errors."""
import math

import numpy as np
import pytest

import tapegrad
import tapegrad.nn as nn
import tapegrad.nn.functional as F
from tapegrad.testing import gradcheck

R = np.random.default_rng(0)


def t64(a, grad=False):
    return tapegrad.tensor(np.asarray(a, dtype=np.float64), requires_grad=grad)


def np_log_softmax(x, axis=1):
    m = x.max(axis, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(axis, keepdims=True))


# ---------------------------------------------------------------- cross entropy / nll
def test_cross_entropy_hand_computed():
    x = np.array([[2.0, 0.5, -1.0], [0.0, 0.0, 0.0]])
    y = np.array([0, 2])
    lp = np_log_softmax(x)
    ref = -(lp[0, 0] + lp[1, 2]) / 2
    out = F.cross_entropy(t64(x), tapegrad.tensor(y))
    assert out.shape == ()
    np.testing.assert_allclose(out.item(), ref, rtol=1e-12)
    assert math.isclose(F.cross_entropy(t64(x), tapegrad.tensor(y), reduction="sum").item(), 2 * ref)
    np.testing.assert_allclose(F.cross_entropy(t64(x), tapegrad.tensor(y), reduction="none").numpy(),
                               [-lp[0, 0], -lp[1, 2]])
    assert math.isclose(F.cross_entropy(t64(x[1]), tapegrad.tensor(2)).item(), math.log(3))


def test_cross_entropy_weighted_mean_and_ignore_index():
    x = R.standard_normal((5, 4))
    y = np.array([0, 3, -100, 1, 3])
    w = np.array([1.0, 2.0, 0.5, 3.0])
    lp = np_log_softmax(x)
    keep = y != -100
    ys = np.where(keep, y, 0)
    per = -w[ys] * lp[np.arange(5), ys] * keep
    ref = per.sum() / (w[ys] * keep).sum()  # PyTorch divides by the total weight of kept targets
    out = F.cross_entropy(t64(x), tapegrad.tensor(y), weight=t64(w))
    np.testing.assert_allclose(out.item(), ref, rtol=1e-12)
    none = F.cross_entropy(t64(x), tapegrad.tensor(y), weight=t64(w), reduction="none")
    np.testing.assert_allclose(none.numpy(), per, rtol=1e-12)
    assert none.numpy()[2] == 0


def test_cross_entropy_label_smoothing_matches_formula():
    x = R.standard_normal((4, 3))
    y = np.array([0, 2, 1, -100])
    w = np.array([0.5, 1.0, 2.0])
    eps = 0.2
    lp = np_log_softmax(x)
    keep = y != -100
    ys = np.where(keep, y, 0)
    nll = (-w[ys] * lp[np.arange(4), ys] * keep).sum() / (w[ys] * keep).sum()
    smooth = (-(lp * w).sum(1) * keep).sum() / (w[ys] * keep).sum()
    ref = (1 - eps) * nll + eps / 3 * smooth
    out = F.cross_entropy(t64(x), tapegrad.tensor(y), weight=t64(w), label_smoothing=eps)
    np.testing.assert_allclose(out.item(), ref, rtol=1e-12)


def test_cross_entropy_probability_targets():
    x = R.standard_normal((3, 4))
    p = R.random((3, 4))
    p /= p.sum(1, keepdims=True)
    lp = np_log_softmax(x)
    np.testing.assert_allclose(F.cross_entropy(t64(x), t64(p)).item(), -(lp * p).sum() / 3, rtol=1e-12)
    ps = p * 0.9 + 0.1 / 4
    np.testing.assert_allclose(F.cross_entropy(t64(x), t64(p), label_smoothing=0.1).item(),
                               -(lp * ps).sum() / 3, rtol=1e-12)


def test_cross_entropy_spatial_targets():
    x = R.standard_normal((2, 3, 4, 5))
    y = R.integers(0, 3, (2, 4, 5))
    lp = np_log_softmax(x, 1)
    ref = -np.take_along_axis(lp, y[:, None], 1).mean()
    np.testing.assert_allclose(F.cross_entropy(t64(x), tapegrad.tensor(y)).item(), ref, rtol=1e-12)
    assert F.cross_entropy(t64(x), tapegrad.tensor(y), reduction="none").shape == (2, 4, 5)


@pytest.mark.parametrize("kw", [{}, {"label_smoothing": 0.1}, {"reduction": "sum"}, {"ignore_index": 1}])
def test_cross_entropy_gradcheck(kw):
    x = t64(R.standard_normal((4, 3)), True)
    w = t64([0.3, 1.0, 2.0])
    y = tapegrad.tensor([0, 1, 2, 1])
    gradcheck(lambda a: F.cross_entropy(a, y, weight=w, **kw), (x,))


def test_cross_entropy_stable_for_huge_logits():
    x = tapegrad.tensor([[1e4, -1e4, 0.0], [-1e4, 1e4, 5.0]], requires_grad=True)
    y = tapegrad.tensor([1, 1])
    loss = F.cross_entropy(x, y)
    loss.backward()
    assert np.isfinite(loss.item()) and math.isclose(loss.item(), 1e4, rel_tol=1e-6)
    assert np.isfinite(x.grad.numpy()).all()


def test_nll_loss_and_errors():
    lp = np_log_softmax(R.standard_normal((3, 4)))
    out = F.nll_loss(t64(lp), tapegrad.tensor([1, 0, 3]))
    np.testing.assert_allclose(out.item(), -(lp[0, 1] + lp[1, 0] + lp[2, 3]) / 3)
    with pytest.raises(IndexError, match="Target 4 is out of bounds"):
        F.nll_loss(t64(lp), tapegrad.tensor([1, 4, 0]))
    with pytest.raises(IndexError, match="out of bounds"):
        F.cross_entropy(t64(lp), tapegrad.tensor([-1, 0, 0]))
    with pytest.raises(ValueError, match=r"batch_size \(3\) to match target batch_size \(2\)"):
        F.cross_entropy(t64(lp), tapegrad.tensor([1, 0]))
    with pytest.raises(RuntimeError, match="weight tensor should be defined"):
        F.nll_loss(t64(lp), tapegrad.tensor([1, 0, 0]), weight=t64([1.0, 2.0]))
    # legacy size_average=False (old pytorch/examples) means reduction='sum'
    s = F.nll_loss(t64(lp), tapegrad.tensor([1, 0, 3]), size_average=False)
    np.testing.assert_allclose(s.item(), -(lp[0, 1] + lp[1, 0] + lp[2, 3]))


# ---------------------------------------------------------------- binary
def test_bce_and_clamp():
    p = np.array([0.2, 0.9, 0.5])
    y = np.array([0.0, 1.0, 1.0])
    ref = -(y * np.log(p) + (1 - y) * np.log(1 - p)).mean()
    np.testing.assert_allclose(F.binary_cross_entropy(t64(p), t64(y)).item(), ref, rtol=1e-12)
    # log clamped to -100: p = 0 with y = 1 costs exactly 100
    assert F.binary_cross_entropy(t64([0.0]), t64([1.0])).item() == 100.0
    with pytest.raises(RuntimeError, match="between 0 and 1"):
        F.binary_cross_entropy(t64([1.5]), t64([1.0]))
    with pytest.raises(ValueError, match=r"target size \(\(2,\)\).*input size \(\(1,\)\)"):
        F.binary_cross_entropy(t64([0.5]), t64([1.0, 0.0]))
    x = t64(R.uniform(0.1, 0.9, 5), True)
    tgt, wt = t64(R.random(5) > 0.5), t64(np.arange(5.0))
    gradcheck(lambda a: F.binary_cross_entropy(a, tgt, weight=wt), (x,))


def test_bce_with_logits_matches_reference_and_is_stable():
    x = R.standard_normal(6) * 3
    y = (R.random(6) > 0.5).astype(float)
    pw = 2.5
    sig = 1 / (1 + np.exp(-x))
    ref = -(pw * y * np.log(sig) + (1 - y) * np.log(1 - sig)).mean()
    out = F.binary_cross_entropy_with_logits(t64(x), t64(y), pos_weight=t64(pw))
    np.testing.assert_allclose(out.item(), ref, rtol=1e-10)
    big = tapegrad.tensor([1e4, -1e4, 0.0], requires_grad=True)
    loss = F.binary_cross_entropy_with_logits(big, tapegrad.tensor([0.0, 1.0, 1.0]), reduction="none")
    loss.sum().backward()
    np.testing.assert_allclose(loss.detach().numpy(), [1e4, 1e4, math.log(2)], rtol=1e-6)
    np.testing.assert_allclose(big.grad.numpy(), [1.0, -1.0, -0.5], rtol=1e-6)  # sigmoid(x) - y, also at 0
    xs = t64(R.standard_normal(5), True)
    tgt = t64(R.random(5))
    gradcheck(lambda a: F.binary_cross_entropy_with_logits(a, tgt, pos_weight=t64([2.0])), (xs,))


# ---------------------------------------------------------------- regression
def test_regression_losses_hand_computed():
    x = np.array([0.0, 1.5, -3.0, 0.25])
    y = np.array([0.5, 0.0, 0.0, 0.0])
    d = x - y
    np.testing.assert_allclose(F.mse_loss(t64(x), t64(y)).item(), (d ** 2).mean())
    np.testing.assert_allclose(F.l1_loss(t64(x), t64(y), reduction="sum").item(), np.abs(d).sum())
    sl1 = np.where(np.abs(d) < 1, 0.5 * d ** 2, np.abs(d) - 0.5)
    np.testing.assert_allclose(F.smooth_l1_loss(t64(x), t64(y)).item(), sl1.mean())
    sl2 = np.where(np.abs(d) < 2, 0.5 * d ** 2 / 2, np.abs(d) - 1)
    np.testing.assert_allclose(F.smooth_l1_loss(t64(x), t64(y), beta=2.0).item(), sl2.mean())
    hub = np.where(np.abs(d) < 2, 0.5 * d ** 2, 2 * (np.abs(d) - 1))
    np.testing.assert_allclose(F.huber_loss(t64(x), t64(y), delta=2.0).item(), hub.mean())
    a = t64(R.standard_normal(6), True)
    b = t64(R.standard_normal(6))
    for fn in (F.mse_loss, F.l1_loss, F.smooth_l1_loss, F.huber_loss):
        gradcheck(lambda u: fn(u, b), (a,))
    with pytest.raises(RuntimeError, match=r"mse_loss: input of shape \(3,\) and target of shape \(2,\)"):
        F.mse_loss(t64([1.0, 2, 3]), t64([1.0, 2]))
    with pytest.warns(UserWarning, match="different to the input size"):
        F.mse_loss(t64([[1.0, 2]]), t64([1.0, 2]))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_mse_loss_fused_matches_the_composite(dtype):
    # mse_loss of two same-dtype float tensors is one op (one pass over x and y for 'mean'/'sum');
    # its gradients are the composite's bit for bit, the large reductions within rounding
    rng = np.random.default_rng(3)
    for shape in [(), (0, 4), (7, 5), (40, 1000), (1000, 70)]:
        a = rng.standard_normal(shape).astype(dtype)
        b = rng.standard_normal(shape).astype(dtype)
        for reduction in ("mean", "sum", "none"):
            for noncontig in (False, True):
                xa, ya = (a.T, b.T) if noncontig else (a, b)
                x1, x2 = (tapegrad.tensor(xa, requires_grad=True) for _ in range(2))
                y1, y2 = (tapegrad.tensor(ya, requires_grad=True) for _ in range(2))
                fused = F.mse_loss(x1, y1, reduction=reduction)
                d = x2 - y2
                comp = d * d
                comp = comp.mean() if reduction == "mean" else comp.sum() if reduction == "sum" else comp
                assert type(fused.grad_fn).__name__ == "MseLossBackward0" and fused.dtype == comp.dtype
                if a.size < 16384 or reduction == "none":
                    assert fused.detach().numpy().tobytes() == comp.detach().numpy().tobytes()
                else:
                    np.testing.assert_allclose(fused.item(), comp.item(), rtol=4 * np.finfo(dtype).eps)
                go = tapegrad.tensor(rng.standard_normal(fused.shape).astype(dtype))
                g1 = tapegrad.autograd.grad(fused, (x1, y1), go)
                g2 = tapegrad.autograd.grad(comp, (x2, y2), go)
                for u, v in zip(g1, g2):
                    assert u.numpy().tobytes() == v.numpy().tobytes()
    x = tapegrad.tensor(R.standard_normal((3, 4)), requires_grad=True)
    y = tapegrad.tensor(R.standard_normal((3, 4)), requires_grad=True)
    for reduction in ("mean", "sum", "none"):
        assert tapegrad.autograd.gradgradcheck(lambda u, v: F.mse_loss(u, v, reduction=reduction), (x, y))
    nan = F.mse_loss(tapegrad.tensor([1.0, np.nan] * 10000), tapegrad.zeros(20000))
    assert np.isnan(nan.item())
    assert F.mse_loss(tapegrad.full((20000,), 1e20), tapegrad.zeros(20000)).item() == np.inf


def test_kl_div():
    x = np_log_softmax(R.standard_normal((2, 3)))
    t = np.array([[0.2, 0.8, 0.0], [0.5, 0.25, 0.25]])
    pw = np.where(t > 0, t * (np.log(np.where(t > 0, t, 1)) - x), 0)
    np.testing.assert_allclose(F.kl_div(t64(x), t64(t), reduction="batchmean").item(), pw.sum() / 2)
    np.testing.assert_allclose(F.kl_div(t64(x), t64(t), reduction="sum").item(), pw.sum())
    lt = np.log(np.where(t > 0, t, 1e-3))
    np.testing.assert_allclose(F.kl_div(t64(x), t64(lt), reduction="none", log_target=True).numpy(),
                               np.exp(lt) * (lt - x))
    with pytest.warns(UserWarning, match="batchmean"):
        F.kl_div(t64(x), t64(t))
    a = t64(x, True)
    gradcheck(lambda u: F.kl_div(u, t64(t), reduction="batchmean"), (a,))


def test_kl_div_with_a_negative_target_is_nan_as_pytorch():
    """A negative target is no probability: PyTorch's t * log(t) makes it NaN; tapegrad gave 0 and
    hid it in the reduced loss (a finite, plausible KL divergence)."""
    x = tapegrad.tensor([[0.5, -1.5, 2.0], [0.0, 3.0, -0.25]])
    loss = F.kl_div(x, x, reduction="none")
    assert np.isnan(loss.numpy()).tolist() == [[False, True, False], [False, False, True]]
    assert loss[1, 0].item() == 0.0  # a zero target still gives 0
    assert math.isnan(F.kl_div(x, x, reduction="batchmean").item())


def test_triplet_margin_loss():
    a, p, n = (R.standard_normal((4, 3)) for _ in range(3))

    def dist(u, v):
        return np.sqrt(((u - v + 1e-6) ** 2).sum(1))
    ref = np.maximum(dist(a, p) - dist(a, n) + 1.0, 0).mean()
    np.testing.assert_allclose(F.triplet_margin_loss(t64(a), t64(p), t64(n)).item(), ref, rtol=1e-12)
    ref_swap = np.maximum(dist(a, p) - np.minimum(dist(a, n), dist(p, n)) + 1.0, 0).mean()
    np.testing.assert_allclose(F.triplet_margin_loss(t64(a), t64(p), t64(n), swap=True).item(), ref_swap)
    ta = t64(a, True)
    gradcheck(lambda u: F.triplet_margin_loss(u, t64(p), t64(n), margin=2.0), (ta,))
    with pytest.raises(RuntimeError, match="all be 1D or all 2D"):
        F.triplet_margin_loss(t64(a), t64(p[0]), t64(n))


def test_loss_modules_match_functional():
    x = t64(R.standard_normal((4, 3)))
    y = tapegrad.tensor([0, 2, 1, 1])
    assert nn.CrossEntropyLoss(label_smoothing=0.1)(x, y).item() == F.cross_entropy(x, y, label_smoothing=0.1).item()
    assert nn.NLLLoss(reduction="sum")(x, y).item() == F.nll_loss(x, y, reduction="sum").item()
    z = t64(R.standard_normal((4, 3)))
    assert nn.MSELoss()(x, z).item() == F.mse_loss(x, z).item()
    assert nn.L1Loss()(x, z).item() == F.l1_loss(x, z).item()
    assert nn.SmoothL1Loss(beta=0.5)(x, z).item() == F.smooth_l1_loss(x, z, beta=0.5).item()
    pr = F.sigmoid(x)
    tg = (z > 0).double()
    assert nn.BCELoss()(pr, tg).item() == F.binary_cross_entropy(pr, tg).item()
    assert nn.BCEWithLogitsLoss()(x, tg).item() == F.binary_cross_entropy_with_logits(x, tg).item()
    assert nn.KLDivLoss(reduction="batchmean")(F.log_softmax(x, 1), F.softmax(z, 1)).item() == \
        F.kl_div(F.log_softmax(x, 1), F.softmax(z, 1), reduction="batchmean").item()
    assert nn.TripletMarginLoss()(x, z, -z).item() == F.triplet_margin_loss(x, z, -z).item()
    with pytest.raises(ValueError, match="not a valid value for reduction"):
        nn.MSELoss(reduction="avg")


def test_accuracy_metric():
    logits = tapegrad.tensor([[0.1, 2.0, 0.0], [3.0, 0.0, 1.0], [0.0, 0.5, 0.4], [1.0, 0.0, 2.0]])
    y = tapegrad.tensor([1, 0, 2, 1])
    assert F.accuracy(logits, y).item() == 0.5
    assert F.accuracy(logits, y, topk=2).item() == 0.75
    assert nn.ClassAccuracy()(logits, y).item() == 0.5


@pytest.mark.parametrize("huber", [False, True])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fused_smooth_l1_and_huber_match_the_composite_bit_for_bit(huber, dtype):
    # smooth_l1_loss/huber_loss are one op (blocked, branches picked by bit masks, the sum numpy's pairwise
    # sum block by block): values and both gradients are the composite's bits, edge values included
    import tapegrad as tg
    F = tg.nn.functional
    rng = np.random.default_rng(11)

    def composite(x, y, red, beta):
        d = x - y
        ad = tg.abs(d)
        loss = (tg.where(ad < beta, d * d * 0.5, (ad - 0.5 * beta) * beta) if huber
                else tg.where(ad < beta, d * d * (0.5 / beta), ad - 0.5 * beta))
        return loss.mean() if red == "mean" else loss.sum() if red == "sum" else loss

    def bits(v):
        v = np.asarray(v)
        return np.where(np.isnan(v), np.nan, v).astype(v.dtype).tobytes()

    for shape in [(), (40, 30), (70001,)]:
        for beta in (1.0, 0.1):
            for red in ("mean", "sum", "none"):
                xa, ya = (rng.standard_normal(shape) * 2).astype(dtype), rng.standard_normal(shape).astype(dtype)
                if xa.size > 20:
                    xa.reshape(-1)[:11] = [0.0, -0.0, np.inf, 1.0, beta, -beta, 0.5, np.nan, 3.0, 1e-30, beta]
                    ya.reshape(-1)[:11] = [0.0, 0.0, 1.0, np.inf, 0.0, 0.0, 0.5 + beta, 0.0, 3.0, -0.0, 0.0]
                for xs in ([xa] + ([np.asfortranarray(xa)] if xa.ndim == 2 else [])):
                    x, y = tg.tensor(xs, requires_grad=True), tg.tensor(ya, requires_grad=True)
                    x2, y2 = tg.tensor(xs, requires_grad=True), tg.tensor(ya, requires_grad=True)
                    got = (F.huber_loss(x, y, reduction=red, delta=beta) if huber
                           else F.smooth_l1_loss(x, y, reduction=red, beta=beta))
                    want = composite(x2, y2, red, beta)
                    assert got.dtype == want.dtype and bits(got.detach().numpy()) == bits(want.detach().numpy())
                    gg = tg.tensor(np.asarray(-0.7, dtype) if red != "none" else rng.standard_normal(shape).astype(dtype))
                    got.backward(gg)
                    want.backward(gg)
                    assert bits(x.grad.numpy()) == bits(x2.grad.numpy()) and bits(y.grad.numpy()) == bits(y2.grad.numpy())
    x = tg.randn(3, 4, dtype=tg.float64, requires_grad=True)
    loss = F.huber_loss(x, tg.zeros(3, 4, dtype=tg.float64)) if huber else F.smooth_l1_loss(x, tg.zeros(3, 4, dtype=tg.float64))
    assert type(loss.grad_fn).__name__ == ("HuberLossBackward0" if huber else "SmoothL1LossBackward0")
