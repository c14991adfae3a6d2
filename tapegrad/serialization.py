"""Checkpoints without pickle: ``tapegrad.save(obj, path)`` / ``tapegrad.load(path)``.

Two formats, chosen by the file name:

* **HDF5** (any name but ``*.safetensors``): nested dicts, lists and tuples of tensors, numpy
  arrays, numbers, strings, bools and None, exactly as given (dtype, shape, container types
  and dict key types are restored). Layout: every container is a group and every leaf a dataset;
  children are named ``0, 1, ...`` in order and carry a ``kind`` attribute (and a dict child
  its ``key`` and ``key_kind``), so any key, including ``"a/b"`` or ``3``, round-trips. The root
  carries ``format = "tapegrad"`` and ``format_version``.
* **safetensors** (``*.safetensors``): a flat ``{name: tensor}`` dict, through the ``safetensors``
  package's numpy API, so weights move to and from PyTorch / Hugging Face. Nested dicts are
  flattened with dotted keys (``{"model": {"fc.weight": t}}`` -> ``"model.fc.weight"``); anything
  that is not a tensor or array is refused. ``load`` returns the flat dict.

Loading never executes code from the file. Saving is atomic: the data goes to a temporary file
in the target's folder, is flushed and fsync'ed, and replaces the target with ``os.replace``; an
error mid-save leaves any earlier file untouched.

>>> tapegrad.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "epoch": 3}, "ckpt.h5")
>>> ckpt = tapegrad.load("ckpt.h5")
>>> model.load_state_dict(ckpt["model"])
"""
from __future__ import annotations

import numbers
import os
import tempfile

import numpy as np

from .tensor import Tensor
from .device import device
from .nn.parameter import Parameter

FORMAT = "tapegrad"
FORMAT_VERSION = 1

_INT64 = (np.iinfo(np.int64).min, np.iinfo(np.int64).max)


class CheckpointError(RuntimeError):
    """A checkpoint file that cannot be read: truncated, corrupt, or not a tapegrad checkpoint."""


# ---------------------------------------------------------------- public API
def save(obj, f, pickle_module=None, pickle_protocol=None, _use_new_zipfile_serialization=True) -> None:
    """Save ``obj`` to the path ``f`` (HDF5, or safetensors for ``*.safetensors``) atomically.

    ``f`` may also be a writable binary file object (HDF5 only, written directly). The
    ``pickle_*`` arguments exist for PyTorch compatibility and must be left at None.
    """
    if pickle_module is not None:
        raise ValueError("tapegrad.save never pickles: pickle_module is not supported")
    if not isinstance(f, (str, os.PathLike)):
        if not hasattr(f, "write"):
            raise TypeError(f"tapegrad.save: expected a path or a binary file object, got {type(f).__name__}")
        _write_h5(obj, f)
        return
    path = os.fspath(f)
    if path.endswith(".safetensors"):
        flat = _flatten_for_safetensors(obj)
        _atomic_write(path, lambda tmp: _write_safetensors(flat, tmp))
    else:
        _atomic_write(path, lambda tmp: _write_h5(obj, tmp))


def load(f, map_location=None, pickle_module=None, *, weights_only=True, mmap=None, **pickle_load_args):
    """Load what ``save`` wrote. Tensors come back as leaf tensors on the CPU.

    ``map_location`` may be None, ``"cpu"``, a ``tapegrad.device``, a dict or a callable (all
    mean the CPU here); ``weights_only`` is accepted for PyTorch compatibility: loading is always
    safe, since no pickle is involved. A truncated, corrupt or foreign file raises
    ``CheckpointError`` naming the path.
    """
    if pickle_module is not None:
        raise ValueError("tapegrad.load never unpickles: pickle_module is not supported")
    _check_map_location(map_location)
    if not isinstance(f, (str, os.PathLike)):
        if not hasattr(f, "read"):
            raise TypeError(f"tapegrad.load: expected a path or a binary file object, got {type(f).__name__}")
        return _read_h5(f, "<file object>")
    path = os.fspath(f)
    if not os.path.exists(path):
        raise FileNotFoundError(f"tapegrad.load: no such file: {path!r}")
    if path.endswith(".safetensors"):
        return _read_safetensors(path)
    return _read_h5(path, path)


