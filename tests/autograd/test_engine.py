"""The engine: chain rule, accumulation, retained grads, hooks, freed graphs, deep chains."""
import inspect
import math

import numpy as np
import pytest

import tapegrad as tg


def f64(*values, requires_grad=True):
    return tg.tensor(list(values), dtype=tg.float64, requires_grad=requires_grad)


def test_chain_rule_example():
    # y = x3 * exp(x1 + x2): dy/dx1 = dy/dx2 = y, dy/dx3 = exp(x1 + x2)
    x1, x2, x3 = (tg.tensor(v, dtype=tg.float64, requires_grad=True) for v in (0.5, -1.0, 2.0))
    y = x3 * (x1 + x2).exp()
    y.backward()
    e = math.exp(-0.5)
    assert x1.grad.item() == pytest.approx(2.0 * e)
    assert x2.grad.item() == pytest.approx(2.0 * e)
    assert x3.grad.item() == pytest.approx(e)


def test_leaf_grad_accumulates_across_backward_calls():
    x = f64(1.0, 2.0)
    (x * x).sum().backward()
    g1 = x.grad
    (x * x).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [4.0, 8.0])
    assert x.grad is g1  # accumulated in place: references to .grad stay valid
    x.grad = None
    (3 * x).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [3.0, 3.0])


def test_same_leaf_used_twice_and_grad_not_aliased():
    a, b = f64(1.0, 2.0), f64(3.0, 4.0)
    (a + b).sum().backward()
    assert a.grad._data is not b.grad._data
    a.grad.zero_()
    np.testing.assert_allclose(b.grad.numpy(), [1.0, 1.0])
    x = f64(3.0)
    (x + x + x * x).backward()
    assert x.grad.item() == pytest.approx(8.0)


def test_non_leaf_grad_is_none_unless_retained():
    x = f64(1.0, 2.0)
    h = x * 3
    k = x * 2
    k.retain_grad()
    assert k.retains_grad and not h.retains_grad
    (h * k).sum().backward()
    assert h.grad is None
    np.testing.assert_allclose(k.grad.numpy(), h.detach().numpy())
    np.testing.assert_allclose(x.grad.numpy(), 12 * x.detach().numpy())


def test_is_leaf_and_grad_fn():
    x = f64(1.0)
    c = tg.tensor([2.0])
    assert x.is_leaf and c.is_leaf and x.grad_fn is None
    y = x * 2
    assert not y.is_leaf and y.requires_grad and y.grad_fn is not None
    assert y.grad_fn.name() == "MulBackward0" and type(y.grad_fn).__name__ == "MulBackward0"
    assert isinstance(y.grad_fn, tg.autograd.Node) and type((y * y).grad_fn) is type(y.grad_fn)
    assert "grad_fn=<MulBackward0>" in repr(y)
    z = c * 2  # nothing requires grad: no node
    assert z.is_leaf and z.grad_fn is None and not z.requires_grad
    # next_functions points at the leaf (and None for a constant)
    assert any(e is not None and getattr(e, "variable", None) is x for e, _ in y.grad_fn.next_functions)


def test_detach_shares_memory_and_leaves_the_tape():
    x = f64(1.0, 2.0)
    y = x * 2
    d = y.detach()
    assert d.is_leaf and not d.requires_grad and d.grad_fn is None
    assert np.shares_memory(d.numpy(), y.detach().numpy())
    d.add_(1.0)  # shares the version counter, as PyTorch's detach does
    assert y._version == d._version == 1


def test_requires_grad_():
    x = tg.tensor([1.0, 2.0])
    assert x.requires_grad_() is x and x.requires_grad
    x.requires_grad_(False)
    assert not x.requires_grad
    y = f64(1.0) * 2
    with pytest.raises(RuntimeError, match="leaf"):
        y.requires_grad_(False)
    with pytest.raises(RuntimeError, match="floating point"):
        tg.tensor([1, 2]).requires_grad_()


def test_register_hook_on_leaf_and_non_leaf():
    x = f64(1.0, 2.0)
    seen = []
    h = x.register_hook(lambda g: seen.append(g.numpy().copy()))
    y = x * 3
    y.register_hook(lambda g: g * 10)  # a replacement flows on
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [30.0, 30.0])
    np.testing.assert_allclose(seen[0], [30.0, 30.0])
    h.remove()
    x.grad = None
    (x * 3).sum().backward()
    assert len(seen) == 1
    np.testing.assert_allclose(x.grad.numpy(), [3.0, 3.0])


