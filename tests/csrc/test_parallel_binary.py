"""Binary arithmetic, negation, |x| and sqrt of large float arrays on the kernel threads
(csrc/elementwise.h): the cases it takes from numpy's ufuncs (the forwards of add, sub, mul, div,
neg, abs and sqrt, numpy's own loops of its float math ufuncs of 1 to 3 operands, and the
backward pass's gradient sums), and that its results are numpy's bit for bit."""
import contextlib

import numpy as np
import pytest

import tapegrad as tg
from tapegrad import _C

UFUNCS = [np.add, np.subtract, np.multiply, np.true_divide]
N = 1 << 16  # csrc/elementwise.cpp's kMinElems


@contextlib.contextmanager
def threads(n):
    before = _C.get_num_threads()
    _C.set_num_threads(n)
    try:
        yield
    finally:
        _C.set_num_threads(before)


def operand(rng, shape, dtype):
    """Normal values with infinities, NaN, signed zeros, denormals and the largest finite value
    sprinkled in (NaN only as np.nan, so that NaN results carry one payload however the operands
    are ordered)."""
    x = np.asarray(rng.standard_normal(shape)).astype(dtype)
    flat = x.reshape(-1)
    info = np.finfo(dtype)
    for k, v in enumerate([np.inf, -np.inf, np.nan, 0.0, -0.0, info.tiny / 4, info.max, -info.max]):
        flat[k::97 + 2 * k] = v
    return x


def same_bits(got, want):
    assert got.dtype == want.dtype and got.shape == want.shape
    nan = np.isnan(want)
    np.testing.assert_array_equal(np.isnan(got), nan)
    uint = np.uint32 if want.dtype == np.float32 else np.uint64
    np.testing.assert_array_equal(got.view(uint)[~nan], want.view(uint)[~nan])


