"""The fused SiLU, dropout, embedding and layer_norm ops (tapegrad/ops/activation.py, C++ kernels in
csrc/kernels/rows.cpp) through nn.functional and the modules: against PyTorch where it is the
oracle, finite differences in float64, 1 and 2 threads bit-identical, dropout's statistics and
reproducibility under manual_seed, and layer_norm's one backward kernel call for any subset of
(input, weight, bias)."""
import numpy as np
import pytest

import tapegrad as tg
import tapegrad.nn.functional as F
from tapegrad import _C
from tapegrad.autograd import gradcheck, gradgradcheck
from tapegrad.ops import activation as _act

TOL = {"float32": dict(rtol=2e-5, atol=2e-6), "float64": dict(rtol=1e-12, atol=1e-13)}


def threads(n):
    class Ctx:
        def __enter__(self):
            self.before = tg.get_num_threads()
            tg.set_num_threads(n)

        def __exit__(self, *exc):
            tg.set_num_threads(self.before)
    return Ctx()


def one_and_two(fn):
    """fn() (a list of arrays) at 1 and at 2 threads; asserts they are bit-identical."""
    with threads(1):
        one = fn()
    with threads(2):
        two = fn()
    for a, b in zip(one, two):
        np.testing.assert_array_equal(a, b)
    return one


# ---------------------------------------------------------------- SiLU
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_silu_against_torch(dtype):
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(0).standard_normal((7, 129)) * 6
    g = np.random.default_rng(1).standard_normal((7, 129))
    X = tg.tensor(x, dtype=getattr(tg, dtype), requires_grad=True)
    tX = torch.tensor(x, dtype=getattr(torch, dtype), requires_grad=True)
    y, ty = tg.nn.SiLU()(X), torch.nn.SiLU()(tX)
    y.backward(tg.tensor(g, dtype=getattr(tg, dtype)))
    ty.backward(torch.tensor(g, dtype=getattr(torch, dtype)))
    np.testing.assert_allclose(y._data, ty.detach().numpy(), **TOL[dtype])
    np.testing.assert_allclose(X.grad._data, tX.grad.numpy(), **TOL[dtype])


def test_silu_gradients_and_second_derivatives():
    x = tg.tensor(np.random.default_rng(2).standard_normal((3, 5)) * 3, requires_grad=True)
    assert gradcheck(F.silu, (x,)) and gradgradcheck(F.silu, (x,))


def test_silu_threads_bit_identical():
    x = np.random.default_rng(3).standard_normal(100_003).astype(np.float32)
    g = np.random.default_rng(4).standard_normal(100_003).astype(np.float32)

    def run():
        X = tg.tensor(x, requires_grad=True)
        F.silu(X).backward(tg.tensor(g))
        return [F.silu(tg.tensor(x))._data, X.grad._data]
    one_and_two(run)


# ---------------------------------------------------------------- dropout
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("p", [0.1, 0.5, 0.75])
def test_dropout_statistics_reproducibility_and_gradient(dtype, p):
    n = 120_001
    x = np.random.default_rng(5).standard_normal(n)

    def run():
        tg.manual_seed(7)
        X = tg.tensor(x, dtype=getattr(tg, dtype), requires_grad=True)
        y = F.dropout(X, p)
        y.backward(tg.ones(n, dtype=getattr(tg, dtype)))
        return [y._data, X.grad._data]
    y, gx = one_and_two(run)
    keep = y != 0
    assert abs(keep.mean() - (1 - p)) < 5 * np.sqrt(p * (1 - p) / n)
    scale = np.asarray(1 / (1 - p), dtype)
    np.testing.assert_array_equal(y, np.where(keep, x.astype(dtype) * scale, 0))
    np.testing.assert_array_equal(gx, np.where(keep, scale, 0).astype(dtype))
    tg.manual_seed(8)
    assert (F.dropout(tg.tensor(x, dtype=getattr(tg, dtype)), p)._data != 0).tolist() != keep.tolist()


