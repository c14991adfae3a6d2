// Fused LSTM and GRU layers (see rnn.h for the layout).
//
// Per step: one GEMM writes h W_hh^T, then one pass over the step's rows adds the input
// projection, applies the gates' nonlinearities and updates the state. W_hh
// is packed for the GEMM once per call (PackedB), not at every step: with B = 20 rows a step's
// product is too short to pay for re-packing the whole weight. The
// backward runs the steps in the opposite order with one pass per step for the gates'
// gradients and one GEMM for the gradient flowing into the previous h; the weight's gradient
// is a single (gates x N) @ (N x H) GEMM over all steps at the end, instead of a rank-B update
// per step.
#include "kernels/rnn.h"

#include <algorithm>
#include <cstring>
#include <vector>

#include "kernels/cpu.h"
#include "kernels/gemm.h"
#include "kernels/parallel.h"
#include "kernels/vmath.h"

namespace tapegrad {
namespace {

// Rows x H elements below which a step's gate pass stays on one thread.
constexpr int64_t kParallelMinElems = 1 << 15;

// The first row of every step in the packed layout.
std::vector<int64_t> offsets(int64_t S, const int64_t* n) {
  std::vector<int64_t> off(S + 1, 0);
  for (int64_t t = 0; t < S; ++t) off[t + 1] = off[t] + n[t];
  return off;
}

#define TG_INLINE inline __attribute__((always_inline))

bool use_avx2() { return kernel_isa(Kernel::rnn) >= Isa::avx2; }
bool use_avx512() { return kernel_isa(Kernel::rnn) == Isa::avx512; }

// Each gate pass is a loop body written once (an inlined template over rows [r0, r1)) and
// compiled three times: for the baseline ISA and, through target attributes, for AVX2+FMA and
// AVX-512 (twice the lanes for the exps and tanhs of the gates), chosen at run time (cpu.h).
// The choice is made once per process, so a result never depends on the thread count. The pass
// over a step's rows is split over threads when there are enough elements.
#if defined(__x86_64__)
#define TG_GATE_PASS(NAME)                                                                        \
  template <typename T>                                                                           \
  void NAME##_base(const NAME##_args<T>& a, int64_t r0, int64_t r1) { NAME<T>(a, r0, r1); }      \
  template <typename T>                                                                           \
  __attribute__((target("avx2,fma"))) void NAME##_avx2(const NAME##_args<T>& a, int64_t r0, int64_t r1) { \
    NAME<T>(a, r0, r1);                                                                           \
  }                                                                                               \
  template <typename T>                                                                           \
  __attribute__((target("avx512f,avx2,fma"))) void NAME##_avx512(const NAME##_args<T>& a, int64_t r0, \
                                                                 int64_t r1) {                    \
    NAME<T>(a, r0, r1);                                                                           \
  }                                                                                               \
  template <typename T>                                                                           \
  void NAME##_run(const NAME##_args<T>& a, int64_t rows, int64_t H) {                              \
    const auto fn = use_avx512() ? NAME##_avx512<T> : use_avx2() ? NAME##_avx2<T> : NAME##_base<T>; \
    parallel_for(rows, rows * H >= kParallelMinElems, [&](int64_t b, int64_t e) { fn(a, b, e); }); \
  }
#else
#define TG_GATE_PASS(NAME)                                                                        \
  template <typename T>                                                                           \
  void NAME##_run(const NAME##_args<T>& a, int64_t rows, int64_t H) {                              \
    parallel_for(rows, rows * H >= kParallelMinElems, [&](int64_t b, int64_t e) { NAME<T>(a, b, e); }); \
  }
#endif

