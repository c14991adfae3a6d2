"""The distributions and transforms added for API coverage (VonMises, GeneralizedPareto,
LKJCholesky, ExponentialFamily, Cat/Stack/CorrCholesky/PositiveDefinite transforms, constraints
cat/stack) against PyTorch: log_prob, moments, entropy, cdf/icdf, transforms and their
log-Jacobians, with gradients; samples checked by their moments."""
import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import tapegrad as tg  # noqa: E402
import tapegrad.distributions as D  # noqa: E402
from tapegrad.distributions import transforms as T  # noqa: E402

R = np.random.default_rng(0)
TD = torch.distributions


def _close(a, b, tol=1e-10):
    np.testing.assert_allclose(np.asarray(b.detach().numpy() if hasattr(b, "detach") else b),
                               np.asarray(a.detach().numpy() if hasattr(a, "detach") else a), rtol=tol, atol=tol)


def test_von_mises_matches_torch():
    loc, k = R.uniform(-2, 2, 4), np.array([1e-6, 0.5, 4.0, 60.0])
    x = R.uniform(-3, 3, 4)
    res = []
    for M, Dm in ((torch, TD), (tg, D)):
        kt = M.tensor(k, requires_grad=True)
        d = Dm.VonMises(M.tensor(loc), kt)
        lp = d.log_prob(M.tensor(x))
        lp.sum().backward()
        res.append([lp, d.mean, d.variance, kt.grad])
    for a, b in zip(*res):
        _close(a, b, 1e-6)  # PyTorch's log I0 is a polynomial approximation (~1e-7 relative)
    s = D.VonMises(tg.tensor(1.0, dtype=tg.float64), tg.tensor(4.0, dtype=tg.float64)).sample((20000,)).numpy()
    assert ((s >= -math.pi) & (s < math.pi)).all()
    assert abs(np.angle(np.exp(1j * s).mean()) - 1.0) < 0.02
    assert abs(1 - np.abs(np.exp(1j * s).mean()) - float(D.VonMises(1.0, 4.0).variance)) < 0.01


@pytest.mark.parametrize("c", [0.0, 0.3, -0.4])
def test_generalized_pareto_matches_torch(c):
    loc, scale = 0.5, 2.0
    x = loc + np.array([0.1, 0.7, 1.5, 2.2])
    u = np.array([0.1, 0.5, 0.9])
    res = []
    for M, Dm in ((torch, TD), (tg, D)):  # float32: PyTorch's GeneralizedPareto fails on float64 parameters
        ct = M.tensor(c, requires_grad=True)
        st = M.tensor(scale, requires_grad=True)
        d = Dm.GeneralizedPareto(M.tensor(loc), st, ct)
        xs, us = M.tensor(x, dtype=M.float32), M.tensor(u, dtype=M.float32)
        lp = d.log_prob(xs)
        out = [lp, d.cdf(xs), d.icdf(us), d.mean, d.variance, d.entropy(), d.log_survival_function(xs)]
        sum(o.sum() for o in out if o.requires_grad).backward()
        res.append(out + [ct.grad, st.grad])
    for a, b in zip(*res):
        _close(a, b, 2e-6)
    s = D.GeneralizedPareto(0.0, 1.0, 0.1).rsample((40000,)).numpy()
    assert abs(s.mean() - 1 / 0.9) < 0.05


@pytest.mark.parametrize("dim,conc", [(2, 0.5), (3, 1.0), (4, 2.5)])
def test_lkj_cholesky_matches_torch(dim, conc):
    value = torch.distributions.LKJCholesky(dim, torch.tensor(conc, dtype=torch.float64)).sample((5,))
    res = []
    for M, Dm in ((torch, TD), (tg, D)):
        ct = M.tensor([conc, conc + 1.0], dtype=M.float64, requires_grad=True)
        lp = Dm.LKJCholesky(dim, ct).log_prob(M.tensor(value.numpy()).unsqueeze(1))
        lp.sum().backward()
        res.append([lp, ct.grad])
    for a, b in zip(*res):
        _close(a, b)
    s = D.LKJCholesky(dim, tg.tensor(conc, dtype=tg.float64)).sample((2000,))
    assert bool(D.constraints.corr_cholesky.check(s).all())
    corr = (s @ s.mT).numpy()
    # the off-diagonal correlations of LKJ(eta) have variance 1 / (2 eta + dim - 1)
    assert abs(corr[:, 1, 0].var() - 1 / (2 * conc + dim - 1)) < 0.03


def test_transforms_match_torch():
    x = R.standard_normal((2, 6))
    for M, Tm in ((torch, TD.transforms), (tg, T)):
        pass
    res = []
    for M, Tm in ((torch, TD.transforms), (tg, T)):
        xt = M.tensor(x, requires_grad=True)
        t = Tm.CorrCholeskyTransform()
        y = t(xt)
        ld = t.log_abs_det_jacobian(xt, y)
        back = t.inv(y)
        (ld.sum() + (y * y).sum()).backward()
        pd = Tm.PositiveDefiniteTransform()
        a = M.tensor(R.standard_normal((3, 3)) if M is torch else res[0][5].numpy())
        res.append([y, ld, back, xt.grad, pd(a), a, pd.inv(pd(a))])
    for a, b in zip(*res):
        _close(a, b)
    assert T.CorrCholeskyTransform().forward_shape((4, 6)) == (4, 4, 4)
    assert T.CorrCholeskyTransform().inverse_shape((4, 4, 4)) == (4, 6)
    with pytest.raises(ValueError, match="lower-diagonal"):
        T.CorrCholeskyTransform().forward_shape((5,))


