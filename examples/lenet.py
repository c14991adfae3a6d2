"""Train Caffe's LeNet on MNIST (or Fashion-MNIST) with tapegrad.

    bash scripts/lenet.sh                     # fresh machine: venv, install, data, train 3 epochs
    python examples/lenet.py --epochs 3       # in an environment that already has tapegrad
    python examples/lenet.py --dataset fashion-mnist --optimizer adam --lr 1e-3

The data is found and converted to HDF5 under --cache-dir on first use (see
tapegrad/utils/data/mnist.py for the sources). Each epoch prints a progress bar, validates,
and saves a checkpoint (model, optimizer, epoch, random state, the run's configuration) to
--out; --resume continues from one exactly, and refuses a checkpoint of another model, dataset,
optimizer or dtype (checkpoint.h5 is the latest, checkpoint-epochN.h5 each epoch's). At the end
the loss/accuracy curves go to --out as CSV and PNG (titled with the run and its test accuracy),
and the last line printed is ``test accuracy: 0.XXXX``. Same seed and thread count, same numbers.

Each run gets its own folder, runs/lenet/<date>-<time>-<dataset>-<optimizer>, and runs/lenet/latest
points to the newest; a resumed run goes on writing in its checkpoint's folder. An --out that
already holds another run's files is refused unless --overwrite is given (its old run files are
then removed first, so no folder mixes two runs).

    mpiexec -n 2 python examples/lenet.py --distributed --threads 1

trains data-parallel over MPI (docs/distributed.md): --batch-size is the global batch, split
over the ranks, so the run follows the one-process run; only rank 0 prints progress and writes
files, and every rank prints the same final ``test accuracy:``.
"""
from __future__ import annotations

import argparse
import builtins
import csv
import importlib.util
import json
import math
import os
import shutil
import sys
import time
from pathlib import Path

import tapegrad
import tapegrad.nn as nn
import tapegrad.optim
import tapegrad.nn.functional as F
from tapegrad.nn.parallel import DistributedDataParallel
from tapegrad.serialization import CheckpointError, atomic_write
from tapegrad.utils.data import DataLoader, DistributedSampler, HDF5Dataset, mnist

ROOT = Path(__file__).resolve().parent.parent


