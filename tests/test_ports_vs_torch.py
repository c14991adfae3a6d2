"""Ported PyTorch scripts: each file in tests/ports/ is written as a PyTorch user writes it (the
quickstart, the autograd and tensor tutorials, a CNN, a regression with schedulers, a custom
module with state_dict round trips, the losses, the layers) and runs once with ``torch`` and
once with ``tapegrad`` bound to the same names; everything it records in ``out`` must agree.
Without PyTorch the scripts still run under tapegrad (they must not raise)."""
import ast
import importlib.util
import pathlib
import sys
import warnings

import numpy as np
import pytest

SCRIPTS = sorted((pathlib.Path(__file__).parent / "ports").glob("*.py"))
HAVE_TORCH = importlib.util.find_spec("torch") is not None


def _namespace(name):
    if name == "torch":
        import torch
        import torch.nn as nn
        import torch.nn.functional as F
        import torch.optim as optim
        from torch.utils.data import DataLoader, TensorDataset
    else:
        import tapegrad as torch
        import tapegrad.nn as nn
        import tapegrad.nn.functional as F
        import tapegrad.optim as optim
        from tapegrad.utils.data import DataLoader, TensorDataset
    return dict(torch=torch, nn=nn, F=F, optim=optim, DataLoader=DataLoader, TensorDataset=TensorDataset, np=np)


def _plain(v):
    """Tensors as numpy arrays, containers opened, everything else as it is."""
    if hasattr(v, "detach") and hasattr(v, "numpy"):
        return np.array(v.detach().numpy())
    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    return v


def run_script(path, name, tmp_path):
    """Run the script with ``name``'s modules; returns its ``out`` dict, made plain."""
    ns = _namespace(name)
    out = {}
    ns.update(out=out, tmpdir=str(tmp_path / name))
    (tmp_path / name).mkdir(exist_ok=True)
    src = path.read_text()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        exec(compile(ast.parse(src), f"{path.name}[{name}]", "exec"), ns)
    return {k: _plain(v) for k, v in out.items()}


def assert_same(got, want, path="out", tol=(1e-5, 1e-6)):
    """tapegrad's result ``got`` agrees with PyTorch's ``want`` (float32 tolerance on floats, or the
    script's own ``out["tolerance"]`` = (rtol, atol), with its reason in the script)."""
    if isinstance(want, np.ndarray) or isinstance(got, np.ndarray):
        g, w = np.asarray(got), np.asarray(want)
        assert g.shape == w.shape, f"{path}: shape {g.shape} vs torch {w.shape}"
        assert g.dtype == w.dtype, f"{path}: dtype {g.dtype} vs torch {w.dtype}"
        if w.dtype.kind == "f":
            np.testing.assert_allclose(g, w, rtol=tol[0], atol=tol[1], err_msg=path)
        else:
            np.testing.assert_array_equal(g, w, err_msg=path)
    elif isinstance(want, dict):
        assert isinstance(got, dict) and set(got) == set(want), f"{path}: keys {sorted(got)} vs torch {sorted(want)}"
        for k in want:
            assert_same(got[k], want[k], f"{path}[{k!r}]", tol)
    elif isinstance(want, list):
        assert isinstance(got, list) and len(got) == len(want), f"{path}: {got!r} vs torch {want!r}"
        for i, (g, w) in enumerate(zip(got, want)):
            assert_same(g, w, f"{path}[{i}]", tol)
    elif isinstance(want, float) or isinstance(got, float):
        assert got == pytest.approx(want, rel=tol[0], abs=tol[1]), f"{path}: {got!r} vs torch {want!r}"
    elif isinstance(want, str):
        assert got == want.replace("torch.", "tapegrad."), f"{path}: {got!r} vs torch {want!r}"
    else:
        assert type(got) is type(want) and got == want, f"{path}: {got!r} vs torch {want!r}"


@pytest.mark.parametrize("script", SCRIPTS, ids=[p.stem for p in SCRIPTS])
def test_script_matches_torch(script, tmp_path):
    got = run_script(script, "tapegrad", tmp_path)
    if not HAVE_TORCH:
        pytest.skip("PyTorch is not installed: the script ran under tapegrad only")
    want = run_script(script, "torch", tmp_path)
    tol = tuple(want.pop("tolerance", (1e-5, 1e-6)))
    assert tuple(got.pop("tolerance", tol)) == tol
    assert_same(got, want, tol=tol)


