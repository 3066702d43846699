// Selective scan entry points: argument checks, the thread split (and, for the backward,
// where each thread adds its dB / dC), and the choice of the ISA build of each kernel.
// The kernels are in selective_scan_{fwd,bwd}.cpp and cross_selective_scan.cpp.
#include <algorithm>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#ifdef EFFSEG_OPENMP
#include <omp.h>
#endif

#include "common/isa.h"
#include "common/threads.h"
#include "selective_scan/selective_scan.h"
#include "selective_scan/selective_scan_kernel.h"

namespace effseg {
namespace selective_scan {
namespace {

template <class T, template <class> class Args>
typename detail::Kernels<Args>::template Fn<T> pick(const detail::Kernels<Args>& k) {
  if constexpr (std::is_same_v<T, double>) {
    return k.f64;
  } else {
    switch (isa()) {
      case Isa::AVX512: return k.avx512;
      case Isa::AVX2: return k.avx2;
      case Isa::Base: return k.base;
      default: return k.generic;
    }
  }
}

int threads_for(int64_t channels, int64_t work) {
  int nth = team_threads();
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
  const auto fn = pick<T>(a.tmap ? detail::kCrossForward : detail::kForward);
  const int nth = threads_for(total, total * std::max<int64_t>(a.L, 1) * a.N);
#ifdef EFFSEG_OPENMP
  if (nth > 1) {
#pragma omp parallel num_threads(nth)
    {
      const int64_t tid = omp_get_thread_num(), nt = omp_get_num_threads();
      fn(a, detail::Share<T>{total * tid / nt, total * (tid + 1) / nt});
    }
    return;
  }
#endif
  (void)nth;
  fn(a, detail::Share<T>{0, total});
}

template <class T>
void backward(const BwdArgs<T>& a) {
  validate_bwd(a);
  const int64_t total = a.Bt * a.Dm;
  if (total == 0) return;
  const auto fn = pick<T>(detail::kBackward);
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
        fn(a, detail::Share<T>{total * j / nth, total * (j + 1) / nth, accB[j].base(a.dB),
                               accB[j].lo(), accC[j].base(a.dC), accC[j].lo()});
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
  fn(a, detail::Share<T>{0, total, a.dB, 0, a.dC, 0});
}

const char* simd_level() { return isa_name(isa()); }

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
