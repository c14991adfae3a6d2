"""Sparse COO tensors (tapegrad/sparse.py, tapegrad/ops/sparse.py): construction, checks,
conversions, arithmetic, gradients and printing, against numpy and, when installed, PyTorch.
The op table (tests/ops/op_table.py: sparse_mm, segment_sum) checks the two ops' gradients
against finite differences."""
import copy
import threading
import warnings

import numpy as np
import pytest

import tapegrad as tg

IDX = np.array([[0, 1, 1, 0, 2], [2, 0, 2, 2, 1]])  # (0, 2) appears twice
VAL = np.array([3.0, 4.0, 5.0, 1.0, -2.0])


def dense_of(idx, val, shape):
    out = np.zeros(shape, dtype=np.asarray(val).dtype)
    np.add.at(out, tuple(idx), val)
    return out


@pytest.fixture
def torch():
    t = pytest.importorskip("torch")
    with warnings.catch_warnings():  # PyTorch warns that its invariant checks are off by default
        warnings.simplefilter("ignore", UserWarning)
        yield t


def coo(M, idx=IDX, val=VAL, shape=(3, 3), **kw):
    return M.sparse_coo_tensor(M.tensor(idx), M.tensor(val), shape, **kw)


# ---------------------------------------------------------------- structure
def test_metadata_and_parts():
    A = coo(tg)
    assert A.is_sparse and A.layout is tg.sparse_coo and not tg.ones(2).is_sparse and tg.ones(2).layout is tg.strided
    assert isinstance(A, tg.Tensor) and A.shape == (3, 3) and A.dtype == tg.float64 and A.ndim == 2
    assert (A._nnz(), A.nnz(), A.sparse_dim(), A.dense_dim(), A.is_coalesced()) == (5, 5, 2, 0, False)
    np.testing.assert_array_equal(A._indices().numpy(), IDX)
    np.testing.assert_array_equal(A.to_dense().numpy(), dense_of(IDX, VAL, (3, 3)))
    C = A.coalesce()
    assert C.is_coalesced() and C._nnz() == 4 and C.coalesce() is C
    np.testing.assert_array_equal(C.indices().numpy(), [[0, 1, 1, 2], [2, 0, 2, 1]])
    np.testing.assert_array_equal(C.values().numpy(), [4.0, 4.0, 5.0, -2.0])
    for get in (A.values, A.indices):
        with pytest.raises(RuntimeError, match="uncoalesced"):
            get()


def test_size_is_inferred_and_hybrid_tensors_round_trip():
    A = tg.sparse_coo_tensor([[0, 3], [1, 0]], [1.0, 2.0])
    assert A.shape == (4, 2) and A.dtype == tg.get_default_dtype()
    x = np.arange(24.0).reshape(2, 3, 4)
    x[0, 1] = 0
    for sd in (None, 0, 1, 2, 3):
        S = tg.tensor(x).to_sparse(sd) if sd is not None else tg.tensor(x).to_sparse()
        assert S.sparse_dim() == (3 if sd is None else sd) and S.dense_dim() == 3 - S.sparse_dim()
        assert S.is_coalesced()
        np.testing.assert_array_equal(S.to_dense().numpy(), x)
    assert tg.tensor(x).to_sparse()._nnz() == 19 and tg.tensor(x).to_sparse(2)._nnz() == 5


@pytest.mark.parametrize("call, match", [
    (lambda: tg.sparse_coo_tensor([[0, 5]], [1.0, 2.0], (3,)), "for dim 0, size is 3 but found index 5"),
    (lambda: tg.sparse_coo_tensor([[0, -1]], [1.0, 2.0], (3,)), "negative index -1 for dim 0"),
    (lambda: tg.sparse_coo_tensor([0, 1], [1.0, 2.0], (3,)), r"sparse_dim x nnz, but got: \[2\]"),
    (lambda: tg.sparse_coo_tensor([[0, 1]], [1.0], (3,)), "nnz from indices: 2, nnz from values: 1"),
    (lambda: tg.sparse_coo_tensor([[0, 1]], [1.0, 2.0], (3, 4)), "len\\(size\\) = 2, sparse_dim = 1"),
    (lambda: tg.sparse_coo_tensor([[0, 1]], np.ones((2, 3)), (3, 4)), "dense dims"),
    (lambda: tg.sparse_coo_tensor([[0.5, 1]], [1.0, 2.0], (3,)), "int64"),
    (lambda: tg.sparse_coo_tensor([[1, 0]], [1.0, 2.0], (3,), is_coalesced=True), "not sorted and unique"),
    (lambda: tg.ones(3).sparse_mask(tg.ones(2).to_sparse()), "mask's size"),
])
def test_bad_indices_raise_clear_errors(call, match):
    with pytest.raises(RuntimeError, match=match):
        call()


