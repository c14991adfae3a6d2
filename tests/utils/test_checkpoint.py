"""Activation checkpointing: the same gradients as without it (dropout included, by the restored
random state), under both tapes, against PyTorch's checkpoint where torch is installed."""
import numpy as np
import pytest

import tapegrad as tg
from tapegrad.utils.checkpoint import checkpoint, checkpoint_sequential


def _model(M):
    M.manual_seed(0)
    return M.nn.Sequential(M.nn.Linear(4, 8), M.nn.Tanh(), M.nn.Dropout(0.3), M.nn.Linear(8, 8), M.nn.ReLU(),
                           M.nn.Linear(8, 3))


def _grads(M, mode, use_reentrant=False):
    m = _model(M)
    w = M.tensor(np.array([0.5, -1.0, 2.0], np.float32), requires_grad=True)
    x = M.tensor(np.linspace(-1, 1, 20, dtype=np.float32).reshape(5, 4), requires_grad=True)
    ck = M.utils.checkpoint

    def block(a, scale):
        return m(a) * w * scale, a.sum()

    M.manual_seed(1)
    if mode == "plain":
        y, s = block(x, 2.0)
        y2 = m[:3](x)
    elif mode == "sequential":
        y, s = block(x, 2.0)
        M.manual_seed(1)
        y = ck.checkpoint_sequential(m, 3, x, use_reentrant=use_reentrant) * w * 2.0
        M.manual_seed(2)
        y2 = m[:3](x)
    else:
        y, s = ck.checkpoint(block, x, 2.0, use_reentrant=use_reentrant)
        y2 = ck.checkpoint(m[:3], x, use_reentrant=use_reentrant)
    (y.pow(2).sum() + s + y2.sum()).backward()
    return [x.grad.numpy(), w.grad.numpy()] + [p.grad.numpy() for p in m.parameters()] + [y.detach().numpy()]


@pytest.mark.parametrize("reentrant", [False, True])
def test_checkpoint_gives_the_gradients_without_it(reentrant):
    for got, want in zip(_grads(tg, "checkpoint", reentrant), _grads(tg, "plain")):
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)


def test_checkpoint_matches_torch():
    """Same weights (no dropout: the libraries' masks differ), checkpointed in both."""
    torch = pytest.importorskip("torch")
    res = {}
    for M in (torch, tg):
        M.manual_seed(0)
        m = M.nn.Sequential(M.nn.Linear(4, 8), M.nn.Tanh(), M.nn.Linear(8, 3))
        with M.no_grad():
            for k, p in enumerate(m.parameters()):
                p.copy_(M.tensor(np.random.default_rng(k).standard_normal(tuple(p.shape)).astype(np.float32)))
        x = M.tensor(np.linspace(-1, 1, 20, dtype=np.float32).reshape(5, 4), requires_grad=True)
        y = M.utils.checkpoint.checkpoint(m, x, use_reentrant=False)
        z = M.utils.checkpoint.checkpoint_sequential(m, 2, x, use_reentrant=False)
        (y.pow(2).sum() + z.sum()).backward()
        res[M] = [x.grad.numpy()] + [p.grad.numpy() for p in m.parameters()]
    for g, w in zip(res[tg], res[torch]):
        np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-5)  # float32, summed in different orders


def test_checkpoint_sequential_and_autograd_grad():
    m = _model(tg)
    m.eval()
    x = tg.randn(3, 4, requires_grad=True)
    y = checkpoint_sequential(m, 2, x, use_reentrant=False)
    gs = tg.autograd.grad(y.sum(), [x, *m.parameters()])
    want = tg.autograd.grad(m(x).sum(), [x, *m.parameters()])
    for g, w in zip(gs, want):
        np.testing.assert_allclose(g.numpy(), w.numpy(), rtol=1e-6, atol=1e-7)
    with pytest.warns(UserWarning, match="use_reentrant"):
        checkpoint(m, x)
    with pytest.raises(ValueError, match="Unexpected keyword"):
        checkpoint(m, x, use_reentrant=True, foo=1)
    with tg.no_grad():
        assert not checkpoint(m, x, use_reentrant=False).requires_grad


def test_checkpoint_stores_no_activations():
    m = tg.nn.Sequential(tg.nn.Linear(4, 4), tg.nn.Tanh(), tg.nn.Linear(4, 4))
    y = checkpoint(m, tg.randn(2, 4, requires_grad=True), use_reentrant=False)
    assert len(y.grad_fn.next_functions) == 1 + len(list(m.parameters()))  # one node: inputs and parameters


def test_context_fn_and_the_other_names():
    """context_fn's two contexts wrap the forward and the recomputation; selective checkpointing's
    policy is taken (every op recomputed: the same gradients); the reentrant Function, as old
    code calls it; the helpers PyTorch's module exports."""
    import contextlib
    import functools
    from tapegrad.utils import checkpoint as C
    events = []

    @contextlib.contextmanager
    def tag(name):
        events.append(name + "+")
        yield
        events.append(name + "-")
    lin = tg.nn.Linear(3, 3).double()
    x = tg.randn(2, 3, dtype=tg.float64, requires_grad=True)
    lin(x).tanh().sum().backward()
    want = (x.grad.clone(), lin.weight.grad.clone())
    for context_fn in (lambda: (tag("fwd"), tag("re")),
                       functools.partial(C.create_selective_checkpoint_contexts,
                                         lambda ctx, op, *a, **k: C.CheckpointPolicy.MUST_SAVE)):
        x.grad = lin.weight.grad = None
        C.checkpoint(lambda t: lin(t).tanh(), x, use_reentrant=False, context_fn=context_fn).sum().backward()
        assert x.grad.tolist() == want[0].tolist() and lin.weight.grad.tolist() == want[1].tolist()
    assert events == ["fwd+", "fwd-", "re+", "re-"]
    with pytest.raises(ValueError, match="use_reentrant=False"):
        C.checkpoint(lin, x, use_reentrant=True, context_fn=C.noop_context_fn)
    x.grad = None
    C.CheckpointFunction.apply(lambda a: (a * 2).sin(), True, x).sum().backward()
    assert np.allclose(x.grad.numpy(), 2 * np.cos(2 * x.detach().numpy()))
    d = C.detach_variable((x, 3))
    assert d[0].requires_grad and d[0].grad_fn is None and d[1] == 3
    with pytest.warns(UserWarning, match="None of the inputs have requires_grad"):
        C.check_backward_validity((x.detach(),))
    assert C.get_device_states(x) == ([], []) and C.set_device_states([], []) is None
    with C.set_checkpoint_early_stop(False), C.set_checkpoint_debug_enabled(None):
        pass
    with pytest.raises(TypeError):
        C.create_selective_checkpoint_contexts(3)
