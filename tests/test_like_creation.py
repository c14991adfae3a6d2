"""The ``*_like`` creators take PyTorch's keywords, and the legacy ``Tensor(data)`` constructor
follows the default dtype as PyTorch's does."""
import numpy as np
import pytest

import tapegrad


@pytest.fixture
def default_float64():
    tapegrad.set_default_dtype(tapegrad.float64)
    yield
    tapegrad.set_default_dtype(tapegrad.float32)


@pytest.mark.parametrize("name, args", [("zeros_like", ()), ("ones_like", ()), ("empty_like", ()), ("full_like", (2.0,)),
                                        ("rand_like", ()), ("randn_like", ()), ("randint_like", (5,))])
def test_like_keywords(name, args):
    t = tapegrad.ones(2, 3)
    r = getattr(tapegrad, name)(t, *args, dtype=tapegrad.float64, device="cpu", requires_grad=True, memory_format=None)
    assert r.shape == (2, 3) and r.dtype == tapegrad.float64 and r.requires_grad and r.is_leaf
    with pytest.raises(Exception):
        getattr(tapegrad, name)(t, *args, device="cuda:7")


def test_randint_like_low_default():
    t = tapegrad.ones(200)
    r = tapegrad.randint_like(t, high=2, device="cpu")
    assert r.dtype == t.dtype and set(np.unique(r.numpy())) == {0.0, 1.0}
    r = tapegrad.randint_like(t, 3, 5, generator=tapegrad.Generator().manual_seed(0))
    assert set(np.unique(r.numpy())) == {3.0, 4.0}
    assert set(np.unique(tapegrad.randint_like(t, 2).numpy())) == {0.0, 1.0}


def test_rand_refuses_integer_dtypes():
    with pytest.raises(RuntimeError, match="floating dtype, got tapegrad.int64"):
        tapegrad.rand_like(tapegrad.ones(2, dtype=tapegrad.int64))
    with pytest.raises(RuntimeError, match="floating dtype"):
        tapegrad.randn(2, dtype=tapegrad.int32)


def test_legacy_constructor_follows_the_default_dtype(default_float64):
    assert tapegrad.Tensor(np.ones(2, np.float32)).dtype == tapegrad.float64
    assert tapegrad.Tensor(np.ones(2, np.int64)).dtype == tapegrad.float64
    assert tapegrad.Tensor([True, False]).dtype == tapegrad.float64
    assert tapegrad.Tensor(tapegrad.ones(2, dtype=tapegrad.int64)).dtype == tapegrad.int64  # a tensor keeps its dtype


def test_legacy_constructor_shares_an_array_of_the_default_dtype():
    a = np.ones(2, np.float32)
    tapegrad.Tensor(a)[0] = 5
    assert a[0] == 5
    assert tapegrad.Tensor(np.ones(2, np.float64)).dtype == tapegrad.float32


def test_legacy_constructor_matches_torch():
    torch = pytest.importorskip("torch")
    for default in ("float32", "float64"):
        for data in (np.ones(2, np.float32), np.ones(2, np.float64), np.ones(2, np.int64), np.ones(2, bool), [1, 2]):
            torch.set_default_dtype(getattr(torch, default))
            tapegrad.set_default_dtype(getattr(tapegrad, default))
            try:
                assert str(tapegrad.Tensor(data).dtype) == str(torch.Tensor(data).dtype).replace("torch.", "tapegrad.")
            finally:
                torch.set_default_dtype(torch.float32)
                tapegrad.set_default_dtype(tapegrad.float32)
