"""scatter_reduce (every reduction, with and without self) and masked_scatter against PyTorch:
values, float64 gradients, double backward, in-place forms and errors."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch_oracle import check_double_backward, check_forward_and_gradients, check_same_exception_type  # noqa: E402

import tapegrad as tg  # noqa: E402

R = np.random.default_rng(0)
X = R.standard_normal((4, 3))
SRC = R.standard_normal((4, 3))  # PyTorch's backward needs src shaped like index
IDX = np.array([[0, 1, 2], [0, 3, 2], [3, 1, 1], [0, 0, 2]])  # repeats in every column, some rows untouched
ZX = np.where(R.random((4, 3)) > 0.7, 0.0, X)       # exact zeros for prod
ZSRC = np.where(R.random((4, 3)) > 0.7, 0.0, SRC)
MASK = R.random((4, 3)) > 0.5
SRC5 = R.standard_normal((5, 3))


CASES = {}
for red in ("sum", "prod", "mean", "amax", "amin"):
    for inc in (True, False):
        CASES[f"{red}-{inc}"] = (lambda M, x, s, red=red, inc=inc: (
            M.scatter_reduce(x, 0, M.tensor(IDX), s, red, include_self=inc),
            x.T.scatter_reduce(1, M.tensor(IDX.T.copy()), s.T, red, include_self=inc)),
            [ZX, ZSRC] if red == "prod" else [X, SRC])
CASES["masked_scatter"] = (lambda M, x, s: (x.masked_scatter(M.tensor(MASK), s), M.masked_scatter(x, M.tensor(MASK[0]), s),
                                            x.masked_scatter(M.tensor(MASK[:, :1]), s[:3]),
                                            x.masked_scatter(M.tensor(MASK), M.tensor(SRC5) * s[:1])), [X, SRC])


@pytest.mark.parametrize("name", sorted(CASES))
def test_scatter_matches_torch(name):
    fn, arrays = CASES[name]
    check_forward_and_gradients(fn, arrays)


@pytest.mark.parametrize("red", ["sum", "prod", "mean", "amax"])
def test_scatter_reduce_double_backward(red):
    check_double_backward(lambda M, x, s: (x.scatter_reduce(0, M.tensor(IDX), s, red) ** 2).sum(), [X + 3, SRC + 3],
                          red, lambda outs: outs[0])


def test_inplace_forms_and_ints_match_torch():
    for M in (torch, tg):
        x = M.tensor(X.copy())
        x.scatter_reduce_(0, M.tensor(IDX), M.tensor(SRC), "amin", include_self=False)
        y = M.tensor(X.copy())
        y.masked_scatter_(M.tensor(MASK), M.tensor(SRC))
        z = M.tensor([1, 2, 3, 4]).scatter_reduce(0, M.tensor([0, 0, 1, 1]), M.tensor([5, 6, 7, 9]), "mean")
        if M is torch:
            want = (x.numpy(), y.numpy(), z.numpy())
        else:
            for a, b in zip((x.numpy(), y.numpy(), z.numpy()), want):
                np.testing.assert_array_equal(a, b)


def test_scatter_errors_match_torch():
    check_same_exception_type(lambda M: M.zeros(3).scatter_reduce(0, M.tensor([0, 5]), M.ones(2), "sum"))
    check_same_exception_type(lambda M: M.zeros(3).scatter_reduce(0, M.tensor([0, 1]), M.ones(2), "foo"))
    np.testing.assert_array_equal(tg.zeros(3).scatter_reduce(0, tg.tensor([0, 1]), -tg.ones(2), "min").numpy(),
                                  torch.zeros(3).scatter_reduce(0, torch.tensor([0, 1]), -torch.ones(2), "min").numpy())
    check_same_exception_type(lambda M: M.zeros(3).masked_scatter(M.tensor([True, True, False]), M.ones(1)))
    check_same_exception_type(lambda M: M.zeros(3).masked_scatter(M.tensor([1, 1, 0]), M.ones(3)))
