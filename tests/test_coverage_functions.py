"""tapegrad/_functions.py: torch's top-level switches, predicates, legacy constructors and vmap,
compared with PyTorch when it is installed."""
import array
import warnings

import numpy as np
import pytest

import tapegrad as tg


def test_warn_always_and_debug_mode_round_trip():
    try:
        tg.set_warn_always(True)
        assert tg.is_warn_always_enabled()
    finally:
        tg.set_warn_always(False)
    assert not tg.is_warn_always_enabled()
    try:
        for given, read in ((1, 1), ("error", 2), ("default", 0), (2, 2)):
            tg.set_deterministic_debug_mode(given)
            assert tg.get_deterministic_debug_mode() == read
    finally:
        tg.set_deterministic_debug_mode(0)
    for bad in (3, "loud", True):
        with pytest.raises(RuntimeError, match="debug_mode"):
            tg.set_deterministic_debug_mode(bad)


def test_default_device_and_tensor_type():
    tg.set_default_device("cpu")
    tg.set_default_device(None)
    assert tg.get_default_device() == tg.device("cpu")
    with pytest.raises(RuntimeError, match="CPU only"):
        tg.set_default_device("cuda")
    try:
        tg.set_default_tensor_type(tg.DoubleTensor)
        assert tg.get_default_dtype() == tg.float64 and tg.tensor([1.0]).dtype == tg.float64
        tg.set_default_tensor_type("torch.FloatTensor")
        assert tg.get_default_dtype() == tg.float32
    finally:
        tg.set_default_dtype(tg.float32)
    with pytest.raises(TypeError):
        tg.set_default_tensor_type(tg.LongTensor)
    assert tg.set_flush_denormal(True) is False


def test_anomaly_switches_follow_autograd():
    assert not tg.is_anomaly_enabled()
    try:
        tg.set_anomaly_enabled(True)
        assert tg.is_anomaly_enabled() and tg.is_anomaly_check_nan_enabled()
        tg.set_anomaly_enabled(True, check_nan=False)
        assert tg.is_anomaly_enabled() and not tg.is_anomaly_check_nan_enabled()
    finally:
        tg.set_anomaly_enabled(False)
    assert not tg.is_anomaly_enabled() and not tg.autograd.is_anomaly_enabled()


def test_legacy_cpu_autocast_functions_are_amps_state():
    assert tg.is_autocast_cpu_enabled() is tg.amp.is_autocast_enabled("cpu") is False
    dtype = tg.get_autocast_cpu_dtype()
    try:
        tg.set_autocast_cpu_dtype(tg.float16)
        assert tg.amp.get_autocast_dtype("cpu") == tg.float16
        tg.set_autocast_cpu_enabled(True)
        assert tg.amp.is_autocast_enabled("cpu")
    finally:
        tg.set_autocast_cpu_enabled(False)
        tg.amp.set_autocast_dtype("cpu", dtype)
    assert tg.is_autocast_cache_enabled()
    try:
        tg.set_autocast_cache_enabled(False)
        assert not tg.is_autocast_cache_enabled()
    finally:
        tg.set_autocast_cache_enabled(True)
    tg.clear_autocast_cache()
    assert tg.GradScaler is tg.amp.GradScaler


def test_predicates_as_pytorch():
    torch = pytest.importorskip("torch")
    for dt in ("float32", "float64", "int64", "int8", "uint8", "bool"):
        x, t = tg.zeros(2, dtype=getattr(tg, dt)), torch.zeros(2, dtype=getattr(torch, dt))
        assert tg.is_signed(x) == torch.is_signed(t) == x.is_signed() == t.is_signed()
        assert tg.typename(x) == torch.typename(t).replace("torch.", "tapegrad.")
        assert x.is_floating_point() == t.is_floating_point()
    a, b = tg.zeros(2, 3), tg.ones(2, 3)
    assert tg.is_same_size(a, b) and a.is_same_size(b) and not tg.is_same_size(a, tg.zeros(3, 2))
    assert not tg.is_inference(a) and not a.is_inference() and not tg.is_distributed(a) and not a.is_distributed()
    assert tg.get_device(a) == torch.get_device(torch.zeros(1)) == -1
    assert tg.typename(3) == torch.typename(3) == "int"


