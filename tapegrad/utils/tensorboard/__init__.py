"""``tapegrad.utils.tensorboard``: ``SummaryWriter``, writing TensorBoard event files as
``torch.utils.tensorboard`` does. It needs the ``tensorboard`` package, an optional extra:
``pip install tapegrad[tensorboard]``; ``import tapegrad`` works without it.

>>> writer = SummaryWriter("runs/lenet")
>>> writer.add_scalar("loss/train", loss.item(), step)
>>> writer.close()
"""
from __future__ import annotations

try:
    from tensorboard.compat.proto.event_pb2 import Event  # noqa: F401
except ImportError as e:
    raise ImportError("tapegrad.utils.tensorboard needs the tensorboard package, an optional extra of tapegrad: "
                      "pip install 'tapegrad[tensorboard]' (or pip install tensorboard)") from e

from .writer import SummaryWriter  # noqa: E402

__all__ = ["SummaryWriter"]
