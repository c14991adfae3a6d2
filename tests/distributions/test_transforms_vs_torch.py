"""Transforms and biject_to / transform_to against torch.distributions in float64: forward,
inverse, log_abs_det_jacobian (and its gradient), shapes, sign, and which transform each
constraint maps to."""
import numpy as np
import pytest

import tapegrad as tg
import tapegrad.distributions as D

R = np.random.default_rng(5)
X = R.standard_normal((3, 4))
SCALE = R.uniform(0.5, 2.0, (3, 4))


def _transforms(M):
    t = M.distributions.transforms
    return {
        "exp": (t.ExpTransform(), X),
        "sigmoid": (t.SigmoidTransform(), X),
        "tanh": (t.TanhTransform(), X),
        "affine_number": (t.AffineTransform(1.5, -2.0), X),
        "affine_tensor_event": (t.AffineTransform(M.tensor(X[0]), M.tensor(SCALE[0]), event_dim=1), X),
        "power": (t.PowerTransform(M.tensor(SCALE[0])), SCALE),
        "stick_breaking": (t.StickBreakingTransform(), X),
        "compose": (t.ComposeTransform([t.AffineTransform(0.5, 3.0), t.ExpTransform(),
                                        t.PowerTransform(M.tensor(0.5, dtype=M.float64))]), X),
        "compose_event": (t.ComposeTransform([t.AffineTransform(0.0, M.tensor(SCALE), event_dim=1),
                                              t.StickBreakingTransform()]), X),
        "independent": (t.IndependentTransform(t.SigmoidTransform(), 1), X),
        "inverse_of_exp": (t.ExpTransform().inv, np.exp(X)),
        "softplus": (t.SoftplusTransform(), X),
        "reshape": (t.ReshapeTransform((4,), (2, 2)), X),
        "cdf_of_normal": (t.CumulativeDistributionTransform(M.distributions.Normal(M.tensor(X[0]), M.tensor(SCALE[0]))),
                          X),
        "cdf_of_laplace_inverse": (t.CumulativeDistributionTransform(M.distributions.Laplace(0.0, 2.0)).inv,
                                   np.abs(np.tanh(X))),
    }


def _run(M, name):
    transform, x0 = _transforms(M)[name]
    x = M.tensor(x0, requires_grad=True)
    y = transform(x)
    x_back = transform.inv(y.detach())
    ladj = transform.log_abs_det_jacobian(x, y)
    (g,) = M.autograd.grad(ladj.sum() + y.sum(), [x])
    return {"y": y.detach().numpy(), "x_back": x_back.detach().numpy(), "ladj": ladj.detach().numpy(),
            "grad": g.numpy(), "fwd_shape": tuple(transform.forward_shape((5, 3, 4))),
            "inv_shape": tuple(transform.inverse_shape(tuple(y.shape))),
            "events": (transform.domain.event_dim, transform.codomain.event_dim, transform.bijective)}


@pytest.mark.parametrize("name", sorted(_transforms(tg)))
def test_transform_matches_torch(name):
    torch = pytest.importorskip("torch")
    got, want = _run(tg, name), _run(torch, name)
    for k in want:
        if isinstance(want[k], np.ndarray):
            np.testing.assert_allclose(got[k], want[k], rtol=1e-12, atol=1e-12, err_msg=k)
        else:
            assert got[k] == want[k], k
    np.testing.assert_allclose(got["x_back"], _transforms(tg)[name][1], rtol=1e-9, atol=1e-12)  # bijective


def test_softmax_and_lower_cholesky_transforms():
    torch = pytest.importorskip("torch")
    for Tg, Tt in ((D.transforms.SoftmaxTransform, torch.distributions.transforms.SoftmaxTransform),
                   (D.transforms.LowerCholeskyTransform, torch.distributions.transforms.LowerCholeskyTransform)):
        x = X[:, :3].copy() if Tg is D.transforms.SoftmaxTransform else X[:3, :3].copy()
        y_tg, y_t = Tg()(tg.tensor(x)), Tt()(torch.tensor(x))
        np.testing.assert_allclose(y_tg.numpy(), y_t.numpy(), rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(Tg().inv(y_tg).numpy(), Tt().inv(y_t).numpy(), rtol=1e-12, atol=1e-15)
        assert not Tg().bijective and Tg().codomain.check(y_tg).all()


def test_caching_and_equality():
    t = D.transforms.ExpTransform(cache_size=1)
    x = tg.tensor([0.5, 1.0], dtype=tg.float64)
    y = t(x)
    assert t.inv(y) is x and t(x) is y
    assert D.transforms.ExpTransform() == D.transforms.ExpTransform() and t.inv.inv is t
    assert D.transforms.AffineTransform(1.0, 2.0) == D.transforms.AffineTransform(1.0, 2.0)
    assert D.transforms.AffineTransform(1.0, 2.0) != D.transforms.AffineTransform(1.0, 3.0)
    assert D.transforms.AffineTransform(1.0, -2.0).sign == -1 and D.transforms.ExpTransform().inv.sign == 1
    with pytest.raises(ValueError, match="cache_size"):
        D.transforms.ExpTransform(cache_size=2)


CONSTRAINTS = ["real", "positive", "nonnegative", "unit_interval", "simplex", "real_vector",
               ("greater_than", 2.0), ("less_than", -1.0), ("interval", -1.0, 3.0), ("half_open_interval", 0.0, 2.0),
               ("independent_positive", 1), "lower_cholesky"]


def _constraint(C, spec):
    if isinstance(spec, str):
        return getattr(C, spec)
    if spec[0] == "independent_positive":
        return C.independent(C.positive, spec[1])
    return getattr(C, spec[0])(*spec[1:])


@pytest.mark.parametrize("spec", CONSTRAINTS, ids=str)
def test_biject_to_and_transform_to_match_torch(spec):
    torch = pytest.importorskip("torch")
    x = X[:3, :3].copy()
    for reg in ("biject_to", "transform_to"):
        outs = []
        for M in (torch, tg):
            c = _constraint(M.distributions.constraints, spec)
            try:
                t = getattr(M.distributions, reg)(c)
            except NotImplementedError:
                outs.append(None)
                continue
            xt = M.tensor(x, requires_grad=True)
            y = t(xt)
            assert bool(c.check(y).all()), (reg, spec)
            ladj = t.log_abs_det_jacobian(xt, y).detach().numpy() if t.bijective else None
            outs.append((type(t).__name__, y.detach().numpy(), ladj))
        if outs[0] is None:
            assert outs[1] is None, (reg, spec)
            continue
        assert outs[0][0] == outs[1][0], (reg, spec)
        np.testing.assert_allclose(outs[1][1], outs[0][1], rtol=1e-12, atol=1e-15)
        if outs[0][2] is not None:
            np.testing.assert_allclose(outs[1][2], outs[0][2], rtol=1e-12, atol=1e-15)
