// Which instruction set each kernel family runs: one CPU-feature check for all of them.
//
// Levels, each implying the ones below:
//   avx512   AVX-512 F + DQ + VL, with AVX2 and FMA (Skylake-X, Ice Lake, Zen 4 and later)
//   avx2     AVX2 + FMA (Haswell, Zen 1-3)
//   generic  the baseline x86-64 (SSE2) build, and every other architecture
// The CPU's level is detected once (thread-safe), then capped by the environment:
//   TAPEGRAD_CPU=avx512|avx2|generic   caps every family (a cap above what the CPU has is the
//                                      CPU's level: the variable can only lower it)
//   TAPEGRAD_GEMM_KERNEL=avx2|generic  caps gemm alone (older name, kept)
//   TAPEGRAD_CONV_KERNEL=gemm          convolutions take the im2col + gemm route (older name, kept)
//   TAPEGRAD_CONV_KERNEL=winograd      3x3 stride-1 convolutions take the Winograd route wherever
//                                      it applies (winograd.h), not only where it pays
// A value outside these is refused: cpu_config_error() says why, and importing tapegrad._C raises
// it; C++ callers that ignore it get the CPU's own level.
// Each family is compiled for the levels in the table in cpu.cpp and runs the highest one
// at or below the cap; the choice is made once per process, so it never varies with threads.
#pragma once

namespace tapegrad {

enum class Isa { generic = 0, avx2 = 1, avx512 = 2 };

enum class Kernel { gemm, conv, rows, norm, rnn, attention, pool, optim };
constexpr int kKernels = 8;

// The highest level this CPU has, ignoring the environment.
Isa cpu_detected_isa();
// The level TAPEGRAD_CPU allows (the detected level when it is unset).
Isa cpu_isa();
// The build of family k that runs: the highest of its builds at or below cpu_isa() and its own
// older variable. conv's only own build is avx512 (direct products); below it convolutions run
// as im2col + gemm and kernel_isa(Kernel::conv) is generic.
Isa kernel_isa(Kernel k);

const char* isa_name(Isa isa);
const char* kernel_name(Kernel k);
// Empty when the TAPEGRAD_CPU / TAPEGRAD_GEMM_KERNEL / TAPEGRAD_CONV_KERNEL values are valid,
// else a message naming the variable, its value and the accepted ones.
const char* cpu_config_error();

}  // namespace tapegrad
