// Selective scan backward: a forward sweep checkpoints the state at every chunk start,
// then the chunks are walked in reverse, each recomputing its states into scratch for the
// adjoint (see selective_scan_kernel.h).
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
SS_INLINE void bwd_channels(const BwdArgs<T>& a, int64_t bd0, int64_t bd1, T* dBbuf,
                             int64_t dBlo, T* dCbuf, int64_t dClo) {
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
    load_states(hst, a.h0, tile, nt, N);
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
    load_states(hst, a.dlast, tile, nt, N);  // lambda
    for (int j = 0; j < nt; ++j) {
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

template <class T, class Arch>
SS_INLINE void bwd_kernel(const BwdArgs<T>& a, const Share<T>& s) {
  const bool contiguous = a.Bs.sn == 1 && a.Cs.sn == 1 && a.dBs.sn == 1 && a.dCs.sn == 1;
  with_core<T, Arch>(a.N, contiguous, [&](auto core) SS_LAMBDA_INLINE {
    bwd_channels<T, Arch, decltype(core)>(a, s.bd0, s.bd1, s.dB, s.dBlo, s.dC, s.dClo);
  });
}

}  // namespace

SS_DEFINE_KERNELS(kBackward, BwdArgs, bwd_kernel)

}  // namespace detail
}  // namespace selective_scan
}  // namespace effseg
