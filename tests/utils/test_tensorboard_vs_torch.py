"""tapegrad.utils.tensorboard.SummaryWriter against torch.utils.tensorboard: both write event files,
TensorBoard's own reader reads them back, and scalars, histograms, text and images agree. Skips
without the optional ``tensorboard`` package."""
import numpy as np
import pytest

pytest.importorskip("tensorboard")
torch = pytest.importorskip("torch")

from tensorboard.backend.event_processing import event_accumulator  # noqa: E402
from torch.utils.tensorboard import SummaryWriter as TorchWriter  # noqa: E402

import tapegrad as tg  # noqa: E402
from tapegrad.utils.tensorboard import SummaryWriter  # noqa: E402



def _log(writer_cls, M, path):
    values = np.random.default_rng(0).standard_normal(500)
    img = np.random.default_rng(1).random((3, 8, 6))
    with writer_cls(str(path)) as w:
        for step in range(3):
            w.add_scalar("loss/train", M.tensor(1.0 / (step + 1)), step, walltime=100.0 + step)
            w.add_scalar("lr", 0.1 * step, step, walltime=100.0 + step)
        w.add_scalars("loss", {"train": 0.5, "val": 0.7}, 4, walltime=104.0)
        w.add_histogram("w", M.tensor(values), 1, walltime=101.0)
        w.add_histogram("w_auto", values, 2, bins="auto", walltime=102.0)
        w.add_text("notes", "lr **0.1**", 0, walltime=100.0)
        w.add_image("img", M.tensor(img), 0, walltime=100.0)
        w.add_image("gray", np.random.default_rng(2).random((5, 7)), 0, walltime=100.0, dataformats="HW")
    acc = event_accumulator.EventAccumulator(str(path), size_guidance={"scalars": 0, "histograms": 0, "images": 0,
                                                                         "tensors": 0})
    return acc.Reload()


def test_summary_writer_matches_torch(tmp_path):
    t = _log(TorchWriter, torch, tmp_path / "torch")
    g = _log(SummaryWriter, tg, tmp_path / "tapegrad")
    assert sorted(t.Tags()["scalars"]) == sorted(g.Tags()["scalars"])
    for tag in t.Tags()["scalars"]:
        assert [(e.step, e.value, e.wall_time) for e in t.Scalars(tag)] == \
               [(e.step, e.value, e.wall_time) for e in g.Scalars(tag)]
    for tag in ("w", "w_auto"):
        (th,), (gh,) = t.Histograms(tag), g.Histograms(tag)
        assert th.step == gh.step
        assert th.histogram_value == gh.histogram_value
    for tag in ("img", "gray"):
        (ti,), (gi,) = t.Images(tag), g.Images(tag)
        assert (ti.width, ti.height, ti.encoded_image_string) == (gi.width, gi.height, gi.encoded_image_string)
    (tt,), (gt,) = t.Tensors("notes/text_summary"), g.Tensors("notes/text_summary")
    assert tt.tensor_proto == gt.tensor_proto
    for sub in ("loss_train", "loss_val"):
        ts = event_accumulator.EventAccumulator(str(tmp_path / "torch" / sub)).Reload().Scalars("loss")
        gs = event_accumulator.EventAccumulator(str(tmp_path / "tapegrad" / sub)).Reload().Scalars("loss")
        assert [(e.step, e.value) for e in ts] == [(e.step, e.value) for e in gs]


def test_summary_writer_errors(tmp_path):
    with SummaryWriter(str(tmp_path)) as w:
        assert w.get_logdir() == str(tmp_path)
        with pytest.raises(ValueError, match="add_scalar: scalar_value must hold one number"):
            w.add_scalar("x", tg.ones(2), 0)
        with pytest.raises(ValueError, match="add_histogram: the input has no element"):
            w.add_histogram("h", np.array([]), 0)
        with pytest.raises(TypeError, match="add_text: text_string must be a str"):
            w.add_text("t", 3, 0)
        with pytest.raises(ValueError, match="add_image: dataformats 'CHW' does not fit"):
            w.add_image("i", np.zeros((4, 4)), 0)
