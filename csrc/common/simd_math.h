// The float math every kernel shares: exp, softplus (with its derivative), sigmoid and
// silu, written without branches or library calls so that loops over them auto-vectorise
// (std::exp / std::log1p do not without -ffast-math) and so that they also take GCC /
// Clang vector types directly. One copy, so every op rounds the same way.
//
// V is float or a vector of float lanes. FMA selects fused multiply-adds for scalar
// float; vector lanes get them from the compiler's contraction of a * b + c wherever the
// target has FMA, which rounds the same.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <type_traits>

#if defined(__GNUC__)
#define EFFSEG_INLINE inline __attribute__((always_inline))
// Vector arguments passed between always-inline functions never cross an ABI boundary.
#pragma GCC diagnostic ignored "-Wpsabi"
#else
#define EFFSEG_INLINE inline
#endif

namespace effseg {
namespace simd {

template <class To, class From>
EFFSEG_INLINE To bits_as(const From& f) {
  static_assert(sizeof(To) == sizeof(From), "size mismatch");
  To t;
  std::memcpy(&t, &f, sizeof(To));
  return t;
}

// V{} + c rather than c: a vector needs the broadcast, and a scalar then rounds alike.
template <class V, class S>
EFFSEG_INLINE V splat(S c) {
  return V{} + c;
}

// The unsigned integers with V's shape, for exponent-bit arithmetic (wraps, never UB).
template <class V>
struct UBits {
#if defined(__GNUC__)
  typedef uint32_t type __attribute__((vector_size(sizeof(V))));
#endif
};
template <>
struct UBits<float> {
  using type = uint32_t;
};

template <bool FMA, class V, class B, class C>
EFFSEG_INLINE V fmadd(V a, B b, C c) {
#if defined(__GNUC__)
  if constexpr (FMA && std::is_same_v<V, float>) return __builtin_fmaf(a, b, c);
#endif
  return a * b + c;
}

// exp(x): k = round(x / ln2) by the 1.5*2^23 trick, two-constant (hi/lo ln2) reduction
// r = x - k ln2, e^r = 1 + r + r^2 P(r) with P of degree 4 fitted here (near-minimax,
// < 1 ulp on |r| <= ln2/2), k added to the exponent bits.
// exp_core assumes x in [kExpLo, kExpHi] (NaN gives an unspecified value): the softplus
// and sigmoid use it where out-of-range results cannot matter, which saves the four
// compares and blends that exp spends on them.
constexpr float kExpLo = -87.33654475f, kExpHi = 88.72283905f;
template <bool FMA, class V>
EFFSEG_INLINE V exp_core(V xc) {
  using U = typename UBits<V>::type;
  constexpr float magic = 12582912.0f;  // 1.5 * 2^23
  V kf = fmadd<FMA>(xc, 1.44269504088896341f, splat<V>(magic));
  const U ki = bits_as<U>(kf) - bits_as<U>(splat<V>(magic));
  kf = kf - magic;
  V r = fmadd<FMA>(kf, -0.693359375f, xc);      // 0.693359375 = 355/512: k*hi exact
  r = fmadd<FMA>(kf, 2.12194440054690583e-4f, r);  // 355/512 - ln2
  V p = splat<V>(1.3814615085721016e-3f);
  p = fmadd<FMA>(p, r, 8.368710055947304e-3f);
  p = fmadd<FMA>(p, r, 4.166838899254799e-2f);
  p = fmadd<FMA>(p, r, 1.666652113199234e-1f);
  p = fmadd<FMA>(p, r, 4.999999403953552e-1f);
  p = fmadd<FMA>(p, r * r, r) + 1.0f;
  return bits_as<V>(bits_as<U>(p) + (ki << 23));
}
// Any x: 0 below ln(FLT_MIN) (no denormals), +inf above ln(FLT_MAX), NaN stays NaN.
template <bool FMA, class V>
EFFSEG_INLINE V exp(V x) {
  const V lo = splat<V>(kExpLo), hi = splat<V>(kExpHi);
  V xc = x < lo ? lo : x;
  xc = xc > hi ? hi : xc;
  V res = exp_core<FMA>(xc);
  res = x < lo ? splat<V>(0.0f) : res;
  res = x > hi ? splat<V>(std::numeric_limits<float>::infinity()) : res;
  return x != x ? x : res;
}

// log1p(e) for e in [0, 1], as e q(e) with q of degree 8 fitted here to log1p(e)/e
// (relative error 3e-8; 1.9e-7 ~ 1.6 ulp evaluated in float). Nine FMAs and no division,
// where the atanh form took a divide, a range split and a rounding correction: the
// selective scan's dt pass went from 29 to 22 cycles per 8 values in an L1-resident
// microbenchmark (Zen 3, AVX2).
template <bool FMA, class V>
EFFSEG_INLINE V log1p01(V e) {
  V q = fmadd<FMA>(e, 5.232624243944883e-3f, splat<V>(-2.9504956677556038e-2f));
  q = fmadd<FMA>(q, e, 7.822549343109131e-2f);
  q = fmadd<FMA>(q, e, -1.366320699453354e-1f);
  q = fmadd<FMA>(q, e, 1.910598874092102e-1f);
  q = fmadd<FMA>(q, e, -2.484297752380371e-1f);
  q = fmadd<FMA>(q, e, 3.331909477710724e-1f);
  q = fmadd<FMA>(q, e, -4.999949336051941e-1f);
  q = fmadd<FMA>(q, e, 9.999999403953552e-1f);
  return e * q;
}

// softplus(x) = log1p(exp(x)) = max(x, 0) + log1p(e), e = exp(-|x|) in (0, 1]: no
// 1 + e, whose rounding would lose small e. Below kExpLo e is clamped (~1e-38, as good
// as 0 next to max(x, 0)). A NaN x gives an unspecified e; the x <= 20 tests return x.
template <bool FMA, class V>
EFFSEG_INLINE V softplus_e(V x) {
  const V zero = splat<V>(0.0f), lo = splat<V>(kExpLo);
  const V ax = x < zero ? -x : x;
  return exp_core<FMA>(-ax < lo ? lo : -ax);
}
// With torch's cut-off: x above 20 is returned as is.
template <bool FMA, class V>
EFFSEG_INLINE V softplus(V x) {
  const V zero = splat<V>(0.0f);
  const V r = (x > zero ? x : zero) + log1p01<FMA>(softplus_e<FMA>(x));
  return x <= splat<V>(20.0f) ? r : x;
}
// softplus(x) and its derivative sigmoid(x) = 1/(1+e) for x >= 0, e/(1+e) below (the
// softplus's own e).
template <bool FMA, class V>
EFFSEG_INLINE void softplus_d(V x, V& sp, V& dsp) {
  const V zero = splat<V>(0.0f), one = splat<V>(1.0f), cut = splat<V>(20.0f);
  const V e = softplus_e<FMA>(x);
  const V r = (x > zero ? x : zero) + log1p01<FMA>(e);
  const V sg = (x >= zero ? one : e) / (1.0f + e);
  sp = x <= cut ? r : x;
  dsp = x <= cut ? sg : one;
}

// Clamped: for x < -kExpHi the true value is below 1e-38. A NaN x gives an unspecified
// value, but silu multiplies it by x, which keeps the NaN.
template <bool FMA, class V>
EFFSEG_INLINE V sigmoid(V x) {
  const V lo = splat<V>(kExpLo), hi = splat<V>(kExpHi);
  V nx = -x > hi ? hi : -x;
  nx = nx < lo ? lo : nx;
  return 1.0f / (1.0f + exp_core<FMA>(nx));
}
template <bool FMA, class V>
EFFSEG_INLINE V silu(V x) {
  return x * sigmoid<FMA>(x);
}

// The same functions for a kernel's element type T under ISA policy Arch (common/isa.h):
// the ones above for float where Arch has custom_math, the standard library otherwise
// (double, and the generic build).
template <class T, class Arch, bool Custom = (Arch::custom_math && sizeof(T) == 4)>
struct Math {
  EFFSEG_INLINE static T exp(T x) { return std::exp(x); }
  EFFSEG_INLINE static T softplus(T x) { return x <= T(20) ? std::log1p(std::exp(x)) : x; }
  EFFSEG_INLINE static T sigmoid(T x) { return T(1) / (T(1) + std::exp(-x)); }
  EFFSEG_INLINE static T silu(T x) { return x * sigmoid(x); }
  EFFSEG_INLINE static void softplus_d(T x, T& sp, T& dsp) {
    sp = softplus(x);
    dsp = x <= T(20) ? sigmoid(x) : T(1);
  }
};
template <class T, class Arch>
struct Math<T, Arch, true> {
  static constexpr bool F = Arch::fma;
  EFFSEG_INLINE static float exp(float x) { return simd::exp<F>(x); }
  EFFSEG_INLINE static float softplus(float x) { return simd::softplus<F>(x); }
  EFFSEG_INLINE static float sigmoid(float x) { return simd::sigmoid<F>(x); }
  EFFSEG_INLINE static float silu(float x) { return simd::silu<F>(x); }
  EFFSEG_INLINE static void softplus_d(float x, float& sp, float& dsp) {
    simd::softplus_d<F>(x, sp, dsp);
  }
};

}  // namespace simd
}  // namespace effseg
