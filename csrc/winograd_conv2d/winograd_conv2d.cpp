// Winograd F(4x4, 3x3) transforms, CPU. See winograd_conv2d.h for the layouts.
//
// Lavin & Gray (CVPR 2016), correlation form with the interpolation points
// 0, +-1, +-2 and infinity:
//   B^T = [[4, 0,-5, 0, 1, 0],      A^T = [[1, 1, 1, 1, 1, 0],
//          [0,-4,-4, 1, 1, 0],             [0, 1,-1, 2,-2, 0],
//          [0, 4,-4,-1, 1, 0],             [0, 1, 1, 4, 4, 0],
//          [0,-2,-1, 2, 1, 0],             [0, 1,-1, 8,-8, 1]]
//          [0, 2,-1,-2, 1, 0],
//          [0, 4, 0,-5, 0, 1]]
// (G, for the weights, is applied once in Python: effseg/ops/winograd_conv2d.py.)
//
// Both transforms are separable, and both work on a segment of consecutive tiles of
// one tile row at a time, so every inner loop runs along the tiles with contiguous
// loads and stores, which the compiler vectorises:
//   input:  the 1-D transform down the 6 input rows (contiguous along the row), then
//           the rows are split into their 4 column phases (column 4l + s -> phase s,
//           entry l), and the 1-D transform across reads phases 0..3 at l and phases
//           0, 1 at l + 1: the 6 columns of tile l, each a contiguous run over l. The
//           36 results go to V as 36 runs of consecutive tiles.
//   output: the 1-D transform across the 6 columns of m (36 runs over the tiles), then
//           down, written 4 values per tile per output row (interleaved stores).
// The transforms are memory-bound: the chunking in Python keeps V and M in cache
// between them and the GEMMs.
//
// Compiled for the x86-64 baseline, AVX2+FMA and AVX-512 and picked at run time through
// common/isa.h's detection (EFFSEG_SIMD caps it); double runs the same code.
#include "winograd_conv2d/winograd_conv2d.h"

#include <algorithm>
#include <atomic>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "common/isa.h"
#include "common/threads.h"

#ifdef EFFSEG_OPENMP
#include <omp.h>
#endif

#if defined(__GNUC__)
#define WG_INLINE inline __attribute__((always_inline))
#define WG_RESTRICT __restrict__
#else
#define WG_INLINE inline
#define WG_RESTRICT
#endif

