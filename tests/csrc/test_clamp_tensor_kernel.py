"""clamp with tensor bounds: csrc/kernels/clamp.h's one-pass forward (_C.clamp_tensor) and gradients
(the op's VJPs), any strides; clamp_ through a strided view: values bit for bit against a numpy
reference of the kernel's rule (numpy's maximum then minimum in scalar terms, x first: x kept on a
tie, NaN x and NaN bounds propagate), broadcast and non-contiguous operands, odd sizes, the loops'
two routes (long runs straight, short or strided runs in pieces), empty, 0-d and size-1, float32
and float64, integer dtypes on numpy's route, gradients against the composite VJP and gradcheck in
float64, the same bits at 1, 2 and 3 threads, and PyTorch where it is installed."""
import numpy as np
import pytest

import tapegrad as tg
from tapegrad import _C
from tapegrad.autograd import gradcheck, gradgradcheck


def _bits_equal(a, b):
    a, b = np.asarray(a), np.asarray(b)
    return (a.shape == b.shape and a.dtype == b.dtype
            and np.ascontiguousarray(a).tobytes() == np.ascontiguousarray(b).tobytes())


def _ref(x, lo, hi):
    """The kernel's rule in numpy's scalar terms: maximum(x, lo), then minimum(., hi), x first."""
    m = np.where((x >= lo) | np.isnan(x), x, lo)
    return np.where((m <= hi) | np.isnan(m), m, hi).astype(x.dtype)


def _ref_grads(g, x, lo, hi):
    z = np.zeros((), g.dtype)
    return (np.where((x >= lo) & (x <= hi), g, z), np.where((x < lo) & (lo < hi), g, z),
            np.where((x > hi) | (hi < lo), g, z))


def _sum_to(a, shape):
    """a summed down to ``shape`` (numpy's broadcast undone), as the engine reduces a gradient."""
    lead = a.ndim - len(shape)
    a = a.sum(axis=tuple(range(lead))) if lead else a
    dims = tuple(d for d, n in enumerate(shape) if n == 1 and a.shape[d] != 1)
    return a.sum(axis=dims, keepdims=True) if dims else a


def _data(rng, shape, dtype, nan=False):
    a = np.asarray(rng.standard_normal(shape) * 2).astype(dtype)
    a.flat[::7] = 0.5  # ties with the bounds below
    if nan and a.size:
        a.flat[::11] = np.nan
    return a


