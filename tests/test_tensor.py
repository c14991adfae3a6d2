"""Tensor metadata, conversions, repr, dtype promotion and devices."""
import numpy as np
import pytest

import tapegrad as tg


def test_metadata():
    x = tg.zeros(2, 3, 4)
    assert x.shape == (2, 3, 4) and x.ndim == 3 and x.dim() == 3
    assert x.size() == (2, 3, 4) and x.size(1) == 3 and x.numel() == 24
    assert x.dtype == tg.float32 and x.T.shape == (4, 3, 2)
    assert tg.zeros(2, 3).T.shape == (3, 2)
    assert len(x) == 2 and x.is_floating_point() and not tg.zeros(2, dtype=tg.int64).is_floating_point()


def test_conversions():
    x = tg.tensor([[1.0, 2.0], [3.0, 4.0]])
    assert isinstance(x.numpy(), np.ndarray) and x.tolist() == [[1.0, 2.0], [3.0, 4.0]]
    assert np.asarray(x).dtype == np.float32 and np.array(x, dtype=np.float64).dtype == np.float64
    assert tg.tensor([2.5]).item() == 2.5 and isinstance(tg.tensor(3).item(), int)
    assert float(tg.tensor(1.5)) == 1.5 and int(tg.tensor(7)) == 7
    with pytest.raises(RuntimeError, match="cannot be converted"):
        x.item()
    w = tg.tensor([1.0], requires_grad=True)
    with pytest.raises(RuntimeError, match="detach"):
        w.numpy()
    assert w.detach().numpy()[0] == 1.0


def test_repr_like_pytorch():
    assert repr(tg.tensor([1.0, 2.5])) == "tensor([1.0000, 2.5000])"
    assert repr(tg.tensor([1, 2])) == "tensor([1, 2])"
    assert repr(tg.tensor([1.0], dtype=tg.float64)) == "tensor([1.], dtype=tapegrad.float64)"
    assert repr(tg.tensor([1.0], requires_grad=True)) == "tensor([1.], requires_grad=True)"
    assert "grad_fn=<MulBackward0>" in repr(tg.tensor([1.0], requires_grad=True) * 2)
    assert repr(tg.tensor(3.0)) == "tensor(3.)"


def test_python_scalars_never_upcast_float32():
    x = tg.ones(2)
    for y in (x * 2.0, x + 1, 2.5 - x, x / 3, x ** 2.0, 1.0 / x):
        assert y.dtype == tg.float32
    assert (tg.ones(2, dtype=tg.int64) * 2).dtype == tg.int64
    assert (tg.ones(2, dtype=tg.int64) * 2.0).dtype == tg.float32
    assert (tg.ones(2, dtype=tg.int64) / 2).dtype == tg.float32


def test_tensor_promotion_like_pytorch():
    f32, f64 = tg.ones(2), tg.ones(2, dtype=tg.float64)
    i64, i32 = tg.ones(2, dtype=tg.int64), tg.ones(2, dtype=tg.int32)
    assert (f32 + f64).dtype == tg.float64
    assert (i64 + f32).dtype == tg.float32  # numpy would say float64
    assert (i32 + i64).dtype == tg.int64
    assert (f32 + tg.tensor(1.0, dtype=tg.float64)).dtype == tg.float32  # a 0-d tensor does not promote
    assert (i64 + tg.tensor(1.5)).dtype == tg.float32  # ...unless it is of a higher category
    assert (tg.tensor([True]) + i32).dtype == tg.int32


def test_only_floats_require_grad():
    with pytest.raises(RuntimeError, match="floating point"):
        tg.tensor([1, 2], requires_grad=True)
    with pytest.raises(RuntimeError, match="floating point"):
        tg.zeros(2, dtype=tg.int64).requires_grad = True
    assert tg.zeros(2, dtype=tg.float64, requires_grad=True).requires_grad


def test_to_and_devices():
    x = tg.ones(2)
    assert x.to("cpu") is x and x.cpu() is x and x.device == tg.device("cpu")
    assert x.to(tg.float64).dtype == tg.float64 and x.double().dtype == tg.float64
    assert x.to("cpu", tg.float64).dtype == tg.float64 and x.to(tg.zeros(1, dtype=tg.int64)).dtype == tg.int64
    assert str(tg.device("cpu")) == "cpu" and tg.device("cpu:0").type == "cpu"
    assert tg.cuda.is_available() is False and tg.backends.mps.is_available() is False
    for bad in ("cuda", "cuda:0", "mps"):
        with pytest.raises(RuntimeError, match="CPU only"):
            x.to(bad)
        with pytest.raises(RuntimeError, match="CPU only"):
            x.to(tg.device(bad))  # the device is a value (as PyTorch's); only going there fails
    with pytest.raises(RuntimeError, match="CUDA is not available"):
        x.cuda()


