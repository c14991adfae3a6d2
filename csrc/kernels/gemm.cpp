// GEMM, BLIS-style: five loops around a register-blocked micro-kernel on packed panels.
//
//   for jc in N step NC          B panel  (KC x NC)  -> L3, shared by all threads
//     for pc in K step KC        (K is never split across threads: determinism)
//       pack B[pc:, jc:]         into NR-wide micro-panels, zero-padded
//       for ic in M step MC      A block  (MC x KC)  -> L2, one per thread
//         pack A[ic:, pc:]       into MR-tall micro-panels, zero-padded
//         for jr in NC step NR   B micro-panel (KC x NR) -> L1
//           for ir in MC step MR micro-kernel: MR x NR accumulators in registers
//
// Threads split the M x NC block of C (whole MR/NR micro-tiles) and never K, and the
// blocking does not depend on the thread count, so every C element is summed in the same
// order whatever the partition: results are bit-identical for any number of threads.
// The AVX2+FMA micro-kernels are compiled with target attributes and chosen at run time;
// a portable micro-kernel serves other CPUs (TAPEGRAD_GEMM_KERNEL=generic forces it).
#include "kernels/gemm.h"

#include <omp.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <new>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace tapegrad {
namespace {

// ---------------------------------------------------------------- block sizes (the one table)
// MR x NR: micro-tile held in registers. KC: depth of a packed panel (a KC x NR B micro-panel
// stays in L1). MC x KC: packed A block, kept in L2. KC x NC: packed B panel, in L3.
// MC is a multiple of MR and NC of NR. Tuned on AMD EPYC (Zen 3/4: 32 KiB L1d, >= 512 KiB L2).
enum class Isa { generic, avx2 };
template <typename T, Isa I> struct Blocks;
//                                                        MR   NR    KC    MC    NC
template <> struct Blocks<float, Isa::avx2>    { enum {   MR = 6, NR = 16, KC = 256, MC = 144, NC = 4080 }; };
template <> struct Blocks<double, Isa::avx2>   { enum {   MR = 6, NR = 8,  KC = 256, MC = 72,  NC = 4080 }; };
template <> struct Blocks<float, Isa::generic> { enum {   MR = 4, NR = 8,  KC = 256, MC = 128, NC = 2048 }; };
template <> struct Blocks<double, Isa::generic>{ enum {   MR = 4, NR = 4,  KC = 256, MC = 64,  NC = 2048 }; };

// Below this many multiply-adds a call runs on one thread: a parallel region costs more.
constexpr double kParallelMinWork = 64.0 * 64.0 * 64.0;

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
      if (!p_) { cap_ = 0; throw std::bad_alloc(); }
    }
    return p_;
  }
 private:
  void* p_ = nullptr;
  size_t cap_ = 0;
};
thread_local Scratch tls_pack_a, tls_pack_b;

// ---------------------------------------------------------------- packing
// A block (mc x kc, any strides) -> ceil(mc/MR) micro-panels; panel r holds rows r*MR..r*MR+MR-1
// column after column: element (i, p) at r*MR*kc + p*MR + i. Rows past mc are zero.
template <typename T, int MR>
void pack_a(int64_t mc, int64_t kc, const T* A, int64_t rsa, int64_t csa, T* Ap) {
  for (int64_t ir = 0; ir < mc; ir += MR, Ap += MR * kc) {
    const T* a = A + ir * rsa;
    const int64_t m = std::min<int64_t>(MR, mc - ir);
    if (m == MR && rsa == 1) {            // column-major A: each column slice is contiguous
      for (int64_t p = 0; p < kc; ++p)
        for (int i = 0; i < MR; ++i) Ap[p * MR + i] = a[p * csa + i];
    } else if (m == MR && csa == 1) {     // row-major A: MR contiguous row streams
      for (int64_t p = 0; p < kc; ++p)
        for (int i = 0; i < MR; ++i) Ap[p * MR + i] = a[i * rsa + p];
    } else {
      for (int64_t p = 0; p < kc; ++p)
        for (int i = 0; i < MR; ++i) Ap[p * MR + i] = i < m ? a[i * rsa + p * csa] : T(0);
    }
  }
}

