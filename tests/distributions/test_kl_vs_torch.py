"""kl_divergence for the pairs PyTorch registers among tapegrad's families, against torch in
float64: values (inf where q's support misses part of p's) and gradients in the parameters."""
import numpy as np
import pytest

import tapegrad as tg
import tapegrad.distributions as D

R = np.random.default_rng(3)
A, B = R.standard_normal((3, 2)), R.uniform(0.3, 0.9, (3, 2))
W = R.standard_normal((2, 3, 2))


def _lowrank(d, a, b, k=0):
    return d.LowRankMultivariateNormal(a[:, k:k + 1].expand(3, 3) * 0.5, a.new_tensor(W[0]) * b[:, :1].exp(),
                                       b.repeat(1, 2)[:, :3] + 0.5)


def _mvn(d, a, b):
    return d.MultivariateNormal(a[:, :1].expand(3, 3), scale_tril=b.repeat(1, 2)[:, :3].diag_embed()
                                + (a[:, :1, None] * 0.2).expand(3, 3, 3).tril(-1))


PAIRS = {
    "binomial": lambda d, a, b: (d.Binomial(7, probs=b), d.Binomial(7, logits=a)),
    "binomial_inf": lambda d, a, b: (d.Binomial(a.new_tensor([[8.0, 7.0]] * 3), probs=b), d.Binomial(7, logits=a)),
    "dirichlet": lambda d, a, b: (d.Dirichlet(a.exp()), d.Dirichlet(b * 2)),
    "exponential": lambda d, a, b: (d.Exponential(a.exp()), d.Exponential(b)),
    "geometric": lambda d, a, b: (d.Geometric(logits=a), d.Geometric(probs=b)),
    "laplace": lambda d, a, b: (d.Laplace(a, b), d.Laplace(b, a.exp())),
    "lowrank_lowrank": lambda d, a, b: (_lowrank(d, a, b), _lowrank(d, b, a.exp(), 1)),
    "mvn_lowrank": lambda d, a, b: (_mvn(d, a, b), _lowrank(d, b, a.exp())),
    "lowrank_mvn": lambda d, a, b: (_lowrank(d, a, b), _mvn(d, b, b + 0.2)),
    "onehot": lambda d, a, b: (d.OneHotCategorical(logits=a), d.OneHotCategorical(probs=b)),
    "poisson": lambda d, a, b: (d.Poisson(a.exp()), d.Poisson(b)),
    "lognormal": lambda d, a, b: (d.LogNormal(a, b), d.LogNormal(b, a.exp())),
    "cauchy": lambda d, a, b: (d.Cauchy(a, b), d.Cauchy(b, a.exp())),
    "chi2_gamma": lambda d, a, b: (d.Chi2(a.exp() * 3), d.Gamma(b, a.exp())),
    "bernoulli_poisson": lambda d, a, b: (d.Bernoulli(b), d.Poisson(a.exp())),
    "beta_exponential": lambda d, a, b: (d.Beta(a.exp(), b), d.Exponential(b)),
    "beta_gamma": lambda d, a, b: (d.Beta(a.exp(), b), d.Gamma(b, a.exp())),
    "beta_normal": lambda d, a, b: (d.Beta(a.exp(), b), d.Normal(a, b)),
    "beta_uniform": lambda d, a, b: (d.Beta(a.exp(), b), d.Uniform(a - 2, (a + 0.5).clamp(min=0.9))),
    "exponential_gamma": lambda d, a, b: (d.Exponential(a.exp()), d.Gamma(b, a.exp())),
    "exponential_normal": lambda d, a, b: (d.Exponential(a.exp()), d.Normal(a, b)),
    "exponential_uniform": lambda d, a, b: (d.Exponential(a.exp()), d.Uniform(a - 1, a + 1)),
    "gamma_exponential": lambda d, a, b: (d.Gamma(a.exp(), b), d.Exponential(b)),
    "gamma_normal": lambda d, a, b: (d.Gamma(a.exp(), b), d.Normal(a, b)),
    "gamma_beta": lambda d, a, b: (d.Gamma(a.exp(), b), d.Beta(b, b)),
    "laplace_normal": lambda d, a, b: (d.Laplace(a, b), d.Normal(b, a.exp())),
    "laplace_gamma": lambda d, a, b: (d.Laplace(a, b), d.Gamma(b, b)),
    "normal_laplace": lambda d, a, b: (d.Normal(a, b), d.Laplace(b, a.exp())),
    "normal_exponential": lambda d, a, b: (d.Normal(a, b), d.Exponential(b)),
    "poisson_binomial": lambda d, a, b: (d.Poisson(b), d.Binomial(3, probs=b)),
    "uniform_beta": lambda d, a, b: (d.Uniform(b * 0.5, b), d.Beta(a.exp(), b)),
    "uniform_beta_inf": lambda d, a, b: (d.Uniform(a, a + 1), d.Beta(a.exp(), b)),
    "uniform_exponential": lambda d, a, b: (d.Uniform(a, a + b), d.Exponential(b)),
    "uniform_gamma": lambda d, a, b: (d.Uniform(b, b + 1), d.Gamma(a.exp(), b)),
    "uniform_normal": lambda d, a, b: (d.Uniform(a, a + b), d.Normal(b, a.exp())),
    "gumbel": lambda d, a, b: (d.Gumbel(a, b), d.Gumbel(b, a.exp())),
    "half_normal": lambda d, a, b: (d.HalfNormal(a.exp()), d.HalfNormal(b)),
    "pareto": lambda d, a, b: (d.Pareto(b, a.exp() + 0.5), d.Pareto(b * 0.9 + 0.05 * a, b * 3)),
    "pareto_exponential": lambda d, a, b: (d.Pareto(b, a.exp() + 0.5), d.Exponential(b)),
    "pareto_gamma": lambda d, a, b: (d.Pareto(b, a.exp() + 0.5), d.Gamma(b, a.exp())),
    "pareto_normal": lambda d, a, b: (d.Pareto(b, a.exp() + 1.5), d.Normal(a, b)),
    "pareto_uniform": lambda d, a, b: (d.Pareto(b, a.exp()), d.Uniform(a, a + 1)),
    "exponential_gumbel": lambda d, a, b: (d.Exponential(a.exp()), d.Gumbel(a, b)),
    "gamma_gumbel": lambda d, a, b: (d.Gamma(a.exp(), b), d.Gumbel(a, b)),
    "gumbel_normal": lambda d, a, b: (d.Gumbel(a, b), d.Normal(b, a.exp())),
    "normal_gumbel": lambda d, a, b: (d.Normal(a, b), d.Gumbel(b, a.exp())),
    "uniform_gumbel": lambda d, a, b: (d.Uniform(a, a + b), d.Gumbel(b, a.exp())),
    "uniform_pareto": lambda d, a, b: (d.Uniform(b, b + 1), d.Pareto(b * 0.9 + 0.05 * a, a.exp())),
    "gumbel_pareto": lambda d, a, b: (d.Gumbel(a, b), d.Pareto(b, b)),
    "normal_pareto": lambda d, a, b: (d.Normal(a, b), d.Pareto(b, b)),
    "cb_cb": lambda d, a, b: (d.ContinuousBernoulli(logits=a), d.ContinuousBernoulli(probs=b)),
    "beta_cb": lambda d, a, b: (d.Beta(a.exp(), b), d.ContinuousBernoulli(probs=b)),
    "uniform_cb": lambda d, a, b: (d.Uniform(b * 0.5, b), d.ContinuousBernoulli(logits=a)),
    "cb_exponential": lambda d, a, b: (d.ContinuousBernoulli(logits=a), d.Exponential(b)),
    "cb_normal": lambda d, a, b: (d.ContinuousBernoulli(logits=a), d.Normal(a, b)),
    "cb_uniform": lambda d, a, b: (d.ContinuousBernoulli(logits=a), d.Uniform(a - 2, a + 2)),
    "normal_cb": lambda d, a, b: (d.Normal(a, b), d.ContinuousBernoulli(probs=b)),
    "transformed": lambda d, a, b: (d.TransformedDistribution(d.Normal(a, b), d.transforms.ExpTransform()),
                                    d.TransformedDistribution(d.Normal(b, b), d.transforms.ExpTransform())),
}


