"""Checkpoints without pickle: ``tapegrad.save(obj, path)`` / ``tapegrad.load(path)``.

Two formats, chosen by the file name:

* **HDF5** (any name but ``*.safetensors``): nested dicts, lists and tuples of tensors, numpy
  arrays, numbers, strings, bools and None, exactly as given (dtype, shape, container types
  and dict key types are restored). Layout: every container is a group and every leaf a dataset;
  children are named ``0, 1, ...`` in order and carry a ``kind`` attribute (and a dict child
  its ``key`` and ``key_kind``), so any key, including ``"a/b"`` or ``3``, round-trips. The root
  carries ``format = "tapegrad"`` and ``format_version``. Every entry carries a ``crc32`` of its
  name, attributes, dtype, shape and bytes.
* **safetensors** (``*.safetensors``): a flat ``{name: tensor}`` dict, through the ``safetensors``
  package's numpy API, so weights move to and from PyTorch / Hugging Face. Nested dicts are
  flattened with dotted keys (``{"model": {"fc.weight": t}}`` -> ``"model.fc.weight"``); anything
  that is not a tensor or array is refused. ``load`` returns the flat dict. The CRC-32 of every
  tensor goes to the header's ``__metadata__`` (``"tapegrad.crc32"``), which other tools ignore.

A checkpoint is untrusted input. Loading never executes code from the file, never reads outside
it (HDF5 external storage, virtual datasets, soft and external links are refused), never
decompresses more than the declared shapes allow, and never returns values that differ from
what was saved: a corrupt file raises ``CheckpointError`` naming the file and the entry. Files
without checksums (format 1, or written by other tools) still load, unverified.

Saving is atomic: the data goes to a temporary file next to the target (``.NAME.PID.XXXX.tmp``),
is fsync'ed, and replaces the target with ``os.replace``; an error mid-save leaves any earlier
file untouched, and the temporary files of a save that was killed are removed by the next save
to the same path. The file gets the target's mode if it existed, else the umask's, as ``open()``
would; a symlink is followed and its target replaced. An existing file this user may not write
(read-only) is refused with ``PermissionError`` and left as it is, as ``open(path, "wb")`` would.

>>> tapegrad.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "epoch": 3}, "ckpt.h5")
>>> ckpt = tapegrad.load("ckpt.h5")
>>> model.load_state_dict(ckpt["model"])
"""
from __future__ import annotations

import errno
import json
import math
import numbers
import os
import re
import secrets
import stat
import typing
import zlib

import numpy as np

from . import _dtype
from .tensor import Tensor
from . import _torch_format
from .device import check_cpu, device
from .nn.parameter import Parameter
from .storage import UntypedStorage

FORMAT = "tapegrad"
FORMAT_VERSION = 2  # 2: every entry has a crc32 attribute; 1 (no checksums) still loads
MAX_DEPTH = 100  # nesting of dicts/lists/tuples; deeper is refused on save and on load

_INT64 = (np.iinfo(np.int64).min, np.iinfo(np.int64).max)
_DTYPES_BY_NAME = {repr(d).removeprefix("tapegrad."): d for d in _dtype._PUBLIC.values()}  # what a saved dtype may name
_SAFETENSORS_CRC_KEY = "tapegrad.crc32"


class CheckpointError(RuntimeError):
    """A checkpoint file that cannot be trusted: truncated, corrupt, crafted, or not a tapegrad checkpoint."""


# ---------------------------------------------------------------- public API
def save(obj, f, pickle_module=None, pickle_protocol=None, _use_new_zipfile_serialization=True, *,
         format=None) -> None:
    """Save ``obj`` to the path ``f`` (HDF5, or safetensors for ``*.safetensors``) atomically.

    ``f`` may also be a writable binary file object (HDF5 only, written directly). The
    ``pickle_*`` arguments exist for PyTorch compatibility and must be left at None.
    ``format="pt"`` writes PyTorch's own format instead, for ``torch.load(f, weights_only=True)``.
    """
    if pickle_module is not None:
        raise ValueError("tapegrad.save never pickles: pickle_module is not supported")
    if format is not None:  # PyTorch's zip format (tapegrad/_torch_format.py)
        if format != "pt":
            raise ValueError(f"tapegrad.save: format must be None or 'pt', got {format!r}")
        return _torch_format.save(obj, f) if hasattr(f, "write") else atomic_write(os.fspath(f), lambda t: _torch_format.save(obj, t))
    if not isinstance(f, (str, os.PathLike)):
        if not hasattr(f, "write"):
            raise TypeError(f"tapegrad.save: expected a path or a binary file object, got {type(f).__name__}")
        _write_h5(obj, f)
        return
    path = os.fspath(f)
    if path.endswith(".safetensors"):
        flat = _flatten_for_safetensors(obj)
        atomic_write(path, lambda tmp: _write_safetensors(flat, tmp))
    else:
        atomic_write(path, lambda tmp: _write_h5(obj, tmp))