// B panel (kc x nc, any strides) -> ceil(nc/NR) micro-panels ps elements apart; panel r holds
// columns r*NR..r*NR+NR-1 row after row: element (p, j) at r*ps + p*NR + j. Columns past nc are
// zero. (ps = NR*KC, not NR*kc, so a thread's panels never move when kc shrinks at the K edge.)
template <typename T, int NR>
void pack_b(int64_t kc, int64_t nc, const T* B, int64_t rsb, int64_t csb, T* Bp, int64_t ps) {
  for (int64_t jr = 0; jr < nc; jr += NR, Bp += ps) {
    const T* b = B + jr * csb;
    const int64_t n = std::min<int64_t>(NR, nc - jr);
    if (n == NR && csb == 1) {            // row-major B: each row slice is contiguous
      for (int64_t p = 0; p < kc; ++p)
        for (int j = 0; j < NR; ++j) Bp[p * NR + j] = b[p * rsb + j];
    } else if (n == NR && rsb == 1) {     // column-major B: NR contiguous column streams
      for (int j = 0; j < NR; ++j)
        for (int64_t p = 0; p < kc; ++p) Bp[p * NR + j] = b[j * csb + p];
    } else {
      for (int64_t p = 0; p < kc; ++p)
        for (int j = 0; j < NR; ++j) Bp[p * NR + j] = j < n ? b[p * rsb + j * csb] : T(0);
    }
  }
}

// ---------------------------------------------------------------- micro-kernels
// Contract for every micro-kernel: A is one packed MR x kc micro-panel, B one packed kc x NR
// micro-panel (64-byte aligned), C a full MR x NR tile with unit column stride and row stride
// rsc. C = alpha * (A @ B) + beta * C, and C is not read when beta == 0.

// Portable: plain loops the compiler vectorises for whatever the baseline ISA is.
template <typename T, int MR, int NR>
void ukernel_generic(int64_t kc, const T* __restrict A, const T* __restrict B, T* __restrict C,
                     int64_t rsc, T alpha, T beta) {
  T acc[MR][NR] = {};
  for (int64_t p = 0; p < kc; ++p, A += MR, B += NR)
    for (int i = 0; i < MR; ++i)
      for (int j = 0; j < NR; ++j) acc[i][j] += A[i] * B[j];
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < NR; ++j)
      C[i * rsc + j] = beta == T(0) ? alpha * acc[i][j] : alpha * acc[i][j] + beta * C[i * rsc + j];
}

#if defined(__x86_64__)
#define TG_AVX2 __attribute__((target("avx2,fma")))

