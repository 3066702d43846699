// linear_attention::forward / backward (taylor and softplus feature maps) against the
// formulas of linear_attention.h evaluated in double. Channel counts that fill no whole
// vector, N past one column block (256), a query column of zeros (taylor maps it to
// zeros), and the threaded split. Backward: directional derivatives of sum(dout * out).
#include <cmath>
#include <string>
#include <vector>

#include "check.h"
#include "linear_attention/linear_attention.h"

namespace effseg {
namespace check {
namespace {

namespace la = linear_attention;

struct Problem {
  int64_t B, Ck, Cv, N;
  int kind;
  double eps;
  std::vector<double> q, k, v, dout;
};

// phi over the channels of each column of x (C, N).
std::vector<double> phi(const double* x, int64_t C, int64_t N, int kind) {
  std::vector<double> f(C * N);
  for (int64_t n = 0; n < N; ++n) {
    double ss = 0.0;
    for (int64_t c = 0; c < C; ++c) ss += x[c * N + n] * x[c * N + n];
    for (int64_t c = 0; c < C; ++c) {
      const double e = x[c * N + n];
      f[c * N + n] = kind == la::kTaylor ? (ss > 0 ? e / std::sqrt(ss) : 0.0) : std::log1p(std::exp(e));
    }
  }
  return f;
}

void reference(const Problem& p, std::vector<double>& out, std::vector<double>& stats) {
  out.assign(p.B * p.Cv * p.N, 0.0);
  stats.assign(p.B * (p.Cv + 1) * (p.Ck + 1), 0.0);
  for (int64_t b = 0; b < p.B; ++b) {
    const std::vector<double> fq = phi(&p.q[b * p.Ck * p.N], p.Ck, p.N, p.kind);
    const std::vector<double> fk = phi(&p.k[b * p.Ck * p.N], p.Ck, p.N, p.kind);
    const double* v = &p.v[b * p.Cv * p.N];
    double* st = &stats[b * (p.Cv + 1) * (p.Ck + 1)];
    for (int64_t i = 0; i < p.Cv; ++i)
      for (int64_t n = 0; n < p.N; ++n) {
        for (int64_t j = 0; j < p.Ck; ++j) st[i * (p.Ck + 1) + j] += fk[j * p.N + n] * v[i * p.N + n];
        st[i * (p.Ck + 1) + p.Ck] += v[i * p.N + n];
      }
    for (int64_t j = 0; j < p.Ck; ++j)
      for (int64_t n = 0; n < p.N; ++n) st[p.Cv * (p.Ck + 1) + j] += fk[j * p.N + n];
    st[p.Cv * (p.Ck + 1) + p.Ck] = static_cast<double>(p.N);
    for (int64_t n = 0; n < p.N; ++n) {
      double den = p.kind == la::kTaylor ? static_cast<double>(p.N) : 0.0;
      for (int64_t j = 0; j < p.Ck; ++j) den += fq[j * p.N + n] * (st[p.Cv * (p.Ck + 1) + j] + p.eps);
      for (int64_t i = 0; i < p.Cv; ++i) {
        double num = p.kind == la::kTaylor ? st[i * (p.Ck + 1) + p.Ck] : 0.0;
        for (int64_t j = 0; j < p.Ck; ++j) num += st[i * (p.Ck + 1) + j] * fq[j * p.N + n];
        out[(b * p.Cv + i) * p.N + n] = num / den;
      }
    }
  }
}

template <class T>
struct Run {
  std::vector<T> q, k, v, out, stats;
  explicit Run(const Problem& p)
      : q(cast<T>(p.q)), k(cast<T>(p.k)), v(cast<T>(p.v)), out(p.B * p.Cv * p.N, T(-7)),
        stats(p.B * (p.Cv + 1) * (p.Ck + 1), T(-7)) {
    la::FwdArgs<T> a;
    a.B = p.B, a.Ck = p.Ck, a.Cv = p.Cv, a.N = p.N, a.kind = p.kind, a.eps = p.eps;
    a.q = q.data(), a.k = k.data(), a.v = v.data(), a.out = out.data(), a.stats = stats.data();
    la::forward(a);
  }
};

template <class T>
double forward_err(const Problem& p) {
  Run<T> r(p);
  std::vector<double> out, stats;
  reference(p, out, stats);
  return std::max(max_rel_err(r.out.data(), out.data(), out.size()),
                  max_rel_err(r.stats.data(), stats.data(), stats.size()));
}

template <class T>
double backward_err(Problem p, Rng& rng) {
  Run<T> r(p);
  const std::vector<T> dout = cast<T>(p.dout);
  std::vector<T> dq(r.q.size()), dk(r.k.size()), dv(r.v.size());
  la::BwdArgs<T> a;
  a.B = p.B, a.Ck = p.Ck, a.Cv = p.Cv, a.N = p.N, a.kind = p.kind, a.eps = p.eps;
  a.q = r.q.data(), a.k = r.k.data(), a.v = r.v.data(), a.out = r.out.data();
  a.stats = r.stats.data(), a.dout = dout.data();
  a.dq = dq.data(), a.dk = dk.data(), a.dv = dv.data();
  la::backward(a);
  auto loss = [&] {
    std::vector<double> out, stats;
    reference(p, out, stats);
    double s = 0.0;
    for (size_t i = 0; i < out.size(); ++i) s += p.dout[i] * out[i];
    return s;
  };
  double e = directional_err(p.q, dq, loss, rng);
  e = std::max(e, directional_err(p.k, dk, loss, rng));
  return std::max(e, directional_err(p.v, dv, loss, rng));
}

std::string describe(const Problem& p) {
  return std::string(p.kind == la::kTaylor ? "taylor" : "softplus") + " B" + std::to_string(p.B) +
         " Ck" + std::to_string(p.Ck) + " Cv" + std::to_string(p.Cv) + " N" + std::to_string(p.N);
}

}  // namespace

std::vector<Result> check_linear_attention() {
  Result fwd32{"linear_attention fwd f32", 1e-4}, fwd64{"linear_attention fwd f64", 1e-11};
  Result bwd32{"linear_attention bwd f32 (d/dx)", 1e-4}, bwd64{"linear_attention bwd f64 (d/dx)", 1e-6};
  Rng rng(37);
  struct Shape {
    int64_t B, Ck, Cv, N;
    bool zero_column;
  };
  const Shape shapes[] = {
      {2, 5, 7, 37, false}, {1, 16, 3, 300, false}, {1, 9, 13, 70, true}, {2, 16, 16, 300, false}};
  for (int kind : {int(la::kTaylor), int(la::kSoftplus)})
    for (const Shape& s : shapes) {
      auto r = [&](int64_t n) {
        std::vector<double> v = rng.vec(n, -1.5, 1.5);
        for (double& x : v) x = static_cast<float>(x);
        return v;
      };
      Problem p{s.B, s.Ck, s.Cv, s.N, kind, 1e-6, r(s.B * s.Ck * s.N), r(s.B * s.Ck * s.N),
                r(s.B * s.Cv * s.N), r(s.B * s.Cv * s.N)};
      if (s.zero_column)
        for (int64_t c = 0; c < s.Ck; ++c) p.q[c * s.N + 5] = 0.0;
      record(fwd32, forward_err<float>(p), describe(p));
      record(fwd64, forward_err<double>(p), describe(p));
      // A zero query column is not differentiable under taylor (x / |x| at 0).
      if (s.zero_column && kind == la::kTaylor) continue;
      record(bwd32, backward_err<float>(p, rng), describe(p));
      record(bwd64, backward_err<double>(p, rng), describe(p));
    }
  return {fwd32, fwd64, bwd32, bwd64};
}

}  // namespace check
}  // namespace effseg
