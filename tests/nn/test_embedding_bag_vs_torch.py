"""nn.EmbeddingBag / F.embedding_bag against PyTorch: every mode, 2-D and offset inputs, empty
bags, padding_idx, per_sample_weights; values and float64 weight gradients."""
import sys
import pathlib

import numpy as np
import pytest

torch = pytest.importorskip("torch")
sys.path.insert(0, str(pathlib.Path(__file__).parents[1] / "ops"))
from torch_oracle import check_forward_and_gradients, check_same_exception_type  # noqa: E402

import tapegrad as tg  # noqa: E402

R = np.random.default_rng(0)
W = R.standard_normal((10, 3))
FLAT = np.array([1, 2, 4, 5, 4, 3, 2, 9, 0, 0])
OFFS = np.array([0, 3, 3, 8])       # bag 1 is empty, the last holds the two padding entries
IDX2 = np.array([[1, 2, 0], [4, 4, 9]])
PSW = R.standard_normal(10)


def _bags(M, w, psw):
    F = M.nn.functional
    out = []
    for mode in ("sum", "mean", "max"):
        out += [F.embedding_bag(M.tensor(FLAT), w, M.tensor(OFFS), mode=mode),
                F.embedding_bag(M.tensor(IDX2), w, mode=mode),
                F.embedding_bag(M.tensor(FLAT), w, M.tensor(OFFS), mode=mode, padding_idx=0),
                F.embedding_bag(M.tensor(FLAT), w, M.tensor(np.append(OFFS, 10)), mode=mode, include_last_offset=True)]
    out += [F.embedding_bag(M.tensor(FLAT), w, M.tensor(OFFS), mode="sum", per_sample_weights=psw),
            F.embedding_bag(M.tensor(IDX2), w, mode="sum", per_sample_weights=psw[:6].reshape(2, 3), padding_idx=4)]
    return tuple(out)


def test_embedding_bag_matches_torch():
    check_forward_and_gradients(_bags, [W, PSW])


def test_embedding_bag_module_matches_torch():
    res = {}
    for M in (torch, tg):
        M.manual_seed(0)
        bag = M.nn.EmbeddingBag.from_pretrained(M.tensor(W), freeze=False, mode="max", padding_idx=2)
        out = bag(M.tensor(IDX2))
        out.sum().backward()
        res[M] = (out.detach().numpy(), bag.weight.grad.numpy(), repr(bag), bag.weight.requires_grad,
                  sorted(bag.state_dict()))
        fresh = M.nn.EmbeddingBag(10, 3, padding_idx=1)
        assert tuple(fresh.weight.shape) == (10, 3) and not fresh.weight.detach().numpy()[1].any()
    np.testing.assert_allclose(res[tg][0], res[torch][0])
    np.testing.assert_allclose(res[tg][1], res[torch][1])
    assert res[tg][2:] == res[torch][2:]


def test_embedding_bag_errors_match_torch():
    F = lambda M: M.nn.functional  # noqa: E731
    check_same_exception_type(lambda M: F(M).embedding_bag(M.tensor(FLAT), M.tensor(W)))
    check_same_exception_type(lambda M: F(M).embedding_bag(M.tensor(IDX2), M.tensor(W), M.tensor([0, 1])))
    check_same_exception_type(lambda M: F(M).embedding_bag(M.tensor(IDX2), M.tensor(W), mode="max",
                                                           per_sample_weights=M.ones(2, 3, dtype=M.float64)))
    check_same_exception_type(lambda M: F(M).embedding_bag(M.tensor(IDX2), M.tensor(W), mode="median"))