namespace effseg {
namespace winograd_conv2d {
namespace {

[[noreturn]] void bad(const std::string& msg) {
  throw std::invalid_argument("winograd_conv2d: " + msg);
}

// Tile-channel transforms below which one thread does the work (a parallel region
// costs microseconds, about a hundred tiles' worth).
constexpr int64_t kSerialWork = 2048;

// A run of consecutive tiles within one tile row.
struct Segment {
  int64_t n, ty, tx, nt, q;  // image, tile row, first tile column, tiles, offset in chunk
};

std::vector<Segment> segments(int64_t p0, int64_t p1, int64_t tiles_h, int64_t tiles_w) {
  std::vector<Segment> out;
  for (int64_t p = p0; p < p1;) {
    const int64_t row = p / tiles_w, tx = p % tiles_w;
    const int64_t nt = std::min(tiles_w - tx, p1 - p);
    out.push_back({row / tiles_h, row % tiles_h, tx, nt, p - p0});
    p += nt;
  }
  return out;
}

// Per-thread scratch kept across calls (OpenMP's threads persist): no allocation, and
// so no page faults, per call.
template <class T>
T* scratch(size_t n) {
  thread_local std::vector<T> buf;
  if (buf.size() < n) buf.resize(n);
  return buf.data();
}

template <class T>
struct InArgs {
  const T* x;
  int64_t N, C, H, W, pad_h, pad_w, tiles_h, tiles_w, p0, p1;
  T* V;
};

template <class T>
struct OutArgs {
  const T* M;
  int64_t K, p0, p1, tiles_h, tiles_w;
  const T* bias;
  bool relu;
  T* Y;
  int64_t N, Ho, Wo;
};

// Scratch per thread for a segment of up to nt tiles: input a zero row + 6 transformed
// rows of 4(nt+1) + 6 x 4 phases of nt+1 (the output needs less).
inline size_t scratch_elems(int64_t nt) { return static_cast<size_t>(52 * (nt + 1)); }

// B^T down the columns of 6 rows: t_i[w] = sum_r B^T[i][r] d_r[w]. Every pointer is
// a restrict parameter: GCC does not vectorise with more than 10 run-time alias checks.
template <class T>
WG_INLINE void columns_bt(const T* WG_RESTRICT d0, const T* WG_RESTRICT d1,
                          const T* WG_RESTRICT d2, const T* WG_RESTRICT d3,
                          const T* WG_RESTRICT d4, const T* WG_RESTRICT d5, T* WG_RESTRICT t0,
                          T* WG_RESTRICT t1, T* WG_RESTRICT t2, T* WG_RESTRICT t3,
                          T* WG_RESTRICT t4, T* WG_RESTRICT t5, int64_t width) {
  for (int64_t w = 0; w < width; ++w) {
    const T e1 = d1[w], e2 = d2[w], e3 = d3[w], e4 = d4[w];
    const T p12 = e1 + e2, m12 = e1 - e2, m42 = e4 - e2, m31 = e3 - e1;
    t0[w] = T(4) * d0[w] - T(5) * e2 + e4;
    t1[w] = (e3 + e4) - T(4) * p12;
    t2[w] = (e4 - e3) + T(4) * m12;
    t3[w] = m42 + T(2) * m31;
    t4[w] = m42 - T(2) * m31;
    t5[w] = T(4) * e1 - T(5) * e3 + d5[w];
  }
}

// B^T across one row of n tiles given as its column phases (column 4l + s of the row
// is f_s[l]; tile l's columns are f0..f3 at l and f0, f1 at l + 1).
template <class T>
WG_INLINE void rows_bt(const T* WG_RESTRICT f0, const T* WG_RESTRICT f1, const T* WG_RESTRICT f2,
                       const T* WG_RESTRICT f3, T* WG_RESTRICT v0, T* WG_RESTRICT v1,
                       T* WG_RESTRICT v2, T* WG_RESTRICT v3, T* WG_RESTRICT v4,
                       T* WG_RESTRICT v5, int64_t n) {
  for (int64_t l = 0; l < n; ++l) {
    const T e0 = f0[l], e1 = f1[l], e2 = f2[l], e3 = f3[l], e4 = f0[l + 1], e5 = f1[l + 1];
    const T p12 = e1 + e2, m12 = e1 - e2, m42 = e4 - e2, m31 = e3 - e1;
    v0[l] = T(4) * e0 - T(5) * e2 + e4;
    v1[l] = (e3 + e4) - T(4) * p12;
    v2[l] = (e4 - e3) + T(4) * m12;
    v3[l] = m42 + T(2) * m31;
    v4[l] = m42 - T(2) * m31;
    v5[l] = T(4) * e1 - T(5) * e3 + e5;
  }
}

// Splits a row into its 4 column phases: f_s[l] = src[4l + s], l < n.
template <class T>
WG_INLINE void deinterleave4(const T* WG_RESTRICT src, T* WG_RESTRICT f0, T* WG_RESTRICT f1,
                             T* WG_RESTRICT f2, T* WG_RESTRICT f3, int64_t n) {
  for (int64_t l = 0; l < n; ++l) {
    f0[l] = src[4 * l];
    f1[l] = src[4 * l + 1];
    f2[l] = src[4 * l + 2];
    f3[l] = src[4 * l + 3];
  }
}

// A^T across the 6 columns of m for n tiles: s_b[l] = sum_j A^T[b][j] m_j[l].
template <class T>
WG_INLINE void rows_at(const T* WG_RESTRICT m0, const T* WG_RESTRICT m1, const T* WG_RESTRICT m2,
                       const T* WG_RESTRICT m3, const T* WG_RESTRICT m4, const T* WG_RESTRICT m5,
                       T* WG_RESTRICT s0, T* WG_RESTRICT s1, T* WG_RESTRICT s2,
                       T* WG_RESTRICT s3, int64_t n) {
  for (int64_t l = 0; l < n; ++l) {
    const T p12 = m1[l] + m2[l], d12 = m1[l] - m2[l];
    const T p34 = m3[l] + m4[l], d34 = m3[l] - m4[l];
    s0[l] = m0[l] + p12 + p34;
    s1[l] = d12 + T(2) * d34;
    s2[l] = p12 + T(4) * p34;
    s3[l] = d12 + T(8) * d34 + m5[l];
  }
}

// One channel's segment: V[(i*6+j)*plane + l] for tiles l < nt. xc: the channel's plane.
template <class T>
WG_INLINE void input_segment(const InArgs<T>& a, const T* WG_RESTRICT xc, const Segment& s,
                             T* WG_RESTRICT Vq, int64_t plane, T* WG_RESTRICT buf) {
  const int64_t L = s.nt + 1, width = 4 * L;
  const int64_t r0 = 4 * s.ty - a.pad_h, c0 = 4 * s.tx - a.pad_w;
  T* WG_RESTRICT zero = buf;               // a zero row, for the rows outside the image
  T* WG_RESTRICT tl = buf + width;         // the 6 rows after B^T down the columns
  T* WG_RESTRICT ph = buf + 7 * width;     // tl split into phases: ph[(i*4+s)*L + l]
  // Columns c0 + [0, width) of the 6 rows; width reaches 2 columns past the segment's
  // last tile window, which the phases need for a whole last entry (the extra values
  // are never used). Only [lo, hi) lies inside the image, the same for every row: the
  // column transform reads x there directly and writes zeros outside.
  const int64_t lo = std::clamp<int64_t>(-c0, 0, width);
  const int64_t hi = std::clamp<int64_t>(a.W - c0, lo, width);
  const T* rp[6];
  bool zero_set = false;
  for (int r = 0; r < 6; ++r) {
    const int64_t row = r0 + r;
    if (row < 0 || row >= a.H) {
      if (!zero_set) std::memset(zero, 0, sizeof(T) * (hi - lo));
      zero_set = true;
      rp[r] = zero;
    } else {
      rp[r] = xc + row * a.W + c0 + lo;
    }
  }
  const int64_t n = hi - lo;
  columns_bt<T>(rp[0], rp[1], rp[2], rp[3], rp[4], rp[5], tl + lo, tl + width + lo,
                tl + 2 * width + lo, tl + 3 * width + lo, tl + 4 * width + lo,
                tl + 5 * width + lo, n);
  if (n < width) {
    for (int i = 0; i < 6; ++i) {
      std::memset(tl + i * width, 0, sizeof(T) * lo);
      std::memset(tl + i * width + hi, 0, sizeof(T) * (width - hi));
    }
  }
  for (int i = 0; i < 6; ++i) {
    T* f = ph + i * 4 * L;
    deinterleave4<T>(tl + i * width, f, f + L, f + 2 * L, f + 3 * L, L);
  }
  for (int i = 0; i < 6; ++i) {
    const T* f = ph + i * 4 * L;
    T* v = Vq + i * 6 * plane;
    rows_bt<T>(f, f + L, f + 2 * L, f + 3 * L, v, v + plane, v + 2 * plane, v + 3 * plane,
               v + 4 * plane, v + 5 * plane, s.nt);
  }
}

template <class T>
WG_INLINE void input_run(const InArgs<T>& a, const std::vector<Segment>& segs, int64_t c_lo,
                         int64_t c_hi, T* buf) {
  const int64_t Pc = a.p1 - a.p0, plane = a.C * Pc, HW = a.H * a.W;
  for (int64_t c = c_lo; c < c_hi; ++c)
    for (const Segment& s : segs)
      input_segment<T>(a, a.x + (s.n * a.C + c) * HW, s, a.V + c * Pc + s.q, plane, buf);
}

// Exponent bits all set: Inf or NaN. An integer test, so the loops around it still
// vectorise (a float reduction would need -ffast-math's reassociation).
template <class T> struct ExpBits;
template <> struct ExpBits<float> { using U = uint32_t; static constexpr U mask = 0x7f800000u; };
template <> struct ExpBits<double> { using U = uint64_t; static constexpr U mask = 0x7ff0000000000000ull; };
template <class T>
WG_INLINE unsigned nonfinite(T v) {
  typename ExpBits<T>::U u;
  std::memcpy(&u, &v, sizeof u);
  return (u & ExpBits<T>::mask) == ExpBits<T>::mask;
}

// Output row R of the segment's tiles: A^T's row R down the 6 rows of S, + bias, relu,
// stored as 4 consecutive values per tile. Returns nonzero when a value before the
// activation is not finite: Winograd spreads one NaN / Inf over its whole tile (and can
// overflow where the exact result is finite), and ReLU would hide a NaN as 0, so the
// caller then recomputes the call by direct convolution.
template <class T, int R, bool Relu>
WG_INLINE unsigned output_row(const T* WG_RESTRICT S, int64_t nt, T bias, T* WG_RESTRICT dst) {
  constexpr T c3 = R == 0 ? 1 : R == 1 ? 2 : R == 2 ? 4 : 8;  // A^T[R][3]; [R][4] = +-c3
  unsigned bad = 0;
  for (int64_t l = 0; l < nt; ++l) {
    T y[4];
    for (int b = 0; b < 4; ++b) {
      const T s1 = S[(4 + b) * nt + l], s2 = S[(8 + b) * nt + l];
      const T s3 = S[(12 + b) * nt + l], s4 = S[(16 + b) * nt + l];
      T v;
      if constexpr (R % 2 == 0) v = (s1 + s2) + c3 * (s3 + s4);
      else v = (s1 - s2) + c3 * (s3 - s4);
      if constexpr (R == 0) v += S[b * nt + l];
      if constexpr (R == 3) v += S[(20 + b) * nt + l];
      y[b] = v + bias;
      bad |= nonfinite(y[b]);
    }
    for (int b = 0; b < 4; ++b) dst[4 * l + b] = Relu ? (y[b] > T(0) ? y[b] : T(0)) : y[b];
  }
  return bad;
}

// One output channel's segment. Mq: M at (channel k, the segment's first tile).
template <class T>
WG_INLINE unsigned output_segment(const OutArgs<T>& a, const T* WG_RESTRICT Mq, const Segment& s,
                                  int64_t plane, T bias, T* WG_RESTRICT Yk, T* WG_RESTRICT buf) {
  const int64_t nt = s.nt;
  T* WG_RESTRICT S = buf;                 // A^T across: S[(i*4+b)*nt + l]
  T* WG_RESTRICT row = buf + 24 * nt;     // one output row of the segment, 4*nt
  for (int i = 0; i < 6; ++i) {
    const T* m = Mq + i * 6 * plane;
    T* si = S + i * 4 * nt;
    rows_at<T>(m, m + plane, m + 2 * plane, m + 3 * plane, m + 4 * plane, m + 5 * plane, si,
               si + nt, si + 2 * nt, si + 3 * nt, nt);
  }
  const int64_t oy = 4 * s.ty, ox = 4 * s.tx;
  const int64_t cols = std::min<int64_t>(4 * nt, a.Wo - ox);
  const bool direct = cols == 4 * nt;
  const int rows = static_cast<int>(std::min<int64_t>(4, a.Ho - oy));
  unsigned bad = 0;
  for (int r = 0; r < rows; ++r) {
    T* dst = direct ? Yk + (oy + r) * a.Wo + ox : row;
    switch (r * 2 + (a.relu ? 1 : 0)) {
      case 0: bad |= output_row<T, 0, false>(S, nt, bias, dst); break;
      case 1: bad |= output_row<T, 0, true>(S, nt, bias, dst); break;
      case 2: bad |= output_row<T, 1, false>(S, nt, bias, dst); break;
      case 3: bad |= output_row<T, 1, true>(S, nt, bias, dst); break;
      case 4: bad |= output_row<T, 2, false>(S, nt, bias, dst); break;
      case 5: bad |= output_row<T, 2, true>(S, nt, bias, dst); break;
      case 6: bad |= output_row<T, 3, false>(S, nt, bias, dst); break;
      default: bad |= output_row<T, 3, true>(S, nt, bias, dst); break;
    }
    if (!direct) std::memcpy(Yk + (oy + r) * a.Wo + ox, row, sizeof(T) * cols);
  }
  return bad;
}

template <class T>
WG_INLINE unsigned output_run(const OutArgs<T>& a, const std::vector<Segment>& segs, int64_t k_lo,
                              int64_t k_hi, T* buf) {
  const int64_t Pc = a.p1 - a.p0, plane = a.K * Pc, HWo = a.Ho * a.Wo;
  unsigned bad = 0;
  for (int64_t k = k_lo; k < k_hi; ++k) {
    const T bias = a.bias ? a.bias[k] : T(0);
    for (const Segment& s : segs)
      bad |= output_segment<T>(a, a.M + k * Pc + s.q, s, plane, bias, a.Y + (s.n * a.K + k) * HWo, buf);
  }
  return bad;
}

// Per-ISA entry points: the target attribute sits on these only; the always-inline
// bodies above are compiled for each.
template <class T>
void input_base(const InArgs<T>& a, const std::vector<Segment>& g, int64_t lo, int64_t hi, T* b) {
  input_run<T>(a, g, lo, hi, b);
}
template <class T>
unsigned output_base(const OutArgs<T>& a, const std::vector<Segment>& g, int64_t lo, int64_t hi,
                     T* b) {
  return output_run<T>(a, g, lo, hi, b);
}
#if defined(EFFSEG_X86_DISPATCH)
template <class T>
__attribute__((target("avx2,fma"))) void input_avx2(const InArgs<T>& a,
                                                    const std::vector<Segment>& g, int64_t lo,
                                                    int64_t hi, T* b) {
  input_run<T>(a, g, lo, hi, b);
}
template <class T>
__attribute__((target("avx2,fma"))) unsigned output_avx2(const OutArgs<T>& a,
                                                         const std::vector<Segment>& g, int64_t lo,
                                                         int64_t hi, T* b) {
  return output_run<T>(a, g, lo, hi, b);
}
// AVX-512: the loops along a segment's tiles in 16-float vectors.
template <class T>
__attribute__((target("avx512f,avx2,fma"))) void input_avx512(const InArgs<T>& a,
                                                              const std::vector<Segment>& g,
                                                              int64_t lo, int64_t hi, T* b) {
  input_run<T>(a, g, lo, hi, b);
}
template <class T>
__attribute__((target("avx512f,avx2,fma"))) unsigned output_avx512(const OutArgs<T>& a,
                                                                   const std::vector<Segment>& g,
                                                                   int64_t lo, int64_t hi, T* b) {
  return output_run<T>(a, g, lo, hi, b);
}
#endif

int threads_for(int64_t work, int64_t units) {
  int nth = team_threads();
  if (work < kSerialWork) nth = 1;
  return static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(nth, units)));
}

// Splits [0, units) over the threads; fn(lo, hi, scratch) does a share.
template <class T, class Fn>
void parallel(int64_t units, int nth, size_t buf_elems, Fn fn) {
#ifdef EFFSEG_OPENMP
  if (nth > 1) {
#pragma omp parallel num_threads(nth)
    {
      const int64_t t = omp_get_thread_num(), n = omp_get_num_threads();
      fn(units * t / n, units * (t + 1) / n, scratch<T>(buf_elems));
    }
    return;
  }
#endif
  (void)nth;
  fn(0, units, scratch<T>(buf_elems));
}

}  // namespace