def test_device_is_checked_as_for_dense_tensors():
    assert coo(tg, device="cpu").device == tg.device("cpu")
    with pytest.raises(RuntimeError):
        coo(tg, device="cuda")


def test_invariants_are_checked_with_or_without_the_switch():
    with tg.sparse.check_sparse_tensor_invariants():
        assert tg.sparse.check_sparse_tensor_invariants.is_enabled()
        with pytest.raises(RuntimeError, match="found index 5"):
            tg.sparse_coo_tensor([[5]], [1.0], (3,))
    tg.sparse.check_sparse_tensor_invariants.disable()
    with pytest.raises(RuntimeError, match="found index 5"):
        tg.sparse_coo_tensor([[5]], [1.0], (3,), check_invariants=False)


def test_dense_only_ops_refuse_sparse_tensors_by_name():
    A = coo(tg)
    for call, name in [(lambda: tg.exp(A), "exp"), (lambda: tg.sum(A), "sum"), (lambda: A.mean(0), "mean"), (lambda: A[0], "getitem"),
                       (lambda: tg.relu(A), "relu"), (lambda: A.reshape(9), "reshape"), (lambda: tg.cumsum(A, 0), "cumsum"),
                       (lambda: tg.amax(A, 0), "amax")]:
        with pytest.raises(NotImplementedError, match=f"{name}.*sparse_coo.*to_dense"):
            call()
    for call in (lambda: np.asarray(A), A.numpy):  # PyTorch's error
        with pytest.raises(TypeError, match="to_dense"):
            call()


# ---------------------------------------------------------------- arithmetic
def test_arithmetic_matches_the_dense_results():
    A, D = coo(tg), dense_of(IDX, VAL, (3, 3))
    B = tg.tensor(np.eye(3)).to_sparse()
    X = np.arange(6.0).reshape(3, 2)
    cases = [(A * 2.0, D * 2), (3 * A, 3 * D), (A / 2, D / 2), (-A, -D), (A + B, D + np.eye(3)), (A - B, D - np.eye(3)),
             (A.t(), D.T), (A * tg.tensor(X @ X.T), D * (X @ X.T)), (A.add(B, alpha=2), D + 2 * np.eye(3))]
    for S, want in cases:
        assert S.is_sparse
        np.testing.assert_allclose(S.to_dense().numpy(), want)
    for got, want in [(A + tg.ones(3, 3), D + 1), (tg.ones(3, 3) + A, D + 1), (A @ tg.tensor(X), D @ X),
                      (tg.mm(A, tg.tensor(X)), D @ X), (tg.matmul(A, tg.tensor(X[:, 0])), D @ X[:, 0]),
                      (tg.tensor(X.T) @ A, X.T @ D), (tg.spmm(A, tg.tensor(X)), D @ X),
                      ((A @ B).to_dense(), D), (tg.sparse.sum(A), D.sum())]:
        assert not got.is_sparse
        np.testing.assert_allclose(got.numpy(), want)
    np.testing.assert_allclose(tg.sparse.sum(A, 1).to_dense().numpy(), D.sum(1))
    np.testing.assert_allclose(tg.sparse.sum(A, (0, 1)).numpy(), D.sum())
    with pytest.raises(RuntimeError, match="cannot be multiplied"):
        tg.sparse.mm(A, tg.ones(4, 2, dtype=tg.float64))
    with pytest.raises(RuntimeError, match="same dtype"):
        tg.sparse.mm(A, tg.ones(3, 2))


