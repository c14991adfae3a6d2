// GEMM: C = alpha * A @ B + beta * C on strided operands.
//
// Layout: every operand is addressed BLIS-style by a row stride and a column stride
// (in elements), so row-major, column-major (a transpose) and strided views all
// arrive without copies; packing absorbs the strides. M, N, K may be 0.
// beta == 0 means C is write-only (NaNs in C are not propagated), as in BLAS.
#pragma once
#include <cstdint>

namespace tapegrad {

template <typename T>
void gemm(int64_t M, int64_t N, int64_t K, T alpha,
          const T* A, int64_t rsa, int64_t csa,
          const T* B, int64_t rsb, int64_t csb, T beta,
          T* C, int64_t rsc, int64_t csc);

// Which micro-kernel gemm runs on this CPU: "avx2" or "generic". Chosen once, at the first
// call, from the CPU's features; TAPEGRAD_GEMM_KERNEL=generic forces the portable one.
const char* gemm_kernel_name();

}  // namespace tapegrad
