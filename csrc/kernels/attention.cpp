// Blocked scaled_dot_product_attention (see attention.h for the layout).
//
//   for each (batch, head)                     one thread; heads split over threads
//     for each block of kQ query rows
//       for each tile of kK keys               (causal: only tiles that reach the diagonal)
//         s = q_blk k_tile^T * scale + mask    GEMM, kQ x kK scores
//         forward:  running max m, sum l, acc = acc * exp(m_old - m) + exp(s - m) v_tile
//         backward: p = exp(s - lse); dv += p^T dO; ds = p (dO v^T - rowsum(dO o));
//                   dq += ds k * scale; dk += ds^T q * scale
//
// Scores, probabilities and their gradients exist one block x tile at a time (kQ x kK), so
// memory does not grow with L x S.
//
// The products are at most kQ x kK x head_dim (64 x 64 x 32 for GPT-2's small heads): too small
// for the general GEMM's packing to pay (it took half the forward's time at that shape), so each
// is written here as rows of C accumulated from rows of B scaled by broadcasts of A (`madd`), in
// registers, B read where it lies; the two products whose B is a transposed tile (k^T for the
// scores, v^T for dP) transpose that tile once into a scratch buffer.
//
// A head's passes are written once (inlined templates) and compiled for the baseline ISA and,
// through target attributes, for AVX2+FMA and AVX-512 (vector width VB bytes: 16, 32, 64),
// chosen at run time (cpu.h) as rnn.cpp's gate passes are.
#include "kernels/attention.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "kernels/cpu.h"
#include "kernels/parallel.h"
#include "kernels/vmath.h"

