// Fused Adam/AdamW and SGD updates (see optim.h): one pass over each parameter's elements.
//
// Each update is the unfused path's numpy expression sequence, element by element: Python
// floats meet the arrays as numpy's weak scalars, i.e. rounded to T first (T(1 - beta1) below is
// numpy's `tmp *= 1 - beta1` on a T array), and no multiply-add is fused (-ffp-contract=off for
// this file in CMakeLists.txt), so the results are bit-identical to numpy's.
#include "kernels/optim.h"

#include <algorithm>
#include <cmath>

#include "kernels/cpu.h"
#include "kernels/parallel.h"

namespace tapegrad {
namespace {

// Elements per tile: tiles of all parameters of a call are handed out together.
constexpr int64_t kTile = 1 << 14;
// Total elements below which the update runs on the calling thread.
constexpr int64_t kParallelMinElems = 1 << 16;

#define TG_INLINE inline __attribute__((always_inline))
#define TG_AVX2 __attribute__((target("avx2,fma")))

// (tensor index, first element) of every tile, in order.
template <class Tensors>
std::vector<std::pair<int64_t, int64_t>> tiles_of(const Tensors& ts, int64_t& total) {
  std::vector<std::pair<int64_t, int64_t>> tiles;
  total = 0;
  for (size_t i = 0; i < ts.size(); ++i) {
    for (int64_t s = 0; s < ts[i].n; s += kTile) tiles.emplace_back(int64_t(i), s);
    total += ts[i].n;
  }
  return tiles;
}

// numpy's maximum: NaN if either is NaN.
template <typename T>
TG_INLINE T nan_max(T a, T b) {
  return a != a ? a : b != b ? b : a > b ? a : b;
}

// The flags are template arguments so that the loop has no branch and vectorises. A decay of
// exactly 1 (no decoupled weight decay) leaves p bit for bit as it is.
template <typename T, bool kCoupledWd, bool kMaximize, bool kAmsgrad>
TG_INLINE void adam_body(int64_t s, int64_t e, const AdamTensors<T>& t, const AdamHyper& h) {
  const bool decoupled_wd = h.weight_decay != 0 && h.decoupled;
  const T decay = decoupled_wd ? T(1 - h.lr * h.weight_decay) : T(1), wd = T(h.weight_decay),
          b1c = T(1 - h.beta1), b2 = T(h.beta2), b2c = T(1 - h.beta2), eps = T(h.eps);
  const double bias_correction1 = 1 - std::pow(h.beta1, h.step), bias_correction2 = 1 - std::pow(h.beta2, h.step);
  const T neg_step_size = T(-(h.lr / bias_correction1)), bc2_sqrt = T(std::pow(bias_correction2, 0.5));
  T *__restrict p = t.p, *__restrict m = t.m, *__restrict v = t.v, *__restrict vmax = t.vmax;
  const T* __restrict g = t.g;
#pragma omp simd
  for (int64_t i = s; i < e; ++i) {
    const T pi = p[i] * decay;
    T gi = g[i];
    if constexpr (kCoupledWd) gi = kMaximize ? pi * wd - gi : gi + pi * wd;
    else if constexpr (kMaximize) gi = -gi;
    const T mi = m[i] + (gi - m[i]) * b1c;
    const T vi = v[i] * b2 + gi * b2c * gi;
    m[i] = mi;
    v[i] = vi;
    T vh = vi;
    if constexpr (kAmsgrad) vh = vmax[i] = nan_max(vmax[i], vi);
    const T denom = std::sqrt(vh) / bc2_sqrt + eps;
    p[i] = pi + mi / denom * neg_step_size;
  }
}

template <typename T>
TG_INLINE void adam_dispatch(int64_t s, int64_t e, const AdamTensors<T>& t, const AdamHyper& h) {
  const bool cwd = h.weight_decay != 0 && !h.decoupled, mx = h.maximize, ams = t.vmax != nullptr;
  const int k = cwd * 4 + mx * 2 + ams;
  switch (k) {
    case 0: return adam_body<T, false, false, false>(s, e, t, h);
    case 1: return adam_body<T, false, false, true>(s, e, t, h);
    case 2: return adam_body<T, false, true, false>(s, e, t, h);
    case 3: return adam_body<T, false, true, true>(s, e, t, h);
    case 4: return adam_body<T, true, false, false>(s, e, t, h);
    case 5: return adam_body<T, true, false, true>(s, e, t, h);
    case 6: return adam_body<T, true, true, false>(s, e, t, h);
    default: return adam_body<T, true, true, true>(s, e, t, h);
  }
}

template <typename T, bool kWd, bool kMaximize, bool kMomentum>
TG_INLINE void sgd_body(int64_t s, int64_t e, const SgdTensors<T>& t, const SgdHyper& h) {
  const T wd = T(h.weight_decay), mom = T(h.momentum), damp = T(1 - h.dampening), neg_lr = T(-h.lr);
  T *__restrict p = t.p, *__restrict buf = t.buf;
  const T* __restrict g = t.g;
  const bool first = t.first, nesterov = h.nesterov;
#pragma omp simd
  for (int64_t i = s; i < e; ++i) {
    T gi = g[i];
    if constexpr (kWd) gi = kMaximize ? p[i] * wd - gi : gi + p[i] * wd;
    else if constexpr (kMaximize) gi = -gi;
    if constexpr (kMomentum) {
      const T b = first ? gi : buf[i] * mom + gi * damp;
      buf[i] = b;
      gi = nesterov ? gi + b * mom : b;
    }
    p[i] += gi * neg_lr;
  }
}

template <typename T>
TG_INLINE void sgd_dispatch(int64_t s, int64_t e, const SgdTensors<T>& t, const SgdHyper& h) {
  const int k = (h.weight_decay != 0) * 4 + h.maximize * 2 + (t.buf != nullptr);
  switch (k) {
    case 0: return sgd_body<T, false, false, false>(s, e, t, h);
    case 1: return sgd_body<T, false, false, true>(s, e, t, h);
    case 2: return sgd_body<T, false, true, false>(s, e, t, h);
    case 3: return sgd_body<T, false, true, true>(s, e, t, h);
    case 4: return sgd_body<T, true, false, false>(s, e, t, h);
    case 5: return sgd_body<T, true, false, true>(s, e, t, h);
    case 6: return sgd_body<T, true, true, false>(s, e, t, h);
    default: return sgd_body<T, true, true, true>(s, e, t, h);
  }
}

template <typename T>
__attribute__((noinline)) void adam_base(int64_t s, int64_t e, const AdamTensors<T>& t, const AdamHyper& h) {
  adam_dispatch<T>(s, e, t, h);
}
template <typename T>
TG_AVX2 __attribute__((noinline)) void adam_avx2(int64_t s, int64_t e, const AdamTensors<T>& t, const AdamHyper& h) {
  adam_dispatch<T>(s, e, t, h);
}
template <typename T>
__attribute__((noinline)) void sgd_base(int64_t s, int64_t e, const SgdTensors<T>& t, const SgdHyper& h) {
  sgd_dispatch<T>(s, e, t, h);
}
template <typename T>
TG_AVX2 __attribute__((noinline)) void sgd_avx2(int64_t s, int64_t e, const SgdTensors<T>& t, const SgdHyper& h) {
  sgd_dispatch<T>(s, e, t, h);
}

bool has_avx2() { return kernel_isa(Kernel::optim) >= Isa::avx2; }

// Runs body(s, e, tensor) over every tile of ts, tiles taken dynamically by the threads.
template <class Tensors, class Body>
void for_tiles(const Tensors& ts, Body body) {
  int64_t total = 0;
  const auto tiles = tiles_of(ts, total);
  parallel_tiles(int64_t(tiles.size()), total >= kParallelMinElems, [&](int64_t k) {
    const auto& t = ts[size_t(tiles[size_t(k)].first)];
    const int64_t s = tiles[size_t(k)].second;
    body(s, std::min(t.n, s + kTile), t);
  });
}

}  // namespace

template <typename T>
void adam_step(const std::vector<AdamTensors<T>>& ts, const AdamHyper& h) {
  const bool avx2 = has_avx2();
  for_tiles(ts, [&](int64_t s, int64_t e, const AdamTensors<T>& t) {
    avx2 ? adam_avx2<T>(s, e, t, h) : adam_base<T>(s, e, t, h);
  });
}

template <typename T>
void sgd_step(const std::vector<SgdTensors<T>>& ts, const SgdHyper& h) {
  const bool avx2 = has_avx2();
  for_tiles(ts, [&](int64_t s, int64_t e, const SgdTensors<T>& t) {
    avx2 ? sgd_avx2<T>(s, e, t, h) : sgd_base<T>(s, e, t, h);
  });
}

template void adam_step<float>(const std::vector<AdamTensors<float>>&, const AdamHyper&);
template void adam_step<double>(const std::vector<AdamTensors<double>>&, const AdamHyper&);
template void sgd_step<float>(const std::vector<SgdTensors<float>>&, const SgdHyper&);
template void sgd_step<double>(const std::vector<SgdTensors<double>>&, const SgdHyper&);

}  // namespace tapegrad