def test_cast_is_differentiable():
    x = tg.tensor([1.0, 2.0], requires_grad=True)
    y = x.double() * 3
    y.sum().backward()
    assert x.grad.dtype == tg.float32 and x.grad.tolist() == [3.0, 3.0]


def test_default_dtype():
    tg.set_default_dtype(tg.float64)
    try:
        assert tg.tensor([1.0]).dtype == tg.float64 and tg.zeros(1).dtype == tg.float64
        assert (tg.ones(1, dtype=tg.int64) * 1.5).dtype == tg.float64
    finally:
        tg.set_default_dtype(tg.float32)
    assert tg.get_default_dtype() == tg.float32


def test_legacy_sizes_constructor():
    """Tensor(2, 3) / Tensor(Size) make a float tensor of that shape, as PyTorch's legacy
    constructor (old custom layers build nn.Parameter(torch.Tensor(out, in)) and init it);
    zeros here rather than uninitialised memory. Tensor(list) is still data."""
    assert tg.Tensor(2, 3).shape == (2, 3) and tg.Tensor(2, 3).dtype == tg.float32
    assert tg.Tensor(3).shape == (3,) and tg.Tensor(tg.Size([2, 4])).shape == (2, 4)
    assert tg.Tensor([2, 3]).tolist() == [2.0, 3.0] and tg.Tensor((2, 3)).tolist() == [2.0, 3.0]
    w = tg.nn.Parameter(tg.Tensor(4, 5))
    tg.nn.init.kaiming_uniform_(w)
    assert w.shape == (4, 5) and w.requires_grad
    with pytest.raises(TypeError, match="non-negative ints"):
        tg.Tensor(2, -1)


def test_size_returns_a_size():
    x = tg.ones(2, 3, 4)
    s = x.size()
    assert isinstance(s, tg.Size) and s == (2, 3, 4) == x.shape and s.numel() == 24
    assert isinstance(s[1:], tg.Size) and s[1:] == (3, 4) and s[-1] == 4 and x.size(1) == 3
    assert repr(s) == "tapegrad.Size([2, 3, 4])"


# ---------------------------------------------------------------- Python-scalar operands
def test_scalar_operands_share_a_read_only_constant():
    from tapegrad.ops import _util
    x = tg.tensor([1.0, -2.0], requires_grad=True)
    y = x * 1.0001
    z = x * 1.0001
    (c1,), (c2,) = [t.grad_fn.saved[1:] for t in (y, z)]
    assert c1 is c2 and not c1.requires_grad and not c1._data.flags.writeable
    with pytest.raises(RuntimeError):
        c1.add_(1.0)
    assert c1.item() == np.float32(1.0001)
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), np.full(2, np.float32(1.0001)))
    assert len(_util._SCALARS) <= _util._MAX_SCALARS


@pytest.mark.parametrize("dtype", [tg.float32, tg.float64])
def test_scalar_operands_keep_dtype_sign_and_nan(dtype):
    x = tg.tensor([1.0, -1.0], dtype=dtype)
    for _ in range(2):  # the second time from the cache
        assert (x * 3).dtype == dtype and (x * 3.0).dtype == dtype
        np.testing.assert_array_equal((x * 3).numpy(), (x * 3.0).numpy())
        assert np.signbit((x * -0.0).numpy()).tolist() == [True, False]
        assert np.signbit((x * 0.0).numpy()).tolist() == [False, True]
        assert np.isnan((x + float("nan")).numpy()).all()
        np.testing.assert_array_equal((x * 1e-40).numpy(), x.numpy() * np.asarray(1e-40, x.numpy().dtype))
        assert (x * 2 ** 40).numpy().tolist() == [2.0 ** 40, -(2.0 ** 40)]


def test_in_place_op_with_a_scalar_never_writes_the_constant():
    x = tg.tensor([1.0, 2.0])
    for _ in range(3):
        x.mul_(2.5).add_(0.5)
    y = tg.tensor([1.0, 2.0], requires_grad=True) * 1
    y.mul_(2.5)
    y.add_(0.5)
    np.testing.assert_allclose((tg.tensor([1.0]) * 2.5).numpy(), [2.5])
    np.testing.assert_allclose((tg.tensor([2.0]) + 0.5).numpy(), [2.5])


def test_in_tests_the_elements_as_pytorch():
    """``3.0 in t`` iterated the rows and asked bool() of each: a RuntimeError for any 2-D tensor."""
    x = tg.arange(6.0).reshape(2, 3)
    assert 3.0 in x and 7 not in x and tg.tensor([3.0, 4.0, 5.0]) in x and tg.tensor(9.0) not in x
    with pytest.raises(RuntimeError, match="only supports Tensor or scalar"):
        "a" in x