def load(f, map_location=None, pickle_module=None, *, weights_only=True, mmap=None, **pickle_load_args):
    """Load what ``save`` wrote. Tensors come back as leaf tensors on the CPU.

    ``map_location`` may be None, ``"cpu"``, a ``tapegrad.device``, a dict or a callable (all
    mean the CPU here); ``weights_only`` is accepted for PyTorch compatibility: loading is always
    safe, since no pickle is involved. A truncated, corrupt, crafted or foreign file raises
    ``CheckpointError`` naming the path (and the entry, for a checksum mismatch).
    """
    if pickle_module is not None:
        raise ValueError("tapegrad.load never unpickles: pickle_module is not supported")
    _check_map_location(map_location)
    if not isinstance(f, (str, os.PathLike)):
        if not hasattr(f, "read"):
            raise TypeError(f"tapegrad.load: expected a path or a binary file object, got {type(f).__name__}")
        if _torch_format.sniff(f):  # a PyTorch checkpoint (torch.save), read without torch
            return _torch_format.load(f, "<file object>")
        return _read_h5(f, "<file object>")
    path = os.fspath(f)
    if not os.path.exists(path):
        raise FileNotFoundError(f"tapegrad.load: no such file: {path!r}")
    if _torch_format.sniff(path):
        return _torch_format.load(path, path)
    if path.endswith(".safetensors"):
        return _read_safetensors(path)
    return _read_h5(path, path)


def _check_map_location(map_location):
    if map_location is None or callable(map_location):
        return
    if isinstance(map_location, dict):
        for v in map_location.values():
            check_cpu(v)
        return
    check_cpu(map_location)  # raises for anything but the CPU


def _crc32(header: str, payload=b"") -> int:
    """CRC-32 of a node's description and bytes. CRC-32 (zlib, ~1 GB/s, no copy of the payload)
    catches every single-bit flip and any burst up to 32 bits; it guards against corruption,
    not against a forger, who could recompute it."""
    return zlib.crc32(payload, zlib.crc32(header.encode("utf-8", "surrogatepass")))


def _array_crc(header: str, arr: np.ndarray) -> int:
    arr = _c_order(arr)
    # dtype and shape are part of the value: a flipped byte-order bit leaves the bytes intact
    return _crc32(f"{header}|{arr.dtype.str}|{arr.shape}", arr)


# ---------------------------------------------------------------- atomic writes
# .NAME.PID.RANDOM.tmp: the pid tells the next save whether the writer is still alive.
_TMP_PATTERN = r"^\.{name}\.(\d+)\.[0-9a-f]{{8}}\.tmp$"


def atomic_write(path, write) -> None:
    """Call ``write(tmp)`` on a fresh file next to ``path``, then move it over ``path`` atomically.

    ``path`` is resolved through symlinks first (the link's target is replaced, as ``open()``
    would write it). The new file keeps the old one's permission bits, or gets the umask's for a
    new file; the temporary files of earlier saves that were killed are removed.

    >>> atomic_write("out.bin", lambda tmp: shutil.copyfile("src.bin", tmp))
    """
    path = os.path.realpath(os.fspath(path))
    folder, name = os.path.split(path)
    if os.path.isdir(path):
        raise IsADirectoryError(errno.EISDIR, "tapegrad.save: the target is a directory", path)
    if os.path.exists(path) and not os.access(path, os.W_OK):
        # open(path, "wb") would refuse a read-only file; replacing it would bypass the protection
        raise PermissionError(errno.EACCES, "tapegrad.save: the existing file is not writable (read-only); "
                                            "it was left as it is", path)
    _remove_stale_temps(folder, name)
    tmp, fd = _create_temp(folder, name)
    try:
        try:  # the umask's mode is what O_CREAT gave the file; an existing target's mode wins
            mode = stat.S_IMODE(os.stat(path).st_mode)
        except FileNotFoundError:
            mode = stat.S_IMODE(os.fstat(fd).st_mode)
        os.fchmod(fd, 0o600)  # private while half-written
        os.close(fd)
        fd = None
        write(tmp)
        with open(tmp, "rb+") as fh:
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        if fd is not None:
            os.close(fd)
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    try:  # make the rename itself durable
        dfd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass


