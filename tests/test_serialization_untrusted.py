"""Checkpoints are untrusted input: tapegrad.load never reads outside the file, never returns
corrupted values silently, never crashes or hangs; saves behave like open() (umask, symlinks)
and clean up after killed saves."""
import json
import os
import stat
import subprocess
import sys
import textwrap

import h5py
import numpy as np
import pytest

import tapegrad
from tapegrad import serialization
from tapegrad.serialization import CheckpointError
from tapegrad.utils.data import HDF5Dataset

SECRET = b"root:x:0:0:secret-password-line\n" * 4


@pytest.fixture
def secret(tmp_path):
    p = tmp_path / "passwd"
    p.write_bytes(SECRET)
    return p


def _v1_root(f):
    """The root of a checkpoint as tapegrad 0.1 (format 1, no checksums) or another tool writes it."""
    f.attrs["format"] = "tapegrad"
    f.attrs["format_version"] = 1


def _refused(path, match):
    with pytest.raises(CheckpointError, match=match) as e:
        tapegrad.load(path)
    assert str(path) in str(e.value)
    assert "secret-password" not in str(e.value)


# ---------------------------------------------------------------- nothing outside the file
def test_external_raw_storage_is_refused(tmp_path, secret):
    path = tmp_path / "ext.h5"
    with h5py.File(path, "w") as f:
        _v1_root(f)
        f.create_dataset("data", shape=(64,), dtype="u1", external=[(str(secret), 0, 64)]).attrs["kind"] = "ndarray"
    with h5py.File(path, "r") as f:
        assert f["data"][()].tobytes() == SECRET[:64]  # what the old loader returned
    _refused(path, "external files")


def test_external_and_soft_links_are_refused(tmp_path):
    other = tmp_path / "other.h5"
    tapegrad.save({"w": tapegrad.ones(2)}, other)
    ext = tmp_path / "extlink.h5"
    with h5py.File(ext, "w") as f:
        _v1_root(f)
        f["data"] = h5py.ExternalLink(str(other), "/data")
    _refused(ext, "/data is an external link")
    soft = tmp_path / "soft.h5"
    with h5py.File(soft, "w") as f:
        _v1_root(f)
        g = f.create_group("data")
        g.attrs.update({"kind": "list", "length": 1})
        f.create_dataset("elsewhere", data=np.arange(3)).attrs["kind"] = "ndarray"
        g["0"] = h5py.SoftLink("/elsewhere")
    _refused(soft, "/data/0 is a soft link")
    # a link the reader would never follow is refused too: the whole file is walked first
    unused = tmp_path / "unused.h5"
    tapegrad.save({"w": tapegrad.ones(2)}, unused)
    with h5py.File(unused, "a") as f:
        f["stray"] = h5py.ExternalLink("/etc/passwd", "/x")
    _refused(unused, "/stray is an external link")


def test_virtual_dataset_is_refused(tmp_path, secret):
    src = tmp_path / "src.h5"
    with h5py.File(src, "w") as f:
        f["x"] = np.arange(8.0)
    path = tmp_path / "vds.h5"
    layout = h5py.VirtualLayout(shape=(8,), dtype="f8")
    layout[:] = h5py.VirtualSource(str(src), "x", shape=(8,))
    with h5py.File(path, "w") as f:
        _v1_root(f)
        f.create_virtual_dataset("data", layout).attrs["kind"] = "ndarray"
    _refused(path, "virtual dataset")


