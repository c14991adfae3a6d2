"""Optimizers step by step against the published update rules (written out in numpy), over
several steps and with their options; param groups, zero_grad, state_dict and exact resume."""
import math
import time

import numpy as np
import pytest

import tapegrad
import tapegrad.nn as nn
import tapegrad.optim as optim

STEPS = 5


def grads_for(shape, steps, seed=0):
    r = np.random.default_rng(seed)
    return [r.standard_normal(shape) for _ in range(steps)]


def run(cls, kw, p0, grads):
    p = nn.Parameter(tapegrad.tensor(p0.copy()))
    opt = cls([p], **kw)
    out = []
    for g in grads:
        p.grad = tapegrad.tensor(g)
        opt.step()
        out.append(p.detach().numpy().copy())
    return out


# ---------------------------------------------------------------- numpy references (PyTorch docs' algorithms)
def ref_sgd(p, grads, lr, momentum=0, dampening=0, weight_decay=0, nesterov=False, maximize=False):
    b, out = None, []
    for g in grads:
        g = -g if maximize else g
        g = g + weight_decay * p
        if momentum:
            b = g.copy() if b is None else momentum * b + (1 - dampening) * g
            g = g + momentum * b if nesterov else b
        p = p - lr * g
        out.append(p)
    return out


def ref_adam(p, grads, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, amsgrad=False, maximize=False,
             decoupled=False):
    b1, b2 = betas
    m = v = vmax = np.zeros_like(p)
    out = []
    for t, g in enumerate(grads, 1):
        g = -g if maximize else g
        if decoupled:
            p = p * (1 - lr * weight_decay)
        else:
            g = g + weight_decay * p
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        vmax = np.maximum(vmax, v)
        vh = vmax if amsgrad else v
        p = p - lr / (1 - b1 ** t) * m / (np.sqrt(vh) / math.sqrt(1 - b2 ** t) + eps)
        out.append(p)
    return out


def ref_adagrad(p, grads, lr=1e-2, lr_decay=0, weight_decay=0, initial_accumulator_value=0, eps=1e-10,
                maximize=False):
    s = np.full_like(p, initial_accumulator_value)
    out = []
    for t, g in enumerate(grads, 1):
        g = (-g if maximize else g) + weight_decay * p
        clr = lr / (1 + (t - 1) * lr_decay)
        s = s + g * g
        p = p - clr * g / (np.sqrt(s) + eps)
        out.append(p)
    return out


def ref_adadelta(p, grads, lr=1.0, rho=0.9, eps=1e-6, weight_decay=0, maximize=False):
    v = u = np.zeros_like(p)
    out = []
    for g in grads:
        g = (-g if maximize else g) + weight_decay * p
        v = rho * v + (1 - rho) * g * g
        delta = np.sqrt(u + eps) / np.sqrt(v + eps) * g
        u = rho * u + (1 - rho) * delta * delta
        p = p - lr * delta
        out.append(p)
    return out


def ref_rmsprop(p, grads, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0, momentum=0, centered=False,
                maximize=False):
    v = a = b = np.zeros_like(p)
    out = []
    for g in grads:
        g = (-g if maximize else g) + weight_decay * p
        v = alpha * v + (1 - alpha) * g * g
        if centered:
            a = alpha * a + (1 - alpha) * g
            avg = np.sqrt(v - a * a) + eps
        else:
            avg = np.sqrt(v) + eps
        if momentum > 0:
            b = momentum * b + g / avg
            p = p - lr * b
        else:
            p = p - lr * g / avg
        out.append(p)
    return out


