"""The families added for issue 11 against torch.distributions in float64: log_prob, entropy,
mean, mode, variance, stddev, cdf and icdf on the same parameters (to 1e-12), which of them raise
NotImplementedError, the gradients of log_prob in the parameters, batch/event/sample shapes and
expand. tapegrad's random stream is its own, so samples are checked by their moments instead."""
import numpy as np
import pytest

import tapegrad as tg
import tapegrad.distributions as D

R = np.random.default_rng(11)
LOC, SCALE = R.standard_normal((3, 2)), R.uniform(0.5, 2.0, (3, 2))
VALUE, U = R.standard_normal((3, 2)), R.uniform(0.05, 0.95, (3, 2))
DF = np.array([[0.8, 1.5], [2.5, 4.0], [10.0, 0.5]])  # StudentT's mean/variance: nan, inf and finite
CONC4 = np.vstack([R.uniform(0.5, 3.0, (2, 4)), [[0.3, 0.6, 0.9, 0.5]]])  # last row all < 1: Dirichlet's vertex mode
SIMPLEX4 = R.dirichlet(np.ones(4), 3)
LOGITS4 = R.standard_normal((3, 4))
COUNTS = np.array([[0.0, 1.0], [2.0, 3.0], [5.0, 0.0]])
ONEHOT = np.eye(4)[[1, 3, 0]]
W = R.standard_normal((2, 3, 2))
CB_P = np.array([[0.2, 0.5], [0.4995, 0.5008], [0.9, 0.03]])  # inside and outside the Taylor region (0.499, 0.501]


def _t(M, a):
    return M.tensor(a)