def _create_temp(folder, name):
    for _ in range(100):
        tmp = os.path.join(folder, f".{name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
        try:
            # mode 0o666 so the kernel applies the umask (reading the umask is not thread-safe)
            return tmp, os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o666)
        except FileExistsError:
            continue
    raise FileExistsError(f"tapegrad.save: could not create a temporary file next to {os.path.join(folder, name)!r}")


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True  # another thread's save in progress
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, OSError):
        return True  # exists under another user, or can't tell: leave it
    return True


def _remove_stale_temps(folder, name):
    pattern = re.compile(_TMP_PATTERN.format(name=re.escape(name)))
    try:
        entries = os.listdir(folder)
    except OSError:
        return
    for entry in entries:
        m = pattern.match(entry)
        if m and not _pid_alive(int(m.group(1))):
            try:
                os.unlink(os.path.join(folder, entry))
            except OSError:
                pass


# ---------------------------------------------------------------- HDF5: writing
def _h5py():
    try:
        import h5py
    except ImportError as e:  # pragma: no cover
        raise ImportError("tapegrad.save/load need h5py: pip install h5py") from e
    return h5py


def _write_h5(obj, target) -> None:
    h5py = _h5py()
    # The 1.10 file format checksums all metadata (superblock, object headers, B-trees), so HDF5
    # itself refuses a corrupt header; with the 1.8 format, some single-bit flips make it loop
    # forever. Nothing goes to the global heap (which has no checksum): attribute strings are
    # fixed-length, strings and keys are stored as UTF-8 bytes.
    with h5py.File(target, "w", libver=("v110", "v110")) as root:
        root.attrs["format"] = np.bytes_(FORMAT)
        root.attrs["format_version"] = FORMAT_VERSION
        _write_node(root, "data", obj, "obj", {})


def _key_kind(key, where):
    if isinstance(key, bool):
        return "bool", str(key)
    if isinstance(key, str):
        return "str", key
    if isinstance(key, numbers.Integral):
        return "int", str(int(key))
    if isinstance(key, float):
        return "float", repr(key)
    if key is None:
        return "none", ""
    raise TypeError(f"tapegrad.save: {where} has a key of type {type(key).__name__} ({key!r}); keys must be str, "
                    f"int, float, bool or None")


def _node_header(name, attrs) -> str:
    """What a node's checksum covers besides its data: its name and every attribute the reader uses."""
    fields = [name, str(attrs.get("kind")), str(attrs.get("key_kind", "")), str(attrs.get("key", "")),
              int(attrs.get("length", -1)), bool(attrs.get("requires_grad", False)),
              bool(attrs.get("parameter", False))]
    if "dtype" in attrs:  # only bfloat16 data has it: older files' checksums stay as they were
        fields.append(str(attrs["dtype"]))
    return json.dumps(fields, ensure_ascii=False)


