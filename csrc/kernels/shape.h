// The copies behind tril / triu and pad: one pass that writes every output element once (numpy's
// np.tril builds a mask and a where; np.pad fills the border dim by dim; PyTorch's constant pad
// fills the whole output and then copies the interior over it).
//
// Layout: every array C-contiguous. Forwards move bits (elements of `width` bytes: 1, 2, 4 or 8),
// so any dtype of that width works and NaN payloads, infinities and -0.0 are kept. Work is split
// in row blocks fixed by the shape alone; the backward of pad adds each output element into one
// input element in a fixed order inside one slice of the outer dim, so results are bit-identical
// for any thread count.
#pragma once
#include <cstdint>

namespace tapegrad {

// out[b, i, j] = x[b, i, j] where the element is kept, else 0 (all bits zero), for x and out
// (B, R, C): lower keeps j - i <= k (tril), upper keeps j - i >= k (triu). out may be x.
void triangle(int64_t B, int64_t R, int64_t C, int64_t k, bool lower, int width, const void* x, void* out);

// A pad (or crop) of the last three dims of x (outer, n0, n1, n2) into out (outer, P0, P1, P2):
//   out[o, p0, p1, p2] = x[o, m0[p0], m1[p1], m2[p2]], or *value where any of the maps is < 0.
// m0, m1, m2 hold P0, P1, P2 indices (each < its n, or -1). For p2 in [a2, b2) the caller
// promises m2[p2] = p2 + off2 (the interior, copied as a block). value points at one element.
struct PadMaps {
  int64_t outer, n0, n1, n2, P0, P1, P2;
  const int64_t *m0, *m1, *m2;
  int64_t a2, b2, off2;
};
void pad_forward(const PadMaps& p, int width, const void* x, const void* value, void* out);

// The gradient of pad_forward: gx (outer, n0, n1, n2) = 0, then for every output element whose
// maps are all >= 0, gx[o, m0[p0], m1[p1], m2[p2]] += g[o, p0, p1, p2], in row-major order of
// (p0, p1, p2) within each o.
template <typename T>
void pad_backward(const PadMaps& p, const T* g, T* gx);

}  // namespace tapegrad