def _cases(M):
    d, tr = M.distributions, M.distributions.transforms
    return {
        "exponential": (lambda p: d.Exponential(p[0]), [SCALE], SCALE * 1.3),
        "studentT": (lambda p: d.StudentT(p[0], p[1], p[2]), [DF, LOC, SCALE], VALUE),
        "studentT_scalar_loc": (lambda p: d.StudentT(p[0]), [DF], VALUE),
        "laplace": (lambda p: d.Laplace(p[0], p[1]), [LOC, SCALE], VALUE),
        "lognormal": (lambda p: d.LogNormal(p[0], p[1]), [LOC, SCALE], np.exp(VALUE)),
        "poisson": (lambda p: d.Poisson(p[0]), [SCALE * 2], COUNTS),
        "dirichlet": (lambda p: d.Dirichlet(p[0]), [CONC4], SIMPLEX4),
        "binomial_probs": (lambda p: d.Binomial(6, probs=p[0].sigmoid()), [LOC], COUNTS),
        "binomial_logits": (lambda p: d.Binomial(M.tensor([[5.0, 6.0]] * 3, dtype=M.float64), logits=p[0]), [LOC],
                            COUNTS),
        "geometric_probs": (lambda p: d.Geometric(probs=p[0].sigmoid()), [LOC], COUNTS),
        "geometric_logits": (lambda p: d.Geometric(logits=p[0]), [LOC], COUNTS),
        "cauchy": (lambda p: d.Cauchy(p[0], p[1]), [LOC, SCALE], VALUE),
        "chi2": (lambda p: d.Chi2(p[0]), [SCALE * 3], SCALE * 1.3),
        "onehot_logits": (lambda p: d.OneHotCategorical(logits=p[0]), [LOGITS4], ONEHOT),
        "onehot_probs": (lambda p: d.OneHotCategorical(probs=p[0].exp()), [LOGITS4], ONEHOT),
        "relaxed_bernoulli": (lambda p: d.RelaxedBernoulli(p[1].sum() * 0 + 0.7, probs=p[0].sigmoid()),
                              [LOC, SCALE], 1 / (1 + np.exp(-VALUE))),
        "relaxed_bernoulli_logits": (lambda p: d.RelaxedBernoulli(p[1], logits=p[0]), [LOC, SCALE],
                                     1 / (1 + np.exp(-VALUE))),
        "relaxed_onehot": (lambda p: d.RelaxedOneHotCategorical(p[1][0, 0], logits=p[0]), [LOGITS4, SCALE],
                           SIMPLEX4),
        "lowrank_mvn": (lambda p: d.LowRankMultivariateNormal(p[0], p[1], p[2]), [LOC[:2].repeat(2, 1)[:, :3],
                        W, SCALE[:2].repeat(2, 1)[:, :3]], VALUE[:2].repeat(2, 1)[:, :3]),
        "lowrank_mvn_broadcast": (lambda p: d.LowRankMultivariateNormal(p[0][0], p[1], p[2][0]),
                                  [LOC[:2].repeat(2, 1)[:, :3], W, SCALE[:2].repeat(2, 1)[:, :3]], VALUE.reshape(-1)[None, :3]
                                  .repeat(2, 0)),
        "half_normal": (lambda p: d.HalfNormal(p[0]), [SCALE], np.abs(VALUE)),
        "half_cauchy": (lambda p: d.HalfCauchy(p[0]), [SCALE], np.abs(VALUE)),
        "gumbel": (lambda p: d.Gumbel(p[0], p[1]), [LOC, SCALE], VALUE),
        "gumbel_scalar": (lambda p: d.Gumbel(0.5, 2.0), [LOC], np.array(VALUE[0, 0])),
        "pareto": (lambda p: d.Pareto(p[0], p[1] * 2), [SCALE, DF], SCALE + np.abs(VALUE)),
        "weibull": (lambda p: d.Weibull(p[0], p[1]), [SCALE, DF], np.abs(VALUE)),
        "negative_binomial": (lambda p: d.NegativeBinomial(p[1] * 2, probs=p[0].sigmoid()), [LOC, SCALE], COUNTS),
        "negative_binomial_logits": (lambda p: d.NegativeBinomial(3.0, logits=p[0]), [LOC], COUNTS),
        "multinomial": (lambda p: d.Multinomial(5, probs=p[0].exp()), [LOGITS4], np.array([[1.0, 2.0, 0.0, 2.0],
                        [0.0, 0.0, 5.0, 0.0], [1.0, 1.0, 1.0, 1.0]])),
        "multinomial_logits": (lambda p: d.Multinomial(4, logits=p[0]), [LOGITS4], np.array([[1.0, 2.0, 0.0, 1.0],
                               [0.0, 0.0, 4.0, 0.0], [1.0, 1.0, 1.0, 1.0]])),
        "kumaraswamy": (lambda p: d.Kumaraswamy(p[0], p[1]), [SCALE, DF], U),
        "fishersnedecor": (lambda p: d.FisherSnedecor(p[0] * 3, p[1] * 2), [SCALE, DF], SCALE),
        "inverse_gamma": (lambda p: d.InverseGamma(p[0], p[1]), [DF, SCALE], SCALE),
        "logistic_normal": (lambda p: d.LogisticNormal(p[0], p[1]), [LOGITS4[:, :3], SCALE.repeat(2, 1)[:, :3]],
                            SIMPLEX4),
        "continuous_bernoulli": (lambda p: d.ContinuousBernoulli(probs=p[0]), [CB_P], U),
        "continuous_bernoulli_logits": (lambda p: d.ContinuousBernoulli(logits=p[0]), [LOC], U),
        "mixture_normal": (lambda p: d.MixtureSameFamily(d.Categorical(logits=p[0][:, :2]), d.Normal(p[1], p[2])),
                           [LOGITS4, LOC, SCALE], VALUE[:, 0]),
        "mixture_independent": (lambda p: d.MixtureSameFamily(d.Categorical(logits=p[0][0, :3]),
                                                              d.Independent(d.Normal(p[1], p[2]), 1)),
                                [LOGITS4, LOC, SCALE], VALUE),
        "transformed_sigmoid_affine": (lambda p: d.TransformedDistribution(
            d.Normal(p[0], p[1]), [tr.SigmoidTransform(), tr.AffineTransform(p[0] * 0 + 1.0, p[1])]),
            [LOC, SCALE], 1.0 + SCALE * U),
        "transformed_exp_power": (lambda p: d.TransformedDistribution(
            d.Normal(p[0], p[1]), [tr.ExpTransform(), tr.PowerTransform(M.tensor(2.0, dtype=M.float64))]),
            [LOC, SCALE], np.exp(VALUE)),
        "transformed_tanh_negative_affine": (lambda p: d.TransformedDistribution(
            d.Laplace(p[0], p[1]), [tr.TanhTransform(), tr.AffineTransform(0.5, -2.0)]), [LOC, SCALE], 0.5 - 1.8 * (U - 0.5)),
        "transformed_stickbreaking": (lambda p: d.TransformedDistribution(
            d.Independent(d.Normal(p[0], p[1]), 1), tr.StickBreakingTransform()),
            [LOGITS4[:, :3], SCALE.repeat(2, 1)[:, :3]], SIMPLEX4),
        "transformed_compose_affine_event": (lambda p: d.TransformedDistribution(
            d.Normal(p[0], p[1]), tr.ComposeTransform([tr.AffineTransform(p[0], p[1], event_dim=1),
                                                       tr.ExpTransform()])), [LOC, SCALE], np.exp(VALUE)),
    }


METHODS = ("log_prob", "entropy", "mean", "mode", "variance", "stddev", "cdf", "icdf")


