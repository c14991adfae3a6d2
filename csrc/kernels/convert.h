// float32 <-> float16 / bfloat16 conversions on the kernel threads, with the bits of the casts
// they replace: numpy's for float16 (round to nearest even, overflow to inf, NaN payloads kept:
// a signalling NaN stays signalling) and ml_dtypes' for bfloat16 (round to nearest even, every
// NaN to the quiet NaN 0x7fc0 of its sign). Every op on a 16-bit tensor computes in float32
// between two of these (tapegrad/_tape/registry.py), so they set the speed of half and
// bfloat16 work: numpy's float32 -> float16 cast is a scalar loop (4.4 ms for 1e6 elements,
// 18x PyTorch's), ml_dtypes' bfloat16 cast 4x.
#pragma once
#include <cstdint>

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

// One element, the reference the vector loops fall back to (NaN lanes, tails).
uint16_t float_to_half_bits(uint32_t f, Half kind);
uint32_t half_to_float_bits(uint16_t h, Half kind);

}  // namespace tapegrad
