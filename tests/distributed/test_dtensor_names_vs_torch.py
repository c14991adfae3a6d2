"""``torch.distributed.tensor``, ``device_mesh``, ``fsdp`` and ``_functional_collectives`` as
tapegrad has them: the placements are PyTorch's value types (checked against PyTorch's), DTensor
is a real type no tensor is an instance of, and everything that would need a device mesh or
sharding propagation raises ``NotImplementedError`` naming what was asked."""
import dataclasses
import importlib.util

import pytest

import tapegrad as tg
import tapegrad.distributed as dist
from tapegrad.distributed import _functional_collectives as funcol
from tapegrad.distributed import fsdp
from tapegrad.distributed._composable.fsdp import fully_shard
from tapegrad.distributed.device_mesh import DeviceMesh, init_device_mesh
from tapegrad.distributed.tensor import (DTensor, Partial, Placement, Replicate, Shard, distribute_module,
                                         distribute_tensor, zeros)
from tapegrad.distributed.tensor._utils import compute_local_shape_and_global_offset
from tapegrad.distributed.tensor.placement_types import _StridedShard

HAVE_TORCH = importlib.util.find_spec("torch") is not None


def _placements(M):
    from importlib import import_module
    pt = import_module(f"{M}.distributed.tensor.placement_types")
    return [pt.Shard(0), pt.Shard(1), pt.Shard(-1), pt.Replicate(), pt.Partial(), pt.Partial("avg"),
            pt.Partial("max"), pt._StridedShard(0, split_factor=2), pt._StridedShard(1, sf=3)]


def _describe(ps):
    """What a library can ask of a placement: text, the three questions, equality and hashing."""
    rows = []
    for p in ps:
        rows.append((repr(p), str(p), p.is_shard(), p.is_shard(0), p.is_shard(1), p.is_replicate(),
                     p.is_partial(), p.is_partial("sum"), p.is_partial("avg"),
                     [p == o for o in ps], len({p, *ps})))
    return rows


def test_placements_behave_as_pytorchs():
    got = _describe(_placements("tapegrad"))
    if not HAVE_TORCH:
        pytest.skip("PyTorch is not installed")
    assert got == _describe(_placements("torch"))


def test_placement_values():
    assert Shard(2).dim == 2 and Partial().reduce_op == "sum" and _StridedShard(0, sf=4).split_factor == 4
    assert all(isinstance(p, Placement) for p in (Shard(0), Replicate(), Partial(), _StridedShard(0)))
    assert not isinstance(_StridedShard(0), Shard)  # as in PyTorch 2.13
    assert {Shard(0): 1}[Shard(0)] == 1 and hash(Replicate()) == hash(Replicate())
    with pytest.raises(dataclasses.FrozenInstanceError):
        Shard(0).dim = 1
    with pytest.raises(TypeError, match="Shard: dim must be an int"):
        Shard("a")
    with pytest.raises(TypeError, match="both split_factor and sf"):
        _StridedShard(0, split_factor=2, sf=3)


@pytest.mark.parametrize("size", [0, 1, 5, 8, 10, 13])
@pytest.mark.parametrize("chunks", [1, 3, 4])
def test_local_shard_size_and_offset_is_torch_chunk(size, chunks):
    pieces = [len(c) for c in tg.arange(size).chunk(chunks)] if size else []
    pieces += [0] * (chunks - len(pieces))
    start = 0
    for rank in range(chunks):
        got = Shard.local_shard_size_and_offset(size, chunks, rank)
        assert got[0] == pieces[rank] and (got[1] == start or pieces[rank] == 0)
        start += pieces[rank]
        assert Shard(0)._local_shard_size_and_offset(size, chunks, rank) == got
    if HAVE_TORCH:
        from torch.distributed.tensor import Shard as TorchShard
        assert [Shard.local_shard_size_and_offset(size, chunks, r) for r in range(chunks)] == \
               [tuple(TorchShard.local_shard_size_and_offset(size, chunks, r)) for r in range(chunks)]


def test_no_tensor_is_a_dtensor_and_none_can_be_made():
    t = tg.ones(4)
    assert issubclass(DTensor, tg.Tensor) and not isinstance(t, DTensor) and not isinstance(tg.nn.Parameter(t), DTensor)
    for call, name in [(lambda: DTensor(t), "DTensor"), (lambda: DTensor.from_local(t), "DTensor.from_local"),
                       (lambda: distribute_tensor(t, None, [Shard(0)]), "distribute_tensor"),
                       (lambda: distribute_module(tg.nn.Linear(2, 2)), "distribute_module"),
                       (lambda: zeros(2, 2), "torch.distributed.tensor.zeros"),
                       (lambda: DeviceMesh("cpu", [0]), "DeviceMesh"), (lambda: init_device_mesh("cpu", (1,)), "init_device_mesh"),
                       (lambda: dist.init_device_mesh("cpu", (1,)), "init_device_mesh"),
                       (lambda: compute_local_shape_and_global_offset((4,), None, [Shard(0)]),
                        "compute_local_shape_and_global_offset"),
                       (lambda: fully_shard(tg.nn.Linear(2, 2)), "fully_shard"),
                       (lambda: fsdp.FullyShardedDataParallel(tg.nn.Linear(2, 2)), "FullyShardedDataParallel")]:
        with pytest.raises(NotImplementedError, match=f"^{name}.*tapegrad does not implement DeviceMesh or DTensor"):
            call()
    assert dist.DeviceMesh is DeviceMesh and not isinstance(tg.nn.Linear(2, 2), fsdp.FullyShardedDataParallel)


def test_fsdp_policies_are_pytorchs_value_types():
    got = {c.__name__: [(f.name, f.default) for f in dataclasses.fields(c)]
           for c in (fsdp.MixedPrecisionPolicy, fsdp.OffloadPolicy, fsdp.CPUOffloadPolicy)}
    assert fsdp.MixedPrecisionPolicy(param_dtype=tg.float32) == fsdp.MixedPrecisionPolicy(param_dtype=tg.float32)
    assert isinstance(fsdp.CPUOffloadPolicy(), fsdp.OffloadPolicy)
    if HAVE_TORCH:
        import torch.distributed.fsdp as tf
        assert got == {c.__name__: [(f.name, f.default) for f in dataclasses.fields(c)]
                       for c in (tf.MixedPrecisionPolicy, tf.OffloadPolicy, tf.CPUOffloadPolicy)}


def test_functional_collectives_and_all_to_all():
    t = tg.ones(3)
    assert funcol.wait_tensor(t) is t
    with pytest.raises(TypeError, match="wait_tensor: expected a Tensor"):
        funcol.wait_tensor([1.0])
    for call, name in [(lambda: dist.all_to_all_single(t, t), "all_to_all_single"),
                       (lambda: dist.all_to_all([t], [t]), "all_to_all"),
                       (lambda: funcol.all_to_all_single_autograd(t, None, None, None), "all_to_all_single_autograd")]:
        with pytest.raises(NotImplementedError, match=f"^{name}: tapegrad.distributed has no all-to-all"):
            call()
