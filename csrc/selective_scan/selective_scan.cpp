// Mamba S6 selective scan, CPU kernel. See selective_scan.h for the layouts.
//
// Structure
//   * Work is split over (b, d) channel pairs: each OpenMP thread takes a contiguous
//     range and walks it in tiles of up to 32 channels, time-chunk-major inside a
//     tile (for chunk: for channel), so the chunk of B / C (and dB / dC) the channels
//     of a tile share stays in L1 / L2 while each of them uses it.
//   * Per (channel, chunk) the work is split into flat, vectorisable passes:
//       dt pass     dt = softplus(delta + bias), dt*u                (over t)
//       dA pass     dA[t][n] = exp(dt[t] * A[n])                     (over t*n)
//       scan        h = dA*h + dt*u*B ; y = sum_n C*h                (sequential in t,
//                                                                    SIMD over n)
//       out pass    (y + D*u) * silu(z)                              (over t)
//     so the only loop-carried chain is the one multiply-add on h.
//   * float has its own exp / exp2 / log1p (range reduction + polynomial, about 1 ulp)
//     that vectorise; std::exp does not without -ffast-math. The dA pass checks per
//     chunk that every dt*A is in range and then skips the special-case handling.
//   * The hot path (float; state dim contiguous in B, C, dB, dC; N in
//     {1, 2, 4, 8, 16, 32, 64}) keeps the state in registers with GCC vector
//     extensions and is compiled once per ISA (x86-64 baseline SSE2, AVX2+FMA,
//     AVX-512F) behind runtime dispatch (EFFSEG_SIMD caps it; defining
//     EFFSEG_NO_X86_DISPATCH builds the baseline only). Everything else (double, other
//     N, a strided state dim) takes a generic runtime-N path.
//   * Backward: a forward sweep stores the state at the start of every time chunk;
//     chunks are then walked backwards, recomputing the chunk's states into a small
//     scratch buffer, and the adjoint runs in reverse over it. Memory per thread is
//     O(tile * L / chunk * N + chunk * N), never O(L * N) per channel.
//   * dB / dC contributions of several channels (and, with zero strides, several b / t)
//     land on one address. A thread adds straight into the caller's buffer when no
//     other direct writer can touch the offsets it can touch; otherwise into a private
//     zeroed buffer covering its offsets, summed in after the parallel part.
#include "selective_scan/selective_scan.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#ifdef EFFSEG_OPENMP
#include <omp.h>
#endif

#if defined(__GNUC__)
#define SS_INLINE inline __attribute__((always_inline))
#define SS_LAMBDA_INLINE __attribute__((always_inline))
#define SS_VECTOR_EXT 1
#pragma GCC diagnostic ignored "-Wpsabi"
#else
#define SS_INLINE inline
#define SS_LAMBDA_INLINE
#endif

#if defined(__GNUC__) && defined(__x86_64__) && !defined(EFFSEG_NO_X86_DISPATCH)
#define SS_X86 1
#endif

