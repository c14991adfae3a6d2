"""autocast("cpu") against PyTorch's: which ops run in bfloat16 (or float16) and which in float32,
the values (GEMM and convolution accumulate in float32 and round once), gradients, nesting,
threads, and a small MLP trained under autocast next to the same MLP in PyTorch."""
import threading

import numpy as np
import pytest

import tapegrad as tg

pytest.importorskip("ml_dtypes")
torch = pytest.importorskip("torch")


def _pair(shape, seed, scale=1.0):
    a = np.random.default_rng(seed).standard_normal(shape).astype(np.float32) * scale
    return tg.tensor(a), torch.from_numpy(a)


def _np(t):
    return t.detach().float().numpy().astype(np.float64)


def _torch_dtype(d):
    return {tg.bfloat16: torch.bfloat16, tg.float16: torch.float16, tg.float32: torch.float32,
            tg.float64: torch.float64}[d]


CASES = {
    # lower-precision list
    "linear": (lambda F, x, w, b, m, t: F.linear(x, w, b)),
    "matmul": (lambda F, x, w, b, m, t: x @ w.T),
    "mm": (lambda F, x, w, b, m, t: x.mm(w.T)),
    "bmm": (lambda F, x, w, b, m, t: x.reshape(2, 3, 8).bmm(w.T.reshape(2, 8, 8))),
    "addmm": (lambda F, x, w, b, m, t: m.addmm(x, w.T)),
    "conv2d": (lambda F, x, w, b, m, t: F.conv2d(x.reshape(1, 6, 2, 4), w[:12].reshape(4, 6, 1, 4), b[:4], padding=(0, 1))),
    "conv1d": (lambda F, x, w, b, m, t: F.conv1d(x.reshape(1, 6, 8), w[:12].reshape(4, 6, 4), b[:4])),
    "prelu": (lambda F, x, w, b, m, t: F.prelu(x, b[:1])),
    # fp32 list
    "mse_loss": (lambda F, x, w, b, m, t: F.mse_loss(x.mm(w.T), m)),
    "cross_entropy": (lambda F, x, w, b, m, t: F.cross_entropy(x.mm(w.T), t)),
    "l1_loss": (lambda F, x, w, b, m, t: F.l1_loss(x.mm(w.T), m)),
    "binary_cross_entropy_with_logits": (lambda F, x, w, b, m, t: F.binary_cross_entropy_with_logits(
        x.mm(w.T), m.sigmoid())),
    "prod": (lambda F, x, w, b, m, t: (x.mm(w.T) * 0.1 + 1).prod(1)),
    # neither: the input's own dtype
    "softmax": (lambda F, x, w, b, m, t: F.softmax(x.mm(w.T), -1)),
    "layer_norm": (lambda F, x, w, b, m, t: F.layer_norm(x.mm(w.T), (16,))),
    "relu_add": (lambda F, x, w, b, m, t: F.relu(x.mm(w.T)) + m),
    "float64_linear": (lambda F, x, w, b, m, t: F.linear(x.double(), w.double())),
}


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
@pytest.mark.parametrize("case", list(CASES))
def test_autocast_cpu_dtypes_and_values_match_torch(case, dtype):
    (x, tx), (w, tw), (b, tb), (m, tm) = _pair((6, 8), 0), _pair((16, 8), 1, 0.3), _pair((16,), 2), _pair((6, 16), 3)
    t, tt = tg.tensor([0, 3, 15, 7, 1, 2]), torch.tensor([0, 3, 15, 7, 1, 2])
    fn = CASES[case]
    with tg.autocast("cpu", dtype=getattr(tg, dtype)):
        ours = fn(tg.nn.functional, x, w, b, m, t)
    with torch.autocast("cpu", dtype=getattr(torch, dtype)):
        theirs = fn(torch.nn.functional, tx, tw, tb, tm, tt)
    assert _torch_dtype(ours.dtype) == theirs.dtype
    eps = torch.finfo(getattr(torch, dtype)).eps
    np.testing.assert_allclose(_np(ours), _np(theirs), rtol=2 * eps, atol=2 * eps * float(np.abs(_np(theirs)).max()))


def test_autocast_cpu_linear_is_bitwise_torch_and_gradients_keep_param_dtypes():
    (x, tx), (w, tw), (b, tb) = _pair((32, 64), 4), _pair((48, 64), 5, 0.2), _pair((48,), 6)
    w.requires_grad_(), tw.requires_grad_(), b.requires_grad_(), tb.requires_grad_()
    with tg.autocast("cpu"):
        y = tg.nn.functional.linear(x, w, b)
        loss = y.float().square().mean()
    with torch.autocast("cpu"):
        ty = torch.nn.functional.linear(tx, tw, tb)
        tloss = ty.float().square().mean()
    assert y.dtype == tg.bfloat16 and ty.dtype == torch.bfloat16
    np.testing.assert_array_equal(_np(y), _np(ty))  # float32 accumulation, product and bias rounded once
    loss.backward()
    tloss.backward()
    assert w.grad.dtype == tg.float32 and b.grad.dtype == tg.float32  # the cast's VJP casts back, as PyTorch
    np.testing.assert_allclose(w.grad.numpy(), tw.grad.numpy(), rtol=1e-2, atol=1e-2 * np.abs(tw.grad.numpy()).max())