def _write_node(group, name, obj, where, attrs, depth=0):
    """Write ``obj`` as ``group[name]`` with ``attrs`` (a dict child's key) plus its kind and crc32."""
    h5py = _h5py()
    attrs = dict(attrs)
    data = None  # the array a dataset holds, as load will read it back
    if isinstance(obj, Tensor):
        data, attrs["kind"] = _c_order(obj._data), "tensor"
        if obj.requires_grad:
            attrs["requires_grad"] = True
        if type(obj).__name__ == "Parameter":
            attrs["parameter"] = True
    elif isinstance(obj, np.ndarray):
        if _dtype.kind_of(obj.dtype) not in "biuf":
            raise TypeError(f"tapegrad.save: {where} is a numpy array of dtype {obj.dtype}; only bool, integer and "
                            f"float arrays can be saved")
        data, attrs["kind"] = _c_order(obj), "ndarray"
    elif isinstance(obj, np.generic):
        if _dtype.kind_of(obj.dtype) not in "biuf":
            raise TypeError(f"tapegrad.save: {where} is a numpy scalar of dtype {obj.dtype}")
        data, attrs["kind"] = np.asarray(obj), "npscalar"
    elif obj is None:
        attrs["kind"] = "none"
        ds = group.create_dataset(name, data=h5py.Empty("f"))
        return _finish(ds, name, attrs, _crc32(_node_header(name, attrs)))
    elif isinstance(obj, bool):
        data, attrs["kind"] = np.asarray(np.bool_(obj)), "bool"
    elif isinstance(obj, numbers.Integral) and _INT64[0] <= int(obj) <= _INT64[1]:
        data, attrs["kind"] = np.asarray(np.int64(int(obj))), "int"
    elif isinstance(obj, (numbers.Integral, str, _dtype.DType)):  # a dtype by its name ("float16")
        attrs["kind"] = "str" if isinstance(obj, str) else "dtype" if isinstance(obj, _dtype.DType) else "bigint"
        text = obj if isinstance(obj, str) else repr(obj).removeprefix("tapegrad.") if attrs["kind"] == "dtype" \
            else str(int(obj))
        raw = text.encode("utf-8", "surrogatepass")
        ds = group.create_dataset(name, data=np.frombuffer(raw, np.uint8))
        return _finish(ds, name, attrs, _crc32(_node_header(name, attrs), raw))
    elif isinstance(obj, float):
        data, attrs["kind"] = np.asarray(np.float64(obj)), "float"
    elif isinstance(obj, (dict, list, tuple)):
        if depth >= MAX_DEPTH:
            raise ValueError(f"tapegrad.save: {where} is nested more than {MAX_DEPTH} containers deep")
        g = group.create_group(name)
        attrs["kind"] = "dict" if isinstance(obj, dict) else "tuple" if isinstance(obj, tuple) else "list"
        attrs["length"] = len(obj)
        _finish(g, name, attrs, _crc32(_node_header(name, attrs)))
        if isinstance(obj, dict):
            for i, (k, v) in enumerate(obj.items()):
                kk, ks = _key_kind(k, where)
                _write_node(g, str(i), v, f"{where}[{k!r}]", {"key_kind": kk, "key": ks}, depth + 1)
        else:
            for i, v in enumerate(obj):
                _write_node(g, str(i), v, f"{where}[{i}]", {}, depth + 1)
        return None
    else:
        hint = ""
        if hasattr(obj, "state_dict"):  # torch.save(model, f) pickles the object; tapegrad never pickles
            hint = ("; save its state_dict() instead (tapegrad.save(model.state_dict(), f), then "
                    "model.load_state_dict(tapegrad.load(f))): checkpoints hold data, never code")
        raise TypeError(f"tapegrad.save: {where} is of type {type(obj).__name__}, which cannot be saved (supported: "
                        f"tensors, numpy arrays, numbers, strings, bools, dtypes, None, and dicts/lists/tuples of "
                        f"them){hint}")
    if _dtype.is_bfloat16(data.dtype):  # HDF5 has no bfloat16: its bits, as uint16, named by an attribute
        data, attrs["dtype"] = data.view(np.uint16), "bfloat16"
    ds = group.create_dataset(name, data=data)
    return _finish(ds, name, attrs, _array_crc(_node_header(name, attrs), data))


def _finish(node, name, attrs, crc):
    for k, v in attrs.items():
        if k == "key":
            v = np.frombuffer(v.encode("utf-8", "surrogatepass"), np.uint8)
        elif isinstance(v, str):
            v = np.bytes_(v)  # ASCII names of kinds
        node.attrs[k] = v
    node.attrs["crc32"] = np.uint32(crc)


# ---------------------------------------------------------------- HDF5: reading untrusted files
# Filters whose output is bounded by their input (deflate at most ~1032:1) and that need no
# plugin; scale-offset and n-bit can encode any number of equal values in no bytes.
_SAFE_FILTERS = {1: "deflate", 2: "shuffle", 3: "fletcher32", 32000: "lzf"}
_MAX_RATIO = 1100  # deflate's worst case is 1032:1
_SLACK = 1 << 20   # small datasets: a chunk's overhead can exceed its data


def _link_kind(link_or_type) -> str:
    h5py = _h5py()
    kinds = {h5py.SoftLink: "a soft link", h5py.ExternalLink: "an external link",
             h5py.h5l.TYPE_SOFT: "a soft link", h5py.h5l.TYPE_EXTERNAL: "an external link"}
    key = link_or_type if isinstance(link_or_type, int) else type(link_or_type)
    return kinds.get(key, "a user-defined link")


