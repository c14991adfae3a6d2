"""The fused optimizer updates (csrc/kernels/optim.cpp, tapegrad.optim's fused path) against the
per-parameter numpy path (bit-identical), PyTorch's optimizers (within rounding), and under 1
and 2 threads."""
import numpy as np
import pytest

import tapegrad as tg
from tapegrad import _C

SHAPES = [(7, 3), (13,), (5, 1, 3), ()]  # odd sizes, a 0-d parameter


def params_for(dtype, seed=0, shapes=SHAPES):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(s).astype(dtype) for s in shapes]


def run(make_opt, dtype, fused, steps=4, shapes=SHAPES):
    """Parameters after `steps` updates with fixed gradients; every state array too."""
    ps = [tg.nn.Parameter(tg.tensor(a)) for a in params_for(dtype, shapes=shapes)]
    opt = make_opt(ps, fused)
    rng = np.random.default_rng(1)
    for _ in range(steps):
        for p in ps:
            p.grad = tg.tensor(rng.standard_normal(p.shape).astype(dtype))
        opt.step()
    state = [np.asarray(v._data) for p in ps for k, v in sorted(opt.state[p].items())]
    return [p._data.copy() for p in ps] + state


ADAM_CASES = [dict(), dict(weight_decay=0.1), dict(amsgrad=True), dict(maximize=True, weight_decay=0.05),
              dict(maximize=True)]
SGD_CASES = [dict(), dict(momentum=0.9), dict(momentum=0.9, nesterov=True, weight_decay=1e-2),
             dict(momentum=0.8, dampening=0.3, maximize=True), dict(weight_decay=0.1, maximize=True)]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kind,kw", [("Adam", k) for k in ADAM_CASES] + [("AdamW", k) for k in ADAM_CASES]
                         + [("SGD", k) for k in SGD_CASES])
def test_fused_is_bit_identical_to_the_numpy_path(kind, kw, dtype):
    cls = getattr(tg.optim, kind)
    make = lambda ps, fused: cls(ps, lr=0.05, fused=fused, **kw)  # noqa: E731
    fused, plain = run(make, dtype, True), run(make, dtype, False)
    assert len(fused) == len(plain)
    for a, b in zip(fused, plain):
        assert a.dtype == b.dtype and a.tobytes() == b.tobytes()
    foreach = run(lambda ps, _: cls(ps, lr=0.05, foreach=True, **kw), dtype, None)
    assert all(a.tobytes() == b.tobytes() for a, b in zip(foreach, plain))


@pytest.mark.parametrize("kind,kw", [("Adam", dict(weight_decay=0.1, amsgrad=True)), ("AdamW", dict()),
                                     ("SGD", dict(momentum=0.9, nesterov=True))])
def test_fused_matches_pytorch(kind, kw):
    torch = pytest.importorskip("torch")
    arrays = params_for(np.float64, seed=3)
    ps = [tg.nn.Parameter(tg.tensor(a)) for a in arrays]
    ts = [torch.nn.Parameter(torch.tensor(a)) for a in arrays]
    opt = getattr(tg.optim, kind)(ps, lr=0.05, fused=True, **kw)
    topt = getattr(torch.optim, kind)(ts, lr=0.05, **kw)
    rng = np.random.default_rng(4)
    for _ in range(5):
        for p, t in zip(ps, ts):
            g = rng.standard_normal(p.shape)
            p.grad, t.grad = tg.tensor(g), torch.tensor(g)
        opt.step()
        topt.step()
    for p, t in zip(ps, ts):
        np.testing.assert_allclose(p._data, t.detach().numpy(), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("kind,kw", [("Adam", dict(amsgrad=True, weight_decay=0.1)), ("SGD", dict(momentum=0.9))])
def test_one_and_two_threads_are_identical(kind, kw):
    """Large enough to split into tiles over the threads (and several parameters in one call)."""
    shapes = [(300, 301), (70001,), (3,)]
    make = lambda ps, fused: getattr(tg.optim, kind)(ps, lr=0.01, fused=fused, **kw)  # noqa: E731
    before = _C.get_num_threads()
    try:
        _C.set_num_threads(1)
        one = run(make, np.float32, True, steps=2, shapes=shapes)
        _C.set_num_threads(2)
        two = run(make, np.float32, True, steps=2, shapes=shapes)
    finally:
        _C.set_num_threads(before)
    assert all(a.tobytes() == b.tobytes() for a, b in zip(one, two))
    plain = run(make, np.float32, False, steps=2, shapes=shapes)
    assert all(a.tobytes() == b.tobytes() for a, b in zip(one, plain))


def test_state_in_another_dtype_falls_back_to_the_numpy_path():
    p = tg.nn.Parameter(tg.tensor(np.ones(5, np.float32)))
    opt = tg.optim.SGD([p], lr=0.1, momentum=0.9)
    p.grad = tg.ones(5)
    opt.step()
    opt.state[p]["momentum_buffer"] = tg.tensor(np.ones(5, np.float64))  # as a foreign state_dict could
    opt.step()
    np.testing.assert_allclose(p._data, 1 - 0.1 - 0.1 * 1.9, rtol=1e-6)


def test_flags_and_bad_input_raise():
    p = tg.nn.Parameter(tg.ones(3))
    with pytest.raises(RuntimeError, match="`fused` and `foreach` cannot be `True` together"):
        opt = tg.optim.Adam([p], fused=True, foreach=True)
        p.grad = tg.ones(3)
        opt.step()
    q = tg.nn.Parameter(tg.tensor(np.ones(3, np.float64)))
    opt = tg.optim.Adam([p, q], fused=True)
    p.grad, q.grad = tg.ones(3), tg.tensor(np.ones(3, np.float64))
    with pytest.raises(RuntimeError, match="fused=True` requires"):
        opt.step()
    a = np.ones(4, np.float32)
    with pytest.raises(ValueError, match=r"adam_step: dtypes differ: params\[0\] is float32, grads\[0\] is float64"):
        _C.adam_step([a], [np.ones(4)], [a.copy()], [a.copy()], None, 0.1, 0.9, 0.999, 1e-8, 0, 1, False, False)
    with pytest.raises(ValueError, match=r"sgd_step: momentum_buffers\[0\] \(3,\) and params\[0\] \(4,\)"):
        _C.sgd_step([a], [a.copy()], [np.ones(3, np.float32)], [True], 0.1, 0.9, 0, 0, False, False)
    with pytest.raises(ValueError, match="adam_step: exp_avgs has 0 arrays for 1 parameters"):
        _C.adam_step([a], [a.copy()], [], [a.copy()], None, 0.1, 0.9, 0.999, 1e-8, 0, 1, False, False)
    with pytest.raises(ValueError, match="sgd_step: only float32 and float64"):
        _C.sgd_step([np.ones(3, np.int64)], [np.ones(3, np.int64)], None, [], 0.1, 0, 0, 0, False, False)
    ro = np.ones(4, np.float32)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match=r"sgd_step: params\[0\] is read-only"):
        _C.sgd_step([ro], [a.copy()], None, [], 0.1, 0, 0, 0, False, False)
