// Fused LSTM and GRU layers (see rnn.h for the layout).
//
// GRU, per step: one GEMM writes h W_hh^T, then one pass over the step's rows adds the input
// projection, applies the gates' nonlinearities and updates the state. W_hh is packed for the
// GEMM once per call (PackedB), not at every step: with B = 20 rows a step's product is too
// short to pay for re-packing the whole weight.
//
// LSTM: a step is cut by blocks of hidden units, and one block's GEMM columns (its units' four
// gates; W_hh's rows regrouped at packing so that they are adjacent) are followed at once by its
// gates, while the product is in L1. The backward is blocked likewise: a block finishes its
// columns of the previous step's dh_prev = dgates W_hh (which needs all of that step's gates) and
// then computes its units' gate gradients, which need only those columns. The steps of a whole
// call run on one team. With enough batch rows (sequences) the threads split the rows
// (steps_by_rows): each runs every step of its own rows, which need nothing from the others, so
// there is no synchronisation at all. With too few rows they split each step's blocks
// (steps_by_blocks) and wait for each other between steps; 2 threads ran the 35 steps of a
// 20 x 256 layer only 1.4x (forward) to 1.5x (backward) faster than one that way, 1.8x split by
// rows.
//
// The backward runs the steps in the opposite order; the weight's gradient is a single
// (gates x N) @ (N x H) GEMM over all steps at the end, instead of a rank-B update per step.
#include "kernels/rnn.h"

#include <algorithm>
#include <atomic>
#include <cstring>
#include <memory>
#include <thread>
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

// The hidden units of a layer cut into blocks of about kUnitBlock units: the work of a step is
// split by blocks of units, the block's GEMM columns and then its gates.
constexpr int64_t kUnitBlock = 64;
// A step's multiply-adds (B x 4H x H) below which the steps run on one thread: a step of the team
// costs a synchronisation of the threads, about a microsecond.
constexpr double kTeamMinWork = 1 << 17;

struct UnitBlocks {
  int64_t H, nb, wmax;
  explicit UnitBlocks(int64_t H)
      : H(H), nb(std::max<int64_t>(1, (H + kUnitBlock / 2) / kUnitBlock)), wmax((H + nb - 1) / nb) {}
  int64_t begin(int64_t b) const { return H * b / nb; }
  int64_t end(int64_t b) const { return H * (b + 1) / nb; }
  int64_t width(int64_t b) const { return end(b) - begin(b); }
  // The threads for steps of rows x G x H multiply-adds, when they split the blocks.
  int team(int64_t rows, int64_t G) const {
    if (nb < 2 || in_parallel_region() || double(rows) * double(G) * double(H) < kTeamMinWork) return 1;
    return int(std::min<int64_t>(nb, num_threads()));
  }
};

// Rows (sequences) per thread from which the threads split a layer's batch rows rather than its
// blocks of units.
constexpr int64_t kMinTeamRows = 8;

// The threads that split a layer's B rows for steps of B x G x H multiply-adds: every thread,
// once each gets kMinTeamRows rows, else 1 (the blocks are split instead, UnitBlocks::team).
int row_team(int64_t B, int64_t G, int64_t H) {
  const int nt = num_threads();
  if (nt < 2 || in_parallel_region() || double(B) * double(G) * double(H) < kTeamMinWork || B < nt * kMinTeamRows)
    return 1;
  return nt;
}

// fn(r0, r1, share) on nt threads for rows [r0, r1), share s of nt taking rows [B s / nt,
// B (s + 1) / nt): a sequence's recurrence involves only its own row at every step, so a thread
// runs all the steps of its rows with no synchronisation at all, where splitting the blocks of
// units costs a wait per step and moves every step's state between the cores' caches (20 x 256
// LSTM, 35 steps, 2 threads: forward 1.9 -> 1.4 ms, backward 2.8 -> 2.3 ms). The rows of a
// step's product are computed the same way however many of them a call has (gemm.cpp), so the
// result is the same for any split.
// The blocks' B operands, make(b) for each block b, packed a block per thread when the steps
// run on a team (parallel > 1): packed on one thread, W_hh (1 MiB at 256 x 1024 float32) took
// about as long as two steps of a 20-row batch, before any step could start.
template <typename T, class F>
std::vector<std::unique_ptr<PackedB<T>>> pack_blocks(int64_t nb, int parallel, F&& make) {
  std::vector<std::unique_ptr<PackedB<T>>> packed(static_cast<size_t>(nb));
  parallel_tiles(nb, parallel > 1, [&](int64_t b) { packed[size_t(b)] = make(b); });
  return packed;
}

