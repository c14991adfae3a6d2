"""Gradients of pieces of one tensor (split, unbind, chunk, iteration, an element): the getitem
VJP hands the engine a SliceGrad outside create_graph, and the engine fills one array."""
import numpy as np

import tapegrad as tg
from tapegrad.autograd import gradcheck, gradgradcheck


def test_pieces_of_one_tensor_sum_into_its_gradient():
    x = tg.randn(3, 4, 5, requires_grad=True)
    q, k, v = x * 2
    (q.sum() + (k * k).sum() + v.mean()).backward()
    xn = x.detach().numpy()
    want = np.stack([np.full((4, 5), 2.0), 8 * xn[1], np.full((4, 5), 0.1)])
    np.testing.assert_allclose(x.grad.numpy(), want, rtol=1e-5)


def test_overlapping_pieces_and_single_elements_add_up():
    x = tg.randn(3, 4, requires_grad=True)
    (x[:, :3].sum() + 3 * x[:, 1:].sum() + x[1, 2] * 5).backward()
    want = np.zeros((3, 4)) + [1, 4, 4, 3]
    want[1, 2] += 5
    np.testing.assert_allclose(x.grad.numpy(), want)
    y = tg.randn(5, requires_grad=True)
    (y[1] * 2 + y[1] * 3 + y[3]).backward()  # element pieces arrive as numpy scalars
    np.testing.assert_allclose(y.grad.numpy(), [0, 5, 0, 1, 0])


def test_hooks_and_retain_grad_see_the_whole_gradient():
    w = tg.randn(2, 3, requires_grad=True)
    u = w * 1
    u.retain_grad()
    seen = []
    u.register_hook(lambda g: seen.append(g.numpy().copy()))
    r0, r1 = u
    (r0.sum() + 2 * r1.sum()).backward()
    want = [[1.0] * 3, [2.0] * 3]
    np.testing.assert_allclose(seen[0], want)
    np.testing.assert_allclose(u.grad.numpy(), want)
    np.testing.assert_allclose(w.grad.numpy(), want)


def test_a_shared_upstream_gradient_is_not_written_into():
    x = tg.randn(2, 3, requires_grad=True)
    y = x + 0  # add's VJP passes g itself on: the pending sum is shared
    z = y + y[0]
    g = tg.ones(2, 3)
    z.backward(g)
    np.testing.assert_allclose(g.numpy(), np.ones((2, 3)))
    np.testing.assert_allclose(x.grad.numpy(), [[3.0] * 3, [1.0] * 3])


def test_split_and_chunk_gradients_check_and_double_backward():
    t = tg.randn(3, 4, dtype=tg.float64, requires_grad=True)

    def f(t):
        return sum((c * (i + 1)).sin().sum() for i, c in enumerate(t.chunk(3, 1))) + (t[1, 2] * t[0]).sum()

    assert gradcheck(f, (t,))
    assert gradgradcheck(f, (t,))
    z = tg.randn(4, 3, dtype=tg.float64, requires_grad=True)
    p0, p1 = z.unbind(0)[:2]
    (g,) = tg.autograd.grad((p0 ** 3).sum() + (p1 ** 2).sum(), z, create_graph=True)
    (h,) = tg.autograd.grad(g.sum(), z)
    want = np.zeros((4, 3))
    want[0], want[1] = 6 * z.detach().numpy()[0], 2
    np.testing.assert_allclose(h.numpy(), want)