void validate_input(const void* x, int64_t N, int64_t C, int64_t H, int64_t W, int64_t pad_h,
                    int64_t pad_w, int64_t tiles_h, int64_t tiles_w, int64_t p0, int64_t p1,
                    const void* V) {
  if (N < 0 || C < 1 || H < 1 || W < 1) bad("need N >= 0 and C, H, W >= 1");
  if (pad_h < 0 || pad_w < 0) bad("padding must be >= 0");
  const int64_t Ho = H + 2 * pad_h - 2, Wo = W + 2 * pad_w - 2;
  if (Ho < 1 || Wo < 1) bad("the output would be empty (H + 2 pad_h - 2 and W + 2 pad_w - 2 must be >= 1)");
  if (tiles_h != (Ho + 3) / 4 || tiles_w != (Wo + 3) / 4)
    bad("tiles_h, tiles_w must be ceil(Ho / 4), ceil(Wo / 4) = " + std::to_string((Ho + 3) / 4) +
        ", " + std::to_string((Wo + 3) / 4));
  if (p0 < 0 || p1 < p0 || p1 > N * tiles_h * tiles_w)
    bad("need 0 <= p0 <= p1 <= N * tiles_h * tiles_w");
  if (p1 > p0 && (!x || !V)) bad("x and V are required");
}

