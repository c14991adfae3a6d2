"""Ops added to close PyTorch API gaps that have no gradient (or a deliberate divergence): their
values and errors against PyTorch. The differentiable ones are entries of tests/ops/op_table.py."""
import warnings

import numpy as np
import pytest

import tapegrad as tg

torch = pytest.importorskip("torch")


def _same(a, b):
    a = a if isinstance(a, tuple) else (a,)
    b = b if isinstance(b, tuple) else (b,)
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert tuple(x.shape) == tuple(y.shape) and str(x.dtype) == str(y.dtype).replace("torch.", "tapegrad.")
        np.testing.assert_allclose(x.numpy(), y.numpy(), rtol=1e-14, atol=0)


def _both(fn, *arrays):
    return fn(tg, *[tg.tensor(a) for a in arrays]), fn(torch, *[torch.tensor(a) for a in arrays])


I1, I2 = np.array([12, 0, -8, 7, 0]), np.array([8, 5, 6, 0, 0])
F1, F2 = np.array([1.0, -0.0, 3.5, 1e-300, np.inf]), np.array([2.0, 1.0, -np.inf, 0.0, 0.0])


@pytest.mark.parametrize("fn", [
    lambda M, a, b: M.gcd(a, b), lambda M, a, b: M.lcm(a, b), lambda M, a, b: a.gcd(b), lambda M, a, b: a.lcm(b),
    lambda M, a, b: a.clone().gcd_(b), lambda M, a, b: a.clone().lcm_(b),
])
def test_gcd_lcm(fn):
    _same(*_both(fn, I1, I2))


def test_gcd_refuses_floats():
    for M in (tg, torch):
        with pytest.raises(RuntimeError):
            M.gcd(M.tensor([1.0]), M.tensor([2.0]))


@pytest.mark.parametrize("fn", [lambda M, a, b: M.nextafter(a, b), lambda M, a, b: a.clone().nextafter_(b),
                                lambda M, a, b: M.frexp(a), lambda M, a, b: a.frexp(),
                                lambda M, a, b: M.ldexp(a, M.tensor([1, 2, 3, 4, 5])),
                                lambda M, a, b: a.clone().ldexp_(M.tensor(3))])
def test_float_bit_ops(fn):
    _same(*_both(fn, F1, F2))


def test_frexp_refuses_integers():
    for M in (tg, torch):
        with pytest.raises(RuntimeError):
            M.frexp(M.tensor([1, 2]))


def test_ldexp_gradient_with_negative_exponent_beats_pytorch():
    # d(x * 2**e)/dx = 2**e; PyTorch's formula computes pow(2, e) in integers, giving 0 for e < 0
    x = tg.tensor([1.0, 2.0], dtype=tg.float64, requires_grad=True)
    tg.ldexp(x, tg.tensor([-2, 3])).sum().backward()
    assert x.grad.tolist() == [0.25, 8.0]
    t = torch.tensor([1.0, 2.0], dtype=torch.float64, requires_grad=True)
    torch.ldexp(t, torch.tensor([-2, 3])).sum().backward()
    assert t.grad.tolist() == [0.0, 8.0]  # if this starts to fail, PyTorch fixed it: compare directly


