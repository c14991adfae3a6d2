"""Creation functions, PyTorch's dtype defaults, numpy interop, seeding."""
import numpy as np
import pytest

import tapegrad as tg


def test_tensor_defaults():
    assert tg.tensor([1.0, 2.0]).dtype == tg.float32
    assert tg.tensor([1, 2]).dtype == tg.int64
    assert tg.tensor(3.5).dtype == tg.float32 and tg.tensor(3.5).shape == ()
    assert tg.tensor([True, False]).dtype == tg.bool
    assert tg.tensor([1, 2], dtype=tg.float64).dtype == tg.float64
    assert tg.tensor(0.1, dtype=tg.float64).item() == 0.1  # no float32 rounding on the way
    t = tg.tensor([[1.0, 2.0]], requires_grad=True)
    assert t.requires_grad and t.is_leaf


def test_tensor_copies_and_from_numpy_shares():
    a = np.arange(4.0)
    t = tg.tensor(a)
    a[0] = 10
    assert t[0].item() == 0.0 and t.dtype == tg.float64  # numpy's dtype is kept
    s = tg.from_numpy(a)
    a[1] = 20
    assert s[1].item() == 20.0
    s.numpy()[2] = 30
    assert a[2] == 30
    with pytest.raises(TypeError):
        tg.from_numpy([1, 2])


def test_filled_and_ranges():
    assert tg.zeros(2, 3).shape == (2, 3) and tg.zeros((2, 3)).dtype == tg.float32
    assert tg.ones(2, dtype=tg.int64).tolist() == [1, 1]
    assert tg.full((2,), 7).dtype == tg.int64 and tg.full((2,), 7.0).dtype == tg.float32
    assert tg.full((1,), True).dtype == tg.bool
    assert tg.empty(3, 0).shape == (3, 0)
    assert tg.arange(5).tolist() == [0, 1, 2, 3, 4] and tg.arange(5).dtype == tg.int64
    assert tg.arange(0, 1, 0.25).dtype == tg.float32 and tg.arange(0, 1, 0.25).shape == (4,)
    np.testing.assert_allclose(tg.linspace(0, 1, 5).numpy(), [0, 0.25, 0.5, 0.75, 1])
    np.testing.assert_array_equal(tg.eye(2, 3).numpy(), np.eye(2, 3))
    with pytest.raises(RuntimeError, match="negative"):
        tg.zeros(-1)


def test_like_functions():
    x = tg.ones(2, 3, dtype=tg.float64)
    for f in (tg.zeros_like, tg.ones_like, tg.empty_like, tg.rand_like, tg.randn_like):
        y = f(x)
        assert y.shape == (2, 3) and y.dtype == tg.float64
    assert tg.full_like(x, 4.0).sum().item() == 24.0
    assert tg.zeros_like(x, dtype=tg.int64).dtype == tg.int64
    assert tg.randint_like(tg.zeros(3, dtype=tg.int64), 5).dtype == tg.int64


def test_random_creation_and_seed():
    tg.manual_seed(123)
    a = (tg.rand(3), tg.randn(2, 2), tg.randint(0, 10, (4,)), tg.randperm(5))
    tg.manual_seed(123)
    b = (tg.rand(3), tg.randn(2, 2), tg.randint(0, 10, (4,)), tg.randperm(5))
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x.numpy(), y.numpy())
    assert a[0].dtype == tg.float32 and a[2].dtype == tg.int64 and sorted(a[3].tolist()) == [0, 1, 2, 3, 4]
    assert 0 <= a[0].min().item() and a[0].max().item() < 1
    g = tg.Generator().manual_seed(7)
    r1 = tg.rand(3, generator=g)
    g.manual_seed(7)
    np.testing.assert_array_equal(r1.numpy(), tg.rand(3, generator=g).numpy())
    state = tg.get_rng_state()
    c = tg.randn(3)
    tg.set_rng_state(state)
    np.testing.assert_array_equal(c.numpy(), tg.randn(3).numpy())


def test_device_arguments():
    assert tg.zeros(2, device="cpu").device == tg.device("cpu")
    with pytest.raises(RuntimeError, match="CPU only"):
        tg.zeros(2, device="cuda")


def test_factories_take_size_out_layout_and_pin_memory_keywords():
    # gat's ``torch.empty(size=(in_features, n))``, and the out=/layout=/pin_memory= keywords
    # every PyTorch factory takes
    for f in (tg.zeros, tg.ones, tg.empty, tg.rand, tg.randn):
        assert f(size=(2, 3)).shape == (2, 3) and f(size=[4]).shape == (4,)
        assert f(2, layout=tg.strided, pin_memory=False).shape == (2,)
        with pytest.raises(TypeError, match="size"):
            f(2, size=(2,))
    o = tg.empty(0, dtype=tg.int64)
    assert tg.zeros(2, 3, out=o) is o and o.shape == (2, 3) and o.dtype == tg.int64  # out's dtype kept
    assert tg.ones(2, out=o).tolist() == [1, 1] and tg.full((3,), 7, out=o).tolist() == [7, 7, 7]
    d = tg.empty(0, dtype=tg.float64)
    assert tg.arange(3, out=d).tolist() == [0.0, 1.0, 2.0] and d.dtype == tg.float64
    assert tg.eye(2, out=d).tolist() == [[1, 0], [0, 1]] and tg.linspace(0, 1, 3, out=d).tolist() == [0, 0.5, 1]
    assert tg.randn(4, out=d) is d and d.shape == (4,) and tg.randperm(3, out=o).dtype == tg.int64
    assert tg.randint(0, 3, (5,), out=o).shape == (5,)
    assert tg.empty(2, 3, memory_format=tg.contiguous_format).shape == (2, 3)
    assert tg.logspace(0, 2, 3, out=d).tolist() == [1.0, 10.0, 100.0] and d.dtype == tg.float64
    w = tg.normal(0, 0.01, size=(3, 2), requires_grad=True)  # d2l's from-scratch parameters
    assert w.shape == (3, 2) and w.requires_grad and w.is_leaf and w.dtype == tg.float32
    assert tg.normal(0.0, tg.ones(2, dtype=tg.float64)).dtype == tg.float64  # a tensor std sets the dtype
    assert tg.normal(2.0, 3.0, (4,), out=d) is d and d.shape == (4,)
    with pytest.raises(TypeError, match="layout"):
        tg.zeros(2, layout=tg.sparse_coo)
    with pytest.raises(RuntimeError, match="pin_memory"):
        tg.tensor([1.0], pin_memory=True)