namespace tapegrad {
namespace {

#define TG_INLINE inline __attribute__((always_inline))

// Query rows per block and keys per tile (the one table); under causal, the products of a tile
// that crosses the diagonal go by sub-blocks of kSub rows (or keys), each over just the keys (or
// rows) it sees: the hidden scores' probabilities are exact zeros, so skipping them changes no
// sum, and a causal 64 x 64 tile costs 5/8 of a full one.
constexpr int64_t kQ = 64, kK = 64, kSub = 16;
// Heads x L x S x (D + Dv) multiply-adds below which the heads stay on one thread.
constexpr double kParallelMinWork = 1 << 18;

// C[m0 .. m0 + rows) x [n0 .. n0 + nv vectors) += alpha * A B (madd's block, in registers).
template <typename T, int VB, int rows, int nv>
TG_INLINE void madd_block(int64_t K, T alpha, const T* A, int64_t ra, int64_t ca, const T* B, int64_t ldb, T* C,
                          int64_t ldc, int64_t m0, int64_t n0) {
  typedef T V __attribute__((vector_size(VB)));
  constexpr int L = VB / int(sizeof(T));
  V acc[rows][nv];
#pragma GCC unroll 4
  for (int i = 0; i < rows; ++i)
#pragma GCC unroll 4
    for (int v = 0; v < nv; ++v) acc[i][v] = V{};
  for (int64_t k = 0; k < K; ++k) {
    V b[nv];
#pragma GCC unroll 4
    for (int v = 0; v < nv; ++v) std::memcpy(&b[v], B + k * ldb + n0 + v * L, sizeof(V));
#pragma GCC unroll 4
    for (int i = 0; i < rows; ++i) {
      const T a = A[(m0 + i) * ra + k * ca];
#pragma GCC unroll 4
      for (int v = 0; v < nv; ++v) acc[i][v] += a * b[v];
    }
  }
#pragma GCC unroll 4
  for (int i = 0; i < rows; ++i)
#pragma GCC unroll 4
    for (int v = 0; v < nv; ++v) {
      V c;
      T* cp = C + (m0 + i) * ldc + n0 + v * L;
      std::memcpy(&c, cp, sizeof(V));
      c += alpha * acc[i][v];
      std::memcpy(cp, &c, sizeof(V));
    }
}

// madd_block over every row of C for columns [n0, n0 + nv vectors), four rows at a time.
template <typename T, int VB, int nv>
TG_INLINE void madd_cols(int64_t M, int64_t K, T alpha, const T* A, int64_t ra, int64_t ca, const T* B, int64_t ldb,
                         T* C, int64_t ldc, int64_t n0) {
  int64_t m0 = 0;
  for (; m0 + 4 <= M; m0 += 4) madd_block<T, VB, 4, nv>(K, alpha, A, ra, ca, B, ldb, C, ldc, m0, n0);
  for (; m0 < M; ++m0) madd_block<T, VB, 1, nv>(K, alpha, A, ra, ca, B, ldb, C, ldc, m0, n0);
}

// C (M x N, row stride ldc) += alpha * A B, where A[m][k] = A[m * ra + k * ca] (any strides: a
// transposed tile is read in place) and B is row-major with row stride ldb. Four rows of C at a
// time, 4 (AVX-512), then 2, then 1 vectors of VB bytes a row, held in registers over the whole
// K loop (4 x 2 vectors: 8 FMA chains, enough to hide the FMA latency); columns past the last
// full vector by a scalar loop. Every C element is one FMA chain over k in order, so the result
// does not depend on M or on the blocking. (Not the general gemm: at these sizes, a block of at
// most kQ x kK x head dim, its packing cost as much as the products.)
template <typename T, int VB>
TG_INLINE void madd(int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t ra, int64_t ca, const T* B,
                    int64_t ldb, T* C, int64_t ldc) {
  constexpr int L = VB / int(sizeof(T));
  int64_t n0 = 0;
  if constexpr (VB == 64)
    for (; n0 + 4 * L <= N; n0 += 4 * L) madd_cols<T, VB, 4>(M, K, alpha, A, ra, ca, B, ldb, C, ldc, n0);
  for (; n0 + 2 * L <= N; n0 += 2 * L) madd_cols<T, VB, 2>(M, K, alpha, A, ra, ca, B, ldb, C, ldc, n0);
  for (; n0 + L <= N; n0 += L) madd_cols<T, VB, 1>(M, K, alpha, A, ra, ca, B, ldb, C, ldc, n0);
  if (n0 < N)
    for (int64_t m = 0; m < M; ++m)
      for (int64_t n = n0; n < N; ++n) {
        T sum = T(0);
        for (int64_t k = 0; k < K; ++k) sum += A[m * ra + k * ca] * B[k * ldb + n];
        C[m * ldc + n] += alpha * sum;
      }
}

// Of a tile's cols keys (from key j0), how many the block rows [i0, i0 + r) see: all without
// causal, else those up to the last row's diagonal.
inline int64_t seen_cols(int64_t r, int64_t i0, int64_t j0, int64_t cols, bool causal) {
  return causal ? std::clamp<int64_t>(i0 + r - j0, 0, cols) : cols;
}

// The first of a block's rows (from query i0) that sees the tile's key c (key j0 + c).
inline int64_t first_row(int64_t c, int64_t i0, int64_t j0, int64_t rows, bool causal) {
  return causal ? std::clamp<int64_t>(j0 + c - i0, 0, rows) : 0;
}

// t (cols x rows, row stride kK) = the rows x cols block of src (row stride ld) transposed.
template <typename T>
TG_INLINE void transpose_tile(int64_t rows, int64_t cols, const T* src, int64_t ld, T* t) {
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) t[c * kK + r] = src[r * ld + c];
}

// s (rows x cols, row stride kK) = q_blk k_tile^T * scale + mask, -inf where causal hides a key;
// kt holds k_tile^T (D x cols, row stride kK).
template <typename T, int VB>
TG_INLINE void scores(int64_t rows, int64_t cols, int64_t i0, int64_t j0, int64_t S, int64_t D, const T* q, int64_t ldq,
                      const T* kt, const T* mask, bool causal, T scale, T* s) {
  for (int64_t r0 = 0; r0 < rows; r0 += kSub) {  // the columns no row of the sub-block sees: -inf below
    const int64_t r1 = std::min(rows, r0 + kSub), n = seen_cols(r1, i0, j0, cols, causal);
    for (int64_t i = r0; i < r1; ++i) std::fill(s + i * kK, s + i * kK + n, T(0));
    madd<T, VB>(r1 - r0, n, D, scale, q + r0 * ldq, ldq, 1, kt, kK, s + r0 * kK, kK);
  }
  const T ninf = -std::numeric_limits<T>::infinity();
  for (int64_t i = 0; i < rows; ++i) {
    T* si = s + i * kK;
    if (mask) {
      const T* mi = mask + (i0 + i) * S + j0;
      for (int64_t j = 0; j < cols; ++j) si[j] += mi[j];
    }
    if (causal)
      for (int64_t j = std::max<int64_t>(0, i0 + i - j0 + 1); j < cols; ++j) si[j] = ninf;
  }
}

// C (rows x N) += alpha * A B with A rows x cols (row stride kK) a block's probabilities (or their
// gradients), B the tile's rows: each sub-block of rows sums only over the keys it sees.
template <typename T, int VB>
TG_INLINE void madd_rows_seen(int64_t rows, int64_t cols, int64_t N, int64_t i0, int64_t j0, bool causal, T alpha,
                              const T* A, const T* B, int64_t ldb, T* C, int64_t ldc) {
  for (int64_t r0 = 0; r0 < rows; r0 += kSub) {
    const int64_t r1 = std::min(rows, r0 + kSub);
    madd<T, VB>(r1 - r0, N, seen_cols(r1, i0, j0, cols, causal), alpha, A + r0 * kK, kK, 1, B, ldb, C + r0 * ldc, ldc);
  }
}

// C (cols x N) += alpha * A^T B with A as above, B the block's rows: each sub-block of keys sums
// only over the rows that see it.
template <typename T, int VB>
TG_INLINE void madd_keys_seen(int64_t rows, int64_t cols, int64_t N, int64_t i0, int64_t j0, bool causal, T alpha,
                              const T* A, const T* B, int64_t ldb, T* C, int64_t ldc) {
  for (int64_t c0 = 0; c0 < cols; c0 += kSub) {
    const int64_t c1 = std::min(cols, c0 + kSub), r = first_row(c0, i0, j0, rows, causal);
    madd<T, VB>(c1 - c0, N, rows - r, alpha, A + r * kK + c0, 1, kK, B + r * ldb, ldb, C + c0 * ldc, ldc);
  }
}

// The key tiles query block [i0, i0 + rows) sees: all of them, or up to the diagonal.
inline int64_t key_end(int64_t i0, int64_t rows, int64_t S, bool causal) {
  return causal ? std::min<int64_t>(S, i0 + rows) : S;
}

template <typename T, int VB>
TG_INLINE void head_forward(int64_t L, int64_t S, int64_t D, int64_t Dv, const T* q, int64_t ldq, const T* k,
                            int64_t ldk, const T* v, int64_t ldv, const T* mask, bool causal, T scale, T* out,
                            int64_t ldo, T* lse) {
  std::vector<T> s(kQ * kK), m(kQ), l(kQ), acc(kQ * Dv), kt(D * kK);
  const T ninf = -std::numeric_limits<T>::infinity();
  for (int64_t i0 = 0; i0 < L; i0 += kQ) {
    const int64_t rows = std::min(kQ, L - i0);
    std::fill(m.begin(), m.end(), ninf);
    std::fill(l.begin(), l.end(), T(0));
    std::fill(acc.begin(), acc.end(), T(0));
    const int64_t send = key_end(i0, rows, S, causal);
    for (int64_t j0 = 0; j0 < send; j0 += kK) {
      const int64_t cols = std::min(kK, send - j0);
      transpose_tile(cols, D, k + j0 * ldk, ldk, kt.data());
      scores<T, VB>(rows, cols, i0, j0, S, D, q + i0 * ldq, ldq, kt.data(), mask, causal, scale, s.data());
      for (int64_t i = 0; i < rows; ++i) {
        T* si = s.data() + i * kK;
        T mx = m[i];
#pragma omp simd reduction(max : mx)
        for (int64_t j = 0; j < cols; ++j) mx = si[j] > mx ? si[j] : mx;
        if (mx == ninf) {  // nothing seen yet: this tile adds nothing
          std::fill(si, si + cols, T(0));
          continue;
        }
        const T rescale = vmath::exp(m[i] - mx);  // 0 when m[i] is -inf
        T sum = T(0);
#pragma omp simd reduction(+ : sum)
        for (int64_t j = 0; j < cols; ++j) {
          si[j] = vmath::exp(si[j] - mx);
          sum += si[j];
        }
        l[i] = l[i] * rescale + sum;
        m[i] = mx;
        T* ai = acc.data() + i * Dv;
        for (int64_t d = 0; d < Dv; ++d) ai[d] *= rescale;
      }
      madd_rows_seen<T, VB>(rows, cols, Dv, i0, j0, causal, T(1), s.data(), v + j0 * ldv, ldv, acc.data(), Dv);
    }
    for (int64_t i = 0; i < rows; ++i) {
      const T inv = l[i] > T(0) ? T(1) / l[i] : T(0);  // no key to attend to: zeros, as PyTorch's safe softmax
      for (int64_t d = 0; d < Dv; ++d) out[(i0 + i) * ldo + d] = acc[i * Dv + d] * inv;
      lse[i0 + i] = l[i] > T(0) ? m[i] + std::log(l[i]) : ninf;
    }
  }
}

template <typename T, int VB>
TG_INLINE void head_backward(int64_t L, int64_t S, int64_t D, int64_t Dv, const T* q, int64_t ldq, const T* k,
                             int64_t ldk, const T* v, int64_t ldv, const T* mask, bool causal, T scale, const T* out,
                             int64_t ldo, const T* lse, const T* g, int64_t ldg, T* dq, T* dk, T* dv) {
  std::vector<T> p(kQ * kK), dp(kQ * kK), delta(L), kt(D * kK), vt(Dv * kK);
  const T ninf = -std::numeric_limits<T>::infinity();
  for (int64_t i = 0; i < L; ++i) {
    T sum = T(0);
    for (int64_t d = 0; d < Dv; ++d) sum += g[i * ldg + d] * out[i * ldo + d];
    delta[i] = lse[i] == ninf ? T(0) : sum;
  }
  std::fill(dq, dq + L * D, T(0));
  std::fill(dk, dk + S * D, T(0));
  std::fill(dv, dv + S * Dv, T(0));
  for (int64_t i0 = 0; i0 < L; i0 += kQ) {
    const int64_t rows = std::min(kQ, L - i0), send = key_end(i0, rows, S, causal);
    for (int64_t j0 = 0; j0 < send; j0 += kK) {
      const int64_t cols = std::min(kK, send - j0);
      transpose_tile(cols, D, k + j0 * ldk, ldk, kt.data());
      scores<T, VB>(rows, cols, i0, j0, S, D, q + i0 * ldq, ldq, kt.data(), mask, causal, scale, p.data());
      for (int64_t i = 0; i < rows; ++i) {
        T* pi = p.data() + i * kK;
        const T li = lse[i0 + i];
        if (li == ninf) {  // a row that saw no key has no gradient
          std::fill(pi, pi + cols, T(0));
          continue;
        }
#pragma omp simd
        for (int64_t j = 0; j < cols; ++j) pi[j] = vmath::exp(pi[j] - li);
      }
      // dv_tile += p^T g_blk; dp = g_blk v_tile^T
      madd_keys_seen<T, VB>(rows, cols, Dv, i0, j0, causal, T(1), p.data(), g + i0 * ldg, ldg, dv + j0 * Dv, Dv);
      transpose_tile(cols, Dv, v + j0 * ldv, ldv, vt.data());
      for (int64_t i = 0; i < rows; ++i) std::fill(dp.data() + i * kK, dp.data() + i * kK + cols, T(0));
      for (int64_t r0 = 0; r0 < rows; r0 += kSub) {  // dp stays 0 where p is: ds = p (dp - delta) is 0 there
        const int64_t r1 = std::min(rows, r0 + kSub);
        madd<T, VB>(r1 - r0, seen_cols(r1, i0, j0, cols, causal), Dv, T(1), g + (i0 + r0) * ldg, ldg, 1, vt.data(),
                    kK, dp.data() + r0 * kK, kK);
      }
      for (int64_t i = 0; i < rows; ++i) {
        T *pi = p.data() + i * kK, *di = dp.data() + i * kK;
        const T dl = delta[i0 + i];
#pragma omp simd
        for (int64_t j = 0; j < cols; ++j) di[j] = pi[j] * (di[j] - dl);
      }
      madd_rows_seen<T, VB>(rows, cols, D, i0, j0, causal, scale, dp.data(), k + j0 * ldk, ldk, dq + i0 * D, D);
      madd_keys_seen<T, VB>(rows, cols, D, i0, j0, causal, scale, dp.data(), q + i0 * ldq, ldq, dk + j0 * D, D);
    }
  }
}

#define TG_FWD_PARAMS                                                                                       \
  (int64_t L, int64_t S, int64_t D, int64_t Dv, const T* q, int64_t ldq, const T* k, int64_t ldk, const T* v, \
   int64_t ldv, const T* mask, bool causal, T scale, T* out, int64_t ldo, T* lse)
#define TG_FWD_ARGS (L, S, D, Dv, q, ldq, k, ldk, v, ldv, mask, causal, scale, out, ldo, lse)
#define TG_BWD_PARAMS                                                                                       \
  (int64_t L, int64_t S, int64_t D, int64_t Dv, const T* q, int64_t ldq, const T* k, int64_t ldk, const T* v, \
   int64_t ldv, const T* mask, bool causal, T scale, const T* out, int64_t ldo, const T* lse, const T* g,        \
   int64_t ldg, T* dq, T* dk, T* dv)
#define TG_BWD_ARGS (L, S, D, Dv, q, ldq, k, ldk, v, ldv, mask, causal, scale, out, ldo, lse, g, ldg, dq, dk, dv)
#define TG_VARIANTS(name, params, args)                                                             \
  template <typename T>                                                                            \
  __attribute__((noinline)) void name##_base params { name<T, 16> args; }                           \
  template <typename T>                                                                            \
  __attribute__((noinline, target("avx2,fma"))) void name##_avx2 params { name<T, 32> args; }       \
  template <typename T>                                                                            \
  __attribute__((noinline, target("avx512f,avx512dq,avx512vl,avx2,fma,prefer-vector-width=512"))) void \
      name##_avx512 params {                                                                      \
    name<T, 64> args;                                                                              \
  }                                                                                                \
  template <typename T>                                                                            \
  void name##_run params {                                                                         \
    switch (kernel_isa(Kernel::attention)) {                                                       \
      case Isa::avx512: return name##_avx512<T> args;                                              \
      case Isa::avx2: return name##_avx2<T> args;                                                  \
      default: return name##_base<T> args;                                                         \
    }                                                                                              \
  }