# ------------------------------------------------------------------ ops and functional layers
# Values and gradients (a random cotangent, float64) against PyTorch, through the shared oracle.
R = np.random.default_rng(0)
A, B = R.standard_normal((3, 4)), R.standard_normal((3, 4))
Q, V = R.standard_normal((4, 4)), R.standard_normal(5)
A0 = A.copy()
A0[0, 0] = 0
X4, X3 = R.standard_normal((2, 4, 5, 6)), R.standard_normal((2, 4, 9))

OP_CASES = {
    "true_divide": (lambda M, a, b: M.true_divide(a, b), [A, B]),
    "divide_floor": (lambda M, a, b: M.divide(a, b, rounding_mode="floor"), [A, B]),
    "subtract_alpha": (lambda M, a, b: M.subtract(a, b, alpha=2), [A, B]),
    "clamp_min_max": (lambda M, a: M.clamp_max(M.clamp_min(a, -0.5), 0.5), [A]),
    "select": (lambda M, a: M.select(a, 1, -1), [A]),
    "tan": (lambda M, a: M.tan(a), [A]),
    "deg2rad": (lambda M, a: M.rad2deg(M.deg2rad(a)), [A]),
    "sinc": (lambda M, a: M.sinc(a), [A0]),
    "copysign": (lambda M, a, b: M.copysign(a, b), [A, B]),
    "float_power": (lambda M, a: M.float_power(M.abs(a), 2.5), [A]),
    "xlogy": (lambda M, a, b: M.xlogy(a, M.abs(b)), [A0, B]),
    "logaddexp2": (lambda M, a, b: M.logaddexp2(a, b), [A, B]),
    "fmax_fmin": (lambda M, a, b: (M.fmax(a, b), M.fmin(a, b)), [A, B]),
    "count_nonzero": (lambda M, a: M.count_nonzero(a, dim=1), [A0]),
    "aminmax": (lambda M, a: tuple(M.aminmax(a, dim=0)), [A]),
    "var_mean": (lambda M, a: M.var_mean(a, 1), [A]),
    "std_mean": (lambda M, a: M.std_mean(a, dim=0, keepdim=True), [A]),
    "logcumsumexp": (lambda M, a: M.logcumsumexp(a * 30, 1), [A]),
    "diff": (lambda M, a, b: (M.diff(a), M.diff(a, n=2, dim=0, prepend=b[:1])), [A, B]),
    "quantile": (lambda M, a: (M.quantile(a, 0.3), M.quantile(a, M.tensor([0.25, 1.0], dtype=M.float64), dim=1,
                                                             keepdim=True)), [A]),
    "quantile_modes": (lambda M, a: (M.quantile(a, 0.4, dim=0, interpolation="nearest"),
                                     M.quantile(a, 0.4, dim=1, interpolation="midpoint")), [A]),
    "tensor_split": (lambda M, a: M.tensor_split(a, 3, dim=1) + M.tensor_split(a, [1, 3], dim=1), [A]),
    "hsplit_vsplit": (lambda M, a: M.hsplit(a, 2) + M.vsplit(a, [1]), [A]),
    "tensordot": (lambda M, a, b, q: (M.tensordot(a, b, dims=([1], [1])), M.tensordot(a, q, 1)), [A, B, Q]),
    "inner_kron": (lambda M, a, b, v: (M.inner(a, b), M.kron(a, b[:2, :2]), M.kron(v, v[:2])), [A, B, V]),
    "addr": (lambda M, a, v: M.addr(a, v[:3], v[:4], beta=0.5, alpha=2), [A, V]),
    "matrix_power": (lambda M, q: (M.matrix_power(q, 3), M.matrix_power(q, -2), M.matrix_power(q, 0)), [Q]),
    "cdist": (lambda M, a, b: (M.cdist(a, b), M.cdist(a, b, p=1), M.cdist(a, b, p=3), M.cdist(a, a)), [A, B]),
    "dist_pdist": (lambda M, a, b: (M.dist(a, b), M.nn.functional.pdist(a)), [A, B]),
    "block_diag": (lambda M, a, q: M.block_diag(a, q), [A, Q]),
    "trapezoid": (lambda M, a, v: (M.trapezoid(a, dim=1), M.trapezoid(a, v[:4])), [A, V]),
    "cov_corrcoef": (lambda M, a: (M.cov(a), M.corrcoef(a)), [A]),
    "index_copy": (lambda M, a, b: M.index_copy(a, 0, M.tensor([2, 0]), b[:2]), [A, B]),
    "out_of_place_activations": (lambda M, x: tuple(getattr(M.nn.functional, n)(x) for n in (
        "hardshrink", "softshrink", "tanhshrink", "selu", "celu", "glu", "rrelu")), [A]),
    "threshold": (lambda M, x: M.nn.functional.threshold(x, 0.1, 20.), [A]),
    "prelu": (lambda M, x, w: (M.nn.functional.prelu(x, w[0]), M.nn.functional.prelu(x, w[0, :1])), [X4, A]),
    "bilinear": (lambda M, a, w, b: M.nn.functional.bilinear(a, a[:, :3], w.reshape(2, 4, 3), b[0, :2]),
                 [A, R.standard_normal(24), A]),
    "norms": (lambda M, x, w, b: (M.nn.functional.rms_norm(x, (6,)), M.nn.functional.rms_norm(x, [5, 6], eps=1e-6),
                                  M.nn.functional.instance_norm(x, weight=w[0], bias=b[0]),
                                  M.nn.functional.local_response_norm(x, 3)), [X4, A, A]),
    "pixel_shuffle": (lambda M, x: (M.nn.functional.pixel_shuffle(x, 2),
                                    M.nn.functional.pixel_unshuffle(x[..., :4, :6], 2)), [X4]),
    "pool1d": (lambda M, x: (M.nn.functional.max_pool1d(x, 3, 2, 1), M.nn.functional.max_pool1d(x, 2,
                             return_indices=True), M.nn.functional.avg_pool1d(x, 3, stride=2, padding=1,
                             count_include_pad=False), M.nn.functional.adaptive_avg_pool1d(x, 4),
                             M.nn.functional.adaptive_max_pool1d(x, 4)), [X3]),
    "conv_transpose1d": (lambda M, x, w: M.nn.functional.conv_transpose1d(x, w.reshape(4, 2, 3), stride=2, padding=1,
                                                                          output_padding=1), [X3, R.standard_normal(24)]),
    "unfold_fold": (lambda M, x: (M.nn.functional.unfold(x, (2, 3), padding=1, stride=(2, 1), dilation=(1, 2)),
                                  M.nn.functional.fold(x.reshape(2, 24, 5)[:, :, :4], (3, 4), (2, 3), padding=(0, 1),
                                                       stride=(1, 2))), [X4]),
    "sdpa": (lambda M, q: (M.nn.functional.scaled_dot_product_attention(q, q * 0.5, q + 1),
                           M.nn.functional.scaled_dot_product_attention(q, q * 0.5, q + 1, is_causal=True),
                           M.nn.functional.scaled_dot_product_attention(q, q, q, scale=0.3)), [X4]),
}


