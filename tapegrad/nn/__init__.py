"""``tapegrad.nn``: modules, layers, losses, ``functional`` and ``init``, with PyTorch's names.

>>> from tapegrad import nn
>>> model = nn.Sequential(nn.Linear(784, 128), nn.ReLU(), nn.Linear(128, 10))
>>> loss = nn.CrossEntropyLoss()(model(x), y)
"""
from .parameter import Buffer, Parameter, UninitializedBuffer, UninitializedParameter  # noqa: F401
from .modules import *  # noqa: F401,F403
from . import functional, init, utils  # noqa: F401
from . import parallel  # noqa: F401,E402  (DistributedDataParallel; MPI is loaded only by init_process_group)
from .parallel import DataParallel  # noqa: F401,E402
