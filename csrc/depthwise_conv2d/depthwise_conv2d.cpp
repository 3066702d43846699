// Depthwise 2-D convolution, CPU kernel. See depthwise_conv2d.h for the layouts.
//
// Direct convolution (no im2col: a depthwise filter has no reduction over channels, so
// there is no GEMM to hand the work to); per output element kH*kW multiply-adds.
//
// Structure
//   * Channel-blocked path (the fast one): L channels (the SIMD width) in the lanes,
//     as oneDNN's nChw8c layout, but only inside a per-thread buffer. A work unit is
//     (batch, block of L channels, block of output rows); it copies the input rows the
//     block reads into the buffer, transposing L x L tiles (L channel rows x L columns
//     -> L pixels x L channels) and writing the zero padding out, so the compute loop
//     has no border cases. Then every tap is one aligned vector load per output pixel
//     (any stride or dilation: pixels are whole vectors), the weight of a tap is one
//     vector for all L channels, and 8 output pixels accumulate side by side (a chain
//     of dependent FMAs issues one per latency, 4 cycles on Zen 3 with 2 FMA pipes, so
//     8 independent accumulators keep both busy). Bias initialises the accumulators,
//     L x L transposes write the pixels back to NCHW rows, and the activation runs as
//     a pass over each freshly written row segment while it is in L1. On Zen 3 the
//     unaligned, often cache-line-splitting loads of a plain NCHW kernel cost ~25% of
//     its speed; this layout has none.
//   * Row path, for the C mod L channels left over (and C < L): one plane at a time,
//     vectorised along W. The buffered rows are zero padded the same way; with a column
//     stride s each row is de-interleaved into s phases (columns q*s + p go to phase p)
//     so that consecutive outputs read consecutive elements for every tap. Tiles of
//     2 rows x up to 4 vectors (4 rows for one-vector rows).
//   * Row blocks keep a unit's buffer within L2; with few (batch, channel) planes the
//     planes are cut into more blocks so that every thread gets work.
//   * Column-reuse tile (AVX2 / AVX-512 builds, column stride 1 or 2, column dilation
//     1): the channel-blocked tile above is bound by its loads at large k (one input
//     vector per FMA). Instead, per kernel row, the taps run in groups whose weight
//     vectors stay in registers and each buffered pixel is loaded once per group and
//     fed to every output of the tile that reads it (k = 7 on AVX-512: 22 input + 7
//     weight loads for 112 FMAs instead of 119). Fully unrolled per group size.
//   * Both paths are compiled for the x86-64 baseline (SSE2: L = 4 floats), AVX2+FMA
//     (L = 8) and AVX-512F (L = 16: wider FMAs and 32 registers for the reuse tile),
//     picked at run time through common/isa.h's detection (EFFSEG_SIMD caps it);
//     double uses the same code with half the lanes. GELU is
//     the exact (erf) form, through a rational erf fitted for this kernel (gelu_f);
//     SiLU is common/simd_math.h's; double uses std::erfc / std::exp.
#include "depthwise_conv2d/depthwise_conv2d.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "common/isa.h"
#include "common/simd_math.h"
#include "common/threads.h"

#ifdef EFFSEG_OPENMP
#include <omp.h>
#endif

#if defined(__GNUC__)
#define DW_INLINE inline __attribute__((always_inline))
#define DW_VECTOR_EXT 1
#pragma GCC diagnostic ignored "-Wpsabi"
#else
#define DW_INLINE inline
#endif