def test_detach_and_fill():
    a = tg.tensor([1.0, 2.0], requires_grad=True)
    y = a * 2
    d = tg.detach(y)
    assert not d.requires_grad and d.tolist() == [2.0, 4.0]
    tg.detach_(y)
    assert y.grad_fn is None and not y.requires_grad
    f = tg.fill(tg.zeros(2, 2, dtype=tg.int64), 3)
    assert f.tolist() == [[3, 3], [3, 3]] and f.dtype == tg.int64
    v = tg.tensor(2.0, requires_grad=True)
    tg.fill(tg.zeros(3), v).sum().backward()
    assert v.grad.item() == 3.0
    torch = pytest.importorskip("torch")
    assert torch.fill(torch.zeros(2, 2, dtype=torch.int64), 3).tolist() == f.tolist()


def test_legacy_constructors_as_pytorch():
    torch = pytest.importorskip("torch")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for args in ((1, 4), (0, 1, 0.25), (3, -1, -1.5)):
            x, t = tg.range(*args), torch.range(*args)
            np.testing.assert_allclose(x.numpy(), t.numpy())
            assert str(x.dtype) == str(t.dtype).replace("torch.", "tapegrad.")
        with pytest.raises(RuntimeError):
            torch.range(0, 3, -1)
    with pytest.raises(RuntimeError):
        tg.range(0, 3, -1)
    for s in (3, 2.5, True):
        x, t = tg.scalar_tensor(s), torch.scalar_tensor(s)
        assert x.item() == t.item() and x.ndim == 0 and str(x.dtype) == str(t.dtype).replace("torch.", "tapegrad.")
    assert tg.scalar_tensor(3, dtype=tg.int64).dtype == tg.int64
    x = tg.empty_strided((2, 3), (1, 2))
    assert x.shape == torch.empty_strided((2, 3), (1, 2)).shape
    with pytest.raises(RuntimeError):
        tg.empty_strided((2, 3), (1,))
    assert tg.empty_permuted((2, 3, 4), (0, 2, 1)).shape == torch.empty_permuted((2, 3, 4), (0, 2, 1)).shape
    with pytest.raises(RuntimeError):
        tg.empty_permuted((2, 3), (0, 0))


def test_asarray_shares_memory_unless_told_otherwise():
    a = np.arange(3.0)
    x = tg.asarray(a)
    a[0] = 7.0
    assert x[0].item() == 7.0
    assert tg.asarray(a, copy=True).numpy() is not a
    y = tg.asarray(x)
    assert y is x and tg.asarray(x, dtype=tg.float32).dtype == tg.float32
    assert tg.asarray([1.0, 2.0]).dtype == tg.float32 and tg.asarray([1, 2]).dtype == tg.int64
    with pytest.raises(ValueError):
        tg.asarray([1.0], copy=False)
    with pytest.raises(ValueError):
        tg.asarray(a, dtype=tg.float32, copy=False)
    assert tg.asarray(a, requires_grad=True).requires_grad
    torch = pytest.importorskip("torch")
    assert torch.asarray([1.0, 2.0]).dtype == torch.float32 and torch.asarray([1, 2]).dtype == torch.int64
    t = torch.arange(3.0)
    np.testing.assert_array_equal(tg.asarray(t).numpy(), t.numpy())  # DLPack, shared
    t[1] = 9.0
    assert tg.asarray(t)[1].item() == 9.0


def test_frombuffer_shares_the_buffer():
    buf = bytearray(np.arange(4, dtype=np.int32).tobytes())
    x = tg.frombuffer(buf, dtype=tg.int32)
    buf[0] = 5
    assert x.tolist() == [5, 1, 2, 3]
    assert tg.frombuffer(buf, dtype=tg.int32, count=2, offset=4).tolist() == [1, 2]
    with pytest.raises(ValueError):
        tg.frombuffer(bytearray(), dtype=tg.int32)
    torch = pytest.importorskip("torch")
    a = array.array("f", [1.0, 2.0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert tg.frombuffer(a, dtype=tg.float32).tolist() == torch.frombuffer(a, dtype=torch.float32).tolist()


def test_to_dlpack_capsule():
    x = tg.arange(3.0)
    cap = tg.to_dlpack(x)
    assert type(cap).__name__ == "PyCapsule"
    torch = pytest.importorskip("torch")
    assert torch.utils.dlpack.from_dlpack(cap).tolist() == [0.0, 1.0, 2.0]


def test_vmap_as_pytorch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((4, 3)), rng.standard_normal((3, 4))
    for fn, in_dims, out_dims in [(lambda M, x, y: M.dot(x, y), (0, 1), 0),
                                  (lambda M, x, y: x * y.sum(), (0, None), 1),
                                  (lambda M, x, y: (x.exp(), x + 1), (0, None), 0)]:
        got = tg.vmap(lambda x, y: fn(tg, x, y), in_dims, out_dims)(tg.tensor(a), tg.tensor(b))
        want = torch.vmap(lambda x, y: fn(torch, x, y), in_dims, out_dims)(torch.tensor(a), torch.tensor(b))
        for g, w in zip(got if isinstance(got, tuple) else [got], want if isinstance(want, tuple) else [want]):
            np.testing.assert_allclose(g.numpy(), w.numpy(), rtol=1e-12)
    x = tg.tensor(a, requires_grad=True)
    tg.vmap(lambda r: (r * r).sum())(x).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), 2 * a)
    with pytest.raises(ValueError, match="same size"):
        tg.vmap(tg.dot)(tg.ones(4, 3), tg.ones(5, 3))
    with pytest.raises(ValueError, match="in_dims"):
        tg.vmap(tg.dot, in_dims=(0,))(tg.ones(4, 3), tg.ones(4, 3))