def test_leaf_hook_replacement_and_remove():
    x = f64(1.0)
    h = x.register_hook(lambda g: g * 0)
    (x * 5).backward()
    assert x.grad.item() == 0.0
    h.remove()
    (x * 5).backward()
    assert x.grad.item() == 5.0
    with pytest.raises(RuntimeError, match="doesn't require"):
        tg.tensor([1.0]).register_hook(lambda g: g)


def test_backward_twice_through_freed_graph_mentions_retain_graph():
    x = f64(1.0, 2.0)
    y = (x * x).sum()
    y.backward()
    with pytest.raises(RuntimeError, match="retain_graph"):
        y.backward()
    z = (x.exp() * 2).sum()
    z.backward(retain_graph=True)
    z.backward()
    # 2x from y, then 2 exp(x) from each of z's two backward calls
    np.testing.assert_allclose(x.grad.numpy(), 2 * np.array([1.0, 2.0]) + 2 * 2 * np.exp([1.0, 2.0]))


def test_backward_needs_scalar_or_gradient():
    x = f64(1.0, 2.0)
    y = x * 2
    with pytest.raises(RuntimeError, match="scalar"):
        y.backward()
    y.backward(tg.tensor([1.0, 0.5], dtype=tg.float64))
    np.testing.assert_allclose(x.grad.numpy(), [2.0, 1.0])
    with pytest.raises(RuntimeError, match="does not require grad"):
        tg.tensor(1.0).backward()


def test_broadcast_gradients_are_reduced_to_input_shapes():
    a = tg.ones(3, 1, dtype=tg.float64, requires_grad=True)
    b = tg.ones(4, dtype=tg.float64, requires_grad=True)
    (a * b).sum().backward()
    assert a.grad.shape == (3, 1) and b.grad.shape == (4,)
    np.testing.assert_allclose(a.grad.numpy(), 4.0)
    np.testing.assert_allclose(b.grad.numpy(), 3.0)


def test_long_chain_backprops_without_recursion_error():
    x = tg.tensor(1.0, dtype=tg.float64, requires_grad=True)
    y = x
    for _ in range(100_000):
        y = y * 1.0
    y.backward()
    assert x.grad.item() == 1.0
    del y  # freeing the chain must not recurse either


def test_diamond_graph_runs_each_node_once():
    x = f64(2.0)
    calls = []
    h = x * 3
    h.register_hook(lambda g: calls.append(1))
    (h * h + h).backward()
    assert len(calls) == 1
    assert x.grad.item() == pytest.approx(3 * (2 * 6.0 + 1))


def test_backward_inputs_restricts_accumulation():
    a, b = f64(1.0), f64(2.0)
    (a * b).backward(inputs=[a])
    assert a.grad.item() == 2.0 and b.grad is None


def test_float32_gradients_stay_float32():
    x = tg.tensor([1.0, 2.0], requires_grad=True)
    (x * 2.5).sum().backward()
    assert x.grad.dtype == tg.float32


def _alias(a, b):
    return np.shares_memory(a.detach().numpy(), b.detach().numpy())


def test_leaf_gradients_never_alias_each_other_or_retained_gradients():
    # The engine lets a leaf take over a gradient buffer nothing else holds (no copy); these are
    # the cases where something else does hold it.
    a = tg.randn(3, 4, requires_grad=True)
    b = tg.randn(3, 4, requires_grad=True)
    (a + b).sum().backward()  # add's VJP hands the same gradient to both inputs
    assert not _alias(a.grad, b.grad)
    a.grad.zero_()
    assert float(b.grad.sum()) == 12.0

    w = tg.randn(5, 4, requires_grad=True)
    x = tg.randn(2, 4)
    wt = w.T
    wt.retain_grad()
    (x @ wt).sum().backward()  # w's gradient is the transpose of wt's
    assert not _alias(w.grad, wt.grad)
    np.testing.assert_allclose(w.grad.numpy(), wt.grad.numpy().T)

    seen = []
    v = tg.randn(3, requires_grad=True)
    v.register_hook(lambda g: seen.append(g))
    (v * 2).sum().backward()
    assert not _alias(v.grad, seen[0])


def test_linear_weight_gradient_is_contiguous_and_exact():
    # x @ w.T: the gradient is computed in w's layout (PyTorch's mm backward does the same)
    x = tg.randn(6, 4, dtype=tg.float64)
    w = tg.randn(3, 4, dtype=tg.float64, requires_grad=True)
    (x @ w.T).pow(2).sum().backward()
    assert w.grad.is_contiguous()
    xn, wn = x.numpy(), w.detach().numpy()
    np.testing.assert_allclose(w.grad.numpy(), 2 * (xn @ wn.T).T @ xn, rtol=1e-12)


