// GEMM, BLIS-style: five loops around a register-blocked micro-kernel on packed panels.
//
//   for jc in N step NC          B panel  (KC x NC)  -> L3
//     for pc in K step KC        (K is never split across threads: determinism)
//       pack B[pc:, jc:]         into NR-wide micro-panels, zero-padded
//       for ic in M step MC      A block  (MC x KC)  -> L2
//         pack A[ic:, pc:]       into MR-tall micro-panels, zero-padded
//         for jr in NC step NR   B micro-panel (KC x NR) -> L1
//           for ir in MC step MR micro-kernel: MR x NR accumulators in registers
//
// Threads cut C into tiles, rectangles of whole MR x NR micro-tiles, take them from a shared
// counter and run this nest on each with their own pack buffers (no barriers). K is never split
// and the blocking does not depend on the tiling, so every C element is summed in the same
// order whoever computes it: results are bit-identical for any number of threads.
// The AVX-512 and AVX2+FMA micro-kernels are compiled with target attributes and the widest the
// CPU has is chosen at run time; a portable micro-kernel serves other CPUs (cpu.h: TAPEGRAD_CPU,
// or TAPEGRAD_GEMM_KERNEL for gemm alone, caps the choice).
#include "kernels/gemm.h"

#include <algorithm>
#include <array>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <new>
#include <utility>