#if defined(__x86_64__)
TG_VARIANTS(head_forward, TG_FWD_PARAMS, TG_FWD_ARGS)
TG_VARIANTS(head_backward, TG_BWD_PARAMS, TG_BWD_ARGS)
#else
template <typename T> void head_forward_run TG_FWD_PARAMS { head_forward<T, 16> TG_FWD_ARGS; }
template <typename T> void head_backward_run TG_BWD_PARAMS { head_backward<T, 16> TG_BWD_ARGS; }
#endif
#undef TG_VARIANTS
#undef TG_FWD_PARAMS
#undef TG_FWD_ARGS
#undef TG_BWD_PARAMS
#undef TG_BWD_ARGS

bool parallel_heads(int64_t BH, int64_t L, int64_t S, int64_t D, int64_t Dv) {
  return double(BH) * double(L) * double(S) * double(D + Dv) >= kParallelMinWork;
}

}  // namespace

template <typename T>
void attention_forward(int64_t BH, int64_t L, int64_t S, int64_t D, int64_t Dv, Heads<T> q, Heads<T> k, Heads<T> v,
                       const T* mask, int64_t MB, bool causal, T scale, OutHeads<T> out, T* lse) {
  parallel_for(BH, parallel_heads(BH, L, S, D, Dv), [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b)
      head_forward_run<T>(L, S, D, Dv, q.head(b), q.ld, k.head(b), k.ld, v.head(b), v.ld,
                          mask ? mask + (MB == 1 ? 0 : b) * L * S : nullptr, causal, scale, out.head(b), out.ld,
                          lse + b * L);
  });
}