// ---- LSTM forward: gates (activated in place), states, outputs of one step's rows.
template <typename T>
struct lstm_fwd_rows_args {
  int64_t H, o;  // o: the step's first packed row
  const T* gi;
  T *act, *hs, *cs, *tc, *out;  // act holds h W_hh^T on entry
};
template <typename T>
TG_INLINE void lstm_fwd_rows(const lstm_fwd_rows_args<T>& a, int64_t r0, int64_t r1) {
  const int64_t H = a.H, G = 4 * H;
  for (int64_t r = r0; r < r1; ++r) {
    T* ar = a.act + (a.o + r) * G;
    const T* xr = a.gi + (a.o + r) * G;
    T *hr = a.hs + r * H, *cr = a.cs + r * H, *tr = a.tc + (a.o + r) * H, *yr = a.out + (a.o + r) * H;
#pragma omp simd
    for (int64_t j = 0; j < H; ++j) {
      const T i = vmath::sigmoid(xr[j] + ar[j]), f = vmath::sigmoid(xr[H + j] + ar[H + j]),
              g = vmath::tanh(xr[2 * H + j] + ar[2 * H + j]), og = vmath::sigmoid(xr[3 * H + j] + ar[3 * H + j]);
      const T c = f * cr[j] + i * g, th = vmath::tanh(c);
      ar[j] = i;
      ar[H + j] = f;
      ar[2 * H + j] = g;
      ar[3 * H + j] = og;
      cr[j] = c;
      tr[j] = th;
      hr[j] = yr[j] = og * th;
    }
  }
}
TG_GATE_PASS(lstm_fwd_rows)

// ---- LSTM backward: the gates' gradients of one step's rows; dh, dc carried in place.
template <typename T>
struct lstm_bwd_rows_args {
  int64_t H, o;
  const T *act, *tc, *cprev, *gout;
  T *d, *dh, *dc;  // d: the step's gate gradients (row 0 of the step)
};
template <typename T>
TG_INLINE void lstm_bwd_rows(const lstm_bwd_rows_args<T>& a, int64_t r0, int64_t r1) {
  const int64_t H = a.H, G = 4 * H;
  for (int64_t r = r0; r < r1; ++r) {
    const T* ar = a.act + (a.o + r) * G;
    const T *tr = a.tc + (a.o + r) * H, *cp = a.cprev + (a.o + r) * H, *gy = a.gout + (a.o + r) * H;
    T *dh = a.dh + r * H, *dc = a.dc + r * H, *dr = a.d + r * G;
#pragma omp simd
    for (int64_t j = 0; j < H; ++j) {
      const T i = ar[j], f = ar[H + j], g = ar[2 * H + j], og = ar[3 * H + j], th = tr[j];
      const T dhj = dh[j] + gy[j];
      const T dct = dc[j] + dhj * og * (T(1) - th * th);
      dr[j] = dct * g * i * (T(1) - i);
      dr[H + j] = dct * cp[j] * f * (T(1) - f);
      dr[2 * H + j] = dct * i * (T(1) - g * g);
      dr[3 * H + j] = dhj * th * og * (T(1) - og);
      dc[j] = dct * f;
    }
  }
}
TG_GATE_PASS(lstm_bwd_rows)

// ---- GRU forward: r, z, n, the new h and h W_hn^T + b_hn of one step's rows.
template <typename T>
struct gru_fwd_rows_args {
  int64_t H, o;
  const T *gi, *gh, *bhh;  // gh: the step's h W_hh^T (row 0 of the step); bhh (3H)
  T *act, *hs, *out, *ghn;
};
template <typename T>
TG_INLINE void gru_fwd_rows(const gru_fwd_rows_args<T>& a, int64_t r0, int64_t r1) {
  const int64_t H = a.H, G = 3 * H;
  const T *br = a.bhh, *bz = a.bhh + H, *bn = a.bhh + 2 * H;
  for (int64_t r = r0; r < r1; ++r) {
    const T *x = a.gi + (a.o + r) * G, *hh = a.gh + r * G;
    T *ar = a.act + (a.o + r) * G, *hr = a.hs + r * H, *yr = a.out + (a.o + r) * H, *gn = a.ghn + (a.o + r) * H;
#pragma omp simd
    for (int64_t j = 0; j < H; ++j) {
      const T rg = vmath::sigmoid(x[j] + (hh[j] + br[j])), z = vmath::sigmoid(x[H + j] + (hh[H + j] + bz[j]));
      const T hn = hh[2 * H + j] + bn[j], ng = vmath::tanh(x[2 * H + j] + rg * hn);
      ar[j] = rg;
      ar[H + j] = z;
      ar[2 * H + j] = ng;
      gn[j] = hn;
      hr[j] = yr[j] = ng + z * (hr[j] - ng);
    }
  }
}
TG_GATE_PASS(gru_fwd_rows)

