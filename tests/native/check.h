// Shared pieces of the native kernel check (native_check.cpp): a seeded random source,
// the per-kernel error record, and the directional-derivative test the backward checks
// use. Everything here is plain C++ so the check runs where Python does not (a Jetson,
// or an aarch64 build under qemu-user).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

namespace effseg {
namespace check {

// A small deterministic generator (SplitMix64): the same inputs on every target, so a
// failure on one can be reproduced on another.
class Rng {
 public:
  explicit Rng(uint64_t seed) : s_(seed) {}
  uint64_t next() {
    uint64_t z = (s_ += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  double uniform(double lo, double hi) { return lo + (hi - lo) * ((next() >> 11) * 0x1.0p-53); }
  std::vector<double> vec(size_t n, double lo = -1.0, double hi = 1.0) {
    std::vector<double> v(n);
    for (double& x : v) x = uniform(lo, hi);
    return v;
  }

 private:
  uint64_t s_;
};

template <class T>
std::vector<T> cast(const std::vector<double>& v) {
  return std::vector<T>(v.begin(), v.end());
}

// One kernel's result over all its cases: the largest error seen (in the units the kernel
// states: |got - ref| / max(1, |ref|) unless said otherwise) against its tolerance.
struct Result {
  std::string name;
  double tol;
  double max_err = 0.0;
  int cases = 0;
  std::string worst;  // the case that gave max_err
  bool ok() const { return max_err <= tol; }
};

// Error of got against ref, scaled by max(scale, |ref|) per element; NaN counts as
// infinitely wrong, matching infinities as exact.
template <class T>
double max_rel_err(const T* got, const double* ref, size_t n, double scale = 1.0) {
  double e = 0.0;
  for (size_t i = 0; i < n; ++i) {
    const double g = static_cast<double>(got[i]), r = ref[i];
    if (std::isinf(r) && g == r) continue;
    const double d = std::fabs(g - r) / std::max(scale, std::fabs(r));
    if (!(d == d)) return INFINITY;
    if (d > e) e = d;
  }
  return e;
}

inline void record(Result& r, double err, const std::string& what) {
  if (!(err == err)) err = INFINITY;
  if (r.cases++ == 0 || err > r.max_err) {
    r.max_err = err;
    r.worst = what;
  }
}

// The backward of f checked against the reference loss: for a random direction v,
// (loss(x + eps v) - loss(x - eps v)) / (2 eps) must match sum(grad * v). Returns the
// mismatch relative to sum |grad * v| (the size of the terms the dot product adds).
template <class Loss, class G>
double directional_err(std::vector<double>& x, const std::vector<G>& grad, Loss&& loss, Rng& rng) {
  const std::vector<double> v = rng.vec(x.size());
  const std::vector<double> x0 = x;
  const double eps = 1e-5;
  for (size_t i = 0; i < x.size(); ++i) x[i] = x0[i] + eps * v[i];
  const double lp = loss();
  for (size_t i = 0; i < x.size(); ++i) x[i] = x0[i] - eps * v[i];
  const double lm = loss();
  x = x0;
  const double fd = (lp - lm) / (2 * eps);
  double dot = 0.0, mag = 0.0;
  for (size_t i = 0; i < x.size(); ++i) {
    dot += static_cast<double>(grad[i]) * v[i];
    mag += std::fabs(static_cast<double>(grad[i]) * v[i]);
  }
  const double d = std::fabs(fd - dot) / std::max(mag, 1e-6);
  return d == d ? d : INFINITY;
}

// One function per op (check_<op>.cpp), each returning a Result per kernel it checks.
std::vector<Result> check_depthwise_conv2d();
std::vector<Result> check_selective_scan();
std::vector<Result> check_linear_attention();
std::vector<Result> check_winograd_conv2d();
std::vector<Result> check_distance_transform();

}  // namespace check
}  // namespace effseg
