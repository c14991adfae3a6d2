// batch_norm and group_norm kernels (see norm.h for the layout).
//
// Every loop body is written once (a template, inlined) and compiled for the baseline ISA and,
// through target attributes, for AVX2+FMA and AVX-512, chosen at run time by CPU feature (cpu.h).
// Work is cut into tiles fixed by the shape (parallel_tiles hands them out): statistics of a
// tile are written to their own slot and merged afterwards in slot order.
#include "kernels/norm.h"

#include "kernels/cpu.h"
#include "kernels/isa_variants.h"
#include "kernels/lane_sums.h"
#include "kernels/parallel.h"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <type_traits>
#include <vector>

namespace tapegrad {
namespace {


// Elements below which a fork costs more than it saves.
constexpr int64_t kParallelMinElems = 1 << 15;
// Elements a tile covers: a statistics tile is read twice (sum, then squares about its mean),
// so it should stay in L2 between the passes (16384 floats: 64 KiB).
constexpr int64_t kTile = 16384;
// group_norm takes a group at a time (its statistics or sums, then its output or input gradient
// from cache) when there are at least this many groups to share among the threads; with fewer it
// splits the planes.
constexpr int64_t kMinGroupsFused = 8;

Isa isa() {
  static const Isa chosen = kernel_isa(Kernel::norm);
  return chosen;
}

// ---------------------------------------------------------------- loop bodies
// Each run of elements is reduced on its own in lanes (lane_sums.h: kLaneBytes of partials, moved
// into double lanes every 1024 elements, added pairwise): a fixed order, the same arithmetic for
// every ISA.
constexpr int64_t kLaneBytes = 128;

// Term functions for lanes::vsums return vectors: inlined always, or they are functions of the
// baseline ISA returning them through memory.
#define TG_LAMBDA_INLINE __attribute__((always_inline))

// s1 = sum over i in [0, len) of f1(i), s2 that of f2(i) (each a T) unless F2 is nullptr_t.
template <typename T, typename F1, typename F2>
TG_INLINE void run_sums(int64_t len, F1 f1, F2 f2, double& s1, double& s2) {
  lanes::sums<T, kLaneBytes>(len, f1, f2, s1, s2);
}

// The statistics in double throughout (the variance feeds the running statistics, which keep
// float64 accuracy), in double lanes.
template <typename T>
TG_INLINE double run_sum(const T* r, int64_t len) {
  double s, unused;
  run_sums<double>(len, [&](int64_t i) { return double(r[i]); }, nullptr, s, unused);
  return s;
}

template <typename T>
TG_INLINE double run_sq_dev(const T* r, int64_t len, double mu) {
  double v, unused;
  run_sums<double>(
      len,
      [&](int64_t i) {
        const double c = double(r[i]) - mu;
        return c * c;
      },
      nullptr, v, unused);
  return v;
}

template <typename T>
TG_INLINE void moments_body(const T* x, int64_t planes, int64_t stride, int64_t len, double* mean, double* m2) {
  double s = 0;
  for (int64_t p = 0; p < planes; ++p) s += run_sum(x + p * stride, len);
  const double mu = s / double(planes * len);
  double v = 0;
  for (int64_t p = 0; p < planes; ++p) v += run_sq_dev(x + p * stride, len, mu);
  *mean = mu;
  *m2 = v;
}

// sum(g) and sum(g (x - m)) over `planes` runs of `len` elements, `stride` apart.
template <typename T>
TG_INLINE void sums_body(const T* g, const T* x, int64_t planes, int64_t stride, int64_t len, T m, double* sg,
                         double* sgx) {
  double a = 0, b = 0;
  for (int64_t p = 0; p < planes; ++p) {
    const T* gr = g + p * stride;
    const T* xr = x + p * stride;
    double pa, pb;
    if (len < 4 * (kLaneBytes / int64_t(sizeof(T)))) {
      // A short run (group_norm's planes of 8 x 8): the same sums in registers (lanes::vsums),
      // 32 x 64 x 8 x 8 float32 in 32 groups 56-58 -> 50-52 us backward, 1 thread. (Long runs,
      // and the forward's sums in double lanes, ran slower so.)
      lanes::vsums<T, kLaneBytes>(
          len, [&](auto n, int64_t j, int64_t k) TG_LAMBDA_INLINE { return lanes::load<decltype(n)::value>(gr + j, k); },
          [&](auto n, int64_t j, int64_t k) TG_LAMBDA_INLINE {  // 0 past k, as g is there
            constexpr int64_t N = decltype(n)::value;
            return lanes::load<N>(gr + j, k) * (lanes::load<N>(xr + j, k) - m);
          },
          pa, pb);
    } else {
      run_sums<T>(len, [&](int64_t i) { return gr[i]; }, [&](int64_t i) { return gr[i] * (xr[i] - m); }, pa, pb);
    }
    a += pa;
    b += pb;
  }
  *sg = a;
  *sgx = b;
}

template <typename T>
TG_INLINE void affine_body(int64_t n, const T* x, T m, T a, T b, T* y) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) y[i] = (x[i] - m) * a + b;
}