#include "kernels/checked.h"
#include "kernels/cpu.h"
#include "kernels/parallel.h"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace tapegrad {
namespace {

// ---------------------------------------------------------------- block sizes (the one table)
// MR x NR: micro-tile held in registers. KC: depth of a packed panel (a KC x NR B micro-panel
// stays in L1). MC x KC: packed A block, kept in L2. KC x NC: packed B panel, in L3.
// MC is a multiple of MR and NC of NR. Tuned on AMD EPYC (Zen 3/4: 32 KiB L1d, >= 512 KiB L2;
// AVX-512: Zen 5, 48 KiB L1d, 1 MiB L2, whose full-width 512-bit FMAs double AVX2's peak).
// KC is the same for every kernel: it fixes how K is cut into blocks, so every kernel sums each
// element in the same order and the AVX-512 and AVX2 kernels give bit-identical results.
template <typename T, Isa I> struct Blocks;
//                                                        MR   NR    KC    MC    NC
template <> struct Blocks<float, Isa::avx512>  { enum {   MR = 12, NR = 32, KC = 256, MC = 144, NC = 4064 }; };
template <> struct Blocks<double, Isa::avx512> { enum {   MR = 12, NR = 16, KC = 256, MC = 72,  NC = 4064 }; };
template <> struct Blocks<float, Isa::avx2>    { enum {   MR = 6, NR = 16, KC = 256, MC = 144, NC = 4080 }; };
template <> struct Blocks<double, Isa::avx2>   { enum {   MR = 6, NR = 8,  KC = 256, MC = 72,  NC = 4080 }; };
template <> struct Blocks<float, Isa::generic> { enum {   MR = 4, NR = 8,  KC = 256, MC = 128, NC = 2048 }; };
template <> struct Blocks<double, Isa::generic>{ enum {   MR = 4, NR = 4,  KC = 256, MC = 64,  NC = 2048 }; };

// Below this many multiply-adds a call runs on one thread; above it, one thread per
// kParallelMinWork / 2 multiply-adds, up to num_threads(). Measured on 2 cores, two
// threads gain 0.9-1.4x at 0.26 M multiply-adds and 1.5-1.7x from 1 M; but when another process
// holds the other core, a parallel region can wait a whole scheduler time slice for its second
// thread (a 13 us product took up to 9 ms), so small products, the common case in recurrent
// loops, stay on one thread.
constexpr double kParallelMinWork = 64.0 * 128.0 * 128.0;
// A is read in place, unpacked, when it meets at most this many NR-wide panels of B and at most
// kDirectAMaxCols columns, and, if column-major, when it is at most this many bytes: a
// column-major panel is kc lines one column stride apart, which for a power-of-two stride share
// a few cache sets and evict each other between the panel's uses (the weight gradient X^T @ dY,
// 128 x 1024 @ 1024 x 128 float32: 314 us read in place, 237 packed; PyTorch 225). Read in place,
// A's rows stream from L2 for every panel: on a Xeon with AVX-512, 1024 x 128 @ 128 x N float32
// ran at 183, 177, 175, 163 GFLOP/s for N = 32, 64, 128, 256 in place and 138, 160, 175, 185
// packed (float64: in place at least as fast up to N = 256).
constexpr int64_t kDirectAMaxPanels = 8;
constexpr int64_t kDirectAMaxCols = 128;
constexpr double kDirectAColBytes = 16384;
// What packing costs, in multiply-adds per element, for the tile grid: an A element packed
// (read, transposed, written, read again: fitted to the numbers above) or streamed in place, and
// the in-place kernel's speed relative to the packed one's; a B element packed.
constexpr double kPackAWork = 10, kDirectAWork = 2, kDirectASlowdown = 1.05, kPackBWork = 4;
// Fused B aligns its panels to cache lines (`peel` in gemm_serial) when B is at least this
// many NR-wide panels wide.
constexpr int64_t kPeelMinPanels = 16;
// Fused B packs groups of B micro-panels of at most this many bytes (half of L1): with a small
// K, C is then written in long runs per row instead of NR columns at a time across all rows.
constexpr int64_t kFusedBBytes = 16384;
// A packed B panel is swept by each row panel of A in column groups of at most this many bytes,
// which stay in L2 while all the row panels of the A block pass over them. Sweeping the whole
// panel instead streamed it from L3 once per row panel when it outgrew L2 (KC x 2048 float32 is
// 2 MiB): on an Intel Xeon with 2 MiB of L2, N = 2048 products ran at 130-150 GFLOP/s against
// 175-185 for N = 1024.
constexpr int64_t kL2GroupBytes = 262144;
// Threads take tiles of C from a counter: at most this many tiles per thread, a tile's fixed
// cost (a call of the serial nest, its buffers, the counter), and how late the workers are
// taken to join a region (about 10 us: a polling worker joins within a microsecond, one woken
// from its futex in tens), all in multiply-adds (about 100 per ns on one AVX-512 core).
constexpr int64_t kMaxTilesPerThread = 4;
constexpr double kTileStartWork = 32768;
constexpr double kJoinWork = 1e6;
// Packing a row-major B prefetches the row this many rows ahead.
constexpr int64_t kPackAhead = 8;
// A row-major B is read in place by the micro-kernel (direct B: full NR-wide panels, rows rsb
// apart, each fetched kDirectBAhead rows ahead: rows a page or more apart are ones the hardware
// prefetchers do not follow) when C has at most this many rows. With few rows, each packed B
// element served only a few micro-kernel sweeps, and packing took a third of the time (20 x 256
// @ 256 x 1024 float32 on one thread of an AVX-512 Xeon: 95 us packed, 67-72 in place, PyTorch
// 57; 8 x 512 @ 512 x 512: 57-61 -> 41; 12 x 4096 @ 4096 x 4096, B in DRAM: 10-12 -> 6.2 ms).
// With more rows the B panel, re-read from L2 by each row panel, loses to the packed copy in L1
// when B is in DRAM (96 x 4096 @ 4096 x 4096: 27.6-28.0 ms packed, 29.0-29.6 in place; at 64
// rows 21.0 against 21.4-21.6, while 64 x 256 @ 256 x 1024 gains 222 -> 198-208 us). AVX-512
// kernels only: the AVX2 ones (6 rows, NR of one cache line) gained 10-20% at 6-12 rows with B
// in cache but ran 40% slower with B in DRAM (12 x 4096 @ 4096 x 4096 float32: 11.8 -> 17.4 ms,
// whatever the prefetch distance), and lost up to 8% from 24 rows.
constexpr int64_t kDirectBMaxRows = 64;
constexpr int64_t kDirectBAhead = 8;
// gemm_tiny packs B (the AVX2 kernels read it packed) into a buffer of this many bytes on the
// stack: K up to 128 for NR = 16 floats or 8 doubles.
constexpr int64_t kTinyPackBytes = 8192;
// A product with one row (or one column) whose K runs contiguous in both operands, x @ W^T for a
// single x (a Linear's forward at batch 1) or W @ v, is n dot products (gemv_dot, below): packing
// the other operand's panels took 3x the product's time (1 x 512 @ 512 x 512 float32, B a
// transposed view: 42 us; PyTorch 15). Dot products of kDotCols outputs share each load of the
// vector; above kDotParallelWork multiply-adds the outputs are split between the threads.
constexpr int64_t kDotCols = 4;
constexpr double kDotParallelWork = 1 << 18;
// Tiles side by side along N share every row of C, and each K block rewrites the tile: the
// cores' prefetchers run past a tile's last column into the next tile's lines, so the threads
// took cache lines from each other at every row of every K block. With more than one K block, a
// tile of at most this many bytes is computed in a per-thread buffer and copied into C once
// (192 x 2080 @ 2080 x 576 float32 on 2 threads, tiles of 288 columns: 1.45-1.57 ms a product,
// 1.33-1.42 with the tiles' C apart). With one K block C is written once and the copy would
// only cost (20 x 128 @ 128 x 1024: 22-24 us -> 26-27 us).
constexpr int64_t kPrivateTileBytes = 1 << 20;

// ---------------------------------------------------------------- scratch buffers
// Packed panels live in per-thread, grow-only, 64-byte aligned buffers, so a call does not
// pay for malloc + page faults (OpenMP pool threads persist between calls).
class Scratch {
 public:
  ~Scratch() { std::free(p_); }
  void* get(size_t bytes) {
    if (bytes > cap_) {
      std::free(p_);
      cap_ = (bytes + 4095) / 4096 * 4096;
      p_ = std::aligned_alloc(64, cap_);
      if (!p_) {
        const size_t asked = cap_;
        cap_ = 0;
        throw_out_of_memory(asked, "GEMM packing buffer");
      }
    }
    return p_;
  }
 private:
  void* p_ = nullptr;
  size_t cap_ = 0;
};
thread_local Scratch tls_pack_a, tls_pack_b, tls_tile_c;

// ---------------------------------------------------------------- packing
#if defined(__x86_64__)
// `count` contiguous streams `stride` apart (the rows of a row-major A panel, the columns of a
// column-major B panel) -> element (i, p) of stream i at dst[p * LD + i], by in-register
// transposes: 8 x 8 (float, AVX2), 4 x 4 (float SSE, double AVX2) or 2 x 2 blocks. For A this
// replaced a scalar copy that moved about 2 elements per ns (1024 x 128 @ 128 x 384 float32, one
// thread: 1.12 -> 1.06 of PyTorch's time).
template <int LD>
__attribute__((target("avx2,fma"))) void pack_streams(int64_t kc, const float* a, int64_t rsa, float* Ap, int count) {
  int64_t p = 0;
  if (count == 8) {
    for (; p + 8 <= kc; p += 8) {
      __m256 r[8], t[8];
      for (int i = 0; i < 8; ++i) r[i] = _mm256_loadu_ps(a + i * rsa + p);
      for (int i = 0; i < 8; i += 2) {
        t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);
        t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);
      }
      for (int i = 0; i < 8; i += 4) {
        r[i] = _mm256_shuffle_ps(t[i], t[i + 2], 0x44);
        r[i + 1] = _mm256_shuffle_ps(t[i], t[i + 2], 0xEE);
        r[i + 2] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0x44);
        r[i + 3] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0xEE);
      }
      for (int k = 0; k < 4; ++k) {
        _mm256_storeu_ps(Ap + (p + k) * LD, _mm256_permute2f128_ps(r[k], r[k + 4], 0x20));
        _mm256_storeu_ps(Ap + (p + k + 4) * LD, _mm256_permute2f128_ps(r[k], r[k + 4], 0x31));
      }
    }
  } else if (count == 4) {
    for (; p + 4 <= kc; p += 4) {
      __m128 r0 = _mm_loadu_ps(a + p), r1 = _mm_loadu_ps(a + rsa + p);
      __m128 r2 = _mm_loadu_ps(a + 2 * rsa + p), r3 = _mm_loadu_ps(a + 3 * rsa + p);
      _MM_TRANSPOSE4_PS(r0, r1, r2, r3);
      _mm_storeu_ps(Ap + p * LD, r0);
      _mm_storeu_ps(Ap + (p + 1) * LD, r1);
      _mm_storeu_ps(Ap + (p + 2) * LD, r2);
      _mm_storeu_ps(Ap + (p + 3) * LD, r3);
    }
  } else {  // 2
    for (; p + 4 <= kc; p += 4) {
      const __m128 r0 = _mm_loadu_ps(a + p), r1 = _mm_loadu_ps(a + rsa + p);
      const __m128 lo = _mm_unpacklo_ps(r0, r1), hi = _mm_unpackhi_ps(r0, r1);
      _mm_storel_pi(reinterpret_cast<__m64*>(Ap + p * LD), lo);
      _mm_storeh_pi(reinterpret_cast<__m64*>(Ap + (p + 1) * LD), lo);
      _mm_storel_pi(reinterpret_cast<__m64*>(Ap + (p + 2) * LD), hi);
      _mm_storeh_pi(reinterpret_cast<__m64*>(Ap + (p + 3) * LD), hi);
    }
  }
  for (; p < kc; ++p)
    for (int i = 0; i < count; ++i) Ap[p * LD + i] = a[i * rsa + p];
}
template <int LD>
__attribute__((target("avx2,fma"))) void pack_streams(int64_t kc, const double* a, int64_t rsa, double* Ap, int count) {
  int64_t p = 0;
  if (count == 4) {
    for (; p + 4 <= kc; p += 4) {
      const __m256d r0 = _mm256_loadu_pd(a + p), r1 = _mm256_loadu_pd(a + rsa + p);
      const __m256d r2 = _mm256_loadu_pd(a + 2 * rsa + p), r3 = _mm256_loadu_pd(a + 3 * rsa + p);
      const __m256d t0 = _mm256_unpacklo_pd(r0, r1), t1 = _mm256_unpackhi_pd(r0, r1);
      const __m256d t2 = _mm256_unpacklo_pd(r2, r3), t3 = _mm256_unpackhi_pd(r2, r3);
      _mm256_storeu_pd(Ap + p * LD, _mm256_permute2f128_pd(t0, t2, 0x20));
      _mm256_storeu_pd(Ap + (p + 1) * LD, _mm256_permute2f128_pd(t1, t3, 0x20));
      _mm256_storeu_pd(Ap + (p + 2) * LD, _mm256_permute2f128_pd(t0, t2, 0x31));
      _mm256_storeu_pd(Ap + (p + 3) * LD, _mm256_permute2f128_pd(t1, t3, 0x31));
    }
  } else {  // 2
    for (; p + 2 <= kc; p += 2) {
      const __m128d r0 = _mm_loadu_pd(a + p), r1 = _mm_loadu_pd(a + rsa + p);
      _mm_storeu_pd(Ap + p * LD, _mm_unpacklo_pd(r0, r1));
      _mm_storeu_pd(Ap + (p + 1) * LD, _mm_unpackhi_pd(r0, r1));
    }
  }
  for (; p < kc; ++p)
    for (int i = 0; i < count; ++i) Ap[p * LD + i] = a[i * rsa + p];
}
// The first `count` of W streams, in groups of 8 (float) or 4 (double), then 4, then 2, then
// one; streams count..W-1 zero (an edge panel: M or N not a multiple of the micro-tile's).
template <int W, typename T>
__attribute__((target("avx2,fma"))) void pack_all_streams(int count, int64_t kc, const T* src, int64_t stride,
                                                          T* dst) {
  constexpr int kWide = sizeof(T) == 4 ? 8 : 4;
  int i = 0;
  for (; i + kWide <= count; i += kWide) pack_streams<W>(kc, src + i * stride, stride, dst + i, kWide);
  for (; i + 4 <= count; i += 4) pack_streams<W>(kc, src + i * stride, stride, dst + i, 4);
  for (; i + 2 <= count; i += 2) pack_streams<W>(kc, src + i * stride, stride, dst + i, 2);
  for (; i < count; ++i)
    for (int64_t p = 0; p < kc; ++p) dst[p * W + i] = src[i * stride + p];
  if (count < W)
    for (int64_t p = 0; p < kc; ++p)
      for (int j = count; j < W; ++j) dst[p * W + j] = T(0);
}
#endif

