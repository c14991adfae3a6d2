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
    v = t._version
    r = op(t)
    assert t._version == v + 1
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


# In-place writes through a view of a non-leaf reach its base, as PyTorch's CopySlices: makemore's
# ``dC[ix] += demb[k, j]`` and any ``x[i] += y`` on a tensor in the graph.
VIEW_WRITES = {
    "int_index_iadd": lambda x, w, u: x.__setitem__(0, x[0].__iadd__(u)),
    "int_index_add_": lambda x, w, u: x[0].add_(u),
    "strided_mul_": lambda x, w, u: x[1:, ::2].mul_(w[1:, 1::2]),
    "transposed_row": lambda x, w, u: x.t()[2].mul_(3),
    "view_of_view_setitem": lambda x, w, u: x[2].__setitem__(slice(1, 3), u[:2] ** 2),
    "column_neg_": lambda x, w, u: x[:, -1].neg_(),
    "flat_view": lambda x, w, u: x.view(-1)[5:7].add_(u[1:3] * u[0]),
    "unsqueezed_transposed": lambda x, w, u: x.unsqueeze(0).transpose(1, 2)[0, 1].sub_(1),
    "diagonal": lambda x, w, u: x.diagonal().mul_(u[:3]),
    "diagonal_offset": lambda x, w, u: x.diagonal(1).copy_(u[1:] * w[0, :3]),
}


def _view_write(M, name):
    w = M.tensor(np.arange(1.0, 13.0).reshape(3, 4), requires_grad=True)
    u = M.tensor(np.arange(1.0, 5.0), requires_grad=True)
    x = w * 2
    VIEW_WRITES[name](x, w, u)
    (x * M.tensor(np.arange(12.0).reshape(3, 4))).sum().backward()
    return [x.detach().numpy(), w.grad.numpy(), np.zeros(4) if u.grad is None else u.grad.numpy()]


@pytest.mark.parametrize("name", sorted(VIEW_WRITES))
def test_inplace_through_a_view_reaches_the_base_as_in_torch(name):
    torch = pytest.importorskip("torch")
    for got, want in zip(_view_write(tg, name), _view_write(torch, name)):
        np.testing.assert_array_equal(got, want)


def test_inplace_through_a_view_records_on_the_base():
    w = tg.tensor([1.0, 2.0, 3.0], dtype=tg.float64, requires_grad=True)
    u = tg.tensor(5.0, dtype=tg.float64, requires_grad=True)
    x = w * 2
    x[1] += u * u  # x = [2w0, 2w1 + u^2, 2w2]
    x[1:].mul_(w[:2])  # x = [2w0, (2w1 + u^2) w0, 2w2 w1]
    (x * tg.tensor([1.0, 10.0, 100.0], dtype=tg.float64)).sum().backward()
    assert x.tolist() == [2.0, 29.0, 12.0]
    np.testing.assert_allclose(w.grad.numpy(), [2 + 10 * 29, 10 * 1 * 2 + 100 * 6, 100 * 2 * 2])
    assert u.grad.item() == 10 * 2 * 5 * 1


def test_inplace_through_a_view_of_a_leaf_is_refused():
    w = tg.ones(3, 3, requires_grad=True)
    for write in (lambda: w[0].add_(1), lambda: w.diagonal().zero_(), lambda: w.t()[1].mul_(2)):
        with pytest.raises(RuntimeError, match="view of a leaf"):
            write()
    with tg.no_grad():
        w.diagonal().zero_()  # an optimizer-style update
    assert w.detach().numpy().trace() == 0 and w.is_leaf


def test_diagonal_is_a_view():
    a = tg.ones(3, 4)
    a.diagonal().add_(1)  # ``K.diagonal().add_(jitter)``
    a.diagonal(offset=1).mul_(3)
    assert a.tolist() == [[2, 3, 1, 1], [1, 2, 3, 1], [1, 1, 2, 3]]
    d = a.diagonal()
    a.zero_()
    assert d.tolist() == [0, 0, 0] and d._version_box is a._version_box
    with pytest.raises(RuntimeError, match="read-only"):  # the diagonal of an expanded tensor stays read-only
        tg.ones(3).expand(3, 3).diagonal().add_(1)


def test_an_all_int_index_is_a_zero_dim_view():
    # numpy gives a scalar copy for x[i] of a vector; PyTorch a 0-d view that writes through
    x = tg.zeros(3)
    v = x[1]
    v += 1
    x[2].fill_(5)
    m = tg.zeros(2, 2)
    m[1][0].add_(3)
    m[0, 1].copy_(tg.tensor(2.0))
    assert x.tolist() == [0, 1, 5] and m.tolist() == [[0, 2], [3, 0]] and v.shape == ()