class LeNet(nn.Module):
    """Caffe's LeNet: two 5x5 convolutions with 2x2 max-pooling, then 800 -> 500 -> 10."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 20, kernel_size=5)
        self.conv2 = nn.Conv2d(20, 50, kernel_size=5)
        self.fc1 = nn.Linear(800, 500)
        self.fc2 = nn.Linear(500, 10)

    def forward(self, x):
        x = F.max_pool2d(self.conv1(x), 2)        # 1x28x28 -> 20x24x24 -> 20x12x12
        x = F.max_pool2d(self.conv2(x), 2)        # -> 50x8x8 -> 50x4x4
        x = F.relu(self.fc1(x.reshape(x.shape[0], 800)))
        return self.fc2(x)


def integer(lo, hi=None):
    """An argparse type: an integer in [lo, hi]."""
    def parse(text):
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if v < lo or (hi is not None and v > hi):
            raise argparse.ArgumentTypeError(f"must be {f'between {lo} and {hi}' if hi is not None else f'>= {lo}'}, "
                                             f"got {v}")
        return v
    return parse


def real(lo, hi=None, lo_open=False, hi_open=False):
    """An argparse type: a finite number in the interval from lo to hi (open ends as asked)."""
    def parse(text):
        try:
            v = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        above = v > lo if lo_open else v >= lo
        below = hi is None or (v < hi if hi_open else v <= hi)
        if not (math.isfinite(v) and above and below):
            interval = "(" if lo_open else "["
            interval += f"{lo}, inf)" if hi is None else f"{lo}, {hi}" + (")" if hi_open else "]")
            raise argparse.ArgumentTypeError(f"must be a finite number in {interval}, got {text}")
        return v
    return parse


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--epochs", type=integer(1), default=3)
    p.add_argument("--batch-size", type=integer(1), default=64)
    p.add_argument("--optimizer", choices=["sgd", "adam"], default="sgd")
    p.add_argument("--lr", type=real(0, lo_open=True), default=None,
                   help="peak learning rate (default: 0.05 sgd, 1e-3 adam)")
    p.add_argument("--momentum", type=real(0, 1, hi_open=True), default=0.9, help="SGD momentum")
    p.add_argument("--weight-decay", type=real(0), default=5e-4)
    p.add_argument("--schedule", choices=["cosine", "constant"], default="cosine",
                   help="learning rate after the warm-up: cosine decay to 0 per step, or constant")
    p.add_argument("--warmup-steps", type=integer(0), default=300, help="steps of linear learning-rate warm-up")
    p.add_argument("--threads", type=integer(1, 1024), default=2)
    p.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    p.add_argument("--seed", type=integer(0, 2 ** 63 - 1), default=0)
    p.add_argument("--dataset", choices=["mnist", "fashion-mnist"], default="mnist")
    p.add_argument("--data-dir", default=None, help="a folder with the four standard IDX files")
    p.add_argument("--cache-dir", default=str(ROOT / "data"), help="where the converted HDF5 file is kept")
    p.add_argument("--limit", type=integer(1), default=None, help="train on the first N training images only")
    p.add_argument("--out", default=None,
                   help="folder for the checkpoints, curves.csv and curves.png (default: a new folder "
                        "runs/lenet/<date>-<time>-<dataset>-<optimizer>, or the resumed checkpoint's folder)")
    p.add_argument("--overwrite", action="store_true",
                   help="reuse an --out that holds another run's files (they are removed first)")
    p.add_argument("--resume", default=None, metavar="CHECKPOINT", help="continue from a saved checkpoint")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--distributed", action="store_true",
                   help="data-parallel over MPI: start with mpiexec -n N (needs tapegrad[distributed])")
    args = p.parse_args(argv)
    if args.lr is None:
        args.lr = 0.05 if args.optimizer == "sgd" else 1e-3
    return args


def lr_at(args, step, total):
    """Linear warm-up over --warmup-steps (momentum SGD at the peak rate can blow up in the
    first steps, on Fashion-MNIST especially), then cosine decay to 0 or constant."""
    warm = min(args.warmup_steps, total // 4)
    if step < warm:
        return args.lr * (step + 1) / warm
    if args.schedule == "constant":
        return args.lr
    return 0.5 * args.lr * (1 + math.cos(math.pi * (step - warm) / max(total - warm, 1)))


def evaluate(model, loader):
    """Mean cross-entropy and accuracy over a loader, without recording a tape."""
    model.eval()
    loss_sum, correct, n = 0.0, 0, 0
    with tapegrad.no_grad():
        for x, y in loader:
            logits = model(x)
            loss_sum += F.cross_entropy(logits, y, reduction="sum").item()
            correct += int((logits.numpy().argmax(1) == y.numpy()).sum())
            n += len(y)
    model.train()
    return loss_sum / max(n, 1), correct / max(n, 1)


def progress(iterable, args, **kw):
    if args.no_progress:
        return iterable
    try:
        from tqdm import tqdm
    except ImportError:  # tqdm is in the "examples" extra; train without bars if it's missing
        return iterable
    return tqdm(iterable, dynamic_ncols=True, **kw)


RUNS = ROOT / "runs" / "lenet"
RUN_FILES = ("checkpoint.h5", "curves.csv", "curves.png")  # with checkpoint-epoch*.h5


def have_matplotlib():
    """Whether curves.png can be drawn (matplotlib is in the "examples" extra)."""
    return importlib.util.find_spec("matplotlib") is not None


def run_files(folder: Path):
    """The files in folder that a run of this script writes."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir()
                  if p.name in RUN_FILES or (p.name.startswith("checkpoint-epoch") and p.suffix == ".h5"))


def choose_out(args):
    """The run's folder. A new one per run by default; an explicit --out holding another run's
    files is refused (exit) unless --overwrite, which removes those files, or unless the run
    resumes a checkpoint from that folder and so continues the same run there."""
    if args.out is None:
        if args.resume:
            return Path(args.resume).resolve().parent
        stamp = time.strftime("%Y%m%d-%H%M%S")
        out = RUNS / f"{stamp}-{args.dataset}-{args.optimizer}"
        n = 1
        while out.exists():  # two runs started in the same second
            n += 1
            out = RUNS / f"{stamp}-{args.dataset}-{args.optimizer}-{n}"
        return out
    out = Path(args.out)
    old = run_files(out)
    continues = args.resume and Path(args.resume).resolve().parent == out.resolve()
    if old and not continues:
        if not args.overwrite:
            sys.exit(f"error: --out {out} already holds another run's files ({', '.join(p.name for p in old[:4])}"
                     f"{', ...' if len(old) > 4 else ''}): pass --overwrite to replace them, or leave out --out "
                     f"to start a new folder under {RUNS}")
    return out