// ---- GRU backward: the gradients of gi and of h W_hh^T + b_hh of one step's rows; dh
// becomes the direct path's share (dh z), the gates' share is added by a GEMM.
template <typename T>
struct gru_bwd_rows_args {
  int64_t H, o;
  const T *act, *ghn, *hprev, *gout;
  T *dgi, *dgh, *dh;  // dgh: the step's (row 0 of the step)
};
template <typename T>
TG_INLINE void gru_bwd_rows(const gru_bwd_rows_args<T>& a, int64_t r0, int64_t r1) {
  const int64_t H = a.H, G = 3 * H;
  for (int64_t r = r0; r < r1; ++r) {
    const T *ar = a.act + (a.o + r) * G, *gn = a.ghn + (a.o + r) * H, *hp = a.hprev + (a.o + r) * H,
            *gy = a.gout + (a.o + r) * H;
    T *dh = a.dh + r * H, *dx = a.dgi + (a.o + r) * G, *dhh = a.dgh + r * G;
#pragma omp simd
    for (int64_t j = 0; j < H; ++j) {
      const T rg = ar[j], z = ar[H + j], ng = ar[2 * H + j];
      const T dhj = dh[j] + gy[j];
      const T dn = dhj * (T(1) - z) * (T(1) - ng * ng);
      const T dz = dhj * (hp[j] - ng) * z * (T(1) - z);
      const T dr = dn * gn[j] * rg * (T(1) - rg);
      dx[j] = dhh[j] = dr;
      dx[H + j] = dhh[H + j] = dz;
      dx[2 * H + j] = dn;
      dhh[2 * H + j] = dn * rg;
      dh[j] = dhj * z;
    }
  }
}
TG_GATE_PASS(gru_bwd_rows)
#undef TG_GATE_PASS

}  // namespace

template <typename T>
void lstm_forward(int64_t S, const int64_t* n, int64_t H, bool reverse, const T* gi, const T* h0, const T* c0,
                  const T* whh, T* out, T* act, T* hprev, T* cprev, T* tc) {
  if (S == 0) return;
  const int64_t B = n[0], G = 4 * H;
  const std::vector<int64_t> off = offsets(S, n);
  const int64_t N = off[S];
  T* hs = out + N * H;  // the running states, which end as h_n and c_n
  T* cs = hs + B * H;
  std::copy(h0, h0 + B * H, hs);
  std::copy(c0, c0 + B * H, cs);
  const PackedB<T> whh_t(H, G, whh, 1, H);
  for (int64_t k = 0; k < S; ++k) {
    const int64_t t = reverse ? S - 1 - k : k, m = n[t], o = off[t];
    std::copy(hs, hs + m * H, hprev + o * H);
    std::copy(cs, cs + m * H, cprev + o * H);
    gemm<T>(m, T(1), hprev + o * H, H, 1, whh_t, T(0), act + o * G, G, 1);
    lstm_fwd_rows_run<T>({H, o, gi, act, hs, cs, tc, out}, m, H);
  }
}

template <typename T>
void lstm_backward(int64_t S, const int64_t* n, int64_t H, bool reverse, const T* whh, const T* act,
                   const T* hprev, const T* cprev, const T* tc, const T* gout, T* dgi, T* dh0, T* dc0, T* dwhh) {
  const int64_t B = S ? n[0] : 0, G = 4 * H;
  const std::vector<int64_t> off = offsets(S, n);
  const int64_t N = off[S];
  // dh0 and dc0 carry the gradient of the running state back through the steps.
  std::copy(gout + N * H, gout + (N + B) * H, dh0);
  std::copy(gout + (N + B) * H, gout + (N + 2 * B) * H, dc0);
  const PackedB<T> w(G, H, whh, H, 1);
  for (int64_t k = S - 1; k >= 0; --k) {
    const int64_t t = reverse ? S - 1 - k : k, m = n[t], o = off[t];
    T* d = dgi + o * G;
    lstm_bwd_rows_run<T>({H, o, act, tc, cprev, gout, d, dh0, dc0}, m, H);
    // h entered this step only through the gates: dh_prev = dgates W_hh.
    gemm<T>(m, T(1), d, G, 1, w, T(0), dh0, H, 1);
  }
  gemm<T>(G, H, N, T(1), dgi, 1, G, hprev, H, 1, T(0), dwhh, H, 1);
}

