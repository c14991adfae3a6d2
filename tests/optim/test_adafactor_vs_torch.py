"""Adafactor step by step against torch.optim.Adafactor (float64): matrices (factored second
moment), batched matrices and vectors, with weight decay and maximize; state_dict layout."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")

import tapegrad as tg  # noqa: E402

CASES = [dict(), dict(lr=0.05, weight_decay=0.1), dict(lr=0.2, beta2_decay=-0.5, eps=(1e-20, 1e-2), d=1.5),
         dict(maximize=True)]


@pytest.mark.parametrize("kw", CASES)
@pytest.mark.parametrize("shape", [(3, 4), (2, 3, 4), (5,)])
def test_adafactor_matches_torch(kw, shape):
    r = np.random.default_rng(1)
    p0 = r.standard_normal(shape)
    grads = [r.standard_normal(shape) for _ in range(6)]
    traj, sds = [], []
    for M in (torch, tg):
        p = M.nn.Parameter(M.tensor(p0.copy()))
        opt = M.optim.Adafactor([p], **kw)
        out = []
        for g in grads:
            p.grad = M.tensor(g)
            opt.step()
            out.append(p.detach().numpy().copy())
        traj.append(out)
        sds.append(opt.state_dict())
    for step, (a, b) in enumerate(zip(*traj), 1):
        np.testing.assert_allclose(b, a, rtol=1e-10, atol=1e-12, err_msg=f"step {step}")
    (tsd, gsd) = sds
    assert sorted(gsd["state"][0]) == sorted(tsd["state"][0])
    for k, v in tsd["state"][0].items():
        np.testing.assert_allclose(gsd["state"][0][k].numpy(), v.numpy(), rtol=1e-10, err_msg=k)


def test_adafactor_rejects_bad_hyperparameters():
    p = [tg.nn.Parameter(tg.zeros(2))]
    for kw, msg in ((dict(lr=-1), "Learning rate"), (dict(beta2_decay=0.5), "beta2_decay"), (dict(d=0.5), "d should"),
                    (dict(weight_decay=-1), "weight_decay")):
        with pytest.raises(ValueError, match=msg):
            tg.optim.Adafactor(p, **kw)
