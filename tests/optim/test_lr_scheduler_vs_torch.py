"""CyclicLR and OneCycleLR against torch.optim.lr_scheduler over whole cycles: learning rates
and the momentum / beta1 they cycle, and a resume from state_dict in the middle."""
import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import tapegrad as tg  # noqa: E402


class Halving:  # a callable object: its state travels in state_dict, as PyTorch's
    def __init__(self):
        self.base = 0.5

    def __call__(self, x):
        return self.base ** x


MAKERS = {
    "triangular": (lambda o, S: S.CyclicLR(o, 0.01, 0.1, step_size_up=4), "SGD"),
    "triangular2": (lambda o, S: S.CyclicLR(o, [0.01, 0.02], 0.1, step_size_up=3, step_size_down=5,
                                            mode="triangular2"), "SGD"),
    "exp_range": (lambda o, S: S.CyclicLR(o, 0.01, [0.1, 0.2], step_size_up=2, mode="exp_range", gamma=0.9,
                                          base_momentum=0.7, max_momentum=0.95), "SGD"),
    "scale_fn": (lambda o, S: S.CyclicLR(o, 0.01, 0.1, step_size_up=3, scale_fn=Halving(), scale_mode="iterations",
                                         cycle_momentum=False), "SGD"),
    "cyclic_adam": (lambda o, S: S.CyclicLR(o, 0.001, 0.01, step_size_up=3), "Adam"),
    "onecycle": (lambda o, S: S.OneCycleLR(o, 0.1, total_steps=30), "SGD"),
    "onecycle_3phase_linear": (lambda o, S: S.OneCycleLR(o, [0.1, 0.2], epochs=3, steps_per_epoch=10, pct_start=0.2,
                                                         anneal_strategy="linear", three_phase=True), "SGD"),
    "onecycle_adam": (lambda o, S: S.OneCycleLR(o, 0.01, total_steps=30, div_factor=10.0), "Adam"),
}


def _opt(M, kind):
    groups = [{"params": [M.zeros(1, requires_grad=True)]}, {"params": [M.zeros(1, requires_grad=True)]}]
    return M.optim.SGD(groups, lr=0.1, momentum=0.9) if kind == "SGD" else M.optim.Adam(groups, lr=0.1)


def _run(M, name, steps=29, resume_at=None):
    make, kind = MAKERS[name]
    opt = _opt(M, kind)
    sched = make(opt, M.optim.lr_scheduler)
    out = []
    for i in range(steps):
        if i == resume_at:  # a fresh optimizer and scheduler from the saved states
            osd, ssd = opt.state_dict(), sched.state_dict()
            opt = _opt(M, kind)
            sched = make(opt, M.optim.lr_scheduler)
            opt.load_state_dict(osd)
            sched.load_state_dict(ssd)
        opt.step()
        sched.step()
        for g in opt.param_groups:
            out.append((g["lr"], g["momentum"] if kind == "SGD" else g["betas"][0]))
    out.append(tuple(sched.get_last_lr()))
    return out


@pytest.mark.parametrize("name", sorted(MAKERS))
def test_cyclic_schedulers_match_torch(name):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        want = _run(torch, name)
        got = _run(tg, name)
        resumed = _run(tg, name, resume_at=11)
    np.testing.assert_allclose(np.array(got, dtype=float), np.array(want, dtype=float), rtol=1e-13, atol=1e-15)
    assert resumed == got


def test_cyclic_lr_errors():
    opt = tg.optim.Adagrad([tg.zeros(1, requires_grad=True)])
    with pytest.raises(ValueError, match="momentum"):
        tg.optim.lr_scheduler.CyclicLR(opt, 0.01, 0.1)
    with pytest.raises(ValueError, match="mode is invalid"):
        tg.optim.lr_scheduler.CyclicLR(opt, 0.01, 0.1, mode="sine", cycle_momentum=False)
