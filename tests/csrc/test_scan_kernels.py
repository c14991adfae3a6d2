"""cumsum's C++ scan (csrc/kernels/scan.cpp) against float64 numpy references, on every layout
the binding plans for (dense in any order of dims, strided views it reads in place, and views it
copies), and tapegrad.cumsum's gradients through it."""
import numpy as np
import pytest

import tapegrad as tg
from tapegrad import _C
from tapegrad.autograd import gradcheck, gradgradcheck

DTYPES = [np.float32, np.float64]


def ref(x, dim, reverse=False):
    """The sequential sum in float64, rounded once per output: what the kernel computes (numpy's
    accumulate is sequential; for float32 the double sum of float32 values, as PyTorch)."""
    a = np.asarray(x, dtype=np.float64)
    with np.errstate(over="ignore", invalid="ignore"):  # the inf and NaN cases
        if reverse:
            return np.flip(np.cumsum(np.flip(a, dim), axis=dim), dim).astype(x.dtype)
        return np.cumsum(a, axis=dim).astype(x.dtype)


def check(x, dim, reverse=False):
    y = _C.cumsum(x, dim, reverse)
    assert y.dtype == x.dtype and y.shape == x.shape
    np.testing.assert_array_equal(y, ref(x, dim, reverse))
    return y


def views(a):
    """a and views of it in the layouts the binding tells apart."""
    out = {"C": a}
    if a.ndim >= 2:
        out["transposed"] = a.T  # dense, F order: the result keeps it
        out["permuted"] = np.moveaxis(a, 0, -1)
        out["broadcast"] = np.broadcast_to(a[:1], a.shape)  # stride 0, read in place
    out["stepped"] = a[..., ::2]
    out["reversed"] = a[::-1]  # negative stride
    if a.ndim >= 3:
        out["stepped middle"] = a[:, ::2, :]  # dims that do not merge: copied
    return out


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(1,), (7,), (1000,), (4097,), (1, 7), (7, 1), (3, 7), (7, 1000), (1000, 7),
                                   (2, 3, 4097), (5, 1, 3), (4, 7, 9), (2, 3, 4, 5)])
@pytest.mark.parametrize("reverse", [False, True])
def test_matches_float64_reference_on_every_dim_and_layout(dtype, shape, reverse):
    rng = np.random.default_rng(sum(shape))
    a = rng.standard_normal(shape).astype(dtype)
    for name, v in views(a).items():
        for dim in range(-v.ndim, v.ndim):
            check(v, dim, reverse)


def test_dense_result_keeps_the_input_layout():
    a = np.random.default_rng(0).standard_normal((6, 5)).astype(np.float32)
    y = check(a.T, 0)
    assert y.flags.f_contiguous and y.strides == a.T.strides
    p = np.moveaxis(np.random.default_rng(1).standard_normal((3, 4, 5)), 0, 1)
    assert check(p, 2).strides == p.strides


def test_wide_column_blocks_and_threads_share_the_same_sums():
    # dim 0 of a matrix wider than one column block (kCols 2048), many short lines, a few long ones
    # (groups of 8, 4, 2 and 1 lines)
    rng = np.random.default_rng(2)
    for shape, dim in [((33, 5000), 0), ((3, 7, 2100), 1), ((2049, 3), 1), ((5, 70000), 1), ((15, 9000), 1)]:
        check(rng.standard_normal(shape).astype(np.float32), dim)


@pytest.mark.parametrize("dtype", DTYPES)
def test_nan_and_inf_propagate_as_in_a_sequential_sum(dtype):
    x = np.array([[1, np.nan, 2, 3], [np.inf, 1, -np.inf, 2], [1, 2, np.inf, 4], [-np.inf, 1, 2, 3]], dtype)
    for dim in (0, 1):
        for reverse in (False, True):
            y = _C.cumsum(x, dim, reverse)
            np.testing.assert_array_equal(y, ref(x, dim, reverse))  # NaN == NaN here
    big = np.finfo(dtype).max
    np.testing.assert_array_equal(_C.cumsum(np.array([big, big, -big], dtype), 0), ref(np.array([big, big, -big], dtype), 0))


def test_float32_sums_in_double_as_pytorch():
    x = np.array([1.0, 1e-8, 1e-8, 1e-8, -1.0], np.float32)
    y = _C.cumsum(x, 0)
    assert y[-1] == np.float32(3e-8) and np.cumsum(x)[-1] == 0  # float32's running sum loses them
    # a sum starts from +0, as PyTorch's: cumsum([-0.0]) is +0.0
    assert not np.signbit(_C.cumsum(np.array([-0.0, -0.0], np.float32), 0)).any()


