// sort_dim (sort.h). A task takes a tile of up to kTileBytes / sizeof(T) neighbouring slices of one
// a (B > 1: the columns b0.. of a sort along a middle dim, read a cache line per n; B == 1: whole
// rows, several per task when they are short): it copies them into contiguous buffers, sorts each
// slice's (key, index) pairs, and writes values and indices back in the input's order.
// 32-bit keys travel packed with the index in one uint64 (key << 32 | index), so a pass moves 8
// bytes an entry; 64-bit keys as (key, index) pairs. Starting from index order, LSD radix passes
// (stable) leave the pairs in (key, index) order: the stable sort.
// numpy's stable argsort of 1000 rows of 1000 float32, which tapegrad's sort ran before, took
// about as long as PyTorch's sort (ratio 1.1).
#include "kernels/sort.h"

#include "kernels/order_keys.h"
#include "kernels/parallel.h"

#include <algorithm>
#include <cstring>
#include <utility>
#include <vector>

namespace tapegrad {
namespace {

constexpr int64_t kParallelMinElems = 1 << 15;
constexpr int64_t kTaskElems = 1 << 14;  // B == 1: rows per task make at least this many elements
constexpr int64_t kTileBytes = 64;       // B > 1: a cache line of neighbouring slices per task
constexpr int64_t kSortRadixMin = 128;   // shorter slices: std::sort of the pairs

struct Pair {
  uint64_t key;
  int64_t index;
  bool operator<(const Pair& o) const { return key < o.key || (key == o.key && index < o.index); }
};

// The byte `pass` of an entry's key.
inline unsigned digit(uint64_t packed, int pass) { return unsigned(packed >> (32 + 8 * pass)) & 0xffu; }
inline unsigned digit(const Pair& p, int pass) { return unsigned(p.key >> (8 * pass)) & 0xffu; }

// LSD radix sort of a[0, n) by the key's kPasses low bytes (stable); tmp holds n entries. Returns
// where the result lies (a or tmp).
template <int kPasses, typename E>
E* radix_sort(E* a, E* tmp, int64_t n) {
  uint32_t hist[kPasses][256] = {};
  for (int64_t i = 0; i < n; ++i)
    for (int p = 0; p < kPasses; ++p) ++hist[p][digit(a[i], p)];
  E* src = a;
  E* dst = tmp;
  for (int p = 0; p < kPasses; ++p) {
    uint32_t* h = hist[p];
    if (h[digit(src[0], p)] == uint64_t(n)) continue;  // every key has this byte: nothing moves
    uint32_t sum = 0;
    for (int d = 0; d < 256; ++d) {
      const uint32_t c = h[d];
      h[d] = sum;
      sum += c;
    }
    for (int64_t i = 0; i < n; ++i) {
      const E e = src[i];
      dst[h[digit(e, p)]++] = e;
    }
    std::swap(src, dst);
  }
  return src;
}

template <typename T>
struct Scratch {
  std::vector<T> vals;           // the tile's slices, contiguous: slice c at c * N
  std::vector<uint64_t> packed;  // 32-bit keys (and N < 2^32)
  std::vector<uint64_t> packed_tmp;
  std::vector<Pair> pairs;       // 64-bit keys
  std::vector<Pair> pairs_tmp;
  std::vector<int64_t> order;    // the tile's sorted indices, slice c at c * N
};

// Slice v[0, n) sorted: its indices in order into ord. 64-bit keys that span less than 2^32 (the
// integers of a limited range, as unique's) travel packed as 32-bit ones, less their minimum.
template <typename T>
void sort_slice(const T* v, int64_t n, bool descending, int64_t* ord, Scratch<T>& sc) {
  using K = typename KeyOf<T>::K;
  const K flip = descending ? K(~K(0)) : K(0);
  auto key = [&](int64_t j) { return K(KeyOf<T>::of(v[j]) ^ flip); };
  K lo = 0;
  bool packed = n <= (int64_t(1) << 32);
  if (sizeof(K) == 8 && packed && n >= kSortRadixMin) {
    K hi = 0;
    lo = ~K(0);
    for (int64_t j = 0; j < n; ++j) {
      const K k = key(j);
      lo = std::min(lo, k);
      hi = std::max(hi, k);
    }
    packed = uint64_t(hi - lo) <= 0xffffffffu;
  } else if (sizeof(K) == 8) {
    packed = false;
  }
  if (packed) {
    sc.packed.resize(size_t(n));
    uint64_t* a = sc.packed.data();
    for (int64_t j = 0; j < n; ++j) a[j] = uint64_t(key(j) - lo) << 32 | uint64_t(j);
    const uint64_t* s = a;
    if (n < kSortRadixMin) {
      std::sort(a, a + n);  // the packed entries are distinct: the order is (key, index)
    } else {
      sc.packed_tmp.resize(size_t(n));
      s = radix_sort<4>(a, sc.packed_tmp.data(), n);
    }
    for (int64_t j = 0; j < n; ++j) ord[j] = int64_t(s[j] & 0xffffffffu);
    return;
  }
  sc.pairs.resize(size_t(n));
  Pair* a = sc.pairs.data();
  for (int64_t j = 0; j < n; ++j) a[j] = {uint64_t(key(j)), j};
  const Pair* s = a;
  if (n < kSortRadixMin) {
    std::sort(a, a + n);
  } else {
    sc.pairs_tmp.resize(size_t(n));
    s = sizeof(K) == 4 ? radix_sort<4>(a, sc.pairs_tmp.data(), n) : radix_sort<8>(a, sc.pairs_tmp.data(), n);
  }
  for (int64_t j = 0; j < n; ++j) ord[j] = s[j].index;
}

}  // namespace

template <typename T>
void sort_dim(int64_t A, int64_t N, int64_t B, const T* x, bool descending, T* values, int64_t* idx) {
  if (A == 0 || N == 0 || B == 0) return;
  if (B == 1) {
    const int64_t rows_per_task = std::max<int64_t>(1, kTaskElems / N);
    const int64_t ntasks = (A + rows_per_task - 1) / rows_per_task;
    parallel_tiles(ntasks, A * N >= kParallelMinElems && A > 1, [&](int64_t t) {
      Scratch<T> sc;
      for (int64_t r = t * rows_per_task; r < std::min(A, (t + 1) * rows_per_task); ++r) {
        const T* v = x + r * N;
        int64_t* ord = idx + r * N;
        sort_slice(v, N, descending, ord, sc);
        T* out = values + r * N;
        for (int64_t j = 0; j < N; ++j) out[j] = v[ord[j]];
      }
    });
    return;
  }
  const int64_t W = std::max<int64_t>(1, kTileBytes / int64_t(sizeof(T)));
  const int64_t tiles_per_a = (B + W - 1) / W;
  parallel_tiles(A * tiles_per_a, A * N * B >= kParallelMinElems, [&](int64_t t) {
    const int64_t a = t / tiles_per_a, b0 = (t % tiles_per_a) * W, w = std::min(W, B - b0);
    const int64_t base = a * N * B + b0;
    Scratch<T> sc;
    sc.vals.resize(size_t(w * N));
    sc.order.resize(size_t(w * N));
    T* vals = sc.vals.data();
    int64_t* order = sc.order.data();
    for (int64_t j = 0; j < N; ++j)
      for (int64_t c = 0; c < w; ++c) vals[c * N + j] = x[base + j * B + c];
    for (int64_t c = 0; c < w; ++c) sort_slice(vals + c * N, N, descending, order + c * N, sc);
    for (int64_t j = 0; j < N; ++j)
      for (int64_t c = 0; c < w; ++c) {
        const int64_t o = order[c * N + j];
        idx[base + j * B + c] = o;
        values[base + j * B + c] = vals[c * N + o];
      }
  });
}

template <typename T>
int64_t unique_runs(int64_t n, const T* s) {
  int64_t runs = n > 0;
  for (int64_t j = 1; j < n; ++j) runs += !(s[j] == s[j - 1]);
  return runs;
}

template <typename T>
void unique_fill(int64_t n, const T* s, const int64_t* order, T* values, int64_t* inverse, int64_t* counts) {
  int64_t run = -1, start = 0;
  for (int64_t j = 0; j < n; ++j) {
    if (j == 0 || !(s[j] == s[j - 1])) {
      if (counts && run >= 0) counts[run] = j - start;
      ++run;
      start = j;
      if (values) values[run] = s[j];
    }
    if (inverse) inverse[order[j]] = run;
  }
  if (counts && run >= 0) counts[run] = n - start;
}

template int64_t unique_runs<float>(int64_t, const float*);
template void unique_fill<float>(int64_t, const float*, const int64_t*, float*, int64_t*, int64_t*);
template void sort_dim<float>(int64_t, int64_t, int64_t, const float*, bool, float*, int64_t*);
template int64_t unique_runs<double>(int64_t, const double*);
template void unique_fill<double>(int64_t, const double*, const int64_t*, double*, int64_t*, int64_t*);
template void sort_dim<double>(int64_t, int64_t, int64_t, const double*, bool, double*, int64_t*);
template int64_t unique_runs<int32_t>(int64_t, const int32_t*);
template void unique_fill<int32_t>(int64_t, const int32_t*, const int64_t*, int32_t*, int64_t*, int64_t*);
template void sort_dim<int32_t>(int64_t, int64_t, int64_t, const int32_t*, bool, int32_t*, int64_t*);
template int64_t unique_runs<int64_t>(int64_t, const int64_t*);
template void unique_fill<int64_t>(int64_t, const int64_t*, const int64_t*, int64_t*, int64_t*, int64_t*);
template void sort_dim<int64_t>(int64_t, int64_t, int64_t, const int64_t*, bool, int64_t*, int64_t*);

}  // namespace tapegrad
