"""tapegrad.load of PyTorch checkpoints (tapegrad/_torch_format.py): files written by torch load
with the right values, layouts and types; crafted files raise CheckpointError and never run code."""
import io
import pickle
import struct
import zipfile

import numpy as np
import pytest

import tapegrad
import tapegrad.nn as nn
import tapegrad.nn.functional as F
from tapegrad.serialization import CheckpointError


# ---------------------------------------------------------------- writing pickles by hand
def _str(s):
    b = s.encode()
    return b"X" + struct.pack("<I", len(b)) + b


def _int(v):
    if -2 ** 31 <= v < 2 ** 31:
        return b"J" + struct.pack("<i", v)
    b = v.to_bytes(16, "little", signed=True)
    return b"\x8a" + bytes([len(b)]) + b


def _glob(module, name):
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def _tup(*parts):
    return b"(" + b"".join(parts) + b"t"


_HOOKS = _glob("collections", "OrderedDict") + b")R"


def _tensor(key="0", stype="FloatStorage", numel=4, offset=0, size=(4,), stride=(1,), rebuild="_rebuild_tensor_v2"):
    pid = _tup(_str("storage"), _glob("torch", stype), _str(key), _str("cpu"), _int(numel)) + b"Q"
    args = _tup(pid, _int(offset), _tup(*map(_int, size)), _tup(*map(_int, stride)), b"\x89", _HOOKS)
    return _glob("torch._utils", rebuild) + args + b"R"


