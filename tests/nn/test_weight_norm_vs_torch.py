"""nn.utils.weight_norm (hooks), nn.utils.parametrizations.weight_norm / spectral_norm and
nn.utils.parametrize against PyTorch: forward values, gradients of the new parameters,
state_dict keys, loading PyTorch's state_dict, and removal."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")

import tapegrad as tg  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:.*weight_norm. is deprecated:FutureWarning")  # torch's own
R = np.random.default_rng(0)


def _to(M, sd):
    return {k: M.tensor(v.detach().numpy().copy()) for k, v in sd.items()}


def _pair(make, wrap):
    """The same module in both libraries (tapegrad's loads torch's initial weights), each wrapped."""
    tm = make(torch).double()
    gm = make(tg).double()
    gm.load_state_dict(_to(tg, tm.state_dict()))
    return wrap(torch, tm), wrap(tg, gm)


MAKERS = {
    "linear": (lambda M: M.nn.Linear(4, 3), (5, 4)),
    "conv": (lambda M: M.nn.Conv2d(2, 3, 3), (2, 2, 5, 5)),
    "convT": (lambda M: M.nn.ConvTranspose2d(2, 3, 3), (2, 2, 4, 4)),
}


def _compare(tm, gm, shape, steps=1):
    x = R.standard_normal(shape)
    for _ in range(steps):
        outs = {}
        for M, m in ((torch, tm), (tg, gm)):
            y = m(M.tensor(x))
            (y ** 2).sum().backward()
            outs[M] = (y.detach().numpy(), {n: p.grad.numpy().copy() for n, p in m.named_parameters()})
            for p in m.parameters():
                p.grad = None
        np.testing.assert_allclose(outs[tg][0], outs[torch][0], rtol=1e-10, atol=1e-12)
        assert outs[tg][1].keys() == outs[torch][1].keys()
        for n in outs[torch][1]:
            np.testing.assert_allclose(outs[tg][1][n], outs[torch][1][n], rtol=1e-9, atol=1e-12, err_msg=n)
    assert sorted(gm.state_dict()) == sorted(tm.state_dict())
    for k, v in tm.state_dict().items():
        np.testing.assert_allclose(gm.state_dict()[k].numpy(), v.numpy(), rtol=1e-10, atol=1e-12, err_msg=k)


@pytest.mark.parametrize("dim", [0, 1, None])
@pytest.mark.parametrize("kind", sorted(MAKERS))
def test_weight_norm_hooks_match_torch(kind, dim):
    make, shape = MAKERS[kind]
    tm, gm = _pair(make, lambda M, m: M.nn.utils.weight_norm(m, dim=dim))
    _compare(tm, gm, shape)
    for M, m in ((torch, tm), (tg, gm)):
        M.nn.utils.remove_weight_norm(m)
    _compare(tm, gm, shape)


@pytest.mark.parametrize("dim", [0, 1, None])
@pytest.mark.parametrize("kind", sorted(MAKERS))
def test_parametrized_weight_norm_matches_torch(kind, dim):
    make, shape = MAKERS[kind]
    tm, gm = _pair(make, lambda M, m: M.nn.utils.parametrizations.weight_norm(m, dim=dim))
    _compare(tm, gm, shape)
    assert type(gm).__name__ == type(tm).__name__ and isinstance(gm, type(gm).__mro__[1])
    assert tg.nn.utils.parametrize.is_parametrized(gm, "weight")
    with torch.no_grad():  # assigning the weight goes through right_inverse
        tm.weight = torch.ones_like(tm.weight)
    with tg.no_grad():
        gm.weight = tg.ones(*gm.weight.shape, dtype=tg.float64)
    _compare(tm, gm, shape)
    for M, m in ((torch, tm), (tg, gm)):
        M.nn.utils.parametrize.remove_parametrizations(m, "weight")
    assert type(gm) is type(make(tg)) and not tg.nn.utils.parametrize.is_parametrized(gm)
    _compare(tm, gm, shape)


@pytest.mark.parametrize("dim", [0, None])
@pytest.mark.parametrize("kind", sorted(MAKERS))
def test_parametrized_weight_norm_loads_hook_checkpoints(kind, dim):
    # locuslab/TCN-style checkpoints hold weight_g / weight_v (the hook-based weight_norm); the
    # parametrized module takes them as original0 / original1, every key accounted for
    make, shape = MAKERS[kind]
    sd = torch.nn.utils.weight_norm(make(torch).double(), dim=dim).state_dict()
    x = R.standard_normal(shape)
    res = {}
    for M in (torch, tg):
        m = M.nn.utils.parametrizations.weight_norm(make(M).double(), dim=dim)
        keys = m.load_state_dict(_to(M, sd) if M is tg else sd)
        assert list(keys.missing_keys) == [] and list(keys.unexpected_keys) == []
        res[M] = m(M.tensor(x)).detach().numpy(), m.parametrizations.weight.original0.detach().numpy()
    for a, b in zip(res[tg], res[torch]):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(res[tg][1], sd["weight_g"].numpy())


def test_private_load_state_dict_pre_hook_matches_torch():
    seen = {}
    for M in (torch, tg):
        m = M.nn.Linear(2, 2)
        calls = seen[M] = []
        m._register_load_state_dict_pre_hook(lambda sd, prefix, *rest: calls.append((sorted(sd), prefix, len(rest))))
        m._register_load_state_dict_pre_hook(lambda mod, sd, prefix, *rest: calls.append(type(mod).__name__),
                                             with_module=True)
        m.load_state_dict(m.state_dict())
    assert seen[tg] == seen[torch] == [(["bias", "weight"], "", 5), "Linear"]


@pytest.mark.parametrize("kind", sorted(MAKERS))
def test_spectral_norm_matches_torch(kind):
    make, shape = MAKERS[kind]
    tm = torch.nn.utils.parametrizations.spectral_norm(make(torch).double(), n_power_iterations=2)
    gm = tg.nn.utils.parametrizations.spectral_norm(make(tg).double(), n_power_iterations=2)
    gm.load_state_dict(_to(tg, tm.state_dict()))  # the same power-iteration vectors as torch's
    _compare(tm, gm, shape, steps=3)  # training mode: u, v advance at every access
    tm.eval()
    gm.eval()
    _compare(tm, gm, shape)


def test_parametrize_custom_and_errors():
    class Symmetric(tg.nn.Module):
        def forward(self, X):
            return X.triu() + X.triu(1).mT

    lin = tg.nn.Linear(3, 3)
    tg.nn.utils.parametrize.register_parametrization(lin, "weight", Symmetric())
    w = lin.weight.detach().numpy()
    np.testing.assert_array_equal(w, w.T)
    assert "parametrizations.weight.original" in lin.state_dict()
    assert not tg.nn.utils.parametrize.is_parametrized(tg.nn.Linear(3, 3))
    with pytest.raises(ValueError, match="no parameter or buffer"):
        tg.nn.utils.parametrize.register_parametrization(lin, "nope", Symmetric())
    with tg.nn.utils.parametrize.cached():
        assert lin.weight is lin.weight
    with pytest.raises(RuntimeError, match="two weight_norm"):
        tg.nn.utils.weight_norm(tg.nn.utils.weight_norm(tg.nn.Linear(2, 2)))
