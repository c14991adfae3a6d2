// Fused optimizer updates: Adam/AdamW and SGD over every parameter of a group in one call.
//
// Layout: each parameter and its state (grad, moments, momentum buffer) is a C-contiguous array of
// n elements; a call takes a list of them. The arithmetic of each element is the sequence of
// float operations the unfused numpy path (tapegrad/optim/adam.py, sgd.py) performs, in the same
// order and rounding (the file is compiled without FMA contraction), so the two paths give
// bit-identical parameters; elements are independent, so any thread count gives the same result.
#pragma once
#include <cstdint>
#include <vector>

namespace tapegrad {

template <typename T>
struct AdamTensors {
  int64_t n;
  T* p;
  const T* g;
  T* m;
  T* v;
  T* vmax;  // amsgrad's running max of v, or null
};

struct AdamHyper {
  double lr, beta1, beta2, eps, weight_decay;
  double step;  // the step count after this update (1 on the first)
  bool amsgrad, maximize, decoupled;
};

template <typename T>
void adam_step(const std::vector<AdamTensors<T>>& ts, const AdamHyper& h);

template <typename T>
struct SgdTensors {
  int64_t n;
  T* p;
  const T* g;
  T* buf;      // momentum buffer, or null without momentum
  bool first;  // the buffer is new: it becomes the (effective) gradient
};

struct SgdHyper {
  double lr, momentum, dampening, weight_decay;
  bool nesterov, maximize;
};

template <typename T>
void sgd_step(const std::vector<SgdTensors<T>>& ts, const SgdHyper& h);

}  // namespace tapegrad
