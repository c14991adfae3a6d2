"""tapegrad.overrides: tapegrad has no __torch_function__ dispatch, so has_torch_function* are
False; handle_torch_function runs PyTorch's protocol when called; PyTorch's handle_torch_function
agrees where torch is installed."""
from __future__ import annotations

import numpy as np
import pytest

import tapegrad as tg
from tapegrad import overrides as O


class Seven:
    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        return ("seven", func, types, args, kwargs)


class Eight(Seven):
    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        return ("eight", func, types, args, kwargs)


class Declines:
    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        return NotImplemented


def test_has_torch_function_is_false_for_everything():
    for args in [(tg.zeros(1),), (Seven(),), (), (1.0, np.zeros(2))]:
        assert O.has_torch_function(args) is False
        assert O.has_torch_function_variadic(*args) is False
    assert O.has_torch_function_unary(Seven()) is False
    with pytest.raises(TypeError):
        O.has_torch_function(3)


def test_a_library_guard_runs_its_own_code():
    def my_op(x):
        if O.has_torch_function_unary(x):
            return O.handle_torch_function(my_op, (x,), x)
        return x + 1
    assert my_op(tg.tensor(1.0)).item() == 2.0


def test_handle_torch_function_protocol():
    s, e = Seven(), Eight()
    out = O.handle_torch_function(tg.add, (s, 1, e), s, 1, e, alpha=2)
    assert out[0] == "eight" and out[1] is tg.add and out[2] == (Eight, Seven)  # the subclass first
    assert out[3] == (s, 1, e) and out[4] == {"alpha": 2}
    assert O.handle_torch_function(tg.add, (Declines(), s), 1)[0] == "seven"
    with pytest.raises(TypeError, match="no implementation found for 'tapegrad.ops.pointwise.add' on types that "
                                        "implement __torch_function__"):
        O.handle_torch_function(tg.add, (Declines(),), 1)


def test_is_tensor_like():
    assert O.is_tensor_like(tg.zeros(1)) and O.is_tensor_like(Seven()) and not O.is_tensor_like(np.zeros(1))
    assert O.is_tensor_like is tg.autograd.is_tensor_like


def test_handle_torch_function_against_torch():
    torch = pytest.importorskip("torch")
    s, e = Seven(), Eight()
    for lib in (torch.overrides, O):
        got = lib.handle_torch_function(np.add, (s, 2, e, s), s, 2)
        assert got[0] == "eight" and got[2] == (Eight, Seven) and got[3] == (s, 2)
        with pytest.raises(TypeError, match="no implementation found"):
            lib.handle_torch_function(np.add, (Declines(),))
    assert torch.overrides.is_tensor_like(Seven()) == O.is_tensor_like(Seven())
