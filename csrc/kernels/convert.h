// float32 <-> float16 / bfloat16 conversions on the kernel threads, with the bits of the casts
// they replace: numpy's for float16 (round to nearest even, overflow to inf, NaN payloads kept:
// a signalling NaN stays signalling) and ml_dtypes' for bfloat16 (round to nearest even, every
// NaN to the quiet NaN 0x7fc0 of its sign). Every op on a 16-bit tensor computes in float32
// between two of these (tapegrad/_tape/registry.py), so they set the speed of half and
// bfloat16 work: numpy's float32 -> float16 cast is a scalar loop (4.4 ms for 1e6 elements,
// 18x PyTorch's), ml_dtypes' bfloat16 cast 4x.
#pragma once
#include <cstdint>

#include "kernels/parallel.h"

namespace tapegrad {

enum class Half { f16, bf16 };

// y[i] = x[i] rounded to the 16-bit format (its bits), for i < n.
void floats_to_half(const float* x, uint16_t* y, int64_t n, Half kind);
// y[i] = the float32 value of the 16-bit x[i] (exact), for i < n.
void half_to_floats(const uint16_t* x, float* y, int64_t n, Half kind);

// y = op(a, b) rounded to the 16-bit format, op 0 add, 1 subtract, 2 multiply, 3 divide, each
// operand widened to float32 (exact) and the float32 result rounded once: an op on 16-bit tensors
// as the float32 detour computes it, in one pass through L1. a (b) null: the float32 number sa
// (sb) for every element.
void binary_half(int op, const uint16_t* a, float sa, const uint16_t* b, float sb, uint16_t* y, int64_t n,
                 Half kind);

// The two conversions on one block, on the calling thread: for the fused kernels below.
void half_to_floats_block(const uint16_t* x, float* y, int64_t n, Half kind);
void floats_to_half_block(const float* x, uint16_t* y, int64_t n, Half kind);

// y = f(a) (f(a, b) when b is not null) rounded to the 16-bit format, each operand widened to
// float32 (exact) and the float32 result rounded once: an elementwise op on 16-bit tensors as the
// float32 detour computes it (tapegrad/_tape/registry.py), in one pass through L1 instead of three
// passes and two full float32 temporaries. f(ta, tb, len) is a float32 kernel on one block of
// len <= kElementBlock elements that writes its result over ta (tb: b's block, or null); it must
// run on the calling thread (a kernel's own for_element_blocks does, nested here, or for so few
// elements) and compute each element from that element's operands alone, so the bits are the
// float32 kernel's on the whole tensor, for any thread count.
template <typename F>
void map_half(const uint16_t* a, const uint16_t* b, uint16_t* y, int64_t n, Half kind, F&& f) {
  for_element_blocks(n, [&](int64_t i, int64_t len) {
    alignas(64) float ta[kElementBlock];
    alignas(64) float tb[kElementBlock];
    half_to_floats_block(a + i, ta, len, kind);
    if (b) half_to_floats_block(b + i, tb, len, kind);
    f(ta, b ? tb : nullptr, len);
    floats_to_half_block(ta, y + i, len, kind);
  });
}

// neg, abs and relu of 16-bit values on their bits, exact, in one pass of 2-byte loads and stores
// with the float32 detour's bits (which widened, ran the float32 kernel and rounded back: 1.3-2.2x
// PyTorch's time over 1e6 elements): neg flips the sign bit, abs clears it; relu(x) is x for
// x > 0 and for a NaN (PyTorch's relu(NaN) = NaN), +0 for -0 and the negatives (the float32
// kernel's x > 0 || x != x ? x : 0). A NaN result keeps its payload in float16 and is the quiet
// NaN 0x7fc0 of its sign in bfloat16, as the detour's rounding gives it.
enum class HalfBits { neg, abs, relu };
void bits_half(HalfBits op, const uint16_t* x, uint16_t* y, int64_t n, Half kind);

// y = sqrt(x) on 16-bit values: the float32 root of each widened element, rounded once (the bits
// of map_half with rows.h's float32 sqrt), in one pass in registers. False (nothing written) where
// this build has no such loop (float16 without F16C): map_half then.
bool sqrt_half(const uint16_t* x, uint16_t* y, int64_t n, Half kind);

// y = rsqrt(x) on 16-bit values: the float32 detour's bits (1 / sqrt of each widened element,
// rounded once) from a cheaper float32 approximation that rounds alike for every 16-bit x, in one
// pass in registers. False (nothing written) below AVX-512: map_half then.
bool rsqrt_half(const uint16_t* x, uint16_t* y, int64_t n, Half kind);

// One element, the reference the vector loops fall back to (NaN lanes, tails).
uint16_t float_to_half_bits(uint32_t f, Half kind);
uint32_t half_to_float_bits(uint16_t h, Half kind);

}  // namespace tapegrad
