// 2-D and 3-D convolution by vol2col + GEMM (see conv.h for layouts and the determinism
// contract; a 2-D convolution is a 3-D one of depth 1).
//
// Per image and group g, with Cg = C/groups, Og = O/groups, K = Cg*kd*kh*kw, P = Do*Ho*Wo:
//   forward      y[n, g]  (Og, P) = w[g] (Og, K) @ col(x[n, g]) (K, P)
//   input grad   col      (K, P)  = w[g]^T (K, Og) @ gy[n, g] (Og, P), then col2vol into gx[n, g]
//   weight grad  gw[g]    (Og, K) += gy[n, g] (Og, P) @ col(x[n, g])^T (P, K)
// A 1x1(x1), stride-1, unpadded convolution needs no vol2col: col(x[n, g]) is x[n, g] itself.
// When an image's P is small, a GEMM covers a few images side by side (P -> G*P columns,
// see images_per_gemm): repacking w for every tiny GEMM would otherwise dominate.
//
// On CPUs with AVX-512 (unless cpu.h's TAPEGRAD_CPU or TAPEGRAD_CONV_KERNEL=gemm caps it), the three passes run on this
// file's own AVX-512 products instead of gemm, shaped for convolutions (see "direct products"
// below): the weights are packed once per call rather than per image, the image side (col, gy,
// x) is read in place, unpacked, and the weight gradient is a dot product along the output
// positions, which both of its operands hold contiguously. Measured on ResNet-20's 3x3 layers
// (batch 32, 1 thread, float32), where gemm's AVX2 kernel ran at 2.4-3.1x PyTorch's (oneDNN's
// AVX-512) time.
//
// Threading: work is split into independent tasks (an image, or a chunk of images for the
// weight gradient) whose count depends on the shapes only. With at least as many tasks as
// threads, threads take whole tasks and each GEMM runs single-threaded inside the parallel
// region; otherwise tasks run in turn and each GEMM uses all threads. Either way every
// output element sees the same sequence of operations, so results do not depend on the
// thread count (given a GEMM whose result does not depend on it either).
#include "kernels/conv.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <memory>
#include <cstdlib>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "kernels/checked.h"
#include "kernels/cpu.h"
#include "kernels/gemm.h"
#include "kernels/parallel.h"
#include "kernels/winograd.h"