namespace effseg {
namespace depthwise_conv2d {
namespace {

// L lanes of T as a GCC/Clang vector (plain T for L == 1), plus the matching
// signed-integer vector for bit manipulation.
// `unaligned` is the same vector for element-aligned memory: loads / stores through it
// are single vmovups (a memcpy of a vector into strided rows was split into 16-byte
// moves through the stack).
template <class T, int L>
struct Lane {
  using IT = std::conditional_t<sizeof(T) == 4, int32_t, int64_t>;
  typedef T type __attribute__((vector_size(sizeof(T) * L)));
  typedef IT itype __attribute__((vector_size(sizeof(T) * L)));
  typedef T unaligned __attribute__((vector_size(sizeof(T) * L), aligned(sizeof(T)), may_alias));
};
template <class T>
struct Lane<T, 1> {
  typedef T type;
  typedef std::conditional_t<sizeof(T) == 4, int32_t, int64_t> itype;
  typedef T unaligned;
};

using simd::bits_as;
using simd::splat;

// GELU(x) = x/2 (1 + erf(z)), z = x / sqrt 2, with erf(z) = z P(z^2) / Q(z^2) for
// |z| <= 3.9 (clamped beyond: erf(3.9) = 1 - 3.5e-8, below float resolution at 1).
// P (degree 5) and Q (degree 5, Q(0) = 1) were fitted for this kernel: a weighted
// least-squares minimax iteration on the linearised residual over [0, 3.9], polished
// on the true error (float64 max |error| 3.5e-8; all Q coefficients positive, so no
// poles). In float32 the GELU is within 1.7e-7 * max(1, |x|) of the exact one, as good
// as the Abramowitz-Stegun 7.1.26 form PyTorch's vectorised erf uses, at 15 multiplies
// per vector instead of ~20 plus an exp (the activation pass is bound by the two FMA
// pipes).
template <class V>
DW_INLINE V gelu_f(V x) {
  const V lo = splat<V>(-3.9f), hi = splat<V>(3.9f);
  V z = x * 0.70710678118654752f;
  z = z < lo ? lo : z;
  z = z > hi ? hi : z;
  const V s = z * z;
  V p = s * 2.1087874320e-06f + 2.8568572095e-04f;
  p = p * s + 3.6699337172e-03f;
  p = p * s + 5.2460541819e-02f;
  p = p * s + 1.8778330822e-01f;
  p = p * s + 1.1283791176e+00f;
  V q = s * 3.8742066054e-05f + 1.1448976298e-03f;
  q = q * s + 1.4774144753e-02f;
  q = q * s + 1.1307867629e-01f;
  q = q * s + 4.9975125160e-01f;
  q = q * s + 1.0f;
  const V h = x * 0.5f;
  return h * (z * p / q) + h;
}

template <class T>
DW_INLINE T act_scalar(T z, Act act) {
  switch (act) {
    case Act::ReLU: return z < 0 ? T(0) : z;
    case Act::ReLU6: return z < 0 ? T(0) : (z > 6 ? T(6) : z);
    case Act::GELU: return z * T(0.5) * std::erfc(-z * T(0.70710678118654752440));
    case Act::SiLU: return z / (T(1) + std::exp(-z));
    default: return z;
  }
}

#if defined(__clang__)
#define DW_SHUF(I, a, b, ...) __builtin_shufflevector(a, b, __VA_ARGS__)
#else
#define DW_SHUF(I, a, b, ...) __builtin_shuffle(a, b, I{__VA_ARGS__})
#endif

// Input bytes a block should stay under, so its rows are still in L2 when the taps
// of the last tile read them.
constexpr int64_t kBlockBytes = 96 * 1024;
// The same for the channel-blocked path of the AVX-512 build: its 16-channel rows are
// twice as long, so 96 KB held ~5 output rows against 6 halo rows at k = 7 and more than
// half of the transposed fill was repeated; 384 KB (within the 1-2 MB L2 of AVX-512 x86
// cores) holds ~40 (single-thread CPU time ~10-20% lower at k = 5 / 7 on a Xeon).
constexpr int64_t kBlockBytesWide = 384 * 1024;
// Output pixels per column block of the channel-blocked path (a multiple of 8).
constexpr int64_t kColBlock = 32;

// Everything a unit needs, fixed for one call.
template <class T>
struct Plan {
  const Args<T>* a;
  int64_t halo;      // (kH - 1) * dH + 1: padded rows one output row reads
  // channel-blocked path: units (b, channel block, row block)
  int64_t nbc = 0;   // channel blocks of L channels (0: path unused)
  int64_t Wp = 0;    // pixels per buffered row
  int64_t rpbB = 1, nblkB = 1;  // output rows per block, blocks per plane
  const T* wblk = nullptr;      // weights as (C / L, kH, kW, L)
  // row path: units (b, channel in [c_lo, C), row block)
  int64_t c_lo = 0;
  int64_t Wq = 0;     // elements per phase of a buffered row
  int64_t rowlen = 0; // sW * Wq: elements per buffered row
  int64_t rpb = 1, nblk = 1;
  int64_t nvec = 0;   // vectors per output row
  int nlast = 0;      // valid lanes of the last vector
  int64_t off[kMaxKernel];  // buffer offset of tap column j
};

template <class T, int L>
struct Kernel {
  using V = typename Lane<T, L>::type;
  using I = typename Lane<T, L>::itype;
  // Only the AVX2 / AVX-512 builds have 32- / 64-byte vectors; simd_math.h's functions
  // fuse multiply-adds there.
  static constexpr bool kFma = L * sizeof(T) >= 32;
  // x86 AVX2 / AVX-512 builds (32- / 64-byte vectors): the channel-blocked path runs
  // the column-reuse tile (tile_blk_reuse) on kNO pixels with up to kGroup tap weights
  // held in registers. Sized to the register file: 16 accumulators + 8 weights + the
  // input of 32 zmm registers; 8 + 6 + 1 of 16 ymm registers (6 rather than 4 lets
  // k = 5 run as one group; single-thread CPU time ~7% lower on a Xeon).
  static constexpr bool kReuse = L * sizeof(T) >= 32;
  static constexpr int kNO = L * sizeof(T) >= 64 ? 16 : 8;
  static constexpr int kGroup = L * sizeof(T) >= 64 ? 8 : 6;

  using U = typename Lane<T, L>::unaligned;
  static DW_INLINE V ld(const T* p) { return *reinterpret_cast<const U*>(p); }
  static DW_INLINE void st(T* p, const V& v) { *reinterpret_cast<U*>(p) = v; }

  template <Act A>
  static DW_INLINE V act_v(V z) {
    if constexpr (std::is_same_v<T, float> && L > 1) {
      if constexpr (A == Act::ReLU) return z < 0 ? V{} : z;  // NaN stays NaN, as torch.relu
      if constexpr (A == Act::ReLU6) {
        const V six = splat<V>(6.0f);
        z = z > six ? six : z;
        return z < 0 ? V{} : z;
      }
      if constexpr (A == Act::GELU) return gelu_f<V>(z);
      if constexpr (A == Act::SiLU) return simd::silu<kFma>(z);
      return z;
    } else if constexpr (L == 1) {
      return act_scalar<T>(z, A);
    } else {
      for (int l = 0; l < L; ++l) z[l] = act_scalar<T>(z[l], A);
      return z;
    }
  }

  template <Act A>
  static DW_INLINE void act_loop(T* p, int64_t n) {
    int64_t i = 0;
    for (; i + L <= n; i += L) st(p + i, act_v<A>(ld(p + i)));
    if (i < n) {
      V t{};
      std::memcpy(&t, p + i, sizeof(T) * (n - i));
      t = act_v<A>(t);
      std::memcpy(p + i, &t, sizeof(T) * (n - i));
    }
  }

