// Layout: the operands through the result's shape simplified by strided.h, walked in out's memory
// order (forward) or the gradients' (backward); the flat elements cut into parallel.h's element
// blocks (fixed by the size alone). Where the innermost dim's runs are long and every operand is
// adjacent along it but a bound repeating one value (same-shape operands: one run; a bound broadcast
// along rows), each run goes straight to the loops (direct_runs). Else each block is walked in
// pieces of kPiece: in a piece an input is read in place where its elements are adjacent (one run,
// stride 1), as one value where they are one element (one run, stride 0), else gathered into a
// buffer on the stack; an output is written in place where adjacent, else through a buffer
// scattered after (bounds of one value each, not NaN: strided x and out walked in place, run by
// run, clamp_scalar_strided). The loops run on unit strides, compiled for the baseline ISA, AVX2+FMA and
// AVX-512 (the rows family's choice; selects, so the same bits), each a plain SIMD loop of compares
// and blends (vmaxps / vminps where the compiler sees them; checked with -fopt-info-vec).
#include "kernels/clamp.h"

#include "kernels/cpu.h"
#include "kernels/isa_variants.h"
#include "kernels/parallel.h"
#include "kernels/strided.h"

#include <algorithm>
#include <array>
#include <cstdint>

namespace tapegrad {
namespace {

Isa isa() { return kernel_isa(Kernel::rows); }

constexpr int64_t kPiece = 1024;  // elements: four operands' buffers of doubles take 32 KiB of stack

// bit 0: lo one value over the piece, bit 1: hi one value.
template <typename T, bool kLoOne, bool kHiOne>
TG_INLINE void clamp_loop(int64_t n, const T* x, const T* lo, const T* hi, T* out) {
  const T l0 = lo[0], h0 = hi[0];
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) {
    const T v = x[i], l = kLoOne ? l0 : lo[i], h = kHiOne ? h0 : hi[i];
    // numpy's maximum(x, lo) (x on a tie and where NaN, else lo: a NaN lo too), then minimum(m, hi),
    // as selects of one comparison each: GCC makes a branch of a select on two comparisons (`||`
    // or `|`), and the loop stayed scalar (1.9 ms for 1e6 floats against numpy's 1.0).
    T m = v < l ? l : v;
    m = l != l ? l : m;
    m = v != v ? v : m;
    T r = h < m ? h : m;
    r = h != h ? h : r;
    out[i] = m != m ? m : r;
  }
}

template <typename T>
TG_INLINE void clamp_forward_body(int one, int64_t n, const T* x, const T* lo, const T* hi, T* out) {
  switch (one) {
    case 0: return clamp_loop<T, false, false>(n, x, lo, hi, out);
    case 1: return clamp_loop<T, true, false>(n, x, lo, hi, out);
    case 2: return clamp_loop<T, false, true>(n, x, lo, hi, out);
    default: return clamp_loop<T, true, true>(n, x, lo, hi, out);
  }
}

// kWant: bit 0 gx, bit 1 glo, bit 2 ghi. Selects of one comparison each, as clamp_loop's.
template <typename T, bool kLoOne, bool kHiOne, int kWant>
TG_INLINE void clamp_grad_loop(int64_t n, const T* g, const T* x, const T* lo, const T* hi, T* gx, T* glo, T* ghi) {
  const T l0 = lo[0], h0 = hi[0];
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) {
    const T G = g[i], v = x[i], l = kLoOne ? l0 : lo[i], h = kHiOne ? h0 : hi[i];
    if constexpr ((kWant & 1) != 0) {
      const T t = v >= l ? G : T(0);
      gx[i] = v <= h ? t : T(0);
    }
    if constexpr ((kWant & 2) != 0) {
      const T t = v < l ? G : T(0);
      glo[i] = l < h ? t : T(0);
    }
    if constexpr ((kWant & 4) != 0) {
      const T t = v > h ? G : T(0);
      ghi[i] = h < l ? G : t;
    }
  }
}

