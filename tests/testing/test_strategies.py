"""The hypothesis strategies draw what they promise."""
import numpy as np
from hypothesis import given, settings

import tapegrad as tg
from tapegrad.testing import strategies as tst


@settings(max_examples=30)
@given(tst.shapes(min_dims=1, max_dims=3, min_side=2, max_side=4))
def test_shapes(s):
    assert 1 <= len(s) <= 3 and all(2 <= d <= 4 for d in s)


@settings(max_examples=30)
@given(tst.broadcastable_shapes((3, 4)))
def test_broadcastable_shapes(s):
    assert np.broadcast_shapes(s, (3, 4))


@settings(max_examples=30)
@given(tst.mutually_broadcastable_shapes(num_shapes=3))
def test_mutually_broadcastable(shapes):
    assert len(shapes) == 3
    np.broadcast_shapes(*shapes)


@settings(max_examples=30)
@given(tst.tensors(shape=(2, 3), elements=tst.elements(avoid=(0.0, 1.0), margin=0.1), requires_grad=True))
def test_tensors_and_elements(t):
    assert isinstance(t, tg.Tensor) and t.dtype == tg.float64 and t.shape == (2, 3) and t.requires_grad
    a = t.detach().numpy()
    assert np.all(np.abs(a) >= 0.1 - 1e-12) and np.all(np.abs(a - 1.0) >= 0.1 - 1e-12)


@settings(max_examples=30)
@given(tst.tensors(dtype=tg.float32, shape=tst.shapes(max_dims=2), elements=tst.positive()))
def test_positive_float32(t):
    assert t.dtype == tg.float32 and np.all(t.numpy() > 0)


@settings(max_examples=30)
@given(tst.tensors(shape=(6,), unique_spacing=0.01))
def test_away_from_ties(t):
    a = np.sort(t.numpy())
    assert np.all(np.diff(a) >= 0.01 - 1e-12)
