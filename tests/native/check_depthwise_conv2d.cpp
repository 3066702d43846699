// depthwise_conv2d::forward (float and double) against a direct convolution in double,
// on shapes where neither the channel count nor the width fills whole vectors, so the
// channel-blocked path, the row path and their tails all run.
#include <cmath>
#include <string>
#include <vector>

#include "check.h"
#include "depthwise_conv2d/depthwise_conv2d.h"

namespace effseg {
namespace check {
namespace {

namespace dw = depthwise_conv2d;

struct Case {
  int64_t B, C, H, W, kH, kW, sH, sW, dH, dW, pT, pL, pB, pR;
  dw::Act act;
  bool bias;
};

double act_ref(double z, dw::Act act) {
  switch (act) {
    case dw::Act::ReLU: return z < 0 ? 0.0 : z;
    case dw::Act::ReLU6: return z < 0 ? 0.0 : (z > 6 ? 6.0 : z);
    case dw::Act::GELU: return 0.5 * z * std::erfc(-z / std::sqrt(2.0));
    case dw::Act::SiLU: return z / (1.0 + std::exp(-z));
    default: return z;
  }
}

std::vector<double> reference(const Case& k, int64_t Ho, int64_t Wo, const std::vector<double>& x,
                              const std::vector<double>& w, const std::vector<double>& b) {
  std::vector<double> out(static_cast<size_t>(k.B * k.C * Ho * Wo));
  for (int64_t n = 0; n < k.B; ++n)
    for (int64_t c = 0; c < k.C; ++c)
      for (int64_t oh = 0; oh < Ho; ++oh)
        for (int64_t ow = 0; ow < Wo; ++ow) {
          double s = k.bias ? b[c] : 0.0;
          for (int64_t i = 0; i < k.kH; ++i)
            for (int64_t j = 0; j < k.kW; ++j) {
              const int64_t ih = oh * k.sH - k.pT + i * k.dH, iw = ow * k.sW - k.pL + j * k.dW;
              if (ih < 0 || ih >= k.H || iw < 0 || iw >= k.W) continue;
              s += w[(c * k.kH + i) * k.kW + j] * x[((n * k.C + c) * k.H + ih) * k.W + iw];
            }
          out[((n * k.C + c) * Ho + oh) * Wo + ow] = act_ref(s, k.act);
        }
  return out;
}

template <class T>
double run(const Case& k, Rng& rng) {
  const int64_t Ho = (k.H + k.pT + k.pB - (k.kH - 1) * k.dH - 1) / k.sH + 1;
  const int64_t Wo = (k.W + k.pL + k.pR - (k.kW - 1) * k.dW - 1) / k.sW + 1;
  const std::vector<double> x = rng.vec(k.B * k.C * k.H * k.W, -2, 2);
  const std::vector<double> w = rng.vec(k.C * k.kH * k.kW);
  const std::vector<double> b = rng.vec(k.C);
  const std::vector<T> xt = cast<T>(x), wt = cast<T>(w), bt = cast<T>(b);
  // What the kernel reads is the rounded input: the reference starts from the same values.
  const std::vector<double> xr(xt.begin(), xt.end()), wr(wt.begin(), wt.end()), br(bt.begin(), bt.end());
  std::vector<T> out(static_cast<size_t>(k.B * k.C * Ho * Wo), T(-7));
  dw::Args<T> a;
  a.B = k.B, a.C = k.C, a.H = k.H, a.W = k.W, a.kH = k.kH, a.kW = k.kW, a.sH = k.sH, a.sW = k.sW;
  a.dH = k.dH, a.dW = k.dW, a.pT = k.pT, a.pL = k.pL, a.Ho = Ho, a.Wo = Wo;
  a.x = xt.data(), a.w = wt.data(), a.bias = k.bias ? bt.data() : nullptr, a.out = out.data();
  a.act = k.act;
  dw::forward(a);
  const std::vector<double> ref = reference(k, Ho, Wo, xr, wr, br);
  return max_rel_err(out.data(), ref.data(), ref.size());
}

std::string describe(const Case& k) {
  return "B" + std::to_string(k.B) + " C" + std::to_string(k.C) + " " + std::to_string(k.H) + "x" +
         std::to_string(k.W) + " k" + std::to_string(k.kH) + "x" + std::to_string(k.kW) + " s" +
         std::to_string(k.sH) + std::to_string(k.sW) + " d" + std::to_string(k.dH) +
         std::to_string(k.dW) + " act" + std::to_string(static_cast<int>(k.act));
}

}  // namespace

std::vector<Result> check_depthwise_conv2d() {
  using A = dw::Act;
  // C = 1, 3, 13, 21: no / some / one-and-a-bit channel blocks at 2, 4 and 8 lanes.
  const Case cases[] = {
      {2, 13, 11, 17, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, A::None, true},
      {1, 21, 9, 23, 5, 5, 2, 2, 1, 1, 2, 2, 1, 2, A::GELU, true},
      {1, 3, 15, 13, 3, 3, 1, 2, 2, 2, 2, 2, 2, 2, A::SiLU, false},
      {2, 1, 7, 31, 7, 1, 1, 1, 1, 1, 3, 0, 3, 0, A::ReLU6, true},
      {1, 9, 5, 6, 1, 7, 1, 3, 1, 2, 0, 6, 0, 5, A::ReLU, true},
      // Large enough for the threaded split (work >= 2^17 multiply-adds).
      {2, 19, 33, 35, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, A::SiLU, true},
  };
  Result f32{"depthwise_conv2d f32", 2e-5}, f64{"depthwise_conv2d f64", 1e-12};
  Rng rng(11);
  for (const Case& k : cases) {
    record(f32, run<float>(k, rng), describe(k));
    record(f64, run<double>(k, rng), describe(k));
  }
  return {f32, f64};
}

}  // namespace check
}  // namespace effseg
