"""Views and in-place writes through their base: the gradient follows the values.

A view shares its base's memory, so a write through the base (or through another view of it)
changes the view's values; PyTorch regenerates such a view's ``grad_fn`` from the base's new
graph, and makes a base that did not require grad require it once a value that does is written
into one of its views (``buf[:2].copy_(w * 3)``). Each case below is checked against central
finite differences of its own forward values (float64), and against PyTorch when installed.
"""
import numpy as np
import pytest

import tapegrad as tg


def c_view_then_base_written(lib, a, w):
    x = a * 1
    v = x[:2]
    x.mul_(2)
    return (v * v).sum()


def c_copy_into_view_of_plain_buffer(lib, a, w):
    buf = lib.zeros(4, dtype=lib.float64)
    buf[:2].copy_(w * 3)
    return (buf * buf).sum() + a.sum()


def c_view_of_plain_buffer_taken_before_setitem(lib, a, w):
    buf = lib.zeros(4, dtype=lib.float64)
    v = buf[1:3]
    buf[:2] = w * 3
    return (v * v).sum() + a.sum()


def c_sibling_views(lib, a, w):
    x = a * 1
    v1 = x[:3]
    v2 = x[2:]
    v1.mul_(w[0] + 1)
    return (v2 ** 2).sum()


def c_view_of_view_base_written(lib, a, w):
    x = a * 1
    v = x[1:][::2]
    x.add_(a)
    return (v * v * w[1]).sum()


def c_row_copy_into_2d_buffer(lib, a, w):
    buf = lib.zeros(2, 3, dtype=lib.float64)
    row = buf[1]
    row.copy_(a[:3] * w[1])
    return (buf ** 2).sum()


def c_view_written_base_read(lib, a, w):
    x = a * 1
    v = x.view(2, 3)[0]
    v.mul_(w[1])
    return (x ** 2).sum()


def c_transposed_view_base_setitem(lib, a, w):
    x = a.clone()
    t = x.view(3, 2).t()
    x[0] = w[0] * 5
    return (t ** 3).sum()


def c_rows_filled_in_a_loop(lib, a, w):
    out = lib.empty(3, 2, dtype=lib.float64)
    rows = [out[i] for i in range(3)]  # taken before any write
    for i in range(3):
        out[i].copy_(a[2 * i:2 * i + 2] * w)
    return sum((r * (k + 1)).sum() for k, r in enumerate(rows)) + (out ** 2).sum()


def c_stale_view_written_in_place(lib, a, w):
    x = a * 1
    v = x[2:5]
    x[3] = w[0] * w[1]
    v.mul_(w[0])  # v's own graph is brought up to date before it is written
    return (x * lib.arange(6, dtype=lib.float64)).sum()


def c_base_written_under_no_grad(lib, a, w):
    x = a * w[0]
    v = x[1:4]
    with lib.no_grad():
        x.add_(1)  # the values change, the graph of x does not: v's gradient is x's
    return (v * w[1]).sum()


CASES = [c_view_then_base_written, c_copy_into_view_of_plain_buffer, c_view_of_plain_buffer_taken_before_setitem,
         c_sibling_views, c_view_of_view_base_written, c_row_copy_into_2d_buffer, c_view_written_base_read,
         c_transposed_view_base_setitem, c_rows_filled_in_a_loop, c_stale_view_written_in_place,
         c_base_written_under_no_grad]
A0 = np.array([0.5, -1.25, 2.0, 0.75, -0.4, 1.5])
W0 = np.array([1.3, -0.7])


def grads(lib, case, a0=A0, w0=W0):
    a = lib.tensor(a0, requires_grad=True)
    w = lib.tensor(w0, requires_grad=True)
    case(lib, a, w).backward()
    return [np.zeros_like(x0) if t.grad is None else t.grad.numpy() for t, x0 in ((a, a0), (w, w0))]


