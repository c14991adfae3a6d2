"""Mixed precision under PyTorch's names: ``autocast`` and ``GradScaler``.

tapegrad has no bfloat16 (numpy has none) and no float16 kernels, so ``autocast("cpu")`` keeps
each op in its own dtype (float32 stays float32) and says so once with a warning; the autocast
state (``is_autocast_enabled``) is still set, so code that asks sees PyTorch's answer.
``autocast("cuda")`` warns and disables itself as CPU PyTorch does. ``GradScaler("cpu")`` is
PyTorch's full loss scaler (skipped steps on inf/NaN gradients, backoff and growth), which works
the same on float32 gradients; ``GradScaler("cuda")`` (the default device) disables itself.

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
