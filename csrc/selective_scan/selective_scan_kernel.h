// Selective scan CPU kernel internals shared by the forward, cross-scan and backward
// kernels (selective_scan_fwd.cpp, cross_selective_scan.cpp, selective_scan_bwd.cpp):
// the flat per-chunk passes, per-channel addressing, and the per-ISA entry tables that
// selective_scan.cpp dispatches through. See selective_scan.h for the layouts.
//
// Structure
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
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "common/isa.h"
#include "common/simd_math.h"
#include "selective_scan/selective_scan.h"

#if defined(__GNUC__)
#define SS_INLINE inline __attribute__((always_inline))
#define SS_LAMBDA_INLINE __attribute__((always_inline))
#define SS_VECTOR_EXT 1
#pragma GCC diagnostic ignored "-Wpsabi"
#else
#define SS_INLINE inline
#define SS_LAMBDA_INLINE
#endif

namespace effseg {
namespace selective_scan {
namespace detail {

template <class T, class Arch>
using Math = simd::Math<T, Arch>;

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
      out[i] = (y[i] + Dd * u[i]) * M::silu(zz);
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

// Strides of B, C, dB, dC over the state dim (n) and time (t).
struct StepStrides {
  int64_t bn, bt, cn, ct, dbn, dbt, dcn, dct;
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

// Rows [tile, tile + nt) of a (channels, N) array into dst; zeros when src is absent.
template <class T>
SS_INLINE void load_states(T* dst, const T* src, int64_t tile, int nt, int N) {
  for (int j = 0; j < nt; ++j) {
    T* h = dst + static_cast<size_t>(j) * N;
    if (src)
      std::memcpy(h, src + (tile + j) * N, sizeof(T) * N);
    else
      std::fill(h, h + N, T(0));
  }
}

// ---------------------------------------------------------------------------------
// Per-ISA entry points. A kernel is an always-inline template kernel<T, Arch>(args,
// share); SS_DEFINE_KERNELS compiles it inside one function per ISA carrying that ISA's
// target attribute, so everything below it is compiled for the ISA, and lists them in a
// table for selective_scan.cpp to pick from.

// The part of a call one thread does: channels [bd0, bd1) and, for the backward, where
// it adds dB / dC (the element at offset o of the caller's layout at dB[o - dBlo],
// dC[o - dClo]: the caller's buffer, or the thread's own one covering its offsets).
template <class T>
struct Share {
  int64_t bd0 = 0, bd1 = 0;
  T* dB = nullptr;
  int64_t dBlo = 0;
  T* dC = nullptr;
  int64_t dClo = 0;
};

template <template <class> class Args>
struct Kernels {
  template <class T>
  using Fn = void (*)(const Args<T>&, const Share<T>&);
  Fn<float> generic, base, avx2, avx512;  // avx2 / avx512: null off x86-64
  Fn<double> f64;
};

extern const Kernels<FwdArgs> kForward;
extern const Kernels<FwdArgs> kCrossForward;
extern const Kernels<BwdArgs> kBackward;

#if defined(EFFSEG_X86_DISPATCH)
#if defined(EFFSEG_TEST_EMULATE_AVX512)
#define SS_TARGET_AVX512 __attribute__((target("avx2,fma")))  // test builds: 16 lanes on AVX2
#else
#define SS_TARGET_AVX512 __attribute__((target("avx512f,avx2,fma")))
#endif
#define SS_X86_ENTRIES(NAME, ARGS, KERNEL)                                                 \
  __attribute__((target("avx2,fma"))) void NAME##_avx2(const ARGS<float>& a,              \
                                                       const Share<float>& s) {           \
    KERNEL<float, ArchAVX2>(a, s);                                                        \
  }                                                                                       \
  SS_TARGET_AVX512 void NAME##_avx512(const ARGS<float>& a, const Share<float>& s) {      \
    KERNEL<float, ArchAVX512>(a, s);                                                      \
  }
#define SS_X86_ONLY(X) X
#else
#define SS_X86_ENTRIES(NAME, ARGS, KERNEL)
#define SS_X86_ONLY(X) nullptr
#endif

#define SS_DEFINE_KERNELS(NAME, ARGS, KERNEL)                                                \
  namespace {                                                                               \
  void NAME##_generic(const ARGS<float>& a, const Share<float>& s) {                        \
    KERNEL<float, ArchGeneric>(a, s);                                                       \
  }                                                                                         \
  void NAME##_base(const ARGS<float>& a, const Share<float>& s) { KERNEL<float, ArchBase>(a, s); } \
  void NAME##_f64(const ARGS<double>& a, const Share<double>& s) {                          \
    KERNEL<double, ArchGeneric>(a, s);                                                      \
  }                                                                                         \
  SS_X86_ENTRIES(NAME, ARGS, KERNEL)                                                        \
  }                                                                                         \
  const Kernels<ARGS> NAME = {NAME##_generic, NAME##_base, SS_X86_ONLY(NAME##_avx2),        \
                              SS_X86_ONLY(NAME##_avx512), NAME##_f64};

}  // namespace detail
}  // namespace selective_scan
}  // namespace effseg
