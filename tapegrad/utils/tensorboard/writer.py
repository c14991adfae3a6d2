"""``SummaryWriter``: scalars, histograms, text and images as TensorBoard events (the protos and
the event-file writer are the ``tensorboard`` package's, as PyTorch's writer uses them)."""
from __future__ import annotations

import io
import os
import socket
import time
from datetime import datetime

import numpy as np
from tensorboard.compat.proto.event_pb2 import Event
from tensorboard.compat.proto.summary_pb2 import HistogramProto, Summary, SummaryMetadata
from tensorboard.compat.proto.tensor_pb2 import TensorProto
from tensorboard.compat.proto.tensor_shape_pb2 import TensorShapeProto
from tensorboard.plugins.text.plugin_data_pb2 import TextPluginData
from tensorboard.summary.writer.event_file_writer import EventFileWriter

from ...tensor import Tensor

__all__ = ["SummaryWriter"]


def _array(x, what) -> np.ndarray:
    if isinstance(x, Tensor):
        return np.asarray(x.detach()._data)
    try:
        return np.asarray(x)
    except Exception as e:
        raise TypeError(f"SummaryWriter.{what}: expected a tensor, array or number, got {type(x).__name__}") from e


def _scalar(x, what) -> float:
    arr = _array(x, what)
    if arr.size != 1:
        raise ValueError(f"SummaryWriter.{what}: scalar_value must hold one number, got shape {arr.shape}")
    return arr.reshape(()).item()


def _histogram_proto(values: np.ndarray, bins, max_bins=None) -> HistogramProto:
    values = values.astype(np.float64).reshape(-1)
    if values.size == 0:
        raise ValueError("SummaryWriter.add_histogram: the input has no element")
    if isinstance(bins, str) and bins == "tensorflow":  # PyTorch's default: exponentially spaced buckets
        bins = _tensorflow_bins()
    counts, limits = np.histogram(values, bins=bins)
    num_bins = len(counts)
    if max_bins is not None and num_bins > max_bins:
        subsampling = num_bins // max_bins
        subsampling_remainder = num_bins % subsampling
        if subsampling_remainder != 0:
            counts = np.pad(counts, (0, subsampling - subsampling_remainder), constant_values=0)
        counts = counts.reshape(-1, subsampling).sum(axis=-1)
        new_limits = np.empty((counts.size + 1,), limits.dtype)
        new_limits[:-1] = limits[:-1:subsampling]
        new_limits[-1] = limits[-1]
        limits = new_limits
    # drop the empty buckets at both ends, as PyTorch's make_histogram
    cum_counts = np.cumsum(np.greater(counts, 0))
    start, end = np.searchsorted(cum_counts, [0, cum_counts[-1] - 1], side="right")
    start, end = int(start), int(end) + 1
    counts = counts[start - 1:end] if start > 0 else np.concatenate([[0], counts[:end]])
    limits = limits[start:end + 1]
    if counts.size == 0 or limits.size == 0:
        raise ValueError("SummaryWriter.add_histogram: the values fall in no bucket")
    sum_sq = values.dot(values)
    return HistogramProto(min=values.min(), max=values.max(), num=len(values), sum=values.sum(), sum_squares=sum_sq,
                          bucket_limit=limits.tolist(), bucket=counts.tolist())


def _tensorflow_bins():
    v = 1e-12
    buckets = []
    neg_buckets = []
    while v < 1e20:
        buckets.append(v)
        neg_buckets.append(-v)
        v *= 1.1
    return neg_buckets[::-1] + [0] + buckets


def _image_proto(img: np.ndarray, dataformats: str) -> Summary.Image:
    from PIL import Image  # optional: only images need it
    dataformats = dataformats.upper()
    if len(dataformats) != img.ndim or set(dataformats) - set("NCHW"):
        raise ValueError(f"SummaryWriter.add_image: dataformats {dataformats!r} does not fit an image of shape "
                         f"{img.shape}")
    if img.ndim == 2:
        img = img[..., None]
        dataformats += "C"
    img = np.transpose(img, [dataformats.index(c) for c in "HWC"])
    if img.shape[2] == 1:
        img = np.concatenate([img, img, img], 2)
    scale = 1 if img.dtype == np.uint8 else 255
    img = np.clip(img.astype(np.float32) * scale, 0, 255).astype(np.uint8)
    height, width, channel = img.shape
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG")
    return Summary.Image(height=height, width=width, colorspace=channel, encoded_image_string=buf.getvalue())