namespace tapegrad {
namespace {

// The weight gradient sums over the batch in at most this many chunks of images; the
// chunk partials are reduced in chunk order. Fixed, so the sum order never depends on
// the thread count; large enough to keep 16 threads busy.
constexpr int64_t kWeightGradMaxChunks = 16;

// Images placed side by side in one GEMM: enough for about this many output columns.
// (Measured on LeNet's conv2, P = 64: 1 image per GEMM 2.60 ms, 4 images 2.28 ms, all 64
// images in one GEMM 3.19 ms as its col no longer fits in cache.)
constexpr int64_t kGemmMinColumns = 256;

// The forward pass of a large 3-D image builds and multiplies its col a few output depth planes
// at a time, about this many elements each: a whole image's col (C3D's 16->32 3x3x3 on 16x32x32:
// 28 MB) would go to memory and back, a slice of it stays in cache.
constexpr int64_t kForwardColElems = 1 << 18;

// Output columns ow whose input column ow*sw + off lies in [0, W): [lo, hi).
void valid_range(int64_t off, int64_t stride, int64_t W, int64_t Wo, int64_t& lo, int64_t& hi) {
  lo = off >= 0 ? 0 : ceil_div(-off, stride);
  hi = off >= W ? 0 : ceil_div(W - off, stride);
  lo = std::min(lo, Wo);
  hi = std::clamp(hi, lo, Wo);
}

bool is_pointwise(const ConvShape& s) {
  return s.kd == 1 && s.kh == 1 && s.kw == 1 && s.sd == 1 && s.sh == 1 && s.sw == 1 && s.pd == 0 && s.ph == 0 &&
         s.pw == 0 && s.Do == s.D && s.Ho == s.H && s.Wo == s.W;
}

// Output positions of one image (Do*Ho*Wo) and input elements of one channel (D*H*W); the
// bindings have checked that both products fit.
int64_t out_positions(const ConvShape& s) { return s.Do * s.Ho * s.Wo; }
int64_t in_volume(const ConvShape& s) { return s.D * s.H * s.W; }
int64_t kernel_taps(const ConvShape& s) { return s.kd * s.kh * s.kw; }
int64_t weight_elems(const ConvShape& s) { return s.O * (s.C / s.groups) * kernel_taps(s); }

// G: how many images share one GEMM (depends on the shapes only). Pointwise convolutions
// read x in place, one image per GEMM.
int64_t images_per_gemm(const ConvShape& s) {
  if (is_pointwise(s)) return 1;
  return std::clamp<int64_t>(kGemmMinColumns / out_positions(s), 1, std::max<int64_t>(s.N, 1));
}

// Output depth planes per vol2col + GEMM step of the forward pass (depends on the shapes only):
// all of them unless one image fills a GEMM (G == 1) and its col is large.
int64_t forward_step_planes(const ConvShape& s) {
  if (is_pointwise(s) || images_per_gemm(s) > 1) return s.Do;
  int64_t col_plane;  // K * Ho * Wo elements per output depth plane
  if (!mul_ok(s.C / s.groups * kernel_taps(s), s.Ho * s.Wo, col_plane)) return 1;
  return std::clamp<int64_t>(kForwardColElems / col_plane, 1, s.Do);
}

// Elements of a task's scratch: col (K, G * cols), then an (Og, G * cols) block when G > 1;
// none for a pointwise convolution. cols is an image's output positions per step (P, or the
// forward pass's slice of them). K * G * cols can exceed int64 for shapes whose operands all fit.
int64_t scratch_len(const ConvShape& s, int64_t image_cols) {
  const char* op = s.op;
  if (is_pointwise(s)) return 0;
  const int64_t Og = s.O / s.groups, G = images_per_gemm(s);
  const int64_t K = checked_mul(s.C / s.groups, kernel_taps(s), op, "vol2col rows");
  const int64_t cols = checked_mul(G, image_cols, op, "vol2col buffer");
  int64_t len = checked_mul(K, cols, op, "vol2col buffer"), block;
  if (G > 1 && (!mul_ok(Og, cols, block) || !add_ok(len, block, len)))
    throw SizeOverflow(std::string(op) + ": scratch of " + std::to_string(K) + " + " + std::to_string(Og) +
                       " rows of " + std::to_string(cols) + " elements overflows int64");
  return len;
}

// dst (Ho*Wo) <- the taps (i, j) of one input plane (H, W) at every output position, zeros
// where a tap falls in the padding.
template <typename T>
void plane2col(const ConvShape& s, const T* xc, int64_t i, int64_t j, T* row) {
  const int64_t off = j * s.dw - s.pw;
  int64_t lo, hi;
  valid_range(off, s.sw, s.W, s.Wo, lo, hi);
  const int64_t ih0 = i * s.dh - s.ph, ih_last = ih0 + (s.Ho - 1) * s.sh;
  if (s.sw == 1 && lo == 0 && hi == s.Wo && ih0 >= 0 && ih_last < s.H) {
    // the common case, every tap inside the input: a plain 2-D copy
    const T* src = xc + ih0 * s.W + off;
    for (int64_t oh = 0; oh < s.Ho; ++oh, src += s.sh * s.W, row += s.Wo)
      for (int64_t ow = 0; ow < s.Wo; ++ow) row[ow] = src[ow];
    return;
  }
  for (int64_t oh = 0; oh < s.Ho; ++oh) {
    T* r = row + oh * s.Wo;
    const int64_t ih = oh * s.sh - s.ph + i * s.dh;
    if (ih < 0 || ih >= s.H) {
      std::fill(r, r + s.Wo, T(0));
      continue;
    }
    const T* xr = xc + ih * s.W;
    for (int64_t ow = 0; ow < lo; ++ow) r[ow] = T(0);
    if (s.sw == 1) {
      if (hi > lo) std::memcpy(r + lo, xr + lo + off, (hi - lo) * sizeof(T));
    } else if (s.sw == 2) {  // a constant stride vectorises (ResNet's stride-2 layers: vol2col took half their time)
      for (int64_t ow = lo; ow < hi; ++ow) r[ow] = xr[ow * 2 + off];
    } else {
      for (int64_t ow = lo; ow < hi; ++ow) r[ow] = xr[ow * s.sw + off];
    }
    for (int64_t ow = hi; ow < s.Wo; ++ow) r[ow] = T(0);
  }
}

// x plane (H, W) += the taps (i, j) in row (Ho*Wo); taps in the padding are dropped.
template <typename T>
void col2plane(const ConvShape& s, const T* row, int64_t i, int64_t j, T* xc) {
  const int64_t off = j * s.dw - s.pw;
  int64_t lo, hi;
  valid_range(off, s.sw, s.W, s.Wo, lo, hi);
  for (int64_t oh = 0; oh < s.Ho; ++oh) {
    const int64_t ih = oh * s.sh - s.ph + i * s.dh;
    if (ih < 0 || ih >= s.H) continue;
    const T* r = row + oh * s.Wo;
    T* xr = xc + ih * s.W;
    if (s.sw == 1) {
      for (int64_t ow = lo; ow < hi; ++ow) xr[ow + off] += r[ow];
    } else {
      for (int64_t ow = lo; ow < hi; ++ow) xr[ow * s.sw + off] += r[ow];
    }
  }
}

// Output slices of at most this many positions go through vol2col and col2vol by a table of the
// taps' input offsets: row by row, a 4x4 or 2x2 output copied 2-4 elements per call, and ResNet-18's
// layers on those spent longer there than in their GEMM (512->512 on 2x2, batch 16: 2.3 ms a
// forward pass against the GEMM's 0.94). From 8x8 on the row copies win: LeNet's conv2 (8x8
// outputs of 12x12, batch 64, float32) took 1.6-1.7 ms a forward pass by rows, 2.25 by the table.
constexpr int64_t kTableMaxPositions = 32;
// A table copy of at least this many elements runs on all threads (by channels) when called
// outside a parallel region: the gemm route multiplies a small batch's col in one GEMM, after it.
constexpr int64_t kTableParallelElems = 1 << 15;

// tab[t * gn * n + i * n + q] for tap t = (a, i, j), image i < gn (xstride elements apart) and
// the n = (od1 - od0) * Ho * Wo output positions q from depth od0 on: the offset of the input
// element the tap reads from the first image's channel, or -1 in the padding.
std::vector<int64_t> tap_table(const ConvShape& s, int64_t od0, int64_t od1, int64_t gn = 1, int64_t xstride = 0) {
  const int64_t n = (od1 - od0) * s.Ho * s.Wo;
  std::vector<int64_t> tab(kernel_taps(s) * gn * n);
  const auto at = [](int64_t o, int64_t stride, int64_t off, int64_t len) {
    const int64_t v = o * stride + off;
    return v >= 0 && v < len ? v : -1;
  };
  int64_t* e = tab.data();
  for (int64_t a = 0; a < s.kd; ++a)
    for (int64_t i = 0; i < s.kh; ++i)
      for (int64_t j = 0; j < s.kw; ++j, e += gn * n) {
        for (int64_t od = od0, q = 0; od < od1; ++od)
          for (int64_t oh = 0; oh < s.Ho; ++oh)
            for (int64_t ow = 0; ow < s.Wo; ++ow, ++q) {
              const int64_t d = at(od, s.sd, a * s.dd - s.pd, s.D), h = at(oh, s.sh, i * s.dh - s.ph, s.H),
                            w = at(ow, s.sw, j * s.dw - s.pw, s.W);
              e[q] = d < 0 || h < 0 || w < 0 ? -1 : (d * s.H + h) * s.W + w;
            }
        for (int64_t img = 1; img < gn; ++img)
          for (int64_t q = 0; q < n; ++q) e[img * n + q] = e[q] < 0 ? -1 : e[q] + img * xstride;
      }
  return tab;
}

// col (Cg*taps, m) <- x's channels (Cg, in_volume) read by tab's m columns per tap (tap_table).
template <typename T>
void table2col(const ConvShape& s, int64_t Cg, const T* x, const std::vector<int64_t>& tab, int64_t m, T* col,
               int64_t ld) {
  const int64_t taps = kernel_taps(s);
  parallel_for(Cg, Cg * taps * m >= kTableParallelElems, [&](int64_t begin, int64_t end) {
    for (int64_t c = begin; c < end; ++c) {
      const T* xc = x + c * in_volume(s);
      for (int64_t t = 0; t < taps; ++t) {
        T* row = col + (c * taps + t) * ld;
        const int64_t* e = tab.data() + t * m;
        for (int64_t q = 0; q < m; ++q) row[q] = e[q] < 0 ? T(0) : xc[e[q]];
      }
    }
  });
}

// x's channels += col's columns at tab's offsets: per input element, one term per tap, in tap order.
template <typename T>
void col2table(const ConvShape& s, int64_t Cg, const T* col, int64_t ld, const std::vector<int64_t>& tab, int64_t m,
               T* x) {
  const int64_t taps = kernel_taps(s);
  parallel_for(Cg, Cg * taps * m >= kTableParallelElems, [&](int64_t begin, int64_t end) {
    for (int64_t c = begin; c < end; ++c) {
      T* xc = x + c * in_volume(s);
      for (int64_t t = 0; t < taps; ++t) {
        const T* row = col + (c * taps + t) * ld;
        const int64_t* e = tab.data() + t * m;
        for (int64_t q = 0; q < m; ++q)
          if (e[q] >= 0) xc[e[q]] += row[q];
      }
    }
  });
}

// col (Cg*kd*kh*kw, (od1 - od0)*Ho*Wo), row stride ld, <- patches of x (Cg, D, H, W) for output
// depths [od0, od1), zeros where a tap falls in the padding. Row (c, a, i, j) holds, per output
// depth, one plane's taps (i, j).
template <typename T>
void vol2col(const ConvShape& s, int64_t Cg, const T* x, T* col, int64_t ld, int64_t od0, int64_t od1) {
  const int64_t HW = s.H * s.W, HWo = s.Ho * s.Wo, n = (od1 - od0) * HWo;
  if (n <= kTableMaxPositions) return table2col(s, Cg, x, tap_table(s, od0, od1), n, col, ld);
  for (int64_t c = 0; c < Cg; ++c)
    for (int64_t a = 0; a < s.kd; ++a)
      for (int64_t i = 0; i < s.kh; ++i)
        for (int64_t j = 0; j < s.kw; ++j) {
          T* row = col + (((c * s.kd + a) * s.kh + i) * s.kw + j) * ld;
          for (int64_t od = od0; od < od1; ++od, row += HWo) {
            const int64_t id = od * s.sd - s.pd + a * s.dd;
            if (id < 0 || id >= s.D)
              std::fill(row, row + HWo, T(0));
            else
              plane2col(s, x + (c * s.D + id) * HW, i, j, row);
          }
        }
}

// x (Cg, D, H, W) += the patches in col (Cg*kd*kh*kw, Do*Ho*Wo), row stride ld; taps in the
// padding are dropped.
template <typename T>
void col2vol(const ConvShape& s, int64_t Cg, const T* col, int64_t ld, T* x) {
  const int64_t HW = s.H * s.W, HWo = s.Ho * s.Wo, n = s.Do * HWo;
  if (n <= kTableMaxPositions) return col2table(s, Cg, col, ld, tap_table(s, 0, s.Do), n, x);
  for (int64_t c = 0; c < Cg; ++c)
    for (int64_t a = 0; a < s.kd; ++a)
      for (int64_t i = 0; i < s.kh; ++i)
        for (int64_t j = 0; j < s.kw; ++j) {
          const T* row = col + (((c * s.kd + a) * s.kh + i) * s.kw + j) * ld;
          for (int64_t od = 0; od < s.Do; ++od) {
            const int64_t id = od * s.sd - s.pd + a * s.dd;
            if (id >= 0 && id < s.D) col2plane(s, row + od * HWo, i, j, x + (c * s.D + id) * HW);
          }
        }
}


// col (K, gn * P) <- vol2col of gn images (xstride elements apart) side by side, image i at columns
// [i * P, (i + 1) * P); small images by one table across the images.
template <typename T>
void vol2col_images(const ConvShape& s, int64_t Cg, const T* x, int64_t xstride, int64_t gn, T* col, int64_t ld) {
  const int64_t P = out_positions(s);
  if (P > kTableMaxPositions) {
    for (int64_t i = 0; i < gn; ++i) vol2col(s, Cg, x + i * xstride, col + i * P, ld, 0, s.Do);
    return;
  }
  table2col(s, Cg, x, tap_table(s, 0, s.Do, gn, xstride), gn * P, col, ld);
}

// gn images (xstride elements apart) += col2vol of their columns in col (K, gn * P).
template <typename T>
void col2vol_images(const ConvShape& s, int64_t Cg, const T* col, int64_t ld, int64_t gn, T* x, int64_t xstride) {
  const int64_t P = out_positions(s);
  if (P > kTableMaxPositions) {
    for (int64_t i = 0; i < gn; ++i) col2vol(s, Cg, col + i * P, ld, x + i * xstride);
    return;
  }
  col2table(s, Cg, col, ld, tap_table(s, 0, s.Do, gn, xstride), gn * P, x);
}

// ---------------------------------------------------------------- non-finite values
// A tap in the padding contributes no term to a sum, as in PyTorch's float32 (oneDNN) kernels and
// in every input gradient: the fast paths instead multiply it as a zero (vol2col, the padded
// grid, the gemm route), and the weight gradient on the padded grid also multiplies the grid's
// filler zeros, which is the same as long as the other factor is finite (0 * inf is NaN). So a
// non-finite weight (forward) or a non-finite weight gradient (which any non-finite product
// leaves) sends the pass to the tap-by-tap sums below, which skip those taps. Slow, but only a
// diverged model gets there. (PyTorch's float64 route, vol2col, gives NaN there instead.) Where
// the weights outnumber the other side, the check reads that side instead: the forward pass's
// output after the fast route (a finite output had no 0 * inf term), the weight gradient's x and
// gy before it (finite factors make every padding term a zero).

// Whether some tap of some output reads outside the input (padding, or a transposed
// convolution's taps past its input).
bool reads_outside(const ConvShape& s) {
  return s.pd > 0 || s.ph > 0 || s.pw > 0 || (s.Do - 1) * s.sd + (s.kd - 1) * s.dd >= s.D ||
         (s.Ho - 1) * s.sh + (s.kh - 1) * s.dh >= s.H || (s.Wo - 1) * s.sw + (s.kw - 1) * s.dw >= s.W;
}

template <typename T>
bool all_finite(const T* p, int64_t n) {
  int bad = 0;
  for (int64_t i = 0; i < n; ++i) bad |= !(std::abs(p[i]) <= std::numeric_limits<T>::max());
  return !bad;
}

// y = conv(x, w) + bias summed over the taps that read the input, in tap order.
template <typename T>
void conv_forward_exact(const ConvShape& s, const T* x, const T* w, const T* bias, T* y) {
  const int64_t Cg = s.C / s.groups, Og = s.O / s.groups, V = in_volume(s), P = out_positions(s);
  parallel_for(s.N * s.O, true, [&](int64_t begin, int64_t end) {
    for (int64_t t = begin; t < end; ++t) {
      const int64_t n = t / s.O, o = t % s.O;
      const T* xg = x + (n * s.C + o / Og * Cg) * V;
      const T* wo = w + o * Cg * kernel_taps(s);
      T* yo = y + t * P;
      for (int64_t od = 0; od < s.Do; ++od)
        for (int64_t oh = 0; oh < s.Ho; ++oh)
          for (int64_t ow = 0; ow < s.Wo; ++ow) {
            T acc = 0;
            const T* wt = wo;
            for (int64_t c = 0; c < Cg; ++c)
              for (int64_t a = 0; a < s.kd; ++a)
                for (int64_t i = 0; i < s.kh; ++i)
                  for (int64_t j = 0; j < s.kw; ++j, ++wt) {
                    const int64_t id = od * s.sd - s.pd + a * s.dd, ih = oh * s.sh - s.ph + i * s.dh,
                                  iw = ow * s.sw - s.pw + j * s.dw;
                    if (id >= 0 && id < s.D && ih >= 0 && ih < s.H && iw >= 0 && iw < s.W)
                      acc += *wt * xg[((c * s.D + id) * s.H + ih) * s.W + iw];
                  }
            yo[(od * s.Ho + oh) * s.Wo + ow] = bias ? acc + bias[o] : acc;
          }
    }
  });
}

// gw = the weight gradient summed over the (image, output position) pairs whose tap reads the input.
template <typename T>
void conv_weight_grad_exact(const ConvShape& s, const T* x, const T* gy, T* gw) {
  const int64_t Cg = s.C / s.groups, Og = s.O / s.groups, V = in_volume(s), P = out_positions(s);
  const int64_t taps = kernel_taps(s);
  parallel_for(s.O * Cg, true, [&](int64_t begin, int64_t end) {
    for (int64_t t = begin; t < end; ++t) {
      const int64_t o = t / Cg, c = t % Cg, ch = o / Og * Cg + c;
      for (int64_t a = 0; a < s.kd; ++a)
        for (int64_t i = 0; i < s.kh; ++i)
          for (int64_t j = 0; j < s.kw; ++j) {
            T acc = 0;
            for (int64_t n = 0; n < s.N; ++n) {
              const T* xc = x + (n * s.C + ch) * V;
              const T* go = gy + (n * s.O + o) * P;
              for (int64_t od = 0; od < s.Do; ++od)
                for (int64_t oh = 0; oh < s.Ho; ++oh)
                  for (int64_t ow = 0; ow < s.Wo; ++ow) {
                    const int64_t id = od * s.sd - s.pd + a * s.dd, ih = oh * s.sh - s.ph + i * s.dh,
                                  iw = ow * s.sw - s.pw + j * s.dw;
                    if (id >= 0 && id < s.D && ih >= 0 && ih < s.H && iw >= 0 && iw < s.W)
                      acc += go[(od * s.Ho + oh) * s.Wo + ow] * xc[(id * s.H + ih) * s.W + iw];
                  }
            }
            gw[t * taps + (a * s.kh + i) * s.kw + j] = acc;
          }
    }
  });
}

// ---------------------------------------------------------------- direct products (AVX-512)
// Two register-blocked products for the convolution's own operand layouts, each element summed
// in an order fixed by the shapes (so, as with gemm, the thread count never changes a result):
//  - rows:  C (m x n) = A (m x K) @ B (K x n), B row-major and read in place, A packed as
//           [k][MR] (zero rows past m); MR x (NV vectors) accumulators, vectors along n. The
//           forward pass (A = w, B = col) and the input gradient (A = w^T, B = gy).
//  - dots:  C (mi x nj) (+)= sum over segments s and l < L of A_s[i][l] B_s[j][l], both
//           row-major along l: MI x NJ vector accumulators along l, reduced across lanes at the
//           end. The weight gradient (A = gy, B = col), whose reduction runs along the output
//           positions of one or more images (the segments).
constexpr int kRowsMR = 8, kRowsNV = 2;  // rows: 8 x 2 vectors (16 accumulators)
constexpr int kDotMI = 4, kDotNJ = 6;    // dots: 4 x 6 vectors (24 accumulators)

// The direct products are conv's AVX-512 build; below that level (or with
// TAPEGRAD_CONV_KERNEL=gemm) convolutions run as im2col + gemm (cpu.h).
bool use_direct() { return kernel_isa(Kernel::conv) == Isa::avx512; }

#if defined(__x86_64__)
#define TG_AVX512 __attribute__((target("avx512f,avx512dq,avx512vl,avx2,fma")))
#define TG_AVX512_INLINE TG_AVX512 inline __attribute__((always_inline))

template <typename T> struct Vec;
template <> struct Vec<float> {
  using V = __m512;
  using M = __mmask16;
  static constexpr int W = 16;
  static TG_AVX512_INLINE V zero() { return _mm512_setzero_ps(); }
  static TG_AVX512_INLINE V set1(float a) { return _mm512_set1_ps(a); }
  static TG_AVX512_INLINE V load(const float* p) { return _mm512_loadu_ps(p); }
  static TG_AVX512_INLINE V loadz(M m, const float* p) { return _mm512_maskz_loadu_ps(m, p); }
  static TG_AVX512_INLINE void store(float* p, V v) { _mm512_storeu_ps(p, v); }
  static TG_AVX512_INLINE void store(M m, float* p, V v) { _mm512_mask_storeu_ps(p, m, v); }
  static TG_AVX512_INLINE V fma(V a, V b, V c) { return _mm512_fmadd_ps(a, b, c); }
  static TG_AVX512_INLINE V add(V a, V b) { return _mm512_add_ps(a, b); }
  static TG_AVX512_INLINE float sum(V v) { return _mm512_reduce_add_ps(v); }
  static TG_AVX512_INLINE M mask(int64_t n) { return n >= W ? M(0xFFFF) : M((1u << std::max<int64_t>(n, 0)) - 1); }
};
template <> struct Vec<double> {
  using V = __m512d;
  using M = __mmask8;
  static constexpr int W = 8;
  static TG_AVX512_INLINE V zero() { return _mm512_setzero_pd(); }
  static TG_AVX512_INLINE V set1(double a) { return _mm512_set1_pd(a); }
  static TG_AVX512_INLINE V load(const double* p) { return _mm512_loadu_pd(p); }
  static TG_AVX512_INLINE V loadz(M m, const double* p) { return _mm512_maskz_loadu_pd(m, p); }
  static TG_AVX512_INLINE void store(double* p, V v) { _mm512_storeu_pd(p, v); }
  static TG_AVX512_INLINE void store(M m, double* p, V v) { _mm512_mask_storeu_pd(p, m, v); }
  static TG_AVX512_INLINE V fma(V a, V b, V c) { return _mm512_fmadd_pd(a, b, c); }
  static TG_AVX512_INLINE V add(V a, V b) { return _mm512_add_pd(a, b); }
  static TG_AVX512_INLINE double sum(V v) { return _mm512_reduce_add_pd(v); }
  static TG_AVX512_INLINE M mask(int64_t n) { return n >= W ? M(0xFF) : M((1u << std::max<int64_t>(n, 0)) - 1); }
};

// rows micro-kernel: C (m <= MR rows, n <= NV*W columns, row stride ldc) = (kAcc ? C : 0) + Ap @ B,
// Ap packed [K][MR], row k of B (n elements) at B + boff[k]. A short tile masks its columns: every
// element gets the same FMAs, in the same order, in either case.
template <typename T, bool kFull, int NV = kRowsNV, bool kAcc = false>
TG_AVX512 void rows_tile(int64_t K, const T* __restrict Ap, const T* __restrict B, const int64_t* boff,
                         T* __restrict C, int64_t ldc, int m, int64_t n) {
  using X = Vec<T>;
  using V = typename X::V;
  constexpr int W = X::W;
  typename X::M mk[NV];
  for (int v = 0; v < NV; ++v) mk[v] = X::mask(n - v * W);
  V c[kRowsMR][NV];
  for (int i = 0; i < kRowsMR; ++i)
    for (int v = 0; v < NV; ++v) c[i][v] = X::zero();
#pragma GCC unroll 2
  for (int64_t k = 0; k < K; ++k, Ap += kRowsMR) {
    const T* b_row = B + boff[k];
    V b[NV];
    for (int v = 0; v < NV; ++v) b[v] = kFull ? X::load(b_row + v * W) : X::loadz(mk[v], b_row + v * W);
    for (int i = 0; i < kRowsMR; ++i) {
      const V a = X::set1(Ap[i]);
      for (int v = 0; v < NV; ++v) c[i][v] = X::fma(a, b[v], c[i][v]);
    }
  }
  for (int i = 0; i < kRowsMR; ++i) {
    if (i >= m) break;
    for (int v = 0; v < NV; ++v) {
      if (kAcc) c[i][v] = X::add(c[i][v], kFull ? X::load(C + i * ldc + v * W) : X::loadz(mk[v], C + i * ldc + v * W));
      if (kFull)
        X::store(C + i * ldc + v * W, c[i][v]);
      else
        X::store(mk[v], C + i * ldc + v * W, c[i][v]);
    }
  }
}

// C (M x N, row stride ldc) = (kAcc ? C : 0) + A @ B for A packed by pack_rows_a ([panel][K][MR])
// and row k of B (N elements) at B + boff[k]: one A panel at a time (it stays in L1) across all
// column blocks of NV vectors.
template <typename T, int NV = kRowsNV, bool kAcc = false>
TG_AVX512 void rows_product(int64_t M, int64_t N, int64_t K, const T* Ap, const T* B, const int64_t* boff, T* C,
                            int64_t ldc) {
  constexpr int64_t NB = NV * Vec<T>::W;
  for (int64_t r = 0; r * kRowsMR < M; ++r) {
    const int m = int(std::min<int64_t>(kRowsMR, M - r * kRowsMR));
    const T* a = Ap + r * K * kRowsMR;
    T* c = C + r * kRowsMR * ldc;
    int64_t j = 0;
    for (; j + NB <= N; j += NB) rows_tile<T, true, NV, kAcc>(K, a, B + j, boff, c + j, ldc, m, NB);
    if (j < N) rows_tile<T, false, NV, kAcc>(K, a, B + j, boff, c + j, ldc, m, N - j);
  }
}

// dots micro-kernel: C[i][j] (i < mi, j < nj; row stride ldc) = (acc ? C[i][j] : 0) + sum over
// segments s < nseg and l < L of A[s*sa + i*lda + l] * B[s*sb + boff[j] + l]. Rows past mi / nj
// re-read row 0 (their results are dropped), so an edge tile does the same arithmetic per element.
template <typename T>
TG_AVX512 void dots_tile(int64_t nseg, int64_t L, const T* A, int64_t lda, int64_t sa, const T* B,
                         const int64_t* boff, int64_t sb, T* C, int64_t ldc, int mi, int nj, bool acc) {
  using X = Vec<T>;
  using V = typename X::V;
  constexpr int W = X::W;
  int64_t ao[kDotMI], bo[kDotNJ];
  for (int i = 0; i < kDotMI; ++i) ao[i] = (i < mi ? i : 0) * lda;
  for (int j = 0; j < kDotNJ; ++j) bo[j] = boff[j < nj ? j : 0];
  V c[kDotMI][kDotNJ];
  for (int i = 0; i < kDotMI; ++i)
    for (int j = 0; j < kDotNJ; ++j) c[i][j] = X::zero();
  const typename X::M tail = X::mask(L % W);
  for (int64_t s = 0; s < nseg; ++s, A += sa, B += sb) {
    int64_t l = 0;
    for (; l + W <= L; l += W) {
      V b[kDotNJ];
      for (int j = 0; j < kDotNJ; ++j) b[j] = X::load(B + bo[j] + l);
      for (int i = 0; i < kDotMI; ++i) {
        const V a = X::load(A + ao[i] + l);
        for (int j = 0; j < kDotNJ; ++j) c[i][j] = X::fma(a, b[j], c[i][j]);
      }
    }
    if (l < L) {
      V b[kDotNJ];
      for (int j = 0; j < kDotNJ; ++j) b[j] = X::loadz(tail, B + bo[j] + l);
      for (int i = 0; i < kDotMI; ++i) {
        const V a = X::loadz(tail, A + ao[i] + l);
        for (int j = 0; j < kDotNJ; ++j) c[i][j] = X::fma(a, b[j], c[i][j]);
      }
    }
  }
  for (int i = 0; i < mi; ++i)
    for (int j = 0; j < nj; ++j) {
      const T v = X::sum(c[i][j]);
      C[i * ldc + j] = acc ? C[i * ldc + j] + v : v;
    }
}

// C (M x N, row stride ldc) (+)= the dots of A's M rows (row stride lda) with B's N rows (row j at
// B + boff[j]) over the segments: a block of kDotNJ rows of B (in L1) against every row block of A.
template <typename T>
TG_AVX512 void dots_product(int64_t M, int64_t N, int64_t nseg, int64_t L, const T* A, int64_t lda, int64_t sa,
                            const T* B, const int64_t* boff, int64_t sb, T* C, int64_t ldc, bool acc) {
  for (int64_t j = 0; j < N; j += kDotNJ)
    for (int64_t i = 0; i < M; i += kDotMI)
      dots_tile<T>(nseg, L, A + i * lda, lda, sa, B, boff + j, sb, C + i * ldc + j, ldc,
                   int(std::min<int64_t>(kDotMI, M - i)), int(std::min<int64_t>(kDotNJ, N - j)), acc);
}
// dst[q*ld + m] = src[m*ls + q] for m < 8, q < n <= 16: eight rows of floats to n rows of eight,
// in registers (the weight gradient by kernel rows packs gy and x so, 16 elements per row at a time).
TG_AVX512 void transpose_8_rows(const float* src, int64_t ls, int64_t n, float* dst, int64_t ld) {
  const __mmask16 mk = Vec<float>::mask(n);
  __m512 r[8], t[8], u[8];
  for (int m = 0; m < 8; ++m) r[m] = _mm512_maskz_loadu_ps(mk, src + m * ls);
  for (int m = 0; m < 8; m += 2) {  // per 128-bit lane L: t[m] (q 4L, 4L+1), t[m+1] (q 4L+2, 4L+3)
    t[m] = _mm512_unpacklo_ps(r[m], r[m + 1]);
    t[m + 1] = _mm512_unpackhi_ps(r[m], r[m + 1]);
  }
  for (int h = 0; h < 8; h += 4) {  // u[h + k]: lane L holds rows h..h+3 at q = 4L + k
    u[h + 0] = _mm512_shuffle_ps(t[h], t[h + 2], 0x44);
    u[h + 1] = _mm512_shuffle_ps(t[h], t[h + 2], 0xEE);
    u[h + 2] = _mm512_shuffle_ps(t[h + 1], t[h + 3], 0x44);
    u[h + 3] = _mm512_shuffle_ps(t[h + 1], t[h + 3], 0xEE);
  }
  alignas(64) float lo[16], hi[16];
  for (int k = 0; k < 4; ++k) {
    _mm512_store_ps(lo, u[k]);
    _mm512_store_ps(hi, u[4 + k]);
    for (int L = 0; L < 4 && 4 * L + k < n; ++L) {
      float* d = dst + (4 * L + k) * ld;
      _mm_storeu_ps(d, _mm_load_ps(lo + 4 * L));
      _mm_storeu_ps(d + 4, _mm_load_ps(hi + 4 * L));
    }
  }
}

// col (Cg*taps rows (c, t), row stride ld, P columns) <- x (Cg, V) by shifted taps: vol2col's
// col, one masked load and store per W positions instead of a copy and fills per output row
// (on 8x8 images rows of 8, and vol2col's calls per row dominated the weight gradient's time).
template <typename T>
TG_AVX512 void shift_col(int64_t Cg, int64_t taps, int64_t V, int64_t P, const T* x, const int64_t* toff,
                         const uint16_t* masks, T* col, int64_t ld) {
  using X = Vec<T>;
  using M = typename X::M;
  constexpr int W = X::W;
  for (int64_t c = 0; c < Cg; ++c)
    for (int64_t t = 0; t < taps; ++t) {
      const T* src = x + c * V + toff[t];
      T* row = col + (c * taps + t) * ld;
      for (int64_t p = 0, b = 0; p < P; p += W, ++b)
        X::store(X::mask(P - p), row + p, X::loadz(M(masks[b * taps + t]), src + p));
    }
}
#undef TG_AVX512_INLINE
#undef TG_AVX512
#else
inline void transpose_8_rows(const float*, int64_t, int64_t, float*, int64_t) {}
template <typename T>
void shift_col(int64_t, int64_t, int64_t, int64_t, const T*, const int64_t*, const uint16_t*, T*, int64_t) {}
template <typename T, int NV = kRowsNV, bool kAcc = false>
void rows_product(int64_t, int64_t, int64_t, const T*, const T*, const int64_t*, T*, int64_t) {}
template <typename T>
void dots_product(int64_t, int64_t, int64_t, int64_t, const T*, int64_t, int64_t, const T*, const int64_t*, int64_t,
                  T*, int64_t, bool) {}
#endif

// Weights are packed (or flipped) on all threads from this many elements: done before the
// products' region, single-threaded packing was a tenth of a ResNet 8x8 layer's pass at 2 threads.
constexpr int64_t kPackParallelElems = 1 << 15;

// Ap ([ceil(M / MR)][K][MR], zero rows past M) <- A (M x K) with row stride rsa, column stride csa;
// panels in parallel (a copy: any split gives one result).
template <typename T>
void pack_rows_a(int64_t M, int64_t K, const T* A, int64_t rsa, int64_t csa, T* Ap) {
  const int64_t panels = ceil_div(M, int64_t(kRowsMR));
  parallel_for(panels, panels * K * kRowsMR >= kPackParallelElems, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      T* dst = Ap + r * K * kRowsMR;
      const int64_t rows = std::min<int64_t>(kRowsMR, M - r * kRowsMR);
      if (csa == 1 && rows == kRowsMR) {  // rows read in order (the forward pass's weights)
        for (int i = 0; i < kRowsMR; ++i) {
          const T* src = A + (r * kRowsMR + i) * rsa;
          for (int64_t k = 0; k < K; ++k) dst[k * kRowsMR + i] = src[k];
        }
        continue;
      }
      for (int64_t k = 0; k < K; ++k)
        for (int i = 0; i < kRowsMR; ++i) dst[k * kRowsMR + i] = i < rows ? A[(r * kRowsMR + i) * rsa + k * csa] : T(0);
    }
  });
}

