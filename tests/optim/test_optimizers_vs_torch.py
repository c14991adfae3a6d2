"""The optimizers PyTorch scripts use beyond SGD/Adam, step by step against torch.optim on the same
parameters and gradients (float64), and L-BFGS with a closure on the same objective."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")

import tapegrad as tg  # noqa: E402
import tapegrad.optim as optim  # noqa: E402

STEPS = 8
CASES = [
    ("NAdam", dict(lr=0.05)),
    ("NAdam", dict(lr=0.05, weight_decay=0.1, momentum_decay=0.01, maximize=True)),
    ("NAdam", dict(lr=0.05, weight_decay=0.1, decoupled_weight_decay=True, betas=(0.8, 0.99))),
    ("RAdam", dict(lr=0.05)),
    ("RAdam", dict(lr=0.05, betas=(0.9, 0.9), weight_decay=0.1, maximize=True)),  # rho_t > 5 after a few steps
    ("RAdam", dict(lr=0.05, betas=(0.5, 0.8), weight_decay=0.1, decoupled_weight_decay=True)),
    ("Adamax", dict(lr=0.05)),
    ("Adamax", dict(lr=0.05, betas=(0.5, 0.9), weight_decay=0.1, maximize=True)),
    ("Rprop", dict(lr=0.05)),
    ("Rprop", dict(lr=0.05, etas=(0.3, 1.5), step_sizes=(0.01, 0.08), maximize=True)),
    ("ASGD", dict(lr=0.05)),
    ("ASGD", dict(lr=0.05, lambd=0.01, alpha=0.5, t0=3, weight_decay=0.1, maximize=True)),
]


def _trajectory(M, name, kw, p0, grads):
    p = M.nn.Parameter(M.tensor(p0.copy()))
    opt = getattr(M.optim, name)([p], **kw)
    out = []
    for g in grads:
        p.grad = M.tensor(g)
        opt.step()
        out.append(p.detach().numpy().copy())
    return out, opt


@pytest.mark.parametrize("name,kw", CASES, ids=[f"{n}-{i}" for i, (n, _) in enumerate(CASES)])
def test_optimizer_matches_torch(name, kw):
    r = np.random.default_rng(3)
    p0 = r.standard_normal((3, 4))
    # the sign of some entries flips from step to step (Rprop's two branches)
    grads = [r.standard_normal((3, 4)) * (1 if i % 3 else -1) for i in range(STEPS)]
    got, opt = _trajectory(tg, name, kw, p0, grads)
    want, topt = _trajectory(torch, name, kw, p0, grads)
    for step, (a, b) in enumerate(zip(got, want), 1):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12, err_msg=f"step {step}")
    sd, tsd = opt.state_dict(), topt.state_dict()
    assert sorted(sd["state"][0]) == sorted(tsd["state"][0])
    assert sd["param_groups"][0].keys() == tsd["param_groups"][0].keys()
    for k, v in tsd["state"][0].items():
        np.testing.assert_allclose(sd["state"][0][k].numpy(), v.numpy(), rtol=1e-10, atol=1e-12, err_msg=k)
        assert str(sd["state"][0][k].dtype) == str(v.dtype).replace("torch.", "tapegrad."), k


def _rosenbrock(M, x):
    return (1 - x[0]) ** 2 + 100 * (x[1] - x[0] ** 2) ** 2 + (x[2:] ** 2).sum()


@pytest.mark.parametrize("kw", [dict(), dict(line_search_fn="strong_wolfe"), dict(lr=0.5, history_size=3, max_iter=7),
                                dict(line_search_fn="strong_wolfe", history_size=2, max_iter=30, tolerance_change=1e-12)])
def test_lbfgs_matches_torch(kw):
    res = {}
    for M in (torch, tg):
        x = M.nn.Parameter(M.tensor([-1.2, 1.0, 0.5, -0.3], dtype=M.float64))
        opt = M.optim.LBFGS([x], **kw)

        def closure():
            opt.zero_grad()
            loss = _rosenbrock(M, x)
            loss.backward()
            return loss
        losses = [opt.step(closure).item() for _ in range(4)]
        st = opt.state[x]
        res[M] = (x.detach().numpy().copy(), losses, st["func_evals"], st["n_iter"])
    np.testing.assert_allclose(res[tg][0], res[torch][0], rtol=1e-9, atol=1e-9)  # near the optimum: rounding
    np.testing.assert_allclose(res[tg][1], res[torch][1], rtol=1e-9, atol=1e-12)
    assert res[tg][2:] == res[torch][2:]


def test_lbfgs_resume_from_checkpoint_is_bit_exact(tmp_path):
    def make():
        x = tg.nn.Parameter(tg.tensor([-1.2, 1.0, 0.5, -0.3], dtype=tg.float64))
        opt = optim.LBFGS([x], line_search_fn="strong_wolfe", max_iter=3, history_size=4)

        def closure():
            opt.zero_grad()
            loss = _rosenbrock(tg, x)
            loss.backward()
            return loss
        return x, opt, closure

    x, opt, closure = make()
    for _ in range(6):
        opt.step(closure)
    straight = x.detach().numpy().copy()
    x, opt, closure = make()
    for _ in range(3):
        opt.step(closure)
    tg.save({"x": x.detach(), "opt": opt.state_dict()}, tmp_path / "ck.h5")
    ck = tg.load(tmp_path / "ck.h5")
    x2, opt2, closure2 = make()
    with tg.no_grad():
        x2.copy_(ck["x"])
    opt2.load_state_dict(ck["opt"])
    for _ in range(3):
        opt2.step(closure2)
    assert np.array_equal(x2.detach().numpy(), straight)
    with pytest.raises(ValueError, match="parameter groups"):
        optim.LBFGS([{"params": [x]}, {"params": [x2]}])
    with pytest.raises(RuntimeError, match="closure"):
        opt.step(None)
