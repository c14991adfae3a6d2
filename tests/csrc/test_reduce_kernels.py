"""sum / mean / amax / amin along dims (csrc/kernels/reduce.cpp) against an extended-precision reference,
numpy and PyTorch: every dim and block of dims, keepdim, odd sizes, other layouts, empty and 0-d
inputs, NaN and inf, and bit-identical results for 1 and 2 threads."""
import itertools

import numpy as np
import pytest

import tapegrad as tg
from tapegrad import _C

DTYPES = [np.float32, np.float64]
SHAPES = [(1,), (7,), (1000,), (4097,), (7, 1000), (1000, 7), (3, 4097), (4097, 3), (2, 3, 5, 7), (1, 7, 1),
          (5, 1, 4097), (3, 40, 1, 33)]
NP = {"sum": np.sum, "mean": np.mean, "amax": np.amax, "amin": np.amin}


def _same(x, y):
    return x.shape == y.shape and x.dtype == y.dtype and x.tobytes() == y.tobytes()


def _subsets(ndim):
    return [c for k in range(1, ndim + 1) for c in itertools.combinations(range(ndim), k)]


def _ulp(ref, dtype):
    return np.spacing(np.asarray(np.abs(ref), dtype)).astype(np.float64)


def _ref(x, op, dims, keepdims=False):
    """op in extended precision (x87 long double where numpy has it), rounded to float64."""
    return np.asarray(NP[op](x.astype(np.longdouble), axis=dims, keepdims=keepdims), np.float64)


def _check(x, dims, keepdim, op, got):
    """got (an ndarray) against an extended-precision reference: exact for amax / amin, else no
    further off than numpy's own result (plus two ulp of the result, for a lucky numpy)."""
    ref = _ref(x, op, dims, keepdim)
    ours = NP[op](x, axis=dims, keepdims=keepdim)
    assert got.shape == np.shape(ref) and got.dtype == x.dtype, (x.shape, dims, keepdim, op)
    if op in ("amax", "amin"):
        np.testing.assert_array_equal(got, ours)
        return
    err = np.abs(got.astype(np.float64) - ref)
    allowed = np.abs(np.asarray(ours, np.float64) - ref).max(initial=0) + 2 * _ulp(ref, x.dtype)
    assert (err <= allowed).all(), (x.shape, dims, keepdim, op, err.max(), allowed.max())


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_every_dim_and_block_of_dims_against_float64(dtype, shape):
    x = np.random.default_rng(0).standard_normal(shape).astype(dtype) + 0.5
    t = tg.tensor(x)
    for dims in _subsets(len(shape)):
        for keepdim in (False, True):
            for op in NP:
                _check(x, dims, keepdim, op, getattr(t, op)(dims, keepdim=keepdim).numpy())
    # negative dims and a single int
    for d in range(-len(shape), 0):
        for op in NP:
            _check(x, (d + len(shape),), False, op, getattr(t, op)(d).numpy())
    for op in ("sum", "mean"):  # the whole tensor
        _check(x, None, False, op, getattr(t, op)().numpy())


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape, dims", [((4097,), (0,)), ((7, 4097), (1,)), ((4097, 7), (0,)), ((3, 70001), (1,)),
                                         ((70001, 3), (0,)), ((300, 1000), (0,)), ((2, 1500, 1100), (1,)),
                                         ((20, 30, 1100), (0, 1)), ((1000, 1000), (0, 1))], ids=str)
def test_direct_kernel_matches_reference(dtype, shape, dims):
    x = np.random.default_rng(1).standard_normal(shape).astype(dtype) * 3 + 1
    for op in NP:
        for keepdim in (False, True):
            got = _C.reduce(x, dims, keepdim, op)
            assert got is not None
            _check(x, dims, keepdim, op, got)


@pytest.mark.parametrize("op", ["sum", "mean"])
@pytest.mark.parametrize("shape, dims", [((4, 1_000_000), (1,)), ((1_000_000, 4), (0,)), ((1000, 1000), (0, 1)),
                                         ((2, 250_000, 2), (1,))], ids=str)
def test_float32_accuracy_no_worse_than_numpy(op, shape, dims):
    # values far from 0 and many terms: where a float32 accumulator loses digits
    x = (np.random.default_rng(2).random(shape) + 100).astype(np.float32)
    ref = _ref(x, op, dims)
    got = getattr(tg.tensor(x), op)(dims).numpy().astype(np.float64)
    np_err = np.abs(NP[op](x, axis=dims).astype(np.float64) - ref).max()
    err = np.abs(got - ref).max()
    assert err <= max(np_err, _ulp(ref, np.float32).max()), (err, np_err)