  // The activation runs as its own pass over output just written (still in L1): a
  // loop of independent vectors keeps few registers live, where applying GELU to a
  // tile's 8 accumulators at once spilled and cost twice as much per element.
  static DW_INLINE void act_span(T* p, int64_t n, Act act) {
    switch (act) {
      case Act::ReLU: return act_loop<Act::ReLU>(p, n);
      case Act::ReLU6: return act_loop<Act::ReLU6>(p, n);
      case Act::GELU: return act_loop<Act::GELU>(p, n);
      case Act::SiLU: return act_loop<Act::SiLU>(p, n);
      default: return;
    }
  }

  // One butterfly of the L = 16 transpose: rows k (bit B clear) and k + B exchange the
  // elements whose column has bit B set (row k) / clear (row k + B).
  template <int B, bool Hi, size_t... P>
  static DW_INLINE V bfly(const V& a, const V& b, std::index_sequence<P...>) {
    return DW_SHUF(I, a, b,
                   static_cast<int>(Hi ? ((P & B) ? L + P : P + B) : ((P & B) ? L + P - B : P))...);
  }
  template <int B>
  static DW_INLINE void transpose_stage(V* r) {
#pragma GCC unroll 16
    for (int k = 0; k < L; ++k) {
      if (k & B) continue;
      const V lo = bfly<B, false>(r[k], r[k + B], std::make_index_sequence<L>{});
      const V hi = bfly<B, true>(r[k], r[k + B], std::make_index_sequence<L>{});
      r[k] = lo;
      r[k + B] = hi;
    }
  }

  // In-register L x L transpose: r[i][j] -> r[j][i] (unpack / shuffle / lane-permute
  // stages; GCC and Clang map each shuffle onto one instruction).
  static DW_INLINE void transpose(V* r) {
    if constexpr (L == 8) {
      V t[8], u[8];
      for (int k = 0; k < 8; k += 2) {
        t[k] = DW_SHUF(I, r[k], r[k + 1], 0, 8, 1, 9, 4, 12, 5, 13);
        t[k + 1] = DW_SHUF(I, r[k], r[k + 1], 2, 10, 3, 11, 6, 14, 7, 15);
      }
      for (int k = 0; k < 8; k += 4)
        for (int h = 0; h < 2; ++h) {
          u[k + 2 * h] = DW_SHUF(I, t[k + h], t[k + h + 2], 0, 1, 8, 9, 4, 5, 12, 13);
          u[k + 2 * h + 1] = DW_SHUF(I, t[k + h], t[k + h + 2], 2, 3, 10, 11, 6, 7, 14, 15);
        }
      for (int k = 0; k < 4; ++k) {
        r[k] = DW_SHUF(I, u[k], u[k + 4], 0, 1, 2, 3, 8, 9, 10, 11);
        r[k + 4] = DW_SHUF(I, u[k], u[k + 4], 4, 5, 6, 7, 12, 13, 14, 15);
      }
    } else if constexpr (L == 4 && sizeof(T) == 4) {
      const V t0 = DW_SHUF(I, r[0], r[1], 0, 4, 1, 5), t1 = DW_SHUF(I, r[0], r[1], 2, 6, 3, 7);
      const V t2 = DW_SHUF(I, r[2], r[3], 0, 4, 1, 5), t3 = DW_SHUF(I, r[2], r[3], 2, 6, 3, 7);
      r[0] = DW_SHUF(I, t0, t2, 0, 1, 4, 5);
      r[1] = DW_SHUF(I, t0, t2, 2, 3, 6, 7);
      r[2] = DW_SHUF(I, t1, t3, 0, 1, 4, 5);
      r[3] = DW_SHUF(I, t1, t3, 2, 3, 6, 7);
    } else if constexpr (L == 4) {
      const V t0 = DW_SHUF(I, r[0], r[1], 0, 4, 2, 6), t1 = DW_SHUF(I, r[0], r[1], 1, 5, 3, 7);
      const V t2 = DW_SHUF(I, r[2], r[3], 0, 4, 2, 6), t3 = DW_SHUF(I, r[2], r[3], 1, 5, 3, 7);
      r[0] = DW_SHUF(I, t0, t2, 0, 1, 4, 5);
      r[1] = DW_SHUF(I, t1, t3, 0, 1, 4, 5);
      r[2] = DW_SHUF(I, t0, t2, 2, 3, 6, 7);
      r[3] = DW_SHUF(I, t1, t3, 2, 3, 6, 7);
    } else if constexpr (L == 16) {
      // AVX-512 floats: four butterfly stages, each swapping one bit of the row index
      // with the same bit of the column index (after all four, r[i][j] = old r[j][i]).
      transpose_stage<1>(r);
      transpose_stage<2>(r);
      transpose_stage<4>(r);
      transpose_stage<8>(r);
    } else if constexpr (L == 2) {
      const V t0 = DW_SHUF(I, r[0], r[1], 0, 2);
      r[1] = DW_SHUF(I, r[0], r[1], 1, 3);
      r[0] = t0;
    } else {
      static_assert(L == 1, "no transpose for this lane count");
    }
  }

  // ---- channel-blocked path ------------------------------------------------------
  // Buffered row k (padded row pr0 + k) at buf + k*Wp*L; pixel p (input column p - pL)
  // at + p*L, lane l = channel c0 + l. xc: channel c0's plane; planes are H*W apart.
  static DW_INLINE void fill_blk(const Plan<T>& pl, const T* xc, int64_t pr0, int64_t n, T* buf) {
    const Args<T>& a = *pl.a;
    const int64_t HW = a.H * a.W, Wp = pl.Wp;
    const int64_t p_lo = std::min(Wp, a.pL), p_hi = std::min(Wp, a.pL + a.W);
    const int64_t ncol = p_hi - p_lo;  // input columns [0, ncol) land at pixels pL + col
    for (int64_t k = 0; k < n; ++k) {
      T* row = buf + k * Wp * L;
      const int64_t ih = pr0 + k - a.pT;
      if (ih < 0 || ih >= a.H) {
        std::memset(row, 0, sizeof(T) * Wp * L);
        continue;
      }
      std::memset(row, 0, sizeof(T) * p_lo * L);
      const T* src = xc + ih * a.W;
      T* dst = row + p_lo * L;
      int64_t col = 0;
      for (; col + L <= ncol; col += L) {
        V r[L];
        for (int l = 0; l < L; ++l) r[l] = ld(src + l * HW + col);
        transpose(r);
        for (int m = 0; m < L; ++m) st(dst + (col + m) * L, r[m]);
      }
      for (; col < ncol; ++col)
        for (int l = 0; l < L; ++l) dst[col * L + l] = src[l * HW + col];
      std::memset(row + p_hi * L, 0, sizeof(T) * (Wp - p_hi) * L);
    }
  }

