// Exact Euclidean distance transform, CPU kernel. See distance_transform.h for layouts.
//
// The squared distance is separable (Felzenszwalb & Huttenlocher 2004, section 5):
//     d²(y, x) = min_j [ f_j + sx² (x - j)² ],   f_j = sy² g_j(y)²
// where g_j(y) is the 1-D distance, in pixels, from (y, j) to the nearest zero of
// column j. Two passes, each linear in the number of pixels:
//   1. columns: g by one downward and one upward sweep over whole rows (contiguous, so
//      the sweeps vectorise across columns), kept as float in `out`.
//   2. rows, three steps per row:
//      a. a branch-free window step: min over |j - x| <= kWin, V pixels per vector
//         (one load, add and min per offset). It is the answer wherever it is
//         <= sx² (kWin + 1)², since every farther j costs more; in segmentation masks
//         that is nearly every pixel.
//      b. the other pixels lie in long runs of nonzero pixels. A zero pixel a of the
//         row (f_a = 0) beats every parabola beyond it for all pixels on its other
//         side, so a run is solved with the parabolas of the run and its two bounding
//         zeros only. Per block of V pixels, an upper bound U of their d² (their own
//         column, the run's zeros, the window step) limits the useful candidates to
//         |j - x| <= sqrt(U) / sx. Within kReach, the direct minimum over them,
//         nearest first, stopping once nothing farther can win; beyond that, the
//         lower envelope of the run's parabolas, algorithm DT(f) of
//           P. F. Felzenszwalb and D. P. Huttenlocher, "Distance Transforms of Sampled
//           Functions", Cornell CIS TR2004-1963, 2004 (Theory of Computing 8, 2012),
//         linear in the run length, in double. Parabolas with f_j = +inf (columns
//         without a zero) never enter; a run with none left stays +inf (an image
//         without zeros). Either way the cost per pixel is bounded: linear overall.
//      c. a vectorised square root.
// Exactness: with unit spacing every quantity is an integer. The float steps only
// keep minima below sx² (kReach + 1)², small integers that float holds exactly
// (rounding is monotone, so larger candidates cannot drop below them); the envelope
// works in double, exact below 2^53, and d² is rounded to float once. With other
// spacings the error is a few float32 roundings.
// Threads: whole images per thread when they share out evenly between the threads;
// otherwise each image's column stripes, then its rows, are shared out.
// ISA: both passes are compiled for the x86-64 baseline (4 lanes) and AVX2 (8 lanes),
// picked at run time by common/isa.h's detection, which EFFSEG_SIMD caps.
#include "distance_transform/distance_transform.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include "common/isa.h"
#include "common/threads.h"

#ifdef EFFSEG_OPENMP
#include <omp.h>
#endif

#if defined(__GNUC__)
#define DT_INLINE inline __attribute__((always_inline))
#pragma GCC diagnostic ignored "-Wpsabi"
#else
#define DT_INLINE inline
#endif