@pytest.mark.parametrize("dtype", DTYPES)
def test_matches_torch_bit_for_bit(dtype):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    a = rng.standard_normal((300, 257)).astype(dtype)
    for v in (a, a.T, a[:, ::3]):
        for dim in (0, 1):
            np.testing.assert_array_equal(_C.cumsum(v, dim), torch.cumsum(torch.from_numpy(v.copy()), dim).numpy())
    x = rng.standard_normal(10**6).astype(dtype)
    np.testing.assert_array_equal(_C.cumsum(x, 0), torch.cumsum(torch.from_numpy(x), 0).numpy())
    xt = torch.from_numpy(a.copy()).requires_grad_()
    g = rng.standard_normal(a.shape).astype(dtype)
    for dim in (0, 1):
        xt.grad = None
        torch.cumsum(xt, dim).backward(torch.from_numpy(g))
        x = tg.tensor(a, requires_grad=True)
        tg.cumsum(x, dim).backward(tg.tensor(g))
        np.testing.assert_array_equal(x.grad.numpy(), xt.grad.numpy())


@pytest.mark.parametrize("dtype", DTYPES)
def test_identical_for_1_and_2_threads(dtype):
    rng = np.random.default_rng(4)
    cases = [(rng.standard_normal((700, 600)).astype(dtype), d) for d in (0, 1)]
    cases += [(rng.standard_normal((40, 3, 900)).astype(dtype), 1), (rng.standard_normal(200000).astype(dtype), 0)]
    before, res = tg.get_num_threads(), []
    try:
        for n in (1, 2):
            tg.set_num_threads(n)
            res.append([_C.cumsum(x, d, r) for x, d in cases for r in (False, True)])
    finally:
        tg.set_num_threads(before)
    for a, b in zip(*res):
        np.testing.assert_array_equal(a, b)


def test_empty_and_0d_through_the_op():
    assert tg.cumsum(tg.zeros(0, 3), 1).shape == (0, 3)
    assert tg.cumsum(tg.zeros(3, 0), 0).shape == (3, 0)
    assert _C.cumsum(np.zeros((0, 3), np.float32), 0).shape == (0, 3)
    y = tg.cumsum(tg.tensor(3.0), 0)
    assert y.shape == () and y.item() == 3.0
    x = tg.tensor(2.0, requires_grad=True)
    tg.cumsum(x, -1).backward()
    assert x.grad.item() == 1.0


def test_integer_inputs_keep_int64_accumulation():
    y = tg.cumsum(tg.tensor(np.array([2**31 - 1, 5], np.int32)), 0)
    assert y.dtype == tg.int64 and y.tolist() == [2**31 - 1, 2**31 + 4]
    assert tg.cumsum(tg.tensor([True, True, False]), 0).tolist() == [1, 2, 2]


def test_errors_name_the_op_and_shape():
    with pytest.raises(ValueError, match="cumsum: only float32 and float64"):
        _C.cumsum(np.zeros(3, np.int64), 0)
    with pytest.raises(ValueError, match=r"cumsum: dim 2 is out of range for an input of shape \(2, 3\)"):
        _C.cumsum(np.zeros((2, 3)), 2)
    with pytest.raises(ValueError, match=r"cumsum \(reverse\): expected an input of rank >= 1"):
        _C.cumsum(np.zeros(()), 0, True)


@pytest.mark.parametrize("dim", [0, 1, -1])
def test_gradients_and_double_backward(dim):
    rng = np.random.default_rng(5)
    x = tg.tensor(rng.standard_normal((4, 5)), requires_grad=True)
    assert gradcheck(lambda t: tg.cumsum(t, dim), (x,))
    assert gradcheck(lambda t: tg.cumsum(t.t(), dim), (x,))  # a transposed (F-order) input and gradient
    assert gradgradcheck(lambda t: tg.cumsum(t * t, dim), (x,))  # create_graph: the recorded composite
    assert gradgradcheck(lambda t: tg.cumprod(t, dim), (x,))


def test_first_order_gradient_is_the_reverse_scan():
    rng = np.random.default_rng(6)
    a = rng.standard_normal((3, 8)).astype(np.float32)
    g = rng.standard_normal((3, 8)).astype(np.float32)
    for dim in (0, 1):
        x = tg.tensor(a, requires_grad=True)
        tg.cumsum(x, dim).backward(tg.tensor(g))
        np.testing.assert_array_equal(x.grad.numpy(), ref(g, dim, reverse=True))
        x.grad = None
        tg.cumsum(x, dim).sum().backward()  # a broadcast (stride-0) gradient
        np.testing.assert_array_equal(x.grad.numpy(), ref(np.ones_like(a), dim, reverse=True))