// Elements of pack_rows_a's output for M rows.
int64_t packed_rows_len(int64_t M, int64_t K) { return ceil_div(M, int64_t(kRowsMR)) * kRowsMR * K; }

// A row stride for col (K x cols) whose rows do not all fall in the same L1 sets (a multiple
// of 4 KiB would).
template <typename T>
int64_t col_stride(int64_t cols) {
  return (cols * int64_t(sizeof(T))) % 4096 == 0 ? cols + 64 / int64_t(sizeof(T)) : cols;
}

// gw = the sum of nchunks partial weight gradients (each W_len long, back to back), in chunk
// order for every element, so the result does not depend on the thread count.
template <typename T>
void sum_chunk_partials(const T* parts, int64_t nchunks, int64_t W_len, T* gw) {
  parallel_for(W_len, true, [&](int64_t begin, int64_t end) {
    for (int64_t e = begin; e < end; ++e) {
      T acc = parts[e];
      for (int64_t c = 1; c < nchunks; ++c) acc += parts[c * W_len + e];
      gw[e] = acc;
    }
  });
}

// Runs fn(task, scratch) for task in [0, ntasks), each with its own scratch buffer of `len`
// elements (see the threading note at the top of the file; kAlways: the tasks run in parallel
// however few, as for the direct products, which never start a region of their own). A
// thread's allocation failure is raised on the caller (parallel_for) after the others have finished.
template <typename T, bool kAlways = false, typename Fn>
void for_each_task(int64_t ntasks, int64_t len, Fn fn) {
  parallel_for(ntasks, kAlways || ntasks >= num_threads(), [&](int64_t begin, int64_t end) {
    const std::unique_ptr<T[]> scratch = scratch_array<T>(len);  // not zeroed: every pass writes before it reads
    for (int64_t t = begin; t < end; ++t) fn(t, scratch.get());
  });
}