template <typename T>
TG_INLINE void backward_input_body(int64_t n, const T* g, const T* x, T m, T a, T k, T d, T* gx) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) gx[i] = g[i] * a + ((x[i] - m) * k + d);
}

// The same over `runs` runs of len elements back to back, each its own (small groups a batch at a
// time: every phase's runs are independent, so one run's division or sums overlap the next's
// instead of waiting on them). mean[i] and m2[i] are run i's, as moments_body gives for one.
template <typename T>
TG_INLINE void moments_each_body(const T* x, int64_t runs, int64_t len, double* mean, double* m2) {
  for (int64_t i = 0; i < runs; ++i) mean[i] = run_sum(x + i * len, len);
  for (int64_t i = 0; i < runs; ++i) mean[i] /= double(len);
  for (int64_t i = 0; i < runs; ++i) m2[i] = run_sq_dev(x + i * len, len, mean[i]);
}

// Run i with run i's m, a, b.
template <typename T>
TG_INLINE void affine_each_body(int64_t runs, int64_t len, const T* x, const T* m, const T* a, const T* b, T* y) {
  for (int64_t i = 0; i < runs; ++i) affine_body(len, x + i * len, m[i], a[i], b[i], y + i * len);
}

// Run i's sums about m[i / per] (per runs share a mean: a group's planes).
template <typename T>
TG_INLINE void sums_each_body(const T* g, const T* x, int64_t runs, int64_t len, int64_t per, const T* m,
                              double* sg, double* sgx) {
  for (int64_t i = 0; i < runs; ++i)
    sums_body(g + i * len, x + i * len, 1, 0, len, m[i / per], &sg[i], &sgx[i]);
}

template <typename T>
TG_INLINE void backward_input_each_body(int64_t runs, int64_t len, int64_t per, const T* g, const T* x, const T* m,
                                        const T* a, const T* k, const T* d, T* gx) {
  for (int64_t i = 0; i < runs; ++i)
    backward_input_body(len, g + i * len, x + i * len, m[i / per], a[i], k[i], d[i], gx + i * len);
}

#undef TG_VARIANTS  // this file's form: the shared one's, noclone as well as noinline
#define TG_VARIANTS(name, params, args)                                                       \
  template <typename T>                                                                       \
  __attribute__((noinline, noclone)) void name##_base params { name##_body<T> args; }         \
  template <typename T>                                                                       \
  TG_AVX2 __attribute__((noinline, noclone)) void name##_avx2 params { name##_body<T> args; } \
  template <typename T>                                                                       \
  TG_AVX512 __attribute__((noinline, noclone)) void name##_avx512 params { name##_body<T> args; }

TG_VARIANTS(moments, (const T* x, int64_t planes, int64_t stride, int64_t len, double* mean, double* m2),
            (x, planes, stride, len, mean, m2))
