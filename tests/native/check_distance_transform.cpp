// distance_transform::forward against brute force (the distance to every zero pixel, in
// double): odd sizes, sparse and dense masks, anisotropic spacing, a single zero pixel
// in a corner, and an image without zeros (+inf everywhere).
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "check.h"
#include "distance_transform/distance_transform.h"

namespace effseg {
namespace check {
namespace {

namespace dt = distance_transform;

std::vector<double> brute(const std::vector<uint8_t>& m, int64_t N, int64_t H, int64_t W, double sy,
                          double sx) {
  std::vector<double> out(N * H * W);
  for (int64_t n = 0; n < N; ++n)
    for (int64_t y = 0; y < H; ++y)
      for (int64_t x = 0; x < W; ++x) {
        double best = std::numeric_limits<double>::infinity();
        for (int64_t v = 0; v < H; ++v)
          for (int64_t u = 0; u < W; ++u)
            if (!m[(n * H + v) * W + u]) best = std::min(best, std::hypot((y - v) * sy, (x - u) * sx));
        out[(n * H + y) * W + x] = best;
      }
  return out;
}

}  // namespace

std::vector<Result> check_distance_transform() {
  // float32 output: relative error of a rounded distance, plus the kernel's own float
  // arithmetic on squared distances of up to ~2^12.
  Result r{"distance_transform", 1e-6};
  struct Case {
    int64_t N, H, W;
    double sy, sx, zero_fraction;
  };
  const Case cases[] = {{3, 17, 23, 1.0, 1.0, 0.1}, {2, 31, 9, 0.5, 2.25, 0.02},
                        {1, 1, 37, 1.0, 1.0, 0.2},  {2, 40, 45, 1.0, 1.0, 0.6}};
  Rng rng(71);
  for (const Case& c : cases) {
    std::vector<uint8_t> m(c.N * c.H * c.W);
    for (uint8_t& v : m) v = rng.uniform(0, 1) < c.zero_fraction ? 0 : 1;
    // With 3 images, the first has one zero pixel, in the far corner; with 2 or more, the
    // last has none at all.
    if (c.N >= 3)
      for (int64_t i = 0; i < c.H * c.W; ++i) m[i] = i != c.H * c.W - 1;
    if (c.N >= 2)
      for (int64_t i = 0; i < c.H * c.W; ++i) m[(c.N - 1) * c.H * c.W + i] = 1;
    std::vector<float> out(m.size(), -7.0f);
    dt::Args a;
    a.N = c.N, a.H = c.H, a.W = c.W, a.mask = m.data(), a.out = out.data(), a.sy = c.sy, a.sx = c.sx;
    dt::forward(a);
    const std::vector<double> ref = brute(m, c.N, c.H, c.W, c.sy, c.sx);
    record(r, max_rel_err(out.data(), ref.data(), ref.size(), 1e-30),
           std::to_string(c.N) + "x" + std::to_string(c.H) + "x" + std::to_string(c.W));
  }
  return {r};
}

}  // namespace check
}  // namespace effseg