// ---------------------------------------------------------------- the direct-product passes
// Each task's output block is computed whole by rows_product or dots_product, whose per-element
// arithmetic does not depend on who runs it.
//
// Stride 1 ("implicit"): no vol2col. The image is copied once, zero-padded, to (Cg, Dp, Hp, Wp),
// and outputs are computed on the padded grid: output (od, oh, ow) at od*Hp*Wp + oh*Wp + ow, so
// the row of tap (c, a, i, j) is the padded image itself, shifted by c*Vp + a*dd*Hp*Wp + i*dh*Wp
// + j*dw. The grid's extra positions (ow >= Wo, oh >= Ho) cost a little arithmetic (2/Wp of it
// for a 3x3 kernel with padding 1) and are dropped; vol2col would cost as much as the product
// itself on ResNet's 8x8 to 32x32 images (it copies each input element kd*kh*kw times, in short rows).

// Direct products pay off from this many output positions per image (a tile is 16-32 wide).
constexpr int64_t kDirectMinColumns = 16;
// The forward pass and the input gradient go by direct products from this many output positions
// per image; below, by vol2col + gemm over a batch of images (images_per_gemm: 16 images of 4x4
// make 256 columns). One image's 16 positions fill half a 32-wide float tile: ResNet-18's 256->256
// on 4x4 (batch 16) took 7.8 ms forward, 10.4 ms input grad by direct products, 2.7 ms each by gemm.
constexpr int64_t kDirectMinOutputs = 32;
// The rows kernel's tile width in float (the grid's waste is counted in whole tiles).
constexpr int64_t kImplicitTile = 32;
// The weight gradient's chunks hold at least this many positions: each chunk's sums end in a
// reduction across vector lanes per weight (about ten instructions), worth it over a long run.
// (64->64 on 8x8, batch 32: chunks of 256 positions spent a third of the time in reductions.)
constexpr int64_t kDotMinPositions = 1024;

// A 1x1(x1) input whose output is 1x1(x1) (ResNet's last stages on small images): only the tap at
// -pad + tap * dilation = 0 in every dim reads the input; the others see padding. Its index, or -1.
int64_t single_pixel_tap(const ConvShape& s) {
  if (s.pd % s.dd || s.ph % s.dh || s.pw % s.dw || s.pd / s.dd >= s.kd || s.ph / s.dh >= s.kh ||
      s.pw / s.dw >= s.kw)
    return -1;
  return ((s.pd / s.dd) * s.kh + s.ph / s.dh) * s.kw + s.pw / s.dw;
}

bool is_single_pixel(const ConvShape& s) { return in_volume(s) == 1 && out_positions(s) == 1 && kernel_taps(s) > 1; }

bool is_stride_one(const ConvShape& s) { return s.sd == 1 && s.sh == 1 && s.sw == 1 && !is_pointwise(s); }

std::vector<int64_t> strided_rows(int64_t K, int64_t ld) {
  std::vector<int64_t> off(K);
  for (int64_t k = 0; k < K; ++k) off[k] = k * ld;
  return off;
}

// The padded grid of a stride-1 convolution: the padded volume (Dp, Hp, Wp) and the grid
// positions L that hold every output, the last one at (Do-1, Ho-1, Wo-1).
struct Grid {
  int64_t Dp, Hp, Wp, Vp, L;
};

Grid padded_grid(const ConvShape& s) {
  Grid g;
  g.Dp = s.D + 2 * s.pd, g.Hp = s.H + 2 * s.ph, g.Wp = s.W + 2 * s.pw;
  g.Vp = checked_mul(checked_mul(g.Dp, g.Hp, s.op, "padded volume"), g.Wp, s.op, "padded volume");
  g.L = ((s.Do - 1) * g.Hp + s.Ho - 1) * g.Wp + s.Wo;
  return g;
}

// Whether the forward pass (and so the stride-1 input gradient) goes by the padded grid: stride 1,
// and the grid's extra positions, rounded up to whole tiles, at most a quarter more than the
// outputs (ResNet's 16x16 and 32x32 layers; its 8x8 ones, on a 10-wide grid, go by vol2col).
bool implicit_pays(const ConvShape& s) {
  if (!is_stride_one(s)) return false;
  const Grid g = padded_grid(s);
  return 4 * ceil_div(g.L, int64_t(kImplicitTile)) * kImplicitTile <= 5 * out_positions(s);
}