def test_declared_sizes_the_file_cannot_back_are_refused(tmp_path):
    cases = {
        # an unallocated contiguous dataset reads as fill values: any shape from a 2 kB file
        "unbacked": dict(shape=(10 ** 12,), dtype="f8"),
        # a compressed one with no chunk written: the same, through the filter pipeline
        "bomb": dict(shape=(2 ** 40,), dtype="u1", chunks=(2 ** 20,), compression="gzip"),
        # chunks far larger than the data they hold: HDF5 allocates a whole chunk to read one
        "chunk": dict(data=np.zeros(4), chunks=(2 ** 18,), maxshape=(None,)),
        # a filter that needs a plugin (an arbitrary shared library) or can expand without bound
        "plugin": dict(data=np.zeros(4, np.int32), scaleoffset=0),
    }
    for name, kw in cases.items():
        path = tmp_path / f"{name}.h5"
        with h5py.File(path, "w") as f:
            _v1_root(f)
            f.create_dataset("data", **kw).attrs["kind"] = "ndarray"
        _refused(path, {"unbacked": "declares shape", "bomb": "decompression bomb", "chunk": "chunks of",
                        "plugin": "filter"}[name])
    # a real compressed dataset (another tool's file) still loads
    ok = tmp_path / "gzip.h5"
    with h5py.File(ok, "w") as f:
        _v1_root(f)
        f.create_dataset("data", data=np.arange(10000.0), compression="gzip", shuffle=True,
                         fletcher32=True).attrs["kind"] = "ndarray"
    assert np.array_equal(tapegrad.load(ok), np.arange(10000.0))


def test_link_cycles_and_deep_nesting_are_refused(tmp_path):
    path = tmp_path / "cycle.h5"
    with h5py.File(path, "w") as f:
        _v1_root(f)
        g = f.create_group("data")
        g.attrs.update({"kind": "list", "length": 1})
        g["0"] = g  # a hard link to itself: the old reader recursed forever
    _refused(path, "second link")
    deep = [1]
    for _ in range(serialization.MAX_DEPTH + 5):
        deep = [deep]
    with pytest.raises(ValueError, match="nested more than"):
        tapegrad.save(deep, tmp_path / "deep.h5")
    assert os.listdir(tmp_path) == ["cycle.h5"]
    crafted = tmp_path / "deep.h5"
    with h5py.File(crafted, "w") as f:
        _v1_root(f)
        g = f
        for _ in range(serialization.MAX_DEPTH + 5):
            g = g.create_group("data" if g is f else "0")
            g.attrs.update({"kind": "list", "length": 1})
    _refused(crafted, "nested more than")


def test_hdf5dataset_applies_the_same_refusals(tmp_path, secret):
    def write(path, images=None, **kw):
        with h5py.File(path, "w") as f:
            g = f.create_group("train")
            if images is not None:
                g["images"] = images
            else:
                g.create_dataset("images", **kw)
            g["labels"] = np.zeros(2, np.int64)

    write(tmp_path / "ext.h5", shape=(2, 4, 4), dtype="u1", external=[(str(secret), 0, 32)])
    write(tmp_path / "unbacked.h5", shape=(2, 10 ** 6, 10 ** 6), dtype="u1")
    write(tmp_path / "link.h5", images=h5py.ExternalLink(str(tmp_path / "ext.h5"), "/train/images"))
    with h5py.File(tmp_path / "vsplit.h5", "w") as f:
        f["train"] = h5py.ExternalLink(str(tmp_path / "ext.h5"), "/train")
    for name, match in [("ext", "external files"), ("unbacked", "declares shape"), ("link", "external link"),
                        ("vsplit", "external link")]:
        with pytest.raises(ValueError, match=match) as e:
            HDF5Dataset(tmp_path / f"{name}.h5", "train")
        assert f"{name}.h5" in str(e.value) and "secret-password" not in str(e.value)
    # a lazy dataset re-checks when it opens the file: swapped for a crafted one meanwhile
    good = tmp_path / "good.h5"
    write(good, images=np.zeros((2, 4, 4), np.uint8))
    ds = HDF5Dataset(good, "train")
    os.replace(tmp_path / "ext.h5", good)
    with pytest.raises(ValueError, match="external files"):
        ds[0]


