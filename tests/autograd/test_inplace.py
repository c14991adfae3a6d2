"""In-place ops bump the version counter; the engine refuses saved tensors changed since."""
import numpy as np
import pytest

import tapegrad as tg

INPLACE = [
    ("add_", lambda t: t.add_(1.0)),
    ("sub_", lambda t: t.sub_(1.0)),
    ("mul_", lambda t: t.mul_(2.0)),
    ("div_", lambda t: t.div_(2.0)),
    ("zero_", lambda t: t.zero_()),
    ("fill_", lambda t: t.fill_(3.0)),
    ("clamp_", lambda t: t.clamp_(min=0.0)),
    ("copy_", lambda t: t.copy_(tg.ones(3))),
    ("__iadd__", lambda t: t.__iadd__(1.0)),
    ("__setitem__", lambda t: t.__setitem__(0, 5.0)),
]


@pytest.mark.parametrize("name,op", INPLACE, ids=[n for n, _ in INPLACE])
def test_inplace_bumps_version(name, op):
    t = tg.tensor([1.0, 2.0, 3.0])
    v = t._version[0]
    r = op(t)
    assert t._version[0] == v + 1
    if name not in ("__setitem__",):
        assert r is t


@pytest.mark.parametrize("name,op", INPLACE, ids=[n for n, _ in INPLACE])
def test_modified_saved_tensor_is_caught(name, op):
    x = tg.tensor([1.0, 2.0, 3.0], requires_grad=True)
    a = x * 1.0  # a non-leaf, saved by the mul below
    y = (a * a).sum()
    with tg.no_grad():
        op(a)
    with pytest.raises(RuntimeError, match=r"in-place") as e:
        y.backward()
    assert "mul" in str(e.value)


def test_modified_saved_output_is_caught():
    x = tg.tensor([1.0, 2.0], requires_grad=True)
    y = x.exp()  # exp saves its output
    z = y.sum()
    with tg.no_grad():
        y.mul_(2)
    with pytest.raises(RuntimeError, match=r"exp.*in-place"):
        z.backward()


def test_inplace_on_leaf_requiring_grad_is_refused_outside_no_grad():
    w = tg.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(RuntimeError, match="leaf"):
        w.add_(1.0)
    with pytest.raises(RuntimeError, match="leaf"):
        w[0] = 3.0
    with tg.no_grad():
        w.sub_(0.5)  # an optimizer step
    np.testing.assert_allclose(w.detach().numpy(), [0.5, 1.5])
    assert w.is_leaf and w.requires_grad


def test_inplace_on_non_leaf_is_recorded():
    x = tg.tensor([1.0, 2.0], dtype=tg.float64, requires_grad=True)
    y = x * 2
    y.mul_(3)
    y.add_(x)  # y = 6x + x
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [7.0, 7.0])


def test_setitem_records_gradient():
    x = tg.tensor([1.0, 2.0, 3.0], dtype=tg.float64, requires_grad=True)
    v = tg.tensor(10.0, dtype=tg.float64, requires_grad=True)
    y = x * 1.0
    y[1] = v * 2
    (y * tg.tensor([1.0, 2.0, 3.0], dtype=tg.float64)).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [1.0, 0.0, 3.0])
    assert v.grad.item() == 4.0


def test_unmodified_saved_tensors_pass():
    x = tg.tensor([1.0, 2.0], requires_grad=True)
    y = (x * x).sum()
    z = x * 1.0
    z.add_(1.0)  # z is not saved by anything y needs
    y.backward()
    np.testing.assert_allclose(x.grad.numpy(), [2.0, 4.0])
