// sum / mean / amax / amin / prod / logsumexp / norms over the middle dim of a C-contiguous
// (A, N, B) array, their first-order gradients back over it, and max / min's scatter (reduce.h).
//
// Two layouts, each a loop body written once (a template, inlined) and compiled for the baseline
// ISA, AVX2+FMA and AVX-512, chosen at run time by CPU feature (cpu.h; the rows family's choice):
//  - B = 1, rows: each row of N is reduced in lanes (lane_sums.h for the sums), rows taken in
//    tasks of about kTaskElems elements. A row longer than kRowChunk is cut into chunks of
//    kRowChunk, each a tile of its own, whose partials are combined in chunk order.
//  - B > 1, columns: the reduction runs down the N rows of B columns, vectorised across the
//    columns. A tile is a strip of at most kStrip columns over a chunk of rows; down the chunk,
//    each block of kRowBlock rows is summed in T, row after row into a buffer that stays in L1
//    (the rows stream in order), and the block's sums are added into double partials (one per
//    column). Chunks' partials are combined in chunk order.
// Every cut depends on the shape alone, never on the thread count, so results are bit-identical
// for any number of threads; and every ISA adds in the same order (lanes fixed in bytes, columns
// independent of the vector width), so they are the same for every ISA too, but for logsumexp's
// exp (vmath.h), which may differ by an ulp between ISAs.
#include "kernels/reduce.h"

#include "kernels/convert.h"
#include "kernels/cpu.h"
#include "kernels/isa_variants.h"
#include "kernels/lane_sums.h"
#include "kernels/parallel.h"
#include "kernels/vmath.h"

#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <type_traits>
#include <vector>