// kc slices of W contiguous elements, `stride` apart (a column-major A panel's columns, a
// row-major B panel's rows) -> dst[p * W + i]. That stride is one the hardware prefetchers follow
// poorly, so each slice is prefetched kPackAhead ahead: without, the copy waited on memory for
// about a cycle per element (20 x 1024 @ 1024 x 256 float32 spent half its time packing B; a
// weight gradient's X^T, 512 x 1024 @ 1024 x 128 float32, ran at 135-138 GFLOP/s, 149-151 with).
// Slices of count < W elements (an edge panel) take the rest of each dst slice as zeros.
template <int W, typename T>
void copy_slices(int count, int64_t kc, const T* src, int64_t stride, T* dst) {
  const auto ahead = [&](int64_t p) {
    if (p + kPackAhead < kc) {
      __builtin_prefetch(src + (p + kPackAhead) * stride);
      __builtin_prefetch(src + (p + kPackAhead) * stride + count - 1);
    }
  };
  if (count == W) {
    for (int64_t p = 0; p < kc; ++p) {
      ahead(p);
      for (int i = 0; i < W; ++i) dst[p * W + i] = src[p * stride + i];
    }
    return;
  }
  for (int64_t p = 0; p < kc; ++p) {
    ahead(p);
    for (int i = 0; i < W; ++i) dst[p * W + i] = T(0);
    for (int i = 0; i < count; ++i) dst[p * W + i] = src[p * stride + i];
  }
}

// One micro-panel of W streams (A: MR rows; B: NR columns) and depth kc: element p of stream i,
// at src[i * across + p * along], -> dst[p * W + i]; streams past `count` are zero. kSimd:
// panels whose streams are contiguous go through pack_all_streams (x86 with AVX2 only). Edge
// panels (count < W) take the same routes as full ones: element by element, with a select per
// element, the one B panel past a multiple of NR columns took as long to pack as the three
// before it took to multiply (64 x 784 @ 784 x 97 float32: 101 us, against 63 for 96 columns).
template <typename T, int W, bool kSimd>
void pack_panel(int64_t count, int64_t kc, const T* src, int64_t across, int64_t along, T* dst) {
  if (across == 1) {  // contiguous slices across the streams
    copy_slices<W>(int(count), kc, src, along, dst);
    return;
  }
  if (along == 1) {  // contiguous streams
#if defined(__x86_64__)
    if constexpr (kSimd) {
      pack_all_streams<W>(int(count), kc, src, across, dst);
      return;
    }
#endif
    for (int i = 0; i < W; ++i)
      for (int64_t p = 0; p < kc; ++p) dst[p * W + i] = i < count ? src[i * across + p] : T(0);
    return;
  }
  for (int64_t p = 0; p < kc; ++p)
    for (int i = 0; i < W; ++i) dst[p * W + i] = i < count ? src[i * across + p * along] : T(0);
}

// A micro-panel (m <= MR rows x kc, any strides) -> element (i, p) at p*MR + i.
template <typename T, int MR, bool kSimd>
void pack_a(int64_t m, int64_t kc, const T* a, int64_t rsa, int64_t csa, T* Ap) {
  pack_panel<T, MR, kSimd>(m, kc, a, rsa, csa, Ap);
}

// B panel (kc x nc, any strides) -> ceil(nc/NR) micro-panels; panel r holds columns
// r*NR..r*NR+NR-1 row after row: element (p, j) at r*NR*kc + p*NR + j.
template <typename T, int NR, bool kSimd>
void pack_b(int64_t kc, int64_t nc, const T* B, int64_t rsb, int64_t csb, T* Bp) {
  for (int64_t jr = 0; jr < nc; jr += NR, Bp += NR * kc)
    pack_panel<T, NR, kSimd>(std::min<int64_t>(NR, nc - jr), kc, B + jr * csb, csb, rsb, Bp);
}

// ---------------------------------------------------------------- micro-kernels
// Contract for every micro-kernel: A is MR x kc with element (i, p) at A[i * ars + p * acs]:
// a packed micro-panel, (ars, acs) = (1, MR), unless kDirectA, when A is read in place (a
// row- or column-major operand too thin to be worth packing). B is a kc x NR micro-panel with
// row p at B + p * bsr: packed (bsr = NR, 64-byte aligned) or, for direct B, the rows of a
// row-major B in place (bsr = its row stride). C is an MR x NR tile (the first m rows of it
// where the kernel takes a row count) with unit column stride and row stride rsc.
// C = alpha * (A @ B) + beta * C; C is not read when beta == 0. Each element gets the same FMAs
// in the same order however A and B are held and however many rows are computed, so those
// choices never change a result.

// Portable: plain loops the compiler vectorises for whatever the baseline ISA is.
template <typename T, int MR, int NR, bool kDirectA>
void ukernel_generic(int64_t kc, const T* __restrict A, int64_t ars, int64_t acs, const T* __restrict B,
                     int64_t bsr, T* __restrict C, int64_t rsc, T alpha, T beta) {
  if (!kDirectA) ars = 1, acs = MR;
  T acc[MR][NR] = {};
  for (int64_t p = 0; p < kc; ++p, A += acs, B += bsr)
    for (int i = 0; i < MR; ++i)
      for (int j = 0; j < NR; ++j) acc[i][j] += A[i * ars] * B[j];
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < NR; ++j)
      C[i * rsc + j] = beta == T(0) ? alpha * acc[i][j] : alpha * acc[i][j] + beta * C[i * rsc + j];
}

// C (m x n) += bias (n) along its rows (add_bias, below, picks the ISA).
template <typename T>
inline __attribute__((always_inline)) void add_bias_body(int64_t m, int64_t n, const T* bias, T* C, int64_t rsc,
                                                         int64_t csc) {
  for (int64_t i = 0; i < m; ++i) {
    T* c = C + i * rsc;
    if (csc == 1) {
#pragma omp simd
      for (int64_t j = 0; j < n; ++j) c[j] += bias[j];
    } else {
      for (int64_t j = 0; j < n; ++j) c[j * csc] += bias[j];
    }
  }
}
template <typename T>
void add_bias_base(int64_t m, int64_t n, const T* bias, T* C, int64_t rsc, int64_t csc) {
  add_bias_body(m, n, bias, C, rsc, csc);
}
#if defined(__x86_64__)
#define TG_AVX2 __attribute__((target("avx2,fma")))
#define TG_AVX512 __attribute__((target("avx512f,avx2,fma")))

// SIMD micro-kernels, one template per dtype and ISA: AVX2 float 6 x 16 and double 6 x 8 (12
// ymm accumulators + 2 for the B row + 1 broadcast of A = 15 of the 16 registers), AVX-512 float
// 12 x 32 and double 12 x 16 (24 zmm accumulators + 2 + 1 of 32). kRows < MR serves shorter row
// panels and kVecs = 1 a column edge of at most half a tile: fewer rows or columns computed,
// the same arithmetic per element (one FMA chain over p, then alpha and beta), which is also
// the same for both ISAs.
#define TG_DEFINE_SIMD_KERNEL(NAME, TARGET, MR, T, V, W, LOADU, STOREU, BCAST, FMADD, MUL, SET1, ZERO) \
  template <int kRows, int kVecs, bool kDirectA>                                                   \
  TARGET void NAME(int64_t kc, const T* __restrict A, int64_t ars, int64_t acs,                    \
                   const T* __restrict B, int64_t bsr, T* __restrict C, int64_t rsc, T alpha,      \
                   T beta) {                                                                       \
    if (!kDirectA) ars = 1, acs = MR;                                                              \
    for (int i = 0; i < kRows; ++i) { /* C is needed only at the end: start fetching it now */    \
      _mm_prefetch(reinterpret_cast<const char*>(C + i * rsc), _MM_HINT_T0);                       \
      _mm_prefetch(reinterpret_cast<const char*>(C + i * rsc + kVecs * W - 1), _MM_HINT_T0);       \
    }                                                                                              \
    const bool prefetch_b = bsr != 2 * W; /* B read in place (direct B), rows bsr apart */         \
    V c0[kRows], c1[kRows];                                                                        \
    _Pragma("GCC unroll 16") for (int i = 0; i < kRows; ++i) c0[i] = c1[i] = ZERO();               \
    _Pragma("GCC unroll 4") for (int64_t p = 0; p < kc; ++p) {                                     \
      if (prefetch_b) {                                                                            \
        _mm_prefetch(reinterpret_cast<const char*>(B + kDirectBAhead * bsr), _MM_HINT_T0);         \
        if (kVecs == 2)                                                                            \
          _mm_prefetch(reinterpret_cast<const char*>(B + kDirectBAhead * bsr + W), _MM_HINT_T0);   \
      }                                                                                            \
      const V b0 = LOADU(B), b1 = kVecs == 2 ? LOADU(B + W) : b0;                                  \
      _Pragma("GCC unroll 16") for (int i = 0; i < kRows; ++i) {                                   \
        const V a = BCAST(A + i * ars);                                                            \
        c0[i] = FMADD(a, b0, c0[i]);                                                               \
        if (kVecs == 2) c1[i] = FMADD(a, b1, c1[i]);                                               \
      }                                                                                            \
      A += acs;                                                                                    \
      B += bsr;                                                                                    \
    }                                                                                              \
    const V va = SET1(alpha), vb = SET1(beta);                                                     \
    _Pragma("GCC unroll 16") for (int i = 0; i < kRows; ++i) {                                     \
      T* c = C + i * rsc;                                                                          \
      if (beta == T(0)) {                                                                          \
        STOREU(c, MUL(va, c0[i]));                                                                 \
        if (kVecs == 2) STOREU(c + W, MUL(va, c1[i]));                                             \
      } else {                                                                                     \
        STOREU(c, FMADD(vb, LOADU(c), MUL(va, c0[i])));                                            \
        if (kVecs == 2) STOREU(c + W, FMADD(vb, LOADU(c + W), MUL(va, c1[i])));                    \
      }                                                                                            \
    }                                                                                              \
  }
