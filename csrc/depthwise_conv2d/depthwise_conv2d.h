// Depthwise 2-D convolution (groups = channels), CPU kernel, float and double, with a
// fused per-channel bias and activation.
//
// Layouts (sizes in elements, everything contiguous):
//   x    (B, C, H, W)        weight (C, kH, kW)        bias (C,) or null
//   out  (B, C, Ho, Wo)
// out[b,c,oh,ow] = act(bias[c] + sum_{i,j} w[c,i,j] * x[b,c, oh*sH - pT + i*dH,
//                                                       ow*sW - pL + j*dW])
// with x read as zero outside [0, H) x [0, W). The bottom / right padding is implied by
// Ho, Wo (PyTorch's asymmetric "same" padding is pT/pL = total/2 plus the output size).
#pragma once

#include <cstdint>

namespace effseg {
namespace depthwise_conv2d {

// Activation codes shared with effseg/ops/depthwise_conv2d.py (_ACT_CODES).
enum class Act : int { None = 0, ReLU = 1, ReLU6 = 2, GELU = 3, SiLU = 4 };

template <class T>
struct Args {
  int64_t B = 0, C = 0, H = 0, W = 0;
  int64_t kH = 1, kW = 1, sH = 1, sW = 1, dH = 1, dW = 1;
  int64_t pT = 0, pL = 0;  // top / left zero padding
  int64_t Ho = 0, Wo = 0;  // output size (fixes the bottom / right padding)
  const T* x = nullptr;
  const T* w = nullptr;
  const T* bias = nullptr;  // may be null
  T* out = nullptr;
  Act act = Act::None;
};

// Largest kernel side the kernel accepts (the Python op documents the same range).
constexpr int64_t kMaxKernel = 31;

// Throws std::invalid_argument on inconsistent sizes or missing pointers; forward()
// validates again itself.
template <class T>
void validate(const Args<T>& a);

template <class T>
void forward(const Args<T>& a);

// The instruction set the float kernel runs with: "avx512f" (kernels of >= 20 taps;
// smaller ones run the AVX2 build), "avx2+fma" or the x86-64 / aarch64 baseline
// ("sse2" / "neon"). Follows common/isa.h's detection and its EFFSEG_SIMD
// cap, so one environment variable governs every kernel.
const char* simd_level();

}  // namespace depthwise_conv2d
}  // namespace effseg
