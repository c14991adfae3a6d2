"""``torch.distributed.tensor._utils``: the name libraries import; it needs a DeviceMesh, which
tapegrad does not have."""
from .._unsupported import refuse


def compute_local_shape_and_global_offset(global_shape, mesh, placements, skip_offset=False):
    """Raises ``NotImplementedError``: there is no DeviceMesh to compute a local shard on."""
    refuse("compute_local_shape_and_global_offset")
