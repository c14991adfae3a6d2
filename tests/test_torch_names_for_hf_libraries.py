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


def test_stream_and_event_as_pytorchs_cpu_ones():
    torch = pytest.importorskip("torch")
    for M in (tg, torch):
        s, e = M.Stream(), M.Event()
        assert s.query() is True and s.synchronize() is None and s.is_capturing() is False
        assert (s.device_type, s.device_index, s.stream_id) == (0, -1, 0) and str(s.device) == "cpu"
        assert s == M.Stream() and hash(s) == hash(M.Stream()) and not (s == 1)
        assert e.query() is True and e.synchronize() is None and e.wait() is None and s.wait_event(e) is None
        assert e.event_id == 0 and str(e.device) == "cpu"
        with s as inside:
            assert inside is s
        for call in (s.record_event, e.record, lambda: s.wait_stream(M.Stream())):
            with pytest.raises(RuntimeError, match="cpu backend doesn't support events"):
                call()
        with pytest.raises(ValueError, match="enable_timing=True"):
            e.elapsed_time(M.Event())
        with pytest.raises(RuntimeError, match="not linked with support for cuda"):
            M.Stream(device="cuda")
        assert repr(s).split(".", 1)[1] == "Stream device_type=cpu, device_index=-1, stream_id=0"
        assert repr(M.Event(enable_timing=True)).endswith("event_flag=1, event_id=0")
    assert (tg.cuda.Stream | tg.Stream | None) is not None  # diffusers' annotation


def test_torch_function_mode_subclasses_but_refuses_to_enter():
    class SkipMode(tg.overrides.TorchFunctionMode):  # diffusers' AttentionScoreSkipFunctionMode
        def __torch_function__(self, func, types, args=(), kwargs=None):
            return func(*args, **(kwargs or {}))

    with pytest.raises(RuntimeError, match="SkipMode: tapegrad has no __torch_function__ dispatch"):
        with SkipMode():
            pass
    torch = pytest.importorskip("torch")
    assert isinstance(torch.overrides.TorchFunctionMode, type)


def test_disable_torch_function_contexts_and_private_type_aliases():
    torch = pytest.importorskip("torch")
    for M in (tg, torch):
        with M._C.DisableTorchFunctionSubclass():
            assert (M.ones(2) + 1).tolist() == [2.0, 2.0]
        with M._C.DisableTorchFunction():
            pass
    import tapegrad.types as ours
    import torch.types as theirs
    for name in ("_int", "_float", "_bool", "_complex", "_str", "_bytes"):
        assert getattr(ours, name) is getattr(theirs, name)
    assert ours._dtype is tg.dtype and ours._device is tg.device and ours._layout is tg.layout
    assert ours.py_sym_types == (tg.SymInt, tg.SymFloat, tg.SymBool)
    assert tg.jit._script_if_tracing is tg.jit.script_if_tracing and torch.jit._script_if_tracing
