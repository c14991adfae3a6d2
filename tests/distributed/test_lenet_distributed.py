"""examples/lenet.py --distributed under mpiexec -n 2 on a tiny synthetic IDX folder: it trains,
rank 0 alone writes the checkpoint and curves, and every rank reports the same test accuracy."""
import re
from pathlib import Path

import numpy as np

from tapegrad.utils.data import mnist
from mpirun import require_mpi
import mpirun

LENET = Path(__file__).resolve().parents[2] / "examples" / "lenet.py"


def test_lenet_distributed_two_ranks(tmp_path, monkeypatch):
    require_mpi()
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 128), ("t10k", 32)):
        labels = rng.integers(0, 10, n).astype(np.uint8)
        images = rng.integers(0, 90, (n, 28, 28)).astype(np.uint8)
        for i, k in enumerate(labels):  # a bright square whose place is the class
            images[i, 2 + 12 * (k // 5):10 + 12 * (k // 5), 1 + 5 * (k % 5):9 + 5 * (k % 5)] = 255
        mnist.write_idx(tmp_path / f"{prefix}-images-idx3-ubyte.gz", images)
        mnist.write_idx(tmp_path / f"{prefix}-labels-idx1-ubyte.gz", labels)
    out = tmp_path / "run"
    monkeypatch.setattr(mpirun, "WORKERS", LENET.parent)
    res = mpirun.run(2, "lenet.py", "--distributed", "--data-dir", tmp_path, "--cache-dir", tmp_path / "cache",
                     "--out", out, "--epochs", "1", "--batch-size", "32", "--threads", "1", "--no-progress",
                     timeout=120)
    accs = re.findall(r"^test accuracy: (\S+)$", res.stdout, re.M)
    assert len(accs) == 2 and accs[0] == accs[1], res.stdout
    assert res.stdout.count("epoch 1:") == 1, res.stdout  # only rank 0 reports progress
    for name in ("checkpoint.h5", "checkpoint-epoch1.h5", "curves.csv", "curves.png"):
        assert (out / name).stat().st_size > 0, name