def test_legacy_int_tensor_types_and_warn_only():
    assert tg.CharTensor([1, 2]).dtype == tg.int8 and tg.ShortTensor(2, 3).dtype == tg.int16
    assert isinstance(tg.zeros(2, dtype=tg.int8), tg.CharTensor) and not isinstance(tg.zeros(2), tg.ShortTensor)
    try:
        tg.use_deterministic_algorithms(True, warn_only=True)
        assert tg.are_deterministic_algorithms_enabled() and tg.is_deterministic_algorithms_warn_only_enabled()
    finally:
        tg.use_deterministic_algorithms(False)
    assert not tg.is_deterministic_algorithms_warn_only_enabled()
    torch = pytest.importorskip("torch")
    assert torch.CharTensor([1, 2]).dtype == torch.int8 and torch.ShortTensor(2, 3).dtype == torch.int16


def test_legacy_half_and_bfloat16_tensor_types():
    h = tg.HalfTensor([1.5, 2.0])
    assert h.dtype == tg.float16 and h.tolist() == [1.5, 2.0] and isinstance(h, tg.HalfTensor)
    assert tg.HalfTensor(2, 3).shape == (2, 3) and not isinstance(tg.zeros(2), tg.HalfTensor)
    b = tg.BFloat16Tensor(3)
    assert b.dtype == tg.bfloat16 and b.shape == (3,) and isinstance(b, tg.BFloat16Tensor)
    assert not isinstance(h, tg.BFloat16Tensor)


@pytest.mark.parametrize("shape", [(5, 3), (2, 5, 3), (3, 5), (4, 4)])
def test_geqrf_orgqr_ormqr_as_pytorch(shape):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    a = rng.standard_normal(shape)
    q, tau = tg.geqrf(tg.tensor(a))
    tq, ttau = torch.geqrf(torch.tensor(a))
    np.testing.assert_allclose(q.numpy(), tq.numpy(), atol=1e-12)
    np.testing.assert_allclose(tau.numpy(), ttau.numpy(), atol=1e-12)
    m = shape[-2]
    if shape[-1] <= m:
        np.testing.assert_allclose(tg.orgqr(q, tau).numpy(), torch.orgqr(tq, ttau).numpy(), atol=1e-12)
    for left, other in [(True, rng.standard_normal(shape[:-2] + (m, 4))), (False, rng.standard_normal(shape[:-2] + (4, m)))]:
        for transpose in (False, True):
            o = tg.tensor(other, requires_grad=True)
            to = torch.tensor(other, requires_grad=True)
            got = tg.ormqr(q, tau, o, left=left, transpose=transpose)
            want = torch.ormqr(tq, ttau, to, left=left, transpose=transpose)
            np.testing.assert_allclose(got.detach().numpy(), want.detach().numpy(), atol=1e-12)
            got.sum().backward()
            want.sum().backward()
            np.testing.assert_allclose(o.grad.numpy(), to.grad.numpy(), atol=1e-12)
    x = tg.tensor(a, requires_grad=True)
    with pytest.raises(RuntimeError, match="derivative for 'geqrf' is not implemented"):
        tg.geqrf(x).a.sum().backward()
    with pytest.raises(RuntimeError, match="ormqr: other's rows"):
        tg.ormqr(q, tau, tg.ones(m + 1, 2, dtype=tg.float64))
