// pybind11 bindings of the Winograd F(4x4, 3x3) transforms (see winograd_conv2d.h for
// the layouts). The GEMMs between them run in Python (torch.bmm).
#include <cstdint>
#include <string>

#include "bind.h"
#include "winograd_conv2d/winograd_conv2d.h"

namespace py = pybind11;
namespace wg = effseg::winograd_conv2d;
using effseg::bind::Buf;
using effseg::bind::count;
using effseg::bind::need_in;
using effseg::bind::need_out;
using effseg::bind::opt_in;

namespace {

[[noreturn]] void bad_dtype(const std::string& dtype) {
  throw py::value_error("winograd_conv2d: dtype must be 'float32' or 'float64', got '" + dtype +
                        "'");
}

// The chunk's tile range must lie inside the N images' tiles: a tile's image index
// n = p / (tiles_h * tiles_w) addresses x / Y (the window reads are clipped to H, W and the
// writes to Ho, Wo, so x and Y need exactly their (N, C|K, H|Ho, W|Wo) counts).
void check_tiles(const char* op, int64_t N, int64_t tiles_h, int64_t tiles_w, int64_t p0, int64_t p1) {
  const int64_t P = count(op, "the tile grid (N, tiles_h, tiles_w)", {N, tiles_h, tiles_w});
  if (p0 < 0 || p1 < p0 || p1 > P)
    throw py::value_error(std::string(op) + ": need 0 <= p0 <= p1 <= N * tiles_h * tiles_w = " +
                          std::to_string(P) + ", got p0=" + std::to_string(p0) + ", p1=" + std::to_string(p1));
}

template <class T>
void input_t(const Buf& x, int64_t N, int64_t C, int64_t H, int64_t W, int64_t pad_h,
             int64_t pad_w, int64_t tiles_h, int64_t tiles_w, int64_t p0, int64_t p1,
             const Buf& V) {
  constexpr const char* op = "winograd_input_transform";
  check_tiles(op, N, tiles_h, tiles_w, p0, p1);
  const T* xp = need_in<T>(op, "x", x, "(N, C, H, W)", {N, C, H, W});
  T* vp = need_out<T>(op, "V", V, "(36, C, p1 - p0)", {36, C, p1 - p0});
  // Argument errors are raised with the GIL held.
  wg::validate_input(xp, N, C, H, W, pad_h, pad_w, tiles_h, tiles_w, p0, p1, vp);
  py::gil_scoped_release nogil;
  wg::input_transform<T>(xp, N, C, H, W, pad_h, pad_w, tiles_h, tiles_w, p0, p1, vp);
}

void input_transform(const std::string& dtype, const Buf& x, int64_t N, int64_t C, int64_t H,
                     int64_t W, int64_t pad_h, int64_t pad_w, int64_t tiles_h, int64_t tiles_w,
                     int64_t p0, int64_t p1, const Buf& V) {
  if (dtype == "float32")
    input_t<float>(x, N, C, H, W, pad_h, pad_w, tiles_h, tiles_w, p0, p1, V);
  else if (dtype == "float64")
    input_t<double>(x, N, C, H, W, pad_h, pad_w, tiles_h, tiles_w, p0, p1, V);
  else
    bad_dtype(dtype);
}

template <class T>
bool output_t(const Buf& M, int64_t K, int64_t p0, int64_t p1, int64_t tiles_h, int64_t tiles_w,
              const Buf& bias, bool relu, const Buf& Y, int64_t N, int64_t Ho, int64_t Wo) {
  constexpr const char* op = "winograd_output_transform";
  check_tiles(op, N, tiles_h, tiles_w, p0, p1);
  const T* mp = need_in<T>(op, "M", M, "(36, K, p1 - p0)", {36, K, p1 - p0});
  const T* bp = opt_in<T>(op, "bias", bias, "(K,)", {K});
  T* yp = need_out<T>(op, "Y", Y, "(N, K, Ho, Wo)", {N, K, Ho, Wo});
  wg::validate_output(mp, K, p0, p1, tiles_h, tiles_w, yp, N, Ho, Wo);
  py::gil_scoped_release nogil;
  return wg::output_transform<T>(mp, K, p0, p1, tiles_h, tiles_w, bp, relu, yp, N, Ho, Wo);
}

bool output_transform(const std::string& dtype, const Buf& M, int64_t K, int64_t p0, int64_t p1,
                      int64_t tiles_h, int64_t tiles_w, const Buf& bias, bool relu, const Buf& Y,
                      int64_t N, int64_t Ho, int64_t Wo) {
  if (dtype == "float32")
    return output_t<float>(M, K, p0, p1, tiles_h, tiles_w, bias, relu, Y, N, Ho, Wo);
  if (dtype == "float64")
    return output_t<double>(M, K, p0, p1, tiles_h, tiles_w, bias, relu, Y, N, Ho, Wo);
  bad_dtype(dtype);
}

}  // namespace

namespace effseg {
namespace bind {

void bind_winograd_conv2d(py::module_& m) {
  using namespace py::literals;
  m.def("winograd_input_transform", &input_transform, "dtype"_a, "x"_a, "N"_a, "C"_a, "H"_a,
        "W"_a, "pad_h"_a, "pad_w"_a, "tiles_h"_a, "tiles_w"_a, "p0"_a, "p1"_a, "V"_a,
        "Winograd F(4,3) input transform on (address, element count) buffers: x (N,C,H,W) contiguous; writes "
        "V (36, C, p1-p0) = B^T d B for tiles [p0, p1) (p over (n, ty, tx) row-major).");
  m.def("winograd_output_transform", &output_transform, "dtype"_a, "M"_a, "K"_a, "p0"_a, "p1"_a,
        "tiles_h"_a, "tiles_w"_a, "bias"_a, "relu"_a, "Y"_a, "N"_a, "Ho"_a, "Wo"_a,
        "Winograd F(4,3) output transform on (address, element count) buffers: M (36, K, p1-p0) contiguous; writes "
        "the tiles [p0, p1) of Y (N,K,Ho,Wo) = A^T m A (+ bias (K,), (0, 0) = none; then relu). Returns False "
        "when a value before relu is Inf or NaN.");
  m.def("winograd_conv2d_simd", &wg::simd_level, "ISA the Winograd transforms run with.");
}

}  // namespace bind
}  // namespace effseg
