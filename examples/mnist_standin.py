"""A stand-in for the two torchvision pieces PyTorch's MNIST example uses (``datasets.MNIST``
and ``transforms``), so ``examples/pytorch_mnist_main.py`` keeps its data-loading lines as written.

``datasets.MNIST(root, train=..., transform=...)`` gives a ``TensorDataset`` of float32 images
(N, 1, 28, 28) in [0, 1] (normalised by the transform) and int64 labels: real MNIST when
``tapegrad.utils.data.mnist.prepare`` finds it (the test split for ``train=False``), otherwise
random tensors of MNIST's shape, with a note on stderr. ``TAPEGRAD_MNIST_RANDOM=N`` forces N
random samples (the tests use it).

``root`` is where torchvision would download the raw files; the script passes ``'../data'``,
which from the repository's root is a folder outside it. The stand-in downloads nothing and keeps
its converted copy of the digits in the repository's ``data/`` folder whatever the working
directory (the same ``data/mnist.h5`` that ``examples/lenet.py`` uses), so nothing is written
outside the repository.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np

import tapegrad
from tapegrad.utils.data import TensorDataset

DATA = Path(__file__).resolve().parent.parent / "data"


class transforms:
    class ToTensor:
        def __call__(self, x):
            return x

    class Normalize:
        def __init__(self, mean, std):
            self.mean, self.std = np.asarray(mean, np.float32), np.asarray(std, np.float32)

        def __call__(self, x):
            return (x - self.mean.reshape(-1, 1, 1)) / self.std.reshape(-1, 1, 1)

    class Compose:
        def __init__(self, transforms):
            self.transforms = list(transforms)

        def __call__(self, x):
            for t in self.transforms:
                x = t(x)
            return x


def _real(train):
    try:
        import h5py

        from tapegrad.utils.data import mnist
        path = mnist.prepare("mnist", cache_dir=DATA, log=lambda *a: None)
    except Exception:  # noqa: BLE001  (no data here: fall back to random tensors)
        return None
    with h5py.File(path, "r") as f:
        g = f["train" if train else "test"]
        return g["images"][()].astype(np.float32) / 255.0, g["labels"][()].astype(np.int64)


class datasets:
    class MNIST(TensorDataset):
        def __init__(self, root, train=True, download=False, transform=None):
            forced = os.environ.get("TAPEGRAD_MNIST_RANDOM")
            data = None if forced else _real(train)
            if data is None:
                n = int(forced) if forced else (60000 if train else 10000)
                print(f"[mnist_standin] no MNIST data found: using {n} random images of MNIST's shape",
                      file=sys.stderr)
                r = np.random.default_rng(0 if train else 1)
                data = (r.random((n, 1, 28, 28), dtype=np.float32), r.integers(0, 10, n))
            images, labels = data
            if transform is not None:
                images = transform(images).astype(np.float32)
            super().__init__(tapegrad.from_numpy(np.ascontiguousarray(images)), tapegrad.from_numpy(labels))