namespace effseg {
namespace selective_scan {
namespace {

// ---------------------------------------------------------------------------------
// Instruction-set policies. vbytes = SIMD register width the fast path targets
// (0: no fast path); custom_math = use our vectorisable float exp / log1p.
struct ArchGeneric {
  static constexpr bool fma = false;
  static constexpr int vbytes = 0;
  static constexpr bool custom_math = false;
};
struct ArchBase {  // x86-64 SSE2 baseline, or aarch64 NEON
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

// ---------------------------------------------------------------------------------
// Scalar math, written so that loops calling it auto-vectorise.

template <class Arch>
SS_INLINE float fmadd(float a, float b, float c) {
#if defined(__GNUC__)
  if constexpr (Arch::fma) return __builtin_fmaf(a, b, c);
#endif
  return a * b + c;
}

SS_INLINE int32_t as_int(float x) {
  int32_t i;
  std::memcpy(&i, &x, sizeof i);
  return i;
}
SS_INLINE float as_float(int32_t i) {
  float x;
  std::memcpy(&x, &i, sizeof x);
  return x;
}

// exp(x) for float: k = round(x / ln2) by the 1.5*2^23 trick, two-constant (hi/lo
// ln2) reduction r = x - k ln2, e^r = 1 + r + r^2 P(r) with P of degree 4 fitted
// here (near-minimax, < 1 ulp on |r| <= ln2/2), k added to the exponent bits.
// 0 below ln(FLT_MIN) (no denormals), +inf above ln(FLT_MAX), NaN stays NaN.
// exp(x) for float: k = round(x / ln2) by the 1.5*2^23 trick, two-constant (hi/lo
// ln2) reduction r = x - k ln2, e^r = 1 + r + r^2 P(r) with P of degree 4 fitted
// here (near-minimax, < 1 ulp on |r| <= ln2/2), k added to the exponent bits.
// exp_f_core assumes x in [lo, hi] and is finite (NaN gives an unspecified value): the
// softplus and sigmoid use it where the out-of-range results cannot matter, which
// saves the four compares and blends that exp_f spends on them.
constexpr float kExpLo = -87.33654475f, kExpHi = 88.72283905f;
template <class Arch>
SS_INLINE float exp_f_core(float xc) {
  constexpr float magic = 12582912.0f;  // 1.5 * 2^23
  float kf = fmadd<Arch>(xc, 1.44269504088896341f, magic);
  const int32_t ki = as_int(kf) - as_int(magic);
  kf -= magic;
  float r = fmadd<Arch>(kf, -0.693359375f, xc);  // 0.693359375 = 355/512: k*hi exact
  r = fmadd<Arch>(kf, 2.12194440054690583e-4f, r);  // 355/512 - ln2
  float p = 1.3814615085721016e-3f;
  p = fmadd<Arch>(p, r, 8.368710055947304e-3f);
  p = fmadd<Arch>(p, r, 4.166838899254799e-2f);
  p = fmadd<Arch>(p, r, 1.666652113199234e-1f);
  p = fmadd<Arch>(p, r, 4.999999403953552e-1f);
  p = fmadd<Arch>(p, r * r, r) + 1.0f;
  return as_float(as_int(p) + static_cast<int32_t>(static_cast<uint32_t>(ki) << 23));
}
// 0 below ln(FLT_MIN) (no denormals), +inf above ln(FLT_MAX), NaN stays NaN.
template <class Arch>
SS_INLINE float exp_f(float x) {
  float xc = x < kExpLo ? kExpLo : x;
  xc = xc > kExpHi ? kExpHi : xc;
  float res = exp_f_core<Arch>(xc);
  res = x < kExpLo ? 0.0f : res;
  res = x > kExpHi ? std::numeric_limits<float>::infinity() : res;
  return x != x ? x : res;
}

template <class T, class Arch, bool Custom = (Arch::custom_math && sizeof(T) == 4)>
struct Math {
  SS_INLINE static T exp(T x) { return std::exp(x); }
  SS_INLINE static T softplus(T x) { return x <= T(20) ? std::log1p(std::exp(x)) : x; }
  SS_INLINE static T sigmoid(T x) { return T(1) / (T(1) + std::exp(-x)); }
  // softplus(x) (with the x > 20 cut-off) and its derivative.
  SS_INLINE static void softplus_d(T x, T& sp, T& dsp) {
    sp = softplus(x);
    dsp = x <= T(20) ? sigmoid(x) : T(1);
  }
};
template <class T, class Arch>
struct Math<T, Arch, true> {
  SS_INLINE static float exp(float x) { return exp_f<Arch>(x); }
  // log1p(exp(x)) = max(x, 0) + log1p(e), e = exp(-|x|) in (0, 1]. log1p(e) = e q(e),
  // q of degree 8 fitted here to log1p(e)/e on [0, 1] (relative error 3e-8; 1.9e-7 ~ 1.6
  // ulp evaluated in float). Nine FMAs and no division, where the atanh form took a
  // divide, a range split and a rounding correction: the dt pass went from 29 to 22
  // cycles per 8 values in an L1-resident microbenchmark (Zen 3, AVX2).
  SS_INLINE static float log1p01(float e) {
    float q = fmadd<Arch>(e, 5.232624243944883e-3f, -2.9504956677556038e-2f);
    q = fmadd<Arch>(q, e, 7.822549343109131e-2f);
    q = fmadd<Arch>(q, e, -1.366320699453354e-1f);
    q = fmadd<Arch>(q, e, 1.910598874092102e-1f);
    q = fmadd<Arch>(q, e, -2.484297752380371e-1f);
    q = fmadd<Arch>(q, e, 3.331909477710724e-1f);
    q = fmadd<Arch>(q, e, -4.999949336051941e-1f);
    q = fmadd<Arch>(q, e, 9.999999403953552e-1f);
    return e * q;
  }
  // e = exp(-|x|) for the softplus; below kExpLo clamped (e ~ 1e-38, as good as 0 for a
  // step size). A NaN x gives an unspecified e; the callers' x <= 20 test returns x.
  SS_INLINE static float softplus_e(float x) {
    const float ax = x < 0.0f ? -x : x;
    return exp_f_core<Arch>(-ax < kExpLo ? kExpLo : -ax);
  }
  SS_INLINE static float softplus(float x) {
    const float r = (x > 0.0f ? x : 0.0f) + log1p01(softplus_e(x));
    return x <= 20.0f ? r : x;
  }
  // Clamped: for x < -kExpHi the true value is below 1e-38; a NaN x gives an unspecified
  // value, but every caller multiplies it by x (silu), which keeps the NaN.
  SS_INLINE static float sigmoid(float x) {
    float nx = -x > kExpHi ? kExpHi : -x;
    nx = nx < kExpLo ? kExpLo : nx;
    return 1.0f / (1.0f + exp_f_core<Arch>(nx));
  }
  // sigmoid(x) = 1/(1+e) for x >= 0, e/(1+e) for x < 0 (same e as the softplus).
  SS_INLINE static void softplus_d(float x, float& sp, float& dsp) {
    const float e = softplus_e(x);
    const float r = (x > 0.0f ? x : 0.0f) + log1p01(e);
    const float sg = (x >= 0.0f ? 1.0f : e) / (1.0f + e);
    sp = x <= 20.0f ? r : x;
    dsp = x <= 20.0f ? sg : 1.0f;
  }
};

// ---------------------------------------------------------------------------------
// Flat per-chunk passes (vectorised over t or over t*n).

// dt[i] = softplus?(delta[i] + bias), dtu[i] = dt[i]*u[i]; dsp[i] = d dt / d delta.
// Returns whether some delta[i] is NaN or Inf on the forward (dsp null): the forward
// reports it, which saves the caller a separate pass over delta to check it.
template <class T>
SS_INLINE int not_finite(T x) {
  return !(x - x == T(0));
}
template <class T, class Arch>
SS_INLINE int dt_pass(const T* delta, const T* u, T bias, bool softplus, int n, T* dt, T* dtu,
                      T* dsp) {
  using M = Math<T, Arch>;
  int bad = 0;
  if (softplus) {
    if (dsp) {
      for (int i = 0; i < n; ++i) {
        T v, d;
        M::softplus_d(delta[i] + bias, v, d);
        dt[i] = v;
        dtu[i] = v * u[i];
        dsp[i] = d;
      }
    } else {
      for (int i = 0; i < n; ++i) {
        const T x = delta[i];
        bad |= not_finite(x);
        const T v = M::softplus(x + bias);
        dt[i] = v;
        dtu[i] = v * u[i];
      }
    }
  } else {
    for (int i = 0; i < n; ++i) {
      const T x = delta[i];
      bad |= not_finite(x);
      const T v = x + bias;
      dt[i] = v;
      dtu[i] = v * u[i];
    }
    if (dsp)
      for (int i = 0; i < n; ++i) dsp[i] = T(1);
  }
  return bad;
}

// dA[i*N + k] = exp(dt[i] * A[k]); NS = compile-time N (0: runtime).
template <class T, class Arch, int NS>
SS_INLINE void dA_pass(const T* dt, const T* A, int n, int Nrt, T* dA) {
  using M = Math<T, Arch>;
  const int N = NS > 0 ? NS : Nrt;
  if (N == 1) {
    const T a0 = A[0];
    for (int i = 0; i < n; ++i) dA[i] = M::exp(dt[i] * a0);
    return;
  }
  for (int i = 0; i < n; ++i) {
    const T d = dt[i];
    T* row = dA + static_cast<int64_t>(i) * N;
    for (int k = 0; k < N; ++k) row[k] = M::exp(d * A[k]);
  }
}

// out = (y + D*u) * silu(z)
template <class T, class Arch>
SS_INLINE void out_pass(const T* y, const T* u, const T* z, T Dd, int n, T* out) {
  using M = Math<T, Arch>;
  if (z) {
    for (int i = 0; i < n; ++i) {
      const T zz = z[i];
      out[i] = (y[i] + Dd * u[i]) * (zz * M::sigmoid(zz));
    }
  } else {
    for (int i = 0; i < n; ++i) out[i] = y[i] + Dd * u[i];
  }
}

// g = dout * silu(z), dz = dout * y * silu'(z) (y including the D term); g = dout w/o z.
template <class T, class Arch>
SS_INLINE void grad_out_pass(const T* y, const T* u, const T* z, const T* dout, T Dd, int n,
                             T* g, T* dz) {
  using M = Math<T, Arch>;
  if (z) {
    for (int i = 0; i < n; ++i) {
      const T zz = z[i];
      const T s = M::sigmoid(zz);
      const T go = dout[i];
      const T yy = y[i] + Dd * u[i];
      g[i] = go * (zz * s);
      dz[i] = go * yy * (s * (T(1) + zz * (T(1) - s)));
    }
  } else {
    for (int i = 0; i < n; ++i) g[i] = dout[i];
  }
}

// du = g*D + dt*sB; ddelta = (sQ + u*sB) * dsp; adds the chunk's sums for dD and dbias.
template <class T>
SS_INLINE void grad_in_pass(const T* sB, const T* sQ, const T* g, const T* dt, const T* dsp,
                            const T* u, T Dd, int n, T* du, T* ddelta, T& dD_acc, T& dbias_acc) {
  for (int i = 0; i < n; ++i) {
    du[i] = g[i] * Dd + dt[i] * sB[i];
    ddelta[i] = (sQ[i] + u[i] * sB[i]) * dsp[i];
  }
  // 8 interleaved partial sums (vectorisable without reassociation), fixed order.
  constexpr int P = 8;
  T pa[P] = {}, pb[P] = {};
  int i = 0;
  for (; i + P <= n; i += P)
    for (int j = 0; j < P; ++j) {
      pa[j] += g[i + j] * u[i + j];
      pb[j] += ddelta[i + j];
    }
  T a = T(0), b = T(0);
  for (; i < n; ++i) {
    a += g[i] * u[i];
    b += ddelta[i];
  }
  for (int j = 0; j < P; ++j) {
    a += pa[j];
    b += pb[j];
  }
  dD_acc += a;
  dbias_acc += b;
}

// ---------------------------------------------------------------------------------
// Cores: the per-channel work of one time chunk.
//   chunk: dA = exp(dt A), then h_t = dA_t h_{t-1} + dtu_t B_t over the chunk (h in /
//          out through hmem), optionally y_t = sum_n C_t h_t and H[(i+1)*N..] = h_t.
//   bwd  : the adjoint over the chunk in reverse, with H[0..] = the state before it:
//            lam_t = g_t C_t + lam (lam = dA_{t+1} lam_{t+1}, dlast after the end)
//            dC_t += g_t h_t, dB_t += lam_t dt_t u_t, SB_t = sum_n lam_t B_t,
//            q = lam_t h_{t-1} dA_t, SQ_t = sum_n A q, dA += dt_t q, lam = dA_t lam_t.
// B/C/dB/dC pointers point at time t0 of the chunk.

struct StepStrides {
  int64_t bn, bt, cn, ct, dbn, dbt, dcn, dct;
};

#if defined(SS_VECTOR_EXT)
// W lanes of T as a GCC/Clang vector (plain T for W == 1), and the unsigned
// integer vector of the same shape for bit manipulation.
template <class T, int W>
struct Lane {
  using UT = std::conditional_t<sizeof(T) == 4, uint32_t, uint64_t>;
  typedef T type __attribute__((vector_size(sizeof(T) * W)));
  typedef UT utype __attribute__((vector_size(sizeof(T) * W)));
};
template <class T>
struct Lane<T, 1> {
  typedef T type;
  typedef std::conditional_t<sizeof(T) == 4, uint32_t, uint64_t> utype;
};

template <class To, class From>
SS_INLINE To bits_as(const From& f) {
  static_assert(sizeof(To) == sizeof(From), "size mismatch");
  To t;
  std::memcpy(&t, &f, sizeof(To));
  return t;
}

template <class V>
SS_INLINE V splat(float c) {
  return V{} + c;
}

// 2^x for float lanes, x in [kExp2Lo, kExp2Hi] and finite (no checks): round to
// nearest integer k by the 1.5*2^23 trick, r = x - k exact in [-1/2, 1/2], 2^r by a
// degree-5 polynomial with p(0) = 1 (relative-error fit, max 1.7e-7 ~ 1.4 ulp; one
// FMA fewer than degree 6, which the forward's throughput is bound by), k added to the
// exponent bits.
constexpr float kExp2Lo = -126.0f;       // results stay normal
constexpr float kExp2Hi = 127.99998f;    // results stay finite
template <class V, class U>
SS_INLINE V exp2_core(V x) {
  constexpr float magic = 12582912.0f;
  const V t = x + magic;
  const U e = bits_as<U>(t) << 23;  // (bits(magic) << 23) wraps to 0
  const V r = x - (t - magic);
  V p = r * 1.3264714507386088e-3f + 9.671513922512531e-3f;
  p = p * r + 5.550733953714371e-2f;
  p = p * r + 2.4022242426872253e-1f;
  p = p * r + 6.931470036506653e-1f;
  p = p * r + 1.0f;
  return bits_as<V>(bits_as<U>(p) + e);
}
// Any x: 0 below 2^-126, +inf above, NaN stays NaN.
template <class V, class U>
SS_INLINE V exp2_any(V x) {
  const V lo = splat<V>(kExp2Lo), hi = splat<V>(kExp2Hi);
  V xc = x < lo ? lo : x;
  xc = xc > hi ? hi : xc;
  V res = exp2_core<V, U>(xc);
  res = x >= lo ? res : V{};
  res = x > hi ? splat<V>(std::numeric_limits<float>::infinity()) : res;
  return x != x ? x : res;
}

template <class T, int W>
SS_INLINE T hsum(const typename Lane<T, W>::type& v) {
  if constexpr (W == 1) {
    return v;
  } else {
    using H = typename Lane<T, W / 2>::type;
    H lo, hi;
    std::memcpy(&lo, &v, sizeof(H));
    std::memcpy(&hi, reinterpret_cast<const char*>(&v) + sizeof(H), sizeof(H));
    return hsum<T, W / 2>(lo + hi);
  }
}

// Transposed lane sums: W vectors r[0..W) in, r[0] out with lane l = sum of the lanes
// of the input r[l]. log2(W) levels; each adds the two halves of every block of Bk
// lanes of two vectors, interleaved so that the result holds both vectors' partial
// sums (the generic form of the x86 hadd + 128-bit-lane swap reduction).
template <int W, int Bk, bool HI>
constexpr int pair_lane(int l) {
  const int hb = Bk / 2, j = l / Bk, p = l % Bk;
  return (p < hb ? j * Bk + p : W + j * Bk + (p - hb)) + (HI ? hb : 0);
}
template <class V, int W, int Bk, int... Is>
SS_INLINE V pair_sum(const V& a, const V& b, std::integer_sequence<int, Is...>) {
  return __builtin_shufflevector(a, b, pair_lane<W, Bk, false>(Is)...) +
         __builtin_shufflevector(a, b, pair_lane<W, Bk, true>(Is)...);
}
template <class V, int W, int Bk = W>
SS_INLINE void transpose_sum(V* r) {
  if constexpr (Bk >= 2) {
    constexpr int live = Bk / 2;
#pragma GCC unroll 16
    for (int i = 0; i < live; ++i)
      r[i] = pair_sum<V, W, Bk>(r[i], r[i + live], std::make_integer_sequence<int, W>{});
    transpose_sum<V, W, Bk / 2>(r);
  }
}

// N = W * NV states held in NV vectors of W lanes; FL = lanes of the ISA (for the
// flat N == 1 exp pass). Float only.
template <class T, int W_, int NV, int FL>
struct FastCore {
  static_assert(sizeof(T) == 4, "fast core is float only");
  static constexpr int W = W_;
  static constexpr int N = W * NV;
  using V = typename Lane<T, W>::type;
  using U = typename Lane<T, W>::utype;