@pytest.mark.parametrize("fn", [
    lambda M, x: M.split_with_sizes(x, [1, 3], 1), lambda M, x: x.split_with_sizes([2, 1, 1], 1),
    lambda M, x: M.unsafe_split(x, 3, 1), lambda M, x: x.unsafe_split_with_sizes([2, 1], 0),
    lambda M, x: M.unsafe_chunk(x, 2, 1), lambda M, x: x.unsafe_chunk(3),
    lambda M, x: M.nonzero_static(x, size=20), lambda M, x: x.nonzero_static(size=2, fill_value=7),
    lambda M, x: M.unravel_index(M.tensor([[0, 5], [11, -1]]), (3, 4)), lambda M, x: M.unravel_index(M.tensor(7), 9),
    lambda M, x: M.histogram(x, 3), lambda M, x: x.histogram(M.tensor([0.0, 2.0, 5.0, 11.0], dtype=x.dtype), density=True),
    lambda M, x: M.histogram(x, 4, range=(1.0, 5.0), weight=x),
    lambda M, x: x.clone().index_put_((M.tensor([0, 0]),), M.tensor(1.0, dtype=x.dtype), True),
    lambda M, x: x.clone().put_(M.tensor([1, 1]), M.tensor([2.0, 3.0], dtype=x.dtype), True),
    lambda M, x: x.clone().index_reduce_(1, M.tensor([0, 0, 3]), M.ones(3, 3, dtype=x.dtype) * 2, "amax", include_self=False),
    lambda M, x: M.mvlgamma(x + 1, 2), lambda M, x: (x + 1).mvlgamma_(1),
    lambda M, x: M.rsub(x, 1, alpha=2), lambda M, x: M.rsub(x, x * 2),
])
def test_index_and_split_forms(fn):
    x = np.arange(12.0).reshape(3, 4) * np.array([1, 0, 1, 1])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # index_reduce is "beta" in PyTorch
        got, want = _both(fn, x)
    if isinstance(want, (tuple, list)):
        got, want = tuple(got), tuple(want)
    _same(got, want)


def test_index_errors_as_pytorch():
    # an index past the end: PyTorch wraps it silently (12 in (3, 4) gives (0, 0)); tapegrad raises
    assert [c.tolist() for c in torch.unravel_index(torch.tensor([12]), (3, 4))] == [[0], [0]]
    with pytest.raises(RuntimeError, match="range"):
        tg.unravel_index(tg.tensor([12]), (3, 4))
    for M in (tg, torch):
        with pytest.raises(TypeError):
            M.unravel_index(M.tensor([1.0]), (3, 4))
        with pytest.raises(RuntimeError):
            M.zeros(3).index_reduce(0, M.tensor([0]), M.ones(1), "sum")
        with pytest.raises(RuntimeError):
            M.nonzero_static(M.ones(2), size=-1)


@pytest.mark.parametrize("name", ["hann_window", "hamming_window", "bartlett_window", "blackman_window",
                                  "kaiser_window"])
def test_windows(name):
    for n in (0, 1, 2, 7, 8):
        for periodic in (True, False):
            a, b = getattr(tg, name)(n, periodic, dtype=tg.float64), getattr(torch, name)(n, periodic, dtype=torch.float64)
            np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-14)
    assert getattr(tg, name)(5).dtype == tg.float32
    for M in (tg, torch):
        with pytest.raises(RuntimeError):
            getattr(M, name)(5, dtype=M.int64)
        with pytest.raises(RuntimeError):
            getattr(M, name)(-1)


def test_window_parameters():
    np.testing.assert_allclose(tg.hamming_window(6, False, 0.5, 0.3, dtype=tg.float64).numpy(),
                               torch.hamming_window(6, False, 0.5, 0.3, dtype=torch.float64).numpy())
    np.testing.assert_allclose(tg.kaiser_window(6, True, 5.0, dtype=tg.float64).numpy(),
                               torch.kaiser_window(6, True, 5.0, dtype=torch.float64).numpy())


def test_random_fills_and_samplers_have_the_right_distribution():
    tg.manual_seed(0)
    n = 20000
    x = tg.zeros(n, dtype=tg.float64)
    assert x.geometric_(0.25) is x and x.min().item() >= 1 and abs(x.mean().item() - 4) < 0.15
    assert x.log_normal_(0.5, 0.25) is x and abs(x.log().mean().item() - 0.5) < 0.01
    assert abs(x.log().std().item() - 0.25) < 0.01
    x.cauchy_(2.0, 0.5)
    assert abs(x.median().item() - 2.0) < 0.03 and abs(np.quantile(x.numpy(), 0.75) - 2.5) < 0.05
    p = tg.poisson(tg.full((n,), 3.0))
    assert p.dtype == tg.float32 and abs(p.mean().item() - 3) < 0.05 and abs(p.var().item() - 3) < 0.15
    b = tg.binomial(tg.full((n,), 10.0), tg.full((n,), 0.3))
    assert b.max().item() <= 10 and abs(b.mean().item() - 3) < 0.05
    for bad in (lambda: tg.zeros(2).geometric_(1.5), lambda: tg.zeros(2).log_normal_(0, -1),
                lambda: tg.poisson(tg.tensor([-1.0])), lambda: tg.binomial(tg.ones(1), tg.ones(1) * 2)):
        with pytest.raises(RuntimeError):
            bad()
    with pytest.raises(RuntimeError):
        torch.zeros(2).geometric_(1.5)


