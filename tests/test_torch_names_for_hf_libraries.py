"""Names that accelerate 1.16 and peft 0.22 touch (found running them with torch aliased to
tapegrad): each as PyTorch has it, checked against PyTorch where it is importable."""
import collections
import io

import pytest

import tapegrad as tg
import tapegrad.serialization as ser


def test_optimized_module_lives_in_eval_frame():
    torch = pytest.importorskip("torch")
    assert tg._dynamo.eval_frame.OptimizedModule is tg._dynamo.OptimizedModule
    assert torch._dynamo.eval_frame.OptimizedModule is torch._dynamo.OptimizedModule

    def is_compiled_module(module):  # accelerate.utils.other.is_compiled_module, with torch -> tapegrad
        return isinstance(module, tg._dynamo.eval_frame.OptimizedModule)
    m = tg.nn.Linear(2, 2)
    assert not is_compiled_module(tg.compile(m)) and not is_compiled_module(m)
    wrapped = tg._dynamo.eval_frame.OptimizedModule(m)
    assert is_compiled_module(wrapped) and wrapped.weight is m.weight


def test_fsdp_module_path_and_state_dict_type():
    torch = pytest.importorskip("torch")
    from torch.distributed.fsdp import fully_sharded_data_parallel as theirs

    from tapegrad.distributed.fsdp import FullyShardedDataParallel
    from tapegrad.distributed.fsdp import fully_sharded_data_parallel as ours
    assert ours.FullyShardedDataParallel is FullyShardedDataParallel
    assert [(m.name, m.value) for m in ours.StateDictType] == [(m.name, m.value) for m in theirs.StateDictType]
    assert not isinstance(tg.nn.Linear(2, 2), ours.FullyShardedDataParallel)  # accelerate's unwrap_model test


def test_safe_globals_are_kept_as_pytorch_keeps_them():
    torch = pytest.importorskip("torch")
    import numpy as np
    for M in (ser, torch.serialization):
        before = M.get_safe_globals()
        try:
            M.clear_safe_globals()
            M.add_safe_globals([np.ndarray, np.dtype])
            assert set(M.get_safe_globals()) == {np.ndarray, np.dtype}  # PyTorch's is a set: no order
            with M.safe_globals([collections.OrderedDict]):
                assert set(M.get_safe_globals()) == {np.ndarray, np.dtype, collections.OrderedDict}
            assert set(M.get_safe_globals()) == {np.ndarray, np.dtype}
            got = M.get_safe_globals()
            got.append(int)
            assert set(M.get_safe_globals()) == {np.ndarray, np.dtype}  # a copy
        finally:
            M.clear_safe_globals()
            M.add_safe_globals(before)


def test_an_allowed_global_is_still_never_constructed():
    torch = pytest.importorskip("torch")
    import numpy as np
    buf = io.BytesIO()
    torch.save({"w": torch.ones(2), "state": np.arange(3)}, buf)  # an RNG-state-like numpy array
    buf.seek(0)
    with pytest.raises(Exception, match="GLOBAL numpy.*refused"):
        tg.load(io.BytesIO(buf.getvalue()))
    with ser.safe_globals([np.ndarray, np.dtype, np._core.multiarray._reconstruct]):
        with pytest.raises(Exception, match="refused: it was allowed with tapegrad.serialization.add_safe_globals"):
            tg.load(io.BytesIO(buf.getvalue()))
    assert ser.get_safe_globals() == []
