// Selective scan forward over the four traversal orders of SS2D's cross scan, fused:
// the scans read their inputs through the order maps and add into one output.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "selective_scan/selective_scan_cores.h"

namespace effseg {
namespace selective_scan {
namespace detail {
namespace {

// Cross-scan forward (SS2D): units [q0, q1) of the Bt x Du output channels, Du =
// Dm / G. Output channel d of batch b sums the G scans of channels c = g*Du + d, scan
// g visiting position tmap[g*L + t] at step t. The rows are gathered per chunk and
// the outputs scattered back, so neither the G re-ordered copies of u nor the G
// per-scan outputs exist in memory. A unit's G scans run in one thread: the output
// row is accumulated without races.
template <class T, class Arch, class Core>
SS_INLINE void cross_channels(const FwdArgs<T>& a, int64_t q0, int64_t q1) {
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

// Gathered B / C chunks are contiguous, so any strides get a fast core.
template <class T, class Arch>
SS_INLINE void cross_kernel(const FwdArgs<T>& a, const Share<T>& s) {
  with_core<T, Arch>(a.N, true, [&](auto core) SS_LAMBDA_INLINE {
    cross_channels<T, Arch, decltype(core)>(a, s.bd0, s.bd1);
  });
}

}  // namespace

SS_DEFINE_KERNELS(kCrossForward, FwdArgs, cross_kernel)

}  // namespace detail
}  // namespace selective_scan
}  // namespace effseg
