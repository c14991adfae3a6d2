// Box-Muller over blocks of pairs (random.h), vectorised under `omp simd` with vmath's log, sin and
// cos, compiled for the baseline ISA, AVX2+FMA and AVX-512 (the rows family's choice, cpu.h).
#include "kernels/random.h"

#include <cmath>

#include "kernels/cpu.h"
#include "kernels/isa_variants.h"
#include "kernels/parallel.h"
#include "kernels/vmath.h"

namespace tapegrad {
namespace {

Isa isa() { return kernel_isa(Kernel::rows); }

constexpr uint64_t kOne = 0x3ff0000000000000ull;  // 1.0's bits: 1 + k 2^-52 for k's 52 bits below them
constexpr double kTwoPi = 6.28318530717958647692, kPi = 3.14159265358979323846;
constexpr int64_t kBlockPairs = 1024;  // a block's doubles (16 KiB) stay in L1 until written out

// One pair from (u1 in (0, 1], u2 in [0, 1)): exact uniforms, so every step's rounding is vmath's.
TG_INLINE void box_muller(double u1, double u2, double& z0, double& z1) {
  const double r = std::sqrt(-2.0 * vmath::log(u1)), t = kTwoPi * u2 - kPi;
  z0 = r * vmath::trig<1>(t);
  z1 = r * vmath::trig<0>(t);
}

// Pairs [0, npairs) of a block into out (its first `count` elements, 2 npairs or one fewer), from
// the raw words of those pairs. The pairs go through z (cos halves first, then sin halves) so that
// both loops vectorise: the first with unit-stride stores, the second interleaving.
template <typename T>
TG_INLINE void block_body(const uint64_t* raw, int64_t npairs, int64_t count, double mean, double std, T* out) {
  double z[2 * kBlockPairs];
#pragma omp simd
  for (int64_t j = 0; j < npairs; ++j) {
    double u1, u2;
    if constexpr (sizeof(T) == 4) {  // 2^-32 steps: 1 + k 2^-32 for each 32-bit half k
      u1 = 2.0 - vmath::bits_to_double(kOne | ((raw[j] >> 32) << 20));
      u2 = vmath::bits_to_double(kOne | ((raw[j] & 0xffffffffull) << 20)) - 1.0;
    } else {  // 2^-52 steps from each word's top 52 bits
      u1 = 2.0 - vmath::bits_to_double(kOne | (raw[2 * j] >> 12));
      u2 = vmath::bits_to_double(kOne | (raw[2 * j + 1] >> 12)) - 1.0;
    }
    box_muller(u1, u2, z[j], z[npairs + j]);
  }
  const int64_t whole = count / 2;
#pragma omp simd
  for (int64_t j = 0; j < whole; ++j) {
    out[2 * j] = static_cast<T>(mean + std * z[j]);
    out[2 * j + 1] = static_cast<T>(mean + std * z[npairs + j]);
  }
  if (count & 1) out[count - 1] = static_cast<T>(mean + std * z[whole]);
}

TG_VARIANTS(block, (const uint64_t* raw, int64_t npairs, int64_t count, double mean, double std, T* out),
            (raw, npairs, count, mean, std, out))

}  // namespace

template <typename T>
void normal_from_bits(const uint64_t* raw, int64_t n, double mean, double std, T* out) {
  const int64_t npairs = (n + 1) / 2, words = sizeof(T) == 4 ? 1 : 2;
  const int64_t nblocks = (npairs + kBlockPairs - 1) / kBlockPairs;
  parallel_tiles(nblocks, n >= (int64_t(1) << 15), [&](int64_t b) {
    const int64_t j0 = b * kBlockPairs, len = std::min(kBlockPairs, npairs - j0);
    TG_CALL(block, T, raw + j0 * words, len, std::min(2 * len, n - 2 * j0), mean, std, out + 2 * j0);
  });
}

template void normal_from_bits<float>(const uint64_t*, int64_t, double, double, float*);
template void normal_from_bits<double>(const uint64_t*, int64_t, double, double, double*);

}  // namespace tapegrad
