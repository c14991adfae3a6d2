"""Edge cases a differential sweep against PyTorch 2.13 turned up: int arguments given as 0-d
integer tensors (PyTorch's parser takes anything with ``__index__``), and the dtypes of a few
integer and empty cases. Expected values are PyTorch's, written out so the tests run without it."""
import warnings

import numpy as np
import pytest

import tapegrad as tg


def test_zero_d_integer_tensor_is_an_int_argument():
    assert tg.ones(2, 3).sum(tg.tensor(1)).tolist() == [3.0, 3.0]
    assert tg.ones(2, 3).softmax(tg.tensor(-1)).shape == (2, 3)
    np.testing.assert_allclose(tg.hann_window(tg.tensor(4)).numpy(), [0.0, 0.5, 1.0, 0.5], atol=1e-7)
    assert tg.kaiser_window(np.int32(5)).shape == (5,)
    np.testing.assert_allclose(tg.polygamma(tg.tensor(1), tg.tensor([1.0])).numpy(), [np.pi ** 2 / 6], rtol=1e-6)


@pytest.mark.parametrize("bad", [True, 1.0, np.float64(1.0), tg.tensor(1.0), tg.tensor([1, 2]), "1"])
def test_dim_rejects_what_is_not_an_int(bad):
    with pytest.raises(TypeError, match=r"sum: argument 'dim' must be an int, got"):
        tg.ones(2, 3).sum(bad)


def test_window_length_rejects_floats_and_negatives():
    with pytest.raises(TypeError, match="hann_window: argument 'window_length' must be an int, got float"):
        tg.hann_window(4.0)
    with pytest.raises(RuntimeError, match="hann_window: requires non-negative window_length, got window_length=-1"):
        tg.hann_window(tg.tensor(-1))


def test_split_takes_a_one_element_tensor_as_the_size():
    assert [t.tolist() for t in tg.split(tg.arange(5), tg.tensor(2))] == [[0, 1], [2, 3], [4]]
    assert [t.tolist() for t in tg.arange(5).split(tg.tensor([2]))] == [[0, 1], [2, 3], [4]]
    assert [t.tolist() for t in tg.split(tg.arange(5), tg.tensor([2, 3]))] == [[0, 1], [2, 3, 4]]


def test_chain_matmul_of_one_and_of_no_matrices():
    x = tg.randn(2, 3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        y = tg.chain_matmul(x)
        assert y is not x and np.array_equal(y.numpy(), x.numpy())
        y[0, 0] = 100.0
        assert x[0, 0].item() != 100.0  # a copy, as PyTorch's
        with pytest.raises(RuntimeError, match="chain_matmul"):
            tg.chain_matmul()
        with pytest.raises(RuntimeError, match=r"chain_matmul\(\): expected a matrix, got shape \(3,\)"):
            tg.chain_matmul(tg.ones(3))


def test_integer_and_empty_dtypes_as_pytorch():
    i32 = tg.tensor([1, 2], dtype=tg.int32)
    assert tg.vander(i32).dtype == tg.int64
    assert tg.vander(tg.tensor([True, False])).dtype == tg.int64
    assert tg.vander(tg.tensor([1, 2], dtype=tg.uint8)).tolist() == [[1, 1], [2, 1]]
    assert tg.vander(tg.tensor([1.0, 2.0])).dtype == tg.float32
    assert tg.repeat_interleave(i32).dtype == tg.int32
    assert tg.repeat_interleave(i32).tolist() == [0, 1, 1]
    assert tg.trapezoid(tg.zeros(0, dtype=tg.int32)).dtype == tg.int32
    assert tg.trapezoid(tg.zeros(2, 0, 3), dim=1).shape == (2, 3)
    assert tg.trapezoid(i32).dtype == tg.float32
    assert tg.cumulative_trapezoid(tg.zeros(0, dtype=tg.int32)).dtype == tg.float32
    assert tg.cumulative_trapezoid(tg.zeros(0)).dtype == tg.float32


@pytest.mark.parametrize("op", ["trapezoid", "cumulative_trapezoid"])
def test_trapezoid_rejects_bool(op):
    with pytest.raises(RuntimeError, match=f"{op}: received a bool input for `y`, but bool is not supported"):
        getattr(tg, op)(tg.tensor([True, False]))


def test_against_pytorch():
    torch = pytest.importorskip("torch")
    cases = [
        lambda L: L.vander(L.tensor([1, 2, 3], dtype=L.int32)),
        lambda L: L.repeat_interleave(L.tensor([2, 0, 1], dtype=L.int32)),
        lambda L: L.trapezoid(L.zeros(0, dtype=L.int32)),
        lambda L: L.cumulative_trapezoid(L.zeros(3, 0, dtype=L.int32)),
        lambda L: L.hamming_window(L.tensor(6)),
        lambda L: L.ones(2, 3, 4).sum(L.tensor(2)),
        lambda L: L.split(L.arange(7), L.tensor(3))[-1],
    ]
    for f in cases:
        a, b = f(torch), f(tg)
        assert str(a.dtype).split(".")[-1] == str(b.dtype).split(".")[-1]
        np.testing.assert_allclose(b.numpy(), a.numpy(), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("make, want", [
    (lambda: [np.float64(1), 2], "float64"), (lambda: [1, np.float64(2)], "float64"),
    (lambda: [[np.float64(1)], [2.0]], "float64"), (lambda: [np.float32(1), 2.0], "float32"),
    (lambda: [np.float16(1), 2], "float16"), (lambda: [np.float16(1), 2.0], "float32"),
    (lambda: [np.int64(3), 2.5], "float32"), (lambda: [np.int32(1), 2], "int64"), (lambda: [1.5, 2.5], "float32"),
    (lambda: [tg.tensor(1.0, dtype=tg.float64), tg.tensor(2.0, dtype=tg.float64)], "float64"),
    (lambda: [tg.tensor(1.0, dtype=tg.float16), 2], "float16"), (lambda: [tg.tensor(1.0), np.float64(2)], "float64"),
    (lambda: [(1.0, 2.0), (3.0, 4.0)], "float32"),
])
def test_tensor_infers_the_dtype_of_typed_items(make, want):
    """A list's numpy float scalars and tensors carry their dtype into tensor(), as in PyTorch
    (``tensor([np.mean(a), np.std(a)])`` is float64 there); Python floats count as the default."""
    assert tg.tensor(make()).dtype == getattr(tg, want)


def test_tensor_dtype_inference_against_pytorch():
    torch = pytest.importorskip("torch")
    for data in ([np.float64(1), 2], [np.float16(1), 2.0], [[np.float64(1)], [2.0]], [np.int64(3), 2.5], [1, 2]):
        assert str(torch.tensor(data).dtype).split(".")[-1] == str(tg.tensor(data).dtype).split(".")[-1]