void validate_output(const void* M, int64_t K, int64_t p0, int64_t p1, int64_t tiles_h,
                     int64_t tiles_w, const void* Y, int64_t N, int64_t Ho, int64_t Wo) {
  if (N < 0 || K < 1 || Ho < 1 || Wo < 1) bad("need N >= 0 and K, Ho, Wo >= 1");
  if (tiles_h != (Ho + 3) / 4 || tiles_w != (Wo + 3) / 4)
    bad("tiles_h, tiles_w must be ceil(Ho / 4), ceil(Wo / 4) = " + std::to_string((Ho + 3) / 4) +
        ", " + std::to_string((Wo + 3) / 4));
  if (p0 < 0 || p1 < p0 || p1 > N * tiles_h * tiles_w)
    bad("need 0 <= p0 <= p1 <= N * tiles_h * tiles_w");
  if (p1 > p0 && (!M || !Y)) bad("M and Y are required");
}

template <class T>
void input_transform(const T* x, int64_t N, int64_t C, int64_t H, int64_t W, int64_t pad_h,
                     int64_t pad_w, int64_t tiles_h, int64_t tiles_w, int64_t p0, int64_t p1,
                     T* V) {
  validate_input(x, N, C, H, W, pad_h, pad_w, tiles_h, tiles_w, p0, p1, V);
  if (p1 == p0) return;
  const InArgs<T> a{x, N, C, H, W, pad_h, pad_w, tiles_h, tiles_w, p0, p1, V};
  const std::vector<Segment> segs = segments(p0, p1, tiles_h, tiles_w);
  const size_t buf = scratch_elems(std::min(tiles_w, p1 - p0));
  const int nth = threads_for(C * (p1 - p0), C);
#if defined(EFFSEG_X86_DISPATCH)
  const Isa level = isa();
#endif
  parallel<T>(C, nth, buf, [&](int64_t lo, int64_t hi, T* b) {
#if defined(EFFSEG_X86_DISPATCH)
    if (level >= Isa::AVX512) return input_avx512<T>(a, segs, lo, hi, b);
    if (level >= Isa::AVX2) return input_avx2<T>(a, segs, lo, hi, b);
#endif
    input_base<T>(a, segs, lo, hi, b);
  });
}

