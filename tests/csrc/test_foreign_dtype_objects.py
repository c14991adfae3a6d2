"""numpy makes a new dtype object for an array it unpickles (every batch a DataLoader worker
sends), reads from a file or takes through the buffer protocol. The kernels must treat it as the
dtype it is: a float32 batch from a worker used to stop the first GEMM with "dtypes differ:
float32, float32, float32"."""
import pickle

import numpy as np
import pytest

import tapegrad as tg
import tapegrad.nn.functional as F


def _foreign(a):
    b = pickle.loads(pickle.dumps(a))
    assert b.dtype == a.dtype and b.dtype is not np.dtype(a.dtype.str)  # a descriptor of its own
    return b


def _run(make):
    """The loss and input gradient of a small network on x and the integer array idx."""
    rng = np.random.default_rng(0)
    tg.manual_seed(0)
    x, idx, target = make(rng.standard_normal((4, 3, 8, 8))), make(rng.integers(0, 10, (4, 5))), \
        make(rng.integers(0, 5, (4,)))
    xt = tg.from_numpy(x).requires_grad_()
    conv = tg.nn.Conv2d(3, 4, 3, padding=1, dtype=xt.dtype)
    bn = tg.nn.BatchNorm2d(4, dtype=xt.dtype)
    emb = tg.nn.Embedding(10, 16, dtype=xt.dtype)
    lstm = tg.nn.LSTM(16, 8, batch_first=True, dtype=xt.dtype)
    h = F.max_pool2d(F.relu(bn(conv(xt))), 2).flatten(1)  # (4, 64)
    s, _ = lstm(emb(tg.from_numpy(idx)))  # (4, 5, 8)
    q = s.reshape(4, 5, 2, 4).transpose(1, 2)
    a = F.scaled_dot_product_attention(q, q, q).transpose(1, 2).reshape(4, 40)
    z = F.layer_norm(tg.cat([h, a], 1), (104,))
    logits = F.linear(F.gelu(z), tg.ones(5, 104, dtype=xt.dtype) / 100)
    loss = F.cross_entropy(logits, tg.from_numpy(target)) + F.softmax(z, -1).sum()
    loss.backward()
    return loss.item(), xt.grad.numpy()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_unpickled_arrays_run_every_kernel_as_their_dtype(dtype):
    def cast(a):
        return a.astype(dtype) if a.dtype.kind == "f" else a
    loss, grad = _run(cast)
    loss2, grad2 = _run(lambda a: _foreign(cast(a)))
    assert loss2 == loss
    np.testing.assert_array_equal(grad2, grad)


def test_a_worker_batch_trains_a_linear_layer():
    ds = tg.utils.data.TensorDataset(tg.randn(8, 10), tg.randint(0, 3, (8,)))
    loader = tg.utils.data.DataLoader(ds, batch_size=4, num_workers=1)
    net = tg.nn.Linear(10, 3)
    for x, y in loader:
        # the loader gives back numpy's own descriptors (identity fast paths apply to its batches)
        assert x._data.dtype is np.dtype(np.float32) and y._data.dtype is np.dtype(np.int64)
        F.cross_entropy(net(x), y).backward()
    assert net.weight.grad is not None


def test_big_endian_arrays_become_native_or_are_refused_with_a_reason():
    a = np.arange(12, dtype=">f4").reshape(3, 4)
    for t in (tg.tensor(a), tg.as_tensor(a)):
        assert t.dtype == tg.float32 and t._data.dtype.isnative
        np.testing.assert_array_equal(t.numpy(), a)
        assert F.linear(t, tg.ones(2, 4)).tolist() == [[6.0, 6.0], [22.0, 22.0], [38.0, 38.0]]
    with pytest.raises(ValueError, match="byte order"):
        tg.from_numpy(a)


def test_a_big_endian_checkpoint_loads_in_native_order(tmp_path):
    """A checkpoint written on a big-endian machine (its data and checksums in that order) loads
    as native-order tensors: saving a tensor that wraps a big-endian array writes such a file."""
    h5py = pytest.importorskip("h5py")
    path = tmp_path / "w.pt"
    tg.save({"w": tg.Tensor._wrap(np.arange(6, dtype=">f4").reshape(2, 3))}, path)
    with h5py.File(path, "r") as f:
        orders = []
        f.visititems(lambda n, o: orders.append(o.dtype.str) if isinstance(o, h5py.Dataset) and o.dtype.kind == "f"
                     else None)
    assert orders == [">f4"]
    w = tg.load(path)["w"]
    assert w._data.dtype.isnative and w.dtype == tg.float32
    assert w.tolist() == [[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]]
    assert F.linear(w, tg.ones(1, 3)).tolist() == [[3.0], [12.0]]