class SummaryWriter:
    """Write TensorBoard events to ``log_dir`` (default ``runs/<date>_<host><comment>``).

    >>> with SummaryWriter("runs/exp1") as writer:
    ...     for step in range(100):
    ...         writer.add_scalar("loss", 1.0 / (step + 1), step)
    """

    def __init__(self, log_dir=None, comment: str = "", purge_step=None, max_queue: int = 10,
                 flush_secs: int = 120, filename_suffix: str = ""):
        if not log_dir:
            current_time = datetime.now().strftime("%b%d_%H-%M-%S")
            log_dir = os.path.join("runs", current_time + "_" + socket.gethostname() + comment)
        self.log_dir = str(log_dir)
        self.purge_step = purge_step
        self.max_queue, self.flush_secs, self.filename_suffix = max_queue, flush_secs, filename_suffix
        self._writer = EventFileWriter(self.log_dir, max_queue, flush_secs, filename_suffix)
        self._scalar_writers: dict = {}
        if purge_step is not None:
            self._writer.add_event(Event(step=purge_step, file_version="brain.Event:2"))
            self._writer.add_event(Event(step=purge_step, session_log={"status": 1}))  # START: drop later steps

    def get_logdir(self) -> str:
        """The directory the event files go to."""
        return self.log_dir

    def _add(self, summary, global_step, walltime, writer=None):
        event = Event(summary=summary, wall_time=time.time() if walltime is None else walltime)
        if global_step is not None:
            event.step = int(global_step)
        (writer or self._writer).add_event(event)

    def add_scalar(self, tag: str, scalar_value, global_step=None, walltime=None, new_style: bool = False,
                   double_precision: bool = False) -> None:
        """Log one number (a float, or a one-element tensor) under ``tag`` at ``global_step``.

        >>> writer.add_scalar("loss/train", 0.25, global_step=10)
        """
        value = _scalar(scalar_value, "add_scalar")
        if new_style:
            dtype = "DT_DOUBLE" if double_precision else "DT_FLOAT"
            key = "double_val" if double_precision else "float_val"
            tensor = TensorProto(dtype=dtype, tensor_shape=TensorShapeProto(), **{key: [value]})
            meta = SummaryMetadata(plugin_data=SummaryMetadata.PluginData(plugin_name="scalars"))
            summary = Summary(value=[Summary.Value(tag=tag, tensor=tensor, metadata=meta)])
        else:
            summary = Summary(value=[Summary.Value(tag=tag, simple_value=value)])
        self._add(summary, global_step, walltime)

    def add_scalars(self, main_tag: str, tag_scalar_dict: dict, global_step=None, walltime=None) -> None:
        """Log several numbers at once, each in its own run ``<log_dir>/<main_tag>_<tag>`` (one chart).

        >>> writer.add_scalars("loss", {"train": 0.3, "val": 0.4}, global_step=10)
        """
        walltime = time.time() if walltime is None else walltime
        for tag, value in tag_scalar_dict.items():
            fw_tag = os.path.join(self.log_dir, main_tag.replace("/", "_") + "_" + tag)
            if fw_tag not in self._scalar_writers:
                self._scalar_writers[fw_tag] = EventFileWriter(fw_tag, self.max_queue, self.flush_secs,
                                                               self.filename_suffix)
            summary = Summary(value=[Summary.Value(tag=main_tag, simple_value=_scalar(value, "add_scalars"))])
            self._add(summary, global_step, walltime, self._scalar_writers[fw_tag])

    def add_histogram(self, tag: str, values, global_step=None, bins="tensorflow", walltime=None,
                      max_bins=None) -> None:
        """Log the distribution of ``values`` (``bins``: "tensorflow", a numpy bins rule or edges).

        >>> writer.add_histogram("fc1.weight", model.fc1.weight, epoch)
        """
        hist = _histogram_proto(_array(values, "add_histogram"), bins, max_bins)
        self._add(Summary(value=[Summary.Value(tag=tag, histo=hist)]), global_step, walltime)

    def add_text(self, tag: str, text_string: str, global_step=None, walltime=None) -> None:
        """Log a text (Markdown) under ``tag``.

        >>> writer.add_text("config", "lr = 0.01", 0)
        """
        if not isinstance(text_string, str):
            raise TypeError(f"SummaryWriter.add_text: text_string must be a str, got {type(text_string).__name__}")
        plugin = SummaryMetadata.PluginData(plugin_name="text", content=TextPluginData(version=0).SerializeToString())
        tensor = TensorProto(dtype="DT_STRING", string_val=[text_string.encode("utf_8")],
                             tensor_shape=TensorShapeProto(dim=[TensorShapeProto.Dim(size=1)]))
        value = Summary.Value(tag=tag + "/text_summary", metadata=SummaryMetadata(plugin_data=plugin), tensor=tensor)
        self._add(Summary(value=[value]), global_step, walltime)

    def add_image(self, tag: str, img_tensor, global_step=None, walltime=None, dataformats: str = "CHW") -> None:
        """Log an image: floats in [0, 1] or uint8, laid out as ``dataformats`` (CHW, HWC, HW).

        >>> writer.add_image("sample", images[0], step)
        """
        image = _image_proto(_array(img_tensor, "add_image"), dataformats)
        self._add(Summary(value=[Summary.Value(tag=tag, image=image)]), global_step, walltime)

    def flush(self) -> None:
        """Write the pending events to disk."""
        self._writer.flush()
        for w in self._scalar_writers.values():
            w.flush()

    def close(self) -> None:
        """Flush and close the event files."""
        self._writer.close()
        for w in self._scalar_writers.values():
            w.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