namespace effseg {
namespace distance_transform {
namespace {

constexpr float kInfF = std::numeric_limits<float>::infinity();
constexpr double kInf = std::numeric_limits<double>::infinity();
// g of a pixel with no zero in its column: finite, so that the downward sweep can use a
// product (which vectorises) instead of a select; larger than any real g.
constexpr float kNoZero = 1e30f;
// Pixels whose candidates reach at most this far take the direct minimum (at most
// ~ 2 * reach / V vector steps per pixel, usually far fewer); the others the envelope
// (~ constant, but branchy, per pixel, plus the run's length once). Measured best of
// 48 / 64 / 96 / 128 on blob masks and on the outside maps of one-hot labels.
constexpr int64_t kReach = 96;

// Columns [c0, c1) of one image: g (pixels to the nearest zero in the column) into g.
DT_INLINE void column_pass(const uint8_t* __restrict m, float* __restrict g, int64_t H,
                           int64_t W, int64_t c0, int64_t c1) {
  for (int64_t c = c0; c < c1; ++c) g[c] = m[c] ? kNoZero : 0.f;
  for (int64_t i = 1; i < H; ++i) {
    const uint8_t* __restrict mr = m + i * W;
    float* __restrict gr = g + i * W;
    const float* __restrict gp = gr - W;
    for (int64_t c = c0; c < c1; ++c)
      gr[c] = std::min(gp[c] + 1.f, kNoZero) * static_cast<float>(mr[c] != 0);
  }
  for (int64_t i = H - 2; i >= 0; --i) {
    float* __restrict gr = g + i * W;
    const float* __restrict gn = gr + W;
    for (int64_t c = c0; c < c1; ++c) gr[c] = std::min(gr[c], gn[c] + 1.f);
  }
}

// Half-width of the window of the first, branch-free row step.
constexpr int64_t kWin = 8;
constexpr int64_t kPad = kWin + 16;

struct RowScratch {
  std::vector<float> fp;  // f_j in float at fp[kPad + j], +inf padding on both sides
  std::vector<float> d2;  // d² of the row
  std::vector<double> fv, hv, z;
  std::vector<int32_t> v;
  explicit RowScratch(int64_t W)
      : fp(W + 2 * kPad, kInfF), d2(W + 16), fv(W + 1), hv(W + 1), z(W + 2), v(W + 1) {}
};

// GNU vector extensions (GCC, Clang): V lanes of float.
template <int V>
struct Vec;
template <>
struct Vec<4> {
  typedef float type __attribute__((vector_size(16)));
  typedef int32_t mask __attribute__((vector_size(16)));  // what a comparison gives
};
template <>
struct Vec<8> {
  typedef float type __attribute__((vector_size(32)));
  typedef int32_t mask __attribute__((vector_size(32)));
};

template <int V>
DT_INLINE typename Vec<V>::type load(const float* p) {
  typename Vec<V>::type r;
  std::memcpy(&r, p, sizeof r);
  return r;
}
template <int V>
DT_INLINE void store(float* p, typename Vec<V>::type x) {
  std::memcpy(p, &x, sizeof x);
}
template <int V>
DT_INLINE typename Vec<V>::type vmin(typename Vec<V>::type a, typename Vec<V>::type b) {
#if defined(__clang__)
  return __builtin_elementwise_min(a, b);
#else
  return a < b ? a : b;  // GCC: one minps
#endif
}

// d²[x] = min over |j - x| <= kWin of f_j + sx² (j - x)², for every x of the row; true
// when it is <= sx² (kWin + 1)² (every other j is farther). Returns whether all are.
template <int V>
DT_INLINE bool window_pass(const float* __restrict fp, float* __restrict d2, int64_t W,
                           float sx2) {
  using vf = typename Vec<V>::type;
  float c[2 * kWin + 1];
  for (int64_t o = -kWin; o <= kWin; ++o) c[o + kWin] = sx2 * static_cast<float>(o * o);
  const vf thr = vf{} + sx2 * static_cast<float>((kWin + 1) * (kWin + 1));
  typename Vec<V>::mask over = {};
  for (int64_t x0 = 0; x0 < W; x0 += V) {
    const float* q = fp + kPad + x0;
    vf best = load<V>(q);
    for (int64_t o = 1; o <= kWin; ++o) {
      best = vmin<V>(best, load<V>(q - o) + c[kWin + o]);
      best = vmin<V>(best, load<V>(q + o) + c[kWin + o]);
    }
    store<V>(d2 + x0, best);
    over |= best > thr;
  }
  int32_t o[V];
  std::memcpy(o, &over, sizeof o);
  int32_t any = 0;
  for (int l = 0; l < V; ++l) any |= o[l];
  return any == 0;
}

// d² of the n <= V pixels from x0: min over the offsets o in [o0, o1] (o0 <= 0 <= o1)
// of f_{x+o} + sx² o², V pixels per vector. Offsets are taken by increasing |o|, and
// the loop stops once sx² o² exceeds every pixel's minimum so far (nothing farther
// can win), so the cost follows the distances found, not the bound o0, o1.
// f must be readable (padded) at x0 + o0 .. x0 + V - 1 + o1.
template <int V>
DT_INLINE void offsets_block(const float* __restrict f, int64_t x0, int64_t n, int64_t o0,
                             int64_t o1, float sx2, float* __restrict d2) {
  using vf = typename Vec<V>::type;
  const float* q = f + x0;
  vf best = load<V>(q);
  float b[V];
  const int64_t r = std::max(-o0, o1);
  for (int64_t o = 1; o <= r; ++o) {
    const float c = sx2 * static_cast<float>(o * o);
    if (o <= o1) best = vmin<V>(best, load<V>(q + o) + c);
    if (-o >= o0) best = vmin<V>(best, load<V>(q - o) + c);
    if ((o & 3) == 0) {
      store<V>(b, best);
      float worst = 0.f;
      for (int64_t l = 0; l < n; ++l) worst = std::max(worst, b[l]);
      if (sx2 * static_cast<float>((o + 1) * (o + 1)) > worst) break;
    }
  }
  if (n == V) {
    store<V>(d2 + x0, best);
  } else {  // the pixels after them keep their values
    store<V>(b, best);
    for (int64_t l = 0; l < n; ++l) d2[x0 + l] = b[l];
  }
}

// d² at x in [s, e) from the lower envelope of the parabolas j in [lo, hi] with
// f_j < cap (FH's DT(f)); +inf where no parabola qualifies.
DT_INLINE void envelope_run(const float* __restrict g, int64_t lo, int64_t hi, int64_t s,
                            int64_t e, double cap, double sy2, double sx2, RowScratch& sc,
                            float* __restrict d2) {
  double* __restrict fv = sc.fv.data();
  double* __restrict hv = sc.hv.data();
  double* __restrict z = sc.z.data();
  int32_t* __restrict v = sc.v.data();
  // v[0..k]: the parabolas of the envelope, left to right; z[i]: where v[i] becomes the
  // lowest (z[0] = -inf); fv, hv: f and f + sx² v² of v[i]. Parabola q enters after
  // removing those it hides; (h_q - h_p) / (2 sx² (q - p)) is where p and q meet.
  const double inv2 = 0.5 / sx2;
  int64_t k = -1;
  for (int64_t q = lo; q <= hi; ++q) {
    const double gq = g[q];
    const double fq = gq * gq * sy2;
    if (!(fq < cap) || g[q] >= kNoZero) continue;
    const double hq = fq + sx2 * static_cast<double>(q) * static_cast<double>(q);
    if (k < 0) {
      k = 0;
      v[0] = static_cast<int32_t>(q);
      fv[0] = fq;
      hv[0] = hq;
      z[0] = -kInf;
      continue;
    }
    double sq;
    for (;;) {  // z[0] = -inf stops this at k = 0
      sq = (hq - hv[k]) * inv2 / static_cast<double>(q - v[k]);
      if (sq > z[k]) break;
      --k;
    }
    ++k;
    v[k] = static_cast<int32_t>(q);
    fv[k] = fq;
    hv[k] = hq;
    z[k] = sq;
  }
  if (k < 0) {
    for (int64_t x = s; x < e; ++x) d2[x] = kInfF;
    return;
  }
  z[k + 1] = kInf;
  int64_t i = 0;
  for (int64_t x = s; x < e; ++x) {
    while (z[i + 1] < static_cast<double>(x)) ++i;
    const double dx = static_cast<double>(x - v[i]);
    d2[x] = static_cast<float>(fv[i] + sx2 * dx * dx);
  }
}

// One row: g (float, in place) -> distance (float).
template <int V>
DT_INLINE void row_pass(float* __restrict row, int64_t W, double sy2, double sx2,
                        RowScratch& sc) {
  float* __restrict f = sc.fp.data() + kPad;
  float* __restrict d2 = sc.d2.data();
  const float sy2f = static_cast<float>(sy2), sx2f = static_cast<float>(sx2);
  for (int64_t j = 0; j < W; ++j) f[j] = row[j] >= kNoZero ? kInfF : row[j] * row[j] * sy2f;
  if (!window_pass<V>(sc.fp.data(), d2, W, sx2f)) {
    // Pixels farther than kWin + 1 from every zero: redo their runs exactly.
    const float thr = sx2f * static_cast<float>((kWin + 1) * (kWin + 1));
    for (int64_t x = 0; x < W; ++x) {
      if (!(d2[x] > thr)) continue;
      int64_t s = x, e = x + 1;
      while (s > 0 && row[s - 1] != 0.f) --s;
      while (e < W && row[e] != 0.f) ++e;
      // Run [s, e) with zeros at s - 1 (if s > 0) and e (if e < W); its pixels to
      // redo are [x, xe).
      int64_t xe = e;
      while (!(d2[xe - 1] > thr)) --xe;
      const int64_t lo = s > 0 ? s - 1 : s, hi = e < W ? e : e - 1;
      // Per block of V pixels: an upper bound U of their d² (own column, the run's
      // zeros) limits the candidates to |j - x| <= r, r = sqrt(U) / sx; the direct
      // minimum over those when r <= kReach, else the envelope.
      int64_t env0 = xe, env1 = x;
      for (int64_t x0 = x; x0 < xe; x0 += V) {
        const int64_t n = std::min<int64_t>(V, xe - x0);
        float U = 0.f;
        for (int64_t l = 0; l < n; ++l) {
          float u = std::min(f[x0 + l], d2[x0 + l]);  // own column; the window step
          const float dl = static_cast<float>(x0 + l - lo), dh = static_cast<float>(hi - x0 - l);
          if (s > 0) u = std::min(u, sx2f * dl * dl);
          if (e < W) u = std::min(u, sx2f * dh * dh);
          U = std::max(U, u);
        }
        if (U <= sx2f * static_cast<float>(kReach * kReach)) {
          const int64_t r = static_cast<int64_t>(std::sqrt(U / sx2f)) + 1;
          offsets_block<V>(f, x0, n, std::max(-r, lo - x0 - (V - 1)), std::min(r, hi - x0),
                           sx2f, d2);
        } else {
          env0 = std::min(env0, x0);
          env1 = std::max(env1, x0 + n);
        }
      }
      if (env0 < env1) {
        // Between zeros a and b no pixel is farther than (b - a) / 2 from one of
        // them: parabolas with f_j >= sx² ((b - a) / 2)² never win there.
        const double half = 0.5 * static_cast<double>(e - s + 1);
        const double cap = s > 0 && e < W ? sx2 * half * half : kInf;
        envelope_run(row, lo, hi, env0, env1, cap, sy2, sx2, sc, d2);
      }
      x = e;
    }
  }
  for (int64_t j = 0; j < W; ++j) row[j] = std::sqrt(d2[j]);
}

struct Plan {
  const uint8_t* mask;
  float* out;
  int64_t H, W, sw;  // sw: columns per stripe
  double sy2, sx2;
};

DT_INLINE void columns_body(const Plan& p, int64_t n, int64_t t0, int64_t t1) {
  const int64_t HW = p.H * p.W;
  for (int64_t t = t0; t < t1; ++t)
    column_pass(p.mask + n * HW, p.out + n * HW, p.H, p.W, t * p.sw,
                std::min(p.W, (t + 1) * p.sw));
}

template <int V>
DT_INLINE void rows_body(const Plan& p, int64_t n, int64_t y0, int64_t y1, RowScratch& sc) {
  float* out = p.out + n * p.H * p.W;
  for (int64_t y = y0; y < y1; ++y) row_pass<V>(out + y * p.W, p.W, p.sy2, p.sx2, sc);
}

using ColumnsFn = void (*)(const Plan&, int64_t, int64_t, int64_t);
using RowsFn = void (*)(const Plan&, int64_t, int64_t, int64_t, RowScratch&);

void columns_base(const Plan& p, int64_t n, int64_t t0, int64_t t1) { columns_body(p, n, t0, t1); }
void rows_base(const Plan& p, int64_t n, int64_t y0, int64_t y1, RowScratch& sc) {
  rows_body<4>(p, n, y0, y1, sc);
}
#if defined(EFFSEG_X86_DISPATCH)
__attribute__((target("avx2,fma"))) void columns_avx2(const Plan& p, int64_t n, int64_t t0,
                                                      int64_t t1) {
  columns_body(p, n, t0, t1);
}
__attribute__((target("avx2,fma"))) void rows_avx2(const Plan& p, int64_t n, int64_t y0,
                                                   int64_t y1, RowScratch& sc) {
  rows_body<8>(p, n, y0, y1, sc);
}
#endif

// Columns per stripe when `parts` threads share one image's column pass. Whole rows
// sweep fastest (measured: 1024 columns 2x faster than stripes of 64 that stay in L2),
// so an image is cut only into as many stripes as threads, multiples of 16 columns.
int64_t stripe_width(int64_t W, int64_t parts) {
  const int64_t w = (W + parts - 1) / parts;
  return std::min(W, (w + 15) / 16 * 16);
}

}  // namespace

void validate(const Args& a) {
  if (a.N < 0 || a.H < 0 || a.W < 0)
    throw std::invalid_argument("distance_transform: sizes must be >= 0, got N=" +
                                std::to_string(a.N) + " H=" + std::to_string(a.H) +
                                " W=" + std::to_string(a.W));
  if (a.W >= std::numeric_limits<int32_t>::max())
    throw std::invalid_argument("distance_transform: W must be < 2^31 - 1");
  // g counts rows in float: exact below 2^24.
  if (a.H >= (int64_t{1} << 24))
    throw std::invalid_argument("distance_transform: H must be < 2^24 rows");
  if (!(std::isfinite(a.sy) && a.sy > 0 && std::isfinite(a.sx) && a.sx > 0))
    throw std::invalid_argument("distance_transform: spacing must be finite and > 0, got (" +
                                std::to_string(a.sy) + ", " + std::to_string(a.sx) + ")");
  if (a.N * a.H * a.W > 0 && (a.mask == nullptr || a.out == nullptr))
    throw std::invalid_argument("distance_transform: mask and out are required");
}

void forward(const Args& a) {
  validate(a);
  const int64_t N = a.N, H = a.H, W = a.W, HW = H * W;
  if (N == 0 || HW == 0) return;
  const int nth = team_threads();
  // Whole images per thread keep each image in one core's caches, but only pay off
  // when the images share out evenly.
  const bool per_image = nth <= 1 || N >= 4 * nth || N % nth == 0 || HW < (int64_t{1} << 14);
  const Plan p{a.mask, a.out, H, W, stripe_width(W, per_image ? 1 : nth), a.sy * a.sy,
               a.sx * a.sx};
  const int64_t nstripes = (W + p.sw - 1) / p.sw;
#if defined(EFFSEG_X86_DISPATCH)
  const ColumnsFn columns = use_avx2() ? columns_avx2 : columns_base;
  const RowsFn rows = use_avx2() ? rows_avx2 : rows_base;
#else
  const ColumnsFn columns = columns_base;
  const RowsFn rows = rows_base;
#endif
#ifdef EFFSEG_OPENMP
  // Below ~1 ms of work a second thread saves little, and a fork-join costs much more
  // than that when the cores are shared with other processes.
  if (nth > 1 && N * HW >= (int64_t{1} << 18)) {
#pragma omp parallel num_threads(nth)
    {
      RowScratch sc(W);
      if (per_image) {
#pragma omp for schedule(dynamic, 1)
        for (int64_t n = 0; n < N; ++n) {
          columns(p, n, 0, nstripes);
          rows(p, n, 0, H, sc);
        }
      } else {
        for (int64_t n = 0; n < N; ++n) {
#pragma omp for schedule(static)
          for (int64_t t = 0; t < nstripes; ++t) columns(p, n, t, t + 1);
#pragma omp for schedule(dynamic, 16)
          for (int64_t y = 0; y < H; ++y) rows(p, n, y, y + 1, sc);
        }
      }
    }
    return;
  }
#endif
  (void)nth;
  RowScratch sc(W);
  for (int64_t n = 0; n < N; ++n) {
    columns(p, n, 0, nstripes);
    rows(p, n, 0, H, sc);
  }
}

}  // namespace distance_transform
}  // namespace effseg