  // NV consecutive output pixels of one row for L channels. src: the buffer at the
  // row's first tap row and the first pixel's first tap; dst: channel c0's output at
  // that pixel (channels Ho*Wo apart).
  template <int NV>
  static DW_INLINE void tile_blk(const Plan<T>& pl, const T* src, const T* wb, const V& bias,
                                 T* dst) {
    const Args<T>& a = *pl.a;
    const int kH = static_cast<int>(a.kH), kW = static_cast<int>(a.kW);
    const int64_t ks = a.dH * pl.Wp * L, js = a.dW * L, vs = a.sW * L;
    V acc[NV];
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) acc[v] = bias;
    for (int i = 0; i < kH; ++i) {
      const T* rowi = src + i * ks;
      const T* wi = wb + i * kW * L;
      for (int j = 0; j < kW; ++j) {
        const V wv = ld(wi + j * L);
        const T* p = rowi + j * js;
#pragma GCC unroll 8
        for (int v = 0; v < NV; ++v) acc[v] += ld(p + v * vs) * wv;
      }
    }
    store_blk<NV>(pl, acc, dst);
  }

  // NV accumulated pixels x L channels -> L channel rows of NV outputs (L x L transposes).
  template <int NV>
  static DW_INLINE void store_blk(const Plan<T>& pl, const V* acc, T* dst) {
    const Args<T>& a = *pl.a;
    constexpr int G = (NV + L - 1) / L;
    V r[G * L];
#pragma GCC unroll 8
    for (int v = 0; v < G * L; ++v) r[v] = v < NV ? acc[v] : V{};
    const int64_t cs = a.Ho * a.Wo;
#pragma GCC unroll 4
    for (int g = 0; g < G; ++g) {
      transpose(r + g * L);
      constexpr int last = NV - (G - 1) * L;
      const int cnt = g < G - 1 ? L : last;
      for (int l = 0; l < L; ++l) {
        if (cnt == L)
          st(dst + l * cs + g * L, r[g * L + l]);
        else
          std::memcpy(dst + l * cs + g * L, &r[g * L + l], sizeof(T) * cnt);
      }
    }
  }

  // Column-reuse tile (x86 AVX2 / AVX-512 builds; column dilation 1, column stride S =
  // 1 or 2): the same NO x L outputs as tile_blk<NO>, but per kernel row the taps run in
  // groups of up to kGroup columns whose weight vectors stay in registers, and each
  // buffered pixel is loaded once per group and fed to every output pixel of the tile
  // that reads it with one of those taps: NO + g - 1 input loads for NO * g FMAs where
  // tile_blk loads one input per FMA (at k = 7 its loads, not the FMAs, were the limit).
  // Each output still sums its taps in (i, j) order, so results equal tile_blk's.
  // Unrolled through index packs rather than loops: GCC's unroll pragmas left the larger
  // AVX-512 groups as partial loops with the accumulators spilled.
  template <int NO, int S, int Q, int J>
  static DW_INLINE void tap_fma(const V& x, const V* wv, V* acc) {
    constexpr int d = Q - J;  // output o reads pixel o*S + J
    if constexpr (d >= 0 && d % S == 0 && d / S < NO) acc[d / S] += x * wv[J];
  }
  template <int NO, int S, int Q, int... J>
  static DW_INLINE void pixel_fmas(const T* p, const V* wv, V* acc,
                                   std::integer_sequence<int, J...>) {
    const V x = ld(p + Q * L);
    (tap_fma<NO, S, Q, J>(x, wv, acc), ...);
  }
  template <int NO, int S, int GS, int... Q>
  static DW_INLINE void group_pixels(const T* p, const V* wv, V* acc,
                                     std::integer_sequence<int, Q...>) {
    (pixel_fmas<NO, S, Q>(p, wv, acc, std::make_integer_sequence<int, GS>{}), ...);
  }
  template <int NO, int S, int GS>
  static DW_INLINE void taps_group(const T* p, const T* w, V* acc) {
    V wv[GS];
#pragma GCC unroll 16
    for (int j = 0; j < GS; ++j) wv[j] = ld(w + j * L);
    // (NO - 1) * S + GS pixels the group reads
    group_pixels<NO, S, GS>(p, wv, acc, std::make_integer_sequence<int, (NO - 1) * S + GS>{});
  }

  // Taps per group: as even as the register budget allows (k = 9 on AVX-512: 5 + 4, not
  // 8 + 1). Computed once per unit: an integer division per tile showed in profiles.
  static DW_INLINE int group_size(int kW) {
    const int ng = (kW + kGroup - 1) / kGroup;
    return (kW + ng - 1) / ng;
  }

