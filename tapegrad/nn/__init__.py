"""``tapegrad.nn``: modules, layers, losses, ``functional`` and ``init``, with PyTorch's names.

>>> from tapegrad import nn
>>> model = nn.Sequential(nn.Linear(784, 128), nn.ReLU(), nn.Linear(128, 10))
>>> loss = nn.CrossEntropyLoss()(model(x), y)
"""
from .parameter import Buffer, Parameter, UninitializedBuffer, UninitializedParameter  # noqa: F401
from .modules import *  # noqa: F401,F403
# the star brings nn.modules' submodules too (batchnorm, utils, ...); nn.utils is nn's own
del batchnorm, distance, fold, instancenorm, upsampling, utils  # noqa: F821
from . import attention, functional, grad, init, utils  # noqa: F401,E402  (grad: torch.nn.grad, the conv gradients)
from . import parallel  # noqa: F401,E402  (DistributedDataParallel; MPI is loaded only by init_process_group)
from .parallel import DataParallel  # noqa: F401,E402


def factory_kwargs(kwargs):
    """The ``device``/``dtype``/``memory_format`` entries of ``kwargs`` (and those nested under
    ``factory_kwargs``) as one dict for the factory functions, rejecting any other key, as
    ``torch.nn.factory_kwargs`` does.

    >>> tapegrad.nn.factory_kwargs({"dtype": tapegrad.float64})
    {'dtype': dtype('float64')}
    """
    if kwargs is None:
        return {}
    simple = {"device", "dtype", "memory_format"}
    unexpected = set(kwargs) - simple - {"factory_kwargs"}
    if unexpected:
        raise TypeError(f"unexpected kwargs {unexpected}")
    out = dict(kwargs.get("factory_kwargs", {}))
    for k in simple & set(kwargs):
        if k in out:
            raise TypeError(f"{k} specified twice, in **kwargs and in factory_kwargs")
        out[k] = kwargs[k]
    return out
