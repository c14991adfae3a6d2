"""Mixed precision under PyTorch's names: ``autocast`` and ``GradScaler``.

``autocast("cpu")`` casts as PyTorch's CPU autocast does, to ``tapegrad.bfloat16`` by default
(float16 on request): linear, matmul, conv, bmm, ... run in the 16-bit dtype, accumulating in
float32; the losses and linear algebra run in float32; other ops in their inputs' dtype. The
state is per thread. ``autocast("cuda")`` warns and disables itself as CPU PyTorch does.
``GradScaler("cpu")`` is PyTorch's full loss scaler (skipped steps on inf/NaN gradients, backoff
and growth); ``GradScaler("cuda")`` (the default device) disables itself.

>>> scaler = tapegrad.amp.GradScaler("cpu")
>>> with tapegrad.autocast("cpu"):
...     loss = model(x).square().mean()
>>> scaler.scale(loss).backward()
>>> scaler.step(opt)
>>> scaler.update()
"""
from .autocast_mode import (autocast, custom_bwd, custom_fwd, get_autocast_dtype, is_autocast_available,  # noqa: F401
                            is_autocast_enabled, set_autocast_dtype, set_autocast_enabled)
from .grad_scaler import GradScaler, OptState  # noqa: F401

__all__ = ["autocast", "GradScaler", "custom_fwd", "custom_bwd", "is_autocast_available", "is_autocast_enabled",
           "get_autocast_dtype", "set_autocast_enabled", "set_autocast_dtype"]
