"""``torch.distributed.device_mesh``: the names, so that code which imports them (for type hints,
for ``isinstance``) loads; tapegrad has no device meshes, and making one raises."""
from ._unsupported import refuse

__all__ = ["DeviceMesh", "init_device_mesh"]


class DeviceMesh:
    """PyTorch's n-dimensional arrangement of ranks for tensor and pipeline parallelism. tapegrad
    has none: constructing one raises ``NotImplementedError``."""

    def __init__(self, *args, **kwargs):
        refuse("DeviceMesh")


def init_device_mesh(device_type, mesh_shape, *, mesh_dim_names=None, backend_override=None):
    """PyTorch's way to make a ``DeviceMesh``; raises ``NotImplementedError`` (tapegrad has no meshes)."""
    refuse("init_device_mesh")
