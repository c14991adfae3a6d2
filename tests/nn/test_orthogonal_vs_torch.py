"""nn.utils.parametrizations.orthogonal (matrix_exp, cayley, householder; with and without
trivialization; square, tall, wide and batched weights) and parametrize.cached, against PyTorch:
weights, state_dict keys, gradients of the originals, assignment to the weight."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from torch.nn.utils import parametrizations as tp  # noqa: E402
from torch.nn.utils import parametrize as tpz  # noqa: E402

import tapegrad as tg  # noqa: E402
from tapegrad.nn.utils import parametrizations as gp  # noqa: E402
from tapegrad.nn.utils import parametrize as gpz  # noqa: E402

R = np.random.default_rng(0)


def _pair(out_f, in_f):
    tl = torch.nn.Linear(in_f, out_f).double()
    gl = tg.nn.Linear(in_f, out_f).double()
    gl.load_state_dict({k: tg.tensor(v.detach().numpy().copy()) for k, v in tl.state_dict().items()})
    return tl, gl


def _close(a, b, tol=1e-10):
    np.testing.assert_allclose(b.detach().numpy(), a.detach().numpy(), rtol=tol, atol=tol)


@pytest.mark.parametrize("shape", [(4, 4), (5, 3), (3, 5)])
@pytest.mark.parametrize("orthogonal_map", [None, "matrix_exp", "cayley", "householder"])
@pytest.mark.parametrize("triv", [True, False])
def test_orthogonal_matches_torch(shape, orthogonal_map, triv):
    tl, gl = _pair(*shape)
    tp.orthogonal(tl, orthogonal_map=orthogonal_map, use_trivialization=triv)
    gp.orthogonal(gl, orthogonal_map=orthogonal_map, use_trivialization=triv)
    _close(tl.weight, gl.weight)
    w = gl.weight.detach().numpy()
    gram = w @ w.T if shape[0] < shape[1] else w.T @ w
    np.testing.assert_allclose(gram, np.eye(min(shape)), atol=1e-12)
    assert sorted(tl.state_dict()) == sorted(gl.state_dict())
    if triv and shape[0] != shape[1]:  # the base's completion to a square matrix is random: use PyTorch's
        gl.parametrizations.weight[0].base = tg.tensor(tl.parametrizations.weight[0].base.numpy())
    # move the originals off the identity point so the gradients are not special
    for t, g in zip(tl.parameters(), gl.parameters()):
        step = R.standard_normal(tuple(t.shape)) * 0.1
        with torch.no_grad():
            t.add_(torch.tensor(step))
        g.data += tg.tensor(step)
    x = R.standard_normal((2, shape[1]))
    _close(tl(torch.tensor(x)), gl(tg.tensor(x)))
    tl(torch.tensor(x)).pow(2).sum().backward()
    gl(tg.tensor(x)).pow(2).sum().backward()
    for (name, t), g in zip(tl.named_parameters(), gl.parameters()):
        _close(t.grad, g.grad, 1e-9)


@pytest.mark.parametrize("orthogonal_map", ["matrix_exp", "cayley", "householder"])
def test_orthogonal_batched_and_gradcheck(orthogonal_map):
    class Holder(tg.nn.Module):
        def __init__(self, w):
            super().__init__()
            self.weight = tg.nn.Parameter(w)
    m = gp.orthogonal(Holder(tg.tensor(R.standard_normal((2, 4, 3)))), orthogonal_map=orthogonal_map,
                      use_trivialization=False)
    w = m.weight.detach().numpy()
    np.testing.assert_allclose(np.swapaxes(w, -1, -2) @ w, np.broadcast_to(np.eye(3), (2, 3, 3)), atol=1e-12)
    orth = m.parametrizations.weight[0]
    x = tg.tensor(R.standard_normal((4, 3)) * 0.3, requires_grad=True)
    assert tg.autograd.gradcheck(lambda x: orth(x), (x,))


def test_orthogonal_assignment_and_errors():
    tl, gl = _pair(4, 4)
    tp.orthogonal(tl)
    gp.orthogonal(gl)
    q = np.linalg.qr(R.standard_normal((4, 4)))[0]
    with torch.no_grad():
        tl.weight = torch.tensor(q)
    gl.weight = tg.tensor(q)
    _close(tl.weight, gl.weight)
    np.testing.assert_allclose(gl.weight.detach().numpy(), q, atol=1e-12)
    with pytest.raises(ValueError, match="orthogonal: expected a matrix"):
        gp.orthogonal(tg.nn.Linear(3, 3), name="bias")
    with pytest.raises(ValueError, match='orthogonal_map has to be one of "matrix_exp", "cayley", "householder"'):
        gp.orthogonal(tg.nn.Linear(3, 3), orthogonal_map="qr")
    with pytest.raises(ValueError, match="orthogonal: expected a matrix or batch of matrices of shape"):
        gl.weight = tg.eye(3)
    m = gp.orthogonal(tg.nn.Linear(3, 3), orthogonal_map="cayley", use_trivialization=False)
    with pytest.raises(NotImplementedError, match="use_trivialization=False"):
        m.weight = tg.eye(3)


def test_cached_computes_the_weight_once():
    for M, P, Z in ((torch, tp, tpz), (tg, gp, gpz)):
        m = P.orthogonal(M.nn.Linear(3, 3))
        calls = []
        m.parametrizations.weight[0].register_forward_hook(lambda *a: calls.append(1))
        x = M.ones(1, 3)
        with Z.cached():
            for _ in range(3):
                m(x)
        m(x)
        assert len(calls) == 2, M