def finite_differences(case, eps=1e-6):
    def f(a0, w0):
        with tg.no_grad():
            return case(tg, tg.tensor(a0), tg.tensor(w0)).item()
    out = []
    for which, x0 in enumerate((A0, W0)):
        g = np.zeros_like(x0)
        for i in range(x0.size):
            hi, lo = x0.copy(), x0.copy()
            hi[i] += eps
            lo[i] -= eps
            args_hi = (hi, W0) if which == 0 else (A0, hi)
            args_lo = (lo, W0) if which == 0 else (A0, lo)
            g[i] = (f(*args_hi) - f(*args_lo)) / (2 * eps)
        out.append(g)
    return out


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.__name__)
def test_gradient_matches_finite_differences(case):
    for got, want in zip(grads(tg, case), finite_differences(case)):
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.__name__)
def test_gradient_matches_pytorch(case):
    torch = pytest.importorskip("torch")
    torch.set_default_dtype(torch.float64)
    try:
        for got, want in zip(grads(tg, case), grads(torch, case)):
            np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    finally:
        torch.set_default_dtype(torch.float32)


def test_a_buffer_written_with_a_value_that_requires_grad_requires_grad():
    buf = tg.zeros(4)
    v = buf[:2]
    assert v._base is buf and not buf.requires_grad  # every view knows its base, as in PyTorch
    w = tg.tensor([1.0, 2.0], requires_grad=True)
    v.copy_(w)
    assert buf.requires_grad and not buf.is_leaf and v.requires_grad
    late = buf[2:]  # a view of the buffer, taken before or after, is in the graph now
    assert late.requires_grad


def test_a_view_taken_before_the_write_joins_the_graph():
    buf = tg.zeros(4)
    early = buf[1:3]
    assert not early.requires_grad
    w = tg.tensor([1.0, 2.0], requires_grad=True)
    buf[:2] = w
    assert early.requires_grad and early.grad_fn is not None
    early.sum().backward()
    np.testing.assert_array_equal(w.grad.numpy(), [0.0, 1.0])


def test_writes_without_grad_leave_plain_views_alone():
    buf = tg.zeros(3)
    v = buf[1:]
    buf.add_(1)
    assert not v.requires_grad and v.grad_fn is None
    np.testing.assert_array_equal(v.numpy(), [1.0, 1.0])


def test_a_write_that_cannot_be_placed_in_the_base_is_refused():
    buf = tg.zeros(4, dtype=tg.float64)
    halves = buf.view(tg.float32)  # a dtype view: its elements are not the base's
    w = tg.ones(8, dtype=tg.float32, requires_grad=True)
    with pytest.raises(RuntimeError, match=r"copy_.*view \(of shape \(8,\), base of shape \(4,\)\)"):
        halves.copy_(w)


def test_many_rows_written_into_a_large_buffer_stay_cheap_and_right():
    rows, width = 200, 500
    out = tg.zeros(rows, width, dtype=tg.float64)
    w = tg.tensor(np.linspace(-1, 1, width), requires_grad=True)
    for i in range(rows):
        out[i].copy_(w * (i + 1))
    out.sum().backward()
    np.testing.assert_allclose(w.grad.numpy(), np.full(width, rows * (rows + 1) / 2))


def test_a_view_of_a_buffer_written_before_the_buffer_requires_grad():
    buf = tg.zeros(3, dtype=tg.float64)
    v = buf[1:]
    buf[0] = 1.0  # written after the view was taken: v takes its graph from buf once buf requires grad
    buf.requires_grad_()
    ((v * 2).sum() + buf.sum()).backward()
    np.testing.assert_allclose(buf.grad.numpy(), [1.0, 3.0, 3.0])  # PyTorch's too


def test_views_of_a_leaf_written_under_no_grad_take_their_graph_from_the_leaf():
    a = tg.tensor([0.5, -1.0, 2.0, 1.5], dtype=tg.float64, requires_grad=True)
    first = a[:1]
    scalar = first.squeeze(0)
    with tg.no_grad():
        a[0] = 0.64  # through the leaf: both views now come from a itself
    loss = (first * 3.0).sum() + scalar * 5.0
    g_first, g_scalar = tg.autograd.grad(loss, [first, scalar])
    np.testing.assert_allclose(g_first.numpy(), [3.0])  # scalar no longer flows through first (PyTorch: the same)
    np.testing.assert_allclose(g_scalar.numpy(), 5.0)