# ---------------------------------------------------------------- checksums
def test_a_corrupt_tensor_is_named(tmp_path):
    path = tmp_path / "ckpt.h5"
    w = np.arange(1000, dtype=np.float32)
    tapegrad.save({"model": {"fc.weight": tapegrad.tensor(w)}, "epoch": 3}, path)
    data = bytearray(path.read_bytes())
    at = bytes(data).index(w[500:504].tobytes())
    data[at] ^= 0x10
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=r"ckpt.h5.*obj\['model'\]\['fc.weight'\] does not match its checksum"):
        tapegrad.load(path)
    st = tmp_path / "w.safetensors"
    tapegrad.save({"fc.weight": tapegrad.tensor(w)}, st)
    data = bytearray(st.read_bytes())
    data[bytes(data).index(w[500:504].tobytes())] ^= 0x01
    st.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=r"w.safetensors.*tensor 'fc.weight' does not match its checksum"):
        tapegrad.load(st)


def test_files_without_checksums_still_load(tmp_path):
    path = tmp_path / "v1.h5"
    with h5py.File(path, "w") as f:  # tapegrad 0.1's layout: variable-length strings, no crc32
        _v1_root(f)
        g = f.create_group("data")
        g.attrs.update({"kind": "dict", "length": 2})
        g.create_dataset("0", data=np.arange(3.0)).attrs.update({"kind": "tensor", "key_kind": "str", "key": "w"})
        g.create_dataset("1", data="hello", dtype=h5py.string_dtype()).attrs.update(
            {"kind": "str", "key_kind": "int", "key": "7"})
    back = tapegrad.load(path)
    assert back["w"].tolist() == [0.0, 1.0, 2.0] and back[7] == "hello"
    from safetensors.numpy import save_file
    save_file({"w": np.arange(4, dtype=np.float32)}, str(tmp_path / "hf.safetensors"))  # no metadata at all
    assert tapegrad.load(tmp_path / "hf.safetensors")["w"].tolist() == [0, 1, 2, 3]


FLIPS = textwrap.dedent("""
    import faulthandler, json, random, sys
    import numpy as np
    import tapegrad
    from tapegrad.serialization import CheckpointError
    path, n, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])

    def same(a, b):
        if isinstance(a, tapegrad.Tensor):
            return (isinstance(b, tapegrad.Tensor) and a.dtype == b.dtype and a.shape == b.shape
                    and a.requires_grad == b.requires_grad and np.array_equal(a.detach().numpy(), b.detach().numpy()))
        if isinstance(a, np.ndarray):
            return isinstance(b, np.ndarray) and a.dtype == b.dtype and np.array_equal(a, b)
        if isinstance(a, dict):
            return isinstance(b, dict) and list(a) == list(b) and all(same(a[k], b[k]) for k in a)
        if isinstance(a, (list, tuple)):
            return type(a) is type(b) and len(a) == len(b) and all(map(same, a, b))
        return type(a) is type(b) and a == b

    orig, data = tapegrad.load(path), open(path, "rb").read()
    rng, counts = random.Random(seed), {"error": 0, "same": 0}
    flipped = path + ".flipped" + path[path.rindex("."):]
    for _ in range(n):
        bit = rng.randrange(8 * len(data))
        d = bytearray(data)
        d[bit // 8] ^= 1 << (bit % 8)
        with open(flipped, "wb") as f:
            f.write(d)
        faulthandler.dump_traceback_later(10, exit=True)  # a hang fails the test, naming the bit
        print("bit", bit, flush=True)
        try:
            back = tapegrad.load(flipped)
        except CheckpointError as e:
            assert flipped in str(e), e
            counts["error"] += 1
            continue
        faulthandler.cancel_dump_traceback_later()
        assert same(orig, back), f"bit {bit}: different values loaded silently"
        counts["same"] += 1
    print(json.dumps(counts))
""")


