"""``tapegrad.optim``: optimizers with PyTorch's update rules, and ``lr_scheduler``.

>>> opt = tapegrad.optim.Adam(model.parameters(), lr=1e-3)
>>> opt.zero_grad(); loss.backward(); opt.step()
"""
from .optimizer import Optimizer  # noqa: F401
from .sgd import SGD  # noqa: F401
from .adam import Adam, AdamW  # noqa: F401
from .adagrad import Adagrad  # noqa: F401
from .adadelta import Adadelta  # noqa: F401
from .rmsprop import RMSprop  # noqa: F401
from .nadam import NAdam, RAdam, Adamax  # noqa: F401
from .rprop import Rprop, ASGD  # noqa: F401
from .lbfgs import LBFGS  # noqa: F401
from .adafactor import Adafactor  # noqa: F401
from .muon import Muon  # noqa: F401
from .sparse_adam import SparseAdam  # noqa: F401
from ._stateless import swap_in_optimizer_params_and_state  # noqa: F401
from . import lr_scheduler, swa_utils  # noqa: F401

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "Adagrad", "Adadelta", "RMSprop", "NAdam", "RAdam", "Adamax", "Rprop",
           "ASGD", "LBFGS", "Adafactor", "Muon", "SparseAdam", "lr_scheduler", "swa_utils",
           "swap_in_optimizer_params_and_state"]
