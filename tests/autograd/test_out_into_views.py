"""``out=`` with a shape other than the result's resizes ``out`` as PyTorch's ``resize_``: the
result is laid out contiguously from ``out``'s first element, in the same memory, so a base (or
another view) of ``out`` sees the values. A fresh array was allocated instead, and the base kept
its old values: a silently wrong forward (and so gradient) for code that reads the base.
"""
import numpy as np
import pytest

import tapegrad as tg


def cases(lib):
    f64 = lib.float64
    out = {}
    x = lib.zeros(4, 3, dtype=f64)
    v = x[1:, 1]  # strided view, 3 elements; the result (2 elements) is written at x[1, 1], x[1, 2]
    lib.add(lib.ones(2, dtype=f64), 1, out=v)
    out["strided_view_shrinks"] = (x, v)
    y = lib.full((2, 3), 0.5, dtype=f64)
    d = y.diagonal()
    lib.add(y.sum(), 1.0, out=d)  # 0-d result written at y[0, 0]
    out["diagonal_to_0d"] = (y, d)
    z = lib.zeros(4, dtype=f64)
    w = z[2:]  # room for 2, the result has 3: the 2 that fit reach z
    lib.add(lib.ones(3, dtype=f64), 1, out=w)
    out["view_grows_past_its_memory"] = (z, w)
    b = lib.zeros(4, dtype=f64)
    head = b[:2]
    lib.add(lib.ones(3, dtype=f64), 1, out=b)  # b shrinks to 3 elements of its own memory: head sees them
    out["base_shrinks_view_sees_it"] = (b, head)
    return out


EXPECTED = {
    "strided_view_shrinks": ([[0, 0, 0], [0, 2, 2], [0, 0, 0], [0, 0, 0]], [2, 2]),
    "diagonal_to_0d": ([[4.0, 0.5, 0.5], [0.5, 0.5, 0.5]], 4.0),
    "view_grows_past_its_memory": ([0, 0, 2, 2], [2, 2, 2]),
    "base_shrinks_view_sees_it": ([2, 2, 2], [2, 2]),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_out_resize_writes_into_the_shared_memory(name):
    base, view = cases(tg)[name]
    want_base, want_view = EXPECTED[name]
    np.testing.assert_array_equal(base.numpy(), want_base)
    np.testing.assert_array_equal(view.numpy(), want_view)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_out_resize_matches_pytorch(name):
    torch = pytest.importorskip("torch")
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # PyTorch warns that a non-empty out= was resized
        tb, tv = cases(torch)[name]
    gb, gv = cases(tg)[name]
    np.testing.assert_array_equal(gb.numpy(), tb.numpy())
    np.testing.assert_array_equal(gv.numpy(), tv.numpy())
