"""examples/lenet.py and examples/mlp.py end to end, on a tiny synthetic IDX data folder that
the test writes (so it runs without MNIST): training learns, checkpoint/CSV/PNG are written,
resuming continues exactly, and the last line is the test accuracy."""
import csv
import os
import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

import tapegrad
from tapegrad.utils.data import mnist

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _have_training_stack():
    try:
        import tapegrad.nn as nn
        import tapegrad.nn.functional as F
        import tapegrad.optim as optim
    except ImportError:
        return False
    return all(hasattr(m, a) for m, a in [(nn, "Conv2d"), (nn, "Linear"), (F, "cross_entropy"),
                                         (F, "max_pool2d"), (optim, "SGD"), (optim, "Adam"),
                                         (tapegrad, "save"), (tapegrad, "load")])


pytestmark = pytest.mark.skipif(not _have_training_stack(), reason="tapegrad.nn / optim / save not there yet")


def _load(name):
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def synthetic_digits(n, seed):
    """Learnable 28x28 'digits': class k is a bright 8x8 square at one of ten places, plus noise."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, n)
    images = rng.integers(0, 90, (n, 28, 28)).astype(np.uint8)
    for i, k in enumerate(labels):
        r, c = 2 + 12 * (k // 5), 1 + 5 * (k % 5)
        images[i, r:r + 8, c:c + 8] = 255
    return images, labels.astype(np.uint8)


@pytest.fixture(scope="module")
def idx_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("idx")
    for prefix, n, seed in (("train", 360, 0), ("t10k", 64, 1)):
        images, labels = synthetic_digits(n, seed)
        mnist.write_idx(d / f"{prefix}-images-idx3-ubyte.gz", images)
        mnist.write_idx(d / f"{prefix}-labels-idx1-ubyte.gz", labels)
    return d


def test_lenet_learns_in_a_few_steps():
    import tapegrad.nn.functional as F
    import tapegrad.optim
    lenet = _load("lenet")
    tapegrad.manual_seed(0)
    images, labels = synthetic_digits(256, 0)
    x = tapegrad.tensor(images[:, None] / 255.0, dtype=tapegrad.float32)
    y = tapegrad.tensor(labels.astype(np.int64))
    model = lenet.LeNet()
    opt = tapegrad.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    losses = []
    for step in range(12):
        xb, yb = x[(step % 4) * 64:(step % 4 + 1) * 64], y[(step % 4) * 64:(step % 4 + 1) * 64]
        loss = F.cross_entropy(model(xb), yb)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    with tapegrad.no_grad():
        acc = (model(x).numpy().argmax(1) == labels).mean()
    assert np.mean(losses[-3:]) < 0.7 * np.mean(losses[:3]), losses
    assert acc > 0.3, acc  # chance is 0.1


def _run(lenet, idx_dir, out, capsys, *extra):
    argv = ["--data-dir", str(idx_dir), "--cache-dir", str(out.parent / "cache"), "--out", str(out),
            "--limit", "256", "--no-progress", "--threads", "2", *extra]
    acc = lenet.main(argv)
    lines = capsys.readouterr().out.strip().splitlines()
    return acc, lines


def test_lenet_example_end_to_end_and_resume(idx_dir, tmp_path, capsys):
    lenet = _load("lenet")
    acc, lines = _run(lenet, idx_dir, tmp_path / "full", capsys, "--epochs", "2")
    assert lines[-1] == f"test accuracy: {acc:.4f}" and 0 <= acc <= 1
    out = tmp_path / "full"
    for name in ("checkpoint.h5", "checkpoint-epoch1.h5", "checkpoint-epoch2.h5", "curves.csv", "curves.png"):
        assert (out / name).stat().st_size > 0, name
    with open(out / "curves.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["epoch"] for r in rows] == ["1", "2"]
    assert {"train_loss", "train_acc", "val_loss", "val_acc"} <= set(rows[0])
    assert (out / "curves.png").read_bytes()[:4] == b"\x89PNG"

    # resume from the first epoch's checkpoint: the same numbers as two epochs in one go
    acc2, lines2 = _run(lenet, idx_dir, tmp_path / "b", capsys, "--epochs", "2", "--resume",
                        str(out / "checkpoint-epoch1.h5"))
    with open(tmp_path / "b" / "curves.csv") as f:
        resumed = list(csv.DictReader(f))
    assert len(resumed) == 2
    for r, s in zip(rows, resumed):
        for key in ("train_loss", "train_acc", "val_loss", "val_acc", "lr"):
            assert float(r[key]) == float(s[key]), (key, r, s)
    assert acc2 == acc


def test_lenet_missing_data_says_how(tmp_path, monkeypatch, capsys):
    lenet = _load("lenet")
    monkeypatch.setattr(mnist, "FASHION_DIR", str(tmp_path / "nowhere"))
    with pytest.raises(SystemExit, match="apt-get install dataset-fashion-mnist"):
        lenet.main(["--dataset", "fashion-mnist", "--cache-dir", str(tmp_path), "--out", str(tmp_path)])


def test_mlp_example(idx_dir, tmp_path, capsys):
    mlp = _load("mlp")
    acc = mlp.main(["--data-dir", str(idx_dir), "--cache-dir", str(tmp_path), "--epochs", "2", "--hidden", "32"])
    assert capsys.readouterr().out.strip().splitlines()[-1] == f"test accuracy: {acc:.4f}"
    assert acc > 0.3


@pytest.mark.parametrize("flag,value,message", [
    ("--epochs", "-1", "must be >= 1, got -1"), ("--epochs", "0", "must be >= 1"), ("--epochs", "2.5", "an integer"),
    ("--batch-size", "0", "must be >= 1"), ("--lr", "0", r"in \(0, inf\)"), ("--lr", "nan", "finite"),
    ("--lr", "-1e-3", "finite number"), ("--momentum", "1", r"\[0, 1\)"), ("--momentum", "-0.5", r"\[0, 1\)"),
    ("--weight-decay", "-1", r"\[0, inf\)"), ("--weight-decay", "inf", "finite"), ("--warmup-steps", "-1", ">= 0"),
    ("--threads", "0", "between 1 and 1024"), ("--seed", "-1", "between 0"), ("--limit", "0", ">= 1"),
])
def test_lenet_refuses_bad_numbers_before_doing_anything(tmp_path, capsys, flag, value, message):
    lenet = _load("lenet")
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as e:
        lenet.main([f"{flag}={value}", "--out", str(out), "--cache-dir", str(tmp_path / "cache")])
    assert e.value.code == 2  # argparse's usage error
    err = capsys.readouterr().err
    assert f"argument {flag}:" in err and __import__("re").search(message, err), err
    assert not out.exists() and not (tmp_path / "cache").exists()


def _quick(lenet, idx_dir, tmp_path, out, *extra):
    return lenet.main(["--data-dir", str(idx_dir), "--cache-dir", str(tmp_path / "cache"), "--out", str(out),
                       "--limit", "64", "--batch-size", "32", "--warmup-steps", "0", "--no-progress", *extra])


def test_lenet_resume_says_what_does_not_match(idx_dir, tmp_path, capsys):
    lenet = _load("lenet")
    _quick(lenet, idx_dir, tmp_path, tmp_path / "run", "--epochs", "1")
    ckpt = tmp_path / "run" / "checkpoint.h5"
    capsys.readouterr()
    for extra, message in [(["--optimizer", "adam"], "optimizer: the checkpoint has 'sgd', this run 'adam'"),
                           (["--dataset", "fashion-mnist"], "dataset: the checkpoint has 'mnist', this run 'fashion-mnist'"),
                           (["--dtype", "float64"], "dtype: the checkpoint has 'float32', this run 'float64'")]:
        with pytest.raises(SystemExit, match=f"does not match this run:\n  {message}"):
            _quick(lenet, idx_dir, tmp_path, tmp_path / "b", "--epochs", "2", "--resume", str(ckpt), *extra)
        assert not (tmp_path / "b").exists()  # refused before anything was written
    # a changed learning rate is allowed, with a note; nothing left to train at --epochs 1
    _quick(lenet, idx_dir, tmp_path, tmp_path / "c", "--epochs", "1", "--lr", "0.01", "--resume", str(ckpt))
    out = capsys.readouterr().out
    assert "note: --lr is 0.01, the checkpoint's run used 0.05" in out and "nothing to train" in out

    # a checkpoint from before the configuration was stored: its arguments are compared, and a state
    # that doesn't fit the optimizer says so (it was KeyError: 'momentum')
    import json
    old = tapegrad.load(ckpt)
    state = json.loads(old["state"])
    del state["config"]
    tapegrad.save({**old, "state": json.dumps(state)}, tmp_path / "old.h5")
    with pytest.raises(SystemExit, match="optimizer: the checkpoint has 'sgd', this run 'adam'"):
        _quick(lenet, idx_dir, tmp_path, tmp_path / "d", "--resume", str(tmp_path / "old.h5"), "--optimizer", "adam")
    del state["args"]
    adam = tapegrad.optim.Adam(lenet.LeNet().parameters()).state_dict()
    tapegrad.save({**old, "optimizer": adam, "state": json.dumps(state)}, tmp_path / "older.h5")
    with pytest.raises(SystemExit, match="older.h5: its model or optimizer state does not fit this run"):
        _quick(lenet, idx_dir, tmp_path, tmp_path / "e", "--resume", str(tmp_path / "older.h5"))
    tapegrad.save({"model": old["model"]}, tmp_path / "weights.h5")
    with pytest.raises(SystemExit, match="weights.h5 is not a checkpoint of examples/lenet.py"):
        _quick(lenet, idx_dir, tmp_path, tmp_path / "f", "--resume", str(tmp_path / "weights.h5"))
    (tmp_path / "junk.h5").write_bytes(b"junk" * 100)
    with pytest.raises(SystemExit, match="error: --resume: tapegrad.load: .*junk.h5"):
        _quick(lenet, idx_dir, tmp_path, tmp_path / "g", "--resume", str(tmp_path / "junk.h5"))


def test_lenet_latest_checkpoint_is_replaced_atomically(idx_dir, tmp_path, capsys, monkeypatch):
    """A kill while checkpoint.h5 is being copied leaves the previous one whole."""
    lenet = _load("lenet")
    out = tmp_path / "run"
    _quick(lenet, idx_dir, tmp_path, out, "--epochs", "1")
    before = (out / "checkpoint.h5").read_bytes()

    def killed_halfway(src, dst):
        with open(src, "rb") as f, open(dst, "wb") as g:
            g.write(f.read()[:1000])
        raise KeyboardInterrupt

    monkeypatch.setattr(lenet.shutil, "copyfile", killed_halfway)
    with pytest.raises(KeyboardInterrupt):
        _quick(lenet, idx_dir, tmp_path, out, "--epochs", "2", "--resume", str(out / "checkpoint-epoch1.h5"))
    assert (out / "checkpoint.h5").read_bytes() == before
    assert tapegrad.load(out / "checkpoint.h5")["epoch"] == 1
    assert tapegrad.load(out / "checkpoint-epoch2.h5")["epoch"] == 2
    assert not [p for p in os.listdir(out) if p.endswith(".tmp")]


def test_lenet_each_run_has_its_own_folder(idx_dir, tmp_path, capsys, monkeypatch):
    """The default --out is a new folder per run with runs/lenet/latest pointing at it; an
    explicit --out that holds another run's files is refused unless --overwrite (which removes
    them first), and a resumed run goes on in its checkpoint's folder."""
    lenet = _load("lenet")
    monkeypatch.setattr(lenet, "RUNS", tmp_path / "runs")
    base = ["--data-dir", str(idx_dir), "--cache-dir", str(tmp_path / "cache"), "--limit", "64",
            "--batch-size", "32", "--warmup-steps", "0", "--no-progress", "--epochs", "1"]
    lenet.main(base)
    lenet.main(base)
    folders = sorted(p for p in (tmp_path / "runs").iterdir() if not p.is_symlink())
    assert len(folders) == 2 and all(p.name.endswith("-mnist-sgd") or p.name.endswith("-mnist-sgd-2")
                                     for p in folders), folders
    latest = (tmp_path / "runs" / "latest").resolve()
    assert latest in folders and (latest / "checkpoint.h5").exists()
    assert not [p for p in (tmp_path / "runs").iterdir() if p.name.startswith(".latest")]

    out = tmp_path / "mine"
    _quick(lenet, idx_dir, tmp_path, out, "--epochs", "1")
    (out / "notes.txt").write_text("mine")
    with pytest.raises(SystemExit, match="already holds another run's files .*--overwrite"):
        _quick(lenet, idx_dir, tmp_path, out, "--epochs", "1", "--optimizer", "adam")
    assert tapegrad.load(out / "checkpoint.h5")["epoch"] == 1  # untouched
    _quick(lenet, idx_dir, tmp_path, out, "--epochs", "1", "--overwrite", "--seed", "3")
    assert (out / "notes.txt").read_text() == "mine"  # only the run's own files are replaced
    assert sorted(p.name for p in lenet.run_files(out)) == ["checkpoint-epoch1.h5", "checkpoint.h5",
                                                            "curves.csv", "curves.png"]
    # resuming without --out continues in the checkpoint's folder
    capsys.readouterr()
    lenet.main(base[:-1] + ["2", "--resume", str(out / "checkpoint-epoch1.h5"), "--seed", "3"])
    assert tapegrad.load(out / "checkpoint.h5")["epoch"] == 2
    assert f"in {out}" in capsys.readouterr().out


