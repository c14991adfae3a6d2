"""What tapegrad's distributed package does not have, said once: the refusal every DTensor and
DeviceMesh entry point raises."""


def refuse(feature: str):
    """Raise ``NotImplementedError`` naming ``feature``, for the mesh and DTensor entry points."""
    raise NotImplementedError(
        f"{feature}: tapegrad does not implement DeviceMesh or DTensor. tapegrad.distributed has the "
        f"process-group collectives over MPI (data-parallel training), but no device meshes and no "
        f"sharding propagation for ops on sharded tensors, so tensor parallelism, FSDP2 and "
        f"distributed checkpoints are not available")
