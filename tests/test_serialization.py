"""tapegrad.save / tapegrad.load: exact round trips, no pickle, atomic saves, clear errors."""
import os

import h5py
import numpy as np
import pytest

import tapegrad
import tapegrad.nn as nn
import tapegrad.optim as optim
from tapegrad import serialization


def test_nested_round_trip_is_exact(tmp_path):
    obj = {
        "f32": tapegrad.randn(3, 4),
        "f64": tapegrad.randn(2, dtype=tapegrad.float64),
        "f16": tapegrad.tensor([1.5, -2.0], dtype=tapegrad.float16),
        "i64": tapegrad.arange(5),
        "u8": tapegrad.tensor([0, 255], dtype=tapegrad.uint8),
        "bool": tapegrad.tensor([True, False]),
        "scalar": tapegrad.tensor(3.5),
        "empty": tapegrad.zeros(0, 3),
        "np": np.arange(6, dtype=np.int32).reshape(2, 3),
        "npscalar": np.float32(1.25),
        "numbers": [1, 2.5, -3, 2 ** 80, True, None, "text", "ünïcode"],
        "tuple": (1, (2, "x")),
        7: "int key",
        2.5: "float key",
        None: "none key",
        "a/b.c": {"nested": {"deep": tapegrad.ones(1)}},
    }
    path = tmp_path / "ckpt.h5"
    tapegrad.save(obj, path)
    back = tapegrad.load(path)
    assert list(back) == list(obj)
    for k in ("f32", "f64", "f16", "i64", "u8", "bool", "scalar", "empty"):
        assert isinstance(back[k], tapegrad.Tensor)
        assert back[k].dtype == obj[k].dtype and back[k].shape == obj[k].shape
        assert np.array_equal(back[k].numpy(), obj[k].numpy())
    assert isinstance(back["np"], np.ndarray) and back["np"].dtype == np.int32
    assert type(back["npscalar"]) is np.float32 and back["npscalar"] == np.float32(1.25)
    assert back["numbers"] == obj["numbers"] and type(back["numbers"][4]) is bool
    assert back["tuple"] == (1, (2, "x"))
    assert back[7] == "int key" and back[2.5] == "float key" and back[None] == "none key"
    assert back["a/b.c"]["nested"]["deep"].item() == 1.0
    with h5py.File(path, "r") as f:
        assert f.attrs["format"] == b"tapegrad" and f.attrs["format_version"] == serialization.FORMAT_VERSION


def test_model_and_optimizer_state_round_trip_bit_exact(tmp_path):
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.Flatten(), nn.Linear(8, 3))
    opt = optim.Adam(model.parameters(), lr=0.01, amsgrad=True)
    nn.functional.cross_entropy(model(tapegrad.randn(4, 1, 4, 4)), tapegrad.tensor([0, 1, 2, 0])).backward()
    opt.step()
    tapegrad.save({"model": model.state_dict(), "opt": opt.state_dict()}, tmp_path / "m.pt")
    ck = tapegrad.load(tmp_path / "m.pt", map_location="cpu", weights_only=True)
    for k, v in model.state_dict().items():
        assert ck["model"][k].dtype == v.dtype and np.array_equal(ck["model"][k].numpy(), v.numpy())
    assert ck["opt"]["param_groups"] == opt.state_dict()["param_groups"]
    assert ck["opt"]["param_groups"][0]["betas"] == (0.9, 0.999)
    assert set(ck["opt"]["state"]) == set(range(6))


def test_parameters_and_requires_grad_survive(tmp_path):
    p = nn.Parameter(tapegrad.ones(2))
    tapegrad.save([p, tapegrad.ones(1, requires_grad=True)], tmp_path / "p.h5")
    a, b = tapegrad.load(tmp_path / "p.h5")
    assert isinstance(a, nn.Parameter) and a.requires_grad and b.requires_grad


def test_no_pickle_and_unsupported_objects(tmp_path):
    with pytest.raises(TypeError, match=r"obj\['bad'\]\[1\] is of type object"):
        tapegrad.save({"bad": [1, object()]}, tmp_path / "x.h5")
    assert not (tmp_path / "x.h5").exists() and os.listdir(tmp_path) == []  # temp file cleaned up
    with pytest.raises(TypeError, match="key of type"):
        tapegrad.save({(1, 2): 3}, tmp_path / "x.h5")
    with pytest.raises(ValueError, match="never pickles"):
        tapegrad.save({}, tmp_path / "x.h5", pickle_module=object())
    src = open(serialization.__file__).read()
    assert "import pickle" not in src and "pickle.load" not in src


def test_atomic_save_keeps_previous_file_on_error(tmp_path, monkeypatch):
    path = tmp_path / "ckpt.h5"
    tapegrad.save({"epoch": 1, "w": tapegrad.ones(3)}, path)
    before = path.read_bytes()
    real = serialization._write_node
    calls = {"n": 0}

    def failing(group, name, obj, where, *args):
        calls["n"] += 1
        if calls["n"] == 3:  # fail midway, after part of the file was written
            raise RuntimeError("disk on fire")
        return real(group, name, obj, where, *args)

    monkeypatch.setattr(serialization, "_write_node", failing)
    with pytest.raises(RuntimeError, match="disk on fire"):
        tapegrad.save({"epoch": 2, "w": tapegrad.zeros(3), "x": 1}, path)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["ckpt.h5"]
    monkeypatch.undo()
    assert tapegrad.load(path)["epoch"] == 1


