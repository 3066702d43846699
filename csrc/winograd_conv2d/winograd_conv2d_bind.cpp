// pybind11 bindings of the Winograd F(4x4, 3x3) transforms (see winograd_conv2d.h for
// the layouts). The GEMMs between them run in Python (torch.bmm).
#include <cstdint>
#include <string>

#include "bind.h"
#include "winograd_conv2d/winograd_conv2d.h"

namespace py = pybind11;
namespace wg = effseg::winograd_conv2d;
using effseg::bind::cp;
using effseg::bind::mp;
using effseg::bind::Ptr;

namespace {

[[noreturn]] void bad_dtype(const std::string& dtype) {
  throw py::value_error("winograd_conv2d: dtype must be 'float32' or 'float64', got '" + dtype +
                        "'");
}

template <class T>
void input_t(Ptr x, int64_t N, int64_t C, int64_t H, int64_t W, int64_t pad_h, int64_t pad_w,
             int64_t tiles_h, int64_t tiles_w, int64_t p0, int64_t p1, Ptr V) {
  // Argument errors are raised with the GIL held.
  wg::validate_input(cp<T>(x), N, C, H, W, pad_h, pad_w, tiles_h, tiles_w, p0, p1, cp<T>(V));
  py::gil_scoped_release nogil;
  wg::input_transform<T>(cp<T>(x), N, C, H, W, pad_h, pad_w, tiles_h, tiles_w, p0, p1, mp<T>(V));
}

void input_transform(const std::string& dtype, Ptr x, int64_t N, int64_t C, int64_t H, int64_t W,
                     int64_t pad_h, int64_t pad_w, int64_t tiles_h, int64_t tiles_w, int64_t p0,
                     int64_t p1, Ptr V) {
  if (dtype == "float32")
    input_t<float>(x, N, C, H, W, pad_h, pad_w, tiles_h, tiles_w, p0, p1, V);
  else if (dtype == "float64")
    input_t<double>(x, N, C, H, W, pad_h, pad_w, tiles_h, tiles_w, p0, p1, V);
  else
    bad_dtype(dtype);
}

template <class T>
void output_t(Ptr M, int64_t K, int64_t p0, int64_t p1, int64_t tiles_h, int64_t tiles_w,
              Ptr bias, bool relu, Ptr Y, int64_t N, int64_t Ho, int64_t Wo) {
  wg::validate_output(cp<T>(M), K, p0, p1, tiles_h, tiles_w, cp<T>(Y), N, Ho, Wo);
  py::gil_scoped_release nogil;
  wg::output_transform<T>(cp<T>(M), K, p0, p1, tiles_h, tiles_w, cp<T>(bias), relu, mp<T>(Y), N,
                          Ho, Wo);
}

void output_transform(const std::string& dtype, Ptr M, int64_t K, int64_t p0, int64_t p1,
                      int64_t tiles_h, int64_t tiles_w, Ptr bias, bool relu, Ptr Y, int64_t N,
                      int64_t Ho, int64_t Wo) {
  if (dtype == "float32")
    output_t<float>(M, K, p0, p1, tiles_h, tiles_w, bias, relu, Y, N, Ho, Wo);
  else if (dtype == "float64")
    output_t<double>(M, K, p0, p1, tiles_h, tiles_w, bias, relu, Y, N, Ho, Wo);
  else
    bad_dtype(dtype);
}

}  // namespace

namespace effseg {
namespace bind {

void bind_winograd_conv2d(py::module_& m) {
  using namespace py::literals;
  m.def("winograd_input_transform", &input_transform, "dtype"_a, "x"_a, "N"_a, "C"_a, "H"_a,
        "W"_a, "pad_h"_a, "pad_w"_a, "tiles_h"_a, "tiles_w"_a, "p0"_a, "p1"_a, "V"_a,
        "Winograd F(4,3) input transform on raw addresses: x (N,C,H,W) contiguous; writes "
        "V (36, C, p1-p0) = B^T d B for tiles [p0, p1) (p over (n, ty, tx) row-major).");
  m.def("winograd_output_transform", &output_transform, "dtype"_a, "M"_a, "K"_a, "p0"_a, "p1"_a,
        "tiles_h"_a, "tiles_w"_a, "bias"_a, "relu"_a, "Y"_a, "N"_a, "Ho"_a, "Wo"_a,
        "Winograd F(4,3) output transform on raw addresses: M (36, K, p1-p0) contiguous; writes "
        "the tiles [p0, p1) of Y (N,K,Ho,Wo) = A^T m A (+ bias (K,), 0 = none; then relu).");
  m.def("winograd_conv2d_simd", &wg::simd_level, "ISA the Winograd transforms run with.");
}

}  // namespace bind
}  // namespace effseg
