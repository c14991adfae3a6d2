"""Names added to close gaps that scripts/api_coverage.py measured: in-place and method forms of
existing ops, memory formats and layouts, ``Size`` checks, ``view(dtype=)``, ``randint_like``'s
forms. Compared with PyTorch when it is installed."""
import pickle

import numpy as np
import pytest

import tapegrad as tg

# (in-place name, input values in the op's domain, extra arguments)
UNARY_INPLACE = [
    ("acos_", [0.1, -0.5, 0.9]), ("arccos_", [0.1, -0.5, 0.9]), ("asin_", [0.1, -0.5]), ("arcsin_", [0.3]),
    ("atan_", [0.1, 3.0]), ("arctan_", [-2.0]), ("acosh_", [1.5, 3.0]), ("arccosh_", [2.0]),
    ("asinh_", [-1.0, 2.0]), ("arcsinh_", [0.5]), ("atanh_", [0.1, -0.7]), ("arctanh_", [0.2]),
    ("sinh_", [0.5, -1.0]), ("cosh_", [0.5, -1.0]), ("exp2_", [0.5, 3.0]), ("log2_", [0.5, 3.0]),
    ("log10_", [0.5, 300.0]), ("erfc_", [0.5, -1.0]), ("erfinv_", [0.5, -0.9]), ("lgamma_", [0.5, 3.0]),
    ("digamma_", [0.5, 3.0]), ("sinc_", [0.0, 0.5, 2.5]), ("negative_", [1.0, -2.0]),
    ("absolute_", [1.0, -2.0]), ("sgn_", [1.0, -2.0, 0.0]), ("logit_", [0.2, 0.9]),
]
BINARY_INPLACE = [
    ("atan2_", [1.0, -2.0], [0.5, -3.0]), ("arctan2_", [1.0], [2.0]), ("hypot_", [3.0, 1.0], [4.0, 2.0]),
    ("heaviside_", [-1.0, 0.0, 2.0], [0.5, 0.5, 0.5]), ("float_power_", [2.0, 3.0], [0.5, 2.0]),
    ("floor_divide_", [7.0, -7.0], [2.0, 2.0]), ("divide_", [7.0, 1.0], [2.0, 4.0]),
    ("true_divide_", [7.0], [2.0]), ("multiply_", [7.0], [2.0]), ("subtract_", [7.0], [2.0]),
    ("greater_", [1.0, 3.0], [2.0, 2.0]), ("less_", [1.0, 3.0], [2.0, 2.0]),
    ("greater_equal_", [2.0, 3.0], [2.0, 4.0]), ("less_equal_", [2.0, 3.0], [2.0, 4.0]),
    ("not_equal_", [2.0, 3.0], [2.0, 4.0]), ("logical_and_", [0.0, 3.0, 1.0], [2.0, 4.0, 0.0]),
    ("logical_or_", [0.0, 3.0, 0.0], [0.0, 4.0, 1.0]), ("logical_xor_", [0.0, 3.0, 1.0], [2.0, 4.0, 0.0]),
]