SHAPES = [  # x, lo, hi
    ((37, 29), (37, 29), (37, 29)),
    ((37, 29), (29,), (37, 1)),
    ((5, 1, 7), (1, 6, 1), ()),
    ((), (4, 3), (3,)),
    ((3, 4, 5, 6), (4, 1, 6), (3, 1, 5, 1)),
    ((1000,), (), (1000,)),
    ((0, 3), (3,), ()),
    # long runs (>= 64) that clamp.cpp's direct_runs hands to the loops whole: a bound broadcast
    # along rows (stride 0 inside a run), a row bound, both bounds one value
    ((41, 130), (130,), (41, 1)),
    ((2, 3, 257), (257,), ()),
    ((67, 1, 300), (), (1, 5, 1)),
    ((1,), (1,), (1,)),
    ((1, 1), (), (1,)),
    ((), (), ()),
    ((4, 0, 80), (80,), ()),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shapes", SHAPES)
def test_forward_matches_numpy_bit_for_bit(dtype, shapes):
    rng = np.random.default_rng(0)
    x, lo, hi = (_data(rng, s, dtype, nan=True) for s in shapes)
    lo, hi = np.asarray(lo - 0.5), np.asarray(hi + 0.5)
    for a, b, c in ((x, lo, hi), (x, hi, lo)):  # crossed bounds too: max wherever min > max
        want = _ref(a, b, c)
        assert _bits_equal(_C.clamp_tensor(a, b, c), want)
        assert _bits_equal(tg.clamp(tg.tensor(a), tg.tensor(b), tg.tensor(c)).numpy(), want)
        assert np.array_equal(want, np.minimum(np.maximum(a, b), c), equal_nan=True)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_non_contiguous_operands(dtype):
    rng = np.random.default_rng(1)
    base = _data(rng, (40, 66), dtype, nan=True)
    lo = (rng.standard_normal((66, 40)) - 0.5).astype(dtype)
    hi = (rng.standard_normal((40, 132)) + 0.5).astype(dtype)
    for x in (base, base.T.copy().T, base[:, ::2], base[::-1, 1::3], np.asfortranarray(base)):
        lb, hb = lo.T[: x.shape[0], : x.shape[1]], hi[: x.shape[0], ::2][:, : x.shape[1]]
        want = _ref(x, lb, hb)
        got = _C.clamp_tensor(x, lb, hb)
        assert _bits_equal(got, want)
        if x.flags.f_contiguous and not x.flags.c_contiguous:
            assert got.flags.f_contiguous  # the result keeps an F-order input's layout
        y = tg.clamp(tg.tensor(x), tg.tensor(lb), tg.tensor(hb))
        assert _bits_equal(y.numpy(), want)


def test_nan_and_signed_zero_ties():
    """x kept on a tie (clamp(-0.0, min=0.0) is -0.0, as PyTorch's clamp with number bounds); a NaN
    x keeps its bits; a NaN bound gives NaN (the bound's bits), whatever x is."""
    nan2 = np.array(0x7FC00123, np.uint32).view(np.float32)  # a NaN with a payload
    x = np.array([-0.0, 0.0, -0.0, 0.0, nan2, 1.0, np.nan, 2.0], np.float32)
    lo = np.array([0.0, -0.0, -0.0, 0.0, 0.0, np.nan, np.nan, -np.inf], np.float32)
    hi = np.array([1.0, 1.0, 1.0, 1.0, 1.0, 3.0, 3.0, np.nan], np.float32)
    got = _C.clamp_tensor(x, lo, hi)
    assert _bits_equal(got[:5], x[:5])  # ties and the NaN x: x's bits
    assert np.isnan(got[5:]).all()
    assert _bits_equal(got, _ref(x, lo, hi))
    # the same on the long runs' route (direct_runs) and with one-value bounds there
    for reps in (16, 40):
        xr, lr, hr = (np.tile(v, reps) for v in (x, lo, hi))
        assert _bits_equal(_C.clamp_tensor(xr, lr, hr), _ref(xr, lr, hr))
        for b in lo:
            for c in hi:
                assert _bits_equal(_C.clamp_tensor(xr, np.asarray(b), np.asarray(c)), _ref(xr, b, c))
    # max side: clamp(0.0, max=-0.0) keeps 0.0
    y = _C.clamp_tensor(np.array([0.0, -0.0], np.float32), np.float32([-np.inf]), np.array([-0.0, 0.0], np.float32))
    assert np.signbit(y).tolist() == [False, True]
    assert np.isnan(tg.clamp(tg.tensor(x), tg.tensor(lo), tg.tensor(hi)).numpy()[4:]).all()
    # a NaN number bound takes this kernel too
    assert np.isnan(tg.clamp(tg.tensor(x), min=float("nan")).numpy()).all()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_number_bounds_on_a_strided_input(dtype):
    """A strided input with number bounds takes clamp.h's pass in place (no contiguous copy first):
    the pointwise kernel's bits, a C-ordered result; NaN x kept."""
    rng = np.random.default_rng(8)
    base = _data(rng, (37, 150), dtype, nan=True)
    for x in (base[:, ::2], base.T, base[::-1, 3:]):
        for lo, hi in ((-0.5, 0.5), (0.5, None), (None, -0.0)):
            want = tg.clamp(tg.tensor(np.ascontiguousarray(x)), lo, hi).numpy()
            got = tg.clamp(tg.tensor(x), lo, hi).numpy()
            assert _bits_equal(got, want) and got.flags.c_contiguous
            assert _bits_equal(got, _ref(x, dtype(-np.inf if lo is None else lo), dtype(np.inf if hi is None else hi)))


def test_mixed_dtypes_promote():
    """Bounds of another dtype than the input's take _clamp_args' promotion (as PyTorch's result
    type); bounds of the input's own skip it, the same values."""
    x = np.array([-2.0, 0.25, 3.0], np.float32)
    lo, hi = np.array([-1.0, 0.5, 0.0]), np.float32(1.0) * np.ones(3, np.float32)
    y = tg.clamp(tg.tensor(x), tg.tensor(lo), tg.tensor(hi))
    assert y.dtype == tg.float64 and y.numpy().tolist() == [-1.0, 0.5, 1.0]
    y = tg.clamp(tg.tensor(x), max=tg.tensor(hi))
    assert y.dtype == tg.float32 and y.numpy().tolist() == [-2.0, 0.25, 1.0]
    y = tg.clamp(tg.tensor(x), tg.tensor(lo.astype(np.float32)))
    assert y.dtype == tg.float32 and y.numpy().tolist() == [-1.0, 0.5, 3.0]


def test_integer_and_bool_dtypes_keep_numpy():
    rng = np.random.default_rng(2)
    for dt in (np.int32, np.int64, np.int8, np.uint8):
        x = rng.integers(0, 100, (13, 7)).astype(dt)
        lo, hi = rng.integers(0, 50, (7,)).astype(dt), rng.integers(50, 100, (13, 1)).astype(dt)
        y = tg.clamp(tg.tensor(x), tg.tensor(lo), tg.tensor(hi))
        assert y.dtype == tg.tensor(x).dtype and np.array_equal(y.numpy(), np.minimum(np.maximum(x, lo), hi))
        y = tg.clamp(tg.tensor(x), tg.tensor(lo))
        assert np.array_equal(y.numpy(), np.maximum(x, lo))
        y = tg.clamp(tg.tensor(x), max=tg.tensor(hi))
        assert np.array_equal(y.numpy(), np.minimum(x, hi))
    b = np.array([True, False, True])
    got = tg.clamp(tg.tensor(b), tg.tensor(np.array([False, True, False])), tg.tensor(np.array([True, True, False])))
    assert got.numpy().tolist() == [True, True, False]


def test_errors_name_the_op():
    with pytest.raises(RuntimeError):
        tg.clamp(tg.ones(3), tg.ones(2))
    with pytest.raises(ValueError, match="clamp: shapes do not broadcast"):
        _C.clamp_tensor(np.ones(3, np.float32), np.ones(2, np.float32), np.ones(1, np.float32))
    with pytest.raises(ValueError, match="clamp: dtypes differ"):
        _C.clamp_tensor(np.ones(3, np.float32), np.ones(3), np.ones(3, np.float32))
    with pytest.raises(ValueError, match="clamp: only float32 and float64"):
        _C.clamp_tensor(np.ones(3, np.int32), np.ones(3, np.int32), np.ones(3, np.int32))
    a = np.ones(3, np.float32)
    with pytest.raises(ValueError, match="out must be input itself"):
        _C.clamp_tensor(a, a[:1], a[:1], np.ones(3, np.float32))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shapes", SHAPES[:5] + SHAPES[7:])
def test_gradients_match_the_composite_bit_for_bit(dtype, shapes):
    rng = np.random.default_rng(3)
    x, lo, hi = (_data(rng, s, dtype, nan=True) for s in shapes)
    lo, hi = np.asarray(lo - 0.5), np.asarray(hi + 0.5)
    out_shape = np.broadcast_shapes(*shapes)
    g = rng.standard_normal(out_shape).astype(dtype)
    for a, b, c in ((x, lo, hi), (x, hi, lo)):
        want = [_sum_to(w, v.shape) for w, v in zip(_ref_grads(g, a, b, c), (a, b, c))]
        kernel = [np.asarray(t) for t in _C.clamp_tensor_backward(g, a, b, c, True, True, True)]
        assert all(_bits_equal(k, w) for k, w in zip(kernel, _ref_grads(g, a, b, c)))
        got = []
        for create_graph in (False, True):  # the kernel, then the composite (differentiable again)
            ts = [tg.tensor(v, requires_grad=True) for v in (a, b, c)]
            got.append([t.detach().numpy() for t in
                        tg.autograd.grad(tg.clamp(*ts), ts, tg.tensor(g), create_graph=create_graph)])
        for k, c_, w in zip(*got, want):  # reduced to each input's shape by the engine, in one way
            assert _bits_equal(k, c_)
            np.testing.assert_allclose(k, w, rtol=1e-5, atol=1e-5)
        # only some inputs requiring grad: the others' gradients are not made
        ts = [tg.tensor(a), tg.tensor(b, requires_grad=True), tg.tensor(c)]
        tg.clamp(*ts).backward(tg.tensor(g))
        assert _bits_equal(ts[1].grad.numpy(), got[0][1])
        assert ts[0].grad is None and ts[2].grad is None


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(), (1,), (1, 1)])
def test_zero_d_and_size_one_gradients(dtype, shape):
    """A 0-d result's gradients are the kernel's too (the binding used to return none there, as it
    read the output strides, empty for 0-d, where the flags say what is asked: NaN gradients)."""
    for x, lo, hi in ((0.3, -1.0, 1.0), (-2.0, -1.0, 1.0), (2.0, -1.0, 1.0), (0.0, 1.0, -1.0), (np.nan, -1.0, 1.0)):
        a, b, c, g = (np.full(shape, v, dtype) for v in (x, lo, hi, 1.5))
        want = _ref_grads(g, a, b, c)
        for flags in ((True, True, True), (False, True, False), (False, False, True), (True, False, False)):
            got = _C.clamp_tensor_backward(g, a, b, c, *flags)
            for k, w, f in zip(got, want, flags):
                assert (k is None) if not f else _bits_equal(k, w)
        for req in ((True, True, True), (False, True, True), (False, False, True)):
            ts = [tg.tensor(v, requires_grad=r) for v, r in zip((a, b, c), req)]
            tg.clamp(*ts).backward(tg.tensor(g))
            for t, w, r in zip(ts, want, req):
                assert (t.grad is None) if not r else _bits_equal(t.grad.numpy(), w)
    # mixed: a 0-d x against 0-d bounds of a wider dtype (test_differential_vs_torch's where_clamp)
    x = tg.tensor(np.int64(3))
    lo, hi = tg.tensor(np.int64(0)), tg.tensor(np.float64(2.0), requires_grad=True)
    tg.clamp(x, lo, hi).backward()
    assert hi.grad.numpy().tolist() == 1.0


