"""A Python list as an index, read as PyTorch 2.13 reads it: a list holding a sequence, a slice,
None, Ellipsis or a tensor is a tuple of indices (with PyTorch's deprecation warning), any other
list (of ints), or one of 32 items or more, is one index array. numpy since 1.23 reads every
list as one array, which gave ``x[[[0, 1], [1, 2]]]`` the shape (2, 2, 6) where PyTorch's is (2,)."""
import warnings

import numpy as np
import pytest

import tapegrad as tg


def _x():
    return tg.arange(24.0).reshape(4, 6)


@pytest.mark.parametrize("index, want", [
    ([[0, 1], [1, 2]], [1.0, 8.0]),
    ([0, slice(1, 3)], [1.0, 2.0]),
    ([[0, 1], 2], [2.0, 8.0]),
])
def test_list_of_sequences_is_a_tuple(index, want):
    with pytest.warns(UserWarning, match="non-tuple sequence for multidimensional indexing"):
        assert _x()[index].tolist() == want
    with pytest.warns(UserWarning, match="non-tuple sequence"):
        y = _x()
        y[index] = -1.0
    assert (y.numpy() == -1).sum() == len(want)


def test_lists_that_stay_one_index_array():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert _x()[[0, 2]].shape == (2, 6)
        long = list(range(4)) * 8  # 32 ints
        assert _x()[long].shape == (32, 6)
    with pytest.warns(UserWarning):
        assert _x()[[None, 1]].shape == (1, 6)
    with pytest.warns(UserWarning):
        assert _x()[[tg.tensor(1), tg.tensor(2)]].item() == 8.0


def test_gradient_through_a_list_index():
    x = _x().requires_grad_()
    with pytest.warns(UserWarning):
        y = x[[[0, 0], [1, 1]]]  # the same element twice: its gradient accumulates
    (y * tg.tensor([1.0, 2.0])).sum().backward()
    assert x.grad[0, 1].item() == 3.0 and x.grad.sum().item() == 3.0


def test_against_pytorch():
    torch = pytest.importorskip("torch")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for index in ([[0, 1], [1, 2]], [0, slice(1, 3)], [[0, 1], 2], [None, 1], [0, 2], list(range(4)) * 8,
                      [[1, 0, 3]], [Ellipsis, 1]):
            a = torch.arange(24.0).reshape(4, 6)[index]
            b = _x()[index]
            assert tuple(a.shape) == tuple(b.shape) and np.array_equal(a.numpy(), b.numpy()), index