namespace tapegrad {
namespace {


// Elements below which a fork costs more than it saves.
constexpr int64_t kParallelMinElems = 1 << 15;
// Row reductions: a task covers whole rows, about this many elements.
constexpr int64_t kTaskElems = 1 << 14;
// Rows longer than this are cut into chunks of it (a full reduction of 1e6 floats: 31 tiles for
// the threads to share), each summed in its own lanes, the chunks' sums then added in order.
constexpr int64_t kRowChunk = 1 << 15;
// Row sums keep 256 bytes of lanes (four AVX-512 vectors, eight AVX2 ones): independent adds,
// as rows.cpp's row kernels.
constexpr int64_t kLaneBytes = 256;
// Column reductions: a strip of at most kStrip columns (its double partials, 8 KiB, stay in L1)...
constexpr int64_t kStrip = 1024;
// ...runs down its rows kRowBlock at a time, summed in T (as numpy's pairwise sum adds runs of
// 8 x 16 in T) and then added into the double partials...
constexpr int64_t kRowBlock = 16;
// ...in chunks of rows of about kChunkElems elements, at most kMaxChunks of them: chunks are
// what two threads share when there are few strips and few outputs (a column sum over
// 1000 x 1000: 8 chunks of 128 rows), and each costs its partials' share of a final pass.
constexpr int64_t kChunkElems = 1 << 17;
constexpr int64_t kMaxChunks = 16;

Isa isa() {
  static const Isa chosen = kernel_isa(Kernel::rows);
  return chosen;
}

// x replaces m when it is larger (smaller for amin) or NaN: a NaN, once taken, stays (nothing is
// larger than it, and only another NaN replaces it), so a reduction over a NaN gives NaN.
template <typename T, bool Min>
TG_INLINE T pick(T m, T x) {
  return ((Min ? x < m : x > m) | (x != x)) ? x : m;
}

// The reductions that combine values in T (max, min, product) rather than summing terms.
enum class Fold { max, min, prod };

template <typename T, Fold F>
TG_INLINE T fold(T a, T b) {
  if constexpr (F == Fold::prod) return a * b;
  else return pick<T, F == Fold::min>(a, b);
}

// What a summing reduction adds up: x (sum, mean), |x| (norm1), x^2 (norm2), exp(x - m) (logsumexp).
enum class Term { x, abs, square, exp };

template <typename T, Term K>
TG_INLINE T term(T v, T m) {
  if constexpr (K == Term::abs) return std::fabs(v);
  else if constexpr (K == Term::square) return v * v;
  else if constexpr (K == Term::exp) return vmath::exp_v(v - m);
  else return v;
}

// logsumexp's shift: the slice's maximum, or 0 where that is +-inf (PyTorch's masked_fill_), so
// that a slice of -inf sums exp(-inf) = 0 (log: -inf) and one holding +inf sums inf.
template <typename T>
TG_INLINE T lse_shift(T m) {
  return std::fabs(m) == std::numeric_limits<T>::infinity() ? T(0) : m;
}

// The sum rounded to T, then: divided by the count in T for mean (PyTorch's sum then div_), its
// square root for norm2, its log plus the shift m for logsumexp.
template <typename T>
TG_INLINE T finish(ReduceOp op, double s, int64_t count, T m) {
  const T t = T(s);
  if (op == ReduceOp::mean) return T(t / T(count));
  if (op == ReduceOp::norm2) return std::sqrt(t);
  if (op == ReduceOp::logsumexp) return std::log(t) + m;
  return t;
}

Term term_of(ReduceOp op) {
  return op == ReduceOp::norm1 ? Term::abs : op == ReduceOp::norm2 ? Term::square
       : op == ReduceOp::logsumexp ? Term::exp : Term::x;
}

Fold fold_of(ReduceOp op) {
  return op == ReduceOp::amax ? Fold::max : op == ReduceOp::amin ? Fold::min : Fold::prod;
}

bool is_fold(ReduceOp op) {
  return op == ReduceOp::amax || op == ReduceOp::amin || op == ReduceOp::prod;
}

// A float16 / bfloat16 input of reduce_middle_half: the drivers below take it where they take a
// const T*, and its leaves widen each run to float32 in L1 before the float32 loop body runs on it.
struct HalfSrc {
  const uint16_t* p;
  Half kind;
  HalfSrc operator+(int64_t k) const { return {p + k, kind}; }
};

// ---------------------------------------------------------------- loop bodies
// The largest (smallest) of p[0, n), n >= L, in L lanes. Max is idempotent, so the last lane
// step overlaps the one before it rather than ending in a scalar loop (which took 40% of the
// time over rows of 1000 floats), and the lanes are combined pairwise in vector steps.
template <typename T, bool Min, int64_t L>
TG_INLINE T max_lanes(int64_t n, const T* p) {
  alignas(64) T lane[L];
  for (int64_t l = 0; l < L; ++l) lane[l] = p[l];
  for (int64_t j = L;; j += L) {
    const T* q = p + std::min(j, n - L);
#pragma omp simd aligned(lane : 64)
    for (int64_t l = 0; l < L; ++l) lane[l] = pick<T, Min>(lane[l], q[l]);
    if (j + L >= n) break;
  }
  for (int64_t w = L / 2; w >= 1; w /= 2) {
#pragma omp simd aligned(lane : 64)
    for (int64_t l = 0; l < w; ++l) lane[l] = pick<T, Min>(lane[l], lane[l + w]);
  }
  return lane[0];
}

// The product of p[0, n), n >= L, in L lanes (the tail into the first lanes), combined pairwise:
// a product has no overlap trick, and one running product waits 4 cycles on each multiply. The
// lanes multiply in double: float lanes of values near 1 drifted, 6.7e-4 off over 1e6 of
// exp(1e-4 N(0, 9)) (PyTorch's float product: 1.5e-4, numpy's 1.8e-5), double ones 1e-7.
template <typename T, int64_t L>
TG_INLINE T prod_lanes(int64_t n, const T* p) {
  alignas(64) double lane[L];
  for (int64_t l = 0; l < L; ++l) lane[l] = double(p[l]);
  int64_t j = L;
  for (; j + L <= n; j += L) {
#pragma omp simd aligned(lane : 64)
    for (int64_t l = 0; l < L; ++l) lane[l] *= double(p[j + l]);
  }
  for (int64_t l = 0; j + l < n; ++l) lane[l] *= double(p[j + l]);
  for (int64_t w = L / 2; w >= 1; w /= 2) {
#pragma omp simd aligned(lane : 64)
    for (int64_t l = 0; l < w; ++l) lane[l] *= lane[l + w];
  }
  return T(lane[0]);
}

// The fold of p[0, n), n > 0.
template <typename T, Fold F>
TG_INLINE T fold_row(int64_t n, const T* p) {
  constexpr int64_t L = kLaneBytes / int64_t(sizeof(T)), S = 32 / int64_t(sizeof(T));
  constexpr bool Min = F == Fold::min;
  if (n >= L) return F == Fold::prod ? prod_lanes<T, L>(n, p) : max_lanes<T, Min, L>(n, p);
  if (n >= S) return F == Fold::prod ? prod_lanes<T, S>(n, p) : max_lanes<T, Min, S>(n, p);
  T m = p[0];
  for (int64_t j = 1; j < n; ++j) m = fold<T, F>(m, p[j]);
  return m;
}

// Rows [0, nrows), each n elements, ld apart: their sums of term K, as doubles into part (when
// not null), else finished into out. logsumexp's shift is shift[r] when given, else the row's own
// maximum (the row is then read twice, the second time from L1/L2).
template <typename T, Term K>
TG_INLINE void sum_rows_body(int64_t nrows, int64_t n, int64_t ld, const T* x, const T* shift, double* part,
                             T* out, ReduceOp op, int64_t count) {
  for (int64_t r = 0; r < nrows; ++r) {
    const T* p = x + r * ld;
    T m = T(0);
    if constexpr (K == Term::exp) m = shift ? shift[r] : lse_shift(fold_row<T, Fold::max>(n, p));
    double s, unused;
    if (K == Term::x && kLaneBytes == 256 && n >= 4 * kLaneBytes / int64_t(sizeof(T)))
      s = lanes::sum256<T>(n, p);  // the same bits, in registers
    else
      lanes::sums<T, kLaneBytes>(n, [p, m](int64_t j) { return term<T, K>(p[j], m); }, nullptr, s, unused);
    if (part) part[r] = s;
    else out[r] = finish<T>(op, s, count, m);
  }
}

// part[k] = the sum of (x[j] - y[j])^2 over the k-th run of kLaneChunk in [0, n), in lanes.
template <typename T>
TG_INLINE void sumsq_diff_body(int64_t n, const T* x, const T* y, double* part) {
  for (int64_t i = 0; i < n; i += lanes::kLaneChunk) {
    const T *p = x + i, *q = y + i;
    double unused;
    lanes::sums<T, kLaneBytes>(
        std::min(lanes::kLaneChunk, n - i),
        [p, q](int64_t j) {
          const T d = p[j] - q[j];
          return d * d;
        },
        nullptr, part[i / lanes::kLaneChunk], unused);
  }
}

// Rows [0, nrows), each n > 0 elements, ld apart: their fold into out.
template <typename T, Fold F>
TG_INLINE void fold_rows_body(int64_t nrows, int64_t n, int64_t ld, const T* x, T* out) {
  for (int64_t r = 0; r < nrows; ++r) out[r] = fold_row<T, F>(n, x + r * ld);
}

// acc[j] += the sum over rows [0, n) (ld apart) of term K of x[i * ld + j] (shifted by m[j] for
// logsumexp), for j in [0, w <= kStrip): blocks of kRowBlock rows summed in T in a buffer (row by
// row, so the rows stream in order), each block's sums then added in double.
template <typename T, Term K>
TG_INLINE void sum_cols_body(int64_t n, int64_t w, int64_t ld, const T* x, const T* m, double* acc) {
  alignas(64) T s[kStrip];
  const auto shift = [m](int64_t j) {
    if constexpr (K == Term::exp) return m[j];
    else return T(0);
  };
  for (int64_t i = 0; i < n; i += kRowBlock) {
    const T* p = x + i * ld;
    const int64_t rows = std::min(kRowBlock, n - i);
    if (rows == kRowBlock) {
      // a whole block: each column's kRowBlock terms added in registers, in the same order as the
      // row-by-row passes below (which load and store s for each row: 1.4x the time)
#pragma omp simd
      for (int64_t j = 0; j < w; ++j) {
        const T m = shift(j);
        T t = term<T, K>(p[j], m);
#pragma GCC unroll 16
        for (int64_t k = 1; k < kRowBlock; ++k) t += term<T, K>(p[k * ld + j], m);
        acc[j] += double(t);
      }
      continue;
    }
#pragma omp simd aligned(s : 64)
    for (int64_t j = 0; j < w; ++j) s[j] = term<T, K>(p[j], shift(j));
    for (int64_t k = 1; k < rows; ++k) {
      const T* q = p + k * ld;
#pragma omp simd aligned(s : 64)
      for (int64_t j = 0; j < w; ++j) s[j] += term<T, K>(q[j], shift(j));
    }
#pragma omp simd aligned(s : 64)
    for (int64_t j = 0; j < w; ++j) acc[j] += double(s[j]);
  }
}

// sum_rows_body<float, Term::x> on 16-bit rows, bit for bit: each run of kLaneChunk (the lanes'
// unit) widened into an L1 buffer and added into the same lanes; a short row widened whole.
template <typename T>
TG_INLINE void sum_rows_half_body(int64_t nrows, int64_t n, int64_t ld, const uint16_t* x, Half kind, double* part,
                                  float* out, ReduceOp op, int64_t count) {
  alignas(64) float buf[lanes::kLaneChunk];
  for (int64_t r = 0; r < nrows; ++r) {
    const uint16_t* p = x + r * ld;
    double s, unused;
    if (n >= 4 * kLaneBytes / int64_t(sizeof(float))) {
      lanes::Lanes256<float> acc;
      for (int64_t c0 = 0; c0 < n; c0 += lanes::kLaneChunk) {
        const int64_t len = std::min(lanes::kLaneChunk, n - c0);
        half_to_floats_block(p + c0, buf, len, kind);
        acc.add_run(buf, len);
      }
      s = acc.total();
    } else {
      half_to_floats_block(p, buf, n, kind);
      lanes::sums<float, kLaneBytes>(n, [&buf](int64_t j) { return buf[j]; }, nullptr, s, unused);
    }
    if (part) part[r] = s;
    else out[r] = finish<float>(op, s, count, 0.0f);
  }
}

// sum_cols_body<float, Term::x> on 16-bit columns, bit for bit (each column's adds are its own):
// each block of kRowBlock rows widened kHalfStrip columns at a time into an L1 buffer.
constexpr int64_t kHalfStrip = 256;
template <typename T>
TG_INLINE void sum_cols_half_body(int64_t n, int64_t w, int64_t ld, const uint16_t* x, Half kind, double* acc) {
  alignas(64) float buf[kRowBlock * kHalfStrip];
  for (int64_t i = 0; i < n; i += kRowBlock) {
    const int64_t rows = std::min(kRowBlock, n - i);
    for (int64_t j0 = 0; j0 < w; j0 += kHalfStrip) {
      const int64_t wj = std::min(kHalfStrip, w - j0);
      for (int64_t k = 0; k < rows; ++k) half_to_floats_block(x + (i + k) * ld + j0, buf + k * kHalfStrip, wj, kind);
      sum_cols_body<float, Term::x>(rows, wj, kHalfStrip, buf, nullptr, acc + j0);
    }
  }
}

// sum_cols_half_body again, with each element widened in a register as it is added (F16C's
// vcvtph2ps for float16, a shift for bfloat16) instead of each block being widened into the L1
// buffer and read back: the same float32 adds in the same order (a column's block of rows front to
// back, then into its double), so the same bits. Built for AVX2+F16C and AVX-512 (16 columns a
// vector, then 8, then one); the generic build keeps the buffer. sum(0) of 1000 x 1000 on one
// thread: float16 0.184 -> 0.102 ms (PyTorch 0.12), bfloat16 0.135 -> 0.109 (0.14).
#define TG_AVX2_F16C __attribute__((target("avx2,fma,f16c")))
#define TG_AVX512_F16C __attribute__((target("avx512f,avx512dq,avx512vl,avx2,fma,f16c,prefer-vector-width=512")))

template <bool BF16>
TG_AVX2_F16C TG_INLINE __m256 widen8(const uint16_t* q) {
  const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(q));
  if constexpr (BF16) return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
  else return _mm256_cvtph_ps(h);
}

template <bool BF16>
TG_AVX512_F16C TG_INLINE __m512 widen16(const uint16_t* q) {
  const __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q));
  if constexpr (BF16) return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
  else return _mm512_cvtph_ps(h);
}