  template <int NO, int S>
  static DW_INLINE void tile_blk_reuse(const Plan<T>& pl, const T* src, const T* wb,
                                       const V& bias, T* dst, int gs) {
    const Args<T>& a = *pl.a;
    const int kH = static_cast<int>(a.kH), kW = static_cast<int>(a.kW);
    const int64_t ks = a.dH * pl.Wp * L;
    V acc[NO];
#pragma GCC unroll 16
    for (int v = 0; v < NO; ++v) acc[v] = bias;
    for (int i = 0; i < kH; ++i) {
      const T* rowi = src + i * ks;
      const T* wi = wb + i * kW * L;
      for (int j0 = 0; j0 < kW; j0 += gs) {
        const T* p = rowi + j0 * L;
        const T* w = wi + j0 * L;
        switch (std::min(gs, kW - j0)) {
          case 1: taps_group<NO, S, 1>(p, w, acc); break;
          case 2: taps_group<NO, S, 2>(p, w, acc); break;
          case 3: taps_group<NO, S, 3>(p, w, acc); break;
          case 4: taps_group<NO, S, 4>(p, w, acc); break;
          default:
            if constexpr (kGroup >= 5) {
              switch (std::min(gs, kW - j0)) {
                case 5: taps_group<NO, S, 5>(p, w, acc); break;
                case 6: taps_group<NO, S, 6>(p, w, acc); break;
                case 7: taps_group<NO, S, 7>(p, w, acc); break;
                default: taps_group<NO, S, 8>(p, w, acc); break;
              }
            }
            break;
        }
      }
    }
    store_blk<NO>(pl, acc, dst);
  }

  static DW_INLINE void unit_blk(const Plan<T>& pl, int64_t u, T* buf) {
    const Args<T>& a = *pl.a;
    const int64_t blk = u % pl.nblkB, bc = u / pl.nblkB;
    const int64_t b = bc / pl.nbc, c0 = (bc % pl.nbc) * L;
    const int64_t oh0 = blk * pl.rpbB, oh1 = std::min(a.Ho, oh0 + pl.rpbB);
    const T* wb = pl.wblk + (c0 / L) * a.kH * a.kW * L;
    const V bias = a.bias ? ld(a.bias + c0) : V{};
    const int64_t plane0 = b * a.C + c0;
    fill_blk(pl, a.x + plane0 * a.H * a.W, oh0 * a.sH, (oh1 - 1 - oh0) * a.sH + pl.halo, buf);
    T* out = a.out + plane0 * a.Ho * a.Wo;
    const int64_t Wo = a.Wo, ps = a.sW * L;
    [[maybe_unused]] const int gs = group_size(static_cast<int>(a.kW));
    // Column blocks of kColBlock output pixels, all rows of the block each: the rows
    // one output row's taps read (kH rows of the block's width) then stay in L1, where
    // full-width rows would not (7 rows of a 128-pixel plane are already 30 KB).
    for (int64_t cb0 = 0; cb0 < Wo; cb0 += kColBlock) {
      const int64_t cb1 = std::min(Wo, cb0 + kColBlock);
      for (int64_t oh = oh0; oh < oh1; ++oh) {
        const T* src = buf + (oh - oh0) * a.sH * pl.Wp * L;
        T* dst = out + oh * Wo;
        int64_t ow = cb0;
        if constexpr (kReuse) {
          if (a.dW == 1 && a.sW == 1)
            for (; ow + kNO <= cb1; ow += kNO)
              tile_blk_reuse<kNO, 1>(pl, src + ow * ps, wb, bias, dst + ow, gs);
          else if (a.dW == 1 && a.sW == 2)
            for (; ow + kNO <= cb1; ow += kNO)
              tile_blk_reuse<kNO, 2>(pl, src + ow * ps, wb, bias, dst + ow, gs);
        }
        for (; ow + 8 <= cb1; ow += 8) tile_blk<8>(pl, src + ow * ps, wb, bias, dst + ow);
        switch (cb1 - ow) {
          case 7: tile_blk<7>(pl, src + ow * ps, wb, bias, dst + ow); break;
          case 6: tile_blk<6>(pl, src + ow * ps, wb, bias, dst + ow); break;
          case 5: tile_blk<5>(pl, src + ow * ps, wb, bias, dst + ow); break;
          case 4: tile_blk<4>(pl, src + ow * ps, wb, bias, dst + ow); break;
          case 3: tile_blk<3>(pl, src + ow * ps, wb, bias, dst + ow); break;
          case 2: tile_blk<2>(pl, src + ow * ps, wb, bias, dst + ow); break;
          case 1: tile_blk<1>(pl, src + ow * ps, wb, bias, dst + ow); break;
          default: break;
        }
        if (a.act != Act::None)
          for (int l = 0; l < L; ++l) act_span(dst + l * a.Ho * Wo + cb0, cb1 - cb0, a.act);
      }
    }
  }