@pytest.mark.parametrize("name,values", UNARY_INPLACE, ids=[c[0] for c in UNARY_INPLACE])
def test_unary_in_place_forms_write_the_ops_result(name, values):
    x = tg.tensor(values, dtype=tg.float64)
    expected = getattr(tg, name[:-1])(x)
    v = x._version
    assert getattr(x, name)() is x and x._version == v + 1
    np.testing.assert_allclose(x.numpy(), expected.numpy(), rtol=1e-12, equal_nan=True)
    y = tg.tensor(values, dtype=tg.float64)
    getattr(tg, name)(y)
    np.testing.assert_array_equal(y.numpy(), x.numpy())
    torch = pytest.importorskip("torch")
    t = torch.tensor(values, dtype=torch.float64)
    getattr(t, name)()
    np.testing.assert_allclose(x.numpy(), t.numpy(), rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("name,a,b", BINARY_INPLACE, ids=[c[0] for c in BINARY_INPLACE])
def test_binary_in_place_forms_write_the_ops_result(name, a, b):
    x, y = tg.tensor(a, dtype=tg.float64), tg.tensor(b, dtype=tg.float64)
    assert getattr(x, name)(y) is x and x.dtype == tg.float64
    torch = pytest.importorskip("torch")
    t = torch.tensor(a, dtype=torch.float64)
    getattr(t, name)(torch.tensor(b, dtype=torch.float64))
    np.testing.assert_allclose(x.numpy(), t.numpy(), rtol=1e-12)


def test_in_place_form_on_a_graph_is_differentiable():
    a = tg.tensor([0.2, 0.5], dtype=tg.float64, requires_grad=True)
    y = a * 1
    y.asin_()
    y.sum().backward()
    np.testing.assert_allclose(a.grad.numpy(), 1 / np.sqrt(1 - np.array([0.2, 0.5]) ** 2))
    with pytest.raises(RuntimeError, match="in-place"):
        a.asin_()  # a leaf that requires grad


def test_new_method_forms_match_the_functions():
    x = tg.tensor([[1.0, 2.0], [3.0, 5.0]], dtype=tg.float64)
    np.testing.assert_array_equal(x.fliplr().numpy(), tg.fliplr(x).numpy())
    np.testing.assert_array_equal(x.flipud().numpy(), tg.flipud(x).numpy())
    np.testing.assert_array_equal(x.argwhere().numpy(), tg.argwhere(x).numpy())
    np.testing.assert_array_equal(x.diagflat().numpy(), tg.diagflat(x).numpy())
    np.testing.assert_allclose(x.logdet().item(), np.log(np.linalg.det(x.numpy())))
    np.testing.assert_allclose(x.slogdet()[1].item(), np.log(abs(np.linalg.det(x.numpy()))))
    np.testing.assert_allclose(x.pinverse().numpy(), np.linalg.pinv(x.numpy()))
    assert x.greater(2).tolist() == [[False, False], [True, True]]
    assert x.arcsinh().tolist() == tg.asinh(x).tolist()
    v = tg.tensor([1.0, 2.0])
    assert v.vdot(v).item() == 5.0
    assert tg.ones(2).addmv(tg.ones(2, 4), tg.ones(4)).tolist() == [5.0, 5.0]
    assert tg.ones(2).addmv_(tg.ones(2, 4), tg.ones(4)).tolist() == [5.0, 5.0]
    assert tg.ones(2, 2).addr_(tg.ones(2), tg.ones(2)).tolist() == [[2.0, 2.0], [2.0, 2.0]]
    assert tg.ones(2, 2).addbmm_(tg.ones(3, 2, 4), tg.ones(3, 4, 2)).tolist() == [[13.0, 13.0], [13.0, 13.0]]
    assert tg.tensor([1.0, 2.0, 3.0]).cumprod_(0).tolist() == [1.0, 2.0, 6.0]


def test_swapaxes_swapdims_in_place_change_the_shape():
    x = tg.zeros(2, 3, 4)
    assert x.swapaxes_(0, 2) is x and x.shape == (4, 3, 2)
    assert x.swapdims_(0, 1).shape == (3, 4, 2)
    a = tg.ones(2, 3, requires_grad=True)
    y = a * 2
    y.swapdims_(0, 1)
    assert y.shape == (3, 2)
    (y * tg.arange(6.0).reshape(3, 2)).sum().backward()
    assert a.grad.tolist() == [[0.0, 4.0, 8.0], [2.0, 6.0, 10.0]]


# ---------------------------------------------------------------- memory formats and layouts
def test_memory_formats_are_accepted_where_pytorch_takes_them():
    x = tg.arange(24.0).reshape(1, 2, 3, 4)
    for fmt in (tg.contiguous_format, tg.preserve_format, tg.channels_last):
        assert isinstance(fmt, tg.memory_format)
        assert tg.equal(x.to(memory_format=fmt), x)
        for like in (tg.zeros_like, tg.ones_like, tg.empty_like, tg.rand_like, tg.randn_like):
            assert like(x, memory_format=fmt).shape == x.shape
        assert tg.full_like(x, 2.0, memory_format=fmt).shape == x.shape
        assert tg.randint_like(x, 5, memory_format=fmt).shape == x.shape
    assert tg.equal(x.contiguous(memory_format=tg.channels_last), x)
    assert x.contiguous(memory_format=tg.contiguous_format) is x
    assert x.is_contiguous() and x.is_contiguous(memory_format=tg.contiguous_format)
    assert not x.is_contiguous(memory_format=tg.channels_last)
    assert x.permute(0, 2, 3, 1).contiguous().permute(0, 3, 1, 2).is_contiguous(memory_format=tg.channels_last)
    assert tg.zeros(1, 2, 3, 4, 5).to(memory_format=tg.channels_last_3d).shape == (1, 2, 3, 4, 5)
    assert tg.zeros_like(x, layout=tg.strided).shape == x.shape
    assert repr(tg.channels_last) == "tapegrad.channels_last" and repr(tg.strided) == "tapegrad.strided"
    assert pickle.loads(pickle.dumps(tg.channels_last)) is tg.channels_last
    assert pickle.loads(pickle.dumps(tg.strided)) is tg.strided


def test_memory_format_errors():
    x = tg.zeros(2, 3)
    with pytest.raises(RuntimeError, match="rank 4"):
        x.to(memory_format=tg.channels_last)
    with pytest.raises(RuntimeError, match="rank 4"):
        x.contiguous(memory_format=tg.channels_last)
    assert x.contiguous(memory_format=tg.preserve_format) is x
    assert not x.is_contiguous(memory_format=tg.channels_last)
    with pytest.raises(TypeError, match="memory_format"):
        x.to(memory_format="channels_last")
    with pytest.raises(TypeError, match="memory_format"):
        tg.zeros_like(x, memory_format=1)
    with pytest.raises(TypeError, match="layout"):
        tg.ones_like(x, layout="sparse")
    torch = pytest.importorskip("torch")
    t = torch.zeros(2, 3)
    with pytest.raises(RuntimeError):
        t.to(memory_format=torch.channels_last)
    with pytest.raises(RuntimeError):
        t.contiguous(memory_format=torch.channels_last)
    assert not t.is_contiguous(memory_format=torch.channels_last)


def test_memory_formats_as_torch():
    torch = pytest.importorskip("torch")
    t = torch.arange(24.0).reshape(1, 2, 3, 4)
    x = tg.arange(24.0).reshape(1, 2, 3, 4)
    for name in ("contiguous_format", "channels_last"):
        assert x.is_contiguous(memory_format=getattr(tg, name)) == t.is_contiguous(
            memory_format=getattr(torch, name))
        u = t.contiguous(memory_format=getattr(torch, name))
        np.testing.assert_array_equal(x.contiguous(memory_format=getattr(tg, name)).numpy(), u.numpy())


# ---------------------------------------------------------------- randint_like, Size, view(dtype=)
def test_randint_like_forms_as_pytorch():
    t = tg.zeros(100, dtype=tg.int64)
    assert 0 <= tg.randint_like(t, 3).min().item() and tg.randint_like(t, 3).max().item() < 3
    r = tg.randint_like(t, 3, 5)
    assert r.min().item() >= 3 and r.max().item() < 5
    assert tg.randint_like(t, high=2).max().item() < 2
    assert tg.randint_like(t, low=4, high=6).min().item() >= 4
    assert tg.randint_like(t, 4, high=6).min().item() >= 4
    assert tg.randint_like(t, high=2, device="cpu", dtype=tg.float32).dtype == tg.float32
    for bad in (lambda: tg.randint_like(t, low=3), lambda: tg.randint_like(t), lambda: tg.randint_like(t, 1, 2, 3),
                lambda: tg.randint_like(t, 1, 2, high=3), lambda: tg.randint_like(t, 1, low=0)):
        with pytest.raises(TypeError):
            bad()
    torch = pytest.importorskip("torch")
    with pytest.raises(TypeError):
        torch.randint_like(torch.zeros(3), low=3)
    with pytest.raises(TypeError):
        torch.randint_like(torch.zeros(3))


@pytest.mark.parametrize("items", [[1, 2.5], ["a"], [None], [1.0], [tg.tensor(2.0)], [tg.tensor([1, 2])]])
def test_size_refuses_non_integers(items):
    with pytest.raises(TypeError, match=r"tapegrad.Size\(\) takes an iterable of 'int'"):
        tg.Size(items)


def test_size_takes_integers_as_pytorch():
    assert tg.Size([np.int64(2), True, tg.tensor(3), -1]) == (2, 1, 3, -1)
    assert type(tg.Size([2])[0]) is int
    assert tg.zeros(2, 3).shape == tg.Size([2, 3]) and tg.Size() == ()
    torch = pytest.importorskip("torch")
    assert torch.Size([np.int64(2), True, torch.tensor(3), -1]) == (2, 1, 3, -1)
    for items in ([1, 2.5], ["a"], [1.0]):
        with pytest.raises(TypeError):
            torch.Size(items)


def test_view_dtype_keyword():
    x = tg.tensor([1.0, -2.0], dtype=tg.float32)
    assert x.view(dtype=tg.int32).tolist() == x.view(tg.int32).tolist()
    assert tg.view(x, dtype=tg.int32).dtype == tg.int32
    with pytest.raises(TypeError):
        x.view(2, dtype=tg.int32)
    torch = pytest.importorskip("torch")
    t = torch.tensor([1.0, -2.0])
    assert x.view(dtype=tg.int32).tolist() == t.view(dtype=torch.int32).tolist()
