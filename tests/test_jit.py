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