def check_h5_link(group, name, label):
    """Refuse a link that is not a hard link inside the file (soft, external or user-defined)."""
    h5py = _h5py()
    link = group.get(name, getlink=True)
    if link is None:
        raise CheckpointError(f"{label!r}: {group.name.rstrip('/')}/{name} is missing")
    if not isinstance(link, h5py.HardLink):
        raise CheckpointError(f"{label!r}: {group.name.rstrip('/')}/{name} is {_link_kind(link)}; links that may "
                              f"lead outside the file are refused")


def check_h5_links(root, label):
    """Walk every link of the file without following any, and refuse all but hard links."""
    h5py = _h5py()
    bad = []

    def visit(name, info):
        if info.type != h5py.h5l.TYPE_HARD:
            bad.append((name.decode("utf-8", "replace") if isinstance(name, bytes) else name, info.type))
            return 1  # stop the walk
        return None

    root.id.links.visit(visit, info=True)
    if bad:
        raise CheckpointError(f"{label!r}: /{bad[0][0]} is {_link_kind(bad[0][1])}; links that may lead outside "
                              f"the file are refused")


def check_h5_dataset(dset, label) -> int:
    """Refuse a dataset whose data is not stored inside the file itself, or whose declared size the
    file cannot back; return its size in bytes once read.

    Only contiguous, chunked and compact layouts without external storage are read (external raw
    storage and virtual datasets read other files). Unfiltered data must be fully allocated
    (else HDF5 returns fill values for any declared shape); filtered data may not decompress to
    more than ``_MAX_RATIO`` times its stored size, and only filters that need no plugin are used.
    """
    h5py = _h5py()
    where = f"{label!r}: dataset {dset.name}"
    dcpl = dset.id.get_create_plist()
    layout = dcpl.get_layout()
    if layout not in (h5py.h5d.COMPACT, h5py.h5d.CONTIGUOUS, h5py.h5d.CHUNKED):
        kind = "virtual" if layout == getattr(h5py.h5d, "VIRTUAL", None) else f"layout {layout}"
        raise CheckpointError(f"{where} is a {kind} dataset, which reads other files; refused")
    if dcpl.get_external_count():
        raise CheckpointError(f"{where} stores its data in external files; refused")
    filters = [dcpl.get_filter(i)[0] for i in range(dcpl.get_nfilters())]
    unknown = [f for f in filters if f not in _SAFE_FILTERS]
    if unknown:
        raise CheckpointError(f"{where} uses HDF5 filter(s) {unknown}; only {sorted(_SAFE_FILTERS.values())} are read")
    shape = dset.shape
    if shape is None:  # an empty dataspace: no data
        return 0
    itemsize = dset.id.get_type().get_size()
    nbytes = math.prod(shape) * itemsize
    stored = dset.id.get_storage_size()
    if not filters and stored < nbytes:
        raise CheckpointError(f"{where} declares shape {shape} ({nbytes} bytes) but the file holds only {stored} "
                              f"bytes of it")
    if filters and nbytes > _MAX_RATIO * stored + _SLACK:
        raise CheckpointError(f"{where} declares shape {shape} ({nbytes} bytes) from {stored} compressed bytes; "
                              f"refusing a decompression bomb")
    if layout == h5py.h5d.CHUNKED:
        chunk_bytes = math.prod(dcpl.get_chunk()) * itemsize
        if chunk_bytes > max(nbytes, _SLACK):
            raise CheckpointError(f"{where} has chunks of {chunk_bytes} bytes for {nbytes} bytes of data; refused")
    return nbytes


def _read_h5(source, label):
    h5py = _h5py()
    try:
        root = h5py.File(source, "r")
    except OSError as e:
        raise CheckpointError(f"tapegrad.load: {label!r} is not a readable checkpoint (truncated, corrupt or not "
                              f"HDF5): {e}") from None
    try:
        with root:
            if _attr_str(root.attrs.get("format", "")) != FORMAT or "data" not in root:
                raise CheckpointError(f"tapegrad.load: {label!r} is an HDF5 file but not a tapegrad checkpoint (no "
                                      f"'format' attribute or 'data' entry)")
            version = int(root.attrs.get("format_version", 0))
            if version > FORMAT_VERSION:
                raise CheckpointError(f"tapegrad.load: {label!r} has format version {version}; this tapegrad reads "
                                      f"up to version {FORMAT_VERSION}")
            check_h5_links(root, label)
            reader = _H5Reader(label, checksummed=version >= 2)
            return reader.read(*reader.child(root, "data", "obj"), "data", "obj", 0)
    except CheckpointError as e:
        msg = str(e)
        raise CheckpointError(msg if msg.startswith("tapegrad.load") else f"tapegrad.load: {msg}") from None
    except Exception as e:  # h5py raises many types on a corrupt file; all mean the same to the caller
        raise CheckpointError(f"tapegrad.load: {label!r} is corrupt or truncated: {type(e).__name__}: {e}") from None


