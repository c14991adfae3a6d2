import pytest

import tapegrad as tg


def test_jit_returns_the_model_and_function():
    m = tg.nn.Linear(2, 3)
    assert tg.jit.script(m) is m and tg.jit.trace(m, tg.ones(1, 2)) is m

    @tg.jit.script
    def f(x):
        return x * 2 if x.sum() > 0 else x

    @tg.jit.ignore
    def g(x):
        return x

    @tg.jit.ignore(drop=True)
    def h(x):
        return x

    assert f(tg.ones(1)).item() == 2.0 and g(1) == 1 and h(2) == 2
    assert tg.jit.export(f) is f and tg.jit.unused(f) is f and not tg.jit.is_scripting()
    assert tg.jit.annotate(list, [1]) == [1]


def test_jit_save_load_point_at_tapegrad_save(tmp_path):
    for call in (lambda: tg.jit.save(tg.nn.Linear(1, 1), str(tmp_path / "m.pt")), lambda: tg.jit.load("m.pt")):
        with pytest.raises(NotImplementedError, match="tapegrad.save"):
            call()


def test_compile_returns_the_model_with_orig_mod_and_no_state_dict_prefix():
    m = tg.nn.Sequential(tg.nn.Linear(2, 3))
    c = tg.compile(m, mode="max-autotune")
    assert c is m and c._orig_mod is m
    assert list(c._orig_mod.state_dict()) == list(m.state_dict()) == ["0.weight", "0.bias"]
    fresh = tg.nn.Sequential(tg.nn.Linear(2, 3))
    fresh.load_state_dict(c.state_dict())  # a checkpoint of a "compiled" model loads into a plain one
    assert "_orig_mod" not in dict(m.named_modules(remove_duplicate=False))

    @tg.compile(dynamic=True)
    def twice(x):
        return x * 2
    assert twice(3) == 6 and tg.compile(twice) is twice


def test_fork_wait_isinstance_and_the_other_names():
    from typing import Dict, List, Optional, Tuple, Union
    fut = tg.jit.fork(lambda a, b: a + b, tg.ones(2), 1)
    assert tg.jit.wait(fut).tolist() == [2.0, 2.0]
    fut = tg.jit.fork(lambda: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        tg.jit.wait(fut)  # a forked task's error comes out of wait, as PyTorch's
    assert tg.jit.isinstance([1, 2], List[int]) and not tg.jit.isinstance([1, "a"], List[int])
    assert tg.jit.isinstance({"a": tg.ones(1)}, Dict[str, tg.Tensor]) and tg.jit.isinstance(None, Optional[int])
    assert tg.jit.isinstance((1, "x"), Tuple[int, str]) and not tg.jit.isinstance((1, 2, 3), Tuple[int, int])
    assert tg.jit.isinstance(3.0, Union[int, float]) and tg.jit.isinstance(tg.ones(1), tg.Tensor)
    assert tg.jit.Attribute(3, int) == 3 and tg.jit.script_if_tracing(len) is len
    assert issubclass(tg.jit.Error, RuntimeError) and tg.jit.export_opnames(tg.nn.Linear(1, 1)) == []
    before = tg.jit.onednn_fusion_enabled()
    tg.jit.enable_onednn_fusion(True)
    assert tg.jit.onednn_fusion_enabled()
    tg.jit.enable_onednn_fusion(before)
    old = tg.jit.set_fusion_strategy([("DYNAMIC", 3)])
    assert tg.jit.set_fusion_strategy(old) == [("DYNAMIC", 3)]
    with tg.jit.strict_fusion():
        pass
    torch = pytest.importorskip("torch")
    for tp, v in ((List[int], [1, 2]), (Dict[str, int], {"a": "b"}), (Optional[str], None)):
        assert tg.jit.isinstance(v, tp) == torch.jit.isinstance(v, tp)
