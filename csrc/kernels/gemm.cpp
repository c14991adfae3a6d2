// Reference GEMM (placeholder until the blocked, packed kernel lands).
#include "kernels/gemm.h"

namespace tapegrad {

template <typename T>
void gemm(int64_t M, int64_t N, int64_t K, T alpha,
          const T* A, int64_t rsa, int64_t csa,
          const T* B, int64_t rsb, int64_t csb, T beta,
          T* C, int64_t rsc, int64_t csc) {
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < M; ++i) {
    for (int64_t j = 0; j < N; ++j) {
      T acc = 0;
      for (int64_t p = 0; p < K; ++p) acc += A[i * rsa + p * csa] * B[p * rsb + j * csb];
      T* c = C + i * rsc + j * csc;
      *c = beta == T(0) ? alpha * acc : alpha * acc + beta * *c;
    }
  }
}

template void gemm<float>(int64_t, int64_t, int64_t, float, const float*, int64_t, int64_t,
                          const float*, int64_t, int64_t, float, float*, int64_t, int64_t);
template void gemm<double>(int64_t, int64_t, int64_t, double, const double*, int64_t, int64_t,
                           const double*, int64_t, int64_t, double, double*, int64_t, int64_t);

}  // namespace tapegrad
