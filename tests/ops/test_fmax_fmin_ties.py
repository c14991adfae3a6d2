"""fmax / fmin give the whole gradient of a tie to ``input``, as PyTorch's derivatives do
(``self >= other`` or other is NaN picks self); tapegrad built them on maximum / minimum, which
split a tie half and half. NaN handling and values are unchanged."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")

import tapegrad as tg  # noqa: E402

NAN = float("nan")
A = np.array([1.0, 2.0, NAN, NAN, 3.0, 1.0, -0.0])
B = np.array([1.0, 3.0, 1.0, NAN, NAN, 0.5, 0.0])


@pytest.mark.parametrize("name", ["fmax", "fmin"])
def test_ties_and_nans_match_torch(name):
    res = []
    for M in (torch, tg):
        x, y = M.tensor(A, requires_grad=True), M.tensor(B, requires_grad=True)
        z = getattr(M, name)(x, y)
        (z * M.arange(1.0, 8.0, dtype=M.float64)).nansum().backward()
        res.append((z.detach().numpy(), x.grad.numpy(), y.grad.numpy()))
    for a, b in zip(*res):
        np.testing.assert_array_equal(a, b)
    x = tg.tensor([2.0, 2.0], requires_grad=True)
    getattr(tg, name)(x, tg.tensor([2.0, 2.0])).sum().backward()
    assert x.grad.tolist() == [1.0, 1.0]
