"""``torch.distributed.rpc``: tapegrad has no RPC framework (its distributed training is MPI
collectives), so ``is_available()`` is False and each entry point raises saying so, as a
PyTorch built without RPC does. Libraries that import it unconditionally (torch_geometric's
distributed sampling) import; only calling it fails.

>>> tapegrad.distributed.rpc.is_available()
False
"""
from __future__ import annotations

__all__ = ["is_available", "init_rpc", "shutdown", "rpc_sync", "rpc_async", "remote", "get_worker_info",
           "TensorPipeRpcBackendOptions"]


def is_available() -> bool:
    """False: tapegrad has no RPC framework."""
    return False


def _no_rpc(name):
    def entry(*args, **kwargs):
        raise RuntimeError(f"torch.distributed.rpc.{name}: tapegrad has no RPC framework (its distributed "
                           "training is MPI collectives: tapegrad.distributed)")
    entry.__name__ = entry.__qualname__ = name
    entry.__doc__ = f"``rpc.{name}``: raises, tapegrad has no RPC framework."
    return entry


init_rpc, shutdown, rpc_sync, rpc_async, remote, get_worker_info = (
    _no_rpc(n) for n in ("init_rpc", "shutdown", "rpc_sync", "rpc_async", "remote", "get_worker_info"))


class TensorPipeRpcBackendOptions:
    """``rpc.TensorPipeRpcBackendOptions``: raises, tapegrad has no RPC framework."""

    def __init__(self, *args, **kwargs):
        _no_rpc("TensorPipeRpcBackendOptions")()
