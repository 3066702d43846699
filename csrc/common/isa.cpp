#include "common/isa.h"

#include <cstdlib>
#include <string>

namespace effseg {
namespace {

Isa detect() {
  Isa best = Isa::Generic;
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__aarch64__))
  best = Isa::Base;
#endif
#if defined(EFFSEG_X86_DISPATCH)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx2") &&
      __builtin_cpu_supports("fma"))
    best = Isa::AVX512;
  else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
    best = Isa::AVX2;
#if defined(EFFSEG_TEST_EMULATE_AVX512)
  // Test builds only: the selective scan's 16-lane paths, compiled for AVX2, on AVX2 machines.
  if (best == Isa::AVX2) best = Isa::AVX512;
#endif
#endif
  if (const char* env = std::getenv("EFFSEG_SIMD")) {
    const std::string v(env);
    Isa cap = best;
    if (v == "generic" || v == "none" || v == "scalar")
      cap = Isa::Generic;
    else if (v == "sse2" || v == "base" || v == "neon" || v == "default")
      cap = Isa::Base;
    else if (v == "avx2")
      cap = Isa::AVX2;
    else if (v == "avx512" || v == "avx512f")
      cap = Isa::AVX512;
    if (cap < best) best = cap;
  }
  return best;
}

}  // namespace

Isa isa() {
  static const Isa v = detect();
  return v;
}

const char* baseline_name() {
#if defined(__aarch64__)
  return "neon";
#elif defined(__x86_64__)
  return "sse2";
#else
  return "generic";
#endif
}

const char* isa_name(Isa level) {
  switch (level) {
    case Isa::AVX512: return "avx512f";
    case Isa::AVX2: return "avx2+fma";
    case Isa::Base: return baseline_name();
    default: return "generic";
  }
}

}  // namespace effseg