def test_mean_rounds_as_sum_then_divide():
    # PyTorch's mean is its float32 sum divided by the count in float32
    x = (np.random.default_rng(3).random((64, 1001)) * 7).astype(np.float32)
    s = tg.tensor(x).sum(1).numpy()
    assert _same(tg.tensor(x).mean(1).numpy(), (s / np.float32(1001)).astype(np.float32))


@pytest.mark.parametrize("dtype", DTYPES)
def test_other_layouts_take_numpy_and_are_right(dtype):
    rng = np.random.default_rng(4)
    base = rng.standard_normal((50, 60, 7)).astype(dtype)
    tb = tg.tensor(base)
    views = [(tb.permute(2, 0, 1), base.transpose(2, 0, 1)), (tb[:, ::2], base[:, ::2]), (tb[..., 1:], base[..., 1:])]
    for t, x in views:
        assert not t._data.flags.c_contiguous and _C.reduce(t._data, (0,), False, "sum") is None
        for dims in _subsets(3):
            for op in NP:
                _check(x, dims, False, op, getattr(t, op)(dims).numpy())
    # reduced dims on both sides of a kept one: numpy's route
    assert _C.reduce(base, (0, 2), False, "sum") is None
    for op in NP:
        _check(base, (0, 2), True, op, getattr(tb, op)((0, 2), keepdim=True).numpy())
    # other dtypes keep numpy's route
    assert _C.reduce(base.astype(np.float16), (1,), False, "sum") is None
    assert _C.reduce(np.ones((3, 4), np.int64), (1,), False, "sum") is None
    assert _C.reduce(base.astype(base.dtype.newbyteorder()), (1,), False, "sum") is None


def test_transposed_view_through_the_tensor_api():
    x = np.random.default_rng(5).standard_normal((300, 200)).astype(np.float32)
    t = tg.tensor(x).t()
    for op in NP:
        for d in (0, 1):
            np.testing.assert_allclose(getattr(t, op)(d).numpy(), NP[op](x.T.astype(np.float64), axis=d),
                                       rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("dtype", DTYPES)
def test_empty_and_zero_d(dtype):
    e = tg.tensor(np.zeros((0, 5), dtype))
    assert _same(e.sum(0).numpy(), np.zeros(5, dtype))
    assert _same(e.sum(1).numpy(), np.zeros(0, dtype))
    assert _same(e.sum().numpy().reshape(()), np.zeros((), dtype))
    assert np.isnan(e.mean(0).numpy()).all() and e.mean(0).shape == (5,)
    assert e.mean(1).shape == (0,)
    assert e.amax(1).shape == (0,)
    assert e.sum(0, keepdim=True).shape == (1, 5)
    with pytest.raises(IndexError, match="amax"):
        e.amax(0)
    with pytest.raises(IndexError, match="amin"):
        e.amin(0)
    with pytest.raises(RuntimeError, match="amax"):
        e.amax()
    with pytest.raises(ValueError, match="amax: cannot reduce over dims of size 0"):
        _C.reduce(np.zeros((0, 5), dtype), (0,), False, "amax")
    s = tg.tensor(np.array(2.5, dtype))
    for op in NP:
        out = getattr(s, op)()
        assert out.shape == () and out.dtype == s.dtype and float(out.numpy()) == 2.5
    assert float(s.sum(0).numpy()) == 2.5 and s.sum(-1, keepdim=True).shape == ()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape, dims", [((5, 1000), (1,)), ((5, 70), (1,)), ((5, 9), (1,)), ((5, 3), (1,)),
                                         ((1000, 5), (0,)), ((4, 70001), (1,)), ((4, 40, 33), (1,))], ids=str)
def test_nan_and_inf_propagate(dtype, shape, dims):
    x = np.random.default_rng(6).standard_normal(shape).astype(dtype)
    # a NaN first, one last, an inf, -inf and inf together (NaN), nothing special in the last slice
    lead = np.moveaxis(x, dims[0], -1)  # a view: the reduced dim last
    lead[0, ..., 0] = np.nan
    lead[1, ..., -1] = np.nan
    lead[2, ..., lead.shape[-1] // 2] = np.inf
    lead[3, ..., 0] = np.inf
    lead[3, ..., -1] = -np.inf
    t = tg.tensor(x)
    for op in NP:
        with np.errstate(invalid="ignore"):  # inf - inf
            got, want = getattr(t, op)(dims).numpy(), NP[op](x, axis=dims)
        np.testing.assert_array_equal(np.isnan(got), np.isnan(want), err_msg=op)
        np.testing.assert_array_equal(np.isinf(got), np.isinf(want), err_msg=op)
        np.testing.assert_array_equal(np.sign(got[np.isinf(want)]), np.sign(want[np.isinf(want)]), err_msg=op)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape, dims", [((1000, 1000), (1,)), ((1000, 1000), (0,)), ((1000, 1000), (0, 1)),
                                         ((3, 100003), (1,)), ((100003,), (0,)), ((20000, 40), (0,)),
                                         ((1000, 3000), (0,)), ((4, 300, 70), (1,)), ((64, 64, 128), (0, 1))], ids=str)
