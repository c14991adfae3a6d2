"""One module used from several threads at once, as a server answers requests: each thread's
forward gives the same bits as a forward alone, and the backward passes all accumulate into the
shared parameters (the sum of what each pass alone gives). An optimizer stepping in one thread
while others run the model under no_grad never shows them a non-finite value."""
import threading

import numpy as np
import pytest

import tapegrad as tg
import tapegrad.nn as nn

pytestmark = pytest.mark.threads
N = 4


def _run(fn):
    errors, barrier = [], threading.Barrier(N)

    def wrap(i):
        try:
            barrier.wait()
            fn(i)
        except BaseException as e:  # reported below: a thread's exception would otherwise be lost
            errors.append(e)

    threads = [threading.Thread(target=wrap, args=(i,)) for i in range(N)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]


def _mha(m, x):
    return m(x, x, x)[0]


def _first(out):
    return out[0] if isinstance(out, tuple) else out


MODELS = {
    "conv_bn_pool": (lambda: nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8).eval(), nn.ReLU(),
                                           nn.MaxPool2d(2)), lambda: tg.randn(2, 3, 16, 16), None),
    "lstm": (lambda: nn.LSTM(16, 32, batch_first=True), lambda: tg.randn(2, 6, 16), None),
    "gru": (lambda: nn.GRU(16, 32), lambda: tg.randn(6, 2, 16), None),
    "mha": (lambda: nn.MultiheadAttention(32, 4, batch_first=True), lambda: tg.randn(2, 5, 32), _mha),
    "transformer": (lambda: nn.TransformerEncoderLayer(32, 4, 64, dropout=0.0, batch_first=True),
                    lambda: tg.randn(2, 5, 32), None),
    "embedding_ln": (lambda: nn.Sequential(nn.Embedding(50, 16), nn.LayerNorm(16)),
                     lambda: tg.randint(0, 50, (3, 7)), None),
}


@pytest.mark.parametrize("name", sorted(MODELS))
def test_forward_and_backward_from_several_threads(name):
    make, draw, call = MODELS[name]
    tg.manual_seed(0)
    m = make()
    run = (lambda x: _first(call(m, x))) if call else (lambda x: _first(m(x)))
    inputs = [draw() for _ in range(N)]
    alone, grads = [], []
    for x in inputs:
        m.zero_grad()
        y = run(x)
        y.sum().backward()
        alone.append(y.detach().numpy())
        grads.append({k: p.grad.numpy().astype(np.float64) for k, p in m.named_parameters() if p.grad is not None})
    m.zero_grad()
    rounds = 5
    got = [[] for _ in range(N)]

    def work(i):
        for _ in range(rounds):
            y = run(inputs[i])
            got[i].append(y.detach().numpy())
            y.sum().backward()

    _run(work)
    for i in range(N):
        for y in got[i]:
            assert np.array_equal(y, alone[i]), (name, i)
    for k, p in m.named_parameters():
        if k in grads[0]:
            want = rounds * sum(g[k] for g in grads)
            np.testing.assert_allclose(p.grad.numpy(), want, rtol=1e-4, atol=1e-4 * np.abs(want).max(), err_msg=k)


def test_an_optimizer_step_beside_readers():
    tg.manual_seed(0)
    m = nn.Linear(64, 64)
    opt = tg.optim.Adam(m.parameters(), lr=1e-3)
    stop, seen = threading.Event(), []

    def read(i):
        if i == 0:
            for _ in range(30):
                opt.zero_grad()
                m(tg.randn(4, 64)).pow(2).mean().backward()
                opt.step()
            stop.set()
            return
        while not stop.is_set():
            with tg.no_grad():
                y = m(tg.randn(4, 64))
            seen.append(bool(np.isfinite(y.numpy()).all()) and not y.requires_grad)
            assert set(m.state_dict()) == {"weight", "bias"}

    _run(read)
    assert seen and all(seen)
    assert tg.is_grad_enabled()
