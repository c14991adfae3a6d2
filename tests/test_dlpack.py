"""Zero-copy exchange: from_numpy / numpy() share memory, and DLPack (Tensor.__dlpack__,
tapegrad.from_dlpack, tapegrad.utils.dlpack) passes tensors to and from numpy and PyTorch without a
copy: each test writes on one side and reads on the other."""
import numpy as np
import pytest

import tapegrad
from tapegrad.utils import dlpack

DTYPES = [np.float32, np.float64, np.float16, np.int64, np.int32, np.int16, np.int8, np.uint8, np.bool_]


def _sample(dtype, shape=(2, 3)):
    a = np.arange(int(np.prod(shape))).reshape(shape) % (2 if dtype is np.bool_ else 100)
    return a.astype(dtype)


def test_from_numpy_and_numpy_share_memory():
    a = np.arange(6.0).reshape(2, 3)
    t = tapegrad.from_numpy(a)
    assert np.shares_memory(t.numpy(), a)
    a[0, 0] = 9.0
    assert t[0, 0].item() == 9.0
    t.add_(1.0)
    assert a[0, 0] == 10.0
    assert t.numpy() is t.numpy()


def test_from_numpy_of_a_read_only_array_shares_and_refuses_writes():
    # PyTorch warns and shares, then writes are undefined behaviour; here writes are refused
    a = np.arange(3.0)
    a.flags.writeable = False
    t = tapegrad.from_numpy(a)
    assert np.shares_memory(t.numpy(), a)
    with pytest.raises(RuntimeError, match="read-only"):
        t.add_(1.0)
    assert a.tolist() == [0.0, 1.0, 2.0]


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_numpy_round_trip_without_copy(dtype):
    a = _sample(dtype)
    t = tapegrad.from_dlpack(a)
    assert isinstance(t, tapegrad.Tensor) and t.dtype == np.dtype(dtype) and t.shape == (2, 3)
    assert np.shares_memory(t.numpy(), a)
    back = np.from_dlpack(t)
    assert np.shares_memory(back, a) and np.array_equal(back, a)
    assert t.__dlpack_device__() == (1, 0)


def test_strided_views_and_zero_d_keep_their_layout():
    base = np.arange(24.0).reshape(4, 6)
    for a in (base.T, base[1:3, ::2], np.array(2.5), np.zeros((0, 3))):
        t = tapegrad.from_dlpack(a)
        assert t.shape == a.shape and np.array_equal(t.numpy(), a)
        if a.size:
            assert np.shares_memory(t.numpy(), a)
    t = tapegrad.arange(6.0).reshape(2, 3).t()
    out = np.from_dlpack(t)
    out[0, 1] = -1.0
    assert t.tolist() == [[0.0, -1.0], [1.0, 4.0], [2.0, 5.0]]


def test_copy_argument():
    a = np.arange(3.0)
    assert not np.shares_memory(tapegrad.from_dlpack(a, copy=True).numpy(), a)
    assert np.shares_memory(tapegrad.from_dlpack(a, copy=False).numpy(), a)


def test_errors_are_clear():
    with pytest.raises(RuntimeError, match="require gradient"):
        tapegrad.ones(2, requires_grad=True).__dlpack__()
    with pytest.raises(BufferError, match="no streams"):
        tapegrad.ones(2).__dlpack__(stream=1)
    with pytest.raises(TypeError, match="expected an object with __dlpack__"):
        tapegrad.from_dlpack([1, 2])
    assert tapegrad.from_dlpack(np.ones(2, complex)).dtype == tapegrad.complex128
    with pytest.raises(RuntimeError, match="CPU only"):
        tapegrad.from_dlpack(np.ones(2), device="cuda")
    with pytest.raises(TypeError, match="tapegrad Tensor"):
        dlpack.to_dlpack(np.ones(2))

    class OnGPU:
        def __dlpack__(self, **kwargs):
            raise AssertionError("never asked for its memory")

        def __dlpack_device__(self):
            return (2, 1)

    with pytest.raises(RuntimeError, match=r"on CUDA:1; tapegrad runs on the CPU only"):
        tapegrad.from_dlpack(OnGPU())


def test_capsules_as_pytorch_legacy_api():
    t = tapegrad.arange(4.0)
    caps = dlpack.to_dlpack(t)
    back = dlpack.from_dlpack(caps)
    assert np.shares_memory(back.numpy(), t.numpy())
    with pytest.raises((ValueError, RuntimeError, BufferError), match="consumed once"):
        dlpack.from_dlpack(caps)
    assert tapegrad.from_dlpack is dlpack.from_dlpack


def test_pytorch_round_trip_without_copy():
    torch = pytest.importorskip("torch")
    for dtype in DTYPES:
        t = tapegrad.from_numpy(_sample(dtype))
        u = torch.from_dlpack(t)
        assert np.shares_memory(u.numpy(), t.numpy()) and np.array_equal(u.numpy(), t.numpy())
        back = tapegrad.from_dlpack(u)
        assert np.shares_memory(back.numpy(), t.numpy())
    t = tapegrad.zeros(2, 3)
    u = torch.from_dlpack(t)
    u[1, 2] = 5.0  # written by torch, seen by tapegrad
    assert t[1, 2].item() == 5.0
    x = torch.arange(6.0).reshape(2, 3).t()
    y = tapegrad.from_dlpack(x)
    assert y.stride() == x.stride()
    y[0, 1] = -3.0  # written by tapegrad, seen by torch
    assert x[0, 1].item() == -3.0
    # capsules both ways (torch.utils.dlpack's legacy API)
    z = torch.utils.dlpack.from_dlpack(dlpack.to_dlpack(t))
    z[0, 0] = 7.0
    assert t[0, 0].item() == 7.0
    w = dlpack.from_dlpack(torch.utils.dlpack.to_dlpack(x))
    assert np.shares_memory(w.numpy(), x.numpy())
    with pytest.raises(RuntimeError, match="bfloat16 could not be shared"):
        tapegrad.from_dlpack(torch.ones(2, dtype=torch.bfloat16))