def test_same_bits_for_one_and_two_threads(dtype, shape, dims, restore_threads):
    x = np.random.default_rng(7).standard_normal(shape).astype(dtype)
    outs = []
    for n in (1, 2):
        tg.set_num_threads(n)
        outs.append([_C.reduce(x, dims, False, op) for op in NP])
    assert all(_same(a, b) for a, b in zip(*outs))


def test_bad_arguments_name_the_op():
    x = np.zeros((2, 3), np.float32)
    with pytest.raises(ValueError, match=r"sum: dim 2 is out of range for an input of shape \(2, 3\)"):
        _C.reduce(x, (2,), False, "sum")
    with pytest.raises(ValueError, match=r"mean: dim -1 appears twice"):
        _C.reduce(x, (1, -1), False, "mean")
    with pytest.raises(ValueError, match="reduce: unknown reduction 'cumsum'"):
        _C.reduce(x, (1,), False, "cumsum")


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_against_torch(dtype):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(8)
    for shape in [(1000, 1000), (7, 4097), (4097, 3), (2, 3, 5, 7), (64, 33, 130)]:
        x = rng.standard_normal(shape).astype(dtype)
        for dims in _subsets(len(shape)):
            for keepdim in (False, True):
                for op in NP:
                    got = getattr(tg.tensor(x), op)(dims, keepdim=keepdim)
                    want = getattr(torch.from_numpy(x), op)(dims, keepdim=keepdim).numpy()
                    assert got.shape == want.shape and got.numpy().dtype == want.dtype
                    if op in ("amax", "amin"):
                        np.testing.assert_array_equal(got.numpy(), want)
                    else:  # both round: within a few ulp of the magnitudes summed
                        scale = NP[op](np.abs(x.astype(np.float64)), axis=dims, keepdims=keepdim)
                        eps = np.finfo(dtype).eps
                        assert (np.abs(got.numpy() - want) <= 8 * eps * scale).all(), (shape, dims, op)


# ---------------------------------------------------------------- prod, logsumexp, the norms
def _lse(a, axis, keepdims):
    m = np.amax(a, axis=axis, keepdims=True)
    m = np.where(np.isfinite(m), m, 0)
    with np.errstate(divide="ignore"):
        out = np.log(np.sum(np.exp(a - m), axis=axis, keepdims=True)) + m
    return out if keepdims else np.squeeze(out, axis)


MORE = {"prod": lambda a, axis, keepdims: np.prod(a, axis=axis, keepdims=keepdims),
        "logsumexp": _lse,
        "norm1": lambda a, axis, keepdims: np.sum(np.abs(a), axis=axis, keepdims=keepdims),
        "norm2": lambda a, axis, keepdims: np.sqrt(np.sum(a * a, axis=axis, keepdims=keepdims))}


def _check_more(x, dims, keepdim, op, got):
    """got against the op in extended precision: no further off (relatively) than numpy's own
    float result, plus a few ulp (the products' roundings grow with the count: sqrt(n) of them)."""
    ref = np.asarray(MORE[op](x.astype(np.longdouble), dims, keepdim), np.float64)
    with np.errstate(divide="ignore", over="ignore"):
        ours = np.asarray(MORE[op](x, dims, keepdim), np.float64)
    assert got.shape == ref.shape and got.dtype == x.dtype, (x.shape, dims, keepdim, op)
    n = max(1, x.size // max(1, ref.size))
    err = np.abs(got.astype(np.float64) - ref)
    # products round at every step in T, numpy's in order and ours in lanes: random walks of like size
    allowed = (2 if op == "prod" else 1) * np.abs(ours - ref).max(initial=0) + (8 + 2 * np.sqrt(n)) * _ulp(ref, x.dtype)
    assert (err <= allowed).all(), (x.shape, dims, keepdim, op, err.max(), allowed.max())


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_prod_logsumexp_norms_every_block_of_dims(dtype, shape):
    rng = np.random.default_rng(10)
    x = rng.standard_normal(shape).astype(dtype)
    near_one = np.exp(0.01 * x).astype(dtype)  # products that stay finite over 4097 terms
    for dims in _subsets(len(shape)):
        for keepdim in (False, True):
            for op in MORE:
                a = near_one if op == "prod" else x
                got = _C.reduce(a, dims, keepdim, op)
                if got is None:  # reduced dims on both sides of a kept one: numpy's route
                    assert any(d + 1 not in dims and any(e > d for e in dims) and shape[d + 1] > 1 for d in dims)
                    continue
                _check_more(a, dims, keepdim, op, got)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape, dims", [((3, 70001), (1,)), ((70001, 3), (0,)), ((300, 1000), (0,)),
                                         ((2, 1500, 1100), (1,)), ((1000, 1000), (0, 1)), ((100003,), (0,))], ids=str)
