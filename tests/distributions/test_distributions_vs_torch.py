"""Distributions against torch.distributions in float64: log_prob, entropy, moments and KL, with
their gradients in the parameters; samples by their statistics (tapegrad's stream is its own)."""
import numpy as np
import pytest

import tapegrad as tg
import tapegrad.distributions as D

R = np.random.default_rng(0)
LOC, SCALE = R.standard_normal((3, 2)), R.uniform(0.5, 2.0, (3, 2))
LOGITS, VALUE = R.standard_normal((3, 4)), R.standard_normal((3, 2))
A = R.standard_normal((2, 3, 3))
COV = A @ A.transpose(0, 2, 1) + 3 * np.eye(3)
CONC = R.uniform(0.5, 3.0, (3, 2))


def _cases(M):
    d = M.distributions
    return {
        "normal": (lambda p: d.Normal(p[0], p[1]), [LOC, SCALE], VALUE),
        "categorical_logits": (lambda p: d.Categorical(logits=p[0]), [LOGITS], np.array([0, 3, 1])),
        "categorical_probs": (lambda p: d.Categorical(probs=p[0].exp()), [LOGITS], np.array([2, 3, 0])),
        "bernoulli_probs": (lambda p: d.Bernoulli(probs=p[0].sigmoid()), [LOC], (VALUE > 0).astype(float)),
        "bernoulli_logits": (lambda p: d.Bernoulli(logits=p[0]), [LOC], (VALUE > 0).astype(float)),
        "uniform": (lambda p: d.Uniform(p[0] - 2, p[0] + p[1]), [LOC, SCALE], LOC + 0.1),
        "mvn_cov": (lambda p: d.MultivariateNormal(p[0], covariance_matrix=p[1]), [LOC[:2, :1].repeat(3, 1), COV],
                    VALUE.reshape(3, 2)[:2].repeat(2, 1)[:, :3]),
        "mvn_tril": (lambda p: d.MultivariateNormal(p[0], scale_tril=p[1].tril()), [LOC[0].repeat(2)[:3],
                     np.linalg.cholesky(COV)], VALUE[:2].repeat(2, 1)[:, :3]),
        "independent": (lambda p: d.Independent(d.Normal(p[0], p[1]), 1), [LOC, SCALE], VALUE),
        "gamma": (lambda p: d.Gamma(p[0], p[1]), [CONC, SCALE], SCALE * 1.3),
        "beta": (lambda p: d.Beta(p[0], p[1]), [CONC, SCALE], SCALE / 2.5),
    }


def _run(M, name):
    make, params, value = _cases(M)[name]
    ps = [M.tensor(p, requires_grad=True) for p in params]
    dist = make(ps)
    v = M.tensor(value)
    outs = {"log_prob": dist.log_prob(v), "entropy": dist.entropy(), "mean": dist.mean, "variance": dist.variance,
            "stddev": dist.stddev}
    outs = {k: o for k, o in outs.items() if not bool(o.isnan().any())}
    res = {k: o.detach().numpy() for k, o in outs.items()}
    for k, o in outs.items():
        if o.requires_grad:
            gs = M.autograd.grad(o.sum(), ps, allow_unused=True, retain_graph=True)
            res[k + "_grad"] = [None if g is None else g.numpy() for g in gs]
    res["shapes"] = (tuple(dist.batch_shape), tuple(dist.event_shape), tuple(dist.sample((5,)).shape))
    return res


@pytest.mark.parametrize("name", sorted(_cases(tg)))
def test_values_and_gradients_match_torch(name):
    torch = pytest.importorskip("torch")
    got, want = _run(tg, name), _run(torch, name)
    assert set(got) == set(want)
    assert got.pop("shapes") == want.pop("shapes")
    for k in want:
        if k.endswith("_grad"):
            for g, w in zip(got[k], want[k]):
                if w is None or g is None:
                    assert not np.any(w) and not np.any(g), k
                else:
                    np.testing.assert_allclose(g, w, rtol=1e-7, atol=1e-9, err_msg=k)  # trigamma: scipy vs torch
        else:
            np.testing.assert_allclose(got[k], want[k], rtol=1e-10, atol=1e-12, err_msg=k)


KL_PAIRS = {
    "normal": lambda d, a, b: (d.Normal(a, b), d.Normal(b, a.exp())),
    "categorical": lambda d, a, b: (d.Categorical(logits=a), d.Categorical(probs=b)),
    "bernoulli": lambda d, a, b: (d.Bernoulli(logits=a), d.Bernoulli(probs=b / 3)),
    "independent": lambda d, a, b: (d.Independent(d.Normal(a, b), 1), d.Independent(d.Normal(b, b), 1)),
    "gamma": lambda d, a, b: (d.Gamma(a.exp(), b), d.Gamma(b, a.exp())),
    "beta": lambda d, a, b: (d.Beta(a.exp(), b), d.Beta(b, a.exp())),
    "uniform": lambda d, a, b: (d.Uniform(a, a + b), d.Uniform(a - 1, a + 2 * b)),
    "mvn": lambda d, a, b: (d.MultivariateNormal(a[:, :2], scale_tril=b[:, :2].diag_embed() + (a[:, :1, None] * 0.3).tril(-1)),
                            d.MultivariateNormal(b[:, :2], covariance_matrix=b[:, :2].diag_embed() + 1.0)),
}