// a[0, 8) (a[0, 16)) += the float32 sum of rows [0, rows) of p[0, 8) (p[0, 16)), ld apart; Rows > 0:
// rows, known at compile time.
template <bool BF16, int64_t Rows>
TG_AVX2_F16C TG_INLINE void col8(int64_t rows, int64_t ld, const uint16_t* p, double* a) {
  __m256 t = widen8<BF16>(p);
  if constexpr (Rows > 0) {
#pragma GCC unroll 16
    for (int64_t k = 1; k < Rows; ++k) t = _mm256_add_ps(t, widen8<BF16>(p + k * ld));
  } else {
    for (int64_t k = 1; k < rows; ++k) t = _mm256_add_ps(t, widen8<BF16>(p + k * ld));
  }
  _mm256_storeu_pd(a, _mm256_add_pd(_mm256_loadu_pd(a), _mm256_cvtps_pd(_mm256_castps256_ps128(t))));
  _mm256_storeu_pd(a + 4, _mm256_add_pd(_mm256_loadu_pd(a + 4), _mm256_cvtps_pd(_mm256_extractf128_ps(t, 1))));
}

template <bool BF16, int64_t Rows>
TG_AVX512_F16C TG_INLINE void col16(int64_t rows, int64_t ld, const uint16_t* p, double* a) {
  __m512 t = widen16<BF16>(p);
  if constexpr (Rows > 0) {
#pragma GCC unroll 16
    for (int64_t k = 1; k < Rows; ++k) t = _mm512_add_ps(t, widen16<BF16>(p + k * ld));
  } else {
    for (int64_t k = 1; k < rows; ++k) t = _mm512_add_ps(t, widen16<BF16>(p + k * ld));
  }
  _mm512_storeu_pd(a, _mm512_add_pd(_mm512_loadu_pd(a), _mm512_cvtps_pd(_mm512_castps512_ps256(t))));
  _mm512_storeu_pd(a + 8, _mm512_add_pd(_mm512_loadu_pd(a + 8), _mm512_cvtps_pd(_mm512_extractf32x8_ps(t, 1))));
}

// One block of rows <= kRowBlock (Rows: rows when it is the whole block) across columns [0, w):
// vectors of 16 columns (Wide), then of 8, then one at a time. A macro, so that each build's
// function (its own target) holds the loops and inlines the vector steps.
#define TG_COLS_FUSED_BODY(Wide)                                                                         \
  const Half kind = BF16 ? Half::bf16 : Half::f16;                                                      \
  for (int64_t i = 0; i < n; i += kRowBlock) {                                                          \
    const int64_t rows = std::min(kRowBlock, n - i);                                                    \
    const uint16_t* p = x + i * ld;                                                                     \
    int64_t j = 0;                                                                                      \
    if constexpr (Wide) {                                                                               \
      if (rows == kRowBlock)                                                                            \
        for (; j + 16 <= w; j += 16) col16<BF16, kRowBlock>(rows, ld, p + j, acc + j);                 \
      else                                                                                              \
        for (; j + 16 <= w; j += 16) col16<BF16, 0>(rows, ld, p + j, acc + j);                         \
    }                                                                                                   \
    if (rows == kRowBlock)                                                                              \
      for (; j + 8 <= w; j += 8) col8<BF16, kRowBlock>(rows, ld, p + j, acc + j);                      \
    else                                                                                                \
      for (; j + 8 <= w; j += 8) col8<BF16, 0>(rows, ld, p + j, acc + j);                              \
    for (; j < w; ++j) {                                                                                \
      float t = vmath::bits_to_float(half_to_float_bits(p[j], kind));                                   \
      for (int64_t k = 1; k < rows; ++k) t += vmath::bits_to_float(half_to_float_bits(p[k * ld + j], kind)); \
      acc[j] += double(t);                                                                              \
    }                                                                                                   \
  }

template <bool BF16>
TG_AVX2_F16C __attribute__((noinline)) void sum_cols_fused_avx2(int64_t n, int64_t w, int64_t ld, const uint16_t* x,
                                                                double* acc) {
  TG_COLS_FUSED_BODY(false)
}
template <bool BF16>
TG_AVX512_F16C __attribute__((noinline)) void sum_cols_fused_avx512(int64_t n, int64_t w, int64_t ld,
                                                                    const uint16_t* x, double* acc) {
  TG_COLS_FUSED_BODY(true)
}
#undef TG_COLS_FUSED_BODY

// sum_rows_half_body's long rows (n >= 256), each run of kLaneChunk widened in registers as
// Lanes256<float>::add_run adds it rather than through the L1 buffer: the same four vectors of 16
// lanes (a zmm each on AVX-512, two ymm on AVX2), the same zero-padded tail vectors, the same adds
// into the same double lanes, so the same bits. sum() of 1e6 float16 on one thread (Xeon,
// AVX-512): 0.141 -> 0.076 ms (PyTorch 0.096); bfloat16 0.101 -> 0.087 (0.095).
struct Zmm16 {  // 16 float lanes in one zmm
  __m512 v;
};
struct Ymm16 {  // 16 float lanes in two ymm
  __m256 lo, hi;
};
template <bool BF16>
TG_AVX512_F16C TG_INLINE Zmm16 widen_lanes(Zmm16, const uint16_t* q) {
  return {widen16<BF16>(q)};
}
template <bool BF16>
TG_AVX2_F16C TG_INLINE Ymm16 widen_lanes(Ymm16, const uint16_t* q) {
  return {widen8<BF16>(q), widen8<BF16>(q + 8)};
}
TG_AVX512_F16C TG_INLINE Zmm16 add_lanes(Zmm16 a, Zmm16 b) { return {_mm512_add_ps(a.v, b.v)}; }
TG_AVX2_F16C TG_INLINE Ymm16 add_lanes(Ymm16 a, Ymm16 b) { return {_mm256_add_ps(a.lo, b.lo), _mm256_add_ps(a.hi, b.hi)}; }
// t[0] += lanes 0-7 and t[1] += lanes 8-15, widened to double
TG_AVX512_F16C TG_INLINE void add_to_doubles(lanes::Lanes256<float>::D* t, Zmm16 a) {
  t[0] += lanes::Lanes256<float>::D(_mm512_cvtps_pd(_mm512_castps512_ps256(a.v)));
  t[1] += lanes::Lanes256<float>::D(_mm512_cvtps_pd(_mm512_extractf32x8_ps(a.v, 1)));
}
TG_AVX2_F16C TG_INLINE void add_to_doubles(lanes::Lanes256<float>::D* t, Ymm16 a) {
  t[0] += __builtin_convertvector(a.lo, lanes::Lanes256<float>::D);
  t[1] += __builtin_convertvector(a.hi, lanes::Lanes256<float>::D);
}

