"""gradcheck itself: it passes right VJPs and catches a wrong one, naming input, element, values."""
import numpy as np
import pytest
from hypothesis import given, settings

import tapegrad as tg
from tapegrad._tape.registry import apply, Op
from tapegrad.testing import GradcheckError, gradcheck, gradgradcheck
from tapegrad.testing import strategies as tst


def f64(*shape):
    return tg.randn(*shape, dtype=tg.float64, requires_grad=True)


# A deliberately wrong op, built outside the op table: d(x*y)/dy claimed to be 2x instead of x.
_bad_mul = Op("bad_mul", np.multiply, [lambda g, out, x, y: g * y, lambda g, out, x, y: g * x * 2],
              saves=None, saves_output=False, view=False, aux=False)


def test_passes_correct_gradients():
    assert gradcheck(lambda a, b: (a * b.exp()).sum(), (f64(3), f64(3)))
    assert gradgradcheck(lambda a: (a * a * a).sum(), (f64(2, 2),))


def test_catches_wrong_vjp_and_names_input_element_values():
    x, y = f64(2, 3), f64(2, 3)
    with pytest.raises(GradcheckError) as e:
        gradcheck(lambda a, b: apply(_bad_mul, a, b), (x, y))
    msg = str(e.value)
    assert "input 1" in msg and "element (" in msg and "analytical" in msg and "numerical" in msg
    assert gradcheck(lambda a, b: apply(_bad_mul, a, b), (x, y), raise_exception=False) is False
    # input 0's VJP is right: only the second input is blamed
    assert gradcheck(lambda a: apply(_bad_mul, a, y.detach()), (x,))


# sin whose VJP is right but computed off the tape: its second derivative is silently 0
_opaque_sin = Op("opaque_sin", np.sin, [lambda g, out, x: g * tg.Tensor._wrap(np.cos(x._data))],
                 saves=None, saves_output=False, view=False, aux=False)


def test_catches_wrong_second_derivative():
    assert gradcheck(lambda a: apply(_opaque_sin, a), (f64(3),))
    with pytest.raises(GradcheckError, match="input 0"):
        gradgradcheck(lambda a: apply(_opaque_sin, a), (f64(3),))


def test_refuses_float32_inputs():
    with pytest.raises(GradcheckError, match="float64"):
        gradcheck(lambda a: a.sum(), (tg.randn(3, requires_grad=True),))


def test_unused_input_gets_zero_gradient():
    assert gradcheck(lambda a, b: (a * 2).sum(), (f64(2), f64(2)))


@settings(max_examples=15, deadline=None)
@given(tst.mutually_broadcastable_shapes(max_dims=3, max_side=3))
def test_broadcasting_binary_ops(shapes):
    a, b = (tg.randn(*s, dtype=tg.float64, requires_grad=True) for s in shapes)
    assert gradcheck(lambda x, y: x * y + x - y, (a, b))


@settings(max_examples=15, deadline=None)
@given(tst.tensors(shape=tst.shapes(max_dims=3, max_side=3), elements=tst.elements(avoid=(0.0,), margin=0.05),
                   requires_grad=True))
def test_abs_away_from_its_kink(x):
    assert gradcheck(tg.abs, (x,))