SHAPES = [((N + 13,), (N + 13,)),          # same shape, not a multiple of any block
          ((257, 300), (300,)),            # b broadcast along the leading dim (a bias)
          ((300,), (257, 300)),            # a broadcast
          ((5, 123, 111), (123, 111)),     # along two leading dims
          ((3, 9, 4000), (1, 4000)),       # b with a leading 1
          ((N + 1,), ()),                  # a scalar b
          ((), (3, N // 3 + 1)),           # a scalar a
          ((70000,), (1,)),                # a one-element b
          ((4, 20000), (1, 1))]


@pytest.mark.parametrize("shapes", SHAPES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("ufunc", UFUNCS)
def test_numpys_results_bit_for_bit(ufunc, dtype, shapes):
    rng = np.random.default_rng(0)
    a, b = operand(rng, shapes[0], dtype), operand(rng, shapes[1], dtype)
    with np.errstate(all="ignore"):
        want = ufunc(a, b)
    for n in (1, 2, 3):
        with threads(n):
            got = _C._parallel_binary(ufunc, a, b)
        row = a.size != b.size and min(a.size, b.size) > 1
        if n == 1 and not row:  # one thread: numpy's loop is as fast, but for a row broadcast
            assert got is None
            continue
        assert got is not None, "the kernel threads did not take the case"
        same_bits(got, want)


@pytest.mark.parametrize("shape", [(N + 13,), (257, 300), (3, 9, 4000)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("ufunc", [np.negative, np.absolute, np.sqrt])
def test_unary_results_are_numpys_bit_for_bit(ufunc, dtype, shape):
    a = operand(np.random.default_rng(2), shape, dtype)
    a.reshape(-1)[5::101] = -np.nan  # a negative NaN: abs clears its sign, neg sets it, sqrt keeps it
    with np.errstate(all="ignore"):
        want = ufunc(a)
    for n in (2, 3):
        with threads(n):
            got = _C._parallel_unary(ufunc, a)
        assert got is not None, "the kernel threads did not take the case"
        assert got.tobytes() == want.tobytes()  # NaN payloads and signs included


LOOPED = ["tanh", "sin", "cos", "tan", "arcsin", "arccos", "arctan", "sinh", "cosh", "arcsinh", "arccosh", "arctanh",
          "exp", "exp2", "expm1", "log", "log2", "log10", "log1p", "floor", "ceil", "trunc", "rint", "cbrt", "square",
          "reciprocal"]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", LOOPED)
def test_numpys_own_loops_on_the_threads_give_numpys_bits(name, dtype):
    # these run numpy's inner loop itself, each thread over its blocks of 2^14 elements: the result
    # must not depend on where the blocks start (odd sizes put the tails at odd places)
    rng = np.random.default_rng(4)
    f = getattr(np, name)
    for n in (N, N + 13, 3 * N + 5):
        x = (rng.standard_normal(n) * rng.choice([0.01, 1.0, 10.0, 100.0], n)).astype(dtype)
        x[::97] = np.array([np.inf, -np.inf, np.nan, 0.0, -0.0, 1e-40, 88.0, -100.0], dtype)[np.arange(x[::97].size) % 8]
        with np.errstate(all="ignore"):
            want = f(x)
            for k in (2, 3):
                with threads(k):
                    got = _C._parallel_unary(f, x)
                assert got is not None
                assert got.tobytes() == want.tobytes(), (name, n, k)


def test_unary_cases_left_to_numpy():
    a = np.random.default_rng(3).standard_normal((300, 400)).astype(np.float32)
    with threads(2):
        for name, x in {"small": a[:100], "integers": a.astype(np.int32), "float16": a.astype(np.float16),
                        "non-contiguous": a[:, ::2], "byte-swapped": a.astype(">f4")}.items():
            assert _C._parallel_unary(np.negative, x) is None, name
        assert _C._parallel_unary(np.arctan2, a) is None  # not a unary one
        assert _C._parallel_unary(np.sqrt, a) is not None
        x = tg.tensor(a, requires_grad=True)
        y = (-x).abs().sqrt()
        y.backward(tg.ones_like(y))
        got = y.detach().numpy(), x.grad.numpy()
    with threads(1):
        assert _C._parallel_unary(np.negative, a) is None
        x = tg.tensor(a, requires_grad=True)
        y = (-x).abs().sqrt()
        y.backward(tg.ones_like(y))
        assert got[0].tobytes() == y.detach().numpy().tobytes() and got[1].tobytes() == x.grad.numpy().tobytes()


def test_cases_left_to_numpy():
    rng = np.random.default_rng(1)
    a = rng.standard_normal((300, 400)).astype(np.float32)
    cases = {"small": (a[:100], a[:100]),
             "mixed dtypes": (a, a.astype(np.float64)),
             "integers": (a.astype(np.int32), a.astype(np.int32)),
             "float16": (a.astype(np.float16), a.astype(np.float16)),
             "non-contiguous": (a[:, ::2].copy(), a[:, 1::2]),
             "byte-swapped": (a, a.astype(">f4")),
             "broadcast in the middle": (a.reshape(300, 1, 400) * np.ones((1, 2, 1), np.float32), a.reshape(300, 1, 400)),
             "size-1 dim of the bigger rank": (np.ones((1, 400), np.float32), a),
             "a subclass": (a.view(np.matrix), a)}
    with threads(2):
        for name, (x, y) in cases.items():
            assert _C._parallel_binary(np.add, x, y) is None, name
        assert _C._parallel_binary(np.ldexp, a, a) is None  # not a looped one
        assert _C._parallel_binary(np.maximum, a, a) is not None  # numpy's own loop
        assert _C._parallel_binary(np.add, a, a) is not None
    with threads(1):  # numpy's loop is as fast on one thread
        assert _C._parallel_binary(np.add, a, a) is None


@pytest.mark.parametrize("dtype", [tg.float32, tg.float64])
def test_ops_and_their_gradients_match_one_thread(dtype):
    """Forward ops, gradient sums of a tensor used twice, and pieces of one tensor (q, k, v of a
    qkv product) at 2 threads: the bits of 1 thread, where numpy computes all of it."""
    def run():
        tg.manual_seed(0)
        x = tg.randn(3, 128, 300, dtype=dtype, requires_grad=True)
        w = tg.randn(300, dtype=dtype, requires_grad=True)
        y = (x * w + x) / (w * w + 1) - x * 0.5  # x feeds three ops: its gradient is a sum
        q, k, v = y * 2
        (q * k + v * 3).sum().backward()
        return y.detach().numpy(), x.grad.numpy(), w.grad.numpy()

    with threads(1):
        want = run()
    with threads(2):
        got = run()
    for g, w in zip(got, want):
        same_bits(g, w)


def test_the_forward_is_numpys_for_a_small_or_mixed_case():
    with threads(2):
        a = tg.randn(4000) + tg.randn(4000, dtype=tg.float64)  # promoted, not taken
        assert a.dtype == tg.float64
        b = tg.arange(N * 2) * 2  # int64
        assert b.dtype == tg.int64 and int(b[-1]) == 4 * N - 2



def test_in_place_sum():
    """The engine's in-place gradient sum (a += b): numpy's bits, b broadcast or not, and an
    operand overlapping the sum other than element for element left to numpy, which buffers it."""
    rng = np.random.default_rng(2)
    with threads(2):
        for shapes in [((300, 400), (300, 400)), ((300, 400), (400,)), ((300, 400), ())]:
            a, b = operand(rng, shapes[0], np.float32), operand(rng, shapes[1], np.float32)
            with np.errstate(all="ignore"):
                want = a + b
            assert _C._add_in_place(a, b)
            same_bits(a, want)
        base = rng.standard_normal(N + 64).astype(np.float32)
        for shift in (1, 5, 64):
            assert not _C._add_in_place(base[:N], base[shift:shift + N])
            assert not _C._add_in_place(base[shift:shift + N], base[:N])
        a = base[:N]
        want = a + a
        assert _C._add_in_place(a, a)  # element for element
        same_bits(a, want)
        assert not _C._add_in_place(np.ones(N, np.float32)[::-1], np.ones(N, np.float32))  # not C-contiguous
        frozen = np.ones(N, np.float32)
        frozen.flags.writeable = False
        assert not _C._add_in_place(frozen, np.ones(N, np.float32))


BINARY_LOOPED = ["maximum", "minimum", "fmax", "fmin", "arctan2", "power", "hypot", "copysign", "fmod", "remainder",
                 "floor_divide", "logaddexp", "logaddexp2", "heaviside", "nextafter"]


def specials(rng, shape, dtype):
    """operand()'s values at several scales, with NaNs of other payloads and signs among them: the
    looped ufuncs must hand each NaN on as numpy's loop does."""
    x = operand(rng, shape, dtype)
    flat = x.reshape(-1)
    with np.errstate(over="ignore"):
        flat *= rng.choice([0.01, 1.0, 10.0, 100.0], flat.size).astype(dtype)
    uint = np.uint32 if dtype == np.float32 else np.uint64
    payloads = [0x7FC00001, 0xFFC00002] if dtype == np.float32 else [0x7FF8000000000123, 0xFFF8000000000456]
    bits = flat.view(uint)[7::211]
    bits[:] = np.array(payloads, uint)[np.arange(bits.size) % 2]
    return x


# shapes: equal, around the block size (2^14) and the threshold (2^16), scalars, rows of odd length
LOOP_SHAPES = [((N,), (N,)), ((N + 13,), (N + 13,)), ((3 * N + 5,), (3 * N + 5,)),
               ((N + 1,), ()), ((), (3, N // 3 + 1)), ((70001,), (1,)),
               ((257, 300), (300,)), ((300,), (257, 300)), ((5, 123, 111), (123, 111)), ((3, 9, 4000), (1, 4000)),
               ((7, 20000), (20000,)), ((N + 7, 1), (1,))]


@pytest.mark.parametrize("shapes", LOOP_SHAPES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", BINARY_LOOPED)
def test_numpys_own_binary_loops_give_numpys_bits(name, dtype, shapes):
    f = getattr(np, name)
    rng = np.random.default_rng(5)
    a, b = specials(rng, shapes[0], dtype), specials(rng, shapes[1], dtype)
    with np.errstate(all="ignore"):
        want = f(a, b)
        for k in (2, 3):
            with threads(k):
                got = _C._parallel_binary(f, a, b)
                assert _C._parallel_ufunc(f, a, b).tobytes() == got.tobytes()
            assert got is not None, "the kernel threads did not take the case"
            assert got.dtype == want.dtype and got.shape == want.shape
            assert got.tobytes() == want.tobytes(), (name, shapes, k)  # NaN payloads and signs included


CLIP = np._core.umath.clip


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shapes", [((N + 13,), (), ()), ((3 * N + 5,), (), ()), ((257, 300), (300,), ()),
                                    ((N + 3,), (N + 3,), (N + 3,)), ((5, 123, 111), (), (123, 111))])
def test_numpys_clip_loop_gives_np_clips_bits(dtype, shapes):
    rng = np.random.default_rng(6)
    x = specials(rng, shapes[0], dtype)
    lo, hi = (np.asarray(specials(rng, s, dtype) * 0.1 - 0.2, dtype) for s in shapes[1:])
    want = np.clip(x, lo, hi)
    for k in (2, 3):
        with threads(k):
            got = _C._parallel_ufunc(CLIP, x, lo, hi)
        assert got is not None and got.tobytes() == want.tobytes(), (shapes, k)


def test_looped_cases_left_to_numpy():
    a = np.random.default_rng(7).standard_normal((300, 400)).astype(np.float32)
    with threads(2):
        middle = (a.reshape(300, 1, 400) * np.ones((1, 2, 1), np.float32), a.reshape(300, 1, 400))
        for name, args in {"small": (a[:100], a[:100]), "broadcast in the middle": middle,
                           "integers": (a.astype(np.int32), a.astype(np.int32)), "mixed": (a, a.astype(np.float64)),
                           "non-contiguous": (a[:, ::2], a[:, 1::2])}.items():
            assert _C._parallel_binary(np.maximum, *args) is None, name
        x3 = np.zeros((5, 300, 400), np.float32)
        assert _C._parallel_ufunc(CLIP, x3, a[0], a) is None  # rows of two periods
        assert _C._parallel_ufunc(CLIP, x3, a[0], a[0]) is not None
        assert _C._parallel_ufunc(np.matmul, a, a.T.copy()) is None  # a gufunc
        assert _C._parallel_ufunc(np.maximum, a) is None  # the wrong count
        with pytest.raises(TypeError):
            _C._parallel_ufunc(np.maximum)
    with threads(1):
        assert _C._parallel_binary(np.maximum, a, a) is None


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_infinite_bound_is_a_no_op(dtype):
    # clamp skips the pass of a bound left out (an infinity): np.maximum / np.minimum against it
    # must give the other operand's bits, NaN payloads and zeros' signs included
    x = specials(np.random.default_rng(8), (N + 5,), dtype)
    assert np.maximum(x, dtype(-np.inf)).tobytes() == x.tobytes()
    assert np.minimum(x, dtype(np.inf)).tobytes() == x.tobytes()


@pytest.mark.parametrize("dtype", [tg.float32, tg.float64])
def test_threaded_forwards_match_one_thread(dtype):
    """clamp (scalar and tensor bounds), x ** 2, x ** 0.5, round, log, exp, exp2, log2, atan,
    maximum, minimum, atan2 and pow: the same bits at 1, 2 and 3 threads, numpy's (or PyTorch's,
    as tapegrad's forms) at 1."""
    tg.manual_seed(1)
    x = tg.randn(300, 301, dtype=dtype) * 3
    xp = x.abs() + 0.1
    g = tg.randn(300, 301, dtype=dtype)
    b = tg.randn(301, dtype=dtype)
    cases = {"clamp": lambda: tg.clamp(x, 0.2, 0.8), "clamp_min": lambda: tg.clamp(x, min=0.1),
             "clamp_zero": lambda: tg.clamp(x, -1.0, 0.0),
             "clamp_t": lambda: tg.clamp(x, min=g), "clamp_t_max": lambda: tg.clamp(x, max=g),
             "clamp_tt": lambda: tg.clamp(x, min=g, max=b), "clamp_bias": lambda: tg.clamp(x, min=b),
             "pow2": lambda: x ** 2, "pow0.5": lambda: xp ** 0.5, "round": lambda: tg.round(x),
             "log": lambda: tg.log(xp), "exp": lambda: tg.exp(x), "exp2": lambda: tg.exp2(x),
             "log2": lambda: tg.log2(xp),
             "atan": lambda: tg.atan(x), "maximum": lambda: tg.maximum(x, g), "minimum": lambda: tg.minimum(x, b),
             "atan2": lambda: tg.atan2(x, g), "pow": lambda: tg.pow(xp, g)}
    numpys = {"clamp": lambda a: np.clip(a, a.dtype.type(0.2), a.dtype.type(0.8)), "round": np.round, "log": None,
              "exp2": None, "log2": None, "atan": np.arctan, "maximum": lambda a: np.maximum(a, g.numpy()),
              "minimum": lambda a: np.minimum(a, b.numpy()), "atan2": lambda a: np.arctan2(a, g.numpy()),
              "clamp_t": lambda a: np.maximum(a, g.numpy()), "clamp_t_max": lambda a: np.minimum(a, g.numpy()),
              "clamp_tt": lambda a: np.minimum(np.maximum(a, g.numpy()), b.numpy()),
              "pow2": lambda a: a * a}
    for name, f in cases.items():
        with threads(1):
            want = f().numpy()
        for k in (2, 3):
            with threads(k):
                assert f().numpy().tobytes() == want.tobytes(), (name, k)
        ref = numpys.get(name)
        if ref is not None:
            assert ref(x.numpy()).tobytes() == want.tobytes(), name
    with threads(2):
        assert tg.round(x).numpy().tobytes() == np.rint(x.numpy()).tobytes()
        assert tg.log(xp).numpy().tobytes() == _C.pointwise("log", xp.numpy()).tobytes()  # the kernel's, both dtypes
        assert tg.exp2(x).numpy().tobytes() == np.exp2(x.numpy()).tobytes()


def test_clamp_keeps_its_input():
    x = tg.randn(300, 300)
    with threads(2):
        y = tg.clamp(x, min=tg.full((), -np.inf), max=tg.full((300,), np.inf))
    assert y.numpy().tobytes() == x.numpy().tobytes() and not np.shares_memory(y.numpy(), x.numpy())


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_full_on_the_threads(dtype):
    d = np.dtype(dtype)
    for shape in [(N,), (N + 13,), (3, 7, N // 5 + 1)]:
        for value in (0.0, 1.0, -2.5):
            with threads(2):
                got = _C._full(shape, d, value)
            assert got is not None and got.dtype == d and got.shape == shape
            assert got.tobytes() == np.full(shape, value, d).tobytes()
    with threads(2):
        for args in [((N - 1,), d), ((N,), np.dtype(np.int32)), ([N], d), ((N, -1), d), ((N, 2.0), d)]:
            assert _C._full(*args, 1.0) is None, args
        for make in (tg.ones_like, tg.zeros_like):
            x = tg.randn(300, 400, dtype=tg.float32 if dtype == np.float32 else tg.float64)
            want = (np.ones if make is tg.ones_like else np.zeros)((300, 400), dtype)
            assert make(x).numpy().tobytes() == want.tobytes()
        assert tg.ones(300, 400).numpy().tobytes() == np.ones((300, 400), np.float32).tobytes()
        assert tg.zeros(300, 400, dtype=tg.int64).numpy().tobytes() == np.zeros((300, 400), np.int64).tobytes()
    with threads(1):
        assert _C._full((N,), d, 1.0) is None


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_copy_on_the_threads(dtype):
    a = specials(np.random.default_rng(9), (3, N // 3 + 7), dtype)
    finite = np.random.default_rng(9).standard_normal(a.shape).astype(dtype)
    for k in (2, 3):
        with threads(k):
            got = _C._copy(a)
        assert got is not None and got.shape == a.shape and got.tobytes() == a.tobytes()
        assert not np.shares_memory(got, a) and got.flags.c_contiguous and got.flags.writeable
    with threads(2):
        for name, x in {"small": a[:, :100].copy(), "non-contiguous": a[:, ::2], "float16": finite.astype(np.float16),
                        "integers": finite.astype(np.int64)}.items():
            assert _C._copy(x) is None, name
        # clone, and a gradient that becomes .grad while the caller still holds it: copies
        t = tg.tensor(a)
        c = t.clone()
        assert c.numpy().tobytes() == a.tobytes() and not np.shares_memory(c.numpy(), a)
        x = tg.tensor(a, requires_grad=True)
        g = tg.tensor(finite)
        (x + 1).backward(g)
        assert x.grad.numpy().tobytes() == g.numpy().tobytes() and not np.shares_memory(x.grad.numpy(), g.numpy())
    with threads(1):
        assert _C._copy(a) is None


def test_copy_into_on_the_threads_and_the_cases_left_to_numpy():
    """copy_ with nothing to record copies a large float array of one shape on the kernel threads
    (_C._copy_into), bit for bit (NaN payloads included), at any thread count; other cases numpy's."""
    rng = np.random.default_rng(3)
    before = tg.get_num_threads()
    try:
        for n in (1, 2, 3):
            tg.set_num_threads(n)
            for dt in (np.float32, np.float64):
                src = rng.standard_normal(3 * 2 ** 16 + 5).astype(dt)
                src.view(np.uint32 if dt == np.float32 else np.uint64)[::7] |= 0x7F800001 if dt == np.float32 \
                    else 0x7FF0000000000001  # signalling-NaN payloads
                dst = tg.zeros(src.shape, dtype=tg.float32 if dt == np.float32 else tg.float64)
                v = dst._version
                dst.copy_(tg.tensor(src))
                assert dst.numpy().tobytes() == src.tobytes() and dst._version == v + 1
    finally:
        tg.set_num_threads(before)
    a = np.zeros(2 ** 17, np.float32)
    assert not _C._copy_into(a, np.ones(2 ** 16, np.float32))  # shapes differ
    assert not _C._copy_into(a, a)  # overlapping
    assert not _C._copy_into(a, np.ones(2 ** 17, np.float64))  # dtypes differ
    assert not _C._copy_into(np.zeros(100, np.float32), np.ones(100, np.float32))  # small
    t = tg.arange(12.0).reshape(3, 4)
    t[1:].copy_(t[:2].clone())  # a view of itself, broadcast-free: numpy's path
    assert t.tolist() == [[0, 1, 2, 3], [0, 1, 2, 3], [4, 5, 6, 7]]


def test_in_place_number_keeps_the_sign_of_zero_and_nan():
    """The in-place fast path's numbers come from scalar_tensor's cache, which builds zeros and NaN
    fresh: mul_(-0.0) after mul_(0.0) multiplies by -0.0 (0.0 and -0.0 are equal dict keys)."""
    for n in (10, 3 * 2 ** 16):
        x = tg.ones(n)
        with tg.no_grad():
            x.mul_(0.0)
            assert not np.signbit(x.numpy()).any()
            x.mul_(-0.0)
            assert np.signbit(x.numpy()).all()
            x.add_(float("nan"))
        assert np.isnan(x.numpy()).all()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_broadcast_copy_on_the_threads(dtype):
    """A broadcast of a reduced array along one block of dims (a sum's or mean's gradient on its way
    into .grad) is copied by a fill on the kernel threads: numpy's copy, bit for bit, at any thread
    count; broadcasts along two separate blocks, reversed or transposed sources stay numpy's."""
    rng = np.random.default_rng(11)
    cases = [((1000, 1), (1000, 70)), ((70,), (1000, 70)), ((), (3, N // 3 + 1)), ((7, 1, 300), (7, 40, 300)),
             ((7, 1, 1, 30), (7, 20, 20, 30)), ((1, 4097), (17, 4097)), ((4097, 1), (4097, 17)), ((5, 1), (5, N + 3))]
    for small, full in cases:
        src = specials(rng, small, dtype) if small else np.asarray(rng.standard_normal(), dtype)
        view = np.broadcast_to(src, full)
        for k in (2, 3):
            with threads(k):
                got = _C._copy(view)
            assert got is not None, (small, full)
            assert got.flags.c_contiguous and got.tobytes() == view.copy().tobytes(), (small, full, k)
    with threads(2):
        a = specials(rng, (300, 1, 400, 1), dtype)
        left = {"two blocks": np.broadcast_to(a, (300, 2, 400, 2)), "reversed": np.broadcast_to(a[::-1], (300, 300, 400, 1)),
                "transposed": np.broadcast_to(a[:, :, :, 0].T, (400, 300, 300)),
                "small": np.broadcast_to(a[:10, :, :10], (10, 5, 10, 1))}
        for name, v in left.items():
            assert _C._copy(v) is None, name
    with threads(1):
        assert _C._copy(np.broadcast_to(np.ones((N, 1), dtype), (N, 2))) is None
