"""tapegrad.storage: Tensor.untyped_storage()/storage(), UntypedStorage, TypedStorage, is_storage.
Views of one tensor report one storage (data_ptr and nbytes, as safetensors and accelerate compare
them), writes through a storage reach the tensor and back, and PyTorch's answers where torch is
installed."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

import tapegrad as tg
from tapegrad.storage import TypedStorage, UntypedStorage


def _typed(t):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return t.storage()


VIEWS = {
    "slice": lambda x: x[:, 1:],
    "transpose": lambda x: x.t(),
    "view": lambda x: x.view(3, 4),
    "reshape": lambda x: x.reshape(-1),
    "expand": lambda x: x[:1].expand(5, 4),
    "dtype view": lambda x: x.view(tg.int32),
    "detach": lambda x: x.detach(),
    "unbind": lambda x: x.unbind(0)[2],
    "select": lambda x: x[1],
    "flip-free narrow": lambda x: x.narrow(1, 1, 2),
    "diagonal": lambda x: x.diagonal(),
}


@pytest.mark.parametrize("name", VIEWS)
def test_views_share_one_storage(name):
    x = tg.arange(12, dtype=tg.float32).reshape(4, 3).reshape(3, 4)
    v = VIEWS[name](x)
    s, sv = x.untyped_storage(), v.untyped_storage()
    assert sv.data_ptr() == s.data_ptr() and sv.nbytes() == s.nbytes() == 48
    assert v.data_ptr() == sv.data_ptr() + v.storage_offset() * v.element_size()


def test_copies_do_not_share():
    x = tg.arange(6.0)
    for other in (x.clone(), x + 0, x.contiguous().reshape(2, 3).t().contiguous()):
        assert other.untyped_storage().data_ptr() != x.untyped_storage().data_ptr()


def test_from_numpy_shares_the_arrays_memory():
    a = np.arange(10, dtype=np.float64)
    t = tg.from_numpy(a[2:])
    assert t.untyped_storage().data_ptr() == a.ctypes.data and t.untyped_storage().nbytes() == 80
    assert t.storage_offset() == 2


def test_untyped_storage_members():
    x = tg.tensor([1, 2, 3], dtype=tg.int16)
    s = x.untyped_storage()
    assert (s.nbytes(), s.size(), len(s), s.element_size()) == (6, 6, 6, 1)
    assert s.tolist() == list(np.array([1, 2, 3], np.int16).view(np.uint8)) == list(s)
    assert s[0] == 1 and s[-2] == 3 and s.device == tg.device("cpu") and s.get_device() == -1
    assert s.cpu() is s and s.untyped() is s and not s.is_shared() and not s.is_pinned() and not s.is_cuda
    piece = s[2:4]
    assert isinstance(piece, UntypedStorage) and piece.data_ptr() == s.data_ptr() + 2 and piece.tolist() == [2, 0]
    c = s.clone()
    assert c.data_ptr() != s.data_ptr() and c.tolist() == s.tolist()
    assert not s.resizable() and s.resize_(6) is s
    with pytest.raises(RuntimeError, match="not resizable"):
        s.resize_(8)
    with pytest.raises(IndexError, match="index 6 out of range for storage of size 6"):
        s[6]
    with pytest.raises(TypeError, match="can't index a tapegrad.UntypedStorage with float"):
        s[1.5]
    with pytest.raises(RuntimeError, match="call share_memory_\\(\\) on the tensor"):
        s.share_memory_()
    assert "UntypedStorage(device=cpu) of size 6" in repr(s)


def test_writes_through_storages_reach_the_tensor_and_back():
    x = tg.zeros(2, 3)
    v = x[1]
    s = v.untyped_storage()
    s[:4] = list(np.float32(7.0).tobytes())
    assert x[0, 0].item() == 7.0
    ts = _typed(v)
    ts[5] = 3.5
    assert x[1, 2].item() == 3.5
    x.fill_(1.0)
    assert ts[0] == 1.0 and s[3] == np.float32(1.0).tobytes()[3]
    ts.fill_(2.0)
    assert x.sum().item() == 12.0
    s.fill_(0)
    assert x.sum().item() == 0.0
    ts.copy_(_typed(tg.arange(6.0)))
    assert x.tolist() == [[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]]


def test_typed_storage_members_and_deprecation():
    x = tg.arange(6, dtype=tg.float64).reshape(2, 3)[:, 1:]
    with pytest.warns(UserWarning, match="TypedStorage is deprecated"):
        ts = x.storage()
    assert isinstance(ts, TypedStorage) and ts.dtype == tg.float64
    assert (ts.size(), len(ts), ts.element_size(), ts.nbytes()) == (6, 6, 8, 48)
    assert ts.tolist() == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0] and ts[-1] == 5.0
    assert ts.data_ptr() == x.untyped_storage().data_ptr() and ts.untyped().nbytes() == 48
    with pytest.raises(RuntimeError, match="slices are only supported in UntypedStorage.__getitem__"):
        ts[1:3]
    with pytest.raises(IndexError, match="index -7 out of range for storage of size 6"):
        ts[-7]
    f = ts.float()
    assert f.dtype == tg.float32 and f.tolist() == ts.tolist() and f.data_ptr() != ts.data_ptr()
    with pytest.warns(UserWarning, match="TypedStorage is deprecated"):
        made = TypedStorage([1, 2, 3], dtype=tg.int64)
    assert made.tolist() == [1, 2, 3] and made.nbytes() == 24
    with pytest.warns(UserWarning):
        wrapped = TypedStorage(wrap_storage=made.untyped(), dtype=tg.int32)
    assert wrapped.size() == 6 and wrapped.data_ptr() == made.data_ptr()


def test_new_storages_and_is_storage():
    assert UntypedStorage(4).tolist() == [0, 0, 0, 0] and UntypedStorage([1, 2, 255]).tolist() == [1, 2, 255]
    assert UntypedStorage().nbytes() == 0
    with pytest.raises(TypeError):
        UntypedStorage([1, 256])
    with pytest.raises(RuntimeError, match="tapegrad runs on the CPU only"):
        UntypedStorage(4, device="cuda")
    x = tg.zeros(2)
    assert tg.is_storage(x.untyped_storage()) and tg.is_storage(_typed(x))
    assert not tg.is_storage(x) and not tg.is_storage(np.zeros(2))
    assert tg.UntypedStorage is UntypedStorage and tg.TypedStorage is TypedStorage


def test_read_only_memory_gives_a_read_only_storage():
    a = np.arange(4.0)
    a.flags.writeable = False
    s = tg.from_numpy(a).untyped_storage() if hasattr(tg, "from_numpy") else None
    if s is None:
        pytest.skip("no from_numpy")
    with pytest.raises(RuntimeError, match="read-only"):
        s[0] = 1


def test_empty_tensor():
    s = tg.zeros(0).untyped_storage()
    assert s.nbytes() == 0 and s.tolist() == []


def test_sparse_tensor_has_no_storage():
    sp = tg.zeros(2, 2).to_sparse() if hasattr(tg.Tensor, "to_sparse") else None
    if sp is None:
        pytest.skip("no sparse tensors")
    with pytest.raises(RuntimeError, match="has no storage"):
        sp.untyped_storage()


def test_against_torch():
    torch = pytest.importorskip("torch")
    for lib in (torch, tg):
        x = lib.arange(12, dtype=lib.float32).reshape(3, 4)
        views = [x[1:], x.t(), x[:, 2], x.view(lib.int32), x.reshape(-1)[3:]]
        shared = [v.untyped_storage().data_ptr() == x.untyped_storage().data_ptr() for v in views]
        offsets = [v.storage_offset() for v in views]
        sizes = [v.untyped_storage().nbytes() for v in views]
        u = x.untyped_storage()
        ts = _typed(x)
        got = (shared, offsets, sizes, u.nbytes(), u.size(), u.element_size(), u[4:8].tolist(), u[-1],
               ts.size(), ts.element_size(), ts.nbytes(), ts[5], ts.tolist()[:3], lib.is_storage(u),
               lib.is_storage(ts), lib.is_storage(x), lib.UntypedStorage([1, 2]).tolist())
        if lib is torch:
            expected = got
        else:
            assert got == expected
    for lib in (torch, tg):
        with pytest.raises(IndexError):
            lib.zeros(2).untyped_storage()[8]
        with pytest.raises(RuntimeError):
            _typed(lib.zeros(2))[0:1]


def test_set_to_a_storage_a_tensor_or_nothing():
    a = tg.arange(6.0)
    s = a.untyped_storage()
    b = tg.zeros(0).set_(s, 1, (2, 2), (2, 1))
    assert b.tolist() == [[1.0, 2.0], [3.0, 4.0]] and b.storage_offset() == 1
    assert b.untyped_storage().data_ptr() == s.data_ptr() and b.stride() == (2, 1)
    b[0, 0] = 100.0
    assert a[1].item() == 100.0
    a[4] = -1.0
    assert b[1, 1].item() == -1.0
    c = tg.zeros(3)
    v0 = c._version
    c.set_(a)
    assert c.is_set_to(a) and not b.is_set_to(a) and b.is_set_to(b) and c._version == v0 + 1
    assert tg.zeros(0).set_(s).shape == (6,) and tg.zeros(0).set_(_typed(a)).shape == (6,)
    assert tg.zeros(0).set_(a, 3, (2,)).tolist() == [3.0, -1.0]
    d = tg.ones(3).set_()
    assert d.shape == (0,) and d.dtype == tg.float32
    with tg.no_grad():  # a parameter given other memory, as offloading libraries do
        p = tg.nn.Parameter(tg.ones(2))
        p.set_(tg.zeros(2))
    assert p.requires_grad and p.grad_fn is None and p.tolist() == [0.0, 0.0]


def test_set_errors():
    a = tg.arange(6.0)
    s = a.untyped_storage()
    with pytest.raises(RuntimeError, match=r"set_: sizes \[3\], strides \[1\], storage offset 4, and itemsize 4 "
                                           r"requiring a storage size of 28 are out of bounds for storage of size 24"):
        tg.zeros(0).set_(s, 4, (3,))
    with pytest.raises(RuntimeError, match="set_: could not set a tensor of type tapegrad.float64 to a tensor of "
                                           "type tapegrad.float32"):
        tg.zeros(0, dtype=tg.float64).set_(a)
    with pytest.raises(RuntimeError, match="set_: expected a storage of type tapegrad.int32 or an UntypedStorage"):
        tg.zeros(0, dtype=tg.int32).set_(_typed(a))
    with pytest.raises(RuntimeError, match="set_: a leaf Variable that requires grad is being used in an in-place "
                                           "operation"):
        tg.zeros(1, requires_grad=True).set_(a)
    with pytest.raises(RuntimeError, match="set_: invalid storage offset -1"):
        tg.zeros(0).set_(s, -1, (1,))
    with pytest.raises(TypeError, match="set_"):
        tg.zeros(0).set_(3)
    with pytest.raises(TypeError, match="storage_offset needs size"):
        tg.zeros(0).set_(s, 2)


def test_set_of_a_saved_tensor_is_caught():
    x = tg.ones(3, requires_grad=True)
    h = x * 2
    out = (h * h).sum()
    with tg.no_grad():
        h.set_(tg.zeros(3))
    with pytest.raises(RuntimeError, match="modified by an in-place operation"):
        out.backward()


def test_set_against_torch():
    torch = pytest.importorskip("torch")
    got = []
    for lib in (torch, tg):
        a = lib.arange(12, dtype=lib.float64)
        b = lib.zeros(0, dtype=lib.float64).set_(a.untyped_storage(), 2, (3, 2), (3, 1))
        b[0, 1] = 50.0
        c = lib.zeros(0, dtype=lib.float64).set_(a)
        got.append((b.tolist(), b.stride(), b.storage_offset(), a.tolist(), c.is_set_to(a), b.is_set_to(a),
                    lib.ones(2).set_().shape == (0,)))
        with pytest.raises(RuntimeError):
            lib.zeros(1, requires_grad=True).set_(lib.zeros(1))
        with pytest.raises(RuntimeError):
            lib.zeros(0).set_(lib.zeros(1, dtype=lib.float64))
    assert got[0] == got[1]


def test_shared_memory_storages():
    t = tg.arange(4.0)
    assert not t.untyped_storage().is_shared()
    t.share_memory_()
    s = t.untyped_storage()
    assert s.is_shared() and s.share_memory_() is s and _typed(t).is_shared()
    assert t[1:].untyped_storage().data_ptr() == s.data_ptr() and s.nbytes() == 16
    m = tg.nn.Linear(3, 2)
    m.share_memory()
    # packed into one segment, yet each parameter is a storage of its own, as PyTorch's
    w, b = m.weight.untyped_storage(), m.bias.untyped_storage()
    assert w.is_shared() and b.is_shared() and w.data_ptr() != b.data_ptr() and (w.nbytes(), b.nbytes()) == (24, 8)