TG_VARIANTS(sums, (const T* g, const T* x, int64_t planes, int64_t stride, int64_t len, T m, double* sg, double* sgx),
            (g, x, planes, stride, len, m, sg, sgx))
TG_VARIANTS(affine, (int64_t n, const T* x, T m, T a, T b, T* y), (n, x, m, a, b, y))
TG_VARIANTS(backward_input, (int64_t n, const T* g, const T* x, T m, T a, T k, T d, T* gx), (n, g, x, m, a, k, d, gx))
TG_VARIANTS(moments_each, (const T* x, int64_t runs, int64_t len, double* mean, double* m2), (x, runs, len, mean, m2))
TG_VARIANTS(affine_each, (int64_t runs, int64_t len, const T* x, const T* m, const T* a, const T* b, T* y),
            (runs, len, x, m, a, b, y))
TG_VARIANTS(sums_each, (const T* g, const T* x, int64_t runs, int64_t len, int64_t per, const T* m, double* sg,
                        double* sgx),
            (g, x, runs, len, per, m, sg, sgx))
TG_VARIANTS(backward_input_each, (int64_t runs, int64_t len, int64_t per, const T* g, const T* x, const T* m,
                                  const T* a, const T* k, const T* d, T* gx),
            (runs, len, per, g, x, m, a, k, d, gx))
#undef TG_VARIANTS

// Chan et al.'s pairwise update: (n, mean, m2) absorbs a block of nb elements.
inline void merge_moments(double& n, double& mean, double& m2, double nb, double mean_b, double m2_b) {
  const double tot = n + nb, d = mean_b - mean;
  mean += d * (nb / tot);
  m2 += m2_b + d * d * (n * nb / tot);
  n = tot;
}

// fn(p, s0, s1) over every plane p of P planes of S elements, in tasks of about kTile elements
// (whole planes, or pieces of one large plane); elementwise work, so any split gives one result.
template <typename F>
void for_planes(int64_t P, int64_t S, F fn) {
  const bool par = P * S >= kParallelMinElems;
  if (S >= kTile) {
    const int64_t pieces = (S + kTile - 1) / kTile;
    parallel_tiles(P * pieces, par, [&](int64_t t) {
      const int64_t p = t / pieces, s0 = (t % pieces) * kTile;
      fn(p, s0, std::min(S, s0 + kTile));
    });
  } else {
    const int64_t per = kTile / S, ntasks = (P + per - 1) / per;
    parallel_tiles(ntasks, par, [&](int64_t t) {
      for (int64_t p = t * per, pe = std::min(P, (t + 1) * per); p < pe; ++p) fn(p, 0, S);
    });
  }
}

// fn(r0, r1) over the R groups of D elements in ranges of whole groups, about kBatch elements
// each. Small groups share a range, which is taken phase by phase (all its sums, then all its
// coefficients, then all its outputs) while it stays in L1: one group's divisions and square
// root then overlap the next group's sums instead of stalling its output, and the range takes
// one call of each loop body instead of one per group. (A group at a time, group_norm forward
// and backward over 32 x 64 x 8 x 8 float32 in 32 groups took 74 and 72 us on one thread; by
// ranges 56 and 61.)
constexpr int64_t kBatch = 4096;
template <typename F>
void for_groups(int64_t R, int64_t D, bool par, F fn) {
  const int64_t per = std::max<int64_t>(1, kBatch / std::max<int64_t>(D, 1)), ntasks = (R + per - 1) / per;
  parallel_tiles(ntasks, par, [&](int64_t t) { fn(t * per, std::min(R, (t + 1) * per)); });
}

// batch_norm's tiles: channel c, samples [n0, n1) with about kTile elements (whole planes).
struct ChannelTiles {
  int64_t per, blocks;  // samples a tile, tiles a channel
  ChannelTiles(int64_t N, int64_t S) : per(std::max<int64_t>(1, kTile / std::max<int64_t>(S, 1))), blocks((N + per - 1) / per) {}
};

}  // namespace