// The loop, a macro so that each build's function (its own target) holds it and inlines the
// vector steps; V is that build's vector of 16 lanes.
#define TG_ROWS_FUSED_BODY(V)                                                                     \
  using Lanes = lanes::Lanes256<float>;                                                           \
  static_assert(Lanes::W == 16 && Lanes::L == 64 && Lanes::ND == 8, "vectors of 16 float lanes"); \
  for (int64_t r = 0; r < nrows; ++r) {                                                           \
    const uint16_t* p = x + r * ld;                                                               \
    Lanes acc;                                                                                    \
    for (int64_t c0 = 0; c0 < n; c0 += lanes::kLaneChunk) {                                       \
      const int64_t len = std::min(lanes::kLaneChunk, n - c0);                                    \
      const uint16_t* q = p + c0;                                                                 \
      V a[4] = {};                                                                                \
      int64_t j = 0;                                                                              \
      for (; j + 64 <= len; j += 64)                                                              \
        for (int v = 0; v < 4; ++v) a[v] = add_lanes(a[v], widen_lanes<BF16>(V{}, q + j + v * 16)); \
      for (int v = 0; v < 4; ++v) {                                                               \
        const int64_t k = len - j - v * 16;                                                       \
        if (k >= 16) {                                                                            \
          a[v] = add_lanes(a[v], widen_lanes<BF16>(V{}, q + j + v * 16));                         \
        } else if (k > 0) {                                                                       \
          alignas(32) uint16_t tail[16] = {};                                                     \
          std::memcpy(tail, q + j + v * 16, size_t(k) * sizeof(uint16_t));                        \
          a[v] = add_lanes(a[v], widen_lanes<BF16>(V{}, tail));                                   \
        }                                                                                         \
      }                                                                                           \
      for (int v = 0; v < 4; ++v) add_to_doubles(&acc.t[2 * v], a[v]);                           \
    }                                                                                             \
    const double s = acc.total();                                                                 \
    if (part) part[r] = s;                                                                        \
    else out[r] = finish<float>(op, s, count, 0.0f);                                              \
  }

template <bool BF16>
TG_AVX2_F16C __attribute__((noinline)) void sum_rows_fused_avx2(int64_t nrows, int64_t n, int64_t ld, const uint16_t* x,
                                                                double* part, float* out, ReduceOp op, int64_t count) {
  TG_ROWS_FUSED_BODY(Ymm16)
}
template <bool BF16>
TG_AVX512_F16C __attribute__((noinline)) void sum_rows_fused_avx512(int64_t nrows, int64_t n, int64_t ld,
                                                                    const uint16_t* x, double* part, float* out,
                                                                    ReduceOp op, int64_t count) {
  TG_ROWS_FUSED_BODY(Zmm16)
}
#undef TG_ROWS_FUSED_BODY

bool has_f16c() {
  static const bool has = __builtin_cpu_supports("f16c");
  return has;
}

// acc[j] = the fold of acc[j] and x[i * ld + j] over rows [0, n), for j in [0, w).
template <typename T, Fold F>
TG_INLINE void fold_cols_body(int64_t n, int64_t w, int64_t ld, const T* x, T* acc) {
  for (int64_t i = 0; i < n; ++i) {
    const T* p = x + i * ld;
#pragma omp simd
    for (int64_t j = 0; j < w; ++j) acc[j] = fold<T, F>(acc[j], p[j]);
  }
}

// max / min with indices (select_middle). v takes the place of m, the best so far, when it is
// larger (smaller) or the first NaN: PyTorch's rule, under which a later NaN or a tie keeps the
// earlier index.
template <typename T, bool Min>
TG_INLINE bool better(T v, T m) {
  return (Min ? v < m : v > m) | ((v != v) & (m == m));
}

// The first j in [0, n) with hit(p[j]), one being there: blocks of L compared in vector steps,
// the block holding it then scanned.
template <typename T, int64_t L, typename F>
TG_INLINE int64_t find_first(int64_t n, const T* p, F hit) {
  int64_t j = 0;
  for (; j + L <= n; j += L) {
    int any = 0;
#pragma omp simd reduction(| : any)
    for (int64_t l = 0; l < L; ++l) any |= int(hit(p[j + l]));
    if (any) break;
  }
  for (; j < n - 1; ++j)
    if (hit(p[j])) break;
  return j;
}

// The index of the largest (smallest) of p[0, n), n > 0, by PyTorch's rule: the row's extreme m
// in lanes (max_lanes, NaN-passing), then the first element equal to m, or the first NaN when m
// is NaN, found in the row as it sits in L1. (Lanes of values and indices, one pass, blend twice
// per vector and keep a lane's index per element width.)
template <typename T, bool Min>
TG_INLINE int64_t arg_row(int64_t n, const T* p) {
  constexpr int64_t L = kLaneBytes / int64_t(sizeof(T)), S = 32 / int64_t(sizeof(T));
  T m = p[0];
  if (n >= L) m = max_lanes<T, Min, L>(n, p);
  else if (n >= S) m = max_lanes<T, Min, S>(n, p);
  else
    for (int64_t j = 1; j < n; ++j) m = pick<T, Min>(m, p[j]);
  if (m != m) return find_first<T, S>(n, p, [](T v) { return v != v; });
  return find_first<T, S>(n, p, [m](T v) { return v == m; });
}

// Rows [0, nrows), each n > 0 elements, ld apart: each row's index into idx (plus i0) and its
// element into val.
template <typename T, bool Min>
TG_INLINE void arg_rows_body(int64_t nrows, int64_t n, int64_t ld, const T* x, int64_t i0, T* val, int64_t* idx) {
  for (int64_t r = 0; r < nrows; ++r) {
    const T* p = x + r * ld;
    const int64_t k = arg_row<T, Min>(n, p);
    val[r] = p[k];
    idx[r] = i0 + k;
  }
}

// Columns [0, w <= kStrip) down rows [0, n > 0), ld apart: m[j] and idx[j] the best of column j
// and its row (plus i0). The row indices run in lanes of the element's width (int32 for 4-byte
// and narrower elements: n < 2^31), one blend of values and one of indices per vector of rows.
template <typename T, bool Min>
TG_INLINE void arg_cols_body(int64_t n, int64_t w, int64_t ld, const T* x, int64_t i0, T* val, int64_t* idx) {
  using I = std::conditional_t<sizeof(T) == 8, int64_t, int32_t>;
  alignas(64) T m[kStrip];
  alignas(64) I k[kStrip];
#pragma omp simd aligned(m, k : 64)
  for (int64_t j = 0; j < w; ++j) {
    m[j] = x[j];
    k[j] = 0;
  }
  for (int64_t i = 1; i < n; ++i) {
    const T* p = x + i * ld;
    const I ii = I(i);
#pragma omp simd aligned(m, k : 64)
    for (int64_t j = 0; j < w; ++j) {
      const T v = p[j];
      const bool b = better<T, Min>(v, m[j]);
      m[j] = b ? v : m[j];
      k[j] = b ? ii : k[j];
    }
  }
  for (int64_t j = 0; j < w; ++j) {
    val[j] = m[j];
    idx[j] = i0 + int64_t(k[j]);
  }
}