def _check_map_location(map_location):
    if map_location is None or callable(map_location):
        return
    if isinstance(map_location, dict):
        for v in map_location.values():
            device(v)
        return
    device(map_location)  # raises for anything but the CPU


# ---------------------------------------------------------------- atomic writes
def _atomic_write(path: str, write) -> None:
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=folder)
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb+") as fh:
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
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


# ---------------------------------------------------------------- HDF5
def _h5py():
    try:
        import h5py
    except ImportError as e:  # pragma: no cover
        raise ImportError("tapegrad.save/load need h5py: pip install h5py") from e
    return h5py


def _write_h5(obj, target) -> None:
    h5py = _h5py()
    with h5py.File(target, "w") as root:
        root.attrs["format"] = FORMAT
        root.attrs["format_version"] = FORMAT_VERSION
        _write_node(root, "data", obj, "obj")


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


def _write_node(group, name, obj, where):
    h5py = _h5py()
    if isinstance(obj, Tensor):
        ds = group.create_dataset(name, data=obj._data)
        ds.attrs["kind"] = "tensor"
        if obj.requires_grad:
            ds.attrs["requires_grad"] = True
        if type(obj).__name__ == "Parameter":
            ds.attrs["parameter"] = True
    elif isinstance(obj, np.ndarray):
        if obj.dtype.kind not in "biuf":
            raise TypeError(f"tapegrad.save: {where} is a numpy array of dtype {obj.dtype}; only bool, integer and "
                            f"float arrays can be saved")
        group.create_dataset(name, data=obj).attrs["kind"] = "ndarray"
    elif isinstance(obj, np.generic):
        if obj.dtype.kind not in "biuf":
            raise TypeError(f"tapegrad.save: {where} is a numpy scalar of dtype {obj.dtype}")
        group.create_dataset(name, data=obj).attrs["kind"] = "npscalar"
    elif obj is None:
        group.create_dataset(name, data=h5py.Empty("f")).attrs["kind"] = "none"
    elif isinstance(obj, bool):
        group.create_dataset(name, data=np.bool_(obj)).attrs["kind"] = "bool"
    elif isinstance(obj, numbers.Integral):
        v = int(obj)
        if _INT64[0] <= v <= _INT64[1]:
            group.create_dataset(name, data=np.int64(v)).attrs["kind"] = "int"
        else:
            group.create_dataset(name, data=str(v), dtype=h5py.string_dtype()).attrs["kind"] = "bigint"
    elif isinstance(obj, float):
        group.create_dataset(name, data=np.float64(obj)).attrs["kind"] = "float"
    elif isinstance(obj, str):
        group.create_dataset(name, data=obj, dtype=h5py.string_dtype()).attrs["kind"] = "str"
    elif isinstance(obj, dict):
        g = group.create_group(name)
        g.attrs["kind"] = "dict"
        g.attrs["length"] = len(obj)
        for i, (k, v) in enumerate(obj.items()):
            kk, ks = _key_kind(k, where)
            _write_node(g, str(i), v, f"{where}[{k!r}]")
            g[str(i)].attrs["key_kind"] = kk
            g[str(i)].attrs["key"] = ks
    elif isinstance(obj, (list, tuple)):
        g = group.create_group(name)
        g.attrs["kind"] = "tuple" if isinstance(obj, tuple) else "list"
        g.attrs["length"] = len(obj)
        for i, v in enumerate(obj):
            _write_node(g, str(i), v, f"{where}[{i}]")
    else:
        hint = ""
        if hasattr(obj, "state_dict"):  # torch.save(model, f) pickles the object; tapegrad never pickles
            hint = ("; save its state_dict() instead (tapegrad.save(model.state_dict(), f), then "
                    "model.load_state_dict(tapegrad.load(f))): checkpoints hold data, never code")
        raise TypeError(f"tapegrad.save: {where} is of type {type(obj).__name__}, which cannot be saved (supported: "
                        f"tensors, numpy arrays, numbers, strings, bools, None, and dicts/lists/tuples of them){hint}")


