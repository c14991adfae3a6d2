"""tapegrad.quasirandom.SobolEngine: the unscrambled sequence is PyTorch's point for point (the
same direction numbers), across draw / draw_base2 / fast_forward / reset; scrambled points are
reproducible from a seed or tapegrad.manual_seed and stay in [0, 1) with the sequence's balance."""
import numpy as np
import pytest

import tapegrad as tg
from tapegrad.quasirandom import SobolEngine


def test_first_points_and_continuation():
    e = SobolEngine(3)
    first = e.draw(4)
    assert first.dtype == tg.float32 and first.shape == (4, 3)
    np.testing.assert_array_equal(first.numpy(), [[0, 0, 0], [0.5, 0.5, 0.5], [0.75, 0.25, 0.25], [0.25, 0.75, 0.75]])
    nxt = e.draw(2, dtype=tg.float64)
    assert nxt.dtype == tg.float64 and e.num_generated == 6
    np.testing.assert_array_equal(nxt.numpy(), [[0.375, 0.375, 0.625], [0.875, 0.875, 0.125]])
    e.reset().fast_forward(4)
    np.testing.assert_array_equal(e.draw(2, dtype=tg.float64).numpy(), nxt.numpy())


@pytest.mark.parametrize("dim", [1, 5, 200])
def test_unscrambled_matches_pytorch(dim):
    torch = pytest.importorskip("torch")
    ours, theirs = SobolEngine(dim), torch.quasirandom.SobolEngine(dim)
    for step in (1, 7, 8, 48):
        np.testing.assert_array_equal(ours.draw(step, dtype=tg.float64).numpy(),
                                      theirs.draw(step, dtype=torch.float64).numpy())
    ours.fast_forward(3), theirs.fast_forward(3)
    np.testing.assert_array_equal(ours.draw(5).numpy(), theirs.draw(5).numpy())  # float32 too
    assert repr(ours) == repr(theirs)


def test_scrambled_is_reproducible_and_balanced():
    a = SobolEngine(4, scramble=True, seed=3).draw_base2(6)
    assert tg.equal(a, SobolEngine(4, scramble=True, seed=3).draw_base2(6))
    assert not tg.equal(a, SobolEngine(4, scramble=True, seed=4).draw_base2(6))
    x = a.numpy()
    assert ((x >= 0) & (x < 1)).all()
    # balance: each half of [0, 1) in each dimension holds exactly half of 2**6 points
    assert ((x < 0.5).sum(0) == 32).all()
    tg.manual_seed(0)
    b = SobolEngine(2, scramble=True).draw(8)
    tg.manual_seed(0)
    assert tg.equal(b, SobolEngine(2, scramble=True).draw(8))


def test_out_and_errors():
    e = SobolEngine(2)
    out = tg.empty(0)
    assert e.draw(3, out=out) is out and out.shape == (3, 2)
    with pytest.raises(ValueError, match=r"draw_base2|power of 2"):
        e.draw_base2(2)  # 3 + 4 points drawn: not a power of 2
    with pytest.raises(ValueError, match=r"\[1, 21201\]"):
        SobolEngine(0)
    with pytest.raises(ValueError, match=r"\[1, 21201\]"):
        SobolEngine(21202)
    with pytest.raises(ValueError, match="non-negative int"):
        e.draw(-1)
    with pytest.raises(TypeError, match="floating"):
        e.draw(2, dtype=tg.int64)