def _load_dtype(name, fail, where):
    """A saved dtype's object: one of tapegrad's dtype names, nothing else."""
    d = _DTYPES_BY_NAME.get(name)
    if d is None:
        raise fail(where, f"names an unknown dtype {name[:40]!r}")
    return d


def _decode_key(kind, s):
    if kind == "str":
        return s
    if kind == "int":
        return int(s)
    if kind == "float":
        return float(s)
    if kind == "bool":
        if s not in ("True", "False"):
            raise ValueError(f"bad bool key {s!r}")
        return s == "True"
    if kind == "none":
        return None
    raise ValueError(f"unknown key kind {kind!r}")


def _attr_str(v):
    """A string attribute: fixed-length ASCII, UTF-8 bytes as a uint8 array (format 2), or a
    variable-length string (format 1)."""
    if isinstance(v, np.ndarray) and v.dtype == np.uint8 and v.ndim == 1:
        return v.tobytes().decode("utf-8", "surrogatepass")
    if isinstance(v, np.ndarray) and v.shape == ():
        v = v[()]
    if isinstance(v, bytes):
        return v.decode("utf-8", "surrogatepass")
    if not isinstance(v, str):
        raise ValueError(f"expected a string attribute, got {v!r}")
    return v


_SCALAR_KINDS = {"bool": "b", "int": "i", "float": "f", "npscalar": "biuf"}