def test_prod_logsumexp_norms_long_runs(dtype, shape, dims):
    # chunked rows and columns: logsumexp's maxima come first, the chunks combine in order
    x = np.random.default_rng(11).standard_normal(shape).astype(dtype) * 3 + 1
    for op in MORE:
        a = np.exp(1e-4 * (x - 1)).astype(dtype) if op == "prod" else x
        _check_more(a, dims, False, op, _C.reduce(a, dims, False, op))


@pytest.mark.parametrize("dtype", DTYPES)
def test_empty_reductions(dtype):
    e = np.zeros((0, 5), dtype)
    assert _same(_C.reduce(e, (0,), False, "prod"), np.ones(5, dtype))
    assert _same(_C.reduce(e, (0,), False, "logsumexp"), np.full(5, -np.inf, dtype))
    assert _same(_C.reduce(e, (0,), False, "norm2"), np.zeros(5, dtype))
    assert _same(_C.reduce(e, (0,), False, "norm1"), np.zeros(5, dtype))
    for op in MORE:
        assert _C.reduce(e, (1,), True, op).shape == (0, 1)
    t = tg.tensor(e)
    assert _same(t.prod(0).numpy(), np.ones(5, dtype))
    assert _same(tg.logsumexp(t, 0).numpy(), np.full(5, -np.inf, dtype))
    assert _same(tg.linalg.vector_norm(t, dim=0).numpy(), np.zeros(5, dtype))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape, dims", [((6, 1000), (1,)), ((6, 9), (1,)), ((1000, 6), (0,)), ((6, 70001), (1,)),
                                         ((6, 40, 33), (1,))], ids=str)
def test_specials(dtype, shape, dims):
    base = np.random.default_rng(12).standard_normal(shape)
    for op in MORE:
        # products of values near 1, whose float products neither underflow nor overflow in any order
        x = (np.exp(0.01 * base) if op == "prod" else base).astype(dtype)
        lead = np.moveaxis(x, dims[0], -1)  # a view: the reduced dim last
        lead[0, ..., 0] = np.nan
        lead[1, ..., -1] = np.inf
        lead[2] = -np.inf  # a slice of -inf: logsumexp -inf
        lead[3, ..., 0] = np.inf
        lead[3, ..., -1] = -np.inf
        lead[4, ..., 1] = 0.0
        with np.errstate(all="ignore"):
            got, want = _C.reduce(x, dims, False, op), MORE[op](x, dims, False)
            np.testing.assert_array_equal(np.isnan(got), np.isnan(want), err_msg=op)
            np.testing.assert_array_equal(np.isinf(got), np.isinf(want), err_msg=op)
            np.testing.assert_array_equal(np.sign(got[np.isinf(want)]), np.sign(want[np.isinf(want)]), err_msg=op)
            fin = np.isfinite(want)
            np.testing.assert_allclose(got[fin], want[fin], rtol=1e-4 if dtype == np.float32 else 1e-12,
                                       atol=0 if op != "prod" else 1e-30, err_msg=op)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape, dims", [((1000, 1000), (1,)), ((1000, 1000), (0,)), ((1000, 1000), (0, 1)),
                                         ((3, 100003), (1,)), ((100003,), (0,)), ((20000, 40), (0,)),
                                         ((4, 300, 70), (1,))], ids=str)
def test_new_ops_same_bits_for_one_two_three_threads(dtype, shape, dims, restore_threads):
    rng = np.random.default_rng(13)
    x = rng.standard_normal(shape).astype(dtype)
    near_one = np.exp(0.001 * x).astype(dtype)
    outs = []
    for n in (1, 2, 3):
        tg.set_num_threads(n)
        res = []
        for op in MORE:
            a = near_one if op == "prod" else x
            out = _C.reduce(a, dims, False, op)
            res.append(out)
            if op != "norm1":
                u = rng.standard_normal(out.shape).astype(dtype) if n == 1 else outs[0][-1][op]
                res.append(_C.reduce_backward(a, dims, u, out, op))
                res.append({op: u})
        if len(dims) == 1:
            idx = np.argmax(x, axis=dims[0], keepdims=True)
            g = rng.standard_normal(idx.shape).astype(dtype) if n == 1 else outs[0][-1]["g"]
            res.append(_C.select_backward(g, idx, x.shape, dims[0]))
            res.append({"g": g})
        merged = {}
        for r in res:
            if isinstance(r, dict):
                merged.update(r)
        outs.append([r for r in res if not isinstance(r, dict)] + [merged])
    for other in outs[1:]:
        assert all(_same(a, b) for a, b in zip(outs[0][:-1], other[:-1]))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape, dims", [((7, 1000), (1,)), ((1000, 7), (0,)), ((3, 70001), (1,)), ((2, 5, 3, 4), (1, 2)),
                                         ((5,), (0,)), ((40, 600, 3), (1,))], ids=str)