  SS_INLINE static V ld(const T* p) {
    if constexpr (W == 1) {
      return *p;  // (a memcpy here made GCC carry the state in an integer register)
    } else {
      V v;
      std::memcpy(&v, p, sizeof(V));
      return v;
    }
  }
  SS_INLINE static void st(T* p, const V& v) {
    if constexpr (W == 1)
      *p = v;
    else
      std::memcpy(p, &v, sizeof(V));
  }

  // exp(dt[i] * A[k]) is computed as 2^(dt[i] * (A[k] * log2 e)). The unchecked exp
  // is used when every argument of the chunk is in range (the usual case; four
  // compares per step decide it).
  static constexpr T L2E = 1.44269504088896341f;

  SS_INLINE static bool needs_checked_exp(const T* dt, const T* A, int n) {
    T amin = A[0] * L2E, amax = amin;
    int bad = 0;
    for (int k = 0; k < N; ++k) {
      const T a = A[k] * L2E;
      amin = a < amin ? a : amin;
      amax = a > amax ? a : amax;
      bad |= !(a - a == T(0));  // inf / nan
    }
    for (int i = 0; i < n; ++i) {
      const T xa = dt[i] * amin, xb = dt[i] * amax;
      bad |= ((xa >= kExp2Lo) & (xa <= kExp2Hi) & (xb >= kExp2Lo) & (xb <= kExp2Hi)) ^ 1;
    }
    return bad != 0;
  }

  // dA[i*N + k] = exp(dt[i] * A[k]) for the chunk (vectorised over n, or over t for
  // N == 1). A separate pass: fusing it into the step loop measured slower.
  template <bool CHECKED>
  SS_INLINE static void dA_pass_v(const T* dt, const T* A, int n, T* out) {
    if constexpr (N == 1) {
      using VF = typename Lane<T, FL>::type;
      using UF = typename Lane<T, FL>::utype;
      const T a = A[0] * L2E;
      int i = 0;
      for (; i + FL <= n; i += FL) {
        VF x;
        std::memcpy(&x, dt + i, sizeof(VF));
        x = x * a;
        const VF e = CHECKED ? exp2_any<VF, UF>(x) : exp2_core<VF, UF>(x);
        std::memcpy(out + i, &e, sizeof(VF));
      }
      for (; i < n; ++i) out[i] = exp2_any<T, uint32_t>(dt[i] * a);
    } else {
      V a2[NV];
#pragma GCC unroll 16
      for (int v = 0; v < NV; ++v) a2[v] = ld(A + v * W) * L2E;
      for (int i = 0; i < n; ++i) {
        const T d = dt[i];
        T* row = out + static_cast<int64_t>(i) * N;
#pragma GCC unroll 16
        for (int v = 0; v < NV; ++v)
          st(row + v * W, CHECKED ? exp2_any<V, U>(a2[v] * d) : exp2_core<V, U>(a2[v] * d));
      }
    }
  }