// Row offsets of the K = Cg * taps rows (c, a, i, j) in the padded image.
std::vector<int64_t> tap_offsets(const ConvShape& s, int64_t Cg, const Grid& g) {
  std::vector<int64_t> off;
  off.reserve(Cg * kernel_taps(s));
  for (int64_t c = 0; c < Cg; ++c)
    for (int64_t a = 0; a < s.kd; ++a)
      for (int64_t i = 0; i < s.kh; ++i)
        for (int64_t j = 0; j < s.kw; ++j) off.push_back(c * g.Vp + (a * s.dd * g.Hp + i * s.dh) * g.Wp + j * s.dw);
  return off;
}

// xp (Cg, Dp, Hp, Wp) <- x (Cg, D, H, W), zero-padded.
template <typename T>
void pad_volume(const ConvShape& s, int64_t Cg, const T* x, const Grid& g, T* xp) {
  std::fill(xp, xp + Cg * g.Vp, T(0));
  for (int64_t c = 0; c < Cg; ++c)
    for (int64_t d = 0; d < s.D; ++d)
      for (int64_t h = 0; h < s.H; ++h)
        std::memcpy(xp + c * g.Vp + ((d + s.pd) * g.Hp + h + s.ph) * g.Wp + s.pw,
                    x + ((c * s.D + d) * s.H + h) * s.W, s.W * sizeof(T));
}

// ---------------------------------------------------------------- shifted taps
// A stride-1 convolution whose output has its input's size ("same" padding) reads, at output
// position p and tap t = (a, i, j), the input element p + toff[t] with toff[t] = (a*dd - pd)*H*W +
// (i*dh - ph)*W + j*dw - pw, one offset for every p, except where the tap falls in the padding. So
// its col's row (c, t) is x's channel c read at that offset, the padding's lanes zeroed by a
// masked load (shift_col): a few vector loads and stores per row, where vol2col copies and fills
// per output row (8 elements on ResNet's 8x8 images). Where the padded grid does not pay, the
// forward product then runs on that col (ResNet's 64->64 on 8x8, batch 32, 1 thread, float32, CPU
// time: 2.25 -> 1.13 ms; reading x in place under the masks instead, 1.55 ms). A masked-off lane
// is never read (AVX-512 suppresses its faults), so the offsets may reach a padding's width
// before or after x.
bool is_shifted(const ConvShape& s) { return is_stride_one(s) && s.Do == s.D && s.Ho == s.H && s.Wo == s.W; }

// toff[t] for each tap, and masks[b * taps + t]: bit l set when position b*lanes + l is an output
// (< D*H*W) whose tap t reads inside the input, for nblocks blocks (those past the end are zero).
void shift_taps(const ConvShape& s, int64_t lanes, int64_t nblocks, std::vector<int64_t>& toff,
                std::vector<uint16_t>& masks) {
  const int64_t taps = kernel_taps(s);
  toff.clear();
  for (int64_t a = 0; a < s.kd; ++a)
    for (int64_t i = 0; i < s.kh; ++i)
      for (int64_t j = 0; j < s.kw; ++j)
        toff.push_back(((a * s.dd - s.pd) * s.H + i * s.dh - s.ph) * s.W + j * s.dw - s.pw);
  masks.assign(nblocks * taps, 0);
  const auto inside = [](int64_t at, int64_t shift, int64_t n) { return at + shift >= 0 && at + shift < n; };
  for (int64_t p = 0; p < out_positions(s); ++p) {
    const int64_t d = p / (s.H * s.W), h = p / s.W % s.H, w = p % s.W;
    uint16_t* m = masks.data() + p / lanes * taps;
    for (int64_t a = 0, t = 0; a < s.kd; ++a)
      for (int64_t i = 0; i < s.kh; ++i)
        for (int64_t j = 0; j < s.kw; ++j, ++t)
          if (inside(d, a * s.dd - s.pd, s.D) && inside(h, i * s.dh - s.ph, s.H) && inside(w, j * s.dw - s.pw, s.W))
            m[t] |= uint16_t(1u << (p % lanes));
  }
}

template <typename T>
void conv_forward_direct(const ConvShape& s, const T* x, const T* w, const T* bias, T* y) {
  const int64_t Cg = s.C / s.groups, Og = s.O / s.groups, K = Cg * kernel_taps(s), P = out_positions(s);
  const bool pointwise = is_pointwise(s), implicit = implicit_pays(s);
  const int64_t HWo = s.Ho * s.Wo, wlen = packed_rows_len(Og, K);
  const auto wp = scratch_array<T>(checked_mul(s.groups, wlen, s.op, "packed weights"));  // pack_rows_a fills it
  for (int64_t g = 0; g < s.groups; ++g) pack_rows_a(Og, K, w + g * Og * K, K, 1, wp.get() + g * wlen);
  const auto add_bias = [&](T* yg, int64_t g) {
    for (int64_t o = 0; bias && o < Og; ++o) {
      T* yo = yg + o * P;
      const T b = bias[g * Og + o];
      for (int64_t p = 0; p < P; ++p) yo[p] += b;
    }
  };
  if (implicit) {
    // scratch: the padded image (Cg, Vp), then the output on the grid (Og, L)
    const Grid grid = padded_grid(s);
    const std::vector<int64_t> off = tap_offsets(s, Cg, grid);
    const int64_t xlen = checked_mul(Cg, grid.Vp, s.op, "padded image");
    int64_t len;
    if (!add_ok(xlen, checked_mul(Og, grid.L, s.op, "output grid"), len))
      throw SizeOverflow(std::string(s.op) + ": scratch overflows int64");
    for_each_task<T, true>(s.N * s.groups, len, [&](int64_t t, T* xp) {
      const int64_t n = t / s.groups, g = t % s.groups;
      T* yt = xp + xlen;
      pad_volume(s, Cg, x + (n * s.C + g * Cg) * in_volume(s), grid, xp);
      rows_product(Og, grid.L, K, wp.get() + g * wlen, xp, off.data(), yt, grid.L);
      T* yg = y + (n * s.O + g * Og) * P;
      for (int64_t o = 0; o < Og; ++o)
        for (int64_t od = 0; od < s.Do; ++od)
          for (int64_t oh = 0; oh < s.Ho; ++oh)
            std::memcpy(yg + o * P + (od * s.Ho + oh) * s.Wo, yt + o * grid.L + (od * grid.Hp + oh) * grid.Wp,
                        s.Wo * sizeof(T));
      add_bias(yg, g);
    });
    return;
  }
  int64_t col_plane, step = s.Do;  // output depth planes per vol2col (a large 3-D image's col in slices)
  if (!pointwise)
    step = mul_ok(K, HWo, col_plane) ? std::clamp<int64_t>(kForwardColElems / col_plane, 1, s.Do) : 1;
  const int64_t ld = pointwise ? P : col_stride<T>(step * HWo);
  const std::vector<int64_t> off = strided_rows(K, ld);
  const int64_t len = pointwise ? 0 : checked_mul(K, ld, s.op, "vol2col buffer");
  const bool shifted = is_shifted(s) && step == s.Do;  // col by shifted taps (one step: the whole image)
  std::vector<int64_t> toff;
  std::vector<uint16_t> masks;
  if (shifted) shift_taps(s, 64 / int64_t(sizeof(T)), ceil_div(P, 64 / int64_t(sizeof(T))), toff, masks);
  for_each_task<T, true>(s.N * s.groups, len, [&](int64_t t, T* col) {
    const int64_t n = t / s.groups, g = t % s.groups;
    const T* xg = x + (n * s.C + g * Cg) * in_volume(s);
    T* yg = y + (n * s.O + g * Og) * P;
    if (pointwise) {
      rows_product(Og, P, K, wp.get() + g * wlen, xg, off.data(), yg, P);
    } else {
      for (int64_t od0 = 0; od0 < s.Do; od0 += step) {
        const int64_t od1 = std::min(od0 + step, s.Do), cols = (od1 - od0) * HWo;
        if (shifted)
          shift_col(Cg, kernel_taps(s), in_volume(s), P, xg, toff.data(), masks.data(), col, ld);
        else
          vol2col(s, Cg, xg, col, ld, od0, od1);
        rows_product(Og, cols, K, wp.get() + g * wlen, col, off.data(), yg + od0 * HWo, P);
      }
    }
    add_bias(yg, g);
  });
}

// The input gradient of a stride-1 convolution is itself a stride-1 convolution: of gy, with the
// weights' channels swapped and taps reversed, padding dil*(k-1) - pad. The shape of that one,
// or false when it is not (padding beyond the kernel's reach, or a gy smaller than the output).
bool input_grad_as_forward(const ConvShape& s, ConvShape& t) {
  if (!is_stride_one(s)) return false;
  t = s;
  t.C = s.O, t.O = s.C;
  t.D = s.Do, t.H = s.Ho, t.W = s.Wo;
  t.Do = s.D, t.Ho = s.H, t.Wo = s.W;
  t.pd = s.dd * (s.kd - 1) - s.pd, t.ph = s.dh * (s.kh - 1) - s.ph, t.pw = s.dw * (s.kw - 1) - s.pw;
  return t.pd >= 0 && t.ph >= 0 && t.pw >= 0 && s.Do + t.pd * 2 - s.dd * (s.kd - 1) == s.D &&
         s.Ho + t.ph * 2 - s.dh * (s.kh - 1) == s.H && s.Wo + t.pw * 2 - s.dw * (s.kw - 1) == s.W;
}

// Whether the input gradient as a flipped convolution costs about what the transposed product
// (w^T @ gy, then col2vol) does: that one multiplies over the output positions, the flipped one
// over the input's, padding included. Equal for "same" convolutions (ResNet's); a valid 5x5 on
// 12x12 (LeNet's conv2) would do 2.25x the multiply-adds (measured 12.5 ms against 2.5), and
// a single input channel would fill one of the rows kernel's 8 rows.
bool flipped_pays(const ConvShape& s) {
  return 4 * in_volume(s) <= 5 * out_positions(s) && s.C / s.groups >= kRowsMR;
}