#define TG_BCAST512_PS(p) _mm512_set1_ps(*(p))
#define TG_BCAST512_PD(p) _mm512_set1_pd(*(p))
TG_DEFINE_SIMD_KERNEL(ukernel_avx2_f32, TG_AVX2, 6, float, __m256, 8, _mm256_loadu_ps,
                      _mm256_storeu_ps, _mm256_broadcast_ss, _mm256_fmadd_ps, _mm256_mul_ps, _mm256_set1_ps,
                      _mm256_setzero_ps)
TG_DEFINE_SIMD_KERNEL(ukernel_avx2_f64, TG_AVX2, 6, double, __m256d, 4, _mm256_loadu_pd,
                      _mm256_storeu_pd, _mm256_broadcast_sd, _mm256_fmadd_pd, _mm256_mul_pd, _mm256_set1_pd,
                      _mm256_setzero_pd)
TG_DEFINE_SIMD_KERNEL(ukernel_avx512_f32, TG_AVX512, 12, float, __m512, 16, _mm512_loadu_ps,
                      _mm512_storeu_ps, TG_BCAST512_PS, _mm512_fmadd_ps, _mm512_mul_ps, _mm512_set1_ps,
                      _mm512_setzero_ps)
TG_DEFINE_SIMD_KERNEL(ukernel_avx512_f64, TG_AVX512, 12, double, __m512d, 8, _mm512_loadu_pd,
                      _mm512_storeu_pd, TG_BCAST512_PD, _mm512_fmadd_pd, _mm512_mul_pd, _mm512_set1_pd,
                      _mm512_setzero_pd)
// AVX-512 only: a micro-tile of n < NR columns, its B rows and C rows loaded and stored under a
// mask, so the columns past n are neither read nor written. A partial panel of a row-major B is
// then read in place and C is stored directly, with no zero-padded copy of B and no temporary
// tile: for small products (a batch of 8 x 8 @ 8 x 8 float32) those copies, not the FMAs, took
// most of the time (1024 of them: 270 us on one thread of a Xeon, PyTorch 78). The arithmetic
// per element is the kernel's above (one FMA chain over p from zero, then alpha and beta).
#define TG_DEFINE_MASKED_KERNEL(NAME, MR, T, V, W, MASK, MLOADU, MSTOREU, BCAST, FMADD, MUL, SET1, ZERO)   \
  template <int kRows, int kVecs, bool kDirectA>                                                       \
  TG_AVX512 void NAME(int64_t kc, const T* __restrict A, int64_t ars, int64_t acs, const T* __restrict B, \
                      int64_t bsr, T* __restrict C, int64_t rsc, T alpha, T beta, int n) {             \
    if (!kDirectA) ars = 1, acs = MR;                                                                  \
    const MASK m0 = MASK(n >= W ? ~0u : (1u << n) - 1u);                                               \
    const MASK m1 = MASK(n > W ? (1u << (n - W)) - 1u : 0u);                                           \
    V c0[kRows], c1[kRows];                                                                            \
    _Pragma("GCC unroll 16") for (int i = 0; i < kRows; ++i) c0[i] = c1[i] = ZERO();                   \
    _Pragma("GCC unroll 4") for (int64_t p = 0; p < kc; ++p) {                                         \
      const V b0 = MLOADU(m0, B), b1 = kVecs == 2 ? MLOADU(m1, B + W) : b0;                             \
      _Pragma("GCC unroll 16") for (int i = 0; i < kRows; ++i) {                                       \
        const V a = BCAST(A + i * ars);                                                                \
        c0[i] = FMADD(a, b0, c0[i]);                                                                   \
        if (kVecs == 2) c1[i] = FMADD(a, b1, c1[i]);                                                   \
      }                                                                                                \
      A += acs;                                                                                        \
      B += bsr;                                                                                        \
    }                                                                                                  \
    const V va = SET1(alpha), vb = SET1(beta);                                                         \
    _Pragma("GCC unroll 16") for (int i = 0; i < kRows; ++i) {                                         \
      T* c = C + i * rsc;                                                                              \
      if (beta == T(0)) {                                                                              \
        MSTOREU(c, m0, MUL(va, c0[i]));                                                                \
        if (kVecs == 2) MSTOREU(c + W, m1, MUL(va, c1[i]));                                            \
      } else {                                                                                         \
        MSTOREU(c, m0, FMADD(vb, MLOADU(m0, c), MUL(va, c0[i])));                                      \
        if (kVecs == 2) MSTOREU(c + W, m1, FMADD(vb, MLOADU(m1, c + W), MUL(va, c1[i])));              \
      }                                                                                                \
    }                                                                                                  \
  }
TG_DEFINE_MASKED_KERNEL(ukernel_avx512_f32_masked, 12, float, __m512, 16, __mmask16, _mm512_maskz_loadu_ps,
                        _mm512_mask_storeu_ps, TG_BCAST512_PS, _mm512_fmadd_ps, _mm512_mul_ps, _mm512_set1_ps,
                        _mm512_setzero_ps)
TG_DEFINE_MASKED_KERNEL(ukernel_avx512_f64_masked, 12, double, __m512d, 8, __mmask8, _mm512_maskz_loadu_pd,
                        _mm512_mask_storeu_pd, TG_BCAST512_PD, _mm512_fmadd_pd, _mm512_mul_pd, _mm512_set1_pd,
                        _mm512_setzero_pd)
#undef TG_DEFINE_MASKED_KERNEL
// add_bias for the two SIMD ISAs (add_bias below picks by the kernel's).
template <typename T>
TG_AVX2 void add_bias_avx2(int64_t m, int64_t n, const T* bias, T* C, int64_t rsc, int64_t csc) {
  add_bias_body(m, n, bias, C, rsc, csc);
}
template <typename T>
TG_AVX512 void add_bias_avx512(int64_t m, int64_t n, const T* bias, T* C, int64_t rsc, int64_t csc) {
  add_bias_body(m, n, bias, C, rsc, csc);
}
#undef TG_BCAST512_PS
#undef TG_BCAST512_PD
#undef TG_DEFINE_SIMD_KERNEL
#undef TG_AVX512
#undef TG_AVX2
#endif  // __x86_64__

// One kernel configuration: blocking from the table plus its micro-kernel.
template <typename T, Isa I> struct Config;
// kRowEdges: the micro-kernel can compute fewer than MR rows (ukernel's m), so partial row
// panels need no temporary tile; otherwise m must be MR. kHalfCols: it can compute the left
// NR/2 columns only (ukernel's half); otherwise it computes all NR.
template <typename T> struct Config<T, Isa::generic> : Blocks<T, Isa::generic> {
  static constexpr Isa kIsa = Isa::generic;
  static constexpr bool kRowEdges = false, kHalfCols = false, kMaskedCols = false;
  template <bool kDirectA>
  static void ukernel(int /*m*/, bool /*half*/, int64_t kc, const T* A, int64_t ars, int64_t acs, const T* B,
                      int64_t bsr, T* C, int64_t rsc, T alpha, T beta) {
    ukernel_generic<T, Blocks<T, Isa::generic>::MR, Blocks<T, Isa::generic>::NR, kDirectA>(
        kc, A, ars, acs, B, bsr, C, rsc, alpha, beta);
  }
};
#if defined(__x86_64__)
// A SIMD kernel for m rows (1..MR) and one (half) or two vectors of columns, from a table.
template <typename T, Isa I, template <int, int, bool> class K>
struct SimdConfig : Blocks<T, I> {
  static constexpr Isa kIsa = I;
  static constexpr bool kRowEdges = true, kHalfCols = true, kMaskedCols = false;
  using Fn = void (*)(int64_t, const T*, int64_t, int64_t, const T*, int64_t, T*, int64_t, T, T);
  template <bool kDirectA, size_t... R>
  static constexpr auto table(std::index_sequence<R...>) {
    return std::array<std::array<Fn, sizeof...(R)>, 2>{{{K<int(R) + 1, 2, kDirectA>::run...},
                                                        {K<int(R) + 1, 1, kDirectA>::run...}}};
  }
  template <bool kDirectA>
  static void ukernel(int m, bool half, int64_t kc, const T* A, int64_t ars, int64_t acs, const T* B, int64_t bsr,
                      T* C, int64_t rsc, T alpha, T beta) {
    static constexpr auto kTable = table<kDirectA>(std::make_index_sequence<Blocks<T, I>::MR>());
    kTable[half][m - 1](kc, A, ars, acs, B, bsr, C, rsc, alpha, beta);
  }
};
// The kernel templates as class templates, so SimdConfig can take them as a parameter.
#define TG_KERNEL_CLASS(CLASS, FN)                \
  template <int kRows, int kVecs, bool kDirectA> \
  struct CLASS {                                  \
    static constexpr auto run = FN<kRows, kVecs, kDirectA>; \
  };
