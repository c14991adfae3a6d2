"""SparseAdam against PyTorch's on the same sparse gradients: only the touched entries move."""
import numpy as np
import pytest

import tapegrad as tg


def _steps(lib, maximize=False):
    rng = np.random.default_rng(0)
    w = lib.tensor(rng.standard_normal((6, 3)), requires_grad=True)
    opt = lib.optim.SparseAdam([w], lr=0.1, betas=(0.8, 0.9), eps=1e-6, maximize=maximize)
    for k in range(4):
        rows = np.array([[k % 6, (k + 2) % 6, k % 6]])  # a repeated index: summed by coalesce
        vals = rng.standard_normal((3, 3))
        w.grad = lib.sparse_coo_tensor(lib.tensor(rows), lib.tensor(vals), (6, 3))
        opt.step()
    return w.detach().numpy(), opt.state[w]["exp_avg"].numpy()


@pytest.mark.parametrize("maximize", [False, True])
def test_sparse_adam_matches_torch(maximize):
    torch = pytest.importorskip("torch")
    got, got_m = _steps(tg, maximize)
    want, want_m = _steps(torch, maximize)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(got_m, want_m, rtol=1e-12, atol=1e-14)


def test_sparse_adam_moves_only_touched_rows_and_refuses_dense():
    w = tg.zeros(4, 2, dtype=tg.float64, requires_grad=True)
    opt = tg.optim.SparseAdam([w], lr=0.5)
    w.grad = tg.sparse_coo_tensor(tg.tensor([[1]]), tg.tensor([[1.0, -2.0]], dtype=tg.float64), (4, 2))
    opt.step()
    assert (w.detach().numpy()[[0, 2, 3]] == 0).all() and (w.detach().numpy()[1] != 0).all()
    w.grad = tg.ones(4, 2, dtype=tg.float64)
    with pytest.raises(RuntimeError, match="does not support dense gradients"):
        opt.step()
    with pytest.raises(ValueError, match="Invalid learning rate"):
        tg.optim.SparseAdam([w], lr=0)
