"""autograd.forward_ad (dual tensors) and the autograd switches against PyTorch."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")
import torch.autograd.forward_ad  # noqa: E402,F401

import tapegrad as tg  # noqa: E402

R = np.random.default_rng(0)


def _jvp(M, fn, xs, ts):
    fw = M.autograd.forward_ad
    with fw.dual_level():
        duals = [fw.make_dual(M.tensor(x), M.tensor(t)) for x, t in zip(xs, ts)]
        out = fn(M, *duals)
        outs = out if isinstance(out, tuple) else (out,)
        return [(fw.unpack_dual(o).primal.detach().numpy(), fw.unpack_dual(o).tangent) for o in outs]


@pytest.mark.parametrize("fn", [
    lambda M, x, y: (x * y).sin().sum(1),
    lambda M, x, y: (M.nn.functional.softmax(x @ y.mT, -1), x.exp()),
    lambda M, x, y: M.linalg.solve(x @ x.mT + 3 * M.eye(3, dtype=M.float64), y),
])
def test_jvp_matches_torch(fn):
    xs = [R.standard_normal((3, 3)), R.standard_normal((3, 3))]
    ts = [R.standard_normal((3, 3)), R.standard_normal((3, 3))]
    for (pt, tt), (pg, tgt) in zip(_jvp(torch, fn, xs, ts), _jvp(tg, fn, xs, ts)):
        np.testing.assert_allclose(pg, pt, rtol=1e-12)
        np.testing.assert_allclose(tgt.numpy(), tt.numpy(), rtol=1e-10, atol=1e-12)


def test_dual_level_rules():
    fw = tg.autograd.forward_ad
    with pytest.raises(RuntimeError, match="dual level"):
        fw.make_dual(tg.zeros(2), tg.zeros(2))
    with fw.dual_level():
        x = fw.make_dual(tg.ones(2), tg.tensor([1.0, 2.0]))
        assert fw.unpack_dual(x).tangent is not None
        assert fw.unpack_dual(tg.ones(2) * 3).tangent is None
        np.testing.assert_array_equal(fw.unpack_dual(x * 0 + 5).tangent.numpy(), [0, 0])
        with pytest.raises(RuntimeError, match="different size"):
            fw.make_dual(tg.ones(2), tg.ones(3))
    assert fw.unpack_dual(x).tangent is None


def test_autograd_switches():
    assert tg.autograd.is_multithreading_enabled() == torch.autograd.is_multithreading_enabled()
    with tg.autograd.set_multithreading_enabled(False):
        assert not tg.autograd.is_multithreading_enabled()
    assert tg.autograd.is_multithreading_enabled()
    assert tg.autograd.is_view_replay_enabled() == torch.autograd.is_view_replay_enabled()
    assert tg.autograd.is_tensor_like(tg.zeros(1)) and not tg.autograd.is_tensor_like(np.zeros(1))
    with tg.autograd.inference_mode():
        assert not (tg.ones(1, requires_grad=True) * 2).requires_grad
    assert tg.inference_mode is tg.autograd.inference_mode
