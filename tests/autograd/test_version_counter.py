"""x._version as PyTorch's: an int counting in-place writes, shared by a tensor and its views,
read-only; the saved-tensor checks still see every write."""
import numpy as np
import pytest

import tapegrad as tg


def test_version_is_an_int_that_counts_in_place_writes():
    x = tg.zeros(3)
    assert type(x._version) is int and x._version == 0
    x.add_(1)
    x.mul_(2)
    x[0] = 5.0
    assert x._version == 3
    assert (x + 1)._version == 0  # out of place: a fresh counter


def test_views_share_the_counter():
    x = tg.zeros(4, 3)
    v, w = x[1], x.t()
    v.add_(1)
    assert x._version == v._version == w._version == 1
    w.mul_(2)
    assert x._version == v._version == 2
    d = x.detach()  # shares memory, so the counter too (as PyTorch's detach)
    d.zero_()
    assert x._version == 3


def test_version_is_read_only():
    x = tg.zeros(2)
    with pytest.raises(AttributeError):
        x._version = 5
    with pytest.raises(AttributeError):
        del x._version


def test_saved_tensor_modified_in_place_is_still_caught():
    x = tg.tensor([1.0, 2.0], requires_grad=True)
    y = x * 1
    z = y * y
    y.add_(1)
    with pytest.raises(RuntimeError, match="modified by an in-place operation"):
        z.sum().backward()


def test_version_matches_pytorch():
    torch = pytest.importorskip("torch")
    ops = [lambda t: t.add_(1), lambda t: t[0].mul_(2), lambda t: t.clamp_(min=0), lambda t: t.t().sub_(1)]
    a, b = tg.zeros(2, 2), torch.zeros(2, 2)
    for op in ops:
        op(a)
        op(b)
        assert a._version == b._version
    assert a[1]._version == b[1]._version
