"""Optimizer step and state_dict hooks (per optimizer and global), and optim.swa_utils
(AveragedModel, SWALR, update_bn, the avg functions) against PyTorch."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")

import torch.optim.optimizer as torch_optimizer  # noqa: E402
import torch.optim.swa_utils as torch_swa  # noqa: E402

import tapegrad as tg  # noqa: E402
from tapegrad.optim import optimizer as tg_optimizer  # noqa: E402
from tapegrad.optim import swa_utils  # noqa: E402

R = np.random.default_rng(0)


def _pair(make):
    tm = make(torch).double()
    gm = make(tg).double()
    gm.load_state_dict({k: tg.tensor(v.detach().numpy().copy()) for k, v in tm.state_dict().items()})
    return tm, gm


def _close(a, b, tol=1e-10):
    np.testing.assert_allclose(np.asarray(a.detach().numpy(), dtype=np.float64),
                               np.asarray(b.detach().numpy(), dtype=np.float64), rtol=tol, atol=tol)


def _net(M):
    return M.nn.Sequential(M.nn.Linear(3, 4), M.nn.BatchNorm1d(4), M.nn.ReLU(), M.nn.Linear(4, 2))


def _train_step(M, m, opt, x):
    opt.zero_grad()
    m(x).pow(2).sum().backward()
    opt.step()


@pytest.mark.parametrize("opt_name", ["SGD", "Adam", "LBFGS"])
def test_step_hooks_order_and_arguments(opt_name):
    logs = {}
    for M, mod in ((torch, torch_optimizer), (tg, tg_optimizer)):
        p = M.nn.Parameter(M.ones(2))
        opt = getattr(M.optim, opt_name)([p], lr=0.1)
        log = logs[M] = []
        hs = [mod.register_optimizer_step_pre_hook(lambda o, a, k, log=log: log.append(("gpre", len(a), k))),
              mod.register_optimizer_step_post_hook(lambda o, a, k, log=log: log.append(("gpost", len(a)))),
              opt.register_step_pre_hook(lambda o, a, k, log=log: log.append(("pre", len(a)))),
              opt.register_step_post_hook(lambda o, a, k, log=log: log.append(("post", len(a))))]

        def closure(p=p, opt=opt):
            opt.zero_grad()
            loss = (p * p).sum()
            loss.backward()
            return loss
        try:
            opt.step(closure)
        finally:
            for h in hs:
                h.remove()
        opt.step(closure)
    assert logs[tg] == logs[torch]


def test_step_pre_hook_replaces_arguments():
    p = tg.nn.Parameter(tg.ones(2))
    opt = tg.optim.SGD([p], lr=0.1)
    calls = []
    opt.register_step_pre_hook(lambda o, a, k: ((o,), {"closure": lambda: calls.append(1)}))
    opt.step()
    assert calls == [1]
    opt2 = tg.optim.SGD([p], lr=0.1)
    opt2.register_step_pre_hook(lambda o, a, k: 5)
    with pytest.raises(RuntimeError, match="SGD.step: a step pre hook must return None or a tuple"):
        opt2.step()


def test_state_dict_hooks():
    sds = {}
    for M in (torch, tg):
        p = M.nn.Parameter(M.ones(2))
        opt = M.optim.SGD([p], lr=0.1, momentum=0.9)
        log = []
        opt.register_state_dict_pre_hook(lambda o, log=log: log.append("pre"))
        opt.register_state_dict_post_hook(lambda o, sd, log=log: {**sd, "extra": 1})
        opt.register_load_state_dict_pre_hook(lambda o, sd, log=log: log.append("lpre") or
                                              {**sd, "param_groups": [{**g, "lr": 0.5} for g in sd["param_groups"]]})
        opt.register_load_state_dict_post_hook(lambda o, log=log: log.append("lpost"))
        sd = opt.state_dict()
        assert sd["extra"] == 1
        opt.load_state_dict(sd)
        sds[M] = (log, opt.param_groups[0]["lr"])
    assert sds[tg] == sds[torch]


@pytest.mark.parametrize("kind", ["swa", "ema_multi", "ema_avg", "swa_avg", "buffers"])
def test_averaged_model(kind):
    tm, gm = _pair(_net)
    args = {"swa": lambda su: {},
            "ema_multi": lambda su: {"multi_avg_fn": su.get_ema_multi_avg_fn(0.9)},
            "ema_avg": lambda su: {"avg_fn": su.get_ema_avg_fn(0.8)},
            "swa_avg": lambda su: {"avg_fn": su.get_swa_avg_fn()},
            "buffers": lambda su: {"multi_avg_fn": su.get_ema_multi_avg_fn(0.7), "use_buffers": True}}[kind]
    avg = {}
    xs = R.standard_normal((3, 5, 3))
    for M, m, su in ((torch, tm, torch_swa), (tg, gm, swa_utils)):
        kw = args(su)
        a = su.AveragedModel(m, **kw)
        opt = M.optim.SGD(m.parameters(), lr=0.1)
        for x in xs:
            _train_step(M, m, opt, M.tensor(x))
            a.update_parameters(m)
        avg[M] = a
    tsd, gsd = avg[torch].state_dict(), avg[tg].state_dict()
    assert list(tsd) == list(gsd)
    for k in tsd:
        _close(tsd[k], gsd[k], 1e-9)
    assert int(gsd["n_averaged"].item()) == 3
    x = R.standard_normal((4, 3))
    avg[torch].eval(), avg[tg].eval()
    _close(avg[torch](torch.tensor(x)), avg[tg](tg.tensor(x)), 1e-9)


def test_averaged_model_errors():
    with pytest.raises(ValueError, match="AveragedModel: only one of avg_fn and multi_avg_fn"):
        swa_utils.AveragedModel(tg.nn.Linear(2, 2), avg_fn=swa_utils.get_swa_avg_fn(),
                                multi_avg_fn=swa_utils.get_swa_multi_avg_fn())


def test_update_bn():
    tm, gm = _pair(_net)
    xs = [R.standard_normal((6, 3)) for _ in range(4)]
    torch_swa.update_bn([(torch.tensor(x), 0) for x in xs], tm)
    swa_utils.update_bn([(tg.tensor(x), 0) for x in xs], gm)
    for k in ("1.running_mean", "1.running_var", "1.num_batches_tracked"):
        _close(tm.state_dict()[k], gm.state_dict()[k], 1e-9)
    assert gm[1].momentum == 0.1 and gm.training


@pytest.mark.parametrize("strategy,epochs", [("cos", 5), ("linear", 3), ("cos", 0)])
def test_swalr(strategy, epochs):
    lrs = {}
    for M, su in ((torch, torch_swa), (tg, swa_utils)):
        p = M.nn.Parameter(M.ones(2))
        opt = M.optim.SGD([{"params": [p]}, {"params": [M.nn.Parameter(M.ones(1))], "lr": 0.3}], lr=1.0)
        sched = su.SWALR(opt, swa_lr=[0.05, 0.1], anneal_epochs=epochs, anneal_strategy=strategy)
        out = []
        for _ in range(8):
            opt.step()
            sched.step()
            out.append(sched.get_last_lr())
        lrs[M] = out
    np.testing.assert_allclose(lrs[tg], lrs[torch], rtol=1e-12)


def test_swalr_errors():
    opt = tg.optim.SGD([tg.nn.Parameter(tg.ones(1))], lr=1.0)
    with pytest.raises(ValueError, match="anneal_strategy must by one of 'cos' or 'linear'"):
        swa_utils.SWALR(opt, 0.1, anneal_strategy="exp")
    with pytest.raises(ValueError, match="anneal_epochs must be equal or greater than 0"):
        swa_utils.SWALR(opt, 0.1, anneal_epochs=-1)


def test_patch_step_function_after_a_wrapper_swaps_step():
    """Optimizer wrappers (pytorch-optimizer's Magma, PCGrad) set their own step on the class and
    call PyTorch's private _patch_step_function so the step hooks still run around it."""
    for M in (torch, tg):
        class Wrapper(M.optim.SGD):
            pass

        def step(self, closure=None):
            calls.append("step")
        calls = []
        Wrapper.step = step
        p = M.nn.Parameter(M.ones(2))
        opt = Wrapper([p], lr=0.1)
        opt._patch_step_function()
        opt._patch_step_function()  # once is enough: a second call does not wrap twice
        opt.register_step_pre_hook(lambda o, a, k: calls.append("pre"))
        opt.register_step_post_hook(lambda o, a, k: calls.append("post"))
        opt.step()
        assert calls == ["pre", "step", "post"], M.__name__