def test_dropout_keeps_its_semantics():
    x = tg.randn(4, 5, requires_grad=True)
    assert F.dropout(x, 0.0) is x and F.dropout(x, 0.5, training=False) is x
    assert tg.nn.Dropout(0.5).eval()(x) is x
    z = F.dropout(x, 1.0)
    assert (z._data == 0).all() and z.requires_grad
    before = x._data.copy()
    y = F.dropout(x, 0.5, inplace=True)  # accepted, computed out of place (README)
    np.testing.assert_array_equal(x._data, before)
    assert y is not x and y.shape == x.shape
    with pytest.raises(ValueError, match="dropout probability has to be between 0 and 1, but got 1.5"):
        F.dropout(x, 1.5)
    s = F.dropout(tg.tensor(2.0), 0.5)  # 0-d stays 0-d
    assert s.shape == () and s.item() in (0.0, 4.0)
    h = F.dropout(tg.randn(50, dtype=tg.float16), 0.5)  # 16-bit: the numpy path
    assert h.dtype == tg.float16 and set(np.unique(h._data != 0)) <= {True, False}


def test_dropout_gradients_and_second_derivatives():
    x = tg.tensor(np.random.default_rng(6).standard_normal((4, 6)), requires_grad=True)
    state = tg.random.get_rng_state()

    def fn(a):
        tg.random.set_rng_state(state)  # one mask for every finite-difference call
        return F.dropout(a, 0.4)
    assert gradcheck(fn, (x,)) and gradgradcheck(fn, (x,))


# ---------------------------------------------------------------- embedding
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("padding_idx", [None, 3, -2])
@pytest.mark.parametrize("freq", [False, True])
def test_embedding_backward_against_torch(dtype, padding_idx, freq):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(9)
    w = rng.standard_normal((20, 200))  # several column blocks, the last partial
    idx = rng.integers(0, 20, (9, 31))
    idx[0, :5] = 3
    g = rng.standard_normal((9, 31, 200))
    tw = torch.tensor(w, dtype=getattr(torch, dtype), requires_grad=True)
    torch.nn.functional.embedding(torch.tensor(idx), tw, padding_idx, scale_grad_by_freq=freq).backward(
        torch.tensor(g, dtype=getattr(torch, dtype)))

    def run():
        W = tg.tensor(w, dtype=getattr(tg, dtype), requires_grad=True)
        y = F.embedding(tg.tensor(idx), W, padding_idx, scale_grad_by_freq=freq)
        y.backward(tg.tensor(g, dtype=getattr(tg, dtype)))
        return [y._data, W.grad._data]
    y, gw = one_and_two(run)
    np.testing.assert_array_equal(y, w.astype(dtype)[idx])
    np.testing.assert_allclose(gw, tw.grad.numpy(), **TOL[dtype])


def test_embedding_module_passes_scale_grad_by_freq():
    torch = pytest.importorskip("torch")
    idx = np.array([[1, 1, 2, 0], [1, 4, 4, 0]])
    m = tg.nn.Embedding(5, 3, padding_idx=0, scale_grad_by_freq=True)
    tm = torch.nn.Embedding(5, 3, padding_idx=0, scale_grad_by_freq=True)
    with torch.no_grad():
        tm.weight.copy_(torch.tensor(m.weight._data))
    (m(tg.tensor(idx)) ** 2).sum().backward()
    (tm(torch.tensor(idx)) ** 2).sum().backward()
    np.testing.assert_allclose(m.weight.grad._data, tm.weight.grad.numpy(), rtol=1e-6)


