"""vector_norm, logsumexp, prod, max / min and var / std along dims through the tensor API: the native
forward and first-order backward (csrc/kernels/reduce.h) against numpy, finite differences and
PyTorch, in float32 and float64; second derivatives through the composites; other layouts."""
import numpy as np
import pytest

import tapegrad as tg
from tapegrad.autograd import gradcheck, gradgradcheck

OPS = {
    "norm2": lambda M, t, d, k: M.linalg.vector_norm(t, 2, d, k),
    "norm1": lambda M, t, d, k: M.linalg.vector_norm(t, 1, d, k),
    "logsumexp": lambda M, t, d, k: M.logsumexp(t, d, k),
    "prod": lambda M, t, d, k: t.prod(d, k),
    "max": lambda M, t, d, k: t.max(d, k)[0],
    "min": lambda M, t, d, k: t.min(d, k)[0],
    "var": lambda M, t, d, k: t.var(d, keepdim=k),
    "std": lambda M, t, d, k: t.std(d, keepdim=k, correction=0),
}
SINGLE_DIM = ("prod", "max", "min")
CASES = [((5, 7), 1), ((5, 7), 0), ((3, 4, 5), (1, 2)), ((3, 4, 5), 1), ((6,), 0), ((2, 3, 4), (0, 1)), ((2, 3, 4), -1)]


def _cases(op):
    return [(s, d) for s, d in CASES if op not in SINGLE_DIM or isinstance(d, int)]


def _x(shape, op, dtype=np.float64, seed=0):
    x = np.random.default_rng(seed).standard_normal(shape)
    return (np.exp(0.2 * x) if op == "prod" else x).astype(dtype)


@pytest.mark.parametrize("op", list(OPS))
def test_gradcheck_and_double_backward(op):
    for shape, dim in _cases(op):
        for keepdim in (False, True):
            x = tg.tensor(_x(shape, op), requires_grad=True)
            f = lambda t: OPS[op](tg, t, dim, keepdim)  # noqa: E731
            assert gradcheck(f, (x,))
            if op not in ("max", "min", "norm1"):  # piecewise linear: second derivative 0 almost everywhere
                assert gradgradcheck(f, (x,))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("op", list(OPS))
def test_forward_and_gradient_against_torch(op, dtype):
    torch = pytest.importorskip("torch")
    for shape, dim in _cases(op) + [((300, 1000), 1), ((1000, 300), 0), ((3, 40000), 1)]:
        a = _x(shape, op, dtype, seed=1)
        g = np.random.default_rng(2).standard_normal(tuple(OPS[op](torch, torch.from_numpy(a), dim, False).shape))
        outs = []
        for M in (tg, torch):
            t = M.tensor(a, requires_grad=True)
            y = OPS[op](M, t, dim, False)
            y.backward(M.tensor(g.astype(dtype)))
            outs.append((y.detach().numpy(), t.grad.numpy()))
        (y, gx), (ty, tgx) = outs
        rtol = 3e-5 if dtype == np.float32 else 1e-12
        np.testing.assert_allclose(y, ty, rtol=rtol, atol=1e-30, err_msg=f"{op} {shape} {dim}")
        np.testing.assert_allclose(gx, tgx, rtol=rtol, atol=rtol * np.abs(tgx).max(), err_msg=f"{op} {shape} {dim}")
        if op in ("max", "min"):  # a scatter of g: the same bits
            assert gx.tobytes() == tgx.tobytes(), (op, shape, dim)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_max_min_ties_and_specials_against_torch(dtype):
    torch = pytest.importorskip("torch")
    a = np.array([[1.0, 3.0, 3.0, 2.0], [np.nan, 1.0, np.nan, 0.0], [-np.inf, -np.inf, -np.inf, -np.inf],
                  [0.0, -0.0, 0.0, -0.0], [5.0, 5.0, 5.0, 5.0]], dtype)
    for name in ("max", "min"):
        for dim in (0, 1):
            res = []
            for M in (tg, torch):
                t = M.tensor(a, requires_grad=True)
                v, i = getattr(t, name)(dim)
                v.backward(M.ones_like(v) * 2)
                res.append((v.detach().numpy(), i.numpy(), t.grad.numpy()))
            for ours, theirs in zip(*res):
                np.testing.assert_array_equal(ours, theirs, err_msg=f"{name}({dim})")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_logsumexp_and_norm_specials_against_torch(dtype):
    torch = pytest.importorskip("torch")
    a = np.array([[-np.inf, -np.inf, -np.inf], [np.inf, 1.0, 2.0], [np.nan, 1.0, 2.0], [1e30, 1e30, -1e30],
                  [0.0, 0.0, 0.0], [-1e4, -1e4, 0.0]], dtype)
    with np.errstate(all="ignore"):
        for fn in (lambda M, t: M.logsumexp(t, 1), lambda M, t: M.linalg.vector_norm(t, dim=1),
                   lambda M, t: M.linalg.vector_norm(t, 1, dim=1), lambda M, t: t.prod(1)):
            res = []
            for M in (tg, torch):
                t = M.tensor(a, requires_grad=True)
                y = fn(M, t)
                y.backward(M.ones_like(y))
                res.append((y.detach().numpy(), t.grad.numpy()))
            np.testing.assert_allclose(res[0][0], res[1][0], rtol=1e-6, equal_nan=True)
            np.testing.assert_allclose(res[0][1], res[1][1], rtol=1e-6, equal_nan=True)


