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
// Threading: work is split into independent tasks (an image, or a chunk of images for the
// weight gradient) whose count depends on the shapes only. With at least as many tasks as
// threads, threads take whole tasks and each GEMM runs single-threaded inside the parallel
// region; otherwise tasks run in turn and each GEMM uses all threads. Either way every
// output element sees the same sequence of operations, so results do not depend on the
// thread count (given a GEMM whose result does not depend on it either).
#include "kernels/conv.h"

#include <algorithm>
#include <cstring>
#include <vector>

#include "kernels/checked.h"
#include "kernels/gemm.h"
#include "kernels/parallel.h"

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
    std::fill(r, r + lo, T(0));
    if (s.sw == 1) {
      if (hi > lo) std::memcpy(r + lo, xr + lo + off, (hi - lo) * sizeof(T));
    } else {
      for (int64_t ow = lo; ow < hi; ++ow) r[ow] = xr[ow * s.sw + off];
    }
    std::fill(r + hi, r + s.Wo, T(0));
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

// col (Cg*kd*kh*kw, (od1 - od0)*Ho*Wo), row stride ld, <- patches of x (Cg, D, H, W) for output
// depths [od0, od1), zeros where a tap falls in the padding. Row (c, a, i, j) holds, per output
// depth, one plane's taps (i, j).
template <typename T>
void vol2col(const ConvShape& s, int64_t Cg, const T* x, T* col, int64_t ld, int64_t od0, int64_t od1) {
  const int64_t HW = s.H * s.W, HWo = s.Ho * s.Wo;
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
  const int64_t HW = s.H * s.W, HWo = s.Ho * s.Wo;
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

// Runs fn(task, scratch) for task in [0, ntasks), each with its own scratch buffer of `len`
// elements (see the threading note at the top of the file). A thread's allocation failure is
// raised on the caller (parallel_for) after the others have finished.
template <typename T, typename Fn>
void for_each_task(int64_t ntasks, int64_t len, Fn fn) {
  parallel_for(ntasks, ntasks >= num_threads(), [&](int64_t begin, int64_t end) {
    std::vector<T> scratch(len);
    for (int64_t t = begin; t < end; ++t) fn(t, scratch.data());
  });
}

}  // namespace

template <typename T>
void conv_forward(const ConvShape& s, const T* x, const T* w, const T* bias, T* y) {
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
      if (!pointwise)
        for (int64_t i = 0; i < gn; ++i) vol2col(s, Cg, xg + i * s.C * in_volume(s), col + i * P, ld, 0, s.Do);
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

template <typename T>
void conv_input_grad(const ConvShape& s, const T* gy, const T* w, T* gx) {
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
      if (!pointwise)
        for (int64_t i = 0; i < gn; ++i) col2vol(s, Cg, col + i * P, ld, gxg + i * CHW);
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
void conv_weight_grad(const ConvShape& s, const T* x, const T* gy, T* gw) {
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
  const bool pointwise = is_pointwise(s);
  const int64_t nchunks = std::min(s.N, kWeightGradMaxChunks);
  const int64_t G = images_per_gemm(s);
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
        if (!pointwise)
          for (int64_t i = 0; i < gn; ++i) vol2col(s, Cg, xg + i * CHW, col + i * P, ld, 0, s.Do);
        for (int64_t i = 0; i < gn && gn > 1; ++i)
          for (int64_t o = 0; o < Og; ++o) std::memcpy(in + o * ld + i * P, gyg + (i * s.O + o) * P, P * sizeof(T));
        // col is (K, ld) row-major, so its transpose has row stride 1, column stride ld.
        gemm<T>(Og, K, ld, T(1), gn > 1 ? in : gyg, ld, 1, pointwise ? xg : col, 1, ld,
                n0 == n_begin ? T(0) : T(1), part + g * Og * K, K, 1);
      }
    }
  });
  if (nchunks > 1) {
    const T* parts = partials.data();
    parallel_for(W_len, true, [&](int64_t begin, int64_t end) {
      for (int64_t e = begin; e < end; ++e) {
        T acc = parts[e];
        for (int64_t c = 1; c < nchunks; ++c) acc += parts[c * W_len + e];
        gw[e] = acc;
      }
    });
  }
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
