"""``x.shape`` is a ``tapegrad.Size`` (as ``torch.Size``), and behaves as the tuple it is
wherever numpy, pickle, json or our own code take one."""
import copy
import json
import pickle

import numpy as np
import pytest

import tapegrad
from tapegrad import Size


def test_shape_is_a_size_equal_to_size():
    x = tapegrad.ones(2, 3)
    assert type(x.shape) is Size and x.shape == x.size() == (2, 3) == Size([2, 3])
    assert hash(x.shape) == hash((2, 3)) and {x.shape: 1}[(2, 3)] == 1
    assert x.shape.numel() == 6 and x.shape[-1] == 3 and x.shape.index(3) == 1
    assert repr(x.shape) == str(x.shape) == "tapegrad.Size([2, 3])"
    assert repr(tapegrad.tensor(1.0).shape) == "tapegrad.Size([])"


def test_sums_and_repeats_stay_size():
    s = tapegrad.ones(2, 3).shape
    for r in (s + (4,), (1,) + s, s + Size([4]), s * 2, 2 * s):
        assert type(r) is Size
    assert s + (4,) == (2, 3, 4) and (1,) + s == (1, 2, 3) and s * 2 == (2, 3, 2, 3)
    with pytest.raises(TypeError, match="can only concatenate tuple"):
        s + [1]


def test_round_trips():
    s = tapegrad.ones(2, 3).shape
    for r in (pickle.loads(pickle.dumps(s)), copy.deepcopy(s), copy.copy(s)):
        assert type(r) is Size and r == s
    assert json.dumps(s) == "[2, 3]"
    assert np.zeros(s).shape == (2, 3) and np.broadcast_shapes(s, (1, 3)) == (2, 3)
    assert tapegrad.zeros(s).shape == s and tapegrad.ones(2, 3).reshape(s[::-1]).shape == (3, 2)


def test_matches_torch():
    torch = pytest.importorskip("torch")
    t, g = torch.ones(2, 3).shape, tapegrad.ones(2, 3).shape
    assert repr(g) == repr(t).replace("torch", "tapegrad")
    for f in (lambda s: s + (4,), lambda s: (1,) + s, lambda s: s * 2, lambda s: s.numel(), lambda s: s == (2, 3)):
        assert f(g) == f(t) and (type(f(g)).__name__ == type(f(t)).__name__ or type(f(t)) is not torch.Size)


def test_indexing_slices_stay_size_and_errors_match_tuple():
    s = tapegrad.ones(2, 3, 4).shape
    assert s[0] == 2 and s[-1] == 4 and type(s[0]) is int
    for sl in (s[1:], s[::-1], s[:0], s[:]):
        assert type(sl) is Size
    assert s[1:] == (3, 4) and s[::-1] == (4, 3, 2) and s[:0] == () and hash(s[1:]) == hash((3, 4))
    with pytest.raises(IndexError, match="tuple index out of range"):
        s[3]
    with pytest.raises(TypeError, match="tuple indices must be integers or slices"):
        s["a"]
    a, b, c = s
    assert (a, b, c) == (2, 3, 4)


def test_shape_of_a_tensor_over_an_array_subclass_is_a_size():
    x = tapegrad.ones(1)
    x._data = np.ma.masked_array(np.zeros((2, 5)))  # the C getter asks such an array for its shape
    assert type(x.shape) is Size and x.shape == (2, 5)


def test_shape_is_read_only():
    x = tapegrad.ones(2)
    with pytest.raises(AttributeError):
        x.shape = (1, 2)