@pytest.mark.parametrize("name", sorted(PAIRS))
def test_kl_matches_torch(name):
    torch = pytest.importorskip("torch")
    res = {}
    for M in (torch, tg):
        a = M.tensor(A, requires_grad=True)
        b = M.tensor(B, requires_grad=True)
        p, q = PAIRS[name](M.distributions, a, b)
        kl = M.distributions.kl_divergence(p, q)
        finite = kl.detach().isfinite()
        grads = M.autograd.grad(kl[finite].sum(), [a, b], allow_unused=True) if bool(finite.any()) else ()
        res[M] = (kl.detach().numpy(), [None if g is None else g.numpy() for g in grads])
    (got, got_g), (want, want_g) = res[tg], res[torch]
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-11, atol=1e-12)
    for g, w in zip(got_g, want_g):
        if g is None or w is None:
            assert not np.any(g) and not np.any(w)
        else:
            # formulas with digamma differentiate it: scipy's polygamma and torch's trigamma differ by ~1e-8
            np.testing.assert_allclose(g, w, rtol=1e-7, atol=1e-12)


def test_kl_pairs_without_a_formula_raise_as_torch():
    torch = pytest.importorskip("torch")
    for M in (torch, tg):
        d = M.distributions
        x = M.tensor([0.5, 2.0], dtype=M.float64)
        for p, q in ((d.Cauchy(x, x), d.Normal(x, x)), (d.StudentT(x), d.StudentT(x)),
                     (d.TransformedDistribution(d.Normal(x, x), d.transforms.ExpTransform()),
                      d.TransformedDistribution(d.Normal(x, x), d.transforms.SigmoidTransform())),
                     (d.Weibull(x, x), d.Weibull(x, x + 1))):  # transforms with other parameters
            with pytest.raises(NotImplementedError):
                d.kl_divergence(p, q)
        with pytest.raises(NotImplementedError):  # q's total_count larger than p's
            d.kl_divergence(d.Binomial(2, probs=x / 3), d.Binomial(3, probs=x / 3))
