"""Dropout1d/2d/3d on batched and unbatched inputs: which dims share one draw, and PyTorch's
warnings and errors for the dims it does not expect."""
import warnings

import numpy as np
import pytest

import tapegrad
import tapegrad.nn.functional as F
from tapegrad import nn


def _groups(fn, shape, **kw):
    """The set of dims over which one draw is shared, found from the output of ones."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        y = np.asarray(fn(tapegrad.ones(*shape), 0.5, **kw))
    assert set(np.unique(y)) <= {0.0, 2.0}
    return tuple(d for d in range(len(shape)) if shape[d] > 1 and (np.ptp(y, axis=d) == 0).all())


@pytest.mark.parametrize("fn, shape, shared", [
    (F.dropout1d, (30, 40), (1,)),                # unbatched (C, L): one draw per channel
    (F.dropout1d, (4, 30, 5), (2,)),
    (F.dropout2d, (4, 30, 5, 6), (2, 3)),
    (F.dropout2d, (40, 30, 5), (2,)),             # 3-D: (N, C, L), as PyTorch still reads it
    (F.dropout2d, (40, 30), ()),                  # 2-D: per element
    (F.dropout3d, (30, 2, 3, 4), (1, 2, 3)),      # unbatched (C, D, H, W)
    (F.dropout3d, (4, 30, 2, 3, 4), (2, 3, 4)),
    (F.dropout3d, (30, 4, 5), (1, 2)),            # 3-D: unsqueezed, one draw per dim-0 slice
])
def test_which_dims_share_a_draw(fn, shape, shared):
    tapegrad.manual_seed(0)
    assert _groups(fn, shape) == shared


def test_module_on_unbatched_input():
    tapegrad.manual_seed(0)
    y = nn.Dropout3d(0.5)(tapegrad.ones(30, 2, 3, 4))
    assert y.shape == (30, 2, 3, 4)
    assert np.ptp(np.asarray(y).reshape(30, -1), axis=1).max() == 0
    with pytest.warns(UserWarning, match="Received a 2-D input to dropout3d"):
        assert (np.asarray(nn.Dropout3d(0.5).eval()(tapegrad.ones(2, 3))) == 1).all()


@pytest.mark.filterwarnings("ignore:dropout2d. Received a 1-D input")
def test_errors():
    with pytest.raises(RuntimeError, match="dropout1d: Expected 2D or 3D input, but received a 4D input"):
        F.dropout1d(tapegrad.ones(2, 3, 4, 5))
    with pytest.raises(RuntimeError, match="Feature dropout requires at least 2 dimensions"):
        F.dropout2d(tapegrad.ones(3))
    assert (np.asarray(F.dropout2d(tapegrad.ones(3), 1.0)) == 0).all()  # p=1 checks no dims, as PyTorch


@pytest.mark.parametrize("name, shape", [("dropout2d", (2, 3, 4)), ("dropout2d", (3, 4)), ("dropout2d", (1, 2, 3, 4, 5)),
                                         ("dropout2d", (2, 3, 4, 5)), ("dropout3d", (3, 4, 5)), ("dropout3d", (2, 3, 4, 5)),
                                         ("dropout3d", (1, 3, 4, 5, 1, 1)), ("dropout1d", (3, 4))])
def test_warnings_match_torch(name, shape):
    torch = pytest.importorskip("torch")
    got = {}
    for M in (tapegrad, torch):
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            y = getattr(M.nn.functional, name)(M.ones(*shape), 0.5)
        assert tuple(y.shape) == shape
        got[M] = [(x.category, str(x.message)) for x in w]
    assert got[tapegrad] == got[torch]