def test_autocast_cpu_nesting_decorator_and_threads():
    x = tg.ones(2, 3)
    with tg.autocast("cpu"):
        assert (x @ x.T).dtype == tg.bfloat16
        with tg.autocast("cpu", enabled=False):
            assert (x @ x.T).dtype == tg.float32
        with tg.autocast("cpu", dtype=tg.float16):
            assert (x @ x.T).dtype == tg.float16
        assert (x @ x.T).dtype == tg.bfloat16
        seen = []
        th = threading.Thread(target=lambda: seen.append(((x @ x.T).dtype, tg.is_autocast_enabled("cpu"))))
        th.start()
        th.join()
        assert seen == [(tg.float32, False)]  # autocast is per thread, as in PyTorch
    assert not tg.is_autocast_enabled("cpu") and (x @ x.T).dtype == tg.float32

    @tg.cpu.amp.autocast()
    def f(a):
        return tg.nn.functional.linear(a, tg.ones(4, 3))
    assert f(x).dtype == tg.bfloat16
    with tg.amp.autocast("cpu"):
        assert tg.nn.Linear(3, 4)(x).dtype == tg.bfloat16


def test_autocast_cpu_trains_a_small_mlp_like_torch():
    tg.manual_seed(0)
    rng = np.random.default_rng(7)
    X = rng.standard_normal((64, 10)).astype(np.float32)
    Y = (X[:, :3].sum(1) > 0).astype(np.int64) + (X[:, 3] > 1).astype(np.int64)
    ours = tg.nn.Sequential(tg.nn.Linear(10, 32), tg.nn.ReLU(), tg.nn.Linear(32, 3))
    theirs = torch.nn.Sequential(torch.nn.Linear(10, 32), torch.nn.ReLU(), torch.nn.Linear(32, 3))
    with torch.no_grad():
        for p, q in zip(theirs.parameters(), ours.parameters()):
            p.copy_(torch.from_numpy(q.detach().numpy()))
    opt, topt = tg.optim.SGD(ours.parameters(), lr=0.2), torch.optim.SGD(theirs.parameters(), lr=0.2)
    x, y, tx, ty = tg.tensor(X), tg.tensor(Y), torch.from_numpy(X), torch.from_numpy(Y)
    losses, tlosses = [], []
    for _ in range(30):
        with tg.autocast("cpu"):
            loss = tg.nn.functional.cross_entropy(ours(x), y)
        with torch.autocast("cpu"):
            tloss = torch.nn.functional.cross_entropy(theirs(tx), ty)
        assert loss.dtype == tg.float32 and tloss.dtype == torch.float32
        opt.zero_grad()
        topt.zero_grad()
        loss.backward()
        tloss.backward()
        opt.step()
        topt.step()
        losses.append(loss.item())
        tlosses.append(tloss.item())
    assert losses[-1] < 0.6 * losses[0]
    np.testing.assert_allclose(losses, tlosses, rtol=0.03)
    for p, q in zip(theirs.parameters(), ours.parameters()):
        assert q.dtype == tg.float32
        np.testing.assert_allclose(q.detach().numpy(), p.detach().numpy(), atol=0.03)


def test_autocast_cpu_runs_linear_algebra_in_float32_as_torch():
    (x, tx), = [_pair((6, 8), 8)]
    with tg.autocast("cpu"):
        g = x.T.mm(x) + tg.eye(8).bfloat16() * 8  # a bfloat16 product, then float32 linear algebra
        outs = [tg.linalg.inv(g), tg.linalg.eigh(g)[0], tg.linalg.solve(g, tg.ones(8)), tg.linalg.svdvals(g),
                tg.linalg.cholesky(g), tg.inverse(g), tg.trace(g), tg.cdist(g, g)]
    with torch.autocast("cpu"):
        tg_ = tx.T.mm(tx) + torch.eye(8).bfloat16() * 8
        touts = [torch.linalg.inv(tg_), torch.linalg.eigh(tg_)[0], torch.linalg.solve(tg_, torch.ones(8)),
                 torch.linalg.svdvals(tg_), torch.linalg.cholesky(tg_), torch.inverse(tg_), torch.trace(tg_),
                 torch.cdist(tg_, tg_)]
    assert g.dtype == tg.bfloat16 and tg_.dtype == torch.bfloat16
    for ours, theirs in zip(outs, touts):
        assert _torch_dtype(ours.dtype) == theirs.dtype == torch.float32
        np.testing.assert_allclose(_np(ours), _np(theirs), rtol=1e-4, atol=1e-4)
