"""Recorded writes into a buffer (``out[t] = h``): right gradients, at the cost of the rows.

The forward writes into the buffer's memory (its VJPs read neither the buffer nor the result),
and backward zeroes the upstream gradient in place where the engine owns it (ZeroedGrad) instead
of copying the buffer's gradient once per write. Whoever else holds that gradient (a retained
.grad, a hook, the caller's ``gradient=``) must still see it unchanged.
"""
import numpy as np
import pytest

import tapegrad as tg
from tapegrad._tape.registry import ZeroedGrad


def rnn_into_buffer(lib, w0, x0, steps=5):
    w = lib.tensor(w0, requires_grad=True)
    x = lib.tensor(x0)
    h = lib.zeros(x0.shape, dtype=lib.float64)
    out = lib.zeros((steps,) + x0.shape, dtype=lib.float64)
    for t in range(steps):
        h = lib.tanh(x + h @ w)
        out[t] = h
    return w, out


def data(seed=0, n=4, b=3):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, n)) * 0.5, rng.standard_normal((b, n))


def expected_rnn_grad(w0, x0, weights, steps=5, eps=1e-6):
    def f(w):
        with tg.no_grad():
            _, out = rnn_into_buffer(tg, w, x0, steps)
            return float((out.numpy() * weights).sum())
    g = np.zeros_like(w0)
    for i in np.ndindex(w0.shape):
        hi, lo = w0.copy(), w0.copy()
        hi[i] += eps
        lo[i] -= eps
        g[i] = (f(hi) - f(lo)) / (2 * eps)
    return g


def test_rnn_written_into_a_buffer_matches_finite_differences():
    w0, x0 = data()
    weights = np.random.default_rng(1).standard_normal((5,) + x0.shape)
    w, out = rnn_into_buffer(tg, w0, x0)
    (out * tg.tensor(weights)).sum().backward()
    np.testing.assert_allclose(w.grad.numpy(), expected_rnn_grad(w0, x0, weights), rtol=1e-6, atol=1e-8)


def test_matches_pytorch_with_overlapping_and_advanced_writes():
    torch = pytest.importorskip("torch")

    def run(lib):
        a = lib.tensor(np.arange(1.0, 13.0).reshape(4, 3), requires_grad=True)
        v = lib.tensor([0.5, -2.0, 3.0], requires_grad=True)
        buf = a * 1
        buf[1] = v * 2
        buf[1:3, 1:] = v[:2] * v[2]  # overlaps the previous write
        buf[[0, 3]] = buf[[3, 0]] * 3  # advanced index, reading the buffer itself
        buf[..., 0] = buf[..., 0] + 1
        (buf ** 2 * lib.tensor(np.linspace(-1, 1, 12).reshape(4, 3))).sum().backward()
        return a.grad.numpy(), v.grad.numpy()

    for got, want in zip(run(tg), run(torch)):
        np.testing.assert_allclose(got, want, rtol=1e-6)


def test_a_retained_grad_is_not_zeroed_by_the_writes_before_it():
    a = tg.tensor([1.0, 2.0, 3.0], requires_grad=True)
    out = tg.zeros(3, dtype=tg.float64)
    out[0] = a[0] * 2
    out[1] = a[1] * 3
    out.retain_grad()
    c = tg.tensor([5.0, 6.0, 7.0])
    (out * c).sum().backward()
    np.testing.assert_array_equal(out.grad.numpy(), [5.0, 6.0, 7.0])
    np.testing.assert_array_equal(a.grad.numpy(), [10.0, 18.0, 0.0])


def test_a_hook_keeps_the_gradient_it_saw():
    a = tg.tensor([1.0, 2.0], requires_grad=True)
    buf = tg.zeros(2, dtype=tg.float64)
    buf[0] = a[0]
    mid = buf * 1
    mid[1] = a[1]
    seen = []
    mid.register_hook(lambda g: seen.append(g))
    (mid * tg.tensor([3.0, 4.0])).sum().backward()
    np.testing.assert_array_equal(seen[0].numpy(), [3.0, 4.0])
    np.testing.assert_array_equal(a.grad.numpy(), [3.0, 4.0])


def test_the_callers_gradient_is_not_written():
    a = tg.tensor([1.0, 2.0, 3.0], requires_grad=True)
    out = a * 1
    out[1] = a[0] * a[2]
    given = tg.tensor([1.0, 1.0, 1.0], dtype=tg.float64)
    out.backward(given)
    np.testing.assert_array_equal(given.numpy(), [1.0, 1.0, 1.0])
    np.testing.assert_array_equal(a.grad.numpy(), [1.0 + 3.0, 0.0, 1.0 + 1.0])


def test_backward_twice_with_retain_graph_and_double_backward():
    a = tg.tensor([1.0, 2.0, 3.0], requires_grad=True)
    out = a * a
    out[0] = a[1] * a[2]
    loss = (out * tg.tensor([2.0, 3.0, 4.0])).sum()
    (g1,) = tg.autograd.grad(loss, a, retain_graph=True)
    (g2,) = tg.autograd.grad(loss, a, create_graph=True)
    want = [0.0, 2 * 3.0 + 3 * 2 * 2.0, 2 * 2.0 + 4 * 2 * 3.0]  # d/da of 2*a1*a2 + 3*a1^2 + 4*a2^2
    np.testing.assert_allclose(g1.numpy(), want)
    np.testing.assert_allclose(g2.detach().numpy(), want)
    (gg,) = tg.autograd.grad(g2.sum(), a)
    np.testing.assert_allclose(gg.numpy(), [0.0, 2.0 + 6.0, 2.0 + 8.0])


def test_the_vjp_hands_the_engine_a_zeroed_grad_outside_create_graph_only():
    from tapegrad.ops.indexing import _setitem
    vjp = _setitem.vjps[0]
    g = tg.ones(2, dtype=tg.float64)
    with tg.no_grad():
        z = vjp(g, None, None, None, index=(0,))
    assert isinstance(z, ZeroedGrad) and z[0] is g
    np.testing.assert_array_equal(z[2](g).numpy(), [0.0, 1.0])  # the copy
    np.testing.assert_array_equal(g.numpy(), [1.0, 1.0])
    z[1](g.numpy())  # in place
    np.testing.assert_array_equal(g.numpy(), [0.0, 1.0])
    with tg.enable_grad():
        assert not isinstance(vjp(g, None, None, None, index=(0,)), ZeroedGrad)