template <typename T, ExpandOp E>
TG_INLINE T expand_one(T x, T u, T v) {
  if constexpr (E == ExpandOp::norm2) return u * (v == T(0) ? T(0) : x / v);
  else if constexpr (E == ExpandOp::logsumexp) return u * vmath::exp_v(x - v);
  else if constexpr (E == ExpandOp::var) return u * (x - v);
  else return u * (v / x);
}

// out[j] = expand_one(x[j], u[j], v[j]) for j in [0, n) (per_elem), else with u[0], v[0] for all.
template <typename T, ExpandOp E>
TG_INLINE void expand_body(int64_t n, const T* x, const T* u, const T* v, bool per_elem, T* out) {
  if (per_elem) {
#pragma omp simd
    for (int64_t j = 0; j < n; ++j) out[j] = expand_one<T, E>(x[j], u[j], v[j]);
  } else {
    const T u0 = u[0], v0 = v[0];
#pragma omp simd
    for (int64_t j = 0; j < n; ++j) out[j] = expand_one<T, E>(x[j], u0, v0);
  }
}

// Each body compiled for the baseline ISA, AVX2+FMA and AVX-512.
#undef TG_VARIANTS  // this file's own form
#define TG_VARIANTS(name, tparams, targs, params, args)                                 \
  template <tparams>                                                                   \
  __attribute__((noinline)) void name##_base params { name##_body<targs> args; }        \
  template <tparams>                                                                   \
  TG_AVX2 __attribute__((noinline)) void name##_avx2 params { name##_body<targs> args; } \
  template <tparams>                                                                   \
  TG_AVX512 __attribute__((noinline)) void name##_avx512 params { name##_body<targs> args; }

#define TG_COMMA ,
TG_VARIANTS(sum_rows, typename T TG_COMMA Term K, T TG_COMMA K,
            (int64_t nrows, int64_t n, int64_t ld, const T* x, const T* shift, double* part, T* out, ReduceOp op,
             int64_t count),
            (nrows, n, ld, x, shift, part, out, op, count))
TG_VARIANTS(fold_rows, typename T TG_COMMA Fold F, T TG_COMMA F,
            (int64_t nrows, int64_t n, int64_t ld, const T* x, T* out), (nrows, n, ld, x, out))
TG_VARIANTS(sum_cols, typename T TG_COMMA Term K, T TG_COMMA K,
            (int64_t n, int64_t w, int64_t ld, const T* x, const T* m, double* acc), (n, w, ld, x, m, acc))
TG_VARIANTS(fold_cols, typename T TG_COMMA Fold F, T TG_COMMA F, (int64_t n, int64_t w, int64_t ld, const T* x, T* acc),
            (n, w, ld, x, acc))
TG_VARIANTS(arg_rows, typename T TG_COMMA bool Min, T TG_COMMA Min,
            (int64_t nrows, int64_t n, int64_t ld, const T* x, int64_t i0, T* val, int64_t* idx),
            (nrows, n, ld, x, i0, val, idx))
TG_VARIANTS(arg_cols, typename T TG_COMMA bool Min, T TG_COMMA Min,
            (int64_t n, int64_t w, int64_t ld, const T* x, int64_t i0, T* val, int64_t* idx), (n, w, ld, x, i0, val, idx))
TG_VARIANTS(sum_rows_half, typename T, T,
            (int64_t nrows, int64_t n, int64_t ld, const uint16_t* x, Half kind, double* part, float* out, ReduceOp op,
             int64_t count),
            (nrows, n, ld, x, kind, part, out, op, count))
TG_VARIANTS(sum_cols_half, typename T, T, (int64_t n, int64_t w, int64_t ld, const uint16_t* x, Half kind, double* acc),
            (n, w, ld, x, kind, acc))
TG_VARIANTS(sumsq_diff, typename T, T, (int64_t n, const T* x, const T* y, double* part), (n, x, y, part))
TG_VARIANTS(expand, typename T TG_COMMA ExpandOp E, T TG_COMMA E,
            (int64_t n, const T* x, const T* u, const T* v, bool per_elem, T* out), (n, x, u, v, per_elem, out))
#undef TG_VARIANTS

