"""float16 and bfloat16 as storage dtypes, against PyTorch: promotion, creation, printing, save/load,
autograd, and the ops computing in float32 and rounding once (bit-for-bit where PyTorch rounds the
same way: elementwise ops; within a few units in the last place where its summation order differs)."""
import operator
import subprocess
import sys

import numpy as np
import pytest

import tapegrad as tg

pytest.importorskip("ml_dtypes")
torch = pytest.importorskip("torch")

DTYPES = {"bool": (tg.bool, torch.bool), "uint8": (tg.uint8, torch.uint8), "int8": (tg.int8, torch.int8),
          "int16": (tg.int16, torch.int16), "int32": (tg.int32, torch.int32), "int64": (tg.int64, torch.int64),
          "float16": (tg.float16, torch.float16), "bfloat16": (tg.bfloat16, torch.bfloat16),
          "float32": (tg.float32, torch.float32), "float64": (tg.float64, torch.float64)}
HALF = {"float16": (tg.float16, torch.float16), "bfloat16": (tg.bfloat16, torch.bfloat16)}
TORCH_OF = {np.dtype(t): tt for t, tt in DTYPES.values()}


def _torch(x):
    """A torch tensor with ``x``'s bits and dtype (bfloat16 goes through its uint16 bits)."""
    a = x.detach().numpy()
    if a.dtype == tg.bfloat16:
        return torch.from_numpy(a.view(np.uint16).astype(np.int16)).view(torch.bfloat16)
    return torch.from_numpy(a.copy())


def _bits(x):
    """The values as float64 (exact for 16-bit floats), NaNs made comparable."""
    a = x.detach().float().numpy() if isinstance(x, torch.Tensor) else x.detach().float().numpy()
    return np.nan_to_num(a.astype(np.float64), nan=1234.5)


def _same_bits(ours, theirs):
    assert ours.dtype == tg.bfloat16 if theirs.dtype == torch.bfloat16 else TORCH_OF[np.dtype(ours.dtype)] == theirs.dtype
    np.testing.assert_array_equal(_bits(ours), _bits(theirs))


def _close(ours, theirs, ulps=2):
    """Within ``ulps`` units in the last place of the 16-bit dtype, relative to each value's size."""
    eps = torch.finfo(theirs.dtype).eps
    a, b = _bits(ours), _bits(theirs)
    np.testing.assert_allclose(a, b, rtol=ulps * eps, atol=ulps * eps * max(1.0, float(np.abs(b).max(initial=0))))


# ---------------------------------------------------------------- dtypes and promotion
@pytest.mark.parametrize("a", list(DTYPES))
@pytest.mark.parametrize("b", list(DTYPES))
def test_16bit_promote_types_match_torch(a, b):
    ours = tg.promote_types(DTYPES[a][0], DTYPES[b][0])
    assert TORCH_OF[np.dtype(ours)] == torch.promote_types(DTYPES[a][1], DTYPES[b][1])


@pytest.mark.parametrize("case", [
    ("bfloat16", [3], 2.5), ("float16", [3], 2.5), ("bfloat16", [3], 7), ("float16", [3], True),
    ("int64", [3], ("bfloat16", [])), ("int32", [3], ("float16", [])), ("bfloat16", [3], ("float32", [])),
    ("bfloat16", [3], ("float16", [3])), ("float16", [], ("bfloat16", [])), ("bfloat16", [], 1.5),
    ("uint8", [2], ("bfloat16", [2])), ("bfloat16", [3], ("float64", [])), ("bool", [2], ("float16", []))])
def test_16bit_result_type_with_scalars_and_0d_tensors_matches_torch(case):
    def make(spec, lib):
        if not isinstance(spec, tuple):
            return spec
        name, shape = spec
        if lib == "tg":
            return tg.ones(shape, dtype=DTYPES[name][0])
        return torch.ones(shape, dtype=DTYPES[name][1])
    name, shape, other = case
    ours = tg.result_type(tg.ones(shape, dtype=DTYPES[name][0]), make(other, "tg"))
    theirs = torch.result_type(torch.ones(shape, dtype=DTYPES[name][1]), make(other, "torch"))
    assert TORCH_OF[np.dtype(ours)] == theirs
    x = tg.ones(shape, dtype=DTYPES[name][0]) + make(other, "tg")  # the op itself promotes the same way
    assert TORCH_OF[np.dtype(x.dtype)] == theirs


@pytest.mark.parametrize("name", list(HALF))
def test_16bit_finfo_matches_torch(name):
    ours, theirs = tg.finfo(HALF[name][0]), torch.finfo(HALF[name][1])
    for field in ("bits", "eps", "max", "min", "tiny", "smallest_normal", "resolution"):
        assert getattr(ours, field) == getattr(theirs, field), field