template <typename T, bool kLoOne, bool kHiOne>
TG_INLINE void clamp_grad_want(int want, int64_t n, const T* g, const T* x, const T* lo, const T* hi, T* gx, T* glo,
                               T* ghi) {
  switch (want) {
    case 1: return clamp_grad_loop<T, kLoOne, kHiOne, 1>(n, g, x, lo, hi, gx, glo, ghi);
    case 2: return clamp_grad_loop<T, kLoOne, kHiOne, 2>(n, g, x, lo, hi, gx, glo, ghi);
    case 3: return clamp_grad_loop<T, kLoOne, kHiOne, 3>(n, g, x, lo, hi, gx, glo, ghi);
    case 4: return clamp_grad_loop<T, kLoOne, kHiOne, 4>(n, g, x, lo, hi, gx, glo, ghi);
    case 5: return clamp_grad_loop<T, kLoOne, kHiOne, 5>(n, g, x, lo, hi, gx, glo, ghi);
    case 6: return clamp_grad_loop<T, kLoOne, kHiOne, 6>(n, g, x, lo, hi, gx, glo, ghi);
    default: return clamp_grad_loop<T, kLoOne, kHiOne, 7>(n, g, x, lo, hi, gx, glo, ghi);
  }
}

template <typename T>
TG_INLINE void clamp_backward_body(int one, int want, int64_t n, const T* g, const T* x, const T* lo, const T* hi,
                                   T* gx, T* glo, T* ghi) {
  switch (one) {
    case 0: return clamp_grad_want<T, false, false>(want, n, g, x, lo, hi, gx, glo, ghi);
    case 1: return clamp_grad_want<T, true, false>(want, n, g, x, lo, hi, gx, glo, ghi);
    case 2: return clamp_grad_want<T, false, true>(want, n, g, x, lo, hi, gx, glo, ghi);
    default: return clamp_grad_want<T, true, true>(want, n, g, x, lo, hi, gx, glo, ghi);
  }
}

TG_VARIANTS(clamp_forward, (int one, int64_t n, const T* x, const T* lo, const T* hi, T* out), (one, n, x, lo, hi, out))
TG_VARIANTS(clamp_backward,
            (int one, int want, int64_t n, const T* g, const T* x, const T* lo, const T* hi, T* gx, T* glo, T* ghi),
            (one, want, n, g, x, lo, hi, gx, glo, ghi))

// Where a piece's elements of each operand lie: one run (then `off`, the operands' offsets at its
// start, and the innermost strides `step`), or several.
template <int K>
struct Piece {
  bool one_run;
  std::array<int64_t, K> off, step;
};

template <int K>
Piece<K> locate(const Strided<K>& s, int64_t e, int64_t n) {
  Piece<K> p{};
  const int64_t inner = s.shape.back();
  p.one_run = e % inner + n <= inner;
  if (p.one_run) {
    for_runs(s, e, 1, [&](const std::array<int64_t, K>& off, int64_t) { p.off = off; });
    p.step = s.strides.back();
  }
  return p;
}

// Input k's n elements of the piece from flat element e: in place, one value (*one set), or
// gathered into buf.
template <typename T, int K>
const T* load(const Strided<K>& s, const Piece<K>& p, int k, const T* base, int64_t e, int64_t n, T* buf, bool* one) {
  if (one != nullptr) *one = false;
  if (p.one_run) {
    const T* q = base + p.off[size_t(k)];
    const int64_t st = p.step[size_t(k)];
    if (st == 1) return q;
    if (st == 0) {
      if (one != nullptr) {
        *one = true;
        return q;
      }
      std::fill(buf, buf + n, *q);
      return buf;
    }
    for (int64_t i = 0; i < n; ++i) buf[i] = q[i * st];
    return buf;
  }
  T* o = buf;
  for_runs(s, e, n, [&](const std::array<int64_t, K>& off, int64_t len) {
    const T* q = base + off[size_t(k)];
    const int64_t st = s.strides.back()[size_t(k)];
    for (int64_t i = 0; i < len; ++i) o[i] = q[i * st];
    o += len;
  });
  return buf;
}