template <class T>
bool output_transform(const T* M, int64_t K, int64_t p0, int64_t p1, int64_t tiles_h,
                      int64_t tiles_w, const T* bias, bool relu, T* Y, int64_t N, int64_t Ho,
                      int64_t Wo) {
  validate_output(M, K, p0, p1, tiles_h, tiles_w, Y, N, Ho, Wo);
  if (p1 == p0) return true;
  const OutArgs<T> a{M, K, p0, p1, tiles_h, tiles_w, bias, relu, Y, N, Ho, Wo};
  const std::vector<Segment> segs = segments(p0, p1, tiles_h, tiles_w);
  const size_t buf = scratch_elems(std::min(tiles_w, p1 - p0));
  const int nth = threads_for(K * (p1 - p0), K);
#if defined(EFFSEG_X86_DISPATCH)
  const Isa level = isa();
#endif
  std::atomic<unsigned> bad{0};
  parallel<T>(K, nth, buf, [&](int64_t lo, int64_t hi, T* b) {
    unsigned mine;
#if defined(EFFSEG_X86_DISPATCH)
    if (level >= Isa::AVX512) mine = output_avx512<T>(a, segs, lo, hi, b);
    else if (level >= Isa::AVX2) mine = output_avx2<T>(a, segs, lo, hi, b);
    else
#endif
      mine = output_base<T>(a, segs, lo, hi, b);
    if (mine) bad.fetch_or(1u, std::memory_order_relaxed);
  });
  return bad.load() == 0;
}

const char* simd_level() {
#if defined(EFFSEG_X86_DISPATCH)
  if (isa() >= Isa::AVX512) return isa_name(Isa::AVX512);
#endif
  return use_avx2() ? "avx2+fma" : baseline_name();
}

template void input_transform<float>(const float*, int64_t, int64_t, int64_t, int64_t, int64_t,
                                     int64_t, int64_t, int64_t, int64_t, int64_t, float*);
template void input_transform<double>(const double*, int64_t, int64_t, int64_t, int64_t, int64_t,
                                      int64_t, int64_t, int64_t, int64_t, int64_t, double*);
template bool output_transform<float>(const float*, int64_t, int64_t, int64_t, int64_t, int64_t,
                                      const float*, bool, float*, int64_t, int64_t, int64_t);
template bool output_transform<double>(const double*, int64_t, int64_t, int64_t, int64_t,
                                       int64_t, const double*, bool, double*, int64_t, int64_t,
                                       int64_t);

}  // namespace winograd_conv2d
}  // namespace effseg