TG_KERNEL_CLASS(Avx2F32, ukernel_avx2_f32)
TG_KERNEL_CLASS(Avx2F64, ukernel_avx2_f64)
TG_KERNEL_CLASS(Avx512F32, ukernel_avx512_f32)
TG_KERNEL_CLASS(Avx512F64, ukernel_avx512_f64)
TG_KERNEL_CLASS(Avx512F32Masked, ukernel_avx512_f32_masked)
TG_KERNEL_CLASS(Avx512F64Masked, ukernel_avx512_f64_masked)
#undef TG_KERNEL_CLASS
template <> struct Config<float, Isa::avx2> : SimdConfig<float, Isa::avx2, Avx2F32> {};
template <> struct Config<double, Isa::avx2> : SimdConfig<double, Isa::avx2, Avx2F64> {};
// kMaskedCols: ukernel_masked computes a tile of n < NR columns, reading B's rows and writing C's
// under a mask (nothing past column n touched).
template <typename T, Isa I, template <int, int, bool> class K, template <int, int, bool> class KM>
struct MaskedConfig : SimdConfig<T, I, K> {
  static constexpr bool kMaskedCols = true;
  using Fm = void (*)(int64_t, const T*, int64_t, int64_t, const T*, int64_t, T*, int64_t, T, T, int);
  template <bool kDirectA, size_t... R>
  static constexpr auto masked_table(std::index_sequence<R...>) {
    return std::array<std::array<Fm, sizeof...(R)>, 2>{{{KM<int(R) + 1, 2, kDirectA>::run...},
                                                        {KM<int(R) + 1, 1, kDirectA>::run...}}};
  }
  template <bool kDirectA>
  static void ukernel_masked(int m, int n, int64_t kc, const T* A, int64_t ars, int64_t acs, const T* B,
                             int64_t bsr, T* C, int64_t rsc, T alpha, T beta) {
    static constexpr auto kTable = masked_table<kDirectA>(std::make_index_sequence<Blocks<T, I>::MR>());
    kTable[2 * n <= Blocks<T, I>::NR][m - 1](kc, A, ars, acs, B, bsr, C, rsc, alpha, beta, n);
  }
};
template <> struct Config<float, Isa::avx512> : MaskedConfig<float, Isa::avx512, Avx512F32, Avx512F32Masked> {};
template <> struct Config<double, Isa::avx512> : MaskedConfig<double, Isa::avx512, Avx512F64, Avx512F64Masked> {};
#endif

// One micro-tile of C (m <= MR rows, n <= NR columns, column stride csc). Tiles with partial
// columns (or rows, without kRowEdges) or a non-unit column stride go through a temporary full
// tile, so the arithmetic is always the micro-kernel's own and an element's value never
// depends on which tile it is in. A tile of at most NR/2 columns computes only that half.
template <typename T, class Cfg, bool kDirectA>
inline void tile(int64_t m, int64_t n, int64_t kc, const T* Ap, int64_t ars, int64_t acs, const T* Bp, int64_t bsr,
                 T* C, int64_t rsc, int64_t csc, T alpha, T beta) {
  constexpr int MR = Cfg::MR, NR = Cfg::NR;
  const int rows = Cfg::kRowEdges ? int(m) : MR;
  const bool half = Cfg::kHalfCols && 2 * n <= NR;
  if ((n == NR || (half && 2 * n == NR)) && csc == 1 && rows == m) {
    Cfg::template ukernel<kDirectA>(rows, half, kc, Ap, ars, acs, Bp, bsr, C, rsc, alpha, beta);
    return;
  }
  if constexpr (Cfg::kMaskedCols) {
    if (csc == 1 && rows == m) {
      Cfg::template ukernel_masked<kDirectA>(rows, int(n), kc, Ap, ars, acs, Bp, bsr, C, rsc, alpha, beta);
      return;
    }
  }
  alignas(64) T t[MR * NR] = {};
  if (beta != T(0))
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < n; ++j) t[i * NR + j] = C[i * rsc + j * csc];
  Cfg::template ukernel<kDirectA>(rows, half, kc, Ap, ars, acs, Bp, bsr, t, NR, alpha, beta);
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) C[i * rsc + j * csc] = t[i * NR + j];
}

// C (m x n) += bias (n) along its rows: a tile just computed, still in L1. Compiled for the
// micro-kernel's ISA (kIsa): at the baseline's 4-wide vectors the adds cost 3% of a 12 x 32 tile's
// time at K = 256.
template <typename T, Isa I = Isa::generic>
void add_bias(int64_t m, int64_t n, const T* bias, T* C, int64_t rsc, int64_t csc) {
#if defined(__x86_64__)
  if constexpr (I == Isa::avx512) return add_bias_avx512(m, n, bias, C, rsc, csc);
  if constexpr (I == Isa::avx2) return add_bias_avx2(m, n, bias, C, rsc, csc);
#endif
  add_bias_base(m, n, bias, C, rsc, csc);
}

// The serial five-loop nest on one rectangle of C (the whole of C, or one thread's share).
// Layout: A is M x K (strides rsa, csa), B is K x N (rsb, csb), C is M x N (rsc, csc); any
// strides, as packing absorbs them; csc == 1 lets the micro-kernel store C rows directly.
// The K blocks are of equal depth (<= KC) and, with kRowEdges, the row panels of an MC block
// of equal height (<= MR, differing by one): a short last block or panel would cost as much
// per row as a full one (the micro-kernel's FMA latency) and carry the same C traffic.
// Three shortcuts for thin products, none of which changes the arithmetic:
//  - direct A: with few NR panels (N <= kDirectAMaxPanels * NR) packing A would cost about as
//    much as using it, so the row panels of a row-major (or small column-major) A are read in
//    place;
//  - fused B: with one MC block of rows (M <= MC) each B micro-panel is used by one sweep of
//    the micro-kernel only, so it is packed right before that sweep, into L1, instead of the
//    whole KC x NC panel being packed to L3 first;
//  - direct B (AVX-512 kernels): with few rows (M <= kDirectBMaxRows) and a row-major B, its
//    full NR-wide panels are not packed at all but read in place by the micro-kernel (a last
//    partial one is packed: the kernel reads whole rows of NR).
// With a pre-packed B (pre.data, gemm_pack_b's layout, this rectangle's columns starting at
// global column pre.n0) B is not read and nothing of it is packed.
template <typename T>
struct Prepacked {
  const T* data = nullptr;
  int64_t npad = 0, n0 = 0;  // npad: the packed B's columns, a multiple of NR
  // Block kb (rows pc.. of B, depth kc) holds ceil(N / NR) panels of kc x NR, column j's at
  // (pc * npad + j / NR * NR * kc): a panel of the rectangle's local column `col`.
  const T* panel(int64_t pc, int64_t kc, int64_t col) const { return data + pc * npad + (n0 + col) * kc; }
};