def test_backward_kernels_against_the_formulas(dtype, shape, dims):
    rng = np.random.default_rng(14)
    x = rng.standard_normal(shape).astype(dtype)
    keep = tuple(1 if d in dims else s for d, s in enumerate(shape))
    for op in ("norm2", "logsumexp", "prod"):
        a = np.exp(0.01 * x).astype(dtype) if op == "prod" else x
        v = _C.reduce(a, dims, False, op)
        u = rng.standard_normal(v.shape).astype(dtype)
        got = _C.reduce_backward(a, dims, u, v, op)
        uk, vk = u.reshape(keep), v.reshape(keep)
        if op == "norm2":  # PyTorch's norm_backward, bit for bit
            want = uk * np.where(vk == 0, dtype(0), a / vk)
            assert _same(got, want.astype(dtype))
        elif op == "prod":  # prod_backward without zeros, bit for bit
            assert _same(got, (uk * (vk / a)).astype(dtype))
        else:
            want = uk.astype(np.float64) * np.exp((a - vk).astype(np.float64))  # x - v rounds in T, as PyTorch's
            np.testing.assert_allclose(got, want, rtol=4 * np.finfo(dtype).eps, atol=4 * np.finfo(dtype).tiny)
    # var: ((2 / dof) g) * (x - mean), as PyTorch's var_backward
    m = _C.reduce(x, dims, False, "mean")
    u = rng.standard_normal(m.shape).astype(dtype)
    assert _same(_C.reduce_backward(x, dims, u, m, "var"), (u.reshape(keep) * (x - m.reshape(keep))).astype(dtype))
    # a zero norm gives a zero gradient
    z = np.zeros(shape, dtype)
    n = _C.reduce(z, dims, False, "norm2")
    assert not _C.reduce_backward(z, dims, np.ones_like(n), n, "norm2").any()


def test_select_backward_scatter():
    rng = np.random.default_rng(15)
    for shape, dim in [((7, 1000), 1), ((1000, 7), 0), ((3, 70001), 1), ((70001, 3), 0), ((4, 5, 6), 1), ((9,), 0),
                       ((2, 40000, 2), 1)]:
        for dtype in DTYPES:
            x = rng.standard_normal(shape).astype(dtype)
            idx = np.argmax(x, axis=dim, keepdims=True)
            g = rng.standard_normal(idx.shape).astype(dtype)
            want = np.zeros(shape, dtype)
            np.put_along_axis(want, idx, g, axis=dim)
            assert _same(_C.select_backward(g, idx, shape, dim), want)
    with pytest.raises(ValueError, match="index 5 is out of range for size 5"):
        _C.select_backward(np.ones(3, np.float32), np.full(3, 5, np.int64), (3, 5), 1)
    with pytest.raises(ValueError, match="int64 indices of 3 elements"):
        _C.select_backward(np.ones(3, np.float32), np.zeros(3, np.int32), (3, 5), 1)
    assert _C.select_backward(np.ones(3, np.float16), np.zeros(3, np.int64), (3, 5), 1) is None


