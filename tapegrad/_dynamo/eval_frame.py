"""``torch._dynamo.eval_frame``: where PyTorch defines ``OptimizedModule``, the wrapper
``torch.compile(model)`` returns (accelerate's ``is_compiled_module`` tests
``isinstance(m, torch._dynamo.eval_frame.OptimizedModule)``)."""
from __future__ import annotations

from ..nn import Module

__all__ = ["OptimizedModule"]


class OptimizedModule(Module):
    """``torch._dynamo.OptimizedModule(mod, dynamo_ctx)``: a module that runs ``mod`` (``_orig_mod``)
    and reads its attributes through. PyTorch's ``torch.compile(model)`` returns one; tapegrad's
    ``compile`` returns the model itself, so libraries that test ``isinstance(m, OptimizedModule)``
    (e3nn's pickling) take their other branch, as for an uncompiled PyTorch model.

    >>> m = OptimizedModule(tapegrad.nn.Linear(2, 2))
    >>> m.weight is m._orig_mod.weight
    True
    """

    def __init__(self, mod: Module, dynamo_ctx=None):
        super().__init__()
        self._orig_mod = mod
        self.dynamo_ctx = dynamo_ctx

    def forward(self, *args, **kwargs):
        return self._orig_mod(*args, **kwargs)

    def __getattr__(self, name: str):
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self.__dict__["_modules"]["_orig_mod"], name)
