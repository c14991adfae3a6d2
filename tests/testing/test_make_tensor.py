"""tapegrad.testing.make_tensor and the deprecated assert_allclose, as PyTorch's."""
import numpy as np
import pytest

import tapegrad as tg
from tapegrad.testing import assert_allclose, make_tensor


def test_make_tensor_ranges_dtypes_and_layouts():
    tg.manual_seed(0)
    for dtype, lo, hi in ((tg.float32, -9, 9), (tg.float64, -9, 9), (tg.int64, -9, 9), (tg.uint8, 0, 9),
                          (tg.int8, -9, 9)):
        t = make_tensor(200, dtype=dtype, device="cpu")
        assert t.dtype == dtype and lo <= t.min().item() and t.max().item() <= hi
    t = make_tensor(3, 4, dtype=tg.float32, low=2.0, high=2.5)
    assert tuple(t.shape) == (3, 4) and 2.0 <= t.min().item() and t.max().item() <= 2.5
    assert tuple(make_tensor((2, 5), dtype=tg.float64).shape) == (2, 5) and make_tensor((), dtype=tg.int32).dim() == 0
    assert make_tensor([2, 0], dtype=tg.float32).numel() == 0
    b = make_tensor(100, dtype=tg.bool)
    assert b.dtype == tg.bool and 0 < b.sum().item() < 100
    c = make_tensor(10, dtype=tg.complex64)
    assert c.dtype == tg.complex64 and (c.imag != 0).any()
    n = make_tensor(4, 6, dtype=tg.float32, noncontiguous=True)
    assert tuple(n.shape) == (4, 6) and not n.is_contiguous()
    assert (make_tensor(500, dtype=tg.int64, low=-1, high=1, exclude_zero=True) != 0).all()
    assert (make_tensor(500, dtype=tg.float16, low=-1e-3, high=1e-3, exclude_zero=True) != 0).all()
    g = make_tensor(2, 2, dtype=tg.float64, requires_grad=True)
    assert g.requires_grad and g.is_leaf
    assert make_tensor(300, dtype=tg.int8, low=-1000, high=1000).abs().max().item() <= 128
    with pytest.raises(ValueError, match="`low` must be less than `high`"):
        make_tensor(2, dtype=tg.float32, low=5, high=1)
    with pytest.raises(ValueError, match="requires_grad"):
        make_tensor(2, dtype=tg.int64, requires_grad=True)


def test_make_tensor_is_seeded():
    tg.manual_seed(4)
    a = make_tensor(5, dtype=tg.float32)
    tg.manual_seed(4)
    assert make_tensor(5, dtype=tg.float32).tolist() == a.tolist()


def test_assert_allclose_converts_expected_and_warns():
    with pytest.warns(FutureWarning, match="assert_close"):
        assert_allclose(tg.ones(2), [1.0, 1.0 + 1e-7])
    with pytest.warns(FutureWarning), pytest.raises(AssertionError):
        assert_allclose(tg.ones(2), [1.0, 1.1])
    with pytest.warns(FutureWarning):
        assert_allclose(tg.tensor([np.nan]), [np.nan])  # NaNs equal by default
