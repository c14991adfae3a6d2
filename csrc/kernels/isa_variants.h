// One loop body, three compilations: the macros the kernel files (rows, norm, pointwise, scan,
// reduce) share to compile a templated `name##_body` for the baseline ISA and, through target
// attributes, for AVX2+FMA and AVX-512, and to call the variant that kernel_isa chose (cpu.h).
// Results may differ by an ulp between ISAs, never between thread counts.
#pragma once

#define TG_INLINE inline __attribute__((always_inline))
#define TG_AVX2 __attribute__((target("avx2,fma")))
#define TG_AVX512 __attribute__((target("avx512f,avx512dq,avx512vl,avx2,fma,prefer-vector-width=512")))

// name##_base, name##_avx2 and name##_avx512<T>(params), each calling name##_body<T>(args).
#define TG_VARIANTS(name, params, args)                                                \
  template <typename T>                                                               \
  __attribute__((noinline)) void name##_base params { name##_body<T> args; }           \
  template <typename T>                                                               \
  TG_AVX2 __attribute__((noinline)) void name##_avx2 params { name##_body<T> args; }   \
  template <typename T>                                                               \
  TG_AVX512 __attribute__((noinline)) void name##_avx512 params { name##_body<T> args; }

// The variant of `name` for the file's isa() (a function each kernel file defines).
#define TG_CALL(name, T, ...)                                    \
  (isa() == Isa::avx512 ? name##_avx512<T>(__VA_ARGS__)         \
   : isa() == Isa::avx2 ? name##_avx2<T>(__VA_ARGS__)           \
                        : name##_base<T>(__VA_ARGS__))
