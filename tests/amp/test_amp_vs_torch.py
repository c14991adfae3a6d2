"""autocast and GradScaler: the CPU behaviour of PyTorch's, step by step (GradScaler against
torch.amp.GradScaler("cpu") on the same model, including a skipped step and the backoff)."""
import warnings

import numpy as np
import pytest

import tapegrad as tg


def test_autocast_state_and_decorator():
    assert not tg.is_autocast_enabled("cpu")
    pytest.importorskip("ml_dtypes")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # bfloat16, the CPU's default: silent, as in PyTorch
        ctx = tg.autocast("cpu")
    with ctx:
        assert tg.is_autocast_enabled("cpu") and tg.get_autocast_dtype("cpu") == tg.bfloat16
        y = tg.ones(2, 3) @ tg.ones(3, 2)
        assert y.dtype == tg.bfloat16  # matmul is on PyTorch's lower-precision list
    assert not tg.is_autocast_enabled("cpu")
    with pytest.warns(UserWarning, match="CUDA is not available"):
        ctx = tg.cuda.amp.autocast()
    with ctx:
        assert not tg.is_autocast_enabled("cuda")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # enabled=False: silent, as in PyTorch
        with tg.cuda.amp.autocast(enabled=False), tg.autocast("cuda", enabled=False), tg.cpu.amp.autocast(False):
            pass

        @tg.autocast("cpu", enabled=False)
        def f(x):
            return x * 2, tg.is_autocast_enabled("cpu")
    assert f(tg.ones(1))[1] is False
    with pytest.warns(UserWarning, match="not supported"):
        assert not tg.autocast("cpu", dtype=tg.float64)._enabled
    with pytest.raises(RuntimeError, match="unsupported autocast device_type"):
        tg.autocast("tpu")
    with pytest.raises(TypeError, match="requires a callable"):
        tg.autocast("cpu", enabled=False)(3)


def test_custom_fwd_casts_inputs_inside_autocast():
    class F(tg.autograd.Function):
        @staticmethod
        @tg.amp.custom_fwd(device_type="cpu", cast_inputs=tg.float64)
        def forward(ctx, x):
            ctx.inner = tg.is_autocast_enabled("cpu")
            return x * 2

        @staticmethod
        @tg.amp.custom_bwd(device_type="cpu")
        def backward(ctx, g):
            return g * 2

    x = tg.ones(2, requires_grad=True)
    assert F.apply(x).dtype == tg.float32
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with tg.autocast("cpu"):
            y = F.apply(x)
    assert y.dtype == tg.float64
    y.sum().backward()
    assert x.grad.tolist() == [2.0, 2.0]


def test_grad_scaler_disabled_for_cuda_and_errors():
    with pytest.warns(UserWarning, match="Disabling"):
        s = tg.cuda.amp.GradScaler()
    assert not s.is_enabled() and s.get_scale() == 1.0 and s.state_dict() == {}
    p = tg.ones(2, requires_grad=True)
    opt = tg.optim.SGD([p], lr=1.0)
    loss = s.scale((p * 3).sum())
    loss.backward()
    s.step(opt)
    s.update()
    assert p.tolist() == [-2.0, -2.0]
    s = tg.amp.GradScaler("cpu")
    with pytest.raises(AssertionError, match="did not use scaler.scale"):
        s.step(opt)
    s.scale(p.sum()).backward()
    s.unscale_(opt)
    with pytest.raises(RuntimeError, match="already been called"):
        s.unscale_(opt)
    s.step(opt)
    with pytest.raises(RuntimeError, match="after step"):
        s.unscale_(opt)
    with pytest.raises(RuntimeError, match="step\\(\\) has already been called"):
        s.step(opt)
    with pytest.raises(AssertionError):
        tg.amp.GradScaler("cpu", growth_factor=0.5)


def _train(M, scaler_cls, model_w, steps):
    """A linear model with SGD under a CPU GradScaler; step 2 and 4 get an inf/NaN gradient."""
    w = M.tensor(model_w, requires_grad=True)
    opt = M.optim.SGD([w], lr=0.1, momentum=0.9)
    scaler = scaler_cls("cpu", init_scale=2.0 ** 10, growth_interval=2)
    x = M.tensor(np.linspace(-1, 1, 12, dtype=np.float32).reshape(4, 3))
    log = []
    for i in range(steps):
        opt.zero_grad()
        loss = ((x @ w).tanh() ** 2).mean()
        if i == 2:
            loss = loss * float("inf")
        if i == 4:
            loss = loss * float("nan")
        scaler.scale(loss).backward()
        if i % 3 == 0:
            scaler.unscale_(opt)
            M.nn.utils.clip_grad_norm_([w], 0.05)
        scaler.step(opt)
        scaler.update()
        log.append((scaler.get_scale(), scaler._get_growth_tracker(), w.detach().numpy().copy()))
    if steps == 3:
        scaler.update(new_scale=8.0)
        log.append(scaler.state_dict())
    return log


def test_grad_scaler_matches_torch_step_by_step():
    torch = pytest.importorskip("torch")
    w0 = np.array([0.3, -0.2, 0.5], np.float32)
    got, want = _train(tg, tg.amp.GradScaler, w0, 8), _train(torch, torch.amp.GradScaler, w0, 8)
    for (gs, gt, gw), (ts, tt, tw) in zip(got, want):
        assert gs == ts and gt == tt
        np.testing.assert_allclose(gw, tw, rtol=1e-6, atol=1e-7)
    assert _train(tg, tg.amp.GradScaler, w0, 3)[-1] == _train(torch, torch.amp.GradScaler, w0, 3)[-1]


def test_grad_scaler_state_dict_round_trip():
    s = tg.amp.GradScaler("cpu", init_scale=4.0, growth_interval=3)
    p = tg.ones(1, requires_grad=True)
    opt = tg.optim.SGD([p], lr=0.1)
    s.scale(p.sum()).backward()
    s.step(opt)
    s.update()
    sd = s.state_dict()
    assert sd == {"scale": 4.0, "growth_factor": 2.0, "backoff_factor": 0.5, "growth_interval": 3,
                  "_growth_tracker": 1}
    s2 = tg.amp.GradScaler("cpu")
    s2.load_state_dict(sd)
    assert s2.state_dict() == sd
    with pytest.raises(RuntimeError, match="empty"):
        s2.load_state_dict({})


def test_backends_flags_as_cpu_torch():
    import tapegrad.backends.cudnn as cudnn
    assert cudnn is tg.backends.cudnn
    tg.backends.cudnn.benchmark = True
    tg.backends.cudnn.deterministic = True
    assert tg.backends.cudnn.benchmark and tg.backends.cudnn.deterministic
    tg.backends.cudnn.benchmark = tg.backends.cudnn.deterministic = False
    tg.backends.cuda.matmul.allow_tf32 = True
    tg.backends.cuda.matmul.allow_tf32 = False
    with tg.backends.cudnn.flags(enabled=False):
        assert not tg.backends.cudnn.enabled
    assert tg.backends.cudnn.enabled
    assert tg.backends.openmp.is_available() and not tg.backends.mps.is_available()
    torch = pytest.importorskip("torch")
    for name in ("enabled", "benchmark", "deterministic", "allow_tf32"):
        assert getattr(tg.backends.cudnn, name) == getattr(torch.backends.cudnn, name), name
    assert tg.backends.cudnn.is_available() == torch.backends.cudnn.is_available() is False
    assert tg.backends.cuda.matmul.allow_tf32 == torch.backends.cuda.matmul.allow_tf32
    assert tg.cuda.is_available() == torch.cuda.is_available() and tg.cuda.device_count() == 0