def test_legacy_linalg_forms():
    a = np.random.default_rng(0).standard_normal((3, 3))
    r = tg.svd(tg.tensor(a), compute_uv=False)
    t = torch.svd(torch.tensor(a), compute_uv=False)
    assert r.U.shape == t.U.shape and not r.U.numpy().any() and not t.U.numpy().any()
    np.testing.assert_allclose(r.S.numpy(), t.S.numpy())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        s = torch.triangular_solve(torch.ones(3, 1, dtype=torch.float64), torch.tensor(a))
    g = tg.triangular_solve(tg.ones(3, 1, dtype=tg.float64), tg.tensor(a))
    np.testing.assert_allclose(g.cloned_coefficient.numpy(), s.cloned_coefficient.numpy())
    assert tg.qr(tg.tensor(a)).Q.shape == (3, 3) and tg.tensor(a).svd().V.shape == (3, 3)


@pytest.mark.parametrize("fn", [lambda M, x: M.hash_tensor(x), lambda M, x: x.hash_tensor(),
                                lambda M, x: M.hash_tensor(x, 1), lambda M, x: M.hash_tensor(x, -1, keepdim=True),
                                lambda M, x: M.hash_tensor(x.int()), lambda M, x: M.hash_tensor(x.float(), 0)])
def test_hash_tensor(fn):
    _same(*_both(fn, np.arange(12.0).reshape(3, 4) - 5.5))


def test_histogramdd():
    p = np.random.default_rng(1).random((60, 2))
    for kw in ({"bins": [3, 4]}, {"bins": 3, "range": [0.0, 1.0, 0.0, 2.0], "density": True},
               {"bins": 2, "weight": "w"}):
        kw_t = dict(kw, weight=torch.tensor(p[:, 0])) if "weight" in kw else kw
        kw_g = dict(kw, weight=tg.tensor(p[:, 0])) if "weight" in kw else kw
        a, b = tg.histogramdd(tg.tensor(p), **kw_g), torch.histogramdd(torch.tensor(p), **kw_t)
        np.testing.assert_allclose(a.hist.numpy(), b.hist.numpy())
        assert isinstance(a.bin_edges, tuple) and len(a.bin_edges) == len(b.bin_edges) == 2
        for x, y in zip(a.bin_edges, b.bin_edges):
            np.testing.assert_allclose(x.numpy(), y.numpy())