template <typename T>
void batch_norm_stats(int64_t N, int64_t C, int64_t S, const T* x, double* mean, double* var) {
  const ChannelTiles tiles(N, S);
  std::vector<double> tm(C * tiles.blocks), tv(C * tiles.blocks);
  parallel_tiles(C * tiles.blocks, N * C * S >= kParallelMinElems, [&](int64_t t) {
    const int64_t c = t / tiles.blocks, n0 = (t % tiles.blocks) * tiles.per, n1 = std::min(N, n0 + tiles.per);
    TG_CALL(moments, T, x + (n0 * C + c) * S, n1 - n0, C * S, S, &tm[t], &tv[t]);
  });
  for (int64_t c = 0; c < C; ++c) {
    double n = 0, mu = 0, m2 = 0;
    for (int64_t b = 0; b < tiles.blocks; ++b) {
      const int64_t n0 = b * tiles.per, cnt = (std::min(N, n0 + tiles.per) - n0) * S;
      merge_moments(n, mu, m2, double(cnt), tm[c * tiles.blocks + b], tv[c * tiles.blocks + b]);
    }
    mean[c] = mu;
    var[c] = m2 / n;
  }
}

template <typename T>
void channel_affine(int64_t N, int64_t C, int64_t S, const T* x, const T* mean, const T* scale, const T* shift,
                    T* y) {
  for_planes(N * C, S, [&](int64_t p, int64_t s0, int64_t s1) {
    const int64_t c = p % C, o = p * S + s0;
    TG_CALL(affine, T, s1 - s0, x + o, mean[c], scale[c], shift[c], y + o);
  });
}

template <typename T>
void batch_norm_backward_reduce(int64_t N, int64_t C, int64_t S, const T* g, const T* x, const T* mean,
                                double* sum_g, double* sum_gxc) {
  const ChannelTiles tiles(N, S);
  std::vector<double> ta(C * tiles.blocks), tb(C * tiles.blocks);
  parallel_tiles(C * tiles.blocks, N * C * S >= kParallelMinElems, [&](int64_t t) {
    const int64_t c = t / tiles.blocks, n0 = (t % tiles.blocks) * tiles.per, n1 = std::min(N, n0 + tiles.per);
    const int64_t o = (n0 * C + c) * S;
    TG_CALL(sums, T, g + o, x + o, n1 - n0, C * S, S, mean[c], &ta[t], &tb[t]);
  });
  for (int64_t c = 0; c < C; ++c) {
    double a = 0, b = 0;
    for (int64_t k = 0; k < tiles.blocks; ++k) {
      a += ta[c * tiles.blocks + k];
      b += tb[c * tiles.blocks + k];
    }
    sum_g[c] = a;
    sum_gxc[c] = b;
  }
}

template <typename T>
void batch_norm_backward_input(int64_t N, int64_t C, int64_t S, const T* g, const T* x, const T* mean,
                               const T* mg, const T* k, const T* a, T* gx) {
  // (g - mg - xc k) a as g a + (xc (-k a) + (-mg a)): one multiply-add chain per element
  std::vector<T> kk(C), dd(C);
  for (int64_t c = 0; c < C; ++c) {
    kk[c] = mg ? T(-double(k[c]) * double(a[c])) : T(0);
    dd[c] = mg ? T(-double(mg[c]) * double(a[c])) : T(0);
  }
  for_planes(N * C, S, [&](int64_t p, int64_t s0, int64_t s1) {
    const int64_t c = p % C, o = p * S + s0;
    TG_CALL(backward_input, T, s1 - s0, g + o, x + o, mean[c], a[c], kk[c], dd[c], gx + o);
  });
}

