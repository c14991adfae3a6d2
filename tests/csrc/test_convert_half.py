"""float32 <-> float16 / bfloat16 conversions (csrc/kernels/convert.h): the bits of numpy's float16
cast and ml_dtypes' bfloat16 cast, for every 16-bit value and for float32s at every rounding
boundary, at any thread count; and the ops that use them (``half()``, ``bfloat16()``, ``float()``
and every op on a 16-bit tensor, which computes in float32 between two conversions).
tests/csrc/test_isa_paths.py runs this file again on the AVX2 and generic builds."""
import numpy as np
import pytest

import tapegrad
from tapegrad import _C

ml_dtypes = pytest.importorskip("ml_dtypes")
BF16 = np.dtype(ml_dtypes.bfloat16)
KINDS = [(np.dtype(np.float16), False), (BF16, True)]


def boundary_floats():
    """Every sign and exponent with the mantissas where rounding to 10 (float16) or 7 (bfloat16)
    bits changes: ties, one either side, odd and even kept bits; plus random bit patterns (NaN
    payloads, signalling NaNs and subnormals among them)."""
    mants = np.array([0, 1, 2, 0xFFF, 0x1000, 0x1001, 0x1FFF, 0x2000, 0x2FFF, 0x3000, 0x3001, 0x7FFF, 0x8000,
                      0x8001, 0xFFFF, 0x10000, 0x17FFF, 0x18000, 0x18001, 0x400000, 0x400001, 0x7FFFFE, 0x7FFFFF],
                     np.uint32)
    grid = ((np.arange(512, dtype=np.uint32) << 23)[:, None] | mants[None, :]).ravel()
    rand = np.random.default_rng(0).integers(0, 2**32, 1 << 18, dtype=np.uint64).astype(np.uint32)
    return np.concatenate([grid, rand]).view(np.float32)


def to_half(x, bf16):
    out = np.empty(x.size, np.uint16)
    _C._convert_half(x, out, bf16)
    return out


def from_half(h, bf16):
    out = np.empty(h.size, np.float32)
    _C._convert_half(h, out, bf16)
    return out


@pytest.mark.threads
@pytest.mark.parametrize("dtype,bf16", KINDS, ids=["float16", "bfloat16"])
@pytest.mark.parametrize("threads", [1, 2, 3])
def test_rounding_has_the_reference_casts_bits(dtype, bf16, threads, restore_threads):
    _C.set_num_threads(threads)
    x = boundary_floats()
    with np.errstate(all="ignore"):  # numpy flags overflow and signalling NaNs
        ref = x.astype(dtype).view(np.uint16)
    got = to_half(x, bf16)
    bad = np.nonzero(got != ref)[0]
    assert bad.size == 0, [(hex(u), hex(g), hex(r)) for u, g, r in
                           zip(x.view(np.uint32)[bad[:5]], got[bad[:5]], ref[bad[:5]])]


@pytest.mark.parametrize("dtype,bf16", KINDS, ids=["float16", "bfloat16"])
def test_widening_is_exact_for_every_16_bit_value(dtype, bf16):
    h = np.arange(1 << 16, dtype=np.uint16)
    ref = h.view(dtype).astype(np.float32).view(np.uint32)  # NaN payloads kept, as numpy keeps them
    got = from_half(h, bf16).view(np.uint32)
    bad = np.nonzero(got != ref)[0]
    assert bad.size == 0, [hex(v) for v in h[bad[:5]]]


@pytest.mark.parametrize("n", [0, 1, 7, 8, 9, 4097, (1 << 16) + 3, (1 << 18) + 5])
@pytest.mark.parametrize("dtype,bf16", KINDS, ids=["float16", "bfloat16"])
def test_every_size_and_tail(n, dtype, bf16):
    x = np.random.default_rng(n).standard_normal(n).astype(np.float32) * 1000
    h = to_half(x, bf16)
    np.testing.assert_array_equal(h, x.astype(dtype).view(np.uint16))
    np.testing.assert_array_equal(from_half(h, bf16), h.view(dtype).astype(np.float32))


def test_bad_arguments_name_the_op():
    x = np.ones(8, np.float32)
    with pytest.raises(ValueError, match="convert_half: sizes differ"):
        _C._convert_half(x, np.empty(7, np.uint16), False)
    with pytest.raises(ValueError, match="convert_half: both arrays must be C-contiguous"):
        _C._convert_half(np.ones(16, np.float32)[::2], np.empty(8, np.uint16), False)
    with pytest.raises(ValueError, match="convert_half: expected float32 -> uint16"):
        _C._convert_half(x.astype(np.float64), np.empty(8, np.uint16), False)
    ro = np.empty(8, np.uint16)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="convert_half: dst is read-only"):
        _C._convert_half(x, ro, False)


