"""optim.swap_in_optimizer_params_and_state against PyTorch: the step inside moves the swapped-in
parameters and state exactly as torch's, and the live optimizer comes back untouched."""
import numpy as np
import pytest

import tapegrad as tg

R = np.random.default_rng(5)
W, B, X = R.standard_normal((3, 4)), R.standard_normal(3), R.standard_normal((5, 4))


def _arrays(state):
    return {k: {n: np.array(v.numpy() if hasattr(v, "numpy") else v) for n, v in s.items()} for k, s in state.items()}


def _run(M, opt_name, kw):
    """One live step, then a step on swapped-in copies with lr 0.5; returns the swapped-in parameters
    and state after it, having checked that the live ones did not move."""
    lin = M.nn.Linear(4, 3).double()
    with M.no_grad():
        lin.weight.copy_(M.tensor(W))
        lin.bias.copy_(M.tensor(B))
    opt = getattr(M.optim, opt_name)(lin.parameters(), lr=0.1, **kw)
    (lin(M.tensor(X)) ** 2).sum().backward()
    opt.step()
    live = [p.detach().numpy().copy() for p in lin.parameters()]
    live_state = _arrays(opt.state_dict()["state"])
    shadow = {n: p.detach().clone().requires_grad_(True) for n, p in lin.named_parameters()}
    for p in shadow.values():
        p.grad = M.ones_like(p) * 0.3
    saved = opt.state_dict()
    saved = {"state": {k: {n: (v.clone() if hasattr(v, "clone") else v) for n, v in s.items()}
                       for k, s in saved["state"].items()},
             "param_groups": [dict(g, lr=0.5) for g in saved["param_groups"]]}
    with M.optim.swap_in_optimizer_params_and_state(opt, shadow, saved):
        assert opt.param_groups[0]["lr"] == 0.5 and opt.param_groups[0]["params"][0] is shadow["weight"]
        opt.step()
    assert opt.param_groups[0]["lr"] == 0.1 and opt.param_groups[0]["params"][0] is lin.weight
    for a, p in zip(live, lin.parameters()):
        np.testing.assert_array_equal(p.detach().numpy(), a)
    now = _arrays(opt.state_dict()["state"])
    for k in live_state:
        for n in live_state[k]:
            np.testing.assert_array_equal(now[k][n], live_state[k][n])
    return [p.detach().numpy() for p in shadow.values()], _arrays(saved["state"])


@pytest.mark.parametrize("opt_name,kw", [("SGD", {"momentum": 0.9}), ("Adam", {}), ("AdamW", {"weight_decay": 0.1}),
                                         ("Adam", {"foreach": False})])
def test_swap_in_matches_torch(opt_name, kw):
    torch = pytest.importorskip("torch")
    got_p, got_s = _run(tg, opt_name, kw)
    want_p, want_s = _run(torch, opt_name, kw)
    for a, b in zip(got_p, want_p):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)
    assert sorted(got_s) == sorted(want_s)
    for k in want_s:
        for n in want_s[k]:  # the state's tensors moved in place, so the caller's dict sees the step
            np.testing.assert_allclose(got_s[k][n], want_s[k][n], rtol=1e-12, atol=1e-14)


def test_swap_in_checks_as_torch():
    lin = tg.nn.Linear(2, 2)
    opt = tg.optim.Adam(lin.parameters())
    params = dict(lin.named_parameters())
    with pytest.raises(RuntimeError, match="initialized optimizer state"):
        with tg.optim.swap_in_optimizer_params_and_state(opt, params, opt.state_dict()):
            pass
    lin(tg.ones(1, 2)).sum().backward()
    opt.step()
    sd = opt.state_dict()
    bad = [({"state": sd["state"], "param_groups": []}, "number of parameter groups"),
           ({"state": sd["state"], "param_groups": [dict(sd["param_groups"][0], extra=1)]}, "Keys only in swap-in"),
           ({"state": {**sd["state"], 7: {}}, "param_groups": sd["param_groups"]}, "extra keys"),
           ({"state": sd["state"], "param_groups": [dict(sd["param_groups"][0], params=[0])]}, "number of params")]
    for state, msg in bad:
        with pytest.raises(RuntimeError, match=msg):
            with tg.optim.swap_in_optimizer_params_and_state(opt, params, state):
                pass
    assert opt.param_groups[0]["params"][0] is lin.weight
    with pytest.raises(ValueError, match="inside"):  # an error inside the block still restores the optimizer
        with tg.optim.swap_in_optimizer_params_and_state(opt, {n: p.detach().clone() for n, p in params.items()}, sd):
            raise ValueError("inside")
    assert opt.param_groups[0]["params"][0] is lin.weight and opt.state[lin.weight]