template <typename T, class Cfg>
void gemm_serial(int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t rsa, int64_t csa,
                 const T* B, int64_t rsb, int64_t csb, T beta, T* C, int64_t rsc, int64_t csc,
                 Prepacked<T> pre = {}, const T* bias = nullptr) {
  constexpr int MR = Cfg::MR, NR = Cfg::NR, KC = Cfg::KC, MC = Cfg::MC, NC = Cfg::NC;
  const bool direct_a = N <= std::min<int64_t>(kDirectAMaxPanels * NR, kDirectAMaxCols) &&
                        (csa == 1 || (rsa == 1 && double(M) * double(K) * sizeof(T) <= kDirectAColBytes));
  const bool fused_b = M <= MC || pre.data;
  const bool direct_b = Cfg::kIsa == Isa::avx512 && !pre.data && csb == 1 && M <= kDirectBMaxRows;
  const int64_t kblocks = (K + KC - 1) / KC, kc_max = (K + kblocks - 1) / kblocks;
  const int64_t group = std::max<int64_t>(1, kFusedBBytes / int64_t(sizeof(T) * NR * kc_max));
  const int64_t b_cols = fused_b ? group * NR : (std::min<int64_t>(N, NC) + NR - 1) / NR * NR;
  T* Bp = pre.data ? nullptr : static_cast<T*>(tls_pack_b.get(sizeof(T) * kc_max * b_cols));
  T* Ap = static_cast<T*>(tls_pack_a.get(sizeof(T) * kc_max * ((std::min<int64_t>(M, MC) + MR - 1) / MR * MR)));
  for (int64_t jc = 0; jc < N; jc += NC) {
    const int64_t nc = std::min<int64_t>(NC, N - jc);
    // K blocks run in order, the first applying beta and the rest accumulating onto C.
    for (int64_t kb = 0; kb < kblocks; ++kb) {
      const int64_t pc = K * kb / kblocks, kc = K * (kb + 1) / kblocks - pc;
      const T beta_pc = kb == 0 ? beta : T(1);
      if (!fused_b) pack_b<T, NR, Cfg::kIsa != Isa::generic>(kc, nc, B + pc * rsb + jc * csb, rsb, csb, Bp);
      for (int64_t ic = 0; ic < M; ic += MC) {
        const int64_t mc = std::min<int64_t>(MC, M - ic), panels = (mc + MR - 1) / MR;
        // Row panel r: rows [row(r), row(r + 1)) of this block; read in place or packed at Ap + r*MR*kc.
        const auto row = [&](int64_t r) { return Cfg::kRowEdges ? mc * r / panels : std::min<int64_t>(mc, r * MR); };
        const auto in_place = [&](int64_t r) { return direct_a && (Cfg::kRowEdges || row(r + 1) - row(r) == MR); };
        for (int64_t r = 0; r < panels; ++r)
          if (!in_place(r))
            pack_a<T, MR, Cfg::kIsa != Isa::generic>(row(r + 1) - row(r), kc, A + (ic + row(r)) * rsa + pc * csa,
                                                     rsa, csa, Ap + r * MR * kc);
        // Layout: packed micro-panels (pack_a / pack_b); tile (r, jr) of C at (ic+row(r), jc+jr).
        // With fused B, a group of B micro-panels that fits in L1 is packed at a time and each
        // row panel sweeps the whole group, so C is written in runs of group * NR per row.
        // With fused B on a row-major B whose rows all share one alignment, a first group of
        // `peel` (< NR) columns makes every later micro-panel start on a cache line: a
        // misaligned panel row spans two lines, which costs up to a sixth of the throughput.
        // The short first and last groups cost a panel each, so only for wide B (LeNet's im2col
        // products); on 20 x 1024 @ 1024 x 256 float32 they cost half the time (85 -> 135 us).
        const int64_t l2_group = std::max<int64_t>(1, kL2GroupBytes / int64_t(sizeof(T) * NR * kc)) * NR;
        const int64_t step = fused_b ? group * NR : std::min(nc, l2_group);
        const uintptr_t b_addr = reinterpret_cast<uintptr_t>(B + pc * rsb + jc * csb);
        const bool aligned_rows = csb == 1 && (rsb * sizeof(T)) % 64 == 0 && b_addr % sizeof(T) == 0;
        const int64_t peel = fused_b && !pre.data && nc >= kPeelMinPanels * NR && aligned_rows
                                 ? int64_t((64 - b_addr % 64) % 64 / sizeof(T)) : 0;
        for (int64_t jg = 0, ng = 0; jg < nc; jg += ng) {
          ng = std::min<int64_t>(jg == 0 && peel > 0 ? peel : step, nc - jg);
          // direct B: full panels are read in place, a partial one (n < NR) is packed unless
          // the masked kernel reads it (tile() takes that one for a C of unit column stride)
          const int64_t nfull = !direct_b ? 0 : Cfg::kMaskedCols && csc == 1 ? ng : ng / NR * NR;
          if (fused_b && !pre.data && nfull < ng)
            pack_b<T, NR, Cfg::kIsa != Isa::generic>(kc, ng - nfull, B + pc * rsb + (jc + jg + nfull) * csb, rsb,
                                                     csb, Bp);
          for (int64_t r = 0; r < panels; ++r) {
            const int64_t i0 = row(r), m = row(r + 1) - i0;
            for (int64_t jr = 0; jr < ng; jr += NR) {
              const int64_t n = std::min<int64_t>(NR, ng - jr);
              const bool b_in_place = jr < nfull;
              const T* b = pre.data     ? pre.panel(pc, kc, jc + jg + jr)
                           : b_in_place ? B + pc * rsb + jc + jg + jr
                                        : Bp + (fused_b ? jr - nfull : jg + jr) * kc;
              const int64_t bsr = b_in_place ? rsb : NR;
              T* c = C + (ic + i0) * rsc + (jc + jg + jr) * csc;
              if (in_place(r))
                tile<T, Cfg, true>(m, n, kc, A + (ic + i0) * rsa + pc * csa, rsa, csa, b, bsr, c, rsc, csc, alpha,
                                   beta_pc);
              else
                tile<T, Cfg, false>(m, n, kc, Ap + r * MR * kc, 1, MR, b, bsr, c, rsc, csc, alpha, beta_pc);
              if (bias && kb == kblocks - 1) add_bias<T, Cfg::kIsa>(m, n, bias + jc + jg + jr, c, rsc, csc);
            }
          }
        }
      }
    }
  }
}

// A product of at most one micro-panel of columns (N <= NR), one K block (K <= KC) and few rows,
// every operand of unit column stride: gemm_serial's own calls for it (the row panels split as
// its kRowEdges split, A and, for the AVX-512 kernels, B read in place; otherwise B packed as
// its fused B packs it), without its buffers and loop set-up, which took two thirds of an
// 8 x 8 @ 8 x 8 float32 product's time (a batch of 1024 of them: 82 us, PyTorch 72). The same
// micro-kernel calls, so the same bits. False where the case is not this one.
template <typename T, class Cfg>
bool gemm_tiny(int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t rsa, int64_t csa, const T* B,
               int64_t rsb, int64_t csb, T beta, T* C, int64_t rsc, int64_t csc, const T* bias) {
  constexpr int MR = Cfg::MR, NR = Cfg::NR;
  constexpr bool direct_b = Cfg::kIsa == Isa::avx512 && Cfg::kMaskedCols;  // gemm_serial's nfull == ng
  constexpr int64_t kMaxPackedK = kTinyPackBytes / int64_t(sizeof(T) * NR);
  if (!Cfg::kRowEdges || N > NR || K > (direct_b ? int64_t(Cfg::KC) : std::min<int64_t>(Cfg::KC, kMaxPackedK)) ||
      M > std::min<int64_t>(kDirectBMaxRows, Cfg::MC) || csa != 1 || csb != 1 || csc != 1)
    return false;
  alignas(64) T packed[direct_b ? 1 : kTinyPackBytes / sizeof(T)];
  const T* b = B;
  int64_t bsr = rsb;
  if constexpr (!direct_b) {
    pack_b<T, NR, Cfg::kIsa != Isa::generic>(K, N, B, rsb, csb, packed);
    b = packed, bsr = NR;
  }
  const int64_t panels = (M + MR - 1) / MR;
  for (int64_t r = 0; r < panels; ++r) {
    const int64_t i0 = M * r / panels, m = M * (r + 1) / panels - i0;
    tile<T, Cfg, true>(m, N, K, A + i0 * rsa, rsa, csa, b, bsr, C + i0 * rsc, rsc, csc, alpha, beta);
    if (bias) add_bias<T, Cfg::kIsa>(m, N, bias, C + i0 * rsc, rsc, csc);
  }
  return true;
}

