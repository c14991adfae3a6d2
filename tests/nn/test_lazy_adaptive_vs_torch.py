"""Lazy modules, AdaptiveLogSoftmaxWithLoss and DataParallel against PyTorch."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")

import tapegrad as tg  # noqa: E402

R = np.random.default_rng(0)


def _np(t):
    return None if t is None else t.detach().numpy()


LAZY = [("LazyLinear", (5,), (3, 7)), ("LazyConv1d", (4, 3), (2, 6, 9)), ("LazyConv2d", (4, 3), (2, 6, 7, 7)),
        ("LazyConv2d", (4, 3), (6, 7, 7)), ("LazyConvTranspose1d", (4, 3), (2, 6, 5)),
        ("LazyConvTranspose2d", (4, 2), (2, 3, 4, 4)), ("LazyBatchNorm1d", (), (4, 3)),
        ("LazyBatchNorm2d", (), (2, 3, 4, 4)), ("LazyInstanceNorm1d", (), (2, 3, 5)),
        ("LazyInstanceNorm2d", (), (2, 3, 4, 4)), ("LazyConv3d", (4, 2), (2, 3, 5, 4, 4)),
        ("LazyConv3d", (4, 3), (3, 5, 5, 5)), ("LazyConvTranspose3d", (4, 2), (2, 3, 3, 4, 2)),
        ("LazyBatchNorm3d", (), (2, 3, 2, 3, 4)), ("LazyInstanceNorm3d", (), (2, 3, 2, 3, 4))]


@pytest.mark.parametrize("name,args,shape", LAZY)
def test_lazy_module_becomes_its_class_and_matches_torch(name, args, shape):
    tm, gm = getattr(torch.nn, name)(*args).double(), getattr(tg.nn, name)(*args, dtype=tg.float64)
    assert isinstance(gm.weight, tg.nn.UninitializedParameter) and gm.has_uninitialized_params()
    x = R.standard_normal(shape)
    yt = tm(torch.tensor(x))
    yg0 = gm(tg.tensor(x))
    assert type(gm).__name__ == type(tm).__name__ and type(gm.weight) is tg.nn.Parameter
    assert gm.weight.shape == tuple(tm.weight.shape)
    assert sorted(gm.state_dict()) == sorted(tm.state_dict())
    assert yg0.shape == tuple(yt.shape)
    gm.load_state_dict({k: tg.tensor(v.detach().numpy().copy()) for k, v in tm.state_dict().items()})
    np.testing.assert_allclose(_np(gm(tg.tensor(x))), _np(tm(torch.tensor(x))), rtol=1e-10, atol=1e-12)


def test_lazy_linear_loads_a_checkpoint_before_its_first_call():
    src = tg.nn.Linear(3, 4)
    m = tg.nn.LazyLinear(4)
    m.load_state_dict(src.state_dict())
    x = tg.randn(2, 3)
    np.testing.assert_array_equal(m(x).detach().numpy(), src(x).detach().numpy())
    opt_params = list(m.parameters())
    assert all(type(p) is tg.nn.Parameter for p in opt_params)
    with pytest.raises(ValueError, match="divisible by groups"):
        tg.nn.LazyConv2d(4, 3, groups=2)(tg.randn(1, 3, 5, 5))


@pytest.mark.parametrize("head_bias,batched", [(False, True), (True, True), (False, False)])
def test_adaptive_log_softmax_matches_torch(head_bias, batched):
    tm = torch.nn.AdaptiveLogSoftmaxWithLoss(16, 30, [5, 12, 20], div_value=2.0, head_bias=head_bias).double()
    gm = tg.nn.AdaptiveLogSoftmaxWithLoss(16, 30, [5, 12, 20], div_value=2.0, head_bias=head_bias, dtype=tg.float64)
    assert sorted(gm.state_dict()) == sorted(tm.state_dict())
    gm.load_state_dict({k: tg.tensor(v.detach().numpy().copy()) for k, v in tm.state_dict().items()})
    x = R.standard_normal((9, 16) if batched else 16)
    y = R.integers(0, 30, 9) if batched else np.array(25)
    res = []
    for M, m in ((torch, tm), (tg, gm)):
        xt = M.tensor(x.copy(), requires_grad=True)
        out, loss = m(xt, M.tensor(y))
        (loss + (out * out).sum()).backward()
        res.append([_np(out), _np(loss), _np(xt.grad), _np(m.head.weight.grad), _np(m.tail[2][0].weight.grad),
                    _np(m.log_prob(M.tensor(x.reshape(-1, 16)))), m.predict(M.tensor(x.reshape(-1, 16))).numpy()])
    for a, b in zip(*res):
        if a is None or b is None:
            assert a is None and b is None
        else:
            np.testing.assert_allclose(b, a, rtol=1e-10, atol=1e-12)
    assert gm.log_prob(tg.tensor(x.reshape(-1, 16)[0])).shape == (30,)
    with pytest.raises(RuntimeError, match="Target values"):
        gm(tg.tensor(R.standard_normal((2, 16))), tg.tensor([0, 30]))
    with pytest.raises(ValueError, match="cutoffs"):
        tg.nn.AdaptiveLogSoftmaxWithLoss(16, 30, [12, 5])


def test_data_parallel_without_gpus_is_the_module():
    inner = tg.nn.Linear(3, 2)
    dp = tg.nn.DataParallel(inner)
    assert list(dp.state_dict()) == list(torch.nn.DataParallel(torch.nn.Linear(3, 2)).state_dict())
    x = tg.randn(4, 3)
    np.testing.assert_array_equal(dp(x).detach().numpy(), inner(x).detach().numpy())
    np.testing.assert_array_equal(tg.nn.parallel.data_parallel(inner, x).detach().numpy(), inner(x).detach().numpy())
    with pytest.raises(ValueError, match="device_ids"):
        tg.nn.DataParallel(inner, device_ids=[0, 1])


@pytest.mark.parametrize("nd,shape,out_size", [(1, (2, 3, 7), 3), (2, (2, 3, 5, 7), (2, 3)), (3, (1, 2, 4, 5, 3), 2),
                                               (2, (3, 5, 7), (4, None))])
def test_adaptive_max_pool_gradient_goes_to_the_first_maximum(nd, shape, out_size):
    """PyTorch routes each window's gradient to the one element its index names; tapegrad took an
    amax over the window and split it among tied elements (the zeros after a ReLU: [1/3, 1/3, 1/3]
    where PyTorch gives [1, 0, 0])."""
    xv = np.maximum(np.random.default_rng(nd).standard_normal(shape), 0)
    xv.flat[:4] = 0.5  # ties that are not zeros
    res = []
    for M in (torch, tg):
        x = M.tensor(xv, requires_grad=True)
        y, i = getattr(M.nn.functional, f"adaptive_max_pool{nd}d")(x, out_size, return_indices=True)
        w = M.tensor(np.arange(y.numel(), dtype=np.float64).reshape(tuple(y.shape)) + 1)
        (y * w).sum().backward()
        res.append((y.detach().numpy(), i.numpy(), x.grad.numpy()))
    for a, b in zip(*res):
        np.testing.assert_array_equal(a, b)