@pytest.mark.parametrize("suffix", [".h5", ".safetensors"])
def test_single_bit_flips_raise_or_load_the_original(tmp_path, suffix):
    """300 random single-bit flips over the whole file (metadata, attributes, keys, data): each
    load raises CheckpointError naming the file or returns exactly the original values. In a
    subprocess, so a crash or hang in HDF5 fails the test instead of killing pytest."""
    tapegrad.manual_seed(0)
    obj = {"w": tapegrad.randn(8, 8), "b": tapegrad.zeros(8, dtype=tapegrad.float64), "i": tapegrad.arange(5)}
    if suffix == ".h5":
        obj.update({"epoch": 3, "lr": 0.1, "name": "run", "hist": [1, (2.5, None), True, 2 ** 70],
                    7: np.arange(4, dtype=np.int16), "p": tapegrad.nn.Parameter(tapegrad.ones(3))})
    path = tmp_path / f"ckpt{suffix}"
    tapegrad.save(obj, path)
    r = subprocess.run([sys.executable, "-c", FLIPS, str(path), "300", "0"], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, (r.stdout[-300:], r.stderr[-2000:])
    counts = json.loads(r.stdout.splitlines()[-1])
    assert counts["error"] + counts["same"] == 300 and counts["error"] > 100, counts


# ---------------------------------------------------------------- saving like open()
def _with_umask(mask, fn):
    old = os.umask(mask)
    try:
        return fn()
    finally:
        os.umask(old)


@pytest.mark.parametrize("suffix", [".h5", ".safetensors"])
def test_saved_files_respect_the_umask_and_keep_an_existing_mode(tmp_path, suffix):
    obj = {"w": tapegrad.ones(2)}
    for mask, want in ((0o022, 0o644), (0o077, 0o600), (0o002, 0o664)):
        path = tmp_path / f"m{mask}{suffix}"
        _with_umask(mask, lambda: tapegrad.save(obj, path))
        assert stat.S_IMODE(path.stat().st_mode) == want, (oct(mask), oct(path.stat().st_mode))
    path = tmp_path / f"kept{suffix}"
    tapegrad.save(obj, path)
    os.chmod(path, 0o640)
    _with_umask(0o022, lambda: tapegrad.save(obj, path))
    assert stat.S_IMODE(path.stat().st_mode) == 0o640


@pytest.mark.parametrize("suffix", [".h5", ".safetensors", ".pt"])
def test_a_read_only_checkpoint_is_not_replaced(tmp_path, suffix, monkeypatch):
    """open(path, "wb") refuses a file its user made read-only; the atomic rename replaced it
    (root may write anything, so the test plays a user without write access)."""
    path = tmp_path / f"best{suffix}"
    fmt = {"format": "pt"} if suffix == ".pt" else {}
    tapegrad.save({"w": tapegrad.ones(2)}, path, **fmt)
    before = path.read_bytes()
    os.chmod(path, 0o444)
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode, **kw: False if mode & os.W_OK and os.fspath(p) == str(path)
                        else real_access(p, mode, **kw))
    with pytest.raises(PermissionError, match="not writable"):
        tapegrad.save({"w": tapegrad.zeros(2)}, path, **fmt)
    assert path.read_bytes() == before and os.listdir(tmp_path) == [path.name]
    with pytest.raises(IsADirectoryError):
        tapegrad.save({"w": tapegrad.zeros(2)}, tmp_path)


def test_saving_through_a_symlink_writes_its_target(tmp_path):
    real = tmp_path / "real" / "ckpt.h5"
    real.parent.mkdir()
    tapegrad.save({"v": 1}, real)
    link = tmp_path / "latest.h5"
    link.symlink_to(real)
    tapegrad.save({"v": 2}, link)
    assert link.is_symlink() and os.readlink(link) == str(real)
    assert tapegrad.load(real)["v"] == 2
    assert sorted(os.listdir(real.parent)) == ["ckpt.h5"] and sorted(os.listdir(tmp_path)) == ["latest.h5", "real"]
    dangling = tmp_path / "dangling.h5"
    dangling.symlink_to(tmp_path / "real" / "new.h5")
    tapegrad.save({"v": 3}, dangling)  # open(dangling, "w") creates the target too
    assert tapegrad.load(tmp_path / "real" / "new.h5")["v"] == 3 and dangling.is_symlink()