  // One chunk of n steps for one channel: h (in/out through hmem) advanced over the
  // chunk; y[i] = sum_n C h (WANT_Y); H[(i+1)*N..] = h after step i (STORE_H, for
  // the backward). dA (chunk*N scratch) receives exp(dt A), or, on the fused path,
  // the per-step lane sums of C h.
  template <class Arch, bool STORE_H, bool WANT_Y>
  SS_INLINE static void chunk(const T* dt, const T* dtu, const T* A, const T* B, const T* C,
                              const StepStrides& s, int n, int /*Nrt*/, T* hmem, T* H, T* y,
                              T* dA) {
    const bool checked = needs_checked_exp(dt, A, n);
    if (!STORE_H && !checked) return fused<WANT_Y>(dt, dtu, A, B, C, s, n, hmem, y, dA);
    if (checked)
      dA_pass_v<true>(dt, A, n, dA);
    else
      dA_pass_v<false>(dt, A, n, dA);
    V h[NV];
#pragma GCC unroll 16
    for (int v = 0; v < NV; ++v) h[v] = ld(hmem + v * W);
    const int64_t bt = s.bt, ct = s.ct;
    for (int i = 0; i < n; ++i) {
      const T x = dtu[i];
      const T* dAi = dA + static_cast<int64_t>(i) * N;
      V acc = V{};
#pragma GCC unroll 16
      for (int v = 0; v < NV; ++v) {
        h[v] = ld(dAi + v * W) * h[v] + ld(B + v * W) * x;
        if (WANT_Y) acc += ld(C + v * W) * h[v];
        if (STORE_H) st(H + static_cast<int64_t>(i + 1) * N + v * W, h[v]);
      }
      if (WANT_Y) y[i] = hsum<T, W>(acc);
      B += bt;
      C += ct;
    }
#pragma GCC unroll 16
    for (int v = 0; v < NV; ++v) st(hmem + v * W, h[v]);
  }

  // The forward without stored states: exp(dt A) computed in the step loop (no dA
  // round trip through memory) and the horizontal sums of C h deferred to one pass
  // over the chunk, so the loop is only FMAs and the exp's integer ops. The forward
  // is bound by FMA throughput (N exps per step), so these two save most.
  template <bool WANT_Y>
  SS_INLINE static void fused(const T* dt, const T* dtu, const T* A, const T* B, const T* C,
                              const StepStrides& s, int n, T* hmem, T* y, T* accbuf) {
    V h[NV], a2[NV];
#pragma GCC unroll 16
    for (int v = 0; v < NV; ++v) {
      h[v] = ld(hmem + v * W);
      a2[v] = ld(A + v * W) * L2E;
    }
    const int64_t bt = s.bt, ct = s.ct;
    for (int i = 0; i < n; ++i) {
      const T d = dt[i], x = dtu[i];
      V acc = V{};
#pragma GCC unroll 16
      for (int v = 0; v < NV; ++v) {
        h[v] = exp2_core<V, U>(a2[v] * d) * h[v] + ld(B + v * W) * x;
        if (WANT_Y) acc += ld(C + v * W) * h[v];
      }
      if (WANT_Y) st(accbuf + static_cast<int64_t>(i) * W, acc);
      B += bt;
      C += ct;
    }
#pragma GCC unroll 16
    for (int v = 0; v < NV; ++v) st(hmem + v * W, h[v]);
    if (WANT_Y) lane_sums(accbuf, n, y);
  }

  // y[i] = sum of the W lanes of acc row i, W rows at a time by transposed sums (the
  // compiler's own vectorisation of the plain loop shuffled ~10 ops per row).
  SS_INLINE static void lane_sums(const T* acc, int n, T* y) {
    if constexpr (W == 1) {
      std::memcpy(y, acc, sizeof(T) * n);
    } else {
      int i = 0;
      for (; i + W <= n; i += W) {
        V r[W];
#pragma GCC unroll 16
        for (int k = 0; k < W; ++k) r[k] = ld(acc + static_cast<int64_t>(i + k) * W);
        transpose_sum<V, W>(r);
        st(y + i, r[0]);
      }
      for (; i < n; ++i) y[i] = hsum<T, W>(ld(acc + static_cast<int64_t>(i) * W));
    }
  }

  SS_INLINE static void bwd(const T* dA, const T* H, const T* dt, const T* dtu, const T* g,
                            const T* B, const T* C, T* dB, T* dC, const StepStrides& s,
                            const T* A, int n, int /*Nrt*/, T* lam_mem, T* dAacc_mem, T* SB,
                            T* SQ) {
    V lam[NV], dAa[NV], Av[NV];
#pragma GCC unroll 16
    for (int v = 0; v < NV; ++v) {
      lam[v] = ld(lam_mem + v * W);
      dAa[v] = ld(dAacc_mem + v * W);
      Av[v] = ld(A + v * W);
    }
    for (int i = n - 1; i >= 0; --i) {
      const T* Bi = B + i * s.bt;
      const T* Ci = C + i * s.ct;
      T* dBi = dB + i * s.dbt;
      T* dCi = dC + i * s.dct;
      const T* dAi = dA + static_cast<int64_t>(i) * N;
      const T* Hp = H + static_cast<int64_t>(i) * N;  // h_{t-1}
      const T* Hc = Hp + N;                            // h_t
      const T gi = g[i], dtui = dtu[i], dti = dt[i];
      V sb = V{}, sq = V{};
#pragma GCC unroll 16
      for (int v = 0; v < NV; ++v) {
        const V l = ld(Ci + v * W) * gi + lam[v];
        st(dCi + v * W, ld(dCi + v * W) + ld(Hc + v * W) * gi);
        st(dBi + v * W, ld(dBi + v * W) + l * dtui);
        sb += l * ld(Bi + v * W);
        const V da = ld(dAi + v * W);
        const V q = l * ld(Hp + v * W) * da;
        sq += Av[v] * q;
        dAa[v] += q * dti;
        lam[v] = da * l;
      }
      SB[i] = hsum<T, W>(sb);
      SQ[i] = hsum<T, W>(sq);
    }
#pragma GCC unroll 16
    for (int v = 0; v < NV; ++v) {
      st(lam_mem + v * W, lam[v]);
      st(dAacc_mem + v * W, dAa[v]);
    }
  }
};
#endif  // SS_VECTOR_EXT

// Any N, any strides (also the double path).
template <class T>
struct GenericCore {
  template <class Arch, bool STORE_H, bool WANT_Y>
  SS_INLINE static void chunk(const T* dt, const T* dtu, const T* A, const T* B, const T* C,
                              const StepStrides& s, int n, int N, T* h, T* H, T* y, T* dA) {
    dA_pass<T, Arch, 0>(dt, A, n, N, dA);
    for (int i = 0; i < n; ++i) {
      const T x = dtu[i];
      const T* dAi = dA + static_cast<int64_t>(i) * N;
      const T* Bi = B + i * s.bt;
      const T* Ci = C + i * s.ct;
      T acc = T(0);
      for (int k = 0; k < N; ++k) {
        h[k] = dAi[k] * h[k] + Bi[k * s.bn] * x;
        if (WANT_Y) acc += Ci[k * s.cn] * h[k];
      }
      if (STORE_H) std::memcpy(H + static_cast<int64_t>(i + 1) * N, h, sizeof(T) * N);
      if (WANT_Y) y[i] = acc;
    }
  }