def _read_h5(source, label):
    h5py = _h5py()
    try:
        root = h5py.File(source, "r")
    except OSError as e:
        raise CheckpointError(f"tapegrad.load: {label!r} is not a readable checkpoint (truncated, corrupt or not "
                              f"HDF5): {e}") from None
    try:
        with root:
            if root.attrs.get("format") != FORMAT or "data" not in root:
                raise CheckpointError(f"tapegrad.load: {label!r} is an HDF5 file but not a tapegrad checkpoint (no "
                                      f"'format' attribute or 'data' entry)")
            version = int(root.attrs.get("format_version", 0))
            if version > FORMAT_VERSION:
                raise CheckpointError(f"tapegrad.load: {label!r} has format version {version}; this tapegrad reads "
                                      f"up to version {FORMAT_VERSION}")
            return _read_node(root["data"])
    except CheckpointError:
        raise
    except (OSError, KeyError, ValueError, TypeError, RuntimeError) as e:
        raise CheckpointError(f"tapegrad.load: {label!r} is corrupt or truncated: {type(e).__name__}: {e}") from None


def _decode_key(kind, s):
    if kind == "str":
        return s
    if kind == "int":
        return int(s)
    if kind == "float":
        return float(s)
    if kind == "bool":
        return s == "True"
    if kind == "none":
        return None
    raise ValueError(f"unknown key kind {kind!r}")


def _attr_str(v):
    return v.decode() if isinstance(v, bytes) else str(v)


def _read_node(node):
    kind = _attr_str(node.attrs["kind"])
    if kind == "dict":
        out = {}
        for i in range(int(node.attrs["length"])):
            child = node[str(i)]
            out[_decode_key(_attr_str(child.attrs["key_kind"]), _attr_str(child.attrs["key"]))] = _read_node(child)
        return out
    if kind in ("list", "tuple"):
        items = [_read_node(node[str(i)]) for i in range(int(node.attrs["length"]))]
        return tuple(items) if kind == "tuple" else items
    if kind == "none":
        return None
    if kind == "str":
        return node.asstr()[()]
    if kind == "bigint":
        return int(node.asstr()[()])
    value = node[()]
    if kind == "bool":
        return bool(value)
    if kind == "int":
        return int(value)
    if kind == "float":
        return float(value)
    if kind == "npscalar":
        return value if isinstance(value, np.generic) else np.asarray(value)[()]
    arr = np.asarray(value)
    if kind == "ndarray":
        return arr
    if kind == "tensor":
        if node.attrs.get("parameter", False):
            return Parameter(Tensor._wrap(arr), requires_grad=bool(node.attrs.get("requires_grad", False)))
        t = Tensor._wrap(arr)
        if node.attrs.get("requires_grad", False):
            t.requires_grad_(True)
        return t
    raise ValueError(f"unknown entry kind {kind!r}")


# ---------------------------------------------------------------- safetensors
def _flatten_for_safetensors(obj):
    if not isinstance(obj, dict):
        raise TypeError(f"tapegrad.save: a .safetensors file holds a dict of tensors, got {type(obj).__name__}")
    flat = {}

    def walk(d, prefix):
        for k, v in d.items():
            if not isinstance(k, str):
                raise TypeError(f"tapegrad.save: safetensors keys must be strings, got {k!r} under "
                                f"{prefix.rstrip('.') or 'the top level'}")
            name = prefix + k
            if isinstance(v, dict):
                walk(v, name + ".")
            elif isinstance(v, Tensor):
                flat[name] = _c_order(v._data)
            elif isinstance(v, np.ndarray):
                flat[name] = _c_order(v)
            else:
                raise TypeError(f"tapegrad.save: {name!r} is a {type(v).__name__}; .safetensors files hold only "
                                f"tensors (save other content, e.g. optimizer state, to an HDF5 file)")
            if name in flat and flat[name].dtype.kind not in "biuf":
                raise TypeError(f"tapegrad.save: {name!r} has dtype {flat[name].dtype}, not supported")

    walk(obj, "")
    return flat


def _c_order(a):
    # np.ascontiguousarray would turn 0-d arrays into shape (1,)
    return a if a.flags.c_contiguous else np.array(a, order="C")


def _write_safetensors(flat, path):
    from safetensors.numpy import save_file
    save_file(flat, path, metadata={"format": "np", "writer": FORMAT})


def _read_safetensors(path):
    from safetensors import SafetensorError
    from safetensors.numpy import load_file
    try:
        arrays = load_file(path)
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"tapegrad.load: {path!r} is not a readable safetensors file (truncated or corrupt): "
                              f"{e}") from None
    return {k: Tensor._wrap(np.array(v)) for k, v in arrays.items()}


__all__ = ["save", "load", "CheckpointError", "FORMAT_VERSION"]
