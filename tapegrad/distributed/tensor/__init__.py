"""``torch.distributed.tensor``: the ``DTensor`` type and its placements, without DTensors.

tapegrad has no device mesh and no sharding propagation, so no DTensor can exist: the type is
real, so ``isinstance(x, DTensor)`` is False for every tensor, as it is in PyTorch for a plain
one, and the placements (``Shard``, ``Replicate``, ``Partial``) are PyTorch's value types, but
making a DTensor (``DTensor.from_local``, ``distribute_tensor``, ``distribute_module``, the
factories ``zeros``, ``ones``, ...) raises ``NotImplementedError`` naming what was asked.

>>> from tapegrad.distributed.tensor import DTensor, Shard
>>> isinstance(tapegrad.ones(2), DTensor), Shard(0).is_shard()
(False, True)
"""
from ...tensor import Tensor
from .._unsupported import refuse
from ..device_mesh import DeviceMesh, init_device_mesh  # noqa: F401  (PyTorch re-exports them here)
from .placement_types import Partial, Placement, Replicate, Shard

__all__ = ["DTensor", "distribute_tensor", "distribute_module", "Shard", "Replicate", "Partial", "Placement",
           "ones", "empty", "full", "rand", "randn", "zeros"]


class DTensor(Tensor):
    """PyTorch's tensor sharded or replicated over a ``DeviceMesh``. tapegrad cannot make one:
    the constructor and ``DTensor.from_local`` raise ``NotImplementedError``."""

    def __new__(cls, *args, **kwargs):
        refuse("DTensor")

    @staticmethod
    def from_local(local_tensor, device_mesh=None, placements=None, *, run_check=False, shape=None, stride=None):
        refuse("DTensor.from_local")


def distribute_tensor(tensor, device_mesh=None, placements=None, *, src_data_rank=0):
    """Raises ``NotImplementedError``: tapegrad has no DTensor."""
    refuse("distribute_tensor")


def distribute_module(module, device_mesh=None, partition_fn=None, input_fn=None, output_fn=None):
    """Raises ``NotImplementedError``: tapegrad has no DTensor."""
    refuse("distribute_module")


def _factory(name):
    def factory(*size, **kwargs):
        refuse(f"torch.distributed.tensor.{name}")
    factory.__name__ = factory.__qualname__ = name
    factory.__doc__ = f"PyTorch's DTensor factory ``{name}``; raises ``NotImplementedError`` (tapegrad has no DTensor)."
    return factory


ones, empty, full, rand, randn, zeros = (_factory(n) for n in ("ones", "empty", "full", "rand", "randn", "zeros"))
