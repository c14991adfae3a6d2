"""Muon against torch.optim.Muon. PyTorch runs Newton-Schulz in bfloat16 and tapegrad in the
parameter's dtype, so the trajectories agree to bfloat16's precision; the iteration itself is
checked exactly against the same recurrence in float64."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")

import tapegrad as tg  # noqa: E402
from tapegrad.optim.muon import _zeropower_via_newtonschulz  # noqa: E402


@pytest.mark.parametrize("kw", [dict(), dict(lr=0.02, nesterov=False, weight_decay=0.0),
                                dict(lr=0.01, adjust_lr_fn="match_rms_adamw", momentum=0.8)])
@pytest.mark.parametrize("shape", [(4, 6), (6, 4)])
def test_muon_matches_torch_to_bfloat16_precision(kw, shape):
    r = np.random.default_rng(2)
    p0 = r.standard_normal(shape)
    grads = [r.standard_normal(shape) for _ in range(5)]
    traj = []
    for M in (torch, tg):
        p = M.nn.Parameter(M.tensor(p0.copy()))
        opt = M.optim.Muon([p], **kw)
        out = []
        for g in grads:
            p.grad = M.tensor(g)
            opt.step()
            out.append(p.detach().numpy().copy())
        traj.append(out)
        assert sorted(opt.state_dict()["state"][0]) == ["momentum_buffer"]
    lr = kw.get("lr", 1e-3) * (0.2 * 6 ** 0.5 if kw.get("adjust_lr_fn") else 1.5)
    for step, (a, b) in enumerate(zip(*traj), 1):
        np.testing.assert_allclose(b, a, atol=0.05 * lr * step, err_msg=f"step {step}")


def test_newton_schulz_is_the_recurrence_and_orthogonalises():
    g = np.random.default_rng(0).standard_normal((5, 3))
    x = g.T / np.linalg.norm(g)
    for _ in range(5):
        A = x @ x.T
        x = 3.4445 * x + (-4.775 * A + 2.0315 * A @ A) @ x
    np.testing.assert_allclose(_zeropower_via_newtonschulz(g, (3.4445, -4.775, 2.0315), 5, 1e-7), x.T, rtol=1e-12)
    s = np.linalg.svd(_zeropower_via_newtonschulz(g, (3.4445, -4.775, 2.0315), 5, 1e-7), compute_uv=False)
    assert ((s > 0.5) & (s < 1.5)).all()
    with pytest.raises(ValueError, match="2D"):
        tg.optim.Muon([tg.nn.Parameter(tg.zeros(3))])