@pytest.mark.parametrize("name", sorted(OP_CASES))
def test_ops_match_torch(name):
    pytest.importorskip("torch")
    sys.path.insert(0, str(pathlib.Path(__file__).parent / "ops"))
    from torch_oracle import check_forward_and_gradients
    fn, arrays = OP_CASES[name]
    check_forward_and_gradients(fn, arrays, grad_rtol=1e-8)


def test_integer_helpers_match_torch():
    torch = pytest.importorskip("torch")
    import tapegrad as tg
    res = {}
    for M in (torch, tg):
        x = M.tensor([0, 1, 1, 3, 5])
        f = M.tensor([1., 2, 1, 4])
        res[M] = [M.bincount(x), M.bincount(x, minlength=7), M.bincount(x, weights=M.tensor([.5, 1, 1, 2, 3])),
                  M.histc(f, bins=4, min=0, max=3), M.histc(f, bins=3), M.tril_indices(3, 4, 1), M.triu_indices(3, 3, -1),
                  M.isin(x, M.tensor([1, 5])), M.signbit(M.tensor([-0.0, 1.0, -2.0])),
                  M.heaviside(M.tensor([-1., 0., 2.]), M.tensor([0.5])), M.isneginf(M.tensor([float("-inf"), 1.])),
                  *M.where(M.tensor([[True, False], [False, True]])), M.where(f > 1, 1., 0.), M.where(f > 1, f, 0.),
                  M.arange(6).reshape(2, 3).count_nonzero(), M.zeros(3, 3).fill_diagonal_(2.0),
                  M.tensor([1., 2., 3.]).clamp_min_(2.5), M.tensor([1., 2.]).eq_(M.tensor([1., 3.]))]
    for a, b in zip(res[tg], res[torch]):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
        assert str(a.dtype).split(".")[-1] == str(b.dtype).split(".")[-1]