def test_prod_gradient_with_zeros_as_torch():
    torch = pytest.importorskip("torch")
    # one zero: only it gets the others' product; two: all zero; none: out / x
    a = np.array([[2.0, 0.0, 3.0, 4.0], [0.0, 5.0, 0.0, 1.0], [1.5, 2.0, 0.5, 3.0]])
    for dim in (0, 1):
        res = []
        for M in (tg, torch):
            t = M.tensor(a, requires_grad=True)
            t.prod(dim).backward(M.tensor(np.arange(1.0, 1.0 + a.shape[1 - dim])))
            res.append(t.grad.numpy())
        np.testing.assert_allclose(res[0], res[1], rtol=1e-15)
    # underflowing products with no zero take the out / x formula, as PyTorch's
    b = np.full((2, 400), 0.1)
    t = tg.tensor(b, requires_grad=True)
    t.prod(1).backward(tg.ones(2))
    assert t.prod(1).detach().numpy().tolist() == [0.0, 0.0] and not t.grad.numpy().any()


@pytest.mark.parametrize("op", list(OPS))
def test_non_contiguous_and_layouts_take_numpy_and_agree(op):
    base = _x((30, 40, 5), op, np.float64, seed=3)
    for view in (lambda t: t.permute(2, 0, 1), lambda t: t[:, ::2], lambda t: t[..., 1:]):
        for dim in (0, 1, 2):
            t = tg.tensor(base, requires_grad=True)
            v = view(t)
            y = OPS[op](tg, v, dim, False)
            y.backward(tg.ones_like(y))
            c = tg.tensor(np.ascontiguousarray(view(tg.tensor(base)).numpy()), requires_grad=True)
            yc = OPS[op](tg, c, dim, False)
            yc.backward(tg.ones_like(yc))
            np.testing.assert_allclose(y.detach().numpy(), yc.detach().numpy(), rtol=1e-13)
            np.testing.assert_allclose(view(t.grad).numpy(), c.grad.numpy(), rtol=1e-12, atol=1e-300)


def test_threads_give_the_same_bits_through_the_api(restore_threads):
    a = _x((1000, 1000), "norm2", np.float32, seed=4)
    res = []
    for n in (1, 2, 3):
        tg.set_num_threads(n)
        out = []
        for op in OPS:
            t = tg.tensor(np.exp(0.001 * a) if op == "prod" else a, requires_grad=True)
            y = OPS[op](tg, t, 1, False)
            y.backward(tg.ones_like(y))
            out += [y.detach().numpy().tobytes(), t.grad.numpy().tobytes()]
        res.append(out)
    assert res[0] == res[1] == res[2]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sum_and_mean_gradients_are_one_fill(dtype, restore_threads):
    """sum / mean's first-order gradient is g (g / n) broadcast, which .grad's accumulation fills on
    the kernel threads into a fresh C-contiguous array: the composite's bits (mean's g / n per
    element) at 1, 2 and 3 threads; with create_graph the composite is recorded and differentiates."""
    rng = np.random.default_rng(5)
    for shape, dim in [((1000, 1000), 1), ((1000, 1000), 0), ((1000, 1000), None), ((7, 300, 50), 1),
                       ((40, 7, 401), (1, 2)), ((1, 1000, 1, 100), 1), ((0, 5), 1), ((3,), 0)]:
        a = rng.standard_normal(shape).astype(dtype)
        for op in ("sum", "mean"):
            for keepdim in (False, True):
                res = []
                for n in (1, 2, 3):
                    tg.set_num_threads(n)
                    x = tg.tensor(a, requires_grad=True)
                    y = getattr(x, op)(dim, keepdim=keepdim) if dim is not None else getattr(x, op)()
                    g = np.asarray(rng.standard_normal(y.shape) * 100, dtype) if n == 1 else g
                    y.backward(tg.tensor(g))
                    res.append(x.grad.numpy())
                gk = g if keepdim or dim is None else np.expand_dims(g, dim)
                want = np.broadcast_to(gk, shape).copy()
                if op == "mean":
                    want = want / dtype(a.size // y.numel() if y.numel() else 1)
                for r in res:
                    assert r.dtype == dtype and r.flags.c_contiguous and r.tobytes() == want.tobytes(), \
                        (shape, dim, op, keepdim)
    x = tg.tensor(rng.standard_normal((3, 4)), requires_grad=True)
    for op in ("sum", "mean"):
        assert gradgradcheck(lambda t: getattr(t, op)(1) ** 2, (x,))