  // ---- row path -------------------------------------------------------------------
  // R output rows x NV vectors starting at buffer position src (the tile's first
  // output row, first column, tap (0, 0)); rs / ks: buffer elements between output rows /
  // kernel rows. Writes to dst (row stride Wo); the last vector keeps `nlast` lanes.
  template <int R, int NV, bool S1>
  static DW_INLINE void tile(const Plan<T>& pl, const T* src, int64_t rs, int64_t ks,
                             const T* wk, T bias, T* dst, int nlast) {
    const Args<T>& a = *pl.a;
    const int kH = static_cast<int>(a.kH), kW = static_cast<int>(a.kW);
    const int64_t dW = a.dW;
    V acc[R][NV];
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) acc[r][v] = splat<V>(bias);
    for (int i = 0; i < kH; ++i) {
      const T* rowi = src + i * ks;
      const T* wi = wk + i * kW;
      for (int j = 0; j < kW; ++j) {
        const T* p = rowi + (S1 ? j * dW : pl.off[j]);
        const V wv = splat<V>(wi[j]);
#pragma GCC unroll 8
        for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
          for (int v = 0; v < NV; ++v) acc[r][v] += ld(p + r * rs + v * L) * wv;
      }
    }
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
      T* o = dst + r * a.Wo;
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) {
        if (v < NV - 1 || nlast == L)
          st(o + v * L, acc[r][v]);
        else
          std::memcpy(o + v * L, &acc[r][v], sizeof(T) * nlast);
      }
    }
  }

  // Output rows [oh, oh + R) of one block: all column tiles.
  template <int R, bool S1>
  static DW_INLINE void rows(const Plan<T>& pl, const T* src, const T* wk, T bias, T* dst) {
    const Args<T>& a = *pl.a;
    const int64_t rs = a.sH * pl.rowlen, ks = a.dH * pl.rowlen;
    const int64_t nvec = pl.nvec;
    int64_t v0 = 0;
    for (; v0 + 4 <= nvec; v0 += 4)
      tile<R, 4, S1>(pl, src + v0 * L, rs, ks, wk, bias, dst + v0 * L, v0 + 4 == nvec ? pl.nlast : L);
    switch (nvec - v0) {
      case 3: tile<R, 3, S1>(pl, src + v0 * L, rs, ks, wk, bias, dst + v0 * L, pl.nlast); break;
      case 2: tile<R, 2, S1>(pl, src + v0 * L, rs, ks, wk, bias, dst + v0 * L, pl.nlast); break;
      case 1: tile<R, 1, S1>(pl, src + v0 * L, rs, ks, wk, bias, dst + v0 * L, pl.nlast); break;
      default: break;
    }
  }

  // Buffered rows: padded rows [pr0, pr0 + n) of plane xp, row k at buf + k*rowlen,
  // phase p of a row at + p*Wq.
  static DW_INLINE void fill(const Plan<T>& pl, const T* xp, int64_t pr0, int64_t n, T* buf) {
    const Args<T>& a = *pl.a;
    const int64_t s = a.sW, Wq = pl.Wq;
    for (int64_t k = 0; k < n; ++k) {
      T* row = buf + k * pl.rowlen;
      const int64_t ih = pr0 + k - a.pT;
      if (ih < 0 || ih >= a.H) {
        std::memset(row, 0, sizeof(T) * pl.rowlen);
        continue;
      }
      const T* in = xp + ih * a.W;
      for (int64_t p = 0; p < s; ++p) {
        T* ph = row + p * Wq;
        // phase index q holds input column q*s + p - pL; valid for q in [q0, q1).
        const int64_t first = a.pL - p;  // q*s >= first
        const int64_t q0 = std::min(Wq, first > 0 ? (first + s - 1) / s : 0);
        const int64_t last = a.W - 1 + a.pL - p;  // q*s <= last
        const int64_t q1 = std::max(q0, std::min(Wq, last >= 0 ? last / s + 1 : 0));
        std::memset(ph, 0, sizeof(T) * q0);
        if (q1 == q0) {
        } else if (s == 1) {
          std::memcpy(ph + q0, in + (q0 - a.pL), sizeof(T) * (q1 - q0));
        } else {
          const T* src = in + (q0 * s + p - a.pL);
          for (int64_t q = q0; q < q1; ++q, src += s) ph[q] = *src;
        }
        std::memset(ph + q1, 0, sizeof(T) * (Wq - q1));
      }
    }
  }

  template <bool S1>
  static DW_INLINE void unit(const Plan<T>& pl, int64_t u, T* buf) {
    const Args<T>& a = *pl.a;
    const int64_t blk = u % pl.nblk, bc = u / pl.nblk;
    const int64_t nc = a.C - pl.c_lo;
    const int64_t c = pl.c_lo + bc % nc, plane = (bc / nc) * a.C + c;
    const int64_t oh0 = blk * pl.rpb, oh1 = std::min(a.Ho, oh0 + pl.rpb);
    const T* wk = a.w + c * a.kH * a.kW;
    const T bias = a.bias ? a.bias[c] : T(0);
    fill(pl, a.x + plane * a.H * a.W, oh0 * a.sH, (oh1 - 1 - oh0) * a.sH + pl.halo, buf);
    T* out = a.out + plane * a.Ho * a.Wo;
    // Two rows per tile (four for one-vector rows) for more independent accumulators;
    // at most 8, or the runtime row strides' address registers push them to the stack.
    int64_t oh = oh0;
    const int64_t step = a.sH * pl.rowlen;
    auto src_of = [&](int64_t h) { return buf + (h - oh0) * step; };
    if (pl.nvec == 1)
      for (; oh + 4 <= oh1; oh += 4) rows<4, S1>(pl, src_of(oh), wk, bias, out + oh * a.Wo);
    else
      for (; oh + 2 <= oh1; oh += 2) rows<2, S1>(pl, src_of(oh), wk, bias, out + oh * a.Wo);
    for (; oh < oh1; ++oh) rows<1, S1>(pl, src_of(oh), wk, bias, out + oh * a.Wo);
    if (a.act != Act::None)
      for (oh = oh0; oh < oh1; ++oh) act_span(out + oh * a.Wo, a.Wo, a.act);
  }

  // part 0: channel-blocked units [u0, u1); part 1: row units.
  static DW_INLINE void run(const Plan<T>& pl, int part, int64_t u0, int64_t u1, T* buf) {
    if (part == 0) {
      if constexpr (L > 1)
        for (int64_t u = u0; u < u1; ++u) unit_blk(pl, u, buf);
    } else if (pl.a->sW == 1) {
      for (int64_t u = u0; u < u1; ++u) unit<true>(pl, u, buf);
    } else {
      for (int64_t u = u0; u < u1; ++u) unit<false>(pl, u, buf);
    }
  }
};

template <class T>
using RunFn = void (*)(const Plan<T>&, int, int64_t, int64_t, T*);

