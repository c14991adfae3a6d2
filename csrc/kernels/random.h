// Normal samples by the Box-Muller transform from a generator's raw 64-bit words (numpy's
// bit_generator.random_raw), so the stream stays the generator's: seeding, get_state / set_state
// and forked streams work as for every other draw, and the samples are the same for any thread
// count. numpy's standard_normal (a ziggurat, one element at a time) took 3.4x PyTorch's time for
// 1e6 float32 samples (PyTorch vectorises Box-Muller as here).
#pragma once
#include <cstdint>

namespace tapegrad {

// out[i] = mean + std z_i for i < n, the z's standard normal: pair j (elements 2j, 2j + 1) is
// r (cos t, sin t) with r = sqrt(-2 log u1), t = 2 pi u2 - pi, computed in double and rounded
// once to T. float: u1 and u2 from the two 32-bit halves of raw[j] (n_raw = ceil(n / 2)); double:
// 52 bits each of raw[2j] and raw[2j + 1] (n_raw = 2 ceil(n / 2)). u1 lies in (0, 1], so the
// largest |z| is 6.7 (float) and 8.5 (double).
template <typename T>
void normal_from_bits(const uint64_t* raw, int64_t n, double mean, double std, T* out);

}  // namespace tapegrad