def _evaluate(M, name):
    make, params, value = _cases(M)[name]
    ps = [M.tensor(p, requires_grad=True) for p in params]
    dist = make(ps)
    v = M.tensor(value)
    calls = {"log_prob": lambda: dist.log_prob(v), "entropy": dist.entropy, "mean": lambda: dist.mean,
             "mode": lambda: dist.mode, "variance": lambda: dist.variance, "stddev": lambda: dist.stddev,
             "cdf": lambda: dist.cdf(v), "icdf": lambda: dist.icdf(M.tensor(U[..., :1] if v.ndim > 1 and
                                                                           len(dist.event_shape) else U))}
    res = {}
    for k in METHODS:
        try:
            out = calls[k]()
        except NotImplementedError:
            res[k] = "NotImplementedError"
            continue
        res[k] = out.detach().numpy()
        if k == "log_prob" and out.requires_grad:
            gs = M.autograd.grad(out.sum(), ps, allow_unused=True)
            res["log_prob_grad"] = [None if g is None else g.numpy() for g in gs]
    res["shapes"] = (tuple(dist.batch_shape), tuple(dist.event_shape), tuple(dist.sample((5,)).shape),
                     dist.has_rsample, dist.support.event_dim if hasattr(dist.support, "event_dim") else None)
    res["constraints"] = (type(dist.support).__name__, dist.support.event_dim, dist.support.is_discrete,
                          sorted((k, repr(c)) for k, c in dist.arg_constraints.items()))
    ex = dist.expand((4, 1) + tuple(dist.batch_shape))  # the 1 lets sample dims of v (mixtures) broadcast
    res["expand"] = (tuple(ex.batch_shape), tuple(ex.event_shape), ex.log_prob(v).detach().numpy())
    return res


@pytest.mark.parametrize("name", sorted(_cases(tg)))
def test_family_matches_torch(name):
    torch = pytest.importorskip("torch")
    got, want = _evaluate(tg, name), _evaluate(torch, name)
    assert got.pop("shapes") == want.pop("shapes")
    assert got.pop("constraints") == want.pop("constraints")
    (gb, ge, gl), (wb, we, wl) = got.pop("expand"), want.pop("expand")
    assert (gb, ge) == (wb, we)
    np.testing.assert_allclose(gl, wl, rtol=1e-12, atol=1e-12)
    assert sorted(got) == sorted(want)
    for k in want:
        if isinstance(want[k], str) or isinstance(got[k], str):
            assert str(got[k]) == str(want[k]), (k, got[k], want[k])
        elif k.endswith("_grad"):
            for g, w in zip(got[k], want[k]):
                if w is None or g is None:
                    assert not np.any(w) and not np.any(g), k
                else:
                    np.testing.assert_allclose(g, w, rtol=1e-10, atol=1e-12, err_msg=k)
        else:
            assert got[k].shape == want[k].shape, k
            # torch's Multinomial.entropy takes lgamma(n + 1) of an int64 tensor, so in float32; tapegrad's
            # is float64 (checked exactly by test_multinomial_entropy_is_exact)
            rtol = 1e-7 if name.startswith("multinomial") and k == "entropy" else 1e-12
            np.testing.assert_allclose(got[k], want[k], rtol=rtol, atol=1e-12, err_msg=k)


EXISTING = {
    "normal": lambda d, M: d.Normal(_t(M, LOC), _t(M, SCALE)),
    "bernoulli": lambda d, M: d.Bernoulli(logits=_t(M, LOC)),
    "categorical": lambda d, M: d.Categorical(probs=_t(M, SIMPLEX4)),
    "uniform": lambda d, M: d.Uniform(_t(M, LOC) - 3, _t(M, LOC + SCALE)),
    "beta": lambda d, M: d.Beta(_t(M, SCALE), _t(M, SCALE) + 1),
    "gamma": lambda d, M: d.Gamma(_t(M, SCALE), _t(M, SCALE) + 1),
    "mvn": lambda d, M: d.MultivariateNormal(_t(M, LOC[0]), scale_tril=_t(M, np.diag(SCALE[0]))),
    "independent": lambda d, M: d.Independent(d.Normal(_t(M, LOC), _t(M, SCALE)), 1),
}


@pytest.mark.parametrize("name", sorted(EXISTING))
def test_expand_of_the_earlier_families_matches_torch(name):
    torch = pytest.importorskip("torch")
    out = []
    tg.manual_seed(0)
    v0 = EXISTING[name](D, tg).sample().numpy()  # one value, scored by both
    for M in (tg, torch):
        dist = EXISTING[name](M.distributions, M)
        ex = dist.expand((5,) + tuple(dist.batch_shape))
        v = M.tensor(v0)
        out.append((tuple(ex.batch_shape), tuple(ex.event_shape), tuple(ex.sample((2,)).shape),
                    ex.log_prob(M.tensor(v.numpy())).numpy(), ex.entropy().numpy()))
    for g, w in zip(*out):
        if isinstance(w, tuple):
            assert g == w
        else:
            np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-12)


