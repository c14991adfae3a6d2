"""``HDF5Dataset``: image/label splits read lazily from one HDF5 file.

The layout (the heritage framework's, and what ``mnist.write_hdf5`` writes)::

    /train/images  uint8 (or float), N x 784 or N x 1 x 28 x 28     /train/labels  integer, N
    /val/images    ...                                               /val/labels    ...
    /test/images   ...                                               /test/labels   ...

The file is untrusted input, checked as ``tapegrad.load`` checks a checkpoint: soft and
external links, external raw storage, virtual datasets, plugin filters and sizes the file
cannot back are refused with a ``ValueError`` naming the file.
"""
from __future__ import annotations

import numpy as np

from ... import serialization
from ...tensor import Tensor
from .dataset import Dataset


class HDF5Dataset(Dataset):
    """One split (``"train"``, ``"val"`` or ``"test"``) of an HDF5 image file.

    Images come back as ``dtype`` (float32 by default), uint8 ones scaled to [0, 1] (float ones
    as stored), then normalised as ``(x - mean) / std`` if ``normalize=(mean, std)``; labels as int64. The file
    is opened on first use and samples are read on demand, unless ``load_into_memory=True``
    reads the split once. ``shape`` reshapes each image, e.g. ``(1, 28, 28)`` or ``(784,)``.

    >>> train = HDF5Dataset("data/mnist.h5", "train", load_into_memory=True, shape=(1, 28, 28))
    >>> x, y = train[0]                       # x: float32 (1, 28, 28) in [0, 1], y: int64 scalar
    """

    def __init__(self, path, split="train", *, load_into_memory=False, normalize=None, dtype=np.float32,
                 shape=None, limit=None):
        import h5py  # imported here so `import tapegrad` does not pay for it

        self.path, self.split = str(path), split
        self.dtype = np.dtype(dtype)
        self.normalize = None if normalize is None else tuple(float(v) for v in normalize)
        self._file = self._lazy = None
        if limit is not None and (isinstance(limit, bool) or int(limit) != limit or limit < 0):
            raise ValueError(f"HDF5Dataset: limit must be a non-negative integer, got {limit!r}")
        with h5py.File(self.path, "r") as f:
            _check(f, split, self.path)
            stored = f[split]["images"].shape
            self._scale = f[split]["images"].dtype == np.uint8
            n = stored[0]
            if f[split]["labels"].shape[0] != n:
                raise ValueError(f"{self.path}: /{split} has {n} images but {f[split]['labels'].shape[0]} labels")
            self._images = self._labels = None
            if load_into_memory:
                stop = n if limit is None else min(n, int(limit))
                self._images = f[split]["images"][:stop]
                self._labels = f[split]["labels"][:stop]
        self._len = n if limit is None else min(n, int(limit))
        self.shape = tuple(shape) if shape is not None else tuple(stored[1:])
        if int(np.prod(self.shape)) != int(np.prod(stored[1:])):
            raise ValueError(f"HDF5Dataset: can't reshape images of shape {tuple(stored[1:])} to {self.shape}")

    def _open(self):
        """The split's two arrays for lazy reads: memory maps when the datasets are stored
        contiguous and uncompressed (as ``mnist.write_hdf5`` writes them; random batches then
        cost a page-cache copy), else the h5py datasets."""
        if self._file is None:
            import h5py
            self._file = h5py.File(self.path, "r")
            _check(self._file, self.split, self.path)  # the file may have changed since __init__
            g = self._file[self.split]
            self._lazy = tuple(_memmap(self.path, g[k]) for k in ("images", "labels"))
        return self._lazy

    def __getstate__(self):  # an open h5py file can't be pickled; reopen on use
        state = self.__dict__.copy()
        state["_file"] = state["_lazy"] = None
        return state

    def __del__(self):
        f = getattr(self, "_file", None)
        if f is not None:
            try:
                f.close()
            except Exception:  # interpreter shutdown
                pass

    def __len__(self):
        return self._len

    def _read(self, indices: np.ndarray):
        """Raw uint8 images and labels at ``indices`` (an int64 array)."""
        if self._images is not None:
            return self._images[indices], self._labels[indices]
        images, labels = self._open()
        if isinstance(images, np.ndarray):
            return images[indices], labels[indices]
        # h5py wants increasing, unique indices: read those, then put them back in order.
        uniq, inverse = np.unique(indices, return_inverse=True)
        return images[uniq][inverse], labels[uniq][inverse]

    def _to_float(self, raw):
        x = raw.astype(self.dtype)
        if self._scale:
            x *= self.dtype.type(1 / 255)
        if self.normalize is not None:
            mean, std = self.normalize
            x -= self.dtype.type(mean)
            x /= self.dtype.type(std)
        return x

    def _batch(self, indices):
        indices = np.asarray(indices, dtype=np.int64)
        if indices.size and (indices.min() < -self._len or indices.max() >= self._len):
            raise IndexError(f"HDF5Dataset: index out of range for a split of {self._len} samples")
        indices = indices % max(self._len, 1)
        images, labels = self._read(indices)
        x = self._to_float(images).reshape((len(indices),) + self.shape)
        return Tensor._wrap(x), Tensor._wrap(labels.astype(np.int64))

    def __getitem__(self, index):
        if isinstance(index, (list, np.ndarray, slice)):
            idx = np.arange(self._len)[index] if isinstance(index, slice) else np.asarray(index)
            return self._batch(idx)
        x, y = self._batch(np.array([int(index)]))
        return Tensor._wrap(x._data[0]), Tensor._wrap(y._data[0])

    def tensors(self):
        """The whole split as two tensors (images, labels)."""
        return self._batch(np.arange(self._len))


def _check(f, split, path):
    """Refuse a file that reads outside itself or declares more than it holds (see the module doc)."""
    try:
        serialization.check_h5_links(f, path)  # first: a name lookup could open a linked file
    except serialization.CheckpointError as e:
        raise ValueError(f"HDF5Dataset: {e}") from None
    if split not in f:
        raise KeyError(f"{path}: no split '{split}' (found: {', '.join(sorted(f.keys()))})")
    for key in ("images", "labels"):
        if key not in f[split]:
            raise KeyError(f"{path}: /{split}/{key} is missing")
    try:
        for key in ("images", "labels"):
            serialization.check_h5_link(f[split], key, path)
            serialization.check_h5_dataset(f[split][key], path)
    except serialization.CheckpointError as e:
        raise ValueError(f"HDF5Dataset: {e}") from None
    images, labels = f[split]["images"], f[split]["labels"]
    if images.dtype.kind not in "biuf" or images.ndim < 2:
        raise ValueError(f"HDF5Dataset: {path}: /{split}/images should be N x ... numbers, got {images.dtype} "
                         f"of shape {images.shape}")
    if labels.dtype.kind not in "biu" or labels.ndim != 1:
        raise ValueError(f"HDF5Dataset: {path}: /{split}/labels should be N integers, got {labels.dtype} of "
                         f"shape {labels.shape}")


def _memmap(path, dset):
    """A read-only memory map of an h5py dataset stored contiguous and unfiltered, else ``dset``."""
    offset = dset.id.get_offset()
    if dset.chunks is not None or offset is None or dset.dtype.kind not in "biuf":
        return dset
    return np.memmap(path, dtype=dset.dtype, mode="r", offset=offset, shape=dset.shape)
