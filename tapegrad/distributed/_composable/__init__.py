"""``torch.distributed._composable``: where PyTorch first put ``fully_shard`` (``_composable.fsdp``)."""
