// The elementwise ops of ternary.h: one loop per case under `omp simd`, compiled for the baseline
// ISA, AVX2+FMA and AVX-512 (the rows family's choice, cpu.h), on the threads in parallel.h's
// element blocks. Compiled with -ffp-contract=off: `a + w * d` must round the product before the
// sum, as numpy's two ufunc calls did, and with -fno-trapping-math so that lerp's select vectorises.
#include "kernels/ternary.h"

#include "kernels/cpu.h"
#include "kernels/isa_variants.h"
#include "kernels/parallel.h"

#include <cmath>

namespace tapegrad {
namespace {

Isa isa() { return kernel_isa(Kernel::rows); }

template <typename T>
TG_INLINE T lerp_one(T a, T b, T w) {
  const T d = b - a;
  return std::fabs(w) < T(0.5) ? a + w * d : b - d * (T(1) - w);
}

template <typename T>
TG_INLINE void lerp_forward_body(int64_t n, const T* a, const T* b, const T* w, int64_t w_step, T* out) {
  if (w_step != 0) {
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) out[i] = lerp_one(a[i], b[i], w[i]);
    return;
  }
  const T w0 = w[0], omw = T(1) - w0;
  if (std::fabs(w0) < T(0.5)) {
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) out[i] = a[i] + w0 * (b[i] - a[i]);
  } else {
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) out[i] = b[i] - (b[i] - a[i]) * omw;
  }
}

// kWant: bit 0 ga, bit 1 gb, bit 2 gw.
template <typename T, bool kScalarW, int kWant>
TG_INLINE void lerp_backward_loop(int64_t n, const T* g, const T* a, const T* b, const T* w, T* ga, T* gb, T* gw) {
  const T w0 = w[0], omw0 = T(1) - w0;
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) {
    const T G = g[i], W = kScalarW ? w0 : w[i];
    if constexpr ((kWant & 1) != 0) ga[i] = G * (kScalarW ? omw0 : T(1) - W);
    if constexpr ((kWant & 2) != 0) gb[i] = G * W;
    if constexpr ((kWant & 4) != 0) gw[i] = G * (b[i] - a[i]);
  }
}

template <typename T, bool kScalarW>
TG_INLINE void lerp_backward_want(int want, int64_t n, const T* g, const T* a, const T* b, const T* w, T* ga, T* gb,
                                  T* gw) {
  switch (want) {
    case 1: return lerp_backward_loop<T, kScalarW, 1>(n, g, a, b, w, ga, gb, gw);
    case 2: return lerp_backward_loop<T, kScalarW, 2>(n, g, a, b, w, ga, gb, gw);
    case 3: return lerp_backward_loop<T, kScalarW, 3>(n, g, a, b, w, ga, gb, gw);
    case 4: return lerp_backward_loop<T, kScalarW, 4>(n, g, a, b, w, ga, gb, gw);
    case 5: return lerp_backward_loop<T, kScalarW, 5>(n, g, a, b, w, ga, gb, gw);
    case 6: return lerp_backward_loop<T, kScalarW, 6>(n, g, a, b, w, ga, gb, gw);
    case 7: return lerp_backward_loop<T, kScalarW, 7>(n, g, a, b, w, ga, gb, gw);
    default: return;
  }
}

template <typename T>
TG_INLINE void lerp_backward_body(int want, int64_t n, const T* g, const T* a, const T* b, const T* w, int64_t w_step,
                                  T* ga, T* gb, T* gw) {
  if (w_step == 0) lerp_backward_want<T, true>(want, n, g, a, b, w, ga, gb, gw);
  else lerp_backward_want<T, false>(want, n, g, a, b, w, ga, gb, gw);
}

template <typename T>
TG_INLINE void addc_forward_body(bool divide, int64_t n, const T* x, const T* t1, const T* t2, T v, T* out) {
  // (t * 1 is t bit for bit, a NaN's payload too: no case for value 1, which the composite skips)
  if (divide) {
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) out[i] = x[i] + (t1[i] / t2[i]) * v;
  } else {
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) out[i] = x[i] + (t1[i] * t2[i]) * v;
  }
}

// out = x + y * v or x - y * v: numpy's `y * alpha` then `x + that` (or `-`), in one pass.
template <typename T>
TG_INLINE void axpy_forward_body(bool subtract, int64_t n, const T* x, const T* y, T v, T* out) {
  if (subtract) {
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) out[i] = x[i] - y[i] * v;
  } else {
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) out[i] = x[i] + y[i] * v;
  }
}

TG_VARIANTS(lerp_forward, (int64_t n, const T* a, const T* b, const T* w, int64_t w_step, T* out),
            (n, a, b, w, w_step, out))
TG_VARIANTS(lerp_backward,
            (int want, int64_t n, const T* g, const T* a, const T* b, const T* w, int64_t w_step, T* ga, T* gb, T* gw),
            (want, n, g, a, b, w, w_step, ga, gb, gw))
TG_VARIANTS(addc_forward, (bool divide, int64_t n, const T* x, const T* t1, const T* t2, T v, T* out),
            (divide, n, x, t1, t2, v, out))
TG_VARIANTS(axpy_forward, (bool subtract, int64_t n, const T* x, const T* y, T v, T* out), (subtract, n, x, y, v, out))

template <typename P>
P* at(P* p, int64_t i) {
  return p == nullptr ? nullptr : p + i;
}

}  // namespace

template <typename T>
void lerp_forward(int64_t n, const T* a, const T* b, const T* w, int64_t w_step, T* out) {
  for_element_blocks(n, [&](int64_t i, int64_t len) {
    TG_CALL(lerp_forward, T, len, a + i, b + i, w + i * w_step, w_step, out + i);
  });
}

template <typename T>
void lerp_backward(int64_t n, const T* g, const T* a, const T* b, const T* w, int64_t w_step, T* ga, T* gb, T* gw) {
  const int want = (ga != nullptr) | (gb != nullptr) << 1 | (gw != nullptr) << 2;
  if (want == 0) return;
  for_element_blocks(n, [&](int64_t i, int64_t len) {
    TG_CALL(lerp_backward, T, want, len, g + i, at(a, i), at(b, i), w + i * w_step, w_step, at(ga, i), at(gb, i),
            at(gw, i));
  });
}

template <typename T>
void addc_forward(bool divide, int64_t n, const T* x, const T* t1, const T* t2, double value, T* out) {
  const T v = T(value);
  for_element_blocks(n, [&](int64_t i, int64_t len) {
    TG_CALL(addc_forward, T, divide, len, x + i, t1 + i, t2 + i, v, out + i);
  });
}

template <typename T>
void axpy_forward(bool subtract, int64_t n, const T* x, const T* y, double value, T* out) {
  const T v = T(value);
  for_element_blocks(n, [&](int64_t i, int64_t len) { TG_CALL(axpy_forward, T, subtract, len, x + i, y + i, v, out + i); });
}

#define TG_TERNARY_INSTANTIATE(T)                                                                                  \
  template void lerp_forward<T>(int64_t, const T*, const T*, const T*, int64_t, T*);                               \
  template void lerp_backward<T>(int64_t, const T*, const T*, const T*, const T*, int64_t, T*, T*, T*);            \
  template void addc_forward<T>(bool, int64_t, const T*, const T*, const T*, double, T*);                         \
  template void axpy_forward<T>(bool, int64_t, const T*, const T*, double, T*);
TG_TERNARY_INSTANTIATE(float)
TG_TERNARY_INSTANTIATE(double)
#undef TG_TERNARY_INSTANTIATE

}  // namespace tapegrad