def prepare_out(args, out: Path):
    """Creates the run's folder (removing an overwritten run's files) and points runs/lenet/latest
    at a new default folder."""
    if args.overwrite and not (args.resume and Path(args.resume).resolve().parent == out.resolve()):
        for p in run_files(out):
            p.unlink()
    out.mkdir(parents=True, exist_ok=True)
    if args.out is None and out.parent == RUNS:
        link = RUNS / f".latest-{os.getpid()}"
        try:
            if link.is_symlink():
                link.unlink()
            link.symlink_to(out.name)
            os.replace(link, RUNS / "latest")  # atomic: latest always names a whole folder
        except OSError:  # a file system without symbolic links: the folder's name was printed
            pass


def shown(path: Path) -> str:
    """The path as the user would type it: relative to the working directory when inside it."""
    path = path.resolve()
    return os.path.relpath(path) if path.is_relative_to(Path.cwd()) else str(path)


def describe(args):
    """The run in one line, for the curves' title."""
    opt = (f"SGD (lr {args.lr:g}, momentum {args.momentum:g})" if args.optimizer == "sgd"
           else f"Adam (lr {args.lr:g})")
    data = {"mnist": "MNIST", "fashion-mnist": "Fashion-MNIST"}[args.dataset]
    return f"LeNet on {data}, {opt}, batch {args.batch_size}, {args.dtype}"


def save_curves(history, out: Path, title: str = ""):
    """history (one dict per epoch) -> curves.csv, and curves.png when matplotlib is there."""
    with open(out / "curves.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(history[0]))
        w.writeheader()
        w.writerows(history)
    if not have_matplotlib():
        return False
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    epochs = [h["epoch"] for h in history]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4.4))
    ax1.plot(epochs, [h["train_loss"] for h in history], "o-", label="train")
    ax1.plot(epochs, [h["val_loss"] for h in history], "o-", label="validation")
    ax1.set(xlabel="epoch", ylabel="cross-entropy", title="loss")
    ax2.plot(epochs, [h["train_acc"] for h in history], "o-", label="train")
    ax2.plot(epochs, [h["val_acc"] for h in history], "o-", label="validation")
    ax2.set(xlabel="epoch", ylabel="accuracy", title="accuracy")
    for ax in (ax1, ax2):
        ax.grid(alpha=0.3)
        ax.legend()
        # whole epochs only: a tick per epoch for short runs (a one-epoch run would get ticks
        # 0.5, 0.6, ... otherwise; MaxNLocator falls back to fractions below two integers)
        if len(epochs) <= 20:
            ax.set_xticks(epochs)
        else:
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlim(min(epochs) - 0.5, max(epochs) + 0.5)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(out / "curves.png", dpi=100)
    plt.close(fig)
    return True


# What a checkpoint must share with the run that resumes it (else the weights or the optimizer
# state mean something else), and what may change with a note (the run then differs from an
# uninterrupted one).
MUST_MATCH = ("model", "dataset", "optimizer", "dtype")
MAY_DIFFER = ("lr", "momentum", "weight_decay", "batch_size", "schedule", "warmup_steps", "limit", "seed", "data_dir")


def run_config(args):
    """The run's configuration, stored in each checkpoint."""
    config = {"model": "LeNet", **{k: getattr(args, k) for k in MUST_MATCH[1:] + MAY_DIFFER}}
    if args.optimizer != "sgd":
        config.pop("momentum")
    return config