template <class F>
void steps_by_rows(int64_t B, int nt, F&& fn) {
  parallel(nt, [&](int s, int ns) { fn(B * s / ns, B * (s + 1) / ns, s); });
}

inline void spin_pause() {
#if defined(__x86_64__)
  __builtin_ia32_pause();
#endif
}

// fn(k, b, share) for every round k in [0, rounds) and block b in [0, nb), the rounds in order:
// every block of round k is done before any block of round k + 1 starts (a step needs the whole
// state the step before left). One team for all the rounds rather than one per step. In each
// round a thread first claims its own blocks (share s of nt: from block s * nb / nt on), so a
// block's slice of the weight stays in one core's L2 from step to step (taken by whoever came
// first, they moved between the cores' caches at every step: 2 threads were only 1.3x faster
// than one per step); then it claims any block still unclaimed, and once none is left it waits
// for the round to be done. A thread only waits for blocks being run by threads that wait for
// nothing, and a worker that never joins costs nothing: the caller claims every block itself.
// share (< nt) also tells apart the threads running at once, for their scratch. fn's arithmetic
// depends only on (k, b): the result is the same for any nt and any timing.
template <class F>
void steps_by_blocks(int64_t rounds, int64_t nb, int nt, F&& fn) {
  if (nt <= 1) {
    for (int64_t k = 0; k < rounds; ++k)
      for (int64_t b = 0; b < nb; ++b) fn(k, b, 0);
    return;
  }
  // claimed[b]: the last round whose block b a thread has claimed.
  std::unique_ptr<std::atomic<int64_t>[]> claimed(new std::atomic<int64_t>[static_cast<size_t>(nb)]);
  for (int64_t b = 0; b < nb; ++b) claimed[b].store(-1, std::memory_order_relaxed);
  std::atomic<int64_t> done{0};
  std::atomic<bool> failed{false};
  parallel(nt, [&](int share, int nshares) {
    const int64_t home = nb * share / nshares;
    for (int64_t k = done.load(std::memory_order_acquire) / nb; k < rounds; ++k) {
      for (int spin = 0; done.load(std::memory_order_acquire) < k * nb; ++spin) {
        if (spin < 4096) spin_pause();
        else std::this_thread::yield();
      }
      for (int64_t i = 0; i < nb; ++i) {
        const int64_t b = (home + i) % nb;
        int64_t last = k - 1;
        if (claimed[b].load(std::memory_order_relaxed) != last ||
            !claimed[b].compare_exchange_strong(last, k, std::memory_order_relaxed))
          continue;
        // A block that threw still counts as done, so that no thread waits for it; the blocks
        // after it are skipped and parallel() rethrows the exception.
        try {
          if (!failed.load(std::memory_order_relaxed)) fn(k, b, share);
        } catch (...) {
          failed.store(true, std::memory_order_relaxed);
          done.fetch_add(1, std::memory_order_release);
          throw;
        }
        done.fetch_add(1, std::memory_order_release);
      }
    }
  });
}

// The recurrent product C (M x N, row-major) = A (M x K, row-major, rows lda apart) @ B (B's
// element (p, j) at b[p * rsb + j * csb]) of a call with a single step (LSTMCell, GRUCell): the
// weight is used once, so it is not packed whole beforehand (PackedB: 1 MiB copied and
// allocated at 256 x 1024 float32, longer than the product) but by gemm's own packing, a panel
// at a time into L1 right before its use. The arithmetic is gemm's, the same as with a PackedB.
// n elements, not zeroed: for scratch that is written whole before it is read.
template <typename T>
std::unique_ptr<T[]> uninitialized(int64_t n) {
  return std::unique_ptr<T[]>(new T[static_cast<size_t>(n)]);
}

template <typename T>
void one_step_product(int64_t M, int64_t N, int64_t K, const T* a, int64_t lda, const T* b, int64_t rsb, int64_t csb,
                      T* c) {
  gemm<T>(M, N, K, T(1), a, lda, 1, b, rsb, csb, T(0), c, N, 1);
}

// A one-step backward's two products, dh = dgates W_hh and W_hh's gradient dgates^T h, need
// nothing of each other: below this many multiply-adds each, they run side by side, one per
// thread (side_by_side), rather than one after the other with each split over the threads by
// gemm, which at these sizes gains little (20 x 1024 @ 1024 x 256 float32: 74 us on 1 thread, 74
// on 2; the weight's gradient 69 -> 50).
constexpr double kPairMaxWork = 1 << 24;