  SS_INLINE static void bwd(const T* dA, const T* H, const T* dt, const T* dtu, const T* g,
                            const T* B, const T* C, T* dB, T* dC, const StepStrides& s,
                            const T* A, int n, int N, T* lam, T* dAa, T* SB, T* SQ) {
    for (int i = n - 1; i >= 0; --i) {
      const T* Bi = B + i * s.bt;
      const T* Ci = C + i * s.ct;
      T* dBi = dB + i * s.dbt;
      T* dCi = dC + i * s.dct;
      const T* dAi = dA + static_cast<int64_t>(i) * N;
      const T* Hp = H + static_cast<int64_t>(i) * N;
      const T* Hc = Hp + N;
      const T gi = g[i], dtui = dtu[i], dti = dt[i];
      T sb = T(0), sq = T(0);
      for (int k = 0; k < N; ++k) {
        const T l = Ci[k * s.cn] * gi + lam[k];
        dCi[k * s.dcn] += Hc[k] * gi;
        dBi[k * s.dbn] += l * dtui;
        sb += l * Bi[k * s.bn];
        const T da = dAi[k];
        const T q = l * Hp[k] * da;
        sq += A[k] * q;
        dAa[k] += q * dti;
        lam[k] = da * l;
      }
      SB[i] = sb;
      SQ[i] = sq;
    }
  }
};

// ---------------------------------------------------------------------------------
// Per-channel addressing.
template <class T>
struct Chan {
  int64_t b, d, row;
  const T* B;
  const T* C;
  const T* A;
  T bias, Dd;
  Chan(const FwdArgs<T>& a, int64_t bd) {
    b = bd / a.Dm;
    d = bd - b * a.Dm;
    row = bd * a.L;
    const int64_t g = d / (a.Dm / a.G);
    B = a.B + b * a.Bs.sb + g * a.Bs.sg;
    C = a.C + b * a.Cs.sb + g * a.Cs.sg;
    A = a.A + d * a.N;
    bias = a.delta_bias ? a.delta_bias[d] : T(0);
    Dd = a.D ? a.D[d] : T(0);
  }
};

inline int chunk_len(int64_t N) {
  // dA and H scratch of chunk*N elements each stay well inside L1 / L2.
  int64_t tb = 2048 / std::max<int64_t>(N, 1);
  tb = std::max<int64_t>(16, std::min<int64_t>(1024, tb));
  return static_cast<int>(tb);
}

template <class T>
SS_INLINE void prefetch_span(const T* p, int64_t bytes, bool write) {
#if defined(__GNUC__)
  const char* c = reinterpret_cast<const char*>(p);
  for (int64_t o = 0; o < bytes; o += 64) {
    if (write)
      __builtin_prefetch(c + o, 1, 3);
    else
      __builtin_prefetch(c + o, 0, 3);
  }
#else
  (void)p, (void)bytes, (void)write;
#endif
}

template <class T>
SS_INLINE void report_nonfinite(const FwdArgs<T>& a, int bad) {
  if (bad && a.nonfinite) __atomic_store_n(a.nonfinite, 1, __ATOMIC_RELAXED);
}

template <class T, class Arch, class Core>
struct Driver {
  SS_INLINE static void fwd(const FwdArgs<T>& a, int64_t bd0, int64_t bd1) {
    const int N = static_cast<int>(a.N);
    const int64_t L = a.L;
    const int TB = chunk_len(N);
    const int CT = 32;  // channels per tile
    std::vector<T> buf(3 * TB + static_cast<size_t>(TB) * N + static_cast<size_t>(CT) * N);
    T* dt = buf.data();
    T* dtu = dt + TB;
    T* y = dtu + TB;
    T* dA = y + TB;
    T* hst = dA + static_cast<size_t>(TB) * N;
    const StepStrides ss{a.Bs.sn, a.Bs.st, a.Cs.sn, a.Cs.st, 0, 0, 0, 0};
    int bad = 0;

    for (int64_t tile = bd0; tile < bd1; tile += CT) {
      const int nt = static_cast<int>(std::min<int64_t>(CT, bd1 - tile));
      for (int j = 0; j < nt; ++j) {
        T* h = hst + static_cast<size_t>(j) * N;
        if (a.h0)
          std::memcpy(h, a.h0 + (tile + j) * N, sizeof(T) * N);
        else
          std::fill(h, h + N, T(0));
      }
      for (int64_t t0 = 0; t0 < L; t0 += TB) {
        const int n = static_cast<int>(std::min<int64_t>(TB, L - t0));
        for (int j = 0; j < nt; ++j) {
          const Chan<T> c(a, tile + j);
          const T* u = a.u + c.row + t0;
          bad |= dt_pass<T, Arch>(a.delta + c.row + t0, u, c.bias, a.softplus, n, dt, dtu, nullptr);
          Core::template chunk<Arch, false, true>(dt, dtu, c.A, c.B + t0 * a.Bs.st,
                                                  c.C + t0 * a.Cs.st, ss, n, N,
                                                  hst + static_cast<size_t>(j) * N, nullptr, y, dA);
          out_pass<T, Arch>(y, u, a.z ? a.z + c.row + t0 : nullptr, c.Dd, n, a.out + c.row + t0);
          // This channel's next chunk is needed only after the tile's other channels:
          // time enough for its rows to arrive from DRAM, which the hardware prefetchers
          // do not fetch ahead for these short strided pieces.
          if (t0 + TB < L) {
            const int64_t o = c.row + t0 + TB;
            const int64_t bytes = sizeof(T) * std::min<int64_t>(TB, L - t0 - TB);
            prefetch_span(a.delta + o, bytes, false);
            prefetch_span(a.u + o, bytes, false);
            if (a.z) prefetch_span(a.z + o, bytes, false);
            prefetch_span(a.out + o, bytes, true);
          }
        }
      }
      if (a.last_state)
        std::memcpy(a.last_state + tile * N, hst, sizeof(T) * N * nt);
    }
    report_nonfinite(a, bad);
  }

  // Cross-scan forward (SS2D): units [q0, q1) of the Bt x Du output channels, Du =
  // Dm / G. Output channel d of batch b sums the G scans of channels c = g*Du + d, scan
  // g visiting position tmap[g*L + t] at step t. The rows are gathered per chunk and
  // the outputs scattered back, so neither the G re-ordered copies of u nor the G
  // per-scan outputs exist in memory. A unit's G scans run in one thread: the output
  // row is accumulated without races.
  SS_INLINE static void fwd_cross(const FwdArgs<T>& a, int64_t q0, int64_t q1) {
    const int N = static_cast<int>(a.N);
    const int64_t L = a.L, Du = a.Dm / a.G;
    const int TB = chunk_len(N);
    const int CT = 32;
    const size_t TBN = static_cast<size_t>(TB) * N;
    std::vector<T> buf(5 * static_cast<size_t>(TB) + 3 * TBN + static_cast<size_t>(CT) * N);
    T* dt = buf.data();
    T* dtu = dt + TB;
    T* y = dtu + TB;
    T* ug = y + TB;
    T* dg = ug + TB;
    T* dA = dg + TB;
    T* Bg = dA + TBN;
    T* Cg = Bg + TBN;
    T* hst = Cg + TBN;
    const StepStrides ss{1, N, 1, N, 0, 0, 0, 0};  // the gathered B / C chunks
    int bad = 0;

    for (int64_t q = q0; q < q1;) {
      const int64_t b = q / Du, d0 = q - b * Du;
      const int nt = static_cast<int>(std::min<int64_t>({CT, q1 - q, Du - d0}));
      for (int64_t g = 0; g < a.G; ++g) {
        const int32_t* map = a.tmap + g * L;
        const T* Bb = a.B + b * a.Bs.sb + g * a.Bs.sg;
        const T* Cb = a.C + b * a.Cs.sb + g * a.Cs.sg;
        std::fill(hst, hst + static_cast<size_t>(nt) * N, T(0));
        for (int64_t t0 = 0; t0 < L; t0 += TB) {
          const int n = static_cast<int>(std::min<int64_t>(TB, L - t0));
          const int32_t* m = map + t0;
          for (int i = 0; i < n; ++i)
            for (int k = 0; k < N; ++k) {
              Bg[static_cast<size_t>(i) * N + k] = Bb[k * a.Bs.sn + m[i] * a.Bs.st];
              Cg[static_cast<size_t>(i) * N + k] = Cb[k * a.Cs.sn + m[i] * a.Cs.st];
            }
          for (int j = 0; j < nt; ++j) {
            const int64_t d = d0 + j, c = g * Du + d;
            const T* urow = a.u + (b * Du + d) * L;
            const T* drow = a.delta + (b * a.Dm + c) * L;
            T* orow = a.out + (b * Du + d) * L;
            for (int i = 0; i < n; ++i) {
              ug[i] = urow[m[i]];
              dg[i] = drow[m[i]];
            }
            const T bias = a.delta_bias ? a.delta_bias[c] : T(0);
            bad |= dt_pass<T, Arch>(dg, ug, bias, a.softplus, n, dt, dtu, nullptr);
            Core::template chunk<Arch, false, true>(dt, dtu, a.A + c * N, Bg, Cg, ss, n, N,
                                                    hst + static_cast<size_t>(j) * N, nullptr, y, dA);
            const T Dd = a.D ? a.D[c] : T(0);
            if (g == 0)  // scan 0 visits every position: it initialises the row
              for (int i = 0; i < n; ++i) orow[m[i]] = y[i] + Dd * ug[i];
            else
              for (int i = 0; i < n; ++i) orow[m[i]] += y[i] + Dd * ug[i];
          }
        }
      }
      q += nt;
    }
    report_nonfinite(a, bad);
  }