// Output k's place for the piece: in place, or buf (then `store` scatters it).
template <typename T, int K>
T* place(const Piece<K>& p, int k, T* base, T* buf) {
  return p.one_run && p.step[size_t(k)] == 1 ? base + p.off[size_t(k)] : buf;
}

template <typename T, int K>
void store(const Strided<K>& s, int k, T* base, int64_t e, int64_t n, const T* buf) {
  const T* i0 = buf;
  for_runs(s, e, n, [&](const std::array<int64_t, K>& off, int64_t len) {
    T* q = base + off[size_t(k)];
    const int64_t st = s.strides.back()[size_t(k)];
    for (int64_t i = 0; i < len; ++i) q[i * st] = i0[i];
    i0 += len;
  });
}

// Whether the innermost dim's runs go straight to the loops, no piece and no buffer: every operand's
// elements adjacent there (stride 1), but for the bounds (`first`..`last`), which may repeat one
// value (stride 0); and runs long enough to pay a call each. Then `one` is the loops' bound mask.
template <int K>
bool direct_runs(const Strided<K>& s, int first, int last, int* one) {
  const std::array<int64_t, K>& st = s.strides.back();
  if (s.shape.back() < 64) return false;
  *one = 0;
  for (int k = 0; k < K; ++k) {
    const int64_t v = st[size_t(k)];
    if (k >= first && k <= last && v == 0) *one |= 1 << (k - first);
    else if (v != 1) return false;
  }
  return true;
}

// Bounds that are one value each, neither NaN, and x and out strided along the innermost dim (a
// strided clamp_ such as x[:, ::2].clamp_(-0.5, 0.5)): each run straight through, no gather into
// a piece's buffer and scatter back. With bounds that are not NaN clamp_loop's selects reduce to
// these two (a NaN x fails both comparisons and stays), so the bits are the same.
template <typename T>
bool clamp_scalar_strided(const Strided<4>& s, const T* x, const T* lo, const T* hi, T* out) {
  for (const auto& st : s.strides)
    if (st[1] != 0 || st[2] != 0) return false;
  const T l = lo[0], h = hi[0];
  if (l != l || h != h) return false;
  const int64_t sx = s.strides.back()[0], so = s.strides.back()[3];
  for_element_blocks(s.size, [&](int64_t b, int64_t len) {
    for_runs(s, b, len, [&](const std::array<int64_t, 4>& o, int64_t n) {
      const T* px = x + o[0];
      T* po = out + o[3];
      for (int64_t i = 0; i < n; ++i) {
        const T v = px[i * sx];
        const T m = v < l ? l : v;
        po[i * so] = h < m ? h : m;
      }
    });
  });
  return true;
}

}  // namespace

template <typename T>
void clamp_tensor_forward(int nd, const int64_t* shape, const T* x, const int64_t* xs, const T* lo, const int64_t* ls,
                          const T* hi, const int64_t* hs, T* out, const int64_t* os) {
  const Strided<4> s = simplify<4>(nd, shape, {xs, ls, hs, os}, 3);
  int one;
  if (direct_runs(s, 1, 2, &one)) {  // same-shape operands (one run), or a bound broadcast along rows
    for_element_blocks(s.size, [&](int64_t b, int64_t len) {
      for_runs(s, b, len, [&](const std::array<int64_t, 4>& o, int64_t n) {
        TG_CALL(clamp_forward, T, one, n, x + o[0], lo + o[1], hi + o[2], out + o[3]);
      });
    });
    return;
  }
  if (clamp_scalar_strided(s, x, lo, hi, out)) return;
  for_element_blocks(s.size, [&](int64_t b, int64_t len) {
    alignas(64) T xb[kPiece], lb[kPiece], hb[kPiece], ob[kPiece];
    for (int64_t e = b; e < b + len; e += kPiece) {
      const int64_t n = std::min(kPiece, b + len - e);
      const Piece<4> p = locate(s, e, n);
      bool lone, hone;
      // x through a buffer when out is x and scattered (a strided clamp_): read all before writing
      const T* px = load(s, p, 0, x, e, n, xb, nullptr);
      const T* pl = load(s, p, 1, lo, e, n, lb, &lone);
      const T* ph = load(s, p, 2, hi, e, n, hb, &hone);
      T* po = place(p, 3, out, ob);
      TG_CALL(clamp_forward, T, int(lone) | int(hone) << 1, n, px, pl, ph, po);
      if (po == ob) store(s, 3, out, e, n, ob);
    }
  });
}