CASES = [
    (optim.SGD, ref_sgd, dict(lr=0.1)),
    (optim.SGD, ref_sgd, dict(lr=0.1, momentum=0.9)),
    (optim.SGD, ref_sgd, dict(lr=0.05, momentum=0.9, dampening=0.3, weight_decay=0.01)),
    (optim.SGD, ref_sgd, dict(lr=0.05, momentum=0.8, nesterov=True, weight_decay=0.1, maximize=True)),
    (optim.Adam, ref_adam, dict(lr=0.01)),
    (optim.Adam, ref_adam, dict(lr=0.01, betas=(0.8, 0.9), weight_decay=0.1, amsgrad=True)),
    (optim.Adam, ref_adam, dict(lr=0.01, maximize=True, eps=1e-3)),
    (optim.AdamW, lambda p, g, **kw: ref_adam(p, g, decoupled=True, **kw), dict(lr=0.01, weight_decay=0.1)),
    (optim.AdamW, lambda p, g, **kw: ref_adam(p, g, decoupled=True, **kw),
     dict(lr=0.01, weight_decay=0.5, amsgrad=True, maximize=True)),
    (optim.Adagrad, ref_adagrad, dict(lr=0.1)),
    (optim.Adagrad, ref_adagrad, dict(lr=0.1, lr_decay=0.1, weight_decay=0.05, initial_accumulator_value=0.5,
                                      maximize=True)),
    (optim.Adadelta, ref_adadelta, dict()),
    (optim.Adadelta, ref_adadelta, dict(lr=0.5, rho=0.8, weight_decay=0.1, maximize=True)),
    (optim.RMSprop, ref_rmsprop, dict(lr=0.01)),
    (optim.RMSprop, ref_rmsprop, dict(lr=0.01, momentum=0.9, centered=True, weight_decay=0.05)),
    (optim.RMSprop, ref_rmsprop, dict(lr=0.01, alpha=0.9, centered=True, maximize=True)),
]


@pytest.mark.parametrize("cls,ref,kw", CASES, ids=[f"{c.__name__}-{i}" for i, (c, _, _) in enumerate(CASES)])
def test_update_rule_matches_reference(cls, ref, kw):
    p0 = np.random.default_rng(1).standard_normal((3, 4))
    grads = grads_for((3, 4), STEPS)
    got = run(cls, kw, p0, grads)
    want = ref(p0, grads, **kw)
    for step, (a, b) in enumerate(zip(got, want), 1):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14, err_msg=f"step {step}")


def test_update_is_in_place_without_tape():
    lin = nn.Linear(3, 2)
    w = lin.weight
    data = w._data
    opt = optim.Adam(lin.parameters(), lr=0.1)
    lin(tapegrad.randn(4, 3)).sum().backward()
    v = w._version
    opt.step()
    assert lin.weight is w and w._data is data and w.grad_fn is None and w.is_leaf
    assert w._version == v + 1


def test_param_groups_zero_grad_and_add_param_group():
    a, b, c = (nn.Parameter(tapegrad.ones(2)) for _ in range(3))
    opt = optim.SGD([{"params": [a]}, {"params": [b], "lr": 0.5}], lr=0.1, momentum=0.9)
    assert opt.param_groups[0]["lr"] == 0.1 and opt.param_groups[1]["lr"] == 0.5
    assert opt.param_groups[1]["momentum"] == 0.9
    for p in (a, b):
        p.grad = tapegrad.ones(2)
    opt.step()
    np.testing.assert_allclose(a.detach().numpy(), 0.9)
    np.testing.assert_allclose(b.detach().numpy(), 0.5)
    opt.zero_grad(set_to_none=False)
    assert np.all(a.grad.numpy() == 0)
    opt.zero_grad()
    assert a.grad is None
    opt.add_param_group({"params": c, "lr": 1.0})
    assert len(opt.param_groups) == 3 and opt.param_groups[2]["momentum"] == 0.9
    with pytest.raises(ValueError, match="more than one parameter group"):
        opt.add_param_group({"params": [a]})
    with pytest.raises(ValueError, match="empty parameter list"):
        optim.Adam([])
    with pytest.raises(ValueError, match="Invalid learning rate"):
        optim.Adam([a], lr=-1)
    assert "Parameter Group 0" in repr(opt)


def _train(model, opt, steps, seed):
    r = np.random.default_rng(seed)
    for _ in range(steps):
        x = tapegrad.tensor(r.standard_normal((8, 4)).astype(np.float32))
        y = tapegrad.tensor(r.integers(0, 3, 8))
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()


def _make(cls, **kw):
    tapegrad.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.BatchNorm1d(8), nn.Linear(8, 3))
    return model, cls(model.parameters(), **kw)


@pytest.mark.parametrize("cls,kw", [(optim.SGD, dict(lr=0.1, momentum=0.9, nesterov=True)),
                                    (optim.Adam, dict(lr=0.01, amsgrad=True)), (optim.AdamW, dict(lr=0.01)),
                                    (optim.Adagrad, dict(lr=0.1)), (optim.Adadelta, dict()),
                                    (optim.RMSprop, dict(lr=0.01, momentum=0.5, centered=True)),
                                    (optim.NAdam, dict(lr=0.01)), (optim.RAdam, dict(lr=0.01, betas=(0.9, 0.9))),
                                    (optim.Adamax, dict(lr=0.01)), (optim.Rprop, dict(lr=0.01)),
                                    (optim.ASGD, dict(lr=0.01, t0=2))])