def load_resume(args):
    """The checkpoint to resume, checked against this run's configuration; exits with a message
    saying what does not match."""
    try:
        ckpt = tapegrad.load(args.resume)
        state = json.loads(str(ckpt["state"]))
        for key in ("model", "optimizer", "epoch"):
            ckpt[key]
    except (OSError, CheckpointError) as e:
        sys.exit(f"error: --resume: {e}")
    except (KeyError, TypeError, ValueError):
        sys.exit(f"error: --resume: {args.resume} is not a checkpoint of examples/lenet.py (it needs 'model', "
                 f"'optimizer', 'epoch' and 'state' entries)")
    # checkpoints from before the configuration was stored still have the arguments
    saved = state.get("config") or {"model": "LeNet", **state.get("args", {})}
    now = run_config(args)
    wrong = [f"{k}: the checkpoint has {saved[k]!r}, this run {now[k]!r}" for k in MUST_MATCH
             if k in saved and saved[k] != now[k]]
    if wrong:
        sys.exit(f"error: --resume {args.resume} does not match this run:\n  " + "\n  ".join(wrong) +
                 "\nresume with the same --dataset/--optimizer/--dtype, or start a new run without --resume")
    for k in MAY_DIFFER:
        if k in saved and k in now and saved[k] != now[k]:
            print(f"note: --{k.replace('_', '-')} is {now[k]!r}, the checkpoint's run used {saved[k]!r}: the "
                  f"resumed run will differ from an uninterrupted one")
    return ckpt, state


def _quiet(*args, **kwargs):
    pass