@pytest.mark.parametrize("dtype", [tapegrad.float16, tapegrad.bfloat16], ids=["float16", "bfloat16"])
@pytest.mark.parametrize("layout", ["C", "F", "strided"])
def test_tensor_casts_and_16_bit_ops_keep_the_reference_bits(dtype, layout):
    """half() / bfloat16() / float() / double(), and an op on 16-bit tensors (float32 maths rounded
    once), equal numpy's / ml_dtypes' casts, whichever layout takes the native path or not."""
    a = np.random.default_rng(1).standard_normal((64, 96)).astype(np.float32)
    a = {"C": a, "F": np.asfortranarray(a), "strided": a[:, ::2]}[layout]
    x = tapegrad.tensor(a)
    np_dtype = np.dtype(dtype)
    h = x.to(dtype)
    assert h.dtype == dtype
    ref = a.astype(np_dtype)
    np.testing.assert_array_equal(h.numpy().view(np.uint16), ref.view(np.uint16))
    np.testing.assert_array_equal(h.float().numpy(), ref.astype(np.float32))
    np.testing.assert_array_equal(h.double().numpy(), ref.astype(np.float32).astype(np.float64))
    s = (h * h + h).numpy()
    r32 = ref.astype(np.float32)
    np.testing.assert_array_equal(s.view(np.uint16), (r32 * r32).astype(np_dtype).astype(np.float32).__add__(r32)
                                  .astype(np_dtype).view(np.uint16))


@pytest.mark.parametrize("dtype", [tapegrad.float16, tapegrad.bfloat16], ids=["float16", "bfloat16"])
def test_gradient_flows_back_through_the_casts(dtype):
    x = tapegrad.randn(70, 80, requires_grad=True)  # above the native path's size
    y = (x.to(dtype) * 3).float().sum()
    y.backward()
    assert x.grad.dtype == tapegrad.float32
    np.testing.assert_array_equal(x.grad.numpy(), np.full((70, 80), 3, np.float32))


@pytest.mark.threads
@pytest.mark.parametrize("dtype", [tapegrad.float16, tapegrad.bfloat16], ids=["float16", "bfloat16"])
@pytest.mark.parametrize("threads", [1, 2, 3])
def test_16_bit_arithmetic_in_one_pass_has_the_float32_detours_bits(dtype, threads, restore_threads):
    """add / sub / mul / div on 16-bit tensors (registry.py's _binary16): each operand widened, the
    float32 result rounded once, as the detour through float32 arrays gives it; numbers on either
    side; infinities, NaN, zeros of both signs, overflow and subnormal results among the values."""
    _C.set_num_threads(threads)
    np_dtype = np.dtype(dtype)
    rng = np.random.default_rng(threads)
    n = 70_001  # above the native path's size and the threads' threshold, not a multiple of a block
    a32 = (rng.standard_normal(n) * np.exp(rng.uniform(-12, 12, n))).astype(np.float32)
    b32 = (rng.standard_normal(n) * np.exp(rng.uniform(-12, 12, n))).astype(np.float32)
    a32[:8] = [np.inf, -np.inf, np.nan, 0.0, -0.0, 6e4, 1e-7, -3.0]
    b32[:8] = [np.inf, 2.0, 1.0, -0.0, 0.0, 6e4, 1e-7, 0.0]
    with np.errstate(all="ignore"):  # (overflow to inf in the casts and the products is meant)
        a, b = a32.astype(np_dtype), b32.astype(np_dtype)
        wa, wb = a.astype(np.float32), b.astype(np.float32)
        ta, tb = tapegrad.tensor(a), tapegrad.tensor(b)
        for op, f in ((np.add, lambda x, y: x + y), (np.subtract, lambda x, y: x - y),
                      (np.multiply, lambda x, y: x * y), (np.true_divide, lambda x, y: x / y)):
            for got, ref in ((f(ta, tb), op(wa, wb)), (f(ta, 1.5), op(wa, np.float32(1.5))),
                             (f(0.25, tb), op(np.float32(0.25), wb))):
                assert got.dtype == dtype
                np.testing.assert_array_equal(got.numpy().view(np.uint16), ref.astype(np_dtype).view(np.uint16),
                                              err_msg=op.__name__)


def test_binary_half_bad_arguments_name_the_op():
    out = np.empty(4, np.uint16)
    with pytest.raises(ValueError, match="binary_half: op must be 0"):
        _C._binary_half(4, 1.0, 1.0, out, False)
    with pytest.raises(ValueError, match="binary_half: b must be a C-contiguous uint16 array of 4 elements"):
        _C._binary_half(0, out, np.empty(3, np.uint16), out, False)
    with pytest.raises(ValueError, match="binary_half: out must be a writable C-contiguous uint16 array"):
        _C._binary_half(0, 1.0, 1.0, np.empty(4, np.float32), False)
