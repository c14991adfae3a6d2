"""Learning-rate schedules against their closed forms and PyTorch's documented behaviour."""
import math

import pytest

import tapegrad
import tapegrad.nn as nn
import tapegrad.optim as optim
from tapegrad.optim import lr_scheduler as S


def make_opt(lr=0.1, cls=optim.SGD, **kw):
    return cls([nn.Parameter(tapegrad.zeros(1))], lr=lr, **kw)


def lrs(sched, n):
    out = []
    for _ in range(n):
        out.append(sched.get_last_lr()[0])
        sched.optimizer.step()
        sched.step()
    return out


def test_step_multistep_exponential_lambda():
    assert lrs(S.StepLR(make_opt(), step_size=2, gamma=0.5), 6) == pytest.approx([0.1, 0.1, 0.05, 0.05, 0.025, 0.025])
    assert lrs(S.MultiStepLR(make_opt(), milestones=[1, 3, 3], gamma=0.1), 5) == pytest.approx(
        [0.1, 0.01, 0.01, 1e-4, 1e-4])
    assert lrs(S.ExponentialLR(make_opt(), gamma=0.9), 4) == pytest.approx([0.1 * 0.9 ** i for i in range(4)])
    assert lrs(S.LambdaLR(make_opt(), lambda e: 1 / (e + 1)), 4) == pytest.approx([0.1 / (i + 1) for i in range(4)])


def test_cosine_annealing_matches_closed_form():
    sched = S.CosineAnnealingLR(make_opt(1.0), T_max=10, eta_min=0.1)
    got = lrs(sched, 11)
    want = [0.1 + 0.9 * (1 + math.cos(math.pi * t / 10)) / 2 for t in range(11)]
    assert got == pytest.approx(want, rel=1e-12)


def test_one_cycle():
    opt = make_opt(cls=optim.SGD, momentum=0.9)
    sched = S.OneCycleLR(opt, max_lr=1.0, total_steps=10, pct_start=0.3)
    got = lrs(sched, 10)
    assert got[0] == pytest.approx(1.0 / 25)
    assert max(got) == pytest.approx(1.0) and got.index(max(got)) == 2
    assert got[-1] == pytest.approx(1.0 / 25 / 1e4)
    opt = make_opt(cls=optim.SGD, momentum=0.9)
    sched = S.OneCycleLR(opt, max_lr=1.0, total_steps=10, pct_start=0.3)
    assert opt.param_groups[0]["momentum"] == pytest.approx(0.95)
    for _ in range(2):
        sched.step()
    assert opt.param_groups[0]["momentum"] == pytest.approx(0.85)  # lowest where the lr peaks
    for _ in range(7):
        sched.step()
    assert opt.param_groups[0]["momentum"] == pytest.approx(0.95)  # cycled back up at the last step
    adam = make_opt(cls=optim.Adam)
    S.OneCycleLR(adam, max_lr=0.01, total_steps=5)
    assert adam.param_groups[0]["betas"][0] == 0.95
    with pytest.raises(ValueError, match="total_steps OR"):
        S.OneCycleLR(make_opt(), max_lr=1.0)


def test_reduce_on_plateau():
    opt = make_opt(1.0)
    sched = S.ReduceLROnPlateau(opt, mode="min", factor=0.5, patience=1, cooldown=1, min_lr=0.2)
    seen = []
    for loss in [1.0, 0.9, 0.95, 0.95, 0.95, 0.95, 0.95, 0.95, 0.95]:
        sched.step(loss)
        seen.append(sched.get_last_lr()[0])
    assert seen == [1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 0.25, 0.25, 0.25]
    sched.step(0.95)
    sched.step(0.95)
    assert opt.param_groups[0]["lr"] == 0.2  # floored at min_lr


def test_scheduler_state_dict_resume(tmp_path):
    opt = make_opt(1.0)
    sched = S.CosineAnnealingLR(opt, T_max=8)
    lrs(sched, 3)
    tapegrad.save({"opt": opt.state_dict(), "sched": sched.state_dict()}, tmp_path / "s.h5")
    rest = lrs(sched, 4)
    opt2 = make_opt(1.0)
    ck = tapegrad.load(tmp_path / "s.h5")
    opt2.load_state_dict(ck["opt"])
    sched2 = S.CosineAnnealingLR(opt2, T_max=8, last_epoch=ck["sched"]["last_epoch"])
    sched2.load_state_dict(ck["sched"])
    opt2.param_groups[0]["lr"] = sched2.get_last_lr()[0]
    assert lrs(sched2, 4) == rest
    ms = S.MultiStepLR(make_opt(), milestones=[2, 4])
    tapegrad.save(ms.state_dict(), tmp_path / "m.h5")
    ms2 = S.MultiStepLR(make_opt(), milestones=[9])
    ms2.load_state_dict(tapegrad.load(tmp_path / "m.h5"))
    assert dict(ms2.milestones) == {2: 1, 4: 1}
