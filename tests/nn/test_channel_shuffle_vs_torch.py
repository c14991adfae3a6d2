import numpy as np
import pytest

import tapegrad as tg


def test_channel_shuffle_matches_torch():
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(0).standard_normal((2, 6, 3, 2))
    res = {}
    for M in (torch, tg):
        t = M.tensor(x, requires_grad=True)
        y = M.nn.ChannelShuffle(3)(t)
        (y * M.arange(y.numel(), dtype=M.float64).reshape(y.shape)).sum().backward()
        res[M] = (y.detach().numpy(), t.grad.numpy(), repr(M.nn.ChannelShuffle(3)))
        with pytest.raises(RuntimeError):
            M.nn.functional.channel_shuffle(t, 4)
    for a, b in zip(res[tg], res[torch]):
        assert np.array_equal(a, b) if isinstance(a, np.ndarray) else a == b