template <typename T>
void gru_forward(int64_t S, const int64_t* n, int64_t H, bool reverse, const T* gi, const T* h0, const T* whh,
                 const T* bhh, T* out, T* act, T* ghn, T* hprev) {
  if (S == 0) return;
  const int64_t B = n[0], G = 3 * H;
  const std::vector<int64_t> off = offsets(S, n);
  const int64_t N = off[S];
  T* hs = out + N * H;
  std::copy(h0, h0 + B * H, hs);
  std::vector<T> gh(static_cast<size_t>(B * G));
  std::vector<T> zeros(bhh ? 0 : static_cast<size_t>(G), T(0));
  const T* bias = bhh ? bhh : zeros.data();
  const PackedB<T> whh_t(H, G, whh, 1, H);
  for (int64_t k = 0; k < S; ++k) {
    const int64_t t = reverse ? S - 1 - k : k, m = n[t], o = off[t];
    std::copy(hs, hs + m * H, hprev + o * H);
    gemm<T>(m, T(1), hprev + o * H, H, 1, whh_t, T(0), gh.data(), G, 1);
    gru_fwd_rows_run<T>({H, o, gi, gh.data(), bias, act, hs, out, ghn}, m, H);
  }
}

template <typename T>
void gru_backward(int64_t S, const int64_t* n, int64_t H, bool reverse, const T* whh, const T* act, const T* ghn,
                  const T* hprev, const T* gout, T* dgi, T* dh0, T* dwhh, T* dbhh) {
  const int64_t B = S ? n[0] : 0, G = 3 * H;
  const std::vector<int64_t> off = offsets(S, n);
  const int64_t N = off[S];
  std::vector<T> dgh(static_cast<size_t>(N * G));
  std::copy(gout + N * H, gout + (N + B) * H, dh0);
  const PackedB<T> w(G, H, whh, H, 1);
  for (int64_t k = S - 1; k >= 0; --k) {
    const int64_t t = reverse ? S - 1 - k : k, m = n[t], o = off[t];
    T* dh_gates = dgh.data() + o * G;
    gru_bwd_rows_run<T>({H, o, act, ghn, hprev, gout, dgi, dh_gates, dh0}, m, H);
    gemm<T>(m, T(1), dh_gates, G, 1, w, T(1), dh0, H, 1);
  }
  gemm<T>(G, H, N, T(1), dgh.data(), 1, G, hprev, H, 1, T(0), dwhh, H, 1);
  if (dbhh) {
    // Column sums in row order: fixed whatever the thread count.
    std::fill(dbhh, dbhh + G, T(0));
    for (int64_t r = 0; r < N; ++r) {
      const T* row = dgh.data() + r * G;
#pragma omp simd
      for (int64_t j = 0; j < G; ++j) dbhh[j] += row[j];
    }
  }
}

#define TG_INSTANTIATE(T)                                                                                          \
  template void lstm_forward<T>(int64_t, const int64_t*, int64_t, bool, const T*, const T*, const T*, const T*, T*, \
                                T*, T*, T*, T*);                                                                   \
  template void lstm_backward<T>(int64_t, const int64_t*, int64_t, bool, const T*, const T*, const T*, const T*,   \
                                 const T*, const T*, T*, T*, T*, T*);                                              \
  template void gru_forward<T>(int64_t, const int64_t*, int64_t, bool, const T*, const T*, const T*, const T*, T*, \
                               T*, T*, T*);                                                                        \
  template void gru_backward<T>(int64_t, const int64_t*, int64_t, bool, const T*, const T*, const T*, const T*,    \
                                const T*, T*, T*, T*, T*);
TG_INSTANTIATE(float)
TG_INSTANTIATE(double)
#undef TG_INSTANTIATE

}  // namespace tapegrad