template <typename T>
void group_norm_forward(int64_t N, int64_t C, int64_t S, int64_t G, const T* x, const T* w, const T* b, double eps,
                        T* y, T* mean, T* rstd, double* var) {
  const int64_t Cg = C / G, D = Cg * S, R = N * G;
  const int64_t pieces = (D + kTile - 1) / kTile;
  std::vector<double> tm(R * pieces), tv(R * pieces);
  const bool par = N * C * S >= kParallelMinElems;
  auto piece = [&](int64_t t) {  // moments of piece t % pieces of group t / pieces
    const int64_t r = t / pieces, d0 = (t % pieces) * kTile;
    TG_CALL(moments, T, x + r * D + d0, 1, 0, std::min(D, d0 + kTile) - d0, &tm[t], &tv[t]);
  };
  std::vector<T> pm(N * C), ps(N * C), pb(N * C);  // each plane's centre, scale and shift
  auto statistics = [&](int64_t r) {  // group r's pieces merged in order
    double n = 0, mu = 0, m2 = 0;
    for (int64_t k = 0; k < pieces; ++k)
      merge_moments(n, mu, m2, double(std::min(D, (k + 1) * kTile) - k * kTile), tm[r * pieces + k],
                    tv[r * pieces + k]);
    const double v = m2 / n, rs = 1.0 / std::sqrt(v + eps);
    mean[r] = T(mu);
    rstd[r] = T(rs);
    if (var) var[r] = v;
    for (int64_t j = 0; j < Cg; ++j) {
      const int64_t c = (r % G) * Cg + j, p = (r / G) * C + c;
      pm[p] = T(mu);
      ps[p] = T(w ? rs * double(w[c]) : rs);
      pb[p] = b ? b[c] : T(0);
    }
  };
  if (R >= kMinGroupsFused) {
    // A range of groups at a time: their statistics, then their output while x is still in cache
    // (one read of x from memory instead of two). The same arithmetic as the path below. Group
    // r's planes are r Cg .. r Cg + Cg - 1, its elements x[r D, r D + D).
    for_groups(R, D, par, [&](int64_t r0, int64_t r1) {
      if (pieces == 1) {
        TG_CALL(moments_each, T, x + r0 * D, r1 - r0, D, &tm[r0], &tv[r0]);
      } else {
        for (int64_t t = r0 * pieces; t < r1 * pieces; ++t) piece(t);
      }
      for (int64_t r = r0; r < r1; ++r) statistics(r);
      TG_CALL(affine_each, T, (r1 - r0) * Cg, S, x + r0 * D, &pm[r0 * Cg], &ps[r0 * Cg], &pb[r0 * Cg], y + r0 * D);
    });
    return;
  }
  parallel_tiles(R * pieces, par, piece);
  for (int64_t r = 0; r < R; ++r) statistics(r);
  for_planes(N * C, S, [&](int64_t p, int64_t s0, int64_t s1) {
    const int64_t o = p * S + s0;
    TG_CALL(affine, T, s1 - s0, x + o, pm[p], ps[p], pb[p], y + o);
  });
}

namespace {
// Each plane's sum(g) and sum(g (x - mean of its group)), in double (N C each).
template <typename T>
void group_plane_sums(int64_t N, int64_t C, int64_t S, int64_t G, const T* g, const T* x, const T* mean,
                      std::vector<double>& sg, std::vector<double>& sgx) {
  const int64_t P = N * C, Cg = C / G;
  const int64_t per = std::max<int64_t>(1, kTile / S), ntasks = (P + per - 1) / per;
  parallel_tiles(ntasks, P * S >= kParallelMinElems, [&](int64_t t) {
    for (int64_t p = t * per, pe = std::min(P, (t + 1) * per); p < pe; ++p)
      TG_CALL(sums, T, g + p * S, x + p * S, 1, 0, S, mean[p / Cg], &sg[p], &sgx[p]);
  });
}
}  // namespace