class _H5Reader:
    """Reads the tree under ``data`` following hard links only, each object once, checking every
    dataset before reading it and every checksum after."""

    def __init__(self, label, checksummed):
        self.label, self.checksummed, self.seen = label, checksummed, set()

    def fail(self, where, what):
        return CheckpointError(f"tapegrad.load: {self.label!r}: {where} {what}")

    def child(self, group, name, where):
        """``group[name]`` and its attributes (read once: attribute reads dominate the load time),
        reached by a hard link and never seen before."""
        check_h5_link(group, name, self.label)
        node = group[name]
        if node.id in self.seen:  # h5py's ObjectID compares by file and address
            raise self.fail(where, "is a second link to an object already read (a cycle or a crafted file)")
        self.seen.add(node.id)
        return node, dict(node.attrs)

    def bfloat16(self, bits, name, kind, where):
        """A bfloat16 array from the uint16 bits ``_write_node`` stored."""
        if name != "bfloat16" or bits.dtype != np.uint16 or kind not in ("tensor", "ndarray", "npscalar"):
            raise self.fail(where, f"says its dtype is {name!r} but holds a {kind} of {bits.dtype}")
        if _dtype.bfloat16 is None:
            raise self.fail(where, f"is bfloat16: {_dtype.BFLOAT16_MISSING}")
        return bits.view(_dtype.bfloat16)

    def read(self, node, attrs, name, where, depth):
        kind = attrs["kind"] = _attr_str(attrs.get("kind", "<none>"))
        if "dtype" in attrs:
            attrs["dtype"] = _attr_str(attrs["dtype"])
        header = _node_header(name, attrs)
        stored_crc = attrs.get("crc32")
        if stored_crc is None and self.checksummed:
            raise self.fail(where, "has no checksum (the file is corrupt)")

        def verify(crc):
            if stored_crc is not None and int(stored_crc) != crc:
                raise self.fail(where, "does not match its checksum: the file is corrupt")

        if kind in ("dict", "list", "tuple"):
            if not isinstance(node, _h5py().Group):
                raise self.fail(where, f"is a dataset but its kind says {kind}")
            if depth >= MAX_DEPTH:
                raise self.fail(where, f"is nested more than {MAX_DEPTH} containers deep")
            verify(_crc32(header))
            length = int(attrs.get("length", -1))
            if length != len(node):
                raise self.fail(where, f"says it holds {length} entries but has {len(node)}")
            if kind == "dict":
                out = {}
                for i in range(length):
                    child, a = self.child(node, str(i), f"{where}[entry {i}]")
                    a["key_kind"], a["key"] = _attr_str(a.get("key_kind")), _attr_str(a.get("key"))
                    key = _decode_key(a["key_kind"], a["key"])
                    if key in out:
                        raise self.fail(where, f"has the key {key!r} twice")
                    out[key] = self.read(child, a, str(i), f"{where}[{key!r}]", depth + 1)
                return out
            items = [self.read(*self.child(node, str(i), f"{where}[{i}]"), str(i), f"{where}[{i}]", depth + 1)
                     for i in range(length)]
            return tuple(items) if kind == "tuple" else items

        if not isinstance(node, _h5py().Dataset):
            raise self.fail(where, f"is a group but its kind says {kind}")
        check_h5_dataset(node, self.label)
        if kind == "none":
            if node.shape is not None:
                raise self.fail(where, f"is None but holds data of shape {node.shape}")
            verify(_crc32(header))
            return None
        if kind in ("str", "bigint", "dtype"):
            if node.dtype == np.uint8 and node.ndim == 1:
                text = node[()].tobytes().decode("utf-8", "surrogatepass")
            elif node.shape == () and node.dtype.kind in "OS":  # format 1: a variable-length string
                text = node.asstr()[()]
            else:
                raise self.fail(where, f"should be a string but is {node.dtype} of shape {node.shape}")
            verify(_crc32(header, text.encode("utf-8", "surrogatepass")))
            if kind == "dtype":
                return _load_dtype(text, self.fail, where)
            return text if kind == "str" else int(text)
        if kind not in ("tensor", "ndarray") and kind not in _SCALAR_KINDS:
            raise self.fail(where, f"has an unknown kind {kind!r}")
        if node.dtype.kind not in _SCALAR_KINDS.get(kind, "biufc") or node.dtype.fields is not None:
            raise self.fail(where, f"has dtype {node.dtype}, not allowed for a {kind}")
        if node.shape is None:  # HDF5's null dataspace: node[()] is an h5py.Empty, which asarray makes an object array
            raise self.fail(where, f"is an empty dataset (null dataspace), which holds no value for a {kind}")
        if kind in _SCALAR_KINDS and node.shape != ():
            raise self.fail(where, f"should be a scalar but has shape {node.shape}")
        arr = np.asarray(node[()])
        verify(_array_crc(header, arr))
        if "dtype" in attrs:
            arr = self.bfloat16(arr, attrs["dtype"], kind, where)
        if kind == "bool":
            return bool(arr)
        if kind == "int":
            return int(arr)
        if kind == "float":
            return float(arr)
        if kind == "npscalar":
            return arr[()]
        if kind == "ndarray":
            return arr
        if not arr.dtype.isnative:  # a file written on (or crafted for) another byte order
            arr = arr.astype(arr.dtype.newbyteorder("="))
        if attrs.get("parameter", False):
            return Parameter(Tensor._wrap(arr), requires_grad=bool(attrs.get("requires_grad", False)))
        t = Tensor._wrap(arr)
        if attrs.get("requires_grad", False):
            t.requires_grad_(True)
        return t


# ---------------------------------------------------------------- safetensors
def _flatten_for_safetensors(obj):
    if not isinstance(obj, dict):
        raise TypeError(f"tapegrad.save: a .safetensors file holds a dict of tensors, got {type(obj).__name__}")
    flat = {}

    def walk(d, prefix, depth):
        if depth > MAX_DEPTH:
            raise ValueError(f"tapegrad.save: {prefix.rstrip('.')} is nested more than {MAX_DEPTH} dicts deep")
        for k, v in d.items():
            if not isinstance(k, str):
                raise TypeError(f"tapegrad.save: safetensors keys must be strings, got {k!r} under "
                                f"{prefix.rstrip('.') or 'the top level'}")
            name = prefix + k
            if isinstance(v, dict):
                walk(v, name + ".", depth + 1)
                continue
            if isinstance(v, Tensor):
                v = v._data
            elif not isinstance(v, np.ndarray):
                raise TypeError(f"tapegrad.save: {name!r} is a {type(v).__name__}; .safetensors files hold only "
                                f"tensors (save other content, e.g. optimizer state, to an HDF5 file)")
            if _dtype.kind_of(v.dtype) not in "biuf":
                raise TypeError(f"tapegrad.save: {name!r} has dtype {v.dtype}, not supported")
            if name in flat:
                raise ValueError(f"tapegrad.save: two entries flatten to the same safetensors name {name!r}")
            flat[name] = _c_order_little_endian(v)

    walk(obj, "", 0)
    return flat