@pytest.mark.parametrize("call, error, message", [
    (lambda: tg.ones(2.5), TypeError, r"ones\(\): argument 'size' must be a tuple of ints.*float"),
    (lambda: tg.zeros((2, 2.5)), TypeError, r"zeros\(\): argument 'size'"),
    (lambda: tg.empty(float("nan")), TypeError, r"empty\(\): argument 'size'"),
    (lambda: tg.randn(-3), RuntimeError, "randn: Trying to create tensor with negative dimension"),
    (lambda: tg.empty(2 ** 31, 2 ** 31), RuntimeError, r"empty: a tensor of shape \(2147483648, 2147483648\)"),
    (lambda: tg.ones(2 ** 63), RuntimeError, r"ones: Storage size calculation overflowed with sizes=\[9223372036854775808\]"),
    (lambda: tg.full((2,), float("nan"), dtype=tg.int64), RuntimeError, "full: value cannot be converted"),
    (lambda: tg.full((2,), 2 ** 70), RuntimeError, "full: value cannot be converted"),
    (lambda: tg.randperm(-1), RuntimeError, "randperm: n must be a non-negative integer"),
    (lambda: tg.bernoulli(tg.tensor([0.5, 2.0])), RuntimeError, r"bernoulli: .*\[0, 1\].*p=2.0"),
    (lambda: tg.bernoulli(tg.tensor([float("nan")])), RuntimeError, r"bernoulli: .*p=nan"),
    (lambda: tg.ones(3).bernoulli_(1.5), RuntimeError, r"bernoulli_: .*p=1.5"),
    (lambda: tg.ones(3).bernoulli_(tg.tensor(-0.5)), RuntimeError, r"bernoulli_: .*p=-0.5"),
    (lambda: tg.normal(0.0, -1.0, (3,)), RuntimeError, "normal expects std >= 0.0"),
    (lambda: tg.normal(tg.zeros(2), tg.tensor([1.0, -1.0])), RuntimeError, "normal expects std >= 0.0"),
    (lambda: tg.ones(3).uniform_(2, 1), RuntimeError, r"uniform_ expects .*from=2 > to=1"),
    (lambda: tg.ones(3).exponential_(-1), RuntimeError, "exponential_ expects lambda > 0.0"),
    (lambda: tg.ones(3).random_(5, 2), RuntimeError, "random_ expects 'from' to be less than 'to'"),
    (lambda: tg.multinomial(tg.tensor([0.0, 0.0]), 1), RuntimeError, r"multinomial: .*sum of probabilities <= 0"),
    (lambda: tg.multinomial(tg.tensor([1.0, float("inf")]), 1), RuntimeError, "multinomial: .*`inf`, `nan`"),
    (lambda: tg.multinomial(tg.tensor([1.0, -1.0]), 1), RuntimeError, "multinomial: .*element < 0"),
    (lambda: tg.multinomial(tg.tensor([1.0, 1.0]), 3), RuntimeError, "multinomial: cannot sample n_sample=3"),
    (lambda: tg.multinomial(tg.tensor([1.0, 0.0]), 2), RuntimeError, "multinomial: .*fewer than num_samples=2"),
])
def test_bad_sizes_and_distribution_parameters_raise_naming_the_op(call, error, message):
    """A float size, an impossible allocation or a probability outside [0, 1] raises naming the
    op, where it used to truncate (ones(2.5) gave 2 elements), sample garbage (bernoulli(2.0)
    gave 1, normal(std=-1) negated the noise, randperm(-1) gave an empty tensor) or surface
    numpy's message."""
    with pytest.raises(error, match=message):
        call()


def test_valid_sizes_and_probabilities_still_work():
    assert tg.zeros(tg.tensor(3)).shape == (3,) and tg.zeros(np.int64(2), 3).shape == (2, 3)
    assert tg.normal(0.0, 1.0, size=[2, 3]).shape == (2, 3) and tg.full([2], 1.5).tolist() == [1.5, 1.5]
    assert tg.bernoulli(tg.tensor([0.0, 1.0])).tolist() == [0.0, 1.0]
    assert tg.ones(2).bernoulli_(tg.tensor([1.0, 0.0])).tolist() == [1.0, 0.0]
    assert tg.multinomial(tg.tensor([0.0, 1.0]), 3, replacement=True).tolist() == [1, 1, 1]
    assert sorted(tg.multinomial(tg.tensor([[1.0, 2.0, 0.0]]), 2).tolist()[0]) == [0, 1]
    assert tg.randperm(0).shape == (0,)