template <typename T>
void group_norm_backward(int64_t N, int64_t C, int64_t S, int64_t G, const T* g, const T* x, const T* mean,
                         const T* rstd, const T* w, T* gx, T* gw, T* gb) {
  const int64_t Cg = C / G, R = N * G;
  const double D = double(Cg * S);
  std::vector<double> sg(N * C), sgx(N * C);
  std::vector<T> pa(N * C), pk(N * C), pd(N * C);
  // gx = rstd (g w - A / D - (x - mean) rstd^2 B / D) as g a + ((x - mean) k + d) per plane, A and
  // B the group's sum(g w) and sum(g w (x - mean)); group r's coefficients from its planes' sums.
  auto coefficients = [&](int64_t r) {
    const int64_t n = r / G, c0 = (r % G) * Cg;
    double A = 0, B = 0;
    for (int64_t j = 0; j < Cg; ++j) {
      const double wc = w ? double(w[c0 + j]) : 1.0;
      A += wc * sg[n * C + c0 + j];
      B += wc * sgx[n * C + c0 + j];
    }
    const double rs = double(rstd[r]);
    for (int64_t j = 0; j < Cg; ++j) {
      const int64_t p = n * C + c0 + j;
      pa[p] = T(rs * (w ? double(w[c0 + j]) : 1.0));
      pk[p] = T(-rs * rs * rs * B / D);
      pd[p] = T(-rs * A / D);
    }
  };
  if (gx && R >= kMinGroupsFused) {
    // A range of groups at a time: their sums, then their input gradient while g and x are still
    // in cache (one read of them from memory instead of two). The same arithmetic as the path
    // below. Group r's planes are r Cg .. r Cg + Cg - 1.
    for_groups(R, Cg * S, N * C * S >= kParallelMinElems, [&](int64_t r0, int64_t r1) {
      const int64_t p0 = r0 * Cg, o = p0 * S, np = (r1 - r0) * Cg;
      TG_CALL(sums_each, T, g + o, x + o, np, S, Cg, mean + r0, &sg[p0], &sgx[p0]);
      for (int64_t r = r0; r < r1; ++r) coefficients(r);
      TG_CALL(backward_input_each, T, np, S, Cg, g + o, x + o, mean + r0, &pa[p0], &pk[p0], &pd[p0], gx + o);
    });
  } else {
    group_plane_sums(N, C, S, G, g, x, mean, sg, sgx);
    if (gx) {
      for (int64_t r = 0; r < R; ++r) coefficients(r);
      for_planes(N * C, S, [&](int64_t p, int64_t s0, int64_t s1) {
        const int64_t o = p * S + s0;
        TG_CALL(backward_input, T, s1 - s0, g + o, x + o, mean[p / Cg], pa[p], pk[p], pd[p], gx + o);
      });
    }
  }
  if (gw || gb) {  // over the samples in order, per channel
    for (int64_t c = 0; c < C; ++c) {
      double a = 0, b = 0;
      for (int64_t n = 0; n < N; ++n) {
        a += sg[n * C + c];
        b += sgx[n * C + c] * double(rstd[n * G + c / Cg]);
      }
      if (gw) gw[c] = T(b);
      if (gb) gb[c] = T(a);
    }
  }
}

#define TG_INSTANTIATE(T)                                                                                      \
  template void batch_norm_stats<T>(int64_t, int64_t, int64_t, const T*, double*, double*);                   \
  template void channel_affine<T>(int64_t, int64_t, int64_t, const T*, const T*, const T*, const T*, T*);     \
  template void batch_norm_backward_reduce<T>(int64_t, int64_t, int64_t, const T*, const T*, const T*, double*, \
                                              double*);                                                       \
  template void batch_norm_backward_input<T>(int64_t, int64_t, int64_t, const T*, const T*, const T*, const T*, \
                                             const T*, const T*, T*);                                         \
  template void group_norm_forward<T>(int64_t, int64_t, int64_t, int64_t, const T*, const T*, const T*, double, \
                                      T*, T*, T*, double*);                                                   \
  template void group_norm_backward<T>(int64_t, int64_t, int64_t, int64_t, const T*, const T*, const T*,       \
                                       const T*, const T*, T*, T*, T*);
TG_INSTANTIATE(float)
TG_INSTANTIATE(double)
#undef TG_INSTANTIATE

}  // namespace tapegrad