def test_resume_from_checkpoint_reproduces_trajectory(tmp_path, cls, kw):
    model, opt = _make(cls, **kw)
    _train(model, opt, 3, seed=1)
    _train(model, opt, 3, seed=2)
    straight = {k: v.numpy().copy() for k, v in model.state_dict().items()}

    model, opt = _make(cls, **kw)
    _train(model, opt, 3, seed=1)
    path = tmp_path / "ckpt.h5"
    tapegrad.save({"model": model.state_dict(), "optimizer": opt.state_dict()}, path)
    model2, opt2 = _make(cls, **{**kw, "lr": 123.0})  # hyper-parameters come back from the checkpoint
    ck = tapegrad.load(path)
    model2.load_state_dict(ck["model"])
    opt2.load_state_dict(ck["optimizer"])
    assert opt2.param_groups[0]["lr"] == kw.get("lr", opt.param_groups[0]["lr"])
    sd1, sd2 = opt.state_dict(), opt2.state_dict()
    assert sd1["param_groups"] == sd2["param_groups"]
    for i, st in sd1["state"].items():
        for k, v in st.items():
            assert np.array_equal(v.numpy(), sd2["state"][i][k].numpy()) and v.dtype == sd2["state"][i][k].dtype
    _train(model2, opt2, 3, seed=2)
    for k, v in model2.state_dict().items():
        assert np.array_equal(v.numpy(), straight[k]), k  # bit-exact


def test_optimizer_state_dict_format_and_errors():
    model, opt = _make(optim.Adam, lr=0.01)
    _train(model, opt, 1, seed=0)
    sd = opt.state_dict()
    assert sorted(sd["state"]) == list(range(len(list(model.parameters()))))
    assert sd["param_groups"][0]["params"] == list(range(6))
    assert sorted(sd["state"][0]) == ["exp_avg", "exp_avg_sq", "step"] and sd["state"][0]["step"].item() == 1
    other = optim.Adam([nn.Parameter(tapegrad.ones(1))])
    with pytest.raises(ValueError, match="doesn't match the size"):
        other.load_state_dict(sd)


def test_adam_step_time_over_lenet_parameters():
    """An Adam step over LeNet's 431k parameters is small next to a training step (~10+ ms)."""
    shapes = [(20, 1, 5, 5), (20,), (50, 20, 5, 5), (50,), (500, 800), (500,), (10, 500), (10,)]
    params = [nn.Parameter(tapegrad.randn(*s) * 0.01) for s in shapes]
    assert sum(p.numel() for p in params) == 431080
    for p in params:
        p.grad = tapegrad.randn(*p.shape)
    opt = optim.Adam(params, lr=1e-3)
    opt.step()
    t0 = time.perf_counter()
    n = 20
    for _ in range(n):
        opt.step()
    per_step = (time.perf_counter() - t0) / n
    assert per_step < 0.01, f"Adam step took {per_step * 1e3:.2f} ms"


@pytest.mark.parametrize("make", [lambda ps: optim.SGD(ps, lr=0.1), lambda ps: optim.Adam(ps, lr=0.1)])
def test_a_parameter_listed_twice_is_stepped_once(make):
    """PyTorch warns and keeps both copies, so its step() moves such a parameter twice (SGD: by
    2 * lr * grad); tapegrad warns and keeps it once: the same step as listing it once."""
    p, q = tapegrad.ones(2, requires_grad=True), tapegrad.ones(2, requires_grad=True)
    with pytest.warns(UserWarning, match="duplicate parameters; each is kept once"):
        opt = make([p, p])
    ref = make([q])
    assert len(opt.param_groups[0]["params"]) == 1
    for _ in range(3):
        p.grad, q.grad = tapegrad.ones(2), tapegrad.ones(2)
        opt.step()
        ref.step()
    np.testing.assert_array_equal(p.detach().numpy(), q.detach().numpy())


def test_bilinear_refuses_no_input_features():
    with pytest.raises(ValueError, match=r"Bilinear: in1_features must be > 0, but got \(in1_features=0\)"):
        nn.Bilinear(0, 2, 3)