def test_next_functions_like_pytorch():
    x = f64(1.0, 2.0)
    w = f64(3.0, 4.0)
    y = (x * w).exp() * 2
    (exp_fn, i), (none, j) = y.grad_fn.next_functions
    assert exp_fn.name() == "ExpBackward0" and none is None and i == j == 0
    (mul_fn, _), = exp_fn.next_functions
    (acc_x, _), (acc_w, _) = mul_fn.next_functions
    assert acc_x.variable is x and acc_w.variable is w
    assert acc_x.name() == "torch::autograd::AccumulateGrad" and acc_x.next_functions == ()


@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")
def test_detect_anomaly_names_the_op_that_made_a_nan():
    x = f64(0.0, 1.0)
    line = inspect.currentframe().f_lineno + 1
    y = x.sqrt() * 0  # d/dx sqrt at 0 is inf; times 0: nan
    with tg.autograd.detect_anomaly():
        assert tg.autograd.is_anomaly_enabled()
        with pytest.raises(RuntimeError, match=rf"Function 'SqrtBackward0' returned nan values in its 0th "
                                               rf"output \(the sqrt was recorded at .*test_engine.py:{line}\)"):
            y.sum().backward(retain_graph=True)
    assert not tg.autograd.is_anomaly_enabled()
    y.sum().backward()  # outside anomaly mode: NaN gradients flow as in PyTorch
    assert np.isnan(x.grad.numpy()[0])
    with tg.autograd.detect_anomaly(check_nan=False):
        (x.sqrt() * 0).sum().backward()
    tg.autograd.set_detect_anomaly(True)
    try:
        with pytest.raises(RuntimeError, match="returned nan"):
            (x.sqrt() * 0).sum().backward()
    finally:
        tg.autograd.set_detect_anomaly(False)


# ---------------------------------------------------------------- accumulation fast paths
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("shape", [(), (1,), (3, 4), (200, 30)])
def test_repeated_backward_accumulates_exactly_as_numpy(dtype, shape):
    rng = np.random.default_rng(0)
    x0 = rng.standard_normal(shape).astype(dtype)
    w0 = rng.standard_normal(shape).astype(dtype)
    x = tg.tensor(x0, requires_grad=True)
    w = tg.tensor(w0)
    expected = np.zeros(shape, dtype)
    for _ in range(3):
        (x * w + x * x).sum().backward()
        expected += w0 + 2 * x0
    assert x.grad.dtype == np.dtype(dtype)
    np.testing.assert_allclose(x.grad.numpy(), expected, rtol=1e-6)


def test_accumulating_into_a_user_assigned_strided_grad_writes_through_it():
    x = tg.tensor(np.ones((3, 2)), requires_grad=True)
    base = np.zeros((2, 3))
    x.grad = tg.from_numpy(base.T)  # a transposed view: not C-contiguous
    (x * 2).sum().backward()
    np.testing.assert_allclose(base, np.full((2, 3), 2.0))  # in place, as PyTorch's .grad
    assert x.grad._data.base is base


def test_implicit_gradient_of_a_scalar_loss_is_one_in_its_dtype():
    for dtype in (tg.float32, tg.float64):
        x = tg.tensor([[2.0]], dtype=dtype, requires_grad=True)
        y = x.T * 3  # a size-1 view
        y.backward()
        assert x.grad.dtype == dtype and x.grad.numpy().tolist() == [[3.0]]
    with pytest.raises(RuntimeError, match="implicitly created only for scalar outputs"):
        (tg.tensor([1.0, 2.0], requires_grad=True) * 2).backward()


def test_an_op_whose_result_cannot_be_allocated_raises_memory_error_naming_it():
    # an outer sum of 2**20 x 2**20 float64 elements: 8 TiB, which numpy refuses to allocate
    x = tg.ones(1, 2 ** 20, dtype=tg.float64)
    y = tg.ones(2 ** 20, 1, dtype=tg.float64)
    with pytest.raises(MemoryError, match=r"^add: .*\(input shapes \(1, 1048576\), \(1048576, 1\)\)"):
        x + y


def test_a_leaf_detached_in_place_after_recording_gets_no_gradient():
    a = tg.tensor([1.0, 2.0], dtype=tg.float64, requires_grad=True)
    y = a * 3
    a.detach_()
    y.sum().backward()
    assert a.grad is None  # PyTorch's AccumulateGrad skips a leaf that no longer requires grad