// TG_CALL(name, (template args), args...)
#undef TG_CALL
#define TG_CALL(name, targs, ...)                                  \
  (isa() == Isa::avx512 ? name##_avx512<TG_UNPAREN targs>(__VA_ARGS__) \
   : isa() == Isa::avx2 ? name##_avx2<TG_UNPAREN targs>(__VA_ARGS__)   \
                        : name##_base<TG_UNPAREN targs>(__VA_ARGS__))
#define TG_UNPAREN(...) __VA_ARGS__

// The variant for the op's term (fold), at run time.
#define TG_BY_TERM(name, k, ...)                                                 \
  (k == Term::abs      ? TG_CALL(name, (T, Term::abs), __VA_ARGS__)              \
   : k == Term::square ? TG_CALL(name, (T, Term::square), __VA_ARGS__)           \
   : k == Term::exp    ? TG_CALL(name, (T, Term::exp), __VA_ARGS__)              \
                       : TG_CALL(name, (T, Term::x), __VA_ARGS__))
#define TG_BY_FOLD(name, f, ...)                                                 \
  (f == Fold::max   ? TG_CALL(name, (T, Fold::max), __VA_ARGS__)                 \
   : f == Fold::min ? TG_CALL(name, (T, Fold::min), __VA_ARGS__)                 \
                    : TG_CALL(name, (T, Fold::prod), __VA_ARGS__))

template <typename T>
void sum_rows(ReduceOp op, int64_t nrows, int64_t n, int64_t ld, const T* x, const T* shift, double* part, T* out,
              int64_t count) {
  TG_BY_TERM(sum_rows, term_of(op), nrows, n, ld, x, shift, part, out, op, count);
}
template <typename T>
void fold_rows(Fold f, int64_t nrows, int64_t n, int64_t ld, const T* x, T* out) {
  TG_BY_FOLD(fold_rows, f, nrows, n, ld, x, out);
}
template <typename T>
void sum_cols(ReduceOp op, int64_t n, int64_t w, int64_t ld, const T* x, const T* m, double* acc) {
  TG_BY_TERM(sum_cols, term_of(op), n, w, ld, x, m, acc);
}
template <typename T>
void fold_cols(Fold f, int64_t n, int64_t w, int64_t ld, const T* x, T* acc) {
  TG_BY_FOLD(fold_cols, f, n, w, ld, x, acc);
}
// sum and mean only (the 16-bit drivers' ops): no shift
template <typename T>
void sum_rows(ReduceOp op, int64_t nrows, int64_t n, int64_t ld, HalfSrc x, const T*, double* part, T* out,
              int64_t count) {
  const bool bf16 = x.kind == Half::bf16, fused = has_f16c() && n >= 4 * kLaneBytes / int64_t(sizeof(float));
  if (fused && isa() == Isa::avx512) {
    if (bf16) sum_rows_fused_avx512<true>(nrows, n, ld, x.p, part, out, op, count);
    else sum_rows_fused_avx512<false>(nrows, n, ld, x.p, part, out, op, count);
  } else if (fused && isa() == Isa::avx2) {
    if (bf16) sum_rows_fused_avx2<true>(nrows, n, ld, x.p, part, out, op, count);
    else sum_rows_fused_avx2<false>(nrows, n, ld, x.p, part, out, op, count);
  } else {
    TG_CALL(sum_rows_half, (T), nrows, n, ld, x.p, x.kind, part, out, op, count);
  }
}
template <typename T>
void sum_cols(ReduceOp, int64_t n, int64_t w, int64_t ld, HalfSrc x, const T*, double* acc) {
  const bool bf16 = x.kind == Half::bf16;
  if (isa() == Isa::avx512 && has_f16c()) {
    if (bf16) sum_cols_fused_avx512<true>(n, w, ld, x.p, acc);
    else sum_cols_fused_avx512<false>(n, w, ld, x.p, acc);
  } else if (isa() == Isa::avx2 && has_f16c()) {
    if (bf16) sum_cols_fused_avx2<true>(n, w, ld, x.p, acc);
    else sum_cols_fused_avx2<false>(n, w, ld, x.p, acc);
  } else {
    TG_CALL(sum_cols_half, (T), n, w, ld, x.p, x.kind, acc);
  }
}

// ---------------------------------------------------------------- B = 1: rows
template <typename T>
void fold_rows_all(Fold f, int64_t A, int64_t N, const T* x, T* out) {
  const bool par = A * N >= kParallelMinElems;
  if (N <= kRowChunk) {
    const int64_t step = std::max<int64_t>(1, kTaskElems / N), ntasks = (A + step - 1) / step;
    parallel_tiles(ntasks, par, [&](int64_t k) {
      const int64_t r0 = k * step, r1 = std::min(A, r0 + step);
      fold_rows<T>(f, r1 - r0, N, N, x + r0 * N, out + r0);
    });
    return;
  }
  const int64_t nchunks = (N + kRowChunk - 1) / kRowChunk;
  std::vector<T> part(A * nchunks);
  parallel_tiles(A * nchunks, par, [&](int64_t t) {
    const int64_t r = t / nchunks, c0 = t % nchunks * kRowChunk;
    fold_rows<T>(f, 1, std::min(kRowChunk, N - c0), 0, x + r * N + c0, &part[t]);
  });
  // the chunks' results folded in chunk order (fold_row's own lanes for a product would not be)
  for (int64_t r = 0; r < A; ++r) {
    T m = part[r * nchunks];
    for (int64_t c = 1; c < nchunks; ++c) {
      const T v = part[r * nchunks + c];
      m = f == Fold::prod ? m * v : f == Fold::max ? pick<T, false>(m, v) : pick<T, true>(m, v);
    }
    out[r] = m;
  }
}

// Src: const T*, or HalfSrc (sum and mean of a 16-bit input, T float).
template <typename T, typename Src>
void reduce_rows(ReduceOp op, int64_t A, int64_t N, Src x, T* out) {
  constexpr bool wide = std::is_same<Src, const T*>::value;
  if constexpr (wide) {
    if (is_fold(op)) return fold_rows_all<T>(fold_of(op), A, N, x, out);
  }
  const bool par = A * N >= kParallelMinElems;
  if (N <= kRowChunk) {
    const int64_t step = std::max<int64_t>(1, kTaskElems / N), ntasks = (A + step - 1) / step;
    parallel_tiles(ntasks, par, [&](int64_t k) {
      const int64_t r0 = k * step, r1 = std::min(A, r0 + step);
      sum_rows<T>(op, r1 - r0, N, N, x + r0 * N, nullptr, nullptr, out + r0, N);
    });
    return;
  }
  // Long rows: logsumexp's shifts first (the rows' maxima), then each chunk's sum.
  std::vector<T> shift(op == ReduceOp::logsumexp ? A : 0);
  if constexpr (wide) {
    if (!shift.empty()) {
      fold_rows_all<T>(Fold::max, A, N, x, shift.data());
      for (T& m : shift) m = lse_shift(m);
    }
  }
  const int64_t nchunks = (N + kRowChunk - 1) / kRowChunk;
  std::vector<double> part(A * nchunks);
  parallel_tiles(A * nchunks, par, [&](int64_t t) {
    const int64_t r = t / nchunks, c0 = t % nchunks * kRowChunk;
    sum_rows<T>(op, 1, std::min(kRowChunk, N - c0), 0, x + r * N + c0, shift.empty() ? nullptr : &shift[r],
                &part[t], nullptr, N);
  });
  for (int64_t r = 0; r < A; ++r) {
    double s = part[r * nchunks];
    for (int64_t c = 1; c < nchunks; ++c) s += part[r * nchunks + c];
    out[r] = finish<T>(op, s, N, shift.empty() ? T(0) : shift[r]);
  }
}

// ---------------------------------------------------------------- B > 1: columns
template <typename T, typename Src>
void reduce_cols(ReduceOp op, int64_t A, int64_t N, int64_t B, Src x, T* out) {
  constexpr bool wide = std::is_same<Src, const T*>::value;
  const bool sum = !is_fold(op);
  const Fold f = fold_of(op);
  // logsumexp's shifts first: the columns' maxima
  std::vector<T> shift(op == ReduceOp::logsumexp ? A * B : 0);
  if constexpr (wide) {
    if (!shift.empty()) {
      reduce_cols<T, Src>(ReduceOp::amax, A, N, B, x, shift.data());
      for (T& m : shift) m = lse_shift(m);
    }
  }
  const T* sh = shift.empty() ? nullptr : shift.data();
  const int64_t w = std::min(B, kStrip), nstrips = (B + kStrip - 1) / kStrip;
  int64_t nchunks = std::min(kMaxChunks, std::max<int64_t>(1, (N * w + kChunkElems - 1) / kChunkElems));
  const int64_t rows = ((N + nchunks - 1) / nchunks + kRowBlock - 1) / kRowBlock * kRowBlock;
  nchunks = (N + rows - 1) / rows;
  const int64_t per_a = nchunks * nstrips;
  // When one tile covers a whole output slice, a task takes several slices of about kTaskElems.
  const int64_t group = per_a == 1 ? std::max<int64_t>(1, kTaskElems / (N * B)) : 1;
  const int64_t ntiles = per_a == 1 ? (A + group - 1) / group : A * per_a;
  std::vector<double> part(sum && nchunks > 1 ? A * nchunks * B : 0);
  std::vector<T> part_m(!sum && nchunks > 1 ? A * nchunks * B : 0);

  const auto tile = [&](int64_t a, int64_t c, int64_t s) {
    const int64_t r0 = c * rows, nr = std::min(N, r0 + rows) - r0, j0 = s * kStrip, wj = std::min(kStrip, B - j0);
    const Src p = x + (a * N + r0) * B + j0;
    if (sum) {
      alignas(64) double acc[kStrip];
      std::fill(acc, acc + wj, 0.0);
      sum_cols<T>(op, nr, wj, B, p, sh ? sh + a * B + j0 : nullptr, acc);
      if (nchunks == 1) {
        T* o = out + a * B + j0;
        for (int64_t j = 0; j < wj; ++j) o[j] = finish<T>(op, acc[j], N, sh ? sh[a * B + j0 + j] : T(0));
      } else {
        std::copy(acc, acc + wj, &part[(a * nchunks + c) * B + j0]);
      }
    } else if constexpr (wide) {
      T* acc = nchunks == 1 ? out + a * B + j0 : &part_m[(a * nchunks + c) * B + j0];
      std::copy(p, p + wj, acc);
      fold_cols<T>(f, nr - 1, wj, B, p + B, acc);
    }
  };
  parallel_tiles(ntiles, A * N * B >= kParallelMinElems, [&](int64_t t) {
    if (per_a == 1) {
      for (int64_t a = t * group; a < std::min(A, (t + 1) * group); ++a) tile(a, 0, 0);
    } else {
      const int64_t a = t / per_a, c = t % per_a / nstrips, s = t % nstrips;
      tile(a, c, s);
    }
  });
  if (nchunks == 1) return;
  // The chunks' partials, added (folded) in chunk order.
  for (int64_t a = 0; a < A; ++a) {
    T* o = out + a * B;
    if (sum) {
      double* p0 = &part[a * nchunks * B];
      for (int64_t c = 1; c < nchunks; ++c) {
        const double* pc = p0 + c * B;
        for (int64_t j = 0; j < B; ++j) p0[j] += pc[j];
      }
      for (int64_t j = 0; j < B; ++j) o[j] = finish<T>(op, p0[j], N, sh ? sh[a * B + j] : T(0));
    } else {
      const T* p0 = &part_m[a * nchunks * B];
      std::copy(p0, p0 + B, o);
      fold_cols<T>(f, nchunks - 1, B, B, p0 + B, o);
    }
  }
}

// ---------------------------------------------------------------- max / min with indices
template <typename T>
void arg_rows(bool min, int64_t nrows, int64_t n, int64_t ld, const T* x, int64_t i0, T* val, int64_t* idx) {
  if (min) TG_CALL(arg_rows, (T, true), nrows, n, ld, x, i0, val, idx);
  else TG_CALL(arg_rows, (T, false), nrows, n, ld, x, i0, val, idx);
}
template <typename T>
void arg_cols(bool min, int64_t n, int64_t w, int64_t ld, const T* x, int64_t i0, T* val, int64_t* idx) {
  if (min) TG_CALL(arg_cols, (T, true), n, w, ld, x, i0, val, idx);
  else TG_CALL(arg_cols, (T, false), n, w, ld, x, i0, val, idx);
}

// The chunks' bests, (val, idx) for chunk c at c * stride, combined in chunk order into out
// (ascending rows: a tie or a later NaN keeps the earlier chunk's), for `count` outputs.
template <typename T>
void combine_chunks(bool min, int64_t nchunks, int64_t count, int64_t stride, const T* pv, const int64_t* pi,
                    T* val, int64_t* idx) {
  for (int64_t j = 0; j < count; ++j) {
    T m = pv[j];
    int64_t k = pi[j];
    for (int64_t c = 1; c < nchunks; ++c) {
      const T v = pv[c * stride + j];
      if (min ? better<T, true>(v, m) : better<T, false>(v, m)) m = v, k = pi[c * stride + j];
    }
    val[j] = m;
    idx[j] = k;
  }
}

// Rows (B = 1) as fold_rows_all cuts them, columns (B > 1) as reduce_cols does: strips of kStrip
// columns down chunks of rows (at most 2^30 rows, for the int32 row lanes).
template <typename T>
void select_rows(bool min, int64_t A, int64_t N, const T* x, T* val, int64_t* idx) {
  const bool par = A * N >= kParallelMinElems;
  if (N <= kRowChunk) {
    const int64_t step = std::max<int64_t>(1, kTaskElems / N), ntasks = (A + step - 1) / step;
    parallel_tiles(ntasks, par, [&](int64_t k) {
      const int64_t r0 = k * step, r1 = std::min(A, r0 + step);
      arg_rows<T>(min, r1 - r0, N, N, x + r0 * N, 0, val + r0, idx + r0);
    });
    return;
  }
  const int64_t nchunks = (N + kRowChunk - 1) / kRowChunk;
  std::vector<T> pv(A * nchunks);
  std::vector<int64_t> pi(A * nchunks);
  parallel_tiles(A * nchunks, par, [&](int64_t t) {
    const int64_t r = t / nchunks, c0 = t % nchunks * kRowChunk;
    // chunk-major within a row: partials of row r at r * nchunks + c
    arg_rows<T>(min, 1, std::min(kRowChunk, N - c0), 0, x + r * N + c0, c0, &pv[t], &pi[t]);
  });
  for (int64_t r = 0; r < A; ++r) combine_chunks<T>(min, nchunks, 1, 1, &pv[r * nchunks], &pi[r * nchunks], val + r, idx + r);
}

template <typename T>
void select_cols(bool min, int64_t A, int64_t N, int64_t B, const T* x, T* val, int64_t* idx) {
  const int64_t w = std::min(B, kStrip), nstrips = (B + kStrip - 1) / kStrip;
  int64_t nchunks = std::min(kMaxChunks, std::max<int64_t>(1, (N * w + kChunkElems - 1) / kChunkElems));
  const int64_t rows = std::min<int64_t>(int64_t(1) << 30, (N + nchunks - 1) / nchunks);
  nchunks = (N + rows - 1) / rows;
  const int64_t per_a = nchunks * nstrips;
  const int64_t group = per_a == 1 ? std::max<int64_t>(1, kTaskElems / (N * B)) : 1;
  const int64_t ntiles = per_a == 1 ? (A + group - 1) / group : A * per_a;
  std::vector<T> pv(nchunks > 1 ? A * nchunks * B : 0);
  std::vector<int64_t> pi(pv.size());
  const auto tile = [&](int64_t a, int64_t c, int64_t s) {
    const int64_t r0 = c * rows, nr = std::min(N, r0 + rows) - r0, j0 = s * kStrip, wj = std::min(kStrip, B - j0);
    const int64_t o = nchunks == 1 ? a * B + j0 : (a * nchunks + c) * B + j0;
    arg_cols<T>(min, nr, wj, B, x + (a * N + r0) * B + j0, r0, nchunks == 1 ? val + o : &pv[o],
                nchunks == 1 ? idx + o : &pi[o]);
  };
  parallel_tiles(ntiles, A * N * B >= kParallelMinElems, [&](int64_t t) {
    if (per_a == 1) {
      for (int64_t a = t * group; a < std::min(A, (t + 1) * group); ++a) tile(a, 0, 0);
    } else {
      tile(t / per_a, t % per_a / nstrips, t % nstrips);
    }
  });
  if (nchunks == 1) return;
  for (int64_t a = 0; a < A; ++a)
    combine_chunks<T>(min, nchunks, B, B, &pv[a * nchunks * B], &pi[a * nchunks * B], val + a * B, idx + a * B);
}

template <typename T>
void expand(ExpandOp e, int64_t n, const T* x, const T* u, const T* v, bool per_elem, T* out) {
  switch (e) {
    case ExpandOp::norm2: TG_CALL(expand, (T, ExpandOp::norm2), n, x, u, v, per_elem, out); break;
    case ExpandOp::logsumexp: TG_CALL(expand, (T, ExpandOp::logsumexp), n, x, u, v, per_elem, out); break;
    case ExpandOp::var: TG_CALL(expand, (T, ExpandOp::var), n, x, u, v, per_elem, out); break;
    default: TG_CALL(expand, (T, ExpandOp::prod), n, x, u, v, per_elem, out);
  }
}

}  // namespace

