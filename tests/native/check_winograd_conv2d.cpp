// winograd_conv2d's input / output transforms, composed as the Python op composes them
// (U = G g G^T, V = input_transform, M[ij] = U[ij] V[ij], Y = output_transform), against
// a direct 3 x 3 convolution in double. Odd image sizes (tiles overhanging the output's
// bottom / right edge), asymmetric padding, chunks of tiles that split images, bias and
// ReLU. Error: max |y - ref| over max |ref| before the ReLU, as the op's tests measure.
#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "check.h"
#include "winograd_conv2d/winograd_conv2d.h"

namespace effseg {
namespace check {
namespace {

namespace wg = winograd_conv2d;

// G of F(4x4, 3x3), as effseg/ops/winograd_conv2d.py (_G) defines it.
constexpr double kG[6][3] = {{1.0 / 4, 0, 0},          {-1.0 / 6, -1.0 / 6, -1.0 / 6},
                             {-1.0 / 6, 1.0 / 6, -1.0 / 6}, {1.0 / 24, 1.0 / 12, 1.0 / 6},
                             {1.0 / 24, -1.0 / 12, 1.0 / 6}, {0, 0, 1}};

struct Case {
  int64_t N, C, K, H, W, ph, pw, chunk;
  bool bias, relu;
};

std::vector<double> direct(const Case& k, int64_t Ho, int64_t Wo, const std::vector<double>& x,
                           const std::vector<double>& w, const std::vector<double>& b, bool relu) {
  std::vector<double> y(k.N * k.K * Ho * Wo);
  for (int64_t n = 0; n < k.N; ++n)
    for (int64_t o = 0; o < k.K; ++o)
      for (int64_t i = 0; i < Ho; ++i)
        for (int64_t j = 0; j < Wo; ++j) {
          double s = k.bias ? b[o] : 0.0;
          for (int64_t c = 0; c < k.C; ++c)
            for (int64_t a = 0; a < 3; ++a)
              for (int64_t e = 0; e < 3; ++e) {
                const int64_t ih = i - k.ph + a, iw = j - k.pw + e;
                if (ih >= 0 && ih < k.H && iw >= 0 && iw < k.W)
                  s += w[((o * k.C + c) * 3 + a) * 3 + e] * x[((n * k.C + c) * k.H + ih) * k.W + iw];
              }
          y[((n * k.K + o) * Ho + i) * Wo + j] = relu && s < 0 ? 0.0 : s;
        }
  return y;
}

template <class T>
double run(const Case& k, Rng& rng) {
  const int64_t Ho = k.H + 2 * k.ph - 2, Wo = k.W + 2 * k.pw - 2;
  const int64_t th = (Ho + 3) / 4, tw = (Wo + 3) / 4, P = k.N * th * tw;
  std::vector<double> x = rng.vec(k.N * k.C * k.H * k.W), w = rng.vec(k.K * k.C * 9), b = rng.vec(k.K);
  for (auto* v : {&x, &w, &b})
    for (double& e : *v) e = static_cast<T>(e);
  // U[ij][o][c] = sum_ab G[i][a] G[j][b] g[o][c][a][b], in double, then rounded to T.
  std::vector<T> U(36 * k.K * k.C);
  for (int i = 0; i < 6; ++i)
    for (int j = 0; j < 6; ++j)
      for (int64_t o = 0; o < k.K; ++o)
        for (int64_t c = 0; c < k.C; ++c) {
          double s = 0.0;
          for (int a = 0; a < 3; ++a)
            for (int e = 0; e < 3; ++e) s += kG[i][a] * kG[j][e] * w[((o * k.C + c) * 3 + a) * 3 + e];
          U[((i * 6 + j) * k.K + o) * k.C + c] = static_cast<T>(s);
        }
  const std::vector<T> xt = cast<T>(x), bt = cast<T>(b);
  std::vector<T> y(k.N * k.K * Ho * Wo, T(-7));
  for (int64_t p0 = 0; p0 < P; p0 += k.chunk) {
    const int64_t p1 = std::min(P, p0 + k.chunk), Pc = p1 - p0;
    std::vector<T> V(36 * k.C * Pc), M(36 * k.K * Pc, T(0));
    wg::input_transform<T>(xt.data(), k.N, k.C, k.H, k.W, k.ph, k.pw, th, tw, p0, p1, V.data());
    for (int64_t ij = 0; ij < 36; ++ij)
      for (int64_t o = 0; o < k.K; ++o)
        for (int64_t c = 0; c < k.C; ++c) {
          const T u = U[(ij * k.K + o) * k.C + c];
          for (int64_t p = 0; p < Pc; ++p) M[(ij * k.K + o) * Pc + p] += u * V[(ij * k.C + c) * Pc + p];
        }
    if (!wg::output_transform<T>(M.data(), k.K, p0, p1, th, tw, k.bias ? bt.data() : nullptr, k.relu,
                                 y.data(), k.N, Ho, Wo))
      return INFINITY;
  }
  const std::vector<double> ref = direct(k, Ho, Wo, x, w, b, k.relu);
  const std::vector<double> pre = direct(k, Ho, Wo, x, w, b, false);
  double scale = 1e-30;
  for (double v : pre) scale = std::max(scale, std::fabs(v));
  double e = 0.0;
  for (size_t i = 0; i < ref.size(); ++i) e = std::max(e, std::fabs(y[i] - ref[i]) / scale);
  return e == e ? e : INFINITY;
}

}  // namespace

std::vector<Result> check_winograd_conv2d() {
  Result f32{"winograd_conv2d f32", 1e-4}, f64{"winograd_conv2d f64", 1e-10};
  const Case cases[] = {
      {2, 5, 3, 13, 11, 1, 1, 7, true, false},
      {1, 3, 6, 9, 17, 0, 2, 5, false, true},
      {1, 17, 9, 6, 7, 1, 0, 1000, true, true},
      {3, 2, 1, 3, 3, 1, 1, 2, true, false},
  };
  Rng rng(53);
  for (const Case& k : cases) {
    const std::string what = "N" + std::to_string(k.N) + " C" + std::to_string(k.C) + " K" +
                             std::to_string(k.K) + " " + std::to_string(k.H) + "x" + std::to_string(k.W);
    record(f32, run<float>(k, rng), what);
    record(f64, run<double>(k, rng), what);
  }
  return {f32, f64};
}

}  // namespace check
}  // namespace effseg