template <typename T>
void attention_backward(int64_t BH, int64_t L, int64_t S, int64_t D, int64_t Dv, Heads<T> q, Heads<T> k, Heads<T> v,
                        const T* mask, int64_t MB, bool causal, T scale, Heads<T> out, const T* lse, Heads<T> gout,
                        T* dq, T* dk, T* dv) {
  parallel_for(BH, parallel_heads(BH, L, S, D, Dv), [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b)
      head_backward_run<T>(L, S, D, Dv, q.head(b), q.ld, k.head(b), k.ld, v.head(b), v.ld,
                           mask ? mask + (MB == 1 ? 0 : b) * L * S : nullptr, causal, scale, out.head(b), out.ld,
                           lse + b * L, gout.head(b), gout.ld, dq + b * L * D, dk + b * S * D, dv + b * S * Dv);
  });
}

#define TG_INSTANTIATE(T)                                                                                         \
  template void attention_forward<T>(int64_t, int64_t, int64_t, int64_t, int64_t, Heads<T>, Heads<T>, Heads<T>, \
                                     const T*, int64_t, bool, T, OutHeads<T>, T*);                                \
  template void attention_backward<T>(int64_t, int64_t, int64_t, int64_t, int64_t, Heads<T>, Heads<T>, Heads<T>, \
                                      const T*, int64_t, bool, T, Heads<T>, const T*, Heads<T>, T*, T*, T*);
TG_INSTANTIATE(float)
TG_INSTANTIATE(double)
#undef TG_INSTANTIATE

}  // namespace tapegrad