  // The dB / dC element at offset o of the caller's layout is accumulated at
  // dBbuf[o - dBlo] / dCbuf[o - dClo] (the caller's buffer, or this thread's own one
  // covering the offsets it touches).
  SS_INLINE static void bwd(const BwdArgs<T>& a, int64_t bd0, int64_t bd1, T* dBbuf, int64_t dBlo,
                            T* dCbuf, int64_t dClo) {
    const int N = static_cast<int>(a.N);
    const int64_t L = a.L;
    const int TB = chunk_len(N);
    const int64_t nch = (L + TB - 1) / TB;
    // Checkpoints of the tile: CT * nch * N elements, kept to ~256 KiB.
    const int64_t ck_budget = 262144 / static_cast<int64_t>(sizeof(T));
    const int CT = static_cast<int>(
        std::max<int64_t>(1, std::min<int64_t>(32, ck_budget / std::max<int64_t>(1, nch * N))));
    const size_t TBN = static_cast<size_t>(TB) * N;
    std::vector<T> buf(6 * static_cast<size_t>(TB) + TBN + TBN + 2 * static_cast<size_t>(N) +
                       static_cast<size_t>(CT) * (2 * N + 2 + nch * N));
    T* dt = buf.data();
    T* dtu = dt + TB;
    T* dsp = dtu + TB;
    T* y = dsp + TB;
    T* g = y + TB;
    T* sB = g + TB;  // sum_n lambda*B per step; sum_n A*q reuses y once y is consumed
    T* dA = sB + TB;
    T* H = dA + TBN;  // (TB + 1) rows
    T* hst = H + TBN + N;  // CT*N: state, then lambda
    T* dAacc = hst + static_cast<size_t>(CT) * N;
    T* tmp = dAacc + static_cast<size_t>(CT) * N;  // N: the state while recomputing
    T* dDacc = tmp + N;
    T* dbacc = dDacc + CT;
    T* ck = dbacc + CT;  // CT * nch * N
    const StepStrides ss{a.Bs.sn, a.Bs.st, a.Cs.sn, a.Cs.st, a.dBs.sn, a.dBs.st, a.dCs.sn, a.dCs.st};

    for (int64_t tile = bd0; tile < bd1; tile += CT) {
      const int nt = static_cast<int>(std::min<int64_t>(CT, bd1 - tile));
      // 1) forward sweep storing the state at every chunk start
      for (int j = 0; j < nt; ++j) {
        T* h = hst + static_cast<size_t>(j) * N;
        if (a.h0)
          std::memcpy(h, a.h0 + (tile + j) * N, sizeof(T) * N);
        else
          std::fill(h, h + N, T(0));
      }
      for (int64_t c = 0; c < nch; ++c) {
        const int64_t t0 = c * TB;
        const int n = static_cast<int>(std::min<int64_t>(TB, L - t0));
        for (int j = 0; j < nt; ++j) {
          T* h = hst + static_cast<size_t>(j) * N;
          std::memcpy(ck + (static_cast<size_t>(j) * nch + c) * N, h, sizeof(T) * N);
          if (c == nch - 1) continue;  // the state after the last chunk is not needed
          const Chan<T> ch(a, tile + j);
          dt_pass<T, Arch>(a.delta + ch.row + t0, a.u + ch.row + t0, ch.bias, a.softplus, n, dt,
                           dtu, nullptr);
          Core::template chunk<Arch, false, false>(dt, dtu, ch.A, ch.B + t0 * a.Bs.st,
                                                   ch.C + t0 * a.Cs.st, ss, n, N, h, nullptr,
                                                   nullptr, dA);
        }
      }
      // 2) reverse sweep
      for (int j = 0; j < nt; ++j) {
        T* lam = hst + static_cast<size_t>(j) * N;
        if (a.dlast)
          std::memcpy(lam, a.dlast + (tile + j) * N, sizeof(T) * N);
        else
          std::fill(lam, lam + N, T(0));
        std::fill(dAacc + static_cast<size_t>(j) * N, dAacc + static_cast<size_t>(j + 1) * N, T(0));
        dDacc[j] = T(0);
        dbacc[j] = T(0);
      }
      for (int64_t c = nch - 1; c >= 0; --c) {
        const int64_t t0 = c * TB;
        const int n = static_cast<int>(std::min<int64_t>(TB, L - t0));
        for (int j = 0; j < nt; ++j) {
          const Chan<T> ch(a, tile + j);
          const int64_t r = ch.row + t0;
          const T* u = a.u + r;
          dt_pass<T, Arch>(a.delta + r, u, ch.bias, a.softplus, n, dt, dtu, dsp);
          T* h = tmp;
          std::memcpy(h, ck + (static_cast<size_t>(j) * nch + c) * N, sizeof(T) * N);
          std::memcpy(H, h, sizeof(T) * N);
          const T* Bc = ch.B + t0 * a.Bs.st;
          const T* Cc = ch.C + t0 * a.Cs.st;
          if (a.z) {
            Core::template chunk<Arch, true, true>(dt, dtu, ch.A, Bc, Cc, ss, n, N, h, H, y, dA);
          } else {
            Core::template chunk<Arch, true, false>(dt, dtu, ch.A, Bc, Cc, ss, n, N, h, H, nullptr,
                                                    dA);
          }
          grad_out_pass<T, Arch>(y, u, a.z ? a.z + r : nullptr, a.dout + r, ch.Dd, n, g,
                                 a.dz ? a.dz + r : nullptr);
          const int64_t gi = ch.d / (a.Dm / a.G);
          T* dBc = dBbuf + (ch.b * a.dBs.sb + gi * a.dBs.sg + t0 * a.dBs.st - dBlo);
          T* dCc = dCbuf + (ch.b * a.dCs.sb + gi * a.dCs.sg + t0 * a.dCs.st - dClo);
          Core::bwd(dA, H, dt, dtu, g, Bc, Cc, dBc, dCc, ss, ch.A, n, N,
                    hst + static_cast<size_t>(j) * N, dAacc + static_cast<size_t>(j) * N, sB, y);
          grad_in_pass<T>(sB, y, g, dt, dsp, u, ch.Dd, n, a.du + r, a.ddelta + r, dDacc[j],
                          dbacc[j]);
        }
      }
      for (int j = 0; j < nt; ++j) {
        const int64_t bd = tile + j;
        if (a.dh0) std::memcpy(a.dh0 + bd * N, hst + static_cast<size_t>(j) * N, sizeof(T) * N);
        std::memcpy(a.dA_part + bd * N, dAacc + static_cast<size_t>(j) * N, sizeof(T) * N);
        if (a.dD_part) a.dD_part[bd] = dDacc[j];
        if (a.dbias_part) a.dbias_part[bd] = dbacc[j];
      }
    }
  }
};

// ---------------------------------------------------------------------------------
// Per-ISA entry points: the whole driver is instantiated (always-inline passes and
// cores) inside functions carrying the target attribute.

template <class T>
using FwdFn = void (*)(const FwdArgs<T>&, int64_t, int64_t);
template <class T>
using BwdFn = void (*)(const BwdArgs<T>&, int64_t, int64_t, T*, int64_t, T*, int64_t);

template <class T, class Arch>
struct Entry {
  // Choose the core for this problem; fast cores need the state dim contiguous.
  template <class Fn>
  SS_INLINE static void with_core(const FwdArgs<T>& a, bool contiguous, Fn&& fn) {
#if defined(SS_VECTOR_EXT)
    if constexpr (Arch::vbytes > 0 && sizeof(T) == 4) {
      constexpr int FL = Arch::vbytes / static_cast<int>(sizeof(T));
      if (contiguous) {
        switch (a.N) {
          case 1: return fn(FastCore<T, 1, 1, FL>{});
          case 2: return fn(FastCore<T, 1, 2, FL>{});
          case 4: return fn(FastCore<T, (FL < 4 ? FL : 4), 4 / (FL < 4 ? FL : 4), FL>{});
          case 8: return fn(FastCore<T, (FL < 8 ? FL : 8), 8 / (FL < 8 ? FL : 8), FL>{});
          case 16: return fn(FastCore<T, (FL < 16 ? FL : 16), 16 / (FL < 16 ? FL : 16), FL>{});
          case 32: return fn(FastCore<T, FL, 32 / FL, FL>{});
          case 64: return fn(FastCore<T, FL, 64 / FL, FL>{});
          default: break;
        }
      }
    }
#endif
    (void)contiguous;
    return fn(GenericCore<T>{});
  }