def test_the_data_setter_takes_tensors_and_numeric_arrays_only():
    """A list or a str/object array went in as the tensor's storage and failed later in another op;
    a big-endian array became a dtype the kernels refuse."""
    x = tg.ones(2, requires_grad=True)
    for bad in ([1.0, 2.0], 5, np.array(["a", "b"]), np.array([object(), 1], dtype=object)):
        with pytest.raises(TypeError, match="data has to be a tensor"):
            x.data = bad
    assert x.tolist() == [1.0, 1.0]
    x.data = np.arange(3, dtype=">f4")
    assert x.dtype == tg.float32 and x.tolist() == [0.0, 1.0, 2.0]
    x.data = tg.zeros(2)
    assert x.tolist() == [0.0, 0.0] and x.requires_grad


def test_in_place_changes_through_data_escape_the_version_check():
    """PyTorch's ``.data`` shares the storage but not the version counter (``detach()`` shares
    both): old code changes tensors saved for backward through it (``u.data.copy_(...)``,
    ``w.data.clamp_(...)``) and backward uses the new values. tapegrad's ``.data`` was
    ``detach()``, so backward refused with "modified by an in-place operation"."""
    a = tg.tensor([1.0, 2.0])
    x = tg.tensor([3.0, 4.0], requires_grad=True)
    y = (x * a).sum()
    a.data.copy_(tg.tensor([7.0, 8.0]))
    assert a._version == 0
    y.backward()
    assert x.grad.tolist() == [7.0, 8.0]  # PyTorch: [7., 8.]
    w = tg.nn.Parameter(tg.tensor([0.5, -2.0]))
    d = w.data
    assert type(d) is tg.Tensor and d._base is None and not d.requires_grad and d.data_ptr() == w.data_ptr()
    d.clamp_(-1.0, 1.0)
    assert w.tolist() == [0.5, -1.0] and w._version == 0 and d._version == 1
    b = tg.tensor([1.0, 2.0])
    z = (x * b).sum()
    b.detach().mul_(2)  # detach() keeps sharing the counter: still caught
    with pytest.raises(RuntimeError, match="in-place"):
        z.backward()


def test_torch_constants_dtype_aliases_and_device_predicates():
    import math
    assert (tg.pi, tg.e, tg.inf) == (math.pi, math.e, math.inf) and math.isnan(tg.nan)
    assert tg.newaxis is None and tg.zeros(2)[:, tg.newaxis].shape == (2, 1)
    assert tg.short == tg.int16 and tg.zeros(2, dtype=tg.short).dtype == tg.int16
    x = tg.zeros(2)
    assert x.is_cpu and not (x.is_cuda or x.is_meta or x.is_mps or x.is_xpu or x.is_quantized or x.is_nested)


def test_attributes_set_on_tensors_and_parameters_as_pytorch():
    """``x.name = ...`` / ``p._no_weight_decay = True``: programs and libraries (pyro's
    ``unconstrained``, transformers' ``_is_hf_initialized``) mark tensors with attributes."""
    import copy
    import gc
    import pickle
    import sys
    side = sys.modules["tapegrad.tensor"]._EXTRA
    t = tg.ones(2)
    t.name, t.meta = "x", {"a": [1]}
    assert t.name == "x" and copy.deepcopy(t).meta == {"a": [1]} and copy.deepcopy(t).meta is not t.meta
    assert pickle.loads(pickle.dumps(t)).name == "x"
    del t.name
    with pytest.raises(AttributeError, match="no attribute 'name'"):
        t.name
    with pytest.raises(AttributeError):
        t.shape = (3,)  # a property: refused, as PyTorch's
    with pytest.raises(AttributeError):
        del t.nothing
    y = tg.ones(2, requires_grad=True) * 2
    y.tag = "non-leaf"
    y.sum().backward()
    assert y.tag == "non-leaf"
    p = tg.nn.Parameter(tg.ones(2))
    p._no_weight_decay = True
    assert p._no_weight_decay and pickle.loads(pickle.dumps(p))._no_weight_decay
    assert not hasattr(copy.deepcopy(p), "_no_weight_decay")  # PyTorch's Parameter deepcopy drops them
    b = tg.nn.Buffer(tg.ones(1), persistent=False)
    b.tag = 3
    assert b.tag == 3 and b.persistent is False
    del t, y
    for _ in range(100):
        x = tg.ones(1)
        x.obj = object()
    del x
    gc.collect()
    assert len(side) == 0  # the attributes go with their tensor
    torch = pytest.importorskip("torch")
    for M in (torch, tg):
        z = M.ones(1)
        z.k = 1
        assert z.k == 1 and copy.deepcopy(z).k == 1 and pickle.loads(pickle.dumps(z)).k == 1


def test_attributes_from_many_threads_land_on_their_tensor():
    import threading
    shared = tg.ones(1)
    barrier = threading.Barrier(8)

    def work(i):
        barrier.wait()
        setattr(shared, f"a{i}", i)  # eight threads give one tensor its first attributes at once
        for k in range(200):
            t = tg.ones(1)
            t.k = (i, k)
            assert t.k == (i, k)
    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert [getattr(shared, f"a{i}") for i in range(8)] == list(range(8))