// a() and b() on two threads when `pair` (and the thread count allows), else one after the
// other. Each is a serial computation inside the region, and gemm's result does not depend on
// its thread count, so neither does the outcome.
template <class A, class B>
void side_by_side(bool pair, A&& a, B&& b) {
  parallel_tiles(2, pair, [&](int64_t t) {
    if (t == 0) a();
    else b();
  });
}

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
  auto NAME##_pick() {                                                                            \
    return use_avx512() ? NAME##_avx512<T> : use_avx2() ? NAME##_avx2<T> : NAME##_base<T>;        \
  }                                                                                               \
  template <typename T>                                                                           \
  void NAME##_run(const NAME##_args<T>& a, int64_t rows, int64_t H) {                              \
    const auto fn = NAME##_pick<T>();                                                             \
    parallel_for(rows, rows * H >= kParallelMinElems, [&](int64_t b, int64_t e) { fn(a, b, e); }); \
  }
#else
#define TG_GATE_PASS(NAME)                                                                        \
  template <typename T>                                                                           \
  auto NAME##_pick() {                                                                            \
    return NAME<T>;                                                                               \
  }                                                                                               \
  template <typename T>                                                                           \
  void NAME##_run(const NAME##_args<T>& a, int64_t rows, int64_t H) {                              \
    parallel_for(rows, rows * H >= kParallelMinElems, [&](int64_t b, int64_t e) { NAME<T>(a, b, e); }); \
  }
#endif