def test_lenet_trains_without_matplotlib(idx_dir, tmp_path, capsys, monkeypatch):
    """Without matplotlib the run says so before training and writes the CSV, not a crash at the end."""
    lenet = _load("lenet")
    monkeypatch.setattr(lenet, "have_matplotlib", lambda: False)
    acc = _quick(lenet, idx_dir, tmp_path, tmp_path / "run", "--epochs", "1")
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith("note: matplotlib is not installed") and lines[-1] == f"test accuracy: {acc:.4f}"
    assert (tmp_path / "run" / "curves.csv").exists() and not (tmp_path / "run" / "curves.png").exists()


def test_lenet_curves_have_a_title_and_whole_epoch_ticks(idx_dir, tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    import matplotlib.figure
    lenet = _load("lenet")
    seen = {}
    real_savefig = matplotlib.figure.Figure.savefig

    def spy(fig, *a, **kw):
        seen["title"] = fig._suptitle.get_text()
        seen["ticks"] = [list(ax.get_xticks()) for ax in fig.axes]
        seen["xlim"] = fig.axes[0].get_xlim()
        return real_savefig(fig, *a, **kw)

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", spy)
    acc = _quick(lenet, idx_dir, tmp_path, tmp_path / "run", "--epochs", "1")
    assert seen["title"] == f"LeNet on MNIST, SGD (lr 0.05, momentum 0.9), batch 32, float32: test accuracy {acc:.4f}"
    lo, hi = seen["xlim"]
    for ticks in seen["ticks"]:
        visible = [t for t in ticks if lo <= t <= hi]
        assert visible == [1.0], ticks
