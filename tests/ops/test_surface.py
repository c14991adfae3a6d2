"""The surface each op declares (``tapegrad/ops/surface.py``): what ``public(...)`` generates."""
import inspect

import pytest

import tapegrad as tg
from tapegrad.ops import surface


def test_every_public_function_is_the_top_level_name():
    for name, fn in surface.FUNCTIONS.items():
        assert getattr(tg.ops, name) is fn, name
        assert getattr(tg, name, None) is fn, name


def test_declared_methods_are_the_ops_themselves():
    for name, fn in surface.METHODS.items():
        assert getattr(tg.Tensor, name) is fn, name
        assert surface.PLAIN[name] is fn, name  # the method skips the out= wrapper


def test_every_public_function_and_method_says_what_it_does():
    undocumented = [n for n, f in surface.FUNCTIONS.items() if not (f.__doc__ or "").strip()]
    undocumented += [n for n, f in surface.METHODS.items() if not (f.__doc__ or "").strip()]
    assert sorted(set(undocumented)) == []


def test_out_is_keyword_only_and_everything_else_is_the_ops_signature():
    for name, fn in surface.FUNCTIONS.items():
        plain = surface.PLAIN[name]
        if fn is plain:
            continue
        params = list(inspect.signature(fn).parameters.values())
        assert params[-1].name == "out" and params[-1].kind is inspect.Parameter.KEYWORD_ONLY, name
        assert params[:-1] == list(inspect.signature(plain).parameters.values()), name


def test_in_place_forms_take_the_ops_arguments_and_return_self():
    x = tg.tensor([0.5, 1.5])
    y = tg.tensor([2.0, 3.0])
    assert inspect.signature(tg.Tensor.add_).parameters.keys() == inspect.signature(tg.ops.pointwise.add).parameters.keys()
    assert x.add_(y, alpha=2) is x and x.tolist() == [4.5, 7.5]
    assert x.clamp_(max=5.0) is x and x.tolist() == [4.5, 5.0]


def test_in_place_form_records_the_op_on_a_non_leaf():
    w = tg.tensor([1.0, 2.0], requires_grad=True)
    h = w * 1.0
    h.exp_()
    h.sum().backward()
    assert w.grad.tolist() == pytest.approx([2.718281828, 7.389056099])


def test_out_refuses_autograd_and_resizes():
    w = tg.tensor([1.0], requires_grad=True)
    with pytest.raises(RuntimeError, match="out=... arguments don't support automatic differentiation"):
        tg.exp(w, out=tg.zeros(1))
    out = tg.zeros(5)
    assert tg.exp(tg.zeros(2), out=out) is out and out.shape == (2,)


def test_a_method_declared_twice_is_refused():
    class T:
        def exp(self):
            return None
    with pytest.raises(TypeError, match="Tensor.exp is written out in tensor.py"):
        surface.install_methods(T)


def test_a_name_declared_twice_is_refused():
    with pytest.raises(ValueError, match="declared twice"):
        surface.public(tg.ops.pointwise.exp)