template <typename T>
void conv_input_grad_direct(const ConvShape& s, const T* gy, const T* w, T* gx) {
  const int64_t Cg = s.C / s.groups, Og = s.O / s.groups, taps = kernel_taps(s), K = Cg * taps, P = out_positions(s);
  ConvShape t;
  // (the flipped convolution would multiply gy's padding by w: see "non-finite values")
  if (input_grad_as_forward(s, t) && flipped_pays(s) && all_finite(w, s.O * K)) {
    // w2 (C, Og, taps): w2[g*Cg + c, o, taps-1-q] = w[g*Og + o, c, q]
    const auto w2 = scratch_array<T>(s.C * Og * taps);  // every element written below
    parallel_for(s.C, s.C * Og * taps >= kPackParallelElems, [&](int64_t begin, int64_t end) {
      for (int64_t gc = begin; gc < end; ++gc) {  // gc = g * Cg + c
        const int64_t g = gc / Cg, c = gc % Cg;
        for (int64_t o = 0; o < Og; ++o)
          for (int64_t q = 0; q < taps; ++q)
            w2[(gc * Og + o) * taps + taps - 1 - q] = w[((g * Og + o) * Cg + c) * taps + q];
      }
    });
    return conv_forward_direct<T>(t, gy, w2.get(), nullptr, gx);
  }
  const bool pointwise = is_pointwise(s);
  const int64_t ld = pointwise ? P : col_stride<T>(P), wlen = packed_rows_len(K, Og);
  // w[g]^T (K x Og): w[g] is (Og, K) row-major, so its transpose has row stride 1, column stride K
  const auto wp = scratch_array<T>(checked_mul(s.groups, wlen, s.op, "packed weights"));  // pack_rows_a fills it
  for (int64_t g = 0; g < s.groups; ++g) pack_rows_a(K, Og, w + g * Og * K, 1, K, wp.get() + g * wlen);
  const std::vector<int64_t> off = strided_rows(Og, P);  // gy's rows
  const int64_t len = pointwise ? 0 : checked_mul(K, ld, s.op, "vol2col buffer");
  for_each_task<T, true>(s.N * s.groups, len, [&](int64_t t, T* col) {
    const int64_t n = t / s.groups, g = t % s.groups;
    const T* gyg = gy + (n * s.O + g * Og) * P;
    T* gxg = gx + (n * s.C + g * Cg) * in_volume(s);
    if (pointwise) {
      rows_product(K, P, Og, wp.get() + g * wlen, gyg, off.data(), gxg, P);
      return;
    }
    rows_product(K, P, Og, wp.get() + g * wlen, gyg, off.data(), col, ld);
    std::fill(gxg, gxg + Cg * in_volume(s), T(0));
    col2vol(s, Cg, col, ld, gxg);
  });
}

template <typename T>
void conv_weight_grad_direct(const ConvShape& s, const T* x, const T* gy, T* gw) {
  const int64_t Cg = s.C / s.groups, Og = s.O / s.groups, K = Cg * kernel_taps(s), P = out_positions(s);
  const int64_t W_len = s.O * K, CHW = s.C * in_volume(s);
  const bool pointwise = is_pointwise(s), implicit = implicit_pays(s);
  const Grid grid = implicit ? padded_grid(s) : Grid{};
  // L: the positions a segment (an image) runs over; images go G at a time to one product.
  const int64_t L = implicit ? grid.L : P;
  int64_t positions;
  if (!mul_ok(s.N, L, positions)) positions = INT64_MAX;
  const int64_t nchunks = std::clamp<int64_t>(positions / kDotMinPositions, 1, std::min(s.N, kWeightGradMaxChunks));
  const int64_t G = std::clamp<int64_t>(kDotMinPositions / L, 1, s.N);
  // scratch: implicit, G padded images (Cg, Vp) then G gy grids (Og, L); else col (K, G*P)
  const int64_t ld = implicit || pointwise ? 0 : col_stride<T>(G * P);
  const int64_t xlen = implicit ? checked_mul(Cg, grid.Vp, s.op, "padded image") : 0;
  const int64_t ylen = implicit ? checked_mul(Og, grid.L, s.op, "output grid") : 0;
  int64_t len = 0;
  if (implicit && (!add_ok(xlen, ylen, len) || !mul_ok(len, G, len)))
    throw SizeOverflow(std::string(s.op) + ": scratch overflows int64");
  if (!implicit && !pointwise) len = checked_mul(K, ld, s.op, "vol2col buffer");
  const std::vector<int64_t> off =
      implicit ? tap_offsets(s, Cg, grid) : strided_rows(K, pointwise ? in_volume(s) : ld);
  std::vector<T> partials(nchunks > 1 ? checked_mul(nchunks, W_len, s.op, "chunk partials") : 0);
  for_each_task<T, true>(nchunks, len, [&](int64_t c, T* buf) {
    T* part = nchunks > 1 ? partials.data() + c * W_len : gw;
    const int64_t n_begin = c * s.N / nchunks, n_end = (c + 1) * s.N / nchunks;
    for (int64_t n0 = n_begin; n0 < n_end; n0 += G) {
      const int64_t gn = std::min(G, n_end - n0);
      for (int64_t g = 0; g < s.groups; ++g) {
        const T* xg = x + n0 * CHW + g * Cg * in_volume(s);
        const T* gyg = gy + (n0 * s.O + g * Og) * P;
        T* acc = part + g * Og * K;
        const bool first = n0 == n_begin;
        if (implicit) {
          T* xp = buf;
          T* gyp = buf + gn * xlen;
          for (int64_t i = 0; i < gn; ++i) {
            pad_volume(s, Cg, xg + i * CHW, grid, xp + i * xlen);
            // gy on the grid, zeros at the positions that are no output
            T* gi = gyp + i * ylen;
            std::fill(gi, gi + ylen, T(0));
            for (int64_t o = 0; o < Og; ++o)
              for (int64_t od = 0; od < s.Do; ++od)
                for (int64_t oh = 0; oh < s.Ho; ++oh)
                  std::memcpy(gi + o * grid.L + (od * grid.Hp + oh) * grid.Wp,
                              gyg + i * s.O * P + o * P + (od * s.Ho + oh) * s.Wo, s.Wo * sizeof(T));
          }
          dots_product(Og, K, gn, grid.L, gyp, grid.L, ylen, xp, off.data(), xlen, acc, K, !first);
        } else {
          if (!pointwise) vol2col_images(s, Cg, xg, CHW, gn, buf, ld);
          // segment i: image n0 + i, at gy + i*O*P and at col + i*P (or x + i*CHW)
          dots_product(Og, K, gn, P, gyg, P, s.O * P, pointwise ? xg : buf, off.data(), pointwise ? CHW : P, acc, K,
                       !first);
        }
      }
    }
  });
  if (nchunks > 1) sum_chunk_partials(partials.data(), nchunks, W_len, gw);
}

// ---------------------------------------------------------------- weight gradient by kernel rows
// gw[o, c, i, j] = sum over images n and output positions p = (oh, ow) of gy[n, o, p] *
// x[n, c, oh*sh - ph + i*dh, ow*sw - pw + j]. With an image copied channels-last and zero-padded,
// xt (Hp, Wp, Cg), the taps (j, c) of kernel row i at output p are kw*Cg contiguous elements at
// xt + ((oh*sh + i*dh)*Wp + ow*sw)*Cg (for a unit width dilation). So kernel row i's gradient is a
// product C_i (Og x kw*Cg) = gy (Og x positions) @ B_i whose row for position p the rows kernel
// reads in place at that offset, gy packed as its A. No col (vol2col and the shifted taps copy each
// element kh*kw times), no padded grid (its extra positions, 56% more than the outputs on an 8x8
// image, would be summed as zeros), and any stride. A product sums the positions of G images in
// order; a chunk's products accumulate in order into its partial (see conv_weight_grad_direct).
// Measured on ResNet-20's layers (batch 32, 1 thread, float32, CPU time, against the dots on the
// grid or gemm on shifted taps / vol2col before it): 16->16 32x32 1.44 -> 0.92 ms, 16->32 32x32
// stride 2 1.06 -> 0.56, 32->32 16x16 1.31 -> 0.85, 32->64 16x16 stride 2 0.96 -> 0.48, 64->64
// 8x8 1.19 -> 0.78 (PyTorch 1.22, 0.74, 0.91, 0.61, 0.87). Most of the gain before the packing
// was vectorised and xt aligned to a cache line was lost to cache-line-split loads of B.

// Positions summed by one product: its A panel (positions x MR) stays in L1, its B rows in L2.
constexpr int64_t kRowsGradPositions = 1024;
// A batch of small images makes a single chunk (16 images of 8x8 or smaller: ResNet-18's later
// stages), which no thread shares; its products then split into tiles of this many A panels
// (MR output channels each) per kernel row, shared by the threads. 128->128 on 8x8, batch 16,
// float32: 1.65 ms on 1 thread and 1.64 on 2 before; PyTorch 1.7 and 1.0.
constexpr int64_t kRowsGradPanels = 4;

// Whether the weight gradient goes by kernel rows: a 2-D convolution with a unit width dilation
// whose kernel row (kw*Cg taps) fills at least two vectors of the rows kernel.
template <typename T>
bool rows_grad_pays(const ConvShape& s) {
  return s.D == 1 && s.kd == 1 && s.Do == 1 && s.dw == 1 && !is_pointwise(s) &&
         s.kw * (s.C / s.groups) >= 2 * int64_t(64 / sizeof(T));
}

