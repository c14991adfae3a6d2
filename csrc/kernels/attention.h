// scaled_dot_product_attention as a blocked, memory-saving kernel (the FlashAttention idea on a
// CPU): queries in blocks of rows, keys in tiles; the forward keeps a running max and sum per
// query row and never holds more than one block x tile of scores; the backward recomputes the
// scores tile by tile from the saved log-sum-exp.
//
// Layout: q (BH, L, D), k (BH, S, D), v (BH, S, Dv), out (BH, L, Dv), all C-contiguous; mask,
// when not null, is an additive float mask (MB, L, S) with MB = 1 (shared) or BH; causal lets
// query i see keys j <= i (PyTorch's top-left alignment). A query row that sees no key (every
// score -inf) comes out NaN, as softmax over it does; its gradient is 0.
// Each (batch, head) is computed by one thread in a fixed order: results are bit-identical for
// any thread count.
#pragma once
#include <cstdint>

namespace tapegrad {

// out = softmax(q k^T * scale + mask) v; lse (BH, L) the log-sum-exp of each row's scores.
template <typename T>
void attention_forward(int64_t BH, int64_t L, int64_t S, int64_t D, int64_t Dv, const T* q, const T* k,
                       const T* v, const T* mask, int64_t MB, bool causal, T scale, T* out, T* lse);

// dq, dk, dv from gout (BH, L, Dv), the forward's out and lse.
template <typename T>
void attention_backward(int64_t BH, int64_t L, int64_t S, int64_t D, int64_t Dv, const T* q, const T* k,
                        const T* v, const T* mask, int64_t MB, bool causal, T scale, const T* out, const T* lse,
                        const T* gout, T* dq, T* dk, T* dv);

}  // namespace tapegrad
