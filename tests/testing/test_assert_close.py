"""assert_close against torch.testing.assert_close: the same pass/fail and the same message."""
import numpy as np
import pytest

import tapegrad as tg
from tapegrad.testing import assert_close

CASES = {
    "close_f32": lambda M: (M.tensor([1., 2., 3.]), M.tensor([1., 2.000001, 3.])),
    "far_f32": lambda M: (M.tensor([1., 2., 3.]), M.tensor([1., 2.1, 3.])),
    "ints": lambda M: (M.tensor([1, 2, 3]), M.tensor([1, 5, 3])),
    "shape": lambda M: (M.tensor([1., 2.]), M.tensor([1., 2., 3.])),
    "dtype": lambda M: (M.tensor([1., 2.]), M.tensor([1., 2.], dtype=M.float64)),
    "scalars": lambda M: (1.0, 1.1),
    "int_scalars": lambda M: (1, 2),
    "nan": lambda M: (M.tensor([1., float("nan")]), M.tensor([1., float("nan")])),
    "zero_d": lambda M: (M.tensor(1.), M.tensor(1.5)),
    "matrix": lambda M: (M.tensor([[1., 2.], [3, 4]]), M.tensor([[1., 2.], [3, 0]])),
    "bools": lambda M: (M.tensor([True]), M.tensor([False])),
    "inf": lambda M: (M.tensor([1., float("inf")]), M.tensor([1., 2.5])),
    "list": lambda M: ([M.tensor([1., 2.])], [M.tensor([1., 2.5])]),
    "dict": lambda M: ({"a": M.tensor([1., 2.])}, {"a": M.tensor([1., 2.5])}),
    "f64": lambda M: (M.tensor([1., 2.], dtype=M.float64), M.tensor([1., 2. + 1e-6], dtype=M.float64)),
    "mixed_types": lambda M: (M.tensor([1., 2.]), [1., 2.]),
}
KW = {"rtol_only": ({"rtol": 0.1}, "far_f32"), "tolerant": ({"rtol": 0.1, "atol": 0.1}, "far_f32"),
      "equal_nan": ({"equal_nan": True}, "nan"), "no_dtype": ({"check_dtype": False}, "dtype"),
      "msg": ({"msg": "custom"}, "far_f32"), "msg_fn": ({"msg": lambda m: "X" + m[:12]}, "far_f32")}


def _outcome(M, assert_fn, name, kw):
    try:
        assert_fn(*CASES[name](M), **kw)
        return None
    except Exception as e:  # noqa: BLE001
        return type(e).__name__, str(e).replace("torch.", "tapegrad.").replace("tapegrad.tensor.Tensor", "tapegrad.Tensor")


@pytest.mark.parametrize("name", sorted(CASES) + sorted(KW))
def test_assert_close_matches_torch(name):
    kw, case = KW.get(name, ({}, name))
    got = _outcome(tg, assert_close, case, kw)
    torch = pytest.importorskip("torch")
    want = _outcome(torch, torch.testing.assert_close, case, kw)
    assert got == want


def test_assert_close_passes_and_fails_without_torch():
    assert_close(tg.ones(3), tg.ones(3) + 1e-7)
    with pytest.raises(AssertionError, match="Tensor-likes are not close!"):
        assert_close(tg.ones(3), tg.ones(3) * 1.1)
    assert_close(np.float64(1.0), 1.0 + 1e-9, check_dtype=False)