@pytest.mark.parametrize("padding_idx", [None, 1])
@pytest.mark.parametrize("freq", [False, True])
def test_embedding_second_derivatives(padding_idx, freq):
    """The first-order gradient is PyTorch's (not a true derivative with padding_idx or
    scale_grad_by_freq); its own derivative, embedding_backward's VJP, is checked by finite
    differences of the backward."""
    idx = np.array([[0, 2, 2], [4, 1, 2]])
    g = tg.tensor(np.random.default_rng(11).standard_normal((2, 3, 3)), requires_grad=True)

    def backward(g):  # what F.embedding's VJP applies to its upstream gradient
        return tg.ops.apply(_act._embedding_backward, g, idx=idx, num_weights=5, padding_idx=padding_idx,
                            scale_grad_by_freq=freq)
    assert gradcheck(backward, (g,))
    w = tg.tensor(np.random.default_rng(10).standard_normal((5, 3)), requires_grad=True)
    (gw,) = tg.autograd.grad(F.embedding(tg.tensor(idx), w, padding_idx, scale_grad_by_freq=freq), [w], g,
                             create_graph=True)
    np.testing.assert_array_equal(gw._data, backward(g)._data)
    assert gw.requires_grad


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_embedding_16bit(dtype):
    if dtype == "bfloat16":
        pytest.importorskip("ml_dtypes")
    W = tg.randn(6, 4).to(getattr(tg, dtype)).requires_grad_()
    idx = tg.tensor([[0, 5, 5]])
    y = F.embedding(idx, W, padding_idx=0)
    assert y.dtype == W.dtype
    np.testing.assert_array_equal(y._data, W._data[idx._data])
    y.float().sum().backward()
    assert W.grad.dtype == W.dtype
    np.testing.assert_array_equal(W.grad.float()._data[:, 0], [0, 0, 0, 0, 0, 2])


def test_embedding_bad_input():
    W = tg.randn(4, 3, requires_grad=True)
    with pytest.raises(IndexError, match="embedding: index 4 is out of range for an embedding of 4 rows"):
        F.embedding(tg.tensor([1, 4]), W)
    with pytest.raises(RuntimeError, match="embedding: indices must be an integer tensor"):
        F.embedding(tg.tensor([1.0]), W)
    with pytest.raises(RuntimeError, match=r"embedding: 'weight' must be 2-D, got shape \(4,\)"):
        F.embedding(tg.tensor([1]), tg.randn(4))


# ---------------------------------------------------------------- layer_norm: one backward kernel call
def test_layer_norm_backward_is_one_kernel_call(monkeypatch):
    torch = pytest.importorskip("torch")
    calls = []
    kernel = _C.layer_norm_backward

    def counted(*args):
        calls.append(args[-3:])
        return kernel(*args)

    class Counting:
        def __getattr__(self, name):
            return counted if name == "layer_norm_backward" else getattr(_C, name)
    monkeypatch.setattr(_act, "_C", Counting())
    rng = np.random.default_rng(12)
    x, g = rng.standard_normal((6, 10)), rng.standard_normal((6, 10))
    tm = torch.nn.LayerNorm(10, dtype=torch.float64)
    with torch.no_grad():
        tm.weight.copy_(torch.tensor(rng.standard_normal(10)))
        tm.bias.copy_(torch.tensor(rng.standard_normal(10)))
    tX = torch.tensor(x, requires_grad=True)
    tm(tX).backward(torch.tensor(g))
    for wants in [(True, True, True), (False, True, True), (True, False, True), (True, True, False),
                  (False, False, True)]:
        m = tg.nn.LayerNorm(10, dtype=tg.float64)
        m.load_state_dict({k: tg.tensor(v.detach().numpy()) for k, v in tm.state_dict().items()})
        m.weight.requires_grad_(wants[1])
        m.bias.requires_grad_(wants[2])
        X = tg.tensor(x, requires_grad=wants[0])
        calls.clear()
        y = m(X)
        y.backward(tg.tensor(g), retain_graph=True)
        assert calls == [wants]
        y.backward(tg.tensor(g))  # a second pass recomputes, and accumulates
        for got, ref, want in zip((X.grad, m.weight.grad, m.bias.grad), (tX.grad, tm.weight.grad, tm.bias.grad), wants):
            assert (got is None) == (not want)
            if want:
                np.testing.assert_allclose(got._data, 2 * ref.numpy(), rtol=1e-12, atol=1e-12)
    # the gradient of the input alone (autograd.grad): weight and bias grads are computed by the
    # one call (their tensors require grad) and never used
    m = tg.nn.LayerNorm(10, dtype=tg.float64)
    X = tg.tensor(x, requires_grad=True)
    calls.clear()
    (gx,) = tg.autograd.grad(m(X), [X], tg.tensor(g))
    assert len(calls) == 1 and gx.shape == (6, 10)