template <typename T>
void conv_weight_grad_rows(const ConvShape& s, const T* x, const T* gy, T* gw) {
  const int64_t Cg = s.C / s.groups, Og = s.O / s.groups, taps = kernel_taps(s), K = Cg * taps, P = out_positions(s);
  const int64_t W_len = s.O * K, CHW = s.C * in_volume(s), NR = s.kw * Cg;  // NR: a kernel row's taps (j, c)
  const int64_t Hp = s.H + 2 * s.ph, Wp = s.W + 2 * s.pw, HWp = checked_mul(Hp, Wp, s.op, "padded image");
  const int64_t Vt = checked_mul(HWp, Cg, s.op, "padded image");
  int64_t positions;
  if (!mul_ok(s.N, P, positions)) positions = INT64_MAX;
  const int64_t nchunks = std::clamp<int64_t>(positions / kDotMinPositions, 1, std::min(s.N, kWeightGradMaxChunks));
  const int64_t G = std::clamp<int64_t>(kRowsGradPositions / std::max<int64_t>(P, 1), 1, s.N);
  const int64_t GP = checked_mul(G, P, s.op, "positions"), Mp = ceil_div(Og, int64_t(kRowsMR)) * kRowsMR;
  // scratch: A, gy packed ([Og/MR][G*P][MR]); the G channels-last images (G, Hp, Wp, Cg); the
  // chunk's sums (groups, kh, Og, NR)
  const int64_t alen = checked_mul(Mp, GP, s.op, "packed gy"), blen = checked_mul(G, Vt, s.op, "padded images");
  int64_t len;
  constexpr int64_t kAlign = 64 / int64_t(sizeof(T));  // xt starts on a cache line (its rows are read as vectors)
  if (!add_ok(alen, blen, len) || !add_ok(len, W_len + kAlign, len))
    throw SizeOverflow(std::string(s.op) + ": scratch overflows int64");
  // row (image i, position p) of B: image i's xt at output p's first tap
  std::vector<int64_t> boff(GP);
  for (int64_t i = 0; i < G; ++i)
    for (int64_t oh = 0; oh < s.Ho; ++oh)
      for (int64_t ow = 0; ow < s.Wo; ++ow) boff[i * P + oh * s.Wo + ow] = i * Vt + (oh * s.sh * Wp + ow * s.sw) * Cg;
  std::vector<T> partials(nchunks > 1 ? checked_mul(nchunks, W_len, s.op, "chunk partials") : 0);
  for_each_task<T, true>(nchunks, len, [&](int64_t c, T* buf) {
    T* ap = buf;
    T* xt = buf + alen + (kAlign - (reinterpret_cast<uintptr_t>(buf + alen) / sizeof(T)) % kAlign) % kAlign;
    T* sums = xt + blen;
    const int64_t n_begin = c * s.N / nchunks, n_end = (c + 1) * s.N / nchunks;
    for (int64_t n0 = n_begin; n0 < n_end; n0 += G) {
      const int64_t gn = std::min(G, n_end - n0), kp = gn * P;
      for (int64_t g = 0; g < s.groups; ++g) {
        // ap[r][i*P + p][m] = gy[n0 + i, g*Og + r*MR + m, p], zero rows past Og
        for (int64_t r = 0; r < Mp / kRowsMR; ++r)
          for (int64_t i = 0; i < gn; ++i) {
            const T* src = gy + ((n0 + i) * s.O + g * Og + r * kRowsMR) * P;
            T* dst = ap + (r * kp + i * P) * kRowsMR;
            if (std::is_same<T, float>::value && kRowsMR == 8 && r * kRowsMR + 8 <= Og) {
              for (int64_t q = 0; q < P; q += 16)
                transpose_8_rows(reinterpret_cast<const float*>(src + q), P, std::min<int64_t>(16, P - q),
                                 reinterpret_cast<float*>(dst + q * kRowsMR), kRowsMR);
              continue;
            }
            for (int64_t m = 0; m < kRowsMR; ++m)
              for (int64_t q = 0; q < P; ++q) dst[q * kRowsMR + m] = r * kRowsMR + m < Og ? src[m * P + q] : T(0);
          }
        // xt[i][(h + ph)*Wp + w + pw][c] = x[n0 + i, g*Cg + c, h, w], zeros in the padding
        std::fill(xt, xt + gn * Vt, T(0));
        for (int64_t i = 0; i < gn; ++i)
          for (int64_t ch = 0; ch < Cg; ch += 8) {
            const T* src = x + (n0 + i) * CHW + (g * Cg + ch) * in_volume(s);
            T* dst = xt + i * Vt + (s.ph * Wp + s.pw) * Cg + ch;
            if (std::is_same<T, float>::value && ch + 8 <= Cg) {
              for (int64_t h = 0; h < s.H; ++h)
                for (int64_t w = 0; w < s.W; w += 16)
                  transpose_8_rows(reinterpret_cast<const float*>(src + h * s.W + w), in_volume(s),
                                   std::min<int64_t>(16, s.W - w), reinterpret_cast<float*>(dst + (h * Wp + w) * Cg), Cg);
              continue;
            }
            for (int64_t m = 0; m < 8 && ch + m < Cg; ++m)
              for (int64_t h = 0; h < s.H; ++h)
                for (int64_t w = 0; w < s.W; ++w) dst[(h * Wp + w) * Cg + m] = src[m * in_volume(s) + h * s.W + w];
          }
        // one product per (kernel row, kRowsGradPanels A panels): the tiles a single chunk's
        // threads share (see kRowsGradPanels); each panel's arithmetic is that of the whole product
        const int64_t mtiles = ceil_div(Mp / kRowsMR, kRowsGradPanels);
        parallel_tiles(s.kh * mtiles, nchunks == 1, [&](int64_t tile) {
          const int64_t i = tile / mtiles, r0 = tile % mtiles * kRowsGradPanels * kRowsMR;
          const int64_t m = std::min(Og - r0, kRowsGradPanels * kRowsMR);
          const T* a = ap + r0 * kp;
          const T* b = xt + i * s.dh * Wp * Cg;
          T* out = sums + ((g * s.kh + i) * Og + r0) * NR;
          const bool first = n0 == n_begin, three = NR % (3 * (64 / int64_t(sizeof(T)))) == 0;
          if (three)
            first ? rows_product<T, 3, false>(m, NR, kp, a, b, boff.data(), out, NR)
                  : rows_product<T, 3, true>(m, NR, kp, a, b, boff.data(), out, NR);
          else
            first ? rows_product<T, 2, false>(m, NR, kp, a, b, boff.data(), out, NR)
                  : rows_product<T, 2, true>(m, NR, kp, a, b, boff.data(), out, NR);
        });
      }
    }
    // sums[g][i][o][j*Cg + ch] -> gw[g*Og + o, ch, i, j]
    // (a copy, split over output channels for a single chunk: 512 x 512 x 3 x 3 weights scattered
    // with stride 9 took as long as the products of 16 images of 2x2)
    T* part = nchunks > 1 ? partials.data() + c * W_len : gw;
    parallel_for(s.groups * Og, nchunks == 1, [&](int64_t go_begin, int64_t go_end) {
      for (int64_t go = go_begin; go < go_end; ++go) {
        const int64_t g = go / Og, o = go % Og;
        for (int64_t i = 0; i < s.kh; ++i) {
          const T* src = sums + ((g * s.kh + i) * Og + o) * NR;
          T* dst = part + (g * Og + o) * K + i * s.kw;
          for (int64_t j = 0; j < s.kw; ++j)
            for (int64_t ch = 0; ch < Cg; ++ch) dst[ch * taps + j] = src[j * Cg + ch];
        }
      }
    });
  });
  if (nchunks > 1) sum_chunk_partials(partials.data(), nchunks, W_len, gw);
}

// The single-pixel forward and input gradient: one GEMM per group at the one tap that reads the
// input (weight column stride kd*kh*kw); zeros where none does.
template <typename T>
void conv_forward_single_pixel(const ConvShape& s, const T* x, const T* w, const T* bias, T* y) {
  const int64_t Cg = s.C / s.groups, Og = s.O / s.groups, taps = kernel_taps(s), tap = single_pixel_tap(s);
  for (int64_t g = 0; g < s.groups; ++g) {
    if (tap < 0) {
      for (int64_t n = 0; n < s.N; ++n) std::fill(y + n * s.O + g * Og, y + n * s.O + (g + 1) * Og, T(0));
      continue;
    }
    // y[:, g] (N x Og) = x[:, g] (N x Cg) @ w[g][:, :, tap]^T (Cg x Og: element (c, o) at o*Cg*taps + c*taps)
    gemm<T>(s.N, Og, Cg, T(1), x + g * Cg, s.C, 1, w + g * Og * Cg * taps + tap, taps, Cg * taps, T(0), y + g * Og,
            s.O, 1);
  }
  for (int64_t n = 0; bias && n < s.N; ++n)
    for (int64_t o = 0; o < s.O; ++o) y[n * s.O + o] += bias[o];
}

template <typename T>
void conv_input_grad_single_pixel(const ConvShape& s, const T* gy, const T* w, T* gx) {
  const int64_t Cg = s.C / s.groups, Og = s.O / s.groups, taps = kernel_taps(s), tap = single_pixel_tap(s);
  for (int64_t g = 0; g < s.groups; ++g) {
    if (tap < 0) {
      for (int64_t n = 0; n < s.N; ++n) std::fill(gx + n * s.C + g * Cg, gx + n * s.C + (g + 1) * Cg, T(0));
      continue;
    }
    // gx[:, g] (N x Cg) = gy[:, g] (N x Og) @ w[g][:, :, tap] (Og x Cg: element (o, c) at o*Cg*taps + c*taps)
    gemm<T>(s.N, Cg, Og, T(1), gy + g * Og, s.O, 1, w + g * Og * Cg * taps + tap, Cg * taps, taps, T(0), gx + g * Cg,
            s.C, 1);
  }
}

// y = conv(x, w) + bias by the gemm route or the direct products, padding taps multiplied as zeros.
template <typename T>
void conv_forward_fast(const ConvShape& s, const T* x, const T* w, const T* bias, T* y);

}  // namespace

template <typename T>
void conv_forward(const ConvShape& s, const T* x, const T* w, const T* bias, T* y) {
  if (is_single_pixel(s)) return conv_forward_single_pixel(s, x, w, bias, y);
  if (conv_forward_winograd(s, x, w, bias, y)) return;  // 3x3 stride 1 where it pays (winograd.cpp)
  if (!reads_outside(s)) return conv_forward_fast(s, x, w, bias, y);
  // Padding: the fast routes are exact when the weights are finite (see "non-finite values"), or,
  // checked afterwards, when the output is: a finite output had no 0 * inf term either. Whichever
  // is smaller is scanned (ResNet-18's 512->512 on 2x2, batch 16: 2.4M weights, 33K outputs; the
  // weights' scan took a fifth of the pass).
  const int64_t wn = weight_elems(s), yn = s.N * s.O * out_positions(s);
  if (wn <= yn) return all_finite(w, wn) ? conv_forward_fast(s, x, w, bias, y) : conv_forward_exact(s, x, w, bias, y);
  conv_forward_fast(s, x, w, bias, y);
  if (!all_finite(y, yn)) conv_forward_exact(s, x, w, bias, y);
}

namespace {
template <typename T>
void conv_forward_fast(const ConvShape& s, const T* x, const T* w, const T* bias, T* y) {
  if (use_direct() && out_positions(s) >= kDirectMinOutputs) return conv_forward_direct(s, x, w, bias, y);
  const int64_t Cg = s.C / s.groups, Og = s.O / s.groups, K = Cg * kernel_taps(s), P = out_positions(s);
  const bool pointwise = is_pointwise(s);
  const int64_t G = images_per_gemm(s), step = forward_step_planes(s), HWo = s.Ho * s.Wo;
  // scratch: col (K, G*P), then the GEMM's (Og, G*P) result when G > 1; with G == 1, col holds
  // `step` output depth planes (K, step*Ho*Wo) and the GEMM writes y's slice in place
  for_each_task<T>(ceil_div(s.N, G), scratch_len(s, step * HWo), [&](int64_t t, T* col) {
    const int64_t n0 = t * G, gn = std::min(G, s.N - n0), ld = gn * P;
    T* out = G > 1 ? col + K * G * P : nullptr;
    for (int64_t g = 0; g < s.groups; ++g) {
      const T* xg = x + (n0 * s.C + g * Cg) * in_volume(s);
      T* yg = y + (n0 * s.O + g * Og) * P;
      if (gn == 1 && !pointwise) {  // one image, `step` output depth planes at a time
        for (int64_t od0 = 0; od0 < s.Do; od0 += step) {
          const int64_t od1 = std::min(od0 + step, s.Do), cols = (od1 - od0) * HWo;
          vol2col(s, Cg, xg, col, cols, od0, od1);
          gemm<T>(Og, cols, K, T(1), w + g * Og * K, K, 1, col, cols, 1, T(0), yg + od0 * HWo, P, 1);
        }
        continue;
      }
      if (!pointwise) vol2col_images(s, Cg, xg, s.C * in_volume(s), gn, col, ld);
      gemm<T>(Og, ld, K, T(1), w + g * Og * K, K, 1, pointwise ? xg : col, ld, 1, T(0), gn > 1 ? out : yg, ld, 1);
      // out (Og, gn*P) -> y[n0 + i, g*Og + o, :]
      for (int64_t i = 0; i < gn && gn > 1; ++i)
        for (int64_t o = 0; o < Og; ++o) std::memcpy(yg + (i * s.O + o) * P, out + o * ld + i * P, P * sizeof(T));
    }
    if (bias) {
      for (int64_t i = 0; i < gn; ++i)
        for (int64_t o = 0; o < s.O; ++o) {
          T* yo = y + ((n0 + i) * s.O + o) * P;
          const T b = bias[o];
          for (int64_t p = 0; p < P; ++p) yo[p] += b;
        }
    }
  });
}
}  // namespace