def test_16bit_creation_and_conversion():
    b = tg.bfloat16
    for make in (tg.zeros, tg.ones, tg.randn, tg.rand, tg.empty):
        assert make(2, 3, dtype=b).dtype == b
    assert tg.full((2,), 1.5, dtype=b).tolist() == [1.5, 1.5]
    assert tg.tensor([1, 2], dtype="bfloat16").dtype == b
    assert tg.zeros_like(tg.ones(2), dtype=b).dtype == b
    x = tg.tensor([1.0, 1 / 3, 1e10])
    assert x.bfloat16().dtype == b and x.to(b).dtype == b and x.half().dtype == tg.float16
    assert x.to(tg.float16).dtype == tg.half and x.bfloat16().float().dtype == tg.float32
    np.testing.assert_array_equal(_bits(x.bfloat16()), _bits(torch.tensor([1.0, 1 / 3, 1e10]).bfloat16()))
    y = x.bfloat16()
    assert y.is_floating_point() and tg.is_floating_point(y) and y.element_size() == 2
    assert y.type() == "tapegrad.BFloat16Tensor" and y.type("torch.BFloat16Tensor").dtype == tg.bfloat16
    assert y.numpy().dtype == b and y.numpy().dtype.name == "bfloat16"
    assert isinstance(y[1].item(), float) and y.tolist() == [1.0, 0.333984375, 9999220736.0]


@pytest.mark.parametrize("name", list(HALF))
@pytest.mark.parametrize("values", [[1.0, 2.0, 3.0], [1 / 3, -2.5, 1e4], [[0.1, 100.0], [1e-3, 7.0]], 2.5, [1e-5, 1.0]])
def test_16bit_repr_matches_torch(name, values):
    ours = repr(tg.tensor(values, dtype=HALF[name][0]))
    theirs = repr(torch.tensor(values, dtype=HALF[name][1]))
    assert ours == theirs.replace("torch.", "tapegrad.")


# ---------------------------------------------------------------- ops, bit for bit
UNARY = ["exp", "log", "sin", "cos", "tanh", "sigmoid", "sqrt", "abs", "neg", "log1p", "expm1", "erf",
         "reciprocal", "floor", "round", "square"]
# gelu is left out: tapegrad's float32 gelu already differs from PyTorch's in the last bits
ACTIVATIONS = ["relu", "silu", "softplus", "elu", "leaky_relu", "hardtanh", "logsigmoid"]


def _draw(shape, scale=3.0, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32) * scale


@pytest.mark.parametrize("name", list(HALF))
@pytest.mark.parametrize("fn", UNARY + ACTIVATIONS)
def test_16bit_unary_ops_are_bitwise_torch(name, fn):
    a = _draw((7, 9))
    ours_x, theirs_x = tg.tensor(a).to(HALF[name][0]), torch.from_numpy(a).to(HALF[name][1])
    ns_ours, ns_theirs = (tg.nn.functional, torch.nn.functional) if fn in ACTIVATIONS else (tg, torch)
    with np.errstate(all="ignore"):
        _same_bits(getattr(ns_ours, fn)(ours_x), getattr(ns_theirs, fn)(theirs_x))


@pytest.mark.parametrize("name", list(HALF))
def test_16bit_ops_round_once_where_torch_rounds_twice(name):
    """PyTorch's 16-bit ``rsqrt`` rounds the square root before dividing, and ``x ** 1.7`` rounds
    the exponent to the tensor's dtype; tapegrad computes each in float32 and rounds once."""
    d, td = HALF[name]
    a = np.abs(_draw((7, 9), seed=3)) + 0.01
    x, tx = tg.tensor(a).to(d), torch.from_numpy(a).to(td)
    _same_bits(tg.rsqrt(x), torch.rsqrt(tx.float()).to(td))
    _same_bits(x ** 1.7, (tx.float() ** 1.7).to(td))
    _same_bits(2.5 ** x, (2.5 ** tx.float()).to(td))


@pytest.mark.parametrize("name", list(HALF))
@pytest.mark.parametrize("fn", ["add", "sub", "mul", "div", "pow", "maximum", "minimum", "atan2", "hypot"])
def test_16bit_binary_ops_are_bitwise_torch(name, fn):
    a, b = np.abs(_draw((5, 6), seed=1)), _draw((6,), seed=2)
    x, y = tg.tensor(a).to(HALF[name][0]), tg.tensor(b).to(HALF[name][0])
    tx, ty = torch.from_numpy(a).to(HALF[name][1]), torch.from_numpy(b).to(HALF[name][1])
    _same_bits(getattr(tg, fn)(x, y), getattr(torch, fn)(tx, ty))
    if fn not in ("atan2", "hypot", "maximum", "minimum", "pow"):  # a Python scalar: stays 16-bit, kept in float32
        _same_bits(getattr(tg, fn)(x, 1.7), getattr(torch, fn)(tx, 1.7))
        op = getattr(operator, {"div": "truediv"}.get(fn, fn))
        if fn in ("add", "sub"):  # PyTorch rounds the number to the tensor's dtype first, as tapegrad
            _same_bits(op(-2.3, x), op(-2.3, tx))
        else:  # PyTorch's ``-2.3 / x`` rounds -2.3 to bfloat16 where ``x / -2.3`` keeps -2.3f: tapegrad keeps it
            _same_bits(op(-2.3, x), op(-2.3, tx.float()).to(tx.dtype))


