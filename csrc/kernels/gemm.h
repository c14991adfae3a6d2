// GEMM: C = alpha * A @ B + beta * C on strided operands.
//
// Layout: every operand is addressed BLIS-style by a row stride and a column stride
// (in elements), so row-major, column-major (a transpose) and strided views all
// arrive without copies; packing absorbs the strides. M, N, K may be 0.
// beta == 0 means C is write-only (NaNs in C are not propagated), as in BLAS.
#pragma once
#include <cstdint>
#include <memory>

namespace tapegrad {

// With `bias` (N elements), bias[j] is then added to column j of C: C = (alpha * A @ B + beta *
// C) + bias, each element rounded as the product and a separate `C += bias` would round it, but
// added to each tile of C while it is in L1, not in a second pass over C from memory.
// A product of one row (x @ W^T) or one column (W @ v) whose K runs contiguous in both operands
// is computed as dot products, in lanes: its bits are not those of the same row computed
// within a product of more rows (as PyTorch's GEMV is not its GEMM's). Any other result is the
// same bits whichever rows or columns it is computed with, and for any thread count.
template <typename T>
void gemm(int64_t M, int64_t N, int64_t K, T alpha,
          const T* A, int64_t rsa, int64_t csa,
          const T* B, int64_t rsb, int64_t csb, T beta,
          T* C, int64_t rsc, int64_t csc, const T* bias = nullptr);

// A B operand packed once for many products with it (an RNN's recurrent weight, used at every
// time step): K x N, any strides, copied into the micro-kernel's panels for this CPU. gemm with
// a PackedB gives bit for bit what gemm with the B it was packed from gives, except for an A of
// one row with a B whose columns run contiguous over K: plain gemm takes that product as dot
// products (summed in lanes, not one chain over K per element), which the packed panels cannot.
template <typename T>
class PackedB {
 public:
  PackedB(int64_t K, int64_t N, const T* B, int64_t rsb, int64_t csb);
  int64_t rows() const { return K_; }
  int64_t cols() const { return N_; }
  const T* data() const { return data_.get(); }

 private:
  struct Free {
    void operator()(T* p) const;
  };
  int64_t K_, N_;
  std::unique_ptr<T[], Free> data_;
};

// C = alpha * A @ B + beta * C for a packed B (M x B.rows() times B.rows() x B.cols()).
template <typename T>
void gemm(int64_t M, T alpha, const T* A, int64_t rsa, int64_t csa, const PackedB<T>& B, T beta, T* C,
          int64_t rsc, int64_t csc);

// Which micro-kernel gemm runs on this CPU: "avx512", "avx2" or "generic". Chosen once, at the
// first call, from the CPU's features; TAPEGRAD_CPU (every family) or TAPEGRAD_GEMM_KERNEL (gemm
// alone) =avx2 or =generic caps the choice (cpu.h).
// The SIMD kernels give bit-identical results (the same FMA chain per element).
const char* gemm_kernel_name();

}  // namespace tapegrad