def test_cat_and_stack_transforms_match_torch():
    x = R.uniform(0.1, 0.9, (3, 4))
    res = []
    for M, Tm, C in ((torch, TD.transforms, TD.constraints), (tg, T, D.constraints)):
        xt = M.tensor(x, requires_grad=True)
        cat = Tm.CatTransform([Tm.ExpTransform(), Tm.SigmoidTransform().inv, Tm.AffineTransform(1.0, 3.0)], dim=1,
                              lengths=[2, 1, 1])
        stack = Tm.StackTransform([Tm.ExpTransform(), Tm.AffineTransform(0.0, -2.0), Tm.SigmoidTransform()], dim=0)
        y1, y2 = cat(xt), stack(xt)
        l1, l2 = cat.log_abs_det_jacobian(xt, y1), stack.log_abs_det_jacobian(xt, y2)
        (y1.sum() + y2.sum() + l1.sum() + l2.sum()).backward()
        checks = [cat.domain.check(xt), cat.codomain.check(y1), stack.codomain.check(y2),
                  C.cat([C.positive, C.unit_interval], 1, [3, 1]).check(xt),
                  C.stack([C.positive, C.real, C.greater_than(0.5)], 0).check(xt)]
        res.append([y1, y2, l1, l2, cat.inv(y1), stack.inv(y2), xt.grad] + [c.numpy() for c in checks]
                   + [cat.bijective, cat.event_dim, stack.bijective])
    for a, b in zip(*res):
        if isinstance(a, (bool, int)):
            assert a == b
        else:
            _close(a, b)
    with pytest.raises(ValueError, match="expected size"):
        T.CatTransform([T.ExpTransform()], dim=0)(tg.zeros(3))


class _Exp(D.ExponentialFamily):
    """Exponential(rate) written as an exponential family: theta = -rate, F = -log(-theta)."""

    def __init__(self, rate):
        self.rate = rate
        super().__init__(tuple(rate.shape))

    @property
    def _natural_params(self):
        return (-self.rate,)

    def _log_normalizer(self, x):
        return -(-x).log()

    @property
    def _mean_carrier_measure(self):
        return 0


def test_exponential_family_entropy_by_bregman():
    rate = tg.tensor([0.5, 2.0, 7.0], dtype=tg.float64, requires_grad=True)
    ent = _Exp(rate).entropy()
    _close(torch.distributions.Exponential(torch.tensor([0.5, 2.0, 7.0], dtype=torch.float64)).entropy(), ent)
    ent.sum().backward()
    _close(-1 / np.array([0.5, 2.0, 7.0]), rate.grad)
    assert issubclass(D.ExponentialFamily, D.Distribution)


@pytest.mark.parametrize("param", ["covariance_matrix", "precision_matrix", "scale_tril"])
def test_wishart_matches_torch(param):
    A = R.standard_normal((2, 3, 3))
    S = A @ np.swapaxes(A, -1, -2) + 3 * np.eye(3)
    value = torch.distributions.Wishart(torch.tensor(6.0, dtype=torch.float64),
                                        covariance_matrix=torch.tensor(S[0])).sample((4,)).unsqueeze(1)
    arg = {"covariance_matrix": S, "precision_matrix": np.linalg.inv(S), "scale_tril": np.linalg.cholesky(S)}[param]
    res = []
    for M, Dm in ((torch, TD), (tg, D)):
        df = M.tensor([4.5, 7.0], dtype=M.float64, requires_grad=True)
        a = M.tensor(arg, requires_grad=True)
        d = Dm.Wishart(df, **{param: a})
        lp = d.log_prob(M.tensor(value.numpy()))
        out = [lp, d.entropy(), d.mean, d.variance, d.mode, d.precision_matrix]
        (lp.sum() + out[1].sum()).backward()
        # scale_tril: only its lower triangle is read; PyTorch's cholesky_solve still sends
        # gradient to the upper one, tapegrad gives the true derivative (zero there)
        ga = a.grad.tril() if param == "scale_tril" else a.grad
        res.append(out + [df.grad, ga])
        raw = a.grad
    for a, b in zip(*res):
        _close(a, b, 1e-8)
    if param == "scale_tril":
        assert not np.triu(raw.numpy(), 1).any()  # raw: tapegrad's, the last one computed
    tg.manual_seed(0)  # a statistical check: its draws must not depend on the tests run before it
    s = D.Wishart(tg.tensor(8.0, dtype=tg.float64), covariance_matrix=tg.tensor(S[0])).rsample((4000,)).numpy()
    np.testing.assert_allclose(s.mean(0), 8 * S[0], rtol=0.1, atol=0.5)
    with pytest.raises(ValueError, match="df"):
        D.Wishart(tg.tensor(1.0), covariance_matrix=tg.eye(3))