// Cut C into a tm (along M) x tn (along N) grid of tiles of whole micro-tiles for nt threads
// that take tiles from a shared counter. A tile costs its multiply-adds plus its packing (each
// tile packs the B columns of its own rectangle and, unless A is read in place, its A rows; read
// in place, A streams for every panel: kPackAWork and the rest) plus a fixed start-up. The grid
// minimises the time the last tile ends when the caller starts at once, the workers kJoinWork
// later, and each tile goes to the thread free first. More tiles than threads cost more packing
// but keep both threads busy when one starts late. (Counting a packed A element as 4
// multiply-adds, not 10, split most products along N: every tile then packed or streamed all of
// A, and 2080 x 192 @ 192 x 576 float32 ran 1.74x faster on 2 threads than on 1, 2.09x when cut
// along M; PyTorch 2.0x.)
void tile_grid(int nt, int64_t M, int64_t N, int64_t K, int64_t MR, int64_t NR, bool a_row_major, int& tm,
               int& tn) {
  const int64_t mp = (M + MR - 1) / MR, np = (N + NR - 1) / NR;
  const int64_t most = std::min<int64_t>(kMaxTilesPerThread * nt, mp * np);
  double best = -1;
  for (int64_t m = 1; m <= std::min<int64_t>(mp, most); ++m)
    for (int64_t n = 1; n <= np && m * n <= most; ++n) {
      const double rows = double((mp + m - 1) / m * MR), cols = double((np + n - 1) / n * NR);
      const bool direct_a = a_row_major && cols <= double(std::min<int64_t>(kDirectAMaxPanels * NR, kDirectAMaxCols));
      const double tile = double(K) * (rows * cols * (direct_a ? kDirectASlowdown : 1.0) + kPackBWork * cols +
                                       (direct_a ? kDirectAWork : kPackAWork) * rows) +
                          kTileStartWork;
      // When the caller and the nt - 1 workers (in step: equal tiles) are done with their tiles.
      double caller = 0, workers = kJoinWork;
      for (int64_t left = m * n; left > 0;) {
        if (caller <= workers) caller += tile, left -= 1;
        else workers += tile, left -= std::min<int64_t>(left, nt - 1);
      }
      const double cost = std::max(caller, workers > kJoinWork ? workers : 0.0);
      if (best < 0 || cost < best) { best = cost; tm = int(m); tn = int(n); }
    }
}

// Threads take disjoint rectangles of C (tiles from a shared counter) and run the serial nest
// on them: no barriers, no shared buffers. K is never split and the blocking is fixed, so every
// C element is summed in the same order whatever the tiling and whoever runs a tile: results
// are bit-identical for any thread count and any timing.
template <typename T, class Cfg>
void gemm_blocked(int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t rsa, int64_t csa,
                  const T* B, int64_t rsb, int64_t csb, T beta, T* C, int64_t rsc, int64_t csc,
                  Prepacked<T> pre = {}, const T* bias = nullptr) {
  constexpr int MR = Cfg::MR, NR = Cfg::NR;
  const double work = double(M) * double(N) * double(K);
  int nt = 1;
  if (!in_parallel_region() && work >= kParallelMinWork)
    nt = int(std::min<double>(num_threads(), work / (kParallelMinWork / 2)));
  if (nt <= 1)
    return gemm_serial<T, Cfg>(M, N, K, alpha, A, rsa, csa, B, rsb, csb, beta, C, rsc, csc, pre, bias);
  const int64_t mp = (M + MR - 1) / MR, np = (N + NR - 1) / NR;
  int tm = 1, tn = 1;
  tile_grid(nt, M, N, K, MR, NR, csa == 1, tm, tn);
  const int64_t ntiles = int64_t(tm) * tn;
  std::atomic<int64_t> next{0};
  parallel(nt, [&](int, int) {
    for (int64_t t; (t = next.fetch_add(1, std::memory_order_relaxed)) < ntiles;) {
      const int64_t it = t / tn, jt = t % tn;
      // Tile t's rectangle [m0, m1) x [n0, n1), on the global MR x NR micro-tile grid.
      const int64_t m0 = std::min(M, mp * it / tm * MR), m1 = std::min(M, mp * (it + 1) / tm * MR);
      const int64_t n0 = std::min(N, np * jt / tn * NR), n1 = std::min(N, np * (jt + 1) / tn * NR);
      Prepacked<T> mine = pre;
      mine.n0 += n0;
      if (m1 <= m0 || n1 <= n0) continue;
      const int64_t mt = m1 - m0, nt_cols = n1 - n0, ld = (nt_cols + 15) / 16 * 16;  // rows on cache lines
      T* c = C + m0 * rsc + n0 * csc;
      if (tn == 1 || K <= Cfg::KC || double(mt) * double(ld) * sizeof(T) > kPrivateTileBytes) {
        gemm_serial<T, Cfg>(mt, nt_cols, K, alpha, A + m0 * rsa, rsa, csa, B + n0 * csb, rsb, csb, beta, c, rsc,
                            csc, mine, bias ? bias + n0 : nullptr);
        continue;
      }
      T* buf = static_cast<T*>(tls_tile_c.get(sizeof(T) * mt * ld));
      if (beta != T(0))  // beta == 0: C is not read (a NaN there does not survive), as in gemm_serial
        for (int64_t i = 0; i < mt; ++i)
          for (int64_t j = 0; j < nt_cols; ++j) buf[i * ld + j] = c[i * rsc + j * csc];
      gemm_serial<T, Cfg>(mt, nt_cols, K, alpha, A + m0 * rsa, rsa, csa, B + n0 * csb, rsb, csb, beta, buf, ld, 1,
                          mine, bias ? bias + n0 : nullptr);
      for (int64_t i = 0; i < mt; ++i)
        for (int64_t j = 0; j < nt_cols; ++j) c[i * rsc + j * csc] = buf[i * ld + j];
    }
  });
}

// C = beta * C, for K == 0 or alpha == 0 (A and B are not read, as in BLAS).
template <typename T>
void scale_c(int64_t M, int64_t N, T beta, T* C, int64_t rsc, int64_t csc) {
  if (beta == T(1)) return;
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = 0; j < N; ++j) C[i * rsc + j * csc] = beta == T(0) ? T(0) : beta * C[i * rsc + j * csc];
}

// ---------------------------------------------------------------- one row or column: dot products
// c[j * incc] = alpha * dot(a, b + j * ldb) + beta * c[j * incc] for j in [j0, j1), a and each
// b + j * ldb contiguous over K. Every dot product sums in 64 bytes of lanes (16 floats or 8
// doubles, whatever the vector width), each lane an FMA chain over its K positions in order, and
// the lanes pairwise in a fixed order: the same bits for any ISA with FMA and any thread count.
// (They are not the blocked nest's bits for the same row: that one runs one chain over K per
// element, which a row-major A of more rows gives. PyTorch's GEMV differs from its GEMM alike.)
template <typename T>
inline __attribute__((always_inline)) void gemv_dot_body(int64_t j0, int64_t j1, int64_t K, const T* a,
                                                         const T* b, int64_t ldb, T alpha, T beta, T* c,
                                                         int64_t incc) {
  constexpr int64_t L = 64 / int64_t(sizeof(T));
  for (int64_t j = j0; j < j1; j += kDotCols) {
    const int64_t cols = std::min<int64_t>(kDotCols, j1 - j);
    const T* bj[kDotCols];
    for (int64_t q = 0; q < kDotCols; ++q) bj[q] = b + (j + std::min<int64_t>(q, cols - 1)) * ldb;
    alignas(64) T acc[kDotCols][L] = {};
    int64_t p = 0;
    for (; p + L <= K; p += L) {
      for (int64_t q = 0; q < kDotCols; ++q) {
#pragma omp simd aligned(acc : 64)
        for (int64_t l = 0; l < L; ++l) acc[q][l] += a[p + l] * bj[q][p + l];
      }
    }
    for (int64_t q = 0; q < kDotCols; ++q)
      for (int64_t l = 0; p + l < K; ++l) acc[q][l] += a[p + l] * bj[q][p + l];
    for (int64_t q = 0; q < cols; ++q) {
      for (int64_t w = L / 2; w >= 1; w /= 2)
        for (int64_t l = 0; l < w; ++l) acc[q][l] += acc[q][l + w];
      T* out = c + (j + q) * incc;
      *out = beta == T(0) ? alpha * acc[q][0] : alpha * acc[q][0] + beta * *out;
    }
  }
}

template <typename T>
void gemv_dot_base(int64_t j0, int64_t j1, int64_t K, const T* a, const T* b, int64_t ldb, T alpha, T beta, T* c,
                   int64_t incc) {
  gemv_dot_body(j0, j1, K, a, b, ldb, alpha, beta, c, incc);
}
#if defined(__x86_64__)
template <typename T>
__attribute__((target("avx2,fma"))) void gemv_dot_avx2(int64_t j0, int64_t j1, int64_t K, const T* a, const T* b,
                                                       int64_t ldb, T alpha, T beta, T* c, int64_t incc) {
  gemv_dot_body(j0, j1, K, a, b, ldb, alpha, beta, c, incc);
}
template <typename T>
__attribute__((target("avx512f,avx2,fma,prefer-vector-width=512"))) void gemv_dot_avx512(
    int64_t j0, int64_t j1, int64_t K, const T* a, const T* b, int64_t ldb, T alpha, T beta, T* c, int64_t incc) {
  gemv_dot_body(j0, j1, K, a, b, ldb, alpha, beta, c, incc);
}
#endif