def test_reduce_backward_bad_arguments_name_the_op():
    x = np.ones((4, 5), np.float32)
    with pytest.raises(ValueError, match=r"norm2: the gradient must be a C-contiguous float32 array of 4 elements"):
        _C.reduce_backward(x, (1,), np.ones(5, np.float32), np.ones(4, np.float32), "norm2")
    with pytest.raises(ValueError, match=r"prod: the result must be a C-contiguous float32"):
        _C.reduce_backward(x, (1,), np.ones(4, np.float32), np.ones(4, np.float64), "prod")
    with pytest.raises(ValueError, match="reduce_backward: unknown reduction 'sum'"):
        _C.reduce_backward(x, (1,), np.ones(4, np.float32), np.ones(4, np.float32), "sum")
    assert _C.reduce_backward(x.T, (1,), np.ones(5, np.float32), np.ones(5, np.float32), "norm2") is None


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_new_ops_against_torch(dtype):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(16)
    for shape in [(1000, 1000), (7, 4097), (4097, 3), (2, 3, 5, 7)]:
        x = rng.standard_normal(shape).astype(dtype)
        near_one = np.exp(0.01 * x).astype(dtype)
        for dims in _subsets(len(shape)):
            tx, tn = torch.from_numpy(x), torch.from_numpy(near_one)
            pairs = [("norm2", x, torch.linalg.vector_norm(tx, 2, dims)), ("norm1", x, torch.linalg.vector_norm(tx, 1, dims)),
                     ("logsumexp", x, torch.logsumexp(tx, dims))]
            if len(dims) == 1:
                pairs.append(("prod", near_one, torch.prod(tn, dims[0])))
            for op, a, want in pairs:
                got = _C.reduce(a, dims, False, op)
                if got is None:  # not one block: the tensor API's numpy route
                    got = {"norm2": lambda: tg.linalg.vector_norm(tg.tensor(a), 2, dims),
                           "norm1": lambda: tg.linalg.vector_norm(tg.tensor(a), 1, dims),
                           "logsumexp": lambda: tg.logsumexp(tg.tensor(a), dims)}[op]().numpy()
                np.testing.assert_allclose(got, want.numpy(), rtol=2e-5 if dtype == "float32" else 1e-12, err_msg=op)


@pytest.mark.parametrize("dtype", DTYPES)
def test_mse_sum_accuracy_threads_and_specials(dtype, restore_threads):
    """mse_loss's sum of squared differences (_C.mse_sum): each difference and square in the dtype,
    the sum no further off an extended-precision one than numpy's pairwise sum of the squares (plus
    two ulp), the same bits at 1, 2 and 3 threads, NaN and inf as the squares' sum."""
    rng = np.random.default_rng(12)
    for n in (0, 1, 7, 1024, 1025, 4097, 32769, 70001, 1_000_000):
        x = (rng.standard_normal(n) * 30 + 2).astype(dtype)
        y = rng.standard_normal(n).astype(dtype)
        sq = np.square(x - y)
        ref = np.sum(sq.astype(np.longdouble))
        xs, ys = (x.reshape(-1, 7), y.reshape(-1, 7)) if n and n % 7 == 0 else (x, y)  # 2-d as well
        outs = []
        for k in (1, 2, 3):
            tg.set_num_threads(k)
            outs.append(_C.mse_sum(xs, ys))
        assert all(o.shape == () and o.dtype == dtype and o.tobytes() == outs[0].tobytes() for o in outs), n
        err = abs(float(outs[0]) - float(ref))
        allowed = abs(float(np.sum(sq)) - float(ref)) + 2 * float(np.spacing(dtype(ref)))
        assert err <= allowed, (n, err, allowed)
    x = rng.standard_normal(70001).astype(dtype)
    y = np.zeros_like(x)
    for v, want in ((np.nan, np.nan), (np.inf, np.inf), (-np.inf, np.inf)):
        x2 = x.copy()
        x2[40000] = v
        got = _C.mse_sum(x2, y)
        assert np.isnan(got) if np.isnan(want) else got == want
    big = np.full(70001, np.finfo(dtype).max / 2, dtype)
    assert _C.mse_sum(big, -big) == np.inf  # a difference past the range
    assert _C.mse_sum(np.full(5, -0.0, dtype), np.zeros(5, dtype)).tobytes() == np.zeros((), dtype).tobytes()
    with pytest.raises(ValueError, match=r"mse_loss"):
        _C.mse_sum(np.zeros(3, dtype), np.zeros(4, dtype))
    with pytest.raises((ValueError, TypeError), match=r"mse_loss"):
        _C.mse_sum(np.zeros(3, dtype), np.zeros(3, np.int64))


# ---------------------------------------------------------------- sums in the lanes' order
def _lane_sum(row, lanes, chunk=1024):
    """A row's sum in the kernel's order (lane_sums.h): per chunk of 1024, `lanes` partial sums in
    the row's dtype (the tail into the first lanes), each added into a float64 lane, the lanes then
    totalled pairwise (upper half into the lower)."""
    t = np.zeros(lanes)
    for c0 in range(0, row.size, chunk):
        c = row[c0:c0 + chunk]
        a = np.zeros(lanes, row.dtype)
        full = c.size // lanes * lanes
        for j in range(0, full, lanes):
            a += c[j:j + lanes]
        a[:c.size - full] += c[full:]
        t += a.astype(np.float64)
    w = lanes // 2
    while w >= 1:
        t[:w] += t[w:2 * w]
        w //= 2
    return t[0]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", [256 // 4 * 4, 257, 1000, 1024, 1100, 3001, 40000])