template <typename T>
void conv_input_grad(const ConvShape& s, const T* gy, const T* w, T* gx) {
  if (is_single_pixel(s)) return conv_input_grad_single_pixel(s, gy, w, gx);
  if (conv_input_grad_winograd(s, gy, w, gx)) return;
  if (use_direct() && out_positions(s) >= kDirectMinOutputs && in_volume(s) >= kDirectMinColumns)
    return conv_input_grad_direct(s, gy, w, gx);
  const int64_t Cg = s.C / s.groups, Og = s.O / s.groups, K = Cg * kernel_taps(s), P = out_positions(s);
  const bool pointwise = is_pointwise(s);
  const int64_t G = images_per_gemm(s), CHW = s.C * in_volume(s);
  // scratch: col (K, G*P), then gy's (Og, G*P) block when G > 1
  for_each_task<T>(ceil_div(s.N, G), scratch_len(s, P), [&](int64_t t, T* col) {
    const int64_t n0 = t * G, gn = std::min(G, s.N - n0), ld = gn * P;
    T* in = G > 1 ? col + K * G * P : nullptr;
    T* gxn = gx + n0 * CHW;
    if (!pointwise) std::fill(gxn, gxn + gn * CHW, T(0));
    for (int64_t g = 0; g < s.groups; ++g) {
      const T* gyg = gy + (n0 * s.O + g * Og) * P;
      for (int64_t i = 0; i < gn && gn > 1; ++i)
        for (int64_t o = 0; o < Og; ++o) std::memcpy(in + o * ld + i * P, gyg + (i * s.O + o) * P, P * sizeof(T));
      T* gxg = gxn + g * Cg * in_volume(s);
      // w[g] is (Og, K) row-major, so its transpose has row stride 1, column stride K.
      gemm<T>(K, ld, Og, T(1), w + g * Og * K, 1, K, gn > 1 ? in : gyg, ld, 1, T(0), pointwise ? gxg : col, ld, 1);
      if (!pointwise) col2vol_images(s, Cg, col, ld, gn, gxg, CHW);
    }
  });
}

// A 1x1(x1) input whose output is 1x1(x1) (ResNet's last stages on small images): at most one
// tap (a, i, j) of the kernel reads the input, the one at -pad + tap * dilation = 0 in every dim;
// the others see only padding. Its gradient is gy^T x, one (Og, N) @ (N, Cg) GEMM per group,
// written at that tap with column stride kd*kh*kw; every other tap's gradient is zero. The
// general path would build (and sum per chunk) a K = C*kd*kh*kw column matrix of zeros instead.
template <typename T>
void conv_weight_grad_single_pixel(const ConvShape& s, const T* x, const T* gy, T* gw) {
  const int64_t Cg = s.C / s.groups, Og = s.O / s.groups, taps = kernel_taps(s);
  std::fill(gw, gw + s.O * Cg * taps, T(0));
  if (s.pd % s.dd || s.ph % s.dh || s.pw % s.dw || s.pd / s.dd >= s.kd || s.ph / s.dh >= s.kh ||
      s.pw / s.dw >= s.kw)
    return;
  const int64_t tap = ((s.pd / s.dd) * s.kh + s.ph / s.dh) * s.kw + s.pw / s.dw;
  for (int64_t g = 0; g < s.groups; ++g)
    // gy (N, O) row-major: its transpose's group block has row stride 1, column stride O.
    gemm<T>(Og, Cg, s.N, T(1), gy + g * Og, 1, s.O, x + g * Cg, s.C, 1, T(0), gw + g * Og * Cg * taps + tap,
            Cg * taps, taps);
}

template <typename T>
void conv_weight_grad_fast(const ConvShape& s, const T* x, const T* gy, T* gw) {
  const int64_t Cg = s.C / s.groups, Og = s.O / s.groups, K = Cg * kernel_taps(s), P = out_positions(s);
  const int64_t W_len = s.O * K, CHW = s.C * in_volume(s);
  if (s.N == 0) {
    std::fill(gw, gw + W_len, T(0));
    return;
  }
  if (in_volume(s) == 1 && P == 1 && kernel_taps(s) > 1) {
    conv_weight_grad_single_pixel(s, x, gy, gw);
    return;
  }
  // Kernel rows first (2-D, unit width dilation, a kernel row of at least two vectors: ResNet's
  // 3x3 layers past the stem, LeNet's conv2); then the dots on the padded grid of a long image and
  // for 1x1 products. Before kernel rows: through vol2col on short
  // images (8x8 outputs: LeNet's conv2, ResNet's stride-2 layers) the gemm below was faster on an
  // Intel Xeon with AVX-512 (LeNet conv2 float32 2.5 against 3.3 ms), and with its col by shifted
  // taps also on images shorter than a dots chunk (CPU time, batch 32, float32: ResNet's 32->32
  // on 16x16 1.75 against 2.2 ms by the grid's dots, 64->64 on 8x8 1.5 against 2.4 by vol2col;
  // 16->16 on 32x32 stays on the dots, 1.95 against 3.1).
  const bool pointwise = is_pointwise(s), shifted = use_direct() && is_shifted(s);
  if (use_direct() && rows_grad_pays<T>(s)) return conv_weight_grad_rows(s, x, gy, gw);
  if (use_direct() && out_positions(s) >= kDirectMinColumns / 2 &&
      ((implicit_pays(s) && !(shifted && out_positions(s) < kDotMinPositions)) || pointwise))
    return conv_weight_grad_direct(s, x, gy, gw);
  const int64_t nchunks = std::min(s.N, kWeightGradMaxChunks);
  const int64_t G = images_per_gemm(s);
  std::vector<int64_t> toff;
  std::vector<uint16_t> masks;
  if (shifted) shift_taps(s, 64 / int64_t(sizeof(T)), ceil_div(P, 64 / int64_t(sizeof(T))), toff, masks);
  // Chunk c holds images [c*N/nchunks, (c+1)*N/nchunks), taken G at a time; its partial sum
  // goes to gw itself when there is a single chunk.
  std::vector<T> partials(nchunks > 1 ? checked_mul(nchunks, W_len, s.op, "chunk partials") : 0);
  for_each_task<T>(nchunks, scratch_len(s, P), [&](int64_t c, T* col) {
    T* part = nchunks > 1 ? partials.data() + c * W_len : gw;
    T* in = G > 1 ? col + K * G * P : nullptr;
    const int64_t n_begin = c * s.N / nchunks, n_end = (c + 1) * s.N / nchunks;
    for (int64_t n0 = n_begin; n0 < n_end; n0 += G) {
      const int64_t gn = std::min(G, n_end - n0), ld = gn * P;
      for (int64_t g = 0; g < s.groups; ++g) {
        const T* xg = x + n0 * CHW + g * Cg * in_volume(s);
        const T* gyg = gy + (n0 * s.O + g * Og) * P;
        if (shifted)
          for (int64_t i = 0; i < gn; ++i)
            shift_col(Cg, kernel_taps(s), in_volume(s), P, xg + i * CHW, toff.data(), masks.data(), col + i * P, ld);
        else if (!pointwise)
          vol2col_images(s, Cg, xg, CHW, gn, col, ld);
        for (int64_t i = 0; i < gn && gn > 1; ++i)
          for (int64_t o = 0; o < Og; ++o) std::memcpy(in + o * ld + i * P, gyg + (i * s.O + o) * P, P * sizeof(T));
        // col is (K, ld) row-major, so its transpose has row stride 1, column stride ld.
        gemm<T>(Og, K, ld, T(1), gn > 1 ? in : gyg, ld, 1, pointwise ? xg : col, 1, ld,
                n0 == n_begin ? T(0) : T(1), part + g * Og * K, K, 1);
      }
    }
  });
  if (nchunks > 1) sum_chunk_partials(partials.data(), nchunks, W_len, gw);
}

template <typename T>
void conv_weight_grad(const ConvShape& s, const T* x, const T* gy, T* gw) {
  // With finite factors every padding term is a zero (see "non-finite values"); and a finite result
  // had only finite factors. Whichever side is smaller is scanned: the weight gradient of ResNet-18's
  // 512->512 on 2x2 (batch 16) has 2.4M elements, its x and gy 33K each.
  const int64_t wn = weight_elems(s), xn = s.N * s.C * in_volume(s), yn = s.N * s.O * out_positions(s);
  if (xn + yn < wn) {
    if (all_finite(x, xn) && all_finite(gy, yn)) return conv_weight_grad_fast(s, x, gy, gw);
    return conv_weight_grad_exact(s, x, gy, gw);
  }
  conv_weight_grad_fast(s, x, gy, gw);
  if (!all_finite(gw, wn)) conv_weight_grad_exact(s, x, gy, gw);
}

template <typename T>
void conv_bias_grad(int64_t N, int64_t O, int64_t P, const T* gy, T* gb) {
  // Eight interleaved partial sums per row (vectorisable, fixed order), rows summed in order.
  constexpr int kLanes = 8;
  parallel_for(O, true, [&](int64_t o_begin, int64_t o_end) {
    for (int64_t o = o_begin; o < o_end; ++o) {
      T total = 0;
      for (int64_t n = 0; n < N; ++n) {
        const T* r = gy + (n * O + o) * P;
        T lane[kLanes] = {};
        int64_t p = 0;
        for (; p + kLanes <= P; p += kLanes)
          for (int l = 0; l < kLanes; ++l) lane[l] += r[p + l];
        for (int l = 0; p < P; ++p, ++l) lane[l] += r[p];
        T row = 0;
        for (int l = 0; l < kLanes; ++l) row += lane[l];
        total += row;
      }
      gb[o] = total;
    }
  });
}

#define TAPEGRAD_INSTANTIATE(T)                                                              \
  template void conv_forward<T>(const ConvShape&, const T*, const T*, const T*, T*);    \
  template void conv_input_grad<T>(const ConvShape&, const T*, const T*, T*);           \
  template void conv_weight_grad<T>(const ConvShape&, const T*, const T*, T*);          \
  template void conv_bias_grad<T>(int64_t, int64_t, int64_t, const T*, T*);
TAPEGRAD_INSTANTIATE(float)
TAPEGRAD_INSTANTIATE(double)
#undef TAPEGRAD_INSTANTIATE

}  // namespace tapegrad