  SS_INLINE static void fwd(const FwdArgs<T>& a, int64_t bd0, int64_t bd1) {
    // Cross scans gather B / C into contiguous chunks, so any strides get a fast core.
    const bool contiguous = a.tmap || (a.Bs.sn == 1 && a.Cs.sn == 1);
    with_core(a, contiguous, [&](auto core) SS_LAMBDA_INLINE {
      using Core = decltype(core);
      if (a.tmap)
        Driver<T, Arch, Core>::fwd_cross(a, bd0, bd1);
      else
        Driver<T, Arch, Core>::fwd(a, bd0, bd1);
    });
  }
  SS_INLINE static void bwd(const BwdArgs<T>& a, int64_t bd0, int64_t bd1, T* dB, int64_t dBlo,
                            T* dC, int64_t dClo) {
    const bool contiguous =
        a.Bs.sn == 1 && a.Cs.sn == 1 && a.dBs.sn == 1 && a.dCs.sn == 1;
    with_core(a, contiguous, [&](auto core) SS_LAMBDA_INLINE {
      using Core = decltype(core);
      Driver<T, Arch, Core>::bwd(a, bd0, bd1, dB, dBlo, dC, dClo);
    });
  }
};

// Entry points per ISA. The target attribute is on these functions only; everything
// below them is always-inline, so it is compiled for that ISA.
#define SS_DEFINE_ENTRIES(ATTR, ARCH, SUFFIX)                                             \
  ATTR void fwd_f32_##SUFFIX(const FwdArgs<float>& a, int64_t b0, int64_t b1) {           \
    Entry<float, ARCH>::fwd(a, b0, b1);                                                  \
  }                                                                                      \
  ATTR void bwd_f32_##SUFFIX(const BwdArgs<float>& a, int64_t b0, int64_t b1, float* dB, \
                             int64_t dBlo, float* dC, int64_t dClo) {                    \
    Entry<float, ARCH>::bwd(a, b0, b1, dB, dBlo, dC, dClo);                              \
  }

SS_DEFINE_ENTRIES(, ArchGeneric, generic)
SS_DEFINE_ENTRIES(, ArchBase, base)
#if defined(SS_X86)
SS_DEFINE_ENTRIES(__attribute__((target("avx2,fma"))), ArchAVX2, avx2)
#if defined(EFFSEG_TEST_EMULATE_AVX512)
// Test builds only: the 16-lane code paths compiled for AVX2, chosen on AVX2 machines.
SS_DEFINE_ENTRIES(__attribute__((target("avx2,fma"))), ArchAVX512, avx512)
#else
SS_DEFINE_ENTRIES(__attribute__((target("avx512f,avx2,fma"))), ArchAVX512, avx512)
#endif
#endif

void fwd_f64(const FwdArgs<double>& a, int64_t b0, int64_t b1) {
  Entry<double, ArchGeneric>::fwd(a, b0, b1);
}
void bwd_f64(const BwdArgs<double>& a, int64_t b0, int64_t b1, double* dB, int64_t dBlo,
             double* dC, int64_t dClo) {
  Entry<double, ArchGeneric>::bwd(a, b0, b1, dB, dBlo, dC, dClo);
}

enum class Isa { Generic = 0, Base = 1, AVX2 = 2, AVX512 = 3 };

Isa detect_isa() {
  Isa best = Isa::Generic;
#if defined(SS_VECTOR_EXT) && (defined(__x86_64__) || defined(__aarch64__))
  best = Isa::Base;
#endif
#if defined(SS_X86)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx2") &&
      __builtin_cpu_supports("fma"))
    best = Isa::AVX512;
  else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
    best = Isa::AVX2;
#if defined(EFFSEG_TEST_EMULATE_AVX512)
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
    if (static_cast<int>(cap) < static_cast<int>(best)) best = cap;
  }
  return best;
}

Isa isa() {
  static const Isa v = detect_isa();
  return v;
}

FwdFn<float> pick_fwd_f32() {
  switch (isa()) {
#if defined(SS_X86)
    case Isa::AVX512: return fwd_f32_avx512;
    case Isa::AVX2: return fwd_f32_avx2;
#endif
    case Isa::Base: return fwd_f32_base;
    default: return fwd_f32_generic;
  }
}
BwdFn<float> pick_bwd_f32() {
  switch (isa()) {
#if defined(SS_X86)
    case Isa::AVX512: return bwd_f32_avx512;
    case Isa::AVX2: return bwd_f32_avx2;
#endif
    case Isa::Base: return bwd_f32_base;
    default: return bwd_f32_generic;
  }
}

template <class T>
struct Pick;
template <>
struct Pick<float> {
  static FwdFn<float> fwd() { return pick_fwd_f32(); }
  static BwdFn<float> bwd() { return pick_bwd_f32(); }
};
template <>
struct Pick<double> {
  static FwdFn<double> fwd() { return fwd_f64; }
  static BwdFn<double> bwd() { return bwd_f64; }
};

// Threads worth using: all of them unless the problem is tiny.
int threads_for(int64_t channels, int64_t work) {
  int nth = max_threads();
  if (work < (int64_t{1} << 15)) nth = 1;
  if (nth > channels) nth = static_cast<int>(std::max<int64_t>(channels, 1));
  return std::max(nth, 1);
}

[[noreturn]] void bad(const std::string& msg) { throw std::invalid_argument("selective_scan: " + msg); }

// [lo, hi] element offsets reached by b*sb + g*sg + n*sn + t*st for b in [b0, b1],
// g in [g0, g1], n in [0, N), t in [0, L) (any stride signs).
struct Span {
  int64_t lo, hi;
};
Span offset_span(const Strides& s, int64_t b0, int64_t b1, int64_t g0, int64_t g1, int64_t N,
                 int64_t L) {
  const int64_t st[4] = {s.sb, s.sg, s.sn, s.st};
  const int64_t i0[4] = {b0, g0, 0, 0};
  const int64_t i1[4] = {b1, g1, N - 1, L - 1};
  Span r{0, 0};
  for (int k = 0; k < 4; ++k) {
    const int64_t x = st[k] * i0[k], y = st[k] * i1[k];
    r.lo += std::min(x, y);
    r.hi += std::max(x, y);
  }
  return r;
}
// Offsets of dB (or dC) a thread owning channel pairs [bd0, bd1) may touch.
template <class T>
Span thread_span(const BwdArgs<T>& a, const Strides& s, int64_t bd0, int64_t bd1) {
  const int64_t b0 = bd0 / a.Dm, b1 = (bd1 - 1) / a.Dm;
  const int64_t per = a.Dm / a.G;
  int64_t g0 = 0, g1 = a.G - 1;
  if (b0 == b1) {
    g0 = (bd0 - b0 * a.Dm) / per;
    g1 = (bd1 - 1 - b0 * a.Dm) / per;
  }
  return offset_span(s, b0, b1, g0, g1, a.N, a.L);
}

}  // namespace

// ---------------------------------------------------------------------------------
// Public API

