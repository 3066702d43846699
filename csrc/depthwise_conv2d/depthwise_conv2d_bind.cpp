// pybind11 bindings of the depthwise convolution (see depthwise_conv2d.h for layouts).
#include <cstdint>
#include <string>

#include "bind.h"
#include "depthwise_conv2d/depthwise_conv2d.h"

namespace py = pybind11;
namespace dw = effseg::depthwise_conv2d;
using effseg::bind::Buf;
using effseg::bind::need_in;
using effseg::bind::need_out;
using effseg::bind::opt_in;

constexpr const char* kOp = "depthwise_conv2d_fwd";

namespace {

template <class T>
void run(int64_t B, int64_t C, int64_t H, int64_t W, int64_t kH, int64_t kW, int64_t sH,
         int64_t sW, int64_t dH, int64_t dW, int64_t pT, int64_t pL, int64_t Ho, int64_t Wo,
         const Buf& x, const Buf& w, const Buf& bias, int act, const Buf& out) {
  dw::Args<T> a;
  a.B = B;
  a.C = C;
  a.H = H;
  a.W = W;
  a.kH = kH;
  a.kW = kW;
  a.sH = sH;
  a.sW = sW;
  a.dH = dH;
  a.dW = dW;
  a.pT = pT;
  a.pL = pL;
  a.Ho = Ho;
  a.Wo = Wo;
  // The kernel reads x only inside [0, H) x [0, W) (padding is implicit), so these four
  // bound every access.
  a.x = need_in<T>(kOp, "x", x, "(B, C, H, W)", {B, C, H, W});
  a.w = need_in<T>(kOp, "w", w, "(C, kH, kW)", {C, kH, kW});
  a.bias = opt_in<T>(kOp, "bias", bias, "(C,)", {C});
  a.out = need_out<T>(kOp, "out", out, "(B, C, Ho, Wo)", {B, C, Ho, Wo});
  a.act = static_cast<dw::Act>(act);
  dw::validate(a);  // argument errors are raised with the GIL held
  py::gil_scoped_release nogil;
  dw::forward(a);
}

void depthwise_conv2d_fwd(const std::string& dtype, int64_t B, int64_t C, int64_t H, int64_t W,
                          int64_t kH, int64_t kW, int64_t sH, int64_t sW, int64_t dH, int64_t dW,
                          int64_t pT, int64_t pL, int64_t Ho, int64_t Wo, const Buf& x,
                          const Buf& w, const Buf& bias, int act, const Buf& out) {
  if (act < 0 || act > static_cast<int>(dw::Act::SiLU))
    throw py::value_error("depthwise_conv2d: act must be 0..4 (none, relu, relu6, gelu, silu)");
  if (dtype == "float32")
    run<float>(B, C, H, W, kH, kW, sH, sW, dH, dW, pT, pL, Ho, Wo, x, w, bias, act, out);
  else if (dtype == "float64")
    run<double>(B, C, H, W, kH, kW, sH, sW, dH, dW, pT, pL, Ho, Wo, x, w, bias, act, out);
  else
    throw py::value_error("depthwise_conv2d: dtype must be 'float32' or 'float64', got '" +
                          dtype + "'");
}

}  // namespace

namespace effseg {
namespace bind {

void bind_depthwise_conv2d(py::module_& m) {
  using namespace py::literals;
  m.def("depthwise_conv2d_fwd", &depthwise_conv2d_fwd, "dtype"_a, "B"_a, "C"_a, "H"_a, "W"_a,
        "kH"_a, "kW"_a, "sH"_a, "sW"_a, "dH"_a, "dW"_a, "pT"_a, "pL"_a, "Ho"_a, "Wo"_a, "x"_a,
        "w"_a, "bias"_a, "act"_a, "out"_a,
        "Depthwise conv on (address, element count) buffers ((0, 0) = absent bias): x (B,C,H,W), "
        "w (C,kH,kW), out (B,C,Ho,Wo), all contiguous; counts are checked against the sizes; zero padding pT/pL top/left, the rest implied by Ho/Wo; "
        "act 0..4 = none, relu, relu6, gelu (erf), silu, fused after the bias.");
  m.def("depthwise_conv2d_simd", &dw::simd_level, "ISA the depthwise float kernel runs with.");
}

}  // namespace bind
}  // namespace effseg