// ---- LSTM forward: gates (activated), states and outputs of one step's rows, for the hidden
// units [j0, j0 + w) (a block of the step, see lstm_forward).
template <typename T>
struct lstm_fwd_rows_args {
  int64_t H, w, j0, o, r0;  // o: the step's first packed row; r0: hw's first row
  const T *gi, *hw;         // hw: the block's h W_hh^T, row r's gate q at hw[(r - r0) * 4w + q * w + j - j0]
  T *act, *hs, *cs, *tc, *out;
};
template <typename T>
TG_INLINE void lstm_fwd_rows(const lstm_fwd_rows_args<T>& a, int64_t r0, int64_t r1) {
  const int64_t H = a.H, G = 4 * H, w = a.w;
  for (int64_t r = r0; r < r1; ++r) {
    const int64_t row = (a.o + r) * G + a.j0, state = r * H + a.j0, unit = (a.o + r) * H + a.j0;
    const T *xr = a.gi + row, *pr = a.hw + (r - a.r0) * 4 * w;
    T *ar = a.act + row, *hr = a.hs + state, *cr = a.cs + state, *tr = a.tc + unit, *yr = a.out + unit;
#pragma omp simd
    for (int64_t j = 0; j < w; ++j) {
      const T i = vmath::sigmoid(xr[j] + pr[j]), f = vmath::sigmoid(xr[H + j] + pr[w + j]),
              g = vmath::tanh(xr[2 * H + j] + pr[2 * w + j]), og = vmath::sigmoid(xr[3 * H + j] + pr[3 * w + j]);
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

// ---- LSTM backward: the gates' gradients of one step's rows for the hidden units
// [j0, j0 + w); dh, dc carried in place.
template <typename T>
struct lstm_bwd_rows_args {
  int64_t H, w, j0, o;
  const T *act, *tc, *cprev, *gout;
  T *dgi, *dh, *dc;
};
template <typename T>
TG_INLINE void lstm_bwd_rows(const lstm_bwd_rows_args<T>& a, int64_t r0, int64_t r1) {
  const int64_t H = a.H, G = 4 * H, w = a.w;
  for (int64_t r = r0; r < r1; ++r) {
    const int64_t row = (a.o + r) * G + a.j0, state = r * H + a.j0, unit = (a.o + r) * H + a.j0;
    const T* ar = a.act + row;
    const T *tr = a.tc + unit, *cp = a.cprev + unit, *gy = a.gout + unit;
    T *dh = a.dh + state, *dc = a.dc + state, *dr = a.dgi + row;
#pragma omp simd
    for (int64_t j = 0; j < w; ++j) {
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
  const auto step = [&](int64_t k) { return reverse ? S - 1 - k : k; };
  {
    const int64_t t = step(0);
    std::copy(hs, hs + n[t] * H, hprev + off[t] * H);
    std::copy(cs, cs + n[t] * H, cprev + off[t] * H);
  }
  if (S == 1) {  // one step (LSTMCell): see one_step_product
    const std::unique_ptr<T[]> hw = uninitialized<T>(B * G);
    one_step_product<T>(B, G, H, hprev, H, whh, 1, H, hw.get());
    lstm_fwd_rows_pick<T>()({H, H, 0, 0, 0, gi, hw.get(), act, hs, cs, tc, out}, 0, B);
    return;
  }
  const UnitBlocks ub(H);
  const int rows_nt = row_team(B, G, H), nt = rows_nt > 1 ? rows_nt : ub.team(B, G);
  // W_hh's rows regrouped so that block b's four gates (its units' rows of i, f, g, o) are
  // 4w consecutive rows, packed as one B operand per block.
  const auto wt = pack_blocks<T>(ub.nb, nt, [&](int64_t b) {
    const int64_t j0 = ub.begin(b), w = ub.width(b);
    // written whole by the copies (a zero-filled vector cost a memset of the whole weight per call)
    const std::unique_ptr<T[]> wb = uninitialized<T>(4 * w * H);
    for (int64_t q = 0; q < 4; ++q)
      std::copy(whh + (q * H + j0) * H, whh + (q * H + j0 + w) * H, wb.get() + q * w * H);
    return std::make_unique<PackedB<T>>(H, 4 * w, wb.get(), 1, H);
  });
  const auto gates = lstm_fwd_rows_pick<T>();
  const std::unique_ptr<T[]> scratch_buf = uninitialized<T>(nt * B * 4 * ub.wmax);  // each product's, by its gemm
  T* const scratch = scratch_buf.get();
  // Step k of block b for rows [r0, r1): the block's product and gates, then its units' share of
  // the next step's saved state (all the rows: a sequence that starts later in a reverse pass
  // keeps its h0).
  const auto run = [&](int64_t k, int64_t b, int64_t r0, int64_t r1, T* hw) {
    const int64_t t = step(k), e = std::min(r1, n[t]), o = off[t], j0 = ub.begin(b), w = ub.width(b);
    if (e > r0) {
      gemm<T>(e - r0, T(1), hprev + (o + r0) * H, H, 1, *wt[size_t(b)], T(0), hw, 4 * w, 1);
      gates({H, w, j0, o, r0, gi, hw, act, hs, cs, tc, out}, r0, e);
    }
    if (k + 1 == S) return;
    const int64_t next = step(k + 1), on = off[next];
    for (int64_t r = r0; r < std::min(r1, n[next]); ++r) {
      std::copy(hs + r * H + j0, hs + r * H + j0 + w, hprev + (on + r) * H + j0);
      std::copy(cs + r * H + j0, cs + r * H + j0 + w, cprev + (on + r) * H + j0);
    }
  };
  if (rows_nt > 1)
    steps_by_rows(B, rows_nt, [&](int64_t r0, int64_t r1, int s) {
      for (int64_t k = 0; k < S; ++k)
        for (int64_t b = 0; b < ub.nb; ++b) run(k, b, r0, r1, scratch + s * B * 4 * ub.wmax);
    });
  else  // round k is step k
    steps_by_blocks(S, ub.nb, nt, [&](int64_t k, int64_t b, int s) {
      run(k, b, 0, B, scratch + s * B * 4 * ub.wmax);
    });
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
  if (S == 1) {  // one step (LSTMCell): the gates' gradients, then dh0 = dgates W_hh
    lstm_bwd_rows_pick<T>()({H, H, 0, 0, act, tc, cprev, gout, dgi, dh0, dc0}, 0, B);
    side_by_side(double(B) * double(G) * double(H) < kPairMaxWork,
                 [&] { one_step_product<T>(B, H, G, dgi, G, whh, H, 1, dh0); },
                 [&] { gemm<T>(G, H, N, T(1), dgi, 1, G, hprev, H, 1, T(0), dwhh, H, 1); });
    return;
  }
  const UnitBlocks ub(H);
  const int rows_nt = row_team(B, G, H), nt = rows_nt > 1 ? rows_nt : ub.team(B, G);
  // W_hh's columns of block b
  const auto w = pack_blocks<T>(ub.nb, nt, [&](int64_t b) {
    return std::make_unique<PackedB<T>>(G, ub.width(b), whh + ub.begin(b), H, 1);
  });
  const auto gates = lstm_bwd_rows_pick<T>();
  // The steps run backwards; round k first finishes the step before it (h entered that step
  // only through the gates: dh_prev = dgates W_hh, block b's columns of it), then computes the
  // gates' gradients of step S-1-k for block b's units, which need only those columns of dh.
  // Round S only finishes step 0.
  const auto step = [&](int64_t k) { return reverse ? k : S - 1 - k; };
  const auto run = [&](int64_t k, int64_t b, int64_t r0, int64_t r1) {
    const int64_t j0 = ub.begin(b);
    if (k > 0) {
      const int64_t t = step(k - 1), e = std::min(r1, n[t]);
      if (e > r0) gemm<T>(e - r0, T(1), dgi + (off[t] + r0) * G, G, 1, *w[size_t(b)], T(0), dh0 + r0 * H + j0, H, 1);
    }
    if (k == S) return;
    const int64_t t = step(k);
    gates({H, ub.width(b), j0, off[t], act, tc, cprev, gout, dgi, dh0, dc0}, r0, std::min(r1, n[t]));
  };
  if (rows_nt > 1)
    steps_by_rows(B, rows_nt, [&](int64_t r0, int64_t r1, int) {
      for (int64_t k = 0; k <= S; ++k)
        for (int64_t b = 0; b < ub.nb; ++b) run(k, b, r0, r1);
    });
  else
    steps_by_blocks(S + 1, ub.nb, nt, [&](int64_t k, int64_t b, int) { run(k, b, 0, B); });
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
  const std::unique_ptr<T[]> gh = uninitialized<T>(B * G);  // written whole by each step's gemm
  std::vector<T> zeros(bhh ? 0 : static_cast<size_t>(G), T(0));
  const T* bias = bhh ? bhh : zeros.data();
  const std::unique_ptr<PackedB<T>> whh_t = S > 1 ? std::make_unique<PackedB<T>>(H, G, whh, 1, H) : nullptr;
  for (int64_t k = 0; k < S; ++k) {
    const int64_t t = reverse ? S - 1 - k : k, m = n[t], o = off[t];
    std::copy(hs, hs + m * H, hprev + o * H);
    if (whh_t) gemm<T>(m, T(1), hprev + o * H, H, 1, *whh_t, T(0), gh.get(), G, 1);
    else one_step_product<T>(m, G, H, hprev + o * H, H, whh, 1, H, gh.get());
    gru_fwd_rows_run<T>({H, o, gi, gh.get(), bias, act, hs, out, ghn}, m, H);
  }
}

template <typename T>
void gru_backward(int64_t S, const int64_t* n, int64_t H, bool reverse, const T* whh, const T* act, const T* ghn,
                  const T* hprev, const T* gout, T* dgi, T* dh0, T* dwhh, T* dbhh) {
  const int64_t B = S ? n[0] : 0, G = 3 * H;
  if (S == 0) {  // the weight's gradients are computed with the last step's, below
    std::fill(dwhh, dwhh + G * H, T(0));
    if (dbhh) std::fill(dbhh, dbhh + G, T(0));
    return;
  }
  const std::vector<int64_t> off = offsets(S, n);
  const int64_t N = off[S];
  const std::unique_ptr<T[]> dgh = uninitialized<T>(N * G);  // written whole by the gate passes
  std::copy(gout + N * H, gout + (N + B) * H, dh0);
  const std::unique_ptr<PackedB<T>> w = S > 1 ? std::make_unique<PackedB<T>>(G, H, whh, H, 1) : nullptr;
  for (int64_t k = S - 1; k >= 0; --k) {
    const int64_t t = reverse ? S - 1 - k : k, m = n[t], o = off[t];
    T* dh_gates = dgh.get() + o * G;
    gru_bwd_rows_run<T>({H, o, act, ghn, hprev, gout, dgi, dh_gates, dh0}, m, H);
    const auto dh = [&] {
      if (w) gemm<T>(m, T(1), dh_gates, G, 1, *w, T(1), dh0, H, 1);
      else gemm<T>(m, H, G, T(1), dh_gates, G, 1, whh, H, 1, T(1), dh0, H, 1);
    };
    if (k > 0) {
      dh();
      continue;
    }
    // Every step's dgh is known: the last dh product and the weight's gradients side by side.
    side_by_side(double(N) * double(G) * double(H) < kPairMaxWork, dh, [&] {
      gemm<T>(G, H, N, T(1), dgh.get(), 1, G, hprev, H, 1, T(0), dwhh, H, 1);
      if (dbhh) {
        // Column sums in row order: fixed whatever the thread count.
        std::fill(dbhh, dbhh + G, T(0));
        for (int64_t r = 0; r < N; ++r) {
          const T* row = dgh.get() + r * G;
#pragma omp simd
          for (int64_t j = 0; j < G; ++j) dbhh[j] += row[j];
        }
      }
    });
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