def test_against_torch(torch):
    X = np.random.default_rng(0).standard_normal((3, 4))
    h = np.arange(12.0).reshape(3, 2, 2) - 5
    calls = [
        lambda M: coo(M).coalesce(), lambda M: coo(M) + coo(M, IDX[::-1].copy()), lambda M: coo(M) * 2.5,
        lambda M: coo(M).t(), lambda M: M.sparse.mm(coo(M), M.tensor(X)), lambda M: M.mm(coo(M), M.tensor(X)),
        lambda M: M.sparse.addmm(M.tensor(X), coo(M), M.tensor(X), beta=0.5, alpha=-1.5),
        lambda M: M.sparse.sum(coo(M), 0), lambda M: M.sparse.sum(coo(M)),
        lambda M: M.sparse.softmax(coo(M), 1), lambda M: M.sparse.softmax(coo(M), 0),
        lambda M: M.sparse.log_softmax(coo(M), -1), lambda M: M.tensor(h).to_sparse(1),
        lambda M: M.sparse.sum(M.tensor(h).to_sparse(1), (0, 2)), lambda M: M.sparse.softmax(M.tensor(h).to_sparse(1), 2),
        lambda M: M.sparse.mm(coo(M), coo(M).t()), lambda M: coo(M) * M.tensor(X[:, :3]),
        lambda M: coo(M).sum(1), lambda M: coo(M).sum(), lambda M: coo(M).abs(), lambda M: (-coo(M)).relu(), lambda M: coo(M).neg(), lambda M: coo(M, val=VAL - 2).abs(),
        lambda M: coo(M).tanh().sin(), lambda M: coo(M) ** 2, lambda M: coo(M).coalesce().square().sign(),
        lambda M: M.sparse.DoubleTensor(M.tensor(IDX), M.tensor(VAL), M.Size([3, 3])),
        lambda M: M.tensor(X[:, :3]).sparse_mask(coo(M).coalesce()), lambda M: coo(M).coalesce() * coo(M, IDX[::-1].copy()).coalesce(),
        lambda M: M.sparse_coo_tensor(M.tensor(IDX[:, 1:3]), M.tensor(VAL[1:3]), (3, 3), is_coalesced=True),
    ]
    for call in calls:
        got, want = call(tg), call(torch)
        assert got.is_sparse == want.is_sparse and tuple(got.shape) == tuple(want.shape)
        if want.is_sparse:
            assert got.is_coalesced() == want.is_coalesced()
            if want.is_coalesced():
                np.testing.assert_array_equal(got.indices().numpy(), want.indices().numpy())
        np.testing.assert_allclose(got.to_dense().numpy(), want.to_dense().numpy(), rtol=1e-12, atol=1e-12)


def test_repr_matches_torch(torch):
    calls = [lambda M: coo(M), lambda M: coo(M).coalesce(), lambda M: coo(M, val=VAL.astype(np.float32)),
             lambda M: coo(M, requires_grad=True), lambda M: coo(M, val=np.arange(5)),
             lambda M: M.tensor(np.arange(12.0).reshape(3, 2, 2)).to_sparse(1), lambda M: M.tensor(3.0).to_sparse(),
             lambda M: coo(M, val=VAL.astype(np.float32), requires_grad=True) * 2]
    for call in calls:
        want = repr(call(torch)).replace("torch.", "tapegrad.")
        got = repr(call(tg))
        if "grad_fn" in want:  # the nodes' names differ (tapegrad records the values' op)
            want, got = want.split("grad_fn")[0], got.split("grad_fn")[0]
        assert got == want


# ---------------------------------------------------------------- gradients
def test_sparse_leaf_gradient_is_sparse_on_its_pattern(torch):
    X = np.random.default_rng(1).standard_normal((3, 2))
    fns = [lambda M, A, x: M.sparse.mm(A, x).pow(2).sum(), lambda M, A, x: (A.to_dense() ** 2 * x.sum()).sum(),
           lambda M, A, x: M.sparse.sum(A * 3.0) * x.sum()]
    for fn in fns:
        grads = {}
        for M in (tg, torch):
            A, x = coo(M, requires_grad=True), M.tensor(X, requires_grad=True)
            assert A.is_leaf and A.requires_grad and A.grad is None
            fn(M, A, x).backward()
            assert A.grad.is_sparse
            g = A.grad.coalesce()  # PyTorch's to_dense backward leaves its gradient uncoalesced
            grads[M] = (g.indices().numpy(), g.values().detach().numpy(), x.grad.numpy())
        for g, w in zip(grads[tg], grads[torch]):
            np.testing.assert_allclose(g, w, rtol=1e-12)
    A = coo(tg, requires_grad=True)
    (A.to_dense().sum()).backward()
    B = copy.deepcopy(A)
    assert B.requires_grad and B.is_leaf and B.grad.is_sparse and B._values() is not A._values()
    A.grad = None
    assert A.grad is None and B.grad is not None
    B.grad = B.grad * 2
    np.testing.assert_array_equal(B.grad.to_dense().numpy(), 2 * (dense_of(IDX, VAL, (3, 3)) != 0))
    with pytest.raises(RuntimeError, match="same .coalesced. indices"):
        B.grad = tg.ones(3, 3).to_sparse()


def test_mm_gradient_of_a_sparse_leaf_is_masked(torch):
    # torch.mm gives a sparse leaf a dense gradient (nonzero off its pattern, where the leaf has no
    # entries to update); tapegrad gives sparse.mm's: the same numbers, on the pattern only
    X = np.random.default_rng(2).standard_normal((3, 2))
    A, At = coo(tg, requires_grad=True), coo(torch, requires_grad=True)
    (A @ tg.tensor(X)).sum().backward()
    torch.mm(At, torch.tensor(X)).sum().backward()
    assert A.grad.is_sparse and not At.grad.is_sparse
    np.testing.assert_allclose(A.grad.to_dense().numpy(), At.grad.numpy() * (dense_of(IDX, 1.0 + 0 * VAL, (3, 3)) != 0))