// float 6 x 16: 12 ymm accumulators + 2 for the B row + 1 broadcast of A = 15 of 16 registers.
TG_AVX2 void ukernel_avx2_f32(int64_t kc, const float* __restrict A, const float* __restrict B,
                              float* __restrict C, int64_t rsc, float alpha, float beta) {
  __m256 c00 = _mm256_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00;
  __m256 c30 = c00, c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00;
#define TG_ROW(i)                                              \
  a = _mm256_broadcast_ss(A + i);                              \
  c##i##0 = _mm256_fmadd_ps(a, b0, c##i##0);                   \
  c##i##1 = _mm256_fmadd_ps(a, b1, c##i##1);
#pragma GCC unroll 4
  for (int64_t p = 0; p < kc; ++p) {
    const __m256 b0 = _mm256_load_ps(B), b1 = _mm256_load_ps(B + 8);
    __m256 a;
    TG_ROW(0) TG_ROW(1) TG_ROW(2) TG_ROW(3) TG_ROW(4) TG_ROW(5)
    A += 6;
    B += 16;
  }
#undef TG_ROW
  const __m256 va = _mm256_set1_ps(alpha), vb = _mm256_set1_ps(beta);
#define TG_STORE(i)                                                                        \
  if (beta == 0.0f) {                                                                      \
    _mm256_storeu_ps(C + i * rsc, _mm256_mul_ps(va, c##i##0));                             \
    _mm256_storeu_ps(C + i * rsc + 8, _mm256_mul_ps(va, c##i##1));                         \
  } else {                                                                                 \
    _mm256_storeu_ps(C + i * rsc, _mm256_fmadd_ps(vb, _mm256_loadu_ps(C + i * rsc),        \
                                                  _mm256_mul_ps(va, c##i##0)));            \
    _mm256_storeu_ps(C + i * rsc + 8, _mm256_fmadd_ps(vb, _mm256_loadu_ps(C + i * rsc + 8), \
                                                      _mm256_mul_ps(va, c##i##1)));        \
  }
  TG_STORE(0) TG_STORE(1) TG_STORE(2) TG_STORE(3) TG_STORE(4) TG_STORE(5)
#undef TG_STORE
}

// double 6 x 8: the same register budget with 4 lanes per ymm.
TG_AVX2 void ukernel_avx2_f64(int64_t kc, const double* __restrict A, const double* __restrict B,
                              double* __restrict C, int64_t rsc, double alpha, double beta) {
  __m256d c00 = _mm256_setzero_pd(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00;
  __m256d c30 = c00, c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00;
#define TG_ROW(i)                                              \
  a = _mm256_broadcast_sd(A + i);                              \
  c##i##0 = _mm256_fmadd_pd(a, b0, c##i##0);                   \
  c##i##1 = _mm256_fmadd_pd(a, b1, c##i##1);
#pragma GCC unroll 4
  for (int64_t p = 0; p < kc; ++p) {
    const __m256d b0 = _mm256_load_pd(B), b1 = _mm256_load_pd(B + 4);
    __m256d a;
    TG_ROW(0) TG_ROW(1) TG_ROW(2) TG_ROW(3) TG_ROW(4) TG_ROW(5)
    A += 6;
    B += 8;
  }
#undef TG_ROW
  const __m256d va = _mm256_set1_pd(alpha), vb = _mm256_set1_pd(beta);
#define TG_STORE(i)                                                                        \
  if (beta == 0.0) {                                                                       \
    _mm256_storeu_pd(C + i * rsc, _mm256_mul_pd(va, c##i##0));                             \
    _mm256_storeu_pd(C + i * rsc + 4, _mm256_mul_pd(va, c##i##1));                         \
  } else {                                                                                 \
    _mm256_storeu_pd(C + i * rsc, _mm256_fmadd_pd(vb, _mm256_loadu_pd(C + i * rsc),        \
                                                  _mm256_mul_pd(va, c##i##0)));            \
    _mm256_storeu_pd(C + i * rsc + 4, _mm256_fmadd_pd(vb, _mm256_loadu_pd(C + i * rsc + 4), \
                                                      _mm256_mul_pd(va, c##i##1)));        \
  }
  TG_STORE(0) TG_STORE(1) TG_STORE(2) TG_STORE(3) TG_STORE(4) TG_STORE(5)
#undef TG_STORE
}
#undef TG_AVX2
#endif  // __x86_64__

// One kernel configuration: blocking from the table plus its micro-kernel.
template <typename T, Isa I> struct Config;
template <typename T> struct Config<T, Isa::generic> : Blocks<T, Isa::generic> {
  static void ukernel(int64_t kc, const T* A, const T* B, T* C, int64_t rsc, T alpha, T beta) {
    ukernel_generic<T, Blocks<T, Isa::generic>::MR, Blocks<T, Isa::generic>::NR>(kc, A, B, C, rsc,
                                                                                   alpha, beta);
  }
};
#if defined(__x86_64__)
template <> struct Config<float, Isa::avx2> : Blocks<float, Isa::avx2> {
  static void ukernel(int64_t kc, const float* A, const float* B, float* C, int64_t rsc, float alpha,
                      float beta) { ukernel_avx2_f32(kc, A, B, C, rsc, alpha, beta); }
};
template <> struct Config<double, Isa::avx2> : Blocks<double, Isa::avx2> {
  static void ukernel(int64_t kc, const double* A, const double* B, double* C, int64_t rsc,
                      double alpha, double beta) { ukernel_avx2_f64(kc, A, B, C, rsc, alpha, beta); }
};
#endif

// One micro-tile of C (m <= MR rows, n <= NR columns, column stride csc). Partial tiles and
// tiles with non-unit column stride go through a temporary full tile, so the arithmetic is
// always the micro-kernel's own and an element's value never depends on which tile it is in.
template <typename T, class Cfg>
inline void tile(int64_t m, int64_t n, int64_t kc, const T* Ap, const T* Bp, T* C, int64_t rsc,
                 int64_t csc, T alpha, T beta) {
  constexpr int MR = Cfg::MR, NR = Cfg::NR;
  if (m == MR && n == NR && csc == 1) {
    Cfg::ukernel(kc, Ap, Bp, C, rsc, alpha, beta);
    return;
  }
  alignas(64) T t[MR * NR] = {};
  if (beta != T(0))
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < n; ++j) t[i * NR + j] = C[i * rsc + j * csc];
  Cfg::ukernel(kc, Ap, Bp, t, NR, alpha, beta);
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) C[i * rsc + j * csc] = t[i * NR + j];
}

// Split nt threads into tm (along M) x tn (along N) so the busiest thread has the fewest
// micro-tiles, counting an A-block repack for each thread that shares rows with another.
void partition(int nt, int64_t mpanels, int64_t npanels, int& tm, int& tn) {
  double best = -1;
  for (int m = 1; m <= nt; ++m) {
    if (nt % m) continue;
    const int n = nt / m;
    const double rows = double((mpanels + m - 1) / m), cols = double((npanels + n - 1) / n);
    const double cost = rows * cols + rows * 0.5;  // tiles + A packing (~half a tile per panel)
    if (best < 0 || cost < best) { best = cost; tm = m; tn = n; }
  }
}

template <typename T, class Cfg>
void gemm_blocked(int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t rsa, int64_t csa,
                  const T* B, int64_t rsb, int64_t csb, T beta, T* C, int64_t rsc, int64_t csc) {
  constexpr int MR = Cfg::MR, NR = Cfg::NR, KC = Cfg::KC, MC = Cfg::MC, NC = Cfg::NC;
  const int64_t mpanels = (M + MR - 1) / MR;
  const int64_t kc_max = std::min<int64_t>(K, KC);
  const int64_t nc_max = std::min<int64_t>(N, NC);
  const int64_t npanels_max = (nc_max + NR - 1) / NR;
  const int64_t ps = NR * kc_max;  // B micro-panel stride in the packed buffer

  int nt = 1;
  if (!omp_in_parallel() && double(M) * double(N) * double(K) >= kParallelMinWork)
    nt = int(std::min<int64_t>(omp_get_max_threads(), mpanels * npanels_max));
  int tm = 1, tn = 1;
  partition(nt, mpanels, npanels_max, tm, tn);

  T* Bp = static_cast<T*>(tls_pack_b.get(sizeof(T) * size_t(kc_max) * size_t(npanels_max) * NR));
  const size_t a_bytes = sizeof(T) * size_t(kc_max) * size_t(std::min<int64_t>(mpanels * MR, MC));

#pragma omp parallel num_threads(nt) if (nt > 1)
  {
    const int tid = omp_get_thread_num();
    const int it = tid / tn, jt = tid % tn;  // this thread's row and column in the tm x tn grid
    T* Ap = static_cast<T*>(tls_pack_a.get(a_bytes));
    // This thread's rows of C, in whole MR panels: [m0, m1).
    const int64_t m0 = std::min<int64_t>(M, mpanels * it / tm * MR);
    const int64_t m1 = std::min<int64_t>(M, mpanels * (it + 1) / tm * MR);

    // Layout: C is M x N with strides (rsc, csc), csc == 1 on the fast path; A and B any strides.
    for (int64_t jc = 0; jc < N; jc += NC) {
      const int64_t nc = std::min<int64_t>(NC, N - jc);
      const int64_t np = (nc + NR - 1) / NR;
      // This thread's NR panels of the block: [p0, p1).
      const int64_t p0 = np * jt / tn, p1 = np * (jt + 1) / tn;
      for (int64_t pc = 0; pc < K; pc += KC) {
        const int64_t kc = std::min<int64_t>(KC, K - pc);
        const T beta_pc = pc == 0 ? beta : T(1);  // later K blocks accumulate onto C
        // Pack B[pc:pc+kc, jc:jc+nc]. With one thread row (tm == 1) each thread packs and
        // reads only its own panels: no barrier. Otherwise all threads pack a share of all panels.
        const int64_t q0 = tm == 1 ? p0 : np * tid / nt, q1 = tm == 1 ? p1 : np * (tid + 1) / nt;
        if (q1 > q0)
          pack_b<T, NR>(kc, std::min(nc, q1 * NR) - q0 * NR, B + pc * rsb + (jc + q0 * NR) * csb,
                        rsb, csb, Bp + q0 * ps, ps);
        if (tm > 1) {
#pragma omp barrier
        }
        // Layout: packed panels from pack_a / pack_b; C tile (ic+ir, jc+jr) at rsc/csc strides.
        for (int64_t ic = m0; ic < m1; ic += MC) {
          const int64_t mc = std::min<int64_t>(MC, m1 - ic);
          pack_a<T, MR>(mc, kc, A + ic * rsa + pc * csa, rsa, csa, Ap);
          for (int64_t jp = p0; jp < p1; ++jp) {
            const int64_t jr = jp * NR, n = std::min<int64_t>(NR, nc - jr);
            const T* b = Bp + jp * ps;
            for (int64_t ir = 0; ir < mc; ir += MR)
              tile<T, Cfg>(std::min<int64_t>(MR, mc - ir), n, kc, Ap + ir * kc, b,
                           C + (ic + ir) * rsc + (jc + jr) * csc, rsc, csc, alpha, beta_pc);
          }
        }
        if (tm > 1) {
#pragma omp barrier
        }
      }
    }
  }
}

// C = beta * C, for K == 0 or alpha == 0 (A and B are not read, as in BLAS).
template <typename T>
void scale_c(int64_t M, int64_t N, T beta, T* C, int64_t rsc, int64_t csc) {
  if (beta == T(1)) return;
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = 0; j < N; ++j) C[i * rsc + j * csc] = beta == T(0) ? T(0) : beta * C[i * rsc + j * csc];
}

bool use_avx2() {
#if defined(__x86_64__)
  static const bool yes = [] {
    const char* env = std::getenv("TAPEGRAD_GEMM_KERNEL");
    if (env && std::strcmp(env, "generic") == 0) return false;
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  }();
  return yes;
#else
  return false;
#endif
}

}  // namespace

const char* gemm_kernel_name() { return use_avx2() ? "avx2" : "generic"; }

template <typename T>
void gemm(int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t rsa, int64_t csa,
          const T* B, int64_t rsb, int64_t csb, T beta, T* C, int64_t rsc, int64_t csc) {
  if (M <= 0 || N <= 0) return;
  if (K <= 0 || alpha == T(0)) return scale_c(M, N, beta, C, rsc, csc);
  // The micro-kernel stores rows of C; for a column-major C compute C^T = B^T A^T instead.
  if (csc != 1 && rsc == 1) {
    std::swap(M, N);
    std::swap(A, B);
    std::swap(rsa, csb);
    std::swap(csa, rsb);
    std::swap(rsc, csc);
  }
#if defined(__x86_64__)
  if (use_avx2())
    return gemm_blocked<T, Config<T, Isa::avx2>>(M, N, K, alpha, A, rsa, csa, B, rsb, csb, beta, C,
                                                 rsc, csc);
#endif
  gemm_blocked<T, Config<T, Isa::generic>>(M, N, K, alpha, A, rsa, csa, B, rsb, csb, beta, C, rsc,
                                           csc);
}

template void gemm<float>(int64_t, int64_t, int64_t, float, const float*, int64_t, int64_t,
                          const float*, int64_t, int64_t, float, float*, int64_t, int64_t);
template void gemm<double>(int64_t, int64_t, int64_t, double, const double*, int64_t, int64_t,
                           const double*, int64_t, int64_t, double, double*, int64_t, int64_t);

}  // namespace tapegrad
