// The selective scan's per-channel chunk cores: GenericCore (any N, any strides, double)
// and FastCore (float, state dim contiguous, N a power of two up to 64: the state in
// registers as GCC / Clang vectors), and with_core, which picks one for a call.
//   chunk: dA = exp(dt A), then h_t = dA_t h_{t-1} + dtu_t B_t over the chunk (h in /
//          out through hmem), optionally y_t = sum_n C_t h_t and H[(i+1)*N..] = h_t.
//   bwd  : the adjoint over the chunk in reverse, with H[0..] = the state before it:
//            lam_t = g_t C_t + lam (lam = dA_{t+1} lam_{t+1}, dlast after the end)
//            dC_t += g_t h_t, dB_t += lam_t dt_t u_t, SB_t = sum_n lam_t B_t,
//            q = lam_t h_{t-1} dA_t, SQ_t = sum_n A q, dA += dt_t q, lam = dA_t lam_t.
// B/C/dB/dC pointers point at time t0 of the chunk.
#pragma once

#include <cstring>
#include <limits>
#include <type_traits>
#include <utility>

#include "selective_scan/selective_scan_kernel.h"

namespace effseg {
namespace selective_scan {
namespace detail {

using simd::bits_as;
using simd::splat;

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

// Calls fn(Core{}) with the core for this problem; fast cores need the state dim
// contiguous.
template <class T, class Arch, class Fn>
SS_INLINE void with_core(int64_t N, bool contiguous, Fn&& fn) {
#if defined(SS_VECTOR_EXT)
  if constexpr (Arch::vbytes > 0 && sizeof(T) == 4) {
    constexpr int FL = Arch::vbytes / static_cast<int>(sizeof(T));
    if (contiguous) {
      switch (N) {
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

}  // namespace detail
}  // namespace selective_scan
}  // namespace effseg
