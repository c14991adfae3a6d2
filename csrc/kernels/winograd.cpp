// Winograd convolution F(m x m, 3 x 3) (Lavin and Gray, "Fast Algorithms for Convolutional Neural
// Networks", 2016): each m x m block of outputs is A^T [(G g G^T) * (B^T d B)] A for the
// (m+2) x (m+2) input patch d and the 3x3 kernel g, * elementwise. Summed over the input
// channels, the elementwise products become (m+2)^2 independent GEMMs, each (O x C) by
// (C x tiles): (m+2)^2 / (9 m^2) of the direct multiply-adds (F(4x4): 1/4, F(2x2): 1/2.25).
//
// Layout and passes, for one call:
//   weights  U[xi] (Cp x Op) = (G g G^T)[xi] for xi < (m+2)^2, computed in double, packed once as
//            gemm's PackedB (Cp, Op: C and O rounded up to a 64-byte vector of channels, zeros)
//            per call (the weights change at every training step)
//   input    x (N, C, H, W) -> xp (N, Hp, Wp, Cp), zero-padded on every side, channels last, so
//            a tile's patch is (m+2)^2 contiguous vectors of channels (and the finiteness check)
//   blocks   the N * tiles tiles (images one after another, row-major within an image) in
//            blocks of `tb` (fixed by the shapes; a block's transformed input and products stay
//            in L2): V[xi] (tb x Cp) = B^T d B per tile and channel, then per xi the GEMM
//            Mt[xi] (tb x Op) = V[xi] @ U[xi], then y = A^T Mt A (+ bias), written to NCHW
// The transforms run on vectors of channels (GCC vector extensions), compiled for AVX-512, AVX2
// and the baseline; cpu.h's TAPEGRAD_CPU caps the choice, as for the other kernels.
//
// Threads take whole blocks from a shared counter; a block's arithmetic depends on the shapes
// alone (gemm's result does not depend on its caller's thread), so results are bit-identical for
// any thread count.
//
// Accuracy: F(4x4)'s transforms have entries up to 8 (A) and 5 (B), so its rounding error is
// larger than a direct sum's; measured against float64 direct convolutions (random normal data,
// C = 3..64, weights scaled by 1/sqrt(9C)) its float32 error was 0.5e-7..8e-6 of the output's
// largest magnitude (see
// tests/csrc/test_conv_winograd.py), well inside what PyTorch's tests of float32 convolutions
// accept.
#include "kernels/winograd.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <vector>

#include "kernels/checked.h"
#include "kernels/cpu.h"
#include "kernels/gemm.h"
#include "kernels/parallel.h"

