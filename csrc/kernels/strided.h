// Elementwise kernels' view of K operands that each have their own element strides through one
// shape (a broadcast operand: stride 0 along its broadcast dims), for clamp.cpp and select.cpp's
// masked_select. The shape is simplified first (size-1 dims dropped; neighbours merged where every
// operand steps evenly across both), so contiguous operands of one shape become one run and a
// broadcast row a run per row; the kernels then walk the result's flat elements in runs along the
// innermost dim.
#pragma once
#include <algorithm>
#include <array>
#include <cstdint>
#include <numeric>
#include <stdexcept>
#include <vector>

namespace tapegrad {

constexpr int kMaxStridedDims = 64;  // numpy's limit

template <int K>
struct Strided {
  std::vector<int64_t> shape;                   // at least one dim, outermost first
  std::vector<std::array<int64_t, K>> strides;  // strides[d][k]: operand k's along dim d
  int64_t size = 1;
};

// shape's dims (nd <= kMaxStridedDims) in C order or, with lead >= 0, from largest to smallest
// |stride| of operand `lead` (ties in C order: a C-contiguous lead keeps C order, an F-contiguous
// one is walked in its memory order), size-1 dims dropped and neighbours merged.
template <int K>
Strided<K> simplify(int nd, const int64_t* shape, const std::array<const int64_t*, K>& strides, int lead = -1) {
  if (nd > kMaxStridedDims) throw std::invalid_argument("strided: more than 64 dims");
  Strided<K> s;
  std::vector<int> order(static_cast<size_t>(nd));
  std::iota(order.begin(), order.end(), 0);
  if (lead >= 0) {
    const int64_t* ls = strides[size_t(lead)];
    std::stable_sort(order.begin(), order.end(), [&](int a, int b) {
      const int64_t sa = ls[a] < 0 ? -ls[a] : ls[a], sb = ls[b] < 0 ? -ls[b] : ls[b];
      return sa > sb;
    });
  }
  for (int d : order) {
    s.size *= shape[d];
    if (shape[d] == 1) continue;
    std::array<int64_t, K> st;
    for (int k = 0; k < K; ++k) st[size_t(k)] = strides[size_t(k)][d];
    if (!s.shape.empty()) {
      const int64_t n = shape[d];
      bool merge = true;
      for (int k = 0; k < K; ++k) merge = merge && s.strides.back()[size_t(k)] == st[size_t(k)] * n;
      if (merge) {
        s.shape.back() *= n;
        s.strides.back() = st;
        continue;
      }
    }
    s.shape.push_back(shape[d]);
    s.strides.push_back(st);
  }
  if (s.shape.empty()) {  // one element (or none: a 0-size dim stays)
    s.shape.push_back(1);
    s.strides.push_back(std::array<int64_t, K>{});
  }
  return s;
}

// f(off, len) for each run of the flat elements [begin, begin + n) along the innermost dim, in
// order: off the operands' element offsets at the run's start.
template <int K, class F>
void for_runs(const Strided<K>& s, int64_t begin, int64_t n, F&& f) {
  const int nd = int(s.shape.size()), last = nd - 1;
  int64_t idx[kMaxStridedDims];
  std::array<int64_t, K> off{};
  int64_t rest = begin;
  for (int d = last; d >= 0; --d) {
    idx[d] = rest % s.shape[size_t(d)];
    rest /= s.shape[size_t(d)];
    for (int k = 0; k < K; ++k) off[size_t(k)] += idx[d] * s.strides[size_t(d)][size_t(k)];
  }
  const int64_t inner = s.shape[size_t(last)];
  while (n > 0) {
    const int64_t len = std::min(n, inner - idx[last]);
    f(static_cast<const std::array<int64_t, K>&>(off), len);
    n -= len;
    if (n == 0) return;
    for (int k = 0; k < K; ++k) off[size_t(k)] += len * s.strides[size_t(last)][size_t(k)];
    idx[last] += len;
    for (int d = last; d > 0 && idx[d] == s.shape[size_t(d)]; --d) {
      for (int k = 0; k < K; ++k)
        off[size_t(k)] += s.strides[size_t(d - 1)][size_t(k)] - s.shape[size_t(d)] * s.strides[size_t(d)][size_t(k)];
      idx[d] = 0;
      ++idx[d - 1];
    }
  }
}

}  // namespace tapegrad