def test_out_argument_and_dtype_info_match_torch():
    torch = pytest.importorskip("torch")
    import tapegrad as tg
    for M in (torch, tg):
        a = M.ones(2, 3)
        c = M.empty(0)
        assert M.matmul(a, a.T, out=c) is c and tuple(c.shape) == (2, 2) and float(c.sum()) == 12.0
        vals, idx = M.empty(0), M.empty(0, dtype=M.int64)
        M.sort(M.tensor([3., 1., 2.]), out=(vals, idx))
        assert vals.tolist() == [1., 2., 3.] and idx.tolist() == [1, 2, 0]
        with pytest.raises(RuntimeError):
            M.add(M.ones(2, requires_grad=True), 1, out=M.empty(2))
        with pytest.raises(RuntimeError):
            M.add(M.ones(2), 0.5, out=M.empty(2, dtype=M.int64))
    for d in ("float32", "float64", "float16"):
        t, g = torch.finfo(getattr(torch, d)), tg.finfo(getattr(tg, d))
        assert (g.eps, g.max, g.min, g.tiny, g.bits) == (t.eps, t.max, t.min, t.tiny, t.bits)
    assert tg.iinfo(tg.int64).max == torch.iinfo(torch.int64).max and tg.iinfo(tg.uint8).min == 0
    assert str(tg.result_type(tg.tensor([1, 2]), 1.0)) == "tapegrad.float32"
    assert str(tg.promote_types(tg.int32, tg.float64)) == "tapegrad.float64"


def test_schedulers_match_torch():
    torch = pytest.importorskip("torch")
    import tapegrad as tg

    def lrs(M):
        out = []
        for make in (lambda o, S: S.LinearLR(o, start_factor=0.1, total_iters=4),
                     lambda o, S: S.ConstantLR(o, factor=0.5, total_iters=3),
                     lambda o, S: S.PolynomialLR(o, total_iters=5, power=2.0),
                     lambda o, S: S.MultiplicativeLR(o, lambda e: 0.9),
                     lambda o, S: S.CosineAnnealingWarmRestarts(o, T_0=3, T_mult=2, eta_min=0.01),
                     lambda o, S: S.SequentialLR(o, [S.LinearLR(o, 0.1, total_iters=3), S.ExponentialLR(o, 0.8)], [3]),
                     lambda o, S: S.ChainedScheduler([S.ConstantLR(o, 0.5, total_iters=2), S.ExponentialLR(o, 0.9)])):
            opt = M.optim.SGD([M.zeros(1, requires_grad=True)], lr=0.1)
            sched = make(opt, M.optim.lr_scheduler)
            for _ in range(9):
                opt.step()
                sched.step()
                out.append(opt.param_groups[0]["lr"])
            out.append(sched.get_last_lr()[0])
        return out

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        np.testing.assert_allclose(lrs(tg), lrs(torch), rtol=1e-12)


def test_autograd_functional_and_variable_match_torch():
    torch = pytest.importorskip("torch")
    import torch.autograd.functional as TAF

    import tapegrad as tg
    import tapegrad.autograd.functional as GAF
    res = {}
    for M, AF in ((torch, TAF), (tg, GAF)):
        x = M.tensor([1., 2., 3.], dtype=M.float64)
        v = M.tensor([1., -1., 0.5], dtype=M.float64)
        cube = lambda t: (t ** 3).sum()  # noqa: E731
        res[M] = [AF.jacobian(lambda t: t ** 2 * t[0], x), AF.hessian(cube, x),
                  AF.vjp(lambda t: t.sin(), x, v)[1], AF.jvp(lambda t: t.sin(), x, v)[1], AF.hvp(cube, x, v)[1],
                  M.autograd.Variable(M.ones(2), requires_grad=True).requires_grad]
    for a, b in zip(res[tg], res[torch]):
        np.testing.assert_allclose(np.asarray(a.numpy() if hasattr(a, "numpy") else a),
                                   np.asarray(b.numpy() if hasattr(b, "numpy") else b), rtol=1e-12)
