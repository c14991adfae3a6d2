// One CPU-feature check and the environment caps for every kernel family (see cpu.h).
#include "kernels/cpu.h"

#include <algorithm>
#include <array>
#include <cstdlib>
#include <cstring>
#include <string>

namespace tapegrad {
namespace {

// The builds each family has: the highest level it is compiled for (every family has a generic
// build; conv's generic "build" is the im2col + gemm route).
Isa widest_build(Kernel k) {
  switch (k) {
    case Kernel::gemm: return Isa::avx512;
    case Kernel::conv: return Isa::avx512;
    case Kernel::rows: return Isa::avx512;
    case Kernel::norm: return Isa::avx512;
    case Kernel::rnn: return Isa::avx512;
    case Kernel::attention: return Isa::avx512;
    case Kernel::pool: return Isa::avx2;
    case Kernel::optim: return Isa::avx2;
  }
  return Isa::generic;
}
// conv has no avx2 build of its own: a cap at avx2 means the gemm route.
Isa highest_build_at_most(Kernel k, Isa cap) {
  Isa isa = std::min(cap, widest_build(k));
  if (k == Kernel::conv && isa != Isa::avx512) isa = Isa::generic;
  return isa;
}

Isa detect() {
#if defined(__x86_64__)  // the kernels' SIMD builds exist on x86-64 only
  __builtin_cpu_init();
  if (!__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma")) return Isa::generic;
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl"))
    return Isa::avx512;
  return Isa::avx2;
#else
  return Isa::generic;
#endif
}

struct Config {
  Isa detected = Isa::generic, cap = Isa::avx512, gemm_cap = Isa::avx512;
  bool conv_gemm = false;
  std::string error;
};

// Reads one variable: unset or empty leaves `cap` alone; otherwise the value must be one of
// names[0..n) (levels[i] its cap), else an error is recorded.
void read_cap(Config& c, const char* var, const char* const* names, const Isa* levels, int n, Isa& cap) {
  const char* v = std::getenv(var);
  if (!v || !*v) return;
  std::string accepted;
  for (int i = 0; i < n; ++i) {
    if (std::strcmp(v, names[i]) == 0) {
      cap = levels[i];
      return;
    }
    accepted += std::string(i ? ", " : "") + names[i];
  }
  if (c.error.empty())
    c.error = std::string(var) + "='" + v + "' is not one of " + accepted + " (it caps the kernels' instruction set)";
}

const Config& config() {
  static const Config c = [] {
    Config c;
    c.detected = detect();
    static const char* const cpu_names[] = {"avx512", "avx2", "generic"};
    static const Isa cpu_levels[] = {Isa::avx512, Isa::avx2, Isa::generic};
    read_cap(c, "TAPEGRAD_CPU", cpu_names, cpu_levels, 3, c.cap);
    read_cap(c, "TAPEGRAD_GEMM_KERNEL", cpu_names, cpu_levels, 3, c.gemm_cap);
    // winograd: that route wherever it applies (winograd.h), the others as unset
    static const char* const conv_names[] = {"gemm", "direct", "winograd"};
    static const Isa conv_levels[] = {Isa::generic, Isa::avx512, Isa::avx512};
    Isa conv_cap = Isa::avx512;
    read_cap(c, "TAPEGRAD_CONV_KERNEL", conv_names, conv_levels, 3, conv_cap);
    c.conv_gemm = conv_cap == Isa::generic;
    return c;
  }();
  return c;
}

}  // namespace

Isa cpu_detected_isa() { return config().detected; }

Isa cpu_isa() { return std::min(config().detected, config().cap); }

Isa kernel_isa(Kernel k) {
  static const auto chosen = [] {
    std::array<Isa, kKernels> isa{};
    for (int i = 0; i < kKernels; ++i) {
      const Kernel f = Kernel(i);
      Isa cap = cpu_isa();
      if (f == Kernel::gemm) cap = std::min(cap, config().gemm_cap);
      if (f == Kernel::conv && config().conv_gemm) cap = Isa::generic;
      isa[size_t(i)] = highest_build_at_most(f, cap);
    }
    return isa;
  }();
  return chosen[size_t(k)];
}

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::avx512: return "avx512";
    case Isa::avx2: return "avx2";
    default: return "generic";
  }
}

const char* kernel_name(Kernel k) {
  static const char* const names[kKernels] = {"gemm", "conv", "rows", "norm", "rnn", "attention", "pool", "optim"};
  return names[int(k)];
}

const char* cpu_config_error() { return config().error.c_str(); }

}  // namespace tapegrad
