"""bitwise_not: the op added by one declaration (CONTRIBUTING.md, "Adding an op"), checked on
every surface the declaration gives it, with PyTorch's semantics."""
import inspect

import numpy as np
import pytest

import tapegrad as tg


@pytest.mark.parametrize("dtype", [tg.int8, tg.uint8, tg.int16, tg.int32, tg.int64])
def test_integers_get_their_bitwise_complement_in_their_own_dtype(dtype):
    values = np.array([0, 1, 5, 100, 127], dtype=dtype)
    out = tg.bitwise_not(tg.tensor(values, dtype=dtype))
    assert out.dtype == dtype
    np.testing.assert_array_equal(out.numpy(), np.invert(values))


def test_bools_get_logical_not():
    out = tg.bitwise_not(tg.tensor([True, False, True]))
    assert out.dtype == tg.bool
    assert out.tolist() == [False, True, False]


@pytest.mark.parametrize("dtype", [tg.float16, tg.float32, tg.float64])
def test_floats_raise_naming_the_op_and_dtype(dtype):
    x = tg.ones(2, dtype=dtype)
    for call in (lambda: tg.bitwise_not(x), lambda: x.bitwise_not(), lambda: ~x, lambda: x.clone().bitwise_not_()):
        with pytest.raises(NotImplementedError, match=r"bitwise_not: .*float"):
            call()


def test_method_operator_and_function_agree():
    x = tg.tensor([[3, -4], [0, 7]])
    expected = [[-4, 3], [-1, -8]]
    assert tg.bitwise_not(x).tolist() == expected
    assert x.bitwise_not().tolist() == expected
    assert (~x).tolist() == expected


def test_in_place_form_writes_self_and_bumps_its_version():
    x = tg.tensor([1, 2, 3])
    before = x._version
    assert x.bitwise_not_() is x
    assert x.tolist() == [-2, -3, -4]
    assert x._version == before + 1
    y = tg.tensor([1, 2])
    assert tg.bitwise_not_(y) is y and y.tolist() == [-2, -3]


def test_out_writes_into_the_given_tensor():
    out = tg.zeros(3, dtype=tg.int64)
    result = tg.bitwise_not(tg.tensor([0, 1, 2]), out=out)
    assert result is out
    assert out.tolist() == [-1, -2, -3]


def test_one_function_object_with_its_signature_and_docstring():
    assert tg.bitwise_not is tg.ops.bitwise_not
    assert tg.Tensor.bitwise_not is tg.ops.comparison.bitwise_not
    assert "NOT" in tg.Tensor.bitwise_not.__doc__
    assert list(inspect.signature(tg.bitwise_not).parameters) == ["input", "out"]
    assert list(inspect.signature(tg.Tensor.bitwise_not_).parameters) == ["input"]


def test_matches_torch():
    torch = pytest.importorskip("torch")
    values = [[0, 1, -1], [127, -128, 5]]
    for dtype, tdtype in ((tg.int8, torch.int8), (tg.int64, torch.int64), (tg.uint8, torch.uint8)):
        v = np.array(values).astype(dtype)
        got = tg.bitwise_not(tg.tensor(v, dtype=dtype)).numpy()
        want = torch.bitwise_not(torch.tensor(v, dtype=tdtype)).numpy()
        np.testing.assert_array_equal(got, want)
    b = [True, False]
    assert tg.bitwise_not(tg.tensor(b)).tolist() == torch.bitwise_not(torch.tensor(b)).tolist()
    with pytest.raises(NotImplementedError):
        torch.bitwise_not(torch.ones(2))
