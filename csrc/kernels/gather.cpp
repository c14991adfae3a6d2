// Layout: index's shape is viewed as (A, K, B): the dims before d, d itself, the dims after. Each
// operand's offset is table_a[a] + k * stride_d + table_b[b], the tables built from index's sizes
// and the operand's strides (row-major), so every operand may be strided or broadcast. A task is
// a block of rows a and a block of columns b, all of k: it owns every destination
// (a, index, b) of its block, which no other task writes, and visits each destination's
// contributions in increasing k. Block sizes depend on the shape alone.
#include "kernels/gather.h"

#include "kernels/cpu.h"
#include "kernels/isa_variants.h"
#include "kernels/parallel.h"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

namespace tapegrad {
namespace {

constexpr int64_t kTaskElems = 1 << 14;         // index elements per task, about
constexpr int64_t kMinCols = 64;                // columns b per task, at least (whole cache lines)
constexpr int64_t kParallelMinElems = 1 << 15;  // smaller problems stay on the caller

Isa isa() { return kernel_isa(Kernel::rows); }

// How the b-offsets of the operands relate: all equal to b (every operand contiguous in the dims
// after d, the common case), index constant over b with the others equal to b (index_add), or
// read from the tables.
enum class Cols { same, index_const, table };

// One operand seen through index's (A, K, B): offset = a_off[a] + k * sd + b_off[b].
struct View {
  std::vector<int64_t> a_off, b_off;
  int64_t sd = 0;
};

// Row-major offsets of every point of shape[lo, hi) with the given strides.
std::vector<int64_t> offsets(const int64_t* shape, const int64_t* strides, int lo, int hi) {
  std::vector<int64_t> t{0};
  for (int j = lo; j < hi; ++j) {
    std::vector<int64_t> next;
    next.reserve(t.size() * static_cast<size_t>(shape[j]));
    for (int64_t base : t)
      for (int64_t c = 0; c < shape[j]; ++c) next.push_back(base + c * strides[j]);
    t.swap(next);
  }
  return t;
}

View view(int nd, const int64_t* shape, int d, const int64_t* strides) {
  return View{offsets(shape, strides, 0, d), offsets(shape, strides, d + 1, nd), strides[d]};
}

bool is_iota(const std::vector<int64_t>& t) {
  for (size_t b = 0; b < t.size(); ++b)
    if (t[b] != static_cast<int64_t>(b)) return false;
  return true;
}

bool is_zero(const std::vector<int64_t>& t) {
  return std::all_of(t.begin(), t.end(), [](int64_t v) { return v == 0; });
}

// The tasks: blocks of `ga` rows a by `bc` columns b, nb column blocks per row block.
struct Tiles {
  int64_t A, K, B, bc, ga, nb, count;
  Tiles(int nd, const int64_t* shape, int d) {
    A = 1, B = 1, K = shape[d];
    for (int j = 0; j < d; ++j) A *= shape[j];
    for (int j = d + 1; j < nd; ++j) B *= shape[j];
    bc = K * B > kTaskElems ? std::min(B, std::max(kMinCols, kTaskElems / std::max<int64_t>(K, 1))) : B;
    ga = std::max<int64_t>(1, kTaskElems / std::max<int64_t>(K * bc, 1));
    nb = (B + bc - 1) / bc;
    count = (A + ga - 1) / ga * nb;
  }
};

// Whether any of the n indices at ix (stride st) lies outside [0, lim): one pass with no branch,
// so that the copy after it vectorises.
TG_INLINE bool any_out(const int64_t* ix, int64_t st, int64_t cnt, int64_t lim) {
  bool out = false;
  for (int64_t j = 0; j < cnt; ++j) out |= static_cast<uint64_t>(ix[j * st]) >= static_cast<uint64_t>(lim);
  return out;
}

// The first of them outside [0, lim).
TG_INLINE int64_t first_out(const int64_t* ix, int64_t st, int64_t cnt, int64_t lim) {
  for (int64_t j = 0; j < cnt; ++j)
    if (static_cast<uint64_t>(ix[j * st]) >= static_cast<uint64_t>(lim)) return ix[j * st];
  return 0;
}

struct GatherArgs {
  const View *x, *ix;
  int64_t n, K, B;
  Cols cols;
};

template <typename U>
TG_INLINE void gather_tile_body(const GatherArgs& g, const U* x, const int64_t* index, U* out, int64_t a0, int64_t a1,
                                int64_t b0, int64_t b1, bool* failed, int64_t* bad) {
  const int64_t K = g.K, B = g.B, n = g.n, xsd = g.x->sd, isd = g.ix->sd;
  for (int64_t a = a0; a < a1; ++a) {
    const U* xa = x + g.x->a_off[a];
    const int64_t* ia = index + g.ix->a_off[a];
    U* oa = out + a * K * B;
    if (B == 1) {  // along the last dim: one gather per row
      const int64_t* ib = ia + g.ix->b_off[0];
      const U* xb = xa + g.x->b_off[0];
      if (any_out(ib, isd, K, n)) {
        *failed = true, *bad = first_out(ib, isd, K, n);
        return;
      }
      if (isd == 1 && xsd == 1)
        for (int64_t k = 0; k < K; ++k) oa[k] = xb[ib[k]];
      else
        for (int64_t k = 0; k < K; ++k) oa[k] = xb[ib[k * isd] * xsd];
      continue;
    }
    for (int64_t k = 0; k < K; ++k) {
      const int64_t* ik = ia + k * isd;
      U* ok = oa + k * B;
      if (g.cols == Cols::same) {
        if (any_out(ik + b0, 1, b1 - b0, n)) {
          *failed = true, *bad = first_out(ik + b0, 1, b1 - b0, n);
          return;
        }
        for (int64_t b = b0; b < b1; ++b) ok[b] = xa[ik[b] * xsd + b];
      } else if (g.cols == Cols::index_const) {
        const int64_t i = ik[0];
        if (static_cast<uint64_t>(i) >= static_cast<uint64_t>(n)) {
          *failed = true, *bad = i;
          return;
        }
        std::memcpy(ok + b0, xa + i * xsd + b0, sizeof(U) * (b1 - b0));
      } else {
        const int64_t* ibo = g.ix->b_off.data();
        const int64_t* xbo = g.x->b_off.data();
        for (int64_t b = b0; b < b1; ++b) {
          const int64_t i = ik[ibo[b]];
          if (static_cast<uint64_t>(i) >= static_cast<uint64_t>(n)) {
            *failed = true, *bad = i;
            return;
          }
          ok[b] = xa[i * xsd + xbo[b]];
        }
      }
    }
  }
}

struct ScatterArgs {
  const View *o, *ix, *s;
  int64_t n, K, B;
  Cols cols;
  bool acc;
};

template <typename T>
TG_INLINE void put(T& dst, T v, bool acc) {
  if (acc) dst += v;
  else dst = v;
}

template <typename T>
TG_INLINE void scatter_tile_body(const ScatterArgs& g, T* out, const int64_t* index, const T* src, int64_t a0,
                                 int64_t a1, int64_t b0, int64_t b1, bool* failed, int64_t* bad) {
  const int64_t K = g.K, B = g.B, n = g.n, osd = g.o->sd, isd = g.ix->sd, ssd = g.s->sd;
  const bool acc = g.acc;
  for (int64_t a = a0; a < a1; ++a) {
    T* oa = out + g.o->a_off[a];
    const int64_t* ia = index + g.ix->a_off[a];
    const T* sa = src + g.s->a_off[a];
    if (B == 1) {  // along the last dim: the row's contributions in order
      T* ob = oa + g.o->b_off[0];
      const int64_t* ib = ia + g.ix->b_off[0];
      const T* sb = sa + g.s->b_off[0];
      for (int64_t k = 0; k < K; ++k) {
        const int64_t i = ib[k * isd];
        if (static_cast<uint64_t>(i) >= static_cast<uint64_t>(n)) {
          *failed = true, *bad = i;
          return;
        }
        put(ob[i * osd], sb[k * ssd], acc);
      }
      continue;
    }
    for (int64_t k = 0; k < K; ++k) {
      const int64_t* ik = ia + k * isd;
      const T* sk = sa + k * ssd;
      if (g.cols == Cols::same) {
        for (int64_t b = b0; b < b1; ++b) {
          const int64_t i = ik[b];
          if (static_cast<uint64_t>(i) >= static_cast<uint64_t>(n)) {
            *failed = true, *bad = i;
            return;
          }
          put(oa[i * osd + b], sk[b], acc);
        }
      } else if (g.cols == Cols::index_const) {  // a whole row segment to one destination row
        const int64_t i = ik[0];
        if (static_cast<uint64_t>(i) >= static_cast<uint64_t>(n)) {
          *failed = true, *bad = i;
          return;
        }
        T* row = oa + i * osd;
        if (acc)
          for (int64_t b = b0; b < b1; ++b) row[b] += sk[b];
        else
          for (int64_t b = b0; b < b1; ++b) row[b] = sk[b];
      } else {
        const int64_t *obo = g.o->b_off.data(), *ibo = g.ix->b_off.data(), *sbo = g.s->b_off.data();
        for (int64_t b = b0; b < b1; ++b) {
          const int64_t i = ik[ibo[b]];
          if (static_cast<uint64_t>(i) >= static_cast<uint64_t>(n)) {
            *failed = true, *bad = i;
            return;
          }
          put(oa[i * osd + obo[b]], sk[sbo[b]], acc);
        }
      }
    }
  }
}

TG_VARIANTS(gather_tile,
            (const GatherArgs& g, const T* x, const int64_t* index, T* out, int64_t a0, int64_t a1, int64_t b0,
             int64_t b1, bool* failed, int64_t* bad),
            (g, x, index, out, a0, a1, b0, b1, failed, bad))
TG_VARIANTS(scatter_tile,
            (const ScatterArgs& g, T* out, const int64_t* index, const T* src, int64_t a0, int64_t a1, int64_t b0,
             int64_t b1, bool* failed, int64_t* bad),
            (g, out, index, src, a0, a1, b0, b1, failed, bad))

// Runs tile(t, a0, a1, b0, b1, failed, bad) for every task; false with *bad the first task's bad
// index if any task met one.
template <typename F>
bool run_tiles(const Tiles& t, F tile, int64_t* bad) {
  std::vector<char> failed(static_cast<size_t>(t.count), 0);
  std::vector<int64_t> bads(static_cast<size_t>(t.count), 0);
  parallel_tiles(t.count, t.A * t.K * t.B >= kParallelMinElems, [&](int64_t j) {
    const int64_t ra = j / t.nb, rb = j % t.nb;
    const int64_t a0 = ra * t.ga, a1 = std::min(t.A, a0 + t.ga), b0 = rb * t.bc, b1 = std::min(t.B, b0 + t.bc);
    bool f = false;
    tile(a0, a1, b0, b1, &f, &bads[j]);
    failed[j] = f;
  });
  for (int64_t j = 0; j < t.count; ++j)
    if (failed[j]) {
      *bad = bads[j];
      return false;
    }
  return true;
}

}  // namespace

template <typename U>
bool gather_dim(int nd, const int64_t* shape, int d, const U* x, const int64_t* xs, int64_t n, const int64_t* index,
                const int64_t* is, U* out, int64_t* bad) {
  for (int j = 0; j < nd; ++j)
    if (shape[j] == 0) return true;
  const Tiles t(nd, shape, d);
  const View xv = view(nd, shape, d, xs), iv = view(nd, shape, d, is);
  const bool x_iota = is_iota(xv.b_off);
  const Cols cols = x_iota && is_iota(iv.b_off) ? Cols::same : x_iota && is_zero(iv.b_off) ? Cols::index_const : Cols::table;
  const GatherArgs g{&xv, &iv, n, t.K, t.B, cols};
  return run_tiles(
      t,
      [&](int64_t a0, int64_t a1, int64_t b0, int64_t b1, bool* failed, int64_t* b) {
        TG_CALL(gather_tile, U, g, x, index, out, a0, a1, b0, b1, failed, b);
      },
      bad);
}

template <typename T>
bool scatter_dim(int nd, const int64_t* shape, int d, T* out, const int64_t* os, int64_t n, const int64_t* index,
                 const int64_t* is, const T* src, const int64_t* ss, bool accumulate, int64_t* bad) {
  for (int j = 0; j < nd; ++j)
    if (shape[j] == 0) return true;
  const Tiles t(nd, shape, d);
  const View ov = view(nd, shape, d, os), iv = view(nd, shape, d, is), sv = view(nd, shape, d, ss);
  const bool os_iota = is_iota(ov.b_off) && is_iota(sv.b_off);
  const Cols cols = os_iota && is_iota(iv.b_off) ? Cols::same : os_iota && is_zero(iv.b_off) ? Cols::index_const : Cols::table;
  const ScatterArgs g{&ov, &iv, &sv, n, t.K, t.B, cols, accumulate};
  return run_tiles(
      t,
      [&](int64_t a0, int64_t a1, int64_t b0, int64_t b1, bool* failed, int64_t* b) {
        TG_CALL(scatter_tile, T, g, out, index, src, a0, a1, b0, b1, failed, b);
      },
      bad);
}

#define TG_GATHER(U)                                                                                               \
  template bool gather_dim<U>(int, const int64_t*, int, const U*, const int64_t*, int64_t, const int64_t*,      \
                              const int64_t*, U*, int64_t*);
TG_GATHER(uint8_t)
TG_GATHER(uint16_t)
TG_GATHER(uint32_t)
TG_GATHER(uint64_t)
#undef TG_GATHER

// The overwrite copies bits (the unsigned types, any dtype of their width); the sums are typed.
#define TG_SCATTER(T)                                                                                              \
  template bool scatter_dim<T>(int, const int64_t*, int, T*, const int64_t*, int64_t, const int64_t*,           \
                               const int64_t*, const T*, const int64_t*, bool, int64_t*);
TG_SCATTER(uint8_t)
TG_SCATTER(uint16_t)
TG_SCATTER(uint32_t)
TG_SCATTER(uint64_t)
TG_SCATTER(float)
TG_SCATTER(double)
TG_SCATTER(int32_t)
TG_SCATTER(int64_t)
#undef TG_SCATTER

}  // namespace tapegrad