def test_as_strided_family():
    x9 = np.arange(9.0)
    for args in (((2, 2), (1, 2)), ((3, 3), (3, 1)), ((2, 2), (1, 2), 1), ((2, 3), (0, 1)), ((0, 2), (1, 1))):
        _same(*_both(lambda M, x: M.as_strided(x, *args), x9))
        _same(*_both(lambda M, x: x.clone().as_strided_(*args), x9))
    _same(*_both(lambda M, x: M.as_strided_scatter(x, M.ones(2, 2, dtype=x.dtype), (2, 2), (1, 3)), x9))
    for M in (tg, torch):
        with pytest.raises(RuntimeError):
            M.as_strided(M.arange(9.0), (3, 3), (3, 2))  # past the end
    # a view: its storage offset and strides address the base's memory, as PyTorch's (torchdiffeq's
    # adjoint takes as_strided(y, (), ()) of a view); reading memory outside the view is refused
    views = (lambda M: M.arange(12.0)[2:], lambda M: M.arange(12.0).reshape(3, 4)[:, 1:3],
             lambda M: M.arange(12.0).reshape(3, 4).t(), lambda M: M.arange(12.0).reshape(3, 4)[1:].detach())
    for view in views:
        for args in (((), ()), ((2,), (1,)), ((2, 2), (4, 1)), ((2,), (4,), 5), ((1, 2), (0, 1))):
            try:
                want = torch.as_strided(view(torch), *args).tolist()
            except RuntimeError:
                continue
            try:
                got = tg.as_strided(view(tg), *args).tolist()
            except RuntimeError as e:
                assert "outside this view" in str(e)
                continue
            assert got == want, args
    with pytest.raises(RuntimeError, match=r"read memory outside this view of shape \(3,\)"):
        tg.as_strided(tg.arange(12.0).reshape(3, 4)[:, 1], (2,), (1,))  # PyTorch reads the base's storage
    base = tg.arange(12.0, requires_grad=True)
    (tg.as_strided(base.reshape(3, 4)[:, 1:3], (2, 2), (4, 1)) * tg.tensor([[1.0, 2.0], [3.0, 4.0]])).sum().backward()
    assert base.grad.tolist() == [0, 1, 2, 0, 0, 3, 4, 0, 0, 0, 0, 0]


def test_as_strided_gradient_sums_overlaps_as_pytorch():
    a, b = tg.arange(4.0, requires_grad=True), torch.arange(4.0, requires_grad=True)
    (tg.as_strided(a * 1, (3, 2), (1, 1)) * tg.tensor([1.0, 2.0])).sum().backward()
    (torch.as_strided(b * 1, (3, 2), (1, 1)) * torch.tensor([1.0, 2.0])).sum().backward()
    assert a.grad.tolist() == b.grad.tolist()


def test_lowrank_and_lobpcg_are_the_exact_answers_pytorch_converges_to():
    r = np.random.default_rng(0)
    A, M = r.standard_normal((8, 6)), r.standard_normal((8, 6))
    torch.manual_seed(0)
    for f in (lambda m, x, y: m.svd_lowrank(x, 3, niter=40), lambda m, x, y: m.svd_lowrank(x, 2, niter=40, M=y),
              lambda m, x, y: m.pca_lowrank(x, niter=40), lambda m, x, y: m.svd_lowrank(x)):
        got, want = f(tg, tg.tensor(A), tg.tensor(M)), f(torch, torch.tensor(A), torch.tensor(M))
        assert [tuple(g.shape) for g in got] == [tuple(w.shape) for w in want]
        np.testing.assert_allclose(got.S.numpy(), want[1].numpy(), rtol=1e-8)
        np.testing.assert_allclose(np.abs(got.U.numpy()), np.abs(want[0].numpy()), atol=1e-3)  # vectors converge slower
    S, B = A.T @ A, np.eye(6) * 2 + 0.1
    for kw_g, kw_t in (({"k": 1}, {"k": 1}), ({"k": 2, "B": tg.tensor(B)}, {"k": 2, "B": torch.tensor(B)})):
        (e, x), (f, y) = tg.lobpcg(tg.tensor(S), **kw_g), torch.lobpcg(torch.tensor(S), **kw_t)
        np.testing.assert_allclose(e.numpy(), f.numpy(), rtol=1e-8)
        np.testing.assert_allclose(np.abs(x.numpy()), np.abs(y.numpy()), atol=1e-5)
    e, x = tg.lobpcg(tg.tensor(S), 2, largest=False)
    np.testing.assert_allclose(e.numpy(), np.linalg.eigvalsh(S)[:2])
    for M_ in (tg, torch):
        with pytest.raises(ValueError):
            M_.lobpcg(M_.eye(4, dtype=M_.float64), 2)  # A must be at least 3k wide
    a = tg.tensor(A, requires_grad=True)
    tg.svd_lowrank(a, 2).S.sum().backward()  # differentiable: d(sum of top singular values)/dA = U V^T
    u, s, vt = np.linalg.svd(A, full_matrices=False)
    np.testing.assert_allclose(a.grad.numpy(), u[:, :2] @ vt[:2], atol=1e-10)
