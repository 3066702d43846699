// Selective scan forward: per thread, a range of (b, d) channels walked in tiles of up
// to 32, time-chunk-major inside a tile (see selective_scan_kernel.h).
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "selective_scan/selective_scan_cores.h"

namespace effseg {
namespace selective_scan {
namespace detail {
namespace {

template <class T, class Arch, class Core>
SS_INLINE void fwd_channels(const FwdArgs<T>& a, int64_t bd0, int64_t bd1) {
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
    load_states(hst, a.h0, tile, nt, N);
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

template <class T, class Arch>
SS_INLINE void fwd_kernel(const FwdArgs<T>& a, const Share<T>& s) {
  with_core<T, Arch>(a.N, a.Bs.sn == 1 && a.Cs.sn == 1, [&](auto core) SS_LAMBDA_INLINE {
    fwd_channels<T, Arch, decltype(core)>(a, s.bd0, s.bd1);
  });
}

}  // namespace

SS_DEFINE_KERNELS(kForward, FwdArgs, fwd_kernel)

}  // namespace detail
}  // namespace selective_scan
}  // namespace effseg
