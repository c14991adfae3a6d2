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
// A head's passes are written once (inlined templates) and compiled for the baseline ISA and,
// through target attributes, for AVX2+FMA and AVX-512 (16 floats a vector for the exps), chosen
// at run time (cpu.h) as rnn.cpp's gate passes are; the GEMMs choose their own kernels.
#include "kernels/attention.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "kernels/cpu.h"
#include "kernels/gemm.h"
#include "kernels/parallel.h"
#include "kernels/vmath.h"

namespace tapegrad {
namespace {

#define TG_INLINE inline __attribute__((always_inline))

// Query rows per block and keys per tile (the one table).
constexpr int64_t kQ = 64, kK = 64;
// Heads x L x S x (D + Dv) multiply-adds below which the heads stay on one thread.
constexpr double kParallelMinWork = 1 << 18;

// s (rows x cols, row stride kK) = q_blk k_tile^T * scale + mask, -inf where causal hides a key.
template <typename T>
TG_INLINE void scores(int64_t rows, int64_t cols, int64_t i0, int64_t j0, int64_t S, int64_t D, const T* q, const T* k,
            const T* mask, bool causal, T scale, T* s) {
  gemm<T>(rows, cols, D, scale, q, D, 1, k, 1, D, T(0), s, kK, 1);
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

// The key tiles query block [i0, i0 + rows) sees: all of them, or up to the diagonal.
inline int64_t key_end(int64_t i0, int64_t rows, int64_t S, bool causal) {
  return causal ? std::min<int64_t>(S, i0 + rows) : S;
}

template <typename T>
TG_INLINE void head_forward(int64_t L, int64_t S, int64_t D, int64_t Dv, const T* q, const T* k, const T* v, const T* mask,
                  bool causal, T scale, T* out, T* lse) {
  std::vector<T> s(kQ * kK), m(kQ), l(kQ), acc(kQ * Dv);
  const T ninf = -std::numeric_limits<T>::infinity();
  for (int64_t i0 = 0; i0 < L; i0 += kQ) {
    const int64_t rows = std::min(kQ, L - i0);
    std::fill(m.begin(), m.end(), ninf);
    std::fill(l.begin(), l.end(), T(0));
    std::fill(acc.begin(), acc.end(), T(0));
    const int64_t send = key_end(i0, rows, S, causal);
    for (int64_t j0 = 0; j0 < send; j0 += kK) {
      const int64_t cols = std::min(kK, send - j0);
      scores(rows, cols, i0, j0, S, D, q + i0 * D, k + j0 * D, mask, causal, scale, s.data());
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
      gemm<T>(rows, Dv, cols, T(1), s.data(), kK, 1, v + j0 * Dv, Dv, 1, T(1), acc.data(), Dv, 1);
    }
    for (int64_t i = 0; i < rows; ++i) {
      const T inv = l[i] > T(0) ? T(1) / l[i] : std::numeric_limits<T>::quiet_NaN();
      for (int64_t d = 0; d < Dv; ++d) out[(i0 + i) * Dv + d] = acc[i * Dv + d] * inv;
      lse[i0 + i] = l[i] > T(0) ? m[i] + std::log(l[i]) : ninf;
    }
  }
}

template <typename T>
TG_INLINE void head_backward(int64_t L, int64_t S, int64_t D, int64_t Dv, const T* q, const T* k, const T* v, const T* mask,
                   bool causal, T scale, const T* out, const T* lse, const T* g, T* dq, T* dk, T* dv) {
  std::vector<T> p(kQ * kK), dp(kQ * kK), delta(L);
  const T ninf = -std::numeric_limits<T>::infinity();
  for (int64_t i = 0; i < L; ++i) {
    T sum = T(0);
    for (int64_t d = 0; d < Dv; ++d) sum += g[i * Dv + d] * out[i * Dv + d];
    delta[i] = lse[i] == ninf ? T(0) : sum;
  }
  std::fill(dq, dq + L * D, T(0));
  std::fill(dk, dk + S * D, T(0));
  std::fill(dv, dv + S * Dv, T(0));
  for (int64_t i0 = 0; i0 < L; i0 += kQ) {
    const int64_t rows = std::min(kQ, L - i0), send = key_end(i0, rows, S, causal);
    for (int64_t j0 = 0; j0 < send; j0 += kK) {
      const int64_t cols = std::min(kK, send - j0);
      scores(rows, cols, i0, j0, S, D, q + i0 * D, k + j0 * D, mask, causal, scale, p.data());
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
      gemm<T>(cols, Dv, rows, T(1), p.data(), 1, kK, g + i0 * Dv, Dv, 1, T(1), dv + j0 * Dv, Dv, 1);
      gemm<T>(rows, cols, Dv, T(1), g + i0 * Dv, Dv, 1, v + j0 * Dv, 1, Dv, T(0), dp.data(), kK, 1);
      for (int64_t i = 0; i < rows; ++i) {
        T *pi = p.data() + i * kK, *di = dp.data() + i * kK;
        const T dl = delta[i0 + i];
#pragma omp simd
        for (int64_t j = 0; j < cols; ++j) di[j] = pi[j] * (di[j] - dl);
      }
      gemm<T>(rows, D, cols, scale, dp.data(), kK, 1, k + j0 * D, D, 1, T(1), dq + i0 * D, D, 1);
      gemm<T>(cols, D, rows, scale, dp.data(), 1, kK, q + i0 * D, D, 1, T(1), dk + j0 * D, D, 1);
    }
  }
}

#define TG_FWD_PARAMS                                                                                       \
  (int64_t L, int64_t S, int64_t D, int64_t Dv, const T* q, const T* k, const T* v, const T* mask, bool causal, \
   T scale, T* out, T* lse)
#define TG_FWD_ARGS (L, S, D, Dv, q, k, v, mask, causal, scale, out, lse)
#define TG_BWD_PARAMS                                                                                       \
  (int64_t L, int64_t S, int64_t D, int64_t Dv, const T* q, const T* k, const T* v, const T* mask, bool causal, \
   T scale, const T* out, const T* lse, const T* g, T* dq, T* dk, T* dv)
#define TG_BWD_ARGS (L, S, D, Dv, q, k, v, mask, causal, scale, out, lse, g, dq, dk, dv)
#define TG_VARIANTS(name, params, args)                                                             \
  template <typename T>                                                                            \
  __attribute__((noinline)) void name##_base params { name<T> args; }                               \
  template <typename T>                                                                            \
  __attribute__((noinline, target("avx2,fma"))) void name##_avx2 params { name<T> args; }           \
  template <typename T>                                                                            \
  __attribute__((noinline, target("avx512f,avx512dq,avx512vl,avx2,fma,prefer-vector-width=512"))) void \
      name##_avx512 params {                                                                      \
    name<T> args;                                                                                  \
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
template <typename T> void head_forward_run TG_FWD_PARAMS { head_forward<T> TG_FWD_ARGS; }
template <typename T> void head_backward_run TG_BWD_PARAMS { head_backward<T> TG_BWD_ARGS; }
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
void attention_forward(int64_t BH, int64_t L, int64_t S, int64_t D, int64_t Dv, const T* q, const T* k,
                       const T* v, const T* mask, int64_t MB, bool causal, T scale, T* out, T* lse) {
  parallel_for(BH, parallel_heads(BH, L, S, D, Dv), [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b)
      head_forward_run<T>(L, S, D, Dv, q + b * L * D, k + b * S * D, v + b * S * Dv,
                      mask ? mask + (MB == 1 ? 0 : b) * L * S : nullptr, causal, scale, out + b * L * Dv, lse + b * L);
  });
}

template <typename T>
void attention_backward(int64_t BH, int64_t L, int64_t S, int64_t D, int64_t Dv, const T* q, const T* k,
                        const T* v, const T* mask, int64_t MB, bool causal, T scale, const T* out, const T* lse,
                        const T* gout, T* dq, T* dk, T* dv) {
  parallel_for(BH, parallel_heads(BH, L, S, D, Dv), [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b)
      head_backward_run<T>(L, S, D, Dv, q + b * L * D, k + b * S * D, v + b * S * Dv,
                       mask ? mask + (MB == 1 ? 0 : b) * L * S : nullptr, causal, scale, out + b * L * Dv, lse + b * L,
                       gout + b * L * Dv, dq + b * L * D, dk + b * S * D, dv + b * S * Dv);
  });
}

#define TG_INSTANTIATE(T)                                                                                         \
  template void attention_forward<T>(int64_t, int64_t, int64_t, int64_t, int64_t, const T*, const T*, const T*,   \
                                     const T*, int64_t, bool, T, T*, T*);                                         \
  template void attention_backward<T>(int64_t, int64_t, int64_t, int64_t, int64_t, const T*, const T*, const T*, \
                                      const T*, int64_t, bool, T, const T*, const T*, const T*, T*, T*, T*);
TG_INSTANTIATE(float)
TG_INSTANTIATE(double)
#undef TG_INSTANTIATE

}  // namespace tapegrad
