"""Data-parallel training over MPI with ``torch.distributed``'s names (``backend="mpi"``).

    mpiexec -n 2 python train.py

>>> import tapegrad.distributed as dist
>>> dist.init_process_group("mpi")              # rank and world size come from mpiexec
>>> t = tapegrad.ones(3) * dist.get_rank()
>>> dist.all_reduce(t)                          # in place, on every rank

Importing this module needs no MPI; ``init_process_group`` loads ``mpi4py`` (the
``tapegrad[distributed]`` extra installs it with the MPICH wheel). See docs/distributed.md.
"""
from ._group import (GroupMember, ProcessGroup, destroy_process_group, get_backend, get_process_group_ranks,
                     get_rank, get_world_size, init_process_group, is_available, is_gloo_available,
                     is_initialized, is_mpi_available, is_nccl_available)
from ._collectives import (new_group, ReduceOp, Work, all_gather, all_gather_into_tensor, all_gather_object, all_reduce,
                           all_to_all, all_to_all_single,
                           barrier, broadcast, broadcast_object_list, gather, irecv, isend, recv, reduce,
                           reduce_scatter, reduce_scatter_tensor, scatter, send)
from .device_mesh import DeviceMesh, init_device_mesh

__all__ = ["DeviceMesh", "GroupMember", "ProcessGroup", "ReduceOp", "Work", "all_gather", "all_gather_into_tensor",
           "all_gather_object", "all_reduce", "all_to_all", "all_to_all_single", "barrier", "broadcast", "broadcast_object_list",
           "destroy_process_group", "gather", "get_backend", "get_process_group_ranks", "get_rank",
           "get_world_size", "init_device_mesh", "init_process_group", "irecv", "is_available", "is_gloo_available", "is_initialized",
           "is_mpi_available", "is_nccl_available", "isend", "new_group", "recv", "reduce", "reduce_scatter", "reduce_scatter_tensor",
           "scatter", "send"]