// Per-ISA entry points: the target attribute sits on these only; the kernel below them
// is always-inline and so compiled for that ISA. The plan is built for the lane count
// Pick reports with the function.
#if defined(DW_VECTOR_EXT)
void run_f32_base(const Plan<float>& p, int part, int64_t u0, int64_t u1, float* b) {
  Kernel<float, 4>::run(p, part, u0, u1, b);
}
void run_f64_base(const Plan<double>& p, int part, int64_t u0, int64_t u1, double* b) {
  Kernel<double, 2>::run(p, part, u0, u1, b);
}
#else
void run_f32_base(const Plan<float>& p, int part, int64_t u0, int64_t u1, float* b) {
  Kernel<float, 1>::run(p, part, u0, u1, b);
}
void run_f64_base(const Plan<double>& p, int part, int64_t u0, int64_t u1, double* b) {
  Kernel<double, 1>::run(p, part, u0, u1, b);
}
#endif
#if defined(EFFSEG_X86_DISPATCH)
__attribute__((target("avx2,fma"))) void run_f32_avx2(const Plan<float>& p, int part, int64_t u0,
                                                      int64_t u1, float* b) {
  Kernel<float, 8>::run(p, part, u0, u1, b);
}
__attribute__((target("avx2,fma"))) void run_f64_avx2(const Plan<double>& p, int part, int64_t u0,
                                                      int64_t u1, double* b) {
  Kernel<double, 4>::run(p, part, u0, u1, b);
}
// AVX-512: 16 float / 8 double lanes, so 16 channels per block, and 32 registers for
// the column-reuse tile.
__attribute__((target("avx512f,avx2,fma"))) void run_f32_avx512(const Plan<float>& p, int part,
                                                                int64_t u0, int64_t u1, float* b) {
  Kernel<float, 16>::run(p, part, u0, u1, b);
}
__attribute__((target("avx512f,avx2,fma"))) void run_f64_avx512(const Plan<double>& p, int part,
                                                                int64_t u0, int64_t u1, double* b) {
  Kernel<double, 8>::run(p, part, u0, u1, b);
}
#endif

// Fewest taps for which the AVX-512 build is picked over the AVX2 one: its 16 x 16
// transposes in and out cost more per pixel than the 8 x 8 ones, which small kernels
// do not win back (single-thread CPU time on a Xeon: k = 3 ~15-25% slower than the
// AVX2 build, k = 4 even, k = 5 ~10% and k = 7 ~35% faster).
constexpr int64_t kWideMinTaps = 20;

// fn(lanes, wide): the build to run and its lane count; wide: the AVX-512 one may be
// taken (the kernel has at least kWideMinTaps taps).
template <class T>
struct Pick;
template <>
struct Pick<float> {
  static RunFn<float> fn(int& lanes, bool wide) {
#if defined(EFFSEG_X86_DISPATCH)
    if (wide && isa() >= Isa::AVX512) {
      lanes = 16;
      return run_f32_avx512;
    }
    if (use_avx2()) {
      lanes = 8;
      return run_f32_avx2;
    }
#endif
#if defined(DW_VECTOR_EXT)
    lanes = 4;
#else
    lanes = 1;
#endif
    return run_f32_base;
  }
};
template <>
struct Pick<double> {
  static RunFn<double> fn(int& lanes, bool wide) {
#if defined(EFFSEG_X86_DISPATCH)
    if (wide && isa() >= Isa::AVX512) {
      lanes = 8;
      return run_f64_avx512;
    }
    if (use_avx2()) {
      lanes = 4;
      return run_f64_avx2;
    }
#endif
#if defined(DW_VECTOR_EXT)
    lanes = 2;
#else
    lanes = 1;
#endif
    return run_f64_base;
  }
};

[[noreturn]] void bad(const std::string& msg) {
  throw std::invalid_argument("depthwise_conv2d: " + msg);
}

// Buffers the kernel reads whole vectors from start on a 64-byte boundary: std::vector
// only guarantees 16 bytes, and then every 64-byte (AVX-512) access to a buffered pixel
// or a weight vector straddled two cache lines (and half of the 32-byte ones did); the
// AVX-512 build spent about twice the AVX2 one's time outside its FMAs until aligned.
constexpr size_t kAlign = 64;
template <class T>
T* align_up(T* p) {
  const auto u = reinterpret_cast<uintptr_t>(p);
  return reinterpret_cast<T*>((u + kAlign - 1) & ~uintptr_t{kAlign - 1});
}

// A per-thread scratch buffer kept across calls (OpenMP's threads persist): no
// allocation, and so no page faults, per call. 64-byte aligned.
template <class T>
T* scratch(size_t n) {
  thread_local std::vector<T> buf;
  if (buf.size() < n + kAlign / sizeof(T)) buf.resize(n + kAlign / sizeof(T));
  return align_up(buf.data());
}


}  // namespace

template <class T>
void validate(const Args<T>& a) {
  if (a.B < 0 || a.C < 1 || a.H < 1 || a.W < 1) bad("need B >= 0 and C, H, W >= 1");
  if (a.kH < 1 || a.kW < 1 || a.kH > kMaxKernel || a.kW > kMaxKernel)
    bad("kernel sides must be in [1, " + std::to_string(kMaxKernel) + "]");
  if (a.sH < 1 || a.sW < 1) bad("strides must be >= 1");
  if (a.dH < 1 || a.dW < 1) bad("dilations must be >= 1");
  if (a.pT < 0 || a.pL < 0) bad("padding must be >= 0");
  if (a.Ho < 0 || a.Wo < 0) bad("output sizes must be >= 0");
  if (a.B * a.Ho * a.Wo == 0) return;
  if (!a.x || !a.w || !a.out) bad("x, weight and out are required");
}

