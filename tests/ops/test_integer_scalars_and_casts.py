"""Python ints beside integer tensors, and what in-place ops and out= may cast to.

PyTorch wraps an out-of-range number into the tensor's dtype without a word (``uint8 + (-1)``
adds 255, ``uint8 < -1`` is True everywhere, ``int8 == 257`` matches 1). tapegrad raises for
arithmetic, naming the op and the range, and answers comparisons as the numbers compare. True
division takes the tensor into floats first, as PyTorch does, so ``uint8 / -1`` is ``-x``. The
cast rule of in-place ops and ``out=`` is PyTorch's: never down a category (bool < integer <
floating < complex), any width or signedness within one."""
import numpy as np
import pytest

import tapegrad as tg

DTYPES = ["bool", "uint8", "int8", "int16", "int32", "int64", "float16", "bfloat16", "float32", "float64",
          "complex64", "complex128"]


@pytest.mark.parametrize("op", [lambda x: x + (-1), lambda x: x - 300, lambda x: x * -1, lambda x: -1 + x,
                                lambda x: x.add_(-1), lambda x: x & 256, lambda x: x // -1])
def test_arithmetic_with_an_out_of_range_number_raises(op):
    x = tg.tensor([0, 1, 200], dtype=tg.uint8)
    with pytest.raises(RuntimeError, match=r"the number -?\d+ is out of the range of the tensor's dtype "
                                           r"tapegrad.uint8 \(\[0, 255\]\); PyTorch would wrap it"):
        op(x)
    assert x.tolist() == [0, 1, 200]  # an in-place op left it alone
    with pytest.raises(RuntimeError, match=r"add: the number 1099511627776 is out of the range .*int32"):
        tg.tensor([1], dtype=tg.int32) + 2 ** 40


def test_comparisons_with_an_out_of_range_number_are_exact():
    x = tg.tensor([0, 1, 200, 255], dtype=tg.uint8)
    assert (x < -1).tolist() == [False] * 4 and (x > -1).tolist() == [True] * 4
    assert (x >= -1).tolist() == [True] * 4 and (x <= -1).tolist() == [False] * 4
    assert (x == -1).tolist() == [False] * 4 and (x != -1).tolist() == [True] * 4  # 255 is not -1
    assert (-1 < x).tolist() == [True] * 4 and (300 == x).tolist() == [False] * 4
    i8 = tg.tensor([1, 2], dtype=tg.int8)
    assert (i8 == 257).tolist() == [False, False] and i8.lt(300).tolist() == [True, True]
    assert tg.ge(i8, -129).tolist() == [True, True]
    assert (x < 5).tolist() == [True, True, False, False]  # in range: the usual path


def test_true_division_of_integers_by_a_number_is_in_floats():
    x = tg.tensor([0, 1, 200], dtype=tg.uint8)
    assert (x / -1).tolist() == [-0.0, -1.0, -200.0] and (x / -1).dtype == tg.float32
    np.testing.assert_allclose((x / 300).numpy(), np.array([0, 1, 200]) / 300, rtol=1e-6)
    np.testing.assert_allclose((-1 / (x + 1)).numpy(), -1 / np.array([1.0, 2.0, 201.0]), rtol=1e-6)
    assert (tg.tensor([True, False]) / 2).tolist() == [0.5, 0.0]
    assert (tg.tensor([3, 4]) / 2).tolist() == [1.5, 2.0]


def _pytorch_can_cast(a, b):
    order = {"b": 0, "u": 1, "i": 1, "f": 2, "c": 3}
    kind = lambda d: "f" if d == "bfloat16" else np.dtype(d).kind  # noqa: E731
    return order[kind(a)] <= order[kind(b)]


@pytest.mark.parametrize("src", DTYPES)
def test_can_cast_is_pytorchs_rule(src):
    for dst in DTYPES:
        assert tg.can_cast(getattr(tg, src), getattr(tg, dst)) == _pytorch_can_cast(src, dst), (src, dst)


def test_in_place_and_out_cast_within_a_category():
    x = tg.tensor([1, 2], dtype=tg.uint8)
    x.sub_(tg.tensor([3, 4], dtype=tg.int8))  # int8 -> uint8: numpy's same_kind refuses, PyTorch wraps
    assert x.tolist() == [254, 254] and x.dtype == tg.uint8
    x.add_(tg.tensor([1, 1]))  # int64 result into uint8
    assert x.tolist() == [255, 255]
    out = tg.empty(2, dtype=tg.uint8)
    assert tg.add(tg.tensor([1, 2]), tg.tensor([300, 4]), out=out) is out and out.tolist() == [45, 6]
    with pytest.raises(RuntimeError, match=r"add\(\): result type tapegrad.float32 can't be cast to the desired "
                                           r"output type tapegrad.int64"):
        tg.add(tg.tensor([1.5]), 1, out=tg.empty(1, dtype=tg.int64))
    with pytest.raises(RuntimeError, match="mul_: result type tapegrad.float32 can't be cast"):
        tg.tensor([1, 2]).mul_(1.5)


def test_against_pytorch():
    torch = pytest.importorskip("torch")
    for lib_cases in [
        lambda L: L.tensor([0, 1, 200], dtype=L.uint8) / -1,
        lambda L: L.tensor([1, 2], dtype=L.uint8).sub_(L.tensor([3, 4], dtype=L.int8)),
        lambda L: L.add(L.tensor([1, 2]), L.tensor([300, 4]), out=L.empty(2, dtype=L.uint8)),
        lambda L: L.tensor([5, 7], dtype=L.int16).floor_divide_(L.tensor([2, 3])),
    ]:
        a, b = lib_cases(torch), lib_cases(tg)
        assert str(a.dtype).split(".")[-1] == str(b.dtype).split(".")[-1] and a.tolist() == b.tolist()
    for src in DTYPES:
        for dst in DTYPES:
            assert tg.can_cast(getattr(tg, src), getattr(tg, dst)) == torch.can_cast(getattr(torch, src),
                                                                                      getattr(torch, dst))


@pytest.mark.parametrize("data, dtype", [([256], "uint8"), ([-256], "uint8"), ([-129], "int8"), ([1e10], "int32"),
                                         ([-1.5], "uint8"), ([-0.5], "uint8"), ([127.9], "int8"),
                                         (float("nan"), "int32"), ([float("inf")], "int64"), ([300], "int8")])
def test_tensor_refuses_numbers_that_do_not_fit_the_dtype(data, dtype):
    """numpy's astype wrapped them (300 -> 44 in int8) and made NaN the smallest integer."""
    with pytest.raises(RuntimeError, match=f"tensor: value .* cannot be converted to type tapegrad.{dtype} "
                                           f"without overflow"):
        tg.tensor(data, dtype=getattr(tg, dtype))


def test_tensor_takes_what_pytorch_takes():
    assert tg.tensor([-1, -2], dtype=tg.uint8).tolist() == [255, 254]  # two's complement, as PyTorch
    assert tg.tensor([-128, 127], dtype=tg.int8).tolist() == [-128, 127]
    assert tg.tensor([2.5e9], dtype=tg.int64).tolist() == [2500000000]
    assert tg.tensor([1.7, -1.7], dtype=tg.int32).tolist() == [1, -1]
    assert tg.tensor(np.array([300]), dtype=tg.int8).tolist() == [44]  # an array converts as .to() does
    assert tg.tensor(2 ** 63 - 1).item() == 2 ** 63 - 1
    with pytest.raises(RuntimeError, match="value 9223372036854775808 cannot be converted to type tapegrad.int64"):
        tg.tensor(2 ** 63)


def test_tensor_ranges_against_pytorch():
    torch = pytest.importorskip("torch")
    for data, dtype in [([256], "uint8"), ([-1], "uint8"), ([-2], "uint8"), ([-256], "uint8"), ([-129], "int8"),
                        ([-128], "int8"), ([1e10], "int32"), ([-1.5], "uint8"), ([-0.5], "uint8"), ([127.9], "int8"),
                        ([128.0], "int8"), ([-128.9], "int8"), (float("nan"), "int32")]:
        try:
            want = torch.tensor(data, dtype=getattr(torch, dtype)).tolist()
        except RuntimeError:
            want = RuntimeError
        if want is RuntimeError:
            with pytest.raises(RuntimeError):
                tg.tensor(data, dtype=getattr(tg, dtype))
        else:
            assert tg.tensor(data, dtype=getattr(tg, dtype)).tolist() == want, (data, dtype)


def test_setitem_of_a_number():
    """x[i] = number takes a short path (numpy's assignment into x's memory): the same values,
    version bump and errors as the general one, PyTorch's classes."""
    x = tg.zeros(2, 3, dtype=tg.int32)
    v0 = x._version
    x[0, 1:] = 2.7  # truncated, as PyTorch
    x[..., 0] = True
    x[None, 1] = -1
    assert x.tolist() == [[1, 2, 2], [-1, -1, -1]] and x._version == v0 + 3
    view = x[1]
    view[0] = 7  # through a view: the base sees it and both versions move
    assert x[1, 0].item() == 7 and x._version == view._version
    with pytest.raises(RuntimeError, match="setitem: value 300 cannot be converted to type tapegrad.int8"):
        tg.zeros(3, dtype=tg.int8)[0] = 300
    with pytest.raises(RuntimeError, match="setitem: value nan cannot be converted to type tapegrad.int32"):
        tg.zeros(3, dtype=tg.int32)[0] = float("nan")
    with pytest.raises(IndexError, match=r"index 5 is invalid for a tensor of shape \(3,\)"):
        tg.zeros(3)[5] = 1.0
    with pytest.raises(RuntimeError, match="read-only"):
        tg.zeros(3).expand(2, 3)[0] = 1.0
    leaf = tg.zeros(3, requires_grad=True)
    with pytest.raises(RuntimeError, match="leaf Variable that requires grad"):
        leaf[0] = 1.0
    with tg.no_grad():
        leaf[0] = 1.0
    assert leaf.tolist() == [1.0, 0.0, 0.0]
    y = leaf * 2
    y[1] = 5.0  # recorded: the gradient skips the overwritten element
    y.sum().backward()
    assert leaf.grad.tolist() == [2.0, 0.0, 2.0]