def _pt(path, body, records=None, prefix="archive/", byteorder=b"little"):
    """A torch.save-shaped zip: ``body`` is the pickle between PROTO 2 and STOP."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        z.writestr(prefix + "data.pkl", b"\x80\x02" + body + b".")
        if byteorder is not None:
            z.writestr(prefix + "byteorder", byteorder)
        for name, data in (records or {}).items():
            z.writestr(prefix + name, data)
        z.writestr(prefix + "version", b"3\n")
    return path


_F4 = {"data/0": np.arange(4, dtype="<f4").tobytes()}


def test_hand_written_tensor_loads(tmp_path):
    t = tapegrad.load(_pt(tmp_path / "t.pt", _tensor(), _F4))
    assert isinstance(t, tapegrad.Tensor) and t.dtype == tapegrad.float32
    assert t.tolist() == [0.0, 1.0, 2.0, 3.0] and not t.requires_grad


def test_big_endian_file_and_file_object(tmp_path):
    recs = {"data/0": np.arange(4, dtype=">f4").tobytes()}
    path = _pt(tmp_path / "be.pt", _tensor(), recs, byteorder=b"big")
    assert tapegrad.load(path).tolist() == [0.0, 1.0, 2.0, 3.0]
    with open(path, "rb") as fh:
        assert tapegrad.load(io.BytesIO(fh.read())).tolist() == [0.0, 1.0, 2.0, 3.0]


def test_views_into_one_storage_get_offsets_and_strides(tmp_path):
    body = (b"}(" + _str("row") + _tensor(numel=6, offset=3, size=(3,), stride=(1,))
            + _str("col") + _tensor(numel=6, offset=1, size=(2,), stride=(3,))
            + _str("t") + _tensor(numel=6, size=(3, 2), stride=(1, 3)) + b"u")
    d = tapegrad.load(_pt(tmp_path / "v.pt", body, {"data/0": np.arange(6, dtype="<f4").tobytes()}))
    assert d["row"].tolist() == [3, 4, 5] and d["col"].tolist() == [1, 4]
    assert d["t"].tolist() == [[0, 3], [1, 4], [2, 5]]
    d["row"][0] = 99.0  # each tensor owns its memory
    assert d["t"].tolist()[0][1] == 3


# ---------------------------------------------------------------- crafted files
def _marker_cmd(tmp_path):
    return tmp_path / "pwned", f"touch {tmp_path / 'pwned'}"


@pytest.mark.parametrize("module,name", [("os", "system"), ("posix", "system"), ("builtins", "eval"),
                                         ("__builtin__", "eval"), ("builtins", "exec"), ("subprocess", "call"),
                                         ("torch", "load"), ("torch.nn.modules.linear", "Linear")])
def test_global_of_any_other_callable_is_refused_without_running(tmp_path, module, name):
    marker, cmd = _marker_cmd(tmp_path)
    arg = f"__import__('os').system({cmd!r})" if name in ("eval", "exec") else cmd
    path = _pt(tmp_path / "evil.pt", _glob(module, name) + _tup(_str(arg)) + b"R")
    with pytest.raises(CheckpointError, match=rf"evil\.pt.*GLOBAL builtins\.{name}|evil\.pt.*GLOBAL {module}\.{name}"):
        tapegrad.load(path)
    assert not marker.exists()


def test_stack_global_and_pickle_module_are_refused(tmp_path):
    marker, cmd = _marker_cmd(tmp_path)
    body = _str("os") + _str("system") + b"\x93" + _tup(_str(cmd)) + b"R"
    with pytest.raises(CheckpointError, match="GLOBAL os.system refused"):
        tapegrad.load(_pt(tmp_path / "sg.pt", body))
    # a real pickle of os.system, as pickle.dumps writes it (protocol 4: framing, STACK_GLOBAL, MEMOIZE)
    evil = pickle.dumps(_Evil(cmd), protocol=4)
    with zipfile.ZipFile(tmp_path / "p4.pt", "w") as z:
        z.writestr("archive/data.pkl", evil)
    with pytest.raises(CheckpointError, match=r"GLOBAL (posix|os)\.system refused"):
        tapegrad.load(tmp_path / "p4.pt")
    assert not marker.exists()
    pickle.loads(evil)  # the same bytes do run the command under pickle: the check above can fail
    assert marker.exists()


class _Evil:
    def __init__(self, cmd):
        self.cmd = cmd

    def __reduce__(self):
        import os
        return os.system, (self.cmd,)


@pytest.mark.parametrize("body,match", [
    # allowed names called with arguments they must not accept
    (_glob("collections", "OrderedDict") + _tup(_str("touch x")) + b"R", r"OrderedDict\('touch x'\)"),
    (_glob("_codecs", "encode") + _tup(_str("x"), _str("rot13")) + b"R", "only \\(str, 'latin1'\\)"),
    (_glob("builtins", "bytearray") + _tup(b"\x8a\x05\x00\x00\x00\x00\x01") + b"R", "only bytes"),
    (_glob("torch", "Size") + _tup(_str("abc")) + b"R", "tuple of ints"),
    (_glob("torch._utils", "_rebuild_tensor_v2") + _tup(_str("os.system"), _int(0), b")", b")", b"\x89", b"N") + b"R",
     "not a storage reference"),
    (_glob("torch._utils", "_rebuild_parameter") + _tup(_str("x"), b"\x88", b"N") + b"R", "expected a tensor"),
    (_glob("torch._tensor", "_rebuild_from_type_v2") + _tup(_glob("torch", "Size"), _glob("torch", "Tensor"), b")",
                                                            b"N") + b"R", "only tensor rebuild functions"),
    (_glob("torch._utils", "_rebuild_tensor_v2") + _tup(_int(1)) + b"R", "called with 1 arguments"),
    # callables that are not functions: a storage type, a dtype, a string
    (_glob("torch", "FloatStorage") + b")R", "calls torch.FloatStorage"),
    (_glob("torch", "float32") + b")R", "calls tapegrad.float32"),
    (_str("os.system") + b")R", "calls 'os.system'"),
    (_glob("torch", "Tensor") + b")R", "calls torch.Tensor"),
    (_glob("torch", "Tensor") + b")\x81", "NEWOBJ"),
    # object state on anything but a state_dict's OrderedDict
    (b"]}b", "sets the state of a list"),
    (_glob("collections", "OrderedDict") + b")R}(" + _str("keys") + _int(1) + b"ub", "only a state_dict's _metadata"),
    # opcodes a checkpoint never needs
    (b"(" + _str("os") + _str("system") + b"i", "opcode b'i'"),
    (b"\x82\x01", "opcode b'\\\\x82'"),
    (b"(o", "opcode b'o'"),
    # malformed streams
    (b"N0R", "stack underflow"),
    (b"h\x05", "memo entry 5"),
    (b"X\xff\xff\xff\x00", "declares a"),
    (b"}" + b"]" + _int(1) + b"s", "unhashable list"),
    (b"]q\x00h\x00a", "contains itself"),
    (_int(1) + b"\x85" * 200_000, "nests tuples more than 100 deep"),
    (b"]" * 200 + b"a" * 199, "nests containers more than 100 deep"),
    (_glob("torch", "float8_e4m3fn"), "dtype torch.float8_e4m3fn, which tapegrad does not have"),
])
def test_crafted_pickles_raise(tmp_path, body, match):
    with pytest.raises(CheckpointError, match=match):
        tapegrad.load(_pt(tmp_path / "bad.pt", body))


@pytest.mark.parametrize("kwargs,records,match", [
    (dict(key="7"), _F4, r"record 'archive/data/7' is missing"),
    (dict(numel=8), _F4, "has 16 bytes; expected exactly 32"),  # numel larger than the storage record
    (dict(numel=2 ** 60), _F4, "expected exactly"),  # a huge declared size is never allocated
    (dict(size=(5,)), _F4, r"reach element 4, past the storage's 4 elements"),
    (dict(size=(2, 2), stride=(3, 1)), _F4, "past the storage"),
    (dict(offset=-1), _F4, "storage offset -1 is outside"),
    (dict(offset=5, size=(0,)), _F4, "storage offset 5 is outside"),
    (dict(stride=(-1,), offset=3), _F4, "negative size or stride"),
    (dict(numel=1, size=(1 << 20, 1 << 20), stride=(0, 0)), {"data/0": b"\0" * 4}, "would expand 4 stored bytes"),
    (dict(key="../../etc/passwd"), _F4, "not a valid record name"),
    (dict(stype="QInt8Storage", numel=2), _F4, "torch.qint8, which tapegrad does not have"),
    (dict(stype="ComplexFloatStorage", numel=2), _F4, "past the storage's 2 elements"),  # complex64: 8 bytes each
    (dict(rebuild="_rebuild_qtensor"), _F4, "quantized tensors are not supported"),
    (dict(rebuild="_rebuild_sparse_tensor"), _F4, "sparse tensors are not supported"),
])
def test_crafted_storages_raise(tmp_path, kwargs, records, match):
    with pytest.raises(CheckpointError, match=match):
        tapegrad.load(_pt(tmp_path / "bad.pt", _tensor(**kwargs), records))


def test_one_storage_claimed_with_two_sizes_is_refused(tmp_path):
    body = _tensor(numel=4) + _tensor(numel=2, stype="DoubleStorage") + b"\x86"
    with pytest.raises(CheckpointError, match="referenced twice"):
        tapegrad.load(_pt(tmp_path / "two.pt", body, _F4))


def test_zip_headers_that_lie_or_compress_are_refused(tmp_path):
    path = _pt(tmp_path / "lie.pt", _tensor(numel=2 ** 29), _F4)
    raw = bytearray(path.read_bytes())
    cd = raw.index(b"PK\x01\x02")  # central directory entries: sizes at +20, name at +46
    while raw[cd + 46:cd + 46 + 14] != b"archive/data/0":
        cd = raw.index(b"PK\x01\x02", cd + 4)
    struct.pack_into("<II", raw, cd + 20, 2 ** 31, 2 ** 31)  # compressed and uncompressed sizes: 2 GiB
    path.write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match="declares 2147483648 bytes in an archive of"):
        tapegrad.load(path)

    with zipfile.ZipFile(tmp_path / "deflate.pt", "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("archive/data.pkl", b"\x80\x02" + _tensor(numel=2 ** 24) + b".")
        z.writestr("archive/data/0", b"\0" * 2 ** 26)  # 64 KiB on disk, 64 MiB inflated
    assert (tmp_path / "deflate.pt").stat().st_size < 2 ** 17
    with pytest.raises(CheckpointError, match="is compressed"):
        tapegrad.load(tmp_path / "deflate.pt")


def test_mutated_files_raise_checkpoint_error_only(tmp_path):
    """Random byte flips in a valid file: each load either succeeds or raises CheckpointError."""
    obj = {"w": tapegrad.randn(3, 4), "i": tapegrad.arange(5), "p": nn.Parameter(tapegrad.ones(2)),
           "meta": [1, 2.5, None, "s", b"b", (3, 4), {"k": tapegrad.Size([2])}], "dt": tapegrad.float16}
    buf = io.BytesIO()
    tapegrad.save(obj, buf, format="pt")
    raw = buf.getvalue()
    records = {n: zipfile.ZipFile(io.BytesIO(raw)).read(n) for n in zipfile.ZipFile(io.BytesIO(raw)).namelist()}
    pkl = bytearray(records["archive/data.pkl"])
    rng = np.random.default_rng(0)
    loaded = 0
    for trial in range(400):
        whole = trial % 4 == 0  # flip bytes anywhere in the file, or only inside the pickle
        b = bytearray(raw if whole else pkl)
        for j in rng.integers(0, len(b), rng.integers(1, 5)):
            b[j] = rng.integers(0, 256)
        if not whole:
            out = io.BytesIO()
            with zipfile.ZipFile(out, "w") as z:
                for n, data in records.items():
                    z.writestr(n, bytes(b) if n == "archive/data.pkl" else data)
            b = out.getvalue()
        try:
            tapegrad.load(io.BytesIO(bytes(b)))
            loaded += 1
        except CheckpointError:
            pass
    assert 0 < loaded < 400


def test_truncated_and_foreign_files(tmp_path):
    path = _pt(tmp_path / "t.pt", _tensor(), _F4)
    (tmp_path / "cut.pt").write_bytes(path.read_bytes()[:-60])
    with pytest.raises(CheckpointError, match="cut.pt"):
        tapegrad.load(tmp_path / "cut.pt")
    with pytest.raises(CheckpointError, match="data.pkl is truncated"):
        tapegrad.load(_pt(tmp_path / "short.pt", _str("abc")[:-1]))
    with zipfile.ZipFile(tmp_path / "other.zip", "w") as z:
        z.writestr("readme.txt", "hello")
    with pytest.raises(CheckpointError, match="zip archive but not a PyTorch checkpoint"):
        tapegrad.load(tmp_path / "other.zip")
    legacy = pickle.dumps(0x1950A86A20F9469CFC6C, protocol=2) + pickle.dumps(1001, protocol=2)
    (tmp_path / "old.pt").write_bytes(legacy)
    with pytest.raises(CheckpointError, match="legacy format"):
        tapegrad.load(tmp_path / "old.pt")


def test_tapegrad_checkpoints_still_load_as_hdf5(tmp_path):
    tapegrad.save({"w": tapegrad.ones(2)}, tmp_path / "mine.pt")
    assert tapegrad.load(tmp_path / "mine.pt")["w"].tolist() == [1.0, 1.0]


# ---------------------------------------------------------------- files written by torch
class TapegradLeNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 20, kernel_size=5)
        self.conv2 = nn.Conv2d(20, 50, kernel_size=5)
        self.fc1 = nn.Linear(800, 500)
        self.fc2 = nn.Linear(500, 10)

    def forward(self, x):
        x = F.max_pool2d(self.conv1(x), 2)
        x = F.max_pool2d(self.conv2(x), 2)
        x = F.relu(self.fc1(x.reshape(x.shape[0], 800)))
        return self.fc2(x)


def _torch_lenet(torch):
    tnn, tF = torch.nn, torch.nn.functional

    class LeNet(tnn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = tnn.Conv2d(1, 20, kernel_size=5)
            self.conv2 = tnn.Conv2d(20, 50, kernel_size=5)
            self.fc1 = tnn.Linear(800, 500)
            self.fc2 = tnn.Linear(500, 10)

        def forward(self, x):
            x = tF.max_pool2d(self.conv1(x), 2)
            x = tF.max_pool2d(self.conv2(x), 2)
            x = tF.relu(self.fc1(x.reshape(x.shape[0], 800)))
            return self.fc2(x)

    return LeNet()


def test_pytorch_lenet_state_dict_gives_the_same_logits(tmp_path):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    tmodel = _torch_lenet(torch)
    torch.save(tmodel.state_dict(), tmp_path / "lenet.pt")
    model = TapegradLeNet()
    sd = tapegrad.load(tmp_path / "lenet.pt")
    assert list(sd) == list(tmodel.state_dict()) and hasattr(sd, "_metadata")
    model.load_state_dict(sd)
    x = np.random.default_rng(0).standard_normal((4, 1, 28, 28)).astype(np.float32)
    with torch.no_grad():
        want = tmodel(torch.from_numpy(x)).numpy()
    got = model(tapegrad.tensor(x)).detach().numpy()
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    assert np.abs(want).max() > 1e-2  # the logits are not trivially zero


def test_pytorch_tensors_of_every_dtype_and_layout(tmp_path):
    torch = pytest.importorskip("torch")
    base = torch.arange(24, dtype=torch.float32).reshape(4, 6)
    obj = {
        "dtypes": {str(dt): (torch.arange(-3, 3) % 2 if dt is torch.bool else torch.arange(-3, 3)).to(dt)
                   for dt in (torch.float32, torch.float64, torch.float16, torch.int64, torch.int32, torch.int16,
                              torch.int8, torch.uint8, torch.bool)},
        "slice": base[1:3, ::2], "transpose": base.t(), "shared": [base, base[2], base.t()[1:, 3]],
        "expand": torch.ones(3).expand(4, 3), "scalar": torch.tensor(2.5), "empty": torch.zeros(0, 3),
        "nested": {"a": [1, (2.0, "x"), {"b": None, "c": True}], 3: -(2 ** 70)}, "bytes": b"\x00\xff",
        "size": torch.Size([2, 3]), "dtype": torch.float16, "device": torch.device("cpu"),
        "param": torch.nn.Parameter(torch.ones(2)), "frozen": torch.nn.Parameter(torch.ones(1), requires_grad=False),
        "grad_leaf": torch.ones(2, requires_grad=True),
    }
    obj["attr"] = torch.ones(2)
    obj["attr"].note = "tensors with Python attributes pickle through _rebuild_from_type_v2"
    torch.save(obj, tmp_path / "all.pt")
    back = tapegrad.load(tmp_path / "all.pt")
    for name, t in obj["dtypes"].items():
        got = back["dtypes"][name]
        assert got.dtype == np.dtype(str(t.numpy().dtype)) and np.array_equal(got.numpy(), t.numpy()), name
    for k in ("slice", "transpose", "expand", "scalar", "empty", "attr"):
        assert back[k].shape == tuple(obj[k].shape) and np.array_equal(back[k].numpy(), obj[k].numpy()), k
    for got, want in zip(back["shared"], obj["shared"]):
        assert np.array_equal(got.numpy(), want.numpy())
    assert back["nested"] == obj["nested"] and back["bytes"] == b"\x00\xff"
    assert back["size"] == (2, 3) and isinstance(back["size"], tapegrad.Size)
    assert back["dtype"] == tapegrad.float16 and back["device"] == tapegrad.device("cpu")
    assert type(back["param"]) is nn.Parameter and back["param"].requires_grad
    assert type(back["frozen"]) is nn.Parameter and not back["frozen"].requires_grad
    assert back["grad_leaf"].requires_grad and back["grad_leaf"].is_leaf


def test_pytorch_optimizer_state_and_buffer_file_object(tmp_path):
    torch = pytest.importorskip("torch")
    m = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.BatchNorm1d(2))
    opt = torch.optim.Adam(m.parameters(), lr=0.01, betas=(0.8, 0.9))
    m(torch.randn(5, 3)).sum().backward()
    opt.step()
    buf = io.BytesIO()
    torch.save({"model": m.state_dict(), "opt": opt.state_dict(), "epoch": 3}, buf)
    back = tapegrad.load(io.BytesIO(buf.getvalue()))
    assert back["epoch"] == 3 and back["opt"]["param_groups"][0]["betas"] == (0.8, 0.9)
    st = back["opt"]["state"][0]
    assert np.array_equal(st["exp_avg"].numpy(), opt.state_dict()["state"][0]["exp_avg"].numpy())
    assert back["model"]["1.num_batches_tracked"].dtype == tapegrad.int64


@pytest.mark.filterwarnings("ignore:`torch.jit")
def test_pytorch_files_tapegrad_cannot_hold_are_refused_clearly(tmp_path):
    torch = pytest.importorskip("torch")
    torch.save({"w": torch.ones(2, dtype=torch.bfloat16)}, tmp_path / "bf16.pt")
    if tapegrad._dtype.bfloat16 is None:  # bfloat16 needs ml_dtypes: the error says so
        with pytest.raises(CheckpointError, match="pip install ml_dtypes"):
            tapegrad.load(tmp_path / "bf16.pt")
    else:
        assert tapegrad.load(tmp_path / "bf16.pt")["w"].dtype == tapegrad.bfloat16
    torch.save({"w": torch.ones(2, dtype=torch.float8_e4m3fn)}, tmp_path / "f8.pt")
    with pytest.raises(CheckpointError, match="float8_e4m3fn"):
        tapegrad.load(tmp_path / "f8.pt")
    torch.save(torch.nn.Linear(2, 2), tmp_path / "module.pt")  # the whole module, pickled
    with pytest.raises(CheckpointError, match=r"GLOBAL torch\.nn\.modules\.linear\.Linear refused.*state_dict"):
        tapegrad.load(tmp_path / "module.pt")
    torch.save(torch.ones(2), tmp_path / "legacy.pt", _use_new_zipfile_serialization=False)
    with pytest.raises(CheckpointError, match="legacy format"):
        tapegrad.load(tmp_path / "legacy.pt")
    torch.jit.save(torch.jit.script(torch.nn.Linear(2, 2)), tmp_path / "script.pt")
    with pytest.raises(CheckpointError, match="TorchScript"):
        tapegrad.load(tmp_path / "script.pt")


# ---------------------------------------------------------------- tapegrad.save(..., format="pt")
def test_save_pt_round_trips_through_tapegrad(tmp_path):
    w = tapegrad.arange(6.0).reshape(2, 3)
    obj = {"w": w, "wt": w.t(), "same": w, "p": nn.Parameter(tapegrad.ones(2)), "grad": tapegrad.ones(1,
           requires_grad=True), "ints": tapegrad.tensor([1, -2], dtype=tapegrad.int16), "flags": tapegrad.tensor([True]),
           "scalar": tapegrad.tensor(4.5, dtype=tapegrad.float64), "empty": tapegrad.zeros(0, 2),
           "meta": [1, 2 ** 80, -7, 0.25, None, False, "ü", b"\x00\xff", (3, (4,))], "dtype": tapegrad.float16,
           "size": tapegrad.Size([2, 3]), "np": np.float32(1.5)}
    tapegrad.save(obj, tmp_path / "x.pt", format="pt")
    back = tapegrad.load(tmp_path / "x.pt")
    for k in ("w", "wt", "same", "ints", "flags", "scalar", "empty"):
        assert back[k].dtype == obj[k].dtype and np.array_equal(back[k].numpy(), obj[k].detach().numpy()), k
    assert type(back["p"]) is nn.Parameter and back["p"].requires_grad and back["grad"].requires_grad
    assert back["meta"] == obj["meta"] and back["dtype"] == tapegrad.float16 and back["size"] == (2, 3)
    assert back["np"] == 1.5
    buf = io.BytesIO()
    tapegrad.save({"w": w}, buf, format="pt")
    assert tapegrad.load(io.BytesIO(buf.getvalue()))["w"].tolist() == w.tolist()


def test_save_pt_refuses_what_torch_load_would_refuse(tmp_path):
    with pytest.raises(TypeError, match=r"obj\['a'\] is of type ndarray"):
        tapegrad.save({"a": np.ones(2)}, tmp_path / "a.pt", format="pt")
    with pytest.raises(TypeError, match="set"):
        tapegrad.save({1, 2}, tmp_path / "b.pt", format="pt")
    with pytest.raises(ValueError, match="format must be None or 'pt'"):
        tapegrad.save({}, tmp_path / "c.pt", format="pickle")
    assert not list(tmp_path.iterdir())  # no file, not even a temporary one


def test_save_pt_is_read_by_torch_load_weights_only(tmp_path):
    torch = pytest.importorskip("torch")
    tapegrad.manual_seed(0)
    model = TapegradLeNet()
    sd = model.state_dict()
    sd["tied"] = sd["fc2.weight"]
    tapegrad.save(sd, tmp_path / "lenet.pt", format="pt")
    for mmap in (False, True):  # mmap needs the 64-byte storage alignment torch writes
        loaded = torch.load(tmp_path / "lenet.pt", weights_only=True, mmap=mmap)
        assert loaded["tied"].untyped_storage().data_ptr() == loaded["fc2.weight"].untyped_storage().data_ptr()
    del loaded["tied"]
    tmodel = _torch_lenet(torch)
    tmodel.load_state_dict(loaded)
    x = np.random.default_rng(1).standard_normal((3, 1, 28, 28)).astype(np.float32)
    with torch.no_grad():
        got = tmodel(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(got, model(tapegrad.tensor(x)).detach().numpy(), rtol=1e-5, atol=1e-5)
    tapegrad.save({"p": nn.Parameter(tapegrad.ones(2)), "b": b"\x01", "s": tapegrad.Size([1]),
                   "d": tapegrad.int8, "big": 2 ** 90}, tmp_path / "misc.pt", format="pt")
    misc = torch.load(tmp_path / "misc.pt", weights_only=True)
    assert isinstance(misc["p"], torch.nn.Parameter) and misc["p"].requires_grad
    assert misc["b"] == b"\x01" and misc["s"] == torch.Size([1]) and misc["d"] is torch.int8 and misc["big"] == 2 ** 90
