"""``torch.xpu`` (Intel GPUs) on a machine without one, as CPU PyTorch answers: nothing is
available, the seeding calls scripts make unconditionally do nothing, and asking for a device
raises."""
from __future__ import annotations

from .cuda import (_no_gpu, device_count, empty_cache, is_available, is_bf16_supported,  # noqa: F401
                   is_initialized, manual_seed, manual_seed_all, memory_allocated, seed, seed_all, synchronize)

current_device = get_device_name = get_device_properties = set_device = _no_gpu