def test_row_sums_keep_the_lane_order_bits(dtype, n, restore_threads):
    """sum(-1) over rows of 4 lane widths or more (lane_sums.h's sum256, 256 bytes of lanes) adds in
    exactly lanes::sums' order: the same bits as that order written out in numpy, at 1, 2 and 3 threads."""
    lanes = 256 // np.dtype(dtype).itemsize
    if n < 4 * lanes:
        n = 4 * lanes + 3
    x = (np.random.default_rng(n).standard_normal((5, n)) * 10).astype(dtype)
    x[1, ::7] = -0.0
    # rows past 32768 elements: chunks of 32768 (reduce.cpp's kRowChunk), their sums added in order
    want = np.array([sum(_lane_sum(r[c:c + 32768], lanes) for c in range(0, n, 32768)) for r in x]).astype(dtype)
    for k in (1, 2, 3):
        tg.set_num_threads(k)
        assert _same(_C.reduce(x, (1,), False, "sum"), want), (n, k)


def _col_sum(x):
    """Column sums in the kernel's order: blocks of 16 rows added row after row in the dtype, each
    block's sums added into float64."""
    acc = np.zeros(x.shape[1])
    for i in range(0, x.shape[0], 16):
        s = x[i].copy()
        for k in range(i + 1, min(i + 16, x.shape[0])):
            s += x[k]
        acc += s.astype(np.float64)
    return acc.astype(x.dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(16, 5), (37, 1000), (100, 1100), (100, 3)], ids=str)
def test_column_sums_keep_the_block_order_bits(dtype, shape, restore_threads):
    """sum(0) adds each column's block of 16 rows in registers, in the order the row-by-row passes
    add them: the same bits as that order in numpy, at 1, 2 and 3 threads (one chunk of rows here)."""
    x = (np.random.default_rng(3).standard_normal(shape) * 10).astype(dtype)
    want = _col_sum(x)
    for k in (1, 2, 3):
        tg.set_num_threads(k)
        assert _same(_C.reduce(x, (0,), False, "sum"), want), k


# ---------------------------------------------------------------- max / min with indices
SELECT_DTYPES = [np.float32, np.float64, np.int64, np.int32, np.int16, np.int8, np.uint8]
SELECT_SHAPES = [(1,), (7,), (5, 9), (3, 70001), (70001, 3), (40, 1100), (2, 3, 1100), (33, 1000), (17, 2, 9),
                 (1, 7, 1)]