@pytest.mark.parametrize("name", list(HALF))
def test_16bit_ternary_and_mixed_ops_are_bitwise_torch(name):
    d, td = HALF[name]
    a, b, c = (_draw((4, 5), seed=s) for s in (3, 4, 5))
    x, y, z = (tg.tensor(v).to(d) for v in (a, b, c))
    tx, ty, tz = (torch.from_numpy(v).to(td) for v in (a, b, c))
    _same_bits(tg.lerp(x, y, 0.3), torch.lerp(tx, ty, 0.3))
    _same_bits(tg.addcmul(x, y, z, value=0.5), torch.addcmul(tx, ty, tz, value=0.5))
    _same_bits(tg.clamp(x, -1.0, 0.5), torch.clamp(tx, -1.0, 0.5))
    _same_bits(tg.where(x > 0, x, y), torch.where(tx > 0, tx, ty))
    _same_bits(x * tg.tensor(a), tx * torch.from_numpy(a))  # float32 wins: the result is float32
    _same_bits(tg.tensor([1, 2, 3]) * tg.tensor(0.7).to(d), torch.tensor([1, 2, 3]) * torch.tensor(0.7).to(td))


# ---------------------------------------------------------------- ops that accumulate
@pytest.mark.parametrize("name", list(HALF))
def test_16bit_reductions_accumulate_in_float32_as_torch(name):
    d, td = HALF[name]
    a = np.abs(_draw((40, 300), scale=1.0, seed=6)) + 0.5
    x, tx = tg.tensor(a).to(d), torch.from_numpy(a).to(td)
    for fn in ("sum", "mean"):
        for dim in (None, 0, 1):
            kw = {} if dim is None else {"dim": dim}
            ours, theirs = getattr(x, fn)(**kw), getattr(tx, fn)(**kw)
            assert ours.dtype == d
            _close(ours, theirs, ulps=1)
    # 12000 values of about 1: a float16 accumulator would have stopped at 2048
    assert float(x.sum()) == pytest.approx(float(tx.sum()), rel=torch.finfo(td).eps)
    _same_bits(x.amax(1), tx.amax(1))
    _close(x.var(1), tx.var(1), ulps=2)
    _close(x.std(), tx.std(), ulps=2)
    _close(x.cumsum(1), tx.cumsum(1), ulps=2)


@pytest.mark.parametrize("name", list(HALF))
def test_16bit_nn_ops_round_once_as_torch(name):
    d, td = HALF[name]
    F, TF = tg.nn.functional, torch.nn.functional
    a, w, bias = _draw((6, 32), 1.0, 7), _draw((16, 32), 0.2, 8), _draw((16,), 0.1, 9)
    x, tx = tg.tensor(a).to(d), torch.from_numpy(a).to(td)
    W, tW, B, tB = tg.tensor(w).to(d), torch.from_numpy(w).to(td), tg.tensor(bias).to(d), torch.from_numpy(bias).to(td)
    _close(x @ W.T, tx @ tW.T, ulps=1)
    _close(F.linear(x, W, B), TF.linear(tx, tW, tB), ulps=1)  # product and bias rounded once
    _close(F.softmax(x, -1), TF.softmax(tx, -1), ulps=1)
    _close(F.log_softmax(x, -1), TF.log_softmax(tx, -1), ulps=1)
    _close(F.layer_norm(x, (32,)), TF.layer_norm(tx, (32,)), ulps=2)
    target = [1, 0, 3, 31, 2, 5]
    loss, tloss = F.cross_entropy(x, tg.tensor(target)), TF.cross_entropy(tx, torch.tensor(target))
    assert loss.dtype == d
    _close(loss, tloss, ulps=1)
    img, k = _draw((2, 3, 9, 9), 1.0, 10), _draw((4, 3, 3, 3), 0.3, 11)
    out = F.conv2d(tg.tensor(img).to(d), tg.tensor(k).to(d), B[:4], padding=1)
    tout = TF.conv2d(torch.from_numpy(img).to(td), torch.from_numpy(k).to(td), tB[:4], padding=1)
    assert out.dtype == d
    _close(out, tout, ulps=2)