namespace {

// Output rows per block: the block's buffered input (row_bytes per padded row) within
// block_bytes, cut further so that `planes` planes give >= 4 units per thread, and
// rounded to whole 8-row tiles.
int64_t rows_per_block(int64_t Ho, int64_t sH, int64_t halo, int64_t row_bytes, int64_t planes,
                       int nth, int64_t block_bytes = kBlockBytes) {
  int64_t rpb = std::max<int64_t>(1, (block_bytes / std::max<int64_t>(row_bytes, 1) - halo) / sH + 1);
  if (nth > 1 && planes < 4 * nth) {
    const int64_t want_blocks = (4 * nth + planes - 1) / planes;
    rpb = std::min(rpb, (Ho + want_blocks - 1) / want_blocks);
  }
  return std::min(Ho, std::max<int64_t>(8, (rpb + 7) / 8 * 8));
}

}  // namespace

template <class T>
void forward(const Args<T>& a) {
  validate(a);
  const int64_t planes = a.B * a.C;
  if (planes * a.Ho * a.Wo == 0) return;
  Plan<T> pl;
  pl.a = &a;
  pl.halo = (a.kH - 1) * a.dH + 1;
  int lanes = 1;
  const RunFn<T> fn = Pick<T>::fn(lanes, a.kH * a.kW >= kWideMinTaps);
  int nth = team_threads();
  if (planes * a.Ho * a.Wo * a.kH * a.kW < (int64_t{1} << 17)) nth = 1;

  // Channel-blocked path for the first C - C mod L channels.
  std::vector<T> wblk;
  pl.nbc = lanes > 1 ? a.C / lanes : 0;
  int64_t unitsB = 0, bufB = 0;
  if (pl.nbc > 0) {
    const int64_t K = a.kH * a.kW;
    wblk.resize(static_cast<size_t>(pl.nbc * K * lanes) + kAlign / sizeof(T));
    T* wa = align_up(wblk.data());
    for (int64_t cb = 0; cb < pl.nbc; ++cb)
      for (int64_t k = 0; k < K; ++k)
        for (int64_t l = 0; l < lanes; ++l)
          wa[(cb * K + k) * lanes + l] = a.w[(cb * lanes + l) * K + k];
    pl.wblk = wa;
    pl.Wp = (a.Wo - 1) * a.sW + (a.kW - 1) * a.dW + 1;
    const int64_t row_bytes = pl.Wp * lanes * static_cast<int64_t>(sizeof(T));
    pl.rpbB = rows_per_block(a.Ho, a.sH, pl.halo, row_bytes, a.B * pl.nbc, nth,
                             lanes * sizeof(T) >= 64 ? kBlockBytesWide : kBlockBytes);
    pl.nblkB = (a.Ho + pl.rpbB - 1) / pl.rpbB;
    unitsB = a.B * pl.nbc * pl.nblkB;
    bufB = ((pl.rpbB - 1) * a.sH + pl.halo) * pl.Wp * lanes;
  }

  // Row path for the rest.
  pl.c_lo = pl.nbc * lanes;
  int64_t unitsR = 0, bufR = 0;
  if (pl.c_lo < a.C) {
    pl.nvec = (a.Wo + lanes - 1) / lanes;
    pl.nlast = static_cast<int>(a.Wo - (pl.nvec - 1) * lanes);
    // Tiles read up to nvec*lanes columns past each tap's start: the phases are sized
    // so that every such read stays inside the row (and reads zeros past the input).
    pl.Wq = ((a.kW - 1) * a.dW) / a.sW + pl.nvec * lanes;
    pl.rowlen = a.sW * pl.Wq;
    for (int64_t j = 0; j < a.kW; ++j)
      pl.off[j] = ((j * a.dW) % a.sW) * pl.Wq + (j * a.dW) / a.sW;
    const int64_t row_bytes = pl.rowlen * static_cast<int64_t>(sizeof(T));
    const int64_t nrow_planes = a.B * (a.C - pl.c_lo);
    pl.rpb = rows_per_block(a.Ho, a.sH, pl.halo, row_bytes, nrow_planes + a.B * pl.nbc * lanes, nth);
    pl.nblk = (a.Ho + pl.rpb - 1) / pl.rpb;
    unitsR = nrow_planes * pl.nblk;
    bufR = ((pl.rpb - 1) * a.sH + pl.halo) * pl.rowlen;
  }
  const size_t buf_elems = static_cast<size_t>(std::max(bufB, bufR));
  if (nth > unitsB + unitsR) nth = static_cast<int>(unitsB + unitsR);

#ifdef EFFSEG_OPENMP
  if (nth > 1) {
#pragma omp parallel num_threads(nth)
    {
      const int64_t t = omp_get_thread_num(), n = omp_get_num_threads();
      T* buf = scratch<T>(buf_elems);
      if (unitsB) fn(pl, 0, unitsB * t / n, unitsB * (t + 1) / n, buf);
      if (unitsR) fn(pl, 1, unitsR * t / n, unitsR * (t + 1) / n, buf);
    }
    return;
  }
#endif
  T* buf = scratch<T>(buf_elems);
  if (unitsB) fn(pl, 0, 0, unitsB, buf);
  if (unitsR) fn(pl, 1, 0, unitsR, buf);
}

// The widest build a call can take (kernels under kWideMinTaps taps run the AVX2 one).
const char* simd_level() {
#if defined(EFFSEG_X86_DISPATCH)
  if (isa() >= Isa::AVX512) return isa_name(Isa::AVX512);
#endif
  return use_avx2() ? "avx2+fma" : baseline_name();
}

template void validate<float>(const Args<float>&);
template void validate<double>(const Args<double>&);
template void forward<float>(const Args<float>&);
template void forward<double>(const Args<double>&);

}  // namespace depthwise_conv2d
}  // namespace effseg