def test_temp_files_of_killed_saves_are_removed_by_the_next_save(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    path = tmp_path / "ckpt.h5"
    stale = tmp_path / f".ckpt.h5.{dead.pid}.0badf00d.tmp"
    alive = tmp_path / f".ckpt.h5.{os.getpid()}.00c0ffee.tmp"  # another thread of ours, mid-save
    other = tmp_path / f".other.h5.{dead.pid}.0badf00d.tmp"  # another target's
    foreign = tmp_path / ".ckpt.h5.notours.tmp"  # not our naming: never touched
    for p in (stale, alive, other, foreign):
        p.write_bytes(b"partial")
    tapegrad.save({"v": 1}, path)
    assert sorted(os.listdir(tmp_path)) == sorted(p.name for p in (path, alive, other, foreign))
    # a save killed halfway leaves its temp file; the next save removes it
    script = textwrap.dedent(f"""
        import os, tapegrad
        from tapegrad import serialization
        real = serialization._write_node
        def die(*a, **k):
            os._exit(9)
        serialization._write_node = die
        tapegrad.save({{"v": 2}}, {str(path)!r})
    """)
    assert subprocess.run([sys.executable, "-c", script]).returncode == 9
    left = [n for n in os.listdir(tmp_path) if n.startswith(".ckpt.h5.") and n.endswith(".tmp")
            and n not in (alive.name, foreign.name)]
    assert len(left) == 1
    assert tapegrad.load(path)["v"] == 1  # the killed save did not touch the checkpoint
    tapegrad.save({"v": 3}, path)
    assert not (tmp_path / left[0]).exists() and tapegrad.load(path)["v"] == 3


# ---------------------------------------------------------------- beyond the file's own size
def _torch_zip(path, views, storage=b"\x00\x00\x80?"):
    """A torch.save archive whose data.pkl is a dict of tensors, each ``(size, stride)`` on the one
    float32 storage ``storage`` (written with _torch_format's own pickler primitives)."""
    import zipfile
    from tapegrad import _torch_format
    p = _torch_format._Pickler()
    p.out += b"}("
    for i, (size, stride) in enumerate(views):
        p.save(f"t{i}", "obj")
        p.glob("torch._utils", "_rebuild_tensor_v2")
        p.out += b"(("
        for v in ("storage",):
            p.save(v, "obj")
        p.glob("torch", "FloatStorage")
        for v in ("0", "cpu", len(storage) // 4):
            p.save(v, "obj")
        p.out += b"tQ"
        for v in (0, size, stride, False):
            p.save(v, "obj")
        p.hooks()
        p.out += b"tR"
    p.out += b"u."
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("archive/data.pkl", bytes(p.out))
        zf.writestr("archive/byteorder", b"little")
        zf.writestr("archive/data/0", storage)


def test_overlapping_views_cannot_multiply_a_small_file(tmp_path):
    """Each loaded tensor is a copy out of its storage, so stride-0 views of one element each
    materialise their whole size: eight views of 2**28 - 1 elements from a 2 kB file asked for
    8 GiB (each view alone was under the 1 GiB cap). The total a load builds is bounded by the
    file's size plus that cap."""
    path = tmp_path / "views.pt"
    _torch_zip(path, [((2 ** 28 - 1,), (0,))] * 8)
    assert path.stat().st_size < 4096
    _refused(path, r"brings the tensors built from this \d+-byte file to 2147483640 bytes, more than")
    # a few small stride-0 views (an expanded buffer) and one storage read twice still load
    ok = tmp_path / "ok.pt"
    _torch_zip(ok, [((3, 4), (0, 0)), ((1,), (1,)), ((1,), (1,))])
    back = tapegrad.load(ok)
    assert back["t0"].tolist() == [[1.0] * 4] * 3 and back["t1"].tolist() == back["t2"].tolist() == [1.0]


def test_an_hdf5_null_dataspace_is_refused(tmp_path):
    """h5py.Empty reads back as an h5py.Empty object, which np.asarray made a 0-d object array:
    the load returned a tensor of dtype object."""
    for kind in ("tensor", "ndarray", "float"):
        path = tmp_path / f"empty-{kind}.h5"
        with h5py.File(path, "w") as f:
            _v1_root(f)
            f.create_dataset("data", data=h5py.Empty("f4")).attrs["kind"] = kind
        _refused(path, "is an empty dataset")
