// Layout: every operand C-contiguous but masked_select's (x and mask through strided.h, walked in C
// order in runs). select_broadcast walks out as one flat range of
// outer * inner elements cut into blocks of kBlock (fixed by the size alone); cond's index is the
// flat index modulo inner, so a block restarts cond wherever it crosses a row. sum_rows cuts the
// rows into chunks of kChunkRows and gives each chunk's column sums to one task.
#include "kernels/select.h"

#include "kernels/cpu.h"
#include "kernels/parallel.h"
#include "kernels/strided.h"

#include <algorithm>
#include <array>
#include <cstring>
#include <cstdint>
#include <vector>

namespace tapegrad {
namespace {

#define TG_INLINE inline __attribute__((always_inline))
#define TG_AVX2 __attribute__((target("avx2,fma")))

constexpr int64_t kBlock = 1 << 14;               // elements per select task
constexpr int64_t kParallelMinBytes = 1 << 17;    // smaller passes stay on the caller
constexpr int64_t kChunkRows = 64;                // rows per sum_rows task

// n elements of one cond row segment: the selected side's bits, as an all-ones or all-zeros mask
// (a branch per element would mispredict on a mask as irregular as a ReLU's).
template <typename U>
TG_INLINE void select_body(int64_t n, const uint8_t* c, const U* a, bool af, const U* b, bool bf, U* out) {
  if (af && bf) {
    for (int64_t i = 0; i < n; ++i) {
      const U m = U(0) - U(c[i] != 0);
      out[i] = U((a[i] & m) | (b[i] & ~m));
    }
  } else if (af) {
    const U bv = *b;
    for (int64_t i = 0; i < n; ++i) {
      const U m = U(0) - U(c[i] != 0);
      out[i] = U((a[i] & m) | (bv & ~m));
    }
  } else if (bf) {
    const U av = *a;
    for (int64_t i = 0; i < n; ++i) {
      const U m = U(0) - U(c[i] != 0);
      out[i] = U((av & m) | (b[i] & ~m));
    }
  } else {
    const U av = *a, bv = *b;
    for (int64_t i = 0; i < n; ++i) {
      const U m = U(0) - U(c[i] != 0);
      out[i] = U((av & m) | (bv & ~m));
    }
  }
}

// out = the sum of rows [r0, r1) of x, rows ld apart, in row order.
template <typename T>
TG_INLINE void sum_rows_body(int64_t r0, int64_t r1, int64_t C, int64_t ld, const T* x, T* out) {
  std::memcpy(out, x + r0 * ld, sizeof(T) * C);
  for (int64_t r = r0 + 1; r < r1; ++r) {
    const T* row = x + r * ld;
    for (int64_t j = 0; j < C; ++j) out[j] += row[j];
  }
}

template <typename U>
__attribute__((noinline)) void select_base(int64_t n, const uint8_t* c, const U* a, bool af, const U* b, bool bf,
                                           U* out) {
  select_body<U>(n, c, a, af, b, bf, out);
}
template <typename U>
TG_AVX2 __attribute__((noinline)) void select_avx2(int64_t n, const uint8_t* c, const U* a, bool af, const U* b,
                                                   bool bf, U* out) {
  select_body<U>(n, c, a, af, b, bf, out);
}
template <typename T>
__attribute__((noinline)) void sum_rows_base(int64_t r0, int64_t r1, int64_t C, int64_t ld, const T* x, T* out) {
  sum_rows_body<T>(r0, r1, C, ld, x, out);
}
template <typename T>
TG_AVX2 __attribute__((noinline)) void sum_rows_avx2(int64_t r0, int64_t r1, int64_t C, int64_t ld, const T* x,
                                                     T* out) {
  sum_rows_body<T>(r0, r1, C, ld, x, out);
}

// The AVX2 build serves the avx2 and avx512 levels: these loops are bound by memory, not width.
bool use_avx2() { return cpu_isa() != Isa::generic; }

template <typename U>
void select_typed(int64_t outer, int64_t inner, const uint8_t* cond, const U* a, bool af, const U* b, bool bf,
                  U* out) {
  const int64_t n = outer * inner, nblocks = (n + kBlock - 1) / kBlock;
  const bool avx2 = use_avx2();
  parallel_tiles(nblocks, n * int64_t(sizeof(U)) >= kParallelMinBytes, [&](int64_t k) {
    const int64_t e1 = std::min(n, (k + 1) * kBlock);
    for (int64_t e = k * kBlock; e < e1;) {
      const int64_t i = e % inner, len = std::min(e1 - e, inner - i);
      const U* pa = af ? a + e : a;
      const U* pb = bf ? b + e : b;
      if (avx2) select_avx2<U>(len, cond + i, pa, af, pb, bf, out + e);
      else select_base<U>(len, cond + i, pa, af, pb, bf, out + e);
      e += len;
    }
  });
}

}  // namespace

void select_broadcast(int64_t outer, int64_t inner, int width, const uint8_t* cond, const void* a, bool a_full,
                      const void* b, bool b_full, void* out) {
  if (outer <= 0 || inner <= 0) return;
  switch (width) {
    case 1:
      return select_typed(outer, inner, cond, static_cast<const uint8_t*>(a), a_full, static_cast<const uint8_t*>(b),
                          b_full, static_cast<uint8_t*>(out));
    case 2:
      return select_typed(outer, inner, cond, static_cast<const uint16_t*>(a), a_full,
                          static_cast<const uint16_t*>(b), b_full, static_cast<uint16_t*>(out));
    case 4:
      return select_typed(outer, inner, cond, static_cast<const uint32_t*>(a), a_full,
                          static_cast<const uint32_t*>(b), b_full, static_cast<uint32_t*>(out));
    case 8:
      return select_typed(outer, inner, cond, static_cast<const uint64_t*>(a), a_full,
                          static_cast<const uint64_t*>(b), b_full, static_cast<uint64_t*>(out));
  }
}

template <typename T>
void sum_rows(int64_t R, int64_t C, const T* x, T* out) {
  if (C <= 0) return;
  if (R <= 0) {
    std::fill(out, out + C, T(0));
    return;
  }
  const bool avx2 = use_avx2();
  const int64_t nchunks = (R + kChunkRows - 1) / kChunkRows;
  if (nchunks == 1) {
    if (avx2) sum_rows_avx2<T>(0, R, C, C, x, out);
    else sum_rows_base<T>(0, R, C, C, x, out);
    return;
  }
  // Partial sums per chunk, then added in chunk order: the same additions for any thread count.
  // Each chunk's partial starts on its own cache line: every row of the chunk rewrites it, and
  // partials that shared a line with their neighbour's (C * sizeof(T) not a multiple of 64, or
  // the buffer not aligned) bounced it between the cores at every row: 2080 x 192 float32 took
  // 44 us on 2 threads against 25 on 1.
  constexpr int64_t kLine = 64 / int64_t(sizeof(T));
  const int64_t ld = (C + kLine - 1) / kLine * kLine;
  std::vector<T> buf(nchunks * ld + kLine);
  T* part = buf.data() + (kLine - reinterpret_cast<uintptr_t>(buf.data()) % 64 / sizeof(T)) % kLine;
  parallel_tiles(nchunks, R * C * int64_t(sizeof(T)) >= kParallelMinBytes, [&](int64_t k) {
    const int64_t r0 = k * kChunkRows, r1 = std::min(R, r0 + kChunkRows);
    if (avx2) sum_rows_avx2<T>(r0, r1, C, C, x, part + k * ld);
    else sum_rows_base<T>(r0, r1, C, C, x, part + k * ld);
  });
  if (avx2) sum_rows_avx2<T>(0, nchunks, C, ld, part, out);  // the partials, in chunk order
  else sum_rows_base<T>(0, nchunks, C, ld, part, out);
}

template void sum_rows<float>(int64_t, int64_t, const float*, float*);
template void sum_rows<double>(int64_t, int64_t, const double*, double*);

// nonzero (select.h): chunks run on the kernel threads from kParallelMinBytes of input on.
template <typename U>
void nonzero_counts(int64_t n, const U* x, U mask, int64_t* counts) {
  const int64_t nchunks = (n + kNonzeroChunk - 1) / kNonzeroChunk;
  parallel_tiles(nchunks, n * int64_t(sizeof(U)) >= kParallelMinBytes, [&](int64_t c) {
    const int64_t end = std::min(n, (c + 1) * kNonzeroChunk);
    int64_t count = 0;
    for (int64_t i = c * kNonzeroChunk; i < end; ++i) count += (x[i] & mask) != 0;
    counts[c] = count;
  });
}

template <typename U>
void nonzero_write(int nd, const int64_t* shape, int64_t n, const U* x, U mask, const int64_t* offsets, int64_t* out,
                   int64_t item_stride, int64_t dim_stride) {
  const int64_t nchunks = (n + kNonzeroChunk - 1) / kNonzeroChunk;
  const int64_t last = shape[nd - 1];
  parallel_tiles(nchunks, n * int64_t(sizeof(U)) >= kParallelMinBytes, [&](int64_t c) {
    const int64_t begin = c * kNonzeroChunk, end = std::min(n, begin + kNonzeroChunk);
    std::vector<int64_t> pos(static_cast<size_t>(nd));  // the multi-index of entry i
    for (int64_t d = nd - 1, rest = begin; d >= 0; --d) {
      pos[size_t(d)] = rest % shape[d];
      rest /= shape[d];
    }
    int64_t* o = out + offsets[c] * item_stride;
    for (int64_t i = begin; i < end;) {
      // the rest of one innermost row: the outer dims' indices are fixed along it
      const int64_t len = std::min(end - i, last - pos[size_t(nd - 1)]);
      const int64_t j0 = pos[size_t(nd - 1)] - i;
      for (int64_t j = i; j < i + len; ++j) {
        if ((x[j] & mask) == 0) continue;
        for (int d = 0; d < nd - 1; ++d) o[d * dim_stride] = pos[size_t(d)];
        o[(nd - 1) * dim_stride] = j0 + j;
        o += item_stride;
      }
      i += len;
      pos[size_t(nd - 1)] += len;
      for (int d = nd - 1; d > 0 && pos[size_t(d)] == shape[d]; --d) {
        pos[size_t(d)] = 0;
        ++pos[size_t(d - 1)];
      }
    }
  });
}

void masked_counts(int nd, const int64_t* shape, const uint8_t* mask, const int64_t* ms, int64_t* counts) {
  const Strided<1> s = simplify<1>(nd, shape, {ms});
  const int64_t n = s.size, nchunks = (n + kNonzeroChunk - 1) / kNonzeroChunk;
  const int64_t st = s.strides.back()[0];
  parallel_tiles(nchunks, n >= kParallelMinBytes, [&](int64_t c) {
    const int64_t begin = c * kNonzeroChunk;
    int64_t count = 0;
    for_runs(s, begin, std::min(kNonzeroChunk, n - begin), [&](const std::array<int64_t, 1>& off, int64_t len) {
      const uint8_t* m = mask + off[0];
      if (st == 1) {
        for (int64_t i = 0; i < len; ++i) count += m[i] != 0;
      } else if (st == 0) {
        count += m[0] != 0 ? len : 0;
      } else {
        for (int64_t i = 0; i < len; ++i) count += m[i * st] != 0;
      }
    });
    counts[c] = count;
  });
}

template <typename U>
void compress(int nd, const int64_t* shape, const U* x, const int64_t* xs, const uint8_t* mask, const int64_t* ms,
              const int64_t* offsets, U* out) {
  const Strided<2> s = simplify<2>(nd, shape, {xs, ms});
  const int64_t n = s.size, nchunks = (n + kNonzeroChunk - 1) / kNonzeroChunk;
  const int64_t sx = s.strides.back()[0], sm = s.strides.back()[1];
  parallel_tiles(nchunks, n * int64_t(sizeof(U)) >= kParallelMinBytes, [&](int64_t c) {
    const int64_t begin = c * kNonzeroChunk;
    U* o = out + offsets[c];
    U* const o_end = out + offsets[c + 1];
    if (o == o_end) return;
    for_runs(s, begin, std::min(kNonzeroChunk, n - begin), [&](const std::array<int64_t, 2>& off, int64_t len) {
      const U* xp = x + off[0];
      const uint8_t* mp = mask + off[1];
      if (sm == 0) {  // one mask value along the run: all of it or nothing
        if (mp[0] != 0) {
          for (int64_t i = 0; i < len; ++i) o[i] = xp[i * sx];
          o += len;
        }
        return;
      }
      // branch-free: write always, advance on a hit; stop once the chunk's share is full, so no
      // write lands in the next chunk's (another thread's) first slot
      if (sx == 1 && sm == 1) {
        for (int64_t i = 0; i < len && o != o_end; ++i) {
          *o = xp[i];
          o += mp[i] != 0;
        }
      } else {
        for (int64_t i = 0; i < len && o != o_end; ++i) {
          *o = xp[i * sx];
          o += mp[i * sm] != 0;
        }
      }
    });
  });
}

#define TG_NONZERO(U)                                                                                           \
  template void nonzero_counts<U>(int64_t, const U*, U, int64_t*);                                             \
  template void nonzero_write<U>(int, const int64_t*, int64_t, const U*, U, const int64_t*, int64_t*, int64_t, \
                                 int64_t);
#define TG_COMPRESS(U) \
  template void compress<U>(int, const int64_t*, const U*, const int64_t*, const uint8_t*, const int64_t*, \
                            const int64_t*, U*);
TG_COMPRESS(uint8_t)
TG_COMPRESS(uint16_t)
TG_COMPRESS(uint32_t)
TG_COMPRESS(uint64_t)
#undef TG_COMPRESS
TG_NONZERO(uint8_t)
TG_NONZERO(uint16_t)
TG_NONZERO(uint32_t)
TG_NONZERO(uint64_t)
#undef TG_NONZERO

}  // namespace tapegrad