template <typename T>
void reduce_middle(ReduceOp op, int64_t A, int64_t N, int64_t B, const T* x, T* out) {
  if (A <= 0 || B <= 0) return;
  if (N <= 0) {  // an empty sum is 0, its mean 0 / 0, its product 1, its logsumexp log 0
    const T empty = op == ReduceOp::mean ? std::numeric_limits<T>::quiet_NaN()
                    : op == ReduceOp::prod ? T(1)
                    : op == ReduceOp::logsumexp ? -std::numeric_limits<T>::infinity() : T(0);
    std::fill(out, out + A * B, empty);
    return;
  }
  if (B == 1) reduce_rows<T, const T*>(op, A, N, x, out);
  else reduce_cols<T, const T*>(op, A, N, B, x, out);
}

// The float32 drivers on a 16-bit source (its leaves widen in L1), their float32 results rounded
// once: the bits of reduce_middle<float> on the widened input, rounded to the 16-bit format.
void reduce_middle_half(ReduceOp op, int64_t A, int64_t N, int64_t B, const uint16_t* x, Half kind, uint16_t* out) {
  if (A <= 0 || B <= 0) return;
  std::vector<float> r(size_t(A * B));
  if (N <= 0) std::fill(r.begin(), r.end(), op == ReduceOp::mean ? std::numeric_limits<float>::quiet_NaN() : 0.0f);
  else if (B == 1) reduce_rows<float, HalfSrc>(op, A, N, HalfSrc{x, kind}, r.data());
  else reduce_cols<float, HalfSrc>(op, A, N, B, HalfSrc{x, kind}, r.data());
  floats_to_half(r.data(), out, A * B, kind);
}