@pytest.mark.parametrize("name", list(HALF))
def test_16bit_gradients_come_back_in_the_tensors_dtype(name):
    d, td = HALF[name]
    a, w = _draw((5, 8), 1.0, 12), _draw((3, 8), 0.3, 13)
    x, W = tg.tensor(a).to(d).requires_grad_(), tg.tensor(w).to(d).requires_grad_()
    tx, tW = torch.from_numpy(a).to(td).requires_grad_(), torch.from_numpy(w).to(td).requires_grad_()
    loss = tg.nn.functional.cross_entropy(tg.tanh(x @ W.T) * 2, tg.tensor([0, 1, 2, 1, 0]))
    tloss = torch.nn.functional.cross_entropy(torch.tanh(tx @ tW.T) * 2, torch.tensor([0, 1, 2, 1, 0]))
    loss.backward()
    tloss.backward()
    assert x.grad.dtype == d and W.grad.dtype == d
    _close(loss, tloss, ulps=2)
    _close(x.grad, tx.grad, ulps=4)
    _close(W.grad, tW.grad, ulps=4)
    f = tg.tensor(a, requires_grad=True)  # a float32 leaf through a cast: its gradient is float32
    (f.to(d) * 3).sum().backward()
    assert f.grad.dtype == tg.float32 and f.grad.tolist() == [[3.0] * 8] * 5


# ---------------------------------------------------------------- save and load
def test_16bit_hdf5_round_trip_keeps_bits(tmp_path):
    x = tg.tensor(_draw((3, 4))).bfloat16().requires_grad_()
    h = tg.tensor(_draw((5,))).half()
    obj = {"x": x, "h": h, "arr": x.detach().numpy()[0], "p": tg.nn.Parameter(tg.ones(2, dtype=tg.bfloat16))}
    tg.save(obj, tmp_path / "c.h5")
    back = tg.load(tmp_path / "c.h5")
    assert back["x"].dtype == tg.bfloat16 and back["x"].requires_grad and back["h"].dtype == tg.float16
    assert back["arr"].dtype == tg.bfloat16 and isinstance(back["p"], tg.nn.Parameter)
    np.testing.assert_array_equal(back["x"].detach().numpy().view(np.uint16), x.detach().numpy().view(np.uint16))
    np.testing.assert_array_equal(back["h"].numpy(), h.numpy())


def test_16bit_torch_files_both_ways(tmp_path):
    t = {"w": torch.linspace(-3, 3, 12).reshape(3, 4).bfloat16(), "h": torch.arange(4.0).half(),
         "strided": torch.arange(10.0).bfloat16()[::3]}
    torch.save(t, tmp_path / "t.pt")
    ours = tg.load(tmp_path / "t.pt")
    for k in t:
        _same_bits(ours[k], t[k])
    tg.save(ours, tmp_path / "o.pt", format="pt")
    back = torch.load(tmp_path / "o.pt", weights_only=True)
    for k in t:
        assert back[k].dtype == t[k].dtype and torch.equal(back[k], t[k])


def test_bfloat16_without_ml_dtypes_says_what_to_install():
    code = ("import sys; sys.modules['ml_dtypes'] = None\n"
            "import tapegrad as tg\n"
            "assert tg.float16 is not None and (tg.ones(2).half() * 2).dtype == tg.float16\n"
            "for ask in (lambda: tg.bfloat16, lambda: tg.ones(2).bfloat16(), lambda: tg.zeros(2, dtype='bfloat16'),\n"
            "            lambda: tg.autocast('cpu')):\n"
            "    try:\n"
            "        ask()\n"
            "    except (AttributeError, TypeError) as e:\n"
            "        assert 'pip install ml_dtypes' in str(e), e\n"
            "    else:\n"
            "        raise AssertionError('no error')\n"
            "assert not hasattr(tg, 'bfloat16')\n"
            "with tg.autocast('cpu', dtype=tg.float16):\n"
            "    assert (tg.ones(2, 3) @ tg.ones(3, 2)).dtype == tg.float16\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr


def test_16bit_dispatch_leaves_other_2_byte_dtypes_and_views_alone():
    """apply sends any input with 2-byte elements to the op's forward16; int16 comes out of it
    as the declared forward computes it, and view ops have none (a bfloat16 view shares memory)."""
    a = tg.tensor([30000, -5, 7], dtype=tg.int16)
    assert (a + a).dtype == tg.int16 and (a + a).tolist() == [-5536, -10, 14]  # int16 wraps, as PyTorch
    assert tg.OPS["add"].forward16 is not None and tg.OPS["permute"].forward16 is None
    assert tg.OPS["to"].forward16 is None  # casts handle 16-bit arrays themselves
    x = tg.zeros(2, 3, dtype=tg.bfloat16)
    v = x.T
    v[0, 1] = 2.5
    assert x[1, 0].item() == 2.5 and v.dtype == tg.bfloat16
