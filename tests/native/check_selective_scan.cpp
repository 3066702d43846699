// selective_scan::forward / backward and the cross scan (forward with tmap) against a
// step-by-step double-precision scan. Cases cover the register-resident fast cores
// (contiguous state dim, N in {1, 4, 16, 64}), the runtime-N core (N = 5, or a strided
// state dim), time chunk boundaries (L > the chunk length), broadcast B / C strides and
// the threaded split. The backward is checked by directional derivatives of the
// reference's loss sum(dout * out) + sum(dlast * last_state), one input at a time.
#include <cmath>
#include <string>
#include <vector>

#include "check.h"
#include "selective_scan/selective_scan.h"

namespace effseg {
namespace check {
namespace {

namespace ss = selective_scan;

struct Problem {
  int64_t Bt, Dm, L, N, G;
  bool contiguous_state, broadcast_batch, softplus, hasD, hasZ, hasBias, hasH0, hasDlast;
  ss::Strides Bs, Cs;
  int64_t BC_numel;
  const int32_t* tmap = nullptr;  // cross scan: (G, L); u and out are then (Bt, Dm / G, L)
  std::vector<double> u, delta, A, B, C, D, z, bias, h0, dout, dlast;
};

double round_f32(double x) { return static_cast<double>(static_cast<float>(x)); }

Problem make(Rng& rng, int64_t Bt, int64_t Dm, int64_t L, int64_t N, int64_t G, bool contiguous,
             bool broadcast, bool softplus, bool extras, const int32_t* tmap = nullptr) {
  Problem p{Bt, Dm, L, N, G, contiguous, broadcast, softplus, true, extras && !tmap, true,
            extras && !tmap, extras && !tmap};
  p.tmap = tmap;
  // (Bt, G, L, N) when the state dim is contiguous, else (Bt, G, N, L); batch stride 0
  // when broadcast.
  const ss::Strides s{broadcast ? 0 : G * L * N, L * N, contiguous ? 1 : L, contiguous ? N : 1};
  p.Bs = p.Cs = s;
  p.BC_numel = (broadcast ? 1 : Bt) * G * L * N;
  const int64_t Du = tmap ? Dm / G : Dm;
  auto r = [&](size_t n, double lo, double hi) {
    std::vector<double> v = rng.vec(n, lo, hi);
    for (double& x : v) x = round_f32(x);
    return v;
  };
  p.u = r(Bt * Du * L, -1, 1);
  p.delta = softplus ? r(Bt * Dm * L, -2, 1) : r(Bt * Dm * L, 0.01, 0.5);
  p.A = r(Dm * N, -2, -0.2);
  p.B = r(p.BC_numel, -1, 1);
  p.C = r(p.BC_numel, -1, 1);
  p.D = r(Dm, -1, 1);
  p.z = r(Bt * Du * L, -3, 3);
  p.bias = r(Dm, -0.5, 0.5);
  p.h0 = r(Bt * Dm * N, -1, 1);
  p.dout = r(Bt * Du * L, -1, 1);
  p.dlast = r(Bt * Dm * N, -1, 1);
  return p;
}

int64_t at(const ss::Strides& s, int64_t b, int64_t g, int64_t n, int64_t t) {
  return b * s.sb + g * s.sg + n * s.sn + t * s.st;
}

// out (Bt, Du, L) and last (Bt, Dm, N) of the plain recurrence
//   dt = softplus?(delta + bias), h = exp(dt A) h + dt u B, y = C.h,
//   out = (y + D u) * silu(z)   (cross scan: out at tmap position, summed over groups).
void reference(const Problem& p, std::vector<double>& out, std::vector<double>& last) {
  const int64_t Du = p.tmap ? p.Dm / p.G : p.Dm, per = p.Dm / p.G;
  out.assign(p.Bt * Du * p.L, 0.0);
  last.assign(p.Bt * p.Dm * p.N, 0.0);
  std::vector<double> h(p.N);
  for (int64_t b = 0; b < p.Bt; ++b)
    for (int64_t c = 0; c < p.Dm; ++c) {
      const int64_t g = c / per, d = p.tmap ? c - g * Du : c;
      for (int64_t n = 0; n < p.N; ++n) h[n] = p.hasH0 ? p.h0[(b * p.Dm + c) * p.N + n] : 0.0;
      for (int64_t t = 0; t < p.L; ++t) {
        const int64_t pos = p.tmap ? p.tmap[g * p.L + t] : t;
        double dt = p.delta[(b * p.Dm + c) * p.L + pos] + (p.hasBias ? p.bias[c] : 0.0);
        if (p.softplus && dt <= 20) dt = std::log1p(std::exp(dt));
        const double uu = p.u[(b * Du + d) * p.L + pos];
        double y = 0.0;
        for (int64_t n = 0; n < p.N; ++n) {
          h[n] = std::exp(dt * p.A[c * p.N + n]) * h[n] + dt * uu * p.B[at(p.Bs, b, g, n, pos)];
          y += p.C[at(p.Cs, b, g, n, pos)] * h[n];
        }
        double o = y + (p.hasD ? p.D[c] * uu : 0.0);
        if (p.hasZ) {
          const double zz = p.z[(b * Du + d) * p.L + pos];
          o *= zz / (1.0 + std::exp(-zz));
        }
        out[(b * Du + d) * p.L + pos] += o;
      }
      for (int64_t n = 0; n < p.N; ++n) last[(b * p.Dm + c) * p.N + n] = h[n];
    }
}

template <class T>
struct Buffers {
  std::vector<T> u, delta, A, B, C, D, z, bias, h0, dout, dlast, out, last;
  explicit Buffers(const Problem& p)
      : u(cast<T>(p.u)), delta(cast<T>(p.delta)), A(cast<T>(p.A)), B(cast<T>(p.B)),
        C(cast<T>(p.C)), D(cast<T>(p.D)), z(cast<T>(p.z)), bias(cast<T>(p.bias)),
        h0(cast<T>(p.h0)), dout(cast<T>(p.dout)), dlast(cast<T>(p.dlast)), out(p.dout.size(), T(-7)),
        last(p.h0.size(), T(-7)) {}
};

template <class T, class Args>
void fill(Args& a, const Problem& p, Buffers<T>& m) {
  a.Bt = p.Bt, a.Dm = p.Dm, a.L = p.L, a.N = p.N, a.G = p.G;
  a.u = m.u.data(), a.delta = m.delta.data(), a.A = m.A.data();
  a.B = m.B.data(), a.Bs = p.Bs, a.C = m.C.data(), a.Cs = p.Cs;
  a.D = p.hasD ? m.D.data() : nullptr;
  a.z = p.hasZ ? m.z.data() : nullptr;
  a.delta_bias = p.hasBias ? m.bias.data() : nullptr;
  a.h0 = p.hasH0 ? m.h0.data() : nullptr;
  a.softplus = p.softplus;
  a.out = m.out.data();
  a.last_state = p.tmap ? nullptr : m.last.data();
  a.tmap = p.tmap;
}

template <class T>
double forward_err(const Problem& p) {
  Buffers<T> m(p);
  ss::FwdArgs<T> a;
  fill(a, p, m);
  ss::forward(a);
  std::vector<double> out, last;
  reference(p, out, last);
  double e = max_rel_err(m.out.data(), out.data(), out.size());
  if (!p.tmap) e = std::max(e, max_rel_err(m.last.data(), last.data(), last.size()));
  return e;
}

double loss(const Problem& p) {
  std::vector<double> out, last;
  reference(p, out, last);
  double s = 0.0;
  for (size_t i = 0; i < out.size(); ++i) s += p.dout[i] * out[i];
  if (p.hasDlast)
    for (size_t i = 0; i < last.size(); ++i) s += p.dlast[i] * last[i];
  return s;
}

// Per-batch partials (Bt, X) summed over the batch.
template <class T>
std::vector<T> batch_sum(const std::vector<T>& part, int64_t Bt) {
  const size_t n = part.size() / Bt;
  std::vector<T> s(n, T(0));
  for (int64_t b = 0; b < Bt; ++b)
    for (size_t i = 0; i < n; ++i) s[i] += part[b * n + i];
  return s;
}

template <class T>
double backward_err(Problem p, Rng& rng) {
  Buffers<T> m(p);
  ss::BwdArgs<T> a;
  fill(a, p, m);
  a.out = nullptr;
  a.last_state = nullptr;
  a.dout = m.dout.data();
  a.dlast = p.hasDlast ? m.dlast.data() : nullptr;
  std::vector<T> du(p.u.size()), ddelta(p.delta.size()), dz(p.z.size()), dh0(p.h0.size());
  std::vector<T> dA_part(p.Bt * p.Dm * p.N), dD_part(p.Bt * p.Dm), dbias_part(p.Bt * p.Dm);
  std::vector<T> dB(p.BC_numel, T(0)), dC(p.BC_numel, T(0));
  a.du = du.data(), a.ddelta = ddelta.data(), a.dz = p.hasZ ? dz.data() : nullptr;
  a.dh0 = p.hasH0 ? dh0.data() : nullptr;
  a.dA_part = dA_part.data(), a.dD_part = dD_part.data(), a.dbias_part = dbias_part.data();
  a.dB = dB.data(), a.dBs = p.Bs, a.dB_numel = p.BC_numel;
  a.dC = dC.data(), a.dCs = p.Cs, a.dC_numel = p.BC_numel;
  ss::backward(a);
  auto f = [&] { return loss(p); };
  double e = 0.0;
  e = std::max(e, directional_err(p.u, du, f, rng));
  e = std::max(e, directional_err(p.delta, ddelta, f, rng));
  e = std::max(e, directional_err(p.A, batch_sum(dA_part, p.Bt), f, rng));
  e = std::max(e, directional_err(p.B, dB, f, rng));
  e = std::max(e, directional_err(p.C, dC, f, rng));
  e = std::max(e, directional_err(p.D, batch_sum(dD_part, p.Bt), f, rng));
  e = std::max(e, directional_err(p.bias, batch_sum(dbias_part, p.Bt), f, rng));
  if (p.hasZ) e = std::max(e, directional_err(p.z, dz, f, rng));
  if (p.hasH0) e = std::max(e, directional_err(p.h0, dh0, f, rng));
  return e;
}

std::string describe(const Problem& p) {
  return "Bt" + std::to_string(p.Bt) + " Dm" + std::to_string(p.Dm) + " L" + std::to_string(p.L) +
         " N" + std::to_string(p.N) + " G" + std::to_string(p.G) +
         (p.contiguous_state ? " state-contiguous" : " state-strided") +
         (p.broadcast_batch ? " batch-broadcast" : "");
}

// The four SS2D traversals of an H x W map: rows, columns, and both reversed.
std::vector<int32_t> cross_orders(int H, int W) {
  const int L = H * W;
  std::vector<int32_t> m(4 * L);
  for (int t = 0; t < L; ++t) {
    m[t] = t;
    m[L + t] = (t % H) * W + t / H;
    m[2 * L + t] = L - 1 - t;
  }
  for (int t = 0; t < L; ++t) m[3 * L + t] = m[L + (L - 1 - t)];
  return m;
}

}  // namespace

std::vector<Result> check_selective_scan() {
  Result fwd32{"selective_scan fwd f32", 2e-5}, fwd64{"selective_scan fwd f64", 1e-11};
  Result bwd32{"selective_scan bwd f32 (d/dx)", 1e-4}, bwd64{"selective_scan bwd f64 (d/dx)", 1e-6};
  Result cross32{"cross_selective_scan f32", 2e-5};
  Rng rng(23);
  struct Shape {
    int64_t Bt, Dm, L, N, G;
    bool contiguous, broadcast, softplus, extras;
  };
  const Shape shapes[] = {
      {2, 8, 140, 16, 2, true, false, true, false},  // threaded forward
      {1, 5, 300, 4, 1, false, false, true, true},   // strided state: runtime-N core
      {2, 4, 150, 16, 2, true, true, true, true},    // chunk boundary, broadcast B / C
      {1, 3, 29, 1, 3, true, false, false, true},
      {2, 3, 45, 5, 1, true, false, true, true},     // N = 5: runtime-N core
      {1, 2, 40, 64, 1, true, false, true, true},
  };
  for (const Shape& s : shapes) {
    const Problem p = make(rng, s.Bt, s.Dm, s.L, s.N, s.G, s.contiguous, s.broadcast, s.softplus,
                           s.extras);
    record(fwd32, forward_err<float>(p), describe(p));
    record(fwd64, forward_err<double>(p), describe(p));
    record(bwd32, backward_err<float>(p, rng), describe(p));
    record(bwd64, backward_err<double>(p, rng), describe(p));
  }
  const std::vector<int32_t> orders = cross_orders(7, 9);
  for (int64_t N : {16, 3}) {
    const Problem p = make(rng, 2, 4 * 3, 63, N, 4, true, false, true, false, orders.data());
    record(cross32, forward_err<float>(p), "cross " + describe(p));
  }
  return {fwd32, fwd64, bwd32, bwd64, cross32};
}

}  // namespace check
}  // namespace effseg