def test_enumerate_support_matches_torch():
    torch = pytest.importorskip("torch")
    for make in (lambda d, M: d.Binomial(4, probs=M.tensor(U)), lambda d, M: d.OneHotCategorical(M.tensor(SIMPLEX4))):
        got, want = make(D, tg), make(torch.distributions, torch)
        for expand in (True, False):
            np.testing.assert_array_equal(got.enumerate_support(expand).numpy(), want.enumerate_support(expand).numpy())
        assert got.has_enumerate_support and want.has_enumerate_support


def test_float32_parameters_give_float32_draws_and_scores():
    for dist in (D.StudentT(3.0), D.Exponential(2.0), D.Laplace(0.0, 1.0), D.Poisson(3.0), D.Geometric(0.3),
                 D.Binomial(5, probs=tg.tensor(0.3)), D.Dirichlet(tg.ones(3)), D.Chi2(2.0), D.Cauchy(0.0, 1.0),
                 D.LogNormal(0.0, 1.0), D.RelaxedBernoulli(tg.tensor(0.5), probs=tg.tensor(0.3))):
        s = dist.sample((4,))
        assert s.dtype == tg.float32 and dist.log_prob(s).dtype == tg.float32, dist


def test_mixture_support_checks_every_component_as_torch():
    torch = pytest.importorskip("torch")
    for M in (torch, tg):
        d = M.distributions
        mix = d.MixtureSameFamily(d.Categorical(M.ones(2)), d.Uniform(M.tensor([0.0, 1.0]), M.tensor([2.0, 3.0])))
        assert mix.support.check(M.tensor([1.5, 0.5, 2.5])).tolist() == [True, False, False]
        with pytest.raises(ValueError):
            mix.log_prob(M.tensor(0.5))


def test_utils_helpers_match_torch():
    torch = pytest.importorskip("torch")
    x = LOGITS4
    for binary in (False, True):
        p = 1 / (1 + np.exp(-x)) if binary else np.exp(x) / np.exp(x).sum(-1, keepdims=True)
        np.testing.assert_allclose(D.utils.probs_to_logits(tg.tensor(p), binary).numpy(),
                                   torch.distributions.utils.probs_to_logits(torch.tensor(p), binary).numpy(), rtol=1e-12)
        np.testing.assert_allclose(D.utils.logits_to_probs(tg.tensor(x), binary).numpy(),
                                   torch.distributions.utils.logits_to_probs(torch.tensor(x), binary).numpy(), rtol=1e-12)
    a, b = D.utils.broadcast_all(tg.tensor(LOC), 2.0)
    assert tuple(b.shape) == (3, 2) and b.dtype == tg.float64


def test_multinomial_entropy_is_exact():
    import itertools
    from math import lgamma
    n, p = 4, SIMPLEX4[0]
    h = 0.0
    for x in itertools.product(range(n + 1), repeat=4):
        if sum(x) == n:
            lp = lgamma(n + 1) - sum(lgamma(k + 1) for k in x) + sum(k * np.log(q) for k, q in zip(x, p))
            h -= np.exp(lp) * lp
    np.testing.assert_allclose(D.Multinomial(n, probs=tg.tensor(p)).entropy().item(), h, rtol=1e-13)


def test_straight_through_gradient_and_matrix_constraints_match_torch():
    torch = pytest.importorskip("torch")
    res = []
    for M in (tg, torch):
        logits = M.tensor(LOGITS4, requires_grad=True)
        s = M.distributions.OneHotCategoricalStraightThrough(logits=logits).rsample((2,))
        w = M.tensor(np.arange(24.0).reshape(2, 3, 4))
        (g,) = M.autograd.grad((s * w).sum(), [logits])
        C = M.distributions.constraints
        mats = M.tensor(np.stack([np.eye(3), np.tril(np.ones((3, 3))), np.ones((3, 3)), -np.eye(3)]))
        checks = [c.check(mats).tolist() for c in (C.lower_triangular, C.square, C.symmetric, C.positive_semidefinite)]
        checks.append(C.square.check(M.zeros(2, 3)).tolist())
        checks.append(C.positive_integer.check(M.tensor([0.0, 1.0, 2.5, 3.0])).tolist())
        res.append((tuple(s.shape), bool(((s == 0) | (s == 1)).all()), g.numpy(), checks))
    assert res[0][:2] == res[1][:2] and res[0][3] == res[1][3]
    np.testing.assert_allclose(res[0][2], res[1][2], rtol=1e-12, atol=1e-12)  # the gradient does not depend on the draw