template <typename T>
void clamp_tensor_backward(int nd, const int64_t* shape, const T* g, const int64_t* gs, const T* x, const int64_t* xs,
                           const T* lo, const int64_t* ls, const T* hi, const int64_t* hs, T* gx, T* glo, T* ghi,
                           const int64_t* os) {
  const int want = (gx != nullptr) | (glo != nullptr) << 1 | (ghi != nullptr) << 2;
  if (want == 0) return;
  const Strided<5> s = simplify<5>(nd, shape, {gs, xs, ls, hs, os}, 4);
  int one;
  if (direct_runs(s, 2, 3, &one)) {
    for_element_blocks(s.size, [&](int64_t b, int64_t len) {
      for_runs(s, b, len, [&](const std::array<int64_t, 5>& o, int64_t n) {
        T* at[3] = {gx, glo, ghi};
        for (T*& p : at) p = p == nullptr ? nullptr : p + o[4];
        TG_CALL(clamp_backward, T, one, want, n, g + o[0], x + o[1], lo + o[2], hi + o[3], at[0], at[1], at[2]);
      });
    });
    return;
  }
  for_element_blocks(s.size, [&](int64_t b, int64_t len) {
    alignas(64) T gb[kPiece], xb[kPiece], lb[kPiece], hb[kPiece], ob[3][kPiece];
    for (int64_t e = b; e < b + len; e += kPiece) {
      const int64_t n = std::min(kPiece, b + len - e);
      const Piece<5> p = locate(s, e, n);
      bool lone, hone;
      const T* pg = load(s, p, 0, g, e, n, gb, nullptr);
      const T* px = load(s, p, 1, x, e, n, xb, nullptr);
      const T* pl = load(s, p, 2, lo, e, n, lb, &lone);
      const T* ph = load(s, p, 3, hi, e, n, hb, &hone);
      T* outs[3] = {gx, glo, ghi};
      T* po[3];
      for (int j = 0; j < 3; ++j) po[j] = outs[j] == nullptr ? nullptr : place(p, 4, outs[j], ob[j]);
      TG_CALL(clamp_backward, T, int(lone) | int(hone) << 1, want, n, pg, px, pl, ph, po[0], po[1], po[2]);
      for (int j = 0; j < 3; ++j)
        if (po[j] == ob[j]) store(s, 4, outs[j], e, n, ob[j]);
    }
  });
}

#define TG_CLAMP_INSTANTIATE(T)                                                                                      \
  template void clamp_tensor_forward<T>(int, const int64_t*, const T*, const int64_t*, const T*, const int64_t*,      \
                                        const T*, const int64_t*, T*, const int64_t*);                               \
  template void clamp_tensor_backward<T>(int, const int64_t*, const T*, const int64_t*, const T*, const int64_t*,     \
                                         const T*, const int64_t*, const T*, const int64_t*, T*, T*, T*,             \
                                         const int64_t*);
TG_CLAMP_INSTANTIATE(float)
TG_CLAMP_INSTANTIATE(double)
#undef TG_CLAMP_INSTANTIATE

}  // namespace tapegrad
