"""``torch.nn.utils.skip_init``: a module whose parameters are left uninitialised."""
from __future__ import annotations

import inspect

import numpy as np

from ..modules.module import Module


def skip_init(module_cls, *args, **kwargs):
    """``module_cls(*args, **kwargs)`` with its parameters and buffers left uninitialised (as
    ``torch.empty``), for code that loads or sets every value itself; the class must accept a
    ``device`` argument, as PyTorch requires. tapegrad has no meta device, so the module is built
    normally (its init draws from the global generator) and its storage then emptied.

    >>> m = tapegrad.nn.utils.skip_init(tapegrad.nn.Linear, 10, 1)
    >>> m.weight.shape
    (1, 10)
    """
    if not (isinstance(module_cls, type) and issubclass(module_cls, Module)):
        raise RuntimeError(f"Expected a Module; got {module_cls}")
    if "device" not in inspect.signature(module_cls).parameters:
        raise RuntimeError("Module must support a 'device' arg to skip initialization")
    module = module_cls(*args, **kwargs)
    for m in module.modules():
        for store in (m._parameters, m._buffers):
            for t in store.values():
                if t is not None:
                    t._data = np.empty_like(t._data)
                    t._bump_version()
    return module
