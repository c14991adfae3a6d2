"""relu_ with nothing recorded writes the relu kernel's result straight into the tensor (C-contiguous
and large: _C.relu(a, out=a) on the kernel threads; otherwise numpy's maximum with out=): the bits
of relu() for every route, NaN and signed zeros included, at 1, 2 and 3 threads."""
import numpy as np
import pytest

import tapegrad as tg
from tapegrad import _C
from tapegrad.ops import activation

N = activation._RELU_KERNEL_MIN


def _values(dtype, n, seed=3):
    x = np.random.default_rng(seed).standard_normal(n).astype(dtype)
    x[:6] = [0.0, -0.0, np.nan, -np.inf, np.inf, -np.finfo(dtype).smallest_subnormal]
    return x


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n", [7, N - 1, N, 3 * 16384 + 11])
def test_relu_inplace_is_relus_bits(dtype, n, restore_threads):
    x = _values(dtype, n)
    want = tg.relu(tg.tensor(x)).numpy().tobytes()
    for k in (1, 2, 3):
        tg.set_num_threads(k)
        t = tg.tensor(x)
        v0 = t._version
        assert t.relu_() is t and t.numpy().tobytes() == want and t._version == v0 + 1
        assert tg.nn.functional.relu_(tg.tensor(x)).numpy().tobytes() == want


def test_relu_inplace_on_a_strided_view_writes_only_the_view():
    base = _values(np.float32, 2 * N)
    t = tg.tensor(base.copy())
    t[::2].relu_()
    got = t.numpy()
    np.testing.assert_array_equal(got[1::2], base[1::2])
    np.testing.assert_array_equal(got[::2], np.maximum(base[::2], np.float32(0)))


def test_relu_inplace_still_records_where_it_must():
    a = tg.randn(N, requires_grad=True)
    b = a * 1.0
    b.relu_()
    b.sum().backward()
    np.testing.assert_array_equal(a.grad.numpy(), (a.detach().numpy() > 0).astype(np.float32))


def test_relu_out_errors_name_the_op():
    a = np.ones((3, 4), np.float32)
    with pytest.raises(ValueError, match=r"relu: x \(3, 4\) and out \(4, 3\) must have one shape"):
        _C.relu(a, np.empty((4, 3), np.float32))
    with pytest.raises(ValueError, match="relu: dtypes differ"):
        _C.relu(a, np.empty((3, 4), np.float64))
    big = np.ones(13, np.float32)
    with pytest.raises(ValueError, match="relu: out overlaps x"):
        _C.relu(big[1:], big[:-1])
    ro = np.empty_like(a)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="relu: out is read-only"):
        _C.relu(a, ro)