// Tasks of kRowChunk elements, each run of kLaneChunk summed in lanes (lane_sums.h), the runs'
// sums then added pairwise. In float64 a long row's chunked sum (reduce_rows) adds each lane's
// terms one after another: 5e-16 off (relative) at worst over 1e6 squares, where the BLAS dots
// and numpy pairwise sum mse_loss took before were 1.3e-16. These: 6.2e-17 on average and
// 1.3e-16 at worst over 32 draws of 16384 to 4e6 elements (before: 6.2e-17 and 2.0e-16, PyTorch
// 6.1e-17 and 1.8e-16); in float32 1.9e-8 and 4.5e-8 (before 4.2e-8 and 1.2e-7, PyTorch 3.6e-8
// and 1.1e-7).
template <typename T>
T sumsq_diff(int64_t n, const T* x, const T* y) {
  if (n <= 0) return T(0);
  const int64_t nparts = (n + lanes::kLaneChunk - 1) / lanes::kLaneChunk, task = kRowChunk / lanes::kLaneChunk;
  std::vector<double> part(nparts);
  parallel_tiles((nparts + task - 1) / task, n >= kParallelMinElems, [&](int64_t t) {
    const int64_t i = t * kRowChunk;
    TG_CALL(sumsq_diff, (T), std::min(kRowChunk, n - i), x + i, y + i, &part[t * task]);
  });
  for (int64_t m = nparts; m > 1; m = (m + 1) / 2) {  // pairwise, an odd one out carried up
    for (int64_t k = 0; k < m / 2; ++k) part[k] = part[2 * k] + part[2 * k + 1];
    if (m % 2) part[m / 2] = part[m - 1];
  }
  return T(part[0]);
}

// The tiling of expand_middle and broadcast_middle, which write each element of (A, N, B) once
// from its slice's reduced values: tasks of about kTaskElems elements, runs of a slice's N
// elements (B = 1), else whole rows of B. run(i, n, j) writes out[i, i + n) from the reduced
// values at j (one value for B = 1, a row of B otherwise). No sums: any split gives the same bits.
template <typename F>
static void middle_runs(int64_t A, int64_t N, int64_t B, F&& run) {
  const int64_t total = A * N * B;
  if (total <= 0) return;
  const bool par = total >= kParallelMinElems;
  if (B == 1) {
    parallel_tiles((total + kTaskElems - 1) / kTaskElems, par, [&](int64_t k) {
      const int64_t i1 = std::min(total, (k + 1) * kTaskElems);
      for (int64_t i = k * kTaskElems; i < i1;) {
        const int64_t a = i / N, e = std::min(i1, (a + 1) * N);
        run(i, e - i, a);
        i = e;
      }
    });
    return;
  }
  const int64_t step = std::max<int64_t>(1, kTaskElems / B), R = A * N;
  parallel_tiles((R + step - 1) / step, par, [&](int64_t k) {
    for (int64_t r = k * step; r < std::min(R, (k + 1) * step); ++r) run(r * B, B, r / N * B);
  });
}

template <typename T>
void expand_middle(ExpandOp op, int64_t A, int64_t N, int64_t B, const T* x, const T* u, const T* v, T* out) {
  middle_runs(A, N, B, [&](int64_t i, int64_t n, int64_t j) { expand<T>(op, n, x + i, u + j, v + j, B > 1, out + i); });
}

template <typename T>
void broadcast_middle(int64_t A, int64_t N, int64_t B, const T* u, T* out) {
  middle_runs(A, N, B, [&](int64_t i, int64_t n, int64_t j) {
    if (B == 1) std::fill(out + i, out + i + n, u[j]);
    else std::memcpy(out + i, u + j, size_t(n) * sizeof(T));
  });
}

// Slices of up to kTaskElems elements a task (several whole slices, or rows of one), each task
// zeroing its own rows and then placing the gradients whose index falls in them.
template <typename T>
void scatter_middle(int64_t A, int64_t N, int64_t B, const int64_t* idx, const T* g, T* out) {
  const int64_t slice = N * B;
  if (A * slice <= 0) return;
  const bool par = A * slice >= kParallelMinElems;
  const int64_t rows = std::max<int64_t>(1, kTaskElems / B);
  if (rows >= N) {
    const int64_t group = std::max<int64_t>(1, kTaskElems / slice);
    parallel_tiles((A + group - 1) / group, par, [&](int64_t k) {
      const int64_t a0 = k * group, a1 = std::min(A, a0 + group);
      std::fill(out + a0 * slice, out + a1 * slice, T(0));
      for (int64_t a = a0; a < a1; ++a)
        for (int64_t b = 0; b < B; ++b) out[a * slice + idx[a * B + b] * B + b] = g[a * B + b];
    });
    return;
  }
  const int64_t nch = (N + rows - 1) / rows;
  parallel_tiles(A * nch, par, [&](int64_t t) {
    const int64_t a = t / nch, n0 = t % nch * rows, n1 = std::min(N, n0 + rows);
    T* o = out + a * slice;
    std::fill(o + n0 * B, o + n1 * B, T(0));
    for (int64_t b = 0; b < B; ++b) {
      const int64_t k = idx[a * B + b];
      if (k >= n0 && k < n1) o[k * B + b] = g[a * B + b];
    }
  });
}

template <typename T>
void select_middle(bool min, int64_t A, int64_t N, int64_t B, const T* x, T* val, int64_t* idx) {
  if (A <= 0 || B <= 0 || N <= 0) return;
  if (B == 1) select_rows<T>(min, A, N, x, val, idx);
  else select_cols<T>(min, A, N, B, x, val, idx);
}

#define TG_INSTANTIATE(T)                                                                                \
  template void reduce_middle<T>(ReduceOp, int64_t, int64_t, int64_t, const T*, T*);                     \
  template void expand_middle<T>(ExpandOp, int64_t, int64_t, int64_t, const T*, const T*, const T*, T*); \
  template void scatter_middle<T>(int64_t, int64_t, int64_t, const int64_t*, const T*, T*);              \
  template void broadcast_middle<T>(int64_t, int64_t, int64_t, const T*, T*);                            \
  template T sumsq_diff<T>(int64_t, const T*, const T*);
TG_INSTANTIATE(float)
TG_INSTANTIATE(double)
#undef TG_INSTANTIATE
template void select_middle<float>(bool, int64_t, int64_t, int64_t, const float*, float*, int64_t*);
template void select_middle<double>(bool, int64_t, int64_t, int64_t, const double*, double*, int64_t*);
template void select_middle<int8_t>(bool, int64_t, int64_t, int64_t, const int8_t*, int8_t*, int64_t*);
template void select_middle<uint8_t>(bool, int64_t, int64_t, int64_t, const uint8_t*, uint8_t*, int64_t*);
template void select_middle<int16_t>(bool, int64_t, int64_t, int64_t, const int16_t*, int16_t*, int64_t*);
template void select_middle<int32_t>(bool, int64_t, int64_t, int64_t, const int32_t*, int32_t*, int64_t*);
template void select_middle<int64_t>(bool, int64_t, int64_t, int64_t, const int64_t*, int64_t*, int64_t*);

}  // namespace tapegrad
