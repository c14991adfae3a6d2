"""``nn.parallel.scatter_gather`` on the CPU: the structure rules of PyTorch's scatter / gather
(which refuse CPU tensors, so PyTorch's results for non-tensor structures are the oracle), and
tensors split with ``chunk`` and joined with ``cat``, differentiably."""
import collections

import numpy as np
import pytest

import tapegrad
from tapegrad.nn.parallel.scatter_gather import gather, scatter, scatter_kwargs

P = collections.namedtuple("P", "a b")


def test_tensors_split_along_dim_and_gather_back_with_gradients():
    leaf = tapegrad.arange(10.0, requires_grad=True)
    x = leaf.reshape(5, 2)
    pieces = scatter((x, {"k": x * 2}, 7), ["cpu", "cpu"], dim=0)
    assert len(pieces) == 2
    (a, d, n), (b, e, m) = pieces
    assert a.shape == (3, 2) and b.shape == (2, 2) and n == m == 7
    np.testing.assert_array_equal(e["k"].detach().numpy(), (x * 2).detach().numpy()[3:])
    out = gather([a * 1.0, b * 3.0], -1)
    out.sum().backward()
    np.testing.assert_array_equal(leaf.grad.numpy(), np.r_[np.ones(6), 3 * np.ones(4)])


def test_gather_walks_dicts_namedtuples_and_none():
    outs = [{"y": tapegrad.ones(2), "p": P(tapegrad.zeros(1), None)},
            {"y": tapegrad.zeros(1), "p": P(tapegrad.ones(2), None)}]
    g = gather(outs, tapegrad.device("cpu"))
    assert g["y"].tolist() == [1, 1, 0] and type(g["p"]) is P and g["p"].a.tolist() == [0, 1, 1] and g["p"].b is None


def test_gpu_targets_are_refused_by_name():
    with pytest.raises(RuntimeError, match="scatter: tapegrad runs on the CPU; device 0"):
        scatter(tapegrad.ones(4), [0, 1])
    with pytest.raises(RuntimeError, match="gather: tapegrad runs on the CPU; device 1"):
        gather([tapegrad.ones(1)], 1)


def test_non_tensor_structures_match_pytorch():
    torch = pytest.importorskip("torch")
    from torch.nn.parallel import scatter_gather as tsg
    for inputs in [(1, [2, 3]), {"a": 1, "b": (2,)}, [P(1, 2)], ()]:
        assert scatter(inputs, [0, 1]) == tsg.scatter(inputs, [0, 1])
    assert scatter_kwargs((1,), {"a": 2}, [0, 1]) == tsg.scatter_kwargs((1,), {"a": 2}, [0, 1])
    assert scatter_kwargs((), {"a": 2}, [0, 1, 2]) == tsg.scatter_kwargs((), {"a": 2}, [0, 1, 2])
    assert scatter_kwargs((5,), None, [0]) == tsg.scatter_kwargs((5,), None, [0])