def main(argv=None):
    args = parse_args(argv)
    out = choose_out(args)  # before anything is written (and on every rank, before they start)
    rank, world = 0, 1
    if args.distributed:
        import tapegrad.distributed as dist
        dist.init_process_group("mpi")
        rank, world = dist.get_rank(), dist.get_world_size()
        if args.batch_size % world:
            raise ValueError(f"--batch-size {args.batch_size} must be a multiple of the {world} ranks")
        args.no_progress = args.no_progress or rank > 0
    # one voice: the other ranks print only the final test accuracy
    print = builtins.print if rank == 0 else _quiet  # noqa: A001
    if not have_matplotlib():
        print("note: matplotlib is not installed, so curves.png will not be drawn (curves.csv will); "
              "pip install matplotlib, or the 'examples' extra, for the picture")
    ckpt = state = None
    if args.resume:  # before anything is prepared or written: a mismatch says so at once
        ckpt, state = load_resume(args)
    tapegrad.set_num_threads(args.threads)
    tapegrad.manual_seed(args.seed)
    dtype = {"float32": tapegrad.float32, "float64": tapegrad.float64}[args.dtype]
    if rank == 0:
        prepare_out(args, out)

    try:
        if rank:  # rank 0 converts the data first: no two ranks write the cache file at once
            dist.barrier()
        path = mnist.prepare(args.dataset, data_dir=args.data_dir, cache_dir=args.cache_dir)
        if args.distributed and rank == 0:
            dist.barrier()
    except mnist.DataNotFoundError as e:
        if args.distributed:
            raise  # an uncaught exception aborts every rank; sys.exit would leave the others waiting
        sys.exit(f"error: {e}")
    data = {split: HDF5Dataset(path, split, load_into_memory=True, dtype=dtype, shape=(1, 28, 28),
                               limit=args.limit if split == "train" else None)
            for split in ("train", "val", "test")}
    shuffle = tapegrad.Generator().manual_seed(args.seed)
    train_loader = DataLoader(data["train"], batch_size=args.batch_size, shuffle=True, generator=shuffle)
    if args.distributed:  # each rank its share of every epoch's permutation
        sampler = DistributedSampler(data["train"], seed=args.seed)
        train_loader = DataLoader(data["train"], batch_size=args.batch_size // world, sampler=sampler)
    val_loader = DataLoader(data["val"], batch_size=1000)
    test_loader = DataLoader(data["test"], batch_size=1000)

    model = net = LeNet().to(dtype)
    if args.optimizer == "sgd":
        opt = tapegrad.optim.SGD(model.parameters(), lr=args.lr, momentum=args.momentum,
                                 weight_decay=args.weight_decay)
    else:
        opt = tapegrad.optim.Adam(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)

    start_epoch, history = 0, []
    if ckpt is not None:
        try:
            net.load_state_dict(ckpt["model"])
            expected = set(opt.param_groups[0])
            opt.load_state_dict(ckpt["optimizer"])  # takes any optimizer's groups; step() would then fail
            for group in opt.param_groups:
                if expected - set(group):
                    raise KeyError(f"the optimizer state lacks {sorted(expected - set(group))} (saved by another "
                                   f"optimizer?)")
            start_epoch = int(ckpt["epoch"])
            tapegrad.set_rng_state(state["rng"])
            shuffle.set_state(state["shuffle"])
            history = state["history"]
        except (KeyError, ValueError, TypeError, RuntimeError) as e:
            sys.exit(f"error: --resume {args.resume}: its model or optimizer state does not fit this run "
                     f"({type(e).__name__}: {e})")
        print(f"resumed from {args.resume} after epoch {start_epoch}")
        if start_epoch >= args.epochs:
            print(f"note: the checkpoint is at epoch {start_epoch}, --epochs is {args.epochs}: nothing to train, "
                  f"evaluating only")
    if args.distributed:  # after a resume: every rank starts from rank 0's weights
        model = DistributedDataParallel(net)

    print(f"LeNet on {args.dataset}: {len(data['train'])} train / {len(data['val'])} val / "
          f"{len(data['test'])} test images, {args.optimizer} lr {args.lr}, batch {args.batch_size}, "
          f"{args.dtype}, {args.threads} threads, seed {args.seed}; writing to {shown(out)}")
    steps_per_epoch = len(train_loader)
    total = args.epochs * steps_per_epoch
    for epoch in range(start_epoch, args.epochs):
        if args.distributed:
            sampler.set_epoch(epoch)
        t0 = time.perf_counter()
        loss_sum, correct, seen = 0.0, 0, 0
        bar = progress(train_loader, args, desc=f"epoch {epoch + 1}/{args.epochs}", unit="batch")
        for i, (x, y) in enumerate(bar):
            lr = lr_at(args, epoch * steps_per_epoch + i, total)
            for group in opt.param_groups:
                group["lr"] = lr
            logits = model(x)
            loss = F.cross_entropy(logits, y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            loss_sum += loss.item() * len(y)
            correct += int((logits.detach().numpy().argmax(1) == y.numpy()).sum())
            seen += len(y)
            if hasattr(bar, "set_postfix") and (i % 10 == 0 or i == steps_per_epoch - 1):
                bar.set_postfix(loss=f"{loss_sum / seen:.4f}", acc=f"{correct / seen:.4f}",
                                img_s=f"{seen / (time.perf_counter() - t0):.0f}", refresh=False)
        seconds = time.perf_counter() - t0
        if args.distributed:  # the whole batch's figures, not this rank's share
            totals = tapegrad.tensor([loss_sum, correct, seen], dtype=tapegrad.float64)
            dist.all_reduce(totals)
            loss_sum, correct, seen = totals.tolist()
        val_loss, val_acc = evaluate(net, val_loader)
        history.append({"epoch": epoch + 1, "train_loss": loss_sum / seen, "train_acc": correct / seen,
                        "val_loss": val_loss, "val_acc": val_acc, "lr": lr, "seconds": seconds})
        print(f"epoch {epoch + 1}: train loss {loss_sum / seen:.4f} acc {correct / seen:.4f} | "
              f"val loss {val_loss:.4f} acc {val_acc:.4f} | {seconds:.1f} s, {seen / seconds:.0f} images/s")
        state = {"rng": tapegrad.get_rng_state(), "shuffle": shuffle.get_state(), "history": history,
                 "args": vars(args), "config": run_config(args)}
        ckpt = out / f"checkpoint-epoch{epoch + 1}.h5"
        if rank == 0:
            tapegrad.save({"model": net.state_dict(), "optimizer": opt.state_dict(), "epoch": epoch + 1,
                           "state": json.dumps(state)}, ckpt)
            # the latest, under a fixed name: copied to a temporary file and renamed, so a kill
            # mid-copy leaves the previous checkpoint.h5 whole
            atomic_write(out / "checkpoint.h5", lambda tmp: shutil.copyfile(ckpt, tmp))
        if args.distributed:
            dist.barrier()  # the checkpoint is complete before any rank can read it

    test_loss, test_acc = evaluate(net, test_loader)
    drawn = False
    if history and rank == 0:
        drawn = save_curves(history, out, f"{describe(args)}: test accuracy {test_acc:.4f}")
    print(f"checkpoint, curves.csv{' and curves.png' if drawn else ''} in {shown(out)}")
    builtins.print(f"test accuracy: {test_acc:.4f}")
    return test_acc


if __name__ == "__main__":
    main()