// The widest kernel this CPU runs, chosen once (cpu.h: TAPEGRAD_CPU, or TAPEGRAD_GEMM_KERNEL for
// gemm alone, caps it; tests compare the kernels).
Isa chosen_isa() { return kernel_isa(Kernel::gemm); }

// n dot products of length K (see gemv_dot_body), in tasks of whole kDotCols groups taken by the
// threads when the product is large enough.
template <typename T>
void gemv_dot(int64_t n, int64_t K, const T* a, const T* b, int64_t ldb, T alpha, T beta, T* c, int64_t incc) {
  const int64_t per_task =
      std::max<int64_t>(kDotCols, (int64_t(1) << 16) / std::max<int64_t>(K, 1) / kDotCols * kDotCols);
  const int64_t tasks = (n + per_task - 1) / per_task;
  const bool parallel = !in_parallel_region() && double(n) * double(K) >= kDotParallelWork;
  parallel_tiles(tasks, parallel, [&](int64_t t) {
    const int64_t j0 = t * per_task, j1 = std::min(n, j0 + per_task);
#if defined(__x86_64__)
    if (chosen_isa() == Isa::avx512) return gemv_dot_avx512(j0, j1, K, a, b, ldb, alpha, beta, c, incc);
    if (chosen_isa() == Isa::avx2) return gemv_dot_avx2(j0, j1, K, a, b, ldb, alpha, beta, c, incc);
#endif
    gemv_dot_base(j0, j1, K, a, b, ldb, alpha, beta, c, incc);
  });
}

}  // namespace

const char* gemm_kernel_name() { return isa_name(chosen_isa()); }

template <typename T>
void gemm(int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t rsa, int64_t csa,
          const T* B, int64_t rsb, int64_t csb, T beta, T* C, int64_t rsc, int64_t csc, const T* bias) {
  if (M <= 0 || N <= 0) return;
  if (K <= 0 || alpha == T(0)) {
    scale_c(M, N, beta, C, rsc, csc);
    if (bias) add_bias(M, N, bias, C, rsc, csc);
    return;
  }
  // One row whose K runs contiguous in A and in every column of B (x @ W^T), or one column
  // likewise (W @ v): dot products, nothing packed.
  if (M == 1 && (csa == 1 || K == 1) && (rsb == 1 || K == 1)) {
    gemv_dot<T>(N, K, A, B, csb, alpha, beta, C, csc);
    if (bias) add_bias(M, N, bias, C, rsc, csc);
    return;
  }
  if (N == 1 && (csa == 1 || K == 1) && (rsb == 1 || K == 1)) {
    gemv_dot<T>(M, K, B, A, rsa, alpha, beta, C, rsc);
    if (bias) add_bias(M, N, bias, C, rsc, csc);
    return;
  }
  // The micro-kernel stores rows of C; for a column-major C compute C^T = B^T A^T instead (not
  // with a bias, which would then run along C^T's rows: the strided stores are only slower).
  if (csc != 1 && rsc == 1 && !bias) {
    std::swap(M, N);
    std::swap(A, B);
    std::swap(rsa, csb);
    std::swap(csa, rsb);
    std::swap(rsc, csc);
  }
#if defined(__x86_64__)
  switch (chosen_isa()) {
    case Isa::avx512:
      if (gemm_tiny<T, Config<T, Isa::avx512>>(M, N, K, alpha, A, rsa, csa, B, rsb, csb, beta, C, rsc, csc, bias))
        return;
      return gemm_blocked<T, Config<T, Isa::avx512>>(M, N, K, alpha, A, rsa, csa, B, rsb, csb, beta, C, rsc, csc,
                                                     {}, bias);
    case Isa::avx2:
      if (gemm_tiny<T, Config<T, Isa::avx2>>(M, N, K, alpha, A, rsa, csa, B, rsb, csb, beta, C, rsc, csc, bias))
        return;
      return gemm_blocked<T, Config<T, Isa::avx2>>(M, N, K, alpha, A, rsa, csa, B, rsb, csb, beta, C, rsc, csc, {},
                                                   bias);
    default:
      break;
  }
#endif
  gemm_blocked<T, Config<T, Isa::generic>>(M, N, K, alpha, A, rsa, csa, B, rsb, csb, beta, C, rsc, csc, {}, bias);
}

// ---------------------------------------------------------------- a B packed once for many products
namespace {
template <typename T, class Cfg>
void pack_whole_b(int64_t K, int64_t N, const T* B, int64_t rsb, int64_t csb, T* Bp) {
  constexpr int NR = Cfg::NR, KC = Cfg::KC;
  const int64_t kblocks = (K + KC - 1) / KC, npad = (N + NR - 1) / NR * NR;
  for (int64_t kb = 0; kb < kblocks; ++kb) {
    const int64_t pc = K * kb / kblocks, kc = K * (kb + 1) / kblocks - pc;
    pack_b<T, NR, Cfg::kIsa != Isa::generic>(kc, N, B + pc * rsb, rsb, csb, Bp + pc * npad);
  }
}
template <typename T>
int64_t padded_cols(int64_t N) {
  int64_t nr = Blocks<T, Isa::generic>::NR;
#if defined(__x86_64__)
  if (chosen_isa() == Isa::avx512) nr = Blocks<T, Isa::avx512>::NR;
  else if (chosen_isa() == Isa::avx2) nr = Blocks<T, Isa::avx2>::NR;
#endif
  return (N + nr - 1) / nr * nr;
}
}  // namespace

template <typename T>
void PackedB<T>::Free::operator()(T* p) const { std::free(p); }

template <typename T>
PackedB<T>::PackedB(int64_t K, int64_t N, const T* B, int64_t rsb, int64_t csb)
    : K_(std::max<int64_t>(K, 0)), N_(std::max<int64_t>(N, 0)) {
  const size_t bytes = (sizeof(T) * size_t(K_) * size_t(padded_cols<T>(N_)) + 63) / 64 * 64;
  if (bytes == 0) return;
  data_.reset(static_cast<T*>(std::aligned_alloc(64, bytes)));
  if (!data_) throw_out_of_memory(bytes, "packed GEMM operand");
#if defined(__x86_64__)
  switch (chosen_isa()) {
    case Isa::avx512:
      pack_whole_b<T, Config<T, Isa::avx512>>(K_, N_, B, rsb, csb, data_.get());
      return;
    case Isa::avx2:
      pack_whole_b<T, Config<T, Isa::avx2>>(K_, N_, B, rsb, csb, data_.get());
      return;
    default: break;
  }
#endif
  pack_whole_b<T, Config<T, Isa::generic>>(K_, N_, B, rsb, csb, data_.get());
}

template <typename T>
void gemm(int64_t M, T alpha, const T* A, int64_t rsa, int64_t csa, const PackedB<T>& B, T beta, T* C,
          int64_t rsc, int64_t csc) {
  const int64_t N = B.cols(), K = B.rows();
  if (M <= 0 || N <= 0) return;
  if (K <= 0 || alpha == T(0)) return scale_c(M, N, beta, C, rsc, csc);
  const Prepacked<T> pre{B.data(), padded_cols<T>(N), 0};
#if defined(__x86_64__)
  switch (chosen_isa()) {
    case Isa::avx512:
      return gemm_blocked<T, Config<T, Isa::avx512>>(M, N, K, alpha, A, rsa, csa, nullptr, 0, 0, beta, C, rsc, csc,
                                                     pre);
    case Isa::avx2:
      return gemm_blocked<T, Config<T, Isa::avx2>>(M, N, K, alpha, A, rsa, csa, nullptr, 0, 0, beta, C, rsc, csc,
                                                   pre);
    default:
      break;
  }
#endif
  gemm_blocked<T, Config<T, Isa::generic>>(M, N, K, alpha, A, rsa, csa, nullptr, 0, 0, beta, C, rsc, csc, pre);
}

template class PackedB<float>;
template class PackedB<double>;
template void gemm<float>(int64_t, float, const float*, int64_t, int64_t, const PackedB<float>&, float, float*,
                          int64_t, int64_t);
template void gemm<double>(int64_t, double, const double*, int64_t, int64_t, const PackedB<double>&, double,
                           double*, int64_t, int64_t);
template void gemm<float>(int64_t, int64_t, int64_t, float, const float*, int64_t, int64_t,
                          const float*, int64_t, int64_t, float, float*, int64_t, int64_t, const float*);
template void gemm<double>(int64_t, int64_t, int64_t, double, const double*, int64_t, int64_t,
                           const double*, int64_t, int64_t, double, double*, int64_t, int64_t, const double*);

}  // namespace tapegrad
