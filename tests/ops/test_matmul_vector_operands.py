"""matmul with a 1-D operand keeps for backward what PyTorch's keeps: dot and mv the operands
themselves, so a vector whose ``.data`` is replaced between forward and backward (the power
iteration of the SN-GAN's hand-written SpectralNorm) gives its new values to the gradient; a
vector on the left is a (1, K) view (PyTorch's unsqueeze(0)) and keeps the old ones. tapegrad
used to keep reshaped views for dot and mv too, so their gradients used the old values."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")

import tapegrad as tg  # noqa: E402

R = np.random.default_rng(0)
W, U, V, WB = R.standard_normal((3, 4)), R.standard_normal(3), R.standard_normal(4), R.standard_normal((2, 3, 4))
U2, V2 = R.standard_normal(3), R.standard_normal(4)

FORMS = {
    "dot_mv": lambda M, w, u, v: u.dot(w.mv(v)),
    "torch.dot_mv": lambda M, w, u, v: M.dot(u, M.mv(w, v)),
    "vm": lambda M, w, u, v: (u @ w * v).sum(),
    "matmul_vv": lambda M, w, u, v: M.matmul(u, w @ v),
    "t_mv": lambda M, w, u, v: M.mv(M.t(w), u).dot(v),  # the transposed-weight path of w^T u
    "batched_vm": lambda M, w, u, v: (u @ M.tensor(WB, dtype=M.float64) * w.sum()).sum() + (w @ v).sum(),
    "batched_mv": lambda M, w, u, v: ((M.tensor(WB, dtype=M.float64) * w) @ v).pow(2).sum() + u.sum(),
}


@pytest.mark.parametrize("form", sorted(FORMS))
def test_vector_operand_data_swapped_before_backward(form):
    grads = {}
    for M in (torch, tg):
        w = M.tensor(W, requires_grad=True)
        u, v = M.tensor(U), M.tensor(V)
        s = FORMS[form](M, w, u, v)
        u.data = M.tensor(U2)  # swaps the storage: no in-place modification for the version check
        v.data = M.tensor(V2)
        s.backward()
        grads[M] = w.grad.numpy()
    np.testing.assert_allclose(grads[tg], grads[torch], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("form", sorted(FORMS))
def test_vector_operand_values_and_double_backward(form):
    res = {}
    for M in (torch, tg):
        w, u, v = (M.tensor(a, requires_grad=True) for a in (W, U, V))
        s = FORMS[form](M, w, u, v)
        gw, gv = M.autograd.grad(s, (w, v), create_graph=True)
        (hv,) = M.autograd.grad((gw ** 2).sum() + (gv ** 2).sum(), (u,), allow_unused=True)
        res[M] = [s.detach().numpy(), gw.detach().numpy(), gv.detach().numpy(),
                  None if hv is None else hv.numpy()]
    for a, b in zip(res[tg], res[torch]):
        if b is None:
            assert a is None or not np.any(a)
        else:
            np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


def test_vector_shapes_and_errors():
    w, v = tg.ones(3, 4), tg.ones(4)
    assert tuple(tg.matmul(v, v).shape) == () and tuple(tg.matmul(tg.ones(3), w).shape) == (4,)
    assert tuple(tg.matmul(tg.ones(2, 3, 4), v).shape) == (2, 3)
    assert tuple(tg.matmul(tg.ones(3), tg.ones(2, 3, 4)).shape) == (2, 4)
    with pytest.raises(RuntimeError, match=r"matmul: shapes \(3, 4\) and \(3,\)"):
        tg.matmul(w, tg.ones(3))
    with pytest.raises(RuntimeError, match="dot: inconsistent tensor size"):
        tg.dot(tg.ones(3), v)
