// scaled_dot_product_attention as a blocked, memory-saving kernel (the FlashAttention idea on a
// CPU): queries in blocks of rows, keys in tiles; the forward keeps a running max and sum per
// query row and never holds more than one block x tile of scores; the backward recomputes the
// scores tile by tile from the saved log-sum-exp.
//
// Layout: q (BH, L, D), k (BH, S, D), v (BH, S, Dv), each addressed as Heads (below): any head
// and row strides, elements of a row adjacent, so the (B, H, L, D) view that a (B, L, H, D)
// projection gives by transpose(1, 2) arrives without a copy; out is written, and read back by the
// backward, the same way (OutHeads). lse (BH, L) and the gradients are C-contiguous; mask, when not null, is an additive float mask (MB, L, S),
// C-contiguous, with MB = 1 (shared) or BH; causal lets query i see keys j <= i (PyTorch's
// top-left alignment). A query row that sees no key (every score -inf) comes out NaN, as softmax
// over it does; its gradient is 0.
// Each (batch, head) is computed by one thread in a fixed order: results are bit-identical for
// any thread count.
#pragma once
#include <cstdint>

namespace tapegrad {

// BH heads of rows: head b's row i starts at data + offset[b] + i * ld (elements).
template <typename T>
struct Heads {
  const T* data;
  const int64_t* offset;
  int64_t ld;
  const T* head(int64_t b) const { return data + offset[b]; }
};

// The same for rows to write.
template <typename T>
struct OutHeads {
  T* data;
  const int64_t* offset;
  int64_t ld;
  T* head(int64_t b) const { return data + offset[b]; }
};

// out = softmax(q k^T * scale + mask) v; lse (BH, L) the log-sum-exp of each row's scores.
template <typename T>
void attention_forward(int64_t BH, int64_t L, int64_t S, int64_t D, int64_t Dv, Heads<T> q, Heads<T> k, Heads<T> v,
                       const T* mask, int64_t MB, bool causal, T scale, OutHeads<T> out, T* lse);

// dq, dk, dv from gout (BH, L, Dv), the forward's out and lse.
template <typename T>
void attention_backward(int64_t BH, int64_t L, int64_t S, int64_t D, int64_t Dv, Heads<T> q, Heads<T> k, Heads<T> v,
                        const T* mask, int64_t MB, bool causal, T scale, Heads<T> out, const T* lse, Heads<T> gout,
                        T* dq, T* dk, T* dv);

}  // namespace tapegrad