def _c_order(a):
    # np.ascontiguousarray would turn 0-d arrays into shape (1,)
    return a if a.flags.c_contiguous else np.array(a, order="C")


def _c_order_little_endian(a):  # safetensors is little-endian
    return _c_order(a.astype(a.dtype.newbyteorder("<")) if a.dtype.byteorder == ">" else a)


def _write_safetensors(flat, path):
    from safetensors.numpy import save_file
    crcs = {name: _array_crc(name, a) for name, a in flat.items()}
    save_file(flat, path, metadata={"format": "np", "writer": FORMAT,
                                    _SAFETENSORS_CRC_KEY: json.dumps(crcs, ensure_ascii=False)})


def _read_safetensors(path):
    from safetensors import safe_open
    try:
        with safe_open(path, framework="np") as f:
            metadata = f.metadata() or {}
            arrays = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as e:  # SafetensorError, OSError, ValueError...: a corrupt header or data
        raise CheckpointError(f"tapegrad.load: {path!r} is not a readable safetensors file (truncated or corrupt): "
                              f"{type(e).__name__}: {e}") from None
    if _SAFETENSORS_CRC_KEY in metadata:
        try:
            crcs = json.loads(metadata[_SAFETENSORS_CRC_KEY])
            if not isinstance(crcs, dict):
                raise ValueError("not a dict")
        except ValueError as e:
            raise CheckpointError(f"tapegrad.load: {path!r} has a corrupt checksum table ({e})") from None
        for name in sorted(set(crcs) ^ set(arrays)):
            what = "is in the file but not in its checksum table" if name in arrays else "is missing from the file"
            raise CheckpointError(f"tapegrad.load: {path!r}: tensor {name!r} {what}: the file is corrupt")
        for name, a in arrays.items():
            if crcs[name] != _array_crc(name, a):
                raise CheckpointError(f"tapegrad.load: {path!r}: tensor {name!r} does not match its checksum: the "
                                      f"file is corrupt")
    return {k: Tensor._wrap(np.array(v)) for k, v in arrays.items()}


# PyTorch's type aliases for load's arguments, which libraries annotate with (pyro's param store
# imports MAP_LOCATION)
MAP_LOCATION = typing.Optional[typing.Union[typing.Callable[[UntypedStorage, str], UntypedStorage], device, str,
                                            dict[str, str]]]
FileLike = typing.Union[str, os.PathLike, typing.IO[bytes]]

def add_safe_globals(safe_globals: list) -> None:
    """PyTorch's allow-list for ``torch.load(weights_only=True)``: remembered (``get_safe_globals``)
    so that code which saves, extends and restores it runs (accelerate's ``load``). tapegrad's
    reader constructs no objects beyond tensors, storages, dtypes, Size, OrderedDict and plain
    data whatever the list holds; a file naming one of these globals is refused with a message
    saying so."""
    _torch_format.SAFE_GLOBALS.extend(g for g in safe_globals if g not in _torch_format.SAFE_GLOBALS)  # a set, as PyTorch's


def get_safe_globals() -> list:
    """The globals given to ``add_safe_globals`` (a copy), as PyTorch's."""
    return list(_torch_format.SAFE_GLOBALS)


def clear_safe_globals() -> None:
    """Forget the globals given to ``add_safe_globals``."""
    _torch_format.SAFE_GLOBALS.clear()


class safe_globals:  # noqa: N801  (PyTorch's name)
    """``with safe_globals([...]):`` adds the globals for the block, then restores the list."""

    def __init__(self, safe_globals: list):
        self.safe_globals = safe_globals

    def __enter__(self):
        self._saved = get_safe_globals()
        add_safe_globals(self.safe_globals)

    def __exit__(self, *exc):
        clear_safe_globals()
        add_safe_globals(self._saved)
        return False


__all__ = ["save", "load", "CheckpointError", "FORMAT_VERSION", "atomic_write", "MAP_LOCATION", "FileLike",
           "add_safe_globals", "get_safe_globals", "clear_safe_globals", "safe_globals"]
