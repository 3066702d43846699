// The instruction set the float kernels of every op dispatch to, detected once per
// process and capped by EFFSEG_SIMD, plus the compile-time policies the per-ISA builds
// of a kernel are instantiated with.
#pragma once

// Kernels are compiled once per ISA inside functions carrying a target attribute, so the
// build needs no -march flag; EFFSEG_NO_X86_DISPATCH builds the baseline only.
#if defined(__GNUC__) && defined(__x86_64__) && !defined(EFFSEG_NO_X86_DISPATCH)
#define EFFSEG_X86_DISPATCH 1
#endif

namespace effseg {

// Ordered: a cap keeps the lower of the detected level and the requested one.
enum class Isa { Generic = 0, Base = 1, AVX2 = 2, AVX512 = 3 };

// The level of this CPU (Base = x86-64 SSE2 or aarch64 NEON where the compiler has vector
// extensions; AVX2 includes FMA), lowered by EFFSEG_SIMD = generic|none|scalar,
// sse2|base|neon|default, avx2, avx512|avx512f (other values: no cap). Read at the
// first call, so every op in a process agrees.
Isa isa();

// "avx512f", "avx2+fma", "sse2" / "neon" (Base), "generic".
const char* isa_name(Isa level);

// The name the Base level goes by on this build target ("sse2", "neon", or "generic"
// where neither applies).
const char* baseline_name();

// Whether the ops with only a baseline and an AVX2+FMA build should take the AVX2 one.
inline bool use_avx2() { return isa() >= Isa::AVX2; }

// Compile-time policies. vbytes: SIMD register width a kernel's fast path targets (0: no
// fast path); custom_math: use simd_math.h's vectorisable float exp / softplus, which
// std::exp / std::log1p are not without -ffast-math; fma: scalar math fuses multiply-adds.
struct ArchGeneric {
  static constexpr bool fma = false;
  static constexpr int vbytes = 0;
  static constexpr bool custom_math = false;
};
struct ArchBase {
#if defined(__aarch64__)
  static constexpr bool fma = true;
#else
  static constexpr bool fma = false;
#endif
  static constexpr int vbytes = 16;
  static constexpr bool custom_math = true;
};
struct ArchAVX2 {
  static constexpr bool fma = true;
  static constexpr int vbytes = 32;
  static constexpr bool custom_math = true;
};
struct ArchAVX512 {
  static constexpr bool fma = true;
  static constexpr int vbytes = 64;
  static constexpr bool custom_math = true;
};

}  // namespace effseg