def _select_inputs(shape, dtype, rng):
    """Values with many ties; for floats also -0.0 / 0.0 ties, NaNs (the first one must win), inf
    and a slice of NaN only."""
    a = rng.integers(-3, 4, shape).astype(dtype) if np.dtype(dtype).kind != "u" else rng.integers(0, 5, shape).astype(dtype)
    out = [a]
    if np.dtype(dtype).kind == "f":
        z = np.where(rng.random(shape) < 0.5, -0.0, 0.0).astype(dtype)
        b = a.copy()
        b.ravel()[rng.integers(0, b.size, max(1, b.size // 50))] = np.nan
        c = rng.standard_normal(shape).astype(dtype)
        c.ravel()[rng.integers(0, c.size, 2)] = np.inf
        c.ravel()[rng.integers(0, c.size, 2)] = -np.inf
        out += [z, b, c, np.full(shape, np.nan, dtype)]
    return out


@pytest.mark.parametrize("dtype", SELECT_DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("shape", SELECT_SHAPES, ids=str)
def test_max_min_argmax_along_dims_match_torch(dtype, shape):
    """max / min (values and indices) and argmax / argmin along every dim, keepdim or not, and
    argmax / argmin of the flattened tensor, bit for bit as PyTorch: the first NaN wins, ties (-0.0
    and 0.0 among them) give the first index."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(len(shape) * 100 + shape[0])
    for a in _select_inputs(shape, dtype, rng):
        x, p = tg.tensor(a), torch.from_numpy(a.copy())
        for d in range(-a.ndim, a.ndim):
            for kd in (False, True):
                for name in ("max", "min"):
                    v, i = getattr(x, name)(d, keepdim=kd)
                    pv, pi = getattr(p, name)(d, keepdim=kd)
                    assert _same(v.numpy(), pv.numpy()), (name, d, kd)
                    assert _same(i.numpy(), pi.numpy()), (name, d, kd)
                for name in ("argmax", "argmin"):
                    assert _same(getattr(x, name)(d, keepdim=kd).numpy(), getattr(p, name)(d, keepdim=kd).numpy())
        for name in ("argmax", "argmin"):
            for kd in (False, True):
                assert _same(np.asarray(getattr(x, name)(keepdim=kd).numpy()), getattr(p, name)(keepdim=kd).numpy())


@pytest.mark.parametrize("dtype", SELECT_DTYPES, ids=lambda d: np.dtype(d).name)
def test_select_kernel_against_numpy_and_threads(dtype, restore_threads):
    """_C.select_dim against numpy's argmax / argmin (which pick as PyTorch: first NaN, first tie), on
    rows, chunked rows, columns, column strips and chunked columns; the same bits at 1, 2, 3 threads."""
    rng = np.random.default_rng(5)
    for shape, dim in [((300, 1000), 1), ((300, 1000), 0), ((2, 100003), 1), ((100003, 2), 0), ((3, 5000, 7), 1),
                       ((20, 3000), 0), ((1000, 2100), 0), ((4, 9), 0)]:
        for a in _select_inputs(shape, dtype, rng)[:3]:
            for op, fn in (("max", np.argmax), ("min", np.argmin)):
                want_i = fn(a, axis=dim, keepdims=True)
                want_v = np.take_along_axis(a, want_i, axis=dim)
                res = []
                for k in (1, 2, 3):
                    tg.set_num_threads(k)
                    v, i = _C.select_dim(a, dim, True, op)
                    res.append((v, i))
                    assert i.dtype == np.int64 and _same(i, want_i.astype(np.int64)), (shape, dim, op, k)
                    assert _same(v, want_v), (shape, dim, op, k)
                v, i = _C.select_dim(a, dim, False, op)
                assert _same(i, want_i.squeeze(dim).astype(np.int64)) and _same(v, want_v.squeeze(dim))


def test_select_kernel_declines_and_refuses():
    x = np.arange(12, dtype=np.float32).reshape(3, 4)
    assert _C.select_dim(x.T, 0, False, "max") is None  # not C-contiguous: numpy's route
    assert _C.select_dim(x.astype(np.float16), 0, False, "max") is None
    assert _C.select_dim(x.astype(bool), 0, False, "max") is None
    assert _C.select_dim(np.ones((), np.float32), 0, False, "max") is None
    with pytest.raises(ValueError, match=r"max: dim 2 is out of range for an input of shape \(3, 4\)"):
        _C.select_dim(x, 2, False, "max")
    with pytest.raises(ValueError, match="select_dim: unknown selection 'mean'"):
        _C.select_dim(x, 0, False, "mean")
    with pytest.raises(ValueError, match=r"min: cannot select along a dim of size 0 \(input shape \(3, 0\)\)"):
        _C.select_dim(np.zeros((3, 0), np.float32), 1, False, "min")
    v, i = _C.select_dim(np.zeros((0, 4), np.float32), 1, False, "max")
    assert v.shape == (0,) and i.shape == (0,) and i.dtype == np.int64


@pytest.mark.parametrize("dtype", DTYPES)
def test_max_along_dim_non_contiguous_empty_and_gradient(dtype):
    """Other layouts take numpy's route with the same answers; empty inputs; the values' gradient
    goes to the selected index alone (as now), first order and through create_graph."""
    torch = pytest.importorskip("torch")
    a = np.random.default_rng(2).integers(-2, 3, (37, 41)).astype(dtype)
    for src in (a, a.T, a[:, ::2]):
        x, p = tg.tensor(src), torch.from_numpy(np.ascontiguousarray(src))
        for d in (0, 1):
            v, i = x.max(d)
            pv, pi = p.max(d)
            assert _same(v.numpy(), pv.numpy()) and _same(i.numpy(), pi.numpy())
            assert _same(x.argmin(d).numpy(), p.argmin(d).numpy())
    e = tg.tensor(np.zeros((0, 5), dtype))
    v, i = e.max(1)
    assert v.shape == (0,) and i.shape == (0,)
    with pytest.raises(IndexError):
        e.max(0)
    for d in (0, 1):
        x = tg.tensor(a, requires_grad=True)
        p = torch.tensor(a, requires_grad=True)
        g = np.random.default_rng(d).standard_normal(a.shape[1 - d]).astype(dtype)
        x.max(d)[0].backward(tg.tensor(g))
        p.max(d)[0].backward(torch.tensor(g))
        assert _same(x.grad.numpy(), p.grad.numpy())
    x = tg.tensor(a[:5, :6].astype(np.float64), requires_grad=True)
    x.data[...] = np.random.default_rng(0).permutation(30).reshape(5, 6)  # no ties: a smooth point
    assert tg.autograd.gradcheck(lambda t: t.min(1, keepdim=True)[0] * 2, (x,))
    (gx,) = tg.autograd.grad(x.max(0)[0].pow(2).sum(), x, create_graph=True)
    assert gx.requires_grad