template <class T>
void validate(const FwdArgs<T>& a) {
  if (a.Bt < 0 || a.Dm < 0 || a.L < 0) bad("Bt, Dm and L must be >= 0");
  if (a.N < 1) bad("N (state size) must be >= 1");
  if (a.N > (int64_t{1} << 20)) bad("N is unreasonably large");
  if (a.G < 1) bad("G (groups) must be >= 1");
  if (a.Dm % a.G != 0) bad("Dm must be divisible by G");
  if (a.Bt * a.Dm == 0 || a.L == 0) return;
  if (!a.u || !a.delta || !a.A || !a.B || !a.C) bad("u, delta, A, B and C are required");
}

template <class T>
void validate_fwd(const FwdArgs<T>& a) {
  validate(a);
  if (!a.out && a.L > 0 && a.Bt * a.Dm > 0) bad("out is required");
  if (a.tmap) {
    if (a.z || a.h0 || a.last_state) bad("a cross scan takes no z, initial or last state");
    if (a.L > (int64_t{1} << 31) - 1) bad("a cross scan needs L < 2^31");
    // Each row of tmap must be a permutation of [0, L): scan 0 initialises every
    // output position and the others add to them.
    std::vector<uint8_t> seen(static_cast<size_t>(a.L));
    for (int64_t g = 0; g < a.G; ++g) {
      std::fill(seen.begin(), seen.end(), uint8_t(0));
      for (int64_t t = 0; t < a.L; ++t) {
        const int32_t p = a.tmap[g * a.L + t];
        if (p < 0 || p >= a.L || seen[p]) bad("tmap rows must be permutations of 0..L-1");
        seen[p] = 1;
      }
    }
  }
}

template <class T>
void validate_bwd(const BwdArgs<T>& a) {
  validate<T>(a);
  if (a.Bt * a.Dm == 0) return;
  if (!a.dA_part) bad("dA_part is required");
  if (a.L > 0) {
    if (!a.dout || !a.du || !a.ddelta) bad("dout, du and ddelta are required");
    if (!a.dB || !a.dC) bad("dB and dC buffers are required");
    if (a.z && !a.dz) bad("dz is required when z is given");
    Span sp = offset_span(a.dBs, 0, a.Bt - 1, 0, a.G - 1, a.N, a.L);
    if (sp.lo < 0 || sp.hi >= a.dB_numel) bad("dB strides reach outside the dB buffer");
    sp = offset_span(a.dCs, 0, a.Bt - 1, 0, a.G - 1, a.N, a.L);
    if (sp.lo < 0 || sp.hi >= a.dC_numel) bad("dC strides reach outside the dC buffer");
  }
}

template <class T>
void forward(const FwdArgs<T>& a) {
  validate_fwd(a);
  // Cross scans split the work by output channel (all G scans of one in one thread).
  const int64_t total = a.tmap ? a.Bt * (a.Dm / a.G) : a.Bt * a.Dm;
  if (total == 0) return;
  const FwdFn<T> fn = Pick<T>::fwd();
  const int nth = threads_for(total, total * std::max<int64_t>(a.L, 1) * a.N);
#ifdef EFFSEG_OPENMP
  if (nth > 1) {
#pragma omp parallel num_threads(nth)
    {
      const int64_t tid = omp_get_thread_num(), nt = omp_get_num_threads();
      fn(a, total * tid / nt, total * (tid + 1) / nt);
    }
    return;
  }
#endif
  (void)nth;
  fn(a, 0, total);
}

template <class T>
void backward(const BwdArgs<T>& a) {
  validate_bwd(a);
  const int64_t total = a.Bt * a.Dm;
  if (total == 0) return;
  const BwdFn<T> fn = Pick<T>::bwd();
  const int nth = a.L > 0 ? threads_for(total, total * a.L * a.N) : 1;
#ifdef EFFSEG_OPENMP
  if (nth > 1) {
    // Thread k owns channel pairs [total*k/nth, total*(k+1)/nth). Threads whose dB / dC
    // offsets overlap no other direct writer's (greedily, thread 0 always; e.g. all of
    // them with one batch per thread) add into the caller's buffer directly; the rest
    // into a private zeroed buffer covering just their offsets, summed in at the end.
    struct Acc {
      std::vector<T> buf;
      Span span;
      bool direct;
      T* base(T* dst) { return direct ? dst : buf.data(); }
      int64_t lo() const { return direct ? 0 : span.lo; }
    };
    auto plan = [&](const Strides& s, std::vector<Acc>& acc) {
      acc.resize(nth);
      for (int k = 0; k < nth; ++k)
        acc[k].span = thread_span(a, s, total * k / nth, total * (k + 1) / nth);
      for (int k = 0; k < nth; ++k) {
        bool alone = true;
        for (int j = 0; j < k && alone; ++j)
          if (acc[j].direct && acc[j].span.lo <= acc[k].span.hi && acc[k].span.lo <= acc[j].span.hi)
            alone = false;
        acc[k].direct = alone;
        if (!alone)
          acc[k].buf.assign(static_cast<size_t>(acc[k].span.hi - acc[k].span.lo + 1), T(0));
      }
    };
    std::vector<Acc> accB, accC;
    plan(a.dBs, accB);
    plan(a.dCs, accC);
    constexpr int64_t blk = 16384;
#pragma omp parallel num_threads(nth)
    {
      const int k = omp_get_thread_num();
      const int got = omp_get_num_threads();
      // Normally one share per thread; should the runtime give fewer threads, the
      // shares are dealt out round-robin (each still uses its own buffers).
      for (int j = k; j < nth; j += got)
        fn(a, total * j / nth, total * (j + 1) / nth, accB[j].base(a.dB), accB[j].lo(),
           accC[j].base(a.dC), accC[j].lo());
#pragma omp barrier
      const int64_t nbB = (a.dB_numel + blk - 1) / blk, nbC = (a.dC_numel + blk - 1) / blk;
#pragma omp for schedule(static)
      for (int64_t ib = 0; ib < nbB + nbC; ++ib) {
        const bool isB = ib < nbB;
        T* dst = isB ? a.dB : a.dC;
        const std::vector<Acc>& acc = isB ? accB : accC;
        const int64_t i0 = (isB ? ib : ib - nbB) * blk;
        const int64_t i1 = std::min(isB ? a.dB_numel : a.dC_numel, i0 + blk);
        for (int j = 0; j < nth; ++j) {
          if (acc[j].direct) continue;
          const int64_t lo = std::max(i0, acc[j].span.lo), hi = std::min(i1, acc[j].span.hi + 1);
          const T* src = acc[j].buf.data() - acc[j].span.lo;
          for (int64_t i = lo; i < hi; ++i) dst[i] += src[i];
        }
      }
    }
    return;
  }
#endif
  (void)nth;
  fn(a, 0, total, a.dB, 0, a.dC, 0);
}

const char* simd_level() {
  switch (isa()) {
    case Isa::AVX512: return "avx512f";
    case Isa::AVX2: return "avx2+fma";
    case Isa::Base:
#if defined(__aarch64__)
      return "neon";
#else
      return "sse2";
#endif
    default: return "generic";
  }
}

// The kernels' own thread count (0: the OpenMP default). Kept apart from
// omp_set_num_threads so that it does not change torch's OpenMP setting when both
// share one runtime.
static std::atomic<int> g_num_threads{0};

int max_threads() {
#ifdef EFFSEG_OPENMP
  const int n = g_num_threads.load(std::memory_order_relaxed);
  return n > 0 ? n : omp_get_max_threads();
#else
  return 1;
#endif
}

void set_num_threads(int n) { g_num_threads.store(n > 0 ? n : 0, std::memory_order_relaxed); }

bool has_openmp() {
#ifdef EFFSEG_OPENMP
  return true;
#else
  return false;
#endif
}

template void validate<float>(const FwdArgs<float>&);
template void validate<double>(const FwdArgs<double>&);
template void validate_fwd<float>(const FwdArgs<float>&);
template void validate_fwd<double>(const FwdArgs<double>&);
template void validate_bwd<float>(const BwdArgs<float>&);
template void validate_bwd<double>(const BwdArgs<double>&);
template void forward<float>(const FwdArgs<float>&);
template void forward<double>(const FwdArgs<double>&);
template void backward<float>(const BwdArgs<float>&);
template void backward<double>(const BwdArgs<double>&);

}  // namespace selective_scan
}  // namespace effseg
