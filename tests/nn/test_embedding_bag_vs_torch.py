"""nn.EmbeddingBag against PyTorch: from_pretrained, padding_idx, repr and state_dict. The
functional form (every mode, offsets, empty bags, per_sample_weights, the errors) is an entry of
the op table, tests/ops/op_table.py."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")

import tapegrad as tg  # noqa: E402

R = np.random.default_rng(0)
W = R.standard_normal((10, 3))
IDX2 = np.array([[1, 2, 0], [4, 4, 9]])


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