def test_values_gradient_through_every_op(torch):
    X = np.random.default_rng(3).standard_normal((3, 3))
    fns = [lambda M, v, x: M.sparse.mm(coo_v(M, v), x), lambda M, v, x: (coo_v(M, v).t() @ x),
           lambda M, v, x: M.sparse.softmax(coo_v(M, v) * x, 1).to_dense(),
           lambda M, v, x: (coo_v(M, v) + x.to_sparse()).coalesce().values(),
           lambda M, v, x: x @ coo_v(M, v), lambda M, v, x: M.sparse.addmm(x, coo_v(M, v), x, beta=2.0),
           lambda M, v, x: (x.sparse_mask(coo_v(M, v).coalesce()) * coo_v(M, v)).to_dense()]
    for k, fn in enumerate(fns):
        out = {}
        for M in (tg, torch):
            v, x = M.tensor(VAL, requires_grad=True), M.tensor(X, requires_grad=True)
            y = fn(M, v, x)
            assert not y.is_sparse, k
            (y * M.tensor(np.cos(np.arange(y.numel())).reshape(tuple(y.shape)))).sum().backward()
            # PyTorch's gradient of x is sparse where x met the sparse operand elementwise
            out[M] = (y.detach().numpy(), v.grad.numpy(), x.grad.to_dense().numpy())
        for g, w in zip(out[tg], out[torch]):
            np.testing.assert_allclose(g, w, rtol=1e-10, atol=1e-12)


def coo_v(M, v):
    return M.sparse_coo_tensor(M.tensor(IDX), v, (3, 3))


def _gcn_run(M, A_idx, A_val, n, feats, labels, W1, W2, steps=5, lr=0.5):
    A = M.sparse_coo_tensor(M.tensor(A_idx), M.tensor(A_val), (n, n))
    X = M.tensor(feats)
    w1, w2 = M.tensor(W1, requires_grad=True), M.tensor(W2, requires_grad=True)
    opt = M.optim.SGD([w1, w2], lr=lr, momentum=0.9)
    losses = []
    for _ in range(steps):
        opt.zero_grad()
        h = M.relu(M.sparse.mm(A, X @ w1))
        logits = M.sparse.mm(A, h @ w2)
        loss = M.nn.functional.cross_entropy(logits, M.tensor(labels))
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses, w1.detach().numpy(), w2.detach().numpy()


def test_gcn_layer_trains_as_in_torch(torch):
    # a two-layer graph convolution, sparse.mm(A, X @ W), on a random graph with self-loops and
    # symmetric normalisation D^-1/2 (A + I) D^-1/2
    rng = np.random.default_rng(4)
    n, f, hidden, classes = 40, 6, 8, 3
    src, dst = rng.integers(0, n, 120), rng.integers(0, n, 120)
    adj = np.zeros((n, n))
    adj[src, dst] = adj[dst, src] = 1
    adj += np.eye(n)
    d = adj.sum(1) ** -0.5
    norm = d[:, None] * adj * d[None, :]
    idx = np.stack(np.nonzero(norm))
    args = (idx, norm[tuple(idx)], n, rng.standard_normal((n, f)), rng.integers(0, classes, n),
            rng.standard_normal((f, hidden)) * 0.5, rng.standard_normal((hidden, classes)) * 0.5)
    got, want = _gcn_run(tg, *args), _gcn_run(torch, *args)
    np.testing.assert_allclose(got[0], want[0], rtol=1e-12)
    assert got[0][-1] < got[0][0]
    for g, w in zip(got[1:], want[1:]):
        np.testing.assert_allclose(g, w, rtol=1e-10, atol=1e-12)


def test_threads_get_the_single_threaded_results():
    rng = np.random.default_rng(5)
    X = rng.standard_normal((3, 4))
    A = coo(tg, requires_grad=True)

    def run():
        x = tg.tensor(X, requires_grad=True)
        v = tg.tensor(VAL, requires_grad=True)
        (tg.sparse.mm(coo_v(tg, v), x).sin().sum() + tg.sparse.softmax(coo_v(tg, v), 1).to_dense().sum()).backward()
        return v.grad.numpy().copy(), x.grad.numpy().copy()

    want = run()
    results = []
    threads = [threading.Thread(target=lambda: results.extend(run() for _ in range(20))) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 80
    for r in results:
        for g, w in zip(r, want):
            np.testing.assert_array_equal(g, w)
    assert A.grad is None