def test_corrupt_and_foreign_files_raise_clear_errors(tmp_path):
    path = tmp_path / "ckpt.h5"
    tapegrad.save({"w": tapegrad.randn(100, 100)}, path)
    data = path.read_bytes()
    trunc = tmp_path / "trunc.h5"
    trunc.write_bytes(data[: len(data) // 2])
    with pytest.raises(serialization.CheckpointError, match="trunc.h5"):
        tapegrad.load(trunc)
    junk = tmp_path / "junk.h5"
    junk.write_bytes(b"not a checkpoint at all" * 10)
    with pytest.raises(serialization.CheckpointError, match="junk.h5"):
        tapegrad.load(junk)
    foreign = tmp_path / "foreign.h5"
    with h5py.File(foreign, "w") as f:
        f["x"] = 1
    with pytest.raises(serialization.CheckpointError, match="not a tapegrad checkpoint"):
        tapegrad.load(foreign)
    with pytest.raises(FileNotFoundError, match="missing.h5"):
        tapegrad.load(tmp_path / "missing.h5")
    with pytest.raises(RuntimeError, match="CPU only"):
        tapegrad.load(path, map_location="cuda:0")


def test_safetensors(tmp_path):
    model = nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2))
    path = tmp_path / "w.safetensors"
    tapegrad.save(model.state_dict(), path)
    flat = tapegrad.load(path)
    assert set(flat) == set(model.state_dict())
    for k, v in model.state_dict().items():
        assert flat[k].dtype == v.dtype and np.array_equal(flat[k].numpy(), v.numpy())
    model2 = nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2))
    model2.load_state_dict(flat)
    from safetensors.numpy import load_file
    assert set(load_file(str(path))) == set(flat)  # readable by the safetensors package itself
    tapegrad.save({"model": {"w": tapegrad.ones(2)}, "b": np.zeros(1)}, tmp_path / "n.safetensors")
    assert set(tapegrad.load(tmp_path / "n.safetensors")) == {"model.w", "b"}  # nested keys flattened with dots
    with pytest.raises(TypeError, match="'epoch' is a int; .safetensors files hold only tensors"):
        tapegrad.save({"epoch": 3}, tmp_path / "bad.safetensors")
    bad = tmp_path / "broken.safetensors"
    bad.write_bytes(path.read_bytes()[:20])
    with pytest.raises(serialization.CheckpointError, match="broken.safetensors"):
        tapegrad.load(bad)


def test_file_objects(tmp_path):
    import io
    buf = io.BytesIO()
    tapegrad.save({"a": tapegrad.ones(2)}, buf)
    buf.seek(0)
    assert tapegrad.load(buf)["a"].tolist() == [1.0, 1.0]


def test_saving_a_whole_module_says_to_save_its_state_dict(tmp_path):
    """torch.save(model, f) pickles the module; tapegrad never pickles, and says what to do."""
    path = tmp_path / "model.pt"
    with pytest.raises(TypeError, match=r"Linear, which cannot be saved .* save its state_dict\(\) instead"):
        tapegrad.save(tapegrad.nn.Linear(2, 2), path)
    assert not path.exists()


def test_pickle_round_trip_as_pytorch():
    """``pickle`` (a results dict, ``pickle.loads(pickle.dumps(model.state_dict()))``, a cache)
    keeps values, dtype, requires_grad and the subclass, as PyTorch's pickle of a tensor; not the
    grad nor the graph (a non-leaf comes back a leaf, as in PyTorch). tapegrad.save stays pickle-free."""
    import pickle
    x = tapegrad.tensor([1.0, 2.0], requires_grad=True)
    x.grad = tapegrad.ones(2)
    for proto in range(2, pickle.HIGHEST_PROTOCOL + 1):
        back = pickle.loads(pickle.dumps(x, protocol=proto))
        assert back.tolist() == [1.0, 2.0] and back.requires_grad and back.is_leaf and back.grad is None
    y = pickle.loads(pickle.dumps(x * 2))
    assert y.tolist() == [2.0, 4.0] and y.requires_grad and y.grad_fn is None
    view = tapegrad.arange(6.0).view(2, 3)[:, 1]
    back = pickle.loads(pickle.dumps(view))
    assert back.tolist() == [1.0, 4.0] and back.dtype == tapegrad.float32
    for dt in (tapegrad.int8, tapegrad.uint64, tapegrad.float64, tapegrad.complex64, tapegrad.bool):
        t = tapegrad.ones(2, 3, dtype=dt)
        assert pickle.loads(pickle.dumps(t)).dtype == dt
    model = tapegrad.nn.Linear(3, 2)
    model.register_buffer("tag", tapegrad.zeros(1), persistent=False)
    clone = pickle.loads(pickle.dumps(model))
    assert type(clone.weight) is tapegrad.nn.Parameter and clone.weight.requires_grad
    assert "tag" not in clone.state_dict() and clone.tag.tolist() == [0.0]
    state = pickle.loads(pickle.dumps(model.state_dict()))
    assert all(np.array_equal(state[k].numpy(), v.numpy()) for k, v in model.state_dict().items())
    sparse = tapegrad.sparse_coo_tensor([[0, 2]], [1.0, 2.0], (4,))
    assert pickle.loads(pickle.dumps(sparse)).to_dense().tolist() == [1.0, 0.0, 2.0, 0.0]