def test_backward_kernel_takes_only_what_is_asked():
    x = np.array([-2.0, 0.0, 2.0], np.float32)
    lo, hi = np.float32(-1.0) * np.ones(3, np.float32), np.ones(3, np.float32)
    g = np.array([1.0, 2.0, 3.0], np.float32)
    gx, glo, ghi = _C.clamp_tensor_backward(g, x, lo, hi, True, False, True)
    assert glo is None and gx.tolist() == [0, 2, 0] and ghi.tolist() == [0, 0, 3]
    assert _C.clamp_tensor_backward(g, x, lo, hi, False, False, False) == (None, None, None)
    # a broadcast upstream gradient (a sum's: stride 0)
    gx, _, _ = _C.clamp_tensor_backward(np.broadcast_to(np.float32(5), (3,)), x, lo, hi, True, False, False)
    assert gx.tolist() == [0, 5, 0]


def test_gradcheck_float64_broadcast_bounds():
    rng = np.random.default_rng(4)
    x = tg.tensor(rng.standard_normal((4, 5)), requires_grad=True)
    lo = tg.tensor(rng.standard_normal(5) - 0.5, requires_grad=True)
    hi = tg.tensor(rng.standard_normal((4, 1)) + 0.5, requires_grad=True)
    assert gradcheck(lambda t, a, b: t.clamp(a, b), (x, lo, hi))
    assert gradcheck(lambda t, a: t.clamp(min=a), (x, lo))
    assert gradcheck(lambda t, b: t.clamp(max=b), (x, hi))
    xt = tg.tensor(rng.standard_normal((5, 4)), requires_grad=True)
    assert gradcheck(lambda t, a, b: t.t().clamp(a, b), (xt, lo, hi))  # a transposed input
    assert gradgradcheck(lambda t, a, b: t.clamp(a, b) ** 2, (x, lo, hi))