@pytest.mark.parametrize("name", sorted(KL_PAIRS))
def test_kl_divergence_matches_torch(name):
    torch = pytest.importorskip("torch")
    res = {}
    for M in (torch, tg):
        a = M.tensor(LOC, requires_grad=True)
        b = M.tensor(SCALE, requires_grad=True)
        p, q = KL_PAIRS[name](M.distributions, a, b)
        kl = M.distributions.kl_divergence(p, q)
        res[M] = (kl.detach().numpy(), *[g.numpy() for g in M.autograd.grad(kl.sum(), [a, b], allow_unused=True)
                                         if g is not None])
    for g, w in zip(res[tg], res[torch]):
        np.testing.assert_allclose(g, w, rtol=1e-9, atol=1e-12)
    with pytest.raises(NotImplementedError, match="No KL"):
        D.kl_divergence(D.Normal(0.0, 1.0), D.Bernoulli(0.5))


def test_validation_errors_match_torch():
    torch = pytest.importorskip("torch")
    for M in (torch, tg):
        d = M.distributions
        for bad in (lambda: d.Normal(M.tensor([0.0]), M.tensor([-1.0])), lambda: d.Bernoulli(probs=M.tensor([1.5])),
                    lambda: d.Categorical(), lambda: d.Uniform(M.tensor(1.0), M.tensor(0.0)),
                    lambda: d.MultivariateNormal(M.zeros(2), covariance_matrix=-M.eye(2)),
                    lambda: d.Bernoulli(0.3).log_prob(M.tensor(0.5)),
                    lambda: d.Categorical(logits=M.zeros(3)).log_prob(M.tensor(3)),
                    lambda: d.Normal(M.zeros(2), 1.0).log_prob(M.zeros(3)),
                    lambda: d.Independent(d.Normal(0.0, 1.0), 1)):
            with pytest.raises(ValueError):
                bad()
    msg = "Expected parameter scale (Tensor of shape (1,)) of distribution Normal(loc: tensor([0.]), scale: tensor("
    with pytest.raises(ValueError) as e:
        D.Normal(tg.tensor([0.0]), tg.tensor([-1.0]))
    assert str(e.value).startswith(msg) and "GreaterThan(lower_bound=0.0)" in str(e.value)
    D.Normal(0.0, -1.0, validate_args=False)  # validation off: accepted, as in PyTorch


def test_samples_follow_the_distribution():
    tg.manual_seed(0)
    n = 20000
    s = D.Normal(tg.tensor([1.0, -2.0], dtype=tg.float64), tg.tensor([0.5, 2.0], dtype=tg.float64)).sample((n,))
    np.testing.assert_allclose(s.numpy().mean(0), [1.0, -2.0], atol=0.05)
    np.testing.assert_allclose(s.numpy().std(0), [0.5, 2.0], rtol=0.03)
    c = D.Categorical(probs=tg.tensor([0.1, 0.0, 0.6, 0.3])).sample((n,)).numpy()
    assert c.dtype == np.int64
    np.testing.assert_allclose(np.bincount(c, minlength=4) / n, [0.1, 0.0, 0.6, 0.3], atol=0.015)
    b = D.Bernoulli(logits=tg.tensor([0.0, 2.0])).sample((n,)).numpy()
    np.testing.assert_allclose(b.mean(0), [0.5, 1 / (1 + np.exp(-2))], atol=0.015)
    u = D.Uniform(-1.0, 3.0).sample((n,)).numpy()
    assert u.min() >= -1 and u.max() < 3 and abs(u.mean() - 1) < 0.05
    cov = np.array([[2.0, 0.6], [0.6, 1.0]])
    m = D.MultivariateNormal(tg.tensor([1.0, 0.0], dtype=tg.float64), covariance_matrix=tg.tensor(cov)).sample((n,))
    np.testing.assert_allclose(np.cov(m.numpy().T), cov, atol=0.06)
    g = D.Gamma(tg.tensor(3.0, dtype=tg.float64), tg.tensor(2.0, dtype=tg.float64)).sample((n,)).numpy()
    assert abs(g.mean() - 1.5) < 0.03 and abs(g.var() - 0.75) < 0.04
    be = D.Beta(2.0, 5.0).sample((n,)).numpy()
    assert abs(be.mean() - 2 / 7) < 0.01


def test_rsample_is_differentiable():
    tg.manual_seed(1)
    loc = tg.tensor([0.5, -1.0], dtype=tg.float64, requires_grad=True)
    scale = tg.tensor([2.0, 0.3], dtype=tg.float64, requires_grad=True)
    s = D.Normal(loc, scale).rsample((3,))
    s.sum().backward()
    assert loc.grad.tolist() == [3.0, 3.0]
    eps = (s.detach() - loc.detach()) / scale.detach()
    np.testing.assert_allclose(scale.grad.numpy(), eps.numpy().sum(0))
    assert not D.Categorical(logits=tg.zeros(3)).has_rsample and D.Independent(D.Normal(loc, scale), 1).has_rsample
    # a Gamma draw's derivative in the concentration: PyTorch's _standard_gamma_grad on the same draws
    torch = pytest.importorskip("torch")
    a = tg.tensor([0.3, 1.0, 2.5, 9.0], dtype=tg.float64, requires_grad=True)
    x = D.Gamma(a, 1.0).rsample((50,))
    (ga,) = tg.autograd.grad(x.sum(), a)
    want = torch._standard_gamma_grad(torch.tensor(a.detach().numpy()).expand(50, 4), torch.tensor(x.detach().numpy()))
    np.testing.assert_allclose(ga.numpy(), want.numpy().sum(0), rtol=1e-4)