namespace tapegrad {
namespace {

#define TG_INLINE inline __attribute__((always_inline))

typedef float VecF __attribute__((vector_size(64)));
typedef double VecD __attribute__((vector_size(64)));
template <typename T> struct VecOf;
template <> struct VecOf<float> { using V = VecF; };
template <> struct VecOf<double> { using V = VecD; };
template <typename T> constexpr int64_t kLanes = 64 / int64_t(sizeof(T));

// ---------------------------------------------------------------- the transforms
// One dimension of each (interpolation points 0, 1, -1, 2, -2); the 2-D transform applies it
// along columns, then along rows.
// in1d: t = B^T d (m+2 values), out1d: y = A^T t (m values from m+2), weight1d: u = G g.
template <int M> struct Wino;

template <> struct Wino<4> {
  static constexpr int kA = 6;
  template <typename T, typename V>
  static TG_INLINE void in1d(const V* d, int sd, V* t, int st) {
    const V d0 = d[0], d1 = d[sd], d2 = d[2 * sd], d3 = d[3 * sd], d4 = d[4 * sd], d5 = d[5 * sd];
    const V a = d4 - T(4) * d2, b = d3 - T(4) * d1, c = d4 - d2, e = T(2) * (d3 - d1);
    t[0] = T(4) * d0 - T(5) * d2 + d4;
    t[st] = a + b;
    t[2 * st] = a - b;
    t[3 * st] = c + e;
    t[4 * st] = c - e;
    t[5 * st] = T(4) * d1 - T(5) * d3 + d5;
  }
  template <typename T, typename V>
  static TG_INLINE void out1d(const V* m, int sm, V* y, int sy) {
    const V p12 = m[sm] + m[2 * sm], m12 = m[sm] - m[2 * sm], p34 = m[3 * sm] + m[4 * sm],
            m34 = m[3 * sm] - m[4 * sm];
    y[0] = m[0] + p12 + p34;
    y[sy] = m12 + T(2) * m34;
    y[2 * sy] = p12 + T(4) * p34;
    y[3 * sy] = m12 + T(8) * m34 + m[5 * sm];
  }
  static void weight1d(const double* g, int sg, double* u, int su) {
    // products by the reciprocals, not divisions: on 256 x 256 channels the divisions took
    // longer than the 36 products of a batch of 8 14x14 images
    constexpr double r4 = 1.0 / 4, r6 = 1.0 / 6, r12 = 1.0 / 12, r24 = 1.0 / 24;
    const double g0 = g[0], g1 = g[sg], g2 = g[2 * sg], a = g0 * r24 + g2 * r6, b = g1 * r12;
    u[0] = g0 * r4;
    u[su] = -(g0 + g1 + g2) * r6;
    u[2 * su] = -(g0 - g1 + g2) * r6;
    u[3 * su] = a + b;
    u[4 * su] = a - b;
    u[5 * su] = g2;
  }
};

// The geometry of one call: tiles, the padded channels-last input, the block size.
struct Plan {
  int64_t N, C, O, H, W, Ho, Wo, pad;
  int64_t Cp, Op;          // channels rounded up to whole vectors
  int64_t th, tw, tiles;   // tile rows and columns per image, tiles per image
  int64_t Hp, Wp;          // the padded input: th*m + 2 rows of tw*m + 2 columns
  int64_t tb, blocks;      // tiles per block, blocks over all N * tiles
};

// V[xi][k][cb..] (row k of block xi: tb rows of Cp) <- B^T d B for tiles [t0, t0 + nt) of the
// whole batch.
template <typename T, int M>
TG_INLINE void input_block_impl(const Plan& p, const T* xp, int64_t t0, int64_t nt, T* Vb) {
  using V = typename VecOf<T>::V;
  constexpr int A = Wino<M>::kA;
  constexpr int64_t L = kLanes<T>;
  for (int64_t k = 0; k < nt; ++k) {
    const int64_t g = t0 + k, n = g / p.tiles, r = g % p.tiles / p.tw, c = g % p.tw;
    const T* base = xp + ((n * p.Hp + r * M) * p.Wp + c * M) * p.Cp;
    for (int64_t cb = 0; cb < p.Cp; cb += L) {
      V d[A][A], t[A][A];
      for (int i = 0; i < A; ++i)
        for (int j = 0; j < A; ++j) __builtin_memcpy(&d[i][j], base + (i * p.Wp + j) * p.Cp + cb, sizeof(V));
      for (int j = 0; j < A; ++j) Wino<M>::template in1d<T>(&d[0][j], A, &t[0][j], A);
      for (int i = 0; i < A; ++i) Wino<M>::template in1d<T>(&t[i][0], 1, &d[i][0], 1);
      for (int xi = 0; xi < A * A; ++xi)
        __builtin_memcpy(Vb + (xi * nt + k) * p.Cp + cb, &d[xi / A][xi % A], sizeof(V));
    }
  }
}

// y (N, O, Ho, Wo) <- A^T Mt A + bias for tiles [t0, t0 + nt); Mt[xi][k] holds Op values.
template <typename T, int M>
TG_INLINE void output_block_impl(const Plan& p, const T* Mb, int64_t t0, int64_t nt, const T* biasp, T* y) {
  using V = typename VecOf<T>::V;
  constexpr int A = Wino<M>::kA;
  constexpr int64_t L = kLanes<T>;
  const int64_t HWo = p.Ho * p.Wo;
  for (int64_t k = 0; k < nt; ++k) {
    const int64_t g = t0 + k, n = g / p.tiles, r = g % p.tiles / p.tw, c = g % p.tw;
    const int64_t h0 = r * M, w0 = c * M, mh = std::min<int64_t>(M, p.Ho - h0), mw = std::min<int64_t>(M, p.Wo - w0);
    T* yn = y + n * p.O * HWo + h0 * p.Wo + w0;
    for (int64_t ob = 0; ob < p.Op; ob += L) {
      V m[A][A], t[M][A], o[M][M], b;
      for (int xi = 0; xi < A * A; ++xi) __builtin_memcpy(&m[xi / A][xi % A], Mb + (xi * nt + k) * p.Op + ob, sizeof(V));
      for (int j = 0; j < A; ++j) Wino<M>::template out1d<T>(&m[0][j], A, &t[0][j], A);
      for (int i = 0; i < M; ++i) Wino<M>::template out1d<T>(&t[i][0], 1, &o[i][0], 1);
      __builtin_memcpy(&b, biasp + ob, sizeof(V));
      T res[M][M][L];
      for (int i = 0; i < M; ++i)
        for (int j = 0; j < M; ++j) {
          const V v = o[i][j] + b;
          __builtin_memcpy(res[i][j], &v, sizeof(V));
        }
      const int64_t lanes = std::min(L, p.O - ob);
      for (int64_t l = 0; l < lanes; ++l) {
        T* yo = yn + (ob + l) * HWo;
        for (int64_t i = 0; i < mh; ++i)
          for (int64_t j = 0; j < mw; ++j) yo[i * p.Wo + j] = res[i][j][l];
      }
    }
  }
}

#if defined(__x86_64__)
#define TG_AVX512 __attribute__((target("avx512f,avx512dq,avx512vl,avx2,fma")))
#define TG_AVX2 __attribute__((target("avx2,fma")))
template <typename T, int M>
TG_AVX512 void input_block_avx512(const Plan& p, const T* xp, int64_t t0, int64_t nt, T* Vb) {
  input_block_impl<T, M>(p, xp, t0, nt, Vb);
}
template <typename T, int M>
TG_AVX2 void input_block_avx2(const Plan& p, const T* xp, int64_t t0, int64_t nt, T* Vb) {
  input_block_impl<T, M>(p, xp, t0, nt, Vb);
}
template <typename T, int M>
TG_AVX512 void output_block_avx512(const Plan& p, const T* Mb, int64_t t0, int64_t nt, const T* biasp, T* y) {
  output_block_impl<T, M>(p, Mb, t0, nt, biasp, y);
}
template <typename T, int M>
TG_AVX2 void output_block_avx2(const Plan& p, const T* Mb, int64_t t0, int64_t nt, const T* biasp, T* y) {
  output_block_impl<T, M>(p, Mb, t0, nt, biasp, y);
}
#undef TG_AVX2
#undef TG_AVX512
#endif
template <typename T, int M>
void input_block_generic(const Plan& p, const T* xp, int64_t t0, int64_t nt, T* Vb) {
  input_block_impl<T, M>(p, xp, t0, nt, Vb);
}
template <typename T, int M>
void output_block_generic(const Plan& p, const T* Mb, int64_t t0, int64_t nt, const T* biasp, T* y) {
  output_block_impl<T, M>(p, Mb, t0, nt, biasp, y);
}

template <typename T, int M>
void input_block(Isa isa, const Plan& p, const T* xp, int64_t t0, int64_t nt, T* Vb) {
#if defined(__x86_64__)
  if (isa == Isa::avx512) return input_block_avx512<T, M>(p, xp, t0, nt, Vb);
  if (isa == Isa::avx2) return input_block_avx2<T, M>(p, xp, t0, nt, Vb);
#endif
  input_block_generic<T, M>(p, xp, t0, nt, Vb);
}

template <typename T, int M>
void output_block(Isa isa, const Plan& p, const T* Mb, int64_t t0, int64_t nt, const T* biasp, T* y) {
#if defined(__x86_64__)
  if (isa == Isa::avx512) return output_block_avx512<T, M>(p, Mb, t0, nt, biasp, y);
  if (isa == Isa::avx2) return output_block_avx2<T, M>(p, Mb, t0, nt, biasp, y);
#endif
  output_block_generic<T, M>(p, Mb, t0, nt, biasp, y);
}

// ---------------------------------------------------------------- routing
enum class Route { rule, forced, never };

Route route() {
  static const Route r = [] {
    const char* v = std::getenv("TAPEGRAD_CONV_KERNEL");
    if (v && std::strcmp(v, "winograd") == 0) return Route::forced;
    if (v && (std::strcmp(v, "gemm") == 0 || std::strcmp(v, "direct") == 0)) return Route::never;
    return Route::rule;
  }();
  return r;
}

// The shapes the route computes: 2-D, 3x3, stride 1, undilated, one group, padding 0..2 alike in
// both dimensions (2 only for the input gradient's flipped convolution), the output of that size.
bool covers(const ConvShape& s) {
  return s.D == 1 && s.kd == 1 && s.Do == 1 && s.sd == 1 && s.pd == 0 && s.kh == 3 && s.kw == 3 && s.sh == 1 &&
         s.sw == 1 && s.dh == 1 && s.dw == 1 && s.groups == 1 && s.ph == s.pw && s.ph >= 0 && s.ph <= 2 &&
         s.Ho == s.H + 2 * s.ph - 2 && s.Wo == s.W + 2 * s.pw - 2 && s.Ho > 0 && s.Wo > 0 && s.N > 0 && s.C > 0 &&
         s.O > 0;
}

// The output tile: F(4x4, 3x3). F(2x2) (a 4x4 patch, 16 products; measured while the machine was
// busy) took 1.4-2x F(4x4)'s time on ResNet-20's 16ch and 32ch layers and VGG's 64ch 56x56, and
// its float32 accuracy is not needed (F(4x4) stays within ~1e-5 of the output scale).
constexpr int kTile = 4;

// Whether the route measured faster than the others (CPU time, 1 thread, on an Intel Xeon; ms,
// Winograd against the other route; benchmarks/bench_winograd.py, batch 32 on ResNet-20's layers,
// 8 on VGG's). With AVX-512 the other route is conv.cpp's direct products; there Winograd pays
// from 32 channels in and out once a call has enough 4x4 tiles (N * tiles) to share its
// per-call weight transform: float32 from 256 tiles (ResNet-20 32ch 16x16, 512 tiles, 0.83 against
// 1.04; VGG 64ch 56x56 7.9 / 12.0; 128ch 28x28, 392 tiles, 6.8 / 13.1; lost: 16ch 32x32 1.31 /
// 1.01, 64ch 8x8, 128 tiles, 0.92 / 0.79, 256ch 14x14, 128 tiles, 16.7 / 15.1), float64 from 128
// (64ch 8x8 1.61 / 1.92, 256ch 14x14 25.8 / 29.5; 16ch 32x32 lost, 2.57 / 2.22). Below AVX-512
// the other route is im2col + gemm, which it beat on every shape from 16 channels with AVX2
// (0.44-0.89 of its time, both dtypes) and in float64 on the baseline build (0.37-0.60), not in
// float32 there (0.96-1.09).
template <typename T>
bool winograd_pays(const ConvShape& s) {
  const bool f64 = sizeof(T) == 8;
  if (kernel_isa(Kernel::conv) == Isa::avx512) {
    const int64_t tiles = s.N * ceil_div(s.Ho, int64_t(kTile)) * ceil_div(s.Wo, int64_t(kTile));
    return s.C >= 32 && s.O >= 32 && tiles >= (f64 ? 128 : 256);
  }
  return s.C >= 16 && s.O >= 16 && (cpu_isa() != Isa::generic || f64);
}

template <typename T>
bool taken(const ConvShape& s) {
  if (!covers(s)) return false;
  switch (route()) {
    case Route::forced: return true;
    case Route::never: return false;
    default: return winograd_pays<T>(s);
  }
}

// The bytes of a block's transformed input and products (V and Mt) kept in L2.
constexpr int64_t kBlockBytes = 2 << 20;
// Tiles per block in multiples of gemm's rows per micro-tile (12 with AVX-512, 6 with AVX2, 4
// generic): a block of 16 tiles ran 2 micro-tiles of 12, a third of them padding.
constexpr int64_t kBlockRows = 12;

template <typename T, int M>
bool forward(const ConvShape& s, const T* x, const T* w, const T* bias, T* y) {
  constexpr int A = Wino<M>::kA, AA = A * A;
  constexpr int64_t L = kLanes<T>;
  Plan p{};
  p.N = s.N, p.C = s.C, p.O = s.O, p.H = s.H, p.W = s.W, p.Ho = s.Ho, p.Wo = s.Wo, p.pad = s.ph;
  p.Cp = ceil_div(p.C, L) * L, p.Op = ceil_div(p.O, L) * L;
  p.th = ceil_div(p.Ho, int64_t(M)), p.tw = ceil_div(p.Wo, int64_t(M));
  p.Hp = p.th * M + 2, p.Wp = p.tw * M + 2;
  const char* op = s.op;
  p.tiles = checked_mul(p.th, p.tw, op, "winograd tiles");
  const int64_t all_tiles = checked_mul(p.N, p.tiles, op, "winograd tiles");
  p.tb = std::clamp<int64_t>(kBlockBytes / (AA * (p.Cp + p.Op) * int64_t(sizeof(T))), kBlockRows, 48);
  p.tb = p.tb / kBlockRows * kBlockRows;
  p.tb = std::min(p.tb, all_tiles);
  p.blocks = ceil_div(all_tiles, p.tb);

  // U[xi] = G g G^T, in double, stored transposed (Op x Cp: w's order, so w is read once in
  // order and written to AA sequential streams; the order (c, o) read w with stride 9C and took
  // longer than the products on 256 x 256 channels), then packed for gemm as Cp x Op. A
  // non-finite weight leaves the call to the other routes.
  std::vector<PackedB<T>> U;
  {
    std::vector<T> u(checked_mul(AA * p.Op, p.Cp, op, "winograd weights"), T(0));
    std::atomic<bool> w_finite{true};
    parallel_for(p.O, true, [&](int64_t o0, int64_t o1) {
      int bad = 0;
      for (int64_t o = o0; o < o1; ++o)
        for (int64_t c = 0; c < p.C; ++c) {
          double g[9], t[A * 3], uu[AA];
          for (int q = 0; q < 9; ++q) {
            const T v = w[(o * p.C + c) * 9 + q];
            bad |= !(std::abs(v) <= std::numeric_limits<T>::max());
            g[q] = double(v);
          }
          for (int j = 0; j < 3; ++j) Wino<M>::weight1d(g + j, 3, t + j, 3);           // t (A x 3) = G g
          for (int i = 0; i < A; ++i) Wino<M>::weight1d(t + i * 3, 1, uu + i * A, 1);  // (G g) G^T
          for (int xi = 0; xi < AA; ++xi) u[(xi * p.Op + o) * p.Cp + c] = T(uu[xi]);
        }
      if (bad) w_finite.store(false, std::memory_order_relaxed);
    });
    if (!w_finite.load()) return false;
    U.reserve(AA);
    for (int xi = 0; xi < AA; ++xi) U.emplace_back(p.Cp, p.Op, u.data() + xi * p.Op * p.Cp, 1, p.Cp);
  }

  // the input, channels last and padded; any non-finite value declines the call
  const int64_t plane = checked_mul(p.Hp * p.Wp, p.Cp, op, "winograd padded input");
  const auto xp = scratch_array<T>(checked_mul(p.N, plane, op, "winograd padded input"));  // each plane filled below
  std::atomic<bool> finite{true};
  parallel_for(p.N, true, [&](int64_t begin, int64_t end) {
    for (int64_t n = begin; n < end; ++n) {
      T* dst = xp.get() + n * plane;
      std::fill(dst, dst + plane, T(0));
      const T* src = x + n * p.C * p.H * p.W;
      int bad = 0;
      for (int64_t h = 0; h < p.H; ++h) {
        T* row = dst + ((h + p.pad) * p.Wp + p.pad) * p.Cp;
        for (int64_t c = 0; c < p.C; ++c) {
          const T* sr = src + (c * p.H + h) * p.W;
          for (int64_t ww = 0; ww < p.W; ++ww) {
            bad |= !(std::abs(sr[ww]) <= std::numeric_limits<T>::max());
            row[ww * p.Cp + c] = sr[ww];
          }
        }
      }
      if (bad) finite.store(false, std::memory_order_relaxed);
    }
  });
  if (!finite.load()) return false;

  std::vector<T> biasp(p.Op, T(0));
  if (bias) std::copy(bias, bias + p.O, biasp.begin());

  const Isa isa = cpu_isa();
  const int64_t vlen = AA * p.tb * p.Cp, len = vlen + AA * p.tb * p.Op;
  std::atomic<int64_t> next{0};
  const int nt = int(std::min<int64_t>(p.blocks, num_threads()));
  parallel(nt, [&](int, int) {
    std::vector<T> scratch(len);
    T* Vb = scratch.data();
    T* Mb = Vb + vlen;
    for (int64_t b; (b = next.fetch_add(1, std::memory_order_relaxed)) < p.blocks;) {
      const int64_t t0 = b * p.tb, n = std::min(p.tb, all_tiles - t0);
      input_block<T, M>(isa, p, xp.get(), t0, n, Vb);
      for (int xi = 0; xi < AA; ++xi)
        gemm<T>(n, T(1), Vb + xi * n * p.Cp, p.Cp, 1, U[xi], T(0), Mb + xi * n * p.Op, p.Op, 1);
      output_block<T, M>(isa, p, Mb, t0, n, biasp.data(), y);
    }
  });
  return true;
}

}  // namespace

template <typename T>
bool conv_forward_winograd(const ConvShape& s, const T* x, const T* w, const T* bias, T* y) {
  if (s.ph > 1 || !taken<T>(s)) return false;
  return forward<T, kTile>(s, x, w, bias, y);
}

template <typename T>
bool conv_input_grad_winograd(const ConvShape& s, const T* gy, const T* w, T* gx) {
  if (s.ph > 1 || !covers(s)) return false;
  // the flipped convolution: gy (N, O, Ho, Wo) -> gx (N, C, H, W), padding 2 - pad
  ConvShape t = s;
  t.C = s.O, t.O = s.C, t.H = s.Ho, t.W = s.Wo, t.Ho = s.H, t.Wo = s.W, t.ph = t.pw = 2 - s.ph;
  if (!taken<T>(t)) return false;
  // w2 (C, O, 3, 3): w2[c, o, 8 - q] = w[o, c, q]
  const auto w2 = scratch_array<T>(s.C * s.O * 9);  // every element written below
  for (int64_t o = 0; o < s.O; ++o)
    for (int64_t c = 0; c < s.C; ++c)
      for (int q = 0; q < 9; ++q) w2[(c * s.O + o) * 9 + 8 - q] = w[(o * s.C + c) * 9 + q];
  return forward<T, kTile>(t, gy, w2.get(), static_cast<const T*>(nullptr), gx);
}

template bool conv_forward_winograd<float>(const ConvShape&, const float*, const float*, const float*, float*);
template bool conv_forward_winograd<double>(const ConvShape&, const double*, const double*, const double*, double*);
template bool conv_input_grad_winograd<float>(const ConvShape&, const float*, const float*, float*);
template bool conv_input_grad_winograd<double>(const ConvShape&, const double*, const double*, double*);

}  // namespace tapegrad
