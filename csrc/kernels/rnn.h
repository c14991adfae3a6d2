// Fused LSTM and GRU layers: one direction of one layer over a whole (packed) sequence, the
// recurrent GEMM and the gates' nonlinearities and state update per step in C++, and the
// backward pass likewise, with the recurrent weight's gradient as one GEMM over all steps.
//
// Layout: a sequence is "packed" as PyTorch's PackedSequence: step t holds n[t] rows (n
// non-increasing, B = n[0]), the steps' rows back to back, N = sum(n) rows in all; row r of
// every step belongs to sequence r. Steps run in order t = 0..S-1, or S-1..0 when reverse.
// A sequence's state is carried in row r of a (B, H) state; rows past n[t] are left as they
// are at step t, so a finished sequence keeps its final state (forward) and a sequence that
// has not started keeps its initial state (reverse). Every operand is C-contiguous; weights
// are PyTorch's (gates x H, row-major) with the gate order i, f, g, o (LSTM) and r, z, n (GRU).
//
// Each element's arithmetic is fixed by its position and the GEMMs are deterministic, so results
// are bit-identical for any thread count.
#pragma once
#include <cstdint>

namespace tapegrad {

// gi (N, 4H): x W_ih^T + b_ih + b_hh. h0, c0 (B, H). whh (4H, H).
// out (N + 2B, H): rows [0, N) the h of every step, then h_n (B rows), then c_n (B rows).
// Saved for the backward: act (N, 4H) the activated gates, hprev and cprev (N, H) the states
// each step started from, tc (N, H) tanh of the new cell state.
template <typename T>
void lstm_forward(int64_t S, const int64_t* n, int64_t H, bool reverse, const T* gi, const T* h0, const T* c0,
                  const T* whh, T* out, T* act, T* hprev, T* cprev, T* tc);

// gout (N + 2B, H): the gradient of out. Writes dgi (N, 4H) (the gradient of the gates before
// their nonlinearities, which is gi's), dh0 and dc0 (B, H), dwhh (4H, H).
template <typename T>
void lstm_backward(int64_t S, const int64_t* n, int64_t H, bool reverse, const T* whh, const T* act,
                   const T* hprev, const T* cprev, const T* tc, const T* gout, T* dgi, T* dh0, T* dc0, T* dwhh);

// gi (N, 3H): x W_ih^T + b_ih. h0 (B, H). whh (3H, H), bhh (3H) or null.
// out (N + B, H): the h of every step, then h_n. Saved: act (N, 3H) r, z and n; ghn (N, H)
// h W_hn^T + b_hn; hprev (N, H).
template <typename T>
void gru_forward(int64_t S, const int64_t* n, int64_t H, bool reverse, const T* gi, const T* h0, const T* whh,
                 const T* bhh, T* out, T* act, T* ghn, T* hprev);

// gout (N + B, H). Writes dgi (N, 3H), dh0 (B, H), dwhh (3H, H) and, when not null, dbhh (3H).
template <typename T>
void gru_backward(int64_t S, const int64_t* n, int64_t H, bool reverse, const T* whh, const T* act, const T* ghn,
                  const T* hprev, const T* gout, T* dgi, T* dh0, T* dwhh, T* dbhh);

}  // namespace tapegrad