def test_clamp_in_place_through_strides():
    rng = np.random.default_rng(5)
    a = _data(rng, (30, 41), np.float32, nan=True)
    for lo, hi in ((-0.5, 0.5), (0.5, None), (None, -0.0), (1.0, -1.0), (float("nan"), 1.0)):
        want_all = _ref(a, np.float32(-np.inf if lo is None else lo), np.float32(np.inf if hi is None else hi))
        for pick in (lambda t: t[:, ::3], lambda t: t.T[::2], lambda t: t[1::2, 3:]):
            full = tg.tensor(a)
            view = pick(full)
            v0 = full._version
            assert view.clamp_(lo, hi) is view and full._version > v0
            inside = np.zeros(a.shape, bool)
            pick(inside)[...] = True
            assert _bits_equal(full.numpy()[inside], want_all[inside]), (lo, hi)
            assert _bits_equal(full.numpy()[~inside], a[~inside])  # the rest untouched


def test_same_bits_at_1_2_3_threads(restore_threads, monkeypatch):
    monkeypatch.setenv("TAPEGRAD_THREADS_IGNORE_LOAD", "1")
    rng = np.random.default_rng(6)
    x = _data(rng, (301, 517), np.float32, nan=True)
    lo = (rng.standard_normal(517) - 0.5).astype(np.float32)
    hi = (rng.standard_normal((301, 1)) + 0.5).astype(np.float32)
    g = rng.standard_normal(x.shape).astype(np.float32)
    res = []
    for n in (1, 2, 3):
        _C.set_num_threads(n)
        ts = [tg.tensor(v, requires_grad=True) for v in (x.T.copy().T, lo, hi)]  # x F-ordered
        y = tg.clamp(*ts)
        y.backward(tg.tensor(g))
        s = tg.tensor(np.concatenate([x, x], 1))
        s[:, ::2].clamp_(-0.5, 0.7)
        res.append([y.detach().numpy(), *(t.grad.numpy() for t in ts), s.numpy()])
    assert _bits_equal(res[0][0], _ref(x, lo, hi))
    want = [_sum_to(w, s) for w, s in zip(_ref_grads(g, x, lo, hi), (x.shape, lo.shape, hi.shape))]
    for got, w in zip(res[0][1:4], want):
        np.testing.assert_allclose(got, w, rtol=1e-5, atol=1e-4)
    for r in res[1:]:
        assert all(_bits_equal(u, v) for u, v in zip(r, res[0]))


def test_against_pytorch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(7)
    for dtype in (np.float32, np.float64):
        for shapes in [s for s in SHAPES if s[0] == np.broadcast_shapes(*s)]:  # (PyTorch's gradient for
            x, lo, hi = (_data(rng, s, dtype, nan=True) for s in shapes)         # a broadcast input fails)
            lo, hi = lo - 0.5, hi + 0.5
            ts = [tg.tensor(v, requires_grad=True) for v in (x, lo, hi)]
            pt = [torch.tensor(v, requires_grad=True) for v in (x, lo, hi)]
            y, yt = tg.clamp(*ts), torch.clamp(*pt)
            # equal values, NaN where PyTorch has NaN (PyTorch's vectorised lanes give the bound on a
            # signed-zero tie, its scalar tail x: tapegrad keeps x, which compares equal)
            assert np.array_equal(y.detach().numpy(), yt.detach().numpy(), equal_nan=True)
            g = rng.standard_normal(y.shape).astype(dtype)
            y.backward(tg.tensor(g))
            yt.backward(torch.tensor(g))
            for t, p in zip(ts, pt):
                np.testing.assert_allclose(t.grad.numpy(), p.grad.numpy(), rtol=1e-6, atol=1e-6)
